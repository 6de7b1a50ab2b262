/* test_query.c — end-to-end: query strings as real clients encode them.
 *
 * A real rapportd (tests/e2e/harness.h) holds customers whose phone, e-mail
 * and account need escaping; the request URLs are built by running the
 * real encoders — Python's urllib.parse (urlencode, quote_plus, quote),
 * Node's URLSearchParams and encodeURIComponent, and curl -G
 * --data-urlencode (which also sends the request) — and every route that
 * takes the value (/v1/route, /v1/context, /v1/lookup) must find the
 * customer. Also: the raw '+' that opens an IVR's phone value, malformed
 * escapes and %00 (400 naming the parameter).
 *
 * Values reach the encoders through the environment (RP_K, RP_V), never
 * through shell quoting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/http.h"
#include "e2e/run.h"

/* One HTTP/1.1 request with Connection: close; the whole response (head and
 * body) into out. Returns the status, or -1. */
static int http_do(const rp_h *h, const char *method, const char *path, const char *body, char *out,
                   size_t cap) {
    rp_http_resp r = rp_http(h, method, path, NULL, body);
    snprintf(out, cap, "%s", r.text);
    free(r.text);
    return r.status;
}

/* Run cmd with RP_K=key, RP_V=val in the environment; its stdout (last
 * newline removed) into out. Fails the test when it exits non-zero. */
static void run_enc(const char *cmd, const char *key, const char *val, char *out, size_t cap) {
    setenv("RP_K", key, 1);
    setenv("RP_V", val, 1);
    int st;
    char *o = rp_sh(&st, "%s", cmd);
    snprintf(out, cap, "%s", o);
    free(o);
    if (st != 0) fail_msg("encoder failed (%d): %s", st, cmd);
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n') out[n - 1] = '\0';
}

/* Encoders that print "key=encoded-value". */
static const char *const encoders[] = {
    "/usr/bin/python3 -c 'import os, urllib.parse as u; "
    "print(u.urlencode({os.environ[\"RP_K\"]: os.environ[\"RP_V\"]}))'",
    "/usr/bin/python3 -c 'import os, urllib.parse as u; "
    "print(os.environ[\"RP_K\"] + \"=\" + u.quote_plus(os.environ[\"RP_V\"]))'",
    "/usr/bin/python3 -c 'import os, urllib.parse as u; "
    "print(os.environ[\"RP_K\"] + \"=\" + u.quote(os.environ[\"RP_V\"], safe=\"\"))'",
    "node -e 'console.log(new URLSearchParams({[process.env.RP_K]: process.env.RP_V}).toString())'",
    "node -e 'console.log(process.env.RP_K + \"=\" + encodeURIComponent(process.env.RP_V))'",
};
#define NENC (sizeof encoders / sizeof encoders[0])

/* What each route answers for customer c1. */
typedef struct route_case {
    const char *path;
    const char *found; /* in the body when c1 is found */
} route_case;

static const route_case routes[] = {
    {"/v1/route", "\"customer_id\":\"c1\""},
    {"/v1/context", "\"customer\":{\"id\":\"c1\""},
    {"/v1/lookup", "\"candidates\":[{\"customer_id\":\"c1\""},
};

/* Values as stored and as callers send them. */
typedef struct value_case {
    const char *key, *val;
    bool route; /* /v1/route takes it (phone only) */
} value_case;

static const value_case values[] = {
    {"phone", "+44 (0)20 7946 0958", true},
    {"phone", "(415) 200-0039", true},
    {"phone", "+1 415-200-0039", true},
    {"email", "a+b@x.com", false},
    {"email", "A+B@X.com", false},
    {"account", "ACC+7/X&=1%", false},
};

static void start_with_customer(rp_h *h) {
    if (rp_h_start(h, "durability = async\n") != 0) fail_msg("rapportd did not start");
    char out[8192];
    int st = http_do(h, "PUT", "/v1/customers/c1",
                     "{\"name\":\"Uma\",\"phones\":[\"+44 (0)20 7946 0958\",\"(415) 200-0039\"],"
                     "\"emails\":[\"a+b@x.com\"],\"accounts\":[\"ACC+7/X&=1%\"]}",
                     out, sizeof out);
    if (st != 200) fail_msg("PUT: %d %s", st, out);
}

static void stop(rp_h *h) {
    int st = rp_h_stop(h);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
}

/* GET path?qs must find c1 on route rc. */
static void expect_found(const rp_h *h, const route_case *rc, const char *qs, const char *how) {
    char path[1024], out[16384];
    snprintf(path, sizeof path, "%s?%s", rc->path, qs);
    int st = http_do(h, "GET", path, NULL, out, sizeof out);
    if (st != 200 || strstr(out, rc->found) == NULL)
        fail_msg("%s: GET %s -> %d, expected %s in:\n%s", how, path, st, rc->found, out);
}

