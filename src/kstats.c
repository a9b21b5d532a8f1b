/* The kernel's layers of the journey: NIC counters, TCP/IP counters,
 * socket memory, and per-socket queues (TCP_INFO, SIOCINQ, SIOCOUTQ).
 *
 * NIC counters come from /proc/net/dev: the same dev_get_stats() figures
 * as /sys/class/net/<if>/statistics/, for every interface of the
 * process's network namespace in one read instead of eight files per
 * interface.  TCP/IP counters come from /proc/net/snmp and
 * /proc/net/netstat, whose lines go in pairs: a header of names, then a
 * line of values with the same prefix.  Everything here runs about once a
 * second, never on the I/O path, so clarity wins over speed. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#ifdef __linux__
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/* Reads a small /proc file whole into buf (NUL-terminated).  The caller's
 * buffer is big enough for these files; a longer one is cut. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
    SITE(s_open, "open");
    SITE(s_read, "read");
    SITE(s_close, "close");
    int fd = sys_open(&s_open, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fd;
    size_t len = 0;
    ssize_t r = 0;
    while (len + 1 < cap && (r = sys_read(&s_read, fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    (void)sys_close(&s_close, fd);
    if (r < 0)
        return r;
    buf[len] = '\0';
    return (ssize_t)len;
}

static const char *next_line(const char *p)
{
    const char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p + strlen(p);
}

static uint64_t num(const char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
    bool neg = **p == '-';
    if (neg)
        (*p)++;
    uint64_t v = 0;
    while (**p >= '0' && **p <= '9')
        v = v * 10 + (uint64_t)(*(*p)++ - '0');
    return neg ? 0 : v; /* the few negative fields (Tcp MaxConn -1) are not read */
}

/* /proc/net/dev: two header lines, then "  name: 16 numbers". */
static void parse_dev(const char *t, corio_kstats *k)
{
    t = next_line(next_line(t));
    for (; *t && k->nnic < CORIO_NIC_MAX; t = next_line(t)) {
        const char *colon = strchr(t, ':'), *nl = strchr(t, '\n');
        if (!colon || (nl && colon > nl))
            continue;
        const char *name = t;
        while (*name == ' ')
            name++;
        size_t len = (size_t)(colon - name);
        corio_nic_stats *n = &k->nic[k->nnic++];
        if (len >= sizeof n->name)
            len = sizeof n->name - 1;
        memcpy(n->name, name, len);
        n->name[len] = '\0';
        const char *p = colon + 1;
        uint64_t v[16];
        for (int i = 0; i < 16; i++)
            v[i] = num(&p);
        n->rx_bytes = v[0], n->rx_packets = v[1], n->rx_errors = v[2], n->rx_dropped = v[3];
        n->tx_bytes = v[8], n->tx_packets = v[9], n->tx_errors = v[10], n->tx_dropped = v[11];
    }
}

#define K(prefix, name, member) {prefix, name, offsetof(corio_kstats, member)}
static const struct kkey {
    const char *prefix, *name;
    size_t off;
} kkeys[] = {
    K("Ip:", "InReceives", ip_in_receives),
    K("Ip:", "InDiscards", ip_in_discards),
    K("Tcp:", "ActiveOpens", tcp_active_opens),
    K("Tcp:", "PassiveOpens", tcp_passive_opens),
    K("Tcp:", "AttemptFails", tcp_attempt_fails),
    K("Tcp:", "EstabResets", tcp_estab_resets),
    K("Tcp:", "CurrEstab", tcp_curr_estab),
    K("Tcp:", "InSegs", tcp_in_segs),
    K("Tcp:", "OutSegs", tcp_out_segs),
    K("Tcp:", "RetransSegs", tcp_retrans_segs),
    K("Tcp:", "InErrs", tcp_in_errs),
    K("Tcp:", "OutRsts", tcp_out_rsts),
    K("TcpExt:", "ListenOverflows", listen_overflows),
    K("TcpExt:", "ListenDrops", listen_drops),
    K("TcpExt:", "TCPBacklogDrop", backlog_drops),
    K("TcpExt:", "TCPRcvQDrop", rcvq_drops),
    K("TcpExt:", "TCPMemoryPressures", memory_pressures),
    K("TcpExt:", "TCPAbortOnMemory", abort_on_memory),
    K("TcpExt:", "PruneCalled", prune_called),
    K("TcpExt:", "TCPTimeouts", tcp_timeouts),
    K("TcpExt:", "TCPSynRetrans", syn_retrans),
    K("TcpExt:", "SyncookiesSent", syncookies_sent),
};

