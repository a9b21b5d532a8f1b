/* The fault walk's workloads for the areas above the core: sockets and
 * streams, datagrams, sync primitives, the blocking pool and name
 * resolution, signals, parking and servers, loops on threads, prefork, and
 * the metrics.  The walk itself (and the core workload) is in
 * test_fault.c; fault_walk.h says what a workload is.
 *
 * Every workload reaches its area's syscall sites on a plain run; the walk
 * then fails each call in turn.  An exchange checks every byte it gets and
 * reports any error it meets; nothing here asserts on an error a fault can
 * cause, only on what no fault may cause (wrong data, a hang, a leak). */
#include <arpa/inet.h>
#include <stdio.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../apps/http/server.h"
#include "fault_walk.h"

static int64_t deadline(const struct wctx *w)
{
    return corio_after(w->io_ns);
}

static char line_char(int seed, size_t i)
{
    return (char)('a' + fault_pattern(seed, i) % 26);
}

/* ---- Sockets and streams: TCP and Unix listeners, dialling, addresses,
 * and every way of reading a stream. ---- */

struct lsrv {
    struct wctx *w;
    corio_listener *l;
    corio_co *acc; /* its acceptor, or NULL */
};

struct sconn {
    struct wctx *w;
    int fd;
};

/* Echoes lines through a stream: readline, write, and a flush whenever
 * nothing more is buffered (so pipelined lines go out in one write). */
static void *line_handler(void *p)
{
    struct sconn c = *(struct sconn *)p;
    free(p);
    int64_t dl = deadline(c.w);
    corio_stream *s;
    int r = corio_stream_open(&s, c.fd, NULL);
    if (r < 0) {
        fault_saw(c.w, r);
        corio_close(c.fd);
        return NULL;
    }
    for (;;) {
        const char *line;
        ssize_t n = corio_stream_readline(s, &line, 4096, dl);
        if (n <= 0) {
            if (n < 0)
                fault_saw(c.w, (int)n);
            break;
        }
        r = (int)corio_stream_write(s, line, (size_t)n, dl);
        if (r >= 0 && corio_stream_buffered(s, NULL) == 0)
            r = corio_stream_flush(s, dl);
        if (r < 0) {
            fault_saw(c.w, r);
            break;
        }
    }
    r = corio_stream_close(s, dl);
    if (r < 0)
        fault_saw(c.w, r);
    return NULL;
}

static void *line_acceptor(void *p)
{
    struct lsrv *sv = p;
    for (int errors = 0;;) {
        corio_addr peer;
        int fd = corio_listener_accept(sv->l, &peer, CORIO_FOREVER);
        if (fd == -CORIO_ECLOSED || fd == -EBADF || fd == -ECANCELED)
            break;
        if (fd < 0) {
            fault_saw(sv->w, fd);
            CHECK(++errors < 100);
            corio_sleep_until(corio_after(CORIO_MSEC));
            continue;
        }
        struct sconn *c = malloc(sizeof *c);
        CHECK(c != NULL);
        *c = (struct sconn){sv->w, fd};
        if (fault_spawn(sv->w, NULL, line_handler, c) < 0) {
            free(c);
            corio_close(fd);
        }
    }
    return NULL;
}

struct lclient {
    struct wctx *w;
    char addr[128];
    int seed;
    int lines;
};

static size_t line_len(const struct lclient *cl, int i)
{
    return 1 + fault_pattern(cl->seed, (size_t)i * 31) * 3 % 700;
}

/* Writes the lines (write and writev in turn), half-closes, then reads the
 * echo back, each line a different way. */
static int line_talk(struct lclient *cl, corio_stream *s, int64_t dl)
{
    char buf[800];
    size_t off = 0;
    for (int i = 0; i < cl->lines; i++) {
        size_t n = line_len(cl, i);
        for (size_t k = 0; k < n; k++)
            buf[k] = line_char(cl->seed, off + k);
        buf[n] = '\n';
        off += n;
        ssize_t r;
        if (i % 2) {
            struct iovec iov[2] = {{buf, n / 2}, {buf + n / 2, n + 1 - n / 2}};
            r = corio_stream_writev(s, iov, 2, dl);
        } else {
            r = corio_stream_write(s, buf, n + 1, dl);
        }
        if (r < 0)
            return (int)r;
    }
    int r = corio_stream_shutdown(s, dl);
    if (r < 0)
        return r;
    off = 0;
    for (int i = 0; i < cl->lines; i++) {
        size_t n = line_len(cl, i);
        const char *v = NULL;
        ssize_t got;
        switch (i % 4) {
        case 0:
            got = corio_stream_readline(s, &v, 4096, dl);
            break;
        case 1:
            got = corio_stream_read_until(s, "\n", 1, &v, 4096, dl);
            break;
        case 2:
            got = corio_stream_read_exactly(s, buf, n + 1, dl);
            v = buf;
            break;
        default:
            got = corio_stream_peek(s, n + 1, (const void **)&v, dl);
            if (got > (ssize_t)n)
                got = (ssize_t)n + 1;
            break;
        }
        if (got < 0)
            return (int)got;
        if (got == 0) /* the server went away (its own fault): end of stream */
            return -CORIO_EEOF;
        size_t k = 0;
        while (got == (ssize_t)n + 1 && k < n && v[k] == line_char(cl->seed, off + k))
            k++;
        if (got != (ssize_t)n + 1 || k < n || v[n] != '\n') {
            fprintf(stderr, "line client %d: line %d (read mode %d): %zd bytes for %zu, first "
                    "difference at %zu\n", cl->seed, i, i % 4, got, n + 1, k);
            cl->w->wrong++;
            return -EPROTO;
        }
        if (i % 4 == 3)
            corio_stream_consume(s, n + 1);
        off += n;
    }
    const char *v;
    ssize_t end = corio_stream_readline(s, &v, 4096, dl);
    return end == 0 ? 0 : end < 0 ? (int)end : -EPROTO;
}

