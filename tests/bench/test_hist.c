/* test_hist.c — the bench's log-linear histogram (bench/hist.h): bucket
 * geometry, percentiles on known inputs (uniform, single value, two
 * clusters, max, empty, overflow) and merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

/* The bound every percentile keeps: never below the true value, and at
 * most one bucket width (1/128 of it) above. */
static void assert_close_above(uint64_t got, uint64_t want) {
    assert_true(got >= want);
    assert_true(got <= want + want / 128);
}

static rp_hist *hist_new(void) {
    rp_hist *h = malloc(sizeof *h);
    assert_non_null(h);
    rp_hist_init(h);
    return h;
}

/* Buckets tile 0 .. RP_HIST_MAX without gaps or overlaps, each value lands
 * in the bucket that holds it, and no bucket is wider than 1/128 of its
 * lowest value past the exact range. */
static void test_bucket_geometry(void **state) {
    (void)state;
    assert_int_equal(rp_hist_bucket_low(0), 0);
    for (uint32_t i = 0; i + 1 < RP_HIST_NBUCKETS; i++) {
        assert_int_equal(rp_hist_bucket_high(i) + 1, rp_hist_bucket_low(i + 1));
        uint64_t lo = rp_hist_bucket_low(i), hi = rp_hist_bucket_high(i);
        if (lo >= RP_HIST_SUB) assert_true((hi - lo + 1) * 128 <= lo);
        else assert_int_equal(lo, hi);
        /* the top buckets reach past RP_HIST_MAX, which rp_hist_index refuses */
        if (lo <= RP_HIST_MAX) assert_int_equal(rp_hist_index(lo), i);
        if (hi <= RP_HIST_MAX) assert_int_equal(rp_hist_index(hi), i);
    }
    /* the last octave is only partly used: 60 s is 0.87 * 2^36 */
    uint32_t top = rp_hist_index(RP_HIST_MAX);
    assert_true(top < RP_HIST_NBUCKETS && top >= RP_HIST_NBUCKETS - RP_HIST_HALF);
    assert_true(rp_hist_bucket_high(top) >= RP_HIST_MAX);
    /* pseudo-random values over the whole range */
    uint64_t x = 88172645463325252ull;
    for (int n = 0; n < 100000; n++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t v = (x >> (x & 31)) % (RP_HIST_MAX + 1);
        uint32_t i = rp_hist_index(v);
        assert_true(rp_hist_bucket_low(i) <= v && v <= rp_hist_bucket_high(i));
    }
}

static void test_uniform(void **state) {
    (void)state;
    rp_hist *h = hist_new();
    for (uint64_t v = 1000; v >= 1; v--) rp_hist_add(h, v); /* order does not matter */
    assert_int_equal(h->count, 1000);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, 1000);
    assert_true(rp_hist_mean(h) > 500.49 && rp_hist_mean(h) < 500.51);
    assert_close_above(rp_hist_percentile(h, 50), 500);
    assert_close_above(rp_hist_percentile(h, 90), 900);
    assert_close_above(rp_hist_percentile(h, 99), 990);
    assert_close_above(rp_hist_percentile(h, 99.9), 999);
    assert_int_equal(rp_hist_percentile(h, 100), 1000);
    assert_int_equal(rp_hist_percentile(h, 0), 1);
    /* below 256 every value is exact */
    assert_int_equal(rp_hist_percentile(h, 10), 100);
    assert_int_equal(rp_hist_percentile(h, 25.5), 255);
    /* a rank between two values takes the upper one (nearest rank) */
    assert_int_equal(rp_hist_percentile(h, 10.01), 101);
    free(h);
}

static void test_single_value(void **state) {
    (void)state;
    rp_hist *h = hist_new();
    for (int i = 0; i < 5; i++) rp_hist_add(h, 12345);
    const double ps[] = {0, 1, 50, 90, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        assert_int_equal(rp_hist_percentile(h, ps[i]), 12345); /* clamped into [min, max] */
    assert_true(rp_hist_mean(h) == 12345.0);
    free(h);
}

static void test_two_clusters(void **state) {
    (void)state;
    rp_hist *h = hist_new();
    for (int i = 0; i < 900; i++) rp_hist_add(h, 20000 + (uint64_t)(i % 10));     /* 20 µs */
    for (int i = 0; i < 100; i++) rp_hist_add(h, 5000000 + (uint64_t)i * 1000);   /* 5 ms */
    assert_close_above(rp_hist_percentile(h, 50), 20004);
    assert_close_above(rp_hist_percentile(h, 90), 20009);
    /* the 901st value is the first of the slow cluster */
    assert_close_above(rp_hist_percentile(h, 90.1), 5000000);
    assert_close_above(rp_hist_percentile(h, 99), 5089000);
    assert_int_equal(rp_hist_percentile(h, 100), 5099000);
    /* nothing is reported between the clusters */
    for (double p = 1; p <= 90; p += 1) assert_true(rp_hist_percentile(h, p) < 20200);
    for (double p = 90.1; p < 100; p += 0.1) assert_true(rp_hist_percentile(h, p) >= 5000000);
    free(h);
}

/* One slow outlier among many fast values: the max is exact, and the rank
 * just below it is not pulled up to it. */
static void test_max(void **state) {
    (void)state;
    rp_hist *h = hist_new();
    for (int i = 0; i < 9999; i++) rp_hist_add(h, 30000);
    rp_hist_add(h, 123456789);
    assert_int_equal(h->max, 123456789);
    assert_int_equal(rp_hist_percentile(h, 100), 123456789);
    assert_close_above(rp_hist_percentile(h, 99.99), 30000); /* rank 9,999 */
    assert_int_equal(rp_hist_percentile(h, 99.999), 123456789); /* rank 10,000, clamped to max */
    free(h);
}

static void test_empty(void **state) {
    (void)state;
    rp_hist *h = hist_new();
    assert_int_equal(h->count, 0);
    assert_int_equal(rp_hist_percentile(h, 0), 0);
    assert_int_equal(rp_hist_percentile(h, 50), 0);
    assert_int_equal(rp_hist_percentile(h, 100), 0);
    assert_true(rp_hist_mean(h) == 0.0);
    assert_int_equal(h->max, 0);
    assert_int_equal(h->min, 0);
    free(h);
}

static void test_overflow(void **state) {
    (void)state;
    rp_hist *h = hist_new();
    for (int i = 0; i < 10; i++) rp_hist_add(h, 1000);
    rp_hist_add(h, RP_HIST_MAX);           /* the last bucketed value */
    rp_hist_add(h, RP_HIST_MAX + 1);       /* overflow */
    rp_hist_add(h, 90000000000ull);        /* 90 s: overflow */
    assert_int_equal(h->count, 13);
    assert_int_equal(h->overflow, 2);
    assert_int_equal(h->max, 90000000000ull);
    assert_close_above(rp_hist_percentile(h, 50), 1000);
    /* rank 11 is RP_HIST_MAX, in the last bucket */
    assert_close_above(rp_hist_percentile(h, 11.0 / 13 * 100), RP_HIST_MAX);
    /* ranks 12 and 13 lie in the overflow range: the max is what is known */
    assert_int_equal(rp_hist_percentile(h, 12.0 / 13 * 100), 90000000000ull);
    assert_int_equal(rp_hist_percentile(h, 99.9), 90000000000ull);
    rp_hist_add(h, UINT64_MAX);
    assert_int_equal(h->overflow, 3);
    assert_int_equal(rp_hist_percentile(h, 100), UINT64_MAX);
    free(h);
}

static void test_merge(void **state) {
    (void)state;
    rp_hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *empty = hist_new();
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t v = (x >> 33) % 5000000 + 5000; /* 5 µs .. 5 ms */
        if (i == 7) v = 70000000000ull;           /* one overflow, in a */
        rp_hist_add(i % 3 ? a : b, v);
        rp_hist_add(all, v);
    }
    rp_hist *m = hist_new();
    rp_hist_merge(m, empty); /* nothing into nothing */
    assert_int_equal(m->count, 0);
    rp_hist_merge(m, a);
    rp_hist_merge(m, b);
    rp_hist_merge(m, empty); /* nothing changes min */
    assert_int_equal(m->count, all->count);
    assert_int_equal(m->overflow, 1);
    assert_int_equal(m->min, all->min);
    assert_int_equal(m->max, all->max);
    assert_true(m->sum == all->sum || (m->sum - all->sum) / all->sum < 1e-12);
    assert_memory_equal(m->buckets, all->buckets, sizeof m->buckets);
    const double ps[] = {50, 90, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        assert_int_equal(rp_hist_percentile(m, ps[i]), rp_hist_percentile(all, ps[i]));
    /* merging takes the smaller min even when the target's came first */
    rp_hist *lo = hist_new();
    rp_hist_add(lo, 3);
    rp_hist_merge(m, lo);
    assert_int_equal(m->min, 3);
    assert_int_equal(rp_hist_percentile(m, 0), 3);
    free(a), free(b), free(all), free(empty), free(m), free(lo);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_geometry), cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_single_value),    cmocka_unit_test(test_two_clusters),
        cmocka_unit_test(test_max),             cmocka_unit_test(test_empty),
        cmocka_unit_test(test_overflow),        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
