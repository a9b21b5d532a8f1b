/* Prefork: a supervisor process and N worker processes.
 *
 * Each process may hold only so many descriptors (20,000 here, and root
 * cannot raise it), so a server that holds a million connections is a
 * hundred processes.  The supervisor is deliberately simple: it blocks the
 * signals it cares about and takes them with sigtimedwait(), so there is
 * no handler, no self-pipe and no loop in it.  It forks the workers,
 * forwards SIGINT and SIGTERM to them, reaps them, and restarts one that
 * ends without being asked, after a delay that doubles while it keeps
 * crashing (a worker that ran for a while starts over at the minimum). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct worker {
    pid_t pid;         /* 0: not running */
    int64_t started;   /* when it was forked */
    int64_t restart_at; /* when to fork it again, if not running */
    int64_t backoff;   /* the delay before its next restart */
    unsigned restarts;
};

struct sup {
    const corio_prefork_options *o;
    struct worker *w;
    unsigned n;
    sigset_t caller_mask; /* restored in workers and on return */
    struct sigaction caller_act[3]; /* SIGCHLD, SIGINT, SIGTERM, likewise */
    bool stopping;
    int stop_sig;
    int64_t kill_at;    /* SIGKILL stragglers then */
    bool killed;
    int status;         /* 0 until a worker ends uncleanly during shutdown */
};

static void report(const struct sup *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const struct sup *S, const char *fmt, ...)
{
    if (S->o->quiet)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len > sizeof line - 2)
        len = (int)sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(2, line, (size_t)len); /* one write: lines from many processes do not mix */
    (void)w;
}

static const int sigs[3] = {SIGCHLD, SIGINT, SIGTERM};

static _Noreturn void worker_main(struct sup *S, unsigned i)
{
    SITE(s_prctl, "prctl");
    SITE(s_mask, "sigprocmask");
    SITE(s_act, "sigaction");
#ifdef __linux__
    /* A worker whose supervisor dies gets SIGTERM instead of lingering. */
    pid_t parent = getppid();
    if (sys_prctl(&s_prctl, PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(111);
#endif
    for (int k = 0; k < 3; k++)
        if (sys_sigaction(&s_act, sigs[k], &S->caller_act[k], NULL) < 0)
            _exit(111);
    if (sys_sigmask(&s_mask, SIG_SETMASK, &S->caller_mask, NULL) < 0)
        _exit(111);
    int status = S->o->worker(i, S->o->data);
    fflush(NULL);
    _exit(status & 0xff);
}

static int start(struct sup *S, unsigned i, int64_t now)
{
    SITE(s_fork, "fork");
    fflush(NULL); /* or the child would write the parent's buffered output again */
    pid_t pid = sys_fork(&s_fork);
    if (pid == 0)
        worker_main(S, i);
    struct worker *w = &S->w[i];
    if (pid < 0) {
        w->restart_at = now + w->backoff;
        report(S, "corio prefork: cannot start worker %u: %s; retrying in %lld ms", i,
               corio_strerror(pid), (long long)(w->backoff / CORIO_MSEC));
        return (int)pid;
    }
    w->pid = pid;
    w->started = now;
    return 0;
}

static void describe(char *buf, size_t size, int status)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, size, "ended (status %#x)", status);
}

/* A worker ended.  During shutdown: clean if it exited 0 or died of the
 * signal we forwarded.  Otherwise it crashed: schedule its restart. */
static void ended(struct sup *S, unsigned i, int status, int64_t now)
{
    struct worker *w = &S->w[i];
    char what[128];
    describe(what, sizeof what, status);
    pid_t pid = w->pid;
    w->pid = 0;
    if (S->stopping) {
        bool clean = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                     (WIFSIGNALED(status) && WTERMSIG(status) == S->stop_sig && !S->killed);
        if (!clean) {
            S->status = 1;
            report(S, "corio prefork: worker %u (pid %d) %s during shutdown", i, (int)pid, what);
        }
        return;
    }
    const corio_prefork_options *o = S->o;
    int64_t lived = now - w->started;
    if (lived >= o->backoff_max || lived >= 10 * CORIO_SEC)
        w->backoff = o->backoff_min; /* it had been fine for a while */
    w->restart_at = now + w->backoff;
    report(S, "corio prefork: worker %u (pid %d) %s after %lld ms; restarting in %lld ms", i, (int)pid,
           what, (long long)(lived / CORIO_MSEC), (long long)(w->backoff / CORIO_MSEC));
    w->backoff = w->backoff * 2 < o->backoff_max ? w->backoff * 2 : o->backoff_max;
    w->restarts++;
}

static void reap(struct sup *S, int64_t now)
{
    SITE(s_wait, "waitpid");
    for (unsigned i = 0; i < S->n; i++) {
        if (S->w[i].pid <= 0)
            continue;
        int status;
        pid_t r = sys_waitpid(&s_wait, S->w[i].pid, &status, WNOHANG);
        if (r == S->w[i].pid)
            ended(S, i, status, now);
        else if (r == -ECHILD) /* reaped behind our back: treat as gone */
            ended(S, i, 0, now);
    }
}

