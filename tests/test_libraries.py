"""The libraries people run on an asyncio loop, end to end on both loops:
aiohttp's server and client (HTTP, WebSocket, streamed bodies, Unix
sockets), uvicorn serving a Starlette app to httpx and websockets clients,
and anyio's task groups, cancel scopes, TCP streams and subprocesses.

They exercise what the libraries themselves check on a loop (transport
classes, get_extra_info, Server objects, create_task keywords), so a
mismatch with stdlib shows up here first."""
import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

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


# Recipes: the Guide's "Use it with" lines (docs/guide.md), each run as a
# user runs it (servers from their command line, in processes of their
# own), once with the loop stdlib's way and once with casyncio's. The app
# answers with its process id and its running loop's class.

RECIPE_LOOPS = {  # how a recipe names the loop, and the class it gets
    "stdlib": ("asyncio", "asyncio.SelectorEventLoop",
               "asyncio.unix_events._UnixSelectorEventLoop"),
    "casyncio": ("casyncio:new_event_loop", "casyncio.new_event_loop",
                 "casyncio.Loop"),
}

ASGI_APP = """
import asyncio, json, os, time

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    loop = type(asyncio.get_running_loop())
    # Holds this worker a moment, so that the next connections go to
    # the other workers.
    time.sleep(0.02)
    body = json.dumps({"pid": os.getpid(),
                       "loop": f"{loop.__module__}.{loop.__qualname__}"})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})
"""


@pytest.fixture(params=list(RECIPE_LOOPS))
def recipe_loop(request):
    """(the loop's name for uvicorn, a factory expression, the class name
    the app must report)."""
    return RECIPE_LOOPS[request.param]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port, path="/"):
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        conn.close()


@contextlib.contextmanager
def server_process(argv, port, cwd):
    """Runs a server's command line until it answers on port; on leaving,
    stops it with SIGTERM, as a service manager does, and checks that it
    exited cleanly: status 0, or killed by the SIGTERM it re-raised after
    shutting down (uvicorn does), and no traceback logged."""
    log = open(os.path.join(cwd, "server.log"), "w+")
    proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, read_log(log)
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, read_log(log)
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            log.close()
    with open(log.name) as f:
        output = f.read()
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output


def read_log(log):
    log.seek(0)
    return log.read()


def pids_serving(port, loop_class, want):
    """The process ids that answered concurrent requests, until want
    distinct ones did; each answer must come from loop_class."""
    pids = set()
    deadline = time.monotonic() + 30
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while len(pids) < want and time.monotonic() < deadline:
            for answer in pool.map(get_json, [port] * 16):
                assert answer["loop"] == loop_class
                pids.add(answer["pid"])
    return pids


def test_recipe_uvicorn_loop_option(recipe_loop, tmp_path):
    pytest.importorskip("uvicorn")
    uvicorn_loop, _, loop_class = recipe_loop
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    with server_process([sys.executable, "-m", "uvicorn", "app:app",
                         "--port", str(port), "--loop", uvicorn_loop],
                        port, tmp_path):
        assert get_json(port)["loop"] == loop_class


def test_recipe_uvicorn_workers_serve_from_each_process(recipe_loop,
                                                        tmp_path):
    pytest.importorskip("uvicorn")
    uvicorn_loop, _, loop_class = recipe_loop
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    with server_process([sys.executable, "-m", "uvicorn", "app:app",
                         "--port", str(port), "--loop", uvicorn_loop,
                         "--workers", "2"], port, tmp_path) as proc:
        pids = pids_serving(port, loop_class, 2)
        assert len(pids) == 2 and proc.pid not in pids


def test_recipe_casyncio_run_module_uvicorn(tmp_path):
    # Under "casyncio run" asyncio's own loop factory is casyncio's, so
    # uvicorn takes it with --loop none (its default picks a loop class
    # itself).
    pytest.importorskip("uvicorn")
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    with server_process([sys.executable, "-m", "casyncio", "run", "-m",
                         "uvicorn", "app:app", "--port", str(port),
                         "--loop", "none"], port, tmp_path):
        assert get_json(port)["loop"] == RECIPE_LOOPS["casyncio"][2]


def test_recipe_gunicorn_uvicorn_worker(recipe_loop, tmp_path):
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    uvicorn_loop, _, loop_class = recipe_loop
    (tmp_path / "app.py").write_text(ASGI_APP)
    (tmp_path / "workers.py").write_text(textwrap.dedent(f"""
        from uvicorn_worker import UvicornWorker

        class LoopWorker(UvicornWorker):
            CONFIG_KWARGS = {{"loop": "{uvicorn_loop}"}}
    """))
    port = free_port()
    with server_process([sys.executable, "-m", "gunicorn", "app:app",
                         "--bind", f"127.0.0.1:{port}", "--workers", "2",
                         "--worker-class", "workers.LoopWorker"],
                        port, tmp_path) as proc:
        pids = pids_serving(port, loop_class, 2)
        assert len(pids) == 2 and proc.pid not in pids


