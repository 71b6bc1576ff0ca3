/* The loop's transport factories and accept loop: the private methods
 * that the connection set-up code (create_connection, create_server, the
 * Server) calls on the loop, and start_tls, which puts casyncio's
 * SSLProtocol (tls_protocol.c) on an open transport.
 *
 * The accept loop follows selector_events._accept_connection: up to
 * backlog accepts per wake-up, and running out of fds pauses accepting
 * for a second instead of spinning. A plain connection gets its protocol
 * and transport right here rather than in a Task per connection. */
#include "casyncio.h"
#include "transport_socket.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCEPT_RETRY_DELAY 1.0   /* seconds; asyncio.constants */

/* A transport's context argument (borrowed): None becomes NULL, and
 * anything but a Context raises TypeError, as it would once a callback
 * ran in it. */
static int
check_transport_context(PyObject **context)
{
    if (*context == Py_None) {
        *context = NULL;
    }
    if (*context != NULL && !PyContext_CheckExact(*context)) {
        PyErr_SetString(PyExc_TypeError,
                        "context must be a contextvars.Context or None");
        return -1;
    }
    return 0;
}

/* _make_socket_transport(sock, protocol, waiter=None, *, extra=None,
 *                        server=None, context=None); context from 3.15 */
static PyObject *
loop_make_socket_transport(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sock", "protocol", "waiter", "extra", "server",
#if CIO_TRANSPORT_CONTEXT
                             "context",
#endif
                             NULL};
    PyObject *sock, *protocol, *waiter = Py_None, *extra = Py_None;
    PyObject *server = Py_None, *context = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
#if CIO_TRANSPORT_CONTEXT
                                     "OO|O$OOO:_make_socket_transport",
#else
                                     "OO|O$OO:_make_socket_transport",
#endif
                                     kwlist, &sock, &protocol, &waiter,
                                     &extra, &server, &context) ||
        check_transport_context(&context) < 0) {
        return NULL;
    }
    return cio_socket_transport_new(self, sock, protocol, waiter, extra,
                                    server, context);
}

/* Gives a new SSLProtocol its read buffer and stdlib's max_size (see
 * tls_protocol.c), on a tested Python (CIO_PYTHON_TESTED). Every TLS
 * connection of a loop shares one buffer: SSLProtocol.buffer_updated
 * copies what a read put there into its MemoryBIO before anything else
 * runs, and reads on a loop never nest, so the buffer is free again
 * whenever the next read asks for it. It is uninitialized, as only the
 * bytes a read fills are ever used. */
static int
give_ssl_read_buffer(LoopObject *loop, PyObject *ssl_protocol)
{
    PyObject *max_size = loop->state->ssl_max_size;

    if (!CIO_PYTHON_TESTED) {
        return 0;  /* stdlib's SSLProtocol keeps its own buffer */
    }
    if (loop->ssl_read_view == NULL) {
        Py_ssize_t size = PyLong_AsSsize_t(max_size);
        PyObject *buffer = size < 0 && PyErr_Occurred()
                               ? NULL
                               : PyByteArray_FromStringAndSize(NULL, size);
        if (buffer == NULL) {
            return -1;
        }
        loop->ssl_read_view = PyMemoryView_FromObject(buffer);
        Py_DECREF(buffer);
        if (loop->ssl_read_view == NULL) {
            return -1;
        }
    }
    if (PyObject_SetAttrString(ssl_protocol, "max_size", max_size) < 0 ||
        PyObject_SetAttrString(
            ssl_protocol, "_ssl_buffer",
            PyMemoryView_GET_BUFFER(loop->ssl_read_view)->obj) < 0 ||
        PyObject_SetAttrString(ssl_protocol, "_ssl_buffer_view",
                               loop->ssl_read_view) < 0) {
        return -1;
    }
    return 0;
}

/* _make_ssl_transport(rawsock, protocol, sslcontext, waiter=None, *,
 *     server_side=False, server_hostname=None, extra=None, server=None,
 *     ssl_handshake_timeout=..., ssl_shutdown_timeout=..., context=None)
 * TLS is stdlib's sslproto.SSLProtocol layered on our stream transport;
 * the keywords go to SSLProtocol unchanged, so its defaults apply. From
 * 3.15 on, context is the socket transport's, as in stdlib. */
