/* The loop's sock_* methods: sock_recv, sock_recv_into, sock_recvfrom,
 * sock_recvfrom_into, sock_sendall, sock_sendto, sock_accept, sock_connect
 * and sock_sendfile; and the resolvers, getaddrinfo and getnameinfo.
 *
 * Each returns a SockCall: a coroutine written in C. Like stdlib's
 * `async def` it does nothing until awaited; then it tries the socket call
 * at once and, only when that would block, creates a Future, watches the
 * fd and retries the call each time the fd is ready, as
 * selector_events.py does. The socket calls go through the socket
 * object's own methods, so results and errors are the socket module's.
 * sock_connect first resolves an IP address as stdlib's _ensure_resolved
 * does: a numeric address at once, in C, anything else by delegating to
 * that coroutine.
 *
 * getaddrinfo and getnameinfo run socket.getaddrinfo / getnameinfo in the
 * default executor, as stdlib does, and wait for its Future, except when
 * no lookup is needed: a numeric address and port (numeric flags for
 * getnameinfo) are resolved at once on the loop's thread, which saves the
 * thread hop stdlib makes for them.
 *
 * sock_sendfile calls os.sendfile each time the socket is writable, as
 * unix_events' _sock_sendfile_native does, and where that is not
 * available delegates to the loop's _sock_sendfile_fallback coroutine
 * (reads and sock_sendall; loop_sendfile.c). */
#include "casyncio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum {
    SOCK_RECV,
    SOCK_RECV_INTO,
    SOCK_RECVFROM,
    SOCK_RECVFROM_INTO,
    SOCK_SENDALL,
    SOCK_SENDTO,
    SOCK_ACCEPT,
    SOCK_CONNECT,
    SOCK_SENDFILE,
    RESOLVE_ADDRINFO,
    RESOLVE_NAMEINFO,
} sock_kind_t;

typedef struct {
    const char *qualname;   /* for repr and the never-awaited warning */
    unsigned event;         /* what the call waits for */
} sock_kind_info_t;

static const sock_kind_info_t kinds[] = {
    [SOCK_RECV] = {"Loop.sock_recv", CIO_POLL_READ},
    [SOCK_RECV_INTO] = {"Loop.sock_recv_into", CIO_POLL_READ},
    [SOCK_RECVFROM] = {"Loop.sock_recvfrom", CIO_POLL_READ},
    [SOCK_RECVFROM_INTO] = {"Loop.sock_recvfrom_into", CIO_POLL_READ},
    [SOCK_SENDALL] = {"Loop.sock_sendall", CIO_POLL_WRITE},
    [SOCK_SENDTO] = {"Loop.sock_sendto", CIO_POLL_WRITE},
    [SOCK_ACCEPT] = {"Loop.sock_accept", CIO_POLL_READ},
    [SOCK_CONNECT] = {"Loop.sock_connect", CIO_POLL_WRITE},
    [SOCK_SENDFILE] = {"Loop.sock_sendfile", CIO_POLL_WRITE},
    [RESOLVE_ADDRINFO] = {"Loop.getaddrinfo", 0},
    [RESOLVE_NAMEINFO] = {"Loop.getnameinfo", 0},
};

typedef enum {
    CALL_CREATED,   /* not awaited yet */
    CALL_DELEGATING, /* suspended in a Python coroutine: sock_connect's
                        _ensure_resolved, sock_sendfile's fallback */
    CALL_WAITING,   /* suspended on fut */
    CALL_DONE,
} call_state_t;

typedef struct {
    PyObject_HEAD
    LoopObject *loop;
    PyObject *sock;       /* None for the resolvers */
    PyObject *arg;        /* n, bufsize, buf, data or address; the
                             resolvers' arguments, as a tuple */
    PyObject *arg2;       /* nbytes or address; NULL for the others */
    PyObject *view;       /* sock_sendall: memoryview(data) once waiting */
    Py_ssize_t sent;      /* sock_sendall: bytes of view already sent;
                             sock_sendfile: bytes of the file sent */
    PyObject *fut;        /* from the first wait on; the executor's
                             for the resolvers */
    PyObject *fut_iter;   /* fut.__await__(), or the _ensure_resolved
                             coroutine, which this call delegates to */
    HandleObject *watch;  /* the reader or writer Handle */
    PyObject *sendfile_args;  /* (sock, file, offset, count) as given */
    long long file_offset;    /* sock_sendfile: where the next send starts */
    Py_ssize_t file_count;    /* bytes asked for; 0 for the whole file */
    Py_ssize_t blocksize;     /* what one os.sendfile() asks for */
    int file_fd;
    char fallback;            /* sock_sendfile(fallback=True) */
    int fd;
    sock_kind_t kind;
    call_state_t state;
} SockCallObject;

/* ---- the socket calls --------------------------------------------------- */

/* The methods this file calls on sockets and futures, interned once
 * (cio_sock_names_init) in the order of this enum. */
typedef enum {
    M_RECV, M_RECV_INTO, M_RECVFROM, M_RECVFROM_INTO, M_SEND, M_SENDTO,
    M_CONNECT, M_CONNECT_EX, M_GETSOCKOPT, M_FILENO, M_GETTIMEOUT, M_DONE,
    M_SET_RESULT, M_SET_EXCEPTION, M_ADD_DONE_CALLBACK, M_ENSURE_RESOLVED,
    M_RUN_IN_EXECUTOR, M_GETADDRINFO_DEBUG, M_SENDFILE_FALLBACK, M_COUNT
} method_t;

static const char *const method_names[M_COUNT] = {
    "recv", "recv_into", "recvfrom", "recvfrom_into", "send", "sendto",
    "connect", "connect_ex", "getsockopt", "fileno", "gettimeout", "done",
    "set_result", "set_exception", "add_done_callback", "_ensure_resolved",
    "run_in_executor", "_getaddrinfo_debug", "_sock_sendfile_fallback"};

int
cio_sock_names_init(cio_state *st)
{
    st->sock_method_names = PyTuple_New(M_COUNT);
    if (st->sock_method_names == NULL) {
        return -1;
    }
    for (int i = 0; i < M_COUNT; i++) {
        PyObject *name = PyUnicode_InternFromString(method_names[i]);
        if (name == NULL) {
            return -1;
        }
        PyTuple_SET_ITEM(st->sock_method_names, i, name);
    }
    return 0;
}

