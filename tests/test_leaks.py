"""Leak checks: each object path runs many times and the references it
touches (and the process's memory) must stay flat. The interpreters here
are release builds, so per-object sys.getrefcount stands in for
sys.gettotalrefcount."""
import asyncio
import contextvars
import gc
import io
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

import casyncio
from parity import needs_c_copies

ROUNDS = 20000


def rss_kib():
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def settled_open_fds(at_most=None):
    """The open fds without transient ones: a resolution cancelled in a
    cycle goes on in an executor thread, which opens /etc/hosts meanwhile.
    The least count seen over 0.1 s, or until it is at most at_most (2 s
    at the most)."""
    least = open_fds()
    for _ in range(10 if at_most is None else 200):
        if at_most is not None and least <= at_most:
            break
        time.sleep(0.01)
        least = min(least, open_fds())
    return least


def assert_cycles_flat(loop, cycles, warm_up, rounds):
    """Runs cycles(warm_up), then cycles(rounds): the open fds, the RSS
    (within 2 MiB) and the number of GC-tracked objects must come back to
    where they were. An object kept alive per cycle would add rounds."""
    loop.run_until_complete(cycles(warm_up))
    gc.collect()
    fds, rss = settled_open_fds(), rss_kib()
    tracked = len(gc.get_objects())
    loop.run_until_complete(cycles(rounds))
    gc.collect()
    grown = rss_kib() - rss
    assert settled_open_fds(at_most=fds) <= fds
    assert grown < 2048, f"RSS grew by {grown} KiB over {rounds} cycles"
    assert len(gc.get_objects()) - tracked < 100


def assert_cycle_flat(cycle, warm_up, rounds):
    """assert_cycles_flat for await cycle(loop), once per round, on a new
    casyncio loop."""
    async def cycles(n):
        loop = asyncio.get_running_loop()
        for _ in range(n):
            await cycle(loop)

    loop = casyncio.new_event_loop()
    try:
        assert_cycles_flat(loop, cycles, warm_up, rounds)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def exercise(loop, cb, arg):
    """Every Handle/TimerHandle path that holds cb and arg."""
    for _ in range(100):
        loop.call_soon(cb, arg)
        loop.call_soon(cb, arg, context=None).cancel()
        loop.call_later(0, cb, arg)
        loop.call_later(100, cb, arg).cancel()
        loop.call_at(loop.time() + 100, cb, arg)
        repr(loop.call_soon(cb, arg))
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_handles_do_not_leak_references():
    loop = casyncio.new_event_loop()
    calls = []
    cb = calls.append
    arg = object()
    try:
        exercise(loop, cb, arg)  # warm-up: freelists, caches
        calls.clear()
        before = (sys.getrefcount(cb), sys.getrefcount(arg))
        for _ in range(ROUNDS // 100):
            exercise(loop, cb, arg)
            calls.clear()
        # call_at timers far in the future are still pending: 1 ref each.
        pending = (ROUNDS // 100) * 100
        after = (sys.getrefcount(cb), sys.getrefcount(arg))
        assert after[0] - before[0] == pending
        assert after[1] - before[1] == pending
    finally:
        loop.close()
    gc.collect()
    assert sys.getrefcount(arg) == before[1] - 100  # warm-up timers gone too


def test_loop_lifecycle_memory_is_flat():
    async def main():
        await asyncio.sleep(0)
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, 1)
        await fut
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(10)))

    def cycle(n):
        for _ in range(n):
            casyncio.run(main())
            loop = casyncio.new_event_loop()
            r, w = os.pipe()
            loop.add_reader(r, print)
            loop.add_writer(w, print)
            loop.remove_reader(r)
            loop.close()
            os.close(r)
            os.close(w)
        gc.collect()

    cycle(200)
    start = rss_kib()
    cycle(2000)
    grown = rss_kib() - start
    assert grown < 2048, f"RSS grew by {grown} KiB over 2000 loop lifecycles"


@pytest.mark.parametrize("debug", [False, True])
def test_exception_path_does_not_leak(debug):
    loop = casyncio.new_event_loop()
    loop.set_debug(debug)
    loop.set_exception_handler(lambda lp, ctx: None)
    arg = object()

    def bad(a):
        raise ValueError(a)

    def burst():
        for _ in range(200):
            loop.call_soon(bad, arg)
        loop.call_soon(loop.stop)
        loop.run_forever()

    burst()
    gc.collect()
    before = sys.getrefcount(arg)
    for _ in range(20):
        burst()
    gc.collect()
    assert sys.getrefcount(arg) == before
    loop.close()


