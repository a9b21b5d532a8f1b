/* Internal structures shared by the library's files. */
#ifndef CORIO_INTERNAL_H
#define CORIO_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "corio.h"
#include "ctx/ctx.h"
#include "list.h"
#include "sys.h"

/* Always-on assertion for invariants and for syscalls that cannot fail with
 * valid arguments.  Never for peer behaviour or input. */
#define CORIO_ASSERT(e) \
    ((e) ? (void)0 : corio__assert_fail(#e, __FILE__, __LINE__))
_Noreturn void corio__assert_fail(const char *expr, const char *file, int line);

/* ---- Backends (backend.h has the contract) ---- */
struct corio_backend;

/* ---- fd table ----
 * One slot per fd number, in chunks that never move, so a slot pointer
 * stays valid while the table grows. */
struct corio_fdslot {
    corio_list waiters; /* corio_watcher.link: coroutines and callbacks */
    uint32_t gen;       /* bumped by corio_close; travels in event data */
    uint8_t ready;      /* cached readiness since the last EAGAIN */
    uint8_t registered; /* the backend knows this fd */
    uint8_t want;       /* union of the waiters' events (level backends) */
    uint8_t parked;     /* CORIO__PARK_*: an idle connection parked here (park.c) */
    int32_t idx;        /* backend private: poll's index into its array */
    uint32_t park;      /* its park record's index + 1; 0: none (park.c) */
};

enum { CORIO__PARK_NONE, CORIO__PARK_WAITING, CORIO__PARK_QUEUED };

#define FD_CHUNK_SHIFT 10
#define FD_CHUNK (1u << FD_CHUNK_SHIFT)

/* ---- Timers: a hierarchical timing wheel (timer.c) ---- */
#define WHEEL_TICK_SHIFT 12 /* 4.096 us per level-0 slot */
#define WHEEL_BITS 6
#define WHEEL_SLOTS (1u << WHEEL_BITS)
#define WHEEL_LEVELS 9 /* 12 + 9 * 6 bits cover every int64 deadline */

struct corio_wheel {
    uint64_t elapsed;                 /* ticks processed: no timer is earlier */
    uint64_t occupied[WHEEL_LEVELS];  /* bit s set: slot s of the level is non-empty */
    uint32_t levels;                  /* bit l set: occupied[l] != 0 */
    corio_list slots[WHEEL_LEVELS][WHEEL_SLOTS];
    corio_list due;                   /* expired, to run in the next pass */
    uint64_t seq;
    size_t count;                     /* armed timers */
};

/* ---- Coroutines and stacks ---- */
struct corio_stack {
    struct corio_stack *next; /* pool link */
    void *map;                /* the mapping, guard page first */
    size_t map_size;
    void *base;               /* lowest usable byte, just above the guard */
    size_t size;              /* usable bytes, this header included */
};

enum { CO_READY, CO_RUNNING, CO_PARKED, CO_DONE };

/* The fields an fd wakeup and a resume touch come first, the fd waiter
 * among them: with a thousand connections, a wakeup that had to read a
 * waiter on the coroutine's stack took a cache miss there as well. */
struct corio_co {
    corio_callback run; /* ready-queue entry; its fn resumes the coroutine */
    corio_ctx ctx;
    corio_loop *loop;
    int wake;             /* what the waker handed over */
    uint8_t state;        /* CO_* */
    bool cancelled;
    bool detached;
    bool joining;         /* a joiner exists */
    unsigned budget;      /* I/O completions left before a forced yield */
    bool timed;           /* `timer` was started by the current park */
    bool sampled;         /* stats: woken by the last wait's events, to be timed */
    corio_watcher fdw;    /* its entry in an fd's waiters while in corio__fd_wait */
    struct corio_stack *stack;
    corio_fn fn;
    void *arg;
    void *result;
    corio_co *joiner;     /* coroutine parked in corio_join on this one */
    corio_timer timer;    /* the deadline of the current park */
    void *asan_fake;      /* ASan's fake stack while suspended */
    void *tsan_fiber;     /* TSan's fiber for this coroutine (TSan builds only) */
    corio_list all;       /* loop->cos */
};

/* Counters that always move together are kept once: the snapshot takes
 * the waits' syscall count and events_per_wait.count from polls, the empty
 * waits from events_per_wait.bucket[0], and the iterations (one pass each)
 * and ready_per_pass.count from the sum of ready_per_pass's buckets
 * (stats.c, copy_counters). */
struct corio_loop_stats {
    uint64_t polls;        /* backend waits */
    uint64_t events;       /* events delivered by the backend */
    uint64_t stale;        /* events dropped for an old generation */
    uint64_t switches;
    uint64_t spawns;
    uint64_t budget_yields;
    uint64_t timers_fired;
    uint64_t eagain;       /* I/O calls that had to wait */
    /* Added for the snapshot API (stats.c). */
    int64_t started;       /* loop->now at creation */
    uint64_t blocked_ns;   /* time in backend waits that could block */
    uint64_t timers_started;
    uint64_t timers_cancelled;
    uint64_t sys[CORIO_SYSCALL_KINDS];      /* syscalls by kind */
    uint64_t sys_eagain[CORIO_SYSCALL_KINDS];
    uint64_t bytes_read, bytes_written;
    uint64_t resume_seq;   /* fd wakeups, to sample 1 in 8 for resume_ns */
    bool stamp_pending;    /* the wait being delivered woke a sampled coroutine */
    int64_t stamp_at;      /* when the last wait with one ended (its events' time) */
    corio_hist events_per_wait;
    corio_hist ready_per_pass;
    corio_hist resume_ns;
    uint64_t requests, request_errors, request_bytes_in, request_bytes_out;
    corio_hist handler_ns;
    int listeners[8];      /* corio_stats_listener() */
    unsigned nlisteners;
    int sock_cursor;       /* where the next socket sample starts */
};

/* Hot-path counters compile out with -DCORIO_NO_STATS (the overhead
 * benchmark builds both ways).  The fields stay, so the layout does not. */
#ifdef CORIO_NO_STATS
#define CORIO_STATS_ON 0
#else
#define CORIO_STATS_ON 1
#endif
#define CORIO_STAT(...)         \
    do {                        \
        if (CORIO_STATS_ON) {   \
            __VA_ARGS__;        \
        }                       \
    } while (0)

/* Sampling mask for the readiness-to-resume latency: 1 fd wakeup in 8 is
 * timed, from the end of the wait that delivered it (one clock read for
 * all of its samples, shared with the loop's own) to its resume (~20 ns
 * each, vDSO). */
#define CORIO_RESUME_SAMPLE_MASK 7u

/* The bucket of v: 0 for 0, else 1 + floor(log2 v), capped at the last.
 * Without a branch: 2v + 1 has its top bit one above v's, and is never 0. */
static inline unsigned corio__hist_bucket(uint64_t v)
{
    const uint64_t last = (uint64_t)1 << (CORIO_HIST_BUCKETS - 2); /* the last bucket's floor */
    v = v < last ? v : last;
    return 63u - (unsigned)__builtin_clzll(v << 1 | 1);
}

static inline void corio__hist_add(corio_hist *h, uint64_t v)
{
    h->bucket[corio__hist_bucket(v)]++;
    h->count++;
    h->sum += v;
}

/* corio__hist_add() for the loop's per-pass and per-wait histograms, whose
 * count the snapshot fills in (the sum of the buckets, or polls): one add
 * fewer per pass. */
static inline void corio__hist_add_uncounted(corio_hist *h, uint64_t v)
{
    h->bucket[corio__hist_bucket(v)]++;
    h->sum += v;
}

/* ---- Spare I/O buffers (buf.c) ----
 * Stream buffers come and go with every message (an idle stream holds
 * none), so each loop recycles them: one free list per power-of-two size
 * from 4 KiB to 64 KiB, each kept under BUF_POOL_BYTES. */
#define BUF_MIN_SHIFT 12
#define BUF_CLASSES 5
#define BUF_POOL_BYTES (256u << 10)
struct corio_bufpool {
    void *head[BUF_CLASSES]; /* free buffers, linked through their first word */
    uint32_t count[BUF_CLASSES];
};

struct corio_loop {
    const struct corio_backend *be;
    void *bed;           /* backend state */
    const void *owner;   /* the owning thread's token (see loop.c) */
    int64_t now;         /* cached corio_now() */
    bool stop;
    bool running;
    bool altstack;  /* this loop set up the thread's signal stack */
    bool edge;      /* be->edge, one load nearer */

    /* Ready queue: callbacks and coroutines to run in the next pass. */
    corio_callback *ready_head;
    corio_callback **ready_tail;
    size_t nready;
    unsigned since_poll; /* callbacks run since the backend was last asked */
    unsigned backlog;    /* events the backend holds from its last wait, to deliver next */

    /* From other threads: a Treiber stack, reversed when taken. */
    _Atomic(corio_callback *) posted;
    atomic_int wake_pending;

    size_t refs; /* what keeps the loop alive: coroutines, timers, ... */
    size_t nwatchers; /* active fd watchers of the callback level */

    struct corio_fdslot **fds;
    size_t nchunks;

    struct corio_wheel wheel;

    /* Coroutines. */
    corio_co *cur;      /* running, NULL on the loop's own stack */
    corio_ctx main_ctx; /* the loop's own stack while a coroutine runs */
    const void *main_stack_bottom; /* for ASan */
    void *tsan_main;    /* TSan's fiber of the loop's own stack (TSan builds only) */
    void *main_fake;
    size_t main_stack_size;
    corio_co *dead;     /* finished, to recycle once off its stack */
    corio_list cos;     /* every coroutine not yet freed */
    size_t nco;
    corio_co *co_free;  /* spare coroutine structs (linked via run.next) */
    size_t nco_free;

    /* Stacks. */
    struct corio_stack *stack_pool;
    size_t nstack_pool;
    size_t stack_size;
    size_t stack_pool_max;
    bool stack_check;        /* CORIO_STACK_CHECK=1: measure stack use */
    size_t stack_high_water; /* deepest stack use seen, in bytes */
    unsigned budget;
    unsigned max_events;
    uint32_t pass; /* watcher dispatch bookkeeping */

    struct corio_bufpool bufs; /* spare stream buffers (buf.c) */

    struct corio_loop_stats stats;

    struct corio_parks *parks; /* parked connections (park.c); NULL until the first */

    struct corio_loop_ext *exts; /* areas attached on demand (pool.c, signal.c) */
};

/* State an area attaches to a loop on first use (the blocking pool, signal
 * routing), torn down by corio_loop_free() once its own checks pass: every
 * stop() first (it may keep the loop with -EBUSY, undoing nothing visible),
 * then every fini(). */
struct corio_loop_ext {
    struct corio_loop_ext *next;
    int (*stop)(corio_loop *loop, struct corio_loop_ext *ext); /* may be NULL */
    void (*fini)(corio_loop *loop, struct corio_loop_ext *ext);
};

/* Loop (loop.c). */
#define CORIO__POLL_INTERVAL 64
/* initial-exec here too, not only at the definition: without it, code
 * built with -fPIC reaches the variable through __tls_get_addr, and every
 * public call that looks up its loop saves and restores its arguments
 * around that call even where the linker turns it into a plain load. */
extern _Thread_local corio_loop *corio__tls_loop __attribute__((tls_model("initial-exec")));
/* One byte per thread whose address identifies the thread: comparing a
 * loop's owner with it is cheaper than pthread_equal(pthread_self()).
 * Inline, because every stream call checks it. */
extern _Thread_local char corio__tls_token __attribute__((tls_model("initial-exec")));
static inline bool corio__loop_owned(const corio_loop *loop)
{
    return loop->owner == &corio__tls_token;
}
void corio__loop_update_time(corio_loop *loop);
void corio__loop_drain_posted(corio_loop *loop);

/* fd table (fd.c). */
struct corio_fdslot *corio__fd_slot_slow(corio_loop *loop, int fd, bool create);
/* The slot of fd: NULL if it has none and !create (or memory ran out). */
static inline struct corio_fdslot *corio__fd_slot(corio_loop *loop, int fd, bool create)
{
    size_t c = (size_t)(unsigned)fd >> FD_CHUNK_SHIFT;
    if (corio_likely(fd >= 0 && c < loop->nchunks && loop->fds[c]))
        return &loop->fds[c][(unsigned)fd & (FD_CHUNK - 1)];
    return corio__fd_slot_slow(loop, fd, create);
}
/* The slot of fd if it has one, else NULL: corio__fd_slot(loop, fd, false)
 * with no call in it. */
static inline struct corio_fdslot *corio__fd_slot_find(corio_loop *loop, int fd)
{
    size_t c = (size_t)(unsigned)fd >> FD_CHUNK_SHIFT;
    if (corio_likely(fd >= 0 && c < loop->nchunks && loop->fds[c]))
        return &loop->fds[c][(unsigned)fd & (FD_CHUNK - 1)];
    return NULL;
}
/* Called by backends for each event. */
void corio__fd_event(corio_loop *loop, int fd, uint32_t gen, unsigned revents);
/* A syscall on fd said EAGAIN for events: drop the cached readiness. */
void corio__fd_eagain(corio_loop *loop, int fd, unsigned events);
/* Parks the running coroutine until fd shows one of events. */
int corio__fd_wait(corio_loop *loop, int fd, unsigned events, int64_t deadline);
/* corio__fd_eagain() then corio__fd_wait(), with one slot lookup: what an
 * I/O call does when the syscall said EAGAIN. */
int corio__fd_eagain_wait(corio_loop *loop, int fd, unsigned events, int64_t deadline);
/* The callback of a coroutine's fd waiter (co->fdw), and the two steps of
 * corio__fd_wait_slot() that stay in fd.c: telling the backend, and taking
 * back a waiter that was not woken. */
void corio__fd_wake_waiter(corio_loop *loop, corio_watcher *w, unsigned revents);
int corio__fd_waiter_added(corio_loop *loop, int fd, struct corio_fdslot *s, unsigned events);
void corio__fd_waiter_remove(corio_loop *loop, struct corio_fdslot *s, corio_watcher *w);

/* I/O (io.c): corio_read(), corio_write() and corio_send() for callers
 * that have the loop at hand (the streams). */
ssize_t corio__read(corio_loop *loop, int fd, void *buf, size_t n, int64_t deadline);
ssize_t corio__write(corio_loop *loop, int fd, const void *buf, size_t n, int64_t deadline);
ssize_t corio__send(corio_loop *loop, int fd, const void *buf, size_t n, int flags,
                    int64_t deadline);

/* Spare I/O buffers (buf.c).  A stream takes and gives back a buffer or
 * two per message, so the pool's hit paths are inline: a few loads and
 * stores on the loop's free list, whose head is the buffer just used. */
void *corio__buf_get_slow(corio_loop *loop, size_t *size);
void corio__buf_pool_free(corio_loop *loop);

/* The power-of-two class that holds size: 0 is 4 KiB (and 0 bytes). */
static inline unsigned corio__buf_class(size_t size)
{
    if (size <= (size_t)1 << BUF_MIN_SHIFT)
        return 0;
    return (unsigned)(64 - __builtin_clzll((unsigned long long)(size - 1))) - BUF_MIN_SHIFT;
}

/* A spare buffer of class c (< BUF_CLASSES) from the pool, or NULL. */
static inline void *corio__buf_pop(corio_loop *loop, unsigned c)
{
    void *p = loop->bufs.head[c];
    if (corio_likely(p != NULL)) {
        loop->bufs.head[c] = *(void **)p;
        loop->bufs.count[c]--;
    }
    return p;
}

/* A buffer of at least *size bytes (rounded up to a power of two of 4 KiB
 * or more, stored back in *size), or NULL. */
static inline void *corio__buf_get(corio_loop *loop, size_t *size)
{
    unsigned c = corio__buf_class(*size);
    void *p = c < BUF_CLASSES ? corio__buf_pop(loop, c) : NULL;
    if (corio_likely(p != NULL)) {
        *size = (size_t)1 << (BUF_MIN_SHIFT + c);
        return p;
    }
    return corio__buf_get_slow(loop, size);
}

/* True if the pool keeps a buffer of class c given back now. */
static inline bool corio__buf_room(const corio_loop *loop, unsigned c)
{
    return loop->bufs.count[c] < (BUF_POOL_BYTES >> (BUF_MIN_SHIFT + c));
}

/* Gives back a buffer of class c (< BUF_CLASSES): to the pool while the
 * class holds under BUF_POOL_BYTES, else to the allocator. */
static inline void corio__buf_push(corio_loop *loop, void *p, unsigned c)
{
    if (corio_likely(corio__buf_room(loop, c))) {
        *(void **)p = loop->bufs.head[c];
        loop->bufs.head[c] = p;
        loop->bufs.count[c]++;
        return;
    }
    corio__free(p);
}

/* Gives back a buffer from corio__buf_get() with the size it reported. */
static inline void corio__buf_put(corio_loop *loop, void *p, size_t size)
{
    unsigned c = corio__buf_class(size);
    if (c < BUF_CLASSES)
        corio__buf_push(loop, p, c);
    else
        corio__free(p);
}

/* Tells the backend that the interest in fd changed (for a level backend:
 * recomputes what to poll for, parked connections included).  Nothing to
 * do for an fd an edge backend knows already: every park asks. */
int corio__fd_interest_slow(corio_loop *loop, int fd, struct corio_fdslot *s);
static inline int corio__fd_interest(corio_loop *loop, int fd, struct corio_fdslot *s)
{
    if (loop->edge && s->registered)
        return 0;
    return corio__fd_interest_slow(loop, fd, s);
}

/* Parked connections (park.c), called by the fd table and the loop. */
#define CORIO__PARK_EVENTS (CORIO_READABLE | CORIO_RDHUP | CORIO_HUP | CORIO_ERROR)
void corio__park_ready(corio_loop *loop, struct corio_fdslot *s, unsigned revents);
void corio__park_closed(corio_loop *loop, struct corio_fdslot *s);
void corio__park_fini(corio_loop *loop);
/* A wait's events were delivered and stamped (stats.stamp_at). */
void corio__park_stamp(corio_loop *loop);

/* Timers (timer.c). */
void corio__wheel_init(struct corio_wheel *w, int64_t now);
/* Nanoseconds until the next timer is due (0 if one is), or -1 if none. */
int64_t corio__wheel_timeout(corio_loop *loop);
/* Runs the timers due at loop->now; returns how many ran.  Inline for
 * the loop's every pass, which usually finds the wheel empty and only
 * keeps its time. */
size_t corio__wheel_run_slow(corio_loop *loop);
static inline size_t corio__wheel_run(corio_loop *loop)
{
    struct corio_wheel *w = &loop->wheel;
    if (corio_likely(!w->levels && list_empty(&w->due))) {
        uint64_t now_tick = (uint64_t)loop->now >> WHEEL_TICK_SHIFT;
        if (now_tick > w->elapsed)
            w->elapsed = now_tick;
        return 0;
    }
    return corio__wheel_run_slow(loop);
}

/* Coroutines (co.c). */
/* Parks the running coroutine until woken or deadline: returns the wake
 * value, -ETIMEDOUT, -ECANCELED, -EAGAIN for CORIO_NOWAIT, -CORIO_ENOTCO. */
int corio__park(corio_loop *loop, int64_t deadline);
/* Queues cb to run in the next pass (corio_call_soon() without the check). */
static inline void corio__ready_push(corio_loop *loop, corio_callback *cb)
{
    cb->next = NULL;
    *loop->ready_tail = cb;
    loop->ready_tail = &cb->next;
    loop->nready++;
}
/* Wakes a parked coroutine with result; harmless if it is not parked. */
static inline void corio__wake(corio_co *co, int result)
{
    if (co->state != CO_PARKED)
        return;
    co->state = CO_READY;
    co->wake = result;
    corio__ready_push(co->loop, &co->run);
    corio__ctx_prefetch(&co->ctx);
}
/* Counts one completed I/O call against the budget; may yield.  Inline:
 * every successful read and write pays it. */
void corio__budget_spent(corio_loop *loop);
static inline void corio__budget(corio_loop *loop)
{
    corio_co *co = loop->cur;
    if (co && --co->budget == 0)
        corio__budget_spent(loop);
}
void corio__co_free_all(corio_loop *loop);

/* Stats (stats.c, kstats.c): fills s->sock from loop's listeners and a
 * rotating sample of its registered fds. */
void corio__stats_sockets(corio_loop *loop, corio_stats *s);

/* Stacks (stack.c). */
struct corio_stack *corio__stack_get(corio_loop *loop, size_t size);
void corio__stack_put(corio_loop *loop, struct corio_stack *s);
void corio__stack_pool_free(corio_loop *loop);
int corio__overflow_handler_install(void);
int corio__altstack_setup(void);
void corio__altstack_release(void);

/* ASan fiber annotations (no-ops without ASan). */
#if defined(__SANITIZE_ADDRESS__)
#define CORIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_ASAN 1
#endif
#endif
#ifdef CORIO_ASAN
void corio__asan_start(void **fake, const void *bottom, size_t size);
void corio__asan_finish(void *fake, const void **bottom, size_t *size);
#else
static inline void corio__asan_start(void **fake, const void *bottom, size_t size)
{
    (void)fake, (void)bottom, (void)size;
}
static inline void corio__asan_finish(void *fake, const void **bottom, size_t *size)
{
    (void)fake, (void)bottom, (void)size;
}
#endif

/* TSan fiber annotations (no-ops without TSan): each coroutine is a TSan
 * fiber, so TSan keeps its stack and its happens-before state apart from
 * the loop's and orders what runs on one thread. */
#if defined(__SANITIZE_THREAD__)
#define CORIO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORIO_TSAN 1
#endif
#endif
#ifdef CORIO_TSAN
/* Macros, not functions: a wrapper that switches fibers would pop its
 * own frame off the new fiber's empty shadow stack on return. */
#include <sanitizer/tsan_interface.h>
#define corio__tsan_fiber_new() __tsan_create_fiber(0)
#define corio__tsan_fiber_free(fiber) __tsan_destroy_fiber(fiber)
#define corio__tsan_current() __tsan_get_current_fiber()
#define corio__tsan_switch(fiber) __tsan_switch_to_fiber((fiber), 0)
#else
static inline void *corio__tsan_fiber_new(void)
{
    return NULL;
}
static inline void corio__tsan_fiber_free(void *fiber)
{
    (void)fiber;
}
static inline void *corio__tsan_current(void)
{
    return NULL;
}
static inline void corio__tsan_switch(void *fiber)
{
    (void)fiber;
}
#endif

/* ---- Parking the running coroutine, inline ----
 * A parked coroutine's stack holds the frames of every call down to the
 * switch, and resuming it touches each of them again: one cache line or
 * more per frame, with thousands of coroutines, each a miss.  So the park
 * and the switch are inline, into the functions that wait. */

/* Leaves the running coroutine co for the loop's stack (co.c has the
 * variant for a coroutine that ends). */
static inline __attribute__((always_inline)) void corio__switch_out(corio_loop *loop, corio_co *co)
{
    corio__asan_start(&co->asan_fake, loop->main_stack_bottom, loop->main_stack_size);
    corio__tsan_switch(loop->tsan_main);
    corio__ctx_switch(&co->ctx, &loop->main_ctx);
    corio__asan_finish(co->asan_fake, NULL, NULL);
}

/* corio__park() once its checks passed: co is running, not cancelled, and
 * deadline is not CORIO_NOWAIT. */
static inline __attribute__((always_inline)) int corio__park_co(corio_loop *loop, corio_co *co,
                                                                int64_t deadline)
{
    if (deadline != CORIO_FOREVER) {
        if (deadline <= loop->now)
            return -ETIMEDOUT;
        corio_timer_start(loop, &co->timer, deadline);
        co->timed = true; /* so that a park without one never reads the timer's line */
    }
    co->state = CO_PARKED;
    corio__switch_out(loop, co);
    if (co->timed) {
        co->timed = false;
        if (co->timer.state)
            corio_timer_stop(loop, &co->timer);
    }
    return co->wake;
}

/* Why the running coroutine cannot park on an fd now, or 0. */
static inline int corio__fd_cannot_wait(corio_loop *loop, int64_t deadline)
{
    if (deadline == CORIO_NOWAIT)
        return -EAGAIN; /* also what callbacks on the loop's stack get */
    if (!loop->cur)
        return -CORIO_ENOTCO;
    if (loop->cur->cancelled)
        return -ECANCELED;
    return 0;
}

/* corio__fd_wait() for a caller that has s, fd's slot, at hand: inline,
 * so that a stream waiting for input parks one frame above its call. */
static inline __attribute__((always_inline)) int corio__fd_wait_slot(corio_loop *loop,
                                                                     struct corio_fdslot *s, int fd,
                                                                     unsigned events,
                                                                     int64_t deadline)
{
    int r = corio__fd_cannot_wait(loop, deadline);
    if (r < 0)
        return r;
    corio_co *co = loop->cur;
    s->ready &= (uint8_t)~events; /* the caller has just seen EAGAIN */
    /* A coroutine waits on one fd at a time, so its waiter lives in it. */
    corio_watcher *w = &co->fdw;
    *w = (corio_watcher){.fd = fd, .events = events, .flags = CORIO_WATCH_EDGE, .active = true,
                         .fn = corio__fd_wake_waiter, .data = co};
    list_insert_tail(&s->waiters, &w->link);
    /* The backend needs telling unless the fd is registered with an edge one. */
    if (!loop->edge || !s->registered)
        r = corio__fd_waiter_added(loop, fd, s, events);
    if (r == 0)
        r = corio__park_co(loop, co, deadline);
    if (w->active) /* timed out, cancelled, or never parked */
        corio__fd_waiter_remove(loop, s, w);
    return r;
}

#endif
