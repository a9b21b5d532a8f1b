/* Per-layer metrics: the snapshot of a loop's counters, the JSON and
 * Prometheus writers, the JSON reader, and the layer table corio-top draws.
 *
 * The counters themselves are plain fields of loop->stats bumped in the
 * hot paths (loop.c, fd.c, co.c, io.c, timer.c) through CORIO_STAT(), so
 * -DCORIO_NO_STATS removes them.  Nothing here runs on the I/O path: a
 * snapshot is taken on demand, about once a second.
 *
 * One descriptor table of the scalar and histogram fields drives the JSON
 * writer and reader, the Prometheus writer and the merge, so a new figure
 * is one line below (plus its increment). */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

/* ---- Histograms and names ---- */

uint64_t corio_hist_quantile(const corio_hist *h, double q)
{
    if (!h->count)
        return 0;
    double want = q * (double)h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < CORIO_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if ((double)seen >= want && seen)
            return i == 0 ? 0 : ((uint64_t)1 << i) - 1;
    }
    return ((uint64_t)1 << (CORIO_HIST_BUCKETS - 1)) - 1;
}

static const char *const syscall_names[CORIO_SYSCALL_KINDS] = {
    "read", "write", "readv", "writev", "recv", "send", "accept", "connect", "wait", "ctl",
};

const char *corio_syscall_name(unsigned kind)
{
    return kind < CORIO_SYSCALL_KINDS ? syscall_names[kind] : "?";
}

/* ---- The field table ---- */

enum kind {
    COUNTER,    /* uint64, only grows */
    COUNTER_NS, /* uint64 nanoseconds; Prometheus gets seconds */
    GAUGE,
    HIST,       /* corio_hist of plain values */
    HIST_NS,    /* corio_hist of nanoseconds; Prometheus gets seconds */
};

struct field {
    const char *sec, *key; /* JSON: "sec": {"key": ...} */
    const char *prom;      /* Prometheus family, without "corio_" */
    const char *label;     /* Prometheus label pair of this member, or NULL */
    const char *help;
    size_t off;
    uint8_t kind;
    bool kernel; /* machine-wide: merged by taking, not summing */
};

#define F(sec, key, member, kind, prom, label, help) \
    {sec, key, prom, label, help, offsetof(corio_stats, member), kind, false}
#define KF(sec, key, member, kind, prom, label, help) \
    {sec, key, prom, label, help, offsetof(corio_stats, kernel.member), kind, true}

