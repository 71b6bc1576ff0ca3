/* The socket transports: one C base type with selector_events.
 * _SelectorTransport's methods (closing, reading control, protocol, extra
 * info), and two subclasses, the stream transport (transport_stream.c,
 * which also holds the base) and the datagram transport
 * (transport_datagram.c). */
#ifndef CASYNCIO_TRANSPORT_SOCKET_H
#define CASYNCIO_TRANSPORT_SOCKET_H

#include "transport_write.h"

typedef struct {
    CIO_WRITE_TRANSPORT_HEAD
    PyObject *sock;            /* the socket object; NULL once closed */
    PyObject *server;          /* the base_events.Server, or NULL */
    PyObject *extra;
    PyObject *read_ready;      /* bound _read_ready and the writer (stream:
                                  _write_ready, datagram: _sendto_ready), */
    PyObject *write_ready;     /* made once, reused by every add_reader */
    PyObject *address;         /* datagram: the fixed peer address, or NULL */
    PyObject *empty_waiter;    /* stream: loop.sendfile() waits on it for
                                  the queue to drain; writes are refused
                                  while it is set */
    PyObject *context;         /* stream, 3.15+: the connection's context,
                                  which every callback of the transport
                                  runs in; NULL: each runs in a copy of
                                  the context current when scheduled */
    PyObject *weakreflist;     /* Server keeps its clients in a WeakSet */
    PyObject *dict;            /* instance attributes: tests patch methods
                                  on the transport (Python callers see
                                  the patch; the loop's C paths do not) */
    int fd;
    int sock_family;           /* datagram: picks the address fast path */
    int conn_lost;
    char closing;
    char eof;
    char paused;
    char protocol_connected;
    char buffered;             /* stream: the protocol is a BufferedProtocol */
    char connected;            /* datagram: the socket has a peer */
} SocketTransportObject;

extern PyType_Spec cio_socket_transport_base_spec;
extern PyType_Spec cio_datagram_transport_spec;

/* stdlib's _SelectorTransport.__init__: extra info, the fd, the protocol,
 * the server; writer names the method that drains the write queue. */
int cio_socket_transport_setup(SocketTransportObject *self, LoopObject *loop,
                               PyObject *sock, PyObject *protocol,
                               PyObject *extra, PyObject *server,
                               cio_name_t writer);
/* Schedules connection_made, the start of reading, then the waiter. */
int cio_socket_transport_schedule_start(SocketTransportObject *self,
                                        PyObject *waiter);
/* Drops a transport whose constructor failed, at once: its bound methods
 * make a cycle the garbage collector would take its time to break, and
 * until its finalizer runs it keeps its socket open and its server's
 * wait_closed() waiting. */
void cio_socket_transport_abandon(SocketTransportObject *self);
/* stdlib's _fatal_error; steals exc. */
int cio_socket_transport_fatal_error(SocketTransportObject *self,
                                     PyObject *exc, const char *message);
/* transport_datagram.c: stdlib's _make_datagram_transport. */
PyObject *cio_datagram_transport_new(LoopObject *loop, PyObject *sock,
                                     PyObject *protocol, PyObject *address,
                                     PyObject *waiter, PyObject *extra);
/* _call_connection_lost(exc) */
PyObject *cio_socket_transport_connection_lost(SocketTransportObject *self,
                                               PyObject *exc);

#endif
