/* libFuzzer target for stream framing: a payload goes through a socket in
 * random chunks while the reader takes it apart with read_until,
 * read_exactly, peek/consume and read, checked against the payload itself.
 *
 * Input: [dlen 1..4][delimiter][max lo][max hi][scale][seed][payload...]
 * The payload is repeated `scale` times (1..32), so a short input still
 * drives the buffer through growth and compaction. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "corio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct job {
    const char *payload;
    size_t len;
    const char *delim;
    size_t dlen, max;
    uint32_t rng;
    int fd[2];
};

static uint32_t next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

#define DEADLINE corio_after(5 * CORIO_SEC)

static void *writer(void *p)
{
    struct job *j = p;
    uint32_t rng = j->rng ^ 0x9e3779b9u;
    size_t off = 0;
    while (off < j->len) {
        size_t n = 1 + next(&rng) % 3000;
        if (n > j->len - off)
            n = j->len - off;
        ssize_t w = corio_write(j->fd[1], j->payload + off, n, DEADLINE);
        if (w <= 0)
            abort();
        off += (size_t)w;
        if (next(&rng) % 2)
            corio_yield();
    }
    shutdown(j->fd[1], SHUT_WR);
    return NULL;
}

/* Where the first delimiter starts in p[0..n), or n. */
static size_t first_delim(const struct job *j, const char *p, size_t n)
{
    const char *hit = n >= j->dlen ? memmem(p, n, j->delim, j->dlen) : NULL;
    return hit ? (size_t)(hit - p) : n;
}

static void *reader(void *p)
{
    struct job *j = p;
    corio_stream *s;
    corio_stream_options o = {.read_size = 1 + next(&j->rng) % 20000};
    if (corio_stream_open(&s, j->fd[0], &o) < 0)
        abort();
    size_t pos = 0;
    char tmp[512];
    for (;;) {
        const char *rest = j->payload + pos;
        size_t left = j->len - pos, at = first_delim(j, rest, left);
        uint32_t mode = next(&j->rng) % 8;
        if (mode == 0 && left) { /* read_exactly a few bytes */
            size_t n = 1 + next(&j->rng) % sizeof tmp;
            ssize_t r = corio_stream_read_exactly(s, tmp, n, DEADLINE);
            if (n > left ? r != -CORIO_EEOF : (r != (ssize_t)n || memcmp(tmp, rest, n)))
                abort();
            if (r > 0)
                pos += n;
            continue;
        }
        if (mode == 1 && left) { /* peek then consume part of it */
            const void *v;
            size_t n = 1 + next(&j->rng) % 600;
            ssize_t r = corio_stream_peek(s, n, &v, DEADLINE);
            if (n > left ? r != -CORIO_EEOF : (r < (ssize_t)n || memcmp(v, rest, (size_t)r)))
                abort();
            if (r > 0)
                pos += corio_stream_consume(s, n);
            continue;
        }
        const char *rec;
        ssize_t r = corio_stream_read_until(s, j->delim, j->dlen, &rec, j->max, DEADLINE);
        if (r > 0) { /* the first delimiter, within max */
            if (at == left || (size_t)r != at + j->dlen || (size_t)r > j->max || memcmp(rec, rest, (size_t)r))
                abort();
            pos += (size_t)r;
        } else if (r == -CORIO_ETOOLONG) { /* no delimiter ends within max */
            if (left < j->max || (at != left && at + j->dlen <= j->max))
                abort();
            char c; /* step over one byte and go on */
            if (corio_stream_read(s, &c, 1, DEADLINE) != 1 || c != rest[0])
                abort();
            pos++;
        } else if (r == -CORIO_EEOF) { /* a partial record at the end stays readable */
            if (left == 0 || left >= j->max || at != left)
                abort();
            size_t got = 0;
            ssize_t n;
            while ((n = corio_stream_read(s, tmp, sizeof tmp, DEADLINE)) > 0) {
                if (memcmp(tmp, rest + got, (size_t)n))
                    abort();
                got += (size_t)n;
            }
            if (n != 0 || got != left)
                abort();
            break;
        } else if (r == 0) {
            if (left != 0)
                abort();
            break;
        } else {
            abort();
        }
    }
    corio_stream_close(s, DEADLINE);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    struct job j = {.dlen = 1 + data[0] % 4};
    if (size < 5 + j.dlen)
        return 0;
    j.delim = (const char *)data + 1;
    const uint8_t *q = data + 1 + j.dlen;
    j.max = j.dlen + (size_t)(q[0] | q[1] << 8) % 70000;
    size_t scale = 1 + q[2] % 32;
    j.rng = (uint32_t)q[3] * 2654435761u | 1;
    const uint8_t *pl = q + 4;
    size_t plen = size - (size_t)(pl - data);
    char *payload = malloc(plen * scale + 1);
    for (size_t i = 0; i < scale; i++)
        memcpy(payload + i * plen, pl, plen);
    j.payload = payload;
    j.len = plen * scale;

    corio_loop *loop;
    if (corio_loop_new(&loop, NULL) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, j.fd) < 0)
        abort();
    corio_spawn(loop, NULL, writer, &j, 0);
    corio_spawn(loop, NULL, reader, &j, 0);
    if (corio_loop_run(loop, CORIO_RUN_DEFAULT) != 0)
        abort();
    corio_close(j.fd[1]);
    if (corio_loop_free(loop) != 0)
        abort();
    free(payload);
    return 0;
}
