/* The core hooks corio for Python stands on: handing a loop to the thread
 * that runs it, telling the loop that the caller's own syscall drained an
 * fd, and watching an fd number that was closed behind corio's back and
 * reused (Python closes its sockets itself). */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static void fired(corio_loop *loop, corio_watcher *w, unsigned revents)
{
    (*(int *)w->data)++;
}

static void guard_fired(corio_loop *loop, corio_timer *t)
{
    corio_loop_stop(loop);
}

/* Runs single passes until *count reaches want or a second has passed. */
static void run_until(corio_loop *loop, int *count, int want)
{
    corio_timer guard;
    corio_timer_init(&guard, guard_fired, NULL);
    corio_timer_start(loop, &guard, corio_after(CORIO_SEC));
    int64_t end = corio_after(CORIO_SEC);
    while (*count < want && corio_now() < end)
        CHECK(corio_loop_run(loop, CORIO_RUN_ONCE) >= 0);
    corio_timer_stop(loop, &guard);
}

static void *run_elsewhere(void *arg)
{
    corio_loop *loop = arg;
    intptr_t before = corio_loop_run(loop, CORIO_RUN_NOWAIT);
    if (corio_loop_adopt(loop) != 0)
        return (void *)(intptr_t)-1;
    intptr_t after = corio_loop_run(loop, CORIO_RUN_NOWAIT);
    return (void *)(before == -CORIO_EWRONGLOOP && after >= 0 ? 0 : (intptr_t)-2);
}

TEST(python_hooks_loop_adopt)
{
    corio_loop *loop = test_loop();
    pthread_t th;
    void *res;
    CHECK_EQ(pthread_create(&th, NULL, run_elsewhere, loop), 0);
    CHECK_EQ(pthread_join(th, &res), 0);
    CHECK_EQ((intptr_t)res, 0);
    CHECK_EQ(corio_loop_run(loop, CORIO_RUN_NOWAIT), -CORIO_EWRONGLOOP);
    CHECK_EQ(corio_loop_adopt(loop), 0); /* back to this thread, to free it */
    test_loop_free(loop);
}

TEST(python_hooks_fd_drained)
{
    corio_loop *loop = test_loop();
    int sv[2], count = 0;
    char b[8];
    test_socketpair(sv);
    corio_watcher w;
    corio_watcher_init(&w, sv[0], CORIO_READABLE, CORIO_WATCH_EDGE, fired, &count);
    CHECK_EQ(corio_watcher_start(loop, &w), 0);
    CHECK_EQ(write(sv[1], "a", 1), 1);
    run_until(loop, &count, 1);
    CHECK_EQ(count, 1);
    /* Drained with a plain read: only the hint lets a level backend see the
     * next byte (epoll would report the new edge anyway). */
    CHECK_EQ(read(sv[0], b, sizeof b), 1);
    corio_fd_drained(loop, sv[0], CORIO_READABLE);
    CHECK_EQ(write(sv[1], "b", 1), 1);
    run_until(loop, &count, 2);
    CHECK_EQ(count, 2);
    corio_fd_drained(loop, -1, CORIO_READABLE);  /* harmless */
    corio_fd_drained(loop, 1 << 20, CORIO_WRITABLE);
    corio_watcher_stop(loop, &w);
    close(sv[0]);
    close(sv[1]);
    test_loop_free(loop);
}

TEST(python_hooks_fd_reused_behind_corio)
{
    corio_loop *loop = test_loop();
    int sv[2], count = 0;
    test_socketpair(sv);
    corio_watcher w;
    corio_watcher_init(&w, sv[0], CORIO_READABLE, 0, fired, &count);
    CHECK_EQ(corio_watcher_start(loop, &w), 0);
    CHECK_EQ(write(sv[1], "a", 1), 1);
    run_until(loop, &count, 1);
    CHECK(count >= 1);
    corio_watcher_stop(loop, &w);
    int old = sv[0];
    close(sv[0]); /* plain close: corio still thinks the fd is registered */
    close(sv[1]);
    test_socketpair(sv);
    CHECK_EQ(sv[0], old); /* the lowest free number comes back */
    count = 0;
    corio_watcher_init(&w, sv[0], CORIO_READABLE, 0, fired, &count);
    CHECK_EQ(corio_watcher_start(loop, &w), 0);
    CHECK_EQ(write(sv[1], "b", 1), 1);
    run_until(loop, &count, 1);
    CHECK(count >= 1);
    corio_watcher_stop(loop, &w);
    close(sv[0]);
    close(sv[1]);
    test_loop_free(loop);
}
