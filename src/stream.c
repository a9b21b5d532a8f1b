/* Buffered streams: an input buffer and an output buffer over one stream
 * fd, with Python's StreamReader/StreamWriter calls.
 *
 * Input: bytes [rpos, rend) of rbuf are buffered.  The buffer comes from
 * the loop's pool (buf.c) when bytes are wanted and goes back whenever it
 * is empty and the stream must wait (or is closed), so an idle stream
 * holds none and a busy one keeps the same buffer from read to read.
 * Output: bytes [wpos, wend) of wbuf are pending; every write appends
 * there, and a flush sends them with one send(2) when the socket has room.
 *
 * One syscall saved per message: after a read that came back short, the
 * kernel had nothing more at that moment, and edge-triggered epoll will
 * report anything that arrives later.  So the next read need not try
 * first (it would only get EAGAIN), provided no event for anyone has been
 * delivered since (loop->pass unchanged: the edge is still queued in the
 * kernel) and the peer has not closed (a FIN shows up in no short read).
 * Level-triggered backends report readiness anyway. */
#include <string.h>
#include <sys/socket.h>

#include "backend.h"

#define READ_SIZE_DEFAULT (16u << 10)
#define WRITE_SIZE_MIN (4u << 10)
_Static_assert(WRITE_SIZE_MIN == 1u << BUF_MIN_SHIFT, "the smallest output buffer is pool class 0");
#define HIGH_WATER_DEFAULT (64u << 10)
/* read_exactly() of more than this copies as bytes arrive instead of
 * growing the input buffer to the whole size. */
#define EXACT_IN_BUFFER (64u << 10)

struct corio_stream {
    corio_loop *loop;
    int fd;
    int werr;           /* sticky output error, or 0 */
    char *rbuf;         /* input buffer, or NULL while empty */
    size_t rcap, rpos, rend;
    char *wbuf;         /* output buffer, or NULL while nothing is pending */
    size_t wcap, wpos, wend;
    uint32_t read_size;
    uint32_t high, low; /* output water marks */
    uint32_t short_pass; /* loop->pass before the last read that came back short */
    bool short_read;    /* ... and no read has been tried since */
    bool eof;           /* the fd reported end of stream */
    bool shut;          /* shutdown() done: no more output */
    bool keep_fd;
    bool not_sock;      /* send(2) said ENOTSOCK (a pipe): use write(2) */
    uint8_t rclass;     /* the pool class of read_size, or BUF_CLASSES if none */
};
/* Without a buffer, rbuf is NULL and rcap, rpos and rend are 0 (wbuf, wcap,
 * wpos and wend alike): the fast paths below count on it.  A field added
 * here that is not an option must be reset by fields_reset(). */

/* What an idle connection costs (DESIGN.md: 128 bytes or less, fd slot
 * aside); it holds no buffer while it waits. */
_Static_assert(sizeof(struct corio_stream) <= 112, "a stream is part of every connection");

/* Errors after which output can go on (the caller may retry). */
static bool transient(ssize_t err)
{
    return err == -ETIMEDOUT || err == -ECANCELED || err == -EAGAIN || err == -CORIO_ENOTCO ||
           err == -ENOMEM;
}

static uint8_t read_class(size_t read_size)
{
    unsigned c = corio__buf_class(read_size);
    return (uint8_t)(c < BUF_CLASSES ? c : BUF_CLASSES);
}

int corio_stream_open(corio_stream **out, int fd, const corio_stream_options *opts)
{
    SITE(s_malloc, "malloc");
    corio_stream_options o = {0};
    if (opts)
        o = *opts;
    corio_loop *loop = corio__tls_loop;
    if (!loop)
        return -CORIO_ENOTCO;
    if (fd < 0)
        return -EBADF;
    size_t high = o.high_water ? o.high_water : HIGH_WATER_DEFAULT;
    size_t low = o.low_water ? o.low_water : high / 4;
    size_t rsize = o.read_size ? o.read_size : READ_SIZE_DEFAULT;
    if (low > high || high > UINT32_MAX || rsize > UINT32_MAX)
        return -EINVAL;
    corio_stream *s = corio__malloc(&s_malloc, sizeof *s);
    if (!s)
        return -ENOMEM;
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->fd = fd;
    s->read_size = (uint32_t)rsize;
    s->high = (uint32_t)high;
    s->low = (uint32_t)low;
    s->keep_fd = o.keep_fd;
    s->rclass = read_class(rsize);
    *out = s;
    return 0;
}

