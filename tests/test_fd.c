/* fd waits and I/O: try-first, deadlines and cancellation on every blocking
 * call, close waking waiters, stale events after fd reuse, fairness, and
 * the watchers of the callback level. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "../src/internal.h"
#include "test.h"

/* ---- Basic read/write between coroutines ---- */

struct pipe_arg {
    int fd;
    size_t total;
    unsigned long sum;
};

static void *writer(void *p)
{
    struct pipe_arg *a = p;
    char buf[4096];
    size_t done = 0;
    while (done < a->total) {
        size_t n = a->total - done < sizeof buf ? a->total - done : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)((done + i) * 131);
        ssize_t w = corio_write(a->fd, buf, n, corio_after(5 * CORIO_SEC));
        CHECK(w > 0);
        done += (size_t)w;
    }
    corio_close(a->fd);
    return NULL;
}

static void *reader(void *p)
{
    struct pipe_arg *a = p;
    char buf[3000];
    size_t got = 0;
    for (;;) {
        ssize_t r = corio_read(a->fd, buf, sizeof buf, corio_after(5 * CORIO_SEC));
        CHECK(r >= 0);
        if (r == 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            CHECK_EQ((unsigned char)buf[i], (unsigned char)((got + (size_t)i) * 131));
        got += (size_t)r;
    }
    a->total = got;
    corio_close(a->fd);
    return NULL;
}

TEST(fd_stream_every_byte)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    struct pipe_arg w = {sv[0], 8 << 20, 0}, r = {sv[1], 0, 0};
    CHECK_EQ(corio_spawn(loop, NULL, writer, &w, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, reader, &r, 0), 0);
    test_run(loop);
    CHECK_EQ(r.total, 8 << 20);
    test_loop_free(loop);
}

/* Data already buffered is read without waiting: no EAGAIN, no park. */
static void *read_buffered(void *p)
{
    int fd = *(int *)p;
    char buf[16];
    CHECK_EQ(corio_read(fd, buf, sizeof buf, CORIO_NOWAIT), 5);
    CHECK_EQ(corio_read(fd, buf, sizeof buf, CORIO_NOWAIT), -EAGAIN);
    return NULL;
}

TEST(fd_try_first)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    CHECK_EQ(write(sv[0], "hello", 5), 5);
    CHECK_EQ(corio_spawn(loop, NULL, read_buffered, &sv[1], 0), 0);
    test_run(loop);
    CHECK_EQ(loop->stats.eagain, 1);
    close(sv[0]);
    close(sv[1]);
    test_loop_free(loop);
}

/* ---- Every blocking call: deadline, cancel, close ---- */

struct env {
    int fd;      /* the fd the call blocks on */
    int peer;    /* the other end, kept open so the call stays blocked */
    int extra;   /* a further fd to close at teardown, or -1 */
    corio_co *target;
    struct sockaddr_in addr;
};

static void fill(int fd)
{
    int sz = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    static char buf[65536];
    memset(buf, 'x', sizeof buf);
    while (write(fd, buf, sizeof buf) > 0)
        ;
}

static void setup_pair(struct env *e)
{
    int sv[2];
    test_socketpair(sv);
    e->fd = sv[0];
    e->peer = sv[1];
    e->extra = -1;
}

static void setup_full(struct env *e)
{
    setup_pair(e);
    fill(e->fd);
}

static int listener(struct sockaddr_in *a, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
    socklen_t len = sizeof *a;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)a, &len), 0);
    CHECK_EQ(listen(fd, backlog), 0);
    return fd;
}

static void setup_listen(struct env *e)
{
    e->fd = listener(&e->addr, 16);
    e->peer = -1;
    e->extra = -1;
}

/* A connect that stays in progress: the listener's accept queue is full,
 * so the kernel drops our SYN and would retry it a second later. */
