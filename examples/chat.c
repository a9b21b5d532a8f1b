/* A line chat server: every line a client sends goes to every other client.
 * Each client has a reader (its lines go to the hub) and a writer (it
 * sends what the hub puts in its channel); the hub broadcasts, and never
 * waits for a slow client: a full channel drops the line for that client.
 *   Usage: chat [ADDR]     (default 127.0.0.1:7001; try several `nc 127.0.0.1 7001`) */
#include <stdio.h>
#include <string.h>

#include "corio.h"

#define LINE 256

struct member {
    corio_stream *s;
    corio_chan *out; /* struct line, from the hub to the writer */
    struct member *next;
};

struct line {
    size_t len;
    char text[LINE];
};

enum { JOIN, SAY, LEAVE };
struct event {
    int kind;
    struct member *who;
    struct line line;
};

static corio_chan *hub_in; /* struct event, from every reader to the hub */

static void *hub(void *arg)
{
    struct member *all = NULL;
    struct event e;
    (void)arg;
    while (corio_chan_recv(hub_in, &e, CORIO_FOREVER) == 1) {
        if (e.kind == JOIN) {
            e.who->next = all;
            all = e.who;
        } else if (e.kind == LEAVE) {
            for (struct member **p = &all; *p; p = &(*p)->next)
                if (*p == e.who) {
                    *p = e.who->next;
                    break;
                }
            corio_chan_close(e.who->out); /* its writer finishes */
        } else {
            for (struct member *m = all; m; m = m->next)
                if (m != e.who)
                    corio_chan_send(m->out, &e.line, CORIO_NOWAIT);
        }
    }
    return NULL;
}

static void *writer(void *arg)
{
    struct member *m = arg;
    struct line l;
    while (corio_chan_recv(m->out, &l, CORIO_FOREVER) == 1) {
        if (corio_stream_write(m->s, l.text, l.len, corio_after(5 * CORIO_SEC)) < 0)
            break;
        /* More lines queued?  Send them together with one write. */
        if (corio_chan_len(m->out) == 0 && corio_stream_flush(m->s, corio_after(5 * CORIO_SEC)) < 0)
            break;
    }
    while (corio_chan_recv(m->out, NULL, CORIO_FOREVER) == 1)
        ; /* after an error: let the hub's sends go until it closes us */
    return NULL;
}

static void *session(void *arg)
{
    struct member m = {0};
    struct event e = {.kind = JOIN, .who = &m};
    corio_co *w;
    if (corio_stream_open(&m.s, (int)(intptr_t)arg, NULL) < 0) {
        corio_close((int)(intptr_t)arg);
        return NULL;
    }
    if (corio_chan_new(corio_loop_current(), &m.out, sizeof(struct line), 64) < 0 ||
        corio_spawn(corio_loop_current(), &w, writer, &m, 0) < 0) {
        corio_chan_free(m.out);
        corio_stream_close(m.s, CORIO_NOWAIT);
        return NULL;
    }
    corio_chan_send(hub_in, &e, CORIO_FOREVER);
    const char *text;
    ssize_t n;
    while ((n = corio_stream_readline(m.s, &text, LINE, corio_after(600 * CORIO_SEC))) > 0) {
        e.kind = SAY;
        e.line.len = (size_t)n;
        memcpy(e.line.text, text, (size_t)n);
        corio_chan_send(hub_in, &e, CORIO_FOREVER);
    }
    e.kind = LEAVE; /* the hub closes our channel; then the writer returns */
    corio_chan_send(hub_in, &e, CORIO_FOREVER);
    corio_join(w, NULL, CORIO_FOREVER);
    corio_chan_free(m.out);
    corio_stream_close(m.s, corio_after(CORIO_SEC));
    return NULL;
}

static void *acceptor(void *arg)
{
    for (;;) {
        int fd = corio_listener_accept(arg, NULL, CORIO_FOREVER);
        if (fd < 0)
            return NULL;
        if (corio_spawn(corio_loop_current(), NULL, session, (void *)(intptr_t)fd, 0) < 0)
            corio_close(fd);
    }
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7001";
    corio_loop *loop;
    corio_listener *l;
    int r = corio_loop_new(&loop, NULL);
    if (r == 0)
        r = corio_chan_new(loop, &hub_in, sizeof(struct event), 256);
    if (r == 0)
        r = corio_net_listen(&l, addr, NULL, CORIO_NOWAIT);
    if (r < 0) {
        fprintf(stderr, "chat: %s: %s\n", addr, corio_strerror(r));
        return 1;
    }
    corio_spawn(loop, NULL, hub, NULL, 0);
    corio_spawn(loop, NULL, acceptor, l, 0);
    return corio_loop_run(loop, CORIO_RUN_DEFAULT) < 0;
}
