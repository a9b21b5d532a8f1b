/* The kernel's layers: NIC and TCP/IP counters from /proc, per-socket
 * queues from TCP_INFO, SIOCINQ and SIOCOUTQ, and the socket sample a
 * loop snapshot takes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static int listener(int backlog, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(fd, backlog), 0);
    socklen_t len = sizeof *addr;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

/* A connected loopback TCP pair: c the client end, s the accepted one. */
static void tcp_pair(int *c, int *s)
{
    struct sockaddr_in addr;
    int lfd = listener(4, &addr);
    *c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(*c, (struct sockaddr *)&addr, sizeof addr), 0);
    *s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(*s >= 0);
    close(lfd);
}

static uint64_t sysfs_u64(const char *path)
{
    char buf[64] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? strtoull(buf, NULL, 10) : 0;
}

static const corio_nic_stats *find_nic(const corio_kstats *k, const char *name)
{
    for (unsigned i = 0; i < k->nnic; i++)
        if (strcmp(k->nic[i].name, name) == 0)
            return &k->nic[i];
    return NULL;
}

TEST(kstats_read_nic_and_tcp)
{
    corio_kstats a, b;
    CHECK_EQ(corio_kstats_read(&a), 0);
    CHECK(a.valid);
    const corio_nic_stats *lo = find_nic(&a, "lo");
    CHECK(lo != NULL);
    /* /proc/net/dev and sysfs report the same counters (dev_get_stats). */
    uint64_t sys_rx = sysfs_u64("/sys/class/net/lo/statistics/rx_bytes");
    if (sys_rx) /* sysfs may belong to another netns in a container */
        CHECK(lo->rx_bytes <= sys_rx || sys_rx < 1000);
    CHECK(a.sockets_used > 0);
    CHECK(a.tcp_mem_limit >= a.tcp_mem_pressure && a.tcp_mem_pressure > 0);

    /* Traffic over loopback moves the NIC and the TCP counters. */
    int c, s;
    tcp_pair(&c, &s);
    char buf[10000];
    memset(buf, 1, sizeof buf);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(write(c, buf, sizeof buf), (ssize_t)sizeof buf);
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t r = recv(s, buf, sizeof buf, MSG_WAITALL);
            if (r < 0 && errno == EAGAIN)
                continue;
            CHECK(r > 0);
            got += (size_t)r;
        }
    }
    CHECK_EQ(corio_kstats_read(&b), 0);
    const corio_nic_stats *lo2 = find_nic(&b, "lo");
    CHECK(lo2 && lo2->rx_bytes >= lo->rx_bytes + 100000);
    CHECK(lo2->rx_packets > lo->rx_packets && lo2->tx_packets > lo->tx_packets);
    CHECK(b.tcp_out_segs > a.tcp_out_segs && b.tcp_in_segs > a.tcp_in_segs);
    CHECK(b.tcp_active_opens >= a.tcp_active_opens + 1);
    CHECK(b.tcp_passive_opens >= a.tcp_passive_opens + 1);
    CHECK(b.tcp_curr_estab >= 2);
    close(c);
    close(s);
}

TEST(kstats_socket_queues)
{
    int c, s;
    tcp_pair(&c, &s);
    corio_sock_stats st;
    CHECK_EQ(corio_sock_stats_read(s, &st), 0);
    CHECK_EQ(st.fd, s);
    CHECK(!st.listening);
    CHECK_EQ(st.tcp_state, TCP_ESTABLISHED);
    CHECK_EQ(st.inq, 0);
    /* Bytes the application has not read yet wait in the receive buffer. */
    char buf[1000];
    memset(buf, 2, sizeof buf);
    CHECK_EQ(write(c, buf, sizeof buf), (ssize_t)sizeof buf);
    for (int i = 0; i < 1000 && st.inq < sizeof buf; i++) /* loopback delivers at once */
        CHECK_EQ(corio_sock_stats_read(s, &st), 0);
    CHECK_EQ(st.inq, sizeof buf);
    CHECK(st.rtt_us > 0);
    CHECK_EQ(read(s, buf, sizeof buf), (ssize_t)sizeof buf);
    CHECK_EQ(corio_sock_stats_read(s, &st), 0);
    CHECK_EQ(st.inq, 0);
    CHECK_EQ(corio_sock_stats_read(c, &st), 0);
    CHECK(st.outq <= sizeof buf);
    close(c);
    close(s);
}

