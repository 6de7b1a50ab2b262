/* store_index.c — the primitives every writer shares: the identity
 * indexes (add, remove, the reindex diff), the per-customer event count,
 * the next free event seq, retention trim and range deletes.
 *
 * Each is one small step inside the caller's write transaction; none
 * resolves aliases (ids here are canonical) and none calls up into the
 * readers, writers or merge. Uses store_codec.c only.
 *
 * Retention decision (documented in proto/STORAGE.md): the count rule keeps
 * the newest retention_max_events events by (ts, seq), strictly; the age
 * rule deletes events older than now - retention_max_age_days, oldest
 * first, but never the event the same append just wrote — an append is
 * always stored, even when its ts is already past the age limit; the next
 * append or merge of that customer trims it.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/codec.h"
#include "store/keys.h"
#include "store/store_int.h"

rp_db rp_si_index_db(rp_ident_kind kind) {
    switch (kind) {
    case RP_IDENT_EMAIL: return RP_DB_EMAILS;
    case RP_IDENT_ACCOUNT: return RP_DB_ACCOUNTS;
    case RP_IDENT_PHONE: break;
    }
    return RP_DB_PHONES;
}

void rp_si_idents(const rp_customer *c, rp_ident_kind kind, const rp_str **list, uint32_t *n) {
    switch (kind) {
    case RP_IDENT_EMAIL:
        *list = c->emails;
        *n = c->nemails;
        return;
    case RP_IDENT_ACCOUNT:
        *list = c->accounts;
        *n = c->naccounts;
        return;
    case RP_IDENT_PHONE: break;
    }
    *list = c->phones;
    *n = c->nphones;
}

rp_err rp_si_index_add(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str key, rp_str id,
                       rp_errbuf *eb) {
    MDB_val k = rp_si_mval(key.p, key.n), v = rp_si_mval(id.p, id.n);
    int mrc = mdb_put(txn, s->dbi[rp_si_index_db(kind)], &k, &v, MDB_NODUPDATA);
    if (mrc == 0 || mrc == MDB_KEYEXIST) return RP_OK;
    return rp_si_mdb(eb, mrc, "adding an identity index entry");
}

rp_err rp_si_index_del(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str key, rp_str id,
                       rp_errbuf *eb) {
    MDB_val k = rp_si_mval(key.p, key.n), v = rp_si_mval(id.p, id.n);
    int mrc = mdb_del(txn, s->dbi[rp_si_index_db(kind)], &k, &v);
    if (mrc == 0 || mrc == MDB_NOTFOUND) return RP_OK;
    return rp_si_mdb(eb, mrc, "removing an identity index entry");
}

rp_err rp_si_evcount_get(rp_store *s, MDB_txn *txn, rp_str id, uint32_t *out, rp_errbuf *eb) {
    *out = 0; /* on every path: callers read it after an error check only */
    MDB_val k = rp_si_mval(id.p, id.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_EVCOUNT], &k, &v);
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading an event count");
    if (v.mv_size != 4)
        return rp_errf(eb, RP_INTERNAL, "corrupt event count of '%.*s'", (int)id.n, id.p);
    *out = rp_keys_get_le32(v.mv_data);
    return RP_OK;
}

rp_err rp_si_evcount_set(rp_store *s, MDB_txn *txn, rp_str id, uint32_t n, rp_errbuf *eb) {
    MDB_val k = rp_si_mval(id.p, id.n);
    int mrc;
    if (n == 0) {
        mrc = mdb_del(txn, s->dbi[RP_DB_EVCOUNT], &k, NULL);
        if (mrc == MDB_NOTFOUND) mrc = 0;
    } else {
        unsigned char b[4];
        rp_keys_put_le32(b, n);
        MDB_val v = rp_si_mval(b, 4);
        mrc = mdb_put(txn, s->dbi[RP_DB_EVCOUNT], &k, &v, 0);
    }
    return mrc ? rp_si_mdb(eb, mrc, "writing an event count") : RP_OK;
}

/* Seek the largest key below (id, ts, UINT32_MAX) and read its seq when it
 * is at the same (id, ts). O(log N). */
