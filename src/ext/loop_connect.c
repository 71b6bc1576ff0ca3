/* The loop's create_connection, create_unix_connection,
 * connect_accepted_socket and _create_connection_transport: base_events'
 * and unix_events' coroutines of those names, written in C (a ConnectCall
 * is the coroutine each returns).
 *
 * create_connection resolves host and port -- a numeric address at once,
 * a name through the loop's _ensure_resolved, as stdlib -- and tries the
 * addresses in order, as _connect_sock does: a socket, bound to one of
 * local_addr's addresses of its family if asked, connected by the loop's
 * sock_connect. The first that connects gets its protocol and transport
 * (_create_connection_transport: _make_socket_transport or, for ssl=,
 * _make_ssl_transport), and the call returns once the transport's waiter
 * is done. When none connects, the errors are raised as stdlib combines
 * them. The loop's methods are looked up by name, so a subclass's or a
 * patch's are used, as in stdlib.
 *
 * create_unix_connection makes one attempt, on a Unix socket connected to
 * path, and lets its error through. connect_accepted_socket checks its
 * arguments and makes the server side's transport.
 *
 * With interleave the addresses are reordered by family first, as
 * _interleave_addrinfos does. With happy_eyeballs_delay the attempts race
 * (staggered.c): each is a ConnectCall of its own (the _connect_sock
 * kind) in a Task, started delay seconds after the one before or as soon
 * as that one fails; the first to connect wins and the others are
 * cancelled. */
#include "casyncio.h"
#include "cio_socket.h"

#include <sys/socket.h>

/* What the call awaits while suspended. */
typedef enum {
    STEP_RESOLVING,       /* _ensure_resolved((host, port)) */
    STEP_RESOLVING_LOCAL, /* _ensure_resolved(local_addr) */
    STEP_CONNECTING,      /* sock_connect(sock, address) */
    STEP_RACING,          /* the happy eyeballs race */
    STEP_WAITING,         /* the transport's waiter */
} connect_step_t;

typedef enum {
    CONNECT_TCP,        /* create_connection */
    CONNECT_UNIX,       /* create_unix_connection */
    CONNECT_ACCEPTED,   /* connect_accepted_socket */
    CONNECT_TRANSPORT,  /* _create_connection_transport */
    CONNECT_ATTEMPT,    /* _connect_sock: one attempt of a race */
} connect_kind_t;

static const char *const qualnames[] = {
    [CONNECT_TCP] = "Loop.create_connection",
    [CONNECT_UNIX] = "Loop.create_unix_connection",
    [CONNECT_ACCEPTED] = "Loop.connect_accepted_socket",
    [CONNECT_TRANSPORT] = "Loop._create_connection_transport",
    [CONNECT_ATTEMPT] = "Loop._connect_sock",
};

typedef struct {
    CioCoroHead head;  /* the coroutine protocol (coro.c) */
    LoopObject *loop;
    PyObject *factory;
    PyObject *host, *port;        /* as given; host is create_unix_
                                     connection's path */
    PyObject *ssl;                /* as given */
    PyObject *server_hostname;
    PyObject *family, *proto, *flags;
    PyObject *sock;               /* given, or the one being connected */
    PyObject *local_addr;
    PyObject *server_side;        /* _create_connection_transport only */
    PyObject *handshake_timeout, *shutdown_timeout;
    PyObject *infos;              /* the addresses to try, a list */
    PyObject *local_infos;        /* local_addr's, a list; else NULL */
    PyObject *errors;             /* the OSErrors of the failed attempts */
    PyObject *happy_delay;        /* happy_eyeballs_delay, interleave */
    PyObject *interleave;
    PyObject *race;               /* the race's Future while racing */
    PyObject *attempt_errors;     /* each raced attempt's errors list */
    PyObject *protocol, *transport;
    PyObject *context;            /* 3.15+: the transport's context, the
                                     caller's copied unless
                                     _create_connection_transport was
                                     given one */
    Py_ssize_t next_info;         /* index in infos of the next attempt */
    char all_errors;
    char own_sock;                /* non-blocking already (made here or
                                     set so) */
    connect_kind_t kind;
    connect_step_t step;
} ConnectCallObject;

static PySendResult advance(ConnectCallObject *self, PySendResult rc,
                            PyObject *value, PyObject **result);

/* `await awaitable` from step: the outcome goes to advance() unless the
 * awaitable suspends. Takes the reference to awaitable. */
static PySendResult
await_then(ConnectCallObject *self, PyObject *awaitable, connect_step_t step,
           PyObject **result)
{
    PySendResult rc;

    self->step = step;
    rc = cio_coro_await(&self->head, awaitable, result);
    if (rc == PYGEN_NEXT) {
        return rc;
    }
    return advance(self, rc, *result, result);
}

/* sock.setblocking(False); the socket counts as non-blocking after. */
static int
set_nonblocking(ConnectCallObject *self)
{
    PyObject *no = Py_False;
    PyObject *res = cio_call_method(self->loop->state, self->sock,
                                    CIO_NAME_setblocking, &no, 1);

    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    self->own_sock = 1;
    return 0;
}

/* ---- the transport: _create_connection_transport ------------------------ */

static PyObject *
make_ssl_transport(ConnectCallObject *self, PyObject *waiter)
{
    /* ssl=True asks for the default context. */
    PyObject *sslcontext = PyBool_Check(self->ssl) ? Py_None : self->ssl;
    PyObject *stack[10] = {(PyObject *)self->loop, self->sock,
                           self->protocol, sslcontext, waiter,
                           self->server_side, self->server_hostname,
                           self->handshake_timeout, self->shutdown_timeout,
                           self->context};
    PyObject *kwnames, *transport;

#if CIO_TRANSPORT_CONTEXT
    kwnames = Py_BuildValue("(sssss)", "server_side", "server_hostname",
                            "ssl_handshake_timeout", "ssl_shutdown_timeout",
                            "context");
#else
    kwnames = Py_BuildValue("(ssss)", "server_side", "server_hostname",
                            "ssl_handshake_timeout", "ssl_shutdown_timeout");
#endif
    if (kwnames == NULL) {
        return NULL;
    }
    transport = PyObject_VectorcallMethod(
        CIO_NAME(self->loop->state, _make_ssl_transport), stack, 5, kwnames);
    Py_DECREF(kwnames);
    return transport;
}

/* loop._make_socket_transport(sock, protocol, waiter), and from 3.15 on
 * context=self->context. */
static PyObject *
make_socket_transport(ConnectCallObject *self, PyObject *waiter)
{
    cio_state *st = self->loop->state;
    PyObject *stack[5] = {(PyObject *)self->loop, self->sock, self->protocol,
                          waiter, self->context};

    return PyObject_VectorcallMethod(
        CIO_NAME(st, _make_socket_transport), stack, 4,
        CIO_TRANSPORT_CONTEXT ? st->kwnames_context : NULL);
}

/* The protocol, the transport over the connected socket, and the wait
 * for its waiter. */
static PySendResult
make_transport(ConnectCallObject *self, PyObject **result)
{
    cio_state *st = self->loop->state;
    PyObject *loop = (PyObject *)self->loop, *waiter;
    int ssl = PyObject_IsTrue(self->ssl);

    if (ssl < 0 || (!self->own_sock && set_nonblocking(self) < 0)) {
        return PYGEN_ERROR;
    }
#if CIO_TRANSPORT_CONTEXT
    if (self->context == NULL) {
        self->context = PyContext_CopyCurrent();
        if (self->context == NULL) {
            return PYGEN_ERROR;
        }
    }
#endif
    self->protocol = PyObject_CallNoArgs(self->factory);
    if (self->protocol == NULL) {
        return PYGEN_ERROR;
    }
    waiter = cio_call_method(st, loop, CIO_NAME_create_future, NULL, 0);
    if (waiter == NULL) {
        return PYGEN_ERROR;
    }
    if (ssl) {
        self->transport = make_ssl_transport(self, waiter);
    }
    else {
        self->transport = make_socket_transport(self, waiter);
    }
    if (self->transport == NULL) {
        Py_DECREF(waiter);
        return PYGEN_ERROR;
    }
    return await_then(self, waiter, STEP_WAITING, result);
}

/* The waiter failed or the wait was interrupted: the transport is closed
 * and the error goes on (stdlib's bare except). */
/* The call fails once its transport exists: the transport is closed, as
 * stdlib's `except: transport.close()` around the waiter does. (Where the
 * failure comes after the waiter, in the debug log or the result, stdlib
 * leaves the transport open with nobody to close it: the peer and its
 * server's wait_closed() wait until the garbage collector runs.) */
static PySendResult
transport_failed(ConnectCallObject *self)
{
    cio_call_while_raising(self->transport, "close");
    return PYGEN_ERROR;
}

/* The call's result, (transport, protocol), logged in debug mode as
 * stdlib does. */
static PySendResult
connected(ConnectCallObject *self, PyObject **result)
{
    if (self->loop->debug &&
        (self->kind == CONNECT_TCP || self->kind == CONNECT_ACCEPTED)) {
        /* The transport's socket: a TLS transport's differs from sock. */
        cio_state *st = self->loop->state;
        PyObject *key = CIO_NAME(st, socket);
        PyObject *sock = cio_call_method(st, self->transport,
                                         CIO_NAME_get_extra_info, &key, 1);
        PyObject *res = sock == NULL ? NULL
                        : self->kind == CONNECT_TCP
                            ? PyObject_CallMethod(
                                  st->logger, "debug", "sOOOOO",
                                  "%r connected to %s:%r: (%r, %r)", sock,
                                  self->host, self->port, self->transport,
                                  self->protocol)
                            : PyObject_CallMethod(
                                  st->logger, "debug", "sOOO",
                                  "%r handled: (%r, %r)", sock,
                                  self->transport, self->protocol);
        Py_XDECREF(sock);
        if (res == NULL) {
            return transport_failed(self);
        }
        Py_DECREF(res);
    }
    *result = PyTuple_Pack(2, self->transport, self->protocol);
    return *result ? PYGEN_RETURN : transport_failed(self);
}

/* ---- resolving ---------------------------------------------------------- */

/* family, SOCK_STREAM and proto as C longs for cio_numeric_sockaddr; 0
 * when family or proto is not an int, which stdlib is left to judge. */
static int
stream_ints(ConnectCallObject *self, long ints[3])
{
    ints[0] = PyLong_Check(self->family) ? PyLong_AsLong(self->family) : -1;
    ints[1] = SOCK_STREAM;
    ints[2] = PyLong_Check(self->proto) ? PyLong_AsLong(self->proto) : -1;
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return ints[0] != -1 && ints[2] != -1;
}

/* self._ensure_resolved(address, family=family, type=SOCK_STREAM,
 * proto=proto, flags=flags, loop=self), the coroutine. */
static PyObject *
ensure_resolved(ConnectCallObject *self, PyObject *address)
{
    cio_state *st = self->loop->state;
    PyObject *kwnames = Py_BuildValue("(sssss)", "family", "type", "proto",
                                      "flags", "loop");
    PyObject *coro = NULL;

    if (kwnames != NULL) {
        PyObject *stack[7] = {(PyObject *)self->loop, address, self->family,
                              st->sock_stream, self->proto, self->flags,
                              (PyObject *)self->loop};
        coro = PyObject_VectorcallMethod(CIO_NAME(st, _ensure_resolved),
                                         stack, 2, kwnames);
        Py_DECREF(kwnames);
    }
    return coro;
}

/* Resolves address in step, at once when it is numeric. */
static PySendResult
resolve(ConnectCallObject *self, PyObject *address, connect_step_t step,
        PyObject **result)
{
    long ints[3];
    int af = 0;
    PyObject *sockaddr, *infos;

    if (!stream_ints(self, ints)) {
        return await_then(self, ensure_resolved(self, address), step,
                          result);
    }
    sockaddr = cio_numeric_sockaddr(address, ints, &af);
    if (sockaddr == NULL) {
        return PYGEN_ERROR;
    }
    if (sockaddr == Py_None) {
        Py_DECREF(sockaddr);
        return await_then(self, ensure_resolved(self, address), step,
                          result);
    }
    infos = cio_numeric_infos(self->loop->state, self->family, af, 0,
                              sockaddr);
    Py_DECREF(sockaddr);
    self->step = step;
    return advance(self, infos ? PYGEN_RETURN : PYGEN_ERROR, infos, result);
}

/* ---- the attempts: _connect_sock --------------------------------------- */

/* The bind error as _connect_sock rewords it. */
static PyObject *
bind_error(PyObject *laddr, PyObject *exc)
{
    PyObject *errno_obj = ((PyOSErrorObject *)exc)->myerrno;
    PyObject *reason, *lowered, *msg, *err;

#if PY_VERSION_HEX >= 0x030D0000
    reason = PyObject_Str(exc);
#else
    reason = PyObject_GetAttrString(exc, "strerror");
#endif
    lowered = reason ? PyObject_CallMethod(reason, "lower", NULL) : NULL;
    Py_XDECREF(reason);
    if (lowered == NULL) {
        return NULL;
    }
    msg = PyUnicode_FromFormat(
        "error while attempting to bind on address %R: %U", laddr, lowered);
    Py_DECREF(lowered);
    if (msg == NULL) {
        return NULL;
    }
    err = PyObject_CallFunctionObjArgs(PyExc_OSError,
                                       errno_obj ? errno_obj : Py_None, msg,
                                       NULL);
    Py_DECREF(msg);
    return err;
}

