/* corio-load's modes, each a coroutine per connection on the thread's loop:
 *
 *  http, closed loop: send `depth` requests in one write, read their
 *        responses, repeat; latency from the write to each response.
 *  http, open loop: a sender follows the rate schedule (rate.h) and a
 *        receiver reads; latency from each request's due time, so a
 *        stalled server cannot hide the requests it kept waiting.
 *  echo: write a message, read it back, compare.
 *  idle: open connections (from several source addresses past the
 *        ephemeral port range of one) and hold them.
 *
 * Counters are plain per-thread integers; a timer publishes them to
 * atomics a few times a second for the progress line. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include "load.h"
#include "rate.h"
#include "resp.h"
#include "sys.h"

#define FIFO_MAX 4096          /* open loop: requests in flight per connection */
#define IDLE_DIALERS 256       /* idle mode: connects in flight per thread */
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---- Requests ---- */

/* The request bytes, `copies` times over, for one write of a batch. */
static char *build_requests(const struct load_config *cfg, unsigned copies, size_t *one)
{
    SITE(s_malloc, "malloc");
    char head[1024];
    int h = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\n", cfg->method, cfg->path,
                     cfg->host);
    if (cfg->body_size)
        h += snprintf(head + h, sizeof head - (size_t)h,
                      "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n",
                      cfg->body_size);
    h += snprintf(head + h, sizeof head - (size_t)h, "\r\n");
    size_t len = (size_t)h + cfg->body_size;
    char *buf = corio__malloc(&s_malloc, len * copies);
    if (!buf)
        return NULL;
    for (unsigned i = 0; i < copies; i++) {
        memcpy(buf + i * len, head, (size_t)h);
        for (size_t k = 0; k < cfg->body_size; k++)
            buf[i * len + (size_t)h + k] = (char)('a' + k % 26);
    }
    *one = len;
    return buf;
}

/* ---- Connections ---- */

