/* corio-load: the histogram, the rate schedule and the response reader as
 * units; then the two programs together, as processes, the way the demo
 * runs them (port 0, the port read from the server's first line). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../apps/load/hist.h"
#include "../apps/load/rate.h"
#include "../apps/load/resp.h"
#include "test.h"

/* ---- Histogram ---- */

TEST(load_hist_buckets)
{
    /* Exact below 2^HIST_SUB_BITS; contiguous, ordered buckets above. */
    for (uint64_t v = 0; v < HIST_SUB; v++) {
        CHECK_EQ(hist_bucket(v), v);
        CHECK_EQ(hist_bucket_low((unsigned)v), v);
        CHECK_EQ(hist_bucket_high((unsigned)v), v);
    }
    for (unsigned i = 0; i + 1 < HIST_BUCKETS; i++) {
        CHECK_EQ(hist_bucket_high(i) + 1, hist_bucket_low(i + 1));
        CHECK_EQ(hist_bucket(hist_bucket_low(i)), i);
        CHECK_EQ(hist_bucket(hist_bucket_high(i)), i);
    }
    /* Every value lands in a bucket no wider than 1/128 of it. */
    uint64_t v = 1;
    for (int k = 0; k < 2000; k++) {
        unsigned b = hist_bucket(v);
        CHECK(hist_bucket_low(b) <= v && v <= hist_bucket_high(b));
        if (b < HIST_BUCKETS - 1)
            CHECK((double)(hist_bucket_high(b) - hist_bucket_low(b)) <= (double)v / HIST_SUB);
        v = v * 1.013 + 1;
        if (v > (1ull << HIST_TOP_BIT))
            break;
    }
    CHECK_EQ(hist_bucket(UINT64_MAX), HIST_BUCKETS - 1);
}

TEST(load_hist_quantiles)
{
    static struct hist h, a, b;
    hist_init(&h);
    CHECK_EQ(hist_quantile(&h, 0.5), 0);
    CHECK_EQ(hist_mean(&h), 0);
    /* 1..100000 ns once each. */
    for (uint64_t v = 1; v <= 100000; v++)
        hist_add(&h, v, 1);
    CHECK_EQ(h.count, 100000);
    CHECK_EQ(h.min, 1);
    CHECK_EQ(h.max, 100000);
    CHECK_EQ(hist_quantile(&h, 1.0), 100000);
    CHECK_EQ(hist_quantile(&h, 0.0), 1);
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (int i = 0; i < 4; i++) {
        double want = qs[i] * 100000, got = (double)hist_quantile(&h, qs[i]);
        CHECK(got >= want && got <= want * (1 + 1.0 / HIST_SUB) + 1);
    }
    CHECK(fabs(hist_mean(&h) - 50000.5) < 0.01);
    /* Small counts: the rank is ceil(q * n). */
    hist_init(&a);
    hist_add(&a, 10, 1);
    hist_add(&a, 20, 1);
    hist_add(&a, 30, 2);
    CHECK_EQ(hist_quantile(&a, 0.25), 10);
    CHECK_EQ(hist_quantile(&a, 0.26), 20);
    CHECK_EQ(hist_quantile(&a, 0.5), 20);
    CHECK_EQ(hist_quantile(&a, 0.75), 30);
    /* Merging equals recording everything in one. */
    hist_init(&b);
    hist_add(&b, 5000000, 3);
    hist_merge(&b, &a);
    CHECK_EQ(b.count, 7);
    CHECK_EQ(b.min, 10);
    CHECK_EQ(b.max, 5000000);
    CHECK_EQ(b.sum, 10 + 20 + 60 + 15000000);
    CHECK_EQ(hist_quantile(&b, 0.5), 30);
    uint64_t p = hist_quantile(&b, 0.9);
    CHECK(p >= 5000000 - 5000000 / HIST_SUB && p <= 5000000);
    /* A huge value is kept in the last bucket, the maximum exact. */
    hist_add(&b, UINT64_MAX / 2, 1);
    CHECK_EQ(hist_quantile(&b, 1.0), UINT64_MAX / 2);
}

