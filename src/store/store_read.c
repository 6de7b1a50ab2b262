/* store_read.c — the readers: alias resolution, customers, identity
 * lookups, history, issues, export scans; and the two helpers writers use
 * to read what they are about to change (rp_si_resolve_copy,
 * rp_si_load_customer).
 *
 * Readers run in any transaction (read or write). Every slice they return
 * points into LMDB's map. Uses store_codec.c and store_index.c only.
 *
 * Aliases. A merged-away id is a key of `aliases` pointing at its survivor;
 * every entry point resolves ids through it (at most 8 hops, so a corrupt
 * loop is an error rather than a hang).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/codec.h"
#include "store/keys.h"
#include "store/store_int.h"
#include "model/ident.h"

#define RP_STORE_ALIAS_HOPS 8 /* alias chains longer than this are corrupt */

/* Customers first (the common case costs one lookup), then aliases. */
/* Resolve id through aliases; *record (may be NULL) receives the canonical
 * customer's stored value, found on the way, so a caller that wants the
 * record does not look it up again. O(hops) mdb_gets. */
rp_err rp_si_resolve_record(rp_store *s, MDB_txn *txn, rp_str id, rp_str *canonical, MDB_val *record,
                             rp_errbuf *eb) {
    rp_err rc = rp_id_check(id, "id", eb);
    if (rc != RP_OK) return rc;
    rp_str cur = id;
    for (int hops = 0;; hops++) {
        MDB_val k = rp_si_mval(cur.p, cur.n), v;
        int mrc = mdb_get(txn, s->dbi[RP_DB_CUSTOMERS], &k, &v);
        if (mrc == 0) {
            *canonical = cur;
            if (record) *record = v;
            return RP_OK;
        }
        if (mrc != MDB_NOTFOUND) return rp_si_mdb(eb, mrc, "reading a customer");
        mrc = mdb_get(txn, s->dbi[RP_DB_ALIASES], &k, &v);
        if (mrc == MDB_NOTFOUND) {
            if (hops == 0)
                return rp_errf(eb, RP_NOT_FOUND, "no customer with id '%.*s'", (int)id.n, id.p);
            return rp_errf(eb, RP_INTERNAL, "alias '%.*s' leads to missing customer '%.*s'",
                           (int)id.n, id.p, (int)cur.n, cur.p);
        }
        if (mrc) return rp_si_mdb(eb, mrc, "reading an alias");
        if (v.mv_size == 0 || v.mv_size > RP_ID_MAX)
            return rp_errf(eb, RP_INTERNAL, "corrupt alias '%.*s'", (int)cur.n, cur.p);
        if (hops == RP_STORE_ALIAS_HOPS)
            return rp_errf(eb, RP_INTERNAL, "alias chain of '%.*s' is longer than %d hops",
                           (int)id.n, id.p, RP_STORE_ALIAS_HOPS);
        cur = rp_si_vstr(&v);
    }
}

rp_err rp_store_resolve(rp_store *s, MDB_txn *txn, rp_str id, rp_str *canonical, rp_errbuf *eb) {
    return rp_si_resolve_record(s, txn, id, canonical, NULL, eb);
}

rp_err rp_store_get_customer(rp_store *s, MDB_txn *txn, rp_str id, rp_customer *out, rp_errbuf *eb) {
    rp_str cid;
    MDB_val v;
    rp_err rc = rp_si_resolve_record(s, txn, id, &cid, &v, eb);
    if (rc != RP_OK) return rc;
    rc = rp_si_decode_customer(&v, out, eb);
    if (rc != RP_OK) return rc;
    out->id = cid;
    return RP_OK;
}

