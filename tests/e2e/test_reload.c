/* test_reload.c — end-to-end: SIGHUP re-reads the settings, and --version.
 *
 * A real rapportd (tests/e2e/harness.h) started with a config file; the
 * tests rewrite that file and send SIGHUP, then poll (bounded, never a bare
 * sleep as synchronisation) until the reload shows:
 *   - tokens: a rotated admin token works at once on both faces, the old
 *     one is UNAUTHORIZED on new requests and on an RPC connection that
 *     authenticated with it before the reload; the log says what changed,
 *     and names a setting that needs a restart;
 *   - audit log: after a logrotate-style rename and SIGHUP, new audit lines
 *     go to a new file at the configured path, old ones stay in the moved one;
 *   - a broken file: the server stays up with the old tokens and logs why;
 *   - `rapportd --version` and `rapport --version`: version and commit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
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

#define TOK_OLD "admin-old-0123456789"
#define TOK_NEW "admin-new-0123456789"
#define TOK_AGENT "agent-token-0123456789"
#define WAIT_MS 10000

/* Write the config with h->extra = the given lines and start the server. */
static void start_with(rp_h *h, const char *extra) {
    assert_int_equal(rp_h_init(h, extra), 0);
    if (rp_h_launch(h) != 0) fail_msg("rapportd did not start");
}

/* Rewrite the config file (harness lines, then extra) and send SIGHUP. */
static void reload_with(rp_h *h, const char *extra) {
    snprintf(h->extra, sizeof h->extra, "%s", extra);
    assert_int_equal(rp_h_write_config(h), 0);
    assert_int_equal(kill(h->pid, SIGHUP), 0);
}

/* The role a fresh RPC connection gets for tok (RP_ROLE_NONE: refused). */
static rp_role auth_role(const rp_h *h, const char *tok) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    rp_role got = RP_ROLE_NONE;
    rp_errbuf eb = {0};
    rp_err rc = rp_client_auth(c, tok, &got, &eb);
    rp_client_close(c);
    return rc == RP_OK ? got : RP_ROLE_NONE;
}

/* HTTP status of an authenticated read (404 = let in, 401 = refused). */
static int http_status(const rp_h *h, const char *tok) {
    char hdr[256];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    rp_http_resp r = rp_http(h, "GET", "/v1/customers/nobody", hdr, NULL);
    int st = r.status;
    free(r.text);
    return st;
}

/* Poll the server log until it mentions s (bounded). */
static void wait_log(const rp_h *h, const char *s) {
    long long end = rp_h_now_ms() + WAIT_MS;
    while (!rp_h_log_has(h, s)) {
        if (rp_h_now_ms() > end) {
            rp_h_dump_log(h);
            fail_msg("the log never said '%s'", s);
        }
        rp_h_sleep_ms(10);
    }
}

/* The server process is still running. */
static void expect_alive(const rp_h *h) {
    assert_true(h->pid > 0);
    assert_int_equal(kill(h->pid, 0), 0);
    assert_int_equal(auth_role(h, TOK_AGENT), RP_ROLE_AGENT);
}

/* --- tokens ----------------------------------------------------------------------- */

static void test_hup_rotates_tokens(void **state) {
    rp_h *h = *state;
    start_with(h, "token = admin:" TOK_OLD "\ntoken = agent:" TOK_AGENT "\n");
    assert_int_equal(auth_role(h, TOK_OLD), RP_ROLE_ADMIN);
    assert_int_equal(auth_role(h, TOK_NEW), RP_ROLE_NONE);
    /* a connection that authenticated before the rotation */
    rp_client *kept = rp_h_connect(h);
    assert_non_null(kept);
    rp_role got = RP_ROLE_NONE;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(kept, TOK_OLD, &got, &eb), RP_OK);
    ok_call(kept, "stats", "{}");

    reload_with(h, "token = admin:" TOK_NEW "\ntoken = agent:" TOK_AGENT "\nmax_connections = 77\n");
    long long end = rp_h_now_ms() + WAIT_MS;
    while (auth_role(h, TOK_NEW) != RP_ROLE_ADMIN) {
        if (rp_h_now_ms() > end) {
            rp_h_dump_log(h);
            fail_msg("the new token never worked");
        }
        rp_h_sleep_ms(10);
    }
    assert_int_equal(auth_role(h, TOK_OLD), RP_ROLE_NONE);
    assert_int_equal(http_status(h, TOK_NEW), 404);
    assert_int_equal(http_status(h, TOK_OLD), 401);
    err_call(kept, "stats", "{}", RP_UNAUTHORIZED); /* revoked on the open connection too */
    rp_client_close(kept);

    wait_log(h, "event=reload tokens=2 tokens_added=admin:1 tokens_removed=admin:1");
    wait_log(h, "event=reload_restart_needed setting=max_connections");
    assert_false(rp_h_log_has(h, "setting=token"));
    expect_alive(h);
    assert_int_equal(rp_h_stop(h), 0);
}

