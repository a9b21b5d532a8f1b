/* The blocking pool and name resolution: results, many jobs, jobs that
 * outlive their caller (deadline, cancellation, loop freed), the callback
 * level, and getaddrinfo through the pool. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "../src/fault.h"
#include "test.h"

#define MS CORIO_MSEC

/* ---- Jobs: what workers run.  They must not touch corio. ---- */

static void *square(void *arg)
{
    intptr_t v = (intptr_t)arg;
    return (void *)(v * v);
}

/* Blocks its worker until a byte arrives on the pipe whose read end it is
 * given, then returns that byte. */
static void *wait_pipe(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char b = 0;
    CHECK_EQ(read(fd, &b, 1), 1);
    return (void *)(intptr_t)b;
}

static atomic_int running_now, running_peak, ran;

static void *busy_job(void *arg)
{
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int peak = atomic_load(&running_peak);
    while (now > peak && !atomic_compare_exchange_weak(&running_peak, &peak, now))
        ;
    usleep(500); /* stands for a blocking call: keeps its worker busy */
    atomic_fetch_sub(&running_now, 1);
    atomic_fetch_add(&ran, 1);
    return (void *)((intptr_t)arg + 1);
}

/* Discards run on the loop's thread: plain counters are fine. */
struct discarded {
    int calls;
    void *arg;
    void *result;
};
static struct discarded disc;

static void record_discard(void *arg, void *result)
{
    disc.calls++;
    disc.arg = arg;
    disc.result = result;
}

/* ---- corio_pool_run ---- */

static void *run_square(void *p)
{
    void *r = NULL;
    CHECK_EQ(corio_pool_run(square, p, record_discard, &r, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ((intptr_t)r, (intptr_t)p * (intptr_t)p);
    return NULL;
}

TEST(pool_run_returns_the_result)
{
    corio_loop *loop = test_loop();
    disc = (struct discarded){0};
    CHECK_EQ(corio_spawn(loop, NULL, run_square, (void *)(intptr_t)12, 0), 0);
    test_run(loop);
    CHECK_EQ(disc.calls, 0); /* success: the caller keeps arg and result */
    test_loop_free(loop);
}

static void *run_busy(void *p)
{
    void *r = NULL;
    CHECK_EQ(corio_pool_run(busy_job, p, NULL, &r, corio_after(10 * CORIO_SEC)), 0);
    CHECK_EQ((intptr_t)r, (intptr_t)p + 1);
    return NULL;
}

TEST(pool_many_jobs_bounded_by_size)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_pool_set_size(loop, 4), 0);
    atomic_store(&running_now, 0);
    atomic_store(&running_peak, 0);
    atomic_store(&ran, 0);
    for (int i = 0; i < 400; i++)
        CHECK_EQ(corio_spawn(loop, NULL, run_busy, (void *)(intptr_t)i, 0), 0);
    test_run(loop);
    CHECK_EQ(atomic_load(&ran), 400);
    CHECK(atomic_load(&running_peak) <= 4);
    CHECK(atomic_load(&running_peak) >= 2); /* the jobs did run side by side */
    test_loop_free(loop);
}