/* Normalize raw into out->key for the index of kind. */
static rp_err lookup_key(rp_store *s, rp_ident_kind kind, rp_str raw, rp_lookup *out, size_t *kn,
                         rp_errbuf *eb) {
    switch (kind) {
    case RP_IDENT_PHONE: {
        char ph[RP_PHONE_MAX + 1];
        rp_err rc = rp_phone_normalize(raw.p ? raw.p : "", raw.n, s->cfg.default_country, ph, kn, eb);
        if (rc != RP_OK) return rc;
        assert(*kn <= RP_PHONE_MAX);
        memcpy(out->key, ph, *kn + 1);
        return RP_OK;
    }
    case RP_IDENT_EMAIL:
        return rp_email_normalize(raw.p ? raw.p : "", raw.n, out->key, kn, eb);
    case RP_IDENT_ACCOUNT: {
        rp_err rc = rp_id_check(raw, "account", eb);
        if (rc != RP_OK) return rc;
        memcpy(out->key, raw.p, raw.n);
        out->key[raw.n] = '\0';
        *kn = raw.n;
        return RP_OK;
    }
    }
    return rp_errf(eb, RP_BAD_REQUEST, "unknown identity kind %d", (int)kind);
}

/* MDB_SET on the key, then MDB_NEXT_DUP over its customer ids, resolving
 * each (defensively: merge re-points entries, so they are canonical) and
 * keeping the first RP_LOOKUP_MAX distinct ones. O(candidates log N). */
rp_err rp_store_lookup(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str raw, rp_lookup *out,
                       rp_errbuf *eb) {
    out->n = 0;
    out->truncated = false;
    out->key[0] = '\0';
    size_t kn = 0;
    rp_err rc = lookup_key(s, kind, raw, out, &kn, eb);
    if (rc != RP_OK) return rc;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[rp_si_index_db(kind)], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an index cursor");
    MDB_val k = rp_si_mval(out->key, kn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
    while (mrc == 0) {
        rp_str canon;
        rp_errbuf reb = {0};
        rc = rp_store_resolve(s, txn, rp_si_vstr(&v), &canon, &reb);
        if (rc == RP_BAD_REQUEST) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt index entry under '%s'", out->key);
            goto out;
        }
        if (rc != RP_OK && rc != RP_NOT_FOUND) {
            rp_errf(eb, rc, "%s", reb.msg);
            goto out;
        }
        bool dup = (rc == RP_NOT_FOUND); /* a dangling entry is skipped */
        for (uint32_t i = 0; i < out->n && !dup; i++) dup = rp_str_eq(out->ids[i], canon);
        if (!dup) {
            if (out->n == RP_LOOKUP_MAX) {
                out->truncated = true;
                break;
            }
            out->ids[out->n++] = canon;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    rc = RP_OK;
    if (mrc != 0 && mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading an identity index");
out:
    mdb_cursor_close(cur);
    return rc;
}

/* The canonical id a reader works on: id itself under RP_STORE_CANONICAL
 * (the caller resolved it in this transaction), else resolved. */
static rp_err reader_id(rp_store *s, MDB_txn *txn, rp_str id, unsigned flags, rp_str *cid, rp_errbuf *eb) {
    if (flags & RP_STORE_CANONICAL) {
        assert(id.n > 0 && id.n <= RP_ID_MAX);
        *cid = id;
        return RP_OK;
    }
    return rp_store_resolve(s, txn, id, cid, eb);
}

/* Seek to the first key at or after (id, before) — or after all of id's
 * events — and step back: MDB_PREV walks newest first. O(log N + max). */
rp_err rp_store_history(rp_store *s, MDB_txn *txn, rp_str id, unsigned flags, const rp_cursor *before,
                        uint32_t max, rp_event *out, uint32_t *n, bool *more, rp_cursor *next,
                        rp_errbuf *eb) {
    *n = 0;
    *more = false;
    rp_str cid;
    rp_err rc = reader_id(s, txn, id, flags, &cid, eb);
    if (rc != RP_OK) return rc;
    if (before != NULL && before->ts < 0) return RP_OK; /* nothing is older */
    char pfx[RP_KEYS_PREFIX_MAX], seek[RP_KEYS_EVENT_MAX];
    size_t pn = rp_keys_prefix(pfx, cid), sn;
    if (before != NULL) {
        sn = rp_keys_event(seek, cid, before->ts, before->seq);
    } else {
        memcpy(seek, pfx, pn);
        seek[pn - 1] = '\x01'; /* just after every "id\0..." key */
        sn = pn;
    }
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024)) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading history");
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) {
        msgpack_zone_destroy(&z);
        return rp_si_mdb(eb, mrc, "opening an events cursor");
    }
    MDB_val k = rp_si_mval(seek, sn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0) mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    while (mrc == 0 && rp_keys_has_prefix(&k, pfx, pn)) {
        if (*n == max) {
            *more = true;
            break;
        }
        rp_event *e = &out[*n];
        if (!rp_keys_event_parse(&k, pn, &e->ts, &e->seq)) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt event key of '%.*s'", (int)cid.n, cid.p);
            goto out;
        }
        int64_t ts = e->ts;
        uint32_t seq = e->seq;
        rc = rp_si_decode_event(&v, &z, e, eb);
        if (rc != RP_OK) goto out;
        e->customer_id = cid;
        e->ts = ts;
        e->seq = seq;
        (*n)++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = rp_si_mdb(eb, mrc, "reading events");
        goto out;
    }
    if (*more && next != NULL) {
        if (*n > 0) *next = (rp_cursor){out[*n - 1].ts, out[*n - 1].seq};
        else *next = before ? *before : (rp_cursor){INT64_MAX, UINT32_MAX};
    }
    rc = RP_OK;
