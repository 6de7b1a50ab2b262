/* test_backtest_cli.c — end-to-end: `rapport backtest` and `rapport tune` on
 * `rapport demo` data imported into a data directory (300 customers): both
 * print their figures, --json parses with the documented fields, tune
 * refuses to run without --data, and --help lists both.
 *
 * test_backtest_server: the same demo data imported into a real rapportd;
 * `rapport --server A backtest` (admin token; the api's backtest op)
 * prints exactly what `rapport --data D backtest` prints on the server's
 * data directory (read-only open beside it), in --json and in text, with
 * and without a sample and a window; an agent token gets FORBIDDEN (exit
 * 3), --threads beyond the server's bound is a BAD_REQUEST (exit 2), and the run is
 * one audit line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "e2e/harness.h"
#include "e2e/run.h"

#define TOK_AGENT "agent-secret-0123456789"
#define TOK_ADMIN "admin-secret-0123456789"

static char g_dir[256], g_data[320], g_demo[320];

static rp_run run(const char *const *args) { return rp_run_in(g_dir, NULL, NULL, args); }
#define RUN(...) run((const char *const[]){__VA_ARGS__, NULL})

static rp_h g_h; /* the server of test_backtest_server */

static void expect_code(const rp_run *r, int code) {
    if (r->code != code && g_h.dir[0]) rp_h_dump_log(&g_h);
    if (r->code != code) fail_msg("exit %d, want %d\nstdout: %s\nstderr: %s", r->code, code, r->out, r->err);
}

static int suite_setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rp-bt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL) return -1;
    snprintf(g_data, sizeof g_data, "%s/data", g_dir);
    snprintf(g_demo, sizeof g_demo, "%s/demo.ndjson", g_dir);
    return 0;
}

static int suite_teardown(void **state) {
    (void)state;
    rp_h_cleanup(&g_h);
    if (g_dir[0]) nftw(g_dir, rp_h_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void test_demo_import(void **state) {
    (void)state;
    char now[32], outp[320];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL) - 3600);
    rp_run r = RUN("demo", "--customers", "300", "--seed", "5", "--now", now, "--events", "10-80");
    expect_code(&r, 0);
    rp_run_free(&r);
    snprintf(outp, sizeof outp, "%s/stdout", g_dir);
    assert_int_equal(rename(outp, g_demo), 0);
    r = RUN("--data", g_data, "import", g_demo);
    expect_code(&r, 0);
    rp_run_free(&r);
}

static void test_backtest_text_json(void **state) {
    (void)state;
    rp_run r = RUN("--data", g_data, "backtest");
    expect_code(&r, 0);
    rp_expect_has(r.out, "Backtest: 300 customers");
    rp_expect_has(r.out, "baseline (habit)");
    rp_expect_has(r.out, "By the contact's topic:");
    rp_expect_has(r.out, "By the signal that ranked first");
    rp_expect_has(r.out, "top-1");
    assert_string_equal(r.err, ""); /* no progress in a pipe */
    rp_run_free(&r);

    r = RUN("--data", g_data, "backtest", "--json");
    expect_code(&r, 0);
    json_t *j = rp_json_parse(r.out);
    assert_int_equal(json_integer_value(json_object_get(j, "customers")), 300);
    json_t *card = json_object_get(j, "card");
    json_int_t n = json_integer_value(json_object_get(card, "n"));
    assert_true(n > 300);
    assert_true(json_integer_value(json_object_get(card, "top1")) <= n);
    assert_true(json_integer_value(json_object_get(card, "top3")) >=
                json_integer_value(json_object_get(card, "top1")));
    assert_true(json_is_real(json_object_get(card, "top1_rate")));
    assert_true(json_is_object(json_object_get(j, "baseline")));
    assert_true(json_is_object(json_object_get(json_object_get(j, "first_contacts"), "card")));
    assert_true(json_array_size(json_object_get(j, "by_topic")) > 0);
    assert_true(json_array_size(json_object_get(j, "by_signal")) > 0);
    assert_true(json_is_array(json_object_get(j, "confusions")));
    json_decref(j);
    rp_run_free(&r);

    /* A sample: the same seed, the same figures; --threads does not matter. */
    r = RUN("--data", g_data, "backtest", "--json", "--sample", "200", "--seed", "9");
    expect_code(&r, 0);
    char *a = strdup(r.out);
    rp_run_free(&r);
    r = RUN("--data", g_data, "backtest", "--json", "--sample", "200", "--seed", "9", "--threads", "1");
    expect_code(&r, 0);
    assert_string_equal(a, r.out);
    j = rp_json_parse(r.out);
    assert_int_equal(json_integer_value(json_object_get(j, "sampled")), 200);
    json_decref(j);
    free(a);
    rp_run_free(&r);
}

