/* corio-http: a reference HTTP/1.1 server on corio.
 *
 * One loop per thread (corio_mt), each with its own SO_REUSEPORT listener.
 * A connection is a coroutine while it has a request to answer and a 32-byte
 * park record while it waits for the next one (corio_park): keep-alive
 * connections that sit idle hold no stack, no buffer, and no connection
 * record or stream (those are lent per loop to the connections being
 * served).  Requests come
 * through a corio stream; every complete pipelined request in the input is
 * answered before the one write that sends the whole batch.
 *
 * The server can be embedded (the tests run it in-process): start it, read
 * its port, stop it from any thread, wait for it. */
#ifndef CORIO_HTTP_SERVER_H
#define CORIO_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corio.h"
#include "parser.h"

#define HTTP_MAX_HEADERS 128 /* the most limits.max_headers may be */
#define HTTP_MAX_ROUTES 16

/* One request being answered, for handlers. */
typedef struct http_exchange http_exchange;

/* A route's handler: answers req (body: its decoded body, len bytes) with
 * http_respond().  Runs in the connection's coroutine; may park.  Returns
 * 0, or -errno to drop the connection without answering. */
typedef int (*http_handler)(http_exchange *x, const struct http_request *req, const char *body,
                            size_t len, void *data);

struct http_route {
    const char *path; /* matched exactly against the request's path */
    http_handler fn;
    void *data;
};

struct http_config {
    const char *listen;       /* "127.0.0.1:8080"; port 0 picks one */
    unsigned threads;         /* loops, one per thread; 0: one per CPU we may use */
    bool pin;                 /* pin loop i's thread to CPU i */
    const char *static_dir;   /* serve files from here (GET, HEAD), or NULL */
    int64_t idle_timeout;     /* ns a keep-alive connection may wait for a request */
    int64_t header_timeout;   /* ns from a request's first byte to its blank line */
    int64_t body_timeout;     /* ns a request body may pause between two reads */
    int64_t write_timeout;    /* ns a response may wait for the peer to read */
    int64_t shutdown_timeout; /* ns a graceful shutdown waits for requests in flight */
    struct http_limits limits;
    size_t max_body;          /* request body bytes; over it: 413 */
    unsigned max_conns;       /* per loop; 0: no limit */
    int backlog;              /* listen(2) backlog; 0: SOMAXCONN */
    bool quiet;               /* nothing on stderr */
    struct http_route routes[HTTP_MAX_ROUTES]; /* tried in order */
    unsigned nroutes;
};

/* Fills cfg with the defaults (60 s idle, 10 s headers, 30 s body and
 * write, 10 s shutdown; 8 KiB request line, 16 KiB head, 64 headers,
 * 1 MiB body) and the built-in routes: /plaintext, /json, /echo. */
void http_config_defaults(struct http_config *cfg);

/* Adds a route in front of the built-in ones (a metrics page, ...).
 * 0, or -ENOSPC when HTTP_MAX_ROUTES are taken. */
int http_config_route(struct http_config *cfg, const char *path, http_handler fn, void *data);

/* Appends a complete response to the connection's output: the status
 * line, Server, Date, Content-Type (when type is not NULL), Content-Length
 * and, when the connection is to close after it, Connection: close; then
 * body, except for a HEAD request.  Never parks unless a lot of output is
 * pending.  0 or -errno (the connection is then dropped). */
int http_respond(http_exchange *x, int status, const char *type, const void *body, size_t len);

/* Asks for the connection to close once this response is sent. */
void http_exchange_close(http_exchange *x);

/* The loop answering the request. */
corio_loop *http_exchange_loop(const http_exchange *x);

/* What the loop answering a request holds now, for tests and status pages
 * (corio_park_stats_get(http_exchange_loop(x), ...) tells how many of its
 * connections are parked). */
struct http_loop_gauges {
    unsigned loop; /* its index, 0 .. http_server_loops() - 1 */
    size_t open;   /* connections open: being served, or parked */
    size_t live;   /* of which hold a conn record and a stream: only those
                    * being served (a parked one holds neither) */
    size_t spare;  /* conn records, each with a stream, kept for reuse */
};
void http_exchange_gauges(const http_exchange *x, struct http_loop_gauges *g);

/* ---- The server ---- */

typedef struct http_server http_server;

/* Counters, summed over the loops. */
struct http_counters {
    uint64_t accepted;   /* connections */
    uint64_t requests;   /* answered, any status */
    uint64_t status_2xx, status_4xx, status_5xx;
    uint64_t batches;    /* flushes that sent responses: one write each when the socket has room */
    uint64_t parks;      /* times a connection went idle without a stack */
    uint64_t timeouts;   /* connections closed by a timeout */
};

/* Binds the listeners (one per loop), starts the loops and returns.  The
 * calling thread must not run a loop.  0, -CORIO_EADDR, -EADDRINUSE,
 * -ENOMEM, -EINVAL (a limit out of range), ... with nothing left running. */
int http_server_start(http_server **srv, const struct http_config *cfg);

/* The port the listeners are bound to, and how many loops serve it. */
int http_server_port(const http_server *srv);
unsigned http_server_loops(const http_server *srv);

/* Begins a graceful shutdown: stop accepting, close idle connections
 * (answering first a request that has just come in), answer the requests
 * in flight (the last one with Connection: close), and after
 * cfg->shutdown_timeout cancel what is left.  Any thread; returns at once;
 * repeated calls are harmless. */
void http_server_stop(http_server *srv);

/* Waits until every loop has finished, fills *c and *stats (either may be
 * NULL) with the final counters and the loops' corio_stats summed, and
 * frees srv.  Blocks the calling thread.  0 or the first error a loop
 * returned. */
int http_server_wait(http_server *srv, struct http_counters *c, corio_stats *stats);

#endif