static void *line_client(void *p)
{
    struct lclient *cl = p;
    int64_t dl = deadline(cl->w);
    int fd = corio_net_dial(cl->addr, NULL, dl);
    int r = fd < 0 ? fd : 0;
    corio_addr a;
    if (r == 0)
        r = corio_addr_local(fd, &a);
    if (r == 0)
        r = corio_addr_peer(fd, &a);
    corio_stream *s = NULL;
    if (r == 0)
        r = corio_stream_open(&s, fd, NULL);
    if (r == 0)
        r = line_talk(cl, s, dl);
    if (s) {
        int c = corio_stream_close(s, dl);
        r = r < 0 ? r : c;
    } else if (fd >= 0) {
        corio_close(fd);
    }
    if (r < 0)
        fault_exchange_failed(cl->w, r);
    return NULL;
}

/* Listens on addr, retrying a failure. */
static int listen_retry(struct wctx *w, corio_listener **l, const char *addr)
{
    int r = 0;
    for (int tries = 0; tries < 3; tries++) {
        r = corio_net_listen(l, addr, NULL, CORIO_FOREVER);
        if (r == 0)
            return 0;
        fault_saw(w, r);
    }
    return r;
}

/* Out of descriptors for real: with the limit lowered and every slot
 * taken, the listener must shed the queued connection with its reserve
 * descriptor (and not spin).  The TCP acceptor is parked meanwhile; it is
 * cancelled first so this coroutine does the accept. */