static int dial(struct load_thread *t, unsigned conn, int64_t deadline)
{
    SITE(s_socket, "socket");
    SITE(s_opt, "setsockopt");
    SITE(s_bind, "bind");
    const struct load_config *cfg = t->cfg;
    int fam = cfg->addr.ss.ss_family;
    int fd = sys_socket(&s_socket, fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    int one = 1, r = sys_setsockopt(&s_opt, fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const struct sockaddr_in *to = (const struct sockaddr_in *)&cfg->addr.ss;
    if (r == 0 && cfg->sources > 1 && fam == AF_INET && (ntohl(to->sin_addr.s_addr) >> 24) == 127) {
        /* The port is picked at connect time, per destination, not at bind. */
        (void)sys_setsockopt(&s_opt, fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in from = {.sin_family = AF_INET};
        from.sin_addr.s_addr = htonl(0x7f000001u + conn % cfg->sources);
        r = sys_bind(&s_bind, fd, (struct sockaddr *)&from, sizeof from);
    }
    if (r == 0)
        r = corio_connect(fd, (const struct sockaddr *)&cfg->addr.ss, cfg->addr.len, deadline);
    if (r < 0) {
        corio_close(fd);
        return r;
    }
    t->n.connected++;
    return fd;
}

/* How many requests to start now (at most want): 0 once the time or the
 * count is used up. */
static unsigned take(struct load_thread *t, unsigned want)
{
    if (t->cfg->duration && corio_loop_now(t->loop) >= t->end)
        return 0;
    if (t->cfg->count) {
        if (t->budget < want)
            want = (unsigned)t->budget;
        t->budget -= want;
    }
    return want;
}

static void count_response(struct load_thread *t, int status, int64_t latency)
{
    t->n.answered++;
    t->n.status[status / 100 < 6 ? status / 100 : 0]++;
    if (status < 200 || status > 299)
        t->n.err[E_STATUS]++;
    hist_add(&t->lat, latency > 0 ? (uint64_t)latency : 0, 1);
}

struct conn_arg {
    struct load_thread *t;
    unsigned index; /* of the whole run */
};

/* The kind of error a failed read of responses counts as. */
static enum load_err read_err(ssize_t r)
{
    return r == -CORIO_EEOF || r == 0 ? E_CLOSED : r == -ETIMEDOUT ? E_TIMEOUT : E_READ;
}

/* Reads responses from s until `want` have come.  Returns how many did;
 * on a failure the rest are counted as errors of its kind and *dead is
 * set.  The stream reads with no syscall wasted: after a short read it
 * waits for the next edge instead of trying a read that would say EAGAIN. */
static unsigned read_responses(struct load_thread *t, corio_stream *s, struct resp_reader *rr,
                               unsigned want, int64_t sent_at, bool *dead)
{
    unsigned got = 0;
    int64_t deadline = sent_at + t->cfg->timeout;
    while (got < want) {
        const void *v;
        size_t n = corio_stream_buffered(s, &v), used = 0;
        int r = n ? resp_feed(rr, v, n, &used) : 0;
        if (r < 0) {
            t->n.err[E_PARSE] += want - got;
            *dead = true;
            return got;
        }
        corio_stream_consume(s, used);
        if (r == 1) {
            count_response(t, rr->status, corio_now() - sent_at);
            got++;
            if (rr->close && got < want) {
                t->n.err[E_CLOSED] += want - got;
                *dead = true;
                return got;
            }
            continue;
        }
        ssize_t m = corio_stream_peek(s, n - used + 1, &v, deadline);
        if (m < 0) {
            t->n.err[read_err(m)] += want - got;
            *dead = true;
            return got;
        }
        t->n.bytes_in += (uint64_t)m - (n - used);
    }
    if (rr->close)
        *dead = true; /* the server ends this connection: open another */
    return got;
}

/* A connection and its input stream. */
static int open_conn(struct load_thread *t, unsigned index, corio_stream **s)
{
    int fd = dial(t, index, corio_after(t->cfg->timeout));
    if (fd < 0)
        return fd;
    int r = corio_stream_open(s, fd, NULL);
    if (r < 0)
        corio_close(fd);
    return r < 0 ? r : fd;
}

static void *http_closed(void *p)
{
    struct conn_arg a = *(struct conn_arg *)p;
    struct load_thread *t = a.t;
    const struct load_config *cfg = t->cfg;
    size_t one;
    char *req = build_requests(cfg, cfg->depth, &one);
    corio_stream *s = NULL;
    int fd = -1;
    struct resp_reader rr;
    while (req) {
        unsigned k = take(t, cfg->depth);
        if (k == 0)
            break;
        if (!s) {
            if ((fd = open_conn(t, a.index, &s)) < 0) {
                t->n.err[E_CONNECT]++; /* counted once, as a connection */
                if (cfg->count)
                    t->budget += k;
                break;
            }
            resp_init(&rr);
        }
        int64_t t0 = corio_now();
        ssize_t w = corio_write_all(fd, req, k * one, NULL, t0 + cfg->timeout);
        t->n.sent += k;
        bool dead = w < 0;
        if (dead)
            t->n.err[E_WRITE] += k;
        else {
            t->n.bytes_out += k * one;
            read_responses(t, s, &rr, k, t0, &dead);
        }
        if (dead) {
            corio_stream_close(s, CORIO_NOWAIT);
            s = NULL;
        }
    }
    if (s)
        corio_stream_close(s, CORIO_NOWAIT);
    corio__free(req);
    return NULL;
}

/* ---- Open loop ---- */

#define OPEN_BATCH 64 /* due requests sent in one write when behind */

struct oconn {
    struct load_thread *t;
    int fd;
    corio_stream *s;        /* the receiver's; the sender writes to fd */
    struct rate rate;
    int64_t fifo[FIFO_MAX]; /* due times of the requests in flight */
    unsigned head, count;
    bool sending;           /* the sender may send more */
    bool dead;              /* the receiver gave up: send no more */
};

/* Ends the connection's in-flight requests as errors of kind k. */
static void open_fail(struct oconn *o, enum load_err k)
{
    o->t->n.err[k] += o->count;
    o->count = 0;
    o->dead = true;
}

static void *open_receiver(void *p)
{
    struct oconn *o = p;
    struct load_thread *t = o->t;
    struct resp_reader rr;
    resp_init(&rr);
    while (!o->dead && (o->sending || o->count)) {
        const void *v;
        size_t n = corio_stream_buffered(o->s, &v), used = 0;
        int r = n ? resp_feed(&rr, v, n, &used) : 0;
        if (r < 0 || (r == 1 && o->count == 0)) { /* malformed, or an answer to nothing */
            open_fail(o, E_PARSE);
            break;
        }
        corio_stream_consume(o->s, used);
        if (r == 1) {
            count_response(t, rr.status, corio_now() - o->fifo[o->head]);
            o->head = (o->head + 1) % FIFO_MAX;
            o->count--;
            continue;
        }
        int64_t oldest = o->count ? o->fifo[o->head] : corio_now();
        ssize_t m = corio_stream_peek(o->s, n - used + 1, &v, oldest + t->cfg->timeout);
        if (m == -ECANCELED || (m == -ETIMEDOUT && o->count == 0))
            continue; /* the sender's nudge, or an idle stretch: look again */
        if (m < 0) {
            open_fail(o, read_err(m));
            break;
        }
        t->n.bytes_in += (uint64_t)m - (n - used);
    }
    return NULL;
}

/* The sender: each request goes out at its due time (all that are due
 * together in one write), whatever happened to the earlier ones. */
static void open_send(struct oconn *o, const char *req, size_t one)
{
    struct load_thread *t = o->t;
    const struct load_config *cfg = t->cfg;
    while (!o->dead) {
        int64_t due = rate_peek(&o->rate);
        if (cfg->duration && due >= t->end)
            break;
        if (due > corio_now() && corio_sleep_until(due) < 0)
            break;
        uint64_t behind = rate_behind(&o->rate, corio_now());
        unsigned k = behind > OPEN_BATCH ? OPEN_BATCH : (unsigned)behind;
        if (k > FIFO_MAX - o->count)
            k = FIFO_MAX - o->count;
        if (k == 0) { /* FIFO_MAX in flight: their latency keeps growing meanwhile */
            if (corio_sleep_until(corio_now() + CORIO_MSEC) < 0)
                break;
            continue;
        }
        if ((k = take(t, k)) == 0)
            break;
        for (unsigned i = 0; i < k; i++)
            o->fifo[(o->head + o->count + i) % FIFO_MAX] = rate_take(&o->rate);
        o->count += k;
        t->n.sent += k;
        ssize_t w = corio_write_all(o->fd, req, k * one, NULL, corio_after(cfg->timeout));
        if (w < 0) {
            open_fail(o, E_WRITE);
            break;
        }
        t->n.bytes_out += k * one;
    }
}

static void *http_open(void *p)
{
    SITE(s_malloc, "malloc");
    struct conn_arg a = *(struct conn_arg *)p;
    struct load_thread *t = a.t;
    const struct load_config *cfg = t->cfg;
    size_t one;
    char *req = build_requests(cfg, OPEN_BATCH, &one);
    struct oconn *o = corio__malloc(&s_malloc, sizeof *o);
    corio_co *rx = NULL;
    if (!req || !o)
        goto out;
    memset(o, 0, sizeof *o);
    o->t = t;
    if ((o->fd = open_conn(t, a.index, &o->s)) < 0) {
        t->n.err[E_CONNECT]++;
        goto out;
    }
    rate_init(&o->rate, cfg->rate, t->start, a.index, cfg->conns);
    o->sending = true;
    if (corio_spawn(t->loop, &rx, open_receiver, o, 0) == 0) {
        open_send(o, req, one);
        o->sending = false;
        if (o->count == 0)
            corio_cancel(rx); /* it waits for a response that will not come */
        corio_join(rx, NULL, CORIO_FOREVER);
    }
    corio_stream_close(o->s, CORIO_NOWAIT);
out:
    corio__free(o);
    corio__free(req);
    return NULL;
}

/* ---- Echo ---- */

static void *echo_conn(void *p)
{
    SITE(s_malloc, "malloc");
    struct conn_arg a = *(struct conn_arg *)p;
    struct load_thread *t = a.t;
    const struct load_config *cfg = t->cfg;
    size_t size = cfg->body_size ? cfg->body_size : 64;
    char *msg = corio__malloc(&s_malloc, size), *buf = corio__malloc(&s_malloc, size);
    int fd = -1;
    if (!msg || !buf)
        goto out;
    for (size_t i = 0; i < size; i++)
        msg[i] = (char)('A' + (i + a.index) % 26);
    if ((fd = dial(t, a.index, corio_after(cfg->timeout))) < 0) {
        t->n.err[E_CONNECT]++;
        goto out;
    }
    while (take(t, 1)) {
        int64_t t0 = corio_now(), deadline = t0 + cfg->timeout;
        t->n.sent++;
        if (corio_write_all(fd, msg, size, NULL, deadline) < 0) {
            t->n.err[E_WRITE]++;
            break;
        }
        t->n.bytes_out += size;
        size_t got = 0;
        while (got < size) {
            ssize_t n = corio_read(fd, buf + got, size - got, deadline);
            if (n <= 0) {
                t->n.err[n == 0 ? E_CLOSED : n == -ETIMEDOUT ? E_TIMEOUT : E_READ]++;
                goto out;
            }
            got += (size_t)n;
        }
        t->n.bytes_in += size;
        if (memcmp(msg, buf, size) != 0) {
            t->n.err[E_PARSE]++;
            break;
        }
        count_response(t, 200, corio_now() - t0);
    }
out:
    if (fd >= 0)
        corio_close(fd);
    corio__free(msg);
    corio__free(buf);
    return NULL;
}

/* ---- Idle ---- */

struct idle {
    struct load_thread *t;
    int *fds;
    unsigned next; /* the next connection to open, of this thread's */
};

/* Sends one request and reads its response. */
static int warm_up(struct load_thread *t, int fd)
{
    size_t one;
    char *req = build_requests(t->cfg, 1, &one);
    corio_stream *s;
    struct corio_stream_options so = {.keep_fd = true, .read_size = 4096};
    int64_t t0 = corio_now();
    int r = req ? (int)corio_write_all(fd, req, one, NULL, t0 + t->cfg->timeout) : -ENOMEM;
    corio__free(req);
    t->n.sent++;
    if (r < 0) {
        t->n.err[E_WRITE]++;
        return r;
    }
    if ((r = corio_stream_open(&s, fd, &so)) < 0) {
        t->n.err[E_READ]++;
        return r;
    }
    struct resp_reader rr;
    resp_init(&rr);
    bool dead = false;
    unsigned got = read_responses(t, s, &rr, 1, t0, &dead);
    /* Nothing more will come on an idle connection: no input is lost. */
    corio_stream_close(s, CORIO_NOWAIT);
    return got == 1 && !dead ? 0 : -EPROTO;
}

static void *idle_dialer(void *p)
{
    struct idle *id = p;
    struct load_thread *t = id->t;
    while (id->next < t->nconns && corio_loop_now(t->loop) < t->end) {
        unsigned i = id->next++;
        int64_t t0 = corio_now();
        int fd = dial(t, t->conn_first + i, t0 + t->cfg->timeout);
        if (fd < 0) {
            t->n.err[E_CONNECT]++;
            continue;
        }
        hist_add(&t->lat, (uint64_t)(corio_now() - t0), 1);
        if (t->cfg->warm && warm_up(t, fd) < 0) {
            corio_close(fd);
            continue;
        }
        id->fds[i] = fd;
        t->open_conns++;
    }
    return NULL;
}

/* Opens the connections, holds them until the end, and counts those the
 * server closed meanwhile. */
static void *idle_main(void *p)
{
    SITE(s_malloc, "malloc");
    struct load_thread *t = p;
    struct idle id = {.t = t};
    corio_co *dialers[IDLE_DIALERS];
    unsigned nd = t->nconns < IDLE_DIALERS ? t->nconns : IDLE_DIALERS;
    id.fds = corio__malloc(&s_malloc, (t->nconns ? t->nconns : 1) * sizeof *id.fds);
    if (!id.fds) {
        t->err = -ENOMEM;
        return NULL;
    }
    for (unsigned i = 0; i < t->nconns; i++)
        id.fds[i] = -1;
    unsigned started = 0;
    for (; started < nd; started++)
        if (corio_spawn(t->loop, &dialers[started], idle_dialer, &id, 0) < 0)
            break;
    for (unsigned i = 0; i < started; i++)
        corio_join(dialers[i], NULL, CORIO_FOREVER);
    (void)corio_sleep_until(t->end);
    for (unsigned i = 0; i < t->nconns; i++) {
        if (id.fds[i] < 0)
            continue;
        char c;
        if (recv(id.fds[i], &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0)
            t->n.err[E_CLOSED]++; /* the server let it go before the end */
        corio_close(id.fds[i]);
    }
    t->open_conns = 0;
    corio__free(id.fds);
    return NULL;
}

/* ---- The thread ---- */

static void publish(corio_loop *loop, corio_timer *tm)
{
    struct load_thread *t = tm->data;
    uint64_t errs = 0;
    for (int k = 0; k < E_KINDS; k++)
        errs += t->n.err[k];
    atomic_store_explicit(&t->live_answered, t->n.answered, memory_order_relaxed);
    atomic_store_explicit(&t->live_bytes, t->n.bytes_in, memory_order_relaxed);
    atomic_store_explicit(&t->live_errors, errs, memory_order_relaxed);
    atomic_store_explicit(&t->live_open, t->open_conns, memory_order_relaxed);
    if (loop)
        corio_timer_start(loop, tm, corio_loop_now(loop) + 50 * CORIO_MSEC);
}

static int spawn_work(struct load_thread *t, struct conn_arg *args)
{
    const struct load_config *cfg = t->cfg;
    if (cfg->mode == MODE_IDLE)
        return corio_spawn(t->loop, NULL, idle_main, t, 0);
    corio_fn fn = cfg->mode == MODE_ECHO ? echo_conn : cfg->rate > 0 ? http_open : http_closed;
    for (unsigned i = 0; i < t->nconns; i++) {
        args[i] = (struct conn_arg){t, t->conn_first + i};
        int r = corio_spawn(t->loop, NULL, fn, &args[i], 0);
        if (r < 0)
            return r;
    }
    return 0;
}

void *load_thread_main(void *arg)
{
    SITE(s_malloc, "malloc");
    struct load_thread *t = arg;
    struct conn_arg *args = corio__malloc(&s_malloc, (t->nconns + 1) * sizeof *args);
    int r = args ? corio_loop_new(&t->loop, NULL) : -ENOMEM;
    if (r < 0) {
        t->err = r;
        corio__free(args);
        atomic_store(&t->done, true);
        return NULL;
    }
    t->start = corio_now();
    t->end = t->cfg->duration ? t->start + t->cfg->duration : INT64_MAX;
    r = spawn_work(t, args);
    if (r < 0)
        t->err = r; /* what did start still runs to its end */
    corio_timer_init(&t->publish, publish, t);
    t->publish.unref = 1;
    publish(t->loop, &t->publish);
    r = corio_loop_run(t->loop, CORIO_RUN_DEFAULT);
    if (r < 0 && t->err == 0)
        t->err = r;
    t->stop = corio_now();
    corio_timer_stop(t->loop, &t->publish);
    publish(NULL, &t->publish);
    r = corio_loop_free(t->loop);
    if (r < 0 && t->err == 0)
        t->err = r;
    corio__free(args);
    atomic_store(&t->done, true);
    return NULL;
}
