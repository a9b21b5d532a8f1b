/* Test runner: forks each test with a timeout, reports the failures with
 * their output, and checks every test for leaked fds and memory.
 *
 *   corio-test [-l] [-t secs] [name-substring ...]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

extern const struct test_case __start_corio_tests[], __stop_corio_tests[];

/* ---- Helpers for tests ---- */

_Noreturn void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    _exit(1);
}

/* Counting allocator: every live block carries its size in a header. */
/* Atomic: tests with several loops allocate from several threads. */
static _Atomic long long live_bytes, live_blocks;
static void *count_malloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    *p = n;
    live_bytes += (long long)n;
    live_blocks++;
    return (char *)p + 16;
}
static void count_free(void *q)
{
    if (!q)
        return;
    size_t *p = (size_t *)((char *)q - 16);
    live_bytes -= (long long)*p;
    live_blocks--;
    free(p);
}
static void *count_realloc(void *q, size_t n)
{
    if (!q)
        return count_malloc(n);
    size_t *p = (size_t *)((char *)q - 16), old = *p;
    size_t *np = realloc(p, n + 16);
    if (!np)
        return NULL;
    *np = n;
    live_bytes += (long long)n - (long long)old;
    return (char *)np + 16;
}

long long test_live_allocations(void)
{
    return live_bytes;
}

corio_loop *test_loop(void)
{
    corio_loop *loop = NULL;
    int r = corio_loop_new(&loop, NULL);
    if (r < 0)
        test_fail(__FILE__, __LINE__, "corio_loop_new: %s", corio_strerror(r));
    return loop;
}

void test_loop_free(corio_loop *loop)
{
    int r = corio_loop_free(loop);
    if (r < 0)
        test_fail(__FILE__, __LINE__, "corio_loop_free: %s (something left on the loop)",
                  corio_strerror(r));
}

void test_run(corio_loop *loop)
{
    int r = corio_loop_run(loop, CORIO_RUN_DEFAULT);
    if (r < 0)
        test_fail(__FILE__, __LINE__, "corio_loop_run: %s", corio_strerror(r));
}

void test_socketpair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        test_fail(__FILE__, __LINE__, "socketpair: %s", strerror(errno));
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ---- The runner ---- */

static void run_child(const struct test_case *t)
{
    corio_allocator a = {count_malloc, count_realloc, count_free};
    corio_set_allocator(&a);
    int fds = count_fds();
    t->fn();
    int after = count_fds();
    if (after != fds)
        test_fail(t->file, 0, "%s leaked %d fd(s)", t->name, after - fds);
    if (live_blocks != 0)
        test_fail(t->file, 0, "%s leaked %lld block(s), %lld bytes", t->name, live_blocks, live_bytes);
    fflush(stdout);
    _exit(0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one test; returns true if it passed. */
static bool run_one(const struct test_case *t, int timeout_s, bool verbose)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0) {
        perror("pipe2");
        exit(2);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* so a timeout kills the test's helpers too */
        close(out[0]);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(out[1]);
        run_child(t);
    }
    close(out[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    double start = now_s(), deadline = start + timeout_s;
    bool timed_out = false;
    for (;;) {
        int ms = (int)((deadline - now_s()) * 1000);
        if (ms <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(out[0], buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (timed_out)
        kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    close(out[0]);
    double took = now_s() - start;
    bool ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok || verbose) {
        printf("%s %s (%.2fs)", ok ? "ok  " : "FAIL", t->name, took);
        if (timed_out)
            printf(": timed out after %d s", timeout_s);
        else if (WIFSIGNALED(status))
            printf(": killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else if (!ok)
            printf(": exit status %d", WEXITSTATUS(status));
        printf("\n");
        if (!ok && len)
            printf("---- output of %s ----\n%.*s---- end ----\n", t->name, (int)len, buf);
    }
    free(buf);
    return ok;
}

static bool selected(const char *name, int argc, char **argv, int first)
{
    if (first >= argc)
        return true;
    for (int i = first; i < argc; i++)
        if (strstr(name, argv[i]))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    int timeout_s = 60, first = 1;
    bool list = false, verbose = getenv("V") != NULL;
    while (first < argc && argv[first][0] == '-') {
        if (strcmp(argv[first], "-l") == 0)
            list = true;
        else if (strcmp(argv[first], "-v") == 0)
            verbose = true;
        else if (strcmp(argv[first], "-t") == 0 && first + 1 < argc)
            timeout_s = atoi(argv[++first]);
        first++;
    }
    signal(SIGPIPE, SIG_IGN);
    const char *backend = getenv("CORIO_BACKEND");
    int passed = 0, failed = 0;
    if (!list)
        printf("corio tests, backend %s\n", backend && *backend ? backend : "default");
    for (const struct test_case *t = __start_corio_tests; t < __stop_corio_tests; t++) {
        if (!selected(t->name, argc, argv, first))
            continue;
        if (list) {
            printf("%s\n", t->name);
            continue;
        }
        if (run_one(t, t->timeout_s ? t->timeout_s : timeout_s, verbose))
            passed++;
        else
            failed++;
    }
    if (!list)
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
