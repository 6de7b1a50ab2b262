/* test_digest_diff.c — a card from the digest is the reference card, byte
 * for byte.
 *
 * The differential test of issue 14 (proto/CARD.md "Digest"). Each world is
 * a fresh store loaded with the demo data set (random seed) through the
 * api's import, then changed the ways production changes it: events
 * appended out of order and at equal timestamps, retried appends (the same
 * event_id: a duplicate), events dated in the future, issues put (resolved,
 * promised, re-opened), merges, forgets, and — in the small-settings world —
 * retention trims by count and by age and a card_max_events smaller than
 * most histories. Then, for every customer and for many `at` values, the
 * context card and the route answer are computed twice: by a scratch that
 * may use the digest and by one set to the reference (the full history
 * computation), and the packed bytes must be identical.
 *
 * A test that compares two fallbacks proves nothing, so wherever `at` is at
 * or after a customer's newest event the fast scratch must report that it
 * answered from the digest (every customer here was written after digests
 * exist, so every one has one).
 *
 * There is no field where equality is impossible by construction: the
 * digest holds the very inputs the reference reads (proto/STORAGE.md), so
 * every number is computed by the same code from the same values in the
 * same order, and the assertion is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/demo.h"
#include "context/context.h"
#include "demo_load.h"
#include "store/store.h"

#define NOW 1790000000
#define DAY 86400

typedef struct world {
    rp_config cfg;
    char dir[64];
    rp_store *s;
    rp_api *api;
    uint64_t customers;
    uint64_t rng;
    rp_event last;       /* the last appended event, for a retry */
    char last_id[32], last_cid[16], last_eid[32];
    bool have_last;
    uint64_t compared, from_digest, duplicates, merges, forgets, trims_seen;
} world;

