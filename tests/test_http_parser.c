/* corio-http's request parser and chunked decoder: what they accept, what
 * they refuse and with which status, every limit, and input fed in every
 * possible split.  Input is placed against a PROT_NONE page, as
 * picohttpparser's tests do, so a read past the end crashes at once. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../apps/http/parser.h"
#include "test.h"

static const struct http_limits lim = {.max_line = 256, .max_head = 1024, .max_headers = 16};

/* A copy of s that ends where an unreadable page begins. */
struct guarded {
    char *map;
    size_t maplen;
    char *p;
};

static char *guard(struct guarded *g, const char *s, size_t n)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), pages = (n + ps - 1) / ps + 1;
    g->maplen = (pages + 1) * ps;
    g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(g->map != MAP_FAILED);
    CHECK(mprotect(g->map + pages * ps, ps, PROT_NONE) == 0);
    g->p = g->map + pages * ps - n;
    memcpy(g->p, s, n);
    return g->p;
}

static void unguard(struct guarded *g)
{
    munmap(g->map, g->maplen);
}

static int parse_n(const char *s, size_t n, struct http_request *r, struct http_header *h)
{
    struct guarded g;
    char *p = guard(&g, s, n);
    int ret = http_parse_request(p, n, 0, r, h, &lim);
    /* Views must point into the input; re-point them at s for the caller. */
    if (ret > 0) {
#define REPOINT(v) ((v) = (v) >= p && (v) <= p + n ? s + ((v)-p) : (v))
        REPOINT(r->method), REPOINT(r->target), REPOINT(r->path), REPOINT(r->query);
        for (unsigned i = 0; i < r->nheaders; i++)
            REPOINT(h[i].name), REPOINT(h[i].value);
#undef REPOINT
    }
    unguard(&g);
    return ret;
}

static int parse(const char *s, struct http_request *r, struct http_header *h)
{
    return parse_n(s, strlen(s), r, h);
}

static int status_of(const char *s)
{
    struct http_request r;
    struct http_header h[16];
    return parse(s, &r, h);
}

static bool view_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

TEST(http_parse_simple)
{
    const char *s = "GET /plaintext?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n"
                    "Accept: text/plain \t\r\nX-Empty:\r\n\r\n";
    struct http_request r;
    struct http_header h[16];
    CHECK_EQ(parse(s, &r, h), strlen(s));
    CHECK(view_is(r.method, r.method_len, "GET"));
    CHECK_EQ(r.method_id, HTTP_M_GET);
    CHECK(view_is(r.target, r.target_len, "/plaintext?x=1"));
    CHECK(view_is(r.path, r.path_len, "/plaintext"));
    CHECK(view_is(r.query, r.query_len, "x=1"));
    CHECK_EQ(r.minor, 1);
    CHECK(r.keep_alive);
    CHECK(!r.chunked);
    CHECK_EQ(r.content_length, -1);
    CHECK_EQ(r.nheaders, 3);
    CHECK(view_is(h[0].name, h[0].name_len, "Host"));
    CHECK(view_is(h[0].value, h[0].value_len, "localhost:8080"));
    CHECK(view_is(h[1].value, h[1].value_len, "text/plain")); /* trailing OWS trimmed */
    CHECK_EQ(h[2].value_len, 0);
    const struct http_header *f = http_find_header(&r, "aCCEPT");
    CHECK(f == &r.headers[1]);
    CHECK(http_find_header(&r, "accept-encoding") == NULL);
}

TEST(http_parse_methods_and_forms)
{
    struct http_request r;
    struct http_header h[16];
    CHECK(parse("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", &r, h) > 0);
    CHECK_EQ(r.method_id, HTTP_M_HEAD);
    CHECK(parse("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 012\r\n\r\n", &r, h) > 0);
    CHECK_EQ(r.method_id, HTTP_M_POST);
    CHECK_EQ(r.content_length, 12);
    CHECK(parse("PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", &r, h) > 0);
    CHECK_EQ(r.method_id, HTTP_M_OTHER);
    CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r, h) > 0);
    CHECK_EQ(r.method_id, HTTP_M_OPTIONS);
    CHECK(parse("GET http://example.com/a/b?c HTTP/1.1\r\nHost: example.com\r\n\r\n", &r, h) > 0);
    CHECK(view_is(r.path, r.path_len, "/a/b"));
    CHECK(view_is(r.query, r.query_len, "c"));
    CHECK(parse("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", &r, h) > 0);
    CHECK(view_is(r.path, r.path_len, "/"));
    CHECK(parse("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", &r, h) > 0); /* obs-text */
    CHECK(parse("GET / HTTP/1.0\r\n\r\n", &r, h) > 0); /* 1.0 needs no Host */
}

