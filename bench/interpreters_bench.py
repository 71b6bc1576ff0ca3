"""More cores from one process: the same servers run by N subinterpreters
of one process (concurrent.interpreters, Python 3.14+, each with its own
GIL and its own loop) and by N processes, N = 1 and 2, casyncio and
stdlib asyncio side by side. uvloop is not in these rows: it does not
load in a subinterpreter.

Every server listens on one port with reuse_port, so the kernel spreads
the connections over them. Three servers: the echo Protocol and streams
servers of bench/echo_bench.py (1 KiB messages, the C load generator,
100 connections), and an HTTP hello world whose Protocol parses the
request line and headers in Python and does 600 additions per request
(wrk, one thread, 100 keep-alive connections): the row where the server,
not the client, is most of the work.

Server and client share the machine's cores here (N = 2 needs both), so
nothing is pinned, and each row reports the client's share of the
cores beside the requests/s; the client's share caps the scaling a
2-core machine can show. Per loop and layout: requests/s (median of the
rounds, the layouts taking turns), the servers' CPU µs per request, and
the scaling, N's requests/s over one interpreter's in the same round
(median of the rounds).

    python bench/interpreters_bench.py [--seconds 5] [--repeat 3]
        [--servers "echo protocol,echo streams,http python"]
"""
import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

from echo_bench import EchoProtocol, build, cpu_seconds, echo_stream, new_loop
from http_bench import wrk_requests
from results import progress, record

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPS = ("casyncio", "asyncio")
SERVERS = ("echo protocol", "echo streams", "http python")
LAYOUTS = (("interpreters", 1), ("interpreters", 2), ("processes", 2))
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 13\r\n\r\nHello, world!")


class PythonHttpProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1 GETs parsed in Python, as a pure-Python
    framework would: the request line, the headers into a dict, then some
    work of the application's."""

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            total = 0
            for i in range(600):
                total += i
            self.transport.write(RESPONSE)


async def serve_forever(server_kind, port, ready):
    loop = asyncio.get_running_loop()
    if server_kind == "echo streams":
        server = await asyncio.start_server(echo_stream, "127.0.0.1", port,
                                            reuse_port=True, backlog=1000)
    else:
        factory = (EchoProtocol if server_kind == "echo protocol"
                   else PythonHttpProtocol)
        server = await loop.create_server(factory, "127.0.0.1", port,
                                          reuse_port=True, backlog=1000)
    os.write(ready, b"ready\n")
    await server.serve_forever()


def serve(kind, server_kind, port, ready):
    """One server: what each interpreter or process runs."""
    bytearray(1 << 20)  # echo_bench.settle_malloc, for the same start
    asyncio.run(serve_forever(server_kind, port, ready),
                loop_factory=lambda: new_loop(kind))


def serve_in_interpreters(kind, server_kind, port, count):
    """Runs count subinterpreters of this process, each serving in a
    thread of its own with its own GIL, until the process is killed."""
    from concurrent import interpreters
    threads = []
    for _ in range(count):
        interp = interpreters.create()
        interp.exec(f"import sys; sys.path[:] = {sys.path!r}")
        threads.append(interp.call_in_thread(
            serve, kind, server_kind, port, sys.stdout.fileno()))
    for thread in threads:
        thread.join()


def start_servers(kind, server_kind, layout, count, port):
    """The server processes of one layout, each started and listening."""
    script = os.path.join(HERE, "interpreters_bench.py")
    if layout == "interpreters":
        commands = [[sys.executable, script, "--serve-interpreters", kind,
                     server_kind, str(port), str(count)]]
    else:
        commands = [[sys.executable, script, "--serve", kind, server_kind,
                     str(port)]] * count
    servers = [subprocess.Popen(command, stdout=subprocess.PIPE)
               for command in commands]
    for server, command in zip(servers, commands):
        for _ in range(count if layout == "interpreters" else 1):
            if server.stdout.readline() != b"ready\n":
                raise RuntimeError(f"{command} did not start")
    return servers


