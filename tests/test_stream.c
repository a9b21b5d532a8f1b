/* Buffered streams: framing (lines, delimiters, exact reads, peeks),
 * limits and end-of-stream cases, reset versus EOF, output coalescing,
 * flow control, half-close, close that reports lost output, idle memory,
 * and every byte through random chunkings. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../src/fault.h"
#include "../src/internal.h"
#include "test.h"

#define SEC(n) corio_after((int64_t)(n) * CORIO_SEC)
#define MS(n) corio_after((int64_t)(n) * CORIO_MSEC)

/* A connected loopback TCP pair, both ends non-blocking. */
static void tcp_pair(int sv[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    CHECK_EQ(listen(l, 1), 0);
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(sv[0], (struct sockaddr *)&a, sizeof a), 0);
    sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(sv[1] >= 0);
    close(l);
    CHECK_EQ(corio_fd_nonblock(sv[0]), 0);
    CHECK_EQ(corio_fd_nonblock(sv[1]), 0);
}

/* Blocking helpers for the peer side, outside any coroutine. */
static void put(int fd, const char *s)
{
    CHECK_EQ(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

struct ctx {
    int fd, peer;
    corio_stream *s;
    int step;
};

typedef void (*body_fn)(struct ctx *c);

struct run {
    struct ctx *c;
    body_fn fn;
};

static void *run_body(void *p)
{
    struct run *r = p;
    CHECK_EQ(corio_stream_open(&r->c->s, r->c->fd, NULL), 0);
    r->fn(r->c);
    if (r->c->s)
        corio_stream_close(r->c->s, SEC(1));
    return NULL;
}

/* Runs fn in a coroutine over a stream on one end of a socketpair (or of
 * a TCP pair with tcp set); the test drives the other end, c->peer. */
static void with_stream(body_fn fn, bool tcp, void (*before)(struct ctx *))
{
    corio_loop *loop = test_loop();
    int sv[2];
    if (tcp)
        tcp_pair(sv);
    else
        test_socketpair(sv);
    struct ctx c = {.fd = sv[0], .peer = sv[1]};
    if (before)
        before(&c);
    struct run r = {&c, fn};
    CHECK_EQ(corio_spawn(loop, NULL, run_body, &r, 0), 0);
    test_run(loop);
    if (c.peer >= 0)
        close(c.peer);
    test_loop_free(loop);
}

/* ---- Lines ---- */

static void lines_body(struct ctx *c)
{
    const char *l;
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 6);
    CHECK(memcmp(l, "hello\n", 6) == 0);
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 1);
    CHECK(memcmp(l, "\n", 1) == 0);
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 6);
    CHECK(memcmp(l, "world\n", 6) == 0);
    CHECK_EQ(corio_stream_read_until(c->s, "\r\n\r\n", 4, &l, 100, SEC(5)), 9);
    CHECK(memcmp(l, "ab\r\nc\r\n\r\n", 9) == 0);
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 0); /* clean EOF */
    CHECK(corio_stream_eof(c->s));
}

static void lines_before(struct ctx *c)
{
    put(c->peer, "hello\n\nwor");
    put(c->peer, "ld\nab\r\nc\r\n\r\n");
    shutdown(c->peer, SHUT_WR);
}

TEST(stream_readline)
{
    with_stream(lines_body, false, lines_before);
}

/* A line over the limit: -CORIO_ETOOLONG, and the bytes stay readable. */
static void long_body(struct ctx *c)
{
    const char *l;
    CHECK_EQ(corio_stream_readline(c->s, &l, 8, SEC(5)), -CORIO_ETOOLONG);
    const void *v;
    CHECK(corio_stream_buffered(c->s, &v) >= 8);
    CHECK(memcmp(v, "0123456789", 8) == 0);
    /* A larger limit finds the line, starting with the same bytes. */
    CHECK_EQ(corio_stream_readline(c->s, &l, 64, SEC(5)), 11);
    CHECK(memcmp(l, "0123456789\n", 11) == 0);
    /* Exactly at the limit is fine: the delimiter ends within max. */
    CHECK_EQ(corio_stream_readline(c->s, &l, 3, SEC(5)), 3);
    CHECK(memcmp(l, "ab\n", 3) == 0);
}

