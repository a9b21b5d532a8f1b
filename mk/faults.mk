# Reliability under faults, bad input and time (docs/reliability.md).
#
#   make test-faults           the fault walk on both backends, with its report
#   make test-asan-gcc         the suite under ASan+UBSan, built with gcc
#   make test-asan-clang       the same with clang
#   make test-valgrind         the suite under valgrind memcheck (epoll, epoll_wait path)
#   make fuzz-ci               every fuzz target for FUZZ_CI_TIME seconds; fails on a finding
#   make test-hostile          hostile peers against corio-http
#   make soak DURATION=120     corio-http under hostile and normal load, with a report

# The fault-injection seam behind src/sys.h.
LIB_SRC += src/fault.c

# Every object of the library goes into the test binary, referenced or
# not, so the fault walk sees every syscall site there is.
$(B)/corio-test: LDFLAGS += -Wl,--whole-archive
$(B)/corio-test: LDLIBS += -Wl,--no-whole-archive

# ---- The fault walk, with its per-site report ----
FAULT_REPORT := $(B)/fault-report.txt
test-faults: $(B)/corio-test
	@rm -f $(FAULT_REPORT)
	@set -e; for be in $(BACKENDS); do \
	    CORIO_BACKEND=$$be CORIO_FAULT_REPORT=$(FAULT_REPORT) ./$(B)/corio-test fault_; done
	@cat $(FAULT_REPORT)

# ---- Sanitizers: each compiler in its own build directory ----
ASAN_FLAGS := SANITIZE=address,undefined
test-asan-gcc:
	$(MAKE) CC=gcc $(ASAN_FLAGS) B=$(B)-asan-gcc test
test-asan-clang:
	$(MAKE) CC=clang $(ASAN_FLAGS) B=$(B)-asan-clang test

# ---- valgrind memcheck ----
# Over the core suite and the fault walk (TESTS= picks others).  valgrind
# knows no epoll_pwait2 (ENOSYS), so the loop takes its epoll_wait path,
# which is why this runs on epoll only.  Coroutine stacks are registered
# with VALGRIND_STACK_REGISTER (src/stack.c).  The fault walk runs in its
# quick mode here (CORIO_TEST_VALGRIND), and every one of its child
# processes is checked.  Leaks are the runner's and the walk's to find
# (they count every corio allocation, per test and per case): valgrind's
# own leak check would flag the helper processes tests end with _exit().
# valgrind's notes about syscalls it does not know (epoll_pwait2,
# openat2, ...) are filtered out; its exit status is kept.
VALGRIND ?= valgrind --error-exitcode=99 --leak-check=no -q
VALGRIND_TESTS ?= ctx_ co_ timer_ fd_ watcher_ callback_ loop_ fault_
VALGRIND_NOISE := unhandled amd64-linux syscall: (43[5-9]|44[0-9])|You may be able to write your own handler|README_MISSING_SYSCALL_OR_IOCTL|Nevertheless we consider this a bug|valgrind.org/support/bug_reports
test-valgrind: $(B)/corio-test
	@bash -c 'set -o pipefail; CORIO_BACKEND=epoll CORIO_TEST_VALGRIND=1 \
	    $(VALGRIND) ./$(B)/corio-test -t 600 $(or $(TESTS),$(VALGRIND_TESTS)) 2>&1 | \
	    grep -Ev "$(VALGRIND_NOISE)"'

# ---- Fuzzing: a short pass of every target, as CI runs it ----
# Unlike `make fuzz`, a finding (a crash, a leak, a timeout) fails the
# target, and a target without a committed seed corpus fails too.
FUZZ_CI_TIME ?= 30
fuzz-ci: fuzz-build
	@mkdir -p $(FUZZ_B)/findings
	@set -e; for f in $(FUZZ_BIN); do n=$${f##*/fuzz_}; \
	    if [ -z "$$(ls -A tests/fuzz/corpus/$$n 2>/dev/null)" ]; then \
	        echo "fuzz $$n: no seed corpus in tests/fuzz/corpus/$$n"; exit 1; fi; \
	    mkdir -p $(FUZZ_B)/corpus/$$n; \
	    log=$(FUZZ_B)/fuzz-$$n.log; \
	    if ! $$f -max_total_time=$(FUZZ_CI_TIME) -timeout=10 -rss_limit_mb=2048 \
	        -print_final_stats=1 -artifact_prefix=$(FUZZ_B)/findings/$$n- \
	        $(FUZZ_B)/corpus/$$n tests/fuzz/corpus/$$n >$$log 2>&1; then \
	        tail -40 $$log; echo "fuzz $$n: FINDING (see $(FUZZ_B)/findings/$$n-*)"; exit 1; fi; \
	    echo "fuzz $$n: $$(grep -E 'stat::number_of_executed_units' $$log | awk '{print $$2}') runs in $(FUZZ_CI_TIME) s, $$(grep -E 'stat::average_exec_per_sec' $$log | awk '{print $$2}')/s, no finding"; \
	done

# ---- Hostile peers and soak, against corio-http ----
HOSTILE_BIN := $(B)/corio-hostile
$(HOSTILE_BIN): tests/hostile/hostile.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

test-hostile: $(HOSTILE_BIN) $(B)/corio-http
	./$(HOSTILE_BIN) suite --server ./$(B)/corio-http

DURATION ?= 120
soak: $(HOSTILE_BIN) $(B)/corio-http
	scripts/soak.sh $(B) $(DURATION)

.PHONY: test-faults test-asan-gcc test-asan-clang test-valgrind fuzz-ci test-hostile soak
