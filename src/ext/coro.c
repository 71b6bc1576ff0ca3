/* What the binding's coroutines written in C share. They are awaitables
 * that behave as an `async def` would: SockCall (loop_sock.c) uses the
 * helpers for the protocol's common parts (how a finished send is
 * reported, how throw() arguments become the raised exception, the
 * never-awaited warning); StepCoroutine, below, and ConnectCall
 * (loop_connect.c) are the whole protocol over a CioCoroHead, whose body
 * is a state machine of their own (see casyncio.h).
 *
 * A StepCoroutine's body is one C step function: create_server and
 * create_unix_server (loop_listen.c), the Server's coroutines (server.c),
 * create_datagram_endpoint, start_tls, sendfile, and the streams' reads
 * and drain (streams.c). */
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

/* ---- the protocol over a CioCoroHead ------------------------------------ */

/* As a coroutine's frame: a body that resumes itself (through something
 * it called) is refused. */
static int
refuse_if_running(CioCoroHead *coro)
{
    if (!coro->running) {
        return 0;
    }
    PyErr_SetString(PyExc_ValueError, "coroutine already executing");
    return -1;
}

/* cio_coro_await's body, inlined into the StepCoroutine's drive loop. */
static inline PySendResult
coro_await(CioCoroHead *coro, PyObject *awaitable, PyObject **result)
{
    PySendResult rc;

    *result = NULL;
    if (awaitable == NULL) {
        return PYGEN_ERROR;
    }
    coro->awaiting = cio_coro_await_iter(awaitable);
    Py_DECREF(awaitable);
    if (coro->awaiting == NULL) {
        return PYGEN_ERROR;
    }
    rc = PyIter_Send(coro->awaiting, Py_None, result);
    if (rc != PYGEN_NEXT) {
        Py_CLEAR(coro->awaiting);
    }
    return rc;
}

PySendResult
cio_coro_await(CioCoroHead *coro, PyObject *awaitable, PyObject **result)
{
    return coro_await(coro, awaitable, result);
}

/* The body has finished: it lets go of what it held, as a coroutine's
 * frame does. */
static inline void
finish_body(CioCoroHead *coro, const cio_coro_body_t *body)
{
    coro->started = coro->done = 1;
    Py_CLEAR(coro->awaiting);
    body->finish(coro);
}

/* am_send over the given body: inlined with the body known at compile
 * time where that is the hot path (StepCoroutine's, which every C streams
 * read and drain is), through coro->body otherwise. */
static inline PySendResult
coro_am_send(CioCoroHead *coro, PyObject *value, PyObject **result,
             const cio_coro_body_t *body)
{
    PyObject *got;
    PySendResult rc;

    *result = NULL;
    if (refuse_if_running(coro) < 0) {
        return PYGEN_ERROR;
    }
    if (coro->done) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    if (!coro->started && value != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a "
                                         "just-started coroutine");
        return PYGEN_ERROR;
    }
    coro->running = 1;
    if (!coro->started) {
        coro->started = 1;
        rc = body->start(coro, result);
    }
    else if (coro->awaiting == NULL) {  /* at a bare yield */
        rc = body->resume(coro, PYGEN_RETURN, Py_NewRef(value), result);
    }
    else {
        rc = PyIter_Send(coro->awaiting, value, &got);
        if (rc == PYGEN_NEXT) {
            coro->running = 0;
            *result = got;
            return rc;
        }
        Py_CLEAR(coro->awaiting);
        rc = body->resume(coro, rc, got, result);
    }
    coro->running = 0;
    if (rc != PYGEN_NEXT) {
        finish_body(coro, body);
    }
    return rc;
}

PySendResult
cio_coro_am_send(PyObject *self, PyObject *value, PyObject **result)
{
    CioCoroHead *coro = (CioCoroHead *)self;

    return coro_am_send(coro, value, result, coro->body);

}

/* throw(): passed on to what the coroutine awaits, as `await` does; what
 * comes out of it reaches the body, as at an await. Thrown into a
 * coroutine that never started, it finishes it unrun. */
PyObject *
cio_coro_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CioCoroHead *coro = (CioCoroHead *)self;
    PyObject *result = NULL, *got;
    PySendResult rc;

    if (refuse_if_running(coro) < 0) {
        return NULL;
    }
    if (coro->done || !coro->started) {
        if (!coro->done) {
            finish_body(coro, coro->body);
        }
        cio_coro_raise_thrown(args, nargs);
        return NULL;
    }
    coro->running = 1;
    if (coro->awaiting == NULL) {  /* at a bare yield */
        cio_coro_raise_thrown(args, nargs);
        rc = coro->body->resume(coro, PYGEN_ERROR, NULL, &result);
    }
    else {
        rc = cio_coro_throw_into(coro->awaiting, args, nargs, &got);
        if (rc == PYGEN_NEXT) {
            coro->running = 0;
            return got;
        }
        Py_CLEAR(coro->awaiting);
        rc = coro->body->resume(coro, rc, got, &result);
    }
    coro->running = 0;
    if (rc != PYGEN_NEXT) {
        finish_body(coro, coro->body);
    }
    return cio_coro_return(rc, result);
}

/* close(): GeneratorExit at the suspension point, so that what a
 * suspended body holds (a socket, a transport) is closed by its clean-up,
 * as an `except` or `finally` clause would. */
