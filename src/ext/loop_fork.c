/* Fork safety: a child process gets loops of its own.
 *
 * After fork() the child holds copies of every loop's epoll fd, eventfd and
 * signal pipe, but the kernel objects behind them are shared with the
 * parent: a child that registered an fd, consumed a wake-up or read a
 * signal byte would do it to the parent's loop. So in the child, right
 * after fork (os.register_at_fork), each live loop gets a fresh poller with
 * its fds registered again, a fresh signal pipe under the same fd numbers,
 * and forgets the parent's children, whose exit only the parent can reap.
 * asyncio's own fork hook (3.12+) has already reset the running loop and
 * the wake-up fd, as it does for stdlib's loops. */
#include <unistd.h>

#include "casyncio.h"
#include "cio_fd.h"

/* The live loops are listed in the module state, so per interpreter:
 * only the interpreter that forked goes on in the child, and each list is
 * touched under its own interpreter's GIL only. */
void
cio_loop_track(LoopObject *self)
{
    cio_state *st = self->state;

    self->live_prev = NULL;
    self->live_next = st->live_loops;
    if (st->live_loops != NULL) {
        st->live_loops->live_prev = self;
    }
    st->live_loops = self;
}

void
cio_loop_untrack(LoopObject *self)
{
    cio_state *st = self->state;

    if (self->live_prev != NULL) {
        self->live_prev->live_next = self->live_next;
    }
    else if (st != NULL && st->live_loops == self) {
        st->live_loops = self->live_next;
    }
    if (self->live_next != NULL) {
        self->live_next->live_prev = self->live_prev;
    }
    self->live_prev = self->live_next = NULL;
}

/* Closing our copy of the epoll fd leaves the parent's registrations be;
 * epoll_ctl on it would not. */
static int
reopen_poller(LoopObject *self)
{
    int rc;

    cio_poller_close(&self->poller);
    rc = cio_poller_open(&self->poller);
    if (rc < 0) {
        self->poller_open = 0;
        return rc;
    }
    for (size_t fd = 0; fd < self->fds_len; fd++) {
        if (self->fds[fd].events != 0) {
            rc = cio_poller_add(&self->poller, (int)fd, self->fds[fd].events);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* A new pipe moved onto the old fd numbers, so the watcher of the read end
 * and the fd Python may still hold for set_wakeup_fd() stay valid. */
static int
reopen_signal_pipe(LoopObject *self)
{
    int fds[2], rc = 0;

    if (self->signal_read_fd < 0) {
        return 0;
    }
    if ((rc = cio_pipe_nonblocking(fds)) < 0) {
        return rc;
    }
    if ((rc = cio_dup_cloexec(fds[0], self->signal_read_fd)) == 0) {
        rc = cio_dup_cloexec(fds[1], self->signal_write_fd);
    }
    close(fds[0]);
    close(fds[1]);
    return rc;
}

static int
forget_children(LoopObject *self)
{
    PyObject *key, *entry;
    Py_ssize_t pos = 0;

    while (PyDict_Next(self->children, &pos, &key, &entry)) {
        int fd = (int)PyLong_AsLong(key);

        if (cio_loop_remove_watcher(self, fd, CIO_POLL_READ) < 0) {
            return -1;
        }
        close(fd);
    }
    PyDict_Clear(self->children);
    return 0;
}

static PyObject *
after_fork_in_child(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    cio_state *st = PyModule_GetState(module);

    for (LoopObject *loop = st->live_loops; loop != NULL;
         loop = loop->live_next) {
        int rc;

        if (!loop->poller_open) {
            continue;  /* closed */
        }
        rc = reopen_poller(loop);
        if (rc == 0) {
            rc = reopen_signal_pipe(loop);
        }
        if (rc < 0) {
            return cio_raise_errno(rc);
        }
        if (loop->children != NULL && forget_children(loop) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef after_fork_def = {
    "_after_fork_in_child", (PyCFunction)after_fork_in_child, METH_NOARGS,
    "Give every casyncio loop its own poller in a forked child."};

/* Once per module object, so once per interpreter that imports it. */
int
cio_fork_hook_install(PyObject *module, cio_state *st)
{
    PyObject *os, *hook, *kwargs = NULL, *r = NULL;

    os = PyImport_ImportModule("os");
    hook = PyCFunction_NewEx(&after_fork_def, module, NULL);
    if (os != NULL && hook != NULL) {
        kwargs = Py_BuildValue("{sO}", "after_in_child", hook);
    }
    if (kwargs != NULL) {
        PyObject *reg = PyObject_GetAttrString(os, "register_at_fork");

        r = reg ? PyObject_Call(reg, st->empty_tuple, kwargs) : NULL;
        Py_XDECREF(reg);
    }
    Py_XDECREF(os);
    Py_XDECREF(hook);
    Py_XDECREF(kwargs);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}
