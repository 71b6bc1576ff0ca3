"""loop.sendfile() benchmark: casyncio vs stdlib asyncio vs uvloop.

A sender on one core calls loop.sendfile() over a TCP transport, one call
after another, to a sink process on the other core that reads and drops
everything. Two paths: a regular file (os.sendfile(), zero-copy) and a
file object without a fileno (the fallback: reads in the default executor,
written through the transport). The figure is the sender's CPU time
(user+system, its executor threads included) per call. uvloop has no
loop.sendfile() (it raises NotImplementedError); what an application does
then, as aiohttp does, is its own read-and-write loop, which is what the
uvloop column times, marked "app"; it reads stdlib's fallback block size
(16 KiB) so that the column compares loops rather than block sizes. Each (case, loop) pair runs in a fresh
process, interleaved, best of --repeat.

    python bench/sendfile_bench.py [--repeat 3] [--scale 1.0]
"""
import argparse
import asyncio
import io
import json
import os
import resource
import subprocess
import sys
import tempfile

from loop_bench import LOOPS, child_runs, make_loop
from results import record

CASES = {  # name: (file size, regular file?, calls)
    "16 KiB file, os.sendfile": (16 << 10, True, 4000),
    "1 MiB file, os.sendfile": (1 << 20, True, 400),
    "1 MiB, fallback by reads": (1 << 20, False, 100),
}
SINK = """
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
while conn.recv(1 << 20):
    pass
"""


async def app_fallback(loop, transport, source):
    """What aiohttp does where loop.sendfile() is not implemented."""
    while chunk := await loop.run_in_executor(None, source.read, 16384):
        transport.write(chunk)
        if transport.get_write_buffer_size() > 1 << 16:
            await asyncio.sleep(0)  # let the loop drain the transport


async def send_many(port, source, calls, size, native):
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol,
                                                "127.0.0.1", port)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(calls):
        source.seek(0)
        if native:
            assert await loop.sendfile(transport, source) == size
        else:
            await app_fallback(loop, transport, source)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    transport.close()
    return ((cpu1.ru_utime - cpu0.ru_utime) +
            (cpu1.ru_stime - cpu0.ru_stime)) / calls


def child(name, kind, scale):
    size, regular, calls = CASES[name]
    os.sched_setaffinity(0, {0})
    sink = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c",
                             SINK], stdout=subprocess.PIPE, text=True)
    port = int(sink.stdout.readline())
    with tempfile.TemporaryFile() as f:
        f.write(os.urandom(size))
        source = f if regular else io.BytesIO(os.urandom(size))
        loop = make_loop(kind)
        try:
            cpu = loop.run_until_complete(
                send_many(port, source, max(1, int(calls * scale)), size,
                          native=kind != "uvloop"))
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    sink.wait()
    print(json.dumps(cpu))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.scale)
    cpu = {}
    for name, kind, c in child_runs(__file__, CASES, args.repeat,
                                    args.scale):
        cpu[name, kind] = min(cpu.get((name, kind), c), c)
    print(f"Python {sys.version.split()[0]}, sender on core 0, sink on core "
          f"1, best of {args.repeat}: sender CPU µs per loop.sendfile() "
          f"call (lower is better; uvloop: the app's own read/write loop)")
    print(f"{'case':<27}{'casyncio':>10}{'asyncio':>10}{'uvloop app':>12}"
          f"{'vs asyncio':>12}{'vs uvloop':>11}")
    for name in CASES:
        c, a, u = (cpu[name, k] * 1e6 for k in LOOPS)
        print(f"{name:<27}{c:>10.1f}{a:>10.1f}{u:>12.1f}{c / a:>11.2f}x"
              f"{c / u:>10.2f}x")
        record("sendfile", name, "sender CPU µs per call (uvloop: the "
               "app's read/write loop)", {k: cpu[name, k] * 1e6 for k in LOOPS})


if __name__ == "__main__":
    main()
