/* SocketTransport: the stream transport over a connected TCP or Unix
 * socket, what create_connection, create_server and asyncio streams hand
 * their protocols; and SocketTransportBase, the part it shares with the
 * datagram transport (see transport_socket.h).
 *
 * The semantics are selector_events._SelectorSocketTransport's (the
 * callbacks, their order, the error messages). The hot path is ours:
 * reads land in the loop's shared buffer and reach the protocol as an
 * exact-size bytes (stdlib allocates 256 KiB per recv); writes go straight
 * to send() and queue only the rest, keeping bytes objects rather than
 * copying them, for one writev per wake-up. */
#include "transport_socket.h"
#include "cio_socket.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <structmember.h>
#include <sys/socket.h>

#define LOOP_STATE(self) (((LoopObject *)(self)->loop)->state)

static cio_state *
transport_state(SocketTransportObject *self)
{
    return cio_get_state_by_type(Py_TYPE(self));
}

/* Shorthands for the shared helpers of transport_write.h. */
static int
queue_empty(SocketTransportObject *self)
{
    return cio_write_queue_empty(&self->queue);
}

static int
maybe_pause_protocol(SocketTransportObject *self)
{
    return cio_write_transport_maybe_pause(CIO_WRITE_TRANSPORT(self));
}

static int
maybe_resume_protocol(SocketTransportObject *self)
{
    return cio_write_transport_maybe_resume(CIO_WRITE_TRANSPORT(self));
}

static int
schedule_connection_lost(SocketTransportObject *self, PyObject *exc)
{
    return cio_schedule_connection_lost((PyObject *)self, self->loop, exc,
                                        self->context);
}

static int
debug_log(SocketTransportObject *self, const char *fmt)
{
    return cio_transport_debug_log((PyObject *)self, self->loop, fmt);
}

/* Wakes loop.sendfile() waiting for the queue to drain: with None, or with
 * exc when the connection failed first. A done waiter is left alone
 * (stdlib would raise InvalidStateError from connection_lost there). */
static int
wake_empty_waiter(SocketTransportObject *self, PyObject *exc)
{
    PyObject *done, *res;
    int is_done;

    if (self->empty_waiter == NULL) {
        return 0;
    }
    done = PyObject_CallMethod(self->empty_waiter, "done", NULL);
    is_done = done ? PyObject_IsTrue(done) : -1;
    Py_XDECREF(done);
    if (is_done != 0) {
        return is_done < 0 ? -1 : 0;
    }
    res = exc ? PyObject_CallMethod(self->empty_waiter, "set_exception", "(O)",
                                    exc)
              : PyObject_CallMethod(self->empty_waiter, "set_result", "(O)",
                                    Py_None);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* ---- closing ---------------------------------------------------------- */

/* stdlib's _force_close: drop the queue, stop watching, and report the
 * loss (once) on the next iteration. */
static int
force_close(SocketTransportObject *self, PyObject *exc)
{
    if (self->conn_lost) {
        return 0;
    }
    if (!queue_empty(self)) {
        cio_write_queue_clear(&self->queue);
        if (cio_loop_remove_watcher(self->loop, self->fd,
                                    CIO_POLL_WRITE) < 0) {
            return -1;
        }
    }
    if (!self->closing) {
        self->closing = 1;
        if (cio_loop_remove_watcher(self->loop, self->fd,
                                    CIO_POLL_READ) < 0) {
            return -1;
        }
    }
    self->conn_lost++;
    return schedule_connection_lost(self, exc ? exc : Py_None);
}

/* stdlib's _fatal_error: OSErrors are expected (a peer going away) and
 * only logged in debug mode; anything else goes to the exception
 * handler. Steals exc. */
int
cio_socket_transport_fatal_error(SocketTransportObject *self, PyObject *exc,
                                 const char *message)
{
    int rc = 0;

    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
        if (self->loop->debug) {
            PyObject *msg = PyUnicode_FromFormat("%R: %s", (PyObject *)self,
                                                 message);
            rc = msg ? cio_log(LOOP_STATE(self), "debug", msg, Py_True) : -1;
            Py_XDECREF(msg);
        }
    }
    else {
        PyObject *context = Py_BuildValue(
            "{sssOsOsO}", "message", message, "exception", exc,
            "transport", (PyObject *)self, "protocol", self->protocol);
        rc = context ? cio_loop_report(self->loop, context) : -1;
        Py_XDECREF(context);
    }
    if (rc == 0) {
        rc = force_close(self, exc);
    }
    Py_DECREF(exc);
    return rc;
}

