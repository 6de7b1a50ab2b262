/* test_store.c — the LMDB customer store: records, indexes, history,
 * retention, merge, forget, map limits, group commit, read-only access.
 *
 * Every test gets a fresh mkdtemp directory and a store opened on it with a
 * small map (tests/store/fixture.h); tests that need other settings reopen
 * it with fx_reopen. The read-only test runs its reader in a child process
 * (this binary re-executed with --ro-child DIR), because LMDB forbids opening
 * one environment twice in one process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "model/record.h"
#include "store/store.h"
#include "store/fixture.h"

extern char **environ;

static char g_self[4096]; /* this binary, for the read-only child */

/* ---- fixture -------------------------------------------------------------- */

static int setup(void **state) { return fx_setup(state, "/tmp/rp_store_XXXXXX"); }

/* ---- record builders ------------------------------------------------------ */

static void cust(rp_customer *c, const char *id) {
    memset(c, 0, sizeof *c);
    c->id = S(id);
}

static rp_event ev(const char *cid, int64_t ts, const char *kind, const char *summary) {
    rp_event e;
    memset(&e, 0, sizeof e);
    e.customer_id = S(cid);
    e.ts = ts;
    e.channel = RP_CH_PHONE;
    e.kind = S(kind);
    e.summary = S(summary);
    e.outcome = RP_OUT_RESOLVED;
    return e;
}

static rp_issue iss(const char *cid, const char *issue_id, const char *summary, int64_t updated) {
    rp_issue i;
    memset(&i, 0, sizeof i);
    i.customer_id = S(cid);
    i.issue_id = S(issue_id);
    i.topic = S("billing");
    i.summary = S(summary);
    i.status = RP_ST_OPEN;
    i.severity = RP_SEV_MEDIUM;
    i.updated_at = updated;
    return i;
}

static void put_ok(rp_store *s, const rp_customer *c) {
    rp_errbuf eb = {0};
    rp_put_opts o = {.now = NOW};
    rp_err rc = rp_store_put_customer(s, c, &o, NULL, &eb);
    if (rc != RP_OK) fprintf(stderr, "put %.*s: %s\n", (int)c->id.n, c->id.p, eb.msg);
    assert_int_equal(rc, RP_OK);
}

static void append_ok(rp_store *s, const rp_event *e, rp_cursor *at) {
    rp_errbuf eb = {0};
    rp_err rc = rp_store_append_event(s, e, NOW, at, &eb);
    if (rc != RP_OK) fprintf(stderr, "append: %s\n", eb.msg);
    assert_int_equal(rc, RP_OK);
}

static bool str_is(rp_str s, const char *c) { return rp_str_eqc(s, c); }

/* ---- read helpers --------------------------------------------------------- */

/* Get id's customer; returns the rc; *name_out gets a copy of the name. */
static rp_err get_cust(rp_store *s, const char *id, char *id_out, uint64_t *version, rp_errbuf *eb) {
    MDB_txn *t;
    rp_err rc = rp_store_rbegin(s, &t, eb);
    if (rc != RP_OK) return rc;
    rp_customer c;
    rc = rp_store_get_customer(s, t, S(id), &c, eb);
    if (rc == RP_OK) {
        if (id_out) {
            memcpy(id_out, c.id.p, c.id.n);
            id_out[c.id.n] = '\0';
        }
        if (version) *version = c.version;
    }
    rp_store_rend(s, t);
    return rc;
}

/* Look raw up; returns the candidate count (or -1 on error, rc in *rcp). */
static int lookup(rp_store *s, rp_ident_kind k, const char *raw, char first[RP_ID_MAX + 1], rp_err *rcp) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    rp_lookup lk;
    rp_err rc = rp_store_lookup(s, t, k, S(raw), &lk, &eb);
    if (rcp) *rcp = rc;
    int n = rc == RP_OK ? (int)lk.n : -1;
    if (rc == RP_OK && first != NULL) {
        first[0] = '\0';
        if (lk.n > 0) {
            memcpy(first, lk.ids[0].p, lk.ids[0].n);
            first[lk.ids[0].n] = '\0';
        }
    }
    rp_store_rend(s, t);
    return n;
}

/* All of id's events, newest first, through pages of `page`. */
static uint32_t history_all(rp_store *s, const char *id, uint32_t page, rp_cursor *out, uint32_t cap) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    rp_event *evs = calloc(page, sizeof *evs);
    assert_non_null(evs);
    uint32_t total = 0;
    rp_cursor next, *before = NULL;
    for (;;) {
        uint32_t n;
        bool more;
        rp_err rc = rp_store_history(s, t, S(id), 0, before, page, evs, &n, &more, &next, &eb);
        assert_int_equal(rc, RP_OK);
        for (uint32_t i = 0; i < n; i++) {
            if (total < cap) out[total] = (rp_cursor){evs[i].ts, evs[i].seq};
            total++;
        }
        if (!more) break;
        before = &next;
    }
    free(evs);
    rp_store_rend(s, t);
    return total;
}

/* ---- tests: customers ----------------------------------------------------- */

static void test_put_get_versions(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "c-100");
    c.name = S("Maria Gomez");
    c.language = S("es");
    c.tier = S("gold");
    c.customer_since = 1400000000;
    c.flags[c.nflags++] = S("vip");
    c.prefs[c.nprefs++] = (rp_pref){S("channel"), S("sms")};
    c.notes[c.nnotes++] = S("follows the local football club");
    c.phones[c.nphones++] = S("+14155551212");
    c.emails[c.nemails++] = S("maria@example.com");
    c.accounts[c.naccounts++] = S("ACC-77");
    rp_errbuf eb = {0};
    rp_put_opts o = {.now = NOW};
    uint64_t v = 0;
    assert_int_equal(rp_store_put_customer(f->s, &c, &o, &v, &eb), RP_OK);
    assert_int_equal(v, 1);

    MDB_txn *t;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    rp_customer g;
    assert_int_equal(rp_store_get_customer(f->s, t, S("c-100"), &g, &eb), RP_OK);
    assert_true(str_is(g.id, "c-100"));
    assert_true(str_is(g.name, "Maria Gomez"));
    assert_true(str_is(g.language, "es"));
    assert_true(str_is(g.tier, "gold"));
    assert_int_equal(g.customer_since, 1400000000);
    assert_int_equal(g.nflags, 1);
    assert_true(str_is(g.flags[0], "vip"));
    assert_int_equal(g.nprefs, 1);
    assert_true(str_is(g.prefs[0].value, "sms"));
    assert_int_equal(g.nnotes, 1);
    assert_int_equal(g.nphones, 1);
    assert_true(str_is(g.phones[0], "+14155551212"));
    assert_true(str_is(g.emails[0], "maria@example.com"));
    assert_true(str_is(g.accounts[0], "ACC-77"));
    assert_int_equal(g.version, 1);
    assert_int_equal(g.updated_at, NOW);
    /* unknown and malformed ids */
    assert_int_equal(rp_store_get_customer(f->s, t, S("c-999"), &g, &eb), RP_NOT_FOUND);
    assert_int_equal(rp_store_get_customer(f->s, t, S("has space"), &g, &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_store_get_customer(f->s, t, (rp_str){NULL, 0}, &g, &eb), RP_BAD_REQUEST);
    rp_store_rend(f->s, t);

    /* a second put replaces and bumps the version; updated_at follows now */
    c.name = S("Maria G. Gomez");
    o.now = NOW + 60;
    assert_int_equal(rp_store_put_customer(f->s, &c, &o, &v, &eb), RP_OK);
    assert_int_equal(v, 2);
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_get_customer(f->s, t, S("c-100"), &g, &eb), RP_OK);
    assert_true(str_is(g.name, "Maria G. Gomez"));
    assert_int_equal(g.updated_at, NOW + 60);
    rp_store_rend(f->s, t);

    /* restore keeps the given version and updated_at */
    rp_customer r;
    cust(&r, "c-200");
    r.version = 42;
    r.updated_at = 1600000000;
    rp_put_opts ro = {.restore = true, .now = NOW};
    assert_int_equal(rp_store_put_customer(f->s, &r, &ro, &v, &eb), RP_OK);
    assert_int_equal(v, 42);
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_get_customer(f->s, t, S("c-200"), &g, &eb), RP_OK);
    assert_int_equal(g.version, 42);
    assert_int_equal(g.updated_at, 1600000000);
    rp_store_rend(f->s, t);
}

static void test_version_conflicts(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "v-1");
    rp_errbuf eb = {0};
    uint64_t v = 0;
    rp_put_opts o = {.has_expect = true, .expect_version = 0, .now = NOW};
    assert_int_equal(rp_store_put_customer(f->s, &c, &o, &v, &eb), RP_OK); /* create-only */
    assert_int_equal(v, 1);
    assert_int_equal(rp_store_put_customer(f->s, &c, &o, &v, &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "already exists"));
    o.expect_version = 1;
    assert_int_equal(rp_store_put_customer(f->s, &c, &o, &v, &eb), RP_OK);
    assert_int_equal(v, 2);
    memset(&eb, 0, sizeof eb);
    assert_int_equal(rp_store_put_customer(f->s, &c, &o, &v, &eb), RP_CONFLICT); /* stale */
    assert_string_equal(eb.msg, "expected version 1, stored 2");
    rp_customer m;
    cust(&m, "v-missing");
    o.expect_version = 5;
    assert_int_equal(rp_store_put_customer(f->s, &m, &o, &v, &eb), RP_CONFLICT);
    uint64_t gv;
    assert_int_equal(get_cust(f->s, "v-1", NULL, &gv, &eb), RP_OK);
    assert_int_equal(gv, 2);
    assert_int_equal(get_cust(f->s, "v-missing", NULL, NULL, &eb), RP_NOT_FOUND);
}

