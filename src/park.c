/* Parked connections: stackful while active, stackless while idle.
 *
 * A handler that has answered a request and found no more input parks the
 * fd and returns; its coroutine ends and its stack goes back to the pool.
 * While parked the connection costs, in user space:
 *
 *   the fd slot (struct corio_fdslot)             32 bytes, as any fd has
 *   a park record (struct rec, in a slab)         32 bytes
 *   ----------------------------------------------------
 *                                                 64 bytes, plus the data
 *                                                 the caller chose to keep
 *
 * No coroutine, no stack, no buffer, no malloc header (records come from
 * 32 KiB slab chunks) and no corio_timer (56 bytes): idle deadlines are
 * coarse (CORIO_PARK_GRAIN, 33.6 ms), so they live in a hashed timing
 * wheel of 2048 buckets (68.7 s per turn) driven by one loop timer, and a
 * record only carries its deadline as a 32-bit grain count.  The slot
 * points at its record with a 32-bit index kept in what was the slot's
 * padding, so the slot did not grow.
 *
 * When the fd wakes (input, hang-up, deadline, close) the record moves to a
 * run queue, still without a stack.  Worker coroutines take records off
 * the queue and run the user's function; a worker that finishes one takes
 * the next on the same stack, and another worker starts only when every
 * running one is blocked inside a function (pump()), up to max_active.  A
 * burst of 100,000 wakeups therefore needs as many stacks as handlers
 * block at once, not 100,000 (which would also hit vm.max_map_count: a
 * guard-paged stack costs two VMAs).
 *
 * Record states, with the slot's `parked` byte:
 *   WAITING  in a wheel bucket, or (no deadline) in no list at all; the
 *            slot points at it
 *   QUEUED   in the run queue with its reason; the slot still points at it,
 *            so that corio_close() and corio_unpark() can find it
 *   (free)   once a worker has copied it out, or after corio_unpark()
 *            (fn NULL; one unparked while queued stays in the queue,
 *            skipped, until a worker reaches it)
 *
 * The wake/re-park cycle of a busy keep-alive connection is the hot path:
 * an fd event, a wake, a worker taking the record, fn, and corio_park()
 * again.  So records without a deadline are on no list (corio_park_shutdown
 * finds them by a walk over the slab: rare, and O(records)), the run queue
 * is singly linked (a pop touches only the record popped, and unparking a
 * queued record leaves a tombstone instead of needing a back link), each
 * step looks its record up once (records never move, so a pointer stays
 * good while the index is the only thing stored), and the usual wake and
 * re-park call nothing: what may call out (the wheel's timer, a worker to
 * start) is a tail call, or the slow path.  Measured with cachegrind per message of the echo benchmark
 * at 1,000 parked connections, park.c went from ~380 instructions to ~180
 * (~250 with the idle deadlines of corio-http). */
#include <poll.h>
#include <string.h>

#include "backend.h"

#define REC_SHIFT 10 /* records per slab chunk: 1024 x 32 B = 32 KiB */
#define REC_CHUNK (1u << REC_SHIFT)
#define RING_BITS 11
#define RING (1u << RING_BITS)
#define GRAIN_SHIFT 25
#define NONE 0u            /* record indices are 1-based: 0 is "no record" */
#define NO_TICK UINT32_MAX /* parked without a deadline */

_Static_assert(CORIO_PARK_GRAIN == 1LL << GRAIN_SHIFT, "grain");

/* One parked connection: 32 bytes on LP64. */
struct rec {
    uint32_t next, prev; /* wheel bucket (both); run queue or free list (next) */
    int32_t fd;
    union {
        uint32_t tick; /* WAITING: deadline in grains since the epoch, or NO_TICK */
        int32_t reason; /* QUEUED: what fn will be told */
    } u;
    corio_park_fn fn;
    void *data;
};

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct rec) == 32, "a park record is 32 bytes");
_Static_assert(sizeof(struct corio_fdslot) == 32, "parking did not grow the fd slot");
#endif

