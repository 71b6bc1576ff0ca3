"""python -m casyncio run SCRIPT [ARGS...]: run an asyncio program on casyncio.

The script runs as ``python SCRIPT ARGS...`` would (sys.argv, sys.path[0],
``__main__``, exit status, traceback), with casyncio installed as the loop of
every asyncio policy-created loop, asyncio.run() included.
"""
import os
import runpy
import sys

USAGE = "usage: python -m casyncio run SCRIPT [ARGS...]"


def _user_traceback(tb, script):
    """Drop the frames of this launcher and runpy above the script's own."""
    start = tb
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == script:
            return tb
        tb = tb.tb_next
    return start


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] != "run":
        print(USAGE, file=sys.stderr)
        return 2
    script = os.path.abspath(argv[1])
    import casyncio
    casyncio.install()
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(script)
    try:
        runpy.run_path(script, run_name="__main__")
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        tb = _user_traceback(exc.__traceback__, script)
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
