/* corio-http's server: the loops, the connections and the built-in routes.
 *
 * A connection's life:
 *
 *   accept -> parked until its first bytes (corio_server)
 *     -> serve(): parse every complete request in the input, append every
 *        response, then one flush for the batch
 *     -> nothing more buffered: park the fd (no stack, no buffer) until
 *        the next bytes, the idle deadline or a shutdown -> serve() again
 *
 * A parked connection holds nothing of corio-http's own: it is parked with
 * its loop's worker as the data, and its conn record and stream go back to
 * the worker's spare list.  The next wakeup takes a pair from that list
 * (conn_attach), so an idle keep-alive connection costs only corio's fd
 * slot and park record, and the steady state allocates nothing.
 *
 * Per request that costs a parse over the input buffer, a memcpy of the
 * response and nothing else: no allocation (stream buffers come from the
 * loop's pool), no clock read (deadlines use the loop's cached time; the
 * statistics time one request in 64), no syscall of its own (one read and
 * one write per batch, and the short read that ended the batch tells the
 * loop the fd is drained, so parking costs no poll).  The Date header is
 * formatted once a second per loop, by a timer, into prebuilt responses. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http_private.h"
#include "sys.h"

struct worker {
    http_server *srv;
    const struct http_config *cfg;
    corio_loop *loop;
    corio_server *cs;     /* frees itself after stop, when its last connection closes */
    unsigned index;
    bool stopping;
    size_t nconns;        /* open: being served, or parked */
    size_t nlive;         /* of which attached to a conn and a stream */
    corio_timer date_timer;
    char date[48];        /* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" */
    size_t date_len;
    char plain[256];      /* the whole /plaintext response, keep-alive */
    size_t plain_len;
    char json[256];
    size_t json_len;
    struct conn *spare;   /* conns, each with a detached stream, to lend */
    size_t nspare;
    struct http_counters n;
    corio_stats stats;    /* taken when the loop's work ended */
};

struct http_server {
    struct http_config cfg;
    corio_mt *mt;
    unsigned n;
    int port;             /* set by loop 0, read by the others (inits run in order) */
    corio_addr addr;
    int dirfd;            /* static_dir, or -1 */
    uint32_t route_len[HTTP_MAX_ROUTES]; /* strlen of each route's path */
    struct worker w[];
};

static const char plain_body[] = "Hello, World!";
static const char json_body[] = "{\"message\":\"Hello, World!\"}";

/* ---- Response formatting ---- */

static const char *status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put(p, lit, sizeof lit - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do
        tmp[--i] = (char)('0' + v % 10);
    while (v /= 10);
    return put(p, tmp + i, sizeof tmp - (size_t)i);
}

/* Status line and headers up to (not including) the blank line. */
static char *put_head(char *p, const struct worker *w, int status, const char *type,
                      uint64_t len, bool close, bool http10_keep)
{
    const char *text = status_text(status);
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, text, strlen(text));
    p = PUT_LIT(p, "\r\nServer: corio\r\n");
    p = put(p, w->date, w->date_len);
    if (type) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put(p, type, strlen(type));
        p = PUT_LIT(p, "\r\n");
    }
    p = PUT_LIT(p, "Content-Length: ");
    p = put_u64(p, len);
    p = PUT_LIT(p, "\r\n");
    if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (http10_keep)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    return p;
}

static void count_status(struct worker *w, int status)
{
    w->n.requests++;
    if (status < 300)
        w->n.status_2xx++;
    else if (status < 500)
        w->n.status_4xx++;
    else
        w->n.status_5xx++;
}

int http__respond_head(http_exchange *x, int status, const char *type, uint64_t len)
{
    struct worker *w = x->c->w;
    size_t room = 256 + (type ? strlen(type) : 0);
    char *p0 = corio_stream_reserve(x->c->s, room);
    if (!p0)
        return -ENOMEM;
    bool keep10 = x->req && x->req->minor == 0 && !x->close;
    char *p = put_head(p0, w, status, type, len, x->close, keep10);
    p = PUT_LIT(p, "\r\n");
    corio_stream_commit(x->c->s, (size_t)(p - p0));
    x->out += (uint64_t)(p - p0);
    x->responded = true;
    count_status(w, status);
    return 0;
}

