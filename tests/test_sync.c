/* Channels, select, mutex, semaphore, event, wait group: behaviour,
 * deadlines and cancellation in every wait, hand-offs that survive a
 * cancelled waiter, fairness, and refusal from another thread. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "test.h"

#define MS CORIO_MSEC

/* ---- Channels ---- */

struct pc {
    corio_chan *ch;
    int n;
    long sum;
    int last;
    int rc;
};

static void *producer(void *p)
{
    struct pc *a = p;
    for (int i = 1; i <= a->n; i++)
        CHECK_EQ(corio_chan_send(a->ch, &i, corio_after(5 * CORIO_SEC)), 0);
    CHECK_EQ(corio_chan_close(a->ch), 0);
    return NULL;
}

static void *consumer(void *p)
{
    struct pc *a = p;
    int v, r;
    while ((r = corio_chan_recv(a->ch, &v, corio_after(5 * CORIO_SEC))) == 1) {
        CHECK_EQ(v, a->last + 1); /* in order, none lost or doubled */
        a->last = v;
        a->sum += v;
    }
    a->rc = r;
    return NULL;
}

static void pipeline(size_t cap)
{
    corio_loop *loop = test_loop();
    struct pc a = {.n = 1000, .rc = 99};
    CHECK_EQ(corio_chan_new(loop, &a.ch, sizeof(int), cap), 0);
    CHECK_EQ(corio_chan_cap(a.ch), cap);
    CHECK_EQ(corio_spawn(loop, NULL, consumer, &a, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, producer, &a, 0), 0);
    test_run(loop);
    CHECK_EQ(a.rc, 0); /* closed and drained */
    CHECK_EQ(a.last, 1000);
    CHECK_EQ(a.sum, 1000L * 1001 / 2);
    CHECK_EQ(corio_chan_free(a.ch), 0);
    test_loop_free(loop);
}

TEST(sync_chan_unbuffered_every_element)
{
    pipeline(0);
}

TEST(sync_chan_buffered_every_element)
{
    pipeline(1);
    pipeline(7);
    pipeline(4096);
}

static int rendezvous_step;

static void *rv_sender(void *p)
{
    int v = 42;
    CHECK_EQ(rendezvous_step, 0);
    CHECK_EQ(corio_chan_send(p, &v, CORIO_FOREVER), 0);
    CHECK_EQ(rendezvous_step, 1); /* returned only once the receiver had it */
    return NULL;
}

static void *rv_receiver(void *p)
{
    CHECK_EQ(corio_sleep_until(corio_after(5 * MS)), 0);
    int v = 0;
    CHECK_EQ(corio_chan_recv(p, &v, CORIO_FOREVER), 1);
    CHECK_EQ(v, 42);
    rendezvous_step = 1;
    return NULL;
}

TEST(sync_chan_unbuffered_send_waits_for_receiver)
{
    corio_loop *loop = test_loop();
    corio_chan *ch;
    CHECK_EQ(corio_chan_new(loop, &ch, sizeof(int), 0), 0);
    rendezvous_step = 0;
    CHECK_EQ(corio_spawn(loop, NULL, rv_sender, ch, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, rv_receiver, ch, 0), 0);
    test_run(loop);
    CHECK_EQ(corio_chan_free(ch), 0);
    test_loop_free(loop);
}

TEST(sync_chan_close_drains_then_reports_end)
{
    corio_loop *loop = test_loop();
    corio_chan *ch;
    CHECK_EQ(corio_chan_new(loop, &ch, sizeof(int), 4), 0);
    /* Fast paths work outside a coroutine; parking does not. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_chan_send(ch, &i, CORIO_FOREVER), 0);
    CHECK_EQ(corio_chan_len(ch), 3);
    CHECK_EQ(corio_chan_close(ch), 0);
    CHECK(corio_chan_is_closed(ch));
    CHECK_EQ(corio_chan_close(ch), -EPIPE);
    int v = 7;
    CHECK_EQ(corio_chan_send(ch, &v, CORIO_FOREVER), -EPIPE);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(corio_chan_recv(ch, &v, CORIO_FOREVER), 1);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(corio_chan_recv(ch, &v, CORIO_FOREVER), 0);
    CHECK_EQ(corio_chan_recv(ch, NULL, CORIO_NOWAIT), 0);
    CHECK_EQ(corio_chan_free(ch), 0);

    CHECK_EQ(corio_chan_new(loop, &ch, sizeof(int), 1), 0);
    CHECK_EQ(corio_chan_recv(ch, &v, CORIO_NOWAIT), -EAGAIN);
    CHECK_EQ(corio_chan_recv(ch, &v, CORIO_FOREVER), -CORIO_ENOTCO);
    CHECK_EQ(corio_chan_send(ch, &v, CORIO_NOWAIT), 0);
    CHECK_EQ(corio_chan_send(ch, &v, CORIO_NOWAIT), -EAGAIN);
    CHECK_EQ(corio_chan_free(ch), 0); /* with an element still in it */
    CHECK_EQ(corio_chan_free(NULL), 0);
    CHECK_EQ(corio_chan_new(loop, &ch, SIZE_MAX / 2, 4), -EINVAL);
    test_loop_free(loop);
}