static PyObject *
loop_make_ssl_transport(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *rawsock, *protocol, *sslcontext, *waiter = Py_None;
    PyObject *extra = NULL, *server = NULL, *context = NULL;
    PyObject *transport_context = NULL, *ssl_kwargs = NULL;
    PyObject *ssl_protocol = NULL, *transport = NULL, *result = NULL;
    PyObject *sslproto_type;

    if (!PyArg_ParseTuple(args, "OOO|O:_make_ssl_transport", &rawsock,
                          &protocol, &sslcontext, &waiter)) {
        return NULL;
    }
    ssl_kwargs = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
    if (ssl_kwargs == NULL) {
        return NULL;
    }
    /* extra and server (and from 3.15 on, context) belong to the socket
     * transport. */
    if (cio_dict_pop(ssl_kwargs, "extra", &extra) < 0 ||
        cio_dict_pop(ssl_kwargs, "server", &server) < 0) {
        goto done;
    }
#if CIO_TRANSPORT_CONTEXT
    if (cio_dict_pop(ssl_kwargs, "context", &context) < 0) {
        goto done;
    }
    transport_context = context;
    if (check_transport_context(&transport_context) < 0) {
        goto done;
    }
#endif
    if (PyDict_GetItemString(ssl_kwargs, "waiter") == NULL &&
        PyDict_SetItemString(ssl_kwargs, "waiter", waiter) < 0) {
        goto done;
    }
    sslproto_type = self->state->ssl_protocol_type;
    /* The app protocol sits behind the SSLProtocol: streams over TLS are
     * adopted here (see streams.c). */
    if (cio_streams_adopt(self->state, protocol) < 0) {
        goto done;
    }
    {
        PyObject *pos = PyTuple_Pack(3, (PyObject *)self, protocol,
                                     sslcontext);
        if (pos == NULL) {
            goto done;
        }
        ssl_protocol = PyObject_Call(sslproto_type, pos, ssl_kwargs);
        Py_DECREF(pos);
    }
    if (ssl_protocol == NULL ||
        give_ssl_read_buffer(self, ssl_protocol) < 0) {
        goto done;
    }
    transport = cio_socket_transport_new(self, rawsock, ssl_protocol,
                                         Py_None, extra ? extra : Py_None,
                                         server ? server : Py_None,
                                         transport_context);
    if (transport != NULL) {
        result = PyObject_GetAttrString(ssl_protocol, "_app_transport");
    }
done:
    Py_XDECREF(extra);
    Py_XDECREF(server);
    Py_XDECREF(context);
    Py_XDECREF(transport);
    Py_XDECREF(ssl_protocol);
    Py_DECREF(ssl_kwargs);
    return result;
}

/* The arguments _start_serving and _accept_connection pass along; 3.15
 * adds the server's context. */
enum {
    SERVE_FACTORY, SERVE_SOCK, SERVE_SSLCONTEXT, SERVE_SERVER, SERVE_BACKLOG,
    SERVE_HANDSHAKE_TIMEOUT, SERVE_SHUTDOWN_TIMEOUT,
#if CIO_TRANSPORT_CONTEXT
    SERVE_CONTEXT,
#endif
    SERVE_NARGS
};

/* Positional arguments, and context= where 3.15's Server passes it so. */
static int
parse_serve_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                 const char *name, PyObject *out[SERVE_NARGS])
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs < 2 || nargs > SERVE_NARGS) {
        PyErr_Format(PyExc_TypeError, "%s() takes from 2 to %d arguments "
                     "(%zd given)", name, SERVE_NARGS, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < SERVE_NARGS; i++) {
        out[i] = i < nargs ? args[i] : Py_None;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
#if CIO_TRANSPORT_CONTEXT
        if (PyUnicode_CompareWithASCIIString(key, "context") == 0 &&
            nargs <= SERVE_CONTEXT) {
            out[SERVE_CONTEXT] = args[nargs + i];
            continue;
        }
#endif
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword "
                     "argument '%U'", name, key);
        return -1;
    }
    return 0;
}

/* stdlib passes all seven arguments (eight from 3.15 on); a missing
 * backlog means 100. */
