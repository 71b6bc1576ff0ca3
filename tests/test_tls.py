"""Parity tests for TLS (ssl= on connections and servers, start_tls), each
on stdlib asyncio and casyncio. The certificates are made for the session
by the openssl command-line tool: a CA, a server certificate for localhost
and 127.0.0.1, one for another host name, an expired one, and a client
certificate."""
import asyncio
import hashlib
import os
import random
import re
import socket
import ssl
import subprocess

import pytest
from parity import C_COPIES, on_stdlib

TIMEOUT = 30


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_key(name, cwd):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-out", f"{name}.key", cwd=cwd)


def issue_certificate(name, subject, san, days, cwd):
    """name.pem for name.key, signed by the test CA."""
    make_key(name, cwd)
    openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
            "-subj", subject, cwd=cwd)
    with open(os.path.join(cwd, f"{name}.ext"), "w") as f:
        # What VERIFY_X509_STRICT (3.13's default) asks of a leaf.
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "authorityKeyIdentifier=keyid\n"
                "subjectKeyIdentifier=hash\n")
        if san:
            f.write(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.pem",
            "-days", str(days), "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    make_key("ca", d)
    openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem",
            "-days", "30", "-subj", "/CN=casyncio test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    issue_certificate("server", "/CN=localhost",
                      "DNS:localhost,IP:127.0.0.1", 30, d)
    issue_certificate("other", "/CN=other.example", "DNS:other.example",
                      30, d)
    # notAfter a day before notBefore: expired from the moment it is made.
    issue_certificate("expired", "/CN=localhost",
                      "DNS:localhost,IP:127.0.0.1", -1, d)
    issue_certificate("client", "/CN=casyncio client", None, 30, d)
    return lambda name: os.path.join(d, name)


def server_context(certs, name="server", require_client_cert=False):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs(f"{name}.pem"), certs(f"{name}.key"))
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs("ca.pem"))
    return ctx


def client_context(certs, with_client_cert=False):
    ctx = ssl.create_default_context(cafile=certs("ca.pem"))
    if with_client_cert:
        ctx.load_cert_chain(certs("client.pem"), certs("client.key"))
    return ctx


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def open_client(port, certs):
    """A TLS stream connection to 127.0.0.1:port, verified as localhost."""
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(certs),
        server_hostname="localhost")


async def start_echo_server(ctx, **kwargs):
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx,
                                        **kwargs)
    return server, server.sockets[0].getsockname()[1]


def test_echo_and_extra_info(loop, certs):
    async def main():
        server, port = await start_echo_server(server_context(certs))
        ctx = client_context(certs)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        writer.write(b"hello over tls")
        data = await reader.readexactly(14)
        tr = writer.transport
        info = {
            "ssl_object": isinstance(tr.get_extra_info("ssl_object"),
                                     ssl.SSLObject),
            "peercert": tr.get_extra_info("peercert")["subject"],
            "cipher": len(tr.get_extra_info("cipher")),
            "compression": tr.get_extra_info("compression"),
            "sslcontext": tr.get_extra_info("sslcontext") is ctx,
            "socket": tr.get_extra_info("socket").family,
            "peername": tr.get_extra_info("peername")[1] == port,
            "transport": isinstance(tr, asyncio.Transport),
        }
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data, info
    data, info = run(loop, main())
    assert data == b"hello over tls"
    assert info == {
        "ssl_object": True, "peercert": ((("commonName", "localhost"),),),
        "cipher": 3, "compression": None, "sslcontext": True,
        "socket": socket.AF_INET, "peername": True, "transport": True}


def connect_error(loop, certs, server_name, hostname, **client_kwargs):
    """The exception open_connection raises against server_name's cert."""
    async def main():
        server, port = await start_echo_server(
            server_context(certs, server_name))
        try:
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(certs, **client_kwargs),
                server_hostname=hostname)
        except Exception as exc:
            return exc
        finally:
            server.close()
            await server.wait_closed()
    return run(loop, main())


def test_wrong_hostname_fails_verification(loop, certs):
    exc = connect_error(loop, certs, "other", "localhost")
    assert type(exc) is ssl.SSLCertVerificationError
    assert exc.verify_message.startswith("Hostname mismatch")


