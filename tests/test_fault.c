/* The fault walk: every syscall and allocation site in the library, failed
 * with every error a real kernel could return there, under workloads that
 * reach it.
 *
 * Sites are found at run time (the "corio_sites" section, src/fault.h), so
 * a site added anywhere in the library is walked without touching this
 * file, as long as some workload below reaches it; fault_sites_reached
 * fails for a site that none reaches, so no syscall goes untested.
 *
 * How it goes:
 *  1. Each workload runs once with every call counted (the recording).
 *  2. For each site it reached, each plausible error there (errs_for()),
 *     and a few call numbers (the 1st, 2nd, 3rd, middle, next-to-last and
 *     last call), a child process runs the workload with that one call
 *     failed.  Children run a few at a time; each has a time limit.
 *  3. Each child asserts: no crash and no hang; wrong data never reaches a
 *     caller; at most one exchange of the workload fails, and only with an
 *     error code the caller can read (corio_strerror names it); with the
 *     fault cleared, a fresh connection on the same loop completes its
 *     exchange; the loop frees cleanly (no coroutine, timer, watcher or
 *     callback left); no fd and no byte of memory leaked.
 *
 * A workload is a set of concurrent "exchanges" (an echo over TCP, a
 * watcher conversation, a posted callback, ...), each of which either
 * completes with the right bytes or fails with an error.  Setup calls that
 * fail are retried, as a careful application would: the point is that the
 * failure had no effect and the next try works.
 *
 * A spurious EAGAIN on an edge-triggered fd means "wait for the next
 * edge", which for a request that is already there never comes: the
 * victim exchange then ends at its deadline with -ETIMEDOUT.  That is the
 * contract (a deadline on every blocking call), and the walk checks it.
 *
 * Environment: CORIO_FAULT_WALK=quick (fewer call numbers; the valgrind
 * target sets it), CORIO_FAULT_JOBS=n (children at once, default 4),
 * CORIO_FAULT_REPORT=path (append the summary there), V=1 (print it). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/fault.h"
#include "fault_walk.h"

#define SHORT CORIO__FAULT_SHORT
#define MAX_ERRS 8

/* ---- Which errors a real kernel could return at a site ----------------- */

struct plausible {
    const char *name;  /* the site's syscall name */
    const char *file;  /* NULL, or only sites in files ending so */
    int errs[MAX_ERRS]; /* -errno or SHORT, 0-terminated */
};

/* First match wins: specific entries before general ones.  A name not
 * listed gets -EIO, "the kernel said no": the walk still checks that the
 * failure reaches the caller cleanly.  An entry with no error is a call
 * that cannot fail with the arguments corio gives it: the walk checks
 * that a workload reaches it, and injects nothing. */
static const struct plausible table[] = {
    /* The wakeup eventfd, a non-blocking counter the loop drains: a read
     * may find it empty, and a write cannot fail (EAGAIN would need a
     * counter near 2^64, which is readable and so wakes the loop anyway). */
    {"read", "backend-epoll.c", {-EAGAIN}},
    {"read", "backend-poll.c", {-EAGAIN}},
    {"write", "backend-epoll.c", {0}},
    {"write", "backend-poll.c", {0}},
    /* EPOLL_CTL_MOD of a registered fd allocates nothing. */
    {"epoll_ctl_mod", NULL, {0}},
    {"malloc", NULL, {-ENOMEM}},
    {"mmap", NULL, {-ENOMEM}},
    {"mprotect", NULL, {-ENOMEM}},
    {"read", NULL, {-EINTR, -EAGAIN, -ECONNRESET, SHORT}},
    {"readv", NULL, {-EINTR, -EAGAIN, -ECONNRESET, SHORT}},
    {"recv", NULL, {-EINTR, -EAGAIN, -ECONNRESET, SHORT}},
    {"recvfrom", NULL, {-EINTR, -EAGAIN, -ECONNREFUSED, -ENOMEM}},
    {"recvmmsg", NULL, {-EINTR, -EAGAIN, -ECONNREFUSED, -ENOMEM}},
    {"write", NULL, {-EINTR, -EAGAIN, -EPIPE, -ECONNRESET, SHORT}},
    {"writev", NULL, {-EINTR, -EAGAIN, -EPIPE, -ECONNRESET, SHORT}},
    {"send", NULL, {-EINTR, -EAGAIN, -EPIPE, -ECONNRESET, SHORT}},
    {"sendto", NULL, {-EINTR, -EAGAIN, -ENOBUFS, -ECONNREFUSED}},
    {"sendmmsg", NULL, {-EINTR, -EAGAIN, -ENOBUFS, -ECONNREFUSED}},
    {"accept4", NULL, {-EMFILE, -ENFILE, -ENOMEM, -ENOBUFS, -ECONNABORTED, -EINTR, -EAGAIN}},
    {"connect", NULL, {-EINTR, -ECONNREFUSED, -ENETUNREACH, -EADDRNOTAVAIL, -EAGAIN}},
    {"socket", NULL, {-EMFILE, -ENFILE, -ENOMEM, -ENOBUFS}},
    {"socketpair", NULL, {-EMFILE, -ENFILE}},
    {"pipe2", NULL, {-EMFILE, -ENFILE}},
    {"open", NULL, {-EMFILE, -ENFILE, -ENOENT, -EACCES, -EINTR}},
    {"eventfd", NULL, {-EMFILE, -ENFILE, -ENOMEM}},
    {"epoll_create1", NULL, {-EMFILE, -ENFILE, -ENOMEM}},
    {"signalfd", NULL, {-EMFILE, -ENFILE, -ENOMEM}},
    {"epoll_ctl", NULL, {-ENOMEM, -ENOSPC}},
    {"epoll_pwait2", NULL, {-EINTR, -ENOSYS}},
    {"epoll_wait", NULL, {-EINTR}},
    {"poll", NULL, {-EINTR, -ENOMEM}},
    {"ppoll", NULL, {-EINTR, -ENOMEM}},
    {"close", NULL, {-EINTR, -EIO}},
    {"bind", NULL, {-EADDRINUSE, -EACCES, -EADDRNOTAVAIL}},
    {"listen", NULL, {-EADDRINUSE}},
    {"setsockopt", NULL, {-ENOMEM, -ENOBUFS, -ENOPROTOOPT}},
    {"getsockopt", NULL, {-ENOBUFS}},
    {"getsockname", NULL, {-ENOBUFS}},
    {"getpeername", NULL, {-ENOTCONN, -ENOBUFS}},
    {"shutdown", NULL, {-ENOTCONN}},
    {"unlink", NULL, {-ENOENT, -EACCES, -EBUSY}},
    {"pthread_create", NULL, {-EAGAIN}},
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The errors to inject at s, 0-terminated in out; returns how many (0 for
 * a call that cannot fail). */
static int errs_for(const struct corio__site *s, int out[MAX_ERRS + 1])
{
    int n = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct plausible *p = &table[i];
        if (strcmp(p->name, s->name) != 0 || (p->file && !ends_with(s->file, p->file)))
            continue;
        while (n < MAX_ERRS && p->errs[n])
            out[n] = p->errs[n], n++;
        out[n] = 0;
        return n;
    }
    out[n++] = -EIO;
    out[n] = 0;
    return n;
}