def test_connect_echo_close_cycles_keep_memory_and_fds_flat():
    """1,000 connect/echo/close cycles (transport, accept loop, streams):
    memory and the number of open fds come back to where they were."""
    payload = b"x" * 4096

    async def echo(reader, writer):
        writer.write(await reader.readexactly(len(payload)))
        await writer.drain()
        writer.close()

    async def cycles(port, n):
        for _ in range(n):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
            await writer.wait_closed()

    loop = casyncio.new_event_loop()
    try:
        server = loop.run_until_complete(
            asyncio.start_server(echo, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        loop.run_until_complete(cycles(port, 200))
        gc.collect()
        fds, start = open_fds(), rss_kib()
        loop.run_until_complete(cycles(port, 1000))
        loop.run_until_complete(asyncio.sleep(0.05))  # server-side closes
        gc.collect()
        grown = rss_kib() - start
        assert open_fds() == fds
        assert grown < 2048, f"RSS grew by {grown} KiB over 1000 cycles"
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()



@needs_c_copies
def test_stream_c_paths_keep_objects_flat():
    """Every C path of the adopted streams (src/ext/streams.c), success and
    error alike, run per connection: readline, readuntil, readexactly,
    read, write, drain, LimitOverrunError and readline's ValueError,
    IncompleteReadError, a cancelled read, an exception set on the
    reader. The GC-tracked objects, fds and RSS stay flat."""
    async def serve(reader, writer):
        assert type(reader) is not asyncio.StreamReader  # the C path
        line = await reader.readline()
        part = await reader.readuntil(b"|")
        exact = await reader.readexactly(3)
        writer.write(line + part + exact)
        await writer.drain()
        try:
            await reader.readline()  # longer than the limit
        except ValueError:
            pass
        try:
            await reader.readuntil(b"!")
        except asyncio.LimitOverrunError:
            pass
        pending = asyncio.ensure_future(reader.read(10))
        await asyncio.sleep(0)
        pending.cancel()
        try:
            await pending
        except asyncio.CancelledError:
            pass
        writer.write(b"done")
        await writer.drain()
        try:
            await reader.readexactly(1000)  # more than is ever sent
        except asyncio.IncompleteReadError:
            pass
        reader.set_exception(OSError("over"))
        try:
            await reader.read(1)
        except OSError:
            pass
        writer.close()

    async def cycles(n):
        for _ in range(n):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"line\npart|abc" + b"y" * 300 + b"\n")
            await writer.drain()
            await reader.readexactly(13)
            writer.write(b"z" * 300)
            assert await reader.readexactly(4) == b"done"
            writer.write(b"short")
            writer.write_eof()
            await reader.read()
            writer.close()
            await writer.wait_closed()

    loop = casyncio.new_event_loop()
    try:
        server = loop.run_until_complete(
            asyncio.start_server(serve, "127.0.0.1", 0, limit=100))
        port = server.sockets[0].getsockname()[1]
        assert_cycles_flat(loop, cycles, 100, 1000)
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()


def test_sendfile_over_a_transport_keeps_memory_and_fds_flat(tmp_path):
    """loop.sendfile()'s zero-copy path (empty waiter, fd released and
    reclaimed), once behind queued data, on one connection many times."""
    path = tmp_path / "data"
    path.write_bytes(b"f" * 20000)

    async def cycles(transport, n):
        loop = asyncio.get_running_loop()
        with open(path, "rb") as f:
            for _ in range(n):
                transport.write(b"q" * 200000)  # queued: the waiter waits
                assert await loop.sendfile(transport, f, offset=0) == 20000

    async def sink(reader, writer):
        while await reader.read(1 << 20):
            pass
        writer.close()

    loop = casyncio.new_event_loop()
    try:
        server = loop.run_until_complete(
            asyncio.start_server(sink, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        transport, _ = loop.run_until_complete(loop.create_connection(
            asyncio.Protocol, "127.0.0.1", port))
        loop.run_until_complete(cycles(transport, 100))
        gc.collect()
        fds, start = open_fds(), rss_kib()
        loop.run_until_complete(cycles(transport, 1000))
        gc.collect()
        grown = rss_kib() - start
        assert open_fds() == fds
        assert grown < 2048, f"RSS grew by {grown} KiB over 1000 sendfiles"
        transport.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()


def test_sendfile_fallbacks_keep_objects_flat():
    """loop.sendfile()'s fallback by reads (the stand-in protocol, the
    executor reads, each block written), cancelled on the way and failing
    at its checks; and sock_sendfile's fallback."""
    payload = bytes(50000)

    async def sink(reader, writer):
        while await reader.read(1 << 20):
            pass
        writer.close()

    async def cycles(n):
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol,
                                                    "127.0.0.1", port)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        for _ in range(n):
            assert await loop.sendfile(transport, io.BytesIO(payload),
                                       10, 30000) == 30000
            sending = asyncio.ensure_future(
                loop.sendfile(transport, io.BytesIO(payload)))
            await asyncio.sleep(0)
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            with pytest.raises(ValueError):
                await loop.sendfile(transport, io.BytesIO(payload), 0, -1)
            assert await loop.sock_sendfile(a, io.BytesIO(b"s" * 300)) == 300
            assert len(await loop.sock_recv(b, 1000)) == 300
        transport.close()
        a.close()
        b.close()
        server.close()
        await server.wait_closed()

    loop = casyncio.new_event_loop()
    try:
        assert_cycles_flat(loop, cycles, 20, 400)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

def test_address_resolution_paths_keep_objects_flat(caplog):
    """_ensure_resolved's conversions (numeric, looked up, refused),
    _create_server_getaddrinfo with an empty answer, and the debug-mode
    _getaddrinfo_debug; the host and port objects passed keep their
    reference counts."""
    host, port = b"127.0.0.1", "80"
    name = "x.example"

    async def nothing(*args, **kwargs):
        return []

    async def cycle(loop):
        assert len(await loop._ensure_resolved((host, port), loop=loop)) == 1
        assert len(await loop._ensure_resolved(("::1", 80.5, 1, 2),
                                               loop=loop)) == 1
        assert await loop._ensure_resolved((name, port), loop=fake) == []
        for bad in ((host,), (host, port, 1, 2, 3), (b"\xff", port)):
            with pytest.raises((ValueError, TypeError, UnicodeError)):
                await loop._ensure_resolved(bad, loop=loop)
        with pytest.raises(OSError, match="returned empty list"):
            await fake._create_server_getaddrinfo(name, port, 0, 0)
        assert loop._getaddrinfo_debug("::1", port, 0, 1, 0, 0)

    fake = casyncio.new_event_loop()
    fake.getaddrinfo = nothing
    refs = sys.getrefcount(host), sys.getrefcount(port), sys.getrefcount(name)
    try:
        with caplog.at_level("CRITICAL", logger="asyncio"):
            assert_cycle_flat(cycle, 100, 5000)
    finally:
        fake.close()
    assert (sys.getrefcount(host), sys.getrefcount(port),
            sys.getrefcount(name)) == refs


@pytest.mark.main_interpreter
def test_signal_handler_paths_do_not_leak_references():
    """add/replace/remove handlers and deliver signals many times: the
    callback and its argument are referenced by nothing afterwards."""
    import signal
    loop = casyncio.new_event_loop()
    calls = []
    cb = calls.append
    arg = object()

    def rounds(n):
        for _ in range(n):
            loop.add_signal_handler(signal.SIGUSR1, cb, arg)
            loop.add_signal_handler(signal.SIGUSR1, cb, arg)  # replaces
            os.kill(os.getpid(), signal.SIGUSR1)
            loop.call_later(0.001, loop.stop)
            loop.run_forever()
            assert loop.remove_signal_handler(signal.SIGUSR1)

    try:
        rounds(10)
        calls.clear()
        before = (sys.getrefcount(cb), sys.getrefcount(arg))
        rounds(1000)
        assert len(calls) == 1000
        calls.clear()
        assert (sys.getrefcount(cb), sys.getrefcount(arg)) == before
    finally:
        loop.close()


def test_subprocess_cycles_keep_memory_and_fds_flat():
    """Spawn and reap children on every transport path: communicate over
    three pipes, a running child killed by close(), a failed exec and a
    creation cancelled midway. No fd (pidfd, pipes), child entry, object
    or memory is left behind."""
    async def paths(loop):
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "cat; echo e >&2", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert await proc.communicate(b"x" * 1000) == (b"x" * 1000, b"e\n")
        transport, _ = await loop.subprocess_exec(
            asyncio.SubprocessProtocol, "sleep", "30",
            stdout=asyncio.subprocess.PIPE)
        transport.close()
        assert await transport._wait() == -9
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program")
        creating = asyncio.ensure_future(
            asyncio.create_subprocess_exec("sleep", "30"))
        await asyncio.sleep(0)
        creating.cancel()
        with pytest.raises(asyncio.CancelledError):
            await creating

    assert_cycle_flat(paths, 20, 200)


def test_pipe_transport_cycles_keep_memory_and_fds_flat():
    """connect_read_pipe/connect_write_pipe, data through, EOF, close."""
    async def cycles(n):
        loop = asyncio.get_running_loop()
        for _ in range(n):
            r, w = os.pipe()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader),
                os.fdopen(r, "rb"))
            wt, _ = await loop.connect_write_pipe(asyncio.Protocol,
                                                  os.fdopen(w, "wb"))
            wt.write(b"x" * 100000)
            wt.close()
            assert len(await reader.read()) == 100000

    loop = casyncio.new_event_loop()
    try:
        loop.run_until_complete(cycles(100))
        gc.collect()
        fds, start = open_fds(), rss_kib()
        loop.run_until_complete(cycles(1000))
        gc.collect()
        grown = rss_kib() - start
        assert open_fds() == fds
        assert grown < 2048, f"RSS grew by {grown} KiB over 1000 pipe pairs"
    finally:
        loop.close()


