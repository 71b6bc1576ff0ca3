/* asyncio streams on casyncio's transports, their per-read and per-write
 * paths in C.
 *
 * asyncio.start_server() and open_connection() build, in Python and for
 * any loop, a StreamReaderProtocol around a StreamReader. When one of the
 * loop's stream transports is given a protocol whose class is exactly
 * stdlib's StreamReaderProtocol, cio_streams_adopt() switches its
 * __class__, and its reader's if that is exactly a StreamReader, to the
 * subclasses made here; a server's StreamWriter is switched in the same
 * way when connection_made() hands it to the client_connected_cb. The
 * subclasses add no state: their C methods read and write the instance
 * attributes stdlib's Python methods use (_buffer, _waiter, _eof,
 * _paused, ...), so the methods left to Python see the state they
 * expect, isinstance() against stdlib's classes holds, and the classes
 * are named as stdlib's (module asyncio.streams), so reprs are unchanged.
 *
 * In C: StreamReaderProtocol.data_received and _drain_helper;
 * StreamReader.feed_data, read(n >= 0), readexactly(n >= 0), readline()
 * and readuntil(bytes), each the same code as stdlib's, with the waits of
 * _wait_for_data() and the steps of _wakeup_waiter() and
 * _maybe_resume_transport() inlined; StreamWriter.write and drain. Other
 * arguments (read(-1), a tuple of separators, keywords) call stdlib's
 * method.
 *
 * Kept on the Python path: instances of subclasses (only the exact
 * classes are adopted), a client's StreamWriter (open_connection() makes
 * it after the transport, out of the loop's sight), and every new
 * connection once a program replaced one of the methods above (or
 * _stream_reader) on stdlib's classes; the check costs a comparison of
 * the classes' type version tags per connection. */
#include "casyncio.h"

/* Attribute and method names, interned once into st->stream_names. */
typedef enum {
    N_BUFFER, N_EOF, N_WAITER, N_LIMIT, N_EXCEPTION, N_PAUSED, N_TRANSPORT,
    N_LOOP, N_READER_WR, N_CONNECTION_LOST, N_DRAIN_WAITERS, N_CREATE_FUTURE,
    N_SET_RESULT, N_CANCELLED, N_PAUSE_READING, N_RESUME_READING, N_APPEND,
    N_REMOVE, N_FEED_DATA, N_EXTEND, N_CLASS, N_PARTIAL, N_CONSUMED,
    N_READER, N_PROTOCOL, N_WRITE, N_IS_CLOSING, N_EXCEPTION_METHOD,
    N_DRAIN_HELPER, N_CLIENT_CONNECTED_CB, N_TAKE_BYTES, N_NAMES
} stream_name_t;

static const char *const stream_names[N_NAMES] = {
    "_buffer", "_eof", "_waiter", "_limit", "_exception", "_paused",
    "_transport", "_loop", "_stream_reader_wr", "_connection_lost",
    "_drain_waiters", "create_future", "set_result", "cancelled",
    "pause_reading", "resume_reading", "append", "remove", "feed_data",
    "extend", "__class__", "partial", "consumed", "_reader", "_protocol",
    "write", "is_closing", "exception", "_drain_helper",
    "_client_connected_cb", "take_bytes"};

/* What the subclasses replace or inline, per class: stdlib's objects are
 * kept (st->stream_reader_originals, st->stream_protocol_originals) both
 * to call for the arguments C leaves to them and to notice a
 * replacement. */
typedef enum {
    R_FEED_DATA, R_READ, R_READEXACTLY, R_READLINE, R_READUNTIL,
    R_WAIT_FOR_DATA, R_WAKEUP_WAITER, R_MAYBE_RESUME_TRANSPORT, R_COUNT
} reader_original_t;

static const char *const reader_originals[R_COUNT] = {
    "feed_data", "read", "readexactly", "readline", "readuntil",
    "_wait_for_data", "_wakeup_waiter", "_maybe_resume_transport"};

typedef enum {
    P_DATA_RECEIVED, P_DRAIN_HELPER, P_STREAM_READER, P_COUNT
} protocol_original_t;

static const char *const protocol_originals[P_COUNT] = {
    "data_received", "_drain_helper", "_stream_reader"};

typedef enum { W_WRITE, W_DRAIN, W_COUNT } writer_original_t;

static const char *const writer_originals[W_COUNT] = {"write", "drain"};

#define NAME(st, n) PyTuple_GET_ITEM((st)->stream_names, (n))
#define READER_ORIGINAL(st, i) \
    PyTuple_GET_ITEM((st)->stream_reader_originals, (i))

/* The instance attributes live in the instance's __dict__ (see
 * cio_instance_get). */
static inline PyObject *
get(cio_state *st, PyObject *obj, stream_name_t name)
{
    return cio_instance_get(obj, NAME(st, name));
}

static inline int
set(cio_state *st, PyObject *obj, stream_name_t name, PyObject *value)
{
    return cio_instance_set(obj, NAME(st, name), value);
}

/* bool(obj.<name>): 1, 0, or -1 with an error. */
static int
get_true(cio_state *st, PyObject *obj, stream_name_t name)
{
    PyObject *v = get(st, obj, name);
    int truth;

    if (v == NULL) {
        return -1;
    }
    truth = PyObject_IsTrue(v);
    Py_DECREF(v);
    return truth;
}