/* The fields of the wake/re-park cycle come first. */
struct corio_parks {
    struct rec **chunks;  /* slab chunks of REC_CHUNK records; they never move */
    uint32_t free;        /* free list through rec.next */
    uint32_t q_head;      /* run queue, through rec.next; tombstones (fn NULL) */
    struct rec *q_tail;   /* included, are counted in `queued` only while live */
    size_t parked, queued, active;
    size_t starting;      /* workers spawned that have not taken a record yet */
    unsigned max_active;
    bool watch_queued;
    bool kick_queued;
    bool shutdown;
    uint32_t sample;      /* stats: the record whose wakeup is being timed, or NONE */
    int64_t sample_at;    /* stats: when its fd was reported ready */
    uint64_t woken, timeouts;
    uint32_t nchunks;
    uint32_t done;        /* last grain whose bucket was processed */
    uint32_t armed;       /* grain the timer is armed for, or NO_TICK */
    int64_t epoch;        /* grain 0 */
    size_t in_ring;       /* records in the wheel */
    size_t stack_size;
    corio_timer timer;
    corio_callback kick;  /* deferred -ENOMEM fallback */
    corio_callback watch; /* runs when a worker switched out with records queued */
    uint64_t occupied[RING / 64];
    uint32_t head[RING];
};

static void ring_fire(corio_loop *loop, corio_timer *t);
static void kick(corio_loop *loop, corio_callback *cb);
static void watch(corio_loop *loop, corio_callback *cb);

static struct rec *rec_at(struct corio_parks *P, uint32_t idx)
{
    uint32_t i = idx - 1;
    return &P->chunks[i >> REC_SHIFT][i & (REC_CHUNK - 1)];
}

static struct corio_parks *parks_get(corio_loop *loop)
{
    SITE(s_malloc, "malloc");
    if (corio_likely(loop->parks != NULL))
        return loop->parks;
    struct corio_parks *P = corio__calloc(&s_malloc, 1, sizeof *P);
    if (!P)
        return NULL;
    P->epoch = loop->now;
    P->armed = NO_TICK;
    P->max_active = 8192;
    corio_timer_init(&P->timer, ring_fire, P);
    P->timer.unref = 1; /* the records hold the loop's refs */
    P->kick.fn = kick;
    P->kick.data = P;
    P->watch.fn = watch;
    P->watch.data = P;
    loop->parks = P;
    return P;
}

void corio__park_fini(corio_loop *loop)
{
    struct corio_parks *P = loop->parks;
    if (!P)
        return;
    CORIO_ASSERT(P->parked == 0 && P->queued == 0 && P->active == 0 && !P->kick_queued &&
                 !P->watch_queued);
    if (P->timer.state)
        corio_timer_stop(loop, &P->timer);
    for (uint32_t c = 0; c < P->nchunks; c++)
        corio__free(P->chunks[c]);
    corio__free(P->chunks);
    corio__free(P);
    loop->parks = NULL;
}

/* ---- The slab ---- */

static __attribute__((noinline)) bool slab_grow(struct corio_parks *P)
{
    SITE(s_table, "malloc");
    SITE(s_chunk, "malloc");
    if (P->nchunks >= (UINT32_MAX >> REC_SHIFT) - 1)
        return false;
    struct rec **t = corio__realloc(&s_table, P->chunks, (P->nchunks + 1) * sizeof *t);
    if (!t)
        return false;
    P->chunks = t;
    struct rec *c = corio__malloc(&s_chunk, REC_CHUNK * sizeof *c);
    if (!c)
        return false;
    uint32_t base = P->nchunks * REC_CHUNK;
    P->chunks[P->nchunks++] = c;
    for (uint32_t i = REC_CHUNK; i-- > 0;) {
        c[i].fn = NULL;
        c[i].next = P->free;
        P->free = base + i + 1;
    }
    return true;
}

/* A free record: its index, NONE when memory ran out; *out points at it. */
static inline uint32_t rec_alloc(struct corio_parks *P, struct rec **out)
{
    if (corio_unlikely(P->free == NONE) && !slab_grow(P))
        return NONE;
    uint32_t idx = P->free;
    struct rec *r = rec_at(P, idx);
    P->free = r->next;
    *out = r;
    return idx;
}

/* fn NULL marks it free, for corio_park_shutdown()'s walk. */
static inline void rec_free(struct corio_parks *P, uint32_t idx, struct rec *r)
{
    r->fn = NULL;
    r->next = P->free;
    P->free = idx;
}