static void signal_all(struct sup *S, int sig)
{
    SITE(s_kill, "kill");
    for (unsigned i = 0; i < S->n; i++)
        if (S->w[i].pid > 0)
            (void)sys_kill(&s_kill, S->w[i].pid, sig);
}

static unsigned running(const struct sup *S)
{
    unsigned r = 0;
    for (unsigned i = 0; i < S->n; i++)
        r += S->w[i].pid > 0;
    return r;
}

/* The next moment something is due: a restart, or the SIGKILL deadline. */
static int64_t next_due(const struct sup *S)
{
    if (S->stopping)
        return S->killed ? CORIO_FOREVER : S->kill_at;
    int64_t t = CORIO_FOREVER;
    for (unsigned i = 0; i < S->n; i++)
        if (S->w[i].pid == 0 && S->w[i].restart_at < t)
            t = S->w[i].restart_at;
    return t;
}

static void on_signal(struct sup *S, int sig, int64_t now)
{
    if (sig == SIGCHLD)
        return;
    if (!S->stopping) {
        S->stopping = true;
        S->stop_sig = sig;
        S->kill_at = now + S->o->shutdown_timeout;
        report(S, "corio prefork: %s: stopping %u worker(s)", strsignal(sig), running(S));
    }
    signal_all(S, sig); /* a second signal is forwarded too */
}

static void supervise(struct sup *S)
{
    SITE(s_wait, "sigtimedwait");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    while (!S->stopping || running(S) > 0) {
        int64_t now = corio_now();
        reap(S, now);
        if (S->stopping && running(S) == 0)
            break;
        if (S->stopping && !S->killed && now >= S->kill_at) {
            report(S, "corio prefork: %u worker(s) still running after the shutdown timeout: killing",
                   running(S));
            S->killed = true;
            S->status = 1;
            signal_all(S, SIGKILL);
        }
        for (unsigned i = 0; i < S->n && !S->stopping; i++)
            if (S->w[i].pid == 0 && S->w[i].restart_at <= now)
                (void)start(S, i, now);
        int64_t due = next_due(S), wait = due == CORIO_FOREVER ? 3600 * CORIO_SEC : due - now;
        if (wait < 0)
            wait = 0;
        struct timespec ts = {.tv_sec = (time_t)(wait / CORIO_SEC), .tv_nsec = (long)(wait % CORIO_SEC)};
        siginfo_t info;
        int sig = sys_sigtimedwait(&s_wait, &set, &info, &ts);
        if (sig > 0)
            on_signal(S, sig, corio_now());
    }
}

int corio_prefork_run(const corio_prefork_options *opts)
{
    SITE(s_malloc, "malloc");
    SITE(s_mask, "sigprocmask");
    SITE(s_restore, "sigprocmask");
    SITE(s_act, "sigaction");
    SITE(s_act_restore, "sigaction");
    if (!opts || !opts->worker)
        return -EINVAL;
    corio_prefork_options o = *opts;
    if (o.workers == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = c > 0 ? (unsigned)c : 1;
    }
    if (o.shutdown_timeout <= 0)
        o.shutdown_timeout = 10 * CORIO_SEC;
    if (o.backoff_min <= 0)
        o.backoff_min = 100 * CORIO_MSEC;
    if (o.backoff_max < o.backoff_min)
        o.backoff_max = o.backoff_min > 10 * CORIO_SEC ? o.backoff_min : 10 * CORIO_SEC;
    struct sup S = {.o = &o, .n = o.workers};
    S.w = corio__calloc(&s_malloc, o.workers, sizeof *S.w);
    if (!S.w)
        return -ENOMEM;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    int err = sys_sigmask(&s_mask, SIG_BLOCK, &block, &S.caller_mask);
    if (err < 0) {
        corio__free(S.w);
        return err;
    }
    /* Taken with sigtimedwait, so they must not be ignored: an ignored
     * signal is dropped even while blocked (SIGCHLD ignored would also
     * reap the workers behind our back). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    int k = 0;
    for (; k < 3 && err == 0; k++)
        err = sys_sigaction(&s_act, sigs[k], &dfl, &S.caller_act[k]);
    if (err < 0) {
        while (--k > 0)
            (void)sys_sigaction(&s_act_restore, sigs[k - 1], &S.caller_act[k - 1], NULL);
        (void)sys_sigmask(&s_restore, SIG_SETMASK, &S.caller_mask, NULL);
        corio__free(S.w);
        return err;
    }
    int64_t now = corio_now();
    for (unsigned i = 0; i < S.n; i++) {
        S.w[i].backoff = o.backoff_min;
        (void)start(&S, i, now); /* a failed fork is retried after the backoff */
    }
    report(&S, "corio prefork: supervisor %d started %u worker(s)", (int)getpid(), running(&S));
    supervise(&S);
    for (k = 0; k < 3; k++)
        (void)sys_sigaction(&s_act_restore, sigs[k], &S.caller_act[k], NULL);
    (void)sys_sigmask(&s_restore, SIG_SETMASK, &S.caller_mask, NULL);
    corio__free(S.w);
    return S.status;
}
