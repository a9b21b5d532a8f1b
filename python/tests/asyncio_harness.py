"""Runs CPython's own test_asyncio (Debian: libpython3.11-testsuite) against
an event loop: corio (the default), uvloop, or stock asyncio.

    /usr/bin/python3 python/tests/asyncio_harness.py [--loop corio|uvloop|asyncio]
        [--jobs N] [--timeout SECS] [--modules test_events test_tasks ...]

- Each module runs in its own process; a test that prints no result within
  --timeout seconds is recorded as a hang, the process is killed, and the
  module goes on from the next test in a fresh process.
- The policy is swapped (also under asyncio.DefaultEventLoopPolicy, so the
  modules' tearDownModule cannot swap it back), and every loop-parametrised
  test class (create_event_loop / new_loop: EventLoopTestsMixin,
  SubprocessTestsMixin, BaseSockTestsMixin, SendfileMixin, BaseStartServer,
  BaseTestBufferedProtocol, BaseStartTLS, ...) makes the loop under test.
  Those classes come in one copy per selector (epoll, poll, select); the
  epoll copy runs and the others are skipped, for every loop alike.
- python/tests/asyncio_expected.txt lists the tests expected to fail on
  corio, each with its reason.  The list is strict: an unlisted failure
  and a listed test that passes both fail the run (with --loop corio).

It prints one line per module and the totals.
"""
import argparse
import json
import os
import queue
import selectors
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
EXPECTED = os.path.join(HERE, "asyncio_expected.txt")

MODULES = [
    "test_base_events", "test_buffered_proto", "test_context", "test_events",
    "test_futures", "test_futures2", "test_locks", "test_pep492", "test_protocols",
    "test_queues", "test_runners", "test_selector_events", "test_sendfile",
    "test_server", "test_sock_lowlevel", "test_ssl", "test_sslproto", "test_streams",
    "test_subprocess", "test_taskgroups", "test_tasks", "test_threads", "test_timeouts",
    "test_transports", "test_unix_events", "test_waitfor",
]
# Windows only: nothing of them runs here.
SKIPPED_MODULES = ["test_proactor_events", "test_windows_events", "test_windows_utils"]


# ---------------------------------------------------------------- worker side

def _loop_under_test(name):
    import asyncio
    if name == "corio":
        sys.path.insert(0, PYDIR)
        import corio
        return corio.EventLoopPolicy, corio.new_event_loop
    if name == "uvloop":
        import uvloop
        if os.environ.get("CORIO_HARNESS_UVLOOP_SHIM", "1") == "1":
            # uvloop lacks _default_executor, which test_utils.close_loop()
            # reads after every test: without this one attribute nearly
            # every test fails in tearDown, which says nothing of the loop.
            class Loop(uvloop.Loop):
                _default_executor = None

            class Policy(uvloop.EventLoopPolicy):
                def _loop_factory(self):
                    return Loop()

            return Policy, Loop
        return uvloop.EventLoopPolicy, uvloop.new_event_loop
    return asyncio.DefaultEventLoopPolicy, asyncio.SelectorEventLoop


# The loop-parametrised classes: each makes its loop in create_event_loop()
# or new_loop().  Only these are pointed at the loop under test; classes
# with white-box loops (mocks, test_utils.TestLoop) keep their own.
PATCHED = {"EPollEventLoopTests", "SelectorStartServerTests",
           "BufferedProtocolSelectorTests", "SelectorStartTLSTests"}
SELECTOR_COPIES = {"PollEventLoopTests", "SelectEventLoopTests"}


