/* Address strings: one parser for every call that takes an address.
 *
 *   host:port  [v6]:port  [v6%scope]:port  :port  unix:/path  unix:@abstract
 *
 * The parser never allocates and never makes a syscall: it splits the
 * string, checks every part, and leaves host names to corio_resolve() on
 * the blocking pool.  Everything it rejects gets -CORIO_EADDR; the
 * fuzz target (tests/fuzz/fuzz_addr.c) holds it to parse(format(a)) == a. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"

#define UNIX_PREFIX "unix:"
#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* A decimal port, 0 to 65535: digits only, at most five of them. */
static int parse_port(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5)
        return -CORIO_EADDR;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -CORIO_EADDR;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v > 65535 ? -CORIO_EADDR : (int)v;
}

/* RFC 1123 host names (and '_', which real DNS zones contain): labels of
 * 1..63 letters, digits, '-' and '_', joined by dots, 253 bytes at most. */
static bool valid_hostname(const char *h, size_t n)
{
    if (n == 0 || n > 254 || (n == 254 && h[253] != '.'))
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return true;
}

static int parse_unix(corio_addr *a, const char *path)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
    size_t n = strlen(path);
    bool abstract = path[0] == '@';
    if (n == 0 || (abstract && n == 1))
        return -CORIO_EADDR;
    /* A path needs its NUL inside sun_path; an abstract name ('@' becomes
     * the leading NUL) fills it exactly. */
    if (abstract ? n > UNIX_PATH_MAX : n >= UNIX_PATH_MAX)
        return -ENAMETOOLONG;
    memset(a, 0, sizeof *a);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    if (abstract)
        un->sun_path[0] = '\0';
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + !abstract);
    return 0;
}

/* "[v6]" or "[v6%scope]": the part between the brackets. */
static int parse_v6(corio_addr *a, const char *h, size_t n, int port)
{
    char buf[INET6_ADDRSTRLEN];
    uint32_t scope = 0;
    const char *pct = memchr(h, '%', n);
    if (pct) {
        size_t sn = n - (size_t)(pct - h) - 1;
        if (sn == 0 || sn > 10)
            return -CORIO_EADDR;
        uint64_t v = 0;
        for (size_t i = 0; i < sn; i++) {
            if (pct[1 + i] < '0' || pct[1 + i] > '9')
                return -CORIO_EADDR; /* interface names need a syscall: use the index */
            v = v * 10 + (uint64_t)(pct[1 + i] - '0');
        }
        if (v > UINT32_MAX)
            return -CORIO_EADDR;
        scope = (uint32_t)v;
        n = (size_t)(pct - h);
    }
    if (n == 0 || n >= sizeof buf)
        return -CORIO_EADDR;
    memcpy(buf, h, n);
    buf[n] = '\0';
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
    struct in6_addr ia;
    if (inet_pton(AF_INET6, buf, &ia) != 1)
        return -CORIO_EADDR;
    memset(a, 0, sizeof *a);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    in6->sin6_addr = ia;
    in6->sin6_scope_id = scope;
    a->len = sizeof *in6;
    return 0;
}

/* Splits "host:port" / "[host]:port" without copying: *host and *hostlen
 * name the host (brackets removed), *port points at the port digits.
 * Returns 1 for a bracketed host, 0 otherwise, or -CORIO_EADDR. */
int corio__addr_split(const char *s, const char **host, size_t *hostlen, const char **port);
int corio__addr_split(const char *s, const char **host, size_t *hostlen, const char **port)
{
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -CORIO_EADDR;
        *host = s + 1;
        *hostlen = (size_t)(close - s - 1);
        *port = close + 2;
        return 1;
    }
    const char *colon = strchr(s, ':');
    if (!colon || strchr(colon + 1, ':'))
        return -CORIO_EADDR; /* no port, or an IPv6 address without brackets */
    if (memchr(s, '[', (size_t)(colon - s)) || memchr(s, ']', (size_t)(colon - s)))
        return -CORIO_EADDR;
    *host = s;
    *hostlen = (size_t)(colon - s);
    *port = colon + 1;
    return 0;
}

