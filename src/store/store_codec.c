/* store_codec.c — the store's glue to the model codecs: unpacking a stored
 * value safely, decoding stored records, and mapping LMDB errors.
 *
 * The bottom of the store: it calls nothing in the other store files.
 * Stored values are our own bytes, but a corrupted one must never reach
 * msgpack-c unchecked (rp_si_unpack walks it first).
 */
#include <time.h>

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/codec.h"
#include "store/keys.h"
#include "store/store_int.h"
#include "model/mpcheck.h"

void rp_si_blob_free(rp_si_blob *b) {
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

rp_err rp_si_mdb(rp_errbuf *eb, int rc, const char *what) {
    rp_err e = rp_err_from_mdb(rc);
    if (e == RP_OK) e = RP_INTERNAL; /* a caller bug: rc was not an error */
    return rp_errf(eb, e, "%s: %s", what, mdb_strerror(rc));
}

int64_t rp_si_now(int64_t now) { return now > 0 ? now : (int64_t)time(NULL); }

rp_err rp_si_unpack(const MDB_val *v, msgpack_zone *z, msgpack_object *o, const char *what,
                    rp_errbuf *eb) {
    /* A stored value is our own bytes, but a corrupted one must not reach
     * msgpack-c unchecked: it sizes allocations from container headers (a
     * 5-byte value can ask for 128 GiB) and reports nesting beyond its
     * 32-level stack as out-of-memory. Walk it first, bounded by its own
     * length and by what a record can hold; it must be exactly one value.
     * UTF-8 was checked when the record was written. */
    static const rp_mpcheck_limits lim_base = {
        .max_depth = RP_MPCHECK_UNPACK_DEPTH_MAX,
        .max_container = 1024, /* a record's largest array/map: 64 preferences */
        .max_string = 65536,   /* its largest string: a 1 KiB summary */
        .skip_utf8 = true,
    };
    rp_mpcheck_limits lim = lim_base;
    lim.max_bytes = v->mv_size ? v->mv_size : 1;
    char why[128];
    size_t len = 0;
    rp_mpcheck_result r = rp_mpcheck_unpack(v->mv_data, v->mv_size, &lim, z, o, &len, why, sizeof why);
    if (r == RP_MPC_NOMEM) return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding a %s", what);
    if (r != RP_MPC_OK) return rp_errf(eb, RP_INTERNAL, "corrupt %s: %s", what, why);
    if (len != v->mv_size)
        return rp_errf(eb, RP_INTERNAL, "corrupt %s: %zu bytes after the value", what, v->mv_size - len);
    return RP_OK;
}

/* Decode a stored customer value. Slices point into v's memory. */
rp_err rp_si_decode_customer(const MDB_val *v, rp_customer *out, rp_errbuf *eb) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding a customer");
    msgpack_object o;
    rp_arena none = {NULL, 0, 0};
    rp_err rc = rp_si_unpack(v, &z, &o, "customer record", eb);
    if (rc == RP_OK) rc = rp_customer_decode(&o, RP_DEC_STORED, NULL, &none, out, eb);
    msgpack_zone_destroy(&z);
    return rc;
}

/* Decode a stored event value with a caller-provided zone (cleared first,
 * so one zone serves a whole history page). */
rp_err rp_si_decode_event(const MDB_val *v, msgpack_zone *z, rp_event *out, rp_errbuf *eb) {
    msgpack_zone_clear(z);
    msgpack_object o;
    rp_err rc = rp_si_unpack(v, z, &o, "event record", eb);
    if (rc == RP_OK) rc = rp_event_decode(&o, RP_DEC_STORED, out, eb);
    return rc;
}

rp_err rp_si_event_value_evid(const MDB_val *v, char buf[RP_ID_MAX], size_t *n, rp_errbuf *eb) {
    *n = 0;
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024))
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding an event");
    rp_event e;
    rp_err rc = rp_si_decode_event(v, &z, &e, eb);
    if (rc == RP_OK && e.event_id.n > RP_ID_MAX) /* the stored decoder bounds ids: belt and braces */
        rc = rp_errf(eb, RP_INTERNAL, "corrupt stored record: event: event_id too long");
    if (rc == RP_OK && e.event_id.n > 0) {
        memcpy(buf, e.event_id.p, e.event_id.n);
        *n = e.event_id.n;
    }
    msgpack_zone_destroy(&z);
    return rc;
}

rp_err rp_si_decode_issue_in(const MDB_val *v, msgpack_zone *z, rp_issue *out, rp_errbuf *eb) {
    msgpack_zone_clear(z);
    msgpack_object o;
    rp_err rc = rp_si_unpack(v, z, &o, "issue record", eb);
    if (rc == RP_OK) rc = rp_issue_decode(&o, RP_DEC_STORED, out, eb);
    return rc;
}

rp_err rp_si_decode_issue(const MDB_val *v, rp_issue *out, rp_errbuf *eb) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024))
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding an issue");
    rp_err rc = rp_si_decode_issue_in(v, &z, out, eb);
    msgpack_zone_destroy(&z);
    return rc;
}
