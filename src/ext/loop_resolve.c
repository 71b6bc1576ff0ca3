/* From an address to the addrinfo list that create_connection,
 * create_server, create_datagram_endpoint and sock_connect try: stdlib's
 * base_events._ipaddr_info, BaseEventLoop._ensure_resolved and
 * _create_server_getaddrinfo, and the debug-mode _getaddrinfo_debug that
 * getaddrinfo runs in the executor.
 *
 * A numeric IP address is answered on the loop's thread; anything else
 * awaits the loop's getaddrinfo (loop_sock.c), looked up by name because
 * asyncio's tests and some applications replace it. The callers take
 * the fast path, cio_numeric_sockaddr, for the argument types nearly
 * every program passes (a str host, an int port); ipaddr_info is
 * _ipaddr_info for any others, with Python's own comparisons and
 * conversions (int(port), bytes hosts decoded as IDNA, inet_pton from
 * base_events' `socket`, which tests patch), so that odd arguments give
 * stdlib's answers and errors. */
#include "casyncio.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* ---- the fast path: numeric addresses of the usual types --------------- */

/* A str host and an int (or None) port, as most callers pass them;
 * other types are left to ipaddr_info's conversions. */
static int
address_parts(PyObject *address, PyObject **host, PyObject **port)
{
    Py_ssize_t n;

    if (!PyTuple_CheckExact(address)) {
        return 0;
    }
    n = PyTuple_GET_SIZE(address);
    if (n != 2 && n != 4) {
        return 0;
    }
    *host = PyTuple_GET_ITEM(address, 0);
    *port = PyTuple_GET_ITEM(address, 1);
    return PyUnicode_CheckExact(*host) &&
           (*port == Py_None || PyLong_CheckExact(*port));
}

/* The family inet_pton() accepts host in (one of afs[0..n)), else 0. */
static int
numeric_family(PyObject *host, const int *afs, int n)
{
    unsigned char addr[sizeof(struct in6_addr)];
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(host, &len);

    if (s == NULL) {
        PyErr_Clear();  /* _ensure_resolved's conversion reports it */
        return 0;
    }
    /* A zone index ('::1%lo') is refused by inet_pton; stdlib then asks
     * getaddrinfo, and so does this. */
    if ((size_t)len != strlen(s) || strchr(s, '%') != NULL) {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (inet_pton(afs[i], s, addr) == 1) {
            return afs[i];
        }
    }
    return 0;
}

PyObject *
cio_numeric_sockaddr(PyObject *address, const long ints[3], int *af_out)
{
    static const int both[] = {AF_INET, AF_INET6};
    PyObject *host, *port, *flowinfo, *scopeid, *zero;
    int af, single;

    if (!address_parts(address, &host, &port) ||
        (ints[2] != 0 && ints[2] != IPPROTO_TCP && ints[2] != IPPROTO_UDP) ||
        (ints[1] != SOCK_STREAM && ints[1] != SOCK_DGRAM) ||
        (ints[0] != AF_UNSPEC && ints[0] != AF_INET &&
         ints[0] != AF_INET6)) {
        Py_RETURN_NONE;
    }
    single = (int)ints[0];
    af = single == AF_UNSPEC ? numeric_family(host, both, 2)
                             : numeric_family(host, &single, 1);
    if (af == 0) {
        Py_RETURN_NONE;
    }
    if (af_out != NULL) {
        *af_out = af;
    }
    zero = PyLong_FromLong(0);
    if (zero == NULL) {
        return NULL;
    }
    if (port == Py_None) {
        port = zero;
    }
    if (af == AF_INET) {
        address = PyTuple_Pack(2, host, port);
    }
    else {
        int extended = PyTuple_GET_SIZE(address) == 4;
        flowinfo = extended ? PyTuple_GET_ITEM(address, 2) : zero;
        scopeid = extended ? PyTuple_GET_ITEM(address, 3) : zero;
        address = PyTuple_Pack(4, host, port, flowinfo, scopeid);
    }
    Py_DECREF(zero);
    return address;
}

