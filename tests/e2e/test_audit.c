/* test_audit.c — end-to-end: the audit log of a real rapportd.
 *
 * One server (tests/e2e/harness.h) with a token per role and `audit_log`
 * set to a file in the test's directory. Over MessagePack-RPC and then over
 * HTTP it calls every audited operation (customer.get, history.list,
 * issue.list, lookup, export, customer.forget, context.get) and the
 * unaudited ones next to them (customer.put, customer.merge, event.append,
 * issue.put, route.get, a lookup of an unknown number, refused and failed
 * calls), then reads the audit log and checks it line by line: one line
 * per audited reply, in call order, with the op, role and customer id(s)
 * of proto/METHODS.md "Audit", and the X-Request-Id of the HTTP calls.
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
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/calls.h"
#include "e2e/http.h"
#include "e2e/run.h"

#define TOK_ROUTE "route-token-0123456789"
#define TOK_AGENT "agent-token-0123456789"
#define TOK_INGEST "ingest-token-0123456789"
#define TOK_ADMIN "admin-token-0123456789"

/* --- helpers ------------------------------------------------------------------------ */

/* Start h with the four tokens and audit_log = <dir>/audit.log (path in
 * audit, cap bytes). */
static void start_audited(rp_h *h, char *audit, size_t cap) {
    assert_int_equal(rp_h_init(h, NULL), 0);
    snprintf(audit, cap, "%s/audit.log", h->dir);
    snprintf(h->extra, sizeof h->extra,
             "token = route:" TOK_ROUTE "\ntoken = agent:" TOK_AGENT "\ntoken = ingest:" TOK_INGEST
             "\ntoken = admin:" TOK_ADMIN "\naudit_log = %s\n",
             audit);
    assert_int_equal(rp_h_write_config(h), 0);
    if (rp_h_launch(h) != 0) fail_msg("rapportd did not start");
}

/* An RPC connection authenticated as role. */
static rp_client *as_role(const rp_h *h, const char *tok, rp_role want) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    rp_role got = RP_ROLE_NONE;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(c, tok, &got, &eb), RP_OK);
    assert_int_equal(got, want);
    return c;
}

/* HTTP request that must answer want. */
static void http_ok(const rp_h *h, const char *method, const char *path, const char *tok,
                    const char *reqid, const char *body, int want) {
    char hdr[512];
    snprintf(hdr, sizeof hdr,
             "Authorization: Bearer %s\r\nX-Request-Id: %s\r\nContent-Type: application/json\r\n", tok,
             reqid);
    rp_http_resp r = rp_http(h, method, path, hdr, body);
    if (r.status != want) fail_msg("%s %s: status %d, wanted %d: %.300s", method, path, r.status, want, r.text);
    free(r.text);
}

