/* A TCP echo server on corio streams: one coroutine per connection, code
 * that reads top to bottom, no buffer held while a client is idle.
 *   Usage: echo [ADDR]     (default 127.0.0.1:7000; also [::1]:7000, unix:/tmp/echo.sock) */
#include <stdio.h>

#include "corio.h"

static void *serve(void *arg)
{
    corio_stream *s;
    if (corio_stream_open(&s, (int)(intptr_t)arg, NULL) < 0) {
        corio_close((int)(intptr_t)arg);
        return NULL;
    }
    for (;;) {
        /* Whatever has arrived, without copying; parks while nothing has. */
        const void *data;
        ssize_t n = corio_stream_peek(s, 1, &data, corio_after(60 * CORIO_SEC));
        if (n <= 0)
            break; /* -CORIO_EEOF: the client closed; -ETIMEDOUT: it went quiet */
        if (corio_stream_write(s, data, (size_t)n, corio_after(10 * CORIO_SEC)) < 0)
            break;
        corio_stream_consume(s, (size_t)n);
        if (corio_stream_flush(s, corio_after(10 * CORIO_SEC)) < 0)
            break;
    }
    corio_stream_close(s, corio_after(CORIO_SEC));
    return NULL;
}

static void *acceptor(void *arg)
{
    corio_listener *l = arg;
    for (;;) {
        int fd = corio_listener_accept(l, NULL, CORIO_FOREVER);
        if (fd < 0)
            return NULL; /* the listener was closed */
        if (corio_spawn(corio_loop_current(), NULL, serve, (void *)(intptr_t)fd, 0) < 0)
            corio_close(fd);
    }
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7000";
    corio_loop *loop;
    corio_listener *l;
    int r = corio_loop_new(&loop, NULL);
    if (r == 0)
        r = corio_net_listen(&l, addr, NULL, CORIO_NOWAIT); /* numeric: no resolver */
    if (r < 0) {
        fprintf(stderr, "echo: %s: %s\n", addr, corio_strerror(r));
        return 1;
    }
    corio_spawn(loop, NULL, acceptor, l, 0);
    return corio_loop_run(loop, CORIO_RUN_DEFAULT) < 0;
}
