/* ReadPipeTransport and WritePipeTransport: connect_read_pipe(),
 * connect_write_pipe() and the pipes of a subprocess.
 *
 * The semantics are unix_events._UnixReadPipeTransport's and
 * _UnixWritePipeTransport's (the callbacks, their order, the log and error
 * messages). As with the socket transport, reads land in the loop's shared
 * buffer and reach the protocol as an exact-size bytes, and writes go
 * straight to write(), queueing only the rest for one writev() per
 * wake-up (stdlib copies everything into a bytearray).
 *
 * Both types keep an instance __dict__: asyncio's own tests, and some
 * libraries, replace methods such as pause_reading on the instance. */
#include "transport_write.h"

#include <fcntl.h>
#include <structmember.h>
#include <sys/stat.h>
#include <unistd.h>

/* BaseTransport's one instance slot, _extra. */
#define READ_TRANSPORT_SLOTS 1

typedef struct {
    PyObject_HEAD
    PyObject *base_slots[READ_TRANSPORT_SLOTS];
    LoopObject *loop;          /* NULL once the connection is lost */
    PyObject *protocol;
    PyObject *pipe;            /* the pipe object; NULL once closed */
    PyObject *extra;
    PyObject *read_ready;      /* bound _read_ready, made once */
    PyObject *dict;
    PyObject *weakreflist;
    int fd;
    char closing;
    char paused;
} ReadPipeTransportObject;

typedef struct {
    CIO_WRITE_TRANSPORT_HEAD
    PyObject *pipe;            /* the pipe object; NULL once closed */
    PyObject *extra;
    PyObject *read_ready;      /* bound _read_ready and _write_ready */
    PyObject *write_ready;
    PyObject *dict;
    PyObject *weakreflist;
    int fd;
    int conn_lost;
    char closing;              /* set by close(), write_eof() and abort() */
} WritePipeTransportObject;

/* ---- shared by both directions ------------------------------------------ */

