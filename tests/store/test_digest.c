/* test_digest.c — the per-customer card digest (store/digest.h).
 *
 * The reference is the history: after every write of many generated
 * histories (timestamps in any order with repeats, idempotent retries,
 * merges, forgets, retention by count and by age, a card_max_events
 * smaller than the history), each customer's stored digest must be byte
 * for byte the digest rp_si_digest_build makes from the history, and each
 * entry must decode (rp_digest_event) to the fields of the same event of
 * rp_store_history. Then: the parser on truncated, extended, bit-flipped
 * and hand-broken values (RP_INTERNAL, never a crash; run under ASan by
 * tools/test), rp_digest_covers, and the backfill of a store whose digests
 * are missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/error.h"
#include "model/record.h"
#include "store/digest.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/fixture.h"

static int setup(void **state) { return fx_setup(state, "/tmp/rp_digest_XXXXXX"); }

/* A small deterministic generator (the seed is printed on failure). */
static uint64_t g_rng;
static uint64_t g_heads; /* digests seen with a head (the head path was taken) */
static uint32_t rnd(uint32_t n) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33) % n;
}

static void put_cust(rp_store *s, const char *id) {
    rp_customer c;
    memset(&c, 0, sizeof c);
    c.id = S(id);
    rp_errbuf eb = {0};
    rp_err rc = rp_store_put_customer(s, &c, NULL, NULL, &eb);
    if (rc != RP_OK) fprintf(stderr, "put %s: %s\n", id, eb.msg);
    assert_int_equal(rc, RP_OK);
}

static const char *const kinds[] = {"contact", "outage", "order", "login_failed", "payment"};
static const char *const topics[] = {"", "billing", "Billing", "delivery", "router", "password"};
static const char *const agents[] = {"", "ana", "bo", "chen"};
static const char *const issues[] = {"", "T-1", "T-2", "order-77"};

/* A random event of cid at a ts in [NOW - span, NOW]; an event_id from a
 * small pool now and then (so retries happen). */
static rp_event rand_event(const char *cid, int64_t span, char evid[16]) {
    rp_event e;
    memset(&e, 0, sizeof e);
    e.customer_id = S(cid);
    e.ts = NOW - (int64_t)rnd((uint32_t)span + 1);
    if (rnd(4) == 0) e.ts = NOW - 3600; /* many events in one second */
    e.channel = (rp_channel)(1 + rnd(RP_CH__COUNT - 1));
    e.kind = S(kinds[rnd(5)]);
    e.topic = S(topics[rnd(6)]);
    e.agent = S(agents[rnd(4)]);
    e.issue_id = S(issues[rnd(4)]);
    e.outcome = (rp_outcome)rnd(RP_OUT__COUNT);
    e.summary = S(rnd(2) ? "called about it" : "");
    switch (rnd(5)) {
    case 0: break;
    case 1: e.has_sentiment = true, e.sentiment = -1.0; break;
    case 2: e.has_sentiment = true, e.sentiment = -0.0; break;
    case 3: e.has_sentiment = true, e.sentiment = 0.1 + 0.2; break;
    default: e.has_sentiment = true, e.sentiment = (double)rnd(2001) / 1000.0 - 1.0; break;
    }
    if (rnd(3) == 0) {
        snprintf(evid, 16, "ev-%u", rnd(40));
        e.event_id = rp_str_c(evid);
    }
    return e;
}

static bool str_same(rp_str a, rp_str b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }

/* Check customer cid's digest against the history. must: it must have one
 * (else NOT_FOUND is also fine when the customer has no events). */