static void shed_exchange(struct wctx *w, struct lsrv *sv, corio_co *acceptor)
{
    /* valgrind keeps its own descriptor limit (RLIMIT_NOFILE is emulated),
     * under which the reserve it frees is not one accept4 may take. */
    const char *vg = getenv("CORIO_TEST_VALGRIND");
    if (vg && *vg && strcmp(vg, "0") != 0)
        return;
    fault_exchange_begin(w);
    corio_addr a;
    corio_listener_addr(sv->l, &a);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    int r = connect(c, (const struct sockaddr *)&a.ss, a.len);
    CHECK(r == 0 || errno == EINPROGRESS);
    /* Queued on the listener before descriptors run out (a bounded wait
     * on the kernel, not on the code under test). */
    struct pollfd q = {.fd = corio_listener_fd(sv->l), .events = POLLIN};
    CHECK(poll(&q, 1, 5000) == 1);
    if (acceptor) { /* the accept below is this one's */
        CHECK_EQ(corio_cancel(acceptor), 0);
        corio_yield();
    }
    struct rlimit old, low;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    int filler[256], nfill = 0, f;
    while (nfill < 256 && (f = dup(0)) >= 0)
        filler[nfill++] = f;
    uint64_t shed = corio_listener_shed(sv->l);
    r = corio_listener_accept(sv->l, NULL, CORIO_NOWAIT);
    if (r >= 0) { /* a free slot after all: not the case under test */
        corio_close(r);
        r = 0;
    } else if (r == -EAGAIN && corio_listener_shed(sv->l) == shed + 1) {
        r = 0; /* shed, the queue is empty, and it would wait */
    }
    while (nfill > 0)
        close(filler[--nfill]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    close(c);
    if (r < 0)
        fault_exchange_failed(w, r);
}

struct net_run {
    struct wctx *w;
    struct lsrv tcp, unx;
    struct lclient cl[3];
};

static void *net_main(void *p)
{
    struct net_run *n = p;
    struct wctx *w = n->w;
    char path[96];
    snprintf(path, sizeof path, "unix:/tmp/corio-fault-%d-%u.sock", (int)getpid(), w->serial++);
    /* A case whose unlink was failed leaves its file behind, and process
     * ids come round again: clear the way, as a server would. */
    unlink(path + 5);
    corio_co *cos[3];
    int nco = 0;
    struct lsrv *srv[2] = {&n->unx, &n->tcp};
    const char *addr[2] = {path, "127.0.0.1:0"};
    for (int i = 0; i < 2; i++) {
        srv[i]->w = w;
        srv[i]->l = NULL;
        srv[i]->acc = NULL;
        int r = listen_retry(w, &srv[i]->l, addr[i]);
        if (r == 0 && (r = fault_spawn(w, &srv[i]->acc, line_acceptor, srv[i])) == 0)
            continue;
        srv[i]->acc = NULL;
        if (srv[i]->l) {
            corio_listener_close(srv[i]->l);
            srv[i]->l = NULL;
        }
        fault_exchange_begin(w); /* the clients of this listener, counted once */
        fault_exchange_failed(w, r);
    }
    corio_addr a;
    char tcp_addr[CORIO_ADDR_STRLEN] = "";
    if (n->tcp.l) {
        corio_listener_addr(n->tcp.l, &a);
        CHECK(corio_addr_format(&a, tcp_addr, sizeof tcp_addr) > 0);
    }
    for (int i = 0; i < 3; i++) {
        struct lclient *cl = &n->cl[i];
        const struct lsrv *to = i == 2 ? &n->unx : &n->tcp;
        if (!to->l)
            continue;
        *cl = (struct lclient){.w = w, .seed = 10 + i, .lines = 30};
        snprintf(cl->addr, sizeof cl->addr, "%s", i == 2 ? path : tcp_addr);
        fault_exchange_begin(w);
        int r = fault_spawn(w, &cos[nco], line_client, cl);
        if (r == 0)
            nco++;
        else
            fault_exchange_failed(w, r);
    }
    for (int i = 0; i < nco; i++)
        CHECK_EQ(corio_join(cos[i], NULL, CORIO_FOREVER), 0);
    if (n->tcp.l)
        shed_exchange(w, &n->tcp, n->tcp.acc);
    /* The acceptors first: one backing off after an error holds the
     * listener and is parked in a sleep, which closing would not wake. */
    for (int i = 0; i < 2; i++) {
        if (srv[i]->acc) {
            CHECK_EQ(corio_cancel(srv[i]->acc), 0);
            CHECK_EQ(corio_join(srv[i]->acc, NULL, CORIO_FOREVER), 0);
        }
        if (srv[i]->l) {
            int r = corio_listener_close(srv[i]->l);
            if (r < 0)
                fault_saw(w, r);
        }
    }
    unlink(path + 5); /* gone already, unless its unlink was failed */
    return NULL;
}

static void wl_net(struct wctx *w)
{
    fault_new_loop(w);
    struct net_run n = {.w = w};
    int r = fault_spawn(w, NULL, net_main, &n);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
}

/* ---- Datagrams: UDP echo with single and batched calls. ---- */

#define DGRAMS 8

struct dg_run {
    struct wctx *w;
    int sfd;
    corio_addr saddr;
};

static void *dg_server(void *p)
{
    struct dg_run *d = p;
    char bufs[DGRAMS][1100];
    corio_addr from[DGRAMS];
    for (;;) {
        corio_dgram_msg m[DGRAMS];
        for (int i = 0; i < DGRAMS; i++)
            m[i] = (corio_dgram_msg){.buf = bufs[i], .len = sizeof bufs[i], .addr = &from[i]};
        int n = corio_dgram_recv_batch(d->sfd, m, DGRAMS, CORIO_FOREVER);
        if (n == -CORIO_ECLOSED || n == -EBADF)
            break;
        if (n < 0) {
            fault_saw(d->w, n);
            continue;
        }
        for (int i = 0; i < n; i++) {
            ssize_t r = corio_dgram_sendto(d->sfd, bufs[i], m[i].result, &from[i], deadline(d->w));
            if (r < 0)
                fault_saw(d->w, (int)r);
        }
    }
    return NULL;
}

struct dg_client {
    struct dg_run *d;
    int seed;
};

/* Sends DGRAMS datagrams in batches and checks every echo. */
static int dg_talk(struct dg_client *c, int fd, int64_t dl)
{
    static char out[DGRAMS][1000];
    corio_dgram_msg m[DGRAMS];
    size_t len[DGRAMS];
    for (int i = 0; i < DGRAMS; i++) {
        len[i] = 100 + (size_t)i * 100;
        out[i][0] = (char)i;
        for (size_t k = 1; k < len[i]; k++)
            out[i][k] = (char)fault_pattern(c->seed + i, k);
        m[i] = (corio_dgram_msg){.buf = out[i], .len = len[i]};
    }
    for (int sent = 0; sent < DGRAMS;) {
        int r = corio_dgram_send_batch(fd, m + sent, (unsigned)(DGRAMS - sent), dl);
        if (r < 0)
            return r;
        sent += r;
    }
    bool got[DGRAMS] = {false};
    for (int k = 0; k < DGRAMS; k++) {
        char in[1100];
        ssize_t n = corio_dgram_recvfrom(fd, in, sizeof in, NULL, dl);
        if (n < 0)
            return (int)n;
        int i = n > 0 ? in[0] : -1;
        if (i < 0 || i >= DGRAMS || got[i] || (size_t)n != len[i] || memcmp(in, out[i], len[i]) != 0) {
            c->d->w->wrong++;
            return -EPROTO;
        }
        got[i] = true;
    }
    return 0;
}

static void *dg_client_main(void *p)
{
    struct dg_client *c = p;
    int64_t dl = deadline(c->d->w);
    char to[CORIO_ADDR_STRLEN];
    CHECK(corio_addr_format(&c->d->saddr, to, sizeof to) > 0);
    int fd = corio_dgram_open(NULL, to, NULL, dl);
    int r = fd < 0 ? fd : dg_talk(c, fd, dl);
    if (fd >= 0)
        corio_close(fd);
    if (r < 0)
        fault_exchange_failed(c->d->w, r);
    return NULL;
}

/* Each client's datagrams fit its own buffers: the clients run one after
 * the other (the static send buffer is shared). */
static void *dg_main(void *p)
{
    struct dg_run *d = p;
    struct wctx *w = d->w;
    int r = 0;
    for (int tries = 0; tries < 3; tries++) {
        if ((d->sfd = r = corio_dgram_open("127.0.0.1:0", NULL, NULL, CORIO_FOREVER)) >= 0)
            break;
        fault_saw(w, r);
    }
    if (r >= 0 && (r = corio_addr_local(d->sfd, &d->saddr)) < 0)
        fault_saw(w, r);
    corio_co *srv = NULL;
    if (r >= 0)
        r = fault_spawn(w, &srv, dg_server, d);
    if (r < 0) {
        if (d->sfd >= 0)
            corio_close(d->sfd);
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        struct dg_client c = {d, 40 + i};
        fault_exchange_begin(w);
        corio_co *co;
        if ((r = fault_spawn(w, &co, dg_client_main, &c)) < 0)
            fault_exchange_failed(w, r);
        else
            CHECK_EQ(corio_join(co, NULL, CORIO_FOREVER), 0);
    }
    corio_close(d->sfd); /* wakes the server */
    CHECK_EQ(corio_join(srv, NULL, CORIO_FOREVER), 0);
    return NULL;
}

static void wl_dgram(struct wctx *w)
{
    fault_new_loop(w);
    struct dg_run d = {.w = w, .sfd = -1};
    int r = fault_spawn(w, NULL, dg_main, &d);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
}

/* ---- Sync primitives: a pipeline over channels, select, a mutex, a
 * semaphore, an event and a wait group. ---- */

struct sync_run {
    struct wctx *w;
    corio_chan *in, *out; /* buffered, unbuffered */
    corio_mutex mu;
    corio_sem sem;
    corio_event ev;
    corio_waitgroup wg;
    long sum;
};

static void *sync_producer(void *p)
{
    struct sync_run *s = p;
    int64_t dl = deadline(s->w);
    for (int i = 1; i <= 100; i++)
        if (corio_chan_send(s->in, &i, dl) < 0)
            break;
    corio_chan_close(s->in);
    corio_waitgroup_done(&s->wg);
    return NULL;
}

/* Moves numbers from in to out through a select, under the mutex. */
static void *sync_relay(void *p)
{
    struct sync_run *s = p;
    int64_t dl = deadline(s->w);
    int v;
    for (;;) {
        corio_sel c[1] = {{.chan = s->in, .op = CORIO_SEL_RECV, .elem = &v}};
        int i = corio_chan_select(c, 1, dl);
        if (i < 0 || c[0].result == 0)
            break;
        if (corio_mutex_lock(&s->mu, dl) < 0)
            break;
        int r = corio_chan_send(s->out, &v, dl);
        corio_mutex_unlock(&s->mu);
        if (r < 0)
            break;
    }
    corio_chan_close(s->out);
    corio_waitgroup_done(&s->wg);
    return NULL;
}

static void *sync_consumer(void *p)
{
    struct sync_run *s = p;
    int64_t dl = deadline(s->w);
    int v;
    corio_sem_wait(&s->sem, dl);
    while (corio_chan_recv(s->out, &v, dl) == 1)
        s->sum += v;
    corio_event_set(&s->ev);
    corio_waitgroup_done(&s->wg);
    return NULL;
}

static int chan_retry(struct wctx *w, corio_chan **ch, size_t cap)
{
    int r = 0;
    for (int tries = 0; tries < 3; tries++) {
        if ((r = corio_chan_new(w->loop, ch, sizeof(int), cap)) == 0)
            return 0;
        fault_saw(w, r);
    }
    return r;
}

static void *sync_main(void *p)
{
    struct sync_run *s = p;
    struct wctx *w = s->w;
    fault_exchange_begin(w);
    int r = chan_retry(w, &s->in, 4);
    if (r == 0 && (r = chan_retry(w, &s->out, 0)) < 0)
        corio_chan_free(s->in);
    if (r < 0) {
        fault_exchange_failed(w, r);
        return NULL;
    }
    corio_mutex_init(w->loop, &s->mu);
    corio_sem_init(w->loop, &s->sem, 0);
    corio_event_init(w->loop, &s->ev);
    corio_waitgroup_init(w->loop, &s->wg);
    corio_fn fns[3] = {sync_producer, sync_relay, sync_consumer};
    int started = 0;
    for (int i = 0; i < 3; i++) {
        corio_waitgroup_add(&s->wg, 1);
        if ((r = fault_spawn(w, NULL, fns[i], s)) < 0) {
            corio_waitgroup_done(&s->wg);
            break;
        }
        started++;
    }
    if (started < 3) { /* unblock whoever did start */
        corio_chan_close(s->in);
        corio_chan_close(s->out);
    }
    corio_sem_post(&s->sem);
    corio_waitgroup_wait(&s->wg, CORIO_FOREVER);
    if (started == 3)
        corio_event_wait(&s->ev, deadline(w));
    corio_chan_free(s->in);
    corio_chan_free(s->out);
    if (r < 0)
        fault_exchange_failed(w, r);
    else if (s->sum != 5050)
        w->wrong++;
    return NULL;
}

static void wl_sync(struct wctx *w)
{
    fault_new_loop(w);
    struct sync_run s = {.w = w};
    int r = fault_spawn(w, NULL, sync_main, &s);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
}

/* ---- The blocking pool and name resolution. ---- */

static void *square(void *arg)
{
    long v = (long)(intptr_t)arg;
    return (void *)(intptr_t)(v * v);
}

struct pool_run {
    struct wctx *w;
    corio_work work[2];
    int work_done[2];
};

static void *pool_job(void *p)
{
    struct pool_run *pr = p;
    struct wctx *w = pr->w;
    for (long i = 2; i < 6; i++) {
        void *res;
        int r = corio_pool_run(square, (void *)(intptr_t)i, NULL, &res, deadline(w));
        if (r < 0) {
            fault_exchange_failed(w, r);
            return NULL;
        }
        if ((intptr_t)res != i * i)
            w->wrong++;
    }
    return NULL;
}

static void *resolve_job(void *p)
{
    struct wctx *w = p;
    struct sockaddr_storage out[4];
    /* A name (on the pool) and a number (inline). */
    int r = corio_resolve("localhost", "80", AF_INET, SOCK_STREAM, out, 4, deadline(w));
    if (r > 0) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&out[0];
        if (a->sin_family != AF_INET || ntohs(a->sin_port) != 80 ||
            (ntohl(a->sin_addr.s_addr) >> 24) != 127)
            w->wrong++;
        r = corio_resolve("127.0.0.1", "8080", AF_UNSPEC, SOCK_STREAM, out, 4, deadline(w));
    }
    if (r < 0)
        fault_exchange_failed(w, r);
    return NULL;
}