PyObject *
cio_numeric_infos(cio_state *st, PyObject *family, int af, int datagram,
                  PyObject *sockaddr)
{
    PyObject *type, *proto, *infos = NULL;

    if (PyLong_Check(family) && PyLong_AsLong(family) == AF_UNSPEC) {
        family = af == AF_INET ? st->af_inet : st->af_inet6;
    }
    type = datagram ? PyLong_FromLong(SOCK_DGRAM) : Py_NewRef(st->sock_stream);
    proto = datagram ? PyLong_FromLong(IPPROTO_UDP)
                     : Py_NewRef(st->ipproto_tcp);
    if (type != NULL && proto != NULL) {
        infos = Py_BuildValue("[(OOOsO)]", family, type, proto, "",
                              sockaddr);
    }
    Py_XDECREF(type);
    Py_XDECREF(proto);
    return infos;
}


/* ---- _ipaddr_info for any argument types -------------------------------- */

/* int(port), with None, b'' and '' meaning 0; NULL without an exception
 * when port is not a number (a service name such as "http", left to
 * getaddrinfo). */
static PyObject *
port_number(PyObject *port)
{
    PyObject *number;

    if (port == Py_None ||
        (PyBytes_Check(port) && PyBytes_GET_SIZE(port) == 0) ||
        (PyUnicode_Check(port) && PyUnicode_GET_LENGTH(port) == 0)) {
        return PyLong_FromLong(0);
    }
    number = PyNumber_Long(port);
    if (number == NULL && (PyErr_ExceptionMatches(PyExc_TypeError) ||
                           PyErr_ExceptionMatches(PyExc_ValueError))) {
        PyErr_Clear();
    }
    return number;
}

/* type's protocol as _ipaddr_info settles it: IPPROTO_TCP for a stream,
 * IPPROTO_UDP for datagrams; NULL without an exception for other types. */
static PyObject *
type_protocol(cio_state *st, PyObject *type)
{
    static const long types[2][2] = {{SOCK_STREAM, IPPROTO_TCP},
                                     {SOCK_DGRAM, IPPROTO_UDP}};

    for (int i = 0; i < 2; i++) {
        PyObject *kind = PyLong_FromLong(types[i][0]);
        int same = kind ? PyObject_RichCompareBool(type, kind, Py_EQ) : -1;

        Py_XDECREF(kind);
        if (same != 0) {
            return same < 0 ? NULL
                            : i == 0 ? Py_NewRef(st->ipproto_tcp)
                                     : PyLong_FromLong(types[i][1]);
        }
    }
    return NULL;
}

/* The families to try: IPv4 then IPv6 for AF_UNSPEC, else family. */
static PyObject *
families_to_try(cio_state *st, PyObject *family)
{
    PyObject *unspec = PyLong_FromLong(AF_UNSPEC);
    int any = unspec ? PyObject_RichCompareBool(family, unspec, Py_EQ) : -1;

    Py_XDECREF(unspec);
    if (any < 0) {
        return NULL;
    }
    return any ? PyTuple_Pack(2, st->af_inet, st->af_inet6)
               : PyTuple_Pack(1, family);
}

/* The first of afs that inet_pton accepts host in, borrowed; None when
 * none does (inet_pton's OSError); NULL on any other error. */
static PyObject *
numeric_family_of(PyObject *inet_pton, PyObject *afs, PyObject *host)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(afs); i++) {
        PyObject *af = PyTuple_GET_ITEM(afs, i);
        PyObject *packed = PyObject_CallFunctionObjArgs(inet_pton, af, host,
                                                        NULL);
        if (packed != NULL) {
            Py_DECREF(packed);
            return af;
        }
        if (!PyErr_ExceptionMatches(PyExc_OSError)) {
            return NULL;
        }
        PyErr_Clear();
    }
    return Py_None;
}

/* host as a str, from bytes by IDNA as stdlib decodes it; None when it
 * has a zone index ('::1%lo'), which Linux's inet_pton refuses. */
static PyObject *
host_text(PyObject *host)
{
    PyObject *text, *percent;
    int zoned;

    text = PyBytes_Check(host) ? PyObject_CallMethod(host, "decode", "s",
                                                     "idna")
                               : Py_NewRef(host);
    percent = text ? PyUnicode_FromString("%") : NULL;
    zoned = percent ? PySequence_Contains(text, percent) : -1;
    Py_XDECREF(percent);
    if (zoned != 0) {
        Py_XDECREF(text);
        return zoned < 0 ? NULL : Py_NewRef(Py_None);
    }
    return text;
}

/* proto is one _ipaddr_info knows (`proto in {0, IPPROTO_TCP,
 * IPPROTO_UDP}`, with the set's hashing and comparison): 1, 0 or -1. */
