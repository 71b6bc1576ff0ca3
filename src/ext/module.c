/* The _casyncio extension module: module state, multi-phase init, and the
 * small helpers (errno to OSError, exception juggling, argument parsing)
 * that the other files of the binding share. */
#include "casyncio.h"
#include "transport_socket.h"

#include "cio_clock.h"
#include "cio_poller.h"
#include "cio_socket.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

static struct PyModuleDef casyncio_module;

cio_state *
cio_get_state_by_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, &casyncio_module);

    return module ? (cio_state *)PyModule_GetState(module) : NULL;
}

PyObject *
cio_raise_errno(int neg_errno)
{
    errno = -neg_errno;
    return PyErr_SetFromErrno(PyExc_OSError);
}

PyObject *
cio_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_DECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

int
cio_socket_ints(cio_state *st, PyObject *sock, long ints[3])
{
    for (int i = 0; i < 3; i++) {
        PyObject *member = PyTuple_GET_ITEM(st->socket_int_members, i);
        PyObject *value =
            PyObject_TypeCheck(sock, PyDescr_TYPE(member))
                ? Py_TYPE(member)->tp_descr_get(member, sock, NULL)
                : PyObject_GetAttr(sock, PyDescr_NAME(member));
        if (value == NULL) {
            return -1;
        }
        /* stdlib only compares them: one that is no int (a test's Mock)
         * matches no constant. */
        ints[i] = PyLong_Check(value) ? PyLong_AsLong(value) : -1;
        Py_DECREF(value);
        if (ints[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* host as socketmodule formats it, a str. */
static PyObject *
ip_text(int family, const void *addr)
{
    char text[INET6_ADDRSTRLEN];
    int n;

    if (family == AF_INET) {
        n = cio_format_ipv4((const struct in_addr *)addr, text);
    }
    else {
        inet_ntop(AF_INET6, addr, text, sizeof(text));
        n = (int)strlen(text);
    }
    return PyUnicode_DecodeASCII(text, n, NULL);
}

PyObject *
cio_sockaddr_object(const struct sockaddr_storage *addr, socklen_t len)
{
    const size_t path_at = offsetof(struct sockaddr_un, sun_path);
    PyObject *host, *port, *result;

    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        host = ip_text(AF_INET, &in->sin_addr);
        port = PyLong_FromLong(ntohs(in->sin_port));
        result = host && port ? PyTuple_Pack(2, host, port) : NULL;
        Py_XDECREF(host);
        Py_XDECREF(port);
        return result;
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        host = ip_text(AF_INET6, &in6->sin6_addr);
        if (host == NULL) {
            return NULL;
        }
        return Py_BuildValue("(NiII)", host, ntohs(in6->sin6_port),
                             ntohl(in6->sin6_flowinfo), in6->sin6_scope_id);
    }
    /* AF_UNIX: an abstract name (leading NUL) is bytes, a path is str,
     * and an unnamed socket is ''; addr was zero-filled, so the path ends
     * in a NUL within the storage. */
    const char *path = ((const struct sockaddr_un *)addr)->sun_path;
    if (len > path_at && path[0] == '\0') {
        return PyBytes_FromStringAndSize(path, (Py_ssize_t)(len - path_at));
    }
    return PyUnicode_DecodeFSDefault(path);
}

void
cio_restore_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb;

    if (exc == NULL) {
        return;
    }
    tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

int
cio_is_exit_exception(PyObject *exc)
{
    return PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_SystemExit) ||
           PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_KeyboardInterrupt);
}

PyObject *
cio_call_method(cio_state *st, PyObject *obj, cio_name_t name,
                PyObject *const *args, size_t nargs)
{
    PyObject *stack[4] = {obj};

    assert(nargs < 4);
    for (size_t i = 0; i < nargs; i++) {
        stack[i + 1] = args[i];
    }
    return PyObject_VectorcallMethod(
        st->names[name], stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
}

int
cio_log(cio_state *st, const char *level, PyObject *msg, PyObject *exc_info)
{
    PyObject *kwargs = NULL, *res = NULL, *meth = NULL;
    int rc = -1;

    meth = PyObject_GetAttrString(st->logger, level);
    if (meth == NULL) {
        goto done;
    }
    kwargs = Py_BuildValue("{sO}", "exc_info", exc_info);
    if (kwargs == NULL) {
        goto done;
    }
    res = PyObject_VectorcallDict(meth, &msg, 1, kwargs);
    rc = res ? 0 : -1;
done:
    Py_XDECREF(meth);
    Py_XDECREF(kwargs);
    Py_XDECREF(res);
    return rc;
}

int
cio_parse_callback_args(const char *fname, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames,
                        Py_ssize_t npositional, PyObject **context)
{
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    *context = NULL;
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);  // borrowed
        if (PyUnicode_CompareWithASCIIString(name, "context") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, name);
            return -1;
        }
        *context = args[nargs + i];
    }
    if (nargs < npositional) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing %zd required positional argument%s",
                     fname, npositional - nargs,
                     npositional - nargs == 1 ? "" : "s");
        return -1;
    }
    if (*context == Py_None) {
        *context = NULL;
    }
    return 0;
}