int http_respond(http_exchange *x, int status, const char *type, const void *body, size_t len)
{
    int r = http__respond_head(x, status, type, len);
    if (r < 0 || len == 0 || (x->req && x->req->method_id == HTTP_M_HEAD))
        return r;
    ssize_t n = corio_stream_write(x->c->s, body, len, x->deadline);
    if (n < 0)
        return (int)n;
    x->out += len;
    return 0;
}

void http_exchange_close(http_exchange *x)
{
    x->close = true;
    x->c->close = true;
}

corio_loop *http_exchange_loop(const http_exchange *x)
{
    return x->c->w->loop;
}

void http_exchange_gauges(const http_exchange *x, struct http_loop_gauges *g)
{
    const struct worker *w = x->c->w;
    *g = (struct http_loop_gauges){w->index, w->nconns, w->nlive, w->nspare};
}

/* ---- The cached Date, and the responses built on it ---- */

static size_t build(struct worker *w, char *buf, const char *type, const char *body, size_t len)
{
    char *p = put_head(buf, w, 200, type, len, false, false);
    p = PUT_LIT(p, "\r\n");
    p = put(p, body, len);
    return (size_t)(p - buf);
}

static void date_update(struct worker *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    w->date_len = strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    w->plain_len = build(w, w->plain, "text/plain", plain_body, sizeof plain_body - 1);
    w->json_len = build(w, w->json, "application/json", json_body, sizeof json_body - 1);
    /* Fire just after the next second begins, on the monotonic clock. */
    int64_t to_next = CORIO_SEC - ts.tv_nsec + CORIO_MSEC;
    corio_timer_start(w->loop, &w->date_timer, corio_now() + to_next);
}

static void date_tick(corio_loop *loop, corio_timer *t)
{
    (void)loop;
    date_update(t->data);
}

/* ---- Built-in routes ---- */

static int only_get(http_exchange *x, const struct http_request *req)
{
    if (req->method_id == HTTP_M_GET || req->method_id == HTTP_M_HEAD)
        return 0;
    http_respond(x, 405, "text/plain", "method not allowed\n", 19);
    return 1;
}

/* The common case, a keep-alive GET over HTTP/1.1, is one memcpy of the
 * response built when the Date last changed; the rest goes the long way. */
static inline int respond_prebuilt(http_exchange *x, const struct http_request *req, const char *whole,
                                   size_t whole_len, const char *type, const char *body, size_t len)
{
    if (x->close || req->minor == 0 || req->method_id != HTTP_M_GET)
        return http_respond(x, 200, type, body, len);
    ssize_t n = corio_stream_write(x->c->s, whole, whole_len, x->deadline);
    if (n < 0)
        return (int)n;
    x->out += whole_len;
    x->responded = true;
    count_status(x->c->w, 200);
    return 0;
}

static int route_plaintext(http_exchange *x, const struct http_request *req, const char *body,
                           size_t len, void *data)
{
    if (only_get(x, req))
        return 0;
    return respond_prebuilt(x, req, x->c->w->plain, x->c->w->plain_len, "text/plain", plain_body,
                            sizeof plain_body - 1);
}

static int route_json(http_exchange *x, const struct http_request *req, const char *body,
                      size_t len, void *data)
{
    if (only_get(x, req))
        return 0;
    return respond_prebuilt(x, req, x->c->w->json, x->c->w->json_len, "application/json",
                            json_body, sizeof json_body - 1);
}

static int route_echo(http_exchange *x, const struct http_request *req, const char *body,
                      size_t len, void *data)
{
    const struct http_header *t = http_find_header(req, "content-type");
    char type[128] = "application/octet-stream";
    if (t && t->value_len < sizeof type) {
        memcpy(type, t->value, t->value_len);
        type[t->value_len] = 0;
    }
    return http_respond(x, 200, type, body, len);
}

/* /stats (JSON) and /metrics (Prometheus): every loop's snapshot, summed
 * (corio_stats_take_loops asks each loop on its own thread). */