/* A job of the callback level: its arg is where done() reports. */
static void *work_echo(void *arg)
{
    return arg;
}

static void work_done(corio_loop *loop, corio_work *wk, int status)
{
    (void)loop;
    int *done = wk->arg;
    *done = status < 0 ? status : wk->result == wk->arg ? 1 : -EPROTO;
}

static void *pool_main(void *p)
{
    struct pool_run *pr = p;
    struct wctx *w = pr->w;
    int r = corio_pool_set_size(w->loop, 2);
    if (r < 0)
        fault_saw(w, r);
    corio_co *cos[3];
    int nco = 0;
    corio_fn fns[3] = {pool_job, pool_job, resolve_job};
    void *args[3] = {pr, pr, w};
    for (int i = 0; i < 3; i++) {
        fault_exchange_begin(w);
        if ((r = fault_spawn(w, &cos[nco], fns[i], args[i])) == 0)
            nco++;
        else
            fault_exchange_failed(w, r);
    }
    /* The callback level: two jobs the caller owns. */
    fault_exchange_begin(w);
    int submitted = 0;
    for (int i = 0; i < 2; i++) {
        corio_work_init(&pr->work[i], work_echo, work_done, &pr->work_done[i]);
        r = corio_work_submit(w->loop, &pr->work[i]);
        if (r < 0)
            break;
        submitted++;
    }
    for (int i = 0; i < nco; i++)
        CHECK_EQ(corio_join(cos[i], NULL, CORIO_FOREVER), 0);
    int64_t dl = deadline(w);
    for (int i = 0; i < submitted; i++)
        while (pr->work_done[i] == 0 && corio_now() < dl)
            corio_sleep_until(corio_after(200 * CORIO_USEC));
    for (int i = 0; i < submitted && r == 0; i++) {
        if (pr->work_done[i] == -EPROTO)
            w->wrong++;
        r = pr->work_done[i] == 1 ? 0 : pr->work_done[i] < 0 ? pr->work_done[i] : -ETIMEDOUT;
    }
    if (r < 0)
        fault_exchange_failed(w, r);
    return NULL;
}