static void check_one(fx *f, const char *cid, bool must) {
    rp_store *s = f->s;
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    uint32_t cap = rp_si_digest_cap(s);
    rp_digest d;
    rp_err rc = rp_store_digest(s, t, S(cid), &d, &eb);
    static rp_event hist[RP_DIGEST_MAX_EVENTS + 1];
    uint32_t nh = 0;
    bool more = false;
    assert_int_equal(rp_store_history(s, t, S(cid), RP_STORE_CANONICAL, NULL, cap, hist, &nh, &more, NULL, &eb),
                     RP_OK);
    if (rc == RP_NOT_FOUND && !must && nh == 0) {
        rp_store_rend(s, t);
        return;
    }
    if (rc != RP_OK) fprintf(stderr, "digest of %s: %s (seed %llu)\n", cid, eb.msg, (unsigned long long)g_rng);
    assert_int_equal(rc, RP_OK);
    /* Without a head (digest.c: appends in time order go to a head),
     * byte for byte the digest a rebuild makes. */
    MDB_val k = {strlen(cid), (void *)cid}, v;
    assert_int_equal(mdb_get(t, s->dbi[RP_DB_DIGESTS], &k, &v), 0);
    if (d.head_n == 0) {
        rp_si_blob fresh;
        assert_int_equal(rp_si_digest_build(s, t, S(cid), cap, &fresh, &eb), RP_OK);
        if (fresh.n != v.mv_size || memcmp(fresh.p, v.mv_data, fresh.n) != 0)
            fprintf(stderr, "digest of %s differs from a rebuild: %zu vs %zu bytes, n %u, complete %d\n", cid,
                    v.mv_size, fresh.n, d.n, d.complete);
        assert_int_equal(fresh.n, v.mv_size);
        assert_memory_equal(fresh.p, v.mv_data, fresh.n);
        rp_si_blob_free(&fresh);
    } else {
        g_heads++;
    }
    /* Entry by entry the first cap events of the history; a head may
     * hold up to its size more (the card reads the first cap). */
    uint32_t count;
    assert_int_equal(rp_si_evcount_get(s, t, S(cid), &count, &eb), RP_OK);
    assert_int_equal(d.n < cap ? d.n : cap, nh);
    assert_int_equal(d.cap, cap);
    if (!more) assert_true(d.complete && d.n == nh);
    if (d.complete) assert_int_equal(d.n, count);
    else assert_true(d.n >= cap);
    for (uint32_t i = 0; i < nh; i++) {
        rp_event x;
        rp_digest_event(&d, i, S(cid), &x);
        const rp_event *h = &hist[i];
        assert_true(str_same(x.customer_id, S(cid)));
        assert_int_equal(x.ts, h->ts);
        assert_int_equal(x.seq, h->seq);
        assert_int_equal(x.channel, h->channel);
        assert_int_equal(x.outcome, h->outcome);
        assert_int_equal(x.has_sentiment, h->has_sentiment);
        if (h->has_sentiment) assert_memory_equal(&x.sentiment, &h->sentiment, sizeof(double));
        assert_true(str_same(x.kind, h->kind));
        assert_true(str_same(x.topic, h->topic));
        assert_true(str_same(x.issue_id, h->issue_id));
        assert_true(str_same(x.agent, h->agent));
        assert_int_equal(x.summary.n, 0);
        assert_int_equal(x.event_id.n, 0);
        /* The full event by its key: the very event of the history. */
        rp_event full;
        assert_int_equal(rp_store_event_at(s, t, S(cid), x.ts, x.seq, &full, &eb), RP_OK);
        assert_true(str_same(full.summary, h->summary));
        assert_true(str_same(full.event_id, h->event_id));
        assert_true(str_same(full.kind, h->kind));
        assert_int_equal(full.ts, h->ts);
        assert_int_equal(full.seq, h->seq);
    }
    assert_true(rp_digest_covers(&d, cap, NOW + 1));
    rp_store_rend(s, t);
}

static void check_gone(fx *f, const char *cid) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    rp_digest d;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_digest(f->s, t, S(cid), &d, &eb), RP_NOT_FOUND);
    rp_store_rend(f->s, t);
}

#define NCUST 6

/* One generated history under the config of f: appends (with retries),
 * merges, forgets; every customer checked after every write. */
