/* hist.h — a log-linear latency histogram (header-only, for bench/).
 *
 * Every latency the load generator measures is recorded: nothing is
 * sampled, and recording is O(1) (a count-leading-zeros and a shift).
 * Values are unsigned integers in whatever unit the caller picks; the bench
 * records nanoseconds.
 *
 * Layout (the HdrHistogram idea with 8 bits of sub-bucket precision):
 *
 *   - values 0 .. 255 each have their own bucket (exact);
 *   - above that, every power-of-two range [2^k, 2^(k+1)) is cut into 128
 *     equal buckets, so a bucket is at most 1/128 (0.79 %) of the values
 *     it holds wide — two significant digits and a bit more, everywhere.
 *
 * The buckets cover 0 .. RP_HIST_MAX (60 s in nanoseconds, about 2^36);
 * a larger value is counted in `overflow` rather than dropped, and still
 * counts in count, sum and max. min and max are kept exactly.
 *
 * A percentile answers the highest value of the bucket that holds the
 * requested rank (nearest-rank definition: the value below which at least
 * p % of the recorded values lie), clamped into [min, max]: so it never
 * under-states a latency, it is exact for a single value, for the maximum
 * and for values below 256, and within 0.79 % above. A rank that falls in
 * the overflow range answers max, the only value known there.
 *
 * Memory: RP_HIST_NBUCKETS (3,840) 64-bit counters, 30 KB a histogram;
 * keep one per operation per thread and merge them at the end (merging is
 * O(buckets)). Not thread-safe: one writer per histogram.
 */
#ifndef RP_BENCH_HIST_H
#define RP_BENCH_HIST_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define RP_HIST_SUB_BITS 8                          /* sub-bucket precision, bits */
#define RP_HIST_SUB (1u << RP_HIST_SUB_BITS)        /* 256: exact values below this */
#define RP_HIST_HALF (RP_HIST_SUB / 2)              /* 128 buckets per power of two */
#define RP_HIST_MAX 60000000000ull                  /* 60 s in ns: the last value bucketed */
#define RP_HIST_TOP_BIT 35                          /* floor(log2(RP_HIST_MAX)) */
/* Buckets: 256 exact ones, then 128 per octave for octaves 8 .. TOP_BIT. */
#define RP_HIST_NBUCKETS (RP_HIST_SUB + (RP_HIST_TOP_BIT - RP_HIST_SUB_BITS + 1) * RP_HIST_HALF)

typedef struct rp_hist {
    uint64_t count;    /* values recorded, overflow included */
    uint64_t overflow; /* values above RP_HIST_MAX */
    uint64_t min, max; /* exact; both 0 while empty */
    double sum;        /* for the mean (double: no overflow after 2^64 ns) */
    uint64_t buckets[RP_HIST_NBUCKETS];
} rp_hist;

/* Empty the histogram. */
static inline void rp_hist_init(rp_hist *h) { memset(h, 0, sizeof *h); }

/* The bucket of v (v <= RP_HIST_MAX). Constant time. */
static inline uint32_t rp_hist_index(uint64_t v) {
    assert(v <= RP_HIST_MAX);
    if (v < RP_HIST_SUB) return (uint32_t)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v);     /* 2^k <= v < 2^(k+1), k >= 8 */
    unsigned shift = k - (RP_HIST_SUB_BITS - 1);         /* v >> shift is in [128, 256) */
    uint64_t m = v >> shift;
    return RP_HIST_SUB + (shift - 1) * RP_HIST_HALF + (uint32_t)(m - RP_HIST_HALF);
}

/* The lowest and highest value a bucket holds. */
static inline uint64_t rp_hist_bucket_low(uint32_t i) {
    assert(i < RP_HIST_NBUCKETS);
    if (i < RP_HIST_SUB) return i;
    uint32_t j = i - RP_HIST_SUB;
    unsigned shift = j / RP_HIST_HALF + 1;
    uint64_t m = RP_HIST_HALF + j % RP_HIST_HALF;
    return m << shift;
}

static inline uint64_t rp_hist_bucket_high(uint32_t i) {
    assert(i < RP_HIST_NBUCKETS);
    if (i < RP_HIST_SUB) return i;
    unsigned shift = (i - RP_HIST_SUB) / RP_HIST_HALF + 1;
    return rp_hist_bucket_low(i) + (1ull << shift) - 1;
}

/* Record one value. O(1). */
static inline void rp_hist_add(rp_hist *h, uint64_t v) {
    if (h->count == 0 || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->count++;
    h->sum += (double)v;
    if (v > RP_HIST_MAX) h->overflow++;
    else h->buckets[rp_hist_index(v)]++;
}

/* Add everything src recorded into dst. O(RP_HIST_NBUCKETS). */
static inline void rp_hist_merge(rp_hist *dst, const rp_hist *src) {
    if (src->count == 0) return;
    if (dst->count == 0 || src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->count += src->count;
    dst->overflow += src->overflow;
    dst->sum += src->sum;
    for (uint32_t i = 0; i < RP_HIST_NBUCKETS; i++) dst->buckets[i] += src->buckets[i];
}

/* The p-th percentile (p in 0 .. 100; 0 answers min, 100 max), as
 * described at the top: the highest value of the bucket of the
 * ceil(p/100 * count)-th smallest value, clamped into [min, max].
 * An empty histogram answers 0. O(RP_HIST_NBUCKETS). */
static inline uint64_t rp_hist_percentile(const rp_hist *h, double p) {
    if (h->count == 0) return 0;
    if (!(p > 0.0)) return h->min; /* also catches NaN */
    if (p >= 100.0) return h->max;
    /* ceil, forgiving the rounding of p / 100 * count: 99.99 % of 10,000
     * must be rank 9,999 even if the product comes out as 9999.0000001 */
    double want_d = p / 100.0 * (double)h->count;
    uint64_t want = (uint64_t)want_d;
    if (want_d - (double)want > 1e-9 * (want_d > 1.0 ? want_d : 1.0)) want++;
    if (want == 0) want = 1;
    if (want > h->count) want = h->count;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < RP_HIST_NBUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= want) {
            uint64_t v = rp_hist_bucket_high(i);
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max; /* the rank lies in the overflow range */
}

/* The arithmetic mean of every recorded value; 0 when empty. */
static inline double rp_hist_mean(const rp_hist *h) {
    return h->count ? h->sum / (double)h->count : 0.0;
}

#endif
