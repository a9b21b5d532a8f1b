/* corio-http end to end: the server runs in-process on its own loop
 * thread (port 0), and the tests speak raw HTTP to it over loopback with
 * blocking sockets.  Malformed requests, every limit, pipelining order,
 * chunked bodies, HEAD, keep-alive and close, the timeouts, static files,
 * and a graceful shutdown with requests in flight. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "../apps/http/server.h"
#include "test_http_client.h"

static void config(struct http_config *cfg)
{
    http_config_defaults(cfg);
    cfg->listen = "127.0.0.1:0";
    cfg->threads = 1; /* one loop (test_http_idle.c runs two) */
    cfg->quiet = true;
}

static http_server *start(const struct http_config *cfg, int *port)
{
    http_server *srv;
    int r = http_server_start(&srv, cfg);
    if (r < 0)
        test_fail(__FILE__, __LINE__, "http_server_start: %s", corio_strerror(r));
    *port = http_server_port(srv);
    CHECK(*port > 0);
    return srv;
}

static struct http_counters finish(http_server *srv)
{
    struct http_counters c;
    http_server_stop(srv);
    CHECK_EQ(http_server_wait(srv, &c, NULL), 0);
    return c;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct client cl, cl2, cl3; /* 256 KiB each: not on the stack */
static struct response rs;

TEST(http_server_routes)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&cl, port);
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "Hello, World!") == 0);
    CHECK(has_header(&rs, "\r\nServer: corio\r\n"));
    CHECK(has_header(&rs, "\r\nContent-Type: text/plain\r\n"));
    CHECK(has_header(&rs, "\r\nContent-Length: 13\r\n"));
    CHECK(!has_header(&rs, "Connection:"));
    /* "Date: Sun, 06 Nov 1994 08:49:37 GMT" */
    const char *d = strstr(rs.head, "\r\nDate: ");
    CHECK(d && d[11] == ',' && strncmp(d + 33, " GMT\r\n", 6) == 0);
    client_send(&cl, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "{\"message\":\"Hello, World!\"}") == 0);
    CHECK(has_header(&rs, "Content-Type: application/json"));
    /* HEAD: the same length announced, no body: the next response follows
     * right after the head. */
    client_send(&cl, "HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, true), 200);
    CHECK(has_header(&rs, "Content-Length: 13\r\n"));
    CHECK_EQ(client_response(&cl, &rs, false), 404);
    client_send(&cl, "DELETE /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 405);
    client_send(&cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\n"
                     "Content-Length: 11\r\n\r\nhello world");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "hello world") == 0);
    CHECK(has_header(&rs, "Content-Type: text/x-test\r\n"));
    client_close(&cl);
    struct http_counters c = finish(srv);
    CHECK_EQ(c.requests, 6);
    CHECK_EQ(c.status_2xx, 4);
    CHECK_EQ(c.status_4xx, 2);
}

/* Fifty pipelined requests of all kinds in one write: fifty responses in
 * order, sent in one or two writes. */
TEST(http_server_pipelining)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&cl, port);
    static char req[32768];
    size_t n = 0;
    for (int i = 0; i < 50; i++) {
        if (i % 3 == 0)
            n += (size_t)sprintf(req + n, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        else if (i % 3 == 1)
            n += (size_t)sprintf(req + n, "HEAD /json HTTP/1.1\r\nHost: t\r\n\r\n");
        else
            n += (size_t)sprintf(req + n, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nmsg%03d", i);
    }
    client_send_n(&cl, req, n);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(client_response(&cl, &rs, i % 3 == 1), 200);
        if (i % 3 == 0)
            CHECK(strcmp(rs.body, "Hello, World!") == 0);
        if (i % 3 == 1)
            CHECK(has_header(&rs, "Content-Length: 27\r\n"));
        if (i % 3 == 2) {
            char want[8];
            sprintf(want, "msg%03d", i);
            CHECK(strcmp(rs.body, want) == 0);
        }
    }
    CHECK_EQ(cl.len, 0);
    client_close(&cl);
    struct http_counters c = finish(srv);
    CHECK_EQ(c.requests, 50);
    CHECK(c.batches >= 1 && c.batches <= 2);
}

/* Chunked bodies, fed a few bytes at a time, with extensions and
 * trailers, followed by a pipelined request. */