static void test_bad_records(void **state) {
    fx *f = *state;
    rp_errbuf eb = {0};
    rp_customer c;
    cust(&c, "bad id");
    assert_int_equal(rp_store_put_customer(f->s, &c, NULL, NULL, &eb), RP_BAD_REQUEST);
    cust(&c, "b-1");
    c.phones[c.nphones++] = S("4155551212"); /* not normalized */
    assert_int_equal(rp_store_put_customer(f->s, &c, NULL, NULL, &eb), RP_BAD_REQUEST);
    cust(&c, "b-1");
    c.emails[c.nemails++] = S("no-at-sign");
    assert_int_equal(rp_store_put_customer(f->s, &c, NULL, NULL, &eb), RP_BAD_REQUEST);
    cust(&c, "b-1");
    c.nphones = RP_MAX_PHONES + 1;
    assert_int_equal(rp_store_put_customer(f->s, &c, NULL, NULL, &eb), RP_TOO_LARGE);
    cust(&c, "b-1");
    char big[RP_NAME_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    c.name = S(big);
    assert_int_equal(rp_store_put_customer(f->s, &c, NULL, NULL, &eb), RP_TOO_LARGE);
    assert_int_equal(get_cust(f->s, "b-1", NULL, NULL, &eb), RP_NOT_FOUND);

    cust(&c, "b-2");
    put_ok(f->s, &c);
    rp_event e = ev("b-2", -1, "contact", "x");
    assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_BAD_REQUEST);
    e = ev("b-2", NOW, "contact", "x");
    e.channel = RP_CH_NONE;
    assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_BAD_REQUEST);
    e = ev("b-2", NOW, "", "x");
    assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_BAD_REQUEST);
    e = ev("nobody", NOW, "contact", "x");
    assert_int_equal(rp_store_append_event(f->s, &e, NOW, NULL, &eb), RP_NOT_FOUND);
    rp_issue i = iss("b-2", "has space", "x", 0);
    assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_BAD_REQUEST);
    i = iss("nobody", "I-1", "x", 0);
    assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_NOT_FOUND);
    assert_int_equal(rp_store_forget(f->s, S("nobody"), &eb), RP_NOT_FOUND);
}

/* ---- tests: identities ---------------------------------------------------- */

static void test_phone_formats(void **state) {
    fx *f = *state;
    rp_customer us, uk;
    cust(&us, "us-1");
    us.phones[us.nphones++] = S("+14155551212");
    us.emails[us.nemails++] = S("pat@example.com");
    us.accounts[us.naccounts++] = S("ACC-1");
    put_ok(f->s, &us);
    cust(&uk, "uk-1");
    uk.phones[uk.nphones++] = S("+442079460958");
    put_ok(f->s, &uk);

    const char *us_forms[] = {"+1 (415) 555-1212", "415.555.1212", "tel:+14155551212",
                              "1-415-555-1212", "+14155551212"};
    for (size_t i = 0; i < sizeof us_forms / sizeof us_forms[0]; i++) {
        char first[RP_ID_MAX + 1];
        rp_err rc;
        int n = lookup(f->s, RP_IDENT_PHONE, us_forms[i], first, &rc);
        if (n != 1) fprintf(stderr, "form '%s': rc %d n %d\n", us_forms[i], rc, n);
        assert_int_equal(n, 1);
        assert_string_equal(first, "us-1");
    }
    const char *uk_forms[] = {"0044 20 7946 0958", "011 44 20 7946 0958", "+44 (0)20 7946 0958"};
    for (size_t i = 0; i < sizeof uk_forms / sizeof uk_forms[0]; i++) {
        char first[RP_ID_MAX + 1];
        rp_err rc;
        int n = lookup(f->s, RP_IDENT_PHONE, uk_forms[i], first, &rc);
        if (n != 1) fprintf(stderr, "form '%s': rc %d n %d\n", uk_forms[i], rc, n);
        assert_int_equal(n, 1);
        assert_string_equal(first, "uk-1");
    }
    char first[RP_ID_MAX + 1];
    assert_int_equal(lookup(f->s, RP_IDENT_EMAIL, "  Pat@Example.COM ", first, NULL), 1);
    assert_string_equal(first, "us-1");
    assert_int_equal(lookup(f->s, RP_IDENT_ACCOUNT, "ACC-1", first, NULL), 1);
    assert_string_equal(first, "us-1");
    /* unknown is an answer, malformed is an error */
    rp_err rc;
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+1 415 555 0000", NULL, &rc), 0);
    assert_int_equal(rc, RP_OK);
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "call me maybe", NULL, &rc), -1);
    assert_int_equal(rc, RP_BAD_REQUEST);
    assert_int_equal(lookup(f->s, RP_IDENT_EMAIL, "not-an-email", NULL, &rc), -1);
    assert_int_equal(rc, RP_BAD_REQUEST);
    assert_int_equal(lookup(f->s, RP_IDENT_ACCOUNT, "", NULL, &rc), -1);
    assert_int_equal(rc, RP_BAD_REQUEST);
    MDB_txn *t;
    rp_errbuf eb = {0};
    rp_lookup lk;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_lookup(f->s, t, RP_IDENT_PHONE, S("415.555.1212"), &lk, &eb), RP_OK);
    assert_string_equal(lk.key, "+14155551212");
    assert_false(lk.truncated);
    rp_store_rend(f->s, t);
}

static void test_household_and_reindex(void **state) {
    fx *f = *state;
    rp_customer a, b;
    cust(&a, "hh-a");
    a.phones[a.nphones++] = S("+14155550100");
    a.phones[a.nphones++] = S("+14155550111");
    put_ok(f->s, &a);
    cust(&b, "hh-b");
    b.phones[b.nphones++] = S("+14155550100");
    put_ok(f->s, &b);
    MDB_txn *t;
    rp_errbuf eb = {0};
    rp_lookup lk;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_lookup(f->s, t, RP_IDENT_PHONE, S("(415) 555-0100"), &lk, &eb), RP_OK);
    assert_int_equal(lk.n, 2);
    assert_true((str_is(lk.ids[0], "hh-a") && str_is(lk.ids[1], "hh-b")) ||
                (str_is(lk.ids[0], "hh-b") && str_is(lk.ids[1], "hh-a")));
    rp_store_rend(f->s, t);

    /* a re-put without 0111 removes that index entry and adds the new one */
    cust(&a, "hh-a");
    a.phones[a.nphones++] = S("+14155550100");
    a.phones[a.nphones++] = S("+14155550122");
    put_ok(f->s, &a);
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550111", NULL, NULL), 0);
    char first[RP_ID_MAX + 1];
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550122", first, NULL), 1);
    assert_string_equal(first, "hh-a");
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550100", NULL, NULL), 2);

    /* more candidates than RP_LOOKUP_MAX: truncated */
    for (int i = 0; i < RP_LOOKUP_MAX + 2; i++) {
        char id[16];
        snprintf(id, sizeof id, "many-%02d", i);
        rp_customer m;
        cust(&m, id);
        m.phones[m.nphones++] = S("+14155550199");
        put_ok(f->s, &m);
    }
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_lookup(f->s, t, RP_IDENT_PHONE, S("+14155550199"), &lk, &eb), RP_OK);
    assert_int_equal(lk.n, RP_LOOKUP_MAX);
    assert_true(lk.truncated);
    rp_store_rend(f->s, t);
}

/* ---- tests: patch ---------------------------------------------------------- */

typedef struct patch_arg {
    rp_store *s;
    const char *id;
    const msgpack_object *patch;
    rp_put_opts opts;
    uint64_t version;
} patch_arg;

static rp_err patch_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    patch_arg *a = arg;
    return rp_store_wpatch_customer(a->s, txn, S(a->id), a->patch, &a->opts, &a->version, NULL, eb);
}

/* Pack {"name": name, "preferences": {"tone": "warm"}, "phones": [phone]}
 * (or {"id": "x"} when bad) and run it as a patch. */
static rp_err run_patch(rp_store *s, const char *id, bool bad, const rp_put_opts *opts, uint64_t *ver,
                        rp_errbuf *eb) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (bad) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_str_with_body(&pk, "x", 1);
    } else {
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "name", 4);
        msgpack_pack_str_with_body(&pk, "Kim Patched", 11);
        msgpack_pack_str_with_body(&pk, "preferences", 11);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "tone", 4);
        msgpack_pack_str_with_body(&pk, "warm", 4);
        msgpack_pack_str_with_body(&pk, "phones", 6);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, "415.555.0300", 12);
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    patch_arg a = {s, id, &up.data, opts ? *opts : (rp_put_opts){.now = NOW}, 0};
    rp_err rc = rp_store_write(s, patch_fn, &a, eb);
    if (ver) *ver = a.version;
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void test_patch(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "p-1");
    c.name = S("Kim");
    c.tier = S("gold");
    c.prefs[c.nprefs++] = (rp_pref){S("channel"), S("email")};
    c.phones[c.nphones++] = S("+14155550301");
    put_ok(f->s, &c);
    rp_errbuf eb = {0};
    uint64_t v = 0;
    assert_int_equal(run_patch(f->s, "p-1", false, NULL, &v, &eb), RP_OK);
    assert_int_equal(v, 2);
    MDB_txn *t;
    rp_customer g;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_get_customer(f->s, t, S("p-1"), &g, &eb), RP_OK);
    assert_true(str_is(g.name, "Kim Patched"));
    assert_true(str_is(g.tier, "gold")); /* untouched */
    assert_int_equal(g.nprefs, 2);       /* merged key by key */
    assert_int_equal(g.nphones, 1);
    assert_true(str_is(g.phones[0], "+14155550300")); /* normalized, replaced */
    rp_store_rend(f->s, t);
    char first[RP_ID_MAX + 1];
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550300", first, NULL), 1);
    assert_string_equal(first, "p-1");
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550301", NULL, NULL), 0);

    rp_put_opts stale = {.has_expect = true, .expect_version = 1, .now = NOW};
    assert_int_equal(run_patch(f->s, "p-1", false, &stale, NULL, &eb), RP_CONFLICT);
    assert_int_equal(run_patch(f->s, "p-1", true, NULL, NULL, &eb), RP_BAD_REQUEST);
    assert_int_equal(run_patch(f->s, "p-404", false, NULL, NULL, &eb), RP_NOT_FOUND);
    uint64_t gv;
    assert_int_equal(get_cust(f->s, "p-1", NULL, &gv, &eb), RP_OK);
    assert_int_equal(gv, 2); /* failed patches changed nothing */
}