static int
known_protocol(PyObject *proto)
{
    PyObject *values = Py_BuildValue("(iii)", 0, IPPROTO_TCP, IPPROTO_UDP);
    PyObject *known = values ? PyFrozenSet_New(values) : NULL;
    int rc = known ? PySet_Contains(known, proto) : -1;

    Py_XDECREF(values);
    Py_XDECREF(known);
    return rc;
}

/* base_events' socket.inet_pton, looked up per call as stdlib's global
 * is; None (a new reference) when that module has none. */
static PyObject *
inet_pton_function(cio_state *st)
{
    PyObject *socket_module, *fn;

    socket_module = PyObject_GetAttrString(st->base_events_module, "socket");
    fn = socket_module ? PyObject_GetAttrString(socket_module, "inet_pton")
                       : NULL;
    Py_XDECREF(socket_module);
    if (fn == NULL && socket_module != NULL &&
        PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        fn = Py_NewRef(Py_None);
    }
    return fn;
}

/* The info tuple for a host inet_pton accepted in family af. */
static PyObject *
numeric_info(cio_state *st, PyObject *af, PyObject *type, PyObject *proto,
             PyObject *host, PyObject *port, PyObject *flowinfo,
             PyObject *scopeid)
{
    int ipv6 = PyObject_RichCompareBool(af, st->af_inet6, Py_EQ);
    PyObject *sockaddr, *info;

    if (ipv6 < 0) {
        return NULL;
    }
    sockaddr = ipv6 ? PyTuple_Pack(4, host, port, flowinfo, scopeid)
                    : PyTuple_Pack(2, host, port);
    if (sockaddr == NULL) {
        return NULL;
    }
    info = Py_BuildValue("(OOOsO)", af, type, proto, "", sockaddr);
    Py_DECREF(sockaddr);
    return info;
}

/* base_events._ipaddr_info(host, port, family, type, proto, flowinfo,
 * scopeid): the addrinfo tuple (af, type, proto, '', sockaddr) when host
 * is already a numeric address, else None; NULL on error. Each step is
 * taken only when the ones before it let the address through, in
 * stdlib's order, so that errors come from the same step. */
static PyObject *
ipaddr_info(cio_state *st, PyObject *host, PyObject *port, PyObject *family,
            PyObject *type, PyObject *proto, PyObject *flowinfo,
            PyObject *scopeid)
{
    PyObject *inet_pton, *settled = NULL, *number = NULL, *afs = NULL;
    PyObject *text = NULL, *af, *info = NULL;
    int known;

    inet_pton = inet_pton_function(st);
    if (inet_pton == NULL || inet_pton == Py_None) {
        return inet_pton;
    }
    known = known_protocol(proto);
    if (known <= 0 || host == Py_None) {
        goto done;
    }
    settled = type_protocol(st, type);
    number = settled ? port_number(port) : NULL;
    afs = number ? families_to_try(st, family) : NULL;
    text = afs ? host_text(host) : NULL;
    if (text == NULL || text == Py_None) {
        goto done;
    }
    af = numeric_family_of(inet_pton, afs, text);
    if (af != NULL && af != Py_None) {
        info = numeric_info(st, af, type, settled, text, number, flowinfo,
                            scopeid);
    }
done:
    Py_DECREF(inet_pton);
    Py_XDECREF(settled);
    Py_XDECREF(number);
    Py_XDECREF(afs);
    Py_XDECREF(text);
    if (info == NULL && !PyErr_Occurred()) {
        info = Py_NewRef(Py_None);
    }
    return info;
}

/* ---- _ensure_resolved --------------------------------------------------- */

#define LOOP(coro) ((LoopObject *)(coro)->vars[0])
#define ARG(coro, i) PyTuple_GET_ITEM((coro)->vars[1], (i))

/* _ensure_resolved's arguments, in vars[1] */
enum { ER_ADDRESS, ER_FAMILY, ER_TYPE, ER_PROTO, ER_FLAGS, ER_LOOP,
       ER_ARG_COUNT };
enum { ER_LOOKING_UP = 1 };

/* host, port = address[:2], and address[2:] as the tuple of _ipaddr_info's
 * further arguments (flowinfo, scopeid), each unpacked as Python does. */
