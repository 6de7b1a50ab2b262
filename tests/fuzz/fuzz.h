/* fuzz.h — what the fuzz targets share: invariant checks, limits, and the
 * record decoders with their round-trip checks.
 *
 * Every target in tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput
 * and is linked two ways (cmake/fuzz.cmake): with libFuzzer and the
 * sanitizers in the clang fuzz build (tools/fuzz), and with replay_main.c
 * in every build, so that ctest replays each seed and regression input.
 *
 * A crash is what the fuzzer reports, so an invariant that does not hold
 * must crash: FZ_CHECK prints the failed condition and aborts. It is
 * ordinary code, never an assert, because the normal build defines NDEBUG.
 *
 * Round trips. Whatever a decoder accepts is encoded again and the encoding
 * decoded again in the same mode: the second decode must succeed and encode
 * to the very same bytes (the encoders are deterministic, so a record that
 * changes on a second pass means a decoder or an encoder loses or invents a
 * field). For WIRE customers this also checks that phone and email
 * normalization are idempotent.
 *
 * Header-only (static inline), like tests/e2e/harness.h, so each target is
 * one translation unit plus replay_main.c.
 */
#ifndef RP_FUZZ_H
#define RP_FUZZ_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "model/codec.h"
#include "model/ident.h"
#include "model/record.h"
#include "model/mpcheck.h"

/* The libFuzzer entry point every target defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with the failed condition when cond is false (never compiled out). */
#define FZ_CHECK(cond, what)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s [%s]\n", __FILE__, __LINE__,     \
                    (what), #cond);                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The default country phones are normalized with: the server's default. */
#define FZ_COUNTRY "US"

/* Room for the strings one WIRE customer decode derives (every phone and
 * every email normalized), as the api sizes it. */
#define FZ_ARENA (RP_MAX_PHONES * (RP_PHONE_MAX + 1) + RP_MAX_EMAILS * (RP_EMAIL_MAX + 1))

/* The server's default settings (rp_config_defaults), built once. */
static inline const rp_config *fz_config(void) {
    static rp_config cfg;
    static bool done;
    if (!done) {
        rp_config_defaults(&cfg);
        done = true;
    }
    return &cfg;
}

/* The limits the RPC face checks a frame with (rpc.c: the config's, and a
 * zone cap of 8x max_request_bytes). */
static inline rp_mpcheck_limits fz_rpc_limits(void) {
    rp_mpcheck_limits lim = rp_mpcheck_limits_from_config(fz_config());
    lim.max_zone = (size_t)fz_config()->max_request_bytes * 8;
    return lim;
}

/* The limits the HTTP face and the CLI parse JSON with (the config's). */
static inline rp_mpcheck_limits fz_json_limits(void) {
    return rp_mpcheck_limits_from_config(fz_config());
}

/* Tight limits, at or near the smallest the config accepts: a second pass
 * with them reaches every TOO_LARGE path (depth, counts, string and total
 * sizes) with inputs short enough for the fuzzer to find. */
static inline rp_mpcheck_limits fz_tight_limits(void) {
    rp_mpcheck_limits lim = {
        .max_bytes = 1024, .max_depth = 4, .max_container = 16, .max_string = 256, .max_zone = 0,
    };
    return lim;
}

/* An error sentence must be NUL-terminated within its buffer and, as the
 * codec promises (it masks client bytes with printable()), printable ASCII
 * only: it travels back to clients inside JSON and msgpack strings. */
static inline void fz_check_msg(const rp_errbuf *eb) {
    size_t n = strnlen(eb->msg, sizeof eb->msg);
    FZ_CHECK(n < sizeof eb->msg, "error sentence not NUL-terminated");
    FZ_CHECK(n > 0, "an error without a sentence");
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)eb->msg[i];
        FZ_CHECK(b >= 0x20 && b < 0x7f, "error sentence holds a non-printable byte");
    }
}

/* Is FZ_VERBOSE=1 set? Then decode outcomes are printed (to see what a
 * seed reaches when replaying it). */
static inline bool fz_verbose(void) {
    static int v = -1;
    if (v < 0) v = getenv("FZ_VERBOSE") != NULL && getenv("FZ_VERBOSE")[0] == '1';
    return v == 1;
}