static PyObject *
loop_start_serving(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    PyObject *a[SERVE_NARGS], *accept;
    int fd, rc;

    if (parse_serve_args(args, nargs, kwnames, "_start_serving", a) < 0) {
        return NULL;
    }
    fd = PyObject_AsFileDescriptor(a[SERVE_SOCK]);
    if (fd < 0) {
        return NULL;
    }
    accept = PyObject_GetAttrString((PyObject *)self, "_accept_connection");
    if (accept == NULL) {
        return NULL;
    }
    rc = cio_loop_add_watcher(self, fd, CIO_POLL_READ, accept, a,
                              SERVE_NARGS, NULL, NULL);
    Py_DECREF(accept);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Removes a closed Unix server's socket file, unless another socket has
 * replaced it since (its inode changed). As unix_events._stop_serving. */
static int
cleanup_unix_path(LoopObject *self, PyObject *path, PyObject *inode)
{
    PyObject *encoded, *res;
    struct stat st;
    int err = 0;

    if (!PyUnicode_Check(path) || !PyUnicode_FSConverter(path, &encoded)) {
        PyErr_Clear();
        return 0;
    }
    if (stat(PyBytes_AS_STRING(encoded), &st) < 0) {
        err = errno;
    }
    else if ((unsigned long long)st.st_ino ==
                 PyLong_AsUnsignedLongLong(inode) &&
             unlink(PyBytes_AS_STRING(encoded)) < 0) {
        err = errno;
    }
    Py_DECREF(encoded);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (err == 0 || err == ENOENT) {
        return 0;
    }
    errno = err;
    PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    {
        PyObject *exc = cio_fetch_exception();
        res = PyObject_CallMethod(
            self->state->logger, "error", "sOO",
            "Unable to clean up listening UNIX socket %r: %r", path, exc);
        Py_DECREF(exc);
    }
    Py_XDECREF(res);
    return res ? 0 : -1;
}

static PyObject *
loop_stop_serving(LoopObject *self, PyObject *sock)
{
    int fd = PyObject_AsFileDescriptor(sock), rc = 0;
    PyObject *res, *path = NULL, *inode = NULL;

    if (fd < 0) {
        return NULL;
    }
    inode = PyDict_GetItemWithError(self->unix_server_sockets, sock);
    if (inode != NULL) {
        Py_INCREF(inode);
        path = PyObject_CallMethod(sock, "getsockname", NULL);
        if (path == NULL ||
            PyDict_DelItem(self->unix_server_sockets, sock) < 0) {
            goto done;
        }
    }
    else if (PyErr_Occurred()) {
        return NULL;
    }
    if (cio_loop_remove_watcher(self, fd, CIO_POLL_READ) < 0) {
        goto done;
    }
    res = PyObject_CallMethod(sock, "close", NULL);
    if (res == NULL) {
        goto done;
    }
    Py_DECREF(res);
    rc = path ? cleanup_unix_path(self, path, inode) : 0;
    Py_XDECREF(path);
    Py_XDECREF(inode);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
done:
    Py_XDECREF(path);
    Py_XDECREF(inode);
    return NULL;
}

/* Out of fds or memory: report, stop accepting, and try again later. */
static int
accept_pause(LoopObject *self, PyObject *exc, PyObject *const *a, int fd)
{
    PyObject *trsock, *context, *retry, *timer;
    int rc;

    trsock = cio_transport_socket_new(self->state, a[SERVE_SOCK]);
    if (trsock == NULL) {
        return -1;
    }
    context = Py_BuildValue("{sssOsO}", "message",
                            "socket.accept() out of system resource",
                            "exception", exc, "socket", trsock);
    Py_DECREF(trsock);
    if (context == NULL) {
        return -1;
    }
    rc = cio_loop_report(self, context);
    Py_DECREF(context);
    if (rc < 0 || cio_loop_remove_watcher(self, fd, CIO_POLL_READ) < 0) {
        return -1;
    }
    retry = PyObject_GetAttrString((PyObject *)self, "_start_serving");
    if (retry == NULL) {
        return -1;
    }
#if CIO_TRANSPORT_CONTEXT
    timer = PyObject_CallMethod(
        (PyObject *)self, "call_later", "dOOOOOOOOO", ACCEPT_RETRY_DELAY,
        retry, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
#else
    timer = PyObject_CallMethod(
        (PyObject *)self, "call_later", "dOOOOOOOO", ACCEPT_RETRY_DELAY,
        retry, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
#endif
    Py_DECREF(retry);
    Py_XDECREF(timer);
    return timer ? 0 : -1;
}

/* stdlib's _accept_connection2 reports a failed connection in debug mode
 * only. */
static int
report_accept_error(LoopObject *self, PyObject *exc, PyObject *protocol,
                    PyObject *transport)
{
    PyObject *context;
    int rc;

    if (!self->debug) {
        return 0;
    }
    context = Py_BuildValue(
        "{sssO}", "message",
        "Error on transport creation for incoming connection", "exception",
        exc);
    rc = context == NULL ||
                 (protocol != NULL &&
                  PyDict_SetItemString(context, "protocol", protocol) < 0) ||
                 (transport != NULL &&
                  PyDict_SetItemString(context, "transport", transport) < 0)
             ? -1
             : cio_loop_report(self, context);
    Py_XDECREF(context);
    return rc;
}

/* The protocol factory or the transport failed: close the socket nobody
 * will own (stdlib leaves it to the garbage collector) and report. */
static int
accept_failed(LoopObject *self, PyObject *conn, PyObject *protocol)
{
    PyObject *exc = cio_fetch_exception(), *res;
    int rc;

    if (cio_is_exit_exception(exc)) {
        cio_restore_exception(exc);
        return -1;
    }
    res = PyObject_CallMethod(conn, "close", NULL);
    Py_XDECREF(res);
    PyErr_Clear();
    rc = report_accept_error(self, exc, protocol, NULL);
    Py_DECREF(exc);
    return rc;
}

/* Gives an accepted socket its protocol and transport. */
static int
accept_plain(LoopObject *self, PyObject *factory, PyObject *conn,
             PyObject *extra, PyObject *server, PyObject *context)
{
    PyObject *protocol, *transport;
    int rc = 0;

    protocol = PyObject_CallNoArgs(factory);
    transport = protocol ? cio_socket_transport_new(self, conn, protocol,
                                                    Py_None, extra, server,
                                                    context)
                         : NULL;
    if (transport == NULL) {
        rc = accept_failed(self, conn, protocol);
    }
    Py_XDECREF(transport);
    Py_XDECREF(protocol);
    return rc;
}

/* A TLS connection's waiter is done: if the handshake failed (or was
 * cancelled), close the transport and report, as _accept_connection2
 * does after `await waiter`. bound is (loop, protocol, transport). */
static PyObject *
tls_accept_done(PyObject *bound, PyObject *waiter)
{
    LoopObject *loop = (LoopObject *)PyTuple_GET_ITEM(bound, 0);
    PyObject *transport = PyTuple_GET_ITEM(bound, 2);
    PyObject *exc = PyObject_CallMethod(waiter, "exception", NULL), *res;
    int rc;

    if (exc == NULL) {
        exc = cio_fetch_exception();  /* CancelledError */
    }
    if (exc == Py_None) {
        Py_DECREF(exc);
        Py_RETURN_NONE;
    }
    res = PyObject_CallMethod(transport, "close", NULL);
    rc = res ? report_accept_error(loop, exc, PyTuple_GET_ITEM(bound, 1),
                                   transport)
             : -1;
    Py_XDECREF(res);
    Py_DECREF(exc);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef tls_accept_done_def = {
    "_tls_accept_done", (PyCFunction)tls_accept_done, METH_O, NULL};

/* stdlib's _accept_connection2 for a TLS connection, without its Task:
 * the protocol, the server-side TLS transport and its waiter, whose done
 * callback takes over the error handling. */
static int
accept_tls(LoopObject *self, PyObject *const *a, PyObject *conn,
           PyObject *extra, PyObject *context)
{
    PyObject *protocol, *waiter = NULL, *args = NULL, *kwargs = NULL;
    PyObject *transport = NULL, *bound, *done, *res;
    int rc = 0;

    protocol = PyObject_CallNoArgs(a[SERVE_FACTORY]);
    if (protocol != NULL) {
        waiter = cio_loop_create_future(self);
    }
    if (waiter != NULL) {
        args = PyTuple_Pack(4, conn, protocol, a[SERVE_SSLCONTEXT], waiter);
        kwargs = Py_BuildValue(
            "{sOsOsOsOsO}", "server_side", Py_True, "extra", extra, "server",
            a[SERVE_SERVER], "ssl_handshake_timeout",
            a[SERVE_HANDSHAKE_TIMEOUT], "ssl_shutdown_timeout",
            a[SERVE_SHUTDOWN_TIMEOUT]);
        if (kwargs != NULL && context != NULL &&
            PyDict_SetItemString(kwargs, "context", context) < 0) {
            Py_CLEAR(kwargs);
        }
    }
    if (args != NULL && kwargs != NULL) {
        transport = loop_make_ssl_transport(self, args, kwargs);
    }
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    if (transport == NULL) {
        rc = accept_failed(self, conn, protocol);
        goto done;
    }
    bound = PyTuple_Pack(3, (PyObject *)self, protocol, transport);
    done = bound ? PyCFunction_New(&tls_accept_done_def, bound) : NULL;
    Py_XDECREF(bound);
    res = done ? PyObject_CallMethod(waiter, "add_done_callback", "(O)", done)
               : NULL;
    Py_XDECREF(done);
    Py_XDECREF(res);
    rc = res ? 0 : -1;
done:
    Py_XDECREF(protocol);
    Py_XDECREF(waiter);
    Py_XDECREF(transport);
    return rc;
}

/* Makes an accepted connection's protocol and transport in a context of
 * their own, as stdlib does in the Task it makes them in: a copy of the
 * current context, so that what the protocol factory sets stays with its
 * connection. From 3.15 on that is a copy of the server's context
 * instead, and the transport keeps it for all its callbacks. */
static int
accept_in_context(LoopObject *self, PyObject *const *a, PyObject *conn,
                  PyObject *extra, int is_tls)
{
    PyObject *server_context = NULL, *entered, *exc;
    int rc;

#if CIO_TRANSPORT_CONTEXT
    if (a[SERVE_CONTEXT] != Py_None) {
        server_context = a[SERVE_CONTEXT];
    }
#endif
    entered = server_context ? PyContext_Copy(server_context)
                             : PyContext_CopyCurrent();
    if (entered == NULL || PyContext_Enter(entered) < 0) {
        Py_XDECREF(entered);
        return -1;
    }
    {
        PyObject *transport_context = server_context ? entered : NULL;
        rc = is_tls ? accept_tls(self, a, conn, extra, transport_context)
                    : accept_plain(self, a[SERVE_FACTORY], conn, extra,
                                   a[SERVE_SERVER], transport_context);
    }
    exc = cio_fetch_exception();
    if (PyContext_Exit(entered) < 0) {
        Py_XDECREF(exc);
        rc = -1;
    }
    else {
        cio_restore_exception(exc);
    }
    Py_DECREF(entered);
    return rc;
}

/* Accepts one connection. Returns 1 when a connection was taken, 0 when
 * the backlog is empty or accepting paused, -1 with an exception. */
static int
accept_one(LoopObject *self, PyObject *const *a, int fd,
           const cio_acceptor_t *acceptor)
{
    PyObject *pair, *conn, *addr, *extra, *res;
    int rc, is_tls;

    pair = cio_acceptor_accept(self->state, acceptor);
    if (pair == NULL) {
        PyObject *exc;
        if (!PyErr_Occurred() ||
            PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError) ||
            PyErr_ExceptionMatches(PyExc_ConnectionAbortedError)) {
            PyErr_Clear();
            return 0;  /* the backlog is empty */
        }
        if (!PyErr_ExceptionMatches(PyExc_OSError)) {
            return -1;
        }
        exc = cio_fetch_exception();
        {
            int err = ((PyOSErrorObject *)exc)->myerrno
                          ? (int)PyLong_AsLong(((PyOSErrorObject *)exc)->myerrno)
                          : 0;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
                err == ENOMEM) {
                rc = accept_pause(self, exc, a, fd);
                Py_DECREF(exc);
                return rc < 0 ? -1 : 0;
            }
        }
        /* Anything else goes to the exception handler via the Handle. */
        cio_restore_exception(exc);
        return -1;
    }
    conn = PyTuple_GET_ITEM(pair, 0);
    addr = PyTuple_GET_ITEM(pair, 1);
    if (self->debug) {
        res = PyObject_CallMethod(self->state->logger, "debug", "sOOO",
                                  "%r got a new connection from %r: %r",
                                  a[SERVE_SERVER], addr, conn);
        if (res == NULL) {
            Py_DECREF(pair);
            return -1;
        }
        Py_DECREF(res);
    }
    extra = PyDict_New();
    if (extra != NULL &&
        PyDict_SetItem(extra, self->state->str_peername, addr) < 0) {
        Py_CLEAR(extra);
    }
    is_tls = PyObject_IsTrue(a[SERVE_SSLCONTEXT]);
    if (extra == NULL || is_tls < 0) {
        rc = -1;
    }
    else {
        rc = accept_in_context(self, a, conn, extra, is_tls);
    }
    Py_XDECREF(extra);
    Py_DECREF(pair);
    return rc < 0 ? -1 : 1;
}

static PyObject *
loop_accept_connection(LoopObject *self, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[SERVE_NARGS];
    cio_acceptor_t acceptor;
    long backlog;
    int fd;

    if (parse_serve_args(args, nargs, kwnames, "_accept_connection",
                         a) < 0) {
        return NULL;
    }
    backlog = a[SERVE_BACKLOG] == Py_None ? 100
                                          : PyLong_AsLong(a[SERVE_BACKLOG]);
    if (backlog == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (cio_acceptor_init(self->state, a[SERVE_SOCK], &acceptor) < 0) {
        return NULL;
    }
    /* cio_acceptor_init has it for a socket.socket, else -1 */
    fd = acceptor.fd >= 0 ? acceptor.fd
                          : cio_socket_fd(self->state, a[SERVE_SOCK]);
    if (fd < 0) {
        return NULL;
    }
    for (long i = 0; i < backlog; i++) {
        int rc = accept_one(self, a, fd, &acceptor);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            break;
        }
    }
    Py_RETURN_NONE;
}

/* _make_datagram_transport(sock, protocol, address=None, waiter=None,
 *                          extra=None) */
static PyObject *
loop_make_datagram_transport(LoopObject *self, PyObject *args,
                             PyObject *kwargs)
{
    static char *kwlist[] = {"sock", "protocol", "address", "waiter",
                             "extra", NULL};
    PyObject *sock, *protocol, *address = Py_None, *waiter = Py_None;
    PyObject *extra = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "OO|OOO:_make_datagram_transport",
                                     kwlist, &sock, &protocol, &address,
                                     &waiter, &extra)) {
        return NULL;
    }
    return cio_datagram_transport_new(self, sock, protocol, address, waiter,
                                      extra);
}

