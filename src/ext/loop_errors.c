/* Exception handling: set/get_exception_handler, call_exception_handler and
 * default_exception_handler, with base_events.py's log text and fallbacks. */
#include "casyncio.h"

static PyObject *
loop_set_exception_handler(LoopObject *self, PyObject *handler)
{
    if (handler != Py_None && !PyCallable_Check(handler)) {
        PyErr_Format(PyExc_TypeError,
                     "A callable object or None is expected, got %R",
                     handler);
        return NULL;
    }
    Py_XSETREF(self->exception_handler,
               handler == Py_None ? NULL : Py_NewRef(handler));
    Py_RETURN_NONE;
}

static PyObject *
loop_get_exception_handler(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->exception_handler ? self->exception_handler
                                             : Py_None);
}

/* "<title>:\n<formatted frames>" for a source/handle traceback entry. */
static PyObject *
format_traceback_entry(cio_state *st, const char *title, PyObject *frames)
{
    PyObject *lines = NULL, *empty = NULL, *joined = NULL, *stripped = NULL;
    PyObject *result = NULL;

    lines = PyObject_CallOneArg(st->format_list, frames);
    empty = PyUnicode_FromString("");
    if (lines == NULL || empty == NULL) {
        goto done;
    }
    joined = PyUnicode_Join(empty, lines);
    stripped = joined ? PyObject_CallMethod(joined, "rstrip", NULL) : NULL;
    if (stripped != NULL) {
        result = PyUnicode_FromFormat("%s created at (most recent call "
                                      "last):\n%U", title, stripped);
    }
done:
    Py_XDECREF(lines);
    Py_XDECREF(empty);
    Py_XDECREF(joined);
    Py_XDECREF(stripped);
    return result;
}

/* One "key: value" line of the default handler's log message. */
static PyObject *
format_context_line(cio_state *st, PyObject *key, PyObject *value)
{
    PyObject *text, *line;

    if (PyUnicode_Check(key) &&
        PyUnicode_CompareWithASCIIString(key, "source_traceback") == 0) {
        text = format_traceback_entry(st, "Object", value);
    }
    else if (PyUnicode_Check(key) &&
             PyUnicode_CompareWithASCIIString(key, "handle_traceback") == 0) {
        text = format_traceback_entry(st, "Handle", value);
    }
    else {
        text = PyObject_Repr(value);
    }
    if (text == NULL) {
        return NULL;
    }
    line = PyUnicode_FromFormat("%S: %U", key, text);
    Py_DECREF(text);
    return line;
}

static PyObject *
build_log_message(LoopObject *self, PyObject *context)
{
    PyObject *lines = NULL, *keys = NULL, *message, *sep = NULL;
    PyObject *result = NULL;
    Py_ssize_t i;

    message = PyDict_GetItemString(context, "message");  // borrowed
    if (message == NULL || PyObject_IsTrue(message) <= 0) {
        message = NULL;
    }
    lines = PyList_New(0);
    if (lines == NULL) {
        goto done;
    }
    if (message != NULL) {
        if (PyList_Append(lines, message) < 0) {
            goto done;
        }
    }
    else {
        PyObject *dflt = PyUnicode_FromString(
            "Unhandled exception in event loop");
        int rc = dflt ? PyList_Append(lines, dflt) : -1;
        Py_XDECREF(dflt);
        if (rc < 0) {
            goto done;
        }
    }
    keys = PyDict_Keys(context);
    if (keys == NULL || PyList_Sort(keys) < 0) {
        goto done;
    }
    for (i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);  // borrowed
        PyObject *line;
        if (PyUnicode_Check(key) &&
            (PyUnicode_CompareWithASCIIString(key, "message") == 0 ||
             PyUnicode_CompareWithASCIIString(key, "exception") == 0)) {
            continue;
        }
        line = format_context_line(self->state, key,
                                   PyDict_GetItem(context, key));
        if (line == NULL || PyList_Append(lines, line) < 0) {
            Py_XDECREF(line);
            goto done;
        }
        Py_DECREF(line);
    }
    sep = PyUnicode_FromString("\n");
    result = sep ? PyUnicode_Join(sep, lines) : NULL;
done:
    Py_XDECREF(lines);
    Py_XDECREF(keys);
    Py_XDECREF(sep);
    return result;
}

static PyObject *
loop_default_exception_handler(LoopObject *self, PyObject *context)
{
    PyObject *exception, *exc_info = NULL, *msg = NULL, *tb;
    HandleObject *current = (HandleObject *)self->current_handle;
    int rc;

    if (!PyDict_Check(context)) {
        PyErr_SetString(PyExc_TypeError, "context must be a dict");
        return NULL;
    }
    exception = PyDict_GetItemString(context, "exception");  // borrowed
    if (exception != NULL && exception != Py_None) {
        tb = PyObject_GetAttrString(exception, "__traceback__");
        if (tb == NULL) {
            return NULL;
        }
        exc_info = PyTuple_Pack(3, (PyObject *)Py_TYPE(exception), exception,
                                tb);
        Py_DECREF(tb);
    }
    else {
        exc_info = Py_NewRef(Py_False);
    }
    if (exc_info == NULL) {
        return NULL;
    }
    if (PyDict_GetItemString(context, "source_traceback") == NULL &&
        current != NULL && current->source_traceback != NULL &&
        PyObject_IsTrue(current->source_traceback) > 0 &&
        PyDict_SetItemString(context, "handle_traceback",
                             current->source_traceback) < 0) {
        goto fail;
    }
    msg = build_log_message(self, context);
    if (msg == NULL) {
        goto fail;
    }
    rc = cio_log(self->state, "error", msg, exc_info);
    Py_DECREF(msg);
    Py_DECREF(exc_info);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
fail:
    Py_DECREF(exc_info);
    return NULL;
}

