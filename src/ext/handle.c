/* Handle and TimerHandle: what call_soon, call_later and add_reader return.
 *
 * They mirror asyncio.events.Handle/TimerHandle (methods, repr, the error
 * report of a failing callback) but are C objects, so scheduling a callback
 * costs one allocation and running it calls the callback directly. */
#include "casyncio.h"

#include <structmember.h>

/* Plain Handles are the loop's most frequent allocation (every call_soon,
 * every Task step), so freed ones are kept for reuse: that skips pymalloc
 * and, more importantly, the allocation count that triggers GC passes. */
#define HANDLE_FREELIST_MAX 512

static HandleObject *
handle_alloc(cio_state *st, PyTypeObject *type)
{
    HandleObject *h = st->free_handles;

    if (h == NULL || type != st->handle_type) {
        return PyObject_GC_New(HandleObject, type);
    }
    st->free_handles = h->next_free;
    st->n_free_handles--;
    /* Sets the type (taking a reference to it) and a refcount of 1. */
    PyObject_Init((PyObject *)h, type);
    return h;
}

void
cio_handle_freelist_clear(cio_state *st)
{
    while (st->free_handles != NULL) {
        HandleObject *h = st->free_handles;
        st->free_handles = h->next_free;
        PyObject_GC_Del(h);
    }
    st->n_free_handles = 0;
}

HandleObject *
cio_handle_new(LoopObject *loop, PyTypeObject *type, PyObject *callback,
               PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    HandleObject *h = handle_alloc(loop->state, type);

    if (h == NULL) {
        return NULL;
    }
    h->next_free = NULL;
    h->callback = Py_NewRef(callback);
    h->args = nargs ? PyTuple_New(nargs) : Py_NewRef(loop->state->empty_tuple);
    h->context = context ? Py_NewRef(context) : PyContext_CopyCurrent();
    h->loop = (LoopObject *)Py_NewRef(loop);
    h->source_traceback = NULL;
    h->repr_cache = NULL;
    h->weakreflist = NULL;
    h->cancelled = 0;
    h->is_timer = type == loop->state->timer_handle_type;
    h->runs_py_handle = 0;
    if (h->is_timer) {
        cio_timer_init(&((TimerHandleObject *)h)->node, 0.0);
        ((TimerHandleObject *)h)->when_int = NULL;
    }
    PyObject_GC_Track(h);
    if (h->args == NULL || h->context == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(h->args, i, Py_NewRef(args[i]));
    }
    if (loop->debug) {
        /* Called from C there is no frame of ours: the current frame is
         * the caller's, which is where stdlib's trimmed stack ends too. */
        PyObject *frame = (PyObject *)PyEval_GetFrame();  // borrowed
        h->source_traceback = PyObject_CallOneArg(
            loop->state->extract_stack, frame ? frame : Py_None);
        if (h->source_traceback == NULL) {
            Py_DECREF(h);
            return NULL;
        }
    }
    return h;
}

PyObject *
cio_handle_format_callback(HandleObject *h)
{
    cio_state *st = h->loop->state;
    /* A callback that cancelled its own handle (a reader removing itself)
     * and then raised is reported as stdlib reports it: as None(). */
    PyObject *args[3] = {h->callback ? h->callback : Py_None,
                         h->args ? h->args : Py_None, NULL};

    if (st->format_source_takes_debug) {
        args[2] = h->loop->debug ? Py_True : Py_False;
        return PyObject_Vectorcall(st->format_callback_source, args, 2,
                                   st->kwnames_debug);
    }
    return PyObject_Vectorcall(st->format_callback_source, args, 2, NULL);
}

/* Builds stdlib's report of a failed callback and hands it to the loop. */
static int
handle_report_exception(HandleObject *h, PyObject *exc)
{
    PyObject *context = NULL, *source = NULL, *msg = NULL;
    int rc = -1;

    source = cio_handle_format_callback(h);
    if (source == NULL) {
        goto done;
    }
    msg = PyUnicode_FromFormat("Exception in callback %U", source);
    if (msg == NULL) {
        goto done;
    }
    context = Py_BuildValue("{sOsOsO}", "message", msg, "exception", exc,
                            "handle", (PyObject *)h);
    if (context == NULL) {
        goto done;
    }
    if (h->source_traceback != NULL &&
        PyObject_IsTrue(h->source_traceback) > 0 &&
        PyDict_SetItemString(context, "source_traceback",
                             h->source_traceback) < 0) {
        goto done;
    }
    rc = cio_loop_report(h->loop, context);
done:
    Py_XDECREF(context);
    Py_XDECREF(source);
    Py_XDECREF(msg);
    return rc;
}