static void run_history(fx *f, uint64_t seed, int ops, int64_t span) {
    g_rng = seed;
    char ids[NCUST][24];
    int gen = 0;
    for (int i = 0; i < NCUST; i++) {
        snprintf(ids[i], sizeof ids[i], "c%llu-%d", (unsigned long long)seed % 1000, gen++);
        put_cust(f->s, ids[i]);
    }
    rp_event last;
    bool have_last = false;
    char last_evid[16];
    for (int op = 0; op < ops; op++) {
        uint32_t r = rnd(100);
        int i = (int)rnd(NCUST);
        rp_errbuf eb = {0};
        if (r < 3) { /* forget: the slot gets a new customer */
            assert_int_equal(rp_store_forget(f->s, S(ids[i]), &eb), RP_OK);
            check_gone(f, ids[i]);
            snprintf(ids[i], sizeof ids[i], "c%llu-%d", (unsigned long long)seed % 1000, gen++);
            put_cust(f->s, ids[i]);
            have_last = false;
        } else if (r < 7) { /* merge i into j; the slot gets a new customer */
            int j = (int)((i + 1 + rnd(NCUST - 1)) % NCUST);
            rp_err rc = rp_store_merge(f->s, S(ids[i]), S(ids[j]), NOW, NULL, &eb);
            if (rc != RP_OK) fprintf(stderr, "merge: %s\n", eb.msg);
            assert_int_equal(rc, RP_OK);
            check_gone(f, ids[i]);
            check_one(f, ids[j], true);
            snprintf(ids[i], sizeof ids[i], "c%llu-%d", (unsigned long long)seed % 1000, gen++);
            put_cust(f->s, ids[i]);
            have_last = false;
            continue;
        } else if (r < 15 && have_last) { /* an idempotent retry of the last append */
            rp_cursor at;
            assert_int_equal(rp_store_append_event(f->s, &last, NOW, &at, &eb), RP_OK);
        } else {
            char evid[16];
            rp_event e = rand_event(ids[i], span, evid);
            rp_cursor at;
            rp_err rc = rp_store_append_event(f->s, &e, NOW, &at, &eb);
            if (rc != RP_OK) fprintf(stderr, "append: %s\n", eb.msg);
            assert_int_equal(rc, RP_OK);
            last = e;
            if (e.event_id.n) {
                memcpy(last_evid, evid, sizeof last_evid);
                last.event_id = rp_str_c(last_evid);
            }
            have_last = true;
            check_one(f, ids[i], true);
            continue;
        }
        for (int c = 0; c < NCUST; c++) check_one(f, ids[c], false);
    }
    for (int c = 0; c < NCUST; c++) check_one(f, ids[c], false);
}

/* The default config: a cap of 200, histories below it (complete). */
static void test_histories_default(void **state) {
    fx *f = *state;
    g_heads = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) run_history(f, seed, 300, 30 * 86400);
    assert_true(g_heads > 0); /* the head path was checked, not only rebuilds */
}

/* A cap smaller than the histories; retention by count above and below
 * the cap; retention by age with old appends (the age rule's kept event). */
static void test_histories_small(void **state) {
    static const struct {
        uint32_t card_max, keep_max, age_days;
    } cfgs[] = {
        {5, 1000, 0}, {7, 12, 0}, {12, 7, 0}, {6, 0, 3}, {4, 9, 2}, {1, 3, 1}, {10, 10, 5},
        /* caps above a head's size: heads, folds and trims together */
        {20, 30, 0}, {24, 0, 3}, {18, 25, 2}, {17, 17, 0},
    };
    fx *f = *state;
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        f->cfg.card_max_events = cfgs[c].card_max;
        f->cfg.retention_max_events = cfgs[c].keep_max ? cfgs[c].keep_max : 1000000;
        f->cfg.retention_max_age_days = cfgs[c].age_days;
        fx_reopen(f);
        run_history(f, 100 + c, 250, 8 * 86400);
    }
}

/* Another card_max_events: the next append rebuilds with the new cap, and
 * the backfill of the reopen brings every other digest to it. */
static rp_err wait_fill(fx *f, rp_store_stats *st) {
    rp_errbuf eb = {0};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rp_err rc = rp_store_stats_get(f->s, st, &eb);
        if (rc != RP_OK) return rc;
        if (st->digest_fill != RP_FILL_RUNNING) return RP_OK;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 60) return RP_UNAVAILABLE; /* the deadline */
        struct timespec nap = {0, 2 * 1000 * 1000};
        nanosleep(&nap, NULL); /* between polls of the condition, not as synchronisation */
    }
}

