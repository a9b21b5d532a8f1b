/* The blocking pool: worker threads that run what would block the loop.
 *
 * One pool per loop, created on first use.  Jobs wait in a FIFO under one
 * mutex; a worker takes a job, runs it unlocked, and puts it on the done
 * list.  The worker that finds the done list not yet announced posts the
 * pool's one callback to the loop (corio_loop_post: at most one eventfd
 * write per batch), and that callback hands the whole batch back on the
 * loop's thread.  So a burst of completions costs the loop one wakeup.
 *
 * Workers never touch the loop, coroutines or corio's allocator (which
 * need not be thread-safe): they only move jobs between lists.
 *
 * A coroutine that stops waiting (deadline, cancellation) leaves its job
 * behind: a job no worker has started is taken back at once; a running
 * one finishes and its result is discarded on the loop's thread.  The job
 * lives on the heap, not on the coroutine's stack, for that reason. */
#include <limits.h>
#include <string.h>

#include "internal.h"

enum { W_IDLE, W_QUEUED, W_RUNNING, W_DONE };

#define POOL_MAX_THREADS 1024u

struct corio_pool {
    struct corio_loop_ext ext;
    corio_loop *loop;

    /* Shared with the workers, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t work;   /* a job was queued, or the pool is stopping */
    corio_list queue;      /* corio_work.link, oldest first */
    corio_list done;       /* finished (or cancelled), not yet handed back */
    unsigned nqueued;
    unsigned nrunning;
    unsigned nidle;        /* workers waiting on `work` */
    bool posted;           /* `deliver` is on its way to the loop */
    bool stopping;

    /* The loop's thread only. */
    unsigned size;         /* most threads */
    unsigned nthreads;
    unsigned threads_cap;
    pthread_t *threads;
    corio_callback deliver;
};

static int pool_stop_for_free(corio_loop *loop, struct corio_loop_ext *e);
static void pool_fini(corio_loop *loop, struct corio_loop_ext *e);

static struct corio_pool *pool_of(corio_loop *loop)
{
    for (struct corio_loop_ext *e = loop->exts; e; e = e->next)
        if (e->fini == pool_fini)
            return corio_container_of(e, struct corio_pool, ext);
    return NULL;
}

/* ---- Workers ---- */

