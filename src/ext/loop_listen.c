/* The loop's create_server and create_unix_server: base_events' and
 * unix_events' coroutines of those names, written in C as
 * StepCoroutines, with each Python version's checks, errors and logs.
 *
 * create_server resolves its hosts -- numeric addresses at once, names
 * through the loop's _create_server_getaddrinfo, gathered as stdlib does
 * -- makes and binds a listening socket for each distinct address, and
 * returns a Server (server.c) that, unless start_serving=False, accepts
 * from the next loop iteration on. create_unix_server binds a Unix
 * socket, removing a stale socket file first. */
#include "casyncio.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>

/* The arguments a create_server coroutine keeps in vars[ARGS], a tuple,
 * in this order. */
enum {
    ARG_FACTORY,
    ARG_HOST,
    ARG_PORT,
    ARG_FAMILY,
    ARG_FLAGS,
    ARG_SOCK,
    ARG_BACKLOG,
    ARG_SSL,
    ARG_REUSE_ADDRESS,
    ARG_REUSE_PORT,
    ARG_KEEP_ALIVE,
    ARG_HANDSHAKE_TIMEOUT,
    ARG_SHUTDOWN_TIMEOUT,
    ARG_START_SERVING,
    ARG_COUNT,
};

/* vars of a create_server or create_unix_server coroutine */
enum {
    VAR_LOOP,      /* the loop */
    VAR_ARGS,      /* the tuple above */
    VAR_SERVER,    /* the Server, once made */
};

enum {
    LISTEN_START,
    LISTEN_RESOLVING,  /* awaiting the gathered getaddrinfo results */
    LISTEN_SERVING,    /* after the one iteration's pause */
};

#define CORO_LOOP(coro) ((LoopObject *)(coro)->vars[VAR_LOOP])
#define CORO_ARG(coro, i) PyTuple_GET_ITEM((coro)->vars[VAR_ARGS], (i))

/* ---- shared by both ----------------------------------------------------- */

/* The TLS argument checks both coroutines start with; any_ssl is how
 * each tests for ssl (create_server: `is None`, create_unix_server:
 * truth). */
static int
check_tls_arguments(PyObject *ssl, int any_ssl, PyObject *handshake_timeout,
                    PyObject *shutdown_timeout)
{
    if (PyBool_Check(ssl)) {
        PyErr_SetString(PyExc_TypeError,
                        "ssl argument must be an SSLContext or None");
        return -1;
    }
    if (handshake_timeout != Py_None && !any_ssl) {
        PyErr_SetString(PyExc_ValueError,
                        "ssl_handshake_timeout is only meaningful with ssl");
        return -1;
    }
    if (shutdown_timeout != Py_None && !any_ssl) {
        PyErr_SetString(PyExc_ValueError,
                        "ssl_shutdown_timeout is only meaningful with ssl");
        return -1;
    }
    return 0;
}

/* socket.socket as the stdlib module's code would call it: through that
 * module's global `socket`, which asyncio's tests replace. */
PyObject *
cio_stdlib_socket_constructor(cio_state *st, PyObject *stdlib_module)
{
    PyObject *socket_module = PyObject_GetAttr(stdlib_module,
                                               CIO_NAME(st, socket));
    PyObject *ctor = socket_module
                         ? PyObject_GetAttr(socket_module,
                                            CIO_NAME(st, socket))
                         : NULL;

    Py_XDECREF(socket_module);
    return ctor;
}

/* An OSError's errno as a C int; -1 when it has none (OSError() itself)
 * or it is not an int. */
static int
oserror_errno(PyObject *exc)
{
    PyObject *value = ((PyOSErrorObject *)exc)->myerrno;  // borrowed
    long errnum = value && PyLong_Check(value) ? PyLong_AsLong(value) : -1;

    if (errnum == -1 && PyErr_Occurred()) {
        PyErr_Clear();
    }
    return (int)errnum;
}

/* sock.<attribute> != value, as Python compares them: 1, 0, or -1. */
static int
attribute_differs(PyObject *sock, const char *attribute, long value)
{
    PyObject *actual = PyObject_GetAttrString(sock, attribute);
    PyObject *expected = actual ? PyLong_FromLong(value) : NULL;
    int rc = expected ? PyObject_RichCompareBool(actual, expected, Py_NE)
                      : -1;

    Py_XDECREF(actual);
    Py_XDECREF(expected);
    return rc;
}