static void setup_connect(struct env *e)
{
    e->peer = listener(&e->addr, 0);
    e->extra = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r = connect(e->extra, (struct sockaddr *)&e->addr, sizeof e->addr);
    CHECK(r == 0 || errno == EINPROGRESS);
    /* Wait until that one sits in the accept queue (it is then full). */
    struct pollfd p = {.fd = e->peer, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 5000), 1);
    e->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(e->fd >= 0);
}

static void *forever(void *p)
{
    (void)p;
    corio_sleep_until(CORIO_FOREVER);
    return NULL;
}

static void setup_join(struct env *e)
{
    e->fd = e->peer = e->extra = -1;
    CHECK_EQ(corio_spawn(corio_loop_current(), &e->target, forever, NULL, 0), 0);
}

/* Runs in the blocked coroutine after its call returned; never parks,
 * since a cancelled coroutine cannot. */
static void teardown(struct env *e)
{
    if (e->fd >= 0)
        corio_close(e->fd);
    if (e->peer >= 0)
        close(e->peer);
    if (e->extra >= 0)
        close(e->extra);
    if (e->target) {
        corio_cancel(e->target);
        corio_detach(e->target);
    }
}

static char scratch[65536];

static long call_wait_fd(struct env *e, int64_t d) { return corio_wait_fd(e->fd, CORIO_READABLE, d); }
static long call_read(struct env *e, int64_t d) { return corio_read(e->fd, scratch, 100, d); }
static long call_readv(struct env *e, int64_t d)
{
    struct iovec v = {scratch, 100};
    return corio_readv(e->fd, &v, 1, d);
}
static long call_recv(struct env *e, int64_t d) { return corio_recv(e->fd, scratch, 100, 0, d); }
static long call_write(struct env *e, int64_t d) { return corio_write(e->fd, scratch, sizeof scratch, d); }
static long call_writev(struct env *e, int64_t d)
{
    struct iovec v = {scratch, sizeof scratch};
    return corio_writev(e->fd, &v, 1, d);
}
static long call_send(struct env *e, int64_t d) { return corio_send(e->fd, scratch, sizeof scratch, 0, d); }
static long call_write_all(struct env *e, int64_t d)
{
    return corio_write_all(e->fd, scratch, sizeof scratch, NULL, d);
}
static long call_accept(struct env *e, int64_t d) { return corio_accept(e->fd, NULL, NULL, d); }
static long call_connect(struct env *e, int64_t d)
{
    return corio_connect(e->fd, (struct sockaddr *)&e->addr, sizeof e->addr, d);
}
static long call_join(struct env *e, int64_t d) { return corio_join(e->target, NULL, d); }
static long call_sleep(struct env *e, int64_t d)
{
    int r = corio_sleep_until(d);
    return r == 0 && d != CORIO_FOREVER ? -ETIMEDOUT : r; /* sleeping to the end is its success */
}

static const struct blocking_call {
    const char *name;
    void (*setup)(struct env *);
    long (*call)(struct env *, int64_t);
    bool has_fd;
} calls[] = {
    {"wait_fd", setup_pair, call_wait_fd, true},
    {"read", setup_pair, call_read, true},
    {"readv", setup_pair, call_readv, true},
    {"recv", setup_pair, call_recv, true},
    {"write", setup_full, call_write, true},
    {"writev", setup_full, call_writev, true},
    {"send", setup_full, call_send, true},
    {"write_all", setup_full, call_write_all, true},
    {"accept", setup_listen, call_accept, true},
    {"connect", setup_connect, call_connect, true},
    {"join", setup_join, call_join, false},
    {"sleep_until", setup_join, call_sleep, false},
};

enum how { BY_DEADLINE, BY_CANCEL, BY_CLOSE };

struct run_arg {
    const struct blocking_call *c;
    struct env e;
    enum how how;
    long rc;
    int64_t took;
};

static void *blocked(void *p)
{
    struct run_arg *a = p;
    a->c->setup(&a->e);
    int64_t t0 = corio_now();
    a->rc = a->c->call(&a->e, a->how == BY_DEADLINE ? t0 + 20 * CORIO_MSEC : CORIO_FOREVER);
    a->took = corio_now() - t0;
    teardown(&a->e);
    return NULL;
}

