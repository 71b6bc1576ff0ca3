/* A syscall-failure shim for tests: preloaded (LD_PRELOAD) into a Python
 * process, it wraps libc's I/O calls and, once armed, makes calls of one
 * of them fail with a chosen errno: the Nth call after arming and the
 * COUNT - 1 calls after it (COUNT > 1 is a storm). Every other call goes
 * to libc unchanged. Both loops under test reach the kernel through these
 * wrappers (casyncio's C directly, stdlib's loop through the socket and os
 * modules), so the same arming hits both at the same call.
 *
 * Armed from Python with ctypes:
 *     shim = ctypes.CDLL(path)
 *     shim.cio_fail_arm(b"recv", nth, errno.ECONNRESET, count)
 *     shim.cio_fail_fired()   # how many calls it has failed so far
 * Only calls on sockets count, for the socket calls and read/write (what a
 * Python program does with files would otherwise shift N); write() on an
 * eventfd (casyncio's wake-up) is the call "eventfd_write".
 *
 * Build: cc -shared -fPIC -O1 -o libcio_failshim.so failshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static char armed_call[32];
static atomic_long calls_left = 0;  /* calls to let through before failing */
static atomic_long failures_left = 0;
static atomic_long fired = 0;
static int armed_errno;

void
cio_fail_arm(const char *call, long nth, int error, long count)
{
    strncpy(armed_call, call, sizeof(armed_call) - 1);
    armed_errno = error;
    atomic_store(&fired, 0);
    atomic_store(&failures_left, count);
    atomic_store(&calls_left, nth - 1);
}

long
cio_fail_fired(void)
{
    return atomic_load(&fired);
}

static int
armed_for(const char *call)
{
    return atomic_load(&failures_left) > 0 && strcmp(call, armed_call) == 0;
}

static int
is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int
is_eventfd(int fd)
{
    char path[32], target[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0) {
        return 0;
    }
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* Whether this call of `call` is to fail (and then errno is set). The
 * callers ask armed_for() first, so that unarmed calls cost no fstat. */
static int
should_fail(const char *call)
{
    if (!armed_for(call)) {
        return 0;
    }
    if (atomic_fetch_sub(&calls_left, 1) > 0) {
        return 0;
    }
    if (atomic_fetch_sub(&failures_left, 1) <= 0) {
        return 0;
    }
    atomic_fetch_add(&fired, 1);
    errno = armed_errno;
    return 1;
}

#define REAL(name) \
    static __typeof__(name) *real_##name; \
    if (!real_##name) { \
        real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); \
    }

#define SOCKET_CALL(ret, name, params, args) \
    ret name params \
    { \
        REAL(name); \
        if (armed_for(#name) && is_socket(fd) && should_fail(#name)) { \
            return -1; \
        } \
        return real_##name args; \
    }

SOCKET_CALL(ssize_t, recv, (int fd, void *buf, size_t n, int flags),
            (fd, buf, n, flags))
SOCKET_CALL(ssize_t, recvfrom, (int fd, void *buf, size_t n, int flags,
            struct sockaddr *addr, socklen_t *len),
            (fd, buf, n, flags, addr, len))
SOCKET_CALL(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags),
            (fd, msg, flags))
SOCKET_CALL(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n))
SOCKET_CALL(ssize_t, send, (int fd, const void *buf, size_t n, int flags),
            (fd, buf, n, flags))
SOCKET_CALL(ssize_t, sendto, (int fd, const void *buf, size_t n, int flags,
            const struct sockaddr *addr, socklen_t len),
            (fd, buf, n, flags, addr, len))
SOCKET_CALL(ssize_t, sendmsg, (int fd, const struct msghdr *msg, int flags),
            (fd, msg, flags))

/* write() counts on sockets as "write" and on eventfds (casyncio's
 * wake-up) as "eventfd_write". */
ssize_t
write(int fd, const void *buf, size_t n)
{
    REAL(write);
    if ((armed_for("write") && is_socket(fd) && should_fail("write")) ||
        (armed_for("eventfd_write") && is_eventfd(fd) &&
         should_fail("eventfd_write"))) {
        return -1;
    }
    return real_write(fd, buf, n);
}

SOCKET_CALL(ssize_t, writev, (int fd, const struct iovec *iov, int n),
            (fd, iov, n))
SOCKET_CALL(int, accept, (int fd, struct sockaddr *addr, socklen_t *len),
            (fd, addr, len))
SOCKET_CALL(int, accept4, (int fd, struct sockaddr *addr, socklen_t *len,
            int flags), (fd, addr, len, flags))

/* sendfile's fd of interest is the socket it writes to. CPython is built
 * with 64-bit file offsets, so os.sendfile() calls sendfile64. */
static int
sendfile_fails(int out_fd)
{
    return armed_for("sendfile") && is_socket(out_fd) &&
           should_fail("sendfile");
}

ssize_t
sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    REAL(sendfile);
    return sendfile_fails(out_fd) ? -1
                                  : real_sendfile(out_fd, in_fd, offset, count);
}

ssize_t
sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    REAL(sendfile64);
    return sendfile_fails(out_fd) ? -1
                                  : real_sendfile64(out_fd, in_fd, offset,
                                                    count);
}

int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    REAL(epoll_ctl);
    if (armed_for("epoll_ctl") && should_fail("epoll_ctl")) {
        return -1;
    }
    return real_epoll_ctl(epfd, op, fd, event);
}

int
epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    REAL(epoll_wait);
    if (armed_for("epoll_wait") && should_fail("epoll_wait")) {
        return -1;
    }
    return real_epoll_wait(epfd, events, max, timeout);
}

/* pidfd_open and epoll_pwait2 have no glibc wrapper casyncio uses: they
 * go through syscall(), six arguments at most. */
long
syscall(long number, ...)
{
    REAL(syscall);
    va_list ap;
    long a[6];
    va_start(ap, number);
    for (int i = 0; i < 6; i++) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    if (number == SYS_pidfd_open && armed_for("pidfd_open") &&
        should_fail("pidfd_open")) {
        return -1;
    }
    if (number == SYS_epoll_pwait2 && armed_for("epoll_pwait2") &&
        should_fail("epoll_pwait2")) {
        return -1;
    }
    return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
