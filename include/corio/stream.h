/* corio: buffered streams.  Included by corio.h; do not include directly.
 *
 * A stream wraps one non-blocking stream fd (TCP, Unix stream socket, pipe)
 * with an input buffer and an output buffer: Python's StreamReader and
 * StreamWriter in C.  Every call that may block takes a deadline and parks
 * the calling coroutine only when the kernel has nothing for it.
 *
 * Memory: buffers come from a small per-loop pool.  The input buffer is
 * handed back whenever it is empty and the stream has to wait for bytes,
 * and the output buffer whenever a flush empties it, so an idle stream
 * holds no buffer memory and a busy one allocates nothing.
 *
 * Views: calls that return `const void **` / `const char **` point into the
 * input buffer (no copy).  A view stays valid until the next call on the
 * stream, whichever it is.
 *
 * Errors: end of stream and a reset are different results (0 or
 * -CORIO_EEOF for the first, -ECONNRESET for the second).  A read call that
 * fails consumes nothing: what was buffered stays readable.  An output
 * error is sticky: once a write to the fd failed (-EPIPE, -ECONNRESET, ...)
 * every later output call returns it. */
#ifndef CORIO_STREAM_H
#define CORIO_STREAM_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_stream corio_stream;

typedef struct corio_stream_options {
    size_t read_size;  /* input buffer to start with; 0: 16 KiB.  A call that
                          needs more (peek, read_until) grows it for a while */
    size_t high_water; /* write() first drains when more is pending; 0: 64 KiB */
    size_t low_water;  /* ... down to this much; 0: high_water / 4 */
    bool keep_fd;      /* corio_stream_close() leaves the fd open */
} corio_stream_options;

/* Wraps fd (non-blocking, see corio_fd_nonblock) in a stream owned by the
 * calling thread's running loop.  opts may be NULL.  Does not park.
 * -ENOMEM, -EBADF, -EINVAL (low_water > high_water, or a size over 4 GiB),
 * -CORIO_ENOTCO (no loop).  The stream takes 112 bytes, and no buffer while
 * it waits. */
int corio_stream_open(corio_stream **s, int fd, const corio_stream_options *opts);

/* The stream's fd. */
int corio_stream_fd(const corio_stream *s);

/* Bytes of buffer memory s holds now (0 for an idle stream). */
size_t corio_stream_memory(const corio_stream *s);

/* Flushes pending output (parks, until deadline), then closes the fd (unless
 * keep_fd) and frees s, whatever happened.  0, or the error that kept
 * output from being written (-ETIMEDOUT, -EPIPE, ...): written bytes are
 * never dropped silently. */
int corio_stream_close(corio_stream *s, int64_t deadline);

/* Moves s to another fd, as corio_stream_close(s, CORIO_NOWAIT) and then
 * corio_stream_open() with the same options would, but keeps s's memory:
 * a server can keep a few streams per loop and lend one to a connection
 * only while it is active, so an idle connection holds no stream.  Pending
 * output gets one try, buffered input is dropped, the old fd is closed
 * unless keep_fd.  fd -1 leaves s without an fd until the next reset (or
 * close).  0, or the error close would have returned (s is on fd anyway);
 * -EBADF (fd < -1: nothing done).  Never parks. */
int corio_stream_reset(corio_stream *s, int fd);

/* ---- Input ---- */

/* Reads up to n bytes: what is buffered, else one read from the fd (parks
 * if nothing has arrived).  Returns the count, 0 at end of stream,
 * -ECONNRESET, -ETIMEDOUT, -ECANCELED, ... */
ssize_t corio_stream_read(corio_stream *s, void *buf, size_t n, int64_t deadline);

/* Reads exactly n bytes.  Returns n.  At end of stream before n bytes:
 * -CORIO_EEOF, and the bytes that did arrive stay readable; on any other
 * error too, nothing is consumed.  Parks. */
ssize_t corio_stream_read_exactly(corio_stream *s, void *buf, size_t n, int64_t deadline);

/* Reads through the next delimiter (dlen bytes, dlen >= 1): *out points at
 * the data, delimiter included, and the length is returned; the bytes are
 * consumed and *out stays valid until the next call on s.  Parks.
 * 0 at end of stream with nothing buffered; -CORIO_EEOF at end of stream
 * with a partial record buffered; -CORIO_ETOOLONG when max bytes hold no
 * delimiter.  On every error the buffered bytes stay readable. */
ssize_t corio_stream_read_until(corio_stream *s, const void *delim, size_t dlen,
                                const char **out, size_t max, int64_t deadline);

/* corio_stream_read_until() with "\n". */
ssize_t corio_stream_readline(corio_stream *s, const char **line, size_t max, int64_t deadline);

/* Waits until at least n bytes are buffered (reading as needed; n = 0 never
 * reads) and points *view at everything buffered, whose length it returns.
 * Nothing is consumed: see corio_stream_consume().  -CORIO_EEOF at end of
 * stream with fewer than n bytes.  Parks. */
ssize_t corio_stream_peek(corio_stream *s, size_t n, const void **view, int64_t deadline);

/* What is buffered now, without a syscall: its length, and *view (may be
 * NULL) points at it.  A server that finds more input already buffered can
 * answer the next pipelined request before flushing, and so answer a whole
 * batch with one write. */
size_t corio_stream_buffered(const corio_stream *s, const void **view);

/* Drops the first n buffered bytes (at most what is buffered).  Returns how
 * many were dropped. */
size_t corio_stream_consume(corio_stream *s, size_t n);

/* True once the fd has reported end of stream (buffered bytes may remain). */
bool corio_stream_eof(const corio_stream *s);

/* ---- Output ---- */

/* Appends n bytes to the output buffer; nothing is sent before a flush.
 * Parks only when more than the high water mark was already pending: it
 * first flushes down to the low water mark, and if that fails it returns
 * the error with nothing appended.  Returns n, -ENOMEM, -ETIMEDOUT, ... */
ssize_t corio_stream_write(corio_stream *s, const void *buf, size_t n, int64_t deadline);

/* The same for iovcnt buffers, appended in order.  Returns the total. */
ssize_t corio_stream_writev(corio_stream *s, const struct iovec *iov, int iovcnt, int64_t deadline);

/* Room for n bytes at the end of the output buffer (formatting in place:
 * snprintf into it, then corio_stream_commit()), or NULL for -ENOMEM or a
 * stream with a sticky output error.  Never parks.  Valid until the next
 * call on s. */
void *corio_stream_reserve(corio_stream *s, size_t n);

/* Adds the first n bytes of the last corio_stream_reserve() to the output. */
void corio_stream_commit(corio_stream *s, size_t n);

/* Sends everything pending, in as few syscalls as the socket allows (one
 * when it has room), parking while the socket is full.  0, -ETIMEDOUT and
 * -ECANCELED (the rest stays pending), -EPIPE, -ECONNRESET (sticky). */
int corio_stream_flush(corio_stream *s, int64_t deadline);

/* Flow control: if more than the high water mark is pending, flushes
 * until at most the low water mark is.  0 or as corio_stream_flush(). */
int corio_stream_drain(corio_stream *s, int64_t deadline);

/* Bytes written to s and not yet sent. */
size_t corio_stream_pending(const corio_stream *s);

/* Flushes, then shuts down the sending side (the peer reads end of stream;
 * input keeps working).  Later output calls fail with -EPIPE.  Parks. */
int corio_stream_shutdown(corio_stream *s, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif
