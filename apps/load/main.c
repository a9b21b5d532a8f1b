/* corio-load: a load generator built on corio.
 *
 *   corio-load [http|echo|idle] [options] TARGET
 *
 * Exits 0 when every request was answered with a 2xx (every connection
 * opened and held, in idle mode), 1 otherwise, 2 for a usage error. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: corio-load [http|echo|idle] [options] TARGET\n"
            "  TARGET is http://HOST:PORT/PATH (http) or HOST:PORT (echo, idle)\n"
            "  -c, --connections N   connections (100)\n"
            "  -t, --threads N       threads, one loop each (1)\n"
            "  -d, --duration SEC    how long to send (10, unless -n is given)\n"
            "  -n, --requests N      how many requests in all\n"
            "  -p, --pipeline N      requests in flight per connection (1)\n"
            "  -r, --rate N          open loop: N requests per second in all, latency\n"
            "                        measured from when each was due\n"
            "  -b, --body N          request body bytes (POST), echo message size (64)\n"
            "  -m, --method M        request method (GET; POST with a body)\n"
            "      --timeout SEC     for a connection or a response (10)\n"
            "      --sources N       idle: source addresses 127.0.0.1.. (one per 25000 conns)\n"
            "      --warm            idle: one request on each connection first\n"
            "      --json            the report as one JSON object\n"
            "  -q, --quiet           no progress lines\n");
}

static double num(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0 || !isfinite(v)) {
        fprintf(stderr, "corio-load: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

/* TARGET -> address, Host header and path. */
static void parse_target(struct load_config *cfg, const char *target)
{
    snprintf(cfg->target, sizeof cfg->target, "%s", target);
    const char *p = target;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (cfg->mode == MODE_HTTP && strstr(p, "://")) {
        fprintf(stderr, "corio-load: only http:// targets\n");
        exit(2);
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof cfg->host) {
        fprintf(stderr, "corio-load: bad target: %s\n", target);
        exit(2);
    }
    memcpy(cfg->host, p, hl);
    cfg->host[hl] = 0;
    snprintf(cfg->path, sizeof cfg->path, "%s", slash ? slash : "/");
    char addr[160];
    if (strncmp(cfg->host, "localhost:", 10) == 0)
        snprintf(addr, sizeof addr, "127.0.0.1:%s", cfg->host + 10);
    else if (!strchr(cfg->host, ':'))
        snprintf(addr, sizeof addr, "%s:80", cfg->host);
    else
        snprintf(addr, sizeof addr, "%s", cfg->host);
    int r = corio_addr_parse(&cfg->addr, addr);
    if (r < 0) {
        fprintf(stderr, "corio-load: %s: %s (give a numeric address)\n", addr, corio_strerror(r));
        exit(2);
    }
}

enum { O_TIMEOUT = 256, O_SOURCES, O_WARM, O_JSON };

