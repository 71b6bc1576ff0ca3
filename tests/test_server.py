"""Parity tests for create_server, create_unix_server and the Server they
return. Each runs on stdlib asyncio and casyncio, debug off and on (see
conftest.py); errors are compared with a stdlib loop's, message and all,
since each Python version words them its own way."""
import asyncio
import gc
import logging
import os
import re
import socket
import sys
import warnings

import pytest
from parity import (assert_cancelled_call_leaves_nothing,
                    ipv6_loopback_works, on_stdlib)

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)


HAS_IPV6 = ipv6_loopback_works()


def outcome(loop, make_call):
    """What awaiting make_call(loop) gives: the exception's type and
    message (fd numbers and ports left out), or the sorted families of
    the server's sockets."""
    async def main():
        try:
            server = await make_call(loop)
        except Exception as exc:
            message = re.sub(r"fd=\d+", "fd=N", str(exc))
            return type(exc), exc.__cause__, exc.__suppress_context__, message
        families = sorted(s.family for s in server.sockets)
        server.close()
        await server.wait_closed()
        return families

    return loop.run_until_complete(main())


@pytest.fixture
def busy_port():
    """A TCP port that a listening socket holds."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield s.getsockname()[1]


# ---- create_server ----------------------------------------------------------

@pytest.mark.parametrize("case", [
    "ssl-true", "handshake-timeout", "shutdown-timeout", "host-and-sock",
    "nothing", "datagram-sock", "ssl-socket", "port-in-use",
    "address-not-local", "bad-port",
])
def test_create_server_errors(loop, sockets, busy_port, case):
    def call(loop):
        def sock(*args):
            s = socket.socket(*args)
            sockets.append(s)
            return s

        def ssl_sock():
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            s = context.wrap_socket(socket.socket(),
                                    do_handshake_on_connect=False)
            sockets.append(s)
            return s

        local = {"host": "127.0.0.1", "port": 0}
        kwargs = {
            "ssl-true": lambda: {**local, "ssl": True},
            "handshake-timeout": lambda: {**local,
                                          "ssl_handshake_timeout": 1},
            "shutdown-timeout": lambda: {**local, "ssl_shutdown_timeout": 1},
            "host-and-sock": lambda: {**local, "sock": sock()},
            "nothing": lambda: {},
            "datagram-sock": lambda: {
                "sock": sock(socket.AF_INET, socket.SOCK_DGRAM)},
            "ssl-socket": lambda: {"sock": ssl_sock()},
            "port-in-use": lambda: {"host": "127.0.0.1", "port": busy_port,
                                    "reuse_address": False},
            # TEST-NET-1 is no address of this machine: EADDRNOTAVAIL.
            "address-not-local": lambda: {"host": "192.0.2.1", "port": 0},
            "bad-port": lambda: {"host": "127.0.0.1", "port": 70000},
        }[case]()
        return loop.create_server(asyncio.Protocol, **kwargs)

    got = outcome(loop, call)
    assert got == on_stdlib(loop, outcome, call)
    assert isinstance(got, tuple)


@pytest.mark.parametrize("hosts", [
    "127.0.0.1", ["127.0.0.1", "127.0.0.1"], ("127.0.0.1", "localhost"),
    "", None, "localhost",
    pytest.param(["127.0.0.1", "::1"], marks=pytest.mark.skipif(
        not HAS_IPV6, reason="no IPv6 loopback")),
])
def test_create_server_binds_each_distinct_address_once(loop, hosts):
    port = 0 if hosts is not None else None

    def call(loop):
        # host=None with port=None would mean "no address at all".
        if hosts is None:
            with socket.socket() as s:
                s.bind(("", 0))
                free = s.getsockname()[1]
            return loop.create_server(asyncio.Protocol, None, free)
        return loop.create_server(asyncio.Protocol, hosts, port)

    got = outcome(loop, call)
    assert got == on_stdlib(loop, outcome, call)
    assert isinstance(got, list) and got


def socket_options(sock):
    options = [(socket.SOL_SOCKET, socket.SO_REUSEADDR),
               (socket.SOL_SOCKET, socket.SO_REUSEPORT),
               (socket.SOL_SOCKET, socket.SO_KEEPALIVE)]
    if sock.family == socket.AF_INET6:
        options.append((socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    return [bool(sock.getsockopt(*option)) for option in options]


@pytest.mark.parametrize("kwargs", [
    {}, {"reuse_address": False}, {"reuse_port": True},
    pytest.param({"keep_alive": True}, marks=pytest.mark.skipif(
        not PY313, reason="keep_alive is 3.13's")),
])
@pytest.mark.parametrize("host", [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(
        not HAS_IPV6, reason="no IPv6 loopback")),
])
def test_create_server_socket_options(loop, host, kwargs):
    async def main(loop):
        server = await loop.create_server(asyncio.Protocol, host, 0,
                                          **kwargs)
        sock = server.sockets[0]
        facts = (socket_options(sock), sock.gettimeout(),
                 os.get_blocking(sock.fileno()), server.is_serving())
        server.close()
        await server.wait_closed()
        return facts

    expected = on_stdlib(loop, lambda ref: ref.run_until_complete(main(ref)))
    assert loop.run_until_complete(main(loop)) == expected


def test_create_server_on_a_given_socket(loop):
    async def main():
        sock = socket.create_server(("127.0.0.1", 0))
        server = await loop.create_server(asyncio.Protocol, sock=sock)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.close()
        await writer.wait_closed()
        facts = (server.sockets[0].fileno() == sock.fileno(),
                 sock.gettimeout(), server.is_serving())
        server.close()
        await server.wait_closed()
        return facts + (sock.fileno(),)

    assert loop.run_until_complete(main()) == (True, 0.0, True, -1)


def test_create_server_logs_in_debug_mode(loop, caplog):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        server.close()
        await server.wait_closed()

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_until_complete(main())
    # The message is formatted lazily: the server is closed by now.
    logged = [(r.levelname, type(r.args[0]).__name__)
              for r in caplog.records if r.msg == "%r is serving"]
    assert logged == ([("INFO", "Server")] if loop.get_debug() else [])


def test_create_server_start_serving_false(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0,
                                          start_serving=False)
        port = server.sockets[0].getsockname()[1]
        refused = None
        try:
            # Bound but not listening: connecting is refused.
            await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            refused = True
        await server.start_serving()
        await server.start_serving()  # a second call does nothing
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return refused, server.is_serving()

    assert loop.run_until_complete(main()) == (True, False)


def test_create_server_is_a_coroutine(loop):
    coro = loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    assert asyncio.iscoroutine(coro)
    assert repr(coro).startswith("<coroutine object ")
    with pytest.warns(RuntimeWarning,
                      match=r"coroutine '\w+\.create_server' was never"):
        del coro
        gc.collect()


def test_create_server_cancelled_while_resolving_closes_nothing(loop):
    assert_cancelled_call_leaves_nothing(
        loop, lambda loop: loop.create_server(asyncio.Protocol, "localhost",
                                              0))


# ---- the Server -------------------------------------------------------------

def test_server_is_an_abstract_server_with_stdlib_repr(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        facts = (isinstance(server, asyncio.AbstractServer),
                 type(server).__name__, repr(server) ==
                 f"<Server sockets={server.sockets!r}>",
                 all(isinstance(s, asyncio.trsock.TransportSocket)
                     for s in server.sockets),
                 server.get_loop() is loop)
        server.close()
        server.close()  # a second close does nothing
        await server.wait_closed()
        return facts + (repr(server), server.sockets, server.is_serving())

    assert loop.run_until_complete(main()) == (
        True, "Server", True, True, True, "<Server sockets=()>", (), False)


def test_serve_forever_errors(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        errors = []
        try:
            await server.serve_forever()
        except RuntimeError as exc:
            errors.append(re.sub(r"fd=\d+|\d{4,5}\)", "", str(exc)))
        server.close()  # cancels serve_forever
        with pytest.raises(asyncio.CancelledError):
            await task
        try:
            await server.serve_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        await server.wait_closed()
        return errors

    assert loop.run_until_complete(main()) == [
        "server <Server sockets=(<asyncio.TransportSocket , family=2, "
        "type=1, proto=6, laddr=('127.0.0.1', >,)> is already being "
        "awaited on serve_forever()",
        "server <Server sockets=()> is closed"]


def test_serve_forever_cancelled_closes_the_server(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0,
                                          start_serving=False)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        serving = server.is_serving()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return serving, task.cancelled(), server.sockets, server.is_serving()

    assert loop.run_until_complete(main()) == (True, True, (), False)


def test_wait_closed_waits_for_the_connections(loop):
    """3.12 and later wait for the last connection of a closed server;
    3.11's wait_closed() on a closed server returns at once."""
    async def main():
        events = []
        transports = []

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                transports.append(transport)

        server = await loop.create_server(Proto, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            *server.sockets[0].getsockname())
        while not transports:
            await asyncio.sleep(0)

        async def wait():
            await server.wait_closed()
            events.append("wait_closed returned")

        events.append("close")
        server.close()
        waiting = asyncio.ensure_future(wait())
        for _ in range(3):
            await asyncio.sleep(0)
        events.append("connection closed")
        transports[0].close()
        await waiting
        writer.close()
        await writer.wait_closed()
        return events

    events = loop.run_until_complete(main())
    if PY312:
        assert events == ["close", "connection closed", "wait_closed returned"]
    else:
        assert events == ["close", "wait_closed returned", "connection closed"]