/* ---- The wheel of idle deadlines: buckets are doubly linked lists ---- */

static uint32_t grain_now(const struct corio_parks *P, int64_t now)
{
    int64_t g = (now - P->epoch) >> GRAIN_SHIFT;
    return g >= (int64_t)NO_TICK - 1 ? NO_TICK - 1 : (uint32_t)g;
}

/* Deadline rounded up to a grain, so a park never times out early. */
static uint32_t grain_of(const struct corio_parks *P, int64_t deadline)
{
    if (deadline == CORIO_FOREVER)
        return NO_TICK;
    int64_t d = deadline - P->epoch;
    if (d >= ((int64_t)NO_TICK - 1) << GRAIN_SHIFT)
        return NO_TICK; /* over four years away: as good as never */
    return (uint32_t)((d + CORIO_PARK_GRAIN - 1) >> GRAIN_SHIFT);
}

/* The first grain after `done` at which bucket b comes round. */
static uint32_t next_visit(const struct corio_parks *P, uint32_t b)
{
    return P->done + 1 + ((b - (P->done + 1)) & (RING - 1));
}

static void arm_at(corio_loop *loop, struct corio_parks *P, uint32_t g)
{
    P->armed = g;
    corio_timer_start(loop, &P->timer, P->epoch + ((int64_t)g << GRAIN_SHIFT));
}

/* Arms the timer for the first non-empty bucket after `done`. */
static void ring_arm(corio_loop *loop, struct corio_parks *P)
{
    if (P->in_ring == 0) {
        P->armed = NO_TICK;
        corio_timer_stop(loop, &P->timer);
        return;
    }
    uint32_t start = (P->done + 1) & (RING - 1);
    for (uint32_t k = 0; k <= RING / 64; k++) {
        uint32_t w = ((start >> 6) + k) & (RING / 64 - 1);
        uint64_t bits = P->occupied[w];
        if (k == 0)
            bits &= ~(uint64_t)0 << (start & 63);
        if (k == RING / 64 && (start & 63))
            bits &= ((uint64_t)1 << (start & 63)) - 1;
        if (bits) {
            uint32_t b = w * 64 + (uint32_t)__builtin_ctzll(bits);
            uint32_t g = next_visit(P, b);
            if (g != P->armed)
                arm_at(loop, P, g);
            return;
        }
    }
    CORIO_ASSERT(!"the wheel counts records but has no bucket");
}

/* Links r (index idx) into the bucket of its tick, which is after `done`. */
static inline void ring_link(struct corio_parks *P, uint32_t idx, struct rec *r)
{
    uint32_t b = r->u.tick & (RING - 1);
    uint32_t h = P->head[b];
    r->prev = NONE;
    r->next = h;
    if (h != NONE)
        rec_at(P, h)->prev = idx;
    else
        P->occupied[b >> 6] |= (uint64_t)1 << (b & 63);
    P->head[b] = idx;
    P->in_ring++;
}

/* Puts r (index idx, with a deadline) in its bucket, arming the timer if
 * that bucket comes round first. */
static void ring_insert(corio_loop *loop, struct corio_parks *P, uint32_t idx, struct rec *r)
{
    if (P->in_ring == 0)
        P->done = grain_now(P, loop->now); /* nothing pending: catch up */
    if (r->u.tick <= P->done)
        r->u.tick = P->done + 1;
    ring_link(P, idx, r);
    uint32_t g = next_visit(P, r->u.tick & (RING - 1));
    if (P->armed == NO_TICK || g < P->armed)
        arm_at(loop, P, g);
}

/* True if a record due at grain tick can join the wheel with no more than
 * ring_link(): the wheel is busy, the tick is ahead, and its bucket comes
 * round no earlier than the one the timer is armed for. */
static inline bool ring_links_only(const struct corio_parks *P, uint32_t tick)
{
    return P->in_ring && tick > P->done && P->armed != NO_TICK &&
           next_visit(P, tick & (RING - 1)) >= P->armed;
}

/* Takes r (with a deadline) out of its bucket; the caller sees to an empty
 * wheel (ring_remove() and wake()). */