/* ---- tests: events --------------------------------------------------------- */

static void test_history_paging(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "h-1");
    put_ok(f->s, &c);
    rp_cursor at;
    int64_t base = NOW - 10000;
    /* out of order, with three events in one second */
    int64_t ts[] = {base + 5, base + 1, base + 3, base + 3, base + 3, base + 9, base + 7};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        rp_event e = ev("h-1", ts[i], "contact", "hello");
        append_ok(f->s, &e, &at);
        assert_int_equal(at.ts, ts[i]);
    }
    assert_int_equal(at.seq, 0);
    rp_event e = ev("h-1", base + 3, "order", "a fourth at +3");
    append_ok(f->s, &e, &at);
    assert_int_equal(at.seq, 3);

    rp_cursor all[16];
    for (uint32_t page = 1; page <= 9; page++) {
        uint32_t n = history_all(f->s, "h-1", page, all, 16);
        assert_int_equal(n, 8);
        rp_cursor want[] = {{base + 9, 0}, {base + 7, 0}, {base + 5, 0}, {base + 3, 3},
                            {base + 3, 2}, {base + 3, 1}, {base + 3, 0}, {base + 1, 0}};
        for (uint32_t i = 0; i < 8; i++) {
            assert_int_equal(all[i].ts, want[i].ts);
            assert_int_equal(all[i].seq, want[i].seq);
        }
    }

    /* one page by hand: fields, the cursor text form, and the next page */
    MDB_txn *t;
    rp_errbuf eb = {0};
    rp_event out[3];
    uint32_t n;
    bool more;
    rp_cursor next;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_history(f->s, t, S("h-1"), 0, NULL, 3, out, &n, &more, &next, &eb), RP_OK);
    assert_int_equal(n, 3);
    assert_true(more);
    assert_true(str_is(out[0].customer_id, "h-1"));
    assert_true(str_is(out[0].kind, "contact"));
    assert_true(str_is(out[0].summary, "hello"));
    assert_int_equal(out[0].channel, RP_CH_PHONE);
    assert_int_equal(next.ts, base + 5);
    rp_cursor back = next; /* its text round trip: tests/net/test_cursor.c */
    assert_int_equal(back.ts, next.ts);
    assert_int_equal(back.seq, next.seq);
    assert_int_equal(rp_store_history(f->s, t, S("h-1"), 0, &back, 3, out, &n, &more, &next, &eb), RP_OK);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].ts, base + 3);
    assert_int_equal(out[0].seq, 3);
    assert_true(str_is(out[0].kind, "order"));
    /* an exact page end: no more */
    rp_cursor last = {base + 3, 0};
    assert_int_equal(rp_store_history(f->s, t, S("h-1"), 0, &last, 1, out, &n, &more, &next, &eb), RP_OK);
    assert_int_equal(n, 1);
    assert_false(more);
    assert_int_equal(rp_store_history(f->s, t, S("nobody"), 0, NULL, 3, out, &n, &more, &next, &eb),
                     RP_NOT_FOUND);
    rp_store_rend(f->s, t);
}

static void test_retention_count(void **state) {
    fx *f = *state;
    f->cfg.retention_max_events = 10;
    fx_reopen(f);
    rp_customer c;
    cust(&c, "rc-1");
    put_ok(f->s, &c);
    int64_t base = NOW - 5000;
    for (int i = 0; i < 15; i++) {
        rp_event e = ev("rc-1", base + i, "contact", "x");
        append_ok(f->s, &e, NULL);
    }
    rp_cursor all[32];
    assert_int_equal(history_all(f->s, "rc-1", 4, all, 32), 10);
    assert_int_equal(all[0].ts, base + 14);
    assert_int_equal(all[9].ts, base + 5); /* the five oldest are gone */
    rp_store_stats st;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_int_equal(st.events, 10);
    /* an event older than all kept ones goes straight out by count */
    rp_event old = ev("rc-1", base - 100, "contact", "x");
    append_ok(f->s, &old, NULL);
    assert_int_equal(history_all(f->s, "rc-1", 4, all, 32), 10);
    assert_int_equal(all[9].ts, base + 5);
}

static void test_retention_age(void **state) {
    fx *f = *state;
    f->cfg.retention_max_age_days = 1;
    fx_reopen(f);
    rp_customer c;
    cust(&c, "ra-1");
    put_ok(f->s, &c);
    rp_errbuf eb = {0};
    const int64_t day = 86400;
    rp_cursor all[8];
    /* already past the limit: stored anyway (the append's own event is exempt) */
    rp_event e1 = ev("ra-1", NOW - 3 * day, "contact", "old");
    assert_int_equal(rp_store_append_event(f->s, &e1, NOW, NULL, &eb), RP_OK);
    assert_int_equal(history_all(f->s, "ra-1", 8, all, 8), 1);
    /* the next append trims it, but keeps itself */
    rp_event e2 = ev("ra-1", NOW - 2 * day, "contact", "old too");
    assert_int_equal(rp_store_append_event(f->s, &e2, NOW, NULL, &eb), RP_OK);
    assert_int_equal(history_all(f->s, "ra-1", 8, all, 8), 1);
    assert_int_equal(all[0].ts, NOW - 2 * day);
    /* fresh events: everything older than a day goes */
    rp_event e3 = ev("ra-1", NOW - day / 2, "contact", "recent");
    rp_event e4 = ev("ra-1", NOW, "contact", "now");
    assert_int_equal(rp_store_append_event(f->s, &e3, NOW, NULL, &eb), RP_OK);
    assert_int_equal(rp_store_append_event(f->s, &e4, NOW, NULL, &eb), RP_OK);
    assert_int_equal(history_all(f->s, "ra-1", 8, all, 8), 2);
    assert_int_equal(all[0].ts, NOW);
    assert_int_equal(all[1].ts, NOW - day / 2);
    rp_store_stats st;
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_int_equal(st.events, 2);
}

/* ---- tests: issues --------------------------------------------------------- */

static void test_issues(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "i-1");
    put_ok(f->s, &c);
    rp_errbuf eb = {0};
    rp_issue i = iss("i-1", "T-2", "router keeps dropping", 0);
    assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    i = iss("i-1", "T-1", "double charge", 0);
    i.follow_up_due = NOW + 3600;
    assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    /* an update later: opened_at stays, updated_at moves */
    i.status = RP_ST_PENDING;
    i.contacts = 2;
    assert_int_equal(rp_store_put_issue(f->s, &i, NOW + 500, &eb), RP_OK);

    MDB_txn *t;
    rp_issue out[4];
    uint32_t n;
    bool more;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_issues(f->s, t, S("i-1"), 0, 4, out, &n, &more, &eb), RP_OK);
    assert_int_equal(n, 2);
    assert_false(more);
    assert_true(str_is(out[0].issue_id, "T-1")); /* issue_id order */
    assert_true(str_is(out[1].issue_id, "T-2"));
    assert_true(str_is(out[0].customer_id, "i-1"));
    assert_int_equal(out[0].opened_at, NOW);
    assert_int_equal(out[0].updated_at, NOW + 500);
    assert_int_equal(out[0].status, RP_ST_PENDING);
    assert_int_equal(out[0].contacts, 2);
    assert_int_equal(out[0].follow_up_due, NOW + 3600);
    assert_true(str_is(out[0].summary, "double charge"));
    assert_int_equal(rp_store_issues(f->s, t, S("i-1"), 0, 1, out, &n, &more, &eb), RP_OK);
    assert_int_equal(n, 1);
    assert_true(more);
    rp_issue one;
    assert_int_equal(rp_store_get_issue(f->s, t, S("i-1"), S("T-2"), &one, &eb), RP_OK);
    assert_true(str_is(one.summary, "router keeps dropping"));
    assert_int_equal(rp_store_get_issue(f->s, t, S("i-1"), S("T-3"), &one, &eb), RP_NOT_FOUND);
    assert_int_equal(rp_store_get_issue(f->s, t, S("i-9"), S("T-1"), &one, &eb), RP_NOT_FOUND);
    assert_int_equal(rp_store_issues(f->s, t, S("i-9"), 0, 4, out, &n, &more, &eb), RP_NOT_FOUND);
    rp_store_rend(f->s, t);
}

/* ---- tests: merge ---------------------------------------------------------- */

