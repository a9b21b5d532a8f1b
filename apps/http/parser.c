/* The request parser and the chunked decoder (parser.h has the contract).
 *
 * Every scan is bounded by `end`; running out of bytes anywhere gives
 * HTTP_MORE, so the same code serves complete and partial input.  Bytes
 * are classified through 256-entry tables: one load per byte, no branches
 * on character ranges. */
#include <string.h>

#include "parser.h"

/* tchar (RFC 9110 5.6.2): what tokens (methods, header names) are made of. */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Bytes allowed in a request target and in a field value: visible ASCII
 * and obs-text (>= 0x80) are 1; SP and HTAB, allowed in field values only,
 * are 2.  No control byte, no DEL: a NUL or a lone CR is where parsers
 * disagree.  (Range designators are a GNU C extension gcc and clang share.) */
static const uint8_t vchar[256] = {
    ['\t'] = 2, [' '] = 2, [0x21 ... 0x7e] = 1, [0x80 ... 0xff] = 1,
};

/* ---- Eight bytes at a time ----
 * The target and the field values are most of a request's bytes, and the
 * bytes that end them are few: control bytes, SP (the target), DEL.  So
 * they are scanned a word at a time (SWAR), which took the parse of a
 * plaintext benchmark request from ~500 to ~300 instructions; the table
 * loops finish the last few bytes and decide anything unusual.  For each
 * byte b of a word, less(x, n) sets its top bit if b < n (n <= 128) and
 * eq(x, c) if b == c.  Both can also flag bytes above (at higher
 * addresses than) a flagged one, through the borrow, but never below: so
 * the lowest flag is exact, and that is all first() reads. */
#define ONES (~(uint64_t)0 / 255)
#define HIGHS (ONES * 0x80)

static inline uint64_t word_at(const char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline uint64_t less(uint64_t x, unsigned n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

static inline uint64_t eq(uint64_t x, unsigned c)
{
    uint64_t y = x ^ (ONES * c);
    return (y - ONES) & ~y & HIGHS;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR 1
/* The offset of the lowest-addressed flagged byte of a non-zero mask. */
static inline unsigned first(uint64_t m)
{
    return (unsigned)__builtin_ctzll(m) >> 3;
}
#else
#define SWAR 0 /* the byte loops do it all */
static inline unsigned first(uint64_t m)
{
    (void)m;
    return 0;
}
#endif

/* The first byte at or after p (before end) that may not be in a request
 * target (vchar != 1), or end.  If '?' comes before it, *q gets the first
 * one (else it is left alone). */
static const char *scan_target(const char *p, const char *end, const char **q)
{
    for (; SWAR && end - p >= 8; p += 8) {
        uint64_t x = word_at(p);
        uint64_t stop = less(x, 0x21) | eq(x, 0x7f);
        uint64_t qm = eq(x, '?');
        if (qm && !*q && (!stop || first(qm) < first(stop)))
            *q = p + first(qm);
        if (stop)
            return p + first(stop);
    }
    for (; p < end && vchar[(unsigned char)*p] == 1; p++)
        if (*p == '?' && !*q)
            *q = p;
    return p;
}

/* The first byte at or after p (before end) that may not be in a field
 * value (vchar == 0: CR, LF, another control byte, DEL), or end. */
static const char *scan_value(const char *p, const char *end)
{
    while (SWAR && end - p >= 8) {
        uint64_t x = word_at(p);
        uint64_t stop = less(x, 0x20) | eq(x, 0x7f);
        if (!stop) {
            p += 8;
            continue;
        }
        p += first(stop);
        if (*p != '\t')
            return p;
        p++; /* HTAB is allowed */
    }
    while (p < end && vchar[(unsigned char)*p])
        p++;
    return p;
}

/* a[0..n) equals lower[0..n), a string of lowercase letters and '-',
 * ignoring ASCII case, where a holds token bytes only (tchar): then
 * a byte ORed with 0x20 equals a letter only if it is that letter in
 * either case, and equals '-' only if it is '-' (CR, its other match, is
 * no token byte).  Two words for up to 16 bytes, one for up to 8. */
static inline bool token_is(const char *a, const char *lower, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t fold = ONES * 0x20;
        return ((word_at(a) | fold) == word_at(lower)) &&
               ((word_at(a + n - 8) | fold) == word_at(lower + n - 8));
    }
    if (n >= 4 && n < 8) {
        uint32_t x, y;
        memcpy(&x, a, 4);
        memcpy(&y, lower, 4);
        if ((x | 0x20202020u) != y)
            return false;
        memcpy(&x, a + n - 4, 4);
        memcpy(&y, lower + n - 4, 4);
        return (x | 0x20202020u) == y;
    }
    return http_caseeq(a, lower, n);
}

bool http_caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x == y)
            continue;
        if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z')
            return false;
    }
    return true;
}

static bool name_is(const struct http_header *h, const char *lower, size_t n)
{
    return h->name_len == n && token_is(h->name, lower, n);
}

static uint8_t method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        return memcmp(m, "GET", 3) == 0 ? HTTP_M_GET : memcmp(m, "PUT", 3) == 0 ? HTTP_M_PUT : HTTP_M_OTHER;
    case 4:
        return memcmp(m, "HEAD", 4) == 0 ? HTTP_M_HEAD : memcmp(m, "POST", 4) == 0 ? HTTP_M_POST : HTTP_M_OTHER;
    case 6:
        return memcmp(m, "DELETE", 6) == 0 ? HTTP_M_DELETE : HTTP_M_OTHER;
    case 7:
        return memcmp(m, "OPTIONS", 7) == 0 ? HTTP_M_OPTIONS : HTTP_M_OTHER;
    }
    return HTTP_M_OTHER;
}

/* ---- The request line ---- */

/* Splits the target into path and query (q: its first '?', or NULL);
 * checks its form. */
static int split_target(struct http_request *r, const char *q)
{
    const char *t = r->target, *end = t + r->target_len;
    if (r->target_len == 1 && t[0] == '*') {
        r->path = t;
        r->path_len = 1;
        return r->method_id == HTTP_M_OPTIONS ? 0 : -400;
    }
    if (t[0] != '/') { /* absolute-form: scheme "://" authority path */
        const char *s = memchr(t, ':', r->target_len);
        if (!s || s == t || end - s < 3 || s[1] != '/' || s[2] != '/')
            return -400;
        const char *slash = memchr(s + 3, '/', (size_t)(end - s - 3));
        t = slash ? slash : end;
        q = memchr(t, '?', (size_t)(end - t)); /* a '?' in the authority is no query */
    }
    r->path = t == end ? "/" : t;
    r->path_len = t == end ? 1 : (uint32_t)((q ? q : end) - t);
    r->query = q ? q + 1 : NULL;
    r->query_len = q ? (uint32_t)(end - q - 1) : 0;
    return 0;
}

/* "HTTP/1.1" and "HTTP/1.0" only; another well-formed version is 505. */
static int parse_version(const char *p, const char *end, struct http_request *r)
{
    if (end - p >= 8) { /* the usual versions, one compare each */
        uint64_t x = word_at(p);
        if (x == word_at("HTTP/1.1") || x == word_at("HTTP/1.0")) {
            r->minor = (uint8_t)(p[7] - '0');
            return 0;
        }
    }
    if (end - p < 8)
        return memcmp(p, "HTTP/", (size_t)(end - p) < 5 ? (size_t)(end - p) : 5) == 0 ? HTTP_MORE : -400;
    if (memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
        return -400;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return -505;
    r->minor = (uint8_t)(p[7] - '0');
    return 0;
}

/* Parses "METHOD SP target SP HTTP/1.x CRLF"; returns its length. */
static int parse_line(const char *buf, const char *end, struct http_request *r, unsigned max_line)
{
    const char *p = buf;
    if (end - p >= 4 && memcmp(p, "GET ", 4) == 0) { /* the usual method */
        p += 3;
        r->method_id = HTTP_M_GET;
    } else {
        while (p < end && tchar[(unsigned char)*p])
            p++;
        if (p == end)
            return (size_t)(p - buf) > max_line ? -414 : HTTP_MORE;
        if (p == buf || *p != ' ')
            return -400;
        r->method_id = method_id(buf, (size_t)(p - buf));
    }
    r->method = buf;
    r->method_len = (uint32_t)(p - buf);
    const char *t = ++p, *q = NULL;
    p = scan_target(p, end, &q);
    if ((size_t)(p - buf) > max_line)
        return -414;
    if (p == end)
        return HTTP_MORE;
    if (p == t || *p != ' ')
        return -400;
    r->target = t;
    r->target_len = (uint32_t)(p - t);
    int v = parse_version(++p, end, r);
    if (v < 0)
        return v;
    p += 8;
    if ((size_t)(p - buf) > max_line)
        return -414;
    if (end - p < 2)
        return (p == end || *p == '\r') ? HTTP_MORE : -400;
    if (p[0] != '\r' || p[1] != '\n')
        return -400;
    int e = split_target(r, q);
    return e < 0 ? e : (int)(p + 2 - buf);
}

/* ---- Header fields ---- */

/* Parses one "name: value CRLF" at p; returns its length. */
static int parse_field(const char *p, const char *end, struct http_header *h)
{
    const char *s = p;
    while (p < end && tchar[(unsigned char)*p])
        p++;
    if (p == end)
        return HTTP_MORE;
    if (p == s || *p != ':') /* empty name, "Name :", obs-fold, stray bytes */
        return -400;
    h->name = s;
    h->name_len = (uint32_t)(p - s);
    p++;
    if (p < end && *p == ' ') /* the usual single space, then any more */
        p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *v = p;
    p = scan_value(p, end);
    if (p == end)
        return HTTP_MORE;
    if (*p != '\r')
        return -400;
    if (p + 1 == end)
        return HTTP_MORE;
    if (p[1] != '\n')
        return -400;
    const char *ve = p;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    h->value = v;
    h->value_len = (uint32_t)(ve - v);
    return (int)(p + 2 - s);
}

/* 1*DIGIT, no sign, no space, no list: anything else is a smuggling try. */
static int parse_length(const struct http_header *h, int64_t *out)
{
    if (h->value_len == 0 || h->value_len > 18)
        return -400;
    int64_t n = 0;
    for (uint32_t i = 0; i < h->value_len; i++) {
        char c = h->value[i];
        if (c < '0' || c > '9')
            return -400;
        n = n * 10 + (c - '0');
    }
    *out = n;
    return 0;
}

/* Connection: a comma-separated list of tokens. */
static void parse_connection(const struct http_header *h, struct http_request *r)
{
    const char *p = h->value, *end = p + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 5 && http_caseeq(s, "close", 5))
            r->keep_alive = false;
        else if (n == 10 && http_caseeq(s, "keep-alive", 10) && r->minor == 0)
            r->keep_alive = true;
    }
}

