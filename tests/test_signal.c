/* Signals for coroutines: delivery to one waiter, nothing lost between
 * waits, deadline and cancellation, bad sets, and the signal mask and
 * dispositions put back when the loop goes. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

#define MS CORIO_MSEC

static sigset_t set_of(int a, int b)
{
    sigset_t s;
    sigemptyset(&s);
    if (a)
        sigaddset(&s, a);
    if (b)
        sigaddset(&s, b);
    return s;
}

static bool blocked_now(int signo)
{
    sigset_t cur;
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    return sigismember(&cur, signo) == 1;
}

struct sw {
    int sigs[2];
    size_t n;
    int64_t deadline;
    int rc;
    corio_event done;
};

static void *sig_waiter(void *p)
{
    struct sw *w = p;
    w->rc = corio_signal_wait(w->sigs, w->n, w->deadline);
    CHECK_EQ(corio_event_set(&w->done), 0);
    return NULL;
}

static void sw_init(corio_loop *loop, struct sw *w, int a, int b)
{
    w->sigs[0] = a;
    w->sigs[1] = b;
    w->n = b ? 2 : 1;
    w->deadline = corio_after(5 * CORIO_SEC);
    w->rc = 99;
    corio_event_init(loop, &w->done);
}

static void *send_usr2(void *p)
{
    (void)p;
    CHECK_EQ(kill(getpid(), SIGUSR2), 0); /* the waiter already waits */
    return NULL;
}

TEST(signal_wait_returns_the_signal)
{
    corio_loop *loop = test_loop();
    struct sw w;
    sw_init(loop, &w, SIGUSR1, SIGUSR2);
    CHECK_EQ(corio_spawn(loop, NULL, sig_waiter, &w, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, send_usr2, NULL, 0), 0);
    test_run(loop);
    CHECK_EQ(w.rc, SIGUSR2);
    test_loop_free(loop);
}

/* A and B wait for SIGUSR1, C for SIGUSR2: each signal goes to one waiter,
 * the longest waiting that wants it. */
struct three {
    struct sw a, b, c;
};