TEST(http_server_chunked)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&cl, port);
    const char *req = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5;name=value\r\nhello\r\n1\r\n \r\n6\r\nchunks\r\n0\r\nX-Trailer: yes\r\n\r\n"
                      "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";
    for (size_t i = 0, n = strlen(req); i < n; i += 7)
        client_send_n(&cl, req + i, n - i < 7 ? n - i : 7);
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "hello chunks") == 0);
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "Hello, World!") == 0);
    /* A bigger one, over the stream's buffer size. */
    static char big[200000];
    size_t n = (size_t)sprintf(big, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 10; i++) {
        n += (size_t)sprintf(big + n, "1f40\r\n"); /* 8000 bytes */
        memset(big + n, 'a' + i, 8000);
        n += 8000;
        n += (size_t)sprintf(big + n, "\r\n");
    }
    n += (size_t)sprintf(big + n, "0\r\n\r\n");
    client_send_n(&cl, big, n);
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK_EQ(rs.body_len, 80000);
    CHECK(rs.body[0] == 'a' && rs.body[79999] == 'j');
    client_close(&cl);
    finish(srv);
}

/* A body that arrives later, and Expect: 100-continue. */
TEST(http_server_body_later)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&cl, port);
    client_send(&cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 100);
    client_send(&cl, "01234");
    client_send(&cl, "56789");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "0123456789") == 0);
    /* Without Expect, no 100; a body far over the stream's buffer. */
    static char big[300000];
    int h = sprintf(big, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    for (int i = 0; i < 100000; i++)
        big[h + i] = (char)('0' + i % 10);
    client_send_n(&cl, big, (size_t)h + 100000);
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK_EQ(rs.body_len, 100000);
    CHECK(memcmp(rs.body, big + h, 100000) == 0);
    client_close(&cl);
    finish(srv);
}

/* Sends req on a fresh connection; expects status, then the close. */
static void refused(int port, const char *req, size_t n, int status)
{
    client_open(&cl, port);
    client_send_n(&cl, req, n);
    int got = client_response(&cl, &rs, false);
    if (got != status)
        test_fail(__FILE__, __LINE__, "%.40s...: %d, want %d", req, got, status);
    CHECK(has_header(&rs, "\r\nConnection: close\r\n"));
    CHECK(client_eof(&cl));
    client_close(&cl);
}

