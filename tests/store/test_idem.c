/* test_idem.c — the idempotency key table (store/idem.h): store and repeat,
 * conflict, a failed write leaves no key, expiry, the pruning bound per
 * write, eviction of the oldest when full, and key validation.
 *
 * Every write runs through rp_store_write (the real writer); time is the
 * `now` each call is given, so expiry needs no clock.
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

#include "core/config.h"
#include "store/idem.h"
#include "store/store.h"
#include "store/fixture.h"

static int setup(void **state) {
    fx *f = fx_new("/tmp/rp_idem_XXXXXX", NULL);
    if (f == NULL) return -1;
    f->cfg.idempotency_ttl = 10;
    return fx_open_first(f, state);
}

/* A hash that differs per tag. */
static void hash_of(uint8_t h[RP_IDEM_HASH], int tag) {
    memset(h, 0, RP_IDEM_HASH);
    h[0] = (uint8_t)tag;
    h[15] = 0xA5;
}

/* --- one keyed write, as the api runs it ------------------------------------ */

typedef struct kw {
    rp_store *s;
    const char *key;
    int tag;          /* hash tag */
    int64_t now;
    const char *result;
    rp_err fail_after; /* != RP_OK: the "write" fails after recording */
    bool replayed;    /* out */
    char got[64];     /* out: the result answered */
} kw;

static rp_err kw_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    kw *w = arg;
    uint8_t h[RP_IDEM_HASH];
    hash_of(h, w->tag);
    rp_idem_hit hit;
    rp_err rc = rp_store_idem_get(w->s, txn, S(w->key), h, w->now, &hit, eb);
    if (rc != RP_OK) return rc;
    w->replayed = hit.found;
    if (hit.found) {
        snprintf(w->got, sizeof w->got, "%.*s", (int)hit.result.n, hit.result.p);
        return RP_OK;
    }
    rc = rp_store_idem_put(w->s, txn, S(w->key), h, w->now, w->result, strlen(w->result), eb);
    if (rc != RP_OK) return rc;
    if (w->fail_after != RP_OK) return rp_errf(eb, w->fail_after, "the write failed");
    snprintf(w->got, sizeof w->got, "%s", w->result);
    return RP_OK;
}

/* Run one keyed write; returns its code. */
static rp_err keyed(fx *f, const char *key, int tag, int64_t now, const char *result, kw *out) {
    kw w = {.s = f->s, .key = key, .tag = tag, .now = now, .result = result};
    rp_errbuf eb = {0};
    rp_err rc = rp_store_write(f->s, kw_fn, &w, &eb);
    if (out) *out = w;
    if (rc == RP_CONFLICT) assert_non_null(strstr(eb.msg, "different request"));
    return rc;
}

/* Look key up in a read transaction: 1 found (result into buf), 0 absent. */
static int peek(fx *f, const char *key, int tag, int64_t now, char *buf, size_t cap) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    uint8_t h[RP_IDEM_HASH];
    hash_of(h, tag);
    rp_idem_hit hit;
    rp_err rc = rp_store_idem_get(f->s, t, S(key), h, now, &hit, &eb);
    if (rc == RP_OK && hit.found && buf) snprintf(buf, cap, "%.*s", (int)hit.result.n, hit.result.p);
    rp_store_rend(f->s, t);
    assert_int_equal(rc, RP_OK);
    return hit.found ? 1 : 0;
}

static uint64_t count(fx *f) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    uint64_t n = 0;
    assert_int_equal(rp_store_idem_count(f->s, t, &n, &eb), RP_OK);
    rp_store_rend(f->s, t);
    return n;
}

/* --- tests ----------------------------------------------------------------- */

static void test_store_and_repeat(void **state) {
    fx *f = *state;
    kw w;
    assert_int_equal(keyed(f, "K-1", 1, NOW, "first", &w), RP_OK);
    assert_false(w.replayed);
    assert_string_equal(w.got, "first");
    /* the repeat answers the first result, whatever it would answer now */
    assert_int_equal(keyed(f, "K-1", 1, NOW + 5, "second", &w), RP_OK);
    assert_true(w.replayed);
    assert_string_equal(w.got, "first");
    assert_int_equal(count(f), 1);
    /* durable: after a close and open the key still answers */
    fx_close(f);
    fx_open(f);
    char buf[64];
    assert_int_equal(peek(f, "K-1", 1, NOW + 9, buf, sizeof buf), 1);
    assert_string_equal(buf, "first");
}

static void test_conflict(void **state) {
    fx *f = *state;
    assert_int_equal(keyed(f, "K-2", 1, NOW, "first", NULL), RP_OK);
    assert_int_equal(keyed(f, "K-2", 2, NOW + 1, "other", NULL), RP_CONFLICT);
    char buf[64];
    assert_int_equal(peek(f, "K-2", 1, NOW + 1, buf, sizeof buf), 1);
    assert_string_equal(buf, "first");
    assert_int_equal(count(f), 1);
}

/* A write that fails after recording its key rolls the key back with it. */
static void test_failed_write_keeps_no_key(void **state) {
    fx *f = *state;
    kw w = {.s = f->s, .key = "K-3", .tag = 1, .now = NOW, .result = "x", .fail_after = RP_NOT_FOUND};
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_write(f->s, kw_fn, &w, &eb), RP_NOT_FOUND);
    assert_int_equal(peek(f, "K-3", 1, NOW, NULL, 0), 0);
    assert_int_equal(count(f), 0);
    /* the fixed retry goes through, even with other params */
    assert_int_equal(keyed(f, "K-3", 2, NOW + 1, "fixed", &w), RP_OK);
    assert_false(w.replayed);
}

