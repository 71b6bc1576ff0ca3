/* add_reader/add_writer and their removal: the loop's per-fd watchers.
 *
 * Watchers live in an array indexed by fd, so dispatching an event is an
 * index, not a dict lookup. The semantics are selector_events.py's: one
 * reader and one writer Handle per fd, a new one replacing (and
 * cancelling) the old, error/hang-up waking both. */
#include "casyncio.h"

/* selectors' _fileobj_to_fd, with stdlib's error messages. */
int
cio_loop_fd_from_object(PyObject *fileobj)
{
    PyObject *num;
    long fd;

    if (PyLong_Check(fileobj)) {
        num = Py_NewRef(fileobj);
    }
    else {
        PyObject *res = PyObject_CallMethod(fileobj, "fileno", NULL);
        num = res ? PyNumber_Long(res) : NULL;
        Py_XDECREF(res);
        if (num == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError) &&
                !PyErr_ExceptionMatches(PyExc_TypeError) &&
                !PyErr_ExceptionMatches(PyExc_ValueError)) {
                return -1;
            }
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "Invalid file object: %R",
                         fileobj);
            return -1;
        }
    }
    fd = PyLong_AsLong(num);
    if (fd == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "Invalid file object: %R", fileobj);
        Py_DECREF(num);
        return -1;
    }
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %R", num);
        Py_DECREF(num);
        return -1;
    }
    Py_DECREF(num);
    return (int)fd;
}

static int
fds_reserve(LoopObject *self, int fd)
{
    size_t len = self->fds_len, want = (size_t)fd + 1;
    cio_fd_watch_t *fds;

    if (want <= len) {
        return 0;
    }
    if (want < len * 2) {
        want = len * 2;
    }
    if (want < 64) {
        want = 64;
    }
    fds = PyMem_Realloc(self->fds, want * sizeof(*fds));
    if (fds == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(fds + len, 0, (want - len) * sizeof(*fds));
    self->fds = fds;
    self->fds_len = want;
    return 0;
}

/* Points the poller at the new event mask of fd. */
static int
fd_set_events(LoopObject *self, int fd, unsigned events)
{
    cio_fd_watch_t *w = &self->fds[fd];
    PyObject *fileobj = NULL;
    int rc = 0;

    if (events == w->events) {
        return 0;
    }
    if (events == 0) {
        /* Like selectors, ignore errors: a closed fd left epoll already. */
        cio_poller_remove(&self->poller, fd);
        self->fds_watched--;
        fileobj = w->fileobj;  /* released last: its dealloc may re-enter */
        w->fileobj = NULL;
    }
    else if (w->events == 0) {
        rc = cio_poller_add(&self->poller, fd, events);
        if (rc == 0) {
            self->fds_watched++;
        }
    }
    else {
        rc = cio_poller_modify(&self->poller, fd, events);
        /* The fd was closed and its number reused since it was added. */
        if (rc == -ENOENT) {
            rc = cio_poller_add(&self->poller, fd, events);
        }
    }
    if (rc < 0) {
        cio_raise_errno(rc);
        return -1;
    }
    w->events = events;
    Py_XDECREF(fileobj);
    return 0;
}

/* The fd fileobj was registered under, found by identity when its
 * fileno() no longer gives it (selectors' _fileobj_lookup); -1 with the
 * fileno() error kept when it is not registered. */
static int
fd_from_registered_object(LoopObject *self, PyObject *fileobj)
{
    if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
        return -1;
    }
    for (size_t fd = 0; fd < self->fds_len; fd++) {
        if (self->fds[fd].fileobj == fileobj) {
            PyErr_Clear();
            return (int)fd;
        }
    }
    return -1;
}

static HandleObject **
watch_slot(cio_fd_watch_t *w, unsigned event)
{
    return event == CIO_POLL_READ ? &w->reader : &w->writer;
}

int
cio_loop_add_watcher(LoopObject *self, int fd, unsigned event,
                     PyObject *callback, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *context,
                     HandleObject **handle_out)
{
    HandleObject *h, *old;

    if (cio_loop_check_closed(self) < 0) {
        return -1;
    }
    h = cio_handle_new(self, self->state->handle_type, callback, args, nargs,
                       context);
    if (h == NULL || fds_reserve(self, fd) < 0 ||
        fd_set_events(self, fd, self->fds[fd].events | event) < 0) {
        Py_XDECREF(h);
        return -1;
    }
    old = *watch_slot(&self->fds[fd], event);
    *watch_slot(&self->fds[fd], event) = h;
    if (old != NULL) {
        cio_handle_cancel_quietly(old);
        Py_DECREF(old);
    }
    if (handle_out != NULL) {
        *handle_out = (HandleObject *)Py_NewRef(h);
    }
    return 0;
}

