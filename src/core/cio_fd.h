/* File descriptor helpers with the Linux-only calls kept here, each with
 * its POSIX counterpart for other systems and the portable build. */
#ifndef CIO_FD_H
#define CIO_FD_H

/* A pipe whose ends are non-blocking and close-on-exec; 0 or -errno. */
int cio_pipe_nonblocking(int fds[2]);
/* dup2(from, to), with to close-on-exec; 0 or -errno. */
int cio_dup_cloexec(int from, int to);

#endif
