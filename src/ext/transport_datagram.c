/* DatagramTransport: what create_datagram_endpoint hands its protocol.
 *
 * The semantics are selector_events._SelectorDatagramTransport's (one
 * datagram per wake-up, error_received for OSErrors, the same messages).
 * The difference is the path of each datagram: stdlib's recvfrom()
 * allocates 256 KiB (a fresh mmap with glibc) per datagram; here it lands
 * in the loop's shared buffer and the address tuple is built in C. Sends to
 * numeric IPv4/IPv6 addresses go straight to sendto(); other addresses go
 * through the socket object, which resolves and checks them as stdlib's
 * path does. */
#include "transport_socket.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* 3.13 counts 8 bytes of header per queued datagram. */
#if PY_VERSION_HEX >= 0x030D0000
#define DATAGRAM_HEADER_SIZE 8
#define SEND_EMPTY_DATAGRAMS 1
#else
#define DATAGRAM_HEADER_SIZE 0
#define SEND_EMPTY_DATAGRAMS 0
#endif

/* ---- addresses ---------------------------------------------------------- */

/* The socket module's makesockaddr() for the families handled here. */
static PyObject *
address_to_python(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[NI_MAXHOST];

    if (len == 0) {
        Py_RETURN_NONE;
    }
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
                        NULL, 0, NI_NUMERICHOST) != 0) {
            break;
        }
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
                        NULL, 0, NI_NUMERICHOST) != 0) {
            break;
        }
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t path_len = len - offsetof(struct sockaddr_un, sun_path);
        if (path_len > 0 && a->sun_path[0] == 0) {  /* abstract namespace */
            return PyBytes_FromStringAndSize(a->sun_path,
                                             (Py_ssize_t)path_len);
        }
        return PyUnicode_DecodeFSDefaultAndSize(
            a->sun_path, (Py_ssize_t)strnlen(a->sun_path, path_len));
    }
    }
    PyErr_SetString(PyExc_OSError, "unsupported address family");
    return NULL;
}

/* A numeric (host, port[, flowinfo, scope_id]) for the socket's family as
 * a sockaddr; 0 when addr takes the socket module's slower path (names
 * to resolve, odd types, anything to be refused with its messages). */
static int
address_from_python(int family, PyObject *addr, struct sockaddr_storage *ss,
                    socklen_t *len)
{
    const char *host;
    long port;

    if (!PyTuple_CheckExact(addr) || PyTuple_GET_SIZE(addr) < 2 ||
        !PyUnicode_CheckExact(PyTuple_GET_ITEM(addr, 0)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(addr, 1))) {
        return 0;
    }
    host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
    port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (host == NULL || port < 0 || port > 65535) {
        PyErr_Clear();
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET && PyTuple_GET_SIZE(addr) == 2) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            return 0;
        }
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *len = sizeof(*a);
        return 1;
    }
    if (family == AF_INET6 && PyTuple_GET_SIZE(addr) == 2) {
        /* With flowinfo or scope_id, or a scoped host, the socket module
         * knows best. */
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            return 0;
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a);
        return 1;
    }
    return 0;
}

/* ---- receiving ---------------------------------------------------------- */

