/* test_backup.c — rp_store_backup: a copy of a store with customers,
 * events, issues and aliases (after a merge) opens and answers the same;
 * a copy taken while a writer appends holds a prefix of its appends; and
 * every refusal (relative, empty, non-empty, a file, a missing parent)
 * leaves nothing behind.
 *
 * Every test gets a fresh mkdtemp directory holding the store (data/) and
 * the backups. The copy is another LMDB environment (another file), so it
 * can be opened in this same process beside the original.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "model/codec.h"
#include "model/record.h"
#include "store/backup.h"
#include "store/store.h"
#include "store/fixture.h"

/* ---- fixture -------------------------------------------------------------- */

static int setup(void **state) {
    fx *f = fx_new("/tmp/rp_backup_XXXXXX", "data");
    if (f == NULL) return -1;
    f->cfg.map_initial = 4u << 20;
    return fx_open_first(f, state);
}

static void path_in(const fx *f, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", f->dir, name);
}

static rp_store *open_copy(const char *dir) {
    rp_config cfg;
    rp_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    cfg.map_max = 64u << 20;
    rp_store *s = NULL;
    rp_errbuf eb = {0};
    rp_err rc = rp_store_open(&cfg, &s, &eb);
    if (rc != RP_OK) fprintf(stderr, "open copy %s: %s\n", dir, eb.msg);
    assert_int_equal(rc, RP_OK);
    return s;
}

/* ---- data ----------------------------------------------------------------- */

static void put(rp_store *s, const char *id, const char *name, const char *phone, const char *email) {
    rp_customer c;
    memset(&c, 0, sizeof c);
    c.id = S(id);
    c.name = S(name);
    c.language = S("es");
    if (phone) {
        c.phones[0] = S(phone);
        c.nphones = 1;
    }
    if (email) {
        c.emails[0] = S(email);
        c.nemails = 1;
    }
    rp_put_opts o = {.now = NOW};
    rp_errbuf eb = {0};
    rp_err rc = rp_store_put_customer(s, &c, &o, NULL, &eb);
    if (rc != RP_OK) fprintf(stderr, "put %s: %s\n", id, eb.msg);
    assert_int_equal(rc, RP_OK);
}

static void append(rp_store *s, const char *id, int64_t ts, const char *summary) {
    rp_event e;
    memset(&e, 0, sizeof e);
    e.customer_id = S(id);
    e.ts = ts;
    e.channel = RP_CH_PHONE;
    e.kind = S("contact");
    e.topic = S("billing");
    e.summary = S(summary);
    e.outcome = RP_OUT_UNRESOLVED;
    rp_errbuf eb = {0};
    rp_err rc = rp_store_append_event(s, &e, NOW, NULL, &eb);
    if (rc != RP_OK) fprintf(stderr, "append %s: %s\n", id, eb.msg);
    assert_int_equal(rc, RP_OK);
}

static void issue(rp_store *s, const char *id, const char *issue_id, const char *summary) {
    rp_issue i;
    memset(&i, 0, sizeof i);
    i.customer_id = S(id);
    i.issue_id = S(issue_id);
    i.topic = S("delivery");
    i.summary = S(summary);
    i.status = RP_ST_OPEN;
    i.severity = RP_SEV_HIGH;
    i.follow_up_due = NOW - 3600;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_put_issue(s, &i, NOW, &eb), RP_OK);
}

/* Three customers, a duplicate merged into the first, events, issues. */
static void load(rp_store *s) {
    put(s, "c1", "Ana Lopez", "+14155550101", "ana@example.com");
    put(s, "c2", "Bo Chen", "+14155550102", NULL);
    put(s, "c3", "Cy Dube", "+14155550101", NULL); /* a shared household line */
    put(s, "dup", "Ana L.", "+14155550199", "ana.l@example.com");
    for (int i = 0; i < 30; i++) {
        char sum[64];
        snprintf(sum, sizeof sum, "contact %d", i);
        append(s, i % 3 == 0 ? "c1" : i % 3 == 1 ? "c2" : "dup", NOW - 86400 + i * 60, sum);
    }
    issue(s, "c1", "T-1", "Parcel late");
    issue(s, "dup", "T-9", "Double charge");
    issue(s, "c2", "T-2", "Router down");
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_merge(s, S("dup"), S("c1"), NOW, NULL, &eb), RP_OK);
}

