"""Parity tests for the contextvars context that protocol callbacks run in.

3.15 gives each socket transport one context (gh-140947): a client
connection keeps a copy of its caller's, an accepted one a copy of the
context its Server captured when it was made, and every callback of the
connection (protocol factory, connection_made, data_received,
eof_received, connection_lost, the reads resumed from elsewhere) runs
there. Before 3.15 each callback runs in a copy of the context current
when it was scheduled. Every test records what a ContextVar holds in each
callback and compares it with what a stdlib loop of the same Python
records, so each version is held to its own behaviour."""
import asyncio
import contextvars
import os
import socket
import tempfile

import pytest
from parity import on_stdlib
from test_tls import certs, client_context, server_context  # noqa: F401

TIMEOUT = 30
var = contextvars.ContextVar("var", default="default")


class Recording(asyncio.Protocol):
    """Logs var in each callback under its side, then sets var to say
    which callback ran last. The server pauses reading in data_received
    and resumes from a Task of its own whose context differs (as
    gh-140947's ASGI server does), then answers; the client closes once
    answered."""

    def __init__(self, side, log, done):
        self.side, self.log, self.done = side, log, done
        self.record("factory")
        self.tasks = set()

    def record(self, callback):
        self.log.setdefault(self.side, []).append((callback, var.get()))
        var.set(f"{self.side}-{callback}")

    def connection_made(self, transport):
        self.transport = transport
        self.record("connection_made")

    def data_received(self, data):
        self.record("data_received")
        if self.side == "server":
            self.transport.pause_reading()
            task = asyncio.get_running_loop().create_task(self.answer())
            self.tasks.add(task)
        else:
            self.transport.close()

    async def answer(self):
        var.set("answer-task")
        self.transport.resume_reading()
        self.transport.write(b"pong")

    def eof_received(self):
        self.record("eof_received")

    def connection_lost(self, exc):
        self.record("connection_lost")
        self.done[self.side].set_result(None)


async def exchange(loop, serve, connect):
    """A server made by serve(factory), a client by connect(factory); the
    ping-pong above, then both sides closed. Returns the log."""
    log = {}
    done = {"server": loop.create_future(), "client": loop.create_future()}
    var.set("before-server")
    server = await serve(lambda: Recording("server", log, done))
    var.set("after-server")
    transport, _ = await connect(lambda: Recording("client", log, done))
    log["caller after connect"] = var.get()
    var.set("after-connect")
    transport.write(b"ping")
    await asyncio.wait_for(asyncio.gather(*done.values()), TIMEOUT)
    server.close()
    await server.wait_closed()
    log["caller at end"] = var.get()
    return log


def run_exchange(loop, serve, connect):
    def run(loop):
        # A fresh context per run: the loops' runs cannot see each other.
        return contextvars.Context().run(
            loop.run_until_complete, exchange(loop, serve(loop),
                                              connect(loop)))
    return run(loop), on_stdlib(loop, run)


def tcp(ssl_server=None, ssl_client=None):
    port = []

    def serve(loop):
        async def make(factory):
            server = await loop.create_server(factory, "127.0.0.1", 0,
                                              ssl=ssl_server)
            port.append(server.sockets[0].getsockname()[1])
            return server
        return make

    def connect(loop):
        def make(factory):
            return loop.create_connection(
                factory, "127.0.0.1", port[-1], ssl=ssl_client,
                server_hostname="localhost" if ssl_client else None)
        return make
    return serve, connect


def test_tcp_callbacks(loop):
    mine, stdlib = run_exchange(loop, *tcp())
    assert mine == stdlib


def test_tls_callbacks(loop, certs):  # noqa: F811
    mine, stdlib = run_exchange(
        loop, *tcp(server_context(certs), client_context(certs)))
    assert mine == stdlib


def test_unix_callbacks(loop):
    path = os.path.join(tempfile.mkdtemp(), "sock")

    def serve(loop):
        def make(factory):
            if os.path.exists(path):
                os.unlink(path)
            return loop.create_unix_server(factory, path)
        return make

    def connect(loop):
        return lambda factory: loop.create_unix_connection(factory, path)
    mine, stdlib = run_exchange(loop, serve, connect)
    assert mine == stdlib


def test_connect_accepted_socket_callbacks(loop):
    """Both ends made with connect_accepted_socket over a socketpair; the
    "server" here is a stand-in with close() and wait_closed()."""
    def serve(loop):
        async def make(factory):
            ours, theirs = socket.socketpair()
            pair.append(theirs)
            await loop.connect_accepted_socket(factory, ours)

            class NoServer:
                def close(self):
                    pass

                async def wait_closed(self):
                    pass
            return NoServer()
        pair = []
        serve.pair = pair
        return make

    def connect(loop):
        return lambda factory: loop.connect_accepted_socket(
            factory, serve.pair[-1])
    mine, stdlib = run_exchange(loop, serve, connect)
    assert mine == stdlib


def test_streams_handler_and_client(loop):
    """asyncio.start_server's client_connected_cb and open_connection's
    caller see what stdlib's do; a handler's changes stay its own."""
    async def main():
        seen = []

        async def handle(reader, writer):
            seen.append(("handler", var.get()))
            var.set("in-handler")
            await reader.read(4)
            writer.write(var.get().encode())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        var.set("before-server")
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        var.set("after-server")
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            seen.append(("answer", await reader.read()))
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        seen.append(("caller", var.get()))
        return seen

    def run(loop):
        return contextvars.Context().run(loop.run_until_complete, main())
    assert run(loop) == on_stdlib(loop, run)


def test_transport_context_attribute(loop):
    """3.15's socket transports keep their context in _context; earlier
    ones have none."""
    async def main(loop):
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol,
                                                    "127.0.0.1", port)
        context = getattr(transport, "_context", "absent")
        server_context = getattr(server, "_context", "absent")
        transport.close()
        server.close()
        await server.wait_closed()
        return (context if context == "absent" else type(context),
                server_context if server_context == "absent"
                else type(server_context))

    def run(loop):
        return loop.run_until_complete(main(loop))
    assert run(loop) == on_stdlib(loop, run)


def test_accepted_connections_do_not_share_what_the_factory_sets(loop):
    """Each accepted connection's protocol is made in a context of its
    own (stdlib makes it in a Task), on every version."""
    async def main(loop):
        seen = []

        class Closing(asyncio.Protocol):
            def __init__(self):
                seen.append(var.get())
                var.set("set by the factory")

            def connection_made(self, transport):
                seen.append(var.get())
                transport.close()

        server = await loop.create_server(Closing, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()
            writer.close()
        server.close()
        await server.wait_closed()
        return seen

    def run(loop):
        return contextvars.Context().run(loop.run_until_complete, main(loop))
    assert run(loop) == on_stdlib(loop, run)
