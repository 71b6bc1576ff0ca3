/* Ready queue: FIFO order across growth and wrap-around. */
#include "cio_test.h"
#include "cio_ready_queue.h"

#include <stdint.h>

void
test_ready_queue_fifo_with_wraparound(void)
{
    cio_ready_queue_t q;
    uintptr_t next_in = 1, next_out = 1;
    int round, i;

    cio_ready_queue_init(&q);
    ASSERT_PTR_EQ(cio_ready_queue_pop(&q), NULL);
    /* Uneven push/pop batches move the head around the ring and force
     * growth while the contents are wrapped. */
    for (round = 0; round < 200; round++) {
        for (i = 0; i < round * 3 % 401; i++) {
            ASSERT_EQ(cio_ready_queue_push(&q, (void *)next_in++), 0);
        }
        for (i = 0; i < round * 2 % 389 && cio_ready_queue_len(&q); i++) {
            ASSERT_EQ((uintptr_t)cio_ready_queue_pop(&q), next_out++);
        }
    }
    while (cio_ready_queue_len(&q)) {
        ASSERT_EQ((uintptr_t)cio_ready_queue_pop(&q), next_out++);
    }
    ASSERT_EQ(next_in, next_out);
    cio_ready_queue_free(&q);
}
