/* The Server that create_server and create_unix_server return:
 * base_events.Server written in C, with each Python version's behaviour
 * (3.13 tracks its clients for close_clients(); 3.11's wait_closed()
 * returns at once once the server is closed).
 *
 * The C type, ServerBase, holds the state; the class handed out,
 * casyncio._casyncio.Server, is made at import from ServerBase and
 * asyncio.AbstractServer, so that servers are AbstractServers (what
 * libraries check) and get its async-with support. The loop's
 * _start_serving and _stop_serving are called by name, so a subclass's
 * or a patch's are used, as in stdlib. */
#include "casyncio.h"

#include "structmember.h"

/* 3.13 keeps its transports in a WeakSet; earlier versions count them.
 * Here they are kept in a dict whose keys and values are the transports'
 * basic weakrefs (a weakref hashes and compares as its referent):
 * a Python WeakSet's add() and discard() cost about 7 k instructions per
 * accepted connection, a quarter of its work. The transports detach
 * themselves when they close or are collected, so no entry outlives its
 * transport; _clients is a WeakSet made on each read. */
#define SERVER_TRACKS_CLIENTS (PY_VERSION_HEX >= 0x030D0000)

typedef struct {
    PyObject_HEAD
    LoopObject *loop;
    PyObject *sockets;           /* a list; NULL once closed */
    PyObject *waiters;           /* wait_closed()'s futures; NULL once
                                    woken */
#if SERVER_TRACKS_CLIENTS
    PyObject *clients;           /* dict: weakref -> the same weakref */
#else
    Py_ssize_t active_count;     /* transports attached */
#endif
    PyObject *protocol_factory;
    PyObject *ssl_context;
    PyObject *backlog;
    PyObject *handshake_timeout;
    PyObject *shutdown_timeout;
    PyObject *serving_forever_fut;
#if CIO_TRANSPORT_CONTEXT
    PyObject *context;           /* copied when the server is made: each
                                    accepted connection runs in a copy */
#endif
    char serving;
} ServerObject;

static Py_ssize_t
client_count(ServerObject *self)
{
#if SERVER_TRACKS_CLIENTS
    return PyDict_GET_SIZE(self->clients);
#else
    return self->active_count;
#endif
}

/* Resolves one waiter unless it is done (cancelled). */
static int
wake_waiter(cio_state *st, PyObject *waiter)
{
    /* 3.11 resolved each waiter with itself. */
    PyObject *value = PY_VERSION_HEX >= 0x030C0000 ? Py_None : waiter;
    PyObject *res = cio_call_method(st, waiter, CIO_NAME_done, NULL, 0);
    int done = res ? PyObject_IsTrue(res) : -1;

    Py_XDECREF(res);
    if (done != 0) {
        return done < 0 ? -1 : 0;
    }
    res = cio_call_method(st, waiter, CIO_NAME_set_result, &value, 1);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* Resolves every wait_closed() waiter; from then on wait_closed()
 * returns at once. One that cannot be resolved (out of memory) does not
 * keep the others waiting: the first error is raised once all were
 * tried. */
static int
server_wakeup(ServerObject *self)
{
    PyObject *waiters = self->waiters, *first = NULL;

    if (waiters == NULL) {
        return 0;
    }
    self->waiters = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiters); i++) {
        if (wake_waiter(self->loop->state, PyList_GET_ITEM(waiters, i)) < 0) {
            PyObject *exc = cio_fetch_exception();
            if (first == NULL) {
                first = exc;
            }
            else {
                Py_DECREF(exc);
            }
        }
    }
    Py_DECREF(waiters);
    if (first != NULL) {
        cio_restore_exception(first);
        return -1;
    }
    return 0;
}

static PyObject *
server_wakeup_method(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return server_wakeup(self) < 0 ? NULL : Py_NewRef(Py_None);
}

/* 0 if a method got the n positional arguments it takes, else -1 with
 * TypeError. */