static int
set_nonblocking(cio_state *st, PyObject *sock)
{
    PyObject *no = Py_False;
    PyObject *res = cio_call_method(st, sock, CIO_NAME_setblocking, &no, 1);

    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* The Server over sockets, in vars[VAR_SERVER]. When start_serving is
 * true it starts serving and the coroutine yields for one loop
 * iteration (CIO_STEP_YIELD); else CIO_STEP_RETURN, *out left alone. */
static cio_step_t
make_server(CioStepCoroObject *coro, PyObject *sockets, PyObject *factory,
            PyObject *ssl, PyObject *backlog, PyObject *handshake_timeout,
            PyObject *shutdown_timeout, PyObject *start_serving,
            PyObject **out)
{
    LoopObject *loop = CORO_LOOP(coro);
    PyObject *server, *res;
    int start;

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sockets); i++) {
        if (set_nonblocking(loop->state, PyList_GET_ITEM(sockets, i)) < 0) {
            return CIO_STEP_ERROR;
        }
    }
    server = cio_server_new(loop, sockets, factory, ssl, backlog,
                            handshake_timeout, shutdown_timeout);
    if (server == NULL) {
        return CIO_STEP_ERROR;
    }
    coro->vars[VAR_SERVER] = server;
    coro->state = LISTEN_SERVING;
    start = PyObject_IsTrue(start_serving);
    if (start < 0) {
        return CIO_STEP_ERROR;
    }
    if (start) {
        res = PyObject_CallMethod(server, "_start_serving", NULL);
        if (res == NULL) {
            return CIO_STEP_ERROR;
        }
        Py_DECREF(res);
        /* asyncio.sleep(0), so that the accepting readers go in. */
        *out = Py_NewRef(Py_None);
        return CIO_STEP_YIELD;
    }
    return CIO_STEP_RETURN;  /* the caller returns the server */
}

/* The coroutine's argument tuple: a[i], or the int defaults[i] where
 * a[i] is NULL (not given). */
static PyObject *
args_tuple(PyObject *const *a, int n, const long *defaults)
{
    PyObject *args = PyTuple_New(n);

    for (int i = 0; args != NULL && i < n; i++) {
        PyObject *v = a[i] ? Py_NewRef(a[i]) : PyLong_FromLong(defaults[i]);
        if (v == NULL) {
            Py_CLEAR(args);
            break;
        }
        PyTuple_SET_ITEM(args, i, v);
    }
    return args;
}

CioStepCoroObject *
cio_loop_call_coro_new(LoopObject *loop, const char *qualname,
                       cio_step_fn step, PyObject *const *a, int n,
                       const long *defaults)
{
    CioStepCoroObject *coro = cio_step_coro_new(loop->state, qualname, step);

    if (coro == NULL) {
        return NULL;
    }
    coro->vars[0] = Py_NewRef(loop);
    coro->vars[1] = args_tuple(a, n, defaults);
    if (coro->vars[1] == NULL) {
        Py_DECREF(coro);
        return NULL;
    }
    return coro;
}

/* ---- create_server ------------------------------------------------------ */

/* The resolved addresses of host, at once: a one-entry list when host is
 * a numeric address, None when it needs getaddrinfo. */
static PyObject *
numeric_host_infos(cio_state *st, PyObject *host, PyObject *port,
                   PyObject *family)
{
    long ints[3] = {PyLong_Check(family) ? PyLong_AsLong(family) : -1,
                    SOCK_STREAM, 0};
    PyObject *address, *sockaddr, *infos;
    int af = 0;

    if (ints[0] == -1) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (host == Py_None) {
        Py_RETURN_NONE;
    }
    address = PyTuple_Pack(2, host, port);
    if (address == NULL) {
        return NULL;
    }
    sockaddr = cio_numeric_sockaddr(address, ints, &af);
    Py_DECREF(address);
    if (sockaddr == NULL || sockaddr == Py_None) {
        return sockaddr;
    }
    infos = cio_numeric_infos(st, family, af, 0, sockaddr);
    Py_DECREF(sockaddr);
    return infos;
}

/* stdlib's list of hosts: [None] for '', [host] for a str or a
 * non-iterable, else host's items. */
static PyObject *
host_list(PyObject *host)
{
    PyObject *iter;

    if (PyUnicode_Check(host) && PyUnicode_GET_LENGTH(host) == 0) {
        return Py_BuildValue("[O]", Py_None);
    }
    if (PyUnicode_Check(host)) {
        return Py_BuildValue("[O]", host);
    }
    iter = PyObject_GetIter(host);
    if (iter == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return NULL;
        }
        PyErr_Clear();
        return Py_BuildValue("[O]", host);
    }
    Py_DECREF(iter);
    return PySequence_List(host);
}

/* Every host's infos: a list of lists when each host is numeric; else
 * gather() over loop._create_server_getaddrinfo for each, as stdlib. */
static PyObject *
resolve_hosts(CioStepCoroObject *coro, PyObject *hosts, int *awaitable)
{
    LoopObject *loop = CORO_LOOP(coro);
    cio_state *st = loop->state;
    PyObject *port = CORO_ARG(coro, ARG_PORT);
    PyObject *family = CORO_ARG(coro, ARG_FAMILY);
    Py_ssize_t n = PyList_GET_SIZE(hosts);
    PyObject *results = PyList_New(n), *coros, *kwnames, *gathered;

    *awaitable = 0;
    for (Py_ssize_t i = 0; results != NULL && i < n; i++) {
        PyObject *infos = numeric_host_infos(st, PyList_GET_ITEM(hosts, i),
                                             port, family);
        if (infos == NULL) {
            Py_CLEAR(results);
        }
        else if (infos == Py_None) {
            Py_DECREF(infos);
            Py_CLEAR(results);
            *awaitable = 1;
            break;
        }
        else {
            PyList_SET_ITEM(results, i, infos);
        }
    }
    if (!*awaitable) {
        return results;
    }
    coros = PyTuple_New(n);
    kwnames = coros ? Py_BuildValue("(ss)", "family", "flags") : NULL;
    for (Py_ssize_t i = 0; kwnames != NULL && i < n; i++) {
        PyObject *stack[5] = {(PyObject *)loop, PyList_GET_ITEM(hosts, i),
                              port, family, CORO_ARG(coro, ARG_FLAGS)};
        PyObject *one = PyObject_VectorcallMethod(
            CIO_NAME(st, _create_server_getaddrinfo), stack, 3, kwnames);
        if (one == NULL) {
            Py_CLEAR(kwnames);
            break;
        }
        PyTuple_SET_ITEM(coros, i, one);
    }
    gathered = kwnames ? PyObject_Call(st->gather, coros, NULL) : NULL;
    Py_XDECREF(coros);
    Py_XDECREF(kwnames);
    return gathered;
}

