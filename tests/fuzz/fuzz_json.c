/* fuzz_json.c — HTTP JSON bodies: JSON -> MessagePack -> records -> JSON.
 *
 * Input: a request body as the HTTP face receives it. The target does what
 * http.c does with a body, then checks json.h's promises:
 *   1. rp_json_to_msgpack with the server's default limits; on an error
 *      the output buffer must be as it was (empty here), the code one of
 *      BAD_REQUEST / TOO_LARGE / UNAVAILABLE, with a sentence;
 *   2. its output passes rp_mpcheck_unpack with the same limits ("whatever
 *      it produces passes rp_mpcheck"), as exactly one object;
 *   3. the codec decoders in WIRE mode on that object (the body of PUT
 *      /v1/customers/ID, POST .../events, PUT .../issues/ID, with the ids
 *      the path gives added when the body lacks them), with fuzz.h's round
 *      trip, and rp_customer_patch as PATCH does;
 *   4. rp_msgpack_to_json of the object must succeed (anything step 1
 *      accepted has a JSON form), compact and pretty;
 *   5. that JSON parses back (step 1 again) to the very same MessagePack
 *      bytes, and writes out to the very same JSON text: JSON -> msgpack ->
 *      JSON is canonical (json.h: "reproduces compact, canonical input byte
 *      for byte").
 * Step 1 also runs with tight limits (fuzz.h), whose output must pass
 * rp_mpcheck with them: that reaches every TOO_LARGE path with short input.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "net/buf.h"
#include "net/json.h"

/* Write o as JSON into b (reset first); must succeed. */
static void fz_to_json(const msgpack_object *o, unsigned flags, rp_buf *b) {
    rp_errbuf eb = {0};
    rp_buf_reset(b);
    rp_err rc = rp_msgpack_to_json(o, flags, b, &eb);
    if (rc != RP_OK) fprintf(stderr, "rp_msgpack_to_json: %s: %s\n", rp_err_code(rc), eb.msg);
    FZ_CHECK(rc == RP_OK, "msgpack from rp_json_to_msgpack has no JSON form");
    FZ_CHECK(b->len == 0 || strlen(b->p) == b->len, "JSON text holds a NUL byte");
    FZ_CHECK(b->len == 0 || rp_utf8_valid(b->p, b->len), "JSON text is not UTF-8");
}

/* The conversion alone under tight limits: an error leaves out as it was;
 * success passes rp_mpcheck with the same limits, as one object. */
static void fz_tight(const char *text, size_t size) {
    rp_mpcheck_limits tight = fz_tight_limits();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_errbuf eb = {0};
    rp_err rc = rp_json_to_msgpack(text, size, &tight, &sb, &eb);
    if (rc == RP_OK) {
        size_t len = 0;
        rp_mpcheck_result r = rp_mpcheck(sb.data, sb.size, &tight, &len, NULL, 0);
        FZ_CHECK(r == RP_MPC_OK && len == sb.size, "tight: output does not pass rp_mpcheck");
    } else {
        FZ_CHECK(rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE || rc == RP_UNAVAILABLE,
                 "tight: a code json.h does not list");
        FZ_CHECK(sb.size == 0, "tight: a failed conversion left bytes in the output");
    }
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rp_mpcheck_limits lim;
    static bool init;
    if (!init) {
        lim = fz_json_limits();
        init = true;
    }
    const char *text = (const char *)data;
    fz_tight(text, size);
    msgpack_sbuffer mp1, mp2;
    msgpack_sbuffer_init(&mp1);
    msgpack_sbuffer_init(&mp2);
    rp_buf j1, j2;
    rp_buf_init(&j1, 0);
    rp_buf_init(&j2, 0);
    msgpack_zone z;
    FZ_CHECK(msgpack_zone_init(&z, 4096), "out of memory");

    rp_errbuf eb = {0};
    rp_err rc = rp_json_to_msgpack(text, size, &lim, &mp1, &eb);
    if (rc != RP_OK) {
        FZ_CHECK(rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE || rc == RP_UNAVAILABLE,
                 "rp_json_to_msgpack answered a code json.h does not list");
        FZ_CHECK(mp1.size == 0, "a failed conversion left bytes in the output");
        FZ_CHECK(strnlen(eb.msg, sizeof eb.msg) < sizeof eb.msg && eb.msg[0] != '\0',
                 "an error without a sentence");
        goto done;
    }
    msgpack_object o;
    size_t len = 0;
    char why[160] = "";
    rp_mpcheck_result r = rp_mpcheck_unpack(mp1.data, mp1.size, &lim, &z, &o, &len, why, sizeof why);
    if (r != RP_MPC_OK) fprintf(stderr, "rp_mpcheck_unpack: %s: %s\n", rp_mpcheck_result_name(r), why);
    FZ_CHECK(r == RP_MPC_OK, "rp_json_to_msgpack output does not pass rp_mpcheck");
    FZ_CHECK(len == mp1.size, "rp_json_to_msgpack output is not exactly one object");

    if (o.type == MSGPACK_OBJECT_MAP) {
        /* As the body of PUT /v1/customers/c-1001, POST .../c-1001/events
         * and PUT .../c-1001/issues/INC-9: ids the body lacks come from the
         * path (http.c pb_record), so the decoders get past "missing id". */
        msgpack_object cid = fz_str_obj("c-1001"), iid = fz_str_obj("INC-9"), t1, t2;
        fz_roundtrip(FZ_CUSTOMER, fz_with_str(&o, "id", &cid, &z, &t1), RP_DEC_WIRE);
        fz_roundtrip(FZ_EVENT, fz_with_str(&o, "customer_id", &cid, &z, &t1), RP_DEC_WIRE);
        const msgpack_object *is = fz_with_str(&o, "customer_id", &cid, &z, &t1);
        fz_roundtrip(FZ_ISSUE, fz_with_str(is, "issue_id", &iid, &z, &t2), RP_DEC_WIRE);
        fz_patch(&o);
    }

    fz_to_json(&o, RP_JSON_PRETTY, &j1);
    fz_to_json(&o, 0, &j1);
    rc = rp_json_to_msgpack(j1.p, j1.len, &lim, &mp2, &eb);
    if (rc != RP_OK) fprintf(stderr, "reparsing %s: %s: %s\n", j1.p, rp_err_code(rc), eb.msg);
    FZ_CHECK(rc == RP_OK, "JSON written by rp_msgpack_to_json does not parse back");
    FZ_CHECK(mp2.size == mp1.size && memcmp(mp1.data, mp2.data, mp1.size) == 0,
             "JSON -> msgpack -> JSON -> msgpack changed the msgpack");
    msgpack_zone_clear(&z);
    FZ_CHECK(rp_mpcheck_unpack(mp2.data, mp2.size, &lim, &z, &o, NULL, NULL, 0) == RP_MPC_OK,
             "second msgpack does not pass rp_mpcheck");
    fz_to_json(&o, 0, &j2);
    FZ_CHECK(j1.len == j2.len && memcmp(j1.p, j2.p, j1.len) == 0, "canonical JSON is not stable");
done:
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&mp1);
    msgpack_sbuffer_destroy(&mp2);
    rp_buf_free(&j1);
    rp_buf_free(&j2);
    return 0;
}
