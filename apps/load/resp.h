/* corio-load's HTTP response reader: one response after another from a
 * connection's input, bodies by Content-Length or chunked, skipped as they
 * come (only their size matters here). */
#ifndef CORIO_LOAD_RESP_H
#define CORIO_LOAD_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../http/parser.h"

struct resp_reader {
    int state;
    uint64_t left;           /* body bytes still to skip (Content-Length) */
    struct http_chunked ch;
    int status;              /* of the response being read or just read */
    bool close;              /* it said Connection: close (or is HTTP/1.0) */
};

void resp_init(struct resp_reader *r);

/* Reads from buf[0..n).  Returns 1 when a final response is complete (its status in
 * r->status), 0 when every byte was used and more are needed, -1 for a
 * malformed response.  *used gets how many bytes of buf were consumed;
 * the rest, a head not yet complete, must be given again with what
 * follows.  Interim (1xx) responses are skipped. */
int resp_feed(struct resp_reader *r, const char *buf, size_t n, size_t *used);

#endif
