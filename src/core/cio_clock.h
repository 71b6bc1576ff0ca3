/* Monotonic clock in nanoseconds.
 *
 * The loop's time() must agree with Python's time.monotonic(), which reads
 * CLOCK_MONOTONIC on Linux, so this clock reads the same one. */
#ifndef CIO_CLOCK_H
#define CIO_CLOCK_H

#include <stdint.h>

/* Nanoseconds since an arbitrary fixed point; never goes backwards. */
uint64_t cio_clock_now_ns(void);

/* Resolution of cio_clock_now_ns() in nanoseconds (at least 1). */
uint64_t cio_clock_resolution_ns(void);

#endif
