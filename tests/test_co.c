/* Coroutines: spawn, yield, exit, join, cancel, sleep, in every order. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "test.h"

static void *ret_arg(void *p)
{
    return p;
}

TEST(co_spawn_join_result)
{
    corio_loop *loop = test_loop();
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, ret_arg, (void *)0x1234, 0), 0);
    test_run(loop);
    void *r = NULL;
    CHECK_EQ(corio_join(co, &r, CORIO_FOREVER), 0);
    CHECK(r == (void *)0x1234);
    test_loop_free(loop);
}

static int order[64], norder;

static void *yielder(void *p)
{
    int id = (int)(intptr_t)p;
    for (int i = 0; i < 3; i++) {
        order[norder++] = id;
        CHECK_EQ(corio_yield(), 0);
    }
    return NULL;
}

TEST(co_yield_round_robin)
{
    corio_loop *loop = test_loop();
    norder = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_spawn(loop, NULL, yielder, (void *)(intptr_t)i, 0), 0);
    test_run(loop);
    CHECK_EQ(norder, 9);
    for (int i = 0; i < 9; i++)
        CHECK_EQ(order[i], i % 3);
    test_loop_free(loop);
}

static void deep_exit(int n)
{
    if (n == 0)
        corio_exit((void *)0x77);
    if (n > 0)
        deep_exit(n - 1);
}

static void *exiter(void *p)
{
    (void)p;
    deep_exit(5);
    return (void *)1; /* not reached */
}

TEST(co_exit_from_nested_call)
{
    corio_loop *loop = test_loop();
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, exiter, NULL, 0), 0);
    test_run(loop);
    void *r;
    CHECK_EQ(corio_join(co, &r, CORIO_FOREVER), 0);
    CHECK(r == (void *)0x77);
    test_loop_free(loop);
}

/* ---- join before and after the target finishes, from coroutines ---- */

struct join_arg {
    corio_co *target;
    int64_t deadline;
    int rc;
    void *result;
};

static void *joiner(void *p)
{
    struct join_arg *a = p;
    a->rc = corio_join(a->target, &a->result, a->deadline);
    return NULL;
}

static void *sleeper(void *p)
{
    corio_sleep_until(corio_after((int64_t)(intptr_t)p * CORIO_MSEC));
    return (void *)0x55;
}

TEST(co_join_waits_for_target)
{
    corio_loop *loop = test_loop();
    struct join_arg a = {.deadline = CORIO_FOREVER};
    CHECK_EQ(corio_spawn(loop, &a.target, sleeper, (void *)(intptr_t)10, 0), 0);
    CHECK_EQ(corio_spawn(loop, NULL, joiner, &a, 0), 0);
    test_run(loop);
    CHECK_EQ(a.rc, 0);
    CHECK(a.result == (void *)0x55);
    test_loop_free(loop);
}

TEST(co_join_after_target_done)
{
    corio_loop *loop = test_loop();
    struct join_arg a = {.deadline = CORIO_FOREVER};
    CHECK_EQ(corio_spawn(loop, &a.target, ret_arg, (void *)0x66, 0), 0);
    corio_loop_run(loop, CORIO_RUN_ONCE); /* target finishes */
    CHECK_EQ(corio_spawn(loop, NULL, joiner, &a, 0), 0);
    test_run(loop);
    CHECK_EQ(a.rc, 0);
    CHECK(a.result == (void *)0x66);
    test_loop_free(loop);
}

TEST(co_join_timeout_leaves_joinable)
{
    corio_loop *loop = test_loop();
    struct join_arg a = {.deadline = 0};
    CHECK_EQ(corio_spawn(loop, &a.target, sleeper, (void *)(intptr_t)50, 0), 0);
    a.deadline = corio_after(5 * CORIO_MSEC);
    CHECK_EQ(corio_spawn(loop, NULL, joiner, &a, 0), 0);
    test_run(loop);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    void *r;
    CHECK_EQ(corio_join(a.target, &r, CORIO_FOREVER), 0); /* done by now */
    CHECK(r == (void *)0x55);
    test_loop_free(loop);
}

TEST(co_join_errors)
{
    corio_loop *loop = test_loop();
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, sleeper, (void *)(intptr_t)1, 0), 0);
    /* Outside a coroutine, joining an unfinished one cannot park. */
    CHECK_EQ(corio_join(co, NULL, CORIO_FOREVER), -CORIO_ENOTCO);
    test_run(loop);
    corio_detach(co); /* finished and detached: freed now */
    test_loop_free(loop);
}