static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t n)
{
    if (nargs == n) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s but "
                 "%zd were given", name, n + 1, n ? "s" : "", nargs + 1);
    return -1;
}

/* _attach(transport) on 3.13, _attach() before: a transport of the
 * server's connections was made. */
static PyObject *
server_attach(ServerObject *self, PyObject *const *args, Py_ssize_t nargs)
{
#if SERVER_TRACKS_CLIENTS
    PyObject *ref;
    int rc;

    if (check_nargs("_attach", nargs, 1)) {
        return NULL;
    }
    ref = PyWeakref_NewRef(args[0], NULL);
    rc = ref ? PyDict_SetItem(self->clients, ref, ref) : -1;
    Py_XDECREF(ref);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
#else
    if (check_nargs("_attach", nargs, 0)) {
        return NULL;
    }
    self->active_count++;
    Py_RETURN_NONE;
#endif
}

#if SERVER_TRACKS_CLIENTS
/* Drops the entries whose transport is gone. A transport the garbage
 * collector finalizes has had its weakrefs cleared first, so its
 * _detach() finds its entry only as a dead one. */
static int
forget_dead_clients(ServerObject *self)
{
    PyObject *refs = PyDict_Keys(self->clients), *transport;
    int rc = refs ? 0 : -1;

    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(refs); i++) {
        PyObject *ref = PyList_GET_ITEM(refs, i);

        rc = PyWeakref_GetRef(ref, &transport);
        if (rc > 0) {
            Py_DECREF(transport);
            rc = 0;
        }
        else if (rc == 0) {
            rc = PyDict_DelItem(self->clients, ref);
        }
    }
    Py_XDECREF(refs);
    return rc;
}
#endif

/* _detach(transport) on 3.13, _detach() before: the transport is gone;
 * the last one of a closed server wakes wait_closed(). */
static PyObject *
server_detach(ServerObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t count;

#if SERVER_TRACKS_CLIENTS
    PyObject *ref;
    int rc;

    if (check_nargs("_detach", nargs, 1)) {
        return NULL;
    }
    /* The transport's basic weakref, the one _attach stored: the same
     * object comes back while the dict holds it, so detaching allocates
     * nothing and cannot fail for want of memory (which would leave the
     * server counting a closed connection, and wait_closed() waiting). */
    ref = PyWeakref_NewRef(args[0], NULL);
    rc = ref ? PyDict_DelItem(self->clients, ref) : -1;
    Py_XDECREF(ref);
    if (rc < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
            return NULL;
        }
        PyErr_Clear();  /* discard(): not attached is fine */
        if (forget_dead_clients(self) < 0) {
            return NULL;
        }
    }
#else
    if (check_nargs("_detach", nargs, 0)) {
        return NULL;
    }
    self->active_count--;
#endif
    count = client_count(self);
    if (count < 0) {
        return NULL;
    }
    if (count == 0 && self->sockets == NULL && server_wakeup(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Listens on every socket and has the loop accept on it, once. */
static int
server_start_serving(ServerObject *self)
{
    PyObject *sockets = self->sockets;
    int rc = 0;

    if (self->serving) {
        return 0;
    }
    if (sockets == NULL) {
        /* What stdlib's loop over a closed server's None raises. */
        PyErr_SetString(PyExc_TypeError, "'NoneType' object is not iterable");
        return -1;
    }
    self->serving = 1;
    Py_INCREF(sockets);  /* close() may drop it while Python runs */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sockets) && rc == 0; i++) {
        PyObject *sock = PyList_GET_ITEM(sockets, i);  // borrowed
        PyObject *res = PyObject_CallMethod(sock, "listen", "(O)",
                                            self->backlog);

        if (res != NULL) {
            Py_DECREF(res);
#if CIO_TRANSPORT_CONTEXT
            res = PyObject_CallMethod(
                (PyObject *)self->loop, "_start_serving", "OOOOOOOO",
                self->protocol_factory, sock, self->ssl_context, self,
                self->backlog, self->handshake_timeout,
                self->shutdown_timeout, self->context);
#else
            res = PyObject_CallMethod(
                (PyObject *)self->loop, "_start_serving", "OOOOOOO",
                self->protocol_factory, sock, self->ssl_context, self,
                self->backlog, self->handshake_timeout,
                self->shutdown_timeout);
#endif
        }
        Py_XDECREF(res);
        rc = res ? 0 : -1;
    }
    Py_DECREF(sockets);
    return rc;
}

