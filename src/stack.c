/* Coroutine stacks: mmap'd with a guard page below, pooled per loop, and a
 * SIGSEGV handler (on an alternate signal stack) that turns a fault in a
 * guard page into a message naming the stack size and how to raise it.
 *
 * Layout of one mapping, low to high addresses:
 *
 *   [ guard page, PROT_NONE ][ usable stack ... ][ struct corio_stack ]
 *
 * The header lives at the top so a stack needs no separate allocation.
 * Each stack costs two VMAs, which is why corio does not keep a stack per
 * idle connection (vm.max_map_count is 65530 by default). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#ifdef CORIO_ASAN
#include <sanitizer/common_interface_defs.h>
void corio__asan_start(void **fake, const void *bottom, size_t size)
{
    __sanitizer_start_switch_fiber(fake, bottom, size);
}
void corio__asan_finish(void *fake, const void **bottom, size_t *size)
{
    __sanitizer_finish_switch_fiber(fake, bottom, size);
}
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CORIO_VALGRIND 1
#endif
#endif

static size_t page_size(void)
{
    /* Loops on several threads may ask first at once: same value, but a
     * plain variable would be a data race. */
    static _Atomic size_t ps;
    size_t v = atomic_load_explicit(&ps, memory_order_relaxed);
    if (!v) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&ps, v, memory_order_relaxed);
    }
    return v;
}

struct corio_stack *corio__stack_get(corio_loop *loop, size_t size)
{
    SITE(s_mmap, "mmap");
    SITE(s_prot, "mprotect");
    size_t ps = page_size();
    size = (size + ps - 1) & ~(ps - 1);
    if (size < 4 * ps)
        size = 4 * ps;
    if (size == loop->stack_size && loop->stack_pool) {
        struct corio_stack *s = loop->stack_pool;
        loop->stack_pool = s->next;
        loop->nstack_pool--;
        return s;
    }
    size_t map_size = size + ps;
    char *map = sys_mmap(&s_mmap, map_size, PROT_READ | PROT_WRITE);
    if (!map)
        return NULL;
    if (sys_mprotect(&s_prot, map, ps, PROT_NONE) < 0) {
        munmap(map, map_size);
        return NULL;
    }
    struct corio_stack *s = (struct corio_stack *)(map + map_size - sizeof *s);
    s->next = NULL;
    s->map = map;
    s->map_size = map_size;
    s->base = map + ps;
    s->size = size;
#ifdef CORIO_VALGRIND
    VALGRIND_STACK_REGISTER(s->base, (char *)s);
#endif
    return s;
}

static void stack_unmap(struct corio_stack *s)
{
    munmap(s->map, s->map_size);
}

/* Bytes of s ever used: from its top down to the lowest page the kernel
 * has backed.  Anonymous pages are backed on first touch, so this is the
 * high-water mark.  Diagnostic only (CORIO_STACK_CHECK=1): mincore is
 * called outside the syscall seam, and a failure just skips the sample. */
static size_t stack_depth(const struct corio_stack *s)
{
    size_t ps = page_size(), pages = s->size / ps;
    unsigned char vec[4096];
    if (pages > sizeof vec || mincore(s->base, pages * ps, vec) < 0)
        return 0;
    size_t i = 0;
    while (i < pages && !(vec[i] & 1))
        i++;
    return (pages - i) * ps;
}

void corio__stack_put(corio_loop *loop, struct corio_stack *s)
{
    if (corio_unlikely(loop->stack_check)) {
        size_t d = stack_depth(s);
        if (d > loop->stack_high_water)
            loop->stack_high_water = d;
    }
    if (s->size == loop->stack_size && loop->nstack_pool < loop->stack_pool_max) {
        s->next = loop->stack_pool;
        loop->stack_pool = s;
        loop->nstack_pool++;
        return;
    }
    stack_unmap(s);
}

void corio__stack_pool_free(corio_loop *loop)
{
    while (loop->stack_pool) {
        struct corio_stack *s = loop->stack_pool;
        loop->stack_pool = s->next;
        stack_unmap(s);
    }
    loop->nstack_pool = 0;
}

/* ---- Stack overflow: a message instead of a bare SIGSEGV ---- */

static _Thread_local void *tls_altstack __attribute__((tls_model("initial-exec")));
static _Thread_local unsigned tls_altstack_users __attribute__((tls_model("initial-exec")));
static struct sigaction old_segv, old_bus;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_err;

static char *fmt_size(char *p, size_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 24);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    /* The running coroutine of this thread's loop, if any, is the suspect. */
    corio_loop *loop = corio__tls_loop;
    const struct corio_stack *s = loop && loop->cur ? loop->cur->stack : NULL;
    const char *a = si->si_addr;
    /* The guard page, or a little below it for a frame that jumped over. */
    if (s && a < (const char *)s->base && a >= (const char *)s->map - 65536) {
        char msg[400], *p = msg;
        static const char m1[] = "corio: stack overflow in a coroutine: its stack is ";
        static const char m2[] = " bytes.\ncorio: give it a larger stack with the stack_size argument of "
                                 "corio_spawn(),\ncorio: or raise the default with "
                                 "corio_loop_options.stack_size or CORIO_STACK_SIZE=<bytes>.\n";
        memcpy(p, m1, sizeof m1 - 1);
        p += sizeof m1 - 1;
        p = fmt_size(p, s->size);
        memcpy(p, m2, sizeof m2 - 1);
        p += sizeof m2 - 1;
        ssize_t w = write(2, msg, (size_t)(p - msg));
        (void)w;
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: put the previous handler back and let the fault repeat. */
    sigaction(sig, sig == SIGSEGV ? &old_segv : &old_bus, NULL);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &old_segv) < 0 || sigaction(SIGBUS, &sa, &old_bus) < 0)
        handler_err = -errno;
}

int corio__overflow_handler_install(void)
{
    pthread_once(&handler_once, install);
    return handler_err;
}

/* The handler runs on the faulting thread, whose stack is exhausted, so
 * each thread with a loop gets an alternate signal stack (unless it has
 * one already).  Counted, so the last loop of a thread removes it. */
int corio__altstack_setup(void)
{
    SITE(s_mmap, "mmap");
    if (tls_altstack_users++ > 0)
        return 0;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0; /* the application's own */
    size_t size = 64 * 1024;
    void *p = sys_mmap(&s_mmap, size, PROT_READ | PROT_WRITE);
    if (!p) {
        tls_altstack_users--;
        return -ENOMEM;
    }
    stack_t ss = {.ss_sp = p, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        int err = -errno;
        munmap(p, size);
        tls_altstack_users--;
        return err;
    }
    tls_altstack = p;
    return 0;
}

void corio__altstack_release(void)
{
    if (tls_altstack_users == 0 || --tls_altstack_users > 0 || !tls_altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(tls_altstack, 64 * 1024);
    tls_altstack = NULL;
}
