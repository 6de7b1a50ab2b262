/* test_idempotency.c — end-to-end: idempotency keys on writes, as a CRM
 * uses them when it retries after a time-out (proto/METHODS.md
 * "Idempotency").
 *
 * Against a real rapportd (harness.h):
 *   - HTTP, with real curl: event.append sent twice with one
 *     Idempotency-Key stores one event and answers the same bytes; the key
 *     with another body, or on another route, is 409 CONFLICT; a bad key is
 *     400; a write that failed (404) kept no key, so its fixed retry runs;
 *   - RPC, the same with the idempotency_key param (and import);
 *   - 32 pipelined requests with one key: one event, 32 identical replies;
 *   - a customer.put retried after kill -9 of the server (between the first
 *     reply and the retry) answers the first result: the key is durable;
 *   - after idempotency_ttl the key is free again: polled (bounded) until
 *     the server stops answering CONFLICT for another request under it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "e2e/harness.h"
#include "e2e/calls.h"
#include "e2e/run.h"

/* --- HTTP with curl ------------------------------------------------------------ */

typedef struct resp {
    int status;
    char body[8192];
} resp;

/* curl -s -X method [-H 'Idempotency-Key: key'] [--data-binary body] path.
 * Bodies and keys of these tests hold no single quote. */
static resp curl(const rp_h *h, const char *method, const char *path, const char *key, const char *body) {
    char hdr[300] = "";
    if (key) snprintf(hdr, sizeof hdr, "-H 'Idempotency-Key: %s'", key);
    int st;
    char *out = rp_sh(&st,
                      "curl -s -X %s %s -H 'Content-Type: application/json' %s%s%s -w '\\n%%{http_code}' "
                      "http://127.0.0.1:%d%s",
                      method, hdr, body ? "--data-binary '" : "", body ? body : "", body ? "'" : "",
                      h->http_port, path);
    resp r = {0};
    snprintf(r.body, sizeof r.body, "%s", out);
    free(out);
    if (st != 0) fail_msg("curl %s %s failed: %s", method, path, r.body);
    char *nl = strrchr(r.body, '\n'); /* -w: the status on the last line */
    assert_non_null(nl);
    r.status = atoi(nl + 1);
    *nl = '\0';
    return r;
}

