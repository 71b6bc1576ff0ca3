"""asyncio streams over a real connection, on both loops. On casyncio the
StreamReader and StreamReaderProtocol of a connection run C methods
(src/ext/streams.c); each test here compares what a program sees with
stdlib's, and the adoption tests check which path a connection took."""
import asyncio
import random
import sys

import pytest
from parity import C_COPIES

PAYLOAD_LINES = [b"line %d %s\n" % (i, b"x" * (i * 37 % 300))
                 for i in range(60)]
PAYLOAD = b"".join(PAYLOAD_LINES) + b"tail without newline"


async def stream_pair(limit=2 ** 16):
    """A connected (client reader, client writer, server reader, server
    writer, server), over TCP, made with start_server/open_connection."""
    accepted = asyncio.get_running_loop().create_future()

    async def handler(reader, writer):
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(handler, "127.0.0.1", 0, limit=limit)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   limit=limit)
    server_reader, server_writer = await accepted
    return reader, writer, server_reader, server_writer, server


async def close_pair(pair):
    _, writer, _, server_writer, server = pair
    for w in (writer, server_writer):
        w.close()
    for w in (writer, server_writer):
        try:
            await w.wait_closed()
        except ConnectionError:
            pass
    server.close()
    await server.wait_closed()


def chunkings():
    rng = random.Random(1234)
    # Byte by byte through the first dozen lines (every read crosses
    # chunk edges there), then the rest at once: the whole payload a byte
    # at a time costs seconds per test, debug mode more.
    one_byte = [1] * 2000 + [len(PAYLOAD) - 2000]
    splits = []
    while sum(splits) < len(PAYLOAD):
        splits.append(rng.choice([1, 2, 3, 7, 64, 500, 4096]))
    return {"one-byte": one_byte, "random": splits, "whole": [len(PAYLOAD)]}


async def send_in_chunks(writer, sizes):
    at = 0
    for size in sizes:
        writer.write(PAYLOAD[at:at + size])
        at += size
        await writer.drain()
        # Let the peer see each chunk on its own.
        await asyncio.sleep(0)
    writer.write_eof()


async def read_all(reader, how):
    rng = random.Random(99)
    got = []
    if how == "readline":
        async for line in reader:
            got.append(line)
    elif how == "readexactly":
        while True:
            try:
                got.append(await reader.readexactly(rng.choice([1, 5, 100])))
            except asyncio.IncompleteReadError as e:
                got.append(("partial", e.partial, e.expected))
                break
    elif how == "readuntil":
        while True:
            try:
                got.append(await reader.readuntil(b" x"))
            except asyncio.IncompleteReadError as e:
                got.append(("partial", e.partial, e.expected))
                break
    else:
        while data := await reader.read(rng.choice([1, 3, 50, 1000])):
            got.append(data)
    return got, reader.at_eof()


def expected(how):
    if how == "readline":
        return PAYLOAD_LINES + [b"tail without newline"]
    return None


@pytest.mark.parametrize("chunking", ["one-byte", "random", "whole"])
@pytest.mark.parametrize("how", ["readline", "readexactly", "readuntil",
                                 "read"])
def test_reads_see_the_bytes_sent_whatever_the_chunking(loop, how, chunking):
    async def main():
        pair = await stream_pair()
        reader, writer, server_reader, server_writer, _ = pair
        sender = asyncio.ensure_future(
            send_in_chunks(server_writer, chunkings()[chunking]))
        got, at_eof = await read_all(reader, how)
        await sender
        await close_pair(pair)
        return got, at_eof

    got, at_eof = loop.run_until_complete(main())
    assert at_eof
    data = b"".join(g if isinstance(g, bytes) else g[1] for g in got)
    assert data == PAYLOAD
    if how == "readline":
        assert got == expected(how)
    if how == "readuntil":
        pieces = [g for g in got if isinstance(g, bytes)]
        assert all(p.endswith(b" x") for p in pieces)
        assert got[-1][2] is None
    if how == "readexactly":
        assert got[-1][0] == "partial"


