/* corio-load: a load generator on corio.  One loop per thread, one
 * coroutine per connection (two in open-loop mode: a sender on the rate
 * schedule and a receiver), results merged when the threads end. */
#ifndef CORIO_LOAD_H
#define CORIO_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "corio.h"
#include "hist.h"

enum load_mode { MODE_HTTP, MODE_ECHO, MODE_IDLE };

/* What went wrong, by kind: each failed request (or connection) counts
 * once, under the first thing that failed. */
enum load_err {
    E_CONNECT, /* the connection could not be made */
    E_READ,    /* reading a response failed (reset, ...) */
    E_WRITE,   /* sending a request failed */
    E_TIMEOUT, /* no response within --timeout */
    E_STATUS,  /* a response that is not 2xx */
    E_PARSE,   /* a malformed response, or an echo that differs */
    E_CLOSED,  /* the peer closed with requests outstanding */
    E_KINDS
};

struct load_config {
    enum load_mode mode;
    corio_addr addr;        /* the target */
    char target[128];       /* as given, for the report */
    char host[128];         /* the Host header */
    char path[512];
    const char *method;     /* "GET"; "POST" when body_size > 0 */
    size_t body_size;       /* request body (http), message (echo) */
    unsigned conns;
    unsigned threads;
    unsigned depth;         /* requests in flight per connection (pipelining) */
    double rate;            /* requests per second in all; 0: closed loop */
    int64_t duration;       /* ns; 0: until count requests */
    uint64_t count;         /* requests in all; 0: for the duration */
    int64_t timeout;        /* ns to wait for a response */
    unsigned sources;       /* idle: source addresses 127.0.0.1, .2, ... (loopback target) */
    bool warm;              /* idle: one request on each connection first */
    bool json;              /* the report as JSON on stdout */
    bool quiet;             /* no progress */
};

struct load_counts {
    uint64_t sent, answered;
    uint64_t bytes_in, bytes_out;
    uint64_t connected;     /* connections made */
    uint64_t status[6];     /* answered, by status class: [2] is 2xx */
    uint64_t err[E_KINDS];
};

struct load_thread {
    const struct load_config *cfg;
    unsigned index;
    pthread_t thread;
    corio_loop *loop;
    unsigned conn_first, nconns; /* connections [conn_first, +nconns) of the whole run */
    uint64_t budget;        /* count mode: requests this thread may still start */
    int64_t start, end;     /* ns; end: stop starting requests */
    int64_t stop;           /* when the last connection ended */
    int err;                /* a setup error */
    struct load_counts n;
    struct hist lat;        /* ns; connect times in idle mode */
    unsigned open_conns;    /* idle: connections open now */
    corio_timer publish;
    /* What the progress line reads, published a few times a second. */
    _Atomic uint64_t live_answered, live_bytes, live_errors, live_open;
    atomic_bool done;
};

/* Runs one thread's share of the work on its own loop (the thread body). */
void *load_thread_main(void *arg);

/* Sums of the threads, and the report (report.c). */
struct load_result {
    struct load_counts n;
    struct hist lat;
    double seconds; /* from the first request to the last response */
};

void load_report_text(const struct load_config *cfg, const struct load_result *r);
void load_report_json(const struct load_config *cfg, const struct load_result *r);
uint64_t load_errors(const struct load_counts *n);

#endif
