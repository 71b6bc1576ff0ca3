/* The floor under echo_bench.py's figures: a minimal C echo server (one
 * thread, epoll, one recv and one send per message, no allocation) run
 * against the same load generator. What it spends per request is the
 * kernel's share of every loop's figure: the copies in and out of the
 * socket buffers and the loopback delivery, which the server pays for.
 *
 *     echo_floor   (prints its port, then serves 127.0.0.1 until killed)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[256 * 1024];  /* asyncio's max read size */

static int
listen_on_loopback(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 1000) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        perror("listen");
        return -1;
    }
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return fd;
}

static void
accept_all(int epfd, int listener)
{
    int conn, one = 1;

    while ((conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = conn};
        /* as asyncio sets it on every TCP transport */
        setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &ev);
    }
}

/* Sends all n bytes, waiting for room when the socket buffer is full
 * (rare: the client reads each reply before it sends again). */
static int
send_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t sent = send(fd, data, n, MSG_NOSIGNAL);
        if (sent < 0) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (errno != EAGAIN || poll(&p, 1, -1) < 0) {
                return -1;
            }
            continue;
        }
        data += sent;
        n -= (size_t)sent;
    }
    return 0;
}

static void
echo(int fd)
{
    ssize_t n = recv(fd, buf, sizeof(buf), 0);

    if (n == 0 || (n < 0 && errno != EAGAIN) ||
        (n > 0 && send_all(fd, buf, (size_t)n) < 0)) {
        close(fd);  /* also leaves the epoll set */
    }
}

int
main(void)
{
    struct epoll_event events[128];
    int listener = listen_on_loopback(), epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};

    if (listener < 0 || epfd < 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0) {
        return 1;
    }
    for (;;) {
        int n = epoll_wait(epfd, events, 128, -1);
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == listener) {
                accept_all(epfd, listener);
            }
            else {
                echo(events[i].data.fd);
            }
        }
    }
}
