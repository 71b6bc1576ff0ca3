/* Closed-loop echo load generator: each connection sends one message,
 * waits for all of it to come back, and repeats, for a fixed time.
 * Prints the number of completed requests.
 *
 *     loadgen PORT CONNECTIONS MESSAGE_BYTES SECONDS
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    size_t sent;      /* bytes of the current message written */
    size_t received;  /* bytes of its echo read back */
} conn_t;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
connect_to(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((unsigned short)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Writes what the socket takes of the rest of the message. */
static void
send_some(conn_t *c, const char *msg, size_t size)
{
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN) {
                return;
            }
            perror("send");
            exit(1);
        }
        c->sent += (size_t)n;
    }
}

int
main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS BYTES SECONDS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), nconns = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    char *msg = malloc(size), *buf = malloc(size);
    conn_t *conns = calloc((size_t)nconns, sizeof(conn_t));
    int ep = epoll_create1(0);
    long requests = 0;

    memset(msg, 'x', size);
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        conns[i].fd = connect_to(port);
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        send_some(&conns[i], msg, size);
    }
    double end = now() + seconds;
    struct epoll_event events[256];
    while (now() < end) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            ssize_t got = recv(c->fd, buf, size, MSG_DONTWAIT);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) {
                    continue;
                }
                fprintf(stderr, "server closed a connection\n");
                return 1;
            }
            c->received += (size_t)got;
            /* Large messages: keep feeding the rest as the echo drains. */
            send_some(c, msg, size);
            if (c->received == size) {
                requests++;
                c->sent = c->received = 0;
                send_some(c, msg, size);
            }
        }
    }
    printf("%ld\n", requests);
    return 0;
}
