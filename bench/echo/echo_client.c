/* The load: CONNS connections to 127.0.0.1:PORT, each sending a SIZE-byte
 * message and waiting for its echo before the next (ping-pong), for
 * SECONDS after a short warm-up.  Single-threaded, edge-triggered epoll.
 * Every echoed byte is checked.  Prints "msgs_per_sec N total M" (M:
 * every echo, the warm-up included).
 *   Usage: echo_client PORT CONNS SECONDS SIZE */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct conn {
    int fd;
    size_t got; /* bytes of the current echo received */
    unsigned char tag;
    double last; /* when its last echo completed */
};

static int send_msg(struct conn *c, const char *msg, size_t size)
{
    char m[4096];
    memcpy(m, msg, size);
    m[0] = (char)++c->tag;
    ssize_t w = send(c->fd, m, size, MSG_NOSIGNAL);
    return w == (ssize_t)size ? 0 : -1; /* a small message always fits */
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: echo_client PORT CONNS SECONDS SIZE\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    double secs = atof(argv[3]);
    size_t size = (size_t)atoi(argv[4]);
    if (size < 1 || size > 4096)
        return 2;
    static char msg[4096], buf[65536];
    for (size_t i = 0; i < size; i++)
        msg[i] = (char)('a' + i % 26);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct conn *cs = calloc((size_t)n, sizeof *cs);
    int ep = epoll_create1(0), one = 1;
    for (int i = 0; i < n; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof a) < 0) {
            perror("connect");
            return 1;
        }
        struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
    }
    for (int i = 0; i < n; i++)
        if (send_msg(&cs[i], msg, size) < 0)
            return 1;
    static struct epoll_event evs[1024];
    double t0 = now(), warm = t0 + 0.2, end = warm + secs;
    long long count = 0, counted = 0;
    for (;;) {
        int k = epoll_wait(ep, evs, 1024, 100);
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            for (;;) {
                ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    fprintf(stderr, "connection lost\n");
                    return 1;
                }
                if (c->got + (size_t)r > size) {
                    fprintf(stderr, "echo too long\n");
                    return 1;
                }
                for (ssize_t j = 0; j < r; j++) {
                    size_t at = c->got + (size_t)j;
                    if (buf[j] != (at == 0 ? (char)c->tag : msg[at])) {
                        fprintf(stderr, "wrong echo\n");
                        return 1;
                    }
                }
                c->got += (size_t)r;
                if (c->got == size) {
                    c->got = 0;
                    c->last = now();
                    count++;
                    if (send_msg(c, msg, size) < 0)
                        return 1;
                }
            }
        }
        double t = now();
        if (t >= warm && counted == 0 && count > 0) {
            counted = count; /* messages before the warm-up ended */
            warm = t;
            end = t + secs;
        }
        if (t >= end)
            break;
    }
    double t = now(), took = t - warm;
    int stalled = 0; /* no echo for half a second or more: a lost wakeup somewhere */
    for (int i = 0; i < n; i++)
        stalled += cs[i].last < t - 0.5;
    printf("msgs_per_sec %.0f total %lld stalled %d\n", (double)(count - counted) / took, count,
           stalled);
    return 0;
}