static void *closer(void *p)
{
    struct env *e = p;
    CHECK_EQ(corio_close(e->fd), 0);
    e->fd = -1;
    return NULL;
}

static void check_all(enum how how)
{
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        if (how == BY_CLOSE && !calls[i].has_fd)
            continue;
        corio_loop *loop = test_loop();
        struct run_arg a = {.c = &calls[i], .how = how};
        corio_co *co;
        CHECK_EQ(corio_spawn(loop, &co, blocked, &a, 0), 0);
        /* Let it block, then interrupt it. */
        for (int k = 0; k < 3; k++)
            CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
        CHECK_EQ(a.took, 0); /* still blocked */
        if (how == BY_CANCEL)
            CHECK_EQ(corio_cancel(co), 0);
        if (how == BY_CLOSE)
            CHECK_EQ(corio_spawn(loop, NULL, closer, &a.e, 0), 0);
        test_run(loop);
        CHECK_EQ(corio_join(co, NULL, CORIO_FOREVER), 0);
        long want = how == BY_DEADLINE ? -ETIMEDOUT : how == BY_CANCEL ? -ECANCELED : -CORIO_ECLOSED;
        if (a.rc != want)
            test_fail(__FILE__, __LINE__, "%s: got %ld (%s), want %s", calls[i].name, a.rc,
                      corio_strerror((int)a.rc), corio_strerror((int)want));
        if (how == BY_DEADLINE)
            CHECK(a.took >= 20 * CORIO_MSEC);
        test_loop_free(loop);
    }
}

TEST(fd_deadline_on_every_blocking_call)
{
    check_all(BY_DEADLINE);
}

TEST(fd_cancel_in_every_blocking_call)
{
    check_all(BY_CANCEL);
}

TEST(fd_close_wakes_every_fd_call)
{
    check_all(BY_CLOSE);
}

/* ---- Close wakes every waiter, coroutines and watchers alike ---- */

struct waiter_arg {
    int fd;
    unsigned events;
    int rc;
};

static void *waits(void *p)
{
    struct waiter_arg *a = p;
    a->rc = corio_wait_fd(a->fd, a->events, CORIO_FOREVER);
    return NULL;
}

static unsigned watcher_saw;
static void watch_cb(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    watcher_saw |= revents;
}

static void *close_it(void *p)
{
    CHECK_EQ(corio_close(*(int *)p), 0);
    return NULL;
}

TEST(fd_close_wakes_all_waiters)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    fill(sv[0]);
    struct waiter_arg w[3] = {{sv[0], CORIO_READABLE, 0}, {sv[0], CORIO_WRITABLE, 0},
                              {sv[0], CORIO_READABLE, 0}};
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_spawn(loop, NULL, waits, &w[i], 0), 0);
    corio_watcher cw;
    corio_watcher_init(&cw, sv[0], CORIO_READABLE, 0, watch_cb, NULL);
    CHECK_EQ(corio_watcher_start(loop, &cw), 0);
    corio_loop_run(loop, CORIO_RUN_NOWAIT);
    corio_loop_run(loop, CORIO_RUN_NOWAIT);
    watcher_saw = 0;
    CHECK_EQ(corio_spawn(loop, NULL, close_it, &sv[0], 0), 0);
    test_run(loop); /* ends: the watcher was stopped by the close */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(w[i].rc, -CORIO_ECLOSED);
    CHECK_EQ(watcher_saw, CORIO_CLOSED);
    CHECK(!cw.active);
    close(sv[1]);
    test_loop_free(loop);
}

/* ---- A stale event after fd reuse in the same batch ---- */

struct reuse {
    int fd[2], peer[2];
    corio_watcher w[2];
    corio_watcher fresh;
    int fresh_fd;
    int first;    /* which watcher ran first */
    int fresh_calls;
    int stale_calls;
    int closed_calls;
};

static void fresh_cb(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    struct reuse *r = w->data;
    r->fresh_calls++;
}

