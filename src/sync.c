/* Channels, mutexes, semaphores, events and wait groups for the coroutines
 * of one loop.
 *
 * Every primitive is a list of waiters, each a node on the waiting
 * coroutine's own stack, so a wait allocates nothing.  A waker unlinks the
 * node and wakes its coroutine; the coroutine, once resumed, unlinks itself
 * if nobody did (it timed out or was cancelled).
 *
 * The one subtle case: a coroutine woken by its deadline or by
 * corio_cancel() stays in the list until it runs.  If a waker handed it the
 * mutex or the element meanwhile, the hand-off would be lost (its wait
 * returns the error).  So a waker only ever picks a coroutine that is still
 * CO_PARKED, and drops the others from the list as it meets them
 * (first_live()); once woken, a coroutine cannot be woken again, so what it
 * was handed is what its wait returns. */
#include <string.h>

#include "internal.h"

typedef struct corio_chanwait waiter;

static bool is_live(const waiter *w)
{
    return w->co->state == CO_PARKED;
}

/* The longest waiter still parked in q, or NULL.  Stale nodes in front of
 * it are unlinked: their coroutines were woken otherwise and will not look
 * at q again except to see they are out of it. */
static waiter *first_live(corio_list *q)
{
    while (!list_empty(q)) {
        waiter *w = corio_container_of(q->next, waiter, link);
        if (is_live(w))
            return w;
        list_remove(&w->link);
    }
    return NULL;
}

/* Hands w what it waited for: result goes in the node, its case index
 * becomes the wake value. */
static void fire(waiter *w, int result)
{
    w->result = result;
    list_remove(&w->link);
    corio__wake(w->co, w->index);
}

static void fire_all(corio_list *q, int result)
{
    waiter *w;
    while ((w = first_live(q)))
        fire(w, result);
}

/* Parks the running coroutine in q.  Returns w->result once fired, or the
 * park's error with w out of q. */
static int wait_in(corio_loop *loop, corio_list *q, waiter *w, int64_t deadline)
{
    if (!loop->cur) /* callbacks may try (CORIO_NOWAIT), never park */
        return deadline == CORIO_NOWAIT ? -EAGAIN : -CORIO_ENOTCO;
    w->co = loop->cur;
    w->index = 0;
    w->result = 0;
    list_insert_tail(q, &w->link);
    int r = corio__park(loop, deadline);
    if (list_linked(&w->link))
        list_remove(&w->link);
    return r < 0 ? r : w->result;
}

/* Drops every stale node; true if a live one remains. */
static bool prune(corio_list *q)
{
    for (corio_list *l = q->next; l != q;) {
        waiter *w = corio_container_of(l, waiter, link);
        l = l->next;
        if (is_live(w))
            return true;
        list_remove(&w->link);
    }
    return false;
}

/* ---- Channels ---- */

struct corio_chan {
    corio_loop *loop;
    size_t esize;
    size_t cap;
    size_t len;          /* elements buffered, from head on, wrapping */
    size_t head;
    corio_list sendq;    /* waiter.elem: the element to send */
    corio_list recvq;    /* waiter.elem: where to put it (NULL: drop) */
    uint32_t rng;        /* select's random pick among ready cases */
    bool closed;
    unsigned char buf[]; /* cap * esize bytes */
};

int corio_chan_new(corio_loop *loop, corio_chan **out, size_t elem_size, size_t capacity)
{
    SITE(s_malloc, "malloc");
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (elem_size && capacity > (SIZE_MAX - sizeof(corio_chan)) / elem_size)
        return -EINVAL;
    corio_chan *ch = corio__malloc(&s_malloc, sizeof *ch + elem_size * capacity);
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, sizeof *ch);
    ch->loop = loop;
    ch->esize = elem_size;
    ch->cap = capacity;
    list_init(&ch->sendq);
    list_init(&ch->recvq);
    ch->rng = (uint32_t)((uintptr_t)ch >> 4) ^ (uint32_t)corio_now() ^ 0x9e3779b9u;
    if (!ch->rng)
        ch->rng = 1;
    *out = ch;
    return 0;
}

