# Metrics: the snapshot API, kernel readers, corio-top.
LIB_SRC += src/stats.c src/kstats.c

# corio-top: the terminal view over GET /stats (apps/top/).
$(B)/corio-top: $(B)/apps/top/main.o $(B)/libcorio.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The server corio-top's screen test runs against (tests/top/).
$(B)/tests/top/stats_server: $(B)/tests/top/stats_server.o $(B)/libcorio.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

top: $(B)/corio-top

# corio-top under tmux against a live server, its screen checked.
test-top: $(B)/corio-top $(B)/tests/top/stats_server
	tests/top/run.sh $(B)

.PHONY: top test-top
-include $(B)/apps/top/main.d $(B)/tests/top/stats_server.d

# `make test` runs the screen test too (a few seconds; needs tmux).
test: test-top

# The overhead benchmark: corio-http's plaintext with the counters and
# with them compiled out (-DCORIO_NO_STATS), one loop each, under wrk, in
# alternating rounds.   make bench-stats [STATS_ROUNDS=3 STATS_SECONDS=3]
STATS_OFF_B   := $(B)-nostats
STATS_ROUNDS  ?= 3
STATS_SECONDS ?= 3
bench-stats: $(B)/corio-http
	$(MAKE) B=$(STATS_OFF_B) EXTRA_CFLAGS=-DCORIO_NO_STATS $(STATS_OFF_B)/corio-http
	tests/top/overhead.sh "$(B)/corio-http -l 127.0.0.1:0 -t 1 -q" \
	    "$(STATS_OFF_B)/corio-http -l 127.0.0.1:0 -t 1 -q" $(STATS_ROUNDS) $(STATS_SECONDS)

.PHONY: bench-stats
