/* Prefork: the supervisor restarts a crashed worker, forwards SIGTERM,
 * kills a worker that ignores it, and N workers together hold more
 * connections than one process's descriptor cap allows. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* Shared by the test and every process it forks. */
struct shared {
    atomic_int starts[4];
    int report; /* write end of a pipe: one line per event */
    corio_addr addr;
    unsigned ignore_term; /* bit i: worker i ignores SIGTERM */
};

static struct shared *shared_new(void)
{
    struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    return sh;
}

static void say(struct shared *sh, const char *what, unsigned a, unsigned b)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%s %u %u\n", what, a, b);
    CHECK(write(sh->report, line, (size_t)n) == n);
}

/* Reads one line from fd within 10 s. */
static bool read_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1)
            return false;
        if (read(fd, &buf[n], 1) != 1)
            return false;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = 0;
    return true;
}

static pid_t start_supervisor(const corio_prefork_options *o, rlim_t nofile)
{
    pid_t sup = fork();
    CHECK(sup >= 0);
    if (sup == 0) {
        /* If the test dies, so do the supervisor and then its workers. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() == 1)
            _exit(101);
        if (nofile) {
            struct rlimit rl;
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = nofile;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        signal(SIGCHLD, SIG_IGN); /* the supervisor must cope with a caller's ignored SIGCHLD */
        int r = corio_prefork_run(o);
        _exit(r < 0 ? 100 : r);
    }
    return sup;
}