static inline void ring_unlink(struct corio_parks *P, struct rec *r)
{
    if (r->prev != NONE) {
        rec_at(P, r->prev)->next = r->next;
    } else {
        uint32_t b = r->u.tick & (RING - 1);
        P->head[b] = r->next;
        if (r->next == NONE)
            P->occupied[b >> 6] &= ~((uint64_t)1 << (b & 63));
    }
    if (r->next != NONE)
        rec_at(P, r->next)->prev = r->prev;
    P->in_ring--;
}

/* The wheel has emptied: its timer stops. */
static void ring_emptied(corio_loop *loop, struct corio_parks *P)
{
    P->armed = NO_TICK;
    corio_timer_stop(loop, &P->timer);
}

static void ring_remove(corio_loop *loop, struct corio_parks *P, struct rec *r)
{
    ring_unlink(P, r);
    if (P->in_ring == 0)
        ring_emptied(loop, P);
}

/* ---- Waking: from WAITING to the run queue, and the workers ---- */

static void *worker(void *arg);

static bool spawn_worker(corio_loop *loop, struct corio_parks *P)
{
    if (corio_spawn(loop, NULL, worker, loop, P->stack_size) < 0)
        return false;
    P->active++;
    P->starting++;
    return true;
}

/* Workers start lazily.  A worker takes queued records one after another
 * on the same stack, so a burst of wakeups whose handlers do not block
 * costs one stack, not one per wakeup: the pages a stack has touched stay
 * resident while it waits in the pool, and at 100,000 connections a few
 * hundred such stacks would outweigh every parked record.  So another
 * worker starts only when no worker is about to take the queue's head:
 * the queue filled outside a worker (then at once), or a worker's fn
 * switched out, parked on a slow peer or yielding, with records still
 * queued.  The `watch` callback, queued behind the running worker, runs
 * exactly then. */
static void pump_slow(corio_loop *loop, struct corio_parks *P)
{
    corio_co *cur = loop->cur;
    if (cur && cur->fn == worker) { /* it takes the head next, unless its fn blocks */
        if (!P->watch_queued) {
            P->watch_queued = true;
            corio_call_soon(loop, &P->watch);
        }
        return;
    }
    if (!spawn_worker(loop, P) && P->active == 0 && !P->kick_queued) {
        P->kick_queued = true; /* nobody will drain the queue */
        corio_call_soon(loop, &P->kick);
    }
}

/* Inline: it runs at every wake, and nearly always finds the queue empty
 * or a worker starting. */
static inline bool pump_wanted(const struct corio_parks *P)
{
    return P->queued > 0 && P->starting == 0 && P->active < P->max_active;
}

static inline void pump(corio_loop *loop, struct corio_parks *P)
{
    if (pump_wanted(P))
        pump_slow(loop, P);
}

/* The end of a wake that has to call out: the wheel emptied, or a worker
 * is wanted. */
static __attribute__((noinline)) void wake_tail(corio_loop *loop, struct corio_parks *P)
{
    if (P->in_ring == 0 && P->armed != NO_TICK)
        ring_emptied(loop, P);
    pump(loop, P);
}

static void watch(corio_loop *loop, corio_callback *cb)
{
    struct corio_parks *P = cb->data;
    P->watch_queued = false;
    pump(loop, P);
}

/* Stats: starts timing the wakeup of record idx.  Its time is the end of
 * the wait delivering it, read once for every sample of that wait
 * (corio__park_stamp(), from the loop). */
static inline void sample_start(corio_loop *loop, struct corio_parks *P, uint32_t idx)
{
    P->sample = idx;
    P->sample_at = 0;
    loop->stats.stamp_pending = true;
}

void corio__park_stamp(corio_loop *loop)
{
    struct corio_parks *P = loop->parks;
    if (P->sample != NONE && P->sample_at == 0)
        P->sample_at = loop->stats.stamp_at;
}

/* Moves the WAITING record of slot s to the run queue.  Inline into the fd
 * event's path (corio__park_ready); wake_out() is the copy for the rest.
 * event: woken by an event that a wait is delivering (the only wakeups
 * the resume latency samples). */
