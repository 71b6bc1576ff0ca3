/* The record path of TLS connections, in C.
 *
 * casyncio's SSLProtocol is a subclass of stdlib's sslproto.SSLProtocol.
 * The handshake, shutdown and flow-control state machine stay stdlib's;
 * the methods every record passes through are replaced by C versions of
 * the same code, which keep the instance's attributes as stdlib's do, so
 * the Python methods that remain see the same state:
 *   buffer_updated                  the loop's read lands in the incoming BIO
 *   _do_read, _do_read__copied      decrypt, hand the plaintext to the app
 *   _write_appdata, _do_write       encrypt what the app writes
 *   _process_outgoing               write the records to the transport
 * Only the common path of flow control is C: when a water mark is crossed
 * the Python method (_control_ssl_reading, _control_app_writing) runs.
 *
 * One difference in the work done, not in the outcome: stdlib reads from
 * the SSLObject until that raises SSLWantReadError; these reads stop as
 * soon as neither the incoming BIO nor the SSLObject holds a byte, when
 * the next read could only raise (Python leaves OpenSSL's read-ahead off,
 * so no record waits inside OpenSSL uncounted). Raising and catching that
 * error cost about a microsecond per record.
 *
 * The subclass also makes stdlib's read buffer 1 byte: stdlib zero-fills
 * 256 KiB (max_size) per connection, faulting in 64 fresh pages, a sixth
 * of a TLS server's CPU per handshake. The loop gives each protocol its
 * one shared buffer of that size instead (give_ssl_read_buffer in
 * loop_server.c). */
#include "casyncio.h"

/* Attribute and method names, interned once into st->tls_names in this
 * order. */
typedef enum {
    A_INCOMING, A_OUTGOING, A_SSLOBJ, A_STATE, A_SSL_BUFFER_VIEW, A_MAX_SIZE,
    A_APP_PROTOCOL, A_APP_READING_PAUSED, A_APP_PROTOCOL_IS_BUFFER,
    A_WRITE_BACKLOG, A_WRITE_BUFFER_SIZE, A_TRANSPORT, A_SSL_WRITING_PAUSED,
    A_CONN_LOST, A_INCOMING_HIGH_WATER, A_INCOMING_LOW_WATER,
    A_SSL_READING_PAUSED, A_OUTGOING_HIGH_WATER, A_OUTGOING_LOW_WATER,
    A_APP_WRITING_PAUSED, A_PENDING,
    M_READ, M_WRITE, M_PENDING, M_DATA_RECEIVED, M_DO_HANDSHAKE, M_DO_FLUSH,
    M_DO_SHUTDOWN, M_DO_READ_BUFFERED, M_CONTROL_SSL_READING,
    M_CONTROL_APP_WRITING, M_FATAL_ERROR, M_CALL_EOF_RECEIVED,
    M_START_SHUTDOWN, M_APPEND, N_NAMES
} tls_name_t;

static const char *const tls_names[N_NAMES] = {
    "_incoming", "_outgoing", "_sslobj", "_state", "_ssl_buffer_view",
    "max_size", "_app_protocol", "_app_reading_paused",
    "_app_protocol_is_buffer", "_write_backlog", "_write_buffer_size",
    "_transport", "_ssl_writing_paused", "_conn_lost", "_incoming_high_water",
    "_incoming_low_water", "_ssl_reading_paused", "_outgoing_high_water",
    "_outgoing_low_water", "_app_writing_paused", "pending",
    "read", "write", "pending", "data_received", "_do_handshake",
    "_do_flush", "_do_shutdown", "_do_read__buffered",
    "_control_ssl_reading", "_control_app_writing", "_fatal_error",
    "_call_eof_received", "_start_shutdown", "append"};

/* sslproto.SSLProtocolState members, in st->tls_states. */
enum { S_DO_HANDSHAKE, S_WRAPPED, S_FLUSHING, S_SHUTDOWN, S_UNWRAPPED,
       N_STATES };
