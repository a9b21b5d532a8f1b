/* The loop core: the C base of corio.EventLoop.  It owns a corio loop and
 * takes over what asyncio runs once per callback: the ready queue, timers
 * and _run_once (fdio.c has add_reader/add_writer, the sock_* callbacks and
 * the accept path).  Everything else is inherited from asyncio's own
 * selector loop (see __init__.py).
 *
 * asyncio's pass is: poll (without blocking if _ready has callbacks), then
 * run the callbacks that were in _ready, then those of the I/O the poll
 * reported, then the due timers; what they schedule runs next pass.  Ours
 * runs the same sequence of callbacks, with the poll moved after the ready
 * callbacks:
 *   1. run the callbacks in _ready now, and no others;
 *   2. re-arm the level-triggered readers/writers that fired;
 *   3. poll: corio_loop_run(ONCE) with the GIL released, or NOWAIT when
 *      step 1 scheduled callbacks; watcher and timer callbacks only link
 *      records;
 *   4. run the I/O handles in the kernel's order, then the due timers by
 *      deadline.
 * The order of callbacks is asyncio's; only the poll happens later, as if
 * it took longer, which no program can tell from a slow poll.  What it
 * saves is the zero-timeout poll asyncio makes between a callback that
 * schedules work (a future's result) and that work: one poll per round
 * trip instead of two, like uvloop, without uvloop's reordering. */
#include "_corio.h"

#include <math.h>

PyTypeObject *cpy_LoopType;

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

int cpy_io_append(cpy_loop *L, PyObject *h)
{
    return PyList_Append(L->io, h);
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
    t->pass = L->in_ready ? L->pass : 0;
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
            if (k != S.context &&
                (!PyUnicode_Check(k) || PyUnicode_CompareWithASCIIString(k, "context") != 0)) {
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

/* Called by every Future and Task as it is made (C _asyncio included). */
static PyObject *loop_get_debug(cpy_loop *L, PyObject *unused)
{
    return PyBool_FromLong(L->debug);
}

/* futures.Future(loop=self), without a Python frame. */
static PyObject *loop_create_future(cpy_loop *L, PyObject *unused)
{
    PyObject *args[1] = {(PyObject *)L};
    return PyObject_Vectorcall(cpy.Future, args, 0, S.loop_kw);
}

/* ---- One pass ---- */

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
    if (cpy_fdio_collect(L) < 0)
        rc = -1;
    struct cpy_transport *tr = L->pend_tr;
    L->pend_tr = NULL;
    L->pend_tr_tail = &L->pend_tr;
    while (tr) {
        struct cpy_transport *next = cpy_transport_next_pend(tr);
        cpy_transport_dispatch(L, tr);
        tr = next;
    }
    /* Timers held back last pass come first: they were due earlier. */
    Py_ssize_t nd = PyList_GET_SIZE(L->deferred);
    if (nd) {
        PyObject *held = L->deferred;
        L->deferred = PyList_New(0);
        if (!L->deferred) {
            L->deferred = held;
            rc = -1;
        } else {
            for (Py_ssize_t i = 0; i < nd; i++) {
                PyObject *h = PyList_GET_ITEM(held, i);
                if (rc == 0 && SLOT(h, cpy.h_cancelled) == Py_False && cpy_io_append(L, h) < 0)
                    rc = -1;
            }
            Py_DECREF(held);
        }
    }
    cpy_timer *d = L->due;
    L->due = NULL;
    L->due_tail = &L->due;
    while (d) {
        cpy_timer *next = d->due_next;
        PyObject *h = HANDLE_OF_TIMER(d);
        slot_set(h, cpy.th_scheduled, Py_False);
        if (d->pass == L->pass) { /* armed after asyncio's poll: next pass */
            if (PyList_Append(L->deferred, h) < 0)
                rc = -1;
        } else if (rc == 0 && SLOT(h, cpy.h_cancelled) == Py_False && cpy_io_append(L, h) < 0) {
            rc = -1;
        }
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

static int handle_cancelled(PyObject *h)
{
    if (PyObject_TypeCheck(h, cpy.Handle)) {
        PyObject *c = SLOT(h, cpy.h_cancelled);
        return c == Py_False || !c ? 0 : PyObject_IsTrue(c);
    }
    PyObject *c = PyObject_GetAttrString(h, "_cancelled");
    int r = c ? PyObject_IsTrue(c) : -1;
    Py_XDECREF(c);
    return r;
}

static int run_one(cpy_loop *L, PyObject *h)
{
    int cancelled = handle_cancelled(h);
    if (cancelled)
        return cancelled < 0 ? -1 : 0;
    if (!L->debug)
        return cpy_handle_run(L, h);
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)L, S.run_handle_debug, h);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* Step 1: the callbacks in _ready when the pass began. */
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
        rc = run_one(L, h);
        Py_DECREF(h);
    }
    Py_DECREF(ready);
    return rc;
}