static void test_merge(void **state) {
    fx *f = *state;
    rp_customer a, b;
    cust(&a, "dup-a");
    a.name = S("Ann Lee");
    a.customer_since = 1500000000;
    a.flags[a.nflags++] = S("vip");
    a.prefs[a.nprefs++] = (rp_pref){S("tone"), S("warm")};
    a.prefs[a.nprefs++] = (rp_pref){S("channel"), S("sms")};
    a.notes[a.nnotes++] = S("likes cats");
    a.phones[a.nphones++] = S("+14155550101");
    a.emails[a.nemails++] = S("ann@example.com");
    a.accounts[a.naccounts++] = S("ACC-A");
    put_ok(f->s, &a);
    cust(&b, "dup-b");
    b.preferred_name = S("Annie");
    b.customer_since = 1600000000;
    b.flags[b.nflags++] = S("hearing_impaired");
    b.prefs[b.nprefs++] = (rp_pref){S("tone"), S("brief")};
    b.phones[b.nphones++] = S("+14155550202");
    put_ok(f->s, &b);

    int64_t base = NOW - 1000;
    rp_event e;
    e = ev("dup-a", base + 100, "contact", "a0"), append_ok(f->s, &e, NULL);
    e = ev("dup-a", base + 100, "contact", "a1"), append_ok(f->s, &e, NULL);
    e = ev("dup-a", base + 300, "contact", "a2"), append_ok(f->s, &e, NULL);
    e = ev("dup-b", base + 100, "contact", "b0"), append_ok(f->s, &e, NULL);
    e = ev("dup-b", base + 200, "contact", "b1"), append_ok(f->s, &e, NULL);
    rp_errbuf eb = {0};
    rp_issue i;
    i = iss("dup-a", "I-1", "only in a", 10), assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    i = iss("dup-a", "I-2", "from a", 50), assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    i = iss("dup-b", "I-2", "from b", 40), assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    i = iss("dup-b", "I-3", "only in b", 40), assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    i = iss("dup-a", "I-4", "older in a", 30), assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    i = iss("dup-b", "I-4", "newer in b", 60), assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);

    uint64_t v = 0;
    assert_int_equal(rp_store_merge(f->s, S("dup-a"), S("dup-b"), NOW + 10, &v, &eb), RP_OK);
    assert_int_equal(v, 2);

    /* the old id answers as the survivor */
    MDB_txn *t;
    rp_customer g;
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_get_customer(f->s, t, S("dup-a"), &g, &eb), RP_OK);
    assert_true(str_is(g.id, "dup-b"));
    assert_true(str_is(g.name, "Ann Lee"));         /* filled from a */
    assert_true(str_is(g.preferred_name, "Annie")); /* b's kept */
    assert_int_equal(g.customer_since, 1500000000); /* earliest */
    assert_int_equal(g.nflags, 2);
    assert_int_equal(g.nnotes, 1);
    assert_int_equal(g.nphones, 2);
    assert_int_equal(g.nemails, 1);
    assert_int_equal(g.naccounts, 1);
    assert_int_equal(g.nprefs, 2);
    for (uint32_t k = 0; k < g.nprefs; k++)
        if (str_is(g.prefs[k].key, "tone")) assert_true(str_is(g.prefs[k].value, "brief")); /* into wins */
    assert_int_equal(g.version, 2);
    assert_int_equal(g.updated_at, NOW + 10);
    rp_str canon;
    assert_int_equal(rp_store_resolve(f->s, t, S("dup-a"), &canon, &eb), RP_OK);
    assert_true(str_is(canon, "dup-b"));
    /* issues moved; on a shared issue_id the later update won */
    rp_issue out[8];
    uint32_t n;
    bool more;
    assert_int_equal(rp_store_issues(f->s, t, S("dup-a"), 0, 8, out, &n, &more, &eb), RP_OK);
    assert_int_equal(n, 4);
    assert_true(str_is(out[0].issue_id, "I-1"));
    assert_true(str_is(out[1].summary, "from a"));
    assert_true(str_is(out[2].issue_id, "I-3"));
    assert_true(str_is(out[3].summary, "newer in b"));
    assert_true(str_is(out[0].customer_id, "dup-b"));
    rp_store_rend(f->s, t);

    /* events re-keyed, colliding (ts, seq) got fresh seqs */
    rp_cursor all[8];
    assert_int_equal(history_all(f->s, "dup-a", 2, all, 8), 5);
    rp_cursor want[] = {{base + 300, 0}, {base + 200, 0}, {base + 100, 2}, {base + 100, 1}, {base + 100, 0}};
    for (int k = 0; k < 5; k++) {
        assert_int_equal(all[k].ts, want[k].ts);
        assert_int_equal(all[k].seq, want[k].seq);
    }
    /* identities point at the survivor, once */
    const char *keys[] = {"+14155550101", "+14155550202"};
    for (int k = 0; k < 2; k++) {
        char first[RP_ID_MAX + 1];
        assert_int_equal(lookup(f->s, RP_IDENT_PHONE, keys[k], first, NULL), 1);
        assert_string_equal(first, "dup-b");
    }
    char first[RP_ID_MAX + 1];
    assert_int_equal(lookup(f->s, RP_IDENT_EMAIL, "ann@example.com", first, NULL), 1);
    assert_string_equal(first, "dup-b");
    assert_int_equal(lookup(f->s, RP_IDENT_ACCOUNT, "ACC-A", first, NULL), 1);
    assert_string_equal(first, "dup-b");
    /* writes through the old id */
    e = ev("dup-a", base + 400, "contact", "via alias");
    append_ok(f->s, &e, NULL);
    assert_int_equal(history_all(f->s, "dup-b", 10, all, 8), 6);
    rp_customer again;
    cust(&again, "dup-a");
    memset(&eb, 0, sizeof eb);
    assert_int_equal(rp_store_put_customer(f->s, &again, NULL, NULL, &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "was merged into 'dup-b'"));
    assert_int_equal(rp_store_merge(f->s, S("dup-a"), S("dup-b"), NOW, NULL, &eb), RP_CONFLICT);
    assert_int_equal(rp_store_merge(f->s, S("ghost"), S("dup-b"), NOW, NULL, &eb), RP_NOT_FOUND);
    assert_int_equal(rp_store_merge(f->s, S("dup-b"), S("ghost"), NOW, NULL, &eb), RP_NOT_FOUND);

    /* a second merge re-points the first alias: a -> c directly */
    rp_customer c;
    cust(&c, "dup-c");
    put_ok(f->s, &c);
    assert_int_equal(rp_store_merge(f->s, S("dup-b"), S("dup-c"), NOW + 20, NULL, &eb), RP_OK);
    char id[RP_ID_MAX + 1];
    assert_int_equal(get_cust(f->s, "dup-a", id, NULL, &eb), RP_OK);
    assert_string_equal(id, "dup-c");
    assert_int_equal(history_all(f->s, "dup-a", 10, all, 8), 6);
    /* chains stay one hop: the stored alias of a names c itself */
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    MDB_dbi adb;
    assert_int_equal(mdb_dbi_open(t, "aliases", 0, &adb), 0);
    MDB_val ak = {5, "dup-a"}, av;
    assert_int_equal(mdb_get(t, adb, &ak, &av), 0);
    assert_int_equal(av.mv_size, 5);
    assert_memory_equal(av.mv_data, "dup-c", 5);
    rp_store_rend(f->s, t);
    rp_store_stats st;
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_int_equal(st.customers, 1);
    assert_int_equal(st.aliases, 2);
    assert_int_equal(st.issues, 4);
    assert_int_equal(st.events, 6);
}

static void test_merge_too_large(void **state) {
    fx *f = *state;
    rp_customer x, y;
    char px[10][16], py[10][16];
    cust(&x, "big-x");
    cust(&y, "big-y");
    for (int i = 0; i < 10; i++) {
        snprintf(px[i], sizeof px[i], "+1415555%04d", 1000 + i);
        snprintf(py[i], sizeof py[i], "+1415555%04d", 2000 + i);
        x.phones[x.nphones++] = S(px[i]);
        y.phones[y.nphones++] = S(py[i]);
    }
    put_ok(f->s, &x);
    put_ok(f->s, &y);
    rp_event e = ev("big-x", NOW - 10, "contact", "x");
    append_ok(f->s, &e, NULL);
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_merge(f->s, S("big-x"), S("big-y"), NOW, NULL, &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "phones"));
    /* nothing changed */
    char id[RP_ID_MAX + 1];
    assert_int_equal(get_cust(f->s, "big-x", id, NULL, &eb), RP_OK);
    assert_string_equal(id, "big-x");
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, px[3], id, NULL), 1);
    assert_string_equal(id, "big-x");
    rp_cursor all[2];
    assert_int_equal(history_all(f->s, "big-x", 4, all, 2), 1);
    assert_int_equal(history_all(f->s, "big-y", 4, all, 2), 0);
}

/* Issue ids of customer id, in order, into out (at most cap); the count. */
static uint32_t issue_ids(rp_store *s, const char *id, char out[][RP_ID_MAX + 1], uint32_t cap) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    rp_issue is[8];
    uint32_t n = 0;
    bool more = false;
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_issues(s, t, S(id), 0, 8, is, &n, &more, &eb), RP_OK);
    for (uint32_t i = 0; i < n && i < cap; i++) {
        assert_true(str_is(is[i].customer_id, id));
        size_t k = is[i].issue_id.n < RP_ID_MAX ? is[i].issue_id.n : RP_ID_MAX;
        memcpy(out[i], is[i].issue_id.p, k);
        out[i][k] = '\0';
    }
    rp_store_rend(s, t);
    return n;
}

/* A merge whose identities (emails here: 9 + 9 > 16) would exceed the
 * limits fails with TOO_LARGE before it moves anything: both customers,
 * their versions, events, issues and index entries are as they were. */