static PyObject *
server_start_serving_method(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return server_start_serving(self) < 0 ? NULL : Py_NewRef(Py_None);
}

static int
server_close(ServerObject *self)
{
    PyObject *sockets = self->sockets, *fut, *res;
    Py_ssize_t count;
    int rc = 0;

    if (sockets == NULL) {
        return 0;
    }
    self->sockets = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sockets) && rc == 0; i++) {
        res = PyObject_CallMethod((PyObject *)self->loop, "_stop_serving",
                                  "(O)", PyList_GET_ITEM(sockets, i));
        Py_XDECREF(res);
        rc = res ? 0 : -1;
    }
    Py_DECREF(sockets);
    if (rc < 0) {
        return -1;
    }
    self->serving = 0;
    fut = self->serving_forever_fut;
    if (fut != NULL) {
        int done;

        res = PyObject_CallMethod(fut, "done", NULL);
        done = res ? PyObject_IsTrue(res) : -1;
        Py_XDECREF(res);
        if (done < 0) {
            return -1;
        }
        if (!done) {
            res = PyObject_CallMethod(fut, "cancel", NULL);
            if (res == NULL) {
                return -1;
            }
            Py_DECREF(res);
            Py_CLEAR(self->serving_forever_fut);
        }
    }
    count = client_count(self);
    if (count < 0) {
        return -1;
    }
    return count == 0 ? server_wakeup(self) : 0;
}

static PyObject *
server_close_method(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return server_close(self) < 0 ? NULL : Py_NewRef(Py_None);
}

#if SERVER_TRACKS_CLIENTS
/* The live client transports, in a new list. */
static PyObject *
live_clients(ServerObject *self)
{
    PyObject *refs = PyDict_Values(self->clients), *live, *transport;

    live = refs ? PyList_New(0) : NULL;
    for (Py_ssize_t i = 0; live != NULL && i < PyList_GET_SIZE(refs); i++) {
        if (PyWeakref_GetRef(PyList_GET_ITEM(refs, i), &transport) < 0) {
            Py_CLEAR(live);
        }
        else if (transport != NULL) {
            if (PyList_Append(live, transport) < 0) {
                Py_CLEAR(live);
            }
            Py_DECREF(transport);
        }
    }
    Py_XDECREF(refs);
    return live;
}

/* transport.<method>() for each client, over a copy of the set: closing
 * one may detach it. */
static PyObject *
server_for_each_client(ServerObject *self, const char *method)
{
    PyObject *live = live_clients(self), *res;

    if (live == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(live); i++) {
        res = PyObject_CallMethod(PyList_GET_ITEM(live, i), method, NULL);
        if (res == NULL) {
            Py_DECREF(live);
            return NULL;
        }
        Py_DECREF(res);
    }
    Py_DECREF(live);
    return Py_NewRef(Py_None);
}

/* stdlib's _clients: a WeakSet of the live transports. */
static PyObject *
server_get_clients(ServerObject *self, void *Py_UNUSED(closure))
{
    PyObject *live = live_clients(self), *set;

    if (live == NULL) {
        return NULL;
    }
    set = PyObject_CallOneArg(self->loop->state->weakset_type, live);
    Py_DECREF(live);
    return set;
}

static PyObject *
server_close_clients(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return server_for_each_client(self, "close");
}

static PyObject *
server_abort_clients(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return server_for_each_client(self, "abort");
}
#endif

