/* The Loop type: construction, the run loop and the scheduling methods.
 *
 * One iteration (loop_run_once) follows CPython's BaseEventLoop._run_once
 * phase by phase: compute the poll timeout, wait for I/O and queue the
 * ready fd callbacks, queue the due timers, then run exactly the callbacks
 * that were queued when the run phase began. Cancelled timers leave the
 * heap at once, so there is no cancelled-timer sweep. */
#include "casyncio.h"

#include "cio_clock.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <structmember.h>

/* stdlib's MAXIMUM_SELECT_TIMEOUT: one day. */
#define MAX_POLL_TIMEOUT_S (24.0 * 3600.0)
#define POLL_BATCH 256

static inline double
loop_now(void)
{
    return (double)cio_clock_now_ns() * 1e-9;
}

int
cio_loop_check_closed(LoopObject *self)
{
    if (self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

static int
loop_check_thread(LoopObject *self)
{
    if (self->running && PyThread_get_thread_ident() != self->thread_id) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Non-thread-safe operation invoked on an event loop "
                        "other than the current one");
        return -1;
    }
    return 0;
}

/* stdlib's _check_callback, run only in debug mode. */
static int
loop_check_callback(LoopObject *self, PyObject *callback, const char *method)
{
    cio_state *st = self->state;
    PyObject *res;
    int is_coro;

    res = PyObject_CallOneArg(st->iscoroutine, callback);
    is_coro = res ? PyObject_IsTrue(res) : -1;
    Py_XDECREF(res);
    if (is_coro == 0) {
        res = PyObject_CallOneArg(st->iscoroutinefunction, callback);
        is_coro = res ? PyObject_IsTrue(res) : -1;
        Py_XDECREF(res);
    }
    if (is_coro < 0) {
        return -1;
    }
    if (is_coro) {
        PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()",
                     method);
        return -1;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError,
                     "a callable object was expected by %s(), got %R",
                     method, callback);
        return -1;
    }
    return 0;
}

int
cio_loop_push_ready(LoopObject *self, HandleObject *h)
{
    if (cio_ready_queue_push(&self->ready, h) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(h);
    return 0;
}

PyObject *
cio_loop_call_soon_impl(LoopObject *self, PyObject *callback,
                        PyObject *const *args, Py_ssize_t nargs,
                        PyObject *context, int threadsafe)
{
    HandleObject *h;
    int rc;

    if (cio_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug) {
        if (!threadsafe && loop_check_thread(self) < 0) {
            return NULL;
        }
        if (loop_check_callback(self, callback, threadsafe ?
                                "call_soon_threadsafe" : "call_soon") < 0) {
            return NULL;
        }
    }
    h = cio_handle_new(self, self->state->handle_type, callback, args,
                       nargs, context);
    if (h == NULL || cio_loop_push_ready(self, h) < 0) {
        Py_XDECREF(h);
        return NULL;
    }
    if (threadsafe && (rc = cio_poller_wake(&self->poller)) < 0) {
        Py_DECREF(h);
        return cio_raise_errno(rc);
    }
    return (PyObject *)h;
}

void
cio_soon_batch_init(cio_soon_batch_t *batch, LoopObject *loop,
                    PyObject *context)
{
    batch->loop = loop;
    batch->context = context;
    batch->count = 0;
}

int
cio_soon_batch_add(cio_soon_batch_t *batch, PyObject *callback,
                   PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *h;

    assert(batch->count < CIO_SOON_BATCH_MAX);
    if (callback == NULL) {
        return -1;
    }
    h = cio_loop_call_soon_impl(batch->loop, callback, args, nargs,
                                batch->context, 0);
    if (h == NULL) {
        return -1;
    }
    batch->queued[batch->count++] = h;
    return 0;
}

int
cio_soon_batch_end(cio_soon_batch_t *batch, int rc)
{
    for (int i = 0; i < batch->count; i++) {
        if (rc < 0) {
            cio_handle_cancel_quietly((HandleObject *)batch->queued[i]);
        }
        Py_DECREF(batch->queued[i]);
    }
    batch->count = 0;
    return rc;
}

HandleObject *
cio_handle_new_spare(LoopObject *loop, PyObject *callback, Py_ssize_t nargs)
{
    PyObject *nones[CIO_SPARE_MAX_ARGS];

    assert(nargs <= CIO_SPARE_MAX_ARGS);
    for (Py_ssize_t i = 0; i < nargs; i++) {
        nones[i] = Py_None;
    }
    return cio_handle_new(loop, loop->state->handle_type, callback, nones,
                          nargs, NULL);
}

int
cio_loop_call_soon_or_spare(LoopObject *self, PyObject *callback,
                            PyObject *const *args, Py_ssize_t nargs,
                            HandleObject **spare, PyObject *const *spare_args)
{
    HandleObject *h = *spare;
    int rc;

    if (callback != NULL &&
        cio_loop_call_soon(self, callback, args, nargs) == 0) {
        return 0;
    }
    if (h == NULL || !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        return -1;
    }
    PyErr_Clear();
    *spare = NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(h->args); i++) {
        PyObject *placeholder = PyTuple_GET_ITEM(h->args, i);

        PyTuple_SET_ITEM(h->args, i, Py_NewRef(spare_args[i]));
        Py_DECREF(placeholder);
    }
    rc = cio_loop_push_ready(self, h);
    Py_DECREF(h);
    return rc;
}

