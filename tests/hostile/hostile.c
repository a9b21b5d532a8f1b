/* corio-hostile: hostile peers against corio-http.
 *
 *   corio-hostile suite --server PATH [--threads N] [--only NAME]
 *   corio-hostile soak  --server PATH --duration SECONDS [--threads N]
 *
 * Both start the server themselves (on 127.0.0.1 port 0, reading the port
 * it prints) with short timeouts, so that what a server must cut off is cut
 * off within the run.  While the hostile peers do their worst, "probes"
 * (well-behaved keep-alive clients) keep sending requests and check every
 * byte of every answer.
 *
 * suite: one case after another; each asserts that the server is still up,
 * that every probe request was answered correctly and in time, that the
 * hostile connections got what they deserved (an error status or a close,
 * never a success for a bad request, never silence), and that the server's
 * descriptors come back to where they were.  Slow readers also bound the
 * server's memory per connection.
 *
 * soak: every hostile behaviour at once, in a loop, with normal load, for
 * the duration; then a report: requests served, wrong responses,
 * unexpected errors, RSS at the start, middle and end, descriptors at the
 * start and end.  Fails on any wrong response or unexpected error, on
 * descriptors that do not come back, and on RSS that keeps growing.
 *
 * This is a plain POSIX program (threads, poll, blocking sockets with
 * timeouts): it does not use corio, so a corio bug cannot hide itself. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The server's limits, passed on its command line: short, so that the
 * suite sees them enforced. */
#define HEADER_TIMEOUT_S 2
#define WRITE_TIMEOUT_S 3
#define IDLE_TIMEOUT_S 4
#define BODY_TIMEOUT_S 3
#define MAX_BODY 65536
#define PROBE_TIMEOUT_MS 3000 /* a probe request slower than this is an error */

/* ---- Small helpers ------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* xorshift: each thread its own state, every run the same sequence. */
static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static _Atomic int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "  FAIL: ");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    fflush(stdout);
    va_end(ap);
    atomic_fetch_add(&failures, 1);
}

/* ---- The server under test ---------------------------------------------- */

struct server {
    pid_t pid;
    int port;
    int out;          /* its stdout */
    char log[256];    /* its stderr */
};

static long proc_number(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) {
            v = atol(line + klen);
            break;
        }
    fclose(f);
    return v;
}

static long server_rss_kb(const struct server *s)
{
    return proc_number(s->pid, "VmRSS:");
}

static int server_fds(const struct server *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)s->pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static bool server_alive(const struct server *s)
{
    int st;
    return waitpid(s->pid, &st, WNOHANG) == 0;
}

/* Reads the server's stdout until the line with its port, for up to 10 s. */
static int read_port(int fd)
{
    char buf[1024];
    size_t len = 0;
    double end = now_s() + 10;
    while (len < sizeof buf - 1 && now_s() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = 0;
        const char *u = strstr(buf, "http://");
        const char *nl = u ? strchr(u, '\n') : NULL;
        if (!nl)
            continue;
        const char *colon = NULL;
        for (const char *c = u + 7; c < nl && *c != '/'; c++)
            if (*c == ':')
                colon = c;
        return colon ? atoi(colon + 1) : -1;
    }
    return -1;
}

static int server_start(struct server *s, const char *path, int threads)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return -1;
    snprintf(s->log, sizeof s->log, "/tmp/corio-hostile-server-%d.log", (int)getpid());
    char t[16], ht[16], wt[16], it[16], bt[16], mb[16];
    snprintf(t, sizeof t, "%d", threads);
    snprintf(ht, sizeof ht, "%d", HEADER_TIMEOUT_S);
    snprintf(wt, sizeof wt, "%d", WRITE_TIMEOUT_S);
    snprintf(it, sizeof it, "%d", IDLE_TIMEOUT_S);
    snprintf(bt, sizeof bt, "%d", BODY_TIMEOUT_S);
    snprintf(mb, sizeof mb, "%d", MAX_BODY);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int log = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out[1], 1);
        if (log >= 0)
            dup2(log, 2);
        execl(path, path, "-l", "127.0.0.1:0", "-t", t, "--header-timeout", ht,
              "--write-timeout", wt, "--idle-timeout", it, "--body-timeout", bt, "--max-body", mb,
              (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    s->pid = pid;
    s->out = out[0];
    s->port = read_port(out[0]);
    if (s->port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fprintf(stderr, "corio-hostile: %s printed no port (log: %s)\n", path, s->log);
        return -1;
    }
    return 0;
}

static void show_log(const struct server *s)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "tail -20 %s", s->log);
    printf("  ---- server stderr (last lines) ----\n");
    fflush(stdout);
    if (system(cmd) < 0)
        perror("system");
}

/* SIGTERM, then the server must exit 0 within its shutdown time.  Copies
 * its summary line into summary (may be NULL). */