struct seen {
    unsigned host, length, te;
};

/* Interprets the fields that frame the message or steer the connection. */
static int interpret(const struct http_header *h, struct http_request *r, struct seen *s)
{
    switch (h->name_len) {
    case 4:
        if (name_is(h, "host", 4))
            s->host++;
        return 0;
    case 6:
        if (!name_is(h, "expect", 6))
            return 0;
        if (h->value_len == 12 && http_caseeq(h->value, "100-continue", 12)) {
            r->expect_continue = true;
            return 0;
        }
        return -417;
    case 10:
        if (name_is(h, "connection", 10))
            parse_connection(h, r);
        return 0;
    case 14:
        if (!name_is(h, "content-length", 14))
            return 0;
        if (s->length++) /* even an identical repeat: refuse rather than guess */
            return -400;
        return parse_length(h, &r->content_length);
    case 17:
        if (!name_is(h, "transfer-encoding", 17))
            return 0;
        if (s->te++)
            return -400;
        if (h->value_len != 7 || !http_caseeq(h->value, "chunked", 7))
            return -501; /* a coding we do not implement, or a list of them */
        r->chunked = true;
        return 0;
    }
    return 0;
}

/* The framing rules of RFC 9112 6, strictest reading. */
static int check_framing(struct http_request *r, const struct seen *s)
{
    if (s->te && s->length)
        return -400;
    if (s->te && r->minor == 0)
        return -400;
    if (s->host > 1 || (r->minor == 1 && s->host == 0))
        return -400;
    return 0;
}

static void request_reset(struct http_request *r, struct http_header *hdrs)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    r->headers = hdrs;
}

/* The limits for a head that is not complete yet. */
static int incomplete(const char *buf, size_t len, const struct http_limits *lim)
{
    if (len > (size_t)lim->max_line + 2 && !memchr(buf, '\n', (size_t)lim->max_line + 2))
        return -414;
    return len >= lim->max_head ? -431 : HTTP_MORE;
}

int http_parse_request(const char *buf, size_t len, size_t prev_len, struct http_request *r,
                       struct http_header *hdrs, const struct http_limits *lim)
{
    /* Re-parse only when a line has ended since the last try: a head that
     * trickles in costs one scan per line, not one per byte. */
    if (prev_len && prev_len < len && !memchr(buf + prev_len, '\n', len - prev_len))
        return incomplete(buf, len, lim);
    request_reset(r, hdrs);
    const char *end = buf + (len < lim->max_head ? len : lim->max_head);
    int n = parse_line(buf, end, r, lim->max_line);
    if (n < 0)
        return n == HTTP_MORE ? incomplete(buf, len, lim) : n;
    r->keep_alive = r->minor == 1;
    struct seen seen = {0};
    const char *p = buf + n;
    for (;;) {
        if (end - p < 2) {
            if (p < end && *p != '\r' && !tchar[(unsigned char)*p])
                return -400;
            return incomplete(buf, len, lim);
        }
        if (p[0] == '\r') {
            if (p[1] != '\n')
                return -400;
            p += 2;
            break;
        }
        if (r->nheaders == lim->max_headers)
            return -431;
        struct http_header *h = &hdrs[r->nheaders];
        int f = parse_field(p, end, h);
        if (f < 0)
            return f == HTTP_MORE ? incomplete(buf, len, lim) : f;
        r->nheaders++;
        int e = interpret(h, r, &seen);
        if (e < 0)
            return e;
        p += f;
    }
    int e = check_framing(r, &seen);
    return e < 0 ? e : (int)(p - buf);
}