static const char *const state_names[N_STATES] = {
    "DO_HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN", "UNWRAPPED"};

typedef struct {
    cio_state *st;
    PyObject *self;  /* the SSLProtocol, borrowed */
} proto_t;

#define NAME(p, n) PyTuple_GET_ITEM((p)->st->tls_names, (n))
#define STATE(p, s) PyTuple_GET_ITEM((p)->st->tls_states, (s))

static PyObject *
get(proto_t *p, PyObject *obj, tls_name_t name)
{
    return PyObject_GetAttr(obj, NAME(p, name));
}

static PyObject *
call(proto_t *p, PyObject *obj, tls_name_t method, PyObject *const *args,
     size_t nargs)
{
    PyObject *stack[3] = {obj, nargs > 0 ? args[0] : NULL,
                          nargs > 1 ? args[1] : NULL};

    return PyObject_VectorcallMethod(
        NAME(p, method), stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
}

/* obj.method(*args) whose result is not needed. */
static int
call_discard(proto_t *p, PyObject *obj, tls_name_t method,
             PyObject *const *args, size_t nargs)
{
    PyObject *r = call(p, obj, method, args, nargs);

    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int
call_self(proto_t *p, tls_name_t method, PyObject *const *args, size_t nargs)
{
    return call_discard(p, p->self, method, args, nargs);
}

/* bool(self.<name>): 1, 0 or -1. */
static int
truth(proto_t *p, tls_name_t name)
{
    PyObject *v = get(p, p->self, name);
    int r = v ? PyObject_IsTrue(v) : -1;

    Py_XDECREF(v);
    return r;
}

/* obj.<name> as a Py_SSIZE_T; -1 with an exception on error. */
static Py_ssize_t
get_size(proto_t *p, PyObject *obj, tls_name_t name)
{
    PyObject *v = get(p, obj, name);
    Py_ssize_t n = v ? PyLong_AsSsize_t(v) : -1;

    Py_XDECREF(v);
    return n;
}

/* self._state is one of the states listed; -1 on error. */
static int
state_in(proto_t *p, int a, int b, int c)
{
    PyObject *state = get(p, p->self, A_STATE);
    int r;

    if (state == NULL) {
        return -1;
    }
    r = state == STATE(p, a) || (b >= 0 && state == STATE(p, b)) ||
        (c >= 0 && state == STATE(p, c));
    Py_DECREF(state);
    return r;
}

/* Water-mark crossings go to the Python method, which flips the flag and
 * calls the protocol or transport as stdlib does. */
static int
control(proto_t *p, Py_ssize_t size, tls_name_t high, tls_name_t low,
        tls_name_t paused_name, tls_name_t method)
{
    Py_ssize_t hi = get_size(p, p->self, high), lo;
    int paused;

    if (hi == -1 && PyErr_Occurred()) {
        return -1;
    }
    lo = get_size(p, p->self, low);
    if (lo == -1 && PyErr_Occurred()) {
        return -1;
    }
    paused = truth(p, paused_name);
    if (paused < 0) {
        return -1;
    }
    if ((size >= hi && !paused) || (size <= lo && paused)) {
        return call_self(p, method, NULL, 0);
    }
    return 0;
}

/* _control_ssl_reading: the incoming BIO's size against its marks. */
static int
control_ssl_reading(proto_t *p)
{
    PyObject *incoming = get(p, p->self, A_INCOMING);
    Py_ssize_t size = incoming ? get_size(p, incoming, A_PENDING) : -1;

    Py_XDECREF(incoming);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    return control(p, size, A_INCOMING_HIGH_WATER, A_INCOMING_LOW_WATER,
                   A_SSL_READING_PAUSED, M_CONTROL_SSL_READING);
}

/* _control_app_writing: the outgoing BIO plus the backlog. */
static int
control_app_writing(proto_t *p)
{
    PyObject *outgoing = get(p, p->self, A_OUTGOING);
    Py_ssize_t size = outgoing ? get_size(p, outgoing, A_PENDING) : -1;
    Py_ssize_t backlog;

    Py_XDECREF(outgoing);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    backlog = get_size(p, p->self, A_WRITE_BUFFER_SIZE);
    if (backlog == -1 && PyErr_Occurred()) {
        return -1;
    }
    return control(p, size + backlog, A_OUTGOING_HIGH_WATER,
                   A_OUTGOING_LOW_WATER, A_APP_WRITING_PAUSED,
                   M_CONTROL_APP_WRITING);
}

/* `except SSLAgainErrors: pass` */
static int
clear_if_again(proto_t *p)
{
    if (PyErr_ExceptionMatches(p->st->ssl_again_errors)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* ---- reading ------------------------------------------------------------ */

/* Whether a read could return something: bytes left in the incoming BIO
 * or decrypted in the SSLObject. */
static int
more_to_read(proto_t *p, PyObject *incoming, PyObject *sslobj)
{
    Py_ssize_t n = get_size(p, incoming, A_PENDING);
    PyObject *r;

    if (n != 0) {
        return n > 0 ? 1 : -1;
    }
    r = call(p, sslobj, M_PENDING, NULL, 0);
    n = r ? PyLong_AsSsize_t(r) : -1;
    Py_XDECREF(r);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    return n > 0;
}

/* One bytes of first followed by the chunks in rest. */
static PyObject *
join_chunks(PyObject *first, PyObject *rest)
{
    Py_ssize_t total = PyBytes_GET_SIZE(first), at;
    PyObject *joined;

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rest); i++) {
        total += PyBytes_GET_SIZE(PyList_GET_ITEM(rest, i));
    }
    joined = PyBytes_FromStringAndSize(NULL, total);
    if (joined == NULL) {
        return NULL;
    }
    at = PyBytes_GET_SIZE(first);
    memcpy(PyBytes_AS_STRING(joined), PyBytes_AS_STRING(first), at);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rest); i++) {
        PyObject *chunk = PyList_GET_ITEM(rest, i);

        memcpy(PyBytes_AS_STRING(joined) + at, PyBytes_AS_STRING(chunk),
               PyBytes_GET_SIZE(chunk));
        at += PyBytes_GET_SIZE(chunk);
    }
    return joined;
}

