/* test_http_import.c — end-to-end: POST /v1/import as clients send files.
 *
 * With curl --data-binary @file against a real rapportd (harness.h): an
 * import of more than max_container (10,000) records in one body is taken
 * whole, and a file opening with a UTF-8 BOM imports like one without.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e/harness.h"
#include "e2e/run.h"

/* curl -sS --data-binary @file to path; stdout into out. */
static void curl_post(const rp_h *h, const char *path, const char *file, char *out, size_t cap) {
    int st;
    char *o = rp_sh(&st, "curl -sS --data-binary @%s http://127.0.0.1:%d%s", file, h->http_port, path);
    snprintf(out, cap, "%s", o);
    free(o);
    if (st != 0) fail_msg("curl POST %s failed: %s", path, out);
}

static void curl_get(const rp_h *h, const char *path, char *out, size_t cap) {
    int st;
    char *o = rp_sh(&st, "curl -sS http://127.0.0.1:%d%s", h->http_port, path);
    snprintf(out, cap, "%s", o);
    free(o);
}

static void test_import_over_max_container(void **state) {
    rp_h *h = *state;
    if (rp_h_start(h, "durability = async\n") != 0) fail_msg("rapportd did not start");
    char file[400], out[8192];
    snprintf(file, sizeof file, "%s/big.ndjson", h->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    for (int i = 0; i < 25000; i++) fprintf(f, "{\"type\":\"customer\",\"id\":\"big-%05d\"}\n", i);
    for (int i = 0; i < 100; i++) /* and events, as an export would hold */
        fprintf(f, "{\"type\":\"event\",\"customer_id\":\"big-%05d\",\"ts\":1790000000,"
                   "\"channel\":\"phone\",\"kind\":\"contact\"}\n", i);
    assert_int_equal(fclose(f), 0);
    curl_post(h, "/v1/import", file, out, sizeof out);
    rp_expect_has(out, "{\"imported\":25100,\"skipped\":0,\"errors\":[],\"duplicates\":0}");
    curl_get(h, "/v1/customers/big-24999", out, sizeof out);
    rp_expect_has(out, "\"id\":\"big-24999\"");
    curl_get(h, "/v1/customers/big-00000/events", out, sizeof out);
    rp_expect_has(out, "\"channel\":\"phone\"");
    /* strict too */
    curl_post(h, "/v1/import?strict=true", file, out, sizeof out);
    rp_expect_has(out, "\"skipped\":0");
    assert_int_equal(rp_h_stop(h), 0);
}

static void test_import_bom(void **state) {
    rp_h *h = *state;
    if (rp_h_start(h, NULL) != 0) fail_msg("rapportd did not start");
    char file[400], out[8192];
    snprintf(file, sizeof file, "%s/bom.ndjson", h->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("\xEF\xBB\xBF{\"type\":\"customer\",\"id\":\"bom-1\"}\r\n"
          "{\"type\":\"customer\",\"id\":\"bom-2\"}\r\n", f);
    assert_int_equal(fclose(f), 0);
    curl_post(h, "/v1/import?strict=true", file, out, sizeof out);
    rp_expect_has(out, "{\"imported\":2,\"skipped\":0,\"errors\":[],\"duplicates\":0}");
    curl_get(h, "/v1/customers/bom-1", out, sizeof out);
    rp_expect_has(out, "\"id\":\"bom-1\"");
    /* a BOM on a later line is part of that line: not JSON */
    f = fopen(file, "w");
    assert_non_null(f);
    fputs("{\"type\":\"customer\",\"id\":\"bom-3\"}\n\xEF\xBB\xBF{\"type\":\"customer\",\"id\":\"bom-4\"}\n", f);
    assert_int_equal(fclose(f), 0);
    curl_post(h, "/v1/import", file, out, sizeof out);
    rp_expect_has(out, "line 2:");
    assert_int_equal(rp_h_stop(h), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_over_max_container, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_import_bom, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