struct close_arg {
    corio_chan *ch;
    int rc;
};

static void *parked_recv(void *p)
{
    struct close_arg *a = p;
    a->rc = corio_chan_recv(a->ch, NULL, corio_after(5 * CORIO_SEC));
    return NULL;
}

static void *parked_send(void *p)
{
    struct close_arg *a = p;
    int v = 1;
    a->rc = corio_chan_send(a->ch, &v, corio_after(5 * CORIO_SEC));
    return NULL;
}

static void *closer(void *p)
{
    CHECK_EQ(corio_chan_close(p), 0);
    return NULL;
}

TEST(sync_chan_close_wakes_senders_and_receivers)
{
    corio_loop *loop = test_loop();
    struct close_arg r = {.rc = 99}, s = {.rc = 99};
    CHECK_EQ(corio_chan_new(loop, &r.ch, 0, 0), 0); /* elements of 0 bytes */
    CHECK_EQ(corio_chan_new(loop, &s.ch, sizeof(int), 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, parked_recv, &r, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, parked_send, &s, 0), 0);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
    CHECK_EQ(corio_chan_free(r.ch), -EBUSY); /* someone waits on it */
    CHECK_EQ(corio_spawn(loop, NULL, closer, r.ch, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, closer, s.ch, 0), 0);
    test_run(loop);
    CHECK_EQ(r.rc, 0);
    CHECK_EQ(s.rc, -EPIPE);
    CHECK_EQ(corio_chan_free(r.ch), 0);
    CHECK_EQ(corio_chan_free(s.ch), 0);
    test_loop_free(loop);
}

/* ---- Select ---- */

struct sel_arg {
    corio_chan *a, *b, *c;
    int rc;
    int got;
    int64_t took;
};

static void *select_timeout(void *p)
{
    struct sel_arg *s = p;
    int va, vb;
    corio_sel cases[] = {
        {.chan = s->a, .op = CORIO_SEL_RECV, .elem = &va},
        {.chan = NULL, .op = CORIO_SEL_RECV}, /* off */
        {.chan = s->b, .op = CORIO_SEL_RECV, .elem = &vb},
    };
    int64_t t0 = corio_now();
    s->rc = corio_chan_select(cases, 3, t0 + 20 * MS);
    s->took = corio_now() - t0;
    return NULL;
}

TEST(sync_select_timeout)
{
    corio_loop *loop = test_loop();
    struct sel_arg s = {.rc = 99};
    CHECK_EQ(corio_chan_new(loop, &s.a, sizeof(int), 0), 0);
    CHECK_EQ(corio_chan_new(loop, &s.b, sizeof(int), 2), 0);
    CHECK_EQ(corio_spawn(loop, NULL, select_timeout, &s, 0), 0);
    test_run(loop);
    CHECK_EQ(s.rc, -ETIMEDOUT);
    CHECK(s.took >= 20 * MS);
    CHECK(s.took < 2 * CORIO_SEC);
    /* It left no node behind in either channel. */
    CHECK_EQ(corio_chan_free(s.a), 0);
    CHECK_EQ(corio_chan_free(s.b), 0);
    test_loop_free(loop);
}

static void *select_three(void *p)
{
    struct sel_arg *s = p;
    int v = 0, out = 5;
    corio_sel cases[] = {
        {.chan = s->a, .op = CORIO_SEL_RECV, .elem = &v},
        {.chan = s->b, .op = CORIO_SEL_SEND, .elem = &out}, /* unbuffered, nobody receives */
        {.chan = s->c, .op = CORIO_SEL_RECV, .elem = &v},
    };
    s->rc = corio_chan_select(cases, 3, corio_after(5 * CORIO_SEC));
    CHECK(s->rc >= 0);
    CHECK_EQ(cases[s->rc].result, 1);
    s->got = v;
    return NULL;
}