/* ---- Rate schedule ---- */

TEST(load_rate_schedule)
{
    struct rate r;
    rate_init(&r, 1000, 5000, 0, 1); /* 1000/s from t = 5000 ns */
    CHECK_EQ(rate_due(&r, 0), 5000);
    CHECK_EQ(rate_due(&r, 1), 5000 + CORIO_MSEC);
    CHECK_EQ(rate_due(&r, 1000), 5000 + CORIO_SEC);
    /* No drift: a billion slots later, exact. */
    rate_init(&r, 1e6, 0, 0, 1);
    CHECK_EQ(rate_due(&r, 1000000000ull), 1000 * CORIO_SEC);
    /* A rate with no whole period: 3/s. */
    rate_init(&r, 3, 0, 0, 1);
    CHECK_EQ(rate_due(&r, 3), CORIO_SEC);
    CHECK_EQ(rate_due(&r, 1), 333333333);
    CHECK_EQ(rate_due(&r, 300000), 100000 * CORIO_SEC);
    /* Taking advances; behind counts the slots due and untaken. */
    rate_init(&r, 100, 0, 0, 1); /* every 10 ms */
    CHECK_EQ(rate_behind(&r, -1), 0);
    CHECK_EQ(rate_behind(&r, 0), 1);
    CHECK_EQ(rate_behind(&r, 25 * CORIO_MSEC), 3);
    CHECK_EQ(rate_take(&r), 0);
    CHECK_EQ(rate_take(&r), 10 * CORIO_MSEC);
    CHECK_EQ(rate_peek(&r), 20 * CORIO_MSEC);
    CHECK_EQ(rate_behind(&r, 25 * CORIO_MSEC), 1);
    CHECK_EQ(rate_behind(&r, 19 * CORIO_MSEC), 0);
}

/* Four takers striding one schedule take every slot exactly once, and
 * their due times interleave. */
TEST(load_rate_stride)
{
    enum { N = 4, K = 1000 };
    struct rate r[N];
    static char seen[N * K];
    for (int i = 0; i < N; i++)
        rate_init(&r[i], 4000, 0, (uint64_t)i, N);
    int64_t last = -1;
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) {
            uint64_t slot = r[i].next;
            int64_t t = rate_take(&r[i]);
            CHECK(slot < N * K && !seen[slot]);
            seen[slot] = 1;
            CHECK_EQ(t, (int64_t)slot * 250 * CORIO_USEC);
            CHECK(t > last);
            last = t;
        }
    CHECK_EQ(rate_behind(&r[1], 0), 0);
    CHECK_EQ(rate_behind(&r[1], 4 * K * 250 * CORIO_USEC + 250 * CORIO_USEC), 1);
}

/* ---- Response reader ---- */

static int feed_all(struct resp_reader *rr, char *buf, size_t n, int *statuses, int max)
{
    int got = 0;
    size_t off = 0;
    while (off < n) {
        size_t used;
        int r = resp_feed(rr, buf + off, n - off, &used);
        if (r < 0)
            return -1;
        off += used;
        if (r == 1 && got < max)
            statuses[got++] = rr->status;
        if (r == 0)
            break;
    }
    return off == n ? got : -2;
}

