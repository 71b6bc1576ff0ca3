/* What the loop sets up and tears down around running: coroutine origin
 * tracking, async generator hooks and their shutdown, and the default
 * executor (run_in_executor and its shutdown). */
#include "casyncio.h"

/* asyncio.constants.DEBUG_STACK_DEPTH */
#define DEBUG_STACK_DEPTH 10

static PyObject *
sys_call(LoopObject *self, const char *name, PyObject *arg)
{
    PyObject *fn = PyObject_GetAttrString(self->state->sys_module, name);
    PyObject *res;

    if (fn == NULL) {
        return NULL;
    }
    res = arg ? PyObject_CallOneArg(fn, arg) : PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    return res;
}

int
cio_loop_set_coro_tracking(LoopObject *self, int enabled)
{
    PyObject *res, *depth;

    if (!enabled == !self->coro_tracking_enabled) {
        return 0;
    }
    if (enabled) {
        res = sys_call(self, "get_coroutine_origin_tracking_depth", NULL);
        if (res == NULL) {
            return -1;
        }
        self->coro_tracking_saved_depth = (int)PyLong_AsLong(res);
        Py_DECREF(res);
        depth = PyLong_FromLong(DEBUG_STACK_DEPTH);
    }
    else {
        depth = PyLong_FromLong(self->coro_tracking_saved_depth);
    }
    if (depth == NULL) {
        return -1;
    }
    res = sys_call(self, "set_coroutine_origin_tracking_depth", depth);
    Py_DECREF(depth);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    self->coro_tracking_enabled = (char)enabled;
    return 0;
}