def test_datagram_transport_cycles_keep_memory_and_fds_flat(tmp_path):
    """UDP endpoints created, echoing (each datagram's bytes and address
    tuple built in C), then closed; plus the queued path, against a Unix
    datagram peer that reads only after the queue has built up."""
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Count(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = 0
            self.done = asyncio.get_running_loop().create_future()

        def datagram_received(self, data, addr):
            self.got += 1
            if self.got == 100:
                self.done.set_result(None)

    async def cycles(n):
        loop = asyncio.get_running_loop()
        peer_path = str(tmp_path / "peer.sock")
        for _ in range(n):
            server, _ = await loop.create_datagram_endpoint(
                Echo, local_addr=("127.0.0.1", 0))
            client, proto = await loop.create_datagram_endpoint(
                Count, remote_addr=server.get_extra_info("sockname"))
            for i in range(100):
                client.sendto(b"%d" % i)
            await proto.done
            client.close()
            server.close()

            peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            peer.bind(peer_path)
            sender, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=peer_path,
                family=socket.AF_UNIX)
            for i in range(30):  # more than the kernel queue takes (10)
                sender.sendto(b"x" * 100)
            assert sender.get_write_buffer_size() > 0
            peer.setblocking(False)
            received = 0
            while received < 30:
                try:
                    peer.recv(200)
                    received += 1
                except BlockingIOError:
                    await asyncio.sleep(0)
            sender.close()
            peer.close()
            os.unlink(peer_path)

    loop = casyncio.new_event_loop()
    try:
        loop.run_until_complete(cycles(100))
        gc.collect()
        fds, start = open_fds(), rss_kib()
        loop.run_until_complete(cycles(1000))
        gc.collect()
        grown = rss_kib() - start
        assert open_fds() == fds
        assert grown < 2048, f"RSS grew by {grown} KiB over 1000 cycles"
    finally:
        loop.close()


