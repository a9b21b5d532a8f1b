/* The loop core: the C base of corio.EventLoop.  It owns a corio loop and
 * takes over what asyncio runs once per callback: the ready queue, timers,
 * add_reader/add_writer and _run_once.  Everything else is inherited from
 * asyncio's own selector loop (see __init__.py).
 *
 * One pass of _run_once, as in asyncio's base_events:
 *   1. re-arm the level-triggered readers/writers that fired last pass;
 *   2. poll: corio_loop_run(ONCE) with the GIL released, or NOWAIT when
 *      callbacks are ready; watcher and timer callbacks only link records;
 *   3. append the I/O handles, then the due timers, to _ready;
 *   4. run the handles that are in _ready now, and no others.
 * So callbacks run in asyncio's order: earlier call_soon()s, then I/O in
 * the order the kernel reported it, then timers by deadline. */
#include "_corio.h"

#include <math.h>

PyTypeObject *cpy_LoopType;

/* A reader and/or writer registered with add_reader/add_writer.  One corio
 * watcher per fd, edge-triggered; level-triggered behaviour comes from
 * re-arming it before each poll that follows one in which it fired. */
struct cpy_fdrec {
    corio_watcher w;
    cpy_loop *L;
    PyObject *reader, *writer; /* asyncio.Handle or NULL */
    unsigned ev;               /* events seen while polling */
    bool pending, in_rearm;
    struct cpy_fdrec *pend_next, *rearm_next;
};

static void list_init_(corio_list *l) { l->next = l->prev = l; }
static void list_add_(corio_list *h, corio_list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static void list_del_(corio_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

PyObject *cpy_oserror(int err)
{
    errno = -err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

int cpy_loop_check_closed(cpy_loop *L)
{
    if (L->closed || !L->cl) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

int cpy_loop_enter(cpy_loop *L)
{
    unsigned long me = PyThread_get_thread_ident();
    if (L->owner_tid == me)
        return L->in_poll ? 1 : 0;
    if (L->thread_id && L->thread_id != me)
        return 1; /* another thread runs the loop */
    if (!L->cl || corio_loop_adopt(L->cl) < 0)
        return 1;
    L->owner_tid = me;
    return 0;
}

int cpy_ready_append(cpy_loop *L, PyObject *h)
{
    PyObject *args[2] = {L->ready, h};
    PyObject *r = PyObject_Vectorcall(cpy.deque_append, args, 2, NULL);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

int cpy_call_soon(cpy_loop *L, PyObject *fn, PyObject *args)
{
    if (cpy_loop_check_closed(L) < 0)
        return -1;
    PyObject *h = cpy_handle_new(L, fn, args, NULL);
    if (!h)
        return -1;
    int r = cpy_ready_append(L, h);
    Py_DECREF(h);
    return r;
}

void cpy_call_exception_handler(cpy_loop *L, PyObject *ctx)
{
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)L, S.call_exception_handler, ctx);
    if (!r)
        PyErr_WriteUnraisable((PyObject *)L);
    Py_XDECREF(r);
}

/* ---- Time and timers ---- */

static int64_t deadline_of(double when)
{
    if (isnan(when) || when <= 0)
        return 0;
    double ns = ceil(when * 1e9);
    return ns >= 9.2e18 ? CORIO_FOREVER : (int64_t)ns;
}

static PyObject *loop_time(cpy_loop *L, PyObject *unused)
{
    return PyFloat_FromDouble((double)corio_now() / 1e9);
}

static void timer_fired(corio_loop *cl, corio_timer *ct)
{
    cpy_timer *t = (cpy_timer *)ct;
    cpy_loop *L = t->loop;
    list_del_(&t->link);
    L->ntimers--;
    t->armed = false;
    t->due_next = NULL;
    *L->due_tail = t;
    L->due_tail = &t->due_next;
}

/* Arms a TimerHandle; the loop holds a reference until it fires or is
 * cancelled. */
static void timer_arm(cpy_loop *L, PyObject *h, double when)
{
    cpy_timer *t = TIMER_OF(h);
    t->loop = L;
    corio_timer_init(&t->t, timer_fired, NULL);
    corio_timer_start(L->cl, &t->t, deadline_of(when));
    list_add_(&L->timers, &t->link);
    L->ntimers++;
    t->armed = true;
    slot_set(h, cpy.th_scheduled, Py_True);
    Py_INCREF(h);
}

static void timer_disarm(cpy_loop *L, PyObject *h)
{
    cpy_timer *t = TIMER_OF(h);
    corio_timer_stop(L->cl, &t->t);
    list_del_(&t->link);
    L->ntimers--;
    t->armed = false;
    slot_set(h, cpy.th_scheduled, Py_False);
    Py_DECREF(h);
}

/* Parses (callback, *args, context=None) starting at args[first]. */
static int parse_cb(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t first,
                    const char *fname, PyObject **cb, PyObject **cbargs, PyObject **ctx)
{
    *ctx = NULL;
    if (kwnames) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nk; i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (!PyUnicode_Check(k) || !_PyUnicode_EqualToASCIIString(k, "context")) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                             fname, k);
                return -1;
            }
            *ctx = args[nargs + i];
        }
    }
    if (nargs <= first) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'callback'", fname);
        return -1;
    }
    *cb = args[first];
    *cbargs = PyTuple_New(nargs - first - 1);
    if (!*cbargs)
        return -1;
    for (Py_ssize_t i = first + 1; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(*cbargs, i - first - 1, args[i]);
    }
    return 0;
}