static inline __attribute__((always_inline)) void wake(corio_loop *loop, struct corio_parks *P,
                                                      struct corio_fdslot *s, int reason, bool event)
{
    uint32_t idx = s->park;
    struct rec *r = rec_at(P, idx);
    if (r->u.tick != NO_TICK)
        ring_unlink(P, r); /* an emptied wheel is seen to in wake_tail() */
    r->u.reason = reason;
    r->next = NONE;
    if (P->q_tail)
        P->q_tail->next = idx;
    else
        P->q_head = idx;
    P->q_tail = r;
    s->parked = CORIO__PARK_QUEUED;
    P->parked--;
    P->queued++;
    /* Readiness-to-resume latency (corio_stats): one wakeup at a time is
     * timed, about 1 in 8, as for coroutines waiting in fd.c. */
    CORIO_STAT(if (event && P->sample == NONE &&
                   (loop->stats.resume_seq++ & CORIO_RESUME_SAMPLE_MASK) == 0)
                   sample_start(loop, P, idx));
    /* What may call out comes last, as one tail call: the rest saves no
     * registers. */
    if (corio_unlikely((P->in_ring == 0 && P->armed != NO_TICK) || pump_wanted(P)))
        wake_tail(loop, P);
}

static __attribute__((noinline)) void wake_out(corio_loop *loop, struct corio_parks *P,
                                               struct corio_fdslot *s, int reason)
{
    wake(loop, P, s, reason, false);
}

/* Stats: the sampled wakeup's fn is about to run. */
static __attribute__((noinline)) void sample_end(corio_loop *loop, struct corio_parks *P)
{
    if (P->sample_at == 0) { /* woken outside a wait's delivery (corio_park's own poll) */
        P->sample = NONE;
        return;
    }
    int64_t lat = corio_now() - P->sample_at;
    corio__hist_add(&loop->stats.resume_ns, lat > 0 ? (uint64_t)lat : 0);
    P->sample = NONE;
}

/* Takes the first live record off the run queue (there is one: `queued`
 * > 0), freeing the tombstones before it: detaches it from its slot, frees
 * it, and returns a copy.  The park's reference on the loop goes with it. */
static inline __attribute__((always_inline)) struct rec take(corio_loop *loop, struct corio_parks *P)
{
    uint32_t idx;
    struct rec *rp;
    for (;;) {
        idx = P->q_head;
        rp = rec_at(P, idx);
        P->q_head = rp->next;
        if (rp->next == NONE)
            P->q_tail = NULL;
        if (corio_likely(rp->fn != NULL))
            break;
        rec_free(P, idx, rp); /* unparked while queued */
    }
    struct rec r = *rp;
    P->queued--;
    CORIO_STAT(if (idx == P->sample) sample_end(loop, P));
    struct corio_fdslot *s = corio__fd_slot_find(loop, r.fd);
    if (s && s->park == idx) { /* not closed meanwhile */
        s->parked = CORIO__PARK_NONE;
        s->park = NONE;
    }
    rec_free(P, idx, rp);
    P->woken++;
    if (r.u.reason == -ETIMEDOUT)
        P->timeouts++;
    loop->refs--;
    return r;
}

static void *worker(void *arg)
{
    corio_loop *loop = arg;
    struct corio_parks *P = loop->parks;
    corio_co *self = loop->cur;
    P->starting--;
    while (P->queued > 0) {
        struct rec r = take(loop, P);
        if (!P->watch_queued) /* else pump() would find it queued */
            pump(loop, P);    /* more queued: have them watched while fn runs */
        r.fn(r.fd, r.data, r.u.reason);
        if (self->cancelled)
            break; /* cancellation is sticky: a fresh worker goes on */
    }
    P->active--;
    pump(loop, P);
    return NULL;
}

/* No coroutine could be started and none is running: each queued fn runs
 * on the loop's stack with -ENOMEM, so that connections are released
 * rather than stranded.  A worker is tried first, in case memory is back. */
static void kick(corio_loop *loop, corio_callback *cb)
{
    struct corio_parks *P = cb->data;
    P->kick_queued = false;
    while (P->queued > 0 && P->active == 0) {
        if (spawn_worker(loop, P))
            return;
        struct rec r = take(loop, P);
        r.fn(r.fd, r.data, -ENOMEM);
    }
}

void corio__park_ready(corio_loop *loop, struct corio_fdslot *s, unsigned revents)
{
    wake(loop, loop->parks, s, (int)(revents & CORIO__PARK_EVENTS), true);
}