static bool server_stop(struct server *s, char *summary, size_t size)
{
    kill(s->pid, SIGTERM);
    int st = 0;
    double end = now_s() + 20;
    pid_t r;
    while ((r = waitpid(s->pid, &st, WNOHANG)) == 0 && now_s() < end)
        msleep(20);
    if (r == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
        fail("the server did not exit within 20 s of SIGTERM");
        return false;
    }
    char buf[4096];
    ssize_t n, len = 0;
    while (len < (ssize_t)sizeof buf - 1 && (n = read(s->out, buf + len, sizeof buf - 1 - (size_t)len)) > 0)
        len += n;
    buf[len] = 0;
    close(s->out);
    const char *sum = strstr(buf, "summary ");
    if (summary && size) {
        snprintf(summary, size, "%s", sum ? sum + 8 : "");
        char *nl = strchr(summary, '\n');
        if (nl)
            *nl = 0;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (WIFSIGNALED(st))
            fail("the server died of signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            fail("the server exited with status %d", WEXITSTATUS(st));
        show_log(s);
        return false;
    }
    unlink(s->log);
    return true;
}

/* ---- Client sockets -------------------------------------------------------- */

/* Hostile peers close first by the tens of thousands, and the side that
 * closes first keeps its port in TIME_WAIT for a minute.  From 127.0.0.2
 * those ports are not ones a test elsewhere on the machine binds with
 * 127.0.0.1:0 (the port is picked at connect: IP_BIND_ADDRESS_NO_PORT). */
static int tcp_connect(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1);
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    (void)bind(fd, (struct sockaddr *)&src, sizeof src); /* if not: from 127.0.0.1 */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
        err) {
        close(fd);
        return err ? -err : -ETIMEDOUT;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Closes with a reset instead of a FIN. */
static void close_rst(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

/* Waits for fd to be ready for ev until the absolute time end. */
static int wait_fd(int fd, short ev, double end)
{
    for (;;) {
        int ms = (int)((end - now_s()) * 1000);
        if (ms <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, ev, 0};
        int r = poll(&p, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int send_all(int fd, const void *buf, size_t n, double end)
{
    const char *p = buf;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            int r = wait_fd(fd, POLLOUT, end);
            if (r < 0)
                return r;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One parsed response. */
struct resp {
    int status;
    bool close;        /* Connection: close */
    size_t body_len;
    char body[MAX_BODY + 1024];
};

/* Buffered reader over one connection. */
struct rd {
    int fd;
    char buf[1 << 16];
    size_t start, end;
};

/* Fills more input.  >0 bytes, 0 at end of stream, -errno. */
static ssize_t rd_fill(struct rd *r, double deadline)
{
    if (r->start > 0 && r->start == r->end)
        r->start = r->end = 0;
    if (r->end == sizeof r->buf) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == sizeof r->buf)
        return -ENOBUFS;
    for (;;) {
        ssize_t n = recv(r->fd, r->buf + r->end, sizeof r->buf - r->end, 0);
        if (n > 0) {
            r->end += (size_t)n;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int w = wait_fd(r->fd, POLLIN, deadline);
        if (w < 0)
            return w;
    }
}

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    *value = line + n + 1;
    while (**value == ' ' || **value == '\t')
        (*value)++;
    return true;
}

/* Reads one response.  0; -EPROTO for a malformed one; 0-byte end of
 * stream before any byte: -ECONNABORTED (the server closed: not a
 * response); other -errno. */
static int read_response(struct rd *r, struct resp *out, double deadline)
{
    size_t head_end = 0;
    for (;;) {
        char *b = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *e = avail >= 4 ? memmem(b, avail, "\r\n\r\n", 4) : NULL;
        if (e) {
            head_end = (size_t)(e - b) + 4;
            break;
        }
        ssize_t n = rd_fill(r, deadline);
        if (n == 0)
            return r->end == r->start ? -ECONNABORTED : -EPROTO;
        if (n < 0)
            return (int)n;
    }
    char *b = r->buf + r->start;
    if (head_end < 12 || memcmp(b, "HTTP/1.1 ", 9) != 0 || !isdigit((unsigned char)b[9]))
        return -EPROTO;
    out->status = atoi(b + 9);
    out->close = false;
    long clen = -1;
    for (char *line = (char *)memchr(b, '\n', head_end) + 1; line < b + head_end - 2;) {
        char *nl = memchr(line, '\n', (size_t)(b + head_end - line));
        if (!nl)
            return -EPROTO;
        size_t len = (size_t)(nl - line);
        const char *v;
        if (header_is(line, len, "Content-Length", &v))
            clen = atol(v);
        else if (header_is(line, len, "Connection", &v) && strncasecmp(v, "close", 5) == 0)
            out->close = true;
        else if (header_is(line, len, "Transfer-Encoding", &v))
            return -EPROTO; /* corio-http never chunks its responses */
        line = nl + 1;
    }
    if (clen < 0 || clen > (long)sizeof out->body - 1)
        return -EPROTO;
    r->start += head_end;
    while (r->end - r->start < (size_t)clen) {
        ssize_t n = rd_fill(r, deadline);
        if (n == 0)
            return -EPROTO;
        if (n < 0)
            return (int)n;
    }
    memcpy(out->body, r->buf + r->start, (size_t)clen);
    out->body[clen] = 0;
    out->body_len = (size_t)clen;
    r->start += (size_t)clen;
    return 0;
}

/* After a bad request: the server must answer with an error status and/or
 * close, within limit_s.  Returns true if it did. */
static bool expect_refusal(int fd, double limit_s, char *what, size_t size)
{
    struct rd *r = malloc(sizeof *r);
    struct resp *rs = malloc(sizeof *rs);
    bool ok = false;
    if (!r || !rs) {
        snprintf(what, size, "out of memory");
        goto out;
    }
    r->fd = fd;
    r->start = r->end = 0;
    int e = read_response(r, rs, now_s() + limit_s);
    if (e == -ECONNABORTED || e == -ECONNRESET || e == -EPIPE) {
        ok = true; /* closed without an answer: acceptable */
        snprintf(what, size, "closed");
    } else if (e < 0) {
        snprintf(what, size, "%s", strerror(-e));
    } else if (rs->status >= 400 && rs->status <= 599) {
        ok = true;
        snprintf(what, size, "%d", rs->status);
    } else {
        snprintf(what, size, "status %d for a bad request", rs->status);
    }
out:
    free(r);
    free(rs);
    return ok;
}

/* ---- Probes: well-behaved clients that check every byte ------------------ */

struct probe {
    int port;
    atomic_bool stop;
    atomic_long ok, wrong, errors;
    atomic_long max_us;
    uint32_t seed;
    char last_error[160];
    pthread_t thread;
};

static void probe_error(struct probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void probe_error(struct probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->last_error, sizeof p->last_error, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&p->errors, 1);
}

/* Builds request i: GET /plaintext, GET /json or POST /echo with a random
 * body.  Returns its length; *expect is the body the answer must carry. */
static size_t probe_request(struct probe *p, unsigned i, char *req, size_t size, char *expect,
                            size_t *elen)
{
    switch (i % 3) {
    case 0:
        strcpy(expect, "Hello, World!");
        *elen = 13;
        return (size_t)snprintf(req, size, "GET /plaintext HTTP/1.1\r\nHost: probe\r\n\r\n");
    case 1:
        strcpy(expect, "{\"message\":\"Hello, World!\"}");
        *elen = strlen(expect);
        return (size_t)snprintf(req, size, "GET /json HTTP/1.1\r\nHost: probe\r\n\r\n");
    default: {
        size_t n = rnd(&p->seed) % 3000;
        for (size_t k = 0; k < n; k++)
            expect[k] = (char)('a' + rnd(&p->seed) % 26);
        *elen = n;
        size_t h = (size_t)snprintf(req, size,
                                    "POST /echo HTTP/1.1\r\nHost: probe\r\n"
                                    "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n", n);
        memcpy(req + h, expect, n);
        return h + n;
    }
    }
}

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    struct rd *r = malloc(sizeof *r);
    struct resp *rs = malloc(sizeof *rs);
    char *req = malloc(8192), *expect = malloc(4096);
    if (!r || !rs || !req || !expect)
        abort();
    r->fd = -1;
    for (unsigned i = 0; !atomic_load(&p->stop); i++) {
        size_t elen;
        size_t len = probe_request(p, i, req, 8192, expect, &elen);
        double t0 = now_s(), deadline = t0 + PROBE_TIMEOUT_MS / 1000.0;
        int e = 0;
        /* A kept-alive connection the server closed meanwhile (idle
         * timeout) is retried once on a fresh one. */
        for (int attempt = 0; attempt < 2; attempt++) {
            bool fresh = r->fd < 0;
            if (fresh) {
                r->fd = tcp_connect(p->port, PROBE_TIMEOUT_MS);
                r->start = r->end = 0;
                if (r->fd < 0) {
                    e = r->fd;
                    break;
                }
            }
            e = send_all(r->fd, req, len, deadline);
            if (e == 0)
                e = read_response(r, rs, deadline);
            if (e == 0)
                break;
            close(r->fd);
            r->fd = -1;
            if (fresh || (e != -ECONNABORTED && e != -ECONNRESET && e != -EPIPE))
                break;
        }
        long us = (long)((now_s() - t0) * 1e6);
        if (us > atomic_load(&p->max_us))
            atomic_store(&p->max_us, us);
        if (e < 0) {
            probe_error(p, "request %u: %s", i, e == -EPROTO ? "malformed response" : strerror(-e));
            continue;
        }
        if (rs->status != 200 || rs->body_len != elen || memcmp(rs->body, expect, elen) != 0) {
            atomic_fetch_add(&p->wrong, 1);
            snprintf(p->last_error, sizeof p->last_error, "request %u: wrong answer (status %d, %zu bytes)",
                     i, rs->status, rs->body_len);
            close(r->fd);
            r->fd = -1;
            continue;
        }
        atomic_fetch_add(&p->ok, 1);
        if (rs->close) {
            close(r->fd);
            r->fd = -1;
        }
    }
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    free(rs);
    free(req);
    free(expect);
    return NULL;
}

#define MAX_PROBES 8

struct probes {
    struct probe p[MAX_PROBES];
    int n;
};

static void probes_start(struct probes *ps, int n, int port)
{
    ps->n = n;
    for (int i = 0; i < n; i++) {
        struct probe *p = &ps->p[i];
        memset(p, 0, sizeof *p);
        p->port = port;
        p->seed = 12345u + (uint32_t)i * 7919u;
        if (pthread_create(&p->thread, NULL, probe_main, p) != 0)
            abort();
    }
}

/* Stops the probes; adds up their counts. */
static void probes_stop(struct probes *ps, long *ok, long *wrong, long *errors, long *max_us,
                        char *last, size_t size)
{
    *ok = *wrong = *errors = *max_us = 0;
    if (last && size)
        last[0] = 0;
    for (int i = 0; i < ps->n; i++)
        atomic_store(&ps->p[i].stop, true);
    for (int i = 0; i < ps->n; i++) {
        struct probe *p = &ps->p[i];
        pthread_join(p->thread, NULL);
        *ok += atomic_load(&p->ok);
        *wrong += atomic_load(&p->wrong);
        *errors += atomic_load(&p->errors);
        if (atomic_load(&p->max_us) > *max_us)
            *max_us = atomic_load(&p->max_us);
        if (last && size && p->last_error[0])
            snprintf(last, size, "%s", p->last_error);
    }
}

/* ---- The hostile behaviours -------------------------------------------------
 * Each runs for about `secs` and returns how many hostile connections it
 * made; what it finds wrong it reports with fail(). */

struct hctx {
    int port;
    double secs;
    uint32_t seed;
    long answered; /* responses the hostile peers checked (pipelined floods) */
    bool quiet;    /* soak: count, do not print per-case lines */
};

#define SLOW_CONNS 100

/* Headers a byte at a time, never finished: the server must close each
 * connection at its header timeout. */
static long h_slowloris(struct hctx *h)
{
    static const char head[] = "GET /plaintext HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
    int fds[SLOW_CONNS];
    size_t sent[SLOW_CONNS];
    double closed_at[SLOW_CONNS];
    int n = 0;
    for (int i = 0; i < SLOW_CONNS; i++) {
        int fd = tcp_connect(h->port, 2000);
        if (fd < 0) {
            fail("slowloris: connect: %s", strerror(-fd));
            break;
        }
        fds[n] = fd;
        sent[n] = 0;
        closed_at[n] = 0;
        n++;
    }
    double start = now_s(), end = start + (h->secs > HEADER_TIMEOUT_S + 2 ? h->secs : HEADER_TIMEOUT_S + 2);
    int open = n;
    while (open > 0 && now_s() < end) {
        for (int i = 0; i < n; i++) {
            if (closed_at[i])
                continue;
            char c = sent[i] < sizeof head - 1 ? head[sent[i]] : 'x';
            if (send(fds[i], &c, 1, MSG_NOSIGNAL) == 1)
                sent[i]++;
            char buf[512];
            ssize_t r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN) || (r > 0 && memcmp(buf, "HTTP/1.1 408", 12) == 0)) {
                closed_at[i] = now_s();
                open--;
            } else if (r > 0) {
                fail("slowloris: the server answered an unfinished request: %.12s", buf);
                closed_at[i] = now_s();
                open--;
            }
        }
        msleep(50);
    }
    double worst = 0;
    for (int i = 0; i < n; i++) {
        if (closed_at[i] && closed_at[i] - start > worst)
            worst = closed_at[i] - start;
        close(fds[i]);
    }
    if (open > 0)
        fail("slowloris: %d of %d connections still open after %.1f s (header timeout %d s)", open,
             n, now_s() - start, HEADER_TIMEOUT_S);
    else if (!h->quiet)
        printf("  slowloris: %d connections, all cut off, the last after %.1f s\n", n, worst);
    return n;
}

/* Requests whose answers are never read: the server must stop reading
 * (bounded memory per connection) and close them at its write timeout. */
static long h_slow_readers(struct hctx *h, const struct server *srv, long *kb_per_conn)
{
    enum { N = 50 };
    static char req[4096];
    int len = 0;
    while (len < (int)sizeof req - 64)
        len += snprintf(req + len, sizeof req - (size_t)len, "GET /json HTTP/1.1\r\nHost: r\r\n\r\n");
    long rss0 = srv ? server_rss_kb(srv) : 0;
    int fds[N], n = 0;
    for (int i = 0; i < N; i++) {
        int fd = tcp_connect(h->port, 2000);
        if (fd < 0)
            break;
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        fds[n++] = fd;
    }
    /* Push requests until the server stops taking them (its output is
     * stuck behind our closed window), for at most a second. */
    double end = now_s() + 1.0;
    long pushed = 0;
    while (now_s() < end) {
        bool any = false;
        for (int i = 0; i < n; i++) {
            ssize_t w = send(fds[i], req, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                pushed += w;
                any = true;
            }
        }
        if (!any)
            break;
    }
    long rss1 = srv ? server_rss_kb(srv) : 0;
    if (kb_per_conn && n)
        *kb_per_conn = (rss1 - rss0) / n;
    /* Now wait for the server's write timeout to drop them. */
    double start = now_s(), limit = start + WRITE_TIMEOUT_S + 4;
    int open = n;
    bool *gone = calloc((size_t)n, sizeof *gone);
    while (open > 0 && now_s() < limit) {
        for (int i = 0; i < n; i++) {
            if (gone[i])
                continue;
            /* Peek at the socket's state without reading its queue. */
            struct pollfd p = {fds[i], POLLRDHUP, 0};
            if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
                gone[i] = true;
                open--;
            }
        }
        msleep(50);
    }
    free(gone);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (open > 0)
        fail("slow readers: %d of %d never closed by the server (write timeout %d s)", open, n,
             WRITE_TIMEOUT_S);
    else if (!h->quiet)
        printf("  slow readers: %d connections, %ld KiB of requests pushed, server RSS +%ld KiB "
               "(%ld KiB per connection), all closed at the write timeout\n",
               n, pushed / 1024, rss1 - rss0, n ? (rss1 - rss0) / n : 0);
    return n;
}

/* Resets in the middle of a request, of a body and of a response. */
static long h_resets(struct hctx *h)
{
    static const char partial[] = "GET /plaintext HTTP/1.1\r\nHost: r";
    static const char body_head[] = "POST /echo HTTP/1.1\r\nHost: r\r\nContent-Length: 60000\r\n\r\n";
    char pipelined[8192];
    int plen = 0;
    while (plen < (int)sizeof pipelined - 64)
        plen += snprintf(pipelined + plen, sizeof pipelined - (size_t)plen,
                         "GET /plaintext HTTP/1.1\r\nHost: r\r\n\r\n");
    long n = 0;
    double end = now_s() + h->secs;
    char junk[1000];
    memset(junk, 'b', sizeof junk);
    while (now_s() < end) {
        int kind = (int)(rnd(&h->seed) % 3);
        int fd = tcp_connect(h->port, 2000);
        if (fd < 0) {
            fail("resets: connect: %s", strerror(-fd));
            return n;
        }
        n++;
        if (kind == 0) {
            send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL);
        } else if (kind == 1) {
            send(fd, body_head, sizeof body_head - 1, MSG_NOSIGNAL);
            send(fd, junk, sizeof junk, MSG_NOSIGNAL);
        } else {
            send(fd, pipelined, (size_t)plen, MSG_NOSIGNAL);
            char c;
            (void)wait_fd(fd, POLLIN, now_s() + 1); /* the answers have begun */
            (void)recv(fd, &c, 1, MSG_DONTWAIT);
        }
        close_rst(fd);
    }
    if (!h->quiet)
        printf("  resets: %ld connections reset mid-request, mid-body and mid-response\n", n);
    return n;
}

