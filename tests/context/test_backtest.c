/* test_backtest.c — the backtest and tune engine on stores whose true
 * reasons are planted, so every count is known in advance.
 *
 * Backtest store (18 customers):
 *   A01..A10  a refund issue opened 10 days ago with a follow-up promised 5
 *             days ago; a billing contact 30 days ago (their first contact:
 *             the issue did not exist yet, so no reason), then a refund
 *             contact 4 days ago (the broken promise ranks first; the
 *             baseline says billing).
 *   B01..B05  a login 50 days ago (history, but no signal), a technical
 *             contact 2 days ago (no reason at all) and a contact without a
 *             topic yesterday (skipped, counted).
 *   C01..C03  billing 60 and 20 days ago, then account 3 days ago: habit
 *             ranks billing first (hit, then the confusion billing ->
 *             account); the baseline does the same.
 *
 * Tune store (200 customers): three old billing contacts each, then for the
 * even ones a fresh outage (3 hours before) and a call about it, for the
 * odd ones a stale outage (30 days before) and a billing call. A config
 * that trusts habits over call drivers with a long half-life misses every
 * even final call; tune must find better and say so on the held-out split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "context/backtest.h"
#include "core/config.h"

#define H 3600
#define D 86400
#define NOW ((int64_t)1732352400)

typedef struct fx {
    char dir[64];
    rp_config cfg;
    rp_store *s;
} fx;

static rp_str S(const char *p) { return p ? rp_str_c(p) : (rp_str){NULL, 0}; }

static void put_customer(fx *f, const char *id) {
    rp_customer c;
    memset(&c, 0, sizeof c);
    c.id = S(id);
    c.name = S("Test Person");
    c.language = S("en");
    c.tier = S("standard");
    c.customer_since = NOW - 400 * D;
    c.version = 1;
    rp_errbuf eb = {0};
    rp_put_opts po = {.now = NOW};
    if (rp_store_put_customer(f->s, &c, &po, NULL, &eb) != RP_OK) fail_msg("put: %s", eb.msg);
}

static void put_event(fx *f, const char *id, int64_t ago, const char *kind, const char *topic) {
    rp_event e;
    memset(&e, 0, sizeof e);
    e.customer_id = S(id);
    e.ts = NOW - ago;
    bool contact = strcmp(kind, "contact") == 0;
    e.channel = contact ? RP_CH_PHONE : RP_CH_SYSTEM;
    e.kind = S(kind);
    e.topic = S(topic);
    e.outcome = contact ? RP_OUT_RESOLVED : RP_OUT_NONE;
    rp_errbuf eb = {0};
    if (rp_store_append_event(f->s, &e, NOW, NULL, &eb) != RP_OK) fail_msg("append: %s", eb.msg);
}

static fx *fx_open(void) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/rp_bt_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    rp_config_defaults(&f->cfg);
    snprintf(f->cfg.data_dir, sizeof f->cfg.data_dir, "%s", f->dir);
    f->cfg.durability = RP_DURABLE_ASYNC;
    rp_errbuf eb = {0};
    if (rp_store_open(&f->cfg, &f->s, &eb) != RP_OK) fail_msg("open: %s", eb.msg);
    return f;
}

static int fx_teardown(void **state) {
    fx *f = *state;
    rp_store_close(f->s);
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *de;
        char path[512];
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int bt_setup(void **state) {
    fx *f = fx_open();
    char id[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(id, sizeof id, "A%02d", i);
        put_customer(f, id);
        put_event(f, id, 30 * D, "contact", "billing");
        put_event(f, id, 4 * D, "contact", "refund");
        rp_issue is;
        memset(&is, 0, sizeof is);
        is.customer_id = S(id);
        is.issue_id = S("I-1");
        is.topic = S("refund");
        is.status = RP_ST_OPEN;
        is.severity = RP_SEV_MEDIUM;
        is.opened_at = NOW - 10 * D;
        is.updated_at = NOW - 10 * D;
        is.follow_up_due = NOW - 5 * D;
        rp_errbuf eb = {0};
        if (rp_store_put_issue(f->s, &is, NOW, &eb) != RP_OK) fail_msg("issue: %s", eb.msg);
    }
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof id, "B%02d", i);
        put_customer(f, id);
        put_event(f, id, 50 * D, "login", "account");
        put_event(f, id, 2 * D, "contact", "technical");
        put_event(f, id, 1 * D, "contact", NULL);
    }
    for (int i = 1; i <= 3; i++) {
        snprintf(id, sizeof id, "C%02d", i);
        put_customer(f, id);
        put_event(f, id, 60 * D, "contact", "billing");
        put_event(f, id, 20 * D, "contact", "Billing"); /* case-insensitive */
        put_event(f, id, 3 * D, "contact", "account");
    }
    *state = f;
    return 0;
}

static void expect_tally(const rp_bt_tally *t, uint64_t n, uint64_t top1, uint64_t top3, uint64_t covered) {
    assert_int_equal(t->n, n);
    assert_int_equal(t->top1, top1);
    assert_int_equal(t->top3, top3);
    assert_int_equal(t->covered, covered);
}

static void test_backtest_counts(void **state) {
    fx *f = *state;
    rp_bt_opts o;
    rp_bt_opts_defaults(&o);
    rp_bt_result r;
    rp_errbuf eb = {0};
    assert_int_equal(rp_backtest(f->s, &f->cfg, &o, &r, &eb), RP_OK);
    assert_int_equal(r.customers, 18);
    assert_int_equal(r.contacts, 39);
    assert_int_equal(r.sampled, 39);
    assert_int_equal(r.no_topic, 5);
    expect_tally(&r.first_card, 13, 0, 0, 0);
    expect_tally(&r.first_base, 13, 0, 0, 0);
    expect_tally(&r.card, 21, 13, 13, 16);
    expect_tally(&r.base, 21, 3, 3, 16);
    /* By topic: count desc, then name. */
    assert_int_equal(r.ntopics, 4);
    assert_string_equal(r.by_topic[0].name, "refund");
    expect_tally(&r.by_topic[0].card, 10, 10, 10, 10);
    expect_tally(&r.by_topic[0].base, 10, 0, 0, 10);
    assert_string_equal(r.by_topic[1].name, "technical");
    expect_tally(&r.by_topic[1].card, 5, 0, 0, 0);
    assert_string_equal(r.by_topic[2].name, "account");
    expect_tally(&r.by_topic[2].card, 3, 0, 0, 3);
    assert_string_equal(r.by_topic[3].name, "billing");
    expect_tally(&r.by_topic[3].card, 3, 3, 3, 3);
    expect_tally(&r.by_topic[3].base, 3, 3, 3, 3);
    /* By the first reason's signal. */
    expect_tally(&r.by_signal[RP_SIG_BROKEN_PROMISE].card, 10, 10, 10, 10);
    expect_tally(&r.by_signal[RP_SIG_HABIT].card, 6, 3, 3, 6);
    expect_tally(&r.by_signal[RP_SIG__COUNT].card, 5, 0, 0, 0);
    assert_string_equal(r.by_signal[RP_SIG__COUNT].name, "none");
    expect_tally(&r.by_signal[RP_SIG_CALL_DRIVER].card, 0, 0, 0, 0);
    /* The one confusion. */
    assert_int_equal(r.nconfusions, 1);
    assert_string_equal(r.confusions[0].predicted, "billing");
    assert_string_equal(r.confusions[0].actual, "account");
    assert_int_equal(r.confusions[0].n, 3);
    rp_bt_result_free(&r);
}

/* Same result for 1, 2 and 3 threads. */
static void test_backtest_threads(void **state) {
    fx *f = *state;
    rp_bt_result r[3];
    for (unsigned t = 0; t < 3; t++) {
        rp_bt_opts o;
        rp_bt_opts_defaults(&o);
        o.threads = t + 1;
        rp_errbuf eb = {0};
        assert_int_equal(rp_backtest(f->s, &f->cfg, &o, &r[t], &eb), RP_OK);
    }
    for (unsigned t = 1; t < 3; t++) {
        assert_memory_equal(&r[0].card, &r[t].card, sizeof r[0].card);
        assert_memory_equal(&r[0].base, &r[t].base, sizeof r[0].base);
        assert_memory_equal(r[0].by_signal, r[t].by_signal, sizeof r[0].by_signal);
        assert_int_equal(r[0].ntopics, r[t].ntopics);
        assert_memory_equal(r[0].by_topic, r[t].by_topic, r[0].ntopics * sizeof *r[0].by_topic);
        assert_int_equal(r[0].nconfusions, r[t].nconfusions);
    }
    for (unsigned t = 0; t < 3; t++) rp_bt_result_free(&r[t]);
}