int
cio_loop_remove_watcher(LoopObject *self, int fd, unsigned event)
{
    HandleObject *old;

    if (self->closed || fd < 0 || (size_t)fd >= self->fds_len ||
        !(self->fds[fd].events & event)) {
        return 0;
    }
    if (fd_set_events(self, fd, self->fds[fd].events & ~event) < 0) {
        return -1;
    }
    old = *watch_slot(&self->fds[fd], event);
    *watch_slot(&self->fds[fd], event) = NULL;
    if (old == NULL) {
        return 0;
    }
    cio_handle_cancel_quietly(old);
    Py_DECREF(old);
    return 1;
}

int
cio_loop_is_watching(LoopObject *self, int fd, unsigned event)
{
    return fd >= 0 && (size_t)fd < self->fds_len &&
           (self->fds[fd].events & event) != 0;
}

int
cio_loop_set_fd_transport(LoopObject *self, int fd, PyObject *transport)
{
    if (fd < 0 || fds_reserve(self, fd) < 0) {
        return -1;
    }
    self->fds[fd].transport = transport;
    return 0;
}

void
cio_loop_forget_fd_transport(LoopObject *self, int fd, PyObject *transport)
{
    if (fd >= 0 && (size_t)fd < self->fds_len &&
        self->fds[fd].transport == transport) {
        self->fds[fd].transport = NULL;
    }
}

/* stdlib's _ensure_fd_no_transport: the public fd methods must not steal
 * an fd from a live transport. */
int
cio_loop_ensure_fd_no_transport(LoopObject *self, int fd)
{
    PyObject *transport, *closing;
    int is_closing;

    if ((size_t)fd >= self->fds_len || self->fds[fd].transport == NULL) {
        return 0;
    }
    transport = Py_NewRef(self->fds[fd].transport);
    closing = PyObject_CallMethod(transport, "is_closing", NULL);
    is_closing = closing ? PyObject_IsTrue(closing) : -1;
    Py_XDECREF(closing);
    if (is_closing == 0) {
        PyErr_Format(PyExc_RuntimeError,
                     "File descriptor %d is used by transport %R", fd,
                     transport);
    }
    Py_DECREF(transport);
    return is_closing > 0 ? 0 : -1;
}

/* add_reader/add_writer; internal is the loop's own _add_reader, which
 * skips the transport check, runs the callback in context (3.15's
 * transports pass theirs) and returns the Handle. */
static PyObject *
loop_add_watcher(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                 unsigned event, const char *name, int internal,
                 PyObject *context)
{
    HandleObject *h;
    int fd;

    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required argument 'callback'", name);
        return NULL;
    }
    fd = cio_loop_fd_from_object(args[0]);
    if (fd < 0 ||
        (!internal && cio_loop_ensure_fd_no_transport(self, fd) < 0)) {
        return NULL;
    }
    if (cio_loop_add_watcher(self, fd, event, args[1], args + 2, nargs - 2,
                             context, &h) < 0) {
        return NULL;
    }
    if (!PyLong_Check(args[0])) {
        Py_XSETREF(self->fds[fd].fileobj, Py_NewRef(args[0]));
    }
    if (internal) {
        return (PyObject *)h;
    }
    Py_DECREF(h);
    Py_RETURN_NONE;
}

static PyObject *
loop_remove_watcher(LoopObject *self, PyObject *fileobj, unsigned event,
                    int internal)
{
    int fd = cio_loop_fd_from_object(fileobj), rc;

    if (fd < 0) {
        fd = fd_from_registered_object(self, fileobj);
    }
    if (fd < 0 ||
        (!internal && cio_loop_ensure_fd_no_transport(self, fd) < 0)) {
        return NULL;
    }
    rc = cio_loop_remove_watcher(self, fd, event);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
loop_add_reader(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return loop_add_watcher(self, args, nargs, CIO_POLL_READ, "add_reader",
                            0, NULL);
}

static PyObject *
loop_add_writer(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return loop_add_watcher(self, args, nargs, CIO_POLL_WRITE, "add_writer",
                            0, NULL);
}

static PyObject *
loop_remove_reader(LoopObject *self, PyObject *fileobj)
{
    return loop_remove_watcher(self, fileobj, CIO_POLL_READ, 0);
}

static PyObject *
loop_remove_writer(LoopObject *self, PyObject *fileobj)
{
    return loop_remove_watcher(self, fileobj, CIO_POLL_WRITE, 0);
}

/* The underscore versions that stdlib's own helpers (sendfile, sock_*)
 * call on the loop: no transport check, and _add_* return the Handle.
 * From 3.15 on they take context=, as stdlib's transports pass it. */
static PyObject *
add_watcher_internal(LoopObject *self, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames, unsigned event,
                     const char *name)
{
    PyObject *context = NULL;

#if CIO_TRANSPORT_CONTEXT
    if (cio_parse_callback_args(name, args, nargs, kwnames, 0,
                                &context) < 0) {
        return NULL;
    }
#else
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword "
                     "argument '%U'", name, PyTuple_GET_ITEM(kwnames, 0));
        return NULL;
    }