/* An (family, type, proto, canonname, address) entry of a resolver's
 * list, borrowed into items. */
static int
unpack_info(PyObject *info, PyObject *items[5])
{
    if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 5) {
        PyErr_Format(PyExc_ValueError,
                     "expected a (family, type, proto, canonname, address) "
                     "tuple, got %R", info);
        return -1;
    }
    for (int i = 0; i < 5; i++) {
        items[i] = PyTuple_GET_ITEM(info, i);
    }
    return 0;
}

/* Binds self->sock to the first of local_addr's addresses of family that
 * takes it: 0, or -1 with the error the attempt fails with. Every bind
 * error but that last one is noted in self->errors here. */
static int
bind_local(ConnectCallObject *self, PyObject *family)
{
    PyObject *last_error = NULL;

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->local_infos); i++) {
        PyObject *linfo[5], *res, *exc;
        int same;

        if (unpack_info(PyList_GET_ITEM(self->local_infos, i), linfo) < 0) {
            goto error;
        }
        same = PyObject_RichCompareBool(linfo[0], family, Py_EQ);
        if (same < 0) {
            goto error;
        }
        if (!same) {
            continue;
        }
        res = cio_call_method(self->loop->state, self->sock, CIO_NAME_bind,
                              &linfo[4], 1);
        if (res != NULL) {
            Py_DECREF(res);
            Py_XDECREF(last_error);
            return 0;
        }
        if (!PyErr_ExceptionMatches(PyExc_OSError)) {
            goto error;
        }
        if (last_error != NULL &&
            PyList_Append(self->errors, last_error) < 0) {
            goto error;
        }
        exc = cio_fetch_exception();
        Py_XSETREF(last_error, bind_error(linfo[4], exc));
        Py_DECREF(exc);
        if (last_error == NULL) {
            return -1;
        }
    }
    if (last_error != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(last_error), last_error);
        Py_DECREF(last_error);
        return -1;
    }
    PyErr_Format(PyExc_OSError,
                 "no matching local address with family=%R found", family);
    return -1;
error:
    Py_XDECREF(last_error);
    return -1;
}

/* An int other than -1, which socket.py's __init__ would replace (or
 * one too big, which the class is left to refuse). */
static int
plain_int(PyObject *value)
{
    if (!PyLong_Check(value)) {
        return 0;
    }
    if (PyLong_AsLong(value) == -1) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* self->sock = socket.socket(family, type, proto), non-blocking; the
 * arguments are passed by keyword when kwnames is given, as
 * create_connection does, else by position, as create_unix_connection
 * does. socket.socket itself is asked for SOCK_NONBLOCK in the type,
 * which makes the socket non-blocking as it is made (the object is the
 * same, its .type without the flag), and made by cio_socket_new when the
 * arguments are ints; anything standing in for it gets
 * setblocking(False), as in stdlib. */
static int
new_socket(ConnectCallObject *self, PyObject *family, PyObject *type,
           PyObject *proto, PyObject *kwnames)
{
    cio_state *st = self->loop->state;
    PyObject *ctor, *args[3] = {family, type, proto};
    PyObject *nonblocking = NULL;
    int own_class;

    /* Looked up per call, as stdlib's socket.socket is. */
    ctor = PyObject_GetAttr(st->socket_module, CIO_NAME(st, socket));
    if (ctor == NULL) {
        return -1;
    }
    own_class = CIO_HAVE_SOCK_NONBLOCK && ctor == st->socket_type &&
                PyLong_Check(type);
    if (own_class) {
        long flags = PyLong_AsLong(type);
        nonblocking = flags == -1 && PyErr_Occurred()
                          ? NULL : PyLong_FromLong(flags | CIO_SOCK_NONBLOCK);
        if (nonblocking == NULL) {
            Py_DECREF(ctor);
            return -1;
        }
        args[1] = nonblocking;
    }
    if (own_class && plain_int(family) && plain_int(proto)) {
        PyObject *tuple = PyTuple_Pack(3, family, nonblocking, proto);
        self->sock = tuple ? cio_socket_new(st, tuple) : NULL;
        Py_XDECREF(tuple);
    }
    else {
        self->sock = PyObject_Vectorcall(ctor, args, kwnames ? 0 : 3,
                                         kwnames);
    }
    Py_DECREF(ctor);
    Py_XDECREF(nonblocking);
    if (self->sock == NULL) {
        return -1;
    }
    self->own_sock = 1;
    return own_class ? 0 : set_nonblocking(self);
}

/* The socket for one of create_connection's addresses, bound to
 * local_addr if asked. */
static int
open_socket(ConnectCallObject *self, PyObject *const info[5])
{
    if (new_socket(self, info[0], info[1], info[2],
                   self->loop->state->kwnames_socket) < 0) {
        return -1;
    }
    return self->local_infos != NULL ? bind_local(self, info[0]) : 0;
}

/* Closes the attempt's socket, the exception being raised kept: what
 * stdlib's `except: sock.close(); raise` does. */
static int
close_attempt_socket(ConnectCallObject *self)
{
    PyObject *exc = cio_fetch_exception(), *res;

    res = cio_call_method(self->loop->state, self->sock, CIO_NAME_close,
                          NULL, 0);
    Py_CLEAR(self->sock);
    self->own_sock = 0;
    if (res == NULL) {
        PyObject *close_exc = cio_fetch_exception();
        PyException_SetContext(close_exc, exc);  /* steals exc */
        cio_restore_exception(close_exc);
        return -1;
    }
    Py_DECREF(res);
    cio_restore_exception(exc);
    return 0;
}

/* One of create_connection's attempts failed with the exception being
 * raised, and its socket (if made) is closed. 0 to try the next address
 * (an OSError, noted), -1 when the exception ends the call. */
static int
attempt_failed(ConnectCallObject *self)
{
    int next = PyErr_ExceptionMatches(PyExc_OSError);

    if (next) {
        PyObject *exc = cio_fetch_exception();
        int rc = PyList_Append(self->errors, exc);
        cio_restore_exception(exc);
        if (rc < 0) {
            return -1;
        }
    }
    if (self->sock != NULL && close_attempt_socket(self) < 0) {
        return -1;
    }
    if (next && self->kind != CONNECT_ATTEMPT) {
        PyErr_Clear();
        return 0;
    }
    return -1;  /* a raced attempt raises, as _connect_sock does */
}

/* Every address failed: all_errors' ExceptionGroup, the one error, or,
 * when they differ, an OSError listing them all. */
static PySendResult
raise_combined(ConnectCallObject *self)
{
    PyObject *errors = self->errors, *first, *model, *strs, *joined;
    Py_ssize_t n = PyList_GET_SIZE(errors);
    int same = 1;

    if (self->all_errors) {
        PyObject *group = PyObject_CallFunction(
            PyExc_BaseExceptionGroup, "sO", "create_connection failed",
            errors);
        if (group != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(group), group);
            Py_DECREF(group);
        }
        return PYGEN_ERROR;
    }
    first = PyList_GetItem(errors, 0);  /* IndexError as stdlib if none */
    strs = first ? PyList_New(n) : NULL;
    if (strs == NULL) {
        return PYGEN_ERROR;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyObject_Str(PyList_GET_ITEM(errors, i));
        if (s == NULL) {
            Py_DECREF(strs);
            return PYGEN_ERROR;
        }
        PyList_SET_ITEM(strs, i, s);
    }
    model = PyList_GET_ITEM(strs, 0);
    for (Py_ssize_t i = 1; same > 0 && i < n; i++) {
        same = PyObject_RichCompareBool(PyList_GET_ITEM(strs, i), model,
                                        Py_EQ);
    }
    if (same > 0) {
        PyErr_SetObject((PyObject *)Py_TYPE(first), first);
    }
    else if (same == 0) {
        PyObject *sep = PyUnicode_FromString(", ");
        joined = sep ? PyUnicode_Join(sep, strs) : NULL;
        Py_XDECREF(sep);
        if (joined != NULL) {
            PyErr_Format(PyExc_OSError, "Multiple exceptions: %U", joined);
            Py_DECREF(joined);
        }
    }
    Py_DECREF(strs);
    return PYGEN_ERROR;
}