static size_t token_len(const char *p)
{
    size_t n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '\n')
        n++;
    return n;
}

/* One header line and its value line: store the values we know. */
static void parse_pair(const char *hdr, const char *val, size_t plen, corio_kstats *k)
{
    const char *prefix = hdr;
    hdr += plen, val += plen;
    for (;;) {
        while (*hdr == ' ')
            hdr++;
        if (!*hdr || *hdr == '\n')
            return;
        size_t n = token_len(hdr);
        uint64_t v = num(&val);
        for (size_t i = 0; i < sizeof kkeys / sizeof kkeys[0]; i++) {
            const struct kkey *kk = &kkeys[i];
            if (strlen(kk->prefix) == plen && memcmp(kk->prefix, prefix, plen) == 0 &&
                strlen(kk->name) == n && memcmp(kk->name, hdr, n) == 0)
                memcpy((char *)k + kk->off, &v, sizeof v);
        }
        hdr += n;
    }
}

/* /proc/net/snmp and /proc/net/netstat. */
static void parse_pairs(const char *t, corio_kstats *k)
{
    while (*t) {
        const char *next = next_line(t);
        size_t plen = token_len(t);
        if (plen > 1 && t[plen - 1] == ':' && strncmp(next, t, plen) == 0) {
            parse_pair(t, next, plen, k);
            next = next_line(next);
        }
        t = next;
    }
}

/* Finds "word N" on the line starting with `line` ("TCP:") and returns N. */
static uint64_t field_after(const char *t, const char *line, const char *word)
{
    size_t ll = strlen(line), wl = strlen(word);
    for (; *t; t = next_line(t)) {
        if (strncmp(t, line, ll) != 0)
            continue;
        for (const char *p = t + ll; *p && *p != '\n'; p++)
            if (p[-1] == ' ' && strncmp(p, word, wl) == 0 && p[wl] == ' ') {
                p += wl;
                return num(&p);
            }
        return 0;
    }
    return 0;
}

static void parse_sockstat(const char *t, corio_kstats *k)
{
    k->sockets_used = field_after(t, "sockets:", "used");
    k->tcp_inuse = field_after(t, "TCP:", "inuse");
    k->tcp_orphan = field_after(t, "TCP:", "orphan");
    k->tcp_tw = field_after(t, "TCP:", "tw");
    k->tcp_alloc = field_after(t, "TCP:", "alloc");
    k->tcp_mem_pages = field_after(t, "TCP:", "mem");
}

int corio_kstats_read(corio_kstats *k)
{
    SITE(s_malloc, "malloc");
    memset(k, 0, sizeof *k);
    const size_t cap = 16384; /* netstat is the largest: about 4 KiB */
    char *buf = corio__malloc(&s_malloc, cap);
    if (!buf)
        return -ENOMEM;
    ssize_t r = slurp("/proc/net/dev", buf, cap);
    if (r >= 0)
        parse_dev(buf, k);
    if (r >= 0 && (r = slurp("/proc/net/snmp", buf, cap)) >= 0)
        parse_pairs(buf, k);
    if (r >= 0 && (r = slurp("/proc/net/netstat", buf, cap)) >= 0)
        parse_pairs(buf, k);
    if (r >= 0 && (r = slurp("/proc/net/sockstat", buf, cap)) >= 0)
        parse_sockstat(buf, k);
    if (r >= 0 && slurp("/proc/sys/net/ipv4/tcp_mem", buf, cap) >= 0) {
        const char *p = buf;
        (void)num(&p);
        k->tcp_mem_pressure = num(&p);
        k->tcp_mem_limit = num(&p);
    }
    corio__free(buf);
    if (r < 0) {
        memset(k, 0, sizeof *k);
        return (int)r;
    }
    k->valid = true;
    return 0;
}