TEST(http_parse_keep_alive)
{
    struct http_request r;
    struct http_header h[16];
    CHECK(parse("GET / HTTP/1.0\r\n\r\n", &r, h) > 0);
    CHECK(!r.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r, h) > 0);
    CHECK(r.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, CLOSE\r\n\r\n", &r, h) > 0);
    CHECK(!r.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", &r, h) > 0);
    CHECK(r.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", &r, h) > 0);
    CHECK(r.keep_alive);
    CHECK(parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                "Content-Length: 5\r\n\r\n", &r, h) > 0);
    CHECK(r.expect_continue);
}

/* Malformed requests, and the smuggling attempts of RFC 9112 11.2. */
TEST(http_parse_refusals)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400},
        {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\nHost: a\n\n", -400},             /* bare LF */
        {"GET / HTTP/1.1\r\nHost: a\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", -400},     /* lone CR */
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\r", -400},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505},
        {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", -505},
        {"GET / HTTX/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", -400},
        {"GET / http/1.1\r\nHost: a\r\n\r\n", -400},
        {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET a HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400},       /* space before colon */
        {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", -400}, /* empty name */
        {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", -400}, /* obs-fold */
        {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-y z: 1\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\n\r\n", -400},                   /* no Host */
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400},
        {"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", -400},
        /* Framing. */
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", -501},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", -417},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = status_of(cases[i].req);
        if (got != cases[i].status)
            test_fail(__FILE__, __LINE__, "case %zu: %d, want %d", i, got, cases[i].status);
    }
    /* A NUL inside a value, with the real length. */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    struct http_request r;
    struct http_header h[16];
    CHECK_EQ(parse_n(nul, sizeof nul - 1, &r, h), -400);
    /* Transfer-Encoding alone is fine, case-insensitively. */
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n") > 0);
}

/* Garbage is refused from its first bytes, without waiting for a line. */
TEST(http_parse_refuses_early)
{
    struct http_request r;
    struct http_header h[16];
    CHECK_EQ(parse_n("\x16\x03\x01\x02", 4, &r, h), -400); /* a TLS hello */
    CHECK_EQ(parse_n("GET /", 5, &r, h), HTTP_MORE);
    CHECK_EQ(parse_n("GET / HTTP/1.1\r\nHost: a\r\nX\x01", 27, &r, h), -400);
    CHECK_EQ(parse_n("GET / HTTP/2", 12, &r, h), HTTP_MORE);
    CHECK_EQ(parse_n("GET / FTP/", 10, &r, h), -400);
}

TEST(http_parse_limits)
{
    struct http_request r;
    struct http_header h[16];
    char buf[4096];
    /* The request line: max_line bytes pass, one more is 414. */
    size_t base = strlen("GET / HTTP/1.1");
    memset(buf, 0, sizeof buf);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', lim.max_line - base);
    strcat(buf, " HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(parse(buf, &r, h) > 0);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', lim.max_line - base + 1);
    buf[5 + lim.max_line - base + 1] = 0;
    strcat(buf, " HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK_EQ(parse(buf, &r, h), -414);
    /* ... and is refused before its end arrives. */
    CHECK_EQ(parse_n(buf, lim.max_line + 3, &r, h), -414);
    /* Header count. */
    strcpy(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 1; i < lim.max_headers; i++)
        strcat(buf, "X: y\r\n");
    strcat(buf, "\r\n");
    CHECK(parse(buf, &r, h) > 0);
    CHECK_EQ(r.nheaders, lim.max_headers);
    buf[strlen(buf) - 2] = 0;
    strcat(buf, "X: y\r\n\r\n");
    CHECK_EQ(parse(buf, &r, h), -431);
    /* Head size: a head of exactly max_head bytes passes, one more is 431,
     * complete or not. */
    strcpy(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    size_t fill = lim.max_head - strlen(buf) - 4;
    memset(buf + strlen(buf), 'v', fill);
    buf[lim.max_head - 4] = 0;
    strcat(buf, "\r\n\r\n");
    CHECK_EQ(strlen(buf), lim.max_head);
    CHECK_EQ(parse(buf, &r, h), (int)lim.max_head);
    buf[lim.max_head - 4] = 'v';
    buf[lim.max_head - 3] = 0;
    strcat(buf, "\r\n\r\n");
    CHECK_EQ(parse(buf, &r, h), -431);
    CHECK_EQ(parse_n(buf, lim.max_head, &r, h), -431);
    CHECK_EQ(parse_n(buf, lim.max_head - 1, &r, h), HTTP_MORE);
}

/* Every split of a pipelined pair: HTTP_MORE until the first head is
 * whole, then the same answer as in one piece, and the views right. */
TEST(http_parse_every_split)
{
    const char *s = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /json HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t n = strlen(s), first = strlen("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
    struct http_request r;
    struct http_header h[16];
    for (size_t k = 0; k <= n; k++) {
        int ret = parse_n(s, k, &r, h);
        if (k < first)
            CHECK_EQ(ret, HTTP_MORE);
        else
            CHECK_EQ(ret, (int)first);
    }
    CHECK_EQ(r.content_length, 3);
    const char *second = s + first + 3;
    CHECK_EQ(parse(second, &r, h), (int)strlen(second));
    CHECK(view_is(r.path, r.path_len, "/json"));
    /* Byte by byte with prev_len, on one growing buffer. */
    size_t prev = 0;
    int ret = HTTP_MORE;
    for (size_t k = 1; k <= n && ret == HTTP_MORE; k++) {
        ret = http_parse_request(s, k, prev, &r, h, &lim);
        prev = k;
    }
    CHECK_EQ(ret, (int)first);
}

/* ---- Chunked ---- */

static long dechunk(const char *in, size_t n, uint64_t max, char *out, size_t *outlen)
{
    struct http_chunked d;
    http_chunked_init(&d, max);
    struct guarded g;
    char *p = guard(&g, in, n);
    size_t len = n;
    long r = http_chunked_decode(&d, p, &len);
    memcpy(out, p, r >= 0 ? len + (size_t)r : len);
    *outlen = len;
    unguard(&g);
    return r;
}

TEST(http_chunked_basic)
{
    char out[256];
    size_t n;
    const char *s = "5\r\nhello\r\n7;ext=1;q=\"x y\"\r\n, world\r\n0\r\n\r\nGET";
    CHECK_EQ(dechunk(s, strlen(s), 100, out, &n), 3);
    CHECK_EQ(n, 12);
    CHECK(memcmp(out, "hello, worldGET", 15) == 0);
    s = "A\r\n0123456789\r\n00000\r\nTrailer: x\r\nOther:y\r\n\r\n";
    CHECK_EQ(dechunk(s, strlen(s), 100, out, &n), 0);
    CHECK_EQ(n, 10);
    s = "0\r\n\r\n";
    CHECK_EQ(dechunk(s, strlen(s), 0, out, &n), 0);
    CHECK_EQ(n, 0);
    s = "1 ;x\r\na\r\n0\r\n\r\n"; /* whitespace before an extension */
    CHECK_EQ(dechunk(s, strlen(s), 100, out, &n), 0);
    CHECK_EQ(n, 1);
    s = "ff\r\n";
    CHECK_EQ(dechunk(s, strlen(s), 1000, out, &n), HTTP_MORE);
    CHECK_EQ(n, 0);
}

TEST(http_chunked_refusals)
{
    static const struct {
        const char *in;
        long status;
        uint64_t max; /* 0: 100 */
    } cases[] = {
        {"\r\n", -400, 0},                 /* no size */
        {"g\r\n", -400, 0},
        {"-5\r\nhello\r\n", -400, 0},
        {"0x5\r\nhello\r\n", -400, 0},
        {"5 x\r\nhello\r\n", -400, 0},     /* junk that is not an extension */
        {"5\nhello\r\n", -400, 0},         /* bare LF */
        {"5\r\nhelloX\r\n", -400, 0},      /* data longer than the size */
        {"5\r\nhello\n0\r\n\r\n", -400, 0},
        {"5;a\x01\r\nhello\r\n", -400, 0},
        {"11111111111111111\r\n", -400, UINT64_MAX}, /* 17 significant digits */
        {"fffffffffffffffff\r\n", -400, UINT64_MAX},
        {"00000000000000000001\r\nx\r\n0\r\n\r\n", 0, 0}, /* leading zeros are no overflow */
        {"0\r\nbad trailer\r\n\r\n", -400, 0},
        {"0\r\nX: a\x01\r\n\r\n", -400, 0},
        {"0\r\n\r\r", -400, 0},
        {"0\r\nX: y\n\r\n", -400, 0},
        {"65\r\n", -413, 0},               /* 101 bytes over a limit of 100 */
        {"40\r\n" "0123456789012345678901234567890123456789012345678901234567890123\r\n"
         "40\r\n", -413, 0},               /* the total counts */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[512];
        size_t n;
        long got = dechunk(cases[i].in, strlen(cases[i].in), cases[i].max ? cases[i].max : 100,
                           out, &n);
        if (got != cases[i].status)
            test_fail(__FILE__, __LINE__, "case %zu: %ld, want %ld", i, got, cases[i].status);
    }
}

/* Fed in pieces of every size, in place, the result is the same. */
TEST(http_chunked_every_split)
{
    const char *s = "3\r\nabc\r\n10;e=v\r\n0123456789abcdef\r\n1\r\nz\r\n0\r\nT: 1\r\n\r\nNEXT";
    size_t n = strlen(s);
    for (size_t step = 1; step <= n; step++) {
        struct http_chunked d;
        http_chunked_init(&d, 1000);
        char buf[256];
        size_t have = 0, raw = 0; /* decoded bytes at buf[0..have); raw bytes fed */
        long r = HTTP_MORE;
        while (r == HTTP_MORE && raw < n) {
            size_t k = n - raw < step ? n - raw : step;
            memcpy(buf + have, s + raw, k);
            raw += k;
            size_t len = k;
            r = http_chunked_decode(&d, buf + have, &len);
            have += len;
        }
        CHECK(r >= 0);
        CHECK_EQ(have, 20);
        CHECK(memcmp(buf, "abc0123456789abcdefz", 20) == 0);
        /* Whatever came after the body is right behind the data. */
        size_t left = (size_t)r + (n - raw);
        CHECK_EQ(left, 4);
        CHECK(memcmp(buf + have, "NEXT", (size_t)r) == 0);
        CHECK_EQ(d.total, 20);
    }
}