TEST(pool_size_and_stop)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_pool_set_size(loop, 0), -EINVAL);
    CHECK_EQ(corio_pool_set_size(loop, 100000), -EINVAL);
    CHECK_EQ(corio_pool_stop(loop), 0); /* nothing started: nothing to stop */
    CHECK_EQ(corio_pool_set_size(loop, 2), 0);
    CHECK_EQ(corio_spawn(loop, NULL, run_square, (void *)(intptr_t)3, 0), 0);
    test_run(loop);
    CHECK_EQ(corio_pool_stop(loop), 0); /* joins the idle worker */
    /* Workers start again on demand. */
    CHECK_EQ(corio_spawn(loop, NULL, run_square, (void *)(intptr_t)5, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

/* A job that says it has started (a byte on a pipe the loop can wait on),
 * then blocks its worker until released through a second pipe. */
struct gate {
    int started[2];
    int release[2];
    atomic_int ran;
};

static void gate_open(struct gate *g)
{
    CHECK_EQ(pipe(g->started), 0);
    CHECK_EQ(pipe(g->release), 0);
    CHECK_EQ(corio_fd_nonblock(g->started[0]), 0);
    atomic_store(&g->ran, 0);
}

static void gate_close(struct gate *g)
{
    close(g->started[0]);
    close(g->started[1]);
    close(g->release[0]);
    close(g->release[1]);
}

static void *gated_job(void *arg)
{
    struct gate *g = arg;
    atomic_store(&g->ran, 1);
    CHECK_EQ(write(g->started[1], "s", 1), 1);
    unsigned char b = 0;
    CHECK_EQ(read(g->release[0], &b, 1), 1);
    return (void *)(intptr_t)b;
}

static bool gate_wait_started(struct gate *g, int64_t deadline)
{
    char c;
    return corio_read(g->started[0], &c, 1, deadline) == 1;
}

/* The caller gives up (deadline or cancellation) while a worker runs its
 * job: it returns at once, and the result is discarded when the job ends. */
struct giveup {
    struct gate *g;
    corio_co *caller;
    corio_event returned;
    bool by_cancel;
    int rc;
};

static void *run_gated(void *p)
{
    struct giveup *u = p;
    void *r = (void *)1;
    int64_t deadline = u->by_cancel ? CORIO_FOREVER : corio_after(20 * MS);
    u->rc = corio_pool_run(gated_job, u->g, record_discard, &r, deadline);
    CHECK(r == (void *)1); /* untouched on failure */
    CHECK_EQ(corio_event_set(&u->returned), 0);
    return NULL;
}

static void *interrupter(void *p)
{
    struct giveup *u = p;
    if (u->by_cancel) {
        CHECK(gate_wait_started(u->g, corio_after(5 * CORIO_SEC)));
        CHECK_EQ(corio_cancel(u->caller), 0);
    }
    /* The job is released only after its caller has returned: proof that
     * the caller did not wait for it. */
    CHECK_EQ(corio_event_wait(&u->returned, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(write(u->g->release[1], "\x07", 1), 1);
    return NULL;
}

static void giveup_case(bool by_cancel)
{
    corio_loop *loop = test_loop();
    struct gate g;
    gate_open(&g);
    disc = (struct discarded){0};
    struct giveup u = {.g = &g, .by_cancel = by_cancel, .rc = 99};
    corio_event_init(loop, &u.returned);
    CHECK_EQ(corio_spawn(loop, &u.caller, run_gated, &u, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, interrupter, &u, 0), 0);
    test_run(loop);
    CHECK_EQ(corio_join(u.caller, NULL, CORIO_FOREVER), 0);
    CHECK_EQ(u.rc, by_cancel ? -ECANCELED : -ETIMEDOUT);
    /* discard ran once on the loop's thread by the time the loop is freed:
     * with the job's result if it ran, else (queued when its caller timed
     * out) with NULL, and then it never ran. */
    test_loop_free(loop);
    CHECK_EQ(disc.calls, 1);
    CHECK(disc.arg == &g);
    if (by_cancel)
        CHECK_EQ(atomic_load(&g.ran), 1);
    CHECK(disc.result == (atomic_load(&g.ran) ? (void *)(intptr_t)7 : NULL));
    gate_close(&g);
}

TEST(pool_job_outlives_caller_deadline)
{
    giveup_case(false);
}

TEST(pool_job_outlives_caller_cancel)
{
    giveup_case(true);
}

static void *release_later(void *p)
{
    int *wfd = p;
    CHECK_EQ(corio_sleep_until(corio_after(20 * MS)), 0);
    CHECK_EQ(write(*wfd, "\x07", 1), 1);
    return NULL;
}

/* With one worker busy, a second job waits in the queue; its caller gives
 * up, and the job is taken back: fn never runs, discard(arg, NULL) runs
 * before the call returns. */
static int never_ran;
static void *must_not_run(void *arg)
{
    (void)arg;
    never_ran = 1; /* would be a bug: the tests below check it stays 0 */
    return NULL;
}

static void *queued_caller(void *p)
{
    int *rc = p;
    disc = (struct discarded){0};
    *rc = corio_pool_run(must_not_run, (void *)0x5, record_discard, NULL, corio_after(5 * MS));
    CHECK_EQ(disc.calls, 1);
    CHECK(disc.arg == (void *)0x5);
    CHECK(disc.result == NULL);
    return NULL;
}

static int occupy_done; /* occupy() has its result back */

static void *occupy(void *p)
{
    int fd = *(int *)p;
    CHECK_EQ(corio_pool_run(wait_pipe, (void *)(intptr_t)fd, NULL, NULL, corio_after(5 * CORIO_SEC)),
             0);
    occupy_done = 1;
    return NULL;
}

TEST(pool_queued_job_of_a_gone_caller_never_runs)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_pool_set_size(loop, 1), 0);
    int p[2], rc = 99;
    CHECK_EQ(pipe(p), 0);
    never_ran = 0;
    CHECK_EQ(corio_spawn(loop, NULL, occupy, &p[0], 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, queued_caller, &rc, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, release_later, &p[1], 0), 0);
    test_run(loop);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(never_ran, 0);
    test_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* The loop is freed while a job whose caller left still runs:
 * corio_loop_free() waits for the worker, then discards the result. */
static void *cancel_once_started(void *p)
{
    struct giveup *u = p;
    CHECK(gate_wait_started(u->g, corio_after(5 * CORIO_SEC)));
    CHECK_EQ(corio_cancel(u->caller), 0);
    return NULL;
}

static void *release_thread(void *p)
{
    struct gate *g = p;
    usleep(10 * 1000); /* let corio_loop_free() start waiting */
    CHECK_EQ(write(g->release[1], "\x07", 1), 1);
    return NULL;
}

TEST(pool_loop_free_joins_a_running_abandoned_job)
{
    corio_loop *loop = test_loop();
    struct gate g;
    gate_open(&g);
    disc = (struct discarded){0};
    struct giveup u = {.g = &g, .by_cancel = true, .rc = 99};
    corio_event_init(loop, &u.returned);
    CHECK_EQ(corio_spawn(loop, &u.caller, run_gated, &u, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, cancel_once_started, &u, 0), 0);
    test_run(loop);
    CHECK_EQ(corio_join(u.caller, NULL, CORIO_FOREVER), 0);
    CHECK_EQ(u.rc, -ECANCELED);
    CHECK_EQ(disc.calls, 0); /* the job still runs: nothing alive keeps the loop */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, release_thread, &g), 0);
    test_loop_free(loop);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(disc.calls, 1);
    CHECK(disc.result == (void *)(intptr_t)7);
    gate_close(&g);
}

TEST(pool_run_refuses_what_cannot_park)
{
    corio_loop *loop = test_loop();
    disc = (struct discarded){0};
    /* Outside a coroutine: refused, and arg handed to discard. */
    CHECK_EQ(corio_pool_run(square, (void *)0x9, record_discard, NULL, CORIO_FOREVER),
             -CORIO_ENOTCO);
    CHECK_EQ(disc.calls, 1);
    CHECK(disc.arg == (void *)0x9 && disc.result == NULL);
    test_loop_free(loop);
}

static void *nowait_and_cancelled(void *p)
{
    (void)p;
    disc = (struct discarded){0};
    CHECK_EQ(corio_pool_run(must_not_run, NULL, record_discard, NULL, CORIO_NOWAIT), -EAGAIN);
    CHECK_EQ(corio_pool_run(must_not_run, NULL, record_discard, NULL, 1),
             -ETIMEDOUT);
    CHECK_EQ(corio_cancel(corio_self()), 0);
    CHECK_EQ(corio_pool_run(must_not_run, NULL, record_discard, NULL, CORIO_FOREVER), -ECANCELED);
    CHECK_EQ(disc.calls, 3);
    return NULL;
}

TEST(pool_run_nowait_expired_and_cancelled)
{
    corio_loop *loop = test_loop();
    never_ran = 0;
    CHECK_EQ(corio_spawn(loop, NULL, nowait_and_cancelled, NULL, 0), 0);
    test_run(loop);
    CHECK_EQ(never_ran, 0);
    test_loop_free(loop);
}

/* ---- The callback level ---- */

struct works {
    corio_work w[20];
    int done[20];
    int status[20];
};

static void work_done(corio_loop *loop, corio_work *w, int status)
{
    (void)loop;
    (void)w;
    (void)status;
}

static struct works *cur_works;

static void works_done(corio_loop *loop, corio_work *w, int status)
{
    (void)loop;
    int i = (int)(w - cur_works->w);
    cur_works->done[i]++;
    cur_works->status[i] = status;
}

TEST(pool_work_callbacks_keep_the_loop_alive)
{
    corio_loop *loop = test_loop();
    static struct works ws;
    memset(&ws, 0, sizeof ws);
    cur_works = &ws;
    for (int i = 0; i < 20; i++) {
        corio_work_init(&ws.w[i], square, works_done, (void *)(intptr_t)i);
        CHECK_EQ(corio_work_submit(loop, &ws.w[i]), 0);
    }
    CHECK_EQ(corio_work_submit(loop, &ws.w[0]), -EBUSY); /* already queued or running */
    test_run(loop); /* returns only once every done has run */
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(ws.done[i], 1);
        CHECK_EQ(ws.status[i], 0);
        CHECK_EQ((intptr_t)ws.w[i].result, i * i);
    }
    /* A finished work can be submitted again. */
    CHECK_EQ(corio_work_submit(loop, &ws.w[3]), 0);
    test_run(loop);
    CHECK_EQ(ws.done[3], 2);
    corio_work bad;
    corio_work_init(&bad, NULL, work_done, NULL);
    CHECK_EQ(corio_work_submit(loop, &bad), -EINVAL);
    CHECK_EQ(corio_work_cancel(&bad), -EINVAL); /* never submitted */
    test_loop_free(loop);
}

