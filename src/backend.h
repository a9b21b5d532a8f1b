/* The backend contract.  A backend tells the loop which fds are ready (and,
 * for a completion backend, performs the I/O itself).  One file each:
 * backend-epoll.c, backend-poll.c.
 *
 * Events are delivered by calling corio__fd_event(loop, fd, gen, bits)
 * from poll(), with gen the slot generation the fd had when the backend
 * was told about it; the loop drops events whose generation is old.
 *
 * Edge backends (epoll) register an fd once, for every event, and ignore
 * later interest changes: readiness is cached by the loop per direction and
 * cleared when a syscall says EAGAIN.  Level backends (poll) are told the
 * union of what the fd's waiters want each time it changes, and must not
 * report what nobody wants. */
#ifndef CORIO_BACKEND_H
#define CORIO_BACKEND_H

#include "internal.h"

/* The I/O operations a loop performs for coroutines.  Readiness backends
 * share corio__io_readiness (io.c): try the syscall, wait on EAGAIN.  A
 * completion backend (io_uring) would submit the operation instead. */
struct corio_io_ops {
    ssize_t (*read)(corio_loop *loop, int fd, void *buf, size_t n, int64_t deadline);
    ssize_t (*write)(corio_loop *loop, int fd, const void *buf, size_t n, int64_t deadline);
    ssize_t (*readv)(corio_loop *loop, int fd, const struct iovec *iov, int cnt, int64_t deadline);
    ssize_t (*writev)(corio_loop *loop, int fd, const struct iovec *iov, int cnt,
                      int64_t deadline);
    ssize_t (*recv)(corio_loop *loop, int fd, void *buf, size_t n, int fl, int64_t deadline);
    ssize_t (*send)(corio_loop *loop, int fd, const void *buf, size_t n, int fl, int64_t deadline);
    int (*accept)(corio_loop *loop, int fd, struct sockaddr *a, socklen_t *l, int64_t deadline);
    int (*connect)(corio_loop *loop, int fd, const struct sockaddr *a, socklen_t l,
                   int64_t deadline);
};
extern const struct corio_io_ops corio__io_readiness;

struct corio_backend {
    const char *name;
    bool edge; /* registers once; interest changes are not reported to it */
    /* Sets loop->bed.  -errno on failure, with nothing left allocated. */
    int (*init)(corio_loop *loop);
    void (*fini)(corio_loop *loop);
    /* The fd's waiters now want `want` (CORIO_READABLE | CORIO_WRITABLE, or
     * 0).  Edge backends are called only while the slot is unregistered and
     * register it.  -EPERM for fds it cannot watch, -ENOMEM, -EBADF. */
    int (*watch)(corio_loop *loop, int fd, struct corio_fdslot *s, unsigned want);
    /* Reports fd again if it is ready now (level-triggered emulation). */
    int (*rearm)(corio_loop *loop, int fd, struct corio_fdslot *s);
    /* fd is about to be closed: drop it (the slot is reset afterwards). */
    void (*forget)(corio_loop *loop, int fd, struct corio_fdslot *s);
    /* Waits up to timeout_ns (-1: forever; 0: do not block), delivering
     * events.  Returns how many the wait returned, or -errno.  A backend
     * may deliver part of them and keep the rest for its next calls,
     * counting them in loop->backlog: those calls deliver without waiting
     * (the loop makes them with timeout 0) and return 0. */
    int (*poll)(corio_loop *loop, int64_t timeout_ns);
    /* Interrupts poll() from any thread. */
    int (*wake)(corio_loop *loop);
    const struct corio_io_ops *io;
};

extern const struct corio_backend corio__backend_epoll;
extern const struct corio_backend corio__backend_poll;

#endif