void corio__park_closed(corio_loop *loop, struct corio_fdslot *s)
{
    struct corio_parks *P = loop->parks;
    if (s->parked == CORIO__PARK_WAITING)
        wake_out(loop, P, s, -CORIO_ECLOSED);
    else
        rec_at(P, s->park)->u.reason = -CORIO_ECLOSED;
    s->parked = CORIO__PARK_NONE; /* the fd number is free for reuse */
    s->park = NONE;
}

static void ring_fire(corio_loop *loop, corio_timer *t)
{
    struct corio_parks *P = t->data;
    P->armed = NO_TICK;
    uint32_t now = grain_now(P, loop->now);
    uint32_t n = now - P->done < RING ? now - P->done : RING;
    for (uint32_t k = 1; k <= n; k++) {
        uint32_t b = (P->done + k) & (RING - 1);
        uint32_t idx = P->head[b];
        while (idx != NONE) {
            struct rec *r = rec_at(P, idx);
            uint32_t next = r->next;
            if (r->u.tick <= now)
                wake_out(loop, P, corio__fd_slot_find(loop, r->fd), -ETIMEDOUT);
            idx = next;
        }
    }
    P->done = now;
    if (P->in_ring)
        ring_arm(loop, P);
}

/* ---- The API ---- */

/* Cached readiness may be stale (input drained without corio seeing
 * EAGAIN), so it is confirmed before it wakes anything. */
static unsigned ready_now(int fd)
{
    SITE(s_poll, "poll");
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int r = sys_poll(&s_poll, &p, 1, 0);
    if (r < 0)
        return CORIO_ERROR; /* let the handler find out */
    if (r == 0)
        return 0;
    return ((p.revents & POLLIN) ? CORIO_READABLE : 0u) | ((p.revents & POLLRDHUP) ? CORIO_RDHUP : 0u) |
           ((p.revents & POLLHUP) ? CORIO_HUP : 0u) | ((p.revents & (POLLERR | POLLNVAL)) ? CORIO_ERROR : 0u);
}

/* Fills a free record for fd and points slot s at it. */
static inline void rec_fill(struct corio_fdslot *s, uint32_t idx, struct rec *r, int fd,
                            corio_park_fn fn, void *data, uint32_t tick)
{
    r->fd = fd;
    r->fn = fn;
    r->data = data;
    r->u.tick = tick;
    s->park = idx;
    s->parked = CORIO__PARK_WAITING;
}

static __attribute__((noinline)) int park_slow(corio_loop *loop, int fd, corio_park_fn fn, void *data,
                                               int64_t deadline)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (fd < 0)
        return -EBADF;
    if (!fn)
        return -EINVAL;
    if (deadline <= loop->now) /* CORIO_NOWAIT (0) included */
        return deadline == CORIO_NOWAIT ? -EAGAIN : -ETIMEDOUT;
    struct corio_parks *P = parks_get(loop);
    if (!P)
        return -ENOMEM;
    if (P->shutdown)
        return -ECANCELED;
    struct corio_fdslot *s = corio__fd_slot(loop, fd, true);
    if (!s)
        return -ENOMEM;
    if (s->parked)
        return -EEXIST;
    struct rec *r;
    uint32_t idx = rec_alloc(P, &r);
    if (idx == NONE)
        return -ENOMEM;
    s->park = idx;
    s->parked = CORIO__PARK_WAITING;
    int err = corio__fd_interest(loop, fd, s);
    if (err < 0) {
        s->parked = CORIO__PARK_NONE;
        s->park = NONE;
        r->next = P->free; /* fn is still NULL: free as it was */
        P->free = idx;
        return err;
    }
    rec_fill(s, idx, r, fd, fn, data, grain_of(P, deadline));
    loop->refs++;
    P->parked++;
    if (r->u.tick != NO_TICK)
        ring_insert(loop, P, idx, r);
    if (loop->edge && (s->ready & CORIO__PARK_EVENTS)) {
        unsigned now = ready_now(fd);
        if (now)
            wake_out(loop, P, s, (int)now);
        else
            s->ready &= (uint8_t)~CORIO_READABLE;
    }
    return 0;
}

