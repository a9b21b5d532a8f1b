/* The reference: a hand-written, single-threaded, edge-triggered epoll echo
 * server, as a careful C programmer writes one.  Each fd is registered once
 * (IN|OUT|RDHUP|ET); a readable fd is read until EAGAIN, or until a short
 * read when no hang-up was reported (edge-triggered epoll reports whatever
 * arrives later); output the socket does not take is kept and sent on
 * EPOLLOUT.   Usage: echo_epoll PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    char *out; /* bytes the socket did not take yet */
    size_t len, cap;
};

static struct conn *conns;
static size_t nconns;

static struct conn *conn_of(int fd)
{
    if ((size_t)fd >= nconns) {
        size_t n = (size_t)fd * 2 + 64;
        conns = realloc(conns, n * sizeof *conns);
        memset(conns + nconns, 0, (n - nconns) * sizeof *conns);
        nconns = n;
    }
    return &conns[fd];
}

static void drop(int fd)
{
    struct conn *c = conn_of(fd);
    free(c->out);
    memset(c, 0, sizeof *c);
    close(fd);
}

/* Sends what is pending; returns -1 if the connection died. */
static int flush_out(int fd, struct conn *c)
{
    while (c->len) {
        ssize_t w = send(fd, c->out, c->len, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        memmove(c->out, c->out + w, c->len - (size_t)w);
        c->len -= (size_t)w;
    }
    return 0;
}

static int echo(int fd, struct conn *c, const char *p, size_t n)
{
    if (c->len == 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN)
            return -1;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (n) {
        if (c->len + n > c->cap) {
            c->cap = (c->len + n) * 2;
            c->out = realloc(c->out, c->cap);
        }
        memcpy(c->out + c->len, p, n);
        c->len += n;
    }
    return 0;
}

static void on_event(int fd, uint32_t ev)
{
    static char buf[16384];
    struct conn *c = conn_of(fd);
    if ((ev & EPOLLOUT) && flush_out(fd, c) < 0) {
        drop(fd);
        return;
    }
    if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    bool hup = ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (echo(fd, c, buf, (size_t)n) < 0)
                break;
            if ((size_t)n < sizeof buf && !hup)
                return; /* drained: a later arrival raises a new edge */
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            return;
        break; /* 0: end of stream; or an error */
    }
    drop(fd);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 7001),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* inherited */
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, SOMAXCONN) < 0) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    static struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != lfd) {
                on_event(fd, evs[i].events);
                continue;
            }
            int c;
            while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                struct epoll_event ce = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                         .data.fd = c};
                conn_of(c);
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
            }
        }
    }
}