static const char *err_name(int err)
{
    static char buf[32];
    if (err == SHORT)
        return "short transfer";
    switch (-err) {
#define E(x) case x: return #x
    E(EINTR); E(EAGAIN); E(ENOMEM); E(EMFILE); E(ENFILE); E(ECONNRESET); E(EPIPE);
    E(ENOBUFS); E(ECONNABORTED); E(ECONNREFUSED); E(ENETUNREACH); E(EADDRNOTAVAIL);
    E(ENOSPC); E(ENOSYS); E(EIO); E(EADDRINUSE); E(EACCES); E(ENOPROTOOPT); E(ENOTCONN);
    E(ENOENT); E(EBUSY); E(ETIMEDOUT);
#undef E
    }
    snprintf(buf, sizeof buf, "%d", err);
    return buf;
}

/* ---- Workloads ---------------------------------------------------------- */

void fault_saw(struct wctx *w, int err)
{
    CHECK(err < 0);
    const char *d = corio_strerror(err);
    if (strcmp(d, "unknown error") == 0 || strncmp(d, "Unknown error", 13) == 0)
        test_fail(__FILE__, __LINE__, "a caller got an unnamed error %d", err);
    for (int i = 0; i < w->nseen; i++)
        if (w->seen[i] == err)
            return;
    if (w->nseen < FAULT_MAX_SEEN)
        w->seen[w->nseen++] = err;
}

void fault_exchange_begin(struct wctx *w)
{
    w->exchanges++;
}

void fault_exchange_failed(struct wctx *w, int err)
{
    fault_saw(w, err);
    if (w->failed < FAULT_MAX_SEEN)
        w->fail_err[w->failed] = err;
    w->failed++;
}

void fault_run_loop(struct wctx *w)
{
    for (int tries = 0;; tries++) {
        int r = corio_loop_run(w->loop, CORIO_RUN_DEFAULT);
        if (r >= 0)
            return;
        fault_saw(w, r);
        CHECK(tries < 8);
    }
}

void fault_new_loop(struct wctx *w)
{
    corio_loop_options o = {.backend = w->backend};
    for (int tries = 0;; tries++) {
        corio_loop *loop = NULL;
        int r = corio_loop_new(&loop, &o);
        if (r == 0) {
            w->loop = loop;
            return;
        }
        fault_saw(w, r);
        CHECK(loop == NULL);
        CHECK(tries < 3);
    }
}

int fault_spawn(struct wctx *w, corio_co **co, corio_fn fn, void *arg)
{
    int r = 0;
    for (int tries = 0; tries < 3; tries++) {
        r = corio_spawn(w->loop, co, fn, arg, 0);
        if (r == 0)
            return 0;
        fault_saw(w, r);
    }
    return r;
}

unsigned char fault_pattern(int seed, size_t i)
{
    return (unsigned char)(i * 7 + (size_t)seed * 13 + (i >> 8));
}

/* -- Echo over TCP: a listener, an acceptor, a handler per connection -- */

struct server {
    struct wctx *w;
    int lfd;
    struct sockaddr_in addr;
};

struct conn {
    struct wctx *w;
    int fd;
};

static int listen_tcp(struct server *sv)
{
    sv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(sv->lfd >= 0);
    memset(&sv->addr, 0, sizeof sv->addr);
    sv->addr.sin_family = AF_INET;
    sv->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sv->addr;
    CHECK(bind(sv->lfd, (struct sockaddr *)&sv->addr, len) == 0);
    CHECK(listen(sv->lfd, 64) == 0);
    CHECK(getsockname(sv->lfd, (struct sockaddr *)&sv->addr, &len) == 0);
    return sv->lfd;
}

/* Echoes until end of stream, with the I/O calls the client's first byte
 * names: 'r' read/write, 'v' readv/writev, 's' recv/send. */
static void *handler(void *p)
{
    struct conn *c = p;
    int64_t dl = corio_after(c->w->io_ns);
    char buf[4096], how;
    ssize_t n = corio_read(c->fd, &how, 1, dl);
    while (n > 0) {
        if (how == 'v') {
            struct iovec iov[2] = {{buf, 1000}, {buf + 1000, sizeof buf - 1000}};
            n = corio_readv(c->fd, iov, 2, dl);
        } else if (how == 's') {
            n = corio_recv(c->fd, buf, sizeof buf, 0, dl);
        } else {
            n = corio_read(c->fd, buf, sizeof buf, dl);
        }
        if (n <= 0)
            break;
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t m;
            if (how == 'v') {
                size_t half = ((size_t)n - off) / 2;
                struct iovec iov[2] = {{buf + off, half}, {buf + off + half, (size_t)n - off - half}};
                m = corio_writev(c->fd, iov, 2, dl);
            } else if (how == 's') {
                m = corio_send(c->fd, buf + off, (size_t)n - off, 0, dl);
            } else {
                m = corio_write(c->fd, buf + off, (size_t)n - off, dl);
            }
            if (m < 0) {
                n = m;
                break;
            }
            off += (size_t)m;
        }
    }
    /* The client sees the error as a short echo; the server's own error
     * is one a caller got, and must have a name. */
    if (n < 0)
        fault_saw(c->w, (int)n);
    corio_close(c->fd);
    free(c);
    return NULL;
}

