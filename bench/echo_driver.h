/* The closed-loop echo driver both load generators share: each connection
 * sends one message, waits for all of it to come back, and repeats, for a
 * fixed time. The load generator supplies connected, non-blocking
 * connections and how to read and write on them (plain or TLS). */
#ifndef CASYNCIO_BENCH_ECHO_DRIVER_H
#define CASYNCIO_BENCH_ECHO_DRIVER_H

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

typedef struct {
    int fd;
    void *tls;        /* the TLS load generator's SSL *, else NULL */
    size_t sent;      /* bytes of the current message written */
    size_t received;  /* bytes of its echo read back */
} conn_t;

/* Both return the bytes moved, 0 when the call would block; they exit the
 * program on an error or when the server closes the connection. */
typedef struct {
    size_t (*read)(conn_t *c, char *buf, size_t size);
    size_t (*write)(conn_t *c, const char *buf, size_t size);
} conn_io_t;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY. */
static int
connect_loopback(int port)
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

/* Writes what the connection takes of the rest of the message. */
static void
send_some(const conn_io_t *io, conn_t *c, const char *msg, size_t size)
{
    while (c->sent < size) {
        size_t n = io->write(c, msg + c->sent, size - c->sent);
        if (n == 0) {
            return;
        }
        c->sent += n;
    }
}

/* Runs the echo for `seconds`; returns the completed requests. */
static long
run_echo(const conn_io_t *io, conn_t *conns, int nconns, size_t size,
         double seconds)
{
    char *msg = malloc(size), *buf = malloc(size);
    int ep = epoll_create1(0);
    long requests = 0;

    memset(msg, 'x', size);
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        send_some(io, &conns[i], msg, size);
    }
    double end = now() + seconds;
    struct epoll_event events[256];
    while (now() < end) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            size_t got;
            /* Until the read would block: TLS may hold decrypted bytes
             * that the socket no longer signals. */
            while ((got = io->read(c, buf, size)) > 0) {
                c->received += got;
                /* Large messages: keep feeding the rest as the echo
                 * drains. */
                send_some(io, c, msg, size);
                if (c->received == size) {
                    requests++;
                    c->sent = c->received = 0;
                    send_some(io, c, msg, size);
                }
            }
        }
    }
    free(msg);
    free(buf);
    return requests;
}

/* Runs `request` (open a connection, one request, close) back to back
 * for `seconds`, one connection at a time; returns how many ran. */
static long
run_serially(void (*request)(int port), int port, double seconds)
{
    double end = now() + seconds;
    long requests = 0;

    while (now() < end) {
        request(port);
        requests++;
    }
    return requests;
}

#endif
