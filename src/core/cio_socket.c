#include "cio_socket.h"

#include <errno.h>
#include <string.h>

int
cio_socket_accept(int listen_fd, struct sockaddr_storage *addr,
                  socklen_t *addrlen)
{
    int fd;

    memset(addr, 0, sizeof(*addr));
    *addrlen = sizeof(*addr);
    fd = accept4(listen_fd, (struct sockaddr *)addr, addrlen,
                 SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        /* Linux may report EWOULDBLOCK under either name; they are equal
         * there, but the callers only test for EAGAIN. */
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    return fd;
}