@pytest.mark.skipif(not PY313, reason="close_clients is 3.13's")
@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
def test_server_closes_or_aborts_its_clients(loop, method):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        pairs = [await asyncio.open_connection(
            *server.sockets[0].getsockname()) for _ in range(3)]
        while len(server._clients) < 3:
            await asyncio.sleep(0.001)
        server.close()
        getattr(server, method)()
        await asyncio.wait_for(server.wait_closed(), 5)
        ends = [await reader.read() for reader, _ in pairs]
        for _, writer in pairs:
            writer.close()
        return ends, len(server._clients)

    assert loop.run_until_complete(main()) == ([b"", b"", b""], 0)


def test_start_server_streams_over_the_server(loop):
    async def handle(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(
                *server.sockets[0].getsockname())
            writer.write(b"line\n")
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
        return reply

    assert loop.run_until_complete(main()) == b"line\n"


# ---- create_unix_server -----------------------------------------------------

@pytest.mark.parametrize("case", [
    "ssl-true", "handshake-timeout", "shutdown-timeout", "path-and-sock",
    "nothing", "tcp-sock", "datagram-sock", "abstract-in-use",
    "regular-file", "empty-path",
])
def test_create_unix_server_errors(loop, sockets, tmp_path, case):
    name = f"\0casyncio-busy-{os.getpid()}"
    holder = socket.socket(socket.AF_UNIX)
    holder.bind(name)
    holder.listen()
    sockets.append(holder)
    (tmp_path / "file").write_text("not a socket")

    def call(loop):
        def sock(*args):
            s = socket.socket(*args)
            sockets.append(s)
            return s

        path = {"path": str(tmp_path / "s")}
        kwargs = {
            "ssl-true": lambda: {**path, "ssl": True},
            "handshake-timeout": lambda: {**path, "ssl_handshake_timeout": 1},
            "shutdown-timeout": lambda: {**path, "ssl_shutdown_timeout": 1},
            "path-and-sock": lambda: {**path, "sock": sock(socket.AF_UNIX)},
            "nothing": lambda: {},
            "tcp-sock": lambda: {"sock": sock()},
            "datagram-sock": lambda: {
                "sock": sock(socket.AF_UNIX, socket.SOCK_DGRAM)},
            "abstract-in-use": lambda: {"path": name},
            "regular-file": lambda: {"path": str(tmp_path / "file")},
            "empty-path": lambda: {"path": ""},
        }[case]()
        return loop.create_unix_server(asyncio.Protocol, **kwargs)

    with warnings.catch_warnings():
        # stdlib leaves the socket of an empty path to the GC.
        warnings.simplefilter("ignore", ResourceWarning)
        got = outcome(loop, call)
        expected = on_stdlib(loop, outcome, call)
        gc.collect()
    assert got == expected
    assert isinstance(got, tuple)


@pytest.mark.parametrize("form", ["str", "bytes", "pathlib", "sock",
                                  "stale"])
def test_create_unix_server_serves(loop, tmp_path, form):
    path = tmp_path / "server.sock"

    async def main():
        if form == "stale":  # a socket file nobody listens on
            with socket.socket(socket.AF_UNIX) as s:
                s.bind(str(path))
        given = {"str": {"path": str(path)},
                 "bytes": {"path": os.fsencode(path)},
                 "pathlib": {"path": path}, "stale": {"path": str(path)},
                 "sock": {}}[form]
        if form == "sock":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            given["sock"] = sock
        server = await loop.create_unix_server(asyncio.Protocol, **given)
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.close()
        await writer.wait_closed()
        sock = server.sockets[0]
        facts = (sock.family, sock.gettimeout(), server.is_serving())
        server.close()
        await server.wait_closed()
        return facts, path.exists()

    (family, timeout, serving), left = loop.run_until_complete(main())
    assert (family, timeout, serving) == (socket.AF_UNIX, 0.0, True)
    # 3.13 removes the socket file when the server closes (cleanup_socket,
    # a given socket's too); earlier versions leave it.
    assert left == (not PY313)


@pytest.mark.skipif(not PY313, reason="cleanup_socket is 3.13's")
def test_create_unix_server_cleanup_socket_false_keeps_the_file(loop,
                                                                 tmp_path):
    path = tmp_path / "server.sock"

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, path,
                                               cleanup_socket=False)
        server.close()
        await server.wait_closed()
        return path.exists()

    assert loop.run_until_complete(main()) is True