int
cio_set_int_option(cio_state *st, PyObject *sock, int level, int option,
                   int value)
{
    PyObject *args[3] = {PyLong_FromLong(level), PyLong_FromLong(option),
                         value == -1 ? Py_NewRef(Py_True)
                                     : PyLong_FromLong(value)};
    PyObject *res = NULL;

    if (args[0] && args[1] && args[2]) {
        res = cio_call_method(st, sock, CIO_NAME_setsockopt, args, 3);
    }
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(args[i]);
    }
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* base_events._set_reuseport. */
int
cio_set_reuse_port(cio_state *st, PyObject *sock)
{
#ifdef SO_REUSEPORT
    if (cio_set_int_option(st, sock, SOL_SOCKET, SO_REUSEPORT, 1) == 0) {
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_OSError)) {
        return -1;
    }
    PyErr_Clear();
    PyErr_SetString(PyExc_ValueError,
                    "reuse_port not supported by socket module, "
                    "SO_REUSEPORT defined but not implemented.");
#else
    PyErr_SetString(PyExc_ValueError,
                    "reuse_port not supported by socket module");
#endif
    return -1;
}

/* The options create_server sets on a new listening socket. */
static int
set_listen_options(CioStepCoroObject *coro, PyObject *sock, long af)
{
    cio_state *st = CORO_LOOP(coro)->state;
    int reuse_address, reuse_port, keep_alive;

    if ((reuse_address = PyObject_IsTrue(
             CORO_ARG(coro, ARG_REUSE_ADDRESS))) < 0 ||
        (reuse_port = PyObject_IsTrue(CORO_ARG(coro, ARG_REUSE_PORT))) < 0 ||
        (keep_alive = PyObject_IsTrue(CORO_ARG(coro, ARG_KEEP_ALIVE))) < 0) {
        return -1;
    }
    if (reuse_address &&
        cio_set_int_option(st, sock, SOL_SOCKET, SO_REUSEADDR, -1) < 0) {
        return -1;
    }
    if (reuse_port && cio_set_reuse_port(st, sock) < 0) {
        return -1;
    }
    if (keep_alive &&
        cio_set_int_option(st, sock, SOL_SOCKET, SO_KEEPALIVE, -1) < 0) {
        return -1;
    }
    /* IPv6 sockets would take IPv4 connections too (Linux's default),
     * and clash with the IPv4 socket for the same port. */
    if (af == AF_INET6 &&
        cio_set_int_option(st, sock, IPPROTO_IPV6, IPV6_V6ONLY, -1) < 0) {
        return -1;
    }
    return 0;
}

/* The OSError stdlib raises `from None` when bind() fails: 'error while
 * attempting to bind on address ...'. 1 when (3.13+) the address is not
 * available and is to be skipped, the message logged in debug mode; -1
 * with the error raised otherwise. */