static uint64_t rnd(world *w) {
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

static const char *pick(world *w, const char *const *pool, size_t n) { return pool[rnd(w) % n]; }
#define PICK(w, pool) pick(w, pool, sizeof pool / sizeof pool[0])

static void world_open(world *w, uint64_t seed, uint32_t card_max, uint32_t recent, uint32_t ret_events,
                       uint32_t ret_days) {
    memset(w, 0, sizeof *w);
    w->rng = 0x9E3779B97F4A7C15ull ^ (seed * 0x100000001B3ull);
    snprintf(w->dir, sizeof w->dir, "/tmp/rp-digest-diff-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    rp_config_defaults(&w->cfg);
    snprintf(w->cfg.data_dir, sizeof w->cfg.data_dir, "%s", w->dir);
    snprintf(w->cfg.audit_log, sizeof w->cfg.audit_log, "/dev/null");
    w->cfg.durability = RP_DURABLE_ASYNC;
    w->cfg.card_max_events = card_max;
    w->cfg.card_recent_events = recent;
    w->cfg.retention_max_events = ret_events;
    w->cfg.retention_max_age_days = ret_days;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_open(&w->cfg, &w->s, &eb), RP_OK);
    assert_int_equal(rp_api_create(w->s, &w->api, &eb), RP_OK);
}

static void world_close(world *w) {
    rp_api_destroy(w->api);
    rp_store_close(w->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", w->dir);
    assert_int_equal(system(cmd), 0);
}

/* noinline: see test_demo.c (gcc 12 -O3 and open_memstream). */
__attribute__((noinline)) static void load_demo(world *w, uint64_t seed, uint64_t customers,
                                                uint32_t ev_min, uint32_t ev_max) {
    rp_demo_opts o;
    rp_demo_defaults(&o);
    o.customers = customers;
    o.seed = seed;
    o.now = NOW;
    o.events_min = ev_min;
    o.events_max = ev_max;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    rp_errbuf eb = {0};
    assert_int_equal(rp_demo_write(f, &o, &eb), RP_OK);
    fclose(f);
    assert_int_equal(rp_dl_load(w->api, &w->cfg, text), RP_OK);
    free(text);
    w->customers = customers;
}

static void random_cid(world *w, char out[16]) { rp_demo_customer_id(1 + rnd(w) % w->customers, out); }

static const char *const kinds[] = {"contact", "contact", "contact", "contact", "payment_failed",
                                    "login", "delivery_delayed", "outage", "page_view", "Recall_notice"};
static const char *const topics[] = {"billing", "Billing", "delivery", "outage", "", "plan change",
                                     "refund", "BILLING"};
static const char *const agents[] = {"", "", "ana", "bo", "Chen"};
/* Long and multi-byte, so evidence excerpts cut inside a UTF-8 sequence. */
static const char *const summaries[] = {
    "",
    "Card declined twice",
    "Cliente muy molesto: el pedido llegó tarde y la factura está mal — pidió hablar con un supervisor "
    "y que lo llamen mañana a las diez; también preguntó por el reembolso del mes pasado, sin respuesta",
    "ÄÖÜ äöü ß — 東京 配送 遅延 ✓✓✓ repeated repeated repeated repeated repeated repeated repeated "
    "repeated repeated repeated repeated repeated repeated repeated"};

/* Append one random event of a random customer, at a random time in the
 * last 400 days (some at exactly the same second as the previous one, some
 * in the future when `future`). */
static void append_random(world *w, uint64_t k, bool future) {
    char cid[16], eid[32], iid[8];
    random_cid(w, cid);
    rp_event e;
    memset(&e, 0, sizeof e);
    e.customer_id = rp_str_c(cid);
    uint64_t r = rnd(w);
    if (future) e.ts = NOW + 1 + (int64_t)(r % (10 * DAY));
    else if (r % 7 == 0 && w->have_last) e.ts = w->last.ts; /* a tie in ts: seq decides */
    else if (r % 3 == 0) e.ts = NOW - (int64_t)(rnd(w) % (3 * DAY));
    else e.ts = NOW - (int64_t)(rnd(w) % (400 * DAY));
    e.kind = rp_str_c(PICK(w, kinds));
    e.topic = rp_str_c(PICK(w, topics));
    e.agent = rp_str_c(PICK(w, agents));
    e.summary = rp_str_c(PICK(w, summaries));
    e.channel = (rp_channel)(1 + rnd(w) % (RP_CH__COUNT - 1)); /* RP_CH_NONE is refused */
    e.outcome = (rp_outcome)(rnd(w) % RP_OUT__COUNT);
    if (rnd(w) % 2) {
        e.has_sentiment = true;
        e.sentiment = (double)((int64_t)(rnd(w) % 2001) - 1000) / 1000.0;
    }
    if (rnd(w) % 3 == 0) {
        snprintf(iid, sizeof iid, "I-%u", (unsigned)(rnd(w) % 4));
        e.issue_id = rp_str_c(iid);
    }
    if (rnd(w) % 3 == 0) {
        snprintf(eid, sizeof eid, "ev-%llu", (unsigned long long)k);
        e.event_id = rp_str_c(eid);
    }
    rp_errbuf eb = {0};
    rp_err rc = rp_store_append_event(w->s, &e, NOW, NULL, &eb);
    if (rc != RP_OK && rc != RP_NOT_FOUND) /* the customer may be forgotten */
        fail_msg("append: %s %s", rp_err_code(rc), rp_errbuf_msg(&eb));
    if (rc != RP_OK || e.event_id.n == 0) return;
    /* keep it (with copies of its strings) for a retry */
    w->last = e;
    snprintf(w->last_cid, sizeof w->last_cid, "%s", cid);
    snprintf(w->last_eid, sizeof w->last_eid, "%s", eid);
    snprintf(w->last_id, sizeof w->last_id, "%s", e.issue_id.n ? iid : "");
    w->last.customer_id = rp_str_c(w->last_cid);
    w->last.event_id = rp_str_c(w->last_eid);
    w->last.issue_id = rp_str_c(w->last_id);
    w->have_last = true;
}

/* A CRM retrying after a timeout: the same event again. */
static void retry_last(world *w) {
    if (!w->have_last) return;
    rp_errbuf eb = {0};
    rp_cursor at;
    rp_err rc = rp_store_append_event(w->s, &w->last, NOW, &at, &eb);
    assert_true(rc == RP_OK || rc == RP_NOT_FOUND);
    if (rc == RP_OK) w->duplicates++;
}

static void put_random_issue(world *w) {
    char cid[16], iid[8];
    random_cid(w, cid);
    snprintf(iid, sizeof iid, "I-%u", (unsigned)(rnd(w) % 4));
    rp_issue i;
    memset(&i, 0, sizeof i);
    i.customer_id = rp_str_c(cid);
    i.issue_id = rp_str_c(iid);
    i.topic = rp_str_c(PICK(w, topics));
    i.summary = rp_str_c(PICK(w, summaries));
    i.status = (rp_status)(rnd(w) % RP_ST__COUNT);
    i.severity = (rp_severity)(rnd(w) % RP_SEV__COUNT);
    i.opened_at = NOW - (int64_t)(rnd(w) % (60 * DAY));
    i.updated_at = i.opened_at + (int64_t)(rnd(w) % (NOW - i.opened_at + 1));
    uint64_t f = rnd(w) % 3;
    i.follow_up_due = f == 0 ? 0 : f == 1 ? NOW - (int64_t)(rnd(w) % (9 * DAY)) : NOW + 3600;
    rp_errbuf eb = {0};
    rp_err rc = rp_store_put_issue(w->s, &i, NOW, &eb);
    assert_true(rc == RP_OK || rc == RP_NOT_FOUND);
}

static void merge_random(world *w) {
    char a[16], b[16];
    random_cid(w, a);
    random_cid(w, b);
    rp_errbuf eb = {0};
    rp_err rc = rp_store_merge(w->s, rp_str_c(a), rp_str_c(b), NOW, NULL, &eb);
    assert_true(rc == RP_OK || rc == RP_NOT_FOUND || rc == RP_CONFLICT || rc == RP_TOO_LARGE);
    if (rc == RP_OK) w->merges++;
}

static void forget_random(world *w) {
    char a[16];
    random_cid(w, a);
    rp_errbuf eb = {0};
    rp_err rc = rp_store_forget(w->s, rp_str_c(a), &eb);
    assert_true(rc == RP_OK || rc == RP_NOT_FOUND);
    if (rc == RP_OK) w->forgets++;
}

static void mutate(world *w, uint32_t rounds) {
    for (uint32_t k = 0; k < rounds; k++) {
        uint64_t r = rnd(w) % 100;
        if (r < 55) append_random(w, k, false);
        else if (r < 62) append_random(w, k, true);
        else if (r < 72) retry_last(w);
        else if (r < 88) put_random_issue(w);
        else if (r < 97) merge_random(w);
        else forget_random(w);
    }
}

/* The newest event's ts of customer id (-1: none or no such customer). */
static int64_t newest_ts(world *w, const char *id) {
    MDB_txn *txn;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(w->s, &txn, &eb), RP_OK);
    rp_event ev;
    uint32_t n = 0;
    bool more = false;
    rp_cursor next;
    rp_err rc = rp_store_history(w->s, txn, rp_str_c(id), 0, NULL, 1, &ev, &n, &more, &next, &eb);
    int64_t ts = rc == RP_OK && n == 1 ? ev.ts : -1;
    rp_store_rend(w->s, txn);
    return ts;
}

/* One request both ways; the replies must be the same bytes. */
static void compare_one(world *w, rp_context_scratch *fast, rp_context_scratch *ref, const char *id,
                        int64_t at, bool route, bool must_use_digest) {
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    msgpack_packer pa, pb;
    msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
    msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
    rp_errbuf ea = {0}, ebr = {0};
    rp_str key = rp_str_c(id);
    rp_err ra, rb;
    if (route) {
        ra = rp_context_route(w->s, RP_CTX_KEY_ID, key, at, fast, &pa, &ea);
        rb = rp_context_route(w->s, RP_CTX_KEY_ID, key, at, ref, &pb, &ebr);
    } else {
        ra = rp_context_card(w->s, RP_CTX_KEY_ID, key, at, fast, &pa, NULL, &ea);
        rb = rp_context_card(w->s, RP_CTX_KEY_ID, key, at, ref, &pb, NULL, &ebr);
    }
    assert_int_equal(ra, rb);
    assert_false(rp_context_scratch_used_digest(ref));
    if (ra == RP_OK) {
        if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
            fail_msg("%s of %s at %lld: digest answer (%zu bytes) differs from the reference (%zu bytes)",
                     route ? "route" : "card", id, (long long)at, a.size, b.size);
        if (must_use_digest && !rp_context_scratch_used_digest(fast))
            fail_msg("%s of %s at %lld was not answered from the digest", route ? "route" : "card", id,
                     (long long)at);
        w->compared++;
        if (rp_context_scratch_used_digest(fast)) w->from_digest++;
    }
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

static void compare_all(world *w) {
    static const int64_t ats[] = {NOW - DAY, NOW - 1, NOW, NOW + 59, NOW + 3600, NOW + 3 * DAY,
                                  NOW + 8 * DAY, NOW + 11 * DAY, NOW + 31 * DAY, NOW + 400 * DAY,
                                  NOW + 3000 * DAY};
    rp_context_scratch *fast, *ref;
    rp_errbuf eb = {0};
    assert_int_equal(rp_context_scratch_new(&fast, &eb), RP_OK);
    assert_int_equal(rp_context_scratch_new(&ref, &eb), RP_OK);
    rp_context_scratch_set_reference(ref, true);
    for (uint64_t i = 1; i <= w->customers; i++) {
        char id[16];
        rp_demo_customer_id(i, id);
        int64_t newest = newest_ts(w, id);
        for (size_t k = 0; k < sizeof ats / sizeof ats[0]; k++) {
            bool must = newest >= 0 && ats[k] >= newest;
            compare_one(w, fast, ref, id, ats[k], false, must);
            compare_one(w, fast, ref, id, ats[k], true, must);
        }
    }
    rp_context_scratch_free(fast);
    rp_context_scratch_free(ref);
}

static void run_world(uint64_t seed, uint32_t card_max, uint32_t recent, uint32_t ret_events,
                      uint32_t ret_days, uint64_t customers, uint32_t ev_min, uint32_t ev_max,
                      uint32_t rounds) {
    world w;
    world_open(&w, seed, card_max, recent, ret_events, ret_days);
    load_demo(&w, seed, customers, ev_min, ev_max);
    compare_all(&w); /* straight after the import */
    mutate(&w, rounds);
    compare_all(&w); /* after every kind of change */
    print_message("seed %llu: %llu answers compared, %llu from the digest; %llu retries, %llu merges, "
                  "%llu forgets\n",
                  (unsigned long long)seed, (unsigned long long)w.compared,
                  (unsigned long long)w.from_digest, (unsigned long long)w.duplicates,
                  (unsigned long long)w.merges, (unsigned long long)w.forgets);
    assert_true(w.from_digest > w.compared / 2);
    assert_true(w.merges > 0 && w.forgets > 0 && w.duplicates > 0);
    world_close(&w);
}

/* Default settings: 200-event cards over histories of 20..260 events. */
static void test_default_settings(void **state) {
    (void)state;
    for (uint64_t seed = 11; seed < 15; seed++) run_world(seed, 200, 5, 1000, 730, 80, 20, 260, 2000);
}

/* Small settings: cards read 20 events, retention keeps 40 events and
 * 120 days, so appends trim by count and by age inside what the card
 * reads, and most histories are longer than the card. */
static void test_small_settings(void **state) {
    (void)state;
    for (uint64_t seed = 21; seed < 25; seed++) run_world(seed, 20, 8, 40, 120, 60, 5, 90, 2000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_settings),
        cmocka_unit_test(test_small_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
