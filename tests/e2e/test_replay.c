/* test_replay.c — end-to-end: retries and replays do not duplicate history.
 *
 * Against the real rapportd over loopback sockets: an event with an
 * event_id POSTed twice over HTTP (curl) and appended again over
 * MessagePack-RPC is stored once and answers the stored event with
 * "duplicate": true; `rapport export` then `rapport import` of that file
 * into the same server changes no count and no cue text (the card's
 * "Nth contact" stays N); and an import into an empty data directory
 * exports the same bytes. Before event_id and the exported seq, the
 * re-import doubled every timeline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e/calls.h"
#include "e2e/harness.h"
#include "e2e/run.h"

/* The reply of a curl command (printf-style), parsed as JSON. */
static json_t *curl_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *curl_json(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st;
    char *out = rp_sh(&st, "%s", cmd);
    assert_int_equal(st, 0);
    json_t *j = rp_json_parse(out);
    free(out);
    return j;
}

/* POST an event over HTTP with curl; returns the parsed reply. */
static json_t *http_post_event(const rp_h *h, const char *cid, const char *body) {
    return curl_json("curl -sS -X POST -H 'Content-Type: application/json' --data '%s' "
                     "http://127.0.0.1:%d/v1/customers/%s/events",
                     body, h->http_port, cid);
}

/* The number of events of cid (history.list, one page). */
static size_t history_count(rp_client *c, const char *cid) {
    char p[128];
    snprintf(p, sizeof p, "{\"id\":\"%s\",\"limit\":100}", cid);
    msgpack_object r = ok_call(c, "history.list", p);
    const msgpack_object *evs = mp_get(&r, "events");
    assert_non_null(evs);
    assert_int_equal(evs->type, MSGPACK_OBJECT_ARRAY);
    return evs->via.array.size;
}

/* The text of cid's repeat_contact cue at `at` (malloc'd; NULL: none). */
static char *repeat_cue(const rp_h *h, const char *cid, long long at) {
    json_t *j = curl_json("curl -sS 'http://127.0.0.1:%d/v1/context?id=%s&at=%lld'", h->http_port, cid, at);
    char *text = NULL;
    json_t *cues = json_object_get(j, "cues"), *cue;
    size_t i;
    json_array_foreach(cues, i, cue) {
        if (strcmp(json_string_value(json_object_get(cue, "code")), "repeat_contact") == 0)
            text = strdup(json_string_value(json_object_get(cue, "text")));
    }
    json_decref(j);
    return text;
}

