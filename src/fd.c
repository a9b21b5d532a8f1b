/* The fd table: per-fd waiters, generation numbers and cached readiness,
 * and the fd watchers of the callback level.
 *
 * Coroutines waiting on an fd are watchers too (edge-triggered ones whose
 * callback wakes the coroutine), so one dispatch path serves both levels. */
#include <string.h>

#include "backend.h"

struct corio_fdslot *corio__fd_slot_slow(corio_loop *loop, int fd, bool create)
{
    SITE(s_grow, "malloc");
    SITE(s_chunk, "malloc");
    if (fd < 0)
        return NULL;
    size_t c = (size_t)fd >> FD_CHUNK_SHIFT;
    if (corio_unlikely(c >= loop->nchunks)) {
        if (!create)
            return NULL;
        size_t n = c + 1 > loop->nchunks * 2 ? c + 1 : loop->nchunks * 2;
        struct corio_fdslot **t = corio__realloc(&s_grow, loop->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + loop->nchunks, 0, (n - loop->nchunks) * sizeof *t);
        loop->fds = t;
        loop->nchunks = n;
    }
    struct corio_fdslot *chunk = loop->fds[c];
    if (corio_unlikely(!chunk)) {
        if (!create)
            return NULL;
        chunk = corio__calloc(&s_chunk, FD_CHUNK, sizeof *chunk);
        if (!chunk)
            return NULL;
        for (unsigned i = 0; i < FD_CHUNK; i++) {
            list_init(&chunk[i].waiters);
            chunk[i].idx = -1;
        }
        loop->fds[c] = chunk;
    }
    return &chunk[(unsigned)fd & (FD_CHUNK - 1)];
}

/* Which of revents a watcher of `events` is told about: hang-ups and errors
 * concern both directions, a peer half-close concerns readers. */
static unsigned match(unsigned events, unsigned revents)
{
    unsigned m = 0;
    if (events & CORIO_READABLE)
        m |= revents & (CORIO_READABLE | CORIO_RDHUP | CORIO_HUP | CORIO_ERROR);
    if (events & CORIO_WRITABLE)
        m |= revents & (CORIO_WRITABLE | CORIO_HUP | CORIO_ERROR);
    return m;
}

/* What a level backend must poll for.  An edge watcher that has been told
 * of readiness is left out until an EAGAIN clears the cached bit: that is
 * how a level backend gives edge-triggered behaviour. */
static unsigned union_of_waiters(struct corio_fdslot *s)
{
    unsigned want = 0;
    for (corio_list *l = s->waiters.next; l != &s->waiters; l = l->next) {
        corio_watcher *w = corio_container_of(l, corio_watcher, link);
        want |= (w->flags & CORIO_WATCH_EDGE) ? w->events & ~(unsigned)s->ready : w->events;
    }
    if (s->parked == CORIO__PARK_WAITING) /* a parked connection waits for input */
        want |= CORIO_READABLE;
    return want & (CORIO_READABLE | CORIO_WRITABLE);
}

/* Tells the backend about a change in the waiters of fd.  With `poke`, the
 * cached readiness of `events` is dropped and the backend asked to report
 * the fd again if it is ready: how a level-triggered watcher starts. */
static int interest(corio_loop *loop, int fd, struct corio_fdslot *s, unsigned events, bool poke)
{
    const struct corio_backend *be = loop->be;
    if (poke)
        s->ready &= (uint8_t)~events;
    if (be->edge) {
        if (!s->registered)
            return be->watch(loop, fd, s, events);
        return poke ? be->rearm(loop, fd, s) : 0;
    }
    unsigned want = union_of_waiters(s);
    if (want == s->want && s->registered)
        return 0;
    int r = be->watch(loop, fd, s, want);
    if (r == 0)
        s->want = (uint8_t)want;
    return r;
}

int corio__fd_interest_slow(corio_loop *loop, int fd, struct corio_fdslot *s)
{
    return interest(loop, fd, s, CORIO_READABLE, false);
}

static void unlink_waiter(corio_loop *loop, struct corio_fdslot *s, corio_watcher *w)
{
    list_remove(&w->link);
    w->active = false;
    if (!loop->edge && s->registered)
        (void)interest(loop, w->fd, s, 0, false); /* only ever shrinks: cannot fail */
}

