/* The echo server on corio streams.   Usage: echo_corio PORT [park]
 *
 * Default: one coroutine per connection, reading top to bottom.
 * "park": stackless while idle.  A connection with nothing to read is
 * parked (corio_park: its fd slot and a small record, no coroutine, no
 * stack); when bytes arrive a pooled coroutine runs on_ready(), so a
 * thousand connections share a few hot stacks instead of each keeping its
 * own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio.h"

/* Echoes what has arrived.  0 once nothing more is there (-EAGAIN with
 * CORIO_NOWAIT), else the error or end of stream that ends the connection. */
static int echo(corio_stream *s, int64_t deadline)
{
    for (;;) {
        const void *v;
        ssize_t n = corio_stream_peek(s, 1, &v, deadline); /* all that is buffered */
        if (n < 0)
            return n == -EAGAIN ? 0 : (int)n;
        if ((n = corio_stream_write(s, v, (size_t)n, CORIO_FOREVER)) < 0)
            return (int)n;
        corio_stream_consume(s, (size_t)n);
        int r = corio_stream_flush(s, CORIO_FOREVER);
        if (r < 0)
            return r;
    }
}

static void *serve(void *arg)
{
    corio_stream *s = arg;
    echo(s, CORIO_FOREVER);
    corio_stream_close(s, corio_after(CORIO_SEC));
    return NULL;
}

static void on_ready(int fd, void *data, int reason)
{
    corio_stream *s = data;
    if (reason > 0 && echo(s, CORIO_NOWAIT) == 0 &&
        corio_park(corio_loop_current(), fd, on_ready, s, CORIO_FOREVER) == 0)
        return;
    corio_stream_close(s, corio_after(CORIO_SEC));
}

static bool parking;

static void *acceptor(void *arg)
{
    corio_listener *l = arg;
    for (;;) {
        int fd = corio_listener_accept(l, NULL, CORIO_FOREVER);
        corio_stream *s;
        if (fd < 0 || corio_stream_open(&s, fd, NULL) < 0) {
            if (fd >= 0)
                corio_close(fd);
            continue;
        }
        int r = parking ? corio_park(corio_loop_current(), fd, on_ready, s, CORIO_FOREVER)
                        : corio_spawn(corio_loop_current(), NULL, serve, s, 0);
        if (r < 0)
            corio_stream_close(s, CORIO_NOWAIT);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 1 ? argv[1] : "7002");
    parking = argc > 2 && strcmp(argv[2], "park") == 0;
    corio_loop *loop;
    corio_listener *l;
    int r = corio_loop_new(&loop, NULL);
    if (r == 0)
        r = corio_net_listen(&l, addr, NULL, CORIO_NOWAIT);
    if (r < 0) {
        fprintf(stderr, "echo_corio: %s\n", corio_strerror(r));
        return 1;
    }
    corio_spawn(loop, NULL, acceptor, l, 0);
    return corio_loop_run(loop, CORIO_RUN_DEFAULT) < 0;
}