int corio_stream_fd(const corio_stream *s)
{
    return s->fd;
}

size_t corio_stream_memory(const corio_stream *s)
{
    return (s->rbuf ? s->rcap : 0) + (s->wbuf ? s->wcap : 0);
}

/* ---- Input buffer ---- */

static inline void rbuf_release(corio_stream *s)
{
    if (s->rbuf) {
        /* Usually of the read size, whose class is known. */
        if (s->rclass < BUF_CLASSES && s->rcap == (size_t)1 << (BUF_MIN_SHIFT + s->rclass))
            corio__buf_push(s->loop, s->rbuf, s->rclass);
        else
            corio__buf_put(s->loop, s->rbuf, s->rcap);
    }
    s->rbuf = NULL;
    s->rcap = s->rpos = s->rend = 0;
}

/* rbuf_ensure() when the buffer is missing or has no room. */
static int rbuf_grow(corio_stream *s, size_t need)
{
    size_t have = s->rend - s->rpos;
    if (s->rbuf && s->rcap >= need && have < s->rcap) {
        memmove(s->rbuf, s->rbuf + s->rpos, have);
        s->rpos = 0;
        s->rend = have;
        return 0;
    }
    size_t cap = s->rbuf ? s->rcap * 2 : s->read_size;
    if (cap < need)
        cap = need;
    char *p = corio__buf_get(s->loop, &cap);
    if (!p)
        return -ENOMEM;
    if (have)
        memcpy(p, s->rbuf + s->rpos, have);
    if (s->rbuf)
        corio__buf_put(s->loop, s->rbuf, s->rcap);
    s->rbuf = p;
    s->rcap = cap;
    s->rpos = 0;
    s->rend = have;
    return 0;
}

/* Makes room to hold `need` bytes from rpos on, with at least one byte
 * free after rend: compacts, or moves to a larger buffer.  (Without a
 * buffer rcap is 0, so the first test fails.) */
static inline int rbuf_ensure(corio_stream *s, size_t need)
{
    if (corio_likely(s->rend < s->rcap && s->rcap - s->rpos >= need))
        return 0;
    /* The usual miss, once per message: the buffer went back before the
     * last wait, and the pool has a spare of the stream's read size. */
    if (!s->rbuf && need <= s->read_size && s->rclass < BUF_CLASSES) {
        char *p = corio__buf_pop(s->loop, s->rclass);
        if (corio_likely(p != NULL)) {
            s->rbuf = p;
            s->rcap = (size_t)1 << (BUF_MIN_SHIFT + s->rclass);
            return 0;
        }
    }
    return rbuf_grow(s, need);
}

/* One read attempt into dst, never parking.  Returns the count, 0 at end of
 * stream, -EAGAIN, or the error. */
static ssize_t in_try(corio_stream *s, void *dst, size_t n)
{
    uint32_t pass = s->loop->pass;
    ssize_t r = corio__read(s->loop, s->fd, dst, n, CORIO_NOWAIT);
    s->short_read = r > 0 && (size_t)r < n;
    s->short_pass = pass;
    if (r == 0)
        s->eof = true;
    return r;
}

/* When trying a read now could only give EAGAIN (see the top), the fd's
 * slot, with the loop's cached readiness dropped as an EAGAIN would drop
 * it, so whatever waits next (this stream, corio_park(), corio_wait_fd())
 * waits for the next edge without asking the kernel first; else NULL. */
static inline __attribute__((always_inline)) struct corio_fdslot *in_drained(const corio_stream *s)
{
    if (!s->short_read || s->loop->pass != s->short_pass || !s->loop->edge)
        return NULL;
    struct corio_fdslot *slot = corio__fd_slot(s->loop, s->fd, false);
    if (!slot || (slot->ready & (CORIO_RDHUP | CORIO_HUP | CORIO_ERROR)))
        return NULL;
    slot->ready &= (uint8_t)~CORIO_READABLE;
    return slot;
}

/* Parks until the fd is readable, holding no empty buffer meanwhile.
 * slot: the fd's slot when in_drained() found it, else NULL. */
