/* Many loops: cross-loop calls (and a stress run for ThreadSanitizer),
 * coalesced wakeups, groups of loops with pinning and graceful shutdown,
 * and servers under overload: the connection limit, bounded accepts per
 * wakeup, and a flood past the descriptor cap. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/fault.h"
#include "../src/internal.h"
#include "test.h"

/* ---- Cross-loop calls ---- */

static void *whoami(void *arg)
{
    (void)arg;
    return corio_loop_current();
}

struct call_env {
    corio_mt *mt;
    int rc;
    void *result;
};

static int start_call(corio_loop *loop, unsigned index, void *data);

static void *caller(void *p)
{
    struct call_env *e = p;
    e->rc = corio_loop_call(corio_mt_loop(e->mt, 1), whoami, NULL, &e->result, corio_after(5 * CORIO_SEC));
    return NULL;
}

TEST(mt_loop_call_roundtrip)
{
    struct call_env e = {0};
    corio_mt_options o = {.threads = 2};
    CHECK_EQ(corio_mt_start(&e.mt, &o), 0);
    CHECK_EQ(corio_mt_threads(e.mt), 2);
    CHECK_EQ(start_call(corio_mt_loop(e.mt, 0), 0, &e), 0);
    CHECK_EQ(e.rc, 0);
    CHECK(e.result == corio_mt_loop(e.mt, 1)); /* it ran on loop 1 */
    corio_mt_shutdown(e.mt, corio_after(5 * CORIO_SEC));
    CHECK_EQ(corio_mt_join(e.mt), 0);
}

/* Posts a callback to loop that spawns caller() there, and waits until the
 * caller has finished (a pipe tells this thread). */
struct spawn_req {
    corio_callback cb;
    corio_fn fn;
    void *arg;
    int done[2];
};

static void *then_signal(void *p)
{
    struct spawn_req *r = p;
    r->fn(r->arg);
    CHECK_EQ(write(r->done[1], "x", 1), 1);
    return NULL;
}

static void spawn_cb(corio_loop *loop, corio_callback *cb)
{
    struct spawn_req *r = cb->data;
    CHECK_EQ(corio_spawn(loop, NULL, then_signal, r, 0), 0);
}

static void run_on(corio_loop *loop, corio_fn fn, void *arg)
{
    struct spawn_req r = {.cb = {.fn = spawn_cb, .data = &r}, .fn = fn, .arg = arg};
    CHECK_EQ(pipe2(r.done, O_CLOEXEC), 0);
    CHECK_EQ(corio_loop_post(loop, &r.cb), 0);
    char c;
    CHECK_EQ(read(r.done[0], &c, 1), 1);
    close(r.done[0]);
    close(r.done[1]);
}

static int start_call(corio_loop *loop, unsigned index, void *data)
{
    (void)index;
    run_on(loop, caller, data);
    return 0;
}

/* A target that is slow: the caller gives up at its deadline, the answer
 * comes later and is dropped, nothing leaks. */
static void *slow(void *arg)
{
    corio_sleep_until(corio_after(150 * CORIO_MSEC));
    return arg;
}

struct giveup {
    corio_mt *mt;
    int timed_out, cancelled;
    corio_co *victim;
};

static void *call_slow(void *p)
{
    struct giveup *g = p;
    void *res = NULL;
    g->timed_out = corio_loop_call(corio_mt_loop(g->mt, 1), slow, g, &res, corio_after(20 * CORIO_MSEC));
    return NULL;
}

static void *call_slow_forever(void *p)
{
    struct giveup *g = p;
    return (void *)(intptr_t)corio_loop_call(corio_mt_loop(g->mt, 1), slow, g, NULL, CORIO_FOREVER);
}