/* ---- start_tls ---------------------------------------------------------- */

/* vars of a start_tls coroutine (0 and 1 as cio_loop_call_coro_new) */
enum {
    TLS_ARG_TRANSPORT,
    TLS_ARG_PROTOCOL,
    TLS_ARG_SSLCONTEXT,
    TLS_ARG_SERVER_SIDE,
    TLS_ARG_SERVER_HOSTNAME,
    TLS_ARG_HANDSHAKE_TIMEOUT,
    TLS_ARG_SHUTDOWN_TIMEOUT,
    TLS_ARG_COUNT,
};
enum { TLS_VAR_SSL_PROTOCOL = 2, TLS_VAR_CONMADE, TLS_VAR_RESUME };

#define TLS_LOOP(coro) ((LoopObject *)(coro)->vars[0])
#define TLS_ARG(coro, i) PyTuple_GET_ITEM((coro)->vars[1], (i))

/* start_tls's checks, in stdlib's order. */
static int
check_start_tls(CioStepCoroObject *coro)
{
    PyObject *sslcontext = TLS_ARG(coro, TLS_ARG_SSLCONTEXT);
    PyObject *transport = TLS_ARG(coro, TLS_ARG_TRANSPORT);
    PyObject *ssl, *context_type, *compatible;
    int is_context, ok;

    ssl = TLS_LOOP(coro)->state->ssl_socket_type
              ? PyImport_ImportModule("ssl") : NULL;
    if (ssl == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Python ssl module is not available");
        }
        return -1;
    }
    context_type = PyObject_GetAttrString(ssl, "SSLContext");
    Py_DECREF(ssl);
    is_context = context_type ? PyObject_IsInstance(sslcontext, context_type)
                              : -1;
    Py_XDECREF(context_type);
    if (is_context <= 0) {
        if (is_context == 0) {
            PyErr_Format(PyExc_TypeError, "sslcontext is expected to be an "
                         "instance of ssl.SSLContext, got %R", sslcontext);
        }
        return -1;
    }
    /* getattr(transport, '_start_tls_compatible', False) */
    compatible = PyObject_GetAttrString(transport, "_start_tls_compatible");
    if (compatible == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
    }
    ok = compatible ? PyObject_IsTrue(compatible) : 0;
    Py_XDECREF(compatible);
    if (ok == 0) {
        PyErr_Format(PyExc_TypeError,
                     "transport %R is not supported by start_tls()",
                     transport);
    }
    return ok > 0 ? 0 : -1;
}

/* loop.call_soon(callback, *args), the Handle in *handle. */
static int
schedule(LoopObject *loop, PyObject **handle, PyObject *callback,
         PyObject *arg)
{
    *handle = PyObject_CallMethod((PyObject *)loop, "call_soon",
                                  arg ? "OO" : "O", callback, arg);
    return *handle ? 0 : -1;
}

#if PY_VERSION_HEX >= 0x030E0000
/* 3.14 (gh-142352): a server-side StreamReaderProtocol's reader may already
 * hold the client's first TLS bytes (they came with the STARTTLS command);
 * they move to the SSLProtocol's incoming BIO. */
static int
move_stream_reader_buffer(PyObject *protocol, PyObject *ssl_protocol)
{
    PyObject *cls, *reader = NULL, *buffer = NULL, *incoming = NULL, *r;
    int rc = -1, is_stream;

    cls = cio_import_attr("asyncio.streams", "StreamReaderProtocol");
    if (cls == NULL) {
        return -1;
    }
    is_stream = PyObject_IsInstance(protocol, cls);
    Py_DECREF(cls);
    if (is_stream <= 0) {
        return is_stream;
    }
    if (PyObject_GetOptionalAttrString(protocol, "_stream_reader",
                                       &reader) < 0) {
        return -1;
    }
    if (reader == NULL || reader == Py_None) {
        rc = 0;
        goto done;
    }
    buffer = PyObject_GetAttrString(reader, "_buffer");
    if (buffer == NULL || (rc = PyObject_IsTrue(buffer)) <= 0) {
        goto done;
    }
    rc = -1;
    incoming = PyObject_GetAttrString(ssl_protocol, "_incoming");
    r = incoming ? PyObject_CallMethod(incoming, "write", "(O)", buffer)
                 : NULL;
    Py_XDECREF(r);
    r = r ? PyObject_CallMethod(buffer, "clear", NULL) : NULL;
    Py_XDECREF(r);
    rc = r ? 0 : -1;
done:
    Py_XDECREF(reader);
    Py_XDECREF(buffer);
    Py_XDECREF(incoming);
    return rc;
}
#endif

