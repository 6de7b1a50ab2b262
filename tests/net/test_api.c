/* test_api.c — the operation table over a real store (no sockets).
 *
 * Every operation goes through rp_api_call on a store in a fresh mkdtemp
 * directory. Params are written as JSON and converted with net/json.h;
 * replies are captured by a callback and waited for (writes answer from the
 * writer thread). Covered: each operation's result, roles allowed and
 * refused, parameter errors with their sentences, versions and conflicts,
 * merge aliases, forget, history paging, ambiguous lookups, import in both
 * modes, export -> import -> export byte identity, the audit line of
 * context.get (and none for route.get), and the metrics text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/alloc.h"
#include "model/codec.h"
#include "net/json.h"

/* --- fixture ------------------------------------------------------------------ */

typedef struct fixture {
    char dir[128];
    char audit[256];
    rp_config cfg;
    rp_store *store;
    rp_api *api;
} fixture;

static void fx_open(fixture *fx) {
    snprintf(fx->dir, sizeof fx->dir, "/tmp/rp-test-api-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    rp_config_defaults(&fx->cfg);
    snprintf(fx->cfg.data_dir, sizeof fx->cfg.data_dir, "%s/data", fx->dir);
    snprintf(fx->audit, sizeof fx->audit, "%s/audit.log", fx->dir);
    snprintf(fx->cfg.audit_log, sizeof fx->cfg.audit_log, "%s", fx->audit);
    fx->cfg.map_initial = 8u << 20;
    fx->cfg.durability = RP_DURABLE_ASYNC;
    fx->cfg.async_flush_ms = 10;
    rp_errbuf eb = {0};
    if (rp_store_open(&fx->cfg, &fx->store, &eb) != RP_OK) fail_msg("store: %s", eb.msg);
    if (rp_api_create(fx->store, &fx->api, &eb) != RP_OK) fail_msg("api: %s", eb.msg);
}

static void rm_tree(const char *dir) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

static void fx_close(fixture *fx) {
    rp_api_destroy(fx->api);
    rp_store_close(fx->store);
    rm_tree(fx->dir);
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    fx_open(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    fx_close(fx);
    free(fx);
    return 0;
}

/* --- calling --------------------------------------------------------------------- */

typedef struct reply {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    bool shape_ok; /* OK: result and no message; error: a message and no result */
    rp_err rc;
    char msg[512];
    char *data;
    size_t len;
} reply;

static void on_reply(void *arg, rp_err rc, const char *msg, const char *res, size_t len) {
    reply *r = arg;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    /* no cmocka asserts here: this may run on the writer thread */
    if (rc == RP_OK) {
        r->shape_ok = msg == NULL && res != NULL && len > 0;
        r->data = malloc(len + 1);
        memcpy(r->data, res, len);
        r->len = len;
    } else {
        r->shape_ok = res == NULL && msg != NULL && *msg != '\0';
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void reply_free(reply *r) {
    assert_int_equal(r->calls, 1); /* exactly one reply, even after a while */
    assert_true(r->shape_ok);
    free(r->data);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* Call op with params given as JSON (NULL: no params) and wait for the one
 * reply. The caller frees the reply with reply_free. */
static reply *call_as(fixture *fx, const char *op, rp_role role, const char *reqid, const char *json) {
    const rp_api_op *o = rp_api_find(op, strlen(op));
    if (o == NULL) fail_msg("no such op %s", op);
    reply *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object params;
    const msgpack_object *pp = NULL;
    if (json) {
        rp_mpcheck_limits lim = rp_mpcheck_limits_from_config(&fx->cfg);
        rp_errbuf eb = {0};
        if (rp_json_to_msgpack(json, strlen(json), &lim, &sb, &eb) != RP_OK)
            fail_msg("bad test JSON %s: %s", json, eb.msg);
        size_t off = 0;
        assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &z, &params), MSGPACK_UNPACK_SUCCESS);
        pp = &params;
    }
    rp_api_call(fx->api, o, role, reqid, pp, on_reply, r);
    /* the caller's params die now: writes must have copied what they keep */
    if (sb.data) memset(sb.data, 0xEE, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&z);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&r->mu);
    while (r->calls == 0)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT) fail_msg("%s: no reply", op);
    pthread_mutex_unlock(&r->mu);
    return r;
}

static reply *call(fixture *fx, const char *op, const char *json) {
    return call_as(fx, op, RP_ROLE_ADMIN, "t-1", json);
}

/* The reply's result as compact JSON (malloc'd). */
static char *res_json(const reply *r) {
    if (r->rc != RP_OK) fail_msg("expected OK, got %s: %s", rp_err_code(r->rc), r->msg);
    rp_mpcheck_limits lim = {1u << 26, 64, 1000000, 1u << 20, 0, false};
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_errbuf eb = {0};
    size_t used;
    if (rp_msgpack_bytes_to_json(r->data, r->len, &lim, 0, &b, &used, &eb) != RP_OK)
        fail_msg("result is not valid msgpack: %s", eb.msg);
    assert_int_equal(used, r->len);
    char *s = rp_buf_detach(&b, NULL);
    rp_buf_free(&b);
    return s;
}

/* Call, expect OK, and return the result as JSON. */
static char *ok_json(fixture *fx, const char *op, const char *json) {
    reply *r = call(fx, op, json);
    if (r->rc != RP_OK) fail_msg("%s %s: %s: %s", op, json ? json : "", rp_err_code(r->rc), r->msg);
    char *s = res_json(r);
    reply_free(r);
    return s;
}

static void expect_contains(const char *hay, const char *needle) {
    if (strstr(hay, needle) == NULL) fail_msg("expected to find\n  %s\nin\n  %s", needle, hay);
}

/* Call and expect error code; the sentence must contain `words`. */
static void expect_err_as(fixture *fx, const char *op, rp_role role, const char *json, rp_err code,
                          const char *words) {
    reply *r = call_as(fx, op, role, "t-err", json);
    if (r->rc != code)
        fail_msg("%s %s: expected %s, got %s (%s)", op, json ? json : "", rp_err_code(code),
                 rp_err_code(r->rc), r->msg);
    if (words) expect_contains(r->msg, words);
    reply_free(r);
}

static void expect_err(fixture *fx, const char *op, const char *json, rp_err code, const char *words) {
    expect_err_as(fx, op, RP_ROLE_ADMIN, json, code, words);
}

static void ok(fixture *fx, const char *op, const char *json) { free(ok_json(fx, op, json)); }

static char *jfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *jfmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    assert_non_null(s);
    return s;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return strdup("");
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A small data set: two customers sharing a household phone, events, an
 * overdue callback. */
static void seed(fixture *fx) {
    int64_t now = (int64_t)time(NULL);
    ok(fx, "customer.put",
       "{\"id\":\"c1\",\"customer\":{\"name\":\"Ada Lovelace\",\"language\":\"es\",\"tier\":\"gold\","
       "\"phones\":[\"+1 (415) 555-1212\"],\"emails\":[\"Ada@Example.com\"],\"accounts\":[\"A-1\"],"
       "\"flags\":[\"vip\"],\"preferences\":{\"channel\":\"phone\"}}}");
    ok(fx, "customer.put",
       "{\"id\":\"c2\",\"customer\":{\"id\":\"c2\",\"name\":\"Bob Byron\",\"phones\":[\"415.555.1212\","
       "\"+44 20 7946 0958\"]}}");
    for (int i = 0; i < 5; i++) {
        char *p = jfmt("{\"event\":{\"customer_id\":\"c1\",\"ts\":%lld,\"channel\":\"phone\","
                       "\"kind\":\"contact\",\"topic\":\"delivery\",\"summary\":\"call %d\","
                       "\"outcome\":\"unresolved\",\"sentiment\":-0.5,\"agent\":\"ag%d\"}}",
                       (long long)(now - 86400 * (5 - i)), i, i);
        ok(fx, "event.append", p);
        free(p);
    }
    char *p = jfmt("{\"issue\":{\"customer_id\":\"c1\",\"issue_id\":\"I-1\",\"topic\":\"delivery\","
                   "\"summary\":\"parcel late\",\"follow_up_due\":%lld,\"opened_at\":%lld}}",
                   (long long)(now - 3600), (long long)(now - 86400 * 6));
    ok(fx, "issue.put", p);
    free(p);
}

/* --- tests ---------------------------------------------------------------------- */

static void test_table(void **state) {
    (void)state;
    size_t n;
    const rp_api_op *ops = rp_api_ops(&n);
    assert_int_equal(n, 19); /* 16 + backup, backtest (ops_admin.c) + card.link (ops_card.c) */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ops[i].index, (int)i);
        assert_ptr_equal(rp_api_find(ops[i].name, strlen(ops[i].name)), &ops[i]);
    }
    assert_null(rp_api_find("auth", 4));
    assert_null(rp_api_find("ping2", 5));
    assert_null(rp_api_find("pin", 3));
    const rp_api_op *ctx = rp_api_find("context.get", 11);
    assert_false(rp_api_allowed(ctx, RP_ROLE_ROUTE));
    assert_true(rp_api_allowed(ctx, RP_ROLE_AGENT));
    assert_false(rp_api_allowed(ctx, RP_ROLE_INGEST));
    assert_true(rp_api_allowed(ctx, RP_ROLE_ADMIN));
    assert_false(rp_api_allowed(ctx, RP_ROLE_NONE));
    const rp_api_op *route = rp_api_find("route.get", 9);
    assert_true(rp_api_allowed(route, RP_ROLE_ROUTE));
    assert_true(rp_api_allowed(route, RP_ROLE_AGENT));
    assert_false(rp_api_allowed(route, RP_ROLE_INGEST));
    const rp_api_op *forget = rp_api_find("customer.forget", 15);
    assert_true(forget->write);
    assert_false(rp_api_allowed(forget, RP_ROLE_INGEST));
    assert_true(rp_api_allowed(forget, RP_ROLE_ADMIN));
    assert_true(rp_api_allowed(rp_api_find("ping", 4), RP_ROLE_ROUTE));
    assert_false(rp_api_allowed(rp_api_find("export", 6), RP_ROLE_AGENT));
}

