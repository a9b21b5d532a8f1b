/* The syscall seam.  Every syscall and allocation the library makes goes
 * through one of these wrappers, each call site naming itself with SITE().
 * The sites live in the "corio_sites" section, so a test can list every
 * one of them and make the Nth call at any site fail (fault.c).  When no
 * fault is armed the cost is one predictable branch on a read-mostly flag.
 *
 * The wrappers return >= 0 or -errno: errno never survives past them. */
#ifndef CORIO_SYS_H
#define CORIO_SYS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/signalfd.h>
#endif

#include "corio.h"

#define corio_likely(x) __builtin_expect(!!(x), 1)
#define corio_unlikely(x) __builtin_expect(!!(x), 0)

struct corio__site {
    const char *name; /* the syscall or "malloc" */
    const char *file;
    int line;
    unsigned calls; /* counted only while fault recording is on */
};

/* Declares the call site `var`.  The section keeps every site in one array
 * (ASan leaves globals in named sections alone, so the array stays dense). */
#define SITE(var, nm)                                                        \
    static struct corio__site var __attribute__((used, section("corio_sites"), \
                                                 aligned(8))) = {nm, __FILE__, __LINE__, 0}

/* Fault injection: set by the test seam in fault.c, read on every call. */
extern volatile int corio__fault_on;
#define CORIO__FAULT_SHORT 1 /* the call transfers fewer bytes than asked */
/* 0: no fault; CORIO__FAULT_SHORT; or -errno to return instead of the call. */
int corio__fault(struct corio__site *s);

/* For calls that move bytes: a fault can fail them or shorten them. */
#define FAULT_IO(s, n)                                                  \
    do {                                                                \
        if (corio_unlikely(corio__fault_on)) {                          \
            int f_ = corio__fault(s);                                   \
            if (f_ < 0)                                                 \
                return f_;                                              \
            if (f_ == CORIO__FAULT_SHORT && (n) > 1)                    \
                (n) = (n) / 2;                                          \
        }                                                               \
    } while (0)

#define FAULT(s)                                                        \
    do {                                                                \
        if (corio_unlikely(corio__fault_on)) {                          \
            int f_ = corio__fault(s);                                   \
            if (f_ < 0)                                                 \
                return f_;                                              \
        }                                                               \
    } while (0)

/* For vectored calls: a short transfer moves part of the first non-empty
 * buffer only, which is what a kernel under memory pressure does. */
static inline void corio__fault_short_iov(const struct iovec **iov, int *cnt, struct iovec *one)
{
    int i = 0;
    while (i < *cnt && (*iov)[i].iov_len == 0)
        i++;
    if (i == *cnt)
        return;
    *one = (*iov)[i];
    if (one->iov_len > 1) {
        one->iov_len /= 2;
    } else {
        int j = i + 1;
        while (j < *cnt && (*iov)[j].iov_len == 0)
            j++;
        if (j == *cnt)
            return; /* one byte in all: nothing shorter to move */
    }
    *iov = one;
    *cnt = 1;
}

#define FAULT_IOV(s, iov, cnt, one)                                     \
    do {                                                                \
        if (corio_unlikely(corio__fault_on)) {                          \
            int f_ = corio__fault(s);                                   \
            if (f_ < 0)                                                 \
                return f_;                                              \
            if (f_ == CORIO__FAULT_SHORT)                               \
                corio__fault_short_iov(&(iov), &(cnt), &(one));         \
        }                                                               \
    } while (0)

#define SYS_RESULT(r) ((r) < 0 ? -errno : (r))

static inline ssize_t sys_result(ssize_t r)
{
    return SYS_RESULT(r);
}

