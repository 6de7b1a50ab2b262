/* test_restore.c — end-to-end: a backup restores merged ids.
 *
 * Two real rapportd servers (tests/e2e/harness.h), A and B, and the real
 * `rapport` binary. On A: uk-1 and dup-1 (with a phone, an event and an
 * issue), dup-1 merged into uk-1. `rapport --server A export FILE`, then
 * `rapport --server B import FILE` into B's empty store. On B dup-1 must
 * answer as uk-1 (customer.get, context.get by id), dup-1's old phone must
 * find uk-1, B's export must equal A's byte for byte, and importing again
 * must change nothing. A second test: an alias line before its customer is
 * refused with a sentence that says what to do, and goes in once the
 * customer is there.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/calls.h"
#include "e2e/run.h"

typedef struct fx {
    rp_h a, b;
} fx;

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    *state = f;
    return f ? 0 : -1;
}

static int fx_teardown(void **state) {
    fx *f = *state;
    if (f) {
        rp_h_cleanup(&f->a);
        rp_h_cleanup(&f->b);
    }
    free(f);
    *state = NULL;
    return 0;
}

/* Run build/rapport with args (NULL-terminated), stdout and stderr into
 * dir/stdout and dir/stderr; returns the exit status. *err (may be NULL)
 * gets stderr (malloc'd). */
static int rapport(const char *dir, char **err, const char *const *args) {
    rp_run r = rp_run_in(dir, NULL, NULL, args);
    if (err) {
        *err = r.err;
        r.err = NULL;
    } else if (r.code != 0) {
        fprintf(stderr, "rapport %s: exit %d: %s\n", args[2], r.code, r.err);
    }
    int code = r.code;
    rp_run_free(&r);
    return code;
}

#define RAPPORT(dir, err, ...) rapport(dir, err, (const char *const[]){__VA_ARGS__, NULL})

/* An unsigned field of a result map. */
static uint64_t mp_uint(const msgpack_object *m, const char *key) { return mp_u64(mp_get(m, key)); }

typedef struct counts {
    uint64_t customers, events, issues, aliases, phones;
} counts;

static counts stats_of(const rp_h *h) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    msgpack_object r = ok_call(c, "stats", NULL);
    counts n = {mp_uint(&r, "customers"), mp_uint(&r, "events"), mp_uint(&r, "issues"),
                mp_uint(&r, "aliases"), mp_uint(&r, "phones")};
    rp_client_close(c);
    return n;
}

static void expect_same_counts(counts x, counts y) {
    assert_int_equal(x.customers, y.customers);
    assert_int_equal(x.events, y.events);
    assert_int_equal(x.issues, y.issues);
    assert_int_equal(x.aliases, y.aliases);
    assert_int_equal(x.phones, y.phones);
}

/* The checks on a restored server: dup-1 answers as uk-1 everywhere. */
static void expect_merged(const rp_h *h) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    msgpack_object r = ok_call(c, "customer.get", "{\"id\":\"dup-1\"}");
    assert_true(mp_is_str(mp_get(&r, "id"), "uk-1"));
    r = ok_call(c, "context.get", "{\"id\":\"dup-1\"}");
    assert_true(mp_is_true(mp_get(&r, "found")));
    assert_true(mp_is_str(mp_get(mp_get(&r, "customer"), "id"), "uk-1"));
    const msgpack_object *open = mp_get(&r, "open_issues");
    assert_non_null(open);
    assert_int_equal(open->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(open->via.array.size, 1);
    r = ok_call(c, "lookup", "{\"phone\":\"(415) 555-0199\"}");
    assert_true(mp_is_true(mp_get(&r, "found")));
    const msgpack_object *cands = mp_get(&r, "candidates");
    assert_non_null(cands);
    assert_int_equal(cands->via.array.size, 1);
    assert_true(mp_is_str(mp_get(&cands->via.array.ptr[0], "customer_id"), "uk-1"));
    rp_client_close(c);
}

/* export from A -> import into an empty B: merged ids answer on B, the
 * exports are identical, and a second import changes nothing. */
