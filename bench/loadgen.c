/* Closed-loop load generator over plain TCP. Prints the number of
 * completed requests.
 *
 *     loadgen echo PORT CONNECTIONS MESSAGE_BYTES SECONDS
 *     loadgen connect PORT 1 1 SECONDS
 *
 *   echo: CONNECTIONS connections each echo messages (see echo_driver.h).
 *   connect: one connection at a time connects, has one byte echoed and
 *         closes, so every request pays for the server's accept, transport
 *         set-up and teardown. Loopback reuses TIME_WAIT ports
 *         (tcp_tw_reuse), so long runs do not exhaust them.
 */
#include "echo_driver.h"

#include <errno.h>
#include <unistd.h>

static size_t
plain_read(conn_t *c, char *buf, size_t size)
{
    ssize_t got = recv(c->fd, buf, size, MSG_DONTWAIT);
    if (got < 0 && errno == EAGAIN) {
        return 0;
    }
    if (got <= 0) {
        fprintf(stderr, "server closed a connection\n");
        exit(1);
    }
    return (size_t)got;
}

static size_t
plain_write(conn_t *c, const char *buf, size_t size)
{
    ssize_t n = send(c->fd, buf, size, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
        return 0;
    }
    if (n < 0) {
        perror("send");
        exit(1);
    }
    return (size_t)n;
}

static long
run_plain_echo(int port, int nconns, size_t size, double seconds)
{
    static const conn_io_t plain = {plain_read, plain_write};
    conn_t *conns = calloc((size_t)nconns, sizeof(conn_t));

    for (int i = 0; i < nconns; i++) {
        conns[i].fd = connect_loopback(port);
    }
    return run_echo(&plain, conns, nconns, size, seconds);
}

/* connect mode's request: connect, one byte echoed, close. */
static void
connect_once(int port)
{
    int fd = connect_loopback(port);
    char byte = 'x';

    if (send(fd, &byte, 1, 0) != 1 || recv(fd, &byte, 1, 0) != 1) {
        fprintf(stderr, "one-byte echo failed\n");
        exit(1);
    }
    close(fd);
}

int
main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s echo|connect PORT CONNECTIONS BYTES "
                "SECONDS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[2]), nconns = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);

    printf("%ld\n", strcmp(argv[1], "echo") == 0
                        ? run_plain_echo(port, nconns, size, seconds)
                        : run_serially(connect_once, port, seconds));
    return 0;
}
