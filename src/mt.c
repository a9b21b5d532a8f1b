/* Many loops: cross-loop calls, groups of loops on threads, and servers
 * with a connection limit.
 *
 * Loops never share objects.  The only way between them is
 * corio_loop_post(): an atomic push onto the target's Treiber stack and at
 * most one eventfd write per batch (the wake_pending flag), so a burst of
 * messages to a busy loop costs one wakeup. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- Cross-loop calls ----
 *
 * The message is allocated by the caller and freed on the caller's thread
 * only: by the caller when the answer came, or by the reply callback when
 * the caller gave up (deadline, cancel).  The target touches it until it
 * posts the reply, and the reply always comes, so the caller's loop holds
 * a reference until then. */

struct call {
    corio_callback req;   /* runs on the target */
    corio_callback reply; /* runs on the caller's loop */
    corio_loop *caller;
    corio_co *co;         /* the parked caller; NULL once it gave up */
    corio_fn fn;
    void *arg;
    void *result;
    int status;
    bool replied;
};

static void *call_run(void *p)
{
    struct call *c = p;
    c->result = c->fn(c->arg);
    (void)corio_loop_post(c->caller, &c->reply);
    return NULL;
}

static void call_req(corio_loop *target, corio_callback *cb)
{
    struct call *c = cb->data;
    int r = corio_spawn(target, NULL, call_run, c, 0);
    if (r < 0) {
        c->status = r;
        (void)corio_loop_post(c->caller, &c->reply);
    }
}

static void call_reply(corio_loop *loop, corio_callback *cb)
{
    struct call *c = cb->data;
    corio_loop_unref(loop);
    c->replied = true;
    if (c->co)
        corio__wake(c->co, 0);
    else
        corio__free(c);
}