static void test_ping_and_params(void **state) {
    fixture *fx = *state;
    int64_t before = (int64_t)time(NULL);
    char *s = ok_json(fx, "ping", NULL);
    expect_contains(s, "{\"pong\":true,\"time\":");
    long long t = atoll(strstr(s, "\"time\":") + 7);
    assert_true(t >= before && t <= before + 5);
    free(s);
    ok(fx, "ping", "{}");
    ok(fx, "ping", "null");
    expect_err(fx, "ping", "[1,2]", RP_BAD_REQUEST, "params must be a map");
    expect_err(fx, "ping", "{\"x\":1}", RP_BAD_REQUEST, "unknown parameter 'x'");
    expect_err_as(fx, "ping", RP_ROLE_NONE, NULL, RP_FORBIDDEN, "may not call ping");
    for (rp_role r = RP_ROLE_ROUTE; r <= RP_ROLE_ADMIN; r++) {
        reply *rep = call_as(fx, "ping", r, "", NULL);
        assert_int_equal(rep->rc, RP_OK);
        reply_free(rep);
    }
}

static void test_roles(void **state) {
    fixture *fx = *state;
    seed(fx);
    const char *get = "{\"id\":\"c1\"}";
    expect_err_as(fx, "customer.get", RP_ROLE_ROUTE, get, RP_FORBIDDEN, "role 'route'");
    expect_err_as(fx, "customer.get", RP_ROLE_INGEST, get, RP_FORBIDDEN, "customer.get");
    expect_err_as(fx, "context.get", RP_ROLE_ROUTE, "{\"phone\":\"4155551212\"}", RP_FORBIDDEN, NULL);
    expect_err_as(fx, "customer.put", RP_ROLE_AGENT, "{\"id\":\"x\",\"customer\":{}}", RP_FORBIDDEN, NULL);
    expect_err_as(fx, "customer.forget", RP_ROLE_INGEST, get, RP_FORBIDDEN, NULL);
    expect_err_as(fx, "export", RP_ROLE_AGENT, NULL, RP_FORBIDDEN, NULL);
    expect_err_as(fx, "import", RP_ROLE_AGENT, "{\"records\":[]}", RP_FORBIDDEN, NULL);
    expect_err_as(fx, "stats", RP_ROLE_ROUTE, NULL, RP_FORBIDDEN, NULL);
    /* the forbidden calls changed nothing */
    char *s = ok_json(fx, "customer.get", get);
    expect_contains(s, "\"version\":1");
    free(s);
    reply *r = call_as(fx, "route.get", RP_ROLE_ROUTE, "r", "{\"phone\":\"+44 20 7946 0958\"}");
    assert_int_equal(r->rc, RP_OK);
    reply_free(r);
    r = call_as(fx, "customer.get", RP_ROLE_AGENT, "r", get);
    assert_int_equal(r->rc, RP_OK);
    reply_free(r);
    r = call_as(fx, "event.append", RP_ROLE_INGEST, "r",
                "{\"event\":{\"customer_id\":\"c2\",\"ts\":5,\"channel\":\"web\",\"kind\":\"login\"}}");
    /* (an event older than the retention age is accepted and trimmed at once) */
    assert_int_equal(r->rc, RP_OK);
    reply_free(r);
}

