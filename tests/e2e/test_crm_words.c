/* test_crm_words.c — end-to-end: help-desk words for issue status and severity
 * through a real rapportd (tests/e2e/harness.h) and the real `rapport` CLI.
 *
 * A Zendesk-style issue ("severity":"normal","status":"new", a callback
 * promised an hour ago) is PUT over HTTP, read back with the words as sent
 * beside the levels, and makes the card carry the broken_promise cue; an
 * NDJSON file of Zendesk, Salesforce and Freshdesk values (numbers as
 * integers and strings, read per `issue_numbers = freshdesk`, which this
 * server is started with so that the setting is seen to reach both the
 * HTTP and the import decoders) is imported with `rapport import`
 * (non-strict) with no line refused; an unknown word is a 400 naming the
 * field and the value.
 *
 * The HTTP client is the smallest that serves: one request per
 * connection, "Connection: close", the whole reply read to EOF (the routes
 * used here answer with Content-Length).
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/http.h"
#include "e2e/run.h"

/* One HTTP request on its own connection; the reply read to EOF. */
static rp_http_resp http(const rp_h *h, const char *method, const char *path, const char *body) {
    rp_http_resp r = rp_http(h, method, path, "Content-Type: application/json\r\n", body);
    assert_int_not_equal(r.status, -1);
    return r;
}

/* Request, check the status and (if given) a piece of the body. */
static void expect(const rp_h *h, const char *method, const char *path, const char *body,
                   int status, const char *want) {
    rp_http_resp r = http(h, method, path, body);
    if (r.status != status)
        fail_msg("%s %s: status %d, expected %d: %s", method, path, r.status, status, r.body);
    if (want) rp_expect_has(r.body, want);
    free(r.text);
}

/* Run `rapport args...`; stdout and stderr go to files in h's directory,
 * read back into *out / *err (malloc'd). Returns the exit status. */
static int rapport(const rp_h *h, const char *const *args, char **out, char **err) {
    rp_run r = rp_run_in(h->dir, NULL, NULL, args);
    *out = r.out;
    *err = r.err;
    return r.code;
}

