# Sockets and buffered streams: addresses, TCP/UDP/Unix, streams, the
# per-loop buffer pool; the echo benchmark's peers.
LIB_SRC += src/buf.c src/addr.c src/net.c src/stream.c

# The echo benchmark: corio streams against a hand-written edge-triggered
# epoll server, same script run, interleaved rounds (bench/echo/run.sh).
#   make bench-echo [ECHO_SECS=2] [ECHO_CONNS="100 1000"]
ECHO_B := $(B)/bench/echo
ECHO_BIN := $(ECHO_B)/echo_corio $(ECHO_B)/echo_epoll $(ECHO_B)/echo_client

$(ECHO_B)/echo_corio: bench/echo/echo_corio.c $(B)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libcorio.a -pthread

$(ECHO_B)/echo_%: bench/echo/echo_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<

ECHO_SECS ?= 2
ECHO_CONNS ?= 100 1000
ECHO_ROUNDS ?= 1
bench-echo: $(ECHO_BIN)
	SECS=$(ECHO_SECS) CONNS="$(ECHO_CONNS)" ROUNDS=$(ECHO_ROUNDS) bench/echo/run.sh $(ECHO_B)

bench: bench-echo
.PHONY: bench-echo
