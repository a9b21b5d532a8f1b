/* Spare I/O buffers, per loop.  A stream takes a buffer when bytes arrive
 * and gives it back as soon as it is empty, so buffers change hands once
 * per message: a free list per power-of-two size makes that a few pointer
 * moves instead of a malloc and a free (the hit paths are inline, in
 * internal.h).  Sizes over 64 KiB are rare (a long line, a large peek)
 * and go straight to the allocator. */
#include "internal.h"

#define BUF_MAX ((size_t)1 << 40)

/* corio__buf_get() when the class's free list is empty, or there is none. */
void *corio__buf_get_slow(corio_loop *loop, size_t *size)
{
    (void)loop;
    SITE(s_malloc, "malloc");
    if (*size > BUF_MAX)
        return NULL; /* a corrupt length, not a buffer anyone can have */
    unsigned c = corio__buf_class(*size);
    size_t cap = (size_t)1 << (BUF_MIN_SHIFT + c);
    void *p = corio__malloc(&s_malloc, cap);
    if (p)
        *size = cap;
    return p;
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