/* The record kinds the codec knows. */
typedef enum fz_kind { FZ_CUSTOMER = 0, FZ_EVENT, FZ_ISSUE, FZ__KINDS } fz_kind;

static inline const char *fz_kind_name(fz_kind k) {
    return k == FZ_CUSTOMER ? "customer" : k == FZ_EVENT ? "event" : "issue";
}

/* One decoded record of any kind, with its arena. */
typedef struct fz_rec {
    rp_customer c;
    rp_event e;
    rp_issue is;
    rp_arena arena;
    char arena_buf[FZ_ARENA];
} fz_rec;

/* Decode o as a record of kind k in mode into r (arena reset first). */
static inline rp_err fz_decode(fz_kind k, const msgpack_object *o, rp_dec_mode mode, fz_rec *r,
                               rp_errbuf *eb) {
    r->arena.base = r->arena_buf;
    r->arena.cap = sizeof r->arena_buf;
    r->arena.used = 0;
    switch (k) {
    case FZ_CUSTOMER:
        return rp_customer_decode(o, mode, mode == RP_DEC_WIRE ? FZ_COUNTRY : NULL,
                                  mode == RP_DEC_WIRE ? &r->arena : NULL, &r->c, eb);
    case FZ_EVENT: return rp_event_decode(o, mode, &r->e, eb);
    case FZ_ISSUE: return rp_issue_decode(o, mode, &r->is, eb);
    case FZ__KINDS: break;
    }
    abort();
}

/* Encode the record of kind k held in r into sb (cleared first). */
static inline void fz_encode(fz_kind k, const fz_rec *r, unsigned enc, msgpack_sbuffer *sb) {
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    switch (k) {
    case FZ_CUSTOMER: rp_customer_encode(&pk, &r->c, enc); return;
    case FZ_EVENT: rp_event_encode(&pk, &r->e, enc); return;
    case FZ_ISSUE: rp_issue_encode(&pk, &r->is, enc); return;
    case FZ__KINDS: break;
    }
    abort();
}

/* The codes a decode may answer in mode (codec.h). */
static inline bool fz_code_ok(rp_dec_mode mode, rp_err rc) {
    if (mode == RP_DEC_STORED) return rc == RP_INTERNAL;
    return rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE;
}

/* The invariants of a decoded record that later code relies on: counts
 * within their fixed arrays, slices within their limits, enums in range. */
static inline void fz_check_record(fz_kind k, const fz_rec *r) {
    if (k == FZ_CUSTOMER) {
        const rp_customer *c = &r->c;
        FZ_CHECK(c->id.n > 0 && c->id.n <= RP_ID_MAX, "customer id length");
        FZ_CHECK(c->nflags <= RP_MAX_FLAGS && c->nprefs <= RP_MAX_PREFS &&
                     c->nnotes <= RP_MAX_NOTES && c->nphones <= RP_MAX_PHONES &&
                     c->nemails <= RP_MAX_EMAILS && c->naccounts <= RP_MAX_ACCOUNTS,
                 "customer list counts");
        for (uint32_t i = 0; i < c->nphones; i++)
            FZ_CHECK(c->phones[i].n <= RP_PHONE_MAX, "phone length");
        for (uint32_t i = 0; i < c->nemails; i++)
            FZ_CHECK(c->emails[i].n <= RP_EMAIL_MAX, "email length");
        for (uint32_t i = 0; i < c->naccounts; i++)
            FZ_CHECK(c->accounts[i].n <= RP_ID_MAX, "account length");
    } else if (k == FZ_EVENT) {
        const rp_event *e = &r->e;
        FZ_CHECK(e->channel > RP_CH_NONE && e->channel < RP_CH__COUNT, "event channel");
        FZ_CHECK(e->outcome < RP_OUT__COUNT, "event outcome");
        FZ_CHECK(e->kind.n > 0 && e->kind.n <= RP_TOKEN_MAX, "event kind length");
        FZ_CHECK(e->summary.n <= RP_SUMMARY_MAX, "event summary length");
        FZ_CHECK(!e->has_sentiment || (e->sentiment >= -1.0 && e->sentiment <= 1.0),
                 "event sentiment range");
    } else {
        const rp_issue *is = &r->is;
        FZ_CHECK(is->status < RP_ST__COUNT && is->severity < RP_SEV__COUNT, "issue enums");
        FZ_CHECK(is->summary.n <= RP_SUMMARY_MAX, "issue summary length");
        FZ_CHECK(is->customer_id.n <= RP_ID_MAX && is->issue_id.n <= RP_ID_MAX, "issue id lengths");
    }
}

