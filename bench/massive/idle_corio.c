/* corio-idle: the smallest keep-alive HTTP server on corio's own parts, to
 * show what an idle connection costs the library itself: corio_mt (a loop
 * per thread), corio_server (accept, connection limit) and corio_park
 * between requests, with no per-connection struct at all (the park's
 * data is the server).  Every request gets the plaintext response.
 *
 *   corio-idle [-l ADDR] [-t THREADS] [--pin] [--idle-timeout SEC]
 *
 * Prints "listening on ADDR" once every loop accepts; SIGINT or SIGTERM
 * shut it down gracefully. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio.h"

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n"
                               "Hello, World!";

static struct {
    corio_addr addr;
    int64_t idle;
    corio_server *srv[256];
} S;

static void serve(corio_server *srv, int fd, void *data);

static void wake(int fd, void *data, int reason)
{
    corio_server *srv = data;
    if (reason > 0)
        serve(srv, fd, NULL);
    else if (reason == -CORIO_ECLOSED)
        corio_server_release(srv);
    else
        corio_server_close(srv, fd);
}

/* Answers every complete request; parks when the input ends on a request
 * boundary, keeps reading (on the stack) when it ends inside one. */
static void serve(corio_server *srv, int fd, void *data)
{
    (void)data;
    char buf[4096], out[16 * sizeof response];
    unsigned match = 0; /* how much of "\r\n\r\n" the input ends with */
    bool inside = false;
    for (;;) {
        ssize_t n = corio_read(fd, buf, sizeof buf, inside ? corio_after(10 * CORIO_SEC) : CORIO_NOWAIT);
        if (n == -EAGAIN) {
            if (corio_park(corio_loop_current(), fd, wake, srv, corio_after(S.idle)) == 0)
                return;
            break;
        }
        if (n <= 0)
            break;
        size_t answers = 0;
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            match = (c == "\r\n\r\n"[match]) ? match + 1 : (c == '\r' ? 1 : 0);
            inside = true;
            if (match == 4) {
                match = 0;
                inside = false;
                answers++;
            }
        }
        while (answers > 0) {
            size_t k = answers < 16 ? answers : 16, len = 0;
            for (size_t j = 0; j < k; j++, len += sizeof response - 1)
                memcpy(out + len, response, sizeof response - 1);
            if (corio_write_all(fd, out, len, NULL, corio_after(10 * CORIO_SEC)) < 0)
                goto out_close;
            answers -= k;
        }
    }
out_close:
    corio_server_close(srv, fd);
}

static int init(corio_loop *loop, unsigned index, void *data)
{
    (void)data;
    corio_listen_options lo = {.reuseport = true, .backlog = 65535};
    corio_listener *l;
    int r = corio_net_listen_addr(&l, &S.addr, &lo);
    if (r < 0)
        return r;
    corio_listener_addr(l, &S.addr); /* loop 0 may have been given port 0 */
    corio_server_options so = {.listener = l, .handler = serve, .first_byte_timeout = S.idle};
    r = corio_server_start(loop, &S.srv[index], &so);
    if (r < 0)
        corio_listener_close(l);
    return r;
}

static void shutdown_loop(corio_loop *loop, unsigned index, void *data)
{
    (void)loop, (void)data;
    corio_server_stop(S.srv[index]);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080";
    corio_mt_options o = {.threads = 1, .init = init, .shutdown = shutdown_loop};
    S.idle = 600 * CORIO_SEC;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-l") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            o.threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--pin") == 0)
            o.pin = true;
        else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc)
            S.idle = (int64_t)(atof(argv[++i]) * 1e9);
        else {
            fprintf(stderr, "usage: corio-idle [-l ADDR] [-t THREADS] [--pin] [--idle-timeout SEC]\n");
            return 2;
        }
    }
    if (o.threads == 0 || o.threads > 256 || corio_addr_parse(&S.addr, listen) < 0) {
        fprintf(stderr, "corio-idle: bad arguments\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the loops' threads inherit it */
    signal(SIGPIPE, SIG_IGN);
    corio_mt *mt;
    int r = corio_mt_start(&mt, &o);
    if (r < 0) {
        fprintf(stderr, "corio-idle: %s\n", corio_strerror(r));
        return 1;
    }
    char name[CORIO_ADDR_STRLEN];
    corio_addr_format(&S.addr, name, sizeof name);
    printf("listening on %s\n", name);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    corio_mt_shutdown(mt, corio_after(5 * CORIO_SEC));
    return corio_mt_join(mt) < 0;
}
