"""Parity tests for networking: stream transports, servers, asyncio
streams, sendfile and the errors around them. Each runs on stdlib asyncio
and casyncio, debug off and on (see conftest.py)."""
import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import random
import re
import socket
import sys
import threading
import warnings

import pytest

import casyncio
from parity import ipv6_loopback_works, on_stdlib

PY312 = sys.version_info >= (3, 12)
HAS_IPV6 = socket.has_ipv6


@contextlib.contextmanager
def warnings_as_errors():
    """An unclosed socket's ResourceWarning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


class RecordingProtocol(asyncio.Protocol):
    """Records every callback; stops the connection-lost future."""

    def __init__(self, loop, keep_open_on_eof=False):
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.keep_open_on_eof = keep_open_on_eof
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        assert type(data) is bytes
        self.data += data
        if self.events[-1] != "data":
            self.events.append("data")

    def eof_received(self):
        self.events.append("eof")
        return self.keep_open_on_eof

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


async def echo_handler(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def start_echo_server(**kwargs):
    server = await asyncio.start_server(echo_handler, "127.0.0.1", 0,
                                        **kwargs)
    return server, server.sockets[0].getsockname()[1]


# ---- streams ----------------------------------------------------------------

def test_streams_echo_over_tcp(loop):
    async def main():
        server, port = await start_echo_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies = []
        for i in range(3):
            writer.write(b"ping %d" % i)
            replies.append(await reader.readexactly(6))
        writer.write_eof()
        rest = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return replies, rest

    assert loop.run_until_complete(main()) == (
        [b"ping 0", b"ping 1", b"ping 2"], b"")


def test_streams_echo_over_unix_socket(loop, tmp_path):
    path = str(tmp_path / "sock")

    async def main():
        server = await asyncio.start_unix_server(echo_handler, path)
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"over unix")
        reply = await reader.readexactly(9)
        info = (writer.get_extra_info("peername"),
                writer.get_extra_info("socket").family)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return reply, info

    assert loop.run_until_complete(main()) == (
        b"over unix", (path, socket.AF_UNIX))


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback")
def test_streams_echo_over_ipv6(loop):
    async def main():
        server = await asyncio.start_server(echo_handler, "::1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("::1", port)
        writer.write(b"six")
        reply = await reader.readexactly(3)
        family = writer.get_extra_info("socket").family
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return reply, family

    assert loop.run_until_complete(main()) == (b"six", socket.AF_INET6)


def test_large_transfer_with_random_chunks_loses_nothing(loop):
    rng = random.Random(7)
    payload = os.urandom(4 * 1024 * 1024)

    async def main():
        server, port = await start_echo_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send():
            pos = 0
            while pos < len(payload):
                n = rng.randint(1, 200_000)
                chunk = payload[pos:pos + n]
                # Mix the three accepted types.
                writer.write(rng.choice([bytes, bytearray, memoryview])(chunk))
                pos += n
                if rng.random() < 0.3:
                    await writer.drain()
            await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        received = await reader.read(-1)
        await sender
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return received

    assert loop.run_until_complete(main()) == payload


# ---- protocol callbacks -----------------------------------------------------

def connect_pair(loop, client_protocol, server_protocol):
    """A connected (client transport, server transport) pair."""
    async def main():
        server_side = loop.create_future()

        def factory():
            server_side.set_result(server_protocol)
            return server_protocol

        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            lambda: client_protocol, "127.0.0.1", port)
        await server_side
        while server_protocol.transport is None:
            await asyncio.sleep(0)
        return server, transport

    return loop.run_until_complete(main())


def test_protocol_callback_order_and_single_connection_lost(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    transport.write(b"abc")
    transport.write_eof()
    assert transport.can_write_eof()
    loop.run_until_complete(peer.lost)
    peer_exc = peer.lost.result()
    loop.run_until_complete(client.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())
    assert peer.events == ["made", "data", "eof", "lost"]
    assert bytes(peer.data) == b"abc"
    assert peer_exc is None
    assert client.events == ["made", "eof", "lost"]
    assert transport.is_closing()


def test_eof_received_returning_true_keeps_transport_open(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop, keep_open_on_eof=True)
    server, transport = connect_pair(loop, client, peer)
    transport.write_eof()

    async def wait_eof():
        while "eof" not in peer.events:
            await asyncio.sleep(0.001)
    loop.run_until_complete(wait_eof())
    assert not peer.transport.is_closing()
    peer.transport.write(b"after eof")
    peer.transport.close()
    loop.run_until_complete(client.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())
    assert bytes(client.data) == b"after eof"
    assert peer.events == ["made", "eof", "lost"]


def test_buffered_protocol_reads_into_its_buffer(loop):
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(7)
            self.got = bytearray()
            self.lost = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            assert sizehint == -1
            return self.buf

        def buffer_updated(self, nbytes):
            self.got += self.buf[:nbytes]

        def eof_received(self):
            return False

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    peer = Buffered()
    peer.transport = None
    client = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    transport.write(b"0123456789" * 100)
    transport.write_eof()
    loop.run_until_complete(peer.lost)
    transport.close()
    loop.run_until_complete(client.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())
    assert bytes(peer.got) == b"0123456789" * 100


def test_abort_drops_queued_data_and_reports_none(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    transport.abort()
    assert transport.is_closing()
    assert loop.run_until_complete(client.lost) is None
    loop.run_until_complete(peer.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())
    assert client.events == ["made", "lost"]


def test_protocol_error_in_data_received_is_reported_and_closes(loop):
    class Failing(RecordingProtocol):
        def data_received(self, data):
            raise ZeroDivisionError("boom")

    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    client = RecordingProtocol(loop)
    peer = Failing(loop)
    server, transport = connect_pair(loop, client, peer)
    transport.write(b"x")
    exc = loop.run_until_complete(peer.lost)
    loop.run_until_complete(client.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())
    assert isinstance(exc, ZeroDivisionError)
    [ctx] = contexts
    assert ctx["message"] == ("Fatal error: protocol.data_received() call "
                              "failed.")
    assert ctx["transport"] is peer.transport
    assert ctx["protocol"] is peer


# ---- writing ----------------------------------------------------------------

def test_writelines_takes_a_tuple_list_or_generator(loop):
    # aiohttp writes a chunk as writelines((length, chunk, b"\r\n")).
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    transport.writelines((b"a", bytearray(b"bc"), memoryview(b"d")))
    transport.writelines([b"e"])
    transport.writelines(x for x in (b"f", b"g"))
    transport.writelines(())
    transport.close()
    loop.run_until_complete(peer.lost)
    assert bytes(peer.data) == b"abcdefg"
    server.close()
    loop.run_until_complete(server.wait_closed())


def test_writelines_ending_in_an_empty_chunk_then_close(loop):
    """A documented difference (found by test_fuzz.py): stdlib 3.12 and
    3.13 keep writelines()' trailing empty chunk queued, so close() waits
    for the socket to turn writable and, the peer having closed meanwhile,
    ends in connection_lost(BrokenPipeError); casyncio, as stdlib 3.14,
    has nothing left to write and closes at once."""
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    ends = socket.socketpair()

    async def main():
        transport, _ = await loop.connect_accepted_socket(lambda: client,
                                                          ends[0])
        peer_transport, _ = await loop.connect_accepted_socket(lambda: peer,
                                                               ends[1])
        transport.writelines([b"x", b""])
        await asyncio.sleep(0.01)
        transport.close()
        peer_transport.close()
        await peer.lost
        return await client.lost

    exc = loop.run_until_complete(asyncio.wait_for(main(), 10))
    assert bytes(peer.data) == b"x"
    if loop.kind == "stdlib":
        assert exc is None or isinstance(exc, BrokenPipeError)
    else:
        assert exc is None


def test_write_errors_match_stdlib(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    with pytest.raises(TypeError) as excinfo:
        transport.write("text")
    if sys.version_info >= (3, 14):
        assert str(excinfo.value) == ("data argument must be a bytes, "
                                      "bytearray, or memoryview object, "
                                      "not 'str'")
    else:
        assert str(excinfo.value) == ("data argument must be a bytes-like "
                                      "object, not 'str'")
    transport.write(b"")  # a no-op
    transport.write_eof()
    with pytest.raises(RuntimeError) as excinfo:
        transport.write(b"late")
    assert str(excinfo.value) == "Cannot call write() after write_eof()"
    transport.close()
    loop.run_until_complete(client.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())


def test_write_after_close_is_dropped_then_warned(loop, caplog):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    transport.close()
    loop.run_until_complete(client.lost)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(6):
            transport.write(b"dropped")  # never raises
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["socket.send() raised exception."] * 2
    server.close()
    loop.run_until_complete(server.wait_closed())


def test_flow_control_pauses_and_resumes_writing(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    assert transport.get_write_buffer_limits() == (16384, 65536)
    transport.set_write_buffer_limits(high=4096)
    assert transport.get_write_buffer_limits() == (1024, 4096)
    with pytest.raises(ValueError) as excinfo:
        transport.set_write_buffer_limits(high=1, low=2)
    assert str(excinfo.value) == "high (1) must be >= low (2) must be >= 0"
    peer.transport.pause_reading()
    assert not peer.transport.is_reading()
    chunk = b"x" * 65536

    async def fill():
        while "pause_writing" not in client.events:
            transport.write(chunk)
            await asyncio.sleep(0.001)
        return transport.get_write_buffer_size()
    assert loop.run_until_complete(fill()) > 4096
    peer.transport.resume_reading()
    assert peer.transport.is_reading()

    async def drain():
        while "resume_writing" not in client.events:
            await asyncio.sleep(0.001)
    loop.run_until_complete(drain())
    assert transport.get_write_buffer_size() <= 1024
    transport.close()
    loop.run_until_complete(client.lost)
    loop.run_until_complete(peer.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())
    assert client.events == ["made", "pause_writing", "resume_writing",
                             "eof", "lost"] or client.events == [
        "made", "pause_writing", "resume_writing", "lost"]


def test_peer_reset_mid_write_reports_connection_lost_with_error(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    # SO_LINGER 0 makes the peer's close send a RST.
    peer.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.transport.abort()

    async def keep_writing():
        while not client.lost.done():
            transport.write(b"y" * 65536)
            await asyncio.sleep(0.001)
        return client.lost.result()
    exc = loop.run_until_complete(keep_writing())
    server.close()
    loop.run_until_complete(server.wait_closed())
    assert exc is None or isinstance(exc, (ConnectionResetError,
                                           BrokenPipeError))
    assert client.events.count("lost") == 1


# ---- transports as libraries see them ---------------------------------------

def test_transport_types_and_extra_info(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    assert isinstance(transport, asyncio.Transport)
    assert isinstance(server, asyncio.AbstractServer)
    sock = transport.get_extra_info("socket")
    assert type(sock).__name__ == "TransportSocket"
    assert sock.family == socket.AF_INET
    assert transport.get_extra_info("sockname") == sock.getsockname()
    assert transport.get_extra_info("peername") == sock.getpeername()
    assert transport.get_extra_info("missing", "dflt") == "dflt"
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert transport.get_protocol() is client
    assert transport.is_reading()
    assert repr(transport).endswith(
        f"fd={sock.fileno()} read=polling write=<idle, bufsize=0>>")
    transport.close()
    loop.run_until_complete(client.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())


def accepted_socket_facts(loop, start_server, connect):
    """What a server-side transport says about its accepted socket, beside
    what the client socket says about itself."""
    async def main():
        accepted = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport)

        server = await start_server(lambda: Server())
        client = await connect(server.sockets[0])
        transport = await accepted
        sock = transport.get_extra_info("socket")
        facts = (transport.get_extra_info("peername"),
                 transport.get_extra_info("sockname"),
                 sock.family, sock.type,
                 sock.proto == server.sockets[0].proto,
                 sock.gettimeout(),
                 os.get_blocking(sock.fileno()),
                 os.get_inheritable(sock.fileno()))
        transport.close()
        own = (client.getsockname(), client.getpeername())
        client.close()
        server.close()
        await server.wait_closed()
        return facts, own

    return loop.run_until_complete(main())


async def connect_from(listener, bind_to=None):
    client = socket.socket(listener.family)
    if bind_to is not None:
        client.bind(bind_to)
    client.connect(listener.getsockname())
    return client


def test_accepted_tcp_connection_facts(loop):
    (peer, name, family, type_, same_proto, timeout, blocking,
     inheritable), (client_name, client_peer) = accepted_socket_facts(
        loop, lambda f: loop.create_server(f, "127.0.0.1", 0), connect_from)
    assert (peer, name) == (client_name, client_peer)
    assert type(peer) is tuple and len(peer) == 2
    assert (family, type_, same_proto) == (socket.AF_INET,
                                           socket.SOCK_STREAM, True)
    assert (timeout, blocking, inheritable) == (0.0, False, False)


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback")
def test_accepted_ipv6_connection_facts(loop):
    (peer, name, family, type_, _, timeout, blocking, _), \
        (client_name, client_peer) = accepted_socket_facts(
            loop, lambda f: loop.create_server(f, "::1", 0), connect_from)
    assert (peer, name) == (client_name, client_peer)
    assert len(peer) == 4 and peer[0] == "::1"
    assert (family, type_, timeout, blocking) == (
        socket.AF_INET6, socket.SOCK_STREAM, 0.0, False)


@pytest.mark.parametrize("client_name", ["unnamed", "path", "abstract"])
def test_accepted_unix_connection_facts(loop, tmp_path, client_name):
    path = str(tmp_path / "server.sock")
    bind_to = {"unnamed": None, "path": str(tmp_path / "client.sock"),
               "abstract": f"\0casyncio-test-{os.getpid()}"}[client_name]
    (peer, name, family, type_, _, timeout, blocking, _), \
        (own_name, own_peer) = accepted_socket_facts(
            loop, lambda f: loop.create_unix_server(f, path),
            lambda listener: connect_from(listener, bind_to))
    assert (peer, name) == (own_name, own_peer)
    if client_name == "abstract":
        assert peer == bind_to.encode()
    else:
        assert peer == (bind_to or "")
    assert (family, type_, timeout, blocking) == (
        socket.AF_UNIX, socket.SOCK_STREAM, 0.0, False)


def accepted_objects(loop):
    """The socket objects and their TransportSockets the loop makes, as a
    server-side and a create_connection transport, a Server and
    sock_accept hold them: their classes, slots, timeout, repr (numbers
    left out) and a makefile() round trip."""
    def describe(trsock, sock):
        with sock.makefile("rb"):
            opened = sock._io_refs
        return (type(trsock), type(sock),
                trsock is not None and trsock._sock is sock, opened,
                sock._io_refs, sock._closed, sock.gettimeout(), sock.type,
                re.sub(r"\d+", "N", repr(trsock)),
                re.sub(r"\d+", "N", repr(sock)))

    async def main():
        accepted = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport)

        server = await loop.create_server(Server, "127.0.0.1", 0)
        listener = server.sockets[0]
        client, _ = await loop.create_connection(
            asyncio.Protocol, *listener.getsockname())
        transport = await accepted
        facts = [describe(t.get_extra_info("socket"),
                          t.get_extra_info("socket")._sock)
                 for t in (transport, client)]
        facts.append(describe(listener, listener._sock))
        transport.close()
        client.close()
        server.close()
        await server.wait_closed()
        with socket.socket() as raw:
            raw.bind(("127.0.0.1", 0))
            raw.listen()
            raw.setblocking(False)
            client = socket.socket()
            client.connect(raw.getsockname())
            conn, _ = await loop.sock_accept(raw)
            facts.append(describe(None, conn)[1:])
            conn.close()
            client.close()
        return facts

    return loop.run_until_complete(main())


def test_accepted_socket_objects_are_as_socket_py_makes_them(loop):
    assert accepted_objects(loop) == on_stdlib(loop, accepted_objects)


def test_accepted_sockets_use_a_patched_init(loop, monkeypatch):
    """casyncio builds these objects without calling the classes while
    their __init__ is the one it read at import: a patched __init__ is
    called, as it would be on stdlib."""
    calls = []

    def patched(cls):
        original = cls.__init__

        def __init__(self, *args, **kwargs):
            calls.append(cls.__name__)
            original(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__init__", __init__)

    patched(socket.socket)
    patched(asyncio.trsock.TransportSocket)
    accepted_objects(loop)
    assert calls.count("socket") >= 3  # accepted twice, and connecting
    assert "TransportSocket" in calls


def test_server_on_a_socket_subclass_uses_its_accept(loop):
    """A listening socket of a socket.socket subclass is accepted through
    its own accept(), as stdlib does."""
    calls = []

    class CountingSocket(socket.socket):
        def accept(self):
            calls.append(1)
            return super().accept()

    listener = CountingSocket()
    listener.bind(("127.0.0.1", 0))
    (peer, _, _, _, _, timeout, blocking, _), (client_name, _) = \
        accepted_socket_facts(
            loop, lambda f: loop.create_server(f, sock=listener),
            connect_from)
    assert calls and peer == client_name
    assert (timeout, blocking) == (0.0, False)


def test_add_reader_refuses_an_fd_owned_by_a_transport(loop):
    client = RecordingProtocol(loop)
    peer = RecordingProtocol(loop)
    server, transport = connect_pair(loop, client, peer)
    fd = transport.get_extra_info("socket").fileno()
    with pytest.raises(RuntimeError) as excinfo:
        loop.add_reader(fd, lambda: None)
    assert str(excinfo.value) == (
        f"File descriptor {fd} is used by transport {transport!r}")
    with pytest.raises(RuntimeError):
        loop.remove_writer(fd)
    transport.close()
    loop.run_until_complete(client.lost)
    server.close()
    loop.run_until_complete(server.wait_closed())


def test_add_reader_on_a_plain_socket_still_works(loop):
    a, b = socket.socketpair()
    got = loop.create_future()
    loop.add_reader(a.fileno(), lambda: got.set_result(a.recv(10)))
    b.send(b"hi")
    assert loop.run_until_complete(got) == b"hi"
    assert loop.remove_reader(a.fileno())
    a.close()
    b.close()


# ---- servers ----------------------------------------------------------------

def test_server_lifecycle(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0,
                                          start_serving=False)
        states = [server.is_serving()]
        await server.start_serving()
        states.append(server.is_serving())
        assert server.get_loop() is loop
        assert len(server.sockets) == 1
        async with server:
            task = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        states.append(server.is_serving())
        await server.wait_closed()
        return states, server.sockets

    assert loop.run_until_complete(main()) == ([False, True, False], ())


def test_server_accepts_many_clients_each_echoed_its_own_bytes(loop):
    async def client(port, i):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        msg = b"client %d " % i * 50
        writer.write(msg)
        writer.write_eof()
        reply = await reader.read()
        writer.close()
        await writer.wait_closed()
        return reply == msg

    async def main():
        server, port = await start_echo_server(backlog=200)
        ok = await asyncio.gather(*(client(port, i) for i in range(200)))
        server.close()
        await server.wait_closed()
        return ok

    assert all(loop.run_until_complete(main()))


# ---- name resolution --------------------------------------------------------

@pytest.mark.parametrize("host, port, kwargs", [
    ("127.0.0.1", 80, {"type": socket.SOCK_STREAM}),
    (b"127.0.0.1", "8080", {}),
    (None, 0, {"flags": socket.AI_PASSIVE, "type": socket.SOCK_STREAM}),
    ("::1", None, {"family": socket.AF_INET6}),
    ("localhost", "http", {"type": socket.SOCK_STREAM}),
    ("127.0.0.1", 1, {"flags": socket.AI_CANONNAME}),
])
def test_getaddrinfo_answers_as_socket_getaddrinfo(loop, host, port, kwargs):
    coro = loop.getaddrinfo(host, port, **kwargs)
    assert asyncio.iscoroutine(coro)
    got = loop.run_until_complete(loop.create_task(coro))
    assert got == socket.getaddrinfo(host, port, **kwargs)


@pytest.mark.parametrize("host, port, kwargs, exc", [
    ("no-such-host.invalid", 80, {}, socket.gaierror),
    ("127.0.0.1", 80, {"family": socket.AF_INET6}, socket.gaierror),
    ("127.0.0.1", "no-such-service", {}, socket.gaierror),
    (3.5, 80, {}, TypeError),
])
def test_getaddrinfo_errors_as_socket_getaddrinfo(loop, host, port, kwargs,
                                                  exc):
    with pytest.raises(exc) as expected:
        socket.getaddrinfo(host, port, **kwargs)
    with pytest.raises(exc) as got:
        loop.run_until_complete(loop.getaddrinfo(host, port, **kwargs))
    assert got.value.args == expected.value.args


@pytest.mark.parametrize("flags", [
    0, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV])
def test_getnameinfo_answers_as_socket_getnameinfo(loop, flags):
    address = ("127.0.0.1", 80)
    got = loop.run_until_complete(loop.getnameinfo(address, flags))
    assert got == socket.getnameinfo(address, flags)


def test_resolvers_run_in_the_default_executor_unless_numeric(loop):
    """A name is looked up in the loop's default executor, as stdlib does;
    casyncio answers numeric addresses at once (documented)."""
    submitted = []

    class Recording(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(args[:2])
            return super().submit(fn, *args, **kwargs)

    executor = Recording(1)
    loop.set_default_executor(executor)

    async def main():
        await loop.getaddrinfo("localhost", 80)
        await loop.getnameinfo(("127.0.0.1", 80))
        await loop.getaddrinfo("127.0.0.1", 80)
        await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST |
                               socket.NI_NUMERICSERV)
    loop.run_until_complete(main())
    executor.shutdown()
    looked_up = [("localhost", 80), (("127.0.0.1", 80), 0)]
    numeric = [("127.0.0.1", 80), (("127.0.0.1", 80), socket.NI_NUMERICHOST |
                                   socket.NI_NUMERICSERV)]
    if isinstance(loop, casyncio.Loop) and not loop.get_debug():
        assert submitted == looked_up
    else:
        assert submitted == looked_up + numeric


def test_getaddrinfo_cancelled_while_looking_up(loop):
    release = threading.Event()

    async def main():
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        # Hold the executor's one thread so the lookup stays queued.
        blocker = loop.run_in_executor(None, release.wait)
        lookup = asyncio.ensure_future(loop.getaddrinfo("localhost", 80))
        await asyncio.sleep(0.01)
        lookup.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lookup
        release.set()
        await blocker
        return await loop.getaddrinfo("localhost", 80)
    assert loop.run_until_complete(main()) == socket.getaddrinfo(
        "localhost", 80)


def test_resolvers_of_a_closed_loop_refuse(loop_factory):
    closed = loop_factory()
    closed.close()
    other = asyncio.new_event_loop()
    try:
        for coro in (closed.getaddrinfo("127.0.0.1", 80),
                     closed.getnameinfo(("127.0.0.1", 80),
                                        socket.NI_NUMERICHOST |
                                        socket.NI_NUMERICSERV)):
            with pytest.raises(RuntimeError, match="Event loop is closed"):
                other.run_until_complete(coro)
    finally:
        other.close()


def test_getaddrinfo_logs_in_debug_mode(loop, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 80))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Get address info 127.0.0.1:80") for m in
               messages), messages


def test_unawaited_getaddrinfo_warns(loop):
    coro = loop.getaddrinfo("127.0.0.1", 80)
    with pytest.warns(RuntimeWarning, match="getaddrinfo' was never "
                      "awaited"):
        del coro
        gc.collect()


# The addresses create_connection, create_server, create_datagram_endpoint
# and sock_connect resolve: the private coroutine they share, with every
# kind of argument stdlib's _ipaddr_info converts or refuses.
ENSURE_RESOLVED_CASES = [
    (("127.0.0.1", 80), {}),
    ((b"127.0.0.1", "80"), {}),
    (("::1", 80.7), {}),
    (("::1", 80, 1, 2), {}),
    (("::1", 80, 1), {"family": socket.AF_INET6}),
    (("127.0.0.1", 80), {"family": socket.AF_INET6}),
    (("127.0.0.1", "http"), {}),
    (("127.0.0.1", None), {"type": socket.SOCK_DGRAM}),
    (("127.0.0.1", b""), {"type": 0}),
    (("127.0.0.1", ""), {"proto": 99}),
    (("127.0.0.1", 80), {"proto": 6.0}),
    (("::1%lo", 80), {}),
    (("localhost", 80), {"flags": socket.AI_CANONNAME}),
    ((None, 80), {}),
    ((5, 80), {}),
    ((bytearray(b"1.2.3.4"), 80), {}),
    ((b"\xff", 80), {}),
    (("127.0.0.1", 80), {"proto": []}),
    (("127.0.0.1", 80), {"family": "x"}),
    (("127.0.0.1", 80), {"family": socket.AF_UNIX}),
    (("1.2.3.4",), {}),
    (("1.2.3.4", 1, 2, 3, 4), {}),
    ("ab", {}),
]


def resolution(loop, make_call):
    """The repr of what awaiting make_call(loop) returns, or the type and
    message of what it raises."""
    try:
        return repr(loop.run_until_complete(make_call(loop)))
    except Exception as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("address, kwargs", ENSURE_RESOLVED_CASES)
def test_ensure_resolved_answers_as_stdlib(loop, address, kwargs):
    def call(loop):
        return loop._ensure_resolved(address, loop=loop, **kwargs)

    assert resolution(loop, call) == on_stdlib(loop, resolution, call)


def test_ensure_resolved_requires_the_loop_keyword(loop):
    with pytest.raises(TypeError) as got:
        loop._ensure_resolved(("127.0.0.1", 80))
    assert str(got.value) == ("BaseEventLoop._ensure_resolved() missing 1 "
                              "required keyword-only argument: 'loop'")


@pytest.mark.parametrize("host, answer", [
    ("localhost", None), ("127.0.0.1", None), (None, None),
    ("x.example", []), ("x.example", [(socket.AF_INET, socket.SOCK_STREAM,
                                       6, "", ("127.0.0.1", 80))]),
])
def test_create_server_getaddrinfo_as_stdlib(loop, host, answer):
    def call(loop):
        if answer is not None:
            async def getaddrinfo(*args, **kwargs):
                return answer
            loop.getaddrinfo = getaddrinfo
        return loop._create_server_getaddrinfo(host, 0, socket.AF_INET,
                                               socket.AI_PASSIVE)

    assert resolution(loop, call) == on_stdlib(loop, resolution, call)


@pytest.mark.parametrize("slow", [False, True])
def test_getaddrinfo_debug_logs_as_stdlib(loop, caplog, slow):
    """Debug mode logs each lookup before and after, at info level when it
    took slow_callback_duration or more."""
    def call(loop):
        loop.set_debug(True)
        loop.slow_callback_duration = 0 if slow else 100
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            loop.run_until_complete(loop.getaddrinfo(
                "localhost", "http", family=socket.AF_INET, proto=6,
                flags=socket.AI_CANONNAME))
        return [(r.levelname, re.sub(r"took \d+\.\d{3}ms", "took Tms",
                                     r.getMessage()))
                for r in caplog.records
                if "address info" in r.getMessage()]

    got = call(loop)
    assert len(got) == 2
    assert got == on_stdlib(loop, call)


def test_create_connection_converts_odd_address_types_as_stdlib(loop):
    """A bytes host and a str port go through _ipaddr_info's conversions
    rather than the numeric fast path."""
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            asyncio.Protocol, b"127.0.0.1", str(port))
        peer = transport.get_extra_info("peername")
        transport.close()
        server.close()
        await server.wait_closed()
        return peer == ("127.0.0.1", port)

    assert loop.run_until_complete(main())


# ---- errors -----------------------------------------------------------------

def test_connecting_to_a_closed_port_is_refused(loop, closed_port):
    with pytest.raises(ConnectionRefusedError):
        loop.run_until_complete(loop.create_connection(
            asyncio.Protocol, "127.0.0.1", closed_port))


def resolve_to(loop, *ports):
    """Makes the loop resolve any host to 127.0.0.1 on each of ports, in
    order, as a name with several addresses would."""
    async def getaddrinfo(host, port, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", p)) for p in ports]
    loop.getaddrinfo = getaddrinfo


def connects_past(loop, first_port, delay):
    """create_connection to a name whose first address is first_port and
    whose second is a live server's; True when it reached the server."""
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        resolve_to(loop, first_port, port)
        transport, _ = await asyncio.wait_for(loop.create_connection(
            asyncio.Protocol, "several.example", 80,
            happy_eyeballs_delay=delay), 5)
        peer = transport.get_extra_info("peername")
        transport.close()
        server.close()
        await server.wait_closed()
        return peer[1] == port

    return loop.run_until_complete(main())