static void long_before(struct ctx *c)
{
    put(c->peer, "0123456789\nab\n");
}

TEST(stream_line_over_limit)
{
    with_stream(long_body, false, long_before);
}

/* End of stream in the middle of a line: -CORIO_EEOF, the partial line
 * is still readable, and after it the stream reads 0. */
static void eof_mid_body(struct ctx *c)
{
    const char *l;
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 4);
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), -CORIO_EEOF);
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), -CORIO_EEOF); /* repeatable */
    char buf[16];
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, SEC(5)), 7);
    CHECK(memcmp(buf, "partial", 7) == 0);
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, SEC(5)), 0);
}

static void eof_mid_before(struct ctx *c)
{
    put(c->peer, "one\npartial");
    shutdown(c->peer, SHUT_WR);
}

TEST(stream_eof_mid_line)
{
    with_stream(eof_mid_body, false, eof_mid_before);
}

/* ---- read_exactly ---- */

static void exact_eof_body(struct ctx *c)
{
    char buf[64];
    CHECK_EQ(corio_stream_read_exactly(c->s, buf, 4, SEC(5)), 4);
    CHECK(memcmp(buf, "abcd", 4) == 0);
    CHECK_EQ(corio_stream_read_exactly(c->s, buf, 10, SEC(5)), -CORIO_EEOF);
    const void *v;
    CHECK_EQ(corio_stream_buffered(c->s, &v), 3); /* the bytes received stay */
    CHECK(memcmp(v, "efg", 3) == 0);
    CHECK_EQ(corio_stream_read_exactly(c->s, buf, 3, SEC(5)), 3);
    CHECK(memcmp(buf, "efg", 3) == 0);
    CHECK_EQ(corio_stream_read_exactly(c->s, buf, 1, SEC(5)), -CORIO_EEOF);
}

static void exact_eof_before(struct ctx *c)
{
    put(c->peer, "abcdefg");
    shutdown(c->peer, SHUT_WR);
}

TEST(stream_read_exactly_eof)
{
    with_stream(exact_eof_body, false, exact_eof_before);
}

/* Larger than the buffer: copied as it arrives; at EOF the bytes go back
 * into the stream, so they are still readable. */
#define BIG (300 * 1000)
static char big_in[BIG], big_out[BIG];

static void *big_writer(void *p)
{
    int fd = *(int *)p;
    size_t n = *((int *)p + 1) ? BIG : BIG - 1000;
    CHECK_EQ(corio_write_all(fd, big_in, n, NULL, SEC(5)), (ssize_t)n);
    shutdown(fd, SHUT_WR);
    return NULL;
}

static void exact_big_body(struct ctx *c)
{
    int arg[2] = {c->peer, c->step};
    CHECK_EQ(corio_spawn(corio_loop_current(), NULL, big_writer, arg, 0), 0);
    if (c->step) {
        CHECK_EQ(corio_stream_read_exactly(c->s, big_out, BIG, SEC(5)), BIG);
        CHECK(memcmp(big_in, big_out, BIG) == 0);
        return;
    }
    CHECK_EQ(corio_stream_read_exactly(c->s, big_out, BIG, SEC(5)), -CORIO_EEOF);
    memset(big_out, 0, sizeof big_out);
    size_t got = 0;
    ssize_t r;
    while ((r = corio_stream_read(c->s, big_out + got, BIG - got, SEC(5))) > 0)
        got += (size_t)r;
    CHECK_EQ(r, 0);
    CHECK_EQ(got, BIG - 1000);
    CHECK(memcmp(big_in, big_out, got) == 0);
}

static void big_full(struct ctx *c)
{
    c->step = 1;
}

TEST(stream_read_exactly_large)
{
    for (size_t i = 0; i < BIG; i++)
        big_in[i] = (char)(i * 7 + (i >> 9));
    with_stream(exact_big_body, false, big_full);
    with_stream(exact_big_body, false, NULL);
}

