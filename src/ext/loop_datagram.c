/* The loop's create_datagram_endpoint: base_events' coroutine, written in
 * C as a StepCoroutine, with each Python version's checks and errors.
 *
 * Over a given socket it only checks; otherwise it works out the
 * (family, proto) pairs that fit both local_addr and remote_addr --
 * numeric addresses at once, names through the loop's _ensure_resolved,
 * a Unix path as given (a stale socket file removed) -- and tries them in
 * order: a socket bound to the local address and connected to the remote
 * one, the first error raised if every pair fails. The transport is
 * transport_datagram.c's, made through the loop's
 * _make_datagram_transport. */
#include "casyncio.h"

#include <netinet/in.h>

/* vars[VAR_ARGS]: the arguments, in this order */
enum {
    ARG_FACTORY,
    ARG_LOCAL_ADDR,
    ARG_REMOTE_ADDR,
    ARG_FAMILY,
    ARG_PROTO,
    ARG_FLAGS,
    ARG_REUSE_PORT,
    ARG_ALLOW_BROADCAST,
    ARG_SOCK,
    ARG_COUNT,
};

enum {
    VAR_LOOP,
    VAR_ARGS,
    VAR_PAIRS,       /* while resolving: a dict (family, proto) -> [local,
                        remote]; then a list of (family, proto, local,
                        remote) to try */
    VAR_ERRORS,      /* the attempts' OSErrors */
    VAR_SOCK,        /* the attempt's socket, then the endpoint's */
    VAR_R_ADDR,      /* the remote address the transport is given */
    VAR_TRANSPORT,
    VAR_PROTOCOL,
};

enum {
    DGRAM_START,
    DGRAM_RESOLVED_LOCAL,
    DGRAM_RESOLVED_REMOTE,
    DGRAM_CONNECTING,
    DGRAM_WAITING,
};

#define CORO_LOOP(coro) ((LoopObject *)(coro)->vars[VAR_LOOP])
#define CORO_ARG(coro, i) PyTuple_GET_ITEM((coro)->vars[VAR_ARGS], (i))

static int
arg_true(CioStepCoroObject *coro, int i)
{
    return PyObject_IsTrue(CORO_ARG(coro, i));
}

/* ---- over a given socket ------------------------------------------------ */

/* stdlib's check that no address or socket option comes with sock: a
 * ValueError naming every one given ("local_addr=..., family=2"). */
static int
refuse_modifiers(CioStepCoroObject *coro)
{
    static const struct {
        int arg;
        const char *name;
    } modifiers[] = {
        {ARG_LOCAL_ADDR, "local_addr"}, {ARG_REMOTE_ADDR, "remote_addr"},
        {ARG_FAMILY, "family"}, {ARG_PROTO, "proto"}, {ARG_FLAGS, "flags"},
        {ARG_REUSE_PORT, "reuse_port"},
        {ARG_ALLOW_BROADCAST, "allow_broadcast"},
    };
    PyObject *problems = PyList_New(0), *sep, *joined;

    for (size_t i = 0; problems != NULL && i < 7; i++) {
        PyObject *value = CORO_ARG(coro, modifiers[i].arg), *item;
        int given = PyObject_IsTrue(value);

        item = given > 0 ? PyUnicode_FromFormat("%s=%S", modifiers[i].name,
                                                value)
                         : NULL;
        if (given < 0 || (given > 0 && (item == NULL ||
                                        PyList_Append(problems, item) < 0))) {
            Py_CLEAR(problems);
        }
        Py_XDECREF(item);
    }
    if (problems == NULL) {
        return -1;
    }
    if (PyList_GET_SIZE(problems) == 0) {
        Py_DECREF(problems);
        return 0;
    }
    sep = PyUnicode_FromString(", ");
    joined = sep ? PyUnicode_Join(sep, problems) : NULL;
    if (joined != NULL) {
        PyErr_Format(PyExc_ValueError, "socket modifier keyword arguments "
                     "can not be used when sock is specified. (%U)", joined);
    }
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    Py_DECREF(problems);
    return -1;
}

