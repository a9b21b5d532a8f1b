/* corio-http's idle keep-alive connections: a parked connection holds
 * nothing of corio-http's own (no conn record, no stream), only corio's
 * fd slot and park record; the conns and streams lent to the connections
 * being served are reused, so the steady state allocates nothing; input
 * that is already buffered is served before a connection parks; and the
 * same on two loops at once (the runner's allocation counters are atomic).
 * The server runs in-process; the tests speak raw HTTP with blocking
 * sockets (test_http_client.h). */
#include <stdlib.h>

#include "../apps/http/server.h"
#include "test_http_client.h"

/* /gauges: the answering loop's own view of its connections. */
struct gauges {
    unsigned loop;
    size_t open, live, spare, parked;
};

static int route_gauges(http_exchange *x, const struct http_request *req, const char *body,
                        size_t len, void *data)
{
    struct http_loop_gauges g;
    http_exchange_gauges(x, &g);
    corio_park_stats ps;
    corio_park_stats_get(http_exchange_loop(x), &ps);
    char b[160];
    int n = snprintf(b, sizeof b, "loop=%u open=%zu live=%zu spare=%zu parked=%zu", g.loop, g.open,
                     g.live, g.spare, ps.parked);
    return http_respond(x, 200, "text/plain", b, (size_t)n);
}