static PyObject *
loop_set_coro_tracking_method(LoopObject *self, PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);

    if (on < 0 || cio_loop_set_coro_tracking(self, on) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

int
cio_loop_install_asyncgen_hooks(LoopObject *self)
{
    PyObject *setter = NULL, *kwargs = NULL, *firstiter = NULL;
    PyObject *finalizer = NULL, *res = NULL;

    Py_XSETREF(self->old_agen_hooks,
               sys_call(self, "get_asyncgen_hooks", NULL));
    if (self->old_agen_hooks == NULL) {
        return -1;
    }
    setter = PyObject_GetAttrString(self->state->sys_module,
                                    "set_asyncgen_hooks");
    firstiter = PyObject_GetAttrString((PyObject *)self,
                                       "_asyncgen_firstiter_hook");
    finalizer = PyObject_GetAttrString((PyObject *)self,
                                       "_asyncgen_finalizer_hook");
    if (setter && firstiter && finalizer) {
        kwargs = Py_BuildValue("{sOsO}", "firstiter", firstiter,
                               "finalizer", finalizer);
    }
    if (kwargs != NULL) {
        res = PyObject_Call(setter, self->state->empty_tuple, kwargs);
    }
    Py_XDECREF(setter);
    Py_XDECREF(firstiter);
    Py_XDECREF(finalizer);
    Py_XDECREF(kwargs);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

int
cio_loop_restore_asyncgen_hooks(LoopObject *self)
{
    PyObject *setter, *res = NULL, *hooks = self->old_agen_hooks;

    if (hooks == NULL) {
        return 0;
    }
    self->old_agen_hooks = NULL;
    setter = PyObject_GetAttrString(self->state->sys_module,
                                    "set_asyncgen_hooks");
    if (setter != NULL) {
        res = PyObject_CallObject(setter, hooks);
        Py_DECREF(setter);
    }
    Py_DECREF(hooks);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

static PyObject *
loop_asyncgen_firstiter_hook(LoopObject *self, PyObject *agen)
{
    if (self->asyncgens_shutdown_called &&
        PyErr_ResourceWarning((PyObject *)self, 1,
                              "asynchronous generator %R was scheduled "
                              "after loop.shutdown_asyncgens() call",
                              agen) < 0) {
        return NULL;
    }
    return PyObject_CallMethod(self->asyncgens, "add", "(O)", agen);
}

static PyObject *
loop_asyncgen_finalizer_hook(LoopObject *self, PyObject *agen)
{
    PyObject *res, *aclose, *create_task, *h;

    res = PyObject_CallMethod(self->asyncgens, "discard", "(O)", agen);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    if (self->closed) {
        Py_RETURN_NONE;
    }
    aclose = PyObject_CallMethod(agen, "aclose", NULL);
    if (aclose == NULL) {
        return NULL;
    }
    create_task = PyObject_GetAttrString((PyObject *)self, "create_task");
    h = create_task ? cio_loop_call_soon_impl(self, create_task, &aclose, 1,
                                              NULL, 1)
                    : NULL;
    Py_XDECREF(create_task);
    Py_DECREF(aclose);
    if (h == NULL) {
        return NULL;
    }
    Py_DECREF(h);
    Py_RETURN_NONE;
}

/* Done callback of shutdown_asyncgens' gather: report each generator whose
 * aclose() failed, then resolve the future the caller awaits. Bound with
 * functools.partial to (loop, generators, outer future). */
static PyObject *
loop_asyncgens_closed(LoopObject *self, PyObject *const *args,
                      Py_ssize_t nargs)
{
    PyObject *agens, *outer, *gathered, *results = NULL, *res;
    Py_ssize_t i;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "expected 3 arguments");
        return NULL;
    }
    agens = args[0];
    outer = args[1];
    gathered = args[2];
    results = PyObject_CallMethod(gathered, "result", NULL);
    if (results == NULL) {
        goto resolve;  /* cancelled: nothing to report */
    }
    for (i = 0; i < PyList_GET_SIZE(results); i++) {
        PyObject *result = PyList_GET_ITEM(results, i);  // borrowed
        PyObject *agen = PyList_GET_ITEM(agens, i);      // borrowed
        PyObject *ctx;
        if (!PyObject_TypeCheck(result, (PyTypeObject *)PyExc_Exception)) {
            continue;
        }
        ctx = Py_BuildValue(
            "{sNsOsO}", "message",
            PyUnicode_FromFormat("an error occurred during closing of "
                                 "asynchronous generator %R", agen),
            "exception", result, "asyncgen", agen);
        if (ctx == NULL || cio_loop_report(self, ctx) < 0) {
            Py_XDECREF(ctx);
            Py_DECREF(results);
            return NULL;
        }
        Py_DECREF(ctx);
    }
    Py_DECREF(results);
resolve:
    PyErr_Clear();
    res = PyObject_CallFunctionObjArgs(
        self->state->set_result_unless_cancelled, outer, Py_None, NULL);
    Py_XDECREF(res);
    return res ? Py_NewRef(Py_None) : NULL;
}

/* shutdown_asyncgens' work, once awaited: a future that completes when
 * every generator's aclose() has finished. */
static PyObject *
asyncgens_shutdown_start(LoopObject *self)
{
    cio_state *st = self->state;
    PyObject *outer, *agens = NULL, *tasks = NULL, *gathered = NULL;
    PyObject *done_cb = NULL, *method = NULL, *res = NULL;
    Py_ssize_t i, n;

    self->asyncgens_shutdown_called = 1;
    outer = cio_loop_create_future(self);
    if (outer == NULL) {
        return NULL;
    }
    agens = PySequence_List(self->asyncgens);
    if (agens == NULL) {
        goto fail;
    }
    n = PyList_GET_SIZE(agens);
    if (n == 0) {
        res = PyObject_CallMethod(outer, "set_result", "(O)", Py_None);
        goto done;
    }
    res = PyObject_CallMethod(self->asyncgens, "clear", NULL);
    if (res == NULL) {
        goto fail;
    }
    Py_CLEAR(res);
    tasks = PyTuple_New(n);
    if (tasks == NULL) {
        goto fail;
    }
    for (i = 0; i < n; i++) {
        PyObject *args[2] = {NULL, (PyObject *)self};
        PyObject *task;
        args[0] = PyObject_CallMethod(PyList_GET_ITEM(agens, i), "aclose",
                                      NULL);
        if (args[0] == NULL) {
            goto fail;
        }
        task = PyObject_Vectorcall(st->ensure_future, args, 1,
                                   st->kwnames_loop);
        Py_DECREF(args[0]);
        if (task == NULL) {
            goto fail;
        }
        PyTuple_SET_ITEM(tasks, i, task);
    }
    {
        PyObject *kw = Py_BuildValue("{sO}", "return_exceptions", Py_True);
        gathered = kw ? PyObject_Call(st->gather, tasks, kw) : NULL;
        Py_XDECREF(kw);
    }
    method = PyObject_GetAttrString((PyObject *)self, "_asyncgens_closed");
    if (gathered == NULL || method == NULL) {
        goto fail;
    }
    done_cb = PyObject_CallFunctionObjArgs(st->partial, method, agens, outer,
                                           NULL);
    if (done_cb == NULL) {
        goto fail;
    }
    res = PyObject_CallMethod(gathered, "add_done_callback", "(O)", done_cb);
done:
    Py_XDECREF(agens);
    Py_XDECREF(tasks);
    Py_XDECREF(gathered);
    Py_XDECREF(method);
    Py_XDECREF(done_cb);
    if (res == NULL) {
        Py_CLEAR(outer);
    }
    Py_XDECREF(res);
    return outer;
fail:
    res = NULL;
    goto done;
}

/* ---- the default executor ------------------------------------------------ */

static PyObject *
loop_run_in_executor(LoopObject *self, PyObject *const *args,
                     Py_ssize_t nargs)
{
    cio_state *st = self->state;
    PyObject *executor, *submit, *cfut, *res;
    PyObject *wrap_args[2];

    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError,
                        "run_in_executor() missing required arguments "
                        "'executor' and 'func'");
        return NULL;
    }
    if (cio_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug) {
        PyObject *h = NULL;
        /* _check_callback's rules; reuse call_soon's checks on a probe
         * would schedule it, so test the same predicates here. */
        if (!PyCallable_Check(args[1])) {
            PyErr_Format(PyExc_TypeError,
                         "a callable object was expected by "
                         "run_in_executor(), got %R", args[1]);
            return NULL;
        }
        res = PyObject_CallOneArg(st->iscoroutinefunction, args[1]);
        if (res == NULL) {
            return NULL;
        }
        h = res;
        if (PyObject_IsTrue(h) > 0 ||
            PyObject_IsInstance(args[1], (PyObject *)&PyCoro_Type) > 0) {
            Py_DECREF(h);
            PyErr_SetString(PyExc_TypeError,
                            "coroutines cannot be used with "
                            "run_in_executor()");
            return NULL;
        }
        Py_DECREF(h);
    }
    executor = args[0];
    if (executor == Py_None) {
        if (self->executor_shutdown_called) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Executor shutdown has been called");
            return NULL;
        }
        if (self->default_executor == NULL) {
            PyObject *kw = Py_BuildValue("{ss}", "thread_name_prefix",
                                         "asyncio");
            self->default_executor =
                kw ? PyObject_Call(st->thread_pool_executor,
                                   st->empty_tuple, kw)
                   : NULL;
            Py_XDECREF(kw);
            if (self->default_executor == NULL) {
                return NULL;
            }
        }
        executor = self->default_executor;
    }
    submit = PyObject_GetAttrString(executor, "submit");
    if (submit == NULL) {
        return NULL;
    }
    cfut = PyObject_Vectorcall(submit, args + 1, nargs - 1, NULL);
    Py_DECREF(submit);
    if (cfut == NULL) {
        return NULL;
    }
    wrap_args[0] = cfut;
    wrap_args[1] = (PyObject *)self;
    res = PyObject_Vectorcall(st->wrap_future, wrap_args, 1,
                              st->kwnames_loop);
    Py_DECREF(cfut);
    return res;
}

