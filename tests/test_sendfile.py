"""Parity tests for loop.sendfile() and the sendfile fallbacks: the
zero-copy path, the fallback by reads (a file without a fileno, or
fallback forced), their errors, flow control and cancellation, on stdlib
asyncio and casyncio (see conftest.py). TLS transports, which only have
the fallback, are covered in test_tls.py; sock_sendfile in test_sock.py."""
import asyncio
import io
import os
import socket
import sys

import pytest

from asyncio import constants

TIMEOUT = 30


def keeps_caller_buffers(loop):
    """Whether the loop's transports queue the caller's memoryview instead
    of a copy, as stdlib's selector transport does from 3.12: its own
    _sendfile_fallback then sends blocks that the next read has already
    overwritten, whenever the transport queues (docs/compatibility.md)."""
    return loop.kind == "stdlib" and sys.version_info >= (3, 12)


class Recorder(asyncio.Protocol):
    """The client's own protocol: records what the transport tells it."""

    def __init__(self):
        self.events = []

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append(("connection_lost", type(exc)))


class ReadsRecorded(io.BytesIO):
    """A file without a fileno(), so sendfile falls back to reads; records
    the size of every read."""

    def __init__(self, data):
        super().__init__(data)
        self.reads = []

    def readinto(self, buf):
        self.reads.append(len(buf))
        return super().readinto(buf)


