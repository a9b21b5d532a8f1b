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
 *   WAITING  in the wheel (or the no-deadline list); the slot points at it
 *   QUEUED   in the run queue with its reason; the slot still points at it,
 *            so that corio_close() and corio_unpark() can find it
 *   (free)   once a worker has copied it out, or after corio_unpark() */
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
    uint32_t next, prev; /* wheel bucket, no-deadline list, run queue, or free list */
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

struct corio_parks {
    struct rec **chunks;
    uint32_t nchunks;
    uint32_t free;        /* free list through rec.next */
    int64_t epoch;        /* grain 0 */
    uint32_t done;        /* last grain whose bucket was processed */
    uint32_t armed;       /* grain the timer is armed for, or NO_TICK */
    size_t in_ring;       /* records in the wheel */
    uint32_t forever;     /* records without a deadline: a list */
    uint32_t q_head, q_tail; /* run queue */
    corio_timer timer;
    corio_callback kick;  /* deferred -ENOMEM fallback */
    bool kick_queued;
    bool shutdown;
    unsigned max_active;
    size_t stack_size;
    size_t parked, queued, active;
    size_t starting;      /* workers spawned that have not taken a record yet */
    corio_callback watch; /* runs when a worker switched out with records queued */
    bool watch_queued;
    uint64_t woken, timeouts;
    uint32_t sample;      /* stats: the record whose wakeup is being timed, or NONE */
    int64_t sample_at;    /* stats: when its fd was reported ready */
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

static uint32_t rec_alloc(struct corio_parks *P)
{
    SITE(s_table, "malloc");
    SITE(s_chunk, "malloc");
    if (P->free == NONE) {
        if (P->nchunks >= (UINT32_MAX >> REC_SHIFT) - 1)
            return NONE;
        struct rec **t = corio__realloc(&s_table, P->chunks, (P->nchunks + 1) * sizeof *t);
        if (!t)
            return NONE;
        P->chunks = t;
        struct rec *c = corio__malloc(&s_chunk, REC_CHUNK * sizeof *c);
        if (!c)
            return NONE;
        uint32_t base = P->nchunks * REC_CHUNK;
        P->chunks[P->nchunks++] = c;
        for (uint32_t i = REC_CHUNK; i-- > 0;) {
            c[i].next = P->free;
            P->free = base + i + 1;
        }
    }
    uint32_t idx = P->free;
    P->free = rec_at(P, idx)->next;
    return idx;
}

static void rec_free(struct corio_parks *P, uint32_t idx)
{
    struct rec *r = rec_at(P, idx);
    r->fn = NULL;
    r->data = NULL;
    r->next = P->free;
    P->free = idx;
}

/* ---- Doubly linked lists of records, by index ---- */

static void list_push(struct corio_parks *P, uint32_t *head, uint32_t idx)
{
    struct rec *r = rec_at(P, idx);
    r->prev = NONE;
    r->next = *head;
    if (*head != NONE)
        rec_at(P, *head)->prev = idx;
    *head = idx;
}

static void list_unlink(struct corio_parks *P, uint32_t *head, uint32_t idx)
{
    struct rec *r = rec_at(P, idx);
    if (r->prev != NONE)
        rec_at(P, r->prev)->next = r->next;
    else
        *head = r->next;
    if (r->next != NONE)
        rec_at(P, r->next)->prev = r->prev;
}

/* ---- The wheel of idle deadlines ---- */

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

static void ring_insert(corio_loop *loop, struct corio_parks *P, uint32_t idx)
{
    struct rec *r = rec_at(P, idx);
    if (r->u.tick == NO_TICK) {
        list_push(P, &P->forever, idx);
        return;
    }
    if (P->in_ring == 0)
        P->done = grain_now(P, loop->now); /* nothing pending: catch up */
    if (r->u.tick <= P->done)
        r->u.tick = P->done + 1;
    uint32_t b = r->u.tick & (RING - 1);
    list_push(P, &P->head[b], idx);
    P->occupied[b >> 6] |= (uint64_t)1 << (b & 63);
    P->in_ring++;
    uint32_t g = next_visit(P, b);
    if (P->armed == NO_TICK || g < P->armed)
        arm_at(loop, P, g);
}

static void ring_remove(corio_loop *loop, struct corio_parks *P, uint32_t idx)
{
    struct rec *r = rec_at(P, idx);
    if (r->u.tick == NO_TICK) {
        list_unlink(P, &P->forever, idx);
        return;
    }
    uint32_t b = r->u.tick & (RING - 1);
    list_unlink(P, &P->head[b], idx);
    if (P->head[b] == NONE)
        P->occupied[b >> 6] &= ~((uint64_t)1 << (b & 63));
    if (--P->in_ring == 0) {
        P->armed = NO_TICK;
        corio_timer_stop(loop, &P->timer);
    }
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
static void pump(corio_loop *loop, struct corio_parks *P)
{
    if (P->queued == 0 || P->starting > 0 || P->active >= P->max_active)
        return;
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

static void watch(corio_loop *loop, corio_callback *cb)
{
    struct corio_parks *P = cb->data;
    P->watch_queued = false;
    pump(loop, P);
}

/* Moves a WAITING record to the run queue. */
static void wake(corio_loop *loop, struct corio_parks *P, struct corio_fdslot *s, int reason)
{
    uint32_t idx = s->park;
    ring_remove(loop, P, idx);
    struct rec *r = rec_at(P, idx);
    r->u.reason = reason;
    r->next = NONE;
    r->prev = P->q_tail;
    if (P->q_tail != NONE)
        rec_at(P, P->q_tail)->next = idx;
    else
        P->q_head = idx;
    P->q_tail = idx;
    s->parked = CORIO__PARK_QUEUED;
    P->parked--;
    P->queued++;
    /* Readiness-to-resume latency (corio_stats): one wakeup at a time is
     * timed, about 1 in 8, as for coroutines waiting in fd.c. */
    CORIO_STAT(if (P->sample == NONE && reason > 0 &&
                   (loop->stats.resume_seq++ & CORIO_RESUME_SAMPLE_MASK) == 0) {
                   P->sample = idx;
                   P->sample_at = corio_now();
               });
    pump(loop, P);
}

static void queue_unlink(struct corio_parks *P, uint32_t idx)
{
    struct rec *r = rec_at(P, idx);
    if (r->prev != NONE)
        rec_at(P, r->prev)->next = r->next;
    else
        P->q_head = r->next;
    if (r->next != NONE)
        rec_at(P, r->next)->prev = r->prev;
    else
        P->q_tail = r->prev;
    P->queued--;
}

/* Takes the first queued record out: detaches it from its slot, frees it,
 * and returns a copy.  The park's reference on the loop goes with it. */
static struct rec take(corio_loop *loop, struct corio_parks *P)
{
    uint32_t idx = P->q_head;
    struct rec r = *rec_at(P, idx);
    queue_unlink(P, idx);
    CORIO_STAT(if (idx == P->sample) {
                   int64_t lat = corio_now() - P->sample_at;
                   corio__hist_add(&loop->stats.resume_ns, lat > 0 ? (uint64_t)lat : 0);
                   P->sample = NONE;
               });
    struct corio_fdslot *s = corio__fd_slot(loop, r.fd, false);
    if (s && s->park == idx) { /* not closed meanwhile */
        s->parked = CORIO__PARK_NONE;
        s->park = NONE;
    }
    rec_free(P, idx);
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
    P->starting--;
    while (P->q_head != NONE) {
        struct rec r = take(loop, P);
        pump(loop, P); /* more queued: have them watched while fn runs */
        r.fn(r.fd, r.data, r.u.reason);
        if (corio_cancelled())
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
    while (P->q_head != NONE && P->active == 0) {
        if (spawn_worker(loop, P))
            return;
        struct rec r = take(loop, P);
        r.fn(r.fd, r.data, -ENOMEM);
    }
}

void corio__park_ready(corio_loop *loop, struct corio_fdslot *s, unsigned revents)
{
    wake(loop, loop->parks, s, (int)(revents & CORIO__PARK_EVENTS));
}

void corio__park_closed(corio_loop *loop, struct corio_fdslot *s)
{
    struct corio_parks *P = loop->parks;
    if (s->parked == CORIO__PARK_WAITING)
        wake(loop, P, s, -CORIO_ECLOSED);
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
                wake(loop, P, corio__fd_slot(loop, r->fd, false), -ETIMEDOUT);
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

int corio_park(corio_loop *loop, int fd, corio_park_fn fn, void *data, int64_t deadline)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (fd < 0)
        return -EBADF;
    if (!fn)
        return -EINVAL;
    if (deadline == CORIO_NOWAIT)
        return -EAGAIN;
    if (deadline <= loop->now)
        return -ETIMEDOUT;
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
    uint32_t idx = rec_alloc(P);
    if (idx == NONE)
        return -ENOMEM;
    struct rec *r = rec_at(P, idx);
    r->fd = fd;
    r->fn = fn;
    r->data = data;
    r->u.tick = grain_of(P, deadline);
    s->park = idx;
    s->parked = CORIO__PARK_WAITING;
    int err = corio__fd_interest(loop, fd, s);
    if (err < 0) {
        s->parked = CORIO__PARK_NONE;
        s->park = NONE;
        rec_free(P, idx);
        return err;
    }
    loop->refs++;
    P->parked++;
    ring_insert(loop, P, idx);
    if (loop->be->edge && (s->ready & CORIO__PARK_EVENTS)) {
        unsigned now = ready_now(fd);
        if (now)
            wake(loop, P, s, (int)now);
        else
            s->ready &= (uint8_t)~CORIO_READABLE;
    }
    return 0;
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
    if (s->parked == CORIO__PARK_WAITING) {
        ring_remove(loop, P, idx);
        P->parked--;
    } else {
        queue_unlink(P, idx);
        CORIO_STAT(if (idx == P->sample) P->sample = NONE); /* untimed: fn will not run */
    }
    if (data)
        *data = rec_at(P, idx)->data;
    s->parked = CORIO__PARK_NONE;
    s->park = NONE;
    rec_free(P, idx);
    loop->refs--;
    (void)corio__fd_interest(loop, fd, s); /* a level backend stops polling it */
    return 0;
}

static void wake_list(corio_loop *loop, struct corio_parks *P, uint32_t *head, size_t *n)
{
    while (*head != NONE) {
        struct rec *r = rec_at(P, *head);
        wake(loop, P, corio__fd_slot(loop, r->fd, false), -ECANCELED);
        (*n)++;
    }
}

size_t corio_park_shutdown(corio_loop *loop)
{
    if (!corio__loop_owned(loop))
        return 0;
    struct corio_parks *P = parks_get(loop);
    if (!P)
        return 0;
    P->shutdown = true;
    size_t n = 0;
    wake_list(loop, P, &P->forever, &n);
    for (uint32_t b = 0; b < RING && P->in_ring; b++)
        wake_list(loop, P, &P->head[b], &n);
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