TEST(kstats_socket_errors)
{
    corio_sock_stats st;
    int sv[2];
    test_socketpair(sv);
    CHECK_EQ(corio_sock_stats_read(sv[0], &st), -EOPNOTSUPP);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(corio_sock_stats_read(p[0], &st), -ENOTSOCK);
    CHECK_EQ(corio_sock_stats_read(-1, &st), -EBADF);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(corio_sock_stats_read(u, &st) < 0);
    close(u);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* A listener with a full accept queue: the kernel counts the overflow. */
TEST(kstats_listen_overflow)
{
    struct sockaddr_in addr;
    int lfd = listener(1, &addr);
    corio_kstats a, b;
    CHECK_EQ(corio_kstats_read(&a), 0);
    int c[4];
    for (int i = 0; i < 4; i++) { /* the queue holds backlog + 1; the rest overflow */
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int r = connect(c[i], (struct sockaddr *)&addr, sizeof addr);
        CHECK(r == 0 || errno == EINPROGRESS);
    }
    corio_sock_stats st;
    int64_t until = corio_after(2 * CORIO_SEC);
    do /* the handshakes finish in softirq context: bounded wait for them */
        CHECK_EQ(corio_sock_stats_read(lfd, &st), 0);
    while (st.queue < 2 && corio_now() < until);
    CHECK(st.listening);
    CHECK_EQ(st.backlog, 1);
    CHECK_EQ(st.queue, 2);
    CHECK_EQ(corio_kstats_read(&b), 0);
    CHECK(b.listen_overflows > a.listen_overflows);
    CHECK(b.listen_drops > a.listen_drops);
    for (int i = 0; i < 4; i++)
        close(c[i]);
    close(lfd);
}

/* The snapshot samples the loop's registered sockets, a few at a time,
 * resuming where the previous snapshot stopped. */
static void *wait_readable(void *p)
{
    int fd = *(int *)p;
    CHECK_EQ(corio_wait_fd(fd, CORIO_READABLE, corio_after(5 * CORIO_SEC)) & CORIO_READABLE,
             CORIO_READABLE);
    return NULL;
}

static void *sample(void *p)
{
    int *fds = p;
    corio_loop *loop = corio_loop_current();
    corio_stats s;
    bool seen[20] = {0};
    for (int round = 0; round < 3; round++) {
        CHECK_EQ(corio_stats_take(loop, &s, CORIO_STATS_SOCKETS), 0);
        CHECK(s.nsock >= 1 && s.nsock <= CORIO_STATS_SOCKS);
        for (unsigned i = 0; i < s.nsock; i++)
            for (int k = 0; k < 20; k++)
                if (s.sock[i].fd == fds[k])
                    seen[k] = true;
    }
    for (int k = 0; k < 20; k++)
        CHECK(seen[k]);
    char x = 'x';
    for (int k = 0; k < 20; k++) /* let the waiters go */
        CHECK_EQ(write(fds[20 + k], &x, 1), 1);
    return NULL;
}

TEST(kstats_loop_socket_sample)
{
    corio_loop *loop = test_loop();
    int fds[40];
    for (int k = 0; k < 20; k++) {
        tcp_pair(&fds[20 + k], &fds[k]);
        CHECK_EQ(corio_spawn(loop, NULL, wait_readable, &fds[k], 0), 0);
    }
    CHECK_EQ(corio_spawn(loop, NULL, sample, fds, 0), 0);
    test_run(loop);
    for (int k = 0; k < 40; k++)
        corio_close(fds[k]);
    test_loop_free(loop);
}