const struct http_header *http_find_header(const struct http_request *r, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < r->nheaders; i++)
        if (r->headers[i].name_len == n && http_caseeq(r->headers[i].name, name, n))
            return &r->headers[i];
    return NULL;
}

/* ---- Chunked transfer coding ---- */

enum {
    CH_SIZE,     /* hex digits of a chunk size */
    CH_EXT,      /* a chunk extension, up to CR */
    CH_SIZE_LF,  /* the LF ending a size line */
    CH_DATA,     /* chunk data */
    CH_DATA_CR,  /* the CRLF after chunk data */
    CH_DATA_LF,
    CH_TRAILER,  /* the start of a trailer line, or the final CRLF */
    CH_FIELD,    /* inside a trailer field */
    CH_FIELD_LF,
    CH_END_LF,   /* the LF of the final CRLF */
};

#define CH_MAX_LINE 4096   /* a size line with its extensions, or a trailer line */
#define CH_MAX_TRAILERS 64

void http_chunked_init(struct http_chunked *d, uint64_t max)
{
    memset(d, 0, sizeof *d);
    d->max = max;
    d->state = CH_SIZE;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One byte of the framing (everything but chunk data).  Returns 0, 1 when
 * the body is complete, or a negative status. */
static int chunk_byte(struct http_chunked *d, unsigned char c)
{
    if (++d->line > CH_MAX_LINE)
        return -400;
    switch (d->state) {
    case CH_SIZE: {
        int v = hexval(c);
        if (v >= 0) {
            if (d->left >> 60)
                return -400;
            d->left = d->left << 4 | (uint64_t)v;
            if (d->left > d->max - d->total)
                return -413;
            return 0;
        }
        if (d->line == 1) /* no digit at all */
            return -400;
        d->state = CH_EXT;
        d->flag = 0;
        __attribute__((fallthrough)); /* this byte starts an extension or ends the line */
    }
    case CH_EXT:
        /* Only whitespace may come between the size and the ';' that
         * starts an extension ("5 x" and "0x5" are refused); extensions
         * are bounded and checked, not interpreted. */
        if (c == '\r')
            d->state = CH_SIZE_LF;
        else if (c == ';')
            d->flag = 1;
        else if (d->flag ? !vchar[c] : (c != ' ' && c != '\t'))
            return -400;
        return 0;
    case CH_SIZE_LF:
        if (c != '\n')
            return -400;
        d->line = 0;
        d->state = d->left ? CH_DATA : CH_TRAILER;
        return 0;
    case CH_DATA_CR:
        if (c != '\r')
            return -400;
        d->state = CH_DATA_LF;
        return 0;
    case CH_DATA_LF:
        if (c != '\n')
            return -400;
        d->state = CH_SIZE;
        d->line = 0;
        return 0;
    case CH_TRAILER:
        if (c == '\r') {
            d->state = CH_END_LF;
            return 0;
        }
        if (!tchar[c] || ++d->ntrailer > CH_MAX_TRAILERS)
            return -400;
        d->state = CH_FIELD;
        d->flag = 0;
        return 0;
    case CH_FIELD:
        /* A trailer field is checked like a header (a token, then ':'),
         * then dropped: trailers never reach the request's headers. */
        if (c == ':' && !d->flag)
            d->flag = 1;
        else if (c == '\r' && d->flag)
            d->state = CH_FIELD_LF;
        else if (d->flag ? !vchar[c] : !tchar[c])
            return -400;
        return 0;
    case CH_FIELD_LF:
        if (c != '\n')
            return -400;
        d->line = 0;
        d->state = CH_TRAILER;
        return 0;
    case CH_END_LF:
        return c == '\n' ? 1 : -400;
    }
    return -400;
}

long http_chunked_decode(struct http_chunked *d, char *buf, size_t *len)
{
    size_t in = 0, out = 0, n = *len;
    while (in < n) {
        if (d->state == CH_DATA) {
            size_t k = n - in < d->left ? n - in : (size_t)d->left;
            memmove(buf + out, buf + in, k);
            in += k;
            out += k;
            d->left -= k;
            d->total += k;
            if (d->left == 0) {
                d->state = CH_DATA_CR;
                d->line = 0;
            }
            continue;
        }
        int r = chunk_byte(d, (unsigned char)buf[in++]);
        if (r < 0)
            return r;
        if (r == 1) {
            memmove(buf + out, buf + in, n - in);
            *len = out;
            return (long)(n - in);
        }
    }
    *len = out;
    return HTTP_MORE;
}