static int wait_exit(pid_t pid)
{
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static _Noreturn int crash_once(unsigned index, void *data)
{
    struct shared *sh = data;
    int n = atomic_fetch_add(&sh->starts[index], 1);
    if (sh->ignore_term & (1u << index))
        signal(SIGTERM, SIG_IGN);
    say(sh, "start", index, (unsigned)n);
    if (index == 0 && n == 0)
        raise(SIGKILL); /* the crash */
    for (;;)
        pause(); /* until SIGTERM */
}

TEST(prefork_restarts_crashed_worker)
{
    struct shared *sh = shared_new();
    int rep[2];
    CHECK_EQ(pipe2(rep, O_CLOEXEC), 0);
    sh->report = rep[1];
    corio_prefork_options o = {.workers = 2, .worker = crash_once, .data = sh,
                               .backoff_min = 10 * CORIO_MSEC};
    pid_t sup = start_supervisor(&o, 0);
    bool restarted = false, other = false;
    char line[64];
    while (!(restarted && other)) {
        CHECK(read_line(rep[0], line, sizeof line));
        if (strcmp(line, "start 0 1") == 0)
            restarted = true;
        if (strcmp(line, "start 1 0") == 0)
            other = true;
    }
    CHECK_EQ(kill(sup, SIGTERM), 0);
    CHECK_EQ(wait_exit(sup), 0); /* both ended cleanly on the forwarded signal */
    CHECK_EQ(atomic_load(&sh->starts[0]), 2);
    CHECK_EQ(atomic_load(&sh->starts[1]), 1);
    close(rep[0]);
    close(rep[1]);
    munmap(sh, sizeof *sh);
}

TEST(prefork_kills_a_worker_that_ignores_sigterm)
{
    struct shared *sh = shared_new();
    int rep[2];
    CHECK_EQ(pipe2(rep, O_CLOEXEC), 0);
    sh->report = rep[1];
    sh->ignore_term = 1u << 1;
    atomic_store(&sh->starts[0], 1); /* no crash this time */
    corio_prefork_options o = {.workers = 2, .worker = crash_once, .data = sh,
                               .shutdown_timeout = 100 * CORIO_MSEC};
    pid_t sup = start_supervisor(&o, 0);
    char line[64];
    for (int i = 0; i < 2; i++)
        CHECK(read_line(rep[0], line, sizeof line));
    int64_t t0 = corio_now();
    CHECK_EQ(kill(sup, SIGTERM), 0);
    CHECK_EQ(wait_exit(sup), 1); /* one worker had to be killed */
    int64_t took = corio_now() - t0;
    CHECK(took >= 100 * CORIO_MSEC);
    CHECK(took < 5 * CORIO_SEC);
    close(rep[0]);
    close(rep[1]);
    munmap(sh, sizeof *sh);
}

/* Past the descriptor cap: each worker may hold 100 descriptors, four of
 * them hold 240 connections (the kernel spreads them by a hash, so not
 * quite evenly). */
enum { CAP_WORKERS = 4, CAP_CONNS = 240, CAP_NOFILE = 100 };

static void hold_conn(corio_server *srv, int fd, void *data)
{
    (void)data;
    char c;
    while (corio_read(fd, &c, 1, corio_after(30 * CORIO_SEC)) == 1)
        if (corio_write(fd, &c, 1, corio_after(5 * CORIO_SEC)) != 1)
            break;
    corio_server_close(srv, fd);
}

struct cap_arg {
    struct shared *sh;
    unsigned index;
};

static void *cap_main(void *p)
{
    struct cap_arg *a = p;
    corio_listen_options lo = {.reuseport = true, .backlog = 256};
    corio_listener *l;
    CHECK_EQ(corio_net_listen_addr(&l, &a->sh->addr, &lo), 0);
    corio_server_options so = {.listener = l, .handler = hold_conn};
    CHECK_EQ(corio_server_start(corio_loop_current(), NULL, &so), 0);
    say(a->sh, "listening", a->index, 0);
    return NULL;
}

static int cap_worker(unsigned index, void *data)
{
    corio_loop *loop;
    if (corio_loop_new(&loop, NULL) < 0)
        return 2;
    struct cap_arg a = {data, index};
    if (corio_spawn(loop, NULL, cap_main, &a, 0) < 0)
        return 3;
    return corio_loop_run(loop, CORIO_RUN_DEFAULT) < 0 ? 4 : 0;
}

TEST_TIMEOUT(prefork_workers_pass_the_descriptor_cap, 60)
{
    struct shared *sh = shared_new();
    int rep[2];
    CHECK_EQ(pipe2(rep, O_CLOEXEC), 0);
    sh->report = rep[1];
    CHECK_EQ(corio_addr_parse(&sh->addr, "127.0.0.1:0"), 0);
    int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    CHECK_EQ(setsockopt(hold, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    CHECK_EQ(setsockopt(hold, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    CHECK_EQ(bind(hold, (struct sockaddr *)&sh->addr.ss, sh->addr.len), 0);
    socklen_t len = sizeof sh->addr.ss;
    CHECK_EQ(getsockname(hold, (struct sockaddr *)&sh->addr.ss, &len), 0);

    corio_prefork_options o = {.workers = CAP_WORKERS, .worker = cap_worker, .data = sh, .quiet = true};
    pid_t sup = start_supervisor(&o, CAP_NOFILE);
    char line[64];
    for (int i = 0; i < CAP_WORKERS; i++) {
        CHECK(read_line(rep[0], line, sizeof line));
        CHECK(strncmp(line, "listening", 9) == 0);
    }
    static int fds[CAP_CONNS];
    for (int i = 0; i < CAP_CONNS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK_EQ(connect(fds[i], (struct sockaddr *)&sh->addr.ss, sh->addr.len), 0);
        struct timeval tv = {.tv_sec = 10};
        CHECK_EQ(setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    }
    for (int i = 0; i < CAP_CONNS; i++) { /* every one is held and answered */
        char c = (char)('A' + i % 26), r = 0;
        CHECK_EQ(write(fds[i], &c, 1), 1);
        CHECK_EQ(read(fds[i], &r, 1), 1);
        CHECK_EQ(r, c);
    }
    CHECK(CAP_CONNS > CAP_NOFILE * 2); /* more than two processes could hold */
    for (int i = 0; i < CAP_CONNS; i++)
        close(fds[i]);
    CHECK_EQ(kill(sup, SIGTERM), 0);
    CHECK_EQ(wait_exit(sup), 0);
    close(hold);
    close(rep[0]);
    close(rep[1]);
    munmap(sh, sizeof *sh);
}