static inline __attribute__((always_inline)) int in_wait(corio_stream *s, struct corio_fdslot *slot,
                                                         int64_t deadline)
{
    s->short_read = false;
    if (s->rbuf && s->rpos == s->rend)
        rbuf_release(s);
    int r = corio__fd_cannot_wait(s->loop, deadline);
    if (r < 0)
        return r;
    if (!slot && !(slot = corio__fd_slot(s->loop, s->fd, true)))
        return -ENOMEM;
    r = corio__fd_wait_slot(s->loop, slot, s->fd, CORIO_READABLE, deadline);
    return r < 0 ? r : 0;
}

/* Reads once into the buffer, which is grown to hold `need` bytes.
 * Returns the count (> 0), 0 at end of stream, or -errno.  Parks.  The
 * drained test comes first: a stream about to wait takes no buffer.
 * Inline, as the wait in it, so that a stream parked for input holds the
 * frames of its caller and of the public call only: thousands of parked
 * stacks, each resumed per message, each frame a cache line to miss. */
static inline __attribute__((always_inline)) ssize_t fill(corio_stream *s, size_t need,
                                                          int64_t deadline)
{
    if (s->eof)
        return 0;
    for (;;) {
        struct corio_fdslot *slot = in_drained(s);
        if (!slot) {
            int e = rbuf_ensure(s, need);
            if (e < 0)
                return e;
            ssize_t r = in_try(s, s->rbuf + s->rend, s->rcap - s->rend);
            if (r > 0)
                s->rend += (size_t)r;
            if (r != -EAGAIN)
                return r;
        }
        int e = in_wait(s, slot, deadline);
        if (e < 0)
            return e;
    }
}

/* A read straight into the caller's memory, for reads as large as the
 * buffer: no copy, and no buffer taken. */
static ssize_t read_direct(corio_stream *s, void *dst, size_t n, int64_t deadline)
{
    if (s->eof)
        return 0;
    for (;;) {
        struct corio_fdslot *slot = in_drained(s);
        if (!slot) {
            ssize_t r = in_try(s, dst, n);
            if (r != -EAGAIN)
                return r;
        }
        int e = in_wait(s, slot, deadline);
        if (e < 0)
            return e;
    }
}

#define OWNED_OR_FAIL(s)                   \
    do {                                   \
        if (!corio__loop_owned((s)->loop)) \
            return -CORIO_EWRONGLOOP;      \
    } while (0)

size_t corio_stream_buffered(const corio_stream *s, const void **view)
{
    if (view)
        *view = s->rbuf ? s->rbuf + s->rpos : NULL;
    return s->rend - s->rpos;
}

size_t corio_stream_consume(corio_stream *s, size_t n)
{
    size_t have = s->rend - s->rpos;
    if (n > have)
        n = have;
    s->rpos += n;
    if (s->rpos == s->rend) /* keep it for the next read: it goes back before a wait */
        s->rpos = s->rend = 0;
    return n;
}

bool corio_stream_eof(const corio_stream *s)
{
    return s->eof;
}

ssize_t corio_stream_read(corio_stream *s, void *buf, size_t n, int64_t deadline)
{
    OWNED_OR_FAIL(s);
    if (n == 0)
        return 0;
    if (s->rpos == s->rend) {
        if (n >= s->read_size)
            return read_direct(s, buf, n, deadline);
        ssize_t r = fill(s, 1, deadline);
        if (r <= 0)
            return r;
    }
    size_t have = s->rend - s->rpos;
    if (n > have)
        n = have;
    memcpy(buf, s->rbuf + s->rpos, n);
    corio_stream_consume(s, n);
    return (ssize_t)n;
}