/* Puts casyncio's SSLProtocol between transport and protocol, and waits
 * for the handshake: stdlib's steps, with the loop's shared TLS read
 * buffer. */
static cio_step_t
start_tls_begin(CioStepCoroObject *coro, PyObject **out)
{
    LoopObject *loop = TLS_LOOP(coro);
    PyObject *transport = TLS_ARG(coro, TLS_ARG_TRANSPORT);
    PyObject *waiter, *ssl_protocol, *res, *method;
    PyObject *args[7], *kwargs;
    int rc;

    if (check_start_tls(coro) < 0) {
        return CIO_STEP_ERROR;
    }
    waiter = cio_loop_create_future(loop);
    if (waiter == NULL) {
        return CIO_STEP_ERROR;
    }
    args[0] = (PyObject *)loop;
    args[1] = TLS_ARG(coro, TLS_ARG_PROTOCOL);
    args[2] = TLS_ARG(coro, TLS_ARG_SSLCONTEXT);
    args[3] = waiter;
    args[4] = TLS_ARG(coro, TLS_ARG_SERVER_SIDE);
    args[5] = TLS_ARG(coro, TLS_ARG_SERVER_HOSTNAME);
    kwargs = Py_BuildValue("{sOsOsO}", "ssl_handshake_timeout",
                           TLS_ARG(coro, TLS_ARG_HANDSHAKE_TIMEOUT),
                           "ssl_shutdown_timeout",
                           TLS_ARG(coro, TLS_ARG_SHUTDOWN_TIMEOUT),
                           "call_connection_made", Py_False);
    ssl_protocol = kwargs ? PyObject_VectorcallDict(
                                loop->state->ssl_protocol_type, args, 6,
                                kwargs)
                          : NULL;
    Py_XDECREF(kwargs);
    coro->vars[TLS_VAR_SSL_PROTOCOL] = ssl_protocol;
    if (ssl_protocol == NULL || give_ssl_read_buffer(loop, ssl_protocol) < 0) {
        Py_DECREF(waiter);
        return CIO_STEP_ERROR;
    }
    /* Paused first, so that no data reaches the SSLProtocol before its
     * connection_made(). */
    res = PyObject_CallMethod(transport, "pause_reading", NULL);
    Py_XDECREF(res);
#if PY_VERSION_HEX >= 0x030E0000
    if (res != NULL) {
        rc = PyObject_IsTrue(TLS_ARG(coro, TLS_ARG_SERVER_SIDE));
        if (rc < 0 || (rc > 0 && move_stream_reader_buffer(
                                     TLS_ARG(coro, TLS_ARG_PROTOCOL),
                                     ssl_protocol) < 0)) {
            res = NULL;
        }
    }
#endif
    if (res != NULL) {
        res = PyObject_CallMethod(transport, "set_protocol", "(O)",
                                  ssl_protocol);
        Py_XDECREF(res);
    }
    method = res ? PyObject_GetAttrString(ssl_protocol, "connection_made")
                 : NULL;
    rc = method ? schedule(loop, &coro->vars[TLS_VAR_CONMADE], method,
                           transport)
                : -1;
    Py_XDECREF(method);
    method = rc == 0 ? PyObject_GetAttrString(transport, "resume_reading")
                     : NULL;
    rc = method ? schedule(loop, &coro->vars[TLS_VAR_RESUME], method, NULL)
                : -1;
    Py_XDECREF(method);
    if (rc < 0) {
        Py_DECREF(waiter);
        return CIO_STEP_ERROR;
    }
    coro->state = 1;
    *out = waiter;
    return CIO_STEP_AWAIT;
}

/* The handshake failed or the wait was interrupted: the transport is
 * closed, the scheduled calls cancelled, and the error goes on. */
static cio_step_t
start_tls_failed(CioStepCoroObject *coro)
{
    cio_call_while_raising(TLS_ARG(coro, TLS_ARG_TRANSPORT), "close");
    cio_call_while_raising(coro->vars[TLS_VAR_CONMADE], "cancel");
    cio_call_while_raising(coro->vars[TLS_VAR_RESUME], "cancel");
    return CIO_STEP_ERROR;
}

static cio_step_t
start_tls_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    if (coro->state == 0) {
        return start_tls_begin(coro, out);
    }
    if (value == NULL) {
        return start_tls_failed(coro);
    }
    *out = PyObject_GetAttrString(coro->vars[TLS_VAR_SSL_PROTOCOL],
                                  "_app_transport");
    return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
}

/* start_tls(transport, protocol, sslcontext, *, server_side=False,
 *     server_hostname=None, ssl_handshake_timeout=None,
 *     ssl_shutdown_timeout=None) */
static PyObject *
loop_start_tls(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "transport", "protocol", "sslcontext", "server_side",
        "server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout",
        NULL};
    PyObject *a[TLS_ARG_COUNT] = {NULL, NULL, NULL, Py_False, Py_None,
                                  Py_None, Py_None};

    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OOO|$OOOO:start_tls", kwlist,
            &a[TLS_ARG_TRANSPORT], &a[TLS_ARG_PROTOCOL],
            &a[TLS_ARG_SSLCONTEXT], &a[TLS_ARG_SERVER_SIDE],
            &a[TLS_ARG_SERVER_HOSTNAME], &a[TLS_ARG_HANDSHAKE_TIMEOUT],
            &a[TLS_ARG_SHUTDOWN_TIMEOUT])) {
        return NULL;
    }
    return (PyObject *)cio_loop_call_coro_new(self, "Loop.start_tls",
                                              start_tls_step, a,
                                              TLS_ARG_COUNT, NULL);
}

PyMethodDef cio_loop_server_methods[] = {
    {"_make_datagram_transport",
     (PyCFunction)(void (*)(void))loop_make_datagram_transport,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_make_socket_transport",
     (PyCFunction)(void (*)(void))loop_make_socket_transport,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_make_ssl_transport",
     (PyCFunction)(void (*)(void))loop_make_ssl_transport,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_start_serving", (PyCFunction)(void (*)(void))loop_start_serving,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_stop_serving", (PyCFunction)loop_stop_serving, METH_O, NULL},
    {"start_tls", (PyCFunction)(void (*)(void))loop_start_tls,
     METH_VARARGS | METH_KEYWORDS,
     "start_tls($self, transport, protocol, sslcontext, *, "
     "server_side=False, server_hostname=None, ssl_handshake_timeout=None, "
     "ssl_shutdown_timeout=None)\n--\n\n"
     "Coroutine: upgrade transport to TLS; return the new transport."},
    {"_accept_connection",
     (PyCFunction)(void (*)(void))loop_accept_connection,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};
