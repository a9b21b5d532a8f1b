/* Sync, pool and resolver benchmarks (issue: streams, "between
 * coroutines").  Each figure is printed with its ratio to a reference
 * measured in the same run, in alternating rounds (A B B A ...); the
 * median of the per-round ratios is reported.
 *
 *   chan      a hand-off through an unbuffered channel (ping-pong between
 *             two coroutines) vs a bare corio_yield() between two
 *   chanbuf   an int through a 1024-slot channel, producer and consumer
 *             coroutines vs a plain ring buffer in one function
 *   mutex     an uncontended corio_mutex lock + unlock vs pthread_mutex
 *   pool      a trivial job through corio_pool_run() from 100 coroutines
 *             vs a thread created and joined per job; also prints how many
 *             completions each loop wakeup delivered
 *   resolve   corio_resolve("localhost") vs getaddrinfo() on the caller
 *
 * Usage: bench_sync [name ...] [-r rounds] */
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corio.h"

static int rounds = 5;

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

static void compare(const char *what, const char *ref, double (*a)(long), double (*b)(long), long n)
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
    printf("%-40s %9.1f ns/op   %-34s %9.1f ns/op   ratio %.3f\n", what, ra, ref, rb, rr);
    fflush(stdout);
}

static corio_loop *new_loop(void)
{
    corio_loop *loop;
    if (corio_loop_new(&loop, NULL) < 0)
        abort();
    return loop;
}

/* ---- chan: unbuffered ping-pong vs yield ---- */

struct pp {
    corio_chan *to, *from;
    long n;
};

static void *ping(void *p)
{
    struct pp *a = p;
    for (long i = 0; i < a->n; i++) {
        corio_chan_send(a->to, &i, CORIO_FOREVER);
        corio_chan_recv(a->from, &i, CORIO_FOREVER);
    }
    return NULL;
}

static void *pong(void *p)
{
    struct pp *a = p;
    long v;
    for (long i = 0; i < a->n; i++) {
        corio_chan_recv(a->to, &v, CORIO_FOREVER);
        corio_chan_send(a->from, &v, CORIO_FOREVER);
    }
    return NULL;
}

static double run_chan(long n)
{
    corio_loop *loop = new_loop();
    struct pp a = {.n = n / 2};
    corio_chan_new(loop, &a.to, sizeof(long), 0);
    corio_chan_new(loop, &a.from, sizeof(long), 0);
    corio_spawn(loop, NULL, ping, &a, 0);
    corio_spawn(loop, NULL, pong, &a, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)(a.n * 2);
    corio_chan_free(a.to);
    corio_chan_free(a.from);
    corio_loop_free(loop);
    return t;
}

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
    corio_loop *loop = new_loop();
    yields_left = n;
    corio_spawn(loop, NULL, yielder, NULL, 0);
    corio_spawn(loop, NULL, yielder, NULL, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)n;
    corio_loop_free(loop);
    return t;
}

/* ---- chanbuf: through a buffered channel vs a plain ring ---- */

static void *producer(void *p)
{
    struct pp *a = p;
    for (long i = 0; i < a->n; i++)
        corio_chan_send(a->to, &i, CORIO_FOREVER);
    corio_chan_close(a->to);
    return NULL;
}

static volatile long sink;

static void *consumer(void *p)
{
    struct pp *a = p;
    long v, s = 0;
    while (corio_chan_recv(a->to, &v, CORIO_FOREVER) == 1)
        s += v;
    sink = s;
    return NULL;
}

static double run_chanbuf(long n)
{
    corio_loop *loop = new_loop();
    struct pp a = {.n = n};
    corio_chan_new(loop, &a.to, sizeof(long), 1024);
    corio_spawn(loop, NULL, producer, &a, 0);
    corio_spawn(loop, NULL, consumer, &a, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)n;
    corio_chan_free(a.to);
    corio_loop_free(loop);
    return t;
}

static double run_ring(long n)
{
    static long ring[1024];
    volatile long *r = ring;
    long head = 0, len = 0, s = 0;
    double t0 = now_ns();
    for (long i = 0; i < n;) {
        while (len < 1024 && i < n) { /* fill, then drain: what the coroutines do */
            r[(head + len) & 1023] = i++;
            len++;
        }
        while (len > 0) {
            s += r[head];
            head = (head + 1) & 1023;
            len--;
        }
    }
    sink = s;
    return (now_ns() - t0) / (double)n;
}

