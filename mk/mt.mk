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