def test_sock_call_paths_keep_memory_and_fds_flat():
    """sock_* coroutines on every path: done at once, waiting then
    completed, cancelled while waiting, failing, closed unawaited-but-
    started, sock_sendall resuming after the socket buffer filled,
    sock_connect connecting or refused, getaddrinfo/getnameinfo at once,
    in the executor and failing, and sock_sendfile waiting on the way or
    falling back."""
    async def drain(sock, total):
        loop = asyncio.get_running_loop()
        while total:
            total -= len(await loop.sock_recv(sock, 1 << 16))

    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refusing = closed.getsockname()

    async def connect_paths(loop):
        with socket.socket() as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, listener.getsockname())
            conn, _ = await loop.sock_accept(listener)
            conn.close()
        with socket.socket() as sock:
            sock.setblocking(False)
            with pytest.raises(ConnectionRefusedError):
                await loop.sock_connect(sock, refusing)

    async def resolver_paths(loop):
        await loop.getaddrinfo("127.0.0.1", 80)  # at once
        await loop.getaddrinfo("localhost", 80)  # in the executor
        await loop.getnameinfo(("127.0.0.1", 80))
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("127.0.0.1", 80, family=socket.AF_INET6)

    sendfile_data = tempfile.TemporaryFile()
    sendfile_data.write(os.urandom(300000))

    async def sendfile_paths(loop, a, b):
        reader = asyncio.ensure_future(drain(b, 300000 + 1000))
        sendfile_data.seek(0)
        await loop.sock_sendfile(a, sendfile_data)  # waits on the way
        await loop.sock_sendfile(a, io.BytesIO(bytes(1000)))  # fallback
        await reader

    async def cycles(n):
        loop = asyncio.get_running_loop()
        for _ in range(n):
            await connect_paths(loop)
            await resolver_paths(loop)
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            b.send(b"ready")
            await loop.sock_recv(a, 10)
            waiting = asyncio.ensure_future(loop.sock_recv_into(
                a, bytearray(10)))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, b"later")
            await waiting
            cancelled = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            cancelled.cancel()
            await asyncio.gather(cancelled, return_exceptions=True)
            started = loop.sock_recv(a, 10)
            started.send(None)  # suspended on its future
            started.close()
            b.send(b"x")  # completes the abandoned call's future
            await asyncio.sleep(0)
            reader = asyncio.ensure_future(drain(b, 1 << 21))
            await loop.sock_sendall(a, bytes(1 << 21))
            await reader
            await sendfile_paths(loop, a, b)
            a.close()
            with pytest.raises(OSError):
                await loop.sock_recv(a, 10)
            b.close()
            await asyncio.sleep(0)

    loop = casyncio.new_event_loop()
    try:
        assert_cycles_flat(loop, cycles, 200, 2000)
    finally:
        loop.close()
        listener.close()
        sendfile_data.close()


