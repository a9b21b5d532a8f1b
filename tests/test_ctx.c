/* The context switch: every callee-saved register and the floating-point
 * control state survive switches; a stack overflow gives its message. */
#include <fenv.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_TEST_ASAN 1
#endif
#endif

#if defined(__x86_64__) || defined(__aarch64__)
#define HAVE_REGS_HELPER 1
uint64_t corio_test_regs(uint64_t seed, void (*fn)(void *), void *arg);
#endif

#ifdef HAVE_REGS_HELPER
struct regs_arg {
    uint64_t seed;
    int rounds;
    uint64_t bad; /* union of the masks that came back */
};

static void yield_fn(void *arg)
{
    (void)arg;
    corio_yield();
}

static void *regs_co(void *p)
{
    struct regs_arg *a = p;
    for (int i = 0; i < a->rounds; i++)
        a->bad |= corio_test_regs(a->seed + (uint64_t)i * 0x100, yield_fn, NULL);
    return NULL;
}

TEST(ctx_callee_saved_registers)
{
    corio_loop *loop = test_loop();
    struct regs_arg a[3] = {{0x1111000000000000ull, 50, 0},
                            {0x2222000000000000ull, 50, 0},
                            {0x3333000000000000ull, 50, 0}};
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_spawn(loop, NULL, regs_co, &a[i], 0), 0);
    test_run(loop);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(a[i].bad, 0);
    test_loop_free(loop);
}
#endif

/* Values the compiler keeps in callee-saved registers across the call. */
static void *pressure_co(void *p)
{
    long seed = (long)(intptr_t)p, bad = 0;
    for (int round = 0; round < 20; round++) {
        volatile long sink;
        long v0 = seed * 3 + round, v1 = seed * 5 + round, v2 = seed * 7 + round;
        long v3 = seed * 11 + round, v4 = seed * 13 + round, v5 = seed * 17 + round;
        double d0 = (double)seed * 1.5 + round, d1 = (double)seed * 2.5 + round;
        corio_yield();
        bad += v0 != seed * 3 + round || v1 != seed * 5 + round || v2 != seed * 7 + round;
        bad += v3 != seed * 11 + round || v4 != seed * 13 + round || v5 != seed * 17 + round;
        bad += d0 != (double)seed * 1.5 + round || d1 != (double)seed * 2.5 + round;
        sink = v0 + v1 + v2 + v3 + v4 + v5;
        (void)sink;
    }
    return (void *)(intptr_t)bad;
}

TEST(ctx_values_live_across_yield)
{
    corio_loop *loop = test_loop();
    corio_co *co[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_spawn(loop, &co[i], pressure_co, (void *)(intptr_t)((i + 1) * 1000), 0), 0);
    test_run(loop);
    for (int i = 0; i < 4; i++) {
        void *r;
        CHECK_EQ(corio_join(co[i], &r, CORIO_FOREVER), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    test_loop_free(loop);
}

/* The rounding mode (MXCSR and the x87 control word; FPCR on aarch64) is
 * each coroutine's own. */
static unsigned hw_fp_state(void)
{
#if defined(__x86_64__)
    unsigned mxcsr;
    unsigned short cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return (mxcsr & 0x6000) | ((unsigned)(cw & 0x0c00) << 4);
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return (unsigned)(fpcr & 0xc00000);
#else
    return (unsigned)fegetround();
#endif
}

struct fp_arg {
    int mode;
    unsigned state;
    int bad;
};

static void *fp_co(void *p)
{
    struct fp_arg *a = p;
    fesetround(a->mode);
    a->state = hw_fp_state();
    for (int i = 0; i < 10; i++) {
        corio_yield();
        if (fegetround() != a->mode || hw_fp_state() != a->state)
            a->bad++;
    }
    return NULL;
}

TEST(ctx_fp_control_state)
{
    corio_loop *loop = test_loop();
    struct fp_arg a[4] = {{FE_TONEAREST, 0, 0}, {FE_UPWARD, 0, 0}, {FE_DOWNWARD, 0, 0},
                          {FE_TOWARDZERO, 0, 0}};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_spawn(loop, NULL, fp_co, &a[i], 0), 0);
    test_run(loop);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(a[i].bad, 0);
    /* The loop's own stack keeps its mode too. */
    CHECK_EQ(fegetround(), FE_TONEAREST);
    test_loop_free(loop);
}

/* ---- Stack overflow ---- */

static int recurse(volatile char *prev, int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    if (depth > 100000000)
        return 0;
    return recurse(frame, depth + 1) + frame[1];
}

static void *overflow_co(void *p)
{
    (void)p;
    recurse(NULL, 0);
    return NULL;
}

TEST(ctx_stack_overflow_message)
{
    int out[2];
    CHECK(pipe(out) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 2);
        close(out[0]);
        close(out[1]);
        corio_loop *loop = test_loop();
        corio_spawn(loop, NULL, overflow_co, NULL, 32 * 1024);
        corio_loop_run(loop, CORIO_RUN_DEFAULT);
        _exit(0); /* not reached: the overflow aborts */
    }
    close(out[1]);
    char buf[2048];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(out[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = 0;
    close(out[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
    CHECK(strstr(buf, "stack overflow in a coroutine") != NULL);
    CHECK(strstr(buf, "its stack is 32768 bytes") != NULL);
    CHECK(strstr(buf, "CORIO_STACK_SIZE") != NULL);
}

/* A fault that is not an overflow still kills the process the usual way. */
TEST(ctx_other_segv_untouched)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        corio_loop *loop = test_loop();
        (void)loop;
        close(2);
        volatile uintptr_t bad = 16;
        *(volatile int *)bad = 1;
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
#if defined(__SANITIZE_ADDRESS__) || defined(CORIO_TEST_ASAN)
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0); /* ASan reported it */
#else
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGSEGV);
#endif
}
