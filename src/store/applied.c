/* applied.c — the last applied log sequence in meta (applied.h). */
#include "store/applied.h"

#include "store/keys.h"
#include "store/store_int.h"

#define APPLIED_KEY "cluster_seq"

rp_err rp_store_applied_get(rp_store *s, MDB_txn *txn, uint64_t *seq, rp_errbuf *eb) {
    MDB_val k = rp_si_mval(APPLIED_KEY, sizeof APPLIED_KEY - 1), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_META], &k, &v);
    *seq = 0;
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading the applied log sequence");
    if (v.mv_size != 8)
        return rp_errf(eb, RP_INTERNAL, "store in '%s' has a corrupt applied log sequence",
                       s->cfg.data_dir);
    *seq = rp_keys_get_be64(v.mv_data);
    return RP_OK;
}

rp_err rp_store_applied_put(rp_store *s, MDB_txn *txn, uint64_t seq, rp_errbuf *eb) {
    unsigned char b[8];
    rp_keys_put_be64(b, seq);
    MDB_val k = rp_si_mval(APPLIED_KEY, sizeof APPLIED_KEY - 1), v = rp_si_mval(b, 8);
    int mrc = mdb_put(txn, s->dbi[RP_DB_META], &k, &v, 0);
    return mrc ? rp_si_mdb(eb, mrc, "writing the applied log sequence") : RP_OK;
}

rp_err rp_store_applied_check_local(rp_store *s, rp_errbuf *eb) {
    uint64_t seq;
    rp_err rc = rp_store_applied_read(s, &seq, eb);
    if (rc != RP_OK || seq == 0) return rc;
    return rp_errf(eb, RP_CONFLICT,
                   "the store in '%s' is a cluster node's (it applied log sequence %llu): write to it only "
                   "through rapportd with its cluster_urls; to use its data as a single node, export it "
                   "(rapport --data DIR export) and import that into a new store",
                   s->cfg.data_dir, (unsigned long long)seq);
}

rp_err rp_store_applied_read(rp_store *s, uint64_t *seq, rp_errbuf *eb) {
    MDB_txn *txn;
    rp_err rc = rp_store_rbegin(s, &txn, eb);
    if (rc != RP_OK) return rc;
    rc = rp_store_applied_get(s, txn, seq, eb);
    rp_store_rend(s, txn);
    return rc;
}