/* Half-closes: a whole request then SHUT_WR must still be answered; no
 * request then SHUT_WR, or half a request then SHUT_WR, must be closed. */
static long h_half_close(struct hctx *h)
{
    static const char full[] = "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char half[] = "GET /plaintext HTTP/1.1\r\nHo";
    long n = 0;
    double end = now_s() + h->secs;
    struct rd *r = malloc(sizeof *r);
    struct resp *rs = malloc(sizeof *rs);
    if (!r || !rs)
        abort();
    while (now_s() < end && n < 600) { /* each leaves a port in TIME_WAIT */
        int kind = (int)(n % 3);
        int fd = tcp_connect(h->port, 2000);
        if (fd < 0) {
            fail("half-close: connect: %s", strerror(-fd));
            break;
        }
        n++;
        if (kind == 0)
            send(fd, full, sizeof full - 1, MSG_NOSIGNAL);
        else if (kind == 1)
            send(fd, half, sizeof half - 1, MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        r->fd = fd;
        r->start = r->end = 0;
        double deadline = now_s() + HEADER_TIMEOUT_S + 3;
        int e = read_response(r, rs, deadline);
        if (kind == 0) {
            if (e < 0)
                fail("half-close: a complete request then SHUT_WR got no answer: %s",
                     e == -EPROTO ? "malformed" : strerror(-e));
            else if (rs->status != 200 || rs->body_len != 13)
                fail("half-close: wrong answer, status %d", rs->status);
            else
                h->answered++;
            e = e == 0 ? read_response(r, rs, deadline) : -ECONNABORTED;
        }
        if (e == -ETIMEDOUT)
            fail("half-close: the server kept a half-closed connection open (kind %d)", kind);
        else if (e == 0 && rs->status < 400)
            fail("half-close: status %d after the peer's end of stream", rs->status);
        close(fd);
    }
    free(r);
    free(rs);
    if (!h->quiet)
        printf("  half-closes: %ld connections (complete, partial and empty requests)\n", n);
    return n;
}

/* Pipelined floods: many requests per write, answers read as they come;
 * every answer is checked and counted. */
static long h_pipeline(struct hctx *h)
{
    enum { CONNS = 4, PER = 20000, BATCH = 100 };
    static const char one[] = "GET /plaintext HTTP/1.1\r\nHost: p\r\n\r\n";
    char batch[sizeof one * BATCH];
    for (int i = 0; i < BATCH; i++)
        memcpy(batch + i * (int)(sizeof one - 1), one, sizeof one - 1);
    size_t blen = BATCH * (sizeof one - 1);
    struct rd *r = malloc(CONNS * sizeof *r);
    struct resp *rs = malloc(sizeof *rs);
    if (!r || !rs)
        abort();
    long sent[CONNS] = {0}, got[CONNS] = {0};
    size_t off[CONNS] = {0};
    for (int i = 0; i < CONNS; i++) {
        r[i].fd = tcp_connect(h->port, 2000);
        r[i].start = r[i].end = 0;
        if (r[i].fd < 0) {
            fail("pipeline: connect: %s", strerror(-r[i].fd));
            free(r);
            free(rs);
            return 0;
        }
    }
    double deadline = now_s() + h->secs + 10;
    int done = 0;
    while (done < CONNS && now_s() < deadline) {
        struct pollfd pf[CONNS];
        for (int i = 0; i < CONNS; i++)
            pf[i] = (struct pollfd){r[i].fd, (short)((got[i] < PER ? POLLIN : 0) |
                                                      (sent[i] < PER ? POLLOUT : 0)), 0};
        if (poll(pf, CONNS, 1000) <= 0)
            continue;
        for (int i = 0; i < CONNS; i++) {
            if ((pf[i].revents & POLLOUT) && sent[i] < PER) {
                ssize_t w = send(r[i].fd, batch + off[i], blen - off[i], MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0 && (off[i] += (size_t)w) == blen) {
                    off[i] = 0;
                    sent[i] += BATCH;
                }
            }
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)) || got[i] >= PER)
                continue;
            ssize_t n = rd_fill(&r[i], now_s() + 2);
            if (n <= 0) {
                fail("pipeline: connection %d ended after %ld of %d answers: %s", i, got[i], PER,
                     n == 0 ? "closed" : strerror((int)-n));
                got[i] = PER;
                done++;
                continue;
            }
            /* Parse every complete answer now buffered. */
            for (;;) {
                char *b = r[i].buf + r[i].start;
                size_t avail = r[i].end - r[i].start;
                char *e = avail >= 4 ? memmem(b, avail, "\r\n\r\n", 4) : NULL;
                if (!e || (size_t)(e - b) + 4 + 13 > avail)
                    break;
                if (memcmp(b, "HTTP/1.1 200", 12) != 0 || memcmp(e + 4, "Hello, World!", 13) != 0) {
                    fail("pipeline: wrong answer %ld on connection %d: %.20s", got[i], i, b);
                    got[i] = PER;
                    done++;
                    break;
                }
                r[i].start += (size_t)(e - b) + 4 + 13;
                h->answered++;
                if (++got[i] == PER) {
                    done++;
                    break;
                }
            }
        }
    }
    long total = 0;
    for (int i = 0; i < CONNS; i++) {
        total += got[i];
        close(r[i].fd);
    }
    if (done < CONNS)
        fail("pipeline: only %ld of %d answers within the time limit", total, CONNS * PER);
    else if (!h->quiet)
        printf("  pipelined floods: %d connections x %d requests, every answer checked\n", CONNS, PER);
    free(r);
    free(rs);
    return CONNS;
}

