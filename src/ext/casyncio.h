/* Shared declarations of the CPython binding: module state, the Handle and
 * Loop object layouts, and the functions the binding's files call across
 * one another. Everything here is internal to the _casyncio module. */
#ifndef CASYNCIO_EXT_H
#define CASYNCIO_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/socket.h>

#include "cio_poller.h"
#include "cio_ready_queue.h"
#include "cio_timer_heap.h"

typedef struct HandleObject HandleObject;

/* The newest CPython minor version whose Lib/asyncio, socket.py and
 * asyncio/trsock.py this code was checked against (diffed), as a
 * PY_VERSION_HEX. casyncio's loop, handles, transports and servers follow
 * that version's asyncio on any newer Python too; but what is a C copy of
 * a stdlib class's Python code -- streams.c's methods of StreamReader,
 * StreamReaderProtocol and StreamWriter, tls_protocol.c's SSLProtocol
 * methods, socket_objects.c's socket.socket and TransportSocket
 * constructors -- is left out on a newer Python, where stdlib's own code
 * runs instead. setup.py's CASYNCIO_NEWEST_TESTED sets it lower to test
 * that fallback. */
#ifndef CIO_NEWEST_TESTED
#define CIO_NEWEST_TESTED 0x030F0000
#endif
#define CIO_PYTHON_TESTED (PY_VERSION_HEX < CIO_NEWEST_TESTED + 0x00010000)

/* 3.15 runs a socket transport's protocol callbacks in one context that
 * belongs to the connection (gh-140947): the caller's context, copied
 * when a client connection is made; for an accepted one, a copy of the
 * context its Server captured when it was created. Before 3.15 each
 * callback runs in a copy of the context current when it was scheduled,
 * which is what a transport whose context is NULL does. */
#define CIO_TRANSPORT_CONTEXT (PY_VERSION_HEX >= 0x030F0000)

/* Names the binding looks up or calls once or more per connection,
 * interned once (module.c). A str made from a C string on each call would
 * be created, hashed and then miss the type's method cache, which keys on
 * the name object: several times the cost of the lookup itself. */
#define CIO_NAMES(X)                                                        \
    X(__init__) X(_attach) X(_run) X(_source_traceback) X(Task) X(Future) X(_call_connection_lost) X(_create_server_getaddrinfo)     \
    X(_detach) X(_ensure_resolved) X(_make_datagram_transport)              \
    X(_make_socket_transport) X(_make_ssl_transport) X(_read_ready)        \
    X(_sendto_ready) X(_start_reading) X(_write_ready) X(bind) X(close)    \
    X(_get_running_loop) X(_set_running_loop)                               \
    X(connection_lost) X(connection_made) X(create_future) X(done)         \
    X(eof_received) X(set_result)                                          \
    X(get_extra_info) X(getpeername) X(getsockname) X(setblocking)        \
    X(setsockopt) X(sock_connect) X(socket) X(sockname) X(waitpid)

typedef enum {
#define CIO_NAME_ENUM(name) CIO_NAME_##name,
    CIO_NAMES(CIO_NAME_ENUM)
#undef CIO_NAME_ENUM
    CIO_NAME_COUNT
} cio_name_t;

/* The interned str for a name of CIO_NAMES (borrowed). */
#define CIO_NAME(st, name) ((st)->names[CIO_NAME_##name])

/* Objects from Python's own asyncio and friends that the binding calls.
 * Looked up once at import; owned by the module state. */
