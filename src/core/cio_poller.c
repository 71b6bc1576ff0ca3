/* Backend selection for the poller: see cio_poller.h. */
#include "cio_poller.h"

int
cio_poller_open(cio_poller_t *poller)
{
    poller->backend = &cio_epoll_backend;
    poller->poll_fd = -1;
    poller->wake_fd = -1;
    return poller->backend->open(poller);
}