static void test_customer_crud(void **state) {
    fixture *fx = *state;
    char *s = ok_json(fx, "customer.put",
                      "{\"id\":\"k1\",\"customer\":{\"name\":\"Kim\",\"phones\":[\"(212) 555-0100\"]}}");
    assert_string_equal(s, "{\"id\":\"k1\",\"version\":1}");
    free(s);
    s = ok_json(fx, "customer.get", "{\"id\":\"k1\"}");
    expect_contains(s, "\"id\":\"k1\",\"name\":\"Kim\"");
    expect_contains(s, "\"phones\":[\"+12125550100\"]");
    free(s);
    /* replace with the right expected version, then a stale one conflicts */
    s = ok_json(fx, "customer.put", "{\"id\":\"k1\",\"expect_version\":1,\"customer\":{\"name\":\"Kim B\"}}");
    assert_string_equal(s, "{\"id\":\"k1\",\"version\":2}");
    free(s);
    expect_err(fx, "customer.put", "{\"id\":\"k1\",\"expect_version\":1,\"customer\":{\"name\":\"X\"}}",
               RP_CONFLICT, NULL);
    expect_err(fx, "customer.put", "{\"id\":\"k9\",\"expect_version\":3,\"customer\":{}}", RP_CONFLICT, NULL);
    /* patch: a merge patch, version +1 */
    s = ok_json(fx, "customer.patch",
                "{\"id\":\"k1\",\"patch\":{\"tier\":\"gold\",\"preferences\":{\"tone\":\"brief\"}}}");
    assert_string_equal(s, "{\"id\":\"k1\",\"version\":3}");
    free(s);
    s = ok_json(fx, "customer.get", "{\"id\":\"k1\"}");
    expect_contains(s, "\"name\":\"Kim B\"");
    expect_contains(s, "\"tier\":\"gold\"");
    expect_contains(s, "\"preferences\":{\"tone\":\"brief\"}");
    free(s);
    expect_err(fx, "customer.patch", "{\"id\":\"k1\",\"expect_version\":1,\"patch\":{\"tier\":\"x\"}}",
               RP_CONFLICT, NULL);
    expect_err(fx, "customer.patch", "{\"id\":\"nobody\",\"patch\":{\"tier\":\"x\"}}", RP_NOT_FOUND, NULL);
    /* bad requests, each with a sentence naming the problem */
    expect_err(fx, "customer.put", "{\"id\":\"k2\",\"customer\":{\"id\":\"k3\"}}", RP_BAD_REQUEST,
               "does not match");
    expect_err(fx, "customer.put", "{\"id\":\"k2\",\"customer\":{\"nmae\":\"typo\"}}", RP_BAD_REQUEST,
               "unknown field 'nmae'");
    expect_err(fx, "customer.put", "{\"id\":\"k2\"}", RP_BAD_REQUEST, "missing parameter 'customer'");
    expect_err(fx, "customer.put", "{\"id\":\"k2\",\"customer\":[]}", RP_BAD_REQUEST, "must be a map");
    expect_err(fx, "customer.put", "{\"customer\":{}}", RP_BAD_REQUEST, "missing parameter 'id'");
    expect_err(fx, "customer.put", "{\"id\":\"has space\",\"customer\":{}}", RP_BAD_REQUEST, NULL);
    expect_err(fx, "customer.put", "{\"id\":\"k2\",\"customer\":{\"phones\":[\"call me\"]}}",
               RP_BAD_REQUEST, "customer:");
    expect_err(fx, "customer.put", "{\"id\":\"k2\",\"customer\":{},\"expect_version\":-1}",
               RP_BAD_REQUEST, "expect_version");
    expect_err(fx, "customer.put", "{\"id\":\"k2\",\"customer\":{},\"extra\":1}", RP_BAD_REQUEST,
               "unknown parameter 'extra'");
    expect_err(fx, "customer.patch", "{\"id\":\"k1\",\"patch\":{\"id\":\"zz\"}}", RP_BAD_REQUEST,
               "cannot patch id");
    expect_err(fx, "customer.get", "{}", RP_BAD_REQUEST, "missing parameter 'id'");
    expect_err(fx, "customer.get", "{\"id\":7}", RP_BAD_REQUEST, "must be a string");
    expect_err(fx, "customer.get", "{\"id\":\"nobody\"}", RP_NOT_FOUND, NULL);
    /* forget: gone, and gone from the indexes */
    s = ok_json(fx, "customer.forget", "{\"id\":\"k1\"}");
    assert_string_equal(s, "{\"id\":\"k1\",\"forgotten\":true}");
    free(s);
    expect_err(fx, "customer.get", "{\"id\":\"k1\"}", RP_NOT_FOUND, NULL);
    s = ok_json(fx, "lookup", "{\"phone\":\"212-555-0100\"}");
    expect_contains(s, "\"found\":false");
    free(s);
    expect_err(fx, "customer.forget", "{\"id\":\"k1\"}", RP_NOT_FOUND, NULL);
}