/* _do_read__copied: every decrypted chunk, as one bytes, to the app
 * protocol's data_received; then, if the peer sent close_notify,
 * eof_received and the start of the shutdown. */
static int
do_read_copied(proto_t *p)
{
    PyObject *sslobj = get(p, p->self, A_SSLOBJ);
    PyObject *max_size = get(p, p->self, A_MAX_SIZE);
    PyObject *incoming = get(p, p->self, A_INCOMING);
    PyObject *first = NULL, *rest = NULL, *chunk, *app;
    int more = 1, eof = 0, rc = -1;

    if (sslobj == NULL || max_size == NULL || incoming == NULL) {
        goto done;
    }
    while (more > 0) {
        chunk = call(p, sslobj, M_READ, &max_size, 1);
        if (chunk == NULL) {
            if (!clear_if_again(p)) {
                goto done;
            }
            break;
        }
        if (!PyBytes_Check(chunk) || PyBytes_GET_SIZE(chunk) == 0) {
            /* b'': close_notify (SSLObject.read returns bytes) */
            eof = PyBytes_Check(chunk);
            Py_DECREF(chunk);
            if (!eof) {
                PyErr_SetString(PyExc_TypeError,
                                "SSLObject.read() returned no bytes");
                goto done;
            }
            break;
        }
        if (first == NULL) {
            first = chunk;
        }
        else {
            int appended = (rest != NULL || (rest = PyList_New(0)) != NULL)
                               ? PyList_Append(rest, chunk) : -1;
            Py_DECREF(chunk);
            if (appended < 0) {
                goto done;
            }
        }
        more = more_to_read(p, incoming, sslobj);
    }
    if (more < 0) {
        goto done;
    }
    if (first != NULL) {
        PyObject *data = rest ? join_chunks(first, rest) : Py_NewRef(first);

        app = get(p, p->self, A_APP_PROTOCOL);
        rc = data && app ? call_discard(p, app, M_DATA_RECEIVED, &data, 1)
                         : -1;
        Py_XDECREF(app);
        Py_XDECREF(data);
        if (rc < 0) {
            goto done;
        }
    }
    rc = 0;
    if (eof && (call_self(p, M_CALL_EOF_RECEIVED, NULL, 0) < 0 ||
                call_self(p, M_START_SHUTDOWN, NULL, 0) < 0)) {
        rc = -1;
    }
done:
    Py_XDECREF(sslobj);
    Py_XDECREF(max_size);
    Py_XDECREF(incoming);
    Py_XDECREF(first);
    Py_XDECREF(rest);
    return rc;
}