static void test_merge_too_large_moves_nothing(void **state) {
    fx *f = *state;
    rp_customer x, y;
    char ex[9][32], ey[9][32];
    cust(&x, "lim-x");
    cust(&y, "lim-y");
    for (int i = 0; i < 9; i++) {
        snprintf(ex[i], sizeof ex[i], "x%d@example.com", i);
        snprintf(ey[i], sizeof ey[i], "y%d@example.com", i);
        x.emails[x.nemails++] = S(ex[i]);
        y.emails[y.nemails++] = S(ey[i]);
    }
    put_ok(f->s, &x);
    put_ok(f->s, &y);
    for (int k = 0; k < 3; k++) {
        rp_event e = ev(k < 2 ? "lim-x" : "lim-y", NOW - 100 + k, "contact", "before the merge");
        append_ok(f->s, &e, NULL);
    }
    rp_errbuf eb = {0};
    rp_issue ix = iss("lim-x", "LIM-1", "x's issue", NOW - 50);
    rp_issue iy = iss("lim-y", "LIM-2", "y's issue", NOW - 40);
    assert_int_equal(rp_store_put_issue(f->s, &ix, NOW, &eb), RP_OK);
    assert_int_equal(rp_store_put_issue(f->s, &iy, NOW, &eb), RP_OK);
    uint64_t vx0 = 0, vy0 = 0;
    char id[RP_ID_MAX + 1];
    assert_int_equal(get_cust(f->s, "lim-x", id, &vx0, &eb), RP_OK);
    assert_int_equal(get_cust(f->s, "lim-y", id, &vy0, &eb), RP_OK);

    assert_int_equal(rp_store_merge(f->s, S("lim-x"), S("lim-y"), NOW, NULL, &eb), RP_TOO_LARGE);
    assert_non_null(strstr(eb.msg, "emails"));

    uint64_t vx = 0, vy = 0;
    assert_int_equal(get_cust(f->s, "lim-x", id, &vx, &eb), RP_OK);
    assert_string_equal(id, "lim-x");
    assert_int_equal(get_cust(f->s, "lim-y", id, &vy, &eb), RP_OK);
    assert_string_equal(id, "lim-y");
    assert_int_equal(vx, vx0);
    assert_int_equal(vy, vy0);
    assert_int_equal(lookup(f->s, RP_IDENT_EMAIL, ex[4], id, NULL), 1);
    assert_string_equal(id, "lim-x");
    assert_int_equal(lookup(f->s, RP_IDENT_EMAIL, ey[4], id, NULL), 1);
    assert_string_equal(id, "lim-y");
    rp_cursor all[4];
    assert_int_equal(history_all(f->s, "lim-x", 4, all, 4), 2);
    assert_int_equal(history_all(f->s, "lim-y", 4, all, 4), 1);
    char ids[4][RP_ID_MAX + 1];
    assert_int_equal(issue_ids(f->s, "lim-x", ids, 4), 1);
    assert_string_equal(ids[0], "LIM-1");
    assert_int_equal(issue_ids(f->s, "lim-y", ids, 4), 1);
    assert_string_equal(ids[0], "LIM-2");
}

/* A corrupt alias loop is an error, not a hang. */
static rp_err loop_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    (void)arg;
    MDB_dbi d;
    int rc = mdb_dbi_open(txn, "aliases", 0, &d);
    MDB_val a = {6, "loop-1"}, b = {6, "loop-2"};
    if (rc == 0) rc = mdb_put(txn, d, &a, &b, 0);
    if (rc == 0) rc = mdb_put(txn, d, &b, &a, 0);
    return rc ? rp_errf(eb, RP_INTERNAL, "%s", mdb_strerror(rc)) : RP_OK;
}

/* Stale index entries (an alias of a candidate, a vanished id) as a bug
 * or an old build could leave them: lookup resolves and de-duplicates. */
static rp_err stale_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    (void)arg;
    MDB_dbi al, ph;
    int rc = mdb_dbi_open(txn, "aliases", 0, &al);
    if (rc == 0) rc = mdb_dbi_open(txn, "phones", MDB_DUPSORT, &ph);
    MDB_val a = {7, "alias-1"}, r = {6, "real-1"}, g = {7, "ghost-1"}, p = {12, "+14155550777"};
    if (rc == 0) rc = mdb_put(txn, al, &a, &r, 0);
    if (rc == 0) rc = mdb_put(txn, ph, &p, &a, 0);
    if (rc == 0) rc = mdb_put(txn, ph, &p, &g, 0);
    return rc ? rp_errf(eb, RP_INTERNAL, "%s", mdb_strerror(rc)) : RP_OK;
}

static void test_alias_loop(void **state) {
    fx *f = *state;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_write(f->s, loop_fn, NULL, &eb), RP_OK);
    memset(&eb, 0, sizeof eb);
    assert_int_equal(get_cust(f->s, "loop-1", NULL, NULL, &eb), RP_INTERNAL);
    assert_non_null(strstr(eb.msg, "hops"));

    rp_customer c;
    cust(&c, "real-1");
    c.phones[c.nphones++] = S("+14155550777");
    put_ok(f->s, &c);
    assert_int_equal(rp_store_write(f->s, stale_fn, NULL, &eb), RP_OK);
    char first[RP_ID_MAX + 1];
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550777", first, NULL), 1);
    assert_string_equal(first, "real-1");
}

/* ---- tests: forget --------------------------------------------------------- */

/* Walk every named database (found through the main database) and fail if
 * any key or value contains one of the needles. Returns the entry count. */
static size_t assert_no_trace(rp_store *s, const char *const *needles, size_t nn) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    MDB_dbi main_db;
    assert_int_equal(mdb_dbi_open(t, NULL, 0, &main_db), 0);
    char names[16][32];
    int nnames = 0;
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(mdb_cursor_open(t, main_db, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, nnames == 0 ? MDB_FIRST : MDB_NEXT) == 0) {
        assert_true(nnames < 16 && k.mv_size < 32);
        memcpy(names[nnames], k.mv_data, k.mv_size);
        names[nnames][k.mv_size] = '\0';
        nnames++;
    }
    mdb_cursor_close(cur);
    assert_int_equal(nnames, 14); /* STORAGE.md: ten, plus idem, idem_exp, evids and digests */
    size_t entries = 0;
    for (int d = 0; d < nnames; d++) {
        MDB_dbi dbi;
        assert_int_equal(mdb_dbi_open(t, names[d], 0, &dbi), 0);
        assert_int_equal(mdb_cursor_open(t, dbi, &cur), 0);
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            entries++;
            for (size_t i = 0; i < nn; i++) {
                size_t ln = strlen(needles[i]);
                if (memmem(k.mv_data, k.mv_size, needles[i], ln) ||
                    memmem(v.mv_data, v.mv_size, needles[i], ln)) {
                    fprintf(stderr, "'%s' still in database %s\n", needles[i], names[d]);
                    fail();
                }
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        assert_int_equal(rc, MDB_NOTFOUND);
        mdb_cursor_close(cur);
    }
    rp_store_rend(s, t);
    return entries;
}

static void test_forget(void **state) {
    fx *f = *state;
    rp_customer a, b, keep;
    cust(&a, "zq-forget-old");
    a.name = S("Quinn Old");
    a.phones[a.nphones++] = S("+15035550188");
    a.emails[a.nemails++] = S("quinn.old@example.org");
    put_ok(f->s, &a);
    cust(&b, "zq-forget-main");
    b.name = S("Quinn Zephyr");
    b.phones[b.nphones++] = S("+15035550177");
    b.phones[b.nphones++] = S("+14155550999"); /* shared with keep: household line */
    b.emails[b.nemails++] = S("quinn.z@example.org");
    b.accounts[b.naccounts++] = S("ACCT-ZQ-9");
    b.notes[b.nnotes++] = S("Quinn's dog is called Biscuit");
    put_ok(f->s, &b);
    rp_customer a2;
    cust(&a2, "zq-forget-older");
    a2.phones[a2.nphones++] = S("+15035550166");
    put_ok(f->s, &a2);
    cust(&keep, "other-1");
    keep.name = S("Other Person");
    keep.phones[keep.nphones++] = S("+14155550999");
    put_ok(f->s, &keep);
    rp_errbuf eb = {0};
    for (int k = 0; k < 5; k++) {
        rp_event e = ev(k % 2 ? "zq-forget-main" : "zq-forget-old", NOW - 100 + k, "contact", "Biscuit barked");
        append_ok(f->s, &e, NULL);
        e = ev("other-1", NOW - 100 + k, "contact", "fine");
        append_ok(f->s, &e, NULL);
    }
    rp_issue i = iss("zq-forget-main", "ZQ-ISSUE-1", "Biscuit's food order", 0);
    assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    i = iss("other-1", "OT-1", "fine", 0);
    assert_int_equal(rp_store_put_issue(f->s, &i, NOW, &eb), RP_OK);
    assert_int_equal(rp_store_merge(f->s, S("zq-forget-older"), S("zq-forget-old"), NOW, NULL, &eb), RP_OK);
    assert_int_equal(rp_store_merge(f->s, S("zq-forget-old"), S("zq-forget-main"), NOW, NULL, &eb), RP_OK);

    /* forget through the alias: the survivor and every trace go */
    assert_int_equal(rp_store_forget(f->s, S("zq-forget-old"), &eb), RP_OK);
    const char *needles[] = {"zq-forget", "+15035550188", "+15035550166", "+15035550177", "quinn", "ACCT-ZQ-9",
                             "Biscuit", "ZQ-ISSUE"};
    size_t entries = assert_no_trace(f->s, needles, sizeof needles / sizeof needles[0]);
    assert_true(entries > 5); /* the other customer's data is still there */
    assert_int_equal(get_cust(f->s, "zq-forget-main", NULL, NULL, &eb), RP_NOT_FOUND);
    assert_int_equal(get_cust(f->s, "zq-forget-old", NULL, NULL, &eb), RP_NOT_FOUND);
    assert_int_equal(get_cust(f->s, "zq-forget-older", NULL, NULL, &eb), RP_NOT_FOUND);
    assert_int_equal(rp_store_forget(f->s, S("zq-forget-main"), &eb), RP_NOT_FOUND);
    char first[RP_ID_MAX + 1];
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550999", first, NULL), 1);
    assert_string_equal(first, "other-1");
    rp_cursor all[8];
    assert_int_equal(history_all(f->s, "other-1", 8, all, 8), 5);
    rp_store_stats st;
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_int_equal(st.customers, 1);
    assert_int_equal(st.aliases, 0);
    assert_int_equal(st.issues, 1);
    /* the id is free again */
    rp_customer re;
    cust(&re, "zq-forget-old");
    put_ok(f->s, &re);
}

