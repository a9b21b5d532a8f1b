# corio for Python: an asyncio event loop in C (docs/python.md).
#
#   make python          builds python/corio/_corio*.so against $(B)/libcorio.a
#   make test-python     our behaviour suite on asyncio, uvloop and corio, then
#                        CPython's test_asyncio on corio (strict expected-failure list)
#   make test-python-compare   test_asyncio on stock asyncio and uvloop as well
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
	$(PYTHON) python/tests/asyncio_harness.py --loop corio --jobs $(PY_JOBS) --timeout $(PY_TIMEOUT)

test-python-compare: python
	$(PYTHON) python/tests/asyncio_harness.py --loop asyncio --jobs $(PY_JOBS) --timeout $(PY_TIMEOUT)
	$(PYTHON) python/tests/asyncio_harness.py --loop uvloop --jobs $(PY_JOBS) --timeout $(PY_TIMEOUT)

BENCH_PY_TIME ?= 2
bench-python: python $(B)/py-echo-client
	$(PYTHON) python/bench/bench.py --client $(B)/py-echo-client --seconds $(BENCH_PY_TIME)

$(B)/py-echo-client: python/bench/echo_client.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -pthread -o $@ $< -lm

.PHONY: python test-python test-python-compare bench-python