/* obj.<name>.<method>(*args), the result dropped. */
static int
call_on_attr(cio_state *st, PyObject *obj, stream_name_t name,
             stream_name_t method, PyObject *arg)
{
    PyObject *target = get(st, obj, name), *res;
    PyObject *args[2] = {target, arg};

    if (target == NULL) {
        return -1;
    }
    res = PyObject_VectorcallMethod(NAME(st, method), args,
                                    (arg ? 2 : 1) |
                                        PY_VECTORCALL_ARGUMENTS_OFFSET,
                                    NULL);
    Py_DECREF(target);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* `size <op> factor * self._limit` for op Py_GT or Py_LE, as Python
 * compares them: in C for an int limit, else through the objects. */
static int
compare_to_limit(cio_state *st, PyObject *self, Py_ssize_t size,
                 int factor, int op)
{
    PyObject *limit = get(st, self, N_LIMIT), *lhs = NULL, *rhs = NULL;
    PyObject *factor_obj = NULL;
    int overflow, rc = -1;
    long long bound;

    if (limit == NULL) {
        return -1;
    }
    if (PyLong_Check(limit)) {
        bound = PyLong_AsLongLongAndOverflow(limit, &overflow);
        if (bound == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (overflow == 0 && bound <= LLONG_MAX / 2 &&
            bound >= LLONG_MIN / 2) {
            bound *= factor;
            rc = op == Py_GT ? size > bound : size <= bound;
            goto done;
        }
        /* |limit| beyond 2**62: its sign decides. */
        rc = (op == Py_GT) == (overflow < 0 || bound < 0);
        goto done;
    }
    lhs = PyLong_FromSsize_t(size);
    if (factor == 1) {
        rhs = Py_NewRef(limit);
    }
    else {
        factor_obj = PyLong_FromLong(factor);
        rhs = factor_obj ? PyNumber_Multiply(factor_obj, limit) : NULL;
    }
    if (lhs != NULL && rhs != NULL) {
        rc = PyObject_RichCompareBool(lhs, rhs, op);
    }
done:
    Py_DECREF(limit);
    Py_XDECREF(lhs);
    Py_XDECREF(rhs);
    Py_XDECREF(factor_obj);
    return rc;
}

/* ---- StreamReader ------------------------------------------------------ */

/* self._wakeup_waiter() */
static int
wakeup_waiter(cio_state *st, PyObject *self)
{
    PyObject *waiter = get(st, self, N_WAITER), *res;
    int rc = -1, cancelled;

    if (waiter == NULL) {
        return -1;
    }
    if (waiter == Py_None) {
        Py_DECREF(waiter);
        return 0;
    }
    if (set(st, self, N_WAITER, Py_None) < 0) {
        goto done;
    }
    res = PyObject_CallMethodNoArgs(waiter, NAME(st, N_CANCELLED));
    cancelled = res ? PyObject_IsTrue(res) : -1;
    Py_XDECREF(res);
    if (cancelled < 0) {
        goto done;
    }
    if (!cancelled) {
        res = PyObject_CallMethodOneArg(waiter, NAME(st, N_SET_RESULT),
                                        Py_None);
        if (res == NULL) {
            goto done;
        }
        Py_DECREF(res);
    }
    rc = 0;
done:
    Py_DECREF(waiter);
    return rc;
}

/* self._maybe_resume_transport(), size being len(self._buffer) */
static int
maybe_resume_transport(cio_state *st, PyObject *self, Py_ssize_t size)
{
    int paused = get_true(st, self, N_PAUSED), below;

    if (paused <= 0) {
        return paused;
    }
    below = compare_to_limit(st, self, size, 1, Py_LE);
    if (below <= 0) {
        return below;
    }
    if (set(st, self, N_PAUSED, Py_False) < 0) {
        return -1;
    }
    return call_on_attr(st, self, N_TRANSPORT, N_RESUME_READING, NULL);
}

/* self._buffer, which the C paths need to be a bytearray (stdlib's own
 * type for it); a new reference, or NULL with TypeError. */
static PyObject *
get_buffer(cio_state *st, PyObject *self)
{
    PyObject *buffer = get(st, self, N_BUFFER);

    if (buffer != NULL && !PyByteArray_Check(buffer)) {
        PyErr_Format(PyExc_TypeError, "StreamReader._buffer must be a "
                                      "bytearray, not %.200s",
                     Py_TYPE(buffer)->tp_name);
        Py_CLEAR(buffer);
    }
    return buffer;
}

static int
feed_data(cio_state *st, PyObject *self, PyObject *data)
{
    PyObject *buffer, *transport;
    Py_ssize_t size, old;
    int eof, truth, over, paused;

    if (!st->python_optimized) {
        eof = get_true(st, self, N_EOF);
        if (eof != 0) {
            if (eof > 0) {
                PyErr_SetString(PyExc_AssertionError,
                                "feed_data after feed_eof");
            }
            return -1;
        }
    }
    truth = PyObject_IsTrue(data);
    if (truth <= 0) {
        return truth;
    }
    buffer = get(st, self, N_BUFFER);
    if (buffer == NULL) {
        return -1;
    }
    if (PyByteArray_Check(buffer) && PyBytes_Check(data)) {
        old = PyByteArray_GET_SIZE(buffer);
        if (PyByteArray_Resize(buffer, old + PyBytes_GET_SIZE(data)) < 0) {
            Py_DECREF(buffer);
            return -1;
        }
        memcpy(PyByteArray_AS_STRING(buffer) + old, PyBytes_AS_STRING(data),
               PyBytes_GET_SIZE(data));
    }
    else {
        PyObject *res = PyObject_CallMethodOneArg(buffer, NAME(st, N_EXTEND),
                                                  data);
        if (res == NULL) {
            Py_DECREF(buffer);
            return -1;
        }
        Py_DECREF(res);
    }
    size = PyObject_Size(buffer);
    Py_DECREF(buffer);
    if (size < 0 || wakeup_waiter(st, self) < 0) {
        return -1;
    }
    transport = get(st, self, N_TRANSPORT);
    if (transport == NULL) {
        return -1;
    }
    Py_DECREF(transport);  /* only compared with None */
    if (transport == Py_None) {
        return 0;
    }
    paused = get_true(st, self, N_PAUSED);
    if (paused != 0) {
        return paused < 0 ? -1 : 0;
    }
    over = compare_to_limit(st, self, size, 2, Py_GT);
    if (over <= 0) {
        return over;
    }
    if (call_on_attr(st, self, N_TRANSPORT, N_PAUSE_READING, NULL) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_NotImplementedError)) {
            return -1;
        }
        /* The transport can't be paused: buffer everything, and stop
         * trying. */
        PyErr_Clear();
        return set(st, self, N_TRANSPORT, Py_None);
    }
    return set(st, self, N_PAUSED, Py_True);
}

