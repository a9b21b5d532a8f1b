/* A log-bucketed latency histogram, in the manner of HdrHistogram: each
 * power of two is split into 2^HIST_SUB_BITS equal buckets, so a recorded
 * value is known to within 1/128 of itself (0.8%) from 1 ns to an hour,
 * in a fixed 40 KiB with O(1) recording and no allocation. */
#ifndef CORIO_LOAD_HIST_H
#define CORIO_LOAD_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_TOP_BIT 42 /* values from 2^42 ns (73 minutes) up share the last buckets */
#define HIST_BUCKETS ((HIST_TOP_BIT - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t sum; /* of the values as recorded, for the mean */
    uint64_t min, max;
    uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);

/* Records v (nanoseconds, or any unit) n times. */
void hist_add(struct hist *h, uint64_t v, uint64_t n);

/* Adds every value of src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at quantile q (0 <= q <= 1): the highest value the bucket
 * holding the ceil(q * count)-th smallest value can hold, but never above
 * the largest value recorded; q = 1 is the maximum.  0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

/* The mean, or 0 when empty. */
double hist_mean(const struct hist *h);

/* Bucket arithmetic, exposed for the tests: the bucket of v, and the
 * smallest and largest values a bucket holds. */
unsigned hist_bucket(uint64_t v);
uint64_t hist_bucket_low(unsigned i);
uint64_t hist_bucket_high(unsigned i);

#endif
