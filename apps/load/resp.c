/* The response reader (resp.h). */
#include <string.h>

#include "resp.h"

enum { R_HEAD, R_BODY, R_CHUNKED };

#define MAX_RESP_HEAD 65536

void resp_init(struct resp_reader *r)
{
    memset(r, 0, sizeof *r);
    r->state = R_HEAD;
}

static bool header_is(const char *line, size_t n, const char *name, size_t nlen, const char **value,
                      size_t *vlen)
{
    if (n <= nlen || line[nlen] != ':' || !http_caseeq(line, name, nlen))
        return false;
    const char *v = line + nlen + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

/* Parses the head at buf[0..len) (len includes the blank line). */
static int parse_head(struct resp_reader *r, const char *buf, size_t len)
{
    if (len < 16 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        status = status * 10 + (buf[i] - '0');
    }
    r->status = status;
    r->close = buf[7] == '0';
    int64_t length = -1;
    bool chunked = false;
    const char *p = (const char *)memchr(buf, '\n', len) + 1, *end = buf + len - 2;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p) + 1);
        if (!nl || nl == p || nl[-1] != '\r')
            return -1;
        size_t n = (size_t)(nl - 1 - p);
        const char *v;
        size_t vl;
        if (header_is(p, n, "content-length", 14, &v, &vl)) {
            if (vl == 0 || vl > 18 || length >= 0)
                return -1;
            length = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                length = length * 10 + (v[i] - '0');
            }
        } else if (header_is(p, n, "transfer-encoding", 17, &v, &vl)) {
            if (vl != 7 || !http_caseeq(v, "chunked", 7))
                return -1;
            chunked = true;
        } else if (header_is(p, n, "connection", 10, &v, &vl)) {
            if (vl >= 5 && memmem(v, vl, "close", 5))
                r->close = true;
            else if (vl >= 10 && http_caseeq(v, "keep-alive", 10))
                r->close = false;
        }
        p = nl + 1;
    }
    if (status < 200 || status == 204 || status == 304) {
        r->left = 0;
        r->state = R_BODY;
    } else if (chunked) {
        http_chunked_init(&r->ch, UINT64_MAX >> 1);
        r->state = R_CHUNKED;
    } else if (length >= 0) {
        r->left = (uint64_t)length;
        r->state = R_BODY;
    } else {
        return -1; /* a body to the end of the connection: not for a load test */
    }
    return 0;
}

int resp_feed(struct resp_reader *r, const char *buf, size_t n, size_t *used)
{
    size_t off = 0;
    for (;;) {
        if (r->state == R_HEAD) {
            const char *e = n - off >= 4 ? memmem(buf + off, n - off, "\r\n\r\n", 4) : NULL;
            if (!e) {
                *used = off;
                return n - off > MAX_RESP_HEAD ? -1 : 0;
            }
            size_t hl = (size_t)(e + 4 - (buf + off));
            if (parse_head(r, buf + off, hl) < 0)
                return -1;
            off += hl;
        }
        if (r->state == R_BODY) {
            size_t k = n - off < r->left ? n - off : (size_t)r->left;
            off += k;
            r->left -= k;
            if (r->left) {
                *used = off;
                return 0;
            }
        } else if (r->state == R_CHUNKED) {
            /* The decoder works in place: give it a copy, keep only the
             * count of what it used (the data itself is not needed). */
            char tmp[4096];
            size_t k = n - off < sizeof tmp ? n - off : sizeof tmp, len = k;
            memcpy(tmp, buf + off, k);
            long left = http_chunked_decode(&r->ch, tmp, &len);
            if (left < HTTP_MORE)
                return -1;
            off += k - (left == HTTP_MORE ? 0 : (size_t)left);
            if (left == HTTP_MORE) {
                if (off < n)
                    continue;
                *used = n;
                return 0;
            }
        }
        r->state = R_HEAD;
        if (r->status >= 200) {
            *used = off;
            return 1;
        }
    }
}
