/* corio: coroutines on an edge-triggered event loop, for servers that hold
 * very many connections.
 *
 * Conventions used by every function below:
 *  - Results are >= 0 on success and -errno on failure (-EAGAIN, -ETIMEDOUT,
 *    -ECANCELED, ...).  Library-only conditions use the CORIO_E* codes, also
 *    negated.  corio_strerror() names both.  No call leaves errno meaningful.
 *  - A call that fails has had no effect.
 *  - A call that may block takes an absolute deadline as its last argument:
 *    nanoseconds on the corio_now() clock, CORIO_FOREVER, or CORIO_NOWAIT
 *    (never park: -EAGAIN instead).  A deadline that has passed gives
 *    -ETIMEDOUT.  "Parks" means the calling coroutine is suspended and the
 *    loop runs others; blocking calls made outside a coroutine return
 *    -CORIO_ENOTCO instead of parking.
 *  - Every object belongs to one loop, and one loop to one thread.  Calls on
 *    another thread's objects fail with -CORIO_EWRONGLOOP; use
 *    corio_loop_post() to hand work to another loop.
 */
#ifndef CORIO_H
#define CORIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
#define CORIO_NORETURN [[noreturn]]
#else
#define CORIO_NORETURN _Noreturn
#endif

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 1

/* ---- Time ---------------------------------------------------------------- */

#define CORIO_NSEC 1LL
#define CORIO_USEC 1000LL
#define CORIO_MSEC 1000000LL
#define CORIO_SEC 1000000000LL

#define CORIO_FOREVER INT64_MAX /* a deadline that never passes */
#define CORIO_NOWAIT 0          /* a deadline that means "do not park" */

/* Nanoseconds on the monotonic clock.  Deadlines are absolute values of it. */
int64_t corio_now(void);

/* corio_now() + ns, saturating at CORIO_FOREVER. */
int64_t corio_after(int64_t ns);

/* ---- Errors -------------------------------------------------------------- */

/* Codes outside the errno range for conditions only corio has. */
#define CORIO_EBASE 5000
#define CORIO_ECLOSED (CORIO_EBASE + 1)    /* the fd was closed through corio */
#define CORIO_ENOTCO (CORIO_EBASE + 2)     /* would park outside a coroutine */
#define CORIO_EWRONGLOOP (CORIO_EBASE + 3) /* object belongs to another thread */
#define CORIO_EEOF (CORIO_EBASE + 4)       /* end of stream before enough bytes */
#define CORIO_ETOOLONG (CORIO_EBASE + 5)   /* data over the caller's limit */
#define CORIO_EADDR (CORIO_EBASE + 6)      /* malformed address string */
#define CORIO_ENONAME (CORIO_EBASE + 7)    /* name does not resolve */
#define CORIO_ELAST (CORIO_EBASE + 7)

/* A static description of err (negative or positive), never NULL. */
const char *corio_strerror(int err);

/* ---- Memory --------------------------------------------------------------- */

/* Every allocation the library makes goes through these.  Set them before
 * the first loop exists; NULL members keep libc's.  A failed allocation
 * turns into -ENOMEM from the call that needed it. */
typedef struct corio_allocator {
    void *(*malloc)(size_t size);
    void *(*realloc)(void *ptr, size_t size);
    void (*free)(void *ptr);
} corio_allocator;
void corio_set_allocator(const corio_allocator *a);

/* ---- Loop ---------------------------------------------------------------- */

typedef struct corio_loop corio_loop;

typedef struct corio_loop_options {
    const char *backend;     /* "epoll", "poll"; NULL: $CORIO_BACKEND or the best */
    unsigned max_events;     /* events taken per backend wait; 0: 1024 */
    size_t stack_size;       /* default coroutine stack; 0: $CORIO_STACK_SIZE or 64 KiB */
    unsigned stack_pool_max; /* stacks kept for reuse; 0: 1024 */
    unsigned budget;         /* I/O calls a coroutine completes before it must yield; 0: 64 */
    bool no_overflow_handler; /* leave SIGSEGV alone (no stack overflow message) */
} corio_loop_options;

typedef enum corio_run_mode {
    CORIO_RUN_DEFAULT = 0, /* until nothing is alive or corio_loop_stop() */
    CORIO_RUN_ONCE,        /* one iteration; waits for events if nothing is ready */
    CORIO_RUN_NOWAIT       /* one iteration without waiting */
} corio_run_mode;

/* Creates a loop owned by the calling thread.  opts may be NULL.
 * -EINVAL for an unknown backend, -ENOMEM, or the backend's setup error. */
int corio_loop_new(corio_loop **loop, const corio_loop_options *opts);

/* Frees the loop.  -EBUSY (and nothing freed) while coroutines, active
 * timers or watchers, or queued callbacks remain. */
int corio_loop_free(corio_loop *loop);

/* Runs the loop.  Returns 0 when nothing is left alive, 1 when it returned
 * for another reason (stop, ONCE, NOWAIT) with work left, or -errno. */
int corio_loop_run(corio_loop *loop, corio_run_mode mode);

/* Makes corio_loop_run() return after the current iteration. */
void corio_loop_stop(corio_loop *loop);

/* The loop running on this thread, or NULL. */
corio_loop *corio_loop_current(void);

/* The backend's name: "epoll" or "poll". */
const char *corio_loop_backend(const corio_loop *loop);

/* The loop's cached clock: corio_now() as of the last time the loop read
 * it, which it does around waits only while timers are armed.  Cheaper
 * than corio_now(), and never ahead of it. */
int64_t corio_loop_now(const corio_loop *loop);

/* Makes the calling thread the loop's owner: for a loop created on one
 * thread and run on another (as Python programs do).  The previous owner
 * must no longer use it.  -EBUSY while the loop runs. */
int corio_loop_adopt(corio_loop *loop);

/* Keep-alive references: a loop with refs runs even with nothing else. */
void corio_loop_ref(corio_loop *loop);
void corio_loop_unref(corio_loop *loop);

/* ---- Callback level -------------------------------------------------------
 * The structs below are owned by the caller (embed them; no allocation) and
 * their fields are private unless marked otherwise. */

typedef struct corio_list {
    struct corio_list *next, *prev;
} corio_list;

/* A callback queued to run once in the loop's next pass. */
typedef struct corio_callback corio_callback;
typedef void (*corio_callback_fn)(corio_loop *loop, corio_callback *cb);
struct corio_callback {
    corio_callback *next;
    corio_callback_fn fn; /* public */
    void *data;           /* public */
};

/* Queues cb to run in the next pass, after everything already queued.  cb
 * must stay valid and unqueued until it runs.  Only from the loop's thread. */
void corio_call_soon(corio_loop *loop, corio_callback *cb);

/* Same, from any thread (or a signal handler: it only does an atomic push
 * and at most one eventfd write per batch).  Wakes the loop. */
int corio_loop_post(corio_loop *loop, corio_callback *cb);

/* Wakes a loop blocked in the kernel, from any thread. */
int corio_loop_wake(corio_loop *loop);

/* A one-shot timer. */
typedef struct corio_timer corio_timer;
typedef void (*corio_timer_fn)(corio_loop *loop, corio_timer *t);
struct corio_timer {
    corio_list link;
    int64_t deadline;  /* public, read-only: when it fires */
    uint64_t seq;      /* insertion order, ties broken by it */
    corio_timer_fn fn; /* public */
    void *data;        /* public */
    uint8_t state;
    uint8_t level;
    uint8_t slot;
    uint8_t unref; /* public: set to true so the timer keeps no loop alive */
};

void corio_timer_init(corio_timer *t, corio_timer_fn fn, void *data);
/* Arms t for deadline (re-arms an active t).  Timers armed while timers fire
 * run in the next pass at the earliest.  O(1). */
void corio_timer_start(corio_loop *loop, corio_timer *t, int64_t deadline);
/* Disarms t; harmless on an inactive t.  O(1). */
void corio_timer_stop(corio_loop *loop, corio_timer *t);
bool corio_timer_is_active(const corio_timer *t);

/* Readiness bits, for fd waits and watchers. */
#define CORIO_READABLE 0x01u
#define CORIO_WRITABLE 0x02u
#define CORIO_ERROR 0x04u  /* an error is pending on the socket */
#define CORIO_HUP 0x08u    /* hang-up: both directions closed */
#define CORIO_RDHUP 0x10u  /* the peer closed its write side */
#define CORIO_CLOSED 0x20u /* the fd was closed through corio_close() */

/* Watcher flags. */
#define CORIO_WATCH_EDGE 0x01u /* call once per new readiness, not while ready */

/* An fd watcher.  By default it is level-triggered, like poll(2): its
 * callback runs every pass while the fd stays ready.  With CORIO_WATCH_EDGE
 * it runs once per transition to ready, and the callback must read or write
 * until -EAGAIN. */
typedef struct corio_watcher corio_watcher;
typedef void (*corio_watcher_fn)(corio_loop *loop, corio_watcher *w, unsigned revents);
struct corio_watcher {
    corio_list link;
    int fd;             /* public, read-only */
    unsigned events;    /* public, read-only: CORIO_READABLE | CORIO_WRITABLE */
    unsigned flags;     /* CORIO_WATCH_* */
    uint32_t pass;      /* dispatch bookkeeping */
    bool active;
    bool unref;         /* public: set so the watcher keeps no loop alive */
    corio_watcher_fn fn; /* public */
    void *data;          /* public */
};

void corio_watcher_init(corio_watcher *w, int fd, unsigned events, unsigned flags,
                        corio_watcher_fn fn, void *data);
