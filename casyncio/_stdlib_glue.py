"""The once-per-call parts of the loop that are still stdlib's.

casyncio's C code moves the bytes (TLS records, sendfile and
sock_sendfile included), watches the fds, signals and child processes,
answers getaddrinfo and getnameinfo (and resolves the addresses the
calls below are given), connects (create_connection with its
happy eyeballs, create_unix_connection, connect_accepted_socket,
connect_read_pipe, connect_write_pipe, start_tls), listens (create_server,
create_unix_server and their Server) and makes datagram endpoints. What is
left here runs once per call: subprocess argument checks and logging;
unix_events' private sendfile helpers stay reachable for code that calls
them directly. It is the running interpreter's own asyncio code, bound
to the casyncio loop, so it behaves, errors included, exactly as that
Python version's loop does. These functions call only public loop methods
and the private ones the C loop provides (``_make_socket_transport``,
``_start_serving``, ``_add_reader``, ``_spawn_subprocess`` and friends).
"""
import sys
from asyncio import base_events, events, unix_events


_BASE = base_events.BaseEventLoop
_UNIX = unix_events._UnixSelectorEventLoop

_BORROWED = {
    _BASE: (
        "subprocess_exec", "subprocess_shell", "_log_subprocess",
    ),
    _UNIX: (
        "_sock_sendfile_native", "_sock_sendfile_native_impl",
        "_sock_sendfile_update_filepos", "_sock_add_cancellation_callback",
        "_child_watcher_callback",
    ),
}


def _policy_child_watcher():
    """The child watcher set on the asyncio policy, unless it is one that
    waits for its own children only (stdlib's defaults): those are safe to
    bypass, while the SIGCHLD-driven ones reap every child and must be
    used instead of the loop's own reaping."""
    if sys.version_info >= (3, 14):
        return None
    watcher = getattr(events.get_event_loop_policy(), "_watcher", None)
    if isinstance(watcher, (unix_events.ThreadedChildWatcher,
                            getattr(unix_events, "PidfdChildWatcher", ()))):
        return None
    return watcher


def _pipe_connects_replaced(loop):
    """Whether connect_read_pipe or connect_write_pipe is replaced on the
    loop (asyncio's tests patch them) or in a subclass: stdlib connects a
    child's pipes through them, so its transport is used then."""
    return any(name in vars(loop) or
               not getattr(getattr(type(loop), name), "_casyncio_own", False)
               for name in ("connect_read_pipe", "connect_write_pipe"))


async def _make_subprocess_transport(self, protocol, args, shell,
                                     stdin, stdout, stderr, bufsize,
                                     extra=None, **kwargs):
    # stdlib's version with the C transport, which spawns with Popen and
    # has the loop watch the child (pidfd) instead of a child watcher. A
    # reaping watcher set on the policy (deprecated, gone in 3.14) is
    # honoured through stdlib's code.
    if _policy_child_watcher() is not None:
        return await _UNIX._make_subprocess_transport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            extra=extra, **kwargs)
    waiter = self.create_future()
    if _pipe_connects_replaced(self):
        transp = unix_events._UnixSubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs)
        self._add_child_handler(transp.get_pid(),
                                self._child_watcher_callback, transp)
    else:
        transp = self._spawn_subprocess(protocol, args, shell, stdin, stdout,
                                        stderr, bufsize, waiter, extra,
                                        **kwargs)
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        transp.close()
        await transp._wait()
        raise
    return transp


StdlibGlue = type(
    "StdlibGlue", (),
    {"__doc__": "Mixin: the stdlib methods named above and "
                "_make_subprocess_transport.",
     "__module__": __name__,
     "_make_subprocess_transport": _make_subprocess_transport,
     **{name: getattr(cls, name)
        for cls, names in _BORROWED.items() for name in names}})
