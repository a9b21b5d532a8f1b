/* The loop and handler counters against workloads whose numbers are
 * known; the JSON round trip; the Prometheus text through promtool; the
 * layer table and the in-process corio-top. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/fault.h"
#include "../src/internal.h"
#include "test.h"

extern char **environ;

static void take(corio_loop *loop, corio_stats *s, unsigned flags)
{
    CHECK_EQ(corio_stats_take(loop, s, flags), 0);
}

/* ---- A known workload on a socketpair ---- */

#define MSGS 100
#define MSG_LEN 300

static void *send_msgs(void *p)
{
    int fd = *(int *)p;
    char buf[MSG_LEN];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < MSGS; i++)
        CHECK_EQ(corio_write(fd, buf, sizeof buf, corio_after(5 * CORIO_SEC)), MSG_LEN);
    return NULL;
}

static void *recv_msgs(void *p)
{
    int fd = *(int *)p;
    char buf[MSG_LEN];
    size_t got = 0;
    while (got < (size_t)MSGS * MSG_LEN) {
        /* Exactly one message per read: the reader asks for no more. */
        size_t want = MSG_LEN - got % MSG_LEN;
        ssize_t r = corio_read(fd, buf, want, corio_after(5 * CORIO_SEC));
        CHECK(r > 0);
        got += (size_t)r;
    }
    return NULL;
}

TEST(stats_counts_exact)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    corio_stats a, b;
    take(loop, &a, 0);
    CHECK_EQ(corio_spawn(loop, NULL, recv_msgs, &sv[1], 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, send_msgs, &sv[0], 0), 0);
    test_run(loop);
    take(loop, &b, 0);
    CHECK_EQ(b.spawns - a.spawns, 2);
    CHECK_EQ(b.bytes_written - a.bytes_written, MSGS * MSG_LEN);
    CHECK_EQ(b.bytes_read - a.bytes_read, MSGS * MSG_LEN);
    CHECK_EQ(b.syscalls[CORIO_SYSCALL_WRITE], MSGS + b.eagain[CORIO_SYSCALL_WRITE]);
    /* Every read that did not return data said EAGAIN and waited. */
    CHECK(b.syscalls[CORIO_SYSCALL_READ] >= MSGS);
    CHECK_EQ(b.syscalls[CORIO_SYSCALL_READ] - b.eagain[CORIO_SYSCALL_READ],
             (b.bytes_read + MSG_LEN - 1) / MSG_LEN);
    CHECK(b.eagain[CORIO_SYSCALL_READ] >= 1); /* the reader ran first */
    uint64_t eagain = 0;
    for (unsigned k = 0; k < CORIO_SYSCALL_KINDS; k++)
        eagain += b.eagain[k];
    CHECK_EQ(eagain, loop->stats.eagain);
    CHECK_EQ(b.events_per_wait.count, b.waits);
    CHECK(b.events >= 1 && b.events_per_wait.sum == b.events);
    CHECK(b.ready_per_pass.count <= b.iterations);
    CHECK(b.resume_ns.count >= 1); /* the first fd wakeup is always sampled */
    CHECK(b.resume_ns.count <= b.switches);
    CHECK_EQ(b.co_running + b.co_ready + b.co_parked, 0);
    CHECK_EQ(strcmp(b.backend, corio_loop_backend(loop)), 0);
    CHECK_EQ(b.loops, 1);
    CHECK(b.uptime_ns > 0 && b.at > a.at);
    close(sv[0]);
    close(sv[1]);
    test_loop_free(loop);
}

/* ---- Coroutine states and timers ---- */

static void *sleeper(void *p)
{
    (void)p;
    corio_sleep_until(corio_after(50 * CORIO_MSEC));
    return NULL;
}

static void *observer(void *p)
{
    corio_stats *s = p;
    take(corio_loop_current(), s, 0);
    return NULL;
}

static void tick(corio_loop *loop, corio_timer *t)
{
    (void)loop;
    (*(int *)t->data)++;
}