/* Oversized everything, each on its own connection: an error status or a
 * close, never a success and never silence. */
static long h_oversized(struct hctx *h)
{
    size_t cap = 300000;
    char *req = malloc(cap);
    if (!req)
        abort();
    const char *names[] = {"request line", "one header", "header count", "body", "content-length",
                           "chunk size", "method", "header name"};
    long n = 0;
    for (int kind = 0; kind < 8; kind++) {
        size_t len = 0;
        switch (kind) {
        case 0:
            len = (size_t)sprintf(req, "GET /");
            memset(req + len, 'a', 100000), len += 100000;
            len += (size_t)sprintf(req + len, " HTTP/1.1\r\nHost: o\r\n\r\n");
            break;
        case 1:
            len = (size_t)sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: o\r\nX-Big: ");
            memset(req + len, 'b', 100000), len += 100000;
            len += (size_t)sprintf(req + len, "\r\n\r\n");
            break;
        case 2:
            len = (size_t)sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: o\r\n");
            for (int i = 0; i < 2000; i++)
                len += (size_t)sprintf(req + len, "X-%d: v\r\n", i);
            len += (size_t)sprintf(req + len, "\r\n");
            break;
        case 3:
            len = (size_t)sprintf(req, "POST /echo HTTP/1.1\r\nHost: o\r\nContent-Length: %d\r\n\r\n",
                                  4 * MAX_BODY);
            memset(req + len, 'c', 4 * MAX_BODY), len += 4 * MAX_BODY;
            break;
        case 4:
            len = (size_t)sprintf(req, "POST /echo HTTP/1.1\r\nHost: o\r\n"
                                       "Content-Length: 99999999999999999999999\r\n\r\nabc");
            break;
        case 5:
            len = (size_t)sprintf(req, "POST /echo HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n"
                                       "\r\nffffffffffffffffff\r\nabc");
            break;
        case 6:
            memset(req, 'G', 20000), len = 20000;
            len += (size_t)sprintf(req + len, " / HTTP/1.1\r\nHost: o\r\n\r\n");
            break;
        case 7:
            len = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
            memset(req + len, 'N', 30000), len += 30000;
            len += (size_t)sprintf(req + len, ": v\r\n\r\n");
            break;
        }
        int fd = tcp_connect(h->port, 2000);
        if (fd < 0) {
            fail("oversized: connect: %s", strerror(-fd));
            break;
        }
        n++;
        /* The server may refuse and close before taking it all: a send
         * error is fine, the answer is what counts. */
        (void)send_all(fd, req, len, now_s() + 5);
        char what[80];
        if (!expect_refusal(fd, HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 2, what, sizeof what))
            fail("oversized %s: %s", names[kind], what);
        else if (!h->quiet)
            printf("  oversized %-14s -> %s\n", names[kind], what);
        close(fd);
    }
    free(req);
    return n;
}

