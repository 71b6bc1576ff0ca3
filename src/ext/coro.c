/* What the binding's coroutines written in C share: SockCall (loop_sock.c)
 * and ConnectCall (loop_connect.c) are awaitables that behave as an
 * `async def` would, and these helpers give them the coroutine protocol's
 * common parts: how a finished send is reported, how throw() arguments
 * become the raised exception, how an awaited object is delegated to as
 * `await` (yield from) does, and the never-awaited warning.
 *
 * StepCoroutine, below, is the whole protocol once, for coroutines whose
 * body is a C step function (see casyncio.h): create_server and
 * create_unix_server (loop_listen.c) and the Server's (server.c). */
#include "casyncio.h"

PyObject *
cio_coro_return(PySendResult rc, PyObject *result)
{
    PyObject *stop;

    if (rc != PYGEN_RETURN) {
        return result;  /* the yielded object, or NULL on error */
    }
    if (result == Py_None) {
        Py_DECREF(result);
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    /* Made explicitly, so that a tuple result is the value rather than
     * the exception's arguments. */
    stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

int
cio_coro_raise_thrown(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *typ, *val;

    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "throw expected at least 1 and at most 3 arguments, "
                     "got %zd", nargs);
        return -1;
    }
    typ = args[0];
    val = nargs > 1 ? args[1] : Py_None;
    if (PyExceptionInstance_Check(typ)) {
        if (val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not "
                                             "have a separate value");
            return -1;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    }
    else {
        PyErr_Format(PyExc_TypeError, "exceptions must be classes or "
                     "instances deriving from BaseException, not %s",
                     Py_TYPE(typ)->tp_name);
        return -1;
    }
    if (nargs > 2 && args[2] != Py_None) {
        PyObject *exc = cio_fetch_exception();
        PyException_SetTraceback(exc, args[2]);
        cio_restore_exception(exc);
    }
    return -1;
}

PyObject *
cio_coro_await_iter(PyObject *awaitable)
{
    PyAsyncMethods *am = Py_TYPE(awaitable)->tp_as_async;
    PyObject *iter;

    if (PyCoro_CheckExact(awaitable)) {
        return Py_NewRef(awaitable);  /* sent to directly, as await does */
    }
    iter = am && am->am_await ? am->am_await(awaitable) : NULL;
    if (iter == NULL && !PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError,
                     "'%.100s' object can't be awaited",
                     Py_TYPE(awaitable)->tp_name);
    }
    return iter;
}

/* The value a StopIteration being raised carries, which takes it off the
 * thread; NULL with the exception left set for anything else. */
static PyObject *
take_stop_iteration_value(void)
{
    PyObject *exc, *value;

    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) {
        return NULL;
    }
    exc = cio_fetch_exception();
    value = Py_NewRef(((PyStopIterationObject *)exc)->value);
    Py_DECREF(exc);
    return value;
}

PySendResult
cio_coro_throw_into(PyObject *iter, PyObject *const *args, Py_ssize_t nargs,
                    PyObject **result)
{
    PyObject *throw;

    *result = NULL;
    throw = PyObject_GetAttrString(iter, "throw");
    if (throw == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return PYGEN_ERROR;
        }
        PyErr_Clear();  /* no throw(): raised at the await itself */
        cio_coro_raise_thrown(args, nargs);
        return PYGEN_ERROR;
    }
    *result = PyObject_Vectorcall(throw, args, nargs, NULL);
    Py_DECREF(throw);
    if (*result != NULL) {
        return PYGEN_NEXT;
    }
    *result = take_stop_iteration_value();
    return *result != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

void
cio_coro_warn_unawaited(PyObject *coro, const char *qualname)
{
    PyObject *exc = cio_fetch_exception();

    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "coroutine '%s' was never awaited", qualname) < 0) {
        PyErr_WriteUnraisable(coro);
    }
    cio_restore_exception(exc);
}

PyObject *
cio_coro_send(PyObject *self, PyObject *value)
{
    PyObject *result;
    PySendResult rc = Py_TYPE(self)->tp_as_async->am_send(self, value,
                                                          &result);

    return cio_coro_return(rc, result);
}

PyObject *
cio_coro_next(PyObject *self)
{
    return cio_coro_send(self, Py_None);
}

PyObject *
cio_coro_self(PyObject *self)
{
    return Py_NewRef(self);
}

/* ---- StepCoroutine: a coroutine written as a C step function ---------- */

/* What await does with the awaitable a step returned: iterates it until
 * it yields (the coroutine suspends) or finishes (the step function runs
 * again with its outcome). Loops while awaitables finish at once. */