/* ---- tests: scan, stats, map limits ------------------------------------------ */

static bool scan_cb(const rp_customer *c, void *arg) {
    char *acc = arg;
    strncat(acc, c->id.p, c->id.n);
    strcat(acc, ",");
    return strlen(acc) < 12; /* stop after three ids */
}

static void test_scan(void **state) {
    fx *f = *state;
    const char *ids[] = {"s-3", "s-1", "s-5", "s-2", "s-4"};
    for (int i = 0; i < 5; i++) {
        rp_customer c;
        cust(&c, ids[i]);
        put_ok(f->s, &c);
    }
    MDB_txn *t;
    rp_errbuf eb = {0};
    char acc[128] = "";
    assert_int_equal(rp_store_rbegin(f->s, &t, &eb), RP_OK);
    assert_int_equal(rp_store_scan_customers(f->s, t, (rp_str){NULL, 0}, scan_cb, acc, &eb), RP_OK);
    assert_string_equal(acc, "s-1,s-2,s-3,");
    acc[0] = '\0';
    assert_int_equal(rp_store_scan_customers(f->s, t, S("s-3"), scan_cb, acc, &eb), RP_OK);
    assert_string_equal(acc, "s-4,s-5,");
    acc[0] = '\0';
    assert_int_equal(rp_store_scan_customers(f->s, t, S("s-25"), scan_cb, acc, &eb), RP_OK);
    assert_string_equal(acc, "s-3,s-4,s-5,");
    rp_store_rend(f->s, t);
}

static void test_store_full(void **state) {
    fx *f = *state;
    f->cfg.map_initial = 1u << 20;
    f->cfg.map_max = 2u << 20;
    fx_reopen(f);
    static char note[RP_MAX_NOTES][RP_NOTE_MAX];
    static char val[RP_MAX_PREFS][200], key[RP_MAX_PREFS][16];
    rp_customer c;
    rp_errbuf eb = {0};
    int ok = 0;
    rp_err rc = RP_OK;
    char cid[32];
    for (int n = 0; n < 2000 && rc == RP_OK; n++) {
        snprintf(cid, sizeof cid, "full-%04d", n);
        cust(&c, cid);
        for (int i = 0; i < RP_MAX_NOTES; i++) {
            memset(note[i], 'a' + (n + i) % 26, sizeof note[i] - 1);
            c.notes[c.nnotes++] = (rp_str){note[i], sizeof note[i] - 1};
        }
        for (int i = 0; i < 40; i++) {
            snprintf(key[i], sizeof key[i], "k%d", i);
            memset(val[i], 'A' + (n * 7 + i) % 26, sizeof val[i]);
            c.prefs[c.nprefs++] = (rp_pref){S(key[i]), {val[i], sizeof val[i]}};
        }
        rc = rp_store_put_customer(f->s, &c, NULL, NULL, &eb);
        if (rc == RP_OK) ok++;
    }
    if (rc != RP_STORE_FULL) fprintf(stderr, "after %d puts: %s\n", ok, eb.msg);
    assert_int_equal(rc, RP_STORE_FULL);
    assert_true(ok > 10);
    /* reads go on */
    char id[RP_ID_MAX + 1];
    assert_int_equal(get_cust(f->s, "full-0000", id, NULL, &eb), RP_OK);
    assert_string_equal(id, "full-0000");
    rp_store_stats st;
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_int_equal(st.customers, (uint64_t)ok);
    assert_true(st.map_size <= (2u << 20));
    assert_true(st.map_used > 0 && st.map_used <= st.map_size);
    assert_int_equal(st.map_max, 2u << 20);
    assert_true(st.writer.map_grows >= 1);
    /* a small write may still fit; a big one does not */
    rc = rp_store_put_customer(f->s, &c, NULL, NULL, &eb);
    if (rc != RP_STORE_FULL) fprintf(stderr, "again: %s\n", eb.msg);
    assert_int_equal(rc, RP_STORE_FULL);
}

/* ---- tests: concurrency ------------------------------------------------------ */

typedef struct gc_arg {
    rp_store *s;
    int idx;
    atomic_int *failures;
} gc_arg;

#define GC_THREADS 16
#define GC_PER_THREAD 200

static void *gc_thread(void *p) {
    gc_arg *a = p;
    char cid[16];
    snprintf(cid, sizeof cid, "gc-%d", a->idx % 4);
    for (int i = 0; i < GC_PER_THREAD; i++) {
        rp_event e = ev(cid, NOW - 100 + i % 7, "contact", "group commit");
        rp_errbuf eb = {0};
        if (rp_store_append_event(a->s, &e, NOW, NULL, &eb) != RP_OK) atomic_fetch_add(a->failures, 1);
    }
    return NULL;
}

static void test_group_commit(void **state) {
    fx *f = *state;
    f->cfg.durability = RP_DURABLE_SYNC;
    fx_reopen(f);
    for (int i = 0; i < 4; i++) {
        char cid[16];
        snprintf(cid, sizeof cid, "gc-%d", i);
        rp_customer c;
        cust(&c, cid);
        put_ok(f->s, &c);
    }
    pthread_t th[GC_THREADS];
    gc_arg args[GC_THREADS];
    atomic_int failures = 0;
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (gc_arg){f->s, i, &failures};
        assert_int_equal(pthread_create(&th[i], NULL, gc_thread, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    const uint32_t per = GC_THREADS / 4 * GC_PER_THREAD;
    rp_cursor *all = calloc(per + 1, sizeof *all);
    assert_non_null(all);
    for (int c = 0; c < 4; c++) {
        char cid[16];
        snprintf(cid, sizeof cid, "gc-%d", c);
        assert_int_equal(history_all(f->s, cid, 97, all, per + 1), per);
        /* at each ts the seqs are exactly 0..k-1 */
        uint32_t count[7] = {0}, maxseq[7] = {0};
        for (uint32_t i = 0; i < per; i++) {
            int64_t k = all[i].ts - (NOW - 100);
            assert_true(k >= 0 && k < 7);
            count[k]++;
            if (all[i].seq > maxseq[k]) maxseq[k] = all[i].seq;
        }
        for (int k = 0; k < 7; k++) assert_int_equal(maxseq[k] + 1, count[k]);
    }
    free(all);
    rp_store_stats st;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_int_equal(st.events, 4 * per);
    assert_true(st.writer.writes_ok >= GC_THREADS * GC_PER_THREAD);
    assert_true(st.writer.commits < st.writer.writes_ok);
}

/* ---- tests: event_id (the evids index) ------------------------------------- */

typedef struct wappend_arg {
    rp_store *s;
    const rp_event *e;
    int64_t now;
    rp_cursor at;
    bool dup;
} wappend_arg;

static rp_err wappend_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    wappend_arg *a = arg;
    return rp_store_wappend_event(a->s, txn, a->e, a->now, &a->at, &a->dup, NULL, eb);
}

/* Append e; *dup gets whether it was already stored. */
static rp_cursor append_dup(rp_store *s, const rp_event *e, bool *dup) {
    wappend_arg a = {s, e, NOW, {0, 0}, false};
    rp_errbuf eb = {0};
    rp_err rc = rp_store_write(s, wappend_fn, &a, &eb);
    if (rc != RP_OK) fprintf(stderr, "append: %s\n", eb.msg);
    assert_int_equal(rc, RP_OK);
    *dup = a.dup;
    return a.at;
}

typedef struct wmerge_arg {
    rp_store *s;
    const char *from, *into;
    uint32_t dropped;
} wmerge_arg;

static rp_err wmerge_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    wmerge_arg *a = arg;
    return rp_store_wmerge(a->s, txn, S(a->from), S(a->into), NOW, NULL, &a->dropped, NULL, eb);
}

/* The evids entry of (cid, event_id): true and *at when present. */
static bool evid_at(rp_store *s, const char *cid, const char *eid, rp_cursor *at) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    MDB_dbi dbi;
    assert_int_equal(mdb_dbi_open(t, "evids", 0, &dbi), 0);
    char key[160];
    size_t cn = strlen(cid), en = strlen(eid);
    memcpy(key, cid, cn);
    key[cn] = '\0';
    memcpy(key + cn + 1, eid, en);
    MDB_val k = {cn + 1 + en, key}, v;
    int mrc = mdb_get(t, dbi, &k, &v);
    if (mrc == 0) {
        assert_int_equal(v.mv_size, 12);
        const unsigned char *p = v.mv_data;
        uint64_t ts = 0;
        for (int i = 0; i < 8; i++) ts = ts << 8 | p[i];
        at->ts = (int64_t)ts;
        at->seq = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    } else {
        assert_int_equal(mrc, MDB_NOTFOUND);
    }
    rp_store_rend(s, t);
    return mrc == 0;
}