def test_expired_certificate_fails_verification(loop, certs):
    exc = connect_error(loop, certs, "expired", "localhost")
    assert type(exc) is ssl.SSLCertVerificationError
    assert exc.verify_message == "certificate has expired"


def test_client_certificates(loop, certs):
    async def main():
        seen = []

        async def who(reader, writer):
            seen.append(writer.get_extra_info("peercert")["subject"])
            writer.write(b"ok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(
            who, "127.0.0.1", 0,
            ssl=server_context(certs, require_client_cert=True))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, server_hostname="localhost",
            ssl=client_context(certs, with_client_cert=True))
        accepted = await reader.read()
        writer.close()
        # Without a certificate: TLS 1.3 finishes the client's handshake
        # before the server has checked, so the refusal shows on reading
        # (stdlib's sslproto turns the alert into a plain EOF).
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, server_hostname="localhost",
                ssl=client_context(certs))
            refused = await reader.read()
            writer.close()
        except (ssl.SSLError, ConnectionError) as exc:
            refused = type(exc)
        server.close()
        await server.wait_closed()
        return accepted, seen, refused
    accepted, seen, refused = run(loop, main())
    assert accepted == b"ok"
    assert seen == [((("commonName", "casyncio client"),),)]
    assert refused in (b"", ssl.SSLError, ConnectionResetError)


class Handshakes(asyncio.Protocol):
    """Server protocol that records the connections that got through."""
    made = 0

    def connection_made(self, transport):
        Handshakes.made += 1


@pytest.mark.parametrize("peer_sends", [
    b"GET / HTTP/1.0\r\n\r\n",          # garbage instead of a ClientHello
    b"\x16\x03\x01\x02\x00\x01\x00\x01",  # half a ClientHello, then gone
])
def test_bad_peers_do_not_disturb_the_server(loop, certs, peer_sends):
    async def main():
        Handshakes.made = 0
        server = await loop.create_server(Handshakes, "127.0.0.1", 0,
                                          ssl=server_context(certs))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(peer_sends)
        writer.write_eof()
        answer = await reader.read()
        writer.close()
        # A well-behaved client still gets through afterwards.
        tr, _ = await loop.create_connection(
            asyncio.Protocol, "127.0.0.1", port,
            ssl=client_context(certs), server_hostname="localhost")
        await asyncio.sleep(0.05)
        tr.close()
        server.close()
        await server.wait_closed()
        return answer, Handshakes.made
    answer, made = run(loop, main())
    # Nothing but a TLS alert record (content type 21) or a plain close.
    assert answer == b"" or answer[0] == 21
    assert made == 1


def test_failed_handshake_on_a_server_is_reported_in_debug_mode(loop,
                                                               certs):
    """The server closes the connection; in debug mode the exception
    handler hears of it with the protocol and the transport."""
    loop.set_debug(True)
    reports = []
    loop.set_exception_handler(lambda loop, context: reports.append(context))

    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0,
                                          ssl=server_context(certs))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await reader.read()
        writer.close()
        while not any(r["message"].startswith("Error on transport")
                      for r in reports):
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
    run(loop, main())
    report = next(r for r in reports
                  if r["message"].startswith("Error on transport"))
    assert report["message"] == ("Error on transport creation for incoming "
                                 "connection")
    assert isinstance(report["exception"], ssl.SSLError)
    assert isinstance(report["protocol"], asyncio.Protocol)
    assert isinstance(report["transport"], asyncio.Transport)
    assert report["transport"].is_closing()


def test_handshake_timeout(loop, certs):
    async def main():
        # A TCP server that accepts and never answers the ClientHello.
        silent = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        try:
            await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port,
                ssl=client_context(certs), server_hostname="localhost",
                ssl_handshake_timeout=0.2)
        except Exception as exc:
            return exc
        finally:
            silent.close()
    exc = run(loop, main())
    assert type(exc) is ConnectionAbortedError
    assert str(exc) == ("SSL handshake is taking longer than 0.2 seconds: "
                        "aborting the connection")