def test_limits_and_errors_match_stdlib(loop):
    """LimitOverrunError and readline's ValueError, with what each leaves
    in the buffer; IncompleteReadError; a second concurrent read; an
    exception set on the reader; reads at EOF."""
    async def main():
        pair = await stream_pair(limit=10)
        reader, writer, _, server_writer, _ = pair
        seen = []

        async def outcome(coro):
            try:
                return ("ok", await coro)
            except (ValueError, RuntimeError, asyncio.LimitOverrunError,
                    asyncio.IncompleteReadError) as e:
                extra = (getattr(e, "consumed", None),
                         getattr(e, "partial", None))
                return (type(e).__name__, str(e), extra,
                        type(e.__context__).__name__)

        server_writer.write(b"0123456789abcdef\nshort\n")
        await asyncio.sleep(0.05)
        seen.append(await outcome(reader.readline()))
        seen.append(bytes(reader._buffer))
        seen.append(await outcome(reader.readline()))
        server_writer.write(b"0123456789abcdefghij")
        await asyncio.sleep(0.05)
        seen.append(await outcome(reader.readuntil(b"!")))
        seen.append(await outcome(reader.readline()))
        seen.append(bytes(reader._buffer))
        seen.append(await outcome(reader.readuntil(b"")))
        seen.append(await outcome(reader.readexactly(-1)))
        seen.append(await outcome(reader.read(0)))
        # A second reader while one waits.
        first = asyncio.ensure_future(reader.read(5))
        await asyncio.sleep(0)
        seen.append(await outcome(reader.readexactly(3)))
        seen.append(await outcome(reader.readuntil()))
        server_writer.write(b"abc")
        seen.append(await outcome(first))
        server_writer.write(b"xyz")
        server_writer.write_eof()
        await asyncio.sleep(0.05)
        seen.append(await outcome(reader.readexactly(5)))
        seen.append(await outcome(reader.readuntil(b"\n")))
        seen.append(await outcome(reader.read(5)))
        seen.append(await outcome(reader.readline()))
        seen.append(reader.at_eof())
        reader.set_exception(OSError("boom"))
        try:
            await reader.read(1)
        except OSError as e:
            seen.append(("raised", str(e)))
        await close_pair(pair)
        return seen

    from parity import on_stdlib
    assert loop.run_until_complete(main()) == on_stdlib(
        loop, lambda ref: ref.run_until_complete(main()))


def test_cancelled_read_leaves_the_reader_usable(loop):
    async def main():
        pair = await stream_pair()
        reader, _, _, server_writer, _ = pair
        results = []
        for read in (lambda: reader.read(10), lambda: reader.readline(),
                     lambda: reader.readexactly(4),
                     lambda: reader.readuntil(b"!")):
            task = asyncio.ensure_future(read())
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                results.append(("cancelled", reader._waiter))
        server_writer.write(b"data!\n")
        results.append(await reader.readuntil(b"!"))
        results.append(await reader.readline())
        await close_pair(pair)
        return results

    assert loop.run_until_complete(main()) == [
        ("cancelled", None)] * 4 + [b"data!", b"\n"]


def test_read_side_flow_control_pauses_and_resumes_the_transport(loop):
    """More than twice the limit buffered pauses reading; reading the
    buffer down to the limit resumes it."""
    async def main():
        pair = await stream_pair(limit=100)
        reader, writer, _, server_writer, _ = pair
        transport = writer.transport
        server_writer.write(b"a" * 1000)
        await server_writer.drain()
        for _ in range(100):
            await asyncio.sleep(0.005)
            if len(reader._buffer) >= 1000:
                break
        states = [(reader._paused, transport.is_reading())]
        await reader.readexactly(850)
        states.append((reader._paused, transport.is_reading()))
        await reader.readexactly(100)
        states.append((reader._paused, transport.is_reading()))
        await close_pair(pair)
        return states

    assert loop.run_until_complete(main()) == [
        (True, False), (True, False), (False, True)]


@pytest.mark.parametrize("side", ["client", "server"])
def test_drain_waits_under_write_flow_control_and_sees_connection_loss(
        loop, side):
    """Over a client's writer (stdlib's class) and a server's (adopted on
    casyncio)."""
    async def main():
        pair = await stream_pair()
        if side == "client":
            _, writer, peer_reader, _, _ = pair
        else:
            peer_reader, _, _, writer, _ = pair
        writer.transport.set_write_buffer_limits(high=1024)
        writer.write(b"z" * (4 * 1024 * 1024))
        drain = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0.01)
        pending = not drain.done()
        received = 0
        while received < 4 * 1024 * 1024:
            received += len(await peer_reader.read(1 << 20))
        await drain
        writer.transport.abort()
        try:
            await writer.drain()
            lost = None
        except ConnectionResetError as e:
            lost = str(e)
        await close_pair(pair)
        return pending, received, lost

    assert loop.run_until_complete(main()) == (
        True, 4 * 1024 * 1024, "Connection lost")