static int
check_given_socket(CioStepCoroObject *coro)
{
    PyObject *sock = CORO_ARG(coro, ARG_SOCK), *type, *res, *no = Py_False;
    long kind;

    type = PyObject_GetAttrString(sock, "type");
    kind = type ? PyLong_AsLong(type) : -1;
    Py_XDECREF(type);
    if (kind == -1 && PyErr_Occurred()) {
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (kind == SOCK_STREAM) {
        PyErr_Format(PyExc_ValueError,
                     "A datagram socket was expected, got %R", sock);
        return -1;
    }
#else
    if (kind != SOCK_DGRAM) {
        PyErr_Format(PyExc_ValueError, "A UDP Socket was expected, got %R",
                     sock);
        return -1;
    }
#endif
    if (refuse_modifiers(coro) < 0) {
        return -1;
    }
    res = cio_call_method(CORO_LOOP(coro)->state, sock,
                          CIO_NAME_setblocking, &no, 1);
    Py_XDECREF(res);
    if (res == NULL) {
        return -1;
    }
    coro->vars[VAR_SOCK] = Py_NewRef(sock);
    coro->vars[VAR_R_ADDR] = Py_NewRef(Py_None);
    return 0;
}

/* ---- the (family, proto) pairs to try ---------------------------------- */

static PyObject *
one_pair(PyObject *family, PyObject *proto, PyObject *local,
         PyObject *remote)
{
    return Py_BuildValue("[(OOOO)]", family, proto, local, remote);
}

/* A Unix datagram endpoint: its paths as given, a stale socket file at
 * the local one removed first. */
static PyObject *
unix_pair(CioStepCoroObject *coro)
{
    PyObject *local = CORO_ARG(coro, ARG_LOCAL_ADDR);
    PyObject *remote = CORO_ARG(coro, ARG_REMOTE_ADDR);
    int has_local, abstract;

    if ((local != Py_None && !PyUnicode_Check(local)) ||
        (remote != Py_None && !PyUnicode_Check(remote))) {
        PyErr_SetString(PyExc_TypeError, "string is expected");
        return NULL;
    }
    has_local = PyObject_IsTrue(local);
    if (has_local) {
        abstract = cio_is_abstract_unix_address(local);
        if (abstract < 0 ||
            (!abstract && cio_remove_stale_unix_socket(
                              CORO_LOOP(coro)->state, local) < 0)) {
            return NULL;
        }
    }
    return one_pair(CORO_ARG(coro, ARG_FAMILY), CORO_ARG(coro, ARG_PROTO),
                    local, remote);
}

/* The infos of a numeric address at once, as _ipaddr_info gives them;
 * None when getaddrinfo must answer. */
static PyObject *
numeric_infos(CioStepCoroObject *coro, PyObject *address)
{
    cio_state *st = CORO_LOOP(coro)->state;
    PyObject *family = CORO_ARG(coro, ARG_FAMILY);
    PyObject *proto = CORO_ARG(coro, ARG_PROTO), *sockaddr, *infos;
    long ints[3] = {-1, SOCK_DGRAM, -1};
    int af = 0;

    if (PyLong_Check(family) && PyLong_Check(proto)) {
        ints[0] = PyLong_AsLong(family);
        ints[2] = PyLong_AsLong(proto);
    }
    if (ints[0] == -1 || ints[2] == -1) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    sockaddr = cio_numeric_sockaddr(address, ints, &af);
    if (sockaddr == NULL || sockaddr == Py_None) {
        return sockaddr;
    }
    infos = cio_numeric_infos(st, family, af, 1, sockaddr);
    Py_DECREF(sockaddr);
    return infos;
}

/* Adds address's infos to the pairs dict, at index (0 local, 1 remote). */
static int
add_infos(CioStepCoroObject *coro, PyObject *infos, int index)
{
    PyObject *pairs = coro->vars[VAR_PAIRS], *iter, *info;
    int rc = 0;

    if (PyObject_Not(infos)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_OSError,
                            "getaddrinfo() returned empty list");
        }
        return -1;
    }
    iter = PyObject_GetIter(infos);
    if (iter == NULL) {
        return -1;
    }
    while (rc == 0 && (info = PyIter_Next(iter)) != NULL) {
        PyObject *key = NULL, *pair;

        if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 5) {
            PyErr_Format(PyExc_ValueError, "expected a getaddrinfo "
                         "5-tuple, got %R", info);
            rc = -1;
        }
        else {
            key = PyTuple_Pack(2, PyTuple_GET_ITEM(info, 0),
                               PyTuple_GET_ITEM(info, 2));
        }
        pair = key ? PyDict_GetItemWithError(pairs, key) : NULL;  // borrowed
        if (key != NULL && pair == NULL && !PyErr_Occurred()) {
            pair = Py_BuildValue("[OO]", Py_None, Py_None);
            if (pair == NULL || PyDict_SetItem(pairs, key, pair) < 0) {
                rc = -1;
            }
            Py_XDECREF(pair);  /* the dict holds it */
        }
        if (rc == 0 && (pair == NULL ||
                        PyList_SetItem(pair, index, Py_NewRef(
                            PyTuple_GET_ITEM(info, 4))) < 0)) {
            rc = -1;
        }
        Py_XDECREF(key);
        Py_DECREF(info);
    }
    Py_DECREF(iter);
    return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

