/* The allocator hook, assertions and error names.  The fault-injection
 * seam behind sys.h is in fault.c. */
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
