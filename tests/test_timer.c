/* Timers: order, cancellation, re-arming, timers started while timers
 * fire, and a million live deadlines. */
#include <errno.h>
#include <string.h>

#include "../src/internal.h"
#include "test.h"

struct rec {
    corio_timer t;
    int id;
    int64_t fired_at;
};

static int fired[1024], nfired;

static void on_fire(corio_loop *loop, corio_timer *t)
{
    struct rec *r = t->data;
    r->fired_at = corio_now();
    fired[nfired++] = r->id;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

TEST(timer_fire_in_deadline_order)
{
    corio_loop *loop = test_loop();
    static struct rec r[200];
    nfired = 0;
    int64_t base = corio_now();
    for (int i = 0; i < 200; i++) {
        r[i].id = i;
        corio_timer_init(&r[i].t, on_fire, &r[i]);
        /* Deadlines from 0 to 40 ms, many sharing one 4 us tick. */
        corio_timer_start(loop, &r[i].t, base + (int64_t)(next_rand() % 40000) * 1000);
    }
    test_run(loop);
    CHECK_EQ(nfired, 200);
    for (int i = 0; i < 200; i++) {
        struct rec *x = &r[fired[i]];
        CHECK(x->fired_at >= x->t.deadline); /* never early */
        if (i > 0) {
            struct rec *p = &r[fired[i - 1]];
            CHECK(p->t.deadline < x->t.deadline ||
                  (p->t.deadline == x->t.deadline && p->id < x->id));
        }
    }
    test_loop_free(loop);
}

TEST(timer_equal_deadlines_fire_in_start_order)
{
    corio_loop *loop = test_loop();
    static struct rec r[50];
    nfired = 0;
    int64_t d = corio_now() + 3 * CORIO_MSEC;
    /* Started in an order that is not their index order. */
    for (int k = 0; k < 50; k++) {
        int i = (k * 7) % 50;
        r[i].id = k;
        corio_timer_init(&r[i].t, on_fire, &r[i]);
        corio_timer_start(loop, &r[i].t, d);
    }
    test_run(loop);
    CHECK_EQ(nfired, 50);
    for (int i = 0; i < 50; i++)
        CHECK_EQ(fired[i], i);
    test_loop_free(loop);
}

TEST(timer_cancel_and_restart)
{
    corio_loop *loop = test_loop();
    static struct rec r[100];
    nfired = 0;
    int64_t now = corio_now();
    for (int i = 0; i < 100; i++) {
        r[i].id = i;
        corio_timer_init(&r[i].t, on_fire, &r[i]);
        corio_timer_start(loop, &r[i].t, now + (i + 1) * 100 * CORIO_USEC);
    }
    for (int i = 0; i < 100; i += 2)
        corio_timer_stop(loop, &r[i].t);
    corio_timer_stop(loop, &r[0].t); /* twice: harmless */
    /* Re-arming moves a timer: 99 goes first now. */
    corio_timer_start(loop, &r[99].t, now + 50 * CORIO_USEC);
    CHECK(corio_timer_is_active(&r[99].t));
    CHECK(!corio_timer_is_active(&r[0].t));
    test_run(loop);
    CHECK_EQ(nfired, 50);
    CHECK_EQ(fired[0], 99);
    for (int i = 1; i < 50; i++)
        CHECK_EQ(fired[i], 2 * i - 1);
    test_loop_free(loop);
}

/* A timer started from a timer callback runs in a later pass even when its
 * deadline has already passed. */
static corio_timer t_second;
static int second_fired;
static void on_second(corio_loop *loop, corio_timer *t)
{
    second_fired++;
}
static void on_first(corio_loop *loop, corio_timer *t)
{
    corio_timer_init(&t_second, on_second, NULL);
    corio_timer_start(loop, &t_second, corio_now() - CORIO_MSEC);
}

TEST(timer_started_while_firing_runs_next_pass)
{
    corio_loop *loop = test_loop();
    corio_timer t;
    corio_timer_init(&t, on_first, NULL);
    corio_timer_start(loop, &t, corio_now());
    second_fired = 0;
    int r = corio_loop_run(loop, CORIO_RUN_ONCE);
    CHECK_EQ(r, 1); /* the second timer keeps it alive */
    CHECK(!corio_timer_is_active(&t));
    CHECK_EQ(second_fired, 0);
    r = corio_loop_run(loop, CORIO_RUN_ONCE);
    CHECK_EQ(second_fired, 1);
    CHECK_EQ(r, 0);
    test_loop_free(loop);
}

/* An idle loop sleeps until a lone timer's deadline, whatever level of the
 * wheel it sits in: one ONCE pass fires it, with no waits to cascade. */
TEST(timer_lone_far_timer_fires_in_one_pass)
{
    static const int64_t in[] = {300 * CORIO_USEC, 5 * CORIO_MSEC, 40 * CORIO_MSEC};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        corio_loop *loop = test_loop();
        corio_timer t;
        corio_timer_init(&t, on_second, NULL);
        second_fired = 0;
        int64_t at = corio_now() + in[i];
        corio_timer_start(loop, &t, at);
        int r = corio_loop_run(loop, CORIO_RUN_ONCE);
        CHECK_EQ(second_fired, 1);
        CHECK_EQ(r, 0);
        CHECK(corio_now() >= at); /* never early */
        test_loop_free(loop);
    }
}

