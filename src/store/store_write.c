/* store_write.c — the writers: customers (put, patch), events, issues.
 *
 * One function owns "write a customer record": rp_si_customer_write
 * (validate with the model's stored-record validator, load the stored
 * record, version and updated_at, reindex the difference, encode, put).
 * put, patch, merge (merge.c) and import (a put with restore) all call it,
 * so no path can store a record its own decoder would reject.
 *
 * Writers run inside a write transaction (a rp_write_fn, writer.h). Uses
 * the readers (store_read.c), the index primitives (store_index.c) and the
 * codec glue (store_codec.c); merge.c and store_sync.c sit on top of it.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/codec.h"
#include "store/keys.h"
#include "store/store_int.h"

#define RP_STORE_PATCH_ARENA (16 * 1024) /* normalized phones/emails of a patch */

/* Encoding into a growable buffer that remembers an allocation failure
 * (the codec's encoders return void, so the write callback must). */
typedef struct enc_buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bool oom;
} enc_buf;

static int enc_write(void *data, const char *buf, size_t len) {
    enc_buf *e = data;
    if (e->oom) return -1;
    if (msgpack_sbuffer_write(&e->sb, buf, len) != 0) {
        e->oom = true;
        return -1;
    }
    return 0;
}

static void enc_init(enc_buf *e) {
    msgpack_sbuffer_init(&e->sb);
    e->oom = false;
    msgpack_packer_init(&e->pk, e, enc_write);
}

/* Put the encoded value under key and release the buffer. */
static rp_err enc_put(MDB_txn *txn, MDB_dbi dbi, const char *key, size_t kn, enc_buf *e,
                      unsigned flags, const char *what, rp_errbuf *eb) {
    rp_err rc = RP_OK;
    if (e->oom) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory encoding a %s", what);
    } else {
        MDB_val k = rp_si_mval(key, kn), v = rp_si_mval(e->sb.data, e->sb.size);
        int mrc = mdb_put(txn, dbi, &k, &v, flags);
        if (mrc) rc = rp_si_mdb(eb, mrc, what);
    }
    msgpack_sbuffer_destroy(&e->sb);
    return rc;
}

/* Encode c (RP_ENC_STORED) and put it under c->id. */
static rp_err store_customer(rp_store *s, MDB_txn *txn, const rp_customer *c, rp_errbuf *eb) {
    enc_buf e;
    enc_init(&e);
    rp_customer_encode(&e.pk, c, RP_ENC_STORED);
    return enc_put(txn, s->dbi[RP_DB_CUSTOMERS], c->id.p, c->id.n, &e, 0, "storing a customer", eb);
}

/* A put on a merged-away id would resurrect it beside its alias. */
static rp_err check_not_alias(rp_store *s, MDB_txn *txn, rp_str id, rp_errbuf *eb) {
    MDB_val k = rp_si_mval(id.p, id.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_ALIASES], &k, &v);
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading an alias");
    return rp_errf(eb, RP_CONFLICT, "id '%.*s' was merged into '%.*s'", (int)id.n, id.p,
                   (int)v.mv_size, (const char *)v.mv_data);
}


/* The stored version, 0 when new, against opts' expectation. */
static rp_err check_expect(const rp_customer *c, uint64_t stored, const rp_put_opts *opts, rp_errbuf *eb) {
    if (!opts->has_expect || opts->expect_version == stored) return RP_OK;
    if (opts->expect_version == 0)
        return rp_errf(eb, RP_CONFLICT, "customer '%.*s' already exists (version %" PRIu64 ")",
                       (int)c->id.n, c->id.p, stored);
    return rp_errf(eb, RP_CONFLICT, "expected version %" PRIu64 ", stored %" PRIu64,
                   opts->expect_version, stored);
}

/* Validate, then load the stored record under c->id (the reindex diff and
 * the version need it), then version/updated_at, reindex, encode, put. */
rp_err rp_si_customer_write(rp_store *s, MDB_txn *txn, const rp_customer *c, const rp_put_opts *opts,
                            uint64_t *version_out, rp_errbuf *eb) {
    assert(opts != NULL);
    rp_err rc = rp_customer_check(c, eb);
    if (rc != RP_OK) return rc;
    rc = check_not_alias(s, txn, c->id, eb);
    if (rc != RP_OK) return rc;
    rp_si_blob blob = {0};
    rp_customer old;
    rc = rp_si_load_customer(s, txn, c->id, &blob, &old, eb);
    if (rc != RP_OK && rc != RP_NOT_FOUND) return rc;
    bool exists = (rc == RP_OK);
    uint64_t stored = exists ? old.version : 0;
    rc = check_expect(c, stored, opts, eb);
    if (rc != RP_OK) goto fail;
    rp_customer nc = *c;
    nc.version = (opts->restore && c->version != 0) ? c->version : stored + 1;
    nc.updated_at = (opts->restore && c->updated_at != 0) ? c->updated_at : rp_si_now(opts->now);
    rc = rp_si_reindex(s, txn, exists ? &old : NULL, &nc, eb);
    if (rc != RP_OK) goto fail;
    rc = store_customer(s, txn, &nc, eb);
    if (rc != RP_OK) goto fail;
    if (version_out != NULL) *version_out = nc.version;
fail:
    rp_si_blob_free(&blob);
    return rc;
}