/* stdlib's mode check, then non-blocking mode. Returns the st_mode. */
static int
check_pipe_fd(int fd, const char *message, mode_t *mode_out)
{
    struct stat st;
    int flags;

    if (fstat(fd, &st) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (!(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
          S_ISCHR(st.st_mode))) {
        PyErr_SetString(PyExc_ValueError, message);
        return -1;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    *mode_out = st.st_mode;
    return 0;
}

/* connection_made(transport) joins the constructor's batch of start-up
 * calls; the caller adds the start of reading, then the waiter, as stdlib
 * schedules them. */
static int
schedule_connection_made(cio_soon_batch_t *batch, PyObject *transport,
                         PyObject *protocol)
{
    PyObject *made = PyObject_GetAttrString(protocol, "connection_made");
    int rc = cio_soon_batch_add(batch, made, &transport, 1);

    Py_XDECREF(made);
    return rc;
}

static int
schedule_waiter(cio_soon_batch_t *batch, PyObject *waiter)
{
    PyObject *args[2] = {waiter, Py_None};

    if (waiter == Py_None) {
        return 0;
    }
    return cio_soon_batch_add(
        batch, batch->loop->state->set_result_unless_cancelled, args, 2);
}

/* logger.<level>(fmt, transport) in debug mode. */
static int
debug_log_as(PyObject *transport, LoopObject *loop, const char *level,
             const char *fmt)
{
    PyObject *res;

    if (loop == NULL || !loop->debug) {
        return 0;
    }
    res = PyObject_CallMethod(loop->state->logger, level, "sO", fmt,
                              transport);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* _call_connection_lost: protocol.connection_lost(exc), then (as a
 * finally) close the pipe and drop the protocol; the caller drops the
 * loop. */
static PyObject *
call_connection_lost(PyObject *self, PyObject **protocol, PyObject **pipe,
                     PyObject *exc)
{
    cio_state *st = cio_get_state_by_type(Py_TYPE(self));
    PyObject *res = NULL, *raised = NULL, *closed;

    /* Both calls are made without a bound method or an argument tuple, so
     * that an allocation failing here cannot leave the file open (a child
     * waits for its stdin's EOF) nor lose the end of a subprocess's pipe,
     * whose protocol is C. */
    if (*protocol != NULL) {
        res = cio_call_method(st, *protocol, CIO_NAME_connection_lost, &exc,
                              1);
        if (res == NULL) {
            raised = cio_fetch_exception();
        }
        Py_XDECREF(res);
    }
    if (*pipe != NULL) {
        closed = cio_call_method(st, *pipe, CIO_NAME_close, NULL, 0);
        if (closed == NULL && raised == NULL) {
            raised = cio_fetch_exception();
        }
        else if (closed == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(closed);
        Py_CLEAR(*pipe);
    }
    Py_CLEAR(*protocol);
    if (raised != NULL) {
        cio_restore_exception(raised);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _fatal_error: OSErrors (only EIO for a read pipe) are expected and
 * logged in debug mode; anything else goes to the exception handler. */
static int
report_fatal_error(PyObject *self, LoopObject *loop, PyObject *protocol,
                   PyObject *exc, const char *message, int only_eio)
{
    int expected = PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError);
    int rc = 0;

    if (expected && only_eio) {
        PyObject *err = ((PyOSErrorObject *)exc)->myerrno;
        expected = err != NULL && PyLong_Check(err) &&
                   PyLong_AsLong(err) == EIO;
    }
    if (expected) {
        if (loop->debug) {
            PyObject *msg = PyUnicode_FromFormat("%R: %s", self, message);
            rc = msg ? cio_log(loop->state, "debug", msg, Py_True) : -1;
            Py_XDECREF(msg);
        }
        return rc;
    }
    PyObject *context = Py_BuildValue("{sssOsOsO}", "message", message,
                                      "exception", exc, "transport", self,
                                      "protocol",
                                      protocol ? protocol : Py_None);
    rc = context ? cio_loop_report(loop, context) : -1;
    Py_XDECREF(context);
    return rc;
}

/* stdlib's __repr__ on a loop with a selector. */
static PyObject *
pipe_repr(PyObject *self, LoopObject *loop, PyObject *pipe, int closing,
          int fd, unsigned event, Py_ssize_t bufsize)
{
    PyObject *name = PyType_GetName(Py_TYPE(self)), *r;
    const char *state = pipe == NULL ? " closed" : closing ? " closing" : "";

    if (name == NULL) {
        return NULL;
    }
    if (pipe == NULL) {
        r = PyUnicode_FromFormat("<%U%s fd=%d closed>", name, state, fd);
    }
    else if (loop == NULL || loop->closed) {
        r = PyUnicode_FromFormat("<%U%s fd=%d open>", name, state, fd);
    }
    else {
        const char *polling = cio_loop_is_watching(loop, fd, event)
                                  ? "polling" : "idle";
        if (bufsize < 0) {
            r = PyUnicode_FromFormat("<%U%s fd=%d %s>", name, state, fd,
                                     polling);
        }
        else {
            r = PyUnicode_FromFormat("<%U%s fd=%d %s bufsize=%zd>", name,
                                     state, fd, polling, bufsize);
        }
    }
    Py_DECREF(name);
    return r;
}

/* __del__: an unclosed transport warns and closes its pipe. */
static void
finalize_unclosed(PyObject *self, PyObject **pipe)
{
    PyObject *exc, *res;

    if (*pipe == NULL) {
        return;
    }
    exc = cio_fetch_exception();
    if (PyErr_ResourceWarning(self, 1, "unclosed transport %R", self) < 0) {
        PyErr_WriteUnraisable(self);
    }
    res = PyObject_CallMethod(*pipe, "close", NULL);
    if (res == NULL) {
        PyErr_WriteUnraisable(self);
    }
    Py_XDECREF(res);
    Py_CLEAR(*pipe);
    cio_restore_exception(exc);
}

/* The _pipe attribute; setting None makes the transport forget its pipe
 * (asyncio's tests do that to an unclosed transport). */
static PyObject *
get_pipe_attr(PyObject *pipe)
{
    return Py_NewRef(pipe ? pipe : Py_None);
}

static int
set_pipe_attr(PyObject **pipe, PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _pipe");
        return -1;
    }
    Py_XSETREF(*pipe, value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

/* The parts of set-up both directions share: extra['pipe'], the fd. */
static int
setup_pipe(PyObject *self, PyObject *pipe, PyObject *extra_arg,
           PyObject **extra, PyObject **pipe_slot, int *fd)
{
    *extra = extra_arg == Py_None ? PyDict_New() : Py_NewRef(extra_arg);
    if (*extra == NULL ||
        PyObject_SetAttrString(self, "_extra", *extra) < 0 ||
        PyDict_SetItemString(*extra, "pipe", pipe) < 0) {
        return -1;
    }
    *fd = PyObject_AsFileDescriptor(pipe);
    if (*fd < 0) {
        return -1;
    }
    *pipe_slot = Py_NewRef(pipe);
    return 0;
}

/* ---- ReadPipeTransport -------------------------------------------------- */

static int
read_pipe_close(ReadPipeTransportObject *self, PyObject *exc)
{
    self->closing = 1;
    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0) {
        return -1;
    }
    return cio_schedule_connection_lost((PyObject *)self, self->loop, exc,
                                        NULL);
}

/* EOF: eof_received and connection_lost are scheduled, all or none,
 * before the reader is dropped, so that a failed allocation leaves the
 * reader to see the EOF again on the next iteration rather than losing
 * the end of the pipe (which a subprocess's communicate() waits for). */
static int
read_pipe_eof(ReadPipeTransportObject *self)
{
    PyObject *eof_received, *lost, *none = Py_None;
    cio_soon_batch_t batch;
    int rc;

    if (debug_log_as((PyObject *)self, self->loop, "info",
                     "%r was closed by peer") < 0) {
        return -1;
    }
    cio_soon_batch_init(&batch, self->loop, NULL);
    eof_received = PyObject_GetAttrString(self->protocol, "eof_received");
    rc = cio_soon_batch_add(&batch, eof_received, NULL, 0);
    Py_XDECREF(eof_received);
    if (rc == 0) {
        lost = PyObject_GetAttr((PyObject *)self, CIO_NAME(
            self->loop->state, _call_connection_lost));
        rc = cio_soon_batch_add(&batch, lost, &none, 1);
        Py_XDECREF(lost);
    }
    if (rc == 0 &&
        cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0) {
        rc = -1;
    }
    if (rc == 0) {
        self->closing = 1;
    }
    return cio_soon_batch_end(&batch, rc);
}

static PyObject *
read_pipe_read_ready(ReadPipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    char *buf;
    PyObject *data, *res;
    ssize_t n;

    if (self->loop == NULL || self->closing) {
        Py_RETURN_NONE;
    }
    buf = cio_loop_read_buffer(self->loop);
    if (buf == NULL) {
        return NULL;
    }
    n = read(self->fd, buf, CIO_MAX_READ_SIZE);
    if (n < 0) {
        PyObject *exc;
        int rc;

        if (cio_would_block(errno)) {
            Py_RETURN_NONE;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        exc = cio_fetch_exception();
        rc = report_fatal_error((PyObject *)self, self->loop, self->protocol,
                                exc, "Fatal read error on pipe transport", 1);
        if (rc == 0) {
            rc = read_pipe_close(self, exc);
        }
        Py_DECREF(exc);
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (n == 0) {
        return read_pipe_eof(self) < 0 ? NULL : Py_NewRef(Py_None);
    }
    data = PyBytes_FromStringAndSize(buf, n);
    if (data == NULL) {
        return NULL;
    }
    /* An exception here goes to the loop's handler, as in stdlib, where
     * data_received runs unguarded inside _read_ready. */
    res = PyObject_CallMethodOneArg(self->protocol,
                                    self->loop->state->str_data_received,
                                    data);
    Py_DECREF(data);
    return res;
}

static int
read_pipe_is_reading(ReadPipeTransportObject *self)
{
    return !self->paused && !self->closing;
}

/* Scheduled by set-up after connection_made: stdlib's _add_reader. A
 * watcher the loop cannot add (the poller refuses, or memory runs out)
 * fails the transport, as a read error does; stdlib's leaves the pipe
 * unwatched and its protocol waiting for ever. */
static PyObject *
read_pipe_start_reading(ReadPipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    PyObject *exc;
    int rc;

    if (self->loop == NULL || !read_pipe_is_reading(self)) {
        Py_RETURN_NONE;
    }
    if (cio_loop_add_watcher(self->loop, self->fd, CIO_POLL_READ,
                             self->read_ready, NULL, 0, NULL, NULL) == 0) {
        Py_RETURN_NONE;
    }
    if (!PyErr_ExceptionMatches(PyExc_OSError) &&
        !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        return NULL;
    }
    exc = cio_fetch_exception();
    rc = report_fatal_error((PyObject *)self, self->loop, self->protocol, exc,
                            "Fatal error: the loop could not watch the pipe",
                            1);
    if (rc == 0) {
        rc = read_pipe_close(self, exc);
    }
    Py_DECREF(exc);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
read_pipe_is_reading_method(ReadPipeTransportObject *self,
                            PyObject *Py_UNUSED(ig))
{
    return PyBool_FromLong(read_pipe_is_reading(self));
}

static PyObject *
read_pipe_pause_reading(ReadPipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (!read_pipe_is_reading(self)) {
        Py_RETURN_NONE;
    }
    self->paused = 1;
    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0 ||
        cio_transport_debug_log((PyObject *)self, self->loop,
                                "%r pauses reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
read_pipe_resume_reading(ReadPipeTransportObject *self,
                         PyObject *Py_UNUSED(ig))
{
    if (self->closing || !self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 0;
    if (cio_loop_add_watcher(self->loop, self->fd, CIO_POLL_READ,
                             self->read_ready, NULL, 0, NULL, NULL) < 0 ||
        cio_transport_debug_log((PyObject *)self, self->loop,
                                "%r resumes reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
read_pipe_close_method(ReadPipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (!self->closing && read_pipe_close(self, Py_None) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
read_pipe_is_closing(ReadPipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
read_pipe_call_connection_lost(ReadPipeTransportObject *self, PyObject *exc)
{
    PyObject *res = call_connection_lost((PyObject *)self, &self->protocol,
                                          &self->pipe, exc);

    Py_CLEAR(self->loop);
    return res;
}

static PyObject *
read_pipe_set_protocol(ReadPipeTransportObject *self, PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
}

static PyObject *
read_pipe_get_protocol(ReadPipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
read_pipe_get_extra_info(ReadPipeTransportObject *self, PyObject *const *args,
                         Py_ssize_t nargs)
{
    return cio_extra_info_get(self->extra, args, nargs);
}

static PyObject *
read_pipe_repr(ReadPipeTransportObject *self)
{
    return pipe_repr((PyObject *)self, self->loop, self->pipe, self->closing,
                     self->fd, CIO_POLL_READ, -1);
}

static void
read_pipe_finalize(ReadPipeTransportObject *self)
{
    finalize_unclosed((PyObject *)self, &self->pipe);
}

static int
read_pipe_traverse(ReadPipeTransportObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->base_slots[0]);
    Py_VISIT(self->loop);
    Py_VISIT(self->protocol);
    Py_VISIT(self->pipe);
    Py_VISIT(self->extra);
    Py_VISIT(self->read_ready);
    Py_VISIT(self->dict);
    return 0;
}

static int
read_pipe_clear(ReadPipeTransportObject *self)
{
    Py_CLEAR(self->base_slots[0]);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->pipe);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->read_ready);
    Py_CLEAR(self->dict);
    return 0;
}

static void
read_pipe_dealloc(ReadPipeTransportObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, &self->weakreflist)) {
        return;
    }
    read_pipe_clear(self);
    cio_dealloc_end((PyObject *)self);
}

static PyObject *
read_pipe_get_fileno(ReadPipeTransportObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->fd);
}

static PyObject *
read_pipe_get_pipe(ReadPipeTransportObject *self, void *Py_UNUSED(c))
{
    return get_pipe_attr(self->pipe);
}

static int
read_pipe_set_pipe(ReadPipeTransportObject *self, PyObject *value,
                   void *Py_UNUSED(c))
{
    return set_pipe_attr(&self->pipe, value);
}

#define NOARGS(name, fn) {name, (PyCFunction)(fn), METH_NOARGS, NULL}

static PyMethodDef read_pipe_methods[] = {
    NOARGS("pause_reading", read_pipe_pause_reading),
    NOARGS("resume_reading", read_pipe_resume_reading),
    NOARGS("is_reading", read_pipe_is_reading_method),
    NOARGS("close", read_pipe_close_method),
    NOARGS("is_closing", read_pipe_is_closing),
    {"set_protocol", (PyCFunction)read_pipe_set_protocol, METH_O, NULL},
    NOARGS("get_protocol", read_pipe_get_protocol),
    {"get_extra_info", (PyCFunction)(void (*)(void))read_pipe_get_extra_info,
     METH_FASTCALL, NULL},
    NOARGS("_read_ready", read_pipe_read_ready),
    NOARGS("_start_reading", read_pipe_start_reading),
    {"_call_connection_lost", (PyCFunction)read_pipe_call_connection_lost,
     METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef read_pipe_getset[] = {
    {"_fileno", (getter)read_pipe_get_fileno, NULL, NULL, NULL},
    {"_pipe", (getter)read_pipe_get_pipe, (setter)read_pipe_set_pipe, NULL,
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef read_pipe_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(ReadPipeTransportObject, dict),
     READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(ReadPipeTransportObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot read_pipe_slots[] = {
    {Py_tp_doc, "The read end of a pipe, FIFO, pty or character device."},
    {Py_tp_repr, read_pipe_repr},
    {Py_tp_methods, read_pipe_methods},
    {Py_tp_getset, read_pipe_getset},
    {Py_tp_members, read_pipe_members},
    {Py_tp_traverse, read_pipe_traverse},
    {Py_tp_clear, read_pipe_clear},
    {Py_tp_finalize, read_pipe_finalize},
    {Py_tp_dealloc, read_pipe_dealloc},
    {0, NULL},
};

PyType_Spec cio_read_pipe_transport_spec = {
    .name = "casyncio._casyncio.ReadPipeTransport",
    .basicsize = sizeof(ReadPipeTransportObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = read_pipe_slots,
};

PyObject *
cio_read_pipe_transport_new(LoopObject *loop, PyObject *pipe,
                            PyObject *protocol, PyObject *waiter,
                            PyObject *extra)
{
    PyTypeObject *type = loop->state->read_pipe_transport_type;
    ReadPipeTransportObject *self;
    PyObject *start;
    cio_soon_batch_t batch;
    mode_t mode;
    int rc;

    self = (ReadPipeTransportObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fd = -1;
    if (setup_pipe((PyObject *)self, pipe, extra, &self->extra, &self->pipe,
                   &self->fd) < 0 ||
        check_pipe_fd(self->fd, "Pipe transport is for pipes/sockets only.",
                      &mode) < 0) {
        Py_CLEAR(self->pipe);  /* stdlib leaves the pipe open on error */
        Py_DECREF(self);
        return NULL;
    }
    self->loop = (LoopObject *)Py_NewRef(loop);
    self->protocol = Py_NewRef(protocol);
    self->read_ready = PyObject_GetAttrString((PyObject *)self, "_read_ready");
    start = PyObject_GetAttrString((PyObject *)self, "_start_reading");
    cio_soon_batch_init(&batch, loop, NULL);
    rc = self->read_ready && start &&
                 schedule_connection_made(&batch, (PyObject *)self,
                                          protocol) == 0 &&
                 cio_soon_batch_add(&batch, start, NULL, 0) == 0 &&
                 schedule_waiter(&batch, waiter) == 0
             ? 0 : -1;
    Py_XDECREF(start);
    if (cio_soon_batch_end(&batch, rc) < 0) {
        Py_CLEAR(self->read_ready);  /* a cycle: the pipe closes now */
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* ---- WritePipeTransport ------------------------------------------------- */

/* _close(exc): drop the queue and report the loss on the next iteration. */
static int
write_pipe_close(WritePipeTransportObject *self, PyObject *exc)
{
    self->closing = 1;
    if (!cio_write_queue_empty(&self->queue)) {
        if (cio_loop_remove_watcher(self->loop, self->fd,
                                    CIO_POLL_WRITE) < 0) {
            return -1;
        }
        cio_write_queue_clear(&self->queue);
    }
    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0) {
        return -1;
    }
    return cio_schedule_connection_lost((PyObject *)self, self->loop, exc,
                                        NULL);
}

/* Reports the raised exception of a failed write (steals nothing). */
static int
write_pipe_fatal(WritePipeTransportObject *self)
{
    PyObject *exc = cio_fetch_reportable_exception();
    int rc;

    if (exc == NULL) {
        return -1;
    }
    rc = report_fatal_error((PyObject *)self, self->loop, self->protocol, exc,
                            "Fatal write error on pipe transport", 0);
    if (rc == 0) {
        rc = write_pipe_close(self, exc);
    }
    Py_DECREF(exc);
    return rc;
}

/* The reader end went away: the fd turns readable (EOF or error). */
static PyObject *
write_pipe_read_ready(WritePipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    PyObject *exc = Py_None;
    int rc;

    if (self->loop == NULL) {
        Py_RETURN_NONE;
    }
    if (debug_log_as((PyObject *)self, self->loop, "info",
                     "%r was closed by peer") < 0) {
        return NULL;
    }
    if (!cio_write_queue_empty(&self->queue)) {
        exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
        if (exc == NULL) {
            return NULL;
        }
        rc = write_pipe_close(self, exc);
        Py_DECREF(exc);
    }
    else {
        rc = write_pipe_close(self, exc);
    }
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
write_pipe_write(WritePipeTransportObject *self, PyObject *data)
{
    Py_buffer view;
    Py_ssize_t written = 0;
    PyObject *res = NULL;

    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data)) {
        /* stdlib asserts the type */
        PyObject *r = PyObject_Repr(data);
        if (r != NULL) {
            PyErr_SetObject(PyExc_AssertionError, r);
            Py_DECREF(r);
        }
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len == 0) {
        goto done;
    }
    if (self->conn_lost || self->closing || self->loop == NULL) {
        if (self->conn_lost >= CIO_LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
            PyObject *msg = PyUnicode_FromString(
                "pipe closed by peer or os.write(pipe, data) raised "
                "exception.");
            cio_state *st = cio_get_state_by_type(Py_TYPE(self));
            int rc = msg && st ? cio_log(st, "warning", msg, Py_False) : -1;
            Py_XDECREF(msg);
            if (rc < 0) {
                goto error;
            }
        }
        self->conn_lost++;
        goto done;
    }
    if (cio_write_queue_empty(&self->queue)) {
        written = write(self->fd, view.buf, (size_t)view.len);
        if (written < 0) {
            if (!cio_would_block(errno)) {
                PyErr_SetFromErrno(PyExc_OSError);
                self->conn_lost++;
                if (write_pipe_fatal(self) < 0) {
                    goto error;
                }
                goto done;
            }
            written = 0;
        }
        if (written == view.len) {
            goto done;
        }
        if (cio_loop_add_watcher(self->loop, self->fd, CIO_POLL_WRITE,
                                 self->write_ready, NULL, 0, NULL, NULL) < 0) {
            goto error;
        }
    }
    if (cio_write_queue_append(&self->queue, data, &view, written) < 0 ||
        cio_write_transport_maybe_pause(CIO_WRITE_TRANSPORT(self)) < 0) {
        goto error;
    }
done:
    res = Py_NewRef(Py_None);
error:
    PyBuffer_Release(&view);
    return res;
}

static PyObject *
write_pipe_connection_lost(WritePipeTransportObject *self, PyObject *exc)
{
    PyObject *res = call_connection_lost((PyObject *)self, &self->protocol,
                                          &self->pipe, exc);

    if (cio_write_transport_release_loop(CIO_WRITE_TRANSPORT(self)) < 0) {
        Py_CLEAR(res);
    }
    return res;
}

static PyObject *
write_pipe_write_ready(WritePipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    Py_ssize_t n;

    if (self->loop == NULL || cio_write_queue_empty(&self->queue)) {
        Py_RETURN_NONE;
    }
    n = cio_write_queue_writev(&self->queue, self->fd);
    if (n < 0) {
        if (cio_would_block((int)-n)) {
            Py_RETURN_NONE;
        }
        cio_write_queue_clear(&self->queue);
        self->conn_lost++;
        errno = (int)-n;
        PyErr_SetFromErrno(PyExc_OSError);
        if (cio_loop_remove_watcher(self->loop, self->fd,
                                    CIO_POLL_WRITE) < 0 ||
            write_pipe_fatal(self) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    cio_write_queue_consume(&self->queue, n);
    if (!cio_write_queue_empty(&self->queue)) {
        Py_RETURN_NONE;
    }
    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_WRITE) < 0 ||
        /* may write more */
        cio_write_transport_maybe_resume(CIO_WRITE_TRANSPORT(self)) < 0) {
        return NULL;
    }
    if (self->closing && self->loop != NULL) {
        if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0) {
            return NULL;
        }
        return write_pipe_connection_lost(self, Py_None);
    }
    Py_RETURN_NONE;
}

static int
write_pipe_write_eof_impl(WritePipeTransportObject *self)
{
    if (self->closing) {
        return 0;
    }
    self->closing = 1;
    if (!cio_write_queue_empty(&self->queue)) {
        return 0;
    }
    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0) {
        return -1;
    }
    return cio_schedule_connection_lost((PyObject *)self, self->loop,
                                        Py_None, NULL);
}

static PyObject *
write_pipe_write_eof(WritePipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (!self->closing && self->pipe == NULL) {
        PyErr_SetNone(PyExc_AssertionError);  /* stdlib: assert self._pipe */
        return NULL;
    }
    if (write_pipe_write_eof_impl(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
write_pipe_can_write_eof(WritePipeTransportObject *self,
                         PyObject *Py_UNUSED(ig))
{
    Py_RETURN_TRUE;
}

static PyObject *
write_pipe_close_method(WritePipeTransportObject *self,
                        PyObject *Py_UNUSED(ig))
{
    /* write_eof() is all that closing a write pipe needs. */
    if (self->pipe != NULL && !self->closing &&
        write_pipe_write_eof_impl(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
write_pipe_abort(WritePipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (self->loop != NULL && write_pipe_close(self, Py_None) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
write_pipe_is_closing(WritePipeTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
write_pipe_call_connection_lost(WritePipeTransportObject *self, PyObject *exc)
{
    return write_pipe_connection_lost(self, exc);
}

static PyObject *
write_pipe_set_protocol(WritePipeTransportObject *self, PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
}

static PyObject *
write_pipe_get_protocol(WritePipeTransportObject *self,
                        PyObject *Py_UNUSED(ig))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
write_pipe_get_extra_info(WritePipeTransportObject *self,
                          PyObject *const *args, Py_ssize_t nargs)
{
    return cio_extra_info_get(self->extra, args, nargs);
}

static PyObject *
write_pipe_repr(WritePipeTransportObject *self)
{
    return pipe_repr((PyObject *)self, self->loop, self->pipe, self->closing,
                     self->fd, CIO_POLL_WRITE, self->queue.size);
}

static void
write_pipe_finalize(WritePipeTransportObject *self)
{
    finalize_unclosed((PyObject *)self, &self->pipe);
}

static int
write_pipe_traverse(WritePipeTransportObject *self, visitproc visit,
                    void *arg)
{
    Py_VISIT(Py_TYPE(self));
    if (cio_write_transport_traverse(CIO_WRITE_TRANSPORT(self), visit,
                                     arg) != 0) {
        return -1;
    }
    Py_VISIT(self->pipe);
    Py_VISIT(self->extra);
    Py_VISIT(self->read_ready);
    Py_VISIT(self->write_ready);
    Py_VISIT(self->dict);
    return 0;
}

static int
write_pipe_clear(WritePipeTransportObject *self)
{
    cio_write_transport_clear(CIO_WRITE_TRANSPORT(self));
    Py_CLEAR(self->pipe);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->read_ready);
    Py_CLEAR(self->write_ready);
    Py_CLEAR(self->dict);
    return 0;
}

static void
write_pipe_dealloc(WritePipeTransportObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, &self->weakreflist)) {
        return;
    }
    write_pipe_clear(self);
    cio_write_queue_free(&self->queue);
    cio_dealloc_end((PyObject *)self);
}

static PyObject *
write_pipe_get_fileno(WritePipeTransportObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->fd);
}

static PyObject *
write_pipe_get_pipe(WritePipeTransportObject *self, void *Py_UNUSED(c))
{
    return get_pipe_attr(self->pipe);
}

static int
write_pipe_set_pipe(WritePipeTransportObject *self, PyObject *value,
                    void *Py_UNUSED(c))
{
    return set_pipe_attr(&self->pipe, value);
}

static PyMethodDef write_pipe_methods[] = {
    {"write", (PyCFunction)write_pipe_write, METH_O,
     "write($self, data, /)\n--\n\nWrite bytes; whatever the pipe does not "
     "take now is queued."},
    NOARGS("write_eof", write_pipe_write_eof),
    NOARGS("can_write_eof", write_pipe_can_write_eof),
    NOARGS("close", write_pipe_close_method),
    NOARGS("abort", write_pipe_abort),
    NOARGS("is_closing", write_pipe_is_closing),
    {"set_protocol", (PyCFunction)write_pipe_set_protocol, METH_O, NULL},
    NOARGS("get_protocol", write_pipe_get_protocol),
    {"get_extra_info",
     (PyCFunction)(void (*)(void))write_pipe_get_extra_info, METH_FASTCALL,
     NULL},
    CIO_WRITE_TRANSPORT_METHODS
    NOARGS("_read_ready", write_pipe_read_ready),
    NOARGS("_write_ready", write_pipe_write_ready),
    {"_call_connection_lost", (PyCFunction)write_pipe_call_connection_lost,
     METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef write_pipe_getset[] = {
    {"_fileno", (getter)write_pipe_get_fileno, NULL, NULL, NULL},
    {"_pipe", (getter)write_pipe_get_pipe, (setter)write_pipe_set_pipe,
     NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef write_pipe_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(WritePipeTransportObject, dict),
     READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(WritePipeTransportObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot write_pipe_slots[] = {
    {Py_tp_doc, "The write end of a pipe, FIFO, pty or character device."},
    {Py_tp_repr, write_pipe_repr},
    {Py_tp_methods, write_pipe_methods},
    {Py_tp_getset, write_pipe_getset},
    {Py_tp_members, write_pipe_members},
    {Py_tp_traverse, write_pipe_traverse},
    {Py_tp_clear, write_pipe_clear},
    {Py_tp_finalize, write_pipe_finalize},
    {Py_tp_dealloc, write_pipe_dealloc},
    {0, NULL},
};

PyType_Spec cio_write_pipe_transport_spec = {
    .name = "casyncio._casyncio.WritePipeTransport",
    .basicsize = sizeof(WritePipeTransportObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = write_pipe_slots,
};

PyObject *
cio_write_pipe_transport_new(LoopObject *loop, PyObject *pipe,
                             PyObject *protocol, PyObject *waiter,
                             PyObject *extra)
{
    PyTypeObject *type = loop->state->write_pipe_transport_type;
    WritePipeTransportObject *self;
    cio_soon_batch_t batch;
    mode_t mode;
    int rc;

    self = (WritePipeTransportObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fd = -1;
    if (setup_pipe((PyObject *)self, pipe, extra, &self->extra, &self->pipe,
                   &self->fd) < 0 ||
        check_pipe_fd(self->fd,
                      "Pipe transport is only for pipes, sockets and "
                      "character devices", &mode) < 0 ||
        cio_write_transport_init(CIO_WRITE_TRANSPORT(self), loop) < 0) {
        Py_CLEAR(self->pipe);  /* stdlib leaves the pipe open on error */
        Py_DECREF(self);
        return NULL;
    }
    self->protocol = Py_NewRef(protocol);
    self->read_ready = PyObject_GetAttrString((PyObject *)self, "_read_ready");
    self->write_ready = PyObject_GetAttrString((PyObject *)self,
                                               "_write_ready");
    cio_soon_batch_init(&batch, loop, NULL);
    rc = self->read_ready && self->write_ready &&
                 schedule_connection_made(&batch, (PyObject *)self,
                                          protocol) == 0
             ? 0 : -1;
    /* Only pipes and sockets report the reader going away. */
    if (rc == 0 && (S_ISFIFO(mode) || S_ISSOCK(mode))) {
        PyObject *add_reader = PyObject_GetAttrString((PyObject *)loop,
                                                      "_add_reader");
        PyObject *args[2] = {NULL, self->read_ready};

        args[0] = PyLong_FromLong(self->fd);
        rc = args[0] ? cio_soon_batch_add(&batch, add_reader, args, 2) : -1;
        Py_XDECREF(add_reader);
        Py_XDECREF(args[0]);
    }
    if (rc == 0) {
        rc = schedule_waiter(&batch, waiter);
    }
    if (cio_soon_batch_end(&batch, rc) < 0) {
        Py_CLEAR(self->read_ready);  /* a cycle: the pipe closes now */
        Py_CLEAR(self->write_ready);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* ---- the loop's factories ----------------------------------------------- */

typedef PyObject *(*pipe_factory_t)(LoopObject *, PyObject *, PyObject *,
                                    PyObject *, PyObject *);

static PyObject *
make_pipe_transport(LoopObject *self, PyObject *args, PyObject *kwargs,
                    const char *format, pipe_factory_t factory)
{
    static char *kwlist[] = {"pipe", "protocol", "waiter", "extra", NULL};
    PyObject *pipe, *protocol, *waiter = Py_None, *extra = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, format, kwlist, &pipe,
                                     &protocol, &waiter, &extra)) {
        return NULL;
    }
    return factory(self, pipe, protocol, waiter, extra);
}

/* _make_read_pipe_transport(pipe, protocol, waiter=None, extra=None) */
static PyObject *
loop_make_read_pipe_transport(LoopObject *self, PyObject *args,
                              PyObject *kwargs)
{
    return make_pipe_transport(self, args, kwargs,
                               "OO|OO:_make_read_pipe_transport",
                               cio_read_pipe_transport_new);
}

static PyObject *
loop_make_write_pipe_transport(LoopObject *self, PyObject *args,
                               PyObject *kwargs)
{
    return make_pipe_transport(self, args, kwargs,
                               "OO|OO:_make_write_pipe_transport",
                               cio_write_pipe_transport_new);
}

/* ---- connect_read_pipe, connect_write_pipe ---------------------------- */

/* vars of their coroutine (0 and 1 as cio_loop_call_coro_new): */
enum { PIPE_ARG_FACTORY, PIPE_ARG_PIPE, PIPE_ARG_COUNT };
enum { PIPE_VAR_TRANSPORT = 2, PIPE_VAR_PROTOCOL };

#define PIPE_LOOP(coro) ((LoopObject *)(coro)->vars[0])
#define PIPE_ARG(coro, i) PyTuple_GET_ITEM((coro)->vars[1], (i))

/* The protocol, the transport the loop's factory method (by name, as
 * stdlib calls it) makes, and the wait for its waiter. */
static cio_step_t
pipe_connect_begin(CioStepCoroObject *coro, const char *factory_method,
                   PyObject **out)
{
    LoopObject *loop = PIPE_LOOP(coro);
    PyObject *waiter;

    coro->vars[PIPE_VAR_PROTOCOL] = PyObject_CallNoArgs(
        PIPE_ARG(coro, PIPE_ARG_FACTORY));
    waiter = coro->vars[PIPE_VAR_PROTOCOL] ? cio_loop_create_future(loop)
                                           : NULL;
    if (waiter == NULL) {
        return CIO_STEP_ERROR;
    }
    coro->vars[PIPE_VAR_TRANSPORT] = PyObject_CallMethod(
        (PyObject *)loop, factory_method, "OOO",
        PIPE_ARG(coro, PIPE_ARG_PIPE), coro->vars[PIPE_VAR_PROTOCOL],
        waiter);
    if (coro->vars[PIPE_VAR_TRANSPORT] == NULL) {
        Py_DECREF(waiter);
        return CIO_STEP_ERROR;
    }
    coro->state = 1;
    *out = waiter;
    return CIO_STEP_AWAIT;
}

/* Connected: the debug log, then (transport, protocol). */
static cio_step_t
pipe_connected(CioStepCoroObject *coro, const char *log_format,
               PyObject **out)
{
    LoopObject *loop = PIPE_LOOP(coro);

    if (loop->debug) {
        PyObject *fd = PyObject_CallMethod(PIPE_ARG(coro, PIPE_ARG_PIPE),
                                           "fileno", NULL);
        PyObject *res = fd ? PyObject_CallMethod(
                                 loop->state->logger, "debug", "sOOO",
                                 log_format, fd,
                                 coro->vars[PIPE_VAR_TRANSPORT],
                                 coro->vars[PIPE_VAR_PROTOCOL])
                           : NULL;
        Py_XDECREF(fd);
        Py_XDECREF(res);
        if (res == NULL) {
            return CIO_STEP_ERROR;
        }
    }
    *out = PyTuple_Pack(2, coro->vars[PIPE_VAR_TRANSPORT],
                        coro->vars[PIPE_VAR_PROTOCOL]);
    return *out ? CIO_STEP_RETURN : CIO_STEP_ERROR;
}

static cio_step_t
pipe_connect_step(CioStepCoroObject *coro, PyObject *value, PyObject **out,
                  const char *factory_method, const char *log_format)
{
    if (coro->state == 0) {
        return pipe_connect_begin(coro, factory_method, out);
    }
    if (value == NULL) {  /* stdlib's bare except: closed, raised */
        cio_call_while_raising(coro->vars[PIPE_VAR_TRANSPORT], "close");
        return CIO_STEP_ERROR;
    }
    return pipe_connected(coro, log_format, out);
}

static cio_step_t
read_pipe_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    return pipe_connect_step(coro, value, out, "_make_read_pipe_transport",
                             "Read pipe %r connected: (%r, %r)");
}

static cio_step_t
write_pipe_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    return pipe_connect_step(coro, value, out, "_make_write_pipe_transport",
                             "Write pipe %r connected: (%r, %r)");
}

static PyObject *
pipe_connect(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
             const char *name, const char *qualname, cio_step_fn step)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 2 positional arguments "
                     "but %zd were given", name, nargs);
        return NULL;
    }
    return (PyObject *)cio_loop_call_coro_new(self, qualname, step, args,
                                              PIPE_ARG_COUNT, NULL);
}

/* connect_read_pipe(protocol_factory, pipe) */
static PyObject *
loop_connect_read_pipe(LoopObject *self, PyObject *const *args,
                       Py_ssize_t nargs)
{
    return pipe_connect(self, args, nargs, "connect_read_pipe",
                        "Loop.connect_read_pipe", read_pipe_step);
}

/* connect_write_pipe(protocol_factory, pipe) */
static PyObject *
loop_connect_write_pipe(LoopObject *self, PyObject *const *args,
                        Py_ssize_t nargs)
{
    return pipe_connect(self, args, nargs, "connect_write_pipe",
                        "Loop.connect_write_pipe", write_pipe_step);
}

PyMethodDef cio_loop_pipe_methods[] = {
    {"connect_read_pipe", (PyCFunction)(void (*)(void))loop_connect_read_pipe,
     METH_FASTCALL,
     "connect_read_pipe($self, protocol_factory, pipe, /)\n--\n\n"
     "Coroutine: read from pipe; return (transport, protocol)."},
    {"connect_write_pipe",
     (PyCFunction)(void (*)(void))loop_connect_write_pipe, METH_FASTCALL,
     "connect_write_pipe($self, protocol_factory, pipe, /)\n--\n\n"
     "Coroutine: write to pipe; return (transport, protocol)."},
    {"_make_read_pipe_transport",
     (PyCFunction)(void (*)(void))loop_make_read_pipe_transport,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_make_write_pipe_transport",
     (PyCFunction)(void (*)(void))loop_make_write_pipe_transport,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

int
cio_transport_check_base(PyTypeObject *base)
{
    if (base->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) +
                                           READ_TRANSPORT_SLOTS *
                                               sizeof(PyObject *))) {
        PyErr_Format(PyExc_ImportError, "%s has an unexpected layout",
                     base->tp_name);
        return -1;
    }
    return 0;
}