static void test_cap_change(void **state) {
    fx *f = *state;
    f->cfg.card_max_events = 8;
    fx_reopen(f);
    run_history(f, 7, 200, 86400);
    rp_store_stats st;
    assert_int_equal(wait_fill(f, &st), RP_OK);
    assert_true(st.digests_ready);
    f->cfg.card_max_events = 3;
    fx_reopen(f);
    assert_int_equal(wait_fill(f, &st), RP_OK);
    assert_int_equal(st.digest_fill, RP_FILL_DONE);
    assert_true(st.digests_ready);
    assert_true(st.digest_fill_built > 0);
    g_rng = 7;
    char ids[NCUST][24];
    for (int i = 0; i < NCUST; i++) {
        snprintf(ids[i], sizeof ids[i], "c7-%d", i);
        MDB_txn *t;
        rp_errbuf eb = {0};
        rp_str canon;
        assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
        rp_err rc = rp_store_resolve(f->s, t, S(ids[i]), &canon, &eb);
        rp_store_rend(f->s, t);
        if (rc == RP_OK) check_one(f, ids[i], false);
    }
    run_history(f, 8, 100, 86400);
}

/* --- the parser ----------------------------------------------------------- */

/* A valid digest of a few events with repeated strings and sentiments. */
static rp_si_blob sample_digest(fx *f) {
    put_cust(f->s, "p1");
    g_rng = 99;
    for (int i = 0; i < 12; i++) {
        char evid[16];
        rp_event e = rand_event("p1", 86400, evid);
        rp_errbuf eb = {0};
        assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_OK);
    }
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    rp_si_blob b;
    assert_int_equal(rp_si_digest_build(f->s, t, S("p1"), 10, &b, &eb), RP_OK);
    rp_store_rend(f->s, t);
    return b;
}

/* Parse a copy of exactly n bytes (so ASan sees any read past the end);
 * on success walk every entry as a reader would. */
static rp_err parse_copy(const void *p, size_t n) {
    unsigned char *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n) memcpy(c, p, n);
    rp_digest d;
    rp_errbuf eb = {0};
    rp_err rc = rp_digest_parse(c, n, &d, &eb);
    if (rc == RP_OK) {
        for (uint32_t i = 0; i < d.n; i++) {
            rp_event e;
            rp_digest_event(&d, i, S("x"), &e);
            assert_true(e.kind.n <= RP_TOKEN_MAX && e.issue_id.n <= RP_ID_MAX);
            assert_true(e.channel < RP_CH__COUNT && e.outcome < RP_OUT__COUNT);
            assert_true(!e.has_sentiment || (e.sentiment >= -1.0 && e.sentiment <= 1.0));
        }
        (void)rp_digest_covers(&d, 5, NOW);
    } else {
        assert_int_equal(rc, RP_INTERNAL);
        assert_non_null(strstr(eb.msg, "corrupt digest"));
    }
    free(c);
    return rc;
}

static void test_parse_valid(void **state) {
    fx *f = *state;
    rp_si_blob b = sample_digest(f);
    rp_digest d;
    rp_errbuf eb = {0};
    assert_int_equal(rp_digest_parse(b.p, b.n, &d, &eb), RP_OK);
    assert_int_equal(d.n, 10);
    assert_int_equal(d.cap, 10);
    assert_false(d.complete);
    assert_true(d.nstr > 0 && d.nstr < 4 * 10); /* deduplicated */
    /* Every shorter prefix and a longer value are refused. */
    for (size_t n = 0; n < b.n; n++) assert_int_equal(parse_copy(b.p, n), RP_INTERNAL);
    char *longer = malloc(b.n + 1);
    memcpy(longer, b.p, b.n);
    longer[b.n] = 0;
    assert_int_equal(parse_copy(longer, b.n + 1), RP_INTERNAL);
    free(longer);
    /* Every single bit flip: refused or, when accepted, safe to read. */
    unsigned ok = 0;
    for (size_t i = 0; i < b.n; i++)
        for (int bit = 0; bit < 8; bit++) {
            b.p[i] ^= (char)(1 << bit);
            if (parse_copy(b.p, b.n) == RP_OK) ok++;
            b.p[i] ^= (char)(1 << bit);
        }
    assert_true(ok > 0); /* some flips are valid data (a ts, a byte of a string) */
    assert_int_equal(parse_copy(b.p, b.n), RP_OK);
    rp_si_blob_free(&b);
}

