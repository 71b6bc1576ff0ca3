/* Ring-buffer FIFO: see cio_ready_queue.h. */
#include "cio_ready_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
cio_ready_queue_init(cio_ready_queue_t *q)
{
    q->items = NULL;
    q->head = 0;
    q->len = 0;
    q->cap = 0;
}

void
cio_ready_queue_free(cio_ready_queue_t *q)
{
    free(q->items);
    cio_ready_queue_init(q);
}

/* Doubles the buffer and unwraps the items to start at index 0. */
static int
ready_queue_grow(cio_ready_queue_t *q)
{
    size_t cap = q->cap ? q->cap * 2 : 256;
    void **items = malloc(cap * sizeof(*items));
    size_t first;

    if (items == NULL) {
        return -ENOMEM;
    }
    if (q->len) {
        first = q->cap - q->head;
        if (first > q->len) {
            first = q->len;
        }
        memcpy(items, q->items + q->head, first * sizeof(*items));
        memcpy(items + first, q->items, (q->len - first) * sizeof(*items));
    }
    free(q->items);
    q->items = items;
    q->head = 0;
    q->cap = cap;
    return 0;
}

int
cio_ready_queue_push(cio_ready_queue_t *q, void *item)
{
    if (q->len == q->cap) {
        int rc = ready_queue_grow(q);
        if (rc < 0) {
            return rc;
        }
    }
    q->items[(q->head + q->len) & (q->cap - 1)] = item;
    q->len++;
    return 0;
}

void *
cio_ready_queue_pop(cio_ready_queue_t *q)
{
    void *item;

    if (q->len == 0) {
        return NULL;
    }
    item = q->items[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return item;
}