static int route_stats(http_exchange *x, const struct http_request *req, const char *body,
                       size_t len, void *data)
{
    SITE(s_malloc, "malloc");
    if (only_get(x, req))
        return 0;
    http_server *srv = x->c->w->srv;
    corio_loop *loops[256];
    unsigned n = srv->n < 256 ? srv->n : 256;
    for (unsigned i = 0; i < n; i++)
        loops[i] = srv->w[i].loop;
    struct {
        corio_stats s;
        char text[64 * 1024];
    } *m = corio__malloc(&s_malloc, sizeof *m);
    if (!m)
        return http_respond(x, 503, "text/plain", "out of memory\n", 14);
    int r = corio_stats_take_loops(loops, n, &m->s, CORIO_STATS_ALL, corio_after(CORIO_SEC));
    ssize_t tl = r < 0 ? r
                 : data ? corio_stats_prometheus(&m->s, m->text, sizeof m->text)
                        : corio_stats_json(&m->s, m->text, sizeof m->text);
    if (tl >= 0)
        r = http_respond(x, 200, data ? "text/plain; version=0.0.4" : "application/json", m->text,
                         (size_t)tl);
    else
        r = http_respond(x, 503, "text/plain", "stats unavailable\n", 18);
    corio__free(m);
    return r;
}

void http_config_defaults(struct http_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1:8080";
    cfg->idle_timeout = 60 * CORIO_SEC;
    cfg->header_timeout = 10 * CORIO_SEC;
    cfg->body_timeout = 30 * CORIO_SEC;
    cfg->write_timeout = 30 * CORIO_SEC;
    cfg->shutdown_timeout = 10 * CORIO_SEC;
    cfg->limits = (struct http_limits){.max_line = 8192, .max_head = 16384, .max_headers = 64};
    cfg->max_body = 1 << 20;
    cfg->routes[0] = (struct http_route){"/plaintext", route_plaintext, NULL};
    cfg->routes[1] = (struct http_route){"/json", route_json, NULL};
    cfg->routes[2] = (struct http_route){"/echo", route_echo, NULL};
    cfg->routes[3] = (struct http_route){"/stats", route_stats, NULL};
    cfg->routes[4] = (struct http_route){"/metrics", route_stats, (void *)"prometheus"};
    cfg->nroutes = 5;
}

int http_config_route(struct http_config *cfg, const char *path, http_handler fn, void *data)
{
    if (cfg->nroutes == HTTP_MAX_ROUTES)
        return -ENOSPC;
    memmove(&cfg->routes[1], &cfg->routes[0], cfg->nroutes * sizeof cfg->routes[0]);
    cfg->routes[0] = (struct http_route){path, fn, data};
    cfg->nroutes++;
    return 0;
}

/* ---- Connections ---- */

static void serve(struct conn *c);

/* Spare conns kept per loop: as many as were being served at once, up to
 * this (192 bytes each with their stream).  Handlers run one after another
 * unless one blocks, so a few are usually enough. */
#define SPARE_MAX 1024

/* Lends fd a conn and a stream from the spare list (allocating them only
 * when it is empty).  NULL for -ENOMEM. */
static struct conn *conn_attach(struct worker *w, int fd)
{
    SITE(s_malloc, "malloc");
    struct conn *c = w->spare;
    if (c) {
        w->spare = c->next;
        w->nspare--;
        (void)corio_stream_reset(c->s, fd); /* detached and empty: cannot fail */
    } else {
        if (!(c = corio__malloc(&s_malloc, sizeof *c)))
            return NULL;
        corio_stream_options so = {.keep_fd = true};
        if (corio_stream_open(&c->s, fd, &so) < 0) {
            corio__free(c);
            return NULL;
        }
    }
    c->w = w;
    c->fd = fd;
    c->close = false;
    w->nlive++;
    return c;
}

/* Takes c and its stream back from its fd (which stays open) and keeps
 * them for the next connection to be served.  reset: the stream may hold
 * buffers or state (else it is drained and empty, as conn_idle() checks:
 * conn_attach() resets it before its next use, so once is enough). */
static void conn_detach(struct conn *c, bool reset)
{
    struct worker *w = c->w;
    /* Buffers back to the loop's pool; output a failed flush left is
     * dropped, after one more try (a connection being closed). */
    if (reset)
        (void)corio_stream_reset(c->s, -1);
    w->nlive--;
    if (w->nspare < SPARE_MAX) {
        c->next = w->spare;
        w->spare = c;
        w->nspare++;
    } else {
        (void)corio_stream_close(c->s, CORIO_NOWAIT);
        corio__free(c);
    }
}

