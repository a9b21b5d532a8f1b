/* add_reader/add_writer and what stands on them: the sock_* callbacks of
 * asyncio's selector loop and the accept path.
 *
 * One corio watcher per fd, edge-triggered; asyncio's level-triggered
 * meaning comes from re-arming it before each poll that follows one in
 * which it fired (one epoll_ctl, as asyncio's selector spends on every
 * add and remove). */
#include "_corio.h"

/* A reader and/or writer registered with add_reader/add_writer.  One corio
 * watcher per fd, edge-triggered; level-triggered behaviour comes from
 * re-arming it before each poll that follows one in which it fired. */
struct cpy_fdrec {
    corio_watcher w;
    cpy_loop *L;
    uint64_t pass;             /* (re)started by the ready callbacks of this pass, or 0 */
    PyObject *reader, *writer; /* asyncio.Handle or NULL */
    unsigned ev;               /* events seen while polling */
    bool pending, in_rearm;
    bool rearm_skip;           /* restarted since it fired: the restart re-armed it */
    struct cpy_fdrec *pend_next, *rearm_next;
};



static int fd_of(PyObject *o)
{
    long fd;
    if (PyLong_Check(o)) {
        fd = PyLong_AsLong(o);
        if (fd == -1 && PyErr_Occurred())
            return -1;
    } else {
        PyObject *r = PyObject_CallMethodNoArgs(o, S.fileno);
        if (r) {
            fd = PyLong_AsLong(r);
            Py_DECREF(r);
        }
        if (!r || (fd == -1 && PyErr_Occurred())) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
                PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R", o);
            }
            return -1;
        }
    }
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -1;
    }
    return (int)fd;
}

static void fd_fired(corio_loop *cl, corio_watcher *w, unsigned revents)
{
    struct cpy_fdrec *r = (struct cpy_fdrec *)w;
    cpy_loop *L = r->L;
    r->ev |= revents;
    if (!r->pending) {
        r->pending = true;
        r->pend_next = NULL;
        *L->pend_fd_tail = r;
        L->pend_fd_tail = &r->pend_next;
    }
}

static struct cpy_fdrec *fdrec(cpy_loop *L, int fd, bool create)
{
    if ((size_t)fd >= L->nfds) {
        if (!create)
            return NULL;
        size_t n = L->nfds ? L->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct cpy_fdrec **t = PyMem_Realloc(L->fds, n * sizeof *t);
        if (!t)
            return (struct cpy_fdrec *)PyErr_NoMemory();
        memset(t + L->nfds, 0, (n - L->nfds) * sizeof *t);
        L->fds = t;
        L->nfds = n;
    }
    struct cpy_fdrec *r = L->fds[fd];
    if (!r && create) {
        r = PyMem_Calloc(1, sizeof *r);
        if (!r)
            return (struct cpy_fdrec *)PyErr_NoMemory();
        r->L = L;
        corio_watcher_init(&r->w, fd, 0, CORIO_WATCH_EDGE, fd_fired, NULL);
        L->fds[fd] = r;
    }
    return r;
}

/* (Re)starts the watcher for what the record wants.  A start asks the
 * backend to report the fd again if it is ready, which is also how an fd
 * closed and reused behind corio's back gets registered again. */
static int fdrec_update(cpy_loop *L, struct cpy_fdrec *r, bool restart)
{
    unsigned ev = (r->reader ? CORIO_READABLE : 0u) | (r->writer ? CORIO_WRITABLE : 0u);
    if (!ev) {
        corio_watcher_stop(L->cl, &r->w);
        return 0;
    }
    if (r->w.active && !restart && (ev & ~r->w.events) == 0)
        return corio_watcher_set(L->cl, &r->w, ev);
    corio_watcher_stop(L->cl, &r->w);
    r->w.events = ev;
    return corio_watcher_start(L->cl, &r->w);
}

static void cancel_handle(PyObject *h)
{
    PyObject *r = PyObject_CallMethod(h, "cancel", NULL);
    if (!r)
        PyErr_WriteUnraisable(h);
    Py_XDECREF(r);
}

