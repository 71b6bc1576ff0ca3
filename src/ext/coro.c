/* What the binding's coroutines written in C share: SockCall (loop_sock.c)
 * and ConnectCall (loop_connect.c) are awaitables that behave as an
 * `async def` would, and these helpers give them the coroutine protocol's
 * common parts: how a finished send is reported, how throw() arguments
 * become the raised exception, how an awaited object is delegated to as
 * `await` (yield from) does, and the never-awaited warning. */
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