static int
bind_failed(LoopObject *loop, PyObject *sockaddr)
{
    PyObject *err = cio_fetch_exception(), *errnum, *reason, *lower, *msg;
    PyObject *exc;

    errnum = PyObject_GetAttrString(err, "errno");
#if PY_VERSION_HEX >= 0x030D0000
    reason = errnum ? PyObject_Str(err) : NULL;
#else
    reason = errnum ? PyObject_GetAttrString(err, "strerror") : NULL;
#endif
    Py_DECREF(err);
    lower = reason ? PyObject_CallMethod(reason, "lower", NULL) : NULL;
    Py_XDECREF(reason);
    msg = lower ? PyUnicode_FromFormat("error while attempting to bind on "
                                       "address %R: %S", sockaddr, lower)
                : NULL;
    Py_XDECREF(lower);
    if (msg == NULL) {
        Py_XDECREF(errnum);
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    /* The family is likely not enabled (bpo-30945). */
    if (PyLong_Check(errnum) && PyLong_AsLong(errnum) == EADDRNOTAVAIL) {
        int rc = loop->debug ? cio_log(loop->state, "warning", msg, Py_False)
                             : 0;
        Py_DECREF(msg);
        Py_DECREF(errnum);
        return rc < 0 ? -1 : 1;
    }
#else
    (void)loop;
#endif
    exc = PyObject_CallFunctionObjArgs(PyExc_OSError, errnum, msg, NULL);
    Py_DECREF(msg);
    Py_DECREF(errnum);
    if (exc != NULL) {
        PyException_SetCause(exc, NULL);  /* `from None` */
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* A listening socket for one address, appended to sockets; 0 also when
 * the address is skipped (the socket cannot be made, or, 3.13+, the
 * address is not available). */
static int
listen_on(CioStepCoroObject *coro, PyObject *info, PyObject *sockets)
{
    LoopObject *loop = CORO_LOOP(coro);
    cio_state *st = loop->state;
    PyObject *af, *type, *proto, *sockaddr, *ctor, *sock, *res;
    long family;

    if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 5) {
        PyErr_Format(PyExc_ValueError, "expected a getaddrinfo 5-tuple, "
                     "got %R", info);
        return -1;
    }
    af = PyTuple_GET_ITEM(info, 0);
    type = PyTuple_GET_ITEM(info, 1);
    proto = PyTuple_GET_ITEM(info, 2);
    sockaddr = PyTuple_GET_ITEM(info, 4);
    ctor = cio_stdlib_socket_constructor(st, st->base_events_module);
    if (ctor == NULL) {
        return -1;
    }
    sock = PyObject_CallFunctionObjArgs(ctor, af, type, proto, NULL);
    Py_DECREF(ctor);
    if (sock == NULL) {
        /* Likely a family, type and protocol that do not go together. */
        if (!PyErr_ExceptionMatches(PyExc_OSError)) {
            return -1;
        }
        if (!loop->debug) {
            PyErr_Clear();
            return 0;
        }
        {
            PyObject *exc = cio_fetch_exception();
            PyObject *msg = PyUnicode_FromFormat(
                "create_server() failed to create socket.socket(%R, %R, %R)",
                af, type, proto);
            int rc = msg ? cio_log(st, "warning", msg, exc) : -1;
            Py_XDECREF(msg);
            Py_DECREF(exc);
            return rc;
        }
    }
    if (PyList_Append(sockets, sock) < 0) {
        Py_DECREF(sock);
        return -1;
    }
    family = PyLong_AsLong(af);
    if ((family == -1 && PyErr_Occurred()) ||
        set_listen_options(coro, sock, family) < 0) {
        Py_DECREF(sock);
        return -1;
    }
    res = cio_call_method(st, sock, CIO_NAME_bind, &sockaddr, 1);
    if (res != NULL) {
        Py_DECREF(res);
        Py_DECREF(sock);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_OSError)) {
        Py_DECREF(sock);
        return -1;
    }
    switch (bind_failed(loop, sockaddr)) {
    case 1:  /* skipped: the socket goes */
        res = PySequence_DelItem(sockets, PyList_GET_SIZE(sockets) - 1) < 0
                  ? NULL
                  : cio_call_method(st, sock, CIO_NAME_close, NULL, 0);
        Py_DECREF(sock);
        Py_XDECREF(res);
        return res ? 0 : -1;
    default:
        Py_DECREF(sock);
        return -1;
    }
}

/* Closes sock, or every socket of a list of them, the exception being
 * raised kept. */
static void
close_sockets(cio_state *st, PyObject *sockets)
{
    PyObject *exc = cio_fetch_exception();
    int list = PyList_Check(sockets);
    Py_ssize_t n = list ? PyList_GET_SIZE(sockets) : 1;

    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *sock = list ? PyList_GET_ITEM(sockets, i) : sockets;
        PyObject *res = cio_call_method(st, sock, CIO_NAME_close, NULL, 0);
        if (res == NULL) {
            PyErr_WriteUnraisable(sock);
        }
        Py_XDECREF(res);
    }
    cio_restore_exception(exc);
}

/* The listening sockets for the resolved addresses: a list, each socket
 * bound; none left open on failure. */
