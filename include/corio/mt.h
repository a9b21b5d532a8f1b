/* corio: many loops, many processes, and idle connections without stacks.
 * Included by corio.h; do not include directly.
 *
 *  - Parking: a connection waiting for its next request holds no coroutine
 *    and no stack, only its fd slot and a 32-byte record.  A handler parks
 *    the fd and returns; when bytes arrive (or the peer hangs up, the
 *    deadline passes, or the fd is closed) the loop runs a function in a
 *    fresh coroutine.
 *  - Cross-loop calls: a coroutine runs a function on another loop and
 *    parks until it returns.
 *  - Groups of loops: N loops on N threads, optional CPU pinning, graceful
 *    shutdown of all of them.
 *  - Servers: a listener per loop (SO_REUSEPORT), a connection limit per
 *    loop, a bounded number of accepts per wakeup.
 *  - Prefork: a supervisor process forks N workers, forwards SIGINT and
 *    SIGTERM, restarts a worker that crashes.  This is how a server passes
 *    a per-process descriptor cap. */
#ifndef CORIO_MT_H
#define CORIO_MT_H

/* ---- Parking idle connections ---------------------------------------------- */

/* What runs when a parked fd wakes, in a coroutine on the fd's loop (a
 * worker that may run several woken fns one after another on one stack).
 * reason > 0: the CORIO_READABLE / CORIO_RDHUP / CORIO_HUP / CORIO_ERROR bits
 * that woke it; < 0: -ETIMEDOUT (the deadline passed), -CORIO_ECLOSED (the fd
 * was closed through corio_close(): do not close it again), -ECANCELED (the
 * loop is shutting down: corio_park_shutdown()), or -ENOMEM (no coroutine
 * could be started: fn runs on the loop's own stack and must release the
 * connection without blocking).  The fd belongs to fn again. */
typedef void (*corio_park_fn)(int fd, void *data, int reason);

/* Parks fd on loop until it is readable, the peer hangs up, deadline passes
 * or the fd is closed; then fn(fd, data, reason) runs.  Never parks the
 * caller: return after it and leave fd alone.  Data already buffered wakes
 * it at once.  Deadlines are rounded up by at most CORIO_PARK_GRAIN ns.
 * 0, -ETIMEDOUT (deadline passed; nothing parked), -EEXIST (already parked),
 * -EBADF, -EPERM (fd cannot be polled), -ENOMEM, -ECANCELED (the loop is
 * shutting down), -CORIO_EWRONGLOOP.  Costs 32 bytes while parked, beside
 * the fd's 32-byte slot: no coroutine, no stack, no timer. */
int corio_park(corio_loop *loop, int fd, corio_park_fn fn, void *data, int64_t deadline);

/* Takes a parked fd back: fn will not run.  *data (may be NULL) gets the
 * data it was parked with.  0 or -ENOENT (not parked, or fn already
 * started).  Never parks. */
int corio_unpark(corio_loop *loop, int fd, void **data);

/* Wakes every parked fd of loop with -ECANCELED and makes later
 * corio_park() calls on loop fail with -ECANCELED, so that handlers close
 * idle connections instead of parking them.  Returns how many it woke. */
size_t corio_park_shutdown(corio_loop *loop);

#define CORIO_PARK_GRAIN (1LL << 25) /* ns (33.6 ms): park deadline precision */

typedef struct corio_park_options {
    unsigned max_active; /* coroutines running woken fns at most.  One runs
                          * them in turn; another starts only when every
                          * running fn is blocked.  Beyond it, woken fds
                          * wait without a stack.  0: 8192 */
    size_t stack_size;   /* stacks of those coroutines; 0: the loop's default */
} corio_park_options;

/* Sets loop's parking options.  0, -EINVAL, -ENOMEM, -CORIO_EWRONGLOOP. */
int corio_park_configure(corio_loop *loop, const corio_park_options *o);

typedef struct corio_park_stats {
    size_t parked;      /* waiting for their fd (no coroutine, no stack) */
    size_t queued;      /* woken, waiting for a worker coroutine */
    size_t active;      /* coroutines running woken fns */
    size_t record_bytes; /* memory held for park records (slab) */
    uint64_t woken;     /* fns started, all reasons */
    uint64_t timeouts;  /* of which -ETIMEDOUT */
} corio_park_stats;

/* Counts for loop (zeros before its first park). */
void corio_park_stats_get(const corio_loop *loop, corio_park_stats *out);

/* ---- Cross-loop calls ---------------------------------------------------- */

/* Runs fn(arg) in a new coroutine on target (a loop on another thread, or
 * this one) and parks until it returns; *result (may be NULL) gets its
 * result.  Wakeups are coalesced: one eventfd write per batch of messages.
 * 0, -ENOMEM (fn did not run), -ETIMEDOUT or -ECANCELED (fn may still run
 * on target; its result is dropped), -CORIO_ENOTCO.  target must be
 * running (or run later) until the call returns. */
int corio_loop_call(corio_loop *target, corio_fn fn, void *arg, void **result, int64_t deadline);

/* ---- Groups of loops on threads ----------------------------------------- */

typedef struct corio_mt corio_mt;