/* Random garbage: random bytes, random printable junk, and junk after a
 * valid request on the same connection. */
static long h_garbage(struct hctx *h)
{
    long n = 0, refused = 0;
    char buf[4096], what[80];
    double end = now_s() + h->secs;
    struct rd *r = malloc(sizeof *r);
    struct resp *rs = malloc(sizeof *rs);
    if (!r || !rs)
        abort();
    while (now_s() < end && n < 2000) {
        int fd = tcp_connect(h->port, 2000);
        if (fd < 0) {
            fail("garbage: connect: %s", strerror(-fd));
            break;
        }
        n++;
        size_t len = 1 + rnd(&h->seed) % sizeof buf;
        int kind = (int)(n % 3);
        for (size_t i = 0; i < len; i++)
            buf[i] = kind == 1 ? (char)(' ' + rnd(&h->seed) % 95) : (char)rnd(&h->seed);
        if (kind == 2) {
            static const char ok[] = "GET /plaintext HTTP/1.1\r\nHost: g\r\n\r\n";
            send(fd, ok, sizeof ok - 1, MSG_NOSIGNAL);
            r->fd = fd;
            r->start = r->end = 0;
            int e = read_response(r, rs, now_s() + 3);
            if (e < 0 || rs->status != 200 || rs->body_len != 13)
                fail("garbage: the valid request before the junk was not answered: %s",
                     e < 0 ? strerror(-e) : "wrong answer");
        }
        buf[0] = buf[0] == 'G' || buf[0] == 'P' ? 'Z' : buf[0]; /* never a real method */
        (void)send_all(fd, buf, len, now_s() + 2);
        if (expect_refusal(fd, HEADER_TIMEOUT_S + 2, what, sizeof what))
            refused++;
        else
            fail("garbage: %zu junk bytes (kind %d) got: %s", len, kind, what);
        close(fd);
    }
    free(r);
    free(rs);
    if (!h->quiet)
        printf("  garbage: %ld connections of junk, each refused or closed\n", n);
    return n;
}

