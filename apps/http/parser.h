/* corio-http's request parser, in the manner of picohttpparser: no
 * allocation, no copies, every result a view into the caller's buffer.
 *
 * It is strict where leniency lets two parsers disagree about where a
 * request ends (request smuggling): CRLF line endings only, no whitespace
 * before a header's colon, no folded lines, no control bytes, one
 * Content-Length made of digits only, Transfer-Encoding "chunked" only and
 * never together with Content-Length, exactly one Host in HTTP/1.1.
 *
 * Refusals are negative HTTP status codes (-400, -413, -414, -431, -501,
 * -505, ...), so the caller answers with -r and closes. */
#ifndef CORIO_HTTP_PARSER_H
#define CORIO_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* More bytes are needed before anything can be decided. */
#define HTTP_MORE (-1)

enum http_method {
    HTTP_M_OTHER = 0, /* a valid token corio-http has no use for */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
};

struct http_limits {
    unsigned max_line;    /* request line, CRLF excluded; over it: -414 */
    unsigned max_head;    /* request line, headers and blank line; over it: -431 */
    unsigned max_headers; /* header fields; over it: -431 */
};

struct http_header {
    const char *name;
    const char *value; /* without the surrounding whitespace */
    uint32_t name_len;
    uint32_t value_len;
};

struct http_request {
    const char *method;
    const char *target; /* as sent: origin-form, absolute-form or "*" */
    const char *path;   /* target up to '?'; absolute-form: from the first '/', or a
                         * static "/" when it has no path */
    const char *query;  /* after '?', or NULL */
    uint32_t method_len, target_len, path_len, query_len;
    uint8_t method_id;  /* enum http_method */
    uint8_t minor;      /* HTTP/1.<minor>: 0 or 1 */
    bool keep_alive;    /* from the version and any Connection header */
    bool chunked;       /* Transfer-Encoding: chunked */
    bool expect_continue;
    int64_t content_length; /* -1 when absent (and then no body unless chunked) */
    const struct http_header *headers;
    unsigned nheaders;
};

/* Parses the head of one request at buf[0..len): the request line, the
 * headers and the blank line.  Returns the head's length when it is
 * complete, HTTP_MORE when it is not (yet), or a negative status.
 * hdrs[0..lim->max_headers) receives the headers.  prev_len is how many
 * of these bytes an earlier call already saw and answered HTTP_MORE for
 * (0 the first time): a head that trickles in byte by byte costs O(n) in
 * all, not O(n^2).  Never reads buf[len] or beyond. */
int http_parse_request(const char *buf, size_t len, size_t prev_len, struct http_request *req,
                       struct http_header *hdrs, const struct http_limits *lim);

/* The header named name (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);

/* True if a and b (of length n) are equal ignoring ASCII case. */
bool http_caseeq(const char *a, const char *b, size_t n);

/* ---- Chunked transfer coding, decoded in place ---- */

struct http_chunked {
    uint64_t left;     /* data bytes of the current chunk still to come */
    uint64_t total;    /* data bytes decoded so far */
    uint64_t max;      /* limit on total: over it, -413 */
    uint32_t line;     /* bytes in the current size or trailer line */
    uint16_t ntrailer; /* trailer lines seen */
    uint8_t state;
    uint8_t flag;      /* in an extension: ';' seen; in a trailer: ':' seen */
};

/* Starts a decoder for a body of at most max bytes. */
void http_chunked_init(struct http_chunked *d, uint64_t max);

/* Decodes buf[0..*len), raw chunked bytes that follow those given to
 * earlier calls, in place: on return buf[0..*len) holds the data they
 * carried.  Returns HTTP_MORE when the body goes on, a negative status
 * (-400 malformed, -413 over the limit), or, once the last chunk and the
 * trailers are complete, how many bytes after them (the next request)
 * remain, moved to start at buf + *len.  Trailers are checked and dropped. */
long http_chunked_decode(struct http_chunked *d, char *buf, size_t *len);

#endif