TEST(load_resp_reader)
{
    static const char stream[] =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        "HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t n = sizeof stream - 1;
    /* In one piece. */
    char buf[512];
    memcpy(buf, stream, n);
    struct resp_reader rr;
    resp_init(&rr);
    int st[8];
    CHECK_EQ(feed_all(&rr, buf, n, st, 8), 5);
    CHECK_EQ(st[0], 200);
    CHECK_EQ(st[1], 404);
    CHECK_EQ(st[2], 200);
    CHECK_EQ(st[3], 204);
    CHECK_EQ(st[4], 200);
    CHECK(rr.close); /* HTTP/1.0 */
    /* Split at every point: the caller keeps what was not used. */
    for (size_t cut = 1; cut < n; cut++) {
        resp_init(&rr);
        char b[512];
        int total = 0;
        size_t have = 0, fed = 0;
        while (fed < n || have) {
            size_t k = fed < cut ? cut - fed : n - fed;
            memcpy(b + have, stream + fed, k);
            have += k;
            fed += k;
            size_t off = 0;
            for (;;) {
                size_t used;
                int r = resp_feed(&rr, b + off, have - off, &used);
                CHECK(r >= 0);
                off += used;
                if (r == 1)
                    total++;
                if (r == 0 || off == have)
                    break;
            }
            memmove(b, b + off, have - off);
            have -= off;
            if (fed == n)
                break;
        }
        CHECK_EQ(total, 5);
        CHECK_EQ(have, 0);
    }
    /* Malformed. */
    static const char *const bad[] = {
        "HTTQ/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\n\r\n", /* a body to the end of the connection */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp_init(&rr);
        char b[256];
        size_t len = strlen(bad[i]), used;
        memcpy(b, bad[i], len);
        CHECK_EQ(resp_feed(&rr, b, len, &used), -1);
    }
}

/* ---- The programs together ---- */

/* The directory of the running test binary, where the programs are. */
static void bin_path(char *out, size_t size, const char *name)
{
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    self[n] = 0;
    char *slash = strrchr(self, '/');
    *slash = 0;
    snprintf(out, size, "%s/%s", self, name);
    CHECK(access(out, X_OK) == 0);
}

struct child {
    pid_t pid;
    int out; /* its stdout */
    char buf[8192];
    size_t len;
};