static int
split_address(PyObject *address, PyObject **host, PyObject **port,
              PyObject **rest)
{
    PyObject *head = PySequence_GetSlice(address, 0, 2);
    PyObject *pair = head ? PySequence_Tuple(head) : NULL;
    PyObject *tail;

    Py_XDECREF(head);
    if (pair == NULL) {
        return -1;
    }
    if (PyTuple_GET_SIZE(pair) != 2) {
        PyErr_Format(PyExc_ValueError, "not enough values to unpack "
                     "(expected 2, got %zd)", PyTuple_GET_SIZE(pair));
        Py_DECREF(pair);
        return -1;
    }
    tail = PySequence_GetSlice(address, 2, PY_SSIZE_T_MAX);
    *rest = tail ? PySequence_Tuple(tail) : NULL;
    Py_XDECREF(tail);
    if (*rest != NULL && PyTuple_GET_SIZE(*rest) > 2) {
        PyErr_Format(PyExc_TypeError, "_ipaddr_info() takes from 5 to 7 "
                     "positional arguments but %zd were given",
                     5 + PyTuple_GET_SIZE(*rest));
        Py_CLEAR(*rest);
    }
    if (*rest == NULL) {
        Py_DECREF(pair);
        return -1;
    }
    *host = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
    *port = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
    Py_DECREF(pair);
    return 0;
}

/* loop.getaddrinfo(host, port, family=, type=, proto=, flags=), the
 * awaitable. */
static PyObject *
getaddrinfo_call(CioStepCoroObject *coro, PyObject *host, PyObject *port)
{
    PyObject *kwnames = Py_BuildValue("(ssss)", "family", "type", "proto",
                                      "flags");
    PyObject *stack[7] = {ARG(coro, ER_LOOP), host, port,
                          ARG(coro, ER_FAMILY), ARG(coro, ER_TYPE),
                          ARG(coro, ER_PROTO), ARG(coro, ER_FLAGS)};
    PyObject *name = PyUnicode_FromString("getaddrinfo");
    PyObject *call = NULL;

    if (kwnames != NULL && name != NULL) {
        call = PyObject_VectorcallMethod(name, stack, 3, kwnames);
    }
    Py_XDECREF(kwnames);
    Py_XDECREF(name);
    return call;
}

/* The body: [the address] when it is numeric, else what the loop's
 * getaddrinfo returns. */
static cio_step_t
ensure_resolved_step(CioStepCoroObject *coro, PyObject *value,
                     PyObject **out)
{
    PyObject *host, *port, *rest, *zero, *info;
    Py_ssize_t n;

    if (coro->state == ER_LOOKING_UP) {
        *out = Py_XNewRef(value);
        return value ? CIO_STEP_RETURN : CIO_STEP_ERROR;
    }
    if (split_address(ARG(coro, ER_ADDRESS), &host, &port, &rest) < 0) {
        return CIO_STEP_ERROR;
    }
    zero = PyLong_FromLong(0);
    n = PyTuple_GET_SIZE(rest);
    info = zero ? ipaddr_info(LOOP(coro)->state, host, port,
                              ARG(coro, ER_FAMILY), ARG(coro, ER_TYPE),
                              ARG(coro, ER_PROTO),
                              n > 0 ? PyTuple_GET_ITEM(rest, 0) : zero,
                              n > 1 ? PyTuple_GET_ITEM(rest, 1) : zero)
                : NULL;
    Py_XDECREF(zero);
    Py_DECREF(rest);
    if (info != NULL && info != Py_None) {
        *out = PyList_New(1);
        if (*out != NULL) {
            PyList_SET_ITEM(*out, 0, info);
        }
        else {
            Py_DECREF(info);
        }
        Py_DECREF(host);
        Py_DECREF(port);
        return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
    }
    Py_XDECREF(info);
    *out = info ? getaddrinfo_call(coro, host, port) : NULL;
    Py_DECREF(host);
    Py_DECREF(port);
    coro->state = ER_LOOKING_UP;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

static PyObject *
loop_ensure_resolved(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"address", "family", "type", "proto", "flags",
                             "loop", NULL};
    static const long defaults[ER_ARG_COUNT] = {0, 0, SOCK_STREAM, 0, 0, 0};
    PyObject *a[ER_ARG_COUNT] = {NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OOOOO:_ensure_resolved",
                                     kwlist, &a[0], &a[1], &a[2], &a[3],
                                     &a[4], &a[5])) {
        return NULL;
    }
    if (a[ER_LOOP] == NULL) {  /* stdlib's message, its class named */
        PyErr_SetString(PyExc_TypeError,
                        "BaseEventLoop._ensure_resolved() missing 1 "
                        "required keyword-only argument: 'loop'");
        return NULL;
    }
    if (a[ER_TYPE] == NULL) {
        a[ER_TYPE] = self->state->sock_stream;  /* socket.SOCK_STREAM */
    }
    return (PyObject *)cio_loop_call_coro_new(self, "Loop._ensure_resolved",
                                              ensure_resolved_step, a,
                                              ER_ARG_COUNT, defaults);
}

