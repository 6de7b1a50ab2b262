/* calls.h — JSON-in, msgpack-out RPC calls and result probes for the e2e
 * suites.
 *
 * Params are written as JSON text for readability and converted with the
 * server's own bridge (net/json.h); results are read with rp_mp_get. Every
 * helper fails the current cmocka test on a broken expectation. Include
 * after <cmocka.h>.
 */
#ifndef RP_TEST_CALLS_H
#define RP_TEST_CALLS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model/codec.h"
#include "net/client.h"
#include "net/json.h"

/* JSON text -> msgpack bytes in sb (fails the test on bad JSON; NULL: no
 * params, sb left empty). The caller destroys sb. */
static inline void json_params(const char *json, msgpack_sbuffer *sb) {
    rp_mpcheck_limits lim = rp_client_default_limits();
    rp_errbuf eb = {0};
    msgpack_sbuffer_init(sb);
    if (json == NULL) return;
    rp_err rc = rp_json_to_msgpack(json, strlen(json), &lim, sb, &eb);
    if (rc != RP_OK) fprintf(stderr, "bad test JSON: %s: %s\n", json, eb.msg);
    assert_int_equal(rc, RP_OK);
}

/* Call method with JSON params. Returns the reply's code; *res (may be
 * NULL) gets the result, valid until the next call on c. */
static inline rp_err jcall(rp_client *c, const char *method, const char *json, msgpack_object *res,
                           rp_errbuf *eb) {
    msgpack_sbuffer sb;
    json_params(json, &sb);
    msgpack_object dummy;
    rp_err rc = rp_client_call(c, method, sb.data, sb.size, res ? res : &dummy, eb);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Call and require success; returns the result (valid until the next call). */
static inline msgpack_object ok_call(rp_client *c, const char *method, const char *json) {
    msgpack_object res;
    rp_errbuf eb = {0};
    rp_err rc = jcall(c, method, json, &res, &eb);
    if (rc != RP_OK) fprintf(stderr, "%s %.120s -> %s: %s\n", method, json ? json : "", rp_err_code(rc), eb.msg);
    assert_int_equal(rc, RP_OK);
    return res;
}

/* Call and require the error code want, with a non-empty message, on a
 * connection that stays usable. Returns the message (a static buffer,
 * valid until the next err_call). */
static inline const char *err_call(rp_client *c, const char *method, const char *json, rp_err want) {
    static rp_errbuf eb;
    memset(&eb, 0, sizeof eb);
    rp_err rc = jcall(c, method, json, NULL, &eb);
    if (rc != want)
        fprintf(stderr, "%s %.120s -> %s (%s), wanted %s\n", method, json ? json : "", rp_err_code(rc), eb.msg,
                rp_err_code(want));
    assert_int_equal(rc, want);
    assert_true(eb.msg[0] != '\0');
    assert_false(rp_client_broken(c));
    return eb.msg;
}

/* Field of a result map, or NULL. */
static inline const msgpack_object *mp_get(const msgpack_object *m, const char *key) { return rp_mp_get(m, key); }

/* An unsigned integer (o must be one). */
static inline uint64_t mp_u64(const msgpack_object *o) {
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return o->via.u64;
}

static inline bool mp_is_str(const msgpack_object *o, const char *s) {
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static inline bool mp_is_true(const msgpack_object *o) {
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

#endif