static void wl_pool(struct wctx *w)
{
    fault_new_loop(w);
    struct pool_run pr = {.w = w};
    int r = fault_spawn(w, NULL, pool_main, &pr);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
    /* The workers go with the loop (corio_loop_free); stop them now so
     * the health check starts from an empty pool. */
    int s = corio_pool_stop(w->loop);
    if (s < 0)
        fault_saw(w, s);
}

/* ---- Signals ---- */

static void on_usr(int sig)
{
    (void)sig; /* a signal corio failed to take must not kill the test */
}

static void *sig_raiser(void *p)
{
    (void)p;
    corio_yield(); /* the waiter parks first */
    corio_yield();
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void *sig_main(void *p)
{
    struct wctx *w = p;
    fault_exchange_begin(w);
    int sigs[2] = {SIGUSR1, SIGUSR2};
    corio_co *raiser;
    int r = fault_spawn(w, &raiser, sig_raiser, NULL);
    if (r == 0) {
        r = corio_signal_wait(sigs, 2, deadline(w)); /* claims both */
        CHECK_EQ(corio_join(raiser, NULL, CORIO_FOREVER), 0);
    }
    if (r > 0 && r != SIGUSR1)
        w->wrong++;
    /* One that arrives while nobody waits is kept for the next wait. */
    if (r > 0) {
        kill(getpid(), SIGUSR2);
        r = corio_signal_wait(sigs + 1, 1, CORIO_NOWAIT);
        if (r > 0 && r != SIGUSR2)
            w->wrong++;
    }
    if (r < 0)
        fault_exchange_failed(w, r);
    return NULL;
}

static void wl_signal(struct wctx *w)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
    fault_new_loop(w);
    int r = fault_spawn(w, NULL, sig_main, w);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
}

/* ---- Parking and servers: corio_server parks each connection until its
 * first bytes, the handler parks it again between requests. ---- */

