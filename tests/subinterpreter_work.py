"""What tests/test_subinterpreters.py runs in each interpreter: one loop
that serves a TCP echo, a TLS echo and a Unix echo to its own clients,
fires timers, runs a subprocess and an executor job, and keeps a
ContextVar. Everything it returns carries the caller's tag, so an answer
that reached the wrong interpreter shows."""
import asyncio
import contextvars
import os
import ssl
import sys
import tempfile
import threading

import casyncio

LOOPS = {"stdlib": asyncio.SelectorEventLoop,
         "casyncio": casyncio.new_event_loop}
var = contextvars.ContextVar("var", default=None)


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def round_trips(port_or_path, tag, rounds, **kwargs):
    if isinstance(port_or_path, int):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port_or_path, **kwargs)
    else:
        reader, writer = await asyncio.open_unix_connection(port_or_path)
    answers = set()
    for i in range(rounds):
        message = f"{tag}:{i}:".encode() + b"x" * (i * 997 % 70000)
        writer.write(message)
        answers.add(await reader.readexactly(len(message)) == message)
    writer.close()
    await writer.wait_closed()
    return answers == {True}


async def main(tag, certs):
    loop = asyncio.get_running_loop()
    var.set(tag)
    fired = []
    for delay in (0.03, 0.01, 0.02):
        loop.call_later(delay, fired.append, delay)

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs["cert"], certs["key"])
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(certs["ca"])
    tcp = await asyncio.start_server(echo, "127.0.0.1", 0)
    tls = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    path = os.path.join(tempfile.mkdtemp(), "echo.sock")
    unix = await asyncio.start_unix_server(echo, path)
    port, tls_port = (s.sockets[0].getsockname()[1] for s in (tcp, tls))
    echoed = await asyncio.gather(
        *(round_trips(port, tag, 20) for _ in range(4)),
        round_trips(tls_port, tag, 10, ssl=client_ctx,
                    server_hostname="localhost"),
        round_trips(path, tag, 10))
    for server in (tcp, tls, unix):
        server.close()
        await server.wait_closed()

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; print(sys.argv[1])", tag,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    in_executor = await loop.run_in_executor(None, str.upper, tag)
    await asyncio.sleep(0.05)
    return {"echoed": all(echoed), "timers": fired,
            "subprocess": (out.decode().strip(), proc.returncode),
            "executor": in_executor, "var": var.get(),
            "loop": type(loop).__name__,
            "thread": threading.get_ident()}


def serve(tag, kind, certs):
    """Runs main() on a new loop of the given kind; the result dict.
    certs: the paths of the server's "cert" and "key" and the "ca"'s."""
    return asyncio.run(main(tag, certs), loop_factory=LOOPS[kind])
