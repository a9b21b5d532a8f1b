/* Addresses, listeners and dialling (TCP, Unix), the EMFILE reserve,
 * datagrams (UDP, Unix) with batches, name resolution, and 10,000
 * concurrent stream connections on one loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/fault.h"
#include "../src/internal.h"
#include "test.h"

#define SEC(n) corio_after((int64_t)(n) * CORIO_SEC)
#define MS(n) corio_after((int64_t)(n) * CORIO_MSEC)

/* Runs fn in one coroutine on a fresh loop. */
static void in_loop(corio_fn fn, void *arg)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, fn, arg, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

/* ---- Address strings ---- */

static const struct {
    const char *in, *out;
} good[] = {
    {"127.0.0.1:80", "127.0.0.1:80"},
    {"0.0.0.0:0", "0.0.0.0:0"},
    {":8080", "0.0.0.0:8080"},
    {"255.255.255.255:65535", "255.255.255.255:65535"},
    {"[::1]:443", "[::1]:443"},
    {"[::]:1", "[::]:1"},
    {"[fe80::1%2]:53", "[fe80::1%2]:53"},
    {"[::ffff:1.2.3.4]:9", "[::ffff:1.2.3.4]:9"},
    {"[2001:DB8::A]:7", "[2001:db8::a]:7"},
    {"1.2.3.4:007", "1.2.3.4:7"},
    {"unix:/tmp/x.sock", "unix:/tmp/x.sock"},
    {"unix:rel/path", "unix:rel/path"},
    {"unix:@abstract", "unix:@abstract"},
};

static const struct {
    const char *in;
    int err;
} bad[] = {
    {"", -CORIO_EADDR},
    {"127.0.0.1", -CORIO_EADDR},          /* no port */
    {"127.0.0.1:", -CORIO_EADDR},         /* empty port */
    {"127.0.0.1:65536", -CORIO_EADDR},    /* port range */
    {"127.0.0.1:123456", -CORIO_EADDR},
    {"127.0.0.1:-1", -CORIO_EADDR},
    {"127.0.0.1:+80", -CORIO_EADDR},
    {"127.0.0.1: 80", -CORIO_EADDR},
    {"127.0.0.1:80 ", -CORIO_EADDR},
    {"127.0.0.1:http", -CORIO_EADDR},     /* ports are numbers */
    {"::1:80", -CORIO_EADDR},             /* IPv6 needs brackets */
    {"[::1]", -CORIO_EADDR},
    {"[::1]80", -CORIO_EADDR},
    {"[::1:80", -CORIO_EADDR},
    {"[1.2.3.4]:80", -CORIO_EADDR},       /* brackets are for IPv6 */
    {"[]:80", -CORIO_EADDR},
    {"[fe80::1%]:80", -CORIO_EADDR},
    {"[fe80::1%eth0]:80", -CORIO_EADDR},  /* scope by index only */
    {"[::1]:80]", -CORIO_EADDR},
    {"a]b:80", -CORIO_EADDR},
    {"host name:80", -CORIO_EADDR},
    {"bad..name:80", -CORIO_EADDR},
    {".lead:80", -CORIO_EADDR},
    {"unix:", -CORIO_EADDR},
    {"unix:@", -CORIO_EADDR},
    {"example.com:80", -CORIO_ENONAME},   /* well-formed, needs resolving */
    {"localhost:1", -CORIO_ENONAME},
    {"256.1.1.1:80", -CORIO_ENONAME},     /* not an IPv4 literal: a (numeric) name */
};