static void *send_in_turn(void *p)
{
    struct three *t = p;
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(corio_event_wait(&t->a.done, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(t->b.rc, 99); /* B did not get A's signal too */
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(corio_event_wait(&t->b.done, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(t->c.rc, 99);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    return NULL;
}

TEST(signal_each_goes_to_one_waiter)
{
    corio_loop *loop = test_loop();
    struct three t;
    sw_init(loop, &t.a, SIGUSR1, 0);
    sw_init(loop, &t.b, SIGUSR1, 0);
    sw_init(loop, &t.c, SIGUSR2, 0);
    CHECK_EQ(corio_spawn(loop, NULL, sig_waiter, &t.a, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, sig_waiter, &t.b, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, sig_waiter, &t.c, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, send_in_turn, &t, 0), 0);
    test_run(loop);
    CHECK_EQ(t.a.rc, SIGUSR1);
    CHECK_EQ(t.b.rc, SIGUSR1);
    CHECK_EQ(t.c.rc, SIGUSR2);
    test_loop_free(loop);
}

/* Signals that arrive while nobody waits for them are kept for the next
 * wait, even one that would not park. */
static void *keep_for_later(void *p)
{
    (void)p;
    const int usr1[] = {SIGUSR1}, usr2[] = {SIGUSR2};
    CHECK_EQ(corio_signal_wait(usr1, 1, corio_after(2 * MS)), -ETIMEDOUT); /* now routed here */
    CHECK_EQ(corio_signal_wait(usr1, 1, CORIO_NOWAIT), -EAGAIN);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(corio_signal_wait(usr1, 1, CORIO_NOWAIT), SIGUSR1);
    CHECK_EQ(corio_signal_wait(usr1, 1, CORIO_NOWAIT), -EAGAIN); /* taken: once only */
    /* Read by the loop while a coroutine waits for another signal. */
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(corio_signal_wait(usr2, 1, corio_after(5 * MS)), -ETIMEDOUT);
    CHECK_EQ(corio_signal_wait(usr1, 1, CORIO_NOWAIT), SIGUSR1);
    return NULL;
}

TEST(signal_none_lost_between_waits)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, keep_for_later, NULL, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

TEST(signal_deadline_and_cancel)
{
    corio_loop *loop = test_loop();
    struct sw a, b;
    sw_init(loop, &a, SIGUSR1, 0);
    sw_init(loop, &b, SIGUSR1, SIGUSR2);
    int64_t t0 = corio_now();
    a.deadline = t0 + 20 * MS;
    corio_co *cb;
    CHECK_EQ(corio_spawn(loop, NULL, sig_waiter, &a, 0), 0);
    CHECK_EQ(corio_spawn(loop, &cb, sig_waiter, &b, 0), 0);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
    CHECK_EQ(corio_cancel(cb), 0);
    test_run(loop);
    CHECK_EQ(corio_join(cb, NULL, CORIO_FOREVER), 0);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK(corio_now() - t0 >= 20 * MS);
    CHECK_EQ(b.rc, -ECANCELED);
    test_loop_free(loop);
}

/* A cancelled waiter, woken but not yet run, must not take the signal:
 * it goes to the next waiter. */
static void *cancel_then_send(void *p)
{
    corio_co *victim = p;
    CHECK_EQ(corio_cancel(victim), 0);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    return NULL;
}

TEST(signal_cancelled_waiter_passes_it_on)
{
    corio_loop *loop = test_loop();
    struct sw a, b;
    sw_init(loop, &a, SIGUSR1, 0);
    sw_init(loop, &b, SIGUSR1, 0);
    corio_co *ca;
    CHECK_EQ(corio_spawn(loop, &ca, sig_waiter, &a, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, sig_waiter, &b, 0), 0);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
    CHECK_EQ(corio_spawn(loop, NULL, cancel_then_send, ca, 0), 0);
    test_run(loop);
    CHECK_EQ(corio_join(ca, NULL, CORIO_FOREVER), 0);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(b.rc, SIGUSR1);
    test_loop_free(loop);
}

static void *bad_sets(void *p)
{
    (void)p;
    const int ok[] = {SIGUSR1}, kill9[] = {SIGUSR1, SIGKILL}, segv[] = {SIGSEGV},
              stop[] = {SIGSTOP}, zero[] = {0}, neg[] = {-1}, big[] = {100000};
    CHECK_EQ(corio_signal_wait(ok, 0, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_signal_wait(NULL, 1, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_signal_wait(kill9, 2, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_signal_wait(segv, 1, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_signal_wait(stop, 1, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_signal_wait(zero, 1, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_signal_wait(neg, 1, CORIO_NOWAIT), -EINVAL);
    CHECK_EQ(corio_signal_wait(big, 1, CORIO_NOWAIT), -EINVAL);
    CHECK(!blocked_now(SIGUSR1)); /* a refused call claimed nothing */
    return NULL;
}

TEST(signal_bad_sets)
{
    corio_loop *loop = test_loop();
    const int usr1[] = {SIGUSR1};
    CHECK_EQ(corio_signal_wait(usr1, 1, CORIO_FOREVER), -CORIO_ENOTCO); /* no loop running */
    CHECK_EQ(corio_spawn(loop, NULL, bad_sets, NULL, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

/* Freed, the loop unblocks what it blocked and leaves alone what the
 * program had blocked itself; handlers are as they were. */

static void *wait_both_briefly(void *p)
{
    (void)p;
    const int both[] = {SIGUSR1, SIGUSR2};
    CHECK_EQ(corio_signal_wait(both, 2, corio_after(1 * MS)), -ETIMEDOUT);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0); /* arrives, nobody takes it */
    return NULL;
}

TEST(signal_mask_and_handlers_restored)
{
    sigset_t usr2 = set_of(SIGUSR2, 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &usr2, NULL), 0); /* the program's own */
    CHECK(!blocked_now(SIGUSR1));
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, wait_both_briefly, NULL, 0), 0);
    test_run(loop);
    test_loop_free(loop); /* drops the unclaimed SIGUSR1 instead of dying of it */
    CHECK(!blocked_now(SIGUSR1));
    CHECK(blocked_now(SIGUSR2));
    struct sigaction sa;
    CHECK_EQ(sigaction(SIGUSR1, NULL, &sa), 0);
    CHECK(sa.sa_handler == SIG_DFL);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &usr2, NULL), 0);
}

/* Pool workers exist before the wait: a signal sent to the process must
 * still reach the loop (workers block every signal). */
static void *noop(void *arg)
{
    return arg;
}

static void *pool_then_wait(void *p)
{
    (void)p;
    CHECK_EQ(corio_pool_run(noop, NULL, NULL, NULL, corio_after(5 * CORIO_SEC)), 0);
    const int usr1[] = {SIGUSR1};
    CHECK_EQ(corio_signal_wait(usr1, 1, CORIO_NOWAIT), -EAGAIN);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(kill(getpid(), SIGUSR1), 0);
        CHECK_EQ(corio_signal_wait(usr1, 1, corio_after(5 * CORIO_SEC)), SIGUSR1);
    }
    return NULL;
}

TEST(signal_reaches_the_loop_not_the_pool)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_spawn(loop, NULL, pool_then_wait, NULL, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}