static PyObject *defer(cpy_loop *L, const char *name, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *m = PyObject_GetAttrString((PyObject *)L, name);
    if (!m)
        return NULL;
    PyObject *t = PyTuple_New(nargs + 1);
    if (!t) {
        Py_DECREF(m);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, m);
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(t, i + 1, args[i]);
    }
    PyObject *f = PyObject_GetAttr((PyObject *)L, S.call_soon_threadsafe);
    PyObject *r = f ? PyObject_Call(f, t, NULL) : NULL;
    Py_XDECREF(f);
    Py_DECREF(t);
    return r;
}

static PyObject *add_io(cpy_loop *L, PyObject *const *args, Py_ssize_t nargs, bool write,
                        const char *name)
{
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at least 2 arguments", name);
        return NULL;
    }
    if (cpy_loop_check_closed(L) < 0)
        return NULL;
    int fd = fd_of(args[0]);
    if (fd < 0)
        return NULL;
    int e = cpy_loop_enter(L);
    if (e)
        return defer(L, name, args, nargs);
    PyObject *cbargs = PyTuple_New(nargs - 2), *h;
    if (!cbargs)
        return NULL;
    for (Py_ssize_t i = 2; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(cbargs, i - 2, args[i]);
    }
    if (L->debug)
        h = PyObject_CallFunctionObjArgs((PyObject *)cpy.Handle, args[1], cbargs, L, Py_None, NULL);
    else
        h = cpy_handle_new(L, args[1], cbargs, NULL);
    Py_DECREF(cbargs);
    if (!h)
        return NULL;
    struct cpy_fdrec *r = fdrec(L, fd, true);
    if (!r) {
        Py_DECREF(h);
        return NULL;
    }
    PyObject **slot = write ? &r->writer : &r->reader, *old = *slot;
    *slot = h;
    Py_INCREF(h);
    r->pass = L->in_ready ? L->pass : 0;
    r->rearm_skip = r->in_rearm; /* the restart below re-arms it */
    int err = fdrec_update(L, r, true);
    if (err < 0) {
        *slot = old;
        Py_DECREF(h);
        Py_DECREF(h);
        (void)fdrec_update(L, r, false);
        return cpy_oserror(err);
    }
    if (old) {
        cancel_handle(old);
        Py_DECREF(old);
    }
    return h;
}

static PyObject *remove_io(cpy_loop *L, PyObject *const *args, Py_ssize_t nargs, bool write,
                           const char *name)
{
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly one argument", name);
        return NULL;
    }
    if (L->closed || !L->cl)
        Py_RETURN_FALSE;
    int fd = fd_of(args[0]);
    if (fd < 0)
        return NULL;
    if (cpy_loop_enter(L))
        return defer(L, name, args, nargs);
    struct cpy_fdrec *r = fdrec(L, fd, false);
    PyObject **slot = r ? (write ? &r->writer : &r->reader) : NULL;
    if (!slot || !*slot)
        Py_RETURN_FALSE;
    PyObject *h = *slot;
    *slot = NULL;
    (void)fdrec_update(L, r, false); /* shrinking cannot fail */
    cancel_handle(h);
    Py_DECREF(h);
    Py_RETURN_TRUE;
}

/* _ensure_fd_no_transport(fd): RuntimeError if a transport that is not
 * closing owns fd.  Reads the WeakValueDictionary's dict directly. */
static int ensure_no_transport(cpy_loop *L, PyObject *fdobj)
{
    PyObject *key;
    if (PyLong_Check(fdobj)) {
        key = Py_NewRef(fdobj);
    } else {
        PyObject *r = PyObject_CallMethodNoArgs(fdobj, S.fileno);
        key = r ? PyNumber_Long(r) : NULL;
        Py_XDECREF(r);
        if (!key) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
                PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R", fdobj);
            }
            return -1;
        }
    }
    int rc = -1;
    PyObject *trs = PyObject_GetAttr((PyObject *)L, S.transports), *tr = NULL, *data = NULL;
    if (!trs)
        goto out;
    data = PyObject_GetAttrString(trs, "data"); /* WeakValueDictionary: key -> KeyedRef */
    if (data && PyDict_Check(data)) {
        PyObject *ref = PyDict_GetItemWithError(data, key);
        if (!ref && PyErr_Occurred())
            goto out;
        tr = ref ? PyObject_CallNoArgs(ref) : Py_NewRef(Py_None);
        if (!tr)
            goto out;
    } else {
        PyErr_Clear();
        tr = PyObject_GetItem(trs, key);
        if (!tr) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError))
                goto out;
            PyErr_Clear();
            tr = Py_NewRef(Py_None);
        }
    }
    rc = 0;
    if (tr != Py_None) {
        PyObject *c = PyObject_CallMethod(tr, "is_closing", NULL);
        int closing = c ? PyObject_IsTrue(c) : -1;
        Py_XDECREF(c);
        if (closing < 0)
            rc = -1;
        else if (!closing) {
            PyErr_Format(PyExc_RuntimeError, "File descriptor %R is used by transport %R", fdobj, tr);
            rc = -1;
        }
    }
out:
    Py_XDECREF(tr);
    Py_XDECREF(data);
    Py_XDECREF(trs);
    Py_DECREF(key);
    return rc;
}

static PyObject *loop_ensure_fd_no_transport(cpy_loop *L, PyObject *fd)
{
    if (ensure_no_transport(L, fd) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *public_io(cpy_loop *L, PyObject *const *a, Py_ssize_t n, bool add, bool write)
{
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "missing argument 'fd'");
        return NULL;
    }
    if (ensure_no_transport(L, a[0]) < 0)
        return NULL;
    if (!add)
        return remove_io(L, a, n, write, write ? "remove_writer" : "remove_reader");
    PyObject *h = add_io(L, a, n, write, write ? "add_writer" : "add_reader");
    if (!h)
        return NULL;
    Py_DECREF(h);
    Py_RETURN_NONE;
}

static PyObject *loop_pub_add_reader(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return public_io(L, a, n, true, false);
}
static PyObject *loop_pub_add_writer(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return public_io(L, a, n, true, true);
}
static PyObject *loop_pub_remove_reader(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return public_io(L, a, n, false, false);
}
static PyObject *loop_pub_remove_writer(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return public_io(L, a, n, false, true);
}

/* The reader of sock_recv() (asyncio's _sock_recv): try again, finish the
 * future with the data or the error. */
static PyObject *loop_sock_recv_cb(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    if (n != 3) {
        PyErr_SetString(PyExc_TypeError, "_sock_recv(fut, sock, n)");
        return NULL;
    }
    PyObject *fut = a[0], *done = PyObject_CallMethod(fut, "done", NULL);
    int d = done ? PyObject_IsTrue(done) : -1;
    Py_XDECREF(done);
    if (d)
        return d < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *data = PyObject_CallMethod(a[1], "recv", "O", a[2]);
    PyObject *r;
    if (data) {
        r = PyObject_CallMethodOneArg(fut, S.set_result, data);
        Py_DECREF(data);
    } else if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
               PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        Py_RETURN_NONE; /* try again next time */
    } else if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
               PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return NULL;
    } else {
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        PyErr_NormalizeException(&type, &val, &tb);
        if (tb)
            PyException_SetTraceback(val, tb);
        r = PyObject_CallMethodOneArg(fut, S.set_exception, val);
        Py_XDECREF(type);
        Py_XDECREF(val);
        Py_XDECREF(tb);
    }
    Py_XDECREF(r);
    return r ? Py_NewRef(Py_None) : NULL;
}

/* _sock_read_done / _sock_write_done(fd, fut, handle=None). */
static PyObject *sock_done(cpy_loop *L, PyObject *const *a, Py_ssize_t n, PyObject *kw,
                           const char *remove)
{
    PyObject *handle = n > 2 ? a[2] : Py_None;
    Py_ssize_t nk = kw ? PyTuple_GET_SIZE(kw) : 0;
    for (Py_ssize_t i = 0; i < nk; i++)
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kw, i), "handle") == 0)
            handle = a[n + i];
    if (n < 2) {
        PyErr_SetString(PyExc_TypeError, "_sock_read_done(fd, fut, handle=None)");
        return NULL;
    }
    if (handle != Py_None) {
        PyObject *c = PyObject_CallMethodNoArgs(handle, S.cancelled);
        int cancelled = c ? PyObject_IsTrue(c) : -1;
        Py_XDECREF(c);
        if (cancelled)
            return cancelled < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *r = PyObject_CallMethod((PyObject *)L, remove, "O", a[0]);
    Py_XDECREF(r);
    return r ? Py_NewRef(Py_None) : NULL;
}

static PyObject *loop_sock_read_done(cpy_loop *L, PyObject *const *a, Py_ssize_t n, PyObject *kw)
{
    return sock_done(L, a, n, kw, "remove_reader");
}

static PyObject *loop_sock_write_done(cpy_loop *L, PyObject *const *a, Py_ssize_t n, PyObject *kw)
{
    return sock_done(L, a, n, kw, "remove_writer");
}

/* ---- The accept path ----
 * asyncio accepts in _accept_connection and makes each connection's
 * transport in a Task (_accept_connection2) whose first step runs next
 * pass.  Without TLS and outside debug mode, this does the same work in
 * the same passes without the Task: accept now, make the protocol and the
 * transport in a callback of the next pass.  TLS, debug mode and accept
 * errors other than "nothing left" take asyncio's own code. */

static PyObject *accept_base(cpy_loop *L, PyObject *const *a, Py_ssize_t n, PyObject *kw)
{
    PyObject *m = PyImport_ImportModule("asyncio.selector_events");
    PyObject *cls = m ? PyObject_GetAttrString(m, "BaseSelectorEventLoop") : NULL;
    PyObject *f = cls ? PyObject_GetAttrString(cls, "_accept_connection") : NULL;
    Py_XDECREF(m);
    Py_XDECREF(cls);
    if (!f)
        return NULL;
    Py_ssize_t nk = kw ? PyTuple_GET_SIZE(kw) : 0;
    PyObject **v = PyMem_Malloc((size_t)(n + nk + 1) * sizeof *v);
    if (!v) {
        Py_DECREF(f);
        return PyErr_NoMemory();
    }
    v[0] = (PyObject *)L;
    memcpy(v + 1, a, (size_t)(n + nk) * sizeof *v);
    PyObject *r = PyObject_Vectorcall(f, v, (size_t)n + 1, kw);
    PyMem_Free(v);
    Py_DECREF(f);
    return r;
}

static PyObject *loop_accept_connection(cpy_loop *L, PyObject *const *a, Py_ssize_t n,
                                        PyObject *kw)
{
    if (L->debug || kw || n < 2 || (n > 2 && a[2] != Py_None))
        return accept_base(L, a, n, kw);
    long backlog = 100;
    if (n > 4 && (backlog = PyLong_AsLong(a[4])) == -1 && PyErr_Occurred())
        return NULL;
    PyObject *finish = PyObject_GetAttrString((PyObject *)L, "_corio_accept_finish");
    if (!finish)
        return NULL;
    PyObject *server = n > 3 ? a[3] : Py_None;
    for (long i = 0; i < backlog; i++) {
        PyObject *pair = PyObject_CallMethod(a[1], "accept", NULL);
        if (!pair) {
            if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
                PyErr_ExceptionMatches(PyExc_InterruptedError) ||
                PyErr_ExceptionMatches(PyExc_ConnectionAbortedError)) {
                PyErr_Clear();
                break;
            }
            if (!PyErr_ExceptionMatches(PyExc_OSError)) {
                Py_DECREF(finish);
                return NULL;
            }
            PyErr_Clear();
            Py_DECREF(finish);
            return accept_base(L, a, n, kw); /* EMFILE and friends: asyncio's handling */
        }
        PyObject *conn = PyTuple_GET_ITEM(pair, 0), *addr = PyTuple_GET_ITEM(pair, 1);
        PyObject *r = PyObject_CallMethod(conn, "setblocking", "O", Py_False);
        PyObject *extra = r ? Py_BuildValue("{s:O}", "peername", addr) : NULL;
        PyObject *args = extra ? PyTuple_Pack(4, a[0], conn, extra, server) : NULL;
        int rc = args ? cpy_call_soon(L, finish, args) : -1;
        Py_XDECREF(r);
        Py_XDECREF(extra);
        Py_XDECREF(args);
        if (rc < 0) {
            PyObject *c = PyObject_CallMethodNoArgs(conn, S.close);
            Py_XDECREF(c);
            Py_DECREF(pair);
            Py_DECREF(finish);
            return NULL;
        }
        Py_DECREF(pair);
    }
    Py_DECREF(finish);
    Py_RETURN_NONE;
}