/* The calls that carry every message (read, write, send, recv and their
 * vectored forms) go straight to the kernel on Linux x86-64 and aarch64.
 * libc's wrappers are cancellation points: once the process has a second
 * thread (a blocking pool, more loops) each of them switches asynchronous
 * cancellation on and off around the syscall, two more calls and about 60
 * instructions per read and send, for fds that never block.  These calls
 * are therefore not cancellation points; corio never relied on that (its
 * I/O is interrupted by corio_cancel() and corio_close()).  Sanitizer
 * builds keep libc's wrappers, whose interceptors check the buffers. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORIO_SYS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CORIO_SYS_SANITIZED 1
#endif
#endif
#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__)) && !defined(CORIO_SYS_SANITIZED)
#include <sys/syscall.h>
/* The syscall nr with six arguments: the result, or -errno. */
static inline long corio__sys6(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#else
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory", "cc");
    return x0;
#endif
}
#define SYS_DIRECT(libc_call, nr, a, b, c, d, e, f) \
    corio__sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#else
#define SYS_DIRECT(libc_call, nr, a, b, c, d, e, f) sys_result(libc_call)
#endif

static inline ssize_t sys_read(struct corio__site *s, int fd, void *b, size_t n)
{
    FAULT_IO(s, n);
    return SYS_DIRECT(read(fd, b, n), SYS_read, fd, b, n, 0, 0, 0);
}

static inline ssize_t sys_write(struct corio__site *s, int fd, const void *b, size_t n)
{
    FAULT_IO(s, n);
    return SYS_DIRECT(write(fd, b, n), SYS_write, fd, b, n, 0, 0, 0);
}

static inline ssize_t sys_readv(struct corio__site *s, int fd, const struct iovec *iov, int cnt)
{
    struct iovec one;
    FAULT_IOV(s, iov, cnt, one);
    return SYS_DIRECT(readv(fd, iov, cnt), SYS_readv, fd, iov, cnt, 0, 0, 0);
}

static inline ssize_t sys_writev(struct corio__site *s, int fd, const struct iovec *iov, int cnt)
{
    struct iovec one;
    FAULT_IOV(s, iov, cnt, one);
    return SYS_DIRECT(writev(fd, iov, cnt), SYS_writev, fd, iov, cnt, 0, 0, 0);
}

static inline ssize_t sys_recv(struct corio__site *s, int fd, void *b, size_t n, int fl)
{
    FAULT_IO(s, n);
    return SYS_DIRECT(recv(fd, b, n, fl), SYS_recvfrom, fd, b, n, fl, 0, 0);
}

static inline ssize_t sys_send(struct corio__site *s, int fd, const void *b, size_t n, int fl)
{
    FAULT_IO(s, n);
    return SYS_DIRECT(send(fd, b, n, fl), SYS_sendto, fd, b, n, fl, 0, 0);
}

static inline int sys_accept4(struct corio__site *s, int fd, struct sockaddr *a, socklen_t *l,
                              int fl)
{
    FAULT(s);
    int r = accept4(fd, a, l, fl);
    return SYS_RESULT(r);
}

static inline int sys_connect(struct corio__site *s, int fd, const struct sockaddr *a,
                              socklen_t l)
{
    FAULT(s);
    int r = connect(fd, a, l);
    return SYS_RESULT(r);
}

static inline int sys_close(struct corio__site *s, int fd)
{
    /* An injected close failure still closes: that is what Linux does on
     * EINTR, and a close that leaks the fd would be no real kernel's. */
    int f = 0;
    if (corio_unlikely(corio__fault_on))
        f = corio__fault(s);
    int r = close(fd);
    r = SYS_RESULT(r);
    return f < 0 ? f : r;
}

static inline int sys_poll(struct corio__site *s, struct pollfd *p, nfds_t n, int ms)
{
    FAULT(s);
    int r = poll(p, n, ms);
    return SYS_RESULT(r);
}

static inline int sys_fcntl(struct corio__site *s, int fd, int cmd, long arg)
{
    FAULT(s);
    int r = fcntl(fd, cmd, arg);
    return SYS_RESULT(r);
}

