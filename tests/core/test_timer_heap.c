/* Timer heap: order, ties, removal of arbitrary nodes under random use. */
#include "cio_test.h"
#include "cio_timer_heap.h"

#include <errno.h>
#include <math.h>

#define N 2000

static void
check_invariant(const cio_timer_heap_t *heap)
{
    size_t i;

    for (i = 0; i < heap->len; i++) {
        ASSERT_EQ(heap->items[i]->heap_index, i);
        if (i > 0) {
            const cio_timer_t *parent = heap->items[(i - 1) / 2];
            const cio_timer_t *child = heap->items[i];
            ASSERT_EQ(parent->when < child->when ||
                      (parent->when == child->when &&
                       parent->seq < child->seq), 1);
        }
    }
}

void
test_timer_heap_pops_in_order(void)
{
    static cio_timer_t timers[N];
    cio_timer_heap_t heap;
    double last = -1.0;
    uint64_t last_seq = 0;
    int i;

    srand(1);
    cio_timer_heap_init(&heap);
    for (i = 0; i < N; i++) {
        /* Few distinct deadlines, so ties are common. */
        cio_timer_init(&timers[i], (double)(rand() % 50));
        ASSERT_EQ(cio_timer_heap_push(&heap, &timers[i]), 0);
    }
    check_invariant(&heap);
    for (i = 0; i < N; i++) {
        cio_timer_t *t = cio_timer_heap_pop(&heap);
        ASSERT_NE(t == NULL, 1);
        ASSERT_LE(last, t->when);
        if (t->when == last) {
            ASSERT_LT(last_seq, t->seq);  /* ties in push order */
        }
        ASSERT_EQ(t->heap_index, CIO_TIMER_NOT_QUEUED);
        last = t->when;
        last_seq = t->seq;
    }
    ASSERT_PTR_EQ(cio_timer_heap_pop(&heap), NULL);
    cio_timer_heap_free(&heap);
}

void
test_timer_heap_random_remove(void)
{
    static cio_timer_t timers[N];
    static int queued[N];
    cio_timer_heap_t heap;
    int step, i, count = 0;

    srand(2);
    cio_timer_heap_init(&heap);
    for (i = 0; i < N; i++) {
        cio_timer_init(&timers[i], 0);
        queued[i] = 0;
    }
    for (step = 0; step < 50000; step++) {
        i = rand() % N;
        if (queued[i]) {
            ASSERT_EQ(cio_timer_heap_remove(&heap, &timers[i]), 0);
            ASSERT_EQ(cio_timer_heap_remove(&heap, &timers[i]), -ENOENT);
            queued[i] = 0;
            count--;
        }
        else {
            timers[i].when = (double)(rand() % 1000) / 7.0;
            ASSERT_EQ(cio_timer_heap_push(&heap, &timers[i]), 0);
            queued[i] = 1;
            count++;
        }
        ASSERT_EQ(cio_timer_heap_len(&heap), count);
        if (step % 997 == 0) {
            check_invariant(&heap);
        }
    }
    check_invariant(&heap);
    cio_timer_heap_free(&heap);
}

void
test_timer_heap_nan_is_due_first(void)
{
    cio_timer_t a, b, c;
    cio_timer_heap_t heap;

    cio_timer_heap_init(&heap);
    cio_timer_init(&a, 5.0);
    cio_timer_init(&b, NAN);
    cio_timer_init(&c, 1.0);
    cio_timer_heap_push(&heap, &a);
    cio_timer_heap_push(&heap, &b);
    cio_timer_heap_push(&heap, &c);
    ASSERT_PTR_EQ(cio_timer_heap_pop(&heap), &b);
    ASSERT_PTR_EQ(cio_timer_heap_pop(&heap), &c);
    ASSERT_PTR_EQ(cio_timer_heap_pop(&heap), &a);
    cio_timer_heap_free(&heap);
}