static const struct field fields[] = {
    F("readiness", "waits", waits, COUNTER, "backend_waits_total", NULL,
      "Backend waits (epoll_pwait2, ppoll)."),
    F("readiness", "waits_empty", waits_empty, COUNTER, "backend_empty_waits_total", NULL,
      "Backend waits that returned no event."),
    F("readiness", "events", events, COUNTER, "backend_events_total", NULL,
      "Readiness events the backend delivered."),
    F("readiness", "events_stale", events_stale, COUNTER, "backend_stale_events_total", NULL,
      "Events dropped because their fd was closed since."),
    F("readiness", "blocked_ns", blocked_ns, COUNTER_NS, "backend_blocked_seconds_total", NULL,
      "Time the loop spent blocked in backend waits."),
    F("readiness", "events_per_wait", events_per_wait, HIST, "backend_events_per_wait", NULL,
      "Events delivered per backend wait."),

    F("loop", "iterations", iterations, COUNTER, "loop_iterations_total", NULL,
      "Loop iterations (one backend wait and one pass each)."),
    F("loop", "switches", switches, COUNTER, "coroutine_switches_total", NULL,
      "Coroutine resumptions."),
    F("loop", "spawns", spawns, COUNTER, "coroutine_spawns_total", NULL, "Coroutines started."),
    F("loop", "budget_yields", budget_yields, COUNTER, "coroutine_budget_yields_total", NULL,
      "Forced yields of coroutines whose I/O kept succeeding."),
    F("loop", "timers_started", timers_started, COUNTER, "timers_started_total", NULL,
      "Timers armed (coroutine deadlines included)."),
    F("loop", "timers_fired", timers_fired, COUNTER, "timers_fired_total", NULL, "Timers that fired."),
    F("loop", "timers_cancelled", timers_cancelled, COUNTER, "timers_cancelled_total", NULL,
      "Timers stopped before they fired."),
    F("loop", "bytes_read", bytes_read, COUNTER, "io_read_bytes_total", NULL,
      "Bytes returned by corio's read calls."),
    F("loop", "bytes_written", bytes_written, COUNTER, "io_written_bytes_total", NULL,
      "Bytes accepted by corio's write calls."),
    F("loop", "ready_per_pass", ready_per_pass, HIST, "loop_ready_per_pass", NULL,
      "Callbacks and coroutines run per loop pass (the ready-queue length)."),
    F("loop", "resume_ns", resume_ns, HIST_NS, "resume_latency_seconds", NULL,
      "Time from the backend reporting an fd ready to its coroutine running (1 in 8 sampled)."),

    F("coroutines", "running", co_running, GAUGE, "coroutines", "state=\"running\"",
      "Coroutines by state; idle: connections parked without a coroutine (corio_park)."),
    F("coroutines", "ready", co_ready, GAUGE, "coroutines", "state=\"ready\"", NULL),
    F("coroutines", "parked", co_parked, GAUGE, "coroutines", "state=\"parked\"", NULL),
    F("coroutines", "idle", co_idle, GAUGE, "coroutines", "state=\"idle\"", NULL),
    F("coroutines", "ready_len", ready_len, GAUGE, "ready_queue_length", NULL,
      "Entries in the ready queue."),
    F("coroutines", "timers_active", timers_active, GAUGE, "timers_active", NULL, "Armed timers."),
    F("coroutines", "watchers", watchers, GAUGE, "watchers_active", NULL, "Active fd watchers."),
    F("coroutines", "stacks_pooled", stacks_pooled, GAUGE, "stacks_pooled", NULL,
      "Coroutine stacks kept for reuse."),

    F("handler", "requests", requests, COUNTER, "requests_total", NULL, "Requests handled."),
    F("handler", "errors", request_errors, COUNTER, "request_errors_total", NULL,
      "Requests that failed."),
    F("handler", "bytes_in", request_bytes_in, COUNTER, "request_received_bytes_total", NULL,
      "Request bytes received by handlers."),
    F("handler", "bytes_out", request_bytes_out, COUNTER, "request_sent_bytes_total", NULL,
      "Response bytes sent by handlers."),
    F("handler", "time_ns", handler_ns, HIST_NS, "handler_seconds", NULL, "Handler time per request."),

    KF("tcp", "active_opens", tcp_active_opens, COUNTER, "tcp_active_opens_total", NULL,
       "TCP connections opened by this host (since boot)."),
    KF("tcp", "passive_opens", tcp_passive_opens, COUNTER, "tcp_passive_opens_total", NULL,
       "TCP connections accepted by this host (since boot)."),
    KF("tcp", "attempt_fails", tcp_attempt_fails, COUNTER, "tcp_attempt_fails_total", NULL,
       "TCP connection attempts that failed."),
    KF("tcp", "estab_resets", tcp_estab_resets, COUNTER, "tcp_established_resets_total", NULL,
       "Established TCP connections reset."),
    KF("tcp", "curr_estab", tcp_curr_estab, GAUGE, "tcp_established", NULL,
       "TCP connections established now."),
    KF("tcp", "in_segs", tcp_in_segs, COUNTER, "tcp_received_segments_total", NULL,
       "TCP segments received."),
    KF("tcp", "out_segs", tcp_out_segs, COUNTER, "tcp_sent_segments_total", NULL, "TCP segments sent."),
    KF("tcp", "retrans_segs", tcp_retrans_segs, COUNTER, "tcp_retransmitted_segments_total", NULL,
       "TCP segments retransmitted."),
    KF("tcp", "in_errs", tcp_in_errs, COUNTER, "tcp_receive_errors_total", NULL,
       "TCP segments received in error."),
    KF("tcp", "out_rsts", tcp_out_rsts, COUNTER, "tcp_sent_resets_total", NULL, "TCP resets sent."),
    KF("tcp", "listen_overflows", listen_overflows, COUNTER, "tcp_listen_overflows_total", NULL,
       "Connections dropped because an accept queue was full."),
    KF("tcp", "listen_drops", listen_drops, COUNTER, "tcp_listen_drops_total", NULL,
       "Connection requests dropped by listeners."),
    KF("tcp", "backlog_drops", backlog_drops, COUNTER, "tcp_backlog_drops_total", NULL,
       "Segments dropped because a socket's backlog was full."),
    KF("tcp", "rcvq_drops", rcvq_drops, COUNTER, "tcp_receive_queue_drops_total", NULL,
       "Segments dropped because a receive queue was full."),
    KF("tcp", "memory_pressures", memory_pressures, COUNTER, "tcp_memory_pressures_total", NULL,
       "Times TCP entered memory pressure."),
    KF("tcp", "abort_on_memory", abort_on_memory, COUNTER, "tcp_memory_aborts_total", NULL,
       "Connections aborted for lack of memory."),
    KF("tcp", "prune_called", prune_called, COUNTER, "tcp_prunes_total", NULL,
       "Receive queues pruned under memory pressure."),
    KF("tcp", "timeouts", tcp_timeouts, COUNTER, "tcp_timeouts_total", NULL,
       "TCP retransmission timeouts."),
    KF("tcp", "syn_retrans", syn_retrans, COUNTER, "tcp_syn_retransmits_total", NULL,
       "SYN and SYN-ACK retransmits."),
    KF("tcp", "syncookies_sent", syncookies_sent, COUNTER, "tcp_syncookies_sent_total", NULL,
       "SYN cookies sent (the SYN queue overflowed)."),
    KF("tcp", "ip_in_receives", ip_in_receives, COUNTER, "ip_received_packets_total", NULL,
       "IP packets received."),
    KF("tcp", "ip_in_discards", ip_in_discards, COUNTER, "ip_discarded_packets_total", NULL,
       "IP packets discarded on input."),

    KF("sockmem", "sockets_used", sockets_used, GAUGE, "sockets_used", NULL, "Sockets in use."),
    KF("sockmem", "tcp_inuse", tcp_inuse, GAUGE, "tcp_sockets", "state=\"inuse\"",
       "TCP sockets by state."),
    KF("sockmem", "tcp_orphan", tcp_orphan, GAUGE, "tcp_sockets", "state=\"orphan\"", NULL),
    KF("sockmem", "tcp_tw", tcp_tw, GAUGE, "tcp_sockets", "state=\"timewait\"", NULL),
    KF("sockmem", "tcp_alloc", tcp_alloc, GAUGE, "tcp_sockets", "state=\"allocated\"", NULL),
    KF("sockmem", "tcp_mem_pages", tcp_mem_pages, GAUGE, "tcp_memory_pages", NULL,
       "Pages of memory held by TCP sockets."),
    KF("sockmem", "tcp_mem_pressure", tcp_mem_pressure, GAUGE, "tcp_memory_pressure_pages", NULL,
       "tcp_mem: pages above which TCP enters memory pressure."),
    KF("sockmem", "tcp_mem_limit", tcp_mem_limit, GAUGE, "tcp_memory_limit_pages", NULL,
       "tcp_mem: pages TCP may use at most."),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static uint64_t *u64_at(const corio_stats *s, const struct field *f)
{
    return (uint64_t *)((char *)s + f->off);
}

static corio_hist *hist_at(const corio_stats *s, const struct field *f)
{
    return (corio_hist *)((char *)s + f->off);
}

static bool is_hist(const struct field *f)
{
    return f->kind == HIST || f->kind == HIST_NS;
}

/* NIC and socket members, by JSON key. */
#define NF(key, member) {key, offsetof(corio_nic_stats, member), 8}
static const struct member {
    const char *key;
    size_t off;
    unsigned size;
} nic_members[] = {
    NF("rx_bytes", rx_bytes),     NF("rx_packets", rx_packets), NF("rx_errors", rx_errors),
    NF("rx_dropped", rx_dropped), NF("tx_bytes", tx_bytes),     NF("tx_packets", tx_packets),
    NF("tx_errors", tx_errors),   NF("tx_dropped", tx_dropped),
};
#define SF(key, member) {key, offsetof(corio_sock_stats, member), sizeof(((corio_sock_stats *)0)->member)}
static const struct member sock_members[] = {
    SF("fd", fd),         SF("listening", listening), SF("state", tcp_state), SF("queue", queue),
    SF("backlog", backlog), SF("inq", inq),           SF("outq", outq),       SF("rtt_us", rtt_us),
    SF("rttvar_us", rttvar_us), SF("retrans", retrans), SF("total_retrans", total_retrans),
};
#define NMEMBERS(a) (sizeof a / sizeof a[0])

static uint64_t member_get(const void *base, const struct member *m)
{
    const char *p = (const char *)base + m->off;
    switch (m->size) {
    case 1: return *(const uint8_t *)p;
    case 4: return *(const uint32_t *)p; /* fd is an int >= 0 */
    default: return *(const uint64_t *)p;
    }
}

static void member_set(void *base, const struct member *m, uint64_t v)
{
    char *p = (char *)base + m->off;
    switch (m->size) {
    case 1: *(uint8_t *)p = (uint8_t)v; break;
    case 4: *(uint32_t *)p = (uint32_t)v; break;
    default: *(uint64_t *)p = v; break;
    }
}
_Static_assert(sizeof(bool) == 1 && sizeof(int) == 4, "member_get/set sizes");

/* ---- Taking and merging snapshots ---- */

static void count_coroutines(corio_loop *loop, corio_stats *s)
{
    /* A walk rather than hot-path gauges: nothing to keep up to date. */
    for (corio_list *l = loop->cos.next; l != &loop->cos; l = l->next) {
        corio_co *co = corio_container_of(l, corio_co, all);
        if (co->state == CO_RUNNING)
            s->co_running++;
        else if (co->state == CO_READY)
            s->co_ready++;
        else if (co->state == CO_PARKED)
            s->co_parked++;
    }
}

static void copy_counters(const struct corio_loop_stats *ls, corio_stats *s)
{
    s->waits = ls->polls;
    s->waits_empty = ls->events_per_wait.bucket[0];
    s->events = ls->events;
    s->events_stale = ls->stale;
    s->blocked_ns = ls->blocked_ns;
    s->events_per_wait = ls->events_per_wait;
    s->events_per_wait.count = ls->polls;
    for (unsigned i = 0; i < CORIO_HIST_BUCKETS; i++) /* one bucket moves per pass */
        s->iterations += ls->ready_per_pass.bucket[i];
    s->switches = ls->switches;
    s->spawns = ls->spawns;
    s->budget_yields = ls->budget_yields;
    s->timers_started = ls->timers_started;
    s->timers_fired = ls->timers_fired;
    s->timers_cancelled = ls->timers_cancelled;
    memcpy(s->syscalls, ls->sys, sizeof s->syscalls);
    s->syscalls[CORIO_SYSCALL_WAIT] = ls->polls;
    memcpy(s->eagain, ls->sys_eagain, sizeof s->eagain);
    s->bytes_read = ls->bytes_read;
    s->bytes_written = ls->bytes_written;
    s->ready_per_pass = ls->ready_per_pass;
    s->ready_per_pass.count = s->iterations;
    s->resume_ns = ls->resume_ns;
    s->requests = ls->requests;
    s->request_errors = ls->request_errors;
    s->request_bytes_in = ls->request_bytes_in;
    s->request_bytes_out = ls->request_bytes_out;
    s->handler_ns = ls->handler_ns;
}

int corio_stats_take(corio_loop *loop, corio_stats *s, unsigned flags)
{
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    memset(s, 0, sizeof *s);
    s->at = corio_now();
    s->uptime_ns = s->at - loop->stats.started;
    s->loops = 1;
    snprintf(s->backend, sizeof s->backend, "%s", loop->be->name);
    copy_counters(&loop->stats, s);
    count_coroutines(loop, s);
    s->ready_len = loop->nready;
    s->timers_active = loop->wheel.count;
    s->watchers = loop->nwatchers;
    s->stacks_pooled = loop->nstack_pool;
    corio_park_stats ps;
    corio_park_stats_get(loop, &ps);
    s->co_idle = ps.parked + ps.queued;
    if (flags & CORIO_STATS_KERNEL)
        (void)corio_kstats_read(&s->kernel);
    if (flags & CORIO_STATS_SOCKETS)
        corio__stats_sockets(loop, s);
    return 0;
}

static void hist_merge(corio_hist *a, const corio_hist *b)
{
    a->count += b->count;
    a->sum += b->sum;
    for (unsigned i = 0; i < CORIO_HIST_BUCKETS; i++)
        a->bucket[i] += b->bucket[i];
}

void corio_stats_merge(corio_stats *sum, const corio_stats *s)
{
    if (s->at > sum->at)
        sum->at = s->at;
    if (s->uptime_ns > sum->uptime_ns)
        sum->uptime_ns = s->uptime_ns;
    sum->loops += s->loops;
    if (!sum->backend[0])
        memcpy(sum->backend, s->backend, sizeof sum->backend);
    if (!sum->kernel.valid && s->kernel.valid)
        sum->kernel = s->kernel;
    for (unsigned i = 0; i < s->nsock && sum->nsock < CORIO_STATS_SOCKS; i++)
        sum->sock[sum->nsock++] = s->sock[i];
    for (unsigned k = 0; k < CORIO_SYSCALL_KINDS; k++) {
        sum->syscalls[k] += s->syscalls[k];
        sum->eagain[k] += s->eagain[k];
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        if (f->kernel)
            continue;
        if (is_hist(f))
            hist_merge(hist_at(sum, f), hist_at(s, f));
        else
            *u64_at(sum, f) += *u64_at(s, f);
    }
}

/* A snapshot taken on another loop.  If the caller gives up (deadline,
 * cancel) the target may still be writing it, so whichever side is last
 * to be done with it frees it: the one whose exchange finds `done` set. */
struct remote {
    corio_stats s;
    unsigned flags;
    atomic_bool done;
};

static void *take_here(void *arg)
{
    struct remote *r = arg;
    int err = corio_stats_take(corio_loop_current(), &r->s, r->flags);
    if (atomic_exchange(&r->done, true))
        corio__free(r); /* the caller gave up on it */
    return (void *)(intptr_t)err;
}

int corio_stats_take_loops(corio_loop *const *loops, size_t n, corio_stats *s, unsigned flags,
                           int64_t deadline)
{
    SITE(s_malloc, "malloc");
    memset(s, 0, sizeof *s);
    if (!corio_self())
        return -CORIO_ENOTCO;
    struct remote *r = corio__malloc(&s_malloc, sizeof *r);
    if (!r)
        return -ENOMEM;
    int err = 0;
    for (size_t i = 0; i < n && err == 0; i++) {
        /* Refused before anything was sent: the checks corio_loop_call
         * makes first, so its -ETIMEDOUT and -ECANCELED mean "gave up". */
        if (corio_cancelled())
            err = -ECANCELED;
        else if (deadline <= corio_now())
            err = -ETIMEDOUT;
        if (err < 0)
            break;
        r->flags = flags & CORIO_STATS_SOCKETS;
        atomic_init(&r->done, false);
        void *res = NULL;
        err = corio_loop_call(loops[i], take_here, r, &res, deadline);
        if (err == -ETIMEDOUT || err == -ECANCELED || err == -EINTR) {
            if (!atomic_exchange(&r->done, true))
                r = NULL; /* still in use over there: take_here frees it */
            break;
        }
        if (err == 0 && (err = (int)(intptr_t)res) == 0)
            corio_stats_merge(s, &r->s);
    }
    corio__free(r);
    if (err == 0 && (flags & CORIO_STATS_KERNEL))
        (void)corio_kstats_read(&s->kernel);
    if (err < 0)
        memset(s, 0, sizeof *s);
    return err;
}

void corio_stats_request(corio_loop *loop, uint64_t bytes_in, uint64_t bytes_out, int64_t ns,
                         bool failed)
{
    CORIO_STAT(struct corio_loop_stats *ls = &loop->stats; ls->requests++;
               ls->request_errors += failed; ls->request_bytes_in += bytes_in;
               ls->request_bytes_out += bytes_out;
               if (ns >= 0) corio__hist_add(&ls->handler_ns, (uint64_t)ns));
}

void corio_stats_requests(corio_loop *loop, uint64_t n, uint64_t bytes_in, uint64_t bytes_out,
                          uint64_t failed)
{
    CORIO_STAT(struct corio_loop_stats *ls = &loop->stats; ls->requests += n;
               ls->request_errors += failed; ls->request_bytes_in += bytes_in;
               ls->request_bytes_out += bytes_out);
}

int corio_stats_listener(corio_loop *loop, int fd)
{
    struct corio_loop_stats *ls = &loop->stats;
    if (!corio__loop_owned(loop))
        return -CORIO_EWRONGLOOP;
    if (fd < 0)
        return -EBADF;
    for (unsigned i = 0; i < ls->nlisteners; i++)
        if (ls->listeners[i] == fd)
            return -EEXIST;
    if (ls->nlisteners == sizeof ls->listeners / sizeof ls->listeners[0])
        return -ENOSPC;
    ls->listeners[ls->nlisteners++] = fd;
    return 0;
}

void corio_stats_listener_remove(corio_loop *loop, int fd)
{
    struct corio_loop_stats *ls = &loop->stats;
    if (!corio__loop_owned(loop))
        return;
    for (unsigned i = 0; i < ls->nlisteners; i++)
        if (ls->listeners[i] == fd) {
            ls->listeners[i] = ls->listeners[--ls->nlisteners];
            return;
        }
}

/* ---- Bounded output ---- */

struct out {
    char *b;
    size_t n, len;
    bool over;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (o->over)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(o->b + o->len, o->n - o->len, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= o->n - o->len)
        o->over = true;
    else
        o->len += (size_t)r;
}

static ssize_t finish(struct out *o)
{
    if (o->over) {
        if (o->n)
            o->b[0] = '\0';
        return -ENOBUFS;
    }
    return (ssize_t)o->len;
}

/* A string for JSON or a Prometheus label value: quotes, backslashes and
 * control characters escaped (interface names may hold any of them). */
static void put_str(struct out *o, const char *s, bool json)
{
    put(o, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(o, "\\%c", c);
        else if (c == '\n')
            put(o, "\\n");
        else if (c < 0x20 && json)
            put(o, "\\u%04x", c);
        else if (c >= 0x20)
            put(o, "%c", c);
    }
    put(o, "\"");
}

/* ---- JSON ---- */

static void json_hist(struct out *o, const corio_hist *h)
{
    unsigned top = CORIO_HIST_BUCKETS;
    while (top > 0 && !h->bucket[top - 1])
        top--;
    put(o, "{\"count\":%llu,\"sum\":%llu,\"buckets\":[", (unsigned long long)h->count,
        (unsigned long long)h->sum);
    for (unsigned i = 0; i < top; i++)
        put(o, "%s%llu", i ? "," : "", (unsigned long long)h->bucket[i]);
    put(o, "]}");
}

static void json_members(struct out *o, const void *base, const struct member *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(o, ",\"%s\":%llu", m[i].key, (unsigned long long)member_get(base, &m[i]));
}

static void json_arrays(struct out *o, const corio_stats *s)
{
    put(o, ",\"nic\":[");
    for (unsigned i = 0; i < s->kernel.nnic && i < CORIO_NIC_MAX; i++) {
        put(o, "%s{\"name\":", i ? "," : "");
        put_str(o, s->kernel.nic[i].name, true);
        json_members(o, &s->kernel.nic[i], nic_members, NMEMBERS(nic_members));
        put(o, "}");
    }
    put(o, "],\"sockets\":[");
    for (unsigned i = 0; i < s->nsock && i < CORIO_STATS_SOCKS; i++) {
        put(o, "%s{\"fd\":%d", i ? "," : "", s->sock[i].fd);
        json_members(o, &s->sock[i], sock_members + 1, NMEMBERS(sock_members) - 1);
        put(o, "}");
    }
    put(o, "],\"syscalls\":{");
    for (unsigned k = 0; k < CORIO_SYSCALL_KINDS; k++)
        put(o, "%s\"%s\":{\"calls\":%llu,\"eagain\":%llu}", k ? "," : "", syscall_names[k],
            (unsigned long long)s->syscalls[k], (unsigned long long)s->eagain[k]);
    put(o, "}");
}

ssize_t corio_stats_json(const corio_stats *s, char *buf, size_t n)
{
    struct out o = {buf, n, 0, n == 0};
    put(&o, "{\"version\":1,\"at_ns\":%lld,\"uptime_ns\":%lld,\"loops\":%u,\"backend\":",
        (long long)s->at, (long long)s->uptime_ns, s->loops);
    put_str(&o, s->backend, true);
    put(&o, ",\"kernel_valid\":%d", s->kernel.valid ? 1 : 0);
    json_arrays(&o, s);
    const char *sec = NULL;
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        if (!sec || strcmp(sec, f->sec) != 0) {
            put(&o, "%s,\"%s\":{", sec ? "}" : "", f->sec);
            sec = f->sec;
        } else {
            put(&o, ",");
        }
        put(&o, "\"%s\":", f->key);
        if (is_hist(f))
            json_hist(&o, hist_at(s, f));
        else
            put(&o, "%llu", (unsigned long long)*u64_at(s, f));
    }
    put(&o, "}}\n");
    return finish(&o);
}

/* ---- JSON reader: a small recursive parser that tracks the key path ---- */

#define JDEPTH 6
struct jpath {
    const char *k; /* key, or NULL for an array element */
    size_t kl;
    size_t idx;
};

struct jp {
    const char *p, *end;
    corio_stats *s;
    int depth;
    struct jpath path[JDEPTH];
};

static bool keq(const struct jpath *e, const char *k)
{
    return e->k && e->kl == strlen(k) && memcmp(e->k, k, e->kl) == 0;
}

static void jws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static const struct member *find_member(const struct member *m, size_t n, const struct jpath *e)
{
    for (size_t i = 0; i < n; i++)
        if (keq(e, m[i].key))
            return &m[i];
    return NULL;
}

static void set_hist(corio_hist *h, const struct jpath *p, int rest, uint64_t v)
{
    if (rest == 1 && keq(&p[0], "count"))
        h->count = v;
    else if (rest == 1 && keq(&p[0], "sum"))
        h->sum = v;
    else if (rest == 2 && keq(&p[0], "buckets") && !p[1].k && p[1].idx < CORIO_HIST_BUCKETS)
        h->bucket[p[1].idx] = v;
}

/* A number at the current path. */
static void jnum(struct jp *j, uint64_t v, bool neg)
{
    corio_stats *s = j->s;
    const struct jpath *p = j->path;
    int d = j->depth;
    if (d == 1) {
        if (keq(&p[0], "at_ns"))
            s->at = neg ? -(int64_t)v : (int64_t)v;
        else if (keq(&p[0], "uptime_ns"))
            s->uptime_ns = (int64_t)v;
        else if (keq(&p[0], "loops"))
            s->loops = (unsigned)v;
        else if (keq(&p[0], "kernel_valid"))
            s->kernel.valid = v != 0;
        return;
    }
    if (d == 3 && keq(&p[0], "nic") && !p[1].k && p[1].idx < CORIO_NIC_MAX) {
        const struct member *m = find_member(nic_members, NMEMBERS(nic_members), &p[2]);
        if (m)
            member_set(&s->kernel.nic[p[1].idx], m, v);
        return;
    }
    if (d == 3 && keq(&p[0], "sockets") && !p[1].k && p[1].idx < CORIO_STATS_SOCKS) {
        const struct member *m = find_member(sock_members, NMEMBERS(sock_members), &p[2]);
        if (m)
            member_set(&s->sock[p[1].idx], m, v);
        return;
    }
    if (d == 3 && keq(&p[0], "syscalls")) {
        for (unsigned k = 0; k < CORIO_SYSCALL_KINDS; k++)
            if (keq(&p[1], syscall_names[k])) {
                if (keq(&p[2], "calls"))
                    s->syscalls[k] = v;
                else if (keq(&p[2], "eagain"))
                    s->eagain[k] = v;
            }
        return;
    }
    for (size_t i = 0; d >= 2 && i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        if (!keq(&p[0], f->sec) || !keq(&p[1], f->key))
            continue;
        if (is_hist(f))
            set_hist(hist_at(s, f), p + 2, d - 2, v);
        else if (d == 2)
            *u64_at(s, f) = v;
        return;
    }
}