rp_err rp_si_event_next_seq(rp_store *s, MDB_txn *txn, rp_str id, int64_t ts, uint32_t *seq,
                            rp_errbuf *eb) {
    char key[RP_KEYS_EVENT_MAX];
    size_t kn = rp_keys_event(key, id, ts, UINT32_MAX);
    size_t tsn = kn - 4; /* "id\0" + ts */
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an events cursor");
    rp_err rc = RP_OK;
    MDB_val k = rp_si_mval(key, kn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0 && k.mv_size == kn && memcmp(k.mv_data, key, kn) == 0) {
        rc = rp_errf(eb, RP_TOO_LARGE, "too many events of '%.*s' at ts %" PRId64, (int)id.n, id.p, ts);
        goto out;
    }
    if (mrc == 0) mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == 0 && k.mv_size == kn && memcmp(k.mv_data, key, tsn) == 0) {
        *seq = rp_keys_get_be32((const unsigned char *)k.mv_data + tsn) + 1;
    } else if (mrc == 0 || mrc == MDB_NOTFOUND) {
        *seq = 0;
    } else {
        rc = rp_si_mdb(eb, mrc, "reading events");
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

rp_err rp_si_evid_get(rp_store *s, MDB_txn *txn, rp_str id, rp_str event_id, rp_cursor *at,
                      rp_errbuf *eb) {
    char key[RP_KEYS_EVID_MAX];
    size_t kn = rp_keys_evid(key, id, event_id);
    MDB_val k = rp_si_mval(key, kn), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_EVIDS], &k, &v);
    if (mrc == MDB_NOTFOUND) return RP_NOT_FOUND;
    if (mrc) return rp_si_mdb(eb, mrc, "reading an event_id");
    const unsigned char *p = v.mv_data;
    if (v.mv_size != 12 || rp_keys_get_be64(p) > (uint64_t)INT64_MAX)
        return rp_errf(eb, RP_INTERNAL, "corrupt event_id entry of '%.*s'", (int)id.n, id.p);
    at->ts = (int64_t)rp_keys_get_be64(p);
    at->seq = rp_keys_get_be32(p + 8);
    return RP_OK;
}

rp_err rp_si_evid_put(rp_store *s, MDB_txn *txn, rp_str id, rp_str event_id, int64_t ts,
                      uint32_t seq, rp_errbuf *eb) {
    assert(ts >= 0);
    char key[RP_KEYS_EVID_MAX];
    size_t kn = rp_keys_evid(key, id, event_id);
    unsigned char b[12];
    rp_keys_put_be64(b, (uint64_t)ts);
    rp_keys_put_be32(b + 8, seq);
    MDB_val k = rp_si_mval(key, kn), v = rp_si_mval(b, sizeof b);
    int mrc = mdb_put(txn, s->dbi[RP_DB_EVIDS], &k, &v, 0);
    return mrc ? rp_si_mdb(eb, mrc, "writing an event_id") : RP_OK;
}

rp_err rp_si_evid_del(rp_store *s, MDB_txn *txn, rp_str id, rp_str event_id, rp_errbuf *eb) {
    char key[RP_KEYS_EVID_MAX];
    size_t kn = rp_keys_evid(key, id, event_id);
    MDB_val k = rp_si_mval(key, kn);
    int mrc = mdb_del(txn, s->dbi[RP_DB_EVIDS], &k, NULL);
    if (mrc == 0 || mrc == MDB_NOTFOUND) return RP_OK;
    return rp_si_mdb(eb, mrc, "removing an event_id");
}

/* Delete the event under cur (an events cursor on a key of id) and the
 * evids entry of its event_id, which is read from the value first. */
static rp_err trim_del(rp_store *s, MDB_txn *txn, MDB_cursor *cur, rp_str id, const MDB_val *v,
                       const char *what, rp_errbuf *eb) {
    char evid[RP_ID_MAX];
    size_t en;
    rp_err rc = rp_si_event_value_evid(v, evid, &en, eb);
    if (rc != RP_OK) return rc;
    int mrc = mdb_cursor_del(cur, 0);
    if (mrc) return rp_si_mdb(eb, mrc, what);
    return en > 0 ? rp_si_evid_del(s, txn, id, (rp_str){evid, en}, eb) : RP_OK;
}

/* Count rule: delete the first event of the prefix while over the limit.
 * Age rule: walk from the oldest, deleting until the first new-enough
 * event, stepping over `keep`. Each deletion re-seeks (O(log N)), which is
 * simpler to get right than relying on cursor positions after a delete. */
