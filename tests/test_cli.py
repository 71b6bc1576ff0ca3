"""python -m casyncio run: runs a script as python would, and a module
(run -m) as python -m would, on casyncio."""
import os
import subprocess
import sys
import textwrap

import pytest


def run(tmp_path, source, *args):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "casyncio", "run",
                           str(script), *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def test_runs_script_on_casyncio_with_argv_and_main(tmp_path):
    proc = run(tmp_path, """
        import asyncio, sys
        async def main():
            loop = asyncio.get_running_loop()
            print(type(loop).__module__, __name__, sys.argv[1:])
        asyncio.run(main())
    """, "a", "b")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "casyncio __main__ ['a', 'b']"


def test_exit_code_and_traceback_match_python(tmp_path):
    proc = run(tmp_path, """
        import sys
        if sys.argv[1:] == ["exit"]:
            sys.exit(3)
        raise ValueError("boom")
    """)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "app.py" in lines[1] and "casyncio" not in proc.stderr
    assert lines[-1] == "ValueError: boom"
    assert run(tmp_path, "import sys; sys.exit(3)").returncode == 3


def test_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "casyncio"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage:")


def test_debug_environment_variable_enables_debug(tmp_path):
    script = tmp_path / "dbg.py"
    script.write_text("import casyncio\nprint(casyncio.new_event_loop()"
                      ".get_debug())\n")
    env_on = dict(os.environ, PYTHONASYNCIODEBUG="1")
    out = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, env=env_on, cwd=tmp_path)
    assert out.stdout.strip() == "True", out.stderr
    out = subprocess.run([sys.executable, "-X", "dev", str(script)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "True"


def run_module(tmp_path, *args, launcher=("-m", "casyncio", "run")):
    return subprocess.run([sys.executable, *launcher, "-m", *args],
                          capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)


def test_run_module_as_python_dash_m_does(tmp_path):
    (tmp_path / "app_module.py").write_text(textwrap.dedent("""
        import asyncio, os, sys
        async def main():
            return type(asyncio.get_running_loop()).__name__
        print(sys.argv, sys.path[0] == os.getcwd(), __name__,
              asyncio.run(main()))
        if sys.argv[1:] == ["fail"]:
            raise ValueError("boom")
    """))
    ours = run_module(tmp_path, "app_module", "a", "b")
    python = run_module(tmp_path, "app_module", "a", "b", launcher=())
    argv = str([str(tmp_path / "app_module.py"), "a", "b"])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == f"{argv} True __main__ Loop"
    assert python.stdout.strip() == \
        f"{argv} True __main__ _UnixSelectorEventLoop"
    failed = run_module(tmp_path, "app_module", "fail")
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "app_module.py" in lines[1] and "casyncio" not in failed.stderr
    assert lines[-1] == "ValueError: boom"


def test_run_missing_module_reports_as_python_dash_m(tmp_path):
    ours = run_module(tmp_path, "no_such_module_here")
    python = run_module(tmp_path, "no_such_module_here", launcher=())
    assert (ours.returncode, ours.stderr) == (python.returncode,
                                              python.stderr)


def test_run_module_pytest(tmp_path):
    """Test runners are started with -m: pytest's tests get casyncio."""
    (tmp_path / "test_on_loop.py").write_text(textwrap.dedent("""
        import asyncio
        def test_loop():
            async def main():
                return type(asyncio.get_running_loop()).__module__
            assert asyncio.run(main()) == "casyncio"
    """))
    proc = run_module(tmp_path, "pytest", "-q", "-p", "no:cacheprovider",
                      "test_on_loop.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_version_comes_from_the_package_metadata(tmp_path):
    from importlib.metadata import version
    import casyncio
    assert casyncio.__version__ == version("casyncio")
    proc = subprocess.run([sys.executable, "-m", "casyncio", "--version"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (
        0, f"casyncio {version('casyncio')}\n")
    with pytest.raises(AttributeError):
        casyncio.no_such_name


def test_the_poller_is_named_for_bug_reports():
    """epoll on Linux; kqueue elsewhere and in the portable build, which CI
    runs with CASYNCIO_PORTABLE=1 set for the tests too."""
    import casyncio
    portable = os.environ.get("CASYNCIO_PORTABLE") == "1"
    expected = ("epoll" if sys.platform.startswith("linux") and not portable
                else "kqueue")
    assert casyncio.POLLER == expected