out:
    mdb_cursor_close(cur);
    msgpack_zone_destroy(&z);
    return rc;
}

/* Forward over "id\0": issues come out in issue_id byte order. */
rp_err rp_store_issues(rp_store *s, MDB_txn *txn, rp_str id, unsigned flags, uint32_t max,
                       rp_issue *out, uint32_t *n, bool *more, rp_errbuf *eb) {
    *n = 0;
    *more = false;
    rp_str cid;
    rp_err rc = reader_id(s, txn, id, flags, &cid, eb);
    if (rc != RP_OK) return rc;
    char pfx[RP_KEYS_PREFIX_MAX];
    size_t pn = rp_keys_prefix(pfx, cid);
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024)) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading issues");
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_ISSUES], &cur);
    if (mrc) {
        msgpack_zone_destroy(&z);
        return rp_si_mdb(eb, mrc, "opening an issues cursor");
    }
    MDB_val k = rp_si_mval(pfx, pn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && rp_keys_has_prefix(&k, pfx, pn)) {
        if (*n == max) {
            *more = true;
            break;
        }
        if (k.mv_size == pn || k.mv_size - pn > RP_ID_MAX) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt issue key of '%.*s'", (int)cid.n, cid.p);
            goto out;
        }
        rc = rp_si_decode_issue_in(&v, &z, &out[*n], eb);
        if (rc != RP_OK) goto out;
        out[*n].customer_id = cid;
        out[*n].issue_id = (rp_str){(const char *)k.mv_data + pn, k.mv_size - pn};
        (*n)++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    rc = RP_OK;
    if (mrc != 0 && mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading issues");
out:
    mdb_cursor_close(cur);
    msgpack_zone_destroy(&z);
    return rc;
}

rp_err rp_store_get_issue(rp_store *s, MDB_txn *txn, rp_str id, rp_str issue_id, rp_issue *out,
                          rp_errbuf *eb) {
    rp_err rc = rp_id_check(issue_id, "issue_id", eb);
    if (rc != RP_OK) return rc;
    rp_str cid;
    rc = rp_store_resolve(s, txn, id, &cid, eb);
    if (rc != RP_OK) return rc;
    char key[RP_KEYS_ISSUE_MAX];
    size_t kn = rp_keys_issue(key, cid, issue_id);
    MDB_val k = rp_si_mval(key, kn), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_ISSUES], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rp_errf(eb, RP_NOT_FOUND, "customer '%.*s' has no issue '%.*s'", (int)cid.n, cid.p,
                       (int)issue_id.n, issue_id.p);
    if (mrc) return rp_si_mdb(eb, mrc, "reading an issue");
    rc = rp_si_decode_issue(&v, out, eb);
    if (rc != RP_OK) return rc;
    out->customer_id = cid;
    out->issue_id = issue_id;
    return RP_OK;
}