/* Entries of the evids database. */
static size_t evids_count(rp_store *s) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    MDB_dbi dbi;
    MDB_stat st;
    assert_int_equal(mdb_dbi_open(t, "evids", 0, &dbi), 0);
    assert_int_equal(mdb_stat(t, dbi, &st), 0);
    rp_store_rend(s, t);
    return st.ms_entries;
}

static rp_event ev_id(const char *cid, int64_t ts, const char *summary, const char *eid) {
    rp_event e = ev(cid, ts, "contact", summary);
    e.event_id = S(eid);
    return e;
}

/* Append: the same event_id twice stores one event and answers the first
 * one's place; another customer may use the same event_id. */
static void test_evid_append(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "ev-1");
    put_ok(f->s, &c);
    cust(&c, "ev-2");
    put_ok(f->s, &c);
    bool dup;
    rp_event e = ev_id("ev-1", NOW - 60, "first", "CRM-1");
    rp_cursor a1 = append_dup(f->s, &e, &dup);
    assert_false(dup);
    rp_event again = ev_id("ev-1", NOW - 30, "retried", "CRM-1"); /* even with another ts */
    rp_cursor a2 = append_dup(f->s, &again, &dup);
    assert_true(dup);
    assert_int_equal(a2.ts, a1.ts);
    assert_int_equal(a2.seq, a1.seq);
    rp_cursor all[8], at;
    assert_int_equal(history_all(f->s, "ev-1", 4, all, 8), 1);
    assert_true(evid_at(f->s, "ev-1", "CRM-1", &at));
    assert_int_equal(at.ts, NOW - 60);
    /* the same source id on another customer is another event */
    rp_event other = ev_id("ev-2", NOW - 60, "other", "CRM-1");
    append_dup(f->s, &other, &dup);
    assert_false(dup);
    /* events without an event_id are never duplicates */
    rp_event plain = ev("ev-1", NOW - 60, "contact", "plain");
    append_dup(f->s, &plain, &dup);
    assert_false(dup);
    append_dup(f->s, &plain, &dup);
    assert_false(dup);
    assert_int_equal(history_all(f->s, "ev-1", 4, all, 8), 3);
    assert_int_equal(evids_count(f->s), 2);
    /* an alias resolves: the duplicate is found under the survivor */
    rp_event via = ev_id("ev-1", NOW, "x", "CRM-1");
    append_dup(f->s, &via, &dup);
    assert_true(dup);
}

/* Import of an exported event: has_seq places it at (ts, seq) when free;
 * the same bytes there are a duplicate; another event there gets the next
 * free seq. */
static void test_evid_import_seq(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "im-1");
    put_ok(f->s, &c);
    bool dup;
    rp_event e = ev("im-1", NOW - 10, "contact", "exported");
    e.has_seq = true;
    e.seq = 5;
    rp_cursor at = append_dup(f->s, &e, &dup);
    assert_false(dup);
    assert_int_equal(at.seq, 5);
    at = append_dup(f->s, &e, &dup);
    assert_true(dup);
    assert_int_equal(at.seq, 5);
    rp_event other = ev("im-1", NOW - 10, "contact", "something else");
    other.has_seq = true;
    other.seq = 5;
    at = append_dup(f->s, &other, &dup);
    assert_false(dup);
    assert_int_equal(at.seq, 6);
    rp_cursor all[8];
    assert_int_equal(history_all(f->s, "im-1", 4, all, 8), 2);
}

/* Retention drops the evids entries of the events it trims; a trimmed
 * event_id may be appended again. */
static void test_evid_trim(void **state) {
    fx *f = *state;
    f->cfg.retention_max_events = 3;
    fx_reopen(f);
    rp_customer c;
    cust(&c, "tr-1");
    put_ok(f->s, &c);
    char ids[6][8];
    bool dup;
    for (int i = 0; i < 6; i++) {
        snprintf(ids[i], sizeof ids[i], "E%d", i);
        rp_event e = ev_id("tr-1", NOW - 100 + i, "x", ids[i]);
        append_dup(f->s, &e, &dup);
        assert_false(dup);
    }
    rp_cursor at;
    for (int i = 0; i < 6; i++) assert_int_equal(evid_at(f->s, "tr-1", ids[i], &at), i >= 3);
    assert_int_equal(evids_count(f->s), 3);
    /* an event older than every kept one is trimmed at once, with its entry */
    rp_event old = ev_id("tr-1", NOW - 1000, "x", "OLD");
    append_dup(f->s, &old, &dup);
    assert_false(evid_at(f->s, "tr-1", "OLD", &at));
    assert_int_equal(evids_count(f->s), 3);
}

/* Merge: the survivor keeps its copy of a shared event_id, from's copy is
 * dropped and counted; from's other event_ids move with their events;
 * from's entries are gone. Forget removes the survivor's. */
static void test_evid_merge_forget(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "mg-from");
    put_ok(f->s, &c);
    cust(&c, "mg-into");
    put_ok(f->s, &c);
    bool dup;
    rp_event a = ev_id("mg-into", NOW - 50, "into's copy", "SHARED");
    rp_cursor kept = append_dup(f->s, &a, &dup);
    rp_event b = ev_id("mg-from", NOW - 40, "from's copy", "SHARED");
    append_dup(f->s, &b, &dup);
    assert_false(dup);
    rp_event d = ev_id("mg-from", NOW - 50, "from only", "ONLY-FROM"); /* same (ts, seq) as a */
    append_dup(f->s, &d, &dup);
    rp_event p = ev("mg-from", NOW - 30, "contact", "plain");
    append_dup(f->s, &p, &dup);
    wmerge_arg m = {f->s, "mg-from", "mg-into", 99};
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_write(f->s, wmerge_fn, &m, &eb), RP_OK);
    assert_int_equal(m.dropped, 1);
    rp_cursor all[8], at;
    assert_int_equal(history_all(f->s, "mg-into", 4, all, 8), 3);
    assert_true(evid_at(f->s, "mg-into", "SHARED", &at));
    assert_int_equal(at.ts, kept.ts);
    assert_int_equal(at.seq, kept.seq);
    assert_true(evid_at(f->s, "mg-into", "ONLY-FROM", &at));
    assert_int_equal(at.ts, NOW - 50);
    assert_int_equal(at.seq, 1); /* re-keyed: into had seq 0 at that ts */
    assert_false(evid_at(f->s, "mg-from", "SHARED", &at));
    assert_false(evid_at(f->s, "mg-from", "ONLY-FROM", &at));
    assert_int_equal(evids_count(f->s), 2);
    /* a retry through the old id is a duplicate of the survivor's event */
    rp_event retry = ev_id("mg-from", NOW, "retry", "ONLY-FROM");
    append_dup(f->s, &retry, &dup);
    assert_true(dup);
    /* a merge without shared event_ids drops nothing */
    cust(&c, "mg-third");
    put_ok(f->s, &c);
    rp_event t = ev_id("mg-third", NOW - 5, "third", "T-1");
    append_dup(f->s, &t, &dup);
    wmerge_arg m2 = {f->s, "mg-third", "mg-into", 99};
    assert_int_equal(rp_store_write(f->s, wmerge_fn, &m2, &eb), RP_OK);
    assert_int_equal(m2.dropped, 0);
    assert_int_equal(evids_count(f->s), 3);
    /* forget: every evids entry of the customer goes */
    assert_int_equal(rp_store_forget(f->s, S("mg-into"), &eb), RP_OK);
    assert_int_equal(evids_count(f->s), 0);
}

/* --ro-open DIR: exit 0 when a read-only open of DIR succeeds. */
static int ro_open_child(const char *dir) {
    rp_config cfg;
    rp_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    rp_store *s = NULL;
    rp_errbuf eb = {0};
    if (rp_store_open_readonly(&cfg, &s, &eb) != RP_OK) {
        fprintf(stderr, "ro open: %s\n", eb.msg);
        return 10;
    }
    rp_store_close(s);
    return 0;
}

/* A store written before evids existed (no such database) still opens:
 * read-only without it, read-write creating it. */
static void test_evid_old_store_opens(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "old-1");
    put_ok(f->s, &c);
    rp_event e = ev("old-1", NOW - 5, "contact", "before event_id");
    append_ok(f->s, &e, NULL);
    rp_store_close(f->s);
    f->s = NULL;
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, f->cfg.map_max), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "evids", 0, &dbi), 0);
    assert_int_equal(mdb_drop(t, dbi, 1), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    char *argv[] = {g_self, "--ro-open", f->dir, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, g_self, NULL, NULL, argv, environ), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    fx_reopen(f);
    assert_int_equal(evids_count(f->s), 0);
    rp_event n = ev_id("old-1", NOW, "x", "NEW-1");
    bool dup;
    append_dup(f->s, &n, &dup);
    append_dup(f->s, &n, &dup);
    assert_true(dup);
    rp_cursor all[4];
    assert_int_equal(history_all(f->s, "old-1", 4, all, 4), 2);
}

/* rp_store_submit: the asynchronous path, done called after commit. */
typedef struct sub_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok;
} sub_ctx;

typedef struct sub_item {
    rp_write_req req;
    rp_store *s;
    rp_event e;
    sub_ctx *ctx;
} sub_item;

static rp_err sub_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    sub_item *it = arg;
    return rp_store_wappend_event(it->s, txn, &it->e, NOW, NULL, NULL, NULL, eb);
}

static void sub_done(void *arg, rp_err rc, const rp_errbuf *eb) {
    (void)eb;
    sub_item *it = arg;
    pthread_mutex_lock(&it->ctx->mu);
    it->ctx->done++;
    if (rc == RP_OK) it->ctx->ok++;
    pthread_cond_signal(&it->ctx->cv);
    pthread_mutex_unlock(&it->ctx->mu);
}

