/* A min-heap of timers ordered by (when, sequence number).
 *
 * The heap does not own its timers: each timer embeds a cio_timer_t, so
 * starting a timer allocates nothing beyond the occasional growth of the
 * heap's pointer array, and the node remembers its own index, which makes
 * removal of an arbitrary timer O(log n). Equal deadlines run in the order
 * they were pushed, like CPython's heapq of TimerHandles in practice. */
#ifndef CIO_TIMER_HEAP_H
#define CIO_TIMER_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define CIO_TIMER_NOT_QUEUED ((size_t)-1)

typedef struct cio_timer {
    double when;        /* deadline on the loop's clock, in seconds */
    uint64_t seq;       /* tie-breaker, assigned by cio_timer_heap_push */
    size_t heap_index;  /* CIO_TIMER_NOT_QUEUED when not in a heap */
} cio_timer_t;

typedef struct cio_timer_heap {
    cio_timer_t **items;
    size_t len;
    size_t cap;
    uint64_t next_seq;
} cio_timer_heap_t;

void cio_timer_init(cio_timer_t *timer, double when);
void cio_timer_heap_init(cio_timer_heap_t *heap);
/* Frees the pointer array; the timers themselves belong to the caller. */
void cio_timer_heap_free(cio_timer_heap_t *heap);

/* Adds a timer that is not queued yet. Returns 0 or -ENOMEM. */
int cio_timer_heap_push(cio_timer_heap_t *heap, cio_timer_t *timer);
/* Removes a queued timer. Returns 0, or -ENOENT if it was not queued. */
int cio_timer_heap_remove(cio_timer_heap_t *heap, cio_timer_t *timer);
/* The earliest timer, or NULL if the heap is empty. */
cio_timer_t *cio_timer_heap_peek(const cio_timer_heap_t *heap);
/* Removes and returns the earliest timer, or NULL if the heap is empty. */
cio_timer_t *cio_timer_heap_pop(cio_timer_heap_t *heap);

static inline size_t
cio_timer_heap_len(const cio_timer_heap_t *heap)
{
    return heap->len;
}

#endif
