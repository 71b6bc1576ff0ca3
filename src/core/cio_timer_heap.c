/* Binary min-heap of intrusive timer nodes: see cio_timer_heap.h. */
#include "cio_timer_heap.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

void
cio_timer_init(cio_timer_t *timer, double when)
{
    timer->when = when;
    timer->seq = 0;
    timer->heap_index = CIO_TIMER_NOT_QUEUED;
}

void
cio_timer_heap_init(cio_timer_heap_t *heap)
{
    heap->items = NULL;
    heap->len = 0;
    heap->cap = 0;
    heap->next_seq = 0;
}

void
cio_timer_heap_free(cio_timer_heap_t *heap)
{
    free(heap->items);
    cio_timer_heap_init(heap);
}

/* A NaN deadline compares as "due now" so that it cannot break the heap
 * order (every comparison with NaN is false). */
static inline int
timer_less(const cio_timer_t *a, const cio_timer_t *b)
{
    double wa = isnan(a->when) ? -INFINITY : a->when;
    double wb = isnan(b->when) ? -INFINITY : b->when;

    if (wa != wb) {
        return wa < wb;
    }
    return a->seq < b->seq;
}

static inline void
heap_place(cio_timer_heap_t *heap, size_t index, cio_timer_t *timer)
{
    heap->items[index] = timer;
    timer->heap_index = index;
}

static void
sift_up(cio_timer_heap_t *heap, size_t index)
{
    cio_timer_t *timer = heap->items[index];

    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!timer_less(timer, heap->items[parent])) {
            break;
        }
        heap_place(heap, index, heap->items[parent]);
        index = parent;
    }
    heap_place(heap, index, timer);
}

static void
sift_down(cio_timer_heap_t *heap, size_t index)
{
    cio_timer_t *timer = heap->items[index];

    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= heap->len) {
            break;
        }
        if (child + 1 < heap->len &&
            timer_less(heap->items[child + 1], heap->items[child])) {
            child++;
        }
        if (!timer_less(heap->items[child], timer)) {
            break;
        }
        heap_place(heap, index, heap->items[child]);
        index = child;
    }
    heap_place(heap, index, timer);
}

int
cio_timer_heap_push(cio_timer_heap_t *heap, cio_timer_t *timer)
{
    if (heap->len == heap->cap) {
        size_t cap = heap->cap ? heap->cap * 2 : 64;
        cio_timer_t **items = realloc(heap->items, cap * sizeof(*items));
        if (items == NULL) {
            return -ENOMEM;
        }
        heap->items = items;
        heap->cap = cap;
    }
    timer->seq = heap->next_seq++;
    heap_place(heap, heap->len++, timer);
    sift_up(heap, timer->heap_index);
    return 0;
}

int
cio_timer_heap_remove(cio_timer_heap_t *heap, cio_timer_t *timer)
{
    size_t index = timer->heap_index;
    cio_timer_t *last;

    if (index == CIO_TIMER_NOT_QUEUED || index >= heap->len ||
        heap->items[index] != timer) {
        return -ENOENT;
    }
    timer->heap_index = CIO_TIMER_NOT_QUEUED;
    last = heap->items[--heap->len];
    if (last == timer) {
        return 0;
    }
    /* The last node takes the hole; it may belong above or below it. */
    heap_place(heap, index, last);
    if (index > 0 && timer_less(last, heap->items[(index - 1) / 2])) {
        sift_up(heap, index);
    }
    else {
        sift_down(heap, index);
    }
    return 0;
}

cio_timer_t *
cio_timer_heap_peek(const cio_timer_heap_t *heap)
{
    return heap->len ? heap->items[0] : NULL;
}

cio_timer_t *
cio_timer_heap_pop(cio_timer_heap_t *heap)
{
    cio_timer_t *top = cio_timer_heap_peek(heap);

    if (top != NULL) {
        cio_timer_heap_remove(heap, top);
    }
    return top;
}