/* Reports the pending exception of a failed protocol call as fatal. */
static int
fatal_protocol_error(SocketTransportObject *self, const char *message)
{
    PyObject *exc = cio_fetch_reportable_exception();

    return exc ? cio_socket_transport_fatal_error(self, exc, message) : -1;
}

static int
fatal_errno(SocketTransportObject *self, int err, const char *message)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return fatal_protocol_error(self, message);
}

static int
call_server(SocketTransportObject *self, cio_name_t method)
{
    cio_state *st = transport_state(self);
    PyObject *res, *arg = (PyObject *)self;

#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13's Server tracks its clients for close_clients(). */
    res = cio_call_method(st, self->server, method, &arg, 1);
#else
    (void)arg;
    res = cio_call_method(st, self->server, method, NULL, 0);
#endif
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* Releases the socket and everything the connection held. */
static int
release_connection(SocketTransportObject *self)
{
    PyObject *res = NULL;
    int rc = 0;

    if (self->loop != NULL) {
        cio_loop_forget_fd_transport(self->loop, self->fd, (PyObject *)self);
    }
    if (self->sock != NULL) {
        res = cio_call_method(transport_state(self), self->sock,
                              CIO_NAME_close, NULL, 0);
        rc = res ? 0 : -1;
        Py_XDECREF(res);
        Py_CLEAR(self->sock);
    }
    Py_CLEAR(self->protocol);
    /* The bound methods refer back to the transport; without them, a
     * closed transport is freed as soon as it is dropped, not by the GC. */
    Py_CLEAR(self->read_ready);
    Py_CLEAR(self->write_ready);
    if (cio_write_transport_release_loop(CIO_WRITE_TRANSPORT(self)) < 0) {
        rc = -1;
    }
    if (self->server != NULL) {
        if (call_server(self, CIO_NAME__detach) < 0) {
            rc = -1;
        }
        Py_CLEAR(self->server);
    }
    return rc;
}

static int
wake_waiter_on_close(SocketTransportObject *self)
{
    PyObject *exc;
    int rc;

    if (self->empty_waiter == NULL) {
        return 0;
    }
    exc = PyObject_CallFunction(PyExc_ConnectionError, "s",
                                "Connection is closed by peer");
    rc = exc ? wake_empty_waiter(self, exc) : -1;
    Py_XDECREF(exc);
    return rc;
}

PyObject *
cio_socket_transport_connection_lost(SocketTransportObject *self,
                                     PyObject *exc)
{
    PyObject *res, *raised = NULL;

    if (self->protocol_connected && self->protocol != NULL) {
        res = cio_call_method(transport_state(self), self->protocol,
                              CIO_NAME_connection_lost, &exc, 1);
        if (res == NULL) {
            raised = cio_fetch_exception();
        }
        Py_XDECREF(res);
    }
    if (release_connection(self) < 0 || wake_waiter_on_close(self) < 0) {
        /* The first error wins, as with try/finally. */
        PyObject *later = cio_fetch_exception();
        if (raised == NULL) {
            raised = later;
        }
        else {
            Py_DECREF(later);
        }
    }
    if (raised != NULL) {
        cio_restore_exception(raised);
        return NULL;
    }
    return Py_NewRef(Py_None);
}

/* ---- reading ---------------------------------------------------------- */

static int transport_close_impl(SocketTransportObject *self);

static int
read_eof(SocketTransportObject *self)
{
    PyObject *keep_open;
    int keep;

    if (debug_log(self, "%r received EOF") < 0) {
        return -1;
    }
    keep_open = cio_call_method(transport_state(self), self->protocol,
                                CIO_NAME_eof_received, NULL, 0);
    if (keep_open == NULL) {
        return fatal_protocol_error(
            self, "Fatal error: protocol.eof_received() call failed.");
    }
    keep = PyObject_IsTrue(keep_open);
    Py_DECREF(keep_open);
    if (keep < 0) {
        return -1;
    }
    if (keep) {
        return cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0
                   ? -1 : 0;
    }
    return transport_close_impl(self);
}

/* A read that could not be delivered for want of memory (the buffer, the
 * bytes of what recv() already took) fails the transport, as stdlib's
 * does when socket.recv() raises: left open, it would wait for bytes that
 * are gone, and whoever waits on it would wait for ever. */
static const char read_failed[] = "Fatal read error on socket transport";

static int
read_into_data_received(SocketTransportObject *self)
{
    char *buf = cio_loop_read_buffer(self->loop);
    PyObject *data, *res;
    ssize_t n;

    if (buf == NULL) {
        return fatal_protocol_error(self, read_failed);
    }
    n = recv(self->fd, buf, CIO_MAX_READ_SIZE, 0);
    if (n < 0) {
        if (cio_would_block(errno)) {
            return 0;
        }
        return fatal_errno(self, errno, read_failed);
    }
    if (n == 0) {
        return read_eof(self);
    }
    data = PyBytes_FromStringAndSize(buf, n);
    if (data == NULL) {
        return fatal_protocol_error(self, read_failed);
    }
    res = PyObject_CallMethodOneArg(self->protocol,
                                    LOOP_STATE(self)->str_data_received, data);
    Py_DECREF(data);
    if (res == NULL) {
        return fatal_protocol_error(
            self, "Fatal error: protocol.data_received() call failed.");
    }
    Py_DECREF(res);
    return 0;
}

/* BufferedProtocol: recv straight into the protocol's buffer. */
static int
read_into_protocol_buffer(SocketTransportObject *self)
{
    static const char get_buffer_failed[] =
        "Fatal error: protocol.get_buffer() call failed.";
    PyObject *buf, *res, *nbytes;
    Py_buffer view;
    ssize_t n;

    buf = PyObject_CallMethod(self->protocol, "get_buffer", "i", -1);
    if (buf == NULL) {
        return fatal_protocol_error(self, get_buffer_failed);
    }
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        return fatal_protocol_error(self, read_failed);
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_DECREF(buf);
        PyErr_SetString(PyExc_RuntimeError,
                        "get_buffer() returned an empty buffer");
        return fatal_protocol_error(self, get_buffer_failed);
    }
    n = recv(self->fd, view.buf, (size_t)view.len, 0);
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (n < 0) {
        if (cio_would_block(errno)) {
            return 0;
        }
        return fatal_errno(self, errno, read_failed);
    }
    if (n == 0) {
        return read_eof(self);
    }
    nbytes = PyLong_FromSsize_t(n);
    if (nbytes == NULL) {
        return fatal_protocol_error(self, read_failed);
    }
    res = PyObject_CallMethodOneArg(self->protocol,
                                    LOOP_STATE(self)->str_buffer_updated,
                                    nbytes);
    Py_DECREF(nbytes);
    if (res == NULL) {
        return fatal_protocol_error(
            self, "Fatal error: protocol.buffer_updated() call failed.");
    }
    Py_DECREF(res);
    return 0;
}

