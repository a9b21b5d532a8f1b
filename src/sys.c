/* The allocator hook, the fault-injection seam behind sys.h, assertions
 * and error names. */
#include <stdio.h>
#include <string.h>

#include "fault.h"
#include "internal.h"

/* ---- Allocation ---- */

static corio_allocator alloc = {malloc, realloc, free};

void corio_set_allocator(const corio_allocator *a)
{
    alloc.malloc = a && a->malloc ? a->malloc : malloc;
    alloc.realloc = a && a->realloc ? a->realloc : realloc;
    alloc.free = a && a->free ? a->free : free;
}

void *corio__malloc(struct corio__site *s, size_t n)
{
    if (corio_unlikely(corio__fault_on) && corio__fault(s) < 0)
        return NULL;
    return alloc.malloc(n);
}

void *corio__calloc(struct corio__site *s, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = corio__malloc(s, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *corio__realloc(struct corio__site *s, void *p, size_t n)
{
    if (corio_unlikely(corio__fault_on) && corio__fault(s) < 0)
        return NULL;
    return alloc.realloc(p, n);
}

void corio__free(void *p)
{
    if (p)
        alloc.free(p);
}

/* ---- Fault injection ---- */

volatile int corio__fault_on;

static struct {
    const struct corio__site *site; /* NULL: any site named `name` */
    const char *name;               /* NULL: any name */
    unsigned nth;                   /* fail the nth matching call (1-based) */
    unsigned seen;
    int err;                        /* -errno or CORIO__FAULT_SHORT */
    bool armed, fired, record;
} plan;

extern struct corio__site __start_corio_sites[], __stop_corio_sites[];

size_t corio__fault_sites(struct corio__site **first)
{
    *first = __start_corio_sites;
    return (size_t)(__stop_corio_sites - __start_corio_sites);
}

void corio__fault_arm(const struct corio__site *site, const char *name, unsigned nth, int err)
{
    plan.site = site;
    plan.name = name;
    plan.nth = nth ? nth : 1;
    plan.seen = 0;
    plan.err = err;
    plan.armed = true;
    plan.fired = false;
    corio__fault_on = 1;
}

void corio__fault_record(bool on)
{
    plan.record = on;
    corio__fault_on = on || plan.armed;
}

void corio__fault_disarm(void)
{
    plan.armed = false;
    corio__fault_on = plan.record;
}

bool corio__fault_fired(void)
{
    return plan.fired;
}

int corio__fault(struct corio__site *s)
{
    if (plan.record)
        s->calls++;
    if (!plan.armed || plan.fired)
        return 0;
    if (plan.site && plan.site != s)
        return 0;
    if (plan.name && strcmp(plan.name, s->name) != 0)
        return 0;
    if (++plan.seen < plan.nth)
        return 0;
    plan.fired = true;
    return plan.err;
}

/* ---- Assertions and errors ---- */

_Noreturn void corio__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "corio: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

const char *corio_strerror(int err)
{
    static const char *const own[] = {
        [CORIO_ECLOSED - CORIO_EBASE] = "fd closed while waiting on it",
        [CORIO_ENOTCO - CORIO_EBASE] = "blocking call outside a coroutine",
        [CORIO_EWRONGLOOP - CORIO_EBASE] = "object belongs to another loop's thread",
        [CORIO_EEOF - CORIO_EBASE] = "end of stream before the requested bytes",
        [CORIO_ETOOLONG - CORIO_EBASE] = "data over the limit",
        [CORIO_EADDR - CORIO_EBASE] = "malformed address",
        [CORIO_ENONAME - CORIO_EBASE] = "name does not resolve",
    };
    if (err < 0)
        err = -err;
    if (err == 0)
        return "success";
    if (err > CORIO_EBASE && err <= CORIO_ELAST)
        return own[err - CORIO_EBASE];
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *d = strerrordesc_np(err);
    return d ? d : "unknown error";
#else
    return strerror(err);
#endif
}
