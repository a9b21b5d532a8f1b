/* corio-load's final report: a few readable lines, or one JSON object. */
#include <stdio.h>
#include <string.h>

#include "load.h"

static const char *const err_names[E_KINDS] = {
    [E_CONNECT] = "connect", [E_READ] = "read",   [E_WRITE] = "write", [E_TIMEOUT] = "timeout",
    [E_STATUS] = "status",   [E_PARSE] = "parse", [E_CLOSED] = "closed",
};

uint64_t load_errors(const struct load_counts *n)
{
    uint64_t e = 0;
    for (int k = 0; k < E_KINDS; k++)
        e += n->err[k];
    return e;
}

/* 1234567 -> "1,234,567" */
static const char *grouped(char *buf, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static const char *duration(char *buf, double ns)
{
    if (ns < 1e3)
        snprintf(buf, 24, "%.0f ns", ns);
    else if (ns < 1e4)
        snprintf(buf, 24, "%.1f us", ns / 1e3);
    else if (ns < 1e6)
        snprintf(buf, 24, "%.0f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, 24, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, 24, "%.2f s", ns / 1e9);
    return buf;
}

static const char *bytes(char *buf, double b)
{
    if (b < 1e3)
        snprintf(buf, 24, "%.0f B", b);
    else if (b < 1e6)
        snprintf(buf, 24, "%.1f kB", b / 1e3);
    else if (b < 1e9)
        snprintf(buf, 24, "%.1f MB", b / 1e6);
    else
        snprintf(buf, 24, "%.2f GB", b / 1e9);
    return buf;
}

static const char *mode_name(const struct load_config *cfg)
{
    return cfg->mode == MODE_ECHO ? "echo" : cfg->mode == MODE_IDLE ? "idle" : "http";
}

static void latency_line(const char *label, const struct hist *h)
{
    char a[24], b[24], c[24], d[24], e[24], f[24];
    printf("  %-10s p50 %s   p90 %s   p99 %s   p99.9 %s   max %s   mean %s\n", label,
           duration(a, (double)hist_quantile(h, 0.50)), duration(b, (double)hist_quantile(h, 0.90)),
           duration(c, (double)hist_quantile(h, 0.99)), duration(d, (double)hist_quantile(h, 0.999)),
           duration(e, (double)h->max), duration(f, hist_mean(h)));
}

void load_report_text(const struct load_config *cfg, const struct load_result *r)
{
    char g1[32], g2[32], g3[32], b1[24], b2[24], b3[24];
    const struct load_counts *n = &r->n;
    double s = r->seconds > 0 ? r->seconds : 1e-9;
    printf("corio-load %s %s: %u connection%s, %u thread%s, ", mode_name(cfg), cfg->target,
           cfg->conns, cfg->conns == 1 ? "" : "s", cfg->threads, cfg->threads == 1 ? "" : "s");
    if (cfg->mode == MODE_HTTP && cfg->rate > 0)
        printf("open loop at %s/s, ", grouped(g1, (uint64_t)cfg->rate));
    else if (cfg->mode == MODE_HTTP)
        printf("closed loop, depth %u, ", cfg->depth);
    printf("%.2f s\n", r->seconds);
    if (cfg->mode == MODE_IDLE) {
        printf("  %-10s %s open of %s\n", "conns", grouped(g1, n->connected), grouped(g2, cfg->conns));
        latency_line("connect", &r->lat);
    } else {
        printf("  %-10s %s answered of %s sent: %s per second\n", "requests",
               grouped(g1, n->answered), grouped(g2, n->sent), grouped(g3, (uint64_t)(n->answered / s)));
        printf("  %-10s %s in (%s/s), %s out\n", "transfer", bytes(b1, (double)n->bytes_in),
               bytes(b2, (double)n->bytes_in / s), bytes(b3, (double)n->bytes_out));
        latency_line("latency", &r->lat);
    }
    if (cfg->mode == MODE_HTTP && n->answered) {
        printf("  %-10s", "status");
        static const char *const cls[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
        for (int c = 0; c < 6; c++)
            if (n->status[c])
                printf(" %s %s ", cls[c], grouped(g1, n->status[c]));
        printf("\n");
    }
    uint64_t errs = load_errors(n);
    printf("  %-10s %s", "errors", errs ? grouped(g1, errs) : "none");
    if (errs) {
        printf(":");
        for (int k = 0; k < E_KINDS; k++)
            if (n->err[k])
                printf(" %s %s", err_names[k], grouped(g1, n->err[k]));
    }
    printf("\n");
}

void load_report_json(const struct load_config *cfg, const struct load_result *r)
{
    const struct load_counts *n = &r->n;
    const struct hist *h = &r->lat;
    double s = r->seconds > 0 ? r->seconds : 1e-9;
    printf("{\"mode\":\"%s\",\"target\":\"%s\",\"connections\":%u,\"threads\":%u,\"depth\":%u,"
           "\"rate\":%.0f,\"seconds\":%.3f,\"sent\":%llu,\"answered\":%llu,\"connected\":%llu,"
           "\"requests_per_s\":%.1f,\"bytes_in\":%llu,\"bytes_out\":%llu,\"bytes_in_per_s\":%.1f,",
           mode_name(cfg), cfg->target, cfg->conns, cfg->threads, cfg->depth, cfg->rate, r->seconds,
           (unsigned long long)n->sent, (unsigned long long)n->answered,
           (unsigned long long)n->connected, (double)n->answered / s,
           (unsigned long long)n->bytes_in, (unsigned long long)n->bytes_out,
           (double)n->bytes_in / s);
    printf("\"latency_ns\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu,"
           "\"mean\":%.0f},",
           (unsigned long long)hist_quantile(h, 0.5), (unsigned long long)hist_quantile(h, 0.9),
           (unsigned long long)hist_quantile(h, 0.99), (unsigned long long)hist_quantile(h, 0.999),
           (unsigned long long)h->max, hist_mean(h));
    printf("\"status\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},",
           (unsigned long long)n->status[1], (unsigned long long)n->status[2],
           (unsigned long long)n->status[3], (unsigned long long)n->status[4],
           (unsigned long long)n->status[5]);
    printf("\"errors\":{");
    for (int k = 0; k < E_KINDS; k++)
        printf("\"%s\":%llu,", err_names[k], (unsigned long long)n->err[k]);
    printf("\"total\":%llu}}\n", (unsigned long long)load_errors(n));
}