/* --- the audit log ---------------------------------------------------------------------- */

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_hup_reopens_audit_log(void **state) {
    rp_h *h = *state;
    char audit[400], moved[420], conf[1024];
    assert_int_equal(rp_h_init(h, NULL), 0);
    snprintf(audit, sizeof audit, "%s/audit.log", h->dir);
    snprintf(moved, sizeof moved, "%s.1", audit);
    snprintf(conf, sizeof conf, "token = admin:%s\ntoken = agent:%s\naudit_log = %s\n", TOK_OLD, TOK_AGENT, audit);
    snprintf(h->extra, sizeof h->extra, "%s", conf);
    assert_int_equal(rp_h_write_config(h), 0);
    if (rp_h_launch(h) != 0) fail_msg("rapportd did not start");

    rp_client *c = rp_h_connect(h);
    rp_role got;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(c, TOK_OLD, &got, &eb), RP_OK);
    ok_call(c, "customer.put", "{\"id\":\"a1\",\"customer\":{\"name\":\"Ada\"}}");
    ok_call(c, "customer.get", "{\"id\":\"a1\"}"); /* audited: line 1, old file */

    assert_int_equal(rename(audit, moved), 0); /* what logrotate does */
    reload_with(h, conf);
    wait_log(h, "event=reload ");
    assert_int_equal(access(audit, F_OK), 0); /* reopened: created again */
    ok_call(c, "customer.get", "{\"id\":\"a1\"}"); /* line 2: the new file */
    rp_client_close(c);

    char *old = rp_slurp(moved, NULL), *cur = rp_slurp(audit, NULL);
    assert_int_equal(count_lines(old), 1);
    assert_int_equal(count_lines(cur), 1);
    rp_expect_has(cur, "op=customer.get role=admin customer=a1");
    free(old);
    free(cur);
    assert_true(rp_h_log_has(h, "reopened=audit_log"));
    assert_int_equal(rp_h_stop(h), 0);
}

/* --- a broken file -------------------------------------------------------------------- */

static void test_hup_bad_config_keeps_old(void **state) {
    rp_h *h = *state;
    start_with(h, "token = admin:" TOK_OLD "\ntoken = agent:" TOK_AGENT "\n");
    reload_with(h, "token = admin:" TOK_NEW "\nthreads = banana\n");
    wait_log(h, "event=reload_failed");
    assert_true(rp_h_log_has(h, "action=kept_old_settings"));
    expect_alive(h);
    assert_int_equal(auth_role(h, TOK_OLD), RP_ROLE_ADMIN);
    assert_int_equal(auth_role(h, TOK_NEW), RP_ROLE_NONE);

    /* a good reload after a bad one applies normally */
    reload_with(h, "token = admin:" TOK_NEW "\ntoken = agent:" TOK_AGENT "\n");
    wait_log(h, "tokens_added=admin:1");
    assert_int_equal(auth_role(h, TOK_NEW), RP_ROLE_ADMIN);
    assert_int_equal(rp_h_stop(h), 0);
}

/* --- --version -------------------------------------------------------------------------- */

/* "NAME 0.1.0 (DESCRIBE)\n" with a non-empty, space-free DESCRIBE. */
static void expect_version(const char *out, const char *name) {
    char want[64];
    snprintf(want, sizeof want, "%s 0.1.0 (", name);
    if (strncmp(out, want, strlen(want)) != 0) fail_msg("version line: %s", out);
    const char *d = out + strlen(want);
    size_t n = strcspn(d, ") \n");
    assert_true(n > 0);
    assert_string_equal(d + n, ")\n");
}

static void test_versions(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_init(h, NULL), 0);
    int st;
    char *out = rp_sh(&st, "%s/rapportd --version", RP_BINARY_DIR);
    assert_int_equal(st, 0);
    expect_version(out, "rapportd");
    /* In a git checkout: a commit of this history (the build's; HEAD may
     * have moved on since the build), else "unknown". */
    char desc[128];
    snprintf(desc, sizeof desc, "%.*s", (int)strcspn(strchr(out, '(') + 1, ")"), strchr(out, '(') + 1);
    char *dirty = strstr(desc, "-dirty");
    if (dirty) *dirty = '\0';
    const char *g = strstr(desc, "-g"); /* tag-N-gHASH */
    const char *hash = g ? g + 2 : desc;
    int gst;
    char *top = rp_sh(&gst, "git -C %s rev-parse --show-toplevel 2>/dev/null", RP_SOURCE_DIR);
    if (gst == 0 && top[0]) {
        char *anc = rp_sh(&gst, "git -C %s merge-base --is-ancestor %s HEAD 2>&1", RP_SOURCE_DIR, hash);
        if (gst != 0) fail_msg("'%s' is not a commit of %s: %s", hash, RP_SOURCE_DIR, anc);
        free(anc);
    } else {
        assert_string_equal(desc, "unknown");
    }
    free(top);
    rp_run r = rp_run_in(h->dir, NULL, NULL, (const char *const[]){"--version", NULL});
    assert_int_equal(r.code, 0);
    expect_version(r.out, "rapport");
    /* both programs of one build name the same commit */
    assert_string_equal(strchr(r.out, '('), strchr(out, '('));
    rp_run_free(&r);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hup_rotates_tokens, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_hup_reopens_audit_log, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_hup_bad_config_keeps_old, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_versions, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
