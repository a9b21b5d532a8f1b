/* corio-http: the reference HTTP/1.1 server.
 *
 *   corio-http [-l ADDR] [-t THREADS] [--pin] [--static DIR] [options]
 *
 * Prints "listening on http://ADDR:PORT/" on stdout once it accepts, and
 * on SIGINT or SIGTERM shuts down gracefully, then prints one summary line
 * ("summary {json}") on stdout. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: corio-http [options]\n"
            "  -l, --listen ADDR          address to listen on (127.0.0.1:8080; port 0 picks one)\n"
            "  -t, --threads N            loops, one per thread (default: one per CPU)\n"
            "      --pin                  pin loop i's thread to CPU i\n"
            "  -s, --static DIR           serve files from DIR (GET, HEAD; sendfile)\n"
            "      --idle-timeout SEC     keep-alive idle limit (60)\n"
            "      --header-timeout SEC   first byte to end of headers (10)\n"
            "      --body-timeout SEC     end of headers to end of body (30)\n"
            "      --write-timeout SEC    a response waiting for the peer (30)\n"
            "      --shutdown-timeout SEC graceful shutdown limit (10)\n"
            "      --max-body BYTES       request body limit (1048576)\n"
            "      --max-line BYTES       request line limit (8192)\n"
            "      --max-head BYTES       request line and headers limit (16384)\n"
            "      --max-headers N        header count limit (64)\n"
            "      --max-conns N          connections per loop (no limit)\n"
            "      --backlog N            listen backlog (SOMAXCONN)\n"
            "  -q, --quiet                no summary on stdout\n"
            "  -h, --help\n");
}

static int64_t seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0 || v > 1e9) {
        fprintf(stderr, "corio-http: bad number of seconds: %s\n", s);
        exit(2);
    }
    return (int64_t)(v * 1e9);
}

static unsigned long number(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (end == s || *end) {
        fprintf(stderr, "corio-http: bad number: %s\n", s);
        exit(2);
    }
    return v;
}

enum {
    O_PIN = 256, O_IDLE, O_HEADER, O_BODY, O_WRITE, O_SHUTDOWN, O_MAXBODY, O_MAXLINE,
    O_MAXHEAD, O_MAXHDRS, O_MAXCONNS, O_BACKLOG,
};

static void parse_args(int argc, char **argv, struct http_config *cfg)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"pin", no_argument, NULL, O_PIN},
        {"static", required_argument, NULL, 's'},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"header-timeout", required_argument, NULL, O_HEADER},
        {"body-timeout", required_argument, NULL, O_BODY},
        {"write-timeout", required_argument, NULL, O_WRITE},
        {"shutdown-timeout", required_argument, NULL, O_SHUTDOWN},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"max-line", required_argument, NULL, O_MAXLINE},
        {"max-head", required_argument, NULL, O_MAXHEAD},
        {"max-headers", required_argument, NULL, O_MAXHDRS},
        {"max-conns", required_argument, NULL, O_MAXCONNS},
        {"backlog", required_argument, NULL, O_BACKLOG},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "l:t:s:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'l': cfg->listen = optarg; break;
        case 't': cfg->threads = (unsigned)number(optarg); break;
        case O_PIN: cfg->pin = true; break;
        case 's': cfg->static_dir = optarg; break;
        case O_IDLE: cfg->idle_timeout = seconds(optarg); break;
        case O_HEADER: cfg->header_timeout = seconds(optarg); break;
        case O_BODY: cfg->body_timeout = seconds(optarg); break;
        case O_WRITE: cfg->write_timeout = seconds(optarg); break;
        case O_SHUTDOWN: cfg->shutdown_timeout = seconds(optarg); break;
        case O_MAXBODY: cfg->max_body = number(optarg); break;
        case O_MAXLINE: cfg->limits.max_line = (unsigned)number(optarg); break;
        case O_MAXHEAD: cfg->limits.max_head = (unsigned)number(optarg); break;
        case O_MAXHDRS: cfg->limits.max_headers = (unsigned)number(optarg); break;
        case O_MAXCONNS: cfg->max_conns = (unsigned)number(optarg); break;
        case O_BACKLOG: cfg->backlog = (int)number(optarg); break;
        case 'q': cfg->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
}

static void print_summary(const struct http_counters *c, const corio_stats *s)
{
    double waits = s->waits ? (double)s->waits : 1;
    double batches = c->batches ? (double)c->batches : 1;
    printf("summary {\"connections\":%llu,\"requests\":%llu,\"status_2xx\":%llu,"
           "\"status_4xx\":%llu,\"status_5xx\":%llu,\"batches\":%llu,"
           "\"requests_per_write\":%.2f,\"parks\":%llu,\"timeouts\":%llu,"
           "\"reads\":%llu,\"writes\":%llu,\"read_eagain\":%llu,\"epoll_ctl\":%llu,"
           "\"waits\":%llu,\"events_per_wait\":%.2f,\"switches\":%llu,"
           "\"bytes_read\":%llu,\"bytes_written\":%llu}\n",
           (unsigned long long)c->accepted, (unsigned long long)c->requests,
           (unsigned long long)c->status_2xx, (unsigned long long)c->status_4xx,
           (unsigned long long)c->status_5xx, (unsigned long long)c->batches,
           (double)c->requests / batches, (unsigned long long)c->parks,
           (unsigned long long)c->timeouts,
           (unsigned long long)(s->syscalls[CORIO_SYSCALL_READ] + s->syscalls[CORIO_SYSCALL_RECV]),
           (unsigned long long)(s->syscalls[CORIO_SYSCALL_WRITE] + s->syscalls[CORIO_SYSCALL_SEND] +
                                s->syscalls[CORIO_SYSCALL_WRITEV]),
           (unsigned long long)(s->eagain[CORIO_SYSCALL_READ] + s->eagain[CORIO_SYSCALL_RECV]),
           (unsigned long long)s->syscalls[CORIO_SYSCALL_CTL], (unsigned long long)s->waits,
           (double)s->events / waits, (unsigned long long)s->switches,
           (unsigned long long)s->bytes_read, (unsigned long long)s->bytes_written);
}

int main(int argc, char **argv)
{
    struct http_config cfg;
    http_config_defaults(&cfg);
    parse_args(argc, argv, &cfg);

    /* The loops' threads inherit this mask: only sigwait() below sees the
     * signals, and the shutdown is an ordinary call from this thread. */
    sigset_t set;
    /* A shell starts background jobs with SIGINT ignored, and an ignored
     * signal never reaches sigwait(): take the default back first. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    http_server *srv;
    int r = http_server_start(&srv, &cfg);
    if (r < 0) {
        fprintf(stderr, "corio-http: cannot start on %s: %s\n", cfg.listen, corio_strerror(r));
        return 1;
    }
    char host[64];
    snprintf(host, sizeof host, "%s", cfg.listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = 0;
    printf("corio-http listening on http://%s:%d/ (%u loop%s%s%s)\n", *host ? host : "0.0.0.0",
           http_server_port(srv), http_server_loops(srv), http_server_loops(srv) == 1 ? "" : "s",
           cfg.static_dir ? ", static files from " : "", cfg.static_dir ? cfg.static_dir : "");
    fflush(stdout);

    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    http_server_stop(srv);
    struct http_counters c;
    corio_stats s;
    r = http_server_wait(srv, &c, &s);
    if (!cfg.quiet) {
        print_summary(&c, &s);
        fflush(stdout);
    }
    if (r < 0) {
        fprintf(stderr, "corio-http: %s\n", corio_strerror(r));
        return 1;
    }
    return 0;
}
