/* The kqueue backend of the poller (macOS, the BSDs; on Linux, libkqueue
 * in the portable build), with a non-blocking pipe for wake-ups.
 *
 * An fd's read and write interest are two kevent filters. They are added,
 * and deleted, one kevent() call each: with several changes in one call a
 * failed change stops the rest on some systems. */
#include "cio_poller.h"
#include "cio_fd.h"
#include "cio_kqueue_linux.h"

#ifdef CIO_POLLER_KQUEUE

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/event.h>
#include <time.h>
#include <unistd.h>

static int
kevent_change(cio_poller_t *poller, int fd, short filter, unsigned short flags)
{
    struct kevent change;

    EV_SET(&change, fd, filter, flags, 0, 0, NULL);
    if (kevent(poller->poll_fd, &change, 1, NULL, 0, NULL) < 0) {
        return -errno;
    }
    return 0;
}

static int
delete_filter(cio_poller_t *poller, int ident, short filter)
{
    int rc = kevent_change(poller, ident, filter, EV_DELETE);

    /* Never added (ENOENT), or the fd is closed and its filters gone
     * (EBADF): deleted either way. */
    return rc == -ENOENT || rc == -EBADF ? 0 : rc;
}

static int
delete_read_filter(cio_poller_t *poller, int fd)
{
    int rc = delete_filter(poller, fd, EVFILT_READ);

    cio_kqueue_read_filter_set(poller, fd, 0);
    return rc;
}

static int
add_read_filter(cio_poller_t *poller, int fd)
{
    int rc;

    switch (cio_kqueue_read_filter_state(poller, fd)) {
    case CIO_KQUEUE_ALREADY_ADDED:
        return 0;
    case CIO_KQUEUE_DELETE_STALE:
        if ((rc = delete_read_filter(poller, fd)) < 0) {
            return rc;
        }
        break;
    }
    if ((rc = kevent_change(poller, fd, EVFILT_READ, EV_ADD)) < 0) {
        return rc;
    }
    return cio_kqueue_read_filter_set(poller, fd, 1);
}

static int
delete_write_filter(cio_poller_t *poller, int fd)
{
    int ident = cio_kqueue_write_ident(poller, fd, 0), rc = 0;

    if (ident >= 0) {
        rc = delete_filter(poller, ident, EVFILT_WRITE);
        cio_kqueue_write_ident_release(poller, fd);
    }
    return rc;
}

static int
add_write_filter(cio_poller_t *poller, int fd)
{
    int ident, rc;

    if (cio_kqueue_write_filter_added(poller, fd)) {
        return 0;
    }
    ident = cio_kqueue_write_ident(poller, fd, 1);
    if (ident == -ESTALE) {  /* fd's number was reused since */
        if ((rc = delete_write_filter(poller, fd)) < 0) {
            return rc;
        }
        ident = cio_kqueue_write_ident(poller, fd, 1);
    }
    return ident < 0 ? ident
                     : kevent_change(poller, ident, EVFILT_WRITE, EV_ADD);
}

/* Deletions before additions: a change that fails part-way leaves the fd
 * watched for less than was asked, never for more. */
static int
kqueue_backend_set(cio_poller_t *poller, int fd, unsigned events)
{
    int rc = 0;

    if (!(events & CIO_POLL_READ)) {
        rc = delete_read_filter(poller, fd);
    }
    if (rc == 0 && !(events & CIO_POLL_WRITE)) {
        rc = delete_write_filter(poller, fd);
    }
    if (rc == 0 && (events & CIO_POLL_READ)) {
        rc = add_read_filter(poller, fd);
    }
    if (rc == 0 && (events & CIO_POLL_WRITE)) {
        rc = add_write_filter(poller, fd);
    }
    return rc;
}

static int
kqueue_backend_remove(cio_poller_t *poller, int fd)
{
    return kqueue_backend_set(poller, fd, 0);
}

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void
kqueue_backend_close(cio_poller_t *poller)
{
    cio_kqueue_records_free(poller);
    close_fd(&poller->wake_write_fd);
    close_fd(&poller->wake_fd);
    close_fd(&poller->poll_fd);
}


static int
kqueue_backend_open(cio_poller_t *poller)
{
    int pair[2], rc;

    poller->poll_fd = kqueue();
    if (poller->poll_fd < 0) {
        rc = -errno;
        goto fail;
    }
    /* A kqueue fd is not inherited by a child process on BSD, but
     * libkqueue's is an epoll fd: close-on-exec for it too. */
    if ((rc = cio_fd_set_flags(poller->poll_fd, 0)) < 0) {
        goto fail;
    }
    if ((rc = cio_pipe_nonblocking(pair)) < 0) {
        goto fail;
    }
    poller->wake_fd = pair[0];
    poller->wake_write_fd = pair[1];
    if ((rc = kevent_change(poller, pair[0], EVFILT_READ, EV_ADD)) < 0) {
        goto fail;
    }
    return 0;

fail:
    kqueue_backend_close(poller);
    return rc;
}

static void
drain_wake_pipe(cio_poller_t *poller)
{
    char buf[64];

    /* Until EAGAIN: a wake-up is one byte, and many may have piled up. */
    while (read(poller->wake_fd, buf, sizeof(buf)) > 0) {
    }
}

#define KQUEUE_BATCH 256

static int
kqueue_backend_poll(cio_poller_t *poller, cio_poll_event_t *out, int max,
                    int64_t timeout_ns)
{
    struct kevent events[KQUEUE_BATCH];
    struct timespec ts, *timeout = NULL;
    int n, i, count = 0;

    if (max > KQUEUE_BATCH) {
        max = KQUEUE_BATCH;
    }
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        timeout = &ts;
    }
    n = kevent(poller->poll_fd, NULL, 0, events, max, timeout);
    if (n < 0) {
        return -errno;
    }
    /* One event per filter: an fd both readable and writable comes twice,
     * once with each, which the caller handles as it handles two fds. As
     * with selectors.KqueueSelector, EV_EOF reports the filter's own
     * direction only; the reader or writer sees the condition through its
     * own syscall. */
    for (i = 0; i < n; i++) {
        int fd = (int)events[i].ident;

        if (fd == poller->wake_fd) {
            drain_wake_pipe(poller);
            continue;
        }
        if (events[i].filter != EVFILT_READ &&
            events[i].filter != EVFILT_WRITE) {
            continue;
        }
        if (events[i].filter == EVFILT_WRITE &&
            (fd = cio_kqueue_write_owner(poller, fd)) < 0) {
            continue;  /* deleted since */
        }
        out[count].fd = fd;
        out[count].events = events[i].filter == EVFILT_READ
                                ? CIO_POLL_READ : CIO_POLL_WRITE;
        count++;
    }
    return count;
}

static int
kqueue_backend_wake(cio_poller_t *poller)
{
    /* EAGAIN: the pipe is full, so a wake-up is pending anyway. */
    if (write(poller->wake_write_fd, "", 1) < 0 && errno != EAGAIN) {
        return -errno;
    }
    return 0;
}

const cio_poller_backend_t cio_kqueue_backend = {
    "kqueue",
    kqueue_backend_open,
    kqueue_backend_close,
    kqueue_backend_set,
    kqueue_backend_set,
    kqueue_backend_remove,
    kqueue_backend_poll,
    kqueue_backend_wake,
};

#endif /* CIO_POLLER_KQUEUE */
