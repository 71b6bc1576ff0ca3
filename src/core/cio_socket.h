/* Socket helpers for the loop's hot paths. */
#ifndef CIO_SOCKET_H
#define CIO_SOCKET_H

#include <sys/socket.h>

/* Accepts one connection from a listening socket. The new socket is
 * non-blocking and close-on-exec from the start, which saves the system
 * calls that would otherwise set those flags. *addr receives the peer's
 * address (zero-filled first, so an unnamed Unix peer reads as an empty
 * path) and *addrlen its length. Returns the new fd or -errno; -EAGAIN
 * when no connection is waiting. */
int cio_socket_accept(int listen_fd, struct sockaddr_storage *addr,
                      socklen_t *addrlen);

#endif