@pytest.mark.parametrize("delay", [None, 0.05])
def test_create_connection_tries_each_address_in_order(loop, delay,
                                                      closed_port):
    assert connects_past(loop, closed_port, delay)


def test_happy_eyeballs_cancels_the_slow_attempt(loop, full_listener):
    """The first address never answers; the second, started after the
    delay, wins and the first connect is cancelled mid-flight."""
    assert connects_past(loop, full_listener.getsockname()[1], 0.05)


@pytest.mark.skipif(not PY312, reason="all_errors is new in 3.12")
def test_create_connection_all_errors(loop, closed_port):
    async def main():
        resolve_to(loop, closed_port, closed_port)
        with pytest.raises(ExceptionGroup) as group:
            await loop.create_connection(asyncio.Protocol, "x.example", 80,
                                         all_errors=True)
        return [type(e) for e in group.value.exceptions]

    assert loop.run_until_complete(main()) == [ConnectionRefusedError] * 2


def test_ssl_needs_a_context_or_true(loop):
    with pytest.raises(ValueError) as excinfo:
        loop.run_until_complete(loop.create_connection(
            asyncio.Protocol, "127.0.0.1", 1, server_hostname="x"))
    assert str(excinfo.value) == ("server_hostname is only meaningful "
                                  "with ssl")


