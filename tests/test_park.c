/* Parking: an idle connection holds no coroutine and no stack, and wakes
 * on data, on a peer close, on its idle deadline and on corio_close();
 * wakeups beyond max_active wait their turn without a stack; the bytes an
 * idle connection costs are counted. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "../src/fault.h"
#include "../src/internal.h"
#include "test.h"

struct woke {
    int fd;
    int reason;
    int calls;
    bool in_coroutine;
    int64_t at;
    char buf[16];
    ssize_t got;
};

static void on_wake(int fd, void *data, int reason)
{
    struct woke *w = data;
    w->fd = fd;
    w->reason = reason;
    w->calls++;
    w->in_coroutine = corio_self() != NULL;
    w->at = corio_now();
    if (reason > 0)
        w->got = corio_read(fd, w->buf, sizeof w->buf, corio_after(CORIO_SEC));
    if (reason != -CORIO_ECLOSED)
        corio_close(fd);
}

struct later {
    corio_timer t;
    int fd;
    int what; /* 0: write, 1: close the peer, 2: corio_close the parked fd */
    size_t nco_seen; /* coroutines alive while the fd was parked */
};

static void later_fn(corio_loop *loop, corio_timer *t)
{
    struct later *l = t->data;
    l->nco_seen = loop->nco;
    if (l->what == 0)
        CHECK_EQ(write(l->fd, "hello", 5), 5);
    else if (l->what == 1)
        close(l->fd);
    else
        corio_close(l->fd);
}

static void run_case(int what, struct woke *w, struct later *l)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    CHECK_EQ(corio_park(loop, sv[1], on_wake, w, corio_after(10 * CORIO_SEC)), 0);
    corio_park_stats st;
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.parked, 1);
    l->fd = what == 2 ? sv[1] : sv[0];
    l->what = what;
    corio_timer_init(&l->t, later_fn, l);
    corio_timer_start(loop, &l->t, corio_after(20 * CORIO_MSEC));
    test_run(loop);
    CHECK_EQ(l->nco_seen, 0); /* parked: no coroutine existed */
    CHECK_EQ(w->calls, 1);
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.parked, 0);
    CHECK_EQ(st.woken, 1);
    if (what != 1)
        close(sv[0]);
    test_loop_free(loop);
}

TEST(park_wakes_on_data)
{
    struct woke w = {0};
    struct later l = {0};
    run_case(0, &w, &l);
    CHECK(w.reason > 0 && (w.reason & CORIO_READABLE));
    CHECK(w.in_coroutine);
    CHECK_EQ(w.got, 5);
    CHECK(memcmp(w.buf, "hello", 5) == 0);
}

TEST(park_wakes_on_peer_close)
{
    struct woke w = {0};
    struct later l = {0};
    run_case(1, &w, &l);
    CHECK(w.reason > 0 && (w.reason & (CORIO_RDHUP | CORIO_HUP | CORIO_READABLE)));
    CHECK_EQ(w.got, 0); /* end of stream */
}

TEST(park_wakes_on_corio_close)
{
    struct woke w = {0};
    struct later l = {0};
    run_case(2, &w, &l);
    CHECK_EQ(w.reason, -CORIO_ECLOSED);
    CHECK(w.in_coroutine);
}

TEST(park_wakes_on_idle_timeout)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    struct woke w = {0};
    int64_t t0 = corio_now();
    CHECK_EQ(corio_park(loop, sv[1], on_wake, &w, t0 + 60 * CORIO_MSEC), 0);
    test_run(loop);
    CHECK_EQ(w.reason, -ETIMEDOUT);
    CHECK(w.in_coroutine);
    int64_t took = w.at - t0;
    CHECK(took >= 60 * CORIO_MSEC);                      /* never early */
    CHECK(took < 60 * CORIO_MSEC + CORIO_PARK_GRAIN + 500 * CORIO_MSEC); /* late by a grain, plus noise */
    corio_park_stats st;
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.timeouts, 1);
    close(sv[0]);
    test_loop_free(loop);
}

