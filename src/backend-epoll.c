/* epoll backend, the Linux default.
 *
 * Each fd is added once, edge-triggered, for input, output and peer
 * half-close, the first time anything waits on it, and never modified
 * afterwards: the loop caches readiness per direction and a syscall that
 * returns EAGAIN clears it.  The steady state makes no epoll_ctl call.
 *
 * The event's 64-bit user data is the fd in the low half and the slot
 * generation in the high half, so an event for a closed fd whose number
 * has been reused in the same batch is recognised and dropped.
 *
 * Closing a registered fd does not EPOLL_CTL_DEL it: closing the last
 * reference removes it from the set, and if a dup or a forked child keeps
 * the file open its late events carry an old generation and are dropped.
 * That saves a syscall per connection. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>

#include "backend.h"

#define WAKE_TAG UINT64_MAX
#define EP_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* Events are handed to the loop EP_BATCH at a time.  A wait that returns
 * a thousand events would otherwise wake a thousand coroutines (touching
 * each one's fd slot and coroutine) before the first of them runs, and by
 * then the first ones' lines have left the cache: each would be missed
 * twice.  The rest of the batch waits in ev[] and goes out on the loop's
 * next passes without a syscall (loop->backlog says how many are left). */
#define EP_BATCH 64

struct ep {
    int epfd;
    int wakefd;
    bool no_pwait2; /* the kernel (or valgrind, or qemu-user) lacks it */
    int max;
    int next, count; /* ev[next .. count) are still to deliver */
    struct epoll_event ev[];
};

static int ep_ctl(int epfd, int op, int fd, struct epoll_event *e)
{
    /* Two sites, because only ADD allocates (ENOMEM, ENOSPC): MOD of a
     * registered fd cannot fail. */
    SITE(s_add, "epoll_ctl");
    SITE(s_mod, "epoll_ctl_mod");
    FAULT(op == EPOLL_CTL_ADD ? &s_add : &s_mod);
    int r = epoll_ctl(epfd, op, fd, e);
    return SYS_RESULT(r);
}

static int ep_init(corio_loop *loop)
{
    SITE(s_malloc, "malloc");
    SITE(s_create, "epoll_create1");
    SITE(s_eventfd, "eventfd");
    int err;
    struct ep *ep = corio__malloc(&s_malloc, sizeof *ep + loop->max_events * sizeof ep->ev[0]);
    if (!ep)
        return -ENOMEM;
    ep->max = (int)loop->max_events;
    ep->no_pwait2 = false;
    ep->next = ep->count = 0;
    if (corio__fault_on && (err = corio__fault(&s_create)) < 0)
        goto out_free;
    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ep->epfd < 0) {
        err = -errno;
        goto out_free;
    }
    if (corio__fault_on && (err = corio__fault(&s_eventfd)) < 0)
        goto out_close_epfd;
    ep->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep->wakefd < 0) {
        err = -errno;
        goto out_close_epfd;
    }
    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = WAKE_TAG};
    err = ep_ctl(ep->epfd, EPOLL_CTL_ADD, ep->wakefd, &e);
    if (err < 0)
        goto out_close_wakefd;
    loop->bed = ep;
    return 0;

out_close_wakefd:
    close(ep->wakefd);
out_close_epfd:
    close(ep->epfd);
out_free:
    corio__free(ep);
    return err;
}

static void ep_fini(corio_loop *loop)
{
    struct ep *ep = loop->bed;
    close(ep->wakefd);
    close(ep->epfd);
    corio__free(ep);
    loop->bed = NULL;
}

static int ep_watch(corio_loop *loop, int fd, struct corio_fdslot *s, unsigned want)
{
    struct ep *ep = loop->bed;
    (void)want;
    struct epoll_event e = {.events = EP_EVENTS, .data.u64 = (uint32_t)fd | (uint64_t)s->gen << 32};
    int r = ep_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &e);
    CORIO_STAT(loop->stats.sys[CORIO_SYSCALL_CTL]++);
    if (r == -EEXIST) /* a dup of a file we registered before */
        r = ep_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &e);
    if (r == 0)
        s->registered = 1;
    return r;
}

/* Modifying an fd makes epoll check its readiness again and queue an event
 * if it is ready: the level-triggered poke for watchers that want one. */