static PyObject *base_events_method(const char *name)
{
    PyObject *m = PyImport_ImportModule("asyncio.base_events");
    if (!m)
        return NULL;
    PyObject *cls = PyObject_GetAttrString(m, "BaseEventLoop");
    Py_DECREF(m);
    if (!cls)
        return NULL;
    PyObject *f = PyObject_GetAttrString(cls, name);
    Py_DECREF(cls);
    return f;
}

/* Debug mode takes asyncio's own Python paths (thread checks, callback
 * checks, source tracebacks). */
static PyObject *call_base(cpy_loop *L, const char *name, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    PyObject *f = base_events_method(name);
    if (!f)
        return NULL;
    Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject **a = PyMem_Malloc((size_t)(nargs + nk + 1) * sizeof *a);
    if (!a) {
        Py_DECREF(f);
        return PyErr_NoMemory();
    }
    a[0] = (PyObject *)L;
    for (Py_ssize_t i = 0; i < nargs + nk; i++)
        a[i + 1] = args[i];
    PyObject *r = PyObject_Vectorcall(f, a, (size_t)nargs + 1, kwnames);
    PyMem_Free(a);
    Py_DECREF(f);
    return r;
}

static PyObject *call_at_impl(cpy_loop *L, PyObject *when, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames, const char *fname)
{
    PyObject *cb, *cbargs, *ctx, *h = NULL;
    if (when == Py_None) {
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
        return NULL;
    }
    double w = PyFloat_AsDouble(when);
    if (w == -1.0 && PyErr_Occurred())
        return NULL;
    if (cpy_loop_check_closed(L) < 0)
        return NULL;
    if (parse_cb(args, nargs, kwnames, 1, fname, &cb, &cbargs, &ctx) < 0)
        return NULL;
    if (L->debug) {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)L, S.check_thread);
        if (!r)
            goto out;
        Py_DECREF(r);
        r = PyObject_CallMethod((PyObject *)L, "_check_callback", "Os", cb, "call_at");
        if (!r)
            goto out;
        Py_DECREF(r);
        h = PyObject_CallFunction((PyObject *)cpy_TimerHandleType, "OOOOO", when, cb, cbargs, L,
                                  ctx ? ctx : Py_None);
        /* No Python frame of call_at() or call_later() to drop here:
         * TimerHandle.__init__ already dropped its own. */
    } else {
        h = cpy_timer_new(L, w, cb, cbargs, ctx);
    }
    if (!h)
        goto out;
    int e = cpy_loop_enter(L);
    if (e == 0) {
        timer_arm(L, h, w);
    } else if (PyList_Append(L->foreign, h) < 0 || (corio_loop_wake(L->cl), 0)) {
        Py_CLEAR(h);
    } else {
        slot_set(h, cpy.th_scheduled, Py_True);
    }