def test_close_sends_close_notify_and_peer_sees_eof(loop, certs):
    async def main():
        got = loop.create_future()

        async def reader_side(reader, writer):
            got.set_result(await reader.read())
            writer.close()

        server = await asyncio.start_server(
            reader_side, "127.0.0.1", 0, ssl=server_context(certs))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await open_client(port, certs)
        writer.write(b"last words")
        writer.close()
        await writer.wait_closed()
        data = await got
        server.close()
        await server.wait_closed()
        return data
    assert run(loop, main()) == b"last words"


def test_buffered_app_protocol_over_tls(loop, certs):
    """A BufferedProtocol above TLS gets the plaintext through get_buffer
    and buffer_updated, and its writes are encrypted as a Protocol's."""
    class BufferedEcho(asyncio.BufferedProtocol):
        def connection_made(self, transport):
            self.transport = transport
            # A memoryview: stdlib refills the rest of the buffer through
            # buf[offset:], which of a bytearray would be a copy.
            self.buffer = memoryview(bytearray(1000))

        def get_buffer(self, sizehint):
            return self.buffer

        def buffer_updated(self, nbytes):
            self.transport.write(bytes(self.buffer[:nbytes]))

    async def main():
        server = await loop.create_server(
            BufferedEcho, "127.0.0.1", 0, ssl=server_context(certs))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await open_client(port, certs)
        payload = os.urandom(300000)
        writer.write(payload)
        data = await reader.readexactly(len(payload))
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data == payload
    assert run(loop, main())


def test_buffered_app_protocol_with_a_small_buffer_then_eof(loop, certs):
    """A BufferedProtocol whose buffer is smaller than a record: each full
    buffer has _do_read run again through call_soon, with the callback the
    installed stdlib gives (a lambda on 3.11, the bound method from 3.13),
    and the peer's close_notify reaches eof_received before
    connection_lost."""
    payload = os.urandom(50000)

    class SmallBuffer(asyncio.BufferedProtocol):
        def __init__(self):
            self.buffer = memoryview(bytearray(7))
            self.received = bytearray()
            self.events = []
            self.done = loop.create_future()

        def get_buffer(self, sizehint):
            return self.buffer

        def buffer_updated(self, nbytes):
            self.events.append(0 < nbytes <= 7)
            self.received += self.buffer[:nbytes]

        def eof_received(self):
            self.events.append("eof")

        def connection_lost(self, exc):
            self.events.append(("lost", exc))
            self.done.set_result(None)

    async def send_and_close(reader, writer):
        writer.write(payload)
        await writer.drain()
        writer.close()

    async def main():
        callbacks = set()
        call_soon = loop.call_soon

        def spy(callback, *args, **kwargs):
            if "_do_read" in getattr(callback, "__qualname__", ""):
                callbacks.add(callback.__name__)
            return call_soon(callback, *args, **kwargs)
        server = await asyncio.start_server(send_and_close, "127.0.0.1", 0,
                                            ssl=server_context(certs))
        loop.call_soon = spy
        try:
            tr, proto = await loop.create_connection(
                SmallBuffer, "127.0.0.1", server.sockets[0].getsockname()[1],
                ssl=client_context(certs), server_hostname="localhost")
            await proto.done
        finally:
            del loop.call_soon
        server.close()
        await server.wait_closed()
        return proto, callbacks
    proto, callbacks = run(loop, main())
    assert bytes(proto.received) == payload
    assert set(proto.events[:-2]) == {True}
    assert proto.events[-2:] == ["eof", ("lost", None)]
    assert callbacks == {"<lambda>" if stdlib_reads_again_through_a_lambda() else "_do_read"}


def stdlib_reads_again_through_a_lambda():
    """Whether the installed sslproto's _do_read__buffered hands call_soon
    a lambda (3.11, early 3.12s) rather than the bound method."""
    from asyncio import sslproto
    code = sslproto.SSLProtocol._do_read__buffered.__code__
    return any(getattr(c, "co_name", None) == "<lambda>"
               for c in code.co_consts)


def test_tls_write_after_close_is_dropped_then_warned(loop, certs, caplog):
    async def main():
        server, port = await start_echo_server(server_context(certs))
        reader, writer = await open_client(port, certs)
        writer.close()
        for _ in range(7):
            writer.write(b"dropped")
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    with caplog.at_level("WARNING", logger="asyncio"):
        run(loop, main())
    warned = [r.getMessage() for r in caplog.records
              if r.getMessage() == "SSL connection is closed"]
    assert len(warned) == 2  # the 6th and 7th writes