/* ---- _create_server_getaddrinfo ----------------------------------------- */

enum { CS_HOST, CS_PORT, CS_FAMILY, CS_FLAGS, CS_ARG_COUNT };
enum { CS_RESOLVING = 1 };

/* self._ensure_resolved((host, port), family=family, type=SOCK_STREAM,
 * flags=flags, loop=self), then stdlib's error for an empty answer. */
static cio_step_t
create_server_getaddrinfo_step(CioStepCoroObject *coro, PyObject *value,
                               PyObject **out)
{
    cio_state *st = LOOP(coro)->state;
    PyObject *address, *kwnames, *stack[6];
    int empty;

    if (coro->state == CS_RESOLVING) {
        empty = value ? PyObject_Not(value) : -1;
        if (empty != 0) {
            if (empty > 0) {
                PyErr_Format(PyExc_OSError, "getaddrinfo(%R) returned empty "
                             "list", ARG(coro, CS_HOST));
            }
            return CIO_STEP_ERROR;
        }
        *out = Py_NewRef(value);
        return CIO_STEP_RETURN;
    }
    address = PyTuple_Pack(2, ARG(coro, CS_HOST), ARG(coro, CS_PORT));
    kwnames = Py_BuildValue("(ssss)", "family", "type", "flags", "loop");
    *out = NULL;
    if (address != NULL && kwnames != NULL) {
        stack[0] = (PyObject *)LOOP(coro);
        stack[1] = address;
        stack[2] = ARG(coro, CS_FAMILY);
        stack[3] = st->sock_stream;
        stack[4] = ARG(coro, CS_FLAGS);
        stack[5] = (PyObject *)LOOP(coro);
        *out = PyObject_VectorcallMethod(CIO_NAME(st, _ensure_resolved),
                                         stack, 2, kwnames);
    }
    Py_XDECREF(address);
    Py_XDECREF(kwnames);
    coro->state = CS_RESOLVING;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

static PyObject *
loop_create_server_getaddrinfo(LoopObject *self, PyObject *args,
                               PyObject *kwargs)
{
    static char *kwlist[] = {"host", "port", "family", "flags", NULL};
    PyObject *a[CS_ARG_COUNT];

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "OOOO:_create_server_getaddrinfo",
                                     kwlist, &a[0], &a[1], &a[2], &a[3])) {
        return NULL;
    }
    return (PyObject *)cio_loop_call_coro_new(
        self, "Loop._create_server_getaddrinfo",
        create_server_getaddrinfo_step, a, CS_ARG_COUNT, NULL);
}

/* ---- _getaddrinfo_debug ------------------------------------------------- */

/* Appends part (stolen; NULL for an error already set) to list. */
static int
append_new(PyObject *list, PyObject *part)
{
    int rc = part ? PyList_Append(list, part) : -1;

    Py_XDECREF(part);
    return rc;
}

/* f"{host}:{port!r}" and, for each of family, type, proto and flags that
 * is true, "name=value!r", joined by ", ": how stdlib's debug log names
 * the lookup of a[0..6) (getaddrinfo's arguments). */
static PyObject *
lookup_description(PyObject *const *a)
{
    static const char *const labels[] = {"family", "type", "proto", "flags"};
    PyObject *parts = PyList_New(0), *host, *sep, *joined = NULL;
    int set = 0;

    host = parts ? PyObject_Format(a[0], NULL) : NULL;
    if (host == NULL ||
        append_new(parts, PyUnicode_FromFormat("%U:%R", host, a[1])) < 0) {
        goto done;
    }
    for (int i = 0; i < 4 && set >= 0; i++) {
        set = PyObject_IsTrue(a[2 + i]);
        if (set > 0 &&
            append_new(parts, PyUnicode_FromFormat("%s=%R", labels[i],
                                                   a[2 + i])) < 0) {
            set = -1;
        }
    }
    sep = set >= 0 ? PyUnicode_FromString(", ") : NULL;
    joined = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
done:
    Py_XDECREF(host);
    Py_XDECREF(parts);
    return joined;
}