static void *cancel_a_caller(void *p)
{
    struct giveup *g = p;
    corio_co *co;
    CHECK_EQ(corio_spawn(corio_loop_current(), &co, call_slow_forever, g, 0), 0);
    corio_sleep_until(corio_after(20 * CORIO_MSEC));
    CHECK_EQ(corio_cancel(co), 0);
    void *r;
    CHECK_EQ(corio_join(co, &r, corio_after(CORIO_SEC)), 0);
    g->cancelled = (int)(intptr_t)r;
    return NULL;
}

TEST(mt_loop_call_deadline_and_cancel)
{
    struct giveup g = {0};
    corio_mt_options o = {.threads = 2};
    CHECK_EQ(corio_mt_start(&g.mt, &o), 0);
    run_on(corio_mt_loop(g.mt, 0), call_slow, &g);
    run_on(corio_mt_loop(g.mt, 0), cancel_a_caller, &g);
    corio_mt_shutdown(g.mt, corio_after(5 * CORIO_SEC));
    CHECK_EQ(corio_mt_join(g.mt), 0); /* waits for the late answers too */
    CHECK_EQ(g.timed_out, -ETIMEDOUT);
    CHECK_EQ(g.cancelled, -ECANCELED);
}

static void *from_plain_thread(void *p)
{
    return (void *)(intptr_t)corio_loop_call(p, whoami, NULL, NULL, CORIO_FOREVER);
}

TEST(mt_loop_call_needs_a_coroutine)
{
    corio_loop *loop = test_loop();
    pthread_t t;
    void *r;
    CHECK_EQ(pthread_create(&t, NULL, from_plain_thread, loop), 0);
    pthread_join(t, &r);
    CHECK_EQ((int)(intptr_t)r, -CORIO_ENOTCO);
    test_loop_free(loop);
}

/* ---- Stress, for ThreadSanitizer: every loop calls every other loop from
 * many coroutines at once.  The function run on the target touches that
 * loop's own plain counter: a call that ran on the wrong thread, or a
 * message whose memory is not ordered between threads, is a data race. */
enum { S_LOOPS = 4, S_COS = 8, S_CALLS = 300 };

struct stress {
    corio_mt *mt;
    long served[S_LOOPS]; /* touched only by loop i's thread */
    long answered[S_LOOPS][S_COS];
    int ready[2];
};

struct stress_arg {
    struct stress *s;
    unsigned loop, co;
};

static struct stress_arg stress_args[S_LOOPS][S_COS];

static void *bump(void *p)
{
    struct stress_arg *a = p;
    corio_loop *loop = corio_loop_current();
    for (unsigned i = 0; i < S_LOOPS; i++)
        if (corio_mt_loop(a->s->mt, i) == loop)
            a->s->served[i]++;
    if (a->co % 3 == 0)
        corio_yield();
    return (void *)(uintptr_t)(a->co + 1);
}

static void *stress_co(void *p)
{
    struct stress_arg *a = p;
    uint32_t x = a->loop * 7919u + a->co * 104729u + 1;
    for (int i = 0; i < S_CALLS; i++) {
        x = x * 1103515245u + 12345u;
        unsigned target = (x >> 16) % S_LOOPS;
        void *r = NULL;
        CHECK_EQ(corio_loop_call(corio_mt_loop(a->s->mt, target), bump, a, &r, corio_after(20 * CORIO_SEC)), 0);
        CHECK_EQ((uintptr_t)r, a->co + 1);
        a->s->answered[a->loop][a->co]++;
    }
    return NULL;
}

static void stress_start(corio_loop *loop, corio_callback *cb)
{
    struct stress_arg *base = cb->data;
    for (unsigned c = 0; c < S_COS; c++)
        CHECK_EQ(corio_spawn(loop, NULL, stress_co, &base[c], 0), 0);
}

TEST_TIMEOUT(mt_loop_call_stress, 120)
{
    static struct stress s;
    memset(&s, 0, sizeof s);
    corio_mt_options o = {.threads = S_LOOPS};
    CHECK_EQ(corio_mt_start(&s.mt, &o), 0);
    static corio_callback cbs[S_LOOPS];
    for (unsigned l = 0; l < S_LOOPS; l++) {
        for (unsigned c = 0; c < S_COS; c++)
            stress_args[l][c] = (struct stress_arg){.s = &s, .loop = l, .co = c};
        cbs[l] = (corio_callback){.fn = stress_start, .data = stress_args[l]};
        CHECK_EQ(corio_loop_post(corio_mt_loop(s.mt, l), &cbs[l]), 0);
    }
    /* Shut down at once: graceful shutdown lets every caller finish. */
    corio_mt_shutdown(s.mt, corio_after(60 * CORIO_SEC));
    CHECK_EQ(corio_mt_join(s.mt), 0);
    long total = 0;
    for (unsigned l = 0; l < S_LOOPS; l++) {
        total += s.served[l];
        for (unsigned c = 0; c < S_COS; c++)
            CHECK_EQ(s.answered[l][c], S_CALLS);
    }
    CHECK_EQ(total, (long)S_LOOPS * S_COS * S_CALLS);
}

/* ---- Coalesced wakeups: a burst of posts to a loop that is not polling
 * costs one eventfd write. ---- */

static struct corio__site *wake_write_site(corio_loop *loop)
{
    struct corio__site *first;
    size_t n = corio__fault_sites(&first);
    const char *file = strcmp(corio_loop_backend(loop), "epoll") == 0 ? "backend-epoll.c" : "backend-poll.c";
    struct corio__site *found = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t fl = strlen(first[i].file), l = strlen(file);
        if (strcmp(first[i].name, "write") == 0 && fl >= l && strcmp(first[i].file + fl - l, file) == 0) {
            CHECK(found == NULL); /* one write site: the wakeup */
            found = &first[i];
        }
    }
    CHECK(found != NULL);
    return found;
}

struct burst_post {
    corio_loop *loop;
    corio_callback cb[1000];
    int got;
};

static void burst_cb(corio_loop *loop, corio_callback *cb)
{
    struct burst_post *b = cb->data;
    b->got++;
    if (b->got == 1000)
        corio_loop_unref(loop);
}

static void *burst_poster(void *p)
{
    struct burst_post *b = p;
    for (int i = 0; i < 1000; i++) {
        b->cb[i] = (corio_callback){.fn = burst_cb, .data = b};
        CHECK_EQ(corio_loop_post(b->loop, &b->cb[i]), 0);
    }
    return NULL;
}

TEST(mt_post_coalesces_wakeups)
{
    corio_loop *loop = test_loop();
    struct corio__site *site = wake_write_site(loop);
    static struct burst_post b;
    memset(&b, 0, sizeof b);
    b.loop = loop;
    corio__fault_reset_counts();
    corio__fault_record(true);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, burst_poster, &b), 0);
    pthread_join(t, NULL);
    unsigned writes = atomic_load((_Atomic unsigned *)&site->calls);
    corio__fault_record(false);
    CHECK_EQ(writes, 1);
    corio_loop_ref(loop);
    test_run(loop);
    CHECK_EQ(b.got, 1000);
    test_loop_free(loop);
}

/* ---- Groups: init order, pinning ---- */

struct group_env {
    unsigned order[8];
    atomic_uint n;
    int cpu_count[8];
    bool owned[8];
};

static int group_init(corio_loop *loop, unsigned index, void *data)
{
    struct group_env *g = data;
    g->order[atomic_fetch_add(&g->n, 1)] = index;
    g->owned[index] = corio_loop_current() == loop;
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    g->cpu_count[index] = CPU_COUNT(&set);
    return 0;
}

TEST(mt_group_init_in_order_and_pinned)
{
    static struct group_env g;
    memset(&g, 0, sizeof g);
    corio_mt *mt;
    corio_mt_options o = {.threads = 3, .pin = true, .init = group_init, .data = &g};
    CHECK_EQ(corio_mt_start(&mt, &o), 0);
    CHECK_EQ(corio_mt_shutdown(mt, corio_after(CORIO_SEC)), 0);
    CHECK_EQ(corio_mt_shutdown(mt, corio_after(CORIO_SEC)), 0); /* harmless twice */
    CHECK_EQ(corio_mt_join(mt), 0);
    CHECK_EQ(atomic_load(&g.n), 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ(g.order[i], i);
        CHECK(g.owned[i]);
        CHECK_EQ(g.cpu_count[i], 1);
    }
}

