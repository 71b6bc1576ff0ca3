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
(a new connection per request: accept, one byte echoed, close). Over TLS
(tls_bench.py's servers and its OpenSSL load generator), tls-SERVER:SIZE
or tls-SERVER:handshake (a full handshake, one byte echoed, close); there
OpenSSL's own instructions are counted too, the same for every loop.

    python bench/echo_instructions.py [--cases protocol:1024,streams:connect]
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

from echo_bench import LOOPS, build
from results import progress, record
from tls_bench import make_certificate

HERE = os.path.dirname(os.path.abspath(__file__))
SHORT, LONG = 4, 12  # seconds of load per run


def callgrind_server(server_args, load_command, out, count=int):
    """Runs `python server_args` (a server that prints its port) under
    callgrind on CPU 0 and load_command (its argv, PORT for the port) on
    CPU 1; returns the work done (count reads it from the load's output)
    and the server's self instructions per ELF object."""
    server = subprocess.Popen(
        ["taskset", "-c", "0", "valgrind", "--tool=callgrind",
         f"--callgrind-out-file={out}", sys.executable, *server_args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = server.stdout.readline().strip()
        time.sleep(1)
        done = subprocess.run(
            ["taskset", "-c", "1",
             *(str(a).replace("PORT", port) for a in load_command)],
            capture_output=True, text=True, check=True)
    finally:
        server.terminate()
        server.wait()
    return count(done.stdout), instructions_by_object(out)


def instructions_by_object(path):
    """{ELF object: self instructions} from a callgrind output file: cost
    lines add to the object the last "ob=" named, except the line after a
    "calls=", which is the inclusive cost of a call (counted where the
    callee's own lines are). Object names are compressed: "(id) name"
    the first time, in an "ob=" or a "cob=" line, and "(id)" after."""
    names, per_object = {}, collections.Counter()
    current, call_cost_next = None, False
    with open(path) as f:
        for line in f:
            if line.startswith(("ob=", "cob=")):
                ref, _, name = line.split("=", 1)[1].strip().partition(" ")
                if name:
                    names[ref] = name
                if line.startswith("ob="):
                    current = names.get(ref, ref)
            elif line.startswith("calls="):
                call_cost_next = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if call_cost_next:
                    call_cost_next = False
                else:
                    fields = line.split()
                    per_object[current] += int(fields[1]) \
                        if len(fields) > 1 else 0
    return per_object


def callgrind_run(kind, server_kind, size, seconds, tools, directory):
    """(requests served, instructions executed) of one echo server run;
    size "connect" makes every request a new connection, and a server_kind
    of tls-SERVER runs tls_bench.py's server (size "handshake": a TLS
    connection per request)."""
    if server_kind.startswith("tls-"):
        script, loadgen = "tls_bench.py", tools["tls_loadgen"]
        extra = tools["certificate"]
        server_kind = server_kind[len("tls-"):]
        load = (["handshake", "PORT", 1, 1] if size == "handshake"
                else ["echo", "PORT", 10, size])
    else:
        script, loadgen, extra = "echo_bench.py", tools["loadgen"], ()
        load = (["connect", "PORT", 1, 1] if size == "connect"
                else ["echo", "PORT", 10, size])
    done, per_object = callgrind_server(
        [os.path.join(HERE, script), "--serve", kind, server_kind, *extra],
        [loadgen, *load, seconds],
        os.path.join(directory, f"{kind}.{server_kind}.{seconds}"))
    return done, sum(per_object.values())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="protocol:1024,buffered:1024,"
                                            "streams:1024,protocol:connect,"
                                            "tls-streams:1024,"
                                            "tls-protocol:handshake")
    parser.add_argument("--loadgen")
    args = parser.parse_args()
    tools = {"loadgen": args.loadgen or build("loadgen.c", "casyncio-loadgen")}
    if "tls-" in args.cases:
        tools["tls_loadgen"] = build("tls_loadgen.c", "casyncio-tls-loadgen",
                                     "-lssl", "-lcrypto")
    print(f"Python {sys.version.split()[0]}, 10 connections, under "
          f"callgrind: server user-space instructions per request (lower "
          f"is better)")
    print(f"{'server':<20}{'casyncio':>10}{'asyncio':>10}{'uvloop':>10}"
          f"{'vs uvloop':>11}")
    with tempfile.TemporaryDirectory() as directory:
        tools["certificate"] = make_certificate(directory)
        for case in args.cases.split(","):
            server_kind, size = case.split(":")
            per = {}
            for kind in LOOPS:
                progress("echo_instructions.py", f"{case}: {kind}")
                r1, i1 = callgrind_run(kind, server_kind, size, SHORT,
                                       tools, directory)
                r2, i2 = callgrind_run(kind, server_kind, size, LONG,
                                       tools, directory)
                per[kind] = (i2 - i1) / (r2 - r1)
            c, a, u = (per[k] for k in LOOPS)
            whole = size in ("connect", "handshake")
            label = f"{server_kind} {size}{'' if whole else 'B'}"
            print(f"{label:<20}{c:>10,.0f}"
                  f"{a:>10,.0f}{u:>10,.0f}{c / u:>10.2f}x", flush=True)
            record("instructions", label,
                   "server user-space instructions per request", per)


if __name__ == "__main__":
    main()