static void *acceptor(void *p)
{
    struct server *sv = p;
    int errors = 0;
    for (;;) {
        int fd = corio_accept(sv->lfd, NULL, NULL, CORIO_FOREVER);
        if (fd == -CORIO_ECLOSED || fd == -EBADF) /* closed while parked, or while backing off */
            break;
        if (fd < 0) {
            /* Out of descriptors or memory, or an aborted handshake: the
             * connection (if any) is still queued; back off and retry. */
            fault_saw(sv->w, fd);
            CHECK(++errors < 100);
            corio_sleep_until(corio_after(CORIO_MSEC));
            continue;
        }
        struct conn *c = malloc(sizeof *c);
        CHECK(c != NULL);
        *c = (struct conn){sv->w, fd};
        int r = fault_spawn(sv->w, NULL, handler, c);
        if (r < 0) {
            free(c);
            corio_close(fd);
        }
    }
    return NULL;
}

struct client {
    struct wctx *w;
    const struct server *sv;
    char how;
    int seed;
    size_t len;
};

static ssize_t client_send(const struct client *cl, int fd, const char *b, size_t n, int64_t dl)
{
    if (cl->how == 'v') {
        size_t half = n / 2;
        struct iovec iov[2] = {{(void *)b, half}, {(void *)(b + half), n - half}};
        return corio_writev(fd, iov, 2, dl);
    }
    if (cl->how == 's')
        return corio_send(fd, b, n, 0, dl);
    return corio_write(fd, b, n, dl);
}

static ssize_t client_recv(const struct client *cl, int fd, char *b, size_t n, int64_t dl)
{
    if (cl->how == 'v') {
        struct iovec iov[2] = {{b, n / 3}, {b + n / 3, n - n / 3}};
        return corio_readv(fd, iov, 2, dl);
    }
    if (cl->how == 's')
        return corio_recv(fd, b, n, 0, dl);
    int r = corio_wait_fd(fd, CORIO_READABLE, dl); /* and, when cached, poll(2) */
    return r < 0 ? r : corio_read(fd, b, n, dl);
}

/* Sends len pattern bytes, half-closes, and checks every byte of the echo.
 * Returns 0 or the error that ended it. */
static int client_talk(struct client *cl, int fd, int64_t dl)
{
    char buf[4096];
    int r = (int)client_send(cl, fd, &cl->how, 1, dl);
    if (r < 0)
        return r;
    for (size_t off = 0; off < cl->len;) {
        size_t n = cl->len - off < 3000 ? cl->len - off : 3000;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)fault_pattern(cl->seed, off + i);
        ssize_t m = client_send(cl, fd, buf, n, dl);
        if (m < 0)
            return (int)m;
        off += (size_t)m;
    }
    if (shutdown(fd, SHUT_WR) < 0)
        return -errno;
    size_t got = 0;
    for (;;) {
        ssize_t n = client_recv(cl, fd, buf, sizeof buf, dl);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (got + (size_t)i >= cl->len ||
                (unsigned char)buf[i] != fault_pattern(cl->seed, got + (size_t)i)) {
                cl->w->wrong++;
                return -EPROTO;
            }
        got += (size_t)n;
    }
    return got == cl->len ? 0 : -CORIO_EEOF;
}

static void *client(void *p)
{
    struct client *cl = p;
    int64_t dl = corio_after(cl->w->io_ns);
    /* A blocking socket, so corio_fd_nonblock has work to do. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int r = corio_fd_nonblock(fd);
    if (r == 0)
        r = corio_connect(fd, (const struct sockaddr *)&cl->sv->addr, sizeof cl->sv->addr, dl);
    if (r == 0)
        r = client_talk(cl, fd, dl);
    corio_close(fd);
    if (r < 0)
        fault_exchange_failed(cl->w, r);
    return NULL;
}

/* -- The callback level: a level-triggered watcher, a timer, callbacks -- */

struct chat {
    struct wctx *w;
    int sv[2];
    corio_watcher wt;
    size_t got, want;
    int err; /* what a read in the callback failed with */
    bool closed;
};

/* Reads in small pieces, so the watcher must be told again while data
 * remains (the level-triggered re-arm). */
static void on_readable(corio_loop *loop, corio_watcher *wt, unsigned revents)
{
    struct chat *ch = wt->data;
    if (revents & CORIO_CLOSED) {
        ch->closed = true;
        return;
    }
    char buf[40];
    ssize_t n = corio_read(wt->fd, buf, sizeof buf, CORIO_NOWAIT);
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] != fault_pattern(5, ch->got + (size_t)i))
                ch->w->wrong++;
        ch->got += (size_t)n;
    }
    if (n < 0 && n != -EAGAIN)
        ch->err = (int)n;
    if (n == 0 || ch->err || ch->got >= ch->want)
        corio_watcher_stop(loop, wt);
}

static void *chat(void *p)
{
    struct wctx *w = p;
    struct chat ch = {.w = w, .want = 300};
    int64_t dl = corio_after(w->io_ns);
    test_socketpair(ch.sv);
    corio_watcher_init(&ch.wt, ch.sv[1], CORIO_READABLE, 0, on_readable, &ch);
    int r = corio_watcher_start(w->loop, &ch.wt);
    for (size_t off = 0; r == 0 && off < ch.want; off += 100) {
        char msg[100];
        for (size_t i = 0; i < sizeof msg; i++)
            msg[i] = (char)fault_pattern(5, off + i);
        ssize_t n = corio_write_all(ch.sv[0], msg, sizeof msg, NULL, dl);
        if (n < 0)
            r = (int)n;
        else
            r = corio_sleep_until(corio_after(200 * CORIO_USEC));
    }
    while (r == 0 && ch.got < ch.want && ch.wt.active) {
        if (corio_now() > dl)
            r = -ETIMEDOUT;
        else
            corio_sleep_until(corio_after(100 * CORIO_USEC));
    }
    if (r == 0 && ch.got != ch.want)
        r = ch.err ? ch.err : -CORIO_EEOF;
    corio_watcher_stop(w->loop, &ch.wt);
    corio_close(ch.sv[0]);
    corio_close(ch.sv[1]);
    if (r < 0)
        fault_exchange_failed(w, r);
    return NULL;
}

static void on_posted(corio_loop *loop, corio_callback *cb)
{
    (void)loop;
    (*(int *)cb->data)++;
}

/* A callback posted through the wakeup path (from the loop's own thread:
 * the eventfd write and read are the same), one queued with call_soon, a
 * timer, and a cancelled sleeper. */
static void *sleeper(void *p)
{
    (void)p;
    int r = corio_sleep_until(corio_after(10 * CORIO_SEC));
    return (void *)(intptr_t)r;
}

static void on_timer(corio_loop *loop, corio_timer *t)
{
    (void)loop;
    (*(int *)t->data)++;
}

static void *callbacks(void *p)
{
    struct wctx *w = p;
    int64_t dl = corio_after(w->io_ns);
    int fired = 0;
    corio_timer t;
    corio_timer_init(&t, on_timer, &fired);
    corio_timer_start(w->loop, &t, corio_after(CORIO_MSEC));
    w->posted = (corio_callback){.fn = on_posted, .data = &w->posted_ran};
    w->soon = (corio_callback){.fn = on_posted, .data = &w->soon_ran};
    int r = corio_loop_post(w->loop, &w->posted);
    corio_call_soon(w->loop, &w->soon);
    corio_co *co;
    int s = fault_spawn(w, &co, sleeper, NULL);
    if (s == 0) {
        corio_yield();
        CHECK_EQ(corio_cancel(co), 0);
        void *res;
        CHECK_EQ(corio_join(co, &res, CORIO_FOREVER), 0);
        CHECK_EQ((intptr_t)res, -ECANCELED);
    }
    while ((!w->posted_ran || !w->soon_ran || !fired) && corio_now() < dl)
        corio_sleep_until(corio_after(100 * CORIO_USEC));
    corio_timer_stop(w->loop, &t);
    if (r == 0 && !(w->posted_ran && w->soon_ran && fired))
        r = -ETIMEDOUT;
    if (r == 0 && s < 0)
        r = s;
    if (r < 0)
        fault_exchange_failed(w, r);
    return NULL;
}

/* -- The core workload: three echo clients (one per I/O flavour), the
 * callback-level chat, and the callbacks, all at once on one loop. -- */

struct echo_run {
    struct wctx *w;
    struct server sv;
    struct client cl[3];
    int nclients;
};

static void *echo_main(void *p)
{
    struct echo_run *e = p;
    struct wctx *w = e->w;
    corio_co *acc, *cos[8];
    int nco = 0;
    listen_tcp(&e->sv);
    e->sv.w = w;
    int r = fault_spawn(w, &acc, acceptor, &e->sv);
    if (r < 0) { /* no server: every client fails alike, count it once */
        fault_exchange_failed(w, r);
        close(e->sv.lfd);
        return NULL;
    }
    for (int i = 0; i < e->nclients; i++) {
        fault_exchange_begin(w);
        if ((r = fault_spawn(w, &cos[nco], client, &e->cl[i])) == 0)
            nco++;
        else
            fault_exchange_failed(w, r);
    }
    corio_fn extra[] = {chat, callbacks};
    for (int i = 0; e->nclients > 1 && i < 2; i++) {
        fault_exchange_begin(w);
        if ((r = fault_spawn(w, &cos[nco], extra[i], w)) == 0)
            nco++;
        else
            fault_exchange_failed(w, r);
    }
    for (int i = 0; i < nco; i++)
        CHECK_EQ(corio_join(cos[i], NULL, CORIO_FOREVER), 0);
    corio_close(e->sv.lfd); /* wakes the acceptor with -CORIO_ECLOSED */
    CHECK_EQ(corio_join(acc, NULL, CORIO_FOREVER), 0);
    return NULL;
}

static void echo_exchange(struct wctx *w, int nclients, size_t len)
{
    struct echo_run e = {.w = w, .nclients = nclients};
    for (int i = 0; i < nclients; i++)
        e.cl[i] = (struct client){w, &e.sv, "rvs"[i % 3], i, len};
    int r = fault_spawn(w, NULL, echo_main, &e);
    if (r < 0) {
        fault_exchange_begin(w);
        fault_exchange_failed(w, r);
        return;
    }
    fault_run_loop(w);
}

static void wl_core(struct wctx *w)
{
    fault_new_loop(w);
    echo_exchange(w, 3, 32 * 1024);
}

/* After the fault: a fresh connection on the same loop must be served. */
static void health_check(struct wctx *w)
{
    struct wctx h = *w;
    h.failed = h.exchanges = h.wrong = 0;
    h.io_ns = 10 * CORIO_SEC;
    echo_exchange(&h, 1, 8 * 1024);
    if (h.failed || h.wrong)
        test_fail(__FILE__, __LINE__, "the loop no longer serves a healthy connection (%s)",
                  h.nseen ? corio_strerror(h.seen[h.nseen - 1]) : "wrong data");
}

static const struct fault_workload core_workload = {"core", wl_core};

#define NWORKLOADS (1 + fault_area_nworkloads)

static const struct fault_workload *workload(unsigned i)
{
    return i == 0 ? &core_workload : &fault_area_workloads[i - 1];
}