out:
    Py_DECREF(cbargs);
    return h;
}

static PyObject *loop_call_at(cpy_loop *L, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call_at() missing required argument 'when'");
        return NULL;
    }
    return call_at_impl(L, args[0], args, nargs, kwnames, "call_at");
}

static PyObject *loop_call_later(cpy_loop *L, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call_later() missing required argument 'delay'");
        return NULL;
    }
    if (args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    double d = PyFloat_AsDouble(args[0]);
    if (d == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *when = PyFloat_FromDouble((double)corio_now() / 1e9 + d);
    if (!when)
        return NULL;
    PyObject *h = call_at_impl(L, when, args, nargs, kwnames, "call_later");
    Py_DECREF(when);
    return h;
}

static PyObject *loop_call_soon(cpy_loop *L, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    if (L->debug)
        return call_base(L, "call_soon", args, nargs, kwnames);
    PyObject *cb, *cbargs, *ctx;
    if (cpy_loop_check_closed(L) < 0 ||
        parse_cb(args, nargs, kwnames, 0, "call_soon", &cb, &cbargs, &ctx) < 0)
        return NULL;
    PyObject *h = cpy_handle_new(L, cb, cbargs, ctx);
    Py_DECREF(cbargs);
    if (h && cpy_ready_append(L, h) < 0)
        Py_CLEAR(h);
    return h;
}

static PyObject *loop_call_soon_threadsafe(cpy_loop *L, PyObject *const *args, Py_ssize_t nargs,
                                           PyObject *kwnames)
{
    if (L->debug)
        return call_base(L, "call_soon_threadsafe", args, nargs, kwnames);
    PyObject *cb, *cbargs, *ctx;
    if (cpy_loop_check_closed(L) < 0 ||
        parse_cb(args, nargs, kwnames, 0, "call_soon_threadsafe", &cb, &cbargs, &ctx) < 0)
        return NULL;
    PyObject *h = cpy_handle_new(L, cb, cbargs, ctx);
    Py_DECREF(cbargs);
    if (h && cpy_ready_append(L, h) < 0)
        Py_CLEAR(h);
    if (h)
        (void)corio_loop_wake(L->cl); /* one eventfd write per batch */
    return h;
}

static PyObject *loop_timer_handle_cancelled(cpy_loop *L, PyObject *h)
{
    /* From another thread the timer stays in the wheel: it fires, finds
     * its handle cancelled and is dropped. */
    if (Py_TYPE(h) == cpy_TimerHandleType && TIMER_OF(h)->armed && TIMER_OF(h)->loop == L &&
        L->cl && cpy_loop_enter(L) == 0)
        timer_disarm(L, h);
    Py_RETURN_NONE;
}

/* ---- Readers and writers ---- */

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

/* ---- One pass ---- */

static void rearm_fired(cpy_loop *L)
{
    struct cpy_fdrec *r = L->rearm;
    L->rearm = NULL;
    while (r) {
        struct cpy_fdrec *next = r->rearm_next;
        r->in_rearm = false;
        if (r->w.active)
            (void)fdrec_update(L, r, true);
        r = next;
    }
}

static int queue_io(cpy_loop *L, struct cpy_fdrec *r, unsigned ev)
{
    bool fired = false;
    if ((ev & (CORIO_READABLE | CORIO_RDHUP | CORIO_HUP | CORIO_ERROR)) && r->reader) {
        if (SLOT(r->reader, cpy.h_cancelled) != Py_False)
            goto skip_r;
        if (cpy_ready_append(L, r->reader) < 0)
            return -1;
        fired = true;
    }
skip_r:
    if ((ev & (CORIO_WRITABLE | CORIO_HUP | CORIO_ERROR)) && r->writer &&
        SLOT(r->writer, cpy.h_cancelled) == Py_False) {
        if (cpy_ready_append(L, r->writer) < 0)
            return -1;
        fired = true;
    }
    if (fired && !r->in_rearm) {
        r->in_rearm = true;
        r->rearm_next = L->rearm;
        L->rearm = r;
    }
    return 0;
}

/* Turns what the poll collected into ready handles: I/O first, in the
 * kernel's order, then timers by deadline.  Every record is consumed even
 * if an append fails, so no edge is lost. */
static int collect(cpy_loop *L)
{
    int rc = 0;
    struct cpy_transport *t = L->again;
    L->again = NULL;
    while (t) {
        struct cpy_transport *next = cpy_transport_next_again(t);
        cpy_transport_again(L, t);
        t = next;
    }
    struct cpy_fdrec *r = L->pend_fd;
    L->pend_fd = NULL;
    L->pend_fd_tail = &L->pend_fd;
    struct cpy_transport *tr = L->pend_tr;
    L->pend_tr = NULL;
    L->pend_tr_tail = &L->pend_tr;
    while (r) {
        struct cpy_fdrec *next = r->pend_next;
        unsigned ev = r->ev;
        r->ev = 0;
        r->pending = false;
        if (rc == 0 && queue_io(L, r, ev) < 0)
            rc = -1;
        r = next;
    }
    while (tr) {
        struct cpy_transport *next = cpy_transport_next_pend(tr);
        cpy_transport_dispatch(L, tr);
        tr = next;
    }
    cpy_timer *d = L->due;
    L->due = NULL;
    L->due_tail = &L->due;
    while (d) {
        cpy_timer *next = d->due_next;
        PyObject *h = HANDLE_OF_TIMER(d);
        slot_set(h, cpy.th_scheduled, Py_False);
        if (rc == 0 && SLOT(h, cpy.h_cancelled) == Py_False && cpy_ready_append(L, h) < 0)
            rc = -1;
        Py_DECREF(h);
        d = next;
    }
    return rc;
}

static void arm_foreign(cpy_loop *L)
{
    Py_ssize_t n = PyList_GET_SIZE(L->foreign);
    if (n == 0)
        return;
    PyObject *list = L->foreign;
    L->foreign = PyList_New(0);
    if (!L->foreign) { /* keep the old list: retried next pass */
        L->foreign = list;
        PyErr_Clear();
        return;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *h = PyList_GET_ITEM(list, i);
        if (SLOT(h, cpy.h_cancelled) == Py_False)
            timer_arm(L, h, PyFloat_AsDouble(SLOT(h, cpy.th_when)));
    }
    Py_DECREF(list);
}

static int run_ready(cpy_loop *L)
{
    Py_ssize_t ntodo = PySequence_Size(L->ready);
    if (ntodo < 0)
        return -1;
    PyObject *ready = L->ready;
    Py_INCREF(ready);
    int rc = 0;
    for (Py_ssize_t i = 0; i < ntodo && rc == 0; i++) {
        PyObject *h = PyObject_Vectorcall(cpy.deque_popleft, &ready, 1, NULL);
        if (!h) {
            if (PyErr_ExceptionMatches(PyExc_IndexError)) { /* emptied by a callback */
                PyErr_Clear();
                break;
            }
            rc = -1;
            break;
        }
        int cancelled;
        if (PyObject_TypeCheck(h, cpy.Handle)) {
            PyObject *c = SLOT(h, cpy.h_cancelled);
            cancelled = c == Py_False ? 0 : c ? PyObject_IsTrue(c) : 0;
        } else {
            PyObject *c = PyObject_GetAttrString(h, "_cancelled");
            cancelled = c ? PyObject_IsTrue(c) : -1;
            Py_XDECREF(c);
        }
        if (cancelled < 0)
            rc = -1;
        else if (!cancelled) {
            if (L->debug) {
                PyObject *r = PyObject_CallMethodOneArg((PyObject *)L, S.run_handle_debug, h);
                Py_XDECREF(r);
                rc = r ? 0 : -1;
            } else {
                rc = cpy_handle_run(L, h);
            }
        }
        Py_DECREF(h);
    }
    Py_DECREF(ready);
    return rc;
}

static PyObject *loop_run_once(cpy_loop *L, PyObject *unused)
{
    if (cpy_loop_check_closed(L) < 0)
        return NULL;
    unsigned long me = PyThread_get_thread_ident();
    if (L->owner_tid != me) {
        if (corio_loop_adopt(L->cl) < 0) {
            PyErr_SetString(PyExc_RuntimeError, "corio: the loop runs in another thread");
            return NULL;
        }
        L->owner_tid = me;
    }
    arm_foreign(L);
    rearm_fired(L);
    Py_ssize_t nready = PySequence_Size(L->ready);
    if (nready < 0)
        return NULL;
    int r;
    if (nready || L->stopping || L->again) {
        r = corio_loop_run(L->cl, CORIO_RUN_NOWAIT);
    } else {
        L->in_poll = true;
        Py_BEGIN_ALLOW_THREADS
        r = corio_loop_run(L->cl, CORIO_RUN_ONCE);
        Py_END_ALLOW_THREADS
        L->in_poll = false;
    }
    int rc = collect(L);
    if (r < 0 && rc == 0) {
        cpy_oserror(r);
        rc = -1;
    }
    if (rc == 0 && PyErr_CheckSignals() < 0)
        rc = -1;
    if (rc == 0)
        rc = run_ready(L);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- Lifetime ---- */

static void free_core(cpy_loop *L)
{
    if (!L->cl)
        return;
    if (cpy_loop_enter(L) != 0)
        return; /* running in another thread: leave it to dealloc there */
    L->closing_core = true;
    while (L->timers.next != &L->timers) {
        cpy_timer *t = (cpy_timer *)((char *)L->timers.next - offsetof(cpy_timer, link));
        timer_disarm(L, HANDLE_OF_TIMER(t));
    }
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
    cpy_transports_detach_all(L);
    /* Timers that fired but were never collected hold a reference each. */
    collect(L);
    PyErr_Clear();
    Py_CLEAR(L->foreign);
    int err = corio_loop_free(L->cl);
    if (err == 0)
        L->cl = NULL;
    PyMem_Free(L->rbuf);
    L->rbuf = NULL;
}

static PyObject *loop_corio_close(cpy_loop *L, PyObject *unused)
{
    free_core(L);
    Py_RETURN_NONE;
}

static PyObject *loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    cpy_loop *L = (cpy_loop *)type->tp_alloc(type, 0);
    if (!L)
        return NULL;
    corio_loop_options o = {.no_overflow_handler = true};
    int err = corio_loop_new(&L->cl, &o);
    if (err < 0) {
        Py_DECREF(L);
        return cpy_oserror(err);
    }
    L->owner_tid = PyThread_get_thread_ident();
    L->pend_fd_tail = &L->pend_fd;
    L->pend_tr_tail = &L->pend_tr;
    L->due_tail = &L->due;
    list_init_(&L->timers);
    list_init_(&L->trs);
    if (!(L->foreign = PyList_New(0))) {
        Py_DECREF(L);
        return NULL;
    }
    return (PyObject *)L;
}

static int loop_traverse(cpy_loop *L, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(L));
    Py_VISIT(L->ready);
    Py_VISIT(L->foreign);
    for (size_t fd = 0; fd < L->nfds; fd++) {
        if (L->fds[fd]) {
            Py_VISIT(L->fds[fd]->reader);
            Py_VISIT(L->fds[fd]->writer);
        }
    }
    for (corio_list *l = L->timers.next; l && l != &L->timers; l = l->next)
        Py_VISIT(HANDLE_OF_TIMER((cpy_timer *)((char *)l - offsetof(cpy_timer, link))));
    return 0;
}