/* The audit log as text (heap, NUL-terminated; "" when absent). */
static char *slurp(const char *path) { return access(path, F_OK) == 0 ? rp_slurp(path, NULL) : strdup(""); }

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Line i (0-based) of s, copied into out. */
static void line_at(const char *s, int i, char *out, size_t cap) {
    for (; i > 0 && s; i--) s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL;
    assert_non_null(s);
    size_t n = strcspn(s, "\n");
    assert_true(n < cap);
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Line i must be "ts=<YYYY-MM-DDTHH:MM:SS.mmmZ> event=audit op=<op>
 * role=<role> customer=<subject> reqid=<reqid>" (reqid NULL: any non-empty). */
static void expect_line(const char *log, int i, const char *op, const char *role, const char *subject,
                        const char *reqid) {
    char line[4096], want[1024];
    line_at(log, i, line, sizeof line);
    /* the timestamp: fixed width, UTC, milliseconds */
    if (strncmp(line, "ts=", 3) != 0 || strlen(line) < 28 || line[7] != '-' || line[10] != '-' ||
        line[13] != 'T' || line[16] != ':' || line[19] != ':' || line[22] != '.' || line[26] != 'Z' ||
        line[27] != ' ')
        fail_msg("audit line %d: bad timestamp: %s", i, line);
    snprintf(want, sizeof want, "event=audit op=%s role=%s customer=%s reqid=", op, role, subject);
    if (strncmp(line + 28, want, strlen(want)) != 0)
        fail_msg("audit line %d:\n  %s\nwanted\n  ts=... %s%s", i, line, want, reqid ? reqid : "...");
    const char *rid = line + 28 + strlen(want);
    if (reqid ? strcmp(rid, reqid) != 0 : (*rid == '\0' || strchr(rid, ' ') != NULL))
        fail_msg("audit line %d: reqid '%s', wanted '%s'", i, rid, reqid ? reqid : "(any)");
}

/* --- the test ------------------------------------------------------------------------- */

#define SHARED "+14155550100" /* a household line: a1 and a2 */

/* Data for both faces: a1 and a2 share a phone; b1 has an email; f1, f2
 * and f3 are to be forgotten (f3 becomes an alias of f2). None of these
 * writes is audited. */
static void seed(const rp_h *h) {
    rp_client *in = as_role(h, TOK_INGEST, RP_ROLE_INGEST);
    ok_call(in, "customer.put", "{\"id\":\"a1\",\"customer\":{\"name\":\"Ada\",\"phones\":[\"" SHARED "\"]}}");
    ok_call(in, "customer.put", "{\"id\":\"a2\",\"customer\":{\"name\":\"Alan\",\"phones\":[\"" SHARED "\"]}}");
    ok_call(in, "customer.put", "{\"id\":\"b1\",\"customer\":{\"name\":\"Bea\",\"emails\":[\"bea@example.com\"]}}");
    ok_call(in, "customer.put", "{\"id\":\"f1\",\"customer\":{\"name\":\"Fay\"}}");
    ok_call(in, "customer.put", "{\"id\":\"f2\",\"customer\":{\"name\":\"Fred\"}}");
    ok_call(in, "customer.put", "{\"id\":\"f3\",\"customer\":{\"name\":\"Fred\"}}");
    ok_call(in, "customer.patch", "{\"id\":\"a1\",\"patch\":{\"name\":\"Ada L\"}}");
    ok_call(in, "event.append", "{\"event\":{\"customer_id\":\"a1\",\"ts\":1700000000,\"channel\":\"phone\","
                                "\"kind\":\"contact\",\"summary\":\"late delivery\"}}");
    ok_call(in, "issue.put", "{\"issue\":{\"customer_id\":\"a1\",\"issue_id\":\"INC-1\",\"topic\":\"delivery\","
                             "\"status\":\"open\"}}");
    ok_call(in, "customer.merge", "{\"from\":\"f3\",\"into\":\"f2\"}");
    rp_client_close(in);
    rp_client *rt = as_role(h, TOK_ROUTE, RP_ROLE_ROUTE);
    ok_call(rt, "route.get", "{\"phone\":\"" SHARED "\"}");
    rp_client_close(rt);
}

/* The audited reads and a forget over RPC, with calls that write no line
 * between them (nobody found, failed, refused, an empty export page). */
static void rpc_calls(const rp_h *h) {
    rp_client *ag = as_role(h, TOK_AGENT, RP_ROLE_AGENT);
    ok_call(ag, "customer.get", "{\"id\":\"a1\"}");
    ok_call(ag, "history.list", "{\"id\":\"a1\"}");
    ok_call(ag, "issue.list", "{\"id\":\"a1\"}");
    msgpack_object r = ok_call(ag, "lookup", "{\"phone\":\"" SHARED "\"}");
    assert_true(mp_is_true(mp_get(&r, "ambiguous")));
    r = ok_call(ag, "lookup", "{\"phone\":\"+14155550199\"}"); /* nobody: no line */
    assert_false(mp_is_true(mp_get(&r, "found")));
    ok_call(ag, "context.get", "{\"email\":\"bea@example.com\"}");
    err_call(ag, "customer.get", "{\"id\":\"zz\"}", RP_NOT_FOUND);      /* failed: no line */
    err_call(ag, "customer.forget", "{\"id\":\"f1\"}", RP_FORBIDDEN);   /* refused: no line */
    err_call(ag, "export", NULL, RP_FORBIDDEN);
    rp_client_close(ag);

    rp_client *ad = as_role(h, TOK_ADMIN, RP_ROLE_ADMIN);
    r = ok_call(ad, "export", "{\"limit\":3}");
    assert_true(mp_is_str(mp_get(&r, "next"), "b1"));
    r = ok_call(ad, "export", "{\"limit\":3,\"after\":\"b1\"}");
    assert_int_equal(mp_get(&r, "next")->type, MSGPACK_OBJECT_NIL);
    ok_call(ad, "export", "{\"after\":\"f2\"}"); /* an empty page shows no one: no line */
    ok_call(ad, "customer.forget", "{\"id\":\"f1\"}");
    err_call(ad, "customer.forget", "{\"id\":\"f1\"}", RP_NOT_FOUND); /* already gone: no line */
    rp_client_close(ad);
}

/* The same over HTTP, each with its X-Request-Id. */
static void http_calls(const rp_h *h) {
    http_ok(h, "GET", "/v1/customers/a2", TOK_AGENT, "h-get", NULL, 200);
    http_ok(h, "GET", "/v1/customers/a1/events", TOK_AGENT, "h-hist", NULL, 200);
    http_ok(h, "GET", "/v1/customers/a1/issues", TOK_AGENT, "h-iss", NULL, 200);
    http_ok(h, "GET", "/v1/lookup?phone=%2B14155550100", TOK_AGENT, "h-look", NULL, 200);
    http_ok(h, "GET", "/v1/lookup?email=nobody@example.com", TOK_AGENT, "h-look0", NULL, 200);
    http_ok(h, "GET", "/v1/context?phone=%2B14155550100", TOK_AGENT, "h-ctx", NULL, 200);
    http_ok(h, "GET", "/v1/route?phone=%2B14155550100", TOK_ROUTE, "h-route", NULL, 200);
    http_ok(h, "PUT", "/v1/customers/g1", TOK_INGEST, "h-put", "{\"name\":\"Gil\"}", 200);
    http_ok(h, "GET", "/v1/export", TOK_ADMIN, "h-exp", NULL, 200);
    http_ok(h, "DELETE", "/v1/customers/f3", TOK_ADMIN, "h-forget", NULL, 200); /* the alias of f2 */
    http_ok(h, "DELETE", "/v1/customers/f3", TOK_ADMIN, "h-forget2", NULL, 404);
}

static void test_audit_both_faces(void **state) {
    rp_h *h = *state;
    char audit[512];
    start_audited(h, audit, sizeof audit);
    seed(h);
    char *log = slurp(audit);
    if (log[0]) fail_msg("writes and route.get were audited:\n%s", log);
    free(log);

    rpc_calls(h);
    http_calls(h);
    log = slurp(audit);
    int i = 0;
    expect_line(log, i++, "customer.get", "agent", "a1", NULL);
    expect_line(log, i++, "history.list", "agent", "a1", NULL);
    expect_line(log, i++, "issue.list", "agent", "a1", NULL);
    expect_line(log, i++, "lookup", "agent", "a1,a2", NULL);
    expect_line(log, i++, "context.get", "agent", "b1", NULL);
    expect_line(log, i++, "export", "admin", "- customers=3 first=a1 last=b1", NULL);
    expect_line(log, i++, "export", "admin", "- customers=2 first=f1 last=f2", NULL);
    expect_line(log, i++, "customer.forget", "admin", "f1", NULL);
    expect_line(log, i++, "customer.get", "agent", "a2", "h-get");
    expect_line(log, i++, "history.list", "agent", "a1", "h-hist");
    expect_line(log, i++, "issue.list", "agent", "a1", "h-iss");
    expect_line(log, i++, "lookup", "agent", "a1,a2", "h-look");
    expect_line(log, i++, "context.get", "agent", "a1,a2", "h-ctx");
    expect_line(log, i++, "export", "admin", "- customers=5 first=a1 last=g1", "h-exp");
    expect_line(log, i++, "customer.forget", "admin", "f2", "h-forget");
    if (count_lines(log) != i) fail_msg("%d audit lines, wanted %d:\n%s", count_lines(log), i, log);
    assert_null(strstr(log, "op=route.get"));
    assert_null(strstr(log, "op=customer.put"));
    free(log);
    assert_int_equal(rp_h_stop(h), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_audit_both_faces, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
