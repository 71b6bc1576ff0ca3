"""TLS echo and handshake benchmark: server CPU time per request (or per
handshake), casyncio vs stdlib asyncio vs uvloop, side by side.

As bench/echo_bench.py: the server is pinned to CPU 0, the C load generator
(bench/tls_loadgen.c, OpenSSL) to CPU 1, and the figure is the server's
user+system CPU time from /proc divided by the work done. The certificate
is a throwaway P-256 one made by the openssl tool.

    python bench/tls_bench.py [--seconds 3] [--repeat 3] [--connections 100]
"""
import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile

from echo_bench import (HEADER, EchoProtocol, add_common_arguments, best_of,
                        build, echo_stream, measure_server, new_loop,
                        print_columns, print_row, serve_command,
                        settle_malloc)

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [("protocol", "echo", 1024), ("protocol", "echo", 65536),
         ("streams", "echo", 1024), ("protocol", "handshake", 1)]


def make_certificate(directory):
    cert, key = (os.path.join(directory, n) for n in ("cert.pem", "key.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    return cert, key


def serve(kind, server_kind, cert, key):
    settle_malloc()
    loop = new_loop(kind)
    asyncio.set_event_loop(loop)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if server_kind == "streams":
        coro = asyncio.start_server(echo_stream, "127.0.0.1", 0, ssl=ctx)
    else:
        coro = loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=ctx,
                                  backlog=1000)
    server = loop.run_until_complete(coro)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


def measure(kind, server_kind, mode, size, args):
    return measure_server(
        serve_command(kind, server_kind, args.cert, args.key),
        [args.loadgen, mode, "PORT", args.connections, size, args.seconds],
        args.seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=4)
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.serve:
        return serve(*args.serve)
    args.loadgen = args.loadgen or build("tls_loadgen.c",
                                         "casyncio-tls-loadgen",
                                         "-lssl", "-lcrypto")
    with tempfile.TemporaryDirectory() as directory:
        args.cert, args.key = make_certificate(directory)
        print(f"Python {sys.version.split()[0]}, TLS, {args.connections} "
              f"connections, {args.seconds:g}s each, best of {args.repeat}; "
              f"per handshake for that row; {HEADER}")
        print_columns()
        for server_kind, mode, size in CASES:
            label = ("handshake" if mode == "handshake"
                     else f"{server_kind} {size}B")
            print_row("tls", label, best_of(
                label, args.repeat,
                lambda kind: measure(kind, server_kind, mode, size, args)))


if __name__ == "__main__":
    main()