static void *send_on_c(void *p)
{
    struct sel_arg *s = p;
    CHECK_EQ(corio_sleep_until(corio_after(2 * MS)), 0);
    int v = 77;
    CHECK_EQ(corio_chan_send(s->c, &v, CORIO_NOWAIT), 0); /* straight to the select */
    int w = 1;
    CHECK_EQ(corio_chan_send(s->b, &w, CORIO_NOWAIT), -EAGAIN); /* its send case is gone */
    return NULL;
}

TEST(sync_select_wakes_on_one_case_and_leaves_the_others)
{
    corio_loop *loop = test_loop();
    struct sel_arg s = {.rc = 99};
    CHECK_EQ(corio_chan_new(loop, &s.a, sizeof(int), 0), 0);
    CHECK_EQ(corio_chan_new(loop, &s.b, sizeof(int), 0), 0);
    CHECK_EQ(corio_chan_new(loop, &s.c, sizeof(int), 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, select_three, &s, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, send_on_c, &s, 0), 0);
    test_run(loop);
    CHECK_EQ(s.rc, 2);
    CHECK_EQ(s.got, 77);
    CHECK_EQ(corio_chan_free(s.a), 0);
    CHECK_EQ(corio_chan_free(s.b), 0);
    CHECK_EQ(corio_chan_free(s.c), 0);
    test_loop_free(loop);
}

static void *recv_one(void *p)
{
    int v = 0;
    CHECK_EQ(corio_chan_recv(p, &v, corio_after(5 * CORIO_SEC)), 1);
    CHECK_EQ(v, 31);
    return NULL;
}

static void *select_send(void *p)
{
    struct sel_arg *s = p;
    int v = 31;
    corio_sel cases[] = {
        {.chan = s->a, .op = CORIO_SEL_RECV},
        {.chan = s->b, .op = CORIO_SEL_SEND, .elem = &v},
    };
    s->rc = corio_chan_select(cases, 2, corio_after(5 * CORIO_SEC));
    CHECK_EQ(s->rc, 1);
    CHECK_EQ(cases[1].result, 0);
    return NULL;
}

TEST(sync_select_send_case_meets_a_receiver)
{
    corio_loop *loop = test_loop();
    struct sel_arg s = {.rc = 99};
    CHECK_EQ(corio_chan_new(loop, &s.a, sizeof(int), 0), 0);
    CHECK_EQ(corio_chan_new(loop, &s.b, sizeof(int), 0), 0);
    /* Select first (it parks), then the receiver arrives; and the other
     * order, where the select finds the receiver waiting. */
    for (int order = 0; order < 2; order++) {
        s.rc = 99;
        if (order == 0) {
            CHECK_EQ(corio_spawn(loop, NULL, select_send, &s, 0), 0);
            CHECK_EQ(corio_spawn(loop, NULL, recv_one, s.b, 0), 0);
        } else {
            CHECK_EQ(corio_spawn(loop, NULL, recv_one, s.b, 0), 0);
            CHECK_EQ(corio_spawn(loop, NULL, select_send, &s, 0), 0);
        }
        test_run(loop);
        CHECK_EQ(s.rc, 1);
    }
    CHECK_EQ(corio_chan_free(s.a), 0);
    CHECK_EQ(corio_chan_free(s.b), 0);
    test_loop_free(loop);
}