static void test_expiry(void **state) {
    fx *f = *state; /* ttl 10 */
    assert_int_equal(keyed(f, "K-4", 1, NOW, "first", NULL), RP_OK);
    assert_int_equal(peek(f, "K-4", 1, NOW + 9, NULL, 0), 1);
    assert_int_equal(peek(f, "K-4", 1, NOW + 10, NULL, 0), 0); /* expires = now + ttl */
    /* an expired key is free again, for any request; it is replaced */
    kw w;
    assert_int_equal(keyed(f, "K-4", 2, NOW + 10, "again", &w), RP_OK);
    assert_false(w.replayed);
    assert_int_equal(keyed(f, "K-4", 2, NOW + 11, "ignored", &w), RP_OK);
    assert_true(w.replayed);
    assert_string_equal(w.got, "again");
    assert_int_equal(count(f), 1);
    /* its old expiry entry went with it: pruning later finds nothing stale */
    assert_int_equal(keyed(f, "K-5", 1, NOW + 100, "late", NULL), RP_OK);
    assert_int_equal(count(f), 1);
}

/* Each put prunes at most RP_IDEM_PRUNE_MAX expired keys, oldest first. */
static void test_pruning_bound(void **state) {
    fx *f = *state;
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "old-%02d", i);
        assert_int_equal(keyed(f, key, 1, NOW + i / 10, "r", NULL), RP_OK);
    }
    assert_int_equal(count(f), 40);
    assert_int_equal(RP_IDEM_PRUNE_MAX, 16);
    assert_int_equal(keyed(f, "new-1", 1, NOW + 100, "r", NULL), RP_OK);
    assert_int_equal(count(f), 40 - 16 + 1);
    /* oldest first: the first ten (NOW) and six of NOW+1 are gone */
    assert_int_equal(peek(f, "old-15", 1, NOW, NULL, 0), 0);
    assert_int_equal(peek(f, "old-16", 1, NOW, NULL, 0), 1);
    assert_int_equal(keyed(f, "new-2", 1, NOW + 100, "r", NULL), RP_OK);
    assert_int_equal(count(f), 24 - 16 + 1 + 1);
    assert_int_equal(keyed(f, "new-3", 1, NOW + 100, "r", NULL), RP_OK);
    assert_int_equal(count(f), 3); /* the 8 left expired went, the new ones stay */
    assert_int_equal(peek(f, "new-1", 1, NOW + 100, NULL, 0), 1);
}

/* Full with nothing expired: the key that expires first is evicted. */
static void test_eviction(void **state) {
    fx *f = *state;
    f->cfg.idempotency_max_keys = 3;
    f->cfg.idempotency_ttl = 3600;
    fx_close(f);
    fx_open(f);
    assert_int_equal(keyed(f, "E-1", 1, NOW, "1", NULL), RP_OK);
    assert_int_equal(keyed(f, "E-2", 1, NOW + 1, "2", NULL), RP_OK);
    assert_int_equal(keyed(f, "E-3", 1, NOW + 2, "3", NULL), RP_OK);
    assert_int_equal(count(f), 3);
    assert_int_equal(keyed(f, "E-4", 1, NOW + 3, "4", NULL), RP_OK);
    assert_int_equal(count(f), 3);
    assert_int_equal(peek(f, "E-1", 1, NOW + 3, NULL, 0), 0);
    assert_int_equal(peek(f, "E-2", 1, NOW + 3, NULL, 0), 1);
    assert_int_equal(peek(f, "E-4", 1, NOW + 3, NULL, 0), 1);
    /* a repeat of a live key is answered, not counted again */
    kw w;
    assert_int_equal(keyed(f, "E-2", 1, NOW + 4, "x", &w), RP_OK);
    assert_true(w.replayed);
    assert_int_equal(count(f), 3);
    /* a lowered bound shrinks the table, RP_IDEM_PRUNE_MAX per put */
    f->cfg.idempotency_max_keys = 1;
    fx_close(f);
    fx_open(f);
    assert_int_equal(keyed(f, "E-5", 1, NOW + 5, "5", NULL), RP_OK);
    assert_int_equal(count(f), 1);
    assert_int_equal(peek(f, "E-5", 1, NOW + 5, NULL, 0), 1);
}

static void test_key_valid(void **state) {
    (void)state;
    char k[RP_IDEM_KEY_MAX + 2];
    memset(k, 'a', sizeof k);
    assert_true(rp_idem_key_valid((rp_str){k, RP_IDEM_KEY_MAX}));
    assert_false(rp_idem_key_valid((rp_str){k, RP_IDEM_KEY_MAX + 1}));
    assert_false(rp_idem_key_valid(S("")));
    assert_true(rp_idem_key_valid(S("550e8400-e29b-41d4-a716-446655440000")));
    assert_true(rp_idem_key_valid(S("!~")));
    assert_false(rp_idem_key_valid(S("a b")));
    assert_false(rp_idem_key_valid(S("tab\there")));
    assert_false(rp_idem_key_valid(S("caf\xc3\xa9")));
    assert_false(rp_idem_key_valid((rp_str){"a\0b", 3}));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_and_repeat, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_conflict, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_keeps_no_key, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pruning_bound, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup, fx_teardown),
        cmocka_unit_test(test_key_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
