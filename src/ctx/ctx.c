/* Building the first frame of a new context, per architecture.  The layout
 * each one writes is the frame its switch (x86_64.S, aarch64.S) pops. */
#include "ctx.h"

#include <stdint.h>
#include <string.h>

#if defined(CORIO_CTX_UCONTEXT)

#include <pthread.h>
#include <signal.h>

/* makecontext passes int arguments only, so the pointer travels in two. */
struct start_args {
    corio_ctx_entry entry;
    void *arg;
};

static void uc_start(unsigned hi, unsigned lo)
{
    struct start_args *a = (struct start_args *)(((uintptr_t)hi << 32) | lo);
    a->entry(a->arg);
}

void corio__ctx_make(corio_ctx *ctx, void *base, size_t size, corio_ctx_entry entry, void *arg)
{
    /* The arguments live at the top of the new stack until uc_start reads
     * them, which it does before anything else touches that stack. */
    char *top = (char *)base + size;
    struct start_args *a = (struct start_args *)(((uintptr_t)top - sizeof *a) & ~(uintptr_t)15);
    a->entry = entry;
    a->arg = arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = base;
    ctx->uc.uc_stack.ss_size = (size_t)((char *)a - (char *)base) & ~(size_t)15;
    ctx->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)a;
    makecontext(&ctx->uc, (void (*)(void))uc_start, 2, (unsigned)(p >> 32), (unsigned)p);
}

void corio__ctx_switch(corio_ctx *from, corio_ctx *to)
{
    /* swapcontext restores the signal mask `to` had when it left, but the
     * mask is the thread's (signal.c blocks signals from a coroutine and
     * expects them to stay blocked): carry the current one over. */
    pthread_sigmask(SIG_SETMASK, NULL, &to->uc.uc_sigmask);
    swapcontext(&from->uc, &to->uc);
}

#elif defined(__x86_64__)

void corio__ctx_start(void);

void corio__ctx_make(corio_ctx *ctx, void *base, size_t size, corio_ctx_entry entry, void *arg)
{
    uintptr_t top = ((uintptr_t)base + size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 80); /* 16-byte aligned, as the start needs */
    uint32_t mxcsr = 0x1f80;              /* all exceptions masked, round to nearest */
    uint16_t fpucw = 0x037f;              /* the x87 default: extended precision */
    memset(f, 0, 80);
    memcpy(&f[0], &mxcsr, sizeof mxcsr);
    memcpy((char *)&f[0] + 4, &fpucw, sizeof fpucw);
    f[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
    f[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    f[7] = (uint64_t)(uintptr_t)corio__ctx_start;
    ctx->sp = f;
}

#elif defined(__aarch64__)

void corio__ctx_start(void);

void corio__ctx_make(corio_ctx *ctx, void *base, size_t size, corio_ctx_entry entry, void *arg)
{
    uintptr_t top = ((uintptr_t)base + size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 176 - 16);
    memset(f, 0, 176);
    f[0] = (uint64_t)(uintptr_t)entry; /* x19 */
    f[1] = (uint64_t)(uintptr_t)arg;   /* x20 */
    f[11] = (uint64_t)(uintptr_t)corio__ctx_start; /* x30 */
    f[20] = 0;                         /* FPCR: round to nearest, no traps */
    ctx->sp = f;
}

#endif
