/* A small corio HTTP server for corio-top's screen test: GET /plaintext,
 * GET /stats (JSON) and GET /metrics (Prometheus), keep-alive, and an
 * optional load of its own so the screen has live numbers.
 *
 *   stats_server [-c CLIENTS] [-t SECONDS]
 *
 * Prints "port N" on stdout once it listens on 127.0.0.1 (port 0), and
 * exits after SECONDS (default 30) so a failed test leaves nothing behind. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corio.h"

static struct sockaddr_in addr;
static int64_t stop_at;

static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                            "Hello, World!";

/* Answers one request; returns the response's length, or -1. */
static ssize_t answer(const char *req, char *out, size_t cap)
{
    corio_loop *loop = corio_loop_current();
    if (strncmp(req, "GET /plaintext ", 15) == 0) {
        memcpy(out, hello, sizeof hello - 1);
        return (ssize_t)sizeof hello - 1;
    }
    bool json = strncmp(req, "GET /stats ", 11) == 0;
    if (!json && strncmp(req, "GET /metrics ", 13) != 0)
        return -1;
    corio_stats s;
    corio_stats_take(loop, &s, CORIO_STATS_ALL);
    size_t hdr = 128;
    ssize_t n = json ? corio_stats_json(&s, out + hdr, cap - hdr)
                     : corio_stats_prometheus(&s, out + hdr, cap - hdr);
    if (n < 0)
        return -1;
    char h[128];
    int hl = snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zd\r\n\r\n",
                      json ? "application/json" : "text/plain; version=0.0.4", n);
    memmove(out + hl, out + hdr, (size_t)n);
    memcpy(out, h, (size_t)hl);
    return hl + n;
}

static void *conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[4096];
    size_t len = 0, cap = 80 * 1024;
    char *out = malloc(cap);
    while (out) {
        ssize_t n = corio_read(fd, req + len, sizeof req - 1 - len, corio_after(10 * CORIO_SEC));
        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = '\0';
        char *end;
        while ((end = strstr(req, "\r\n\r\n"))) {
            int64_t t0 = corio_now();
            size_t rl = (size_t)(end + 4 - req);
            ssize_t m = answer(req, out, cap);
            bool close_after = strcasestr(req, "\r\nconnection: close\r\n") != NULL;
            bool ok = m > 0 && corio_write_all(fd, out, (size_t)m, NULL, corio_after(10 * CORIO_SEC)) >= 0;
            corio_stats_request(corio_loop_current(), rl, m > 0 ? (uint64_t)m : 0, corio_now() - t0, !ok);
            if (!ok || close_after)
                goto out;
            memmove(req, req + rl, len - rl + 1);
            len -= rl;
        }
        if (len == sizeof req - 1)
            break;
    }
out:
    free(out);
    corio_close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    while (corio_now() < stop_at) {
        int fd = corio_accept(lfd, NULL, NULL, stop_at);
        if (fd >= 0 && corio_spawn(corio_loop_current(), NULL, conn, (void *)(intptr_t)fd, 0) < 0)
            corio_close(fd);
    }
    corio_close(lfd);
    return NULL;
}

/* A client of our own, paced so the server is busy but not saturated. */
static void *client(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || corio_connect(fd, (struct sockaddr *)&addr, sizeof addr, corio_after(CORIO_SEC)) < 0)
        goto out;
    static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[512];
    while (corio_now() < stop_at) {
        if (corio_write_all(fd, req, sizeof req - 1, NULL, stop_at) < 0)
            break;
        size_t got = 0;
        while (got < sizeof hello - 1) {
            ssize_t n = corio_read(fd, buf, sizeof buf, stop_at);
            if (n <= 0)
                goto out;
            got += (size_t)n;
        }
        corio_sleep_until(corio_after(200 * CORIO_USEC));
    }
out:
    if (fd >= 0)
        corio_close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int clients = 0, secs = 30;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-c") == 0)
            clients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-t") == 0)
            secs = atoi(argv[i + 1]);
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        perror("stats_server");
        return 1;
    }
    corio_loop *loop;
    if (corio_loop_new(&loop, NULL) < 0)
        return 1;
    corio_stats_listener(loop, lfd);
    stop_at = corio_after(secs * CORIO_SEC);
    corio_spawn(loop, NULL, acceptor, (void *)(intptr_t)lfd, 0);
    for (int i = 0; i < clients; i++)
        corio_spawn(loop, NULL, client, NULL, 0);
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    int r = corio_loop_run(loop, CORIO_RUN_DEFAULT);
    corio_loop_free(loop);
    return r < 0;
}