static void *worker(void *arg)
{
    struct corio_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (list_empty(&p->queue) && !p->stopping) {
            p->nidle++;
            pthread_cond_wait(&p->work, &p->mu);
            p->nidle--;
        }
        if (p->stopping)
            break;
        corio_work *w = corio_container_of(p->queue.next, corio_work, link);
        list_remove(&w->link);
        w->state = W_RUNNING;
        p->nqueued--;
        p->nrunning++;
        pthread_mutex_unlock(&p->mu);

        void *result = w->fn(w->arg);

        pthread_mutex_lock(&p->mu);
        w->result = result;
        w->state = W_DONE;
        p->nrunning--;
        list_insert_tail(&p->done, &w->link);
        if (!p->posted) {
            p->posted = true;
            (void)corio_loop_post(p->loop, &p->deliver); /* fails only if the wake fd does */
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Starts one more worker, with every signal blocked so that signals meant
 * for the loop (signal.c) never land on it.  Called under mu. */
static int pool_grow(struct corio_pool *p)
{
    SITE(s_realloc, "malloc");
    SITE(s_mask, "pthread_sigmask");
    SITE(s_create, "pthread_create");
    if (p->nthreads == p->threads_cap) {
        unsigned cap = p->threads_cap ? p->threads_cap * 2 : 4;
        pthread_t *t = corio__realloc(&s_realloc, p->threads, cap * sizeof *t);
        if (!t)
            return -ENOMEM;
        p->threads = t;
        p->threads_cap = cap;
    }
    sigset_t all, old;
    sigfillset(&all);
    int r = sys_sigmask(&s_mask, SIG_SETMASK, &all, &old);
    if (r < 0)
        return r;
    r = sys_pthread_create(&s_create, &p->threads[p->nthreads], worker, p);
    CORIO_ASSERT(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
    if (r == 0)
        p->nthreads++;
    return r;
}

/* Stops and joins every worker.  Jobs still running finish first. */
static void pool_join(struct corio_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        CORIO_ASSERT(pthread_join(p->threads[i], NULL) == 0);
    p->nthreads = 0;
    pthread_mutex_lock(&p->mu);
    p->stopping = false;
    pthread_mutex_unlock(&p->mu);
}

/* ---- The loop's side ---- */

/* Hands the finished jobs back, on the loop's thread. */
static void pool_deliver(corio_loop *loop, corio_callback *cb)
{
    struct corio_pool *p = cb->data;
    corio_list batch;
    list_init(&batch);
    pthread_mutex_lock(&p->mu);
    list_splice_tail(&batch, &p->done);
    p->posted = false;
    pthread_mutex_unlock(&p->mu);
    while (!list_empty(&batch)) {
        corio_work *w = corio_container_of(batch.next, corio_work, link);
        list_remove(&w->link);
        w->state = W_IDLE;
        if (w->ref)
            corio_loop_unref(loop);
        w->done(loop, w, w->cancelled ? -ECANCELED : 0);
    }
}

static unsigned default_size(void)
{
    const char *v = getenv("CORIO_POOL_SIZE");
    unsigned long n = v && *v ? strtoul(v, NULL, 10) : 0;
    return n >= 1 && n <= POOL_MAX_THREADS ? (unsigned)n : 4;
}

static int pool_get(corio_loop *loop, struct corio_pool **out)
{
    SITE(s_malloc, "malloc");
    struct corio_pool *p = pool_of(loop);
    if (!p) {
        if (!(p = corio__calloc(&s_malloc, 1, sizeof *p)))
            return -ENOMEM;
        CORIO_ASSERT(pthread_mutex_init(&p->mu, NULL) == 0);
        CORIO_ASSERT(pthread_cond_init(&p->work, NULL) == 0);
        p->loop = loop;
        list_init(&p->queue);
        list_init(&p->done);
        p->size = default_size();
        p->deliver.fn = pool_deliver;
        p->deliver.data = p;
        p->ext.fini = pool_fini;
        p->ext.stop = pool_stop_for_free;
        p->ext.next = loop->exts;
        loop->exts = &p->ext;
    }
    *out = p;
    return 0;
}

static int submit(corio_loop *loop, corio_work *w, bool ref)
{
    struct corio_pool *p;
    int r = pool_get(loop, &p);
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->mu);
    if (p->nqueued + 1 > p->nidle && p->nthreads < p->size) {
        r = pool_grow(p);
        if (r < 0 && p->nthreads > 0)
            r = 0; /* the running workers will get to it */
    }
    if (r == 0) {
        w->pool = p;
        w->state = W_QUEUED;
        w->cancelled = 0;
        w->ref = ref;
        list_insert_tail(&p->queue, &w->link);
        p->nqueued++;
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    if (r == 0 && ref)
        loop->refs++;
    return r;
}

/* Takes w back if no worker has started it. */
static bool unqueue(corio_work *w)
{
    struct corio_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    bool queued = w->state == W_QUEUED;
    if (queued) {
        list_remove(&w->link);
        p->nqueued--;
    }
    pthread_mutex_unlock(&p->mu);
    return queued;
}

/* Removes cb from the loop's ready queue, where draining the posted
 * stack may have put it. */
static void ready_remove(corio_loop *loop, corio_callback *cb)
{
    for (corio_callback **pp = &loop->ready_head; *pp; pp = &(*pp)->next) {
        if (*pp != cb)
            continue;
        *pp = cb->next;
        if (!*pp)
            loop->ready_tail = pp;
        cb->next = NULL;
        loop->nready--;
        return;
    }
}

/* Before the loop is freed: no coroutine waits any more, so what is left
 * are jobs their callers gave up on.  Join the workers (running jobs
 * finish), then hand back what they finished, which discards it. */
static int pool_stop_for_free(corio_loop *loop, struct corio_loop_ext *e)
{
    struct corio_pool *p = corio_container_of(e, struct corio_pool, ext);
    pool_join(p);
    if (p->posted) {
        /* `deliver` sits in the posted stack: take it out and run it here.
         * Anything else posted is left queued to run, and keeps the loop. */
        corio__loop_drain_posted(loop);
        ready_remove(loop, &p->deliver);
        pool_deliver(loop, &p->deliver);
    }
    return loop->nready ? -EBUSY : 0;
}

static void pool_fini(corio_loop *loop, struct corio_loop_ext *e)
{
    struct corio_pool *p = corio_container_of(e, struct corio_pool, ext);
    (void)loop;
    CORIO_ASSERT(p->nthreads == 0 && list_empty(&p->queue) && list_empty(&p->done));
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    corio__free(p->threads);
    corio__free(p);
}

/* ---- Public calls ---- */

int corio_pool_set_size(corio_loop *loop, unsigned threads)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (threads < 1 || threads > POOL_MAX_THREADS)
        return -EINVAL;
    struct corio_pool *p;
    int r = pool_get(loop, &p);
    if (r < 0)
        return r;
    p->size = threads;
    return 0;
}

int corio_pool_stop(corio_loop *loop)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    struct corio_pool *p = pool_of(loop);
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    bool busy = p->nqueued || p->nrunning;
    pthread_mutex_unlock(&p->mu);
    if (busy)
        return -EBUSY;
    pool_join(p);
    return 0;
}

void corio_work_init(corio_work *w, void *(*fn)(void *arg), corio_work_done_fn done, void *arg)
{
    memset(w, 0, sizeof *w);
    w->fn = fn;
    w->done = done;
    w->arg = arg;
}

int corio_work_submit(corio_loop *loop, corio_work *w)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (!w->fn || !w->done)
        return -EINVAL;
    if (w->pool) {
        pthread_mutex_lock(&w->pool->mu);
        bool idle = w->state == W_IDLE;
        pthread_mutex_unlock(&w->pool->mu);
        if (!idle)
            return -EBUSY;
    }
    return submit(loop, w, true);
}