static PySendResult
step_drive(CioStepCoroObject *self, cio_step_t rc, PyObject *out,
           PyObject **result)
{
    PyObject *iter, *value;
    PySendResult sent;

    for (;;) {
        switch (rc) {
        case CIO_STEP_RETURN:
            *result = out;
            return PYGEN_RETURN;
        case CIO_STEP_YIELD:
            self->yielded = 1;
            *result = out;
            return PYGEN_NEXT;
        case CIO_STEP_AWAIT:
            iter = cio_coro_await_iter(out);
            Py_DECREF(out);
            if (iter == NULL) {
                rc = self->step(self, NULL, &out);
                continue;
            }
            sent = PyIter_Send(iter, Py_None, &value);
            if (sent == PYGEN_NEXT) {
                self->awaiting = iter;
                *result = value;
                return PYGEN_NEXT;
            }
            Py_DECREF(iter);
            rc = self->step(self, sent == PYGEN_RETURN ? value : NULL, &out);
            Py_XDECREF(value);
            continue;
        default:
            *result = NULL;
            return PYGEN_ERROR;
        }
    }
}

/* The coroutine has finished: what its frame held goes, as a
 * coroutine's frame does. */
static void
step_finish(CioStepCoroObject *self)
{
    self->done = 1;
    Py_CLEAR(self->awaiting);
    for (int i = 0; i < CIO_STEP_VARS; i++) {
        Py_CLEAR(self->vars[i]);
    }
}

/* Resumes the step function with the outcome of what it waited on: value
 * (borrowed), or NULL with the exception set. */
static PySendResult
step_resume(CioStepCoroObject *self, PyObject *value, PyObject **result)
{
    PyObject *out = NULL;
    cio_step_t rc = self->step(self, value, &out);
    PySendResult sent = step_drive(self, rc, out, result);

    if (sent != PYGEN_NEXT) {
        step_finish(self);
    }
    return sent;
}

static PySendResult
step_coro_am_send(CioStepCoroObject *self, PyObject *value,
                  PyObject **result)
{
    PySendResult sent;
    PyObject *got;

    *result = NULL;
    if (self->done) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    if (!self->started) {
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a "
                                             "just-started coroutine");
            return PYGEN_ERROR;
        }
        self->started = 1;
        return step_resume(self, Py_None, result);
    }
    if (self->yielded) {
        self->yielded = 0;
        return step_resume(self, value, result);
    }
    sent = PyIter_Send(self->awaiting, value, &got);
    if (sent == PYGEN_NEXT) {
        *result = got;
        return sent;
    }
    Py_CLEAR(self->awaiting);
    sent = step_resume(self, sent == PYGEN_RETURN ? got : NULL, result);
    Py_XDECREF(got);
    return sent;
}

/* throw(): passed on to what the coroutine awaits, as `await` does; what
 * comes out of it reaches the step function, as at an await. Thrown into
 * a coroutine that never started, it finishes it unrun. */
static PyObject *
step_coro_throw(CioStepCoroObject *self, PyObject *const *args,
                Py_ssize_t nargs)
{
    PyObject *result, *got;
    PySendResult rc;

    if (self->done || !self->started) {
        if (!self->done) {
            self->started = 1;
            step_finish(self);
        }
        cio_coro_raise_thrown(args, nargs);
        return NULL;
    }
    if (self->awaiting == NULL) {  /* suspended at a bare yield */
        self->yielded = 0;
        cio_coro_raise_thrown(args, nargs);
        rc = step_resume(self, NULL, &result);
        return cio_coro_return(rc, result);
    }
    rc = cio_coro_throw_into(self->awaiting, args, nargs, &got);
    if (rc == PYGEN_NEXT) {
        return got;
    }
    Py_CLEAR(self->awaiting);
    rc = step_resume(self, rc == PYGEN_RETURN ? got : NULL, &result);
    Py_XDECREF(got);
    return cio_coro_return(rc, result);
}

