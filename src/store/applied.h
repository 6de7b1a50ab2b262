/* applied.h — cluster mode's last applied log sequence, kept in meta.
 *
 * In cluster mode (src/cluster, proto/CLUSTER.md) every write is an entry
 * of a replicated log, applied in order. The sequence of the last entry
 * applied is stored under the meta key "cluster_seq" (be64) in the same
 * transaction as that entry's effects, so a crash never separates the two
 * and a restart (or a copy made by `rapport backup`) resumes exactly after
 * it. A store that never ran in cluster mode has none (sequence 0).
 */
#ifndef RP_STORE_APPLIED_H
#define RP_STORE_APPLIED_H

#include <lmdb.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

/* The last applied sequence, read in txn (a read or write transaction of
 * s). *seq gets 0 when none was ever stored. Returns RP_OK, RP_INTERNAL
 * (a value that is not 8 bytes: eb says so) or a mapped LMDB error. */
rp_err rp_store_applied_get(rp_store *s, MDB_txn *txn, uint64_t *seq, rp_errbuf *eb);

/* Store seq as the last applied sequence in the write transaction txn
 * (from an rp_write_fn). Returns RP_OK, RP_STORE_FULL (map full: the
 * writer grows it and runs the write again) or another mapped LMDB error. */
rp_err rp_store_applied_put(rp_store *s, MDB_txn *txn, uint64_t seq, rp_errbuf *eb);

/* The same read in a read transaction of its own. Returns as
 * rp_store_applied_get, plus the errors of rp_store_rbegin. */
rp_err rp_store_applied_read(rp_store *s, uint64_t *seq, rp_errbuf *eb);

/* Refuse writes outside the log: a store that applied a cluster log
 * (sequence > 0) may only be written by rapportd in cluster mode, or it
 * would diverge from the other nodes. Returns RP_OK (never in a cluster),
 * RP_CONFLICT with a sentence saying what to do instead, or the errors of
 * rp_store_applied_read. */
rp_err rp_store_applied_check_local(rp_store *s, rp_errbuf *eb);

#endif
