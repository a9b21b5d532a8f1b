/* I/O for readiness backends: try the syscall, and park on EAGAIN until
 * the fd is ready, then try again.  A read on a socket with data already
 * buffered costs one syscall and never enters the scheduler.
 *
 * One retry loop serves every operation; io_try() is the only place that
 * knows which syscall an operation is. */
#include <netinet/in.h>

#include "backend.h"

enum op { OP_READ, OP_WRITE, OP_READV, OP_WRITEV, OP_RECV, OP_SEND, OP_ACCEPT };
/* The stats count syscalls by kind with op as the index. */
_Static_assert((int)OP_READ == (int)CORIO_SYSCALL_READ && (int)OP_ACCEPT == (int)CORIO_SYSCALL_ACCEPT,
               "enum op follows enum corio_syscall_kind");

struct io_req {
    enum op op;
    int fd;
    void *buf;
    size_t n;
    const struct iovec *iov;
    int cnt;
    int flags;
    struct sockaddr *addr;
    socklen_t *addrlen;
};

static inline __attribute__((always_inline)) ssize_t io_try(const struct io_req *q)
{
    SITE(s_read, "read");
    SITE(s_write, "write");
    SITE(s_readv, "readv");
    SITE(s_writev, "writev");
    SITE(s_recv, "recv");
    SITE(s_send, "send");
    SITE(s_accept, "accept4");
    switch (q->op) {
    case OP_READ:
        return sys_read(&s_read, q->fd, q->buf, q->n);
    case OP_WRITE:
        return sys_write(&s_write, q->fd, q->buf, q->n);
    case OP_READV:
        return sys_readv(&s_readv, q->fd, q->iov, q->cnt);
    case OP_WRITEV:
        return sys_writev(&s_writev, q->fd, q->iov, q->cnt);
    case OP_RECV:
        return sys_recv(&s_recv, q->fd, q->buf, q->n, q->flags);
    case OP_SEND:
        return sys_send(&s_send, q->fd, q->buf, q->n, q->flags | MSG_NOSIGNAL);
    case OP_ACCEPT:
        return sys_accept4(&s_accept, q->fd, q->addr, q->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    return -EINVAL;
}

static inline __attribute__((always_inline)) ssize_t io_run(corio_loop *loop, const struct io_req *q, unsigned dir,
                                                            int64_t deadline)
{
    for (;;) {
        ssize_t r = io_try(q);
        CORIO_STAT(loop->stats.sys[q->op]++);
        if (r >= 0) {
            CORIO_STAT(if (q->op != OP_ACCEPT) *(dir == CORIO_READABLE ? &loop->stats.bytes_read
                                                                    : &loop->stats.bytes_written) +=
                       (uint64_t)r);
            corio__budget(loop);
            return r;
        }
        if (r == -EINTR)
            continue;
        if (r != -EAGAIN)
            return r;
        CORIO_STAT(loop->stats.eagain++; loop->stats.sys_eagain[q->op]++);
        int w = corio__fd_eagain_wait(loop, q->fd, dir, deadline);
        if (w < 0)
            return w;
    }
}

static ssize_t rd_read(corio_loop *loop, int fd, void *buf, size_t n, int64_t deadline)
{
    struct io_req q = {.op = OP_READ, .fd = fd, .buf = buf, .n = n};
    return io_run(loop, &q, CORIO_READABLE, deadline);
}

static ssize_t rd_write(corio_loop *loop, int fd, const void *buf, size_t n, int64_t deadline)
{
    struct io_req q = {.op = OP_WRITE, .fd = fd, .buf = (void *)buf, .n = n};
    return io_run(loop, &q, CORIO_WRITABLE, deadline);
}

static ssize_t rd_readv(corio_loop *loop, int fd, const struct iovec *iov, int cnt, int64_t deadline)
{
    struct io_req q = {.op = OP_READV, .fd = fd, .iov = iov, .cnt = cnt};
    return io_run(loop, &q, CORIO_READABLE, deadline);
}

static ssize_t rd_writev(corio_loop *loop, int fd, const struct iovec *iov, int cnt,
                         int64_t deadline)
{
    struct io_req q = {.op = OP_WRITEV, .fd = fd, .iov = iov, .cnt = cnt};
    return io_run(loop, &q, CORIO_WRITABLE, deadline);
}

static ssize_t rd_recv(corio_loop *loop, int fd, void *buf, size_t n, int fl, int64_t deadline)
{
    struct io_req q = {.op = OP_RECV, .fd = fd, .buf = buf, .n = n, .flags = fl};
    return io_run(loop, &q, CORIO_READABLE, deadline);
}

static ssize_t rd_send(corio_loop *loop, int fd, const void *buf, size_t n, int fl, int64_t deadline)
{
    struct io_req q = {.op = OP_SEND, .fd = fd, .buf = (void *)buf, .n = n, .flags = fl};
    return io_run(loop, &q, CORIO_WRITABLE, deadline);
}

static int rd_accept(corio_loop *loop, int fd, struct sockaddr *a, socklen_t *l, int64_t deadline)
{
    struct io_req q = {.op = OP_ACCEPT, .fd = fd, .addr = a, .addrlen = l};
    return (int)io_run(loop, &q, CORIO_READABLE, deadline);
}

static int rd_connect(corio_loop *loop, int fd, const struct sockaddr *a, socklen_t l,
                      int64_t deadline)
{
    SITE(s_connect, "connect");
    SITE(s_sockopt, "getsockopt");
    int r = sys_connect(&s_connect, fd, a, l);
    CORIO_STAT(loop->stats.sys[CORIO_SYSCALL_CONNECT]++);
    if (r == 0 || (r != -EINPROGRESS && r != -EINTR))
        return r;
    /* The handshake goes on in the kernel; writable means it ended. */
    r = corio__fd_wait(loop, fd, CORIO_WRITABLE, deadline);
    if (r < 0)
        return r;
    int err = 0;
    socklen_t len = sizeof err;
    r = sys_getsockopt(&s_sockopt, fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (r < 0)
        return r;
    return -err;
}

const struct corio_io_ops corio__io_readiness = {
    .read = rd_read,
    .write = rd_write,
    .readv = rd_readv,
    .writev = rd_writev,
    .recv = rd_recv,
    .send = rd_send,
    .accept = rd_accept,
    .connect = rd_connect,
};

/* ---- Public entry points: find the thread's loop, hand to the backend ---- */

#define LOOP_OR_FAIL(loop)                                  \
    corio_loop *loop = corio__tls_loop;                     \
    if (corio_unlikely(!loop))                              \
        return -CORIO_ENOTCO

/* Every backend so far is a readiness one: the calls that carry each
 * message (streams read and send, ping-pongs read and write) run the
 * readiness code in place rather than through the ops table, one call
 * layer less per syscall. */
#define READINESS(loop) corio_likely((loop)->be->io == &corio__io_readiness)

ssize_t corio__read(corio_loop *loop, int fd, void *buf, size_t n, int64_t deadline)
{
    if (READINESS(loop)) {
        struct io_req q = {.op = OP_READ, .fd = fd, .buf = buf, .n = n};
        return io_run(loop, &q, CORIO_READABLE, deadline);
    }
    return loop->be->io->read(loop, fd, buf, n, deadline);
}

ssize_t corio__write(corio_loop *loop, int fd, const void *buf, size_t n, int64_t deadline)
{
    if (READINESS(loop)) {
        struct io_req q = {.op = OP_WRITE, .fd = fd, .buf = (void *)buf, .n = n};
        return io_run(loop, &q, CORIO_WRITABLE, deadline);
    }
    return loop->be->io->write(loop, fd, buf, n, deadline);
}

ssize_t corio__send(corio_loop *loop, int fd, const void *buf, size_t n, int flags,
                    int64_t deadline)
{
    if (READINESS(loop)) {
        struct io_req q = {.op = OP_SEND, .fd = fd, .buf = (void *)buf, .n = n, .flags = flags};
        return io_run(loop, &q, CORIO_WRITABLE, deadline);
    }
    return loop->be->io->send(loop, fd, buf, n, flags, deadline);
}

ssize_t corio_read(int fd, void *buf, size_t n, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return corio__read(loop, fd, buf, n, deadline);
}

ssize_t corio_write(int fd, const void *buf, size_t n, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return corio__write(loop, fd, buf, n, deadline);
}

ssize_t corio_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return loop->be->io->readv(loop, fd, iov, iovcnt, deadline);
}

ssize_t corio_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return loop->be->io->writev(loop, fd, iov, iovcnt, deadline);
}

ssize_t corio_recv(int fd, void *buf, size_t n, int flags, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return loop->be->io->recv(loop, fd, buf, n, flags, deadline);
}

ssize_t corio_send(int fd, const void *buf, size_t n, int flags, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return corio__send(loop, fd, buf, n, flags, deadline);
}

int corio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return loop->be->io->accept(loop, fd, addr, addrlen, deadline);
}

int corio_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline)
{
    LOOP_OR_FAIL(loop);
    return loop->be->io->connect(loop, fd, addr, addrlen, deadline);
}

ssize_t corio_write_all(int fd, const void *buf, size_t n, size_t *written, int64_t deadline)
{
    size_t done = 0;
    ssize_t r = 0;
    while (done < n) {
        r = corio_write(fd, (const char *)buf + done, n - done, deadline);
        if (r < 0)
            break;
        done += (size_t)r;
    }
    if (written)
        *written = done;
    return r < 0 ? r : (ssize_t)n;
}
