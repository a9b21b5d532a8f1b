/* Signals for coroutines: corio_signal_wait().
 *
 * A loop that is asked for a signal "claims" it: from then until the loop
 * is freed the signal arrives on one fd the loop watches, and a watcher
 * hands each one to the longest waiter whose set has it, or keeps it
 * pending for the next wait (so none is lost between two waits).  The
 * watcher runs only while someone waits, so an idle loop watches nothing.
 *
 * Where the fd comes from is the only platform part (the #if below):
 *  - Linux: a signalfd.  The loop's thread blocks the claimed signals, and
 *    the kernel queues them on the fd instead of running a handler.
 *  - elsewhere (or with -DCORIO_SIGNAL_SELFPIPE, how the tests cover it):
 *    a handler writes the signal number to a non-blocking pipe.  Handlers
 *    are process-wide, so this one table of write ends is the library's one
 *    piece of global state, and a signal belongs to one loop at a time. */
#include <stdatomic.h>
#include <string.h>

#include "internal.h"

#if defined(__linux__) && !defined(CORIO_SIGNAL_SELFPIPE)
#define USE_SIGNALFD 1
#else
#define USE_SIGNALFD 0
#endif

struct sigwaiter {
    corio_list link;
    corio_co *co;
    const sigset_t *set;
};

struct corio_sig {
    struct corio_loop_ext ext;
    corio_loop *loop;
    int fd;                 /* the signalfd, or the self-pipe's read end */
    int wfd;                /* the self-pipe's write end; -1 with signalfd */
    sigset_t claimed;       /* routed to this loop */
    sigset_t added;         /* signalfd: claimed signals this loop blocked */
    corio_list waiters;     /* struct sigwaiter, longest waiting first */
    corio_watcher watch;    /* on fd, active while waiters is not empty */
    uint32_t pending[NSIG]; /* arrived, waited for by nobody yet */
#if !USE_SIGNALFD
    struct sigaction old[NSIG]; /* to restore at free */
#endif
};

/* ---- The platform part: open, claim, read, release ---- */

#if USE_SIGNALFD