/* self.time(), as a C double; -1 with an exception on error. */
static double
loop_time(LoopObject *loop, PyObject **now)
{
    *now = PyObject_CallMethod((PyObject *)loop, "time", NULL);
    return *now ? PyFloat_AsDouble(*now) : -1.0;
}

/* Logs "Getting address info ... took ...ms: ..." at info level when the
 * lookup was slow, else at debug level. */
static int
log_lookup(LoopObject *loop, PyObject *what, PyObject *t0, PyObject *t1,
           PyObject *addrinfo)
{
    PyObject *dt = PyNumber_Subtract(t1, t0), *ms, *text, *res;
    double seconds = dt ? PyFloat_AsDouble(dt) : -1.0;
    char *digits;

    Py_XDECREF(dt);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    digits = PyOS_double_to_string(seconds * 1e3, 'f', 3, 0, NULL);
    if (digits == NULL) {
        return -1;
    }
    ms = PyUnicode_FromString(digits);
    PyMem_Free(digits);
    text = ms ? PyUnicode_FromFormat("Getting address info %U took %Ums: %R",
                                     what, ms, addrinfo)
              : NULL;
    Py_XDECREF(ms);
    if (text == NULL) {
        return -1;
    }
    res = PyObject_CallMethod(
        loop->state->logger,
        seconds >= loop->slow_callback_duration ? "info" : "debug", "O", text);
    Py_DECREF(text);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* getaddrinfo's function in debug mode, run in the executor: logs the
 * lookup before and after (with how long it took), as stdlib. */
static PyObject *
loop_getaddrinfo_debug(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"host", "port", "family", "type", "proto",
                             "flags", NULL};
    PyObject *a[6], *what, *res, *t0 = NULL, *t1 = NULL, *addrinfo = NULL;
    PyObject *socket_module = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "OOOOOO:_getaddrinfo_debug", kwlist,
                                     &a[0], &a[1], &a[2], &a[3], &a[4],
                                     &a[5])) {
        return NULL;
    }
    what = lookup_description(a);
    if (what == NULL) {
        return NULL;
    }
    res = PyObject_CallMethod(self->state->logger, "debug", "sO",
                              "Get address info %s", what);
    if (res == NULL) {
        goto done;
    }
    Py_DECREF(res);
    if (loop_time(self, &t0) == -1.0 && PyErr_Occurred()) {
        goto done;
    }
    socket_module = PyObject_GetAttrString(self->state->base_events_module,
                                           "socket");
    addrinfo = socket_module
        ? PyObject_CallMethod(socket_module, "getaddrinfo", "OOOOOO", a[0],
                              a[1], a[2], a[3], a[4], a[5])
        : NULL;
    if (addrinfo == NULL ||
        (loop_time(self, &t1) == -1.0 && PyErr_Occurred()) ||
        log_lookup(self, what, t0, t1, addrinfo) < 0) {
        Py_CLEAR(addrinfo);
    }
done:
    Py_DECREF(what);
    Py_XDECREF(t0);
    Py_XDECREF(t1);
    Py_XDECREF(socket_module);
    return addrinfo;
}

PyMethodDef cio_loop_resolve_methods[] = {
    {"_ensure_resolved", (PyCFunction)(void (*)(void))loop_ensure_resolved,
     METH_VARARGS | METH_KEYWORDS,
     "_ensure_resolved($self, address, *, family=0, type=SOCK_STREAM, "
     "proto=0, flags=0, loop)\n--\n\n"
     "Coroutine: [the addrinfo tuple] of a numeric address, else "
     "loop.getaddrinfo()'s list."},
    {"_create_server_getaddrinfo",
     (PyCFunction)(void (*)(void))loop_create_server_getaddrinfo,
     METH_VARARGS | METH_KEYWORDS,
     "_create_server_getaddrinfo($self, host, port, family, flags)\n--\n\n"
     "Coroutine: the stream addresses to listen on at host; OSError when "
     "there are none."},
    {"_getaddrinfo_debug", (PyCFunction)(void (*)(void))loop_getaddrinfo_debug,
     METH_VARARGS | METH_KEYWORDS,
     "_getaddrinfo_debug($self, host, port, family, type, proto, flags)"
     "\n--\n\n"
     "socket.getaddrinfo(), logged with how long it took (debug mode)."},
    {NULL, NULL, 0, NULL},
};