typedef struct {
    PyTypeObject *loop_type;
    PyTypeObject *handle_type;
    PyTypeObject *timer_handle_type;
    PyTypeObject *socket_transport_base_type;
    PyTypeObject *socket_transport_type;
    PyTypeObject *datagram_transport_type;
    PyTypeObject *read_pipe_transport_type;
    PyTypeObject *write_pipe_transport_type;
    PyTypeObject *sock_call_type;
    PyTypeObject *connect_call_type;
    PyTypeObject *step_coro_type;
    PyTypeObject *server_type;       /* see server.c */
    PyTypeObject *subprocess_transport_type;
    PyTypeObject *subprocess_pipe_protocol_type;

    PyObject *future_type;            /* asyncio.Future */
    PyObject *task_type;              /* asyncio.Task */
    PyObject *ensure_future;          /* asyncio.ensure_future */
    PyObject *isfuture;               /* asyncio.isfuture */
    PyObject *gather;                 /* asyncio.gather */
    PyObject *wrap_future;            /* asyncio.wrap_future */
    PyObject *set_result_unless_cancelled;
    PyObject *events_module;          /* asyncio.events: its running-loop
                                         functions are looked up per run,
                                         as stdlib does, so patches apply */
    PyObject *is_debug_mode;          /* asyncio.coroutines._is_debug_mode */
    PyObject *iscoroutine;
    PyObject *iscoroutinefunction;
    PyObject *thread_safe_handle_type;  /* 3.14+: events._ThreadSafeHandle */
    PyObject *format_callback_source; /* asyncio.format_helpers */
    PyObject *extract_stack;          /* asyncio.format_helpers */
    PyObject *format_list;            /* traceback.format_list */
    PyObject *logger;                 /* asyncio.log.logger */
    PyObject *thread_pool_executor;   /* concurrent.futures */
    PyObject *thread_type;            /* threading.Thread */
    PyObject *weakset_type;           /* weakref.WeakSet */
    PyObject *partial;                /* functools.partial */
    PyObject *sys_module;
    PyObject *flow_control_mixin;     /* asyncio.transports._FlowControlMixin */
    PyObject *read_transport_type;    /* asyncio.transports.ReadTransport */
    PyObject *subprocess_transport_abc;  /* asyncio.SubprocessTransport */
    PyObject *protocol_abc;           /* asyncio.Protocol */
    PyObject *subprocess_module;
    PyObject *cancelled_error;        /* asyncio.CancelledError */
    PyObject *base_events_module;     /* their `socket` is looked up per */
    PyObject *unix_events_module;     /* call, as the tests patch it */
    PyObject *tasks_module;           /* asyncio.tasks and asyncio.futures: */
    PyObject *futures_module;         /* Task and Future read per call */
    PyObject *datagram_transport_abc; /* asyncio.DatagramTransport */
    PyObject *buffered_protocol_type; /* asyncio.BufferedProtocol */
    PyObject *transport_socket_type;  /* asyncio.trsock.TransportSocket */
    PyObject *ssl_protocol_type;      /* see tls_protocol.c */
    PyObject *ssl_max_size;           /* sslproto.SSLProtocol.max_size */
    PyObject *ssl_again_errors;       /* sslproto.SSLAgainErrors */
    PyObject *tls_states;             /* SSLProtocolState members */
    PyObject *tls_app_states;         /* AppProtocolState members */
    PyObject *tls_names;              /* tls_protocol.c's attribute names */
    PyObject *sslproto_module;        /* its _SSLProtocolTransport read per
                                         connection */
    PyObject *ssl_app_transport_base; /* sslproto._SSLProtocolTransport */
    PyObject *ssl_app_transport_type; /* its subclass with a C write() */
    PyTypeObject *ssl_object_type;    /* ssl.SSLObject */
    PyObject *ssl_object_originals;   /* its methods tls_protocol.c skips */
    PyObject *ssl_object_names;       /* their names, and the names of */
    PyObject *ssl_inner_names;        /* what they call on the _ssl object */
    PyObject *ssl_error;              /* ssl.SSLError */
    PyObject *ssl_certificate_error;  /* ssl.CertificateError */
    PyObject *ssl_read_again_lambda;  /* see read_again_callback() */
    PyObject *str_ssl_fatal_error;
    PyObject *str_ssl_closed;
    PyObject *ssl_socket_type;        /* ssl.SSLSocket; NULL without ssl */
    PyObject *sock_method_names;      /* see loop_sock.c */
    PyObject *socket_type;            /* socket.socket */
    PyObject *socket_module;
    PyObject *os_module;
    PyObject *sendfile_not_available; /* SendfileNotAvailableError */
    PyObject *sendfile_mode_unsupported;  /* constants._SendfileMode's */
    PyObject *sendfile_mode_try_native;
    PyObject *constants_module;       /* asyncio.constants: sizes read per
                                         call, as the tests patch them */
    PyTypeObject *sendfile_fallback_protocol_type;
    PyTypeObject *race_type;          /* see staggered.c */
    PyObject *unsupported_operation;  /* io.UnsupportedOperation */
    PyObject *socket_fileno;          /* _socket.socket.fileno; these and */
    PyObject *socket_init;            /* the next four: socket_objects.c */
    PyObject *socket_io_refs, *socket_closed;
    PyObject *transport_socket_init, *transport_socket_sock;
    PyObject *socket_int_members;     /* _socket.socket's family, type and
                                         proto member descriptors */
    PyObject *signal_module;
    PyObject *str_data_received;      /* interned method and key names */
    PyObject *str_buffer_updated;
    PyObject *str_peername;
    PyObject *str_datagram_received;

    PyObject *names[CIO_NAME_COUNT];  /* see CIO_NAMES */
    /* streams.c: stdlib's StreamReader, StreamReaderProtocol and
     * StreamWriter, their subclasses with C methods, what those use */
    PyTypeObject *stream_reader_type, *stream_protocol_type;
    PyTypeObject *stream_writer_type;
    PyTypeObject *c_stream_reader_type, *c_stream_protocol_type;
    PyTypeObject *c_stream_writer_type;
    PyObject *incomplete_read_error, *limit_overrun_error;
    PyObject *stream_names, *stream_newline, *stream_adopt_writer;
    PyObject *stream_reader_originals, *stream_protocol_originals;
    PyObject *stream_writer_originals;
    unsigned int ssl_object_version;  /* see cio_class_unchanged */
    unsigned int stream_reader_version, stream_protocol_version;
    unsigned int stream_writer_version;
    int python_optimized;             /* sys.flags.optimize */
    PyObject *af_inet, *af_inet6;     /* socket's constants, as stdlib */
    PyObject *af_unix, *sock_stream;  /* passes them (loop_connect.c) */
    PyObject *ipproto_tcp;
    PyObject *kwnames_loop;           /* ("loop",) */
    PyObject *kwnames_socket;         /* ("family", "type", "proto") */
    PyObject *kwnames_debug;          /* ("debug",) */
    PyObject *kwnames_context;        /* ("context",) */
    PyObject *empty_tuple;
    HandleObject *free_handles;       /* see cio_handle_new */
    struct LoopObject *live_loops;    /* this interpreter's loops not yet
                                         deallocated; see loop_fork.c */
    int pidfd_disabled;               /* set by tests: children watched by
                                         the waiter-thread fallback */
    int n_free_handles;
    double clock_resolution;          /* seconds */
    int format_source_takes_debug;    /* 3.13 added the debug= keyword */
    long conn_lost_threshold;         /* LOG_THRESHOLD_FOR_CONNLOST_WRITES */
} cio_state;

