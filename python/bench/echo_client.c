/* Load generator for the Python benchmarks: N connections in one thread,
 * each sending a request and waiting for the whole answer before the next
 * (ping-pong), for a fixed time.  Prints one line of JSON: messages, rate
 * and round-trip percentiles.
 *
 *   py-echo-client -p PORT [-c CONNS] [-s SIZE] [-t SECS] [-m echo|http] [-C CPU]
 *
 * echo: SIZE-byte messages, the answer is the same bytes.
 * http: "GET / HTTP/1.1" requests; an answer ends after its Content-Length. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t got, want; /* bytes of the current answer */
    int64_t sent_at;
    char buf[65536];
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static const char HTTP_REQ[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/* For http: the length of a complete answer in c->buf, or 0 if not yet. */
static size_t http_len(const struct conn *c)
{
    const char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
    if (!end)
        return 0;
    const char *cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length:", 15);
    size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;
    return (size_t)(end - c->buf) + 4 + body;
}

int main(int argc, char **argv)
{
    int port = 0, nconn = 10, size = 1024, cpu = -1;
    double secs = 2;
    const char *mode = "echo";
    int opt;
    while ((opt = getopt(argc, argv, "p:c:s:t:m:C:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': nconn = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 't': secs = atof(optarg); break;
        case 'm': mode = optarg; break;
        case 'C': cpu = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!port || nconn < 1 || size < 1 || size > 65536)
        return 2;
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    int http = strcmp(mode, "http") == 0;
    char *msg = malloc((size_t)size);
    memset(msg, 'm', (size_t)size);
    const char *req = http ? HTTP_REQ : msg;
    size_t reqlen = http ? sizeof HTTP_REQ - 1 : (size_t)size;

    int ep = epoll_create1(0);
    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        cs[i].fd = fd;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    size_t cap = 1 << 20, nlat = 0;
    int64_t *lat = malloc(cap * sizeof *lat);
    uint64_t msgs = 0;
    int64_t t0 = now_ns(), stop = t0 + (int64_t)(secs * 1e9);
    for (int i = 0; i < nconn; i++) {
        cs[i].sent_at = now_ns();
        if (write(cs[i].fd, req, reqlen) != (ssize_t)reqlen)
            return 1;
        cs[i].want = http ? 0 : (size_t)size;
    }
    struct epoll_event ev[64];
    int64_t t = t0;
    while (t < stop) {
        int n = epoll_wait(ep, ev, 64, 100);
        t = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->got, sizeof c->buf - c->got);
            if (r <= 0) {
                fprintf(stderr, "connection closed by the server\n");
                return 1;
            }
            c->got += (size_t)r;
            size_t full = http ? http_len(c) : c->want;
            if (!full || c->got < full)
                continue;
            if (nlat < cap)
                lat[nlat++] = t - c->sent_at;
            msgs++;
            c->got -= full; /* pipelining is not used: nothing is left */
            c->sent_at = t;
            if (write(c->fd, req, reqlen) != (ssize_t)reqlen)
                return 1;
        }
    }
    double el = (double)(now_ns() - t0) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp64);
    double p50 = nlat ? (double)lat[nlat / 2] / 1e3 : 0;
    double p99 = nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0;
    printf("{\"msgs\": %llu, \"secs\": %.3f, \"rate\": %.0f, \"p50_us\": %.1f, \"p99_us\": %.1f}\n",
           (unsigned long long)msgs, el, (double)msgs / el, p50, p99);
    for (int i = 0; i < nconn; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);
    free(lat);
    free(msg);
    return 0;
}
