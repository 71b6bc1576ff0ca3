"""Loop micro-benchmarks: casyncio vs stdlib asyncio vs uvloop, side by side.

Each (benchmark, loop) pair runs in a fresh child process, several times
interleaved; the best run counts. Prints ops/s and the ratios to uvloop and
to stdlib. Absolute numbers on a shared machine are noise; ratios are not.

    python bench/loop_bench.py [--repeat 3] [--scale 1.0] [--only NAME]
"""
import argparse
import asyncio
import json
import subprocess
import sys
import time

from results import progress, record


def child_runs(script, names, repeat, scale):
    """Runs `script --child NAME KIND` in a fresh process for every name
    and loop, interleaved, repeat rounds; yields (name, kind, the JSON the
    child printed) for each run."""
    section = script.rsplit("/", 1)[-1]
    for i in range(1, repeat + 1):
        for name in names:
            progress(section, f"round {i}/{repeat}: {name}")
            for kind in LOOPS:
                out = subprocess.run(
                    [sys.executable, script, "--child", name, kind,
                     "--scale", str(scale)],
                    capture_output=True, text=True, check=True)
                yield name, kind, json.loads(out.stdout)


def make_loop(kind):
    if kind == "casyncio":
        import casyncio
        return casyncio.new_event_loop()
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.SelectorEventLoop()


def bench_call_soon(loop, n):
    """100 concurrent call_soon chains, n callbacks in all."""
    remaining = [n]

    def step():
        remaining[0] -= 1
        if remaining[0] > 0:
            loop.call_soon(step)
        elif remaining[0] == 0:
            loop.stop()

    for _ in range(100):
        loop.call_soon(step)
    t0 = time.perf_counter()
    loop.run_forever()
    return n, time.perf_counter() - t0


def bench_call_later_cancel(loop, n):
    """call_later far in the future, then cancel, n times."""
    def noop():
        pass

    t0 = time.perf_counter()
    for _ in range(n):
        loop.call_later(1000, noop).cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    return n, time.perf_counter() - t0


def bench_sleep0(loop, n):
    """await asyncio.sleep(0) in 100 tasks, n sleeps in all."""
    per_task = n // 100

    async def worker():
        for _ in range(per_task):
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(worker() for _ in range(100)))

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return per_task * 100, time.perf_counter() - t0


def bench_future_pingpong(loop, n):
    """call_soon(f.set_result), await f, n times."""
    async def main():
        for _ in range(n):
            f = loop.create_future()
            loop.call_soon(f.set_result, None)
            await f

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return n, time.perf_counter() - t0


def bench_create_task_gather(loop, n):
    """create_task + gather of n trivial coroutines."""
    async def trivial():
        pass

    async def main():
        await asyncio.gather(*(loop.create_task(trivial())
                               for _ in range(n)))

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return n, time.perf_counter() - t0


def bench_queue(loop, n):
    """asyncio.Queue put/get between a producer and a consumer task."""
    async def main():
        q = asyncio.Queue(maxsize=100)

        async def producer():
            for i in range(n):
                await q.put(i)

        async def consumer():
            for _ in range(n):
                await q.get()

        await asyncio.gather(producer(), consumer())

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return n, time.perf_counter() - t0


BENCHMARKS = {
    "call_soon chains": (bench_call_soon, 1_000_000),
    "call_later+cancel": (bench_call_later_cancel, 300_000),
    "sleep(0) x100 tasks": (bench_sleep0, 300_000),
    "future ping-pong": (bench_future_pingpong, 200_000),
    "create_task+gather": (bench_create_task_gather, 200_000),
    "Queue put/get": (bench_queue, 200_000),
}
LOOPS = ("casyncio", "asyncio", "uvloop")


def child(name, kind, scale):
    fn, n = BENCHMARKS[name]
    loop = make_loop(kind)
    asyncio.set_event_loop(loop)
    fn(loop, max(100, int(n * scale / 100)))  # warm-up
    ops, seconds = fn(loop, int(n * scale))
    loop.close()
    print(json.dumps(ops / seconds))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.scale)
    names = [n for n in BENCHMARKS if not args.only or args.only in n]
    best = {}
    for name, kind, rate in child_runs(__file__, names, args.repeat,
                                       args.scale):
        best[name, kind] = max(best.get((name, kind), 0), rate)
    print(f"Python {sys.version.split()[0]}, best of {args.repeat}, ops/s")
    print(f"{'benchmark':<22}{'casyncio':>12}{'asyncio':>12}{'uvloop':>12}"
          f"{'vs uvloop':>11}{'vs asyncio':>12}")
    for name in names:
        c, a, u = (best[name, k] for k in LOOPS)
        print(f"{name:<22}{c:>12,.0f}{a:>12,.0f}{u:>12,.0f}"
              f"{c / u:>10.2f}x{c / a:>11.2f}x")
        record("loop", name, "µs per operation",
               {k: 1e6 / best[name, k] for k in LOOPS})


if __name__ == "__main__":
    main()