def test_create_connection_paths_keep_memory_and_fds_flat(full_listener):
    """create_connection on every path: connected by host and port, with
    local_addr, over a given socket, refused, all addresses failing with
    different errors, a local_addr that cannot be bound, cancelled while
    connecting, closed while suspended; and connect_accepted_socket, which
    runs _create_connection_transport."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    address = listener.getsockname()
    hanging = full_listener.getsockname()  # connects to it stay pending
    refusing = []
    for _ in range(2):
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            refusing.append(closed.getsockname()[1])

    async def several(*args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 ("127.0.0.1", port)) for port in refusing]

    async def accept_and_close(loop):
        conn, _ = await loop.sock_accept(listener)
        conn.close()

    async def connected(loop, **kwargs):
        transport, _ = await loop.create_connection(asyncio.Protocol,
                                                    **kwargs)
        transport.close()
        await accept_and_close(loop)

    async def cycle(loop):
        await connected(loop, host="127.0.0.1", port=address[1])
        await connected(loop, host="127.0.0.1", port=address[1],
                        local_addr=("127.0.0.1", 0))
        sock = socket.create_connection(address)
        await connected(loop, sock=sock)
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                         refusing[0])
        loop.getaddrinfo = several
        with pytest.raises(OSError, match="Multiple exceptions"):
            await loop.create_connection(asyncio.Protocol, "x.example", 80)
        del loop.getaddrinfo
        with pytest.raises(OSError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                         address[1], local_addr=address)
        task = asyncio.ensure_future(loop.create_connection(
            asyncio.Protocol, *hanging))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        coro = loop.create_connection(asyncio.Protocol, *hanging)
        coro.send(None)
        coro.close()
        client = socket.create_connection(address)
        conn, _ = listener.accept()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol,
                                                          conn)
        transport.close()
        client.close()
        await asyncio.sleep(0)

    try:
        assert_cycle_flat(cycle, 100, 1000)
    finally:
        listener.close()


def test_happy_eyeballs_paths_keep_memory_and_fds_flat(full_listener):
    """The race: won by the second address after the first is refused,
    won after the delay while the first hangs (the loser cancelled), lost
    by every address, and cancelled while its attempts wait."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    live = server.getsockname()[1]
    hanging = full_listener.getsockname()[1]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]

    def resolving_to(*ports):
        async def getaddrinfo(*args, **kwargs):
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP,
                     "", ("127.0.0.1", port)) for port in ports]
        return getaddrinfo

    async def race(loop, *ports, delay=0.001):
        loop.getaddrinfo = resolving_to(*ports)
        try:
            return await loop.create_connection(
                asyncio.Protocol, "x.example", 80,
                happy_eyeballs_delay=delay)
        finally:
            del loop.getaddrinfo

    async def won(loop, *ports):
        transport, _ = await race(loop, *ports)
        transport.close()
        conn, _ = await loop.sock_accept(server)
        conn.close()

    async def cycle(loop):
        await won(loop, refused, live)
        await won(loop, hanging, live)
        with pytest.raises(ConnectionRefusedError):  # one error, 3 times
            await race(loop, refused, refused, refused)
        task = asyncio.ensure_future(race(loop, hanging, hanging))
        await asyncio.sleep(0.002)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # the cancelled attempts close their sockets

    try:
        assert_cycle_flat(cycle, 20, 300)
    finally:
        server.close()


