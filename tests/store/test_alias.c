/* test_alias.c — rp_store_wput_alias (the alias writer import uses to
 * restore merged ids) and rp_store_aliases_of (the reader export uses).
 *
 * Every test gets a fresh mkdtemp directory and a store on it. The cases:
 * a new alias resolves and is listed; writing it again changes nothing;
 * an alias id that is a live customer, or already an alias of another
 * customer, is CONFLICT naming it; a missing survivor is NOT_FOUND with
 * the "import the customer first" sentence; a survivor that is itself an
 * alias is resolved, so the stored alias names the canonical customer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "model/record.h"
#include "store/store.h"
#include "store/fixture.h"

static int setup(void **state) { return fx_setup(state, "/tmp/rp_alias_XXXXXX"); }

static void put_ok(rp_store *s, const char *id, const char *phone) {
    rp_customer c;
    memset(&c, 0, sizeof c);
    c.id = S(id);
    if (phone) c.phones[c.nphones++] = S(phone);
    rp_errbuf eb = {0};
    rp_put_opts o = {.now = NOW};
    rp_err rc = rp_store_put_customer(s, &c, &o, NULL, &eb);
    if (rc != RP_OK) fprintf(stderr, "put %s: %s\n", id, eb.msg);
    assert_int_equal(rc, RP_OK);
}

static rp_err put_alias(rp_store *s, const char *alias, const char *survivor, rp_errbuf *eb) {
    memset(eb, 0, sizeof *eb);
    return rp_store_put_alias(s, S(alias), S(survivor), eb);
}

/* The canonical id id resolves to, into out ("" when not found). */
static void resolve(rp_store *s, const char *id, char out[RP_ID_MAX + 1]) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    rp_str c;
    out[0] = '\0';
    if (rp_store_resolve(s, t, S(id), &c, &eb) == RP_OK) {
        memcpy(out, c.p, c.n);
        out[c.n] = '\0';
    }
    rp_store_rend(s, t);
}

typedef struct list {
    char ids[8][RP_ID_MAX + 1];
    int n;
} list;

static bool list_add(rp_str alias, void *arg) {
    list *l = arg;
    assert_true(l->n < 8);
    memcpy(l->ids[l->n], alias.p, alias.n);
    l->ids[l->n][alias.n] = '\0';
    l->n++;
    return true;
}

/* The aliases of id, in order, joined by ','. */
static void aliases_of(rp_store *s, const char *id, char *out, size_t cap) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    list l = {.n = 0};
    assert_int_equal(rp_store_aliases_of(s, t, S(id), list_add, &l, &eb), RP_OK);
    rp_store_rend(s, t);
    out[0] = '\0';
    for (int i = 0; i < l.n; i++) {
        if (i) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, l.ids[i], cap - strlen(out) - 1);
    }
}

static rp_store_stats stats(rp_store *s) {
    rp_store_stats st;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_stats_get(s, &st, &eb), RP_OK);
    return st;
}

/* A new alias resolves to its survivor, is listed by aliases_of, and the
 * survivor's record (version) is untouched; writing it again changes
 * nothing. */
static void test_alias_ok_idempotent(void **state) {
    fx *f = *state;
    put_ok(f->s, "uk-1", "+14155550101");
    rp_errbuf eb;
    assert_int_equal(put_alias(f->s, "dup-1", "uk-1", &eb), RP_OK);
    assert_int_equal(put_alias(f->s, "dup-0", "uk-1", &eb), RP_OK);
    char id[RP_ID_MAX + 1], all[256];
    resolve(f->s, "dup-1", id);
    assert_string_equal(id, "uk-1");
    aliases_of(f->s, "uk-1", all, sizeof all);
    assert_string_equal(all, "dup-0,dup-1");
    aliases_of(f->s, "dup-1", all, sizeof all); /* not resolved: an alias has none */
    assert_string_equal(all, "");
    rp_store_stats st = stats(f->s);
    assert_int_equal(st.customers, 1);
    assert_int_equal(st.aliases, 2);

    MDB_txn *t;
    rp_customer c;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_get_customer(f->s, t, S("dup-1"), &c, &eb), RP_OK);
    assert_int_equal(c.version, 1);
    rp_store_rend(f->s, t);

    /* again: RP_OK, the same entries (alias_rev holds dup-1 once) */
    assert_int_equal(put_alias(f->s, "dup-1", "uk-1", &eb), RP_OK);
    aliases_of(f->s, "uk-1", all, sizeof all);
    assert_string_equal(all, "dup-0,dup-1");
    assert_int_equal(stats(f->s).aliases, 2);

    /* a put on the alias id is refused as for a merged id */
    rp_customer again;
    memset(&again, 0, sizeof again);
    again.id = S("dup-1");
    memset(&eb, 0, sizeof eb);
    assert_int_equal(rp_store_put_customer(f->s, &again, NULL, NULL, &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "was merged into 'uk-1'"));

    /* forget of the survivor takes the restored aliases with it */
    assert_int_equal(rp_store_forget(f->s, S("dup-0"), &eb), RP_OK);
    resolve(f->s, "dup-1", id);
    assert_string_equal(id, "");
    assert_int_equal(stats(f->s).aliases, 0);
}