TEST(sync_select_nowait_closed_and_bad_cases)
{
    corio_loop *loop = test_loop();
    corio_chan *a, *b;
    CHECK_EQ(corio_chan_new(loop, &a, sizeof(int), 0), 0);
    CHECK_EQ(corio_chan_new(loop, &b, sizeof(int), 1), 0);
    int v;
    corio_sel cases[] = {
        {.chan = a, .op = CORIO_SEL_RECV, .elem = &v},
        {.chan = a, .op = CORIO_SEL_SEND, .elem = &v},
    };
    CHECK_EQ(corio_chan_select(cases, 2, CORIO_NOWAIT), -EAGAIN); /* Go's default */
    CHECK_EQ(corio_chan_select(cases, 2, CORIO_FOREVER), -CORIO_ENOTCO);
    CHECK_EQ(corio_chan_select(NULL, 0, CORIO_NOWAIT), -EAGAIN);
    cases[1].op = 3;
    CHECK_EQ(corio_chan_select(cases, 2, CORIO_NOWAIT), -EINVAL);
    cases[1].op = CORIO_SEL_SEND;
    /* A closed channel makes a receive ready (end) and a send ready (-EPIPE). */
    CHECK_EQ(corio_chan_close(a), 0);
    CHECK_EQ(corio_chan_select(cases, 1, CORIO_NOWAIT), 0);
    CHECK_EQ(cases[0].result, 0);
    CHECK_EQ(corio_chan_select(&cases[1], 1, CORIO_NOWAIT), 0);
    CHECK_EQ(cases[1].result, -EPIPE);
    /* A buffered channel with room: the send case proceeds. */
    v = 9;
    corio_sel c2 = {.chan = b, .op = CORIO_SEL_SEND, .elem = &v};
    CHECK_EQ(corio_chan_select(&c2, 1, CORIO_NOWAIT), 0);
    CHECK_EQ(c2.result, 0);
    CHECK_EQ(corio_chan_len(b), 1);
    CHECK_EQ(corio_chan_free(a), 0);
    CHECK_EQ(corio_chan_free(b), 0);
    test_loop_free(loop);
}

/* Two channels that always have an element: a select must take from both
 * about equally, never starving one. */
TEST(sync_select_is_fair)
{
    corio_loop *loop = test_loop();
    corio_chan *ch[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_chan_new(loop, &ch[i], sizeof(int), 1), 0);
    int got[3] = {0};
    const int rounds = 3000;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 3; i++)
            if (corio_chan_len(ch[i]) == 0 && i != 1) /* ch[1] stays empty */
                CHECK_EQ(corio_chan_send(ch[i], &i, CORIO_NOWAIT), 0);
        int v = -1;
        corio_sel cases[3];
        for (int i = 0; i < 3; i++)
            cases[i] = (corio_sel){.chan = ch[i], .op = CORIO_SEL_RECV, .elem = &v};
        int k = corio_chan_select(cases, 3, CORIO_NOWAIT);
        CHECK(k == 0 || k == 2);
        CHECK_EQ(v, k);
        got[k]++;
    }
    CHECK_EQ(got[0] + got[2], rounds);
    CHECK(got[0] > rounds / 2 - rounds / 10); /* binomial sd ~27: 5 sd of slack */
    CHECK(got[2] > rounds / 2 - rounds / 10);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_chan_free(ch[i]), 0);
    test_loop_free(loop);
}

/* ---- Mutex, semaphore, event, wait group ---- */

struct lock_arg {
    corio_mutex *m;
    int id;
    int *order;
    int *n;
};

static void *locker(void *p)
{
    struct lock_arg *a = p;
    CHECK_EQ(corio_mutex_lock(a->m, corio_after(5 * CORIO_SEC)), 0);
    a->order[(*a->n)++] = a->id;
    CHECK_EQ(corio_yield(), 0); /* hold it across a switch */
    CHECK_EQ(corio_mutex_unlock(a->m), 0);
    return NULL;
}

TEST(sync_mutex_fifo_and_ownership)
{
    corio_loop *loop = test_loop();
    corio_mutex m;
    corio_mutex_init(loop, &m);
    int order[5], n = 0;
    struct lock_arg a[5];
    CHECK_EQ(corio_mutex_lock(&m, CORIO_NOWAIT), 0); /* held by the loop's own stack */
    CHECK_EQ(corio_mutex_lock(&m, CORIO_NOWAIT), -EAGAIN);
    for (int i = 0; i < 5; i++) {
        a[i] = (struct lock_arg){&m, i, order, &n};
        CHECK_EQ(corio_spawn(loop, NULL, locker, &a[i], 0), 0);
    }
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1); /* all five wait */
    CHECK_EQ(corio_mutex_unlock(&m), 0);
    CHECK(corio_mutex_is_locked(&m)); /* handed to the first waiter, not released */
    CHECK_EQ(corio_mutex_lock(&m, CORIO_NOWAIT), -EAGAIN); /* no barging */
    CHECK_EQ(corio_mutex_unlock(&m), -EPERM);            /* not ours any more */
    test_run(loop);
    CHECK_EQ(n, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(order[i], i);
    CHECK(!corio_mutex_is_locked(&m));
    CHECK_EQ(corio_mutex_unlock(&m), -EPERM);
    test_loop_free(loop);
}