/* Connection churn as fast as connect() goes: open and close, open and
 * reset, open-request-close without reading, and full exchanges. */
struct churn {
    int port;
    double end;
    uint32_t seed;
    long conns, errors;
    char last[120];
};

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";
    /* Mostly resets: a close with FIN from this side leaves its port in
     * TIME_WAIT, and tens of thousands of those would starve the machine
     * of ephemeral ports. */
    while (now_s() < c->end && c->conns < 15000) {
        int fd = tcp_connect(c->port, 2000);
        if (fd < 0) {
            /* The backlog may overflow under churn: that is the kernel
             * shedding load, not a server failure; but it must be rare. */
            c->errors++;
            snprintf(c->last, sizeof c->last, "connect: %s", strerror(-fd));
            continue;
        }
        c->conns++;
        switch (rnd(&c->seed) % 4) {
        case 0:
            if (c->conns % 16 == 0)
                close(fd);
            else
                close_rst(fd);
            break;
        case 1:
            close_rst(fd);
            break;
        case 2:
            send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
            close_rst(fd);
            break;
        default: {
            char buf[512];
            send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
            ssize_t n = 0, got = 0;
            double end = now_s() + 3;
            while (got < (ssize_t)sizeof buf && wait_fd(fd, POLLIN, end) == 0 &&
                   (n = recv(fd, buf + got, sizeof buf - (size_t)got, MSG_DONTWAIT)) > 0)
                got += n;
            if (got < 12 || memcmp(buf, "HTTP/1.1 200", 12) != 0) {
                c->errors++;
                snprintf(c->last, sizeof c->last, "a full exchange got %zd bytes", got);
            }
            close(fd);
        }
        }
    }
    return NULL;
}

