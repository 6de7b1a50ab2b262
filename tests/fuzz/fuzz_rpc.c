/* fuzz_rpc.c — MessagePack-RPC frames: validator, unpacker, envelope, params.
 *
 * Input: the bytes a client sends on one connection (one or more pipelined
 * frames). The target does what rpc.c does with them, frame after frame,
 * without a socket: rp_mpcheck_unpack with the RPC face's limits (the
 * config's, and a zone cap of 8 x max_request_bytes); then the envelope
 * check of rpc.c's parse_envelope / parse_params (static there, so the
 * calling sequence is replicated here: [0, msgid, method, params] or
 * [2, method, params], params a map, [map], [], [nil] or nil); then
 * rp_api_find for the method; then the codec decoders in WIRE mode on what
 * the write methods hand them (customer.put's "customer", customer.patch's
 * "patch" through rp_customer_patch on a realistic customer, event.append's "event", issue.put's
 * "issue", import's "records" after the "type" dispatch), and every
 * decoder on the params map itself, each with fuzz.h's round trip.
 *
 * Validator invariants checked on the way (mpcheck.h's contract, which
 * rpc.c's streaming reader relies on):
 *   - OK: 0 < obj_len <= bytes given, depth <= the limit, and walking the
 *     same bytes again gives the same answer;
 *   - INCOMPLETE: the lower bound obj_len is more than the bytes given;
 *   - a prefix of an object that is OK (every byte but its last) is
 *     INCOMPLETE: a frame split across reads is never refused early;
 *   - an error has a NUL-terminated reason.
 * Stops at the first frame that is not OK, as the connection does. A frame
 * that is OK must also have a JSON form (rp_msgpack_to_json and
 * rp_msgpack_bytes_to_json agree, valid UTF-8; checked on the first two
 * frames only, which is enough and keeps long pipelines fast). The first frame is also
 * walked with tight limits (fuzz.h) so that every TOO_LARGE path is
 * reachable with short inputs.
 */
#include <stdint.h>
#include <string.h>

#include "api/api.h"
#include "fuzz.h"
#include "net/buf.h"
#include "net/json.h"

/* rpc.c: the longest method name accepted. */
#define FZ_METHOD_MAX 64

/* The envelope of one request, as rpc.c reads it. */
typedef struct fz_req {
    bool notify;
    uint32_t msgid;
    const char *method;
    size_t mlen;
    msgpack_object params; /* NIL when empty */
} fz_req;

/* rpc.c parse_params: a map, [map], [] / [nil] / nil (empty). */
static bool fz_params(const msgpack_object *p, msgpack_object *out) {
    out->type = MSGPACK_OBJECT_NIL;
    if (p->type == MSGPACK_OBJECT_NIL) return true;
    if (p->type == MSGPACK_OBJECT_MAP) {
        *out = *p;
        return true;
    }
    if (p->type == MSGPACK_OBJECT_ARRAY) {
        if (p->via.array.size == 0) return true;
        const msgpack_object *e = &p->via.array.ptr[0];
        if (p->via.array.size == 1 && (e->type == MSGPACK_OBJECT_MAP || e->type == MSGPACK_OBJECT_NIL)) {
            *out = *e;
            return true;
        }
    }
    return false;
}

/* rpc.c parse_envelope: [0, msgid, method, params] or [2, method, params]. */
static bool fz_envelope(const msgpack_object *o, fz_req *q) {
    memset(q, 0, sizeof *q);
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3 || o->via.array.size > 4) return false;
    const msgpack_object *a = o->via.array.ptr, *m, *p;
    uint32_t n = o->via.array.size;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || (a[0].via.u64 != 0 && a[0].via.u64 != 2))
        return false;
    if (a[0].via.u64 == 0) {
        if (n != 4 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX)
            return false;
        q->msgid = (uint32_t)a[1].via.u64;
        m = &a[2];
        p = &a[3];
    } else {
        if (n != 3) return false;
        q->notify = true;
        m = &a[1];
        p = &a[2];
    }
    if (m->type != MSGPACK_OBJECT_STR || m->via.str.size == 0 || m->via.str.size > FZ_METHOD_MAX)
        return false;
    q->method = m->via.str.ptr;
    q->mlen = m->via.str.size;
    return fz_params(p, &q->params);
}

/* What the write methods decode from their params. */
static void fz_method_params(const fz_req *q, const msgpack_object *params, msgpack_zone *z) {
    const msgpack_object *v;
    msgpack_object tmp;
#define FZ_IS(name) (q->mlen == sizeof(name) - 1 && memcmp(q->method, name, q->mlen) == 0)
    if (FZ_IS("customer.put") && (v = rp_mp_get(params, "customer")) != NULL) {
        /* ops_write.c customer_with_id: the request's id when the customer has none */
        const msgpack_object *id = rp_mp_get(params, "id");
        if (id != NULL && id->type == MSGPACK_OBJECT_STR) v = fz_with_str(v, "id", id, z, &tmp);
        fz_roundtrip(FZ_CUSTOMER, v, RP_DEC_WIRE);
    } else if (FZ_IS("customer.patch") && (v = rp_mp_get(params, "patch")) != NULL) {
        fz_patch(v);
    } else if (FZ_IS("event.append") && (v = rp_mp_get(params, "event")) != NULL) {
        fz_roundtrip(FZ_EVENT, v, RP_DEC_WIRE);
    } else if (FZ_IS("issue.put") && (v = rp_mp_get(params, "issue")) != NULL) {
        fz_roundtrip(FZ_ISSUE, v, RP_DEC_WIRE);
    } else if (FZ_IS("import") && (v = rp_mp_get(params, "records")) != NULL &&
               v->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            fz_kind k;
            if (fz_typed_kind(&v->via.array.ptr[i], &k)) fz_roundtrip(k, &v->via.array.ptr[i], RP_DEC_WIRE);
        }
    }