/* close(): GeneratorExit at the suspension point. */
static PyObject *
step_coro_close(CioStepCoroObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *awaiting = self->awaiting, *result = NULL;
    PySendResult rc;

    if (self->done || !self->started) {
        self->started = 1;
        step_finish(self);
        Py_RETURN_NONE;
    }
    self->awaiting = NULL;
    self->yielded = 0;
    if (awaiting != NULL) {
        result = PyObject_CallMethod(awaiting, "close", NULL);
        Py_DECREF(awaiting);
        if (result == NULL &&
            PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        }
        Py_XDECREF(result);
    }
    if (!PyErr_Occurred()) {
        PyErr_SetNone(PyExc_GeneratorExit);
    }
    rc = step_resume(self, NULL, &result);
    if (rc != PYGEN_ERROR) {
        Py_XDECREF(result);
        step_finish(self);
        PyErr_SetString(PyExc_RuntimeError,
                        "coroutine ignored GeneratorExit");
        return NULL;
    }
    if (PyErr_ExceptionMatches(PyExc_GeneratorExit)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return NULL;
}

static PyObject *
step_coro_get_qualname(CioStepCoroObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(self->qualname);
}

static PyObject *
step_coro_get_name(CioStepCoroObject *self, void *Py_UNUSED(closure))
{
    const char *dot = strrchr(self->qualname, '.');

    return PyUnicode_FromString(dot ? dot + 1 : self->qualname);
}

static PyObject *
step_coro_get_await(CioStepCoroObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->awaiting ? self->awaiting : Py_None);
}

static PyObject *
step_coro_repr(CioStepCoroObject *self)
{
    return PyUnicode_FromFormat("<coroutine object %s at %p>",
                                self->qualname, self);
}

/* As a coroutine's: never awaited warns; collected while suspended is
 * closed. */
static void
step_coro_finalize(CioStepCoroObject *self)
{
    PyObject *exc, *res;

    if (!self->started) {
        cio_coro_warn_unawaited((PyObject *)self, self->qualname);
        return;
    }
    if (self->done) {
        return;
    }
    exc = cio_fetch_exception();
    res = step_coro_close(self, NULL);
    if (res == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(res);
    cio_restore_exception(exc);
}

static int
step_coro_traverse(CioStepCoroObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->awaiting);
    for (int i = 0; i < CIO_STEP_VARS; i++) {
        Py_VISIT(self->vars[i]);
    }
    return 0;
}

static int
step_coro_clear(CioStepCoroObject *self)
{
    Py_CLEAR(self->awaiting);
    for (int i = 0; i < CIO_STEP_VARS; i++) {
        Py_CLEAR(self->vars[i]);
    }
    return 0;
}

static void
step_coro_dealloc(CioStepCoroObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, NULL)) {
        return;
    }
    step_coro_clear(self);
    cio_dealloc_end((PyObject *)self);
}

CioStepCoroObject *
cio_step_coro_new(cio_state *st, const char *qualname, cio_step_fn step)
{
    CioStepCoroObject *self =
        PyObject_GC_New(CioStepCoroObject, st->step_coro_type);

    if (self == NULL) {
        return NULL;
    }
    self->step = step;
    self->qualname = qualname;
    self->awaiting = NULL;
    for (int i = 0; i < CIO_STEP_VARS; i++) {
        self->vars[i] = NULL;
    }
    self->state = 0;
    self->index = 0;
    self->started = self->done = self->yielded = 0;
    PyObject_GC_Track(self);
    return self;
}

static PyMethodDef step_coro_methods[] = {
    {"send", (PyCFunction)cio_coro_send, METH_O,
     "send($self, value, /)\n--\n\nResume the coroutine."},
    {"throw", (PyCFunction)(void (*)(void))step_coro_throw, METH_FASTCALL,
     "throw($self, exc, /)\n--\n\nRaise exc at the suspension point."},
    {"close", (PyCFunction)step_coro_close, METH_NOARGS,
     "close($self, /)\n--\n\nRaise GeneratorExit at the suspension point."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef step_coro_getset[] = {
    {"__qualname__", (getter)step_coro_get_qualname, NULL, NULL, NULL},
    {"__name__", (getter)step_coro_get_name, NULL, NULL, NULL},
    {"cr_await", (getter)step_coro_get_await, NULL,
     "What the coroutine is suspended on, else None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot step_coro_slots[] = {
    {Py_am_await, cio_coro_self},
    {Py_am_send, step_coro_am_send},
    {Py_tp_iternext, cio_coro_next},
    {Py_tp_repr, step_coro_repr},
    {Py_tp_methods, step_coro_methods},
    {Py_tp_getset, step_coro_getset},
    {Py_tp_finalize, step_coro_finalize},
    {Py_tp_traverse, step_coro_traverse},
    {Py_tp_clear, step_coro_clear},
    {Py_tp_dealloc, step_coro_dealloc},
    {Py_tp_doc, "A coroutine of the loop or its Server written in C."},
    {0, NULL},
};

PyType_Spec cio_step_coro_spec = {
    .name = "casyncio._casyncio.StepCoroutine",
    .basicsize = sizeof(CioStepCoroObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = step_coro_slots,
};