int corio_chan_free(corio_chan *ch)
{
    if (!ch)
        return 0;
    if (!corio__loop_owned(ch->loop))
        return -CORIO_EWRONGLOOP;
    /* Stale nodes must go too: their coroutines unlink them later, and
     * would touch freed memory. */
    if (prune(&ch->sendq) || prune(&ch->recvq))
        return -EBUSY;
    corio__free(ch);
    return 0;
}

static unsigned char *slot(corio_chan *ch, size_t i)
{
    size_t k = ch->head + i;
    if (k >= ch->cap)
        k -= ch->cap;
    return ch->buf + k * ch->esize;
}

/* Pointer- and int-sized elements are the common case: fixed sizes let
 * the compiler copy with a move instead of calling memcpy. */
static void copy(const corio_chan *ch, void *dst, const void *src)
{
    if (!dst)
        return;
    switch (ch->esize) {
    case 0:
        return;
    case 4:
        memcpy(dst, src, 4);
        return;
    case 8:
        memcpy(dst, src, 8);
        return;
    case 16:
        memcpy(dst, src, 16);
        return;
    default:
        memcpy(dst, src, ch->esize);
    }
}

static void push(corio_chan *ch, const void *elem)
{
    copy(ch, slot(ch, ch->len), elem);
    ch->len++;
}

/* A live receiver waits only while the buffer is empty, and a live sender
 * only while it is full: the operations below keep that true. */
static int try_send(corio_chan *ch, const void *elem)
{
    if (ch->closed)
        return -EPIPE;
    waiter *r = first_live(&ch->recvq);
    if (r) {
        copy(ch, r->elem, elem);
        fire(r, 1);
        return 0;
    }
    if (ch->len < ch->cap) {
        push(ch, elem);
        return 0;
    }
    return -EAGAIN;
}

static int try_recv(corio_chan *ch, void *elem)
{
    waiter *s;
    if (ch->len > 0) {
        copy(ch, elem, slot(ch, 0));
        ch->head = ch->head + 1 == ch->cap ? 0 : ch->head + 1;
        ch->len--;
        if ((s = first_live(&ch->sendq))) { /* its element takes the room */
            push(ch, s->elem);
            fire(s, 0);
        }
        return 1;
    }
    if ((s = first_live(&ch->sendq))) { /* rendezvous */
        copy(ch, elem, s->elem);
        fire(s, 0);
        return 1;
    }
    return ch->closed ? 0 : -EAGAIN;
}

int corio_chan_send(corio_chan *ch, const void *elem, int64_t deadline)
{
    if (!corio__loop_owned(ch->loop))
        return -CORIO_EWRONGLOOP;
    int r = try_send(ch, elem);
    if (r != -EAGAIN)
        return r;
    waiter w = {.elem = (void *)(uintptr_t)elem};
    return wait_in(ch->loop, &ch->sendq, &w, deadline);
}

int corio_chan_recv(corio_chan *ch, void *elem, int64_t deadline)
{
    if (!corio__loop_owned(ch->loop))
        return -CORIO_EWRONGLOOP;
    int r = try_recv(ch, elem);
    if (r != -EAGAIN)
        return r;
    waiter w = {.elem = elem};
    return wait_in(ch->loop, &ch->recvq, &w, deadline);
}

int corio_chan_close(corio_chan *ch)
{
    if (!corio__loop_owned(ch->loop))
        return -CORIO_EWRONGLOOP;
    if (ch->closed)
        return -EPIPE;
    ch->closed = true;
    fire_all(&ch->recvq, 0); /* live receivers mean an empty buffer */
    fire_all(&ch->sendq, -EPIPE);
    return 0;
}

size_t corio_chan_len(const corio_chan *ch)
{
    return ch->len;
}

size_t corio_chan_cap(const corio_chan *ch)
{
    return ch->cap;
}

