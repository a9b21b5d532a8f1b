/* The echo server on corio streams: one coroutine per connection, reading
 * top to bottom.  What is buffered is echoed with one write once nothing
 * more is buffered.   Usage: echo_corio PORT */
#include <stdio.h>
#include <stdlib.h>

#include "corio.h"

static void *serve(void *arg)
{
    corio_stream *s;
    if (corio_stream_open(&s, (int)(intptr_t)arg, NULL) < 0) {
        corio_close((int)(intptr_t)arg);
        return NULL;
    }
    for (;;) {
        const void *v;
        ssize_t n = corio_stream_peek(s, 1, &v, CORIO_FOREVER); /* all that is buffered */
        if (n <= 0 || corio_stream_write(s, v, (size_t)n, CORIO_FOREVER) < 0)
            break;
        corio_stream_consume(s, (size_t)n);
        if (corio_stream_flush(s, CORIO_FOREVER) < 0)
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
        if (fd >= 0 && corio_spawn(corio_loop_current(), NULL, serve, (void *)(intptr_t)fd, 0) < 0)
            corio_close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 1 ? argv[1] : "7002");
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
