/* A small libuv HTTP server for `make bench-peers`, written the way libuv
 * users write one: uv_read_start with one shared read buffer (the read
 * callback handles the bytes before the next read), corio-http's parser,
 * a prebuilt /plaintext response whose Date a uv_timer refreshes every
 * second, and one uv_try_write per batch of pipelined requests (uv_write
 * with a copy when the socket is full).
 *
 *   libuv-http [PORT]    (0 or nothing: a free port, printed on stdout) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "../../apps/http/parser.h"

#define PENDING_MAX 16384

struct conn {
    uv_tcp_t tcp;
    size_t pending; /* bytes of an incomplete request kept from the last read */
    char in[PENDING_MAX];
};

struct wreq {
    uv_write_t req;
    char data[];
};

static char response[256];
static size_t response_len;
static char readbuf[65536];
static char outbuf[1 << 20];
static const struct http_limits lim = {.max_line = 8192, .max_head = PENDING_MAX, .max_headers = 64};

static void date_update(uv_timer_t *t)
{
    (void)t;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char date[64];
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    response_len = (size_t)snprintf(response, sizeof response,
                                    "HTTP/1.1 200 OK\r\nServer: libuv\r\nDate: %s\r\n"
                                    "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                                    "Hello, World!", date);
}

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h, (void)hint;
    *buf = uv_buf_init(readbuf, sizeof readbuf);
}

/* Answers the complete requests in p[0..n); returns the bytes used, or -1. */
static ssize_t answer(const char *p, size_t n, size_t *out)
{
    size_t off = 0;
    while (off < n) {
        struct http_request req;
        struct http_header hdrs[64];
        int hl = http_parse_request(p + off, n - off, 0, &req, hdrs, &lim);
        if (hl == HTTP_MORE)
            break;
        if (hl < 0 || req.content_length > 0 || req.chunked || *out + response_len > sizeof outbuf)
            return -1;
        memcpy(outbuf + *out, response, response_len);
        *out += response_len;
        off += (size_t)hl;
    }
    return (ssize_t)off;
}

static void send_out(struct conn *c, size_t n)
{
    uv_buf_t b = uv_buf_init(outbuf, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w == (int)n)
        return;
    size_t done = w > 0 ? (size_t)w : 0;
    struct wreq *r = malloc(sizeof *r + n - done);
    memcpy(r->data, outbuf + done, n - done);
    b = uv_buf_init(r->data, (unsigned)(n - done));
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        free(r);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    size_t out = 0;
    const char *p = buf->base;
    size_t n = (size_t)nread;
    if (c->pending) { /* finish the request the last read cut */
        if (c->pending + n > PENDING_MAX) {
            uv_close((uv_handle_t *)s, on_close);
            return;
        }
        memcpy(c->in + c->pending, p, n);
        p = c->in;
        n += c->pending;
    }
    ssize_t used = answer(p, n, &out);
    if (used < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    c->pending = n - (size_t)used;
    memmove(c->in, p + used, c->pending);
    if (out)
        send_out(c, out);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 0, &a);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&a, 0) < 0 ||
        uv_listen((uv_stream_t *)&server, 4096, on_connection) < 0) {
        fprintf(stderr, "libuv-http: cannot listen\n");
        return 1;
    }
    int len = sizeof a;
    uv_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
    printf("libuv-http listening on http://127.0.0.1:%d/\n", ntohs(a.sin_port));
    fflush(stdout);
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    date_update(&timer);
    uv_timer_start(&timer, date_update, 1000, 1000);
    return uv_run(loop, UV_RUN_DEFAULT);
}