bool corio_chan_is_closed(const corio_chan *ch)
{
    return ch->closed;
}

/* ---- Select ---- */

static bool case_ready(corio_sel *c)
{
    corio_chan *ch = c->chan;
    if (c->op == CORIO_SEL_SEND)
        return ch->closed || ch->len < ch->cap || first_live(&ch->recvq);
    return ch->len > 0 || ch->closed || first_live(&ch->sendq);
}

static uint32_t next_rand(corio_chan *ch)
{
    uint32_t x = ch->rng; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return ch->rng = x;
}

/* Checks the cases; returns the loop they share, or NULL with *err set. */
static corio_loop *sel_loop(const corio_sel *c, size_t n, int64_t deadline, int *err)
{
    corio_loop *loop = NULL;
    *err = -EINVAL;
    if (n > INT32_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].chan)
            continue;
        if (c[i].op != CORIO_SEL_SEND && c[i].op != CORIO_SEL_RECV)
            return NULL;
        if (loop && c[i].chan->loop != loop)
            return NULL;
        loop = c[i].chan->loop;
    }
    if (!loop)
        loop = corio__tls_loop;
    *err = deadline == CORIO_NOWAIT ? -EAGAIN : -CORIO_ENOTCO; /* no case, no loop */
    if (!loop)
        return NULL;
    *err = -CORIO_EWRONGLOOP;
    return corio__loop_owned(loop) ? loop : NULL;
}

/* Performs one of the ready cases, chosen uniformly; -EAGAIN if none. */
static int sel_try(corio_sel *c, size_t n)
{
    size_t ready = 0;
    corio_chan *any = NULL;
    for (size_t i = 0; i < n; i++)
        if (c[i].chan && case_ready(&c[i])) {
            ready++;
            any = c[i].chan;
        }
    if (!ready)
        return -EAGAIN;
    size_t pick = ready > 1 ? next_rand(any) % ready : 0;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].chan || !case_ready(&c[i]) || pick-- > 0)
            continue;
        c[i].result = c[i].op == CORIO_SEL_SEND ? try_send(c[i].chan, c[i].elem)
                                                : try_recv(c[i].chan, c[i].elem);
        CORIO_ASSERT(c[i].result != -EAGAIN);
        return (int)i;
    }
    CORIO_ASSERT(!"a ready case went away");
    return -EAGAIN;
}

int corio_chan_select(corio_sel *c, size_t n, int64_t deadline)
{
    int err;
    corio_loop *loop = sel_loop(c, n, deadline, &err);
    if (!loop)
        return err;
    int r = sel_try(c, n);
    if (r != -EAGAIN)
        return r;
    if (!loop->cur)
        return deadline == CORIO_NOWAIT ? -EAGAIN : -CORIO_ENOTCO;
    /* Wait in every channel at once; whichever fires first wakes us with
     * its index, and the others find us no longer parked. */
    for (size_t i = 0; i < n; i++) {
        if (!c[i].chan)
            continue;
        c[i].w = (waiter){.co = loop->cur, .elem = c[i].elem, .index = (int)i};
        list_insert_tail(c[i].op == CORIO_SEL_SEND ? &c[i].chan->sendq : &c[i].chan->recvq,
                         &c[i].w.link);
    }
    r = corio__park(loop, deadline);
    for (size_t i = 0; i < n; i++)
        if (c[i].chan && list_linked(&c[i].w.link))
            list_remove(&c[i].w.link);
    if (r >= 0)
        c[r].result = c[r].w.result;
    return r;
}

/* ---- Mutex ---- */

void corio_mutex_init(corio_loop *loop, corio_mutex *m)
{
    list_init(&m->waiters);
    m->loop = loop;
    m->owner = NULL;
    m->locked = false;
}

int corio_mutex_lock(corio_mutex *m, int64_t deadline)
{
    corio_loop *loop = m->loop;
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (!m->locked) {
        m->locked = true;
        m->owner = loop->cur;
        return 0;
    }
    if (m->owner == loop->cur && loop->cur)
        return -EDEADLK;
    waiter w = {0};
    return wait_in(loop, &m->waiters, &w, deadline); /* unlock made us owner */
}

