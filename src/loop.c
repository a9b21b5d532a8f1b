/* The run loop: one per thread.  Each iteration waits in the backend
 * (without blocking if anything is ready), runs the timers that are due,
 * then runs the ready queue: the callbacks and coroutines that were ready
 * when the pass began.  Whatever becomes ready during a pass runs in the
 * next one, after the backend has been asked again, so a coroutine that
 * keeps yielding cannot starve fds or timers. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"

_Thread_local corio_loop *corio__tls_loop __attribute__((tls_model("initial-exec")));

/* The owning thread's token (internal.h). */
_Thread_local char corio__tls_token __attribute__((tls_model("initial-exec")));

int64_t corio_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CORIO_SEC + ts.tv_nsec;
}

int64_t corio_after(int64_t ns)
{
    int64_t now = corio_now();
    return ns >= CORIO_FOREVER - now ? CORIO_FOREVER : now + ns;
}

void corio__loop_update_time(corio_loop *loop)
{
    loop->now = corio_now();
}

static const struct corio_backend *backend_named(const char *name)
{
    if (!name || !*name)
        return NULL;
#ifdef __linux__
    if (strcmp(name, "epoll") == 0)
        return &corio__backend_epoll;
#endif
    if (strcmp(name, "poll") == 0)
        return &corio__backend_poll;
    return NULL;
}

static const struct corio_backend *backend_default(void)
{
#ifdef __linux__
    return &corio__backend_epoll;
#else
    return &corio__backend_poll;
#endif
}

static size_t env_size(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long n = strtoull(v, &end, 0);
    if (*end == 'k' || *end == 'K')
        n <<= 10;
    else if (*end == 'm' || *end == 'M')
        n <<= 20;
    return n ? (size_t)n : dflt;
}

int corio_loop_new(corio_loop **out, const corio_loop_options *opts)
{
    SITE(s_malloc, "malloc");
    corio_loop_options o = {0};
    if (opts)
        o = *opts;
    const struct corio_backend *be = NULL;
    if (o.backend) {
        if (!(be = backend_named(o.backend)))
            return -EINVAL;
    } else {
        const char *env = getenv("CORIO_BACKEND");
        if (env && *env && !(be = backend_named(env)))
            return -EINVAL;
    }
    if (!be)
        be = backend_default();

    corio_loop *loop = corio__calloc(&s_malloc, 1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    loop->be = be;
    loop->edge = be->edge;
    loop->owner = &corio__tls_token;
    loop->max_events = o.max_events ? o.max_events : 1024;
    loop->stack_size = o.stack_size ? o.stack_size : env_size("CORIO_STACK_SIZE", 64 * 1024);
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    loop->stack_size = (loop->stack_size + ps - 1) & ~(ps - 1);
    loop->stack_pool_max = o.stack_pool_max ? o.stack_pool_max : 1024;
    loop->stack_check = env_size("CORIO_STACK_CHECK", 0) != 0;
    loop->budget = o.budget ? o.budget : 64;
    loop->ready_tail = &loop->ready_head;
    atomic_init(&loop->posted, NULL);
    atomic_init(&loop->wake_pending, 0);
    list_init(&loop->cos);
    loop->now = corio_now();
    loop->stats.started = loop->now;
    corio__wheel_init(&loop->wheel, loop->now);

    int err = be->init(loop);
    if (err < 0)
        goto out_free;
    if (!o.no_overflow_handler) {
        err = corio__overflow_handler_install();
        if (err == 0)
            err = corio__altstack_setup();
        if (err < 0)
            goto out_fini;
        loop->altstack = true;
    }
    *out = loop;
    return 0;

out_fini:
    be->fini(loop);
out_free:
    corio__free(loop);
    return err;
}

static bool alive(const corio_loop *loop)
{
    return loop->refs > 0 || loop->nready > 0;
}

int corio_loop_free(corio_loop *loop)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (alive(loop) || loop->nco || loop->wheel.count || loop->nwatchers || loop->running)
        return -EBUSY;
    /* The pool's workers may still post completions: areas stop first. */
    for (struct corio_loop_ext *e = loop->exts; e; e = e->next) {
        int r = e->stop ? e->stop(loop, e) : 0;
        if (r < 0)
            return r;
    }
    if (atomic_load(&loop->posted))
        return -EBUSY;
    while (loop->exts) {
        struct corio_loop_ext *e = loop->exts;
        loop->exts = e->next;
        e->fini(loop, e);
    }
    if (loop->stack_check)
        fprintf(stderr, "corio: deepest coroutine stack use: %zu of %zu bytes (page granularity)\n",
                loop->stack_high_water, loop->stack_size);
    loop->be->fini(loop);
    for (size_t c = 0; c < loop->nchunks; c++)
        corio__free(loop->fds[c]);
    corio__free(loop->fds);
    corio__stack_pool_free(loop);
    corio__park_fini(loop);
    corio__buf_pool_free(loop);
    corio__co_free_all(loop);
    if (loop->altstack)
        corio__altstack_release();
    corio__free(loop);
    return 0;
}

void corio__loop_drain_posted(corio_loop *loop)
{
    atomic_store(&loop->wake_pending, 0);
    corio_callback *cb = atomic_exchange(&loop->posted, NULL), *rev = NULL;
    while (cb) { /* the stack is newest first: reverse it into post order */
        corio_callback *next = cb->next;
        cb->next = rev;
        rev = cb;
        cb = next;
    }
    while (rev) {
        corio_callback *next = rev->next;
        rev->next = NULL;
        *loop->ready_tail = rev;
        loop->ready_tail = &rev->next;
        loop->nready++;
        rev = next;
    }
}

int corio_loop_wake(corio_loop *loop)
{
    if (atomic_exchange(&loop->wake_pending, 1))
        return 0; /* a wakeup is already on its way */
    int r = loop->be->wake(loop);
    if (r < 0) /* none is: let the next call try again */
        atomic_store(&loop->wake_pending, 0);
    return r;
}

int corio_loop_post(corio_loop *loop, corio_callback *cb)
{
    corio_callback *old = atomic_load(&loop->posted);
    do
        cb->next = old;
    while (!atomic_compare_exchange_weak(&loop->posted, &old, cb));
    return corio_loop_wake(loop);
}

/* Runs what was ready when the pass began; what becomes ready meanwhile
 * waits for the next pass. */
static unsigned run_ready(corio_loop *loop)
{
    unsigned n = 0;
    corio_callback *cb = loop->ready_head;
    loop->ready_head = NULL;
    loop->ready_tail = &loop->ready_head;
    CORIO_STAT(corio__hist_add_uncounted(&loop->stats.ready_per_pass, loop->nready));
    loop->nready = 0;
    while (cb) {
        corio_callback *next = cb->next;
        cb->next = NULL;
        cb->fn(loop, cb);
        cb = next;
        n++;
    }
    return n;
}

static bool timers_armed(const corio_loop *loop)
{
    return loop->wheel.levels || !list_empty(&loop->wheel.due);
}

/* The time of the wait just delivered, for the coroutines it woke that
 * are sampled for resume_ns: they run in the next pass, before any other
 * wait, and co_resume() (co.c) takes the time from here. */
static inline void stamp_end(corio_loop *loop)
{
    if (loop->stats.stamp_pending) {
        loop->stats.stamp_pending = false;
        loop->stats.stamp_at = loop->now;
        if (loop->parks)
            corio__park_stamp(loop); /* the same for a parked fd's wakeup */
    }
}