static void spawn(struct child *c, char *const argv[])
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    c->pid = fork();
    CHECK(c->pid >= 0);
    if (c->pid == 0) {
        dup2(p[1], 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    c->out = p[0];
    c->len = 0;
}

/* Reads the child's stdout until it contains `what` (or ends, or 20 s
 * pass); returns the line where it starts, or NULL. */
static const char *read_until(struct child *c, const char *what)
{
    for (int waited = 0; waited < 20000;) {
        c->buf[c->len] = 0;
        const char *hit = strstr(c->buf, what);
        if (hit)
            return hit;
        struct pollfd pf = {.fd = c->out, .events = POLLIN};
        int r = poll(&pf, 1, 100);
        if (r == 0) {
            waited += 100;
            continue;
        }
        ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
        if (n <= 0)
            return NULL;
        c->len += (size_t)n;
    }
    return NULL;
}

static int reap(struct child *c)
{
    int st = 0;
    CHECK_EQ(waitpid(c->pid, &st, 0), c->pid);
    close(c->out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int start_server(struct child *srv, const char *threads)
{
    char path[600];
    bin_path(path, sizeof path, "corio-http");
    char *const argv[] = {path, "-l", "127.0.0.1:0", "-t", (char *)threads, NULL};
    spawn(srv, argv);
    const char *line = read_until(srv, "\n");
    CHECK(line != NULL);
    const char *colon = strstr(srv->buf, "127.0.0.1:");
    CHECK(colon != NULL);
    return atoi(colon + 10);
}

static long long json_num(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    CHECK(p != NULL);
    return atoll(p + strlen(k));
}

/* corio-load against corio-http in closed loop, pipelined and open loop;
 * every request answered; then SIGTERM and the server's summary agrees. */
TEST_TIMEOUT(load_against_server, 60)
{
    struct child srv, ld;
    int port = start_server(&srv, "2");
    char url[64], path[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/plaintext", port);
    bin_path(path, sizeof path, "corio-load");
    static const char *const modes[][6] = {
        {"-c", "20", "-n", "20000", NULL, NULL},
        {"-c", "10", "-p", "16", "-n", "32000"},
        {"-c", "10", "-r", "5000", "-d", "1"},
    };
    long long total = 0;
    for (int m = 0; m < 3; m++) {
        char *argv[12] = {path, "--json", "-q"};
        int a = 3;
        for (int i = 0; i < 6 && modes[m][i]; i++)
            argv[a++] = (char *)modes[m][i];
        argv[a++] = url;
        argv[a] = NULL;
        spawn(&ld, argv);
        const char *json = read_until(&ld, "}}");
        CHECK(json != NULL);
        long long sent = json_num(ld.buf, "sent"), answered = json_num(ld.buf, "answered");
        CHECK(sent > 0);
        CHECK_EQ(answered, sent);
        CHECK_EQ(json_num(ld.buf, "total"), 0);
        CHECK_EQ(json_num(ld.buf, "2xx"), answered);
        CHECK_EQ(reap(&ld), 0);
        total += answered;
    }
    CHECK_EQ(kill(srv.pid, SIGTERM), 0);
    const char *sum = read_until(&srv, "}\n");
    CHECK(sum != NULL);
    CHECK_EQ(json_num(strstr(srv.buf, "summary"), "requests"), total);
    CHECK_EQ(reap(&srv), 0);
}

/* Idle mode holds its connections, all of them, from several source
 * addresses; a server with a short idle timeout is caught closing them. */
TEST_TIMEOUT(load_idle, 60)
{
    struct child srv, ld;
    int port = start_server(&srv, "1");
    char url[64], path[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/plaintext", port);
    bin_path(path, sizeof path, "corio-load");
    char *argv[] = {path, "idle", "-q", "--json", "--warm", "-c", "500", "--sources", "3",
                    "-d", "0.5", url, NULL};
    spawn(&ld, argv);
    CHECK(read_until(&ld, "all 500 connections open") != NULL);
    CHECK(read_until(&ld, "}}") != NULL);
    CHECK_EQ(json_num(ld.buf, "connected"), 500);
    CHECK_EQ(json_num(ld.buf, "answered"), 500);
    CHECK_EQ(json_num(ld.buf, "total"), 0);
    CHECK_EQ(reap(&ld), 0);
    kill(srv.pid, SIGTERM);
    CHECK_EQ(reap(&srv), 0);
}

/* A plain echo server on threads (no corio: the test must not share the
 * runner's allocation counter with another thread), for echo mode. */
struct echo_srv {
    int lfd, port, conns;
};

static void *echo_one(void *p)
{
    int fd = (int)(intptr_t)p;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(fd, buf, (size_t)n) != n)
            break;
    close(fd);
    return NULL;
}

static void *echo_accept(void *p)
{
    struct echo_srv *e = p;
    pthread_t th[16];
    for (int i = 0; i < e->conns; i++) {
        int fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
        CHECK(fd >= 0);
        pthread_create(&th[i], NULL, echo_one, (void *)(intptr_t)fd);
    }
    for (int i = 0; i < e->conns; i++)
        pthread_join(th[i], NULL);
    return NULL;
}

TEST_TIMEOUT(load_echo, 60)
{
    struct echo_srv e = {.conns = 4};
    e.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK_EQ(bind(e.lfd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(e.lfd, 16), 0);
    CHECK_EQ(getsockname(e.lfd, (struct sockaddr *)&a, &al), 0);
    pthread_t acc;
    pthread_create(&acc, NULL, echo_accept, &e);
    char target[64], path[600];
    snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(a.sin_port));
    bin_path(path, sizeof path, "corio-load");
    char *argv[] = {path, "echo", "-q", "--json", "-c", "4", "-b", "3000", "-n", "2000", target, NULL};
    struct child ld;
    spawn(&ld, argv);
    CHECK(read_until(&ld, "}}") != NULL);
    CHECK_EQ(json_num(ld.buf, "answered"), 2000);
    CHECK_EQ(json_num(ld.buf, "bytes_in"), 2000 * 3000);
    CHECK_EQ(json_num(ld.buf, "total"), 0);
    CHECK_EQ(reap(&ld), 0);
    pthread_join(acc, NULL);
    close(e.lfd);
}
