/* corio: stats.  Included by corio.h; do not include directly.
 *
 * Per-layer metrics, following a byte from the wire to the handler:
 *
 *   NIC            packets, bytes, drops, errors per interface
 *   kernel TCP/IP  listen overflows, backlog drops, retransmits, resets,
 *                  memory pressure; socket memory
 *   socket buffers accept-queue depth of listeners; bytes waiting to be
 *                  read and not yet sent, rtt and retransmits (a sample)
 *   readiness      backend waits, events per wakeup, empty wakeups, time
 *                  blocked in the kernel
 *   loop           switches, spawns, coroutines by state, ready queue,
 *                  timers, syscalls by kind and their EAGAINs, the
 *                  readiness-to-resume latency
 *   handler        requests, bytes, handler time, errors
 *
 * The loop keeps its counters as plain per-loop integers (no atomics) and
 * they are read on demand: a snapshot is taken on the loop's own thread
 * and snapshots of several loops are summed with corio_stats_merge().
 * Building with -DCORIO_NO_STATS compiles every hot-path counter out. */
#ifndef CORIO_STATS_H
#define CORIO_STATS_H

/* A log2 histogram: bucket[0] counts zeros, bucket[i] the values v with
 * 2^(i-1) <= v < 2^i; the last bucket also takes everything larger. */
#define CORIO_HIST_BUCKETS 40
typedef struct corio_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t bucket[CORIO_HIST_BUCKETS];
} corio_hist;

/* An upper estimate of the q-quantile (0 <= q <= 1) of h: the top of the
 * bucket that holds it.  0 for an empty histogram. */
uint64_t corio_hist_quantile(const corio_hist *h, double q);

/* The syscalls the loop's I/O layer makes, by kind. */
enum corio_syscall_kind {
    CORIO_SYSCALL_READ,
    CORIO_SYSCALL_WRITE,
    CORIO_SYSCALL_READV,
    CORIO_SYSCALL_WRITEV,
    CORIO_SYSCALL_RECV,
    CORIO_SYSCALL_SEND,
    CORIO_SYSCALL_ACCEPT,
    CORIO_SYSCALL_CONNECT,
    CORIO_SYSCALL_WAIT, /* the backend's wait: epoll_pwait2, ppoll */
    CORIO_SYSCALL_CTL,  /* fd registrations: epoll_ctl */
    CORIO_SYSCALL_KINDS
};

/* "read", "write", ... or "?" for an unknown kind. */
const char *corio_syscall_name(unsigned kind);

/* ---- Kernel layers (Linux; zeros and `valid` cleared elsewhere) ---- */

#define CORIO_NIC_MAX 8
typedef struct corio_nic_stats {
    char name[16];
    uint64_t rx_bytes, rx_packets, rx_errors, rx_dropped;
    uint64_t tx_bytes, tx_packets, tx_errors, tx_dropped;
} corio_nic_stats;

typedef struct corio_kstats {
    bool valid;    /* the kernel files could be read */
    unsigned nnic; /* interfaces, in /proc/net/dev order, at most CORIO_NIC_MAX */
    corio_nic_stats nic[CORIO_NIC_MAX];
    /* TCP/IP (/proc/net/snmp, /proc/net/netstat): counters since boot. */
    uint64_t tcp_active_opens, tcp_passive_opens, tcp_attempt_fails;
    uint64_t tcp_estab_resets, tcp_in_segs, tcp_out_segs, tcp_retrans_segs;
    uint64_t tcp_in_errs, tcp_out_rsts;
    uint64_t tcp_curr_estab; /* a gauge */
    uint64_t listen_overflows, listen_drops, backlog_drops, rcvq_drops;
    uint64_t memory_pressures, abort_on_memory, prune_called;
    uint64_t tcp_timeouts, syn_retrans, syncookies_sent;
    uint64_t ip_in_receives, ip_in_discards;
    /* Socket memory (/proc/net/sockstat, /proc/sys/net/ipv4/tcp_mem). */
    uint64_t sockets_used, tcp_inuse, tcp_orphan, tcp_tw, tcp_alloc;
    uint64_t tcp_mem_pages;                   /* pages held by TCP sockets */
    uint64_t tcp_mem_pressure, tcp_mem_limit; /* tcp_mem thresholds, pages */
} corio_kstats;