typedef struct corio_mt_options {
    unsigned threads;         /* loops, one per thread; 0: the CPUs we may use */
    bool pin;                 /* pin loop i's thread to the i-th allowed CPU */
    corio_loop_options loop;  /* options of every loop */
    /* Runs on each loop's thread, on the loop's own stack (so
     * corio_loop_current() is loop) before it serves: start servers, spawn
     * coroutines.  The loops' inits run one after another in index order,
     * so loop 0 may bind port 0 and the others reuse the port it got.  A
     * negative result aborts corio_mt_start(). */
    int (*init)(corio_loop *loop, unsigned index, void *data);
    /* Runs on each loop's thread when shutdown begins (may be NULL): stop
     * accepting (corio_server_stop).  corio_park_shutdown() follows it. */
    void (*shutdown)(corio_loop *loop, unsigned index, void *data);
    void *data;
} corio_mt_options;

/* Starts the loops and their threads, each running init, then serving
 * until corio_mt_shutdown().  From a thread without a loop; never parks.
 * 0, -EINVAL, -ENOMEM, -EAGAIN (threads), or init's or a loop's error
 * (everything started is then stopped and freed). */
int corio_mt_start(corio_mt **mt, const corio_mt_options *o);

unsigned corio_mt_threads(const corio_mt *mt);
/* Loop i, for corio_loop_post() or corio_loop_call(); valid until join.
 * Threads outside the group may post to it only before the shutdown. */
corio_loop *corio_mt_loop(const corio_mt *mt, unsigned i);

/* Begins a graceful shutdown of every loop: runs the shutdown hook, wakes
 * parked fds with -ECANCELED, lets work in flight finish; at deadline the
 * coroutines still running are cancelled (their blocking calls return
 * -ECANCELED).  Returns at once; any thread, repeated calls harmless. */
int corio_mt_shutdown(corio_mt *mt, int64_t deadline);

/* Waits until every loop has finished after corio_mt_shutdown(), then
 * frees the group.  Blocks the calling thread (not a loop's thread).
 * 0, or the first error a loop returned. */
int corio_mt_join(corio_mt *mt);

/* ---- Servers: an accept loop per loop ----------------------------------- */

typedef struct corio_server corio_server;

/* Serves one accepted connection in its own coroutine.  When done with fd,
 * close it with corio_server_close() (directly or later, after parking). */
typedef void (*corio_server_fn)(corio_server *srv, int fd, void *data);

typedef struct corio_server_options {
    /* Where to accept (corio_net_listen() with .reuseport for one listener
     * per loop); the server owns it from now and closes it when stopped.
     * Running out of descriptors is handled there (the reserve fd). */
    corio_listener *listener;
    unsigned max_conns;    /* open connections at most (0: no limit): at it
                            * accepting pauses, and resumes below 7/8 of it */
    unsigned accept_batch; /* accepts in a row before other work runs; 0: 64 */
    corio_server_fn handler;
    void *data;
    /* > 0: park each new connection until its first bytes, so a connection
     * that has sent nothing holds no stack; closed if nothing comes within
     * this many ns.  0: the handler starts at once. */
    int64_t first_byte_timeout;
    size_t stack_size; /* handlers' stacks; 0: the loop's default */
} corio_server_options;

/* Starts accepting on loop.  0, -EINVAL, -ENOMEM, -CORIO_EWRONGLOOP; on
 * failure the caller still owns the listening fd. */
int corio_server_start(corio_loop *loop, corio_server **srv, const corio_server_options *o);

/* Stops accepting and closes the listener; connections live on.  The
 * server frees itself when its last connection is closed.  Never parks. */
void corio_server_stop(corio_server *srv);

/* Closes a connection of srv (corio_close) and counts it out, which may
 * resume accepting.  Returns close's result. */
int corio_server_close(corio_server *srv, int fd);

/* Forgets a connection of srv without closing it (the fd is handed on). */
void corio_server_release(corio_server *srv);

typedef struct corio_server_stats {
    size_t conns;           /* open now */
    uint64_t accepted;
    uint64_t paused;        /* times accepting paused at max_conns */
    uint64_t accept_errors; /* accept failures other than EAGAIN */
    uint64_t emfile;        /* connections refused for lack of descriptors */
} corio_server_stats;

void corio_server_stats_get(const corio_server *srv, corio_server_stats *out);

/* ---- Prefork: a supervisor and worker processes ------------------------- */

typedef struct corio_prefork_options {
    unsigned workers; /* 0: the CPUs we may use */
    /* Runs in each worker process; its result is the worker's exit status.
     * SIGINT and SIGTERM are delivered to the worker as usual (default
     * action: terminate), the signal mask is cleared. */
    int (*worker)(unsigned index, void *data);
    void *data;
    int64_t shutdown_timeout; /* ns from SIGINT/SIGTERM to SIGKILL; 0: 10 s */
    int64_t backoff_min;      /* first restart delay after a crash; 0: 100 ms */
    int64_t backoff_max;      /* doubling up to this; 0: 10 s */
    bool quiet;               /* no report lines on stderr */
} corio_prefork_options;

/* Runs the supervisor in the calling process (call it before creating
 * threads or loops): forks the workers, restarts one that exits or dies
 * unasked (after a backoff that doubles while it keeps crashing), and on
 * SIGINT or SIGTERM forwards the signal and waits for all of them.
 * Blocks; not in a coroutine.  Returns 0 when every worker ended cleanly,
 * 1 if one did not, or -errno if the supervisor could not run. */
int corio_prefork_run(const corio_prefork_options *o);

#endif