typedef struct LoopObject LoopObject;

struct HandleObject {
    PyObject_HEAD
    PyObject *callback;          /* NULL once cancelled */
    PyObject *args;              /* a tuple; NULL once cancelled */
    PyObject *context;
    LoopObject *loop;
    PyObject *source_traceback;  /* set in debug mode only */
    PyObject *repr_cache;        /* set when cancelled in debug mode */
    PyObject *weakreflist;
    struct HandleObject *next_free;  /* link in cio_state.free_handles */
    char cancelled;
    char is_timer;               /* a TimerHandleObject */
    char runs_py_handle;         /* callback is a Python asyncio.Handle
                                    whose _run() enters its own context */
};

typedef struct {
    HandleObject base;
    cio_timer_t node;            /* queued in loop->timers while pending */
    PyObject *when_int;          /* call_at's when if it was an int, which
                                    when() and the repr give back, as
                                    stdlib's do; else NULL */
} TimerHandleObject;

/* Per-fd watchers, indexed by fd: the Handles add_reader/add_writer made. */
typedef struct {
    HandleObject *reader;
    HandleObject *writer;
    unsigned events;             /* what the poller is watching: CIO_POLL_* */
    PyObject *transport;         /* borrowed: the transport owning the fd */
    PyObject *fileobj;           /* the non-int object add_reader/add_writer
                                    was given: found again by identity once
                                    its fileno() fails (a closed socket), as
                                    selectors find it */
} cio_fd_watch_t;

struct LoopObject {
    PyObject_HEAD
    cio_state *state;            /* borrowed: the type keeps the module */
    cio_poller_t poller;
    cio_timer_heap_t timers;     /* strong refs to TimerHandleObjects */
    cio_ready_queue_t ready;     /* strong refs to HandleObjects */
    cio_fd_watch_t *fds;
    size_t fds_len;
    size_t fds_watched;          /* fds with a non-empty event mask */

    PyObject *exception_handler;
    PyObject *task_factory;
    PyObject *default_executor;
    PyObject *asyncgens;         /* weakref.WeakSet of live async gens */
    PyObject *old_agen_hooks;
    PyObject *current_handle;    /* debug mode only, as in stdlib */
    PyObject *unix_server_sockets;  /* listening socket -> st_ino of path */
    PyObject *signal_handlers;   /* signal number -> Handle */
    PyObject *children;          /* pidfd -> (pid, callback, args) */
    PyObject *weakreflist;
    LoopObject *live_prev;       /* the list of live loops; see loop_fork.c */
    LoopObject *live_next;
    char *read_buffer;           /* stream reads land here; see transports */
    PyObject *ssl_read_view;     /* TLS reads land here; loop_server.c */
    int signal_read_fd;          /* the pipe signal.set_wakeup_fd() writes */
    int signal_write_fd;         /* into; -1 until a handler is added */

    double slow_callback_duration;
    unsigned long thread_id;     /* meaningful while running */
    int coro_tracking_saved_depth;
    char running;
    char closed;
    char stopping;
    char debug;
    char poller_open;
    char asyncgens_shutdown_called;
    char executor_shutdown_called;
    char coro_tracking_enabled;
    char time_overridden;        /* time() replaced on the instance or in a
                                    subclass: the timers then read it, as
                                    stdlib's loop reads self.time() */
};

/* module.c */
cio_state *cio_get_state_by_type(PyTypeObject *type);
/* Raises the OSError subclass for a negative errno returned by the core. */
PyObject *cio_raise_errno(int neg_errno);
/* Takes the raised exception (normalized, with traceback) off the thread. */
PyObject *cio_fetch_exception(void);
void cio_restore_exception(PyObject *exc);
int cio_is_exit_exception(PyObject *exc);  /* SystemExit or KeyboardInterrupt */
/* sock.family, sock.type and sock.proto as C longs. For a socket object
 * they come from _socket.socket's own members, skipping the enum that
 * socket.socket's properties of the same names build each time. */
int cio_socket_ints(cio_state *st, PyObject *sock, long ints[3]);
/* socket_objects.c: the loop's socket objects, made as their classes'
 * __init__ would make them. */
int cio_socket_objects_init(cio_state *st);
/* sock.fileno(), called directly for a socket object; -1 with an error. */
int cio_socket_fd(cio_state *st, PyObject *sock);
/* socket.socket(*args), args a tuple of ints (family, type, proto and
 * perhaps fileno) that socket.py's __init__ passes on unchanged: no -1
 * that it would replace with a default. */
