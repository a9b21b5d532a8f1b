/* corio-top: a terminal view of a running corio server, layer by layer
 * from the NIC to the handler, refreshed about once a second.
 *
 *   corio-top [-b] [-n COUNT] [-d SECONDS] [--no-color] [HOST:PORT[/PATH]]
 *
 * It fetches the server's JSON snapshot (GET /stats, what corio-http and
 * any program serving corio_stats_json() answer) and draws
 * corio_stats_table() between two fetches: rates over the interval and the
 * bottleneck marked.  -b writes the tables one after another instead of
 * redrawing the screen; -n stops after COUNT tables, so
 * `corio-top -b -n 1 -d 10` prints the table for the next ten seconds.
 * A program can also draw the same view of itself: corio_stats_top(). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corio.h"

struct opts {
    char host[64];
    int port;
    char path[128];
    long count;      /* tables to draw; 0: until interrupted */
    int64_t interval;
    bool batch;
    bool color;
};

struct top {
    struct opts o;
    corio_stats prev, cur;
    bool have_prev;
    char resp[256 * 1024];
    char text[16384];
    int status; /* exit status */
};

static void usage(void)
{
    fprintf(stderr, "usage: corio-top [-b] [-n COUNT] [-d SECONDS] [--no-color] [HOST:PORT[/PATH]]\n"
                    "  HOST:PORT  a server answering GET /stats with corio's JSON (default 127.0.0.1:8080)\n"
                    "  -d SECONDS refresh interval (default 1)\n"
                    "  -n COUNT   stop after COUNT tables\n"
                    "  -b         batch: print tables one after another, no screen control\n");
    exit(2);
}

static void parse_target(struct opts *o, const char *arg)
{
    const char *colon = strrchr(arg, ':'), *slash = strchr(arg, '/');
    if (!colon || (slash && slash < colon) || (size_t)(colon - arg) >= sizeof o->host)
        usage();
    memcpy(o->host, arg, (size_t)(colon - arg));
    o->host[colon - arg] = '\0';
    o->port = atoi(colon + 1);
    if (o->port <= 0 || o->port > 65535)
        usage();
    snprintf(o->path, sizeof o->path, "%s", slash ? slash : "/stats");
}

static void parse_args(struct opts *o, int argc, char **argv)
{
    *o = (struct opts){"127.0.0.1", 8080, "/stats", 0, CORIO_SEC, false, isatty(1)};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-b") == 0)
            o->batch = true;
        else if (strcmp(a, "--no-color") == 0)
            o->color = false;
        else if (strcmp(a, "-n") == 0 && i + 1 < argc)
            o->count = atol(argv[++i]);
        else if (strcmp(a, "-d") == 0 && i + 1 < argc)
            o->interval = (int64_t)(atof(argv[++i]) * CORIO_SEC);
        else if (a[0] == '-')
            usage();
        else
            parse_target(o, a);
    }
    if (o->interval < 0)
        usage();
}

/* The body of an HTTP response: after the header, de-chunked if need be.
 * Returns its length, or -1 for a response that is not a 200. */
static ssize_t http_body(char *r, size_t len, char **body)
{
    char *end = memmem(r, len, "\r\n\r\n", 4);
    if (!end || len < 12 || memcmp(r + 9, "200", 3) != 0)
        return -1;
    *end = '\0';
    char *b = end + 4;
    size_t blen = len - (size_t)(b - r);
    *body = b;
    if (!strcasestr(r, "transfer-encoding: chunked"))
        return (ssize_t)blen;
    size_t out = 0;
    char *p = b, *lim = b + blen;
    while (p < lim) {
        char *e;
        unsigned long n = strtoul(p, &e, 16);
        char *data = memmem(e, (size_t)(lim - e), "\r\n", 2);
        if (!data || n == 0 || n > (size_t)(lim - data - 2))
            break;
        memmove(b + out, data + 2, n);
        out += n;
        p = data + 2 + n + 2;
    }
    return (ssize_t)out;
}