/* The pairs that have an address for each of local_addr and
 * remote_addr that was given, in the order found: a list of (family,
 * proto, local, remote), which replaces the dict. */
static int
usable_pairs(CioStepCoroObject *coro)
{
    PyObject *pairs = coro->vars[VAR_PAIRS], *key, *pair, *usable;
    int need_local = arg_true(coro, ARG_LOCAL_ADDR), need_remote;
    Py_ssize_t pos = 0;

    need_remote = need_local < 0 ? -1 : arg_true(coro, ARG_REMOTE_ADDR);
    usable = need_remote < 0 ? NULL : PyList_New(0);
    if (usable == NULL) {
        return -1;
    }
    while (PyDict_Next(pairs, &pos, &key, &pair)) {  // borrowed
        PyObject *local = PyList_GET_ITEM(pair, 0);
        PyObject *remote = PyList_GET_ITEM(pair, 1), *entry;

        if ((need_local && local == Py_None) ||
            (need_remote && remote == Py_None)) {
            continue;
        }
        entry = PyTuple_Pack(4, PyTuple_GET_ITEM(key, 0),
                             PyTuple_GET_ITEM(key, 1), local, remote);
        if (entry == NULL || PyList_Append(usable, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(usable);
            return -1;
        }
        Py_DECREF(entry);
    }
    if (PyList_GET_SIZE(usable) == 0) {
        Py_DECREF(usable);
        PyErr_SetString(PyExc_ValueError, "can not get address information");
        return -1;
    }
    Py_SETREF(coro->vars[VAR_PAIRS], usable);
    return 0;
}

static cio_step_t try_next(CioStepCoroObject *coro, PyObject **out);

/* Resolves local_addr (index 0) and then remote_addr (1), from index on;
 * awaits _ensure_resolved for a name, else goes on to the attempts. */
static cio_step_t
resolve_from(CioStepCoroObject *coro, int index, PyObject **out)
{
    LoopObject *loop = CORO_LOOP(coro);
    cio_state *st = loop->state;

    for (; index < 2; index++) {
        PyObject *address = CORO_ARG(coro, index == 0 ? ARG_LOCAL_ADDR
                                                     : ARG_REMOTE_ADDR);
        PyObject *infos;
        int rc;

        if (address == Py_None) {
            continue;
        }
        if (!PyTuple_Check(address) || PyTuple_GET_SIZE(address) != 2) {
            PyErr_SetString(PyExc_TypeError, "2-tuple is expected");
            return CIO_STEP_ERROR;
        }
        infos = numeric_infos(coro, address);
        if (infos == NULL) {
            return CIO_STEP_ERROR;
        }
        if (infos == Py_None) {
            PyObject *kwnames = Py_BuildValue("(sssss)", "family", "type",
                                              "proto", "flags", "loop");
            PyObject *stack[7] = {(PyObject *)loop, address,
                                  CORO_ARG(coro, ARG_FAMILY), NULL,
                                  CORO_ARG(coro, ARG_PROTO),
                                  CORO_ARG(coro, ARG_FLAGS),
                                  (PyObject *)loop};

            Py_DECREF(infos);
            stack[3] = PyLong_FromLong(SOCK_DGRAM);
            *out = kwnames && stack[3]
                       ? PyObject_VectorcallMethod(
                             CIO_NAME(st, _ensure_resolved), stack, 2,
                             kwnames)
                       : NULL;
            Py_XDECREF(kwnames);
            Py_XDECREF(stack[3]);
            coro->state = index == 0 ? DGRAM_RESOLVED_LOCAL
                                     : DGRAM_RESOLVED_REMOTE;
            return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
        }
        rc = add_infos(coro, infos, index);
        Py_DECREF(infos);
        if (rc < 0) {
            return CIO_STEP_ERROR;
        }
    }
    return usable_pairs(coro) < 0 ? CIO_STEP_ERROR : try_next(coro, out);
}

/* The pairs to try when no socket is given. */
static cio_step_t
plan_attempts(CioStepCoroObject *coro, PyObject **out)
{
    int local = arg_true(coro, ARG_LOCAL_ADDR), remote, unix_family;
    long family;

    remote = local < 0 ? -1 : arg_true(coro, ARG_REMOTE_ADDR);
    if (remote < 0) {
        return CIO_STEP_ERROR;
    }
    family = PyLong_Check(CORO_ARG(coro, ARG_FAMILY))
                 ? PyLong_AsLong(CORO_ARG(coro, ARG_FAMILY)) : -1;
    if (family == -1 && PyErr_Occurred()) {
        return CIO_STEP_ERROR;
    }
    if (!local && !remote) {
        if (PyObject_Not(CORO_ARG(coro, ARG_FAMILY))) {
            PyErr_SetString(PyExc_ValueError, "unexpected address family");
            return CIO_STEP_ERROR;
        }
        coro->vars[VAR_PAIRS] = one_pair(CORO_ARG(coro, ARG_FAMILY),
                                         CORO_ARG(coro, ARG_PROTO), Py_None,
                                         Py_None);
        return coro->vars[VAR_PAIRS] ? try_next(coro, out) : CIO_STEP_ERROR;
    }
    unix_family = family == AF_UNIX;
    if (unix_family) {
        coro->vars[VAR_PAIRS] = unix_pair(coro);
        return coro->vars[VAR_PAIRS] ? try_next(coro, out) : CIO_STEP_ERROR;
    }
    coro->vars[VAR_PAIRS] = PyDict_New();
    return coro->vars[VAR_PAIRS] ? resolve_from(coro, 0, out)
                                 : CIO_STEP_ERROR;
}

/* ---- the attempts ------------------------------------------------------- */

/* Closes the attempt's socket, the exception being raised kept. */
static void
close_attempt_socket(CioStepCoroObject *coro)
{
    PyObject *exc = cio_fetch_exception(), *res;

    res = cio_call_method(CORO_LOOP(coro)->state, coro->vars[VAR_SOCK],
                          CIO_NAME_close, NULL, 0);
    if (res == NULL) {
        PyErr_WriteUnraisable(coro->vars[VAR_SOCK]);
    }
    Py_XDECREF(res);
    Py_CLEAR(coro->vars[VAR_SOCK]);
    cio_restore_exception(exc);
}

/* The attempt failed with the exception being raised: an OSError is
 * noted and the next pair tried; anything else ends the call. */
static cio_step_t
attempt_failed(CioStepCoroObject *coro, PyObject **out)
{
    PyObject *exc;
    int rc;

    if (coro->vars[VAR_SOCK] != NULL) {
        close_attempt_socket(coro);
    }
    if (!PyErr_ExceptionMatches(PyExc_OSError)) {
        return CIO_STEP_ERROR;
    }
    exc = cio_fetch_exception();
    rc = PyList_Append(coro->vars[VAR_ERRORS], exc);
    Py_DECREF(exc);
    return rc < 0 ? CIO_STEP_ERROR : try_next(coro, out);
}

/* One pair's socket: made, its options set, bound; 1 when it must
 * still connect to remote (the sock_connect coroutine in *out). */
static int
start_attempt(CioStepCoroObject *coro, PyObject *pair, PyObject **out)
{
    LoopObject *loop = CORO_LOOP(coro);
    cio_state *st = loop->state;
    PyObject *args[3] = {PyTuple_GET_ITEM(pair, 0), NULL,
                         PyTuple_GET_ITEM(pair, 1)};
    PyObject *ctor, *res, *no = Py_False;
    PyObject *local = PyTuple_GET_ITEM(pair, 2);
    PyObject *remote = PyTuple_GET_ITEM(pair, 3);
    int reuse_port, broadcast = 0, bind, connect;

    ctor = cio_stdlib_socket_constructor(st, st->base_events_module);
    args[1] = ctor ? PyLong_FromLong(SOCK_DGRAM) : NULL;
    coro->vars[VAR_SOCK] = args[1] ? PyObject_Vectorcall(
                                         ctor, args, 0, st->kwnames_socket)
                                   : NULL;
    Py_XDECREF(ctor);
    Py_XDECREF(args[1]);
    if (coro->vars[VAR_SOCK] == NULL ||
        (reuse_port = arg_true(coro, ARG_REUSE_PORT)) < 0 ||
        (reuse_port && cio_set_reuse_port(st, coro->vars[VAR_SOCK]) < 0) ||
        (broadcast = arg_true(coro, ARG_ALLOW_BROADCAST)) < 0 ||
        (broadcast && cio_set_int_option(st, coro->vars[VAR_SOCK],
                                         SOL_SOCKET, SO_BROADCAST, 1) < 0)) {
        return -1;
    }
    res = cio_call_method(st, coro->vars[VAR_SOCK], CIO_NAME_setblocking,
                          &no, 1);
    Py_XDECREF(res);
    if (res == NULL || (bind = arg_true(coro, ARG_LOCAL_ADDR)) < 0) {
        return -1;
    }
    if (bind) {
        res = cio_call_method(st, coro->vars[VAR_SOCK], CIO_NAME_bind,
                              &local, 1);
        Py_XDECREF(res);
        if (res == NULL) {
            return -1;
        }
    }
    connect = arg_true(coro, ARG_REMOTE_ADDR);
    if (connect <= 0) {
        return connect;
    }
    Py_XSETREF(coro->vars[VAR_R_ADDR], Py_NewRef(remote));
    if (broadcast) {
        return 0;
    }
    args[0] = coro->vars[VAR_SOCK];
    args[1] = remote;
    *out = cio_call_method(st, (PyObject *)loop, CIO_NAME_sock_connect, args,
                           2);
    return *out ? 1 : -1;
}

static cio_step_t make_transport(CioStepCoroObject *coro, PyObject **out);

/* Tries the next pair; raises the first attempt's error when none is
 * left. */
static cio_step_t
try_next(CioStepCoroObject *coro, PyObject **out)
{
    PyObject *pairs = coro->vars[VAR_PAIRS], *errors;
    int rc;

    if (coro->index >= PyList_GET_SIZE(pairs)) {
        errors = coro->vars[VAR_ERRORS];
        cio_restore_exception(Py_NewRef(PyList_GET_ITEM(errors, 0)));
        return CIO_STEP_ERROR;
    }
    rc = start_attempt(coro, PyList_GET_ITEM(pairs, coro->index++), out);
    if (rc < 0) {
        return attempt_failed(coro, out);
    }
    if (rc > 0) {
        coro->state = DGRAM_CONNECTING;
        return CIO_STEP_AWAIT;
    }
    return make_transport(coro, out);
}

/* ---- the transport ------------------------------------------------------ */

static int
log_created(CioStepCoroObject *coro)
{
    cio_state *st = CORO_LOOP(coro)->state;
    PyObject *local = CORO_ARG(coro, ARG_LOCAL_ADDR);
    PyObject *remote = CORO_ARG(coro, ARG_REMOTE_ADDR), *res;
    int has_local = PyObject_IsTrue(local);

    if (has_local < 0) {
        return -1;
    }
    res = has_local
              ? PyObject_CallMethod(
                    st->logger, "info", "sOOOO", "Datagram endpoint "
                    "local_addr=%r remote_addr=%r created: (%r, %r)", local,
                    remote, coro->vars[VAR_TRANSPORT],
                    coro->vars[VAR_PROTOCOL])
              : PyObject_CallMethod(
                    st->logger, "debug", "sOOO", "Datagram endpoint "
                    "remote_addr=%r created: (%r, %r)", remote,
                    coro->vars[VAR_TRANSPORT], coro->vars[VAR_PROTOCOL]);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* The protocol and the transport over the endpoint's socket, then the
 * wait for the transport's waiter. */
static cio_step_t
make_transport(CioStepCoroObject *coro, PyObject **out)
{
    LoopObject *loop = CORO_LOOP(coro);
    PyObject *waiter;

    coro->vars[VAR_PROTOCOL] = PyObject_CallNoArgs(
        CORO_ARG(coro, ARG_FACTORY));
    if (coro->vars[VAR_PROTOCOL] == NULL) {
        return CIO_STEP_ERROR;
    }
    waiter = cio_loop_create_future(loop);
    if (waiter == NULL) {
        return CIO_STEP_ERROR;
    }
    {
        PyObject *stack[5] = {(PyObject *)loop, coro->vars[VAR_SOCK],
                              coro->vars[VAR_PROTOCOL],
                              coro->vars[VAR_R_ADDR], waiter};
        coro->vars[VAR_TRANSPORT] = PyObject_VectorcallMethod(
            CIO_NAME(loop->state, _make_datagram_transport), stack, 5,
            NULL);
    }
    if (coro->vars[VAR_TRANSPORT] == NULL ||
        (loop->debug && log_created(coro) < 0)) {
        Py_DECREF(waiter);
        return CIO_STEP_ERROR;
    }
    coro->state = DGRAM_WAITING;
    *out = waiter;
    return CIO_STEP_AWAIT;
}

static cio_step_t
datagram_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    switch (coro->state) {
    case DGRAM_START:
        if (CORO_ARG(coro, ARG_SOCK) != Py_None) {
            return check_given_socket(coro) < 0 ? CIO_STEP_ERROR
                                                : make_transport(coro, out);
        }
        coro->vars[VAR_ERRORS] = PyList_New(0);
        coro->vars[VAR_R_ADDR] = Py_NewRef(Py_None);
        return coro->vars[VAR_ERRORS] ? plan_attempts(coro, out)
                                      : CIO_STEP_ERROR;
    case DGRAM_RESOLVED_LOCAL:
    case DGRAM_RESOLVED_REMOTE:
        if (value == NULL ||
            add_infos(coro, value,
                      coro->state == DGRAM_RESOLVED_LOCAL ? 0 : 1) < 0) {
            return CIO_STEP_ERROR;
        }
        return resolve_from(coro, coro->state == DGRAM_RESOLVED_LOCAL ? 1 : 2,
                            out);
    case DGRAM_CONNECTING:
        return value == NULL ? attempt_failed(coro, out)
                             : make_transport(coro, out);
    default:  /* DGRAM_WAITING */
        if (value == NULL) {  /* stdlib's bare except: closed, raised */
            cio_call_while_raising(coro->vars[VAR_TRANSPORT], "close");
            return CIO_STEP_ERROR;
        }
        *out = PyTuple_Pack(2, coro->vars[VAR_TRANSPORT],
                            coro->vars[VAR_PROTOCOL]);
        return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
    }
}

/* create_datagram_endpoint(protocol_factory, local_addr=None,
 *     remote_addr=None, *, family=0, proto=0, flags=0, reuse_port=None,
 *     allow_broadcast=None, sock=None) */
static PyObject *
loop_create_datagram_endpoint(LoopObject *self, PyObject *args,
                              PyObject *kwargs)
{
    static char *kwlist[] = {
        "protocol_factory", "local_addr", "remote_addr", "family", "proto",
        "flags", "reuse_port", "allow_broadcast", "sock", NULL};
    long defaults[ARG_COUNT] = {0};
    PyObject *a[ARG_COUNT];
    for (int i = 0; i < ARG_COUNT; i++) {
        a[i] = Py_None;
    }
    a[ARG_FAMILY] = a[ARG_PROTO] = a[ARG_FLAGS] = NULL;  /* 0 */
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "O|OO$OOOOOO:create_datagram_endpoint", kwlist,
            &a[ARG_FACTORY], &a[ARG_LOCAL_ADDR], &a[ARG_REMOTE_ADDR],
            &a[ARG_FAMILY], &a[ARG_PROTO], &a[ARG_FLAGS], &a[ARG_REUSE_PORT],
            &a[ARG_ALLOW_BROADCAST], &a[ARG_SOCK])) {
        return NULL;
    }
    return (PyObject *)cio_loop_call_coro_new(
        self, "Loop.create_datagram_endpoint", datagram_step, a, ARG_COUNT,
        defaults);
}

PyMethodDef cio_loop_datagram_methods[] = {
    {"create_datagram_endpoint",
     (PyCFunction)(void (*)(void))loop_create_datagram_endpoint,
     METH_VARARGS | METH_KEYWORDS,
     "create_datagram_endpoint($self, protocol_factory, local_addr=None, "
     "remote_addr=None, *, family=0, proto=0, flags=0, reuse_port=None, "
     "allow_broadcast=None, sock=None)\n--\n\n"
     "Coroutine: a datagram endpoint; return (transport, protocol)."},
    {NULL, NULL, 0, NULL},
};
