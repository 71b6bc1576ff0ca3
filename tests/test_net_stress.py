"""Stress tests on loopback, bounded in time, on both loops (debug off)."""
import asyncio
import os
import random
import resource
import sys
import textwrap

import pytest

# A client in its own process (the fd limit here cannot hold both ends of
# 10,000 connections): opens them in batches, sends each its number, checks
# the echo, says "ok", and holds them all open until stdin closes.
MANY_CLIENTS = textwrap.dedent("""
    import resource, selectors, socket, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, count = int(sys.argv[1]), int(sys.argv[2])
    sel = selectors.DefaultSelector()
    socks = []
    for start in range(0, count, 500):
        batch = []
        for i in range(start, min(count, start + 500)):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"%d\\n" % i)
            batch.append((i, s))
        for i, s in batch:
            data = b""
            while not data.endswith(b"\\n"):
                data += s.recv(100)
            assert data == b"%d\\n" % i, (i, data)
        socks += batch
    print("ok", len(socks), flush=True)
    sys.stdin.read()
""")


class Echo(asyncio.Protocol):
    open_count = 0

    def connection_made(self, transport):
        self.transport = transport
        Echo.open_count += 1

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        Echo.open_count -= 1


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < needed:
        pytest.skip(f"needs {needed} fds, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def test_ten_thousand_connections_held_open_and_echoed(loop_factory):
    count = 10_000
    old = raise_fd_limit(count + 200)
    loop = loop_factory()
    Echo.open_count = 0

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", MANY_CLIENTS, str(port), str(count),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        held = Echo.open_count
        proc.stdin.close()
        await proc.wait()
        while Echo.open_count:
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return line, held

    try:
        line, held = loop.run_until_complete(main())
    finally:
        loop.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    assert line == b"ok %d\n" % count
    assert held == count


def test_cancelled_connects_while_others_carry_data(loop_factory):
    """500 create_connection calls cancelled at random points while 20
    clients stream their own bytes: each client reads back exactly its
    own, nothing is reported to the exception handler, and no fd is left
    open or closed twice (a double close would hit a reused fd)."""
    loop = loop_factory()
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    rng = random.Random(7)

    async def client(port, ident):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in range(50):
            chunk = b"%d:%d;" % (ident, n) * rng.randint(1, 200)
            writer.write(chunk)
            assert await reader.readexactly(len(chunk)) == chunk
        writer.close()
        await writer.wait_closed()

    async def doomed(port):
        for _ in range(rng.randint(0, 3)):
            await asyncio.sleep(0)
        return await loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                            port)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        fds = len(os.listdir("/proc/self/fd"))
        clients = [asyncio.ensure_future(client(port, i)) for i in range(20)]
        outcomes = {"cancelled": 0, "connected": 0}
        for _ in range(500):
            task = asyncio.ensure_future(doomed(port))
            for _ in range(rng.randint(0, 12)):
                await asyncio.sleep(0)
            if not task.done():
                task.cancel()
            try:
                transport, _ = await task
                transport.close()
                outcomes["connected"] += 1
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
        await asyncio.gather(*clients)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(os.listdir("/proc/self/fd")) == fds and not Echo.open_count:
                break
        leaked = len(os.listdir("/proc/self/fd")) - fds
        server.close()
        await server.wait_closed()
        return leaked, outcomes

    Echo.open_count = 0
    try:
        leaked, outcomes = loop.run_until_complete(main())
    finally:
        loop.close()
    assert errors == []
    assert leaked == 0
    # Both fates must really happen for the test to mean anything.
    assert min(outcomes.values()) >= 20, outcomes


def test_paused_reader_against_flow_controlled_writer(loop_factory):
    """The server stops reading; the client keeps writing until its
    transport pauses it; the server resumes; everything arrives, in order,
    and the client is resumed."""
    loop = loop_factory()
    total = 8 * 1024 * 1024
    payload = os.urandom(total)

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.data = bytearray()
            self.done = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport
            transport.pause_reading()
            sink.set_result(self)

        def data_received(self, data):
            self.data += data
            if len(self.data) == total:
                self.done.set_result(None)

    class Source(asyncio.Protocol):
        def __init__(self):
            self.paused = loop.create_future()
            self.resumed = loop.create_future()

        def pause_writing(self):
            self.paused.set_result(None)

        def resume_writing(self):
            self.resumed.set_result(None)

    sink = loop.create_future()

    async def main():
        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, source = await loop.create_connection(
            Source, "127.0.0.1", port)
        server_side = await sink
        view = memoryview(payload)
        offset = 0
        while not source.paused.done():
            transport.write(view[offset:offset + 65536])
            offset += 65536
        assert transport.get_write_buffer_size() > 0
        await asyncio.sleep(0.05)
        assert not server_side.data  # still paused: nothing delivered
        server_side.transport.resume_reading()
        await source.resumed
        transport.write(view[offset:])
        await asyncio.wait_for(server_side.done, 60)
        transport.close()
        server.close()
        await server.wait_closed()
        return bytes(server_side.data) == payload

    try:
        assert loop.run_until_complete(main())
    finally:
        loop.close()
