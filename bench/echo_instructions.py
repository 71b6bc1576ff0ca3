"""Echo server user-space instructions per request, under callgrind:
casyncio vs stdlib asyncio vs uvloop, side by side.

echo_bench.py's CPU time per request is mostly kernel time (the same
syscalls for every loop), and on a shared machine single runs of it vary
by a third. Instruction counts do not: callgrind counts what the server
executes in user space, whatever else the machine is doing. Each server
runs under callgrind twice, with the C load generator (bench/loadgen.c,
10 connections) for a short and a long time; the difference in
instructions divided by the difference in requests leaves out start-up.

What the kernel does is not counted: the copies in and out of the socket
buffers, and the page faults of fresh allocations (stdlib's Protocol path
allocates 256 KiB per recv). The default cases are therefore the 1 KiB
ones, where user space is what tells the loops apart, and a connection
per request.

A case is SERVER:SIZE (echo of SIZE-byte messages) or SERVER:connect
(a new connection per request: accept, one byte echoed, close).

    python bench/echo_instructions.py [--cases protocol:1024,streams:connect]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from echo_bench import LOOPS, build
from results import progress, record

HERE = os.path.dirname(os.path.abspath(__file__))
SHORT, LONG = 4, 12  # seconds of load per run


def callgrind_run(kind, server_kind, size, seconds, loadgen, directory):
    """(requests served, instructions executed) of one server run; size
    "connect" makes every request a new connection."""
    out = os.path.join(directory, f"{kind}.{server_kind}.{seconds}")
    server = subprocess.Popen(
        ["taskset", "-c", "0", "valgrind", "--tool=callgrind",
         f"--callgrind-out-file={out}", sys.executable,
         os.path.join(HERE, "echo_bench.py"), "--serve", kind, server_kind],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = server.stdout.readline().strip()
        time.sleep(1)
        load = (["connect", port, "1", "1"] if size == "connect"
                else ["echo", port, "10", size])
        done = subprocess.run(
            ["taskset", "-c", "1", loadgen, *load, str(seconds)],
            capture_output=True, text=True, check=True)
    finally:
        server.terminate()
        server.wait()
    with open(out) as f:
        totals = [line for line in f if line.startswith(("summary:",
                                                         "totals:"))]
    return int(done.stdout), int(totals[-1].split()[1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="protocol:1024,buffered:1024,"
                                            "streams:1024,protocol:connect")
    parser.add_argument("--loadgen")
    args = parser.parse_args()
    loadgen = args.loadgen or build("loadgen.c", "casyncio-loadgen")
    print(f"Python {sys.version.split()[0]}, 10 connections, under "
          f"callgrind: server user-space instructions per request (lower "
          f"is better)")
    print(f"{'server':<20}{'casyncio':>10}{'asyncio':>10}{'uvloop':>10}"
          f"{'vs uvloop':>11}")
    with tempfile.TemporaryDirectory() as directory:
        for case in args.cases.split(","):
            server_kind, size = case.split(":")
            per = {}
            for kind in LOOPS:
                progress("echo_instructions.py", f"{case}: {kind}")
                r1, i1 = callgrind_run(kind, server_kind, size, SHORT,
                                       loadgen, directory)
                r2, i2 = callgrind_run(kind, server_kind, size, LONG,
                                       loadgen, directory)
                per[kind] = (i2 - i1) / (r2 - r1)
            c, a, u = (per[k] for k in LOOPS)
            label = f"{server_kind} {size}{'' if size == 'connect' else 'B'}"
            print(f"{label:<20}{c:>10,.0f}"
                  f"{a:>10,.0f}{u:>10,.0f}{c / u:>10.2f}x", flush=True)
            record("instructions", label,
                   "server user-space instructions per request", per)


if __name__ == "__main__":
    main()
