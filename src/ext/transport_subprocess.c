/* SubprocessTransport: subprocess_exec() and subprocess_shell().
 *
 * The semantics are base_subprocess.BaseSubprocessTransport's with
 * unix_events' _start (the callbacks and their order, repr, the log
 * messages, close() killing a running child). The child is spawned by
 * subprocess.Popen, so every argument and every spawn error is Popen's;
 * its exit comes from the loop's own child watching (loop_process.c) and
 * its pipes are the C pipe transports.
 *
 * stdlib connects the pipes in a task, one awaited connect_*_pipe() after
 * another, and queues whatever the child reports meanwhile. Here the pipes
 * are connected before _spawn_subprocess returns, and connection_made and
 * the caller's waiter are scheduled right behind them: nothing from the
 * child can reach the protocol before connection_made, so no queue is
 * needed.
 *
 * Each pipe transport's protocol is a SubprocessPipeProtocol that passes
 * what its pipe reports to the SubprocessTransport, which schedules the
 * protocol's pipe_data_received and pipe_connection_lost with call_soon,
 * as stdlib does. */
#include "transport_write.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <structmember.h>

#define N_STDIO 3

typedef struct SubprocessTransportObject SubprocessTransportObject;

typedef struct {
    PyObject_HEAD
    SubprocessTransportObject *proc;  /* NULL once the pipe is lost */
    PyObject *pipe;                   /* the pipe transport */
    HandleObject *lost_spare;         /* see cio_loop_call_soon_or_spare */
    int fd;                           /* 0, 1 or 2 */
    char disconnected;
} PipeProtocolObject;

struct SubprocessTransportObject {
    PyObject_HEAD
    PyObject *base_slots[1];     /* BaseTransport's _extra */
    LoopObject *loop;
    PyObject *protocol;          /* NULL once the connection is lost */
    PyObject *proc;              /* the subprocess.Popen; NULL likewise */
    PyObject *exit_waiters;      /* futures of _wait(); NULL likewise */
    PipeProtocolObject *pipes[N_STDIO];
    HandleObject *finish_spare;  /* _call_connection_lost's; see
                                    cio_loop_call_soon_or_spare */
    PyObject *dict;
    PyObject *weakreflist;
    long pid;                    /* -1 until spawned */
    int returncode;              /* meaningful once exited */
    char has_pipe[N_STDIO];      /* stdin/stdout/stderr was PIPE */
    char exited;
    char closed;
    char finished;               /* connection_lost is scheduled */
};

static const char *const stdio_names[N_STDIO] = {"stdin", "stdout",
                                                 "stderr"};

/* ---- what the pipes report ---------------------------------------------- */

/* stdlib's _call: protocol.<name>(*args) on the next iteration. */
static int
call_protocol_soon(SubprocessTransportObject *self, const char *name,
                   PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *method;
    int rc;

    if (self->protocol == NULL) {
        return 0;
    }
    method = PyObject_GetAttrString(self->protocol, name);
    if (method == NULL) {
        return -1;
    }
    rc = cio_loop_call_soon(self->loop, method, args, nargs);
    Py_DECREF(method);
    return rc;
}

/* Once the child has exited and every pipe is gone, connection_lost. */
static int
try_finish(SubprocessTransportObject *self)
{
    PyObject *lost, *args[2] = {(PyObject *)self, Py_None};
    int rc;

    if (self->finished || !self->exited) {
        return 0;
    }
    for (int fd = 0; fd < N_STDIO; fd++) {
        if (self->has_pipe[fd] &&
            (self->pipes[fd] == NULL || !self->pipes[fd]->disconnected)) {
            return 0;
        }
    }
    self->finished = 1;
    lost = PyObject_GetAttrString((PyObject *)self, "_call_connection_lost");
    rc = cio_loop_call_soon_or_spare(self->loop, lost, args + 1, 1,
                                     &self->finish_spare, args);
    Py_XDECREF(lost);
    Py_CLEAR(self->finish_spare);
    return rc;
}

static int
pipe_data_received(SubprocessTransportObject *self, int fd, PyObject *data)
{
    PyObject *args[2] = {PyLong_FromLong(fd), data};
    int rc = call_protocol_soon(self, "pipe_data_received", args, 2);

    Py_DECREF(args[0]);
    return rc;
}