static inline void wake_co(corio_loop *loop, corio_watcher *w, unsigned revents);

/* Serves every watcher of s that events concern.  Callbacks may start,
 * stop or close anything, so after each one the scan restarts; `pass`
 * marks who has been served.  Fds have one or two watchers, so the
 * restarts cost nothing in practice.  Out of line, so that the fast path
 * of corio__fd_event() stays a leaf that saves no registers. */
static __attribute__((noinline)) void dispatch(corio_loop *loop, int fd, struct corio_fdslot *s,
                                               uint32_t gen, unsigned revents, uint32_t pass)
{
    unsigned level = 0;
again:
    for (corio_list *l = s->waiters.next; l != &s->waiters; l = l->next) {
        corio_watcher *w = corio_container_of(l, corio_watcher, link);
        if (w->pass == pass)
            continue;
        w->pass = pass;
        unsigned m = match(w->events, revents);
        if (!m)
            continue;
        w->fn(loop, w, m);
        if (s->gen != gen)
            return; /* closed by the callback */
        if (w->active && !(w->flags & CORIO_WATCH_EDGE))
            level |= w->events;
        goto again;
    }
    /* Level-triggered watchers that are still active must hear about the fd
     * again if it stays ready: drop the cached bits and re-arm.  A level
     * backend also recomputes what to poll for (edge watchers drop out). */
    if (level || !loop->edge)
        (void)interest(loop, fd, s, level, level != 0);
}

/* corio__fd_event() for a parked connection, or watchers to scan. */
static __attribute__((noinline)) void event_slow(corio_loop *loop, int fd, struct corio_fdslot *s,
                                                 uint32_t gen, unsigned revents, uint32_t pass)
{
    if (s->parked == CORIO__PARK_WAITING && (revents & CORIO__PARK_EVENTS))
        corio__park_ready(loop, s, revents);
    if (loop->edge && list_empty(&s->waiters))
        return; /* a parked connection's usual event: nothing else to tell */
    dispatch(loop, fd, s, gen, revents, pass);
}

/* Every exit from the fast path is a return or a tail call, so it saves no
 * registers: this runs once per event. */
void corio__fd_event(corio_loop *loop, int fd, uint32_t gen, unsigned revents)
{
    CORIO_STAT(loop->stats.events++);
    struct corio_fdslot *s = corio__fd_slot_find(loop, fd);
    if (corio_unlikely(!s || !s->registered || s->gen != gen)) {
        CORIO_STAT(loop->stats.stale++);
        return;
    }
    s->ready |= (uint8_t)revents;
    /* `pass` moves with every event: dispatch() uses it, and so does the
     * stream's drained test (stream.c). */
    uint32_t pass = ++loop->pass;
    corio_list *first = s->waiters.next;
    if (corio_likely(loop->edge && first->next == &s->waiters)) {
        /* None or one waiter on an edge backend, the steady state of a
         * connection: nothing to re-arm and no callback that could change
         * the list, so no scan.  An empty list keeps only the cached bits. */
        if (corio_likely(!s->parked)) {
            if (first == &s->waiters)
                return;
            corio_watcher *w = corio_container_of(first, corio_watcher, link);
            if (corio_likely(w->fn == corio__fd_wake_waiter)) {
                unsigned m = match(w->events, revents);
                if (m)
                    wake_co(loop, w, m);
                return;
            }
        } else if (first == &s->waiters) {
            /* A parked connection and nothing else waiting: its usual
             * event, handed on by a tail call (an output-only event wakes
             * nothing). */
            if (s->parked == CORIO__PARK_WAITING && (revents & CORIO__PARK_EVENTS))
                corio__park_ready(loop, s, revents);
            return;
        }
    }
    event_slow(loop, fd, s, gen, revents, pass);
}

static inline void eagain(corio_loop *loop, int fd, unsigned events)
{
    struct corio_fdslot *s = corio__fd_slot_find(loop, fd);
    if (!s || !(s->ready & events))
        return;
    s->ready &= (uint8_t)~events;
    if (!loop->edge && s->registered)
        (void)interest(loop, fd, s, 0, false);
}

void corio__fd_eagain(corio_loop *loop, int fd, unsigned events)
{
    eagain(loop, fd, events);
}