/* The read coroutines: one StepCoroutine each, state holding the
 * operation and where it stands, index its n (read, readexactly) or the
 * separator search's offset (readuntil, readline), vars[0] the reader and
 * vars[1] the separator. */
enum { OP_READ, OP_READEXACTLY, OP_READUNTIL, OP_READLINE, OP_MASK = 0xf };
enum {
    AT_WAIT = 0x10,      /* suspended in _wait_for_data() */
    HAS_WAITED = 0x20,   /* read() waits once at most */
    IN_PYTHON = 0x40,    /* awaiting stdlib's method instead */
};

static const char *const op_qualnames[] = {
    "StreamReader.read", "StreamReader.readexactly",
    "StreamReader.readuntil", "StreamReader.readline"};
/* The caller's name _wait_for_data() reports: readline reads through
 * readuntil. */
static const char *const op_wait_names[] = {
    "read", "readexactly", "readuntil", "readuntil"};

#if PY_VERSION_HEX >= 0x030F0000
/* 3.15's buffer.take_bytes(k): the whole buffer becomes the bytes
 * object without a copy. */
static PyObject *
take_bytes(cio_state *st, PyObject *buffer, Py_ssize_t k)
{
    PyObject *n = PyLong_FromSsize_t(k), *data;

    if (n == NULL) {
        return NULL;
    }
    data = PyObject_CallMethodOneArg(buffer, NAME(st, N_TAKE_BYTES), n);
    Py_DECREF(n);
    return data;
}
#else
/* bytes(buffer[:k]); del buffer[:k] */
static PyObject *
take_bytes(cio_state *st, PyObject *buffer, Py_ssize_t k)
{
    Py_ssize_t size = PyByteArray_GET_SIZE(buffer);
    PyObject *data = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(buffer),
                                               k);

    if (data != NULL && (k == size ? PyByteArray_Resize(buffer, 0)
                                   : PySequence_DelSlice(buffer, 0, k)) < 0) {
        Py_CLEAR(data);
    }
    return data;
}
#endif

/* The first bytes of the buffer, taken out, then
 * self._maybe_resume_transport(). */