/* ---- Peek, views, consume ---- */

static void peek_body(struct ctx *c)
{
    const void *v;
    CHECK_EQ(corio_stream_peek(c->s, 0, &v, CORIO_NOWAIT), 0);
    ssize_t n = corio_stream_peek(c->s, 5, &v, SEC(5));
    CHECK(n >= 5);
    CHECK(memcmp(v, "GET /", 5) == 0);
    CHECK_EQ(corio_stream_consume(c->s, 4), 4);
    n = corio_stream_peek(c->s, 20, &v, SEC(5)); /* waits for the rest */
    CHECK_EQ(n, 20);
    CHECK(memcmp(v, "/index.html HTTP/1.1", 20) == 0);
    CHECK_EQ(corio_stream_consume(c->s, 100), 20); /* clamped */
    CHECK_EQ(corio_stream_buffered(c->s, NULL), 0);
    CHECK_EQ(corio_stream_peek(c->s, 1, &v, MS(20)), -ETIMEDOUT);
}

static void *late_writer(void *p)
{
    int fd = *(int *)p;
    corio_sleep_until(MS(10));
    CHECK_EQ(write(fd, "index.html HTTP/1.1", 19), 19);
    return NULL;
}

static void peek_body_outer(struct ctx *c)
{
    static int fd;
    fd = c->peer;
    CHECK_EQ(corio_spawn(corio_loop_current(), NULL, late_writer, &fd, 0), 0);
    peek_body(c);
}

static void peek_put(struct ctx *c)
{
    put(c->peer, "GET /");
}

TEST(stream_peek_and_consume)
{
    with_stream(peek_body_outer, false, peek_put);
}

/* ---- Reset versus end of stream ---- */

static void reset_body(struct ctx *c)
{
    char buf[16];
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, SEC(5)), 2);
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, SEC(5)), -ECONNRESET);
}

static void reset_before(struct ctx *c)
{
    put(c->peer, "hi");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK_EQ(setsockopt(c->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(c->peer); /* RST */
    c->peer = -1;
}

static void fin_body(struct ctx *c)
{
    char buf[16];
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, SEC(5)), 2);
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, SEC(5)), 0);
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, SEC(5)), 0);
}

static void fin_before(struct ctx *c)
{
    put(c->peer, "hi");
    close(c->peer); /* FIN */
    c->peer = -1;
}

TEST(stream_eof_vs_reset)
{
    with_stream(reset_body, true, reset_before);
    with_stream(fin_body, true, fin_before);
}

/* A peer that resets while we write: the error is reported and sticky. */
static void reset_write_body(struct ctx *c)
{
    static char chunk[65536];
    int r = 0;
    for (int i = 0; i < 1000 && r >= 0; i++) {
        ssize_t w = corio_stream_write(c->s, chunk, sizeof chunk, SEC(5));
        r = w < 0 ? (int)w : corio_stream_flush(c->s, SEC(5));
        if (i == 2) { /* the peer's buffers are full by now: reset it */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(c->peer);
            c->peer = -1;
        }
    }
    CHECK(r == -ECONNRESET || r == -EPIPE);
    CHECK_EQ(corio_stream_write(c->s, "x", 1, SEC(1)), r); /* sticky */
    CHECK_EQ(corio_stream_flush(c->s, SEC(1)), r);
    CHECK_EQ(corio_stream_close(c->s, SEC(1)), r); /* pending output was lost: said so */
    c->s = NULL;
}

TEST(stream_peer_reset_mid_write)
{
    with_stream(reset_write_body, true, NULL);
}

/* ---- Half-close ---- */