/* An alias id that is a live customer, or an alias of another customer,
 * is CONFLICT naming it; nothing is written. */
static void test_alias_conflicts(void **state) {
    fx *f = *state;
    put_ok(f->s, "uk-1", NULL);
    put_ok(f->s, "uk-2", NULL);
    rp_errbuf eb;
    assert_int_equal(put_alias(f->s, "uk-2", "uk-1", &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "'uk-2' is a customer"));
    assert_int_equal(put_alias(f->s, "uk-1", "uk-1", &eb), RP_CONFLICT); /* itself */
    assert_non_null(strstr(eb.msg, "'uk-1' is a customer"));
    char id[RP_ID_MAX + 1];
    resolve(f->s, "uk-2", id);
    assert_string_equal(id, "uk-2");

    assert_int_equal(put_alias(f->s, "dup-1", "uk-1", &eb), RP_OK);
    assert_int_equal(put_alias(f->s, "dup-1", "uk-2", &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "'dup-1' was merged into 'uk-1', not 'uk-2'"));
    resolve(f->s, "dup-1", id);
    assert_string_equal(id, "uk-1");
    char all[256];
    aliases_of(f->s, "uk-2", all, sizeof all);
    assert_string_equal(all, "");
    assert_int_equal(stats(f->s).aliases, 1);

    assert_int_equal(put_alias(f->s, "bad id", "uk-1", &eb), RP_BAD_REQUEST);
    assert_int_equal(put_alias(f->s, "dup-9", "", &eb), RP_BAD_REQUEST);
}

/* A survivor that does not exist (yet) is NOT_FOUND with a sentence that
 * says what to do; nothing is written. */
static void test_alias_missing_survivor(void **state) {
    fx *f = *state;
    rp_errbuf eb;
    assert_int_equal(put_alias(f->s, "dup-1", "uk-1", &eb), RP_NOT_FOUND);
    assert_string_equal(eb.msg, "alias target 'uk-1' does not exist (import the customer first)");
    assert_int_equal(stats(f->s).aliases, 0);
    /* once the customer is there, the same alias goes in */
    put_ok(f->s, "uk-1", NULL);
    assert_int_equal(put_alias(f->s, "dup-1", "uk-1", &eb), RP_OK);
}

/* A survivor that is itself an alias is resolved: the stored alias names
 * the canonical customer (one hop), and naming either the alias or the
 * canonical id again is the same alias (idempotent). A merge afterwards
 * re-points restored aliases like any other. */
static void test_alias_chain_to_canonical(void **state) {
    fx *f = *state;
    put_ok(f->s, "uk-1", NULL);
    rp_errbuf eb;
    assert_int_equal(put_alias(f->s, "dup-1", "uk-1", &eb), RP_OK);
    assert_int_equal(put_alias(f->s, "dup-2", "dup-1", &eb), RP_OK);
    MDB_txn *t;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    MDB_dbi adb;
    assert_int_equal(mdb_dbi_open(t, "aliases", 0, &adb), 0);
    MDB_val k = {5, "dup-2"}, v;
    assert_int_equal(mdb_get(t, adb, &k, &v), 0);
    assert_int_equal(v.mv_size, 4);
    assert_memory_equal(v.mv_data, "uk-1", 4);
    rp_store_rend(f->s, t);
    char all[256], id[RP_ID_MAX + 1];
    aliases_of(f->s, "uk-1", all, sizeof all);
    assert_string_equal(all, "dup-1,dup-2");
    aliases_of(f->s, "dup-1", all, sizeof all);
    assert_string_equal(all, "");
    assert_int_equal(put_alias(f->s, "dup-2", "uk-1", &eb), RP_OK);
    assert_int_equal(put_alias(f->s, "dup-2", "dup-1", &eb), RP_OK);
    assert_int_equal(stats(f->s).aliases, 2);

    /* merging the survivor on re-points the restored aliases */
    put_ok(f->s, "uk-3", NULL);
    assert_int_equal(rp_store_merge(f->s, S("uk-1"), S("uk-3"), NOW, NULL, &eb), RP_OK);
    resolve(f->s, "dup-2", id);
    assert_string_equal(id, "uk-3");
    aliases_of(f->s, "uk-3", all, sizeof all);
    assert_string_equal(all, "dup-1,dup-2,uk-1");
    aliases_of(f->s, "uk-1", all, sizeof all);
    assert_string_equal(all, "");
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_alias_ok_idempotent),
        T(test_alias_conflicts),
        T(test_alias_missing_survivor),
        T(test_alias_chain_to_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
