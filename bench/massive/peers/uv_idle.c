/* A keep-alive HTTP server on libuv, written the way a careful libuv user
 * would: one uv_tcp_t per connection inside a small struct, one shared
 * read buffer (no buffer per idle connection), uv_try_write for the
 * answer.  SO_REUSEPORT, so several processes can share the port.
 *
 *   uv-idle PORT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n"
                               "Hello, World!";
static char rbuf[65536];

struct conn {
    uv_tcp_t tcp;
    unsigned match;
};

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
    (void)h, (void)size;
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = (struct conn *)s;
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char ch = b->base[i];
        c->match = (ch == "\r\n\r\n"[c->match]) ? c->match + 1 : (ch == '\r' ? 1 : 0);
        if (c->match == 4) {
            c->match = 0;
            uv_buf_t out = uv_buf_init((char *)response, sizeof response - 1);
            if (uv_try_write(s, &out, 1) != (int)(sizeof response - 1)) {
                uv_close((uv_handle_t *)s, on_close);
                return;
            }
        }
    }
}

static void on_conn(uv_stream_t *l, int status)
{
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    uv_tcp_init(l->loop, &c->tcp);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t srv;
    uv_tcp_init_ex(loop, &srv, AF_INET);
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&srv, &fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 8080, &a);
    if (uv_tcp_bind(&srv, (struct sockaddr *)&a, 0) || uv_listen((uv_stream_t *)&srv, 65535, on_conn)) {
        fprintf(stderr, "uv-idle: cannot listen\n");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
