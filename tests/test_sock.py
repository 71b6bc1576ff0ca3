"""The loop's sock_* coroutines: parity on stdlib asyncio and casyncio
(casyncio's are C coroutines)."""
import asyncio
import gc
import io
import os
import socket
import ssl
import struct
import warnings

import pytest


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def udp_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))
    return a, b


def not_watched(loop, sock):
    """True when the loop has neither a reader nor a writer on sock."""
    return not loop.remove_reader(sock) and not loop.remove_writer(sock)


def test_sock_recv_waits_for_data_then_stops_watching(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        assert not task.done()
        b.send(b"late")
        data = await task
        await asyncio.sleep(0)  # the future's done callback runs
        return data, not_watched(loop, a)

    assert loop.run_until_complete(main()) == (b"late", True)


def test_sock_recv_into_both_paths(loop, pair):
    a, b = pair

    async def main():
        buf = bytearray(10)
        b.send(b"now")
        first = await loop.sock_recv_into(a, buf)
        got = bytes(buf[:first])
        waiting = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        b.send(b"later!")
        second = await waiting
        return got, bytes(buf[:second])

    assert loop.run_until_complete(main()) == (b"now", b"later!")


def test_sock_recvfrom_and_recvfrom_into(loop):
    a, b = udp_pair()

    async def main():
        waiting = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0)
        await loop.sock_sendto(b, b"one", a.getsockname())
        data, addr = await waiting
        buf = bytearray(64)
        assert await loop.sock_sendto(b, b"two-longer", a.getsockname()) == 10
        n, addr2 = await loop.sock_recvfrom_into(a, buf)
        second = bytes(buf[:n])
        await loop.sock_sendto(b, b"three", a.getsockname())
        m, _ = await loop.sock_recvfrom_into(a, buf, 2)  # truncated
        return (data, addr, second, addr2, m)

    try:
        data, addr, second, addr2, m = loop.run_until_complete(main())
        assert (data, second, m) == (b"one", b"two-longer", 2)
        assert addr == addr2 == b.getsockname()
    finally:
        a.close()
        b.close()


def test_sock_sendall_blocks_resumes_and_delivers_everything(loop, pair):
    a, b = pair
    payload = os.urandom(4 * 1024 * 1024)

    async def main():
        async def drain():
            received = bytearray()
            while len(received) < len(payload):
                await asyncio.sleep(0.001)  # slower than the sender
                received += await loop.sock_recv(b, 65536)
            return bytes(received)

        reader = asyncio.ensure_future(drain())
        result = await loop.sock_sendall(a, memoryview(payload))
        received = await reader
        await asyncio.sleep(0)
        return result, received, not_watched(loop, a)

    result, received, idle = loop.run_until_complete(main())
    assert result is None and received == payload and idle


class AcceptCountingSocket(socket.socket):
    accepts = 0

    def accept(self):
        type(self).accepts += 1
        return super().accept()


@pytest.mark.parametrize("kind", ["tcp", "unix", "subclass"])
def test_sock_accept_gives_a_nonblocking_connection(loop, kind, tmp_path):
    """Waiting first, then a connection: the new socket is non-blocking
    and the address is the client's; a socket subclass's own accept() is
    the one called."""
    if kind == "unix":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(tmp_path / "listener.sock"))
    else:
        cls = AcceptCountingSocket if kind == "subclass" else socket.socket
        listener = cls()
        listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    AcceptCountingSocket.accepts = 0

    async def main():
        accepting = asyncio.ensure_future(loop.sock_accept(listener))
        await asyncio.sleep(0)
        client = socket.socket(listener.family)
        client.setblocking(False)
        await loop.sock_connect(client, listener.getsockname())
        conn, addr = await accepting
        result = (type(conn), conn.getblocking(), conn.gettimeout(),
                  conn.type, addr == client.getsockname())
        conn.close()
        client.close()
        return result

    try:
        assert loop.run_until_complete(main()) == (
            socket.socket, False, 0.0, socket.SOCK_STREAM, True)
        assert AcceptCountingSocket.accepts == (2 if kind == "subclass"
                                                else 0)
    finally:
        listener.close()


def test_keywords_are_accepted(loop, pair):
    a, b = pair

    async def main():
        await loop.sock_sendall(sock=b, data=b"kw")
        return await loop.sock_recv(sock=a, n=10)

    assert loop.run_until_complete(main()) == b"kw"