int corio_work_cancel(corio_work *w)
{
    struct corio_pool *p = w->pool;
    if (!p)
        return -EINVAL;
    if (!corio__loop_owned(p->loop))
        return -CORIO_EWRONGLOOP;
    pthread_mutex_lock(&p->mu);
    if (w->state != W_QUEUED) {
        pthread_mutex_unlock(&p->mu);
        return -EBUSY;
    }
    list_remove(&w->link);
    p->nqueued--;
    w->state = W_DONE;
    w->cancelled = 1;
    list_insert_tail(&p->done, &w->link);
    bool announce = !p->posted;
    p->posted = true;
    pthread_mutex_unlock(&p->mu);
    if (announce)
        corio_call_soon(p->loop, &p->deliver);
    return 0;
}

/* ---- Coroutines: corio_pool_run ---- */

struct pool_call {
    corio_work work;
    corio_co *co;   /* the caller while it waits; NULL once it gave up */
    void (*discard)(void *arg, void *result);
    bool finished;
};

static void call_done(corio_loop *loop, corio_work *w, int status)
{
    struct pool_call *c = corio_container_of(w, struct pool_call, work);
    (void)loop;
    if (c->co) {
        c->finished = true;
        corio__wake(c->co, 0);
        return;
    }
    if (c->discard)
        c->discard(w->arg, status == 0 ? w->result : NULL);
    corio__free(c);
}

/* What corio__park would refuse, checked before any work is queued. */
static int can_park(corio_loop *loop, int64_t deadline)
{
    if (!loop || !loop->cur)
        return -CORIO_ENOTCO;
    if (loop->cur->cancelled)
        return -ECANCELED;
    if (deadline == CORIO_NOWAIT)
        return -EAGAIN;
    if (deadline <= loop->now)
        return -ETIMEDOUT;
    return 0;
}

int corio_pool_run(void *(*fn)(void *arg), void *arg, void (*discard)(void *arg, void *result),
                   void **result, int64_t deadline)
{
    SITE(s_malloc, "malloc");
    corio_loop *loop = corio__tls_loop;
    struct pool_call *c = NULL;
    int err = can_park(loop, deadline);
    if (err == 0 && !(c = corio__malloc(&s_malloc, sizeof *c)))
        err = -ENOMEM;
    if (err == 0) {
        corio_work_init(&c->work, fn, call_done, arg);
        c->co = loop->cur;
        c->discard = discard;
        c->finished = false;
        if ((err = submit(loop, &c->work, false)) < 0)
            corio__free(c);
    }
    if (err < 0)
        goto out_discard;

    err = corio__park(loop, deadline);
    if (c->finished) { /* even if the deadline fired meanwhile: the work is done */
        if (result)
            *result = c->work.result;
        corio__free(c);
        return 0;
    }
    CORIO_ASSERT(err < 0);
    c->co = NULL; /* a worker has it: call_done discards the result */
    if (!unqueue(&c->work))
        return err;
    corio__free(c);
out_discard:
    if (discard)
        discard(arg, NULL);
    return err;
}
