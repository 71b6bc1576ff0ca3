"""python -m casyncio run SCRIPT|-m MODULE [ARGS...]: run an asyncio program
on casyncio.

The script runs as ``python SCRIPT ARGS...`` would, and the module as
``python -m MODULE ARGS...`` would (sys.argv, sys.path[0], ``__main__``,
exit status, traceback), and every loop asyncio makes for it
(asyncio.run(), asyncio.Runner, asyncio.new_event_loop()) is a casyncio
loop. Before Python 3.14 that is casyncio's event loop policy. From 3.14,
where policies are deprecated, no policy is involved: asyncio.run() and
Runner make their loop with asyncio.events.new_event_loop(), and that
function (with its asyncio.new_event_loop alias) is casyncio's.
"""
import os
import runpy
import sys

USAGE = ("usage: python -m casyncio run SCRIPT|-m MODULE [ARGS...]\n"
         "       python -m casyncio --version")
_LAUNCHER_FILES = (os.path.abspath(__file__), os.path.abspath(runpy.__file__))


def _user_traceback(tb):
    """The traceback from the program's first frame on, past this launcher
    and runpy; None when the error came before the program ran."""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if os.path.abspath(filename) not in _LAUNCHER_FILES and \
                not filename.startswith("<frozen "):
            return tb
        tb = tb.tb_next
    return None


def _make_casyncio_the_default():
    import casyncio
    if sys.version_info < (3, 14):
        casyncio.install()
        return
    import asyncio
    import asyncio.events
    asyncio.events.new_event_loop = casyncio.new_event_loop
    asyncio.new_event_loop = casyncio.new_event_loop


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:
        import casyncio
        print(f"casyncio {casyncio.__version__}")
        return 0
    as_module = argv[1:2] == ["-m"]
    if argv[:1] != ["run"] or len(argv) < (3 if as_module else 2):
        print(USAGE, file=sys.stderr)
        return 2
    _make_casyncio_the_default()
    try:
        if as_module:
            # As python -m: the current directory first on sys.path, and
            # runpy sets sys.argv[0] to the module's file.
            sys.argv = argv[2:]
            sys.path[0] = os.getcwd()
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(argv[1])
            sys.argv = argv[1:]
            sys.path[0] = os.path.dirname(script)
            runpy.run_path(script, run_name="__main__")
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        tb = _user_traceback(exc.__traceback__)
        if tb is None and as_module and isinstance(exc, ImportError):
            # No such module (or package without __main__): python -m's
            # one line.
            print(f"{sys.executable}: {exc}", file=sys.stderr)
            return 1
        tb = tb or exc.__traceback__
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