/* Variants: a background rule that opens paths a plain run never takes.
 * A variant walks only the sites it reaches and the plain run does not.
 * Its rule is a fault too: a one-shot one may fail an exchange. */
struct variant {
    const char *name;
    const char *site_name; /* NULL: no rule */
    int err;
    unsigned times;        /* calls failed from the first; 0: all */
};

static const struct variant variants[] = {
    {"plain", NULL, 0, 0},
    {"no-epoll_pwait2", "epoll_pwait2", -ENOSYS, 0}, /* the epoll_wait fallback */
    {"accept-emfile", "accept4", -EMFILE, 1},        /* a listener's reserve fd */
};
#define NVARIANTS (sizeof variants / sizeof variants[0])

/* ---- Running one workload, with or without a fault -------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static bool valgrind_mode(void)
{
    const char *v = getenv("CORIO_TEST_VALGRIND");
    return v && *v && strcmp(v, "0") != 0;
}

static int64_t io_limit(void)
{
    return valgrind_mode() ? 20 * CORIO_SEC : CORIO_SEC;
}

/* Arms v's rule; returns its index, or -1. */
static int arm_variant(const struct variant *v)
{
    if (!v->site_name)
        return -1;
    int r = corio__fault_add(NULL, v->site_name, 1, v->times, v->err);
    CHECK(r >= 0);
    return r;
}

/* How many exchanges the faults may fail: one each.  A spurious EAGAIN on
 * an edge-triggered fd loses that fd's edge: whatever was already queued
 * on it (one request, or every pending connection of a listener) waits
 * for the next edge or its deadline, so it may fail several exchanges,
 * but only by their deadlines. */
static void check_failures(const struct wctx *w, int err, int faults)
{
    if (faults == 0) {
        if (w->failed)
            test_fail(__FILE__, __LINE__, "%d exchange(s) failed without a fault (first: %s)",
                      w->failed, corio_strerror(w->fail_err[0]));
        return;
    }
    if (w->fired && err == -EAGAIN && w->failed > faults) {
        for (int i = 0; i < w->failed && i < FAULT_MAX_SEEN; i++)
            if (w->fail_err[i] != -ETIMEDOUT)
                test_fail(__FILE__, __LINE__, "a spurious EAGAIN failed an exchange with %s",
                          corio_strerror(w->fail_err[i]));
        return;
    }
    if (w->failed > faults)
        test_fail(__FILE__, __LINE__, "%d fault(s) failed %d exchanges of %d (%s, %s, ...)",
                  faults, w->failed, w->exchanges, corio_strerror(w->fail_err[0]),
                  corio_strerror(w->fail_err[1]));
}

/* Runs wl on a fresh loop, then the health check, then frees the loop and
 * checks for leaks.  With err non-zero, rule 0 is the fault under test;
 * v's rule (if any) is the next. */
static void run_checked(const struct fault_workload *wl, const struct variant *v, const char *backend,
                        int err, struct wctx *out, unsigned *calls)
{
    int fds = count_fds();
    long long mem = test_live_allocations();
    struct wctx w = {.backend = backend, .io_ns = io_limit()};
    int vrule = v->site_name ? (err ? 1 : 0) : -1;
    wl->run(&w);
    if (calls) { /* the workload's calls, without the health check's */
        struct corio__site *sites;
        size_t n = corio__fault_sites(&sites);
        for (size_t i = 0; i < n; i++)
            calls[i] = sites[i].calls;
    }
    w.fired = err != 0 && corio__fault_fired();
    int faults = w.fired + (vrule >= 0 && v->times && corio__fault_fires(vrule) > 0);
    corio__fault_disarm();
    health_check(&w);
    int r = corio_loop_free(w.loop);
    if (r < 0)
        test_fail(__FILE__, __LINE__, "corio_loop_free: %s (coroutines, timers, watchers or "
                  "callbacks left on the loop)", corio_strerror(r));
    if (w.wrong)
        test_fail(__FILE__, __LINE__, "%d exchange(s) delivered wrong bytes", w.wrong);
    if (count_fds() != fds)
        test_fail(__FILE__, __LINE__, "leaked %d fd(s)", count_fds() - fds);
    if (test_live_allocations() != mem)
        test_fail(__FILE__, __LINE__, "leaked %lld bytes", test_live_allocations() - mem);
    check_failures(&w, err, faults);
    *out = w;
}

/* Counts the calls each site gets in one run of wl under variant v. */
static void record(const struct fault_workload *wl, const struct variant *v, const char *backend,
                   unsigned *calls)
{
    corio__fault_disarm();
    arm_variant(v);
    corio__fault_reset_counts();
    corio__fault_record(true);
    struct wctx w;
    run_checked(wl, v, backend, 0, &w, calls);
    corio__fault_record(false);
}

/* ---- The walk ----------------------------------------------------------- */

struct fcase {
    unsigned wl, variant;
    unsigned site;
    int err;
    unsigned nth, of;
};

struct job {
    pid_t pid;
    int fd;
    const struct fcase *c;
    char out[2048];
    size_t len;
};

struct walk {
    const char *backend;
    struct fcase *cases;
    size_t ncases, cap;
    size_t failures;
    char failed_msgs[8192];
    size_t msglen;
    /* Per site: reached by some workload, cases run, cases that fired. */
    unsigned *reached, *ran, *fired, *propagated;
};

static void add_case(struct walk *wk, struct fcase c)
{
    if (wk->ncases == wk->cap) {
        wk->cap = wk->cap ? wk->cap * 2 : 256;
        wk->cases = realloc(wk->cases, wk->cap * sizeof *wk->cases);
        CHECK(wk->cases != NULL);
    }
    wk->cases[wk->ncases++] = c;
}

/* The call numbers to fail among `calls`: the first three (setup paths),
 * the middle, and the last two (teardown paths). */
