/* asyncio Handles without Handle.__init__: the objects are the real
 * asyncio.Handle (and a C subclass of asyncio.TimerHandle that carries a
 * corio timer), their __slots__ filled directly at the offsets the member
 * descriptors give.  Code that inspects handles sees asyncio's own types. */
#include "_corio.h"

#include <structmember.h>

struct cpy_asyncio cpy;
struct cpy_str S;
PyTypeObject *cpy_TimerHandleType;
Py_ssize_t cpy_timer_offset;

static int slot_offset(PyTypeObject *tp, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyDict_GetItemString(tp->tp_dict, name); /* borrowed */
    if (!d || Py_TYPE(d) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_ImportError, "corio: %s.%s is not a slot", tp->tp_name, name);
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_ImportError, "corio: %s.%s has an unexpected type", tp->tp_name, name);
        return -1;
    }
    *off = m->offset;
    return 0;
}

static PyObject *attr_of(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (!m)
        return NULL;
    PyObject *a = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return a;
}

#define INTERN(f, s)                                        \
    do {                                                    \
        if (!(S.f = PyUnicode_InternFromString(s)))         \
            return -1;                                      \
    } while (0)

static int intern_all(void)
{
    INTERN(call_exception_handler, "call_exception_handler");
    INTERN(message, "message");
    INTERN(exception, "exception");
    INTERN(handle, "handle");
    INTERN(source_traceback, "source_traceback");
    INTERN(transport, "transport");
    INTERN(protocol, "protocol");
    INTERN(socket, "socket");
    INTERN(sockname, "sockname");
    INTERN(peername, "peername");
    INTERN(connection_made, "connection_made");
    INTERN(connection_lost, "connection_lost");
    INTERN(data_received, "data_received");
    INTERN(eof_received, "eof_received");
    INTERN(get_buffer, "get_buffer");
    INTERN(buffer_updated, "buffer_updated");
    INTERN(pause_writing, "pause_writing");
    INTERN(resume_writing, "resume_writing");
    INTERN(close, "close");
    INTERN(fileno, "fileno");
    INTERN(getsockname, "getsockname");
    INTERN(getpeername, "getpeername");
    INTERN(run_handle_debug, "_run_handle_debug");
    INTERN(transports, "_transports");
    INTERN(attach, "_attach");
    INTERN(detach, "_detach");
    INTERN(call_soon, "call_soon");
    INTERN(warning, "warning");
    INTERN(debug, "debug");
    INTERN(shutdown, "shutdown");
    INTERN(set_result, "set_result");
    INTERN(set_exception, "set_exception");
    INTERN(create_future, "create_future");
    INTERN(cancelled, "cancelled");
    INTERN(run, "_run");
    INTERN(check_thread, "_check_thread");
    INTERN(check_callback, "_check_callback");
    INTERN(get_debug, "get_debug");
    INTERN(call_soon_threadsafe, "call_soon_threadsafe");
    INTERN(context, "context");
    PyObject *loop = PyUnicode_InternFromString("loop");
    if (!loop || !(S.loop_kw = PyTuple_Pack(1, loop)))
        return -1;
    Py_DECREF(loop);
    return 0;
}

