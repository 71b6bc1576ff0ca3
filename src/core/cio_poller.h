/* I/O readiness poller: the loop's only view of the OS event mechanism.
 *
 * Each backend lives in its own file and fills in one cio_poller_backend
 * table, in the manner of Redis' ae_*.c: epoll (Linux) and kqueue (macOS,
 * the BSDs; on Linux through libkqueue in the portable build, CIO_PORTABLE).
 * The poller also owns a wake-up channel so another thread can interrupt a
 * blocking poll; wake-ups are consumed inside poll and never reported as
 * events. All functions return 0 (or a count) on success, -errno on failure.
 * Registration is level-triggered. add() of a registered fd is -EEXIST and
 * modify() or remove() of an unregistered one -ENOENT on epoll; kqueue does
 * not tell (its add is a modify, and a remove of nothing succeeds), so the
 * caller keeps its own record of what is registered (loop_fd.c does). */
#ifndef CIO_POLLER_H
#define CIO_POLLER_H

#include <stdint.h>

enum {
    CIO_POLL_READ = 1,
    CIO_POLL_WRITE = 2,
};

typedef struct cio_poll_event {
    int fd;
    unsigned events;  /* CIO_POLL_READ | CIO_POLL_WRITE; errors and hang-ups
                         report both, as Python's selectors module does */
} cio_poll_event_t;

typedef struct cio_poller cio_poller_t;

typedef struct cio_poller_backend {
    const char *name;
    int (*open)(cio_poller_t *poller);
    void (*close)(cio_poller_t *poller);
    int (*add)(cio_poller_t *poller, int fd, unsigned events);
    int (*modify)(cio_poller_t *poller, int fd, unsigned events);
    int (*remove)(cio_poller_t *poller, int fd);
    /* Waits up to timeout_ns (-1: forever, 0: don't block) and stores up to
     * max events; returns how many, or -errno (-EINTR on a signal). */
    int (*poll)(cio_poller_t *poller, cio_poll_event_t *out, int max,
                int64_t timeout_ns);
    /* Makes a concurrent or the next poll return; async-signal-safe. */
    int (*wake)(cio_poller_t *poller);
} cio_poller_backend_t;

struct cio_poller {
    const cio_poller_backend_t *backend;
    int poll_fd;        /* the backend's kernel object, e.g. the epoll fd */
    int wake_fd;        /* the backend's wake-up channel, e.g. an eventfd,
                           or a pipe's read end */
    int wake_write_fd;  /* that pipe's write end; -1 with an eventfd */
    void *backend_data; /* what a backend keeps beside (cio_kqueue_linux.c) */
};

#if defined(__linux__) && !defined(CIO_PORTABLE)
#define CIO_POLLER_EPOLL 1
extern const cio_poller_backend_t cio_epoll_backend;
#define CIO_POLLER_BACKEND cio_epoll_backend
#else
#define CIO_POLLER_KQUEUE 1
extern const cio_poller_backend_t cio_kqueue_backend;
#define CIO_POLLER_BACKEND cio_kqueue_backend
#endif

/* Opens a poller on the backend this build uses. */
int cio_poller_open(cio_poller_t *poller);
/* "epoll" or "kqueue". */
const char *cio_poller_backend_name(void);

static inline void
cio_poller_close(cio_poller_t *poller)
{
    poller->backend->close(poller);
}

static inline int
cio_poller_add(cio_poller_t *poller, int fd, unsigned events)
{
    return poller->backend->add(poller, fd, events);
}

static inline int
cio_poller_modify(cio_poller_t *poller, int fd, unsigned events)
{
    return poller->backend->modify(poller, fd, events);
}

static inline int
cio_poller_remove(cio_poller_t *poller, int fd)
{
    return poller->backend->remove(poller, fd);
}

static inline int
cio_poller_poll(cio_poller_t *poller, cio_poll_event_t *out, int max,
                int64_t timeout_ns)
{
    return poller->backend->poll(poller, out, max, timeout_ns);
}

static inline int
cio_poller_wake(cio_poller_t *poller)
{
    return poller->backend->wake(poller);
}

#endif