TEST(stats_coroutines_and_timers)
{
    corio_loop *loop = test_loop();
    corio_stats s, end;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_spawn(loop, NULL, sleeper, NULL, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, observer, &s, 0), 0);
    int fired = 0;
    corio_timer t[3];
    for (int i = 0; i < 3; i++) {
        corio_timer_init(&t[i], tick, &fired);
        corio_timer_start(loop, &t[i], corio_after(CORIO_MSEC));
    }
    corio_timer_stop(loop, &t[1]);
    test_run(loop);
    /* The observer ran after the sleepers parked, in the same pass. */
    CHECK_EQ(s.co_running, 1);
    CHECK_EQ(s.co_parked, 3);
    CHECK_EQ(s.co_ready, 0);
    CHECK_EQ(s.timers_active, 5); /* two plain timers, three deadlines */
    take(loop, &end, 0);
    CHECK_EQ(fired, 2);
    CHECK_EQ(end.timers_started, 6);
    CHECK_EQ(end.timers_fired, 5);
    CHECK_EQ(end.timers_cancelled, 1);
    CHECK_EQ(end.spawns, 4);
    CHECK_EQ(end.co_running + end.co_parked + end.timers_active, 0);
    test_loop_free(loop);
}

/* ---- Handler counters: N requests over loopback TCP ---- */

#define REQS 50
static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

static int tcp_listener(int backlog, struct sockaddr_in *addr)
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

static void *serve(void *p)
{
    int lfd = *(int *)p;
    int fd = corio_accept(lfd, NULL, NULL, corio_after(5 * CORIO_SEC));
    CHECK(fd >= 0);
    char buf[sizeof req - 1];
    for (int i = 0; i < REQS; i++) {
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t r = corio_read(fd, buf + got, sizeof buf - got, corio_after(5 * CORIO_SEC));
            CHECK(r > 0);
            got += (size_t)r;
        }
        int64_t t0 = corio_now();
        CHECK_EQ(corio_write_all(fd, resp, sizeof resp - 1, NULL, corio_after(5 * CORIO_SEC)),
                 sizeof resp - 1);
        corio_stats_request(corio_loop_current(), got, sizeof resp - 1, corio_now() - t0, i % 10 == 9);
    }
    corio_close(fd);
    return NULL;
}

static void *client(void *p)
{
    struct sockaddr_in *a = p;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK_EQ(corio_connect(fd, (struct sockaddr *)a, sizeof *a, corio_after(5 * CORIO_SEC)), 0);
    char buf[sizeof resp - 1];
    for (int i = 0; i < REQS; i++) {
        CHECK_EQ(corio_write_all(fd, req, sizeof req - 1, NULL, corio_after(5 * CORIO_SEC)),
                 sizeof req - 1);
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t r = corio_read(fd, buf + got, sizeof buf - got, corio_after(5 * CORIO_SEC));
            CHECK(r > 0);
            got += (size_t)r;
        }
    }
    corio_close(fd);
    return NULL;
}

TEST(stats_handler_requests)
{
    corio_loop *loop = test_loop();
    struct sockaddr_in addr;
    int lfd = tcp_listener(16, &addr);
    CHECK_EQ(corio_spawn(loop, NULL, serve, &lfd, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, client, &addr, 0), 0);
    test_run(loop);
    corio_stats s;
    take(loop, &s, 0);
    CHECK_EQ(s.requests, REQS);
    CHECK_EQ(s.request_errors, REQS / 10);
    CHECK_EQ(s.request_bytes_in, REQS * (sizeof req - 1));
    CHECK_EQ(s.request_bytes_out, REQS * (sizeof resp - 1));
    CHECK_EQ(s.handler_ns.count, REQS);
    /* Both ends ran on this loop: every byte was read once and written once. */
    CHECK_EQ(s.bytes_read, REQS * (sizeof req - 1 + sizeof resp - 1));
    CHECK_EQ(s.bytes_written, s.bytes_read);
    CHECK_EQ(s.syscalls[CORIO_SYSCALL_ACCEPT] - s.eagain[CORIO_SYSCALL_ACCEPT], 1);
    CHECK_EQ(s.syscalls[CORIO_SYSCALL_CONNECT], 1);
    if (strcmp(s.backend, "epoll") == 0) /* registered once each: listener, server, client */
        CHECK_EQ(s.syscalls[CORIO_SYSCALL_CTL], 3);
    corio_close(lfd);
    test_loop_free(loop);
}

