"""Types of casyncio's public API, for type checkers (the package itself is
a C extension under thin Python glue)."""
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

if sys.version_info >= (3, 14):
    from asyncio.unix_events import _DefaultEventLoopPolicy as _DefaultPolicy
else:
    from asyncio import DefaultEventLoopPolicy as _DefaultPolicy

__all__ = ("Loop", "new_event_loop", "EventLoopPolicy", "install", "run")
__version__: str
NEWEST_TESTED_PYTHON: tuple[int, int]
POLLER: str

_T = TypeVar("_T")
_Abstract = asyncio.AbstractEventLoop

class Loop(asyncio.AbstractEventLoop):
    """The casyncio event loop: an asyncio.AbstractEventLoop."""

    def __init__(self) -> None: ...
    # Loop implements every method AbstractEventLoop leaves abstract, with
    # its signature: each is bound to that signature, so that type checkers
    # see it implemented (and Loop() as a concrete class).
    add_reader = _Abstract.add_reader
    add_signal_handler = _Abstract.add_signal_handler
    add_writer = _Abstract.add_writer
    call_at = _Abstract.call_at
    call_exception_handler = _Abstract.call_exception_handler
    call_later = _Abstract.call_later
    call_soon = _Abstract.call_soon
    call_soon_threadsafe = _Abstract.call_soon_threadsafe
    close = _Abstract.close
    connect_read_pipe = _Abstract.connect_read_pipe
    connect_write_pipe = _Abstract.connect_write_pipe
    create_connection = _Abstract.create_connection
    create_datagram_endpoint = _Abstract.create_datagram_endpoint
    create_future = _Abstract.create_future
    create_server = _Abstract.create_server
    create_task = _Abstract.create_task
    default_exception_handler = _Abstract.default_exception_handler
    get_debug = _Abstract.get_debug
    get_exception_handler = _Abstract.get_exception_handler
    get_task_factory = _Abstract.get_task_factory
    getaddrinfo = _Abstract.getaddrinfo
    getnameinfo = _Abstract.getnameinfo
    is_closed = _Abstract.is_closed
    is_running = _Abstract.is_running
    remove_reader = _Abstract.remove_reader
    remove_signal_handler = _Abstract.remove_signal_handler
    remove_writer = _Abstract.remove_writer
    run_forever = _Abstract.run_forever
    run_in_executor = _Abstract.run_in_executor
    run_until_complete = _Abstract.run_until_complete
    sendfile = _Abstract.sendfile
    set_debug = _Abstract.set_debug
    set_default_executor = _Abstract.set_default_executor
    set_exception_handler = _Abstract.set_exception_handler
    set_task_factory = _Abstract.set_task_factory
    shutdown_asyncgens = _Abstract.shutdown_asyncgens
    shutdown_default_executor = _Abstract.shutdown_default_executor
    sock_accept = _Abstract.sock_accept
    sock_connect = _Abstract.sock_connect
    sock_recv = _Abstract.sock_recv
    sock_recv_into = _Abstract.sock_recv_into
    sock_recvfrom = _Abstract.sock_recvfrom
    sock_recvfrom_into = _Abstract.sock_recvfrom_into
    sock_sendall = _Abstract.sock_sendall
    sock_sendfile = _Abstract.sock_sendfile
    sock_sendto = _Abstract.sock_sendto
    start_tls = _Abstract.start_tls
    stop = _Abstract.stop
    subprocess_exec = _Abstract.subprocess_exec
    subprocess_shell = _Abstract.subprocess_shell
    time = _Abstract.time

class EventLoopPolicy(_DefaultPolicy):
    """An event loop policy whose new loops are casyncio loops."""

    def new_event_loop(self) -> Loop: ...

def new_event_loop() -> Loop: ...
def install() -> None: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T: ...
