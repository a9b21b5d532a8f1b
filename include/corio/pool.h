/* corio: blocking pool, name resolution, signals.  Included by corio.h; do
 * not include directly. */
#ifndef CORIO_POOL_H
#define CORIO_POOL_H

#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Blocking pool ----------------------------------------------------------
 * Each loop has its own pool of worker threads for work that would block
 * the loop: file I/O, CPU-heavy work, getaddrinfo.  Workers start on demand,
 * up to the pool's size, and are joined by corio_pool_stop() or
 * corio_loop_free().  Finished jobs come back to the loop as one batch per
 * wakeup.  The function a worker runs must not call corio: it is on
 * another thread.  Workers block every signal. */

/* Sets the most worker threads the loop's pool may run: 1 to 1024; the
 * default is $CORIO_POOL_SIZE or 4.  Threads already running beyond a
 * lowered size stay until corio_pool_stop().  0, -EINVAL, -ENOMEM,
 * -CORIO_EWRONGLOOP. */
int corio_pool_set_size(corio_loop *loop, unsigned threads);

/* Joins the pool's workers (they start again on demand).  0, -EBUSY (and
 * nothing stopped) while jobs are queued or running, -CORIO_EWRONGLOOP.
 * Never waits for a job. */
int corio_pool_stop(corio_loop *loop);

/* Runs fn(arg) on a worker of the current loop's pool and parks until it
 * returns; *result (may be NULL) gets fn's result.  0, -ETIMEDOUT,
 * -ECANCELED, -EAGAIN (CORIO_NOWAIT, or no thread could start), -ENOMEM,
 * -CORIO_ENOTCO.  On any error the caller gives up arg: discard (may be
 * NULL) runs exactly once on the loop's thread, as discard(arg, NULL) before
 * the call returns if fn never started, or as discard(arg, fn's result) when
 * a fn the caller stopped waiting for returns (by corio_loop_free() at the
 * latest).  A fn whose result was handed back before the caller resumed
 * counts as done: 0 and the result, even if the deadline passed or the
 * caller was cancelled meanwhile (the work is not thrown away).  The
 * coroutine's stack is never touched after it returns. */
int corio_pool_run(void *(*fn)(void *arg), void *arg, void (*discard)(void *arg, void *result),
                   void **result, int64_t deadline);

/* The callback level of the pool (what an asyncio executor needs): a job
 * the caller owns and embeds, like uv_work_t.  Fields are private unless
 * marked. */
typedef struct corio_work corio_work;
typedef void (*corio_work_done_fn)(corio_loop *loop, corio_work *w, int status);
struct corio_work {
    void *(*fn)(void *arg);  /* public: runs on a worker */
    corio_work_done_fn done; /* public: runs on the loop's thread afterwards */
    void *arg;               /* public */
    void *result;            /* public, read-only: fn's result, once done */
    corio_list link;
    struct corio_pool *pool;
    uint8_t state;
    uint8_t cancelled;
    uint8_t ref;
};

void corio_work_init(corio_work *w, void *(*fn)(void *arg), corio_work_done_fn done, void *arg);

/* Queues w: a worker runs w->fn(w->arg) into w->result, then
 * w->done(loop, w, 0) runs on the loop's thread.  The loop stays alive
 * until then.  0, -EBUSY (w is already queued), -EAGAIN (no thread could
 * start), -ENOMEM, -CORIO_EWRONGLOOP.  w must stay valid until done. */
int corio_work_submit(corio_loop *loop, corio_work *w);

/* Takes back a w no worker has started: w->done(loop, w, -ECANCELED) then
 * runs in the loop's next pass, fn never.  0, -EBUSY if a worker has it or
 * it is finished, -EINVAL if it was never submitted, -CORIO_EWRONGLOOP. */
int corio_work_cancel(corio_work *w);

/* ---- Name resolution ------------------------------------------------------ */

/* Resolves host and port with getaddrinfo on the blocking pool; parks.
 * Fills out[0..max) in getaddrinfo's order and returns how many (>= 1),
 * or -CORIO_ENONAME, -ETIMEDOUT, -ECANCELED, -ENOMEM.  family and
 * socktype as in getaddrinfo hints (AF_UNSPEC, SOCK_STREAM, ...). */
int corio_resolve(const char *host, const char *port, int family, int socktype,
                  struct sockaddr_storage *out, int max, int64_t deadline);

/* ---- Signals ----------------------------------------------------------------
 * A signal a coroutine has waited for is routed to its loop until
 * corio_loop_free(): on Linux the loop's thread blocks it and reads it from
 * a signalfd, elsewhere a handler writes it to a self-pipe.  Block the
 * signals in every thread (start threads after the first wait, or block
 * them yourself first), or a thread that does not block one may take it
 * with its default action; pool workers block all signals.  Loop freed,
 * the signals it blocked are unblocked and those it read but nobody waited
 * for are dropped. */

/* Parks until one of the n signals (SIGINT, SIGTERM, ...) arrives and
 * returns its number.  Each signal goes to one waiter (the longest waiting
 * that asked for it); one that arrives while no waiter wants it is kept and
 * returned by the next wait that asks for it, even with CORIO_NOWAIT.
 * -ETIMEDOUT, -ECANCELED, -EAGAIN, -EINVAL (n is 0, a number is not a
 * signal, or SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL), -EBUSY
 * (self-pipe: another loop has the signal), -ENOMEM, -CORIO_ENOTCO. */
int corio_signal_wait(const int *signals, size_t n, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif
