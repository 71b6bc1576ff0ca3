/* The Python objects of the loop's own sockets, made without running
 * Python code: a socket.socket for an fd accept4() returned (accept.c)
 * or for create_connection's attempts (loop_connect.c), the
 * asyncio.trsock.TransportSocket that every socket transport puts in its
 * extra info, and the fd of a socket object.
 *
 * socket.socket.__init__ and TransportSocket.__init__ are a few lines of
 * Python each (the same on 3.11 to 3.15), and running their frames took
 * about 4,600 of the 30,000 instructions a server spent per connection
 * when each request is a new connection (3.11, callgrind). These functions
 * do what those lines do -- _socket.socket.__init__, then the __slots__
 * `_io_refs = 0` and `_closed = False`; `_sock = sock` -- through the
 * types' own slots and member descriptors. Each checks per call that the
 * class's __init__ is still the one seen at import, and calls the class
 * when it is not (a patched class, or another Python whose classes look
 * different), so the objects are always what the classes would make. */
#include "casyncio.h"

#include <sys/socket.h>

/* The __init__s were read in 3.11 to 3.15's socket.py and trsock.py (the
 * same lines in each); a later Python calls the classes until they are
 * read again (CIO_PYTHON_TESTED). */
#if CIO_PYTHON_TESTED
/* type.__dict__[name] when it is a __slots__ member descriptor. */
static PyObject *
slot_member(PyTypeObject *type, const char *name)
{
    PyObject *member = PyDict_GetItemString(type->tp_dict, name);

    return member && Py_IS_TYPE(member, &PyMemberDescr_Type)
               ? Py_NewRef(member) : NULL;
}

/* type's own __init__ (borrowed), or NULL. */
static PyObject *
own_init(PyTypeObject *type)
{
    return PyDict_GetItemString(type->tp_dict, "__init__");
}

/* What socket.socket.__init__ and TransportSocket.__init__ set, and the
 * __init__s themselves; where one is not found it stays NULL and the
 * class is called instead. */
static void
read_python_inits(cio_state *st)
{
    PyTypeObject *socket_type = (PyTypeObject *)st->socket_type;
    PyTypeObject *trsock_type = (PyTypeObject *)st->transport_socket_type;

    st->socket_io_refs = slot_member(socket_type, "_io_refs");
    st->socket_closed = slot_member(socket_type, "_closed");
    st->transport_socket_sock = slot_member(trsock_type, "_sock");
    if (st->socket_io_refs && st->socket_closed &&
        socket_type->tp_base->tp_init != NULL) {
        st->socket_init = Py_XNewRef(own_init(socket_type));
    }
    if (st->transport_socket_sock) {
        st->transport_socket_init = Py_XNewRef(own_init(trsock_type));
    }
}
#endif

/* Whether `type` still has the __init__ this module read at import. */
static int
init_unchanged(cio_state *st, PyTypeObject *type, PyObject *init)
{
    return init != NULL &&
           PyDict_GetItemWithError(type->tp_dict,
                                   CIO_NAME(st, __init__)) == init;
}

static int
set_slot(PyObject *member, PyObject *obj, PyObject *value)
{
    return Py_TYPE(member)->tp_descr_set(member, obj, value);
}

int
cio_socket_objects_init(cio_state *st)
{
    PyObject *base = (PyObject *)((PyTypeObject *)st->socket_type)->tp_base;

    st->socket_fileno = PyObject_GetAttrString(base, "fileno");
    if (st->socket_fileno == NULL) {
        return -1;
    }
#if CIO_PYTHON_TESTED
    read_python_inits(st);
#endif
    return 0;
}

int
cio_socket_fd(cio_state *st, PyObject *sock)
{
    PyObject *number;
    int fd;

    /* Exactly these types: a subclass may override fileno(). */
    if (!Py_IS_TYPE(sock, (PyTypeObject *)st->socket_type) &&
        !Py_IS_TYPE(sock, PyDescr_TYPE(st->socket_fileno))) {
        return PyObject_AsFileDescriptor(sock);
    }
    number = PyObject_Vectorcall(st->socket_fileno, &sock, 1, NULL);
    if (number == NULL) {
        return -1;
    }
    fd = (int)PyLong_AsLong(number);  /* an fd the socket holds: an int */
    Py_DECREF(number);
    if (fd < 0 && !PyErr_Occurred()) {
        PyErr_Format(PyExc_ValueError, "file descriptor cannot be a "
                     "negative integer (%i)", fd);
    }
    return fd;
}

/* socket.socket.__init__(sock, *args) on the new object: the C socket's
 * __init__, then the two slots. */
static int
init_socket(cio_state *st, PyObject *sock, PyObject *args)
{
    PyTypeObject *base = ((PyTypeObject *)st->socket_type)->tp_base;
    PyObject *zero;
    int rc;

    if (base->tp_init(sock, args, NULL) < 0) {
        return -1;
    }
    zero = PyLong_FromLong(0);
    rc = zero ? set_slot(st->socket_io_refs, sock, zero) : -1;
    Py_XDECREF(zero);
    if (rc == 0) {
        rc = set_slot(st->socket_closed, sock, Py_False);
    }
    if (rc < 0) {
        /* The caller still owns fd and closes it: the half-made object
         * must not close it too when freed. */
        PyObject *exc = cio_fetch_exception();
        PyObject *res = PyObject_CallMethod(sock, "detach", NULL);
        Py_XDECREF(res);
        cio_restore_exception(exc);
    }
    return rc;
}

PyObject *
cio_socket_new(cio_state *st, PyObject *args)
{
    PyTypeObject *socket_type = (PyTypeObject *)st->socket_type;
    PyObject *sock;

    if (!init_unchanged(st, socket_type, st->socket_init)) {
        return PyObject_Call(st->socket_type, args, NULL);
    }
    sock = socket_type->tp_new(socket_type, args, NULL);
    if (sock != NULL && init_socket(st, sock, args) < 0) {
        Py_CLEAR(sock);
    }
    return sock;
}

PyObject *
cio_socket_from_fd(cio_state *st, long family, long type, long proto, int fd)
{
    const long values[4] = {family, type, proto, fd};
    PyObject *args = PyTuple_New(4), *sock;

    for (int i = 0; args != NULL && i < 4; i++) {
        PyObject *value = PyLong_FromLong(values[i]);
        if (value == NULL) {
            Py_CLEAR(args);
            break;
        }
        PyTuple_SET_ITEM(args, i, value);
    }
    if (args == NULL) {
        return NULL;
    }
    sock = cio_socket_new(st, args);
    Py_DECREF(args);
    return sock;
}

PyObject *
cio_transport_socket_new(cio_state *st, PyObject *sock)
{
    PyTypeObject *type = (PyTypeObject *)st->transport_socket_type;
    PyObject *trsock;

    if (!init_unchanged(st, type, st->transport_socket_init)) {
        return PyObject_CallOneArg((PyObject *)type, sock);
    }
    trsock = type->tp_new(type, st->empty_tuple, NULL);
    if (trsock != NULL &&
        set_slot(st->transport_socket_sock, trsock, sock) < 0) {
        Py_CLEAR(trsock);
    }
    return trsock;
}