TEST(http_server_limits)
{
    struct http_config cfg;
    config(&cfg);
    cfg.limits = (struct http_limits){.max_line = 200, .max_head = 1000, .max_headers = 8};
    cfg.max_body = 1000;
    int port;
    http_server *srv = start(&cfg, &port);
    static char req[8192];
    /* Request line. */
    int n = sprintf(req, "GET /%0250d HTTP/1.1\r\nHost: t\r\n\r\n", 0);
    refused(port, req, (size_t)n, 414);
    /* Head size: the refusal comes before the head ends. */
    n = sprintf(req, "GET / HTTP/1.1\r\nHost: t\r\nX: %01100d", 0);
    refused(port, req, (size_t)n, 431);
    /* Header count. */
    n = sprintf(req, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 8; i++)
        n += sprintf(req + n, "X-%d: y\r\n", i);
    n += sprintf(req + n, "\r\n");
    refused(port, req, (size_t)n, 431);
    /* Body, announced and chunked; the refusal comes before the body. */
    n = sprintf(req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n");
    refused(port, req, (size_t)n, 413);
    n = sprintf(req, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "200\r\n%0512d\r\n200\r\n%0512d\r\n", 0, 0);
    refused(port, req, (size_t)n, 413);
    /* Exactly at the limits: fine. */
    client_open(&cl, port);
    n = sprintf(req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n%01000d", 7);
    client_send_n(&cl, req, (size_t)n);
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK_EQ(rs.body_len, 1000);
    client_close(&cl);
    finish(srv);
}

/* Each smuggling attempt is refused, and nothing after it is answered. */
TEST(http_server_smuggling)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n"
         "GET /json HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 40\r\n\r\nabcd", 400},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5 x\r\nhello\r\n0\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nhello\r\n0\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nX: y\r\n z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
        {"GET / HTTP/1.1\nHost: t\n\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(port, cases[i].req, strlen(cases[i].req), cases[i].status);
    struct http_counters c = finish(srv);
    CHECK_EQ(c.requests, sizeof cases / sizeof cases[0]); /* the refusals, and nothing else */
    CHECK_EQ(c.status_2xx, 0);
}

TEST(http_server_keep_alive_and_close)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    /* Connection: close is honoured, and what follows it is not answered. */
    client_open(&cl, port);
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                     "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(has_header(&rs, "\r\nConnection: close\r\n"));
    CHECK(client_eof(&cl));
    client_close(&cl);
    /* HTTP/1.0 closes by default... */
    client_open(&cl, port);
    client_send(&cl, "GET /json HTTP/1.0\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(has_header(&rs, "\r\nConnection: close\r\n"));
    CHECK(client_eof(&cl));
    client_close(&cl);
    /* ... and keeps the connection when asked to. */
    client_open(&cl, port);
    for (int i = 0; i < 3; i++) {
        client_send(&cl, "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        CHECK_EQ(client_response(&cl, &rs, false), 200);
        CHECK(has_header(&rs, "\r\nConnection: keep-alive\r\n"));
    }
    client_close(&cl);
    /* Many requests, one at a time, on one connection.  It parks between
     * them unless the next request is already there when it looks, which
     * a quick client on the other core can make true every time; so the
     * connection is held open, silent, until the server stops: after the
     * last response nothing runs on the server's loop before its look
     * finds nothing and the connection parks. */
    client_open(&cl, port);
    for (int i = 0; i < 100; i++) {
        client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ(client_response(&cl, &rs, false), 200);
    }
    struct http_counters c = finish(srv);
    CHECK(client_eof(&cl)); /* the shutdown closed the parked connection */
    client_close(&cl);
    CHECK_EQ(c.requests, 105);
    CHECK(c.parks >= 1);
}

TEST(http_server_timeouts)
{
    struct http_config cfg;
    config(&cfg);
    cfg.idle_timeout = 200 * CORIO_MSEC;
    cfg.header_timeout = 200 * CORIO_MSEC;
    int port;
    http_server *srv = start(&cfg, &port);
    /* Idle after a response: closed after about idle_timeout. */
    client_open(&cl, port);
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    double t0 = now_s();
    CHECK(client_eof(&cl));
    double took = now_s() - t0;
    CHECK(took > 0.15 && took < 2.0);
    client_close(&cl);
    /* Never a byte: closed too. */
    client_open(&cl, port);
    t0 = now_s();
    CHECK(client_eof(&cl));
    took = now_s() - t0;
    CHECK(took > 0.15 && took < 2.0);
    client_close(&cl);
    /* Headers too slow: 408. */
    client_open(&cl, port);
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost:");
    t0 = now_s();
    CHECK_EQ(client_response(&cl, &rs, false), 408);
    took = now_s() - t0;
    CHECK(took > 0.15 && took < 2.0);
    CHECK(client_eof(&cl));
    client_close(&cl);
    struct http_counters c = finish(srv);
    CHECK(c.timeouts >= 2);
}

/* Stop with one connection idle, one in the middle of a body, one with a
 * partial head that never completes: the idle one is closed at once, the
 * body is answered (with Connection: close), the stuck one is dropped at
 * the shutdown deadline, and the server ends. */
TEST(http_server_graceful_shutdown)
{
    struct http_config cfg;
    config(&cfg);
    cfg.shutdown_timeout = 500 * CORIO_MSEC;
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&cl, port);
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200); /* now idle */
    client_open(&cl2, port);
    client_send(&cl2, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
                      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    CHECK_EQ(client_response(&cl2, &rs, false), 200); /* the first; the second waits for its body */
    client_open(&cl3, port);
    client_send(&cl3, "GET /json HTTP/1.1\r\nHo");
    /* Make sure the server has seen cl3's bytes: a round trip on cl after. */
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);

    double t0 = now_s();
    http_server_stop(srv);
    CHECK(client_eof(&cl)); /* idle: closed */
    client_send(&cl2, "56789");
    CHECK_EQ(client_response(&cl2, &rs, false), 200); /* in flight: answered */
    CHECK(strcmp(rs.body, "0123456789") == 0);
    CHECK(has_header(&rs, "\r\nConnection: close\r\n"));
    CHECK(client_eof(&cl2));
    CHECK(client_eof(&cl3)); /* stuck: dropped at the deadline */
    struct http_counters c;
    CHECK_EQ(http_server_wait(srv, &c, NULL), 0);
    double took = now_s() - t0;
    CHECK(took > 0.3 && took < 3.0);
    CHECK_EQ(c.requests, 4);
    client_close(&cl);
    client_close(&cl2);
    client_close(&cl3);
    /* Nobody listens any more. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno == ECONNREFUSED);
    close(fd);
}

/* Garbage of every kind: refused or dropped, never a crash; the server
 * answers a good request afterwards. */
TEST(http_server_garbage)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    unsigned seed = 12345;
    static char junk[4096];
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + (rand_r(&seed) % sizeof junk);
        int style = round % 3;
        for (size_t i = 0; i < n; i++)
            junk[i] = style == 0 ? (char)rand_r(&seed)
                      : style == 1 ? "GET /\r\n: HTTP1.x"[rand_r(&seed) % 16]
                                   : "0123456789abcdef;\r\n"[rand_r(&seed) % 19];
        client_open(&cl, port);
        if (style == 2)
            client_send(&cl, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        client_send_n(&cl, junk, n);
        shutdown(cl.fd, SHUT_WR); /* so a request waiting for more ends */
        int st = client_response(&cl, &rs, false);
        CHECK(st == -1 || (st >= 400 && st < 600) || st == 200);
        client_close(&cl);
    }
    client_open(&cl, port);
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    client_close(&cl);
    finish(srv);
}