/* Decode o as kind k in mode; when it decodes, check the record, encode it
 * (wire form for WIRE, stored form for STORED), decode that again and check
 * the second encoding equals the first. Returns the first decode's code. */
static inline rp_err fz_roundtrip(fz_kind k, const msgpack_object *o, rp_dec_mode mode) {
    static fz_rec r1, r2; /* large: kept off the stack */
    rp_errbuf eb = {0};
    rp_err rc = fz_decode(k, o, mode, &r1, &eb);
    if (fz_verbose())
        fprintf(stderr, "  decode %s %s: %s %s\n", fz_kind_name(k), mode == RP_DEC_WIRE ? "wire" : "stored",
                rp_err_code(rc), rc == RP_OK ? "" : eb.msg);
    if (rc != RP_OK) {
        FZ_CHECK(fz_code_ok(mode, rc), "decoder answered a code codec.h does not list");
        fz_check_msg(&eb);
        return rc;
    }
    fz_check_record(k, &r1);
    unsigned enc = mode == RP_DEC_WIRE ? RP_ENC_WIRE : RP_ENC_STORED;
    msgpack_sbuffer s1, s2;
    msgpack_sbuffer_init(&s1);
    msgpack_sbuffer_init(&s2);
    fz_encode(k, &r1, enc, &s1);
    msgpack_zone z;
    FZ_CHECK(msgpack_zone_init(&z, 1024), "out of memory");
    msgpack_object o2;
    size_t off = 0;
    FZ_CHECK(msgpack_unpack(s1.data, s1.size, &off, &z, &o2) == MSGPACK_UNPACK_SUCCESS &&
                 off == s1.size,
             "the encoder wrote something that is not one msgpack object");
    rp_errbuf eb2 = {0};
    rp_err rc2 = fz_decode(k, &o2, mode, &r2, &eb2);
    if (rc2 != RP_OK) fprintf(stderr, "second decode: %s: %s\n", rp_err_code(rc2), eb2.msg);
    FZ_CHECK(rc2 == RP_OK, "a decoded record, encoded again, does not decode");
    fz_encode(k, &r2, enc, &s2);
    FZ_CHECK(s1.size == s2.size && memcmp(s1.data, s2.data, s1.size) == 0,
             "decode -> encode is not stable on a second pass");
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&s1);
    msgpack_sbuffer_destroy(&s2);
    return RP_OK;
}

/* The stored customer a patch applies to: the golden customer of
 * proto/vectors/customer.json (preferences, identities, notes), so that a
 * patch can replace, clear and delete what is there. */
static inline void fz_base_customer(rp_customer *c) {
    memset(c, 0, sizeof *c);
    c->id = RP_STR_LIT("cust-0001");
    c->name = RP_STR_LIT("Mar\xc3\xad" "a Jos\xc3\xa9 N\xc3\xba\xc3\xb1" "ez");
    c->preferred_name = RP_STR_LIT("Majo");
    c->language = RP_STR_LIT("es-MX");
    c->timezone = RP_STR_LIT("America/Mexico_City");
    c->tier = RP_STR_LIT("gold");
    c->customer_since = 1262304000;
    c->flags[c->nflags++] = RP_STR_LIT("vip");
    c->flags[c->nflags++] = RP_STR_LIT("hearing_impaired");
    c->prefs[c->nprefs++] = (rp_pref){RP_STR_LIT("channel"), RP_STR_LIT("phone")};
    c->prefs[c->nprefs++] = (rp_pref){RP_STR_LIT("contact_window"), RP_STR_LIT("09:00-12:00")};
    c->notes[c->nnotes++] = RP_STR_LIT("follows the local football club");
    c->phones[c->nphones++] = RP_STR_LIT("+442079460958");
    c->phones[c->nphones++] = RP_STR_LIT("+14155551212");
    c->emails[c->nemails++] = RP_STR_LIT("majo@example.com");
    c->accounts[c->naccounts++] = RP_STR_LIT("ACME-778812");
    c->version = 3;
    c->updated_at = 1717000000;
}

