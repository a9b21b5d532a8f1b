/* Sockets: TCP and Unix stream listeners and dialling, UDP and Unix
 * datagrams.  Every fd is created non-blocking and close-on-exec in the
 * socket() call itself; every syscall goes through the seam in sys.h. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"

/* Errors accept(2) passes on from a connection that died in the queue:
 * they concern that connection, not the listener, so accept goes on. */
static bool accept_transient(int err)
{
    switch (-err) {
    case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN:
    case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EPERM:
        return true;
    }
    return false;
}

static int open_socket(int family, int type)
{
    SITE(s_socket, "socket");
    return sys_socket(&s_socket, family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static int set_opt(int fd, int level, int name, int value)
{
    SITE(s_opt, "setsockopt");
    return sys_setsockopt(&s_opt, fd, level, name, &value, sizeof value);
}

static bool is_ip(const corio_addr *a)
{
    return a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6;
}

static int set_keepalive(int fd, int idle_s)
{
    int r = set_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    if (r == 0)
        r = set_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
    if (r == 0) /* probes every idle/3 seconds, give up after 3: dead within 2 x idle */
        r = set_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, idle_s / 3 ? idle_s / 3 : 1);
    if (r == 0)
        r = set_opt(fd, IPPROTO_TCP, TCP_KEEPCNT, 3);
    return r;
}

/* ---- Listeners ---- */

struct corio_listener {
    corio_loop *loop;
    int fd;
    int reserve;       /* a spare descriptor (/dev/null) for the EMFILE trick, or -1 */
    bool shedding;     /* reported; cleared by the next accept that works */
    bool unlink_path;  /* a Unix socket file this listener created */
    uint64_t shed;     /* connections closed for lack of descriptors */
    corio_addr addr;   /* the bound address */
    void (*on_shed)(corio_listener *l, int err, void *data);
    void *data;
};

static int open_reserve(void)
{
    SITE(s_open, "open");
    return sys_open(&s_open, "/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Listener options that must be set before bind. */
static int listen_opts(int fd, const corio_addr *a, const corio_listen_options *o)
{
    int r = 0;
    if (!is_ip(a))
        return 0;
    if (!o->no_reuseaddr)
        r = set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (r == 0 && o->reuseport)
        r = set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (r == 0 && a->ss.ss_family == AF_INET6)
        r = set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, o->v6only);
    /* Accepted sockets inherit these from the listener: no syscall per
     * connection. */
    if (r == 0 && !o->no_nodelay)
        r = set_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (r == 0 && o->keepalive > 0)
        r = set_keepalive(fd, o->keepalive);
    if (r == 0 && o->defer_accept > 0)
        r = set_opt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, o->defer_accept);
    if (r == 0 && o->fastopen > 0)
        r = set_opt(fd, IPPROTO_TCP, TCP_FASTOPEN, o->fastopen);
    return r;
}

int corio_net_listen_addr(corio_listener **out, const corio_addr *a, const corio_listen_options *opts)
{
    SITE(s_malloc, "malloc");
    SITE(s_bind, "bind");
    SITE(s_listen, "listen");
    SITE(s_close, "close");
    corio_listen_options o = {0};
    if (opts)
        o = *opts;
    if (!a || a->len == 0)
        return -EINVAL;
    corio_listener *l = corio__calloc(&s_malloc, 1, sizeof *l);
    if (!l)
        return -ENOMEM;
    int err = open_socket(a->ss.ss_family, SOCK_STREAM);
    if (err < 0)
        goto out_free;
    l->fd = err;
    err = listen_opts(l->fd, a, &o);
    if (err == 0)
        err = sys_bind(&s_bind, l->fd, (const struct sockaddr *)&a->ss, a->len);
    if (err < 0)
        goto out_close;
    l->unlink_path = a->ss.ss_family == AF_UNIX && ((const struct sockaddr_un *)&a->ss)->sun_path[0];
    err = sys_listen(&s_listen, l->fd, o.backlog > 0 ? o.backlog : SOMAXCONN);
    if (err == 0)
        err = corio_addr_local(l->fd, &l->addr);
    if (err == 0)
        err = l->reserve = open_reserve();
    if (err < 0)
        goto out_unlink;
    l->loop = corio__tls_loop; /* NULL before the loop runs: set by the first accept */
    l->on_shed = o.on_shed;
    l->data = o.data;
    *out = l;
    return 0;

out_unlink:
    if (l->unlink_path) {
        SITE(s_unlink, "unlink");
        (void)sys_unlink(&s_unlink, ((const struct sockaddr_un *)&a->ss)->sun_path);
    }
out_close:
    (void)sys_close(&s_close, l->fd);
out_free:
    corio__free(l);
    return err;
}

int corio_net_listen(corio_listener **out, const char *addr, const corio_listen_options *opts,
                     int64_t deadline)
{
    corio_addr a;
    int r = corio_addr_resolve(&a, 1, addr, SOCK_STREAM, deadline);
    if (r < 0)
        return r;
    return corio_net_listen_addr(out, &a, opts);
}

static void report_shed(corio_listener *l, int err)
{
    if (l->shedding)
        return;
    l->shedding = true;
    if (l->on_shed) {
        l->on_shed(l, err, l->data);
        return;
    }
    char name[CORIO_ADDR_STRLEN];
    if (corio_addr_format(&l->addr, name, sizeof name) < 0)
        strcpy(name, "?");
    fprintf(stderr,
            "corio: listener %s: out of file descriptors (%s); closing new connections "
            "until some are free (raise RLIMIT_NOFILE?)\n",
            name, corio_strerror(err));
}

/* Out of descriptors: the pending connections cannot be accepted, and
 * with an edge-triggered poller nobody would hear of them again, while a
 * level-triggered one would spin.  So: free the reserve descriptor, accept
 * and close what is queued, and take the reserve back (libuv, neco).
 * Returns 0 once the queue is empty, 1 if another thread took the freed
 * slot first, or err when no reserve could be had. */
static int shed(corio_listener *l, int err)
{
    SITE(s_accept, "accept4");
    SITE(s_close, "close");
    SITE(s_close2, "close");
    report_shed(l, err);
    if (l->reserve < 0 && (l->reserve = open_reserve()) < 0)
        return err;
    (void)sys_close(&s_close, l->reserve);
    l->reserve = -1;
    int fd;
    for (;;) {
        fd = sys_accept4(&s_accept, l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (fd == -EINTR || accept_transient(fd)))
            continue;
        if (fd < 0)
            break;
        (void)sys_close(&s_close2, fd);
        l->shed++;
    }
    l->reserve = open_reserve();
    if (l->reserve < 0)
        return err;
    return fd == -EAGAIN ? 0 : 1;
}

int corio_listener_accept(corio_listener *l, corio_addr *peer, int64_t deadline)
{
    if (!l->loop && !(l->loop = corio__tls_loop))
        return -CORIO_ENOTCO;
    if (!corio__loop_owned(l->loop))
        return -CORIO_EWRONGLOOP;
    for (;;) {
        socklen_t len = sizeof peer->ss;
        int fd = corio_accept(l->fd, peer ? (struct sockaddr *)&peer->ss : NULL, peer ? &len : NULL,
                              deadline);
        if (fd >= 0) {
            if (peer)
                peer->len = len;
            l->shedding = false;
            return fd;
        }
        if (accept_transient(fd))
            continue;
        if (fd != -EMFILE && fd != -ENFILE)
            return fd;
        int r = shed(l, fd);
        if (r == 0) {
            /* The queue is empty, and accept4 would say EMFILE rather than
             * EAGAIN while descriptors are short: wait for the next
             * connection instead of asking again. */
            corio__fd_eagain(l->loop, l->fd, CORIO_READABLE);
            r = corio__fd_wait(l->loop, l->fd, CORIO_READABLE, deadline);
            if (r < 0)
                return r;
            continue;
        }
        /* Without a reserve (or having lost the race for it): pause, so
         * nothing spins, then try again or let the caller decide.  The
         * pause waits on the listener, so closing it still wakes us. */
        int64_t pause = corio_after(100 * CORIO_MSEC);
        int w = corio__fd_wait(l->loop, l->fd, CORIO_READABLE, pause < deadline ? pause : deadline);
        if (w == -ETIMEDOUT && pause < deadline)
            w = 0;
        if (w < 0 || r < 0)
            return w < 0 ? w : r;
    }
}

int corio_listener_fd(const corio_listener *l)
{
    return l->fd;
}

int corio_listener_addr(const corio_listener *l, corio_addr *a)
{
    *a = l->addr;
    return 0;
}

uint64_t corio_listener_shed(const corio_listener *l)
{
    return l->shed;
}

int corio_listener_close(corio_listener *l)
{
    SITE(s_close, "close");
    SITE(s_unlink, "unlink");
    if (!l)
        return 0;
    if (l->unlink_path)
        (void)sys_unlink(&s_unlink, ((const struct sockaddr_un *)&l->addr.ss)->sun_path);
    if (l->reserve >= 0)
        (void)sys_close(&s_close, l->reserve);
    int r = corio_close(l->fd);
    corio__free(l);
    return r;
}

/* ---- Dialling ---- */

/* A non-blocking connect to a Unix socket whose backlog is full fails
 * with EAGAIN instead of waiting, and there is no readiness to wait for:
 * retry on a short timer until the deadline. */
static int connect_unix(int fd, const corio_addr *a, int64_t deadline)
{
    int64_t pause = CORIO_MSEC;
    for (;;) {
        int r = corio_connect(fd, (const struct sockaddr *)&a->ss, a->len, deadline);
        if (r != -EAGAIN)
            return r;
        if (deadline == CORIO_NOWAIT)
            return -ETIMEDOUT;
        int64_t t = corio_after(pause);
        if (t >= deadline)
            return -ETIMEDOUT;
        if ((r = corio_sleep_until(t)) < 0)
            return r;
        pause = pause < 64 * CORIO_MSEC ? pause * 2 : pause;
    }
}

int corio_net_dial_addr(const corio_addr *a, const corio_dial_options *opts, int64_t deadline)
{
    corio_dial_options o = {0};
    if (opts)
        o = *opts;
    if (!a || a->len == 0)
        return -EINVAL;
    int fd = open_socket(a->ss.ss_family, SOCK_STREAM);
    if (fd < 0)
        return fd;
    int r = 0;
    if (is_ip(a) && !o.no_nodelay)
        r = set_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (r == 0 && is_ip(a) && o.keepalive > 0)
        r = set_keepalive(fd, o.keepalive);
    if (r == 0)
        r = is_ip(a) ? corio_connect(fd, (const struct sockaddr *)&a->ss, a->len, deadline)
                     : connect_unix(fd, a, deadline);
    if (r < 0) {
        corio_close(fd);
        return r;
    }
    return fd;
}

int corio_net_dial(const char *addr, const corio_dial_options *opts, int64_t deadline)
{
    corio_addr a[8];
    int n = corio_addr_resolve(a, 8, addr, SOCK_STREAM, deadline);
    if (n < 0)
        return n;
    int r = -ECONNREFUSED;
    for (int i = 0; i < n; i++) {
        r = corio_net_dial_addr(&a[i], opts, deadline);
        if (r >= 0 || r == -ECANCELED || r == -ETIMEDOUT || r == -CORIO_ENOTCO)
            return r;
    }
    return r;
}

/* ---- Datagrams ---- */

static int dgram_opts(int fd, const corio_addr *a, const corio_dgram_options *o)
{
    int r = 0;
    if (o->reuseaddr)
        r = set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (r == 0 && o->reuseport)
        r = set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (r == 0 && a->ss.ss_family == AF_INET6)
        r = set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, o->v6only);
    if (r == 0 && o->broadcast)
        r = set_opt(fd, SOL_SOCKET, SO_BROADCAST, 1);
    if (r == 0 && o->rcvbuf > 0)
        r = set_opt(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf);
    if (r == 0 && o->sndbuf > 0)
        r = set_opt(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf);
    return r;
}