ssize_t corio_stream_peek(corio_stream *s, size_t n, const void **view, int64_t deadline)
{
    OWNED_OR_FAIL(s);
    while (s->rend - s->rpos < n) {
        ssize_t r = fill(s, n, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            return -CORIO_EEOF;
    }
    *view = s->rbuf ? s->rbuf + s->rpos : NULL;
    return (ssize_t)(s->rend - s->rpos);
}

/* Puts bytes that a failed large read_exactly() took back in front of the
 * input, so the failure consumes nothing. */
static int unread(corio_stream *s, const void *p, size_t n)
{
    size_t have = s->rend - s->rpos, cap = n + have;
    char *b = corio__buf_get(s->loop, &cap);
    if (!b)
        return -ENOMEM;
    memcpy(b, p, n);
    if (have)
        memcpy(b + n, s->rbuf + s->rpos, have);
    rbuf_release(s);
    s->rbuf = b;
    s->rcap = cap;
    s->rpos = 0;
    s->rend = n + have;
    return 0;
}

ssize_t corio_stream_read_exactly(corio_stream *s, void *buf, size_t n, int64_t deadline)
{
    OWNED_OR_FAIL(s);
    if (n <= EXACT_IN_BUFFER) {
        const void *v;
        ssize_t r = corio_stream_peek(s, n, &v, deadline);
        if (r < 0)
            return r;
        memcpy(buf, v, n);
        corio_stream_consume(s, n);
        return (ssize_t)n;
    }
    size_t got = corio_stream_buffered(s, NULL);
    if (got) {
        memcpy(buf, s->rbuf + s->rpos, got);
        corio_stream_consume(s, got);
    }
    while (got < n) {
        ssize_t r = read_direct(s, (char *)buf + got, n - got, deadline);
        if (r <= 0) {
            int e = unread(s, buf, got);
            return e < 0 ? e : r == 0 ? -CORIO_EEOF : r;
        }
        got += (size_t)r;
    }
    return (ssize_t)n;
}

/* The first delimiter in the buffered bytes [from, to) (offsets from rpos),
 * as an offset, or -1. */
static ssize_t find(const corio_stream *s, size_t from, size_t to, const char *d, size_t dlen)
{
    if (to - from < dlen)
        return -1;
    const char *base = s->rbuf + s->rpos;
    const char *hit = dlen == 1 ? memchr(base + from, d[0], to - from)
                                : memmem(base + from, to - from, d, dlen);
    return hit ? hit - base : -1;
}

ssize_t corio_stream_read_until(corio_stream *s, const void *delim, size_t dlen, const char **out,
                                size_t max, int64_t deadline)
{
    OWNED_OR_FAIL(s);
    if (dlen == 0 || max < dlen)
        return -EINVAL;
    size_t scanned = 0; /* bytes known to hold no delimiter start */
    for (;;) {
        size_t have = s->rend - s->rpos, limit = have < max ? have : max;
        ssize_t at = s->rbuf ? find(s, scanned, limit, delim, dlen) : -1;
        if (at >= 0) {
            size_t len = (size_t)at + dlen;
            *out = s->rbuf + s->rpos;
            s->rpos += len; /* the bytes stay put until the next call */
            return (ssize_t)len;
        }
        if (have >= max)
            return -CORIO_ETOOLONG;
        scanned = have >= dlen ? have - dlen + 1 : 0;
        size_t need = have + 1 > s->read_size ? have + 1 : s->read_size;
        ssize_t r = fill(s, need < max ? need : max, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            return have ? -CORIO_EEOF : 0;
    }
}

ssize_t corio_stream_readline(corio_stream *s, const char **line, size_t max, int64_t deadline)
{
    return corio_stream_read_until(s, "\n", 1, line, max, deadline);
}

/* ---- Output ---- */

static inline void wbuf_release(corio_stream *s)
{
    if (s->wbuf) {
        if (s->wcap == WRITE_SIZE_MIN) /* usually: pool class 0 */
            corio__buf_push(s->loop, s->wbuf, 0);
        else
            corio__buf_put(s->loop, s->wbuf, s->wcap);
    }
    s->wbuf = NULL;
    s->wcap = s->wpos = s->wend = 0;
}

/* wbuf_ensure() when the buffer is missing or too full. */
static int wbuf_grow(corio_stream *s, size_t n)
{
    size_t have = s->wend - s->wpos;
    if (n > SIZE_MAX / 2 - have)
        return -ENOMEM;
    if (s->wbuf && s->wcap >= have + n) {
        memmove(s->wbuf, s->wbuf + s->wpos, have);
        s->wpos = 0;
        s->wend = have;
        return 0;
    }
    size_t cap = have + n > s->wcap * 2 ? have + n : s->wcap * 2;
    if (cap < WRITE_SIZE_MIN)
        cap = WRITE_SIZE_MIN;
    char *p = corio__buf_get(s->loop, &cap);
    if (!p)
        return -ENOMEM;
    if (have)
        memcpy(p, s->wbuf + s->wpos, have);
    if (s->wbuf)
        corio__buf_put(s->loop, s->wbuf, s->wcap);
    s->wbuf = p;
    s->wcap = cap;
    s->wpos = 0;
    s->wend = have;
    return 0;
}

/* Room for n more bytes after wend (a buffer even for n == 0). */
static inline int wbuf_ensure(corio_stream *s, size_t n)
{
    if (corio_likely(s->wbuf && s->wcap - s->wend >= n))
        return 0;
    /* The usual miss, once per message: the last flush gave it back. */
    if (!s->wbuf && n <= WRITE_SIZE_MIN) {
        char *p = corio__buf_pop(s->loop, 0);
        if (corio_likely(p != NULL)) {
            s->wbuf = p;
            s->wcap = WRITE_SIZE_MIN;
            return 0;
        }
    }
    return wbuf_grow(s, n);
}

static ssize_t out_send(corio_stream *s, const void *p, size_t n, int64_t deadline)
{
    if (!s->not_sock) {
        /* send(2), not write(2): MSG_NOSIGNAL, so a closed peer is -EPIPE
         * rather than a SIGPIPE that kills the process. */
        ssize_t r = corio__send(s->loop, s->fd, p, n, 0, deadline);
        if (r != -ENOTSOCK)
            return r;
        s->not_sock = true;
    }
    return corio__write(s->loop, s->fd, p, n, deadline);
}

/* Sends until at most `target` bytes are pending. */
static int flush_to(corio_stream *s, size_t target, int64_t deadline)
{
    if (s->werr)
        return s->werr;
    while (s->wend - s->wpos > target) {
        ssize_t r = out_send(s, s->wbuf + s->wpos, s->wend - s->wpos, deadline);
        if (r < 0) {
            if (!transient(r))
                s->werr = (int)r;
            return (int)r;
        }
        s->wpos += (size_t)r;
    }
    if (s->wpos == s->wend)
        wbuf_release(s);
    return 0;
}

/* What every output call checks first. */
static inline int out_ready(corio_stream *s, int64_t deadline)
{
    if (corio_likely(!s->werr && !s->shut && s->wend - s->wpos <= s->high))
        return 0;
    if (s->werr)
        return s->werr;
    if (s->shut)
        return -EPIPE;
    if (s->wend - s->wpos > s->high)
        return flush_to(s, s->low, deadline);
    return 0;
}

static __attribute__((noinline)) ssize_t write_slow(corio_stream *s, const void *buf, size_t n,
                                                    int64_t deadline)
{
    OWNED_OR_FAIL(s);
    int r = out_ready(s, deadline);
    if (r == 0)
        r = wbuf_ensure(s, n);
    if (r < 0)
        return r;
    if (n) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(s->wbuf + s->wend, buf, n);
    s->wend += n;
    return (ssize_t)n;
}

/* The usual write, a response appended to a buffer with room for it (or
 * to a spare small one from the loop's pool, for the first of a batch), is
 * a copy and nothing more: no call but memcpy's. */
ssize_t corio_stream_write(corio_stream *s, const void *buf, size_t n, int64_t deadline)
{
    corio_loop *loop = s->loop;
    if (corio_likely(corio__loop_owned(loop) && !s->werr && !s->shut && n)) {
        if (s->wbuf && s->wend - s->wpos <= s->high && s->wcap - s->wend >= n) {
            char *dst = s->wbuf + s->wend;
            s->wend += n;
            memcpy(dst, buf, n);
            return (ssize_t)n;
        }
        if (!s->wbuf && n <= WRITE_SIZE_MIN && loop->bufs.head[0]) {
            char *p = corio__buf_pop(loop, 0);
            s->wbuf = p;
            s->wcap = WRITE_SIZE_MIN;
            s->wend = n;
            memcpy(p, buf, n);
            return (ssize_t)n;
        }
    }
    return write_slow(s, buf, n, deadline);
}

ssize_t corio_stream_writev(corio_stream *s, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    OWNED_OR_FAIL(s);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX / 2 - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    int r = out_ready(s, deadline);
    if (r == 0)
        r = wbuf_ensure(s, total);
    if (r < 0)
        return r;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(s->wbuf + s->wend, iov[i].iov_base, iov[i].iov_len);
        s->wend += iov[i].iov_len;
    }
    return (ssize_t)total;
}

void *corio_stream_reserve(corio_stream *s, size_t n)
{
    if (s->werr || s->shut || wbuf_ensure(s, n) < 0)
        return NULL;
    return s->wbuf + s->wend;
}

void corio_stream_commit(corio_stream *s, size_t n)
{
    CORIO_ASSERT(s->wbuf && n <= s->wcap - s->wend);
    s->wend += n;
}

int corio_stream_flush(corio_stream *s, int64_t deadline)
{
    OWNED_OR_FAIL(s);
    /* The usual flush, once per message or batch: what is pending goes in
     * one send(2), and the buffer goes back.  Anything else: flush_to(). */
    size_t n = s->wend - s->wpos;
    if (corio_likely(n && !s->werr && !s->not_sock)) {
        ssize_t r = corio__send(s->loop, s->fd, s->wbuf + s->wpos, n, 0, deadline);
        if (corio_likely((size_t)r == n)) {
            wbuf_release(s);
            return 0;
        }
        if (r > 0) {
            s->wpos += (size_t)r;
        } else if (r == -ENOTSOCK) {
            s->not_sock = true;
        } else if (r < 0) {
            if (!transient(r))
                s->werr = (int)r;
            return (int)r;
        }
    }
    return flush_to(s, 0, deadline);
}

int corio_stream_drain(corio_stream *s, int64_t deadline)
{
    OWNED_OR_FAIL(s);
    if (s->werr)
        return s->werr;
    return s->wend - s->wpos > s->high ? flush_to(s, s->low, deadline) : 0;
}

size_t corio_stream_pending(const corio_stream *s)
{
    return s->wend - s->wpos;
}

int corio_stream_shutdown(corio_stream *s, int64_t deadline)
{
    SITE(s_shutdown, "shutdown");
    OWNED_OR_FAIL(s);
    if (s->shut)
        return 0;
    int r = flush_to(s, 0, deadline);
    if (r == 0)
        r = sys_shutdown(&s_shutdown, s->fd, SHUT_WR);
    if (r == 0)
        s->shut = true;
    return r;
}

int corio_stream_close(corio_stream *s, int64_t deadline)
{
    if (!s)
        return 0;
    OWNED_OR_FAIL(s);
    int r = 0;
    if (s->wend > s->wpos)
        r = flush_to(s, 0, deadline); /* what could not go is reported, not dropped quietly */
    rbuf_release(s);
    wbuf_release(s);
    if (!s->keep_fd && s->fd >= 0) { /* fd -1: left by corio_stream_reset() */
        int c = corio_close(s->fd);
        if (r == 0)
            r = c;
    }
    corio__free(s);
    return r;
}

/* What a reset starts afresh, field by field (a server resets a stream
 * per connection it serves); the options stay (loop, read_size, high,
 * low, keep_fd, rclass) and the buffers' fields are 0 once released. */
static inline void fields_reset(corio_stream *s, int fd)
{
    s->fd = fd;
    s->werr = 0;
    s->short_pass = 0;
    s->short_read = false;
    s->eof = false;
    s->shut = false;
    s->not_sock = false;
}

static __attribute__((noinline)) int reset_slow(corio_stream *s, int fd)
{
    OWNED_OR_FAIL(s);
    if (fd < -1)
        return -EBADF;
    int r = 0;
    if (s->wend > s->wpos)
        r = flush_to(s, 0, CORIO_NOWAIT);
    rbuf_release(s);
    wbuf_release(s);
    if (!s->keep_fd && s->fd >= 0) {
        int c = corio_close(s->fd);
        if (r == 0)
            r = c;
    }
    fields_reset(s, fd);
    return r;
}

/* A server lends a detached stream to the next connection: no buffer, no
 * fd of its own to close, so nothing but the fields to reset, and no
 * call. */
int corio_stream_reset(corio_stream *s, int fd)
{
    if (corio_likely(corio__loop_owned(s->loop) && fd >= -1 && !s->rbuf && !s->wbuf &&
                     (s->keep_fd || s->fd < 0))) {
        fields_reset(s, fd);
        return 0;
    }
    return reset_slow(s, fd);
}
