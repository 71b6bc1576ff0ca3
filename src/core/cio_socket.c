#include "cio_socket.h"

#include <errno.h>
#include <netinet/tcp.h>
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

int
cio_format_ipv4(const struct in_addr *addr, char out[CIO_IPV4_TEXT_SIZE])
{
    const unsigned char *octets = (const unsigned char *)&addr->s_addr;
    int n = 0;

    for (int i = 0; i < 4; i++) {
        unsigned v = octets[i];
        if (v >= 100) {
            out[n++] = (char)('0' + v / 100);
        }
        if (v >= 10) {
            out[n++] = (char)('0' + v / 10 % 10);
        }
        out[n++] = (char)('0' + v % 10);
        out[n++] = i < 3 ? '.' : '\0';
    }
    return n - 1;
}

int
cio_socket_name(int fd, int peer, struct sockaddr_storage *addr,
                socklen_t *addrlen)
{
    int rc;

    memset(addr, 0, sizeof(*addr));
    *addrlen = sizeof(*addr);
    rc = peer ? getpeername(fd, (struct sockaddr *)addr, addrlen)
              : getsockname(fd, (struct sockaddr *)addr, addrlen);
    return rc < 0 ? -errno : 0;
}

int
cio_socket_set_nodelay(int fd)
{
    int on = 1;

    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0
               ? -errno : 0;
}
