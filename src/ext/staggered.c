/* The staggered race behind create_connection's happy eyeballs (RFC 8305):
 * asyncio.staggered.staggered_race for a C caller.
 *
 * The attempts run as Tasks, as in stdlib. The first starts at once; each
 * next one starts when the one started just before it fails, or when
 * delay seconds have passed since that one started (never, for a delay
 * of None), until one succeeds or every attempt has failed. The race is
 * a Future: its result is the winner's, or None when every attempt
 * failed. Once there is a winner, or the Future is cancelled, the other
 * attempts are cancelled. Instead of stdlib's Task per attempt waiting on
 * an Event with wait_for(), the race keeps one timer and the attempts'
 * done callbacks; an attempt whose success comes too late is handed to
 * the caller's discard function (stdlib drops it, leaving its socket to
 * the garbage collector). */
#include "casyncio.h"

typedef struct {
    PyObject_HEAD
    LoopObject *loop;
    PyObject *ctx;           /* the caller's, passed to its functions */
    const cio_race_ops_t *ops;
    PyObject *delay;         /* a number, or None */
    PyObject *future;        /* the race's outcome */
    PyObject *tasks;         /* the attempts started, in order */
    PyObject *timer;         /* TimerHandle for the next start, or NULL */
    Py_ssize_t n;            /* attempts in all */
    Py_ssize_t failed;       /* attempts that ended without winning */
} RaceObject;

static int race_start_next(RaceObject *self);
static PyObject *race_fail(RaceObject *self);

/* A callable that calls method on the race: race-bound, so that no
 * bound method of a Python class is needed. */
static PyObject *
race_callback(RaceObject *self, PyMethodDef *method)
{
    return PyCFunction_New(method, (PyObject *)self);
}

static int
race_cancel_timer(RaceObject *self)
{
    PyObject *timer = self->timer;
    int rc;

    if (timer == NULL) {
        return 0;
    }
    self->timer = NULL;
    rc = cio_call_noargs(timer, "cancel");
    Py_DECREF(timer);
    return rc;
}

/* Cancels every attempt but the winner (NULL: all) and the timer. */
static int
race_cancel_others(RaceObject *self, PyObject *winner)
{
    int rc = race_cancel_timer(self);

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->tasks); i++) {
        PyObject *task = PyList_GET_ITEM(self->tasks, i);
        if (task != winner && cio_call_noargs(task, "cancel") < 0) {
            rc = -1;
        }
    }
    return rc;
}