async def connected_pair(loop, pause_reading_for=0, server_side=None):
    """A client transport (with a Recorder) to a server that collects what
    it receives; returns (transport, recorder, received, lost, server).
    With pause_reading_for the server reads nothing for that long, so the
    client's writes back up. The server's transport is appended to
    server_side when given."""
    received = bytearray()
    lost = loop.create_future()

    class Sink(asyncio.Protocol):
        def connection_made(self, transport):
            if server_side is not None:
                server_side.append(transport)
            transport.set_write_buffer_limits(0)
            if pause_reading_for:
                transport.pause_reading()
                loop.call_later(pause_reading_for, transport.resume_reading)

        def data_received(self, data):
            received.extend(data)

        def connection_lost(self, exc):
            lost.set_result(None)

    server = await loop.create_server(Sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, recorder = await loop.create_connection(Recorder, "127.0.0.1",
                                                       port)
    return transport, recorder, received, lost, server


async def finish(transport, lost, server):
    transport.close()
    await lost
    server.close()
    await server.wait_closed()


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


@pytest.mark.parametrize("offset, count", [
    (0, None), (10, None), (10, 5000), (0, 1), (0, 10**9), (99_999, None),
    (200_000, None),
])
def test_fallback_for_a_file_without_fileno(loop, offset, count):
    """The native path finds no regular file and falls back to reads:
    16 KiB blocks, the count respected, the file left after what was
    sent, the transport's own protocol back and reading again."""
    payload = os.urandom(100_000)

    async def main():
        transport, recorder, received, lost, server = \
            await connected_pair(loop)
        source = ReadsRecorded(payload)
        sent = await loop.sendfile(transport, source, offset, count)
        state = (transport.get_protocol() is recorder, transport.is_reading())
        await finish(transport, lost, server)
        return sent, bytes(received), source.tell(), source.reads, state

    sent, received, position, reads, state = run(loop, main())
    expected = payload[offset:offset + count if count else None]
    assert (sent, received) == (len(expected), expected)
    assert position == offset + sent
    assert state == (True, True)
    assert all(n <= 16384 for n in reads)


def test_fallback_reads_as_stdlib_does(loop):
    """The sequence of read sizes, the last one cut to the count."""
    async def main():
        transport, _, _, lost, server = await connected_pair(loop)
        source = ReadsRecorded(bytes(70_000))
        await loop.sendfile(transport, source, 5, 40_000)
        await finish(transport, lost, server)
        return source.reads

    assert run(loop, main()) == [16384, 16384, 40_000 - 2 * 16384]


def test_fallback_false_raises_sendfile_not_available(loop):
    async def main():
        transport, _, _, lost, server = await connected_pair(loop)
        try:
            with pytest.raises(asyncio.SendfileNotAvailableError,
                               match="^not a regular file$"):
                await loop.sendfile(transport, io.BytesIO(b"x"),
                                    fallback=False)
            # The transport works as before.
            transport.write(b"still open")
        finally:
            await finish(transport, lost, server)

    run(loop, main())


def test_fallback_follows_the_transports_flow_control(loop):
    """The reader is slow: the transport pauses the stand-in protocol, not
    the application's, and the fallback waits for it to resume."""
    payload = os.urandom(8 * 1024 * 1024)

    async def main():
        transport, recorder, received, lost, server = \
            await connected_pair(loop, pause_reading_for=0.2)
        transport.set_write_buffer_limits(high=65536)
        sent = await loop.sendfile(transport, io.BytesIO(payload))
        await finish(transport, lost, server)
        return sent, bytes(received) == payload, recorder.events

    sent, same, events = run(loop, main())
    assert sent == len(payload)
    assert same or keeps_caller_buffers(loop)
    assert events == [("connection_lost", type(None))]


def test_stand_in_protocol_while_falling_back(loop):
    """During the fallback the transport's protocol is a stand-in
    asyncio.Protocol that refuses incoming data."""
    seen = []

    class Slow(io.BytesIO):
        def readinto(self, buf):
            seen.append(protocol_of())
            return super().readinto(buf)

    async def main():
        nonlocal protocol_of
        transport, recorder, _, lost, server = await connected_pair(loop)
        protocol_of = transport.get_protocol
        await loop.sendfile(transport, Slow(bytes(100)))
        await finish(transport, lost, server)
        return recorder

    protocol_of = None
    recorder = run(loop, main())
    stand_in = seen[0]
    assert stand_in is not recorder
    assert isinstance(stand_in, asyncio.Protocol)
    for call, args in [("data_received", (b"x",)), ("eof_received", ()),
                       ("connection_made", (None,))]:
        with pytest.raises(RuntimeError, match="^Invalid state: "):
            getattr(stand_in, call)(*args)


def test_cancelled_fallback_restores_the_transport(loop):
    """Cancelled while the reader is slow: the application's protocol is
    back, reading resumed, the file after what went out, and the
    transport still carries data."""
    payload = os.urandom(8 * 1024 * 1024)

    async def main():
        transport, recorder, received, lost, server = \
            await connected_pair(loop, pause_reading_for=0.3)
        transport.set_write_buffer_limits(high=65536)
        source = io.BytesIO(payload)
        sending = asyncio.ensure_future(loop.sendfile(transport, source))
        await asyncio.sleep(0.1)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        state = (transport.get_protocol() is recorder,
                 transport.is_reading(), 0 < source.tell() < len(payload))
        position = source.tell()
        transport.write(b"after")
        await finish(transport, lost, server)
        return state, bytes(received) == payload[:position] + b"after"

    state, same = run(loop, main())
    assert state == (True, True, True)
    assert same or keeps_caller_buffers(loop)


@pytest.mark.parametrize("count, exc, message", [
    (0, ValueError, "^count must be a positive integer \\(got 0\\)$"),
    (-5, ValueError, "^count must be a positive integer \\(got -5\\)$"),
    ("5", TypeError, "^count must be a positive integer \\(got '5'\\)$"),
])
def test_native_path_checks_its_arguments(loop, tmp_path, count, exc,
                                          message):
    path = tmp_path / "data"
    path.write_bytes(b"data")

    async def main():
        transport, _, _, lost, server = await connected_pair(loop)
        try:
            with open(path, "rb") as f, pytest.raises(exc, match=message):
                await loop.sendfile(transport, f, 0, count)
            return transport.is_reading()
        finally:
            await finish(transport, lost, server)

    assert run(loop, main()) is True


def test_a_closing_transport_is_refused(loop):
    async def main():
        transport, _, _, lost, server = await connected_pair(loop)
        transport.close()
        with pytest.raises(RuntimeError, match="^Transport is closing$"):
            await loop.sendfile(transport, io.BytesIO(b"x"))
        await finish(transport, lost, server)

    run(loop, main())


def test_a_datagram_transport_is_not_supported(loop):
    async def main():
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        try:
            with pytest.raises(RuntimeError) as info:
                await loop.sendfile(transport, io.BytesIO(b"x"))
        finally:
            transport.close()
        return str(info.value)

    assert run(loop, main()).startswith(
        "sendfile is not supported for transport <")


def test_fallback_false_for_a_fallback_only_transport(loop):
    """A transport that can only fall back, with fallback=False."""
    class FallbackOnly(asyncio.Transport):
        _sendfile_compatible = constants._SendfileMode.FALLBACK

        def is_closing(self):
            return False

        def __repr__(self):
            return "<FallbackOnly>"

    with pytest.raises(RuntimeError,
                       match="^fallback is disabled and native sendfile is "
                             "not supported for transport <FallbackOnly>$"):
        run(loop, loop.sendfile(FallbackOnly(), io.BytesIO(b"x"),
                                fallback=False))


def test_fallback_needs_a_flow_controlled_transport(loop):
    class Bare(asyncio.Transport):
        _sendfile_compatible = constants._SendfileMode.FALLBACK

        def is_closing(self):
            return False

    with pytest.raises(TypeError, match="^transport should be "
                                        "_FlowControlMixin instance$"):
        run(loop, loop.sendfile(Bare(), io.BytesIO(b"x")))


def test_a_replaced_sendfile_native_is_used(loop, tmp_path):
    """asyncio's tests replace _sendfile_native on the loop to force the
    fallback; sendfile looks it up on each call."""
    path = tmp_path / "data"
    path.write_bytes(b"z" * 50_000)
    calls = []

    async def refuse(transp, file, offset, count):
        calls.append((offset, count))
        raise asyncio.SendfileNotAvailableError("refused")

    async def main():
        transport, _, received, lost, server = await connected_pair(loop)
        loop._sendfile_native = refuse
        try:
            with open(path, "rb") as f:
                sent = await loop.sendfile(transport, f, 100)
        finally:
            del loop._sendfile_native
        await finish(transport, lost, server)
        return sent, len(received)

    assert run(loop, main()) == (49_900, 49_900)
    assert calls == [(100, None)]


def test_peer_reset_during_the_fallback(loop):
    """The peer resets the connection while the fallback writes to the
    paused transport: a ConnectionError comes out of sendfile (the reset
    itself if the fallback was waiting for the transport to resume, stdlib's
    "closed by peer" if it was reading the next block), and the
    application's protocol sees the loss."""
    async def main():
        server_side = []
        transport, recorder, _, lost, server = await connected_pair(
            loop, pause_reading_for=30, server_side=server_side)
        transport.set_write_buffer_limits(high=65536)
        sending = asyncio.ensure_future(
            loop.sendfile(transport, io.BytesIO(bytes(64 * 1024 * 1024))))
        while not transport._protocol_paused:
            await asyncio.sleep(0.001)
        server_side[0].abort()  # unread data: the kernel sends RST
        with pytest.raises(ConnectionError) as info:
            await sending
        await lost
        server.close()
        await server.wait_closed()
        return info.value, recorder.events

    exc, events = run(loop, main())
    assert (type(exc), str(exc)) in [
        (ConnectionResetError, "[Errno 104] Connection reset by peer"),
        (ConnectionError, "Connection closed by peer")]
    assert len(events) == 1 and events[0][0] == "connection_lost"
    assert issubclass(events[0][1], ConnectionError)


def test_os_sendfile_runs_below_no_application_frame(loop, tmp_path,
                                                     monkeypatch):
    """Blocking-call checkers (blockbuster, which aiohttp's tests use) fail
    an os.sendfile() made with an application's frame on the stack unless
    one of stdlib's sendfile frames is there too. Both loops pass that
    rule: stdlib by its frames, casyncio by calling it from the loop."""
    import inspect
    path = tmp_path / "data"
    path.write_bytes(b"s" * 300_000)
    real_sendfile = os.sendfile
    blocked = []

    def checked_sendfile(*args):
        frame = inspect.currentframe().f_back
        frames = []
        while frame:
            frames.append((frame.f_code.co_filename, frame.f_code.co_name))
            frame = frame.f_back
        allowed = any(
            (filename.endswith("asyncio/base_events.py")
             and name == "sendfile")
            or (filename.endswith("asyncio/unix_events.py")
                and name == "_sock_sendfile_native_impl")
            for filename, name in frames)
        if ("application_handler" in [name for _, name in frames]
                and not allowed):
            blocked.append(frames)
        return real_sendfile(*args)

    monkeypatch.setattr(os, "sendfile", checked_sendfile)

    async def application_handler():
        transport, recorder, received, lost, server = \
            await connected_pair(loop)
        with open(path, "rb") as f:
            sent = await loop.sendfile(transport, f)
        await finish(transport, lost, server)
        return sent, len(received)

    assert run(loop, application_handler()) == (300_000, 300_000)
    assert blocked == []


def test_sendfile_signature(loop):
    import inspect
    assert str(inspect.signature(loop.sendfile)) == \
        "(transport, file, offset=0, count=None, *, fallback=True)"


def test_sock_sendfile_fallback_reads_the_patched_block_size(loop,
                                                            monkeypatch):
    """sock_sendfile's fallback reads SENDFILE_FALLBACK_READBUFFER_SIZE
    as it is when the call starts."""
    monkeypatch.setattr(constants, "SENDFILE_FALLBACK_READBUFFER_SIZE", 1000)
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def main():
        source = ReadsRecorded(bytes(3500))
        sent = await loop.sock_sendfile(a, source, 200)
        got = bytearray()
        while len(got) < sent:
            got += await loop.sock_recv(b, 65536)
        return sent, len(got), source.reads, source.tell()

    try:
        assert run(loop, main()) == (3300, 3300, [1000] * 5, 3500)
    finally:
        a.close()
        b.close()