def test_create_connection_on_a_closed_loop(loop_factory):
    loop = loop_factory()
    loop.close()
    coro = loop.create_connection(asyncio.Protocol, "127.0.0.1", 1)
    with pytest.raises(RuntimeError) as excinfo:
        loop.run_until_complete(coro)
    coro.close()
    assert str(excinfo.value) == "Event loop is closed"


# ---- create_connection: every path, compared with stdlib's -----------------

def outcome(loop, make_call):
    """What awaiting make_call(loop) gives: the exception's type and
    message (a socket's fd number left out), or "connected" for a
    (transport, protocol) pair."""
    async def main():
        try:
            transport, _ = await make_call(loop)
        except Exception as exc:
            return type(exc), re.sub(r"fd=\d+", "fd=N", str(exc))
        transport.close()
        return "connected"

    return loop.run_until_complete(main())


def stdlib_outcome(loop, make_call):
    """outcome() on a fresh stdlib loop, debug as loop's: the reference."""
    return on_stdlib(loop, outcome, make_call)


def made(sockets, *args, **kwargs):
    s = socket.socket(*args, **kwargs)
    sockets.append(s)
    return s


def ssl_socket(sockets):
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    s = context.wrap_socket(socket.socket(), do_handshake_on_connect=False)
    sockets.append(s)
    return s


