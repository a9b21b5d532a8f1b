/* poll(2) backend: the portable fallback, and a cross-check of the epoll
 * backend, since the whole suite runs on both.
 *
 * poll is level-triggered, so the array holds exactly what the fds'
 * waiters want; an fd nobody waits on is not in it.  Entry 0 is the wake
 * descriptor.  Events are first copied out, then delivered, because a
 * delivery may change the array.  Each wait is O(fds watched): fine for a
 * fallback, and the reason epoll is the default. */
#include <poll.h>
#include <time.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "backend.h"

struct pready {
    int fd;
    uint32_t gen;
    unsigned bits;
};

struct pl {
    struct pollfd *pfd;
    uint32_t *gen;       /* generation of each entry's fd */
    struct pready *out;  /* events copied out of pfd before delivery */
    size_t n, cap;
    int wake_rd, wake_wr; /* the same eventfd twice, or a pipe */
};

static int pl_grow(struct pl *p)
{
    SITE(s_realloc, "malloc");
    size_t cap = p->cap ? p->cap * 2 : 64;
    struct pollfd *pfd = corio__realloc(&s_realloc, p->pfd, cap * sizeof *pfd);
    if (!pfd)
        return -ENOMEM;
    p->pfd = pfd;
    uint32_t *gen = corio__realloc(&s_realloc, p->gen, cap * sizeof *gen);
    if (!gen)
        return -ENOMEM;
    p->gen = gen;
    struct pready *out = corio__realloc(&s_realloc, p->out, cap * sizeof *out);
    if (!out)
        return -ENOMEM;
    p->out = out;
    p->cap = cap;
    return 0;
}

static int pl_wake_open(struct pl *p)
{
    SITE(s_open, "eventfd");
    FAULT(&s_open);
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    p->wake_rd = p->wake_wr = fd;
#else
    int fds[2];
    if (pipe(fds) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    p->wake_rd = fds[0];
    p->wake_wr = fds[1];
#endif
    return 0;
}

static void pl_free(struct pl *p)
{
    corio__free(p->pfd);
    corio__free(p->gen);
    corio__free(p->out);
    corio__free(p);
}

static int pl_init(corio_loop *loop)
{
    SITE(s_malloc, "malloc");
    struct pl *p = corio__calloc(&s_malloc, 1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int err = pl_grow(p);
    if (err == 0)
        err = pl_wake_open(p);
    if (err < 0) {
        pl_free(p);
        return err;
    }
    p->pfd[0] = (struct pollfd){.fd = p->wake_rd, .events = POLLIN};
    p->n = 1;
    loop->bed = p;
    return 0;
}

static void pl_fini(corio_loop *loop)
{
    struct pl *p = loop->bed;
    close(p->wake_rd);
    if (p->wake_wr != p->wake_rd)
        close(p->wake_wr);
    pl_free(p);
    loop->bed = NULL;
}

static short pl_events(unsigned want)
{
    short e = 0;
    if (want & CORIO_READABLE) {
        e |= POLLIN;
#ifdef POLLRDHUP
        e |= POLLRDHUP;
#endif
    }
    if (want & CORIO_WRITABLE)
        e |= POLLOUT;
    return e;
}

static void pl_remove(corio_loop *loop, struct pl *p, struct corio_fdslot *s)
{
    size_t i = (size_t)s->idx, last = p->n - 1;
    if (i != last) {
        p->pfd[i] = p->pfd[last];
        p->gen[i] = p->gen[last];
        corio__fd_slot(loop, p->pfd[i].fd, false)->idx = (int32_t)i;
    }
    p->n--;
    s->idx = -1;
}

static int pl_watch(corio_loop *loop, int fd, struct corio_fdslot *s, unsigned want)
{
    struct pl *p = loop->bed;
    if (!s->registered) {
        s->registered = 1;
        s->idx = -1;
    }
    if (want == 0) {
        if (s->idx >= 0)
            pl_remove(loop, p, s);
        return 0;
    }
    if (s->idx < 0) {
        if (p->n == p->cap) {
            int err = pl_grow(p);
            if (err < 0)
                return err;
        }
        s->idx = (int32_t)p->n++;
    }
    p->pfd[s->idx] = (struct pollfd){.fd = fd, .events = pl_events(want)};
    p->gen[s->idx] = s->gen;
    return 0;
}

/* poll reports whatever is ready at each call: nothing to re-arm. */
static int pl_rearm(corio_loop *loop, int fd, struct corio_fdslot *s)
{
    (void)loop, (void)fd, (void)s;
    return 0;
}

static void pl_forget(corio_loop *loop, int fd, struct corio_fdslot *s)
{
    (void)fd;
    if (s->registered && s->idx >= 0)
        pl_remove(loop, loop->bed, s);
}

static unsigned pl_bits(short re)
{
    unsigned b = 0;
    if (re & POLLIN)
        b |= CORIO_READABLE;
    if (re & POLLOUT)
        b |= CORIO_WRITABLE;
    if (re & POLLERR)
        b |= CORIO_ERROR;
    if (re & POLLHUP)
        b |= CORIO_HUP;
#ifdef POLLRDHUP
    if (re & POLLRDHUP)
        b |= CORIO_RDHUP;
#endif
    return b;
}

static int pl_wait(struct pl *p, int64_t timeout_ns)
{
    SITE(s_poll, "ppoll");
    FAULT(&s_poll);
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / CORIO_SEC);
        ts.tv_nsec = (long)(timeout_ns % CORIO_SEC);
        tp = &ts;
    }
    int n = ppoll(p->pfd, p->n, tp, NULL);
#else
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + CORIO_MSEC - 1) / CORIO_MSEC);
    int n = poll(p->pfd, p->n, ms);
#endif
    return n < 0 ? -errno : n;
}

static int pl_poll(corio_loop *loop, int64_t timeout_ns)
{
    struct pl *p = loop->bed;
    int n = pl_wait(p, timeout_ns);
    if (n < 0)
        return n == -EINTR ? 0 : n;
    if (n == 0)
        return 0;
    size_t nout = 0;
    bool woken = false;
    for (size_t i = 0; i < p->n && (int)nout < n; i++) {
        if (!p->pfd[i].revents)
            continue;
        if (i == 0) {
            woken = true;
            n--;
            continue;
        }
        p->out[nout++] = (struct pready){p->pfd[i].fd, p->gen[i], pl_bits(p->pfd[i].revents)};
    }
    if (woken) {
        char buf[64];
        SITE(s_read, "read");
        while (sys_read(&s_read, p->wake_rd, buf, sizeof buf) > 0)
            ;
        corio__loop_drain_posted(loop);
    }
    for (size_t i = 0; i < nout; i++)
        corio__fd_event(loop, p->out[i].fd, p->out[i].gen, p->out[i].bits);
    return (int)nout + woken;
}

static int pl_wake(corio_loop *loop)
{
    struct pl *p = loop->bed;
    uint64_t one = 1;
    SITE(s_write, "write");
    ssize_t r = sys_write(&s_write, p->wake_wr, &one, p->wake_wr == p->wake_rd ? 8 : 1);
    return r == -EAGAIN ? 0 : (int)(r < 0 ? r : 0);
}

const struct corio_backend corio__backend_poll = {
    .name = "poll",
    .edge = false,
    .init = pl_init,
    .fini = pl_fini,
    .watch = pl_watch,
    .rearm = pl_rearm,
    .forget = pl_forget,
    .poll = pl_poll,
    .wake = pl_wake,
    .io = &corio__io_readiness,
};
