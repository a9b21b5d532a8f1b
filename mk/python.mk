# corio for Python: an asyncio event loop in C (docs/python.md).
#
#   make python          builds python/corio/_corio*.so against $(B)/libcorio.a
#   make test-python     our behaviour suite on asyncio, uvloop and corio (and corio
#                        on the poll backend), then CPython's test_asyncio on corio
#                        (strict expected-failure list)
#   make test-python-compare   test_asyncio on stock asyncio and uvloop as well
#   make test-python-asan      the extension and the library under ASan+UBSan (LD_PRELOAD)
#   make bench-python    echo and HTTP servers on asyncio, uvloop and corio,
#                        alternating rounds, server and client pinned to one CPU each
#
# Everything comes from Debian's packages (scripts/install-deps.sh python):
# /usr/bin/python3 (3.11) with python3-dev, setuptools, uvloop and the test suite.

PYTHON     ?= /usr/bin/python3
PY_TIMEOUT ?= 30
PY_JOBS    ?= 2
PY_EXT_DEPS := $(wildcard python/corio/*.c python/corio/*.h) python/setup.py

python/.built-$(notdir $(B)): $(B)/libcorio.a $(PY_EXT_DEPS)
	@scripts/install-deps.sh python
	cd python && CORIO_LIB=$(abspath $(B)/libcorio.a) $(PYTHON) setup.py -q build_ext --inplace \
	    --build-temp $(abspath $(B))/python-ext
	@touch $@

python: python/.built-$(notdir $(B))

test-python: python
	$(PYTHON) python/tests/behaviour.py --loops asyncio uvloop corio
	CORIO_BACKEND=poll $(PYTHON) python/tests/behaviour.py --loops corio
	$(PYTHON) python/tests/asyncio_harness.py --loop corio --jobs $(PY_JOBS) --timeout $(PY_TIMEOUT)

# The extension built with -fsanitize=address,undefined into its own folder,
# against a library built the same way; python3 itself is not instrumented,
# so the runtimes are preloaded and leak checks (CPython's own) are off.
PY_ASAN_B := build/python-asan-ext
PY_ASAN_ENV := LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
               ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1
test-python-asan:
	$(MAKE) B=$(PY_ASAN_B) SANITIZE=address,undefined $(PY_ASAN_B)/libcorio.a
	@rm -rf $(PY_ASAN_B)/pkg && mkdir -p $(PY_ASAN_B)/pkg/tests && cp -r python/corio python/setup.py $(PY_ASAN_B)/pkg/ \
	    && rm -f $(PY_ASAN_B)/pkg/corio/*.so && cp python/tests/*.py python/tests/*.txt $(PY_ASAN_B)/pkg/tests/
	cd $(PY_ASAN_B)/pkg && CORIO_ROOT=$(CURDIR) CORIO_LIB=$(abspath $(PY_ASAN_B)/libcorio.a) \
	    CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1" LDFLAGS="-fsanitize=address,undefined" \
	    $(PYTHON) setup.py -q build_ext --inplace --build-temp $(abspath $(PY_ASAN_B))/ext
	$(PY_ASAN_ENV) $(PYTHON) $(PY_ASAN_B)/pkg/tests/behaviour.py --loops corio
	$(PY_ASAN_ENV) $(PYTHON) $(PY_ASAN_B)/pkg/tests/asyncio_harness.py --loop corio --jobs $(PY_JOBS) \
	    --timeout 60 --log $(abspath $(PY_ASAN_B))/asyncio-asan.log \
	    --modules test_events test_streams test_sock_lowlevel test_sendfile test_ssl test_sslproto \
	        test_buffered_proto test_server test_subprocess test_tasks test_unix_events

test-python-compare: python
	$(PYTHON) python/tests/asyncio_harness.py --loop asyncio --jobs $(PY_JOBS) --timeout $(PY_TIMEOUT)
	$(PYTHON) python/tests/asyncio_harness.py --loop uvloop --jobs $(PY_JOBS) --timeout $(PY_TIMEOUT)

BENCH_PY_TIME ?= 2
bench-python: python $(B)/py-echo-client
	$(PYTHON) python/bench/bench.py --client $(B)/py-echo-client --seconds $(BENCH_PY_TIME)

$(B)/py-echo-client: python/bench/echo_client.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -pthread -o $@ $< -lm

.PHONY: python test-python test-python-compare test-python-asan bench-python
