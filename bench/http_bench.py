"""HTTP servers benchmark: uvicorn with httptools serving a raw ASGI hello
world, and aiohttp's web server serving its hello world, each on casyncio,
asyncio and uvloop, side by side.

As bench/echo_bench.py: the server runs pinned to CPU 0 and the load
generator, wrk (Debian's package), to CPU 1, with 100 keep-alive
connections; the figure is the server's CPU µs per request from /proc
(which does not depend on how fast wrk is), with requests/s beside it.
The loops take turns, round after round, and each loop's median round
counts.

Then the same servers under callgrind (10 connections): user-space
instructions per request, split into the loop's own shared object
(casyncio's _casyncio, uvloop's loop; asyncio's loop is Python, run by
the interpreter) and the rest, which is the framework, the interpreter
and libc: the part a loop cannot make cheaper.

    python bench/http_bench.py [--seconds 3] [--repeat 3]
        [--connections 100]
"""
import argparse
import os
import re
import socket
import statistics
import sys
import tempfile

from echo_bench import (LOOPS, add_common_arguments, measure_server, new_loop,
                        settle_malloc)
from echo_instructions import LONG, SHORT, callgrind_server
from results import progress, record

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ("uvicorn", "aiohttp")
UVICORN_LOOPS = {"casyncio": "casyncio:new_event_loop",
                 "asyncio": "asyncio", "uvloop": "uvloop"}
LOOP_OBJECTS = {"casyncio": "/_casyncio.", "uvloop": "/uvloop/loop."}
BODY = b"Hello, world!"
ANNOUNCED_PORT = None  # the port asgi_hello prints at uvicorn's startup


async def asgi_hello(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup: uvicorn serves right after
        print(ANNOUNCED_PORT, flush=True)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        return await send({"type": "lifespan.shutdown.complete"})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", b"%d" % len(BODY))]})
    await send({"type": "http.response.body", "body": BODY})


def serve(kind, server):
    """Serves the hello world on a loopback port, which it prints once the
    server is about to accept (the load must not time out while a server
    under valgrind starts)."""
    settle_malloc()
    # IPPROTO_TCP, as getaddrinfo gives it when uvicorn binds --port
    # itself: asyncio sets TCP_NODELAY only on sockets of that protocol,
    # and without it uvicorn's two writes per response wait out delayed
    # ACKs (40 ms a request; uvloop sets it on every TCP socket).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1000)  # connections made before the server accepts wait
    port = sock.getsockname()[1]
    if server == "uvicorn":
        import uvicorn
        config = uvicorn.Config(
            asgi_hello, loop=UVICORN_LOOPS[kind], http="httptools",
            lifespan="on", access_log=False, log_level="warning",
            backlog=1000)
        global ANNOUNCED_PORT
        ANNOUNCED_PORT = port
        uvicorn.Server(config).run(sockets=[sock])
    else:
        from aiohttp import web

        async def hello(request):
            return web.Response(body=BODY, content_type="text/plain")

        async def announce(app):
            print(port, flush=True)

        app = web.Application()
        app.router.add_get("/", hello)
        app.on_startup.append(announce)
        web.run_app(app, sock=sock, loop=new_loop(kind), print=None,
                    access_log=None, handle_signals=False)


def wrk_requests(output):
    """The requests wrk completed, all of them answered 200."""
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    return int(re.search(r"(\d+) requests in", output).group(1))


def wrk_command(connections, seconds):
    # A request waits up to 10 s, not wrk's 2: a server under callgrind
    # can be that slow to answer its first ones.
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
            "--timeout", "10s", "http://127.0.0.1:PORT/"]


def serve_args(kind, server):
    return [os.path.join(HERE, "http_bench.py"), "--serve", kind, server]


def median_of(label, repeat, measure_one):
    """{kind: (µs, per second, user µs)} of each loop's median run by
    CPU µs, the loops taking turns round by round."""
    runs = {kind: [] for kind in LOOPS}
    for i in range(1, repeat + 1):
        progress("http_bench.py", f"{label}: round {i}/{repeat}")
        for kind in LOOPS:
            runs[kind].append(measure_one(kind))
    return {kind: sorted(results)[len(results) // 2]
            for kind, results in runs.items()}


def cpu_rows(args):
    print(f"Python {sys.version.split()[0]}, wrk with {args.connections} "
          f"keep-alive connections, {args.seconds:g}s each, median of "
          f"{args.repeat}: server CPU µs per request (lower is better), "
          f"requests/s in brackets")
    print(f"{'server':<10}{'casyncio':>20}{'asyncio':>20}{'uvloop':>20}"
          f"{'vs uvloop':>11}")
    for server in SERVERS:
        results = median_of(server, args.repeat, lambda kind: measure_server(
            [sys.executable, *serve_args(kind, server)],
            wrk_command(args.connections, args.seconds), args.seconds,
            count=wrk_requests))
        cells = "".join(f"{us:>9.1f} [{rps:>8,.0f}]"
                        for us, rps, _ in results.values())
        ratio = results["casyncio"][0] / results["uvloop"][0]
        print(f"{server:<10}{cells}{ratio:>10.2f}x", flush=True)
        record("http", f"{server} hello", "server CPU µs per request",
               {kind: result[0] for kind, result in results.items()})


def loop_share(kind, per_object):
    """Instructions in the loop's own shared object (None for asyncio)."""
    if kind not in LOOP_OBJECTS:
        return None
    return sum(n for name, n in per_object.items()
               if name and LOOP_OBJECTS[kind] in name)


def split_cell(total, own):
    """ "total = own + rest", or the total alone where the loop is Python."""
    if own is None:
        return f"{total:>9,.0f} (all Python)  "
    return f"{total:>9,.0f} = {own:>6,.0f} +{total - own:>7,.0f}"


def instruction_rows():
    print(f"Python {sys.version.split()[0]}, wrk with 10 connections, "
          f"under callgrind: server user-space instructions per request, "
          f"total = the loop's own shared object + the rest (framework, "
          f"interpreter, libc)")
    print(f"{'server':<10}" + "".join(f"{kind:>26}" for kind in LOOPS) +
          f"{'vs uvloop':>11}")
    with tempfile.TemporaryDirectory() as directory:
        for server in SERVERS:
            per = {}
            for kind in LOOPS:
                progress("http_bench.py", f"{server} under callgrind: {kind}")
                runs = [callgrind_server(
                    serve_args(kind, server), wrk_command(10, seconds),
                    os.path.join(directory, f"{kind}.{server}.{seconds}"),
                    count=wrk_requests) for seconds in (SHORT, LONG)]
                (r1, o1), (r2, o2) = runs
                total = (sum(o2.values()) - sum(o1.values())) / (r2 - r1)
                share = loop_share(kind, o1)
                own = (None if share is None else
                       (loop_share(kind, o2) - share) / (r2 - r1))
                per[kind] = (total, own)
            cells = "".join(split_cell(*result) for result in per.values())
            ratio = per["casyncio"][0] / per["uvloop"][0]
            print(f"{server:<10}{cells}{ratio:>10.2f}x", flush=True)
            record("instructions", f"{server} hello",
                   "server user-space instructions per request",
                   {kind: total for kind, (total, _) in per.items()})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=2)
    parser.add_argument("--no-callgrind", action="store_true")
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.serve:
        return serve(*args.serve)
    cpu_rows(args)
    if not args.no_callgrind:
        instruction_rows()


if __name__ == "__main__":
    main()
