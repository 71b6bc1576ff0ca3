/* Child processes: exit notification without asyncio's child watchers.
 *
 * _add_child_handler(pid, callback, *args) opens a pidfd for the child
 * (Linux 5.3+) and watches it like any reader. When it turns readable the
 * child has exited: it is reaped with waitpid() on the loop thread and
 * callback(pid, returncode, *args) runs, as PidfdChildWatcher does. Where
 * pidfd_open() is missing, a helper thread waits for the exit without
 * reaping (waitid WNOWAIT) and then closes its end of a socketpair, which
 * the loop watches in place of the pidfd; everything else is the same.
 *
 * A loop closed while children still run hands each of them to a detached
 * thread that reaps it, so no zombie outlives the loop. */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "casyncio.h"
#include "cio_process.h"
#include "cio_socket.h"

static int
start_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&tid, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

/* ---- the thread fallback ------------------------------------------------ */

typedef struct {
    pid_t pid;
    int notify_fd;  /* closed when the child has exited */
} exit_waiter_t;

static void *
exit_waiter_main(void *arg)
{
    exit_waiter_t *w = arg;
    siginfo_t info;

    while (waitid(P_PID, (id_t)w->pid, &info, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR) {
    }
    close(w->notify_fd);
    free(w);
    return NULL;
}

/* An fd that turns readable (EOF) once pid has exited; -errno on error. */
static int
open_exit_notifier(pid_t pid)
{
    exit_waiter_t *w;
    int pair[2], rc;

    if ((rc = cio_socketpair_cloexec(pair)) < 0) {
        return rc;
    }
    w = malloc(sizeof(*w));
    if (w == NULL) {
        rc = -ENOMEM;
    }
    else {
        w->pid = pid;
        w->notify_fd = pair[1];
        rc = -start_detached(exit_waiter_main, w);
    }
    if (rc < 0) {
        free(w);
        close(pair[0]);
        close(pair[1]);
        return rc;
    }
    return pair[0];
}

static int
open_child_fd(cio_state *st, pid_t pid)
{
    if (!st->pidfd_disabled) {
        int fd = cio_pidfd_open(pid);

        if (fd >= 0 || (fd != -ENOSYS && fd != -EPERM)) {
            return fd;
        }
    }
    return open_exit_notifier(pid);
}

/* ---- reaping ------------------------------------------------------------ */

static void *
reaper_main(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;

    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return NULL;
}

/* waitstatus_to_exitcode(): the exit code, or -signal. */
static int
exit_code(int status)
{
    if (WIFSIGNALED(status)) {
        return -WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

static PyObject *
tuple_from_array(PyObject *const *items, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);

    for (Py_ssize_t i = 0; t != NULL && i < n; i++) {
        PyTuple_SET_ITEM(t, i, Py_NewRef(items[i]));
    }
    return t;
}

int
cio_loop_watch_child(LoopObject *self, long pid, PyObject *callback,
                     PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key = NULL, *entry = NULL, *exited = NULL;
    int fd, rc = -1;

    if (cio_loop_check_closed(self) < 0) {
        return -1;
    }
    fd = open_child_fd(self->state, (pid_t)pid);
    if (fd < 0) {
        cio_raise_errno(fd);
        return -1;
    }
    key = PyLong_FromLong(fd);
    entry = Py_BuildValue("(lON)", pid, callback,
                          tuple_from_array(args, nargs));
    exited = PyObject_GetAttrString((PyObject *)self, "_child_exited");
    if (key != NULL && entry != NULL && exited != NULL &&
        PyDict_SetItem(self->children, key, entry) == 0) {
        rc = cio_loop_add_watcher(self, fd, CIO_POLL_READ, exited, &key, 1,
                                  NULL, NULL);
        if (rc < 0) {
            PyObject *exc = cio_fetch_exception();
            PyDict_DelItem(self->children, key);
            cio_restore_exception(exc);
        }
    }
    if (rc < 0) {
        close(fd);
    }
    Py_XDECREF(key);
    Py_XDECREF(entry);
    Py_XDECREF(exited);
    return rc;
}

static PyObject *
loop_add_child_handler(LoopObject *self, PyObject *const *args,
                       Py_ssize_t nargs)
{
    long pid;

    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError,
                        "_add_child_handler(pid, callback, *args)");
        return NULL;
    }
    pid = PyLong_AsLong(args[0]);
    if (pid == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (cio_loop_watch_child(self, pid, args[1], args + 2, nargs - 2) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The child behind fd (a pidfd or notifier) has exited: reap, report.
 * What the report needs is made before the child is reaped and its
 * watcher dropped: if an allocation fails there, the watcher stays and
 * the next iteration tries again, where a failure after the reaping would
 * lose the exit for good. */
static PyObject *
loop_child_exited(LoopObject *self, PyObject *key)
{
    PyObject *entry, *pid_obj, *callback, *cb_args, *call_args, *waitpid;
    PyObject *r = NULL;
    Py_ssize_t n_extra;
    long pid;
    int status, returncode;
    pid_t got;

    entry = PyDict_GetItemWithError(self->children, key);
    if (entry == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    Py_INCREF(entry);
    pid_obj = PyTuple_GET_ITEM(entry, 0);
    callback = PyTuple_GET_ITEM(entry, 1);
    cb_args = PyTuple_GET_ITEM(entry, 2);
    n_extra = PyTuple_GET_SIZE(cb_args);
    pid = PyLong_AsLong(pid_obj);
    call_args = PyTuple_New(2 + n_extra);
    /* os.waitpid looked up per call, as stdlib's watcher reaps: tests
     * patch it (a failure other than ChildProcessError propagates, the
     * callback not called). */
    waitpid = PyObject_GetAttr(self->state->os_module,
                               CIO_NAME(self->state, waitpid));
    if (call_args == NULL || waitpid == NULL) {
        goto done;
    }
    PyTuple_SET_ITEM(call_args, 0, Py_NewRef(pid_obj));
    PyTuple_SET_ITEM(call_args, 1, Py_NewRef(Py_None));  /* returncode */
    for (Py_ssize_t i = 0; i < n_extra; i++) {
        PyTuple_SET_ITEM(call_args, 2 + i,
                         Py_NewRef(PyTuple_GET_ITEM(cb_args, i)));
    }
    if (PyDict_DelItem(self->children, key) < 0 ||
        cio_loop_remove_watcher(self, (int)PyLong_AsLong(key),
                                CIO_POLL_READ) < 0) {
        goto done;
    }
    close((int)PyLong_AsLong(key));
    {
        /* 0 is a cached small int: no allocation to fail here. */
        PyObject *wait_args[2] = {pid_obj, PyLong_FromLong(0)};

        r = PyObject_Vectorcall(waitpid, wait_args, 2, NULL);
        Py_DECREF(wait_args[1]);
    }
    if (r == NULL && !PyErr_ExceptionMatches(PyExc_ChildProcessError)) {
        goto done;
    }
    if (r == NULL) {
        PyErr_Clear();
        got = -1;
    }
    else {
        int ok = PyArg_ParseTuple(r, "ii", &got, &status);

        Py_CLEAR(r);
        if (!ok) {
            goto done;
        }
    }
    if (got < 0) {
        /* Reaped elsewhere (someone called waitpid()); stdlib's words. */
        PyObject *msg = PyUnicode_FromFormat(
            "child process pid %ld exit status already read:  will report "
            "returncode 255", pid);
        int logged = msg ? cio_log(self->state, "warning", msg, Py_False)
                         : -1;

        Py_XDECREF(msg);
        if (logged < 0) {
            goto done;
        }
        returncode = 255;
    }
    else {
        returncode = exit_code(status);
    }
    {
        PyObject *code = PyLong_FromLong(returncode);

        if (code == NULL) {
            goto done;
        }
        Py_SETREF(PyTuple_GET_ITEM(call_args, 1), code);
    }
    r = PyObject_Call(callback, call_args, NULL);
done:
    Py_XDECREF(waitpid);
    Py_XDECREF(call_args);
    Py_DECREF(entry);
    return r;
}

/* At close: the watchers are gone; reap what has exited, hand the rest to
 * reaper threads. The callbacks are not called, as with stdlib. */
void
cio_loop_release_children(LoopObject *self)
{
    PyObject *key, *entry;
    Py_ssize_t pos = 0;

    if (self->children == NULL) {
        return;
    }
    while (PyDict_Next(self->children, &pos, &key, &entry)) {
        pid_t pid = (pid_t)PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));

        close((int)PyLong_AsLong(key));
        if (waitpid(pid, NULL, WNOHANG) == 0) {
            start_detached(reaper_main, (void *)(intptr_t)pid);
        }
    }
    PyDict_Clear(self->children);
}

static PyObject *
set_pidfd_enabled(PyObject *module, PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);

    if (on < 0) {
        return NULL;
    }
    ((cio_state *)PyModule_GetState(module))->pidfd_disabled = !on;
    Py_RETURN_NONE;
}

PyMethodDef cio_process_module_methods[] = {
    {"_set_pidfd_enabled", (PyCFunction)set_pidfd_enabled, METH_O,
     "Use pidfds (default) or the waiter-thread fallback for new children; "
     "for tests."},
    {NULL, NULL, 0, NULL},
};

PyMethodDef cio_loop_process_methods[] = {
    {"_add_child_handler",
     (PyCFunction)(void (*)(void))loop_add_child_handler, METH_FASTCALL,
     "_add_child_handler($self, pid, callback, /, *args)\n--\n\n"
     "Reap pid once it exits, then call callback(pid, returncode, *args)."},
    {"_child_exited", (PyCFunction)loop_child_exited, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};