static int loop_clear(cpy_loop *L)
{
    Py_CLEAR(L->ready);
    for (size_t fd = 0; fd < L->nfds; fd++) {
        if (L->fds[fd]) {
            Py_CLEAR(L->fds[fd]->reader);
            Py_CLEAR(L->fds[fd]->writer);
        }
    }
    return 0;
}

static void loop_dealloc(cpy_loop *L)
{
    PyTypeObject *tp = Py_TYPE(L);
    PyObject_GC_UnTrack(L);
    if (L->cl) {
        if (L->owner_tid != PyThread_get_thread_ident() && !L->thread_id)
            (void)corio_loop_adopt(L->cl);
        L->owner_tid = PyThread_get_thread_ident();
        free_core(L);
    }
    loop_clear(L);
    Py_CLEAR(L->foreign);
    tp->tp_free((PyObject *)L);
    Py_DECREF(tp);
}

/* ---- Attributes asyncio's Python code reads and writes ---- */

static PyObject *get_ready(cpy_loop *L, void *c)
{
    if (!L->ready) {
        PyErr_SetString(PyExc_AttributeError, "_ready");
        return NULL;
    }
    Py_INCREF(L->ready);
    return L->ready;
}

static int set_ready(cpy_loop *L, PyObject *v, void *c)
{
    if (!v || !PyObject_TypeCheck(v, cpy.deque_type)) {
        PyErr_SetString(PyExc_TypeError, "_ready must be a collections.deque");
        return -1;
    }
    Py_INCREF(v);
    Py_XSETREF(L->ready, v);
    return 0;
}

