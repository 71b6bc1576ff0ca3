/* The write queue and flow control shared by the C transports; see
 * transport_write.h. */
#include "transport_write.h"

#include <stdlib.h>
#include <structmember.h>
#include <sys/uio.h>

#define DEFAULT_HIGH_WATER (64 * 1024)
#define WRITEV_MAX 1024              /* IOV_MAX on Linux */

/* ---- the write queue -------------------------------------------------- */

static int
queue_push(cio_write_queue_t *q, PyObject *bytes, Py_ssize_t offset,
           PyObject *addr)
{
    if (q->len == q->cap) {
        size_t live = q->len - q->head;
        if (q->head > 0) {
            /* Slide the live chunks down before growing. */
            memmove(q->chunks, q->chunks + q->head,
                    live * sizeof(cio_write_chunk_t));
            q->head = 0;
            q->len = live;
        }
        if (q->len == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 8;
            cio_write_chunk_t *c = PyMem_Realloc(
                q->chunks, cap * sizeof(cio_write_chunk_t));
            if (c == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            q->chunks = c;
            q->cap = cap;
        }
    }
    q->chunks[q->len].data = Py_NewRef(bytes);
    q->chunks[q->len].offset = offset;
    q->chunks[q->len].addr = Py_XNewRef(addr);
    q->len++;
    return 0;
}

int
cio_write_queue_append(cio_write_queue_t *q, PyObject *data, Py_buffer *view,
                       Py_ssize_t offset)
{
    PyObject *bytes;
    int rc;

    if (PyBytes_CheckExact(data)) {
        bytes = Py_NewRef(data);
    }
    else {
        bytes = PyBytes_FromStringAndSize((char *)view->buf + offset,
                                          view->len - offset);
        offset = 0;
        if (bytes == NULL) {
            return -1;
        }
    }
    rc = queue_push(q, bytes, offset, NULL);
    if (rc == 0) {
        q->size += PyBytes_GET_SIZE(bytes) - offset;
    }
    Py_DECREF(bytes);
    return rc;
}

int
cio_write_queue_push_datagram(cio_write_queue_t *q, PyObject *bytes,
                              PyObject *addr)
{
    return queue_push(q, bytes, 0, addr);
}

void
cio_write_queue_pop(cio_write_queue_t *q)
{
    cio_write_chunk_t *c = &q->chunks[q->head++];

    Py_DECREF(c->data);
    Py_XDECREF(c->addr);
    if (cio_write_queue_empty(q)) {
        q->head = q->len = 0;
    }
}

void
cio_write_queue_clear(cio_write_queue_t *q)
{
    for (size_t i = q->head; i < q->len; i++) {
        Py_DECREF(q->chunks[i].data);
        Py_XDECREF(q->chunks[i].addr);
    }
    q->head = q->len = 0;
    q->size = 0;
}

void
cio_write_queue_free(cio_write_queue_t *q)
{
    cio_write_queue_clear(q);
    PyMem_Free(q->chunks);
    q->chunks = NULL;
    q->cap = 0;
}

void
cio_write_queue_consume(cio_write_queue_t *q, Py_ssize_t n)
{
    q->size -= n;
    while (n > 0) {
        cio_write_chunk_t *c = &q->chunks[q->head];
        Py_ssize_t left = PyBytes_GET_SIZE(c->data) - c->offset;
        if (n < left) {
            c->offset += n;
            return;
        }
        n -= left;
        Py_DECREF(c->data);
        q->head++;
    }
    if (cio_write_queue_empty(q)) {
        q->head = q->len = 0;
    }
}

Py_ssize_t
cio_write_queue_writev(cio_write_queue_t *q, int fd)
{
    struct iovec iov[WRITEV_MAX];
    size_t n = 0;
    ssize_t sent;

    for (size_t i = q->head; i < q->len && n < WRITEV_MAX; i++, n++) {
        cio_write_chunk_t *c = &q->chunks[i];
        iov[n].iov_base = PyBytes_AS_STRING(c->data) + c->offset;
        iov[n].iov_len = (size_t)(PyBytes_GET_SIZE(c->data) - c->offset);
    }
    do {
        sent = writev(fd, iov, (int)n);
    } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -errno : sent;
}

/* ---- flow control ------------------------------------------------------ */

static int
set_protocol_paused(cio_write_transport_t *t, int paused)
{
    t->protocol_paused = (char)paused;
    cio_set_base_slot(t, CIO_SLOT_PROTOCOL_PAUSED,
                      paused ? Py_True : Py_False);
    return 0;
}

PyObject *
cio_fetch_reportable_exception(void)
{
    PyObject *exc = cio_fetch_exception();

    if (cio_is_exit_exception(exc)) {
        cio_restore_exception(exc);
        return NULL;
    }
    return exc;
}

static int
report_flow_control_error(cio_write_transport_t *t, const char *message)
{
    PyObject *exc = cio_fetch_reportable_exception(), *context;
    int rc;

    if (exc == NULL) {
        return -1;
    }
    context = Py_BuildValue("{sssOsOsO}", "message", message, "exception",
                            exc, "transport", (PyObject *)t, "protocol",
                            t->protocol);
    Py_DECREF(exc);
    if (context == NULL) {
        return -1;
    }
    rc = cio_loop_report(t->loop, context);
    Py_DECREF(context);
    return rc;
}

/* Flips the protocol's paused state and tells it. */
static int
switch_protocol_writing(cio_write_transport_t *t, int paused)
{
    const char *method = paused ? "pause_writing" : "resume_writing";
    PyObject *res;

    if (set_protocol_paused(t, paused) < 0) {
        return -1;
    }
    res = PyObject_CallMethod(t->protocol, method, NULL);
    if (res == NULL) {
        return report_flow_control_error(
            t, paused ? "protocol.pause_writing() failed"
                      : "protocol.resume_writing() failed");
    }
    Py_DECREF(res);
    return 0;
}

int
cio_write_transport_maybe_pause(cio_write_transport_t *t)
{
    if (t->queue.size <= t->high_water || t->protocol_paused) {
        return 0;
    }
    return switch_protocol_writing(t, 1);
}

int
cio_write_transport_maybe_resume(cio_write_transport_t *t)
{
    if (!t->protocol_paused || t->queue.size > t->low_water) {
        return 0;
    }
    return switch_protocol_writing(t, 0);
}

/* stdlib's _set_write_buffer_limits, None meaning "derive it". */
static int
set_write_buffer_limits(cio_write_transport_t *t, PyObject *high_obj,
                        PyObject *low_obj)
{
    Py_ssize_t high, low;
    PyObject *value;

    if (high_obj == Py_None) {
        if (low_obj == Py_None) {
            high = DEFAULT_HIGH_WATER;
        }
        else {
            low = PyLong_AsSsize_t(low_obj);
            if (low == -1 && PyErr_Occurred()) {
                return -1;
            }
            high = 4 * low;
        }
    }
    else if ((high = PyLong_AsSsize_t(high_obj)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (low_obj == Py_None) {
        low = high / 4 - (high % 4 < 0);  /* floor division, as stdlib */
    }
    else if ((low = PyLong_AsSsize_t(low_obj)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!(high >= low && low >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "high (%zd) must be >= low (%zd) must be >= 0", high,
                     low);
        return -1;
    }
    t->high_water = high;
    t->low_water = low;
    value = PyLong_FromSsize_t(high);
    if (value == NULL) {
        return -1;
    }
    Py_XSETREF(t->base_slots[CIO_SLOT_HIGH_WATER], value);
    value = PyLong_FromSsize_t(low);
    if (value == NULL) {
        return -1;
    }
    Py_XSETREF(t->base_slots[CIO_SLOT_LOW_WATER], value);
    return 0;
}

int
cio_write_transport_check_base(PyTypeObject *base)
{
    static const char *const names[CIO_FLOW_MIXIN_SLOTS] = {
        [CIO_SLOT_EXTRA] = "_extra",
        [CIO_SLOT_HIGH_WATER] = "_high_water",
        [CIO_SLOT_LOOP] = "_loop",
        [CIO_SLOT_LOW_WATER] = "_low_water",
        [CIO_SLOT_PROTOCOL_PAUSED] = "_protocol_paused",
    };

    for (int i = 0; i < CIO_FLOW_MIXIN_SLOTS; i++) {
        PyObject *descr = PyObject_GetAttrString((PyObject *)base, names[i]);
        Py_ssize_t expected = offsetof(cio_write_transport_t, base_slots) +
                              i * sizeof(PyObject *);
        int ok = descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)descr)->d_member->offset == expected;

        Py_XDECREF(descr);
        if (!ok) {
            PyErr_Clear();
            PyErr_Format(PyExc_ImportError,
                         "%s has an unexpected layout (slot %s)",
                         base->tp_name, names[i]);
            return -1;
        }
    }
    return 0;
}

int
cio_write_transport_init(cio_write_transport_t *t, LoopObject *loop)
{
    cio_set_base_slot(t, CIO_SLOT_LOOP, (PyObject *)loop);
    if (set_protocol_paused(t, 0) < 0 ||
        set_write_buffer_limits(t, Py_None, Py_None) < 0) {
        return -1;
    }
    t->loop = (LoopObject *)Py_NewRef(loop);
    return 0;
}

int
cio_write_transport_release_loop(cio_write_transport_t *t)
{
    Py_CLEAR(t->loop);
    cio_set_base_slot(t, CIO_SLOT_LOOP, Py_None);
    return 0;
}

void
cio_write_transport_clear(cio_write_transport_t *t)
{
    for (int i = 0; i < CIO_FLOW_MIXIN_SLOTS; i++) {
        Py_CLEAR(t->base_slots[i]);
    }
    Py_CLEAR(t->loop);
    Py_CLEAR(t->protocol);
    cio_write_queue_clear(&t->queue);
}

int
cio_write_transport_traverse(cio_write_transport_t *t, visitproc visit,
                             void *arg)
{
    for (int i = 0; i < CIO_FLOW_MIXIN_SLOTS; i++) {
        Py_VISIT(t->base_slots[i]);
    }
    Py_VISIT(t->loop);
    Py_VISIT(t->protocol);
    return 0;
}

PyObject *
cio_write_transport_get_write_buffer_size(PyObject *self,
                                          PyObject *Py_UNUSED(ig))
{
    return PyLong_FromSsize_t(CIO_WRITE_TRANSPORT(self)->queue.size);
}

PyObject *
cio_write_transport_get_write_buffer_limits(PyObject *self,
                                            PyObject *Py_UNUSED(ig))
{
    cio_write_transport_t *t = CIO_WRITE_TRANSPORT(self);

    return Py_BuildValue("(nn)", t->low_water, t->high_water);
}

PyObject *
cio_write_transport_set_write_buffer_limits(PyObject *self, PyObject *args,
                                            PyObject *kwargs)
{
    static char *kwlist[] = {"high", "low", NULL};
    cio_write_transport_t *t = CIO_WRITE_TRANSPORT(self);
    PyObject *high = Py_None, *low = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "|OO:set_write_buffer_limits", kwlist,
                                     &high, &low) ||
        set_write_buffer_limits(t, high, low) < 0 ||
        (t->loop != NULL && cio_write_transport_maybe_pause(t) < 0)) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- helpers shared by every transport -------------------------------- */

char *
cio_loop_read_buffer(LoopObject *loop)
{
    if (loop->read_buffer == NULL) {
        /* Page-aligned: the kernel's copy into a misaligned destination
         * took twice as long (64 KiB echo, perf: _copy_to_iter samples
         * per request, 6 interleaved runs each), and that copy is a good
         * part of a large read's cost. Freed with free() (loop.c). */
        void *buf = NULL;
        if (posix_memalign(&buf, 4096, CIO_MAX_READ_SIZE) != 0) {
            PyErr_NoMemory();
            return NULL;
        }
        loop->read_buffer = buf;
    }
    return loop->read_buffer;
}

int
cio_schedule_connection_lost(PyObject *transport, LoopObject *loop,
                             PyObject *exc, PyObject *context)
{
    PyObject *cb = PyObject_GetAttr(
        transport, CIO_NAME(loop->state, _call_connection_lost));
    PyObject *handle;

    if (cb == NULL) {
        return -1;
    }
    handle = cio_loop_call_soon_impl(loop, cb, &exc, 1, context, 0);
    Py_DECREF(cb);
    Py_XDECREF(handle);
    return handle ? 0 : -1;
}

int
cio_transport_debug_log(PyObject *transport, LoopObject *loop,
                        const char *fmt)
{
    PyObject *res;

    if (loop == NULL || !loop->debug) {
        return 0;
    }
    res = PyObject_CallMethod(loop->state->logger, "debug", "sO", fmt,
                              transport);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

PyObject *
cio_extra_info_get(PyObject *extra, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *value;

    if (nargs < 1 || nargs > 2) {
        return PyErr_Format(PyExc_TypeError,
                            "get_extra_info expected 1 or 2 arguments, "
                            "got %zd", nargs);
    }
    value = PyDict_GetItemWithError(extra, args[0]);  // borrowed
    if (value == NULL && PyErr_Occurred()) {
        return NULL;
    }
    return Py_NewRef(value ? value : nargs > 1 ? args[1] : Py_None);
}