def test_drain_raises_the_readers_exception(loop):
    async def main():
        pair = await stream_pair()
        _, _, server_reader, server_writer, _ = pair
        server_reader.set_exception(OSError("reader failed"))
        try:
            await server_writer.drain()
            outcome = None
        except OSError as e:
            outcome = str(e)
        await close_pair(pair)
        return outcome

    assert loop.run_until_complete(main()) == "reader failed"


@pytest.mark.skipif(sys.version_info < (3, 13),
                    reason="readuntil takes a tuple of separators on 3.13+")
def test_readuntil_with_a_tuple_of_separators(loop):
    async def main():
        pair = await stream_pair()
        reader, _, _, server_writer, _ = pair
        server_writer.write(b"ab\r\ncd\nef")
        server_writer.write_eof()
        got = [await reader.readuntil((b"\n", b"\r\n")),
               await reader.readuntil((b"\n", b"\r\n"))]
        try:
            await reader.readuntil((b"!",))
        except asyncio.IncompleteReadError as e:
            got.append(e.partial)
        await close_pair(pair)
        return got

    assert loop.run_until_complete(main()) == [b"ab\r\n", b"cd\n", b"ef"]


def test_a_connection_takes_the_c_path_on_casyncio_only(loop):
    async def main():
        pair = await stream_pair()
        reader, writer, server_reader, _, _ = pair
        kinds = [(type(r) is asyncio.StreamReader,
                  isinstance(r, asyncio.StreamReader),
                  type(r).__name__, repr(r).split()[0])
                 for r in (reader, server_reader)]
        kinds += [(type(w) is asyncio.StreamWriter,
                   isinstance(w, asyncio.StreamWriter), type(w).__name__,
                   repr(w).split()[0])
                  for w in (writer, pair[3])]
        protocol = writer._protocol
        kinds.append((type(protocol) is asyncio.StreamReaderProtocol,
                      isinstance(protocol, asyncio.StreamReaderProtocol),
                      type(protocol).__name__,
                      repr(protocol).split(" object")[0]))
        await close_pair(pair)
        return kinds

    kinds = loop.run_until_complete(main())
    exact = loop.kind == "stdlib" or not C_COPIES
    assert kinds == [
        (exact, True, "StreamReader", "<StreamReader"),
        (exact, True, "StreamReader", "<StreamReader"),
        # A client's writer is made by open_connection(), out of the
        # loop's sight: it stays stdlib's.
        (True, True, "StreamWriter", "<StreamWriter"),
        (exact, True, "StreamWriter", "<StreamWriter"),
        (exact, True, "StreamReaderProtocol",
         "<asyncio.streams.StreamReaderProtocol")]


def test_subclasses_and_replaced_methods_keep_the_python_path(
        loop, monkeypatch):
    class LoggingReader(asyncio.StreamReader):
        def feed_data(self, data):
            fed.append(len(data))
            super().feed_data(data)

    fed = []
    read_calls = []
    drains = []
    original_drain = asyncio.StreamWriter.drain

    async def counted_drain(self):
        drains.append(type(self).__name__)
        await original_drain(self)
    original_read = asyncio.StreamReader.read

    async def counted_read(self, n=-1):
        read_calls.append(n)
        return await original_read(self, n)

    async def main():
        server = await asyncio.start_server(
            lambda r, w: (w.write(b"hello"), w.close()),
            "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        reader = LoggingReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await loop.create_connection(
            lambda: protocol, "127.0.0.1", port)
        subclass_read = await reader.read()
        subclass_type = type(reader) is LoggingReader
        transport.close()
        monkeypatch.setattr(asyncio.StreamReader, "read", counted_read)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        patched_read = await reader.read(100)
        monkeypatch.undo()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

        async def drain_once(r, w):
            await w.drain()
            w.close()

        monkeypatch.setattr(asyncio.StreamWriter, "drain", counted_drain)
        server = await asyncio.start_server(drain_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.read()
        writer.close()
        await writer.wait_closed()
        monkeypatch.undo()
        server.close()
        await server.wait_closed()
        return subclass_read, subclass_type, patched_read

    assert loop.run_until_complete(main()) == (b"hello", True, b"hello")
    assert sum(fed) == 5
    assert read_calls == [100]
    assert drains == ["StreamWriter"]


def test_unawaited_read_warns_as_a_coroutine(loop, recwarn):
    async def main():
        pair = await stream_pair()
        pair[0].read(10)
        await close_pair(pair)

    loop.run_until_complete(main())
    import gc
    gc.collect()
    messages = [str(w.message) for w in recwarn.list
                if issubclass(w.category, RuntimeWarning)]
    assert any("was never awaited" in m and "read" in m for m in messages)