TEST(net_addr_parse)
{
    char buf[CORIO_ADDR_STRLEN];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        corio_addr a, b;
        int r = corio_addr_parse(&a, good[i].in);
        if (r != 0)
            test_fail(__FILE__, __LINE__, "%s: %s", good[i].in, corio_strerror(r));
        int n = corio_addr_format(&a, buf, sizeof buf);
        CHECK_EQ(n, (int)strlen(good[i].out));
        if (strcmp(buf, good[i].out) != 0)
            test_fail(__FILE__, __LINE__, "%s formats as %s", good[i].in, buf);
        CHECK_EQ(corio_addr_parse(&b, buf), 0);
        CHECK(corio_addr_equal(&a, &b));
        CHECK_EQ(corio_addr_format(&a, buf, (size_t)n), -ENOSPC);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corio_addr a;
        int r = corio_addr_parse(&a, bad[i].in);
        if (r != bad[i].err)
            test_fail(__FILE__, __LINE__, "\"%s\": %d (%s), expected %d", bad[i].in, r,
                      corio_strerror(r), bad[i].err);
    }
    char path[200];
    memset(path, 'p', sizeof path);
    memcpy(path, "unix:/", 6);
    path[5 + 108] = '\0'; /* a path of 108 bytes: no room for its NUL */
    corio_addr a;
    CHECK_EQ(corio_addr_parse(&a, path), -ENAMETOOLONG);
    path[5 + 107] = '\0';
    CHECK_EQ(corio_addr_parse(&a, path), 0);
    CHECK_EQ(corio_addr_parse(&a, NULL), -CORIO_EADDR);
    CHECK_EQ(corio_addr_parse(&a, "[::1]:8"), 0);
    CHECK_EQ(corio_addr_port(&a), 8);
    CHECK_EQ(corio_addr_parse(&a, "unix:@x"), 0);
    CHECK_EQ(corio_addr_port(&a), -EAFNOSUPPORT);
}

/* Numeric addresses never touch the pool, and resolve outside a
 * coroutine without parking. */
TEST(net_addr_resolve_numeric)
{
    corio_addr a[2];
    CHECK_EQ(corio_addr_resolve(a, 2, "10.0.0.1:5", SOCK_STREAM, CORIO_NOWAIT), 1);
    CHECK_EQ(corio_addr_port(&a[0]), 5);
    CHECK_EQ(corio_addr_resolve(a, 2, "10.0.0.1:x", SOCK_STREAM, CORIO_NOWAIT), -CORIO_EADDR);
    CHECK_EQ(corio_addr_resolve(a, 0, "10.0.0.1:5", SOCK_STREAM, CORIO_NOWAIT), -EINVAL);
}

/* ---- TCP ---- */

static int getopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    CHECK_EQ(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

struct tcp_env {
    corio_listener *l;
    corio_addr addr;
    int accepted;
    corio_addr peer;
};

static void *acceptor_once(void *p)
{
    struct tcp_env *e = p;
    e->accepted = corio_listener_accept(e->l, &e->peer, SEC(5));
    return NULL;
}

static void *tcp_basic(void *p)
{
    (void)p;
    struct tcp_env e = {0};
    CHECK_EQ(corio_net_listen(&e.l, "127.0.0.1:0", NULL, SEC(1)), 0);
    CHECK_EQ(corio_listener_addr(e.l, &e.addr), 0);
    CHECK(corio_addr_port(&e.addr) > 0);
    corio_co *co;
    CHECK_EQ(corio_spawn(corio_loop_current(), &co, acceptor_once, &e, 0), 0);
    char name[CORIO_ADDR_STRLEN];
    CHECK(corio_addr_format(&e.addr, name, sizeof name) > 0);
    int fd = corio_net_dial(name, NULL, SEC(5));
    CHECK(fd >= 0);
    CHECK_EQ(corio_join(co, NULL, SEC(5)), 0);
    CHECK(e.accepted >= 0);
    /* TCP_NODELAY on both ends by default: the accepted one inherits it. */
    CHECK(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY) != 0);
    CHECK(getopt_int(e.accepted, IPPROTO_TCP, TCP_NODELAY) != 0);
    CHECK(getopt_int(e.accepted, SOL_SOCKET, SO_KEEPALIVE) == 0);
    corio_addr local;
    CHECK_EQ(corio_addr_local(fd, &local), 0);
    CHECK(corio_addr_equal(&local, &e.peer)); /* accept reported the dialer */
    /* A stream over each end. */
    corio_stream *a, *b;
    CHECK_EQ(corio_stream_open(&a, fd, NULL), 0);
    CHECK_EQ(corio_stream_open(&b, e.accepted, NULL), 0);
    CHECK_EQ(corio_stream_write(a, "ping\n", 5, SEC(5)), 5);
    CHECK_EQ(corio_stream_flush(a, SEC(5)), 0);
    const char *l;
    CHECK_EQ(corio_stream_readline(b, &l, 10, SEC(5)), 5);
    CHECK(memcmp(l, "ping\n", 5) == 0);
    CHECK_EQ(corio_stream_close(a, SEC(5)), 0);
    CHECK_EQ(corio_stream_close(b, SEC(5)), 0);
    CHECK_EQ(corio_listener_close(e.l), 0);
    return NULL;
}