int corio_addr_parse(corio_addr *a, const char *str)
{
    if (!a || !str)
        return -CORIO_EADDR;
    if (strncmp(str, UNIX_PREFIX, sizeof UNIX_PREFIX - 1) == 0)
        return parse_unix(a, str + sizeof UNIX_PREFIX - 1);
    const char *h, *p;
    size_t hn;
    int br = corio__addr_split(str, &h, &hn, &p);
    if (br < 0)
        return br;
    int port = parse_port(p);
    if (port < 0)
        return port;
    if (br)
        return parse_v6(a, h, hn, port);
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
    struct in_addr ia = {.s_addr = htonl(INADDR_ANY)};
    if (hn > 0) {
        char buf[INET_ADDRSTRLEN];
        if (hn >= sizeof buf || (memcpy(buf, h, hn), buf[hn] = '\0', inet_pton(AF_INET, buf, &ia) != 1))
            return valid_hostname(h, hn) ? -CORIO_ENONAME : -CORIO_EADDR;
    }
    memset(a, 0, sizeof *a);
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    in->sin_addr = ia;
    a->len = sizeof *in;
    return 0;
}

static int format_unix(const corio_addr *a, char *buf, size_t size)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = a->len > off ? a->len - off : 0;
    if (n > UNIX_PATH_MAX)
        n = UNIX_PATH_MAX;
    const char *p = un->sun_path;
    bool abstract = n > 0 && p[0] == '\0';
    if (!abstract)
        n = strnlen(p, n);
    size_t need = sizeof UNIX_PREFIX - 1 + n;
    if (need + 1 > size)
        return -ENOSPC;
    memcpy(buf, UNIX_PREFIX, sizeof UNIX_PREFIX - 1);
    memcpy(buf + sizeof UNIX_PREFIX - 1, p, n);
    if (abstract)
        buf[sizeof UNIX_PREFIX - 1] = '@';
    buf[need] = '\0';
    return (int)need;
}

int corio_addr_format(const corio_addr *a, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    int n;
    switch (a->len ? a->ss.ss_family : AF_UNSPEC) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        n = snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        if (in6->sin6_scope_id)
            n = snprintf(buf, size, "[%s%%%u]:%u", ip, (unsigned)in6->sin6_scope_id,
                         ntohs(in6->sin6_port));
        else
            n = snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX:
        return format_unix(a, buf, size);
    default:
        return -EAFNOSUPPORT;
    }
    return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

int corio_addr_port(const corio_addr *a)
{
    if (a->len && a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->len && a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return -EAFNOSUPPORT;
}

bool corio_addr_equal(const corio_addr *a, const corio_addr *b)
{
    if (a->len != b->len || a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->len == 0)
        return true;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    size_t off = offsetof(struct sockaddr_un, sun_path);
    return memcmp((const char *)&a->ss + off, (const char *)&b->ss + off, a->len - off) == 0;
}

int corio_addr_local(int fd, corio_addr *a)
{
    SITE(s_name, "getsockname");
    a->len = sizeof a->ss;
    int r = sys_getsockname(&s_name, fd, (struct sockaddr *)&a->ss, &a->len);
    if (r < 0)
        a->len = 0;
    return r;
}

int corio_addr_peer(int fd, corio_addr *a)
{
    SITE(s_name, "getpeername");
    a->len = sizeof a->ss;
    int r = sys_getpeername(&s_name, fd, (struct sockaddr *)&a->ss, &a->len);
    if (r < 0)
        a->len = 0;
    return r;
}

/* ---- Names ---- */

#define RESOLVE_MAX 16

/* A host name: getaddrinfo on the blocking pool (pool.h). */
static int resolve_name(corio_addr *out, int max, const char *host, size_t hn, const char *port,
                        int socktype, int64_t deadline)
{
    char name[256];
    struct sockaddr_storage ss[RESOLVE_MAX];
    if (hn >= sizeof name)
        return -CORIO_EADDR;
    memcpy(name, host, hn);
    name[hn] = '\0';
    int n = corio_resolve(name, port, AF_UNSPEC, socktype, ss, max < RESOLVE_MAX ? max : RESOLVE_MAX,
                          deadline);
    for (int i = 0; i < n; i++) {
        out[i].ss = ss[i];
        out[i].len = ss[i].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);
    }
    return n;
}

int corio_addr_resolve(corio_addr *out, int max, const char *str, int socktype, int64_t deadline)
{
    if (max < 1)
        return -EINVAL;
    int r = corio_addr_parse(&out[0], str);
    if (r != -CORIO_ENONAME)
        return r < 0 ? r : 1; /* numeric, or malformed: the pool is never involved */
    const char *h, *p;
    size_t hn;
    corio__addr_split(str, &h, &hn, &p);
    return resolve_name(out, max, h, hn, p, socktype, deadline);
}