static int src_open(struct corio_sig *s)
{
    SITE(s_sfd, "signalfd");
    sigset_t none;
    sigemptyset(&none);
    int fd = sys_signalfd(&s_sfd, -1, &none, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return fd;
    s->fd = fd;
    s->wfd = -1;
    return 0;
}

/* Routes the signals of `more`, none of them claimed yet, to s->fd. */
static int src_claim(struct corio_sig *s, const sigset_t *more)
{
    SITE(s_block, "pthread_sigmask");
    SITE(s_sfd, "signalfd");
    sigset_t old, all;
    sigorset(&all, &s->claimed, more);
    int r = sys_sigmask(&s_block, SIG_BLOCK, more, &old);
    if (r < 0)
        return r;
    sigset_t blocked_now;
    sigemptyset(&blocked_now);
    for (int i = 1; i < NSIG; i++)
        if (sigismember(more, i) == 1 && sigismember(&old, i) == 0)
            sigaddset(&blocked_now, i);
    r = sys_signalfd(&s_sfd, s->fd, &all, 0);
    if (r < 0) {
        CORIO_ASSERT(pthread_sigmask(SIG_UNBLOCK, &blocked_now, NULL) == 0);
        return r;
    }
    sigorset(&s->added, &s->added, &blocked_now);
    s->claimed = all;
    return 0;
}

/* Reads up to 8 signals into signos: how many, or -errno (-EAGAIN). */
static int src_read(struct corio_sig *s, int signos[8])
{
    SITE(s_read, "read");
    struct signalfd_siginfo si[8];
    ssize_t n = sys_read(&s_read, s->fd, si, sizeof si);
    if (n < 0)
        return (int)n;
    int k = (int)((size_t)n / sizeof si[0]);
    for (int i = 0; i < k; i++)
        signos[i] = (int)si[i].ssi_signo;
    return k;
}

static void src_release(struct corio_sig *s)
{
    SITE(s_close, "close");
    /* What arrived unasked goes now: unblocked, it would run its default
     * action (often: end the process). */
    int signos[8];
    while (src_read(s, signos) > 0)
        ;
    CORIO_ASSERT(pthread_sigmask(SIG_UNBLOCK, &s->added, NULL) == 0);
    (void)sys_close(&s_close, s->fd);
}

#else /* the self-pipe */

/* Write end + 1 of the pipe of the loop that has each signal; 0: none. */
static atomic_int selfpipe[NSIG];

/* Async-signal-safe: an atomic load and write(2).  Not through the sys.h
 * seam, whose fault plan is not safe to touch from a handler.  A full
 * pipe drops the byte, which only merges this signal with one not yet
 * read, as the kernel merges pending signals. */
static void on_signal(int signo)
{
    int saved = errno;
    int fd = atomic_load_explicit(&selfpipe[signo], memory_order_relaxed) - 1;
    if (fd >= 0) {
        unsigned char b = (unsigned char)signo;
        ssize_t r = write(fd, &b, 1);
        (void)r;
    }
    errno = saved;
}

static int src_open(struct corio_sig *s)
{
    SITE(s_pipe, "pipe2");
    int p[2];
    int r = sys_pipe2(&s_pipe, p, O_NONBLOCK | O_CLOEXEC);
    if (r < 0)
        return r;
    s->fd = p[0];
    s->wfd = p[1];
    return 0;
}

static void unclaim(struct corio_sig *s, int signo)
{
    CORIO_ASSERT(sigaction(signo, &s->old[signo], NULL) == 0);
    atomic_store(&selfpipe[signo], 0);
}

static int src_claim(struct corio_sig *s, const sigset_t *more)
{
    SITE(s_act, "sigaction");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    int r = 0, i;
    for (i = 1; i < NSIG && r == 0; i++) {
        if (sigismember(more, i) != 1)
            continue;
        int none = 0;
        if (!atomic_compare_exchange_strong(&selfpipe[i], &none, s->wfd + 1))
            r = -EBUSY;
        else if ((r = sys_sigaction(&s_act, i, &sa, &s->old[i])) < 0)
            atomic_store(&selfpipe[i], 0);
    }
    if (r < 0) { /* undo the ones this call took, before signal i - 1 */
        for (int k = 1; k < i - 1; k++)
            if (sigismember(more, k) == 1)
                unclaim(s, k);
        return r;
    }
    for (i = 1; i < NSIG; i++)
        if (sigismember(more, i) == 1)
            sigaddset(&s->claimed, i);
    return 0;
}

static int src_read(struct corio_sig *s, int signos[8])
{
    SITE(s_read, "read");
    unsigned char b[8];
    ssize_t n = sys_read(&s_read, s->fd, b, sizeof b);
    if (n < 0)
        return (int)n;
    for (ssize_t i = 0; i < n; i++)
        signos[i] = b[i];
    return (int)n;
}

static void src_release(struct corio_sig *s)
{
    SITE(s_close_r, "close");
    SITE(s_close_w, "close");
    for (int i = 1; i < NSIG; i++)
        if (sigismember(&s->claimed, i) == 1)
            unclaim(s, i);
    (void)sys_close(&s_close_r, s->fd);
    (void)sys_close(&s_close_w, s->wfd);
}

#endif

/* ---- Waiting and delivery ---- */

/* Gives signo to the longest live waiter that wants it, or keeps it. */
static void deliver(struct corio_sig *s, int signo)
{
    if (signo <= 0 || signo >= NSIG)
        return;
    for (corio_list *l = s->waiters.next; l != &s->waiters; l = l->next) {
        struct sigwaiter *w = corio_container_of(l, struct sigwaiter, link);
        /* One woken already (deadline, cancel) must not take it. */
        if (w->co->state == CO_PARKED && sigismember(w->set, signo) == 1) {
            list_remove(&w->link);
            corio__wake(w->co, signo);
            return;
        }
    }
    if (s->pending[signo] < UINT32_MAX)
        s->pending[signo]++;
}

/* Reads every signal that has arrived.  0, or the read's error. */
static int drain(struct corio_sig *s)
{
    int signos[8];
    for (;;) {
        int n = src_read(s, signos);
        if (n == -EAGAIN || n == 0)
            return 0;
        if (n == -EINTR)
            continue;
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++)
            deliver(s, signos[i]);
    }
}

static void on_readable(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    (void)loop;
    (void)revents;
    /* An error here has nobody to go to; the watcher is level-triggered,
     * so whatever is left is tried again next pass. */
    (void)drain(w->data);
}