static PyObject *
transport_read_ready(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    int rc;

    if (self->conn_lost || self->loop == NULL) {
        Py_RETURN_NONE;
    }
    rc = self->buffered ? read_into_protocol_buffer(self)
                        : read_into_data_received(self);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Watches the socket for events. Where the poller refuses (epoll_ctl's
 * ENOMEM or ENOSPC) or the watcher cannot be allocated, the transport
 * fails with that error through the fatal-error path, so its protocol gets
 * connection_lost(exc) and its server's wait_closed() returns. stdlib's
 * loop leaves such a transport open and unwatched, and whoever waits for
 * it waits for ever. */
static int
watch_or_fail(SocketTransportObject *self, int events, PyObject *callback)
{
    if (cio_loop_add_watcher(self->loop, self->fd, events, callback, NULL, 0,
                             self->context, NULL) == 0) {
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_OSError) &&
        !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        return -1;
    }
    return cio_socket_transport_fatal_error(
        self, cio_fetch_exception(),
        "Fatal error: the loop could not watch the socket");
}

static int
start_reading(SocketTransportObject *self)
{
    /* No read_ready: abandoned by its constructor (nothing it queued
     * runs, but a caller may still hold it). */
    if (self->closing || self->paused || self->read_ready == NULL) {
        return 0;
    }
    return watch_or_fail(self, CIO_POLL_READ, self->read_ready);
}