/* The peer half-closed: we read end of stream, and can still answer. */
static void half_body(struct ctx *c)
{
    const char *l;
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 5);
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 0);
    CHECK_EQ(corio_stream_write(c->s, "answer\n", 7, SEC(5)), 7);
    CHECK_EQ(corio_stream_flush(c->s, SEC(5)), 0);
    char buf[16];
    CHECK_EQ(read(c->peer, buf, sizeof buf), 7);
    CHECK(memcmp(buf, "answer\n", 7) == 0);
    /* Our own half-close: the peer sees EOF, our input still works, our
     * output is refused. */
    CHECK_EQ(corio_stream_write(c->s, "bye", 3, SEC(5)), 3);
    CHECK_EQ(corio_stream_shutdown(c->s, SEC(5)), 0);
    CHECK_EQ(read(c->peer, buf, sizeof buf), 3);
    CHECK_EQ(read(c->peer, buf, sizeof buf), 0);
    CHECK_EQ(corio_stream_write(c->s, "x", 1, SEC(5)), -EPIPE);
}

static void half_before(struct ctx *c)
{
    put(c->peer, "ask?\n");
    shutdown(c->peer, SHUT_WR);
}

TEST(stream_half_close)
{
    with_stream(half_body, true, half_before);
}

/* Writing to a peer that closed entirely: -EPIPE or -ECONNRESET, no
 * SIGPIPE (the runner ignores it, so check the handler is irrelevant: the
 * call must return). */
static void closed_peer_body(struct ctx *c)
{
    close(c->peer);
    c->peer = -1;
    int r = 0;
    for (int i = 0; i < 10 && r == 0; i++) {
        CHECK_EQ(corio_stream_write(c->s, "data", 4, SEC(5)), 4);
        r = corio_stream_flush(c->s, SEC(5));
    }
    CHECK(r == -EPIPE || r == -ECONNRESET);
}

TEST(stream_write_to_closed_peer)
{
    with_stream(closed_peer_body, true, NULL);
    with_stream(closed_peer_body, false, NULL);
}

/* ---- Slowloris ---- */

static void *dribble(void *p)
{
    int fd = *(int *)p;
    for (int i = 0; i < 8; i++) {
        if (corio_sleep_until(MS(15)) < 0)
            break;
        if (write(fd, "x", 1) != 1)
            break;
    }
    return NULL;
}

static void slow_body(struct ctx *c)
{
    static int fd;
    fd = c->peer;
    CHECK_EQ(corio_spawn(corio_loop_current(), NULL, dribble, &fd, 0), 0);
    const char *l;
    int64_t t0 = corio_now();
    /* One deadline for the whole line, however the bytes trickle in. */
    CHECK_EQ(corio_stream_readline(c->s, &l, 1000, corio_after(50 * CORIO_MSEC)), -ETIMEDOUT);
    int64_t took = corio_now() - t0;
    CHECK(took >= 50 * CORIO_MSEC && took < 2 * CORIO_SEC);
    size_t have = corio_stream_buffered(c->s, NULL);
    CHECK(have >= 1 && have <= 4); /* what arrived is kept */
}

TEST(stream_slowloris_deadline)
{
    with_stream(slow_body, false, NULL);
}

/* ---- Output: coalescing, batches, flow control ---- */

static unsigned send_calls(void)
{
    struct corio__site *first;
    size_t n = corio__fault_sites(&first);
    unsigned calls = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(first[i].name, "send") == 0 || strcmp(first[i].name, "write") == 0 ||
            strcmp(first[i].name, "writev") == 0)
            calls += first[i].calls;
    return calls;
}

static void coalesce_body(struct ctx *c)
{
    corio__fault_record(true);
    unsigned before = send_calls();
    for (int i = 0; i < 100; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "line %d\n", i);
        CHECK_EQ(corio_stream_write(c->s, line, (size_t)n, SEC(5)), n);
    }
    char *p = corio_stream_reserve(c->s, 64);
    CHECK(p != NULL);
    int n = snprintf(p, 64, "formatted %d\n", 42);
    corio_stream_commit(c->s, (size_t)n);
    struct iovec iov[2] = {{"a", 1}, {"bc\n", 3}};
    CHECK_EQ(corio_stream_writev(c->s, iov, 2, SEC(5)), 4);
    CHECK(corio_stream_pending(c->s) > 600);
    CHECK_EQ(send_calls(), before); /* nothing sent yet */
    CHECK_EQ(corio_stream_flush(c->s, SEC(5)), 0);
    CHECK_EQ(send_calls(), before + 1); /* one syscall for everything */
    CHECK_EQ(corio_stream_pending(c->s), 0);
    CHECK_EQ(corio_stream_memory(c->s), 0); /* the output buffer went back */
    corio__fault_record(false);
    static char got[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(c->peer, got + len, sizeof got - len)) > 0)
        len += (size_t)r;
    CHECK(len > 600);
    CHECK(memcmp(got, "line 0\nline 1\n", 14) == 0);
    CHECK(memcmp(got + len - 17, "formatted 42\nabc\n", 17) == 0);
}

