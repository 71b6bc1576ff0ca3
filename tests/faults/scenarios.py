"""The programs the fault sweeps run on a loop. Together they reach every
C file of src/ext/ (the comment on each names the files it is there
for). Each is an async function of (loop, resources) returning a value
that is the same on every run that nothing disturbed, and closing what it
opened even when it fails half-way, so that what stays open after a
fault is the loop's doing."""
import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import threading


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def stream_round_trips(reader, writer, sizes):
    answers = []
    try:
        for size in sizes:
            message = bytes(i % 251 for i in range(size))
            writer.write(message)
            answers.append(await reader.readexactly(size) == message)
    finally:
        # Left open, the connection would keep the server's wait_closed()
        # waiting.
        writer.close()
    await writer.wait_closed()
    return answers


async def timers_and_futures(loop, resources):
    # loop.c, handle.c, coro.c, loop_lifecycle.c (executor, async gens)
    fired = []
    for delay in (0.003, 0.001, 0.002):
        loop.call_later(delay, fired.append, delay)
    loop.call_at(loop.time() + 0.001, fired.append, "at")
    loop.call_later(0.001, fired.append, "cancelled").cancel()
    loop.call_soon(fired.append, "soon")
    future = loop.create_future()
    loop.call_soon(future.set_result, "future")

    async def agen():
        yield 1
        yield 2

    gathered = await asyncio.gather(
        future, asyncio.sleep(0.005, "slept"),
        loop.run_in_executor(None, sum, [1, 2, 3]),
        *(asyncio.sleep(0, i) for i in range(3)))
    async for _ in agen():
        break
    await asyncio.sleep(0.01)
    return sorted(map(str, fired)), gathered


async def errors_and_debug(loop, resources):
    # loop_errors.c (the default exception handler, its log message),
    # handle.c (reprs and failure reports), loop.c (call_soon_threadsafe
    # from another thread). The sweep's own exception handler is set
    # aside meanwhile, and the asyncio logger writes nowhere. (Not in
    # debug mode: a traceback per Handle is thousands of allocations.)
    handler = loop.get_exception_handler()
    logger = logging.getLogger("asyncio")
    quiet, propagate = logging.NullHandler(), logger.propagate
    logger.addHandler(quiet)
    logger.propagate = False
    loop.set_exception_handler(None)
    try:
        def fail():
            raise ValueError("planned")

        loop.call_soon(fail)
        loop.call_later(0.001, fail)
        loop.call_exception_handler({"message": "planned",
                                     "exception": KeyError("k"),
                                     "future": loop.create_future()})
        handles = [loop.call_soon(print), loop.call_later(1, print)]
        reprs = [repr(h).split(" when=")[0] for h in handles]
        for h in handles:
            h.cancel()
        done = loop.create_future()
        thread = threading.Thread(target=loop.call_soon_threadsafe,
                                  args=(done.set_result, "threadsafe"))
        thread.start()
        # A thread whose call failed cannot say so: time out, not hang.
        result = await asyncio.wait_for(done, 0.5)
        thread.join()
        await asyncio.sleep(0.005)
        return result, reprs
    finally:
        loop.set_exception_handler(handler)
        logger.removeHandler(quiet)
        logger.propagate = propagate


async def tcp_streams(loop, resources):
    # streams.c, transport_stream.c, transport_write.c, loop_listen.c,
    # loop_server.c, accept.c, server.c, loop_connect.c, loop_resolve.c
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return await stream_round_trips(reader, writer, (10, 5000, 70000))
    finally:
        server.close()
        await server.wait_closed()


async def unix_streams(loop, resources):
    # the Unix side of loop_listen.c and loop_connect.c
    path = os.path.join(resources["dir"], "echo.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(echo, path)
    try:
        reader, writer = await asyncio.open_unix_connection(path)
        return await stream_round_trips(reader, writer, (10, 5000))
    finally:
        server.close()
        await server.wait_closed()


class Collect(asyncio.Protocol):
    def __init__(self, loop, expected):
        self.data = bytearray()
        self.expected = expected
        self.done = loop.create_future()

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.expected and not self.done.done():
            self.done.set_result(bytes(self.data))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("lost"))


