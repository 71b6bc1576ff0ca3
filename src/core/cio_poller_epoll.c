/* The epoll backend of the poller, with an eventfd for wake-ups. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall */
#endif
#include "cio_poller.h"

#ifdef CIO_POLLER_EPOLL

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The same number on every architecture (it came after the 5.1 unification);
 * the headers of an old glibc, which the wheels are built against, lack it. */
#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif

static uint32_t
to_epoll_events(unsigned events)
{
    uint32_t mask = 0;

    if (events & CIO_POLL_READ) {
        mask |= EPOLLIN;
    }
    if (events & CIO_POLL_WRITE) {
        mask |= EPOLLOUT;
    }
    return mask;
}

/* Error and hang-up wake both directions, as selectors.EpollSelector does,
 * so a reader or writer sees the condition through its own syscall. */
static unsigned
from_epoll_events(uint32_t mask)
{
    unsigned events = 0;

    if (mask & ~(uint32_t)EPOLLOUT) {
        events |= CIO_POLL_READ;
    }
    if (mask & ~(uint32_t)EPOLLIN) {
        events |= CIO_POLL_WRITE;
    }
    return events;
}

static int
epoll_ctl_fd(cio_poller_t *poller, int op, int fd, unsigned events)
{
    struct epoll_event ev;

    ev.events = to_epoll_events(events);
    ev.data.u64 = 0;
    ev.data.fd = fd;
    if (epoll_ctl(poller->poll_fd, op, fd, &ev) < 0) {
        return -errno;
    }
    return 0;
}

static void
epoll_backend_close(cio_poller_t *poller)
{
    if (poller->wake_fd >= 0) {
        close(poller->wake_fd);
        poller->wake_fd = -1;
    }
    if (poller->poll_fd >= 0) {
        close(poller->poll_fd);
        poller->poll_fd = -1;
    }
}

static int
epoll_backend_open(cio_poller_t *poller)
{
    int rc;

    poller->poll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (poller->poll_fd < 0) {
        rc = -errno;
        goto fail;
    }
    poller->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (poller->wake_fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = epoll_ctl_fd(poller, EPOLL_CTL_ADD, poller->wake_fd, CIO_POLL_READ);
    if (rc < 0) {
        goto fail;
    }
    return 0;

fail:
    epoll_backend_close(poller);
    return rc;
}

static int
epoll_backend_add(cio_poller_t *poller, int fd, unsigned events)
{
    return epoll_ctl_fd(poller, EPOLL_CTL_ADD, fd, events);
}

static int
epoll_backend_modify(cio_poller_t *poller, int fd, unsigned events)
{
    return epoll_ctl_fd(poller, EPOLL_CTL_MOD, fd, events);
}

static int
epoll_backend_remove(cio_poller_t *poller, int fd)
{
    return epoll_ctl_fd(poller, EPOLL_CTL_DEL, fd, 0);
}

static void
drain_wake_fd(cio_poller_t *poller)
{
    uint64_t count;

    /* EAGAIN means another poll already drained it; nothing else can fail
     * on a valid non-blocking eventfd. */
    (void)!read(poller->wake_fd, &count, sizeof(count));
}

/* epoll_pwait2 (Linux 5.11) takes a timespec, so timers need not be rounded
 * up to whole milliseconds; older kernels fall back to epoll_wait. It is
 * called through syscall(): glibc wraps it only from 2.35, and the wheels
 * run on glibc 2.17. The flag is shared by every loop of the process, in
 * any thread or interpreter: read and written atomically, and a race can
 * only cost one more ENOSYS. */
static int
epoll_wait_ns(int epfd, struct epoll_event *events, int max,
              int64_t timeout_ns)
{
    static int no_pwait2;

    if (timeout_ns > 0 && !__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        struct timespec ts; /* the kernel's 64-bit timespec on 64-bit ABIs */
        int n;

        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        n = (int)syscall(SYS_epoll_pwait2, epfd, events, max, &ts, NULL,
                         (size_t)0);
        if (n >= 0 || errno != ENOSYS) {
            return n;
        }
        __atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
    }
    if (timeout_ns < 0) {
        return epoll_wait(epfd, events, max, -1);
    }
    /* Round up: waking before the deadline would only cost a spin. */
    return epoll_wait(epfd, events, max,
                      (int)((timeout_ns + 999999) / 1000000));
}

#define EPOLL_BATCH 256

static int
epoll_backend_poll(cio_poller_t *poller, cio_poll_event_t *out, int max,
                   int64_t timeout_ns)
{
    struct epoll_event events[EPOLL_BATCH];
    int n, i, count = 0;

    if (max > EPOLL_BATCH) {
        max = EPOLL_BATCH;
    }
    n = epoll_wait_ns(poller->poll_fd, events, max, timeout_ns);
    if (n < 0) {
        return -errno;
    }
    for (i = 0; i < n; i++) {
        if (events[i].data.fd == poller->wake_fd) {
            drain_wake_fd(poller);
            continue;
        }
        out[count].fd = events[i].data.fd;
        out[count].events = from_epoll_events(events[i].events);
        count++;
    }
    return count;
}

static int
epoll_backend_wake(cio_poller_t *poller)
{
    uint64_t one = 1;

    /* EAGAIN: the counter is saturated, so a wake-up is pending anyway. */
    if (write(poller->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        return -errno;
    }
    return 0;
}

const cio_poller_backend_t cio_epoll_backend = {
    "epoll",
    epoll_backend_open,
    epoll_backend_close,
    epoll_backend_add,
    epoll_backend_modify,
    epoll_backend_remove,
    epoll_backend_poll,
    epoll_backend_wake,
};

#endif /* CIO_POLLER_EPOLL */
