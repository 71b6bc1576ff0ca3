/* Accepting a connection, for the server's accept loop (loop_server.c)
 * and sock_accept (loop_sock.c): sock.accept() with the new socket made
 * non-blocking.
 *
 * A plain socket.socket of an IP or Unix family skips socket.py's Python
 * code: one accept4() (cio_socket_accept) makes the new socket
 * non-blocking and close-on-exec; its object is built (cio_socket_from_fd)
 * with SOCK_NONBLOCK in the type, which makes socket.socket() set a zero
 * timeout without a system call (and strip the flag from .type); and the
 * peer address is formatted as socketmodule does (cio_sockaddr_object).
 * Any other socket, a subclass that may override accept() included, goes
 * through its own accept() and setblocking(False), as every socket does
 * where SOCK_NONBLOCK is missing (CIO_HAVE_SOCK_NONBLOCK, cio_socket.h). */
#include "casyncio.h"
#include "cio_socket.h"

#include <errno.h>
#include <unistd.h>

int
cio_acceptor_init(cio_state *st, PyObject *sock, cio_acceptor_t *acceptor)
{
    acceptor->sock = sock;
    acceptor->fd = -1;
    acceptor->native = 0;
    /* Exactly socket.socket: a subclass may override accept(). */
    if (!Py_IS_TYPE(sock, (PyTypeObject *)st->socket_type)) {
        return 0;
    }
    acceptor->fd = cio_socket_fd(st, sock);
    if (acceptor->fd < 0 || cio_socket_ints(st, sock, acceptor->ints) < 0) {
        return -1;
    }
#if CIO_HAVE_SOCK_NONBLOCK
    acceptor->native = acceptor->ints[0] == AF_INET ||
                       acceptor->ints[0] == AF_INET6 ||
                       acceptor->ints[0] == AF_UNIX;
#endif
    return 0;
}

#if CIO_HAVE_SOCK_NONBLOCK

static PyObject *
accept_native(cio_state *st, const cio_acceptor_t *acceptor)
{
    const long *ints = acceptor->ints;
    struct sockaddr_storage addr;
    socklen_t len;
    PyObject *conn, *peer;
    int conn_fd = cio_socket_accept(acceptor->fd, &addr, &len);

    if (conn_fd == -EAGAIN || conn_fd == -EINTR) {
        return NULL;
    }
    if (conn_fd < 0) {
        return cio_raise_errno(conn_fd);
    }
    conn = cio_socket_from_fd(st, ints[0], ints[1] | CIO_SOCK_NONBLOCK,
                              ints[2], conn_fd);
    if (conn == NULL) {
        close(conn_fd);
        return NULL;
    }
    peer = cio_sockaddr_object(&addr, len);
    if (peer == NULL) {
        Py_DECREF(conn);  /* closes conn_fd */
        return NULL;
    }
    return Py_BuildValue("(NN)", conn, peer);
}
#endif /* CIO_HAVE_SOCK_NONBLOCK */

static PyObject *
accept_python(PyObject *sock)
{
    PyObject *pair = PyObject_CallMethod(sock, "accept", NULL), *res;

    if (pair == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "accept() must return a pair");
        Py_DECREF(pair);
        return NULL;
    }
    res = PyObject_CallMethod(PyTuple_GET_ITEM(pair, 0), "setblocking", "(O)",
                              Py_False);
    if (res == NULL) {
        Py_DECREF(pair);
        return NULL;
    }
    Py_DECREF(res);
    return pair;
}

PyObject *
cio_acceptor_accept(cio_state *st, const cio_acceptor_t *acceptor)
{
#if CIO_HAVE_SOCK_NONBLOCK
    if (acceptor->native) {
        return accept_native(st, acceptor);
    }
#endif
    return accept_python(acceptor->sock);
}