/* Everything a read of id answers, as bytes: the resolved customer, every
 * event (newest first) and every issue, wire-encoded. */
static void dump(rp_store *s, const char *id, msgpack_sbuffer *sb) {
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    rp_customer c;
    rp_err rc = rp_store_get_customer(s, t, S(id), &c, &eb);
    msgpack_pack_int(&pk, (int)rc);
    if (rc == RP_OK) rp_customer_encode(&pk, &c, RP_ENC_WIRE);
    rp_event evs[64];
    uint32_t n = 0;
    bool more = false;
    rp_cursor next;
    rc = rp_store_history(s, t, S(id), 0, NULL, 64, evs, &n, &more, &next, &eb);
    msgpack_pack_int(&pk, (int)rc);
    assert_false(more);
    for (uint32_t i = 0; i < n; i++) rp_event_encode(&pk, &evs[i], RP_ENC_WIRE);
    rp_issue is[16];
    rc = rp_store_issues(s, t, S(id), 0, 16, is, &n, &more, &eb);
    msgpack_pack_int(&pk, (int)rc);
    for (uint32_t i = 0; i < n; i++) rp_issue_encode(&pk, &is[i], RP_ENC_WIRE);
    rp_store_rend(s, t);
}

static void lookup_dump(rp_store *s, rp_ident_kind k, const char *raw, char *out, size_t cap) {
    MDB_txn *t;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_rbegin(s, &t, &eb), RP_OK);
    rp_lookup lk;
    assert_int_equal(rp_store_lookup(s, t, k, S(raw), &lk, &eb), RP_OK);
    size_t used = (size_t)snprintf(out, cap, "%u:", lk.n);
    for (uint32_t i = 0; i < lk.n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%.*s,", (int)lk.ids[i].n, lk.ids[i].p);
    rp_store_rend(s, t);
}