/* Tries the addresses from next_info on until one suspends or connects. */
static PySendResult
try_next(ConnectCallObject *self, PyObject **result)
{
    while (self->next_info < PyList_GET_SIZE(self->infos)) {
        PyObject *info[5], *connect, *args[2];

        if (unpack_info(PyList_GET_ITEM(self->infos, self->next_info++),
                        info) < 0) {
            return PYGEN_ERROR;
        }
        if (open_socket(self, info) < 0) {
            if (attempt_failed(self) < 0) {
                return PYGEN_ERROR;
            }
            continue;
        }
        args[0] = self->sock;
        args[1] = info[4];
        connect = cio_call_method(self->loop->state, (PyObject *)self->loop,
                                  CIO_NAME_sock_connect, args, 2);
        return await_then(self, connect, STEP_CONNECTING, result);
    }
    return raise_combined(self);
}

/* ---- happy eyeballs ---------------------------------------------------- */

/* list.extend(items) for a list of items. */
static int
list_extend(PyObject *list, PyObject *items)
{
    Py_ssize_t end = PyList_GET_SIZE(list);

    return PyList_SetSlice(list, end, end, items);
}

/* _interleave_addrinfos(infos, first_count): the addresses grouped by
 * family in order of appearance, the first first_count - 1 of the first
 * family kept in front, then one of each family in turn. The arithmetic
 * is Python's on the objects given, as in stdlib. */
static PyObject *
interleave_infos(PyObject *infos, PyObject *first_count)
{
    PyObject *by_family = PyDict_New(), *zero = PyLong_FromLong(0);
    PyObject *one = PyLong_FromLong(1), *lists = NULL, *reordered = NULL;
    Py_ssize_t longest = 0;
    int more;

    if (by_family == NULL || zero == NULL || one == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(infos); i++) {
        PyObject *info = PyList_GET_ITEM(infos, i);
        PyObject *family = PyObject_GetItem(info, zero), *group;
        int rc;

        if (family == NULL) {
            goto done;
        }
        group = PyDict_GetItemWithError(by_family, family);  /* borrowed */
        if (group == NULL) {
            group = PyErr_Occurred() ? NULL : PyList_New(0);
            rc = group ? PyDict_SetItem(by_family, family, group) : -1;
            Py_XDECREF(group);  /* the dict holds it */
        }
        else {
            rc = 0;
        }
        Py_DECREF(family);
        if (rc < 0 || PyList_Append(group, info) < 0) {
            goto done;
        }
    }
    lists = PyDict_Values(by_family);
    reordered = lists ? PyList_New(0) : NULL;
    more = reordered ? PyObject_RichCompareBool(first_count, one, Py_GT) : -1;
    if (more > 0) {
        PyObject *stop = PyNumber_Subtract(first_count, one);
        PyObject *slice = stop ? PySlice_New(NULL, stop, NULL) : NULL;
        PyObject *first = PyList_GET_ITEM(lists, 0);
        PyObject *head = slice ? PyObject_GetItem(first, slice) : NULL;

        more = head == NULL || list_extend(reordered, head) < 0 ||
                       PyObject_DelItem(first, slice) < 0
                   ? -1
                   : 0;
        Py_XDECREF(stop);
        Py_XDECREF(slice);
        Py_XDECREF(head);
    }
    if (more < 0) {
        Py_CLEAR(reordered);
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lists); i++) {
        Py_ssize_t len = PyList_GET_SIZE(PyList_GET_ITEM(lists, i));
        longest = len > longest ? len : longest;
    }
    for (Py_ssize_t round = 0; round < longest; round++) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lists); i++) {
            PyObject *group = PyList_GET_ITEM(lists, i);
            if (round < PyList_GET_SIZE(group) &&
                PyList_Append(reordered, PyList_GET_ITEM(group, round)) < 0) {
                Py_CLEAR(reordered);
                goto done;
            }
        }
    }
done:
    Py_XDECREF(by_family);
    Py_XDECREF(zero);
    Py_XDECREF(one);
    Py_XDECREF(lists);
    return reordered;
}

static ConnectCallObject *connect_call_new(LoopObject *loop,
                                           connect_kind_t kind,
                                           PyObject *factory);

/* The race's attempt index: _connect_sock on infos[index], its errors
 * noted in a list of its own, kept in the order the attempts start. */
static PyObject *
race_attempt_start(PyObject *ctx, Py_ssize_t index)
{
    ConnectCallObject *self = (ConnectCallObject *)ctx;
    ConnectCallObject *attempt =
        connect_call_new(self->loop, CONNECT_ATTEMPT, self->factory);

    if (attempt == NULL) {
        return NULL;
    }
    attempt->infos = PyList_GetSlice(self->infos, index, index + 1);
    attempt->local_infos = Py_XNewRef(self->local_infos);
    attempt->errors = PyList_New(0);
    if (attempt->infos == NULL || attempt->errors == NULL ||
        PyList_Append(self->attempt_errors, attempt->errors) < 0) {
        Py_DECREF(attempt);
        return NULL;
    }
    return (PyObject *)attempt;
}

/* A socket that connected after another attempt had won. */
static void
race_attempt_discard(PyObject *ctx, PyObject *sock)
{
    PyObject *res = cio_call_method(((ConnectCallObject *)ctx)->loop->state,
                                    sock, CIO_NAME_close, NULL, 0);

    if (res == NULL) {
        PyErr_WriteUnraisable(sock);
    }
    Py_XDECREF(res);
}

static const cio_race_ops_t race_attempt_ops = {race_attempt_start,
                                                race_attempt_discard};

/* The resolved addresses, reordered if interleave asks, are tried one
 * after another, or raced with happy_eyeballs_delay. */
static PySendResult
begin_attempts(ConnectCallObject *self, PyObject **result)
{
    int reorder = PyObject_IsTrue(self->interleave);

    if (reorder < 0) {
        return PYGEN_ERROR;
    }
    if (reorder) {
        PyObject *infos = interleave_infos(self->infos, self->interleave);
        if (infos == NULL) {
            return PYGEN_ERROR;
        }
        Py_SETREF(self->infos, infos);
    }
    if (self->happy_delay == Py_None) {
        return try_next(self, result);
    }
    self->attempt_errors = PyList_New(0);
    if (self->attempt_errors == NULL) {
        return PYGEN_ERROR;
    }
    self->race = cio_race_start(self->loop, PyList_GET_SIZE(self->infos),
                                self->happy_delay, &race_attempt_ops,
                                (PyObject *)self);
    if (self->race == NULL) {
        return PYGEN_ERROR;
    }
    return await_then(self, Py_NewRef(self->race), STEP_RACING, result);
}

/* The race is over: the winner's socket (value, taken) gets the
 * transport; with none, every attempt's errors are raised together, in
 * the order the attempts started. */
static PySendResult
race_over(ConnectCallObject *self, PyObject *value, PyObject **result)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->attempt_errors); i++) {
        if (list_extend(self->errors,
                        PyList_GET_ITEM(self->attempt_errors, i)) < 0) {
            Py_DECREF(value);
            return PYGEN_ERROR;
        }
    }
    if (value == Py_None) {
        Py_DECREF(value);
        return raise_combined(self);
    }
    Py_XSETREF(self->sock, value);
    self->own_sock = 1;  /* made non-blocking by its attempt */
    return make_transport(self, result);
}

/* ---- the steps ---------------------------------------------------------- */

/* A resolver's answer as a non-empty list. */
static PyObject *
address_list(PyObject *value)
{
    PyObject *list = PySequence_List(value);

    if (list != NULL && PyList_GET_SIZE(list) == 0) {
        Py_DECREF(list);
        PyErr_SetString(PyExc_OSError, "getaddrinfo() returned empty list");
        return NULL;
    }
    return list;
}

/* The step awaited has finished: rc is PYGEN_RETURN with value (a
 * reference this takes) or PYGEN_ERROR with the exception set. Goes on
 * until the call suspends again or ends. */
static PySendResult
advance(ConnectCallObject *self, PySendResult rc, PyObject *value,
        PyObject **result)
{
    PyObject *list = NULL;

    *result = NULL;
    if (rc == PYGEN_RETURN && (self->step == STEP_RESOLVING ||
                               self->step == STEP_RESOLVING_LOCAL)) {
        list = address_list(value);
        Py_DECREF(value);
        if (list == NULL) {
            return PYGEN_ERROR;
        }
    }
    else if (rc == PYGEN_RETURN && self->step != STEP_RACING) {
        Py_DECREF(value);
    }
    switch (self->step) {
    case STEP_RESOLVING:
        if (rc == PYGEN_ERROR) {
            return rc;
        }
        self->infos = list;
        if (self->local_addr != Py_None) {
            return resolve(self, self->local_addr, STEP_RESOLVING_LOCAL,
                           result);
        }
        return begin_attempts(self, result);
    case STEP_RESOLVING_LOCAL:
        if (rc == PYGEN_ERROR) {
            return rc;
        }
        self->local_infos = list;
        return begin_attempts(self, result);
    case STEP_RACING:
        if (rc == PYGEN_ERROR) {  /* stdlib's finally: the attempts stop */
            cio_call_while_raising(self->race, "cancel");
            return PYGEN_ERROR;
        }
        return race_over(self, value, result);
    case STEP_CONNECTING:
        if (rc == PYGEN_RETURN && self->kind == CONNECT_ATTEMPT) {
            *result = self->sock;  /* _connect_sock returns it */
            self->sock = NULL;
            return PYGEN_RETURN;
        }
        if (rc == PYGEN_RETURN) {
            return make_transport(self, result);
        }
        if (self->kind == CONNECT_UNIX) {
            close_attempt_socket(self);
            return PYGEN_ERROR;
        }
        return attempt_failed(self) < 0 ? PYGEN_ERROR
                                        : try_next(self, result);
    case STEP_WAITING:
        return rc == PYGEN_RETURN ? connected(self, result)
                                  : transport_failed(self);
    default:
        Py_UNREACHABLE();
    }
}

/* ValueError for a TLS option given without ssl, as both stdlib
 * coroutines check them (in this order). */
static int
refuse_tls_options(ConnectCallObject *self)
{
    const char *option = self->server_hostname != Py_None ? "server_hostname"
                         : self->handshake_timeout != Py_None
                             ? "ssl_handshake_timeout"
                         : self->shutdown_timeout != Py_None
                             ? "ssl_shutdown_timeout"
                             : NULL;

    if (option != NULL) {
        PyErr_Format(PyExc_ValueError, "%s is only meaningful with ssl",
                     option);
        return -1;
    }
    return 0;
}

/* sock.<attribute> != value, as Python compares them. */
static int
differs(PyObject *sock, const char *attribute, long value)
{
    PyObject *actual = PyObject_GetAttrString(sock, attribute);
    PyObject *expected = PyLong_FromLong(value);
    int rc = actual && expected
                 ? PyObject_RichCompareBool(actual, expected, Py_NE)
                 : -1;

    Py_XDECREF(actual);
    Py_XDECREF(expected);
    return rc;
}