/* One backend wait (timeout_ns: -1 forever, 0 none), with its counters. */
static int poll_backend(corio_loop *loop, int64_t timeout)
{
    /* Events left from the last wait go out first, with no syscall and so
     * nothing to count (backend-epoll.c hands them out in batches). */
    if (loop->backlog) {
        int n = loop->be->poll(loop, 0);
        loop->since_poll = 0;
        if (timers_armed(loop) || (CORIO_STATS_ON && loop->stats.stamp_pending)) {
            corio__loop_update_time(loop);
            CORIO_STAT(stamp_end(loop));
        }
        return n;
    }
    /* Time blocked is sampled: one wait in 8 that may block reads the
     * clock before it, and each sample counts for 8. */
    int64_t t0 = 0;
    CORIO_STAT(if (timeout != 0 && (loop->stats.polls & 7) == 0) t0 = corio_now());
    int n = loop->be->poll(loop, timeout);
    if (n < 0)
        return n;
    loop->since_poll = 0;
    /* The clock is read only when something needs it: timers to run, a
     * blocked-time sample, or a resume-latency sample (wake_co in fd.c).
     * A ping-pong without timers reads it for the samples only. */
    if (timers_armed(loop) || t0 || (CORIO_STATS_ON && loop->stats.stamp_pending)) {
        corio__loop_update_time(loop);
        CORIO_STAT(stamp_end(loop));
    }
    CORIO_STAT(loop->stats.polls++; /* also the WAIT syscalls and the histogram's count */
               corio__hist_add_uncounted(&loop->stats.events_per_wait, (uint64_t)n);
               if (t0 && loop->now > t0) loop->stats.blocked_ns += 8 * (uint64_t)(loop->now - t0));
    return n;
}

int corio_loop_run(corio_loop *loop, corio_run_mode mode)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (loop->running)
        return -EBUSY;
    corio_loop *prev = corio__tls_loop;
    corio__tls_loop = loop;
    loop->running = true;
    loop->stop = false;
    int err = 0;
    corio__loop_update_time(loop);
    while (alive(loop) && !loop->stop) {
        /* While work is ready the backend is asked, without blocking, only
         * once every CORIO__POLL_INTERVAL callbacks (tokio does the same):
         * yields and wakeups between coroutines then cost no syscall, and
         * fds and timers still get their turn within a bounded amount of
         * work.  ONCE and NOWAIT always ask. */
        bool busy = loop->nready > 0;
        if (!busy || mode != CORIO_RUN_DEFAULT || loop->since_poll >= CORIO__POLL_INTERVAL) {
            int64_t timeout = 0;
            if (!busy && mode != CORIO_RUN_NOWAIT && timers_armed(loop)) {
                corio__loop_update_time(loop); /* the pass may have been long */
                timeout = corio__wheel_timeout(loop);
            } else if (!busy && mode != CORIO_RUN_NOWAIT) {
                timeout = -1;
            }
            int n = poll_backend(loop, timeout);
            if (n < 0) {
                err = n;
                break;
            }
        }
        corio__wheel_run(loop);
        loop->since_poll += run_ready(loop); /* counts the iteration (its histogram) */
        if (mode != CORIO_RUN_DEFAULT)
            break;
    }
    loop->running = false;
    corio__tls_loop = prev;
    if (err < 0)
        return err;
    return alive(loop) ? 1 : 0;
}

void corio_loop_stop(corio_loop *loop)
{
    loop->stop = true;
}

corio_loop *corio_loop_current(void)
{
    return corio__tls_loop;
}

const char *corio_loop_backend(const corio_loop *loop)
{
    return loop->be->name;
}

int64_t corio_loop_now(const corio_loop *loop)
{
    return loop->now;
}

int corio_loop_adopt(corio_loop *loop)
{
    if (loop->running)
        return -EBUSY;
    loop->owner = &corio__tls_token;
    return 0;
}

void corio_loop_ref(corio_loop *loop)
{
    loop->refs++;
}

void corio_loop_unref(corio_loop *loop)
{
    CORIO_ASSERT(loop->refs > 0);
    loop->refs--;
}