/* Walk `customers` in key order from after `after`. O(N) for a full export,
 * one decode per record. */
rp_err rp_store_scan_customers(rp_store *s, MDB_txn *txn, rp_str after,
                               bool (*fn)(const rp_customer *c, void *arg), void *arg,
                               rp_errbuf *eb) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_CUSTOMERS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening a customers cursor");
    rp_err rc = RP_OK;
    MDB_val k, v;
    if (after.n == 0) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        k = rp_si_mval(after.p, after.n);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == 0 && k.mv_size == after.n && memcmp(k.mv_data, after.p, after.n) == 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    while (mrc == 0) {
        rp_customer c;
        rc = rp_si_decode_customer(&v, &c, eb);
        if (rc != RP_OK) goto out;
        c.id = rp_si_vstr(&k);
        if (!fn(&c, arg)) goto out;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading customers");
out:
    mdb_cursor_close(cur);
    return rc;
}

/* MDB_SET_KEY on alias_rev[id], then MDB_NEXT_DUP: the DUPSORT values
 * come in byte order. O((aliases + 1) log N). */
rp_err rp_store_aliases_of(rp_store *s, MDB_txn *txn, rp_str id,
                           bool (*fn)(rp_str alias, void *arg), void *arg, rp_errbuf *eb) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_ALIAS_REV], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an alias cursor");
    rp_err rc = RP_OK;
    MDB_val k = rp_si_mval(id.p, id.n), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    while (mrc == 0) {
        if (v.mv_size == 0 || v.mv_size > RP_ID_MAX) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt alias_rev entry of '%.*s'", (int)id.n, id.p);
            goto out;
        }
        if (!fn(rp_si_vstr(&v), arg)) goto out;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    if (mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading aliases");
out:
    mdb_cursor_close(cur);
    return rc;
}

/* ---- reading what a writer is about to change (store_int.h) ---- */

rp_err rp_si_resolve_copy(rp_store *s, MDB_txn *txn, rp_str id, char buf[RP_ID_MAX], rp_str *out,
                          rp_errbuf *eb) {
    rp_str c;
    rp_err rc = rp_store_resolve(s, txn, id, &c, eb);
    if (rc != RP_OK) return rc;
    assert(c.n > 0 && c.n <= RP_ID_MAX);
    memcpy(buf, c.p, c.n);
    *out = (rp_str){buf, c.n};
    return RP_OK;
}

rp_err rp_si_load_customer(rp_store *s, MDB_txn *txn, rp_str id, rp_si_blob *blob,
                           rp_customer *out, rp_errbuf *eb) {
    blob->p = NULL;
    blob->n = 0;
    MDB_val k = rp_si_mval(id.p, id.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_CUSTOMERS], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rp_errf(eb, RP_NOT_FOUND, "no customer with id '%.*s'", (int)id.n, id.p);
    if (mrc) return rp_si_mdb(eb, mrc, "reading a customer");
    char *p = malloc(v.mv_size ? v.mv_size : 1);
    if (p == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory copying a customer");
    memcpy(p, v.mv_data, v.mv_size);
    MDB_val copy = rp_si_mval(p, v.mv_size);
    rp_err rc = rp_si_decode_customer(&copy, out, eb);
    if (rc != RP_OK) {
        free(p);
        return rc;
    }
    out->id = id; /* the key is authoritative */
    blob->p = p;
    blob->n = v.mv_size;
    return RP_OK;
}

rp_err rp_si_load_resolved(rp_store *s, MDB_txn *txn, rp_str id, char idbuf[RP_ID_MAX], rp_str *cid,
                           rp_si_blob *blob, rp_customer *out, rp_errbuf *eb) {
    blob->p = NULL;
    blob->n = 0;
    rp_err rc = rp_si_resolve_copy(s, txn, id, idbuf, cid, eb);
    return rc == RP_OK ? rp_si_load_customer(s, txn, *cid, blob, out, eb) : rc;
}
