/* Poller: add/modify/remove on a pipe, timeouts, wake-up from a thread. */
#include "cio_test.h"
#include "cio_clock.h"
#include "cio_poller.h"

#include <errno.h>
#include <pthread.h>
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
    ASSERT_EQ(cio_poller_add(&p, fds[1], CIO_POLL_WRITE), -EEXIST);
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
    ASSERT_EQ(cio_poller_remove(&p, fds[0]), -ENOENT);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 0);
    ASSERT_EQ(cio_poller_add(&p, -5, CIO_POLL_READ), -EBADF);

    close(fds[0]);
    close(fds[1]);
    cio_poller_close(&p);
}

void
test_poller_hangup_reports_both_directions(void)
{
    cio_poller_t p;
    cio_poll_event_t ev[8];
    int fds[2];

    ASSERT_EQ(cio_poller_open(&p), 0);
    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(cio_poller_add(&p, fds[1], CIO_POLL_WRITE), 0);
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 1);
    close(fds[0]);  /* the reader goes away: EPOLLERR on the writer */
    ASSERT_EQ(cio_poller_poll(&p, ev, 8, 0), 1);
    ASSERT_EQ(ev[0].events, CIO_POLL_READ | CIO_POLL_WRITE);
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