/* _accept_connection2 without the Task: errors drop the connection, as
 * asyncio does outside debug mode. */
static PyObject *loop_accept_finish(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    if (n != 4) {
        PyErr_SetString(PyExc_TypeError, "_corio_accept_finish(factory, conn, extra, server)");
        return NULL;
    }
    PyObject *conn = a[1], *tr = NULL, *proto = PyObject_CallNoArgs(a[0]);
    if (proto) {
        PyObject *args = PyTuple_Pack(2, conn, proto);
        PyObject *kw = Py_BuildValue("{s:O,s:O}", "extra", a[2], "server", a[3]);
        PyObject *m = PyObject_GetAttrString((PyObject *)L, "_make_socket_transport");
        tr = m && args && kw ? PyObject_Call(m, args, kw) : NULL;
        Py_XDECREF(m);
        Py_XDECREF(args);
        Py_XDECREF(kw);
        Py_DECREF(proto);
    }
    if (tr) {
        Py_DECREF(tr);
        Py_RETURN_NONE;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return NULL;
    PyErr_Clear();
    PyObject *c = PyObject_CallMethodNoArgs(conn, S.close);
    Py_XDECREF(c);
    PyErr_Clear();
    Py_RETURN_NONE;
}

static PyObject *loop_add_reader(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return add_io(L, a, n, false, "_add_reader");
}
static PyObject *loop_add_writer(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return add_io(L, a, n, true, "_add_writer");
}
static PyObject *loop_remove_reader(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return remove_io(L, a, n, false, "_remove_reader");
}
static PyObject *loop_remove_writer(cpy_loop *L, PyObject *const *a, Py_ssize_t n)
{
    return remove_io(L, a, n, true, "_remove_writer");
}

/* (events, (reader, writer)) for fd, or None: what the selector facade's
 * get_key() reports. */
static PyObject *loop_fd_key(cpy_loop *L, PyObject *arg)
{
    int fd = fd_of(arg);
    if (fd < 0)
        return NULL;
    struct cpy_fdrec *r = fdrec(L, fd, false);
    if (!r || (!r->reader && !r->writer))
        Py_RETURN_NONE;
    int mask = (r->reader ? 1 : 0) | (r->writer ? 2 : 0);
    return Py_BuildValue("i(OO)", mask, r->reader ? r->reader : Py_None,
                         r->writer ? r->writer : Py_None);
}

/* Re-arms the level-triggered readers and writers that fired, so that the
 * next poll reports them again if they are still ready. */
void cpy_fdio_rearm(cpy_loop *L)
{
    struct cpy_fdrec *r = L->rearm;
    L->rearm = NULL;
    while (r) {
        struct cpy_fdrec *next = r->rearm_next;
        r->in_rearm = false;
        if (r->w.active && !r->rearm_skip)
            (void)fdrec_update(L, r, true);
        r->rearm_skip = false;
        r = next;
    }
}

static void rearm_later(cpy_loop *L, struct cpy_fdrec *r)
{
    r->rearm_skip = false;
    if (!r->in_rearm) {
        r->in_rearm = true;
        r->rearm_next = L->rearm;
        L->rearm = r;
    }
}

static int queue_io(cpy_loop *L, struct cpy_fdrec *r, unsigned ev)
{
    bool fired = false;
    if (r->pass == L->pass) {
        /* Registered by this pass's ready callbacks, after asyncio's poll:
         * asyncio reports it next pass if it is still ready, and so do we. */
        rearm_later(L, r);
        return 0;
    }
    if ((ev & (CORIO_READABLE | CORIO_RDHUP | CORIO_HUP | CORIO_ERROR)) && r->reader) {
        if (SLOT(r->reader, cpy.h_cancelled) != Py_False)
            goto skip_r;
        if (cpy_io_append(L, r->reader) < 0)
            return -1;
        fired = true;
    }
skip_r:
    if ((ev & (CORIO_WRITABLE | CORIO_HUP | CORIO_ERROR)) && r->writer &&
        SLOT(r->writer, cpy.h_cancelled) == Py_False) {
        if (cpy_io_append(L, r->writer) < 0)
            return -1;
        fired = true;
    }
    if (fired)
        rearm_later(L, r);
    return 0;
}


/* Turns the records the poll collected into I/O handles, in order. */
int cpy_fdio_collect(cpy_loop *L)
{
    int rc = 0;
    struct cpy_fdrec *r = L->pend_fd;
    L->pend_fd = NULL;
    L->pend_fd_tail = &L->pend_fd;
    while (r) {
        struct cpy_fdrec *next = r->pend_next;
        unsigned ev = r->ev;
        r->ev = 0;
        r->pending = false;
        if (rc == 0 && queue_io(L, r, ev) < 0)
            rc = -1;
        r = next;
    }
    return rc;
}

void cpy_fdio_free_all(cpy_loop *L)
{
    for (size_t fd = 0; fd < L->nfds; fd++) {
        struct cpy_fdrec *r = L->fds[fd];
        if (!r)
            continue;
        corio_watcher_stop(L->cl, &r->w);
        Py_CLEAR(r->reader);
        Py_CLEAR(r->writer);
        PyMem_Free(r);
    }
    PyMem_Free(L->fds);
    L->fds = NULL;
    L->nfds = 0;
    L->rearm = NULL;
    L->pend_fd = NULL;
    L->pend_fd_tail = &L->pend_fd;
}

int cpy_fdio_traverse(cpy_loop *L, visitproc visit, void *arg)
{
    for (size_t fd = 0; fd < L->nfds; fd++) {
        if (L->fds[fd]) {
            Py_VISIT(L->fds[fd]->reader);
            Py_VISIT(L->fds[fd]->writer);
        }
    }
    return 0;
}

void cpy_fdio_clear(cpy_loop *L)
{
    for (size_t fd = 0; fd < L->nfds; fd++) {
        if (L->fds[fd]) {
            Py_CLEAR(L->fds[fd]->reader);
            Py_CLEAR(L->fds[fd]->writer);
        }
    }
}

#define FAST (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef methods[] = {
    {"_add_reader", (PyCFunction)(void (*)(void))loop_add_reader, METH_FASTCALL, NULL},
    {"_add_writer", (PyCFunction)(void (*)(void))loop_add_writer, METH_FASTCALL, NULL},
    {"_remove_reader", (PyCFunction)(void (*)(void))loop_remove_reader, METH_FASTCALL, NULL},
    {"_remove_writer", (PyCFunction)(void (*)(void))loop_remove_writer, METH_FASTCALL, NULL},
    {"_corio_fd_key", (PyCFunction)loop_fd_key, METH_O, NULL},
    {"add_reader", (PyCFunction)(void (*)(void))loop_pub_add_reader, METH_FASTCALL, NULL},
    {"add_writer", (PyCFunction)(void (*)(void))loop_pub_add_writer, METH_FASTCALL, NULL},
    {"remove_reader", (PyCFunction)(void (*)(void))loop_pub_remove_reader, METH_FASTCALL, NULL},
    {"remove_writer", (PyCFunction)(void (*)(void))loop_pub_remove_writer, METH_FASTCALL, NULL},
    {"_ensure_fd_no_transport", (PyCFunction)loop_ensure_fd_no_transport, METH_O, NULL},
    {"_sock_recv", (PyCFunction)(void (*)(void))loop_sock_recv_cb, METH_FASTCALL, NULL},
    {"_accept_connection", (PyCFunction)(void (*)(void))loop_accept_connection, FAST, NULL},
    {"_corio_accept_finish", (PyCFunction)(void (*)(void))loop_accept_finish, METH_FASTCALL, NULL},
    {"_sock_read_done", (PyCFunction)(void (*)(void))loop_sock_read_done, FAST, NULL},
    {"_sock_write_done", (PyCFunction)(void (*)(void))loop_sock_write_done, FAST, NULL},
    {NULL},
};

int cpy_fdio_add_methods(PyTypeObject *tp)
{
    for (PyMethodDef *m = methods; m->ml_name; m++) {
        PyObject *d = PyDescr_NewMethod(tp, m);
        if (!d || PyDict_SetItemString(tp->tp_dict, m->ml_name, d) < 0) {
            Py_XDECREF(d);
            return -1;
        }
        Py_DECREF(d);
    }
    PyType_Modified(tp);
    return 0;
}