int corio_dgram_open(const char *local, const char *remote, const corio_dgram_options *opts,
                     int64_t deadline)
{
    SITE(s_bind, "bind");
    SITE(s_connect, "connect");
    corio_dgram_options o = {0};
    if (opts)
        o = *opts;
    corio_addr la = {.len = 0}, ra = {.len = 0};
    int r;
    if (!local && !remote)
        return -EINVAL;
    if (local && (r = corio_addr_resolve(&la, 1, local, SOCK_DGRAM, deadline)) < 0)
        return r;
    if (remote && (r = corio_addr_resolve(&ra, 1, remote, SOCK_DGRAM, deadline)) < 0)
        return r;
    if (la.len && ra.len && la.ss.ss_family != ra.ss.ss_family)
        return -EAFNOSUPPORT;
    const corio_addr *fam = la.len ? &la : &ra;
    int fd = open_socket(fam->ss.ss_family, SOCK_DGRAM);
    if (fd < 0)
        return fd;
    r = dgram_opts(fd, fam, &o);
    if (r == 0 && la.len)
        r = sys_bind(&s_bind, fd, (const struct sockaddr *)&la.ss, la.len);
    if (r == 0 && ra.len) /* a datagram connect only records the peer */
        r = sys_connect(&s_connect, fd, (const struct sockaddr *)&ra.ss, ra.len);
    if (r < 0) {
        corio_close(fd);
        return r;
    }
    return fd;
}

