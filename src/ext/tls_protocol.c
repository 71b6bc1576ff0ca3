/* casyncio's SSLProtocol: stdlib's sslproto.SSLProtocol with its
 * handshake, record path and shutdown in C.
 *
 * The class is a subclass of stdlib's. Its C methods are stdlib's code
 * over the instance's attributes as stdlib keeps them (read and written
 * in the instance __dict__), so the Python methods that remain see the
 * same state:
 *   _get_app_transport              the app transport (below)
 *   _do_handshake, _on_handshake_complete, _wakeup_waiter
 *   get_buffer, buffer_updated      the loop's read lands in the incoming BIO
 *   _do_read, _do_read__copied      decrypt, hand the plaintext to the app
 *   _do_read__buffered              ... or into the app's own buffer
 *   _write_appdata, _do_write       encrypt what the app writes
 *   _process_outgoing               write the records to the transport
 *   _do_flush, _do_shutdown         close_notify both ways
 * What differs between Python versions stays stdlib's Python and is called
 * by name: _start_handshake, _start_shutdown, _on_shutdown_complete, the
 * timeout checks, _abort, connection_lost and the flow-control transitions
 * (_control_ssl_reading, _control_app_writing, run when a water mark is
 * crossed). _do_read__buffered's one difference, a lambda or a bound
 * method given to call_soon, is taken from stdlib's code at start-up.
 *
 * The app transport is a subclass of stdlib's _SSLProtocolTransport, named
 * as it is, whose write() is C; it is used while sslproto's module-level
 * _SSLProtocolTransport is stdlib's own (a replaced one is honoured).
 *
 * The SSLObject's methods that only pass their arguments on to the _ssl
 * object inside it (read, write, pending, do_handshake, unwrap, ...) are
 * called on that object at once when the SSLObject is exactly
 * ssl.SSLObject with stdlib's methods; any other (a context's own
 * sslobject_class, a mock) is called as it is.
 *
 * One difference in the work done, not in the outcome: stdlib reads from
 * the SSLObject until that raises SSLWantReadError; these reads stop as
 * soon as neither the incoming BIO nor the SSLObject holds a byte, when
 * the next read could only raise (Python leaves OpenSSL's read-ahead off,
 * so no record waits inside OpenSSL uncounted). Raising and catching that
 * error cost about a microsecond per record. And stdlib asks each read for
 * max_size (256 KiB) bytes, which glibc serves with mmap, mremap and
 * munmap (or brk calls) per read unless the process happens to have
 * freed a block that large before (glibc's mmap threshold rises then):
 * that tripled a TLS server's CPU per 1 KiB request. These reads ask for
 * what the incoming BIO holds plus one record (see read_size).
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
    A_INCOMING, A_OUTGOING, A_SSLOBJ, A_STATE, A_SSL_BUFFER,
    A_SSL_BUFFER_VIEW, A_MAX_SIZE, A_APP_PROTOCOL, A_APP_READING_PAUSED,
    A_APP_PROTOCOL_IS_BUFFER, A_WRITE_BACKLOG, A_WRITE_BUFFER_SIZE,
    A_TRANSPORT, A_SSL_WRITING_PAUSED, A_CONN_LOST, A_INCOMING_HIGH_WATER,
    A_INCOMING_LOW_WATER, A_SSL_READING_PAUSED, A_OUTGOING_HIGH_WATER,
    A_OUTGOING_LOW_WATER, A_APP_WRITING_PAUSED, A_PENDING, A_LOOP,
    A_WAITER, A_EXTRA, A_APP_STATE, A_APP_TRANSPORT,
    A_APP_TRANSPORT_CREATED, A_HANDSHAKE_TIMEOUT_HANDLE,
    A_HANDSHAKE_START_TIME, A_EOF_RECEIVED, A_SSL_PROTOCOL,
    A_SSLPROTO_TRANSPORT, A_APP_GET_BUFFER, A_APP_BUFFER_UPDATED,
    M_READ, M_WRITE, M_DATA_RECEIVED, M_DO_READ_BUFFERED,
    M_CONTROL_SSL_READING, M_CONTROL_APP_WRITING, M_FATAL_ERROR,
    M_CALL_EOF_RECEIVED, M_START_SHUTDOWN, M_APPEND, M_CANCEL, M_SET_STATE,
    M_GET_DEBUG, M_TIME, M_UPDATE, M_CONNECTION_MADE, M_CANCELLED,
    M_SET_RESULT, M_SET_EXCEPTION, M_ON_SHUTDOWN_COMPLETE, M_WRITE_APPDATA,
    M_GET_READ_BUFFER_SIZE, M_DO_READ, M_CALL_SOON,
    N_NAMES
} tls_name_t;

static const char *const tls_names[N_NAMES] = {
    "_incoming", "_outgoing", "_sslobj", "_state", "_ssl_buffer",
    "_ssl_buffer_view", "max_size", "_app_protocol", "_app_reading_paused",
    "_app_protocol_is_buffer", "_write_backlog", "_write_buffer_size",
    "_transport", "_ssl_writing_paused", "_conn_lost",
    "_incoming_high_water", "_incoming_low_water", "_ssl_reading_paused",
    "_outgoing_high_water", "_outgoing_low_water", "_app_writing_paused",
    "pending", "_loop", "_waiter", "_extra", "_app_state", "_app_transport",
    "_app_transport_created", "_handshake_timeout_handle",
    "_handshake_start_time", "_eof_received", "_ssl_protocol",
    "_SSLProtocolTransport", "_app_protocol_get_buffer",
    "_app_protocol_buffer_updated",
    "read", "write", "data_received", "_do_read__buffered",
    "_control_ssl_reading", "_control_app_writing", "_fatal_error",
    "_call_eof_received", "_start_shutdown", "append", "cancel",
    "_set_state", "get_debug", "time", "update", "connection_made",
    "cancelled", "set_result", "set_exception", "_on_shutdown_complete",
    "_write_appdata", "_get_read_buffer_size", "_do_read", "call_soon"};

/* sslproto.SSLProtocolState members, in st->tls_states. */
enum { S_DO_HANDSHAKE, S_WRAPPED, S_FLUSHING, S_SHUTDOWN, S_UNWRAPPED,
       N_STATES };
