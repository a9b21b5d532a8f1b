/* The reference for `make bench-peers`: the fastest plain way to do what
 * corio-http does for /plaintext, by hand, with no runtime at all.
 *
 * One thread, one edge-triggered epoll set; each connection is registered
 * once for input, output and hang-up and never modified.  On input: read
 * until a short read (edge-triggered epoll reports anything later), parse
 * every complete request with corio-http's own parser, append a prebuilt
 * response (the Date in it refreshed once a second) for each, then one
 * write for the whole batch.  Output the socket refuses waits for EPOLLOUT.
 * No allocation per request; a connection's buffers live in a table
 * indexed by its fd.
 *
 *   epoll-ref [PORT]     (0 or nothing: a free port, printed on stdout) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../apps/http/parser.h"

#define IN_SIZE 16384
#define OUT_SIZE 65536
#define MAX_FDS 65536

struct conn {
    size_t in_len, out_off, out_len;
    char in[IN_SIZE];
    char out[OUT_SIZE];
};

static struct conn *conns[MAX_FDS];
static char response[256], notfound[256];
static size_t response_len, notfound_len;
static time_t date_sec;
static const struct http_limits lim = {.max_line = 8192, .max_head = IN_SIZE, .max_headers = 64};

static void date_update(void)
{
    time_t now = time(NULL);
    if (now == date_sec)
        return;
    date_sec = now;
    struct tm tm;
    gmtime_r(&now, &tm);
    char date[64];
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    response_len = (size_t)snprintf(response, sizeof response,
                                    "HTTP/1.1 200 OK\r\nServer: epoll\r\nDate: %s\r\n"
                                    "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                                    "Hello, World!", date);
    notfound_len = (size_t)snprintf(notfound, sizeof notfound,
                                    "HTTP/1.1 404 Not Found\r\nServer: epoll\r\nDate: %s\r\n"
                                    "Content-Length: 0\r\nConnection: close\r\n\r\n", date);
}

static void drop(int fd)
{
    free(conns[fd]);
    conns[fd] = NULL;
    close(fd);
}

/* Writes what is pending; 0, or -1 when the connection is gone. */
static int flush(int fd, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Answers every complete request in the input; -1 to close. */
static int answer(struct conn *c, bool *close_after)
{
    size_t off = 0;
    while (off < c->in_len) {
        struct http_request req;
        struct http_header hdrs[64];
        int hl = http_parse_request(c->in + off, c->in_len - off, 0, &req, hdrs, &lim);
        if (hl == HTTP_MORE)
            break;
        if (hl < 0 || req.content_length > 0 || req.chunked)
            return -1; /* not this benchmark's business */
        bool ok = req.path_len == 10 && memcmp(req.path, "/plaintext", 10) == 0;
        const char *r = ok ? response : notfound;
        size_t n = ok ? response_len : notfound_len;
        if (c->out_len + n > OUT_SIZE)
            return -1;
        memcpy(c->out + c->out_len, r, n);
        c->out_len += n;
        off += (size_t)hl;
        if (!ok || !req.keep_alive) {
            *close_after = true;
            off = c->in_len;
            break;
        }
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static void on_input(int fd)
{
    struct conn *c = conns[fd];
    for (;;) {
        size_t room = IN_SIZE - c->in_len;
        ssize_t n = read(fd, c->in + c->in_len, room);
        if (n == 0 || (n < 0 && errno != EAGAIN) || (n < 0 && room == 0)) {
            drop(fd);
            return;
        }
        if (n < 0)
            break;
        c->in_len += (size_t)n;
        bool close_after = false;
        if (answer(c, &close_after) < 0 || flush(fd, c) < 0 || (close_after && c->out_len == 0)) {
            drop(fd);
            return;
        }
        if ((size_t)n < room)
            break; /* a short read: drained; epoll reports what comes next */
    }
}

static void on_accept(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (fd >= MAX_FDS || !(conns[fd] = calloc(1, sizeof(struct conn)))) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        on_input(fd); /* data may have come with the handshake */
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int port = argc > 1 ? atoi(argv[1]) : 0, one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
        perror("epoll-ref");
        return 1;
    }
    printf("epoll-ref listening on http://127.0.0.1:%d/\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.fd = lfd}, ev[1024];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    date_update();
    for (;;) {
        int n = epoll_wait(ep, ev, 1024, 1000);
        date_update();
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == lfd) {
                on_accept(ep, lfd);
                continue;
            }
            if (!conns[fd])
                continue;
            if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                on_input(fd);
            if (conns[fd] && (ev[i].events & EPOLLOUT) && conns[fd]->out_len && flush(fd, conns[fd]) < 0)
                drop(fd);
        }
    }
}
