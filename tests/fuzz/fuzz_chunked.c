/* libFuzzer target for the chunked decoder: decoding in place at once and
 * in pieces of every size the input picks must give the same bytes, the
 * same end and the same refusals, within the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../apps/http/parser.c"

struct outcome {
    long r;       /* the decoder's last answer */
    size_t len;   /* decoded bytes */
    char *data;   /* decoded bytes, then what followed the body */
    size_t after; /* bytes after the body */
};

static void decode(const uint8_t *in, size_t size, size_t step, uint64_t max, struct outcome *o)
{
    o->data = malloc(size ? size : 1);
    struct http_chunked d;
    http_chunked_init(&d, max);
    size_t fed = 0;
    o->len = 0;
    o->after = 0;
    o->r = HTTP_MORE;
    while (o->r == HTTP_MORE && fed < size) {
        size_t k = size - fed < step ? size - fed : step;
        memcpy(o->data + o->len, in + fed, k);
        fed += k;
        size_t n = k;
        o->r = http_chunked_decode(&d, o->data + o->len, &n);
        if (o->r < HTTP_MORE)
            return;
        if (n > k)
            abort();
        o->len += n;
    }
    if (o->r >= 0) {
        /* What the decoder left plus what was not fed yet. */
        memcpy(o->data + o->len + o->r, in + fed, size - fed);
        o->after = (size_t)o->r + (size - fed);
        if (o->len + o->after > size || d.total != o->len)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = 1 + data[0] % 16;
    uint64_t max = data[1] & 1 ? 1000 : UINT64_MAX >> 1;
    data += 2;
    size -= 2;
    struct outcome a, b;
    decode(data, size, size ? size : 1, max, &a);
    decode(data, size, step, max, &b);
    if (a.r >= 0 || b.r >= 0 || a.r < HTTP_MORE || b.r < HTTP_MORE) {
        bool ends_a = a.r >= 0, ends_b = b.r >= 0;
        if (ends_a != ends_b || (a.r < HTTP_MORE) != (b.r < HTTP_MORE))
            abort();
        if (a.r < HTTP_MORE && a.r != b.r)
            abort(); /* the same refusal */
        if (ends_a && (a.len != b.len || a.after != b.after ||
                       memcmp(a.data, b.data, a.len + a.after) != 0))
            abort();
    }
    free(a.data);
    free(b.data);
    return 0;
}