static void test_events_and_history(void **state) {
    fixture *fx = *state;
    ok(fx, "customer.put", "{\"id\":\"h1\",\"customer\":{\"name\":\"H\"}}");
    /* recent times: events older than the retention age are trimmed */
    long long t0 = (long long)time(NULL) - 1000;
    for (int i = 0; i < 7; i++) {
        char *p = jfmt("{\"event\":{\"customer_id\":\"h1\",\"ts\":%lld,\"channel\":\"chat\","
                       "\"kind\":\"contact\",\"summary\":\"e%d\"}}", t0 + (i / 2), i);
        char *s = ok_json(fx, "event.append", p);
        char *want = jfmt("{\"customer_id\":\"h1\",\"ts\":%lld,\"seq\":%d,\"cursor\":\"%lld.%d\","
                          "\"duplicate\":false}",
                          t0 + i / 2, i % 2, t0 + i / 2, i % 2);
        assert_string_equal(s, want);
        free(want);
        free(s);
        free(p);
    }
    /* newest first, pages of 3 linked by the cursor */
    char *s = ok_json(fx, "history.list", "{\"id\":\"h1\",\"limit\":3}");
    expect_contains(s, "\"summary\":\"e6\"");
    expect_contains(s, "\"summary\":\"e4\"");
    assert_true(strstr(s, "e6") < strstr(s, "e5"));
    assert_null(strstr(s, "\"e3\""));
    char *want = jfmt("\"next\":\"%lld.0\"", t0 + 2);
    expect_contains(s, want);
    free(want);
    free(s);
    char *p = jfmt("{\"id\":\"h1\",\"limit\":3,\"before\":\"%lld.0\"}", t0 + 2);
    s = ok_json(fx, "history.list", p);
    free(p);
    expect_contains(s, "\"summary\":\"e3\"");
    expect_contains(s, "\"summary\":\"e1\"");
    want = jfmt("\"next\":\"%lld.1\"", t0);
    expect_contains(s, want);
    free(want);
    free(s);
    p = jfmt("{\"id\":\"h1\",\"before\":\"%lld.1\"}", t0);
    s = ok_json(fx, "history.list", p);
    free(p);
    expect_contains(s, "\"summary\":\"e0\"");
    expect_contains(s, "\"next\":null");
    free(s);
    s = ok_json(fx, "history.list", "{\"id\":\"h1\"}");
    expect_contains(s, "\"next\":null");
    free(s);
    expect_err(fx, "history.list", "{\"id\":\"h1\",\"limit\":0}", RP_BAD_REQUEST, "limit");
    expect_err(fx, "history.list", "{\"id\":\"h1\",\"limit\":201}", RP_BAD_REQUEST, "1..200");
    expect_err(fx, "history.list", "{\"id\":\"h1\",\"limit\":\"5\"}", RP_BAD_REQUEST, "integer");
    expect_err(fx, "history.list", "{\"id\":\"h1\",\"before\":\"yesterday\"}", RP_BAD_REQUEST, NULL);
    expect_err(fx, "history.list", "{\"id\":\"nobody\"}", RP_NOT_FOUND, NULL);
    expect_err(fx, "event.append", "{\"event\":{\"customer_id\":\"nobody\",\"ts\":1,\"channel\":\"web\","
               "\"kind\":\"x\"}}", RP_NOT_FOUND, NULL);
    expect_err(fx, "event.append", "{\"event\":{\"customer_id\":\"h1\",\"ts\":1,\"kind\":\"x\"}}",
               RP_BAD_REQUEST, "event: missing required field 'channel'");
    expect_err(fx, "event.append", "{\"event\":{\"customer_id\":\"h1\",\"ts\":1,\"channel\":\"fax\","
               "\"kind\":\"x\"}}", RP_BAD_REQUEST, "event:");
    expect_err(fx, "event.append", "{}", RP_BAD_REQUEST, "missing parameter 'event'");
}

static void test_issues(void **state) {
    fixture *fx = *state;
    ok(fx, "customer.put", "{\"id\":\"i1\",\"customer\":{}}");
    char *s = ok_json(fx, "issue.put", "{\"issue\":{\"customer_id\":\"i1\",\"issue_id\":\"B\","
                      "\"topic\":\"billing\",\"severity\":\"high\",\"opened_at\":100,\"updated_at\":200}}");
    assert_string_equal(s, "{\"customer_id\":\"i1\",\"issue_id\":\"B\"}");
    free(s);
    ok(fx, "issue.put", "{\"issue\":{\"customer_id\":\"i1\",\"issue_id\":\"A\",\"status\":\"resolved\","
       "\"opened_at\":50,\"updated_at\":60}}");
    s = ok_json(fx, "issue.list", "{\"id\":\"i1\"}");
    expect_contains(s, "{\"customer_id\":\"i1\",\"issues\":[{\"customer_id\":\"i1\",\"issue_id\":\"A\"");
    expect_contains(s, "\"issue_id\":\"B\",\"topic\":\"billing\",\"status\":\"open\",\"severity\":\"high\"");
    free(s);
    s = ok_json(fx, "issue.list", "{\"id\":\"i1\"}");
    free(s);
    expect_err(fx, "issue.put", "{\"issue\":{\"customer_id\":\"nobody\",\"issue_id\":\"A\"}}", RP_NOT_FOUND, NULL);
    expect_err(fx, "issue.put", "{\"issue\":{\"customer_id\":\"i1\"}}", RP_BAD_REQUEST, "issue_id");
    expect_err(fx, "issue.list", "{\"id\":\"nobody\"}", RP_NOT_FOUND, NULL);
}