/* Hands the I/O and timer handles not run yet back to the front of _ready,
 * where asyncio would have them, when the pass stops early. */
static void io_give_back(cpy_loop *L, Py_ssize_t from)
{
    PyObject *io = L->io;
    for (Py_ssize_t i = PyList_GET_SIZE(io) - 1; i >= from; i--) {
        PyObject *args[2] = {L->ready, PyList_GET_ITEM(io, i)};
        PyObject *r = PyObject_Vectorcall(cpy.deque_appendleft, args, 2, NULL);
        if (!r)
            PyErr_WriteUnraisable((PyObject *)L);
        Py_XDECREF(r);
    }
    PyList_SetSlice(io, 0, PyList_GET_SIZE(io), NULL);
}

/* Step 4: the handles of this poll's I/O, then its due timers. */
static int run_io(cpy_loop *L)
{
    PyObject *io = L->io;
    Py_ssize_t n = PyList_GET_SIZE(io), i = 0;
    int rc = 0;
    for (; i < n && rc == 0; i++) {
        PyObject *h = PyList_GET_ITEM(io, i);
        Py_INCREF(h);
        rc = run_one(L, h);
        Py_DECREF(h);
    }
    if (rc < 0) {
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        io_give_back(L, i);
        PyErr_Restore(type, val, tb);
        return -1;
    }
    PyList_SetSlice(io, 0, n, NULL);
    return 0;
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
    L->pass++;
    L->in_ready = true;
    int rr = run_ready(L);
    L->in_ready = false;
    if (rr < 0)
        return NULL;
    if (L->closed || !L->cl) /* a callback closed the loop */
        Py_RETURN_NONE;
    arm_foreign(L);
    cpy_fdio_rearm(L);
    Py_ssize_t nready = PySequence_Size(L->ready);
    if (nready < 0)
        return NULL;
    int r;
    if (nready || L->stopping || L->again || PyList_GET_SIZE(L->deferred)) {
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
    if (rc < 0) {
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        io_give_back(L, 0);
        PyErr_Restore(type, val, tb);
        return NULL;
    }
    if (run_io(L) < 0)
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
    while (L->timers.next != &L->timers) {
        cpy_timer *t = (cpy_timer *)((char *)L->timers.next - offsetof(cpy_timer, link));
        timer_disarm(L, HANDLE_OF_TIMER(t));
    }
    cpy_fdio_free_all(L);
    cpy_transports_detach_all(L);
    /* Timers that fired but were never collected hold a reference each. */
    collect(L);
    PyErr_Clear();
    PyList_SetSlice(L->io, 0, PyList_GET_SIZE(L->io), NULL);
    PyList_SetSlice(L->deferred, 0, PyList_GET_SIZE(L->deferred), NULL);
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
    if (!(L->foreign = PyList_New(0)) || !(L->io = PyList_New(0)) ||
        !(L->deferred = PyList_New(0))) {
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
    Py_VISIT(L->io);
    Py_VISIT(L->deferred);
    int err = cpy_fdio_traverse(L, visit, arg);
    if (err)
        return err;
    for (corio_list *l = L->timers.next; l && l != &L->timers; l = l->next)
        Py_VISIT(HANDLE_OF_TIMER((cpy_timer *)((char *)l - offsetof(cpy_timer, link))));
    return 0;
}

static int loop_clear(cpy_loop *L)
{
    Py_CLEAR(L->ready);
    cpy_fdio_clear(L);
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
    Py_CLEAR(L->io);
    Py_CLEAR(L->deferred);
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
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS, NULL},
    {"create_future", (PyCFunction)loop_create_future, METH_NOARGS, NULL},
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon, FAST, NULL},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later, FAST, NULL},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at, FAST, NULL},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))loop_call_soon_threadsafe, FAST, NULL},
    {"_timer_handle_cancelled", (PyCFunction)loop_timer_handle_cancelled, METH_O, NULL},
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
    if (!cpy_LoopType || cpy_fdio_add_methods(cpy_LoopType) < 0)
        return -1;
    Py_INCREF(cpy_LoopType);
    return PyModule_AddObject(module, "LoopCore", (PyObject *)cpy_LoopType);
}