/* Deadlines share the wheel: they fire in order, each on time. */
TEST(park_deadlines_fire_in_order)
{
    corio_loop *loop = test_loop();
    enum { N = 5 };
    int sv[N][2];
    struct woke w[N];
    memset(w, 0, sizeof w);
    static const int ms[N] = {90, 30, 150, 60, 120};
    int64_t t0 = corio_now();
    for (int i = 0; i < N; i++) {
        test_socketpair(sv[i]);
        CHECK_EQ(corio_park(loop, sv[i][1], on_wake, &w[i], t0 + ms[i] * CORIO_MSEC), 0);
    }
    test_run(loop);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(w[i].reason, -ETIMEDOUT);
        CHECK(w[i].at - t0 >= ms[i] * CORIO_MSEC);
        for (int j = 0; j < N; j++)
            if (ms[j] < ms[i])
                CHECK(w[j].at <= w[i].at);
        close(sv[i][0]);
    }
    test_loop_free(loop);
}

/* A deadline one full turn of the wheel (68.7 s) away sits in the same
 * bucket as a near one: it stays parked when the bucket comes round. */
TEST(park_wheel_wraps_without_firing_early)
{
    corio_loop *loop = test_loop();
    int sv[2][2];
    struct woke w[2];
    memset(w, 0, sizeof w);
    test_socketpair(sv[0]);
    test_socketpair(sv[1]);
    int64_t t0 = corio_now();
    /* Same bucket, one turn apart: the far one must stay parked. */
    int64_t turn = 2048 * CORIO_PARK_GRAIN;
    CHECK_EQ(corio_park(loop, sv[0][1], on_wake, &w[0], t0 + 40 * CORIO_MSEC), 0);
    CHECK_EQ(corio_park(loop, sv[1][1], on_wake, &w[1], t0 + 40 * CORIO_MSEC + turn), 0);
    while (w[0].calls == 0)
        CHECK(corio_loop_run(loop, CORIO_RUN_ONCE) >= 0);
    corio_park_stats st;
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.parked, 1);
    CHECK_EQ(w[1].calls, 0);
    void *data = NULL;
    CHECK_EQ(corio_unpark(loop, sv[1][1], &data), 0);
    CHECK(data == &w[1]);
    test_run(loop);
    for (int i = 0; i < 2; i++) {
        close(sv[i][0]);
        if (i == 1)
            close(sv[i][1]);
    }
    test_loop_free(loop);
}

/* Data already buffered wakes the park at once, whether the fd was never
 * waited on (registration reports it) or a read left the cached bit. */
static void *read_some_then_park(void *p)
{
    struct woke *w = p;
    char c;
    CHECK_EQ(corio_read(w->fd, &c, 1, corio_after(CORIO_SEC)), 1);
    CHECK_EQ(corio_park(corio_loop_current(), w->fd, on_wake, w, corio_after(10 * CORIO_SEC)), 0);
    return NULL;
}

TEST(park_buffered_data_wakes_at_once)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    CHECK_EQ(write(sv[0], "xhello", 6), 6);
    struct woke w = {.fd = sv[1]};
    CHECK_EQ(corio_spawn(loop, NULL, read_some_then_park, &w, 0), 0);
    int64_t t0 = corio_now();
    test_run(loop);
    CHECK(w.reason & CORIO_READABLE);
    CHECK_EQ(w.got, 5);
    CHECK(w.at - t0 < 5 * CORIO_SEC);

    int sv2[2];
    test_socketpair(sv2);
    CHECK_EQ(write(sv2[0], "abc", 3), 3);
    struct woke w2 = {0};
    CHECK_EQ(corio_park(loop, sv2[1], on_wake, &w2, corio_after(10 * CORIO_SEC)), 0);
    test_run(loop);
    CHECK_EQ(w2.got, 3);
    close(sv[0]);
    close(sv2[0]);
    test_loop_free(loop);
}

/* A cached "readable" that is stale (drained with plain read) must not wake
 * the park: it is confirmed with poll(2) first. */
static void *drain_behind_corio(void *p)
{
    struct woke *w = p;
    char c;
    CHECK_EQ(corio_read(w->fd, &c, 1, corio_after(CORIO_SEC)), 1); /* cached bit stays */
    char rest[8];
    CHECK_EQ(read(w->fd, rest, sizeof rest), 2);
    CHECK_EQ(corio_park(corio_loop_current(), w->fd, on_wake, w, corio_after(80 * CORIO_MSEC)), 0);
    return NULL;
}

