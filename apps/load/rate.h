/* The open-loop schedule: at `rate` events per second, slot k is due at
 * start + k / rate, computed from k each time so that a million slots do
 * not accumulate a rounding error.  Connections share one schedule by
 * striding: connection i of n takes slots i, i + n, i + 2n, ... so the
 * sends of n connections interleave evenly instead of bunching.
 *
 * Latency is measured from a slot's due time, not from when the request
 * actually went out: a server that stalls cannot hide the requests it
 * kept waiting (coordinated omission). */
#ifndef CORIO_LOAD_RATE_H
#define CORIO_LOAD_RATE_H

#include <stdint.h>

struct rate {
    int64_t start;   /* when slot 0 is due, ns */
    double per_sec;  /* events per second over the whole schedule */
    uint64_t next;   /* this taker's next slot */
    uint64_t stride; /* slots between two of this taker's */
};

/* A schedule of per_sec events a second from start, of which this taker
 * gets slots first, first + stride, ... (first < stride; stride >= 1). */
void rate_init(struct rate *r, double per_sec, int64_t start, uint64_t first, uint64_t stride);

/* When slot k of the whole schedule is due. */
int64_t rate_due(const struct rate *r, uint64_t k);

/* The due time of this taker's next slot, without taking it. */
int64_t rate_peek(const struct rate *r);

/* Takes this taker's next slot and returns its due time. */
int64_t rate_take(struct rate *r);

/* How many of this taker's slots are due at `now` and not yet taken. */
uint64_t rate_behind(const struct rate *r, int64_t now);

#endif
