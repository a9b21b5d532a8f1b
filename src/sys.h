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
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

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

#define SYS_RESULT(r) ((r) < 0 ? -errno : (r))

static inline ssize_t sys_read(struct corio__site *s, int fd, void *b, size_t n)
{
    FAULT_IO(s, n);
    ssize_t r = read(fd, b, n);
    return SYS_RESULT(r);
}

static inline ssize_t sys_write(struct corio__site *s, int fd, const void *b, size_t n)
{
    FAULT_IO(s, n);
    ssize_t r = write(fd, b, n);
    return SYS_RESULT(r);
}

static inline ssize_t sys_readv(struct corio__site *s, int fd, const struct iovec *iov, int cnt)
{
    FAULT(s);
    ssize_t r = readv(fd, iov, cnt);
    return SYS_RESULT(r);
}

static inline ssize_t sys_writev(struct corio__site *s, int fd, const struct iovec *iov, int cnt)
{
    FAULT(s);
    ssize_t r = writev(fd, iov, cnt);
    return SYS_RESULT(r);
}

static inline ssize_t sys_recv(struct corio__site *s, int fd, void *b, size_t n, int fl)
{
    FAULT_IO(s, n);
    ssize_t r = recv(fd, b, n, fl);
    return SYS_RESULT(r);
}

static inline ssize_t sys_send(struct corio__site *s, int fd, const void *b, size_t n, int fl)
{
    FAULT_IO(s, n);
    ssize_t r = send(fd, b, n, fl);
    return SYS_RESULT(r);
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

/* Allocation: through the user's allocator (corio_set_allocator). */
void *corio__malloc(struct corio__site *s, size_t n);
void *corio__calloc(struct corio__site *s, size_t n, size_t size);
void *corio__realloc(struct corio__site *s, void *p, size_t n);
void corio__free(void *p);

#endif
