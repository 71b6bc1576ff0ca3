/* The write side the C transports share: a queue of bytes objects drained
 * with writev(), and asyncio's _FlowControlMixin (high/low water marks,
 * pause_writing/resume_writing). Used by transport_stream.c and
 * transport_pipe.c. */
#ifndef CASYNCIO_TRANSPORT_WRITE_H
#define CASYNCIO_TRANSPORT_WRITE_H

#include <errno.h>

#include "casyncio.h"

#define CIO_MAX_READ_SIZE (256 * 1024)  /* stdlib's max_size per read */
#define CIO_LOG_THRESHOLD_FOR_CONNLOST_WRITES 5

typedef struct {
    PyObject *data;      /* a bytes object */
    Py_ssize_t offset;   /* bytes of it already written */
    PyObject *addr;      /* a datagram's destination, or NULL */
} cio_write_chunk_t;

typedef struct {
    cio_write_chunk_t *chunks;  /* queued writes: chunks[head..len) */
    size_t head, len, cap;
    Py_ssize_t size;            /* bytes queued */
} cio_write_queue_t;

/* _FlowControlMixin's instance slots, in the order CPython lays them out
 * (BaseTransport's, then the mixin's sorted by name), which
 * cio_write_transport_check_base verifies. */
enum {
    CIO_SLOT_EXTRA,
    CIO_SLOT_HIGH_WATER,
    CIO_SLOT_LOOP,
    CIO_SLOT_LOW_WATER,
    CIO_SLOT_PROTOCOL_PAUSED,
    CIO_FLOW_MIXIN_SLOTS
};

/* The head of a transport type whose Python base is _FlowControlMixin. The
 * slot storage comes first, where the base's descriptors look for it;
 * stdlib code reads _loop and _protocol_paused there, so those are
 * mirrored into it, but the C fields are the truth. */
#define CIO_WRITE_TRANSPORT_HEAD                                            \
    PyObject_HEAD                                                           \
    PyObject *base_slots[CIO_FLOW_MIXIN_SLOTS];                             \
    LoopObject *loop;          /* NULL once the connection is lost */       \
    PyObject *protocol;                                                     \
    cio_write_queue_t queue;                                                \
    Py_ssize_t high_water, low_water;                                       \
    char protocol_paused;

typedef struct {
    CIO_WRITE_TRANSPORT_HEAD
} cio_write_transport_t;

#define CIO_WRITE_TRANSPORT(obj) ((cio_write_transport_t *)(obj))

/* Stores value in one of the base's slots, as setattr would, without the
 * attribute lookup. */
static inline void
cio_set_base_slot(cio_write_transport_t *t, int slot, PyObject *value)
{
    Py_XSETREF(t->base_slots[slot], Py_NewRef(value));
}

/* ImportError unless base (_FlowControlMixin) keeps its slots where
 * base_slots expects them. */
int cio_write_transport_check_base(PyTypeObject *base);

/* ---- the queue ---- */
/* Queues data[offset:] (bytes, bytearray or memoryview, viewed as view).
 * A bytes object is kept as is; the others are copied, as they can change. */
int cio_write_queue_append(cio_write_queue_t *q, PyObject *data,
                           Py_buffer *view, Py_ssize_t offset);
/* Queues one datagram (bytes) for addr (None when connected); the caller
 * accounts for it in q->size. */
int cio_write_queue_push_datagram(cio_write_queue_t *q, PyObject *bytes,
                                  PyObject *addr);
/* Drops the head chunk, leaving q->size to the caller. */
void cio_write_queue_pop(cio_write_queue_t *q);
void cio_write_queue_clear(cio_write_queue_t *q);
void cio_write_queue_free(cio_write_queue_t *q);
/* Drops n written bytes from the front. */
void cio_write_queue_consume(cio_write_queue_t *q, Py_ssize_t n);
/* One writev() of the queue's head to fd: bytes written, or -errno. */
Py_ssize_t cio_write_queue_writev(cio_write_queue_t *q, int fd);

static inline int
cio_write_queue_empty(const cio_write_queue_t *q)
{
    return q->head == q->len;
}

static inline int
cio_would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* ---- flow control ---- */
/* Sets the defaults and mirrors _loop; called once at set-up. */
int cio_write_transport_init(cio_write_transport_t *t, LoopObject *loop);
/* Mirrors _loop = None once the connection is released. */
int cio_write_transport_release_loop(cio_write_transport_t *t);
/* pause_writing() above the high-water mark, resume_writing() at or below
 * the low one; a failure in the protocol is reported, not raised. */
int cio_write_transport_maybe_pause(cio_write_transport_t *t);
int cio_write_transport_maybe_resume(cio_write_transport_t *t);
void cio_write_transport_clear(cio_write_transport_t *t);
int cio_write_transport_traverse(cio_write_transport_t *t, visitproc visit,
                                 void *arg);
/* The methods get_write_buffer_size, get/set_write_buffer_limits, for the
 * method table of each type. */
PyObject *cio_write_transport_get_write_buffer_size(PyObject *self,
                                                    PyObject *ignored);
PyObject *cio_write_transport_get_write_buffer_limits(PyObject *self,
                                                      PyObject *ignored);
PyObject *cio_write_transport_set_write_buffer_limits(PyObject *self,
                                                      PyObject *args,
                                                      PyObject *kwargs);
#define CIO_WRITE_TRANSPORT_METHODS                                         \
    {"get_write_buffer_size", cio_write_transport_get_write_buffer_size,   \
     METH_NOARGS, NULL},                                                    \
    {"get_write_buffer_limits",                                             \
     cio_write_transport_get_write_buffer_limits, METH_NOARGS, NULL},       \
    {"set_write_buffer_limits",                                             \
     (PyCFunction)(void (*)(void))                                          \
         cio_write_transport_set_write_buffer_limits,                       \
     METH_VARARGS | METH_KEYWORDS, NULL},

/* ---- shared helpers ---- */
/* The exception of a failed protocol call, or NULL (with the exception
 * still set) when it is SystemExit or KeyboardInterrupt, which propagate
 * out of the loop as in stdlib. */
PyObject *cio_fetch_reportable_exception(void);
/* The loop's read buffer of CIO_MAX_READ_SIZE bytes, shared by all of its
 * transports (reads are consumed before the next one starts). */
char *cio_loop_read_buffer(LoopObject *loop);
/* Schedules transport._call_connection_lost(exc) with call_soon, in
 * context (NULL: a copy of the current one). */
int cio_schedule_connection_lost(PyObject *transport, LoopObject *loop,
                                 PyObject *exc, PyObject *context);
/* Calls logger.debug(fmt, transport) in debug mode. */
int cio_transport_debug_log(PyObject *transport, LoopObject *loop,
                            const char *fmt);
/* transport.get_extra_info(name, default=None) over a dict. */
PyObject *cio_extra_info_get(PyObject *extra, PyObject *const *args,
                             Py_ssize_t nargs);

#endif
