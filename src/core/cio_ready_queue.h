/* FIFO of opaque pointers: the loop's queue of callbacks ready to run.
 *
 * A ring buffer that doubles when full, so pushing allocates nothing in the
 * steady state. The queue stores pointers only; what they point to, and who
 * owns it, is the caller's business. */
#ifndef CIO_READY_QUEUE_H
#define CIO_READY_QUEUE_H

#include <stddef.h>

typedef struct cio_ready_queue {
    void **items;
    size_t head;  /* index of the oldest item */
    size_t len;
    size_t cap;   /* a power of two, or 0 */
} cio_ready_queue_t;

void cio_ready_queue_init(cio_ready_queue_t *q);
void cio_ready_queue_free(cio_ready_queue_t *q);
/* Appends an item. Returns 0 or -ENOMEM. */
int cio_ready_queue_push(cio_ready_queue_t *q, void *item);
/* Removes and returns the oldest item, or NULL if the queue is empty. */
void *cio_ready_queue_pop(cio_ready_queue_t *q);

static inline size_t
cio_ready_queue_len(const cio_ready_queue_t *q)
{
    return q->len;
}

#endif