/* A window and a seeded sample. */
static void test_backtest_window_sample(void **state) {
    fx *f = *state;
    rp_bt_opts o;
    rp_bt_opts_defaults(&o);
    o.since = NOW - 5 * D;
    rp_bt_result r;
    rp_errbuf eb = {0};
    assert_int_equal(rp_backtest(f->s, &f->cfg, &o, &r, &eb), RP_OK);
    assert_int_equal(r.contacts, 23); /* A 10, B 10, C 3 */
    assert_int_equal(r.no_topic, 5);
    expect_tally(&r.card, 18, 10, 10, 13);
    rp_bt_result_free(&r);

    rp_bt_opts_defaults(&o);
    o.sample = 7;
    o.seed = 42;
    rp_bt_result a, b;
    assert_int_equal(rp_backtest(f->s, &f->cfg, &o, &a, &eb), RP_OK);
    assert_int_equal(rp_backtest(f->s, &f->cfg, &o, &b, &eb), RP_OK);
    assert_int_equal(a.contacts, 39);
    assert_int_equal(a.sampled, 7);
    assert_int_equal(a.no_topic + a.card.n + a.first_card.n, 7);
    assert_memory_equal(&a.card, &b.card, sizeof a.card);
    rp_bt_result_free(&a);
    rp_bt_result_free(&b);
}

/* --- tune ------------------------------------------------------------------------- */

static int tune_setup(void **state) {
    fx *f = fx_open();
    char id[16];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "T%03d", i);
        put_customer(f, id);
        put_event(f, id, 200 * D, "contact", "billing");
        put_event(f, id, 150 * D, "contact", "billing");
        put_event(f, id, 100 * D, "contact", "billing");
        if (i % 2 == 0) {
            put_event(f, id, 3 * H, "outage", "network");
            put_event(f, id, 0, "contact", "network");
        } else {
            put_event(f, id, 30 * D, "outage", "network");
            put_event(f, id, 0, "contact", "billing");
        }
    }
    *state = f;
    return 0;
}

static void test_tune_recovers(void **state) {
    fx *f = *state;
    rp_config bad = f->cfg;
    bad.w_habitual = 1.0;
    bad.w_call_driver = 0.05;
    bad.hl_call_driver_h = 2000;
    rp_tune_opts o;
    rp_tune_opts_defaults(&o);
    o.seed = 3;
    o.trials = 20;
    rp_tune_result t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_tune(f->s, &bad, &o, &t, &eb), RP_OK);
    assert_int_equal(t.train_customers + t.test_customers, 200);
    assert_true(t.test_customers > 30 && t.train_customers > 100);
    /* The bad start misses every even customer's final call. */
    assert_true(t.test_current.top1 < t.test_current.n);
    assert_true(t.improves);
    assert_true(t.test_best.top1 > t.test_current.top1);
    assert_int_equal(t.test_best.top1, t.test_best.n); /* every planted reason found */
    /* A fresh outage now outweighs the habit, a 30-day-old one does not. */
    double habit = t.best.w_habitual * (pow(0.5, 4800 / t.best.hl_habitual_h) +
                                        pow(0.5, 3600 / t.best.hl_habitual_h) +
                                        pow(0.5, 2400 / t.best.hl_habitual_h));
    assert_true(t.best.w_call_driver * pow(0.5, 3.0 / t.best.hl_call_driver_h) > habit ||
                t.best.w_call_driver * pow(0.5, 3.0 / t.best.hl_call_driver_h) > t.best.w_habitual);
    assert_true(t.best.w_call_driver * pow(0.5, 720.0 / t.best.hl_call_driver_h) < t.best.w_habitual);
    /* Deterministic for a seed. */
    rp_tune_result u;
    assert_int_equal(rp_tune(f->s, &bad, &o, &u, &eb), RP_OK);
    assert_memory_equal(&t.test_best, &u.test_best, sizeof t.test_best);
    for (unsigned i = 0; i < RP_TUNE_NPARAM; i++)
        assert_true(rp_tune_param_get(&t.best, i) == rp_tune_param_get(&u.best, i));
}

/* Starting from settings that are already right, nothing better is recommended. */
static void test_tune_keeps_good(void **state) {
    fx *f = *state;
    rp_tune_opts o;
    rp_tune_opts_defaults(&o);
    o.trials = 5;
    rp_tune_result t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_tune(f->s, &f->cfg, &o, &t, &eb), RP_OK);
    assert_int_equal(t.test_current.top1, t.test_current.n);
    assert_false(t.improves);
    for (unsigned i = 0; i < RP_TUNE_NPARAM; i++)
        assert_true(rp_tune_param_get(&t.best, i) == rp_tune_param_get(&f->cfg, i));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backtest_counts, bt_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_backtest_threads, bt_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_backtest_window_sample, bt_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tune_recovers, tune_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tune_keeps_good, tune_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
