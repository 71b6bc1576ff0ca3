/* libkqueue's records: see cio_kqueue_linux.h.
 *
 * A duplicate holds its file open, so a program that closes an fd it still
 * watches for writing keeps the connection open until it stops watching:
 * the one thing real kqueue does otherwise. */
#include "cio_kqueue_linux.h"

#if defined(CIO_POLLER_KQUEUE) && defined(__linux__)

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int dup;        /* the duplicate its write filter watches; -1: none */
    int owner;      /* for a duplicate: the fd it stands for; -1: none */
    int reading;    /* its read filter was added, for the file below */
    dev_t dev;
    ino_t ino;
} fd_record_t;

typedef struct {
    fd_record_t *fds;
    size_t len;
} records_t;

static fd_record_t *
record(cio_poller_t *poller, int fd)
{
    records_t *r = poller->backend_data;

    return r != NULL && fd >= 0 && (size_t)fd < r->len ? &r->fds[fd] : NULL;
}

/* The record of fd, made (and the table grown) if need be. */
static fd_record_t *
record_made(cio_poller_t *poller, int fd)
{
    records_t *r = poller->backend_data;
    size_t want;
    fd_record_t *fds;

    if (r == NULL && (r = poller->backend_data = calloc(1, sizeof(*r))) ==
                         NULL) {
        return NULL;
    }
    if ((size_t)fd < r->len) {
        return &r->fds[fd];
    }
    for (want = r->len ? r->len : 64; (size_t)fd >= want; want *= 2) {
    }
    fds = realloc(r->fds, want * sizeof(*fds));
    if (fds == NULL) {
        return NULL;
    }
    for (size_t i = r->len; i < want; i++) {
        fds[i] = (fd_record_t){-1, -1, 0, 0, 0};
    }
    r->fds = fds;
    r->len = want;
    return &r->fds[fd];
}

static int
same_file(int fd, dev_t dev, ino_t ino)
{
    struct stat st;

    return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

int
cio_kqueue_read_filter_state(cio_poller_t *poller, int fd)
{
    fd_record_t *rec = record(poller, fd);

    if (rec == NULL || !rec->reading) {
        return CIO_KQUEUE_ADD;
    }
    return same_file(fd, rec->dev, rec->ino) ? CIO_KQUEUE_ALREADY_ADDED
                                              : CIO_KQUEUE_DELETE_STALE;
}

int
cio_kqueue_read_filter_set(cio_poller_t *poller, int fd, int added)
{
    fd_record_t *rec = added ? record_made(poller, fd) : record(poller, fd);
    struct stat st;

    if (rec == NULL) {
        return added ? -ENOMEM : 0;
    }
    rec->reading = 0;
    if (added) {
        if (fstat(fd, &st) < 0) {
            return -errno;
        }
        rec->reading = 1;
        rec->dev = st.st_dev;
        rec->ino = st.st_ino;
    }
    return 0;
}

int
cio_kqueue_write_filter_added(cio_poller_t *poller, int fd)
{
    fd_record_t *rec = record(poller, fd);
    struct stat st;

    return rec != NULL && rec->dup >= 0 && fstat(rec->dup, &st) == 0 &&
           same_file(fd, st.st_dev, st.st_ino);
}

int
cio_kqueue_write_ident(cio_poller_t *poller, int fd, int create)
{
    fd_record_t *rec = record(poller, fd), *dup_rec;
    struct stat st;
    int dup_fd;

    if (rec != NULL && rec->dup >= 0) {
        if (!create || (fstat(rec->dup, &st) == 0 &&
                        same_file(fd, st.st_dev, st.st_ino))) {
            return rec->dup;
        }
        return -ESTALE;
    }
    if (!create) {
        return -1;
    }
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        return -errno;
    }
    /* The larger first: growing the table moves the records. */
    if ((dup_rec = record_made(poller, dup_fd > fd ? dup_fd : fd)) == NULL ||
        (rec = record_made(poller, fd)) == NULL ||
        (dup_rec = record_made(poller, dup_fd)) == NULL) {
        close(dup_fd);
        return -ENOMEM;
    }
    rec->dup = dup_fd;
    dup_rec->owner = fd;
    return dup_fd;
}

void
cio_kqueue_write_ident_release(cio_poller_t *poller, int fd)
{
    fd_record_t *rec = record(poller, fd);

    if (rec != NULL && rec->dup >= 0) {
        record(poller, rec->dup)->owner = -1;
        close(rec->dup);
        rec->dup = -1;
    }
}

int
cio_kqueue_write_owner(cio_poller_t *poller, int ident)
{
    fd_record_t *rec = record(poller, ident);

    return rec != NULL ? rec->owner : -1;
}

void
cio_kqueue_records_free(cio_poller_t *poller)
{
    records_t *r = poller->backend_data;

    if (r == NULL) {
        return;
    }
    for (size_t fd = 0; fd < r->len; fd++) {
        if (r->fds[fd].dup >= 0) {
            close(r->fds[fd].dup);
        }
    }
    free(r->fds);
    free(r);
    poller->backend_data = NULL;
}

#endif
