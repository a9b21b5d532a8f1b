/* Name resolution: getaddrinfo on the blocking pool.
 *
 * getaddrinfo may read files and wait on DNS servers for seconds, so it
 * runs on a worker.  The job owns copies of host and port (the caller's
 * strings may live on a stack that is gone when a worker reads them), and
 * the results are copied into the caller's array on the loop's thread, only
 * while the caller still waits.  A caller that gives up leaves the job to
 * the pool, which frees it and its addrinfo list when the worker is done.
 *
 * Numeric hosts with numeric ports never reach the pool: getaddrinfo with
 * AI_NUMERICHOST | AI_NUMERICSERV does no I/O, so it runs inline. */
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>

#include "internal.h"

struct gai_job {
    struct addrinfo hints;
    struct addrinfo *res;
    int rc;       /* getaddrinfo's result */
    int err;      /* -errno for EAI_SYSTEM, or an injected fault */
    char *host;   /* NULL, or into strs */
    char *port;
    char strs[];
};

static void *gai_run(void *arg)
{
    struct gai_job *j = arg;
    if (j->err) /* a fault injected on the loop's thread */
        return j;
    j->rc = getaddrinfo(j->host, j->port, &j->hints, &j->res);
    if (j->rc == EAI_SYSTEM)
        j->err = errno ? -errno : -EIO;
    return j;
}

static void gai_discard(void *arg, void *result)
{
    struct gai_job *j = arg;
    (void)result;
    if (j->res)
        freeaddrinfo(j->res);
    corio__free(j);
}

static int gai_result(int rc, int err)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return err;
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS:
        return -EINVAL;
    default: /* EAI_NONAME, EAI_AGAIN, EAI_FAIL, EAI_SERVICE, EAI_NODATA, ... */
        return -CORIO_ENONAME;
    }
}

/* Copies the distinct addresses of res, in order (with socktype 0,
 * getaddrinfo lists each address once per socket type). */
static int copy_out(const struct addrinfo *res, struct sockaddr_storage *out, int max)
{
    int n = 0;
    for (const struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (!ai->ai_addr || ai->ai_addrlen > sizeof *out)
            continue;
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = memcmp(&out[i], &ss, sizeof ss) == 0;
        if (!dup)
            out[n++] = ss;
    }
    return n ? n : -CORIO_ENONAME;
}

static bool is_numeric_port(const char *port)
{
    if (!port)
        return true;
    if (!*port)
        return false;
    for (const char *c = port; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

static bool is_numeric_host(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];
    return !host || inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static int resolve_inline(const struct addrinfo *hints, const char *host, const char *port,
                          struct sockaddr_storage *out, int max)
{
    SITE(s_gai, "getaddrinfo");
    FAULT(&s_gai);
    struct addrinfo h = *hints, *res = NULL;
    h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &h, &res);
    int r = gai_result(rc, rc == EAI_SYSTEM ? -errno : 0);
    if (r == 0)
        r = copy_out(res, out, max);
    if (res)
        freeaddrinfo(res);
    return r;
}

static struct gai_job *job_new(const struct addrinfo *hints, const char *host, const char *port)
{
    SITE(s_malloc, "malloc");
    size_t hl = host ? strlen(host) + 1 : 0, pl = port ? strlen(port) + 1 : 0;
    struct gai_job *j = corio__malloc(&s_malloc, sizeof *j + hl + pl);
    if (!j)
        return NULL;
    memset(j, 0, sizeof *j);
    j->hints = *hints;
    j->host = host ? memcpy(j->strs, host, hl) : NULL;
    j->port = port ? memcpy(j->strs + hl, port, pl) : NULL;
    return j;
}

int corio_resolve(const char *host, const char *port, int family, int socktype,
                  struct sockaddr_storage *out, int max, int64_t deadline)
{
    SITE(s_gai, "getaddrinfo");
    if (!out || max < 1 || (!host && !port))
        return -EINVAL;
    struct addrinfo hints = {.ai_family = family, .ai_socktype = socktype};
    if (is_numeric_host(host) && is_numeric_port(port))
        return resolve_inline(&hints, host, port, out, max);

    struct gai_job *j = job_new(&hints, host, port);
    if (!j)
        return -ENOMEM;
    /* The worker must not consult the fault plan (it is not thread-safe):
     * decide here whether this getaddrinfo fails. */
    if (corio_unlikely(corio__fault_on)) {
        int f = corio__fault(&s_gai);
        j->err = f < 0 ? f : 0;
        j->rc = f < 0 ? EAI_SYSTEM : 0;
    }
    int r = corio_pool_run(gai_run, j, gai_discard, NULL, deadline);
    if (r < 0)
        return r; /* the pool has j: gai_discard frees it */
    r = gai_result(j->rc, j->err);
    if (r == 0)
        r = copy_out(j->res, out, max);
    gai_discard(j, NULL);
    return r;
}