static void test_parse_broken(void **state) {
    fx *f = *state;
    rp_si_blob b = sample_digest(f);
    rp_digest d;
    rp_errbuf eb = {0};
    assert_int_equal(rp_digest_parse(b.p, b.n, &d, &eb), RP_OK);
    unsigned char *p = (unsigned char *)b.p;
    unsigned char *e0 = p + 16, *e1 = p + 16 + 32;
    uint32_t nstr = d.nstr;
    struct {
        size_t off;
        unsigned char val;
        const char *why;
    } cases[] = {
        {0, 0, "version"},
        {0, RP_DIGEST_VERSION + 1, "version"},
        {1, 0x02, "flags"},
        {12, 1, "reserved"},
        {8, 0, "cap"},                       /* cap 0 */
        {(size_t)(e0 - p) + 12, RP_CH__COUNT, "channel"},
        {(size_t)(e0 - p) + 13, RP_OUT__COUNT, "outcome"},
        {(size_t)(e0 - p) + 14, 0x02, "flags"},
        {(size_t)(e0 - p) + 15, 1, "reserved"},
        {(size_t)(e0 - p) + 24, (unsigned char)nstr, "string"}, /* kind index = nstr */
        {(size_t)(e0 - p) + 7, 0x80, "negative"},                /* ts < 0 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char save = p[cases[c].off], save2 = p[cases[c].off + 1];
        p[cases[c].off] = cases[c].val;
        if (cases[c].off == (size_t)(e0 - p) + 24) p[cases[c].off + 1] = (unsigned char)(nstr >> 8);
        memset(&eb, 0, sizeof eb);
        assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
        assert_non_null(strstr(eb.msg, cases[c].why));
        p[cases[c].off] = save;
        p[cases[c].off + 1] = save2;
    }
    /* Order: entry 1 made as new as entry 0. */
    unsigned char save[12];
    memcpy(save, e1, 12);
    memcpy(e1, e0, 12);
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
    assert_non_null(strstr(eb.msg, "older"));
    memcpy(e1, save, 12);
    /* Sentiment: NaN, 1.5, and a value without its flag. */
    unsigned char ss[9];
    memcpy(ss, e0 + 14, 1);
    memcpy(ss + 1, e0 + 16, 8);
    const double bad[] = {NAN, 1.5, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        e0[14] = 1;
        uint64_t bits;
        memcpy(&bits, &bad[i], 8);
        for (int j = 0; j < 8; j++) e0[16 + j] = (unsigned char)(bits >> (8 * j));
        assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
        assert_non_null(strstr(eb.msg, "sentiment"));
    }
    e0[14] = 0;
    memset(e0 + 16, 0, 8);
    e0[16 + 7] = 0x3f; /* 0.0078125 without its flag */
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
    memcpy(e0 + 14, ss, 1);
    memcpy(e0 + 16, ss + 1, 8);
    /* n above the cap and above RP_DIGEST_MAX_EVENTS. */
    p[4] = 11;
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
    p[4] = 10;
    p[9] = 0x10; /* cap 4106 */
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
    p[9] = 0;
    /* A string offset out of place and a string length of 0 or 65. */
    size_t offs = 16 + 32 * (size_t)d.n;
    p[offs + 4] ^= 1;
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
    p[offs + 4] ^= 1;
    size_t blob = offs + 4 * (size_t)nstr;
    unsigned char l0 = p[blob];
    p[blob] = 0;
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
    p[blob] = 65;
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_INTERNAL);
    p[blob] = l0;
    assert_int_equal(rp_digest_parse(p, b.n, &d, &eb), RP_OK);
    assert_int_equal(rp_digest_parse(NULL, 0, &d, &eb), RP_INTERNAL);
    rp_si_blob_free(&b);
}

/* A corrupt stored digest: the reader says INTERNAL; the next append
 * replaces it with a rebuild. */
static rp_err corrupt_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    rp_store *s = arg;
    MDB_val k = {2, "p1"}, v = {5, "junk!"};
    int mrc = mdb_put(txn, s->dbi[RP_DB_DIGESTS], &k, &v, 0);
    return mrc ? rp_errf(eb, RP_INTERNAL, "%s", mdb_strerror(mrc)) : RP_OK;
}

