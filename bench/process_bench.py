"""Subprocess benchmark: casyncio vs stdlib asyncio vs uvloop, side by side.

Spawn a child, communicate() with it and reap it, over and over, with a few
children in flight at once: `true` (no data: spawn, exit detection, reaping)
and `cat` echoing 1 MiB (the pipe transports). The figure is the parent's
CPU time (user+system, children excluded) per child, and wall-clock children
per second; ratios are to uvloop. Each (benchmark, loop) pair runs in a
fresh process, interleaved, best of --repeat.

    python bench/process_bench.py [--repeat 3] [--scale 1.0]
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time

from loop_bench import LOOPS, child_runs, make_loop
from results import record

PAYLOAD = os.urandom(1 << 20)
CONCURRENCY = 4
BENCHMARKS = {
    "spawn+communicate true": (["true"], b"", 400),
    "spawn+communicate 1 MiB cat": (["cat"], PAYLOAD, 150),
}


async def spawner(argv, data, n):
    pipe = asyncio.subprocess.PIPE
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=pipe if data else None, stdout=pipe)
        out, _ = await proc.communicate(data or None)
        assert len(out) == len(data) and proc.returncode == 0


def measure(loop, argv, data, n):
    per = max(1, n // CONCURRENCY)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    loop.run_until_complete(asyncio.gather(
        *(spawner(argv, data, per) for _ in range(CONCURRENCY))))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    done = per * CONCURRENCY
    return cpu / done, done / wall


def child(name, kind, scale):
    argv, data, n = BENCHMARKS[name]
    loop = make_loop(kind)
    asyncio.set_event_loop(loop)
    measure(loop, argv, data, CONCURRENCY * 2)  # warm-up
    print(json.dumps(measure(loop, argv, data, int(n * scale))))
    loop.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.scale)
    cpu, rate = {}, {}
    for name, kind, (c, r) in child_runs(__file__, BENCHMARKS, args.repeat,
                                         args.scale):
        cpu[name, kind] = min(cpu.get((name, kind), c), c)
        rate[name, kind] = max(rate.get((name, kind), 0), r)
    print(f"Python {sys.version.split()[0]}, {CONCURRENCY} children in "
          f"flight, best of {args.repeat}: parent CPU ms per child "
          f"(lower is better), children/s")
    print(f"{'benchmark':<29}{'casyncio':>10}{'asyncio':>10}{'uvloop':>10}"
          f"{'vs uvloop':>11}{'children/s c/a/u':>22}")
    for name in BENCHMARKS:
        c, a, u = (cpu[name, k] * 1000 for k in LOOPS)
        rates = "/".join(f"{rate[name, k]:.0f}" for k in LOOPS)
        print(f"{name:<29}{c:>10.3f}{a:>10.3f}{u:>10.3f}{c / u:>10.2f}x"
              f"{rates:>22}")
        record("subprocess", name, "parent CPU ms per child",
               {k: cpu[name, k] * 1000 for k in LOOPS})


if __name__ == "__main__":
    main()