/* Whether r holds a whole response with a Content-Length (else the
 * server's close ends it). */
static bool complete(const char *r, size_t len)
{
    const char *end = memmem(r, len, "\r\n\r\n", 4);
    const char *cl = end ? strcasestr(r, "\r\ncontent-length:") : NULL;
    if (!cl || cl > end)
        return false;
    return len - (size_t)(end + 4 - r) >= strtoull(cl + 17, NULL, 10);
}

/* One GET, with Connection: close; the response read to its end. */
static int fetch(struct top *t, corio_stats *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->o.port)};
    if (inet_pton(AF_INET, strcmp(t->o.host, "localhost") == 0 ? "127.0.0.1" : t->o.host,
                  &a.sin_addr) != 1)
        return -CORIO_EADDR;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int64_t deadline = corio_after(5 * CORIO_SEC);
    char req[256];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                      t->o.path, t->o.host, t->o.port);
    int r = corio_connect(fd, (struct sockaddr *)&a, sizeof a, deadline);
    if (r == 0)
        r = (int)corio_write_all(fd, req, (size_t)rl, NULL, deadline);
    size_t len = 0;
    while (r >= 0 && len < sizeof t->resp - 1 && !complete(t->resp, len)) {
        ssize_t n = corio_read(fd, t->resp + len, sizeof t->resp - 1 - len, deadline);
        if (n <= 0) {
            r = n < 0 ? (int)n : 0;
            break;
        }
        len += (size_t)n;
        t->resp[len] = '\0';
    }
    corio_close(fd);
    if (r < 0)
        return r;
    char *body;
    ssize_t blen = http_body(t->resp, len, &body);
    if (blen < 0)
        return -EPROTO;
    return corio_stats_from_json(s, body, (size_t)blen);
}

static void draw(struct top *t, const char *text, size_t len)
{
    if (!t->o.batch)
        fputs("\033[H\033[2J", stdout);
    fwrite(text, 1, len, stdout);
    if (t->o.batch)
        fputc('\n', stdout);
    fflush(stdout);
}

static void *run(void *arg)
{
    struct top *t = arg;
    long drawn = 0;
    int64_t next = corio_now();
    while (t->o.count == 0 || drawn < t->o.count) {
        int r = fetch(t, &t->cur);
        if (r < 0) {
            int n = snprintf(t->text, sizeof t->text, "corio-top: %s:%d%s: %s (retrying)\n",
                             t->o.host, t->o.port, t->o.path, corio_strerror(r));
            draw(t, t->text, (size_t)n);
            t->have_prev = false;
            t->status = 1;
            if (t->o.batch && t->o.count)
                drawn++; /* a batch run reports the failure and goes on counting */
        } else if (t->have_prev || t->o.interval == 0) {
            ssize_t n = corio_stats_table(t->have_prev ? &t->prev : NULL, &t->cur, t->text,
                                          sizeof t->text, t->o.color ? CORIO_TABLE_COLOR : 0);
            if (n > 0)
                draw(t, t->text, (size_t)n);
            drawn++;
            t->status = 0;
        }
        if (r >= 0) {
            t->prev = t->cur;
            t->have_prev = true;
        }
        if (t->o.count && drawn >= t->o.count)
            break;
        next += t->o.interval ? t->o.interval : CORIO_SEC;
        corio_sleep_until(next);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct top *t = calloc(1, sizeof *t);
    if (!t)
        return 1;
    parse_args(&t->o, argc, argv);
    corio_loop *loop;
    int r = corio_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "corio-top: %s\n", corio_strerror(r));
        return 1;
    }
    corio_spawn(loop, NULL, run, t, 0);
    r = corio_loop_run(loop, CORIO_RUN_DEFAULT);
    corio_loop_free(loop);
    int status = r < 0 ? 1 : t->status;
    free(t);
    return status;
}