PyObject *cio_socket_new(cio_state *st, PyObject *args);
/* socket.socket(family, type, proto, fileno=fd); on error fd stays the
 * caller's to close. */
PyObject *cio_socket_from_fd(cio_state *st, long family, long type,
                             long proto, int fd);
/* asyncio.trsock.TransportSocket(sock) */
PyObject *cio_transport_socket_new(cio_state *st, PyObject *sock);
/* An IP or Unix socket address as socketmodule's makesockaddr makes it:
 * (host, port), (host, port, flowinfo, scope_id), a path or an abstract
 * name. addr must be zero-filled before the call that filled it. */
PyObject *cio_sockaddr_object(const struct sockaddr_storage *addr,
                              socklen_t len);
/* obj.<name>(*args) for a name of CIO_NAMES: a new reference or NULL. */
PyObject *cio_call_method(cio_state *st, PyObject *obj, cio_name_t name,
                          PyObject *const *args, size_t nargs);
/* Calls logger.<level>(msg, exc_info=exc_info) on asyncio's logger. */
int cio_log(cio_state *st, const char *level, PyObject *msg,
            PyObject *exc_info);
/* obj.<method>(), its result dropped: 0, or -1 with its exception. */
int cio_call_noargs(PyObject *obj, const char *method);
/* obj.<method>() while an exception is being raised, as `except:
 * obj.close(); raise` does: the exception stays raised, or the method's
 * own replaces it with it as context. Always returns -1. */
int cio_call_while_raising(PyObject *obj, const char *method);
/* The end of a `finally:` block that ran with exc (owned; NULL if none)
 * taken off the thread: exc is raised again, unless the block raised its
 * own exception, which then gets exc as its context. Returns 0 when
 * nothing is raised, else -1. */
int cio_finally_end(PyObject *exc);
/* If dict has key, moves its value (a new reference) to *value and
 * deletes it; *value is left alone otherwise. */
int cio_dict_pop(PyObject *dict, const char *key, PyObject **value);
/* tp_dealloc of a GC type with a finalizer, in two halves around the
 * type's own clearing. cio_dealloc_begin runs the finalizer, which may
 * resurrect the object (it returns 0 then, and the dealloc must stop
 * there), untracks the object and clears its weak references (weakreflist
 * may be NULL for a type without them); cio_dealloc_end frees it. */
int cio_dealloc_begin(PyObject *self, PyObject **weakreflist);
void cio_dealloc_end(PyObject *self);
/* Parses FASTCALL arguments of the form (f, *args, context=None). */
int cio_parse_callback_args(const char *fname, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames,
                            Py_ssize_t npositional, PyObject **context);

/* handle.c */
extern PyType_Spec cio_handle_spec;
extern PyType_Spec cio_timer_handle_spec;
/* A new Handle (or TimerHandle when type is the timer type). context NULL
 * or None means a copy of the current context. */
HandleObject *cio_handle_new(LoopObject *loop, PyTypeObject *type,
                             PyObject *callback, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *context);
/* Runs the callback. Returns 0, or -1 with SystemExit/KeyboardInterrupt
 * (or an error of the exception handler) set; other errors go to the
 * loop's exception handler. */
int cio_handle_run(HandleObject *h);
/* module.attr (dotted attribute names followed); a new reference. */
PyObject *cio_import_attr(const char *module_name, const char *attr);
/* A tuple of the names, interned; of obj's attributes of those names. */
PyObject *cio_tuple_of_names(const char *const *names, int n);
PyObject *cio_tuple_of_attrs(PyObject *obj, const char *const *names, int n);
/* Whether class cls still has, under names[i], the objects in originals
 * (a tuple made by cio_tuple_of_attrs): checked again only when the
 * class's version tag moved (its dict, or a base's, changed); *version
 * remembers the tag of the last check that passed. Never fails. */
int cio_class_unchanged(PyTypeObject *cls, PyObject *originals,
                        const char *const *names, unsigned int *version);
/* obj.<name> read, and written, in the instance's __dict__ directly, for
 * the attributes that stdlib's classes keep there and define no
 * descriptor for: a generic getattr would first look the name up in the
 * type. A name not in the dict is looked up as Python would, which
 * raises AttributeError as stdlib's code would. */
PyObject *cio_instance_get(PyObject *obj, PyObject *name);
int cio_instance_set(PyObject *obj, PyObject *name, PyObject *value);
#if PY_VERSION_HEX >= 0x030E0000
HandleObject *cio_handle_new_py_runner(LoopObject *loop, PyObject *py_handle);
#endif
void cio_handle_cancel_quietly(HandleObject *h);
/* Releases the Handles kept for reuse; at module teardown. */
void cio_handle_freelist_clear(cio_state *st);
PyObject *cio_handle_format_callback(HandleObject *h);

/* loop.c */
extern PyType_Spec cio_loop_spec;
/* Gathers the Loop's method tables; call before creating the type. */
void cio_loop_spec_prepare(void);
int cio_loop_check_closed(LoopObject *self);
/* call_soon(callback, *args) from C: 0, or -1 with an exception. */
int cio_loop_call_soon(LoopObject *self, PyObject *callback,
                       PyObject *const *args, Py_ssize_t nargs);
