/* File descriptor helpers with the Linux-only calls kept here, each with
 * its POSIX counterpart for other systems and the portable build. */
#ifndef CIO_FD_H
#define CIO_FD_H

/* Makes fd close-on-exec, and non-blocking too if asked, with fcntl():
 * for an fd made without the flags (elsewhere than Linux, whose calls
 * take them). 0 or -errno. */
int cio_fd_set_flags(int fd, int nonblocking);
/* A pipe whose ends are non-blocking and close-on-exec; 0 or -errno. */
int cio_pipe_nonblocking(int fds[2]);
/* dup2(from, to), with to close-on-exec; 0 or -errno. */
int cio_dup_cloexec(int from, int to);

#endif