/* create_connection's checks, in stdlib's order, then the first step. */
static PySendResult
start_tcp(ConnectCallObject *self, PyObject **result)
{
    PyObject *address;
    int ssl = PyObject_IsTrue(self->ssl), wrong_type;
    PySendResult rc;

    if (ssl < 0 || (!ssl && refuse_tls_options(self) < 0)) {
        return PYGEN_ERROR;
    }
    if (ssl && self->server_hostname == Py_None) {
        int has_host = PyObject_IsTrue(self->host);
        if (has_host <= 0) {
            if (has_host == 0) {
                PyErr_SetString(PyExc_ValueError,
                                "You must set server_hostname when using "
                                "ssl without a host");
            }
            return PYGEN_ERROR;
        }
        Py_SETREF(self->server_hostname, Py_NewRef(self->host));
    }
    if (self->sock != Py_None &&
        cio_check_not_ssl_socket(self->loop->state, self->sock) < 0) {
        return PYGEN_ERROR;
    }
    if (self->host != Py_None || self->port != Py_None) {
        if (self->sock != Py_None) {
            PyErr_SetString(PyExc_ValueError, "host/port and sock can not be "
                                              "specified at the same time");
            return PYGEN_ERROR;
        }
        Py_CLEAR(self->sock);
        self->errors = PyList_New(0);
        address = self->errors ? PyTuple_Pack(2, self->host, self->port)
                               : NULL;
        if (address == NULL) {
            return PYGEN_ERROR;
        }
        rc = resolve(self, address, STEP_RESOLVING, result);
        Py_DECREF(address);
        return rc;
    }
    if (self->sock == Py_None) {
        PyErr_SetString(PyExc_ValueError, "host and port was not specified "
                                          "and no sock specified");
        return PYGEN_ERROR;
    }
    wrong_type = differs(self->sock, "type", SOCK_STREAM);
    if (wrong_type != 0) {
        if (wrong_type > 0) {
            PyErr_Format(PyExc_ValueError,
                         "A Stream Socket was expected, got %R", self->sock);
        }
        return PYGEN_ERROR;
    }
    return make_transport(self, result);
}

/* Whether `assert` statements run (python -O turns them off). */
static int
assertions_enabled(cio_state *st)
{
    PyObject *flags = PyObject_GetAttrString(st->sys_module, "flags");
    PyObject *optimize = flags ? PyObject_GetAttrString(flags, "optimize")
                               : NULL;
    int off = optimize ? PyObject_IsTrue(optimize) : -1;

    Py_XDECREF(flags);
    Py_XDECREF(optimize);
    return off < 0 ? -1 : !off;
}

/* create_unix_connection's checks, in stdlib's order, then the connect
 * to path or the transport over sock. */
static PySendResult
start_unix(ConnectCallObject *self, PyObject **result)
{
    cio_state *st = self->loop->state;
    PyObject *path, *zero, *connect, *args[2];
    int ssl, wrong, made;

    if (self->server_hostname != Py_None &&
        !PyUnicode_Check(self->server_hostname)) {
        int enabled = assertions_enabled(st);
        if (enabled != 0) {
            if (enabled > 0) {
                PyErr_SetNone(PyExc_AssertionError);
            }
            return PYGEN_ERROR;
        }
    }
    ssl = PyObject_IsTrue(self->ssl);
    if (ssl < 0 || (!ssl && refuse_tls_options(self) < 0)) {
        return PYGEN_ERROR;
    }
    if (ssl && self->server_hostname == Py_None) {
        PyErr_SetString(PyExc_ValueError,
                        "you have to pass server_hostname when using ssl");
        return PYGEN_ERROR;
    }
    if (self->host == Py_None) {
        if (self->sock == Py_None) {
            PyErr_SetString(PyExc_ValueError,
                            "no path and sock were specified");
            return PYGEN_ERROR;
        }
        wrong = differs(self->sock, "family", AF_UNIX);
        if (wrong == 0) {
            wrong = differs(self->sock, "type", SOCK_STREAM);
        }
        if (wrong != 0) {
            if (wrong > 0) {
                PyErr_Format(PyExc_ValueError, "A UNIX Domain Stream Socket "
                             "was expected, got %R", self->sock);
            }
            return PYGEN_ERROR;
        }
        if (set_nonblocking(self) < 0) {
            return PYGEN_ERROR;
        }
        return make_transport(self, result);
    }
    if (self->sock != Py_None) {
        PyErr_SetString(PyExc_ValueError,
                        "path and sock can not be specified at the same time");
        return PYGEN_ERROR;
    }
    Py_CLEAR(self->sock);
    path = PyOS_FSPath(self->host);
    if (path == NULL) {
        return PYGEN_ERROR;
    }
    Py_SETREF(self->host, path);
    zero = PyLong_FromLong(0);
    made = zero ? new_socket(self, st->af_unix, st->sock_stream, zero, NULL)
                : -1;
    Py_XDECREF(zero);
    if (made < 0) {
        if (self->sock != NULL) {
            close_attempt_socket(self);
        }
        return PYGEN_ERROR;
    }
    args[0] = self->sock;
    args[1] = path;
    connect = cio_call_method(st, (PyObject *)self->loop,
                              CIO_NAME_sock_connect, args, 2);
    return await_then(self, connect, STEP_CONNECTING, result);
}

/* connect_accepted_socket's checks, in stdlib's order, then the
 * transport. */
static PySendResult
start_accepted(ConnectCallObject *self, PyObject **result)
{
    int ssl, wrong = differs(self->sock, "type", SOCK_STREAM);

    if (wrong != 0) {
        if (wrong > 0) {
            PyErr_Format(PyExc_ValueError,
                         "A Stream Socket was expected, got %R", self->sock);
        }
        return PYGEN_ERROR;
    }
    ssl = PyObject_IsTrue(self->ssl);
    if (ssl < 0) {
        return PYGEN_ERROR;
    }
    /* server_hostname is still None here, so only the timeouts count. */
    if (!ssl && refuse_tls_options(self) < 0) {
        return PYGEN_ERROR;
    }
    if (self->sock != Py_None &&
        cio_check_not_ssl_socket(self->loop->state, self->sock) < 0) {
        return PYGEN_ERROR;
    }
    /* What stdlib passes _create_connection_transport as the name. */
    Py_SETREF(self->server_hostname, PyUnicode_New(0, 0));
    if (self->server_hostname == NULL) {
        return PYGEN_ERROR;
    }
    return make_transport(self, result);
}

static PySendResult
start(ConnectCallObject *self, PyObject **result)
{
    switch (self->kind) {
    case CONNECT_TCP:
        return start_tcp(self, result);
    case CONNECT_UNIX:
        return start_unix(self, result);
    case CONNECT_ACCEPTED:
        return start_accepted(self, result);
    case CONNECT_ATTEMPT:
        return try_next(self, result);
    default:
        return make_transport(self, result);
    }
}

/* ---- the coroutine protocol (coro.c's, over the steps) ----------------- */

static PySendResult
connect_call_start(CioCoroHead *coro, PyObject **result)
{
    return start((ConnectCallObject *)coro, result);
}