static int
race_finish(RaceObject *self, PyObject *result)
{
    PyObject *res = PyObject_CallMethod(self->future, "set_result", "(O)",
                                        result);

    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* Whether the race has its outcome (or was cancelled): 1, 0 or -1. */
static int
race_decided(RaceObject *self)
{
    PyObject *res = PyObject_CallMethod(self->future, "done", NULL);
    int done = res ? PyObject_IsTrue(res) : -1;

    Py_XDECREF(res);
    return done;
}

/* _delay_elapsed(): the attempt started last has had its time. */
static PyObject *
race_delay_elapsed(RaceObject *self, PyObject *Py_UNUSED(ignored))
{
    int over = race_decided(self);

    Py_CLEAR(self->timer);
    if (over < 0) {
        return NULL;
    }
    /* Cancelled from outside, in the same iteration: nothing to start. */
    if (!over && race_start_next(self) < 0) {
        return race_fail(self);
    }
    Py_RETURN_NONE;
}

/* The race cannot go on (an attempt could not be started): the error
 * being raised becomes its outcome. */
static PyObject *
race_fail(RaceObject *self)
{
    PyObject *exc = cio_fetch_exception();
    PyObject *res = PyObject_CallMethod(self->future, "set_exception", "(O)",
                                        exc);

    Py_DECREF(exc);
    Py_XDECREF(res);
    if (res == NULL || race_cancel_others(self, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A finished attempt's result (a new reference), or NULL, with no error
 * set, when it failed or was cancelled: the race does not report those,
 * as the caller's attempts note their own errors. */
static PyObject *
attempt_result(PyObject *task)
{
    PyObject *res = PyObject_CallMethod(task, "cancelled", NULL);
    int cancelled = res ? PyObject_IsTrue(res) : -1;
    PyObject *exc, *result = NULL;

    Py_XDECREF(res);
    if (cancelled == 0) {
        exc = PyObject_CallMethod(task, "exception", NULL);
        if (exc == Py_None) {
            result = PyObject_CallMethod(task, "result", NULL);
        }
        Py_XDECREF(exc);
    }
    PyErr_Clear();
    return result;
}

/* _attempt_done(task): the first success wins; a failure of the attempt
 * started last starts the next at once. */
static PyObject *
race_attempt_done(RaceObject *self, PyObject *task)
{
    PyObject *result = attempt_result(task);
    Py_ssize_t index = PySequence_Index(self->tasks, task);
    int over = index < 0 ? -1 : race_decided(self), rc = 0;

    if (over < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    if (result != NULL) {
        if (over) {
            self->ops->discard(self->ctx, result);  /* too late */
        }
        else if (race_cancel_others(self, task) < 0 ||
                 race_finish(self, result) < 0) {
            rc = -1;
        }
        Py_DECREF(result);
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    }
    self->failed++;
    if (!over && index == PyList_GET_SIZE(self->tasks) - 1 &&
        index + 1 < self->n) {
        if (race_cancel_timer(self) < 0 || race_start_next(self) < 0) {
            return race_fail(self);
        }
    }
    else if (!over && self->failed == self->n) {
        rc = race_finish(self, Py_None);
    }
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* _future_done(future): once the race is decided, or cancelled from
 * outside, no attempt goes on, as stdlib's `finally:` sees to. */
static PyObject *
race_future_done(RaceObject *self, PyObject *Py_UNUSED(future))
{
    if (race_cancel_others(self, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef race_delay_elapsed_def = {
    "_delay_elapsed", (PyCFunction)race_delay_elapsed, METH_NOARGS, NULL};
static PyMethodDef race_attempt_done_def = {
    "_attempt_done", (PyCFunction)race_attempt_done, METH_O, NULL};
static PyMethodDef race_future_done_def = {
    "_future_done", (PyCFunction)race_future_done, METH_O, NULL};

/* Starts the next attempt as a Task and, unless it is the last or the
 * delay is None, the timer for the one after it. */
static int
race_start_next(RaceObject *self)
{
    Py_ssize_t index = PyList_GET_SIZE(self->tasks);
    PyObject *awaitable, *task, *callback, *res;
    int rc;

    if (index >= self->n) {
        return 0;
    }
    awaitable = self->ops->start(self->ctx, index);
    task = awaitable ? PyObject_CallMethod((PyObject *)self->loop,
                                           "create_task", "(O)", awaitable)
                     : NULL;
    Py_XDECREF(awaitable);
    if (task == NULL) {
        return -1;
    }
    rc = PyList_Append(self->tasks, task);
    callback = rc == 0 ? race_callback(self, &race_attempt_done_def) : NULL;
    res = callback ? PyObject_CallMethod(task, "add_done_callback", "(O)",
                                         callback)
                   : NULL;
    Py_XDECREF(callback);
    Py_DECREF(task);
    Py_XDECREF(res);
    if (res == NULL) {
        return -1;
    }
    if (index + 1 == self->n || self->delay == Py_None) {
        return 0;
    }
    callback = race_callback(self, &race_delay_elapsed_def);
    self->timer = callback ? PyObject_CallMethod((PyObject *)self->loop,
                                                 "call_later", "OO",
                                                 self->delay, callback)
                           : NULL;
    Py_XDECREF(callback);
    return self->timer ? 0 : -1;
}

PyObject *
cio_race_start(LoopObject *loop, Py_ssize_t n, PyObject *delay,
               const cio_race_ops_t *ops, PyObject *ctx)
{
    RaceObject *self = PyObject_GC_New(RaceObject, loop->state->race_type);
    PyObject *callback, *res, *future;

    if (self == NULL) {
        return NULL;
    }
    self->loop = (LoopObject *)Py_NewRef(loop);
    self->ctx = Py_NewRef(ctx);
    self->ops = ops;
    self->delay = Py_NewRef(delay);
    self->tasks = PyList_New(0);
    self->future = cio_loop_create_future(loop);
    self->timer = NULL;
    self->n = n;
    self->failed = 0;
    PyObject_GC_Track(self);
    if (self->tasks == NULL || self->future == NULL) {
        goto fail;
    }
    callback = race_callback(self, &race_future_done_def);
    res = callback ? PyObject_CallMethod(self->future, "add_done_callback",
                                         "(O)", callback)
                   : NULL;
    Py_XDECREF(callback);
    Py_XDECREF(res);
    if (res == NULL) {
        goto fail;
    }
    if (n == 0) {
        if (race_finish(self, Py_None) < 0) {
            goto fail;
        }
    }
    else if (race_start_next(self) < 0) {
        race_cancel_others(self, NULL);
        goto fail;
    }
    future = Py_NewRef(self->future);
    Py_DECREF(self);  /* the callbacks keep it while the race runs */
    return future;

fail:
    Py_DECREF(self);
    return NULL;
}

static int
race_traverse(RaceObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->ctx);
    Py_VISIT(self->delay);
    Py_VISIT(self->future);
    Py_VISIT(self->tasks);
    Py_VISIT(self->timer);
    return 0;
}

static int
race_clear(RaceObject *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->ctx);
    Py_CLEAR(self->delay);
    Py_CLEAR(self->future);
    Py_CLEAR(self->tasks);
    Py_CLEAR(self->timer);
    return 0;
}

static void
race_dealloc(RaceObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    race_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyType_Slot race_slots[] = {
    {Py_tp_traverse, race_traverse},
    {Py_tp_clear, race_clear},
    {Py_tp_dealloc, race_dealloc},
    {Py_tp_doc, "The state of a staggered race of connection attempts."},
    {0, NULL},
};

PyType_Spec cio_race_spec = {
    .name = "casyncio._casyncio.StaggeredRace",
    .basicsize = sizeof(RaceObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = race_slots,
};
