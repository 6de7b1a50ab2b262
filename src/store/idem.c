/* idem.c — the idempotency key table (idem.h; layout in proto/STORAGE.md).
 *
 * idem holds the entries, idem_exp the same keys ordered by expiry, so
 * that pruning and eviction start at idem_exp's first key (one
 * MDB_FIRST) instead of scanning. The two are changed together, always in
 * one transaction: every idem entry has exactly one idem_exp entry,
 * be64(its expiry) ‖ its key.
 */
#include "store/idem.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "store/keys.h"
#include "store/store_int.h"

#define IDEM_HDR (8 + RP_IDEM_HASH)              /* be64(expires) ‖ hash */
#define IDEM_EXPKEY_MAX (8 + RP_IDEM_KEY_MAX)

bool rp_idem_key_valid(rp_str key) {
    if (key.n == 0 || key.n > RP_IDEM_KEY_MAX) return false;
    for (size_t i = 0; i < key.n; i++)
        if ((unsigned char)key.p[i] < 0x21 || (unsigned char)key.p[i] > 0x7E) return false;
    return true;
}

/* idem_exp's key of (expires, key) into out; returns its length. */
static size_t exp_key(unsigned char out[IDEM_EXPKEY_MAX], uint64_t expires, rp_str key) {
    assert(key.n <= RP_IDEM_KEY_MAX);
    rp_keys_put_be64(out, expires);
    memcpy(out + 8, key.p, key.n);
    return 8 + key.n;
}

/* The expiry of a stored idem value, or -1 when it is too short (corrupt). */
static int64_t val_expires(const MDB_val *v) {
    if (v->mv_size < IDEM_HDR) return -1;
    return (int64_t)rp_keys_get_be64(v->mv_data);
}

/* key's entry into *v and its expiry into *expires (-1: no entry). A corrupt
 * entry is INTERNAL naming the key. */
static rp_err read_entry(rp_store *s, MDB_txn *txn, rp_str key, MDB_val *v, int64_t *expires, rp_errbuf *eb) {
    *expires = -1;
    MDB_val k = rp_si_mval(key.p, key.n);
    int mrc = mdb_get(txn, s->dbi[RP_DB_IDEM], &k, v);
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading an idempotency key");
    *expires = val_expires(v);
    if (*expires < 0) return rp_errf(eb, RP_INTERNAL, "corrupt idempotency entry '%.*s'", (int)key.n, key.p);
    return RP_OK;
}

rp_err rp_store_idem_get(rp_store *s, MDB_txn *txn, rp_str key, const uint8_t hash[RP_IDEM_HASH],
                         int64_t now, rp_idem_hit *out, rp_errbuf *eb) {
    assert(rp_idem_key_valid(key));
    memset(out, 0, sizeof *out);
    MDB_val v;
    int64_t expires;
    rp_err rc = read_entry(s, txn, key, &v, &expires, eb);
    if (rc != RP_OK || expires < 0) return rc;
    if (expires <= rp_si_now(now)) return RP_OK; /* expired: as absent; the next put replaces it */
    if (memcmp((const char *)v.mv_data + 8, hash, RP_IDEM_HASH) != 0)
        return rp_errf(eb, RP_CONFLICT,
                       "idempotency key '%.*s' was already used for a different request (another "
                       "method or other params); send a new key for a new request",
                       (int)key.n, key.p);
    out->found = true;
    out->expires = expires;
    out->result = (rp_str){(const char *)v.mv_data + IDEM_HDR, v.mv_size - IDEM_HDR};
    return RP_OK;
}

/* Delete the oldest entry (idem_exp's first key and its idem entry) when
 * its expiry is <= before. *deleted tells whether one was. */
static rp_err delete_oldest(rp_store *s, MDB_txn *txn, int64_t before, bool *deleted, rp_errbuf *eb) {
    *deleted = false;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_IDEM_EXP], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening the idempotency expiry index");
    rp_err rc = RP_OK;
    MDB_val k, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (mrc == MDB_NOTFOUND) goto done;
    if (mrc) {
        rc = rp_si_mdb(eb, mrc, "reading the idempotency expiry index");
        goto done;
    }
    if (k.mv_size <= 8 || k.mv_size > IDEM_EXPKEY_MAX) {
        rc = rp_errf(eb, RP_INTERNAL, "corrupt idempotency expiry key");
        goto done;
    }
    if ((int64_t)rp_keys_get_be64(k.mv_data) > before) goto done;
    /* copy the key out: the deletes below may move the page it is on */
    char key[RP_IDEM_KEY_MAX];
    size_t kn = k.mv_size - 8;
    memcpy(key, (const char *)k.mv_data + 8, kn);
    if ((mrc = mdb_cursor_del(cur, 0)) != 0) {
        rc = rp_si_mdb(eb, mrc, "pruning an idempotency key");
        goto done;
    }
    MDB_val ik = rp_si_mval(key, kn);
    mrc = mdb_del(txn, s->dbi[RP_DB_IDEM], &ik, NULL);
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = rp_si_mdb(eb, mrc, "pruning an idempotency key");
        goto done;
    }
    *deleted = true;