TEST(net_tcp_listen_dial)
{
    in_loop(tcp_basic, NULL);
}

static void *tcp_v6(void *p)
{
    (void)p;
    corio_listener *l;
    int r = corio_net_listen(&l, "[::1]:0", NULL, SEC(1));
    if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT)
        return NULL; /* no IPv6 loopback here */
    CHECK_EQ(r, 0);
    corio_addr a;
    corio_listener_addr(l, &a);
    int fd = corio_net_dial_addr(&a, NULL, SEC(5));
    CHECK(fd >= 0);
    corio_addr peer;
    int s = corio_listener_accept(l, &peer, SEC(5));
    CHECK(s >= 0);
    CHECK_EQ(peer.ss.ss_family, AF_INET6);
    corio_close(s);
    corio_close(fd);
    corio_listener_close(l);
    return NULL;
}

TEST(net_tcp_ipv6)
{
    in_loop(tcp_v6, NULL);
}

static void *listen_opts(void *p)
{
    (void)p;
    corio_listen_options o = {.reuseport = true, .defer_accept = 5, .fastopen = 16,
                              .keepalive = 30, .backlog = 8};
    corio_listener *a, *b, *c;
    CHECK_EQ(corio_net_listen(&a, "127.0.0.1:0", &o, SEC(1)), 0);
    corio_addr addr;
    corio_listener_addr(a, &addr);
    char name[CORIO_ADDR_STRLEN];
    corio_addr_format(&addr, name, sizeof name);
    CHECK_EQ(corio_net_listen(&b, name, &o, SEC(1)), 0); /* SO_REUSEPORT: a second one */
    CHECK_EQ(corio_net_listen(&c, name, NULL, SEC(1)), -EADDRINUSE);
    int fd = corio_listener_fd(a);
    CHECK(getopt_int(fd, SOL_SOCKET, SO_REUSEPORT) != 0);
    CHECK(getopt_int(fd, SOL_SOCKET, SO_REUSEADDR) != 0);
    CHECK(getopt_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT) > 0);
    CHECK(getopt_int(fd, SOL_SOCKET, SO_KEEPALIVE) != 0);
    CHECK_EQ(getopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    CHECK(getopt_int(fd, IPPROTO_TCP, TCP_FASTOPEN) > 0);
    corio_listener_close(a);
    corio_listener_close(b);

    corio_listen_options v6 = {.v6only = true};
    if (corio_net_listen(&a, "[::]:0", &v6, SEC(1)) == 0) {
        CHECK(getopt_int(corio_listener_fd(a), IPPROTO_IPV6, IPV6_V6ONLY) != 0);
        corio_listener_close(a);
    }
    corio_dial_options d = {.keepalive = 7};
    CHECK_EQ(corio_net_listen(&a, "127.0.0.1:0", NULL, SEC(1)), 0);
    corio_listener_addr(a, &addr);
    fd = corio_net_dial_addr(&addr, &d, SEC(5));
    CHECK(fd >= 0);
    CHECK_EQ(getopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
    corio_close(fd);
    corio_dial_options nagle = {.no_nodelay = true};
    fd = corio_net_dial_addr(&addr, &nagle, SEC(5));
    CHECK(fd >= 0);
    CHECK_EQ(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    corio_close(fd);
    corio_listener_close(a);
    return NULL;
}

TEST(net_listen_options)
{
    in_loop(listen_opts, NULL);
}

static void *dial_errors(void *p)
{
    (void)p;
    /* A port nobody listens on: take one, then close it. */
    corio_listener *l;
    CHECK_EQ(corio_net_listen(&l, "127.0.0.1:0", NULL, SEC(1)), 0);
    corio_addr a;
    corio_listener_addr(l, &a);
    corio_listener_close(l);
    CHECK_EQ(corio_net_dial_addr(&a, NULL, SEC(5)), -ECONNREFUSED);
    CHECK_EQ(corio_net_dial("127.0.0.1", NULL, SEC(5)), -CORIO_EADDR);
    CHECK_EQ(corio_net_dial("unix:/nonexistent/corio.sock", NULL, SEC(5)), -ENOENT);

    /* A listener whose queue is full: the SYN is dropped, the dial waits
     * until its deadline. */
    corio_listen_options o = {.backlog = 1};
    CHECK_EQ(corio_net_listen(&l, "127.0.0.1:0", &o, SEC(1)), 0);
    corio_listener_addr(l, &a);
    int fds[4], n = 0;
    int64_t t0 = corio_now();
    int r = 0;
    while (n < 4 && (r = corio_net_dial_addr(&a, NULL, MS(100))) >= 0)
        fds[n++] = r;
    CHECK_EQ(r, -ETIMEDOUT);
    CHECK(corio_now() - t0 < 3 * CORIO_SEC);
    while (n > 0)
        corio_close(fds[--n]);
    corio_listener_close(l);
    return NULL;
}

TEST(net_dial_errors)
{
    in_loop(dial_errors, NULL);
}

/* accept: deadline, cancellation, and close from another coroutine. */
static void *closer(void *p)
{
    corio_listener_close(p);
    return NULL;
}

static void *accept_waits(void *p)
{
    (void)p;
    corio_listener *l;
    CHECK_EQ(corio_net_listen(&l, "127.0.0.1:0", NULL, SEC(1)), 0);
    CHECK_EQ(corio_listener_accept(l, NULL, MS(20)), -ETIMEDOUT);
    CHECK_EQ(corio_listener_accept(l, NULL, CORIO_NOWAIT), -EAGAIN);
    corio_co *co;
    CHECK_EQ(corio_spawn(corio_loop_current(), &co, closer, l, 0), 0);
    corio_detach(co);
    CHECK_EQ(corio_listener_accept(l, NULL, SEC(5)), -CORIO_ECLOSED);
    return NULL;
}

TEST(net_accept_deadline_and_close)
{
    in_loop(accept_waits, NULL);
}

/* ---- Unix stream sockets ---- */

static void *unix_stream(void *p)
{
    const char *addr = p;
    corio_listener *l;
    CHECK_EQ(corio_net_listen(&l, addr, NULL, SEC(1)), 0);
    int fd = corio_net_dial(addr, NULL, SEC(5));
    CHECK(fd >= 0);
    corio_addr peer;
    int s = corio_listener_accept(l, &peer, SEC(5));
    CHECK(s >= 0);
    CHECK_EQ(peer.ss.ss_family, AF_UNIX);
    CHECK_EQ(corio_write(fd, "u", 1, SEC(5)), 1);
    char c;
    CHECK_EQ(corio_read(s, &c, 1, SEC(5)), 1);
    corio_addr la;
    corio_listener_addr(l, &la);
    char name[CORIO_ADDR_STRLEN];
    corio_addr_format(&la, name, sizeof name);
    CHECK(strcmp(name, addr) == 0);
    corio_close(s);
    corio_close(fd);
    CHECK_EQ(corio_listener_close(l), 0);
    return NULL;
}

TEST(net_unix_stream)
{
    char path[64], addr[80];
    snprintf(path, sizeof path, "/tmp/corio-test-%d.sock", (int)getpid());
    snprintf(addr, sizeof addr, "unix:%s", path);
    unlink(path);
    in_loop(unix_stream, addr);
    CHECK(access(path, F_OK) != 0); /* the listener removed its file */
    snprintf(addr, sizeof addr, "unix:@corio-test-%d", (int)getpid());
    in_loop(unix_stream, addr);
}

/* ---- The EMFILE reserve ---- */

struct shed_env {
    corio_listener *l;
    int reports;
    int accepted;
    int stop;
};

static void on_shed(corio_listener *l, int err, void *data)
{
    struct shed_env *e = data;
    (void)l;
    CHECK(err == -EMFILE);
    e->reports++;
}

static void *shed_acceptor(void *p)
{
    struct shed_env *e = p;
    while (!e->stop) {
        int fd = corio_listener_accept(e->l, NULL, SEC(5));
        if (fd == -CORIO_ECLOSED)
            break;
        CHECK(fd >= 0);
        e->accepted++;
        corio_close(fd);
    }
    return NULL;
}

/* Connects n clients and waits until each sees the server close it. */
static void shed_clients(const corio_addr *a, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        int r = corio_connect(fds[i], (const struct sockaddr *)&a->ss, a->len, SEC(5));
        CHECK_EQ(r, 0);
    }
    for (int i = 0; i < n; i++) {
        char c;
        ssize_t r = corio_read(fds[i], &c, 1, SEC(5));
        CHECK(r == 0 || r == -ECONNRESET);
    }
}

static unsigned accept_calls(void)
{
    struct corio__site *first;
    size_t n = corio__fault_sites(&first);
    unsigned calls = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(first[i].name, "accept4") == 0)
            calls += first[i].calls;
    return calls;
}