static PyObject *
loop_set_default_executor(LoopObject *self, PyObject *executor)
{
    int ok = PyObject_IsInstance(executor,
                                 self->state->thread_pool_executor);

    if (ok < 0) {
        return NULL;
    }
    if (!ok) {
        PyErr_SetString(PyExc_TypeError,
                        "executor must be ThreadPoolExecutor instance");
        return NULL;
    }
    Py_XSETREF(self->default_executor, Py_NewRef(executor));
    Py_RETURN_NONE;
}

int
cio_loop_shutdown_executor_nowait(LoopObject *self)
{
    PyObject *executor = self->default_executor, *res;

    if (executor == NULL) {
        return 0;
    }
    self->default_executor = NULL;
    res = PyObject_CallMethod(executor, "shutdown", "(O)", Py_False);
    Py_DECREF(executor);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* Runs in a helper thread: stdlib's _do_shutdown. */
static PyObject *
loop_do_shutdown(LoopObject *self, PyObject *future)
{
    PyObject *executor = Py_XNewRef(self->default_executor);
    PyObject *res, *h = NULL, *setter, *exc;
    PyObject *args[2] = {future, Py_None};

    if (executor == NULL) {
        res = Py_NewRef(Py_None);
    }
    else {
        res = PyObject_CallMethod(executor, "shutdown", "(O)", Py_True);
        Py_DECREF(executor);
    }
    if (res != NULL) {
        Py_DECREF(res);
        if (!self->closed) {
            h = cio_loop_call_soon_impl(
                self, self->state->set_result_unless_cancelled, args, 2,
                NULL, 1);
        }
        Py_XDECREF(h);
        return h || self->closed ? Py_NewRef(Py_None) : NULL;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    exc = cio_fetch_exception();
    if (!self->closed) {
        setter = PyObject_GetAttrString(future, "set_exception");
        h = setter ? cio_loop_call_soon_impl(self, setter, &exc, 1, NULL, 1)
                   : NULL;
        Py_XDECREF(setter);
        Py_XDECREF(h);
    }
    Py_DECREF(exc);
    return h || self->closed ? Py_NewRef(Py_None) : NULL;
}

/* The timer of shutdown_default_executor(timeout): give up waiting. */
static PyObject *
loop_executor_shutdown_timed_out(LoopObject *self, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    PyObject *future, *done, *res;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expected 2 arguments");
        return NULL;
    }
    future = args[0];
    done = PyObject_CallMethod(future, "done", NULL);
    if (done == NULL) {
        return NULL;
    }
    Py_DECREF(done);
    if (done == Py_True) {
        Py_RETURN_NONE;
    }
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "The executor did not finishing joining its "
                         "threads within %S seconds.", args[1]) < 0) {
        return NULL;
    }
    if (self->default_executor != NULL) {
        res = PyObject_CallMethod(self->default_executor, "shutdown", "(O)",
                                  Py_False);
        if (res == NULL) {
            return NULL;
        }
        Py_DECREF(res);
    }
    res = PyObject_CallMethod(future, "set_result", "(O)", Py_None);
    Py_XDECREF(res);
    return res ? Py_NewRef(Py_None) : NULL;
}