TEST(stream_writes_coalesce)
{
    with_stream(coalesce_body, false, NULL);
}

/* Pipelined requests: the server sees they are all buffered and answers
 * the batch with one write. */
static void pipeline_body(struct ctx *c)
{
    corio__fault_record(true);
    unsigned before = send_calls();
    int answered = 0;
    for (;;) {
        const char *l;
        ssize_t n = corio_stream_readline(c->s, &l, 100, SEC(5));
        if (n <= 0)
            break;
        CHECK_EQ(corio_stream_write(c->s, "ok\n", 3, SEC(5)), 3);
        answered++;
        if (corio_stream_buffered(c->s, NULL) == 0)
            CHECK_EQ(corio_stream_flush(c->s, SEC(5)), 0);
    }
    CHECK_EQ(answered, 5);
    CHECK_EQ(send_calls(), before + 1);
    corio__fault_record(false);
}

static void pipeline_before(struct ctx *c)
{
    put(c->peer, "a\nb\nc\nd\ne\n");
    shutdown(c->peer, SHUT_WR);
}

TEST(stream_pipelined_batch)
{
    with_stream(pipeline_body, false, pipeline_before);
}

/* Output over the high water mark: write() drains first, and when the
 * peer does not read, it fails by the deadline with nothing appended. */
static void high_body(struct ctx *c)
{
    static char chunk[16384];
    size_t pending = 0;
    ssize_t r;
    for (int i = 0; i < 1000; i++) {
        r = corio_stream_write(c->s, chunk, sizeof chunk, MS(30));
        if (r < 0)
            break;
        pending = corio_stream_pending(c->s);
    }
    CHECK_EQ(r, -ETIMEDOUT);
    CHECK(corio_stream_pending(c->s) <= pending); /* some went out, nothing appended */
    CHECK(pending > 64 * 1024);
    CHECK_EQ(corio_stream_drain(c->s, MS(10)), -ETIMEDOUT); /* not sticky */
    /* Now the peer reads everything: drain and flush finish. */
    static char sink[1 << 20];
    struct pollfd p = {.fd = c->peer, .events = POLLIN};
    size_t got = 0;
    int rounds = 0;
    while (corio_stream_pending(c->s) > 0 && rounds++ < 10000) {
        while (poll(&p, 1, 0) == 1) {
            ssize_t n = read(c->peer, sink, sizeof sink);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        int f = corio_stream_flush(c->s, MS(1));
        CHECK(f == 0 || f == -ETIMEDOUT);
    }
    CHECK_EQ(corio_stream_pending(c->s), 0);
    CHECK(got > 0);
}

static void small_bufs(struct ctx *c)
{
    int sz = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(c->peer, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

TEST(stream_high_water_deadline)
{
    with_stream(high_body, false, small_bufs);
}

/* close() flushes what is pending; when it cannot, it says so. */
static void close_ok_body(struct ctx *c)
{
    CHECK_EQ(corio_stream_write(c->s, "last words", 10, SEC(5)), 10);
    CHECK_EQ(corio_stream_close(c->s, SEC(5)), 0);
    c->s = NULL;
    char buf[16];
    CHECK_EQ(read(c->peer, buf, sizeof buf), 10);
    CHECK_EQ(read(c->peer, buf, sizeof buf), 0);
}

static void close_stuck_body(struct ctx *c)
{
    static char chunk[65536];
    CHECK_EQ(corio_stream_write(c->s, chunk, sizeof chunk, SEC(5)), (ssize_t)sizeof chunk);
    CHECK_EQ(corio_stream_write(c->s, chunk, sizeof chunk, SEC(5)), (ssize_t)sizeof chunk);
    CHECK_EQ(corio_stream_close(c->s, MS(20)), -ETIMEDOUT);
    c->s = NULL;
}

TEST(stream_close_reports_lost_output)
{
    with_stream(close_ok_body, false, NULL);
    with_stream(close_stuck_body, false, small_bufs);
}

/* ---- Memory ---- */

static void *watch_idle(void *p)
{
    struct ctx *c = p;
    corio_yield(); /* the reader parks first */
    corio_yield();
    CHECK_EQ(corio_stream_memory(c->s), 0); /* parked: no buffer held */
    put(c->peer, "x\n");
    return NULL;
}

static void idle_body(struct ctx *c)
{
    CHECK_EQ(corio_spawn(corio_loop_current(), NULL, watch_idle, c, 0), 0);
    const char *l;
    CHECK_EQ(corio_stream_readline(c->s, &l, 100, SEC(5)), 2);
    CHECK(corio_stream_memory(c->s) > 0); /* the view lives in it */
    char buf[4];
    CHECK_EQ(corio_stream_read(c->s, buf, sizeof buf, MS(5)), -ETIMEDOUT);
    CHECK_EQ(corio_stream_memory(c->s), 0);
}

TEST(stream_idle_holds_no_buffer)
{
    with_stream(idle_body, false, NULL);
}

/* Steady state allocates nothing: an echo of many messages after the
 * first leaves the allocator untouched. */
static void steady_body(struct ctx *c)
{
    char msg[100];
    memset(msg, 'm', sizeof msg);
    long long base = 0;
    for (int i = 0; i < 200; i++) {
        if (i == 2)
            base = test_live_allocations();
        CHECK_EQ(write(c->peer, msg, sizeof msg), (ssize_t)sizeof msg);
        const void *v;
        ssize_t n = corio_stream_peek(c->s, sizeof msg, &v, SEC(5));
        CHECK_EQ(n, (ssize_t)sizeof msg);
        CHECK_EQ(corio_stream_write(c->s, v, (size_t)n, SEC(5)), n);
        corio_stream_consume(c->s, (size_t)n);
        CHECK_EQ(corio_stream_flush(c->s, SEC(5)), 0);
        CHECK_EQ(read(c->peer, msg, sizeof msg), (ssize_t)sizeof msg);
        if (i >= 2)
            CHECK_EQ(test_live_allocations(), base);
    }
}

TEST(stream_steady_state_no_malloc)
{
    with_stream(steady_body, false, NULL);
}

/* ---- Misuse ---- */

static void *other_thread_loop_body(void *p)
{
    corio_stream *s = p;
    char b[1];
    /* No loop on this thread at all: not the owner. */
    CHECK_EQ(corio_stream_read(s, b, 1, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_stream_write(s, b, 1, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    return NULL;
}

#include <pthread.h>
static void wrong_thread_body(struct ctx *c)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, other_thread_loop_body, c->s), 0);
    pthread_join(t, NULL);
    corio_stream *s2;
    corio_stream_options o = {.high_water = 10, .low_water = 20};
    CHECK_EQ(corio_stream_open(&s2, c->fd, &o), -EINVAL);
    CHECK_EQ(corio_stream_open(&s2, -1, NULL), -EBADF);
    const char *l;
    CHECK_EQ(corio_stream_read_until(c->s, "", 0, &l, 10, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_stream_read_until(c->s, "abc", 3, &l, 2, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_stream_readline(c->s, &l, 10, CORIO_NOWAIT), -EAGAIN);
    const void *v;
    CHECK_EQ(corio_stream_peek(c->s, SIZE_MAX, &v, CORIO_NOWAIT), -ENOMEM); /* no effect */
    CHECK_EQ(corio_stream_write(c->s, "x", SIZE_MAX - 8, CORIO_NOWAIT), -ENOMEM);
    CHECK_EQ(corio_stream_pending(c->s), 0);
    CHECK(corio_stream_reserve(c->s, SIZE_MAX / 2) == NULL);
}

TEST(stream_misuse)
{
    corio_stream *s;
    CHECK_EQ(corio_stream_open(&s, 0, NULL), -CORIO_ENOTCO);
    with_stream(wrong_thread_body, false, NULL);
}

/* A pipe works too (write(2) instead of send(2)). */
static void *pipe_body(void *p)
{
    int *fds = p;
    corio_stream *in, *out;
    CHECK_EQ(corio_stream_open(&in, fds[0], NULL), 0);
    CHECK_EQ(corio_stream_open(&out, fds[1], NULL), 0);
    CHECK_EQ(corio_stream_write(out, "through a pipe\n", 15, SEC(5)), 15);
    CHECK_EQ(corio_stream_close(out, SEC(5)), 0);
    const char *l;
    CHECK_EQ(corio_stream_readline(in, &l, 100, SEC(5)), 15);
    CHECK_EQ(corio_stream_readline(in, &l, 100, SEC(5)), 0);
    CHECK_EQ(corio_stream_close(in, SEC(5)), 0);
    return NULL;
}

TEST(stream_over_pipe)
{
    corio_loop *loop = test_loop();
    int fds[2];
    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(corio_spawn(loop, NULL, pipe_body, fds, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

/* ---- Every byte, random chunkings, every framing call ---- */

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

/* Records: "<len>:<payload>\n", payload of letters.  The writer sends
 * them in random chunks; the reader alternates framing calls. */
#define RECORDS 3000

static void *chunk_writer(void *p)
{
    int fd = *(int *)p;
    static char out[RECORDS * 300];
    size_t len = 0;
    for (int i = 0; i < RECORDS; i++) {
        unsigned n = rnd() % 200;
        len += (size_t)sprintf(out + len, "%u:", n);
        for (unsigned j = 0; j < n; j++)
            out[len++] = (char)('a' + (i + j) % 26);
        out[len++] = '\n';
    }
    size_t off = 0;
    while (off < len) {
        size_t n = 1 + rnd() % 700;
        if (n > len - off)
            n = len - off;
        ssize_t w = corio_write(fd, out + off, n, SEC(5));
        CHECK(w > 0);
        off += (size_t)w;
        if (rnd() % 4 == 0)
            corio_yield();
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}

static void chunks_body(struct ctx *c)
{
    static int fd;
    fd = c->peer;
    CHECK_EQ(corio_spawn(corio_loop_current(), NULL, chunk_writer, &fd, 0), 0);
    for (int i = 0; i < RECORDS; i++) {
        const char *hdr;
        ssize_t h = corio_stream_read_until(c->s, ":", 1, &hdr, 10, SEC(5));
        CHECK(h >= 2);
        unsigned n = (unsigned)atoi(hdr);
        char payload[256];
        switch (i % 3) {
        case 0:
            CHECK_EQ(corio_stream_read_exactly(c->s, payload, n + 1, SEC(5)), n + 1);
            break;
        case 1: {
            const char *l;
            CHECK_EQ(corio_stream_readline(c->s, &l, 300, SEC(5)), n + 1);
            memcpy(payload, l, n + 1);
            break;
        }
        default: {
            const void *v;
            CHECK(corio_stream_peek(c->s, n + 1, &v, SEC(5)) >= (ssize_t)n + 1);
            memcpy(payload, v, n + 1);
            corio_stream_consume(c->s, n + 1);
        }
        }
        for (unsigned j = 0; j < n; j++)
            CHECK_EQ(payload[j], (char)('a' + (i + (int)j) % 26));
        CHECK_EQ(payload[n], '\n');
    }
    char b;
    CHECK_EQ(corio_stream_read(c->s, &b, 1, SEC(5)), 0);
}

TEST(stream_random_chunks_every_byte)
{
    with_stream(chunks_body, false, NULL);
    with_stream(chunks_body, true, NULL);
}

/* ---- Cancellation of every blocking stream and socket call ---- */

struct cancel_env {
    corio_stream *s;     /* a stream with a partial line buffered */
    corio_listener *l;
    int dgram;
    corio_addr silent;   /* a listener whose queue is full: dials hang */
    int results[5];
};

static void *block_readline(void *p)
{
    struct cancel_env *e = p;
    const char *l;
    e->results[0] = (int)corio_stream_readline(e->s, &l, 100, SEC(5));
    return NULL;
}

static void *block_flush(void *p)
{
    struct cancel_env *e = p;
    static char chunk[1 << 16];
    int r = 0;
    for (int i = 0; i < 64 && r >= 0; i++) {
        r = (int)corio_stream_write(e->s, chunk, sizeof chunk, SEC(5));
        if (r >= 0)
            r = corio_stream_flush(e->s, SEC(5));
    }
    e->results[1] = r;
    return NULL;
}

static void *block_accept(void *p)
{
    struct cancel_env *e = p;
    e->results[2] = corio_listener_accept(e->l, NULL, SEC(5));
    return NULL;
}

static void *block_recv(void *p)
{
    struct cancel_env *e = p;
    char b[8];
    e->results[3] = (int)corio_dgram_recvfrom(e->dgram, b, sizeof b, NULL, SEC(5));
    return NULL;
}

static void *block_dial(void *p)
{
    struct cancel_env *e = p;
    e->results[4] = corio_net_dial_addr(&e->silent, NULL, SEC(5));
    return NULL;
}

static void cancel_body(struct ctx *c)
{
    struct cancel_env e = {.s = c->s};
    put(c->peer, "partial");
    CHECK_EQ(corio_net_listen(&e.l, "127.0.0.1:0", NULL, SEC(1)), 0);
    e.dgram = corio_dgram_open("127.0.0.1:0", NULL, NULL, SEC(1));
    CHECK(e.dgram >= 0);
    corio_listener *full;
    corio_listen_options o = {.backlog = 1};
    CHECK_EQ(corio_net_listen(&full, "127.0.0.1:0", &o, SEC(1)), 0);
    corio_listener_addr(full, &e.silent);
    int fill[3], nf = 0, r;
    while (nf < 3 && (r = corio_net_dial_addr(&e.silent, NULL, MS(100))) >= 0)
        fill[nf++] = r; /* until the queue is full */

    corio_fn fns[5] = {block_readline, block_accept, block_recv, block_dial, NULL};
    corio_co *cos[5];
    int n = 0;
    for (int i = 0; fns[i]; i++)
        CHECK_EQ(corio_spawn(corio_loop_current(), &cos[n++], fns[i], &e, 0), 0);
    corio_sleep_until(MS(20)); /* all of them are parked now */
    for (int i = 0; i < n; i++) {
        CHECK_EQ(corio_cancel(cos[i]), 0);
        CHECK_EQ(corio_join(cos[i], NULL, SEC(5)), 0);
    }
    CHECK_EQ(e.results[0], -ECANCELED);
    CHECK_EQ(e.results[2], -ECANCELED);
    CHECK_EQ(e.results[3], -ECANCELED);
    CHECK_EQ(e.results[4], -ECANCELED);
    const void *v; /* the cancelled readline consumed nothing */
    CHECK_EQ(corio_stream_buffered(c->s, &v), 7);
    CHECK(memcmp(v, "partial", 7) == 0);

    /* A flush parked on a full socket: cancelled, the rest stays pending. */
    corio_co *f;
    CHECK_EQ(corio_spawn(corio_loop_current(), &f, block_flush, &e, 0), 0);
    corio_sleep_until(MS(20));
    CHECK_EQ(corio_cancel(f), 0);
    CHECK_EQ(corio_join(f, NULL, SEC(5)), 0);
    CHECK_EQ(e.results[1], -ECANCELED);
    CHECK(corio_stream_pending(c->s) > 0);

    while (nf > 0)
        corio_close(fill[--nf]);
    corio_listener_close(full);
    corio_listener_close(e.l);
    corio_close(e.dgram);
    CHECK_EQ(corio_stream_close(c->s, MS(10)), -ETIMEDOUT); /* pending output, peer not reading */
    c->s = NULL;
}

TEST(stream_net_cancel_while_parked)
{
    with_stream(cancel_body, false, small_bufs);
}
