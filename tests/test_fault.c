/* The fault walk: every syscall and allocation site in the library, failed
 * with every error a real kernel could return there, under workloads that
 * reach it (docs/reliability.md).
 *
 * Sites are found at run time (the "corio_sites" section, src/fault.h), so
 * a site added anywhere in the library is walked without touching this
 * file, as long as some workload reaches it; fault_sites_reached fails for
 * a site that none reaches, so no syscall goes untested.
 *
 * How it goes:
 *  1. Each workload (the core one here, the areas' in test_fault_areas.c)
 *     runs once with every call counted: the recording.  It runs again
 *     under each variant, a background rule that opens a path a plain run
 *     never takes (epoll_pwait2 saying ENOSYS; a listener out of fds).
 *  2. For each site reached, each plausible error there (errs_for()), and
 *     a few call numbers (the 1st, 2nd, 3rd, middle, next-to-last and last
 *     call), a child process runs the workload with that call failed.
 *     Children run a few at a time; each has a time limit, and reports the
 *     sites it reached that the recording did not.
 *  3. Those sites, which only run once another call has failed (cleanup
 *     paths), are walked in a second round with that failure armed too.
 *  4. Each child asserts: no crash and no hang; wrong data never reaches a
 *     caller; each failed call fails at most one exchange of the workload
 *     (see check_failures() for the two exceptions), and only with an error
 *     the caller can read (corio_strerror names it); with the faults paused,
 *     a fresh connection on the same loop completes its exchange; the loop
 *     frees cleanly (no coroutine, timer, watcher or callback left), with
 *     the faults armed again; no fd and no byte of memory leaked.
 *
 * A workload is a set of concurrent "exchanges" (an echo over TCP, a
 * watcher conversation, a posted callback, ...), each of which either
 * completes with the right bytes or fails with an error.  Setup calls that
 * fail are retried, as a careful application would: the point is that the
 * failure had no effect and the next try works.
 *
 * Environment: CORIO_FAULT_WALK=quick (the first and last call only; the
 * valgrind target sets CORIO_TEST_VALGRIND, which implies it),
 * CORIO_FAULT_JOBS=n (children at once, default 4), CORIO_FAULT_WORKLOAD=
 * a,b (only those workloads), CORIO_FAULT_ONLY=text (only the cases whose
 * description has it, each child's output shown), CORIO_FAULT_REPORT=path
 * (append the per-site report there), V=1 (print it). */
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
    {"realloc", NULL, {-ENOMEM}},
    /* A signalfd and /proc files: no peer to reset them. */
    {"read", "signal.c", {-EINTR, -EAGAIN}},
    {"read", "kstats.c", {-EINTR, -EIO, SHORT}},
    {"ioctl", NULL, {-EINVAL, -ENOTTY}},
    {"fstat", NULL, {-EIO, -ENOMEM}},
    {"sendfile", NULL, {-EINTR, -EAGAIN, -EPIPE, -ECONNRESET, -EIO, SHORT}},
    {"openat", NULL, {-EMFILE, -ENFILE, -ENOENT, -EACCES, -ELOOP}},
    {"openat2", NULL, {-ENOSYS, -EMFILE, -ENOENT, -EXDEV, -EAGAIN}},
    {"getaddrinfo", NULL, {-ENOMEM, -CORIO_ENONAME}},
    {"sched_setaffinity", NULL, {-EINVAL, -EPERM}},
    {"fork", NULL, {-EAGAIN, -ENOMEM}},
    {"waitpid", NULL, {-EINTR, -ECHILD}},
    {"kill", NULL, {-ESRCH}},
    {"sigtimedwait", NULL, {-EINTR, -EAGAIN}},
    /* Signal masks, actions and the affinity a thread already has cannot
     * fail with valid arguments; nor can PR_SET_PDEATHSIG. */
    {"pthread_sigmask", NULL, {0}},
    {"sigprocmask", NULL, {0}},
    {"sigaction", NULL, {0}},
    {"sched_getaffinity", NULL, {0}},
    {"prctl", NULL, {0}},
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
    E(ENOENT); E(EBUSY); E(ETIMEDOUT); E(EINVAL); E(ENOTTY); E(ELOOP); E(EXDEV); E(ECHILD);
    E(ESRCH); E(EPERM);
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
        if (fd == -ECANCELED)
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
    /* Cancelled, not closed under it: while backing off after an error it
     * is parked in a sleep, and the fd number could be reused meanwhile. */
    CHECK_EQ(corio_cancel(acc), 0);
    CHECK_EQ(corio_join(acc, NULL, CORIO_FOREVER), 0);
    corio_close(e->sv.lfd);
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