static inline int sys_getsockopt(struct corio__site *s, int fd, int level, int name, void *v,
                                 socklen_t *l)
{
    FAULT(s);
    int r = getsockopt(fd, level, name, v, l);
    return SYS_RESULT(r);
}

static inline void *sys_mmap(struct corio__site *s, size_t len, int prot)
{
    if (corio_unlikely(corio__fault_on) && corio__fault(s) < 0)
        return NULL;
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static inline int sys_mprotect(struct corio__site *s, void *p, size_t len, int prot)
{
    FAULT(s);
    int r = mprotect(p, len, prot);
    return SYS_RESULT(r);
}

/* Sockets and files (net.c, stream.c). */
static inline int sys_socket(struct corio__site *s, int domain, int type, int proto)
{
    FAULT(s);
    int r = socket(domain, type, proto);
    return SYS_RESULT(r);
}

static inline int sys_bind(struct corio__site *s, int fd, const struct sockaddr *a, socklen_t l)
{
    FAULT(s);
    int r = bind(fd, a, l);
    return SYS_RESULT(r);
}

static inline int sys_listen(struct corio__site *s, int fd, int backlog)
{
    FAULT(s);
    int r = listen(fd, backlog);
    return SYS_RESULT(r);
}

static inline int sys_setsockopt(struct corio__site *s, int fd, int level, int name,
                                 const void *v, socklen_t l)
{
    FAULT(s);
    int r = setsockopt(fd, level, name, v, l);
    return SYS_RESULT(r);
}

static inline int sys_getsockname(struct corio__site *s, int fd, struct sockaddr *a, socklen_t *l)
{
    FAULT(s);
    int r = getsockname(fd, a, l);
    return SYS_RESULT(r);
}

static inline int sys_getpeername(struct corio__site *s, int fd, struct sockaddr *a, socklen_t *l)
{
    FAULT(s);
    int r = getpeername(fd, a, l);
    return SYS_RESULT(r);
}

static inline int sys_shutdown(struct corio__site *s, int fd, int how)
{
    FAULT(s);
    int r = shutdown(fd, how);
    return SYS_RESULT(r);
}

static inline ssize_t sys_sendto(struct corio__site *s, int fd, const void *b, size_t n, int fl,
                                 const struct sockaddr *a, socklen_t l)
{
    FAULT(s);
    ssize_t r = sendto(fd, b, n, fl, a, l);
    return SYS_RESULT(r);
}

static inline ssize_t sys_recvfrom(struct corio__site *s, int fd, void *b, size_t n, int fl,
                                   struct sockaddr *a, socklen_t *l)
{
    FAULT(s);
    ssize_t r = recvfrom(fd, b, n, fl, a, l);
    return SYS_RESULT(r);
}

static inline int sys_sendmmsg(struct corio__site *s, int fd, struct mmsghdr *m, unsigned n, int fl)
{
    FAULT(s);
    int r = sendmmsg(fd, m, n, fl);
    return SYS_RESULT(r);
}

static inline int sys_recvmmsg(struct corio__site *s, int fd, struct mmsghdr *m, unsigned n, int fl)
{
    FAULT(s);
    int r = recvmmsg(fd, m, n, fl, NULL);
    return SYS_RESULT(r);
}

static inline int sys_open(struct corio__site *s, const char *path, int flags)
{
    FAULT(s);
    int r = open(path, flags);
    return SYS_RESULT(r);
}

static inline int sys_unlink(struct corio__site *s, const char *path)
{
    FAULT(s);
    int r = unlink(path);
    return SYS_RESULT(r);
}

/* Files for corio-http's static route. */
static inline int sys_openat(struct corio__site *s, int dirfd, const char *path, int flags)
{
    FAULT(s);
    int r = openat(dirfd, path, flags);
    return SYS_RESULT(r);
}

static inline int sys_fstat(struct corio__site *s, int fd, struct stat *st)
{
    FAULT(s);
    int r = fstat(fd, st);
    return SYS_RESULT(r);
}

static inline ssize_t sys_sendfile(struct corio__site *s, int out, int in, off_t *off, size_t n)
{
    FAULT_IO(s, n);
    ssize_t r = sendfile(out, in, off, n);
    return SYS_RESULT(r);
}

/* Socket queue sizes (kstats.c: SIOCINQ, SIOCOUTQ). */
static inline int sys_ioctl(struct corio__site *s, int fd, unsigned long req, void *arg)
{
    FAULT(s);
    int r = ioctl(fd, req, arg);
    return SYS_RESULT(r);
}

/* Threads and signals (pool.c, signal.c).  pthread calls return the error
 * itself rather than setting errno. */
static inline int sys_pthread_create(struct corio__site *s, pthread_t *t, void *(*fn)(void *),
                                     void *arg)
{
    FAULT(s);
    return -pthread_create(t, NULL, fn, arg);
}

static inline int sys_sigmask(struct corio__site *s, int how, const sigset_t *set, sigset_t *old)
{
    FAULT(s);
    return -pthread_sigmask(how, set, old);
}

static inline int sys_sigaction(struct corio__site *s, int sig, const struct sigaction *act,
                                struct sigaction *old)
{
    FAULT(s);
    int r = sigaction(sig, act, old);
    return SYS_RESULT(r);
}

static inline int sys_pipe2(struct corio__site *s, int fds[2], int flags)
{
    FAULT(s);
    int r = pipe2(fds, flags);
    return SYS_RESULT(r);
}

#ifdef __linux__
static inline int sys_signalfd(struct corio__site *s, int fd, const sigset_t *set, int flags)
{
    FAULT(s);
    int r = signalfd(fd, set, flags);
    return SYS_RESULT(r);
}
#endif

/* CPU affinity and processes (mt.c, prefork.c). */
#ifdef __linux__
#include <sched.h>
static inline int sys_sched_getaffinity(struct corio__site *s, cpu_set_t *set)
{
    FAULT(s);
    int r = sched_getaffinity(0, sizeof *set, set);
    return SYS_RESULT(r);
}

/* Pins the calling thread. */
static inline int sys_sched_setaffinity(struct corio__site *s, const cpu_set_t *set)
{
    FAULT(s);
    int r = sched_setaffinity(0, sizeof *set, set);
    return SYS_RESULT(r);
}
#endif

static inline pid_t sys_fork(struct corio__site *s)
{
    FAULT(s);
    pid_t r = fork();
    return SYS_RESULT(r);
}

static inline int sys_kill(struct corio__site *s, pid_t pid, int sig)
{
    FAULT(s);
    int r = kill(pid, sig);
    return SYS_RESULT(r);
}

static inline pid_t sys_waitpid(struct corio__site *s, pid_t pid, int *status, int flags)
{
    FAULT(s);
    pid_t r = waitpid(pid, status, flags);
    return SYS_RESULT(r);
}

static inline int sys_sigtimedwait(struct corio__site *s, const sigset_t *set, siginfo_t *info,
                                   const struct timespec *timeout)
{
    FAULT(s);
    int r = sigtimedwait(set, info, timeout);
    return SYS_RESULT(r);
}

#ifdef __linux__
#include <sys/prctl.h>
static inline int sys_prctl(struct corio__site *s, int option, unsigned long arg)
{
    FAULT(s);
    int r = prctl(option, arg, 0UL, 0UL, 0UL);
    return SYS_RESULT(r);
}
#endif

/* Allocation: through the user's allocator (corio_set_allocator). */
void *corio__malloc(struct corio__site *s, size_t n);
void *corio__calloc(struct corio__site *s, size_t n, size_t size);
void *corio__realloc(struct corio__site *s, void *p, size_t n);
void corio__free(void *p);

#endif
