/* pidfd_open() through syscall(): glibc wraps it only from 2.36, and the
 * wheels are built against 2.17. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall */
#endif
#include "cio_process.h"

#if defined(__linux__) && !defined(CIO_PORTABLE)

#include <sys/syscall.h>
#include <unistd.h>

/* The same number on every architecture. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int
cio_pidfd_open(pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    return fd >= 0 ? fd : -errno;
}

#endif