static PySendResult
connect_call_resume(CioCoroHead *coro, PySendResult rc, PyObject *value,
                    PyObject **result)
{
    return advance((ConnectCallObject *)coro, rc, value, result);
}

/* A finished call lets go of what it held, as a coroutine's frame does. */
static void
connect_call_finish(CioCoroHead *coro)
{
    ConnectCallObject *self = (ConnectCallObject *)coro;

    Py_CLEAR(self->sock);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->infos);
    Py_CLEAR(self->local_infos);
    Py_CLEAR(self->errors);
    Py_CLEAR(self->race);
    Py_CLEAR(self->attempt_errors);
}

static const cio_coro_body_t connect_call_body = {
    connect_call_start, connect_call_resume, connect_call_finish};

#define CONNECT_CALL_FIELDS(X)                                              \
    X(loop) X(factory) X(host) X(port) X(ssl) X(server_hostname) X(family) \
    X(proto) X(flags) X(sock) X(local_addr) X(server_side)                 \
    X(handshake_timeout) X(shutdown_timeout) X(infos) X(local_infos)       \
    X(errors) X(protocol) X(transport) X(context) X(happy_delay)           \
    X(interleave) X(race) X(attempt_errors)

static int
connect_call_traverse(ConnectCallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->head.awaiting);
#define VISIT(f) Py_VISIT(self->f);
    CONNECT_CALL_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
connect_call_clear(ConnectCallObject *self)
{
    Py_CLEAR(self->head.awaiting);
#define CLEAR(f) Py_CLEAR(self->f);
    CONNECT_CALL_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
connect_call_dealloc(ConnectCallObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, NULL)) {
        return;
    }
    connect_call_clear(self);
    cio_dealloc_end((PyObject *)self);
}

static PyType_Slot connect_call_slots[] = {
    CIO_CORO_SLOTS,
    {Py_am_send, cio_coro_am_send},
    {Py_tp_traverse, connect_call_traverse},
    {Py_tp_clear, connect_call_clear},
    {Py_tp_dealloc, connect_call_dealloc},
    {Py_tp_doc, "The coroutine a loop's create_connection or "
                "_create_connection_transport returns."},
    {0, NULL},
};

PyType_Spec cio_connect_call_spec = {
    .name = "casyncio._casyncio.ConnectCall",
    .basicsize = sizeof(ConnectCallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = connect_call_slots,
};

/* ---- the loop methods --------------------------------------------------- */

static ConnectCallObject *
connect_call_new(LoopObject *loop, connect_kind_t kind, PyObject *factory)
{
    ConnectCallObject *self = PyObject_GC_New(
        ConnectCallObject, loop->state->connect_call_type);

    if (self == NULL) {
        return NULL;
    }
    cio_coro_head_init(&self->head, &connect_call_body, qualnames[kind]);
#define NULLIFY(f) self->f = NULL;
    CONNECT_CALL_FIELDS(NULLIFY)
#undef NULLIFY
    self->loop = (LoopObject *)Py_NewRef(loop);
    self->factory = Py_NewRef(factory);
    self->next_info = 0;
    self->all_errors = 0;
    self->own_sock = 0;
    self->kind = kind;
    PyObject_GC_Track(self);
    return self;
}

/* The keyword arguments whose default is None. */
#define NONE_OR(p) ((p) ? (p) : Py_None)

/* 3.12 added the all_errors keyword. */
#if PY_VERSION_HEX >= 0x030C0000
#define ALL_ERRORS_KEYWORD "all_errors",
#define ALL_ERRORS_FORMAT "O"
#else
#define ALL_ERRORS_KEYWORD
#define ALL_ERRORS_FORMAT ""
#endif

/* create_connection(protocol_factory, host=None, port=None, *, ssl=None,
 *     family=0, proto=0, flags=0, sock=None, local_addr=None,
 *     server_hostname=None, ssl_handshake_timeout=None,
 *     ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
 *     interleave=None, all_errors=False)   (all_errors: 3.12+) */
static PyObject *
loop_create_connection(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "protocol_factory", "host", "port", "ssl", "family", "proto",
        "flags", "sock", "local_addr", "server_hostname",
        "ssl_handshake_timeout", "ssl_shutdown_timeout",
        "happy_eyeballs_delay", "interleave",
        ALL_ERRORS_KEYWORD NULL};
    PyObject *factory, *host = NULL, *port = NULL, *ssl = NULL;
    PyObject *family = NULL, *proto = NULL, *flags = NULL, *sock = NULL;
    PyObject *local_addr = NULL, *server_hostname = NULL;
    PyObject *handshake_timeout = NULL, *shutdown_timeout = NULL;
    PyObject *happy_eyeballs_delay = NULL, *interleave = NULL;
    PyObject *all_errors = NULL, *zero;
    ConnectCallObject *call;

    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs,
            "O|OO$OOOOOOOOOOO" ALL_ERRORS_FORMAT ":create_connection", kwlist,
            &factory, &host, &port, &ssl, &family, &proto, &flags, &sock,
            &local_addr, &server_hostname, &handshake_timeout,
            &shutdown_timeout, &happy_eyeballs_delay, &interleave,
            &all_errors)) {
        return NULL;
    }
    call = connect_call_new(self, CONNECT_TCP, factory);
    if (call == NULL) {
        return NULL;
    }
    call->happy_delay = Py_NewRef(NONE_OR(happy_eyeballs_delay));
    /* Happy eyeballs interleaves by family unless told otherwise. */
    call->interleave = NONE_OR(interleave) == Py_None &&
                               call->happy_delay != Py_None
                           ? PyLong_FromLong(1)
                           : Py_NewRef(NONE_OR(interleave));
    zero = call->interleave ? PyLong_FromLong(0) : NULL;
    if (zero == NULL) {
        Py_XDECREF(call);
        return NULL;
    }
    if (all_errors != NULL) {
        int on = PyObject_IsTrue(all_errors);
        if (on < 0) {
            Py_DECREF(zero);
            Py_DECREF(call);
            return NULL;
        }
        call->all_errors = (char)on;
    }
    call->host = Py_NewRef(NONE_OR(host));
    call->port = Py_NewRef(NONE_OR(port));
    call->ssl = Py_NewRef(NONE_OR(ssl));
    call->family = Py_NewRef(family ? family : zero);
    call->proto = Py_NewRef(proto ? proto : zero);
    call->flags = Py_NewRef(flags ? flags : zero);
    call->sock = Py_NewRef(NONE_OR(sock));
    call->local_addr = Py_NewRef(NONE_OR(local_addr));
    call->server_hostname = Py_NewRef(NONE_OR(server_hostname));
    call->server_side = Py_NewRef(Py_False);
    call->handshake_timeout = Py_NewRef(NONE_OR(handshake_timeout));
    call->shutdown_timeout = Py_NewRef(NONE_OR(shutdown_timeout));
    Py_DECREF(zero);
    return (PyObject *)call;
}