/* shutdown_default_executor's work, once awaited: a future that completes
 * once the executor has joined its threads (or the timeout passed, with
 * stdlib's warning). */
static PyObject *
executor_shutdown_start(LoopObject *self, PyObject *timeout)
{
    PyObject *future, *target = NULL, *thread = NULL;
    PyObject *res = NULL, *kw = NULL;

    self->executor_shutdown_called = 1;
    future = cio_loop_create_future(self);
    if (future == NULL) {
        return NULL;
    }
    if (self->default_executor == NULL) {
        res = PyObject_CallMethod(future, "set_result", "(O)", Py_None);
        goto done;
    }
    target = PyObject_GetAttrString((PyObject *)self, "_do_shutdown");
    kw = target ? Py_BuildValue("{sOs(O)}", "target", target, "args",
                                future)
                : NULL;
    thread = kw ? PyObject_Call(self->state->thread_type,
                                self->state->empty_tuple, kw)
                : NULL;
    res = thread ? PyObject_CallMethod(thread, "start", NULL) : NULL;
    if (res != NULL && timeout != Py_None) {
        PyObject *on_timeout = PyObject_GetAttrString(
            (PyObject *)self, "_executor_shutdown_timed_out");
        PyObject *cl = on_timeout
            ? PyObject_CallMethod((PyObject *)self, "call_later", "OOOO",
                                  timeout, on_timeout, future, timeout)
            : NULL;
        Py_XDECREF(on_timeout);
        Py_XSETREF(res, cl);
    }
done:
    Py_XDECREF(target);
    Py_XDECREF(kw);
    Py_XDECREF(thread);
    if (res == NULL) {
        Py_CLEAR(future);
    }
    Py_XDECREF(res);
    return future;
}

