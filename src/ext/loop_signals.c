/* add_signal_handler / remove_signal_handler: unix_events.py's semantics.
 *
 * Python's own C-level handler does the async-signal-safe part: it writes
 * the signal number into the fd given to signal.set_wakeup_fd(). The loop
 * owns that fd's other end (a non-blocking pipe, opened on first use) and
 * watches it like any reader; each byte read becomes a run of the
 * registered Handle in the ready queue. The Python-level handler installed
 * with signal.signal() is a no-op: it exists only so that Python catches
 * the signal instead of applying the default action. */
#include <signal.h>
#include <unistd.h>

#include "casyncio.h"
#include "cio_fd.h"

static PyObject *
sighandler_noop(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_RETURN_NONE;
}

static PyMethodDef sighandler_noop_def = {
    "_sighandler_noop", (PyCFunction)(void (*)(void))sighandler_noop,
    METH_FASTCALL, "Python-level handler of signals the loop handles."};

/* stdlib's _check_signal. */
static int
check_signal(LoopObject *self, PyObject *sig, int *signum)
{
    PyObject *valid;
    int ok;

    if (!PyLong_Check(sig)) {
        PyErr_Format(PyExc_TypeError, "sig must be an int, not %R", sig);
        return -1;
    }
    valid = PyObject_CallMethod(self->state->signal_module, "valid_signals",
                                NULL);
    ok = valid ? PySequence_Contains(valid, sig) : -1;
    Py_XDECREF(valid);
    if (ok < 0) {
        return -1;
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "invalid signal number %S", sig);
        return -1;
    }
    /* valid_signals() holds small ints only. */
    *signum = (int)PyLong_AsLong(sig);
    return 0;
}

static PyObject *
set_wakeup_fd(LoopObject *self, int fd)
{
    return PyObject_CallMethod(self->state->signal_module, "set_wakeup_fd",
                               "i", fd);
}

/* set_wakeup_fd(-1) once no handler is left; a failure is only logged. */
static int
release_wakeup_fd(LoopObject *self)
{
    PyObject *r = set_wakeup_fd(self, -1), *msg;
    int rc;

    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_ValueError) &&
        !PyErr_ExceptionMatches(PyExc_OSError)) {
        return -1;
    }
    PyObject *exc = cio_fetch_exception();
    msg = PyUnicode_FromFormat("set_wakeup_fd(-1) failed: %S", exc);
    Py_DECREF(exc);
    if (msg == NULL) {
        return -1;
    }
    rc = cio_log(self->state, "info", msg, Py_False);
    Py_DECREF(msg);
    return rc;
}

/* Replaces an OSError(EINVAL) from signal.signal() by stdlib's message. */
static void
explain_uncatchable(int signum)
{
    PyObject *exc;

    if (!PyErr_ExceptionMatches(PyExc_OSError)) {
        return;
    }
    exc = cio_fetch_exception();
    if (((PyOSErrorObject *)exc)->myerrno != NULL &&
        PyLong_Check(((PyOSErrorObject *)exc)->myerrno) &&
        PyLong_AsLong(((PyOSErrorObject *)exc)->myerrno) == EINVAL) {
        Py_DECREF(exc);
        PyErr_Format(PyExc_RuntimeError, "sig %d cannot be caught", signum);
        return;
    }
    cio_restore_exception(exc);
}