/* A put never resolves: c->id on an alias is a conflict, so c->id is the
 * canonical id. */
rp_err rp_store_wput_customer(rp_store *s, MDB_txn *txn, const rp_customer *c,
                              const rp_put_opts *opts, uint64_t *version_out, rp_store_id *canon_out,
                              rp_errbuf *eb) {
    rp_put_opts none = {0};
    rp_err rc = rp_si_customer_write(s, txn, c, opts ? opts : &none, version_out, eb);
    if (rc == RP_OK) rp_si_id_out(canon_out, c->id);
    return rc;
}

/* Load the stored record, apply the patch with a stack arena for the
 * normalized strings, and put the result under the same version rules.
 * restore is ignored: a patch always makes a new version. */
rp_err rp_store_wpatch_customer(rp_store *s, MDB_txn *txn, rp_str id, const msgpack_object *patch,
                                const rp_put_opts *opts, uint64_t *version_out,
                                rp_store_id *canon_out, rp_errbuf *eb) {
    char idbuf[RP_ID_MAX];
    rp_str cid;
    rp_si_blob blob;
    rp_customer c;
    rp_err rc = rp_si_load_resolved(s, txn, id, idbuf, &cid, &blob, &c, eb);
    if (rc != RP_OK) return rc;
    char abuf[RP_STORE_PATCH_ARENA];
    rp_arena arena = {abuf, sizeof abuf, 0};
    rc = rp_customer_patch(&c, patch, s->cfg.default_country, &arena, eb);
    if (rc == RP_OK) {
        rp_put_opts po = opts ? *opts : (rp_put_opts){0};
        po.restore = false;
        c.id = cid;
        rc = rp_si_customer_write(s, txn, &c, &po, version_out, eb);
    }
    if (rc == RP_OK) rp_si_id_out(canon_out, cid);
    rp_si_blob_free(&blob);
    return rc;
}

/* Where an appended event goes, or that it is already stored (*dup).
 * With an event_id: the event of the customer with that event_id is it.
 * Without one, an event that carries its seq (import of an export) is
 * already stored when the same bytes are at (ts, seq). A given seq is kept
 * when (ts, seq) is free; otherwise (none given, or taken by another
 * event) the event gets the next free seq at ts. *at gets the key's
 * (ts, seq) either way. */
static rp_err append_place(rp_store *s, MDB_txn *txn, const rp_event *e, rp_str cid,
                           const enc_buf *val, rp_cursor *at, bool *dup, rp_errbuf *eb) {
    *dup = false;
    if (e->event_id.n > 0) {
        rp_err rc = rp_si_evid_get(s, txn, cid, e->event_id, at, eb);
        if (rc != RP_NOT_FOUND) {
            *dup = rc == RP_OK;
            return rc;
        }
    }
    if (e->has_seq) {
        char key[RP_KEYS_EVENT_MAX];
        size_t kn = rp_keys_event(key, cid, e->ts, e->seq);
        MDB_val k = rp_si_mval(key, kn), v;
        int mrc = mdb_get(txn, s->dbi[RP_DB_EVENTS], &k, &v);
        *at = (rp_cursor){e->ts, e->seq};
        if (mrc == MDB_NOTFOUND) return RP_OK;
        if (mrc) return rp_si_mdb(eb, mrc, "reading an event");
        if (e->event_id.n == 0 && v.mv_size == val->sb.size &&
            memcmp(v.mv_data, val->sb.data, v.mv_size) == 0) {
            *dup = true;
            return RP_OK;
        }
    }
    at->ts = e->ts;
    return rp_si_event_next_seq(s, txn, cid, e->ts, &at->seq, eb);
}

/* Store the encoded event val of customer cid at *at: the event, its
 * evids entry, the count, then retention (which keeps this event from the
 * age rule), then the customer's card digest (digest.c). e's strings are
 * the caller's, never the map's, as the digest update requires. */