/* ---- mutex: uncontended ---- */

static double run_mutex(long n)
{
    corio_loop *loop = new_loop();
    corio_mutex m;
    corio_mutex_init(loop, &m);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        corio_mutex_lock(&m, CORIO_NOWAIT);
        corio_mutex_unlock(&m);
    }
    double t = (now_ns() - t0) / (double)n;
    corio_loop_free(loop);
    return t;
}

static double run_pthread_mutex(long n)
{
    static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
    }
    return (now_ns() - t0) / (double)n;
}

/* ---- pool: corio_pool_run vs a thread per job ---- */

static void *job(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

static long pool_jobs_each;
static double pool_waits_per_job;

static void *pool_caller(void *p)
{
    (void)p;
    for (long i = 0; i < pool_jobs_each; i++)
        corio_pool_run(job, (void *)(intptr_t)i, NULL, NULL, CORIO_FOREVER);
    return NULL;
}

static double run_pool(long n)
{
    corio_loop *loop = new_loop();
    corio_stats s0, s1;
    enum { CALLERS = 100 };
    pool_jobs_each = n / CALLERS;
    for (int i = 0; i < CALLERS; i++)
        corio_spawn(loop, NULL, pool_caller, NULL, 0);
    corio_stats_take(loop, &s0, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)(pool_jobs_each * CALLERS);
    corio_stats_take(loop, &s1, 0);
    pool_waits_per_job = (double)(s1.waits - s0.waits) / (double)(pool_jobs_each * CALLERS);
    corio_loop_free(loop);
    return t;
}

static double run_thread_per_job(long n)
{
    n /= 10; /* ~10x slower: keep the run short */
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        pthread_t t;
        void *r;
        pthread_create(&t, NULL, job, (void *)(intptr_t)i);
        pthread_join(t, &r);
    }
    return (now_ns() - t0) / (double)n;
}

/* ---- resolve: through the pool vs on the caller's thread ---- */

static long lookups;

static void *resolver(void *p)
{
    (void)p;
    struct sockaddr_storage out[4];
    for (long i = 0; i < lookups; i++)
        if (corio_resolve("localhost", "80", AF_INET, SOCK_STREAM, out, 4, CORIO_FOREVER) < 1)
            abort();
    return NULL;
}

static double run_resolve(long n)
{
    corio_loop *loop = new_loop();
    lookups = n;
    corio_spawn(loop, NULL, resolver, NULL, 0);
    double t0 = now_ns();
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    double t = (now_ns() - t0) / (double)n;
    corio_loop_free(loop);
    return t;
}

static double run_getaddrinfo(long n)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (getaddrinfo("localhost", "80", &hints, &res) != 0)
            abort();
        freeaddrinfo(res);
    }
    return (now_ns() - t0) / (double)n;
}

static bool wanted(const char *name, int argc, char **argv)
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
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-r") == 0)
            rounds = atoi(argv[i + 1]);
    if (rounds < 1 || rounds > 64)
        rounds = 5;
    if (wanted("chan", argc, argv))
        compare("chan: unbuffered hand-off", "corio_yield between two", run_chan, run_yield,
                1000000);
    if (wanted("chanbuf", argc, argv))
        compare("chanbuf: 1024-slot channel, per element", "plain ring buffer", run_chanbuf,
                run_ring, 2000000);
    if (wanted("mutex", argc, argv))
        compare("mutex: uncontended lock+unlock", "pthread_mutex", run_mutex, run_pthread_mutex,
                5000000);
    if (wanted("pool", argc, argv)) {
        compare("pool: corio_pool_run, 100 callers", "thread created+joined per job", run_pool,
                run_thread_per_job, 100000);
        printf("%-40s %9.3f loop waits per job (coalesced completions)\n", "pool:",
               pool_waits_per_job);
    }
    if (wanted("resolve", argc, argv))
        compare("resolve: corio_resolve(localhost)", "getaddrinfo on the caller", run_resolve,
                run_getaddrinfo, 2000);
    return 0;
}