PyObject *
cio_coro_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    CioCoroHead *coro = (CioCoroHead *)self;
    PyObject *awaiting = coro->awaiting, *result = NULL;
    PySendResult rc;

    if (refuse_if_running(coro) < 0) {
        return NULL;
    }
    if (coro->done || !coro->started) {
        if (!coro->done) {
            finish_body(coro, coro->body);
        }
        Py_RETURN_NONE;
    }
    coro->running = 1;
    coro->awaiting = NULL;
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
    rc = coro->body->resume(coro, PYGEN_ERROR, NULL, &result);
    coro->running = 0;
    finish_body(coro, coro->body);
    if (rc != PYGEN_ERROR) {
        Py_XDECREF(result);
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

/* As a coroutine's: never awaited warns; collected while suspended is
 * closed. */
void
cio_coro_finalize(PyObject *self)
{
    CioCoroHead *coro = (CioCoroHead *)self;
    PyObject *exc, *res;

    if (!coro->started) {
        cio_coro_warn_unawaited(self, coro->qualname);
        return;
    }
    if (coro->done) {
        return;
    }
    exc = cio_fetch_exception();
    res = cio_coro_close(self, NULL);
    if (res == NULL) {
        PyErr_WriteUnraisable(self);
    }
    Py_XDECREF(res);
    cio_restore_exception(exc);
}

PyObject *
cio_coro_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<coroutine object %s at %p>",
                                ((CioCoroHead *)self)->qualname, self);
}

static PyObject *
coro_get_qualname(CioCoroHead *coro, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(coro->qualname);
}

static PyObject *
coro_get_name(CioCoroHead *coro, void *Py_UNUSED(closure))
{
    const char *dot = strrchr(coro->qualname, '.');

    return PyUnicode_FromString(dot ? dot + 1 : coro->qualname);
}

static PyObject *
coro_get_await(CioCoroHead *coro, void *Py_UNUSED(closure))
{
    return Py_NewRef(coro->awaiting ? coro->awaiting : Py_None);
}

PyMethodDef cio_coro_methods[] = {
    {"send", (PyCFunction)cio_coro_send, METH_O,
     "send($self, value, /)\n--\n\nResume the coroutine."},
    {"throw", (PyCFunction)(void (*)(void))cio_coro_throw, METH_FASTCALL,
     "throw($self, exc, /)\n--\n\nRaise exc at the suspension point."},
    {"close", (PyCFunction)cio_coro_close, METH_NOARGS,
     "close($self, /)\n--\n\nRaise GeneratorExit at the suspension point."},
    {NULL, NULL, 0, NULL},
};

PyGetSetDef cio_coro_getset[] = {
    {"__qualname__", (getter)coro_get_qualname, NULL, NULL, NULL},
    {"__name__", (getter)coro_get_name, NULL, NULL, NULL},
    {"cr_await", (getter)coro_get_await, NULL,
     "What the coroutine is suspended on, else None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---- StepCoroutine: a coroutine written as a C step function ---------- */

/* What await does with the awaitable a step returned: iterates it until
 * it yields (the coroutine suspends) or finishes (the step function runs
 * again with its outcome). Loops while awaitables finish at once. */
static PySendResult
step_drive(CioStepCoroObject *self, cio_step_t rc, PyObject *out,
           PyObject **result)
{
    PyObject *value;
    PySendResult sent;

    for (;;) {
        switch (rc) {
        case CIO_STEP_RETURN:
            *result = out;
            return PYGEN_RETURN;
        case CIO_STEP_YIELD:  /* suspended with nothing awaited */
            *result = out;
            return PYGEN_NEXT;
        case CIO_STEP_AWAIT:
            sent = coro_await(&self->head, out, &value);
            if (sent == PYGEN_NEXT) {
                *result = value;
                return PYGEN_NEXT;
            }
            rc = self->step(self, sent == PYGEN_RETURN ? value : NULL, &out);
            Py_XDECREF(value);
            continue;
        default:
            *result = NULL;
            return PYGEN_ERROR;
        }
    }
}

static PySendResult
step_coro_start(CioCoroHead *coro, PyObject **result)
{
    CioStepCoroObject *self = (CioStepCoroObject *)coro;
    PyObject *out = NULL;
    cio_step_t step = self->step(self, Py_None, &out);

    return step_drive(self, step, out, result);
}

static PySendResult
step_coro_resume(CioCoroHead *coro, PySendResult rc, PyObject *value,
                 PyObject **result)
{
    CioStepCoroObject *self = (CioStepCoroObject *)coro;
    PyObject *out = NULL;
    cio_step_t step = self->step(self, rc == PYGEN_RETURN ? value : NULL,
                                 &out);

    Py_XDECREF(value);
    return step_drive(self, step, out, result);
}

static void
step_coro_finish(CioCoroHead *coro)
{
    CioStepCoroObject *self = (CioStepCoroObject *)coro;

    for (int i = 0; i < CIO_STEP_VARS; i++) {
        Py_CLEAR(self->vars[i]);
    }
}

static const cio_coro_body_t step_coro_body = {
    step_coro_start, step_coro_resume, step_coro_finish};

static PySendResult
step_coro_am_send(PyObject *self, PyObject *value, PyObject **result)
{
    return coro_am_send((CioCoroHead *)self, value, result, &step_coro_body);
}

static int
step_coro_traverse(CioStepCoroObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->head.awaiting);
    for (int i = 0; i < CIO_STEP_VARS; i++) {
        Py_VISIT(self->vars[i]);
    }
    return 0;
}

static int
step_coro_clear(CioStepCoroObject *self)
{
    Py_CLEAR(self->head.awaiting);
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
    cio_coro_head_init(&self->head, &step_coro_body, qualname);
    self->step = step;
    for (int i = 0; i < CIO_STEP_VARS; i++) {
        self->vars[i] = NULL;
    }
    self->state = 0;
    self->index = 0;
    PyObject_GC_Track(self);
    return self;
}

static PyType_Slot step_coro_slots[] = {
    CIO_CORO_SLOTS,
    {Py_am_send, step_coro_am_send},
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
