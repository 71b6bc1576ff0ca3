/* What the kqueue backend needs from libkqueue on Linux (the portable
 * build), where two of kqueue's promises do not hold:
 *
 * - An fd cannot be watched in both directions: each filter is its own
 *   EPOLL_CTL_ADD, and the second fails (EEXIST, reported as EFAULT). The
 *   write filter watches a duplicate of the fd instead, made while the fd
 *   is watched for writing; epoll tells the two apart.
 * - EV_ADD of a filter already added fails (its socket filter cannot
 *   modify), so the backend adds only what is not there yet, by a record
 *   of the filters it added; the record names the file (device and
 *   inode), since an fd may be closed and its number reused meanwhile.
 *
 * On a real kqueue the ident is the fd itself, every add is made, and
 * these cost nothing (cio_kqueue_linux.c holds the Linux side). */
#ifndef CIO_KQUEUE_LINUX_H
#define CIO_KQUEUE_LINUX_H

#include "cio_poller.h"

/* What to do before adding fd's read filter. */
enum {
    CIO_KQUEUE_ADD = 0,             /* add it */
    CIO_KQUEUE_ALREADY_ADDED = 1,   /* nothing */
    CIO_KQUEUE_DELETE_STALE = 2,    /* delete the filter of the file that
                                       had fd's number, then add it */
};

#ifdef __linux__
int cio_kqueue_read_filter_state(cio_poller_t *poller, int fd);
/* Records that fd's read filter is there (added) or gone; 0 or -errno. */
int cio_kqueue_read_filter_set(cio_poller_t *poller, int fd, int added);
/* Whether fd's write filter is there, on a duplicate of the same file. */
int cio_kqueue_write_filter_added(cio_poller_t *poller, int fd);
/* The ident of fd's write filter: with create, the duplicate made for it
 * (made now; -ESTALE if fd's number now names another file than the one
 * duplicated, whose filter the caller deletes first); without, the one
 * there is, or -1. -errno when no duplicate can be made (-EBADF for an fd
 * that is not open). */
int cio_kqueue_write_ident(cio_poller_t *poller, int fd, int create);
/* Closes fd's duplicate once its filter is deleted. */
void cio_kqueue_write_ident_release(cio_poller_t *poller, int fd);
/* The fd whose write filter ident is; -1 if none. */
int cio_kqueue_write_owner(cio_poller_t *poller, int ident);
/* Closes every duplicate and frees the records; at the poller's close. */
void cio_kqueue_records_free(cio_poller_t *poller);
#else
static inline int
cio_kqueue_read_filter_state(cio_poller_t *poller, int fd)
{
    (void)poller;
    (void)fd;
    return CIO_KQUEUE_ADD;
}

static inline int
cio_kqueue_read_filter_set(cio_poller_t *poller, int fd, int added)
{
    (void)poller;
    (void)fd;
    (void)added;
    return 0;
}

static inline int
cio_kqueue_write_filter_added(cio_poller_t *poller, int fd)
{
    (void)poller;
    (void)fd;
    return 0;  /* an EV_ADD of a filter already there is a modify */
}

static inline int
cio_kqueue_write_ident(cio_poller_t *poller, int fd, int create)
{
    (void)poller;
    (void)create;
    return fd;
}

static inline void
cio_kqueue_write_ident_release(cio_poller_t *poller, int fd)
{
    (void)poller;
    (void)fd;
}

static inline int
cio_kqueue_write_owner(cio_poller_t *poller, int ident)
{
    (void)poller;
    return ident;
}

static inline void
cio_kqueue_records_free(cio_poller_t *poller)
{
    (void)poller;
}
#endif

#endif