static long h_churn(struct hctx *h)
{
    enum { THREADS = 3 };
    struct churn c[THREADS];
    pthread_t t[THREADS];
    double start = now_s();
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct churn){.port = h->port, .end = start + h->secs, .seed = h->seed + (uint32_t)i};
        if (pthread_create(&t[i], NULL, churn_main, &c[i]) != 0)
            abort();
    }
    long conns = 0, errors = 0;
    const char *last = "";
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        conns += c[i].conns;
        errors += c[i].errors;
        if (c[i].errors)
            last = c[i].last;
    }
    double secs = now_s() - start;
    /* A refused connect or two under a flood is the kernel's backlog doing
     * its job; an exchange gone wrong is not. */
    if (errors > conns / 100 + 2)
        fail("churn: %ld errors in %ld connections (last: %s)", errors, conns, last);
    else if (!h->quiet)
        printf("  churn: %ld connections in %.1f s (%.0f/s), %ld errors\n", conns, secs,
               conns / secs, errors);
    return conns;
}

/* ---- suite ------------------------------------------------------------------ */

/* Waits (polling /proc, up to limit_s) until the server holds no more
 * descriptors than `base`; returns what it holds. */
static int settle_fds(const struct server *s, int base, double limit_s)
{
    double end = now_s() + limit_s;
    int n = server_fds(s);
    while (n > base && now_s() < end) {
        msleep(50);
        n = server_fds(s);
    }
    return n;
}

static int run_suite(const char *path, int threads, const char *only)
{
    struct server srv;
    if (server_start(&srv, path, threads) < 0)
        return 1;
    printf("corio-hostile suite: %s on port %d (%d loop%s)\n", path, srv.port, threads,
           threads == 1 ? "" : "s");
    int base_fds = server_fds(&srv);
    static const char *const cases[] = {"slowloris", "slow-readers", "resets", "half-close",
                                        "pipeline", "oversized", "garbage", "churn"};
    int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int c = 0; c < ncases; c++) {
        if (only && !strstr(cases[c], only))
            continue;
        printf("%s\n", cases[c]);
        fflush(stdout);
        int before = atomic_load(&failures);
        struct probes ps;
        probes_start(&ps, 2, srv.port);
        struct hctx h = {.port = srv.port, .secs = 3, .seed = 777u + (uint32_t)c};
        long kb = 0;
        switch (c) {
        case 0: h_slowloris(&h); break;
        case 1:
            h_slow_readers(&h, &srv, &kb);
            /* The server takes a stream buffer or two per connection and
             * stops reading; the kernel holds the rest. */
            if (kb > 256)
                fail("slow readers: %ld KiB of server memory per connection", kb);
            break;
        case 2: h_resets(&h); break;
        case 3: h_half_close(&h); break;
        case 4: h_pipeline(&h); break;
        case 5: h_oversized(&h); break;
        case 6: h_garbage(&h); break;
        case 7: h_churn(&h); break;
        }
        long ok, wrong, errors, max_us;
        char last[160];
        probes_stop(&ps, &ok, &wrong, &errors, &max_us, last, sizeof last);
        if (!server_alive(&srv)) {
            fail("%s: the server is gone", cases[c]);
            show_log(&srv);
            return 1;
        }
        if (wrong || errors || ok == 0)
            fail("%s: probes: %ld answered, %ld wrong, %ld errors (%s)", cases[c], ok, wrong,
                 errors, last);
        int fds = settle_fds(&srv, base_fds, IDLE_TIMEOUT_S + 3);
        if (fds > base_fds)
            fail("%s: the server holds %d descriptors, %d before", cases[c], fds, base_fds);
        printf("  probes: %ld answered, slowest %.1f ms; server fds %d (before: %d), RSS %ld KiB%s\n",
               ok, max_us / 1000.0, fds, base_fds, server_rss_kb(&srv),
               atomic_load(&failures) > before ? "  << FAILED" : "");
        fflush(stdout);
    }
    char summary[1024];
    server_stop(&srv, summary, sizeof summary);
    int f = atomic_load(&failures);
    printf("corio-hostile suite: %s\n", f ? "FAILED" : "passed");
    if (summary[0])
        printf("server summary: %s\n", summary);
    return f ? 1 : 0;
}

/* ---- soak ------------------------------------------------------------------- */

struct soaker {
    int port;
    int kind;
    atomic_bool *stop;
    long conns, answered;
    pthread_t thread;
};