static const char *const state_names[N_STATES] = {
    "DO_HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN", "UNWRAPPED"};

/* sslproto.AppProtocolState members, in st->tls_app_states. */
enum { APP_INIT, APP_CON_MADE, N_APP_STATES };
static const char *const app_state_names[N_APP_STATES] = {
    "STATE_INIT", "STATE_CON_MADE"};

/* The ssl.SSLObject methods called on the _ssl object inside it: their
 * names there, the same but for unwrap(), which calls shutdown(). The
 * originals (st->ssl_object_originals) are ssl.SSLObject's, by the names
 * of ssl_object_methods. */
typedef enum {
    SSL_READ, SSL_WRITE, SSL_PENDING, SSL_DO_HANDSHAKE, SSL_UNWRAP,
    SSL_GETPEERCERT, SSL_CIPHER, SSL_COMPRESSION, N_SSL_METHODS
} ssl_method_t;

static const char *const ssl_object_methods[N_SSL_METHODS] = {
    "read", "write", "pending", "do_handshake", "unwrap", "getpeercert",
    "cipher", "compression"};
static const char *const ssl_inner_methods[N_SSL_METHODS] = {
    "read", "write", "pending", "do_handshake", "shutdown", "getpeercert",
    "cipher", "compression"};

typedef struct {
    cio_state *st;
    PyObject *self;  /* the SSLProtocol, borrowed */
} proto_t;

#define NAME(p, n) PyTuple_GET_ITEM((p)->st->tls_names, (n))
#define STATE(p, s) PyTuple_GET_ITEM((p)->st->tls_states, (s))
#define APP_STATE(p, s) PyTuple_GET_ITEM((p)->st->tls_app_states, (s))

/* obj.<name>: SSLProtocol's state is in its __dict__ (cio_instance_get);
 * the BIOs' and handles' attributes are found as Python finds them. */
static PyObject *
get(proto_t *p, PyObject *obj, tls_name_t name)
{
    return cio_instance_get(obj, NAME(p, name));
}