int
cio_dict_pop(PyObject *dict, const char *key, PyObject **value)
{
    PyObject *v = PyDict_GetItemString(dict, key);  // borrowed

    if (v == NULL) {
        return 0;
    }
    *value = Py_NewRef(v);
    return PyDict_DelItemString(dict, key);
}

int
cio_finally_end(PyObject *exc)
{
    PyObject *own;

    if (!PyErr_Occurred()) {
        if (exc == NULL) {
            return 0;
        }
        cio_restore_exception(exc);
        return -1;
    }
    own = cio_fetch_exception();
    if (exc != NULL && exc != own) {
        PyException_SetContext(own, exc);  /* steals exc */
    }
    else {
        Py_XDECREF(exc);
    }
    cio_restore_exception(own);
    return -1;
}

int
cio_call_noargs(PyObject *obj, const char *method)
{
    PyObject *res = PyObject_CallMethod(obj, method, NULL);

    Py_XDECREF(res);
    return res ? 0 : -1;
}

int
cio_call_while_raising(PyObject *obj, const char *method)
{
    PyObject *exc = cio_fetch_exception();
    PyObject *res = PyObject_CallMethod(obj, method, NULL);

    Py_XDECREF(res);
    cio_finally_end(exc);
    return -1;
}

int
cio_dealloc_begin(PyObject *self, PyObject **weakreflist)
{
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return 0;  /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    if (weakreflist != NULL && *weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    return 1;
}

void
cio_dealloc_end(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    tp->tp_free(self);
    Py_DECREF(tp);
}

/* module_name's attribute attr, which may be a dotted path into it. */
PyObject *
cio_import_attr(const char *module_name, const char *attr)
{
    PyObject *value = PyImport_ImportModule(module_name);
    char part[64];

    while (value != NULL && *attr) {
        size_t len = strcspn(attr, ".");

        if (len >= sizeof(part)) {
            Py_FatalError("import_attr: attribute name too long");
        }
        memcpy(part, attr, len);
        part[len] = '\0';
        Py_SETREF(value, PyObject_GetAttrString(value, part));
        attr += len + (attr[len] == '.');
    }
    return value;
}

/* 3.13 gave _format_callback_source a keyword-only debug flag. */
static int
detect_format_debug_keyword(cio_state *st)
{
    PyObject *code = PyObject_GetAttrString(st->format_callback_source,
                                            "__code__");
    PyObject *kwonly;
    long n;

    if (code == NULL) {
        return -1;
    }
    kwonly = PyObject_GetAttrString(code, "co_kwonlyargcount");
    Py_DECREF(code);
    if (kwonly == NULL) {
        return -1;
    }
    n = PyLong_AsLong(kwonly);
    Py_DECREF(kwonly);
    st->format_source_takes_debug = n > 0;
    return n < 0 && PyErr_Occurred() ? -1 : 0;
}

/* _socket.socket's own family, type and proto members, through which
 * the accept loop reads a socket's ints; socket.socket's properties of
 * the same names build an enum each time. */
static PyObject *
import_socket_int_members(void)
{
    PyObject *base = cio_import_attr("_socket", "socket"), *members;

    if (base == NULL) {
        return NULL;
    }
    members = Py_BuildValue("(NNN)", PyObject_GetAttrString(base, "family"),
                            PyObject_GetAttrString(base, "type"),
                            PyObject_GetAttrString(base, "proto"));
    Py_DECREF(base);
    return members;
}

static int
intern_names(cio_state *st)
{
    static const char *const names[CIO_NAME_COUNT] = {
#define CIO_NAME_STRING(name) #name,
        CIO_NAMES(CIO_NAME_STRING)
#undef CIO_NAME_STRING
    };

    for (int i = 0; i < CIO_NAME_COUNT; i++) {
        st->names[i] = PyUnicode_InternFromString(names[i]);
        if (st->names[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

PyObject *
cio_tuple_of_names(const char *const *names, int n)
{
    PyObject *t = PyTuple_New(n);

    for (int i = 0; t != NULL && i < n; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, name);
    }
    return t;
}

PyObject *
cio_tuple_of_attrs(PyObject *obj, const char *const *names, int n)
{
    PyObject *t = PyTuple_New(n);

    for (int i = 0; t != NULL && i < n; i++) {
        PyObject *v = PyObject_GetAttrString(obj, names[i]);
        if (v == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

int
cio_class_unchanged(PyTypeObject *cls, PyObject *originals,
                    const char *const *names, unsigned int *version)
{
    PyObject *v;

    if (cls->tp_version_tag != 0 && cls->tp_version_tag == *version) {
        return 1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(originals); i++) {
        v = PyObject_GetAttrString((PyObject *)cls, names[i]);
        Py_XDECREF(v);
        if (v != PyTuple_GET_ITEM(originals, i)) {
            PyErr_Clear();
            return 0;
        }
    }
    *version = cls->tp_version_tag;
    return 1;
}

PyObject *
cio_instance_get(PyObject *obj, PyObject *name)
{
    PyObject **dict = _PyObject_GetDictPtr(obj), *value;

    if (dict != NULL && *dict != NULL) {
        value = PyDict_GetItemWithError(*dict, name);
        if (value != NULL) {
            return Py_NewRef(value);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_GetAttr(obj, name);
}

int
cio_instance_set(PyObject *obj, PyObject *name, PyObject *value)
{
    PyObject **dict = _PyObject_GetDictPtr(obj);

    if (dict != NULL && *dict != NULL) {
        return PyDict_SetItem(*dict, name, value);
    }
    return PyObject_SetAttr(obj, name, value);
}

#define IMPORT(field, mod, attr)                                            \
    do {                                                                    \
        st->field = cio_import_attr(mod, attr);                                 \
        if (st->field == NULL) {                                            \
            return -1;                                                      \
        }                                                                   \
    } while (0)

static int
state_import(cio_state *st)
{
    IMPORT(future_type, "asyncio", "Future");
    IMPORT(task_type, "asyncio", "Task");
    IMPORT(ensure_future, "asyncio", "ensure_future");
    IMPORT(gather, "asyncio", "gather");
    IMPORT(cancelled_error, "asyncio", "CancelledError");
    IMPORT(isfuture, "asyncio", "isfuture");
    IMPORT(wrap_future, "asyncio", "wrap_future");
    IMPORT(set_result_unless_cancelled, "asyncio.futures",
           "_set_result_unless_cancelled");
    IMPORT(is_debug_mode, "asyncio.coroutines", "_is_debug_mode");
    IMPORT(iscoroutine, "asyncio.coroutines", "iscoroutine");
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 deprecates the public name, which now warns when called, and
     * keeps this private one for its own loop's checks. */
    IMPORT(iscoroutinefunction, "asyncio.coroutines", "_iscoroutinefunction");
    IMPORT(thread_safe_handle_type, "asyncio.events", "_ThreadSafeHandle");
#else
    IMPORT(iscoroutinefunction, "asyncio.coroutines", "iscoroutinefunction");
#endif
    IMPORT(format_callback_source, "asyncio.format_helpers",
           "_format_callback_source");
    IMPORT(extract_stack, "asyncio.format_helpers", "extract_stack");
    IMPORT(format_list, "traceback", "format_list");
    IMPORT(logger, "asyncio.log", "logger");
    IMPORT(thread_pool_executor, "concurrent.futures", "ThreadPoolExecutor");
    IMPORT(thread_type, "threading", "Thread");
    IMPORT(weakset_type, "weakref", "WeakSet");
    IMPORT(partial, "functools", "partial");
    IMPORT(flow_control_mixin, "asyncio.transports", "_FlowControlMixin");
    IMPORT(read_transport_type, "asyncio.transports", "ReadTransport");
    IMPORT(subprocess_transport_abc, "asyncio.transports",
           "SubprocessTransport");
    IMPORT(protocol_abc, "asyncio.protocols", "Protocol");
    IMPORT(sendfile_not_available, "asyncio.exceptions",
           "SendfileNotAvailableError");
    IMPORT(sendfile_mode_unsupported, "asyncio.constants",
           "_SendfileMode.UNSUPPORTED");
    IMPORT(sendfile_mode_try_native, "asyncio.constants",
           "_SendfileMode.TRY_NATIVE");
    IMPORT(unsupported_operation, "io", "UnsupportedOperation");
    IMPORT(datagram_transport_abc, "asyncio.transports", "DatagramTransport");
    IMPORT(buffered_protocol_type, "asyncio", "BufferedProtocol");
    IMPORT(transport_socket_type, "asyncio.trsock", "TransportSocket");
    IMPORT(socket_type, "socket", "socket");
    st->socket_int_members = import_socket_int_members();
    if (st->socket_int_members == NULL || cio_socket_objects_init(st) < 0) {
        return -1;
    }
    /* asyncio runs without the ssl module; so does sock_recv's check. */
    st->ssl_socket_type = cio_import_attr("ssl", "SSLSocket");
    if (st->ssl_socket_type == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError)) {
            return -1;
        }
        PyErr_Clear();
    }
    if (cio_sock_names_init(st) < 0 || intern_names(st) < 0) {
        return -1;
    }
    IMPORT(af_inet, "socket", "AF_INET");
    IMPORT(af_inet6, "socket", "AF_INET6");
    IMPORT(af_unix, "socket", "AF_UNIX");
    IMPORT(sock_stream, "socket", "SOCK_STREAM");
    IMPORT(ipproto_tcp, "socket", "IPPROTO_TCP");
    st->str_data_received = PyUnicode_InternFromString("data_received");
    st->str_buffer_updated = PyUnicode_InternFromString("buffer_updated");
    st->str_peername = PyUnicode_InternFromString("peername");
    st->str_datagram_received =
        PyUnicode_InternFromString("datagram_received");
    if (!st->str_data_received || !st->str_buffer_updated ||
        !st->str_peername || !st->str_datagram_received) {
        return -1;
    }
    st->sys_module = PyImport_ImportModule("sys");
    st->subprocess_module = PyImport_ImportModule("subprocess");
    st->socket_module = PyImport_ImportModule("socket");
    st->os_module = PyImport_ImportModule("os");
    st->signal_module = PyImport_ImportModule("signal");
    st->events_module = PyImport_ImportModule("asyncio.events");
    st->constants_module = PyImport_ImportModule("asyncio.constants");
    st->base_events_module = PyImport_ImportModule("asyncio.base_events");
    st->unix_events_module = PyImport_ImportModule("asyncio.unix_events");
    st->tasks_module = PyImport_ImportModule("asyncio.tasks");
    st->futures_module = PyImport_ImportModule("asyncio.futures");
    st->kwnames_loop = Py_BuildValue("(s)", "loop");
    st->kwnames_debug = Py_BuildValue("(s)", "debug");
    st->kwnames_context = Py_BuildValue("(s)", "context");
    st->kwnames_socket = Py_BuildValue("(sss)", "family", "type", "proto");
    st->empty_tuple = PyTuple_New(0);
    if (!st->sys_module || !st->subprocess_module || !st->socket_module ||
        !st->os_module ||
        !st->signal_module || !st->events_module || !st->constants_module ||
        !st->base_events_module || !st->unix_events_module ||
        !st->tasks_module || !st->futures_module || !st->kwnames_loop ||
        !st->kwnames_debug || !st->kwnames_context || !st->kwnames_socket ||
        !st->empty_tuple) {
        return -1;
    }
    st->clock_resolution = (double)cio_clock_resolution_ns() * 1e-9;
    return detect_format_debug_keyword(st);
}

static int
add_type(PyObject *module, PyType_Spec *spec, PyObject *base,
         PyTypeObject **slot)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, base);

    if (type == NULL) {
        return -1;
    }
    *slot = (PyTypeObject *)type;
    return PyModule_AddObjectRef(module, strrchr(spec->name, '.') + 1, type);
}

/* Class attributes base_events reads off a stream transport: start_tls()
 * refuses transports without _start_tls_compatible, and loop.sendfile()
 * tries the loop's zero-copy _sendfile_native for TRY_NATIVE. */
static int
set_stream_class_attributes(cio_state *st, PyTypeObject *transport_type)
{
    PyObject *type = (PyObject *)transport_type;

    return PyObject_SetAttrString(type, "_sendfile_compatible",
                                  st->sendfile_mode_try_native) < 0 ||
           PyObject_SetAttrString(type, "_start_tls_compatible",
                                  Py_True) < 0 ? -1 : 0;
}

static int
casyncio_exec(PyObject *module)
{
    cio_state *st = PyModule_GetState(module);
    PyObject *bases, *tested;
    int rc;

    if (state_import(st) < 0 || cio_tls_protocol_init(module, st) < 0 ||
        cio_streams_init(module, st) < 0 ||
        cio_fork_hook_install(module, st) < 0) {
        return -1;
    }
    /* (major, minor) of CIO_NEWEST_TESTED, for casyncio to tell */
    tested = Py_BuildValue("(ii)", CIO_NEWEST_TESTED >> 24,
                           (CIO_NEWEST_TESTED >> 16) & 0xFF);
    rc = tested ? PyModule_AddObjectRef(module, "NEWEST_TESTED_PYTHON",
                                        tested)
                : -1;
    Py_XDECREF(tested);
    if (rc < 0 || PyModule_AddStringConstant(module, "POLLER",
                                             cio_poller_backend_name()) < 0) {
        return -1;
    }
    if (add_type(module, &cio_handle_spec, NULL, &st->handle_type) < 0) {
        return -1;
    }
    if (add_type(module, &cio_timer_handle_spec,
                 (PyObject *)st->handle_type, &st->timer_handle_type) < 0) {
        return -1;
    }
    cio_loop_spec_prepare();
    if (add_type(module, &cio_loop_spec, NULL, &st->loop_type) < 0) {
        return -1;
    }
    if (cio_write_transport_check_base(
            (PyTypeObject *)st->flow_control_mixin) < 0 ||
        add_type(module, &cio_socket_transport_base_spec,
                 st->flow_control_mixin,
                 &st->socket_transport_base_type) < 0 ||
        add_type(module, &cio_socket_transport_spec,
                 (PyObject *)st->socket_transport_base_type,
                 &st->socket_transport_type) < 0 ||
        set_stream_class_attributes(st, st->socket_transport_type) < 0) {
        return -1;
    }
    /* A DatagramTransport for isinstance(), like stdlib's since 3.12. */
    bases = PyTuple_Pack(2, st->socket_transport_base_type,
                         st->datagram_transport_abc);
    rc = bases ? add_type(module, &cio_datagram_transport_spec, bases,
                          &st->datagram_transport_type) : -1;
    Py_XDECREF(bases);
    if (rc < 0) {
        return -1;
    }
    if (add_type(module, &cio_sock_call_spec, NULL,
                 &st->sock_call_type) < 0 ||
        add_type(module, &cio_connect_call_spec, NULL,
                 &st->connect_call_type) < 0 ||
        add_type(module, &cio_step_coro_spec, NULL,
                 &st->step_coro_type) < 0 ||
        add_type(module, &cio_race_spec, NULL, &st->race_type) < 0) {
        return -1;
    }
    {
        PyTypeObject *server_base;
        if (add_type(module, &cio_server_base_spec, NULL, &server_base) < 0) {
            return -1;
        }
        rc = cio_server_type_init(module, st, (PyObject *)server_base);
        Py_DECREF(server_base);
        if (rc < 0) {
            return -1;
        }
    }
    if (cio_transport_check_base(
            (PyTypeObject *)st->read_transport_type) < 0 ||
        add_type(module, &cio_read_pipe_transport_spec,
                 st->read_transport_type,
                 &st->read_pipe_transport_type) < 0 ||
        add_type(module, &cio_write_pipe_transport_spec,
                 st->flow_control_mixin,
                 &st->write_pipe_transport_type) < 0) {
        return -1;
    }
    if (cio_transport_check_base(
            (PyTypeObject *)st->subprocess_transport_abc) < 0 ||
        add_type(module, &cio_subprocess_transport_spec,
                 st->subprocess_transport_abc,
                 &st->subprocess_transport_type) < 0 ||
        add_type(module, &cio_subprocess_pipe_protocol_spec,
                 st->protocol_abc,
                 &st->subprocess_pipe_protocol_type) < 0 ||
        add_type(module, &cio_sendfile_fallback_protocol_spec,
                 st->protocol_abc,
                 &st->sendfile_fallback_protocol_type) < 0) {
        return -1;
    }
    return 0;
}

#define STATE_FIELDS(X)                                                     \
    X(loop_type) X(handle_type) X(timer_handle_type) X(future_type)         \
    X(task_type) X(ensure_future) X(isfuture) X(gather) X(wrap_future)     \
    X(set_result_unless_cancelled) X(events_module) X(is_debug_mode)       \
    X(iscoroutine) X(thread_safe_handle_type)                               \
    X(iscoroutinefunction) X(format_callback_source) X(extract_stack)       \
    X(format_list) X(logger) X(thread_pool_executor) X(thread_type)         \
    X(weakset_type) X(partial) X(sys_module) X(kwnames_loop)                \
    X(kwnames_socket)                                                       \
    X(kwnames_debug) X(kwnames_context) X(empty_tuple)                      \
    X(socket_transport_type)                                                \
    X(flow_control_mixin) X(buffered_protocol_type)                         \
    X(transport_socket_type) X(str_data_received) X(str_buffer_updated)     \
    X(str_peername) X(ssl_protocol_type) X(signal_module)                   \
    X(read_pipe_transport_type) X(write_pipe_transport_type)                \
    X(read_transport_type) X(socket_transport_base_type)                    \
    X(datagram_transport_type) X(datagram_transport_abc)                    \
    X(str_datagram_received) X(sock_call_type) X(ssl_socket_type)          \
    X(sock_method_names) X(socket_type) X(socket_int_members)              \
    X(socket_fileno) X(socket_init) X(socket_io_refs) X(socket_closed)      \
    X(transport_socket_init) X(transport_socket_sock)                       \
    X(ssl_max_size) X(subprocess_transport_type)                            \
    X(subprocess_pipe_protocol_type) X(subprocess_transport_abc)            \
    X(protocol_abc) X(subprocess_module) X(socket_module)                   \
    X(ssl_again_errors) X(tls_states) X(tls_names) X(str_ssl_fatal_error)   \
    X(str_ssl_closed) X(os_module) X(sendfile_not_available)                 \
    X(unsupported_operation) X(connect_call_type)                          \
    X(af_inet) X(af_inet6) X(af_unix)     \
    X(sock_stream) X(ipproto_tcp) X(cancelled_error) X(step_coro_type)      \
    X(server_type) X(base_events_module) X(unix_events_module) X(tasks_module) X(futures_module)             \
    X(sendfile_mode_unsupported) X(sendfile_mode_try_native)                \
    X(constants_module) X(sendfile_fallback_protocol_type) X(race_type)    \
    X(stream_reader_type) X(stream_protocol_type) X(c_stream_reader_type)   \
    X(c_stream_protocol_type) X(incomplete_read_error)                      \
    X(limit_overrun_error) X(stream_names) X(stream_newline)                \
    X(stream_reader_originals) X(stream_protocol_originals)                \
    X(stream_writer_type) X(c_stream_writer_type) X(stream_adopt_writer)   \
    X(stream_writer_originals) X(tls_app_states) X(sslproto_module)        \
    X(ssl_app_transport_base) X(ssl_app_transport_type) X(ssl_object_type)  \
    X(ssl_object_originals) X(ssl_object_names) X(ssl_inner_names)         \
    X(ssl_error) X(ssl_certificate_error) X(ssl_read_again_lambda)

static int
casyncio_traverse(PyObject *module, visitproc visit, void *arg)
{
    cio_state *st = PyModule_GetState(module);

#define VISIT(f) Py_VISIT(st->f);
    STATE_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
casyncio_clear(PyObject *module)
{
    cio_state *st = PyModule_GetState(module);

    cio_handle_freelist_clear(st);
#define CLEAR(f) Py_CLEAR(st->f);
    STATE_FIELDS(CLEAR)
#undef CLEAR
    for (int i = 0; i < CIO_NAME_COUNT; i++) {
        Py_CLEAR(st->names[i]);
    }
    return 0;
}

static void
casyncio_free(void *module)
{
    casyncio_clear((PyObject *)module);
}

/* Each interpreter gets its own module object and state (the classes it
 * imports from stdlib, interned names, free lists, its live loops), and
 * nothing mutable is shared between interpreters, so interpreters with a
 * GIL of their own may each import it and run loops. */
static PyModuleDef_Slot casyncio_slots[] = {
    {Py_mod_exec, casyncio_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef casyncio_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "casyncio._casyncio",
    .m_doc = "The C implementation of the casyncio event loop.",
    .m_size = sizeof(cio_state),
    .m_slots = casyncio_slots,
    .m_methods = cio_process_module_methods,
    .m_traverse = casyncio_traverse,
    .m_clear = casyncio_clear,
    .m_free = casyncio_free,
};

PyMODINIT_FUNC
PyInit__casyncio(void)
{
    return PyModuleDef_Init(&casyncio_module);
}