/* Opens the pipe Python writes signal numbers into, and watches it. */
static int
open_signal_pipe(LoopObject *self)
{
    PyObject *process;
    int fds[2], rc;

    if (self->signal_read_fd >= 0) {
        return 0;
    }
    if ((rc = cio_pipe_nonblocking(fds)) < 0) {
        cio_raise_errno(rc);
        return -1;
    }
    process = PyObject_GetAttrString((PyObject *)self, "_read_signal_pipe");
    rc = process ? cio_loop_add_watcher(self, fds[0], CIO_POLL_READ, process,
                                        NULL, 0, NULL, NULL)
                 : -1;
    Py_XDECREF(process);
    if (rc < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    self->signal_read_fd = fds[0];
    self->signal_write_fd = fds[1];
    return 0;
}

/* After the watchers are gone: on close and dealloc. */
void
cio_loop_close_signal_pipe(LoopObject *self)
{
    if (self->signal_read_fd >= 0) {
        close(self->signal_read_fd);
        close(self->signal_write_fd);
        self->signal_read_fd = self->signal_write_fd = -1;
    }
}

static PyObject *
loop_add_signal_handler(LoopObject *self, PyObject *const *args,
                        Py_ssize_t nargs)
{
    cio_state *st = self->state;
    PyObject *r, *noop, *key;
    HandleObject *h;
    int signum, is_coro;

    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "add_signal_handler() missing %zd required positional "
                     "argument%s", 2 - nargs, nargs == 1 ? "" : "s");
        return NULL;
    }
    r = PyObject_CallOneArg(st->iscoroutine, args[1]);
    is_coro = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    if (is_coro == 0) {
        r = PyObject_CallOneArg(st->iscoroutinefunction, args[1]);
        is_coro = r ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
    }
    if (is_coro < 0) {
        return NULL;
    }
    if (is_coro) {
        PyErr_SetString(PyExc_TypeError,
                        "coroutines cannot be used with add_signal_handler()");
        return NULL;
    }
    if (check_signal(self, args[0], &signum) < 0 ||
        cio_loop_check_closed(self) < 0 || open_signal_pipe(self) < 0) {
        return NULL;
    }
    /* set_wakeup_fd() refuses outside the main thread: calling it first
     * keeps a loop in another thread from installing any handler. */
    r = set_wakeup_fd(self, self->signal_write_fd);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) ||
            PyErr_ExceptionMatches(PyExc_OSError)) {
            PyObject *exc = cio_fetch_exception();
            PyErr_Format(PyExc_RuntimeError, "%S", exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    Py_DECREF(r);

    h = cio_handle_new(self, st->handle_type, args[1], args + 2, nargs - 2,
                       NULL);
    key = PyLong_FromLong(signum);
    if (h == NULL || key == NULL ||
        PyDict_SetItem(self->signal_handlers, key, (PyObject *)h) < 0) {
        Py_XDECREF(h);
        Py_XDECREF(key);
        return NULL;
    }
    Py_DECREF(h);
    noop = PyCFunction_New(&sighandler_noop_def, NULL);
    r = noop ? PyObject_CallMethod(st->signal_module, "signal", "iO", signum,
                                   noop)
             : NULL;
    Py_XDECREF(noop);
    if (r != NULL) {
        Py_DECREF(r);
        /* SA_RESTART: fewer EINTRs in code the handlers interrupt. */
        r = PyObject_CallMethod(st->signal_module, "siginterrupt", "iO",
                                signum, Py_False);
    }
    if (r == NULL) {
        PyObject *exc = cio_fetch_exception();

        PyDict_DelItem(self->signal_handlers, key);
        if (PyDict_GET_SIZE(self->signal_handlers) == 0 &&
            release_wakeup_fd(self) < 0) {
            Py_DECREF(exc);
            Py_DECREF(key);
            return NULL;
        }
        cio_restore_exception(exc);
        explain_uncatchable(signum);
        Py_DECREF(key);
        return NULL;
    }
    Py_DECREF(r);
    Py_DECREF(key);
    Py_RETURN_NONE;
}

static PyObject *
loop_remove_signal_handler(LoopObject *self, PyObject *sig)
{
    PyObject *key, *handler, *r;
    int signum, rc;

    if (check_signal(self, sig, &signum) < 0) {
        return NULL;
    }
    key = PyLong_FromLong(signum);
    if (key == NULL) {
        return NULL;
    }
    rc = PyDict_Contains(self->signal_handlers, key);
    if (rc > 0) {
        rc = PyDict_DelItem(self->signal_handlers, key) < 0 ? -1 : 1;
    }
    Py_DECREF(key);
    if (rc <= 0) {
        return rc < 0 ? NULL : Py_NewRef(Py_False);
    }
    handler = PyObject_GetAttrString(
        self->state->signal_module,
        signum == SIGINT ? "default_int_handler" : "SIG_DFL");
    r = handler ? PyObject_CallMethod(self->state->signal_module, "signal",
                                      "iO", signum, handler)
                : NULL;
    Py_XDECREF(handler);
    if (r == NULL) {
        explain_uncatchable(signum);
        return NULL;
    }
    Py_DECREF(r);
    if (PyDict_GET_SIZE(self->signal_handlers) == 0 &&
        release_wakeup_fd(self) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* stdlib's _handle_signal: queue the handler's run, or drop a handler that
 * was cancelled. Called on the loop's thread, from the pipe reader. */
static PyObject *
loop_handle_signal(LoopObject *self, PyObject *sig)
{
    PyObject *h = PyDict_GetItemWithError(self->signal_handlers, sig);

    if (h == NULL) {
        /* Unknown: a race with remove_signal_handler(). */
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    if (((HandleObject *)h)->cancelled) {
        PyObject *r = loop_remove_signal_handler(self, sig);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    if (cio_loop_push_ready(self, (HandleObject *)h) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_read_signal_pipe(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    unsigned char buf[256];
    ssize_t n;

    while ((n = read(self->signal_read_fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            PyObject *sig = PyLong_FromLong(buf[i]);
            PyObject *r = sig ? loop_handle_signal(self, sig) : NULL;

            Py_XDECREF(sig);
            if (r == NULL) {
                return NULL;
            }
            Py_DECREF(r);
        }
    }
    Py_RETURN_NONE;
}

/* On close, as stdlib: restore default dispositions, unless the
 * interpreter is finalizing, when only a ResourceWarning is given. */
int
cio_loop_remove_signal_handlers(LoopObject *self)
{
    PyObject *sigs, *r;
    int finalizing;

    if (self->signal_handlers == NULL ||
        PyDict_GET_SIZE(self->signal_handlers) == 0) {
        return 0;
    }
    r = PyObject_CallMethod(self->state->sys_module, "is_finalizing", NULL);
    finalizing = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    if (finalizing < 0) {
        return -1;
    }
    if (finalizing) {
        if (PyErr_WarnFormat(PyExc_ResourceWarning, 1,
                             "Closing the loop %R on interpreter shutdown "
                             "stage, skipping signal handlers removal",
                             (PyObject *)self) < 0) {
            return -1;
        }
        PyDict_Clear(self->signal_handlers);
        return 0;
    }
    sigs = PyDict_Keys(self->signal_handlers);
    if (sigs == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sigs); i++) {
        r = loop_remove_signal_handler(self,
                                                 PyList_GET_ITEM(sigs, i));
        if (r == NULL) {
            Py_DECREF(sigs);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(sigs);
    return 0;
}

PyMethodDef cio_loop_signal_methods[] = {
    {"add_signal_handler",
     (PyCFunction)(void (*)(void))loop_add_signal_handler, METH_FASTCALL,
     "add_signal_handler($self, sig, callback, /, *args)\n--\n\n"
     "Run callback(*args) as a loop callback whenever sig arrives."},
    {"remove_signal_handler", (PyCFunction)loop_remove_signal_handler,
     METH_O,
     "remove_signal_handler($self, sig, /)\n--\n\n"
     "Remove the handler for sig; return True if there was one."},
    {"_handle_signal", (PyCFunction)loop_handle_signal, METH_O, NULL},
    {"_read_signal_pipe", (PyCFunction)loop_read_signal_pipe, METH_NOARGS,
     NULL},
    {NULL, NULL, 0, NULL},
};