static void config(struct http_config *cfg, unsigned threads)
{
    http_config_defaults(cfg);
    cfg->listen = "127.0.0.1:0";
    cfg->threads = threads;
    cfg->quiet = true;
    CHECK_EQ(http_config_route(cfg, "/gauges", route_gauges, NULL), 0);
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

static struct client cl, probe; /* 256 KiB each: not on the stack */
static struct response rs;
static unsigned asks; /* requests ask() made */

static const char plain[] = "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";

/* Asks the loop that serves `probe` for its gauges. */
static struct gauges ask(void)
{
    asks++;
    client_send(&probe, "GET /gauges HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&probe, &rs, false), 200);
    struct gauges g;
    CHECK(sscanf(rs.body, "loop=%u open=%zu live=%zu spare=%zu parked=%zu", &g.loop, &g.open,
                 &g.live, &g.spare, &g.parked) == 5);
    return g;
}

/* One request and its response on fd (cl's buffer is borrowed). */
static void request(int fd, const char *req)
{
    cl.fd = fd;
    cl.len = 0;
    client_send(&cl, req);
    CHECK_EQ(client_response(&cl, &rs, false), 200);
}

/* N connections answered once and parked: the loop holds a conn and a
 * stream only for the probe being answered, every other connection is a
 * parked fd, and corio's allocations grow by its fd slots and park
 * records alone (corio-http's conn and stream would add 160 bytes). */
TEST_TIMEOUT(http_idle_parked_holds_nothing, 60)
{
    struct http_config cfg;
    config(&cfg, 1);
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&probe, port);
    asks = 0;
    struct gauges g = ask();
    CHECK_EQ(g.open, 1);
    CHECK_EQ(g.live, 1);
    long long a0 = test_live_allocations();

    enum { N = 2000 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        client_open(&cl, port);
        fds[i] = cl.fd;
        request(fds[i], plain);
    }
    g = ask();
    long long a1 = test_live_allocations();
    CHECK_EQ(g.open, N + 1);
    CHECK_EQ(g.live, 1);   /* the probe, being answered */
    CHECK_EQ(g.parked, N); /* the others */
    CHECK(g.spare <= 2);
    long long per = (a1 - a0) / N;
    /* Two fds per connection here (the client's end too) in 32-byte slots,
     * 32 bytes of park record, and slab and table rounding. */
    if (per > 128)
        test_fail(__FILE__, __LINE__, "%lld bytes allocated per parked connection", per);

    /* Woken again, one after another: served, parked again, and nothing
     * allocated (the spare conn and stream go round). */
    for (int i = 0; i < N; i++)
        request(fds[i], "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    g = ask();
    long long a2 = test_live_allocations();
    CHECK_EQ(g.live, 1);
    CHECK_EQ(g.parked, N);
    CHECK(g.spare <= 2);
    if (a2 - a1 > 4096 || a1 - a2 > 4096)
        test_fail(__FILE__, __LINE__, "%lld bytes more after a round of wakeups", a2 - a1);

    /* Peers leaving: their parked fds wake with end of stream and close. */
    for (int i = 0; i < N / 2; i++)
        close(fds[i]);
    for (int tries = 0; (g = ask()).open > N / 2 + 1 && tries < 1000; tries++)
        (void)0; /* each round trip lets the loop run the wakeups */
    CHECK_EQ(g.open, N / 2 + 1);
    CHECK_EQ(g.parked, N / 2);
    CHECK_EQ(g.live, 1);

    client_close(&probe);
    http_server_stop(srv); /* the other half is parked: closed at once */
    struct http_counters c;
    CHECK_EQ(http_server_wait(srv, &c, NULL), 0);
    CHECK_EQ(c.accepted, N + 1);
    CHECK_EQ(c.requests, 2 * N + asks);
    CHECK_EQ(c.status_2xx, c.requests);
    CHECK(c.parks >= 2 * N);
    for (int i = N / 2; i < N; i++) {
        cl.fd = fds[i];
        cl.len = 0;
        CHECK(client_eof(&cl));
        close(fds[i]);
    }
}

/* A connection with part of a pipelined request buffered is not parked:
 * it answers what is complete, waits (holding its conn) for the rest, and
 * parks only once everything buffered has been answered. */
TEST(http_idle_serves_buffered_input_first)
{
    struct http_config cfg;
    config(&cfg, 1);
    int port;
    http_server *srv = start(&cfg, &port);
    client_open(&probe, port);
    client_open(&cl, port);
    client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\nGET /json HTTP/1.1\r\nHo");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strcmp(rs.body, "Hello, World!") == 0);
    struct gauges g = ask();
    CHECK_EQ(g.open, 2);
    CHECK_EQ(g.live, 2); /* the probe, and the half-read request */
    CHECK_EQ(g.parked, 0);
    client_send(&cl, "st: t\r\n\r\n");
    CHECK_EQ(client_response(&cl, &rs, false), 200);
    CHECK(strstr(rs.body, "Hello") != NULL && rs.body[0] == '{');
    g = ask();
    CHECK_EQ(g.live, 1);
    CHECK_EQ(g.parked, 1);
    /* Sixteen pipelined in one write: all answered, then parked. */
    char req[16 * sizeof plain];
    size_t len = 0;
    for (int i = 0; i < 16; i++, len += sizeof plain - 1)
        memcpy(req + len, plain, sizeof plain - 1);
    client_send_n(&cl, req, len);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(client_response(&cl, &rs, false), 200);
    g = ask();
    CHECK_EQ(g.live, 1);
    CHECK_EQ(g.parked, 1);
    client_close(&cl);
    client_close(&probe);
    http_server_stop(srv);
    struct http_counters c;
    CHECK_EQ(http_server_wait(srv, &c, NULL), 0);
    CHECK_EQ(c.requests, 2 + 16 + 3);
}

/* Two loops in one process, each with its own SO_REUSEPORT listener:
 * connections land on both, keep-alive and pipelining work on each, the
 * parked ones hold nothing, /stats gathers both loops, and a graceful
 * shutdown closes every parked connection and sums the counters. */
TEST_TIMEOUT(http_idle_two_loops, 60)
{
    struct http_config cfg;
    config(&cfg, 2);
    int port;
    http_server *srv = start(&cfg, &port);
    CHECK_EQ(http_server_loops(srv), 2);
    enum { N = 64 };
    static int fds[N];
    unsigned on[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        client_open(&probe, port);
        fds[i] = probe.fd;
        struct gauges g = ask(); /* the connection's first request */
        CHECK(g.loop < 2);
        CHECK(g.live >= 1);
        on[g.loop]++;
    }
    CHECK(on[0] > 0 && on[1] > 0); /* 2^-63 that the kernel puts all on one */
    /* Every connection, again, with two pipelined requests. */
    for (int i = 0; i < N; i++) {
        cl.fd = fds[i];
        cl.len = 0;
        client_send(&cl, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
                         "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ(client_response(&cl, &rs, false), 200);
        CHECK(strcmp(rs.body, "Hello, World!") == 0);
        CHECK_EQ(client_response(&cl, &rs, false), 200);
        CHECK(rs.body[0] == '{');
    }
    /* Each loop: its connections parked but the one asking. */
    for (int i = 0; i < N; i++) {
        probe.fd = fds[i];
        probe.len = 0;
        struct gauges g = ask();
        CHECK_EQ(g.live, 1);
        CHECK_EQ(g.open, on[g.loop]);
        CHECK_EQ(g.parked, on[g.loop] - 1);
    }
    probe.fd = fds[0];
    probe.len = 0;
    client_send(&probe, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ(client_response(&probe, &rs, false), 200);
    CHECK(rs.body[0] == '{');

    http_server_stop(srv);
    for (int i = 0; i < N; i++) {
        cl.fd = fds[i];
        cl.len = 0;
        CHECK(client_eof(&cl)); /* parked: closed by the shutdown */
        close(fds[i]);
    }
    struct http_counters c;
    CHECK_EQ(http_server_wait(srv, &c, NULL), 0);
    CHECK_EQ(c.accepted, N);
    CHECK_EQ(c.requests, N * 4 + 1);
    CHECK_EQ(c.status_2xx, N * 4 + 1);
    CHECK(c.parks >= 3 * N);
}

/* corio_stream_reset(), which lends one stream to many connections:
 * pending output gets its try on the old fd, buffered input is dropped,
 * and the stream starts afresh on the new fd. */
struct reset_ctx {
    int a, b, peer_a, peer_b;
};

static void *reset_body(void *p)
{
    struct reset_ctx *x = p;
    corio_stream *s;
    corio_stream_options o = {.keep_fd = true};
    CHECK_EQ(corio_stream_open(&s, x->a, &o), 0);
    const void *v;
    CHECK_EQ(corio_stream_peek(s, 3, &v, corio_after(CORIO_SEC)), 5); /* "hello" */
    CHECK_EQ(corio_stream_write(s, "to-a", 4, CORIO_FOREVER), 4);
    CHECK_EQ(corio_stream_reset(s, x->b), 0); /* "to-a" sent, "hello" dropped */
    CHECK_EQ(corio_stream_fd(s), x->b);
    CHECK_EQ(corio_stream_buffered(s, NULL), 0);
    CHECK_EQ(corio_stream_pending(s), 0);
    CHECK_EQ(corio_stream_memory(s), 0);
    CHECK(!corio_stream_eof(s));
    char buf[8];
    CHECK_EQ(corio_stream_read_exactly(s, buf, 5, corio_after(CORIO_SEC)), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_EQ(corio_stream_write(s, "to-b", 4, CORIO_FOREVER), 4);
    CHECK_EQ(corio_stream_flush(s, corio_after(CORIO_SEC)), 0);
    CHECK_EQ(corio_stream_reset(s, -2), -EBADF);
    CHECK_EQ(corio_stream_fd(s), x->b);
    CHECK_EQ(corio_stream_reset(s, -1), 0); /* detached */
    CHECK_EQ(corio_stream_fd(s), -1);
    CHECK_EQ(corio_stream_close(s, CORIO_NOWAIT), 0);
    /* Without keep_fd the old fd is closed. */
    CHECK_EQ(corio_stream_open(&s, x->a, NULL), 0);
    CHECK_EQ(corio_stream_reset(s, -1), 0);
    CHECK_EQ(corio_stream_close(s, CORIO_NOWAIT), 0);
    x->a = -1;
    return NULL;
}

TEST(http_stream_reset)
{
    corio_loop *loop = test_loop();
    int sa[2], sb[2];
    test_socketpair(sa);
    test_socketpair(sb);
    struct reset_ctx x = {sa[0], sb[0], sa[1], sb[1]};
    CHECK_EQ(write(x.peer_a, "hello", 5), 5);
    CHECK_EQ(write(x.peer_b, "world", 5), 5);
    CHECK_EQ(corio_spawn(loop, NULL, reset_body, &x, 0), 0);
    test_run(loop);
    CHECK_EQ(x.a, -1);
    char buf[8];
    CHECK_EQ(read(x.peer_a, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "to-a", 4) == 0);
    CHECK_EQ(read(x.peer_a, buf, sizeof buf), 0); /* a was closed */
    CHECK_EQ(read(x.peer_b, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "to-b", 4) == 0);
    test_loop_free(loop);
    close(x.peer_a);
    close(x.b);
    close(x.peer_b);
}