void corio_fd_drained(corio_loop *loop, int fd, unsigned events)
{
    eagain(loop, fd, events & (CORIO_READABLE | CORIO_WRITABLE));
}

void corio_watcher_init(corio_watcher *w, int fd, unsigned events, unsigned flags,
                        corio_watcher_fn fn, void *data)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->events = events & (CORIO_READABLE | CORIO_WRITABLE);
    w->flags = flags;
    w->fn = fn;
    w->data = data;
}

int corio_watcher_start(corio_loop *loop, corio_watcher *w)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (w->active)
        return -EEXIST;
    if (w->fd < 0)
        return -EBADF;
    struct corio_fdslot *s = corio__fd_slot(loop, w->fd, true);
    if (!s)
        return -ENOMEM;
    list_insert_tail(&s->waiters, &w->link);
    w->active = true;
    int r = interest(loop, w->fd, s, w->events, true);
    if (r < 0) {
        unlink_waiter(loop, s, w);
        return r;
    }
    loop->nwatchers++;
    if (!w->unref)
        loop->refs++;
    return 0;
}

void corio_watcher_stop(corio_loop *loop, corio_watcher *w)
{
    if (!w->active || !corio__loop_owned(loop))
        return;
    unlink_waiter(loop, corio__fd_slot(loop, w->fd, false), w);
    loop->nwatchers--;
    if (!w->unref)
        loop->refs--;
}

int corio_watcher_set(corio_loop *loop, corio_watcher *w, unsigned events)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    events &= CORIO_READABLE | CORIO_WRITABLE;
    if (!w->active) {
        w->events = events;
        return 0;
    }
    struct corio_fdslot *s = corio__fd_slot(loop, w->fd, false);
    unsigned old = w->events;
    w->events = events;
    int r = interest(loop, w->fd, s, events & ~old, (events & ~old) != 0);
    if (r < 0) {
        w->events = old;
        (void)interest(loop, w->fd, s, 0, false);
    }
    return r;
}

/* ---- Coroutines waiting on fds ---- */

/* Marks co, just woken by an event, for the readiness-to-resume latency
 * sample.  The time it was woken is read once the wait's events are all
 * delivered (poll_backend() in loop.c), as one clock read that the loop
 * often makes then anyway (timers armed, or a blocked-time sample); the
 * coroutine runs in the pass that follows, before the next wait. */
static inline void stamp(corio_loop *loop, corio_co *co)
{
    co->sampled = true;
    loop->stats.stamp_pending = true;
}

/* Takes w out of its fd's waiters and wakes its coroutine. */
static inline void wake_co(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    list_remove(&w->link);
    w->active = false;
    corio_co *co = w->data;
    if (co->state != CO_PARKED)
        return; /* woken already (a timeout in the same pass) */
    int result = (revents & CORIO_CLOSED) ? -CORIO_ECLOSED : (int)revents;
    corio__wake(co, result);
    /* Stamp 1 wakeup in 8 as the backend delivers it, for the
     * readiness-to-resume latency measured when the coroutine runs. */
    if (CORIO_STATS_ON && (loop->stats.resume_seq++ & CORIO_RESUME_SAMPLE_MASK) == 0 && result > 0)
        stamp(loop, co);
}

void corio__fd_wake_waiter(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    struct corio_fdslot *s = corio__fd_slot(loop, w->fd, false);
    wake_co(loop, w, revents);
    if (!loop->edge && s->registered)
        (void)interest(loop, w->fd, s, 0, false); /* as unlink_waiter() */
}

int corio__fd_waiter_added(corio_loop *loop, int fd, struct corio_fdslot *s, unsigned events)
{
    return interest(loop, fd, s, events, false);
}

void corio__fd_waiter_remove(corio_loop *loop, struct corio_fdslot *s, corio_watcher *w)
{
    unlink_waiter(loop, s, w);
}

int corio__fd_wait(corio_loop *loop, int fd, unsigned events, int64_t deadline)
{
    int r = corio__fd_cannot_wait(loop, deadline);
    if (r < 0)
        return r;
    struct corio_fdslot *s = corio__fd_slot(loop, fd, true);
    if (!s)
        return -ENOMEM;
    return corio__fd_wait_slot(loop, s, fd, events, deadline);
}