TEST(park_stale_readiness_does_not_wake)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    struct woke w = {.fd = sv[1]};
    CHECK_EQ(corio_spawn(loop, NULL, drain_behind_corio, &w, 0), 0);
    CHECK_EQ(write(sv[0], "abc", 3), 3);
    test_run(loop);
    CHECK_EQ(w.reason, -ETIMEDOUT);
    close(sv[0]);
    test_loop_free(loop);
}

TEST(park_errors)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    struct woke w = {0};
    CHECK_EQ(corio_park(loop, -1, on_wake, &w, CORIO_FOREVER), -EBADF);
    CHECK_EQ(corio_park(loop, sv[1], NULL, &w, CORIO_FOREVER), -EINVAL);
    CHECK_EQ(corio_park(loop, sv[1], on_wake, &w, CORIO_NOWAIT), -EAGAIN);
    CHECK_EQ(corio_park(loop, sv[1], on_wake, &w, corio_now() - CORIO_SEC), -ETIMEDOUT);
    CHECK_EQ(corio_park(loop, sv[1], on_wake, &w, CORIO_FOREVER), 0);
    CHECK_EQ(corio_park(loop, sv[1], on_wake, &w, CORIO_FOREVER), -EEXIST);
    CHECK_EQ(corio_unpark(loop, sv[0], NULL), -ENOENT);
    CHECK_EQ(corio_unpark(loop, sv[1], NULL), 0);
    CHECK_EQ(corio_unpark(loop, sv[1], NULL), -ENOENT);
    /* A regular file cannot be polled by epoll. */
    char path[] = "/tmp/corio-park-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    int r = corio_park(loop, f, on_wake, &w, CORIO_FOREVER);
    if (strcmp(corio_loop_backend(loop), "epoll") == 0)
        CHECK_EQ(r, -EPERM);
    else
        CHECK_EQ(corio_unpark(loop, f, NULL), 0);
    corio_close(f);
    test_run(loop); /* nothing parked: returns at once */
    CHECK_EQ(w.calls, 0);
    close(sv[0]);
    close(sv[1]);
    test_loop_free(loop);
}

static void *park_from_other_thread(void *p)
{
    corio_loop *loop = p;
    return (void *)(intptr_t)corio_park(loop, 0, on_wake, NULL, CORIO_FOREVER);
}

TEST(park_refuses_other_thread)
{
    corio_loop *loop = test_loop();
    pthread_t t;
    void *r;
    CHECK_EQ(pthread_create(&t, NULL, park_from_other_thread, loop), 0);
    pthread_join(t, &r);
    CHECK_EQ((int)(intptr_t)r, -CORIO_EWRONGLOOP);
    test_loop_free(loop);
}

TEST(park_shutdown_cancels_and_refuses)
{
    corio_loop *loop = test_loop();
    enum { N = 3 };
    int sv[N][2];
    struct woke w[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        test_socketpair(sv[i]);
        CHECK_EQ(corio_park(loop, sv[i][1], on_wake, &w[i], i ? corio_after(CORIO_SEC) : CORIO_FOREVER), 0);
    }
    CHECK_EQ(corio_park_shutdown(loop), N);
    int extra[2];
    test_socketpair(extra);
    CHECK_EQ(corio_park(loop, extra[1], on_wake, &w[0], CORIO_FOREVER), -ECANCELED);
    test_run(loop);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(w[i].reason, -ECANCELED);
        close(sv[i][0]);
    }
    close(extra[0]);
    close(extra[1]);
    test_loop_free(loop);
}

/* A keep-alive connection: served, parked, served again; one coroutine at
 * a time, none between requests. */
struct ka {
    int requests;
    size_t max_nco;
};

static void ka_serve(int fd, void *data, int reason)
{
    struct ka *k = data;
    corio_loop *loop = corio_loop_current();
    if (loop->nco > k->max_nco)
        k->max_nco = loop->nco;
    if (reason < 0) {
        corio_close(fd);
        return;
    }
    char buf[8];
    for (;;) {
        ssize_t n = corio_read(fd, buf, sizeof buf, CORIO_NOWAIT);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            corio_close(fd);
            return;
        }
        k->requests++;
        CHECK_EQ(corio_write_all(fd, buf, (size_t)n, NULL, corio_after(CORIO_SEC)), n);
    }
    CHECK_EQ(corio_park(loop, fd, ka_serve, k, corio_after(5 * CORIO_SEC)), 0);
}