static void test_lookup_and_merge(void **state) {
    fixture *fx = *state;
    seed(fx);
    char *s = ok_json(fx, "lookup", "{\"email\":\" ADA@example.COM \"}");
    assert_string_equal(s, "{\"found\":true,\"ambiguous\":false,\"key\":\"ada@example.com\","
                           "\"candidates\":[{\"customer_id\":\"c1\",\"name\":\"Ada Lovelace\"}]}");
    free(s);
    s = ok_json(fx, "lookup", "{\"phone\":\"tel:+14155551212\"}");
    expect_contains(s, "\"found\":true,\"ambiguous\":true,\"key\":\"+14155551212\"");
    expect_contains(s, "{\"customer_id\":\"c1\",\"name\":\"Ada Lovelace\"}");
    expect_contains(s, "{\"customer_id\":\"c2\",\"name\":\"Bob Byron\"}");
    free(s);
    s = ok_json(fx, "lookup", "{\"account\":\"A-404\"}");
    assert_string_equal(s, "{\"found\":false,\"ambiguous\":false,\"key\":\"A-404\",\"candidates\":[]}");
    free(s);
    expect_err(fx, "lookup", "{}", RP_BAD_REQUEST, "give one of phone, email, account");
    expect_err(fx, "lookup", "{\"phone\":\"1\",\"email\":\"a@b.c\"}", RP_BAD_REQUEST, "exactly one");
    expect_err(fx, "lookup", "{\"phone\":\"not a number\"}", RP_BAD_REQUEST, NULL);
    expect_err(fx, "lookup", "{\"id\":\"c1\"}", RP_BAD_REQUEST, "unknown parameter 'id'");
    /* merge c2 into c1: c2 answers as c1, its phones follow */
    s = ok_json(fx, "customer.merge", "{\"from\":\"c2\",\"into\":\"c1\"}");
    expect_contains(s, "{\"id\":\"c1\",\"version\":");
    free(s);
    s = ok_json(fx, "customer.get", "{\"id\":\"c2\"}");
    expect_contains(s, "\"id\":\"c1\"");
    free(s);
    s = ok_json(fx, "lookup", "{\"phone\":\"+44 (0)20 7946 0958\"}");
    expect_contains(s, "\"candidates\":[{\"customer_id\":\"c1\"");
    free(s);
    s = ok_json(fx, "history.list", "{\"id\":\"c2\",\"limit\":1}");
    expect_contains(s, "{\"customer_id\":\"c1\",\"events\":[");
    free(s);
    expect_err(fx, "customer.merge", "{\"from\":\"c1\",\"into\":\"c1\"}", RP_CONFLICT, NULL);
    expect_err(fx, "customer.merge", "{\"from\":\"zz\",\"into\":\"c1\"}", RP_NOT_FOUND, NULL);
    expect_err(fx, "customer.merge", "{\"from\":\"c1\"}", RP_BAD_REQUEST, "missing parameter 'into'");
}

static void test_context_and_audit(void **state) {
    fixture *fx = *state;
    seed(fx);
    reply *r = call_as(fx, "context.get", RP_ROLE_AGENT, "req-42", "{\"email\":\"ada@example.com\"}");
    char *s = res_json(r);
    reply_free(r);
    expect_contains(s, "\"found\":true");
    expect_contains(s, "\"likely_reasons\":[{\"topic\":\"delivery\"");
    expect_contains(s, "broken_promise");
    free(s);
    char *log = slurp(fx->audit);
    expect_contains(log, " event=audit op=context.get role=agent customer=c1 reqid=req-42\n");
    assert_true(strncmp(log, "ts=", 3) == 0);
    assert_int_equal(strchr(log, '\n')[1], '\0'); /* exactly one line */
    free(log);
    /* ambiguous: audited with every candidate shown */
    r = call_as(fx, "context.get", RP_ROLE_ADMIN, "req 43", "{\"phone\":\"4155551212\"}");
    s = res_json(r);
    reply_free(r);
    expect_contains(s, "\"ambiguous\":true");
    free(s);
    log = slurp(fx->audit);
    expect_contains(log, "op=context.get role=admin customer=c1,c2 reqid=req_43\n");
    free(log);
    /* unknown caller: an answer, and nobody was shown */
    s = ok_json(fx, "context.get", "{\"phone\":\"+1 650 555 0000\"}");
    expect_contains(s, "\"found\":false");
    expect_contains(s, "first_contact");
    free(s);
    /* route.get: not a full card, not audited */
    r = call_as(fx, "route.get", RP_ROLE_ROUTE, "req-44", "{\"phone\":\"+44 20 7946 0958\"}");
    s = res_json(r);
    reply_free(r);
    expect_contains(s, "\"found\":true");
    expect_contains(s, "\"customer_id\":\"c2\"");
    free(s);
    s = ok_json(fx, "route.get", "{\"phone\":\"anonymous\"}");
    expect_contains(s, "\"found\":false");
    free(s);
    log = slurp(fx->audit);
    int lines = 0;
    for (char *p = log; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 2);
    assert_null(strstr(log, "route.get"));
    free(log);
    /* errors */
    expect_err(fx, "context.get", "{\"id\":\"nobody\"}", RP_NOT_FOUND, NULL);
    expect_err(fx, "context.get", "{\"phone\":\"1\",\"id\":\"c1\"}", RP_BAD_REQUEST, "exactly one");
    expect_err(fx, "context.get", "{\"id\":\"c1\",\"at\":-5}", RP_BAD_REQUEST, "'at'");
    expect_err(fx, "context.get", "{\"id\":\"c1\",\"at\":\"now\"}", RP_BAD_REQUEST, "integer");
    expect_err(fx, "route.get", "{}", RP_BAD_REQUEST, "missing parameter 'phone'");
    expect_err(fx, "route.get", "{\"phone\":5}", RP_BAD_REQUEST, "phone");
    /* at: the card as of a past moment has no events yet */
    s = ok_json(fx, "context.get", "{\"id\":\"c1\",\"at\":1000}");
    expect_contains(s, "\"recent_events\":[]");
    free(s);
}

