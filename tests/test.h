/* The test framework: TEST(name) defines a test; the runner (runner.c)
 * runs each in its own process with a timeout, checks that it leaked no
 * fds and no memory, and ends with "N passed, N failed". */
#ifndef CORIO_TEST_H
#define CORIO_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "corio.h"

struct test_case {
    const char *name;
    const char *file;
    void (*fn)(void);
    int timeout_s; /* 0: the default */
};

#define TEST_TIMEOUT(tname, secs)                                                        \
    static void test_##tname(void);                                                      \
    static const struct test_case tcase_##tname                                          \
        __attribute__((used, section("corio_tests"), aligned(8))) = {#tname, __FILE__,  \
                                                                     test_##tname, secs}; \
    static void test_##tname(void)

#define TEST(tname) TEST_TIMEOUT(tname, 0)

_Noreturn void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(e)                                        \
    do {                                                \
        if (!(e))                                       \
            test_fail(__FILE__, __LINE__, "%s", #e);    \
    } while (0)

#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);                             \
        if (a_ != b_)                                                                   \
            test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);    \
    } while (0)

/* A loop for a test, on the backend the runner selected. */
corio_loop *test_loop(void);
/* Frees it, failing the test if anything is left on it. */
void test_loop_free(corio_loop *loop);
/* Runs loop until nothing is left, failing on error. */
void test_run(corio_loop *loop);
/* A connected, non-blocking socketpair. */
void test_socketpair(int sv[2]);
/* Bytes currently allocated through corio's allocator in this process. */
long long test_live_allocations(void);

#endif