TEST(pool_work_cancel_before_it_starts)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_pool_set_size(loop, 1), 0);
    static struct works ws;
    memset(&ws, 0, sizeof ws);
    cur_works = &ws;
    int p[2];
    CHECK_EQ(pipe(p), 0);
    never_ran = 0;
    corio_work_init(&ws.w[0], wait_pipe, works_done, (void *)(intptr_t)p[0]);
    corio_work_init(&ws.w[1], must_not_run, works_done, NULL);
    CHECK_EQ(corio_work_submit(loop, &ws.w[0]), 0);
    CHECK_EQ(corio_work_submit(loop, &ws.w[1]), 0);
    CHECK_EQ(corio_work_cancel(&ws.w[1]), 0);
    CHECK_EQ(corio_work_cancel(&ws.w[1]), -EBUSY); /* finished: cancelled */
    CHECK_EQ(ws.done[1], 0);                       /* done runs in the next pass */
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
    CHECK_EQ(ws.done[1], 1);
    CHECK_EQ(ws.status[1], -ECANCELED);
    CHECK_EQ(corio_pool_stop(loop), -EBUSY); /* w[0] is queued or running */
    CHECK_EQ(write(p[1], "\x02", 1), 1);
    test_run(loop);
    CHECK_EQ(ws.done[0], 1);
    CHECK_EQ(ws.status[0], 0);
    CHECK_EQ((intptr_t)ws.w[0].result, 2);
    CHECK_EQ(never_ran, 0);
    test_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ---- Name resolution ---- */

static bool is_loopback(const struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return ntohl(a->sin_addr.s_addr) == INADDR_LOOPBACK && ntohs(a->sin_port) == port;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) && ntohs(a->sin6_port) == port;
    }
    return false;
}

static void *resolve_localhost(void *p)
{
    (void)p;
    struct sockaddr_storage out[8];
    int n = corio_resolve("localhost", "8080", AF_INET, SOCK_STREAM, out, 8,
                          corio_after(5 * CORIO_SEC));
    CHECK(n >= 1); /* from /etc/hosts: no network needed */
    for (int i = 0; i < n; i++)
        CHECK(is_loopback(&out[i], 8080));
    /* Any family and socket type: each address once, however many socket
     * types getaddrinfo lists it for. */
    n = corio_resolve("localhost", "80", AF_UNSPEC, 0, out, 8, corio_after(5 * CORIO_SEC));
    CHECK(n >= 1);
    for (int i = 0; i < n; i++) {
        CHECK(is_loopback(&out[i], 80));
        for (int j = 0; j < i; j++)
            CHECK(memcmp(&out[i], &out[j], sizeof out[i]) != 0);
    }
    /* max bounds what is written. */
    memset(out, 0xee, sizeof out);
    CHECK_EQ(corio_resolve("localhost", "80", AF_UNSPEC, 0, out, 1, corio_after(5 * CORIO_SEC)), 1);
    CHECK(out[1].ss_family == 0xeeee);
    return NULL;
}

TEST(pool_resolve_localhost)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, resolve_localhost, NULL, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

static void *resolve_missing(void *p)
{
    (void)p;
    struct sockaddr_storage out[4];
    int64_t t0 = corio_now();
    int n = corio_resolve("does-not-exist.invalid", "80", AF_UNSPEC, SOCK_STREAM, out, 4,
                          t0 + 3 * CORIO_SEC);
    /* Without network the resolver fails at once or, if packets to the DNS
     * server vanish, the deadline ends it: either way no address. */
    if (n != -CORIO_ENONAME && n != -ETIMEDOUT)
        test_fail(__FILE__, __LINE__, "got %d (%s)", n, corio_strerror(n));
    CHECK(corio_now() - t0 < 4 * CORIO_SEC);
    /* An unknown service name on a known host. */
    n = corio_resolve("localhost", "no-such-service-corio", AF_INET, SOCK_STREAM, out, 4,
                      corio_after(3 * CORIO_SEC));
    CHECK_EQ(n, -CORIO_ENONAME);
    return NULL;
}