static void reuse_cb(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    struct reuse *r = w->data;
    int me = w == &r->w[0] ? 0 : 1, other = 1 - me;
    if (revents & CORIO_CLOSED) {
        r->closed_calls++;
        return;
    }
    if (r->first >= 0) {
        r->stale_calls++;
        return;
    }
    r->first = me;
    /* Close the other fd, whose event is still in this batch, and put a
     * new, idle socket at the same number with a watcher of its own. */
    int num = r->fd[other];
    CHECK_EQ(corio_close(num), 0);
    int sv[2];
    test_socketpair(sv);
    if (sv[0] != num) {
        CHECK_EQ(dup2(sv[0], num), num);
        close(sv[0]);
    }
    r->fresh_fd = num;
    close(r->peer[other]);
    r->peer[other] = sv[1];
    corio_watcher_init(&r->fresh, num, CORIO_READABLE, 0, fresh_cb, r);
    CHECK_EQ(corio_watcher_start(loop, &r->fresh), 0);
    corio_watcher_stop(loop, w);
}

TEST(fd_stale_event_after_reuse_in_same_batch)
{
    corio_loop *loop = test_loop();
    struct reuse r = {.first = -1};
    for (int i = 0; i < 2; i++) {
        int sv[2];
        test_socketpair(sv);
        r.fd[i] = sv[0];
        r.peer[i] = sv[1];
        corio_watcher_init(&r.w[i], sv[0], CORIO_READABLE, 0, reuse_cb, &r);
        CHECK_EQ(corio_watcher_start(loop, &r.w[i]), 0);
    }
    /* Both readable before the loop waits: one batch carries both events. */
    CHECK_EQ(write(r.peer[0], "a", 1), 1);
    CHECK_EQ(write(r.peer[1], "b", 1), 1);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_ONCE), 1);
    CHECK(r.first >= 0);
    CHECK_EQ(r.closed_calls, 1); /* the closed fd's watcher heard of the close */
    CHECK_EQ(r.stale_calls, 0);  /* and not of the stale event */
    CHECK_EQ(r.fresh_calls, 0); /* nor did the stale event reach the new one */
    CHECK(loop->stats.stale >= 1 || strcmp(corio_loop_backend(loop), "poll") == 0);
    /* The new fd works: data on it reaches its watcher. */
    CHECK_EQ(write(r.peer[1 - r.first], "c", 1), 1);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_ONCE), 1);
    CHECK_EQ(r.fresh_calls, 1);
    corio_watcher_stop(loop, &r.fresh);
    corio_close(r.fresh_fd);
    corio_close(r.fd[r.first]);
    close(r.peer[0]);
    close(r.peer[1]);
    test_loop_free(loop);
}

/* ---- Fairness ---- */

static volatile bool stop_spinning;
static unsigned long spins;

static void *spinner(void *p)
{
    int fd = *(int *)p;
    char buf[64];
    while (!stop_spinning) { /* its reads always succeed */
        CHECK(corio_read(fd, buf, sizeof buf, CORIO_FOREVER) == sizeof buf);
        spins++;
    }
    return NULL;
}

static void *stopper(void *p)
{
    (void)p;
    CHECK_EQ(corio_sleep_until(corio_after(5 * CORIO_MSEC)), 0);
    stop_spinning = true;
    return NULL;
}

TEST(fd_fairness_never_blocking_coroutine)
{
    corio_loop *loop = test_loop();
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    stop_spinning = false;
    spins = 0;
    CHECK_EQ(corio_spawn(loop, NULL, spinner, &fd, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, stopper, NULL, 0), 0);
    test_run(loop); /* without the budget this never ends */
    CHECK(spins > 0);
    CHECK(loop->stats.budget_yields > 0);
    close(fd);
    test_loop_free(loop);
}

static void *yield_forever(void *p)
{
    while (!stop_spinning)
        corio_yield();
    return NULL;
}