int corio_loop_call(corio_loop *target, corio_fn fn, void *arg, void **result, int64_t deadline)
{
    SITE(s_malloc, "malloc");
    corio_loop *loop = corio__tls_loop;
    if (!loop || !loop->cur)
        return -CORIO_ENOTCO;
    if (!target || !fn)
        return -EINVAL;
    if (loop->cur->cancelled)
        return -ECANCELED;
    if (deadline == CORIO_NOWAIT)
        return -EAGAIN;
    if (deadline <= loop->now)
        return -ETIMEDOUT;
    struct call *c = corio__malloc(&s_malloc, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (struct call){.req = {.fn = call_req, .data = c},
                       .reply = {.fn = call_reply, .data = c},
                       .caller = loop,
                       .co = loop->cur,
                       .fn = fn,
                       .arg = arg};
    corio_loop_ref(loop); /* until the reply, whatever happens to us */
    /* The message is queued even if the wakeup write fails; the target
     * then sees it at its next wakeup. */
    (void)corio_loop_post(target, &c->req);
    int r = corio__park(loop, deadline);
    if (!c->replied) {
        c->co = NULL; /* the reply callback frees it */
        return r < 0 ? r : -EINTR;
    }
    r = c->status;
    if (r == 0 && result)
        *result = c->result;
    corio__free(c);
    return r;
}

/* ---- Groups of loops on threads ---- */

struct mt_loop {
    corio_mt *mt;
    unsigned index;
    int cpu;              /* pin to it, or -1 */
    pthread_t thread;
    bool thread_started;
    bool setup_over;      /* init runs in the setup pass or never */
    corio_loop *loop;
    int err;
    corio_callback init;  /* runs init on the loop */
    corio_callback shut;  /* posted by corio_mt_shutdown() */
    corio_timer deadline; /* cancels what is left */
};

struct corio_mt {
    unsigned n;
    corio_mt_options o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inited;      /* inits done, in index order */
    int verdict;          /* 0: undecided, 1: serve, -1: abort */
    int err;              /* the first init error */
    atomic_int shutting;
    _Atomic int64_t deadline;
    atomic_uint finished; /* loops whose work is done */
    unsigned live;        /* threads running */
    unsigned gone;        /* threads past their loop's last use */
    bool posting;         /* corio_mt_shutdown() is still touching the loops */
    struct mt_loop loops[];
};

static void cancel_all(corio_loop *loop)
{
    for (corio_list *l = loop->cos.next; l != &loop->cos; l = l->next) {
        corio_co *co = corio_container_of(l, corio_co, all);
        if (co->state != CO_DONE && !co->cancelled)
            (void)corio_cancel(co);
    }
}

/* At the shutdown deadline, and every 50 ms after it while work remains:
 * cancel every coroutine (new ones included) and wake parked fds. */
static void on_deadline(corio_loop *loop, corio_timer *t)
{
    cancel_all(loop);
    (void)corio_park_shutdown(loop);
    corio_timer_start(loop, t, loop->now + 50 * CORIO_MSEC);
}

static void on_shutdown(corio_loop *loop, corio_callback *cb)
{
    struct mt_loop *ml = cb->data;
    corio_mt *mt = ml->mt;
    if (mt->o.shutdown)
        mt->o.shutdown(loop, ml->index, mt->o.data);
    (void)corio_park_shutdown(loop);
    corio_timer_init(&ml->deadline, on_deadline, ml);
    ml->deadline.unref = 1; /* must not keep the loop alive */
    corio_timer_start(loop, &ml->deadline, atomic_load(&mt->deadline));
    corio_loop_unref(loop); /* the group's hold since the start */
}

static void run_init(corio_loop *loop, corio_callback *cb)
{
    struct mt_loop *ml = cb->data;
    corio_mt *mt = ml->mt;
    /* A pass that failed in the backend (ppoll's ENOMEM) leaves init
     * queued: by the time it runs, the group is being torn down. */
    if (mt->o.init && !ml->setup_over)
        ml->err = mt->o.init(loop, ml->index, mt->o.data);
}

static int pin_self(int cpu)
{
#ifdef __linux__
    SITE(s_affinity, "sched_setaffinity");
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sys_sched_setaffinity(&s_affinity, &set);
#else
    (void)cpu;
    return -ENOTSUP;
#endif
}

/* Creates the loop and runs init, in index order; then waits for the
 * verdict: serve if every loop started, abort if one did not. */
static bool mt_setup(struct mt_loop *ml)
{
    corio_mt *mt = ml->mt;
    int err = ml->cpu >= 0 ? pin_self(ml->cpu) : 0;
    pthread_mutex_lock(&mt->mu);
    while (mt->inited < ml->index && mt->verdict == 0)
        pthread_cond_wait(&mt->cv, &mt->mu);
    bool go_on = mt->verdict == 0;
    pthread_mutex_unlock(&mt->mu);
    if (err == 0 && go_on)
        err = corio_loop_new(&ml->loop, &mt->o.loop);
    if (err == 0 && go_on) {
        ml->init = (corio_callback){.fn = run_init, .data = ml};
        corio_call_soon(ml->loop, &ml->init);
        err = corio_loop_run(ml->loop, CORIO_RUN_NOWAIT);
        ml->setup_over = true;
        err = err < 0 ? err : ml->err;
    }
    pthread_mutex_lock(&mt->mu);
    if (err < 0 && mt->err == 0)
        mt->err = err;
    if (err < 0)
        mt->verdict = -1;
    mt->inited++;
    if (mt->inited == mt->n && mt->verdict == 0)
        mt->verdict = 1;
    pthread_cond_broadcast(&mt->cv);
    while (mt->verdict == 0)
        pthread_cond_wait(&mt->cv, &mt->mu);
    bool serve = mt->verdict > 0;
    pthread_mutex_unlock(&mt->mu);
    return serve;
}

static void mt_wake_all(corio_mt *mt)
{
    for (unsigned i = 0; i < mt->n; i++)
        if (mt->loops[i].loop)
            (void)corio_loop_wake(mt->loops[i].loop);
}

/* A loop whose own work is done may still be sent calls by loops that are
 * still working, so it keeps answering until every loop is done.  A call
 * holds its caller's loop alive until the reply, so "every loop done"
 * means no message is in flight anywhere. */
static void mt_finish(struct mt_loop *ml)
{
    corio_mt *mt = ml->mt;
    if (atomic_fetch_add(&mt->finished, 1) + 1 == mt->n)
        mt_wake_all(mt);
    while (ml->loop && atomic_load(&mt->finished) < mt->n) {
        corio_loop_ref(ml->loop);
        int r = corio_loop_run(ml->loop, CORIO_RUN_ONCE); /* sleeps until a post */
        corio_loop_unref(ml->loop);
        if (r >= 0)
            r = corio_loop_run(ml->loop, CORIO_RUN_DEFAULT);
        if (r < 0) {
            ml->err = r;
            break;
        }
    }
}

static void *mt_thread(void *p)
{
    struct mt_loop *ml = p;
    corio_mt *mt = ml->mt;
    bool serve = mt_setup(ml);
    if (ml->loop) {
        ml->err = 0;
        corio_loop_ref(ml->loop); /* serve until the shutdown */
        if (!serve) {
            atomic_store(&mt->deadline, corio_now());
            on_shutdown(ml->loop, &ml->shut);
        }
        int r;
        /* Out of memory in the kernel's poll (ppoll's ENOMEM) ends a run,
         * not the loop, whose connections would otherwise stall and whose
         * keep-alive ref would keep it from being freed: run it again. */
        while ((r = corio_loop_run(ml->loop, CORIO_RUN_DEFAULT)) == -ENOMEM)
            nanosleep(&(struct timespec){0, CORIO_MSEC}, NULL);
        if (r < 0)
            ml->err = r;
    }
    mt_finish(ml);
    /* No loop is touched once every thread is past this point, so each
     * thread can free its own. */
    pthread_mutex_lock(&mt->mu);
    if (++mt->gone == mt->live)
        pthread_cond_broadcast(&mt->cv);
    while (mt->gone < mt->live || mt->posting)
        pthread_cond_wait(&mt->cv, &mt->mu);
    pthread_mutex_unlock(&mt->mu);
    if (ml->loop) {
        if (ml->deadline.fn)
            corio_timer_stop(ml->loop, &ml->deadline);
        int r = corio_loop_free(ml->loop);
        if (r < 0 && ml->err == 0)
            ml->err = r; /* left allocated: something ignored cancellation */
    }
    return NULL;
}

static unsigned allowed_cpus(int *cpus, unsigned max)
{
    unsigned n = 0;
#ifdef __linux__
    SITE(s_affinity, "sched_getaffinity");
    cpu_set_t set;
    if (sys_sched_getaffinity(&s_affinity, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE && n < max; c++)
            if (CPU_ISSET(c, &set))
                cpus[n++] = c;
#endif
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        for (n = 0; n < (c > 0 ? (unsigned)c : 1u) && n < max; n++)
            cpus[n] = (int)n;
    }
    return n;
}

static void mt_free(corio_mt *mt)
{
    pthread_cond_destroy(&mt->cv);
    pthread_mutex_destroy(&mt->mu);
    corio__free(mt);
}

int corio_mt_start(corio_mt **out, const corio_mt_options *o)
{
    SITE(s_malloc, "malloc");
    SITE(s_thread, "pthread_create");
    enum { MAX_CPUS = 1024 };
    static const corio_mt_options none;
    if (!o)
        o = &none;
    int cpus[MAX_CPUS];
    unsigned ncpu = allowed_cpus(cpus, MAX_CPUS);
    unsigned n = o->threads ? o->threads : ncpu;
    if (n > 4096)
        return -EINVAL;
    corio_mt *mt = corio__calloc(&s_malloc, 1, sizeof *mt + n * sizeof mt->loops[0]);
    if (!mt)
        return -ENOMEM;
    mt->n = n;
    mt->o = *o;
    mt->live = n;
    pthread_mutex_init(&mt->mu, NULL);
    pthread_cond_init(&mt->cv, NULL);
    atomic_init(&mt->shutting, 0);
    atomic_init(&mt->deadline, CORIO_FOREVER);
    atomic_init(&mt->finished, 0);
    int err = 0;
    unsigned started = 0;
    for (; started < n; started++) {
        struct mt_loop *ml = &mt->loops[started];
        ml->mt = mt;
        ml->index = started;
        ml->cpu = o->pin ? cpus[started % ncpu] : -1;
        ml->shut = (corio_callback){.fn = on_shutdown, .data = ml};
        err = sys_pthread_create(&s_thread, &ml->thread, mt_thread, ml);
        if (err < 0)
            break;
    }
    pthread_mutex_lock(&mt->mu);
    if (err < 0) {
        /* The threads that exist abort; the missing ones count as done. */
        mt->err = err;
        mt->verdict = -1;
        mt->live = started;
        atomic_fetch_add(&mt->finished, n - started);
        pthread_cond_broadcast(&mt->cv);
    }
    while (mt->verdict == 0)
        pthread_cond_wait(&mt->cv, &mt->mu);
    err = mt->verdict > 0 ? 0 : mt->err;
    pthread_mutex_unlock(&mt->mu);
    if (err < 0) {
        for (unsigned i = 0; i < started; i++)
            pthread_join(mt->loops[i].thread, NULL);
        mt_free(mt);
        return err;
    }
    *out = mt;
    return 0;
}

unsigned corio_mt_threads(const corio_mt *mt)
{
    return mt->n;
}

corio_loop *corio_mt_loop(const corio_mt *mt, unsigned i)
{
    return i < mt->n ? mt->loops[i].loop : NULL;
}

int corio_mt_shutdown(corio_mt *mt, int64_t deadline)
{
    if (atomic_exchange(&mt->shutting, 1))
        return 0;
    atomic_store(&mt->deadline, deadline);
    /* A loop can finish as soon as it has its message, while this thread
     * is still inside corio_loop_post() for it (the eventfd write comes
     * after the push): no loop is freed until `posting` is over. */
    pthread_mutex_lock(&mt->mu);
    mt->posting = true;
    pthread_mutex_unlock(&mt->mu);
    int err = 0;
    for (unsigned i = 0; i < mt->n; i++) {
        int r = corio_loop_post(mt->loops[i].loop, &mt->loops[i].shut);
        if (r < 0 && err == 0)
            err = r;
    }
    pthread_mutex_lock(&mt->mu);
    mt->posting = false;
    pthread_cond_broadcast(&mt->cv);
    pthread_mutex_unlock(&mt->mu);
    return err;
}

int corio_mt_join(corio_mt *mt)
{
    int err = 0;
    for (unsigned i = 0; i < mt->n; i++) {
        pthread_join(mt->loops[i].thread, NULL);
        if (mt->loops[i].err < 0 && err == 0)
            err = mt->loops[i].err;
    }
    mt_free(mt);
    return err;
}

/* ---- Servers ----
 *
 * One acceptor coroutine per server.  The connection limit lives here,
 * above the listener: at max_conns the acceptor parks and the kernel's
 * backlog holds new connections (then SYN cookies or drops: the kernel's
 * overload policy), while corio_server_close() wakes it below 7/8 of the
 * limit, so it does not flap at the edge.  Descriptor exhaustion is the
 * listener's business (net.c: the reserve fd).  Accepts in a row are
 * bounded by accept_batch, so a connection flood cannot starve the
 * connections already open. */

struct corio_server {
    corio_loop *loop;
    corio_listener *listener; /* NULL once stopped */
    corio_co *acceptor;       /* NULL once it has ended */
    corio_server_fn handler;
    void *data;
    unsigned max_conns, resume_at, batch;
    int64_t first_byte_timeout;
    size_t stack_size;
    bool paused;
    corio_server_stats st;
};

struct conn_start {
    corio_server *srv;
    int fd;
};

static void server_maybe_free(corio_server *srv)
{
    if (!srv->listener && !srv->acceptor && srv->st.conns == 0)
        corio__free(srv);
}

static void *conn_main(void *p)
{
    struct conn_start cs = *(struct conn_start *)p;
    corio__free(p);
    cs.srv->handler(cs.srv, cs.fd, cs.srv->data);
    return NULL;
}

static void first_bytes(int fd, void *data, int reason)
{
    corio_server *srv = data;
    if (reason > 0) {
        srv->handler(srv, fd, srv->data);
    } else if (reason == -CORIO_ECLOSED) {
        corio_server_release(srv);
    } else {
        (void)corio_server_close(srv, fd); /* silent, or shutting down */
    }
}

/* Hands fd to the handler: parked until its first bytes, or in a
 * coroutine of its own.  On failure the connection is closed. */
static void start_conn(corio_server *srv, int fd)
{
    SITE(s_malloc, "malloc");
    srv->st.conns++;
    srv->st.accepted++;
    if (srv->first_byte_timeout > 0) {
        int r = corio_park(srv->loop, fd, first_bytes, srv, corio_after(srv->first_byte_timeout));
        if (r == 0)
            return;
        if (r == -ECANCELED) { /* shutting down */
            (void)corio_server_close(srv, fd);
            return;
        }
    }
    struct conn_start *cs = corio__malloc(&s_malloc, sizeof *cs);
    if (cs) {
        cs->srv = srv;
        cs->fd = fd;
        if (corio_spawn(srv->loop, NULL, conn_main, cs, srv->stack_size) == 0)
            return;
        corio__free(cs);
    }
    srv->st.accept_errors++;
    (void)corio_server_close(srv, fd);
}

static bool accept_fatal(int r)
{
    return r == -CORIO_ECLOSED || r == -ECANCELED || r == -EBADF || r == -EINVAL ||
           r == -ENOTSOCK || r == -CORIO_EWRONGLOOP;
}

static void *acceptor(void *p)
{
    corio_server *srv = p;
    unsigned burst = 0;
    while (srv->listener) {
        if (srv->max_conns && srv->st.conns >= srv->max_conns) {
            srv->paused = true;
            srv->st.paused++;
            int r = corio__park(srv->loop, CORIO_FOREVER); /* corio_server_close wakes us */
            srv->paused = false;
            if (r == -ECANCELED)
                break;
            continue;
        }
        int fd = corio_listener_accept(srv->listener, NULL, CORIO_FOREVER);
        if (!srv->listener) { /* stopped while we were parked */
            if (fd >= 0)
                (void)corio_close(fd);
            break;
        }
        if (fd < 0) {
            if (accept_fatal(fd))
                break;
            srv->st.accept_errors++;
            if (fd == -EMFILE || fd == -ENFILE)
                srv->st.emfile++;
            else if (corio_sleep_until(corio_after(10 * CORIO_MSEC)) < 0) /* ENOBUFS, ENOMEM */
                break;
            continue;
        }
        start_conn(srv, fd);
        if (++burst >= srv->batch) {
            burst = 0;
            if (corio_yield() < 0 || corio_cancelled())
                break;
        }
    }
    srv->acceptor = NULL;
    if (srv->listener) { /* ended by cancellation: stop for good */
        (void)corio_listener_close(srv->listener);
        srv->listener = NULL;
    }
    server_maybe_free(srv);
    return NULL;
}

int corio_server_start(corio_loop *loop, corio_server **out, const corio_server_options *o)
{
    SITE(s_malloc, "malloc");
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (!o || !o->listener || !o->handler || o->first_byte_timeout < 0)
        return -EINVAL;
    corio_server *srv = corio__calloc(&s_malloc, 1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->listener = o->listener;
    srv->handler = o->handler;
    srv->data = o->data;
    srv->max_conns = o->max_conns;
    srv->resume_at = o->max_conns - o->max_conns / 8;
    srv->batch = o->accept_batch ? o->accept_batch : 64;
    srv->first_byte_timeout = o->first_byte_timeout;
    srv->stack_size = o->stack_size;
    int err = corio_spawn(loop, &srv->acceptor, acceptor, srv, 0);
    if (err < 0) {
        corio__free(srv);
        return err;
    }
    corio_detach(srv->acceptor);
    if (out)
        *out = srv;
    return 0;
}

void corio_server_stop(corio_server *srv)
{
    if (!srv->listener)
        return;
    corio_listener *l = srv->listener;
    srv->listener = NULL;
    /* Closing the fd wakes an acceptor parked in accept; one paused at the
     * limit or yielding sees the NULL listener when it runs. */
    (void)corio_listener_close(l);
    if (srv->acceptor && srv->paused)
        corio__wake(srv->acceptor, -ECANCELED);
    server_maybe_free(srv);
}

void corio_server_release(corio_server *srv)
{
    CORIO_ASSERT(srv->st.conns > 0);
    srv->st.conns--;
    if (srv->paused && srv->st.conns < srv->resume_at)
        corio__wake(srv->acceptor, 0);
    server_maybe_free(srv);
}

int corio_server_close(corio_server *srv, int fd)
{
    int r = corio_close(fd);
    corio_server_release(srv);
    return r;
}

void corio_server_stats_get(const corio_server *srv, corio_server_stats *out)
{
    *out = srv->st;
    if (srv->listener)
        out->emfile += corio_listener_shed(srv->listener);
}