static void test_stats_and_metrics(void **state) {
    fixture *fx = *state;
    seed(fx);
    char *s = ok_json(fx, "stats", NULL);
    expect_contains(s, "\"customers\":2,\"events\":5,\"issues\":1,\"aliases\":0");
    expect_contains(s, "\"writer\":{\"commits\":");
    free(s);
    expect_err_as(fx, "stats", RP_ROLE_ROUTE, NULL, RP_FORBIDDEN, NULL);
    expect_err(fx, "customer.get", "{\"id\":\"nobody\"}", RP_NOT_FOUND, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_api_metrics(fx->api, &sb);
    msgpack_sbuffer_write(&sb, "", 1);
    const char *m = sb.data;
    expect_contains(m, "# TYPE rapport_requests_total counter\n");
    expect_contains(m, "rapport_requests_total{method=\"customer.put\",code=\"OK\"} 2\n");
    expect_contains(m, "rapport_requests_total{method=\"event.append\",code=\"OK\"} 5\n");
    expect_contains(m, "rapport_requests_total{method=\"stats\",code=\"FORBIDDEN\"} 1\n");
    expect_contains(m, "rapport_requests_total{method=\"customer.get\",code=\"NOT_FOUND\"} 1\n");
    expect_contains(m, "rapport_request_duration_seconds_bucket{method=\"event.append\",le=\"+Inf\"} 5\n");
    expect_contains(m, "rapport_request_duration_seconds_count{method=\"stats\"} 2\n");
    expect_contains(m, "rapport_request_duration_seconds_bucket{method=\"ping\",le=\"5e-05\"} 0\n");
    expect_contains(m, "rapport_customers 2\n");
    expect_contains(m, "rapport_events 5\n");
    expect_contains(m, "rapport_map_size_bytes ");
    expect_contains(m, "rapport_writer_commits_total ");
    msgpack_sbuffer_destroy(&sb);
}

static void test_import_modes(void **state) {
    fixture *fx = *state;
    /* non-strict: bad records are skipped and reported, the rest commit */
    long long now = (long long)time(NULL);
    char *in = jfmt("{\"records\":["
        "{\"type\":\"customer\",\"id\":\"m1\",\"name\":\"M\",\"phones\":[\"+14155550123\"]},"
        "{\"type\":\"event\",\"customer_id\":\"m1\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"order\"},"
        "{\"type\":\"event\",\"customer_id\":\"ghost\",\"ts\":10,\"channel\":\"web\",\"kind\":\"order\"},"
        "{\"type\":\"parcel\",\"id\":\"x\"},"
        "{\"id\":\"no-type\"},"
        "{\"type\":\"issue\",\"customer_id\":\"m1\",\"issue_id\":\"T1\",\"opened_at\":5,\"updated_at\":6},"
        "7]}", now);
    char *s = ok_json(fx, "import", in);
    free(in);
    expect_contains(s, "{\"imported\":3,\"skipped\":4,\"errors\":[{\"index\":2,\"code\":\"NOT_FOUND\"");
    expect_contains(s, "{\"index\":3,\"code\":\"BAD_REQUEST\",\"message\":\"field 'type' must be");
    expect_contains(s, "{\"index\":4,\"code\":\"BAD_REQUEST\",\"message\":\"missing field 'type'");
    expect_contains(s, "{\"index\":6,\"code\":\"BAD_REQUEST\"");
    free(s);
    s = ok_json(fx, "history.list", "{\"id\":\"m1\"}");
    expect_contains(s, "\"kind\":\"order\"");
    free(s);
    /* strict: a bad record refuses the batch before anything is written */
    expect_err(fx, "import", "{\"strict\":true,\"records\":["
        "{\"type\":\"customer\",\"id\":\"s1\"},"
        "{\"type\":\"customer\",\"id\":\"s2\",\"bogus\":1}]}", RP_BAD_REQUEST, "records[1]:");
    expect_err(fx, "customer.get", "{\"id\":\"s1\"}", RP_NOT_FOUND, NULL);
    /* strict: a record the store refuses rolls the whole batch back */
    expect_err(fx, "import", "{\"strict\":true,\"records\":["
        "{\"type\":\"customer\",\"id\":\"s1\"},"
        "{\"type\":\"event\",\"customer_id\":\"ghost\",\"ts\":1,\"channel\":\"web\",\"kind\":\"x\"}]}",
        RP_BAD_REQUEST, "records[1]: NOT_FOUND");
    expect_err(fx, "customer.get", "{\"id\":\"s1\"}", RP_NOT_FOUND, NULL);
    /* strict and valid: all in */
    s = ok_json(fx, "import", "{\"strict\":true,\"records\":[{\"type\":\"customer\",\"id\":\"s1\"}]}");
    assert_string_equal(s, "{\"imported\":1,\"skipped\":0,\"errors\":[],\"duplicates\":0}");
    free(s);
    s = ok_json(fx, "import", "{\"records\":[]}");
    assert_string_equal(s, "{\"imported\":0,\"skipped\":0,\"errors\":[],\"duplicates\":0}");
    free(s);
    /* a restored customer keeps its version */
    ok(fx, "import", "{\"records\":[{\"type\":\"customer\",\"id\":\"r1\",\"version\":7,\"updated_at\":1234}]}");
    s = ok_json(fx, "customer.get", "{\"id\":\"r1\"}");
    expect_contains(s, "\"version\":7,\"updated_at\":1234");
    free(s);
    expect_err(fx, "import", "{}", RP_BAD_REQUEST, "missing parameter 'records'");
    expect_err(fx, "import", "{\"records\":{}}", RP_BAD_REQUEST, "must be an array");
    expect_err(fx, "import", "{\"records\":[],\"strict\":1}", RP_BAD_REQUEST, "boolean");
}

/* Export every page (limit customers a page) as one msgpack array of the
 * records, packed back to back; returns the bytes and the record count. */
static char *export_all(fixture *fx, int limit, size_t *len, uint32_t *count, int *pages) {
    msgpack_sbuffer all;
    msgpack_sbuffer_init(&all);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &all, msgpack_sbuffer_write);
    char after[80] = "";
    *count = 0;
    *pages = 0;
    for (;;) {
        char *p = after[0] ? jfmt("{\"limit\":%d,\"after\":\"%s\"}", limit, after)
                           : jfmt("{\"limit\":%d}", limit);
        reply *r = call(fx, "export", p);
        free(p);
        if (r->rc != RP_OK) fail_msg("export: %s", r->msg);
        (*pages)++;
        msgpack_zone z;
        msgpack_zone_init(&z, 4096);
        msgpack_object o;
        size_t off = 0;
        assert_int_equal(msgpack_unpack(r->data, r->len, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *recs = rp_mp_get(&o, "records");
        const msgpack_object *next = rp_mp_get(&o, "next");
        assert_non_null(recs);
        assert_non_null(next);
        for (uint32_t i = 0; i < recs->via.array.size; i++) {
            msgpack_pack_object(&pk, recs->via.array.ptr[i]);
            (*count)++;
        }
        bool more = next->type == MSGPACK_OBJECT_STR;
        if (more) snprintf(after, sizeof after, "%.*s", (int)next->via.str.size, next->via.str.ptr);
        msgpack_zone_destroy(&z);
        reply_free(r);
        if (!more) break;
    }
    *len = all.size;
    return msgpack_sbuffer_release(&all);
}

static void test_export_import_roundtrip(void **state) {
    fixture *fx = *state;
    seed(fx);
    ok(fx, "customer.put", "{\"id\":\"c3\",\"customer\":{\"name\":\"Cy\",\"emails\":[\"cy@x.org\"]}}");
    ok(fx, "customer.patch", "{\"id\":\"c3\",\"patch\":{\"tier\":\"platinum\"}}");
    ok(fx, "event.append", "{\"event\":{\"customer_id\":\"c3\",\"ts\":2000000000,\"channel\":\"store\","
       "\"kind\":\"order\",\"issue_id\":\"O-9\"}}");
    ok(fx, "event.append", "{\"event\":{\"customer_id\":\"c3\",\"ts\":2000000000,\"channel\":\"store\","
       "\"kind\":\"payment\"}}");
    size_t len1, len2;
    uint32_t n1, n2;
    int pages;
    char *a = export_all(fx, 1, &len1, &n1, &pages);
    assert_int_equal(n1, 3 + 5 + 1 + 2); /* customers, events, issues */
    assert_int_equal(pages, 3);
    /* the first record of a customer carries its type first */
    char *page = ok_json(fx, "export", "{\"limit\":2}");
    expect_contains(page, "{\"records\":[{\"type\":\"customer\",\"id\":\"c1\"");
    expect_contains(page, "{\"type\":\"event\",\"customer_id\":\"c1\"");
    expect_contains(page, "{\"type\":\"issue\",\"customer_id\":\"c1\",\"issue_id\":\"I-1\"");
    expect_contains(page, "\"next\":\"c2\"");
    assert_true(strstr(page, "call 0") < strstr(page, "call 4")); /* oldest first */
    free(page);
    expect_err(fx, "export", "{\"limit\":0}", RP_BAD_REQUEST, "limit");
    expect_err(fx, "export", "{\"after\":\"bad id\"}", RP_BAD_REQUEST, NULL);

    /* import the export into a fresh store, export again: same bytes */
    fixture fx2;
    memset(&fx2, 0, sizeof fx2);
    fx_open(&fx2);
    msgpack_sbuffer params;
    msgpack_sbuffer_init(&params);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &params, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    rp_mp_pack_cstr(&pk, "strict");
    msgpack_pack_true(&pk);
    rp_mp_pack_cstr(&pk, "records");
    msgpack_pack_array(&pk, n1);
    msgpack_sbuffer_write(&params, a, len1);
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    msgpack_object o;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(params.data, params.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    reply *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    rp_api_call(fx2.api, rp_api_find("import", 6), RP_ROLE_INGEST, "imp", &o, on_reply, r);
    pthread_mutex_lock(&r->mu);
    while (r->calls == 0) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    char *res = res_json(r);
    char *want = jfmt("{\"imported\":%u,\"skipped\":0,\"errors\":[],\"duplicates\":0}", n1);
    assert_string_equal(res, want);
    free(want);
    free(res);
    reply_free(r);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&params);
    char *b = export_all(&fx2, 2, &len2, &n2, &pages);
    assert_int_equal(n2, n1);
    assert_int_equal(len2, len1);
    assert_memory_equal(a, b, len1);
    free(a);
    free(b);
    fx_close(&fx2);
}

/* Many writes in flight at once from several threads: each gets exactly
 * one reply (group commit batches them). */
typedef struct burst {
    fixture *fx;
    int id;
    int okc;
} burst;

static void *burst_main(void *arg) {
    burst *b = arg;
    for (int i = 0; i < 40; i++) {
        char *p = jfmt("{\"event\":{\"customer_id\":\"b1\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"k%d\"}}",
                       (long long)time(NULL) - 100 + i, b->id);
        reply *r = call_as(b->fx, "event.append", RP_ROLE_INGEST, "", p);
        if (r->rc == RP_OK) b->okc++;
        reply_free(r);
        free(p);
    }
    return NULL;
}

static void test_concurrent_writes(void **state) {
    fixture *fx = *state;
    ok(fx, "customer.put", "{\"id\":\"b1\",\"customer\":{}}");
    pthread_t th[4];
    burst b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (burst){fx, i, 0};
        pthread_create(&th[i], NULL, burst_main, &b[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(b[i].okc, 40);
    }
    char *s = ok_json(fx, "stats", NULL);
    expect_contains(s, "\"events\":160");
    free(s);
}

static void test_audit_log_unwritable(void **state) {
    (void)state;
    rp_config cfg;
    rp_config_defaults(&cfg);
    char dir[] = "/tmp/rp-test-api-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", dir);
    snprintf(cfg.audit_log, sizeof cfg.audit_log, "%s/no/such/dir/audit.log", dir);
    cfg.map_initial = 1u << 20;
    rp_store *s;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_open(&cfg, &s, &eb), RP_OK);
    rp_api *api = NULL;
    rp_err rc = rp_api_create(s, &api, &eb);
    assert_int_not_equal(rc, RP_OK);
    assert_null(api);
    expect_contains(eb.msg, "audit_log");
    rp_store_close(s);
    rm_tree(dir);
}

/* A full write queue answers UNAVAILABLE at once (nothing is written for
 * that call); every other call is acknowledged after its commit. */
typedef struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ok, unavailable, other, total;
} tally;

static void on_tally(void *arg, rp_err rc, const char *msg, const char *res, size_t len) {
    (void)res;
    (void)len;
    tally *t = arg;
    pthread_mutex_lock(&t->mu);
    if (rc == RP_OK) t->ok++;
    else if (rc == RP_UNAVAILABLE && msg && strstr(msg, "retry")) t->unavailable++;
    else t->other++;
    t->total++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void test_queue_full(void **state) {
    (void)state;
    fixture fx;
    memset(&fx, 0, sizeof fx);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/rp-test-api-XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    rp_config_defaults(&fx.cfg);
    snprintf(fx.cfg.data_dir, sizeof fx.cfg.data_dir, "%s/data", fx.dir);
    fx.cfg.map_initial = 8u << 20;
    fx.cfg.writer_queue_max = 1;
    fx.cfg.writer_batch_max = 1;
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_open(&fx.cfg, &fx.store, &eb), RP_OK);
    assert_int_equal(rp_api_create(fx.store, &fx.api, &eb), RP_OK);
    ok(&fx, "customer.put", "{\"id\":\"q1\",\"customer\":{}}");
    tally t = {.ok = 0};
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    const rp_api_op *op = rp_api_find("event.append", 12);
    enum { N = 300 };
    long long now = (long long)time(NULL);
    for (int i = 0; i < N; i++) {
        char *p = jfmt("{\"event\":{\"customer_id\":\"q1\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"k\"}}", now);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        rp_mpcheck_limits lim = rp_mpcheck_limits_from_config(&fx.cfg);
        assert_int_equal(rp_json_to_msgpack(p, strlen(p), &lim, &sb, &eb), RP_OK);
        msgpack_zone z;
        msgpack_zone_init(&z, 512);
        msgpack_object o;
        size_t off = 0;
        assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
        rp_api_call(fx.api, op, RP_ROLE_INGEST, "q", &o, on_tally, &t);
        msgpack_zone_destroy(&z);
        msgpack_sbuffer_destroy(&sb);
        free(p);
    }
    pthread_mutex_lock(&t.mu);
    while (t.total < N) pthread_cond_wait(&t.cv, &t.mu);
    pthread_mutex_unlock(&t.mu);
    assert_int_equal(t.other, 0);
    assert_int_equal(t.ok + t.unavailable, N);
    assert_true(t.unavailable > 0);
    assert_true(t.ok > 0);
    char *want = jfmt("\"events\":%d,", t.ok);
    char *s = ok_json(&fx, "stats", NULL);
    expect_contains(s, want);
    free(s);
    free(want);
    pthread_mutex_destroy(&t.mu);
    pthread_cond_destroy(&t.cv);
    fx_close(&fx);
}