static void parse_args(int argc, char **argv, struct load_config *cfg)
{
    static const struct option opts[] = {
        {"connections", required_argument, NULL, 'c'}, {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},    {"requests", required_argument, NULL, 'n'},
        {"pipeline", required_argument, NULL, 'p'},    {"rate", required_argument, NULL, 'r'},
        {"body", required_argument, NULL, 'b'},        {"method", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, O_TIMEOUT}, {"sources", required_argument, NULL, O_SOURCES},
        {"warm", no_argument, NULL, O_WARM},           {"json", no_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, 'q'},             {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "http") == 0)
            cfg->mode = MODE_HTTP, first = 2;
        else if (strcmp(argv[1], "echo") == 0)
            cfg->mode = MODE_ECHO, first = 2;
        else if (strcmp(argv[1], "idle") == 0)
            cfg->mode = MODE_IDLE, first = 2;
    }
    optind = first;
    int c;
    while ((c = getopt_long(argc, argv, "c:t:d:n:p:r:b:m:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cfg->conns = (unsigned)num(optarg, "connection count"); break;
        case 't': cfg->threads = (unsigned)num(optarg, "thread count"); break;
        case 'd': cfg->duration = (int64_t)(num(optarg, "duration") * 1e9); break;
        case 'n': cfg->count = (uint64_t)num(optarg, "request count"); break;
        case 'p': cfg->depth = (unsigned)num(optarg, "pipelining depth"); break;
        case 'r': cfg->rate = num(optarg, "rate"); break;
        case 'b': cfg->body_size = (size_t)num(optarg, "body size"); break;
        case 'm': cfg->method = optarg; break;
        case O_TIMEOUT: cfg->timeout = (int64_t)(num(optarg, "timeout") * 1e9); break;
        case O_SOURCES: cfg->sources = (unsigned)num(optarg, "source count"); break;
        case O_WARM: cfg->warm = true; break;
        case O_JSON: cfg->json = true; break;
        case 'q': cfg->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        exit(2);
    }
    parse_target(cfg, argv[optind]);
    if (!cfg->method)
        cfg->method = cfg->body_size && cfg->mode == MODE_HTTP ? "POST" : "GET";
    if (cfg->conns == 0 || cfg->threads == 0 || cfg->depth == 0 || cfg->depth > 1024) {
        fprintf(stderr, "corio-load: connections, threads and depth (<= 1024) must be >= 1\n");
        exit(2);
    }
    if (cfg->threads > cfg->conns)
        cfg->threads = cfg->conns;
    if (!cfg->duration && !cfg->count)
        cfg->duration = 10 * CORIO_SEC;
    if (cfg->mode == MODE_IDLE && !cfg->duration) {
        fprintf(stderr, "corio-load: idle mode holds connections for a duration (-d)\n");
        exit(2);
    }
    if (cfg->sources == 0)
        cfg->sources = (cfg->conns + 24999) / 25000;
}

/* ---- Progress ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

struct live {
    uint64_t answered, bytes, errors, open;
};

static struct live read_live(struct load_thread *th, unsigned n, bool *all_done)
{
    struct live l = {0};
    *all_done = true;
    for (unsigned i = 0; i < n; i++) {
        l.answered += atomic_load_explicit(&th[i].live_answered, memory_order_relaxed);
        l.bytes += atomic_load_explicit(&th[i].live_bytes, memory_order_relaxed);
        l.errors += atomic_load_explicit(&th[i].live_errors, memory_order_relaxed);
        l.open += atomic_load_explicit(&th[i].live_open, memory_order_relaxed);
        *all_done &= atomic_load(&th[i].done);
    }
    return l;
}

/* Waits for the threads, printing a progress line every second: rewritten
 * in place on a terminal, one line each otherwise.  In idle mode a line
 * goes to stdout the moment every connection is open, for scripts. */
static void watch(const struct load_config *cfg, struct load_thread *th)
{
    bool tty = isatty(2), all_open_said = false, done = false;
    struct live prev = {0};
    int64_t start = corio_now(), last = start;
    while (!done) {
        sleep_ms(50);
        struct live l = read_live(th, cfg->threads, &done);
        if (cfg->mode == MODE_IDLE && !all_open_said && l.open == cfg->conns) {
            printf("all %u connections open\n", cfg->conns);
            fflush(stdout);
            all_open_said = true;
        }
        int64_t now = corio_now();
        if (cfg->quiet || (now - last < CORIO_SEC && !done))
            continue;
        double dt = (double)(now - last) / 1e9;
        if (cfg->mode == MODE_IDLE)
            fprintf(stderr, "%s%6.1f s   %llu open   %llu errors%s", tty ? "\r" : "",
                    (double)(now - start) / 1e9, (unsigned long long)l.open,
                    (unsigned long long)l.errors, tty ? "\033[K" : "\n");
        else
            fprintf(stderr, "%s%6.1f s   %10.0f req/s   %7.1f MB/s   %llu answered   %llu errors%s",
                    tty ? "\r" : "", (double)(now - start) / 1e9,
                    (double)(l.answered - prev.answered) / dt, (double)(l.bytes - prev.bytes) / dt / 1e6,
                    (unsigned long long)l.answered, (unsigned long long)l.errors, tty ? "\033[K" : "\n");
        prev = l;
        last = now;
    }
    if (tty && !cfg->quiet)
        fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
    struct load_config cfg = {.conns = 100, .threads = 1, .depth = 1, .timeout = 10 * CORIO_SEC};
    parse_args(argc, argv, &cfg);
    signal(SIGPIPE, SIG_IGN);

    struct load_thread *th = calloc(cfg.threads, sizeof *th);
    if (!th)
        return 1;
    unsigned per = cfg.conns / cfg.threads, extra = cfg.conns % cfg.threads, first = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct load_thread *t = &th[i];
        t->cfg = &cfg;
        t->index = i;
        t->conn_first = first;
        t->nconns = per + (i < extra);
        first += t->nconns;
        t->budget = cfg.count / cfg.threads + (i < cfg.count % cfg.threads);
        hist_init(&t->lat);
        if (pthread_create(&t->thread, NULL, load_thread_main, t) != 0) {
            perror("corio-load: pthread_create");
            return 1;
        }
    }
    watch(&cfg, th);

    struct load_result res = {0};
    hist_init(&res.lat);
    int64_t t0 = INT64_MAX, t1 = 0;
    int err = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct load_thread *t = &th[i];
        pthread_join(t->thread, NULL);
        for (int k = 0; k < E_KINDS; k++)
            res.n.err[k] += t->n.err[k];
        for (int k = 0; k < 6; k++)
            res.n.status[k] += t->n.status[k];
        res.n.sent += t->n.sent;
        res.n.answered += t->n.answered;
        res.n.bytes_in += t->n.bytes_in;
        res.n.bytes_out += t->n.bytes_out;
        res.n.connected += t->n.connected;
        hist_merge(&res.lat, &t->lat);
        t0 = t->start < t0 ? t->start : t0;
        t1 = t->stop > t1 ? t->stop : t1;
        if (t->err < 0 && !err)
            err = t->err;
    }
    res.seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    if (cfg.json)
        load_report_json(&cfg, &res);
    else
        load_report_text(&cfg, &res);
    if (err)
        fprintf(stderr, "corio-load: %s\n", corio_strerror(err));
    free(th);
    bool ok = !err && load_errors(&res.n) == 0 &&
              (cfg.mode == MODE_IDLE ? res.n.connected == cfg.conns : res.n.answered == res.n.sent);
    return ok ? 0 : 1;
}
