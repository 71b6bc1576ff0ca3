#include "cio_socket.h"
#include "cio_fd.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__) && !defined(CIO_PORTABLE)
static int
accept_nonblocking_cloexec(int listen_fd, struct sockaddr *addr,
                           socklen_t *addrlen)
{
    return accept4(listen_fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
#else
/* accept4() is not POSIX (macOS lacks it): accept(), then the flags. */
static int
accept_nonblocking_cloexec(int listen_fd, struct sockaddr *addr,
                           socklen_t *addrlen)
{
    int fd = accept(listen_fd, addr, addrlen), rc;

    if (fd < 0) {
        return -1;
    }
    if ((rc = cio_fd_set_flags(fd, 1)) < 0) {
        close(fd);
        errno = -rc;
        return -1;
    }
    return fd;
}
#endif

int
cio_socket_accept(int listen_fd, struct sockaddr_storage *addr,
                  socklen_t *addrlen)
{
    int fd;

    memset(addr, 0, sizeof(*addr));
    *addrlen = sizeof(*addr);
    fd = accept_nonblocking_cloexec(listen_fd, (struct sockaddr *)addr,
                                    addrlen);
    if (fd < 0) {
        /* Linux may report EWOULDBLOCK under either name; they are equal
         * there, but the callers only test for EAGAIN. */
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    return fd;
}

int
cio_socketpair_cloexec(int pair[2])
{
#if defined(__linux__) && !defined(CIO_PORTABLE)
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        return -errno;
    }
#else
    int rc;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0) {
        return -errno;
    }
    if ((rc = cio_fd_set_flags(pair[0], 0)) < 0 ||
        (rc = cio_fd_set_flags(pair[1], 0)) < 0) {
        close(pair[0]);
        close(pair[1]);
        return rc;
    }
#endif
    return 0;
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
