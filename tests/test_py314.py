"""What Python 3.14 adds that a loop must honour, on stdlib's loop and on
casyncio's: the call-graph introspection (in-process and `python -m asyncio
ps/pstree` against a live program), no DeprecationWarning from casyncio's
own entry points, and get_event_loop() outside a running loop."""
import asyncio
import io
import re
import subprocess
import sys
import textwrap
import time

import pytest

import casyncio

pytestmark = pytest.mark.skipif(sys.version_info < (3, 14),
                                reason="Python 3.14 behaviour")

FACTORIES = {"stdlib": asyncio.SelectorEventLoop,
             "casyncio": casyncio.new_event_loop}


def call_graph_on(factory):
    async def leaf():
        buf = io.StringIO()
        asyncio.print_call_graph(file=buf)
        graph = asyncio.capture_call_graph()
        return buf.getvalue(), [
            (entry.frame.f_code.co_name for entry in graph.call_stack),
            [fut.future.get_name() for fut in graph.awaited_by]]

    async def middle():
        return await leaf()

    async def main():
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(middle(), name="worker")
        return task.result()

    with asyncio.Runner(loop_factory=factory) as runner:
        text, (frames, awaited_by) = runner.run(main())
        return text, list(frames), awaited_by


def test_capture_and_print_call_graph_match_stdlib():
    # Task ids and the numbers of unnamed tasks differ between runs.
    def strip(text):
        return re.sub(r"id=0x[0-9a-f]+|Task-\d+", "?", text)

    results = {kind: call_graph_on(f) for kind, f in FACTORIES.items()}
    text, frames, awaited_by = results["casyncio"]
    assert frames == results["stdlib"][1]
    assert "leaf" in frames and "middle" in frames
    assert [strip(name) for name in awaited_by] == ["?"]
    assert strip(text) == strip(results["stdlib"][0])
    assert "* Task(name='worker'" in text


LIVE_PROGRAM = """
    import asyncio, sys, casyncio
    async def sleeper():
        await asyncio.sleep(60)
    async def supervisor():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sleeper(), name="sleeper-a")
            tg.create_task(sleeper(), name="sleeper-b")
    async def main():
        task = asyncio.create_task(supervisor(), name="supervisor")
        await asyncio.sleep(0.1)
        print(type(asyncio.get_running_loop()).__module__, flush=True)
        await task
    factory = {"stdlib": None, "casyncio": casyncio.new_event_loop}
    asyncio.run(main(), loop_factory=factory[sys.argv[1]])
"""


def introspect(tmp_path, kind, command):
    script = tmp_path / "live.py"
    script.write_text(textwrap.dedent(LIVE_PROGRAM))
    program = subprocess.Popen([sys.executable, str(script), kind],
                               stdout=subprocess.PIPE, text=True)
    try:
        loop_module = program.stdout.readline().strip()
        out = subprocess.run(
            [sys.executable, "-m", "asyncio", command, str(program.pid)],
            capture_output=True, text=True, timeout=60)
    finally:
        program.kill()
        program.wait()
    if out.returncode != 0 and "ermission" in out.stderr:
        pytest.skip(f"cannot read another process here: {out.stderr}")
    assert out.returncode == 0, out.stderr
    # Thread and task ids differ between runs; the rest must not.
    text = re.sub(r"0x[0-9a-f]+", "0x?", out.stdout)
    return loop_module, re.sub(rf"\b{program.pid}\b|^\d+ ", "?", text,
                               flags=re.M)


@pytest.mark.parametrize("command", ["ps", "pstree"])
def test_asyncio_ps_and_pstree_read_a_live_casyncio_program(tmp_path,
                                                           command):
    stdlib_module, stdlib_out = introspect(tmp_path, "stdlib", command)
    module, out = introspect(tmp_path, "casyncio", command)
    assert (stdlib_module, module) == ("asyncio.unix_events", "casyncio")
    assert out == stdlib_out
    for name in ("supervisor", "sleeper-a", "sleeper-b"):
        assert name in out


def run_python(source, *options):
    return subprocess.run([sys.executable, *options, "-c",
                           textwrap.dedent(source)],
                          capture_output=True, text=True, timeout=60)


def test_casyncio_entry_points_emit_no_deprecation_warning(tmp_path):
    proc = run_python("""
        import asyncio, casyncio
        async def main():
            await asyncio.sleep(0)
            return type(asyncio.get_running_loop()).__module__
        assert asyncio.run(main(),
                           loop_factory=casyncio.new_event_loop) == "casyncio"
        assert casyncio.run(main()) == "casyncio"
        with asyncio.Runner(loop_factory=casyncio.new_event_loop) as r:
            assert r.run(main()) == "casyncio"
        casyncio.install()
        assert asyncio.run(main()) == "casyncio"
        casyncio.EventLoopPolicy().new_event_loop().close()
    """, "-W", "error::DeprecationWarning")
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "app.py"
    script.write_text("import asyncio\n"
                      "async def main():\n"
                      "    return type(asyncio.get_running_loop())"
                      ".__module__\n"
                      "print(asyncio.run(main()))\n"
                      "with asyncio.Runner() as r:\n"
                      "    print(r.run(main()))\n"
                      "loop = asyncio.new_event_loop()\n"
                      "print(type(loop).__module__)\n"
                      "loop.close()\n")
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning",
                           "-m", "casyncio", "run", str(script)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["casyncio"] * 3


def test_cli_sets_no_policy():
    proc = run_python("""
        import asyncio, sys
        from casyncio.__main__ import _make_casyncio_the_default
        before = asyncio.events._get_event_loop_policy()
        _make_casyncio_the_default()
        assert asyncio.events._get_event_loop_policy() is before
        loop = asyncio.new_event_loop()
        print(type(loop).__module__)
        loop.close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "casyncio"


def test_get_event_loop_outside_a_loop_matches_stdlib():
    # 3.14: no implicit loop; RuntimeError until one is set.
    source = """
        import asyncio, casyncio, sys
        if sys.argv[1] == "casyncio":
            casyncio.install()
        try:
            asyncio.get_event_loop()
        except RuntimeError as exc:
            print("RuntimeError", exc)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        print(asyncio.get_event_loop() is loop, type(loop).__module__)
        loop.close()
    """
    outs = {}
    for kind in FACTORIES:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(source),
                               kind], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        outs[kind] = proc.stdout.splitlines()
    assert outs["stdlib"][0] == outs["casyncio"][0]
    assert outs["stdlib"][0].startswith(
        "RuntimeError There is no current event loop in thread")
    assert outs["stdlib"][1] == "True asyncio.unix_events"
    assert outs["casyncio"][1] == "True casyncio"
