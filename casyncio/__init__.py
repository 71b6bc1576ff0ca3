"""casyncio: asyncio's event loop, implemented in C.

Use it with ``asyncio.run(main(), loop_factory=casyncio.new_event_loop)``,
``casyncio.run(main())``, ``casyncio.install()`` or
``python -m casyncio run script.py``.
"""
import asyncio as _asyncio
import sys as _sys

from . import _casyncio
from ._stdlib_glue import StdlibGlue as _StdlibGlue

__all__ = ("Loop", "new_event_loop", "EventLoopPolicy", "install", "run")


class Loop(_casyncio.Loop, _StdlibGlue, _asyncio.AbstractEventLoop):
    """The casyncio event loop (the C type, registered as an asyncio loop)."""


def new_event_loop():
    """Return a new casyncio event loop."""
    return Loop()


# Python 3.14 deprecates the policy system: the public names warn when
# used, so casyncio builds on the private ones it keeps working.
if _sys.version_info >= (3, 14):
    from asyncio.unix_events import _DefaultEventLoopPolicy as _DefaultPolicy
    from asyncio.events import _set_event_loop_policy as _set_policy
else:
    _DefaultPolicy = _asyncio.DefaultEventLoopPolicy
    _set_policy = _asyncio.set_event_loop_policy


class EventLoopPolicy(_DefaultPolicy):
    """An event loop policy whose new loops are casyncio loops."""

    def new_event_loop(self):
        return Loop()


def install():
    """Make every loop created through the asyncio policy a casyncio loop.

    Policies are deprecated from Python 3.14 and go in 3.16. install()
    still works on 3.14 and warns about nothing, but from 3.14 on pass
    ``loop_factory=casyncio.new_event_loop`` to ``asyncio.run()`` or
    ``asyncio.Runner`` instead.
    """
    _set_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """asyncio.run(main) on a casyncio loop."""
    if _sys.version_info >= (3, 12):
        return _asyncio.run(main, debug=debug, loop_factory=new_event_loop)
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