static int pick_nths(unsigned calls, bool quick, unsigned out[6])
{
    unsigned cand[6] = {1, 2, 3, calls / 2, calls - 1, calls};
    int n = 0;
    for (int i = 0; i < 6; i++) {
        if (quick && i != 0 && i != 5)
            continue;
        if (cand[i] < 1 || cand[i] > calls)
            continue;
        bool dup = false;
        for (int j = 0; j < n; j++)
            dup |= out[j] == cand[i];
        if (!dup)
            out[n++] = cand[i];
    }
    return n;
}

/* The child: run the case and report on stdout. */
static _Noreturn void run_case(const struct walk *wk, const struct fcase *c)
{
    struct corio__site *sites;
    corio__fault_sites(&sites);
    alarm(valgrind_mode() ? 300 : 20);
    corio__fault_disarm();
    CHECK(corio__fault_add(&sites[c->site], NULL, c->nth, 1, c->err) == 0);
    arm_variant(&variants[c->variant]);
    struct wctx w;
    run_checked(workload(c->wl), &variants[c->variant], wk->backend, c->err, &w, NULL);
    bool propagated = false;
    for (int i = 0; i < w.nseen; i++)
        propagated |= w.seen[i] == c->err;
    printf("R %d %d seen:", (int)w.fired, (int)propagated);
    for (int i = 0; i < w.nseen; i++)
        printf(" %s", err_name(w.seen[i]));
    printf(", %d of %d exchanges failed\n", w.failed, w.exchanges);
    fflush(stdout);
    _exit(0);
}

static void describe(char *buf, size_t size, const struct walk *wk, const struct fcase *c)
{
    struct corio__site *sites;
    corio__fault_sites(&sites);
    const struct corio__site *s = &sites[c->site];
    const char *file = strrchr(s->file, '/');
    snprintf(buf, size, "%s at %s:%d, call %u of %u, %s, workload %s%s%s", s->name,
             file ? file + 1 : s->file, s->line, c->nth, c->of, err_name(c->err),
             workload(c->wl)->name, c->variant ? "/" : "", c->variant ? variants[c->variant].name : "");
    (void)wk;
}

static void job_start(struct walk *wk, struct job *j, const struct fcase *c)
{
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[1]);
        run_case(wk, c);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    *j = (struct job){.pid = pid, .fd = p[0], .c = c};
}

static void job_finish(struct walk *wk, struct job *j)
{
    int status;
    while (waitpid(j->pid, &status, 0) < 0)
        CHECK(errno == EINTR);
    close(j->fd);
    j->out[j->len] = 0;
    int fired = 0, propagated = 0;
    const char *res = strstr(j->out, "R ");
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && res &&
              sscanf(res, "R %d %d", &fired, &propagated) == 2;
    if (getenv("CORIO_FAULT_ONLY")) { /* debugging one case: show it all */
        char what[256];
        describe(what, sizeof what, wk, j->c);
        printf("%s\n  %s", what, j->out);
    }
    wk->ran[j->c->site]++;
    wk->fired[j->c->site] += fired;
    wk->propagated[j->c->site] += propagated;
    if (ok)
        return;
    wk->failures++;
    char what[256];
    describe(what, sizeof what, wk, j->c);
    char why[64] = "";
    if (WIFSIGNALED(status))
        snprintf(why, sizeof why, " [%s]", WTERMSIG(status) == SIGALRM ? "hung" : strsignal(WTERMSIG(status)));
    if (wk->msglen < sizeof wk->failed_msgs - 600)
        wk->msglen += (size_t)snprintf(wk->failed_msgs + wk->msglen, sizeof wk->failed_msgs - wk->msglen,
                                       "  %s%s\n    %.400s\n", what, why, j->out);
}

/* CORIO_FAULT_ONLY=text runs only the cases whose description has it,
 * and prints what each child said: for rerunning a failure. */
static void filter_cases(struct walk *wk)
{
    const char *only = getenv("CORIO_FAULT_ONLY");
    if (!only || !*only)
        return;
    size_t n = 0;
    for (size_t i = 0; i < wk->ncases; i++) {
        char what[256];
        describe(what, sizeof what, wk, &wk->cases[i]);
        if (strstr(what, only))
            wk->cases[n++] = wk->cases[i];
    }
    wk->ncases = n;
}

static void run_jobs(struct walk *wk)
{
    const char *env = getenv("CORIO_FAULT_JOBS");
    int max = env && atoi(env) > 0 ? atoi(env) : 4;
    if (max > 16)
        max = 16;
    struct job jobs[16];
    int njobs = 0;
    size_t next = 0;
    while (next < wk->ncases || njobs > 0) {
        while (njobs < max && next < wk->ncases)
            job_start(wk, &jobs[njobs++], &wk->cases[next++]);
        struct pollfd pf[16];
        for (int i = 0; i < njobs; i++)
            pf[i] = (struct pollfd){.fd = jobs[i].fd, .events = POLLIN};
        if (poll(pf, (nfds_t)njobs, 1000) <= 0)
            continue;
        for (int i = 0; i < njobs; i++) {
            if (!pf[i].revents)
                continue;
            struct job *j = &jobs[i];
            ssize_t n = read(j->fd, j->out + j->len, sizeof j->out - 1 - j->len);
            if (n > 0) {
                j->len += (size_t)n;
                if (j->len < sizeof j->out - 1)
                    continue;
                char sink[512]; /* keep the start; drain the rest */
                while (read(j->fd, sink, sizeof sink) > 0)
                    ;
                continue;
            }
            if (n < 0 && errno == EAGAIN)
                continue;
            job_finish(wk, j);
            jobs[i] = jobs[--njobs];
            pf[i] = pf[njobs];
            i--;
        }
    }
}

