/* Socket helpers for the loop's hot paths. */
#ifndef CIO_SOCKET_H
#define CIO_SOCKET_H

#include <netinet/in.h>
#include <sys/socket.h>

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
