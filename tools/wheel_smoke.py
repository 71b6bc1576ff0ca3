"""Smoke test of an installed casyncio wheel, run by tools/build_wheels.sh
in a fresh venv whose PATH holds no compiler: a timer, a TCP echo round
trip, a subprocess and a TLS handshake with data over it, all on a
casyncio loop. smoke_localhost.pem beside this file is a throwaway
self-signed certificate and key for localhost, for this test only.
"""
import asyncio
import os
import shutil
import ssl
import sys
import time

import casyncio

CERT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "smoke_localhost.pem")


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def round_trip(port, ssl_context=None):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl_context,
        server_hostname="localhost" if ssl_context else None)
    writer.write(b"ping\n")
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line


async def main():
    loop = asyncio.get_running_loop()
    assert type(loop) is casyncio.Loop, type(loop)

    started = time.monotonic()
    fired = loop.create_future()
    loop.call_later(0.05, fired.set_result, "timer")
    assert await fired == "timer"
    assert time.monotonic() - started >= 0.05

    server = await loop.create_server(Echo, "127.0.0.1", 0)
    assert await round_trip(server.sockets[0].getsockname()[1]) == b"ping\n"
    server.close()
    await server.wait_closed()

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate(b"olleh")
    assert (out, child.returncode) == (b"hello\n", 0), (out, child)

    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(CERT)
    client_context = ssl.create_default_context(cafile=CERT)
    server = await loop.create_server(Echo, "127.0.0.1", 0,
                                      ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    assert await round_trip(port, client_context) == b"ping\n"
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    for compiler in ("cc", "gcc", "clang"):
        assert shutil.which(compiler) is None, f"{compiler} is on PATH"
    assert casyncio.__file__.startswith(sys.prefix), casyncio.__file__
    casyncio.run(main())
    print(f"smoke test passed: casyncio {casyncio.__version__} from "
          f"{os.path.dirname(casyncio.__file__)}, Python "
          f"{sys.version.split()[0]}")
