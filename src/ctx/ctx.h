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

/* Prepares ctx so that the first switch to it calls entry(arg) on the stack
 * [base, base + size).  entry must never return. */
void corio__ctx_make(corio_ctx *ctx, void *base, size_t size, corio_ctx_entry entry, void *arg);

#endif