int corio_mutex_unlock(corio_mutex *m)
{
    corio_loop *loop = m->loop;
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (!m->locked || m->owner != loop->cur)
        return -EPERM;
    waiter *w = first_live(&m->waiters);
    if (w) {
        m->owner = w->co; /* handed over: no newcomer can barge in */
        fire(w, 0);
    } else {
        m->locked = false;
        m->owner = NULL;
    }
    return 0;
}

bool corio_mutex_is_locked(const corio_mutex *m)
{
    return m->locked;
}

/* ---- Semaphore ---- */

void corio_sem_init(corio_loop *loop, corio_sem *s, size_t count)
{
    list_init(&s->waiters);
    s->loop = loop;
    s->count = count;
}

int corio_sem_wait(corio_sem *s, int64_t deadline)
{
    if (!corio__loop_owned(s->loop))
        return -CORIO_EWRONGLOOP;
    if (s->count > 0) { /* no live waiter while units are left */
        s->count--;
        return 0;
    }
    waiter w = {0};
    return wait_in(s->loop, &s->waiters, &w, deadline);
}

int corio_sem_post(corio_sem *s)
{
    if (!corio__loop_owned(s->loop))
        return -CORIO_EWRONGLOOP;
    waiter *w = first_live(&s->waiters);
    if (w) {
        fire(w, 0);
        return 0;
    }
    if (s->count == SIZE_MAX)
        return -EOVERFLOW;
    s->count++;
    return 0;
}

size_t corio_sem_value(const corio_sem *s)
{
    return s->count;
}

/* ---- Event ---- */

void corio_event_init(corio_loop *loop, corio_event *e)
{
    list_init(&e->waiters);
    e->loop = loop;
    e->set = false;
}

int corio_event_set(corio_event *e)
{
    if (!corio__loop_owned(e->loop))
        return -CORIO_EWRONGLOOP;
    e->set = true;
    fire_all(&e->waiters, 0);
    return 0;
}

int corio_event_clear(corio_event *e)
{
    if (!corio__loop_owned(e->loop))
        return -CORIO_EWRONGLOOP;
    e->set = false;
    return 0;
}

bool corio_event_is_set(const corio_event *e)
{
    return e->set;
}

int corio_event_wait(corio_event *e, int64_t deadline)
{
    if (!corio__loop_owned(e->loop))
        return -CORIO_EWRONGLOOP;
    if (e->set)
        return 0;
    waiter w = {0};
    return wait_in(e->loop, &e->waiters, &w, deadline);
}

/* ---- Wait group ---- */

void corio_waitgroup_init(corio_loop *loop, corio_waitgroup *wg)
{
    list_init(&wg->waiters);
    wg->loop = loop;
    wg->count = 0;
}

int corio_waitgroup_add(corio_waitgroup *wg, long delta)
{
    if (!corio__loop_owned(wg->loop))
        return -CORIO_EWRONGLOOP;
    if (delta < 0 && (unsigned long)-(delta + 1) >= wg->count)
        return -EINVAL; /* -delta > count: it would go below zero */
    if (delta > 0 && (unsigned long)delta > SIZE_MAX - wg->count)
        return -EINVAL;
    wg->count = delta < 0 ? wg->count - ((size_t)-(delta + 1) + 1) : wg->count + (size_t)delta;
    if (wg->count == 0)
        fire_all(&wg->waiters, 0);
    return 0;
}

int corio_waitgroup_done(corio_waitgroup *wg)
{
    return corio_waitgroup_add(wg, -1);
}

int corio_waitgroup_wait(corio_waitgroup *wg, int64_t deadline)
{
    if (!corio__loop_owned(wg->loop))
        return -CORIO_EWRONGLOOP;
    if (wg->count == 0)
        return 0;
    waiter w = {0};
    return wait_in(wg->loop, &wg->waiters, &w, deadline);
}