/* ---- The accept queue of a listener nobody accepts from ---- */

TEST(stats_listener_queue_depth)
{
    corio_loop *loop = test_loop();
    struct sockaddr_in addr;
    int lfd = tcp_listener(16, &addr);
    CHECK_EQ(corio_stats_listener(loop, lfd), 0);
    CHECK_EQ(corio_stats_listener(loop, lfd), -EEXIST);
    int c[3];
    for (int i = 0; i < 3; i++) { /* loopback handshakes complete without accept() */
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK_EQ(connect(c[i], (struct sockaddr *)&addr, sizeof addr), 0);
    }
    corio_stats s;
    take(loop, &s, CORIO_STATS_SOCKETS);
    CHECK(s.nsock >= 1);
    CHECK_EQ(s.sock[0].fd, lfd);
    CHECK(s.sock[0].listening);
    CHECK_EQ(s.sock[0].queue, 3);
    CHECK_EQ(s.sock[0].backlog, 16);
    char text[65536];
    CHECK(corio_stats_prometheus(&s, text, sizeof text) > 0);
    char want[64];
    snprintf(want, sizeof want, "corio_listener_queue_length{fd=\"%d\"} 3\n", lfd);
    CHECK(strstr(text, want) != NULL);
    corio_stats_listener_remove(loop, lfd);
    take(loop, &s, CORIO_STATS_SOCKETS);
    CHECK_EQ(s.nsock, 0); /* never waited on, so not in the fd table either */
    for (int i = 0; i < 3; i++)
        close(c[i]);
    close(lfd);
    test_loop_free(loop);
}

TEST(stats_listener_errors)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_stats_listener(loop, -1), -EBADF);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(corio_stats_listener(loop, 100 + i), 0);
    CHECK_EQ(corio_stats_listener(loop, 200), -ENOSPC);
    corio_stats s; /* the fds are not open: the snapshot skips them */
    take(loop, &s, CORIO_STATS_SOCKETS);
    CHECK_EQ(s.nsock, 0);
    test_loop_free(loop);
}

/* ---- Another thread may not read a loop's plain counters ---- */

static void *other_thread(void *p)
{
    corio_stats s;
    return (void *)(intptr_t)corio_stats_take(p, &s, 0);
}

TEST(stats_wrong_thread)
{
    corio_loop *loop = test_loop();
    pthread_t th;
    void *r;
    CHECK_EQ(pthread_create(&th, NULL, other_thread, loop), 0);
    CHECK_EQ(pthread_join(th, &r), 0);
    CHECK_EQ((intptr_t)r, -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_stats_listener(loop, 0), 0);
    test_loop_free(loop);
}

/* ---- Histograms and merging ---- */