/* A handler raised: exit exceptions propagate (-1); anything else is
 * logged with exc_info=True, which reads the exception being handled, as in
 * stdlib's "except BaseException: logger.error(...)" (0). */
static int
swallow_unless_exit(LoopObject *self, const char *log_text)
{
    PyObject *exc = cio_fetch_exception(), *previous, *msg;
    int rc;

    if (cio_is_exit_exception(exc)) {
        cio_restore_exception(exc);
        return -1;
    }
    msg = PyUnicode_FromString(log_text);
    if (msg == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    previous = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
    rc = cio_log(self->state, "error", msg, Py_True);
    PyErr_SetHandledException(previous);
    Py_XDECREF(previous);
    Py_DECREF(msg);
    Py_DECREF(exc);
    return rc;
}

/* 3.12+: run the custom handler in the context of the failing object. */
static PyObject *
call_custom_handler(LoopObject *self, PyObject *context)
{
    PyObject *args[3] = {self->exception_handler, (PyObject *)self, context};
#if PY_VERSION_HEX >= 0x030C0000
    static const char *const keys[] = {"task", "future", "handle"};
    PyObject *thing = NULL, *ctx = NULL, *run = NULL, *res;

    for (size_t i = 0; i < 3 && (thing == NULL || thing == Py_None); i++) {
        thing = PyDict_GetItemString(context, keys[i]);  // borrowed
    }
    if (thing != NULL && thing != Py_None &&
        PyObject_HasAttrString(thing, "get_context")) {
        ctx = PyObject_CallMethod(thing, "get_context", NULL);
        if (ctx == NULL) {
            return NULL;
        }
    }
    if (ctx != NULL && ctx != Py_None &&
        (run = PyObject_GetAttrString(ctx, "run")) != NULL) {
        res = PyObject_Vectorcall(run, args, 3, NULL);
        Py_DECREF(run);
        Py_DECREF(ctx);
        return res;
    }
    PyErr_Clear();
    Py_XDECREF(ctx);
#endif
    return PyObject_Vectorcall(args[0], args + 1, 2, NULL);
}

static PyObject *
loop_call_exception_handler(LoopObject *self, PyObject *context)
{
    PyObject *res, *exc, *fallback_ctx;

    if (self->exception_handler == NULL) {
        res = PyObject_CallMethod((PyObject *)self,
                                  "default_exception_handler", "(O)", context);
        if (res == NULL &&
            swallow_unless_exit(self,
                                "Exception in default exception handler") <
                0) {
            return NULL;
        }
        Py_XDECREF(res);
        Py_RETURN_NONE;
    }
    res = call_custom_handler(self, context);
    if (res != NULL) {
        Py_DECREF(res);
        Py_RETURN_NONE;
    }
    exc = cio_fetch_exception();
    if (cio_is_exit_exception(exc)) {
        cio_restore_exception(exc);
        return NULL;
    }
    fallback_ctx = Py_BuildValue("{sssOsO}", "message",
                                 "Unhandled error in exception handler",
                                 "exception", exc, "context", context);
    Py_DECREF(exc);
    if (fallback_ctx == NULL) {
        return NULL;
    }
    res = PyObject_CallMethod((PyObject *)self, "default_exception_handler",
                              "(O)", fallback_ctx);
    Py_DECREF(fallback_ctx);
    if (res == NULL &&
        swallow_unless_exit(self,
                            "Exception in default exception handler while "
                            "handling an unexpected error in custom "
                            "exception handler") < 0) {
        return NULL;
    }
    Py_XDECREF(res);
    Py_RETURN_NONE;
}

int
cio_loop_report(LoopObject *self, PyObject *context)
{
    PyObject *res = PyObject_CallMethod((PyObject *)self,
                                        "call_exception_handler", "(O)",
                                        context);

    Py_XDECREF(res);
    return res ? 0 : -1;
}

PyMethodDef cio_loop_error_methods[] = {
    {"set_exception_handler", (PyCFunction)loop_set_exception_handler,
     METH_O,
     "set_exception_handler($self, handler, /)\n--\n\nSet handler(loop, "
     "context) as the loop's exception handler; None restores the "
     "default."},
    {"get_exception_handler", (PyCFunction)loop_get_exception_handler,
     METH_NOARGS,
     "get_exception_handler($self, /)\n--\n\nReturn the custom exception "
     "handler or None."},
    {"default_exception_handler",
     (PyCFunction)loop_default_exception_handler, METH_O,
     "default_exception_handler($self, context, /)\n--\n\nLog the context "
     "on the asyncio logger, as asyncio's default handler does."},
    {"call_exception_handler", (PyCFunction)loop_call_exception_handler,
     METH_O,
     "call_exception_handler($self, context, /)\n--\n\nPass context to the "
     "custom exception handler, or the default one."},
    {NULL, NULL, 0, NULL},
};
