"""corio for Python: echo and HTTP benchmarks against asyncio and uvloop.

    bench.py --client build/cc/py-echo-client [--seconds 2] [--rounds 2]
             [--styles protocol buffered streams sock http] [--conns 10 1]
             [--loops asyncio uvloop corio]

Each measurement starts a fresh server pinned to CPU 0 and runs the C load
generator pinned to CPU 1 for --seconds; loops alternate within each round
so drift on a shared machine hits them alike.  Server CPU time comes from
/proc/<pid>/stat (utime + stime) read around the client's run.  The table
gives the median over rounds: msgs/s, server CPU microseconds per message
(total and user space), the round-trip p99, and CPU per message relative to
uvloop's.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime


def measure(args, loop, style, conns):
    srv = subprocess.Popen([sys.executable, os.path.join(HERE, "servers.py"), "--loop", loop,
                            "--style", style, "--cpu", str(args.server_cpu)],
                           stdout=subprocess.PIPE, text=True)
    try:
        port = int(srv.stdout.readline())
        warm = subprocess.run([args.client, "-p", str(port), "-c", str(conns), "-t", "0.3",
                               "-m", "http" if style == "http" else "echo",
                               "-C", str(args.client_cpu)], capture_output=True, text=True)
        if warm.returncode:
            raise RuntimeError(warm.stderr)
        u0, s0 = cpu_of(srv.pid)
        out = subprocess.run([args.client, "-p", str(port), "-c", str(conns),
                              "-t", str(args.seconds), "-s", str(args.size),
                              "-m", "http" if style == "http" else "echo",
                              "-C", str(args.client_cpu)],
                             capture_output=True, text=True, check=True)
        u1, s1 = cpu_of(srv.pid)
    finally:
        srv.kill()
        srv.wait()
    r = json.loads(out.stdout)
    msgs = max(r["msgs"], 1)
    r["cpu_us"] = ((u1 - u0) + (s1 - s0)) / msgs * 1e6
    r["user_us"] = (u1 - u0) / msgs * 1e6
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--styles", nargs="*", default=["protocol", "buffered", "streams", "sock", "http"])
    ap.add_argument("--conns", nargs="*", type=int, default=[10, 1])
    ap.add_argument("--loops", nargs="*", default=["asyncio", "uvloop", "corio"])
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    res = {}
    for rnd in range(args.rounds):
        for style in args.styles:
            for conns in args.conns:
                order = args.loops if rnd % 2 == 0 else list(reversed(args.loops))
                for loop in order:
                    r = measure(args, loop, style, conns)
                    res.setdefault((style, conns, loop), []).append(r)
                    print(f"round {rnd + 1} {style:9} c={conns:<3} {loop:8} {r['rate']:9.0f} msg/s "
                          f"{r['cpu_us']:6.2f} us/msg  p99 {r['p99_us']:8.1f} us", file=sys.stderr,
                          flush=True)
    med = lambda k, key: statistics.median(x[key] for x in res[k])
    print(f"\n{args.size}-byte messages, {args.seconds:g} s per run, median of {args.rounds} rounds; "
          f"server on CPU {args.server_cpu}, client on CPU {args.client_cpu}")
    print(f"{'style':10} {'conns':>5} {'loop':8} {'msgs/s':>9} {'CPU us/msg':>10} "
          f"{'user us/msg':>11} {'p99 us':>8} {'CPU vs uvloop':>13}")
    for style in args.styles:
        for conns in args.conns:
            base = med((style, conns, "uvloop"), "cpu_us") if "uvloop" in args.loops else None
            for loop in args.loops:
                k = (style, conns, loop)
                cpu = med(k, "cpu_us")
                ratio = f"{cpu / base:.2f}x" if base else "-"
                print(f"{style:10} {conns:5} {loop:8} {med(k, 'rate'):9.0f} {cpu:10.2f} "
                      f"{med(k, 'user_us'):11.2f} {med(k, 'p99_us'):8.1f} {ratio:>13}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{s}/{c}/{l}": v for (s, c, l), v in res.items()}, f, indent=1)


if __name__ == "__main__":
    main()