static int pinged;
static void *ping_reader(void *p)
{
    int fd = *(int *)p;
    char c;
    CHECK_EQ(corio_read(fd, &c, 1, corio_after(5 * CORIO_SEC)), 1);
    pinged = 1;
    stop_spinning = true;
    return NULL;
}

TEST(fd_yielding_coroutine_does_not_starve_io)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    stop_spinning = false;
    pinged = 0;
    CHECK_EQ(corio_spawn(loop, NULL, yield_forever, NULL, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, ping_reader, &sv[1], 0), 0);
    for (int i = 0; i < 5; i++)
        corio_loop_run(loop, CORIO_RUN_NOWAIT);
    CHECK_EQ(write(sv[0], "x", 1), 1);
    test_run(loop);
    CHECK_EQ(pinged, 1);
    close(sv[0]);
    corio_close(sv[1]);
    test_loop_free(loop);
}

/* ---- Watchers ---- */

static int level_calls, edge_calls;
static void level_cb(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    CHECK(revents & CORIO_READABLE);
    level_calls++;
}
/* An edge watcher drains with corio's calls until -EAGAIN, which is how the
 * loop learns the fd is no longer ready. */
static void edge_cb(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    CHECK(revents & CORIO_READABLE);
    edge_calls++;
    char c;
    while (corio_read(w->fd, &c, 1, CORIO_NOWAIT) == 1)
        ;
}

TEST(watcher_level_and_edge)
{
    corio_loop *loop = test_loop();
    int a[2], b[2];
    test_socketpair(a);
    test_socketpair(b);
    corio_watcher lw, ew;
    corio_watcher_init(&lw, a[1], CORIO_READABLE, 0, level_cb, NULL);
    corio_watcher_init(&ew, b[1], CORIO_READABLE, CORIO_WATCH_EDGE, edge_cb, NULL);
    CHECK_EQ(corio_watcher_start(loop, &lw), 0);
    CHECK_EQ(corio_watcher_start(loop, &ew), 0);
    CHECK_EQ(corio_watcher_start(loop, &ew), -EEXIST);
    level_calls = edge_calls = 0;
    CHECK_EQ(write(a[0], "x", 1), 1);
    CHECK_EQ(write(b[0], "x", 1), 1);
    for (int i = 0; i < 5; i++) /* a is never read: level repeats, edge does not */
        corio_loop_run(loop, CORIO_RUN_ONCE);
    CHECK(level_calls >= 4);
    CHECK_EQ(edge_calls, 1);
    char c;
    CHECK_EQ(read(a[1], &c, 1), 1);
    int before = level_calls;
    for (int i = 0; i < 3; i++)
        corio_loop_run(loop, CORIO_RUN_NOWAIT);
    CHECK(level_calls <= before + 1); /* drained: it stops */
    CHECK_EQ(write(b[0], "y", 1), 1); /* a new edge */
    corio_loop_run(loop, CORIO_RUN_ONCE);
    CHECK_EQ(edge_calls, 2);
    corio_watcher_stop(loop, &lw);
    corio_watcher_stop(loop, &ew);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_DEFAULT), 0);
    for (int i = 0; i < 2; i++) {
        corio_close(a[i]);
        corio_close(b[i]);
    }
    test_loop_free(loop);
}

TEST(watcher_rejects_regular_file_on_epoll)
{
    corio_loop *loop = test_loop();
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char path[] = "/tmp/corio-test-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    corio_watcher w;
    corio_watcher_init(&w, f, CORIO_READABLE, 0, level_cb, NULL);
    int r = corio_watcher_start(loop, &w);
    if (strcmp(corio_loop_backend(loop), "epoll") == 0)
        CHECK_EQ(r, -EPERM);
    else
        corio_watcher_stop(loop, &w);
    CHECK(!w.active || strcmp(corio_loop_backend(loop), "poll") == 0);
    corio_close(f);
    close(fd);
    test_loop_free(loop);
}

/* ---- Wakeups from other threads ---- */

struct post_arg {
    corio_loop *loop;
    corio_callback cb[100];
    int got;
};