static PyObject *
take(cio_state *st, PyObject *self, PyObject *buffer, Py_ssize_t k)
{
    Py_ssize_t size = PyByteArray_GET_SIZE(buffer);
    PyObject *data;

    if (k > size) {
        k = size;
    }
    data = take_bytes(st, buffer, k);
    if (data == NULL) {
        return NULL;
    }
    if (maybe_resume_transport(st, self, size - k) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

/* The whole buffer, taken out, as the exception EOF ends a read with:
 * IncompleteReadError(bytes(buffer), expected) after buffer.clear(). */
static void
raise_incomplete(cio_state *st, PyObject *buffer, PyObject *expected)
{
    PyObject *partial = take_bytes(st, buffer, PyByteArray_GET_SIZE(buffer));
    PyObject *exc;

    if (partial == NULL) {
        return;
    }
    exc = PyObject_CallFunctionObjArgs(st->incomplete_read_error, partial,
                                       expected, NULL);
    Py_DECREF(partial);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

static void
raise_limit_overrun(cio_state *st, const char *message, Py_ssize_t consumed)
{
    PyObject *exc = PyObject_CallFunction(st->limit_overrun_error, "sn",
                                          message, consumed);

    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

/* _wait_for_data(): refuses a second waiter, resumes a paused transport
 * and has the coroutine await a new self._waiter. */
static cio_step_t
wait_for_data(cio_state *st, CioStepCoroObject *coro, PyObject **out)
{
    PyObject *self = coro->vars[0], *waiter, *loop;
    int paused;

    waiter = get(st, self, N_WAITER);
    if (waiter == NULL) {
        return CIO_STEP_ERROR;
    }
    Py_DECREF(waiter);  /* only compared with None */
    if (waiter != Py_None) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s() called while another coroutine is already "
                     "waiting for incoming data",
                     op_wait_names[coro->state & OP_MASK]);
        return CIO_STEP_ERROR;
    }
    paused = get_true(st, self, N_PAUSED);
    if (paused < 0) {
        return CIO_STEP_ERROR;
    }
    if (paused &&
        (set(st, self, N_PAUSED, Py_False) < 0 ||
         call_on_attr(st, self, N_TRANSPORT, N_RESUME_READING, NULL) < 0)) {
        return CIO_STEP_ERROR;
    }
    loop = get(st, self, N_LOOP);
    waiter = loop ? PyObject_CallMethodNoArgs(loop, NAME(st, N_CREATE_FUTURE))
                  : NULL;
    Py_XDECREF(loop);
    if (waiter == NULL || set(st, self, N_WAITER, waiter) < 0) {
        Py_XDECREF(waiter);
        return CIO_STEP_ERROR;
    }
    coro->state |= AT_WAIT;
    *out = waiter;
    return CIO_STEP_AWAIT;
}

/* One look at the buffer: the result, an error, or a wait for more. */
static cio_step_t
read_attempt(cio_state *st, CioStepCoroObject *coro, PyObject **out)
{
    PyObject *self = coro->vars[0], *buffer, *expected;
    Py_ssize_t size, seplen, offset;
    const char *found;
    int eof;

    buffer = get_buffer(st, self);
    if (buffer == NULL) {
        return CIO_STEP_ERROR;
    }
    size = PyByteArray_GET_SIZE(buffer);
    switch (coro->state & OP_MASK) {
    case OP_READ:
        if (size > 0 || (coro->state & HAS_WAITED)) {
            goto take_n;
        }
        break;
    case OP_READEXACTLY:
        if (size >= coro->index) {
            goto take_n;
        }
        break;
    default:  /* readuntil, readline */
        seplen = PyBytes_GET_SIZE(coro->vars[1]);
        offset = coro->index;
        if (size - offset >= seplen) {
            found = memmem(PyByteArray_AS_STRING(buffer) + offset,
                           size - offset, PyBytes_AS_STRING(coro->vars[1]),
                           seplen);
            if (found != NULL) {
                Py_ssize_t isep = found - PyByteArray_AS_STRING(buffer);
                int over = compare_to_limit(st, self, isep, 1, Py_GT);
                if (over != 0) {
                    if (over > 0) {
                        raise_limit_overrun(st, "Separator is found, but "
                                            "chunk is longer than limit",
                                            isep);
                    }
                    goto error;
                }
                *out = take(st, self, buffer, isep + seplen);
                Py_DECREF(buffer);
                return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
            }
            coro->index = offset = size + 1 - seplen;
            int over = compare_to_limit(st, self, offset, 1, Py_GT);
            if (over != 0) {
                if (over > 0) {
                    raise_limit_overrun(st, "Separator is not found, and "
                                        "chunk exceed the limit", offset);
                }
                goto error;
            }
        }
        break;
    }
    /* Not enough in the buffer: the end, or a wait. */
    eof = get_true(st, self, N_EOF);
    if (eof < 0) {
        goto error;
    }
    if (eof && (coro->state & OP_MASK) != OP_READ) {
        expected = (coro->state & OP_MASK) == OP_READEXACTLY
                       ? PyLong_FromSsize_t(coro->index)
                       : Py_NewRef(Py_None);
        if (expected != NULL) {
            raise_incomplete(st, buffer, expected);
            Py_DECREF(expected);
        }
        goto error;
    }
    if (eof) {  /* read() at EOF with nothing buffered: b'' */
        goto take_n;
    }
    Py_DECREF(buffer);
    return wait_for_data(st, coro, out);

take_n:
    *out = take(st, self, buffer, coro->index);
    Py_DECREF(buffer);
    return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
error:
    Py_DECREF(buffer);
    return CIO_STEP_ERROR;
}

/* Arguments C does not take (see the methods) go to stdlib's method,
 * whose coroutine this one then awaits. */
static cio_step_t
read_in_python(cio_state *st, CioStepCoroObject *coro, PyObject **out)
{
    PyObject *self = coro->vars[0], *arg = NULL;
    int op = coro->state & OP_MASK;
    static const reader_original_t originals[] = {
        R_READ, R_READEXACTLY, R_READUNTIL, R_READLINE};

    if (op == OP_READ || op == OP_READEXACTLY) {
        arg = PyLong_FromSsize_t(coro->index);
        if (arg == NULL) {
            return CIO_STEP_ERROR;
        }
    }
    else if (op == OP_READUNTIL) {
        arg = Py_NewRef(coro->vars[1]);
    }
    *out = PyObject_CallFunctionObjArgs(READER_ORIGINAL(st, originals[op]),
                                        self, arg, NULL);
    Py_XDECREF(arg);
    coro->state |= IN_PYTHON;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

/* The start of each read: what stdlib checks before it first looks at
 * the buffer. */
static cio_step_t
read_begin(cio_state *st, CioStepCoroObject *coro, PyObject **out)
{
    PyObject *self = coro->vars[0], *exc, *buffer;
    int op = coro->state & OP_MASK;

    buffer = get(st, self, N_BUFFER);
    if (buffer == NULL) {
        return CIO_STEP_ERROR;
    }
    Py_DECREF(buffer);  /* only its type matters here */
    if (!PyByteArray_Check(buffer)) {
        return read_in_python(st, coro, out);
    }
    exc = get(st, self, N_EXCEPTION);
    if (exc == NULL) {
        return CIO_STEP_ERROR;
    }
    if (exc != Py_None) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return CIO_STEP_ERROR;
    }
    Py_DECREF(exc);
    if ((op == OP_READ || op == OP_READEXACTLY) && coro->index == 0) {
        *out = PyBytes_FromStringAndSize(NULL, 0);
        return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
    }
    return read_attempt(st, coro, out);
}

/* The wait is over: `finally: self._waiter = None`, then the outcome of
 * the awaited future (value, or NULL with its exception). */
static int
end_wait(cio_state *st, PyObject *self, PyObject *value)
{
    PyObject *exc = value == NULL ? cio_fetch_exception() : NULL;

    set(st, self, N_WAITER, Py_None);
    return cio_finally_end(exc);
}

/* readline()'s except clauses around its readuntil(b'\n'). */
static cio_step_t
readline_except(cio_state *st, PyObject *self, PyObject **out)
{
    PyObject *exc, *consumed_obj, *buffer, *message, *value_error;
    Py_ssize_t consumed, size;
    int rc;

    if (PyErr_ExceptionMatches(st->incomplete_read_error)) {
        exc = cio_fetch_exception();
        *out = PyObject_GetAttr(exc, NAME(st, N_PARTIAL));
        Py_DECREF(exc);
        return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
    }
    if (!PyErr_ExceptionMatches(st->limit_overrun_error)) {
        return CIO_STEP_ERROR;
    }
    exc = cio_fetch_exception();
    consumed_obj = PyObject_GetAttr(exc, NAME(st, N_CONSUMED));
    consumed = consumed_obj ? PyLong_AsSsize_t(consumed_obj) : -1;
    Py_XDECREF(consumed_obj);
    buffer = consumed < 0 && PyErr_Occurred() ? NULL : get_buffer(st, self);
    if (buffer == NULL) {
        cio_finally_end(exc);
        return CIO_STEP_ERROR;
    }
    /* if self._buffer.startswith(sep, e.consumed): del it with the
     * line's end, else clear the buffer */
    size = PyByteArray_GET_SIZE(buffer);
    if (consumed >= 0 && consumed < size &&
        PyByteArray_AS_STRING(buffer)[consumed] == '\n') {
        rc = consumed + 1 == size ? PyByteArray_Resize(buffer, 0)
                                  : PySequence_DelSlice(buffer, 0,
                                                        consumed + 1);
    }
    else {
        rc = PyByteArray_Resize(buffer, 0);
    }
    size = PyByteArray_GET_SIZE(buffer);
    Py_DECREF(buffer);
    if (rc < 0 || maybe_resume_transport(st, self, size) < 0) {
        cio_finally_end(exc);
        return CIO_STEP_ERROR;
    }
    /* raise ValueError(e.args[0]), raised while handling e */
    message = PySequence_GetItem(((PyBaseExceptionObject *)exc)->args, 0);
    value_error = message ? PyObject_CallOneArg(PyExc_ValueError, message)
                          : NULL;
    if (value_error != NULL) {
        PyErr_SetObject(PyExc_ValueError, value_error);
    }
    Py_XDECREF(message);
    Py_XDECREF(value_error);
    cio_finally_end(exc);
    return CIO_STEP_ERROR;
}

static cio_step_t
read_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    cio_state *st = PyType_GetModuleState(Py_TYPE(coro));
    cio_step_t rc;

    if (coro->state & IN_PYTHON) {
        if (value == NULL) {
            return CIO_STEP_ERROR;
        }
        *out = Py_NewRef(value);
        return CIO_STEP_RETURN;
    }
    if (coro->state & AT_WAIT) {
        coro->state = (coro->state & ~AT_WAIT) | HAS_WAITED;
        rc = end_wait(st, coro->vars[0], value) < 0
                 ? CIO_STEP_ERROR
                 : read_attempt(st, coro, out);
    }
    else {
        rc = read_begin(st, coro, out);
    }
    if (rc == CIO_STEP_ERROR && (coro->state & OP_MASK) == OP_READLINE) {
        return readline_except(st, coro->vars[0], out);
    }
    return rc;
}

static PyObject *
read_coro_new(cio_state *st, PyObject *self, int op, Py_ssize_t n,
              PyObject *separator)
{
    CioStepCoroObject *coro = cio_step_coro_new(st, op_qualnames[op],
                                                read_step);

    if (coro == NULL) {
        return NULL;
    }
    coro->state = op;
    coro->index = op == OP_READ || op == OP_READEXACTLY ? n : 0;
    coro->vars[0] = Py_NewRef(self);
    coro->vars[1] = Py_XNewRef(separator);
    return (PyObject *)coro;
}

/* stdlib's method i of StreamReader or StreamReaderProtocol, called with
 * self and the arguments as given. */
static PyObject *
call_original(PyObject *original, PyObject *self, PyObject *const *args,
              Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[8], **all = small, *res;

    if (total + 1 > (Py_ssize_t)Py_ARRAY_LENGTH(small)) {
        all = PyMem_New(PyObject *, total + 1);
        if (all == NULL) {
            return PyErr_NoMemory();
        }
    }
    all[0] = self;
    memcpy(all + 1, args, total * sizeof(PyObject *));
    res = PyObject_Vectorcall(original, all, nargs + 1, kwnames);
    if (all != small) {
        PyMem_Free(all);
    }
    return res;
}

/* A method taking no argument that is a StepCoroutine over self; called
 * otherwise, stdlib's method (original) says what it says. */
static PyObject *
self_step_coro(cio_state *st, PyObject *self, PyObject *original,
               const char *qualname, cio_step_fn step, PyObject *const *args,
               Py_ssize_t nargs, PyObject *kwnames)
{
    CioStepCoroObject *coro;

    if (kwnames != NULL || nargs != 0) {
        return call_original(original, self, args, nargs, kwnames);
    }
    coro = cio_step_coro_new(st, qualname, step);
    if (coro != NULL) {
        coro->vars[0] = Py_NewRef(self);
    }
    return (PyObject *)coro;
}

/* An exact int n >= 0 as the only, positional, argument. */
static int
size_argument(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              Py_ssize_t *n)
{
    if (nargs != 1 || kwnames != NULL || !PyLong_CheckExact(args[0])) {
        return 0;
    }
    *n = PyLong_AsSsize_t(args[0]);
    if (*n < 0) {
        PyErr_Clear();  /* overflow: stdlib's method says what it says */
        return 0;
    }
    return 1;
}

#define STREAM_METHOD(cname)                                                \
    static PyObject *cname(PyObject *self, PyTypeObject *cls,               \
                           PyObject *const *args, Py_ssize_t nargs,         \
                           PyObject *kwnames)

STREAM_METHOD(reader_read)
{
    cio_state *st = PyType_GetModuleState(cls);
    Py_ssize_t n;

    if (size_argument(args, nargs, kwnames, &n)) {
        return read_coro_new(st, self, OP_READ, n, NULL);
    }
    return call_original(READER_ORIGINAL(st, R_READ), self, args, nargs,
                         kwnames);
}

STREAM_METHOD(reader_readexactly)
{
    cio_state *st = PyType_GetModuleState(cls);
    Py_ssize_t n;

    if (size_argument(args, nargs, kwnames, &n)) {
        return read_coro_new(st, self, OP_READEXACTLY, n, NULL);
    }
    return call_original(READER_ORIGINAL(st, R_READEXACTLY), self, args,
                         nargs, kwnames);
}

STREAM_METHOD(reader_readuntil)
{
    cio_state *st = PyType_GetModuleState(cls);

    if (kwnames == NULL && nargs <= 1) {
        PyObject *separator = nargs ? args[0] : st->stream_newline;
        if (PyBytes_CheckExact(separator) && PyBytes_GET_SIZE(separator)) {
            return read_coro_new(st, self, OP_READUNTIL, 0, separator);
        }
    }
    return call_original(READER_ORIGINAL(st, R_READUNTIL), self, args, nargs,
                         kwnames);
}

STREAM_METHOD(reader_readline)
{
    cio_state *st = PyType_GetModuleState(cls);

    if (kwnames == NULL && nargs == 0) {
        return read_coro_new(st, self, OP_READLINE, 0, st->stream_newline);
    }
    return call_original(READER_ORIGINAL(st, R_READLINE), self, args, nargs,
                         kwnames);
}

STREAM_METHOD(reader_feed_data)
{
    cio_state *st = PyType_GetModuleState(cls);

    if (kwnames == NULL && nargs == 1) {
        return feed_data(st, self, args[0]) < 0 ? NULL : Py_NewRef(Py_None);
    }
    return call_original(READER_ORIGINAL(st, R_FEED_DATA), self, args, nargs,
                         kwnames);
}

#define STREAM_DEF(name, cname, doc)                                        \
    {name, (PyCFunction)(void (*)(void))cname,                              \
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, doc}

static PyMethodDef reader_methods[] = {
    STREAM_DEF("feed_data", reader_feed_data, NULL),
    STREAM_DEF("read", reader_read, NULL),
    STREAM_DEF("readexactly", reader_readexactly, NULL),
    STREAM_DEF("readline", reader_readline, NULL),
    STREAM_DEF("readuntil", reader_readuntil, NULL),
    {NULL, NULL, 0, NULL},
};

/* ---- StreamReaderProtocol ---------------------------------------------- */

/* self._stream_reader: a new reference, None included. */
static PyObject *
stream_reader(cio_state *st, PyObject *self)
{
    PyObject *ref = get(st, self, N_READER_WR), *reader;

    if (ref == NULL || ref == Py_None) {
        return ref;
    }
    reader = PyObject_CallNoArgs(ref);
    Py_DECREF(ref);
    return reader;
}

STREAM_METHOD(protocol_data_received)
{
    cio_state *st = PyType_GetModuleState(cls);
    PyObject *reader, *res, *call[2];

    if (kwnames != NULL || nargs != 1) {
        return call_original(
            PyTuple_GET_ITEM(st->stream_protocol_originals, P_DATA_RECEIVED),
            self, args, nargs, kwnames);
    }
    reader = stream_reader(st, self);
    if (reader == NULL || reader == Py_None) {
        return reader;
    }
    call[0] = reader;
    call[1] = args[0];
    res = PyObject_VectorcallMethod(NAME(st, N_FEED_DATA), call,
                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(reader);
    return res;
}

/* FlowControlMixin._drain_helper: vars[0] the protocol, vars[1] the
 * drain waiter while it is awaited (state 1). */
static cio_step_t
drain_helper_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    cio_state *st = PyType_GetModuleState(Py_TYPE(coro));
    PyObject *self = coro->vars[0], *loop, *waiter, *exc;
    int lost, paused;

    if (coro->state == 1) {
        /* finally: self._drain_waiters.remove(waiter) */
        exc = value == NULL ? cio_fetch_exception() : NULL;
        call_on_attr(st, self, N_DRAIN_WAITERS, N_REMOVE, coro->vars[1]);
        if (cio_finally_end(exc) < 0) {
            return CIO_STEP_ERROR;
        }
        *out = Py_NewRef(Py_None);
        return CIO_STEP_RETURN;
    }
    lost = get_true(st, self, N_CONNECTION_LOST);
    if (lost != 0) {
        if (lost > 0) {
            PyErr_SetString(PyExc_ConnectionResetError, "Connection lost");
        }
        return CIO_STEP_ERROR;
    }
    paused = get_true(st, self, N_PAUSED);
    if (paused <= 0) {
        *out = paused ? NULL : Py_NewRef(Py_None);
        return paused ? CIO_STEP_ERROR : CIO_STEP_RETURN;
    }
    loop = get(st, self, N_LOOP);
    waiter = loop ? PyObject_CallMethodNoArgs(loop, NAME(st, N_CREATE_FUTURE))
                  : NULL;
    Py_XDECREF(loop);
    if (waiter == NULL ||
        call_on_attr(st, self, N_DRAIN_WAITERS, N_APPEND, waiter) < 0) {
        Py_XDECREF(waiter);
        return CIO_STEP_ERROR;
    }
    coro->vars[1] = Py_NewRef(waiter);
    coro->state = 1;
    *out = waiter;
    return CIO_STEP_AWAIT;
}

STREAM_METHOD(protocol_drain_helper)
{
    cio_state *st = PyType_GetModuleState(cls);

    return self_step_coro(
        st, self,
        PyTuple_GET_ITEM(st->stream_protocol_originals, P_DRAIN_HELPER),
        "FlowControlMixin._drain_helper", drain_helper_step, args, nargs,
        kwnames);
}

static PyMethodDef protocol_methods[] = {
    STREAM_DEF("data_received", protocol_data_received, NULL),
    STREAM_DEF("_drain_helper", protocol_drain_helper, NULL),
    {NULL, NULL, 0, NULL},
};

/* ---- StreamWriter ------------------------------------------------------ */

STREAM_METHOD(writer_write)
{
    cio_state *st = PyType_GetModuleState(cls);
    PyObject *transport, *res, *call[2];

    if (kwnames != NULL || nargs != 1) {
        return call_original(
            PyTuple_GET_ITEM(st->stream_writer_originals, W_WRITE), self,
            args, nargs, kwnames);
    }
    transport = get(st, self, N_TRANSPORT);
    if (transport == NULL) {
        return NULL;
    }
    call[0] = transport;
    call[1] = args[0];
    res = PyObject_VectorcallMethod(NAME(st, N_WRITE), call,
                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(transport);
    return res;
}

/* reader.exception(), read off an adopted reader directly. */
static PyObject *
reader_exception(cio_state *st, PyObject *reader)
{
    if (Py_TYPE(reader) == st->c_stream_reader_type) {
        return get(st, reader, N_EXCEPTION);
    }
    return PyObject_CallMethodNoArgs(reader, NAME(st, N_EXCEPTION_METHOD));
}

/* StreamWriter.drain: state 0 at the start, 1 after the sleep(0) of a
 * closing transport, 2 awaiting the protocol's _drain_helper(). */
static cio_step_t
drain_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    cio_state *st = PyType_GetModuleState(Py_TYPE(coro));
    PyObject *self = coro->vars[0], *reader, *exc, *transport, *closing;
    PyObject *protocol;
    int is_closing;

    if (coro->state == 2) {
        if (value == NULL) {
            return CIO_STEP_ERROR;
        }
        *out = Py_NewRef(Py_None);
        return CIO_STEP_RETURN;
    }
    if (coro->state == 0) {
        reader = get(st, self, N_READER);
        if (reader == NULL) {
            return CIO_STEP_ERROR;
        }
        exc = reader == Py_None ? Py_NewRef(Py_None)
                                : reader_exception(st, reader);
        Py_DECREF(reader);
        if (exc == NULL) {
            return CIO_STEP_ERROR;
        }
        if (exc != Py_None) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
            return CIO_STEP_ERROR;
        }
        Py_DECREF(exc);
        transport = get(st, self, N_TRANSPORT);
        closing = transport ? PyObject_CallMethodNoArgs(
                                  transport, NAME(st, N_IS_CLOSING))
                            : NULL;
        Py_XDECREF(transport);
        is_closing = closing ? PyObject_IsTrue(closing) : -1;
        Py_XDECREF(closing);
        if (is_closing < 0) {
            return CIO_STEP_ERROR;
        }
        if (is_closing) {
            /* await sleep(0): connection_lost() may run meanwhile */
            coro->state = 1;
            *out = Py_NewRef(Py_None);
            return CIO_STEP_YIELD;
        }
    }
    else if (value == NULL) {  /* thrown in at the sleep(0) */
        return CIO_STEP_ERROR;
    }
    protocol = get(st, self, N_PROTOCOL);
    *out = protocol ? PyObject_CallMethodNoArgs(protocol,
                                                NAME(st, N_DRAIN_HELPER))
                    : NULL;
    Py_XDECREF(protocol);
    coro->state = 2;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

STREAM_METHOD(writer_drain)
{
    cio_state *st = PyType_GetModuleState(cls);

    return self_step_coro(
        st, self, PyTuple_GET_ITEM(st->stream_writer_originals, W_DRAIN),
        "StreamWriter.drain", drain_step, args, nargs, kwnames);
}

static PyMethodDef writer_methods[] = {
    STREAM_DEF("write", writer_write, NULL),
    STREAM_DEF("drain", writer_drain, NULL),
    {NULL, NULL, 0, NULL},
};

/* ---- adoption ---------------------------------------------------------- */

/* obj.__class__ = type when type(obj) is exactly stdlib's class and that
 * class is unchanged. */
static int
adopt(cio_state *st, PyObject *obj, PyTypeObject *cls, PyObject *originals,
      const char *const *names, unsigned int *version, PyTypeObject *type)
{
    if (Py_TYPE(obj) != cls ||
        !cio_class_unchanged(cls, originals, names, version)) {
        return 0;
    }
    return PyObject_SetAttr(obj, NAME(st, N_CLASS), (PyObject *)type);
}

/* What a server's protocol calls in place of its client_connected_cb:
 * the StreamWriter connection_made() just made is adopted, then the
 * callback gets its (reader, writer) and its result is returned. */
static PyObject *
adopt_writer_and_call(PyObject *module, PyObject *const *args,
                      Py_ssize_t nargs)
{
    cio_state *st = PyModule_GetState(module);

    if (nargs == 3 &&
        adopt(st, args[2], st->stream_writer_type,
              st->stream_writer_originals, writer_originals,
              &st->stream_writer_version, st->c_stream_writer_type) < 0) {
        return NULL;
    }
    return PyObject_Vectorcall(args[0], args + 1, nargs - 1, NULL);
}

static PyMethodDef adopt_writer_def = {
    "adopt_writer_and_call", (PyCFunction)(void (*)(void))adopt_writer_and_call,
    METH_FASTCALL, NULL};

int
cio_streams_adopt(cio_state *st, PyObject *protocol)
{
    PyObject *reader, *callback, *wrapper;
    int rc;

#if !CIO_PYTHON_TESTED
    return 0;  /* stdlib's own streams on an untested Python */
#endif
    if (Py_TYPE(protocol) != st->stream_protocol_type) {
        return 0;  /* the common case, decided at once */
    }
    if (!cio_class_unchanged(st->stream_reader_type, st->stream_reader_originals,
                             reader_originals, &st->stream_reader_version)) {
        return 0;
    }
    rc = adopt(st, protocol, st->stream_protocol_type,
               st->stream_protocol_originals, protocol_originals,
               &st->stream_protocol_version, st->c_stream_protocol_type);
    if (rc < 0 || Py_TYPE(protocol) != st->c_stream_protocol_type) {
        return rc;
    }
    reader = stream_reader(st, protocol);
    if (reader == NULL) {
        return -1;
    }
    rc = adopt(st, reader, st->stream_reader_type, st->stream_reader_originals,
               reader_originals, &st->stream_reader_version,
               st->c_stream_reader_type);
    Py_DECREF(reader);
    /* A server's writer is made in connection_made() and handed to the
     * callback: the callback is wrapped to adopt it there. A client's is
     * made by open_connection() after the transport, and stays stdlib's. */
    callback = rc < 0 ? NULL : get(st, protocol, N_CLIENT_CONNECTED_CB);
    if (callback == NULL || callback == Py_None) {
        Py_XDECREF(callback);
        return callback ? 0 : -1;
    }
    wrapper = PyObject_CallFunctionObjArgs(st->partial, st->stream_adopt_writer,
                                           callback, NULL);
    Py_DECREF(callback);
    rc = wrapper ? set(st, protocol, N_CLIENT_CONNECTED_CB, wrapper) : -1;
    Py_XDECREF(wrapper);
    return rc;
}

/* ---- set-up ------------------------------------------------------------ */

/* A subclass of stdlib's class named as it is, with the C methods. */
static PyTypeObject *
make_subclass(PyObject *module, const char *name, PyTypeObject *base,
              PyMethodDef *methods)
{
    PyType_Slot slots[] = {
        {Py_tp_methods, methods},
        {0, NULL},
    };
    PyType_Spec spec = {
        .name = name,
        .basicsize = 0,
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
        .slots = slots,
    };

    return (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec,
                                                    (PyObject *)base);
}

int
cio_streams_init(PyObject *module, cio_state *st)
{
    PyObject *flags, *optimize;

    st->stream_reader_type = (PyTypeObject *)cio_import_attr(
        "asyncio.streams", "StreamReader");
    st->stream_protocol_type = (PyTypeObject *)cio_import_attr(
        "asyncio.streams", "StreamReaderProtocol");
    st->stream_writer_type = (PyTypeObject *)cio_import_attr(
        "asyncio.streams", "StreamWriter");
    st->stream_adopt_writer = PyCFunction_NewEx(&adopt_writer_def, module,
                                                NULL);
    st->incomplete_read_error = cio_import_attr("asyncio.exceptions",
                                                "IncompleteReadError");
    st->limit_overrun_error = cio_import_attr("asyncio.exceptions",
                                              "LimitOverrunError");
    st->stream_names = cio_tuple_of_names(stream_names, N_NAMES);
    st->stream_newline = PyBytes_FromStringAndSize("\n", 1);
    if (!st->stream_reader_type || !st->stream_protocol_type ||
        !st->stream_writer_type || !st->stream_adopt_writer ||
        !st->incomplete_read_error || !st->limit_overrun_error ||
        !st->stream_names || !st->stream_newline) {
        return -1;
    }
    st->stream_reader_originals = cio_tuple_of_attrs(
        (PyObject *)st->stream_reader_type, reader_originals, R_COUNT);
    st->stream_protocol_originals = cio_tuple_of_attrs(
        (PyObject *)st->stream_protocol_type, protocol_originals, P_COUNT);
    st->stream_writer_originals = cio_tuple_of_attrs(
        (PyObject *)st->stream_writer_type, writer_originals, W_COUNT);
    if (!st->stream_reader_originals || !st->stream_protocol_originals ||
        !st->stream_writer_originals) {
        return -1;
    }
    st->c_stream_reader_type = make_subclass(
        module, "asyncio.streams.StreamReader", st->stream_reader_type,
        reader_methods);
    st->c_stream_protocol_type = make_subclass(
        module, "asyncio.streams.StreamReaderProtocol",
        st->stream_protocol_type, protocol_methods);
    st->c_stream_writer_type = make_subclass(
        module, "asyncio.streams.StreamWriter", st->stream_writer_type,
        writer_methods);
    if (!st->c_stream_reader_type || !st->c_stream_protocol_type ||
        !st->c_stream_writer_type) {
        return -1;
    }
    /* feed_data's assert, off under -O as stdlib's is */
    flags = cio_import_attr("sys", "flags");
    optimize = flags ? PyObject_GetAttrString(flags, "optimize") : NULL;
    st->python_optimized = optimize ? PyObject_IsTrue(optimize) : -1;
    Py_XDECREF(flags);
    Py_XDECREF(optimize);
    return st->python_optimized < 0 ? -1 : 0;
}
