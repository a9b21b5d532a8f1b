/* corio for Python: shared declarations of the extension's files.
 *
 * loop.c       the loop core: ready queue, timers, _run_once
 * fdio.c       add_reader/add_writer, the sock_* callbacks, the accept path
 * handle.c     fast construction and running of asyncio Handles
 * transport.c  the TCP/Unix stream transport
 *
 * Threading: every method runs with the GIL held, except the backend poll,
 * which corio_loop_run() does with the GIL released.  While it runs, the
 * watcher and timer callbacks only link C records into the loop's pending
 * lists; Python objects are touched after the GIL is taken back. */
#ifndef CORIO_PY_H
#define CORIO_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>

#include "corio.h"

/* ---- asyncio objects looked up once, at import ---- */
struct cpy_asyncio {
    PyTypeObject *Handle;      /* asyncio.events.Handle */
    PyTypeObject *TimerHandle; /* asyncio.events.TimerHandle */
    PyTypeObject *Transport;   /* asyncio.transports._FlowControlMixin: the base of ours */
    PyObject *BufferedProtocol;
    PyObject *format_callback_source; /* asyncio.format_helpers._format_callback_source */
    PyObject *set_result_unless_cancelled; /* asyncio.futures._set_result_unless_cancelled */
    PyObject *set_nodelay;     /* asyncio.base_events._set_nodelay */
    PyObject *TransportSocket; /* asyncio.trsock.TransportSocket */
    PyObject *logger;          /* asyncio.log.logger */
    PyObject *deque_append;    /* collections.deque.append (method descriptor) */
    PyObject *deque_popleft;
    PyObject *deque_appendleft;
    PyTypeObject *deque_type;
    PyObject *Future;          /* asyncio.futures.Future (the C one when available) */
    /* Slot offsets of Handle and TimerHandle (their __slots__). */
    Py_ssize_t h_callback, h_args, h_cancelled, h_loop, h_source_traceback, h_repr, h_context;
    Py_ssize_t th_scheduled, th_when;
    Py_ssize_t tr_extra; /* BaseTransport._extra */
};
extern struct cpy_asyncio cpy;

/* Interned attribute names. */
struct cpy_str {
    PyObject *call_exception_handler, *message, *exception, *handle, *source_traceback,
        *transport, *protocol, *socket, *sockname, *peername, *connection_made,
        *connection_lost, *data_received, *eof_received, *get_buffer, *buffer_updated,
        *pause_writing, *resume_writing, *close, *fileno, *getsockname, *getpeername,
        *run_handle_debug, *transports, *attach, *detach, *call_soon, *warning, *debug,
        *shutdown, *set_result, *set_exception, *create_future, *cancelled, *run,
        *check_thread, *check_callback, *get_debug, *call_soon_threadsafe, *context,
        *loop_kw; /* ("loop",): keyword names for Future(loop=...) */
};
extern struct cpy_str S;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* Replaces an object slot, dropping the old value. */
static inline void slot_set(PyObject *o, Py_ssize_t off, PyObject *v)
{
    PyObject *old = SLOT(o, off);
    Py_XINCREF(v);
    SLOT(o, off) = v;
    Py_XDECREF(old);
}

/* ---- The loop core ---- */

struct cpy_fdrec;
struct cpy_transport;
typedef struct cpy_timer cpy_timer;

typedef struct cpy_loop {
    PyObject_HEAD
    corio_loop *cl;
    PyObject *ready;     /* the _ready deque */
    int stopping;        /* _stopping */
    int debug;           /* _debug */
    int closed;          /* _closed */
    unsigned long thread_id; /* _thread_id: the running thread, 0 when not running */
    unsigned long owner_tid; /* the thread corio's loop belongs to */
    bool in_poll;        /* inside corio_loop_run with the GIL released */
    bool in_ready;       /* running the callbacks that were ready when the pass began */
    uint64_t pass;       /* passes of _run_once: what ready callbacks start waits a pass */
    PyObject *deferred;  /* timers armed by ready callbacks that the same pass found due */
    PyObject *foreign;   /* TimerHandles armed from other threads, for the loop thread */
    PyObject *io;        /* handles of the last poll's I/O and timers, run at once */

    /* Filled while polling (GIL released), emptied right after. */
    struct cpy_fdrec *pend_fd, **pend_fd_tail;
    struct cpy_transport *pend_tr, **pend_tr_tail;
    cpy_timer *due, **due_tail;

    /* Level-triggered readers/writers that fired: re-armed before the next poll. */
    struct cpy_fdrec *rearm;
    /* Transports whose last read filled the buffer: read again after the next poll. */
    struct cpy_transport *again;

    /* fd -> record, for add_reader/add_writer. */
    struct cpy_fdrec **fds;
    size_t nfds;

    corio_list timers;   /* armed timers, for _scheduled and close */
    size_t ntimers;
    corio_list trs;      /* transports with a live watcher */

    char *rbuf;          /* scratch receive buffer for data_received transports */
    size_t rbuf_size;
} cpy_loop;

