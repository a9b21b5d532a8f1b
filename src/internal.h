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
    uint8_t pad;
    int32_t idx;        /* backend private: poll's index into its array */
};

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

struct corio_co {
    corio_callback run; /* ready-queue entry; its fn resumes the coroutine */
    corio_ctx ctx;
    corio_loop *loop;
    struct corio_stack *stack;
    corio_fn fn;
    void *arg;
    void *result;
    corio_co *joiner;     /* coroutine parked in corio_join on this one */
    corio_timer timer;    /* the deadline of the current park */
    int wake;             /* what the waker handed over */
    uint8_t state;        /* CO_* */
    bool cancelled;
    bool detached;
    bool joining;         /* a joiner exists */
    unsigned budget;      /* I/O completions left before a forced yield */
    void *asan_fake;      /* ASan's fake stack while suspended */
    corio_list all;       /* loop->cos */
};

struct corio_loop_stats {
    uint64_t iterations;
    uint64_t polls;        /* backend waits */
    uint64_t poll_empty;   /* waits that returned no event */
    uint64_t events;       /* events delivered by the backend */
    uint64_t stale;        /* events dropped for an old generation */
    uint64_t switches;
    uint64_t spawns;
    uint64_t budget_yields;
    uint64_t timers_fired;
    uint64_t eagain;       /* I/O calls that had to wait */
};

struct corio_loop {
    const struct corio_backend *be;
    void *bed;           /* backend state */
    const void *owner;   /* the owning thread's token (see loop.c) */
    int64_t now;         /* cached corio_now() */
    bool stop;
    bool running;
    bool altstack;  /* this loop set up the thread's signal stack */

    /* Ready queue: callbacks and coroutines to run in the next pass. */
    corio_callback *ready_head;
    corio_callback **ready_tail;
    size_t nready;

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
    unsigned budget;
    unsigned max_events;
    uint32_t pass; /* watcher dispatch bookkeeping */

    struct corio_loop_stats stats;
};

/* Loop (loop.c). */
extern _Thread_local corio_loop *corio__tls_loop;
bool corio__loop_owned(const corio_loop *loop);
void corio__loop_update_time(corio_loop *loop);
void corio__loop_drain_posted(corio_loop *loop);

/* fd table (fd.c). */
struct corio_fdslot *corio__fd_slot(corio_loop *loop, int fd, bool create);
/* Called by backends for each event. */
void corio__fd_event(corio_loop *loop, int fd, uint32_t gen, unsigned revents);
/* A syscall on fd said EAGAIN for events: drop the cached readiness. */
void corio__fd_eagain(corio_loop *loop, int fd, unsigned events);
/* Parks the running coroutine until fd shows one of events. */
int corio__fd_wait(corio_loop *loop, int fd, unsigned events, int64_t deadline);

/* Timers (timer.c). */
void corio__wheel_init(struct corio_wheel *w, int64_t now);
/* Nanoseconds until the next timer is due (0 if one is), or -1 if none. */
int64_t corio__wheel_timeout(corio_loop *loop);
/* Runs the timers due at loop->now; returns how many ran. */
size_t corio__wheel_run(corio_loop *loop);

/* Coroutines (co.c). */
/* Parks the running coroutine until woken or deadline: returns the wake
 * value, -ETIMEDOUT, -ECANCELED, -EAGAIN for CORIO_NOWAIT, -CORIO_ENOTCO. */
int corio__park(corio_loop *loop, int64_t deadline);
/* Wakes a parked coroutine with result; harmless if it is not parked. */
void corio__wake(corio_co *co, int result);
/* Counts one completed I/O call against the budget; may yield. */
void corio__budget(corio_loop *loop);
void corio__co_free_all(corio_loop *loop);

/* Stacks (stack.c). */
struct corio_stack *corio__stack_get(corio_loop *loop, size_t size);
void corio__stack_put(corio_loop *loop, struct corio_stack *s);
void corio__stack_pool_free(corio_loop *loop);
int corio__overflow_handler_install(void);
void corio__overflow_set_current(const struct corio_stack *s);
int corio__altstack_setup(void);
void corio__altstack_release(void);

/* ASan fiber annotations (no-ops without ASan). */
void corio__asan_start(void **fake, const void *bottom, size_t size);
void corio__asan_finish(void *fake, const void **bottom, size_t *size);

#endif
