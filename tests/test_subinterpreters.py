"""casyncio in subinterpreters with GILs of their own (3.14+'s
concurrent.interpreters): the way to more than one core in one process.

Two subinterpreters each run a loop that serves TCP, TLS and Unix echoes
to their own clients, fires timers, runs a subprocess and an executor job
(tests/subinterpreter_work.py), in threads of their own, while the main
interpreter runs the same on its own loop; each must get back exactly its
own answers. Run on both loops. The rest of the parity suite runs inside
a subinterpreter through tests/run_in_subinterpreter.py (tests/run_all.sh)."""
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import subinterpreter_work
from conftest import in_subinterpreter
from test_tls import certs  # noqa: F401

interpreters = pytest.importorskip("concurrent.interpreters")
pytestmark = pytest.mark.skipif(in_subinterpreter(),
                                reason="makes subinterpreters of its own")
TESTS = os.path.dirname(os.path.abspath(__file__))


def in_interpreter(interp, tag, kind, paths, results):
    interp.exec(f"import sys; sys.path.insert(0, {TESTS!r})")
    results[tag] = interp.call(subinterpreter_work.serve, tag, kind, paths)


@pytest.mark.parametrize("kind", ["stdlib", "casyncio"])
def test_loops_in_two_subinterpreters_and_the_main_one_at_once(
        kind, certs):  # noqa: F811
    paths = {"cert": certs("server.pem"), "key": certs("server.key"),
             "ca": certs("ca.pem")}
    results = {}
    subs = [interpreters.create() for _ in range(2)]
    try:
        threads = [threading.Thread(target=in_interpreter,
                                    args=(interp, f"sub{i}", kind, paths,
                                          results))
                   for i, interp in enumerate(subs)]
        for t in threads:
            t.start()
        results["main"] = subinterpreter_work.serve("main", kind, paths)
        for t in threads:
            t.join()
    finally:
        for interp in subs:
            interp.close()
    assert sorted(results) == ["main", "sub0", "sub1"]
    for tag, got in results.items():
        got.pop("thread")
        assert got == {"echoed": True, "timers": [0.01, 0.02, 0.03],
                       "subprocess": (tag, 0), "executor": tag.upper(),
                       "var": tag,
                       "loop": "Loop" if kind == "casyncio" else
                       "_UnixSelectorEventLoop"}, tag


def test_signal_handlers_refused_in_a_subinterpreter_as_stdlib_does():
    code = textwrap.dedent("""
        import asyncio, signal, casyncio
        for factory in (asyncio.SelectorEventLoop, casyncio.new_event_loop):
            loop = factory()
            try:
                loop.add_signal_handler(signal.SIGUSR1, print)
            except Exception as exc:
                print(type(exc).__name__, exc)
            finally:
                loop.close()
    """)
    program = textwrap.dedent(f"""
        from concurrent import interpreters
        interp = interpreters.create()
        interp.exec({code!r})
        interp.close()
    """)
    out = subprocess.run([sys.executable, "-c", program], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert len(out) == 2 and out[0] == out[1], out
    assert out[0].startswith("RuntimeError ")


APP = '''
import asyncio
from concurrent import interpreters

import casyncio

PORT = {port}


async def handle(reader, writer):
    me = interpreters.get_current().id
    writer.write(await reader.read(100) + b" from %d" % me)
    await writer.drain()
    writer.close()


async def serve():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT,
                                        reuse_port=True)
    await server.serve_forever()


def run():
    asyncio.run(serve(), loop_factory=casyncio.new_event_loop)
'''

LAUNCHER = '''
import sys
from concurrent import interpreters

import app


def main(n):
    threads = []
    for _ in range(n):
        interp = interpreters.create()
        interp.exec(f"import sys; sys.path[:] = {sys.path!r}")
        threads.append(interp.call_in_thread(app.run))
    for thread in threads:
        thread.join()


main(int(sys.argv[1]))
'''


def test_readme_recipe_serves_from_two_interpreters(tmp_path):
    """The Guide's recipe: one process, two interpreters, each with its own
    casyncio loop on a reuse_port listener; connections reach both."""
    import socket
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "app.py").write_text(APP.format(port=port))
    (tmp_path / "serve.py").write_text(LAUNCHER)
    server = subprocess.Popen([sys.executable, "serve.py", "2"],
                              cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        replies = []
        deadline = time.monotonic() + 30
        # Until both have answered: the second may start listening later.
        while time.monotonic() < deadline and (
                len(replies) < 40 or len({i for _, i in replies}) < 2):
            try:
                with socket.create_connection(("127.0.0.1", port)) as c:
                    c.sendall(b"hi")
                    replies.append(c.recv(100).split(b" from "))
            except ConnectionRefusedError:
                time.sleep(0.05)  # no interpreter listening yet
        assert {data for data, _ in replies} == {b"hi"}, server.poll()
        assert len({interp for _, interp in replies}) == 2
    finally:
        server.kill()
        server.wait()