def _patch_classes(module, factory):
    import unittest
    for obj in list(vars(module).values()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
            continue
        own = vars(obj)
        hook = "create_event_loop" if "create_event_loop" in own else (
            "new_loop" if "new_loop" in own else None)
        if hook is None:
            continue
        if obj.__name__ in SELECTOR_COPIES:
            unittest.skip("selector variant: the EPoll copy runs")(obj)
        elif obj.__name__ in PATCHED:
            setattr(obj, hook, lambda self: factory())


def worker(loop_name, module_name, skip):
    import asyncio
    import unittest
    base_policy, base_factory = _loop_under_test(loop_name)
    made = [0]  # loops under test made during the current test

    def factory():
        made[0] += 1
        return base_factory()

    class policy(base_policy):
        def new_event_loop(self):
            made[0] += 1
            return super().new_event_loop()

    asyncio.DefaultEventLoopPolicy = policy
    asyncio.set_event_loop_policy(policy())
    mod = __import__("test.test_asyncio." + module_name, fromlist=["x"])
    _patch_classes(mod, factory)
    suite = unittest.defaultTestLoader.loadTestsFromModule(mod)

    def prune(s):
        out = unittest.TestSuite()
        for t in s:
            if isinstance(t, unittest.TestSuite):
                out.addTest(prune(t))
            elif t.id() not in skip:
                out.addTest(t)
        return out

    suite = prune(suite)
    out = sys.__stdout__

    def emit(kind, tid, status=""):
        out.write(json.dumps([kind, tid, status]) + "\n")
        out.flush()

    class Result(unittest.TestResult):
        def startTest(self, test):
            super().startTest(test)
            self._status = "pass"
            made[0] = 0
            emit("start", test.id())

        def stopTest(self, test):
            super().stopTest(test)
            # "+loop": the test ran on a loop under test (policy or factory).
            emit("end", test.id(), self._status + ("+loop" if made[0] else ""))

        def addError(self, test, err):
            super().addError(test, err)
            if not hasattr(self, "_status") or isinstance(test, unittest.case._SubTest):
                pass
            if test.__class__.__name__ == "_ErrorHolder":
                emit("end", test.id(), "error")
                return
            self._status = "error"
            self._log(test, err)

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._status = "fail"
            self._log(test, err)

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                self._status = "fail"
                self._log(subtest, err)

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._status = "skip"

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self._status = "pass"

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._status = "fail"

        def _log(self, test, err):
            text = self._exc_info_to_string(err, test)
            sys.stderr.write(f"--- {test.id()}\n{text}\n")

    suite.run(Result())
    emit("done", "")


# ---------------------------------------------------------------- parent side

def load_expected():
    exp = {}
    if not os.path.exists(EXPECTED):
        return exp
    with open(EXPECTED) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            tid, _, reason = line.partition(" ")
            exp[tid] = reason.strip().lstrip("#").strip()
    return exp


def run_module(args, module, log, on_loop):
    """Runs one module, restarting after hangs and crashes.  Returns
    {test id: status} with status pass/fail/error/skip/hang/crash; adds to
    on_loop the tests that made a loop under test."""
    results = {}
    while True:
        before = len(results)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", module,
               "--loop", args.loop, "--skip", json.dumps(sorted(results))]
        env = dict(os.environ, PYTHONFAULTHANDLER="1")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                             text=True, env=env, start_new_session=True)
        lines = queue.Queue()

        def reader():
            for line in p.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        current, outcome = None, None
        while outcome is None:
            try:
                line = lines.get(timeout=args.timeout)
            except queue.Empty:
                outcome = "timeout"
                break
            if line is None:
                outcome = "exit"
                break
            try:
                kind, tid, status = json.loads(line)
            except ValueError:
                continue
            if kind == "start":
                current = tid
            elif kind == "end":
                status, _, on = status.partition("+")
                results[tid] = status
                if on:
                    on_loop.add(tid)
                current = None
            elif kind == "done":
                outcome = "done"
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass
        p.wait()
        if outcome == "done":
            return results
        if current:
            results[current] = "hang" if outcome == "timeout" else "crash"
            on_loop.add(current)  # a hang or crash counts against the loop
            log.write(f"--- {current}\n{results[current].upper()}: "
                      f"{'no result in %ss' % args.timeout if outcome == 'timeout' else 'the worker died'}\n")
            continue
        if len(results) == before:  # died or stalled outside any test
            results[f"test.test_asyncio.{module}::<{outcome}>"] = "error"
            return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", default="corio", choices=["corio", "uvloop", "asyncio"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--modules", nargs="*")
    ap.add_argument("--log", default=None)
    ap.add_argument("--worker")
    ap.add_argument("--skip", default="[]")
    ap.add_argument("--json", help="write the per-test results here")
    args = ap.parse_args()
    if args.worker:
        return worker(args.loop, args.worker, set(json.loads(args.skip)))

    modules = args.modules or MODULES
    logpath = args.log or os.path.join(PYDIR, "results", f"asyncio-{args.loop}.log")
    os.makedirs(os.path.dirname(logpath), exist_ok=True)
    expected = load_expected() if args.loop == "corio" else {}
    all_results = {}
    on_loop = set()
    t0 = time.monotonic()
    with open(logpath, "w") as log:
        pending = list(modules)
        lock = threading.Lock()

        def runner():
            while True:
                with lock:
                    if not pending:
                        return
                    m = pending.pop(0)
                mlog_path = logpath + "." + m
                with open(mlog_path, "w") as mlog:
                    res = run_module(args, m, mlog, on_loop)
                with lock:
                    all_results.update(res)
                    c = count(res)
                    o = count({t: s for t, s in res.items() if t in on_loop})
                    print(f"{m:22} run {c['run']:4}  pass {c['pass']:4}  fail {c['fail']:3}  "
                          f"skip {c['skip']:3}  hang {c['hang']}   on the loop: "
                          f"run {o['run']:4}  pass {o['pass']:4}", flush=True)
                    with open(mlog_path) as f:
                        log.write(f.read())
                    os.unlink(mlog_path)

        threads = [threading.Thread(target=runner) for _ in range(max(1, args.jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    c = count(all_results)
    o = count({t: s for t, s in all_results.items() if t in on_loop})
    unexpected_fail = sorted(t for t, s in all_results.items()
                             if s in ("fail", "error", "hang", "crash") and t not in expected)
    unexpected_pass = sorted(t for t, s in all_results.items() if s == "pass" and t in expected)
    print(f"\nloop {args.loop}: {c['run']} run, {c['pass']} passed, {c['fail']} failed "
          f"({c['hang']} hangs, {c['crash']} crashes), {c['skip']} skipped "
          f"in {time.monotonic() - t0:.0f}s")
    print(f"on the {args.loop} loop itself (tests that made one): {o['run']} run, "
          f"{o['pass']} passed, {o['fail']} failed ({o['hang']} hangs, {o['crash']} crashes)")
    if expected:
        exp_fail = sum(1 for t, s in all_results.items() if t in expected and s != "pass" and s != "skip")
        print(f"expected failures: {exp_fail} (listed {len(expected)}), "
              f"unexpected failures: {len(unexpected_fail)}, unexpected passes: {len(unexpected_pass)}")
        for t in unexpected_fail:
            print(f"  UNEXPECTED {all_results[t].upper()}: {t}")
        for t in unexpected_pass:
            print(f"  UNEXPECTED PASS: {t}")
    print(f"log: {logpath}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": all_results, "on_loop": sorted(on_loop)}, f, indent=0,
                      sort_keys=True)
    if args.loop == "corio" and not args.modules and (unexpected_fail or unexpected_pass):
        return 1
    if args.loop == "corio" and args.modules and unexpected_fail:
        return 1
    return 0


def count(res):
    c = {"run": 0, "pass": 0, "fail": 0, "skip": 0, "hang": 0, "crash": 0}
    for s in res.values():
        if s == "skip":
            c["skip"] += 1
            continue
        c["run"] += 1
        if s == "pass":
            c["pass"] += 1
        else:
            c["fail"] += 1
            if s in ("hang", "crash"):
                c[s] += 1
    return c


if __name__ == "__main__":
    sys.exit(main())