/* The syscall said EAGAIN: wait for the direction, as io.c does. */
static int dgram_wait(corio_loop *loop, int fd, unsigned dir, int64_t deadline)
{
    int r = corio__fd_eagain_wait(loop, fd, dir, deadline);
    return r < 0 ? r : 0;
}

#define LOOP_OR_FAIL(loop)              \
    corio_loop *loop = corio__tls_loop; \
    if (corio_unlikely(!loop))          \
    return -CORIO_ENOTCO

ssize_t corio_dgram_sendto(int fd, const void *buf, size_t n, const corio_addr *to, int64_t deadline)
{
    SITE(s_sendto, "sendto");
    LOOP_OR_FAIL(loop);
    for (;;) {
        ssize_t r = sys_sendto(&s_sendto, fd, buf, n, MSG_NOSIGNAL,
                               to ? (const struct sockaddr *)&to->ss : NULL, to ? to->len : 0);
        if (r >= 0) {
            corio__budget(loop);
            return r;
        }
        if (r != -EINTR && (r != -EAGAIN || (r = dgram_wait(loop, fd, CORIO_WRITABLE, deadline)) < 0))
            return r;
    }
}

ssize_t corio_dgram_recvfrom(int fd, void *buf, size_t n, corio_addr *from, int64_t deadline)
{
    SITE(s_recvfrom, "recvfrom");
    LOOP_OR_FAIL(loop);
    for (;;) {
        socklen_t len = sizeof from->ss;
        ssize_t r = sys_recvfrom(&s_recvfrom, fd, buf, n, 0,
                                 from ? (struct sockaddr *)&from->ss : NULL, from ? &len : NULL);
        if (r >= 0) {
            if (from)
                from->len = len;
            corio__budget(loop);
            return r;
        }
        if (r != -EINTR && (r != -EAGAIN || (r = dgram_wait(loop, fd, CORIO_READABLE, deadline)) < 0))
            return r;
    }
}

