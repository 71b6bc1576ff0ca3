/* loop.sendfile() and the ways it sends: _sendfile_native (os.sendfile()
 * on the transport's own socket while the transport steps aside) and
 * _sendfile_fallback (the file read in the default executor and written
 * through the transport, under a stand-in protocol that follows the
 * transport's flow control); sock_sendfile's fallback,
 * _sock_sendfile_fallback (the same reads, sent with sock_sendall); and
 * _check_sendfile_params.
 *
 * Each coroutine is a StepCoroutine following stdlib's base_events.py and
 * selector_events.py statement by statement, errors and `finally:` blocks
 * included. The loop methods they call are looked up by name on each
 * call, as stdlib's `self.` calls are, because asyncio's tests replace
 * _sendfile_native and run_in_executor on the loop. The fallbacks'
 * arithmetic (count, offset, block sizes) is done on the Python objects
 * as given, so an odd count fails as it does in stdlib. */
#include "casyncio.h"

#define LOOP(coro) ((LoopObject *)(coro)->vars[0])
#define ARG(coro, i) PyTuple_GET_ITEM((coro)->vars[1], (i))

/* The block size _sendfile_fallback reads; stdlib hard-codes it there. */
#define TRANSPORT_FALLBACK_BLOCKSIZE 16384

/* ---- _check_sendfile_params -------------------------------------------- */

/* obj <op> 0: 1, 0, or -1 with an exception. */
static int
compare_with_zero(PyObject *obj, int op)
{
    PyObject *zero = PyLong_FromLong(0);
    int rc = zero ? PyObject_RichCompareBool(obj, zero, op) : -1;

    Py_XDECREF(zero);
    return rc;
}

/* getattr(obj, name, None) as a new reference to value or NULL: 0, or -1
 * with an error other than AttributeError. */
static int
get_optional_attr(PyObject *obj, const char *name, PyObject **value)
{
    *value = PyObject_GetAttrString(obj, name);
    if (*value == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
    }
    return PyErr_Occurred() ? -1 : 0;
}

static int
raise_bad_int(PyObject *exc_type, const char *what, PyObject *value)
{
    PyErr_Format(exc_type, "%s must be a %s integer (got %R)", what,
                 strcmp(what, "count") == 0 ? "positive" : "non-negative",
                 value);
    return -1;
}

int
cio_check_sendfile_params(cio_state *st, PyObject *sock, PyObject *file,
                          PyObject *offset, PyObject *count)
{
    PyObject *mode, *b, *type;
    int has_b, stream, below;

    if (get_optional_attr(file, "mode", &mode) < 0) {
        return -1;
    }
    if (mode == NULL) {
        has_b = 1;  /* getattr(file, 'mode', 'b') */
    }
    else {
        b = PyUnicode_FromString("b");
        has_b = b ? PySequence_Contains(mode, b) : -1;
        Py_XDECREF(b);
        Py_DECREF(mode);
    }
    if (has_b <= 0) {
        if (has_b == 0) {
            PyErr_SetString(PyExc_ValueError,
                            "file should be opened in binary mode");
        }
        return -1;
    }
    type = PyObject_GetAttrString(sock, "type");
    stream = type ? PyObject_RichCompareBool(type, st->sock_stream, Py_EQ)
                  : -1;
    Py_XDECREF(type);
    if (stream <= 0) {
        if (stream == 0) {
            PyErr_SetString(PyExc_ValueError,
                            "only SOCK_STREAM type sockets are supported");
        }
        return -1;
    }
    if (count != Py_None) {
        if (!PyLong_Check(count)) {
            return raise_bad_int(PyExc_TypeError, "count", count);
        }
        below = compare_with_zero(count, Py_LE);
        if (below != 0) {
            return below < 0 ? -1
                             : raise_bad_int(PyExc_ValueError, "count", count);
        }
    }
    if (!PyLong_Check(offset)) {
        return raise_bad_int(PyExc_TypeError, "offset", offset);
    }
    below = compare_with_zero(offset, Py_LT);
    if (below != 0) {
        return below < 0 ? -1
                         : raise_bad_int(PyExc_ValueError, "offset", offset);
    }
    return 0;
}

/* ---- the fallback's stand-in protocol ----------------------------------- */

/* base_events._SendfileFallbackProtocol: set on the transport while the
 * fallback writes, so that its flow control reaches the fallback (a
 * future to wait on while the transport is paused) and anything else it
 * reports is an error, then swapped back with the transport's state as
 * it was. */