/* The protocol's pipe_connection_lost is what a reader of the pipe waits
 * for (a StreamReader's EOF), so it has a spare. */
static int
pipe_connection_lost(SubprocessTransportObject *self, PipeProtocolObject *pipe,
                     PyObject *exc)
{
    /* fd is 0, 1 or 2: a cached small int, which allocates nothing. */
    PyObject *args[2] = {PyLong_FromLong(pipe->fd), exc}, *method;
    int rc = 0;

    if (self->protocol != NULL) {
        method = PyObject_GetAttrString(self->protocol,
                                        "pipe_connection_lost");
        rc = cio_loop_call_soon_or_spare(self->loop, method, args, 2,
                                         &pipe->lost_spare, args);
        Py_XDECREF(method);
    }
    Py_DECREF(args[0]);
    Py_CLEAR(pipe->lost_spare);
    return try_finish(self) < 0 ? -1 : rc;
}

/* ---- SubprocessPipeProtocol --------------------------------------------- */

static PyObject *
pipe_proto_connection_made(PipeProtocolObject *self, PyObject *transport)
{
    Py_XSETREF(self->pipe, Py_NewRef(transport));
    Py_RETURN_NONE;
}

static PyObject *
pipe_proto_connection_lost(PipeProtocolObject *self, PyObject *exc)
{
    SubprocessTransportObject *proc = self->proc;
    int rc = 0;

    self->disconnected = 1;
    if (proc != NULL) {
        self->proc = NULL;
        rc = pipe_connection_lost(proc, self, exc);
        Py_DECREF(proc);
    }
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
pipe_proto_data_received(PipeProtocolObject *self, PyObject *data)
{
    if (self->proc != NULL && pipe_data_received(self->proc, self->fd,
                                                 data) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Flow control of the stdin pipe is the subprocess protocol's. */
static PyObject *
forward_to_protocol(PipeProtocolObject *self, const char *name)
{
    if (self->proc == NULL || self->proc->protocol == NULL) {
        Py_RETURN_NONE;
    }
    return PyObject_CallMethod(self->proc->protocol, name, NULL);
}

static PyObject *
pipe_proto_pause_writing(PipeProtocolObject *self, PyObject *Py_UNUSED(ig))
{
    return forward_to_protocol(self, "pause_writing");
}

static PyObject *
pipe_proto_resume_writing(PipeProtocolObject *self, PyObject *Py_UNUSED(ig))
{
    return forward_to_protocol(self, "resume_writing");
}

static PyObject *
pipe_proto_repr(PipeProtocolObject *self)
{
    return PyUnicode_FromFormat("<SubprocessPipeProtocol fd=%d pipe=%R>",
                                self->fd, self->pipe ? self->pipe : Py_None);
}

static int
pipe_proto_traverse(PipeProtocolObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->proc);
    Py_VISIT(self->pipe);
    Py_VISIT(self->lost_spare);
    return 0;
}

static int
pipe_proto_clear(PipeProtocolObject *self)
{
    Py_CLEAR(self->proc);
    Py_CLEAR(self->pipe);
    Py_CLEAR(self->lost_spare);
    return 0;
}

static void
pipe_proto_dealloc(PipeProtocolObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    pipe_proto_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef pipe_proto_methods[] = {
    {"connection_made", (PyCFunction)pipe_proto_connection_made, METH_O,
     NULL},
    {"connection_lost", (PyCFunction)pipe_proto_connection_lost, METH_O,
     NULL},
    {"data_received", (PyCFunction)pipe_proto_data_received, METH_O, NULL},
    {"pause_writing", (PyCFunction)pipe_proto_pause_writing, METH_NOARGS,
     NULL},
    {"resume_writing", (PyCFunction)pipe_proto_resume_writing, METH_NOARGS,
     NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot pipe_proto_slots[] = {
    {Py_tp_doc, "The protocol of one pipe of a SubprocessTransport."},
    {Py_tp_repr, pipe_proto_repr},
    {Py_tp_methods, pipe_proto_methods},
    {Py_tp_traverse, pipe_proto_traverse},
    {Py_tp_clear, pipe_proto_clear},
    {Py_tp_dealloc, pipe_proto_dealloc},
    {0, NULL},
};

PyType_Spec cio_subprocess_pipe_protocol_spec = {
    .name = "casyncio._casyncio.SubprocessPipeProtocol",
    .basicsize = sizeof(PipeProtocolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = pipe_proto_slots,
};

/* ---- SubprocessTransport ------------------------------------------------ */

static int
check_proc(SubprocessTransportObject *self)
{
    if (self->proc == NULL) {
        PyErr_SetNone(PyExc_ProcessLookupError);
        return -1;
    }
    return 0;
}

#if PY_VERSION_HEX < 0x030C0000
/* 3.11 signals through the Popen object. */
static PyObject *
signal_through_popen(SubprocessTransportObject *self, const char *method,
                     PyObject *sig)
{
    if (check_proc(self) < 0) {
        return NULL;
    }
    return sig ? PyObject_CallMethod(self->proc, method, "(O)", sig)
               : PyObject_CallMethod(self->proc, method, NULL);
}

static PyObject *
sub_send_signal(SubprocessTransportObject *self, PyObject *sig)
{
    return signal_through_popen(self, "send_signal", sig);
}

static PyObject *
sub_terminate(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return signal_through_popen(self, "terminate", NULL);
}

static PyObject *
sub_kill(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return signal_through_popen(self, "kill", NULL);
}
#else
/* 3.12+: os.kill(pid, sig), a child that is already gone ignored. */
static PyObject *
send_signal_number(SubprocessTransportObject *self, long sig)
{
    if (check_proc(self) < 0) {
        return NULL;
    }
    if (sig > INT_MAX || sig < INT_MIN) {
        PyErr_SetString(PyExc_OverflowError,
                        "signal number is out of range");
        return NULL;
    }
    if (kill((pid_t)self->pid, (int)sig) < 0 && errno != ESRCH) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
sub_send_signal(SubprocessTransportObject *self, PyObject *sig)
{
    long n = PyLong_AsLong(sig);

    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return send_signal_number(self, n);
}

static PyObject *
sub_terminate(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return send_signal_number(self, SIGTERM);
}

static PyObject *
sub_kill(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return send_signal_number(self, SIGKILL);
}
#endif

/* proc.kill() for close(); a child already gone (or setuid, from 3.12)
 * is left alone. */
static int
kill_for_close(SubprocessTransportObject *self)
{
    PyObject *r = PyObject_CallMethod(self->proc, "kill", NULL);

    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_ProcessLookupError)
#if PY_VERSION_HEX >= 0x030C0000
        || PyErr_ExceptionMatches(PyExc_PermissionError)
#endif
    ) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static int
log_as(SubprocessTransportObject *self, const char *level, const char *fmt,
       PyObject *arg)
{
    PyObject *r;

    if (!self->loop->debug) {
        return 0;
    }
    r = arg ? PyObject_CallMethod(self->loop->state->logger, level, "sOO",
                                  fmt, self, arg)
            : PyObject_CallMethod(self->loop->state->logger, level, "sO",
                                  fmt, self);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int
subprocess_close(SubprocessTransportObject *self)
{
    PyObject *r;

    if (self->closed) {
        return 0;
    }
    self->closed = 1;
    for (int fd = 0; fd < N_STDIO; fd++) {
        if (self->pipes[fd] != NULL && self->pipes[fd]->pipe != NULL) {
            r = PyObject_CallMethod(self->pipes[fd]->pipe, "close", NULL);
            if (r == NULL) {
                return -1;
            }
            Py_DECREF(r);
        }
    }
    /* Not notified of the exit yet: has the child finished anyway? */
    if (self->proc == NULL || self->exited) {
        return 0;
    }
    r = PyObject_CallMethod(self->proc, "poll", NULL);
    if (r == NULL) {
        return -1;
    }
    if (r != Py_None) {
        Py_DECREF(r);
        return 0;
    }
    Py_DECREF(r);
    if (log_as(self, "warning", "Close running child process: kill %r",
               NULL) < 0) {
        return -1;
    }
    return kill_for_close(self);
}

static PyObject *
sub_close(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return subprocess_close(self) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
sub_is_closing(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
sub_get_pid(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return self->pid < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(self->pid);
}

static PyObject *
sub_get_returncode(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return self->exited ? PyLong_FromLong(self->returncode)
                        : Py_NewRef(Py_None);
}

static PyObject *
sub_get_pipe_transport(SubprocessTransportObject *self, PyObject *fd_obj)
{
    int overflow;
    long fd = PyLong_Check(fd_obj)
                  ? PyLong_AsLongAndOverflow(fd_obj, &overflow) : -1;

    if (fd < 0 || fd >= N_STDIO || !self->has_pipe[fd] ||
        self->pipes[fd] == NULL || self->pipes[fd]->pipe == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->pipes[fd]->pipe);
}

static PyObject *
sub_set_protocol(SubprocessTransportObject *self, PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
}

static PyObject *
sub_get_protocol(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

/* _wait(): a future of the return code, set once connection_lost ran
 * (3.14: once the process exited). */
static PyObject *
sub_wait(SubprocessTransportObject *self, PyObject *Py_UNUSED(ig))
{
    PyObject *fut = cio_loop_create_future(self->loop), *r;

    if (fut == NULL) {
        return NULL;
    }
    if (self->exited) {
        PyObject *code = PyLong_FromLong(self->returncode);

        r = code ? PyObject_CallMethod(fut, "set_result", "(O)", code) : NULL;
        Py_XDECREF(code);
        Py_XDECREF(r);
    }
    else {
        r = fut;
        if (self->exit_waiters == NULL ||
            PyList_Append(self->exit_waiters, fut) < 0) {
            r = NULL;
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_RuntimeError, "transport is finished");
            }
        }
    }
    if (r == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    return fut;
}

/* Sets the result of each _wait() future still pending; then _wait()
 * answers at once. */
static int
wake_exit_waiters(SubprocessTransportObject *self)
{
    PyObject *waiters = self->exit_waiters, *code;
    int rc = 0;

    self->exit_waiters = NULL;
    if (waiters == NULL) {
        return 0;
    }
    code = PyLong_FromLong(self->returncode);
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(waiters); i++) {
        PyObject *waiter = PyList_GET_ITEM(waiters, i);
        PyObject *cancelled = PyObject_CallMethod(waiter, "cancelled", NULL);
        PyObject *r = NULL;

        if (cancelled == Py_False) {
            r = PyObject_CallMethod(waiter, "set_result", "(O)", code);
        }
        else if (cancelled == Py_True) {
            r = Py_NewRef(Py_None);
        }
        rc = r ? 0 : -1;
        Py_XDECREF(r);
        Py_XDECREF(cancelled);
    }
    Py_XDECREF(code);
    Py_DECREF(waiters);
    return rc;
}

/* The loop's child watching reports the exit (after a loop iteration, as
 * stdlib's _child_watcher_callback schedules it). */
static PyObject *
sub_process_exited(SubprocessTransportObject *self, PyObject *returncode)
{
    PyObject *popen_code;
    int rc;
    long code = PyLong_AsLong(returncode);

    if (code == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (self->exited || self->proc == NULL) {
        Py_RETURN_NONE;
    }
    if (log_as(self, "info", "%r exited with return code %r",
               returncode) < 0) {
        return NULL;
    }
    self->exited = 1;
    self->returncode = (int)code;
    /* Popen's own record, read by its __del__ and by proc.poll(). */
    popen_code = PyObject_GetAttrString(self->proc, "returncode");
    if (popen_code == NULL) {
        return NULL;
    }
    rc = popen_code == Py_None
             ? PyObject_SetAttrString(self->proc, "returncode", returncode)
             : 0;
    Py_DECREF(popen_code);
    if (rc < 0) {
        return NULL;
    }
    if (call_protocol_soon(self, "process_exited", NULL, 0) < 0) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 wakes wait() as soon as the process exits, not once its pipes
     * have closed too (gh-119710). */
    if (wake_exit_waiters(self) < 0) {
        return NULL;
    }
#endif
    if (try_finish(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* connection_lost(exc), then (as a finally) wake _wait() and let go. */
static PyObject *
sub_call_connection_lost(SubprocessTransportObject *self, PyObject *exc)
{
    PyObject *res = NULL, *raised = NULL;

    if (self->protocol != NULL) {
        res = PyObject_CallMethod(self->protocol, "connection_lost", "(O)",
                                  exc);
        if (res == NULL) {
            raised = cio_fetch_exception();
        }
        Py_XDECREF(res);
    }
    if (wake_exit_waiters(self) < 0) {
        if (raised == NULL) {
            raised = cio_fetch_exception();
        }
        PyErr_Clear();
    }
    Py_CLEAR(self->proc);
    Py_CLEAR(self->protocol);
    if (raised != NULL) {
        cio_restore_exception(raised);
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
append_str(PyObject *parts, PyObject *s)
{
    int rc = s ? PyList_Append(parts, s) : -1;

    Py_XDECREF(s);
    return rc;
}

static PyObject *
sub_repr(SubprocessTransportObject *self)
{
    PyObject *parts = PyList_New(0), *sep, *joined, *r;
    int rc;

    if (parts == NULL) {
        return NULL;
    }
    rc = append_str(parts, PyType_GetName(Py_TYPE(self)));
    if (rc == 0 && self->closed) {
        rc = append_str(parts, PyUnicode_FromString("closed"));
    }
    if (rc == 0 && self->pid >= 0) {
        rc = append_str(parts, PyUnicode_FromFormat("pid=%ld", self->pid));
    }
    if (rc == 0) {
        rc = append_str(parts,
                        self->exited ? PyUnicode_FromFormat("returncode=%d",
                                                            self->returncode)
                        : PyUnicode_FromString(self->pid >= 0
                                                   ? "running"
                                                   : "not started"));
    }
    for (int fd = 0; rc == 0 && fd < N_STDIO; fd++) {
        if (self->pipes[fd] != NULL && self->pipes[fd]->pipe != NULL) {
            rc = append_str(parts, PyUnicode_FromFormat(
                                       "%s=%S", stdio_names[fd],
                                       self->pipes[fd]->pipe));
        }
    }
    sep = rc == 0 ? PyUnicode_FromString(" ") : NULL;
    joined = sep ? PyUnicode_Join(sep, parts) : NULL;
    r = joined ? PyUnicode_FromFormat("<%U>", joined) : NULL;
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    Py_DECREF(parts);
    return r;
}

/* __del__: an unclosed transport warns, then closes. */
static void
sub_finalize(SubprocessTransportObject *self)
{
    PyObject *exc;

    if (self->closed) {
        return;
    }
    exc = cio_fetch_exception();
    if (PyErr_ResourceWarning((PyObject *)self, 1, "unclosed transport %R",
                              self) < 0 ||
        subprocess_close(self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    cio_restore_exception(exc);
}

static int
sub_traverse(SubprocessTransportObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->base_slots[0]);
    Py_VISIT(self->loop);
    Py_VISIT(self->protocol);
    Py_VISIT(self->proc);
    Py_VISIT(self->exit_waiters);
    for (int fd = 0; fd < N_STDIO; fd++) {
        Py_VISIT(self->pipes[fd]);
    }
    Py_VISIT(self->finish_spare);
    Py_VISIT(self->dict);
    return 0;
}

static int
sub_clear(SubprocessTransportObject *self)
{
    Py_CLEAR(self->base_slots[0]);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->proc);
    Py_CLEAR(self->exit_waiters);
    for (int fd = 0; fd < N_STDIO; fd++) {
        Py_CLEAR(self->pipes[fd]);
    }
    Py_CLEAR(self->finish_spare);
    Py_CLEAR(self->dict);
    return 0;
}

static void
sub_dealloc(SubprocessTransportObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, &self->weakreflist)) {
        return;
    }
    sub_clear(self);
    cio_dealloc_end((PyObject *)self);
}

#define NOARGS(name, fn) {name, (PyCFunction)(fn), METH_NOARGS, NULL}

static PyMethodDef sub_methods[] = {
    NOARGS("get_pid", sub_get_pid),
    NOARGS("get_returncode", sub_get_returncode),
    {"get_pipe_transport", (PyCFunction)sub_get_pipe_transport, METH_O,
     NULL},
    {"send_signal", (PyCFunction)sub_send_signal, METH_O, NULL},
    NOARGS("terminate", sub_terminate),
    NOARGS("kill", sub_kill),
    NOARGS("close", sub_close),
    NOARGS("is_closing", sub_is_closing),
    {"set_protocol", (PyCFunction)sub_set_protocol, METH_O, NULL},
    NOARGS("get_protocol", sub_get_protocol),
    NOARGS("_wait", sub_wait),
    {"_process_exited", (PyCFunction)sub_process_exited, METH_O, NULL},
    {"_call_connection_lost", (PyCFunction)sub_call_connection_lost, METH_O,
     NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef sub_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(SubprocessTransportObject, dict),
     READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(SubprocessTransportObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot sub_slots[] = {
    {Py_tp_doc, "A child process and the transports of its pipes."},
    {Py_tp_repr, sub_repr},
    {Py_tp_methods, sub_methods},
    {Py_tp_members, sub_members},
    {Py_tp_traverse, sub_traverse},
    {Py_tp_clear, sub_clear},
    {Py_tp_finalize, sub_finalize},
    {Py_tp_dealloc, sub_dealloc},
    {0, NULL},
};

PyType_Spec cio_subprocess_transport_spec = {
    .name = "casyncio._casyncio.SubprocessTransport",
    .basicsize = sizeof(SubprocessTransportObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = sub_slots,
};

/* ---- spawning ----------------------------------------------------------- */

/* subprocess.Popen(args, shell=..., stdin=..., stdout=..., stderr=...,
 * universal_newlines=False, bufsize=..., **popen_kwargs). Popen is looked
 * up on each call, so a patched subprocess.Popen is used. */
static PyObject *
spawn_with_popen(cio_state *st, PyObject *cmd, PyObject *shell,
                 PyObject *const *stdio, PyObject *bufsize,
                 PyObject *popen_kwargs)
{
    PyObject *popen_type, *kwargs = NULL, *proc = NULL;
    int rc = -1;

    popen_type = PyObject_GetAttrString(st->subprocess_module, "Popen");
    if (popen_type != NULL) {
        kwargs = popen_kwargs ? PyDict_Copy(popen_kwargs) : PyDict_New();
    }
    if (popen_type != NULL && kwargs != NULL) {
        rc = PyDict_SetItemString(kwargs, "shell", shell);
        for (int fd = 0; rc == 0 && fd < N_STDIO; fd++) {
            rc = PyDict_SetItemString(kwargs, stdio_names[fd], stdio[fd]);
        }
        if (rc == 0) {
            rc = PyDict_SetItemString(kwargs, "universal_newlines", Py_False);
        }
        if (rc == 0) {
            rc = PyDict_SetItemString(kwargs, "bufsize", bufsize);
        }
    }
    if (rc == 0) {
        PyObject *args = PyTuple_Pack(1, cmd);

        proc = args ? PyObject_Call(popen_type, args, kwargs) : NULL;
        Py_XDECREF(args);
    }
    Py_XDECREF(popen_type);
    Py_XDECREF(kwargs);
    return proc;
}

/* stdlib's debug line: the program is args itself for a string. */
static int
log_created(SubprocessTransportObject *self, PyObject *cmd)
{
    PyObject *program, *pid, *r;

    if (!self->loop->debug) {
        return 0;
    }
    program = PyUnicode_Check(cmd) || PyBytes_Check(cmd)
                  ? Py_NewRef(cmd) : PySequence_GetItem(cmd, 0);
    pid = PyLong_FromLong(self->pid);
    r = program && pid
            ? PyObject_CallMethod(self->loop->state->logger, "debug", "sOO",
                                  "process %r created: pid %s", program, pid)
            : NULL;
    Py_XDECREF(program);
    Py_XDECREF(pid);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static PipeProtocolObject *
pipe_proto_new(SubprocessTransportObject *proc, int fd)
{
    PyTypeObject *type = proc->loop->state->subprocess_pipe_protocol_type;
    PipeProtocolObject *self = (PipeProtocolObject *)type->tp_alloc(type, 0);
    PyObject *lost;

    if (self == NULL) {
        return NULL;
    }
    self->proc = (SubprocessTransportObject *)Py_NewRef(proc);
    self->fd = fd;
    /* A protocol without the method gets stdlib's AttributeError when the
     * pipe is lost, and no spare. */
    lost = PyObject_GetAttrString(proc->protocol, "pipe_connection_lost");
    if (lost == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            Py_DECREF(self);
            return NULL;
        }
        PyErr_Clear();
        return self;
    }
    self->lost_spare = cio_handle_new_spare(proc->loop, lost, 2);
    Py_DECREF(lost);
    if (self->lost_spare == NULL) {
        Py_CLEAR(self);
    }
    return self;
}

/* Makes a pipe transport for each of proc.stdin, stdout and stderr. */
static int
connect_pipes(SubprocessTransportObject *self)
{
    for (int fd = 0; fd < N_STDIO; fd++) {
        PyObject *pipe = PyObject_GetAttrString(self->proc, stdio_names[fd]);
        PipeProtocolObject *proto;

        if (pipe == NULL) {
            return -1;
        }
        if (pipe == Py_None) {
            Py_DECREF(pipe);
            continue;
        }
        proto = pipe_proto_new(self, fd);
        if (proto != NULL) {
            proto->pipe = fd == 0
                ? cio_write_pipe_transport_new(self->loop, pipe,
                                               (PyObject *)proto, Py_None,
                                               Py_None)
                : cio_read_pipe_transport_new(self->loop, pipe,
                                              (PyObject *)proto, Py_None,
                                              Py_None);
        }
        Py_DECREF(pipe);
        if (proto == NULL || proto->pipe == NULL) {
            Py_XDECREF(proto);
            return -1;
        }
        self->pipes[fd] = proto;
    }
    return 0;
}

/* The exit reaches _process_exited through stdlib's
 * _child_watcher_callback, which skips a loop iteration. */
static int
watch_child(SubprocessTransportObject *self)
{
    PyObject *exited = PyObject_GetAttrString((PyObject *)self->loop,
                                              "_child_watcher_callback");
    PyObject *args[1] = {(PyObject *)self};
    int rc;

    if (exited == NULL) {
        return -1;
    }
    rc = cio_loop_watch_child(self->loop, self->pid, exited, args, 1);
    Py_DECREF(exited);
    return rc;
}

/* After the spawn: connect the pipes, make the spare of
 * _call_connection_lost, then schedule connection_made and the waiter's
 * result. */
static int
start_child(SubprocessTransportObject *self, PyObject *waiter)
{
    PyObject *made, *lost, *args[2] = {waiter, Py_None};
    cio_soon_batch_t batch;
    int rc;

    if (connect_pipes(self) < 0) {
        return -1;
    }
    lost = PyObject_GetAttrString((PyObject *)Py_TYPE(self),
                                  "_call_connection_lost");
    if (lost == NULL) {
        return -1;
    }
    self->finish_spare = cio_handle_new_spare(self->loop, lost, 2);
    Py_DECREF(lost);
    if (self->finish_spare == NULL) {
        return -1;
    }
    cio_soon_batch_init(&batch, self->loop, NULL);
    made = PyObject_GetAttrString(self->protocol, "connection_made");
    rc = cio_soon_batch_add(&batch, made, (PyObject **)&self, 1);
    Py_XDECREF(made);
    if (rc == 0) {
        rc = cio_soon_batch_add(
            &batch, self->loop->state->set_result_unless_cancelled, args, 2);
    }
    return cio_soon_batch_end(&batch, rc);
}

/* An error after the spawn goes to the waiter, whose awaiter closes the
 * transport and waits for the child, as with stdlib's _connect_pipes. */
static int
fail_waiter(PyObject *waiter)
{
    PyObject *exc = cio_fetch_exception(), *r;

    if (cio_is_exit_exception(exc)) {
        cio_restore_exception(exc);
        return -1;
    }
    r = PyObject_CallMethod(waiter, "set_exception", "(O)", exc);
    Py_DECREF(exc);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* A child spawned but not watched (watching it failed: pidfd_open's
 * EMFILE, say): killed, its pipes closed and its exit waited for here,
 * since no transport will. The wait is short: the child was just killed. */
static int
abandon_child(SubprocessTransportObject *self)
{
    static const char *const pipes[] = {"stdin", "stdout", "stderr"};
    PyObject *r;

    if (subprocess_close(self) < 0) {
        return -1;
    }
    for (int fd = 0; fd < N_STDIO; fd++) {
        PyObject *pipe = PyObject_GetAttrString(self->proc, pipes[fd]);

        r = pipe == NULL ? NULL : pipe == Py_None ? Py_NewRef(Py_None)
            : PyObject_CallMethod(pipe, "close", NULL);
        Py_XDECREF(pipe);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    r = PyObject_CallMethod(self->proc, "wait", NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* _spawn_subprocess(protocol, args, shell, stdin, stdout, stderr, bufsize,
 *                   waiter, extra, **popen_kwargs): the transport, with
 * the child running; waiter gets its result once connection_made ran. */
static PyObject *
loop_spawn_subprocess(LoopObject *loop, PyObject *args, PyObject *kwargs)
{
    PyTypeObject *type = loop->state->subprocess_transport_type;
    SubprocessTransportObject *self;
    PyObject *protocol, *cmd, *shell, *stdio[N_STDIO], *bufsize, *waiter;
    PyObject *extra, *pipe_const, *proc, *pid;

    if (!PyArg_ParseTuple(args, "OOOOOOOOO:_spawn_subprocess", &protocol,
                          &cmd, &shell, &stdio[0], &stdio[1], &stdio[2],
                          &bufsize, &waiter, &extra)) {
        return NULL;
    }
    self = (SubprocessTransportObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->pid = -1;
    self->closed = 1;  /* until spawned: nothing to warn about or close */
    self->loop = (LoopObject *)Py_NewRef(loop);
    self->protocol = Py_NewRef(protocol);
    self->exit_waiters = PyList_New(0);
    extra = extra == Py_None ? PyDict_New() : Py_NewRef(extra);
    pipe_const = PyObject_GetAttrString(loop->state->subprocess_module,
                                        "PIPE");
    if (self->exit_waiters == NULL || extra == NULL || pipe_const == NULL ||
        PyObject_SetAttrString((PyObject *)self, "_extra", extra) < 0) {
        goto error;
    }
    for (int fd = 0; fd < N_STDIO; fd++) {
        int is_pipe = PyObject_RichCompareBool(stdio[fd], pipe_const, Py_EQ);

        if (is_pipe < 0) {
            goto error;
        }
        self->has_pipe[fd] = (char)is_pipe;
    }
    proc = spawn_with_popen(loop->state, cmd, shell, stdio, bufsize, kwargs);
    if (proc == NULL) {
        goto error;
    }
    self->proc = proc;
    self->closed = 0;
    pid = PyObject_GetAttrString(proc, "pid");
    self->pid = pid ? PyLong_AsLong(pid) : -1;
    Py_XDECREF(pid);
    /* Past the spawn, a failure before the exit is watched kills the
     * child: nothing would report the exit that _wait() waits for. */
    if (self->pid < 0 || PyDict_SetItemString(extra, "subprocess", proc) < 0 ||
        log_created(self, cmd) < 0 || watch_child(self) < 0) {
        PyObject *exc;

        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "Popen gave no pid");
        }
        exc = cio_fetch_exception();
        if (abandon_child(self) < 0) {
            PyErr_Clear();
        }
        cio_restore_exception(exc);
        goto error;
    }
    if (start_child(self, waiter) < 0 && fail_waiter(waiter) < 0) {
        goto error;
    }
    Py_DECREF(extra);
    Py_DECREF(pipe_const);
    return (PyObject *)self;

error:
    Py_XDECREF(extra);
    Py_XDECREF(pipe_const);
    Py_DECREF(self);
    return NULL;
}

PyMethodDef cio_loop_subprocess_methods[] = {
    {"_spawn_subprocess", (PyCFunction)(void (*)(void))loop_spawn_subprocess,
     METH_VARARGS | METH_KEYWORDS,
     "_spawn_subprocess($self, protocol, args, shell, stdin, stdout, stderr, "
     "bufsize, waiter, extra, /, **popen_kwargs)\n--\n\n"
     "Spawn a child with subprocess.Popen and return its transport; waiter "
     "gets its result once connection_made has run."},
    {NULL, NULL, 0, NULL},
};