def test_server_paths_keep_memory_and_fds_flat(tmp_path):
    """create_server (numeric, by name, on a given socket, failing to
    bind, cancelled while resolving) and create_unix_server (a path, a
    stale file, failing), each Server served, connected to, then closed
    through serve_forever's cancellation, wait_closed and async with; and
    create_unix_connection connected and refused."""
    path = str(tmp_path / "server.sock")
    busy = socket.create_server(("127.0.0.1", 0))

    async def connect_and_close(server):
        address = server.sockets[0].getsockname()
        if server.sockets[0].family == socket.AF_UNIX:
            transport, _ = await asyncio.get_running_loop(
            ).create_unix_connection(asyncio.Protocol, address)
        else:
            transport, _ = await asyncio.get_running_loop(
            ).create_connection(asyncio.Protocol, *address[:2])
        transport.close()

    async def cycle(loop):
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        await connect_and_close(server)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with await loop.create_server(
                asyncio.Protocol, ["127.0.0.1", "localhost"], 0,
                start_serving=False) as server:
            await server.start_serving()
        sock = socket.create_server(("127.0.0.1", 0))
        server = await loop.create_server(asyncio.Protocol, sock=sock)
        server.close()
        await server.wait_closed()
        with pytest.raises(OSError):
            await loop.create_server(asyncio.Protocol, "127.0.0.1",
                                     busy.getsockname()[1],
                                     reuse_address=False)
        task = asyncio.ensure_future(loop.create_server(
            asyncio.Protocol, "localhost", 0))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server = await loop.create_unix_server(asyncio.Protocol, path)
        await connect_and_close(server)
        server.close()
        await server.wait_closed()
        with pytest.raises(OSError):
            await loop.create_unix_server(asyncio.Protocol, str(tmp_path))
        if os.path.exists(path):
            os.unlink(path)
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(asyncio.Protocol, path)
        await asyncio.sleep(0)

    try:
        assert_cycle_flat(cycle, 50, 500)
    finally:
        busy.close()


def test_connection_context_paths_keep_memory_and_fds_flat():
    """The contexts connections run in (3.15: the transport's, copied from
    the caller or the Server; every version: the copy an accepted
    connection's protocol is made in), with a ContextVar holding a fresh
    100 KB object in each: accepted and refused by a failing protocol
    factory, client connections, connect_accepted_socket, and on 3.15
    _make_socket_transport given a context of its own."""
    var = contextvars.ContextVar("var")

    class Setting(asyncio.Protocol):
        def connection_made(self, transport):
            var.set(bytes(100_000))
            transport.close()

    def failing():
        raise RuntimeError("no protocol")

    async def cycle(loop):
        var.set(bytes(100_000))
        server = await loop.create_server(Setting, "127.0.0.1", 0)
        refusing = await loop.create_server(failing, "127.0.0.1", 0)
        for s in (server, refusing):
            reader, writer = await asyncio.open_connection(
                *s.sockets[0].getsockname())
            await reader.read()
            writer.close()
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Setting, a)
        b.close()
        if sys.version_info >= (3, 15):
            a, b = socket.socketpair()
            a.setblocking(False)
            waiter = loop.create_future()
            loop._make_socket_transport(a, Setting(), waiter,
                                        context=contextvars.Context())
            await waiter
            b.close()
        for s in (server, refusing):
            s.close()
            await s.wait_closed()
        await asyncio.sleep(0)

    assert_cycle_flat_quiet(cycle, 20, 300)


