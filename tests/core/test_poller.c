/* Poller: add/modify/remove on a pipe, timeouts, wake-up from a thread. */
#include "cio_test.h"
#include "cio_clock.h"
#include "cio_poller.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

void
test_poller_add_modify_remove(void)
{
    cio_poller_t p;
    cio_poll_event_t ev[8];
    int fds[2];

    ASSERT_EQ(cio_poller_open(&p), 0);
    ASSERT_EQ(pipe(fds), 0);

    /* The write end of an empty pipe is writable, never readable. */
    ASSERT_EQ(cio_poller_add(&p, fds[1], CIO_POLL_WRITE), 0);
#ifdef CIO_POLLER_EPOLL
    ASSERT_EQ(cio_poller_add(&p, fds[1], CIO_POLL_WRITE), -EEXIST);
#endif
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 1);
    ASSERT_EQ(ev[0].fd, fds[1]);
    ASSERT_EQ(ev[0].events, CIO_POLL_WRITE);

    ASSERT_EQ(cio_poller_add(&p, fds[0], CIO_POLL_READ), 0);
    ASSERT_EQ(cio_poller_modify(&p, fds[1], CIO_POLL_READ), 0);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 0);

    ASSERT_EQ(write(fds[1], "x", 1), 1);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 1);
    ASSERT_EQ(ev[0].fd, fds[0]);
    ASSERT_EQ(ev[0].events, CIO_POLL_READ);

    ASSERT_EQ(cio_poller_remove(&p, fds[0]), 0);
#ifdef CIO_POLLER_EPOLL
    ASSERT_EQ(cio_poller_remove(&p, fds[0]), -ENOENT);
#else
    ASSERT_EQ(cio_poller_remove(&p, fds[0]), 0);
#endif
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 0);
#if !(defined(CIO_POLLER_KQUEUE) && defined(__linux__))
    /* libkqueue says EFAULT */
    ASSERT_EQ(cio_poller_add(&p, -5, CIO_POLL_READ), -EBADF);
#endif

    close(fds[0]);
    close(fds[1]);
    cio_poller_close(&p);
}

/* epoll reports an error or hang-up in both directions (EpollSelector
 * does too); kqueue in the direction of the filter that saw it
 * (KqueueSelector does too). */
void
test_poller_hangup_wakes_the_writer(void)
{
    cio_poller_t p;
    cio_poll_event_t ev[8];
    int fds[2];

    ASSERT_EQ(cio_poller_open(&p), 0);
    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(cio_poller_add(&p, fds[1], CIO_POLL_WRITE), 0);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 1);
    close(fds[0]);  /* the reader goes away: EPOLLERR, or EV_EOF */
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 1);
#ifdef CIO_POLLER_EPOLL
    ASSERT_EQ(ev[0].events, CIO_POLL_READ | CIO_POLL_WRITE);
#else
    ASSERT_EQ(ev[0].events, CIO_POLL_WRITE);
#endif
    close(fds[1]);
    cio_poller_close(&p);
}

void
test_poller_timeout_is_not_early(void)
{
    cio_poller_t p;
    cio_poll_event_t ev[8];
    uint64_t t0, elapsed;

    ASSERT_EQ(cio_poller_open(&p), 0);
    t0 = cio_clock_now_ns();
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 20 * 1000 * 1000), 0);
    elapsed = cio_clock_now_ns() - t0;
    ASSERT_GE(elapsed, 20 * 1000 * 1000);
    cio_poller_close(&p);
}

static void *
wake_later(void *arg)
{
    usleep(20000);
    cio_poller_wake(arg);
    return NULL;
}

void
test_poller_wake_from_thread(void)
{
    cio_poller_t p;
    cio_poll_event_t ev[8];
    pthread_t thread;
    uint64_t t0;

    ASSERT_EQ(cio_poller_open(&p), 0);
    t0 = cio_clock_now_ns();
    ASSERT_EQ(pthread_create(&thread, NULL, wake_later, &p), 0);
    /* Blocks forever unless the wake-up works; wake-ups are not events. */
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, -1), 0);
    ASSERT_LT(cio_clock_now_ns() - t0, 10ull * 1000 * 1000 * 1000);
    pthread_join(thread, NULL);
    /* The wake-up was consumed: the next poll does not return at once. */
    ASSERT_EQ(cio_poller_wake(&p), 0);
    ASSERT_EQ(cio_poller_wake(&p), 0);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 0);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 0);
    cio_poller_close(&p);
}

void
test_clock_is_monotonic(void)
{
    uint64_t a = cio_clock_now_ns(), b = cio_clock_now_ns();

    ASSERT_LE(a, b);
    ASSERT_GE(cio_clock_resolution_ns(), 1);
}

/* An fd both readable and writable is reported with both, in one event
 * (epoll) or one per direction (kqueue; libkqueue's through the duplicate
 * of cio_kqueue_linux.c). */
void
test_poller_both_directions(void)
{
    cio_poller_t p;
    cio_poll_event_t ev[8];
    unsigned seen = 0;
    int pair[2], n;

    ASSERT_EQ(cio_poller_open(&p), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ASSERT_EQ(write(pair[1], "x", 1), 1);
    ASSERT_EQ(cio_poller_add(&p, pair[0], CIO_POLL_READ | CIO_POLL_WRITE), 0);
    n = cio_poller_poll(&p, ev, 8, 0);
    ASSERT_GE(n, 1);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(ev[i].fd, pair[0]);
        seen |= ev[i].events;
    }
    ASSERT_EQ(seen, CIO_POLL_READ | CIO_POLL_WRITE);
    close(pair[0]);
    close(pair[1]);
    cio_poller_close(&p);
}

/* An fd closed while registered, whose number comes back, can be
 * registered again (libkqueue has to notice the close). */
void
test_poller_fd_reuse(void)
{
    cio_poller_t p;
    cio_poll_event_t ev[8];
    int pair[2], again[2];

    ASSERT_EQ(cio_poller_open(&p), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ASSERT_EQ(cio_poller_add(&p, pair[0], CIO_POLL_READ), 0);
    close(pair[0]);
    close(pair[1]);
    cio_poller_remove(&p, pair[0]);  /* may fail: the fd is gone */
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, again), 0);
    ASSERT_EQ(again[0], pair[0]);
    ASSERT_EQ(cio_poller_add(&p, again[0], CIO_POLL_READ), 0);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 0);
    ASSERT_EQ(write(again[1], "y", 1), 1);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 1000 * 1000 * 1000), 1);
    ASSERT_EQ(ev[0].fd, again[0]);
    ASSERT_EQ(ev[0].events, CIO_POLL_READ);
    close(again[0]);
    close(again[1]);
    cio_poller_close(&p);
}