/* Both shutdowns are coroutines in stdlib, so nothing happens until they
 * are awaited: a program cancels its tasks, then awaits
 * shutdown_asyncgens(), and the generators' aclose() must not race the
 * cancellations. Each is a StepCoroutine (vars[0] the loop, vars[1] its
 * arguments) whose first step starts the work and awaits its future. */
static cio_step_t
shutdown_step(CioStepCoroObject *coro, PyObject *value, PyObject **out)
{
    LoopObject *loop = (LoopObject *)coro->vars[0];

    if (value == NULL) {
        return CIO_STEP_ERROR;
    }
    if (coro->state == 0) {
        coro->state = 1;
        *out = PyTuple_GET_SIZE(coro->vars[1]) == 0
                   ? asyncgens_shutdown_start(loop)
                   : executor_shutdown_start(
                         loop, PyTuple_GET_ITEM(coro->vars[1], 0));
        return *out ? CIO_STEP_AWAIT : CIO_STEP_ERROR;
    }
    *out = Py_NewRef(Py_None);
    return CIO_STEP_RETURN;
}

static PyObject *
loop_shutdown_asyncgens(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)cio_loop_call_coro_new(
        self, "Loop.shutdown_asyncgens", shutdown_step, NULL, 0, NULL);
}

static PyObject *
loop_shutdown_default_executor(LoopObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs + nkw > 1 || (nkw == 1 && PyUnicode_CompareWithASCIIString(
                                            PyTuple_GET_ITEM(kwnames, 0),
                                            "timeout"))) {
        PyErr_SetString(PyExc_TypeError,
                        "shutdown_default_executor() takes at most 1 "
                        "argument");
        return NULL;
    }
    if (nargs + nkw == 1) {
        timeout = args[0];
    }
    return (PyObject *)cio_loop_call_coro_new(
        self, "Loop.shutdown_default_executor", shutdown_step, &timeout, 1,
        NULL);
}

PyMethodDef cio_loop_lifecycle_methods[] = {
    {"_set_coroutine_origin_tracking",
     (PyCFunction)loop_set_coro_tracking_method, METH_O, NULL},
    {"_asyncgen_firstiter_hook", (PyCFunction)loop_asyncgen_firstiter_hook,
     METH_O, NULL},
    {"_asyncgen_finalizer_hook", (PyCFunction)loop_asyncgen_finalizer_hook,
     METH_O, NULL},
    {"_asyncgens_closed", (PyCFunction)(void (*)(void))loop_asyncgens_closed,
     METH_FASTCALL, NULL},
    {"shutdown_asyncgens", (PyCFunction)loop_shutdown_asyncgens, METH_NOARGS,
     "shutdown_asyncgens($self, /)\n--\n\nCoroutine: close every live "
     "asynchronous generator."},
    {"run_in_executor", (PyCFunction)(void (*)(void))loop_run_in_executor,
     METH_FASTCALL,
     "run_in_executor($self, executor, func, /, *args)\n--\n\nRun "
     "func(*args) in executor (None: the default thread pool); return an "
     "asyncio.Future."},
    {"set_default_executor", (PyCFunction)loop_set_default_executor, METH_O,
     "set_default_executor($self, executor, /)\n--\n\nSet the "
     "ThreadPoolExecutor run_in_executor(None, ...) uses."},
    {"_do_shutdown", (PyCFunction)loop_do_shutdown, METH_O, NULL},
    {"_executor_shutdown_timed_out",
     (PyCFunction)(void (*)(void))loop_executor_shutdown_timed_out,
     METH_FASTCALL, NULL},
    {"shutdown_default_executor",
     (PyCFunction)(void (*)(void))loop_shutdown_default_executor,
     METH_FASTCALL | METH_KEYWORDS,
     /* The signature is what the public async def wrapper is made from:
        3.11's stdlib method takes no timeout. */
#if PY_VERSION_HEX >= 0x030C0000
     "shutdown_default_executor($self, /, timeout=None)\n--\n\nShut the "
#else
     "shutdown_default_executor($self, /)\n--\n\nShut the "
#endif
     "default executor down (a coroutine)."},
    {NULL, NULL, 0, NULL},
};