/* ---- writing ------------------------------------------------------------ */

/* _write_buffer_size -= n */
static int
shrink_write_buffer_size(proto_t *p, Py_ssize_t n)
{
    Py_ssize_t size = get_size(p, p->self, A_WRITE_BUFFER_SIZE);
    PyObject *v;
    int rc;

    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    v = PyLong_FromSsize_t(size - n);
    rc = v ? PyObject_SetAttr(p->self, NAME(p, A_WRITE_BUFFER_SIZE), v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* _process_outgoing: the records in the outgoing BIO to the transport,
 * unless the transport asked for a pause; then the app's flow control. */
static int
process_outgoing(proto_t *p)
{
    int paused = truth(p, A_SSL_WRITING_PAUSED);

    if (paused < 0) {
        return -1;
    }
    if (!paused) {
        PyObject *outgoing = get(p, p->self, A_OUTGOING), *data, *transport;
        Py_ssize_t n;
        int rc = 0;

        data = outgoing ? call(p, outgoing, M_READ, NULL, 0) : NULL;
        Py_XDECREF(outgoing);
        n = data ? PyObject_Length(data) : -1;
        if (n > 0) {
            transport = get(p, p->self, A_TRANSPORT);
            rc = transport ? call_discard(p, transport, M_WRITE, &data, 1)
                           : -1;
            Py_XDECREF(transport);
        }
        Py_XDECREF(data);
        if (n < 0 || rc < 0) {
            return -1;
        }
    }
    return control_app_writing(p);
}

/* _do_write: the backlog through the SSLObject, then _process_outgoing. */
static int
do_write(proto_t *p)
{
    PyObject *backlog = get(p, p->self, A_WRITE_BACKLOG);
    PyObject *sslobj = get(p, p->self, A_SSLOBJ), *data, *count_obj;
    Py_ssize_t len, count;
    int rc = -1;

    if (backlog == NULL || sslobj == NULL) {
        goto done;
    }
    while ((len = PyObject_Length(backlog)) > 0) {
        data = PySequence_GetItem(backlog, 0);
        count_obj = data ? call(p, sslobj, M_WRITE, &data, 1) : NULL;
        if (count_obj == NULL) {
            Py_XDECREF(data);
            if (data != NULL && clear_if_again(p)) {
                break;
            }
            goto done;
        }
        count = PyLong_AsSsize_t(count_obj);
        Py_DECREF(count_obj);
        len = PyObject_Length(data);
        if ((count == -1 || len == -1) && PyErr_Occurred()) {
            Py_DECREF(data);
            goto done;
        }
        if (count < len) {
            PyObject *left = PySequence_GetSlice(data, count, len);
            int set = left ? PySequence_SetItem(backlog, 0, left) : -1;

            Py_XDECREF(left);
            Py_DECREF(data);
            if (set < 0 || shrink_write_buffer_size(p, count) < 0) {
                goto done;
            }
        }
        else {
            Py_DECREF(data);
            if (PySequence_DelItem(backlog, 0) < 0 ||
                shrink_write_buffer_size(p, len) < 0) {
                goto done;
            }
        }
    }
    if (len < 0 && PyErr_Occurred()) {
        goto done;
    }
    rc = process_outgoing(p);
done:
    Py_XDECREF(backlog);
    Py_XDECREF(sslobj);
    return rc;
}

/* ---- the state machine's entry points ----------------------------------- */

/* `except Exception as ex: self._fatal_error(ex, 'Fatal error on SSL
 * protocol')`; other exceptions propagate. */
static int
fatal_unless_base(proto_t *p, int rc)
{
    PyObject *exc, *args[2];

    if (rc == 0 || !PyErr_ExceptionMatches(PyExc_Exception)) {
        return rc;
    }
    exc = cio_fetch_exception();
    args[0] = exc;
    args[1] = p->st->str_ssl_fatal_error;
    rc = call_self(p, M_FATAL_ERROR, args, 2);
    Py_DECREF(exc);
    return rc;
}

/* _do_read: decrypt and deliver unless the app paused reading, write what
 * that produced, then the transport's flow control. */
static int
do_read(proto_t *p)
{
    int active = state_in(p, S_WRAPPED, S_FLUSHING, -1), rc, paused;

    if (active <= 0) {
        return active;
    }
    paused = truth(p, A_APP_READING_PAUSED);
    rc = paused < 0 ? -1 : 0;
    if (rc == 0 && !paused) {
        int buffered = truth(p, A_APP_PROTOCOL_IS_BUFFER);

        rc = buffered < 0 ? -1
             : buffered   ? call_self(p, M_DO_READ_BUFFERED, NULL, 0)
                          : do_read_copied(p);
        if (rc == 0) {
            int backlog = truth(p, A_WRITE_BACKLOG);

            rc = backlog < 0 ? -1 : backlog ? do_write(p)
                                            : process_outgoing(p);
        }
    }
    if (rc == 0) {
        rc = control_ssl_reading(p);
    }
    return fatal_unless_base(p, rc);
}

/* _write_appdata: queue the app's data, and encrypt it at once when the
 * connection is up; after a close, count and (past a threshold) warn. */
static int
write_appdata(proto_t *p, PyObject *list_of_data)
{
    PyObject *backlog, *iter, *data, *v;
    Py_ssize_t size;
    int closed = state_in(p, S_FLUSHING, S_SHUTDOWN, S_UNWRAPPED), rc = 0;
    int wrapped;

    if (closed < 0) {
        return -1;
    }
    if (closed) {
        Py_ssize_t lost = get_size(p, p->self, A_CONN_LOST);

        if (lost == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (lost >= p->st->conn_lost_threshold &&
            cio_log(p->st, "warning", p->st->str_ssl_closed, Py_False) < 0) {
            return -1;
        }
        v = PyLong_FromSsize_t(lost + 1);
        rc = v ? PyObject_SetAttr(p->self, NAME(p, A_CONN_LOST), v) : -1;
        Py_XDECREF(v);
        return rc;
    }
    size = get_size(p, p->self, A_WRITE_BUFFER_SIZE);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    backlog = get(p, p->self, A_WRITE_BACKLOG);
    iter = backlog ? PyObject_GetIter(list_of_data) : NULL;
    while (iter != NULL && (data = PyIter_Next(iter)) != NULL) {
        Py_ssize_t len = PyObject_Length(data);

        rc = len < 0 ? -1 : call_discard(p, backlog, M_APPEND, &data, 1);
        Py_DECREF(data);
        if (rc < 0) {
            break;
        }
        size += len;
    }
    rc = iter == NULL || PyErr_Occurred() ? -1 : 0;
    Py_XDECREF(iter);
    Py_XDECREF(backlog);
    /* Kept as far as it got, as stdlib's += per item does. */
    v = PyLong_FromSsize_t(size);
    if (v == NULL ||
        PyObject_SetAttr(p->self, NAME(p, A_WRITE_BUFFER_SIZE), v) < 0) {
        rc = -1;
    }
    Py_XDECREF(v);
    if (rc < 0) {
        return -1;
    }
    wrapped = state_in(p, S_WRAPPED, -1, -1);
    rc = wrapped < 0 ? -1 : wrapped ? do_write(p) : 0;
    return fatal_unless_base(p, rc);
}

/* buffer_updated: the bytes the transport read into the shared buffer go
 * to the incoming BIO, then on as the state requires. */
static int
buffer_updated(proto_t *p, PyObject *nbytes)
{
    PyObject *view = get(p, p->self, A_SSL_BUFFER_VIEW);
    PyObject *slice = PySlice_New(NULL, nbytes, NULL), *chunk, *incoming;
    PyObject *state;
    int rc;

    chunk = view && slice ? PyObject_GetItem(view, slice) : NULL;
    Py_XDECREF(view);
    Py_XDECREF(slice);
    incoming = chunk ? get(p, p->self, A_INCOMING) : NULL;
    rc = incoming ? call_discard(p, incoming, M_WRITE, &chunk, 1) : -1;
    Py_XDECREF(chunk);
    Py_XDECREF(incoming);
    state = rc == 0 ? get(p, p->self, A_STATE) : NULL;
    if (state == NULL) {
        return -1;
    }
    if (state == STATE(p, S_DO_HANDSHAKE)) {
        rc = call_self(p, M_DO_HANDSHAKE, NULL, 0);
    }
    else if (state == STATE(p, S_WRAPPED)) {
        rc = do_read(p);
    }
    else if (state == STATE(p, S_FLUSHING)) {
        rc = call_self(p, M_DO_FLUSH, NULL, 0);
    }
    else if (state == STATE(p, S_SHUTDOWN)) {
        rc = call_self(p, M_DO_SHUTDOWN, NULL, 0);
    }
    Py_DECREF(state);
    return rc;
}

/* ---- the methods -------------------------------------------------------- */

/* The methods are module functions made instance methods of the class:
 * args[0] is the SSLProtocol, and the module gives the state. */
static int
unpack(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
       Py_ssize_t want, const char *name, proto_t *p)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes %zd positional arguments but %zd were "
                     "given", name, want, nargs);
        return -1;
    }
    p->st = PyModule_GetState(module);
    p->self = args[0];
    return 0;
}

