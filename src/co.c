/* Coroutines: spawn, park and wake, join, cancel, exit.
 *
 * Every switch goes through the loop's own stack: a coroutine parks by
 * switching to the loop, and the loop resumes the next ready coroutine
 * from its ready queue.  A coroutine is a corio_callback in that queue, so
 * coroutines and plain callbacks share one FIFO and one notion of a pass. */
#include <string.h>

#include "internal.h"

static void co_resume(corio_loop *loop, corio_callback *cb);
static void co_timeout(corio_loop *loop, corio_timer *t);

void corio_call_soon(corio_loop *loop, corio_callback *cb)
{
    CORIO_ASSERT(corio__loop_owned(loop));
    corio__ready_push(loop, cb);
}

/* Leaves the coroutine for the loop's stack.  `dying` tells ASan the
 * coroutine's stack is gone for good. */
static void switch_out(corio_loop *loop, corio_co *co, bool dying)
{
    corio__asan_start(dying ? NULL : &co->asan_fake, loop->main_stack_bottom, loop->main_stack_size);
    corio__tsan_switch(loop->tsan_main);
    corio__ctx_switch(&co->ctx, &loop->main_ctx);
    corio__asan_finish(co->asan_fake, NULL, NULL);
}

static void co_release(corio_loop *loop, corio_co *co)
{
    list_remove(&co->all);
    loop->nco--;
    if (loop->nco_free < 64) {
        co->run.next = (corio_callback *)loop->co_free;
        loop->co_free = co;
        loop->nco_free++;
    } else {
        corio__free(co);
    }
}

void corio__co_free_all(corio_loop *loop)
{
    while (loop->co_free) {
        corio_co *co = loop->co_free;
        loop->co_free = (corio_co *)co->run.next;
        corio__free(co);
    }
    loop->nco_free = 0;
}

static _Noreturn void co_finish(corio_co *co, void *result)
{
    corio_loop *loop = co->loop;
    co->result = result;
    co->state = CO_DONE;
    loop->refs--;
    if (co->joiner)
        corio__wake(co->joiner, 0);
    loop->dead = co; /* its stack is released once we are off it */
    switch_out(loop, co, true);
    corio__assert_fail("a finished coroutine was resumed", __FILE__, __LINE__);
}

static void co_entry(void *arg)
{
    corio_co *co = arg;
    corio_loop *loop = co->loop;
    corio__asan_finish(NULL, &loop->main_stack_bottom, &loop->main_stack_size);
    co_finish(co, co->fn(co->arg));
}

static void co_resume(corio_loop *loop, corio_callback *cb)
{
    corio_co *co = corio_container_of(cb, corio_co, run);
    co->state = CO_RUNNING;
    co->budget = loop->budget;
    loop->cur = co;
    CORIO_STAT(loop->stats.switches++;
               if (co->sampled) { /* by wake_co (fd.c), in the wait before this pass */
                   int64_t lat = corio_now() - loop->stats.stamp_at;
                   corio__hist_add(&loop->stats.resume_ns, lat > 0 ? (uint64_t)lat : 0);
                   co->sampled = false;
               });
    corio__asan_start(&loop->main_fake, co->stack->base, co->stack->size);
    loop->tsan_main = corio__tsan_current();
    corio__tsan_switch(co->tsan_fiber);
    corio__ctx_switch(&loop->main_ctx, &co->ctx);
    corio__asan_finish(loop->main_fake, NULL, NULL);
    loop->cur = NULL;
    if (loop->dead) {
        corio_co *d = loop->dead;
        loop->dead = NULL;
        corio__stack_put(loop, d->stack);
        d->stack = NULL;
        corio__tsan_fiber_free(d->tsan_fiber);
        d->tsan_fiber = NULL;
        if (d->detached)
            co_release(loop, d);
    }
}

