"""The package's types (casyncio/__init__.pyi, py.typed): type checkers see
casyncio.Loop as an asyncio.AbstractEventLoop that can be instantiated, and
the stub names only what exists at runtime."""
import ast
import os
import re
import subprocess
import sys
import textwrap

import pytest

import casyncio

STUB = os.path.join(os.path.dirname(casyncio.__file__), "__init__.pyi")


def test_stub_and_marker_are_installed():
    assert os.path.exists(STUB)
    assert os.path.exists(os.path.join(os.path.dirname(STUB), "py.typed"))


def test_stub_names_exist_at_runtime():
    tree = ast.parse(open(STUB).read())
    loop_class = next(node for node in tree.body
                      if isinstance(node, ast.ClassDef) and
                      node.name == "Loop")
    bound = [node.targets[0].id for node in loop_class.body
             if isinstance(node, ast.Assign)]
    assert "create_server" in bound and "run_forever" in bound
    for name in bound:
        assert callable(getattr(casyncio.Loop, name)), name
    for name in casyncio.__all__:
        assert hasattr(casyncio, name)


def test_mypy_sees_an_abstract_event_loop(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "program.py").write_text(textwrap.dedent("""
        import asyncio
        import sys
        import casyncio

        async def answer() -> int:
            return 42

        loop = casyncio.Loop()
        reveal_type(loop)
        generic: asyncio.AbstractEventLoop = casyncio.new_event_loop()
        reveal_type(loop.create_server)
        reveal_type(casyncio.run(answer()))
        if sys.version_info >= (3, 12):
            asyncio.run(answer(), loop_factory=casyncio.new_event_loop)
        with asyncio.Runner(loop_factory=casyncio.Loop) as runner:
            runner.run(answer())
        policy: asyncio.AbstractEventLoopPolicy = casyncio.EventLoopPolicy()
        loop.call_soon(1)  # the one error: 1 is not a callable
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "program.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    lines = proc.stdout.splitlines()
    notes = [line for line in lines if "Revealed type" in line]
    errors = [line for line in lines if ": error:" in line]
    assert 'Revealed type is "casyncio.Loop"' in notes[0], proc.stdout
    assert "asyncio.base_events.Server" in notes[1], proc.stdout
    assert re.search(r'Revealed type is "(builtins\.)?int"', notes[2]), \
        proc.stdout
    assert len(errors) == 1 and "program.py:19:" in errors[0] and \
        "[arg-type]" in errors[0], proc.stdout