static void *relock(void *p)
{
    CHECK_EQ(corio_mutex_lock(p, CORIO_FOREVER), 0);
    CHECK_EQ(corio_mutex_lock(p, CORIO_FOREVER), -EDEADLK);
    CHECK_EQ(corio_mutex_unlock(p), 0);
    return NULL;
}

TEST(sync_mutex_relock_is_deadlock)
{
    corio_loop *loop = test_loop();
    corio_mutex m;
    corio_mutex_init(loop, &m);
    CHECK_EQ(corio_spawn(loop, NULL, relock, &m, 0), 0);
    test_run(loop);
    test_loop_free(loop);
}

struct sem_arg {
    corio_sem *s;
    int *inside, *peak, *done;
};

static void *sem_user(void *p)
{
    struct sem_arg *a = p;
    CHECK_EQ(corio_sem_wait(a->s, corio_after(5 * CORIO_SEC)), 0);
    if (++*a->inside > *a->peak)
        *a->peak = *a->inside;
    CHECK_EQ(corio_sleep_until(corio_after(1 * MS)), 0);
    --*a->inside;
    ++*a->done;
    CHECK_EQ(corio_sem_post(a->s), 0);
    return NULL;
}

TEST(sync_sem_bounds_concurrency)
{
    corio_loop *loop = test_loop();
    corio_sem s;
    corio_sem_init(loop, &s, 3);
    int inside = 0, peak = 0, done = 0;
    struct sem_arg a = {&s, &inside, &peak, &done};
    for (int i = 0; i < 20; i++)
        CHECK_EQ(corio_spawn(loop, NULL, sem_user, &a, 0), 0);
    test_run(loop);
    CHECK_EQ(done, 20);
    CHECK_EQ(peak, 3);
    CHECK_EQ(corio_sem_value(&s), 3);
    corio_sem_init(loop, &s, SIZE_MAX);
    CHECK_EQ(corio_sem_post(&s), -EOVERFLOW);
    CHECK_EQ(corio_sem_value(&s), SIZE_MAX);
    test_loop_free(loop);
}

struct ev_arg {
    corio_event *e;
    int woke;
};

static void *ev_waiter(void *p)
{
    struct ev_arg *a = p;
    CHECK_EQ(corio_event_wait(a->e, corio_after(5 * CORIO_SEC)), 0);
    a->woke++;
    return NULL;
}

TEST(sync_event_wakes_all_and_stays_set)
{
    corio_loop *loop = test_loop();
    corio_event e;
    corio_event_init(loop, &e);
    struct ev_arg a = {&e, 0};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_spawn(loop, NULL, ev_waiter, &a, 0), 0);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
    CHECK_EQ(a.woke, 0);
    CHECK_EQ(corio_event_set(&e), 0);
    CHECK(corio_event_is_set(&e));
    test_run(loop);
    CHECK_EQ(a.woke, 4);
    CHECK_EQ(corio_event_wait(&e, CORIO_NOWAIT), 0); /* still set */
    CHECK_EQ(corio_event_clear(&e), 0);
    CHECK_EQ(corio_event_wait(&e, CORIO_NOWAIT), -EAGAIN);
    test_loop_free(loop);
}

struct wg_arg {
    corio_waitgroup *wg;
    int ms;
    int *finished;
};

static void *wg_task(void *p)
{
    struct wg_arg *a = p;
    CHECK_EQ(corio_sleep_until(corio_after(a->ms * MS)), 0);
    ++*a->finished;
    CHECK_EQ(corio_waitgroup_done(a->wg), 0);
    return NULL;
}

static void *wg_waiter(void *p)
{
    struct wg_arg *a = p;
    CHECK_EQ(corio_waitgroup_wait(a->wg, corio_after(5 * CORIO_SEC)), 0);
    CHECK(*a->finished >= 3); /* all three tasks are done */
    ++*a->finished;
    return NULL;
}