#undef FZ_IS
}

/* Check the validator's answer r for buf[0..len) (see the top). */
static void fz_check_walk(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                          rp_mpcheck_result r, size_t obj_len) {
    char why[160] = "";
    rp_mpcheck_info info;
    rp_mpcheck_result r2 = rp_mpcheck_ex(buf, len, lim, &info, why, sizeof why);
    FZ_CHECK(r2 == r, "rp_mpcheck_ex and rp_mpcheck_unpack disagree");
    if (r2 != RP_MPC_OK) {
        FZ_CHECK(memchr(why, '\0', sizeof why) != NULL && why[0] != '\0', "no reason given");
    }
    if (r == RP_MPC_OK) {
        FZ_CHECK(info.obj_len == obj_len && obj_len > 0 && obj_len <= len, "OK object length");
        FZ_CHECK(info.depth <= lim->max_depth, "depth over the limit");
        FZ_CHECK(lim->max_zone == 0 || info.zone_bytes <= lim->max_zone, "zone over the limit");
        rp_mpcheck_result rp = rp_mpcheck(buf, obj_len - 1, lim, NULL, NULL, 0);
        FZ_CHECK(rp == RP_MPC_INCOMPLETE, "a prefix of a valid object is not INCOMPLETE");
    } else if (r == RP_MPC_INCOMPLETE) {
        FZ_CHECK(info.obj_len > len, "INCOMPLETE without a lower bound past the bytes given");
    }
}

/* A frame that passed the validator has a JSON form (the CLI prints
 * replies so, the HTTP face writes results so): rp_msgpack_to_json and
 * rp_msgpack_bytes_to_json succeed, agree, and write valid UTF-8. */
static void fz_frame_json(const char *frame, size_t len, const msgpack_object *o,
                          const rp_mpcheck_limits *lim) {
    rp_buf a, b;
    rp_buf_init(&a, 0);
    rp_buf_init(&b, 0);
    rp_errbuf eb = {0};
    rp_err rc = rp_msgpack_to_json(o, 0, &a, &eb);
    if (rc != RP_OK) fprintf(stderr, "rp_msgpack_to_json: %s: %s\n", rp_err_code(rc), eb.msg);
    FZ_CHECK(rc == RP_OK, "a validated object has no JSON form");
    size_t n = 0;
    FZ_CHECK(rp_msgpack_bytes_to_json(frame, len, lim, 0, &b, &n, &eb) == RP_OK && n == len,
             "rp_msgpack_bytes_to_json refused a validated frame");
    FZ_CHECK(a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0),
             "the two msgpack -> JSON functions disagree");
    FZ_CHECK(a.len > 0 && rp_utf8_valid(a.p, a.len) && strlen(a.p) == a.len,
             "JSON text is not UTF-8 without NUL bytes");
    rp_buf_free(&a);
    rp_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rp_mpcheck_limits lim, tight;
    static bool init;
    if (!init) {
        lim = fz_rpc_limits();
        tight = fz_tight_limits();
        tight.max_zone = tight.max_bytes * 4;
        init = true;
    }
    const char *buf = (const char *)data;
    msgpack_zone z;
    FZ_CHECK(msgpack_zone_init(&z, 8192), "out of memory");
    /* The validator alone with tight limits (an operator may set them so). */
    {
        size_t len = 0;
        rp_mpcheck_result r = rp_mpcheck_unpack(buf, size, &tight, &z, &(msgpack_object){0}, &len, NULL, 0);
        fz_check_walk(buf, size, &tight, r, len);
        msgpack_zone_clear(&z);
    }
    size_t off = 0;
    unsigned nframes = 0;
    while (off < size) {
        msgpack_object o;
        size_t len = 0;
        rp_mpcheck_result r = rp_mpcheck_unpack(buf + off, size - off, &lim, &z, &o, &len, NULL, 0);
        fz_check_walk(buf + off, size - off, &lim, r, len);
        if (r != RP_MPC_OK) break;
        if (nframes++ < 2) fz_frame_json(buf + off, len, &o, &lim); /* enough: frames are alike */
        fz_req q;
        if (fz_envelope(&o, &q)) {
            const rp_api_op *op = rp_api_find(q.method, q.mlen);
            if (op != NULL) {
                FZ_CHECK(strlen(op->name) == q.mlen && memcmp(op->name, q.method, q.mlen) == 0,
                         "rp_api_find returned another operation");
            }
            if (q.params.type == MSGPACK_OBJECT_MAP) {
                fz_method_params(&q, &q.params, &z);
                fz_roundtrip_all(&q.params, RP_DEC_WIRE);
            }
        }
        msgpack_zone_clear(&z);
        off += len;
    }
    msgpack_zone_destroy(&z);
    return 0;
}
