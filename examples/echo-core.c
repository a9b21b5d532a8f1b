/* A TCP echo server on corio's core calls: one coroutine per connection,
 * code that reads top to bottom.   Usage: echo-core [port] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "corio.h"

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    for (;;) {
        /* Parks only if nothing is buffered; gives up on an idle peer. */
        ssize_t n = corio_read(fd, buf, sizeof buf, corio_after(60 * CORIO_SEC));
        if (n <= 0)
            break; /* 0: the peer closed; < 0: -ETIMEDOUT, -ECONNRESET, ... */
        if (corio_write_all(fd, buf, (size_t)n, NULL, corio_after(10 * CORIO_SEC)) < 0)
            break;
    }
    corio_close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = corio_accept(lfd, NULL, NULL, CORIO_FOREVER);
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", corio_strerror(fd));
            continue;
        }
        if (corio_spawn(corio_loop_current(), NULL, serve, (void *)(intptr_t)fd, 0) < 0)
            corio_close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 7000),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1024) < 0) {
        perror("listen");
        return 1;
    }
    corio_loop *loop;
    int r = corio_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "corio_loop_new: %s\n", corio_strerror(r));
        return 1;
    }
    corio_spawn(loop, NULL, acceptor, (void *)(intptr_t)lfd, 0);
    return corio_loop_run(loop, CORIO_RUN_DEFAULT) < 0;
}