async def happy_eyeballs_and_sock(loop, resources):
    # staggered.c (happy eyeballs), loop_sock.c (sock_*), loop_fd.c
    # (add_reader / add_writer), connect_accepted_socket in loop_connect.c
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    a, b = socket.socketpair()
    transports = []
    try:
        port = listener.getsockname()[1]
        accepted = asyncio.ensure_future(loop.sock_accept(listener))
        transport, protocol = await loop.create_connection(
            lambda: Collect(loop, 3), "localhost", port,
            happy_eyeballs_delay=0.05, family=socket.AF_INET)
        transports.append(transport)
        conn, _ = await accepted
        peer, _ = await loop.connect_accepted_socket(asyncio.Protocol, conn)
        transports.append(peer)
        peer.write(b"abc")
        got = await protocol.done

        a.setblocking(False)
        b.setblocking(False)
        await loop.sock_sendall(a, b"ping")
        ping = await loop.sock_recv(b, 4)
        readable = loop.create_future()
        loop.add_reader(b.fileno(), readable.set_result, "readable")
        loop.add_writer(a.fileno(), loop.remove_writer, a.fileno())
        await loop.sock_sendall(a, b"x")
        seen = await readable
        loop.remove_reader(b.fileno())
        return got, ping, seen
    finally:
        for transport in transports:
            transport.close()
        for sock in (listener, a, b):
            loop.remove_reader(sock.fileno())
            loop.remove_writer(sock.fileno())
            sock.close()
        await asyncio.sleep(0)


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.received = loop.create_future()

    def datagram_received(self, data, addr):
        if not self.received.done():
            self.received.set_result(data)

    def error_received(self, exc):
        if not self.received.done():
            self.received.set_exception(exc)

    def connection_lost(self, exc):
        # A transport that failed (a read that could not be delivered)
        # ends the wait, as a protocol that cares about it would.
        if exc is not None and not self.received.done():
            self.received.set_exception(exc)


async def udp(loop, resources):
    # loop_datagram.c, transport_datagram.c
    server, server_protocol = await loop.create_datagram_endpoint(
        lambda: Datagrams(loop), local_addr=("127.0.0.1", 0))
    client = None
    try:
        client, client_protocol = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop),
            remote_addr=server.get_extra_info("sockname"))
        client.sendto(b"ping")
        got = await server_protocol.received
        return got
    finally:
        server.close()
        if client is not None:
            client.close()
        await asyncio.sleep(0)


async def subprocess_pipes(loop, resources):
    # loop_process.c, transport_subprocess.c, transport_pipe.c
    proc = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        out, _ = await proc.communicate(b"x" * 5000)
        return len(out), proc.returncode
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def pipes(loop, resources):
    # transport_pipe.c on plain pipes
    read_fd, write_fd = os.pipe()
    read_file, write_file = os.fdopen(read_fd, "rb", 0), os.fdopen(
        write_fd, "wb", 0)
    transports = []
    try:
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), read_file)
        transports.append(transport)
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol,
                                                     write_file)
        transports.append(transport)
        transport.write(b"y" * 3000)
        transport.close()
        return len(await reader.read())
    finally:
        for transport in transports:
            transport.close()
        read_file.close()
        write_file.close()
        await asyncio.sleep(0)


async def sendfile(loop, resources):
    # loop_sendfile.c: the zero-copy path and the fallback
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            with open(resources["file"], "rb") as f:
                sent = await loop.sendfile(writer.transport, f)
                f.seek(0)
                sent += await loop.sendfile(writer.transport, f,
                                            fallback=True, count=1000)
            echoed = await reader.readexactly(sent)
            return sent, len(echoed)
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def tls(loop, resources):
    # tls_protocol.c (handshake, records, shutdown)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(resources["cert"], resources["key"])
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(resources["cert"])
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        return await stream_round_trips(reader, writer, (10, 20000))
    finally:
        server.close()
        await server.wait_closed()


async def signals(loop, resources):
    # loop_signals.c
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, got.set_result, "signalled")
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        return await got
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


async def fork(loop, resources):
    # loop_fork.c: the child gets a poller of its own and runs a loop
    pid = os.fork()
    if pid == 0:
        # The failures are the parent's to handle: the child runs free of
        # them, and for 10 s at most.
        resources["after_fork"]()
        signal.alarm(10)
        code = 1
        try:
            child = resources["new_loop"]()
            code = child.run_until_complete(asyncio.sleep(0, 0))
            child.close()
        finally:
            os._exit(code)
    _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
    return os.waitstatus_to_exitcode(status)


async def resolve(loop, resources):
    # loop_resolve.c and the resolvers of loop_sock.c
    infos = await loop.getaddrinfo("localhost", 80, family=socket.AF_INET,
                                   type=socket.SOCK_STREAM)
    name = await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST
                                  | socket.NI_NUMERICSERV)
    return sorted({info[4][0] for info in infos}), name


SCENARIOS = {f.__name__: f for f in (
    timers_and_futures, errors_and_debug, tcp_streams, unix_streams, happy_eyeballs_and_sock,
    udp, subprocess_pipes, pipes, sendfile, tls, signals, fork, resolve)}


def make_resources(directory):
    """What the scenarios share, made once per sweep: a directory for
    sockets, a file to send, a self-signed certificate for localhost. The
    sweep adds the loop's kind and factory, and after_fork, which the
    fork scenario's child calls first."""
    import subprocess
    cert, key = (os.path.join(directory, name) for name in ("cert", "key"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-days", "2",
         "-keyout", key, "-out", cert], check=True, capture_output=True)
    path = os.path.join(directory, "file")
    with open(path, "wb") as f:
        f.write(os.urandom(100_000))
    return {"dir": directory, "file": path, "cert": cert, "key": key}

