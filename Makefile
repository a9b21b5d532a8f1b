# corio: one Makefile.  Common targets:
#
#   make                 the static and shared libraries
#   make test            the suite, on the epoll and on the poll backend
#   make SANITIZE=address,undefined test
#   make CTX=ucontext test       the portable context switch
#   make test-aarch64    cross-built core tests under qemu-user
#   make bench           benchmarks, each against a reference in the same run
#   make install PREFIX=/usr/local
#
# Objects go to build/<compiler>[-<sanitizers>][-uc], so switching flags
# never mixes objects built with different ones.

CC       ?= cc
PREFIX   ?= /usr/local
SANITIZE ?=
CTX      ?= asm
OPT      ?= -O2

comma := ,
empty :=
space := $(empty) $(empty)

MACHINE := $(shell $(CC) -dumpmachine)
ARCH    := $(firstword $(subst -, ,$(MACHINE)))
B       ?= build/$(notdir $(CC))$(if $(SANITIZE),-$(subst $(comma),_,$(SANITIZE)))$(if $(filter ucontext,$(CTX)),-uc)

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
            -Wno-unused-parameter -Wformat=2 -Wundef
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -fPIC -pthread $(WARN) -fno-omit-frame-pointer $(EXTRA_CFLAGS)
LDLIBS   += -pthread
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
ifeq ($(CTX),ucontext)
CPPFLAGS += -DCORIO_CTX_UCONTEXT
endif

# ---- The library ----
LIB_SRC := src/loop.c src/co.c src/fd.c src/io.c src/timer.c src/stack.c src/sys.c \
           src/backend-epoll.c src/backend-poll.c src/ctx/ctx.c
ifneq ($(CTX),ucontext)
ifneq ($(filter x86_64 aarch64,$(ARCH)),)
LIB_ASM := src/ctx/$(ARCH).S
endif
endif

# Each area of the project adds its sources, tests and targets in mk/<area>.mk.
include $(sort $(wildcard mk/*.mk))
LIB_SRC := $(wildcard $(LIB_SRC)) # an area whose file is not written yet must not break the others

LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(LIB_ASM:%.S=$(B)/%.o)

all: $(B)/libcorio.a $(B)/libcorio.so

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libcorio.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/libcorio.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libcorio.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- Tests ----
TEST_SRC := $(wildcard tests/test_*.c) tests/runner.c
TEST_ASM := $(wildcard tests/regs_$(ARCH).S)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o) $(TEST_ASM:%.S=$(B)/%.o)

$(B)/corio-test: $(TEST_OBJ) $(B)/libcorio.a
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(B)/libcorio.a $(LDLIBS) -lm

# The public header must compile as C11 and as C++ on its own.
check-header:
	@printf '#include "corio.h"\nint main(void){return 0;}\n' | $(CC) -std=c11 -Iinclude -Wall -Wextra -pedantic -fsyntax-only -x c -
	@printf '#include "corio.h"\nint main(){return 0;}\n' | $(CXX) -std=c++17 -Iinclude -Wall -Wextra -fsyntax-only -x c++ -

BACKENDS ?= epoll poll
# What the suite needs beyond a compiler (promtool, tmux, ...): installed
# from Debian's packages on first use, a quick no-op afterwards.
deps:
	@scripts/install-deps.sh base

test: deps $(B)/corio-test examples check-header
	@set -e; for be in $(BACKENDS); do CORIO_BACKEND=$$be ./$(B)/corio-test $(TESTS); done

# Cross-built for aarch64 and run under qemu-user (Debian: gcc-aarch64-linux-gnu, qemu-user).
AARCH64_CC ?= aarch64-linux-gnu-gcc
AARCH64_B  := build/$(notdir $(AARCH64_CC))
test-aarch64:
	$(MAKE) CC=$(AARCH64_CC) B=$(AARCH64_B) SANITIZE= $(AARCH64_B)/corio-test
	@set -e; for be in $(BACKENDS); do \
	    CORIO_BACKEND=$$be QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 $(AARCH64_B)/corio-test \
	        $(or $(TESTS),ctx_ co_ timer_ fd_ watcher_ callback_ loop_); done

# ---- Examples ----
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(B)/examples/%)

$(B)/examples/%: examples/%.c $(B)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libcorio.a $(LDLIBS)

examples: $(EXAMPLE_BIN)

# ---- Benchmarks ----
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/%)

$(B)/bench_%: bench/bench_%.c $(B)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libcorio.a $(LDLIBS)

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; ./$$b || exit 1; done

# ---- Fuzzing (libFuzzer, clang) ----
# Each tests/fuzz/fuzz_<name>.c is one target, with its seed corpus in
# tests/fuzz/corpus/<name>/.  `make fuzz FUZZ_TIME=60` runs each for that
# many seconds; findings land in build/fuzz/findings/.
FUZZ_CC   ?= clang
FUZZ_TIME ?= 30
FUZZ_B    := build/fuzz
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_B)/%)
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

# In the sub-make B is FUZZ_B: there the ordinary library rule must build
# it, or this rule would call itself forever.
ifneq ($(B),$(FUZZ_B))
$(FUZZ_B)/libcorio.a: $(LIB_SRC) $(LIB_ASM)
	$(MAKE) CC=$(FUZZ_CC) B=$(FUZZ_B) SANITIZE=address,undefined \
	    EXTRA_CFLAGS=-fsanitize=fuzzer-no-link $(FUZZ_B)/libcorio.a
endif

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_B)/libcorio.a
	$(FUZZ_CC) $(CPPFLAGS) -std=c11 -g -O1 $(FUZZ_FLAGS) -o $@ $< $(FUZZ_B)/libcorio.a -pthread

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@mkdir -p $(FUZZ_B)/findings
	@set -e; for f in $(FUZZ_BIN); do n=$${f##*/fuzz_}; \
	    mkdir -p $(FUZZ_B)/corpus/$$n; \
	    echo "== fuzz $$n for $(FUZZ_TIME)s"; \
	    log=$(FUZZ_B)/fuzz-$$n.log; \
	    if ! $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_B)/findings/$$n- $(FUZZ_B)/corpus/$$n tests/fuzz/corpus/$$n \
	        >$$log 2>&1; then tail -40 $$log; echo "fuzz $$n: FINDING"; exit 1; fi; \
	    grep -E "^stat::(number_of_executed_units|average_exec_per_sec)" $$log; \
	done

# ---- valgrind memcheck, sanitizers, fault walk, hostile peers, soak: mk/faults.mk ----

# ---- Install ----
install: $(B)/libcorio.a $(B)/libcorio.so
	install -d $(DESTDIR)$(PREFIX)/include/corio $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/corio.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/corio/*.h $(DESTDIR)$(PREFIX)/include/corio/
	install -m 644 $(B)/libcorio.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libcorio.so $(DESTDIR)$(PREFIX)/lib/libcorio.so.0
	ln -sf libcorio.so.0 $(DESTDIR)$(PREFIX)/lib/libcorio.so
	sed -e 's|@PREFIX@|$(PREFIX)|' corio.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/corio.pc

clean:
	rm -rf build

.PHONY: deps check-header all test test-aarch64 bench install clean examples fuzz fuzz-build test-valgrind
-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