rp_err rp_si_trim(rp_store *s, MDB_txn *txn, rp_str id, int64_t now, const char *keep, size_t keep_n,
                  rp_errbuf *eb) {
    uint32_t count;
    rp_err rc = rp_si_evcount_get(s, txn, id, &count, eb);
    if (rc != RP_OK) return rc;
    char pfx[RP_KEYS_PREFIX_MAX];
    size_t pn = rp_keys_prefix(pfx, id);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an events cursor");
    uint32_t max = s->cfg.retention_max_events;
    while (max > 0 && count > max) {
        MDB_val k = rp_si_mval(pfx, pn), v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == MDB_NOTFOUND || (mrc == 0 && !rp_keys_has_prefix(&k, pfx, pn))) {
            count = 0; /* the count ran ahead of the data: repair it */
            break;
        }
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "reading events");
            goto out;
        }
        rc = trim_del(s, txn, cur, id, &v, "trimming events by count", eb);
        if (rc != RP_OK) goto out;
        count--;
    }
    if (s->cfg.retention_max_age_days > 0) {
        int64_t cutoff = rp_si_now(now) - (int64_t)s->cfg.retention_max_age_days * 86400;
        char from[RP_KEYS_EVENT_MAX];
        size_t fn = pn;
        bool past_from = false; /* from is the kept key: start after it */
        memcpy(from, pfx, pn);
        for (;;) {
            MDB_val k = rp_si_mval(from, fn), v;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (mrc == 0 && past_from && k.mv_size == fn && memcmp(k.mv_data, from, fn) == 0)
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            if (mrc == MDB_NOTFOUND) break;
            if (mrc) {
                rc = rp_si_mdb(eb, mrc, "reading events");
                goto out;
            }
            int64_t ts;
            uint32_t seq;
            if (!rp_keys_has_prefix(&k, pfx, pn)) break;
            if (!rp_keys_event_parse(&k, pn, &ts, &seq)) {
                rc = rp_errf(eb, RP_INTERNAL, "corrupt event key of '%.*s'", (int)id.n, id.p);
                goto out;
            }
            if (ts >= cutoff) break;
            if (keep_n > 0 && k.mv_size == keep_n && memcmp(k.mv_data, keep, keep_n) == 0) {
                memcpy(from, keep, keep_n);
                fn = keep_n;
                past_from = true;
                continue;
            }
            rc = trim_del(s, txn, cur, id, &v, "trimming events by age", eb);
            if (rc != RP_OK) goto out;
            if (count > 0) count--;
        }
    }
    rc = rp_si_evcount_set(s, txn, id, count, eb);
out:
    mdb_cursor_close(cur);
    return rc;
}

rp_err rp_si_delete_prefix(rp_store *s, MDB_txn *txn, rp_db db, const char *prefix, size_t n,
                           uint64_t *deleted, rp_errbuf *eb) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening a cursor");
    uint64_t count = 0;
    for (;;) {
        MDB_val k = rp_si_mval(prefix, n), v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == MDB_NOTFOUND || (mrc == 0 && !rp_keys_has_prefix(&k, prefix, n))) {
            mrc = 0;
            break;
        }
        if (mrc == 0) mrc = mdb_cursor_del(cur, 0);
        if (mrc) break;
        count++;
    }
    mdb_cursor_close(cur);
    if (deleted) *deleted = count;
    return mrc ? rp_si_mdb(eb, mrc, "deleting a key range") : RP_OK;
}

static bool str_in(rp_str x, const rp_str *list, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (rp_str_eq(x, list[i])) return true;
    return false;
}

/* Drop index entries the old record had and the new one lacks; add the new
 * ones. O(identities^2) comparisons — at most 16 per kind. */
rp_err rp_si_reindex(rp_store *s, MDB_txn *txn, const rp_customer *old, const rp_customer *nc,
                      rp_errbuf *eb) {
    for (int kind = RP_IDENT_PHONE; kind <= RP_IDENT_ACCOUNT; kind++) {
        const rp_str *nl, *ol;
        uint32_t nn, on;
        rp_si_idents(nc, (rp_ident_kind)kind, &nl, &nn);
        if (old != NULL) {
            rp_si_idents(old, (rp_ident_kind)kind, &ol, &on);
            for (uint32_t i = 0; i < on; i++) {
                if (str_in(ol[i], nl, nn)) continue;
                rp_err rc = rp_si_index_del(s, txn, (rp_ident_kind)kind, ol[i], nc->id, eb);
                if (rc != RP_OK) return rc;
            }
        }
        for (uint32_t i = 0; i < nn; i++) {
            rp_err rc = rp_si_index_add(s, txn, (rp_ident_kind)kind, nl[i], nc->id, eb);
            if (rc != RP_OK) return rc;
        }
    }
    return RP_OK;
}