static void expect_same(rp_store *a, rp_store *b, const char *id) {
    msgpack_sbuffer x, y;
    dump(a, id, &x);
    dump(b, id, &y);
    if (x.size != y.size || memcmp(x.data, y.data, x.size) != 0)
        fprintf(stderr, "%s answers differently on the copy\n", id);
    assert_int_equal(x.size, y.size);
    assert_memory_equal(x.data, y.data, x.size);
    msgpack_sbuffer_destroy(&x);
    msgpack_sbuffer_destroy(&y);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_copy_answers_the_same(void **state) {
    fx *f = *state;
    load(f->s);
    char dir[160];
    path_in(f, "copy", dir, sizeof dir);
    rp_backup_info info;
    rp_errbuf eb = {0};
    rp_err rc = rp_store_backup(f->s, dir, &info, &eb);
    if (rc != RP_OK) fprintf(stderr, "backup: %s\n", eb.msg);
    assert_int_equal(rc, RP_OK);
    assert_string_equal(info.dir, dir);
    char want[200];
    snprintf(want, sizeof want, "%s/data.mdb", dir);
    assert_string_equal(info.path, want);
    struct stat st;
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal((uint64_t)st.st_size, info.bytes);
    assert_true(info.bytes > 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char partial[200];
    snprintf(partial, sizeof partial, "%s/" RP_BACKUP_PARTIAL, dir);
    assert_int_equal(access(partial, F_OK), -1);

    rp_store *copy = open_copy(dir);
    const char *ids[] = {"c1", "c2", "c3", "dup", "nobody"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) expect_same(f->s, copy, ids[i]);
    /* the merged id answers as the survivor on the copy */
    MDB_txn *t;
    assert_int_equal(rp_store_rbegin(copy, &t, &eb), RP_OK);
    rp_str canon;
    assert_int_equal(rp_store_resolve(copy, t, S("dup"), &canon, &eb), RP_OK);
    assert_true(rp_str_eqc(canon, "c1"));
    rp_store_rend(copy, t);
    const char *phones[] = {"+14155550101", "415.555.0199", "+14155550102", "+14155550000"};
    for (size_t i = 0; i < 4; i++) {
        char la[256], lb[256];
        lookup_dump(f->s, RP_IDENT_PHONE, phones[i], la, sizeof la);
        lookup_dump(copy, RP_IDENT_PHONE, phones[i], lb, sizeof lb);
        assert_string_equal(la, lb);
    }
    char la[256], lb[256];
    lookup_dump(copy, RP_IDENT_EMAIL, "Ana.L@example.com", lb, sizeof lb);
    assert_string_equal(lb, "1:c1,");
    lookup_dump(f->s, RP_IDENT_EMAIL, "Ana.L@example.com", la, sizeof la);
    assert_string_equal(la, lb);
    rp_store_stats sa, sb;
    assert_int_equal(rp_store_stats_get(f->s, &sa, &eb), RP_OK);
    assert_int_equal(rp_store_stats_get(copy, &sb, &eb), RP_OK);
    assert_int_equal(sa.customers, sb.customers);
    assert_int_equal(sa.events, sb.events);
    assert_int_equal(sa.issues, sb.issues);
    assert_int_equal(sa.aliases, sb.aliases);
    assert_int_equal(sa.aliases, 1);
    assert_int_equal(sa.phones, sb.phones);
    assert_int_equal(sa.emails, sb.emails);
    /* the copy is a working store: it takes writes of its own */
    put(copy, "c9", "New on the copy", NULL, NULL);
    rp_store_close(copy);
}

/* An existing empty directory is accepted; trailing slashes are dropped. */
static void test_empty_dir_ok(void **state) {
    fx *f = *state;
    load(f->s);
    char dir[160], arg[170];
    path_in(f, "empty", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(arg, sizeof arg, "%s//", dir);
    rp_backup_info info;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_backup(f->s, arg, &info, &eb), RP_OK);
    assert_string_equal(info.dir, dir);
    rp_store *copy = open_copy(dir);
    expect_same(f->s, copy, "c1");
    rp_store_close(copy);
}

/* Every refusal has its code and leaves the file system as it was. */
static void test_refusals(void **state) {
    fx *f = *state;
    load(f->s);
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_backup(f->s, "", NULL, &eb), RP_BAD_REQUEST);
    assert_int_equal(rp_store_backup(f->s, "relative/dir", NULL, &eb), RP_BAD_REQUEST);
    assert_non_null(strstr(eb.msg, "absolute"));
    assert_int_equal(access("relative", F_OK), -1);
    char longp[RP_PATH_MAX + 8];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(rp_store_backup(f->s, longp, NULL, &eb), RP_BAD_REQUEST);

    /* the live store's own directory: not empty, never touched */
    memset(&eb, 0, sizeof eb);
    assert_int_equal(rp_store_backup(f->s, f->data, NULL, &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "not empty"));

    /* a non-empty directory */
    char dir[160], file[200];
    path_in(f, "full", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(file, sizeof file, "%s/keep.txt", dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("keep", fp);
    fclose(fp);
    assert_int_equal(rp_store_backup(f->s, dir, NULL, &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "keep.txt"));
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_size, 4);

    /* a finished backup is never overwritten */
    char done[160];
    path_in(f, "done", done, sizeof done);
    assert_int_equal(rp_store_backup(f->s, done, NULL, &eb), RP_OK);
    assert_int_equal(rp_store_backup(f->s, done, NULL, &eb), RP_CONFLICT);

    /* a file where the directory should be */
    assert_int_equal(rp_store_backup(f->s, file, NULL, &eb), RP_CONFLICT);
    assert_non_null(strstr(eb.msg, "not a directory"));
    /* a file as a component: not a directory */
    char under[220];
    snprintf(under, sizeof under, "%s/x", file);
    assert_int_equal(rp_store_backup(f->s, under, NULL, &eb), RP_BAD_REQUEST);

    /* a missing parent: NOT_FOUND, nothing created */
    char deep[200];
    path_in(f, "no/such/parent", deep, sizeof deep);
    assert_int_equal(rp_store_backup(f->s, deep, NULL, &eb), RP_NOT_FOUND);
    char no[160];
    path_in(f, "no", no, sizeof no);
    assert_int_equal(access(no, F_OK), -1);

    /* permission denied (not as root: root may write anywhere) */
    if (geteuid() != 0) {
        char ro[160], sub[200];
        path_in(f, "ro", ro, sizeof ro);
        assert_int_equal(mkdir(ro, 0500), 0);
        snprintf(sub, sizeof sub, "%s/b", ro);
        assert_int_equal(rp_store_backup(f->s, sub, NULL, &eb), RP_FORBIDDEN);
        chmod(ro, 0700);
    }
}

/* A writer appends one event after another while the backup runs: the copy
 * holds exactly the first k of them, for some k (one snapshot, no gaps). */
typedef struct appender {
    rp_store *s;
    atomic_bool stop;
    atomic_int written;
} appender;

static void *append_loop(void *arg) {
    appender *a = arg;
    rp_event e;
    memset(&e, 0, sizeof e);
    e.customer_id = S("w");
    e.channel = RP_CH_WEB;
    e.kind = S("page_view");
    e.outcome = RP_OUT_NONE;
    for (int i = 0; !atomic_load(&a->stop) && i < 100000; i++) {
        e.ts = NOW - 100000 + i;
        rp_errbuf eb = {0};
        if (rp_store_append_event(a->s, &e, NOW, NULL, &eb) != RP_OK) break;
        atomic_store(&a->written, i + 1);
    }
    return NULL;
}

static void test_consistent_under_writes(void **state) {
    fx *f = *state;
    f->cfg.retention_max_events = 1000000;
    rp_store_close(f->s);
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_open(&f->cfg, &f->s, &eb), RP_OK);
    load(f->s);
    put(f->s, "w", "Writer", NULL, NULL);
    appender a = {.s = f->s};
    atomic_init(&a.stop, false);
    atomic_init(&a.written, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, append_loop, &a), 0);
    while (atomic_load(&a.written) < 200) usleep(1000);
    char dir[160];
    path_in(f, "live", dir, sizeof dir);
    rp_err rc = rp_store_backup(f->s, dir, NULL, &eb);
    int after = atomic_load(&a.written);
    atomic_store(&a.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(rc, RP_OK);

    rp_store *copy = open_copy(dir);
    rp_store_stats st;
    assert_int_equal(rp_store_stats_get(copy, &st, &eb), RP_OK);
    MDB_txn *t;
    assert_int_equal(rp_store_rbegin(copy, &t, &eb), RP_OK);
    static rp_event evs[4096];
    uint32_t n = 0;
    bool more = false;
    rp_cursor next;
    assert_int_equal(rp_store_history(copy, t, S("w"), 0, NULL, 4096, evs, &n, &more, &next, &eb), RP_OK);
    assert_false(more);
    /* at least what was acknowledged before the call, at most what was
     * acknowledged after it (+1: the append in flight at the end) */
    assert_true(n >= 200);
    assert_true((int)n <= after + 1);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(evs[i].ts, NOW - 100000 + (int64_t)(n - 1 - i));
    rp_store_rend(copy, t);
    expect_same(f->s, copy, "c1");
    rp_store_close(copy);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_answers_the_same, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_dir_ok, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_consistent_under_writes, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