static void test_help_desk_words(void **state) {
    rp_h *h = *state;
    if (rp_h_start(h, "issue_numbers = freshdesk\n") != 0) {
        rp_h_dump_log(h);
        fail_msg("rapportd did not start");
    }
    long long now = (long long)time(NULL);
    char body[1024];

    /* A Zendesk ticket: new, normal, a callback promised an hour ago. */
    expect(h, "PUT", "/v1/customers/zd-1", "{\"name\":\"Priya Raman\",\"phones\":[\"+14155550123\"]}",
           200, NULL);
    snprintf(body, sizeof body,
             "{\"topic\":\"billing\",\"status\":\"new\",\"severity\":\"normal\","
             "\"summary\":\"Double charge\",\"opened_at\":%lld,\"follow_up_due\":%lld}",
             now - 86400, now - 3600);
    expect(h, "PUT", "/v1/customers/zd-1/issues/ZD-4411", body, 200, NULL);
    /* Salesforce words, and a Freshdesk number as JSON integer and string. */
    expect(h, "PUT", "/v1/customers/zd-1/issues/SF-9",
           "{\"topic\":\"delivery\",\"status\":\"Escalated\",\"severity\":\"High\"}", 200, NULL);
    expect(h, "PUT", "/v1/customers/zd-1/issues/FD-7",
           "{\"topic\":\"refund\",\"status\":\"3\",\"severity\":4}", 200, NULL);
    /* A client that sends the levels sees exactly what it sent before. */
    expect(h, "PUT", "/v1/customers/zd-1/issues/RP-1",
           "{\"topic\":\"technical\",\"status\":\"open\",\"severity\":\"high\"}", 200, NULL);

    /* Read back: levels for ranking, the words as sent for display. */
    rp_http_resp r = http(h, "GET", "/v1/customers/zd-1/issues", NULL);
    assert_int_equal(r.status, 200);
    rp_expect_has(r.body, "\"issue_id\":\"ZD-4411\",\"topic\":\"billing\",\"status\":\"open\","
                       "\"status_raw\":\"new\",\"severity\":\"medium\",\"severity_raw\":\"normal\"");
    rp_expect_has(r.body, "\"status\":\"open\",\"status_raw\":\"Escalated\",\"severity\":\"high\","
                       "\"severity_raw\":\"High\"");
    rp_expect_has(r.body, "\"status\":\"pending\",\"status_raw\":\"3\",\"severity\":\"critical\","
                       "\"severity_raw\":\"4\"");
    rp_expect_has(r.body, "\"issue_id\":\"RP-1\",\"topic\":\"technical\",\"status\":\"open\","
                       "\"severity\":\"high\",\"opened_at\"");
    free(r.text);

    /* The card: the missed callback on a "new" ticket is a broken promise. */
    r = http(h, "GET", "/v1/context?id=zd-1", NULL);
    assert_int_equal(r.status, 200);
    rp_expect_has(r.body, "\"code\":\"broken_promise\"");
    rp_expect_has(r.body, "(issue ZD-4411 about billing)");
    rp_expect_has(r.body, "\"severity_raw\":\"normal\"");
    free(r.text);

    /* An unknown word is a 400 naming the field and the value. */
    expect(h, "PUT", "/v1/customers/zd-1/issues/X-1", "{\"severity\":\"dire\"}", 400,
           "field 'severity' must be low, medium, high or critical");
    expect(h, "PUT", "/v1/customers/zd-1/issues/X-1", "{\"severity\":\"dire\"}", 400, "(got 'dire')");
    expect(h, "PUT", "/v1/customers/zd-1/issues/X-1", "{\"status\":1}", 400,
           "field 'status' is '1', which is not a status number when issue_numbers = freshdesk");

    /* NDJSON import, non-strict: nothing refused. */
    char path[400];
    snprintf(path, sizeof path, "%s/zendesk.ndjson", h->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"type\":\"customer\",\"id\":\"zd-2\",\"name\":\"Sam Ortiz\"}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"ZD-1\",\"topic\":\"billing\","
            "\"status\":\"solved\",\"severity\":\"normal\"}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"ZD-2\",\"topic\":\"delivery\","
            "\"status\":\"hold\",\"severity\":\"URGENT\",\"follow_up_due\":%lld}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"FD-3\",\"topic\":\"refund\","
            "\"status\":5,\"severity\":\"1\"}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"SN-4\",\"topic\":\"network\","
            "\"status\":\"In Progress\",\"severity\":\"1 - Critical\"}\n",
            now - 7200);
    assert_int_equal(fclose(f), 0);
    char *out = NULL, *err = NULL;
    int code = rapport(h, (const char *const[]){"--server", h->addr, "import", path, NULL}, &out, &err);
    if (code != 0) fail_msg("import exit %d: %s %s", code, out, err);
    rp_expect_has(err, "5 records imported, 0 skipped");
    if (strstr(err, "line ")) fail_msg("import refused lines: %s", err);
    free(out), free(err);
    r = http(h, "GET", "/v1/customers/zd-2/issues", NULL);
    assert_int_equal(r.status, 200);
    rp_expect_has(r.body, "\"issue_id\":\"ZD-1\",\"topic\":\"billing\",\"status\":\"resolved\","
                       "\"status_raw\":\"solved\",\"severity\":\"medium\",\"severity_raw\":\"normal\"");
    rp_expect_has(r.body, "\"status\":\"pending\",\"status_raw\":\"hold\",\"severity\":\"critical\","
                       "\"severity_raw\":\"URGENT\"");
    rp_expect_has(r.body, "\"status\":\"resolved\",\"status_raw\":\"5\",\"severity\":\"low\","
                       "\"severity_raw\":\"1\"");
    rp_expect_has(r.body, "\"status\":\"open\",\"status_raw\":\"In Progress\",\"severity\":\"critical\","
                       "\"severity_raw\":\"1 - Critical\"");
    free(r.text);
    r = http(h, "GET", "/v1/context?id=zd-2", NULL);
    assert_int_equal(r.status, 200);
    rp_expect_has(r.body, "\"code\":\"broken_promise\"");
    rp_expect_has(r.body, "(issue ZD-2 about delivery)");
    free(r.text);

    int st = rp_h_stop(h);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_desk_words, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