int
cio_loop_call_soon(LoopObject *self, PyObject *callback,
                   PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *h = cio_loop_call_soon_impl(self, callback, args, nargs, NULL,
                                          0);

    Py_XDECREF(h);
    return h ? 0 : -1;
}

static PyObject *
loop_call_soon(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    PyObject *context;

    if (cio_parse_callback_args("call_soon", args, nargs, kwnames, 1,
                                &context) < 0) {
        return NULL;
    }
    return cio_loop_call_soon_impl(self, args[0], args + 1, nargs - 1,
                                   context, 0);
}

#if PY_VERSION_HEX >= 0x030E0000
/* 3.14's call_soon_threadsafe returns an events._ThreadSafeHandle, whose
 * lock makes a cancel() from another thread wait while the callback runs
 * (and cancelled() too); code, CPython's tests among it, checks that class.
 * So stdlib's own class is used, and the loop queues a C Handle that runs
 * it: a thread hop pays stdlib's price, call_soon does not. */
static PyObject *
loop_call_soon_threadsafe_py(LoopObject *self, PyObject *callback,
                             PyObject *const *args, Py_ssize_t nargs,
                             PyObject *context)
{
    cio_state *st = self->state;
    PyObject *call_args[4] = {callback, NULL, (PyObject *)self,
                              context ? context : Py_None};
    PyObject *py_handle = NULL, *tb = NULL;
    HandleObject *h = NULL;
    int rc;

    if (cio_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug && loop_check_callback(self, callback,
                                           "call_soon_threadsafe") < 0) {
        return NULL;
    }
    call_args[1] = PyTuple_New(nargs);
    if (call_args[1] == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(call_args[1], i, Py_NewRef(args[i]));
    }
    py_handle = PyObject_Vectorcall(st->thread_safe_handle_type, call_args,
                                    4, NULL);
    Py_DECREF(call_args[1]);
    if (py_handle == NULL) {
        return NULL;
    }
    if (self->debug) {
        /* As stdlib: the stack ends at the caller, not Handle.__init__. */
        tb = PyObject_GetAttr(py_handle, CIO_NAME(st, _source_traceback));
        if (tb == NULL || ((rc = PyObject_IsTrue(tb)) != 0 &&
                           (rc < 0 || PySequence_DelItem(tb, -1) < 0))) {
            goto fail;
        }
        Py_CLEAR(tb);
    }
    h = cio_handle_new_py_runner(self, py_handle);
    if (h == NULL || cio_loop_push_ready(self, h) < 0) {
        goto fail;
    }
    Py_DECREF(h);
    if ((rc = cio_poller_wake(&self->poller)) < 0) {
        Py_DECREF(py_handle);
        return cio_raise_errno(rc);
    }
    return py_handle;
fail:
    Py_XDECREF(h);
    Py_XDECREF(tb);
    Py_DECREF(py_handle);
    return NULL;
}
#endif

static PyObject *
loop_call_soon_threadsafe(LoopObject *self, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;

    if (cio_parse_callback_args("call_soon_threadsafe", args, nargs,
                                kwnames, 1, &context) < 0) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030E0000
    return loop_call_soon_threadsafe_py(self, args[0], args + 1, nargs - 1,
                                        context);
#else
    return cio_loop_call_soon_impl(self, args[0], args + 1, nargs - 1,
                                   context, 1);
#endif
}

static int loop_clock(LoopObject *self, double *now);

static PyObject *
loop_call_at_impl(LoopObject *self, double when, PyObject *callback,
                  PyObject *const *args, Py_ssize_t nargs, PyObject *context,
                  const char *method)
{
    TimerHandleObject *t;

    if (cio_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug && (loop_check_thread(self) < 0 ||
                        loop_check_callback(self, callback, method) < 0)) {
        return NULL;
    }
    t = (TimerHandleObject *)cio_handle_new(
        self, self->state->timer_handle_type, callback, args, nargs, context);
    if (t == NULL) {
        return NULL;
    }
    t->node.when = when;
    if (cio_timer_heap_push(&self->timers, &t->node) < 0) {
        Py_DECREF(t);
        return PyErr_NoMemory();
    }
    Py_INCREF(t);  /* the heap's reference */
    return (PyObject *)t;
}

/* The first argument of call_later/call_at as seconds; None is refused
 * with stdlib's message. */
