/* libFuzzer target for corio-http's request parser: no input may make it
 * read outside the buffer, crash, or give a view outside the input; and
 * parsing in pieces (with prev_len) must agree with parsing at once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../apps/http/parser.c"

static const struct http_limits lim = {.max_line = 512, .max_head = 4096, .max_headers = 32};

static void check_views(const char *buf, size_t len, const struct http_request *r)
{
#define INSIDE(p, n) ((p) >= buf && (p) + (n) <= buf + len)
    if (!INSIDE(r->method, r->method_len) || !INSIDE(r->target, r->target_len))
        abort();
    if (r->query && !INSIDE(r->query, r->query_len))
        abort();
    if (r->nheaders > lim.max_headers)
        abort();
    for (unsigned i = 0; i < r->nheaders; i++)
        if (!INSIDE(r->headers[i].name, r->headers[i].name_len) ||
            !INSIDE(r->headers[i].value, r->headers[i].value_len))
            abort();
    if (r->chunked && r->content_length >= 0)
        abort(); /* the smuggling rule */
#undef INSIDE
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan catches a read one past the end. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct http_header h1[32], h2[32];
    struct http_request r1, r2;
    int whole = http_parse_request(buf, size, 0, &r1, h1, &lim);
    if (whole > 0) {
        if ((size_t)whole > size)
            abort();
        check_views(buf, size, &r1);
    }
    /* The same bytes arriving in two pieces. */
    size_t cut = size ? data[0] % (size + 1) : 0;
    int first = http_parse_request(buf, cut, 0, &r2, h2, &lim);
    int second = first == HTTP_MORE ? http_parse_request(buf, size, cut, &r2, h2, &lim) : first;
    if (first == HTTP_MORE && second > 0 && whole > 0 && second != whole)
        abort();
    if (first > 0 && whole > 0 && first != whole)
        abort(); /* complete in the prefix: the same head */
    if (whole > 0 && r1.chunked && (size_t)whole < size) {
        struct http_chunked d;
        http_chunked_init(&d, 1 << 20);
        size_t n = size - (size_t)whole;
        long left = http_chunked_decode(&d, buf + whole, &n);
        if (left >= 0 && n + (size_t)left > size - (size_t)whole)
            abort();
    }
    free(buf);
    return 0;
}