#endif
    return loop_add_watcher(self, args, nargs, event, name, 1, context);
}

static PyObject *
loop_add_reader_internal(LoopObject *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames)
{
    return add_watcher_internal(self, args, nargs, kwnames, CIO_POLL_READ,
                                "_add_reader");
}

static PyObject *
loop_add_writer_internal(LoopObject *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames)
{
    return add_watcher_internal(self, args, nargs, kwnames, CIO_POLL_WRITE,
                                "_add_writer");
}

static PyObject *
loop_remove_reader_internal(LoopObject *self, PyObject *fileobj)
{
    return loop_remove_watcher(self, fileobj, CIO_POLL_READ, 1);
}

static PyObject *
loop_remove_writer_internal(LoopObject *self, PyObject *fileobj)
{
    return loop_remove_watcher(self, fileobj, CIO_POLL_WRITE, 1);
}

static PyObject *
loop_ensure_fd_no_transport(LoopObject *self, PyObject *fileobj)
{
    int fd = cio_loop_fd_from_object(fileobj);

    if (fd < 0 || cio_loop_ensure_fd_no_transport(self, fd) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Queues the watchers of ready fds. No Python code runs here, so the
 * pointers into self->fds stay valid throughout. */
int
cio_loop_dispatch_io(LoopObject *self, const cio_poll_event_t *events,
                     int n)
{
    for (int i = 0; i < n; i++) {
        cio_fd_watch_t *w;
        HandleObject *ready[2] = {NULL, NULL};

        if ((size_t)events[i].fd >= self->fds_len) {
            continue;
        }
        w = &self->fds[events[i].fd];
        if (events[i].events & CIO_POLL_READ) {
            ready[0] = w->reader;
        }
        if (events[i].events & CIO_POLL_WRITE) {
            ready[1] = w->writer;
        }
        for (int j = 0; j < 2; j++) {
            if (ready[j] == NULL || ready[j]->cancelled) {
                continue;
            }
            if (cio_ready_queue_push(&self->ready, ready[j]) < 0) {
                PyErr_NoMemory();
                return -1;
            }
            Py_INCREF(ready[j]);
        }
    }
    return 0;
}

void
cio_loop_fds_clear(LoopObject *self)
{
    for (size_t fd = 0; fd < self->fds_len; fd++) {
        cio_fd_watch_t *w = &self->fds[fd];
        w->events = 0;
        Py_CLEAR(w->reader);
        Py_CLEAR(w->writer);
        Py_CLEAR(w->fileobj);
    }
    self->fds_watched = 0;
}

int
cio_loop_fds_traverse(LoopObject *self, visitproc visit, void *arg)
{
    for (size_t fd = 0; fd < self->fds_len; fd++) {
        Py_VISIT(self->fds[fd].reader);
        Py_VISIT(self->fds[fd].writer);
        Py_VISIT(self->fds[fd].fileobj);
    }
    return 0;
}

PyMethodDef cio_loop_fd_methods[] = {
    {"add_reader", (PyCFunction)(void (*)(void))loop_add_reader,
     METH_FASTCALL,
     "add_reader($self, fd, callback, /, *args)\n--\n\n"
     "Call callback(*args) whenever fd (an int or an object with fileno())"
     " is readable."},
    {"add_writer", (PyCFunction)(void (*)(void))loop_add_writer,
     METH_FASTCALL,
     "add_writer($self, fd, callback, /, *args)\n--\n\n"
     "Call callback(*args) whenever fd is writable."},
    {"remove_reader", (PyCFunction)loop_remove_reader, METH_O,
     "remove_reader($self, fd, /)\n--\n\nStop watching fd for reading; "
     "return True if a reader was registered."},
    {"remove_writer", (PyCFunction)loop_remove_writer, METH_O,
     "remove_writer($self, fd, /)\n--\n\nStop watching fd for writing; "
     "return True if a writer was registered."},
    {"_add_reader", (PyCFunction)(void (*)(void))loop_add_reader_internal,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_add_writer", (PyCFunction)(void (*)(void))loop_add_writer_internal,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_remove_reader", (PyCFunction)loop_remove_reader_internal, METH_O,
     NULL},
    {"_remove_writer", (PyCFunction)loop_remove_writer_internal, METH_O,
     NULL},
    {"_ensure_fd_no_transport", (PyCFunction)loop_ensure_fd_no_transport,
     METH_O, NULL},
    {NULL, NULL, 0, NULL},
};