/* The usual park is a keep-alive connection's again, on the loop's own
 * thread: its fd registered with the edge backend and drained, a spare
 * record at hand, and a deadline whose bucket needs no change of timer.
 * That case calls nothing, so it saves no registers (a quarter of what a
 * park cost); any other goes the full way, checking in the documented
 * order. */
int corio_park(corio_loop *loop, int fd, corio_park_fn fn, void *data, int64_t deadline)
{
    struct corio_parks *P;
    struct corio_fdslot *s;
    if (corio_likely(corio__loop_owned(loop) && (P = loop->parks) != NULL && fn &&
                     deadline > loop->now && !P->shutdown && P->free != NONE &&
                     (s = corio__fd_slot_find(loop, fd)) != NULL && !s->parked && loop->edge &&
                     s->registered && !(s->ready & CORIO__PARK_EVENTS))) {
        uint32_t tick = grain_of(P, deadline);
        if (tick == NO_TICK || ring_links_only(P, tick)) {
            uint32_t idx = P->free;
            struct rec *r = rec_at(P, idx);
            P->free = r->next;
            rec_fill(s, idx, r, fd, fn, data, tick);
            loop->refs++;
            P->parked++;
            if (tick != NO_TICK)
                ring_link(P, idx, r);
            return 0;
        }
    }
    return park_slow(loop, fd, fn, data, deadline);
}

int corio_unpark(corio_loop *loop, int fd, void **data)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    struct corio_parks *P = loop->parks;
    struct corio_fdslot *s = corio__fd_slot(loop, fd, false);
    if (!P || !s || !s->parked)
        return -ENOENT;
    uint32_t idx = s->park;
    struct rec *r = rec_at(P, idx);
    if (data)
        *data = r->data;
    if (s->parked == CORIO__PARK_WAITING) {
        if (r->u.tick != NO_TICK)
            ring_remove(loop, P, r);
        P->parked--;
        rec_free(P, idx, r);
    } else {
        /* Queued: a tombstone stays in the queue (it has no back link)
         * and is freed when a worker reaches it. */
        r->fn = NULL;
        P->queued--;
        CORIO_STAT(if (idx == P->sample) P->sample = NONE); /* untimed: fn will not run */
    }
    s->parked = CORIO__PARK_NONE;
    s->park = NONE;
    loop->refs--;
    (void)corio__fd_interest(loop, fd, s); /* a level backend stops polling it */
    return 0;
}

/* Every WAITING record: the wheel's and those without a deadline, which
 * are on no list, so the slab is walked (a shutdown is rare). */
size_t corio_park_shutdown(corio_loop *loop)
{
    if (!corio__loop_owned(loop))
        return 0;
    struct corio_parks *P = parks_get(loop);
    if (!P)
        return 0;
    P->shutdown = true;
    size_t n = 0;
    for (uint32_t c = 0; c < P->nchunks && P->parked; c++) {
        for (uint32_t i = 0; i < REC_CHUNK; i++) {
            struct rec *r = &P->chunks[c][i];
            if (!r->fn)
                continue;
            uint32_t idx = c * REC_CHUNK + i + 1;
            struct corio_fdslot *s = corio__fd_slot_find(loop, r->fd);
            if (s && s->park == idx && s->parked == CORIO__PARK_WAITING) {
                wake_out(loop, P, s, -ECANCELED);
                n++;
            }
        }
    }
    return n;
}

int corio_park_configure(corio_loop *loop, const corio_park_options *o)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (!o)
        return -EINVAL;
    struct corio_parks *P = parks_get(loop);
    if (!P)
        return -ENOMEM;
    P->max_active = o->max_active ? o->max_active : 8192;
    P->stack_size = o->stack_size;
    pump(loop, P);
    return 0;
}

void corio_park_stats_get(const corio_loop *loop, corio_park_stats *out)
{
    memset(out, 0, sizeof *out);
    const struct corio_parks *P = loop->parks;
    if (!P)
        return;
    out->parked = P->parked;
    out->queued = P->queued;
    out->active = P->active;
    out->record_bytes = sizeof *P + (size_t)P->nchunks * (REC_CHUNK * sizeof(struct rec) + sizeof(void *));
    out->woken = P->woken;
    out->timeouts = P->timeouts;
}