static PyObject *
server_get_loop(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->loop);
}

static PyObject *
server_is_serving(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->serving);
}

/* The sockets, each as a TransportSocket; () once closed. */
static PyObject *
server_get_sockets(ServerObject *self, void *Py_UNUSED(closure))
{
    cio_state *st = self->loop->state;
    PyObject *sockets = self->sockets, *result;
    Py_ssize_t n;

    if (sockets == NULL) {
        return PyTuple_New(0);
    }
    n = PyList_GET_SIZE(sockets);
    result = PyTuple_New(n);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        PyObject *wrapped = cio_transport_socket_new(
            st, PyList_GET_ITEM(sockets, i));
        if (wrapped == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyTuple_SET_ITEM(result, i, wrapped);
    }
    return result;
}

static PyObject *
server_repr(ServerObject *self)
{
    PyObject *sockets = server_get_sockets(self, NULL), *name, *repr;

    name = sockets ? PyType_GetName(Py_TYPE(self)) : NULL;
    repr = name ? PyUnicode_FromFormat("<%U sockets=%R>", name, sockets)
                : NULL;
    Py_XDECREF(name);
    Py_XDECREF(sockets);
    return repr;
}

/* ---- the coroutines ----------------------------------------------------- */

/* Each keeps the server in vars[0]. */
#define CORO_SERVER(coro) ((ServerObject *)(coro)->vars[0])

static CioStepCoroObject *
server_coro_new(ServerObject *self, const char *qualname, cio_step_fn step)
{
    CioStepCoroObject *coro = cio_step_coro_new(self->loop->state, qualname,
                                                step);

    if (coro != NULL) {
        coro->vars[0] = Py_NewRef(self);
    }
    return coro;
}

/* A new future, added to the wait_closed() waiters: NULL without an
 * exception when the server has already woken them. */
static PyObject *
server_add_waiter(ServerObject *self)
{
    PyObject *waiter;

    if (self->waiters == NULL) {
        return NULL;
    }
    waiter = cio_loop_create_future(self->loop);
    if (waiter != NULL && PyList_Append(self->waiters, waiter) < 0) {
        Py_CLEAR(waiter);
    }
    return waiter;
}

/* wait_closed(): until the server is closed and its last connection is
 * gone. */
static cio_step_t
wait_closed_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    ServerObject *self = CORO_SERVER(coro);

    if (value == NULL) {
        return CIO_STEP_ERROR;
    }
    if (coro->state == 0) {
        coro->state = 1;
        /* 3.11 did not wait for the connections of a closed server. */
        if (PY_VERSION_HEX >= 0x030C0000 || self->sockets != NULL) {
            *out = server_add_waiter(self);
            if (*out != NULL) {
                return CIO_STEP_AWAIT;
            }
            if (PyErr_Occurred()) {
                return CIO_STEP_ERROR;
            }
        }
    }
    *out = Py_NewRef(Py_None);
    return CIO_STEP_RETURN;
}

static PyObject *
server_wait_closed(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)server_coro_new(self, "Server.wait_closed",
                                       wait_closed_step);
}

/* start_serving(): _start_serving(), then one loop iteration so that
 * the accepting readers are in place, as asyncio.sleep(0). */
static cio_step_t
start_serving_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    if (value == NULL) {
        return CIO_STEP_ERROR;
    }
    if (coro->state == 0) {
        coro->state = 1;
        if (server_start_serving(CORO_SERVER(coro)) < 0) {
            return CIO_STEP_ERROR;
        }
        *out = Py_NewRef(Py_None);
        return CIO_STEP_YIELD;
    }
    *out = Py_NewRef(Py_None);
    return CIO_STEP_RETURN;
}

static PyObject *
server_start_serving_coro(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)server_coro_new(self, "Server.start_serving",
                                       start_serving_step);
}

