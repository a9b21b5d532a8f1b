/* Core benchmarks (issue: corio core).  Each figure is printed with its
 * ratio to a reference measured in the same run, in alternating rounds
 * (A B B A ...), and the median of the per-round ratios is reported: this
 * machine's speed drifts too much for absolute times measured apart.
 *
 *   switch      a coroutine switch vs a getppid() syscall
 *   spawn       spawn + exit + join with a pooled stack vs getppid()
 *   pingpong    64-byte ping-pong over a socketpair between two coroutines
 *               vs a hand-written edge-triggered epoll loop with callbacks
 *   timers      a million deadlines started then cancelled vs a binary heap
 *
 * Usage: bench_core [name ...] [-r rounds] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "corio.h"
#include "ctx/ctx.h"

static int rounds = 7;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs a (corio) and b (reference) in rounds A B B A ..., each returning ns
 * per operation; prints medians and the median per-round ratio a/b. */
static void compare(const char *what, const char *ref, double (*a)(long), double (*b)(long), long n,
                    const char *goal)
{
    double va[64], vb[64], ratio[64];
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            va[r] = a(n);
            vb[r] = b(n);
        } else {
            vb[r] = b(n);
            va[r] = a(n);
        }
        ratio[r] = va[r] / vb[r];
    }
    double ra = median(va, rounds), rb = median(vb, rounds), rr = median(ratio, rounds);
    printf("%-44s %9.1f ns/op   %-30s %9.1f ns/op   ratio %.3f%s%s\n", what, ra, ref, rb, rr,
           goal ? "   goal: " : "", goal ? goal : "");
    fflush(stdout);
}

/* ---- getppid: the syscall reference ---- */

static double run_getppid(long n)
{
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return (now_ns() - t0) / (double)n;
}

/* ---- raw context switch ---- */

static corio_ctx main_ctx, co_ctx;
static long raw_left;

static void raw_entry(void *arg)
{
    (void)arg;
    for (;;)
        corio__ctx_switch(&co_ctx, &main_ctx);
}

static double run_raw_switch(long n)
{
    static char *stack;
    if (!stack) {
        stack = malloc(64 * 1024);
        corio__ctx_make(&co_ctx, stack, 64 * 1024, raw_entry, NULL);
    }
    raw_left = n;
    double t0 = now_ns();
    for (long i = 0; i < n / 2; i++)
        corio__ctx_switch(&main_ctx, &co_ctx);
    return (now_ns() - t0) / (double)(n / 2 * 2);
}

/* ---- yield between two coroutines, through the loop ---- */

static long yields_left;

static void *yielder(void *p)
{
    (void)p;
    while (yields_left-- > 0)
        corio_yield();
    return NULL;
}

static double run_yield(long n)
{
    corio_loop *loop;
    corio_loop_new(&loop, NULL);
    yields_left = n;
    corio_spawn(loop, NULL, yielder, NULL, 0);
    corio_spawn(loop, NULL, yielder, NULL, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)n;
    corio_loop_free(loop);
    return t;
}

/* ---- spawn + exit + join ---- */

static void *nothing(void *p)
{
    return p;
}

static void *spawner(void *p)
{
    long n = *(long *)p;
    corio_loop *loop = corio_loop_current();
    for (long i = 0; i < n; i++) {
        corio_co *co;
        corio_spawn(loop, &co, nothing, NULL, 0);
        corio_join(co, NULL, CORIO_FOREVER);
    }
    return NULL;
}

static double run_spawn(long n)
{
    corio_loop *loop;
    corio_loop_new(&loop, NULL);
    corio_spawn(loop, NULL, spawner, &n, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)n;
    corio_loop_free(loop);
    return t;
}

/* ---- ping-pong of 64-byte messages ---- */

static int pp_fd[2];
static long pp_left;

static void *pp_ping(void *p)
{
    char buf[64] = {1};
    for (long i = 0; i < pp_left; i++) {
        corio_write(pp_fd[0], buf, 64, CORIO_FOREVER);
        if (corio_read(pp_fd[0], buf, 64, CORIO_FOREVER) != 64)
            abort();
    }
    return NULL;
}

static void *pp_pong(void *p)
{
    char buf[64];
    for (long i = 0; i < pp_left; i++) {
        if (corio_read(pp_fd[1], buf, 64, CORIO_FOREVER) != 64)
            abort();
        corio_write(pp_fd[1], buf, 64, CORIO_FOREVER);
    }
    return NULL;
}

static double run_pingpong_corio(long n)
{
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pp_fd);
    corio_loop *loop;
    corio_loop_new(&loop, NULL);
    pp_left = n;
    corio_spawn(loop, NULL, pp_ping, NULL, 0);
    corio_spawn(loop, NULL, pp_pong, NULL, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)n;
    corio_close(pp_fd[0]);
    corio_close(pp_fd[1]);
    corio_loop_free(loop);
    return t;
}

/* The reference: what one would write by hand with edge-triggered epoll
 * and a callback per fd, reading until EAGAIN. */
struct ep_side {
    int fd;
    long left;
    bool ping;
};