PyObject *cio_loop_call_soon_impl(LoopObject *self, PyObject *callback,
                                  PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *context, int threadsafe);
/* The start-up calls an object's constructor schedules (connection_made,
 * the start of reading, the waiter's result), all or none: when one cannot
 * be scheduled, those already queued are cancelled, so that nothing runs
 * for an object whose construction failed. (stdlib's __init__ leaves
 * connection_made queued for a transport it never returned: its protocol
 * then waits for data that never comes.) */
#define CIO_SOON_BATCH_MAX 3
typedef struct {
    LoopObject *loop;
    PyObject *context;
    int count;
    PyObject *queued[CIO_SOON_BATCH_MAX];
} cio_soon_batch_t;

void cio_soon_batch_init(cio_soon_batch_t *batch, LoopObject *loop,
                         PyObject *context);
/* call_soon(callback, *args) as part of the batch: 0, or -1 with an
 * exception set (callback NULL, from a failed lookup, is -1 as well). */
int cio_soon_batch_add(cio_soon_batch_t *batch, PyObject *callback,
                       PyObject *const *args, Py_ssize_t nargs);
/* Ends the batch; rc < 0 (a step of the construction failed) cancels what
 * it queued. Returns rc. */
int cio_soon_batch_end(cio_soon_batch_t *batch, int rc);
/* A call that something waits for (a pipe's end, a process's end) must
 * not be lost because an allocation failed when it came due: a "spare"
 * Handle of callback(None, ...) is made when the object is built, and
 * cio_loop_call_soon_or_spare() schedules callback(*args) as call_soon
 * does or, if that fails with MemoryError (callback NULL from a failed
 * lookup included), queues the spare with spare_args put in place of its
 * Nones. The spare holds no argument until it is used: made of the
 * method of the object's type, and given the object as an argument, it
 * keeps the object out of a reference cycle. */
#define CIO_SPARE_MAX_ARGS 2
HandleObject *cio_handle_new_spare(LoopObject *loop, PyObject *callback,
                                   Py_ssize_t nargs);
int cio_loop_call_soon_or_spare(LoopObject *self, PyObject *callback,
                                PyObject *const *args, Py_ssize_t nargs,
                                HandleObject **spare,
                                PyObject *const *spare_args);
/* Queues an existing Handle to run in this iteration's ready phase. */
int cio_loop_push_ready(LoopObject *self, HandleObject *h);
void cio_loop_unschedule_timer(LoopObject *self, TimerHandleObject *timer);
PyObject *cio_loop_create_future(LoopObject *self);

/* loop_fd.c */
extern PyMethodDef cio_loop_fd_methods[];
int cio_loop_dispatch_io(LoopObject *self, const cio_poll_event_t *events,
                         int n);
void cio_loop_fds_clear(LoopObject *self);
int cio_loop_fds_traverse(LoopObject *self, visitproc visit, void *arg);
/* add_reader/add_writer from C: callback(*args) runs whenever fd is ready
 * for event, in context (NULL: a copy of the current one, as stdlib's
 * Handle makes). handle_out, when given, receives a new reference to the
 * Handle. remove returns 1 if a watcher was removed, 0 if none, -1. */
int cio_loop_add_watcher(LoopObject *self, int fd, unsigned event,
                         PyObject *callback, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *context,
                         HandleObject **handle_out);
int cio_loop_remove_watcher(LoopObject *self, int fd, unsigned event);
int cio_loop_is_watching(LoopObject *self, int fd, unsigned event);
/* An fd from an int or an object with fileno(), as selectors accept it;
 * -1 with ValueError otherwise. */
int cio_loop_fd_from_object(PyObject *fileobj);
/* stdlib's _ensure_fd_no_transport: RuntimeError if a live transport
 * owns fd. */
int cio_loop_ensure_fd_no_transport(LoopObject *self, int fd);
/* Marks fd as owned by a transport (a borrowed pointer, which the
 * transport clears before it goes), so add_reader refuses it. */
int cio_loop_set_fd_transport(LoopObject *self, int fd, PyObject *transport);
void cio_loop_forget_fd_transport(LoopObject *self, int fd,
                                  PyObject *transport);

/* transport_stream.c */
extern PyType_Spec cio_socket_transport_spec;
/* stdlib's _make_socket_transport: takes over the connected socket. Its
 * callbacks run in context, a contextvars.Context, or NULL (see
 * CIO_TRANSPORT_CONTEXT). */
PyObject *cio_socket_transport_new(LoopObject *loop, PyObject *sock,
                                   PyObject *protocol, PyObject *waiter,
                                   PyObject *extra, PyObject *server,
                                   PyObject *context);

/* loop_server.c: transports and the accept loop, as the loop's methods */
extern PyMethodDef cio_loop_server_methods[];

/* transport_pipe.c: the pipe transports and their factories */
extern PyType_Spec cio_read_pipe_transport_spec;
extern PyType_Spec cio_write_pipe_transport_spec;
extern PyMethodDef cio_loop_pipe_methods[];
/* stdlib's _UnixReadPipeTransport(loop, pipe, protocol, waiter, extra)
 * and the write side; waiter and extra may be None. */