struct park_run {
    struct wctx *w;
    corio_server *srv;
    char addr[CORIO_ADDR_STRLEN];
};

struct park_client {
    struct park_run *pr;
    int seed;
};

static void park_serve(corio_server *srv, int fd, void *data);

/* Woken with bytes: echo what is there, then park again until the next. */
static void park_wake(int fd, void *data, int reason)
{
    struct park_run *pr = data;
    if (reason <= 0) {
        if (reason != -CORIO_ECLOSED)
            corio_server_close(pr->srv, fd);
        return;
    }
    park_serve(pr->srv, fd, pr);
}

static void park_serve(corio_server *srv, int fd, void *data)
{
    struct park_run *pr = data;
    char buf[2048];
    ssize_t n = corio_read(fd, buf, sizeof buf, deadline(pr->w));
    if (n > 0 && corio_write_all(fd, buf, (size_t)n, NULL, deadline(pr->w)) == n) {
        int r = corio_park(pr->w->loop, fd, park_wake, pr, deadline(pr->w));
        if (r == 0)
            return;
        fault_saw(pr->w, r);
    } else if (n < 0) {
        fault_saw(pr->w, (int)n);
    }
    corio_server_close(srv, fd);
}

/* Three round trips with a pause between them, so the connection parks. */
static void *park_client_main(void *p)
{
    struct park_client *c = p;
    struct wctx *w = c->pr->w;
    int64_t dl = deadline(w);
    int fd = corio_net_dial(c->pr->addr, NULL, dl);
    int r = fd < 0 ? fd : 0;
    for (int round = 0; r == 0 && round < 3; round++) {
        char out[600], in[600];
        size_t len = 100 + (size_t)round * 200;
        for (size_t k = 0; k < len; k++)
            out[k] = (char)fault_pattern(c->seed + round, k);
        ssize_t m = corio_write_all(fd, out, len, NULL, dl);
        size_t got = 0;
        while (m >= 0 && got < len) {
            m = corio_read(fd, in + got, len - got, dl);
            if (m == 0)
                m = -CORIO_EEOF;
            if (m > 0)
                got += (size_t)m;
        }
        if (m < 0)
            r = (int)m;
        else if (memcmp(in, out, len) != 0)
            w->wrong++, r = -EPROTO;
        if (r == 0)
            corio_sleep_until(corio_after(2 * CORIO_MSEC));
    }
    if (fd >= 0)
        corio_close(fd);
    if (r < 0)
        fault_exchange_failed(w, r);
    return NULL;
}

/* Two servers: one parks each new connection until its first bytes (no
 * stack meanwhile), the other starts its handler at once. */
static void *park_main(void *p)
{
    struct park_run *prs = p;
    struct wctx *w = prs[0].w;
    corio_co *cos[2];
    struct park_client c[2] = {{&prs[0], 60}, {&prs[1], 61}};
    int nco = 0;
    for (int i = 0; i < 2; i++) {
        struct park_run *pr = &prs[i];
        corio_listener *l = NULL;
        fault_exchange_begin(w);
        int r = corio_net_listen(&l, "127.0.0.1:0", NULL, CORIO_FOREVER);
        if (r == 0) {
            corio_addr a;
            corio_listener_addr(l, &a);
            CHECK(corio_addr_format(&a, pr->addr, sizeof pr->addr) > 0);
            corio_server_options o = {.listener = l, .handler = park_serve, .data = pr,
                                      .first_byte_timeout = i == 0 ? w->io_ns : 0};
            if ((r = corio_server_start(w->loop, &pr->srv, &o)) < 0)
                corio_listener_close(l);
        }
        if (r == 0 && (r = fault_spawn(w, &cos[nco], park_client_main, &c[i])) == 0)
            nco++;
        else if (pr->srv)
            corio_server_stop(pr->srv), pr->srv = NULL;
        if (r < 0)
            fault_exchange_failed(w, r);
    }
    for (int i = 0; i < nco; i++)
        CHECK_EQ(corio_join(cos[i], NULL, CORIO_FOREVER), 0);
    for (int i = 0; i < 2; i++)
        if (prs[i].srv)
            corio_server_stop(prs[i].srv); /* frees itself with its last connection */
    return NULL;
}

static void wl_park(struct wctx *w)
{
    fault_new_loop(w);
    struct park_run pr[2] = {{.w = w}, {.w = w}};
    int r = fault_spawn(w, NULL, park_main, pr);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
}

/* ---- Loops on threads: a group of two pinned loops, and calls into them
 * from this loop. ---- */