TEST(stats_hist_and_merge)
{
    corio_hist h = {0};
    uint64_t vals[] = {0, 1, 2, 3, 4, 1000, 1u << 20};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        corio__hist_add(&h, vals[i]);
    corio__hist_add(&h, UINT64_MAX); /* clamps into the last bucket */
    CHECK_EQ(h.count, 8);
    CHECK_EQ(h.bucket[0], 1);
    CHECK_EQ(h.bucket[1], 1);
    CHECK_EQ(h.bucket[2], 2);
    CHECK_EQ(h.bucket[3], 1);
    CHECK_EQ(h.bucket[10], 1);
    CHECK_EQ(h.bucket[21], 1);
    CHECK_EQ(h.bucket[CORIO_HIST_BUCKETS - 1], 1);
    CHECK_EQ(corio_hist_quantile(&h, 0.5), 3);
    CHECK_EQ(corio_hist_quantile(&h, 0), 0);
    corio_hist empty = {0};
    CHECK_EQ(corio_hist_quantile(&empty, 0.99), 0);

    corio_loop *loop = test_loop();
    corio_stats a, b, sum;
    corio_stats_request(loop, 10, 20, 1000, false);
    take(loop, &a, CORIO_STATS_KERNEL);
    corio_stats_request(loop, 1, 2, 3000, true);
    take(loop, &b, 0);
    memset(&sum, 0, sizeof sum);
    corio_stats_merge(&sum, &a);
    corio_stats_merge(&sum, &b);
    CHECK_EQ(sum.loops, 2);
    CHECK_EQ(sum.requests, 3);
    CHECK_EQ(sum.request_errors, 1);
    CHECK_EQ(sum.request_bytes_in, 21);
    CHECK_EQ(sum.handler_ns.count, 3);
    CHECK_EQ(sum.handler_ns.sum, 5000);
    CHECK_EQ(sum.kernel.valid, a.kernel.valid);
    CHECK_EQ(sum.kernel.tcp_in_segs, a.kernel.tcp_in_segs); /* taken, not summed */
    CHECK_EQ(strcmp(corio_syscall_name(CORIO_SYSCALL_ACCEPT), "accept"), 0);
    CHECK_EQ(strcmp(corio_syscall_name(99), "?"), 0);
    test_loop_free(loop);
}

/* ---- JSON ---- */

static void busy_snapshot(corio_loop *loop, corio_stats *s)
{
    int sv[2];
    test_socketpair(sv);
    CHECK_EQ(corio_spawn(loop, NULL, recv_msgs, &sv[1], 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, send_msgs, &sv[0], 0), 0);
    test_run(loop);
    corio_stats_request(loop, 100, 200, 12345, false);
    take(loop, s, CORIO_STATS_ALL);
    close(sv[0]);
    close(sv[1]);
}

TEST(stats_json_round_trip)
{
    corio_loop *loop = test_loop();
    corio_stats s, back;
    busy_snapshot(loop, &s);
    static char j1[49152], j2[49152];
    ssize_t n = corio_stats_json(&s, j1, sizeof j1);
    CHECK(n > 0 && (size_t)n == strlen(j1));
    CHECK_EQ(corio_stats_from_json(&back, j1, (size_t)n), 0);
    CHECK_EQ(corio_stats_json(&back, j2, sizeof j2), n);
    CHECK_EQ(strcmp(j1, j2), 0);
    CHECK_EQ(back.requests, 1);
    CHECK_EQ(back.bytes_read, MSGS * MSG_LEN);
    CHECK_EQ(back.handler_ns.sum, 12345);
    CHECK_EQ(back.kernel.nnic, s.kernel.nnic);
    CHECK_EQ(memcmp(&back.resume_ns, &s.resume_ns, sizeof s.resume_ns), 0);
    CHECK_EQ(memcmp(back.syscalls, s.syscalls, sizeof s.syscalls), 0);
    /* Too small a buffer fails cleanly. */
    CHECK_EQ(corio_stats_json(&s, j2, 100), -ENOBUFS);
    CHECK_EQ(j2[0], '\0');
    CHECK_EQ(corio_stats_json(&s, j2, 0), -ENOBUFS);
    test_loop_free(loop);
}