static rp_err append_store(rp_store *s, MDB_txn *txn, const rp_event *e, rp_str cid,
                           const enc_buf *val, const rp_cursor *at, int64_t now, rp_errbuf *eb) {
    uint32_t count;
    rp_err rc = rp_si_evcount_get(s, txn, cid, &count, eb);
    if (rc != RP_OK) return rc;
    if (count == UINT32_MAX)
        return rp_errf(eb, RP_TOO_LARGE, "customer '%.*s' has too many events", (int)cid.n, cid.p);
    char key[RP_KEYS_EVENT_MAX];
    size_t kn = rp_keys_event(key, cid, at->ts, at->seq);
    MDB_val k = rp_si_mval(key, kn), v = rp_si_mval(val->sb.data, val->sb.size);
    int mrc = mdb_put(txn, s->dbi[RP_DB_EVENTS], &k, &v, MDB_NOOVERWRITE);
    if (mrc) return rp_si_mdb(eb, mrc, "storing an event");
    if (e->event_id.n > 0) rc = rp_si_evid_put(s, txn, cid, e->event_id, at->ts, at->seq, eb);
    if (rc == RP_OK) rc = rp_si_evcount_set(s, txn, cid, count + 1, eb);
    if (rc == RP_OK) rc = rp_si_trim(s, txn, cid, now, key, kn, eb);
    if (rc != RP_OK) return rc;
    if (s->digest_defer) return rp_si_digest_note(s, cid, eb);
    return rp_si_digest_append(s, txn, cid, e, at->ts, at->seq, count + 1, eb);
}

rp_err rp_store_wappend_event(rp_store *s, MDB_txn *txn, const rp_event *e, int64_t now,
                              rp_cursor *at_out, bool *dup_out, rp_store_id *canon_out,
                              rp_errbuf *eb) {
    rp_err rc = rp_event_check(e, eb);
    if (rc != RP_OK) return rc;
    char idbuf[RP_ID_MAX];
    rp_str cid;
    rc = rp_si_resolve_copy(s, txn, e->customer_id, idbuf, &cid, eb);
    if (rc != RP_OK) return rc;
    enc_buf val;
    enc_init(&val);
    rp_event_encode(&val.pk, e, RP_ENC_STORED);
    rp_cursor at = {0, 0};
    bool dup = false;
    if (val.oom) rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory encoding an event");
    if (rc == RP_OK) rc = append_place(s, txn, e, cid, &val, &at, &dup, eb);
    if (rc == RP_OK && !dup) rc = append_store(s, txn, e, cid, &val, &at, now, eb);
    msgpack_sbuffer_destroy(&val.sb);
    if (rc != RP_OK) return rc;
    if (at_out != NULL) *at_out = at;
    if (dup_out != NULL) *dup_out = dup;
    rp_si_id_out(canon_out, cid);
    return RP_OK;
}

rp_err rp_store_wput_issue(rp_store *s, MDB_txn *txn, const rp_issue *i, int64_t now,
                           rp_store_id *canon_out, rp_errbuf *eb) {
    rp_err rc = rp_issue_check(i, eb);
    if (rc != RP_OK) return rc;
    char idbuf[RP_ID_MAX];
    rp_str cid;
    rc = rp_si_resolve_copy(s, txn, i->customer_id, idbuf, &cid, eb);
    if (rc != RP_OK) return rc;
    char key[RP_KEYS_ISSUE_MAX];
    size_t kn = rp_keys_issue(key, cid, i->issue_id);
    int64_t t = rp_si_now(now);
    rp_issue ni = *i;
    ni.customer_id = cid;
    if (ni.opened_at == 0) {
        MDB_val k = rp_si_mval(key, kn), v;
        int mrc = mdb_get(txn, s->dbi[RP_DB_ISSUES], &k, &v);
        ni.opened_at = t;
        if (mrc == 0) {
            rp_issue old;
            rc = rp_si_decode_issue(&v, &old, eb);
            if (rc != RP_OK) return rc;
            if (old.opened_at != 0) ni.opened_at = old.opened_at;
        } else if (mrc != MDB_NOTFOUND) {
            return rp_si_mdb(eb, mrc, "reading an issue");
        }
    }
    if (ni.updated_at == 0) ni.updated_at = t;
    enc_buf e;
    enc_init(&e);
    rp_issue_encode(&e.pk, &ni, RP_ENC_STORED);
    rc = enc_put(txn, s->dbi[RP_DB_ISSUES], key, kn, &e, 0, "storing an issue", eb);
    if (rc == RP_OK) rp_si_id_out(canon_out, cid);
    return rc;
}
