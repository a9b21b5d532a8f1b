# Many loops, many processes, idle connections without stacks (mt):
# parking, thread groups and cross-loop calls, servers, prefork; the
# ThreadSanitizer target and the massive-connection benchmarks.
LIB_SRC += src/park.c src/mt.c src/prefork.c

# The mt tests alone, linked without the other areas' tests (quick to
# rebuild while working on this area; `make test` runs them with the rest).
MT_TEST_SRC := tests/test_park.c tests/test_mt.c tests/test_prefork.c tests/runner.c
MT_TEST_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard $(MT_TEST_SRC)))

$(B)/corio-test-mt: $(MT_TEST_OBJ) $(B)/libcorio.a
	$(CC) $(LDFLAGS) -o $@ $(MT_TEST_OBJ) $(B)/libcorio.a $(LDLIBS) -lm

test-mt: $(B)/corio-test-mt
	@set -e; for be in $(BACKENDS); do CORIO_BACKEND=$$be ./$(B)/corio-test-mt $(TESTS); done

.PHONY: test-mt

# ThreadSanitizer over the tests that use threads: cross-loop calls and
# their stress run, groups of loops, servers, prefork, posts, the blocking
# pool.  Coroutine switches are annotated as TSan fibers (co.c, stack.c).
# `make test-tsan TSAN_CC=clang` for clang; TESTS= picks other tests.
TSAN_CC    ?= $(CC)
TSAN_B     := build/tsan-$(notdir $(TSAN_CC))
TSAN_TESTS ?= mt_ park_ prefork_ loop_post pool_ sync_ resolve_ signal_
TSAN_RUN   := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $(TSAN_OPTIONS)"

test-tsan:
	$(MAKE) CC=$(TSAN_CC) B=$(TSAN_B) SANITIZE=thread $(TSAN_B)/corio-test
	@set -e; for be in $(BACKENDS); do \
	    CORIO_BACKEND=$$be $(TSAN_RUN) ./$(TSAN_B)/corio-test -t 120 $(or $(TESTS),$(TSAN_TESTS)); done

.PHONY: test-tsan

# ---- Massive connections (bench/massive): benchmarks, not CI tests ----
#
#   make bench-c100k        100,000 idle keep-alive connections on corio-http
#                           in prefork mode, an active fraction under load;
#                           memory per connection, connect rate, latency
#   make bench-c1m          the same with 1,000,000 (takes the whole machine)
#   make bench-massive      C100K, the idle-memory peers (nginx, Go, libuv,
#                           corio's own floor) and the 1-to-2-loop scaling table
#
# The scripts raise the sysctls they need and restore them on exit.
MASSIVE_B := $(B)/massive

$(MASSIVE_B)/corio-prefork: bench/massive/prefork_exec.c $(B)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libcorio.a $(LDLIBS)

$(MASSIVE_B)/corio-idle: bench/massive/idle_corio.c $(B)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libcorio.a $(LDLIBS)

$(MASSIVE_B)/uv-idle: bench/massive/peers/uv_idle.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -o $@ $< -luv

$(MASSIVE_B)/go-idle: bench/massive/peers/go_idle.go
	@mkdir -p $(dir $@)
	cd bench/massive/peers && GOCACHE=$(abspath $(MASSIVE_B))/gocache GO111MODULE=off GOFLAGS= \
	    go build -o $(abspath $@) go_idle.go

MASSIVE_BIN := $(B)/corio-http $(B)/corio-load $(MASSIVE_B)/corio-prefork $(MASSIVE_B)/corio-idle
MASSIVE_PEERS := $(MASSIVE_B)/uv-idle $(MASSIVE_B)/go-idle

bench-c100k: $(MASSIVE_BIN)
	bench/massive/massive.sh -b $(B) -n 100000

bench-c1m: $(MASSIVE_BIN)
	bench/massive/massive.sh -b $(B) -n 1000000

bench-massive: $(MASSIVE_BIN)
	scripts/install-deps.sh peers
	$(MAKE) B=$(B) $(MASSIVE_PEERS)
	bench/massive/massive.sh -b $(B) -n 100000
	bench/massive/massive.sh -b $(B) --peers -n 100000
	bench/massive/scaling.sh -b $(B)

.PHONY: bench-c100k bench-c1m bench-massive