static PyObject *
bind_all(CioStepCoroObject *coro, PyObject *results)
{
    cio_state *st = CORO_LOOP(coro)->state;
    PyObject *infos = PySet_New(NULL), *sockets = NULL, *iter, *info;

    /* A set, as stdlib's: an address two hosts resolve to is bound
     * once. */
    for (Py_ssize_t i = 0; infos != NULL && i < PyList_GET_SIZE(results);
         i++) {
        PyObject *one = PyList_GET_ITEM(results, i);  // borrowed
        iter = PyObject_GetIter(one);
        while (iter != NULL && (info = PyIter_Next(iter)) != NULL) {
            int rc = PySet_Add(infos, info);
            Py_DECREF(info);
            if (rc < 0) {
                break;
            }
        }
        Py_XDECREF(iter);
        if (PyErr_Occurred()) {
            Py_CLEAR(infos);
        }
    }
    sockets = infos ? PyList_New(0) : NULL;
    iter = sockets ? PyObject_GetIter(infos) : NULL;
    if (iter == NULL) {
        goto fail;
    }
    while ((info = PyIter_Next(iter)) != NULL) {
        int rc = listen_on(coro, info, sockets);
        Py_DECREF(info);
        if (rc < 0) {
            break;
        }
    }
    Py_DECREF(iter);
    if (PyErr_Occurred()) {
        goto fail;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (PyList_GET_SIZE(sockets) == 0) {
        PyObject *addresses = PyList_New(0);
        iter = addresses ? PyObject_GetIter(infos) : NULL;
        while (iter != NULL && (info = PyIter_Next(iter)) != NULL) {
            int rc = PyList_Append(addresses, PyTuple_GET_ITEM(info, 4));
            Py_DECREF(info);
            if (rc < 0) {
                break;
            }
        }
        Py_XDECREF(iter);
        if (addresses != NULL && !PyErr_Occurred()) {
            PyErr_Format(PyExc_OSError,
                         "could not bind on any address out of %R",
                         addresses);
        }
        Py_XDECREF(addresses);
        goto fail;
    }
#endif
    Py_DECREF(infos);
    return sockets;

fail:
    if (sockets != NULL) {
        close_sockets(st, sockets);
    }
    Py_XDECREF(sockets);
    Py_XDECREF(infos);
    return NULL;
}

static cio_step_t
serve_sockets(CioStepCoroObject *coro, PyObject *sockets, PyObject **out)
{
    return make_server(coro, sockets, CORO_ARG(coro, ARG_FACTORY),
                       CORO_ARG(coro, ARG_SSL), CORO_ARG(coro, ARG_BACKLOG),
                       CORO_ARG(coro, ARG_HANDSHAKE_TIMEOUT),
                       CORO_ARG(coro, ARG_SHUTDOWN_TIMEOUT),
                       CORO_ARG(coro, ARG_START_SERVING), out);
}

/* create_server's checks, in stdlib's order; then its addresses resolved
 * (RESOLVING when that awaits) or the given socket served. */
static cio_step_t
create_server_start(CioStepCoroObject *coro, PyObject **out)
{
    cio_state *st = CORO_LOOP(coro)->state;
    PyObject *host = CORO_ARG(coro, ARG_HOST);
    PyObject *sock = CORO_ARG(coro, ARG_SOCK), *hosts, *results, *sockets;
    cio_step_t rc;
    int awaitable, wrong;

    if (check_tls_arguments(CORO_ARG(coro, ARG_SSL),
                            CORO_ARG(coro, ARG_SSL) != Py_None,
                            CORO_ARG(coro, ARG_HANDSHAKE_TIMEOUT),
                            CORO_ARG(coro, ARG_SHUTDOWN_TIMEOUT)) < 0) {
        return CIO_STEP_ERROR;
    }
    if (sock != Py_None && cio_check_not_ssl_socket(st, sock) < 0) {
        return CIO_STEP_ERROR;
    }
    if (host == Py_None && CORO_ARG(coro, ARG_PORT) == Py_None) {
        if (sock == Py_None) {
            PyErr_SetString(PyExc_ValueError,
                            "Neither host/port nor sock were specified");
            return CIO_STEP_ERROR;
        }
        wrong = attribute_differs(sock, "type", SOCK_STREAM);
        if (wrong != 0) {
            if (wrong > 0) {
                PyErr_Format(PyExc_ValueError,
                             "A Stream Socket was expected, got %R", sock);
            }
            return CIO_STEP_ERROR;
        }
        sockets = Py_BuildValue("[O]", sock);
        if (sockets == NULL) {
            return CIO_STEP_ERROR;
        }
        rc = serve_sockets(coro, sockets, out);
        Py_DECREF(sockets);
        return rc;
    }
    if (sock != Py_None) {
        PyErr_SetString(PyExc_ValueError,
                        "host/port and sock can not be specified at the "
                        "same time");
        return CIO_STEP_ERROR;
    }
    hosts = host_list(host);
    if (hosts == NULL) {
        return CIO_STEP_ERROR;
    }
    results = resolve_hosts(coro, hosts, &awaitable);
    Py_DECREF(hosts);
    if (results == NULL) {
        return CIO_STEP_ERROR;
    }
    coro->state = LISTEN_RESOLVING;
    if (awaitable) {
        *out = results;
        return CIO_STEP_AWAIT;
    }
    sockets = bind_all(coro, results);
    Py_DECREF(results);
    if (sockets == NULL) {
        return CIO_STEP_ERROR;
    }
    rc = serve_sockets(coro, sockets, out);
    Py_DECREF(sockets);
    return rc;
}

/* The server's result: logged in debug mode, as stdlib does. */
static cio_step_t
listen_done(CioStepCoroObject *coro, int log, PyObject **out)
{
    PyObject *server = coro->vars[VAR_SERVER];

    if (log && CORO_LOOP(coro)->debug) {
        PyObject *res = PyObject_CallMethod(CORO_LOOP(coro)->state->logger,
                                            "info", "sO", "%r is serving",
                                            server);
        if (res == NULL) {
            return CIO_STEP_ERROR;
        }
        Py_DECREF(res);
    }
    *out = Py_NewRef(server);
    return CIO_STEP_RETURN;
}

static cio_step_t
create_server_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    PyObject *sockets;
    cio_step_t rc;

    if (value == NULL) {
        return CIO_STEP_ERROR;
    }
    switch (coro->state) {
    case LISTEN_START:
        rc = create_server_start(coro, out);
        break;
    case LISTEN_RESOLVING:
        if (!PyList_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "gather() gave no list");
            return CIO_STEP_ERROR;
        }
        sockets = bind_all(coro, value);
        if (sockets == NULL) {
            return CIO_STEP_ERROR;
        }
        rc = serve_sockets(coro, sockets, out);
        Py_DECREF(sockets);
        break;
    default:
        return listen_done(coro, 1, out);
    }
    /* Not serving yet: done at once. */
    return rc == CIO_STEP_RETURN ? listen_done(coro, 1, out) : rc;
}

