"""The libraries people run on an asyncio loop, end to end on both loops:
aiohttp's server and client (HTTP, WebSocket, streamed bodies, Unix
sockets), uvicorn serving a Starlette app to httpx and websockets clients,
and anyio's task groups, cancel scopes, TCP streams and subprocesses.

They exercise what the libraries themselves check on a loop (transport
classes, get_extra_info, Server objects, create_task keywords), so a
mismatch with stdlib shows up here first."""
import asyncio
import os
import socket

import pytest


def run(loop_factory, main):
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(asyncio.wait_for(main(), 60))


def test_aiohttp_server_and_client(loop_factory, tmp_path):
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    async def hello(request):
        return web.Response(text="hi " + request.match_info["name"])

    async def shout(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data.upper())
        return ws

    async def big(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(100):
            await resp.write(bytes([i]) * 65536)
        await resp.write_eof()
        return resp

    async def main():
        app = web.Application()
        app.add_routes([web.get("/h/{name}", hello), web.get("/ws", shout),
                        web.get("/big", big)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        unix_path = str(tmp_path / "aiohttp.sock")
        await web.UnixSite(runner, unix_path).start()
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                responses = await asyncio.gather(
                    *(session.get(f"{url}/h/{i}") for i in range(200)))
                texts = [await r.text() for r in responses]
                assert texts == [f"hi {i}" for i in range(200)]
                async with session.ws_connect(f"{url}/ws") as ws:
                    await ws.send_str("abc")
                    assert (await ws.receive()).data == "ABC"
                async with session.get(f"{url}/big") as resp:
                    body = b"".join(
                        [c async for c in resp.content.iter_chunked(9999)])
                assert body == b"".join(bytes([i]) * 65536
                                        for i in range(100))
            connector = aiohttp.UnixConnector(path=unix_path)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get("http://unix/h/sock") as resp:
                    assert await resp.text() == "hi sock"
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_uvicorn_starlette_httpx_websockets(loop_factory):
    uvicorn = pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    websockets = pytest.importorskip("websockets")
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    async def hello(request):
        return PlainTextResponse("hello " + request.query_params["n"])

    async def stream(request):
        async def chunks():
            for i in range(50):
                yield bytes([i]) * 10000
                await asyncio.sleep(0)
        return StreamingResponse(chunks())

    async def reverse(websocket):
        await websocket.accept()
        await websocket.send_text((await websocket.receive_text())[::-1])
        await websocket.close()

    app = Starlette(routes=[Route("/", hello), Route("/s", stream),
                            WebSocketRoute("/ws", reverse)])

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", loop="none"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient() as client:
                responses = await asyncio.gather(*(
                    client.get(f"http://127.0.0.1:{port}/?n={i}")
                    for i in range(100)))
                assert [r.text for r in responses] == [
                    f"hello {i}" for i in range(100)]
                r = await client.get(f"http://127.0.0.1:{port}/s")
                assert r.content == b"".join(bytes([i]) * 10000
                                             for i in range(50))
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send("abc")
                assert await ws.recv() == "cba"
        finally:
            server.should_exit = True
            await serving
        sock.close()

    run(loop_factory, main)


def test_anyio_primitives(loop_factory):
    anyio = pytest.importorskip("anyio")

    async def echo_once(client):
        async with client:
            await client.send(await client.receive())

    async def main():
        finished = []

        async def sleeper(i):
            await anyio.sleep(0.01 * (i % 3))
            finished.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(sleeper, i)
        assert sorted(finished) == list(range(10))

        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(10)
        assert scope.cancelled_caught

        result = await anyio.run_process(["echo", "hi"])
        assert result.stdout == b"hi\n" and result.returncode == 0

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo_once)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"ping")
                assert await stream.receive() == b"ping"
            tg.cancel_scope.cancel()
        await listener.aclose()

        async with await anyio.create_udp_socket(
                local_host="127.0.0.1") as udp:
            addr = udp.extra(anyio.abc.SocketAttribute.local_address)
            await udp.sendto(b"dgram", *addr)
            data, sender = await udp.receive()
            assert data == b"dgram" and sender == addr

        assert await anyio.to_thread.run_sync(os.getpid) == os.getpid()

    run(loop_factory, main)
