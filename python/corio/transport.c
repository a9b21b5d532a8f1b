/* The stream transport (TCP and Unix sockets): a C subclass of
 * asyncio.Transport that behaves as asyncio's _SelectorSocketTransport.
 *
 * It holds one edge-triggered corio watcher for reading and writing from
 * creation to connection_lost, so the steady state makes no epoll_ctl
 * call.  Edges become work in the ready queue through one asyncio.Handle
 * per transport (`_io_ready`), appended where asyncio would append its
 * reader and writer handles, so protocol callbacks run in asyncio's order.
 *
 * Reads: one recv per pass, like asyncio.  A read that fills the buffer
 * means more may wait: the transport is read again after the next poll, as
 * a level-triggered selector would report it.  A short read means the
 * socket is drained and the next edge will say when data comes.
 *
 * Writes: write() sends at once when nothing is buffered (as asyncio does)
 * and buffers the rest; buffered data goes out with one sendmsg per batch
 * of up to 64 buffers when the socket becomes writable. */
#include "_corio.h"

#include <structmember.h>
#include <sys/socket.h>

#define MAX_SIZE (256 * 1024) /* recv size for data_received, as asyncio's max_size */
#define WBATCH 64
#define LOG_THRESHOLD_FOR_CONNLOST_WRITES 5

typedef struct cpy_transport {
    corio_watcher w;
    cpy_loop *L;            /* strong */
    PyObject *sock, *protocol, *server, *iohandle, *empty_waiter;
    PyObject *dict, *weakreflist;
    PyObject **wbuf;        /* ring of bytes objects waiting to be sent */
    size_t whead, wn, wcap;
    size_t woff;            /* bytes of wbuf[whead] already sent */
    size_t bufsize;         /* bytes waiting */
    Py_ssize_t high, low;   /* write buffer water marks */
    int fd;
    unsigned ev;            /* events seen while polling */
    unsigned run;           /* work for the next _io_ready: CORIO_READABLE | CORIO_WRITABLE */
    unsigned conn_lost;
    bool closing, eof, paused, reading, protocol_paused, buffered, protocol_connected;
    bool r_ready;           /* the last read did not drain the socket, or an edge came */
    bool live;              /* watcher active; the loop holds a reference */
    bool pending, queued, in_again, lost;
    bool hup;               /* the peer closed or reset: read until recv says so */
    bool w_ready;           /* an edge said writable and no send has filled it since */
    uint64_t r_pass, w_pass; /* pass whose ready callbacks started reading / buffering */
    struct cpy_transport *pend_next, *again_next;
    corio_list link;        /* L->trs */
} cpy_transport;

PyTypeObject *cpy_TransportType;
static Py_ssize_t tr_off;

#define TR(o) ((cpy_transport *)((char *)(o) + tr_off))
#define OBJ(t) ((PyObject *)((char *)(t) - tr_off))

struct cpy_transport *cpy_transport_next_pend(struct cpy_transport *t)
{
    return t->pend_next;
}

struct cpy_transport *cpy_transport_next_again(struct cpy_transport *t)
{
    return t->again_next;
}

/* ---- Edges, collected while polling ---- */

static void tr_fired(corio_loop *cl, corio_watcher *w, unsigned revents)
{
    cpy_transport *t = (cpy_transport *)w;
    cpy_loop *L = t->L;
    t->ev |= revents;
    if (!t->pending) {
        t->pending = true;
        t->pend_next = NULL;
        *L->pend_tr_tail = t;
        L->pend_tr_tail = &t->pend_next;
    }
}

static bool wants_read(const cpy_transport *t)
{
    return t->reading && !t->paused && !t->closing && !t->conn_lost;
}

static void queue(cpy_loop *L, cpy_transport *t, unsigned work)
{
    t->run |= work;
    if (t->queued || !t->iohandle)
        return;
    if (cpy_io_append(L, t->iohandle) < 0) {
        PyErr_WriteUnraisable(OBJ(t));
        return;
    }
    t->queued = true;
}

static void read_again(cpy_transport *t);

/* What the transport can do now.  Interest that ready callbacks started in
 * this very pass (reading started or resumed, data buffered) waits for the
 * next pass: asyncio's poll came before those callbacks and could not see
 * it, so asyncio reports it one pass later, and so do we. */
static unsigned work_of(cpy_loop *L, cpy_transport *t, bool *later)
{
    unsigned work = 0;
    if (t->r_ready && wants_read(t)) {
        if (t->r_pass == L->pass)
            *later = true;
        else
            work |= CORIO_READABLE;
    }
    if (t->w_ready && t->bufsize) {
        if (t->w_pass == L->pass)
            *later = true;
        else
            work |= CORIO_WRITABLE;
    }
    return work;
}

void cpy_transport_dispatch(cpy_loop *L, struct cpy_transport *t)
{
    unsigned ev = t->ev;
    bool later = false;
    t->ev = 0;
    t->pending = false;
    if (ev & (CORIO_READABLE | CORIO_RDHUP | CORIO_HUP | CORIO_ERROR)) {
        t->r_ready = true;
        if (ev & (CORIO_RDHUP | CORIO_HUP | CORIO_ERROR))
            t->hup = true; /* a short read no longer means "drained" */
    }
    if (ev & (CORIO_WRITABLE | CORIO_HUP | CORIO_ERROR))
        t->w_ready = true;
    unsigned work = work_of(L, t, &later);
    if (work)
        queue(L, t, work);
    if (later)
        read_again(t);
}

void cpy_transport_again(cpy_loop *L, struct cpy_transport *t)
{
    bool later = false;
    t->in_again = false;
    unsigned work = work_of(L, t, &later);
    if (work)
        queue(L, t, work);
    if (later)
        read_again(t);
    Py_DECREF(OBJ(t)); /* the again list's reference */
}

/* Looks at the transport again after the next poll, without waiting for
 * an edge (a full read, or work held back a pass). */
static void read_again(cpy_transport *t)
{
    cpy_loop *L = t->L;
    if (t->in_again || !L->cl)
        return;
    t->in_again = true;
    t->again_next = L->again;
    L->again = t;
    Py_INCREF(OBJ(t));
}

static uint64_t stamp(cpy_loop *L)
{
    return L->in_ready ? L->pass : 0;
}

/* ---- The watcher's lifetime ---- */

/* Our own recv or send drained the socket: level backends poll it again. */
static void drained(cpy_transport *t, unsigned events)
{
    if (t->live && t->L->cl)
        corio_fd_drained(t->L->cl, t->fd, events);
}

static int attach(cpy_transport *t)
{
    cpy_loop *L = t->L;
    corio_watcher_init(&t->w, t->fd, CORIO_READABLE | CORIO_WRITABLE, CORIO_WATCH_EDGE, tr_fired,
                       NULL);
    int err = corio_watcher_start(L->cl, &t->w);
    if (err < 0)
        return err;
    t->live = true;
    corio_list *h = &L->trs;
    t->link.prev = h->prev;
    t->link.next = h;
    h->prev->next = &t->link;
    h->prev = &t->link;
    Py_INCREF(OBJ(t));
    return 0;
}

static void detach(cpy_transport *t)
{
    if (!t->live)
        return;
    t->live = false;
    if (t->L->cl)
        corio_watcher_stop(t->L->cl, &t->w);
    t->link.prev->next = t->link.next;
    t->link.next->prev = t->link.prev;
    t->link.next = t->link.prev = &t->link;
    Py_DECREF(OBJ(t));
}

void cpy_transports_detach_all(cpy_loop *L)
{
    while (L->again) {
        cpy_transport *t = L->again;
        L->again = t->again_next;
        t->in_again = false;
        Py_DECREF(OBJ(t));
    }
    while (L->trs.next != &L->trs)
        detach((cpy_transport *)((char *)L->trs.next - offsetof(cpy_transport, link)));
}

/* ---- Helpers ---- */

static bool is_eagain(int err)
{
    return err == -EAGAIN || err == -EWOULDBLOCK || err == -EINTR;
}

static PyObject *ctx_dict(cpy_transport *t, const char *message, PyObject *exc)
{
    return Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", message, "exception", exc, "transport",
                         OBJ(t), "protocol", t->protocol ? t->protocol : Py_None);
}

static void force_close(cpy_transport *t, PyObject *exc);

/* _fatal_error(): OSErrors are logged in debug mode only; others go to
 * the exception handler.  Then the transport is closed. */
static void fatal_error(cpy_transport *t, PyObject *exc, const char *message)
{
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        if (t->L->debug) {
            PyObject *kw = Py_BuildValue("{s:O}", "exc_info", Py_True);
            PyObject *a = Py_BuildValue("(sOs)", "%r: %s", OBJ(t), message);
            PyObject *f = PyObject_GetAttr(cpy.logger, S.debug);
            PyObject *r = f && a && kw ? PyObject_Call(f, a, kw) : NULL;
            if (!r)
                PyErr_Clear();
            Py_XDECREF(r);
            Py_XDECREF(f);
            Py_XDECREF(a);
            Py_XDECREF(kw);
        }
    } else {
        PyObject *ctx = ctx_dict(t, message, exc);
        if (ctx)
            cpy_call_exception_handler(t->L, ctx);
        else
            PyErr_Clear();
        Py_XDECREF(ctx);
    }
    force_close(t, exc);
}

/* The exception being raised, as an object; the error indicator cleared. */
static PyObject *take_exc(void)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    if (tb && val)
        PyException_SetTraceback(val, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return val;
}

static bool is_fatal_exit(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit) ||
           PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

/* Handles a failed protocol call or syscall: -1 to propagate (SystemExit,
 * KeyboardInterrupt), 0 after reporting through fatal_error. */
static int fail(cpy_transport *t, const char *message)
{
    if (is_fatal_exit())
        return -1;
    PyObject *exc = take_exc();
    fatal_error(t, exc, message);
    Py_XDECREF(exc);
    return PyErr_Occurred() ? -1 : 0;
}

static int fail_errno(cpy_transport *t, int err, const char *message)
{
    cpy_oserror(err);
    return fail(t, message);
}

static int call_soon_method(cpy_transport *t, const char *name, PyObject *arg)
{
    PyObject *m = PyObject_GetAttrString(OBJ(t), name);
    if (!m)
        return -1;
    PyObject *args = PyTuple_Pack(1, arg);
    int r = args ? cpy_call_soon(t->L, m, args) : -1;
    Py_XDECREF(args);
    Py_DECREF(m);
    return r;
}

/* ---- Write buffer ---- */

static int wbuf_push(cpy_transport *t, PyObject *bytes)
{
    if (t->wn == t->wcap) {
        size_t cap = t->wcap ? t->wcap * 2 : 8;
        PyObject **v = PyMem_Malloc(cap * sizeof *v);
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < t->wn; i++)
            v[i] = t->wbuf[(t->whead + i) % t->wcap];
        PyMem_Free(t->wbuf);
        t->wbuf = v;
        t->wcap = cap;
        t->whead = 0;
    }
    t->wbuf[(t->whead + t->wn) % t->wcap] = bytes;
    t->wn++;
    t->bufsize += (size_t)PyBytes_GET_SIZE(bytes);
    return 0;
}

/* Appends buf[off:len] of obj: a reference to immutable bytes, else a copy. */
static int wbuf_add(cpy_transport *t, PyObject *obj, const char *p, size_t off, size_t len)
{
    PyObject *b;
    if (off == 0 && PyBytes_CheckExact(obj) && (size_t)PyBytes_GET_SIZE(obj) == len) {
        Py_INCREF(obj);
        b = obj;
    } else if (!(b = PyBytes_FromStringAndSize(p + off, (Py_ssize_t)len))) {
        return -1;
    }
    if (wbuf_push(t, b) < 0) {
        Py_DECREF(b);
        return -1;
    }
    return 0;
}