/* create_server(protocol_factory, host=None, port=None, *,
 *     family=AF_UNSPEC, flags=AI_PASSIVE, sock=None, backlog=100,
 *     ssl=None, reuse_address=None, reuse_port=None, keep_alive=None,
 *     ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
 *     start_serving=True); keep_alive from 3.13. */
static PyObject *
loop_create_server(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "protocol_factory", "host", "port", "family", "flags", "sock",
        "backlog", "ssl", "reuse_address", "reuse_port",
#if PY_VERSION_HEX >= 0x030D0000
        "keep_alive",
#endif
        "ssl_handshake_timeout", "ssl_shutdown_timeout", "start_serving",
        NULL};
    long defaults[ARG_COUNT] = {[ARG_FAMILY] = AF_UNSPEC,
                                [ARG_FLAGS] = AI_PASSIVE,
                                [ARG_BACKLOG] = 100};
    PyObject *a[ARG_COUNT];
    CioStepCoroObject *coro;

    for (int i = 0; i < ARG_COUNT; i++) {
        a[i] = Py_None;
    }
    a[ARG_FAMILY] = a[ARG_FLAGS] = a[ARG_BACKLOG] = NULL;
    a[ARG_START_SERVING] = Py_True;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs,
#if PY_VERSION_HEX >= 0x030D0000
            "O|OO$OOOOOOOOOOO:create_server",
#else
            "O|OO$OOOOOOOOOO:create_server",
#endif
            kwlist, &a[ARG_FACTORY], &a[ARG_HOST], &a[ARG_PORT],
            &a[ARG_FAMILY], &a[ARG_FLAGS], &a[ARG_SOCK], &a[ARG_BACKLOG],
            &a[ARG_SSL], &a[ARG_REUSE_ADDRESS], &a[ARG_REUSE_PORT],
#if PY_VERSION_HEX >= 0x030D0000
            &a[ARG_KEEP_ALIVE],
#endif
            &a[ARG_HANDSHAKE_TIMEOUT], &a[ARG_SHUTDOWN_TIMEOUT],
            &a[ARG_START_SERVING])) {
        return NULL;
    }
    coro = cio_loop_call_coro_new(self, "Loop.create_server",
                                  create_server_step, a, ARG_COUNT,
                                  defaults);
    if (coro == NULL) {
        return NULL;
    }
    /* reuse_address=None means SO_REUSEADDR on POSIX. */
    if (a[ARG_REUSE_ADDRESS] == Py_None) {
        Py_SETREF(PyTuple_GET_ITEM(coro->vars[VAR_ARGS], ARG_REUSE_ADDRESS),
                  Py_NewRef(Py_True));
    }
    return (PyObject *)coro;
}

/* ---- create_unix_server ------------------------------------------------- */

/* vars[VAR_ARGS] of a create_unix_server coroutine */
enum {
    UARG_FACTORY,
    UARG_PATH,
    UARG_SOCK,
    UARG_BACKLOG,
    UARG_SSL,
    UARG_HANDSHAKE_TIMEOUT,
    UARG_SHUTDOWN_TIMEOUT,
    UARG_START_SERVING,
    UARG_CLEANUP_SOCKET,
    UARG_COUNT,
};

/* Whether a Unix socket address (str or bytes) names the abstract
 * namespace: its first character is NUL. IndexError for an empty one,
 * as stdlib's path[0]. */
int
cio_is_abstract_unix_address(PyObject *path)
{
    PyObject *first = PySequence_GetItem(path, 0);
    int abstract;

    if (first == NULL) {
        return -1;
    }
    abstract = PyLong_Check(first) ? PyLong_AsLong(first) == 0
               : PyUnicode_Check(first)
                   ? PyUnicode_READ_CHAR(first, 0) == 0
                   : 0;
    Py_DECREF(first);
    return abstract;
}

/* A stale socket file at path goes, so that bind() can make a new one;
 * other files stay, and a failure to look is logged, as in stdlib. */
int
cio_remove_stale_unix_socket(cio_state *st, PyObject *path)
{
    PyObject *bytes, *msg, *exc;
    struct stat info;
    int rc;

    if (!PyUnicode_FSConverter(path, &bytes)) {
        return -1;
    }
    rc = stat(PyBytes_AS_STRING(bytes), &info);
    if (rc == 0 && S_ISSOCK(info.st_mode)) {
        rc = unlink(PyBytes_AS_STRING(bytes));
    }
    Py_DECREF(bytes);
    if (rc == 0 || errno == ENOENT) {
        return 0;
    }
    /* The directory may allow only the creation of the socket. */
    exc = PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path)
              ? NULL : cio_fetch_exception();
    msg = exc ? PyUnicode_FromFormat("Unable to check or remove stale UNIX "
                                     "socket %R: %R", path, exc)
              : NULL;
    Py_XDECREF(exc);
    rc = msg ? cio_log(st, "error", msg, Py_False) : -1;
    Py_XDECREF(msg);
    return rc;
}