PyObject *cio_read_pipe_transport_new(LoopObject *loop, PyObject *pipe,
                                      PyObject *protocol, PyObject *waiter,
                                      PyObject *extra);
PyObject *cio_write_pipe_transport_new(LoopObject *loop, PyObject *pipe,
                                       PyObject *protocol, PyObject *waiter,
                                       PyObject *extra);
/* A C transport's Python base must have BaseTransport's layout: its one
 * slot, _extra, and nothing else. */
int cio_transport_check_base(PyTypeObject *base);

/* transport_subprocess.c: SubprocessTransport, _spawn_subprocess */
extern PyType_Spec cio_subprocess_transport_spec;
extern PyType_Spec cio_subprocess_pipe_protocol_spec;
extern PyMethodDef cio_loop_subprocess_methods[];

/* accept.c: sock.accept() with the new socket made non-blocking. An
 * acceptor holds what one listening socket needs, worked out once by
 * cio_acceptor_init (0, or -1 with an exception); the socket stays
 * borrowed. cio_acceptor_accept returns a (conn, address) pair, or NULL:
 * without an exception when no connection is waiting on the native path
 * (EAGAIN or EINTR), while the Python path raises BlockingIOError. */
typedef struct {
    PyObject *sock;
    int native;      /* accept4() here rather than sock.accept() */
    int fd;          /* when native */
    long ints[3];    /* family, type, proto when native */
} cio_acceptor_t;
int cio_acceptor_init(cio_state *st, PyObject *sock,
                      cio_acceptor_t *acceptor);
PyObject *cio_acceptor_accept(cio_state *st,
                              const cio_acceptor_t *acceptor);

/* tls_protocol.c: casyncio's SSLProtocol, stdlib's with its handshake,
 * record path and shutdown in C (st->ssl_protocol_type) */
int cio_tls_protocol_init(PyObject *module, cio_state *st);

/* streams.c: C paths for asyncio streams */
int cio_streams_init(PyObject *module, cio_state *st);
/* Switches a protocol that is exactly a StreamReaderProtocol, and its
 * StreamReader, to the subclasses with C methods, and wraps a server's
 * client_connected_cb so its StreamWriter is switched too; anything else
 * is left alone. */
int cio_streams_adopt(cio_state *st, PyObject *protocol);

/* coro.c: the coroutine protocol of the awaitables written in C */
/* A finished send as send() and __next__() report it: the yielded object,
 * or NULL with StopIteration carrying the returned value or the error. */
PyObject *cio_coro_return(PySendResult rc, PyObject *result);
/* Raises what throw(exc) or the legacy throw(type, value, traceback)
 * asked for; always returns -1. */
int cio_coro_raise_thrown(PyObject *const *args, Py_ssize_t nargs);
/* What `await awaitable` iterates: a new reference, or NULL with
 * TypeError for an object that cannot be awaited. */
PyObject *cio_coro_await_iter(PyObject *awaitable);
/* throw() passed on to the iterator being awaited, as `await` does:
 * PYGEN_NEXT when it yields again, PYGEN_RETURN when it returns instead,
 * PYGEN_ERROR when the exception (or another) comes out of it. */
PySendResult cio_coro_throw_into(PyObject *iter, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject **result);
/* send(value), __next__() and __await__() of a C coroutine type, the
 * first two through the type's am_send. */
PyObject *cio_coro_send(PyObject *self, PyObject *value);
PyObject *cio_coro_next(PyObject *self);
PyObject *cio_coro_self(PyObject *self);
/* The RuntimeWarning of a coroutine that was never awaited. */
void cio_coro_warn_unawaited(PyObject *coro, const char *qualname);

/* The whole coroutine protocol once, for the C coroutines whose body is a
 * state machine: StepCoroutine (below) and ConnectCall (loop_connect.c)
 * start with a CioCoroHead and give their types CIO_CORO_SLOTS. The
 * body only runs, resumes and finishes; send(), throw(), close(), `await`
 * delegation, the finalizer and the introspection attributes are
 * coro.c's. (SockCall keeps its own: its close() abandons the call
 * instead of raising GeneratorExit in it.) */
typedef struct CioCoroHead CioCoroHead;
typedef struct {
    /* Runs the body from its start; returns as am_send does. */
    PySendResult (*start)(CioCoroHead *coro, PyObject **result);
    /* Goes on after what the body awaited, or a bare yield, finished: rc
     * is PYGEN_RETURN with value (a reference this takes) or PYGEN_ERROR
     * with the exception set, as it would be raised at the await. */
    PySendResult (*resume)(CioCoroHead *coro, PySendResult rc,
                           PyObject *value, PyObject **result);
    /* The body has finished: what it held goes, as a frame's locals do. */
    void (*finish)(CioCoroHead *coro);
} cio_coro_body_t;

struct CioCoroHead {
    PyObject_HEAD
    const cio_coro_body_t *body;
    const char *qualname;  /* static: "Loop.create_connection" */
    /* The iterator being awaited; NULL while suspended at a bare yield. */
    PyObject *awaiting;
    char started, done;
    char running;  /* inside send(), throw() or close() */
};