/* Out of memory on a request's allocation: the hook in core/alloc.h makes
 * the Nth allocation from now fail. Every request still gets exactly one
 * reply (OK or UNAVAILABLE), a failed write leaves nothing behind, and the
 * api works normally once memory is back. */
static void test_out_of_memory(void **state) {
    fixture *fx = *state;
    free(ok_json(fx, "customer.put", "{\"id\":\"oom-base\",\"customer\":{\"name\":\"Base\"}}"));
    uint64_t failures_before = rp_alloc_failures();
    int refused = 0;
    for (int n = 1; n <= 6; n++) {
        char json[128], id[32];
        snprintf(id, sizeof id, "oom-%d", n);
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"customer\":{\"name\":\"N\"}}", id);
        rp_alloc_fail_at((uint64_t)n, 0);
        reply *r = call(fx, "customer.put", json);
        rp_alloc_fail_at(0, 0);
        assert_true(r->rc == RP_OK || r->rc == RP_UNAVAILABLE);
        if (n == 1) assert_int_equal(r->rc, RP_UNAVAILABLE); /* the request copy itself */
        bool written = r->rc == RP_OK;
        refused += !written;
        reply_free(r);
        snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
        reply *g = call(fx, "customer.get", json);
        assert_int_equal(g->rc, written ? RP_OK : RP_NOT_FOUND);
        reply_free(g);
    }
    /* every allocation failing: reads and writes answer, none crash */
    rp_alloc_fail_at(1, 1);
    reply *w = call(fx, "event.append",
                    "{\"event\":{\"customer_id\":\"oom-base\",\"ts\":1700000000,"
                    "\"channel\":\"phone\",\"kind\":\"contact\"}}");
    reply *c = call(fx, "context.get", "{\"id\":\"oom-base\"}");
    reply *h = call(fx, "history.list", "{\"id\":\"oom-base\"}");
    rp_alloc_fail_at(0, 0);
    assert_int_equal(w->rc, RP_UNAVAILABLE);
    assert_true(c->rc == RP_OK || c->rc == RP_UNAVAILABLE);
    assert_true(h->rc == RP_OK || h->rc == RP_UNAVAILABLE);
    reply_free(w), reply_free(c), reply_free(h);
    assert_true(refused >= 1);
    assert_true(rp_alloc_failures() > failures_before);
    /* memory is back: all is well */
    free(ok_json(fx, "customer.get", "{\"id\":\"oom-base\"}"));
    free(ok_json(fx, "context.get", "{\"id\":\"oom-base\"}"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test_setup_teardown(test_ping_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customer_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_and_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_and_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_and_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_import_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writes, setup, teardown),
        cmocka_unit_test(test_audit_log_unwritable),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