/* sock.bind(path), closing sock if it fails; EADDRINUSE names the
 * path. */
static int
bind_unix(cio_state *st, PyObject *sock, PyObject *path)
{
    PyObject *res = cio_call_method(st, sock, CIO_NAME_bind, &path, 1);
    PyObject *exc, *msg;
    int in_use;

    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    exc = cio_fetch_exception();
    res = cio_call_method(st, sock, CIO_NAME_close, NULL, 0);
    if (res == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    Py_DECREF(res);
    in_use = PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError) &&
             oserror_errno(exc) == EADDRINUSE;
    if (!in_use) {
        cio_restore_exception(exc);
        return -1;
    }
    Py_DECREF(exc);
    msg = PyUnicode_FromFormat("Address %R is already in use", path);
    exc = msg ? PyObject_CallFunction(PyExc_OSError, "iN", EADDRINUSE, msg)
              : NULL;
    if (exc != NULL) {
        PyException_SetCause(exc, NULL);  /* `from None` */
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* A new Unix stream socket bound to path (os.fspath'd), a stale socket
 * file there removed first. */
static PyObject *
unix_listening_socket(cio_state *st, PyObject *path)
{
    PyObject *ctor, *sock;
    int abstract = cio_is_abstract_unix_address(path);

    if (abstract < 0) {
        return NULL;
    }
    ctor = cio_stdlib_socket_constructor(st, st->unix_events_module);
    sock = ctor ? PyObject_CallFunctionObjArgs(ctor, st->af_unix,
                                               st->sock_stream, NULL)
                : NULL;
    Py_XDECREF(ctor);
    if (sock == NULL) {
        return NULL;
    }
    if (!abstract && cio_remove_stale_unix_socket(st, path) < 0) {
        close_sockets(st, sock);
        Py_DECREF(sock);
        return NULL;
    }
    if (bind_unix(st, sock, path) < 0) {  /* closed it */
        Py_DECREF(sock);
        return NULL;
    }
    return sock;
}

#if PY_VERSION_HEX >= 0x030D0000
/* Notes the inode of sock's socket file, so that closing the server
 * removes the file unless another has replaced it (loop_server.c). */
static int
note_socket_file(LoopObject *loop, PyObject *sock)
{
    cio_state *st = loop->state;
    PyObject *path = cio_call_method(st, sock, CIO_NAME_getsockname, NULL, 0);
    PyObject *bytes = NULL, *inode;
    struct stat info;
    int abstract = path ? cio_is_abstract_unix_address(path) : -1, rc = -1;

    if (abstract != 0) {
        Py_XDECREF(path);
        return abstract < 0 ? -1 : 0;
    }
    if (!PyUnicode_FSConverter(path, &bytes)) {
        Py_DECREF(path);
        return -1;
    }
    if (stat(PyBytes_AS_STRING(bytes), &info) == 0) {
        inode = PyLong_FromUnsignedLongLong(info.st_ino);
        rc = inode ? PyDict_SetItem(loop->unix_server_sockets, sock, inode)
                   : -1;
        Py_XDECREF(inode);
    }
    else if (errno == ENOENT) {
        rc = 0;
    }
    else {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    }
    Py_DECREF(bytes);
    Py_DECREF(path);
    return rc;
}
#endif

/* create_unix_server's checks, in stdlib's order, then the socket bound
 * to path or the one given, served. */
static cio_step_t
create_unix_server_start(CioStepCoroObject *coro, PyObject **out)
{
    LoopObject *loop = CORO_LOOP(coro);
    cio_state *st = loop->state;
    PyObject *path = CORO_ARG(coro, UARG_PATH);
    PyObject *sock = CORO_ARG(coro, UARG_SOCK), *sockets;
    int ssl = PyObject_IsTrue(CORO_ARG(coro, UARG_SSL)), wrong;
    cio_step_t rc;

    if (ssl < 0 ||
        check_tls_arguments(CORO_ARG(coro, UARG_SSL), ssl,
                            CORO_ARG(coro, UARG_HANDSHAKE_TIMEOUT),
                            CORO_ARG(coro, UARG_SHUTDOWN_TIMEOUT)) < 0) {
        return CIO_STEP_ERROR;
    }
    if (path != Py_None) {
        if (sock != Py_None) {
            PyErr_SetString(PyExc_ValueError, "path and sock can not be "
                                              "specified at the same time");
            return CIO_STEP_ERROR;
        }
        path = PyOS_FSPath(path);
        sock = path ? unix_listening_socket(st, path) : NULL;
        Py_XDECREF(path);
        if (sock == NULL) {
            return CIO_STEP_ERROR;
        }
    }
    else {
        if (sock == Py_None) {
            PyErr_SetString(PyExc_ValueError,
                            "path was not specified, and no sock specified");
            return CIO_STEP_ERROR;
        }
        wrong = attribute_differs(sock, "family", AF_UNIX);
        if (wrong == 0) {
            wrong = attribute_differs(sock, "type", SOCK_STREAM);
        }
        if (wrong != 0) {
            if (wrong > 0) {
                PyErr_Format(PyExc_ValueError, "A UNIX Domain Stream Socket "
                             "was expected, got %R", sock);
            }
            return CIO_STEP_ERROR;
        }
        Py_INCREF(sock);
    }
#if PY_VERSION_HEX >= 0x030D0000
    {
        int cleanup = PyObject_IsTrue(CORO_ARG(coro, UARG_CLEANUP_SOCKET));
        if (cleanup < 0 || (cleanup && note_socket_file(loop, sock) < 0)) {
            Py_DECREF(sock);
            return CIO_STEP_ERROR;
        }
    }
#endif
    sockets = Py_BuildValue("[N]", sock);
    if (sockets == NULL) {
        return CIO_STEP_ERROR;
    }
    rc = make_server(coro, sockets, CORO_ARG(coro, UARG_FACTORY),
                     CORO_ARG(coro, UARG_SSL), CORO_ARG(coro, UARG_BACKLOG),
                     CORO_ARG(coro, UARG_HANDSHAKE_TIMEOUT),
                     CORO_ARG(coro, UARG_SHUTDOWN_TIMEOUT),
                     CORO_ARG(coro, UARG_START_SERVING), out);
    Py_DECREF(sockets);
    return rc;
}

static cio_step_t
create_unix_server_step(CioStepCoroObject *coro, PyObject *value,
                        PyObject **out)
{
    cio_step_t rc;

    if (value == NULL) {
        return CIO_STEP_ERROR;
    }
    if (coro->state != LISTEN_START) {
        return listen_done(coro, 0, out);
    }
    rc = create_unix_server_start(coro, out);
    return rc == CIO_STEP_RETURN ? listen_done(coro, 0, out) : rc;
}

/* create_unix_server(protocol_factory, path=None, *, sock=None,
 *     backlog=100, ssl=None, ssl_handshake_timeout=None,
 *     ssl_shutdown_timeout=None, start_serving=True,
 *     cleanup_socket=True); cleanup_socket from 3.13. */
static PyObject *
loop_create_unix_server(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "protocol_factory", "path", "sock", "backlog", "ssl",
        "ssl_handshake_timeout", "ssl_shutdown_timeout", "start_serving",
#if PY_VERSION_HEX >= 0x030D0000
        "cleanup_socket",
#endif
        NULL};
    long defaults[UARG_COUNT] = {[UARG_BACKLOG] = 100};
    PyObject *a[UARG_COUNT];

    for (int i = 0; i < UARG_COUNT; i++) {
        a[i] = Py_None;
    }
    a[UARG_BACKLOG] = NULL;
    a[UARG_START_SERVING] = a[UARG_CLEANUP_SOCKET] = Py_True;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs,
#if PY_VERSION_HEX >= 0x030D0000
            "O|O$OOOOOOO:create_unix_server",
#else
            "O|O$OOOOOO:create_unix_server",
#endif
            kwlist, &a[UARG_FACTORY], &a[UARG_PATH], &a[UARG_SOCK],
            &a[UARG_BACKLOG], &a[UARG_SSL], &a[UARG_HANDSHAKE_TIMEOUT],
            &a[UARG_SHUTDOWN_TIMEOUT], &a[UARG_START_SERVING]
#if PY_VERSION_HEX >= 0x030D0000
            , &a[UARG_CLEANUP_SOCKET]
#endif
            )) {
        return NULL;
    }
    return (PyObject *)cio_loop_call_coro_new(
        self, "Loop.create_unix_server", create_unix_server_step, a,
        UARG_COUNT, defaults);
}

PyMethodDef cio_loop_listen_methods[] = {
    {"create_server", (PyCFunction)(void (*)(void))loop_create_server,
     METH_VARARGS | METH_KEYWORDS,
     "create_server($self, protocol_factory, host=None, port=None, *, "
     "family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None, "
     "backlog=100, ssl=None, reuse_address=None, reuse_port=None, "
#if PY_VERSION_HEX >= 0x030D0000
     "keep_alive=None, "
#endif
     "ssl_handshake_timeout=None, ssl_shutdown_timeout=None, "
     "start_serving=True)\n--\n\n"
     "Coroutine: a TCP Server listening on host and port."},
    {"create_unix_server",
     (PyCFunction)(void (*)(void))loop_create_unix_server,
     METH_VARARGS | METH_KEYWORDS,
     "create_unix_server($self, protocol_factory, path=None, *, sock=None, "
     "backlog=100, ssl=None, ssl_handshake_timeout=None, "
     "ssl_shutdown_timeout=None, start_serving=True"
#if PY_VERSION_HEX >= 0x030D0000
     ", cleanup_socket=True"
#endif
     ")\n--\n\n"
     "Coroutine: a Server listening on a Unix socket."},
    {NULL, NULL, 0, NULL},
};