static void test_restore_keeps_aliases(void **state) {
    fx *f = *state;
    assert_int_equal(rp_h_start(&f->a, NULL), 0);
    rp_client *c = rp_h_connect(&f->a);
    assert_non_null(c);
    char json[512];
    long long ts = (long long)time(NULL) - 3600; /* recent: retention keeps it */
    ok_call(c, "customer.put", "{\"id\":\"uk-1\",\"customer\":{\"name\":\"Ann Lee\","
                               "\"phones\":[\"+44 20 7946 0958\"]}}");
    ok_call(c, "customer.put", "{\"id\":\"dup-1\",\"customer\":{\"name\":\"Ann L.\","
                               "\"phones\":[\"+1 415 555 0199\"]}}");
    snprintf(json, sizeof json,
             "{\"event\":{\"customer_id\":\"dup-1\",\"ts\":%lld,\"channel\":\"phone\","
             "\"kind\":\"contact\",\"topic\":\"billing\",\"summary\":\"charged twice\"}}", ts);
    ok_call(c, "event.append", json);
    ok_call(c, "issue.put", "{\"issue\":{\"customer_id\":\"dup-1\",\"issue_id\":\"T-1\","
                            "\"topic\":\"billing\",\"status\":\"open\"}}");
    ok_call(c, "customer.merge", "{\"from\":\"dup-1\",\"into\":\"uk-1\"}");
    rp_client_close(c);
    expect_merged(&f->a);

    const char *d = f->a.dir;
    char ea[400], eb1[400], eb2[400];
    snprintf(ea, sizeof ea, "%s/a.ndjson", d);
    snprintf(eb1, sizeof eb1, "%s/b1.ndjson", d);
    snprintf(eb2, sizeof eb2, "%s/b2.ndjson", d);
    assert_int_equal(RAPPORT(d, NULL, "--server", f->a.addr, "export", ea), 0);
    char *text = rp_slurp(ea, NULL);
    /* the alias line comes after its customer's lines */
    const char *cust = strstr(text, "{\"type\":\"customer\",\"id\":\"uk-1\"");
    const char *alias = strstr(text, "{\"type\":\"alias\",\"id\":\"dup-1\",\"customer_id\":\"uk-1\"}\n");
    assert_non_null(cust);
    assert_non_null(alias);
    assert_true(cust < alias);
    assert_non_null(strstr(cust, "{\"type\":\"event\""));
    assert_true(strstr(cust, "{\"type\":\"event\"") < alias);
    assert_true(strstr(cust, "{\"type\":\"issue\"") < alias);
    free(text);

    assert_int_equal(rp_h_start(&f->b, NULL), 0);
    counts empty = stats_of(&f->b);
    assert_int_equal(empty.customers, 0);
    char *err = NULL;
    assert_int_equal(RAPPORT(d, &err, "--server", f->b.addr, "import", ea), 0);
    assert_non_null(strstr(err, "4 records imported, 0 skipped"));
    free(err);
    expect_merged(&f->b);
    counts ca = stats_of(&f->a), cb = stats_of(&f->b);
    expect_same_counts(ca, cb);
    assert_int_equal(cb.aliases, 1);
    assert_int_equal(cb.events, 1);
    assert_int_equal(RAPPORT(d, NULL, "--server", f->b.addr, "export", eb1), 0);
    rp_expect_same_file(ea, eb1);

    /* Again, the whole file: nothing changes. Customers keep their version,
     * issues are replaced by themselves, the alias is already there, and
     * the event is found at its (ts, seq) and stored nothing. */
    err = NULL;
    assert_int_equal(RAPPORT(d, &err, "--server", f->b.addr, "import", ea), 0);
    assert_non_null(strstr(err, "4 records imported, 0 skipped"));
    free(err);
    expect_same_counts(cb, stats_of(&f->b));
    assert_int_equal(RAPPORT(d, NULL, "--server", f->b.addr, "export", eb2), 0);
    rp_expect_same_file(ea, eb2);
    expect_merged(&f->b);

    assert_int_equal(rp_h_stop(&f->a), 0);
    assert_int_equal(rp_h_stop(&f->b), 0);
}

/* An alias before its customer is refused, naming the customer and what
 * to do; conflicting aliases are refused; once the customer is there the
 * alias goes in. */
static void test_alias_order_and_conflicts(void **state) {
    fx *f = *state;
    assert_int_equal(rp_h_start(&f->a, NULL), 0);
    const char *d = f->a.dir;
    char path[400];
    snprintf(path, sizeof path, "%s/order.ndjson", d);
    rp_write_file(path, "{\"type\":\"alias\",\"id\":\"dup-1\",\"customer_id\":\"uk-1\"}\n"
                     "{\"type\":\"customer\",\"id\":\"uk-1\",\"name\":\"Ann\"}\n"
                     "{\"type\":\"customer\",\"id\":\"uk-2\",\"name\":\"Bo\"}\n"
                     "{\"type\":\"alias\",\"id\":\"uk-2\",\"customer_id\":\"uk-1\"}\n"
                     "{\"type\":\"alias\",\"id\":\"dup-2\",\"customer_id\":\"uk-1\",\"x\":1}\n");
    char *err = NULL;
    assert_int_equal(RAPPORT(d, &err, "--server", f->a.addr, "import", path), 3);
    assert_non_null(strstr(err, "line 1: NOT_FOUND: alias target 'uk-1' does not exist "
                                "(import the customer first)"));
    assert_non_null(strstr(err, "line 4: CONFLICT: id 'uk-2' is a customer"));
    assert_non_null(strstr(err, "line 5: BAD_REQUEST: unknown field 'x'"));
    assert_non_null(strstr(err, "2 records imported, 3 skipped"));
    free(err);
    assert_int_equal(stats_of(&f->a).aliases, 0);

    rp_write_file(path, "{\"type\":\"alias\",\"id\":\"dup-1\",\"customer_id\":\"uk-1\"}\n"
                     "{\"type\":\"alias\",\"id\":\"dup-1\",\"customer_id\":\"uk-1\"}\n");
    err = NULL;
    assert_int_equal(RAPPORT(d, &err, "--server", f->a.addr, "import", path), 0);
    assert_non_null(strstr(err, "2 records imported, 0 skipped"));
    free(err);
    rp_write_file(path, "{\"type\":\"alias\",\"id\":\"dup-1\",\"customer_id\":\"uk-2\"}\n");
    err = NULL;
    assert_int_equal(RAPPORT(d, &err, "--server", f->a.addr, "import", path), 3);
    assert_non_null(strstr(err, "CONFLICT: id 'dup-1' was merged into 'uk-1', not 'uk-2'"));
    free(err);
    rp_client *c = rp_h_connect(&f->a);
    assert_non_null(c);
    msgpack_object r = ok_call(c, "customer.get", "{\"id\":\"dup-1\"}");
    assert_true(mp_is_str(mp_get(&r, "id"), "uk-1"));
    rp_client_close(c);
    assert_int_equal(stats_of(&f->a).aliases, 1);
    assert_int_equal(rp_h_stop(&f->a), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restore_keeps_aliases, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_alias_order_and_conflicts, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