def test_datagram_endpoint_set_up_paths_keep_memory_and_fds_flat(tmp_path):
    """create_datagram_endpoint's set-up on every path: by name, over a
    given socket, broadcast, a Unix path (stale file removed), refused, no
    usable (family, proto) pair, argument errors, cancelled while
    resolving, closed while suspended."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    path = str(tmp_path / "endpoint")

    async def made(loop, **kwargs):
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, **kwargs)
        transport.close()

    async def cycle(loop):
        await made(loop, local_addr=("localhost", 0), family=socket.AF_INET)
        await made(loop, sock=socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        await made(loop, local_addr=("127.0.0.1", 0),
                   remote_addr=peer.getsockname(), allow_broadcast=True)
        await made(loop, local_addr=path, family=socket.AF_UNIX)
        with pytest.raises(FileNotFoundError):
            await made(loop, remote_addr=str(tmp_path / "nobody"),
                       family=socket.AF_UNIX)
        with pytest.raises(ValueError):
            await made(loop, local_addr=("127.0.0.1", 0),
                       remote_addr=("::1", 1))
        with pytest.raises(TypeError):
            await made(loop, local_addr="127.0.0.1")
        task = asyncio.ensure_future(made(loop, local_addr=("localhost", 0)))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        coro = loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                             local_addr=("localhost", 0))
        coro.send(None)
        coro.close()
        await asyncio.sleep(0)

    try:
        assert_cycle_flat(cycle, 50, 500)
    finally:
        peer.close()


def tls_contexts(tmp_path):
    """A server context with a fresh self-signed certificate, and a client
    context that accepts it."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                    str(tmp_path / "key.pem"), "-out",
                    str(tmp_path / "cert.pem"), "-days", "2", "-subj",
                    "/CN=localhost"], check=True, capture_output=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    return server_ctx, client_ctx


def test_tls_record_path_keeps_memory_flat(tmp_path):
    """Echo over TLS in small and large messages, both directions, with
    close_notify at the end of each connection: the C record path keeps
    no object and no memory per record or per connection."""
    server_ctx, client_ctx = tls_contexts(tmp_path)
    small, large = b"x" * 100, os.urandom(200000)

    async def main():
        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0,
                                            ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]

        async def connection(rounds):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx)
            for _ in range(rounds):
                writer.write(small)
                assert await reader.readexactly(len(small)) == small
            writer.write(large)
            assert await reader.readexactly(len(large)) == large
            writer.close()
            await writer.wait_closed()

        async def cycles(n):
            for _ in range(n):
                await connection(20)

        await cycles(20)  # warm-up
        gc.collect()
        rss, tracked = rss_kib(), len(gc.get_objects())
        await cycles(300)
        gc.collect()
        grown, objects = rss_kib() - rss, len(gc.get_objects()) - tracked
        server.close()
        await server.wait_closed()
        return grown, objects

    loop = casyncio.new_event_loop()
    try:
        grown, objects = loop.run_until_complete(
            asyncio.wait_for(main(), 120))
    finally:
        loop.close()
    assert grown < 2048, f"RSS grew by {grown} KiB over 300 connections"
    # An object kept per connection would add 300, per record 6000.
    assert objects < 100


@needs_c_copies
def test_start_tls_paths_keep_memory_and_fds_flat(tmp_path):
    """start_tls upgrading a plain connection on both ends, refusing a
    bad context, and cancelled during the handshake."""
    server_ctx, client_ctx = tls_contexts(tmp_path)

    async def upgrade(reader, writer):
        try:
            await writer.start_tls(server_ctx)
            writer.write(await reader.readexactly(5))
            await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        writer.close()

    async def cycle(loop):
        server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()
        reader, writer = await asyncio.open_connection(*address)
        await writer.start_tls(client_ctx)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        writer.close()
        await writer.wait_closed()
        transport, protocol = await loop.create_connection(asyncio.Protocol,
                                                           *address)
        with pytest.raises(TypeError):
            await loop.start_tls(transport, protocol, object())
        task = asyncio.ensure_future(loop.start_tls(transport, protocol,
                                                    client_ctx))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
        await server.wait_closed()

    assert_cycle_flat(cycle, 100, 300)