static void test_corrupt_replaced(void **state) {
    fx *f = *state;
    rp_si_blob b = sample_digest(f);
    rp_si_blob_free(&b);
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_write(f->s, corrupt_fn, f->s, &eb), RP_OK);
    MDB_txn *t;
    rp_digest d;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_digest(f->s, t, S("p1"), &d, &eb), RP_INTERNAL);
    rp_store_rend(f->s, t);
    char evid[16];
    rp_event e = rand_event("p1", 100, evid);
    assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_OK);
    check_one(f, "p1", true);
}

static void test_covers(void **state) {
    fx *f = *state;
    rp_si_blob b = sample_digest(f); /* 12 events, cap 10: not complete */
    rp_digest d;
    rp_errbuf eb = {0};
    assert_int_equal(rp_digest_parse(b.p, b.n, &d, &eb), RP_OK);
    rp_event newest;
    rp_digest_event(&d, 0, S("p1"), &newest);
    assert_true(rp_digest_covers(&d, 10, newest.ts));
    assert_true(rp_digest_covers(&d, 3, newest.ts + 100));
    assert_false(rp_digest_covers(&d, 10, newest.ts - 1)); /* an event after `at` */
    assert_false(rp_digest_covers(&d, 11, newest.ts));     /* more than it holds */
    rp_si_blob_free(&b);
    MDB_txn *t;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_si_digest_build(f->s, t, S("p1"), 1000, &b, &eb), RP_OK);
    rp_store_rend(f->s, t);
    assert_int_equal(rp_digest_parse(b.p, b.n, &d, &eb), RP_OK);
    assert_true(d.complete);
    assert_int_equal(d.n, 12);
    assert_true(rp_digest_covers(&d, 100000, NOW)); /* complete: any card_max_events */
    rp_si_blob_free(&b);
    put_cust(f->s, "empty");
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_si_digest_build(f->s, t, S("empty"), 5, &b, &eb), RP_OK);
    assert_int_equal(rp_store_digest(f->s, t, S("empty"), &d, &eb), RP_NOT_FOUND); /* never appended */
    rp_event x;
    assert_int_equal(rp_store_event_at(f->s, t, S("p1"), 0, 0, &x, &eb), RP_NOT_FOUND);
    rp_store_rend(f->s, t);
    assert_int_equal(rp_digest_parse(b.p, b.n, &d, &eb), RP_OK);
    assert_true(d.complete && d.n == 0 && rp_digest_covers(&d, 200, 0));
    assert_int_equal(b.n, 16);
    rp_si_blob_free(&b);
}

/* The fuzz seeds (tests/fuzz/digestgen.py: the format encoded apart from
 * digest.c) all parse: the two implementations agree. */
static void test_fuzz_seeds(void **state) {
    (void)state;
    static const char *const names[] = {"seed-valid-empty", "seed-valid-one", "seed-valid-same-second",
                                        "seed-valid-mixed", "seed-valid-long-strings"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fuzz/digest/%s", RP_SOURCE_DIR, names[i]);
        FILE *fp = fopen(path, "rb");
        if (fp == NULL) fprintf(stderr, "cannot open %s\n", path);
        assert_non_null(fp);
        static unsigned char buf[65536];
        size_t n = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        rp_digest d;
        rp_errbuf eb = {0};
        rp_err rc = rp_digest_parse(buf, n, &d, &eb);
        if (rc != RP_OK) fprintf(stderr, "%s: %s\n", names[i], eb.msg);
        assert_int_equal(rc, RP_OK);
        assert_int_equal(parse_copy(buf, n), RP_OK);
    }
}

/* --- the backfill ---------------------------------------------------------- */

/* Make the store look written before digests: with drop_table the table
 * itself goes (mdb_drop del=1), else it is emptied; meta forgets both
 * digest keys. */
static rp_err predigest_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    void **a = arg;
    rp_store *s = a[0];
    bool drop_table = *(bool *)a[1];
    MDB_dbi dbi;
    int mrc = mdb_dbi_open(txn, "digests", 0, &dbi);
    if (mrc == 0) mrc = mdb_drop(txn, dbi, drop_table ? 1 : 0);
    const char *keys[] = {"digest_ready", "digest_fill"};
    for (int i = 0; i < 2 && mrc == 0; i++) {
        MDB_val k = {strlen(keys[i]), (void *)keys[i]};
        mrc = mdb_del(txn, s->dbi[RP_DB_META], &k, NULL);
        if (mrc == MDB_NOTFOUND) mrc = 0;
    }
    return mrc ? rp_errf(eb, RP_INTERNAL, "%s", mdb_strerror(mrc)) : RP_OK;
}

static void make_customers(fx *f, int n, int events_each) {
    g_rng = 4242;
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%04d", i);
        put_cust(f->s, id);
        for (int j = 0; j < events_each; j++) {
            char evid[16];
            rp_event e = rand_event(id, 86400 * 3, evid);
            rp_errbuf eb = {0};
            assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_OK);
        }
    }
}

static void check_all(fx *f, int n) {
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%04d", i);
        check_one(f, id, true);
    }
}

static void backfill_case(fx *f, bool drop_table) {
    enum { N = 600 }; /* more than one batch of 256 */
    f->cfg.card_max_events = 6;
    fx_reopen(f);
    make_customers(f, N, 3 + (drop_table ? 5 : 0));
    bool dt = drop_table;
    void *a[2] = {f->s, &dt};
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_write(f->s, predigest_fn, a, &eb), RP_OK);
    if (drop_table) {
        /* A read-only open of the old store has no digests: NOT_FOUND. */
        fx_close(f);
        rp_store *ro;
        assert_int_equal(rp_store_open_readonly(&f->cfg, &ro, &eb), RP_OK);
        MDB_txn *t;
        rp_digest d;
        assert_int_equal(rp_store_rbegin(ro, &t, &eb), RP_OK);
        assert_int_equal(rp_store_digest(ro, t, S("b0001"), &d, &eb), RP_NOT_FOUND);
        rp_store_rend(ro, t);
        rp_store_stats st;
        assert_int_equal(rp_store_stats_get(ro, &st, &eb), RP_OK);
        assert_false(st.digests_ready);
        assert_int_equal(st.digest_fill, RP_FILL_IDLE);
        rp_store_close(ro);
        fx_open(f);
    } else {
        fx_reopen(f);
    }
    rp_store_stats st;
    assert_int_equal(wait_fill(f, &st), RP_OK);
    assert_int_equal(st.digest_fill, RP_FILL_DONE);
    assert_true(st.digests_ready);
    assert_int_equal(st.digests, N);
    assert_true(st.digest_fill_visited >= N);
    check_all(f, N);
    /* The next open has nothing to do. */
    fx_reopen(f);
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_int_equal(st.digest_fill, RP_FILL_IDLE);
    assert_true(st.digests_ready);
}

static void test_backfill_emptied(void **state) { backfill_case(*state, false); }
static void test_backfill_dropped(void **state) { backfill_case(*state, true); }

/* Closing while the backfill runs stops it cleanly; the next open resumes
 * from its mark and finishes; appends meanwhile keep their digests right. */
static void test_backfill_interrupted(void **state) {
    fx *f = *state;
    enum { N = 1200 };
    f->cfg.card_max_events = 4;
    fx_reopen(f);
    make_customers(f, N, 2);
    bool dt = false;
    void *a[2] = {f->s, &dt};
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_write(f->s, predigest_fn, a, &eb), RP_OK);
    fx_reopen(f);
    char evid[16];
    rp_event e = rand_event("b1100", 3600, evid);
    assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_OK);
    check_one(f, "b1100", true); /* the append built it from the history */
    fx_reopen(f); /* may stop the backfill half-way */
    rp_store_stats st;
    assert_int_equal(wait_fill(f, &st), RP_OK);
    assert_int_equal(st.digest_fill, RP_FILL_DONE);
    assert_true(st.digests_ready);
    assert_int_equal(st.digests, N);
    check_all(f, N);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_histories_default, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_histories_small, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cap_change, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_parse_valid, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_parse_broken, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_replaced, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_covers, setup, fx_teardown),
        cmocka_unit_test(test_fuzz_seeds),
        cmocka_unit_test_setup_teardown(test_backfill_emptied, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_backfill_dropped, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_backfill_interrupted, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