static int
call_error_received(SocketTransportObject *self)
{
    PyObject *exc = cio_fetch_exception();
    PyObject *res = PyObject_CallMethod(self->protocol, "error_received",
                                        "(O)", exc);

    Py_DECREF(exc);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* Another family's datagram, through the socket object. */
static int
receive_with_socket_module(SocketTransportObject *self, PyObject **data,
                           PyObject **addr)
{
    PyObject *pair = PyObject_CallMethod(self->sock, "recvfrom", "i",
                                         CIO_MAX_READ_SIZE);

    if (pair == NULL) {
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    if (!PyArg_ParseTuple(pair, "OO", data, addr)) {
        Py_DECREF(pair);
        return -1;
    }
    Py_INCREF(*data);
    Py_INCREF(*addr);
    Py_DECREF(pair);
    return 1;
}

/* One datagram into *data and *addr (new references): 1, or 0 when there
 * was none, or -1 with an exception. */
static int
receive_datagram(SocketTransportObject *self, PyObject **data,
                 PyObject **addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char *buf;
    ssize_t n;

    if (self->sock_family != AF_INET && self->sock_family != AF_INET6 &&
        self->sock_family != AF_UNIX) {
        return receive_with_socket_module(self, data, addr);
    }
    buf = cio_loop_read_buffer(self->loop);
    if (buf == NULL) {
        return -1;
    }
    memset(&ss, 0, sizeof(ss));
    do {
        n = recvfrom(self->fd, buf, CIO_MAX_READ_SIZE, 0,
                     (struct sockaddr *)&ss, &len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    *data = PyBytes_FromStringAndSize(buf, n);
    *addr = *data ? address_to_python(&ss, len) : NULL;
    if (*addr == NULL) {
        Py_CLEAR(*data);
        return -1;
    }
    return 1;
}

static PyObject *
datagram_read_ready(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    PyObject *data, *addr, *res, *exc;
    int rc;

    if (self->conn_lost || self->loop == NULL) {
        Py_RETURN_NONE;
    }
    rc = receive_datagram(self, &data, &addr);
    if (rc == 0) {
        Py_RETURN_NONE;
    }
    if (rc < 0) {
        if (PyErr_ExceptionMatches(PyExc_OSError)) {
            return call_error_received(self) < 0 ? NULL : Py_NewRef(Py_None);
        }
        exc = cio_fetch_reportable_exception();
        if (exc == NULL ||
            cio_socket_transport_fatal_error(
                self, exc, "Fatal read error on datagram transport") < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    /* Unguarded, as in stdlib: an exception goes to the loop's handler. */
    PyObject *args[3] = {self->protocol, data, addr};
    res = PyObject_VectorcallMethod(
        self->loop->state->str_datagram_received, args,
        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(data);
    Py_DECREF(addr);
    return res;
}

/* ---- sending ------------------------------------------------------------ */

/* Sends one datagram now: 1 if sent, 0 if the socket would block, -1 with
 * an exception. */
static int
send_datagram(SocketTransportObject *self, const void *buf, Py_ssize_t len,
              PyObject *data, PyObject *addr)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    ssize_t n;
    int fast;

    if (self->connected) {
        fast = 1;
        sslen = 0;
    }
    else {
        fast = address_from_python(self->sock_family, addr, &ss, &sslen);
    }
    if (!fast) {
        PyObject *r = PyObject_CallMethod(self->sock, "sendto", "OO", data,
                                          addr);
        if (r != NULL) {
            Py_DECREF(r);
            return 1;
        }
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    do {
        n = sslen ? sendto(self->fd, buf, (size_t)len, 0,
                           (struct sockaddr *)&ss, sslen)
                  : send(self->fd, buf, (size_t)len, 0);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
    }
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* After a failed send: OSErrors go to error_received, the rest are fatal. */
static int
send_failed(SocketTransportObject *self)
{
    PyObject *exc;

    if (PyErr_ExceptionMatches(PyExc_OSError)) {
        return call_error_received(self);
    }
    exc = cio_fetch_reportable_exception();
    if (exc == NULL) {
        return -1;
    }
    return cio_socket_transport_fatal_error(
        self, exc, "Fatal write error on datagram transport");
}

static Py_ssize_t
datagram_cost(PyObject *bytes)
{
    return PyBytes_GET_SIZE(bytes) + DATAGRAM_HEADER_SIZE;
}

static int
queue_datagram(SocketTransportObject *self, Py_buffer *view, PyObject *data,
               PyObject *addr)
{
    PyObject *bytes = PyBytes_CheckExact(data)
                          ? Py_NewRef(data)
                          : PyBytes_FromStringAndSize(view->buf, view->len);
    int rc;

    if (bytes == NULL) {
        return -1;
    }
    rc = cio_write_queue_push_datagram(&self->queue, bytes, addr);
    if (rc == 0) {
        self->queue.size += datagram_cost(bytes);
        rc = cio_write_transport_maybe_pause(CIO_WRITE_TRANSPORT(self));
    }
    Py_DECREF(bytes);
    return rc;
}

static int
check_address(SocketTransportObject *self, PyObject **addr)
{
    int same;

    if (self->address == NULL || !PyObject_IsTrue(self->address)) {
        return 0;
    }
    same = *addr == Py_None
               ? 1 : PyObject_RichCompareBool(*addr, self->address, Py_EQ);
    if (same < 0) {
        return -1;
    }
    if (!same) {
        PyErr_Format(PyExc_ValueError,
                     "Invalid address: must be None or %S", self->address);
        return -1;
    }
    *addr = self->address;
    return 0;
}

static PyObject *
datagram_sendto(SocketTransportObject *self, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data, *addr = Py_None, *res = NULL;
    Py_buffer view;
    int rc;

    if (kwnames != NULL || nargs < 1 || nargs > 2) {
        /* sendto(data, addr=None): the rare keyword call, spelt out. */
        static const char *const names[] = {"data", "addr"};
        PyObject *given[2] = {NULL, NULL};
        Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

        if (nargs > 2) {
            return PyErr_Format(PyExc_TypeError,
                                "sendto() takes at most 2 arguments "
                                "(%zd given)", nargs + nkw);
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            given[i] = args[i];
        }
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            int slot =
                PyUnicode_CompareWithASCIIString(name, names[0]) == 0 ? 0
                : PyUnicode_CompareWithASCIIString(name, names[1]) == 0 ? 1
                : -1;
            if (slot < 0 || given[slot] != NULL) {
                return PyErr_Format(PyExc_TypeError,
                                    slot < 0 ? "sendto() got an unexpected "
                                               "keyword argument '%U'"
                                             : "sendto() got multiple values "
                                               "for argument '%U'", name);
            }
            given[slot] = args[nargs + i];
        }
        if (given[0] == NULL) {
            PyErr_SetString(PyExc_TypeError, "sendto() missing required "
                            "argument 'data'");
            return NULL;
        }
        data = given[0];
        addr = given[1] ? given[1] : Py_None;
    }
    else {
        data = args[0];
        if (nargs == 2) {
            addr = args[1];
        }
    }
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data)) {
        return PyErr_Format(PyExc_TypeError,
                            "data argument must be a bytes-like object, "
                            "not '%.200s'", _PyType_Name(Py_TYPE(data)));
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (!SEND_EMPTY_DATAGRAMS && view.len == 0) {
        goto done;
    }
    if (check_address(self, &addr) < 0) {
        goto error;
    }
    if (self->conn_lost && self->address != NULL &&
        PyObject_IsTrue(self->address)) {
        if (self->conn_lost >= CIO_LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
            PyObject *msg = PyUnicode_FromString(
                "socket.send() raised exception.");
            cio_state *st = cio_get_state_by_type(Py_TYPE(self));
            rc = msg && st ? cio_log(st, "warning", msg, Py_False) : -1;
            Py_XDECREF(msg);
            if (rc < 0) {
                goto error;
            }
        }
        self->conn_lost++;
        goto done;
    }
    if (self->sock == NULL || self->loop == NULL) {
        goto done;  /* the socket is gone: dropped (stdlib would crash) */
    }
    if (cio_write_queue_empty(&self->queue)) {
        rc = send_datagram(self, view.buf, view.len, data, addr);
        if (rc > 0) {
            goto done;
        }
        if (rc < 0) {
            if (send_failed(self) < 0) {
                goto error;
            }
            goto done;
        }
        if (cio_loop_add_watcher(self->loop, self->fd, CIO_POLL_WRITE,
                                 self->write_ready, NULL, 0,
                                 self->context, NULL) < 0) {
            goto error;
        }
    }
    if (queue_datagram(self, &view, data, addr) < 0) {
        goto error;
    }
done:
    res = Py_NewRef(Py_None);
error:
    PyBuffer_Release(&view);
    return res;
}

static PyObject *
datagram_sendto_ready(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    cio_write_queue_t *q = &self->queue;

    if (self->loop == NULL) {
        Py_RETURN_NONE;
    }
    while (!cio_write_queue_empty(q)) {
        cio_write_chunk_t *c = &q->chunks[q->head];
        int rc = send_datagram(self, PyBytes_AS_STRING(c->data),
                               PyBytes_GET_SIZE(c->data), c->data, c->addr);
        if (rc == 0) {
            break;  /* try again later */
        }
        q->size -= datagram_cost(c->data);
        cio_write_queue_pop(q);
        if (rc < 0) {
            /* As stdlib: report and stop, leaving the writer in place. */
            return send_failed(self) < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    if (cio_write_transport_maybe_resume(CIO_WRITE_TRANSPORT(self)) < 0) {
        return NULL;  /* resume_writing() may queue more */
    }
    if (cio_write_queue_empty(q) && self->loop != NULL) {
        if (cio_loop_remove_watcher(self->loop, self->fd,
                                    CIO_POLL_WRITE) < 0) {
            return NULL;
        }
        if (self->closing) {
            return cio_socket_transport_connection_lost(self, Py_None);
        }
    }
    Py_RETURN_NONE;
}

/* ---- the type ----------------------------------------------------------- */

static PyMethodDef datagram_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))datagram_sendto,
     METH_FASTCALL | METH_KEYWORDS,
     "sendto($self, /, data, addr=None)\n--\n\nSend one datagram; what the "
     "socket does not take now is queued."},
    {"_read_ready", (PyCFunction)datagram_read_ready, METH_NOARGS, NULL},
    {"_sendto_ready", (PyCFunction)datagram_sendto_ready, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* The subclass inherits layout, GC and teardown from the base. */
static PyType_Slot datagram_slots[] = {
    {Py_tp_doc, "A datagram transport over a UDP or Unix datagram socket."},
    {Py_tp_methods, datagram_methods},
    {0, NULL},
};

PyType_Spec cio_datagram_transport_spec = {
    .name = "casyncio._casyncio.DatagramTransport",
    .basicsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = datagram_slots,
};

/* stdlib's _make_datagram_transport. */
PyObject *
cio_datagram_transport_new(LoopObject *loop, PyObject *sock,
                           PyObject *protocol, PyObject *address,
                           PyObject *waiter, PyObject *extra)
{
    PyTypeObject *type = loop->state->datagram_transport_type;
    SocketTransportObject *self;
    PyObject *peer, *family;

    self = (SocketTransportObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fd = -1;
    if (cio_socket_transport_setup(self, loop, sock, protocol, extra,
                                   Py_None, CIO_NAME__sendto_ready) < 0) {
        goto fail;
    }
    self->address = address == Py_None ? NULL : Py_NewRef(address);
    peer = PyDict_GetItemWithError(self->extra, loop->state->str_peername);
    if (peer == NULL && PyErr_Occurred()) {
        goto fail;
    }
    self->connected = peer != NULL && PyObject_IsTrue(peer) == 1;
    family = PyObject_GetAttrString(sock, "family");
    self->sock_family = family ? (int)PyLong_AsLong(family) : -1;
    Py_XDECREF(family);
    if (PyErr_Occurred() ||
        cio_socket_transport_schedule_start(self, waiter) < 0) {
        goto fail;
    }
    return (PyObject *)self;
fail:
    cio_socket_transport_abandon(self);
    return NULL;
}