done:
    mdb_cursor_close(cur);
    return rc;
}

rp_err rp_store_idem_count(rp_store *s, MDB_txn *txn, uint64_t *out, rp_errbuf *eb) {
    MDB_stat st;
    int mrc = mdb_stat(txn, s->dbi[RP_DB_IDEM], &st);
    if (mrc) return rp_si_mdb(eb, mrc, "counting idempotency keys");
    *out = st.ms_entries;
    return RP_OK;
}

/* Remove key's entry and its idem_exp twin, when there is one. */
static rp_err delete_key(rp_store *s, MDB_txn *txn, rp_str key, rp_errbuf *eb) {
    MDB_val v;
    int64_t expires;
    rp_err rc = read_entry(s, txn, key, &v, &expires, eb);
    if (rc != RP_OK || expires < 0) return rc;
    unsigned char ek[IDEM_EXPKEY_MAX];
    MDB_val e = rp_si_mval(ek, exp_key(ek, (uint64_t)expires, key)), k = rp_si_mval(key.p, key.n);
    int mrc;
    if ((mrc = mdb_del(txn, s->dbi[RP_DB_IDEM_EXP], &e, NULL)) != 0 && mrc != MDB_NOTFOUND)
        return rp_si_mdb(eb, mrc, "replacing an idempotency key");
    if ((mrc = mdb_del(txn, s->dbi[RP_DB_IDEM], &k, NULL)) != 0)
        return rp_si_mdb(eb, mrc, "replacing an idempotency key");
    return RP_OK;
}

rp_err rp_store_idem_put(rp_store *s, MDB_txn *txn, rp_str key, const uint8_t hash[RP_IDEM_HASH],
                         int64_t now, const void *result, size_t n, rp_errbuf *eb) {
    assert(rp_idem_key_valid(key) && (result != NULL || n == 0));
    rp_err rc = delete_key(s, txn, key, eb);
    if (rc != RP_OK) return rc;
    /* prune: at most RP_IDEM_PRUNE_MAX expired keys, oldest first */
    bool deleted = true;
    for (int i = 0; i < RP_IDEM_PRUNE_MAX && deleted; i++)
        if ((rc = delete_oldest(s, txn, now, &deleted, eb)) != RP_OK) return rc;
    /* full: evict the oldest live keys, RP_IDEM_PRUNE_MAX at most per put
     * (more than one only after idempotency_max_keys was lowered) */
    uint64_t count = 0;
    if ((rc = rp_store_idem_count(s, txn, &count, eb)) != RP_OK) return rc;
    for (int i = 0; i < RP_IDEM_PRUNE_MAX && count >= s->cfg.idempotency_max_keys; i++, count--) {
        if ((rc = delete_oldest(s, txn, INT64_MAX, &deleted, eb)) != RP_OK) return rc;
        if (!deleted) break;
    }
    uint64_t expires = (uint64_t)rp_si_now(now) + s->cfg.idempotency_ttl;
    MDB_val k = rp_si_mval(key.p, key.n), v;
    v.mv_size = IDEM_HDR + n;
    int mrc = mdb_put(txn, s->dbi[RP_DB_IDEM], &k, &v, MDB_RESERVE);
    if (mrc) return rp_si_mdb(eb, mrc, "storing an idempotency key");
    rp_keys_put_be64(v.mv_data, expires);
    memcpy((char *)v.mv_data + 8, hash, RP_IDEM_HASH);
    if (n) memcpy((char *)v.mv_data + IDEM_HDR, result, n);
    unsigned char ek[IDEM_EXPKEY_MAX];
    MDB_val e = rp_si_mval(ek, exp_key(ek, expires, key)), empty = {0, NULL};
    if ((mrc = mdb_put(txn, s->dbi[RP_DB_IDEM_EXP], &e, &empty, 0)) != 0)
        return rp_si_mdb(eb, mrc, "storing an idempotency key");
    return RP_OK;
}
