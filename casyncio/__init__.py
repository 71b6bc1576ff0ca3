"""casyncio: asyncio's event loop, implemented in C.

Use it with ``asyncio.run(main(), loop_factory=casyncio.new_event_loop)``,
``casyncio.run(main())``, ``casyncio.install()`` or
``python -m casyncio run script.py``.
"""
import asyncio as _asyncio
import inspect as _inspect
import sys as _sys

from . import _casyncio
from ._stdlib_glue import StdlibGlue as _StdlibGlue

# (major, minor) of the newest CPython this build was checked against. On a
# newer one the loop and its transports still follow that version's
# asyncio, while the streams, SSLProtocol and socket constructors run
# stdlib's own Python instead of casyncio's C copies of it.
NEWEST_TESTED_PYTHON = _casyncio.NEWEST_TESTED_PYTHON
# The poller this build waits with: "epoll" (Linux), or "kqueue" (macOS,
# the BSDs, and the portable build on Linux).
POLLER = _casyncio.POLLER


def _coroutine_method(name):
    """An ``async def`` with the C method's parameters that awaits the C
    method's awaitable.

    Code and tests tell coroutine methods by inspection
    (``mock.patch.object(loop, "create_server", autospec=True)`` makes an
    AsyncMock only for a function whose code is a coroutine's), which a C
    method cannot pass. Its parameters are the C method's, so a wrong
    argument fails at the call, as with stdlib's ``async def``. The
    set-up methods below cost tens of microseconds per call, so one Python
    frame more is noise there; the per-read ``sock_*`` methods stay C.
    """
    c_method = getattr(_casyncio.Loop, name)
    signature = _inspect.signature(c_method)
    defaults = {}
    params, passed = [], []
    kind = _inspect.Parameter
    for param in signature.parameters.values():
        text = param.name
        if param.default is not param.empty:
            defaults["_d_" + param.name] = param.default
            text += "=_d_" + param.name
        if param.kind is kind.KEYWORD_ONLY and "*" not in params:
            params.append("*")
        params.append(text)
        passed.append(param.name if param.kind is not kind.KEYWORD_ONLY
                      else f"{param.name}={param.name}")
    source = (f"async def {name}({', '.join(params)}):\n"
              f"    return await _c_method({', '.join(passed)})\n")
    namespace = {"_c_method": c_method, **defaults}
    exec(source, namespace)
    method = namespace[name]
    method.__qualname__ = "Loop." + name
    method.__doc__ = c_method.__doc__
    method._casyncio_own = True  # see _stdlib_glue._pipe_connects_replaced
    return method


_COROUTINE_METHODS = (
    "create_connection", "create_unix_connection", "connect_accepted_socket",
    "create_server", "create_unix_server", "create_datagram_endpoint",
    "connect_read_pipe", "connect_write_pipe", "start_tls", "sendfile",
    "getaddrinfo", "getnameinfo", "shutdown_asyncgens",
    "shutdown_default_executor",
)


class Loop(_casyncio.Loop, _StdlibGlue, _asyncio.AbstractEventLoop):
    """The casyncio event loop (the C type, registered as an asyncio loop)."""


for _name in _COROUTINE_METHODS:
    setattr(Loop, _name, _coroutine_method(_name))
del _name


def new_event_loop():
    """Return a new casyncio event loop."""
    return Loop()


# Python 3.14 deprecates the policy system: the public names warn when
# used, so casyncio builds on the private ones it keeps working. A Python
# that has removed them (3.16 is to) has no EventLoopPolicy here, and
# install() says what to use instead.
if _sys.version_info >= (3, 14):
    try:
        from asyncio.unix_events import (
            _DefaultEventLoopPolicy as _DefaultPolicy)
        from asyncio.events import _set_event_loop_policy as _set_policy
    except ImportError:
        _DefaultPolicy = _set_policy = None
else:
    _DefaultPolicy = _asyncio.DefaultEventLoopPolicy
    _set_policy = _asyncio.set_event_loop_policy

if _DefaultPolicy is not None:
    class EventLoopPolicy(_DefaultPolicy):
        """An event loop policy whose new loops are casyncio loops."""

        def new_event_loop(self):
            return Loop()

    __all__ = ("Loop", "new_event_loop", "EventLoopPolicy", "install", "run")
else:
    __all__ = ("Loop", "new_event_loop", "install", "run")


def install():
    """Make every loop created through the asyncio policy a casyncio loop.

    Policies are deprecated from Python 3.14 and go in 3.16. install()
    still works on 3.14 and warns about nothing, but from 3.14 on pass
    ``loop_factory=casyncio.new_event_loop`` to ``asyncio.run()`` or
    ``asyncio.Runner`` instead.
    """
    if _set_policy is None:
        raise RuntimeError(
            f"asyncio has no event loop policies on Python "
            f"{_sys.version_info[0]}.{_sys.version_info[1]}: pass "
            f"loop_factory=casyncio.new_event_loop to asyncio.run() or "
            f"asyncio.Runner, or run the program with python -m casyncio "
            f"run")
    _set_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """asyncio.run(main) on a casyncio loop."""
    if _sys.version_info >= (3, 12):
        return _asyncio.run(main, debug=debug, loop_factory=new_event_loop)
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


def __getattr__(name):
    # The version comes from the installed package's metadata, the one
    # place it is written (pyproject.toml); read on first use only.
    if name == "__version__":
        from importlib.metadata import version
        return version("casyncio")
    raise AttributeError(f"module 'casyncio' has no attribute {name!r}")
