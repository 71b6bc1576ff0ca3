/* Socket helpers: accepting on a loopback listener. */
#include "cio_test.h"
#include "cio_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
