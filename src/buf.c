/* Spare I/O buffers, per loop.  A stream takes a buffer when bytes arrive
 * and gives it back as soon as it is empty, so buffers change hands once
 * per message: a free list per power-of-two size makes that a few pointer
 * moves instead of a malloc and a free.  Sizes over 64 KiB are rare (a
 * long line, a large peek) and go straight to the allocator. */
#include "internal.h"

#define BUF_MAX ((size_t)1 << 40)

/* The power-of-two class that holds size (at most BUF_MAX): 0 is 4 KiB. */
static unsigned class_of(size_t size)
{
    unsigned c = 0;
    while (((size_t)1 << (BUF_MIN_SHIFT + c)) < size)
        c++;
    return c;
}

void *corio__buf_get(corio_loop *loop, size_t *size)
{
    SITE(s_malloc, "malloc");
    size_t want = *size ? *size : 1;
    if (want > BUF_MAX)
        return NULL; /* a corrupt length, not a buffer anyone can have */
    unsigned c = class_of(want);
    size_t cap = (size_t)1 << (BUF_MIN_SHIFT + c);
    if (c < BUF_CLASSES && loop->bufs.head[c]) {
        void *p = loop->bufs.head[c];
        loop->bufs.head[c] = *(void **)p;
        loop->bufs.count[c]--;
        *size = cap;
        return p;
    }
    void *p = corio__malloc(&s_malloc, cap);
    if (p)
        *size = cap;
    return p;
}

void corio__buf_put(corio_loop *loop, void *p, size_t size)
{
    unsigned c = class_of(size);
    if (c >= BUF_CLASSES || (size_t)(loop->bufs.count[c] + 1) * size > BUF_POOL_BYTES) {
        corio__free(p);
        return;
    }
    *(void **)p = loop->bufs.head[c];
    loop->bufs.head[c] = p;
    loop->bufs.count[c]++;
}

void corio__buf_pool_free(corio_loop *loop)
{
    for (unsigned c = 0; c < BUF_CLASSES; c++) {
        while (loop->bufs.head[c]) {
            void *p = loop->bufs.head[c];
            loop->bufs.head[c] = *(void **)p;
            corio__free(p);
        }
        loop->bufs.count[c] = 0;
    }
}