/* A string at the current path: the backend and interface names. */
static void jstr(struct jp *j, const char *str, size_t len)
{
    char *dst = NULL;
    size_t cap = 0;
    if (j->depth == 1 && keq(&j->path[0], "backend"))
        dst = j->s->backend, cap = sizeof j->s->backend;
    else if (j->depth == 3 && keq(&j->path[0], "nic") && !j->path[1].k &&
             j->path[1].idx < CORIO_NIC_MAX && keq(&j->path[2], "name"))
        dst = j->s->kernel.nic[j->path[1].idx].name, cap = sizeof j->s->kernel.nic[0].name;
    if (!dst)
        return;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        char c = str[i];
        if (c == '\\' && i + 1 < len) {
            c = str[++i];
            if (c == 'n')
                c = '\n';
            else if (c == 'u') { /* only \u00XX is ever written */
                unsigned x = 0;
                for (int h = 0; h < 4 && i + 1 < len; h++) {
                    char d = str[++i];
                    x = x * 16 + (unsigned)(d >= 'a' ? d - 'a' + 10 : d >= 'A' ? d - 'A' + 10 : d - '0');
                }
                c = (char)x;
            }
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
}

static int jvalue(struct jp *j);

static int jstring(struct jp *j, const char **str, size_t *len)
{
    if (j->p >= j->end || *j->p != '"')
        return -EINVAL;
    const char *start = ++j->p;
    while (j->p < j->end && *j->p != '"') {
        if ((unsigned char)*j->p < 0x20)
            return -EINVAL;
        j->p += *j->p == '\\' ? 2 : 1;
    }
    if (j->p >= j->end)
        return -EINVAL;
    *str = start;
    *len = (size_t)(j->p++ - start);
    return 0;
}

/* An object's members or an array's elements, each pushed on the path. */
static int jcompound(struct jp *j, char close)
{
    if (j->depth == JDEPTH)
        return -EINVAL;
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (size_t idx = 0;; idx++) {
        struct jpath *e = &j->path[j->depth];
        *e = (struct jpath){NULL, 0, idx};
        jws(j);
        if (close == '}') {
            if (jstring(j, &e->k, &e->kl) < 0)
                return -EINVAL;
            jws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -EINVAL;
        }
        j->depth++;
        int r = jvalue(j);
        j->depth--;
        if (r < 0)
            return r;
        jws(j);
        if (j->p >= j->end)
            return -EINVAL;
        char c = *j->p++;
        if (c == close)
            return 0;
        if (c != ',')
            return -EINVAL;
    }
}

static int jnumber(struct jp *j)
{
    bool neg = *j->p == '-';
    if (neg)
        j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return -EINVAL;
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        v = v * 10 + (uint64_t)(*j->p++ - '0');
    bool integral = true; /* fractions and exponents are valid JSON, never ours */
    while (j->p < j->end && strchr(".eE+-0123456789", *j->p))
        j->p++, integral = false;
    if (integral)
        jnum(j, v, neg);
    return 0;
}

static int jvalue(struct jp *j)
{
    jws(j);
    if (j->p >= j->end)
        return -EINVAL;
    char c = *j->p;
    if (c == '{' || c == '[')
        return jcompound(j, c == '{' ? '}' : ']');
    if (c == '"') {
        const char *str;
        size_t len;
        if (jstring(j, &str, &len) < 0)
            return -EINVAL;
        jstr(j, str, len);
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return jnumber(j);
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= l && memcmp(j->p, lits[i], l) == 0) {
            j->p += l;
            if (i < 2)
                jnum(j, i == 0, false);
            return 0;
        }
    }
    return -EINVAL;
}

int corio_stats_from_json(corio_stats *s, const char *json, size_t n)
{
    memset(s, 0, sizeof *s);
    struct jp j = {json, json + n, s, 0, {{0}}};
    jws(&j);
    if (j.p >= j.end || *j.p != '{')
        return -EINVAL;
    int r = jvalue(&j);
    jws(&j);
    if (r == 0 && j.p != j.end)
        r = -EINVAL;
    unsigned nnic = 0, nsock = 0;
    for (unsigned i = 0; i < CORIO_NIC_MAX; i++)
        if (s->kernel.nic[i].name[0])
            nnic = i + 1;
    for (unsigned i = 0; i < CORIO_STATS_SOCKS; i++)
        if (s->sock[i].fd || s->sock[i].tcp_state)
            nsock = i + 1;
    s->kernel.nnic = nnic;
    s->nsock = nsock;
    if (r < 0)
        memset(s, 0, sizeof *s);
    return r;
}

/* ---- Prometheus text format 0.0.4 ---- */

static const char *prom_type(const struct field *f)
{
    switch (f->kind) {
    case COUNTER:
    case COUNTER_NS:
        return "counter";
    case GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}

static void prom_head(struct out *o, const char *name, const char *help, const char *type)
{
    put(o, "# HELP corio_%s %s\n# TYPE corio_%s %s\n", name, help, name, type);
}

/* Buckets printed: counts 0..65535; times 127 ns .. 68 s.  Cumulative, so
 * the buckets below the first one printed are folded into it. */
static void prom_hist(struct out *o, const struct field *f, const corio_hist *h)
{
    bool ns = f->kind == HIST_NS;
    unsigned lo = ns ? 7 : 0, hi = ns ? 36 : 16;
    uint64_t cum = 0;
    for (unsigned i = 0; i <= hi; i++) {
        cum += h->bucket[i];
        if (i < lo)
            continue;
        uint64_t le = i ? ((uint64_t)1 << i) - 1 : 0;
        if (ns)
            put(o, "corio_%s_bucket{le=\"%.9g\"} %llu\n", f->prom, (double)le / 1e9,
                (unsigned long long)cum);
        else
            put(o, "corio_%s_bucket{le=\"%llu\"} %llu\n", f->prom, (unsigned long long)le,
                (unsigned long long)cum);
    }
    put(o, "corio_%s_bucket{le=\"+Inf\"} %llu\n", f->prom, (unsigned long long)h->count);
    if (ns)
        put(o, "corio_%s_sum %.9f\n", f->prom, (double)h->sum / 1e9);
    else
        put(o, "corio_%s_sum %llu\n", f->prom, (unsigned long long)h->sum);
    put(o, "corio_%s_count %llu\n", f->prom, (unsigned long long)h->count);
}

static void prom_fields(struct out *o, const corio_stats *s)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct field *f = &fields[i];
        if (f->kernel && !s->kernel.valid)
            continue;
        if (f->help) /* members of a labelled family after the first have none */
            prom_head(o, f->prom, f->help, prom_type(f));
        if (is_hist(f)) {
            prom_hist(o, f, hist_at(s, f));
            continue;
        }
        uint64_t v = *u64_at(s, f);
        put(o, "corio_%s%s%s%s ", f->prom, f->label ? "{" : "", f->label ? f->label : "",
            f->label ? "}" : "");
        if (f->kind == COUNTER_NS)
            put(o, "%.9f\n", (double)v / 1e9);
        else
            put(o, "%llu\n", (unsigned long long)v);
    }
}

static void prom_syscalls(struct out *o, const corio_stats *s)
{
    prom_head(o, "syscalls_total", "Syscalls made by the loop's I/O layer, by kind.", "counter");
    for (unsigned k = 0; k < CORIO_SYSCALL_KINDS; k++)
        put(o, "corio_syscalls_total{kind=\"%s\"} %llu\n", syscall_names[k],
            (unsigned long long)s->syscalls[k]);
    prom_head(o, "syscall_eagain_total",
              "Syscalls that returned EAGAIN, so the coroutine waited for readiness.", "counter");
    for (unsigned k = 0; k < CORIO_SYSCALL_KINDS; k++)
        put(o, "corio_syscall_eagain_total{kind=\"%s\"} %llu\n", syscall_names[k],
            (unsigned long long)s->eagain[k]);
}

static const struct {
    const char *prom, *help;
    size_t off;
} nic_prom[] = {
    {"nic_received_bytes_total", "Bytes received by the interface.", offsetof(corio_nic_stats, rx_bytes)},
    {"nic_received_packets_total", "Packets received by the interface.", offsetof(corio_nic_stats, rx_packets)},
    {"nic_receive_errors_total", "Receive errors of the interface.", offsetof(corio_nic_stats, rx_errors)},
    {"nic_receive_drops_total", "Received packets the interface dropped.", offsetof(corio_nic_stats, rx_dropped)},
    {"nic_sent_bytes_total", "Bytes sent by the interface.", offsetof(corio_nic_stats, tx_bytes)},
    {"nic_sent_packets_total", "Packets sent by the interface.", offsetof(corio_nic_stats, tx_packets)},
    {"nic_send_errors_total", "Send errors of the interface.", offsetof(corio_nic_stats, tx_errors)},
    {"nic_send_drops_total", "Outgoing packets the interface dropped.", offsetof(corio_nic_stats, tx_dropped)},
};

static void prom_nics(struct out *o, const corio_stats *s)
{
    if (!s->kernel.valid || !s->kernel.nnic)
        return;
    for (size_t m = 0; m < sizeof nic_prom / sizeof nic_prom[0]; m++) {
        prom_head(o, nic_prom[m].prom, nic_prom[m].help, "counter");
        for (unsigned i = 0; i < s->kernel.nnic && i < CORIO_NIC_MAX; i++) {
            const corio_nic_stats *n = &s->kernel.nic[i];
            put(o, "corio_%s{interface=", nic_prom[m].prom);
            put_str(o, n->name, false);
            put(o, "} %llu\n", (unsigned long long)*(const uint64_t *)((const char *)n + nic_prom[m].off));
        }
    }
}