static void report(const struct walk *wk, size_t nsites, const struct corio__site *sites)
{
    char buf[16384];
    size_t len = 0;
    size_t walked = 0, unreached = 0;
    for (size_t i = 0; i < nsites; i++) {
        walked += wk->ran[i] > 0;
        unreached += wk->reached[i] == 0;
    }
    len += (size_t)snprintf(buf + len, sizeof buf - len,
                            "fault walk, backend %s: %zu cases at %zu of %zu sites, %zu failed\n",
                            wk->backend ? wk->backend : "default", wk->ncases, walked, nsites,
                            wk->failures);
    for (size_t i = 0; i < nsites && len < sizeof buf - 200; i++) {
        const char *file = strrchr(sites[i].file, '/');
        len += (size_t)snprintf(buf + len, sizeof buf - len, "  %-14s %-18s:%-4d %s",
                                sites[i].name, file ? file + 1 : sites[i].file, sites[i].line,
                                wk->reached[i] ? "" : "not reached on this backend\n");
        int errs[MAX_ERRS + 1];
        if (wk->reached[i] && errs_for(&sites[i], errs) == 0)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "cannot fail: reached, not injected\n");
        else if (wk->reached[i])
            len += (size_t)snprintf(buf + len, sizeof buf - len,
                                    "%3u cases, %3u fired, error seen by a caller in %u\n",
                                    wk->ran[i], wk->fired[i], wk->propagated[i]);
    }
    (void)unreached;
    if (getenv("V"))
        fputs(buf, stdout);
    const char *path = getenv("CORIO_FAULT_REPORT");
    if (path && *path) {
        FILE *f = fopen(path, "a");
        if (f) {
            fputs(buf, f);
            fclose(f);
        }
    }
}

TEST_TIMEOUT(fault_walk, 900)
{
    struct walk wk = {.backend = getenv("CORIO_BACKEND")};
    if (wk.backend && !*wk.backend)
        wk.backend = NULL;
    const char *mode = getenv("CORIO_FAULT_WALK");
    bool quick = valgrind_mode() || (mode && strcmp(mode, "quick") == 0);
    struct corio__site *sites;
    size_t nsites = corio__fault_sites(&sites);
    wk.reached = calloc(nsites, sizeof(unsigned));
    wk.ran = calloc(nsites, sizeof(unsigned));
    wk.fired = calloc(nsites, sizeof(unsigned));
    wk.propagated = calloc(nsites, sizeof(unsigned));
    unsigned *plain = calloc(nsites, sizeof(unsigned)), *calls = calloc(nsites, sizeof(unsigned));
    CHECK(wk.reached && wk.ran && wk.fired && wk.propagated && plain && calls);

    for (unsigned wl = 0; wl < NWORKLOADS; wl++) {
        for (unsigned v = 0; v < NVARIANTS; v++) {
            record(workload(wl), &variants[v], wk.backend, v == 0 ? plain : calls);
            unsigned *c = v == 0 ? plain : calls;
            if (v > 0) { /* a variant whose rule never matched opens nothing */
                bool opens = false;
                for (size_t i = 0; i < nsites; i++)
                    opens |= plain[i] > 0 && strcmp(sites[i].name, variants[v].site_name) == 0;
                if (!opens)
                    continue;
            }
            for (size_t i = 0; i < nsites; i++) {
                if (!c[i] || (v > 0 && plain[i]))
                    continue;
                if (v > 0 && strcmp(sites[i].name, variants[v].site_name) == 0)
                    continue;
                wk.reached[i]++;
                int errs[MAX_ERRS + 1];
                errs_for(&sites[i], errs);
                unsigned nths[6];
                int nn = pick_nths(c[i], quick, nths);
                for (int e = 0; errs[e]; e++)
                    for (int k = 0; k < nn; k++)
                        add_case(&wk, (struct fcase){wl, v, (unsigned)i, errs[e], nths[k], c[i]});
            }
        }
    }
    filter_cases(&wk);
    run_jobs(&wk);
    report(&wk, nsites, sites);
    free(plain);
    free(calls);
    free(wk.reached);
    free(wk.ran);
    free(wk.fired);
    free(wk.propagated);
    free(wk.cases);
    if (getenv("CORIO_FAULT_ONLY"))
        test_fail(__FILE__, __LINE__, "CORIO_FAULT_ONLY: %zu case(s), %zu failed (this run "
                  "always fails, so that the runner shows its output)", wk.ncases, wk.failures);
    if (wk.failures)
        test_fail(__FILE__, __LINE__, "%zu of %zu fault cases failed:\n%s", wk.failures, wk.ncases,
                  wk.failed_msgs);
}

/* ---- Every site in the library is reached by some workload ------------- */

static bool in_library(const struct corio__site *s)
{
    return strncmp(s->file, "src/", 4) == 0 || strstr(s->file, "/src/") != NULL;
}

TEST_TIMEOUT(fault_sites_reached, 120)
{
    struct corio__site *sites;
    size_t nsites = corio__fault_sites(&sites);
    unsigned *calls = calloc(nsites, sizeof(unsigned));
    bool *reached = calloc(nsites, sizeof(bool));
    CHECK(calls && reached);
    static const char *const backends[] = {"epoll", "poll"};
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        corio_loop *probe;
        corio_loop_options o = {.backend = backends[b]};
        if (corio_loop_new(&probe, &o) < 0)
            continue; /* not built on this system */
        CHECK_EQ(corio_loop_free(probe), 0);
        for (unsigned wl = 0; wl < NWORKLOADS; wl++)
            for (unsigned v = 0; v < NVARIANTS; v++) {
                record(workload(wl), &variants[v], backends[b], calls);
                for (size_t i = 0; i < nsites; i++)
                    reached[i] |= calls[i] > 0;
            }
    }
    char missing[4096] = "";
    size_t len = 0, nmissing = 0, nlib = 0;
    for (size_t i = 0; i < nsites; i++) {
        if (!in_library(&sites[i]))
            continue;
        nlib++;
        if (reached[i])
            continue;
        nmissing++;
        if (len < sizeof missing - 200)
            len += (size_t)snprintf(missing + len, sizeof missing - len, "  %s at %s:%d\n",
                                    sites[i].name, sites[i].file, sites[i].line);
    }
    free(calls);
    free(reached);
    if (nmissing)
        test_fail(__FILE__, __LINE__,
                  "%zu of %zu library sites are reached by no workload of the fault walk "
                  "(add one to tests/test_fault.c):\n%s", nmissing, nlib, missing);
}