TEST_TIMEOUT(pool_resolve_name_that_does_not_exist, 30)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, resolve_missing, NULL, 0), 0);
    test_run(loop);
    test_loop_free(loop); /* joins a worker still asking a silent server */
}

TEST(pool_resolve_numeric_skips_the_pool)
{
    corio_loop *loop = test_loop();
    struct sockaddr_storage out[2];
    /* No coroutine: a numeric address never parks, so this works here. */
    CHECK_EQ(corio_resolve("127.0.0.1", "443", AF_UNSPEC, SOCK_STREAM, out, 2, CORIO_NOWAIT), 1);
    CHECK(is_loopback(&out[0], 443));
    CHECK_EQ(corio_resolve("::1", "443", AF_UNSPEC, SOCK_STREAM, out, 2, CORIO_NOWAIT), 1);
    CHECK(is_loopback(&out[0], 443));
    CHECK_EQ(corio_resolve("::1", "443", AF_INET, SOCK_STREAM, out, 2, CORIO_NOWAIT),
             -CORIO_ENONAME);
    CHECK_EQ(corio_resolve("127.0.0.1", "443", 12345, SOCK_STREAM, out, 2, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_resolve("127.0.0.1", "80", AF_INET, 0, out, 0, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_resolve(NULL, NULL, AF_INET, 0, out, 2, CORIO_NOWAIT), -EINVAL);
    /* A name needs the pool: outside a coroutine it cannot wait for it. */
    CHECK_EQ(corio_resolve("localhost", "80", AF_INET, 0, out, 2, CORIO_FOREVER), -CORIO_ENOTCO);
    test_loop_free(loop);
}

static void *resolve_forever(void *p)
{
    int *rc = p;
    struct sockaddr_storage out[2];
    *rc = corio_resolve("localhost", "80", AF_INET, SOCK_STREAM, out, 2, CORIO_FOREVER);
    return NULL;
}

/* Cancelled while its lookup is queued behind a busy worker (taken back),
 * and while a worker runs it (discarded later). */
TEST(pool_resolve_cancelled)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_pool_set_size(loop, 1), 0);
    int p[2], queued = 99, running = 99;
    CHECK_EQ(pipe(p), 0);
    corio_co *a, *b;
    CHECK_EQ(corio_spawn(loop, NULL, occupy, &p[0], 0), 0);
    CHECK_EQ(corio_spawn(loop, &a, resolve_forever, &queued, 0), 0);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
    CHECK_EQ(corio_cancel(a), 0);
    occupy_done = 0;
    CHECK_EQ(write(p[1], "\x01", 1), 1);
    /* Let occupy() have its result before b comes: a hand-back already on
     * its way could otherwise run after b in b's first pass and deliver
     * b's lookup too, if the worker is that quick, and a call whose work is
     * done returns its result, cancelled or not (pool.h). */
    for (int i = 0; i < 1000 && !occupy_done; i++)
        CHECK(corio_loop_run(loop, CORIO_RUN_ONCE) >= 0);
    CHECK(occupy_done);
    CHECK_EQ(corio_spawn(loop, &b, resolve_forever, &running, 0), 0);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1); /* b's lookup is queued or running */
    CHECK_EQ(corio_cancel(b), 0);
    test_run(loop);
    CHECK_EQ(corio_join(a, NULL, CORIO_FOREVER), 0);
    CHECK_EQ(corio_join(b, NULL, CORIO_FOREVER), 0);
    CHECK_EQ(queued, -ECANCELED);
    CHECK_EQ(running, -ECANCELED);
    test_loop_free(loop); /* frees the lookup's job and addresses */
    close(p[0]);
    close(p[1]);
}

/* ---- Fault walk of this area ----
 * Every syscall and allocation site in sync.c, pool.c, resolve.c and
 * signal.c, failed at its 1st, 2nd and 3rd call with each error a kernel
 * could give there, under a workload that uses them all.  Each call must
 * succeed with the right result or fail with an error; the loop must free
 * cleanly; the runner checks no fd or byte leaked over the whole walk. */