def free_port():
    """A loopback port for reuse_port listeners; the socket that found it
    stays bound (not listening) until they are up, so no one else takes
    it meanwhile."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def client_command(server_kind, port, args):
    if server_kind == "http python":
        return ["wrk", "-t1", "-c100", f"-d{args.seconds:g}s",
                f"http://127.0.0.1:{port}/"]
    return [args.loadgen, "echo", str(port), "100", "1024",
            str(args.seconds)]


def measure(kind, server_kind, layout, count, args):
    """(requests/s, servers' CPU µs per request, client's share of the
    cores) of one run."""
    holder = free_port()
    port = holder.getsockname()[1]
    servers = start_servers(kind, server_kind, layout, count, port)
    holder.close()
    try:
        time.sleep(0.2)
        server_cpu0 = sum(sum(cpu_seconds(s.pid)) for s in servers)
        client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        out = subprocess.run(client_command(server_kind, port, args),
                             capture_output=True, text=True, check=True)
        elapsed = time.monotonic() - started
        client1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu1 = sum(sum(cpu_seconds(s.pid)) for s in servers)
    finally:
        for server in servers:
            server.kill()
            server.wait()
    done = (wrk_requests(out.stdout) if server_kind == "http python"
            else int(out.stdout))
    client_cpu = (client1.ru_utime - client0.ru_utime +
                  client1.ru_stime - client0.ru_stime)
    return (done / args.seconds, (server_cpu1 - server_cpu0) * 1e6 / done,
            client_cpu / (elapsed * os.cpu_count()))


def layout_name(layout, count):
    return f"{count} {layout[:-1] if count == 1 else layout}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=3)
    parser.add_argument("--serve-interpreters", nargs=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loadgen")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="which rows, of: " + ", ".join(SERVERS))
    args = parser.parse_args()
    if args.serve:
        kind, server_kind, port = args.serve
        return serve(kind, server_kind, int(port), sys.stdout.fileno())
    if args.serve_interpreters:
        kind, server_kind, port, count = args.serve_interpreters
        return serve_in_interpreters(kind, server_kind, int(port), int(count))
    try:
        from concurrent import interpreters  # noqa: F401
    except ImportError:
        print(f"Python {sys.version.split()[0]} has no concurrent."
              f"interpreters (3.14+): no interpreter rows")
        return
    args.loadgen = args.loadgen or build("loadgen.c", "casyncio-loadgen")
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores shared "
          f"by servers and client, {args.seconds:g}s each, median of "
          f"{args.repeat}: requests/s, servers' CPU µs per request in "
          f"brackets, scaling over 1 interpreter, client's share of the "
          f"cores; casyncio's requests/s over asyncio's")
    print(f"{'server':<14}{'layout':<16}{'casyncio':>36}{'asyncio':>36}"
          f"{'vs asyncio':>11}")
    for server_kind in args.servers.split(","):
        runs = {(kind, layout): [] for kind in LOOPS for layout in LAYOUTS}
        for i in range(1, args.repeat + 1):
            progress("interpreters_bench.py",
                     f"{server_kind}: round {i}/{args.repeat}")
            for key in runs:
                kind, (layout, count) = key
                runs[key].append(
                    measure(kind, server_kind, layout, count, args))
        median = {key: sorted(results)[len(results) // 2]
                  for key, results in runs.items()}
        for layout in LAYOUTS:
            cells = ""
            for kind in LOOPS:
                rps, us, client = median[kind, layout]
                # Paired by round: the machine's speed drifts between
                # rounds more than within one.
                scaling = statistics.median(
                    run[0] / single[0] for run, single in
                    zip(runs[kind, layout], runs[kind, LAYOUTS[0]]))
                cells += (f"{rps:>9,.0f} [{us:>5.1f} µs] {scaling:>5.2f}x "
                          f"client {client:>4.0%}")
            ratio = median["casyncio", layout][0] / median["asyncio",
                                                           layout][0]
            print(f"{server_kind:<14}{layout_name(*layout):<16}{cells}"
                  f"{ratio:>10.2f}x", flush=True)
            record("interpreters", f"{server_kind}, {layout_name(*layout)}",
                   "server CPU µs per request",
                   {kind: median[kind, layout][1] for kind in LOOPS})


if __name__ == "__main__":
    main()