def test_create_unix_server_abstract_name(loop):
    name = f"\0casyncio-server-{os.getpid()}"

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, name)
        reader, writer = await asyncio.open_unix_connection(name)
        writer.close()
        await writer.wait_closed()
        address = server.sockets[0].getsockname()
        server.close()
        await server.wait_closed()
        return address

    assert loop.run_until_complete(main()) == name.encode()


def test_create_unix_server_is_a_coroutine(loop, tmp_path):
    coro = loop.create_unix_server(asyncio.Protocol, str(tmp_path / "s"))
    assert asyncio.iscoroutine(coro)
    with pytest.warns(RuntimeWarning,
                      match=r"coroutine '\w+\.create_unix_server' was never"):
        del coro
        gc.collect()


def test_wait_closed_returns_once_an_unclosed_connection_is_collected(loop):
    """A server connection whose transport nobody closed: once the garbage
    collector has taken it (its finalizer detaches it, after the
    collector cleared its weakrefs), the closed server's wait_closed()
    returns."""
    if loop.kind == "stdlib" and sys.version_info[:2] == (3, 12):
        pytest.skip("stdlib 3.12's transport finalizer does not detach "
                    "from its server (3.13's does): wait_closed() waits "
                    "for ever")
    made = []

    class Keep(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(transport)

    async def main():
        server = await loop.create_server(Keep, "127.0.0.1", 0)
        _, writer = await asyncio.open_connection(
            *server.sockets[0].getsockname())
        while not made:
            await asyncio.sleep(0.01)
        made.pop().pause_reading()  # now nothing of the loop's holds it
        server.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        await asyncio.wait_for(server.wait_closed(), 5)
        writer.close()
        if PY313:
            assert len(server._clients) == 0

    loop.run_until_complete(main())
