"""casyncio on a CPython newer than the newest it was checked against.

casyncio.NEWEST_TESTED_PYTHON names that version. On a newer Python the
C copies of stdlib classes' Python code (streams, SSLProtocol, the socket
constructors) are left out and stdlib's own code runs; the loop and its
transports stay C. CI builds with CASYNCIO_NEWEST_TESTED set one minor
below the running Python and runs the casyncio side of the parity suite on
that build, so both modes are held to stdlib's behaviour; these tests check
that the build is in the mode it says, and that casyncio imports and runs
where asyncio's policy system is gone (as it is to be in 3.16)."""
import asyncio
import asyncio.sslproto
import subprocess
import sys
import textwrap

import pytest

import casyncio
from parity import C_COPIES
from test_tls import certs, client_context, server_context  # noqa: F401


def test_newest_tested_python_is_a_version():
    major, minor = casyncio.NEWEST_TESTED_PYTHON
    assert (major, minor) >= (3, 14)


def test_streams_are_c_on_a_tested_python_and_stdlib_beyond():
    async def main():
        kinds = []

        async def handle(reader, writer):
            kinds.append(type(reader) is asyncio.StreamReader)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return kinds

    # Adopted readers are casyncio's subclass of StreamReader.
    assert casyncio.run(main()) == [not C_COPIES]


def test_ssl_protocol_is_c_on_a_tested_python_and_stdlib_beyond(
        certs):  # noqa: F811
    async def main():
        server = await asyncio.start_server(
            lambda r, w: w.close(), "127.0.0.1", 0,
            ssl=server_context(certs))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(certs),
            server_hostname="localhost")
        protocol_class = type(writer.transport._ssl_protocol)
        writer.close()
        server.close()
        await server.wait_closed()
        return protocol_class

    protocol_class = casyncio.run(main())
    assert (protocol_class is asyncio.sslproto.SSLProtocol) != C_COPIES
    assert issubclass(protocol_class, asyncio.sslproto.SSLProtocol)


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="before 3.14 casyncio uses the public policy API")
def test_imports_and_runs_without_asyncio_policies():
    """With the private policy names that casyncio builds on removed, as a
    Python without policies would have them: casyncio imports, runs a
    program, and install() says what to do instead."""
    program = textwrap.dedent("""
        import asyncio, asyncio.events, asyncio.unix_events
        del asyncio.unix_events._DefaultEventLoopPolicy
        del asyncio.events._set_event_loop_policy
        import casyncio

        async def main():
            await asyncio.sleep(0)
            return type(asyncio.get_running_loop()).__name__

        print(asyncio.run(main(), loop_factory=casyncio.new_event_loop))
        print(hasattr(casyncio, "EventLoopPolicy"),
              "EventLoopPolicy" in casyncio.__all__)
        try:
            casyncio.install()
        except RuntimeError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", program], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    version = "%d.%d" % sys.version_info[:2]
    assert out == [
        "Loop", "False False",
        f"asyncio has no event loop policies on Python {version}: pass "
        "loop_factory=casyncio.new_event_loop to asyncio.run() or "
        "asyncio.Runner, or run the program with python -m casyncio run"]