#define BOOL_ATTR(name)                                                 \
    static PyObject *get_##name(cpy_loop *L, void *c)                   \
    {                                                                   \
        return PyBool_FromLong(L->name);                                \
    }                                                                   \
    static int set_##name(cpy_loop *L, PyObject *v, void *c)            \
    {                                                                   \
        int t = v ? PyObject_IsTrue(v) : 0;                             \
        if (t < 0)                                                      \
            return -1;                                                  \
        L->name = t;                                                    \
        return 0;                                                       \
    }
BOOL_ATTR(stopping)
BOOL_ATTR(closed)

static PyObject *get_debug(cpy_loop *L, void *c)
{
    return PyBool_FromLong(L->debug);
}

static int set_debug(cpy_loop *L, PyObject *v, void *c)
{
    int t = v ? PyObject_IsTrue(v) : 0;
    if (t < 0)
        return -1;
    L->debug = t;
    return 0;
}

static PyObject *get_thread_id(cpy_loop *L, void *c)
{
    if (!L->thread_id)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(L->thread_id);
}

static int set_thread_id(cpy_loop *L, PyObject *v, void *c)
{
    if (!v || v == Py_None) {
        L->thread_id = 0;
        return 0;
    }
    unsigned long t = PyLong_AsUnsignedLong(v);
    if (t == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    L->thread_id = t;
    return 0;
}

static int cmp_timer(const void *a, const void *b)
{
    const cpy_timer *x = *(cpy_timer *const *)a, *y = *(cpy_timer *const *)b;
    if (x->t.deadline != y->t.deadline)
        return x->t.deadline < y->t.deadline ? -1 : 1;
    return x->t.seq < y->t.seq ? -1 : x->t.seq > y->t.seq;
}

/* A snapshot of the armed timers, earliest first (a sorted list is a
 * heap, as asyncio keeps it).  Changing the list changes nothing. */
static PyObject *get_scheduled(cpy_loop *L, void *c)
{
    cpy_timer **v = PyMem_Malloc((L->ntimers + 1) * sizeof *v);
    if (!v)
        return PyErr_NoMemory();
    size_t n = 0;
    for (corio_list *l = L->timers.next; l != &L->timers; l = l->next)
        v[n++] = (cpy_timer *)((char *)l - offsetof(cpy_timer, link));
    qsort(v, n, sizeof *v, cmp_timer);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *h = HANDLE_OF_TIMER(v[i]);
        Py_INCREF(h);
        PyList_SET_ITEM(list, (Py_ssize_t)i, h);
    }
    PyMem_Free(v);
    return list;
}