extern PyTypeObject *cpy_LoopType;

/* Makes the calling thread corio's owner if the loop is not running.  0
 * when the caller may touch corio objects, 1 when it must defer (another
 * thread runs the loop), -1 with an exception set. */
int cpy_loop_enter(cpy_loop *L);
/* RuntimeError('Event loop is closed') when closed. */
int cpy_loop_check_closed(cpy_loop *L);
/* Appends h to the ready queue (a new reference is taken). */
int cpy_ready_append(cpy_loop *L, PyObject *h);
/* Appends h to the handles of the poll being collected (L->io). */
int cpy_io_append(cpy_loop *L, PyObject *h);
/* loop.call_soon(fn, *args) with a fresh context; returns 0 or -1. */
int cpy_call_soon(cpy_loop *L, PyObject *fn, PyObject *args);
/* Calls the loop's exception handler with a context dict built from
 * (key, value) pairs; errors in it are printed, never raised. */
void cpy_call_exception_handler(cpy_loop *L, PyObject *ctx);

/* ---- Readers and writers (fdio.c) ---- */
int cpy_fdio_add_methods(PyTypeObject *loop_type);
int cpy_fdio_collect(cpy_loop *L);
void cpy_fdio_rearm(cpy_loop *L);
void cpy_fdio_free_all(cpy_loop *L);
int cpy_fdio_traverse(cpy_loop *L, visitproc visit, void *arg);
void cpy_fdio_clear(cpy_loop *L);

/* ---- Handles (handle.c) ---- */
int cpy_handles_init(PyObject *module);
/* A new asyncio.Handle for callback(*args) in ctx (NULL: a copy of the
 * current context), made without running Handle.__init__. */
PyObject *cpy_handle_new(cpy_loop *L, PyObject *callback, PyObject *args, PyObject *ctx);
/* Runs a handle as Handle._run() does.  0, or -1 for SystemExit and
 * KeyboardInterrupt, which propagate. */
int cpy_handle_run(cpy_loop *L, PyObject *h);

struct cpy_timer {
    corio_timer t;
    uint64_t pass;         /* armed by the ready callbacks of this pass, or 0 */
    corio_list link;       /* L->timers while armed */
    cpy_timer *due_next;   /* L->due while due */
    cpy_loop *loop;        /* borrowed: the Handle's _loop slot owns it */
    bool armed;
};
extern PyTypeObject *cpy_TimerHandleType;
extern Py_ssize_t cpy_timer_offset;
#define TIMER_OF(o) ((cpy_timer *)((char *)(o) + cpy_timer_offset))
#define HANDLE_OF_TIMER(t) ((PyObject *)((char *)(t) - cpy_timer_offset))
PyObject *cpy_timer_new(cpy_loop *L, double when, PyObject *callback, PyObject *args,
                        PyObject *ctx);

/* ---- Transports (transport.c) ---- */
int cpy_transport_init(PyObject *module);
extern PyTypeObject *cpy_TransportType;
/* Watcher events collected while polling, turned into ready work after. */
void cpy_transport_dispatch(cpy_loop *L, struct cpy_transport *t);
void cpy_transport_again(cpy_loop *L, struct cpy_transport *t);
/* Stops every transport's watcher: the loop is closing. */
void cpy_transports_detach_all(cpy_loop *L);
struct cpy_transport *cpy_transport_next_pend(struct cpy_transport *t);
struct cpy_transport *cpy_transport_next_again(struct cpy_transport *t);

/* Turns -errno into an OSError with the message of strerror. */
PyObject *cpy_oserror(int err);

#endif
