"""Echo server benchmark: server CPU time per request, casyncio vs stdlib
asyncio vs uvloop, for Protocol, BufferedProtocol and streams servers, and
per connection when every request is a new connection (accept, one byte
echoed, close: the connect rows).

The server runs pinned to CPU 0, the C load generator (bench/loadgen.c,
closed loop, N connections) pinned to CPU 1. The figure is the server's
user+system CPU time from /proc/PID/stat divided by the requests served,
which does not depend on how fast the client is. Each row runs the three
loops in turn, --repeat times, and keeps each loop's best run: on a shared
machine a single run of a kernel-bound row can be a third off.

The floor rows run bench/echo_floor.c, a minimal C epoll echo server,
against the same load: no loop can spend less. At 64 KiB it spends about
what the loops do, and its own runs vary as much as the gap between them.

    python bench/echo_bench.py [--seconds 3] [--repeat 3]
        [--connections 100] [--sizes 1024,65536] [--loadgen PATH]
"""
import argparse
import asyncio
import os
import subprocess
import sys
import time

from results import progress, record

LOOPS = ("casyncio", "asyncio", "uvloop")
FLOOR = "C floor"  # bench/echo_floor.c
SERVERS = ("protocol", "buffered", "streams")
HERE = os.path.dirname(os.path.abspath(__file__))


def new_loop(kind):
    if kind == "casyncio":
        import casyncio
        return casyncio.new_event_loop()
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.SelectorEventLoop()


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray(256 * 1024)
        self.view = memoryview(self.buffer)

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        self.transport.write(self.view[:nbytes])


async def echo_stream(reader, writer):
    try:
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
    except ConnectionResetError:
        pass  # the load generator's TLS clients reset when the run ends
    writer.close()


def settle_malloc():
    """Puts glibc's malloc where a long-running server's is. glibc serves
    blocks of 128 KiB and more with mmap until the process frees such a
    block; from then on its threshold is that block's size. stdlib's reads
    (and uvloop's TLS reads) allocate 256 KiB each, so whether a server had
    happened to free a large block before decided whether each read cost
    mmap, mremap and munmap: a TLS row moved 3x between runs. Freeing
    1 MiB here starts every server, of every loop, from the same state."""
    bytearray(1 << 20)


def serve(kind, server_kind):
    settle_malloc()
    loop = new_loop(kind)
    asyncio.set_event_loop(loop)
    if server_kind == "streams":
        coro = asyncio.start_server(echo_stream, "127.0.0.1", 0)
    else:
        factory = (EchoProtocol if server_kind == "protocol"
                   else EchoBufferedProtocol)
        coro = loop.create_server(factory, "127.0.0.1", 0)
    server = loop.run_until_complete(coro)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


def cpu_seconds(pid):
    """(user, system) CPU seconds of process pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based) of the whole line.
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def serve_command(*server_args):
    """The argv that runs this script's --serve server_args."""
    return [sys.executable, sys.argv[0], "--serve", *server_args]


def measure_server(server_command, loadgen_args, seconds, count=int):
    """Runs the server (an argv that prints its port) on CPU 0 and the
    load generator (its argv, PORT in it for the port) on CPU 1; returns the
    server's CPU µs per unit of work the generator reports (count reads
    how many from its output), units/s, and the user-space part of those
    µs."""
    server = subprocess.Popen(["taskset", "-c", "0", *server_command],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        time.sleep(0.2)
        cpu0 = cpu_seconds(server.pid)
        out = subprocess.run(
            ["taskset", "-c", "1",
             *(str(a).replace("PORT", port) for a in loadgen_args)],
            capture_output=True, text=True, check=True)
        cpu1 = cpu_seconds(server.pid)
    finally:
        server.kill()
        server.wait()
    done = count(out.stdout)
    user = (cpu1[0] - cpu0[0]) * 1e6 / done
    return user + (cpu1[1] - cpu0[1]) * 1e6 / done, done / seconds, user


def build(source, name, *libraries):
    path = os.path.join("/tmp", name)
    subprocess.run(["cc", "-O2", "-o", path, os.path.join(HERE, source),
                    *libraries], check=True)
    return path


def server_for(kind, server_kind, args):
    return ([args.floor] if kind == FLOOR
            else serve_command(kind, server_kind))


def measure(kind, server_kind, size, args):
    return measure_server(
        server_for(kind, server_kind, args),
        [args.loadgen, "echo", "PORT", args.connections, size,
         args.seconds], args.seconds)


def measure_connects(kind, server_kind, args):
    return measure_server(
        server_for(kind, server_kind, args),
        [args.loadgen, "connect", "PORT", 1, 1, args.seconds], args.seconds)


def best_of(label, repeat, measure_one, kinds=LOOPS):
    """{kind: (µs, per second, user µs)} of each kind's lowest-CPU run of
    measure_one(kind), the kinds interleaved round by round."""
    best = {}
    for i in range(1, repeat + 1):
        progress(os.path.basename(sys.argv[0]),
                 f"{label}: round {i}/{repeat}")
        for kind in kinds:
            result = measure_one(kind)
            if kind not in best or result[0] < best[kind][0]:
                best[kind] = result
    return best


def add_common_arguments(parser):
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--loadgen")


HEADER = ("server CPU µs per request (lower is better): total, its "
          "user-space part after the slash, requests/s in brackets; the "
          "ratios are casyncio's to uvloop's, total and user-space")


def print_columns():
    print(f"{'':<16}{'casyncio':>24}{'asyncio':>24}{'uvloop':>24}"
          f"{'vs uvloop':>10}{'user':>7}")


def print_row(section, label, results, floor=None):
    """Prints and records a row of best_of's results: total and user µs,
    requests/s, and the ratios to uvloop; floor is the C floor's result.
    Past 64 KiB the kernel's copies are most of the total and swing
    between runs, while the user-space part holds still."""
    cells = "".join(f"{us:>8.1f}/{user:>5.1f} [{rps:>7,.0f}]"
                    for us, rps, user in results.values())
    total, user = (results["casyncio"][i] / results["uvloop"][i]
                   for i in (0, 2))
    print(f"{label:<16}{cells}{total:>9.2f}x{user:>6.2f}x")
    record(section, label, "server CPU µs per request",
           {kind: result[0] for kind, result in results.items()},
           floor and floor[0])


def print_floor(label, result):
    us, rps, user = result
    print(f"{label:<16}{us:>8.1f}/{user:>5.1f} [{rps:>7,.0f}]   "
          f"{FLOOR}: a minimal C epoll server, the kernel's share")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=2)
    parser.add_argument("--sizes", default="1024,65536")
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.serve:
        return serve(*args.serve)
    args.loadgen = args.loadgen or build("loadgen.c", "casyncio-loadgen")
    args.floor = build("echo_floor.c", "casyncio-echo-floor")
    print(f"Python {sys.version.split()[0]}, {args.connections} connections,"
          f" {args.seconds:g}s each, best of {args.repeat}; {HEADER}")
    print_columns()
    # Each floor is measured first, to be recorded with its rows, and
    # printed after them.
    for size in (int(s) for s in args.sizes.split(",")):
        label = f"floor {size}B"
        floor = best_of(label, args.repeat,
                        lambda kind: measure(kind, None, size, args),
                        (FLOOR,))[FLOOR]
        for server_kind in SERVERS:
            label = f"{server_kind} {size}B"
            print_row("echo", label, best_of(
                label, args.repeat,
                lambda kind: measure(kind, server_kind, size, args)), floor)
        print_floor(f"floor {size}B", floor)
    floor = best_of("floor connect", args.repeat,
                    lambda kind: measure_connects(kind, None, args),
                    (FLOOR,))[FLOOR]
    for server_kind in ("protocol", "streams"):
        label = f"{server_kind} connect"
        print_row("echo", label, best_of(
            label, args.repeat,
            lambda kind: measure_connects(kind, server_kind, args)), floor)
    print_floor("floor connect", floor)


if __name__ == "__main__":
    main()