int corio_sock_stats_read(int fd, corio_sock_stats *s)
{
    SITE(s_info, "getsockopt");
    SITE(s_inq, "ioctl");
    SITE(s_outq, "ioctl");
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    int r = sys_getsockopt(&s_info, fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
    if (r < 0)
        return r == -ENOPROTOOPT ? -EOPNOTSUPP : r;
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->tcp_state = ti.tcpi_state;
    if (ti.tcpi_state == TCP_LISTEN) {
        /* For listeners the kernel reports the accept queue here. */
        s->listening = true;
        s->queue = ti.tcpi_unacked;
        s->backlog = ti.tcpi_sacked;
        return 0;
    }
    s->rtt_us = ti.tcpi_rtt;
    s->rttvar_us = ti.tcpi_rttvar;
    s->retrans = ti.tcpi_retrans;
    s->total_retrans = ti.tcpi_total_retrans;
    int v = 0;
    if (sys_ioctl(&s_inq, fd, SIOCINQ, &v) == 0 && v > 0)
        s->inq = (uint32_t)v;
    v = 0;
    if (sys_ioctl(&s_outq, fd, SIOCOUTQ, &v) == 0 && v > 0)
        s->outq = (uint32_t)v;
    return 0;
}

#else /* !__linux__ */

int corio_kstats_read(corio_kstats *k)
{
    memset(k, 0, sizeof *k);
    return -ENOSYS;
}

int corio_sock_stats_read(int fd, corio_sock_stats *s)
{
    (void)fd, (void)s;
    return -ENOSYS;
}

#endif

/* ---- Sockets of a loop ---- */

static bool have_sock(const corio_stats *s, int fd)
{
    for (unsigned i = 0; i < s->nsock; i++)
        if (s->sock[i].fd == fd)
            return true;
    return false;
}

/* Visiting every registered fd could cost a getsockopt per connection; a
 * snapshot visits at most this many, resuming where the last one stopped,
 * so successive snapshots sample different connections. */
#define SOCK_SCAN_MAX 256

void corio__stats_sockets(corio_loop *loop, corio_stats *s)
{
    struct corio_loop_stats *ls = &loop->stats;
    s->nsock = 0;
    for (unsigned i = 0; i < ls->nlisteners && s->nsock < CORIO_STATS_SOCKS; i++)
        if (corio_sock_stats_read(ls->listeners[i], &s->sock[s->nsock]) == 0)
            s->nsock++;
    size_t nfd = loop->nchunks * FD_CHUNK;
    if (nfd == 0)
        return;
    size_t start = (size_t)ls->sock_cursor % nfd, visited = 0, k = 0;
    for (; k < nfd && visited < SOCK_SCAN_MAX && s->nsock < CORIO_STATS_SOCKS; k++) {
        size_t fd = (start + k) % nfd;
        if (!loop->fds[fd >> FD_CHUNK_SHIFT]) {
            k += FD_CHUNK - 1 - (fd & (FD_CHUNK - 1)); /* skip the missing chunk */
            continue;
        }
        if (!loop->fds[fd >> FD_CHUNK_SHIFT][fd & (FD_CHUNK - 1)].registered)
            continue;
        visited++;
        if (!have_sock(s, (int)fd) && corio_sock_stats_read((int)fd, &s->sock[s->nsock]) == 0)
            s->nsock++;
    }
    ls->sock_cursor = (int)((start + k) % nfd);
}
