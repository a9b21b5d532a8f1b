/* Fault injection behind the syscall seam (sys.h), for tests.
 *
 * A plan is a handful of rules; each names a site (or every site with a
 * given syscall name) and the calls it fails: the nth matching call, and
 * the `times - 1` after it (times 0: every call from the nth on).  The
 * first rule that claims a call decides it.  One rule is the usual case;
 * a second one lets a test fail a call on a path that only exists once
 * another call has failed (epoll_wait runs only after epoll_pwait2 said
 * ENOSYS).
 *
 * The plan and the call counters live in one shared anonymous mapping, so
 * that processes forked after arming (prefork's workers) count their calls
 * in the same place and a rule fires once across all of them.  A process
 * that wants a plan of its own (a test running cases in parallel child
 * processes) calls corio__fault_isolate() first.  Arming and disarming are
 * for a test's main thread while no loop runs; the counters are atomic,
 * so loops on any thread or process may cross armed sites. */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "fault.h"
#include "internal.h"

#define MAX_RULES 4

struct rule {
    const struct corio__site *site; /* NULL: any site named `name` */
    const char *name;               /* NULL: any name */
    unsigned nth;                   /* first call to fail (1-based) */
    unsigned times;                 /* calls failed from nth on; 0: all */
    int err;                        /* -errno or CORIO__FAULT_SHORT */
    atomic_uint seen;               /* matching calls so far */
    atomic_uint fired;              /* calls this rule failed */
};

struct plan {
    struct rule rules[MAX_RULES];
    atomic_int nrules;
    atomic_bool record;
    atomic_bool paused;             /* rules neither count nor fire */
    atomic_uint calls[];            /* per site, in section order */
};

volatile int corio__fault_on;

static struct plan *plan; /* shared with the processes forked from here */
static size_t plan_size;

extern struct corio__site __start_corio_sites[], __stop_corio_sites[];

size_t corio__fault_sites(struct corio__site **first)
{
    *first = __start_corio_sites;
    return (size_t)(__stop_corio_sites - __start_corio_sites);
}

/* The mapping is made on first use, by the test's thread. */
static struct plan *get_plan(void)
{
    if (plan)
        return plan;
    struct corio__site *s;
    size_t n = corio__fault_sites(&s);
    plan_size = sizeof *plan + n * sizeof plan->calls[0];
    void *p = mmap(NULL, plan_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CORIO_ASSERT(p != MAP_FAILED);
    memset(p, 0, plan_size);
    return plan = p;
}

void corio__fault_isolate(void)
{
    if (plan)
        munmap(plan, plan_size);
    plan = NULL;
    corio__fault_on = 0;
}

static void update_on(struct plan *p)
{
    corio__fault_on = atomic_load(&p->record) || atomic_load(&p->nrules) > 0;
}

int corio__fault_add(const struct corio__site *site, const char *name, unsigned nth,
                     unsigned times, int err)
{
    struct plan *p = get_plan();
    int i = atomic_load(&p->nrules);
    if (i == MAX_RULES)
        return -ENOSPC;
    struct rule *r = &p->rules[i];
    r->site = site;
    r->name = name;
    r->nth = nth ? nth : 1;
    r->times = times;
    r->err = err;
    atomic_store(&r->seen, 0);
    atomic_store(&r->fired, 0);
    atomic_store(&p->nrules, i + 1);
    update_on(p);
    return i;
}

void corio__fault_arm(const struct corio__site *site, const char *name, unsigned nth, int err)
{
    corio__fault_disarm();
    (void)corio__fault_add(site, name, nth, 1, err);
}

void corio__fault_disarm(void)
{
    struct plan *p = get_plan();
    atomic_store(&p->nrules, 0);
    atomic_store(&p->paused, false);
    update_on(p);
}

unsigned corio__fault_fires(int rule)
{
    struct plan *p = get_plan();
    if (rule < 0 || rule >= atomic_load(&p->nrules))
        return 0;
    return atomic_load(&p->rules[rule].fired);
}

bool corio__fault_fired(void)
{
    return corio__fault_fires(0) > 0;
}

void corio__fault_pause(bool on)
{
    atomic_store(&get_plan()->paused, on);
}

void corio__fault_record(bool on)
{
    struct plan *p = get_plan();
    atomic_store(&p->record, on);
    update_on(p);
    if (on)
        return;
    struct corio__site *s;
    size_t n = corio__fault_sites(&s);
    for (size_t i = 0; i < n; i++)
        s[i].calls = atomic_load(&p->calls[i]);
}

unsigned corio__fault_calls(const struct corio__site *s)
{
    return atomic_load(&get_plan()->calls[s - __start_corio_sites]);
}

void corio__fault_reset_counts(void)
{
    struct plan *p = get_plan();
    struct corio__site *s;
    size_t n = corio__fault_sites(&s);
    for (size_t i = 0; i < n; i++) {
        atomic_store(&p->calls[i], 0);
        s[i].calls = 0;
    }
}

static bool matches(const struct rule *r, const struct corio__site *s)
{
    if (r->site && r->site != s)
        return false;
    return !r->name || strcmp(r->name, s->name) == 0;
}

int corio__fault(struct corio__site *s)
{
    struct plan *p = plan;
    if (!p) /* only reachable through a stale corio__fault_on */
        return 0;
    if (atomic_load_explicit(&p->record, memory_order_relaxed)) {
        /* site->calls counts this process's calls, live; the shared
         * counter those of its forked children too. */
        __atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED);
        atomic_fetch_add_explicit(&p->calls[s - __start_corio_sites], 1, memory_order_relaxed);
    }
    int n = atomic_load(&p->paused) ? 0 : atomic_load(&p->nrules);
    for (int i = 0; i < n; i++) {
        struct rule *r = &p->rules[i];
        if (!matches(r, s))
            continue;
        unsigned k = atomic_fetch_add(&r->seen, 1) + 1;
        if (k < r->nth || (r->times && k - r->nth >= r->times))
            continue;
        atomic_fetch_add(&r->fired, 1);
        return r->err;
    }
    return 0;
}
