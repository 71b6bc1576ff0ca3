/* Runs every core test, each in its own child process so that one crash
 * cannot hide the others, and prints a closing "N passed, N failed" line. */
#include "cio_test.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TESTS(X)                                   \
    X(test_timer_heap_pops_in_order)               \
    X(test_timer_heap_random_remove)               \
    X(test_timer_heap_nan_is_due_first)            \
    X(test_ready_queue_fifo_with_wraparound)       \
    X(test_poller_add_modify_remove)               \
    X(test_poller_hangup_wakes_the_writer)         \
    X(test_poller_both_directions)                 \
    X(test_poller_fd_reuse)                        \
    X(test_poller_timeout_is_not_early)            \
    X(test_poller_wake_from_thread)                \
    X(test_clock_is_monotonic)                     \
    X(test_socket_accept_nonblocking_cloexec)      \
    X(test_socket_format_ipv4_as_inet_ntop)        \
    X(test_socket_name_of_both_ends)               \
    X(test_socket_set_nodelay)

#define DECLARE(name) void name(void);
TESTS(DECLARE)
#define ENTRY(name) {#name, name},
static const struct cio_test_case cases[] = {TESTS(ENTRY)};

static int
run_isolated(const struct cio_test_case *tc)
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        tc->fn();
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        return 0;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int
main(int argc, char **argv)
{
    size_t i, n = sizeof(cases) / sizeof(cases[0]);
    int passed = 0, failed = 0;

    for (i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) {
            continue;
        }
        if (run_isolated(&cases[i])) {
            printf("PASS %s\n", cases[i].name);
            passed++;
        }
        else {
            printf("FAIL %s\n", cases[i].name);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