@pytest.mark.parametrize("kwargs", [
    {"host": "127.0.0.1", "port": 1, "server_hostname": "x"},
    {"sock": "tcp", "ssl": True},
    {"host": "127.0.0.1", "port": 1, "ssl_handshake_timeout": 1},
    {"host": "127.0.0.1", "port": 1, "ssl_shutdown_timeout": 1},
    {"host": "127.0.0.1", "port": 1, "sock": "tcp"},
    {},
    {"sock": "udp"},
    {"sock": "ssl"},
], ids=["hostname-without-ssl", "ssl-without-host", "handshake-timeout",
        "shutdown-timeout", "host-and-sock", "nothing", "datagram-sock",
        "ssl-sock"])
def test_create_connection_argument_errors(loop, sockets, kwargs):
    def call(loop):
        given = dict(kwargs)
        kind = given.get("sock")
        if kind is not None:
            given["sock"] = (ssl_socket(sockets) if kind == "ssl" else
                             made(sockets, type=socket.SOCK_DGRAM)
                             if kind == "udp" else made(sockets))
        return loop.create_connection(asyncio.Protocol, **given)

    assert outcome(loop, call) == stdlib_outcome(loop, call)
    assert outcome(loop, call)[0] in (ValueError, TypeError)


def test_create_connection_combines_differing_errors(loop, closed_port):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        second = other.getsockname()[1]

    def call(loop):
        resolve_to(loop, closed_port, second, closed_port)
        return loop.create_connection(asyncio.Protocol, "x.example", 80)

    got = outcome(loop, call)
    assert got == stdlib_outcome(loop, call)
    assert got[0] is OSError and got[1].startswith("Multiple exceptions: ")


def test_create_connection_raises_one_of_identical_errors(loop, closed_port):
    def call(loop):
        resolve_to(loop, closed_port, closed_port)
        return loop.create_connection(asyncio.Protocol, "x.example", 80)

    got = outcome(loop, call)
    assert got == stdlib_outcome(loop, call)
    assert got[0] is ConnectionRefusedError


def test_create_connection_empty_resolution(loop):
    def call(loop):
        resolve_to(loop)
        return loop.create_connection(asyncio.Protocol, "x.example", 80)

    assert outcome(loop, call) == (OSError,
                                   "getaddrinfo() returned empty list")


@pytest.mark.parametrize("local", ["busy", "other-family"])
def test_create_connection_local_addr_errors(loop, sockets, local):
    listener = made(sockets)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    local_addr = (("127.0.0.1", port) if local == "busy" else ("::1", 0))

    def call(loop):
        return loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                      local_addr=local_addr)

    got = outcome(loop, call)
    assert got == stdlib_outcome(loop, call)
    assert got[0] is OSError


def test_create_connection_binds_local_addr(loop, sockets):
    listener = made(sockets)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        local = free.getsockname()

    async def main():
        transport, _ = await loop.create_connection(
            asyncio.Protocol, "127.0.0.1", listener.getsockname()[1],
            local_addr=local)
        sockname = transport.get_extra_info("sockname")
        transport.close()
        return sockname

    assert loop.run_until_complete(main()) == local


def test_create_connection_over_a_given_socket(loop, sockets):
    listener = made(sockets)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    sock = socket.create_connection(listener.getsockname())  # blocking

    async def main():
        transport, protocol = await loop.create_connection(
            lambda: RecordingProtocol(loop), sock=sock)
        facts = (transport.get_extra_info("socket").fileno() == sock.fileno(),
                 sock.getblocking(), protocol.events[:1])
        transport.close()
        await asyncio.sleep(0)
        return facts

    assert loop.run_until_complete(main()) == (True, False, ["made"])


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_create_connection_cancelled_while_connecting(loop, full_listener):
    async def main():
        task = asyncio.ensure_future(loop.create_connection(
            asyncio.Protocol, *full_listener.getsockname()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    fds = open_fds()
    with warnings_as_errors():
        loop.run_until_complete(main())
        gc.collect()
    assert open_fds() == fds


def test_create_connection_closed_while_connecting(loop, full_listener):
    """close() on the suspended coroutine closes its socket, as stdlib's
    except clause in _connect_sock does."""
    fds = open_fds()
    coro = loop.create_connection(asyncio.Protocol,
                                  *full_listener.getsockname())
    yielded = coro.send(None)
    assert asyncio.isfuture(yielded)
    assert open_fds() == fds + 1
    with warnings_as_errors():
        coro.close()
        gc.collect()
    assert open_fds() == fds


def test_create_connection_cancel_reaches_the_resolver(loop):
    """Cancelling while a name resolves cancels the resolver coroutine
    itself (await passes the CancelledError on)."""
    seen = []

    async def getaddrinfo(*args, **kwargs):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main():
        loop.getaddrinfo = getaddrinfo
        task = asyncio.ensure_future(loop.create_connection(
            asyncio.Protocol, "slow.example", 80))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop.run_until_complete(main())
    assert seen == ["cancelled"]


def test_create_connection_with_interleave_only(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        transport, _ = await loop.create_connection(
            asyncio.Protocol, "127.0.0.1", server.sockets[0].getsockname()[1],
            interleave=1)
        transport.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_create_connection_debug_log(loop, caplog):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol,
                                                    "127.0.0.1", port)
        transport.close()
        server.close()
        await server.wait_closed()
        return port

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        port = loop.run_until_complete(main())
    logged = [r.getMessage() for r in caplog.records
              if f" connected to 127.0.0.1:{port}: (" in r.getMessage()]
    assert len(logged) == (1 if loop.get_debug() else 0)


def test_create_connection_is_a_coroutine(loop):
    coro = loop.create_connection(asyncio.Protocol, "127.0.0.1", 1)
    assert asyncio.iscoroutine(coro)
    assert repr(coro).startswith("<coroutine object ")
    with pytest.warns(RuntimeWarning, match="was never awaited"):
        del coro
        gc.collect()


# ---- create_unix_connection -------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"path": "p", "ssl": True},
    {"path": "p", "server_hostname": "x"},
    {"path": "p", "ssl_handshake_timeout": 1},
    {"path": "p", "ssl_shutdown_timeout": 1},
    {"path": "p", "sock": "unix"},
    {},
    {"sock": "tcp"},
    {"sock": "unix-datagram"},
    {"path": "missing"},
    {"path": "no-listener"},
], ids=["ssl-without-hostname", "hostname-without-ssl", "handshake-timeout",
        "shutdown-timeout", "path-and-sock", "nothing", "tcp-sock",
        "datagram-sock", "missing-path", "refused"])