static void test_retries_and_replays(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, NULL), 0);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    long long now = (long long)time(NULL), t1 = now - 3 * 86400, t2 = now - 2 * 86400, t3 = now - 86400;
    char p[512];
    ok_call(c, "customer.put", "{\"id\":\"rp-1\",\"customer\":{\"name\":\"Ana\"}}");
    /* two earlier contacts about delivery, one with a CRM id, one without */
    snprintf(p, sizeof p,
             "{\"event\":{\"customer_id\":\"rp-1\",\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\","
             "\"topic\":\"delivery\",\"outcome\":\"unresolved\",\"event_id\":\"CRM-1\"}}", t1);
    msgpack_object r = ok_call(c, "event.append", p);
    assert_false(mp_is_true(mp_get(&r, "duplicate")));
    snprintf(p, sizeof p,
             "{\"event\":{\"customer_id\":\"rp-1\",\"ts\":%lld,\"channel\":\"chat\",\"kind\":\"contact\","
             "\"topic\":\"delivery\",\"outcome\":\"unresolved\"}}", t2);
    ok_call(c, "event.append", p);

    /* the CRM posts its third activity, times out, and posts it again */
    char body[256];
    snprintf(body, sizeof body,
             "{\"ts\":%lld,\"channel\":\"email\",\"kind\":\"contact\",\"topic\":\"delivery\","
             "\"outcome\":\"unresolved\",\"event_id\":\"CRM-3\"}", t3);
    json_t *first = http_post_event(h, "rp-1", body);
    assert_true(json_is_false(json_object_get(first, "duplicate")));
    long long seq = json_integer_value(json_object_get(first, "seq"));
    const char *cur = json_string_value(json_object_get(first, "cursor"));
    assert_non_null(cur);
    assert_int_equal(history_count(c, "rp-1"), 3);
    char *cue = repeat_cue(h, "rp-1", now);
    assert_non_null(cue);
    assert_non_null(strstr(cue, "4th contact about delivery"));
    json_t *again = http_post_event(h, "rp-1", body);
    assert_true(json_is_true(json_object_get(again, "duplicate")));
    assert_int_equal(json_integer_value(json_object_get(again, "ts")), t3);
    assert_int_equal(json_integer_value(json_object_get(again, "seq")), seq);
    assert_string_equal(json_string_value(json_object_get(again, "cursor")), cur);
    json_decref(again);
    /* and over RPC, the same activity (even with another ts) */
    snprintf(p, sizeof p,
             "{\"event\":{\"customer_id\":\"rp-1\",\"ts\":%lld,\"channel\":\"email\",\"kind\":\"contact\","
             "\"topic\":\"delivery\",\"event_id\":\"CRM-3\"}}", now);
    r = ok_call(c, "event.append", p);
    assert_true(mp_is_true(mp_get(&r, "duplicate")));
    assert_int_equal(r.via.map.size, 5);
    assert_int_equal(mp_get(&r, "ts")->via.i64, t3);
    json_decref(first);
    /* seq is the store's: event.append refuses it */
    snprintf(p, sizeof p,
             "{\"event\":{\"customer_id\":\"rp-1\",\"ts\":%lld,\"channel\":\"email\",\"kind\":\"contact\","
             "\"seq\":0}}", now);
    assert_non_null(strstr(err_call(c, "event.append", p, RP_BAD_REQUEST), "seq"));
    assert_int_equal(history_count(c, "rp-1"), 3);
    char *cue2 = repeat_cue(h, "rp-1", now);
    assert_string_equal(cue2, cue);
    free(cue2);

    /* export, then import the file into the same server: nothing changes */
    char f1[400], f2[400], empty[400];
    snprintf(f1, sizeof f1, "%s/e1.ndjson", h->dir);
    snprintf(f2, sizeof f2, "%s/e2.ndjson", h->dir);
    snprintf(empty, sizeof empty, "%s/empty-data", h->dir);
    int st;
    char *out = rp_sh(&st, "%s/rapport --server %s export %s 2>&1", RP_BINARY_DIR, h->addr, f1);
    assert_int_equal(st, 0);
    free(out);
    out = rp_sh(&st, "%s/rapport --server %s import %s 2>&1", RP_BINARY_DIR, h->addr, f1);
    if (st != 0) fprintf(stderr, "%s\n", out);
    assert_int_equal(st, 0);
    free(out);
    assert_int_equal(history_count(c, "rp-1"), 3);
    cue2 = repeat_cue(h, "rp-1", now);
    assert_string_equal(cue2, cue);
    free(cue2);
    /* twice, for good measure, and the export is the same */
    out = rp_sh(&st, "%s/rapport --server %s import %s 2>&1", RP_BINARY_DIR, h->addr, f1);
    assert_int_equal(st, 0);
    free(out);
    out = rp_sh(&st, "%s/rapport --server %s export %s 2>&1", RP_BINARY_DIR, h->addr, f2);
    assert_int_equal(st, 0);
    free(out);
    size_t n1, n2;
    char *b1 = rp_slurp(f1, &n1), *b2 = rp_slurp(f2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    assert_non_null(strstr(b1, "\"event_id\":\"CRM-3\""));
    assert_non_null(strstr(b1, "\"seq\":0"));
    free(b2);

    /* import into an empty data directory, export: the same bytes */
    out = rp_sh(&st, "%s/rapport --data %s import %s 2>&1", RP_BINARY_DIR, empty, f1);
    if (st != 0) fprintf(stderr, "%s\n", out);
    assert_int_equal(st, 0);
    free(out);
    out = rp_sh(&st, "%s/rapport --data %s export 2>/dev/null", RP_BINARY_DIR, empty);
    assert_int_equal(st, 0);
    assert_int_equal(strlen(out), n1);
    assert_memory_equal(out, b1, n1);
    free(out);
    free(b1);
    free(cue);
    rp_client_close(c);
    assert_int_equal(rp_h_stop(h), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retries_and_replays, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