/* customer.patch (and HTTP PATCH): apply patch to the base customer. A
 * refused patch leaves the customer and the arena as they were (codec.h);
 * an applied one keeps the id and must round-trip as a wire customer. */
static inline void fz_patch(const msgpack_object *patch) {
    static rp_customer c, before;
    static char abuf[FZ_ARENA];
    rp_arena arena = {abuf, sizeof abuf, 0};
    fz_base_customer(&c);
    before = c;
    rp_errbuf eb = {0};
    rp_err rc = rp_customer_patch(&c, patch, FZ_COUNTRY, &arena, &eb);
    if (rc != RP_OK) {
        FZ_CHECK(rc == RP_BAD_REQUEST || rc == RP_TOO_LARGE, "patch errors are BAD_REQUEST or TOO_LARGE");
        fz_check_msg(&eb);
        FZ_CHECK(arena.used == 0, "a refused patch left strings in the arena");
        FZ_CHECK(memcmp(&c, &before, sizeof c) == 0, "a refused patch changed the customer");
        return;
    }
    FZ_CHECK(rp_str_eqc(c.id, "cust-0001"), "a patch changed the id");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rp_customer_encode(&pk, &c, RP_ENC_WIRE);
    msgpack_zone z;
    FZ_CHECK(msgpack_zone_init(&z, 1024), "out of memory");
    msgpack_object o;
    size_t off = 0;
    FZ_CHECK(msgpack_unpack(sb.data, sb.size, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS,
             "a patched customer does not encode to msgpack");
    FZ_CHECK(fz_roundtrip(FZ_CUSTOMER, &o, RP_DEC_WIRE) == RP_OK,
             "a patched customer is not a valid wire customer");
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

/* Every decoder on o in mode (the fuzzer does not know what o is meant to
 * be). Returns how many accepted it. */
static inline int fz_roundtrip_all(const msgpack_object *o, rp_dec_mode mode) {
    int ok = 0;
    for (int k = 0; k < FZ__KINDS; k++) ok += fz_roundtrip((fz_kind)k, o, mode) == RP_OK;
    return ok;
}

/* o with key = val added when o is a map without key (the HTTP face fills
 * ids from the path, customer.put fills the customer's id from the
 * request); the new entry array comes from zone z. Returns o itself when
 * nothing is added, else out. */
static inline const msgpack_object *fz_with_str(const msgpack_object *o, const char *key,
                                                const msgpack_object *val, msgpack_zone *z,
                                                msgpack_object *out) {
    if (o->type != MSGPACK_OBJECT_MAP || rp_mp_get(o, key) != NULL) return o;
    uint32_t n = o->via.map.size;
    msgpack_object_kv *kv = msgpack_zone_malloc(z, ((size_t)n + 1) * sizeof *kv);
    FZ_CHECK(kv != NULL, "out of memory");
    if (n) memcpy(kv, o->via.map.ptr, (size_t)n * sizeof *kv);
    kv[n].key.type = MSGPACK_OBJECT_STR;
    kv[n].key.via.str.ptr = key;
    kv[n].key.via.str.size = (uint32_t)strlen(key);
    kv[n].val = *val;
    *out = *o;
    out->via.map.ptr = kv;
    out->via.map.size = n + 1;
    return out;
}

/* A msgpack str object over a C string (which must outlive it). */
static inline msgpack_object fz_str_obj(const char *s) {
    msgpack_object o;
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

/* The NDJSON / import "type" dispatch (api/ops_bulk.c record_type): the
 * kind named by o's "type" field. Returns false when o has no valid type. */
static inline bool fz_typed_kind(const msgpack_object *o, fz_kind *k) {
    rp_str t;
    if (o->type != MSGPACK_OBJECT_MAP || rp_mp_str(o, "type", &t, NULL) != RP_OK) return false;
    if (rp_str_eqc(t, "customer")) *k = FZ_CUSTOMER;
    else if (rp_str_eqc(t, "event")) *k = FZ_EVENT;
    else if (rp_str_eqc(t, "issue")) *k = FZ_ISSUE;
    else return false;
    return true;
}

#endif
