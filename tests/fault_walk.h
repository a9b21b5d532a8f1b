/* The fault walk's workloads (tests/test_fault.c runs them, with one call
 * failed at a time; tests/test_fault_areas.c has those of the areas above
 * the core).  A workload creates a loop with fault_new_loop(), drives a
 * set of concurrent "exchanges" on it, and runs it to the end with
 * fault_run_loop().  Each exchange either completes with the right bytes
 * or ends with an error, reported with fault_exchange_failed(); an error
 * any caller saw is reported with fault_saw().  Setup calls that fail are
 * retried (fault_spawn, fault_new_loop): the failure must have had no
 * effect, and the fault fires once. */
#ifndef CORIO_FAULT_WALK_H
#define CORIO_FAULT_WALK_H

#include <stdbool.h>
#include <stdint.h>

#include "test.h"

#define FAULT_MAX_SEEN 16

struct wctx {
    const char *backend; /* NULL: the runner's (CORIO_BACKEND) */
    corio_loop *loop;
    int64_t io_ns;       /* each exchange's time limit */
    int inject;          /* the error injected (0: none), for checks that depend on it */
    bool fired;          /* the fault under test happened */
    int exchanges;       /* started */
    int failed;          /* ended with an error */
    int fail_err[FAULT_MAX_SEEN]; /* the error each failed exchange ended with */
    int wrong;           /* delivered wrong bytes: never acceptable */
    int seen[FAULT_MAX_SEEN]; /* distinct errors callers saw */
    int nseen;
    /* Callbacks that may outlive the coroutine that queued them. */
    corio_callback posted, soon;
    int posted_ran, soon_ran;
    unsigned serial;     /* for unique names (Unix socket paths) */
};

struct fault_workload {
    const char *name;
    void (*run)(struct wctx *w);
};

/* A caller saw err: it must be an error with a name. */
void fault_saw(struct wctx *w, int err);
/* An exchange ended with err (also counts as seen). */
void fault_exchange_failed(struct wctx *w, int err);
/* One exchange more is under way. */
void fault_exchange_begin(struct wctx *w);
/* Creates w->loop, retrying a failure. */
void fault_new_loop(struct wctx *w);
/* Runs w->loop to the end; an error ends a run early and it runs again. */
void fault_run_loop(struct wctx *w);
/* corio_spawn on w->loop, retrying a failure; 0 or the last error. */
int fault_spawn(struct wctx *w, corio_co **co, corio_fn fn, void *arg);
/* The byte at offset i of stream `seed`. */
unsigned char fault_pattern(int seed, size_t i);

/* The areas' workloads (tests/test_fault_areas.c). */
extern const struct fault_workload fault_area_workloads[];
extern const unsigned fault_area_nworkloads;

#endif