static void *ka_client(void *p)
{
    int fd = *(int *)p;
    for (int i = 0; i < 100; i++) {
        char c = (char)i, r;
        CHECK_EQ(corio_write(fd, &c, 1, corio_after(CORIO_SEC)), 1);
        CHECK_EQ(corio_read(fd, &r, 1, corio_after(CORIO_SEC)), 1);
        CHECK_EQ(r, c);
    }
    corio_close(fd);
    return NULL;
}

TEST(park_keepalive_reparks)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    struct ka k = {0};
    CHECK_EQ(corio_park(loop, sv[1], ka_serve, &k, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(corio_spawn(loop, NULL, ka_client, &sv[0], 0), 0);
    test_run(loop);
    CHECK_EQ(k.requests, 100);
    CHECK(k.max_nco <= 2); /* the client and at most one server coroutine */
    test_loop_free(loop);
}

/* A burst of wakeups beyond max_active waits without stacks. */
struct burst {
    int running, max_running, served;
};

static void burst_fn(int fd, void *data, int reason)
{
    struct burst *b = data;
    CHECK(reason & CORIO_READABLE);
    b->running++;
    if (b->running > b->max_running)
        b->max_running = b->running;
    corio_sleep_until(corio_after(CORIO_MSEC)); /* hold the worker a while */
    char c;
    CHECK_EQ(corio_read(fd, &c, 1, corio_after(CORIO_SEC)), 1);
    b->running--;
    b->served++;
    corio_close(fd);
}

TEST(park_burst_is_bounded_by_max_active)
{
    corio_loop *loop = test_loop();
    corio_park_options o = {.max_active = 4};
    CHECK_EQ(corio_park_configure(loop, &o), 0);
    enum { N = 200 };
    static int peer[N];
    struct burst b = {0};
    for (int i = 0; i < N; i++) {
        int sv[2];
        test_socketpair(sv);
        peer[i] = sv[0];
        CHECK_EQ(corio_park(loop, sv[1], burst_fn, &b, corio_after(10 * CORIO_SEC)), 0);
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(write(peer[i], "x", 1), 1);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_ONCE), 1);
    corio_park_stats st;
    corio_park_stats_get(loop, &st);
    CHECK(st.active <= 4);
    test_run(loop);
    CHECK_EQ(b.served, N);
    CHECK(b.max_running <= 4);
    CHECK(b.max_running >= 2);
    for (int i = 0; i < N; i++)
        close(peer[i]);
    test_loop_free(loop);
}

/* Unparking a record that is queued (woken, waiting for a worker) takes it
 * back: its fn never runs, and the fd can be parked again at once, while
 * what is left of the old record still sits in the run queue. */
static void slow_wake(int fd, void *data, int reason)
{
    struct woke *w = data;
    w->calls++;
    w->reason = reason;
    corio_sleep_until(corio_after(10 * CORIO_MSEC)); /* holds the only worker */
    if (reason > 0)
        w->got = corio_read(fd, w->buf, sizeof w->buf, corio_after(CORIO_SEC));
    corio_close(fd);
}