typedef struct {
    PyObject_HEAD
    PyObject *transport;
    PyObject *proto;                  /* the transport's own protocol */
    PyObject *should_resume_reading;  /* transp.is_reading() at the start */
    PyObject *should_resume_writing;  /* transp._protocol_paused, ditto */
    PyObject *write_ready_fut;        /* set while writing is paused */
} FallbackProtocolObject;

static PyObject *
transport_loop_future(FallbackProtocolObject *self)
{
    PyObject *loop = PyObject_GetAttrString(self->transport, "_loop");
    PyObject *fut = loop ? PyObject_CallMethod(loop, "create_future", NULL)
                         : NULL;

    Py_XDECREF(loop);
    return fut;
}

static PyObject *
fallback_protocol_new(cio_state *st, PyObject *transp)
{
    FallbackProtocolObject *self;
    PyObject *res;
    int paused, is_mixin;

    is_mixin = PyObject_IsInstance(transp, st->flow_control_mixin);
    if (is_mixin <= 0) {
        if (is_mixin == 0) {
            PyErr_SetString(PyExc_TypeError,
                            "transport should be _FlowControlMixin instance");
        }
        return NULL;
    }
    self = PyObject_GC_New(FallbackProtocolObject,
                           st->sendfile_fallback_protocol_type);
    if (self == NULL) {
        return NULL;
    }
    self->transport = Py_NewRef(transp);
    self->should_resume_reading = self->should_resume_writing = NULL;
    self->write_ready_fut = NULL;
    PyObject_GC_Track(self);
    self->proto = PyObject_CallMethod(transp, "get_protocol", NULL);
    if (self->proto == NULL ||
        (self->should_resume_reading =
             PyObject_CallMethod(transp, "is_reading", NULL)) == NULL ||
        (self->should_resume_writing =
             PyObject_GetAttrString(transp, "_protocol_paused")) == NULL) {
        goto fail;
    }
    res = cio_call_noargs(transp, "pause_reading") == 0
              ? PyObject_CallMethod(transp, "set_protocol", "(O)", self)
              : NULL;
    Py_XDECREF(res);
    paused = res ? PyObject_IsTrue(self->should_resume_writing) : -1;
    if (paused < 0) {
        goto fail;
    }
    if (paused) {
        self->write_ready_fut = transport_loop_future(self);
        if (self->write_ready_fut == NULL) {
            goto fail;
        }
    }
    return (PyObject *)self;

fail:
    Py_DECREF(self);
    return NULL;
}

/* drain(), a coroutine in stdlib that awaits at most one future: the
 * future to await (a new reference), None when writing is not paused, or
 * NULL with ConnectionError once the transport is closing. */
static PyObject *
fallback_protocol_drain(FallbackProtocolObject *self)
{
    PyObject *res = PyObject_CallMethod(self->transport, "is_closing", NULL);
    int closing = res ? PyObject_IsTrue(res) : -1;

    Py_XDECREF(res);
    if (closing != 0) {
        if (closing > 0) {
            PyErr_SetString(PyExc_ConnectionError,
                            "Connection closed by peer");
        }
        return NULL;
    }
    return Py_NewRef(self->write_ready_fut ? self->write_ready_fut
                                           : Py_None);
}

/* obj.<method>() if flag is true. */
static int
call_if_true(PyObject *flag, PyObject *obj, const char *method)
{
    int yes = PyObject_IsTrue(flag);

    return yes <= 0 ? yes : cio_call_noargs(obj, method);
}

/* restore(), which never suspends in stdlib either: the transport's own
 * protocol back, reading and writing resumed if they were going. */
static int
fallback_protocol_restore(FallbackProtocolObject *self)
{
    PyObject *res = PyObject_CallMethod(self->transport, "set_protocol", "(O)",
                                        self->proto);

    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    if (call_if_true(self->should_resume_reading, self->transport,
                     "resume_reading") < 0) {
        return -1;
    }
    /* Nothing waits on it any more; stdlib cancels it all the same. */
    if (self->write_ready_fut != NULL &&
        cio_call_noargs(self->write_ready_fut, "cancel") < 0) {
        return -1;
    }
    return call_if_true(self->should_resume_writing, self->proto,
                        "resume_writing");
}

static PyObject *
fallback_protocol_connection_made(FallbackProtocolObject *self,
                                  PyObject *Py_UNUSED(transport))
{
    PyErr_SetString(PyExc_RuntimeError,
                    "Invalid state: connection should have been "
                    "established already.");
    return NULL;
}