static int
parse_seconds(PyObject *value, const char *none_message, double *out)
{
    if (value == Py_None) {
        PyErr_SetString(PyExc_TypeError, none_message);
        return -1;
    }
    *out = PyFloat_AsDouble(value);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *
loop_call_later(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    PyObject *context;
    double delay, now;

    if (cio_parse_callback_args("call_later", args, nargs, kwnames, 2,
                                &context) < 0 ||
        parse_seconds(args[0], "delay must not be None", &delay) < 0 ||
        loop_clock(self, &now) < 0) {
        return NULL;
    }
    return loop_call_at_impl(self, now + delay, args[1], args + 2,
                             nargs - 2, context, "call_at");
}

static PyObject *
loop_call_at(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *context, *timer;
    double when;

    if (cio_parse_callback_args("call_at", args, nargs, kwnames, 2,
                                &context) < 0 ||
        parse_seconds(args[0], "when cannot be None", &when) < 0) {
        return NULL;
    }
    timer = loop_call_at_impl(self, when, args[1], args + 2, nargs - 2,
                              context, "call_at");
    if (timer != NULL && PyLong_CheckExact(args[0])) {
        ((TimerHandleObject *)timer)->when_int = Py_NewRef(args[0]);
    }
    return timer;
}

void
cio_loop_unschedule_timer(LoopObject *self, TimerHandleObject *timer)
{
    if (cio_timer_heap_remove(&self->timers, &timer->node) == 0) {
        Py_DECREF(timer);  /* the heap's reference; the caller holds one */
    }
}

static PyObject *
loop_time(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(loop_now());
}

/* Notes whether self.time is still the C method: code patches it on the
 * instance (mock.patch.object, time-faking test tools) or overrides it in
 * a subclass, and stdlib's timers follow. Run when the loop is made and
 * whenever an attribute named "time" is set, so the plain loop's timers
 * never look it up. */
static int
loop_note_time_override(LoopObject *self)
{
    PyObject *time = PyObject_GetAttrString((PyObject *)self, "time");

    if (time == NULL) {
        return -1;
    }
    self->time_overridden =
        !(PyCFunction_Check(time) &&
          PyCFunction_GET_SELF(time) == (PyObject *)self &&
          PyCFunction_GET_FUNCTION(time) == (PyCFunction)loop_time);
    Py_DECREF(time);
    return 0;
}

static int
loop_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    if (PyObject_GenericSetAttr(self, name, value) < 0) {
        return -1;
    }
    if (PyUnicode_Check(name) &&
        PyUnicode_CompareWithASCIIString(name, "time") == 0) {
        return loop_note_time_override((LoopObject *)self);
    }
    return 0;
}

/* The loop's time for its timers: self.time() where that is replaced. */
static int
loop_clock(LoopObject *self, double *now)
{
    PyObject *value;

    if (!self->time_overridden) {
        *now = loop_now();
        return 0;
    }
    value = PyObject_CallMethod((PyObject *)self, "time", NULL);
    if (value == NULL) {
        return -1;
    }
    *now = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return *now == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* module.name, as stdlib's loop reads tasks.Task and futures.Future on
 * each call: code replaces them (test_events' GetEventLoop tests run the
 * Python Task, which 3.14's C Task could not run under their Python
 * running-loop functions). A dict lookup of an interned name. */
static PyObject *
loop_class_from(PyObject *module, PyObject *name)
{
    PyObject *cls = PyDict_GetItemWithError(PyModule_GetDict(module), name);

    if (cls == NULL && !PyErr_Occurred()) {
        PyErr_Format(PyExc_AttributeError, "module %R has no attribute %R",
                     module, name);
    }
    return Py_XNewRef(cls);
}

PyObject *
cio_loop_create_future(LoopObject *self)
{
    cio_state *st = self->state;
    PyObject *args[1] = {(PyObject *)self};
    PyObject *cls = loop_class_from(st->futures_module, CIO_NAME(st, Future));
    PyObject *fut;

    if (cls == NULL) {
        return NULL;
    }
    fut = PyObject_Vectorcall(cls, args, 0, st->kwnames_loop);
    Py_DECREF(cls);
    return fut;
}

static PyObject *
loop_create_future(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return cio_loop_create_future(self);
}

/* create_task(coro, *, name=None, context=None, **kwargs): extra keywords
 * (eager_start and whatever newer Pythons add) go to the Task or factory
 * unchanged, as 3.14's create_task does. */
static PyObject *
loop_create_task(LoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    PyObject *kwargs = NULL, *task = NULL, *name = NULL, *res;
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "create_task() takes 1 positional argument but %zd "
                     "were given", nargs);
        return NULL;
    }
    if (cio_loop_check_closed(self) < 0) {
        return NULL;
    }
    kwargs = PyDict_New();
    if (kwargs == NULL) {
        return NULL;
    }
    for (i = 0; i < nkw; i++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i),
                           args[nargs + i]) < 0) {
            goto done;
        }
    }
    if (self->task_factory == NULL) {
        if (PyDict_SetItemString(kwargs, "loop", (PyObject *)self) < 0) {
            goto done;
        }
        PyObject *cls = loop_class_from(self->state->tasks_module,
                                        CIO_NAME(self->state, Task));
        task = cls ? PyObject_VectorcallDict(cls, args, 1, kwargs) : NULL;
        Py_XDECREF(cls);
        goto done;
    }
    /* Before 3.14 a factory is called without name= (it is set after)
     * and without context= when none was given. */
    if (PY_VERSION_HEX < 0x030E0000) {
        name = PyDict_GetItemString(kwargs, "name");  // borrowed
        Py_XINCREF(name);
        if (name != NULL && PyDict_DelItemString(kwargs, "name") < 0) {
            goto done;
        }
        res = PyDict_GetItemString(kwargs, "context");  // borrowed
        if (res == Py_None &&
            PyDict_DelItemString(kwargs, "context") < 0) {
            goto done;
        }
    }
    {
        PyObject *fargs[2] = {(PyObject *)self, args[0]};
        task = PyObject_VectorcallDict(self->task_factory, fargs, 2, kwargs);
    }
    if (task != NULL && name != NULL && name != Py_None) {
        res = PyObject_CallMethod(task, "set_name", "(O)", name);
        if (res == NULL) {
            Py_CLEAR(task);
        }
        Py_XDECREF(res);
    }
done:
    Py_XDECREF(name);
    Py_DECREF(kwargs);
    return task;
}

static PyObject *
loop_set_task_factory(LoopObject *self, PyObject *factory)
{
    if (factory != Py_None && !PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError,
                        "task factory must be a callable or None");
        return NULL;
    }
    Py_XSETREF(self->task_factory,
               factory == Py_None ? NULL : Py_NewRef(factory));
    Py_RETURN_NONE;
}

