"""python -m casyncio run SCRIPT [ARGS...]: run an asyncio program on casyncio.

The script runs as ``python SCRIPT ARGS...`` would (sys.argv, sys.path[0],
``__main__``, exit status, traceback), and every loop asyncio makes for it
(asyncio.run(), asyncio.Runner, asyncio.new_event_loop()) is a casyncio
loop. Before Python 3.14 that is casyncio's event loop policy. From 3.14,
where policies are deprecated, no policy is involved: asyncio.run() and
Runner make their loop with asyncio.events.new_event_loop(), and that
function (with its asyncio.new_event_loop alias) is casyncio's.
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
    if len(argv) < 2 or argv[0] != "run":
        print(USAGE, file=sys.stderr)
        return 2
    script = os.path.abspath(argv[1])
    _make_casyncio_the_default()
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