int
cio_handle_run(HandleObject *h)
{
    /* The callback may cancel its own handle, which drops these refs;
     * hold them for the duration of the call. */
    PyObject *callback = Py_NewRef(h->callback);
    PyObject *args = Py_NewRef(h->args);
    PyObject *result = NULL, *exc;
    int rc = 0;

    if (h->runs_py_handle) {
        /* Handle._run reports the callback's errors itself and lets only
         * SystemExit and KeyboardInterrupt out. */
        result = PyObject_CallMethodNoArgs(callback,
                                           CIO_NAME(h->loop->state, _run));
        if (result == NULL) {
            rc = -1;
        }
    }
    else if (PyContext_Enter(h->context) == 0) {
        result = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0),
                                     PyTuple_GET_SIZE(args), NULL);
        if (PyContext_Exit(h->context) < 0) {
            Py_CLEAR(result);
        }
    }
    if (result == NULL && rc == 0) {
        exc = cio_fetch_exception();
        if (cio_is_exit_exception(exc)) {
            cio_restore_exception(exc);
            rc = -1;
        }
        else {
            rc = handle_report_exception(h, exc);
            Py_DECREF(exc);
        }
    }
    Py_XDECREF(result);
    Py_DECREF(callback);
    Py_DECREF(args);
    return rc;
}

#if PY_VERSION_HEX >= 0x030E0000
/* The loop's Handle for a Python handle (3.14's events._ThreadSafeHandle,
 * see loop_call_soon_threadsafe): it runs py_handle._run() and shares its
 * source traceback, which the debug-mode exception report reads from the
 * loop's current handle. */
HandleObject *
cio_handle_new_py_runner(LoopObject *loop, PyObject *py_handle)
{
    HandleObject *h = handle_alloc(loop->state, loop->state->handle_type);

    if (h == NULL) {
        return NULL;
    }
    h->next_free = NULL;
    h->callback = Py_NewRef(py_handle);
    h->args = Py_NewRef(loop->state->empty_tuple);
    h->context = Py_NewRef(Py_None);
    h->loop = (LoopObject *)Py_NewRef(loop);
    h->source_traceback = NULL;
    h->repr_cache = NULL;
    h->weakreflist = NULL;
    h->cancelled = 0;
    h->is_timer = 0;
    h->runs_py_handle = 1;
    PyObject_GC_Track(h);
    if (loop->debug) {
        h->source_traceback = PyObject_GetAttr(
            py_handle, CIO_NAME(loop->state, _source_traceback));
        if (h->source_traceback == NULL) {
            Py_DECREF(h);
            return NULL;
        }
    }
    return h;
}
#endif

void
cio_handle_cancel_quietly(HandleObject *h)
{
    h->cancelled = 1;
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
}

static int
handle_traverse(HandleObject *h, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(h));
    Py_VISIT(h->callback);
    Py_VISIT(h->args);
    Py_VISIT(h->context);
    Py_VISIT(h->loop);
    Py_VISIT(h->source_traceback);
    Py_VISIT(h->repr_cache);
    return 0;
}

static int
handle_clear(HandleObject *h)
{
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    Py_CLEAR(h->context);
    Py_CLEAR(h->loop);
    Py_CLEAR(h->source_traceback);
    Py_CLEAR(h->repr_cache);
    if (h->is_timer) {
        Py_CLEAR(((TimerHandleObject *)h)->when_int);
    }
    return 0;
}

static void
handle_dealloc(HandleObject *h)
{
    PyTypeObject *tp = Py_TYPE(h);
    /* The loop is gone only if the GC cleared this Handle; then it is
     * simply freed. */
    cio_state *st = h->loop ? h->loop->state : NULL;

    PyObject_GC_UnTrack(h);
    if (h->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)h);
    }
    handle_clear(h);
    if (st != NULL && tp == st->handle_type &&
        st->n_free_handles < HANDLE_FREELIST_MAX) {
        h->next_free = st->free_handles;
        st->free_handles = h;
        st->n_free_handles++;
    }
    else {
        tp->tp_free((PyObject *)h);
    }
    Py_DECREF(tp);
}

static PyObject *
timer_handle_when(TimerHandleObject *t, PyObject *Py_UNUSED(ignored))
{
    if (t->when_int != NULL) {
        return Py_NewRef(t->when_int);
    }
    return PyFloat_FromDouble(t->node.when);
}

/* The parts of stdlib's Handle._repr_info, in the same order. */
static PyObject *
handle_repr_info(HandleObject *h)
{
    PyObject *info = PyList_New(0), *item = NULL;

    if (info == NULL) {
        return NULL;
    }
    item = PyUnicode_FromString(_PyType_Name(Py_TYPE(h)));
    if (item == NULL || PyList_Append(info, item) < 0) {
        goto fail;
    }
    Py_CLEAR(item);
    if (h->cancelled) {
        item = PyUnicode_FromString("cancelled");
        if (item == NULL || PyList_Append(info, item) < 0) {
            goto fail;
        }
        Py_CLEAR(item);
    }
    if (h->is_timer) {
        PyObject *when = timer_handle_when((TimerHandleObject *)h, NULL);
        if (when == NULL) {
            goto fail;
        }
        item = PyUnicode_FromFormat("when=%R", when);
        Py_DECREF(when);
        if (item == NULL || PyList_Append(info, item) < 0) {
            goto fail;
        }
        Py_CLEAR(item);
    }
    if (h->callback != NULL) {
        item = cio_handle_format_callback(h);
        if (item == NULL || PyList_Append(info, item) < 0) {
            goto fail;
        }
        Py_CLEAR(item);
    }
    if (h->source_traceback != NULL &&
        PyList_Check(h->source_traceback) &&
        PyList_GET_SIZE(h->source_traceback) > 0) {
        PyObject *frame = PyList_GET_ITEM(
            h->source_traceback,
            PyList_GET_SIZE(h->source_traceback) - 1);  // borrowed
        PyObject *file = PySequence_GetItem(frame, 0);
        PyObject *line = file ? PySequence_GetItem(frame, 1) : NULL;
        if (line != NULL) {
            item = PyUnicode_FromFormat("created at %S:%S", file, line);
        }
        Py_XDECREF(file);
        Py_XDECREF(line);
        if (item == NULL || PyList_Append(info, item) < 0) {
            goto fail;
        }
        Py_CLEAR(item);
    }
    return info;
fail:
    Py_XDECREF(item);
    Py_DECREF(info);
    return NULL;
}

