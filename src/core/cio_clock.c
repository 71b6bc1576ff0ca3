/* Monotonic clock: see cio_clock.h. */
#include "cio_clock.h"

#include <time.h>

uint64_t
cio_clock_now_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail for a valid clock id and a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
cio_clock_resolution_ns(void)
{
    struct timespec ts;
    uint64_t ns;

    if (clock_getres(CLOCK_MONOTONIC, &ts) != 0) {
        return 1;
    }
    ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return ns ? ns : 1;
}