static inline void
cio_coro_head_init(CioCoroHead *coro, const cio_coro_body_t *body,
                   const char *qualname)
{
    coro->body = body;
    coro->qualname = qualname;
    coro->awaiting = NULL;
    coro->started = coro->done = coro->running = 0;
}
/* Sets awaiting to awaitable's iterator and sends it None, as `await`
 * does; a result other than PYGEN_NEXT clears awaiting. Takes the
 * reference to awaitable (NULL: an error already set). */
PySendResult cio_coro_await(CioCoroHead *coro, PyObject *awaitable,
                            PyObject **result);
PySendResult cio_coro_am_send(PyObject *self, PyObject *value,
                              PyObject **result);
PyObject *cio_coro_throw(PyObject *self, PyObject *const *args,
                         Py_ssize_t nargs);
PyObject *cio_coro_close(PyObject *self, PyObject *ignored);
void cio_coro_finalize(PyObject *self);
PyObject *cio_coro_repr(PyObject *self);
extern PyMethodDef cio_coro_methods[];
extern PyGetSetDef cio_coro_getset[];
/* The type slots of a CioCoroHead coroutine, but for its am_send
 * (cio_coro_am_send, or a copy specialised for its body), traverse, clear
 * and dealloc (which must visit and clear awaiting too) and doc. */
#define CIO_CORO_SLOTS                                                     \
    {Py_am_await, cio_coro_self}, {Py_tp_iternext, cio_coro_next},         \
    {Py_tp_repr, cio_coro_repr}, {Py_tp_methods, cio_coro_methods},        \
    {Py_tp_getset, cio_coro_getset}, {Py_tp_finalize, cio_coro_finalize}

/* A StepCoroutine is an `async def` written as one C step function: the
 * function runs when the coroutine starts (value None) and again each
 * time what it awaited finishes, with that outcome: value (borrowed), or
 * NULL with the exception set, as it would be raised at the await. It
 * returns CIO_STEP_AWAIT with *out a new reference to the next awaitable,
 * CIO_STEP_YIELD with *out the object to yield to the Task (a bare
 * `yield`, as asyncio.sleep(0) does; the next send() is the value),
 * CIO_STEP_RETURN with *out the result, or CIO_STEP_ERROR with an
 * exception. state, index and vars (owned, cleared when the coroutine
 * finishes) are the function's to keep its place and its locals in. */
typedef enum {
    CIO_STEP_ERROR = -1,
    CIO_STEP_RETURN,
    CIO_STEP_AWAIT,
    CIO_STEP_YIELD,
} cio_step_t;

#define CIO_STEP_VARS 8

typedef struct CioStepCoroObject CioStepCoroObject;
typedef cio_step_t (*cio_step_fn)(CioStepCoroObject *coro, PyObject *value,
                                  PyObject **out);

struct CioStepCoroObject {
    CioCoroHead head;
    cio_step_fn step;
    PyObject *vars[CIO_STEP_VARS];
    Py_ssize_t index;            /* the step function's loop counter */
    int state;
};

extern PyType_Spec cio_step_coro_spec;
CioStepCoroObject *cio_step_coro_new(cio_state *st, const char *qualname,
                                     cio_step_fn step);

/* loop_sock.c: sock_recv and the other sock_* coroutines */
extern PyType_Spec cio_sock_call_spec;
extern PyMethodDef cio_loop_sock_methods[];
int cio_sock_names_init(cio_state *st);

/* loop_resolve.c: _ensure_resolved, _create_server_getaddrinfo and
 * _getaddrinfo_debug, and the callers' numeric fast path: */
extern PyMethodDef cio_loop_resolve_methods[];
/* base_events._ipaddr_info for what nearly every caller passes: address
 * a (host, port) or (host, port, flowinfo, scopeid) tuple with a str
 * host and an int or None port, and ints the family, type and proto
 * asked for. Returns a new reference to the address to connect to (and
 * its family in *af_out, when given) if host is a numeric IP address;
 * None when it is not, or when the arguments are of another kind, and
 * the loop's _ensure_resolved is to decide; NULL on error. */
PyObject *cio_numeric_sockaddr(PyObject *address, const long ints[3],
                               int *af_out);

/* _ipaddr_info's answer for a numeric sockaddr of family af, as a
 * one-entry list: [(family, type, proto, '', sockaddr)], family as asked
 * unless AF_UNSPEC (then socket's AF_INET or AF_INET6), type and proto a
 * stream's (SOCK_STREAM, IPPROTO_TCP) or, with datagram, UDP's. */
PyObject *cio_numeric_infos(cio_state *st, PyObject *family, int af,
                            int datagram, PyObject *sockaddr);

/* sock.__class__ is not ssl.SSLSocket (base_events._check_ssl_socket):
 * 0, or -1 with TypeError. */
int cio_check_not_ssl_socket(cio_state *st, PyObject *sock);

/* loop_sendfile.c: loop.sendfile, its native and fallback paths, and
 * sock_sendfile's fallback */
extern PyType_Spec cio_sendfile_fallback_protocol_spec;
extern PyMethodDef cio_loop_sendfile_methods[];
/* base_events._check_sendfile_params: 0, or -1 with stdlib's ValueError
 * or TypeError for a bad argument. */