static void worker_finish(struct worker *w);

/* Counts a connection out once its fd is closed (closed_already:
 * corio_close() did it, through a parked fd's -CORIO_ECLOSED). */
static void conn_gone(struct worker *w, int fd, bool closed_already)
{
    if (closed_already)
        corio_server_release(w->cs);
    else
        (void)corio_server_close(w->cs, fd);
    w->nconns--;
    if (w->stopping && w->nconns == 0)
        worker_finish(w);
}

/* Ends a connection being served: closes its fd. */
static void conn_free(struct conn *c)
{
    struct worker *w = c->w;
    int fd = c->fd;
    conn_detach(c, true);
    conn_gone(w, fd, false);
}

/* Sends what the batch produced: one write when the socket has room. */
static int flush(struct conn *c, int64_t deadline)
{
    if (corio_stream_pending(c->s) == 0)
        return 0;
    c->w->n.batches++;
    return corio_stream_flush(c->s, deadline);
}

/* Waits until `need` bytes of input are buffered.  Responses to earlier
 * pipelined requests go out first: the peer may wait for them before it
 * sends the rest. */
static ssize_t more_input(struct conn *c, size_t need, const void **view, int64_t deadline,
                          int64_t out_deadline)
{
    int r = flush(c, out_deadline);
    ssize_t n = r < 0 ? r : corio_stream_peek(c->s, need, view, deadline);
    if (n > 0) /* time has passed: the output's deadline starts again */
        c->out_deadline = corio_loop_now(c->w->loop) + c->w->cfg->write_timeout;
    return n;
}

#define LINGER_TIME (2 * CORIO_SEC)
#define LINGER_BYTES (1u << 20)

/* After the last response: stop sending, then read and drop what the peer
 * still sends until it closes.  Closing with unread input makes the kernel
 * send a reset, which can destroy a response the peer has not read yet. */
static void linger(struct conn *c)
{
    int64_t deadline = corio_loop_now(c->w->loop) + LINGER_TIME;
    if (corio_stream_shutdown(c->s, deadline) < 0)
        return;
    for (size_t dropped = 0; dropped < LINGER_BYTES;) {
        const void *v;
        size_t n = corio_stream_buffered(c->s, &v);
        if (n == 0) {
            ssize_t r = corio_stream_peek(c->s, 1, &v, deadline);
            if (r < 0)
                return; /* end of stream (the usual way out), timeout, reset */
            n = (size_t)r;
        }
        dropped += corio_stream_consume(c->s, n);
    }
}

/* Answers with an error status, and closes after it. */
static int refuse(http_exchange *x, int status)
{
    char body[64];
    const char *text = status_text(status);
    int n = snprintf(body, sizeof body, "%s\n", text);
    http_exchange_close(x);
    x->req = NULL; /* the request was not understood: plain GET rules */
    return http_respond(x, status, "text/plain", body, (size_t)n);
}

static int send_continue(struct conn *c, int64_t deadline)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t r = corio_stream_write(c->s, cont, sizeof cont - 1, deadline);
    return r < 0 ? (int)r : corio_stream_flush(c->s, deadline);
}

/* Reads a chunked body.  The head (hl bytes at the front of the input) is
 * copied to *own first and req re-parsed there, so that the body can be
 * decoded in place right behind it.  0, a status (> 0) to refuse the
 * request with, or -errno when the connection is lost. */