static PyObject *
handle_repr(HandleObject *h)
{
    PyObject *info, *sep, *joined, *result;

    if (h->repr_cache != NULL) {
        return Py_NewRef(h->repr_cache);
    }
    info = handle_repr_info(h);
    if (info == NULL) {
        return NULL;
    }
    sep = PyUnicode_FromString(" ");
    joined = sep ? PyUnicode_Join(sep, info) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(info);
    if (joined == NULL) {
        return NULL;
    }
    result = PyUnicode_FromFormat("<%U>", joined);
    Py_DECREF(joined);
    return result;
}

static PyObject *
handle_cancel(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->cancelled) {
        Py_RETURN_NONE;
    }
    if (h->loop == NULL) {
        cio_handle_cancel_quietly(h);  /* cleared by the GC: no loop left */
        Py_RETURN_NONE;
    }
    if (h->is_timer) {
        cio_loop_unschedule_timer(h->loop, (TimerHandleObject *)h);
    }
    h->cancelled = 1;
    if (h->loop->debug) {
        /* stdlib freezes the repr before dropping the callback. */
        PyObject *repr = handle_repr(h);
        if (repr == NULL) {
            return NULL;
        }
        Py_XSETREF(h->repr_cache, repr);
    }
    cio_handle_cancel_quietly(h);
    Py_RETURN_NONE;
}

static PyObject *
handle_cancelled(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
handle_get_context(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(h->context);
}

/* Handle._run(): kept because test suites and a few libraries call it. */
static PyObject *
handle_run_method(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->callback == NULL) {
        Py_RETURN_NONE;
    }
    if (cio_handle_run(h) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}



static PyObject *
timer_handle_get_scheduled(TimerHandleObject *t, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(t->node.heap_index != CIO_TIMER_NOT_QUEUED);
}

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS,
     "cancel($self, /)\n--\n\nCancel the callback; a no-op if it already "
     "ran or was cancelled."},
    {"cancelled", (PyCFunction)handle_cancelled, METH_NOARGS,
     "cancelled($self, /)\n--\n\nReturn True if the callback was cancelled."},
    {"get_context", (PyCFunction)handle_get_context, METH_NOARGS,
     "get_context($self, /)\n--\n\nReturn the contextvars.Context the "
     "callback runs in."},
    {"_run", (PyCFunction)handle_run_method, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef handle_members[] = {
    {"_callback", T_OBJECT, offsetof(HandleObject, callback), READONLY, NULL},
    {"_args", T_OBJECT, offsetof(HandleObject, args), READONLY, NULL},
    {"_context", T_OBJECT, offsetof(HandleObject, context), READONLY, NULL},
    {"_loop", T_OBJECT, offsetof(HandleObject, loop), READONLY, NULL},
    {"_source_traceback", T_OBJECT, offsetof(HandleObject, source_traceback),
     READONLY, NULL},
    {"_cancelled", T_BOOL, offsetof(HandleObject, cancelled), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(HandleObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_doc, "Object returned by callback registration methods."},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_methods, handle_methods},
    {Py_tp_members, handle_members},
    {0, NULL},
};

PyType_Spec cio_handle_spec = {
    .name = "casyncio._casyncio.Handle",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = handle_slots,
};

static PyMethodDef timer_handle_methods[] = {
    {"when", (PyCFunction)timer_handle_when, METH_NOARGS,
     "when($self, /)\n--\n\nReturn the scheduled time, on the loop's "
     "clock."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef timer_handle_members[] = {
    {"_when", T_DOUBLE, offsetof(TimerHandleObject, node.when), READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef timer_handle_getset[] = {
    {"_scheduled", (getter)timer_handle_get_scheduled, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot timer_handle_slots[] = {
    {Py_tp_doc, "Object returned by timed callback registration methods."},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_methods, timer_handle_methods},
    {Py_tp_members, timer_handle_members},
    {Py_tp_getset, timer_handle_getset},
    {0, NULL},
};

PyType_Spec cio_timer_handle_spec = {
    .name = "casyncio._casyncio.TimerHandle",
    .basicsize = sizeof(TimerHandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = timer_handle_slots,
};