int cio_check_sendfile_params(cio_state *st, PyObject *sock, PyObject *file,
                              PyObject *offset, PyObject *count);

/* staggered.c: happy eyeballs' staggered race. start returns a new
 * reference to the awaitable of attempt index (0, 1, ...), or NULL;
 * discard disposes of the result of an attempt that succeeded after
 * another had won. */
typedef struct {
    PyObject *(*start)(PyObject *ctx, Py_ssize_t index);
    void (*discard)(PyObject *ctx, PyObject *result);
} cio_race_ops_t;
extern PyType_Spec cio_race_spec;
/* Races n attempts, each started delay seconds (a number, or None for
 * never) after the one before or as soon as that one fails. Returns a
 * new reference to a Future of the first result, or of None when every
 * attempt failed; cancelling it cancels the attempts. */
PyObject *cio_race_start(LoopObject *loop, Py_ssize_t n, PyObject *delay,
                         const cio_race_ops_t *ops, PyObject *ctx);

/* loop_connect.c: create_connection, create_unix_connection,
 * _create_connection_transport */
extern PyType_Spec cio_connect_call_spec;
extern PyMethodDef cio_loop_connect_methods[];

/* server.c: the Server create_server and create_unix_server return */
extern PyType_Spec cio_server_base_spec;
/* Makes casyncio._casyncio.Server (st->server_type) from ServerBase and
 * asyncio.AbstractServer. */
int cio_server_type_init(PyObject *module, cio_state *st,
                         PyObject *server_base);
/* Server(loop, sockets, protocol_factory, ssl_context, backlog,
 *     ssl_handshake_timeout, ssl_shutdown_timeout), sockets a list. */
PyObject *cio_server_new(LoopObject *loop, PyObject *sockets,
                         PyObject *factory, PyObject *ssl_context,
                         PyObject *backlog, PyObject *handshake_timeout,
                         PyObject *shutdown_timeout);

/* loop_listen.c: create_server, create_unix_server, and helpers the
 * endpoint set-up shares (loop_datagram.c) */
extern PyMethodDef cio_loop_listen_methods[];
/* socket.socket as stdlib_module's code calls it: through that module's
 * global `socket`, which asyncio's tests replace. A new reference. */
PyObject *cio_stdlib_socket_constructor(cio_state *st,
                                        PyObject *stdlib_module);
/* sock.setsockopt(level, option, value); value -1 passes True. */
int cio_set_int_option(cio_state *st, PyObject *sock, int level, int option,
                       int value);
/* base_events._set_reuseport: SO_REUSEPORT, or stdlib's ValueError. */
int cio_set_reuse_port(cio_state *st, PyObject *sock);
/* Whether a Unix socket address (str or bytes) is in the abstract
 * namespace (first character NUL): 1, 0, or -1 with stdlib's IndexError
 * for an empty one. */
int cio_is_abstract_unix_address(PyObject *path);
/* Removes a stale socket file at path so that bind() can make a new one;
 * other files stay, and a failure to look is logged, as in stdlib. */
int cio_remove_stale_unix_socket(cio_state *st, PyObject *path);
/* A StepCoroutine for a loop method: vars[0] the loop, vars[1] a tuple
 * of its n arguments a[i], or the int defaults[i] where a[i] is NULL. */
CioStepCoroObject *cio_loop_call_coro_new(LoopObject *loop,
                                          const char *qualname,
                                          cio_step_fn step,
                                          PyObject *const *a, int n,
                                          const long *defaults);

/* loop_datagram.c: create_datagram_endpoint */
extern PyMethodDef cio_loop_datagram_methods[];

/* loop_signals.c */
extern PyMethodDef cio_loop_signal_methods[];
int cio_loop_remove_signal_handlers(LoopObject *self);
void cio_loop_close_signal_pipe(LoopObject *self);

/* loop_process.c: child exit notification */
extern PyMethodDef cio_loop_process_methods[];
extern PyMethodDef cio_process_module_methods[];
/* Reaps pid once it exits and then calls callback(pid, returncode, *args);
 * _add_child_handler from C. */
int cio_loop_watch_child(LoopObject *self, long pid, PyObject *callback,
                         PyObject *const *args, Py_ssize_t nargs);
void cio_loop_release_children(LoopObject *self);

/* loop_fork.c: fresh pollers for the loops of a forked child */
void cio_loop_track(LoopObject *self);
void cio_loop_untrack(LoopObject *self);
int cio_fork_hook_install(PyObject *module, cio_state *st);

/* loop_errors.c */
extern PyMethodDef cio_loop_error_methods[];
/* Calls self.call_exception_handler(context), as stdlib's Handle._run does;
 * returns -1 only when that call raised. */
int cio_loop_report(LoopObject *self, PyObject *context);

/* loop_lifecycle.c: executor, async generators, coroutine tracking */
extern PyMethodDef cio_loop_lifecycle_methods[];
int cio_loop_set_coro_tracking(LoopObject *self, int enabled);
int cio_loop_install_asyncgen_hooks(LoopObject *self);
int cio_loop_restore_asyncgen_hooks(LoopObject *self);
int cio_loop_shutdown_executor_nowait(LoopObject *self);

#endif