enum {
    SERVE_START,
    SERVE_SERVING,   /* awaiting _serving_forever_fut */
    SERVE_CLOSING,   /* cancelled: awaiting wait_closed()'s waiter */
};

/* serve_forever's finally clause. */
static cio_step_t
serve_forever_finally(CioStepCoroObject *coro, cio_step_t rc)
{
    Py_CLEAR(CORO_SERVER(coro)->serving_forever_fut);
    return rc;
}

/* `finally: raise` after the close: the cancellation in vars[1] goes
 * on, unless waiting for the close raised an exception of its own. */
static cio_step_t
serve_forever_reraise(CioStepCoroObject *coro, PyObject *value)
{
    if (value != NULL || !PyErr_Occurred()) {
        cio_restore_exception(Py_NewRef(coro->vars[1]));
    }
    return serve_forever_finally(coro, CIO_STEP_ERROR);
}

/* serve_forever(): serves until cancelled; then closes the server,
 * waits for it to be closed and lets the cancellation through. vars[1]
 * holds the CancelledError meanwhile. */
static cio_step_t
serve_forever_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    ServerObject *self = CORO_SERVER(coro);
    cio_state *st = self->loop->state;

    switch (coro->state) {
    case SERVE_START:
        if (self->serving_forever_fut != NULL) {
            PyErr_Format(PyExc_RuntimeError, "server %R is already being "
                         "awaited on serve_forever()", self);
            return CIO_STEP_ERROR;
        }
        if (self->sockets == NULL) {
            PyErr_Format(PyExc_RuntimeError, "server %R is closed", self);
            return CIO_STEP_ERROR;
        }
        if (server_start_serving(self) < 0) {
            return CIO_STEP_ERROR;
        }
        self->serving_forever_fut = cio_loop_create_future(self->loop);
        if (self->serving_forever_fut == NULL) {
            return CIO_STEP_ERROR;
        }
        coro->state = SERVE_SERVING;
        *out = Py_NewRef(self->serving_forever_fut);
        return CIO_STEP_AWAIT;
    case SERVE_SERVING:
        if (value != NULL) {
            *out = Py_NewRef(Py_None);
            return serve_forever_finally(coro, CIO_STEP_RETURN);
        }
        if (!PyErr_ExceptionMatches(st->cancelled_error)) {
            return serve_forever_finally(coro, CIO_STEP_ERROR);
        }
        coro->vars[1] = cio_fetch_exception();
        coro->state = SERVE_CLOSING;
        if (server_close(self) < 0) {
            return serve_forever_finally(coro, CIO_STEP_ERROR);
        }
#if PY_VERSION_HEX >= 0x030E0000
        /* 3.14 closes the connections too, so a hanging client cannot
         * hold up the wait below. */
        {
            PyObject *r = server_close_clients(self, NULL);
            if (r == NULL) {
                return serve_forever_finally(coro, CIO_STEP_ERROR);
            }
            Py_DECREF(r);
        }
#endif
        if (PY_VERSION_HEX >= 0x030C0000 || self->sockets != NULL) {
            *out = server_add_waiter(self);
            if (*out != NULL) {
                return CIO_STEP_AWAIT;
            }
            if (PyErr_Occurred()) {
                return serve_forever_finally(coro, CIO_STEP_ERROR);
            }
        }
        return serve_forever_reraise(coro, Py_None);  /* woken already */
    default:
        return serve_forever_reraise(coro, value);
    }
}

static PyObject *
server_serve_forever(ServerObject *self, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)server_coro_new(self, "Server.serve_forever",
                                       serve_forever_step);
}

/* ---- the type ----------------------------------------------------------- */

