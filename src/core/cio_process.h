/* Child processes: an fd that turns readable when a child exits. */
#ifndef CIO_PROCESS_H
#define CIO_PROCESS_H

#include <errno.h>
#include <sys/types.h>

/* pidfd_open(pid, 0) (Linux 5.3+, cio_pidfd_linux.c): the fd, or -errno
 * (-ENOSYS on an older kernel; always, where there are no pidfds and in
 * the portable build, whose callers fall back to a waiter thread). */
#if defined(__linux__) && !defined(CIO_PORTABLE)
int cio_pidfd_open(pid_t pid);
#else
static inline int
cio_pidfd_open(pid_t pid)
{
    (void)pid;
    return -ENOSYS;
}
#endif

#endif
