/* What server.c shares with static.c: the connection and its loop's state. */
#ifndef CORIO_HTTP_PRIVATE_H
#define CORIO_HTTP_PRIVATE_H

#include <stdio.h>
#include <stdlib.h>

#include "server.h"

/* An invariant of our own code (never of the peer's input). */
#define HTTP_ASSERT(e) \
    ((e) ? (void)0 : (fprintf(stderr, "corio-http: %s:%d: %s\n", __FILE__, __LINE__, #e), abort()))

struct worker;

/* A connection being served.  Lent from the loop's spare list, with its
 * stream, while the connection has input (server.c: conn_attach) and
 * given back when it parks or closes: an idle connection holds none. */
struct conn {
    struct worker *w;
    corio_stream *s;   /* kept with the conn in the spare list, detached */
    int fd;
    bool close;        /* close once the responses produced so far are sent */
    int64_t out_deadline; /* for the output of the batch being answered */
    struct conn *next; /* the worker's spare list */
};

struct http_exchange {
    struct conn *c;
    const struct http_request *req;
    int64_t deadline;  /* for output that has to wait */
    int64_t timeout;   /* the write timeout, for each wait of a long response */
    bool close;        /* this response says Connection: close */
    bool responded;
    uint64_t out;      /* bytes of response produced, for corio_stats */
};

/* Appends the head of a response with a body of `len` bytes (sent or, for
 * HEAD, only announced).  0, -ENOMEM. */
int http__respond_head(http_exchange *x, int status, const char *type, uint64_t len);

/* Serves req from cfg->static_dir: 0 when answered (404 included). */
int http__static_serve(http_exchange *x, const struct http_request *req, int dirfd);

/* Opens dir for http__static_serve().  The fd, or -errno. */
int http__static_open(const char *dir);

#endif