/* How many times needle occurs in hay. */
static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static void test_http_retry(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, "durability = sync\n"), 0);
    resp r = curl(h, "PUT", "/v1/customers/crm-1", NULL, "{\"name\":\"Ana\"}");
    assert_int_equal(r.status, 200);

    long long ts = (long long)time(NULL) - 60;
    char ev[256], ev2[256];
    snprintf(ev, sizeof ev, "{\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\",\"summary\":\"first\"}", ts);
    snprintf(ev2, sizeof ev2, "{\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\",\"summary\":\"other\"}", ts);
    /* the CRM's request times out on its side; it sends it again */
    resp a = curl(h, "POST", "/v1/customers/crm-1/events", "act-0001", ev);
    resp b = curl(h, "POST", "/v1/customers/crm-1/events", "act-0001", ev);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_string_equal(a.body, b.body);
    rp_expect_has(a.body, "\"seq\":0");
    r = curl(h, "GET", "/v1/customers/crm-1/events?limit=10", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(count_of(r.body, "\"summary\":"), 1);

    /* the same key with another body, or on another route: CONFLICT */
    r = curl(h, "POST", "/v1/customers/crm-1/events", "act-0001", ev2);
    assert_int_equal(r.status, 409);
    rp_expect_has(r.body, "\"code\":\"CONFLICT\"");
    rp_expect_has(r.body, "idempotency key 'act-0001' was already used for a different request");
    r = curl(h, "PUT", "/v1/customers/crm-1", "act-0001", "{\"name\":\"Ana\"}");
    assert_int_equal(r.status, 409);
    r = curl(h, "GET", "/v1/customers/crm-1/events?limit=10", NULL, NULL);
    assert_int_equal(count_of(r.body, "\"summary\":"), 1);

    /* a bad key is refused before anything runs */
    char longkey[200];
    memset(longkey, 'k', 129);
    longkey[129] = '\0';
    r = curl(h, "POST", "/v1/customers/crm-1/events", longkey, ev2);
    assert_int_equal(r.status, 400);
    rp_expect_has(r.body, "idempotency_key");
    r = curl(h, "POST", "/v1/customers/crm-1/events", "caf\xc3\xa9", ev2);
    assert_int_equal(r.status, 400);

    /* a write that failed kept no key: fixed, the retry runs */
    r = curl(h, "POST", "/v1/customers/crm-2/events", "act-0002", ev2);
    assert_int_equal(r.status, 404);
    r = curl(h, "PUT", "/v1/customers/crm-2", NULL, "{\"name\":\"Bo\"}");
    assert_int_equal(r.status, 200);
    r = curl(h, "POST", "/v1/customers/crm-2/events", "act-0002", ev2);
    assert_int_equal(r.status, 200);
    rp_expect_has(r.body, "\"customer_id\":\"crm-2\"");

    /* reads ignore the header */
    r = curl(h, "GET", "/v1/customers/crm-1", "act-0001", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(rp_h_stop(h), 0);
}

/* --- RPC -------------------------------------------------------------------- */

/* The msgpack bytes of o, into buf; returns the length. */
static size_t bytes_of(const msgpack_object *o, char *buf, size_t cap) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *o);
    assert_true(sb.size <= cap);
    memcpy(buf, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static uint32_t mp_len(const msgpack_object *o) {
    assert_non_null(o);
    return o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.size : 0;
}

static void test_rpc_retry(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, "durability = sync\n"), 0);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    ok_call(c, "customer.put", "{\"id\":\"r-1\",\"customer\":{\"name\":\"Ana\"}}");
    /* recent events: retention's age rule would trim old ones */
    long long ts = (long long)time(NULL) - 60;
    char ev[256], ev_moved[256], ev_other[256], ev_nil[256], imp[256];
    snprintf(ev, sizeof ev, "{\"idempotency_key\":\"rpc-K\",\"event\":{\"customer_id\":\"r-1\",\"ts\":%lld,"
             "\"channel\":\"web\",\"kind\":\"login\"}}", ts);
    /* the key may come anywhere among the params, map entries in any order:
     * the request is the same */
    snprintf(ev_moved, sizeof ev_moved, "{\"event\":{\"kind\":\"login\",\"channel\":\"web\",\"ts\":%lld,"
             "\"customer_id\":\"r-1\"},\"idempotency_key\":\"rpc-K\"}", ts);
    snprintf(ev_other, sizeof ev_other, "{\"idempotency_key\":\"rpc-K\",\"event\":{\"customer_id\":\"r-1\","
             "\"ts\":%lld,\"channel\":\"web\",\"kind\":\"login\"}}", ts + 1);
    snprintf(ev_nil, sizeof ev_nil, "{\"idempotency_key\":null,\"event\":{\"customer_id\":\"r-1\",\"ts\":%lld,"
             "\"channel\":\"web\",\"kind\":\"login\"}}", ts);
    snprintf(imp, sizeof imp, "{\"idempotency_key\":\"imp-1\",\"records\":[{\"type\":\"event\","
             "\"customer_id\":\"r-1\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"login\"}]}", ts + 2);
    char a[512], b[512];
    msgpack_object r = ok_call(c, "event.append", ev);
    size_t an = bytes_of(&r, a, sizeof a);
    r = ok_call(c, "event.append", ev_moved);
    size_t bn = bytes_of(&r, b, sizeof b);
    assert_int_equal(an, bn);
    assert_memory_equal(a, b, an);
    r = ok_call(c, "history.list", "{\"id\":\"r-1\",\"limit\":10}");
    assert_int_equal(mp_len(mp_get(&r, "events")), 1);
    const char *msg = err_call(c, "event.append", ev_other,
                               RP_CONFLICT);
    assert_non_null(strstr(msg, "rpc-K"));
    err_call(c, "customer.forget", "{\"idempotency_key\":\"rpc-K\",\"id\":\"r-1\"}", RP_CONFLICT);
    err_call(c, "event.append", "{\"idempotency_key\":7,\"event\":{}}", RP_BAD_REQUEST);
    err_call(c, "event.append", "{\"idempotency_key\":\"\",\"event\":{}}", RP_BAD_REQUEST);
    err_call(c, "event.append", "{\"idempotency_key\":\"a b\",\"event\":{}}", RP_BAD_REQUEST);
    err_call(c, "customer.get", "{\"idempotency_key\":\"x\",\"id\":\"r-1\"}", RP_BAD_REQUEST);
    /* nil is "not given": an ordinary write */
    ok_call(c, "event.append", ev_nil);
    r = ok_call(c, "history.list", "{\"id\":\"r-1\",\"limit\":10}");
    assert_int_equal(mp_len(mp_get(&r, "events")), 2);
    /* import takes a key too */
    r = ok_call(c, "import", imp);
    assert_int_equal(mp_u64(mp_get(&r, "imported")), 1);
    r = ok_call(c, "import", imp);
    assert_int_equal(mp_u64(mp_get(&r, "imported")), 1);
    r = ok_call(c, "history.list", "{\"id\":\"r-1\",\"limit\":10}");
    assert_int_equal(mp_len(mp_get(&r, "events")), 3);
    rp_client_close(c);
    assert_int_equal(rp_h_stop(h), 0);
}

/* Many requests with one key at once (pipelined: the writer takes them in
 * one batch or a few): one applies, every reply is its result. */