def test_cancelling_a_waiting_recv_loses_no_data(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        idle = not_watched(loop, a)
        b.send(b"after")
        return idle, await loop.sock_recv(a, 100)

    assert loop.run_until_complete(main()) == (True, b"after")


def test_wait_for_timeout_on_recv(loop, pair):
    a, _ = pair

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.sock_recv(a, 10), 0.01)
        await asyncio.sleep(0)
        return not_watched(loop, a)

    assert loop.run_until_complete(main())


def test_peer_reset_raises_from_the_waiting_call(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    async def main():
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, listener.getsockname())
        server_side, _ = listener.accept()
        waiting = asyncio.ensure_future(loop.sock_recv(client, 10))
        await asyncio.sleep(0)
        # RST instead of FIN
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                               struct.pack("ii", 1, 0))
        server_side.close()
        try:
            with pytest.raises(ConnectionResetError):
                await waiting
        finally:
            client.close()

    try:
        loop.run_until_complete(main())
    finally:
        listener.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_sock_connect_numeric_and_by_name(loop, host):
    """A numeric address connects without a lookup; a name goes through
    getaddrinfo first."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def main():
        sock = socket.socket()
        sock.setblocking(False)
        try:
            assert await loop.sock_connect(sock, (host, port)) is None
            conn, _ = listener.accept()
            await loop.sock_sendall(sock, b"hello")
            assert conn.recv(5) == b"hello"
            conn.close()
            await asyncio.sleep(0)
            return sock.getpeername(), not_watched(loop, sock)
        finally:
            sock.close()

    try:
        assert loop.run_until_complete(main()) == (("127.0.0.1", port), True)
    finally:
        listener.close()


def test_sock_connect_refused_names_the_address(loop, closed_port):
    port = closed_port

    async def main():
        sock = socket.socket()
        sock.setblocking(False)
        try:
            with pytest.raises(ConnectionRefusedError) as err:
                await loop.sock_connect(sock, ("127.0.0.1", port))
            return str(err.value), not_watched(loop, sock)
        finally:
            sock.close()

    message, unwatched = loop.run_until_complete(main())
    assert message == (f"[Errno 111] Connect call failed "
                       f"('127.0.0.1', {port})")
    assert unwatched


def test_sock_connect_bad_host_is_gaierror(loop):
    async def main():
        with socket.socket() as sock:
            sock.setblocking(False)
            with pytest.raises(socket.gaierror):
                await loop.sock_connect(sock, ("no-such-host.invalid", 80))

    loop.run_until_complete(main())


def test_sock_connect_unix(loop, tmp_path):
    path = str(tmp_path / "listener.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()

    async def main():
        with socket.socket(socket.AF_UNIX) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, path)
            peer = sock.getpeername()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.setblocking(False)
            with pytest.raises(FileNotFoundError):
                await loop.sock_connect(sock, str(tmp_path / "missing"))
        return peer

    try:
        assert loop.run_until_complete(main()) == path
    finally:
        listener.close()


def test_sock_connect_pending_then_cancelled(loop, full_listener):
    """A connect that cannot complete waits on the fd; cancelling it stops
    the watch."""
    address = full_listener.getsockname()

    async def main():
        sock = socket.socket()
        sock.setblocking(False)
        try:
            task = asyncio.ensure_future(loop.sock_connect(sock, address))
            await asyncio.sleep(0.05)
            pending = not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            return pending, not_watched(loop, sock)
        finally:
            sock.close()

    assert loop.run_until_complete(main()) == (True, True)


def test_blocking_socket_refused_in_debug_mode(loop):
    a, b = socket.socketpair()  # blocking
    b.send(b"x")

    async def main():
        if loop.get_debug():
            with pytest.raises(ValueError,
                               match="^the socket must be non-blocking$"):
                await loop.sock_recv(a, 1)
            return None
        return await loop.sock_recv(a, 1)  # data is there: no blocking

    try:
        assert loop.run_until_complete(main()) == (
            None if loop.get_debug() else b"x")
    finally:
        a.close()
        b.close()


def test_ssl_socket_refused(loop):
    ctx = ssl.create_default_context()
    sock = ctx.wrap_socket(socket.socket(), server_hostname="localhost",
                           do_handshake_on_connect=False)

    async def main():
        with pytest.raises(TypeError,
                           match="^Socket cannot be of type SSLSocket$"):
            await loop.sock_recv(sock, 1)

    try:
        loop.run_until_complete(main())
    finally:
        sock.close()


def test_fd_owned_by_a_transport_refused(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        transport, _ = await loop.create_connection(
            asyncio.Protocol, *server.sockets[0].getsockname())
        fd = transport.get_extra_info("socket").fileno()
        alias = socket.socket(fileno=fd)
        alias.setblocking(False)
        try:
            with pytest.raises(RuntimeError,
                               match=rf"^File descriptor {fd} is used by "
                                     r"transport <"):
                await loop.sock_recv(alias, 10)
        finally:
            alias.detach()
            transport.close()
            server.close()
            await server.wait_closed()

    loop.run_until_complete(main())


def test_the_coroutine_protocol(loop, pair):
    """What code that drives a coroutine by hand sees."""
    a, b = pair
    coro = loop.sock_recv(a, 10)
    assert asyncio.iscoroutine(coro)
    with pytest.raises(TypeError, match="^can't send non-None value to a "
                                        "just-started coroutine$"):
        coro.send(1)
    coro.close()

    b.send(b"ready")
    coro = loop.sock_recv(a, 10)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == b"ready"
    with pytest.raises(RuntimeError,
                       match="^cannot reuse already awaited coroutine$"):
        coro.send(None)

    coro = loop.sock_recv(a, 10)
    with pytest.raises(KeyError, match="thrown"):
        coro.throw(KeyError("thrown"))
    coro.close()


def test_a_closed_suspended_call_stops_watching(loop, pair):
    """Documented difference: stdlib's coroutine leaves its reader behind
    when closed while waiting, so a socket that later gets the same fd
    number would wait on a stale watcher; casyncio's stops watching."""
    a, _ = pair
    coro = loop.sock_recv(a, 10)
    coro.send(None)  # suspended, reading a
    coro.close()
    assert loop.remove_reader(a) is (loop.kind == "stdlib")