int corio__fd_eagain_wait(corio_loop *loop, int fd, unsigned events, int64_t deadline)
{
    int r = corio__fd_cannot_wait(loop, deadline);
    if (r < 0) {
        corio__fd_eagain(loop, fd, events);
        return r;
    }
    /* No separate eagain step: the wait drops the cached bits itself, and
     * on a level backend its interest() sees them dropped. */
    struct corio_fdslot *s = corio__fd_slot(loop, fd, true);
    if (!s)
        return -ENOMEM;
    return corio__fd_wait_slot(loop, s, fd, events, deadline);
}

static short poll_events(unsigned events)
{
    return (short)(((events & CORIO_READABLE) ? POLLIN : 0) | ((events & CORIO_WRITABLE) ? POLLOUT : 0));
}

static unsigned poll_bits(short re)
{
    return ((re & POLLIN) ? CORIO_READABLE : 0u) | ((re & POLLOUT) ? CORIO_WRITABLE : 0u) |
           ((re & POLLERR) ? CORIO_ERROR : 0u) | ((re & POLLHUP) ? CORIO_HUP : 0u);
}

int corio_wait_fd(int fd, unsigned events, int64_t deadline)
{
    SITE(s_poll, "poll");
    corio_loop *loop = corio__tls_loop;
    events &= CORIO_READABLE | CORIO_WRITABLE;
    if (!loop || !loop->cur)
        return -CORIO_ENOTCO;
    if (fd < 0)
        return -EBADF;
    if (events == 0)
        return -EINVAL;
    /* Cached readiness may be stale (the caller may have drained the fd
     * with plain read()), so a cached "ready" is confirmed by poll(2)
     * before it is believed.  Not cached: park until an edge. */
    struct corio_fdslot *s = corio__fd_slot(loop, fd, false);
    if (s && s->registered && (s->ready & events)) {
        struct pollfd p = {.fd = fd, .events = poll_events(events)};
        int r = sys_poll(&s_poll, &p, 1, 0);
        if (r < 0)
            return r;
        if (r > 0 && (p.revents & POLLNVAL))
            return -EBADF;
        if (r > 0)
            return (int)(poll_bits(p.revents) | (s->ready & CORIO_RDHUP));
    }
    return corio__fd_wait(loop, fd, events, deadline);
}

int corio_close(int fd)
{
    SITE(s_close, "close");
    corio_loop *loop = corio__tls_loop;
    struct corio_fdslot *s = loop ? corio__fd_slot(loop, fd, false) : NULL;
    if (s) {
        s->gen++; /* events already queued for fd are now stale */
        if (s->parked)
            corio__park_closed(loop, s);
        if (s->registered)
            loop->be->forget(loop, fd, s);
        s->registered = 0;
        s->ready = 0;
        s->want = 0;
        s->idx = -1;
        while (!list_empty(&s->waiters)) {
            corio_watcher *w = corio_container_of(s->waiters.next, corio_watcher, link);
            if (w->fn == corio__fd_wake_waiter) {
                corio__fd_wake_waiter(loop, w, CORIO_CLOSED);
                continue;
            }
            list_remove(&w->link);
            w->active = false;
            loop->nwatchers--;
            if (!w->unref)
                loop->refs--;
            w->fn(loop, w, CORIO_CLOSED);
        }
    }
    /* Linux has closed fd even when close(2) says EINTR: reporting it
     * would invite a retry that closes whatever reused the number. */
    int r = sys_close(&s_close, fd);
    return r == -EINTR ? 0 : r;
}

int corio_fd_nonblock(int fd)
{
    SITE(s_getfl, "fcntl");
    SITE(s_setfl, "fcntl");
    SITE(s_setfd, "fcntl");
    int fl = sys_fcntl(&s_getfl, fd, F_GETFL, 0);
    if (fl < 0)
        return fl;
    if (!(fl & O_NONBLOCK)) {
        int r = sys_fcntl(&s_setfl, fd, F_SETFL, fl | O_NONBLOCK);
        if (r < 0)
            return r;
    }
    int r = sys_fcntl(&s_setfd, fd, F_SETFD, FD_CLOEXEC);
    return r < 0 ? r : 0;
}