static int failing_init(corio_loop *loop, unsigned index, void *data)
{
    (void)loop, (void)data;
    if (index == 1)
        return -EADDRINUSE;
    return corio_spawn(loop, NULL, slow, NULL, 0); /* work the abort must clean */
}

TEST(mt_group_init_failure_stops_all)
{
    corio_mt *mt = NULL;
    corio_mt_options o = {.threads = 3, .init = failing_init};
    CHECK_EQ(corio_mt_start(&mt, &o), -EADDRINUSE);
}

/* At the deadline, coroutines that do not finish are cancelled. */
static void *sleep_forever(void *p)
{
    int *cancelled = p;
    if (corio_sleep_until(CORIO_FOREVER) == -ECANCELED)
        (*cancelled)++;
    return NULL;
}

static int sleeper_init(corio_loop *loop, unsigned index, void *data)
{
    int *cancelled = data;
    return corio_spawn(loop, NULL, sleep_forever, &cancelled[index], 0);
}

TEST(mt_shutdown_deadline_cancels_the_rest)
{
    int cancelled[2] = {0, 0};
    corio_mt *mt;
    corio_mt_options o = {.threads = 2, .init = sleeper_init, .data = cancelled};
    CHECK_EQ(corio_mt_start(&mt, &o), 0);
    int64_t t0 = corio_now();
    CHECK_EQ(corio_mt_shutdown(mt, t0 + 50 * CORIO_MSEC), 0);
    CHECK_EQ(corio_mt_join(mt), 0);
    int64_t took = corio_now() - t0;
    CHECK(took >= 50 * CORIO_MSEC);
    CHECK(took < 5 * CORIO_SEC);
    CHECK_EQ(cancelled[0], 1);
    CHECK_EQ(cancelled[1], 1);
}

/* ---- Servers ---- */

static corio_listener *listen_local(corio_addr *a)
{
    if (a->len == 0)
        CHECK_EQ(corio_addr_parse(a, "127.0.0.1:0"), 0);
    corio_listen_options lo = {.reuseport = true, .backlog = 1024};
    corio_listener *l = NULL;
    CHECK_EQ(corio_net_listen_addr(&l, a, &lo), 0);
    CHECK_EQ(corio_listener_addr(l, a), 0);
    return l;
}

static int dial(const corio_addr *a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int r = corio_connect(fd, (const struct sockaddr *)&a->ss, a->len, corio_after(5 * CORIO_SEC));
    CHECK_EQ(r, 0);
    return fd;
}

