/* Closed-loop echo load generator over plain TCP (see echo_driver.h).
 * Prints the number of completed requests.
 *
 *     loadgen PORT CONNECTIONS MESSAGE_BYTES SECONDS
 */
#include "echo_driver.h"

#include <errno.h>

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

int
main(int argc, char **argv)
{
    static const conn_io_t plain = {plain_read, plain_write};

    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS BYTES SECONDS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), nconns = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    conn_t *conns = calloc((size_t)nconns, sizeof(conn_t));

    for (int i = 0; i < nconns; i++) {
        conns[i].fd = connect_loopback(port);
    }
    printf("%ld\n", run_echo(&plain, conns, nconns, size, seconds));
    return 0;
}
