"""The once-per-connection parts of networking, taken from stdlib.

casyncio's C code moves the bytes: the stream transport, the accept loop,
the fd watchers. What runs once per connection or per call -- resolving
addresses and trying them in order (happy eyeballs), building
``asyncio.Server`` objects, Unix socket paths, TLS through ``sslproto``,
``sendfile`` and the ``sock_*`` coroutines -- is the running interpreter's
own asyncio code, bound to the casyncio loop. It therefore behaves, errors
included, exactly as that Python version's loop does. These functions call
only public loop methods and the private ones the C loop provides
(``_make_socket_transport``, ``_start_serving``, ``_stop_serving``,
``_add_reader`` and friends).
"""
from asyncio import base_events, selector_events, unix_events

_BASE = base_events.BaseEventLoop
_SELECTOR = selector_events.BaseSelectorEventLoop
_UNIX = unix_events._UnixSelectorEventLoop

_BORROWED = {
    _BASE: (
        "getaddrinfo", "getnameinfo", "_getaddrinfo_debug",
        "_ensure_resolved", "create_connection", "_connect_sock",
        "_create_connection_transport", "create_server",
        "_create_server_getaddrinfo", "connect_accepted_socket",
        "start_tls", "sendfile", "_sendfile_fallback",
        "_sock_sendfile_fallback", "_check_sendfile_params", "sock_sendfile",
    ),
    _SELECTOR: (
        "_accept_connection2",
        "sock_recv", "_sock_read_done", "_sock_recv",
        "sock_recv_into", "_sock_recv_into",
        "sock_recvfrom", "_sock_recvfrom",
        "sock_recvfrom_into", "_sock_recvfrom_into",
        "sock_sendall", "_sock_sendall", "sock_sendto", "_sock_sendto",
        "sock_connect", "_sock_connect", "_sock_write_done",
        "_sock_connect_cb", "sock_accept", "_sock_accept",
    ),
    _UNIX: (
        "create_unix_connection", "create_unix_server",
        "_sock_sendfile_native", "_sock_sendfile_native_impl",
        "_sock_sendfile_update_filepos", "_sock_add_cancellation_callback",
    ),
}

StdlibNetworking = type(
    "StdlibNetworking", (),
    {"__doc__": "Mixin: the stdlib networking methods named above.",
     "__module__": __name__,
     **{name: getattr(cls, name)
        for cls, names in _BORROWED.items() for name in names}})