static int read_chunked(struct conn *c, struct http_request *req, struct http_header *hdrs,
                        const char *v, size_t hl, char **own, size_t *len, int64_t deadline,
                        int64_t out_deadline)
{
    SITE(s_malloc, "malloc");
    SITE(s_grow, "realloc");
    const struct http_config *cfg = c->w->cfg;
    size_t cap = hl + 4096;
    char *p = corio__malloc(&s_malloc, cap);
    if (!p)
        return -ENOMEM;
    memcpy(p, v, hl);
    HTTP_ASSERT(http_parse_request(p, hl, 0, req, hdrs, &cfg->limits) == (int)hl);
    corio_stream_consume(c->s, hl);
    struct http_chunked d;
    http_chunked_init(&d, cfg->max_body);
    size_t end = hl; /* decoded data ends here */
    for (;;) {
        const void *raw;
        size_t n = corio_stream_buffered(c->s, &raw);
        if (n == 0) {
            ssize_t r = more_input(c, 1, &raw, deadline, out_deadline);
            if (r < 0) {
                corio__free(p);
                return r == -ETIMEDOUT ? 408 : (int)r;
            }
            n = (size_t)r;
        }
        if (cap - end < n) {
            char *q = corio__realloc(&s_grow, p, end + n + 4096);
            if (!q) {
                corio__free(p);
                return -ENOMEM;
            }
            p = q;
            cap = end + n + 4096;
            HTTP_ASSERT(http_parse_request(p, hl, 0, req, hdrs, &cfg->limits) == (int)hl);
        }
        memcpy(p + end, raw, n);
        size_t got = n;
        long r = http_chunked_decode(&d, p + end, &got);
        end += got;
        if (r == HTTP_MORE) {
            corio_stream_consume(c->s, n);
            continue;
        }
        if (r < 0) {
            corio__free(p);
            return (int)-r;
        }
        corio_stream_consume(c->s, n - (size_t)r); /* the rest is the next request */
        *own = p;
        *len = end - hl;
        return 0;
    }
}

/* a[0..n) == b[0..n).  Paths are short: for 4 to 16 bytes two loads from
 * each side that overlap as needed, rather than a call to memcmp (a fifth
 * of what routing a request cost). */