static void *twice(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

struct mt_run {
    struct wctx *w;
    corio_mt *mt;
};

static void *mt_caller(void *p)
{
    struct mt_run *m = p;
    struct wctx *w = m->w;
    for (unsigned i = 0; i < 4; i++) {
        void *res;
        int r = corio_loop_call(corio_mt_loop(m->mt, i % corio_mt_threads(m->mt)), twice,
                                (void *)(intptr_t)(i + 1), &res, deadline(w));
        if (r < 0) {
            fault_exchange_failed(w, r);
            return NULL;
        }
        if ((intptr_t)res != (intptr_t)(i + 1) * 2)
            w->wrong++;
    }
    return NULL;
}

static void wl_mt(struct wctx *w)
{
    fault_new_loop(w);
    struct mt_run m = {.w = w};
    corio_mt_options o = {.threads = 2, .pin = true, .loop = {.backend = w->backend}};
    int r = 0;
    for (int tries = 0; tries < 3; tries++) {
        if ((r = corio_mt_start(&m.mt, &o)) == 0)
            break;
        fault_saw(w, r);
    }
    fault_exchange_begin(w);
    if (r == 0)
        r = fault_spawn(w, NULL, mt_caller, &m);
    if (r < 0)
        fault_exchange_failed(w, r);
    fault_run_loop(w);
    if (!m.mt)
        return;
    CHECK_EQ(corio_mt_shutdown(m.mt, corio_after(w->io_ns)), 0);
    r = corio_mt_join(m.mt);
    if (r < 0)
        fault_saw(w, r);
    /* The group's own: the CPUs it may use (threads 0). */
    corio_mt_options all = {.threads = 0, .loop = {.backend = w->backend}};
    corio_mt *mt2;
    if ((r = corio_mt_start(&mt2, &all)) == 0) {
        CHECK_EQ(corio_mt_shutdown(mt2, corio_after(w->io_ns)), 0);
        r = corio_mt_join(mt2);
    }
    if (r < 0)
        fault_saw(w, r);
}

/* ---- Prefork: a supervisor (this process) and one worker, stopped by a
 * SIGTERM a helper sends it. ---- */

static int pf_worker(unsigned index, void *data)
{
    (void)index, (void)data;
    for (int i = 0; i < 200; i++) { /* until the forwarded SIGTERM */
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void wl_prefork(struct wctx *w)
{
    fault_exchange_begin(w);
    pid_t self = getpid(), helper = fork();
    CHECK(helper >= 0);
    if (helper == 0) {
        struct timespec ts = {0, 150 * 1000000L};
        nanosleep(&ts, NULL);
        kill(self, SIGTERM);
        _exit(0);
    }
    corio_prefork_options o = {.workers = 1, .worker = pf_worker, .quiet = true,
                               .shutdown_timeout = w->io_ns, .backoff_min = 5 * CORIO_MSEC,
                               .backoff_max = 20 * CORIO_MSEC};
    int r = corio_prefork_run(&o);
    if (r < 0) { /* it never waited for the signal: take it here */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        int sig;
        sigwait(&set, &sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
    }
    int st;
    CHECK(waitpid(helper, &st, 0) == helper);
    if (r != 0)
        fault_exchange_failed(w, r < 0 ? r : -ECHILD); /* 1: a worker did not end cleanly */
    fault_new_loop(w); /* for the health check */
}

/* ---- Metrics: snapshots of the loop, the kernel and a socket. ---- */

struct stats_run {
    struct wctx *w;
};

static void *stats_main(void *p)
{
    struct stats_run *sr = p;
    struct wctx *w = sr->w;
    fault_exchange_begin(w);
    int sv[2] = {-1, -1};
    corio_listener *l = NULL;
    int fd = -1, r = corio_net_listen(&l, "127.0.0.1:0", NULL, CORIO_FOREVER);
    corio_addr a;
    char addr[CORIO_ADDR_STRLEN];
    if (r == 0) {
        corio_listener_addr(l, &a);
        CHECK(corio_addr_format(&a, addr, sizeof addr) > 0);
        r = corio_stats_listener(w->loop, corio_listener_fd(l));
    }
    if (r == 0 && (fd = r = corio_net_dial(addr, NULL, deadline(w))) >= 0) {
        corio_sock_stats ss;
        r = corio_sock_stats_read(fd, &ss);
    }
    static corio_stats s;
    if (r >= 0)
        r = corio_stats_take(w->loop, &s, ~0u);
    static corio_kstats k;
    if (r >= 0)
        r = corio_kstats_read(&k);
    corio_loop *loops[1] = {w->loop};
    if (r >= 0)
        r = corio_stats_take_loops(loops, 1, &s, 0, deadline(w));
    if (r >= 0) { /* in-process corio-top: a few frames into a socket */
        test_socketpair(sv);
        r = corio_stats_top(sv[0], 2 * CORIO_MSEC, corio_after(10 * CORIO_MSEC));
        char buf[4096];
        if (r >= 0 && read(sv[1], buf, sizeof buf) <= 0)
            w->wrong++;
        close(sv[0]);
        close(sv[1]);
    }
    if (fd >= 0)
        corio_close(fd);
    if (l) {
        corio_stats_listener_remove(w->loop, corio_listener_fd(l));
        corio_listener_close(l);
    }
    if (r < 0)
        fault_exchange_failed(w, r);
    return NULL;
}

static void wl_stats(struct wctx *w)
{
    fault_new_loop(w);
    struct stats_run sr = {.w = w};
    int r = fault_spawn(w, NULL, stats_main, &sr);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
}

/* ---- corio-http, in process: routes, a body, a static file. ---- */

static const char http_file[] = "a static file, sent with sendfile(2)\n";

struct http_client {
    struct wctx *w;
    int port;
    int kind; /* 0: pipelined GETs, 1: POST /echo, 2: a static file */
};

/* Reads one response through s and checks its status and body. */
static int http_expect(struct http_client *c, corio_stream *s, const char *body, size_t len,
                       int64_t dl)
{
    const char *head;
    ssize_t n = corio_stream_read_until(s, "\r\n\r\n", 4, &head, 8192, dl);
    if (n <= 0)
        return n == 0 ? -CORIO_EEOF : (int)n;
    if (n < 12 || memcmp(head, "HTTP/1.1 ", 9) != 0) {
        c->w->wrong++;
        return -EPROTO;
    }
    /* A status other than 200 must say what happened: 5xx for a fault the
     * server met, 404 or 403 only when the file really could not be found
     * or reached (that is what was injected). */
    int status = atoi(head + 9), e = c->w->inject;
    if (status >= 500 && status <= 599)
        return -EIO;
    if ((status == 404 && (e == -ENOENT || e == -ENOTDIR || e == -EXDEV || e == -ELOOP)) ||
        (status == 403 && (e == -EACCES || e == -EPERM)))
        return -ENOENT;
    if (status != 200) {
        fprintf(stderr, "http client %d: status %d (injected %d)\n", c->kind, status, e);
        c->w->wrong++;
        return -EPROTO;
    }
    const char *cl = memmem(head, (size_t)n, "Content-Length: ", 16);
    size_t clen = cl ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
    if (clen != len) {
        c->w->wrong++;
        return -EPROTO;
    }
    char buf[4096];
    if (len && (n = corio_stream_read_exactly(s, buf, len, dl)) < 0)
        return (int)n;
    if (len && memcmp(buf, body, len) != 0) {
        c->w->wrong++;
        return -EPROTO;
    }
    return 0;
}

static void *http_client_main(void *p)
{
    struct http_client *c = p;
    int64_t dl = deadline(c->w);
    char addr[32], req[4096 + 256], body[3000];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", c->port);
    int fd = corio_net_dial(addr, NULL, dl), r = fd < 0 ? fd : 0;
    corio_stream *s = NULL;
    if (r == 0 && (r = corio_stream_open(&s, fd, NULL)) < 0)
        corio_close(fd);
    if (r == 0) {
        int len, reqs = 1;
        if (c->kind == 0) {
            len = 0;
            for (reqs = 0; reqs < 3; reqs++)
                len += snprintf(req + len, sizeof req - (size_t)len,
                                "GET /plaintext HTTP/1.1\r\nHost: f\r\n\r\n");
        } else if (c->kind == 1) {
            for (size_t k = 0; k < sizeof body; k++)
                body[k] = (char)('A' + fault_pattern(70, k) % 26);
            len = snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: f\r\nContent-Length: %zu"
                           "\r\n\r\n", sizeof body);
            memcpy(req + len, body, sizeof body);
            len += (int)sizeof body;
        } else {
            len = snprintf(req, sizeof req, "GET /fault.txt HTTP/1.1\r\nHost: f\r\n\r\n");
        }
        r = (int)corio_stream_write(s, req, (size_t)len, dl);
        if (r >= 0)
            r = corio_stream_flush(s, dl);
        for (int i = 0; r >= 0 && i < reqs; i++)
            r = c->kind == 0 ? http_expect(c, s, "Hello, World!", 13, dl)
                : c->kind == 1 ? http_expect(c, s, body, sizeof body, dl)
                               : http_expect(c, s, http_file, sizeof http_file - 1, dl);
    }
    if (s) {
        int cr = corio_stream_close(s, dl);
        r = r < 0 ? r : cr;
    }
    if (r < 0)
        fault_exchange_failed(c->w, r);
    return NULL;
}

static void wl_http(struct wctx *w)
{
    char dir[64], file[96];
    snprintf(dir, sizeof dir, "/tmp/corio-fault-http-%d", (int)getpid());
    snprintf(file, sizeof file, "%s/fault.txt", dir);
    (void)mkdir(dir, 0700);
    FILE *f = fopen(file, "w");
    CHECK(f && fwrite(http_file, 1, sizeof http_file - 1, f) == sizeof http_file - 1);
    fclose(f);
    fault_new_loop(w);
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.threads = 1;
    cfg.static_dir = dir;
    cfg.quiet = true;
    cfg.shutdown_timeout = w->io_ns;
    http_server *srv = NULL;
    int r = 0;
    for (int tries = 0; tries < 3; tries++) {
        if ((r = http_server_start(&srv, &cfg)) == 0)
            break;
        fault_saw(w, r);
    }
    struct http_client c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (struct http_client){w, r == 0 ? http_server_port(srv) : 0, i};
        fault_exchange_begin(w);
        int s = r < 0 ? r : fault_spawn(w, NULL, http_client_main, &c[i]);
        if (s < 0)
            fault_exchange_failed(w, s);
    }
    fault_run_loop(w);
    if (srv) {
        http_server_stop(srv);
        r = http_server_wait(srv, NULL, NULL);
        if (r < 0)
            fault_saw(w, r);
    }
    unlink(file);
    rmdir(dir);
}

const struct fault_workload fault_area_workloads[] = {
    {"net", wl_net},       {"dgram", wl_dgram}, {"sync", wl_sync},         {"pool", wl_pool},
    {"signal", wl_signal}, {"park", wl_park},   {"mt", wl_mt},             {"prefork", wl_prefork},
    {"stats", wl_stats},   {"http", wl_http},
};
const unsigned fault_area_nworkloads = sizeof fault_area_workloads / sizeof fault_area_workloads[0];