static int set_scheduled(cpy_loop *L, PyObject *v, void *c)
{
    return 0; /* BaseEventLoop.__init__ sets []; the timers live in corio */
}

static PyObject *get_backend(cpy_loop *L, void *c)
{
    if (!L->cl)
        Py_RETURN_NONE;
    return PyUnicode_FromString(corio_loop_backend(L->cl));
}

static PyGetSetDef loop_getset[] = {
    {"_ready", (getter)get_ready, (setter)set_ready, NULL, NULL},
    {"_stopping", (getter)get_stopping, (setter)set_stopping, NULL, NULL},
    {"_closed", (getter)get_closed, (setter)set_closed, NULL, NULL},
    {"_debug", (getter)get_debug, (setter)set_debug, NULL, NULL},
    {"_thread_id", (getter)get_thread_id, (setter)set_thread_id, NULL, NULL},
    {"_scheduled", (getter)get_scheduled, (setter)set_scheduled, NULL, NULL},
    {"_corio_backend", (getter)get_backend, NULL, "corio's backend: epoll or poll", NULL},
    {NULL},
};

#define FAST (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef loop_methods[] = {
    {"time", (PyCFunction)loop_time, METH_NOARGS, NULL},
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon, FAST, NULL},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later, FAST, NULL},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at, FAST, NULL},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))loop_call_soon_threadsafe, FAST, NULL},
    {"_timer_handle_cancelled", (PyCFunction)loop_timer_handle_cancelled, METH_O, NULL},
    {"_add_reader", (PyCFunction)(void (*)(void))loop_add_reader, METH_FASTCALL, NULL},
    {"_add_writer", (PyCFunction)(void (*)(void))loop_add_writer, METH_FASTCALL, NULL},
    {"_remove_reader", (PyCFunction)(void (*)(void))loop_remove_reader, METH_FASTCALL, NULL},
    {"_remove_writer", (PyCFunction)(void (*)(void))loop_remove_writer, METH_FASTCALL, NULL},
    {"_corio_fd_key", (PyCFunction)loop_fd_key, METH_O, NULL},
    {"_run_once", (PyCFunction)loop_run_once, METH_NOARGS, NULL},
    {"_corio_close", (PyCFunction)loop_corio_close, METH_NOARGS, NULL},
    {NULL},
};

int cpy_loop_type_init(PyObject *module);
int cpy_loop_type_init(PyObject *module)
{
    PyType_Slot slots[] = {
        {Py_tp_new, loop_new},
        {Py_tp_dealloc, loop_dealloc},
        {Py_tp_traverse, loop_traverse},
        {Py_tp_clear, loop_clear},
        {Py_tp_methods, loop_methods},
        {Py_tp_getset, loop_getset},
        {Py_tp_doc, "The C core of corio.EventLoop."},
        {0, NULL},
    };
    PyType_Spec spec = {
        .name = "corio._corio.LoopCore",
        .basicsize = sizeof(cpy_loop),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
        .slots = slots,
    };
    cpy_LoopType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, NULL);
    if (!cpy_LoopType)
        return -1;
    Py_INCREF(cpy_LoopType);
    return PyModule_AddObject(module, "LoopCore", (PyObject *)cpy_LoopType);
}