/* create_unix_connection(protocol_factory, path=None, *, ssl=None,
 *     sock=None, server_hostname=None, ssl_handshake_timeout=None,
 *     ssl_shutdown_timeout=None) */
static PyObject *
loop_create_unix_connection(LoopObject *self, PyObject *args,
                            PyObject *kwargs)
{
    static char *kwlist[] = {
        "protocol_factory", "path", "ssl", "sock", "server_hostname",
        "ssl_handshake_timeout", "ssl_shutdown_timeout", NULL};
    PyObject *factory, *path = Py_None, *ssl = Py_None, *sock = Py_None;
    PyObject *server_hostname = Py_None, *handshake_timeout = Py_None;
    PyObject *shutdown_timeout = Py_None;
    ConnectCallObject *call;

    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "O|O$OOOOO:create_unix_connection", kwlist,
            &factory, &path, &ssl, &sock, &server_hostname,
            &handshake_timeout, &shutdown_timeout)) {
        return NULL;
    }
    call = connect_call_new(self, CONNECT_UNIX, factory);
    if (call == NULL) {
        return NULL;
    }
    call->host = Py_NewRef(path);
    call->ssl = Py_NewRef(ssl);
    call->sock = Py_NewRef(sock);
    call->server_hostname = Py_NewRef(server_hostname);
    call->server_side = Py_NewRef(Py_False);
    call->handshake_timeout = Py_NewRef(handshake_timeout);
    call->shutdown_timeout = Py_NewRef(shutdown_timeout);
    return (PyObject *)call;
}

/* connect_accepted_socket(protocol_factory, sock, *, ssl=None,
 *     ssl_handshake_timeout=None, ssl_shutdown_timeout=None) */
static PyObject *
loop_connect_accepted_socket(LoopObject *self, PyObject *args,
                             PyObject *kwargs)
{
    static char *kwlist[] = {"protocol_factory", "sock", "ssl",
                             "ssl_handshake_timeout", "ssl_shutdown_timeout",
                             NULL};
    PyObject *factory, *sock, *ssl = Py_None;
    PyObject *handshake_timeout = Py_None, *shutdown_timeout = Py_None;
    ConnectCallObject *call;

    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OO|$OOO:connect_accepted_socket", kwlist,
            &factory, &sock, &ssl, &handshake_timeout, &shutdown_timeout)) {
        return NULL;
    }
    call = connect_call_new(self, CONNECT_ACCEPTED, factory);
    if (call == NULL) {
        return NULL;
    }
    call->sock = Py_NewRef(sock);
    call->ssl = Py_NewRef(ssl);
    call->server_hostname = Py_NewRef(Py_None);
    call->server_side = Py_NewRef(Py_True);
    call->handshake_timeout = Py_NewRef(handshake_timeout);
    call->shutdown_timeout = Py_NewRef(shutdown_timeout);
    return (PyObject *)call;
}

/* _create_connection_transport(sock, protocol_factory, ssl,
 *     server_hostname, server_side=False, ssl_handshake_timeout=None,
 *     ssl_shutdown_timeout=None) */
static PyObject *
loop_create_connection_transport(LoopObject *self, PyObject *args,
                                 PyObject *kwargs)
{
    static char *kwlist[] = {
        "sock", "protocol_factory", "ssl", "server_hostname", "server_side",
        "ssl_handshake_timeout", "ssl_shutdown_timeout",
#if CIO_TRANSPORT_CONTEXT
        "context",
#endif
        NULL};
    PyObject *sock, *factory, *ssl, *server_hostname;
    PyObject *server_side = Py_False, *handshake_timeout = Py_None;
    PyObject *shutdown_timeout = Py_None, *context = Py_None;
    ConnectCallObject *call;

    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs,
#if CIO_TRANSPORT_CONTEXT
            "OOOO|OOOO:_create_connection_transport",
#else
            "OOOO|OOO:_create_connection_transport",
#endif
            kwlist, &sock, &factory, &ssl, &server_hostname, &server_side,
            &handshake_timeout, &shutdown_timeout, &context)) {
        return NULL;
    }
    call = connect_call_new(self, CONNECT_TRANSPORT, factory);
    if (call == NULL) {
        return NULL;
    }
    call->sock = Py_NewRef(sock);
    call->ssl = Py_NewRef(ssl);
    call->server_hostname = Py_NewRef(server_hostname);
    call->server_side = Py_NewRef(server_side);
    call->handshake_timeout = Py_NewRef(handshake_timeout);
    call->shutdown_timeout = Py_NewRef(shutdown_timeout);
    if (context != Py_None) {
        call->context = Py_NewRef(context);
    }
    return (PyObject *)call;
}

PyMethodDef cio_loop_connect_methods[] = {
    {"create_connection", (PyCFunction)(void (*)(void))loop_create_connection,
     METH_VARARGS | METH_KEYWORDS,
     "create_connection($self, protocol_factory, host=None, port=None, *, "
     "ssl=None, family=0, proto=0, flags=0, sock=None, local_addr=None, "
     "server_hostname=None, ssl_handshake_timeout=None, "
     "ssl_shutdown_timeout=None, happy_eyeballs_delay=None, "
#if PY_VERSION_HEX >= 0x030C0000
     "interleave=None, all_errors=False)\n--\n\n"
#else
     "interleave=None)\n--\n\n"
#endif
     "Coroutine: connect to a TCP server; return (transport, protocol)."},
    {"create_unix_connection",
     (PyCFunction)(void (*)(void))loop_create_unix_connection,
     METH_VARARGS | METH_KEYWORDS,
     "create_unix_connection($self, protocol_factory, path=None, *, "
     "ssl=None, sock=None, server_hostname=None, "
     "ssl_handshake_timeout=None, ssl_shutdown_timeout=None)\n--\n\n"
     "Coroutine: connect to a Unix socket; return (transport, protocol)."},
    {"connect_accepted_socket",
     (PyCFunction)(void (*)(void))loop_connect_accepted_socket,
     METH_VARARGS | METH_KEYWORDS,
     "connect_accepted_socket($self, protocol_factory, sock, *, ssl=None, "
     "ssl_handshake_timeout=None, ssl_shutdown_timeout=None)\n--\n\n"
     "Coroutine: wrap an accepted connection; return (transport, "
     "protocol)."},
    {"_create_connection_transport",
     (PyCFunction)(void (*)(void))loop_create_connection_transport,
     METH_VARARGS | METH_KEYWORDS,
     "Coroutine: the transport and protocol over a connected socket."},
    {NULL, NULL, 0, NULL},
};
