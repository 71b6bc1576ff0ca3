"""python -m casyncio run: behaves like running the script with python."""
import os
import subprocess
import sys
import textwrap


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