def test_tls_flow_control_both_ways(loop, certs):
    """The server stops reading: the client's writes back up through TLS
    until its protocol is paused; reading again drains it all."""
    server_side = loop.create_future()

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.received = 0

        def connection_made(self, transport):
            transport.pause_reading()
            server_side.set_result((transport, self))

        def data_received(self, data):
            self.received += len(data)

    class Source(asyncio.Protocol):
        def __init__(self):
            self.paused = loop.create_future()
            self.resumed = loop.create_future()

        def pause_writing(self):
            self.paused.set_result(True)

        def resume_writing(self):
            self.resumed.set_result(True)

    async def main():
        server = await loop.create_server(Sink, "127.0.0.1", 0,
                                          ssl=server_context(certs))
        port = server.sockets[0].getsockname()[1]
        transport, source = await loop.create_connection(
            Source, "127.0.0.1", port, ssl=client_context(certs),
            server_hostname="localhost")
        sink_transport, sink = await server_side
        sent = 0
        while not source.paused.done():
            transport.write(b"x" * 65536)
            sent += 65536
            await asyncio.sleep(0)
        assert not sink_transport.is_reading()
        sink_transport.resume_reading()
        await source.resumed
        while sink.received < sent:
            await asyncio.sleep(0.01)
        transport.close()
        server.close()
        await server.wait_closed()
        return sink.received == sent
    assert run(loop, main())


def test_start_tls_upgrades_both_sides(loop, certs):
    async def main():
        async def upgrade(reader, writer):
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context(certs))
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_context(certs),
                               server_hostname="localhost")
        writer.write(b"secret\n")
        answer = await reader.readline()
        tls = writer.get_extra_info("ssl_object") is not None
        writer.close()
        server.close()
        await server.wait_closed()
        return answer, tls
    assert run(loop, main()) == (b"SECRET\n", True)


class Collect(asyncio.Protocol):
    def __init__(self):
        self.data = bytearray()
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        self.data += data

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def plain_pair(loop):
    """A plain TCP connection: (client transport, its protocol, the server
    end's asyncio stream pair future, the server)."""
    accepted = loop.create_future()
    server = await asyncio.start_server(
        lambda r, w: accepted.set_result((r, w)), "127.0.0.1", 0)
    transport, protocol = await loop.create_connection(
        Collect, *server.sockets[0].getsockname())
    return transport, protocol, accepted, server


@pytest.mark.parametrize("case", ["not-a-context", "incompatible"])
def test_start_tls_argument_errors(loop, certs, case):
    async def main(loop):
        transport, protocol, accepted, server = await plain_pair(loop)
        given = transport
        if case == "incompatible":
            rsock, wsock = socket.socketpair()
            given, _ = await loop.connect_read_pipe(asyncio.Protocol,
                                                    rsock.makefile("rb"))
        context = (client_context(certs) if case == "incompatible"
                   else object())
        try:
            await loop.start_tls(given, protocol, context)
        except TypeError as exc:
            error = re.sub(r"0x[0-9a-f]+|fd=\d+", "", str(exc))
            error = re.sub(r"<[\w.]+Transport", "<Transport", error)
        if case == "incompatible":
            given.close()
            rsock.close()
            wsock.close()
        transport.close()
        (await accepted)[1].close()
        server.close()
        await server.wait_closed()
        return error

    got = loop.run_until_complete(main(loop))
    assert got == on_stdlib(loop, lambda ref: ref.run_until_complete(
        main(ref)))
    assert got.startswith(("sslcontext is expected", "transport <"))


def test_start_tls_failed_handshake_closes_the_transport(loop, certs):
    """A client whose peer never answers the handshake: the timeout
    raises from start_tls and the plain transport is closed."""
    async def main():
        transport, protocol, accepted, server = await plain_pair(loop)
        with pytest.raises((TimeoutError, ConnectionAbortedError,
                            asyncio.TimeoutError)):
            await loop.start_tls(transport, protocol, client_context(certs),
                                 server_hostname="localhost",
                                 ssl_handshake_timeout=0.2)
        reader, writer = await accepted
        writer.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)
        return transport.is_closing()

    assert run(loop, main()) is True