static ssize_t read_full(int fd, void *buf, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = corio_read(fd, (char *)buf + got, n - got, deadline);
        if (r <= 0)
            return got ? (ssize_t)got : r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Graceful shutdown with every loop busy: requests in flight when it
 * begins are finished and answered; idle keep-alive connections (parked)
 * are closed; every answer the server wrote reaches its client. */
enum { GS_LOOPS = 2, GS_CLIENTS = 16 };

static struct gs {
    corio_addr addr;
    corio_server *srv[GS_LOOPS];
    corio_loop *loops[GS_LOOPS];
    atomic_long answered[GS_LOOPS];
    atomic_long received;
    atomic_int ended_ok, ended_bad;
    int progress[2];
    atomic_int signalled;
} G;

static void gs_serve(corio_server *srv, int fd, void *data);

static void gs_parked(int fd, void *data, int reason)
{
    corio_server *srv = data;
    if (reason == -CORIO_ECLOSED)
        corio_server_release(srv);
    else if (reason < 0)
        corio_server_close(srv, fd);
    else
        gs_serve(srv, fd, NULL);
}

static unsigned gs_index(void)
{
    for (unsigned i = 0; i < GS_LOOPS; i++)
        if (G.loops[i] == corio_loop_current())
            return i;
    CHECK(!"not a group loop");
    return 0;
}

static void gs_serve(corio_server *srv, int fd, void *data)
{
    (void)data;
    uint64_t req;
    if (read_full(fd, &req, sizeof req, corio_after(10 * CORIO_SEC)) != sizeof req) {
        corio_server_close(srv, fd);
        return;
    }
    /* The work a request takes: shutdown finds many in here. */
    if (corio_sleep_until(corio_after(2 * CORIO_MSEC)) < 0) {
        corio_server_close(srv, fd);
        return;
    }
    uint64_t ans = req * 3 + 1;
    if (corio_write_all(fd, &ans, sizeof ans, NULL, corio_after(10 * CORIO_SEC)) != sizeof ans) {
        corio_server_close(srv, fd);
        return;
    }
    atomic_fetch_add(&G.answered[gs_index()], 1);
    int r = corio_park(corio_loop_current(), fd, gs_parked, srv, corio_after(10 * CORIO_SEC));
    if (r < 0) /* -ECANCELED: shutting down, close instead of keeping it */
        corio_server_close(srv, fd);
}

static int gs_init(corio_loop *loop, unsigned index, void *data)
{
    (void)data;
    G.loops[index] = loop;
    corio_listener *l = listen_local(&G.addr); /* loop 0 picks the port */
    corio_server_options so = {.listener = l, .handler = gs_serve};
    return corio_server_start(loop, &G.srv[index], &so);
}

static void gs_shutdown(corio_loop *loop, unsigned index, void *data)
{
    (void)loop, (void)data;
    corio_server_stop(G.srv[index]);
}

static void *gs_client(void *p)
{
    (void)p;
    int fd = dial(&G.addr);
    for (uint64_t i = 1;; i++) {
        if (corio_write_all(fd, &i, sizeof i, NULL, corio_after(10 * CORIO_SEC)) != sizeof i)
            break;
        uint64_t ans;
        ssize_t r = read_full(fd, &ans, sizeof ans, corio_after(10 * CORIO_SEC));
        if (r == sizeof ans) {
            CHECK_EQ(ans, i * 3 + 1);
            if (atomic_fetch_add(&G.received, 1) == 400 && !atomic_exchange(&G.signalled, 1))
                CHECK_EQ(write(G.progress[1], "x", 1), 1);
            continue;
        }
        /* The end: EOF, or a reset if the server closed with our next
         * request unread.  Never a timeout, never half an answer. */
        if (r == 0 || r == -ECONNRESET)
            atomic_fetch_add(&G.ended_ok, 1);
        else
            atomic_fetch_add(&G.ended_bad, 1);
        break;
    }
    corio_close(fd);
    return NULL;
}

static void *gs_clients(void *p)
{
    (void)p;
    corio_loop *loop = test_loop();
    for (int i = 0; i < GS_CLIENTS; i++)
        CHECK_EQ(corio_spawn(loop, NULL, gs_client, NULL, 0), 0);
    test_run(loop);
    test_loop_free(loop);
    return NULL;
}

TEST_TIMEOUT(mt_graceful_shutdown_loses_no_answered_request, 60)
{
    memset(&G, 0, sizeof G);
    CHECK_EQ(pipe2(G.progress, O_CLOEXEC), 0);
    corio_mt *mt;
    corio_mt_options o = {.threads = GS_LOOPS, .init = gs_init, .shutdown = gs_shutdown};
    CHECK_EQ(corio_mt_start(&mt, &o), 0);
    pthread_t clients;
    CHECK_EQ(pthread_create(&clients, NULL, gs_clients, NULL), 0);
    char c;
    CHECK_EQ(read(G.progress[0], &c, 1), 1); /* 400 answers in: every loop busy */
    CHECK_EQ(corio_mt_shutdown(mt, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(corio_mt_join(mt), 0);
    pthread_join(clients, NULL);
    long answered = 0;
    for (int i = 0; i < GS_LOOPS; i++) {
        CHECK(atomic_load(&G.answered[i]) > 0);
        answered += atomic_load(&G.answered[i]);
    }
    CHECK_EQ(answered, atomic_load(&G.received));
    CHECK_EQ(atomic_load(&G.ended_ok), GS_CLIENTS);
    CHECK_EQ(atomic_load(&G.ended_bad), 0);
    close(G.progress[0]);
    close(G.progress[1]);
}

/* The connection limit: above it accepting pauses (the kernel's backlog
 * holds the rest), and closes resume it. */
struct lim {
    corio_addr addr;
    corio_server *srv;
    size_t max_seen;
    int done;
};

static void echo_conn(corio_server *srv, int fd, void *data)
{
    struct lim *L = data;
    corio_server_stats st;
    corio_server_stats_get(srv, &st);
    if (st.conns > L->max_seen)
        L->max_seen = st.conns;
    char c;
    while (corio_read(fd, &c, 1, corio_after(10 * CORIO_SEC)) == 1)
        if (corio_write(fd, &c, 1, corio_after(10 * CORIO_SEC)) != 1)
            break;
    corio_server_close(srv, fd);
}

static void *lim_client(void *p)
{
    struct lim *L = p;
    int fd = dial(&L->addr);
    CHECK_EQ(corio_write(fd, "q", 1, corio_after(10 * CORIO_SEC)), 1);
    char c;
    CHECK_EQ(corio_read(fd, &c, 1, corio_after(10 * CORIO_SEC)), 1);
    CHECK_EQ(c, 'q');
    corio_sleep_until(corio_after(10 * CORIO_MSEC));
    corio_close(fd);
    if (++L->done == 12)
        corio_server_stop(L->srv);
    return NULL;
}

static void *lim_main(void *p)
{
    struct lim *L = p;
    corio_server_options so = {.listener = listen_local(&L->addr), .max_conns = 4, .handler = echo_conn, .data = L};
    CHECK_EQ(corio_server_start(corio_loop_current(), &L->srv, &so), 0);
    for (int i = 0; i < 12; i++)
        CHECK_EQ(corio_spawn(corio_loop_current(), NULL, lim_client, L, 0), 0);
    corio_sleep_until(corio_after(30 * CORIO_MSEC));
    corio_server_stats st;
    corio_server_stats_get(L->srv, &st);
    CHECK(st.paused >= 1);
    CHECK(st.conns <= 4);
    return NULL;
}

TEST(mt_server_connection_limit)
{
    corio_loop *loop = test_loop();
    struct lim L = {0};
    CHECK_EQ(corio_spawn(loop, NULL, lim_main, &L, 0), 0);
    test_run(loop);
    CHECK_EQ(L.done, 12);
    CHECK(L.max_seen <= 4);
    CHECK(L.max_seen >= 1);
    test_loop_free(loop);
}

/* Accepts in a row are bounded: with 40 connections queued, other
 * coroutines run between every accept_batch of them. */
struct batch {
    corio_addr addr;
    corio_server *srv;
    size_t last, max_step;
    int clients[40];
    bool stop;
};

static void close_conn(corio_server *srv, int fd, void *data)
{
    (void)data;
    corio_server_close(srv, fd);
}

static void *ticker(void *p)
{
    struct batch *b = p;
    while (!b->stop) {
        corio_server_stats st;
        corio_server_stats_get(b->srv, &st);
        if (st.accepted - b->last > b->max_step)
            b->max_step = st.accepted - b->last;
        b->last = st.accepted;
        if (st.accepted == 40)
            break;
        corio_yield();
    }
    corio_server_stop(b->srv);
    return NULL;
}

static void *batch_main(void *p)
{
    struct batch *b = p;
    corio_listener *l = listen_local(&b->addr);
    for (int i = 0; i < 40; i++) { /* all queued before accepting starts */
        b->clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK_EQ(connect(b->clients[i], (struct sockaddr *)&b->addr.ss, b->addr.len), 0);
    }
    corio_server_options so = {.listener = l, .accept_batch = 4, .handler = close_conn};
    CHECK_EQ(corio_server_start(corio_loop_current(), &b->srv, &so), 0);
    CHECK_EQ(corio_spawn(corio_loop_current(), NULL, ticker, b, 0), 0);
    return NULL;
}

TEST(mt_server_accepts_per_wakeup_are_bounded)
{
    corio_loop *loop = test_loop();
    struct batch b = {0};
    CHECK_EQ(corio_spawn(loop, NULL, batch_main, &b, 0), 0);
    test_run(loop);
    CHECK_EQ(b.last, 40);
    CHECK(b.max_step <= 4);
    for (int i = 0; i < 40; i++)
        close(b.clients[i]);
    test_loop_free(loop);
}

/* A connection that never sends holds no stack: it is parked until its
 * first bytes, and closed when they do not come in time. */
struct fb {
    corio_addr addr;
    corio_server *srv;
    int served;
    corio_park_stats idle;
};

static void fb_conn(corio_server *srv, int fd, void *data)
{
    struct fb *f = data;
    char c;
    CHECK_EQ(corio_read(fd, &c, 1, CORIO_NOWAIT), 1); /* woken because bytes came */
    CHECK_EQ(corio_write(fd, &c, 1, corio_after(CORIO_SEC)), 1);
    f->served++;
    corio_server_close(srv, fd);
}

static void *fb_main(void *p)
{
    struct fb *f = p;
    corio_server_options so = {.listener = listen_local(&f->addr), .handler = fb_conn, .data = f,
                               .first_byte_timeout = 100 * CORIO_MSEC};
    CHECK_EQ(corio_server_start(corio_loop_current(), &f->srv, &so), 0);
    int silent = dial(&f->addr), talker = dial(&f->addr);
    corio_sleep_until(corio_after(30 * CORIO_MSEC));
    corio_park_stats_get(corio_loop_current(), &f->idle);
    CHECK_EQ(corio_write(talker, "z", 1, corio_after(CORIO_SEC)), 1);
    char c;
    CHECK_EQ(corio_read(talker, &c, 1, corio_after(CORIO_SEC)), 1);
    int64_t t0 = corio_now();
    CHECK_EQ(corio_read(silent, &c, 1, corio_after(5 * CORIO_SEC)), 0); /* closed by the server */
    CHECK(corio_now() - t0 < 2 * CORIO_SEC);
    corio_close(silent);
    corio_close(talker);
    corio_server_stop(f->srv);
    return NULL;
}

TEST(mt_server_parks_until_first_byte)
{
    corio_loop *loop = test_loop();
    struct fb f = {0};
    CHECK_EQ(corio_spawn(loop, NULL, fb_main, &f, 0), 0);
    test_run(loop);
    CHECK_EQ(f.served, 1);
    CHECK_EQ(f.idle.parked, 2);
    test_loop_free(loop);
}

/* A flood past the descriptor cap: the server keeps answering the
 * connections it has.  The clients are another process (with its own
 * descriptor limit); this one's limit is lowered to a few dozen. */
static int flood_child(const corio_addr *a, int go)
{
    char g;
    if (read(go, &g, 1) != 1) /* the server listens */
        return 9;
    int old[5];
    for (int i = 0; i < 5; i++) {
        old[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(old[i], (const struct sockaddr *)&a->ss, a->len) < 0)
            return 10;
        char c = 'a';
        if (write(old[i], &c, 1) != 1 || read(old[i], &c, 1) != 1 || c != 'a')
            return 11;
    }
    static int flood[400];
    for (int i = 0; i < 400; i++) {
        flood[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (flood[i] < 0)
            return 12;
        int r = connect(flood[i], (const struct sockaddr *)&a->ss, a->len);
        if (r < 0 && errno != EINPROGRESS)
            return 13;
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            char c = (char)('b' + round);
            if (write(old[i], &c, 1) != 1)
                return 14;
            struct pollfd pf = {.fd = old[i], .events = POLLIN};
            if (poll(&pf, 1, 5000) != 1)
                return 15; /* not answered within 5 s */
            char r;
            if (read(old[i], &r, 1) != 1 || r != c)
                return 16;
        }
    }
    return 0;
}

struct flood {
    corio_addr addr;
    corio_server *srv;
    int done_fd, go_fd;
    corio_server_stats st;
};

static void *flood_watch(void *p)
{
    struct flood *F = p;
    char c;
    CHECK_EQ(corio_read(F->done_fd, &c, 1, corio_after(30 * CORIO_SEC)), 0); /* the child exited */
    corio_server_stats_get(F->srv, &F->st);
    corio_server_stop(F->srv);
    return NULL;
}

static void flood_echo(corio_server *srv, int fd, void *data)
{
    (void)data;
    char c;
    while (corio_read(fd, &c, 1, corio_after(20 * CORIO_SEC)) == 1)
        if (corio_write(fd, &c, 1, corio_after(5 * CORIO_SEC)) != 1)
            break;
    corio_server_close(srv, fd);
}

static void *flood_main(void *p)
{
    struct flood *F = p;
    corio_listen_options lo = {.reuseport = true, .backlog = 1024};
    corio_listener *l;
    CHECK_EQ(corio_net_listen_addr(&l, &F->addr, &lo), 0);
    corio_server_options so = {.listener = l, .max_conns = 10000, .handler = flood_echo};
    CHECK_EQ(corio_server_start(corio_loop_current(), &F->srv, &so), 0);
    CHECK_EQ(corio_spawn(corio_loop_current(), NULL, flood_watch, F, 0), 0);
    CHECK_EQ(write(F->go_fd, "g", 1), 1);
    return NULL;
}

TEST_TIMEOUT(mt_flood_past_descriptor_cap_keeps_serving, 60)
{
    struct flood F = {0};
    CHECK_EQ(corio_addr_parse(&F.addr, "127.0.0.1:0"), 0);
    /* Reserve a port (bound, not listening) so the child knows it. */
    int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    CHECK_EQ(setsockopt(hold, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    CHECK_EQ(setsockopt(hold, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    CHECK_EQ(bind(hold, (struct sockaddr *)&F.addr.ss, F.addr.len), 0);
    socklen_t len = sizeof F.addr.ss;
    CHECK_EQ(getsockname(hold, (struct sockaddr *)&F.addr.ss, &len), 0);
    int done[2], go[2];
    CHECK_EQ(pipe2(done, O_CLOEXEC), 0);
    CHECK_EQ(pipe2(go, O_CLOEXEC), 0);
    CHECK_EQ(corio_fd_nonblock(done[0]), 0);

    corio_loop *loop = test_loop();
    struct rlimit rl, low;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = rl;
    low.rlim_cur = (rlim_t)done[1] + 32; /* a few dozen descriptors above what we hold */
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

    pid_t child = fork();
    if (child == 0) {
        setrlimit(RLIMIT_NOFILE, &rl); /* the clients need their own */
        close(done[0]);
        _exit(flood_child(&F.addr, go[0])); /* done[1] closes as it exits */
    }
    CHECK(child > 0);
    close(done[1]);
    close(go[0]);
    F.done_fd = done[0];
    F.go_fd = go[1];

    CHECK_EQ(corio_spawn(loop, NULL, flood_main, &F, 0), 0);
    test_run(loop);
    int status;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK(F.st.emfile > 0);    /* the cap was hit and the excess shed */
    CHECK(F.st.accepted >= 5);
    corio_close(done[0]);
    close(go[1]);
    close(hold);
    test_loop_free(loop);
}