TEST(park_unpark_while_queued)
{
    corio_loop *loop = test_loop();
    corio_park_options o = {.max_active = 1};
    CHECK_EQ(corio_park_configure(loop, &o), 0);
    enum { N = 4 };
    int sv[N][2];
    struct woke w[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        test_socketpair(sv[i]);
        CHECK_EQ(corio_park(loop, sv[i][1], slow_wake, &w[i], i % 2 ? corio_after(10 * CORIO_SEC)
                                                                   : CORIO_FOREVER), 0);
        CHECK_EQ(write(sv[i][0], "x", 1), 1);
    }
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_ONCE), 1);
    corio_park_stats st;
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.active, 1);
    CHECK_EQ(st.queued, N - 1);
    /* Every queued one but the last goes back; the one being run cannot. */
    int back[N], nback = 0;
    for (int i = 0; i < N && nback < N - 2; i++) {
        void *data = NULL;
        int r = corio_unpark(loop, sv[i][1], &data);
        if (w[i].calls) {
            CHECK_EQ(r, -ENOENT);
            continue;
        }
        CHECK_EQ(r, 0);
        CHECK(data == &w[i]);
        back[nback++] = i;
    }
    CHECK_EQ(nback, N - 2);
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.queued, 1);
    CHECK_EQ(st.parked, 0);
    /* Parked again, with the byte still unread: woken, and served once. */
    CHECK_EQ(corio_park(loop, sv[back[0]][1], slow_wake, &w[back[0]], corio_after(10 * CORIO_SEC)), 0);
    test_run(loop);
    for (int i = 0; i < N; i++) {
        bool dropped = nback > 1 && i == back[1];
        CHECK_EQ(w[i].calls, dropped ? 0 : 1);
        if (!dropped) {
            CHECK(w[i].reason & CORIO_READABLE);
            CHECK_EQ(w[i].got, 1);
        }
        close(sv[i][0]);
    }
    corio_close(sv[back[1]][1]);
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.queued + st.parked + st.active, 0);
    CHECK_EQ(st.woken, N - 1);
    test_loop_free(loop);
}

/* No coroutine can start (stack mmap fails): fn still runs, on the loop's
 * stack, with -ENOMEM, so the connection is released. */
TEST(park_no_memory_for_a_coroutine)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    struct woke w = {0};
    CHECK_EQ(corio_park(loop, sv[1], on_wake, &w, corio_after(10 * CORIO_SEC)), 0);
    CHECK_EQ(write(sv[0], "x", 1), 1);
    CHECK(corio__fault_add(NULL, "mmap", 1, 0, -ENOMEM) >= 0); /* every stack mmap fails */
    test_run(loop);
    unsigned fired = corio__fault_fires(0);
    corio__fault_disarm();
    CHECK(fired >= 2); /* the worker, then the retry before falling back */
    CHECK_EQ(w.reason, -ENOMEM);
    CHECK(!w.in_coroutine);
    close(sv[0]);
    test_loop_free(loop);
}

/* The bytes: N idle connections parked cost their fd slots (32 bytes, in
 * chunks of 1024) and their records (32 bytes, in slabs of 1024), nothing
 * else: no coroutine, no stack, no buffer. */
static void never(int fd, void *data, int reason)
{
    (void)data;
    CHECK_EQ(reason, -ECANCELED);
    corio_close(fd);
}

TEST(park_bytes_per_idle_connection)
{
    corio_loop *loop = test_loop();
    enum { N = 2048 };
    static int fds[N][2];
    for (int i = 0; i < N; i++)
        test_socketpair(fds[i]);
    /* Fd slots exist for any fd corio touches; count them separately. */
    for (int i = 0; i < N; i++)
        CHECK(corio__fd_slot(loop, fds[i][1], true) != NULL);
    long long before = test_live_allocations();
    for (int i = 0; i < N; i++)
        CHECK_EQ(corio_park(loop, fds[i][1], never, NULL, corio_after(60 * CORIO_SEC)), 0);
    long long rec = test_live_allocations() - before;
    corio_park_stats st;
    corio_park_stats_get(loop, &st);
    CHECK_EQ(st.parked, N);
    CHECK_EQ(loop->nco, 0);
    CHECK_EQ(loop->nstack_pool, 0);
    printf("park: %lld bytes of records for %d idle connections (%.1f B each, "
           "plus the 32-byte fd slot)\n", rec, N, (double)rec / N);
    /* 32 B each, plus the per-loop wheel.  The poll backend also keeps a
     * pollfd array entry per watched fd (epoll keeps that in the kernel). */
    long long extra = strcmp(corio_loop_backend(loop), "poll") == 0 ? 2LL * N * 48 : 0;
    CHECK(rec <= (long long)N * 32 + 16384 + extra);
    CHECK(st.record_bytes <= (size_t)N * 32 + 16384);
    CHECK_EQ(sizeof(struct corio_fdslot), 32);
    CHECK_EQ(corio_park_shutdown(loop), N);
    test_run(loop);
    for (int i = 0; i < N; i++)
        close(fds[i][0]);
    test_loop_free(loop);
}