TEST(stats_json_reader_rejects_malformed)
{
    static const char *const bad[] = {
        "", "[]", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":1} x", "{\"a\":\"\x01\"}",
        "{\"a\":tru}", "{\"a\":[1,2}", "{\"a\":-}", "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":1}}}}}}}",
    };
    corio_stats s;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = corio_stats_from_json(&s, bad[i], strlen(bad[i]));
        if (r != -EINVAL)
            test_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
        CHECK_EQ(s.requests, 0);
    }
    /* Unknown keys, floats and literals are skipped; names are unescaped. */
    const char *ok = "{\"x\":[1.5,true,null,{\"y\":\"z\"}],\"handler\":{\"requests\":7,"
                     "\"time_ns\":{\"count\":2,\"buckets\":[0,2]}},\"nic\":[{\"name\":\"a\\\"b\","
                     "\"rx_bytes\":9}],\"backend\":\"poll\",\"at_ns\":5}";
    CHECK_EQ(corio_stats_from_json(&s, ok, strlen(ok)), 0);
    CHECK_EQ(s.requests, 7);
    CHECK_EQ(s.handler_ns.count, 2);
    CHECK_EQ(s.handler_ns.bucket[1], 2);
    CHECK_EQ(s.kernel.nnic, 1);
    CHECK_EQ(strcmp(s.kernel.nic[0].name, "a\"b"), 0);
    CHECK_EQ(s.kernel.nic[0].rx_bytes, 9);
    CHECK_EQ(strcmp(s.backend, "poll"), 0);
    CHECK_EQ(s.at, 5);
}

/* ---- Prometheus, checked by promtool ---- */