static void posted_cb(corio_loop *loop, corio_callback *cb)
{
    struct post_arg *a = cb->data;
    CHECK_EQ((int)(cb - a->cb), a->got); /* in post order */
    if (++a->got == 100)
        corio_loop_unref(loop);
}

static void *poster(void *p)
{
    struct post_arg *a = p;
    for (int i = 0; i < 100; i++) {
        a->cb[i].fn = posted_cb;
        a->cb[i].data = a;
        CHECK_EQ(corio_loop_post(a->loop, &a->cb[i]), 0);
        if (i % 10 == 0)
            usleep(100);
    }
    return NULL;
}

TEST(loop_post_from_another_thread)
{
    corio_loop *loop = test_loop();
    struct post_arg a = {.loop = loop};
    corio_loop_ref(loop); /* alive until all 100 arrive */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, poster, &a), 0);
    test_run(loop);
    pthread_join(t, NULL);
    CHECK_EQ(a.got, 100);
    test_loop_free(loop);
}

/* ---- connect and accept end to end over TCP ---- */

static void *tcp_server(void *p)
{
    int lfd = *(int *)p;
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int c = corio_accept(lfd, (struct sockaddr *)&peer, &len, corio_after(5 * CORIO_SEC));
    CHECK(c >= 0);
    CHECK_EQ(fcntl(c, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    char buf[5];
    CHECK_EQ(corio_read(c, buf, 5, corio_after(5 * CORIO_SEC)), 5);
    CHECK_EQ(corio_write_all(c, buf, 5, NULL, corio_after(5 * CORIO_SEC)), 5);
    corio_close(c);
    return NULL;
}

static void *tcp_client(void *p)
{
    struct sockaddr_in *a = p;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK_EQ(corio_connect(fd, (struct sockaddr *)a, sizeof *a, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(corio_write(fd, "hello", 5, corio_after(5 * CORIO_SEC)), 5);
    char buf[8];
    CHECK_EQ(corio_read(fd, buf, 8, corio_after(5 * CORIO_SEC)), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(corio_read(fd, buf, 8, corio_after(5 * CORIO_SEC)), 0); /* EOF */
    corio_close(fd);
    return NULL;
}

TEST(fd_tcp_accept_connect)
{
    corio_loop *loop = test_loop();
    struct sockaddr_in a;
    int lfd = listener(&a, 16);
    CHECK_EQ(corio_spawn(loop, NULL, tcp_server, &lfd, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, tcp_client, &a, 0), 0);
    test_run(loop);
    corio_close(lfd);
    test_loop_free(loop);
}

/* A refused connect reports the kernel's error. */
static void *refused(void *p)
{
    struct sockaddr_in a;
    int lfd = listener(&a, 1);
    close(lfd); /* nobody listens there now */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    *(int *)p = corio_connect(fd, (struct sockaddr *)&a, sizeof a, corio_after(5 * CORIO_SEC));
    corio_close(fd);
    return NULL;
}

TEST(fd_connect_refused)
{
    corio_loop *loop = test_loop();
    int rc = 0;
    CHECK_EQ(corio_spawn(loop, NULL, refused, &rc, 0), 0);
    test_run(loop);
    CHECK_EQ(rc, -ECONNREFUSED);
    test_loop_free(loop);
}

/* wait_fd reports hang-up and the peer's half-close. */
static void *wait_hup(void *p)
{
    int *sv = p;
    shutdown(sv[0], SHUT_WR);
    int r = corio_wait_fd(sv[1], CORIO_READABLE, corio_after(5 * CORIO_SEC));
    CHECK(r > 0);
    CHECK(r & CORIO_READABLE);
    char c;
    CHECK_EQ(corio_read(sv[1], &c, 1, CORIO_NOWAIT), 0); /* EOF */
    return NULL;
}

TEST(fd_wait_reports_half_close)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    CHECK_EQ(corio_spawn(loop, NULL, wait_hup, sv, 0), 0);
    test_run(loop);
    corio_close(sv[0]);
    corio_close(sv[1]);
    test_loop_free(loop);
}