/* CORIO_FAULT_WORKLOAD=name,... limits the walk to those workloads. */
static bool workload_selected(unsigned i)
{
    const char *sel = getenv("CORIO_FAULT_WORKLOAD");
    if (!sel || !*sel)
        return true;
    const char *name = workload(i)->name;
    size_t n = strlen(name);
    for (const char *p = sel; (p = strstr(p, name)); p += n)
        if ((p == sel || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return true;
    return false;
}

/* Variants: a background rule that opens paths a plain run never takes.
 * A variant walks only the sites it reaches and the plain run does not.
 * Its rule is a fault too: a one-shot one may fail an exchange. */
struct variant {
    const char *name;
    const char *site_name; /* NULL: no rule */
    int err;
    unsigned nth;          /* the first call it fails */
    unsigned times;        /* calls failed from the nth on; 0: all */
};

static const struct variant variants[] = {
    {"plain", NULL, 0, 0, 0},
    /* The epoll_wait fallback: every loop's first wait says ENOSYS. */
    {"no-epoll_pwait2", "epoll_pwait2", -ENOSYS, 1, 0},
    /* A listener out of descriptors with a connection queued (the first
     * accept finds the queue empty): the reserve-fd path. */
    {"accept-emfile", "accept4", -EMFILE, 2, 1},
};
#define NVARIANTS (sizeof variants / sizeof variants[0])

/* ---- Running one workload, with or without faults ----------------------- */

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

/* One call to fail: the nth at a site (an index into the sites). */
struct fault {
    int site; /* -1: none */
    int err;
    unsigned nth;
};

/* What is armed for a run, and which rule is which. */
struct armed {
    int err;          /* the fault under test (rule 0), or 0 */
    const char *name; /* its site's name */
    int vrule;        /* the variant's rule, or -1 */
    bool vcounts;     /* it fails one call (a fault that may fail an exchange) */
    const struct variant *v;
    int orule;        /* the opener's rule (a fault before the one under test), or -1 */
    const char *oname; /* its site's name */
    int oerr;
};

static struct armed arm(const struct fault *target, const struct variant *v, const struct fault *opener)
{
    struct corio__site *sites;
    corio__fault_sites(&sites);
    struct armed a = {.err = 0, .vrule = -1, .orule = -1};
    corio__fault_disarm();
    if (target && target->site >= 0) {
        CHECK_EQ(corio__fault_add(&sites[target->site], NULL, target->nth, 1, target->err), 0);
        a.err = target->err;
        a.name = sites[target->site].name;
    }
    if (v->site_name) {
        a.vrule = corio__fault_add(NULL, v->site_name, v->nth, v->times, v->err);
        a.vcounts = v->times != 0;
        a.v = v;
        CHECK(a.vrule >= 0);
    }
    if (opener && opener->site >= 0) {
        a.orule = corio__fault_add(&sites[opener->site], NULL, opener->nth, 1, opener->err);
        a.oname = sites[opener->site].name;
        a.oerr = opener->err;
        CHECK(a.orule >= 0);
    }
    return a;
}

/* A listener out of descriptors. */
static bool sheds(const char *name, int err)
{
    return (err == -EMFILE || err == -ENFILE) && strcmp(name, "accept4") == 0;
}

static bool one_of(int err, const int *list)
{
    for (; *list; list++)
        if (err == *list)
            return true;
    return false;
}

/* How many exchanges the faults may fail: one each, with two exceptions
 * where one failed call rightly concerns several connections:
 *  - a spurious EAGAIN on an edge-triggered fd loses that fd's edge, so
 *    whatever was queued on it (a request, or every connection waiting on
 *    a listener) waits for the next edge or its deadline;
 *  - a listener out of descriptors (EMFILE, ENFILE) sheds every
 *    connection queued at that moment (the reserve-fd trick).
 * The exchanges they fail must fail with what those cause. */
static void check_failures(const struct wctx *w, const struct armed *a, int faults, bool vfired,
                           bool ofired)
{
    static const int timeouts[] = {-ETIMEDOUT, -EAGAIN, 0};
    static const int dropped[] = {-ECONNRESET, -EPIPE, -ENOTCONN, -CORIO_EEOF, -CORIO_ECLOSED,
                                  -ETIMEDOUT, 0};
    if (faults == 0) {
        if (w->failed)
            test_fail(__FILE__, __LINE__, "%d exchange(s) failed without a fault (first: %s)",
                      w->failed, corio_strerror(w->fail_err[0]));
        return;
    }
    const int *allowed = NULL;
    if (w->fired && a->err == -EAGAIN)
        allowed = timeouts;
    else if ((w->fired && sheds(a->name, a->err)) || (vfired && sheds(a->v->site_name, a->v->err)) ||
             (ofired && sheds(a->oname, a->oerr)))
        allowed = dropped;
    if (allowed && w->failed > faults) {
        for (int i = 0; i < w->failed && i < FAULT_MAX_SEEN; i++)
            if (!one_of(w->fail_err[i], allowed))
                test_fail(__FILE__, __LINE__, "%s failed %d exchanges, one with %s", err_name(a->err),
                          w->failed, corio_strerror(w->fail_err[i]));
        return;
    }
    if (w->failed > faults)
        test_fail(__FILE__, __LINE__, "%d fault(s) failed %d exchanges of %d (%s, %s, ...)",
                  faults, w->failed, w->exchanges, corio_strerror(w->fail_err[0]),
                  corio_strerror(w->fail_err[1]));
}

/* Runs wl on a fresh loop with a's faults armed, then the health check
 * (faults paused), then frees the loop (faults armed again) and checks
 * for leaks.  calls (may be NULL) gets the calls per site while recording,
 * the health check's left out. */
static void run_checked(const struct fault_workload *wl, const char *backend, const struct armed *a,
                        struct wctx *out, unsigned *calls)
{
    int fds = count_fds();
    long long mem = test_live_allocations();
    struct wctx w = {.backend = backend, .io_ns = io_limit(), .inject = a->err};
    /* A thread that has a signal stack (ASan gives every thread one) keeps
     * it, and the loop maps none: take it down for the run so that the
     * loop's own is walked in every build, and put it back after. */
    stack_t prev;
    bool had_altstack = sigaltstack(NULL, &prev) == 0 && !(prev.ss_flags & SS_DISABLE);
    if (had_altstack)
        CHECK(sigaltstack(&(stack_t){.ss_flags = SS_DISABLE}, NULL) == 0);
    wl->run(&w);
    /* The health check runs with the faults paused; freeing the loop does
     * not: its calls can fail too. */
    struct corio__site *sites;
    size_t nsites = corio__fault_sites(&sites);
    unsigned *health = calloc(nsites, sizeof *health); /* the health check's calls */
    CHECK(health != NULL);
    for (size_t i = 0; i < nsites; i++)
        health[i] = corio__fault_calls(&sites[i]);
    corio__fault_pause(true);
    health_check(&w);
    corio__fault_pause(false);
    for (size_t i = 0; i < nsites; i++)
        health[i] = corio__fault_calls(&sites[i]) - health[i];
    int r = corio_loop_free(w.loop);
    for (size_t i = 0; calls && i < nsites; i++)
        calls[i] = corio__fault_calls(&sites[i]) - health[i];
    free(health);
    if (had_altstack)
        CHECK(sigaltstack(&prev, NULL) == 0);
    w.fired = a->err != 0 && corio__fault_fired();
    bool vfired = a->vrule >= 0 && corio__fault_fires(a->vrule) > 0;
    bool ofired = a->orule >= 0 && corio__fault_fires(a->orule) > 0;
    int faults = w.fired + (vfired && a->vcounts) + ofired;
    corio__fault_disarm();
    if (r < 0)
        test_fail(__FILE__, __LINE__, "corio_loop_free: %s (coroutines, timers, watchers or "
                  "callbacks left on the loop)", corio_strerror(r));
    if (w.wrong)
        test_fail(__FILE__, __LINE__, "%d exchange(s) delivered wrong bytes", w.wrong);
    if (count_fds() != fds)
        test_fail(__FILE__, __LINE__, "leaked %d fd(s)", count_fds() - fds);
    if (test_live_allocations() != mem)
        test_fail(__FILE__, __LINE__, "leaked %lld bytes", test_live_allocations() - mem);
    check_failures(&w, a, faults, vfired, ofired);
    *out = w;
}

/* Counts the calls each site gets in one run of wl under variant v. */
static void record(const struct fault_workload *wl, const struct variant *v, const char *backend,
                   unsigned *calls)
{
    /* Shown only if the test fails: which run it was. */
    fprintf(stderr, "recording workload %s, variant %s, backend %s\n", wl->name, v->name,
            backend ? backend : "default");
    struct armed a = arm(NULL, v, NULL);
    corio__fault_reset_counts();
    corio__fault_record(true);
    struct wctx w;
    run_checked(wl, backend, &a, &w, calls);
    corio__fault_record(false);
}

/* ---- The walk -----------------------------------------------------------
 * Round 1 fails each call the recordings reached.  A site that only runs
 * once some other call has failed (the cleanup after a failed bind, say)
 * shows up in the children of round 1; round 2 walks it with that first
 * failure armed too (its "opener"). */

struct fcase {
    unsigned wl, variant;
    struct fault target;
    unsigned of;          /* calls the target's site got in the run nth was chosen from */
    struct fault opener;  /* site -1: none */
};

struct job {
    pid_t pid;
    int fd;
    const struct fcase *c;
    char out[4096];
    size_t len;
};

struct walk {
    const char *backend;
    bool discovery;       /* every error at the first call only: to find sites */
    bool quick;           /* the first and last call only */
    size_t nsites;
    unsigned *rec;        /* [wl][variant][site]: calls in the recordings */
    bool *plain;          /* per site: some recording reached it */
    struct fcase *cases;
    size_t ncases, cap, round2;
    size_t failures;
    char failed_msgs[8192];
    size_t msglen;
    /* Per site: reached after a fault (by that case: opener, calls). */
    struct fcase *opener;
    unsigned *opener_calls;
    unsigned *ran, *fired, *propagated;
};

static unsigned *rec_of(const struct walk *wk, unsigned wl, unsigned v)
{
    return wk->rec + ((size_t)wl * NVARIANTS + v) * wk->nsites;
}

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
static int pick_nths(unsigned calls, const struct walk *wk, unsigned out[6])
{
    unsigned cand[6] = {1, 2, 3, calls / 2, calls - 1, calls};
    int n = 0;
    for (int i = 0; i < 6; i++) {
        if ((wk->discovery && i != 0) || (wk->quick && i != 0 && i != 5))
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

/* Cases for site i, reached `calls` times in workload wl under variant v. */
static void add_cases(struct walk *wk, unsigned wl, unsigned v, unsigned i, unsigned calls,
                      const struct fault *opener)
{
    struct corio__site *sites;
    corio__fault_sites(&sites);
    int errs[MAX_ERRS + 1];
    errs_for(&sites[i], errs);
    unsigned nths[6];
    int nn = pick_nths(calls, wk, nths);
    for (int e = 0; errs[e]; e++)
        for (int k = 0; k < nn; k++)
            add_case(wk, (struct fcase){wl, v, {(int)i, errs[e], nths[k]}, calls,
                                        opener ? *opener : (struct fault){-1, 0, 0}});
}

static void describe(char *buf, size_t size, const struct fcase *c)
{
    struct corio__site *sites;
    corio__fault_sites(&sites);
    const struct corio__site *s = &sites[c->target.site];
    const char *file = strrchr(s->file, '/');
    int n = snprintf(buf, size, "%s at %s:%d, call %u of %u, %s, workload %s%s%s", s->name,
                     file ? file + 1 : s->file, s->line, c->target.nth, c->of,
                     err_name(c->target.err), workload(c->wl)->name, c->variant ? "/" : "",
                     c->variant ? variants[c->variant].name : "");
    if (c->opener.site >= 0 && n > 0 && (size_t)n < size) {
        const struct corio__site *o = &sites[c->opener.site];
        file = strrchr(o->file, '/');
        snprintf(buf + n, size - (size_t)n, ", after %s at %s:%d failed (call %u, %s)", o->name,
                 file ? file + 1 : o->file, o->line, c->opener.nth, err_name(c->opener.err));
    }
}

/* The child: runs the case and reports on stdout: "R fired propagated ..."
 * and, for each site this run reached that the recording did not,
 * "N site calls". */
static _Noreturn void run_case(const struct walk *wk, const struct fcase *c)
{
    alarm(valgrind_mode() ? 300 : 20);
    corio__fault_isolate(); /* the cases running beside this one have their own */
    const struct variant *v = &variants[c->variant];
    struct armed a = arm(&c->target, v, &c->opener);
    corio__fault_reset_counts();
    corio__fault_record(true);
    unsigned *calls = calloc(wk->nsites, sizeof *calls);
    CHECK(calls != NULL);
    struct wctx w;
    run_checked(workload(c->wl), wk->backend, &a, &w, calls);
    bool propagated = false;
    for (int i = 0; i < w.nseen; i++)
        propagated |= w.seen[i] == c->target.err;
    printf("R %d %d seen:", (int)w.fired, (int)propagated);
    for (int i = 0; i < w.nseen; i++)
        printf(" %s", err_name(w.seen[i]));
    printf(", %d of %d exchanges failed\n", w.failed, w.exchanges);
    const unsigned *rec = rec_of(wk, c->wl, c->variant);
    for (size_t i = 0; i < wk->nsites; i++)
        if (calls[i] && !rec[i])
            printf("N %zu %u\n", i, calls[i]);
    free(calls);
    fflush(stdout);
    _exit(0);
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

/* Notes the sites a round-1 child reached that no recording did. */
static void note_new_sites(struct walk *wk, const struct job *j)
{
    if (j->c->opener.site >= 0)
        return; /* depth two is as deep as the walk goes */
    for (const char *p = j->out; (p = strstr(p, "\nN ")); p++) {
        size_t site;
        unsigned calls;
        if (sscanf(p, "\nN %zu %u", &site, &calls) != 2 || site >= wk->nsites)
            continue;
        if (!wk->plain[site] && wk->opener[site].target.site < 0) {
            wk->opener[site] = *j->c;
            wk->opener_calls[site] = calls;
        }
    }
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
        char what[512];
        describe(what, sizeof what, j->c);
        printf("%s\n  %s", what, j->out);
    }
    unsigned site = (unsigned)j->c->target.site;
    wk->ran[site]++;
    wk->fired[site] += fired;
    wk->propagated[site] += propagated;
    if (ok) {
        note_new_sites(wk, j);
        return;
    }
    wk->failures++;
    char what[512];
    describe(what, sizeof what, j->c);
    char why[64] = "";
    if (WIFSIGNALED(status))
        snprintf(why, sizeof why, " [%s]", WTERMSIG(status) == SIGALRM ? "hung" : strsignal(WTERMSIG(status)));
    /* The start of what the child said, and its end (where a sanitizer
     * or valgrind reports). */
    size_t tail = j->len > 1100 ? j->len - 700 : 400;
    if (wk->msglen < sizeof wk->failed_msgs - 1500)
        wk->msglen += (size_t)snprintf(wk->failed_msgs + wk->msglen, sizeof wk->failed_msgs - wk->msglen,
                                       "  %s%s (exit status %d)\n    %.400s%s%s\n", what, why,
                                       WIFEXITED(status) ? WEXITSTATUS(status) : -1, j->out,
                                       j->len > 400 ? "\n    ...\n" : "", j->len > 400 ? j->out + tail : "");
}

/* CORIO_FAULT_ONLY=text runs only the cases whose description has it,
 * and prints what each child said: for rerunning a failure. */
static void filter_cases(struct walk *wk, size_t from)
{
    const char *only = getenv("CORIO_FAULT_ONLY");
    if (!only || !*only)
        return;
    size_t n = from;
    for (size_t i = from; i < wk->ncases; i++) {
        char what[512];
        describe(what, sizeof what, &wk->cases[i]);
        if (strstr(what, only))
            wk->cases[n++] = wk->cases[i];
    }
    wk->ncases = n;
}

/* Runs cases [from, ncases), a few children at a time. */
static void run_jobs(struct walk *wk, size_t from)
{
    const char *env = getenv("CORIO_FAULT_JOBS");
    int max = env && atoi(env) > 0 ? atoi(env) : 4;
    if (max > 16)
        max = 16;
    /* Static: a child must not inherit a block only a register points at
     * (valgrind, checking each child for leaks, would call it lost). */
    static struct job jobs[16];
    int njobs = 0;
    size_t next = from;
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

static void walk_init(struct walk *wk, const char *backend, bool discovery)
{
    memset(wk, 0, sizeof *wk);
    struct corio__site *sites;
    wk->nsites = corio__fault_sites(&sites);
    wk->backend = backend;
    wk->discovery = discovery;
    const char *mode = getenv("CORIO_FAULT_WALK");
    wk->quick = valgrind_mode() || (mode && strcmp(mode, "quick") == 0);
    size_t n = wk->nsites;
    wk->rec = calloc(NWORKLOADS * NVARIANTS * n, sizeof *wk->rec);
    wk->plain = calloc(n, sizeof *wk->plain);
    wk->opener = calloc(n, sizeof *wk->opener);
    wk->opener_calls = calloc(n, sizeof *wk->opener_calls);
    wk->ran = calloc(n, sizeof *wk->ran);
    wk->fired = calloc(n, sizeof *wk->fired);
    wk->propagated = calloc(n, sizeof *wk->propagated);
    CHECK(wk->rec && wk->plain && wk->opener && wk->opener_calls && wk->ran && wk->fired &&
          wk->propagated);
    for (size_t i = 0; i < n; i++)
        wk->opener[i].target.site = -1;
}

static void walk_free(struct walk *wk)
{
    free(wk->rec);
    free(wk->plain);
    free(wk->opener);
    free(wk->opener_calls);
    free(wk->ran);
    free(wk->fired);
    free(wk->propagated);
    free(wk->cases);
}

/* Records every workload under every variant, then runs both rounds. */
static void walk_run(struct walk *wk)
{
    struct corio__site *sites;
    corio__fault_sites(&sites);
    for (unsigned wl = 0; wl < NWORKLOADS; wl++) {
        for (unsigned v = 0; v < NVARIANTS && workload_selected(wl); v++) {
            unsigned *c = rec_of(wk, wl, v), *plain = rec_of(wk, wl, 0);
            record(workload(wl), &variants[v], wk->backend, c);
            if (v > 0) { /* a variant whose rule never matched opens nothing */
                bool opens = false;
                for (size_t i = 0; i < wk->nsites; i++)
                    opens |= plain[i] > 0 && strcmp(sites[i].name, variants[v].site_name) == 0;
                if (!opens)
                    continue;
            }
            for (size_t i = 0; i < wk->nsites; i++) {
                if (!c[i] || (v > 0 && plain[i]))
                    continue;
                if (v > 0 && strcmp(sites[i].name, variants[v].site_name) == 0)
                    continue;
                wk->plain[i] = true;
                add_cases(wk, wl, v, (unsigned)i, c[i], NULL);
            }
        }
    }
    filter_cases(wk, 0);
    run_jobs(wk, 0);
    /* Round 2: the sites only a failure reaches, with it armed. */
    size_t from = wk->ncases;
    for (size_t i = 0; i < wk->nsites; i++) {
        const struct fcase *o = &wk->opener[i];
        if (o->target.site >= 0)
            add_cases(wk, o->wl, o->variant, (unsigned)i, wk->opener_calls[i], &o->target);
    }
    filter_cases(wk, from);
    wk->round2 = wk->ncases - from;
    run_jobs(wk, from);
}

static bool walk_reached(const struct walk *wk, size_t i)
{
    return wk->plain[i] || wk->opener[i].target.site >= 0;
}

static void report(const struct walk *wk)
{
    struct corio__site *sites;
    size_t nsites = corio__fault_sites(&sites);
    char buf[32768];
    size_t len = 0, walked = 0, opened = 0;
    for (size_t i = 0; i < nsites; i++) {
        walked += wk->ran[i] > 0;
        opened += !wk->plain[i] && wk->opener[i].target.site >= 0;
    }
    len += (size_t)snprintf(buf + len, sizeof buf - len,
                            "fault walk, backend %s: %zu cases (%zu after an earlier failure) at %zu of "
                            "%zu sites (%zu reached only after an earlier failure), %zu failed\n",
                            wk->backend ? wk->backend : "default", wk->ncases, wk->round2, walked,
                            nsites, opened, wk->failures);
    for (size_t i = 0; i < nsites && len < sizeof buf - 300; i++) {
        const char *file = strrchr(sites[i].file, '/');
        int errs[MAX_ERRS + 1];
        len += (size_t)snprintf(buf + len, sizeof buf - len, "  %-17s %-16s:%-5d ", sites[i].name,
                                file ? file + 1 : sites[i].file, sites[i].line);
        if (!walk_reached(wk, i))
            len += (size_t)snprintf(buf + len, sizeof buf - len, "not reached\n");
        else if (errs_for(&sites[i], errs) == 0)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "cannot fail: reached, not injected\n");
        else
            len += (size_t)snprintf(buf + len, sizeof buf - len,
                                    "%3u cases, %3u fired, error seen by a caller in %3u%s\n",
                                    wk->ran[i], wk->fired[i], wk->propagated[i],
                                    wk->plain[i] ? "" : " (after an earlier failure)");
    }
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

static void walk_check(const struct walk *wk)
{
    fflush(stdout); /* test_fail() leaves with _exit() */
    if (getenv("CORIO_FAULT_ONLY"))
        test_fail(__FILE__, __LINE__, "CORIO_FAULT_ONLY: %zu case(s), %zu failed (this run "
                  "always fails, so that the runner shows its output)", wk->ncases, wk->failures);
    if (wk->failures)
        test_fail(__FILE__, __LINE__, "%zu of %zu fault cases failed:\n%s", wk->failures, wk->ncases,
                  wk->failed_msgs);
}

static const char *env_backend(void)
{
    const char *b = getenv("CORIO_BACKEND");
    return b && *b ? b : NULL;
}

TEST_TIMEOUT(fault_walk, 900)
{
    struct walk wk;
    walk_init(&wk, env_backend(), false);
    walk_run(&wk);
    report(&wk);
    walk_check(&wk);
    walk_free(&wk);
}

/* ---- Every site in the library is reached by some workload ------------- */

static bool in_library(const struct corio__site *s)
{
    return strncmp(s->file, "src/", 4) == 0 || strstr(s->file, "/src/") != NULL;
}

/* A light walk on each backend (every error, first call only) finds the
 * sites the workloads reach, directly or once another call has failed. */
TEST_TIMEOUT(fault_sites_reached, 300)
{
    struct corio__site *sites;
    size_t nsites = corio__fault_sites(&sites);
    bool *reached = calloc(nsites, sizeof(bool));
    CHECK(reached != NULL);
    static const char *const backends[] = {"epoll", "poll"};
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        corio_loop *probe;
        corio_loop_options o = {.backend = backends[b]};
        if (corio_loop_new(&probe, &o) < 0)
            continue; /* not built on this system */
        CHECK_EQ(corio_loop_free(probe), 0);
        struct walk wk;
        walk_init(&wk, backends[b], true);
        walk_run(&wk);
        walk_check(&wk);
        for (size_t i = 0; i < nsites; i++)
            reached[i] |= walk_reached(&wk, i);
        walk_free(&wk);
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
    free(reached);
    if (nmissing)
        test_fail(__FILE__, __LINE__,
                  "%zu of %zu library sites are reached by no workload of the fault walk, even "
                  "after another call failed (add one to tests/test_fault_areas.c):\n%s",
                  nmissing, nlib, missing);
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
    CHECK_EQ(write(sv[0], "0123456789abcdef0123456789abcdef0123456789", 42), 42);

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

    /* Paused rules neither count nor fire. */
    corio__fault_arm(&s_read, NULL, 2, -EIO);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 1), 1);
    corio__fault_pause(true);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 1), 1);
    corio__fault_pause(false);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 1), -EIO);

    /* A forked child shares the plan: its calls count here, and a rule
     * fires once across both; an isolated process has its own. */
    corio__fault_arm(&s_read, NULL, 1, -EIO);
    corio__fault_reset_counts();
    corio__fault_record(true);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(sys_read(&s_read, sv[1], buf, 1) == -EIO ? 0 : 1);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(corio__fault_fired());
    CHECK_EQ(corio__fault_calls(&s_read), 1);
    CHECK_EQ(sys_read(&s_read, sv[1], buf, 1), 1);
    CHECK_EQ(corio__fault_calls(&s_read), 2);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        corio__fault_isolate();
        corio__fault_record(true);
        _exit(sys_read(&s_read, sv[1], buf, 1) == 1 ? 0 : 1);
    }
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(corio__fault_calls(&s_read), 2);
    corio__fault_record(false);
    corio__fault_disarm();
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
