/* A small blocking HTTP client for the tests of corio-http and corio-load:
 * plain sockets with receive timeouts, so a test talking to a server on
 * another thread or in another process never touches that server's loop
 * (nor corio's allocator, which the runner counts per test). */
#ifndef CORIO_TEST_HTTP_CLIENT_H
#define CORIO_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "test.h"

struct client {
    int fd;
    size_t len;
    char buf[1 << 18];
};

struct response {
    int status;
    char head[4096];
    char body[1 << 17];
    size_t body_len;
};

static inline void client_open(struct client *c, int port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c->fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
}

static inline void client_close(struct client *c)
{
    close(c->fd);
    c->fd = -1;
}

static inline void client_send_n(struct client *c, const void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(c->fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
        CHECK(w > 0);
        done += (size_t)w;
    }
}

static inline void client_send(struct client *c, const char *s)
{
    client_send_n(c, s, strlen(s));
}

/* Reads more into the buffer: the count, 0 at end of stream, -1 on error
 * (a timeout: the server said nothing for 5 s). */
static inline ssize_t client_fill(struct client *c)
{
    CHECK(c->len < sizeof c->buf);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n < 0 ? -1 : n;
}

static inline void client_drop(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads one response (a Content-Length body, or none for head_only).
 * Returns its status, or -1 when the connection ended or went silent. */
static inline int client_response(struct client *c, struct response *r, bool head_only)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (client_fill(c) <= 0)
            return -1;
    size_t hl = (size_t)(end + 4 - c->buf);
    CHECK(hl < sizeof r->head);
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    CHECK(sscanf(r->head, "HTTP/1.1 %d", &r->status) == 1);
    size_t len = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    if (cl)
        len = strtoul(cl + 18, NULL, 10);
    client_drop(c, hl);
    if (head_only || r->status == 100)
        len = 0;
    CHECK(len < sizeof r->body);
    while (c->len < len)
        if (client_fill(c) <= 0)
            return -1;
    memcpy(r->body, c->buf, len);
    r->body[len] = 0;
    r->body_len = len;
    client_drop(c, len);
    return r->status;
}

/* True if the server closes the connection (after what is buffered). */
static inline bool client_eof(struct client *c)
{
    char tmp[4096];
    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false; /* a timeout: still open */
    }
}

static inline bool has_header(const struct response *r, const char *line)
{
    return strcasestr(r->head, line) != NULL;
}

#endif