/* Batches go to the kernel in slices of this many (on the stack). */
#define BATCH 64

static void batch_prepare(struct mmsghdr *mh, struct iovec *iov, corio_dgram_msg *m, unsigned n,
                          bool recv)
{
    memset(mh, 0, n * sizeof *mh);
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = m[i].buf;
        iov[i].iov_len = m[i].len;
        mh[i].msg_hdr.msg_iov = &iov[i];
        mh[i].msg_hdr.msg_iovlen = 1;
        if (m[i].addr) {
            mh[i].msg_hdr.msg_name = &m[i].addr->ss;
            mh[i].msg_hdr.msg_namelen = recv ? sizeof m[i].addr->ss : m[i].addr->len;
        }
    }
}

int corio_dgram_send_batch(int fd, corio_dgram_msg *msgs, unsigned n, int64_t deadline)
{
    SITE(s_send, "sendmmsg");
    LOOP_OR_FAIL(loop);
    struct mmsghdr mh[BATCH];
    struct iovec iov[BATCH];
    if (n == 0)
        return 0;
    n = n > BATCH ? BATCH : n;
    batch_prepare(mh, iov, msgs, n, false);
    for (;;) {
        int r = sys_sendmmsg(&s_send, fd, mh, n, MSG_NOSIGNAL);
        if (r > 0) {
            corio__budget(loop);
            return r;
        }
        if (r == 0)
            r = -EAGAIN;
        if (r != -EINTR && (r != -EAGAIN || (r = dgram_wait(loop, fd, CORIO_WRITABLE, deadline)) < 0))
            return r;
    }
}

int corio_dgram_recv_batch(int fd, corio_dgram_msg *msgs, unsigned n, int64_t deadline)
{
    SITE(s_recv, "recvmmsg");
    LOOP_OR_FAIL(loop);
    struct mmsghdr mh[BATCH];
    struct iovec iov[BATCH];
    if (n == 0)
        return 0;
    n = n > BATCH ? BATCH : n;
    batch_prepare(mh, iov, msgs, n, true);
    for (;;) {
        int r = sys_recvmmsg(&s_recv, fd, mh, n, 0);
        if (r > 0) {
            for (int i = 0; i < r; i++) {
                msgs[i].result = mh[i].msg_len;
                msgs[i].truncated = (mh[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
                if (msgs[i].addr)
                    msgs[i].addr->len = mh[i].msg_hdr.msg_namelen;
            }
            corio__budget(loop);
            return r;
        }
        if (r == 0)
            r = -EAGAIN;
        if (r != -EINTR && (r != -EAGAIN || (r = dgram_wait(loop, fd, CORIO_READABLE, deadline)) < 0))
            return r;
    }
}