PyObject *
cio_server_new(LoopObject *loop, PyObject *sockets, PyObject *factory,
               PyObject *ssl_context, PyObject *backlog,
               PyObject *handshake_timeout, PyObject *shutdown_timeout)
{
    PyTypeObject *type = loop->state->server_type;
    ServerObject *self = (ServerObject *)type->tp_alloc(type, 0);

    if (self == NULL) {
        return NULL;
    }
    self->loop = (LoopObject *)Py_NewRef(loop);
    self->sockets = Py_NewRef(sockets);
    self->waiters = PyList_New(0);
#if SERVER_TRACKS_CLIENTS
    self->clients = PyDict_New();
    if (self->clients == NULL) {
        Py_DECREF(self);
        return NULL;
    }
#endif
    if (self->waiters == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->protocol_factory = Py_NewRef(factory);
    self->ssl_context = Py_NewRef(ssl_context);
    self->backlog = Py_NewRef(backlog);
    self->handshake_timeout = Py_NewRef(handshake_timeout);
    self->shutdown_timeout = Py_NewRef(shutdown_timeout);
#if CIO_TRANSPORT_CONTEXT
    self->context = PyContext_CopyCurrent();
    if (self->context == NULL) {
        Py_DECREF(self);
        return NULL;
    }
#endif
    return (PyObject *)self;
}

#if SERVER_TRACKS_CLIENTS
#define SERVER_CLIENT_FIELDS(X) X(clients)
#else
#define SERVER_CLIENT_FIELDS(X)
#endif
#if CIO_TRANSPORT_CONTEXT
#define SERVER_CONTEXT_FIELDS(X) X(context)
#else
#define SERVER_CONTEXT_FIELDS(X)
#endif
#define SERVER_FIELDS(X)                                                    \
    X(loop) X(sockets) X(waiters) X(protocol_factory) X(ssl_context)        \
    X(backlog) X(handshake_timeout) X(shutdown_timeout)                     \
    X(serving_forever_fut) SERVER_CLIENT_FIELDS(X) SERVER_CONTEXT_FIELDS(X)

static int
server_traverse(ServerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
#define VISIT(f) Py_VISIT(self->f);
    SERVER_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
server_clear(ServerObject *self)
{
#define CLEAR(f) Py_CLEAR(self->f);
    SERVER_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
server_dealloc(ServerObject *self)
{
    PyObject_GC_UnTrack(self);
    server_clear(self);
    cio_dealloc_end((PyObject *)self);
}

static PyMethodDef server_methods[] = {
    {"close", (PyCFunction)server_close_method, METH_NOARGS,
     "close($self, /)\n--\n\nStop serving; the listening sockets are "
     "closed."},
    {"get_loop", (PyCFunction)server_get_loop, METH_NOARGS,
     "get_loop($self, /)\n--\n\nThe loop the server runs on."},
    {"is_serving", (PyCFunction)server_is_serving, METH_NOARGS,
     "is_serving($self, /)\n--\n\nWhether the server accepts connections."},
    {"start_serving", (PyCFunction)server_start_serving_coro, METH_NOARGS,
     "start_serving($self, /)\n--\n\nCoroutine: start accepting "
     "connections."},
    {"serve_forever", (PyCFunction)server_serve_forever, METH_NOARGS,
     "serve_forever($self, /)\n--\n\nCoroutine: accept connections until "
     "cancelled, then close the server."},
    {"wait_closed", (PyCFunction)server_wait_closed, METH_NOARGS,
     "wait_closed($self, /)\n--\n\nCoroutine: wait until the server is "
     "closed and its connections are gone."},
#if SERVER_TRACKS_CLIENTS
    {"close_clients", (PyCFunction)server_close_clients, METH_NOARGS,
     "close_clients($self, /)\n--\n\nClose every connection's transport."},
    {"abort_clients", (PyCFunction)server_abort_clients, METH_NOARGS,
     "abort_clients($self, /)\n--\n\nAbort every connection's transport."},
#endif
    {"_attach", (PyCFunction)(void (*)(void))server_attach, METH_FASTCALL,
     NULL},
    {"_detach", (PyCFunction)(void (*)(void))server_detach, METH_FASTCALL,
     NULL},
    {"_wakeup", (PyCFunction)server_wakeup_method, METH_NOARGS, NULL},
    {"_start_serving", (PyCFunction)server_start_serving_method, METH_NOARGS,
     NULL},
    {NULL, NULL, 0, NULL},
};

/* stdlib's private attributes, read-only: asyncio's tests and some
 * libraries look at them. */
static PyMemberDef server_members[] = {
    {"_loop", T_OBJECT, offsetof(ServerObject, loop), READONLY, NULL},
    {"_sockets", T_OBJECT, offsetof(ServerObject, sockets), READONLY, NULL},
    {"_waiters", T_OBJECT, offsetof(ServerObject, waiters), READONLY, NULL},
#if !SERVER_TRACKS_CLIENTS
    {"_active_count", T_PYSSIZET, offsetof(ServerObject, active_count),
     READONLY, NULL},
#endif
    {"_protocol_factory", T_OBJECT, offsetof(ServerObject, protocol_factory),
     READONLY, NULL},
    {"_ssl_context", T_OBJECT, offsetof(ServerObject, ssl_context), READONLY,
     NULL},
    {"_backlog", T_OBJECT, offsetof(ServerObject, backlog), READONLY, NULL},
    {"_ssl_handshake_timeout", T_OBJECT,
     offsetof(ServerObject, handshake_timeout), READONLY, NULL},
    {"_ssl_shutdown_timeout", T_OBJECT,
     offsetof(ServerObject, shutdown_timeout), READONLY, NULL},
    {"_serving", T_BOOL, offsetof(ServerObject, serving), READONLY, NULL},
    {"_serving_forever_fut", T_OBJECT,
     offsetof(ServerObject, serving_forever_fut), READONLY, NULL},
#if CIO_TRANSPORT_CONTEXT
    {"_context", T_OBJECT, offsetof(ServerObject, context), READONLY, NULL},
#endif
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef server_getset[] = {
    {"sockets", (getter)server_get_sockets, NULL,
     "The listening sockets, as TransportSockets; () once closed.", NULL},
#if SERVER_TRACKS_CLIENTS
    {"_clients", (getter)server_get_clients, NULL,
     "stdlib's private WeakSet of the connections' transports (a copy).",
     NULL},
#endif
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot server_slots[] = {
    {Py_tp_repr, server_repr},
    {Py_tp_methods, server_methods},
    {Py_tp_members, server_members},
    {Py_tp_getset, server_getset},
    {Py_tp_traverse, server_traverse},
    {Py_tp_clear, server_clear},
    {Py_tp_dealloc, server_dealloc},
    {Py_tp_doc, "The state and methods of casyncio's Server."},
    {0, NULL},
};

PyType_Spec cio_server_base_spec = {
    .name = "casyncio._casyncio.ServerBase",
    .basicsize = sizeof(ServerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = server_slots,
};

int
cio_server_type_init(PyObject *module, cio_state *st, PyObject *server_base)
{
    PyObject *abstract = NULL, *bases = NULL, *ns = NULL, *type = NULL;
    int rc = -1;

    abstract = PyObject_GetAttrString(st->events_module, "AbstractServer");
    bases = abstract ? PyTuple_Pack(2, server_base, abstract) : NULL;
    ns = bases ? Py_BuildValue("{ssss}", "__module__", "casyncio._casyncio",
                               "__doc__", "Server(...): what create_server "
                               "and create_unix_server return.")
               : NULL;
    type = ns ? PyObject_CallFunction((PyObject *)&PyType_Type, "sOO",
                                      "Server", bases, ns)
              : NULL;
    if (type != NULL && PyModule_AddObjectRef(module, "Server", type) == 0) {
        st->server_type = (PyTypeObject *)Py_NewRef(type);
        rc = 0;
    }
    Py_XDECREF(abstract);
    Py_XDECREF(bases);
    Py_XDECREF(ns);
    Py_XDECREF(type);
    return rc;
}