static bool area_site(const struct corio__site *s)
{
    static const char *const files[] = {"src/sync.c", "src/pool.c", "src/resolve.c",
                                        "src/signal.c"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strstr(s->file, files[i]))
            return true;
    return false;
}

static const int *area_errs(const char *name)
{
    static const int nomem[] = {-ENOMEM, 0}, thread[] = {-EAGAIN, 0}, inval[] = {-EINVAL, 0},
                     fds[] = {-EMFILE, -ENOMEM, 0}, rd[] = {-EINTR, -EAGAIN, -EIO, CORIO__FAULT_SHORT, 0},
                     cl[] = {-EINTR, -EIO, 0}, other[] = {-EIO, 0};
    if (!strcmp(name, "malloc") || !strcmp(name, "getaddrinfo"))
        return nomem;
    if (!strcmp(name, "pthread_create"))
        return thread;
    if (!strcmp(name, "pthread_sigmask") || !strcmp(name, "sigaction"))
        return inval;
    if (!strcmp(name, "signalfd") || !strcmp(name, "pipe2"))
        return fds;
    if (!strcmp(name, "read"))
        return rd;
    if (!strcmp(name, "close"))
        return cl;
    return other;
}

static int area_discards;

static void count_discard(void *arg, void *result)
{
    (void)arg;
    (void)result;
    area_discards++;
}

static void *area_workload(void *p)
{
    corio_loop *loop = p;
    int v = 5, r;
    corio_chan *ch;
    if (corio_chan_new(loop, &ch, sizeof v, 1) == 0) {
        CHECK_EQ(corio_chan_send(ch, &v, CORIO_NOWAIT), 0);
        v = 0;
        CHECK_EQ(corio_chan_recv(ch, &v, CORIO_NOWAIT), 1);
        CHECK_EQ(v, 5);
        CHECK_EQ(corio_chan_free(ch), 0);
    }
    void *res = NULL;
    area_discards = 0;
    r = corio_pool_run(square, (void *)(intptr_t)6, count_discard, &res, corio_after(5 * CORIO_SEC));
    CHECK(r == 0 ? (intptr_t)res == 36 && area_discards == 0 : r != -ETIMEDOUT && area_discards == 1);

    struct sockaddr_storage out[4];
    r = corio_resolve("localhost", "80", AF_INET, SOCK_STREAM, out, 4, corio_after(5 * CORIO_SEC));
    CHECK(r >= 1 ? is_loopback(&out[0], 80) : r != -ETIMEDOUT);
    r = corio_resolve("127.0.0.1", "81", AF_INET, SOCK_STREAM, out, 4, CORIO_NOWAIT);
    CHECK(r == 1 ? is_loopback(&out[0], 81) : r < 0);

    const int usr1[] = {SIGUSR1};
    r = corio_signal_wait(usr1, 1, CORIO_NOWAIT);
    if (r == -EAGAIN) { /* routed to the loop: safe to send */
        CHECK_EQ(kill(getpid(), SIGUSR1), 0);
        r = corio_signal_wait(usr1, 1, corio_after(5 * CORIO_SEC));
        CHECK(r == SIGUSR1 || (r < 0 && r != -ETIMEDOUT));
    } else {
        CHECK(r < 0);
    }
    return NULL;
}

static void area_run(void)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, area_workload, loop, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

TEST_TIMEOUT(pool_fault_walk_of_sync_pool_resolve_signal, 120)
{
    struct corio__site *sites;
    size_t n = corio__fault_sites(&sites);
    for (size_t i = 0; i < n; i++)
        sites[i].calls = 0;
    corio__fault_record(true);
    area_run();
    corio__fault_record(false);
    size_t walked = 0;
    for (size_t i = 0; i < n; i++) {
        if (!area_site(&sites[i]))
            continue;
        if (!sites[i].calls)
            test_fail(__FILE__, __LINE__, "the workload does not reach %s at %s:%d",
                      sites[i].name, sites[i].file, sites[i].line);
        unsigned calls = sites[i].calls;
        for (const int *e = area_errs(sites[i].name); *e; e++)
            for (unsigned nth = 1; nth <= 3 && nth <= calls; nth++) {
                corio__fault_arm(&sites[i], NULL, nth, *e);
                area_run();
                CHECK(corio__fault_fired());
                corio__fault_disarm();
                walked++;
            }
    }
    CHECK(walked >= 20);
    area_run(); /* and all is well afterwards */
}