#define TLS_METHOD(cname, pyname, want, expr)                               \
    static PyObject *                                                       \
    cname(PyObject *module, PyObject *const *args, Py_ssize_t nargs)        \
    {                                                                       \
        proto_t p_;                                                         \
        proto_t *p = &p_;                                                   \
        if (unpack(module, args, nargs, want, pyname, p) < 0) {             \
            return NULL;                                                    \
        }                                                                   \
        return (expr) < 0 ? NULL : Py_NewRef(Py_None);                      \
    }

TLS_METHOD(m_buffer_updated, "buffer_updated", 2, buffer_updated(p, args[1]))
TLS_METHOD(m_do_read, "_do_read", 1, do_read(p))
TLS_METHOD(m_do_read_copied, "_do_read__copied", 1, do_read_copied(p))
TLS_METHOD(m_write_appdata, "_write_appdata", 2, write_appdata(p, args[1]))
TLS_METHOD(m_do_write, "_do_write", 1, do_write(p))
TLS_METHOD(m_process_outgoing, "_process_outgoing", 1, process_outgoing(p))

#define TLS_DEF(cname, pyname)                                              \
    {pyname, (PyCFunction)(void (*)(void))cname, METH_FASTCALL, NULL}

static PyMethodDef tls_methods[] = {
    TLS_DEF(m_buffer_updated, "buffer_updated"),
    TLS_DEF(m_do_read, "_do_read"),
    TLS_DEF(m_do_read_copied, "_do_read__copied"),
    TLS_DEF(m_write_appdata, "_write_appdata"),
    TLS_DEF(m_do_write, "_do_write"),
    TLS_DEF(m_process_outgoing, "_process_outgoing"),
    {NULL, NULL, 0, NULL},
};

/* ---- set-up ------------------------------------------------------------- */

/* What the C methods need from sslproto and asyncio.constants. */
static int
import_record_path(cio_state *st, PyObject *sslproto)
{
    PyObject *states = PyObject_GetAttrString(sslproto, "SSLProtocolState");
    PyObject *constants = PyImport_ImportModule("asyncio.constants");
    PyObject *threshold = constants ? PyObject_GetAttrString(
                              constants, "LOG_THRESHOLD_FOR_CONNLOST_WRITES")
                                    : NULL;

    st->ssl_again_errors = PyObject_GetAttrString(sslproto, "SSLAgainErrors");
    st->tls_states = states ? cio_tuple_of_attrs(states, state_names, N_STATES)
                            : NULL;
    st->tls_names = cio_tuple_of_names(tls_names, N_NAMES);
    st->str_ssl_fatal_error =
        PyUnicode_InternFromString("Fatal error on SSL protocol");
    st->str_ssl_closed = PyUnicode_InternFromString("SSL connection is closed");
    st->conn_lost_threshold = threshold ? PyLong_AsLong(threshold) : -1;
    Py_XDECREF(states);
    Py_XDECREF(constants);
    Py_XDECREF(threshold);
    if (!st->ssl_again_errors || !st->tls_states || !st->tls_names ||
        !st->str_ssl_fatal_error || !st->str_ssl_closed ||
        PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

static int
install_methods(PyObject *module, PyObject *type)
{
    for (PyMethodDef *def = tls_methods; def->ml_name != NULL; def++) {
        PyObject *fn = PyCFunction_NewEx(def, module, NULL);
        PyObject *method = fn ? PyInstanceMethod_New(fn) : NULL;
        int rc = method ? PyObject_SetAttrString(type, def->ml_name, method)
                        : -1;

        Py_XDECREF(fn);
        Py_XDECREF(method);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

int
cio_tls_records_init(PyObject *module, cio_state *st)
{
    PyObject *sslproto = PyImport_ImportModule("asyncio.sslproto");
    PyObject *base = sslproto ? PyObject_GetAttrString(sslproto,
                                                       "SSLProtocol")
                              : NULL;
    int rc = -1;

    if (base == NULL) {
        goto done;
    }
    st->ssl_max_size = PyObject_GetAttrString(base, "max_size");
    if (st->ssl_max_size == NULL || !PyLong_Check(st->ssl_max_size)) {
        if (st->ssl_max_size != NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "SSLProtocol.max_size is not an int");
        }
        goto done;
    }
    st->ssl_protocol_type = PyObject_CallFunction(
        (PyObject *)&PyType_Type, "s(O){sissssss}", "SSLProtocol", base,
        "max_size", 1, "__module__", "casyncio._casyncio", "__qualname__",
        "SSLProtocol", "__doc__",
        "stdlib's SSLProtocol with its read buffer given by the loop and "
        "its record path in C.");
    if (st->ssl_protocol_type == NULL) {
        goto done;
    }
    /* Without the ssl module, sslproto has no SSLAgainErrors and the
     * class is never used for a connection. */
    if (!PyObject_HasAttrString(sslproto, "SSLAgainErrors")) {
        rc = 0;
        goto done;
    }
    rc = import_record_path(st, sslproto) < 0 ||
                 install_methods(module, st->ssl_protocol_type) < 0
             ? -1 : 0;
done:
    Py_XDECREF(sslproto);
    Py_XDECREF(base);
    return rc;
}