static void ep_on_readable(struct ep_side *s, long *done)
{
    char buf[64];
    for (;;) {
        ssize_t r = read(s->fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EAGAIN)
                return;
            abort();
        }
        if (r == 0)
            abort();
        if (s->ping) {
            if (--s->left == 0) {
                *done = 1;
                return;
            }
            write(s->fd, buf, 64);
        } else {
            write(s->fd, buf, 64);
        }
    }
}

static double run_pingpong_epoll(long n)
{
    int fd[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd);
    int ep = epoll_create1(0);
    struct ep_side sides[2] = {{fd[0], n, true}, {fd[1], n, false}};
    for (int i = 0; i < 2; i++) {
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &sides[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &e);
    }
    char buf[64] = {1};
    long done = 0;
    struct epoll_event ev[64];
    double t0 = now_ns();
    write(fd[0], buf, 64);
    while (!done) {
        int k = epoll_wait(ep, ev, 64, -1);
        for (int i = 0; i < k && !done; i++)
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                ep_on_readable(ev[i].data.ptr, &done);
    }
    double t = (now_ns() - t0) / (double)n;
    close(ep);
    close(fd[0]);
    close(fd[1]);
    return t;
}

/* ---- a million deadlines ---- */

#define NTIMERS 1000000
static corio_timer *timers;
static int64_t *deadlines;

static void no_fire(corio_loop *l, corio_timer *t)
{
    (void)l, (void)t;
}

static double run_wheel(long n)
{
    corio_loop *loop;
    corio_loop_new(&loop, NULL);
    for (long i = 0; i < n; i++)
        corio_timer_init(&timers[i], no_fire, NULL);
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        corio_timer_start(loop, &timers[i], deadlines[i]);
    for (long i = 0; i < n; i++)
        corio_timer_stop(loop, &timers[i]);
    double t = (now_ns() - t0) / (double)(2 * n);
    corio_loop_free(loop);
    return t;
}

/* Reference: an indexed binary min-heap, as in libuv and Go (Go's is 4-ary). */
struct hnode {
    int64_t deadline;
    long idx;
};
static struct hnode *hnodes;
static struct hnode **heap;
static long hlen;

static void hswap(long a, long b)
{
    struct hnode *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->idx = a;
    heap[b]->idx = b;
}

static void hup(long i)
{
    while (i > 0 && heap[(i - 1) / 2]->deadline > heap[i]->deadline) {
        hswap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void hdown(long i)
{
    for (;;) {
        long l = 2 * i + 1, r = l + 1, m = i;
        if (l < hlen && heap[l]->deadline < heap[m]->deadline)
            m = l;
        if (r < hlen && heap[r]->deadline < heap[m]->deadline)
            m = r;
        if (m == i)
            return;
        hswap(i, m);
        i = m;
    }
}

static double run_heap(long n)
{
    hlen = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        hnodes[i].deadline = deadlines[i];
        hnodes[i].idx = hlen;
        heap[hlen++] = &hnodes[i];
        hup(hlen - 1);
    }
    for (long i = 0; i < n; i++) {
        long k = hnodes[i].idx;
        hswap(k, --hlen);
        if (k < hlen) {
            hdown(k);
            hup(k);
        }
    }
    return (now_ns() - t0) / (double)(2 * n);
}

static bool want(int argc, char **argv, const char *name)
{
    bool any = false;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            i++;
            continue;
        }
        any = true;
        if (strcmp(argv[i], name) == 0)
            return true;
    }
    return !any;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc - 1; i++)
        if (strcmp(argv[i], "-r") == 0)
            rounds = atoi(argv[i + 1]);
    if (rounds < 1 || rounds > 64)
        rounds = 7;
    setenv("CORIO_BACKEND", "epoll", 0);
    printf("corio core benchmarks: median of %d alternating rounds; ratio = corio / reference\n", rounds);
    if (want(argc, argv, "switch")) {
        compare("context switch (raw, one direction)", "getppid() syscall", run_raw_switch, run_getppid,
                4000000, "< 0.05");
        compare("yield: coroutine -> loop -> coroutine", "getppid() syscall", run_yield, run_getppid,
                2000000, NULL);
    }
    if (want(argc, argv, "spawn"))
        compare("spawn + exit + join (pooled stack)", "getppid() syscall", run_spawn, run_getppid,
                1000000, NULL);
    if (want(argc, argv, "pingpong"))
        compare("ping-pong 64 B, coroutines (round trip)", "hand-written ET epoll", run_pingpong_corio,
                run_pingpong_epoll, 200000, ">= 0.95x speed, i.e. ratio <= 1.05");
    if (want(argc, argv, "timers")) {
        timers = calloc(NTIMERS, sizeof *timers);
        deadlines = malloc(NTIMERS * sizeof *deadlines);
        hnodes = malloc(NTIMERS * sizeof *hnodes);
        heap = malloc(NTIMERS * sizeof *heap);
        int64_t now = corio_now();
        uint64_t x = 88172645463325252ull;
        for (long i = 0; i < NTIMERS; i++) { /* timeouts of 1 s .. 1 h, in arrival order */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            deadlines[i] = now + CORIO_SEC + (int64_t)(x % (3600ull * CORIO_SEC));
        }
        compare("1M deadlines: start, then cancel (wheel)", "binary heap, same ops", run_wheel, run_heap,
                NTIMERS, NULL);
    }
    return 0;
}