def test_create_unix_connection_errors(loop, sockets, tmp_path, kwargs):
    stale = tmp_path / "no-listener"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # a socket file nobody listens on

    def call(loop):
        given = dict(kwargs)
        kind = given.get("sock")
        if kind is not None:
            given["sock"] = made(sockets, *{
                "unix": (socket.AF_UNIX,), "tcp": (),
                "unix-datagram": (socket.AF_UNIX, socket.SOCK_DGRAM)}[kind])
        if "path" in given:
            given["path"] = str(tmp_path / given["path"])
        return loop.create_unix_connection(asyncio.Protocol, **given)

    got = outcome(loop, call)
    assert got == stdlib_outcome(loop, call)
    assert issubclass(got[0], (ValueError, OSError))


@pytest.mark.parametrize("form", ["str", "bytes", "pathlib", "sock"])
def test_create_unix_connection_connects(loop, tmp_path, form):
    path = tmp_path / "server.sock"

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, str(path))
        given = {"str": {"path": str(path)},
                 "bytes": {"path": os.fsencode(path)},
                 "pathlib": {"path": path},
                 "sock": {"sock": socket.socket(socket.AF_UNIX)}}[form]
        if form == "sock":
            given["sock"].connect(str(path))  # blocking until handed over
        transport, _ = await loop.create_unix_connection(asyncio.Protocol,
                                                         **given)
        sock = transport.get_extra_info("socket")
        facts = (transport.get_extra_info("peername"), sock.gettimeout(),
                 os.get_blocking(sock.fileno()))
        transport.close()
        server.close()
        await server.wait_closed()
        return facts

    assert loop.run_until_complete(main()) == (str(path), 0.0, False)


def test_create_unix_connection_abstract_name(loop):
    name = f"\0casyncio-test-{os.getpid()}"

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, name)
        transport, _ = await loop.create_unix_connection(asyncio.Protocol,
                                                         name)
        peer = transport.get_extra_info("peername")
        transport.close()
        server.close()
        await server.wait_closed()
        return peer

    assert loop.run_until_complete(main()) == name.encode()


def test_create_unix_connection_failure_closes_its_socket(loop, tmp_path):
    fds = open_fds()
    with warnings_as_errors():
        with pytest.raises(FileNotFoundError):
            loop.run_until_complete(loop.create_unix_connection(
                asyncio.Protocol, str(tmp_path / "missing")))
        gc.collect()
    assert open_fds() == fds