int corio_spawn(corio_loop *loop, corio_co **out, corio_fn fn, void *arg, size_t stack_size)
{
    SITE(s_malloc, "malloc");
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    corio_co *co = loop->co_free;
    if (co) {
        loop->co_free = (corio_co *)co->run.next;
        loop->nco_free--;
    } else if (!(co = corio__malloc(&s_malloc, sizeof *co))) {
        return -ENOMEM;
    }
    struct corio_stack *st = corio__stack_get(loop, stack_size ? stack_size : loop->stack_size);
    if (!st) {
        co->run.next = (corio_callback *)loop->co_free;
        loop->co_free = co;
        loop->nco_free++;
        return -ENOMEM;
    }
    memset(co, 0, sizeof *co);
    co->run.fn = co_resume;
    co->loop = loop;
    co->stack = st;
    co->fn = fn;
    co->arg = arg;
    co->detached = out == NULL;
    co->tsan_fiber = corio__tsan_fiber_new();
    corio_timer_init(&co->timer, co_timeout, co);
    co->timer.unref = 1; /* the coroutine itself keeps the loop alive */
    corio__ctx_make(&co->ctx, st->base, (size_t)((char *)st - (char *)st->base), co_entry, co);
    list_insert_tail(&loop->cos, &co->all);
    loop->nco++;
    loop->refs++;
    CORIO_STAT(loop->stats.spawns++);
    co->state = CO_READY;
    corio__ready_push(loop, &co->run);
    if (out)
        *out = co;
    return 0;
}

static void co_timeout(corio_loop *loop, corio_timer *t)
{
    (void)loop;
    corio__wake(t->data, -ETIMEDOUT);
}

int corio__park(corio_loop *loop, int64_t deadline)
{
    corio_co *co = loop->cur;
    if (!co)
        return -CORIO_ENOTCO;
    if (co->cancelled)
        return -ECANCELED;
    if (deadline == CORIO_NOWAIT)
        return -EAGAIN;
    return corio__park_co(loop, co, deadline);
}

void corio__budget_spent(corio_loop *loop)
{
    CORIO_STAT(loop->stats.budget_yields++);
    corio_yield();
}

int corio_yield(void)
{
    corio_loop *loop = corio__tls_loop;
    corio_co *co = loop ? loop->cur : NULL;
    if (!co)
        return -CORIO_ENOTCO;
    co->state = CO_PARKED;
    corio__wake(co, 0);
    switch_out(loop, co, false);
    return 0;
}

int corio_sleep_until(int64_t deadline)
{
    corio_loop *loop = corio__tls_loop;
    if (!loop)
        return -CORIO_ENOTCO;
    int r = corio__park(loop, deadline);
    return r == -ETIMEDOUT || r == -EAGAIN ? 0 : r;
}

int corio_join(corio_co *co, void **result, int64_t deadline)
{
    corio_loop *loop = co->loop;
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (co->detached || co->joining || co == loop->cur)
        return -EINVAL;
    if (co->state != CO_DONE) {
        co->joiner = loop->cur;
        co->joining = true;
        int r = corio__park(loop, deadline);
        co->joiner = NULL;
        co->joining = false;
        if (co->state != CO_DONE)
            return r < 0 ? r : -EINTR;
    }
    if (result)
        *result = co->result;
    co_release(loop, co);
    return 0;
}

void corio_detach(corio_co *co)
{
    corio_loop *loop = co->loop;
    if (!corio__loop_owned(loop) || co->detached)
        return;
    co->detached = true;
    if (co->state == CO_DONE && !co->stack)
        co_release(loop, co);
}

int corio_cancel(corio_co *co)
{
    if (!corio__loop_owned(co->loop))
        return -CORIO_EWRONGLOOP;
    if (co->state == CO_DONE)
        return 0;
    co->cancelled = true;
    if (co->state == CO_PARKED)
        corio__wake(co, -ECANCELED);
    return 0;
}

_Noreturn void corio_exit(void *result)
{
    corio_loop *loop = corio__tls_loop;
    CORIO_ASSERT(loop && loop->cur);
    co_finish(loop->cur, result);
}

corio_co *corio_self(void)
{
    corio_loop *loop = corio__tls_loop;
    return loop ? loop->cur : NULL;
}

bool corio_cancelled(void)
{
    corio_loop *loop = corio__tls_loop; /* not corio_self(): a parked worker asks per record */
    corio_co *co = loop ? loop->cur : NULL;
    return co && co->cancelled;
}
