/* Socket helpers for the loop's hot paths. */
#ifndef CIO_SOCKET_H
#define CIO_SOCKET_H

#include <netinet/in.h>
#include <sys/socket.h>

/* The flags of the transports' send(): Linux's MSG_NOSIGNAL spares a
 * signal handler the SIGPIPE of a write to a closed connection. Elsewhere
 * (and in the portable build) none, as stdlib's transports send: Python
 * ignores SIGPIPE from start-up, so the write fails with EPIPE all the
 * same. */
#if defined(__linux__) && !defined(CIO_PORTABLE)
#define CIO_SEND_FLAGS MSG_NOSIGNAL
#else
#define CIO_SEND_FLAGS 0
#endif

/* Linux's socket type flag that makes a socket non-blocking as it is
 * made; given in the type to socket.socket(), it also makes socketmodule
 * set a zero timeout without a system call. Where it is missing (and in
 * the portable build) the binding leaves out the fast paths that use it,
 * and sockets get setblocking(False) as stdlib's do. */
#if defined(__linux__) && !defined(CIO_PORTABLE)
#define CIO_HAVE_SOCK_NONBLOCK 1
#define CIO_SOCK_NONBLOCK SOCK_NONBLOCK
#else
#define CIO_HAVE_SOCK_NONBLOCK 0
#define CIO_SOCK_NONBLOCK 0
#endif

/* socketpair(AF_UNIX, SOCK_STREAM) with both ends close-on-exec; 0 or
 * -errno. */
int cio_socketpair_cloexec(int pair[2]);

/* Room for the longest dotted quad and its NUL. */
#define CIO_IPV4_TEXT_SIZE 16

/* Accepts one connection from a listening socket. The new socket is
 * non-blocking and close-on-exec from the start, which saves the system
 * calls that would otherwise set those flags. *addr receives the peer's
 * address (zero-filled first, so an unnamed Unix peer reads as an empty
 * path) and *addrlen its length. Returns the new fd or -errno; -EAGAIN
 * when no connection is waiting. */
int cio_socket_accept(int listen_fd, struct sockaddr_storage *addr,
                      socklen_t *addrlen);

/* Writes addr as inet_ntop(AF_INET) does ("127.0.0.1") and returns the
 * text's length. inet_ntop formats with sprintf, which costs several
 * times more, and the loop formats an address per connection end. */
int cio_format_ipv4(const struct in_addr *addr,
                    char out[CIO_IPV4_TEXT_SIZE]);

/* getsockname() (peer 0) or getpeername() (peer 1) into a zero-filled
 * *addr, as socketmodule does; 0 or -errno. */
int cio_socket_name(int fd, int peer, struct sockaddr_storage *addr,
                    socklen_t *addrlen);

/* TCP_NODELAY on, as asyncio sets it on every TCP transport's socket;
 * 0 or -errno. */
int cio_socket_set_nodelay(int fd);

#endif