/* ---- The seam itself ---------------------------------------------------- */

TEST(fault_seam_rules)
{
    SITE(s_read, "read");
    SITE(s_readv, "readv");
    SITE(s_writev, "writev");
    int sv[2];
    test_socketpair(sv);
    char buf[64];
    CHECK_EQ(write(sv[0], "0123456789abcdef0123456789abcdef", 32), 32);

    /* The nth call fails, once. */
    corio__fault_arm(&s_read, NULL, 2, -EIO);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 4), 4);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 4), -EIO);
    CHECK(corio__fault_fired());
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 4), 4);

    /* A run of calls, by name; the other sites are left alone. */
    corio__fault_disarm();
    CHECK_EQ(corio__fault_add(NULL, "read", 1, 2, -EINTR), 0);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 2), -EINTR);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 2), -EINTR);
    struct iovec one = {buf, 2};
    CHECK_EQ(sys_readv(&s_readv, sv[1], &one, 1), 2);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 2), 2);
    CHECK_EQ(corio__fault_fires(0), 2);

    /* Every call from the nth on, until disarmed; rules stack. */
    corio__fault_disarm();
    CHECK_EQ(corio__fault_add(&s_readv, NULL, 1, 0, -ENOMEM), 0);
    CHECK_EQ(corio__fault_add(NULL, NULL, 1, 1, -EPIPE), 1);
    CHECK_EQ(sys_readv(&s_readv, sv[1], &one, 1), -ENOMEM);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 2), -EPIPE);
    CHECK_EQ(sys_readv(&s_readv, sv[1], &one, 1), -ENOMEM);
    CHECK_EQ(corio__fault_fires(0), 2);
    corio__fault_disarm();
    CHECK_EQ(sys_readv(&s_readv, sv[1], &one, 1), 2);
    CHECK(!corio__fault_fired());

    /* Short transfers: half of a buffer; part of the first non-empty iovec. */
    corio__fault_arm(&s_read, NULL, 1, CORIO__FAULT_SHORT);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 8), 4);
    struct iovec iov[3] = {{buf, 0}, {buf, 6}, {buf + 6, 10}};
    corio__fault_arm(&s_readv, NULL, 1, CORIO__FAULT_SHORT);
    CHECK_EQ(sys_readv(&s_readv, sv[1], iov, 3), 3);
    corio__fault_arm(&s_writev, NULL, 1, CORIO__FAULT_SHORT);
    struct iovec out[2] = {{(void *)"x", 1}, {(void *)"yz", 2}};
    CHECK_EQ(sys_writev(&s_writev, sv[0], out, 2), 1);
    corio__fault_disarm();

    /* Recording counts every call at every site. */
    corio__fault_reset_counts();
    corio__fault_record(true);
    CHECK(corio__fault_on);
    CHECK(sys_read(&s_read, sv[1], buf, 1) == 1);
    CHECK(sys_read(&s_read, sv[1], buf, 1) == 1);
    corio__fault_record(false);
    CHECK(!corio__fault_on);
    CHECK_EQ(s_read.calls, 2);
    CHECK_EQ(s_readv.calls, 0);
    close(sv[0]);
    close(sv[1]);
}

/* ---- A user's allocator that fails ------------------------------------- */

static struct {
    long budget;    /* allocations left before they fail; < 0: unlimited */
    long live;      /* blocks allocated and not freed */
} ua;

static void *ua_malloc(size_t n)
{
    if (ua.budget == 0)
        return NULL;
    if (ua.budget > 0)
        ua.budget--;
    void *p = malloc(n);
    ua.live += p != NULL;
    return p;
}

static void *ua_realloc(void *p, size_t n)
{
    if (ua.budget == 0)
        return NULL;
    if (ua.budget > 0)
        ua.budget--;
    void *q = realloc(p, n);
    ua.live += p == NULL && q != NULL;
    return q;
}

static void ua_free(void *p)
{
    ua.live -= p != NULL;
    free(p);
}

static void *ua_echo(void *p)
{
    int *sv = p;
    char buf[8];
    ssize_t n = corio_read(sv[1], buf, sizeof buf, corio_after(5 * CORIO_SEC));
    return (void *)(intptr_t)n;
}

/* Allocation failures come through corio_set_allocator() as they do
 * through the seam: a user's allocator that says no at the nth allocation
 * turns into -ENOMEM from the call that needed memory, and nothing is left
 * behind.  (The runner's counting allocator is replaced for the rest of
 * this process, so this test counts blocks itself.) */
TEST(fault_user_allocator)
{
    corio_allocator a = {ua_malloc, ua_realloc, ua_free};
    corio_set_allocator(&a);
    int fds = count_fds();
    bool done = false;
    for (long budget = 0; budget < 64 && !done; budget++) {
        ua.budget = budget;
        corio_loop *loop = NULL;
        int r = corio_loop_new(&loop, NULL);
        if (r < 0) {
            CHECK_EQ(r, -ENOMEM);
            CHECK(loop == NULL);
            CHECK_EQ(ua.live, 0);
            continue;
        }
        int sv[2];
        test_socketpair(sv);
        CHECK_EQ(write(sv[0], "ping", 4), 4);
        corio_co *co;
        r = corio_spawn(loop, &co, ua_echo, sv, 0);
        if (r < 0) {
            CHECK_EQ(r, -ENOMEM);
        } else {
            test_run(loop);
            void *res;
            CHECK_EQ(corio_join(co, &res, CORIO_NOWAIT), 0);
            /* The read needs no memory unless it parks, and it does not. */
            CHECK_EQ((intptr_t)res, 4);
            done = true;
        }
        close(sv[0]);
        close(sv[1]);
        CHECK_EQ(corio_loop_free(loop), 0);
        CHECK_EQ(ua.live, 0);
    }
    CHECK(done);
    CHECK_EQ(count_fds(), fds);
}
