/* TLS load generator (OpenSSL), two modes, each for a fixed time:
 *
 *   echo: N connections, each sends one message, waits for all of it to
 *         come back, and repeats; prints the completed requests.
 *   handshake: one connection at a time connects, completes a full TLS
 *         handshake, has one byte echoed and closes; prints the handshakes
 *         (CONNECTIONS and MESSAGE_BYTES are ignored).
 *
 *     tls_loadgen echo|handshake PORT CONNECTIONS MESSAGE_BYTES SECONDS
 *
 * The server's certificate is not verified: the benchmark measures the
 * server, and verification costs the client only. */
#include "echo_driver.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

static SSL_CTX *ctx;

static void
die(const char *what)
{
    fprintf(stderr, "%s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A blocking connection with the handshake done. */
static void
open_conn(conn_t *c, int port)
{
    c->fd = connect_loopback(port);
    c->tls = SSL_new(ctx);
    SSL_set_fd(c->tls, c->fd);
    if (SSL_connect(c->tls) != 1) {
        die("SSL_connect");
    }
    c->sent = c->received = 0;
}

static void
close_conn(conn_t *c)
{
    SSL_free(c->tls);
    close(c->fd);
}

/* 0 when OpenSSL would block, else dies with `what`. */
static size_t
would_block_or_die(conn_t *c, int ret, const char *what)
{
    int err = SSL_get_error(c->tls, ret);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        die(what);
    }
    return 0;
}

static size_t
tls_read(conn_t *c, char *buf, size_t size)
{
    int got = SSL_read(c->tls, buf, (int)size);
    return got > 0 ? (size_t)got
                   : would_block_or_die(c, got, "SSL_read (server closed?)");
}

static size_t
tls_write(conn_t *c, const char *buf, size_t size)
{
    int n = SSL_write(c->tls, buf, (int)size);
    return n > 0 ? (size_t)n : would_block_or_die(c, n, "SSL_write");
}

static long
run_tls_echo(int port, int nconns, size_t size, double seconds)
{
    static const conn_io_t tls = {tls_read, tls_write};
    conn_t *conns = calloc((size_t)nconns, sizeof(conn_t));

    for (int i = 0; i < nconns; i++) {
        open_conn(&conns[i], port);
        SSL_set_mode(conns[i].tls, SSL_MODE_ENABLE_PARTIAL_WRITE);
        /* Non-blocking from here, so that a read loop ends when both the
         * socket and OpenSSL's buffer are empty. */
        fcntl(conns[i].fd, F_SETFL, O_NONBLOCK);
    }
    return run_echo(&tls, conns, nconns, size, seconds);
}

/* handshake mode's request: a full handshake, one byte echoed, close. */
static void
handshake_once(int port)
{
    conn_t c;
    char byte = 'x';

    open_conn(&c, port);
    if (SSL_write(c.tls, &byte, 1) != 1 || SSL_read(c.tls, &byte, 1) != 1) {
        die("one-byte echo");
    }
    SSL_shutdown(c.tls);
    close_conn(&c);
}

int
main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s echo|handshake PORT CONNECTIONS BYTES "
                "SECONDS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[2]), nconns = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* One session per handshake: no resumption, every handshake is full. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    printf("%ld\n", strcmp(argv[1], "echo") == 0
                        ? run_tls_echo(port, nconns, size, seconds)
                        : run_serially(handshake_once, port, seconds));
    return 0;
}