TEST(timer_far_future_and_unref)
{
    corio_loop *loop = test_loop();
    corio_timer t;
    corio_timer_init(&t, on_second, NULL);
    t.unref = 1;
    corio_timer_start(loop, &t, corio_now() + 3600 * CORIO_SEC);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_DEFAULT), 0); /* unref: returns at once */
    CHECK_EQ(corio_loop_free(loop), -EBUSY);                /* but it is still armed */
    corio_timer_stop(loop, &t);
    test_loop_free(loop);
}

/* A million live deadlines: start, check the wheel, cancel, all O(1). */
TEST(timer_million_live)
{
    corio_loop *loop = test_loop();
    size_t n = 1000000;
    struct rec *r = calloc(n, sizeof *r);
    CHECK(r != NULL);
    int64_t now = corio_now();
    for (size_t i = 0; i < n; i++) {
        corio_timer_init(&r[i].t, on_fire, &r[i]);
        corio_timer_start(loop, &r[i].t, now + CORIO_SEC + (int64_t)(next_rand() % (3600 * CORIO_SEC)));
    }
    CHECK_EQ(loop->wheel.count, n);
    for (size_t i = 0; i < n; i++)
        corio_timer_stop(loop, &r[i].t);
    CHECK_EQ(loop->wheel.count, 0);
    for (unsigned l = 0; l < WHEEL_LEVELS; l++)
        CHECK_EQ(loop->wheel.occupied[l], 0);
    free(r);
    test_loop_free(loop);
}

/* Many timers through every cascade level, fired in order. */
TEST(timer_cascades_fire_in_order)
{
    corio_loop *loop = test_loop();
    static struct rec r[1000];
    nfired = 0;
    int64_t now = corio_now();
    for (int i = 0; i < 1000; i++) {
        r[i].id = i;
        corio_timer_init(&r[i].t, on_fire, &r[i]);
        /* Spread over 1 us .. 300 ms: every level up to 3. */
        int64_t off = (int64_t)1000 << (next_rand() % 19);
        corio_timer_start(loop, &r[i].t, now + off + (int64_t)(next_rand() % 1000));
    }
    test_run(loop);
    CHECK_EQ(nfired, 1000);
    for (int i = 1; i < 1000; i++)
        CHECK(r[fired[i - 1]].t.deadline <= r[fired[i]].t.deadline);
    for (int i = 0; i < 1000; i++)
        CHECK(r[i].fired_at >= r[i].t.deadline);
    test_loop_free(loop);
}

/* call_soon: FIFO, and what is queued during a pass runs in the next. */
static int cb_log[16], ncb;
static void cb_fn(corio_loop *loop, corio_callback *cb)
{
    cb_log[ncb++] = (int)(intptr_t)cb->data;
}
static corio_callback later;
static void cb_requeue(corio_loop *loop, corio_callback *cb)
{
    cb_log[ncb++] = (int)(intptr_t)cb->data;
    later.fn = cb_fn;
    later.data = (void *)(intptr_t)99;
    corio_call_soon(loop, &later);
}

TEST(callback_call_soon_order)
{
    corio_loop *loop = test_loop();
    corio_callback cbs[3];
    ncb = 0;
    for (int i = 0; i < 3; i++) {
        cbs[i].fn = i == 0 ? cb_requeue : cb_fn;
        cbs[i].data = (void *)(intptr_t)i;
        corio_call_soon(loop, &cbs[i]);
    }
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_ONCE), 1);
    CHECK_EQ(ncb, 3);
    CHECK_EQ(cb_log[0], 0);
    CHECK_EQ(cb_log[1], 1);
    CHECK_EQ(cb_log[2], 2);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_ONCE), 0);
    CHECK_EQ(ncb, 4);
    CHECK_EQ(cb_log[3], 99);
    test_loop_free(loop);
}