static PyObject *
call_method(SockCallObject *self, PyObject *obj, method_t method,
            PyObject *const *args, size_t nargs)
{
    PyObject *stack[4] = {obj};
    PyObject *name =
        PyTuple_GET_ITEM(self->loop->state->sock_method_names, method);

    for (size_t i = 0; i < nargs; i++) {
        stack[i + 1] = args[i];
    }
    return PyObject_VectorcallMethod(
        name, stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The Python-level `except (BlockingIOError, InterruptedError)`. */
static int
clear_if_would_block(void)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
        PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* sock_sendall: sends what is left of the data. Returns 1 when all of it
 * has gone, 0 when more remains. */
static int
send_rest(SockCallObject *self)
{
    PyObject *rest, *res;
    Py_ssize_t n, total;

    rest = PySequence_GetSlice(self->view, self->sent, PY_SSIZE_T_MAX);
    if (rest == NULL) {
        return -1;
    }
    res = call_method(self, self->sock, M_SEND, &rest, 1);
    Py_DECREF(rest);
    if (res == NULL) {
        return -1;
    }
    n = PyLong_AsSsize_t(res);
    Py_DECREF(res);
    total = PyObject_Length(self->view);
    if ((n == -1 || total == -1) && PyErr_Occurred()) {
        return -1;
    }
    self->sent += n;
    return self->sent == total;
}

/* The first attempt of sock_sendall: the data as given, then a
 * memoryview of it if some is left. */
static int
send_first(SockCallObject *self)
{
    PyObject *res = call_method(self, self->sock, M_SEND, &self->arg, 1);
    Py_ssize_t n = 0, total;

    if (res != NULL) {
        n = PyLong_AsSsize_t(res);
        Py_DECREF(res);
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    else if (!clear_if_would_block()) {
        return -1;
    }
    total = PyObject_Length(self->arg);
    if (total < 0) {
        return -1;
    }
    if (n == total) {
        return 1;
    }
    self->view = PyMemoryView_FromObject(self->arg);
    self->sent = n;
    return self->view == NULL ? -1 : 0;
}

/* sock_connect's first attempt on a socket.socket: connect_ex(), which
 * reports the EINPROGRESS of nearly every non-blocking connect as a number
 * rather than as a BlockingIOError to be made and caught. Any other error
 * is raised as connect() raises it (errno and strerror). Returns as
 * try_call does. */
static int
connect_at_once(SockCallObject *self, PyObject **result)
{
    PyObject *res = call_method(self, self->sock, M_CONNECT_EX, &self->arg,
                                1);
    long err;

    if (res == NULL) {
        return -1;
    }
    err = PyLong_AsLong(res);
    Py_DECREF(res);
    if (err == -1 && PyErr_Occurred()) {
        return -1;
    }
    switch (err) {
    case 0:
        *result = Py_NewRef(Py_None);
        return 1;
    case EINPROGRESS:
    case EAGAIN:
    case EALREADY:
    case EINTR:
        return 0;  /* BlockingIOError or InterruptedError: wait */
    default:
        errno = (int)err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
}

/* sock_connect once the fd is writable: selector_events'
 * _sock_connect_cb, which reads the outcome from SO_ERROR. */
static PyObject *
connect_outcome(SockCallObject *self)
{
    PyObject *args[2], *res;
    long err;

    args[0] = PyLong_FromLong(SOL_SOCKET);
    args[1] = PyLong_FromLong(SO_ERROR);
    res = args[0] && args[1]
              ? call_method(self, self->sock, M_GETSOCKOPT, args, 2)
              : NULL;
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    if (res == NULL) {
        return NULL;
    }
    err = PyLong_AsLong(res);
    Py_DECREF(res);
    if (err == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (err != 0) {
        PyObject *exc = PyObject_CallFunction(
            PyExc_OSError, "lN", err,
            PyUnicode_FromFormat("Connect call failed %S", self->arg));
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    Py_RETURN_NONE;
}

/* sock_sendfile is over: leave the file's position after what was sent
 * (_sock_sendfile_update_filepos). Returns the byte count, or NULL. */
static PyObject *
sendfile_done(SockCallObject *self)
{
    if (self->sent > 0 &&
        lseek(self->file_fd, (off_t)self->file_offset, SEEK_SET) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSsize_t(self->sent);
}

/* os.sendfile(sock.fileno(), file_fd, offset, blocksize); a ConnectionError
 * for ENOTCONN, as stdlib's after its first wait (every call here is made
 * after one). */
static PyObject *
sendfile_call(SockCallObject *self, Py_ssize_t blocksize)
{
    PyObject *fileno = call_method(self, self->sock, M_FILENO, NULL, 0);
    PyObject *sent, *exc, *wrapped;

    if (fileno == NULL) {
        return NULL;
    }
    sent = PyObject_CallMethod(self->loop->state->os_module, "sendfile",
                               "OiLn", fileno, self->file_fd,
                               self->file_offset, blocksize);
    Py_DECREF(fileno);
    if (sent != NULL || !PyErr_ExceptionMatches(PyExc_OSError)) {
        return sent;
    }
    exc = cio_fetch_exception();
    if (((PyOSErrorObject *)exc)->myerrno == NULL ||
        PyLong_AsLong(((PyOSErrorObject *)exc)->myerrno) != ENOTCONN ||
        Py_IS_TYPE(exc, (PyTypeObject *)PyExc_ConnectionError)) {
        cio_restore_exception(exc);
        return NULL;
    }
    wrapped = PyObject_CallFunction(PyExc_ConnectionError, "si",
                                    "socket is not connected", ENOTCONN);
    if (wrapped != NULL) {
        PyException_SetCause(wrapped, exc);  /* steals exc */
        PyErr_SetObject(PyExc_ConnectionError, wrapped);
        Py_DECREF(wrapped);
    }
    else {
        Py_DECREF(exc);
    }
    return NULL;
}

/* One os.sendfile() (_sock_sendfile_native_impl): the total once the
 * file or count is done, NULL without an exception to wait until the
 * socket is writable again, NULL with one on failure. An OSError before
 * any byte went becomes SendfileNotAvailableError, for the fallback. */
static PyObject *
sendfile_step(SockCallObject *self)
{
    Py_ssize_t blocksize = self->blocksize, n;
    PyObject *sent;

    if (self->file_count) {
        blocksize = self->file_count - self->sent;
        if (blocksize <= 0) {
            return sendfile_done(self);
        }
    }
    sent = sendfile_call(self, blocksize);
    if (sent == NULL) {
        PyObject *exc, *done;

        if (clear_if_would_block()) {
            return NULL;
        }
        exc = cio_fetch_exception();
        done = sendfile_done(self);
        if (done == NULL) {
            Py_DECREF(exc);
            return NULL;
        }
        Py_DECREF(done);
        if (self->sent == 0 &&
            PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
            /* Nothing went yet: the fallback can still send it all. */
            PyErr_SetString(self->loop->state->sendfile_not_available,
                            "os.sendfile call failed");
            Py_DECREF(exc);
        }
        else {
            cio_restore_exception(exc);
        }
        return NULL;
    }
    n = PyLong_AsSsize_t(sent);
    Py_DECREF(sent);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n == 0) {
        return sendfile_done(self);  /* end of file */
    }
    self->file_offset += n;
    self->sent += n;
    if (self->file_count && self->sent >= self->file_count) {
        return sendfile_done(self);
    }
    return NULL;
}

/* One attempt at the socket call: 1 with *result set when it completed,
 * 0 when it would block, -1 with an exception. first is the attempt made
 * when the call is awaited; the others run when the fd is ready. */
static int
try_call(SockCallObject *self, int first, PyObject **result)
{
    PyObject *args[3] = {self->arg, self->arg2, self->arg2};
    PyObject *res;
    int rc;

    *result = NULL;
    switch (self->kind) {
    case SOCK_RECV:
        res = call_method(self, self->sock, M_RECV, args, 1);
        break;
    case SOCK_RECV_INTO:
        res = call_method(self, self->sock, M_RECV_INTO, args, 1);
        break;
    case SOCK_RECVFROM:
        res = call_method(self, self->sock, M_RECVFROM, args, 1);
        break;
    case SOCK_RECVFROM_INTO:
        res = call_method(self, self->sock, M_RECVFROM_INTO, args, 2);
        break;
    case SOCK_SENDTO:
        if (first) {
            res = call_method(self, self->sock, M_SENDTO, args, 2);
        }
        else {
            /* stdlib's retry passes flags explicitly */
            PyObject *zero = PyLong_FromLong(0);
            if (zero == NULL) {
                return -1;
            }
            args[1] = zero;
            res = call_method(self, self->sock, M_SENDTO, args, 3);
            Py_DECREF(zero);
        }
        break;
    case SOCK_ACCEPT: {
        cio_acceptor_t acceptor;
        res = cio_acceptor_init(self->loop->state, self->sock, &acceptor) < 0
                  ? NULL
                  : cio_acceptor_accept(self->loop->state, &acceptor);
        break;
    }
    case SOCK_CONNECT:
        if (!first) {
            res = connect_outcome(self);
        }
        else if (Py_IS_TYPE(self->sock,
                            (PyTypeObject *)self->loop->state->socket_type)) {
            return connect_at_once(self, result);
        }
        else {
            res = call_method(self, self->sock, M_CONNECT, args, 1);
        }
        break;
    case SOCK_SENDFILE:
        /* Unlike stdlib, the first os.sendfile() waits for the socket to
           be writable: run from the loop, it has no application frame
           below it. Tools that flag blocking calls made from application
           code (blockbuster, in aiohttp's tests) allow os.sendfile only
           under stdlib's own frames, which a C loop does not have. The
           outcome is the same: an error before any byte went is
           SendfileNotAvailableError either way. */
        if (first) {
            return 0;
        }
        res = sendfile_step(self);
        break;
    case SOCK_SENDALL:
        if (!first) {
            rc = send_rest(self);
        }
        else {
            rc = send_first(self);
        }
        if (rc < 0 && !first && clear_if_would_block()) {
            return 0;
        }
        if (rc > 0) {
            *result = Py_NewRef(Py_None);
        }
        return rc;
    default:
        Py_UNREACHABLE();
    }
    if (res != NULL) {
        *result = res;
        return 1;
    }
    return !PyErr_Occurred() || clear_if_would_block() ? 0 : -1;
}

/* ---- waiting on the fd -------------------------------------------------- */

static PyObject *
fut_call(SockCallObject *self, method_t method, PyObject *arg)
{
    return call_method(self, self->fut, method, &arg, arg != NULL);
}

/* After fut.set_result() or set_exception() raised (a MemoryError, say):
 * where fut is still pending, it gets that exception, so its awaiter is
 * not left waiting for an fd that has nothing more to say (stdlib's
 * callbacks leave it waiting). Where fut is done, it was its callbacks
 * that could not be scheduled, which no loop can redo: the exception
 * goes to the exception handler. */
static PyObject *
fail_pending_future(SockCallObject *self)
{
    PyObject *exc = cio_fetch_exception(), *done, *res;
    int is_done;

    if (cio_is_exit_exception(exc)) {
        cio_restore_exception(exc);
        return NULL;
    }
    done = fut_call(self, M_DONE, NULL);
    is_done = done ? PyObject_IsTrue(done) : -1;
    Py_XDECREF(done);
    if (is_done != 0) {
        if (is_done < 0) {
            PyErr_Clear();
        }
        cio_restore_exception(exc);
        return NULL;
    }
    res = fut_call(self, M_SET_EXCEPTION, exc);
    Py_DECREF(exc);
    Py_XDECREF(res);
    return res == NULL ? NULL : Py_NewRef(Py_None);
}

/* The watcher callback: selector_events' _sock_recv and friends. */
static PyObject *
sock_call_io_ready(SockCallObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *done = fut_call(self, M_DONE, NULL), *result, *res;
    int is_done = done ? PyObject_IsTrue(done) : -1;

    Py_XDECREF(done);
    if (is_done != 0) {
        return is_done < 0 ? NULL : Py_NewRef(Py_None);
    }
    switch (try_call(self, 0, &result)) {
    case 0:
        Py_RETURN_NONE;  /* try again next time */
    case 1:
        res = fut_call(self, M_SET_RESULT, result);
        Py_DECREF(result);
        break;
    default: {
        PyObject *exc = cio_fetch_exception();
        if (cio_is_exit_exception(exc)) {
            cio_restore_exception(exc);
            return NULL;
        }
        res = fut_call(self, M_SET_EXCEPTION, exc);
        Py_DECREF(exc);
    }
    }
    if (res == NULL) {
        return fail_pending_future(self);
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* fut's done callback: selector_events' _sock_read_done/_sock_write_done,
 * which leave the fd alone if another watcher has replaced this one. */
static PyObject *
sock_call_fut_done(SockCallObject *self, PyObject *Py_UNUSED(fut))
{
    if (self->watch != NULL && !self->watch->cancelled &&
        cio_loop_remove_watcher(self->loop, self->fd,
                                kinds[self->kind].event) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef io_ready_def = {
    "_io_ready", (PyCFunction)sock_call_io_ready, METH_NOARGS, NULL};
static PyMethodDef fut_done_def = {
    "_fut_done", (PyCFunction)sock_call_fut_done, METH_O, NULL};

/* Sets fut_iter to fut.__await__(), which the call delegates to. */
static int
await_fut(SockCallObject *self)
{
    self->fut_iter = cio_coro_await_iter(self->fut);
    return self->fut_iter == NULL ? -1 : 0;
}

/* The call would block: a Future, the fd watched, and the Future's
 * done callback to stop watching it. */
static int
start_waiting(SockCallObject *self)
{
    PyObject *fileno, *io_ready, *fut_done, *res;
    int rc;

    self->fut = cio_loop_create_future(self->loop);
    if (self->fut == NULL) {
        return -1;
    }
    fileno = call_method(self, self->sock, M_FILENO, NULL, 0);
    self->fd = fileno ? cio_loop_fd_from_object(fileno) : -1;
    Py_XDECREF(fileno);
    if (self->fd < 0 || cio_loop_ensure_fd_no_transport(self->loop,
                                                        self->fd) < 0) {
        return -1;
    }
    io_ready = PyCFunction_New(&io_ready_def, (PyObject *)self);
    if (io_ready == NULL) {
        return -1;
    }
    rc = cio_loop_add_watcher(self->loop, self->fd, kinds[self->kind].event,
                              io_ready, NULL, 0, NULL,
                              &self->watch);
    Py_DECREF(io_ready);
    if (rc < 0) {
        return -1;
    }
    fut_done = PyCFunction_New(&fut_done_def, (PyObject *)self);
    res = fut_done ? fut_call(self, M_ADD_DONE_CALLBACK, fut_done)
                   : NULL;
    Py_XDECREF(fut_done);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return await_fut(self);
}

/* ---- the coroutine protocol --------------------------------------------- */

int
cio_check_not_ssl_socket(cio_state *st, PyObject *sock)
{
    int is_ssl;

    if (st->ssl_socket_type == NULL) {
        return 0;  /* Python without ssl */
    }
    is_ssl = PyObject_IsInstance(sock, st->ssl_socket_type);
    if (is_ssl > 0) {
        PyErr_SetString(PyExc_TypeError, "Socket cannot be of type SSLSocket");
    }
    return is_ssl != 0 ? -1 : 0;
}

/* base_events._check_ssl_socket and the debug-mode blocking check. */
static int
check_socket(SockCallObject *self)
{
    if (cio_check_not_ssl_socket(self->loop->state, self->sock) < 0) {
        return -1;
    }
    if (self->loop->debug) {
        PyObject *timeout = call_method(self, self->sock, M_GETTIMEOUT, NULL,
                                        0);
        PyObject *zero = PyLong_FromLong(0);
        int blocking = timeout && zero
                           ? PyObject_RichCompareBool(timeout, zero, Py_NE)
                           : -1;
        Py_XDECREF(timeout);
        Py_XDECREF(zero);
        if (blocking != 0) {
            if (blocking > 0) {
                PyErr_SetString(PyExc_ValueError,
                                "the socket must be non-blocking");
            }
            return -1;
        }
    }
    /* sock_recvfrom_into: `if not nbytes: nbytes = len(buf)` */
    if (self->kind == SOCK_RECVFROM_INTO) {
        int given = PyObject_IsTrue(self->arg2);
        if (given == 0) {
            Py_ssize_t len = PyObject_Length(self->arg);
            Py_SETREF(self->arg2, len < 0 ? NULL : PyLong_FromSsize_t(len));
        }
        if (given < 0 || self->arg2 == NULL) {
            return -1;
        }
    }
    return 0;
}

/* From the first attempt at the socket call to the first suspension. */
static PySendResult
sock_call_attempt(SockCallObject *self, PyObject **result)
{
    int rc = try_call(self, 1, result);

    if (rc != 0) {
        return rc > 0 ? PYGEN_RETURN : PYGEN_ERROR;
    }
    if (start_waiting(self) < 0) {
        return PYGEN_ERROR;
    }
    self->state = CALL_WAITING;
    return PyIter_Send(self->fut_iter, Py_None, result);
}

/* sock_connect on an IP socket: the _ensure_resolved coroutine, which
 * finishes at once for a numeric address and otherwise waits for
 * getaddrinfo; NULL with an exception. */
static PyObject *
connect_resolver(SockCallObject *self, const long ints[3])
{
    PyObject *name = PyTuple_GET_ITEM(self->loop->state->sock_method_names,
                                      M_ENSURE_RESOLVED);
    PyObject *kwnames = Py_BuildValue("(ssss)", "family", "type", "proto",
                                      "loop");
    PyObject *args[6] = {(PyObject *)self->loop, self->arg, NULL, NULL, NULL,
                         (PyObject *)self->loop};
    PyObject *coro = NULL;

    for (int i = 0; i < 3; i++) {
        args[2 + i] = PyLong_FromLong(ints[i]);
    }
    if (kwnames != NULL && args[2] && args[3] && args[4]) {
        coro = PyObject_VectorcallMethod(name, args, 2, kwnames);
    }
    Py_XDECREF(kwnames);
    for (int i = 2; i < 5; i++) {
        Py_XDECREF(args[i]);
    }
    return coro;
}

/* The resolver returned its list: connect to the first address. */
static PySendResult
connect_resolved(SockCallObject *self, PyObject *infos, PyObject **result)
{
    PyObject *first = PySequence_GetItem(infos, 0), *address;

    Py_DECREF(infos);
    address = first ? PySequence_GetItem(first, 4) : NULL;
    Py_XDECREF(first);
    if (address == NULL) {
        return PYGEN_ERROR;
    }
    Py_SETREF(self->arg, address);
    return sock_call_attempt(self, result);
}

/* sock_connect's resolution step (IP sockets only): a numeric address
 * is used as it is, anything else goes through _ensure_resolved. */
static PySendResult
connect_start(SockCallObject *self, PyObject **result)
{
    long ints[3];  /* family, type, proto */
    PyObject *address;
    PySendResult rc;

    if (cio_socket_ints(self->loop->state, self->sock, ints) < 0) {
        return PYGEN_ERROR;
    }
    if (ints[0] != AF_INET && ints[0] != AF_INET6) {
        return sock_call_attempt(self, result);
    }
    address = cio_numeric_sockaddr(self->arg, ints, NULL);
    if (address == NULL) {
        return PYGEN_ERROR;
    }
    if (address != Py_None) {
        Py_SETREF(self->arg, address);
        return sock_call_attempt(self, result);
    }
    Py_DECREF(address);
    self->fut_iter = connect_resolver(self, ints);
    if (self->fut_iter == NULL) {
        return PYGEN_ERROR;
    }
    self->state = CALL_DELEGATING;
    rc = PyIter_Send(self->fut_iter, Py_None, result);
    if (rc == PYGEN_NEXT) {
        return rc;
    }
    self->state = CALL_DONE;
    Py_CLEAR(self->fut_iter);
    return rc == PYGEN_RETURN ? connect_resolved(self, *result, result) : rc;
}

/* ---- the resolvers ------------------------------------------------------ */

/* None, or an IPv4 or IPv6 address in numeric form (str or bytes). */
static int
is_numeric_host(PyObject *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    const char *s;
    Py_ssize_t n;

    if (host == Py_None) {
        return 1;
    }
    if (PyUnicode_Check(host)) {
        s = PyUnicode_AsUTF8AndSize(host, &n);
        if (s == NULL) {
            PyErr_Clear();  /* left for getaddrinfo to report */
            return 0;
        }
    }
    else if (PyBytes_Check(host)) {
        s = PyBytes_AS_STRING(host);
        n = PyBytes_GET_SIZE(host);
    }
    else {
        return 0;
    }
    if ((size_t)n != strlen(s)) {
        return 0;
    }
    return inet_pton(AF_INET, s, addr) == 1 ||
           inet_pton(AF_INET6, s, addr) == 1;
}

/* None, an int, or decimal digits (str or bytes): no service lookup. */
static int
is_numeric_port(PyObject *port)
{
    const char *s;
    Py_ssize_t n;

    if (port == Py_None || PyLong_Check(port)) {
        return 1;
    }
    if (PyUnicode_Check(port)) {
        if (!PyUnicode_IS_ASCII(port)) {
            return 0;
        }
        s = (const char *)PyUnicode_DATA(port);
        n = PyUnicode_GET_LENGTH(port);
    }
    else if (PyBytes_Check(port)) {
        s = PyBytes_AS_STRING(port);
        n = PyBytes_GET_SIZE(port);
    }
    else {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return n > 0;
}

/* Whether flags (a Python int) has all the bits of mask and none of
 * refused; 0 for anything that is not an int. */
static int
flags_are(PyObject *flags, long mask, long refused)
{
    long f = PyLong_Check(flags) ? PyLong_AsLong(flags) : 0;

    if (f == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return (f & mask) == mask && (f & refused) == 0;
}

/* Whether the resolver's answer needs no lookup: getaddrinfo of a
 * numeric host and port (a canonical name is left to the lookup), or
 * getnameinfo asked for numbers only. */
static int
resolves_locally(SockCallObject *self)
{
    PyObject *const *a = &PyTuple_GET_ITEM(self->arg, 0);

    if (self->kind == RESOLVE_NAMEINFO) {
        return flags_are(a[1], NI_NUMERICHOST | NI_NUMERICSERV, 0);
    }
    return is_numeric_host(a[0]) && is_numeric_port(a[1]) &&
           flags_are(a[5], 0, AI_CANONNAME);
}

/* The resolver's body: socket.getaddrinfo(*arg) (or getnameinfo) at once
 * when no lookup is needed, else in the default executor; in debug mode
 * always the executor and stdlib's logging _getaddrinfo_debug. */
static PySendResult
resolve_start(SockCallObject *self, PyObject **result)
{
    int addrinfo = self->kind == RESOLVE_ADDRINFO;
    Py_ssize_t n = PyTuple_GET_SIZE(self->arg);
    PyObject *stack[9], *fn, *name;

    /* run_in_executor's check, which the numeric path skips */
    if (cio_loop_check_closed(self->loop) < 0) {
        return PYGEN_ERROR;
    }
    if (addrinfo && self->loop->debug) {
        name = PyTuple_GET_ITEM(self->loop->state->sock_method_names,
                                M_GETADDRINFO_DEBUG);
        fn = PyObject_GetAttr((PyObject *)self->loop, name);
    }
    else {
        fn = PyObject_GetAttrString(self->loop->state->socket_module,
                                    addrinfo ? "getaddrinfo"
                                             : "getnameinfo");
    }
    if (fn == NULL) {
        return PYGEN_ERROR;
    }
    if (!self->loop->debug && resolves_locally(self)) {
        *result = PyObject_Call(fn, self->arg, NULL);
        Py_DECREF(fn);
        return *result ? PYGEN_RETURN : PYGEN_ERROR;
    }
    stack[0] = (PyObject *)self->loop;
    stack[1] = Py_None;
    stack[2] = fn;
    for (Py_ssize_t i = 0; i < n; i++) {
        stack[3 + i] = PyTuple_GET_ITEM(self->arg, i);
    }
    name = PyTuple_GET_ITEM(self->loop->state->sock_method_names,
                            M_RUN_IN_EXECUTOR);
    self->fut = PyObject_VectorcallMethod(name, stack, 3 + n, NULL);
    Py_DECREF(fn);
    if (self->fut == NULL) {
        return PYGEN_ERROR;
    }
    if (await_fut(self) < 0) {
        return PYGEN_ERROR;
    }
    self->state = CALL_WAITING;
    return PyIter_Send(self->fut_iter, Py_None, result);
}

/* ---- sock_sendfile ------------------------------------------------------ */

/* SendfileNotAvailableError is set: with fallback=True, delegate to the
 * loop's _sock_sendfile_fallback; otherwise let it propagate. */
static PySendResult
sendfile_fall_back(SockCallObject *self, PyObject **result)
{
    PyObject *name = PyTuple_GET_ITEM(self->loop->state->sock_method_names,
                                      M_SENDFILE_FALLBACK);
    PyObject *stack[5] = {(PyObject *)self->loop};
    PySendResult rc;

    if (!self->fallback ||
        !PyErr_ExceptionMatches(self->loop->state->sendfile_not_available)) {
        return PYGEN_ERROR;
    }
    PyErr_Clear();
    for (int i = 0; i < 4; i++) {
        stack[1 + i] = PyTuple_GET_ITEM(self->sendfile_args, i);
    }
    self->fut_iter = PyObject_VectorcallMethod(name, stack, 5, NULL);
    if (self->fut_iter == NULL) {
        return PYGEN_ERROR;
    }
    self->state = CALL_DELEGATING;
    rc = PyIter_Send(self->fut_iter, Py_None, result);
    if (rc != PYGEN_NEXT) {
        self->state = CALL_DONE;
        Py_CLEAR(self->fut_iter);
    }
    return rc;
}

/* _sock_sendfile_native's checks: a file with a fileno and a size.
 * Returns 1 to go on, 0 when there is nothing to send, -1 with
 * SendfileNotAvailableError or another exception set. */
static int
sendfile_prepare(SockCallObject *self)
{
    PyObject *file = PyTuple_GET_ITEM(self->sendfile_args, 1);
    PyObject *offset = PyTuple_GET_ITEM(self->sendfile_args, 2);
    PyObject *count = PyTuple_GET_ITEM(self->sendfile_args, 3);
    PyObject *fileno = call_method(self, file, M_FILENO, NULL, 0);
    struct stat st;

    if (fileno == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError) &&
            !PyErr_ExceptionMatches(self->loop->state->unsupported_operation)) {
            return -1;
        }
        goto not_a_file;
    }
    self->file_fd = PyObject_AsFileDescriptor(fileno);
    Py_DECREF(fileno);
    if (self->file_fd < 0) {
        return -1;
    }
    if (fstat(self->file_fd, &st) < 0) {
        goto not_a_file;
    }
    self->file_offset = PyLong_AsLongLong(offset);
    self->file_count = count == Py_None ? 0 : PyLong_AsSsize_t(count);
    if (PyErr_Occurred()) {
        return -1;
    }
    self->blocksize = self->file_count ? self->file_count
                                       : (Py_ssize_t)st.st_size;
    /* stdlib's cap for 32-bit builds, sys.maxsize // 2 + 1 */
    if (self->blocksize > PY_SSIZE_T_MAX / 2 + 1) {
        self->blocksize = PY_SSIZE_T_MAX / 2 + 1;
    }
    return self->blocksize > 0;

not_a_file:
    PyErr_SetString(self->loop->state->sendfile_not_available,
                    "not a regular file");
    return -1;
}

/* sock_sendfile up to its first suspension: stdlib's parameter checks,
 * then os.sendfile, or the fallback where that cannot work. */
static PySendResult
sendfile_start(SockCallObject *self, PyObject **result)
{
    PySendResult rc;

    if (cio_check_sendfile_params(
            self->loop->state, self->sock,
            PyTuple_GET_ITEM(self->sendfile_args, 1),
            PyTuple_GET_ITEM(self->sendfile_args, 2),
            PyTuple_GET_ITEM(self->sendfile_args, 3)) < 0) {
        return PYGEN_ERROR;
    }
    switch (sendfile_prepare(self)) {
    case 0:
        *result = PyLong_FromLong(0);  /* an empty file */
        return *result ? PYGEN_RETURN : PYGEN_ERROR;
    case 1:
        rc = sock_call_attempt(self, result);
        return rc == PYGEN_ERROR ? sendfile_fall_back(self, result) : rc;
    default:
        return sendfile_fall_back(self, result);
    }
}

/* The body up to the first suspension. */
static PySendResult
sock_call_start(SockCallObject *self, PyObject **result)
{
    if (self->kind == RESOLVE_ADDRINFO || self->kind == RESOLVE_NAMEINFO) {
        return resolve_start(self, result);
    }
    if (check_socket(self) < 0) {
        return PYGEN_ERROR;
    }
    if (self->kind == SOCK_CONNECT) {
        return connect_start(self, result);
    }
    if (self->kind == SOCK_SENDFILE) {
        return sendfile_start(self, result);
    }
    return sock_call_attempt(self, result);
}

static PySendResult
sock_call_am_send(SockCallObject *self, PyObject *value, PyObject **result)
{
    PySendResult rc;

    *result = NULL;
    switch (self->state) {
    case CALL_CREATED:
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a "
                                             "just-started coroutine");
            return PYGEN_ERROR;
        }
        self->state = CALL_DONE;  /* until it turns out to wait */
        return sock_call_start(self, result);
    case CALL_DELEGATING:
    case CALL_WAITING:
        rc = PyIter_Send(self->fut_iter, value, result);
        if (rc == PYGEN_NEXT) {
            return rc;
        }
        Py_CLEAR(self->fut_iter);
        if (self->state == CALL_DELEGATING && rc == PYGEN_RETURN &&
            self->kind == SOCK_CONNECT) {
            self->state = CALL_DONE;
            return connect_resolved(self, *result, result);
        }
        if (self->state == CALL_WAITING && rc == PYGEN_ERROR &&
            self->kind == SOCK_SENDFILE) {
            self->state = CALL_DONE;
            return sendfile_fall_back(self, result);
        }
        self->state = CALL_DONE;
        return rc;
    default:
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
}

/* throw(exc) or the legacy throw(type, value=None, traceback=None): the
 * exception is raised at the await, which does not catch it, except that
 * sock_sendfile falls back from SendfileNotAvailableError there (a Task
 * throws in the exception of the future it waited for). */
static PyObject *
sock_call_throw(SockCallObject *self, PyObject *const *args,
                Py_ssize_t nargs)
{
    int sendfile_waiting = self->state == CALL_WAITING &&
                           self->kind == SOCK_SENDFILE;
    PyObject *result = NULL;
    PySendResult rc;

    self->state = CALL_DONE;
    Py_CLEAR(self->fut_iter);
    cio_coro_raise_thrown(args, nargs);
    if (!sendfile_waiting) {
        return NULL;
    }
    rc = sendfile_fall_back(self, &result);
    return cio_coro_return(rc, result);
}

/* close(): a suspended call is abandoned where it stands, and stops
 * watching its fd. stdlib's coroutine leaves its reader or writer behind
 * until the fd is ready: forever when the caller closes the socket, and a
 * new socket given the same fd number then waits in vain. */
static PyObject *
sock_call_close(SockCallObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state == CALL_WAITING && self->watch != NULL &&
        !self->watch->cancelled &&
        cio_loop_remove_watcher(self->loop, self->fd,
                                kinds[self->kind].event) < 0) {
        return NULL;
    }
    self->state = CALL_DONE;
    Py_CLEAR(self->fut_iter);
    Py_RETURN_NONE;
}

static PyObject *
sock_call_get_qualname(SockCallObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(kinds[self->kind].qualname);
}

static PyObject *
sock_call_get_name(SockCallObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(strchr(kinds[self->kind].qualname, '.') + 1);
}

static PyObject *
sock_call_get_await(SockCallObject *self, void *Py_UNUSED(closure))
{
    PyObject *awaited = self->state == CALL_WAITING     ? self->fut
                        : self->state == CALL_DELEGATING ? self->fut_iter
                                                        : Py_None;
    return Py_NewRef(awaited);
}

static PyObject *
sock_call_repr(SockCallObject *self)
{
    return PyUnicode_FromFormat("<coroutine object %s at %p>",
                                kinds[self->kind].qualname, self);
}

/* A call that was never awaited warns as an unawaited coroutine does. */
static void
sock_call_finalize(SockCallObject *self)
{
    if (self->state == CALL_CREATED) {
        cio_coro_warn_unawaited((PyObject *)self, kinds[self->kind].qualname);
    }
}

static int
sock_call_traverse(SockCallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->arg);
    Py_VISIT(self->arg2);
    Py_VISIT(self->view);
    Py_VISIT(self->fut);
    Py_VISIT(self->fut_iter);
    Py_VISIT(self->watch);
    Py_VISIT(self->sendfile_args);
    return 0;
}

static int
sock_call_clear(SockCallObject *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->arg);
    Py_CLEAR(self->arg2);
    Py_CLEAR(self->view);
    Py_CLEAR(self->fut);
    Py_CLEAR(self->fut_iter);
    Py_CLEAR(self->watch);
    Py_CLEAR(self->sendfile_args);
    return 0;
}

static void
sock_call_dealloc(SockCallObject *self)
{
    if (!cio_dealloc_begin((PyObject *)self, NULL)) {
        return;
    }
    sock_call_clear(self);
    cio_dealloc_end((PyObject *)self);
}

static PyMethodDef sock_call_methods[] = {
    {"send", (PyCFunction)cio_coro_send, METH_O,
     "send($self, value, /)\n--\n\nResume the call; a value other than "
     "None is refused before it starts."},
    {"throw", (PyCFunction)(void (*)(void))sock_call_throw, METH_FASTCALL,
     "throw($self, exc, /)\n--\n\nRaise exc at the suspension point."},
    {"close", (PyCFunction)sock_call_close, METH_NOARGS,
     "close($self, /)\n--\n\nAbandon the call."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef sock_call_getset[] = {
    {"__qualname__", (getter)sock_call_get_qualname, NULL, NULL, NULL},
    {"__name__", (getter)sock_call_get_name, NULL, NULL, NULL},
    {"cr_await", (getter)sock_call_get_await, NULL,
     "What the call is suspended on, else None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot sock_call_slots[] = {
    {Py_am_await, cio_coro_self},
    {Py_am_send, sock_call_am_send},
    {Py_tp_iternext, cio_coro_next},
    {Py_tp_repr, sock_call_repr},
    {Py_tp_methods, sock_call_methods},
    {Py_tp_getset, sock_call_getset},
    {Py_tp_finalize, sock_call_finalize},
    {Py_tp_traverse, sock_call_traverse},
    {Py_tp_clear, sock_call_clear},
    {Py_tp_dealloc, sock_call_dealloc},
    {Py_tp_doc, "The coroutine a loop's sock_* method, getaddrinfo or "
                "getnameinfo returns."},
    {0, NULL},
};

PyType_Spec cio_sock_call_spec = {
    .name = "casyncio._casyncio.SockCall",
    .basicsize = sizeof(SockCallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = sock_call_slots,
};

/* ---- the loop methods --------------------------------------------------- */

static PyObject *
sock_call_new(LoopObject *loop, sock_kind_t kind, PyObject *sock,
              PyObject *arg, PyObject *arg2)
{
    SockCallObject *self = PyObject_GC_New(SockCallObject,
                                           loop->state->sock_call_type);

    if (self == NULL) {
        return NULL;
    }
    self->loop = (LoopObject *)Py_NewRef(loop);
    self->sock = Py_NewRef(sock);
    self->arg = Py_XNewRef(arg);
    self->arg2 = Py_XNewRef(arg2);
    self->view = self->fut = self->fut_iter = NULL;
    self->watch = NULL;
    self->sendfile_args = NULL;
    self->file_fd = -1;
    self->fallback = 0;
    self->sent = 0;
    self->fd = -1;
    self->kind = kind;
    self->state = CALL_CREATED;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* The methods take their arguments by position or keyword, as stdlib's
 * `async def`s do. */
#define SOCK_METHOD(method, kind, format, ...)                              \
    static PyObject *                                                       \
    loop_##method(LoopObject *self, PyObject *args, PyObject *kwargs)       \
    {                                                                       \
        static char *kwlist[] = {__VA_ARGS__, NULL};                        \
        PyObject *a[3] = {NULL, NULL, NULL};                                \
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, format ":" #method,  \
                                         kwlist, &a[0], &a[1], &a[2])) {    \
            return NULL;                                                    \
        }                                                                   \
        return sock_call_new(self, kind, a[0], a[1], a[2]);                 \
    }

SOCK_METHOD(sock_recv, SOCK_RECV, "OO", "sock", "n")
SOCK_METHOD(sock_recv_into, SOCK_RECV_INTO, "OO", "sock", "buf")
SOCK_METHOD(sock_recvfrom, SOCK_RECVFROM, "OO", "sock", "bufsize")
SOCK_METHOD(sock_sendall, SOCK_SENDALL, "OO", "sock", "data")
SOCK_METHOD(sock_sendto, SOCK_SENDTO, "OOO", "sock", "data", "address")
SOCK_METHOD(sock_accept, SOCK_ACCEPT, "O", "sock")
SOCK_METHOD(sock_connect, SOCK_CONNECT, "OO", "sock", "address")

/* A resolver's call over its packed arguments (a new reference, or NULL
 * with an exception). */
static PyObject *
resolver_call_new(LoopObject *loop, sock_kind_t kind, PyObject *packed)
{
    PyObject *call = packed ? sock_call_new(loop, kind, Py_None, packed, NULL)
                            : NULL;

    Py_XDECREF(packed);
    return call;
}

/* getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0) */
static PyObject *
loop_getaddrinfo(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"host", "port", "family", "type", "proto",
                             "flags", NULL};
    PyObject *zero = PyLong_FromLong(0), *a[6], *packed;

    if (zero == NULL) {
        return NULL;
    }
    a[2] = a[3] = a[4] = a[5] = zero;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$OOOO:getaddrinfo",
                                     kwlist, &a[0], &a[1], &a[2], &a[3],
                                     &a[4], &a[5])) {
        Py_DECREF(zero);
        return NULL;
    }
    packed = PyTuple_Pack(6, a[0], a[1], a[2], a[3], a[4], a[5]);
    Py_DECREF(zero);
    return resolver_call_new(self, RESOLVE_ADDRINFO, packed);
}

/* getnameinfo(sockaddr, flags=0) */
static PyObject *
loop_getnameinfo(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sockaddr", "flags", NULL};
    PyObject *sockaddr, *flags = NULL, *packed;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:getnameinfo", kwlist,
                                     &sockaddr, &flags)) {
        return NULL;
    }
    packed = flags ? PyTuple_Pack(2, sockaddr, flags)
                   : Py_BuildValue("(Oi)", sockaddr, 0);
    return resolver_call_new(self, RESOLVE_NAMEINFO, packed);
}

/* sock_sendfile(sock, file, offset=0, count=None, *, fallback=True) */
static PyObject *
loop_sock_sendfile(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sock", "file", "offset", "count", "fallback",
                             NULL};
    PyObject *sock, *file, *offset = NULL, *count = Py_None, *call;
    int fallback = 1;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$p:sock_sendfile",
                                     kwlist, &sock, &file, &offset, &count,
                                     &fallback)) {
        return NULL;
    }
    offset = offset ? Py_NewRef(offset) : PyLong_FromLong(0);
    call = offset ? sock_call_new(self, SOCK_SENDFILE, sock, NULL, NULL)
                  : NULL;
    if (call != NULL) {
        SockCallObject *c = (SockCallObject *)call;

        c->fallback = (char)fallback;
        c->sendfile_args = PyTuple_Pack(4, sock, file, offset, count);
        if (c->sendfile_args == NULL) {
            Py_CLEAR(call);
        }
    }
    Py_XDECREF(offset);
    return call;
}

/* sock_recvfrom_into(sock, buf, nbytes=0) */
static PyObject *
loop_sock_recvfrom_into(LoopObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sock", "buf", "nbytes", NULL};
    PyObject *sock, *buf, *nbytes = NULL, *res;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "OO|O:sock_recvfrom_into", kwlist,
                                     &sock, &buf, &nbytes)) {
        return NULL;
    }
    if (nbytes != NULL) {
        return sock_call_new(self, SOCK_RECVFROM_INTO, sock, buf, nbytes);
    }
    nbytes = PyLong_FromLong(0);
    res = nbytes ? sock_call_new(self, SOCK_RECVFROM_INTO, sock, buf, nbytes)
                 : NULL;
    Py_XDECREF(nbytes);
    return res;
}

