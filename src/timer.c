/* Timers: a hierarchical timing wheel, as in the Linux kernel before 4.8
 * and in tokio.  Most deadlines are cancelled before they fire (a read that
 * succeeds cancels its timeout), so start and stop are O(1): a list insert
 * or removal and a bit in an occupancy word.  A million live timers cost
 * their own memory and nothing per pass.
 *
 * Time is counted in ticks of 2^WHEEL_TICK_SHIFT ns (4.096 us, below the
 * kernel's wakeup precision).  A timer's tick is its deadline rounded up, so
 * it never fires early.  Level L has 64 slots of 64^L ticks each; a timer
 * sits at the level of the highest 6-bit digit in which its tick differs
 * from the wheel's current tick, so every timer of level L is due before
 * any timer of level L+1.  When the wheel reaches a slot above level 0, its
 * timers move down (cascade); at level 0 they are due.
 *
 * An idle loop sleeps until the first deadline when the earliest slot
 * holds at most WHEEL_SCAN timers; a crowded slot above level 0 wakes it at
 * the slot's start to cascade (a busy loop never notices either).  Timers
 * that are due together run in deadline order, ties in the order they were
 * started. */
#include "internal.h"

enum { T_IDLE, T_WHEEL, T_DUE };

#define TICK_NS ((uint64_t)1 << WHEEL_TICK_SHIFT)
#define WHEEL_SCAN 16 /* timers looked at for a precise wait (see timeout) */

static uint64_t tick_of(int64_t deadline)
{
    if (deadline <= 0)
        return 0;
    return ((uint64_t)deadline + TICK_NS - 1) >> WHEEL_TICK_SHIFT;
}

void corio__wheel_init(struct corio_wheel *w, int64_t now)
{
    w->elapsed = (uint64_t)now >> WHEEL_TICK_SHIFT;
    w->levels = 0;
    for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
        w->occupied[l] = 0;
        for (unsigned s = 0; s < WHEEL_SLOTS; s++)
            list_init(&w->slots[l][s]);
    }
    list_init(&w->due);
    w->seq = 0;
    w->count = 0;
}

static unsigned level_for(uint64_t elapsed, uint64_t tick)
{
    uint64_t masked = (elapsed ^ tick) | (WHEEL_SLOTS - 1);
    unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
    return significant / WHEEL_BITS;
}

static void place(struct corio_wheel *w, corio_timer *t)
{
    uint64_t tick = tick_of(t->deadline);
    if (tick <= w->elapsed) {
        list_insert_tail(&w->due, &t->link);
        t->state = T_DUE;
        return;
    }
    unsigned level = level_for(w->elapsed, tick);
    unsigned slot = (unsigned)(tick >> (level * WHEEL_BITS)) & (WHEEL_SLOTS - 1);
    list_insert_tail(&w->slots[level][slot], &t->link);
    w->occupied[level] |= (uint64_t)1 << slot;
    w->levels |= 1u << level;
    t->level = (uint8_t)level;
    t->slot = (uint8_t)slot;
    t->state = T_WHEEL;
}

static void unplace(struct corio_wheel *w, corio_timer *t)
{
    list_remove(&t->link);
    if (t->state == T_WHEEL && list_empty(&w->slots[t->level][t->slot]) &&
        !(w->occupied[t->level] &= ~((uint64_t)1 << t->slot)))
        w->levels &= ~(1u << t->level);
    t->state = T_IDLE;
}

void corio_timer_init(corio_timer *t, corio_timer_fn fn, void *data)
{
    t->link.next = t->link.prev = NULL;
    t->deadline = 0;
    t->seq = 0;
    t->fn = fn;
    t->data = data;
    t->state = T_IDLE;
    t->level = t->slot = 0;
    t->unref = 0;
}

bool corio_timer_is_active(const corio_timer *t)
{
    return t->state != T_IDLE;
}

void corio_timer_start(corio_loop *loop, corio_timer *t, int64_t deadline)
{
    struct corio_wheel *w = &loop->wheel;
    if (t->state != T_IDLE)
        unplace(w, t);
    else {
        w->count++;
        if (!t->unref)
            loop->refs++;
    }
    CORIO_STAT(loop->stats.timers_started++);
    t->deadline = deadline;
    t->seq = ++w->seq;
    place(w, t);
}

void corio_timer_stop(corio_loop *loop, corio_timer *t)
{
    if (t->state == T_IDLE)
        return;
    unplace(&loop->wheel, t);
    CORIO_STAT(loop->stats.timers_cancelled++);
    loop->wheel.count--;
    if (!t->unref)
        loop->refs--;
}

/* The earliest non-empty slot: its level, and the tick at which it is due
 * (for level 0 the timers' own tick, above it the tick to cascade at).
 * Slots of a level never lie behind the wheel's position in that level. */
static bool next_slot(const struct corio_wheel *w, unsigned *level, unsigned *slot, uint64_t *tick)
{
    if (!w->levels)
        return false;
    unsigned l = (unsigned)__builtin_ctz(w->levels);
    unsigned shift = l * WHEEL_BITS;
    unsigned s = (unsigned)__builtin_ctzll(w->occupied[l]);
    CORIO_ASSERT(s > ((unsigned)(w->elapsed >> shift) & (WHEEL_SLOTS - 1)));
    uint64_t span = ((uint64_t)1 << (shift + WHEEL_BITS)) - 1; /* shift + 6 <= 54 */
    *level = l;
    *slot = s;
    *tick = (w->elapsed & ~span) + ((uint64_t)s << shift);
    return true;
}

/* Moves the wheel to now_tick: due timers to the due list, others down. */
static void advance(struct corio_wheel *w, uint64_t now_tick)
{
    unsigned level, slot;
    uint64_t tick;
    while (next_slot(w, &level, &slot, &tick) && tick <= now_tick) {
        corio_list batch;
        list_init(&batch);
        list_splice_tail(&batch, &w->slots[level][slot]);
        if (!(w->occupied[level] &= ~((uint64_t)1 << slot)))
            w->levels &= ~(1u << level);
        w->elapsed = tick;
        while (!list_empty(&batch)) {
            corio_timer *t = corio_container_of(batch.next, corio_timer, link);
            list_remove(&t->link);
            place(w, t);
        }
    }
    if (now_tick > w->elapsed)
        w->elapsed = now_tick;
}

int64_t corio__wheel_timeout(corio_loop *loop)
{
    struct corio_wheel *w = &loop->wheel;
    if (!list_empty(&w->due))
        return 0;
    unsigned level, slot;
    uint64_t tick;
    if (!next_slot(w, &level, &slot, &tick))
        return -1;
    if (level > 0) {
        /* Waking at the slot's start would only cascade it, and the timer
         * would need one more wait per level on its way down.  When the
         * slot holds a few timers, sleep until the first of them instead:
         * advance() then cascades all the way and it fires in that pass.
         * A crowded slot keeps the start, so this costs O(1). */
        const corio_list *h = &w->slots[level][slot], *l = h->next;
        uint64_t first = UINT64_MAX;
        for (unsigned n = 0; l != h && n < WHEEL_SCAN; l = l->next, n++) {
            uint64_t t = tick_of(corio_container_of(l, corio_timer, link)->deadline);
            first = t < first ? t : first;
        }
        if (l == h)
            tick = first;
    }
    if (tick >= (uint64_t)INT64_MAX >> WHEEL_TICK_SHIFT)
        return -1;
    int64_t at = (int64_t)(tick << WHEEL_TICK_SHIFT);
    return at > loop->now ? at - loop->now : 0;
}

static bool before(const corio_timer *a, const corio_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

/* Stable merge sort of a NULL-terminated chain linked through link.next. */
static corio_list *sort_chain(corio_list *head, size_t n)
{
    if (n < 2)
        return head;
    corio_list *mid = head;
    for (size_t i = 1; i < n / 2; i++)
        mid = mid->next;
    corio_list *right = mid->next;
    mid->next = NULL;
    corio_list *a = sort_chain(head, n / 2), *b = sort_chain(right, n - n / 2);
    corio_list out = {NULL, NULL}, *tail = &out;
    while (a && b) {
        corio_timer *ta = corio_container_of(a, corio_timer, link);
        corio_timer *tb = corio_container_of(b, corio_timer, link);
        if (before(tb, ta)) {
            tail->next = b;
            b = b->next;
        } else {
            tail->next = a;
            a = a->next;
        }
        tail = tail->next;
    }
    tail->next = a ? a : b;
    return out.next;
}

static void sort_list(corio_list *h)
{
    size_t n = 0;
    for (corio_list *l = h->next; l != h; l = l->next)
        n++;
    if (n < 2)
        return;
    h->prev->next = NULL;
    corio_list *c = sort_chain(h->next, n), *prev = h;
    h->next = c;
    for (; c; prev = c, c = c->next)
        c->prev = prev;
    prev->next = h;
    h->prev = prev;
}

size_t corio__wheel_run_slow(corio_loop *loop)
{
    struct corio_wheel *w = &loop->wheel;
    uint64_t now_tick = (uint64_t)loop->now >> WHEEL_TICK_SHIFT;
    if (corio_likely(!w->levels)) /* nothing in the wheel: just keep time */
        w->elapsed = now_tick > w->elapsed ? now_tick : w->elapsed;
    else
        advance(w, now_tick);
    if (list_empty(&w->due))
        return 0;
    /* Take the batch first: timers started by these callbacks land in the
     * wheel or the due list and run in a later pass. */
    corio_list batch;
    list_init(&batch);
    list_splice_tail(&batch, &w->due);
    sort_list(&batch);
    size_t n = 0;
    while (!list_empty(&batch)) {
        corio_timer *t = corio_container_of(batch.next, corio_timer, link);
        list_remove(&t->link);
        t->state = T_IDLE;
        w->count--;
        if (!t->unref)
            loop->refs--;
        n++;
        t->fn(loop, t);
    }
    CORIO_STAT(loop->stats.timers_fired += n);
    return n;
}