static void *soak_main(void *arg)
{
    struct soaker *s = arg;
    struct hctx h = {.port = s->port, .secs = 2, .seed = 4242u + (uint32_t)s->kind, .quiet = true};
    while (!atomic_load(s->stop)) {
        switch (s->kind) {
        case 0: s->conns += h_slowloris(&h); break;
        case 1: s->conns += h_slow_readers(&h, NULL, NULL); break;
        case 2: s->conns += h_resets(&h); break;
        case 3: s->conns += h_half_close(&h); break;
        case 4: s->conns += h_pipeline(&h); break;
        case 5: s->conns += h_oversized(&h); break;
        case 6: s->conns += h_garbage(&h); break;
        case 7: s->conns += h_churn(&h); break;
        }
    }
    s->answered = h.answered;
    return NULL;
}

static int run_soak(const char *path, int threads, double duration)
{
    struct server srv;
    if (server_start(&srv, path, threads) < 0)
        return 1;
    printf("corio-hostile soak: %s on port %d, %.0f s, every hostile behaviour at once plus "
           "normal load\n", path, srv.port, duration);
    fflush(stdout);
    int fds_start = server_fds(&srv);
    long rss_idle = server_rss_kb(&srv);
    atomic_bool stop = false;
    enum { KINDS = 8 };
    struct soaker s[KINDS];
    for (int k = 0; k < KINDS; k++) {
        s[k] = (struct soaker){.port = srv.port, .kind = k, .stop = &stop};
        if (pthread_create(&s[k].thread, NULL, soak_main, &s[k]) != 0)
            abort();
    }
    struct probes ps;
    probes_start(&ps, 4, srv.port);
    double start = now_s();
    /* RSS samples: "start" once the load has warmed up (10% in), then the
     * middle and the end; the peak is watched throughout. */
    long rss_start = 0, rss_mid = 0, rss_end = 0, rss_peak = 0;
    int next_report = 10;
    bool alive = true;
    while (now_s() - start < duration) {
        msleep(250);
        double t = now_s() - start;
        long rss = server_rss_kb(&srv);
        if (!(alive = server_alive(&srv)))
            break;
        rss_peak = rss > rss_peak ? rss : rss_peak;
        if (!rss_start && t >= duration * 0.1)
            rss_start = rss;
        if (!rss_mid && t >= duration * 0.5)
            rss_mid = rss;
        rss_end = rss;
        if (t >= next_report) {
            long ok = 0;
            for (int i = 0; i < ps.n; i++)
                ok += atomic_load(&ps.p[i].ok);
            printf("  %4.0f s: RSS %ld KiB, %d fds, %ld probe answers\n", t, rss, server_fds(&srv), ok);
            fflush(stdout);
            next_report += duration >= 60 ? 30 : 10;
        }
    }
    atomic_store(&stop, true);
    for (int k = 0; k < KINDS; k++)
        pthread_join(s[k].thread, NULL);
    long ok, wrong, errors, max_us;
    char last[160];
    probes_stop(&ps, &ok, &wrong, &errors, &max_us, last, sizeof last);
    if (!alive) {
        fail("the server died during the soak");
        show_log(&srv);
        return 1;
    }
    int fds_end = settle_fds(&srv, fds_start, IDLE_TIMEOUT_S + WRITE_TIMEOUT_S + 3);
    long hostile = 0, answered = ok;
    for (int k = 0; k < KINDS; k++) {
        hostile += s[k].conns;
        answered += s[k].answered;
    }
    char summary[1024];
    bool clean = server_stop(&srv, summary, sizeof summary);
    int hostile_failures = atomic_load(&failures) - (clean ? 0 : 1);
    /* Plateau: from the middle to the end RSS may not grow by more than
     * 10% or 4 MiB, whichever is larger. */
    long slack = rss_mid / 10 > 4096 ? rss_mid / 10 : 4096;
    bool plateau = rss_end <= rss_mid + slack;
    printf("\n== soak report (%.0f s)\n", duration);
    printf("  requests served (checked by the clients): %ld\n", answered);
    printf("    of which by the well-behaved probes:    %ld (slowest %.1f ms)\n", ok, max_us / 1000.0);
    printf("  hostile connections:                      %ld\n", hostile);
    printf("  wrong responses:                          %ld\n", wrong);
    printf("  unexpected errors:                        %ld%s%s\n", errors + hostile_failures,
           errors ? " (last: " : "", errors ? last : "");
    if (errors)
        printf(")\n");
    printf("  server RSS: idle %ld KiB, start %ld KiB, middle %ld KiB, end %ld KiB, peak %ld KiB (%s)\n",
           rss_idle, rss_start, rss_mid, rss_end, rss_peak, plateau ? "plateau" : "GROWING");
    printf("  server fds: start %d, end %d (%s)\n", fds_start, fds_end,
           fds_end == fds_start ? "match" : "MISMATCH");
    if (summary[0])
        printf("  server summary: %s\n", summary);
    bool pass = wrong == 0 && errors == 0 && atomic_load(&failures) == 0 && plateau &&
                fds_end == fds_start && clean;
    printf("== soak %s\n", pass ? "passed" : "FAILED");
    return pass ? 0 : 1;
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: corio-hostile suite --server PATH [--threads N] [--only NAME]\n"
                    "       corio-hostile soak --server PATH --duration SECONDS [--threads N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1], *server = NULL, *only = NULL;
    int threads = 1;
    double duration = 120;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--server") == 0 && i + 1 < argc)
            server = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc)
            duration = atof(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            usage();
    }
    if (!server || threads < 1 || duration < 1)
        usage();
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "suite") == 0)
        return run_suite(server, threads, only);
    if (strcmp(mode, "soak") == 0)
        return run_soak(server, threads, duration);
    usage();
}