static void *emfile(void *p)
{
    (void)p;
    struct shed_env e = {0};
    corio_listen_options o = {.on_shed = on_shed, .data = &e};
    CHECK_EQ(corio_net_listen(&e.l, "127.0.0.1:0", &o, SEC(1)), 0);
    corio_addr a;
    corio_listener_addr(e.l, &a);
    corio_co *acc;
    CHECK_EQ(corio_spawn(corio_loop_current(), &acc, shed_acceptor, &e, 0), 0);
    corio_yield(); /* the acceptor parks */

    /* Clients first (they need descriptors), then use up the rest. */
    enum { N = 5 };
    int cl[N], filler[256], nfill = 0;
    for (int i = 0; i < N; i++)
        CHECK((cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) >= 0);
    struct rlimit old, low;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    int f;
    while (nfill < 256 && (f = dup(0)) >= 0)
        filler[nfill++] = f;
    CHECK_EQ(errno, EMFILE);

    corio__fault_record(true);
    unsigned calls0 = accept_calls();
    shed_clients(&a, cl, N);
    CHECK_EQ(corio_listener_shed(e.l), N);
    CHECK_EQ(e.reports, 1);
    CHECK_EQ(e.accepted, 0);
    /* No spinning: a handful of accept4 calls per connection at most. */
    CHECK(accept_calls() - calls0 <= 3 * N + 2);
    corio__fault_record(false);

    /* Descriptors free again: accepting works, and a new shortage is
     * reported again. */
    for (int i = 0; i < N; i++)
        corio_close(cl[i]); /* through corio: the loop knows these fds */
    close(filler[--nfill]);
    close(filler[--nfill]);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    shed_clients(&a, &c, 1);
    CHECK_EQ(e.accepted, 1);
    corio_close(c);
    while (nfill > 0)
        close(filler[--nfill]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    e.stop = 1;
    corio_listener_close(e.l);
    CHECK_EQ(corio_join(acc, NULL, SEC(5)), 0);
    return NULL;
}

TEST(net_emfile_reserve)
{
    in_loop(emfile, NULL);
}

/* ---- Datagrams ---- */

static void *udp_basic(void *p)
{
    const char *local = ((const char **)p)[0], *local_b = ((const char **)p)[1];
    int a = corio_dgram_open(local, NULL, NULL, SEC(1));
    CHECK(a >= 0);
    corio_addr aa;
    CHECK_EQ(corio_addr_local(a, &aa), 0);
    char name[CORIO_ADDR_STRLEN];
    CHECK(corio_addr_format(&aa, name, sizeof name) > 0);
    int b = corio_dgram_open(local_b, name, NULL, SEC(1)); /* connected to a */
    CHECK(b >= 0);
    CHECK_EQ(corio_dgram_sendto(b, "hello", 5, NULL, SEC(1)), 5);
    char buf[16];
    corio_addr from;
    CHECK_EQ(corio_dgram_recvfrom(a, buf, sizeof buf, &from, SEC(1)), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    corio_addr bb;
    CHECK_EQ(corio_addr_local(b, &bb), 0);
    CHECK(corio_addr_equal(&from, &bb));
    CHECK_EQ(corio_dgram_sendto(a, "back", 4, &from, SEC(1)), 4);
    CHECK_EQ(corio_dgram_recvfrom(b, buf, sizeof buf, NULL, SEC(1)), 4);
    CHECK_EQ(corio_dgram_recvfrom(b, buf, sizeof buf, NULL, MS(10)), -ETIMEDOUT);
    corio_close(a);
    corio_close(b);
    return NULL;
}

TEST(net_udp_and_unix_dgram)
{
    const char *udp[2] = {"127.0.0.1:0", NULL};
    in_loop(udp_basic, udp);
    /* A Unix datagram socket is unnamed unless bound: bind both ends so the
     * reply has somewhere to go. */
    char a1[80], a2[80];
    snprintf(a1, sizeof a1, "unix:@corio-dgram-%d", (int)getpid());
    snprintf(a2, sizeof a2, "unix:@corio-dgram-b-%d", (int)getpid());
    const char *ux[2] = {a1, a2};
    in_loop(udp_basic, ux);
    CHECK_EQ(corio_dgram_open(NULL, NULL, NULL, CORIO_NOWAIT), -EINVAL);
}

#define NB 40

static void *udp_batch(void *p)
{
    (void)p;
    corio_dgram_options o = {.rcvbuf = 1 << 20};
    int rx = corio_dgram_open("127.0.0.1:0", NULL, &o, SEC(1));
    int tx = corio_dgram_open("127.0.0.1:0", NULL, NULL, SEC(1));
    CHECK(rx >= 0 && tx >= 0);
    corio_addr to, txa;
    corio_addr_local(rx, &to);
    corio_addr_local(tx, &txa);
    static char out[NB][100], in[NB][64];
    corio_dgram_msg m[NB];
    for (int i = 0; i < NB; i++) {
        int n = snprintf(out[i], sizeof out[i], "datagram %d", i);
        if (i == NB - 1)
            n = 90; /* longer than the receive buffer: truncated */
        m[i] = (corio_dgram_msg){.buf = out[i], .len = (size_t)n, .addr = &to};
    }
    int sent = 0;
    while (sent < NB) {
        int r = corio_dgram_send_batch(tx, m + sent, (unsigned)(NB - sent), SEC(1));
        CHECK(r > 0);
        sent += r;
    }
    corio_addr from[NB];
    int got = 0;
    while (got < NB) {
        corio_dgram_msg r[NB];
        for (int i = 0; i < NB; i++)
            r[i] = (corio_dgram_msg){.buf = in[i], .len = sizeof in[i], .addr = &from[i]};
        int n = corio_dgram_recv_batch(rx, r, NB, SEC(1));
        CHECK(n >= 1);
        for (int i = 0; i < n; i++, got++) {
            CHECK(corio_addr_equal(&from[i], &txa));
            if (got == NB - 1) {
                CHECK(r[i].truncated);
                CHECK_EQ(r[i].result, sizeof in[i]);
            } else {
                CHECK(!r[i].truncated);
                CHECK_EQ(r[i].result, strlen(out[got]));
                CHECK(memcmp(in[i], out[got], r[i].result) == 0);
            }
        }
    }
    corio_dgram_msg one = {.buf = in[0], .len = 1};
    CHECK_EQ(corio_dgram_recv_batch(rx, &one, 1, MS(10)), -ETIMEDOUT);
    corio_close(rx);
    corio_close(tx);
    return NULL;
}

TEST(net_udp_batch)
{
    in_loop(udp_batch, NULL);
}

/* ---- Names (through the blocking pool) ---- */

static void *names(void *p)
{
    (void)p;
    corio_addr a[8];
    int n = corio_addr_resolve(a, 8, "localhost:80", SOCK_STREAM, SEC(10));
    CHECK(n >= 1);
    for (int i = 0; i < n; i++)
        CHECK_EQ(corio_addr_port(&a[i]), 80);
    int64_t t0 = corio_now();
    n = corio_addr_resolve(a, 8, "no-such-host.invalid:80", SOCK_STREAM, SEC(10));
    CHECK(n == -CORIO_ENONAME || n == -ETIMEDOUT);
    CHECK(corio_now() - t0 < 11 * CORIO_SEC);

    /* Dial by name: "localhost" may give ::1 first, where nobody listens;
     * the dial goes on to 127.0.0.1. */
    corio_listener *l;
    CHECK_EQ(corio_net_listen(&l, "127.0.0.1:0", NULL, SEC(1)), 0);
    corio_addr la;
    corio_listener_addr(l, &la);
    char name[64];
    snprintf(name, sizeof name, "localhost:%d", corio_addr_port(&la));
    int fd = corio_net_dial(name, NULL, SEC(10));
    CHECK(fd >= 0);
    corio_close(fd);
    corio_listener_close(l);
    return NULL;
}

TEST_TIMEOUT(net_resolve_names, 30)
{
    in_loop(names, NULL);
}

/* ---- 10,000 concurrent connections on one loop ----
 * The server (this process: one loop, one stream per connection, echoing)
 * and the clients (a forked child with its own loop) each stay under the
 * 20,000-descriptor cap.  Every client sends two rounds, the second only
 * once all 10,000 are connected; every byte comes back checked. */

#define CONNS 10000
#define MSG 64
#define CO_STACK (16 << 10)

struct server {
    corio_listener *l;
    int live, max_live, served;
    int error; /* the first a connection met */
    size_t mem_at_peak;
};

static struct server *the_server; /* one per test process */

static void *echo_conn(void *p)
{
    struct server *sv = the_server;
    int fd = (int)(intptr_t)p;
    corio_stream *s;
    CHECK_EQ(corio_stream_open(&s, fd, NULL), 0);
    if (++sv->live > sv->max_live)
        sv->max_live = sv->live;
    for (;;) {
        const void *v;
        ssize_t n = corio_stream_peek(s, 1, &v, SEC(60));
        if (n < 0 && !sv->error)
            sv->error = (int)n;
        if (n <= 0)
            break;
        CHECK_EQ(corio_stream_write(s, v, (size_t)n, SEC(60)), n);
        corio_stream_consume(s, (size_t)n);
        CHECK_EQ(corio_stream_flush(s, SEC(60)), 0);
    }
    sv->live--;
    sv->served++;
    corio_stream_close(s, SEC(5));
    return NULL;
}

static void *server_acceptor(void *p)
{
    struct server *sv = p;
    for (int i = 0; i < CONNS; i++) {
        int fd = corio_listener_accept(sv->l, NULL, SEC(60));
        CHECK(fd >= 0);
        CHECK_EQ(corio_spawn(corio_loop_current(), NULL, echo_conn, (void *)(intptr_t)fd, CO_STACK), 0);
    }
    return NULL;
}

struct clients {
    corio_addr addr;
    int connected, done, barrier;
    int failed;
    char why[160]; /* the first failure */
    /* Dials in flight, kept below the listen backlog: an overflowing
     * accept queue sends the kernel down its SYN-drop and syncookie paths,
     * where a connection is, rarely, reset (seen in about 1 run in 30 at
     * 10,000 simultaneous dials).  That is the kernel's behaviour under a
     * SYN flood, not what this test is about. */
    corio_sem handshakes;
};

static void fill_msg(char *m, int id, int round)
{
    for (int i = 0; i < MSG; i++)
        m[i] = (char)(id * 31 + round * 7 + i);
}

/* One checked round: 0, or the error with the step that met it. */
static int echo_round(int fd, int id, int round, const char **step)
{
    char out[MSG], in[MSG];
    fill_msg(out, id, round);
    ssize_t w = corio_write_all(fd, out, MSG, NULL, SEC(60));
    if (w != MSG) {
        *step = "write";
        return w < 0 ? (int)w : -EIO;
    }
    size_t got = 0;
    while (got < MSG) {
        ssize_t r = corio_read(fd, in + got, MSG - got, SEC(60));
        if (r <= 0) {
            *step = r == 0 ? "read (EOF)" : "read";
            return r < 0 ? (int)r : -EIO;
        }
        got += (size_t)r;
    }
    *step = "compare";
    return memcmp(in, out, MSG) == 0 ? 0 : -EIO;
}

static void client_failed(struct clients *c, int id, int round, const char *step, int err)
{
    if (!c->failed++)
        snprintf(c->why, sizeof c->why, "client %d, round %d, %s: %s", id, round, step, corio_strerror(err));
}

static void *client(void *p)
{
    struct clients *c = (struct clients *)((void **)p)[0];
    int id = (int)(intptr_t)((void **)p)[1];
    const char *step = "dial";
    int fd = -1, err = corio_sem_wait(&c->handshakes, SEC(60));
    if (!err) {
        fd = corio_net_dial_addr(&c->addr, NULL, SEC(60));
        err = fd < 0 ? fd : echo_round(fd, id, 1, &step);
        corio_sem_post(&c->handshakes);
    }
    if (err)
        client_failed(c, id, 1, step, err);
    if (++c->connected == CONNS) { /* the last one in opens the barrier */
        uint64_t one = 1;
        CHECK_EQ(write(c->barrier, &one, sizeof one), 8);
    }
    if (!err && (err = corio_wait_fd(c->barrier, CORIO_READABLE, SEC(60))) < 0)
        client_failed(c, id, 2, "barrier", err);
    else if (!err && (err = echo_round(fd, id, 2, &step)) < 0)
        client_failed(c, id, 2, step, err);
    if (fd >= 0)
        corio_close(fd);
    c->done++;
    return NULL;
}

static _Noreturn void run_clients(const corio_addr *a)
{
    corio_loop *loop = test_loop();
    static struct clients c;
    static void *args[CONNS][2];
    c.addr = *a;
    c.barrier = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    corio_sem_init(loop, &c.handshakes, 1024);
    for (int i = 0; i < CONNS; i++) {
        args[i][0] = &c;
        args[i][1] = (void *)(intptr_t)i;
        if (corio_spawn(loop, NULL, client, args[i], CO_STACK) < 0)
            _exit(3);
    }
    corio_loop_run(loop, CORIO_RUN_DEFAULT);
    if (c.failed || c.done != CONNS || c.connected != CONNS) {
        fprintf(stderr, "clients: %d failed, %d done, %d connected; first: %s\n", c.failed, c.done,
                c.connected, c.why);
        _exit(1);
    }
    _exit(0);
}

TEST_TIMEOUT(net_10k_connections, 180)
{
    struct server sv = {0};
    the_server = &sv;
    corio_listen_options o = {.backlog = 4096};
    corio_addr a;
    CHECK_EQ(corio_addr_parse(&a, "127.0.0.1:0"), 0);
    CHECK_EQ(corio_net_listen_addr(&sv.l, &a, &o), 0);
    corio_listener_addr(sv.l, &a);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(corio_listener_fd(sv.l));
        run_clients(&a);
    }
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, server_acceptor, &sv, 0), 0);
    test_run(loop);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (sv.error)
        fprintf(stderr, "server: first error %s\n", corio_strerror(sv.error));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(sv.max_live, CONNS);
    CHECK_EQ(sv.served, CONNS);
    corio_listener_close(sv.l);
    test_loop_free(loop);
}