static void test_submit(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "sub-1");
    put_ok(f->s, &c);
    sub_ctx ctx = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    sub_item items[10];
    for (int i = 0; i < 10; i++) {
        items[i] = (sub_item){.s = f->s, .ctx = &ctx};
        items[i].e = ev(i == 9 ? "ghost" : "sub-1", NOW - i, "contact", "async");
        items[i].req.fn = sub_fn;
        items[i].req.done = sub_done;
        items[i].req.arg = &items[i];
        assert_int_equal(rp_store_submit(f->s, &items[i].req), RP_OK);
    }
    pthread_mutex_lock(&ctx.mu);
    while (ctx.done < 10) pthread_cond_wait(&ctx.cv, &ctx.mu);
    pthread_mutex_unlock(&ctx.mu);
    assert_int_equal(ctx.ok, 9); /* the ghost customer's event failed alone */
    rp_cursor all[16];
    assert_int_equal(history_all(f->s, "sub-1", 16, all, 16), 9);
}

/* ---- tests: reopen, read-only, schema ------------------------------------------ */

static void test_reopen_keeps_data(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "ro-1");
    c.name = S("Reopen Person");
    c.phones[c.nphones++] = S("+14155550400");
    put_ok(f->s, &c);
    for (int i = 0; i < 3; i++) {
        rp_event e = ev("ro-1", NOW - 10 + i, "contact", "kept");
        append_ok(f->s, &e, NULL);
    }
    fx_reopen(f);
    rp_errbuf eb = {0};
    uint64_t v;
    assert_int_equal(get_cust(f->s, "ro-1", NULL, &v, &eb), RP_OK);
    assert_int_equal(v, 1);
    put_ok(f->s, &c);
    assert_int_equal(get_cust(f->s, "ro-1", NULL, &v, &eb), RP_OK);
    assert_int_equal(v, 2);
    rp_cursor all[4];
    assert_int_equal(history_all(f->s, "ro-1", 4, all, 4), 3);
    assert_int_equal(lookup(f->s, RP_IDENT_PHONE, "+14155550400", NULL, NULL), 1);
    assert_int_equal(rp_store_env(f->s) != NULL, 1);
    assert_string_equal(rp_store_config(f->s)->data_dir, f->dir);
}

#define GROW_N 400 /* customers of ~4 KiB: well past a 1 MiB map */

/* The reader half of test_readonly, run in a child process: read what the
 * parent wrote, tell it (wfd), wait (rfd) while it grows the map past the
 * size this reader mapped, then read the new data (MDB_MAP_RESIZED path). */
static int ro_child(const char *dir, int rfd, int wfd) {
    rp_config cfg;
    rp_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    rp_store *s;
    rp_errbuf eb = {0};
    if (rp_store_open_readonly(&cfg, &s, &eb) != RP_OK) {
        fprintf(stderr, "ro open: %s\n", eb.msg);
        return 10;
    }
    int ret = 0;
    MDB_txn *t;
    rp_customer c;
    rp_lookup lk;
    if (rp_store_rbegin(s, &t, &eb) != RP_OK) ret = 11;
    else {
        if (rp_store_get_customer(s, t, S("ro-1"), &c, &eb) != RP_OK || !str_is(c.name, "Reopen Person"))
            ret = 12;
        else if (rp_store_lookup(s, t, RP_IDENT_PHONE, S("415-555-0400"), &lk, &eb) != RP_OK || lk.n != 1)
            ret = 13;
        rp_store_rend(s, t);
    }
    if (ret == 0 && history_all(s, "ro-1", 2, (rp_cursor[4]){{0, 0}}, 4) != 3) ret = 14;
    rp_customer w;
    cust(&w, "ro-2");
    if (ret == 0 && rp_store_put_customer(s, &w, NULL, NULL, &eb) != RP_FORBIDDEN) ret = 15;
    rp_write_req req = {0};
    if (ret == 0 && rp_store_submit(s, &req) != RP_UNAVAILABLE) ret = 16;
    rp_store_stats st;
    if (ret == 0 && (rp_store_stats_get(s, &st, &eb) != RP_OK || st.customers != 1)) ret = 17;
    char b = 'r';
    if (write(wfd, &b, 1) != 1 || read(rfd, &b, 1) != 1) ret = ret ? ret : 18;
    if (ret == 0) {
        rp_err rc = rp_store_rbegin(s, &t, &eb);
        if (rc != RP_OK) {
            fprintf(stderr, "ro rbegin after growth: %s\n", eb.msg);
            ret = 19;
        } else {
            if (rp_store_get_customer(s, t, S("grow-0399"), &c, &eb) != RP_OK) ret = 20;
            rp_store_rend(s, t);
        }
    }
    if (ret == 0 && (rp_store_stats_get(s, &st, &eb) != RP_OK || st.customers != GROW_N + 1)) ret = 21;
    rp_store_close(s);
    return ret;
}

static void test_readonly(void **state) {
    fx *f = *state;
    rp_customer c;
    cust(&c, "ro-1");
    c.name = S("Reopen Person");
    c.phones[c.nphones++] = S("+14155550400");
    put_ok(f->s, &c);
    for (int i = 0; i < 3; i++) {
        rp_event e = ev("ro-1", NOW - 10 + i, "contact", "seen read-only");
        append_ok(f->s, &e, NULL);
    }
    /* the read-write store stays open while the child reads */
    /* close-on-exec pipes; the child gets its two ends as fds 3 and 4 */
    int to_child[2], to_parent[2];
    assert_int_equal(pipe2(to_child, O_CLOEXEC), 0);
    assert_int_equal(pipe2(to_parent, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 3);
    posix_spawn_file_actions_adddup2(&fa, to_parent[1], 4);
    char *argv[] = {g_self, "--ro-child", f->dir, "3", "4", NULL};
    pid_t pid;
    int sp = posix_spawn(&pid, g_self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(sp, 0);
    close(to_child[0]);
    close(to_parent[1]);
    char b;
    ssize_t got = read(to_parent[0], &b, 1);
    /* grow the map well past the 1 MiB the child mapped */
    static char note[RP_NOTE_MAX];
    memset(note, 'g', sizeof note - 1);
    for (int n = 0; got == 1 && n < GROW_N; n++) {
        char id[16];
        snprintf(id, sizeof id, "grow-%04d", n);
        rp_customer g;
        cust(&g, id);
        for (int i = 0; i < RP_MAX_NOTES; i++) g.notes[g.nnotes++] = (rp_str){note, sizeof note - 1 - (size_t)i};
        put_ok(f->s, &g);
    }
    rp_store_stats st;
    rp_errbuf eb = {0};
    b = 'g';
    ssize_t put = write(to_child[1], &b, 1);
    close(to_child[1]); /* EOF for the child in any case */
    close(to_parent[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(got, 1);
    assert_int_equal(put, 1);
    assert_int_equal(rp_store_stats_get(f->s, &st, &eb), RP_OK);
    assert_true(st.writer.map_grows >= 1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* no store at all */
    rp_config cfg = f->cfg;
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/nothing-here", f->dir);
    rp_store *s = NULL;
    assert_int_equal(rp_store_open_readonly(&cfg, &s, &eb), RP_NOT_FOUND);
    assert_null(s);
}

static void test_schema_mismatch(void **state) {
    fx *f = *state;
    rp_store_close(f->s);
    f->s = NULL;
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi d;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "meta", 0, &d), 0);
    unsigned char two[4] = {2, 0, 0, 0};
    MDB_val k = {6, "schema"}, v = {4, two};
    assert_int_equal(mdb_put(t, d, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_open(&f->cfg, &f->s, &eb), RP_INTERNAL);
    assert_non_null(strstr(eb.msg, "schema version 2"));
    assert_null(f->s);
    assert_int_equal(rp_store_open_readonly(&f->cfg, &f->s, &eb), RP_INTERNAL);
    assert_null(f->s);
}

static void test_open_errors(void **state) {
    fx *f = *state;
    rp_config cfg = f->cfg;
    rp_store *s = NULL;
    rp_errbuf eb = {0};
    /* a file where the directory should be */
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb/sub", f->dir);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", path);
    assert_int_not_equal(rp_store_open(&cfg, &s, &eb), RP_OK);
    assert_null(s);
    assert_true(eb.msg[0] != '\0');
    cfg.data_dir[0] = '\0';
    assert_int_equal(rp_store_open(&cfg, &s, &eb), RP_BAD_REQUEST);
    rp_store_close(NULL);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--ro-child") == 0) return ro_child(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 3 && strcmp(argv[1], "--ro-open") == 0) return ro_open_child(argv[2]);
    /* argv[0], not /proc/self/exe: under valgrind the latter is the tool */
    if (realpath(argv[0], g_self) == NULL) {
        perror("realpath");
        return 1;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_put_get_versions), T(test_version_conflicts), T(test_bad_records),
        T(test_phone_formats),    T(test_household_and_reindex), T(test_patch),
        T(test_history_paging),   T(test_retention_count),
        T(test_retention_age),    T(test_issues),            T(test_merge),
        T(test_merge_too_large),  T(test_merge_too_large_moves_nothing),
        T(test_alias_loop),        T(test_forget),
        T(test_scan),             T(test_store_full),        T(test_group_commit),
        T(test_submit),           T(test_reopen_keeps_data), T(test_readonly),
        T(test_schema_mismatch),  T(test_open_errors),
        T(test_evid_append),      T(test_evid_import_seq),   T(test_evid_trim),
        T(test_evid_merge_forget), T(test_evid_old_store_opens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