static void test_tune_text_json(void **state) {
    (void)state;
    rp_run r = RUN("--data", g_data, "tune", "--trials", "4");
    expect_code(&r, 0);
    rp_expect_has(r.out, "held-out: current settings");
    rp_expect_has(r.out, "held-out: best found");
    rp_expect_has(r.out, "held-out: baseline (habit)");
    if (strstr(r.out, "the current settings stay") == NULL) rp_expect_has(r.out, "weight_call_driver = ");
    rp_run_free(&r);

    r = RUN("--data", g_data, "tune", "--trials", "4", "--json");
    expect_code(&r, 0);
    json_t *j = rp_json_parse(r.out);
    assert_true(json_is_boolean(json_object_get(j, "improves")));
    json_t *test = json_object_get(j, "test");
    assert_true(json_integer_value(json_object_get(json_object_get(test, "current"), "n")) > 0);
    assert_true(json_is_object(json_object_get(test, "baseline")));
    assert_true(json_is_real(json_object_get(json_object_get(j, "current"), "weight_habitual")));
    json_t *rec = json_object_get(j, "recommended");
    if (json_is_true(json_object_get(j, "improves")))
        assert_true(json_is_object(rec));
    else
        assert_true(json_is_null(rec));
    json_decref(j);
    rp_run_free(&r);
}

/* The same output through the server as from its data directory. */
static void expect_server_equals_data(const char *const *opts) {
    const char *sv[24] = {"--server", g_h.addr, "--token", TOK_ADMIN, "backtest"};
    const char *dv[24] = {"--data", g_h.data, "backtest"};
    size_t ns = 5, nd = 3;
    for (size_t i = 0; opts[i]; i++) sv[ns++] = dv[nd++] = opts[i];
    sv[ns] = dv[nd] = NULL;
    rp_run a = run(sv);
    expect_code(&a, 0);
    rp_run b = run(dv);
    expect_code(&b, 0);
    if (strcmp(a.out, b.out) != 0) fail_msg("--server:\n%s\n--data:\n%s", a.out, b.out);
    rp_run_free(&a);
    rp_run_free(&b);
}

static void test_backtest_server(void **state) {
    (void)state;
    assert_int_equal(rp_h_start(&g_h, "token = agent:" TOK_AGENT "\ntoken = admin:" TOK_ADMIN "\n"), 0);
    rp_run r = RUN("--server", g_h.addr, "--token", TOK_ADMIN, "import", g_demo);
    expect_code(&r, 0);
    rp_run_free(&r);

    r = RUN("--server", g_h.addr, "--token", TOK_ADMIN, "backtest", "--json");
    expect_code(&r, 0);
    json_t *j = rp_json_parse(r.out);
    assert_int_equal(json_integer_value(json_object_get(j, "customers")), 300);
    assert_true(json_integer_value(json_object_get(json_object_get(j, "card"), "n")) > 300);
    json_decref(j);
    rp_run_free(&r);

    expect_server_equals_data((const char *const[]){"--json", NULL});
    expect_server_equals_data((const char *const[]){NULL});
    expect_server_equals_data((const char *const[]){"--json", "--sample", "200", "--seed", "9", NULL});
    char since[32];
    snprintf(since, sizeof since, "%lld", (long long)time(NULL) - 86400 * 30);
    expect_server_equals_data((const char *const[]){"--json", "--since", since, "--threads", "1", NULL});

    /* an agent token: FORBIDDEN, exit 3 */
    r = RUN("--server", g_h.addr, "--token", TOK_AGENT, "backtest");
    expect_code(&r, 3);
    rp_expect_has(r.err, "FORBIDDEN");
    rp_run_free(&r);
    /* the server's bound on threads */
    r = RUN("--server", g_h.addr, "--token", TOK_ADMIN, "backtest", "--threads", "16");
    expect_code(&r, 2); /* BAD_REQUEST */
    rp_expect_has(r.err, "threads");
    rp_run_free(&r);
    /* each run is one audit line, naming nobody */
    assert_true(rp_h_log_has(&g_h, "event=audit op=backtest role=admin customer=- customers=300"));
}

static void test_refusals_and_help(void **state) {
    (void)state;
    rp_run r = RUN("--server", "127.0.0.1:1", "tune");
    expect_code(&r, 2);
    rp_expect_has(r.err, "--data DIR");
    rp_run_free(&r);
    r = RUN("tune");
    expect_code(&r, 2);
    rp_expect_has(r.err, "--data DIR");
    rp_run_free(&r);
    r = RUN("--data", g_data, "backtest", "--sample", "0");
    expect_code(&r, 2);
    rp_run_free(&r);
    r = RUN("--help");
    expect_code(&r, 0);
    rp_expect_has(r.out, "backtest");
    rp_expect_has(r.out, "tune");
    rp_run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_import),
        cmocka_unit_test(test_backtest_text_json),
        cmocka_unit_test(test_tune_text_json),
        cmocka_unit_test(test_backtest_server),
        cmocka_unit_test(test_refusals_and_help),
    };
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
