/* Minimal assertion macros for the core's C tests: a failed comparison
 * prints both sides and where it happened, then the test binary exits 1. */
#ifndef CIO_TEST_H
#define CIO_TEST_H

#include <stdio.h>
#include <stdlib.h>

#define ASSERT_OP(a, op, b, fmt, type)                                      \
    do {                                                                    \
        type _a = (a);                                                      \
        type _b = (b);                                                      \
        if (!(_a op _b)) {                                                  \
            fprintf(stderr, "%s:%d: ASSERT %s %s %s failed: " fmt           \
                    " vs " fmt "\n", __FILE__, __LINE__, #a, #op, #b,       \
                    _a, _b);                                                \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_OP(a, ==, b, "%lld", long long)
#define ASSERT_NE(a, b) ASSERT_OP(a, !=, b, "%lld", long long)
#define ASSERT_LT(a, b) ASSERT_OP(a, <, b, "%lld", long long)
#define ASSERT_LE(a, b) ASSERT_OP(a, <=, b, "%lld", long long)
#define ASSERT_GE(a, b) ASSERT_OP(a, >=, b, "%lld", long long)
#define ASSERT_PTR_EQ(a, b) ASSERT_OP(a, ==, b, "%p", const void *)
#define ASSERT_DBL_EQ(a, b) ASSERT_OP(a, ==, b, "%.17g", double)

typedef void (*cio_test_fn)(void);

struct cio_test_case {
    const char *name;
    cio_test_fn fn;
};

#endif