static PyObject *
loop_get_task_factory(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->task_factory ? self->task_factory : Py_None);
}

/* ---- running ---------------------------------------------------------- */

/* How long the poll may block: *timeout_ns -1 (no timer) or >= 0. */
static int
loop_poll_timeout_ns(LoopObject *self, int64_t *timeout_ns)
{
    cio_timer_t *next;
    double timeout, now;

    *timeout_ns = 0;
    if (cio_ready_queue_len(&self->ready) || self->stopping) {
        return 0;
    }
    next = cio_timer_heap_peek(&self->timers);
    if (next == NULL) {
        *timeout_ns = -1;
        return 0;
    }
    if (loop_clock(self, &now) < 0) {
        return -1;
    }
    timeout = next->when - now;
    if (!(timeout > 0)) {  /* also catches NaN */
        return 0;
    }
    if (timeout > MAX_POLL_TIMEOUT_S) {
        timeout = MAX_POLL_TIMEOUT_S;
    }
    *timeout_ns = (int64_t)ceil(timeout * 1e9);
    return 0;
}

static int
loop_poll_io(LoopObject *self, int64_t timeout_ns)
{
    cio_poll_event_t events[POLL_BATCH];
    int n;

    /* With nothing watched, a non-blocking poll could only report wake-ups,
     * and their callbacks are already queued: skip the syscall. */
    if (timeout_ns == 0 && self->fds_watched == 0) {
        return 0;
    }
    /* A poll that cannot block keeps the GIL: releasing and taking it
     * back costs more than the system call, and no other thread could
     * use the moment. */
    if (timeout_ns == 0) {
        n = cio_poller_poll(&self->poller, events, POLL_BATCH, 0);
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        n = cio_poller_poll(&self->poller, events, POLL_BATCH, timeout_ns);
        Py_END_ALLOW_THREADS
    }
    if (n == -EINTR) {
        return PyErr_CheckSignals();
    }
    if (n < 0) {
        cio_raise_errno(n);
        return -1;
    }
    return cio_loop_dispatch_io(self, events, n);
}