static int take_pending(struct corio_sig *s, const sigset_t *set)
{
    for (int i = 1; i < NSIG; i++)
        if (s->pending[i] && sigismember(set, i) == 1) {
            s->pending[i]--;
            return i;
        }
    return 0;
}

static void sig_fini(corio_loop *loop, struct corio_loop_ext *e)
{
    struct corio_sig *s = corio_container_of(e, struct corio_sig, ext);
    (void)loop;
    CORIO_ASSERT(list_empty(&s->waiters) && !s->watch.active);
    src_release(s);
    corio__free(s);
}

static int sig_get(corio_loop *loop, struct corio_sig **out)
{
    SITE(s_malloc, "malloc");
    for (struct corio_loop_ext *e = loop->exts; e; e = e->next)
        if (e->fini == sig_fini) {
            *out = corio_container_of(e, struct corio_sig, ext);
            return 0;
        }
    struct corio_sig *s = corio__calloc(&s_malloc, 1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int r = src_open(s);
    if (r < 0) {
        corio__free(s);
        return r;
    }
    s->loop = loop;
    sigemptyset(&s->claimed);
    sigemptyset(&s->added);
    list_init(&s->waiters);
    corio_watcher_init(&s->watch, s->fd, CORIO_READABLE, 0, on_readable, s);
    s->watch.unref = true; /* the waiting coroutines keep the loop alive */
    s->ext.fini = sig_fini;
    s->ext.next = loop->exts;
    loop->exts = &s->ext;
    *out = s;
    return 0;
}

/* Signals a coroutine may not wait for: uncatchable, or raised by faults
 * (blocking those turns a crash into a hang or a silent kill). */
static bool forbidden(int signo)
{
    return signo == SIGKILL || signo == SIGSTOP || signo == SIGSEGV || signo == SIGBUS ||
           signo == SIGFPE || signo == SIGILL;
}

/* The set of the n signals, or -EINVAL. */
static int to_set(const int *signals, size_t n, sigset_t *set)
{
    sigemptyset(set);
    if (!signals || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (signals[i] <= 0 || signals[i] >= NSIG || forbidden(signals[i]) ||
            sigaddset(set, signals[i]) < 0) /* glibc keeps two for itself */
            return -EINVAL;
    return 0;
}

/* Puts in *more the signals of set s has not claimed; returns how many. */
static int unclaimed(const sigset_t *set, const struct corio_sig *s, sigset_t *more)
{
    int nmore = 0;
    sigemptyset(more);
    for (int i = 1; i < NSIG; i++)
        if (sigismember(set, i) == 1 && sigismember(&s->claimed, i) != 1) {
            sigaddset(more, i);
            nmore++;
        }
    return nmore;
}

static int park_for(corio_loop *loop, struct corio_sig *s, const sigset_t *set, int64_t deadline)
{
    struct sigwaiter w = {.co = loop->cur, .set = set};
    if (!w.co) /* a callback may look (CORIO_NOWAIT), never park */
        return deadline == CORIO_NOWAIT ? -EAGAIN : -CORIO_ENOTCO;
    if (!s->watch.active) {
        int r = corio_watcher_start(loop, &s->watch);
        if (r < 0)
            return r;
    }
    list_insert_tail(&s->waiters, &w.link);
    int r = corio__park(loop, deadline);
    if (list_linked(&w.link))
        list_remove(&w.link);
    if (list_empty(&s->waiters))
        corio_watcher_stop(loop, &s->watch);
    return r;
}

int corio_signal_wait(const int *signals, size_t n, int64_t deadline)
{
    corio_loop *loop = corio__tls_loop;
    if (!loop)
        return -CORIO_ENOTCO;
    sigset_t set, more;
    struct corio_sig *s;
    int r = to_set(signals, n, &set);
    if (r == 0)
        r = sig_get(loop, &s);
    if (r == 0 && unclaimed(&set, s, &more) > 0)
        r = src_claim(s, &more);
    if (r < 0)
        return r;
    /* Kept from before, or arrived but not yet read: no need to park. */
    if ((r = take_pending(s, &set)) || (r = drain(s)) < 0 || (r = take_pending(s, &set)))
        return r;
    return park_for(loop, s, &set, deadline);
}
