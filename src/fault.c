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
 * The plan is process-wide, like the sites it points at: arming and
 * disarming are for a test's main thread while no loop runs, but the
 * counters are atomic, so loops on other threads may cross armed sites
 * and each call is still counted exactly once. */
#include <stdatomic.h>
#include <string.h>

#include "fault.h"

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

volatile int corio__fault_on;

static struct {
    struct rule rules[MAX_RULES];
    int nrules;
    bool record;
} plan;

extern struct corio__site __start_corio_sites[], __stop_corio_sites[];

size_t corio__fault_sites(struct corio__site **first)
{
    *first = __start_corio_sites;
    return (size_t)(__stop_corio_sites - __start_corio_sites);
}

static void update_on(void)
{
    corio__fault_on = plan.record || plan.nrules > 0;
}

int corio__fault_add(const struct corio__site *site, const char *name, unsigned nth,
                     unsigned times, int err)
{
    if (plan.nrules == MAX_RULES)
        return -ENOSPC;
    struct rule *r = &plan.rules[plan.nrules];
    r->site = site;
    r->name = name;
    r->nth = nth ? nth : 1;
    r->times = times;
    r->err = err;
    atomic_store(&r->seen, 0);
    atomic_store(&r->fired, 0);
    plan.nrules++;
    update_on();
    return plan.nrules - 1;
}

void corio__fault_arm(const struct corio__site *site, const char *name, unsigned nth, int err)
{
    corio__fault_disarm();
    (void)corio__fault_add(site, name, nth, 1, err);
}

void corio__fault_disarm(void)
{
    plan.nrules = 0;
    update_on();
}

unsigned corio__fault_fires(int rule)
{
    if (rule < 0 || rule >= plan.nrules)
        return 0;
    return atomic_load(&plan.rules[rule].fired);
}

bool corio__fault_fired(void)
{
    return corio__fault_fires(0) > 0;
}

void corio__fault_record(bool on)
{
    plan.record = on;
    update_on();
}

void corio__fault_reset_counts(void)
{
    struct corio__site *s;
    size_t n = corio__fault_sites(&s);
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(&s[i].calls, 0, __ATOMIC_RELAXED);
}

static bool matches(const struct rule *r, const struct corio__site *s)
{
    if (r->site && r->site != s)
        return false;
    return !r->name || strcmp(r->name, s->name) == 0;
}

int corio__fault(struct corio__site *s)
{
    if (plan.record)
        __atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < plan.nrules; i++) {
        struct rule *r = &plan.rules[i];
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