static void prom_sockets(struct out *o, const corio_stats *s)
{
    static const struct {
        const char *prom, *help;
        bool listener;
    } fam[] = {
        {"listener_queue_length", "Connections waiting in a listener's accept queue.", true},
        {"listener_backlog", "The limit of a listener's accept queue.", true},
        {"socket_unread_bytes", "Bytes received, not yet read by the application (SIOCINQ).", false},
        {"socket_unsent_bytes", "Bytes written, not yet acknowledged by the peer (SIOCOUTQ).", false},
        {"socket_rtt_seconds", "Smoothed round-trip time (TCP_INFO).", false},
        {"socket_retransmitted_segments", "Segments retransmitted over the connection's life.", false},
    };
    for (size_t m = 0; m < sizeof fam / sizeof fam[0]; m++) {
        bool any = false;
        for (unsigned i = 0; i < s->nsock && i < CORIO_STATS_SOCKS; i++) {
            const corio_sock_stats *k = &s->sock[i];
            if (k->listening != fam[m].listener)
                continue;
            if (!any)
                prom_head(o, fam[m].prom, fam[m].help, "gauge");
            any = true;
            put(o, "corio_%s{fd=\"%d\"} ", fam[m].prom, k->fd);
            switch (m) {
            case 0: put(o, "%u\n", k->queue); break;
            case 1: put(o, "%u\n", k->backlog); break;
            case 2: put(o, "%u\n", k->inq); break;
            case 3: put(o, "%u\n", k->outq); break;
            case 4: put(o, "%.6f\n", k->rtt_us / 1e6); break;
            default: put(o, "%u\n", k->total_retrans); break;
            }
        }
    }
}

ssize_t corio_stats_prometheus(const corio_stats *s, char *buf, size_t n)
{
    struct out o = {buf, n, 0, n == 0};
    prom_head(&o, "info", "The loop backend (value always 1).", "gauge");
    put(&o, "corio_info{backend=");
    put_str(&o, s->backend, false);
    put(&o, "} 1\n");
    prom_head(&o, "uptime_seconds", "Time since the oldest loop was created.", "gauge");
    put(&o, "corio_uptime_seconds %.3f\n", (double)s->uptime_ns / 1e9);
    prom_head(&o, "loops", "Loops summed into these figures.", "gauge");
    put(&o, "corio_loops %u\n", s->loops);
    prom_head(&o, "kernel_stats_valid", "1 when the kernel's counters could be read.", "gauge");
    put(&o, "corio_kernel_stats_valid %d\n", s->kernel.valid ? 1 : 0);
    prom_nics(&o, s);
    prom_sockets(&o, s);
    prom_fields(&o, s);
    prom_syscalls(&o, s);
    return finish(&o);
}

/* ---- The layer table ---- */

static const char *const layer_names[] = {"NIC", "KERNEL", "SOCKETS", "READINESS", "LOOP", "HANDLER"};
#define NLAYERS 6

/* The interval between two snapshots: counter deltas and their rates. */
struct span {
    const corio_stats *a, *b; /* a: earlier, or zeros */
    double secs;
    bool kernel; /* both have kernel figures */
};

static uint64_t dlt(uint64_t b, uint64_t a)
{
    return b > a ? b - a : 0;
}

#define D(sp, member) dlt((sp)->b->member, (sp)->a->member)
#define RATE(sp, member) ((double)D(sp, member) / (sp)->secs)

static void hist_delta(corio_hist *out, const corio_hist *b, const corio_hist *a)
{
    out->count = dlt(b->count, a->count);
    out->sum = dlt(b->sum, a->sum);
    for (unsigned i = 0; i < CORIO_HIST_BUCKETS; i++)
        out->bucket[i] = dlt(b->bucket[i], a->bucket[i]);
}

static double hist_avg(const corio_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0;
}

/* A zeroed "before" for a table since the loop started.  Static storage
 * would be global mutable state, so the caller provides it. */
static void span_init(struct span *sp, const corio_stats *prev, const corio_stats *cur,
                      corio_stats *zero)
{
    if (!prev) {
        memset(zero, 0, sizeof *zero);
        zero->at = cur->at - cur->uptime_ns;
        prev = zero;
    }
    sp->a = prev;
    sp->b = cur;
    sp->secs = (double)(cur->at - prev->at) / 1e9;
    if (sp->secs <= 0)
        sp->secs = 1e-9;
    sp->kernel = cur->kernel.valid && prev->kernel.valid;
}

/* Human numbers: 12.3k, 4.56M. */
static const char *hum(char *b, size_t n, double v)
{
    static const char suffix[] = " kMGTP";
    int i = 0;
    while (v >= 999.5 && i < 5)
        v /= 1000, i++;
    if (i == 0)
        snprintf(b, n, v < 10 && v != (double)(uint64_t)v ? "%.1f" : "%.0f", v);
    else
        snprintf(b, n, v < 10 ? "%.2f%c" : v < 100 ? "%.1f%c" : "%.0f%c", v, suffix[i]);
    return b;
}

static const char *hum_bytes(char *b, size_t n, double v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1023.5 && i < 4)
        v /= 1024, i++;
    snprintf(b, n, i == 0 ? "%.0f %s" : "%.1f %s", v, unit[i]);
    return b;
}

