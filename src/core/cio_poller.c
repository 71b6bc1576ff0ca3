/* Backend selection for the poller: see cio_poller.h. The backend is
 * chosen when the code is compiled (epoll on Linux, kqueue elsewhere and
 * in the portable build); its name is cio_poller_backend_name(). */
#include "cio_poller.h"

#include <stddef.h>

int
cio_poller_open(cio_poller_t *poller)
{
    poller->backend = &CIO_POLLER_BACKEND;
    poller->poll_fd = -1;
    poller->wake_fd = -1;
    poller->wake_write_fd = -1;
    poller->backend_data = NULL;
    return poller->backend->open(poller);
}

const char *
cio_poller_backend_name(void)
{
    return CIO_POLLER_BACKEND.name;
}