static int ep_rearm(corio_loop *loop, int fd, struct corio_fdslot *s)
{
    struct ep *ep = loop->bed;
    struct epoll_event e = {.events = EP_EVENTS, .data.u64 = (uint32_t)fd | (uint64_t)s->gen << 32};
    CORIO_STAT(loop->stats.sys[CORIO_SYSCALL_CTL]++);
    int r = ep_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &e);
    /* ENOENT: the fd was closed behind corio's back (plain close(2), as
     * Python sockets do) and its number reused: register the new file. */
    if (r == -ENOENT)
        r = ep_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &e);
    return r;
}

static void ep_forget(corio_loop *loop, int fd, struct corio_fdslot *s)
{
    (void)loop, (void)fd, (void)s;
}

/* epoll's bits as corio's, with shifts rather than a branch per bit: the
 * layouts line up (checked below), and this runs for every event. */
_Static_assert(EPOLLIN == CORIO_READABLE && EPOLLOUT >> 1 == CORIO_WRITABLE &&
                   EPOLLERR >> 1 == CORIO_ERROR && EPOLLHUP >> 1 == CORIO_HUP &&
                   EPOLLRDHUP >> 9 == CORIO_RDHUP,
               "epoll and corio event bits line up");
static unsigned ep_bits(uint32_t e)
{
    return (e & CORIO_READABLE) | ((e >> 1) & (CORIO_WRITABLE | CORIO_ERROR | CORIO_HUP)) |
           ((e >> 9) & CORIO_RDHUP);
}

static int ep_wait(struct ep *ep, int64_t timeout_ns)
{
    SITE(s_pwait2, "epoll_pwait2");
    SITE(s_wait, "epoll_wait");
#ifdef SYS_epoll_pwait2
    if (!ep->no_pwait2) {
        /* An injected failure takes the kernel's path: ENOSYS falls back. */
        int f = corio_unlikely(corio__fault_on) ? corio__fault(&s_pwait2) : 0;
        struct timespec ts, *tp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / CORIO_SEC);
            ts.tv_nsec = (long)(timeout_ns % CORIO_SEC);
            tp = &ts;
        }
        long n = f < 0 ? f : syscall(SYS_epoll_pwait2, ep->epfd, ep->ev, ep->max, tp, NULL, 0);
        if (n < 0 && f == 0)
            n = -errno;
        if (n != -ENOSYS)
            return (int)n;
        ep->no_pwait2 = true; /* before 5.11, and under valgrind or qemu-user */
    }
#endif
    FAULT(&s_wait);
    int ms = -1;
    if (timeout_ns >= 0) /* round up, so a timer is never polled for early */
        ms = timeout_ns > (int64_t)INT32_MAX * CORIO_MSEC ? INT32_MAX
                                                          : (int)((timeout_ns + CORIO_MSEC - 1) / CORIO_MSEC);
    int n = epoll_wait(ep->epfd, ep->ev, ep->max, ms);
    return n < 0 ? -errno : n;
}

static int ep_poll(corio_loop *loop, int64_t timeout_ns)
{
    struct ep *ep = loop->bed;
    int n = 0; /* what the kernel reported this time */
    if (ep->next == ep->count) {
        n = ep_wait(ep, timeout_ns);
        if (n < 0)
            return n == -EINTR ? 0 : n;
        ep->next = 0;
        ep->count = n;
    }
    int i = ep->next, end = ep->count - i > EP_BATCH ? i + EP_BATCH : ep->count;
    ep->next = end;
    loop->backlog = (unsigned)(ep->count - end);
    for (; i < end; i++) {
        uint64_t d = ep->ev[i].data.u64;
        if (d == WAKE_TAG) {
            uint64_t v;
            SITE(s_read, "read");
            (void)sys_read(&s_read, ep->wakefd, &v, sizeof v);
            corio__loop_drain_posted(loop);
            continue;
        }
        corio__fd_event(loop, (int)(uint32_t)d, (uint32_t)(d >> 32), ep_bits(ep->ev[i].events));
    }
    return n;
}

static int ep_wake(corio_loop *loop)
{
    struct ep *ep = loop->bed;
    uint64_t one = 1;
    SITE(s_write, "write");
    ssize_t r = sys_write(&s_write, ep->wakefd, &one, sizeof one);
    return r == -EAGAIN ? 0 : (int)(r < 0 ? r : 0); /* EAGAIN: already pending */
}

const struct corio_backend corio__backend_epoll = {
    .name = "epoll",
    .edge = true,
    .init = ep_init,
    .fini = ep_fini,
    .watch = ep_watch,
    .rearm = ep_rearm,
    .forget = ep_forget,
    .poll = ep_poll,
    .wake = ep_wake,
    .io = &corio__io_readiness,
};
