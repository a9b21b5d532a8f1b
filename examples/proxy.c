/* A TCP proxy: every connection to LISTEN is relayed to UPSTREAM, both ways,
 * half-closes included.  Two coroutines per connection, one per direction.
 *   Usage: proxy LISTEN UPSTREAM     (e.g. proxy 127.0.0.1:8080 example.com:80) */
#include <stdio.h>
#include <sys/socket.h>

#include "corio.h"

static const char *upstream;
#define IDLE corio_after(300 * CORIO_SEC)

/* Copies from -> to until end of stream, then half-closes `to`.  On an
 * error both sockets are shut down, which ends the other direction too. */
static void *pump(void *arg)
{
    corio_stream **pair = arg, *from = pair[0], *to = pair[1];
    for (;;) {
        const void *data;
        ssize_t n = corio_stream_peek(from, 1, &data, IDLE);
        if (n == -CORIO_EEOF && corio_stream_shutdown(to, IDLE) == 0)
            return NULL; /* the sender is done, and the receiver knows */
        if (n < 0 || corio_stream_write(to, data, (size_t)n, IDLE) < 0)
            break;
        corio_stream_consume(from, (size_t)n);
        if (corio_stream_flush(to, IDLE) < 0)
            break;
    }
    shutdown(corio_stream_fd(from), SHUT_RDWR);
    shutdown(corio_stream_fd(to), SHUT_RDWR);
    return NULL;
}

static void *relay(void *arg)
{
    int cfd = (int)(intptr_t)arg;
    int ufd = corio_net_dial(upstream, NULL, corio_after(10 * CORIO_SEC));
    corio_stream *c = NULL, *u = NULL;
    corio_co *back;
    if (ufd < 0) {
        fprintf(stderr, "proxy: %s: %s\n", upstream, corio_strerror(ufd));
    } else if (corio_stream_open(&c, cfd, NULL) == 0 && corio_stream_open(&u, ufd, NULL) == 0) {
        /* One stream may be read by one coroutine while another writes it. */
        corio_stream *up[2] = {c, u}, *down[2] = {u, c};
        if (corio_spawn(corio_loop_current(), &back, pump, down, 0) == 0) {
            pump(up);
            corio_join(back, NULL, CORIO_FOREVER);
        }
    }
    if (c)
        corio_stream_close(c, corio_after(CORIO_SEC));
    else
        corio_close(cfd);
    if (u)
        corio_stream_close(u, corio_after(CORIO_SEC));
    else if (ufd >= 0)
        corio_close(ufd);
    return NULL;
}

static void *acceptor(void *arg)
{
    for (;;) {
        int fd = corio_listener_accept(arg, NULL, CORIO_FOREVER);
        if (fd < 0)
            return NULL;
        if (corio_spawn(corio_loop_current(), NULL, relay, (void *)(intptr_t)fd, 0) < 0)
            corio_close(fd);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: proxy LISTEN UPSTREAM\n");
        return 2;
    }
    upstream = argv[2];
    corio_loop *loop;
    corio_listener *l;
    int r = corio_loop_new(&loop, NULL);
    if (r == 0)
        r = corio_net_listen(&l, argv[1], NULL, CORIO_NOWAIT);
    if (r < 0) {
        fprintf(stderr, "proxy: %s: %s\n", argv[1], corio_strerror(r));
        return 1;
    }
    corio_spawn(loop, NULL, acceptor, l, 0);
    return corio_loop_run(loop, CORIO_RUN_DEFAULT) < 0;
}
