/* The open-loop schedule (rate.h).  Due times come from the slot number
 * with 128-bit arithmetic on a rate scaled to nano-events per second, so
 * there is no drift however long the run. */
#include <math.h>

#include "rate.h"

#define SCALE 1000000000.0 /* the rate is kept in events per 10^9 seconds */

void rate_init(struct rate *r, double per_sec, int64_t start, uint64_t first, uint64_t stride)
{
    r->start = start;
    r->per_sec = per_sec > 0 ? per_sec : 1e-9;
    r->stride = stride ? stride : 1;
    r->next = first;
}

int64_t rate_due(const struct rate *r, uint64_t k)
{
    /* k * 10^9 / per_sec, as k * 10^18 / (per_sec * 10^9) in integers. */
    unsigned __int128 scaled = (unsigned __int128)llround(r->per_sec * SCALE);
    if (scaled == 0)
        scaled = 1;
    unsigned __int128 ns = (unsigned __int128)k * 1000000000000000000ull / scaled;
    if (ns > (unsigned __int128)(INT64_MAX - r->start))
        return INT64_MAX;
    return r->start + (int64_t)ns;
}

int64_t rate_peek(const struct rate *r)
{
    return rate_due(r, r->next);
}

int64_t rate_take(struct rate *r)
{
    int64_t t = rate_due(r, r->next);
    r->next += r->stride;
    return t;
}

uint64_t rate_behind(const struct rate *r, int64_t now)
{
    if (now < rate_due(r, r->next))
        return 0;
    /* Slots due by now: the last k with due(k) <= now, from the rate. */
    double elapsed = (double)(now - r->start) / 1e9;
    uint64_t last = (uint64_t)(elapsed * r->per_sec);
    while (rate_due(r, last + 1) <= now) /* correct the float estimate */
        last++;
    while (last > 0 && rate_due(r, last) > now)
        last--;
    if (last < r->next)
        return 1;
    return (last - r->next) / r->stride + 1;
}