/* Moves due timers to the ready queue; the heap's reference moves too. */
static int
loop_queue_due_timers(LoopObject *self)
{
    double end_time;
    cio_timer_t *node;

    if (loop_clock(self, &end_time) < 0) {
        return -1;
    }
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15: at least one ulp of now, so that a clock whose values are too
     * large for its resolution to show (a patched time()) still moves
     * end_time past a timer due now. */
    end_time += fmax(self->state->clock_resolution,
                     nextafter(end_time, INFINITY) - end_time);
#else
    end_time += self->state->clock_resolution;
#endif

    while ((node = cio_timer_heap_peek(&self->timers)) != NULL) {
        TimerHandleObject *t;
        if (node->when >= end_time) {
            break;
        }
        cio_timer_heap_pop(&self->timers);
        t = (TimerHandleObject *)((char *)node -
                                  offsetof(TimerHandleObject, node));
        if (cio_ready_queue_push(&self->ready, t) < 0) {
            Py_DECREF(t);
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

/* stdlib's _format_handle: a Task's step reads better as the Task. */
static PyObject *
loop_format_slow_handle(HandleObject *h)
{
    PyObject *owner, *callback = h->callback;  // borrowed

    if (h->runs_py_handle) {
        PyObject *r, *py_callback = PyObject_GetAttrString(callback,
                                                           "_callback");
        if (py_callback == NULL) {
            return NULL;
        }
        owner = PyObject_GetAttrString(py_callback, "__self__");
        Py_DECREF(py_callback);
        if (owner != NULL) {
            r = PyObject_IsInstance(owner, h->loop->state->task_type) > 0 ?
                PyObject_Repr(owner) : NULL;
            Py_DECREF(owner);
            if (r != NULL) {
                return r;
            }
        }
        PyErr_Clear();
        return PyObject_Str(callback);
    }
    if (callback != NULL &&
        (owner = PyObject_GetAttrString(callback, "__self__")) != NULL) {
        int is_task = PyObject_IsInstance(owner, h->loop->state->task_type);
        if (is_task > 0) {
            PyObject *r = PyObject_Repr(owner);
            Py_DECREF(owner);
            return r;
        }
        Py_DECREF(owner);
        if (is_task < 0) {
            return NULL;
        }
    }
    PyErr_Clear();
    return PyObject_Str((PyObject *)h);
}

static int
loop_run_handle_debug(LoopObject *self, HandleObject *h)
{
    double t0, dt;
    int rc;

    Py_XSETREF(self->current_handle, Py_NewRef((PyObject *)h));
    t0 = loop_now();
    rc = cio_handle_run(h);
    dt = loop_now() - t0;
    Py_CLEAR(self->current_handle);
    if (rc == 0 && dt >= self->slow_callback_duration) {
        PyObject *desc = loop_format_slow_handle(h), *res;
        if (desc == NULL) {
            return -1;
        }
        res = PyObject_CallMethod(self->state->logger, "warning", "sOd",
                                  "Executing %s took %.3f seconds", desc, dt);
        Py_DECREF(desc);
        Py_XDECREF(res);
        rc = res ? 0 : -1;
    }
    return rc;
}

static int
loop_run_ready(LoopObject *self)
{
    size_t ntodo = cio_ready_queue_len(&self->ready);

    while (ntodo--) {
        HandleObject *h = cio_ready_queue_pop(&self->ready);
        int rc = 0;

        if (!h->cancelled) {
            rc = self->debug ? loop_run_handle_debug(self, h)
                             : cio_handle_run(h);
        }
        Py_DECREF(h);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static int
loop_run_once(LoopObject *self)
{
    int64_t timeout_ns;

    if (loop_poll_timeout_ns(self, &timeout_ns) < 0 ||
        loop_poll_io(self, timeout_ns) < 0) {
        return -1;
    }
    if (loop_queue_due_timers(self) < 0) {
        return -1;
    }
    return loop_run_ready(self);
}

static int
loop_check_running(LoopObject *self)
{
    PyObject *running;

    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "This event loop is already running");
        return -1;
    }
    running = PyObject_CallMethodNoArgs(self->state->events_module,
                                        CIO_NAME(self->state,
                                                 _get_running_loop));
    if (running == NULL) {
        return -1;
    }
    Py_DECREF(running);
    if (running != Py_None) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot run the event loop while another loop is "
                        "running");
        return -1;
    }
    return 0;
}

/* Allocates nothing (a vectorcall of asyncio's C setter with an interned
 * name), so that clearing the running loop cannot fail for want of memory
 * and leave the thread believing a loop still runs. */
static int
loop_set_running_loop(LoopObject *self, PyObject *loop)
{
    PyObject *res = PyObject_CallMethodOneArg(
        self->state->events_module, CIO_NAME(self->state, _set_running_loop),
        loop);

    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* Makes this the running loop; loop_run_cleanup undoes it, also when this
 * fails half-way. The caller has checked the loop may run. */
static int
loop_run_setup(LoopObject *self)
{
    if (cio_loop_set_coro_tracking(self, self->debug) < 0) {
        return -1;
    }
    self->thread_id = PyThread_get_thread_ident();
    self->running = 1;
    if (cio_loop_install_asyncgen_hooks(self) < 0 ||
        loop_set_running_loop(self, (PyObject *)self) < 0) {
        return -1;
    }
    return 0;
}

/* A step of loop_run_cleanup failed: its exception is the one raised
 * unless one already was, which it must not hide. */
static void
loop_run_cleanup_failed(LoopObject *self, PyObject **exc)
{
    if (*exc == NULL) {
        *exc = cio_fetch_exception();
    }
    else {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

/* Undoes loop_run_setup, every step even when one fails; keeps an
 * exception already raised on top. */
static void
loop_run_cleanup(LoopObject *self)
{
    PyObject *exc = cio_fetch_exception();

    self->stopping = 0;
    self->running = 0;
    self->thread_id = 0;
    if (loop_set_running_loop(self, Py_None) < 0) {
        loop_run_cleanup_failed(self, &exc);
    }
    if (cio_loop_set_coro_tracking(self, 0) < 0) {
        loop_run_cleanup_failed(self, &exc);
    }
    if (cio_loop_restore_asyncgen_hooks(self) < 0) {
        loop_run_cleanup_failed(self, &exc);
    }
    if (exc != NULL) {
        cio_restore_exception(exc);
    }
}

static PyObject *
loop_run_forever(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    int rc;

    if (cio_loop_check_closed(self) < 0 || loop_check_running(self) < 0) {
        return NULL;
    }
    rc = loop_run_setup(self);
    while (rc == 0) {
        rc = loop_run_once(self);
        if (self->stopping) {
            break;
        }
    }
    loop_run_cleanup(self);
    if (rc < 0 || PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The done callback of run_until_complete's future: stop the loop, except
 * for SystemExit/KeyboardInterrupt, which stop it by propagating. */
static PyObject *
loop_run_until_complete_cb(LoopObject *self, PyObject *fut)
{
    PyObject *cancelled = PyObject_CallMethod(fut, "cancelled", NULL);
    int is_cancelled;

    if (cancelled == NULL) {
        return NULL;
    }
    is_cancelled = PyObject_IsTrue(cancelled);
    Py_DECREF(cancelled);
    if (!is_cancelled) {
        PyObject *exc = PyObject_CallMethod(fut, "exception", NULL);
        int is_exit;
        if (exc == NULL) {
            return NULL;
        }
        is_exit = exc != Py_None && cio_is_exit_exception(exc);
        Py_DECREF(exc);
        if (is_exit) {
            Py_RETURN_NONE;
        }
    }
    /* stdlib stops the future's own loop, which is this one. */
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyMethodDef run_until_complete_cb_def = {
    "_run_until_complete_cb", (PyCFunction)loop_run_until_complete_cb,
    METH_O, NULL,
};

static PyObject *
loop_run_until_complete(LoopObject *self, PyObject *future)
{
    cio_state *st = self->state;
    PyObject *fut = NULL, *cb = NULL, *res = NULL, *done = NULL;
    PyObject *args[2];
    int new_task, rc;

    if (cio_loop_check_closed(self) < 0 || loop_check_running(self) < 0) {
        return NULL;
    }
    res = PyObject_CallOneArg(st->isfuture, future);
    if (res == NULL) {
        return NULL;
    }
    new_task = res == Py_False;
    Py_CLEAR(res);
    args[0] = future;
    args[1] = (PyObject *)self;
    fut = PyObject_Vectorcall(st->ensure_future, args, 1, st->kwnames_loop);
    if (fut == NULL) {
        return NULL;
    }
    if (new_task &&
        PyObject_SetAttrString(fut, "_log_destroy_pending", Py_False) < 0) {
        goto done;
    }
    cb = PyCFunction_New(&run_until_complete_cb_def, (PyObject *)self);
    if (cb == NULL) {
        goto done;
    }
    res = PyObject_CallMethod(fut, "add_done_callback", "(O)", cb);
    if (res == NULL) {
        goto done;
    }
    Py_CLEAR(res);

    res = loop_run_forever(self, NULL);
    if (res == NULL && new_task) {
        /* The coroutine raised a BaseException: consume it so the task
         * does not log it, the caller has no access to the task. */
        PyObject *exc = cio_fetch_exception();
        done = PyObject_CallMethod(fut, "done", NULL);
        if (done == Py_True) {
            PyObject *c = PyObject_CallMethod(fut, "cancelled", NULL);
            if (c == Py_False) {
                Py_XDECREF(PyObject_CallMethod(fut, "exception", NULL));
            }
            Py_XDECREF(c);
        }
        PyErr_Clear();
        Py_CLEAR(done);
        cio_restore_exception(exc);
    }
    {
        PyObject *exc = res ? NULL : cio_fetch_exception();
        PyObject *r = PyObject_CallMethod(fut, "remove_done_callback", "(O)",
                                          cb);
        Py_XDECREF(r);
        if (exc != NULL) {
            PyErr_Clear();
            cio_restore_exception(exc);
        }
        else if (r == NULL) {
            Py_CLEAR(res);
        }
    }
    if (res == NULL) {
        goto done;
    }
    Py_CLEAR(res);
    done = PyObject_CallMethod(fut, "done", NULL);
    if (done == NULL) {
        goto done;
    }
    rc = PyObject_IsTrue(done);
    if (rc == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Event loop stopped before Future completed.");
    }
    else if (rc > 0) {
        res = PyObject_CallMethod(fut, "result", NULL);
    }
done:
    Py_XDECREF(done);
    Py_XDECREF(cb);
    Py_XDECREF(fut);
    return res;
}

static PyObject *
loop_stop(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *
loop_is_running(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->running);
}

static PyObject *
loop_is_closed(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closed);
}

/* Drops every queued callback and timer; dropping them may run arbitrary
 * __del__ code, so each is unlinked before its reference goes. */
static void
loop_clear_queues(LoopObject *self)
{
    cio_timer_t *node;
    HandleObject *h;

    while ((h = cio_ready_queue_pop(&self->ready)) != NULL) {
        Py_DECREF(h);
    }
    while ((node = cio_timer_heap_pop(&self->timers)) != NULL) {
        Py_DECREF((char *)node - offsetof(TimerHandleObject, node));
    }
}

static PyObject *
loop_close(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot close a running event loop");
        return NULL;
    }
    if (self->closed) {
        Py_RETURN_NONE;
    }
    if (self->debug) {
        PyObject *r = PyObject_CallMethod(self->state->logger, "debug", "sO",
                                          "Close %r", (PyObject *)self);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    /* Before the pipe closes: Python must stop writing signals into it. */
    if (cio_loop_remove_signal_handlers(self) < 0) {
        return NULL;
    }
    self->closed = 1;
    loop_clear_queues(self);
    cio_loop_fds_clear(self);
    cio_loop_close_signal_pipe(self);
    cio_loop_release_children(self);
    if (self->poller_open) {
        cio_poller_close(&self->poller);
        self->poller_open = 0;
    }
    self->executor_shutdown_called = 1;
    if (cio_loop_shutdown_executor_nowait(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_get_debug(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->debug);
}

/* What stdlib's loop shows in _scheduled, _ready and its selector's map,
 * for soak tests and debugging: counts, since the structures are C. */
static PyObject *
loop_internal_counts(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{snsnsnsn}", "timers", (Py_ssize_t)self->timers.len,
                         "ready", (Py_ssize_t)self->ready.len,
                         "watched_fds", (Py_ssize_t)self->fds_watched,
                         "children", self->children == NULL ? (Py_ssize_t)0
                                     : PyDict_GET_SIZE(self->children));
}

static PyObject *
loop_set_debug(LoopObject *self, PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);

    if (on < 0) {
        return NULL;
    }
    self->debug = (char)on;
    if (self->running) {
        /* As stdlib: switch origin tracking from inside the loop. */
        PyObject *setter = PyObject_GetAttrString(
            (PyObject *)self, "_set_coroutine_origin_tracking");
        PyObject *h = setter ? cio_loop_call_soon_impl(
                                   self, setter, &enabled, 1, NULL, 1)
                             : NULL;
        Py_XDECREF(setter);
        if (h == NULL) {
            return NULL;
        }
        Py_DECREF(h);
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_repr(LoopObject *self)
{
    return PyUnicode_FromFormat("<%s running=%s closed=%s debug=%s>",
                                _PyType_Name(Py_TYPE(self)),
                                self->running ? "True" : "False",
                                self->closed ? "True" : "False",
                                self->debug ? "True" : "False");
}

/* ---- object protocol ---------------------------------------------------- */

static PyObject *
loop_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    LoopObject *self;
    PyObject *debug;
    int rc;

    self = (LoopObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->state = cio_get_state_by_type(type);
    if (self->state == NULL) {
        goto fail;
    }
    cio_loop_track(self);
    cio_timer_heap_init(&self->timers);
    cio_ready_queue_init(&self->ready);
    self->slow_callback_duration = 0.1;
    self->signal_read_fd = self->signal_write_fd = -1;
    rc = cio_poller_open(&self->poller);
    if (rc < 0) {
        cio_raise_errno(rc);
        goto fail;
    }
    self->poller_open = 1;
    self->asyncgens = PyObject_CallNoArgs(self->state->weakset_type);
    self->unix_server_sockets = PyDict_New();
    self->signal_handlers = PyDict_New();
    self->children = PyDict_New();
    if (self->asyncgens == NULL || self->unix_server_sockets == NULL ||
        self->signal_handlers == NULL || self->children == NULL) {
        goto fail;
    }
    debug = PyObject_CallNoArgs(self->state->is_debug_mode);
    if (debug == NULL) {
        goto fail;
    }
    self->debug = (char)PyObject_IsTrue(debug);
    Py_DECREF(debug);
    if (loop_note_time_override(self) < 0) {  /* a subclass's time() */
        goto fail;
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static int
loop_init(PyObject *self, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Loop() takes no arguments");
        return -1;
    }
    return 0;
}

static int
loop_traverse(LoopObject *self, visitproc visit, void *arg)
{
    size_t i;

    Py_VISIT(Py_TYPE(self));
    for (i = 0; i < self->ready.len; i++) {
        Py_VISIT((PyObject *)self->ready.items[(self->ready.head + i) &
                                               (self->ready.cap - 1)]);
    }
    for (i = 0; i < self->timers.len; i++) {
        Py_VISIT((PyObject *)((char *)self->timers.items[i] -
                              offsetof(TimerHandleObject, node)));
    }
    if (cio_loop_fds_traverse(self, visit, arg) != 0) {
        return -1;
    }
    Py_VISIT(self->exception_handler);
    Py_VISIT(self->task_factory);
    Py_VISIT(self->default_executor);
    Py_VISIT(self->asyncgens);
    Py_VISIT(self->unix_server_sockets);
    Py_VISIT(self->signal_handlers);
    Py_VISIT(self->children);
    Py_VISIT(self->old_agen_hooks);
    Py_VISIT(self->current_handle);
    Py_VISIT(self->ssl_read_view);
    return 0;
}

static int
loop_clear(LoopObject *self)
{
    loop_clear_queues(self);
    cio_loop_fds_clear(self);
    Py_CLEAR(self->exception_handler);
    Py_CLEAR(self->task_factory);
    Py_CLEAR(self->default_executor);
    Py_CLEAR(self->asyncgens);
    Py_CLEAR(self->unix_server_sockets);
    Py_CLEAR(self->signal_handlers);
    Py_CLEAR(self->children);
    Py_CLEAR(self->old_agen_hooks);
    Py_CLEAR(self->current_handle);
    Py_CLEAR(self->ssl_read_view);
    return 0;
}

/* stdlib's BaseEventLoop.__del__: warn about and close an unclosed loop. */
static void
loop_finalize(LoopObject *self)
{
    PyObject *exc, *r;

    if (self->closed || self->state == NULL) {
        return;
    }
    exc = cio_fetch_exception();
    if (PyErr_ResourceWarning((PyObject *)self, 1, "unclosed event loop %R",
                              (PyObject *)self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    if (!self->running) {
        r = loop_close(self, NULL);
        if (r == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        Py_XDECREF(r);
    }
    cio_restore_exception(exc);
}

static void
loop_dealloc(LoopObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, &self->weakreflist)) {
        return;
    }
    cio_loop_untrack(self);
    loop_clear(self);
    if (self->poller_open) {
        cio_poller_close(&self->poller);
    }
    cio_loop_close_signal_pipe(self);
    cio_timer_heap_free(&self->timers);
    cio_ready_queue_free(&self->ready);
    PyMem_Free(self->fds);
    free(self->read_buffer);  /* posix_memalign'd: transport_write.c */
    cio_dealloc_end((PyObject *)self);
}

static PyObject *
loop_get_clock_resolution(LoopObject *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(self->state->clock_resolution);
}

static PyObject *
loop_get_debug_attr(LoopObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->debug);
}

static PyMethodDef loop_methods[] = {
    {"run_forever", (PyCFunction)loop_run_forever, METH_NOARGS,
     "run_forever($self, /)\n--\n\nRun until stop() is called."},
    {"run_until_complete", (PyCFunction)loop_run_until_complete, METH_O,
     "run_until_complete($self, future, /)\n--\n\nRun until the future "
     "(a coroutine is wrapped in a Task) is done; return its result."},
    {"stop", (PyCFunction)loop_stop, METH_NOARGS,
     "stop($self, /)\n--\n\nStop after the current iteration."},
    {"is_running", (PyCFunction)loop_is_running, METH_NOARGS,
     "is_running($self, /)\n--\n\nReturn True while the loop runs."},
    {"is_closed", (PyCFunction)loop_is_closed, METH_NOARGS,
     "is_closed($self, /)\n--\n\nReturn True once the loop was closed."},
    {"close", (PyCFunction)loop_close, METH_NOARGS,
     "close($self, /)\n--\n\nDrop pending callbacks and close the loop."},
    {"time", (PyCFunction)loop_time, METH_NOARGS,
     "time($self, /)\n--\n\nReturn the loop's time (time.monotonic())."},
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon($self, callback, /, *args, context=None)\n--\n\n"
     "Schedule callback(*args) for the next iteration; return a Handle."},
    {"call_soon_threadsafe",
     (PyCFunction)(void (*)(void))loop_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon_threadsafe($self, callback, /, *args, context=None)\n--\n\n"
     "Like call_soon(), callable from any thread; wakes the loop."},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later,
     METH_FASTCALL | METH_KEYWORDS,
     "call_later($self, delay, callback, /, *args, context=None)\n--\n\n"
     "Schedule callback(*args) after delay seconds; return a TimerHandle."},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at,
     METH_FASTCALL | METH_KEYWORDS,
     "call_at($self, when, callback, /, *args, context=None)\n--\n\n"
     "Schedule callback(*args) at loop time when; return a TimerHandle."},
    {"create_future", (PyCFunction)loop_create_future, METH_NOARGS,
     "create_future($self, /)\n--\n\nReturn an asyncio.Future on this "
     "loop."},
    {"create_task", (PyCFunction)(void (*)(void))loop_create_task,
     METH_FASTCALL | METH_KEYWORDS,
     "create_task($self, coro, /, *, name=None, context=None, **kwargs)\n"
     "--\n\nWrap a coroutine in a Task (or the task factory's object)."},
    {"set_task_factory", (PyCFunction)loop_set_task_factory, METH_O,
     "set_task_factory($self, factory, /)\n--\n\nSet the factory "
     "create_task() uses; None restores asyncio.Task."},
    {"get_task_factory", (PyCFunction)loop_get_task_factory, METH_NOARGS,
     "get_task_factory($self, /)\n--\n\nReturn the task factory or None."},
    {"_internal_counts", (PyCFunction)loop_internal_counts, METH_NOARGS,
     "_internal_counts($self, /)\n--\n\nThe loop's timers (cancelled ones "
     "included until they are dropped), ready Handles, watched fds and "
     "watched children, as a dict."},
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS,
     "get_debug($self, /)\n--\n\nReturn the debug mode flag."},
    {"set_debug", (PyCFunction)loop_set_debug, METH_O,
     "set_debug($self, enabled, /)\n--\n\nSet the debug mode flag."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef loop_members[] = {
    {"slow_callback_duration", T_DOUBLE,
     offsetof(LoopObject, slow_callback_duration), 0,
     "Callbacks slower than this many seconds are logged in debug mode."},
    {"_default_executor", T_OBJECT,
     offsetof(LoopObject, default_executor), 0, NULL},
    /* 3.13's create_unix_server records here what _stop_serving removes. */
    {"_unix_server_sockets", T_OBJECT,
     offsetof(LoopObject, unix_server_sockets), READONLY, NULL},
    {"_asyncgens", T_OBJECT, offsetof(LoopObject, asyncgens), READONLY,
     NULL},
    {"_current_handle", T_OBJECT, offsetof(LoopObject, current_handle),
     READONLY, NULL},
    {"_signal_handlers", T_OBJECT, offsetof(LoopObject, signal_handlers),
     READONLY, NULL},
    {"_closed", T_BOOL, offsetof(LoopObject, closed), READONLY, NULL},
    {"_stopping", T_BOOL, offsetof(LoopObject, stopping), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(LoopObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef loop_getset[] = {
    {"_clock_resolution", (getter)loop_get_clock_resolution, NULL, NULL,
     NULL},
    {"_debug", (getter)loop_get_debug_attr, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* The method table is assembled at import from this file's methods and
 * those of the other loop_*.c files. */
static PyMethodDef *
loop_all_methods(void)
{
    static PyMethodDef all[160];
    PyMethodDef *tables[] = {loop_methods, cio_loop_fd_methods,
                             cio_loop_server_methods,
                             cio_loop_sock_methods,
                             cio_loop_resolve_methods,
                             cio_loop_sendfile_methods,
                             cio_loop_connect_methods,
                             cio_loop_listen_methods,
                             cio_loop_datagram_methods,
                             cio_loop_pipe_methods,
                             cio_loop_subprocess_methods,
                             cio_loop_signal_methods,
                             cio_loop_process_methods,
                             cio_loop_error_methods,
                             cio_loop_lifecycle_methods};
    size_t n = 0, t;

    if (all[0].ml_name != NULL) {
        return all;
    }
    for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (PyMethodDef *m = tables[t]; m->ml_name != NULL; m++) {
            assert(n + 1 < sizeof(all) / sizeof(all[0]));
            all[n++] = *m;
        }
    }
    return all;
}

static PyType_Slot loop_slots[] = {
    {Py_tp_doc, "The casyncio event loop: asyncio's loop, written in C."},
    {Py_tp_new, loop_new},
    {Py_tp_setattro, loop_setattro},
    {Py_tp_init, loop_init},
    {Py_tp_dealloc, loop_dealloc},
    {Py_tp_finalize, loop_finalize},
    {Py_tp_traverse, loop_traverse},
    {Py_tp_clear, loop_clear},
    {Py_tp_repr, loop_repr},
    {Py_tp_methods, NULL},  /* filled in by cio_loop_spec_prepare */
    {Py_tp_members, loop_members},
    {Py_tp_getset, loop_getset},
    {0, NULL},
};

PyType_Spec cio_loop_spec = {
    .name = "casyncio._casyncio.Loop",
    .basicsize = sizeof(LoopObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = loop_slots,
};

static void
fill_method_slot(void)
{
    for (PyType_Slot *s = loop_slots; s->slot != 0; s++) {
        if (s->slot == Py_tp_methods) {
            s->pfunc = loop_all_methods();
        }
    }
}

/* Once per process: interpreters with GILs of their own may import the
 * module at the same time, and the table is shared. */
void
cio_loop_spec_prepare(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, fill_method_slot);
}