/* Reads the NIC and TCP/IP layers into k (all of it overwritten).  Returns
 * 0, or -errno if /proc/net could not be read (k->valid false).  Does not
 * park; a few small file reads. */
int corio_kstats_read(corio_kstats *k);

/* One socket as the kernel sees it. */
typedef struct corio_sock_stats {
    int fd;
    bool listening;    /* a listener: queue and backlog are set */
    uint8_t tcp_state; /* TCP_ESTABLISHED, TCP_LISTEN, ... (netinet/tcp.h) */
    uint32_t queue;    /* listener: connections waiting to be accepted */
    uint32_t backlog;  /* listener: the accept queue's limit */
    uint32_t inq;      /* connection: bytes received, not yet read (SIOCINQ) */
    uint32_t outq;     /* connection: bytes written, not yet acknowledged (SIOCOUTQ) */
    uint32_t rtt_us, rttvar_us; /* TCP_INFO smoothed round-trip time */
    uint32_t retrans;       /* segments retransmitted, not yet acknowledged */
    uint32_t total_retrans; /* segments retransmitted over the connection's life */
} corio_sock_stats;

/* Reads TCP_INFO (and SIOCINQ/SIOCOUTQ for a connection) of the TCP socket
 * fd.  -ENOTSOCK, -EOPNOTSUPP for a non-TCP socket, -EBADF.  No park. */
int corio_sock_stats_read(int fd, corio_sock_stats *s);

/* ---- A snapshot of every layer ---- */

#define CORIO_STATS_SOCKS 16 /* sockets in a snapshot: listeners, then a sample */

typedef struct corio_stats {
    int64_t at;        /* corio_now() when taken */
    int64_t uptime_ns; /* since the (oldest) loop was created */
    unsigned loops;    /* loops summed into this snapshot */
    char backend[8];

    corio_kstats kernel;
    unsigned nsock;
    corio_sock_stats sock[CORIO_STATS_SOCKS];

    /* Readiness. */
    uint64_t waits;       /* backend waits */
    uint64_t waits_empty; /* waits that returned no event */
    uint64_t events;      /* events delivered */
    uint64_t events_stale; /* dropped: for an fd closed since */
    uint64_t blocked_ns;  /* time spent in waits that could block */
    corio_hist events_per_wait;

    /* Loop and coroutines. */
    uint64_t iterations, switches, spawns, budget_yields;
    uint64_t timers_started, timers_fired, timers_cancelled;
    uint64_t syscalls[CORIO_SYSCALL_KINDS];
    uint64_t eagain[CORIO_SYSCALL_KINDS]; /* the syscall said EAGAIN and the coroutine waited */
    uint64_t bytes_read, bytes_written;   /* by corio's read/write calls */
    corio_hist ready_per_pass; /* callbacks and coroutines run by each pass */
    corio_hist resume_ns;      /* fd reported ready -> coroutine running; 1 in 8 sampled */
    /* Gauges, as of the snapshot. */
    uint64_t co_running;  /* 1 when taken from a coroutine */
    uint64_t co_ready;    /* queued to run */
    uint64_t co_parked;   /* waiting: for an fd, a timer, a join, ... */
    uint64_t co_idle;     /* connections parked without a coroutine or stack (corio_park) */
    uint64_t ready_len;   /* entries in the ready queue */
    uint64_t timers_active, watchers, stacks_pooled;

    /* Handler: what corio_stats_request() recorded. */
    uint64_t requests, request_errors, request_bytes_in, request_bytes_out;
    corio_hist handler_ns;
} corio_stats;

/* What corio_stats_take() reads: the loop's counters always. */
#define CORIO_STATS_KERNEL 0x1u  /* corio_kstats_read() */
#define CORIO_STATS_SOCKETS 0x2u /* listeners and a rotating sample of connections */
#define CORIO_STATS_ALL 0x3u