/* Runs `promtool check metrics` on text; returns its exit status. */
static int promtool(const char *text, size_t len, char *out, size_t outlen)
{
    int in[2], res[2];
    CHECK_EQ(pipe(in), 0);
    CHECK_EQ(pipe(res), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, res[1], 1);
    posix_spawn_file_actions_adddup2(&fa, res[1], 2);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, res[0]);
    char *argv[] = {"promtool", "check", "metrics", NULL};
    pid_t pid;
    int r = posix_spawnp(&pid, "promtool", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(res[1]);
    if (r != 0) {
        close(in[1]);
        close(res[0]);
        test_fail(__FILE__, __LINE__, "promtool not found: install Debian's prometheus package "
                                      "(scripts/install-deps.sh)");
    }
    CHECK_EQ(write(in[1], text, len), (ssize_t)len); /* promtool reads while we write */
    close(in[1]);
    ssize_t n = read(res[0], out, outlen - 1);
    out[n > 0 ? n : 0] = '\0';
    close(res[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST_TIMEOUT(stats_prometheus_promtool, 60)
{
    corio_loop *loop = test_loop();
    corio_stats s;
    busy_snapshot(loop, &s);
    static char text[65536];
    char msg[4096];
    ssize_t n = corio_stats_prometheus(&s, text, sizeof text);
    CHECK(n > 0);
    int st = promtool(text, (size_t)n, msg, sizeof msg);
    if (st != 0)
        test_fail(__FILE__, __LINE__, "promtool rejected our output (%d): %s", st, msg);
    CHECK(strstr(text, "# TYPE corio_resume_latency_seconds histogram\n"));
    CHECK(strstr(text, "corio_syscalls_total{kind=\"read\"} "));
    CHECK(strstr(text, "corio_nic_received_bytes_total{interface=\"lo\"} "));
    /* Without kernel figures the output is still valid. */
    memset(&s.kernel, 0, sizeof s.kernel);
    s.nsock = 0;
    n = corio_stats_prometheus(&s, text, sizeof text);
    CHECK(n > 0);
    CHECK_EQ(promtool(text, (size_t)n, msg, sizeof msg), 0);
    /* The checker is real: a broken sample and a bad name are caught. */
    static const char broken[] = "# HELP corio_x_total x\n# TYPE corio_x_total counter\ncorio_x_total{a=\"b} 1\n";
    CHECK(promtool(broken, sizeof broken - 1, msg, sizeof msg) != 0);
    static const char lint[] = "# HELP corio_x_milliseconds x\n# TYPE corio_x_milliseconds gauge\ncorio_x_milliseconds 1\n";
    CHECK(promtool(lint, sizeof lint - 1, msg, sizeof msg) != 0);
    CHECK_EQ(corio_stats_prometheus(&s, text, 64), -ENOBUFS);
    test_loop_free(loop);
}

/* ---- The layer table and corio-top in-process ---- */

TEST(stats_table_layers)
{
    corio_loop *loop = test_loop();
    corio_stats a, b;
    take(loop, &a, CORIO_STATS_ALL);
    busy_snapshot(loop, &b);
    char text[8192];
    ssize_t n = corio_stats_table(&a, &b, text, sizeof text, 0);
    CHECK(n > 0);
    const char *layers[] = {"NIC ", "KERNEL ", "SOCKETS ", "READINESS ", "LOOP ", "HANDLER "};
    const char *at = text;
    for (int i = 0; i < 6; i++) { /* top to bottom, as the journey goes */
        const char *p = at;
        while ((p = strstr(p + 1, layers[i])) && !(p[-2] == '\n' && (p[-1] == ' ' || p[-1] == '>')))
            ;
        if (!p)
            test_fail(__FILE__, __LINE__, "no %s after the previous layer in:\n%s", layers[i], text);
        at = p;
    }
    CHECK_EQ(strstr(text, "\n>") != NULL, corio_stats_bottleneck(&a, &b, NULL) >= 0);
    CHECK(strstr(text, "bottleneck: "));
    CHECK(strstr(text, "requests "));
    CHECK_EQ(corio_stats_table(NULL, &b, text, sizeof text, CORIO_TABLE_COLOR) > 0, 1);
    CHECK(strstr(text, "\033[1m"));
    CHECK_EQ(corio_stats_table(&a, &b, text, 50, 0), -ENOBUFS);
    test_loop_free(loop);
}

TEST(stats_bottleneck_verdicts)
{
    corio_stats a, b;
    memset(&a, 0, sizeof a);
    a.loops = 1;
    b = a;
    b.at = a.at + CORIO_SEC;
    b.blocked_ns = CORIO_SEC / 2; /* half idle: nothing stands out */
    CHECK_EQ(corio_stats_bottleneck(&a, &b, NULL), -1);
    b.blocked_ns = 0; /* never blocked, handlers take most of it */
    b.handler_ns.count = 1, b.handler_ns.sum = 8 * CORIO_SEC / 10;
    const char *why;
    CHECK_EQ(corio_stats_bottleneck(&a, &b, &why), 5);
    CHECK_EQ(strcmp(why, "HANDLER"), 0);
    b.handler_ns.sum = CORIO_SEC / 10; /* busy, but not in handlers */
    CHECK_EQ(corio_stats_bottleneck(&a, &b, NULL), 4);
    b.nsock = 1; /* an accept queue filling up comes first */
    b.sock[0] = (corio_sock_stats){.fd = 3, .listening = true, .queue = 100, .backlog = 128};
    CHECK_EQ(corio_stats_bottleneck(&a, &b, NULL), 2);
    a.kernel.valid = b.kernel.valid = true;
    b.kernel.listen_overflows = 5;
    CHECK_EQ(corio_stats_bottleneck(&a, &b, NULL), 1);
    a.kernel.nnic = b.kernel.nnic = 1;
    b.kernel.nic[0].rx_dropped = 1;
    CHECK_EQ(corio_stats_bottleneck(&a, &b, NULL), 0);
}

struct top_arg {
    int fd;
};

static void *top_co(void *p)
{
    struct top_arg *t = p;
    CHECK_EQ(corio_stats_top(t->fd, 20 * CORIO_MSEC, corio_after(70 * CORIO_MSEC)), 0);
    return NULL;
}

TEST(stats_top_in_process)
{
    corio_loop *loop = test_loop();
    int sv[2];
    test_socketpair(sv);
    struct top_arg t = {sv[0]};
    CHECK_EQ(corio_spawn(loop, NULL, top_co, &t, 0), 0);
    test_run(loop);
    static char screen[65536];
    ssize_t n = read(sv[1], screen, sizeof screen - 1);
    CHECK(n > 0);
    screen[n] = '\0';
    CHECK(strstr(screen, "\033[H\033[2J"));
    CHECK(strstr(screen, "corio-top"));
    CHECK(strstr(screen, "HANDLER"));
    CHECK_EQ(corio_stats_top(sv[0], CORIO_MSEC, CORIO_FOREVER), -CORIO_ENOTCO);
    close(sv[0]);
    close(sv[1]);
    test_loop_free(loop);
}

/* ---- Failures of the kernel reads are contained ---- */

TEST(stats_kernel_read_faults)
{
    corio_loop *loop = test_loop();
    corio_stats s;
    const char *names[] = {"open", "read", "malloc"};
    for (int i = 0; i < 3; i++) {
        corio__fault_arm(NULL, names[i], 1, -EIO);
        take(loop, &s, CORIO_STATS_ALL);
        corio__fault_disarm();
        CHECK(!s.kernel.valid);
        CHECK_EQ(s.kernel.nnic, 0);
        corio_kstats k;
        corio__fault_arm(NULL, names[i], 1, -EIO);
        int r = corio_kstats_read(&k);
        corio__fault_disarm();
        CHECK(r == -EIO || r == -ENOMEM);
        CHECK(!k.valid);
    }
    take(loop, &s, CORIO_STATS_KERNEL);
    CHECK(s.kernel.valid);
    test_loop_free(loop);
}

/* ---- Summing loops on other threads ---- */

struct remote_loop {
    corio_loop *loop;
    corio_callback stop;
    int ready[2];
};

static void stop_remote(corio_loop *loop, corio_callback *cb)
{
    (void)cb;
    corio_loop_unref(loop);
}

static void *remote_thread(void *p)
{
    struct remote_loop *r = p;
    CHECK_EQ(corio_loop_new(&r->loop, NULL), 0);
    corio_loop_ref(r->loop); /* alive until stop_remote */
    corio_stats_request(r->loop, 5, 7, 100, false);
    CHECK_EQ(write(r->ready[1], "x", 1), 1);
    CHECK(corio_loop_run(r->loop, CORIO_RUN_DEFAULT) >= 0);
    CHECK_EQ(corio_loop_free(r->loop), 0);
    return NULL;
}

static void *sum_loops(void *p)
{
    corio_loop **loops = p;
    corio_stats s;
    corio_stats_request(loops[0], 1, 2, 100, true);
    CHECK_EQ(corio_stats_take_loops(loops, 2, &s, CORIO_STATS_ALL, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(s.loops, 2);
    CHECK_EQ(s.requests, 2);
    CHECK_EQ(s.request_errors, 1);
    CHECK_EQ(s.request_bytes_in, 6);
    CHECK_EQ(s.request_bytes_out, 9);
    CHECK(s.kernel.valid);
    CHECK_EQ(s.co_running, 2); /* this coroutine and the one taking the remote snapshot */
    CHECK_EQ(corio_stats_take_loops(loops, 2, &s, 0, CORIO_NOWAIT), -ETIMEDOUT);
    return NULL;
}

TEST(stats_take_loops_across_threads)
{
    struct remote_loop r = {0};
    CHECK_EQ(pipe(r.ready), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, remote_thread, &r), 0);
    char x;
    CHECK_EQ(read(r.ready[0], &x, 1), 1);
    corio_loop *loop = test_loop();
    corio_loop *loops[2] = {loop, r.loop};
    CHECK_EQ(corio_spawn(loop, NULL, sum_loops, loops, 0), 0);
    test_run(loop);
    corio_stats s;
    CHECK_EQ(corio_stats_take_loops(loops, 2, &s, 0, CORIO_FOREVER), -CORIO_ENOTCO);
    r.stop.fn = stop_remote;
    CHECK_EQ(corio_loop_post(r.loop, &r.stop), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    close(r.ready[0]);
    close(r.ready[1]);
    test_loop_free(loop);
}