TEST(sync_waitgroup_waits_for_all)
{
    corio_loop *loop = test_loop();
    corio_waitgroup wg;
    corio_waitgroup_init(loop, &wg);
    CHECK_EQ(corio_waitgroup_wait(&wg, CORIO_NOWAIT), 0); /* zero: nothing to wait for */
    int finished = 0;
    struct wg_arg w = {&wg, 0, &finished}, t[3];
    CHECK_EQ(corio_waitgroup_add(&wg, 3), 0);
    for (int i = 0; i < 3; i++) {
        t[i] = (struct wg_arg){&wg, 1 + i, &finished};
        CHECK_EQ(corio_spawn(loop, NULL, wg_task, &t[i], 0), 0);
    }
    CHECK_EQ(corio_spawn(loop, NULL, wg_waiter, &w, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, wg_waiter, &w, 0), 0);
    test_run(loop);
    CHECK_EQ(finished, 5);
    CHECK_EQ(corio_waitgroup_add(&wg, -1), -EINVAL); /* below zero: refused */
    CHECK_EQ(corio_waitgroup_add(&wg, 2), 0);
    CHECK_EQ(corio_waitgroup_add(&wg, -3), -EINVAL);
    CHECK_EQ(corio_waitgroup_add(&wg, -2), 0);
    CHECK_EQ(corio_waitgroup_add(&wg, LONG_MIN), -EINVAL);
    test_loop_free(loop);
}

/* ---- Every wait: deadline and cancellation ---- */

struct env {
    corio_chan *unbuf, *full, *empty;
    corio_mutex m;
    corio_sem sem;
    corio_event ev;
    corio_waitgroup wg;
};

static void env_init(corio_loop *loop, struct env *e)
{
    int one = 1;
    CHECK_EQ(corio_chan_new(loop, &e->unbuf, sizeof(int), 0), 0);
    CHECK_EQ(corio_chan_new(loop, &e->full, sizeof(int), 1), 0);
    CHECK_EQ(corio_chan_new(loop, &e->empty, sizeof(int), 4), 0);
    CHECK_EQ(corio_chan_send(e->full, &one, CORIO_NOWAIT), 0);
    corio_mutex_init(loop, &e->m);
    CHECK_EQ(corio_mutex_lock(&e->m, CORIO_NOWAIT), 0);
    corio_sem_init(loop, &e->sem, 0);
    corio_event_init(loop, &e->ev);
    corio_waitgroup_init(loop, &e->wg);
    CHECK_EQ(corio_waitgroup_add(&e->wg, 1), 0);
}

/* The primitives are as they were: nobody left waiting, state intact. */
static void env_check_and_free(struct env *e)
{
    CHECK_EQ(corio_chan_len(e->full), 1);
    CHECK_EQ(corio_chan_free(e->unbuf), 0);
    CHECK_EQ(corio_chan_free(e->full), 0);
    CHECK_EQ(corio_chan_free(e->empty), 0);
    CHECK_EQ(corio_mutex_unlock(&e->m), 0);
    CHECK(!corio_mutex_is_locked(&e->m));
    CHECK_EQ(corio_sem_value(&e->sem), 0);
    CHECK(!corio_event_is_set(&e->ev));
    CHECK_EQ(corio_waitgroup_done(&e->wg), 0);
}

static int w_send(struct env *e, int64_t d)
{
    int v = 5;
    return corio_chan_send(e->unbuf, &v, d);
}
static int w_send_full(struct env *e, int64_t d)
{
    int v = 5;
    return corio_chan_send(e->full, &v, d);
}
static int w_recv(struct env *e, int64_t d)
{
    int v;
    return corio_chan_recv(e->empty, &v, d);
}
static int w_select(struct env *e, int64_t d)
{
    int v = 1, w;
    corio_sel c[] = {
        {.chan = e->full, .op = CORIO_SEL_SEND, .elem = &v},
        {.chan = e->empty, .op = CORIO_SEL_RECV, .elem = &w},
        {.chan = e->unbuf, .op = CORIO_SEL_SEND, .elem = &v},
        {.chan = e->unbuf, .op = CORIO_SEL_RECV, .elem = &w},
    };
    return corio_chan_select(c, 4, d);
}
static int w_select_none(struct env *e, int64_t d)
{
    (void)e;
    return corio_chan_select(NULL, 0, d);
}
static int w_mutex(struct env *e, int64_t d)
{
    return corio_mutex_lock(&e->m, d);
}
static int w_sem(struct env *e, int64_t d)
{
    return corio_sem_wait(&e->sem, d);
}
static int w_event(struct env *e, int64_t d)
{
    return corio_event_wait(&e->ev, d);
}
static int w_wg(struct env *e, int64_t d)
{
    return corio_waitgroup_wait(&e->wg, d);
}