static PyObject *
fallback_protocol_connection_lost(FallbackProtocolObject *self,
                                  PyObject *exc)
{
    PyObject *res;

    if (self->write_ready_fut != NULL) {
        /* The peer went before the whole file was sent: always an error
         * for the one waiting. */
        if (exc == Py_None) {
            PyObject *lost = PyObject_CallFunction(
                PyExc_ConnectionError, "s", "Connection is closed by peer");
            res = lost ? PyObject_CallMethod(self->write_ready_fut,
                                             "set_exception", "(O)", lost)
                       : NULL;
            Py_XDECREF(lost);
        }
        else {
            res = PyObject_CallMethod(self->write_ready_fut, "set_exception",
                                      "(O)", exc);
        }
        if (res == NULL) {
            return NULL;
        }
        Py_DECREF(res);
    }
    return PyObject_CallMethod(self->proto, "connection_lost", "(O)", exc);
}

static PyObject *
fallback_protocol_pause_writing(FallbackProtocolObject *self,
                                PyObject *Py_UNUSED(ignored))
{
    if (self->write_ready_fut == NULL) {
        self->write_ready_fut = transport_loop_future(self);
        if (self->write_ready_fut == NULL) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
fallback_protocol_resume_writing(FallbackProtocolObject *self,
                                 PyObject *Py_UNUSED(ignored))
{
    PyObject *fut = self->write_ready_fut, *res;

    if (fut == NULL) {
        Py_RETURN_NONE;
    }
    res = PyObject_CallMethod(fut, "set_result", "(O)", Py_False);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    self->write_ready_fut = NULL;
    Py_DECREF(fut);
    Py_RETURN_NONE;
}

static PyObject *
fallback_protocol_data_received(FallbackProtocolObject *self,
                                PyObject *Py_UNUSED(data))
{
    PyErr_SetString(PyExc_RuntimeError,
                    "Invalid state: reading should be paused");
    return NULL;
}

static PyObject *
fallback_protocol_eof_received(FallbackProtocolObject *self,
                               PyObject *Py_UNUSED(ignored))
{
    return fallback_protocol_data_received(self, NULL);
}

static int
fallback_protocol_traverse(FallbackProtocolObject *self, visitproc visit,
                           void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->transport);
    Py_VISIT(self->proto);
    Py_VISIT(self->should_resume_reading);
    Py_VISIT(self->should_resume_writing);
    Py_VISIT(self->write_ready_fut);
    return 0;
}

static int
fallback_protocol_clear(FallbackProtocolObject *self)
{
    Py_CLEAR(self->transport);
    Py_CLEAR(self->proto);
    Py_CLEAR(self->should_resume_reading);
    Py_CLEAR(self->should_resume_writing);
    Py_CLEAR(self->write_ready_fut);
    return 0;
}

static void
fallback_protocol_dealloc(FallbackProtocolObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    fallback_protocol_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef fallback_protocol_methods[] = {
    {"connection_made", (PyCFunction)fallback_protocol_connection_made,
     METH_O, NULL},
    {"connection_lost", (PyCFunction)fallback_protocol_connection_lost,
     METH_O, NULL},
    {"pause_writing", (PyCFunction)fallback_protocol_pause_writing,
     METH_NOARGS, NULL},
    {"resume_writing", (PyCFunction)fallback_protocol_resume_writing,
     METH_NOARGS, NULL},
    {"data_received", (PyCFunction)fallback_protocol_data_received, METH_O,
     NULL},
    {"eof_received", (PyCFunction)fallback_protocol_eof_received,
     METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot fallback_protocol_slots[] = {
    {Py_tp_methods, fallback_protocol_methods},
    {Py_tp_traverse, fallback_protocol_traverse},
    {Py_tp_clear, fallback_protocol_clear},
    {Py_tp_dealloc, fallback_protocol_dealloc},
    {Py_tp_doc, "The protocol a transport has while loop.sendfile() "
                "writes a file through it by reads."},
    {0, NULL},
};

PyType_Spec cio_sendfile_fallback_protocol_spec = {
    .name = "casyncio._casyncio.SendfileFallbackProtocol",
    .basicsize = sizeof(FallbackProtocolObject),
    /* Not immutable: its base, asyncio.Protocol, is a Python class. */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = fallback_protocol_slots,
};

/* ---- small helpers ------------------------------------------------------ */

/* min(a, b) as the builtin picks: a, unless b < a. A new reference. */
static PyObject *
py_min(PyObject *a, PyObject *b)
{
    int less = PyObject_RichCompareBool(b, a, Py_LT);

    return less < 0 ? NULL : Py_NewRef(less ? b : a);
}

/* seq[:stop], a new reference. */
static PyObject *
slice_to(PyObject *seq, PyObject *stop)
{
    PyObject *slice = PySlice_New(NULL, stop, NULL);
    PyObject *part = slice ? PyObject_GetItem(seq, slice) : NULL;

    Py_XDECREF(slice);
    return part;
}

/* The coroutine's own method of the loop, looked up by name: name(*args)
 * for the four arguments the sendfile coroutines pass on. */
static PyObject *
call_loop_method4(CioStepCoroObject *coro, const char *name)
{
    return PyObject_CallMethod((PyObject *)LOOP(coro), name, "OOOO",
                               ARG(coro, 0), ARG(coro, 1), ARG(coro, 2),
                               ARG(coro, 3));
}

/* ---- _sendfile_fallback, _sock_sendfile_fallback ----------------------- */

/* Arguments: the transport or socket, then as loop.sendfile's. */
enum { FB_TARGET, FB_FILE, FB_OFFSET, FB_COUNT, FB_ARG_COUNT };
enum {
    FB_VAR_BUF = 2,    /* bytearray(blocksize), read into again and again */
    FB_VAR_VIEW,       /* memoryview(buf)[:blocksize] of this turn */
    FB_VAR_PROTO,      /* the stand-in protocol; NULL for a socket */
    FB_VAR_READ,       /* what this turn's readinto() returned */
    FB_VAR_BLOCKSIZE,
    FB_VAR_TOTAL,      /* total_sent */
};
enum { FB_START, FB_READING, FB_DRAINING, FB_SENDING };

#define FB_VAR(coro, i) ((coro)->vars[FB_VAR_##i])

/* The statements before the loop's try: the seek to offset, the buffer
 * and, for a transport, its stand-in protocol. blocksize is the default
 * read size. */
static int
fallback_begin(CioStepCoroObject *coro, PyObject *blocksize, int transport)
{
    PyObject *file = ARG(coro, FB_FILE), *count = ARG(coro, FB_COUNT);
    PyObject *offset = ARG(coro, FB_OFFSET), *res;
    int seek = PyObject_IsTrue(offset), whole;

    if (seek < 0) {
        return -1;
    }
    if (seek) {
        res = PyObject_CallMethod(file, "seek", "(O)", offset);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
    }
    whole = PyObject_Not(count);
    if (whole < 0) {
        return -1;
    }
    FB_VAR(coro, BLOCKSIZE) = whole ? Py_NewRef(blocksize)
                                    : py_min(count, blocksize);
    if (FB_VAR(coro, BLOCKSIZE) == NULL) {
        return -1;
    }
    FB_VAR(coro, BUF) = PyObject_CallOneArg((PyObject *)&PyByteArray_Type,
                                            FB_VAR(coro, BLOCKSIZE));
    FB_VAR(coro, TOTAL) = PyLong_FromLong(0);
    if (FB_VAR(coro, BUF) == NULL || FB_VAR(coro, TOTAL) == NULL) {
        return -1;
    }
    if (transport) {
        FB_VAR(coro, PROTO) = fallback_protocol_new(
            LOOP(coro)->state, ARG(coro, FB_TARGET));
        if (FB_VAR(coro, PROTO) == NULL) {
            return -1;
        }
    }
    return 0;
}

/* The loop's head: the block size left to send, then the read of the next
 * block in the default executor, to await; RETURN once count is sent. */
static cio_step_t
fallback_read_next(CioStepCoroObject *coro, PyObject **out)
{
    PyObject *count = ARG(coro, FB_COUNT), *file = ARG(coro, FB_FILE);
    PyObject *whole_view, *readinto;
    int limited = PyObject_IsTrue(count), none_left;

    if (limited < 0) {
        return CIO_STEP_ERROR;
    }
    if (limited) {
        PyObject *left = PyNumber_Subtract(count, FB_VAR(coro, TOTAL));
        PyObject *size = left ? py_min(left, FB_VAR(coro, BLOCKSIZE)) : NULL;

        Py_XDECREF(left);
        if (size == NULL) {
            return CIO_STEP_ERROR;
        }
        Py_SETREF(FB_VAR(coro, BLOCKSIZE), size);
        none_left = compare_with_zero(size, Py_LE);
        if (none_left != 0) {
            *out = none_left > 0 ? Py_NewRef(FB_VAR(coro, TOTAL)) : NULL;
            return none_left > 0 ? CIO_STEP_RETURN : CIO_STEP_ERROR;
        }
    }
    whole_view = PyMemoryView_FromObject(FB_VAR(coro, BUF));
    Py_XSETREF(FB_VAR(coro, VIEW),
               whole_view ? slice_to(whole_view, FB_VAR(coro, BLOCKSIZE))
                          : NULL);
    Py_XDECREF(whole_view);
    readinto = FB_VAR(coro, VIEW) ? PyObject_GetAttrString(file, "readinto")
                                  : NULL;
    if (readinto == NULL) {
        return CIO_STEP_ERROR;
    }
    *out = PyObject_CallMethod((PyObject *)LOOP(coro), "run_in_executor",
                               "OOO", Py_None, readinto, FB_VAR(coro, VIEW));
    Py_DECREF(readinto);
    coro->state = FB_READING;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

/* total_sent += read, after the block went out. */
static int
fallback_count_sent(CioStepCoroObject *coro)
{
    PyObject *total = PyNumber_InPlaceAdd(FB_VAR(coro, TOTAL),
                                          FB_VAR(coro, READ));

    if (total == NULL) {
        return -1;
    }
    Py_SETREF(FB_VAR(coro, TOTAL), total);
    return 0;
}

/* transp.write(view[:read]): the transport copies what it cannot send at
 * once, so the buffer is free for the next read. */
static cio_step_t
fallback_write(CioStepCoroObject *coro, PyObject **out)
{
    PyObject *block = slice_to(FB_VAR(coro, VIEW), FB_VAR(coro, READ));
    PyObject *res = block ? PyObject_CallMethod(ARG(coro, FB_TARGET),
                                                "write", "(O)", block)
                          : NULL;

    Py_XDECREF(block);
    Py_XDECREF(res);
    if (res == NULL || fallback_count_sent(coro) < 0) {
        return CIO_STEP_ERROR;
    }
    return fallback_read_next(coro, out);
}

/* The block is read (read, borrowed): end of file, or send it on. */
static cio_step_t
fallback_got_block(CioStepCoroObject *coro, PyObject *read, PyObject **out)
{
    PyObject *block, *wait;
    int eof = PyObject_Not(read);

    if (eof != 0) {
        *out = eof > 0 ? Py_NewRef(FB_VAR(coro, TOTAL)) : NULL;
        return eof > 0 ? CIO_STEP_RETURN : CIO_STEP_ERROR;
    }
    Py_XSETREF(FB_VAR(coro, READ), Py_NewRef(read));
    if (FB_VAR(coro, PROTO) == NULL) {  /* await sock_sendall(sock, ...) */
        block = slice_to(FB_VAR(coro, VIEW), read);
        *out = block ? PyObject_CallMethod((PyObject *)LOOP(coro),
                                           "sock_sendall", "OO",
                                           ARG(coro, FB_TARGET), block)
                     : NULL;
        Py_XDECREF(block);
        coro->state = FB_SENDING;
        return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
    }
    wait = fallback_protocol_drain(
        (FallbackProtocolObject *)FB_VAR(coro, PROTO));
    if (wait == NULL) {
        return CIO_STEP_ERROR;
    }
    if (wait == Py_None) {
        Py_DECREF(wait);
        return fallback_write(coro, out);
    }
    coro->state = FB_DRAINING;
    *out = wait;
    return CIO_STEP_AWAIT;
}

/* The try's `finally:` after the body ended as rc: the file's position
 * left after what was sent, and the transport's protocol restored. */
static cio_step_t
fallback_finally(CioStepCoroObject *coro, cio_step_t rc, PyObject **out)
{
    PyObject *exc = rc == CIO_STEP_ERROR ? cio_fetch_exception() : NULL;
    PyObject *file = ARG(coro, FB_FILE), *seek = NULL, *pos, *res;
    int sent = compare_with_zero(FB_VAR(coro, TOTAL), Py_GT);

    if (sent > 0 && get_optional_attr(file, "seek", &seek) == 0 &&
        seek != NULL) {
        pos = PyNumber_Add(ARG(coro, FB_OFFSET), FB_VAR(coro, TOTAL));
        res = pos ? PyObject_CallOneArg(seek, pos) : NULL;
        Py_XDECREF(pos);
        Py_XDECREF(res);
    }
    Py_XDECREF(seek);
    if (!PyErr_Occurred() && FB_VAR(coro, PROTO) != NULL) {
        fallback_protocol_restore(
            (FallbackProtocolObject *)FB_VAR(coro, PROTO));
    }
    if (cio_finally_end(exc) < 0) {
        if (rc == CIO_STEP_RETURN) {
            Py_CLEAR(*out);
        }
        return CIO_STEP_ERROR;
    }
    return rc;
}

static cio_step_t
fallback_step(CioStepCoroObject *coro, PyObject *value, PyObject **out,
              PyObject *blocksize, int transport)
{
    cio_step_t rc;

    switch (coro->state) {
    case FB_START:
        if (fallback_begin(coro, blocksize, transport) < 0) {
            return CIO_STEP_ERROR;  /* before the try: nothing to undo */
        }
        rc = fallback_read_next(coro, out);
        break;
    case FB_READING:
        rc = value ? fallback_got_block(coro, value, out) : CIO_STEP_ERROR;
        break;
    case FB_DRAINING:
        rc = value ? fallback_write(coro, out) : CIO_STEP_ERROR;
        break;
    default:  /* FB_SENDING */
        rc = value == NULL || fallback_count_sent(coro) < 0
                 ? CIO_STEP_ERROR
                 : fallback_read_next(coro, out);
        break;
    }
    return rc == CIO_STEP_AWAIT ? rc : fallback_finally(coro, rc, out);
}

static cio_step_t
transport_fallback_step(CioStepCoroObject *coro, PyObject *value,
                        PyObject **out)
{
    PyObject *blocksize = NULL;
    cio_step_t rc;

    if (coro->state == FB_START) {
        blocksize = PyLong_FromLong(TRANSPORT_FALLBACK_BLOCKSIZE);
        if (blocksize == NULL) {
            return CIO_STEP_ERROR;
        }
    }
    rc = fallback_step(coro, value, out, blocksize, 1);
    Py_XDECREF(blocksize);
    return rc;
}

/* The socket fallback reads constants.SENDFILE_FALLBACK_READBUFFER_SIZE
 * when it starts, as stdlib does, so a patched size applies. */
static cio_step_t
sock_fallback_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    PyObject *blocksize = NULL;
    cio_step_t rc;

    if (coro->state == FB_START) {
        blocksize = PyObject_GetAttrString(
            LOOP(coro)->state->constants_module,
            "SENDFILE_FALLBACK_READBUFFER_SIZE");
        if (blocksize == NULL) {
            return CIO_STEP_ERROR;
        }
    }
    rc = fallback_step(coro, value, out, blocksize, 0);
    Py_XDECREF(blocksize);
    return rc;
}

/* ---- _sendfile_native --------------------------------------------------- */

enum { NATIVE_VAR_RESUME_READING = 2 };
enum { NATIVE_START, NATIVE_DRAINING, NATIVE_SENDING };

/* selector_events' version, up to its try: the transport lets go of its
 * fd (for sock_sendfile's writer) and stops reading, and what it has
 * queued is sent first. */
static cio_step_t
native_begin(CioStepCoroObject *coro, PyObject **out)
{
    PyObject *transp = ARG(coro, FB_TARGET);

    if (cio_call_noargs(transp, "_release_fd") < 0) {
        return CIO_STEP_ERROR;
    }
    coro->vars[NATIVE_VAR_RESUME_READING] =
        PyObject_CallMethod(transp, "is_reading", NULL);
    if (coro->vars[NATIVE_VAR_RESUME_READING] == NULL ||
        cio_call_noargs(transp, "pause_reading") < 0) {
        return CIO_STEP_ERROR;
    }
    *out = PyObject_CallMethod(transp, "_make_empty_waiter", NULL);
    coro->state = NATIVE_DRAINING;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

/* await self.sock_sendfile(transp._sock, file, offset, count,
 * fallback=False) */
static cio_step_t
native_send(CioStepCoroObject *coro, PyObject **out)
{
    PyObject *transp = ARG(coro, FB_TARGET);
    PyObject *sock = PyObject_GetAttrString(transp, "_sock");
    PyObject *name = PyUnicode_InternFromString("sock_sendfile");
    PyObject *kwnames = Py_BuildValue("(s)", "fallback");
    PyObject *stack[6] = {(PyObject *)LOOP(coro), sock, ARG(coro, FB_FILE),
                          ARG(coro, FB_OFFSET), ARG(coro, FB_COUNT),
                          Py_False};

    *out = sock && name && kwnames
               ? PyObject_VectorcallMethod(name, stack, 5, kwnames)
               : NULL;
    Py_XDECREF(sock);
    Py_XDECREF(name);
    Py_XDECREF(kwnames);
    coro->state = NATIVE_SENDING;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

/* The `finally:` once sending is over: the transport takes its fd back
 * and reads again if it did before. */
static cio_step_t
native_finally(CioStepCoroObject *coro, cio_step_t rc, PyObject **out)
{
    PyObject *exc = rc == CIO_STEP_ERROR ? cio_fetch_exception() : NULL;
    PyObject *transp = ARG(coro, FB_TARGET);

    if (cio_call_noargs(transp, "_reset_empty_waiter") == 0 &&
        call_if_true(coro->vars[NATIVE_VAR_RESUME_READING], transp,
                     "resume_reading") == 0) {
        cio_call_noargs(transp, "_reclaim_fd");
    }
    if (cio_finally_end(exc) < 0) {
        if (rc == CIO_STEP_RETURN) {
            Py_CLEAR(*out);
        }
        return CIO_STEP_ERROR;
    }
    return rc;
}

static cio_step_t
native_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    cio_step_t rc;

    switch (coro->state) {
    case NATIVE_START:
        return native_begin(coro, out);
    case NATIVE_DRAINING:
        if (value == NULL) {
            return CIO_STEP_ERROR;  /* before the try, as in stdlib */
        }
        rc = native_send(coro, out);
        break;
    default:  /* NATIVE_SENDING */
        *out = Py_XNewRef(value);
        rc = value ? CIO_STEP_RETURN : CIO_STEP_ERROR;
        break;
    }
    return rc == CIO_STEP_AWAIT ? rc : native_finally(coro, rc, out);
}

/* ---- loop.sendfile ------------------------------------------------------ */

enum { SF_ARG_FALLBACK = 4, SF_ARG_COUNT };
enum { SF_START, SF_NATIVE, SF_FALLBACK };

/* After the native path, or instead of it: the fallback unless
 * fallback=False. */
static cio_step_t
sendfile_fall_back(CioStepCoroObject *coro, PyObject **out)
{
    int allowed = PyObject_IsTrue(ARG(coro, SF_ARG_FALLBACK));

    if (allowed <= 0) {
        if (allowed == 0) {
            PyErr_Format(PyExc_RuntimeError,
                         "fallback is disabled and native sendfile is not "
                         "supported for transport %R", ARG(coro, FB_TARGET));
        }
        return CIO_STEP_ERROR;
    }
    *out = call_loop_method4(coro, "_sendfile_fallback");
    coro->state = SF_FALLBACK;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

/* The transport's _sendfile_compatible mode decides the way. */
static cio_step_t
sendfile_begin(CioStepCoroObject *coro, PyObject **out)
{
    cio_state *st = LOOP(coro)->state;
    PyObject *transport = ARG(coro, FB_TARGET), *mode;
    PyObject *res = PyObject_CallMethod(transport, "is_closing", NULL);
    int closing = res ? PyObject_IsTrue(res) : -1, unsupported, native;

    Py_XDECREF(res);
    if (closing != 0) {
        if (closing > 0) {
            PyErr_SetString(PyExc_RuntimeError, "Transport is closing");
        }
        return CIO_STEP_ERROR;
    }
    if (get_optional_attr(transport, "_sendfile_compatible", &mode) < 0) {
        return CIO_STEP_ERROR;
    }
    /* The modes are enum members, compared by identity. */
    unsupported = mode == NULL || mode == st->sendfile_mode_unsupported;
    native = mode == st->sendfile_mode_try_native;
    Py_XDECREF(mode);
    if (unsupported) {
        PyErr_Format(PyExc_RuntimeError,
                     "sendfile is not supported for transport %R",
                     transport);
        return CIO_STEP_ERROR;
    }
    if (!native) {
        return sendfile_fall_back(coro, out);
    }
    *out = call_loop_method4(coro, "_sendfile_native");
    coro->state = SF_NATIVE;
    return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
}

static cio_step_t
sendfile_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    cio_state *st = LOOP(coro)->state;
    PyObject *exc;
    int allowed;

    if (coro->state == SF_START) {
        return sendfile_begin(coro, out);
    }
    if (value != NULL) {
        *out = Py_NewRef(value);
        return CIO_STEP_RETURN;
    }
    if (coro->state == SF_FALLBACK ||
        !PyErr_ExceptionMatches(st->sendfile_not_available)) {
        return CIO_STEP_ERROR;
    }
    /* except SendfileNotAvailableError: if not fallback: raise */
    exc = cio_fetch_exception();
    allowed = PyObject_IsTrue(ARG(coro, SF_ARG_FALLBACK));
    if (allowed <= 0) {
        cio_finally_end(exc);  /* exc, or the error of the test */
        return CIO_STEP_ERROR;
    }
    Py_DECREF(exc);
    return sendfile_fall_back(coro, out);
}

/* ---- the loop's methods ------------------------------------------------- */

static PyObject *
loop_sendfile(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"transport", "file", "offset", "count",
                             "fallback", NULL};
    static const long defaults[SF_ARG_COUNT] = {0, 0, 0, 0, 1};
    PyObject *a[SF_ARG_COUNT] = {NULL, NULL, NULL, Py_None, Py_True};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$O:sendfile",
                                     kwlist, &a[0], &a[1], &a[2], &a[3],
                                     &a[4])) {
        return NULL;
    }
    return (PyObject *)cio_loop_call_coro_new(self, "Loop.sendfile",
                                              sendfile_step, a, SF_ARG_COUNT,
                                              defaults);
}

/* The private coroutines of four positional arguments. */
static PyObject *
four_arg_coro(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
              const char *qualname, cio_step_fn step)
{
    if (nargs != FB_ARG_COUNT) {
        PyErr_Format(PyExc_TypeError, "%s() takes 4 positional arguments "
                     "but %zd were given", strchr(qualname, '.') + 1, nargs);
        return NULL;
    }
    return (PyObject *)cio_loop_call_coro_new(self, qualname, step, args,
                                              FB_ARG_COUNT, NULL);
}

static PyObject *
loop_sendfile_native(LoopObject *self, PyObject *const *args,
                     Py_ssize_t nargs)
{
    return four_arg_coro(self, args, nargs, "Loop._sendfile_native",
                         native_step);
}

static PyObject *
loop_sendfile_fallback(LoopObject *self, PyObject *const *args,
                       Py_ssize_t nargs)
{
    return four_arg_coro(self, args, nargs, "Loop._sendfile_fallback",
                         transport_fallback_step);
}

static PyObject *
loop_sock_sendfile_fallback(LoopObject *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    return four_arg_coro(self, args, nargs, "Loop._sock_sendfile_fallback",
                         sock_fallback_step);
}

static PyObject *
loop_check_sendfile_params(LoopObject *self, PyObject *const *args,
                           Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "_check_sendfile_params() takes 4 "
                     "positional arguments but %zd were given", nargs);
        return NULL;
    }
    if (cio_check_sendfile_params(self->state, args[0], args[1], args[2],
                                  args[3]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

#define FASTCALL_DEF(name, fn, doc)                                         \
    {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL, doc}

PyMethodDef cio_loop_sendfile_methods[] = {
    {"sendfile", (PyCFunction)(void (*)(void))loop_sendfile,
     METH_VARARGS | METH_KEYWORDS,
     "sendfile($self, transport, file, offset=0, count=None, *, "
     "fallback=True)\n--\n\n"
     "Coroutine: send a file through transport with os.sendfile() where "
     "the transport allows, else by reads; return the bytes sent."},
    FASTCALL_DEF("_sendfile_native", loop_sendfile_native,
                 "_sendfile_native($self, transp, file, offset, count, /)"
                 "\n--\n\n"
                 "Coroutine: os.sendfile() on the transport's socket, or "
                 "SendfileNotAvailableError."),
    FASTCALL_DEF("_sendfile_fallback", loop_sendfile_fallback,
                 "_sendfile_fallback($self, transp, file, offset, count, /)"
                 "\n--\n\n"
                 "Coroutine: send the file through the transport by reads."),
    FASTCALL_DEF("_sock_sendfile_fallback", loop_sock_sendfile_fallback,
                 "_sock_sendfile_fallback($self, sock, file, offset, count, "
                 "/)\n--\n\n"
                 "Coroutine: send the file by reads and sock_sendall()."),
    FASTCALL_DEF("_check_sendfile_params", loop_check_sendfile_params,
                 "_check_sendfile_params($self, sock, file, offset, count, "
                 "/)\n--\n\n"
                 "Raise as sock_sendfile() does for a bad argument."),
    {NULL, NULL, 0, NULL},
};