#define SOCK_DEF(method, doc)                                               \
    {#method, (PyCFunction)(void (*)(void))loop_##method,                   \
     METH_VARARGS | METH_KEYWORDS, doc}

PyMethodDef cio_loop_sock_methods[] = {
    SOCK_DEF(sock_recv,
             "sock_recv($self, sock, n)\n--\n\n"
             "Coroutine: receive up to n bytes from the non-blocking "
             "socket."),
    SOCK_DEF(sock_recv_into,
             "sock_recv_into($self, sock, buf)\n--\n\n"
             "Coroutine: receive into buf; return the number of bytes."),
    SOCK_DEF(sock_recvfrom,
             "sock_recvfrom($self, sock, bufsize)\n--\n\n"
             "Coroutine: receive a datagram; return (data, address)."),
    SOCK_DEF(sock_recvfrom_into,
             "sock_recvfrom_into($self, sock, buf, nbytes=0)\n--\n\n"
             "Coroutine: receive a datagram into buf; return (nbytes, "
             "address)."),
    SOCK_DEF(sock_sendall,
             "sock_sendall($self, sock, data)\n--\n\n"
             "Coroutine: send all of data."),
    SOCK_DEF(sock_sendto,
             "sock_sendto($self, sock, data, address)\n--\n\n"
             "Coroutine: send a datagram to address; return the bytes "
             "sent."),
    SOCK_DEF(sock_accept,
             "sock_accept($self, sock)\n--\n\n"
             "Coroutine: accept a connection; return (conn, address) with "
             "conn non-blocking."),
    SOCK_DEF(sock_connect,
             "sock_connect($self, sock, address)\n--\n\n"
             "Coroutine: connect the non-blocking socket to address."),
    SOCK_DEF(sock_sendfile,
             "sock_sendfile($self, sock, file, offset=0, count=None, *, "
             "fallback=True)\n--\n\n"
             "Coroutine: send the file with os.sendfile(), or by reads and "
             "sock_sendall when that is not available and fallback is "
             "true; return the bytes sent."),
    SOCK_DEF(getaddrinfo,
             "getaddrinfo($self, host, port, *, family=0, type=0, proto=0, "
             "flags=0)\n--\n\n"
             "Coroutine: socket.getaddrinfo() off the loop's thread, or at "
             "once when host and port are numeric."),
    SOCK_DEF(getnameinfo,
             "getnameinfo($self, sockaddr, flags=0)\n--\n\n"
             "Coroutine: socket.getnameinfo() off the loop's thread, or at "
             "once for NI_NUMERICHOST|NI_NUMERICSERV."),
    {NULL, NULL, 0, NULL},
};