static const struct wait_call {
    const char *name;
    int (*call)(struct env *e, int64_t deadline);
} waits[] = {
    {"chan send (rendezvous)", w_send},
    {"chan send (full)", w_send_full},
    {"chan recv", w_recv},
    {"chan select", w_select},
    {"chan select, no cases", w_select_none},
    {"mutex lock", w_mutex},
    {"sem wait", w_sem},
    {"event wait", w_event},
    {"waitgroup wait", w_wg},
};

struct wait_arg {
    const struct wait_call *c;
    struct env *e;
    bool by_deadline;
    int rc;
    int64_t took;
};

static void *blocked(void *p)
{
    struct wait_arg *a = p;
    int64_t t0 = corio_now();
    a->rc = a->c->call(a->e, a->by_deadline ? t0 + 20 * MS : CORIO_FOREVER);
    a->took = corio_now() - t0;
    /* Cancellation is sticky: the next wait fails at once too. */
    if (!a->by_deadline)
        CHECK_EQ(a->c->call(a->e, CORIO_FOREVER), -ECANCELED);
    return NULL;
}

static void check_waits(bool by_deadline)
{
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        corio_loop *loop = test_loop();
        struct env e;
        env_init(loop, &e);
        CHECK_EQ(waits[i].call(&e, CORIO_NOWAIT), -EAGAIN);
        struct wait_arg a = {.c = &waits[i], .e = &e, .by_deadline = by_deadline, .rc = 99};
        corio_co *co;
        CHECK_EQ(corio_spawn(loop, &co, blocked, &a, 0), 0);
        for (int k = 0; k < 3; k++)
            CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1);
        CHECK_EQ(a.rc, 99); /* still blocked */
        if (!by_deadline)
            CHECK_EQ(corio_cancel(co), 0);
        test_run(loop);
        CHECK_EQ(corio_join(co, NULL, CORIO_FOREVER), 0);
        int want = by_deadline ? -ETIMEDOUT : -ECANCELED;
        if (a.rc != want)
            test_fail(__FILE__, __LINE__, "%s: got %d (%s), want %s", waits[i].name, a.rc,
                      corio_strerror(a.rc), corio_strerror(want));
        if (by_deadline)
            CHECK(a.took >= 20 * MS);
        env_check_and_free(&e);
        test_loop_free(loop);
    }
}

TEST(sync_deadline_in_every_wait)
{
    check_waits(true);
}

TEST(sync_cancel_in_every_wait)
{
    check_waits(false);
}

/* ---- A cancelled waiter passes its turn on ----
 * B and C wait; B is cancelled (woken, not yet run); then the token comes.
 * It must go to C, and B must see -ECANCELED. */

struct turn {
    struct env *e;
    int (*wait)(struct env *e, int64_t d);
    int rc;
};

static void *turn_waiter(void *p)
{
    struct turn *t = p;
    t->rc = t->wait(t->e, corio_after(5 * CORIO_SEC));
    if (t->wait == w_mutex && t->rc == 0)
        CHECK_EQ(corio_mutex_unlock(&t->e->m), 0);
    return NULL;
}

static int recv_any(struct env *e, int64_t d)
{
    int v = 0;
    int r = corio_chan_recv(e->unbuf, &v, d);
    return r == 1 ? v : r;
}

static int select_recv(struct env *e, int64_t d)
{
    int v = 0;
    corio_sel c[] = {{.chan = e->empty, .op = CORIO_SEL_RECV, .elem = &v},
                     {.chan = e->unbuf, .op = CORIO_SEL_RECV, .elem = &v}};
    int r = corio_chan_select(c, 2, d);
    if (r < 0)
        return r;
    return r == 1 && c[1].result == 1 ? v : -1000;
}

struct handoff {
    const char *name;
    int (*wait)(struct env *e, int64_t d);
    void (*give)(struct env *e); /* hands over exactly one token */
    int want;                    /* what the second waiter's wait returns */
};

static void give_unlock(struct env *e)
{
    CHECK_EQ(corio_mutex_unlock(&e->m), 0);
}
static void give_post(struct env *e)
{
    CHECK_EQ(corio_sem_post(&e->sem), 0);
}
static void give_send(struct env *e)
{
    int v = 123;
    CHECK_EQ(corio_chan_send(e->unbuf, &v, CORIO_NOWAIT), 0); /* only to a live receiver */
}

