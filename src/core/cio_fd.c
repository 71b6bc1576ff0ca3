/* File descriptor helpers: see cio_fd.h. Linux has pipe2() and dup3(),
 * which set the flags as the fd is made; elsewhere (macOS lacks both) the
 * flags follow with fcntl(). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, dup3 */
#endif
#include "cio_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int
cio_fd_set_flags(int fd, int nonblocking)
{
    int fl;

    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        return -errno;
    }
    if (nonblocking && ((fl = fcntl(fd, F_GETFL)) < 0 ||
                        fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        return -errno;
    }
    return 0;
}

#if defined(__linux__) && !defined(CIO_PORTABLE)

int
cio_pipe_nonblocking(int fds[2])
{
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0 ? -errno : 0;
}

int
cio_dup_cloexec(int from, int to)
{
    return dup3(from, to, O_CLOEXEC) < 0 ? -errno : 0;
}

#else

int
cio_pipe_nonblocking(int fds[2])
{
    int rc;

    if (pipe(fds) < 0) {
        return -errno;
    }
    if ((rc = cio_fd_set_flags(fds[0], 1)) < 0 ||
        (rc = cio_fd_set_flags(fds[1], 1)) < 0) {
        close(fds[0]);
        close(fds[1]);
    }
    return rc;
}

int
cio_dup_cloexec(int from, int to)
{
    return dup2(from, to) < 0 ? -errno : cio_fd_set_flags(to, 0);
}

#endif