/* ---- Static files ---- */

static void write_file(const char *path, const char *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, data, n), (ssize_t)n);
    close(fd);
}

TEST(http_server_static)
{
    char dir[] = "/tmp/corio-http-test-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/hello.txt", dir);
    write_file(path, "static hello\n", 13);
    snprintf(path, sizeof path, "%s/sub", dir);
    CHECK_EQ(mkdir(path, 0755), 0);
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 23);
    snprintf(path, sizeof path, "%s/sub/index.html", dir);
    write_file(path, big, sizeof big);
    snprintf(path, sizeof path, "%s/escape", dir);
    CHECK_EQ(symlink("/etc", path), 0);

    struct http_config cfg;
    config(&cfg);
    cfg.static_dir = dir;
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&cl, port);
    client_send(&cl, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "static hello\n") == 0);
    CHECK(has_header(&rs, "Content-Type: text/plain"));
    client_send(&cl, "HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                     "GET /sub/ HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, true), 200);
    CHECK(has_header(&rs, "Content-Length: 13\r\n"));
    /* A megabyte through sendfile, read in pieces by the client. */
    char *end;
    while (!(end = memmem(cl.buf, cl.len, "\r\n\r\n", 4)))
        CHECK(client_fill(&cl) > 0);
    CHECK(strstr(cl.buf, "HTTP/1.1 200") == cl.buf);
    CHECK(strcasestr(cl.buf, "Content-Length: 1048576\r\n") != NULL);
    client_drop(&cl, (size_t)(end + 4 - cl.buf));
    size_t got = 0;
    bool same = true;
    while (got < sizeof big) {
        if (cl.len == 0)
            CHECK(client_fill(&cl) > 0);
        size_t k = cl.len < sizeof big - got ? cl.len : sizeof big - got;
        same &= memcmp(cl.buf, big + got, k) == 0;
        got += k;
        client_drop(&cl, k);
    }
    CHECK(same);
    static const struct {
        const char *path;
        int status;
    } cases[] = {
        {"/missing", 404}, {"/sub", 404}, {"/../etc/passwd", 403}, {"/sub/../../x", 403},
        {"/%2e%2e/etc/passwd", 403}, {"/escape/passwd", 404}, {"/bad%zz", 400}, {"/a%00b", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", cases[i].path);
        client_send(&cl, req);
        int st = client_response(&cl, &rs, false);
        if (st != cases[i].status)
            test_fail(__FILE__, __LINE__, "%s: %d, want %d", cases[i].path, st, cases[i].status);
    }
    client_close(&cl);
    finish(srv);
    snprintf(path, sizeof path, "%s/escape", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/sub/index.html", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/sub", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/hello.txt", dir);
    unlink(path);
    rmdir(dir);
}

/* A few hundred connections parked between requests, all answered again. */
TEST(http_server_many_parked)
{
    struct http_config cfg;
    config(&cfg);
    int port;
    http_server *srv = start(&cfg, &port);
    enum { N = 300 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        client_open(&cl, port);
        fds[i] = cl.fd;
        client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ(client_response(&cl, &rs, false), 200);
    }
    for (int i = 0; i < N; i++) {
        cl.fd = fds[i];
        cl.len = 0;
        client_send(&cl, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    for (int i = 0; i < N; i++) {
        cl.fd = fds[i];
        cl.len = 0;
        CHECK_EQ(client_response(&cl, &rs, false), 200);
        close(fds[i]);
    }
    struct http_counters c = finish(srv);
    CHECK_EQ(c.requests, 2 * N);
    CHECK_EQ(c.accepted, N);
    CHECK(c.parks >= N);
}