static int lookup_asyncio(void)
{
    if (!(cpy.Handle = (PyTypeObject *)attr_of("asyncio.events", "Handle")) ||
        !(cpy.TimerHandle = (PyTypeObject *)attr_of("asyncio.events", "TimerHandle")) ||
        !(cpy.Transport = (PyTypeObject *)attr_of("asyncio.transports", "_FlowControlMixin")) ||
        !(cpy.BufferedProtocol = attr_of("asyncio.protocols", "BufferedProtocol")) ||
        !(cpy.format_callback_source = attr_of("asyncio.format_helpers", "_format_callback_source")) ||
        !(cpy.set_result_unless_cancelled = attr_of("asyncio.futures", "_set_result_unless_cancelled")) ||
        !(cpy.set_nodelay = attr_of("asyncio.base_events", "_set_nodelay")) ||
        !(cpy.TransportSocket = attr_of("asyncio.trsock", "TransportSocket")) ||
        !(cpy.logger = attr_of("asyncio.log", "logger")) ||
        !(cpy.Future = attr_of("asyncio.futures", "Future")) ||
        !(cpy.deque_type = (PyTypeObject *)attr_of("collections", "deque")))
        return -1;
    if (!(cpy.deque_append = PyObject_GetAttrString((PyObject *)cpy.deque_type, "append")) ||
        !(cpy.deque_popleft = PyObject_GetAttrString((PyObject *)cpy.deque_type, "popleft")) ||
        !(cpy.deque_appendleft = PyObject_GetAttrString((PyObject *)cpy.deque_type, "appendleft")))
        return -1;
    PyTypeObject *h = cpy.Handle, *th = cpy.TimerHandle;
    if (slot_offset(h, "_callback", &cpy.h_callback) || slot_offset(h, "_args", &cpy.h_args) ||
        slot_offset(h, "_cancelled", &cpy.h_cancelled) || slot_offset(h, "_loop", &cpy.h_loop) ||
        slot_offset(h, "_source_traceback", &cpy.h_source_traceback) ||
        slot_offset(h, "_repr", &cpy.h_repr) || slot_offset(h, "_context", &cpy.h_context) ||
        slot_offset(th, "_scheduled", &cpy.th_scheduled) || slot_offset(th, "_when", &cpy.th_when))
        return -1;
    PyTypeObject *bt = NULL;
    for (PyTypeObject *t = cpy.Transport; t; t = t->tp_base)
        if (PyDict_GetItemString(t->tp_dict, "_extra"))
            bt = t;
    if (!bt || slot_offset(bt, "_extra", &cpy.tr_extra))
        return -1;
    return 0;
}

/* The TimerHandle subclass: asyncio's layout, then a cpy_timer. */
static int make_timer_type(PyObject *module)
{
    Py_ssize_t base = cpy.TimerHandle->tp_basicsize;
    cpy_timer_offset = (base + 15) & ~(Py_ssize_t)15;
    PyType_Slot slots[] = {{0, NULL}};
    PyType_Spec spec = {
        .name = "corio._corio.TimerHandle",
        .basicsize = (int)(cpy_timer_offset + (Py_ssize_t)sizeof(cpy_timer)),
        .flags = Py_TPFLAGS_DEFAULT,
        .slots = slots,
    };
    PyObject *bases = PyTuple_Pack(1, (PyObject *)cpy.TimerHandle);
    if (!bases)
        return -1;
    cpy_TimerHandleType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    Py_DECREF(bases);
    if (!cpy_TimerHandleType)
        return -1;
    Py_INCREF(cpy_TimerHandleType);
    return PyModule_AddObject(module, "TimerHandle", (PyObject *)cpy_TimerHandleType);
}

int cpy_handles_init(PyObject *module)
{
    if (intern_all() < 0 || lookup_asyncio() < 0)
        return -1;
    return make_timer_type(module);
}

/* Fills the slots Handle.__init__ would set. */
static int fill(PyObject *h, cpy_loop *L, PyObject *callback, PyObject *args, PyObject *ctx)
{
    if (ctx == NULL || ctx == Py_None) {
        ctx = PyContext_CopyCurrent();
        if (!ctx)
            return -1;
    } else {
        Py_INCREF(ctx);
    }
    SLOT(h, cpy.h_context) = ctx;
    Py_INCREF(L);
    SLOT(h, cpy.h_loop) = (PyObject *)L;
    Py_INCREF(callback);
    SLOT(h, cpy.h_callback) = callback;
    Py_INCREF(args);
    SLOT(h, cpy.h_args) = args;
    Py_INCREF(Py_False);
    SLOT(h, cpy.h_cancelled) = Py_False;
    Py_INCREF(Py_None);
    SLOT(h, cpy.h_repr) = Py_None;
    Py_INCREF(Py_None);
    SLOT(h, cpy.h_source_traceback) = Py_None;
    return 0;
}

PyObject *cpy_handle_new(cpy_loop *L, PyObject *callback, PyObject *args, PyObject *ctx)
{
    PyObject *h = cpy.Handle->tp_alloc(cpy.Handle, 0);
    if (!h)
        return NULL;
    if (fill(h, L, callback, args, ctx) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

PyObject *cpy_timer_new(cpy_loop *L, double when, PyObject *callback, PyObject *args,
                        PyObject *ctx)
{
    PyObject *h = cpy_TimerHandleType->tp_alloc(cpy_TimerHandleType, 0);
    if (!h)
        return NULL;
    if (fill(h, L, callback, args, ctx) < 0 || !(SLOT(h, cpy.th_when) = PyFloat_FromDouble(when))) {
        Py_DECREF(h);
        return NULL;
    }
    Py_INCREF(Py_False);
    SLOT(h, cpy.th_scheduled) = Py_False;
    return h;
}

/* The except clause of Handle._run: report through the loop. */
static int report(cpy_loop *L, PyObject *h, PyObject *cb, PyObject *args)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    if (tb)
        PyException_SetTraceback(val, tb);
    int rc = -1;
    PyObject *ctx = NULL, *msg = NULL;
    PyObject *src = PyObject_CallFunctionObjArgs(cpy.format_callback_source, cb, args, NULL);
    if (!src)
        goto out;
    msg = PyUnicode_FromFormat("Exception in callback %U", src);
    Py_DECREF(src);
    if (!msg || !(ctx = PyDict_New()))
        goto out;
    if (PyDict_SetItem(ctx, S.message, msg) || PyDict_SetItem(ctx, S.exception, val) ||
        PyDict_SetItem(ctx, S.handle, h))
        goto out;
    PyObject *stb = SLOT(h, cpy.h_source_traceback);
    if (stb && PyObject_IsTrue(stb) > 0 && PyDict_SetItem(ctx, S.source_traceback, stb))
        goto out;
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)L, S.call_exception_handler, ctx);
    if (r) {
        Py_DECREF(r);
        rc = 0;
    }
out:
    Py_XDECREF(msg);
    Py_XDECREF(ctx);
    Py_XDECREF(type);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    return rc;
}

int cpy_handle_run(cpy_loop *L, PyObject *h)
{
    PyTypeObject *tp = Py_TYPE(h);
    PyObject *cb, *args, *ctx;
    if ((tp != cpy.Handle && tp != cpy_TimerHandleType) || !(cb = SLOT(h, cpy.h_callback)) ||
        !(args = SLOT(h, cpy.h_args)) || !PyTuple_CheckExact(args) ||
        !(ctx = SLOT(h, cpy.h_context)) || !PyContext_CheckExact(ctx)) {
        /* Someone else's handle, or a subclass: its own _run. */
        PyObject *r = PyObject_CallMethodNoArgs(h, S.run);
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    /* The callback may cancel its own handle, which clears these slots. */
    Py_INCREF(cb);
    Py_INCREF(args);
    Py_INCREF(ctx);
    PyObject *res = NULL;
    if (PyContext_Enter(ctx) == 0) {
        res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0),
                                  (size_t)PyTuple_GET_SIZE(args), NULL);
        if (PyContext_Exit(ctx) < 0)
            Py_CLEAR(res);
    }
    int rc = 0;
    if (res) {
        Py_DECREF(res);
    } else if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
               PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        rc = -1;
    } else {
        rc = report(L, h, cb, args);
    }
    Py_DECREF(cb);
    Py_DECREF(args);
    Py_DECREF(ctx);
    return rc;
}