static int
set(proto_t *p, tls_name_t name, PyObject *value)
{
    return cio_instance_set(p->self, NAME(p, name), value);
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

/* self.<attr>.<method>(arg or nothing), its result dropped. */
static int
call_attr(proto_t *p, tls_name_t attr, tls_name_t method, PyObject *arg)
{
    PyObject *obj = get(p, p->self, attr);
    int rc = obj ? call_discard(p, obj, method, &arg, arg ? 1 : 0) : -1;

    Py_XDECREF(obj);
    return rc;
}

/* sslobj.<method>(*args) (see the top of the file). */
static PyObject *
ssl_call(proto_t *p, PyObject *sslobj, ssl_method_t method,
         PyObject *const *args, size_t nargs)
{
    cio_state *st = p->st;
    PyObject *stack[3] = {NULL, nargs > 0 ? args[0] : NULL,
                          nargs > 1 ? args[1] : NULL}, *r;
    const size_t flags = (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET;

    if (Py_TYPE(sslobj) != st->ssl_object_type ||
        !cio_class_unchanged(st->ssl_object_type, st->ssl_object_originals,
                             ssl_object_methods, &st->ssl_object_version)) {
        stack[0] = sslobj;
        return PyObject_VectorcallMethod(
            PyTuple_GET_ITEM(st->ssl_object_names, method), stack, flags,
            NULL);
    }
    stack[0] = get(p, sslobj, A_SSLOBJ);
    if (stack[0] == NULL) {
        return NULL;
    }
    r = PyObject_VectorcallMethod(PyTuple_GET_ITEM(st->ssl_inner_names,
                                                   method),
                                  stack, flags, NULL);
    Py_DECREF(stack[0]);
    return r;
}

/* self._sslobj.<method>(*args) */
static PyObject *
ssl_call_self(proto_t *p, ssl_method_t method, PyObject *const *args,
              size_t nargs)
{
    PyObject *sslobj = get(p, p->self, A_SSLOBJ);
    PyObject *r = sslobj ? ssl_call(p, sslobj, method, args, nargs) : NULL;

    Py_XDECREF(sslobj);
    return r;
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

/* self._set_state(<state>): stdlib's method, which checks the move. */
static int
set_state(proto_t *p, int state)
{
    PyObject *arg = STATE(p, state);

    return call_self(p, M_SET_STATE, &arg, 1);
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
 * (also stored in *in_bio) or decrypted in the SSLObject. */
static int
more_to_read(proto_t *p, PyObject *incoming, PyObject *sslobj,
             Py_ssize_t *in_bio)
{
    Py_ssize_t n = *in_bio = get_size(p, incoming, A_PENDING);
    PyObject *r;

    if (n != 0) {
        return n > 0 ? 1 : -1;
    }
    r = ssl_call(p, sslobj, SSL_PENDING, NULL, 0);
    n = r ? PyLong_AsSsize_t(r) : -1;
    Py_XDECREF(r);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    return n > 0;
}

/* The size a read asks for: what the incoming BIO holds (in_bio) plus
 * one record's plaintext (16 KiB), which OpenSSL may hold decrypted or
 * half read; max_size at most. A read can only return less than is
 * there, and then the loop reads again. */
static PyObject *
read_size(Py_ssize_t in_bio, Py_ssize_t max_size)
{
    enum { TLS_MAX_PLAINTEXT = 16384 };

    return PyLong_FromSsize_t(Py_MIN(in_bio + TLS_MAX_PLAINTEXT, max_size));
}

/* The peer's close_notify: eof_received, then the shutdown. */
static int
on_close_notify(proto_t *p)
{
    return call_self(p, M_CALL_EOF_RECEIVED, NULL, 0) < 0 ||
                   call_self(p, M_START_SHUTDOWN, NULL, 0) < 0
               ? -1 : 0;
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
    Py_ssize_t max_size = get_size(p, p->self, A_MAX_SIZE);
    PyObject *incoming = get(p, p->self, A_INCOMING);
    PyObject *first = NULL, *rest = NULL, *chunk, *app, *size;
    Py_ssize_t in_bio = -1;
    int more = 1, eof = 0, rc = -1;

    if (sslobj == NULL || (max_size == -1 && PyErr_Occurred()) ||
        incoming == NULL ||
        ((in_bio = get_size(p, incoming, A_PENDING)) == -1 &&
         PyErr_Occurred())) {
        goto done;
    }
    while (more > 0) {
        size = read_size(in_bio, max_size);
        chunk = size ? ssl_call(p, sslobj, SSL_READ, &size, 1) : NULL;
        Py_XDECREF(size);
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
        more = more_to_read(p, incoming, sslobj, &in_bio);
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
    rc = eof ? on_close_notify(p) : 0;
done:
    Py_XDECREF(sslobj);
    Py_XDECREF(incoming);
    Py_XDECREF(first);
    Py_XDECREF(rest);
    return rc;
}

/* The callback _do_read__buffered gives call_soon when the app's buffer
 * filled up: `lambda: self._do_read()` in 3.11 and the first 3.12s, the
 * bound self._do_read in later ones. st->ssl_read_again_lambda is that
 * lambda's code taken from the installed stdlib (None where there is no
 * lambda), so the callback, and a debug-mode handle's repr, are the
 * installed version's. */
static PyObject *
read_again_callback(proto_t *p)
{
    PyObject *code = p->st->ssl_read_again_lambda, *fn, *cell, *closure;

    if (code == Py_None) {
        return PyObject_GetAttr(p->self, NAME(p, M_DO_READ));
    }
    fn = PyFunction_New(code, PyModule_GetDict(p->st->sslproto_module));
    cell = fn ? PyCell_New(p->self) : NULL;
    closure = cell ? PyTuple_Pack(1, cell) : NULL;
    Py_XDECREF(cell);
    if (closure == NULL || PyFunction_SetClosure(fn, closure) < 0) {
        Py_CLEAR(fn);
    }
    Py_XDECREF(closure);
    return fn;
}

/* *count = self._sslobj.read(wants - offset, buf[offset:]) (buf itself at
 * offset 0). 1 for `except SSLAgainErrors`, *count unchanged. */
static int
read_into(proto_t *p, PyObject *sslobj, PyObject *buf, Py_ssize_t offset,
          Py_ssize_t wants, Py_ssize_t *count)
{
    PyObject *args[2] = {PyLong_FromSsize_t(wants - offset), NULL}, *r;
    Py_ssize_t n;

    if (offset == 0) {
        args[1] = Py_NewRef(buf);
    }
    else {
        PyObject *start = PyLong_FromSsize_t(offset);
        PyObject *slice = start ? PySlice_New(start, NULL, NULL) : NULL;

        args[1] = slice ? PyObject_GetItem(buf, slice) : NULL;
        Py_XDECREF(start);
        Py_XDECREF(slice);
    }
    if (args[0] == NULL || args[1] == NULL) {
        Py_XDECREF(args[0]);
        Py_XDECREF(args[1]);
        return -1;
    }
    r = ssl_call(p, sslobj, SSL_READ, args, 2);
    Py_DECREF(args[0]);
    Py_DECREF(args[1]);
    if (r == NULL) {
        return clear_if_again(p) ? 1 : -1;
    }
    n = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    *count = n;
    return 0;
}

/* self.<name>(offset) where <name> holds a callable. */
static int
call_held(proto_t *p, tls_name_t name, Py_ssize_t offset)
{
    PyObject *fn = get(p, p->self, name);
    PyObject *arg = fn ? PyLong_FromSsize_t(offset) : NULL;
    PyObject *r = arg ? PyObject_CallOneArg(fn, arg) : NULL;

    Py_XDECREF(fn);
    Py_XDECREF(arg);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* self._loop.call_soon(<read again>) */
static int
read_again_soon(proto_t *p)
{
    PyObject *cb = read_again_callback(p);
    int rc = cb ? call_attr(p, A_LOOP, M_CALL_SOON, cb) : -1;

    Py_XDECREF(cb);
    return rc;
}

/* _do_read__buffered: decrypt into the buffer the app protocol's
 * get_buffer() gives, then buffer_updated(); a buffer filled to its end
 * means more may wait, so _do_read runs again from the ready queue. As in
 * do_read_copied, a read that could only raise SSLWantReadError is not
 * made. */
static int
do_read_buffered(proto_t *p)
{
    PyObject *sslobj = get(p, p->self, A_SSLOBJ), *incoming = NULL;
    PyObject *size = NULL, *get_buffer = NULL, *buf = NULL;
    Py_ssize_t wants, offset = 0, count = 1, in_bio;
    int rc = -1, r;

    if (sslobj == NULL || (incoming = get(p, p->self, A_INCOMING)) == NULL ||
        (size = call(p, p->self, M_GET_READ_BUFFER_SIZE, NULL, 0)) == NULL ||
        (get_buffer = get(p, p->self, A_APP_GET_BUFFER)) == NULL ||
        (buf = PyObject_CallOneArg(get_buffer, size)) == NULL ||
        (wants = PyObject_Length(buf)) < 0) {
        goto done;
    }
    r = read_into(p, sslobj, buf, 0, wants, &count);
    if (r == 0 && count > 0) {
        offset = count;
        while (offset < wants) {
            r = more_to_read(p, incoming, sslobj, &in_bio);
            r = r < 0 ? -1 : r == 0 ? 1
                           : read_into(p, sslobj, buf, offset, wants, &count);
            if (r != 0 || count <= 0) {
                break;
            }
            offset += count;
        }
        if (offset >= wants) {  /* not left by a break */
            r = read_again_soon(p);
        }
    }
    if (r < 0 || (offset > 0 &&
                  call_held(p, A_APP_BUFFER_UPDATED, offset) < 0)) {
        goto done;
    }
    rc = count == 0 ? on_close_notify(p) : 0;
done:
    Py_XDECREF(sslobj);
    Py_XDECREF(incoming);
    Py_XDECREF(size);
    Py_XDECREF(get_buffer);
    Py_XDECREF(buf);
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
    rc = v ? set(p, A_WRITE_BUFFER_SIZE, v) : -1;
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
        count_obj = data ? ssl_call(p, sslobj, SSL_WRITE, &data, 1) : NULL;
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
             : !buffered  ? do_read_copied(p)
             : p->st->ssl_read_again_lambda ? do_read_buffered(p)
                                            : call_self(p, M_DO_READ_BUFFERED,
                                                        NULL, 0);
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
        rc = v ? set(p, A_CONN_LOST, v) : -1;
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
    if (v == NULL || set(p, A_WRITE_BUFFER_SIZE, v) < 0) {
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

/* ---- the handshake -------------------------------------------------- */

/* _wakeup_waiter(exc=None): the connection's waiter gets exc, or None. */
static int
wakeup_waiter(proto_t *p, PyObject *exc)
{
    PyObject *waiter = get(p, p->self, A_WAITER), *cancelled;
    int rc = -1, is_cancelled;

    if (waiter == NULL || waiter == Py_None) {
        Py_XDECREF(waiter);
        return waiter ? 0 : -1;
    }
    cancelled = call(p, waiter, M_CANCELLED, NULL, 0);
    is_cancelled = cancelled ? PyObject_IsTrue(cancelled) : -1;
    Py_XDECREF(cancelled);
    if (is_cancelled == 0) {
        PyObject *arg = exc ? exc : Py_None;

        is_cancelled = call_discard(
            p, waiter, exc ? M_SET_EXCEPTION : M_SET_RESULT, &arg, 1);
    }
    if (is_cancelled >= 0) {
        rc = set(p, A_WAITER, Py_None);
    }
    Py_DECREF(waiter);
    return rc;
}

/* _get_app_transport: made once, as stdlib's (see the top of the file). */
static PyObject *
get_app_transport(proto_t *p)
{
    PyObject *app = get(p, p->self, A_APP_TRANSPORT), *cls, *loop;
    int created;

    if (app == NULL || app != Py_None) {
        return app;
    }
    Py_DECREF(app);
    created = truth(p, A_APP_TRANSPORT_CREATED);
    if (created != 0) {
        if (created > 0) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Creating _SSLProtocolTransport twice");
        }
        return NULL;
    }
    cls = get(p, p->st->sslproto_module, A_SSLPROTO_TRANSPORT);
    if (cls == p->st->ssl_app_transport_base) {
        Py_SETREF(cls, Py_NewRef(p->st->ssl_app_transport_type));
    }
    loop = cls ? get(p, p->self, A_LOOP) : NULL;
    app = loop ? PyObject_CallFunctionObjArgs(cls, loop, p->self, NULL)
               : NULL;
    Py_XDECREF(cls);
    Py_XDECREF(loop);
    if (app == NULL || set(p, A_APP_TRANSPORT, app) < 0 ||
        set(p, A_APP_TRANSPORT_CREATED, Py_True) < 0) {
        Py_XDECREF(app);
        return NULL;
    }
    return app;
}

/* The handshake failed with exc: `except Exception as exc:` of
 * _on_handshake_complete. */
static int
handshake_failed(proto_t *p, PyObject *exc)
{
    const char *text = "SSL handshake failed";
    PyObject *args[2] = {exc, NULL};
    int rc;

    if (set_state(p, S_UNWRAPPED) < 0) {
        return -1;
    }
    rc = PyObject_IsInstance(exc, p->st->ssl_certificate_error);
    if (rc < 0) {
        return -1;
    }
    if (rc) {
        text = "SSL handshake failed on verifying the certificate";
    }
    args[1] = PyUnicode_FromString(text);
    rc = args[1] ? call_self(p, M_FATAL_ERROR, args, 2) : -1;
    Py_XDECREF(args[1]);
    return rc < 0 ? -1 : wakeup_waiter(p, exc);
}

/* In debug mode, how long the handshake took, as stdlib logs it. */
static int
log_handshake_time(proto_t *p)
{
    PyObject *loop = get(p, p->self, A_LOOP), *debug, *now, *start, *dt;
    PyObject *ms = NULL, *res = NULL;
    int on;

    debug = loop ? call(p, loop, M_GET_DEBUG, NULL, 0) : NULL;
    on = debug ? PyObject_IsTrue(debug) : -1;
    Py_XDECREF(debug);
    if (on <= 0) {
        Py_XDECREF(loop);
        return on;
    }
    now = call(p, loop, M_TIME, NULL, 0);
    Py_DECREF(loop);
    start = now ? get(p, p->self, A_HANDSHAKE_START_TIME) : NULL;
    dt = start ? PyNumber_Subtract(now, start) : NULL;
    if (dt != NULL) {
        PyObject *thousand = PyFloat_FromDouble(1e3);

        ms = thousand ? PyNumber_Multiply(dt, thousand) : NULL;
        Py_XDECREF(thousand);
    }
    if (ms != NULL) {
        res = PyObject_CallMethod(p->st->logger, "debug", "sOO",
                                  "%r: SSL handshake took %.1f ms", p->self,
                                  ms);
    }
    Py_XDECREF(now);
    Py_XDECREF(start);
    Py_XDECREF(dt);
    Py_XDECREF(ms);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* self._extra.update(peercert=..., cipher=..., compression=...,
 * ssl_object=sslobj), in that order. */
static int
add_extra_info(proto_t *p, PyObject *sslobj, PyObject *peercert)
{
    PyObject *extra = get(p, p->self, A_EXTRA), *info = NULL, *update;
    PyObject *cipher = NULL, *compression = NULL;
    int rc = -1;

    if (extra == NULL) {
        return -1;
    }
    cipher = ssl_call(p, sslobj, SSL_CIPHER, NULL, 0);
    compression = cipher ? ssl_call(p, sslobj, SSL_COMPRESSION, NULL, 0)
                         : NULL;
    if (compression != NULL) {
        info = Py_BuildValue("{sOsOsOsO}", "peercert", peercert, "cipher",
                             cipher, "compression", compression,
                             "ssl_object", sslobj);
    }
    if (info != NULL && PyDict_CheckExact(extra)) {
        rc = PyDict_Update(extra, info);
    }
    else if (info != NULL) {
        PyObject *r;

        update = get(p, extra, M_UPDATE);
        r = update ? PyObject_VectorcallDict(update, NULL, 0, info) : NULL;
        rc = r ? 0 : -1;
        Py_XDECREF(update);
        Py_XDECREF(r);
    }
    Py_DECREF(extra);
    Py_XDECREF(cipher);
    Py_XDECREF(compression);
    Py_XDECREF(info);
    return rc;
}

/* `raise exc`: an exception class is raised as its instance (stdlib's
 * eof_received passes ConnectionResetError itself). */
static void
raise_as_python(PyObject *exc)
{
    if (PyExceptionInstance_Check(exc)) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    }
    else if (PyExceptionClass_Check(exc)) {
        PyErr_SetNone(exc);
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must derive from BaseException");
    }
}

/* _on_handshake_complete(handshake_exc): the extra info, the app
 * protocol's connection_made, the waiter, then the first read. */
static int
on_handshake_complete(proto_t *p, PyObject *handshake_exc)
{
    PyObject *handle = get(p, p->self, A_HANDSHAKE_TIMEOUT_HANDLE);
    PyObject *sslobj, *peercert = NULL, *app_state, *exc;
    int rc;

    if (handle == NULL) {
        return -1;
    }
    rc = handle == Py_None ? 0 : call_discard(p, handle, M_CANCEL, NULL, 0);
    Py_DECREF(handle);
    if (rc < 0 || (handle != Py_None &&
                   set(p, A_HANDSHAKE_TIMEOUT_HANDLE, Py_None) < 0)) {
        return -1;
    }
    sslobj = get(p, p->self, A_SSLOBJ);
    if (sslobj == NULL) {
        return -1;
    }
    if (handshake_exc == Py_None && set_state(p, S_WRAPPED) == 0) {
        peercert = ssl_call(p, sslobj, SSL_GETPEERCERT, NULL, 0);
    }
    if (peercert == NULL) {
        if (handshake_exc != Py_None) {
            raise_as_python(handshake_exc);
        }
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_DECREF(sslobj);
            return -1;  /* a BaseException goes on up */
        }
        exc = cio_fetch_exception();
        rc = handshake_failed(p, exc);
        Py_DECREF(exc);
        Py_DECREF(sslobj);
        return rc;
    }
    rc = log_handshake_time(p) < 0 || add_extra_info(p, sslobj, peercert) < 0
             ? -1 : 0;
    Py_DECREF(sslobj);
    Py_DECREF(peercert);
    app_state = rc == 0 ? get(p, p->self, A_APP_STATE) : NULL;
    if (app_state == NULL) {
        return -1;
    }
    rc = PyObject_RichCompareBool(app_state, APP_STATE(p, APP_INIT), Py_EQ);
    Py_DECREF(app_state);
    if (rc > 0) {
        PyObject *app_transport;

        rc = set(p, A_APP_STATE, APP_STATE(p, APP_CON_MADE));
        app_transport = rc == 0 ? get_app_transport(p) : NULL;
        rc = app_transport ? call_attr(p, A_APP_PROTOCOL, M_CONNECTION_MADE,
                                       app_transport)
                           : -1;
        Py_XDECREF(app_transport);
    }
    if (rc < 0 || wakeup_waiter(p, NULL) < 0) {
        return -1;
    }
    return do_read(p);
}

/* _do_handshake: one step of OpenSSL's handshake, then what it wrote goes
 * out, or the handshake is complete. */
static int
do_handshake(proto_t *p)
{
    PyObject *r = ssl_call_self(p, SSL_DO_HANDSHAKE, NULL, 0), *exc;
    int rc;

    if (r != NULL) {
        Py_DECREF(r);
        return on_handshake_complete(p, Py_None);
    }
    if (clear_if_again(p)) {
        return process_outgoing(p);
    }
    if (!PyErr_ExceptionMatches(p->st->ssl_error)) {
        return -1;
    }
    exc = cio_fetch_exception();
    rc = on_handshake_complete(p, exc);
    Py_DECREF(exc);
    return rc;
}

/* ---- the shutdown ---------------------------------------------------- */

/* _do_shutdown: our close_notify, unless the peer's came first; then the
 * version's own _on_shutdown_complete. */
static int
do_shutdown(proto_t *p)
{
    PyObject *arg = Py_None, *r;
    int eof = truth(p, A_EOF_RECEIVED), rc;

    if (eof < 0) {
        return -1;
    }
    if (!eof) {
        r = ssl_call_self(p, SSL_UNWRAP, NULL, 0);
        if (r == NULL) {
            if (clear_if_again(p)) {
                return process_outgoing(p);
            }
            if (!PyErr_ExceptionMatches(p->st->ssl_error)) {
                return -1;
            }
            arg = cio_fetch_exception();
            rc = call_self(p, M_ON_SHUTDOWN_COMPLETE, &arg, 1);
            Py_DECREF(arg);
            return rc;
        }
        Py_DECREF(r);
    }
    if (process_outgoing(p) < 0 ||
        call_self(p, M_CALL_EOF_RECEIVED, NULL, 0) < 0) {
        return -1;
    }
    return call_self(p, M_ON_SHUTDOWN_COMPLETE, &arg, 1);
}

/* _do_flush: what is left to read, then the shutdown. */
static int
do_flush(proto_t *p)
{
    if (do_read(p) < 0 || set_state(p, S_SHUTDOWN) < 0) {
        return -1;
    }
    return do_shutdown(p);
}

/* ---- the loop's reads ------------------------------------------------ */

/* get_buffer(n): the read buffer, grown to what the transport asks (up to
 * max_size) as stdlib's does. */
static PyObject *
get_buffer(proto_t *p, PyObject *n_obj)
{
    PyObject *buffer, *view;
    Py_ssize_t n, max_size, have;

    max_size = get_size(p, p->self, A_MAX_SIZE);
    if (max_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    n = PyLong_AsSsize_t(n_obj);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n <= 0 || n > max_size) {
        n = max_size;
    }
    buffer = get(p, p->self, A_SSL_BUFFER);
    have = buffer ? PyObject_Length(buffer) : -1;
    Py_XDECREF(buffer);
    if (have < 0) {
        return NULL;
    }
    if (have < n) {
        buffer = PyByteArray_FromStringAndSize(NULL, n);
        if (buffer == NULL) {
            return NULL;
        }
        memset(PyByteArray_AS_STRING(buffer), 0, n);
        view = PyMemoryView_FromObject(buffer);
        if (view == NULL || set(p, A_SSL_BUFFER, buffer) < 0 ||
            set(p, A_SSL_BUFFER_VIEW, view) < 0) {
            Py_XDECREF(view);
            Py_DECREF(buffer);
            return NULL;
        }
        Py_DECREF(view);
        Py_DECREF(buffer);
    }
    return get(p, p->self, A_SSL_BUFFER_VIEW);
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
        rc = do_handshake(p);
    }
    else if (state == STATE(p, S_WRAPPED)) {
        rc = do_read(p);
    }
    else if (state == STATE(p, S_FLUSHING)) {
        rc = do_flush(p);
    }
    else if (state == STATE(p, S_SHUTDOWN)) {
        rc = do_shutdown(p);
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
TLS_METHOD(m_do_read_buffered, "_do_read__buffered", 1, do_read_buffered(p))
TLS_METHOD(m_write_appdata, "_write_appdata", 2, write_appdata(p, args[1]))
TLS_METHOD(m_do_write, "_do_write", 1, do_write(p))
TLS_METHOD(m_process_outgoing, "_process_outgoing", 1, process_outgoing(p))
TLS_METHOD(m_do_handshake, "_do_handshake", 1, do_handshake(p))
TLS_METHOD(m_on_handshake_complete, "_on_handshake_complete", 2,
           on_handshake_complete(p, args[1]))
TLS_METHOD(m_do_flush, "_do_flush", 1, do_flush(p))
TLS_METHOD(m_do_shutdown, "_do_shutdown", 1, do_shutdown(p))

static PyObject *
m_wakeup_waiter(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    proto_t p;

    if (unpack(module, args, nargs, nargs == 1 ? 1 : 2, "_wakeup_waiter",
               &p) < 0) {
        return NULL;
    }
    /* exc=None is the default, and None means no exception */
    return wakeup_waiter(&p, nargs == 2 && args[1] != Py_None ? args[1]
                                                             : NULL) < 0
               ? NULL : Py_NewRef(Py_None);
}

static PyObject *
m_get_app_transport(PyObject *module, PyObject *const *args,
                    Py_ssize_t nargs)
{
    proto_t p;

    return unpack(module, args, nargs, 1, "_get_app_transport", &p) < 0
               ? NULL : get_app_transport(&p);
}

static PyObject *
m_get_buffer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    proto_t p;

    return unpack(module, args, nargs, 2, "get_buffer", &p) < 0
               ? NULL : get_buffer(&p, args[1]);
}

#define TLS_DEF(cname, pyname)                                              \
    {pyname, (PyCFunction)(void (*)(void))cname, METH_FASTCALL, NULL}

static PyMethodDef tls_methods[] = {
    TLS_DEF(m_get_app_transport, "_get_app_transport"),
    TLS_DEF(m_wakeup_waiter, "_wakeup_waiter"),
    TLS_DEF(m_do_handshake, "_do_handshake"),
    TLS_DEF(m_on_handshake_complete, "_on_handshake_complete"),
    TLS_DEF(m_get_buffer, "get_buffer"),
    TLS_DEF(m_buffer_updated, "buffer_updated"),
    TLS_DEF(m_do_read, "_do_read"),
    TLS_DEF(m_do_read_copied, "_do_read__copied"),
    TLS_DEF(m_write_appdata, "_write_appdata"),
    TLS_DEF(m_do_write, "_do_write"),
    TLS_DEF(m_process_outgoing, "_process_outgoing"),
    TLS_DEF(m_do_flush, "_do_flush"),
    TLS_DEF(m_do_shutdown, "_do_shutdown"),
    {NULL, NULL, 0, NULL},
};

/* ---- the app transport ------------------------------------------------ */

/* _SSLProtocolTransport.write(data): args[0] is the transport. */
static PyObject *
m_app_write(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    proto_t p;
    PyObject *data, *protocol, *list_of_data;
    int nonempty, rc;

    if (unpack(module, args, nargs, 2, "write", &p) < 0) {
        return NULL;
    }
    data = args[1];
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data)) {
        PyObject *name = PyType_GetName(Py_TYPE(data));

        if (name != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "data: expecting a bytes-like instance, got %U",
                         name);
            Py_DECREF(name);
        }
        return NULL;
    }
    nonempty = PyObject_IsTrue(data);
    if (nonempty <= 0) {
        return nonempty < 0 ? NULL : Py_NewRef(Py_None);
    }
    protocol = get(&p, p.self, A_SSL_PROTOCOL);
    list_of_data = protocol ? PyTuple_Pack(1, data) : NULL;
    rc = list_of_data ? call_discard(&p, protocol, M_WRITE_APPDATA,
                                     &list_of_data, 1)
                      : -1;
    Py_XDECREF(protocol);
    Py_XDECREF(list_of_data);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* Installed when stdlib's _do_read__buffered is of a known shape (see
 * find_read_again_lambda). */
static PyMethodDef tls_buffered_read_methods[] = {
    TLS_DEF(m_do_read_buffered, "_do_read__buffered"),
    {NULL, NULL, 0, NULL},
};

static PyMethodDef app_transport_methods[] = {
    TLS_DEF(m_app_write, "write"),
    {NULL, NULL, 0, NULL},
};

/* ---- set-up ------------------------------------------------------------- */

/* What the C methods need from sslproto, ssl and asyncio.constants. */
static int
import_state_machine(cio_state *st, PyObject *sslproto)
{
    PyObject *states = PyObject_GetAttrString(sslproto, "SSLProtocolState");
    PyObject *app_states = PyObject_GetAttrString(sslproto,
                                                  "AppProtocolState");
    PyObject *threshold = cio_import_attr(
        "asyncio.constants", "LOG_THRESHOLD_FOR_CONNLOST_WRITES");

    st->ssl_again_errors = PyObject_GetAttrString(sslproto, "SSLAgainErrors");
    st->tls_states = states ? cio_tuple_of_attrs(states, state_names, N_STATES)
                            : NULL;
    st->tls_app_states = app_states ? cio_tuple_of_attrs(
                             app_states, app_state_names, N_APP_STATES)
                                    : NULL;
    st->tls_names = cio_tuple_of_names(tls_names, N_NAMES);
    st->str_ssl_fatal_error =
        PyUnicode_InternFromString("Fatal error on SSL protocol");
    st->str_ssl_closed = PyUnicode_InternFromString("SSL connection is closed");
    st->conn_lost_threshold = threshold ? PyLong_AsLong(threshold) : -1;
    st->ssl_object_type = (PyTypeObject *)cio_import_attr("ssl", "SSLObject");
    st->ssl_object_originals = st->ssl_object_type
        ? cio_tuple_of_attrs((PyObject *)st->ssl_object_type,
                             ssl_object_methods, N_SSL_METHODS)
        : NULL;
    st->ssl_object_names = cio_tuple_of_names(ssl_object_methods,
                                              N_SSL_METHODS);
    st->ssl_inner_names = cio_tuple_of_names(ssl_inner_methods,
                                             N_SSL_METHODS);
    st->ssl_error = cio_import_attr("ssl", "SSLError");
    st->ssl_certificate_error = cio_import_attr("ssl", "CertificateError");
    st->sslproto_module = Py_NewRef(sslproto);
    Py_XDECREF(states);
    Py_XDECREF(app_states);
    Py_XDECREF(threshold);
    if (!st->ssl_again_errors || !st->tls_states || !st->tls_app_states ||
        !st->tls_names || !st->str_ssl_fatal_error || !st->str_ssl_closed ||
        !st->ssl_object_originals || !st->ssl_object_names ||
        !st->ssl_inner_names || !st->ssl_error ||
        !st->ssl_certificate_error || PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

/* st->ssl_read_again_lambda (see read_again_callback): the one code
 * object among the constants of stdlib's _do_read__buffered, a lambda
 * over self, or None when it has none. Left NULL, and stdlib's method
 * kept, for code of any other shape. */
static int
find_read_again_lambda(cio_state *st, PyObject *base)
{
    PyObject *method = PyObject_GetAttrString(base, "_do_read__buffered");
    PyObject *code = method ? PyObject_GetAttrString(method, "__code__")
                            : NULL;
    PyObject *consts = code ? PyObject_GetAttrString(code, "co_consts")
                            : NULL;
    PyObject *found = Py_None;
    int rc = -1, known = 1;

    if (consts == NULL || !PyTuple_Check(consts)) {
        /* no such method, or not a Python function: stdlib's is called */
        if (consts != NULL || PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            rc = 0;
        }
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts); i++) {
        PyObject *c = PyTuple_GET_ITEM(consts, i);

        if (PyCode_Check(c)) {
            known = known && found == Py_None;
            found = c;
        }
    }
    if (known && found != Py_None) {
        PyObject *freevars = PyObject_GetAttrString(found, "co_freevars");
        PyObject *name = PyObject_GetAttrString(found, "co_name");

        known = freevars && name && PyTuple_Check(freevars) &&
                PyTuple_GET_SIZE(freevars) == 1 &&
                PyUnicode_Check(PyTuple_GET_ITEM(freevars, 0)) &&
                PyUnicode_CompareWithASCIIString(
                    PyTuple_GET_ITEM(freevars, 0), "self") == 0 &&
                PyUnicode_Check(name) &&
                PyUnicode_CompareWithASCIIString(name, "<lambda>") == 0;
        Py_XDECREF(freevars);
        Py_XDECREF(name);
        if (PyErr_Occurred()) {
            goto done;
        }
    }
    if (known) {
        st->ssl_read_again_lambda = Py_NewRef(found);
    }
    rc = 0;
done:
    Py_XDECREF(method);
    Py_XDECREF(code);
    Py_XDECREF(consts);
    return rc;
}

static int
install_methods(PyObject *module, PyObject *type, PyMethodDef *defs)
{
    for (PyMethodDef *def = defs; def->ml_name != NULL; def++) {
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

/* The app transport's subclass, named as stdlib's class is. */
static int
make_app_transport_type(PyObject *module, cio_state *st, PyObject *sslproto)
{
    st->ssl_app_transport_base = PyObject_GetAttrString(
        sslproto, "_SSLProtocolTransport");
    if (st->ssl_app_transport_base == NULL) {
        return -1;
    }
    st->ssl_app_transport_type = PyObject_CallFunction(
        (PyObject *)&PyType_Type, "s(O){ssss}", "_SSLProtocolTransport",
        st->ssl_app_transport_base, "__module__", "asyncio.sslproto",
        "__qualname__", "_SSLProtocolTransport");
    if (st->ssl_app_transport_type == NULL) {
        return -1;
    }
    return install_methods(module, st->ssl_app_transport_type,
                           app_transport_methods);
}

int
cio_tls_protocol_init(PyObject *module, cio_state *st)
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
#if !CIO_PYTHON_TESTED
    /* stdlib's own SSLProtocol, as it is, on an untested Python */
    st->ssl_protocol_type = Py_NewRef(base);
    rc = 0;
    goto done;
#endif
    st->ssl_protocol_type = PyObject_CallFunction(
        (PyObject *)&PyType_Type, "s(O){sissssss}", "SSLProtocol", base,
        "max_size", 1, "__module__", "casyncio._casyncio", "__qualname__",
        "SSLProtocol", "__doc__",
        "stdlib's SSLProtocol with its read buffer given by the loop and "
        "its handshake, record path and shutdown in C.");
    if (st->ssl_protocol_type == NULL) {
        goto done;
    }
    /* Without the ssl module, sslproto has no SSLAgainErrors and the
     * class is never used for a connection. */
    if (!PyObject_HasAttrString(sslproto, "SSLAgainErrors")) {
        rc = 0;
        goto done;
    }
    rc = import_state_machine(st, sslproto) < 0 ||
                 make_app_transport_type(module, st, sslproto) < 0 ||
                 install_methods(module, st->ssl_protocol_type,
                                 tls_methods) < 0 ||
                 find_read_again_lambda(st, base) < 0 ||
                 (st->ssl_read_again_lambda != NULL &&
                  install_methods(module, st->ssl_protocol_type,
                                  tls_buffered_read_methods) < 0)
             ? -1 : 0;
done:
    Py_XDECREF(sslproto);
    Py_XDECREF(base);
    return rc;
}