def test_a_tuple_result_is_the_stop_iteration_value(loop):
    a, b = udp_pair()
    b.sendto(b"dgram", a.getsockname())
    coro = loop.sock_recvfrom(a, 100)
    try:
        for _ in range(100):  # the datagram may take a moment to arrive
            try:
                fut = coro.send(None)
            except StopIteration as stop:
                assert stop.value == (b"dgram", b.getsockname())
                break
            # Suspended on a future: let the loop complete it.
            loop.run_until_complete(fut)
        else:
            pytest.fail("no datagram")
    finally:
        a.close()
        b.close()


def test_closed_loop(loop, pair):
    a, b = pair
    loop.close()
    b.send(b"x")
    coro = loop.sock_recv(a, 1)
    with pytest.raises(StopIteration):  # ready data needs no loop
        coro.send(None)
    coro = loop.sock_recv(a, 1)
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        coro.send(None)


def test_never_awaited_warns(loop, pair):
    a, _ = pair
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.sock_recv(a, 1)
        gc.collect()
    messages = [str(w.message) for w in caught
                if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("coroutine '")
    assert messages[0].endswith(".sock_recv' was never awaited")


def test_many_concurrent_recvs_on_many_sockets(loop):
    pairs = [socket.socketpair() for _ in range(200)]
    for a, b in pairs:
        a.setblocking(False)
        b.setblocking(False)

    async def main():
        tasks = [asyncio.ensure_future(loop.sock_recv(a, 100))
                 for a, _ in pairs]
        await asyncio.sleep(0)
        for i, (_, b) in enumerate(reversed(pairs)):
            await loop.sock_sendall(b, b"%d" % i)
        return await asyncio.gather(*tasks)

    try:
        results = loop.run_until_complete(main())
        assert results == [b"%d" % i for i in reversed(range(200))]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# ---- sock_sendfile ----------------------------------------------------------

@pytest.fixture
def data_file(tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "data"
    path.write_bytes(data)
    with open(path, "rb") as f:
        yield f, data


async def receive(loop, sock, size):
    got = bytearray()
    while len(got) < size:
        chunk = await loop.sock_recv(sock, 1 << 16)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def test_sock_sendfile_whole_file_waiting_for_the_reader(loop, pair,
                                                         data_file):
    """Larger than the socket buffers: sends, waits, resumes; leaves the
    file position after what was sent and stops watching the socket."""
    a, b = pair
    f, data = data_file

    async def main():
        reader = asyncio.ensure_future(receive(loop, b, len(data)))
        sent = await loop.sock_sendfile(a, f)
        return sent, await reader
    sent, got = loop.run_until_complete(main())
    assert sent == len(data) and got == data
    assert f.tell() == len(data)
    assert not_watched(loop, a)


def test_sock_sendfile_offset_and_count(loop, pair, data_file):
    a, b = pair
    f, data = data_file

    async def main():
        reader = asyncio.ensure_future(receive(loop, b, 200000))
        sent = await loop.sock_sendfile(a, f, 1000, 200000)
        return sent, await reader
    assert loop.run_until_complete(main()) == (200000, data[1000:201000])
    assert f.tell() == 201000


def sendfile_or_reason(loop, pair, file, size, *args, **kwargs):
    """sock_sendfile(pair[0], file, *args, **kwargs) with pair[1] reading
    size bytes: (sent, received), or the SendfileNotAvailableError's
    message."""
    a, b = pair

    async def main():
        reader = asyncio.ensure_future(receive(loop, b, size))
        try:
            sent = await loop.sock_sendfile(a, file, *args, **kwargs)
        except asyncio.SendfileNotAvailableError as exc:
            reader.cancel()
            return str(exc)
        return sent, await reader
    return loop.run_until_complete(main())


@pytest.mark.parametrize("fallback", [True, False])
def test_sock_sendfile_of_a_non_file(loop, pair, fallback):
    source = io.BytesIO(b"not a file" * 1000)
    result = sendfile_or_reason(loop, pair, source, 10000, fallback=fallback)
    if fallback:
        assert result == (10000, b"not a file" * 1000)
    else:
        assert result == "not a regular file"


@pytest.mark.parametrize("fallback", [True, False])
def test_sock_sendfile_when_os_sendfile_fails(loop, pair, data_file,
                                             monkeypatch, fallback):
    f, data = data_file

    def failing(*args):
        raise OSError(22, "Invalid argument")
    monkeypatch.setattr(os, "sendfile", failing)
    result = sendfile_or_reason(loop, pair, f, 5000, 0, 5000,
                                fallback=fallback)
    if fallback:
        assert result == (5000, data[:5000])
    else:
        assert result == "os.sendfile call failed"


@pytest.mark.parametrize("fallback", [True, False])
def test_sock_sendfile_when_os_sendfile_fails_after_a_wait(
        loop, pair, data_file, monkeypatch, fallback):
    """Nothing sent yet when os.sendfile fails after the socket was
    waited for: the fallback still sends it all."""
    f, data = data_file
    calls = []

    def would_block_then_fail(*args):
        calls.append(args)
        if len(calls) == 1:
            raise BlockingIOError
        raise OSError(22, "Invalid argument")
    monkeypatch.setattr(os, "sendfile", would_block_then_fail)
    result = sendfile_or_reason(loop, pair, f, 5000, 0, 5000,
                                fallback=fallback)
    assert len(calls) == 2
    if fallback:
        assert result == (5000, data[:5000])
    else:
        assert result == "os.sendfile call failed"


@pytest.mark.parametrize("args, exc, message", [
    ((0, 0), ValueError, "count must be a positive integer"),
    ((-1, None), ValueError, "offset must be a non-negative integer"),
    (("0", None), TypeError, "offset must be a non-negative integer"),
])
def test_sock_sendfile_checks_its_arguments(loop, pair, data_file, args,
                                           exc, message):
    with pytest.raises(exc, match=message):
        loop.run_until_complete(loop.sock_sendfile(pair[0], data_file[0],
                                                   *args))


def test_sock_sendfile_cancelled_while_waiting(loop, pair, data_file):
    """The socket is no longer watched and can be used again."""
    a, b = pair
    f, data = data_file

    async def main():
        sending = asyncio.ensure_future(loop.sock_sendfile(a, f))
        await asyncio.sleep(0.01)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        assert not_watched(loop, a)
        reader = asyncio.ensure_future(receive(loop, b, 1 << 30))
        await loop.sock_sendall(a, b"after")
        a.shutdown(socket.SHUT_WR)
        return await reader
    got = loop.run_until_complete(asyncio.wait_for(main(), 30))
    assert got.endswith(b"after") and data.startswith(got[:-5])