static const char *hum_ns(char *b, size_t n, double ns)
{
    if (ns < 1e3)
        snprintf(b, n, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(b, n, "%.1fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(b, n, "%.1fms", ns / 1e6);
    else
        snprintf(b, n, "%.2fs", ns / 1e9);
    return b;
}

/* A quantile of a nanosecond histogram, or "-" when it has no sample. */
static const char *q_ns(char *b, size_t n, const corio_hist *h, double q)
{
    if (!h->count) {
        snprintf(b, n, "-");
        return b;
    }
    return hum_ns(b, n, (double)corio_hist_quantile(h, q));
}

/* Figures the bottleneck verdict and the table both use. */
struct verdict {
    double busy;          /* share of the interval the loops were not blocked */
    double handler_share; /* share of the interval spent in handlers */
    corio_hist resume;    /* over the interval */
    int layer;
    char why[160];
};

static double queue_fill(const corio_stats *s, uint32_t *queued, uint32_t *backlog)
{
    double worst = 0;
    *queued = *backlog = 0;
    for (unsigned i = 0; i < s->nsock; i++) {
        const corio_sock_stats *k = &s->sock[i];
        if (!k->listening || !k->backlog)
            continue;
        double f = (double)k->queue / k->backlog;
        if (f >= worst) {
            worst = f;
            *queued = k->queue;
            *backlog = k->backlog;
        }
    }
    return worst;
}

static bool kernel_drops(const struct span *sp, struct verdict *v)
{
    const corio_kstats *a = &sp->a->kernel, *b = &sp->b->kernel;
    uint64_t nic = 0;
    for (unsigned i = 0; i < b->nnic && i < a->nnic; i++)
        nic += dlt(b->nic[i].rx_dropped + b->nic[i].rx_errors + b->nic[i].tx_dropped + b->nic[i].tx_errors,
                   a->nic[i].rx_dropped + a->nic[i].rx_errors + a->nic[i].tx_dropped + a->nic[i].tx_errors);
    if (nic) {
        v->layer = 0;
        snprintf(v->why, sizeof v->why, "interfaces dropped or failed %llu packets",
                 (unsigned long long)nic);
        return true;
    }
    uint64_t drops = D(sp, kernel.listen_overflows) + D(sp, kernel.listen_drops) +
                     D(sp, kernel.backlog_drops) + D(sp, kernel.rcvq_drops);
    uint64_t mem = D(sp, kernel.memory_pressures) + D(sp, kernel.abort_on_memory);
    uint64_t out = D(sp, kernel.tcp_out_segs), re = D(sp, kernel.tcp_retrans_segs);
    if (drops || mem || (out > 1000 && re * 100 > out)) {
        v->layer = 1;
        snprintf(v->why, sizeof v->why,
                 "TCP dropped %llu (listen queue, backlog), %llu memory events, %.1f%% retransmits",
                 (unsigned long long)drops, (unsigned long long)mem, out ? 100.0 * re / out : 0.0);
        return true;
    }
    return false;
}

static void judge(const struct span *sp, struct verdict *v)
{
    const corio_stats *b = sp->b;
    unsigned loops = b->loops ? b->loops : 1;
    double total = sp->secs * 1e9 * loops;
    corio_hist h;
    hist_delta(&v->resume, &b->resume_ns, &sp->a->resume_ns);
    hist_delta(&h, &b->handler_ns, &sp->a->handler_ns);
    v->busy = 1.0 - (double)D(sp, blocked_ns) / total;
    if (v->busy < 0)
        v->busy = 0;
    v->handler_share = (double)h.sum / total;
    v->layer = -1;
    uint32_t q, bl;
    uint64_t p99 = corio_hist_quantile(&v->resume, 0.99);
    if (sp->kernel && kernel_drops(sp, v))
        return;
    if (queue_fill(b, &q, &bl) >= 0.5) {
        v->layer = 2;
        snprintf(v->why, sizeof v->why, "accept queue %u of %u: connections wait to be accepted", q, bl);
    } else if (v->busy > 0.9 && v->handler_share > 0.5 * v->busy) {
        v->layer = 5;
        snprintf(v->why, sizeof v->why, "loop busy %.0f%%, %.0f%% of it in handlers", 100 * v->busy,
                 100 * v->handler_share / v->busy);
    } else if (v->busy > 0.9) {
        v->layer = 4;
        snprintf(v->why, sizeof v->why, "loop busy %.0f%% of the time, handlers %.0f%%",
                 100 * v->busy, 100 * v->handler_share);
    } else if (p99 > 1000000) {
        v->layer = 4;
        snprintf(v->why, sizeof v->why, "ready coroutines wait %.1f ms (p99) before they run",
                 p99 / 1e6);
    } else {
        snprintf(v->why, sizeof v->why, "none: the loop is idle %.0f%% of the time",
                 100 * (1 - v->busy));
    }
}

int corio_stats_bottleneck(const corio_stats *prev, const corio_stats *cur, const char **why)
{
    (void)why;
    corio_stats zero;
    struct span sp;
    struct verdict v;
    span_init(&sp, prev, cur, &zero);
    judge(&sp, &v);
    if (why) /* static reasons only: the detailed one lives in the table */
        *why = v.layer < 0 ? "none stands out" : layer_names[v.layer];
    return v.layer;
}

struct table {
    struct out *o;
    bool color;
    int hot; /* the bottleneck layer */
};

static void row(struct table *t, int layer, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void row(struct table *t, int layer, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    const char *name = layer >= 0 ? layer_names[layer] : "";
    bool hot = layer >= 0 && layer == t->hot;
    if (hot && t->color)
        put(t->o, "\033[1;31m>%-10s\033[0m %s\n", name, line);
    else
        put(t->o, "%c%-10s %s\n", hot ? '>' : ' ', name, line);
}

static void rows_nic(struct table *t, const struct span *sp)
{
    const corio_kstats *a = &sp->a->kernel, *b = &sp->b->kernel;
    char x[4][16];
    if (!b->valid) {
        row(t, 0, "(kernel counters not readable here)");
        return;
    }
    if (!sp->kernel) { /* one snapshot: counters since boot */
        for (unsigned i = 0; i < b->nnic; i++) {
            const corio_nic_stats *n = &b->nic[i];
            row(t, i == 0 ? 0 : -1, "%-9s since boot: rx %s pkt %s  tx %s pkt %s  drops %llu  errors %llu",
                n->name, hum(x[0], 16, (double)n->rx_packets), hum_bytes(x[1], 16, (double)n->rx_bytes),
                hum(x[2], 16, (double)n->tx_packets), hum_bytes(x[3], 16, (double)n->tx_bytes),
                (unsigned long long)(n->rx_dropped + n->tx_dropped),
                (unsigned long long)(n->rx_errors + n->tx_errors));
        }
        return;
    }
    for (unsigned i = 0; i < b->nnic; i++) {
        const corio_nic_stats *n = &b->nic[i], *m = i < a->nnic ? &a->nic[i] : NULL;
        corio_nic_stats z = {0};
        if (!m || strcmp(m->name, n->name) != 0)
            m = &z;
        if (m == &z)
            continue; /* an interface that just appeared: no rate yet */
        double s = sp->secs;
        row(t, i == 0 ? 0 : -1, "%-9s rx %7s pkt/s %10s/s  tx %7s pkt/s %10s/s  drops %llu  errors %llu",
            n->name, hum(x[0], 16, dlt(n->rx_packets, m->rx_packets) / s),
            hum_bytes(x[1], 16, dlt(n->rx_bytes, m->rx_bytes) / s),
            hum(x[2], 16, dlt(n->tx_packets, m->tx_packets) / s),
            hum_bytes(x[3], 16, dlt(n->tx_bytes, m->tx_bytes) / s),
            (unsigned long long)(dlt(n->rx_dropped, m->rx_dropped) + dlt(n->tx_dropped, m->tx_dropped)),
            (unsigned long long)(dlt(n->rx_errors, m->rx_errors) + dlt(n->tx_errors, m->tx_errors)));
    }
}

static void rows_kernel(struct table *t, const struct span *sp)
{
    const corio_kstats *b = &sp->b->kernel;
    char x[4][16];
    if (!b->valid)
        return;
    if (!sp->kernel) { /* one snapshot: counters since boot */
        row(t, 1, "since boot: segs in %s out %s  retrans %s  listen overflows %llu  estab %llu",
            hum(x[0], 16, (double)b->tcp_in_segs), hum(x[1], 16, (double)b->tcp_out_segs),
            hum(x[2], 16, (double)b->tcp_retrans_segs), (unsigned long long)b->listen_overflows,
            (unsigned long long)b->tcp_curr_estab);
        return;
    }
    row(t, 1, "segs in %7s/s out %7s/s  retrans %s/s  resets in %s/s out %s/s  estab %llu",
        hum(x[0], 16, RATE(sp, kernel.tcp_in_segs)), hum(x[1], 16, RATE(sp, kernel.tcp_out_segs)),
        hum(x[2], 16, RATE(sp, kernel.tcp_retrans_segs)), hum(x[3], 16, RATE(sp, kernel.tcp_estab_resets)),
        hum(x[3], 16, RATE(sp, kernel.tcp_out_rsts)), (unsigned long long)b->tcp_curr_estab);
    row(t, -1, "drops: listen overflow %llu  listen %llu  backlog %llu  rcvq %llu  memory pressure %llu",
        (unsigned long long)D(sp, kernel.listen_overflows), (unsigned long long)D(sp, kernel.listen_drops),
        (unsigned long long)D(sp, kernel.backlog_drops), (unsigned long long)D(sp, kernel.rcvq_drops),
        (unsigned long long)D(sp, kernel.memory_pressures));
}

static void rows_sockets(struct table *t, const struct span *sp)
{
    const corio_stats *b = sp->b;
    char x[3][16];
    unsigned conns = 0;
    uint64_t inq = 0, outq = 0, rtt = 0, retrans = 0;
    bool any = false;
    for (unsigned i = 0; i < b->nsock; i++) {
        const corio_sock_stats *k = &b->sock[i];
        if (k->listening) {
            row(t, any ? -1 : 2, "listener fd %-4d accept queue %u of %u", k->fd, k->queue, k->backlog);
            any = true;
            continue;
        }
        conns++, inq += k->inq, outq += k->outq, rtt += k->rtt_us, retrans += k->total_retrans;
    }
    if (conns)
        row(t, any ? -1 : 2, "%u conns sampled: unread %s  unsent %s  rtt %s  retransmitted %llu (avg)",
            conns, hum_bytes(x[0], 16, (double)inq / conns), hum_bytes(x[1], 16, (double)outq / conns),
            hum_ns(x[2], 16, 1e3 * rtt / conns), (unsigned long long)(retrans / conns));
    else if (!any)
        row(t, 2, "(no TCP sockets on the loop)");
    if (b->kernel.valid)
        row(t, -1, "socket memory: %llu pages TCP (pressure at %llu, limit %llu)  sockets %llu  tw %llu",
            (unsigned long long)b->kernel.tcp_mem_pages, (unsigned long long)b->kernel.tcp_mem_pressure,
            (unsigned long long)b->kernel.tcp_mem_limit, (unsigned long long)b->kernel.sockets_used,
            (unsigned long long)b->kernel.tcp_tw);
}

static void rows_loop(struct table *t, const struct span *sp, const struct verdict *v)
{
    const corio_stats *b = sp->b;
    char x[8][16];
    corio_hist e, r;
    hist_delta(&e, &b->events_per_wait, &sp->a->events_per_wait);
    hist_delta(&r, &b->ready_per_pass, &sp->a->ready_per_pass);
    uint64_t waits = D(sp, waits);
    row(t, 3, "waits %7s/s  events/wait %.1f avg  empty %.0f%%  blocked %.0f%%  stale %llu",
        hum(x[0], 16, waits / sp->secs), hist_avg(&e), waits ? 100.0 * D(sp, waits_empty) / waits : 0.0,
        100 * (1 - v->busy), (unsigned long long)D(sp, events_stale));
    row(t, 4, "switches %s/s  spawns %s/s  ready/pass %.1f avg  resume p50 %s p99 %s",
        hum(x[0], 16, RATE(sp, switches)), hum(x[1], 16, RATE(sp, spawns)), hist_avg(&r),
        q_ns(x[2], 16, &v->resume, 0.5), q_ns(x[3], 16, &v->resume, 0.99));
    uint64_t calls = 0, again = 0;
    for (unsigned k = 0; k < CORIO_SYSCALL_KINDS; k++)
        calls += dlt(b->syscalls[k], sp->a->syscalls[k]), again += dlt(b->eagain[k], sp->a->eagain[k]);
    row(t, -1, "syscalls %s/s (read %s write %s accept %s wait %s ctl %s)  EAGAIN %.0f%%",
        hum(x[0], 16, calls / sp->secs),
        hum(x[1], 16, (RATE(sp, syscalls[CORIO_SYSCALL_READ]) + RATE(sp, syscalls[CORIO_SYSCALL_READV]) +
                       RATE(sp, syscalls[CORIO_SYSCALL_RECV]))),
        hum(x[2], 16, (RATE(sp, syscalls[CORIO_SYSCALL_WRITE]) + RATE(sp, syscalls[CORIO_SYSCALL_WRITEV]) +
                       RATE(sp, syscalls[CORIO_SYSCALL_SEND]))),
        hum(x[3], 16, RATE(sp, syscalls[CORIO_SYSCALL_ACCEPT])),
        hum(x[4], 16, RATE(sp, syscalls[CORIO_SYSCALL_WAIT])),
        hum(x[5], 16, RATE(sp, syscalls[CORIO_SYSCALL_CTL])), calls ? 100.0 * again / calls : 0.0);
    row(t, -1, "coroutines %llu running %llu ready %llu parked %llu idle  timers %llu (+%s/s -%s/s fired %s/s)",
        (unsigned long long)b->co_running, (unsigned long long)b->co_ready,
        (unsigned long long)b->co_parked, (unsigned long long)b->co_idle,
        (unsigned long long)b->timers_active, hum(x[0], 16, RATE(sp, timers_started)),
        hum(x[1], 16, RATE(sp, timers_cancelled)), hum(x[2], 16, RATE(sp, timers_fired)));
}

static void rows_handler(struct table *t, const struct span *sp)
{
    char x[6][16];
    corio_hist h;
    hist_delta(&h, &sp->b->handler_ns, &sp->a->handler_ns);
    row(t, 5, "requests %s/s  in %s/s  out %s/s  time p50 %s p99 %s  errors %llu",
        hum(x[0], 16, RATE(sp, requests)), hum_bytes(x[1], 16, RATE(sp, request_bytes_in)),
        hum_bytes(x[2], 16, RATE(sp, request_bytes_out)),
        q_ns(x[3], 16, &h, 0.5), q_ns(x[4], 16, &h, 0.99),
        (unsigned long long)D(sp, request_errors));
}

ssize_t corio_stats_table(const corio_stats *prev, const corio_stats *cur, char *buf, size_t n,
                          unsigned flags)
{
    struct out o = {buf, n, 0, n == 0};
    corio_stats zero;
    struct span sp;
    struct verdict v;
    span_init(&sp, prev, cur, &zero);
    judge(&sp, &v);
    struct table t = {&o, (flags & CORIO_TABLE_COLOR) != 0, v.layer};
    int64_t up = cur->uptime_ns / CORIO_SEC;
    const char *b0 = t.color ? "\033[1m" : "", *b1 = t.color ? "\033[0m" : "";
    put(&o, "%scorio-top%s  %s, %u loop%s, up %lld:%02lld:%02lld, %s %.2f s\n", b0, b1, cur->backend,
        cur->loops, cur->loops == 1 ? "" : "s", (long long)(up / 3600), (long long)(up / 60 % 60),
        (long long)(up % 60), prev ? "interval" : "averaged over", sp.secs);
    put(&o, "%s LAYER      FIGURES (per second over the interval)%s\n", b0, b1);
    rows_nic(&t, &sp);
    rows_kernel(&t, &sp);
    rows_sockets(&t, &sp);
    rows_loop(&t, &sp, &v);
    rows_handler(&t, &sp);
    if (v.layer >= 0)
        put(&o, "%sbottleneck: %s%s: %s\n", t.color ? "\033[1;31m" : "", layer_names[v.layer], b1, v.why);
    else
        put(&o, "bottleneck: %s\n", v.why);
    return finish(&o);
}

/* ---- In-process corio-top ---- */

int corio_stats_top(int fd, int64_t interval_ns, int64_t deadline)
{
    SITE(s_malloc, "malloc");
    corio_loop *loop = corio_loop_current();
    if (!loop || !corio_self())
        return -CORIO_ENOTCO;
    struct {
        corio_stats prev, cur;
        char text[8192];
    } *m = corio__malloc(&s_malloc, sizeof *m);
    if (!m)
        return -ENOMEM;
    int r = corio_stats_take(loop, &m->prev, CORIO_STATS_ALL);
    while (r >= 0) {
        int64_t next = corio_after(interval_ns);
        r = corio_sleep_until(next < deadline ? next : deadline);
        if (r < 0)
            break;
        corio_stats_take(loop, &m->cur, CORIO_STATS_ALL);
        ssize_t len = corio_stats_table(&m->prev, &m->cur, m->text, sizeof m->text, CORIO_TABLE_COLOR);
        static const char home[] = "\033[H\033[2J";
        if (len >= 0 && (r = (int)corio_write_all(fd, home, sizeof home - 1, NULL, deadline)) >= 0)
            r = (int)corio_write_all(fd, m->text, (size_t)len, NULL, deadline);
        m->prev = m->cur;
        if (r >= 0 && corio_now() >= deadline)
            break;
    }
    corio__free(m);
    return r < 0 ? r : 0;
}