static const struct handoff handoffs[] = {
    {"mutex", w_mutex, give_unlock, 0},
    {"sem", w_sem, give_post, 0},
    {"chan recv", recv_any, give_send, 123},
    {"select", select_recv, give_send, 123},
};

TEST(sync_cancelled_waiter_passes_the_token)
{
    for (size_t i = 0; i < sizeof handoffs / sizeof handoffs[0]; i++) {
        const struct handoff *h = &handoffs[i];
        corio_loop *loop = test_loop();
        struct env e;
        env_init(loop, &e);
        struct turn b = {&e, h->wait, 99}, c = {&e, h->wait, 99};
        corio_co *cb;
        CHECK_EQ(corio_spawn(loop, &cb, turn_waiter, &b, 0), 0);
        CHECK_EQ(corio_spawn(loop, NULL, turn_waiter, &c, 0), 0);
        CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), 1); /* both wait, B first */
        CHECK_EQ(corio_cancel(cb), 0);
        h->give(&e); /* before B has run to see its cancellation */
        test_run(loop);
        CHECK_EQ(corio_join(cb, NULL, CORIO_FOREVER), 0);
        if (b.rc != -ECANCELED || c.rc != h->want)
            test_fail(__FILE__, __LINE__, "%s: B got %d, C got %d (want %d)", h->name, b.rc, c.rc,
                      h->want);
        if (h->give == give_unlock) /* C had it and let it go: B did not keep it */
            CHECK_EQ(corio_mutex_lock(&e.m, CORIO_NOWAIT), 0);
        CHECK_EQ(corio_sem_value(&e.sem), 0);
        env_check_and_free(&e);
        test_loop_free(loop);
    }
}

/* A waiter whose deadline passes in the same pass as the hand-off gets
 * either the token or -ETIMEDOUT, never both and never neither. */
static void *sem_timed(void *p)
{
    struct turn *t = p;
    t->rc = corio_sem_wait(&t->e->sem, corio_after(3 * MS));
    return NULL;
}

static void *late_post(void *p)
{
    struct env *e = p;
    corio_sleep_until(corio_after(3 * MS));
    CHECK_EQ(corio_sem_post(&e->sem), 0);
    return NULL;
}

TEST(sync_deadline_racing_handoff_loses_nothing)
{
    for (int i = 0; i < 30; i++) {
        corio_loop *loop = test_loop();
        struct env e;
        env_init(loop, &e);
        struct turn t = {&e, NULL, 99};
        CHECK_EQ(corio_spawn(loop, NULL, sem_timed, &t, 0), 0);
        CHECK_EQ(corio_spawn(loop, NULL, late_post, &e, 0), 0);
        test_run(loop);
        if (t.rc == 0)
            CHECK_EQ(corio_sem_value(&e.sem), 0);
        else {
            CHECK_EQ(t.rc, -ETIMEDOUT);
            CHECK_EQ(corio_sem_value(&e.sem), 1); /* the unit was kept */
            CHECK_EQ(corio_sem_wait(&e.sem, CORIO_NOWAIT), 0);
        }
        env_check_and_free(&e);
        test_loop_free(loop);
    }
}

/* ---- Objects refuse another thread ---- */

static void *other_thread(void *p)
{
    struct env *e = p;
    int v = 0;
    corio_sel c = {.chan = e->empty, .op = CORIO_SEL_RECV, .elem = &v};
    CHECK_EQ(corio_chan_send(e->empty, &v, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_chan_recv(e->full, &v, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_chan_close(e->empty), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_chan_free(e->empty), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_chan_select(&c, 1, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_mutex_lock(&e->m, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_mutex_unlock(&e->m), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_sem_post(&e->sem), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_sem_wait(&e->sem, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_event_set(&e->ev), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_event_wait(&e->ev, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_waitgroup_add(&e->wg, 1), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_waitgroup_wait(&e->wg, CORIO_NOWAIT), -CORIO_EWRONGLOOP);
    return NULL;
}

TEST(sync_objects_refuse_another_thread)
{
    corio_loop *loop = test_loop();
    struct env e;
    env_init(loop, &e);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, other_thread, &e), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    env_check_and_free(&e);
    test_loop_free(loop);
}