static PyObject *
transport_start_reading(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (self->loop != NULL && start_reading(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- writing ---------------------------------------------------------- */

static int
check_writable(SocketTransportObject *self, const char *method)
{
    if (self->eof) {
        PyErr_Format(PyExc_RuntimeError,
                     "Cannot call %s() after write_eof()", method);
        return -1;
    }
    if (self->empty_waiter != NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "unable to %s; sendfile is in progress", method);
        return -1;
    }
    return 0;
}

static int
shutdown_write(SocketTransportObject *self)
{
    if (shutdown(self->fd, SHUT_WR) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static PyObject *
transport_write(SocketTransportObject *self, PyObject *data)
{
    Py_buffer view;
    Py_ssize_t sent = 0;

    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data)) {
        /* 3.14's selector transport names the three types it takes. */
        return PyErr_Format(PyExc_TypeError,
#if PY_VERSION_HEX >= 0x030E0000
                            "data argument must be a bytes, bytearray, or "
                            "memoryview object, not '%.200s'",
#else
                            "data argument must be a bytes-like object, "
                            "not '%.200s'",
#endif
                            Py_TYPE(data)->tp_name);
    }
    if (check_writable(self, "write") < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len == 0) {
        goto done;
    }
    if (self->conn_lost || self->loop == NULL) {
        /* stdlib drops writes after the connection is lost, warning once
         * they keep coming. */
        if (self->conn_lost >= CIO_LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
            PyObject *res = PyObject_CallMethod(
                transport_state(self)->logger, "warning", "s",
                "socket.send() raised exception.");
            if (res == NULL) {
                PyBuffer_Release(&view);
                return NULL;
            }
            Py_DECREF(res);
        }
        self->conn_lost++;
        goto done;
    }
    if (queue_empty(self)) {
        sent = send(self->fd, view.buf, (size_t)view.len, CIO_SEND_FLAGS);
        if (sent < 0) {
            int err = errno;
            if (!cio_would_block(err)) {
                PyBuffer_Release(&view);
                if (fatal_errno(self, err,
                                "Fatal write error on socket transport") < 0) {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
            sent = 0;
        }
        if (sent == view.len) {
            goto done;
        }
        if (watch_or_fail(self, CIO_POLL_WRITE, self->write_ready) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        if (self->conn_lost) {  /* it failed: the data goes nowhere */
            goto done;
        }
    }
    if (cio_write_queue_append(&self->queue, data, &view, sent) < 0 ||
        maybe_pause_protocol(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
done:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
transport_writelines(SocketTransportObject *self, PyObject *list_of_data)
{
    PyObject *empty, *joined, *res;

#if PY_VERSION_HEX >= 0x030C0000
    /* 3.11's writelines() is WriteTransport's: write()'s checks apply. */
    if (check_writable(self, "writelines") < 0) {
        return NULL;
    }
#endif
    /* One buffer for the lot: a single send() instead of one per item. */
    empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL) {
        return NULL;
    }
    joined = PyObject_CallMethod(empty, "join", "(O)", list_of_data);
    Py_DECREF(empty);
    if (joined == NULL) {
        return NULL;
    }
    res = transport_write(self, joined);
    Py_DECREF(joined);
    return res;
}

/* The queue could not be sent: the transport fails, and so does a
 * sendfile waiting for the queue. */
static int
drain_failed(SocketTransportObject *self, int err)
{
    PyObject *exc;
    int rc;

    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_WRITE) < 0) {
        return -1;
    }
    cio_write_queue_clear(&self->queue);
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    exc = cio_fetch_exception();
    rc = cio_socket_transport_fatal_error(
        self, Py_NewRef(exc), "Fatal write error on socket transport");
    if (rc == 0) {
        rc = wake_empty_waiter(self, exc);
    }
    Py_DECREF(exc);
    return rc;
}

/* loop.sendfile()'s handshake with the transport (selector_events'
 * _make_empty_waiter): a future done once everything queued is sent. */
static PyObject *
transport_make_empty_waiter(SocketTransportObject *self,
                            PyObject *Py_UNUSED(ig))
{
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Transport is closed");
        return NULL;
    }
    self->empty_waiter = PyObject_CallMethod((PyObject *)self->loop,
                                             "create_future", NULL);
    if (self->empty_waiter == NULL ||
        (queue_empty(self) && wake_empty_waiter(self, NULL) < 0)) {
        return NULL;
    }
    return Py_NewRef(self->empty_waiter);
}

static PyObject *
transport_reset_empty_waiter(SocketTransportObject *self,
                             PyObject *Py_UNUSED(ig))
{
    Py_CLEAR(self->empty_waiter);
    Py_RETURN_NONE;
}

/* sendfile hands the socket to loop.sock_sendfile(), whose add_writer()
 * must not find the fd owned: these give it up and take it back. */
static PyObject *
transport_release_fd(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (self->loop != NULL) {
        cio_loop_forget_fd_transport(self->loop, self->fd, (PyObject *)self);
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_reclaim_fd(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    /* Only while the transport holds its socket: the loop's fd map
     * borrows the transport, and a released one forgets itself. */
    if (self->loop != NULL && self->sock != NULL &&
        cio_loop_set_fd_transport(self->loop, self->fd,
                                  (PyObject *)self) < 0) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_write_ready(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    Py_ssize_t n;

    if (self->conn_lost || self->loop == NULL) {
        Py_RETURN_NONE;
    }
    n = queue_empty(self) ? 0 : cio_write_queue_writev(&self->queue, self->fd);
    if (n < 0) {
        if (!cio_would_block((int)-n) && drain_failed(self, (int)-n) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    cio_write_queue_consume(&self->queue, n);
    if (maybe_resume_protocol(self) < 0) {  /* may queue more */
        return NULL;
    }
    if (queue_empty(self) && self->loop != NULL) {
        if (cio_loop_remove_watcher(self->loop, self->fd,
                                    CIO_POLL_WRITE) < 0 ||
            wake_empty_waiter(self, NULL) < 0) {
            return NULL;
        }
        if (self->closing) {
            /* Unless resume_writing() aborted, which reports it already. */
            if (self->conn_lost) {
                Py_RETURN_NONE;
            }
            return cio_socket_transport_connection_lost(self, Py_None);
        }
        if (self->eof && shutdown_write(self) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_write_eof(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (self->closing || self->eof) {
        Py_RETURN_NONE;
    }
    self->eof = 1;
    if (queue_empty(self) && shutdown_write(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_can_write_eof(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    Py_RETURN_TRUE;
}

/* ---- state and control ------------------------------------------------ */

/* close(): stop reading now, report the loss once the queue drains. */
static int
transport_close_impl(SocketTransportObject *self)
{
    if (self->closing || self->loop == NULL) {
        return 0;
    }
    self->closing = 1;
    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0) {
        return -1;
    }
    if (queue_empty(self)) {
        self->conn_lost++;
        if (cio_loop_remove_watcher(self->loop, self->fd,
                                    CIO_POLL_WRITE) < 0 ||
            schedule_connection_lost(self, Py_None) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
transport_close(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (transport_close_impl(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_abort(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (self->loop != NULL && force_close(self, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* sslproto's error path calls this directly. */
static PyObject *
transport_force_close(SocketTransportObject *self, PyObject *exc)
{
    if (self->loop != NULL &&
        force_close(self, exc == Py_None ? NULL : exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_is_closing(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
transport_is_reading(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return PyBool_FromLong(!self->closing && !self->paused);
}

static PyObject *
transport_pause_reading(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (self->closing || self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 1;
    if (cio_loop_remove_watcher(self->loop, self->fd, CIO_POLL_READ) < 0 ||
        debug_log(self, "%r pauses reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_resume_reading(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    if (self->closing || !self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 0;
    if (start_reading(self) < 0 ||
        debug_log(self, "%r resumes reading") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
set_protocol(SocketTransportObject *self, PyObject *protocol)
{
    int buffered = PyObject_IsInstance(
        protocol, transport_state(self)->buffered_protocol_type);

    if (buffered < 0 || cio_streams_adopt(transport_state(self), protocol) < 0) {
        return -1;
    }
    self->buffered = (char)buffered;
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->protocol_connected = 1;
    return 0;
}

static PyObject *
transport_set_protocol(SocketTransportObject *self, PyObject *protocol)
{
    if (set_protocol(self, protocol) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_get_protocol(SocketTransportObject *self, PyObject *Py_UNUSED(ig))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
transport_get_extra_info(SocketTransportObject *self, PyObject *const *args,
                         Py_ssize_t nargs)
{
    return cio_extra_info_get(self->extra, args, nargs);
}

static PyObject *
transport_repr(SocketTransportObject *self)
{
    const char *state = "";
    PyObject *name = PyType_GetName(Py_TYPE(self)), *r;

    if (name == NULL) {
        return NULL;
    }
    if (self->sock == NULL) {
        state = " closed";
    }
    else if (self->closing) {
        state = " closing";
    }
    if (self->loop != NULL && !self->loop->closed) {
        r = PyUnicode_FromFormat(
            "<%U%s fd=%d read=%s write=<%s, bufsize=%zd>>", name, state,
            self->fd,
            cio_loop_is_watching(self->loop, self->fd, CIO_POLL_READ)
                ? "polling" : "idle",
            cio_loop_is_watching(self->loop, self->fd, CIO_POLL_WRITE)
                ? "polling" : "idle",
            self->queue.size);
    }
    else {
        r = PyUnicode_FromFormat("<%U%s fd=%d>", name, state, self->fd);
    }
    Py_DECREF(name);
    return r;
}

/* ---- construction and teardown ---------------------------------------- */

/* stdlib's base_events._set_nodelay: TCP_NODELAY on TCP sockets. ints
 * are the socket's family, type and proto. A socket.socket's setsockopt
 * would make the system call on fd and raise its OSError: done here
 * directly; anything else through its method. */
static int
set_nodelay(cio_state *st, PyObject *sock, int fd, const long ints[3])
{
    if ((ints[0] == AF_INET || ints[0] == AF_INET6) &&
        ints[1] == SOCK_STREAM && ints[2] == IPPROTO_TCP) {
        if (Py_IS_TYPE(sock, (PyTypeObject *)st->socket_type)) {
            int rc = cio_socket_set_nodelay(fd);
            return rc < 0 ? (cio_raise_errno(rc), -1) : 0;
        }
        PyObject *args[3] = {PyLong_FromLong(IPPROTO_TCP),
                             PyLong_FromLong(TCP_NODELAY), PyLong_FromLong(1)};
        PyObject *res = args[0] && args[1] && args[2]
                            ? cio_call_method(st, sock, CIO_NAME_setsockopt,
                                              args, 3)
                            : NULL;
        for (int i = 0; i < 3; i++) {
            Py_XDECREF(args[i]);
        }
        Py_XDECREF(res);
        return res ? 0 : -1;
    }
    return 0;
}

/* sock.getsockname() (peer 0) or sock.getpeername() (peer 1), None when
 * that raises OSError. A socket.socket of an IP or Unix family is asked
 * with the system call itself and its address formatted here, as
 * socketmodule would; anything else through its method. */
static PyObject *
address_info(cio_state *st, PyObject *sock, int fd, const long ints[3],
             int peer)
{
    PyObject *value;

    if (Py_IS_TYPE(sock, (PyTypeObject *)st->socket_type) &&
        (ints[0] == AF_INET || ints[0] == AF_INET6 || ints[0] == AF_UNIX)) {
        struct sockaddr_storage addr;
        socklen_t len;

        if (cio_socket_name(fd, peer, &addr, &len) < 0) {
            Py_RETURN_NONE;
        }
        return cio_sockaddr_object(&addr, len);
    }
    value = cio_call_method(st, sock,
                            peer ? CIO_NAME_getpeername : CIO_NAME_getsockname,
                            NULL, 0);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return value;
}

/* extra[key] = address_info(...). */
static int
set_address_info(cio_state *st, PyObject *extra, PyObject *key,
                 PyObject *sock, int fd, const long ints[3], int peer)
{
    PyObject *value = address_info(st, sock, fd, ints, peer);
    int rc;

    if (value == NULL) {
        return -1;
    }
    rc = PyDict_SetItem(extra, key, value);
    Py_DECREF(value);
    return rc;
}

int
cio_socket_transport_setup(SocketTransportObject *self, LoopObject *loop,
                           PyObject *sock, PyObject *protocol,
                           PyObject *extra, PyObject *server,
                           cio_name_t writer)
{
    cio_state *st = loop->state;
    PyObject *trsock;
    long ints[3];  /* family, type, proto */
    int has_peer;

    self->extra = extra == Py_None ? PyDict_New() : Py_NewRef(extra);
    if (self->extra == NULL) {
        return -1;
    }
    cio_set_base_slot(CIO_WRITE_TRANSPORT(self), CIO_SLOT_EXTRA, self->extra);
    if (cio_write_transport_init(CIO_WRITE_TRANSPORT(self), loop) < 0) {
        return -1;
    }
    self->sock = Py_NewRef(sock);
    trsock = cio_transport_socket_new(st, sock);
    if (trsock == NULL ||
        PyDict_SetItem(self->extra, CIO_NAME(st, socket), trsock) < 0) {
        Py_XDECREF(trsock);
        return -1;
    }
    Py_DECREF(trsock);
    self->fd = cio_socket_fd(st, sock);
    if (self->fd < 0 || cio_socket_ints(st, sock, ints) < 0) {
        return -1;
    }
    if (set_address_info(st, self->extra, CIO_NAME(st, sockname), sock,
                         self->fd, ints, 0) < 0) {
        return -1;
    }
    has_peer = PyDict_Contains(self->extra, st->str_peername);
    if (has_peer < 0 ||
        (!has_peer && set_address_info(st, self->extra, st->str_peername,
                                       sock, self->fd, ints, 1) < 0)) {
        return -1;
    }
    if (set_protocol(self, protocol) < 0) {
        return -1;
    }
    self->read_ready = PyObject_GetAttr((PyObject *)self,
                                        CIO_NAME(st, _read_ready));
    self->write_ready = PyObject_GetAttr((PyObject *)self, st->names[writer]);
    if (self->read_ready == NULL || self->write_ready == NULL) {
        return -1;
    }
    if (server != Py_None) {
        self->server = Py_NewRef(server);
        if (call_server(self, CIO_NAME__attach) < 0) {
            return -1;
        }
    }
    if (cio_loop_set_fd_transport(loop, self->fd, (PyObject *)self) < 0) {
        return -1;
    }
    return set_nodelay(st, sock, self->fd, ints);
}

/* Schedules what stdlib's __init__ schedules, in the same order:
 * connection_made, the start of reading, then the waiter; all or none. */
int
cio_socket_transport_schedule_start(SocketTransportObject *self,
                                    PyObject *waiter)
{
    cio_state *st = self->loop->state;
    PyObject *made, *start;
    PyObject *args[2] = {(PyObject *)self, NULL};
    cio_soon_batch_t batch;
    int rc;

    cio_soon_batch_init(&batch, self->loop, self->context);
    made = PyObject_GetAttr(self->protocol, CIO_NAME(st, connection_made));
    rc = cio_soon_batch_add(&batch, made, args, 1);
    Py_XDECREF(made);
    if (rc == 0) {
        start = PyObject_GetAttr((PyObject *)self,
                                 CIO_NAME(st, _start_reading));
        rc = cio_soon_batch_add(&batch, start, NULL, 0);
        Py_XDECREF(start);
    }
    if (rc == 0 && waiter != Py_None) {
        args[0] = waiter;
        args[1] = Py_None;
        rc = cio_soon_batch_add(&batch, st->set_result_unless_cancelled,
                                args, 2);
    }
    return cio_soon_batch_end(&batch, rc);
}

void
cio_socket_transport_abandon(SocketTransportObject *self)
{
    Py_CLEAR(self->read_ready);
    Py_CLEAR(self->write_ready);
    Py_DECREF(self);
}

PyObject *
cio_socket_transport_new(LoopObject *loop, PyObject *sock, PyObject *protocol,
                         PyObject *waiter, PyObject *extra, PyObject *server,
                         PyObject *context)
{
    PyTypeObject *type = loop->state->socket_transport_type;
    SocketTransportObject *self;

    self = (SocketTransportObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fd = -1;
    self->context = Py_XNewRef(context);
    if (cio_socket_transport_setup(self, loop, sock, protocol, extra, server,
                                   CIO_NAME__write_ready) < 0 ||
        cio_socket_transport_schedule_start(self, waiter) < 0) {
        cio_socket_transport_abandon(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* stdlib's __del__: an unclosed transport warns and closes its socket. */
static void
transport_finalize(SocketTransportObject *self)
{
    PyObject *exc = cio_fetch_exception(), *res;

    if (self->sock != NULL) {
        if (PyErr_ResourceWarning((PyObject *)self, 1,
                                  "unclosed transport %R", self) < 0) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        if (self->loop != NULL) {
            cio_loop_forget_fd_transport(self->loop, self->fd,
                                         (PyObject *)self);
        }
        res = PyObject_CallMethod(self->sock, "close", NULL);
        if (res == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        Py_XDECREF(res);
        Py_CLEAR(self->sock);
        if (self->server != NULL && call_server(self, CIO_NAME__detach) < 0) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
    }
    cio_restore_exception(exc);
}

static int
transport_traverse(SocketTransportObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    if (cio_write_transport_traverse(CIO_WRITE_TRANSPORT(self), visit,
                                     arg) != 0) {
        return -1;
    }
    Py_VISIT(self->sock);
    Py_VISIT(self->server);
    Py_VISIT(self->extra);
    Py_VISIT(self->read_ready);
    Py_VISIT(self->write_ready);
    Py_VISIT(self->address);
    Py_VISIT(self->empty_waiter);
    Py_VISIT(self->context);
    Py_VISIT(self->dict);
    return 0;
}

static int
transport_clear(SocketTransportObject *self)
{
    if (self->loop != NULL) {
        cio_loop_forget_fd_transport(self->loop, self->fd, (PyObject *)self);
    }
    cio_write_transport_clear(CIO_WRITE_TRANSPORT(self));
    Py_CLEAR(self->sock);
    Py_CLEAR(self->server);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->read_ready);
    Py_CLEAR(self->write_ready);
    Py_CLEAR(self->address);
    Py_CLEAR(self->empty_waiter);
    Py_CLEAR(self->context);
    Py_CLEAR(self->dict);
    return 0;
}

static void
transport_dealloc(SocketTransportObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, &self->weakreflist)) {
        return;
    }
    transport_clear(self);
    cio_write_queue_free(&self->queue);
    cio_dealloc_end((PyObject *)self);
}

static PyObject *
transport_get_sock_fd(SocketTransportObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->fd);
}

static PyObject *
transport_get_sock(SocketTransportObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->sock ? self->sock : Py_None);
}

static PyObject *
transport_get_closing(SocketTransportObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
transport_get_paused(SocketTransportObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->paused);
}

#if CIO_TRANSPORT_CONTEXT
static PyObject *
transport_get_context(SocketTransportObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->context ? self->context : Py_None);
}
#endif

/* stdlib's private attributes that libraries read; read-only here. */
static PyGetSetDef transport_getset[] = {
    {"_sock_fd", (getter)transport_get_sock_fd, NULL, NULL, NULL},
    {"_sock", (getter)transport_get_sock, NULL, NULL, NULL},
    {"_closing", (getter)transport_get_closing, NULL, NULL, NULL},
    {"_paused", (getter)transport_get_paused, NULL, NULL, NULL},
#if CIO_TRANSPORT_CONTEXT
    {"_context", (getter)transport_get_context, NULL, NULL, NULL},
#endif
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef transport_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(SocketTransportObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(SocketTransportObject, dict),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

#define NOARGS(name, fn, doc) \
    {name, (PyCFunction)(fn), METH_NOARGS, PyDoc_STR(doc)}

static PyMethodDef base_methods[] = {
    NOARGS("close", transport_close,
           "Close after the queued data is sent."),
    NOARGS("abort", transport_abort, "Close now, dropping queued data."),
    NOARGS("is_closing", transport_is_closing, NULL),
    NOARGS("is_reading", transport_is_reading, NULL),
    NOARGS("pause_reading", transport_pause_reading, NULL),
    NOARGS("resume_reading", transport_resume_reading, NULL),
    {"set_protocol", (PyCFunction)transport_set_protocol, METH_O, NULL},
    NOARGS("get_protocol", transport_get_protocol, NULL),
    CIO_WRITE_TRANSPORT_METHODS
    {"get_extra_info", (PyCFunction)(void (*)(void))transport_get_extra_info,
     METH_FASTCALL, NULL},
    NOARGS("_start_reading", transport_start_reading, NULL),
    {"_call_connection_lost",
     (PyCFunction)cio_socket_transport_connection_lost, METH_O, NULL},
    {"_force_close", (PyCFunction)transport_force_close, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot base_slots[] = {
    {Py_tp_doc, "What the socket transports share: closing, reading "
                "control, the protocol and extra info."},
    {Py_tp_repr, transport_repr},
    {Py_tp_methods, base_methods},
    {Py_tp_members, transport_members},
    {Py_tp_getset, transport_getset},
    {Py_tp_traverse, transport_traverse},
    {Py_tp_clear, transport_clear},
    {Py_tp_finalize, transport_finalize},
    {Py_tp_dealloc, transport_dealloc},
    {0, NULL},
};

PyType_Spec cio_socket_transport_base_spec = {
    .name = "casyncio._casyncio.SocketTransportBase",
    .basicsize = sizeof(SocketTransportObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_BASETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = base_slots,
};

static PyMethodDef stream_methods[] = {
    {"write", (PyCFunction)transport_write, METH_O,
     "write($self, data, /)\n--\n\nWrite bytes; whatever the socket does "
     "not take now is queued."},
    {"writelines", (PyCFunction)transport_writelines, METH_O,
     "writelines($self, list_of_data, /)\n--\n\nWrite an iterable of "
     "bytes-like objects."},
    NOARGS("write_eof", transport_write_eof,
           "Close the write end after the queued data is sent."),
    NOARGS("can_write_eof", transport_can_write_eof, "Always True."),
    NOARGS("_read_ready", transport_read_ready, NULL),
    NOARGS("_write_ready", transport_write_ready, NULL),
    NOARGS("_make_empty_waiter", transport_make_empty_waiter, NULL),
    NOARGS("_reset_empty_waiter", transport_reset_empty_waiter, NULL),
    NOARGS("_release_fd", transport_release_fd, NULL),
    NOARGS("_reclaim_fd", transport_reclaim_fd, NULL),
    {NULL, NULL, 0, NULL},
};

/* The subclass inherits layout, GC and teardown from the base. */
static PyType_Slot stream_slots[] = {
    {Py_tp_doc, "A stream transport over a connected socket."},
    {Py_tp_methods, stream_methods},
    {0, NULL},
};

PyType_Spec cio_socket_transport_spec = {
    .name = "casyncio._casyncio.SocketTransport",
    .basicsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = stream_slots,
};