/* Fills s from loop (and, per flags, from the kernel).  Only on the loop's
 * thread (-CORIO_EWRONGLOOP): the counters are plain integers.  Costs a
 * walk over the loop's coroutines (not over idle parked connections), and with CORIO_STATS_SOCKETS up to a few
 * hundred getsockopt calls.  Never parks; kernel read errors leave those
 * parts zero, they do not fail the call. */
int corio_stats_take(corio_loop *loop, corio_stats *s, unsigned flags);

/* Takes a snapshot of each of the n loops on its own thread (through
 * corio_loop_call, so each must be running) and sums them into s; the
 * kernel is read once.  Parks; -CORIO_ENOTCO, -ENOMEM, -ETIMEDOUT,
 * -ECANCELED (s is then zeroed). */
int corio_stats_take_loops(corio_loop *const *loops, size_t n, corio_stats *s, unsigned flags,
                           int64_t deadline);

/* Adds s into sum: counters, gauges and histograms are summed, kernel
 * figures (machine-wide) taken from whichever has them, sockets appended
 * while they fit.  A zeroed sum is the start. */
void corio_stats_merge(corio_stats *sum, const corio_stats *s);

/* Records one request done by a handler on loop: bytes in and out, the
 * time it took (ns; negative: not timed, so a caller may time only a
 * sample) and whether it failed.  Plain increments; on the loop's thread. */
void corio_stats_request(corio_loop *loop, uint64_t bytes_in, uint64_t bytes_out, int64_t ns,
                         bool failed);

/* corio_stats_request() for n untimed requests at once, as a server that
 * answers a batch of pipelined requests records them: bytes_in and
 * bytes_out are their sums, failed how many of them failed.  One call per
 * batch instead of one per request. */
void corio_stats_requests(corio_loop *loop, uint64_t n, uint64_t bytes_in, uint64_t bytes_out,
                          uint64_t failed);

/* Names fd as a listener of loop, so snapshots show its accept queue even
 * before anything accepts from it.  Up to 8; -ENOSPC beyond, -EEXIST. */
int corio_stats_listener(corio_loop *loop, int fd);
/* Forgets a listener named above (harmless for another fd). */
void corio_stats_listener_remove(corio_loop *loop, int fd);

/* ---- Writers and reader (no allocation, no park) ---- */

/* The snapshot as a JSON object in buf.  Returns its length (buf is NUL
 * terminated), or -ENOBUFS if it does not fit: 48 KiB always does. */
ssize_t corio_stats_json(const corio_stats *s, char *buf, size_t n);

/* Parses what corio_stats_json() wrote back into s (unknown keys are
 * skipped, missing ones left zero).  -EINVAL for malformed JSON. */
int corio_stats_from_json(corio_stats *s, const char *json, size_t n);

/* The snapshot in the Prometheus text exposition format (version 0.0.4),
 * every metric with HELP and TYPE.  Length, or -ENOBUFS: 64 KiB does. */
ssize_t corio_stats_prometheus(const corio_stats *s, char *buf, size_t n);

/* The layer table corio-top draws: one block per layer from the NIC to
 * the handler, with rates over the interval from prev to cur (prev NULL:
 * since the loop started) and the current bottleneck marked.  Length, or
 * -ENOBUFS: 8 KiB does. */
#define CORIO_TABLE_COLOR 0x1u /* ANSI colours and bold for the bottleneck */
ssize_t corio_stats_table(const corio_stats *prev, const corio_stats *cur, char *buf, size_t n,
                          unsigned flags);

/* The layer whose figures say it is where requests wait now, as an index
 * into the table's layers (0 NIC .. 5 handler), or -1 if none stands out;
 * *why (may be NULL) gets a short reason. */
int corio_stats_bottleneck(const corio_stats *prev, const corio_stats *cur, const char **why);

/* In-process corio-top: draws the layer table of the calling coroutine's
 * loop on fd (a terminal) every interval_ns until deadline (then 0).
 * Parks; -ECANCELED, -CORIO_ENOTCO, or the write's error. */
int corio_stats_top(int fd, int64_t interval_ns, int64_t deadline);

#endif