static inline bool same(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t x0, y0, x1, y1;
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, a + n - 8, 8);
        memcpy(&y1, b + n - 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t x0, y0, x1, y1;
        memcpy(&x0, a, 4);
        memcpy(&y0, b, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y1, b + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

static int dispatch(http_exchange *x, const struct http_request *req, const char *body, size_t len)
{
    struct worker *w = x->c->w;
    const struct http_config *cfg = w->cfg;
    const uint32_t *rlen = w->srv->route_len;
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        const struct http_route *rt = &cfg->routes[i];
        if (rlen[i] == req->path_len && same(rt->path, req->path, req->path_len))
            return rt->fn(x, req, body, len, rt->data);
    }
    if (w->srv->dirfd >= 0 && (req->method_id == HTTP_M_GET || req->method_id == HTTP_M_HEAD))
        return http__static_serve(x, req, w->srv->dirfd);
    return http_respond(x, 404, "text/plain", "not found\n", 10);
}

/* Parses the head of the request at the front of the input, waiting for
 * the rest of it if needed.  Returns its length, a status (< 1000, as a
 * negative HTTP_REFUSE - status) to refuse it with, or -errno. */
#define HTTP_REFUSE 100000
static int read_head(struct conn *c, const char **v, size_t *n, struct http_request *req,
                     struct http_header *hdrs, int64_t out_deadline)
{
    const struct http_config *cfg = c->w->cfg;
    int64_t deadline = 0;
    size_t prev = 0;
    for (;;) {
        int hl = http_parse_request(*v, *n, prev, req, hdrs, &cfg->limits);
        if (hl != HTTP_MORE)
            return hl >= 0 ? hl : -HTTP_REFUSE + hl;
        if (!deadline)
            deadline = corio_after(cfg->header_timeout);
        prev = *n;
        const void *nv;
        ssize_t r = more_input(c, *n + 1, &nv, deadline, out_deadline);
        if (r == -ETIMEDOUT) {
            c->w->n.timeouts++;
            return -HTTP_REFUSE - 408;
        }
        if (r < 0)
            return (int)r; /* the peer left mid-request, a reset, a cancel */
        *v = nv;
        *n = (size_t)r;
    }
}

/* The handler layer of corio_stats for the batch being answered: its
 * requests are recorded with one corio_stats_requests() when the batch
 * ends (per request, the call and its arguments were ~7% of a pipelined
 * plaintext request's instructions). */
struct batch {
    uint64_t n, bytes_in, bytes_out, failed;
};

static void batch_record(struct worker *w, struct batch *b)
{
    if (b->n) {
        corio_stats_requests(w->loop, b->n, b->bytes_in, b->bytes_out, b->failed);
        *b = (struct batch){0};
    }
}

/* Answers the request at the front of the input (n bytes at v are
 * buffered), counting it in b.  0 to go on (c->close set when the
 * connection is to end after this batch), or -errno when it is lost. */
static int handle(struct conn *c, const char *v, size_t n, struct batch *b)
{
    struct worker *w = c->w;
    const struct http_config *cfg = w->cfg;
    struct http_header hdrs[HTTP_MAX_HEADERS];
    struct http_request req;
    http_exchange x = {.c = c, .deadline = c->out_deadline, .timeout = cfg->write_timeout};
    int hl = read_head(c, &v, &n, &req, hdrs, x.deadline);
    if (hl < 0)
        return hl <= -HTTP_REFUSE ? refuse(&x, -hl - HTTP_REFUSE) : hl;
    x.req = &req;
    const char *body = NULL;
    char *own = NULL;
    size_t len = 0, used = (size_t)hl;
    if (req.chunked) {
        if (req.expect_continue && n == (size_t)hl && send_continue(c, x.deadline) < 0)
            return -EPIPE;
        int r = read_chunked(c, &req, hdrs, v, (size_t)hl, &own, &len,
                             corio_after(cfg->body_timeout), x.deadline);
        if (r != 0)
            return r > 0 ? refuse(&x, r) : r;
        body = own + hl;
        used = 0; /* read_chunked consumed it all */
    } else if (req.content_length > 0) {
        if ((uint64_t)req.content_length > cfg->max_body)
            return refuse(&x, 413);
        used += (size_t)req.content_length;
        if (n < used) {
            if (req.expect_continue && send_continue(c, x.deadline) < 0)
                return -EPIPE;
            const void *nv;
            ssize_t r = more_input(c, used, &nv, corio_after(cfg->body_timeout), x.deadline);
            if (r < 0)
                return r == -ETIMEDOUT ? refuse(&x, 408) : (int)r;
            v = nv;
            n = (size_t)r;
            /* The buffer may have moved: point the request at its new place. */
            HTTP_ASSERT(http_parse_request(v, (size_t)hl, 0, &req, hdrs, &cfg->limits) == hl);
        }
        body = v + hl;
        len = (size_t)req.content_length;
    }
    /* Shutting down: the last request already received says goodbye. */
    bool more = used ? n > used : corio_stream_buffered(c->s, NULL) > 0;
    if (!req.keep_alive || (w->stopping && !more) || c->close)
        http_exchange_close(&x);
    /* The handler layer of corio_stats: every request counted, 1 in 64
     * timed (two clock reads per request would cost ~10% of the user-space
     * time of a pipelined plaintext request; 1 in 8 still showed) and
     * recorded alone, the others with their batch. */
    int64_t t0 = (w->n.requests & 63) == 0 ? corio_now() : -1;
    x.deadline = c->out_deadline;
    int r = dispatch(&x, &req, body, len);
    if (r == 0 && !x.responded)
        r = http_respond(&x, 500, "text/plain", "no response\n", 12);
    if (t0 >= 0) {
        corio_stats_request(w->loop, (size_t)hl + len, x.out, corio_now() - t0, r < 0);
    } else {
        b->n++;
        b->bytes_in += (size_t)hl + len;
        b->bytes_out += x.out;
        b->failed += r < 0;
    }
    if (own) /* a chunked body; the usual request has none to free */
        corio__free(own);
    if (used)
        corio_stream_consume(c->s, used);
    return r;
}

/* The one place a connection waits for its next request: parked, with no
 * coroutine, stack, buffer, conn or stream, until bytes come (conn_wake),
 * the idle deadline passes or the server shuts down.  Nothing of the
 * connection has to survive the wait: the idle deadline is in corio's park
 * record, a request's keep-alive and output deadline are decided anew for
 * each batch, and `close` is never set on a connection that parks.  0 when
 * parked: c has gone back to the spare list. */
static void conn_wake(int fd, void *data, int reason);

static int conn_idle(struct conn *c)
{
    struct worker *w = c->w;
    if (w->stopping)
        return -ECANCELED;
    /* Input still buffered is served first (serve() loops until there is
     * none), and every response has been sent. */
    HTTP_ASSERT(corio_stream_buffered(c->s, NULL) == 0 && corio_stream_pending(c->s) == 0);
    /* serve() has just seen the input drained (a short read or EAGAIN)
     * and nothing ran since: the kernel will report whatever comes next,
     * so parking need not poll the fd first.  The stream told the loop so
     * already (its drained read dropped the fd's cached readiness), so no
     * corio_fd_drained() here: were the bit still set, corio_park() would
     * only pay a poll(2) to confirm it. */
    int64_t deadline = corio_loop_now(w->loop) + w->cfg->idle_timeout;
    int r = corio_park(w->loop, c->fd, conn_wake, w, deadline);
    if (r < 0)
        return r;
    w->n.parks++;
    conn_detach(c, false); /* the wakeup runs later, in another coroutine */
    return 0;
}

static void conn_wake(int fd, void *data, int reason)
{
    struct worker *w = data;
    /* Woken by a shutdown (-ECANCELED), it still answers a request that
     * arrived before it, and closes: serve() sees the loop stopping. */
    if (reason > 0 || reason == -ECANCELED) {
        struct conn *c = conn_attach(w, fd);
        if (c) {
            serve(c);
            return;
        }
    } else if (reason == -ETIMEDOUT) {
        w->n.timeouts++;
    }
    conn_gone(w, fd, reason == -CORIO_ECLOSED);
}

/* Serves a connection that has input: every complete request, then one
 * flush, then park (or close).  Owns c until it returns, which it gets
 * fresh from conn_attach(): nothing buffered, nothing pending, not closing,
 * so the first step is the read. */
static void serve(struct conn *c)
{
    struct worker *w = c->w;
    for (;;) {
        /* More input?  After a short read the stream knows there is none
         * without a syscall.  Nothing may run between the answer and the
         * park (conn_idle trusts it), so the last batch's flush came first. */
        const void *v;
        ssize_t r = corio_stream_peek(c->s, 1, &v, CORIO_NOWAIT);
        if (r < 0) {
            if (r == -EAGAIN && conn_idle(c) == 0)
                return;
            break; /* the peer closed (-CORIO_EEOF), or an error */
        }
        /* One deadline for the batch's output, from the loop's clock. */
        c->out_deadline = corio_loop_now(w->loop) + w->cfg->write_timeout;
        size_t n = (size_t)r;
        struct batch b = {0};
        do {
            if (handle(c, v, n, &b) < 0) {
                batch_record(w, &b);
                goto out_free;
            }
            n = corio_stream_buffered(c->s, &v);
        } while (n > 0 && !c->close);
        /* The end of a batch: every response in one write. */
        batch_record(w, &b);
        if (flush(c, corio_loop_now(w->loop) + w->cfg->write_timeout) < 0)
            break;
        if (c->close) {
            linger(c);
            break;
        }
    }
out_free:
    conn_free(c);
}

static void conn_start(corio_server *cs, int fd, void *data)
{
    struct worker *w = data;
    struct conn *c = conn_attach(w, fd);
    if (!c) {
        (void)corio_server_close(cs, fd);
        return;
    }
    w->nconns++;
    w->n.accepted++;
    serve(c);
}

/* ---- Loops ---- */

static void worker_finish(struct worker *w)
{
    if (corio_timer_is_active(&w->date_timer))
        corio_timer_stop(w->loop, &w->date_timer);
    (void)corio_stats_take(w->loop, &w->stats, 0);
    while (w->spare) {
        struct conn *c = w->spare;
        w->spare = c->next;
        (void)corio_stream_close(c->s, CORIO_NOWAIT); /* detached: frees it */
        corio__free(c);
    }
    w->nspare = 0;
}

static int worker_init(corio_loop *loop, unsigned index, void *data)
{
    http_server *srv = data;
    struct worker *w = &srv->w[index];
    const struct http_config *cfg = &srv->cfg;
    w->srv = srv;
    w->cfg = cfg;
    w->loop = loop;
    w->index = index;
    corio_timer_init(&w->date_timer, date_tick, w);
    w->date_timer.unref = 1; /* the connections keep the loop alive, not the clock */
    corio_addr a = srv->addr;
    if (index > 0) /* the others join the port loop 0 was given */
        ((struct sockaddr_in *)&a.ss)->sin_port = htons((uint16_t)srv->port);
    corio_listen_options lo = {.backlog = cfg->backlog, .reuseport = true};
    corio_listener *l;
    int r = corio_net_listen_addr(&l, &a, &lo);
    if (r < 0)
        return r;
    if (index == 0) {
        corio_addr b;
        r = corio_listener_addr(l, &b);
        srv->port = r < 0 ? r : corio_addr_port(&b);
        if (srv->port < 0) {
            (void)corio_listener_close(l);
            return srv->port;
        }
    }
    corio_server_options so = {
        .listener = l,
        .max_conns = cfg->max_conns,
        .handler = conn_start,
        .data = w,
        .first_byte_timeout = cfg->idle_timeout,
    };
    r = corio_server_start(loop, &w->cs, &so);
    if (r < 0) {
        (void)corio_listener_close(l);
        return r;
    }
    date_update(w);
    return 0;
}

static void worker_shutdown(corio_loop *loop, unsigned index, void *data)
{
    http_server *srv = data;
    struct worker *w = &srv->w[index];
    (void)loop;
    if (w->stopping || !w->loop)
        return;
    w->stopping = true;
    if (w->cs)
        corio_server_stop(w->cs);
    if (w->nconns == 0)
        worker_finish(w);
}

/* ---- The server ---- */

static unsigned cpus_allowed(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static int check_config(const struct http_config *cfg)
{
    const struct http_limits *l = &cfg->limits;
    if (l->max_headers == 0 || l->max_headers > HTTP_MAX_HEADERS || l->max_line < 16 ||
        l->max_head < l->max_line || l->max_head > (64u << 20))
        return -EINVAL;
    if (cfg->idle_timeout <= 0 || cfg->header_timeout <= 0 || cfg->body_timeout <= 0 ||
        cfg->write_timeout <= 0 || cfg->shutdown_timeout < 0 || cfg->nroutes > HTTP_MAX_ROUTES)
        return -EINVAL;
    return 0;
}

int http_server_start(http_server **out, const struct http_config *cfg)
{
    SITE(s_malloc, "malloc");
    int r = check_config(cfg);
    if (r < 0)
        return r;
    unsigned n = cfg->threads ? cfg->threads : cpus_allowed();
    http_server *srv = corio__calloc(&s_malloc, 1, sizeof *srv + n * sizeof srv->w[0]);
    if (!srv)
        return -ENOMEM;
    srv->cfg = *cfg;
    srv->n = n;
    for (unsigned i = 0; i < cfg->nroutes; i++)
        srv->route_len[i] = (uint32_t)strlen(cfg->routes[i].path);
    srv->dirfd = -1;
    r = corio_addr_parse(&srv->addr, cfg->listen);
    if (r == 0 && srv->addr.ss.ss_family != AF_INET && srv->addr.ss.ss_family != AF_INET6)
        r = -CORIO_EADDR;
    if (r == 0 && cfg->static_dir)
        r = srv->dirfd = http__static_open(cfg->static_dir);
    if (r < 0)
        goto out_free;
    corio_mt_options mo = {
        .threads = n,
        .pin = cfg->pin,
        .init = worker_init,
        .shutdown = worker_shutdown,
        .data = srv,
    };
    r = corio_mt_start(&srv->mt, &mo);
    if (r < 0)
        goto out_free;
    *out = srv;
    return 0;

out_free:
    if (srv->dirfd >= 0)
        close(srv->dirfd);
    corio__free(srv);
    return r;
}

int http_server_port(const http_server *srv)
{
    return srv->port;
}

unsigned http_server_loops(const http_server *srv)
{
    return srv->n;
}

void http_server_stop(http_server *srv)
{
    (void)corio_mt_shutdown(srv->mt, corio_after(srv->cfg.shutdown_timeout));
}

int http_server_wait(http_server *srv, struct http_counters *c, corio_stats *stats)
{
    int r = corio_mt_join(srv->mt);
    if (c)
        memset(c, 0, sizeof *c);
    if (stats)
        memset(stats, 0, sizeof *stats);
    for (unsigned i = 0; i < srv->n; i++) {
        const struct http_counters *w = &srv->w[i].n;
        if (c) {
            c->accepted += w->accepted;
            c->requests += w->requests;
            c->status_2xx += w->status_2xx;
            c->status_4xx += w->status_4xx;
            c->status_5xx += w->status_5xx;
            c->batches += w->batches;
            c->parks += w->parks;
            c->timeouts += w->timeouts;
        }
        if (stats)
            corio_stats_merge(stats, &srv->w[i].stats);
    }
    if (srv->dirfd >= 0)
        close(srv->dirfd);
    corio__free(srv);
    return r;
}