/* Starts watching.  -EBADF, -EPERM (an fd the backend cannot watch, such as
 * a regular file under epoll), -ENOMEM, -EEXIST if already active.  The
 * callback gets the ready bits; CORIO_CLOSED means corio_close() closed the
 * fd and the watcher is now stopped. */
int corio_watcher_start(corio_loop *loop, corio_watcher *w);
void corio_watcher_stop(corio_loop *loop, corio_watcher *w);
/* Changes the events watched, keeping the watcher active. */
int corio_watcher_set(corio_loop *loop, corio_watcher *w, unsigned events);

/* Tells the loop that a syscall the caller made itself on fd found it
 * drained for events (EAGAIN, or a short read or write), so that edge
 * watchers hear of its next readiness.  Free on epoll; level backends
 * (poll) start polling the fd again.  Never fails. */
void corio_fd_drained(corio_loop *loop, int fd, unsigned events);

/* ---- Coroutines ----------------------------------------------------------- */

typedef struct corio_co corio_co;
typedef void *(*corio_fn)(void *arg);

/* Starts fn(arg) in a new coroutine on loop; it first runs in the loop's
 * next pass.  stack_size 0 takes the loop's default.  With co non-NULL the
 * coroutine must be joined or detached; with co NULL it is detached.
 * -ENOMEM, -CORIO_EWRONGLOOP. */
int corio_spawn(corio_loop *loop, corio_co **co, corio_fn fn, void *arg, size_t stack_size);

/* Waits for co to finish and frees it, storing its result in *result (may be
 * NULL).  Parks.  -ETIMEDOUT or -ECANCELED leave co joinable; -EINVAL if co
 * is detached, already being joined, or the caller itself. */
int corio_join(corio_co *co, void **result, int64_t deadline);

/* Lets co free itself when it finishes. */
void corio_detach(corio_co *co);

/* Cancels co: its current blocking call, or its next one, returns
 * -ECANCELED, and so does every later one (cancellation is sticky). */
int corio_cancel(corio_co *co);

/* Ends the calling coroutine with result, as if its function returned. */
CORIO_NORETURN void corio_exit(void *result);

/* Lets other ready coroutines run.  0, or -CORIO_ENOTCO. */
int corio_yield(void);

/* Parks until deadline.  0 at the deadline, -ECANCELED, -CORIO_ENOTCO. */
int corio_sleep_until(int64_t deadline);

/* The running coroutine, or NULL on the loop's own stack. */
corio_co *corio_self(void);

/* True once the running coroutine has been cancelled. */
bool corio_cancelled(void);

/* ---- fd waits and I/O ------------------------------------------------------
 * The fd must be non-blocking.  Each call first tries the syscall and parks
 * only on EAGAIN, so data already buffered never enters the scheduler. */

/* Waits until fd is ready for events (CORIO_READABLE and/or
 * CORIO_WRITABLE).  Returns the bits that happened (may include
 * CORIO_ERROR, CORIO_HUP, CORIO_RDHUP), -ETIMEDOUT, -ECANCELED,
 * -CORIO_ECLOSED, -EPERM for an fd that cannot be waited on. */
int corio_wait_fd(int fd, unsigned events, int64_t deadline);

ssize_t corio_read(int fd, void *buf, size_t n, int64_t deadline);
ssize_t corio_write(int fd, const void *buf, size_t n, int64_t deadline);
ssize_t corio_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
ssize_t corio_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
ssize_t corio_recv(int fd, void *buf, size_t n, int flags, int64_t deadline);
ssize_t corio_send(int fd, const void *buf, size_t n, int flags, int64_t deadline);

/* Writes all n bytes unless an error or the deadline stops it.  Returns n,
 * or -errno; *written (may be NULL) tells how much went out either way. */
ssize_t corio_write_all(int fd, const void *buf, size_t n, size_t *written, int64_t deadline);

/* accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.  Returns the new fd. */
int corio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t deadline);

/* Connects a non-blocking socket, parking until the handshake finishes.
 * On -ETIMEDOUT or -ECANCELED the socket is left half-connected: close it. */
int corio_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline);

/* Closes fd, first waking every coroutine and watcher waiting on it
 * (they see -CORIO_ECLOSED / CORIO_CLOSED).  Returns close(2)'s result,
 * except EINTR: the fd is closed then too, so that is 0. */
int corio_close(int fd);

/* Sets O_NONBLOCK (and FD_CLOEXEC) on fd. */
int corio_fd_nonblock(int fd);

#ifdef __cplusplus
}
#endif

/* The rest of the API, one header per area. */
#include "corio/net.h"    /* addresses, TCP, UDP, Unix sockets */
#include "corio/stream.h" /* buffered streams */
#include "corio/sync.h"   /* channels, mutexes, semaphores, events, wait groups */
#include "corio/pool.h"   /* blocking pool, name resolution, signals */
#include "corio/mt.h"     /* many loops: threads, cross-loop messages, prefork */
#include "corio/stats.h"  /* per-layer metrics */

#endif /* CORIO_H */