/* ---- cancel in every order ---- */

struct cancel_arg {
    int rc;
    int after;
    bool ran;
};

static void *parked_forever(void *p)
{
    struct cancel_arg *a = p;
    a->ran = true;
    a->rc = corio_sleep_until(CORIO_FOREVER);
    a->after = corio_sleep_until(corio_after(CORIO_MSEC)); /* sticky */
    return (void *)0x99;
}

TEST(co_cancel_while_parked)
{
    corio_loop *loop = test_loop();
    struct cancel_arg a = {0};
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, parked_forever, &a, 0), 0);
    corio_loop_run(loop, CORIO_RUN_ONCE);
    CHECK(a.ran);
    CHECK_EQ(corio_cancel(co), 0);
    test_run(loop);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(a.after, -ECANCELED);
    void *r;
    CHECK_EQ(corio_join(co, &r, CORIO_FOREVER), 0);
    CHECK(r == (void *)0x99); /* it unwound normally */
    test_loop_free(loop);
}

TEST(co_cancel_before_first_run)
{
    corio_loop *loop = test_loop();
    struct cancel_arg a = {0};
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, parked_forever, &a, 0), 0);
    CHECK_EQ(corio_cancel(co), 0);
    test_run(loop);
    CHECK(a.ran);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(corio_join(co, NULL, CORIO_FOREVER), 0);
    test_loop_free(loop);
}

TEST(co_cancel_after_exit)
{
    corio_loop *loop = test_loop();
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, ret_arg, (void *)3, 0), 0);
    test_run(loop);
    CHECK_EQ(corio_cancel(co), 0); /* harmless */
    void *r;
    CHECK_EQ(corio_join(co, &r, CORIO_FOREVER), 0);
    CHECK(r == (void *)3);
    test_loop_free(loop);
}

static void *cancel_then_join(void *p)
{
    struct join_arg *a = p;
    CHECK_EQ(corio_cancel(a->target), 0);
    a->rc = corio_join(a->target, &a->result, CORIO_FOREVER);
    return NULL;
}

TEST(co_cancel_then_join_from_coroutine)
{
    corio_loop *loop = test_loop();
    struct cancel_arg c = {0};
    struct join_arg a = {0};
    CHECK_EQ(corio_spawn(loop, &a.target, parked_forever, &c, 0), 0);
    corio_loop_run(loop, CORIO_RUN_ONCE);
    CHECK_EQ(corio_spawn(loop, NULL, cancel_then_join, &a, 0), 0);
    test_run(loop);
    CHECK_EQ(c.rc, -ECANCELED);
    CHECK_EQ(a.rc, 0);
    CHECK(a.result == (void *)0x99);
    test_loop_free(loop);
}

static void *self_cancel(void *p)
{
    (void)p;
    CHECK(!corio_cancelled());
    CHECK_EQ(corio_cancel(corio_self()), 0);
    CHECK(corio_cancelled());
    CHECK_EQ(corio_sleep_until(corio_after(CORIO_MSEC)), -ECANCELED);
    corio_exit((void *)5);
}

TEST(co_cancel_self_then_exit)
{
    corio_loop *loop = test_loop();
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, self_cancel, NULL, 0), 0);
    test_run(loop);
    void *r;
    CHECK_EQ(corio_join(co, &r, CORIO_FOREVER), 0);
    CHECK(r == (void *)5);
    test_loop_free(loop);
}

/* A joiner that is cancelled while waiting gets -ECANCELED; the target
 * stays joinable. */
static void *cancelled_joiner(void *p)
{
    struct join_arg *a = p;
    a->rc = corio_join(a->target, &a->result, CORIO_FOREVER);
    return NULL;
}

TEST(co_cancel_joiner)
{
    corio_loop *loop = test_loop();
    struct join_arg a = {0};
    corio_co *j;
    CHECK_EQ(corio_spawn(loop, &a.target, sleeper, (void *)(intptr_t)20, 0), 0);
    CHECK_EQ(corio_spawn(loop, &j, cancelled_joiner, &a, 0), 0);
    corio_loop_run(loop, CORIO_RUN_ONCE);
    CHECK_EQ(corio_cancel(j), 0);
    test_run(loop);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(corio_join(j, NULL, CORIO_FOREVER), 0);
    CHECK_EQ(corio_join(a.target, NULL, CORIO_FOREVER), 0);
    test_loop_free(loop);
}

/* ---- sleep ---- */

static void *sleep_measure(void *p)
{
    int64_t *took = p, t0 = corio_now();
    CHECK_EQ(corio_sleep_until(t0 + 20 * CORIO_MSEC), 0);
    *took = corio_now() - t0;
    CHECK_EQ(corio_sleep_until(t0), 0); /* in the past: at once */
    return NULL;
}

TEST(co_sleep_until)
{
    corio_loop *loop = test_loop();
    int64_t took = 0;
    CHECK_EQ(corio_spawn(loop, NULL, sleep_measure, &took, 0), 0);
    test_run(loop);
    CHECK(took >= 20 * CORIO_MSEC);
    CHECK(took < 2 * CORIO_SEC); /* generous: a loaded machine */
    test_loop_free(loop);
}

TEST(co_blocking_outside_coroutine)
{
    corio_loop *loop = test_loop();
    CHECK_EQ(corio_yield(), -CORIO_ENOTCO);
    CHECK_EQ(corio_sleep_until(corio_after(CORIO_MSEC)), -CORIO_ENOTCO);
    CHECK(corio_self() == NULL);
    test_loop_free(loop);
}

/* ---- many coroutines, stack reuse ---- */

static void *tiny(void *p)
{
    int *n = p;
    (*n)++;
    corio_yield();
    return NULL;
}

TEST(co_many_spawn_and_exit)
{
    corio_loop *loop = test_loop();
    int n = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 2000; i++)
            CHECK_EQ(corio_spawn(loop, NULL, tiny, &n, 0), 0);
        test_run(loop);
    }
    CHECK_EQ(n, 10000);
    test_loop_free(loop);
}

static void *big_stack_user(void *p)
{
    volatile char buf[200 * 1024];
    memset((char *)buf, 1, sizeof buf);
    *(int *)p = buf[1000];
    return NULL;
}

TEST(co_custom_stack_size)
{
    corio_loop *loop = test_loop();
    int v = 0;
    CHECK_EQ(corio_spawn(loop, NULL, big_stack_user, &v, 512 * 1024), 0);
    test_run(loop);
    CHECK_EQ(v, 1);
    test_loop_free(loop);
}

/* ---- ownership ---- */

struct thread_arg {
    corio_loop *loop;
    corio_co *co;
    int spawn_rc, cancel_rc, run_rc, free_rc;
};

static void *other_thread(void *p)
{
    struct thread_arg *a = p;
    a->spawn_rc = corio_spawn(a->loop, NULL, ret_arg, NULL, 0);
    a->cancel_rc = corio_cancel(a->co);
    a->run_rc = corio_loop_run(a->loop, CORIO_RUN_NOWAIT);
    a->free_rc = corio_loop_free(a->loop);
    return NULL;
}

TEST(co_refuses_other_thread)
{
    corio_loop *loop = test_loop();
    struct thread_arg a = {.loop = loop};
    CHECK_EQ(corio_spawn(loop, &a.co, ret_arg, NULL, 0), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, other_thread, &a), 0);
    pthread_join(t, NULL);
    CHECK_EQ(a.spawn_rc, -CORIO_EWRONGLOOP);
    CHECK_EQ(a.cancel_rc, -CORIO_EWRONGLOOP);
    CHECK_EQ(a.run_rc, -CORIO_EWRONGLOOP);
    CHECK_EQ(a.free_rc, -CORIO_EWRONGLOOP);
    test_run(loop);
    CHECK_EQ(corio_join(a.co, NULL, CORIO_FOREVER), 0);
    test_loop_free(loop);
}

TEST(co_loop_free_busy)
{
    corio_loop *loop = test_loop();
    corio_co *co;
    CHECK_EQ(corio_spawn(loop, &co, ret_arg, NULL, 0), 0);
    CHECK_EQ(corio_loop_free(loop), -EBUSY); /* not run yet */
    test_run(loop);
    CHECK_EQ(corio_loop_free(loop), -EBUSY); /* finished, not joined */
    CHECK_EQ(corio_join(co, NULL, CORIO_FOREVER), 0);
    test_loop_free(loop);
}

TEST(co_strerror)
{
    CHECK(strcmp(corio_strerror(-ETIMEDOUT), "Connection timed out") == 0);
    CHECK(strcmp(corio_strerror(-CORIO_ECLOSED), "fd closed while waiting on it") == 0);
    for (int e = CORIO_EBASE + 1; e <= CORIO_ELAST; e++)
        CHECK(corio_strerror(-e) != NULL && corio_strerror(e)[0]);
    CHECK(corio_strerror(-99999) != NULL);
}