static void test_client_encoders(void **state) {
    rp_h *h = *state;
    start_with_customer(h);
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
        for (size_t r = 0; r < sizeof routes / sizeof routes[0]; r++) {
            if (r == 0 && !values[v].route) continue;
            for (size_t e = 0; e < NENC; e++) {
                char qs[512];
                run_enc(encoders[e], values[v].key, values[v].val, qs, sizeof qs);
                expect_found(h, &routes[r], qs, encoders[e]);
            }
            /* curl -G --data-urlencode encodes and sends the request itself */
            char cmd[512], out[16384];
            snprintf(cmd, sizeof cmd,
                     "curl -sS -G --data-urlencode \"$RP_K=$RP_V\" http://127.0.0.1:%d%s",
                     h->http_port, routes[r].path);
            run_enc(cmd, values[v].key, values[v].val, out, sizeof out);
            if (strstr(out, routes[r].found) == NULL)
                fail_msg("curl --data-urlencode %s=%s on %s: %s", values[v].key, values[v].val,
                         routes[r].path, out);
        }
    }
    stop(h);
}

/* The exact bytes the issue reports, and what IVRs send by concatenation. */
static void test_raw_forms(void **state) {
    rp_h *h = *state;
    start_with_customer(h);
    for (size_t r = 0; r < sizeof routes / sizeof routes[0]; r++) {
        expect_found(h, &routes[r], "phone=%2B44+%280%2920+7946+0958", "urlencode bytes");
        expect_found(h, &routes[r], "phone=+442079460958", "IVR raw +");
        expect_found(h, &routes[r], "phone=+44+20+7946+0958", "IVR raw + with '+' spaces");
        expect_found(h, &routes[r], "phone=%2B442079460958", "%2B");
        expect_found(h, &routes[r], "phone=%28415%29+200-0039", "demo phone");
        if (r != 2) /* lookup takes no `at` */
            expect_found(h, &routes[r], "phone=4152000039&at=1", "another parameter after");
    }
    expect_found(h, &routes[1], "email=a%2Bb%40x.com", "email %2B");
    expect_found(h, &routes[2], "email=a%2bb%40x.com", "email lower-case hex");
    /* a raw '+' in an email is a space (form encoding): not a match, a clear answer */
    char out[8192];
    assert_int_equal(http_do(h, "GET", "/v1/lookup?email=a+b@x.com", NULL, out, sizeof out), 400);
    rp_expect_has(out, "email");
    /* an account with a space is refused by the model, the decoded space named */
    assert_int_equal(http_do(h, "GET", "/v1/lookup?account=ACC+7+X", NULL, out, sizeof out), 400);
    rp_expect_has(out, "account must be printable ASCII without spaces");
    stop(h);
}

static void test_malformed(void **state) {
    rp_h *h = *state;
    start_with_customer(h);
    static const struct {
        const char *path, *want;
    } bad[] = {
        {"/v1/route?phone=%zz", "query parameter 'phone': bad percent-escape '%zz'"},
        {"/v1/route?phone=415%4", "query parameter 'phone': bad percent-escape '%4'"},
        {"/v1/lookup?email=a%", "query parameter 'email': bad percent-escape '%'"},
        {"/v1/context?account=A%4gB", "query parameter 'account': bad percent-escape '%4g'"},
        {"/v1/context?phone=415%00", "query parameter 'phone': %00 (a NUL byte)"},
        {"/v1/lookup?em%zzail=x", "a query parameter name: bad percent-escape"},
        {"/v1/customers/c%zz1", "path: bad percent-escape"},
        {"/v1/customers/c%001", "path: %00"},
        /* a name decoded to other bytes than printable ASCII shows them as '?' */
        {"/v1/lookup?x%FFy%01=%zz", "query parameter 'x?y?': bad percent-escape '%zz'"},
    };
    char out[8192];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = http_do(h, "GET", bad[i].path, NULL, out, sizeof out);
        if (st != 400) fail_msg("GET %s -> %d: %s", bad[i].path, st, out);
        rp_expect_has(out, "\"code\":\"BAD_REQUEST\"");
        rp_expect_has(out, bad[i].want);
    }
    /* a path segment keeps '+' literal (RFC 3986) */
    assert_int_equal(http_do(h, "PUT", "/v1/customers/p+q", "{\"name\":\"P\"}", out, sizeof out), 200);
    assert_int_equal(http_do(h, "GET", "/v1/customers/p%2Bq", NULL, out, sizeof out), 200);
    rp_expect_has(out, "\"id\":\"p+q\"");
    stop(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_encoders, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_raw_forms, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_malformed, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