static void test_concurrent_same_key(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, "durability = sync\n"), 0);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    ok_call(c, "customer.put", "{\"id\":\"p-1\",\"customer\":{}}");
    char js[256];
    snprintf(js, sizeof js, "{\"idempotency_key\":\"burst\",\"event\":{\"customer_id\":\"p-1\",\"ts\":%lld,"
             "\"channel\":\"web\",\"kind\":\"login\"}}", (long long)time(NULL) - 60);
    msgpack_sbuffer sb;
    json_params(js, &sb);
    rp_errbuf eb = {0};
    enum { N = 32 };
    for (int i = 0; i < N; i++) assert_int_equal(rp_client_send(c, "event.append", sb.data, sb.size, NULL, &eb), RP_OK);
    msgpack_sbuffer_destroy(&sb);
    char first[256];
    size_t fn = 0;
    for (int i = 0; i < N; i++) {
        rp_client_reply rep;
        assert_int_equal(rp_client_recv(c, &rep, &eb), RP_OK);
        assert_int_equal(rep.rc, RP_OK);
        char b[256];
        size_t bn = bytes_of(&rep.result, b, sizeof b);
        if (i == 0) {
            memcpy(first, b, bn);
            fn = bn;
        }
        assert_int_equal(bn, fn);
        assert_memory_equal(b, first, fn);
    }
    msgpack_object r = ok_call(c, "history.list", "{\"id\":\"p-1\",\"limit\":100}");
    assert_int_equal(mp_len(mp_get(&r, "events")), 1);
    rp_client_close(c);
    assert_int_equal(rp_h_stop(h), 0);
}

/* The key is written in the write's own transaction: it survives a crash. */
static void test_put_retry_after_kill9(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, "durability = sync\n"), 0);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    const char *put = "{\"idempotency_key\":\"put-77\",\"id\":\"k-1\",\"customer\":{\"name\":\"Ana\"}}";
    ok_call(c, "customer.put", "{\"id\":\"k-1\",\"customer\":{\"name\":\"Ana\"}}");
    msgpack_object r = ok_call(c, "customer.put", put);
    assert_int_equal(mp_u64(mp_get(&r, "version")), 2);
    char a[256], b[256];
    size_t an = bytes_of(&r, a, sizeof a);
    rp_client_close(c);
    rp_h_kill9(h);
    assert_int_equal(rp_h_restart(h), 0);
    c = rp_h_connect(h);
    assert_non_null(c);
    r = ok_call(c, "customer.put", put);
    size_t bn = bytes_of(&r, b, sizeof b);
    assert_int_equal(an, bn);
    assert_memory_equal(a, b, an);
    r = ok_call(c, "customer.get", "{\"id\":\"k-1\"}");
    assert_int_equal(mp_u64(mp_get(&r, "version")), 2);
    err_call(c, "customer.put", "{\"idempotency_key\":\"put-77\",\"id\":\"k-1\",\"customer\":{\"name\":\"Bo\"}}",
             RP_CONFLICT);
    rp_client_close(c);
    assert_int_equal(rp_h_stop(h), 0);
}

/* After idempotency_ttl the key is free again. ttl = 2 s: a repeat within
 * the same second is always inside it. */
static void test_ttl(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, "idempotency_ttl = 2\n"), 0);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    const char *p1 = "{\"idempotency_key\":\"ttl-1\",\"id\":\"t-1\",\"customer\":{\"name\":\"Ana\"}}";
    const char *p2 = "{\"idempotency_key\":\"ttl-1\",\"id\":\"t-1\",\"customer\":{\"name\":\"Bo\"}}";
    long long t0 = rp_h_now_ms();
    msgpack_object r = ok_call(c, "customer.put", p1);
    assert_int_equal(mp_u64(mp_get(&r, "version")), 1);
    r = ok_call(c, "customer.put", p1);
    if (rp_h_now_ms() - t0 < 900) assert_int_equal(mp_u64(mp_get(&r, "version")), 1);
    /* poll until the key is observed expired: another request under it is
     * no longer CONFLICT (bounded: the ttl plus a generous margin) */
    rp_err rc = RP_CONFLICT;
    rp_errbuf eb = {0};
    int polls = 0;
    while (rc == RP_CONFLICT && rp_h_now_ms() - t0 < 10000) {
        if (polls++) rp_h_sleep_ms(50);
        memset(&eb, 0, sizeof eb);
        rc = jcall(c, "customer.put", p2, &r, &eb);
    }
    if (rc != RP_OK) fprintf(stderr, "after the ttl: %s %s\n", rp_err_code(rc), eb.msg);
    assert_int_equal(rc, RP_OK);
    assert_true(polls > 1);
    uint64_t v = mp_u64(mp_get(&r, "version"));
    assert_true(v >= 2);
    /* and the key now remembers the new request */
    r = ok_call(c, "customer.put", p2);
    if (rp_h_now_ms() - t0 < 10000) assert_true(mp_u64(mp_get(&r, "version")) >= v);
    rp_client_close(c);
    assert_int_equal(rp_h_stop(h), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_retry, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_rpc_retry, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_key, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_put_retry_after_kill9, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_ttl, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