def test_start_tls_cancelled_closes_the_transport(loop, certs):
    async def main():
        transport, protocol, accepted, server = await plain_pair(loop)
        task = asyncio.ensure_future(loop.start_tls(
            transport, protocol, client_context(certs),
            server_hostname="localhost"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        reader, writer = await accepted
        writer.close()
        server.close()
        await server.wait_closed()
        return transport.is_closing()

    assert run(loop, main()) is True


def test_start_tls_upgrades_onto_casyncios_record_path(loop, certs):
    """The app transport start_tls returns carries data both ways; on
    casyncio its SSLProtocol is casyncio's (the C record path)."""
    async def main():
        async def upgrade(reader, writer):
            await writer.start_tls(server_context(certs))
            writer.write((await reader.readexactly(5)).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
        transport, protocol = await loop.create_connection(
            Collect, *server.sockets[0].getsockname())
        tls = await loop.start_tls(transport, protocol,
                                   client_context(certs),
                                   server_hostname="localhost")
        tls.write(b"hello")
        await protocol.lost
        kind = type(tls._ssl_protocol).__module__
        tls.close()
        server.close()
        await server.wait_closed()
        return bytes(protocol.data), kind

    data, kind = run(loop, main())
    assert data == b"HELLO"
    assert kind == ("casyncio._casyncio"
                    if loop.kind == "casyncio" and C_COPIES
                    else "asyncio.sslproto")


def test_64_mib_with_random_chunks(loop_factory, certs):
    """Random write sizes one way, echoed back; nothing lost or reordered."""
    size = 64 * 1024 * 1024
    rng = random.Random(7)
    payload = rng.randbytes(size)

    async def main():
        server, port = await start_echo_server(server_context(certs))
        reader, writer = await open_client(port, certs)

        async def send():
            pos = 0
            while pos < size:
                n = rng.choice((1, 17, 1000, 16384, 100000, 1 << 20))
                writer.write(payload[pos:pos + n])
                pos += n
                await writer.drain()

        async def receive():
            digest, got = hashlib.sha256(), 0
            while got < size:
                chunk = await reader.read(rng.randint(1, 300000))
                assert chunk
                digest.update(chunk)
                got += len(chunk)
            return digest.hexdigest()

        _, received = await asyncio.gather(send(), receive())
        writer.close()
        server.close()
        await server.wait_closed()
        return received

    loop = loop_factory()
    try:
        received = loop.run_until_complete(asyncio.wait_for(main(), 120))
    finally:
        loop.close()
    assert received == hashlib.sha256(payload).hexdigest()


def test_concurrent_connections_each_get_their_own_bytes(loop_factory,
                                                         certs):
    """Many TLS connections reading at once, in random chunks, each with
    bytes of its own: the loop's read path serves them all, and nothing
    crosses from one connection to another."""
    async def main():
        server, port = await start_echo_server(server_context(certs))
        ctx = client_context(certs)

        async def one(i):
            rng = random.Random(i)
            payload = rng.randbytes(512 * 1024)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost")

            async def send():
                pos = 0
                while pos < len(payload):
                    n = rng.choice((1, 700, 16384, 40000, 200000))
                    writer.write(payload[pos:pos + n])
                    pos += n
                    await writer.drain()

            async def receive():
                got = bytearray()
                while len(got) < len(payload):
                    got += await reader.read(rng.randint(1, 100000))
                return bytes(got)

            _, echoed = await asyncio.gather(send(), receive())
            writer.close()
            return echoed == payload

        results = await asyncio.gather(*(one(i) for i in range(40)))
        server.close()
        await server.wait_closed()
        return results

    loop = loop_factory()
    try:
        results = loop.run_until_complete(asyncio.wait_for(main(), 120))
    finally:
        loop.close()
    assert results == [True] * 40


def test_thousand_tls_connections(loop_factory, certs):
    async def main():
        server, port = await start_echo_server(server_context(certs),
                                               backlog=1000)
        ctx = client_context(certs)

        async def one(i):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            writer.write(b"%d\n" % i)
            line = await reader.readline()
            writer.close()
            return line

        answers = []
        for batch in range(10):  # 100 handshakes in flight at a time
            answers += await asyncio.gather(
                *(one(batch * 100 + i) for i in range(100)))
        server.close()
        await server.wait_closed()
        return answers

    loop = loop_factory()
    try:
        answers = loop.run_until_complete(asyncio.wait_for(main(), 120))
    finally:
        loop.close()
    assert answers == [b"%d\n" % i for i in range(1000)]


# ---- loop.sendfile over TLS: the fallback by reads --------------------------

async def sendfile_over_tls(loop, certs, source, *args, **kwargs):
    """loop.sendfile(client transport, source, *args, **kwargs) to a TLS
    server that collects the plaintext: (result or the exception's type
    and message, received bytes, source position)."""
    received = bytearray()

    async def collect(reader, writer):
        received.extend(await reader.read())
        writer.close()

    server = await asyncio.start_server(collect, "127.0.0.1", 0,
                                        ssl=server_context(certs))
    port = server.sockets[0].getsockname()[1]
    reader, writer = await open_client(port, certs)
    try:
        result = await loop.sendfile(writer.transport, source, *args,
                                     **kwargs)
    except Exception as exc:
        result = (type(exc), re.sub(r"<.*>", "<transport>", str(exc)))
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return result, bytes(received), source.tell()


@pytest.mark.parametrize("args", [
    (), (0, None), (1000,), (1000, 200_000), (0, 10**9), (True, True),
    (0, -1), (0, 1.5), (0, "many"), (0.5, None),
])
def test_sendfile_over_tls_falls_back_to_reads(loop, certs, tmp_path, args):
    """TLS transports can only fall back; arguments the native path would
    check go straight into stdlib's arithmetic, and fail as it does."""
    path = tmp_path / "data"
    payload = os.urandom(300_000)
    path.write_bytes(payload)

    def attempt(lp):
        with open(path, "rb") as f:
            return run(lp, sendfile_over_tls(lp, certs, f, *args))

    result = attempt(loop)
    assert result == on_stdlib(loop, attempt)
    if isinstance(result[0], int) and result[0] > 1:
        offset = args[0] if args else 0
        assert result[1] == payload[offset:offset + result[0]]


def test_sendfile_over_tls_without_fallback(loop, certs, tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"x" * 100)
    with open(path, "rb") as f:
        result = run(loop, sendfile_over_tls(loop, certs, f, fallback=False))
    assert result == ((RuntimeError, "fallback is disabled and native "
                       "sendfile is not supported for transport "
                       "<transport>"), b"", 0)


# ---- the handshake, shutdown and app transport (src/ext/tls_protocol.c) ----

def test_peer_closing_during_the_handshake_fails_it_quietly(loop, certs):
    """stdlib's eof_received hands the ConnectionResetError class itself to
    _on_handshake_complete, which raises it: the waiter gets an instance,
    and an OSError reaches no exception handler."""
    reports = []
    loop.set_exception_handler(lambda loop, context: reports.append(context))

    async def main():
        async def hang_up(reader, writer):
            await reader.read(1)  # the ClientHello has arrived
            writer.close()
        silent = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        try:
            await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port,
                ssl=client_context(certs), server_hostname="localhost")
        except Exception as exc:
            return exc
        finally:
            silent.close()
            await silent.wait_closed()
    exc = run(loop, main())
    assert type(exc) is ConnectionResetError
    assert reports == []


def test_handshake_time_is_logged_in_debug_mode(loop, certs, caplog):
    loop.set_debug(True)

    async def main():
        server, port = await start_echo_server(server_context(certs))
        reader, writer = await open_client(port, certs)
        writer.write(b"x")
        await reader.readexactly(1)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    with caplog.at_level("DEBUG", logger="asyncio"):
        run(loop, main())
    took = [r.getMessage() for r in caplog.records
            if "SSL handshake took" in r.getMessage()]
    assert len(took) == 2  # the client's and the server's
    assert all(re.search(r"SSL handshake took \d+\.\d ms$", m) for m in took)


async def tls_echo_connection(loop, certs, ctx=None):
    """A TLS echo server and a Protocol client that collects what comes
    back: (server, transport, received, closed)."""
    server, port = await start_echo_server(server_context(certs))
    received = bytearray()
    closed = loop.create_future()

    class Client(asyncio.Protocol):
        def data_received(self, data):
            received.extend(data)

        def connection_lost(self, exc):
            closed.set_result(exc)
    tr, _ = await loop.create_connection(
        Client, "127.0.0.1", port, ssl=ctx or client_context(certs),
        server_hostname="localhost")
    return server, tr, received, closed


async def until(predicate):
    while not predicate():
        await asyncio.sleep(0.005)


def test_app_transport_is_stdlibs_and_checks_what_it_writes(loop, certs):
    from asyncio import sslproto

    async def main():
        server, tr, received, closed = await tls_echo_connection(loop,
                                                                 certs)
        seen = {
            "class": (type(tr).__module__, type(tr).__qualname__),
            "isinstance": isinstance(tr, sslproto._SSLProtocolTransport),
            "repr": re.sub(r"0x[0-9a-f]+", "ADDR", repr(tr)),
        }
        for bad in ("text", 7, None, [b"x"]):
            try:
                tr.write(bad)
            except TypeError as exc:
                seen.setdefault("errors", []).append(str(exc))
        tr.write(b"")
        tr.write(b"ab")
        tr.write(bytearray(b"cd"))
        tr.write(memoryview(b"xefx")[1:3])
        await until(lambda: len(received) >= 6)
        proto = tr._ssl_protocol
        seen["buffers"] = [len(proto.get_buffer(n)) == proto.max_size
                           for n in (-1, 0, 100, proto.max_size)]
        tr.close()
        await closed
        tr.write(b"after close")  # dropped, as stdlib drops it
        server.close()
        await server.wait_closed()
        return seen, bytes(received)
    seen, received = run(loop, main())
    assert received == b"abcdef"
    assert seen == {
        "class": ("asyncio.sslproto", "_SSLProtocolTransport"),
        "isinstance": True,
        "repr": "<asyncio.sslproto._SSLProtocolTransport object at ADDR>",
        "errors": ["data: expecting a bytes-like instance, got str",
                   "data: expecting a bytes-like instance, got int",
                   "data: expecting a bytes-like instance, got NoneType",
                   "data: expecting a bytes-like instance, got list"],
        "buffers": [True, True, True, True]}


def test_replaced_tls_classes_and_methods_are_used(loop, certs,
                                                   monkeypatch):
    """A replaced sslproto._SSLProtocolTransport, a patched ssl.SSLObject
    method and a context's own sslobject_class are each used as stdlib
    uses them; tls_protocol.c's shortcuts step aside."""
    from asyncio import sslproto
    calls = []

    class AppTransport(sslproto._SSLProtocolTransport):
        def write(self, data):
            calls.append("transport.write")
            super().write(data)

    def counting(name):
        original = getattr(ssl.SSLObject, name)

        def method(self, *args):
            calls.append(name)
            return original(self, *args)
        return method

    class OwnSSLObject(ssl.SSLObject):
        def getpeercert(self, binary_form=False):
            calls.append("own getpeercert")
            return super().getpeercert(binary_form)

    async def main():
        monkeypatch.setattr(sslproto, "_SSLProtocolTransport", AppTransport)
        monkeypatch.setattr(ssl.SSLObject, "do_handshake",
                            counting("do_handshake"))
        monkeypatch.setattr(ssl.SSLObject, "read", counting("read"))
        ctx = client_context(certs)
        ctx.sslobject_class = OwnSSLObject
        server, tr, received, closed = await tls_echo_connection(loop, certs,
                                                                 ctx)
        tr.write(b"hello")
        await until(lambda: len(received) >= 5)
        kinds = (type(tr) is AppTransport,
                 type(tr.get_extra_info("ssl_object")) is OwnSSLObject)
        tr.close()
        await closed
        server.close()
        await server.wait_closed()
        return kinds
    assert run(loop, main()) == (True, True)
    for call in ("transport.write", "do_handshake", "read",
                 "own getpeercert"):
        assert call in calls