# ---- connect_accepted_socket ------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"sock": "udp"},
    {"sock": None},
    {"sock": "tcp", "ssl_handshake_timeout": 1},
    {"sock": "tcp", "ssl_shutdown_timeout": 1},
    {"sock": "ssl"},
], ids=["datagram-sock", "no-sock", "handshake-timeout", "shutdown-timeout",
        "ssl-socket"])
def test_connect_accepted_socket_errors(loop, sockets, kwargs):
    def call(loop):
        given = dict(kwargs)
        given["sock"] = {"udp": lambda: made(sockets, type=socket.SOCK_DGRAM),
                         "tcp": lambda: made(sockets),
                         "ssl": lambda: ssl_socket(sockets),
                         None: lambda: None}[given["sock"]]()
        return loop.connect_accepted_socket(asyncio.Protocol, **given)

    got = outcome(loop, call)
    assert got == stdlib_outcome(loop, call)
    assert issubclass(got[0], (ValueError, TypeError, AttributeError))


def test_connect_accepted_socket_serves_the_connection(loop, caplog):
    """The accepted end becomes a non-blocking transport whose protocol
    hears the peer; debug mode logs it as stdlib does."""
    async def main():
        with socket.create_server(("127.0.0.1", 0)) as listener:
            client = socket.create_connection(listener.getsockname())
            accepted, _ = listener.accept()
        protocol = RecordingProtocol(loop)
        transport, got = await loop.connect_accepted_socket(
            lambda: protocol, sock=accepted)
        blocking = os.get_blocking(accepted.fileno())
        client.sendall(b"hello")
        client.close()
        await protocol.lost
        return (got is protocol, protocol.events, bytes(protocol.data),
                transport.is_closing(), blocking)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        facts = loop.run_until_complete(main())
    assert facts == (True, ["made", "data", "eof", "lost"], b"hello", True,
                     False)
    logged = [r.getMessage() for r in caplog.records
              if " handled: (" in r.getMessage()]
    assert len(logged) == (1 if loop.get_debug() else 0)


def test_connect_accepted_socket_is_a_coroutine(loop, sockets):
    coro = loop.connect_accepted_socket(asyncio.Protocol, made(sockets))
    assert asyncio.iscoroutine(coro)
    with pytest.warns(RuntimeWarning,
                      match="coroutine '.*connect_accepted_socket' was never"):
        del coro
        gc.collect()


# ---- sock_* and sendfile ----------------------------------------------------

def test_sock_methods_round_trip(loop):
    async def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        conn, _ = await accept
        await loop.sock_sendall(client, b"hello world")
        got = await loop.sock_recv(conn, 5)
        buf = bytearray(6)
        n = await loop.sock_recv_into(conn, buf)
        for s in (listener, client, conn):
            s.close()
        return got, bytes(buf[:n])

    assert loop.run_until_complete(main()) == (b"hello", b" world")


def sink_protocol(loop, pause_for=0):
    """A server protocol that collects what it receives; returns it, the
    bytearray it fills and a future set when the connection is lost. With
    pause_for it holds reading off that long first, so the client's write
    queue builds up."""
    received = bytearray()
    done = loop.create_future()

    class Sink(asyncio.Protocol):
        def connection_made(self, transport):
            if pause_for:
                transport.pause_reading()
                loop.call_later(pause_for, transport.resume_reading)

        def data_received(self, data):
            received.extend(data)

        def connection_lost(self, exc):
            done.set_result(None)

    return Sink, received, done


def test_sendfile_over_a_transport(loop, tmp_path):
    path = tmp_path / "data"
    payload = os.urandom(300_000)
    path.write_bytes(payload)

    async def main():
        Sink, received, done = sink_protocol(loop)
        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol,
                                                    "127.0.0.1", port)
        with open(path, "rb") as f:
            sent = await loop.sendfile(transport, f)
        transport.close()
        await done
        server.close()
        await server.wait_closed()
        return sent, bytes(received)

    assert loop.run_until_complete(main()) == (len(payload), payload)


def test_sendfile_behind_queued_data_then_writes_again(loop, tmp_path):
    """The zero-copy path: sendfile waits for the queue to drain, refuses
    write() while it runs, and leaves the transport usable."""
    path = tmp_path / "data"
    payload = os.urandom(1_000_000)
    path.write_bytes(payload)
    before, after = b"<" * 30_000_000, b">" * 1000

    async def main():
        Sink, received, done = sink_protocol(loop, pause_for=0.05)
        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol,
                                                    "127.0.0.1", port)
        transport.write(before)
        queued = transport.get_write_buffer_size() > 0
        with open(path, "rb") as f:
            sending = asyncio.ensure_future(
                loop.sendfile(transport, f, offset=10, count=500_000))
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError,
                               match="^unable to write; sendfile is in "
                                     "progress$"):
                transport.write(b"too early")
            sent = await sending
            position = f.tell()
        transport.write(after)
        transport.close()
        await done
        server.close()
        await server.wait_closed()
        return (queued, sent, position, type(transport)._sendfile_compatible,
                bytes(received))

    queued, sent, position, mode, received = loop.run_until_complete(main())
    assert queued and sent == 500_000 and position == 500_010
    assert mode.name == "TRY_NATIVE"
    assert received == before + payload[10:500_010] + after


def test_a_coroutine_resumed_from_inside_itself_is_refused(loop):
    """As CPython's own coroutines: _create_connection_transport calls the
    protocol factory from inside itself, and a factory that resumes it
    gets ValueError (casyncio's C coroutines, coro.c)."""
    refused = []
    coro = None

    def factory():
        try:
            coro.send(None)
        except ValueError as exc:
            refused.append(str(exc))
        return asyncio.Protocol()

    async def main():
        nonlocal coro
        coro = loop._create_connection_transport(a, factory, None, None)
        transport, _ = await coro
        transport.close()

    a, b = socket.socketpair()
    a.setblocking(False)
    with b:
        loop.run_until_complete(main())
    assert refused == ["coroutine already executing"]
