/* test_card.c — GET /card, the agent's page, against the real rapportd:
 * the HTML shows the card (names escaped: a <script> name is text), the
 * first-contact and shared-line views, the CSP / frame headers and the
 * frame_ancestors setting, roles, and card.link's signed links (valid,
 * expired, tampered: 403) — and the page view writes the audit line.
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
#include <strings.h>

#include "e2e/harness.h"
#include "e2e/serve.h"
#include "e2e/http.h"

#define ADMIN "Authorization: Bearer admin-secret-0123456789\r\n"
#define AGENT "Authorization: Bearer agent-secret-0123456789\r\n"
#define INGEST "Authorization: Bearer ingest-secret-0123456789\r\n"
#define TOKENS "token = admin:admin-secret-0123456789\ntoken = agent:agent-secret-0123456789\n" \
               "token = ingest:ingest-secret-0123456789\n"

static void expect(rp_http_resp r, int status) {
    if (r.status != status) fail_msg("expected %d, got:\n%s", status, r.text ? r.text : "(none)");
}

static bool has(const rp_http_resp *r, const char *s) { return r->text && strstr(r->text, s) != NULL; }

static void put(rp_h *h, const char *id, const char *json) {
    char path[128];
    snprintf(path, sizeof path, "/v1/customers/%s", id);
    rp_http_resp r = rp_http(h, "PUT", path, ADMIN "Content-Type: application/json\r\n", json);
    expect(r, 200);
    free(r.text);
}

static void scene(rp_h *h) {
    put(h, "c-1", "{\"name\":\"<script>alert(1)</script> Lopez\",\"preferred_name\":\"Maria & Co\","
                  "\"language\":\"es-MX\",\"tier\":\"platinum\",\"customer_since\":1300000000,"
                  "\"flags\":[\"vip\",\"hearing_impaired\"],\"phones\":[\"+14155550001\"]}");
    put(h, "c-2", "{\"name\":\"Jose\",\"phones\":[\"+14155550002\"]}");
    put(h, "c-3", "{\"name\":\"Ana\",\"phones\":[\"+14155550002\"]}");
    char body[256];
    long long now = (long long)time(NULL);
    snprintf(body, sizeof body,
             "{\"topic\":\"delivery\",\"summary\":\"Parcel <b>lost</b>\",\"opened_at\":%lld,"
             "\"follow_up_due\":%lld}", now - 86400 * 3, now - 3600);
    rp_http_resp r = rp_http(h, "PUT", "/v1/customers/c-1/issues/I-9", ADMIN "Content-Type: application/json\r\n", body);
    expect(r, 200);
    free(r.text);
}

static void test_page(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, TOKENS);
    scene(h);
    rp_http_resp r = rp_http(h, "GET", "/card?id=c-1", AGENT, NULL);
    expect(r, 200);
    assert_true(has(&r, "Content-Type: text/html; charset=utf-8"));
    assert_true(has(&r, "Content-Security-Policy: default-src 'none'; style-src 'self'; img-src 'self'; "
                        "script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"));
    assert_true(has(&r, "X-Frame-Options: SAMEORIGIN"));
    assert_true(has(&r, "Cache-Control: no-store"));
    assert_true(has(&r, "<h1 id=\"name\">Maria &amp; Co</h1>"));
    assert_true(has(&r, "&lt;script&gt;alert(1)&lt;/script&gt; Lopez"));
    assert_false(has(&r, "<script>"));
    assert_true(has(&r, "Parcel &lt;b&gt;lost&lt;/b&gt;"));
    assert_true(has(&r, "class=\"issue overdue\""));
    assert_true(has(&r, "class=\"top-reason\""));
    /* cue chips, in the card's order */
    const char *a = strstr(r.text, "data-code=\"accessibility\""), *l = strstr(r.text, "data-code=\"language\""),
               *b = strstr(r.text, "data-code=\"broken_promise\""), *v = strstr(r.text, "data-code=\"vip\"");
    assert_true(a && l && b && v && a < l && l < b && b < v);
    assert_true(has(&r, "<link rel=\"stylesheet\" href=\"/card/card.css\">"));
    free(r.text);

    r = rp_http(h, "GET", "/card?phone=%2B1%20212%20555%200000", ADMIN, NULL);
    expect(r, 200);
    assert_true(has(&r, "<h1>First contact</h1>"));
    free(r.text);
    r = rp_http(h, "GET", "/card?phone=4155550002", ADMIN, NULL);
    expect(r, 200);
    assert_true(has(&r, "<h1>Shared line</h1>"));
    assert_true(has(&r, "<a href=\"/card?id=c-2\">Jose</a>"));
    assert_true(has(&r, "<a href=\"/card?id=c-3\">Ana</a>"));
    free(r.text);

    r = rp_http(h, "GET", "/card/card.css", NULL, NULL);
    expect(r, 200);
    assert_true(has(&r, "Content-Type: text/css"));
    assert_true(has(&r, ".chip"));
    free(r.text);

    /* roles */
    r = rp_http(h, "GET", "/card?id=c-1", NULL, NULL);
    expect(r, 401);
    free(r.text);
    r = rp_http(h, "GET", "/card?id=c-1", INGEST, NULL);
    expect(r, 403);
    free(r.text);
    r = rp_http(h, "GET", "/card?id=nobody", AGENT, NULL);
    expect(r, 404);
    free(r.text);
    r = rp_http(h, "GET", "/card?id=c-1&bogus=1", AGENT, NULL);
    expect(r, 400);
    free(r.text);
    assert_int_equal(rp_h_stop(h), 0);
    /* the page view is audited as context.get */
    char log[400];
    snprintf(log, sizeof log, "%s/rapportd.log", h->dir);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[1024];
    bool audited = false;
    while (fgets(line, sizeof line, f))
        audited |= strstr(line, "event=audit op=context.get role=agent customer=c-1") != NULL;
    fclose(f);
    assert_true(audited);
}

static void test_links(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, TOKENS);
    scene(h);
    rp_http_resp r = rp_http(h, "POST", "/v1/card-links?id=c-1&ttl=60", INGEST, NULL);
    expect(r, 200);
    const char *u = strstr(r.body, "\"url\":\"");
    assert_non_null(u);
    char url[256];
    u += 7;
    size_t n = strcspn(u, "\"");
    assert_true(n < sizeof url);
    memcpy(url, u, n);
    url[n] = '\0';
    free(r.text);
    /* valid, without a token */
    r = rp_http(h, "GET", url, NULL, NULL);
    expect(r, 200);
    assert_true(has(&r, "Maria &amp; Co"));
    free(r.text);
    /* tampered: another id, or another sig */
    char bad[300];
    snprintf(bad, sizeof bad, "/card?id=c-2%s", strstr(url, "&exp="));
    r = rp_http(h, "GET", bad, NULL, NULL);
    expect(r, 403);
    free(r.text);
    snprintf(bad, sizeof bad, "%s", url);
    char *last = bad + strlen(bad) - 1;
    *last = *last == '0' ? '1' : '0';
    r = rp_http(h, "GET", bad, NULL, NULL);
    expect(r, 403);
    free(r.text);
    /* expired: a link signed for the past (the signature is checked first) */
    r = rp_http(h, "GET", "/card?id=c-1&exp=1000&sig=00112233445566778899aabbccddeeff", NULL, NULL);
    expect(r, 403);
    free(r.text);
    /* roles of card.link */
    r = rp_http(h, "POST", "/v1/card-links?id=c-1", AGENT, NULL);
    expect(r, 403);
    free(r.text);
    r = rp_http(h, "POST", "/v1/card-links?id=c-1&ttl=99999", ADMIN, NULL);
    expect(r, 400);
    free(r.text);
    /* a shared line's candidates are signed links too */
    r = rp_http(h, "POST", "/v1/card-links?phone=4155550002", ADMIN, NULL);
    expect(r, 200);
    u = strstr(r.body, "\"url\":\"") + 7;
    n = strcspn(u, "\"");
    memcpy(url, u, n);
    url[n] = '\0';
    free(r.text);
    r = rp_http(h, "GET", url, NULL, NULL);
    expect(r, 200);
    const char *cand = strstr(r.text, "<a href=\"/card?id=c-2&amp;exp=");
    assert_non_null(cand);
    char cl[256];
    cand += 9;
    n = strcspn(cand, "\"");
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < sizeof cl; i++) { /* &amp; -> & */
        cl[o++] = cand[i];
        if (strncmp(cand + i, "&amp;", 5) == 0) i += 4;
    }
    cl[o] = '\0';
    free(r.text);
    r = rp_http(h, "GET", cl, NULL, NULL);
    expect(r, 200);
    assert_true(has(&r, "<h1 id=\"name\">Jose</h1>"));
    free(r.text);
    assert_int_equal(rp_h_stop(h), 0);
}

static void test_expired_with_secret(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, TOKENS "card_link_secret = a-shared-secret-for-the-pool\n");
    scene(h);
    rp_http_resp r = rp_http(h, "POST", "/v1/card-links?id=c-1&ttl=1", ADMIN, NULL);
    expect(r, 200);
    char url[256];
    const char *u = strstr(r.body, "\"url\":\"") + 7;
    size_t n = strcspn(u, "\"");
    memcpy(url, u, n);
    url[n] = '\0';
    free(r.text);
    sleep(3);
    r = rp_http(h, "GET", url, NULL, NULL);
    expect(r, 403);
    assert_true(has(&r, "expired or not valid"));
    free(r.text);
    assert_int_equal(rp_h_stop(h), 0);
}

static void test_frame_ancestors(void **state) {
    rp_h *h = *state;
    rp_h_start_ok(h, "frame_ancestors = 'self' https://crm.example.com\n");
    rp_http_resp r = rp_http(h, "GET", "/card?phone=2125550000", NULL, NULL);
    expect(r, 200);
    assert_true(has(&r, "frame-ancestors 'self' https://crm.example.com\r\n"));
    assert_false(has(&r, "X-Frame-Options"));
    free(r.text);
    assert_int_equal(rp_h_stop(h), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_page, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_links, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_expired_with_secret, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_frame_ancestors, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