AIOHTTP_SERVER = """
import asyncio, casyncio
from aiohttp import web

async def handle(request):
    loop = type(asyncio.get_running_loop())
    return web.json_response(
        {{"pid": 0, "loop": f"{{loop.__module__}}.{{loop.__qualname__}}"}})

app = web.Application()
app.router.add_get("/", handle)
web.run_app(app, host="127.0.0.1", port={port}, print=None{loop})
"""


def test_recipe_aiohttp_run_app(recipe_loop, tmp_path):
    pytest.importorskip("aiohttp")
    _, factory, loop_class = recipe_loop
    port = free_port()
    (tmp_path / "server.py").write_text(AIOHTTP_SERVER.format(
        port=port, loop=f", loop={factory}()"))
    with server_process([sys.executable, "server.py"], port, tmp_path):
        assert get_json(port)["loop"] == loop_class


def test_recipe_casyncio_run_aiohttp_server(tmp_path):
    pytest.importorskip("aiohttp")
    port = free_port()
    (tmp_path / "server.py").write_text(AIOHTTP_SERVER.format(port=port,
                                                              loop=""))
    with server_process([sys.executable, "-m", "casyncio", "run",
                         "server.py"], port, tmp_path):
        assert get_json(port)["loop"] == RECIPE_LOOPS["casyncio"][2]


def run_pytest_asyncio_suite(tmp_path, loop_class, conftest, *launcher):
    """Runs a one-test suite using pytest-asyncio (an async fixture and an
    async test, both checking loop_class) with pytest started by
    launcher, and checks that it passed."""
    pytest.importorskip("pytest_asyncio")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    (tmp_path / "test_app.py").write_text(textwrap.dedent(f"""
        import asyncio
        import pytest, pytest_asyncio

        def loop_class():
            loop = type(asyncio.get_running_loop())
            return f"{{loop.__module__}}.{{loop.__qualname__}}"

        @pytest_asyncio.fixture
        async def fixture_loop():
            return loop_class()

        @pytest.mark.asyncio
        async def test_loop(fixture_loop):
            assert loop_class() == fixture_loop == "{loop_class}"
    """))
    proc = subprocess.run(
        [*launcher, "pytest", "-q", "-p", "no:cacheprovider",
         "-o", "asyncio_default_fixture_loop_scope=function"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_recipe_pytest_asyncio_loop_factories_hook(recipe_loop, tmp_path):
    _, factory, loop_class = recipe_loop
    run_pytest_asyncio_suite(tmp_path, loop_class, f"""
        import asyncio, casyncio

        def pytest_asyncio_loop_factories(config, item):
            return {{"loop": {factory}}}
    """, sys.executable, "-m")


def test_recipe_casyncio_run_module_pytest_with_pytest_asyncio(tmp_path):
    run_pytest_asyncio_suite(tmp_path, RECIPE_LOOPS["casyncio"][2], "",
                             sys.executable, "-m", "casyncio", "run", "-m")


def class_made_by(loop_factory):
    loop = loop_factory()
    loop.close()
    return type(loop)


def test_recipe_anyio_backend_options(loop_factory):
    anyio = pytest.importorskip("anyio")

    async def main():
        await anyio.sleep(0)
        return type(asyncio.get_running_loop())

    assert anyio.run(main, backend="asyncio",
                     backend_options={"loop_factory": loop_factory}) \
        is class_made_by(loop_factory)


def test_recipe_starlette_and_fastapi_test_client(loop_factory):
    pytest.importorskip("httpx2")  # what starlette's TestClient runs on
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient as FastAPITestClient

    def loop_name():
        return type(asyncio.get_running_loop()).__qualname__

    async def starlette_endpoint(request):
        return PlainTextResponse(loop_name())

    fastapi_app = fastapi.FastAPI()

    @fastapi_app.get("/")
    async def fastapi_endpoint():
        return {"loop": loop_name()}

    expected = class_made_by(loop_factory).__qualname__
    options = {"loop_factory": loop_factory}
    with TestClient(Starlette(routes=[Route("/", starlette_endpoint)]),
                    backend_options=options) as client:
        assert client.get("/").text == expected
    with FastAPITestClient(fastapi_app, backend_options=options) as client:
        assert client.get("/").json() == {"loop": expected}
