# corio-http (the reference HTTP/1.1 server), corio-load (the load
# generator), the demo, and the peer benchmark.
#
#   make demo [DEMO_SECONDS=3]   build both, run the server under load, print a report
#   make bench-peers             corio-http against nginx, libuv, Go, uvloop and epoll
#   make apps                    $(B)/corio-http and $(B)/corio-load

# mk/*.mk is read before the Makefile's first target: keep `make` meaning `make all`.
.DEFAULT_GOAL := all

# (wildcard: a file not written yet must not break the others' builds)
HTTP_SRC := $(wildcard apps/http/parser.c apps/http/server.c apps/http/static.c)
LOAD_SRC := $(wildcard apps/load/hist.c apps/load/rate.c apps/load/load.c apps/load/resp.c \
            apps/load/report.c)
HTTP_OBJ := $(HTTP_SRC:%.c=$(B)/%.o)
LOAD_OBJ := $(LOAD_SRC:%.c=$(B)/%.o)

$(B)/corio-http: $(HTTP_OBJ) $(B)/apps/http/main.o $(B)/libcorio.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/corio-load: $(LOAD_OBJ) $(B)/apps/http/parser.o $(B)/apps/load/main.o $(B)/libcorio.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lm

apps: $(B)/corio-http $(B)/corio-load

# The test binary links the apps' objects too, so tests/test_http*.c and
# tests/test_load*.c can run the server and the load generator's parts
# in-process.  The objects come after libcorio.a on the link line, so
# libcorio.a is named once more after them.
$(B)/corio-test: $(HTTP_OBJ) $(LOAD_OBJ)
$(B)/corio-test: LDLIBS += $(HTTP_OBJ) $(LOAD_OBJ) $(B)/libcorio.a -lm
# Some tests run the binaries themselves (signals, the demo's report).
test: $(if $(wildcard apps/http/main.c),$(B)/corio-http) $(if $(wildcard apps/load/main.c),$(B)/corio-load)

DEMO_SECONDS ?= 10
demo: $(B)/corio-http $(B)/corio-load
	DEMO_SECONDS=$(DEMO_SECONDS) scripts/demo.sh $(B)

# The peers written here: a hand-written edge-triggered epoll server (the
# reference) and a libuv one, both on corio-http's parser; Go and uvloop
# peers are built and run by the script.
PEERS_B := $(B)/peers
$(PEERS_B)/epoll-ref: bench/peers/epoll_ref.c apps/http/parser.c apps/http/parser.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ bench/peers/epoll_ref.c apps/http/parser.c $(LDLIBS)

$(PEERS_B)/libuv-http: bench/peers/libuv_http.c apps/http/parser.c apps/http/parser.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ bench/peers/libuv_http.c apps/http/parser.c $(LDLIBS) -luv

bench-peers: $(B)/corio-http $(B)/corio-load
	scripts/install-deps.sh peers
	$(MAKE) B=$(B) $(PEERS_B)/epoll-ref $(PEERS_B)/libuv-http
	bench/peers/run.sh $(B)

.PHONY: apps demo bench-peers
-include $(HTTP_OBJ:.o=.d) $(LOAD_OBJ:.o=.d) $(B)/apps/http/main.d $(B)/apps/load/main.d