static void wbuf_consume(cpy_transport *t, size_t n)
{
    t->bufsize -= n;
    while (n && t->wn) {
        PyObject *b = t->wbuf[t->whead];
        size_t left = (size_t)PyBytes_GET_SIZE(b) - t->woff;
        if (n < left) {
            t->woff += n;
            return;
        }
        n -= left;
        t->woff = 0;
        Py_DECREF(b);
        t->whead = (t->whead + 1) % t->wcap;
        t->wn--;
    }
}

static void wbuf_clear(cpy_transport *t)
{
    wbuf_consume(t, t->bufsize);
    t->bufsize = 0;
}

static ssize_t send_iov(int fd, struct iovec *iov, int cnt)
{
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
    for (;;) {
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static void maybe_pause_protocol(cpy_transport *t)
{
    if ((Py_ssize_t)t->bufsize <= t->high || t->protocol_paused)
        return;
    t->protocol_paused = true;
    PyObject *r = PyObject_CallMethodNoArgs(t->protocol, S.pause_writing);
    if (r) {
        Py_DECREF(r);
        return;
    }
    if (is_fatal_exit())
        return;
    PyObject *exc = take_exc();
    PyObject *ctx = ctx_dict(t, "protocol.pause_writing() failed", exc);
    if (ctx)
        cpy_call_exception_handler(t->L, ctx);
    Py_XDECREF(ctx);
    Py_XDECREF(exc);
}

static void maybe_resume_protocol(cpy_transport *t)
{
    if (!t->protocol_paused || (Py_ssize_t)t->bufsize > t->low)
        return;
    t->protocol_paused = false;
    PyObject *r = PyObject_CallMethodNoArgs(t->protocol, S.resume_writing);
    if (r) {
        Py_DECREF(r);
        return;
    }
    if (is_fatal_exit())
        return;
    PyObject *exc = take_exc();
    PyObject *ctx = ctx_dict(t, "protocol.resume_writing() failed", exc);
    if (ctx)
        cpy_call_exception_handler(t->L, ctx);
    Py_XDECREF(ctx);
    Py_XDECREF(exc);
}

static int shutdown_wr(cpy_transport *t)
{
    if (shutdown(t->fd, SHUT_WR) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static int call_connection_lost(cpy_transport *t, PyObject *exc);

/* The socket became writable with data buffered. */
static int write_ready(cpy_transport *t)
{
    if (t->conn_lost || !t->bufsize)
        return 0;
    while (t->bufsize) {
        struct iovec iov[WBATCH];
        int cnt = 0;
        size_t want = 0;
        for (size_t i = 0; i < t->wn && cnt < WBATCH; i++) {
            PyObject *b = t->wbuf[(t->whead + i) % t->wcap];
            size_t off = i == 0 ? t->woff : 0;
            iov[cnt].iov_base = PyBytes_AS_STRING(b) + off;
            iov[cnt].iov_len = (size_t)PyBytes_GET_SIZE(b) - off;
            want += iov[cnt++].iov_len;
        }
        ssize_t n = send_iov(t->fd, iov, cnt);
        if (n < 0 && is_eagain((int)n)) {
            t->w_ready = false;
            drained(t, CORIO_WRITABLE);
            break;
        }
        if (n < 0) {
            wbuf_clear(t);
            cpy_oserror((int)n);
            if (is_fatal_exit())
                return -1;
            PyObject *e = take_exc();
            fatal_error(t, e, "Fatal write error on socket transport");
            if (t->empty_waiter) {
                PyObject *r = PyObject_CallMethodOneArg(t->empty_waiter, S.set_exception, e);
                Py_XDECREF(r);
            }
            Py_XDECREF(e);
            return PyErr_Occurred() ? -1 : 0;
        }
        wbuf_consume(t, (size_t)n);
        if ((size_t)n < want) {
            t->w_ready = false;
            drained(t, CORIO_WRITABLE);
            break;
        }
    }
    maybe_resume_protocol(t); /* may write more */
    if (PyErr_Occurred())
        return -1;
    if (t->bufsize)
        return 0;
    if (t->empty_waiter) {
        PyObject *r = PyObject_CallMethodOneArg(t->empty_waiter, S.set_result, Py_None);
        if (!r)
            return -1;
        Py_DECREF(r);
    }
    if (t->closing)
        return call_connection_lost(t, Py_None);
    if (t->eof)
        return shutdown_wr(t);
    return 0;
}

/* Sends what it can of n buffers at once and buffers the rest.  -1 with
 * an exception for SystemExit/KeyboardInterrupt only. */
static int send_or_buffer(cpy_transport *t, PyObject **objs, Py_buffer *views, Py_ssize_t n)
{
    size_t sent = 0;
    if (!t->bufsize) {
        struct iovec iov[WBATCH];
        int cnt = 0;
        for (Py_ssize_t i = 0; i < n && cnt < WBATCH; i++) {
            if (views[i].len == 0)
                continue;
            iov[cnt].iov_base = views[i].buf;
            iov[cnt++].iov_len = (size_t)views[i].len;
        }
        ssize_t r = cnt ? send_iov(t->fd, iov, cnt) : 0;
        if (r < 0 && !is_eagain((int)r))
            return fail_errno(t, (int)r, "Fatal write error on socket transport");
        if (r < 0)
            r = 0;
        sent = (size_t)r;
    }
    bool buffered = false, was_empty = t->bufsize == 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t len = (size_t)views[i].len;
        if (sent >= len) {
            sent -= len;
            continue;
        }
        if (wbuf_add(t, objs[i], views[i].buf, sent, len - sent) < 0)
            return -1;
        sent = 0;
        buffered = true;
    }
    if (buffered && was_empty) {
        /* A short send: the socket's buffer is full, the next edge says
         * when it has room (level backends must poll for it again). */
        t->w_ready = false;
        t->w_pass = stamp(t->L);
        drained(t, CORIO_WRITABLE);
    }
    if (buffered)
        maybe_pause_protocol(t);
    return PyErr_Occurred() ? -1 : 0;
}

/* The checks write() makes before anything is sent.  1: proceed; 0: done
 * (nothing to send, or the connection is lost); -1: raised. */
static int write_checks(cpy_transport *t, size_t total)
{
    if (t->eof) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
        return -1;
    }
    if (t->empty_waiter) {
        PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
        return -1;
    }
    if (!total)
        return 0;
    if (t->conn_lost) {
        if (t->conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
            PyObject *r = PyObject_CallMethod(cpy.logger, "warning", "s", "socket.send() raised exception.");
            if (!r)
                return -1;
            Py_DECREF(r);
        }
        t->conn_lost++;
        return 0;
    }
    return 1;
}

static PyObject *tr_write(PyObject *self, PyObject *data)
{
    cpy_transport *t = TR(self);
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%s'",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    Py_buffer v;
    if (PyObject_GetBuffer(data, &v, PyBUF_SIMPLE) < 0)
        return NULL;
    int c = write_checks(t, (size_t)v.len), r = c;
    if (c > 0)
        r = send_or_buffer(t, &data, &v, 1);
    PyBuffer_Release(&v);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tr_writelines(PyObject *self, PyObject *list)
{
    cpy_transport *t = TR(self);
    PyObject *seq = PySequence_Fast(list, "writelines() argument must be iterable");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), got = 0;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_buffer *v = PyMem_Calloc((size_t)n + 1, sizeof *v);
    int r = -1;
    size_t total = 0;
    if (!v) {
        PyErr_NoMemory();
        goto out;
    }
    for (; got < n; got++) {
        if (PyObject_GetBuffer(items[got], &v[got], PyBUF_SIMPLE) < 0) {
            PyErr_Format(PyExc_TypeError, "sequence item %zd: expected a bytes-like object, %.80s found",
                         got, Py_TYPE(items[got])->tp_name);
            goto out;
        }
        total += (size_t)v[got].len;
    }
    r = write_checks(t, total);
    if (r > 0)
        r = send_or_buffer(t, items, v, n);
out:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&v[i]);
    PyMem_Free(v);
    Py_DECREF(seq);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- Reading ---- */

static int on_eof(cpy_transport *t)
{
    if (t->L->debug) {
        PyObject *r = PyObject_CallMethod(cpy.logger, "debug", "sO", "%r received EOF", OBJ(t));
        Py_XDECREF(r);
        if (!r)
            PyErr_Clear();
    }
    PyObject *keep = PyObject_CallMethodNoArgs(t->protocol, S.eof_received);
    if (!keep)
        return fail(t, "Fatal error: protocol.eof_received() call failed.");
    int k = PyObject_IsTrue(keep);
    Py_DECREF(keep);
    if (k < 0)
        return fail(t, "Fatal error: protocol.eof_received() call failed.");
    if (k) {
        t->reading = false; /* half-closed: the protocol may still write */
        return 0;
    }
    PyObject *r = PyObject_CallMethodNoArgs(OBJ(t), S.close);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int read_buffered(cpy_transport *t)
{
    PyObject *buf = PyObject_CallMethod(t->protocol, "get_buffer", "i", -1);
    if (!buf)
        return fail(t, "Fatal error: protocol.get_buffer() call failed.");
    Py_buffer v;
    if (PyObject_GetBuffer(buf, &v, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        return fail(t, "Fatal read error on socket transport");
    }
    Py_DECREF(buf);
    if (v.len == 0) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
        return fail(t, "Fatal error: protocol.get_buffer() call failed.");
    }
    ssize_t n;
    do
        n = recv(t->fd, v.buf, (size_t)v.len, 0);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? -errno : 0;
    bool full = n == v.len;
    PyBuffer_Release(&v);
    if (n < 0) {
        if (is_eagain(err)) {
            t->r_ready = false;
            drained(t, CORIO_READABLE);
            return 0;
        }
        return fail_errno(t, err, "Fatal read error on socket transport");
    }
    if (n == 0)
        return on_eof(t);
    if (!full && !t->hup) {
        t->r_ready = false;
        drained(t, CORIO_READABLE);
    }
    PyObject *r = PyObject_CallMethod(t->protocol, "buffer_updated", "n", (Py_ssize_t)n);
    if (!r)
        return fail(t, "Fatal error: protocol.buffer_updated() call failed.");
    Py_DECREF(r);
    return 0;
}

static int read_data(cpy_transport *t)
{
    cpy_loop *L = t->L;
    if (!L->rbuf) {
        if (!(L->rbuf = PyMem_Malloc(MAX_SIZE))) {
            PyErr_NoMemory();
            return fail(t, "Fatal read error on socket transport");
        }
        L->rbuf_size = MAX_SIZE;
    }
    ssize_t n;
    do
        n = recv(t->fd, L->rbuf, L->rbuf_size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int err = -errno;
        if (is_eagain(err)) {
            t->r_ready = false;
            drained(t, CORIO_READABLE);
            return 0;
        }
        return fail_errno(t, err, "Fatal read error on socket transport");
    }
    if (n == 0)
        return on_eof(t);
    if ((size_t)n < L->rbuf_size && !t->hup) {
        t->r_ready = false;
        drained(t, CORIO_READABLE);
    }
    PyObject *data = PyBytes_FromStringAndSize(L->rbuf, n);
    if (!data)
        return fail(t, "Fatal read error on socket transport");
    PyObject *r = PyObject_CallMethodOneArg(t->protocol, S.data_received, data);
    Py_DECREF(data);
    if (!r)
        return fail(t, "Fatal error: protocol.data_received() call failed.");
    Py_DECREF(r);
    return 0;
}

static int read_ready(cpy_transport *t)
{
    if (!wants_read(t))
        return 0;
    int r = t->buffered ? read_buffered(t) : read_data(t);
    if (r == 0 && t->r_ready && wants_read(t))
        read_again(t);
    return r;
}

/* The transport's handle in the ready queue: reader first, then writer,
 * as asyncio runs them for one fd. */
static PyObject *tr_io_ready(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    unsigned run = t->run;
    t->run = 0;
    t->queued = false;
    Py_INCREF(self);
    int r = 0;
    if (run & CORIO_READABLE)
        r = read_ready(t);
    if (r == 0 && (run & CORIO_WRITABLE))
        r = write_ready(t);
    Py_DECREF(self);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tr_start_reading(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    if (t->closing || t->paused || t->conn_lost)
        Py_RETURN_NONE;
    t->reading = true;
    t->r_pass = stamp(t->L);
    if (t->r_ready)
        read_again(t);
    Py_RETURN_NONE;
}

/* ---- Closing ---- */

static void force_close(cpy_transport *t, PyObject *exc)
{
    if (t->conn_lost)
        return;
    if (t->bufsize)
        wbuf_clear(t);
    if (!t->closing) {
        t->closing = true;
        t->reading = false;
    }
    t->conn_lost++;
    if (call_soon_method(t, "_call_connection_lost", exc ? exc : Py_None) < 0)
        PyErr_WriteUnraisable(OBJ(t));
}

static int call_connection_lost(cpy_transport *t, PyObject *exc)
{
    int rc = 0;
    PyObject *self = OBJ(t);
    Py_INCREF(self);
    if (t->protocol_connected && t->protocol) {
        PyObject *r = PyObject_CallMethodOneArg(t->protocol, S.connection_lost, exc);
        if (!r)
            rc = -1;
        Py_XDECREF(r);
    }
    /* finally: */
    PyObject *type = NULL, *val = NULL, *tb = NULL;
    if (rc < 0)
        PyErr_Fetch(&type, &val, &tb);
    detach(t);
    t->lost = true;
    if (t->sock) {
        PyObject *r = PyObject_CallMethodNoArgs(t->sock, S.close);
        if (!r && rc == 0)
            rc = -1;
        else if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_CLEAR(t->sock);
    }
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->iohandle);
    if (t->server) {
        PyObject *server = t->server;
        t->server = NULL;
        PyObject *r = PyObject_CallMethodNoArgs(server, S.detach);
        if (!r && rc == 0)
            rc = -1;
        else if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_DECREF(server);
    }
    if (type)
        PyErr_Restore(type, val, tb);
    if (rc == 0 && t->empty_waiter) {
        PyObject *e = PyObject_CallFunction(PyExc_ConnectionError, "s", "Connection is closed by peer");
        PyObject *r = e ? PyObject_CallMethodOneArg(t->empty_waiter, S.set_exception, e) : NULL;
        if (!r)
            rc = -1;
        Py_XDECREF(r);
        Py_XDECREF(e);
    }
    Py_DECREF(self);
    return rc;
}

static PyObject *tr_call_connection_lost(PyObject *self, PyObject *exc)
{
    if (call_connection_lost(TR(self), exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tr_close(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    if (t->closing)
        Py_RETURN_NONE;
    t->closing = true;
    t->reading = false;
    if (!t->bufsize) {
        t->conn_lost++;
        if (call_soon_method(t, "_call_connection_lost", Py_None) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *tr_force_close(PyObject *self, PyObject *exc)
{
    force_close(TR(self), exc);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tr_abort(PyObject *self, PyObject *unused)
{
    return tr_force_close(self, Py_None);
}

static PyObject *tr_fatal_error(PyObject *self, PyObject *args)
{
    PyObject *exc;
    const char *message = "Fatal error on transport";
    if (!PyArg_ParseTuple(args, "O|s:_fatal_error", &exc, &message))
        return NULL;
    fatal_error(TR(self), exc, message);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tr_write_eof(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    if (t->closing || t->eof)
        Py_RETURN_NONE;
    t->eof = true;
    if (!t->bufsize && shutdown_wr(t) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- Flow control and small methods ---- */

static PyObject *tr_pause_reading(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    if (t->closing || t->paused)
        Py_RETURN_NONE;
    t->paused = true;
    t->reading = false;
    if (t->L->debug) {
        PyObject *r = PyObject_CallMethod(cpy.logger, "debug", "sO", "%r pauses reading", self);
        Py_XDECREF(r);
        if (!r)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *tr_resume_reading(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    if (t->closing || !t->paused)
        Py_RETURN_NONE;
    t->paused = false;
    t->reading = true;
    t->r_pass = stamp(t->L);
    if (t->r_ready)
        read_again(t);
    if (t->L->debug) {
        PyObject *r = PyObject_CallMethod(cpy.logger, "debug", "sO", "%r resumes reading", self);
        Py_XDECREF(r);
        if (!r)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *tr_is_reading(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    return PyBool_FromLong(!t->paused && !t->closing);
}

static PyObject *tr_is_closing(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(TR(self)->closing);
}

static PyObject *tr_can_write_eof(PyObject *self, PyObject *unused)
{
    Py_RETURN_TRUE;
}

static int set_protocol(cpy_transport *t, PyObject *protocol)
{
    int b = PyObject_IsInstance(protocol, cpy.BufferedProtocol);
    if (b < 0)
        return -1;
    t->buffered = b;
    Py_INCREF(protocol);
    Py_XSETREF(t->protocol, protocol);
    t->protocol_connected = true;
    return 0;
}

static PyObject *tr_set_protocol(PyObject *self, PyObject *protocol)
{
    if (set_protocol(TR(self), protocol) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tr_get_protocol(PyObject *self, PyObject *unused)
{
    PyObject *p = TR(self)->protocol;
    p = p ? p : Py_None;
    Py_INCREF(p);
    return p;
}

static PyObject *tr_get_write_buffer_size(PyObject *self, PyObject *unused)
{
    return PyLong_FromSize_t(TR(self)->bufsize);
}

static PyObject *tr_get_write_buffer_limits(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("(nn)", TR(self)->low, TR(self)->high);
}

static int set_limits(cpy_transport *t, PyObject *high, PyObject *low)
{
    Py_ssize_t h, l;
    if (high == Py_None) {
        if (low == Py_None)
            h = 64 * 1024;
        else if ((l = PyNumber_AsSsize_t(low, NULL)) == -1 && PyErr_Occurred())
            return -1;
        else
            h = 4 * l;
    } else if ((h = PyNumber_AsSsize_t(high, NULL)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (low == Py_None)
        l = h / 4;
    else if ((l = PyNumber_AsSsize_t(low, NULL)) == -1 && PyErr_Occurred())
        return -1;
    if (!(h >= l && l >= 0)) {
        PyErr_Format(PyExc_ValueError, "high (%zd) must be >= low (%zd) must be >= 0", h, l);
        return -1;
    }
    t->high = h;
    t->low = l;
    return 0;
}

static PyObject *tr_set_write_buffer_limits(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:set_write_buffer_limits", kwlist, &high, &low))
        return NULL;
    if (set_limits(TR(self), high, low) < 0)
        return NULL;
    maybe_pause_protocol(TR(self));
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tr_get_extra_info(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "default", NULL};
    PyObject *name, *dflt = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:get_extra_info", kwlist, &name, &dflt))
        return NULL;
    PyObject *extra = SLOT(self, cpy.tr_extra);
    PyObject *v = extra && PyDict_Check(extra) ? PyDict_GetItemWithError(extra, name) : NULL;
    if (!v && PyErr_Occurred())
        return NULL;
    v = v ? v : dflt;
    Py_INCREF(v);
    return v;
}

static PyObject *tr_make_empty_waiter(PyObject *self, PyObject *unused)
{
    cpy_transport *t = TR(self);
    if (t->empty_waiter) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    PyObject *f = PyObject_CallMethodNoArgs((PyObject *)t->L, S.create_future);
    if (!f)
        return NULL;
    t->empty_waiter = f;
    if (!t->bufsize) {
        PyObject *r = PyObject_CallMethodOneArg(f, S.set_result, Py_None);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
    Py_INCREF(f);
    return f;
}

static PyObject *tr_reset_empty_waiter(PyObject *self, PyObject *unused)
{
    Py_CLEAR(TR(self)->empty_waiter);
    Py_RETURN_NONE;
}

static PyObject *tr_repr(PyObject *self)
{
    cpy_transport *t = TR(self);
    const char *state = !t->sock ? " closed" : t->closing ? " closing" : "";
    if (t->lost || t->L->closed)
        return PyUnicode_FromFormat("<%s%s fd=%d>", Py_TYPE(self)->tp_name, state, t->fd);
    return PyUnicode_FromFormat("<%s%s fd=%d read=%s write=<%s, bufsize=%zu>>",
                                Py_TYPE(self)->tp_name, state, t->fd,
                                wants_read(t) ? "polling" : "idle", t->bufsize ? "polling" : "idle",
                                t->bufsize);
}

/* ---- Construction and destruction ---- */

static int init_extra(PyObject *self, PyObject *sock, PyObject *extra)
{
    PyObject *d = extra && extra != Py_None ? extra : PyDict_New();
    if (!d)
        return -1;
    if (d == extra)
        Py_INCREF(d);
    slot_set(self, cpy.tr_extra, d);
    Py_DECREF(d);
    PyObject *ts = PyObject_CallOneArg(cpy.TransportSocket, sock);
    if (!ts || PyObject_SetItem(d, S.socket, ts) < 0) {
        Py_XDECREF(ts);
        return -1;
    }
    Py_DECREF(ts);
    PyObject *name = PyObject_CallMethodNoArgs(sock, S.getsockname);
    if (!name && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
        name = Py_NewRef(Py_None);
    }
    if (!name || PyObject_SetItem(d, S.sockname, name) < 0) {
        Py_XDECREF(name);
        return -1;
    }
    Py_DECREF(name);
    int has = PySequence_Contains(d, S.peername);
    if (has < 0)
        return -1;
    if (!has) {
        PyObject *peer = PyObject_CallMethodNoArgs(sock, S.getpeername);
        if (!peer && PyErr_ExceptionMatches(PyExc_OSError)) {
            PyErr_Clear();
            peer = Py_NewRef(Py_None);
        }
        if (!peer || PyObject_SetItem(d, S.peername, peer) < 0) {
            Py_XDECREF(peer);
            return -1;
        }
        Py_DECREF(peer);
    }
    return 0;
}

static int schedule_start(PyObject *self, cpy_transport *t, PyObject *waiter)
{
    PyObject *args = PyTuple_Pack(1, self), *m = NULL;
    int r = -1;
    PyObject *cm = args ? PyObject_GetAttr(t->protocol, S.connection_made) : NULL;
    if (!cm || cpy_call_soon(t->L, cm, args) < 0)
        goto out;
    Py_CLEAR(args);
    if (!(args = PyTuple_New(0)) || !(m = PyObject_GetAttrString(self, "_start_reading")) ||
        cpy_call_soon(t->L, m, args) < 0)
        goto out;
    Py_CLEAR(args);
    if (waiter != Py_None) {
        if (!(args = PyTuple_Pack(2, waiter, Py_None)) ||
            cpy_call_soon(t->L, cpy.set_result_unless_cancelled, args) < 0)
            goto out;
    }
    r = 0;
out:
    Py_XDECREF(cm);
    Py_XDECREF(m);
    Py_XDECREF(args);
    return r;
}

static PyObject *tr_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"loop", "sock", "protocol", "waiter", "extra", "server", NULL};
    PyObject *loop, *sock, *protocol, *waiter = Py_None, *extra = Py_None, *server = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!OO|OOO:Transport", kwlist, cpy_LoopType, &loop,
                                     &sock, &protocol, &waiter, &extra, &server))
        return NULL;
    cpy_loop *L = (cpy_loop *)loop;
    if (cpy_loop_check_closed(L) < 0)
        return NULL;
    if (cpy_loop_enter(L) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "corio: a transport must be made on the loop's thread");
        return NULL;
    }
    PyObject *fdo = PyObject_CallMethodNoArgs(sock, S.fileno);
    int fd = fdo ? (int)PyLong_AsLong(fdo) : -1;
    Py_XDECREF(fdo);
    if (PyErr_Occurred())
        return NULL;
    PyObject *self = type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    cpy_transport *t = TR(self);
    t->link.next = t->link.prev = &t->link;
    t->fd = fd;
    t->L = (cpy_loop *)Py_NewRef(loop);
    t->sock = Py_NewRef(sock);
    t->server = server != Py_None ? Py_NewRef(server) : NULL;
    PyObject *ctx = NULL, *io = NULL, *ioargs = NULL, *r;
    if (init_extra(self, sock, extra) < 0 || set_protocol(t, protocol) < 0 ||
        set_limits(t, Py_None, Py_None) < 0)
        goto fail;
    if (t->server) {
        if (!(r = PyObject_CallMethodNoArgs(t->server, S.attach)))
            goto fail;
        Py_DECREF(r);
    }
    PyObject *trs = PyObject_GetAttr(loop, S.transports);
    if (!trs)
        goto fail;
    PyObject *fdobj = PyLong_FromLong(fd);
    int sr = fdobj ? PyObject_SetItem(trs, fdobj, self) : -1;
    Py_XDECREF(fdobj);
    Py_DECREF(trs);
    if (sr < 0 || !(r = PyObject_CallOneArg(cpy.set_nodelay, sock)))
        goto fail;
    Py_DECREF(r);
    if (!(ctx = PyContext_CopyCurrent()) || !(io = PyObject_GetAttrString(self, "_io_ready")) ||
        !(ioargs = PyTuple_New(0)) || !(t->iohandle = cpy_handle_new(L, io, ioargs, ctx)))
        goto fail;
    int err = attach(t);
    if (err < 0) {
        cpy_oserror(err);
        goto fail;
    }
    if (schedule_start(self, t, waiter) < 0)
        goto fail;
    Py_DECREF(ctx);
    Py_DECREF(io);
    Py_DECREF(ioargs);
    return self;
fail:
    detach(t);
    Py_CLEAR(t->sock); /* the caller closes the socket */
    Py_XDECREF(ctx);
    Py_XDECREF(io);
    Py_XDECREF(ioargs);
    Py_DECREF(self);
    return NULL;
}

/* Everything happens in tr_new; BaseTransport.__init__ must not run. */
static int tr_init(PyObject *self, PyObject *args, PyObject *kw)
{
    return 0;
}

static void tr_finalize(PyObject *self)
{
    cpy_transport *t = TR(self);
    if (!t->sock)
        return;
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    if (PyErr_ResourceWarning(self, 1, "unclosed transport %R", self) < 0)
        PyErr_WriteUnraisable(self);
    PyObject *r = PyObject_CallMethodNoArgs(t->sock, S.close);
    if (!r)
        PyErr_WriteUnraisable(self);
    Py_XDECREF(r);
    PyErr_Restore(type, val, tb);
}

static int tr_traverse(PyObject *self, visitproc visit, void *arg)
{
    cpy_transport *t = TR(self);
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(SLOT(self, cpy.tr_extra));
    Py_VISIT(t->L);
    Py_VISIT(t->sock);
    Py_VISIT(t->protocol);
    Py_VISIT(t->server);
    Py_VISIT(t->iohandle);
    Py_VISIT(t->empty_waiter);
    Py_VISIT(t->dict);
    return 0;
}

static int tr_clear(PyObject *self)
{
    cpy_transport *t = TR(self);
    PyObject *extra = SLOT(self, cpy.tr_extra);
    SLOT(self, cpy.tr_extra) = NULL;
    Py_XDECREF(extra);
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->server);
    Py_CLEAR(t->iohandle);
    Py_CLEAR(t->empty_waiter);
    Py_CLEAR(t->dict);
    return 0;
}

static void tr_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(self);
    cpy_transport *t = TR(self);
    if (t->weakreflist)
        PyObject_ClearWeakRefs(self);
    tr_clear(self);
    wbuf_clear(t);
    PyMem_Free(t->wbuf);
    Py_CLEAR(t->sock);
    Py_CLEAR(t->L);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ---- Attributes asyncio's Python code reads ---- */

static PyObject *get_sock(PyObject *self, void *c)
{
    PyObject *s = TR(self)->sock ? TR(self)->sock : Py_None;
    return Py_NewRef(s);
}
static PyObject *get_sock_fd(PyObject *self, void *c) { return PyLong_FromLong(TR(self)->fd); }
static PyObject *get_loop(PyObject *self, void *c)
{
    cpy_transport *t = TR(self);
    return Py_NewRef(t->lost || !t->L ? Py_None : (PyObject *)t->L);
}
static PyObject *get_protocol_attr(PyObject *self, void *c) { return tr_get_protocol(self, NULL); }
static PyObject *get_server(PyObject *self, void *c)
{
    return Py_NewRef(TR(self)->server ? TR(self)->server : Py_None);
}
static PyObject *get_closing(PyObject *self, void *c) { return PyBool_FromLong(TR(self)->closing); }
static PyObject *get_eof(PyObject *self, void *c) { return PyBool_FromLong(TR(self)->eof); }
static PyObject *get_paused(PyObject *self, void *c) { return PyBool_FromLong(TR(self)->paused); }
static PyObject *get_conn_lost(PyObject *self, void *c) { return PyLong_FromUnsignedLong(TR(self)->conn_lost); }
static PyObject *get_protocol_paused(PyObject *self, void *c)
{
    return PyBool_FromLong(TR(self)->protocol_paused);
}
static int set_protocol_paused(PyObject *self, PyObject *v, void *c)
{
    int b = v ? PyObject_IsTrue(v) : 0;
    if (b < 0)
        return -1;
    TR(self)->protocol_paused = b;
    return 0;
}
static PyObject *get_high(PyObject *self, void *c) { return PyLong_FromSsize_t(TR(self)->high); }
static PyObject *get_low(PyObject *self, void *c) { return PyLong_FromSsize_t(TR(self)->low); }
static PyObject *get_empty_waiter(PyObject *self, void *c)
{
    return Py_NewRef(TR(self)->empty_waiter ? TR(self)->empty_waiter : Py_None);
}

/* A copy of what waits to be sent, as asyncio's bytearray _buffer. */
static PyObject *get_buffer(PyObject *self, void *c)
{
    cpy_transport *t = TR(self);
    PyObject *b = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)t->bufsize);
    if (!b)
        return NULL;
    char *p = PyByteArray_AS_STRING(b);
    for (size_t i = 0; i < t->wn; i++) {
        PyObject *o = t->wbuf[(t->whead + i) % t->wcap];
        size_t off = i == 0 ? t->woff : 0, n = (size_t)PyBytes_GET_SIZE(o) - off;
        memcpy(p, PyBytes_AS_STRING(o) + off, n);
        p += n;
    }
    return b;
}

static PyGetSetDef tr_getset[] = {
    {"_sock", get_sock, NULL, NULL, NULL},
    {"_sock_fd", get_sock_fd, NULL, NULL, NULL},
    {"_loop", get_loop, NULL, NULL, NULL},
    {"_protocol", get_protocol_attr, NULL, NULL, NULL},
    {"_server", get_server, NULL, NULL, NULL},
    {"_closing", get_closing, NULL, NULL, NULL},
    {"_eof", get_eof, NULL, NULL, NULL},
    {"_paused", get_paused, NULL, NULL, NULL},
    {"_conn_lost", get_conn_lost, NULL, NULL, NULL},
    {"_protocol_paused", get_protocol_paused, set_protocol_paused, NULL, NULL},
    {"_high_water", get_high, NULL, NULL, NULL},
    {"_low_water", get_low, NULL, NULL, NULL},
    {"_empty_waiter", get_empty_waiter, NULL, NULL, NULL},
    {"_buffer", get_buffer, NULL, NULL, NULL},
    {NULL},
};

#define M0(n, f) {n, (PyCFunction)(f), METH_NOARGS, NULL}
#define M1(n, f) {n, (PyCFunction)(f), METH_O, NULL}
static PyMethodDef tr_methods[] = {
    M1("write", tr_write),
    M1("writelines", tr_writelines),
    M0("write_eof", tr_write_eof),
    M0("can_write_eof", tr_can_write_eof),
    M0("close", tr_close),
    M0("abort", tr_abort),
    M0("is_closing", tr_is_closing),
    M0("is_reading", tr_is_reading),
    M0("pause_reading", tr_pause_reading),
    M0("resume_reading", tr_resume_reading),
    M1("set_protocol", tr_set_protocol),
    M0("get_protocol", tr_get_protocol),
    M0("get_write_buffer_size", tr_get_write_buffer_size),
    M0("get_write_buffer_limits", tr_get_write_buffer_limits),
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))tr_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))tr_get_extra_info, METH_VARARGS | METH_KEYWORDS,
     NULL},
    M0("_make_empty_waiter", tr_make_empty_waiter),
    M0("_reset_empty_waiter", tr_reset_empty_waiter),
    M1("_call_connection_lost", tr_call_connection_lost),
    M1("_force_close", tr_force_close),
    {"_fatal_error", (PyCFunction)tr_fatal_error, METH_VARARGS, NULL},
    M0("_io_ready", tr_io_ready),
    M0("_start_reading", tr_start_reading),
    {NULL},
};

int cpy_transport_init(PyObject *module)
{
    Py_ssize_t base = cpy.Transport->tp_basicsize;
    tr_off = (base + 15) & ~(Py_ssize_t)15;
    static PyMemberDef members[3];
    members[0] = (PyMemberDef){"__dictoffset__", T_PYSSIZET,
                               tr_off + (Py_ssize_t)offsetof(cpy_transport, dict), READONLY, NULL};
    members[1] = (PyMemberDef){"__weaklistoffset__", T_PYSSIZET,
                               tr_off + (Py_ssize_t)offsetof(cpy_transport, weakreflist), READONLY,
                               NULL};
    members[2] = (PyMemberDef){NULL};
    PyType_Slot slots[] = {
        {Py_tp_new, tr_new},
        {Py_tp_init, tr_init},
        {Py_tp_dealloc, tr_dealloc},
        {Py_tp_traverse, tr_traverse},
        {Py_tp_clear, tr_clear},
        {Py_tp_finalize, tr_finalize},
        {Py_tp_repr, tr_repr},
        {Py_tp_methods, tr_methods},
        {Py_tp_getset, tr_getset},
        {Py_tp_members, members},
        {Py_tp_doc, "A TCP or Unix stream transport, an asyncio.Transport run by corio."},
        {0, NULL},
    };
    PyType_Spec spec = {
        .name = "corio._corio._CorioSocketTransport",
        .basicsize = (int)(tr_off + (Py_ssize_t)sizeof(cpy_transport)),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
        .slots = slots,
    };
    PyObject *bases = PyTuple_Pack(1, (PyObject *)cpy.Transport);
    if (!bases)
        return -1;
    cpy_TransportType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    Py_DECREF(bases);
    if (!cpy_TransportType)
        return -1;
    Py_INCREF(cpy_TransportType);
    return PyModule_AddObject(module, "SocketTransport", (PyObject *)cpy_TransportType);
}
