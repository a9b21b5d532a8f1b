/* corio: channels, mutexes, semaphores, events, wait groups.  Included by
 * corio.h; do not include directly.
 *
 * These are for the coroutines of one loop: no atomics, no allocation per
 * wait (a waiter is a node on its own stack).  Each object belongs to the
 * loop given at init and refuses calls from another thread
 * (-CORIO_EWRONGLOOP).  Every wait takes a deadline, and returns -ECANCELED
 * when its coroutine is cancelled; a waiter that times out or is cancelled
 * never consumes a wakeup meant for another: it goes to the next waiter.
 * Waits are FIFO.  A call that can succeed at once does so without parking
 * (even outside a coroutine, or cancelled); otherwise it returns -EAGAIN
 * with CORIO_NOWAIT (callbacks can try), -CORIO_ENOTCO outside a coroutine,
 * or parks.
 *
 * Mutex, semaphore, event and wait group are plain structs the caller
 * embeds: their fields are private.  Nothing to free, but none may go away
 * while a coroutine waits on it. */
#ifndef CORIO_SYNC_H
#define CORIO_SYNC_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Channels --------------------------------------------------------------
 * A typed queue between coroutines, as in Go: elements of elem_size bytes
 * are copied in and out.  capacity 0 makes a rendezvous channel (a send
 * waits for a receiver).  After corio_chan_close(), receivers drain what is
 * buffered, then get 0, like read(2) at end of file; sends get -EPIPE. */

typedef struct corio_chan corio_chan;

/* Creates a channel on loop.  elem_size may be 0 (a channel of events).
 * 0, -ENOMEM, -EINVAL (elem_size * capacity overflows),
 * -CORIO_EWRONGLOOP. */
int corio_chan_new(corio_loop *loop, corio_chan **ch, size_t elem_size, size_t capacity);

/* Frees ch and the elements still buffered.  -EBUSY (nothing freed) while a
 * coroutine waits on it; -CORIO_EWRONGLOOP.  NULL is ignored. */
int corio_chan_free(corio_chan *ch);

/* Copies *elem into ch: straight to a waiting receiver, else into the
 * buffer, else parks until a receiver or room comes.  0, -EPIPE (closed,
 * or closed while waiting: not sent), -ETIMEDOUT, -ECANCELED, -EAGAIN. */
int corio_chan_send(corio_chan *ch, const void *elem, int64_t deadline);

/* Takes the oldest element into *elem (NULL: drop it), parking until one
 * comes.  1: received; 0: closed and drained; -ETIMEDOUT, -ECANCELED,
 * -EAGAIN. */
int corio_chan_recv(corio_chan *ch, void *elem, int64_t deadline);

/* Closes ch: waiting senders get -EPIPE, waiting receivers 0 once the
 * buffer is empty.  0, -EPIPE if already closed. */
int corio_chan_close(corio_chan *ch);

size_t corio_chan_len(const corio_chan *ch); /* elements buffered */
size_t corio_chan_cap(const corio_chan *ch);
bool corio_chan_is_closed(const corio_chan *ch);

/* One case of corio_chan_select().  Set the first three fields; the rest
 * is the select's own state (it waits in the cases, not on the heap). */
#define CORIO_SEL_SEND 1
#define CORIO_SEL_RECV 2
struct corio_chanwait { /* private */
    corio_list link;
    corio_co *co;
    void *elem;
    int index;
    int result;
};
typedef struct corio_sel {
    corio_chan *chan; /* NULL: the case is off and never fires */
    int op;           /* CORIO_SEL_SEND or CORIO_SEL_RECV */
    void *elem;       /* send: the element; recv: where it goes (NULL: drop) */
    int result;       /* out, for the case that fired: what send or recv returns */
    struct corio_chanwait w;
} corio_sel;

/* Waits until one of the n cases can proceed, performs it, and returns its
 * index (cases[i].result tells how it went: 1 or 0 for a receive, 0 or
 * -EPIPE for a send).  Among cases ready together one is picked at random,
 * so a busy channel cannot starve another.  -ETIMEDOUT, -ECANCELED, -EAGAIN
 * (CORIO_NOWAIT and nothing ready: Go's `default`), -EINVAL (bad op),
 * -CORIO_EWRONGLOOP.  Parks. */
int corio_chan_select(corio_sel *cases, size_t n, int64_t deadline);

/* ---- Mutex ------------------------------------------------------------------
 * Held by a coroutine (or the loop's own stack), handed over in FIFO order
 * on unlock, so a waiter cannot be overtaken by a newcomer. */

typedef struct corio_mutex {
    corio_list waiters;
    corio_loop *loop;
    corio_co *owner;
    bool locked;
} corio_mutex;

void corio_mutex_init(corio_loop *loop, corio_mutex *m);

/* Locks m, parking while another holds it.  0, -ETIMEDOUT, -ECANCELED,
 * -EAGAIN, -EDEADLK (the caller holds it), -CORIO_EWRONGLOOP. */
int corio_mutex_lock(corio_mutex *m, int64_t deadline);

/* Unlocks m, handing it to the longest waiter.  0, or -EPERM if the caller
 * does not hold it. */
int corio_mutex_unlock(corio_mutex *m);

bool corio_mutex_is_locked(const corio_mutex *m);

/* ---- Semaphore -------------------------------------------------------------- */

typedef struct corio_sem {
    corio_list waiters;
    corio_loop *loop;
    size_t count;
} corio_sem;

void corio_sem_init(corio_loop *loop, corio_sem *s, size_t count);

/* Takes one unit, parking until one is posted.  0, -ETIMEDOUT, -ECANCELED,
 * -EAGAIN, -CORIO_EWRONGLOOP. */
int corio_sem_wait(corio_sem *s, int64_t deadline);

/* Gives one unit back: to the longest waiter if there is one.  0,
 * -EOVERFLOW, -CORIO_EWRONGLOOP. */
int corio_sem_post(corio_sem *s);

size_t corio_sem_value(const corio_sem *s);

/* ---- Event: a flag coroutines wait for (asyncio.Event) ---------------------- */

typedef struct corio_event {
    corio_list waiters;
    corio_loop *loop;
    bool set;
} corio_event;

void corio_event_init(corio_loop *loop, corio_event *e);

/* Sets the flag and wakes every waiter; it stays set until cleared.  0, or
 * -CORIO_EWRONGLOOP. */
int corio_event_set(corio_event *e);
int corio_event_clear(corio_event *e);
bool corio_event_is_set(const corio_event *e);

/* Returns 0 at once if set, else parks until it is.  -ETIMEDOUT,
 * -ECANCELED, -EAGAIN, -CORIO_EWRONGLOOP. */
int corio_event_wait(corio_event *e, int64_t deadline);

/* ---- Wait group: wait for a count of tasks to finish (Go's WaitGroup) ------- */

typedef struct corio_waitgroup {
    corio_list waiters;
    corio_loop *loop;
    size_t count;
} corio_waitgroup;

void corio_waitgroup_init(corio_loop *loop, corio_waitgroup *wg);

/* Adds delta (may be negative) to the count; reaching 0 wakes every
 * waiter.  0, -EINVAL (the count would go below 0; nothing changes),
 * -CORIO_EWRONGLOOP. */
int corio_waitgroup_add(corio_waitgroup *wg, long delta);
int corio_waitgroup_done(corio_waitgroup *wg); /* add(-1) */

/* Returns 0 once the count is 0, parking until then.  -ETIMEDOUT,
 * -ECANCELED, -EAGAIN, -CORIO_EWRONGLOOP. */
int corio_waitgroup_wait(corio_waitgroup *wg, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif
