/* Socket helpers: accepting on a loopback listener, names, formatting. */
#include "cio_test.h"
#include "cio_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

void
test_socket_accept_nonblocking_cloexec(void)
{
    struct sockaddr_in bound = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in client_name;
    struct sockaddr_storage peer;
    socklen_t len = sizeof(bound);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int client = socket(AF_INET, SOCK_STREAM, 0), conn;

    ASSERT_GE(listener, 0);
    ASSERT_GE(client, 0);
    ASSERT_EQ(bind(listener, (struct sockaddr *)&bound, sizeof(bound)), 0);
    ASSERT_EQ(listen(listener, 8), 0);
    ASSERT_EQ(getsockname(listener, (struct sockaddr *)&bound, &len), 0);

    /* Nothing waiting yet. */
    ASSERT_EQ(cio_socket_accept(listener, &peer, &len), -EAGAIN);

    ASSERT_EQ(connect(client, (struct sockaddr *)&bound, sizeof(bound)), 0);
    conn = cio_socket_accept(listener, &peer, &len);
    ASSERT_GE(conn, 0);
    ASSERT_NE(fcntl(conn, F_GETFL) & O_NONBLOCK, 0);
    ASSERT_NE(fcntl(conn, F_GETFD) & FD_CLOEXEC, 0);

    /* The peer address is the client's own name. */
    len = sizeof(client_name);
    ASSERT_EQ(getsockname(client, (struct sockaddr *)&client_name, &len), 0);
    ASSERT_EQ(peer.ss_family, AF_INET);
    ASSERT_EQ(((struct sockaddr_in *)&peer)->sin_port, client_name.sin_port);

    ASSERT_EQ(cio_socket_accept(-1, &peer, &len), -EBADF);
    close(conn);
    close(client);
    close(listener);
}

void
test_socket_format_ipv4_as_inet_ntop(void)
{
    static const char *const samples[] = {
        "0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.100.9",
        "192.168.1.10", "1.22.133.4", "100.10.1.0"};
    char ours[CIO_IPV4_TEXT_SIZE], theirs[INET_ADDRSTRLEN];
    struct in_addr addr;

    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        ASSERT_EQ(inet_pton(AF_INET, samples[i], &addr), 1);
        ASSERT_EQ(cio_format_ipv4(&addr, ours), (int)strlen(samples[i]));
        ASSERT_PTR_EQ(inet_ntop(AF_INET, &addr, theirs, sizeof(theirs)), theirs);
        ASSERT_EQ(strcmp(ours, theirs), 0);
    }
    /* Every octet value, in each position. */
    for (unsigned v = 0; v < 256; v++) {
        addr.s_addr = htonl(v << 24 | v << 16 | v << 8 | (255 - v));
        cio_format_ipv4(&addr, ours);
        inet_ntop(AF_INET, &addr, theirs, sizeof(theirs));
        ASSERT_EQ(strcmp(ours, theirs), 0);
    }
}

void
test_socket_name_of_both_ends(void)
{
    struct sockaddr_in bound = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_storage name;
    socklen_t len = sizeof(bound);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int client = socket(AF_INET, SOCK_STREAM, 0);

    ASSERT_EQ(bind(listener, (struct sockaddr *)&bound, sizeof(bound)), 0);
    ASSERT_EQ(listen(listener, 8), 0);
    ASSERT_EQ(getsockname(listener, (struct sockaddr *)&bound, &len), 0);
    ASSERT_EQ(cio_socket_name(client, 1, &name, &len), -ENOTCONN);
    ASSERT_EQ(connect(client, (struct sockaddr *)&bound, sizeof(bound)), 0);
    ASSERT_EQ(cio_socket_name(client, 1, &name, &len), 0);
    ASSERT_EQ(len, (socklen_t)sizeof(struct sockaddr_in));
    ASSERT_EQ(((struct sockaddr_in *)&name)->sin_port, bound.sin_port);
    ASSERT_EQ(cio_socket_name(listener, 0, &name, &len), 0);
    ASSERT_EQ(((struct sockaddr_in *)&name)->sin_port, bound.sin_port);
    ASSERT_EQ(cio_socket_name(-1, 0, &name, &len), -EBADF);
    close(client);
    close(listener);
}

void
test_socket_set_nodelay(void)
{
    int tcp = socket(AF_INET, SOCK_STREAM, 0), unix_fd, on = 0;
    socklen_t len = sizeof(on);

    ASSERT_GE(tcp, 0);
    ASSERT_EQ(cio_socket_set_nodelay(tcp), 0);
    ASSERT_EQ(getsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    ASSERT_NE(on, 0);
    /* Not a TCP socket: the kernel's refusal comes back as -errno. */
    unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(unix_fd, 0);
    ASSERT_EQ(cio_socket_set_nodelay(unix_fd), -EOPNOTSUPP);
    ASSERT_EQ(cio_socket_set_nodelay(-1), -EBADF);
    close(unix_fd);
    close(tcp);
}