def test_tls_handshake_and_shutdown_paths_keep_objects_flat(tmp_path):
    """The C handshake and shutdown (src/ext/tls_protocol.c) per cycle: a
    completed handshake with the app transport's write (bytes, empty, a
    TypeError) and close_notify both ways, a BufferedProtocol reading
    through a small buffer, a certificate that fails verification, and a
    peer that hangs up during the handshake."""
    server_ctx, client_ctx = tls_contexts(tmp_path)
    verifying_ctx = ssl.create_default_context()  # rejects the self-signed

    async def echo_once(reader, writer):
        try:
            writer.write(await reader.readexactly(2))
            await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        writer.close()

    async def hang_up(reader, writer):
        await reader.read(1)
        writer.close()

    async def send_and_close(reader, writer):
        writer.write(b"y" * 1000)
        writer.close()

    class SmallBuffer(asyncio.BufferedProtocol):
        """Fills its 7 bytes with each read: _do_read__buffered's
        call_soon of _do_read again (a lambda on 3.11), then eof."""
        def __init__(self, done):
            self.buffer, self.done = memoryview(bytearray(7)), done

        def get_buffer(self, sizehint):
            return self.buffer

        def buffer_updated(self, nbytes):
            pass

        def connection_lost(self, exc):
            self.done.set_result(exc)

    async def cycle(loop):
        server = await asyncio.start_server(echo_once, "127.0.0.1", 0,
                                            ssl=server_ctx)
        silent = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        sender = await asyncio.start_server(send_and_close, "127.0.0.1", 0,
                                            ssl=server_ctx)
        done = loop.create_future()
        await loop.create_connection(
            lambda: SmallBuffer(done), "127.0.0.1",
            sender.sockets[0].getsockname()[1], ssl=client_ctx,
            server_hostname="localhost")
        assert await done is None
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       ssl=client_ctx)
        writer.write(b"")
        writer.write(b"ok")
        with pytest.raises(TypeError):
            writer.transport.write("text")
        assert await reader.readexactly(2) == b"ok"
        writer.close()
        await writer.wait_closed()
        for ctx, target in ((verifying_ctx, server), (client_ctx, silent)):
            with pytest.raises((ssl.SSLCertVerificationError,
                                ConnectionResetError)):
                await asyncio.open_connection(
                    "127.0.0.1", target.sockets[0].getsockname()[1],
                    ssl=ctx, server_hostname="localhost")
        for s in (server, silent, sender):
            s.close()
            await s.wait_closed()

    assert_cycle_flat(cycle, 50, 300)


@needs_c_copies
def test_tls_connections_share_one_read_buffer(tmp_path):
    """stdlib's SSLProtocol zero-fills a 256 KiB read buffer per
    connection (over 500 KiB per client/server pair in one process);
    casyncio's TLS connections share the loop's. Idle pairs stay far
    below that."""
    server_ctx, client_ctx = tls_contexts(tmp_path)

    async def main(pairs):
        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(data)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          ssl=server_ctx, backlog=1000)
        port = server.sockets[0].getsockname()[1]

        async def one():
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx)
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
            return writer

        writers = [await one() for _ in range(20)]  # warm-up
        gc.collect()
        before = rss_kib()
        writers += [await one() for _ in range(pairs)]
        per_pair = (rss_kib() - before) / pairs
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return per_pair

    loop = casyncio.new_event_loop()
    try:
        per_pair = loop.run_until_complete(asyncio.wait_for(main(300), 120))
    finally:
        loop.close()
    assert per_pair < 200, f"{per_pair:.0f} KiB per idle TLS pair"


def test_threadsafe_fd_object_and_shutdown_paths_keep_objects_flat():
    """call_soon_threadsafe (3.14: stdlib's _ThreadSafeHandle run by a C
    Handle, a raising callback included), add_reader on a socket object
    removed after the socket closed, the shutdown coroutines, call_at with
    an int and a patched time()."""
    def fail():
        raise ValueError("reported")

    def fake_time():
        return 1000.0

    when = int("1000000000")  # an int of its own, to count references to

    async def cycle(loop):
        loop.call_soon_threadsafe(int, "1")
        loop.call_soon_threadsafe(fail)
        loop.call_soon_threadsafe(print).cancel()
        a, b = socket.socketpair()
        loop.add_reader(a, int)
        a.close()
        b.close()
        loop.remove_reader(a)
        await loop.shutdown_asyncgens()
        loop.call_at(when, print).cancel()  # an int when, kept
        loop.time = fake_time  # timers read a patched time()
        await asyncio.sleep(0)
        del loop.time

    old = sys.getrefcount(fail), sys.getrefcount(when)
    assert_cycle_flat_quiet(cycle, 200, 5000)
    assert (sys.getrefcount(fail), sys.getrefcount(when)) == old


def assert_cycle_flat_quiet(cycle, warm_up, rounds):
    """assert_cycle_flat with the loop's exception reports dropped."""
    async def quiet(loop):
        loop.set_exception_handler(lambda lp, ctx: None)
        await cycle(loop)
    assert_cycle_flat(quiet, warm_up, rounds)
