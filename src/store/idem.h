/* idem.h — idempotency keys: the first result of a write, remembered by key.
 *
 * A client that did not get an answer (a timeout, a dropped connection, a
 * crash of either side) sends the same write again with the same key; the
 * store answers the result of the first one and changes nothing. The api
 * (src/api/ops_idem.c) checks and records keys; this module keeps them.
 *
 * Two named databases (proto/STORAGE.md):
 *
 *   idem      key  = the idempotency key (1..RP_IDEM_KEY_MAX bytes, 0x21..0x7E)
 *             val  = be64(expires) ‖ hash[16] ‖ result (the msgpack bytes
 *                    of the first reply)
 *   idem_exp  key  = be64(expires) ‖ idempotency key,  val = empty
 *
 * Scope: a key is global to the store (as Stripe's are per account): it is
 * not combined with the method or the caller's role. The hash covers the
 * method and the params, so the same key on another method or other params
 * is CONFLICT, never the other request's result.
 *
 * Both databases are written only inside the write transaction of the
 * write they protect (rp_store_idem_put), so a crash never leaves a write
 * without its key or a key without its write. A write that fails stores no
 * key: the client may fix the request and retry with the same key.
 *
 * Bounds: a key lives s->cfg.idempotency_ttl seconds. Each put first
 * deletes at most RP_IDEM_PRUNE_MAX expired keys, oldest first (idem_exp
 * order), so the cost per write is bounded however many expired at once.
 * When the table holds idempotency_max_keys live keys, the put evicts the
 * key that expires first (the oldest): writes are never refused because of
 * the table; an evicted key behaves like an expired one (a retry after it
 * applies again). The bound should be sized so that this does not happen
 * within a retry horizon (proto/METHODS.md "Idempotency").
 */
#ifndef RP_IDEM_H
#define RP_IDEM_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/record.h"
#include "store/store.h"

#define RP_IDEM_KEY_MAX 128 /* bytes of an idempotency key */
#define RP_IDEM_HASH 16     /* bytes of a request hash (SipHash-2-4-128) */
#define RP_IDEM_PRUNE_MAX 16 /* expired keys deleted per put at most */

/* Is key a well-formed idempotency key: 1..RP_IDEM_KEY_MAX bytes, each
 * printable ASCII without space (0x21..0x7E, as ids: one token in logs,
 * and HTTP would drop a header value's surrounding spaces anyway)? */
bool rp_idem_key_valid(rp_str key);

/* What rp_store_idem_get found. */
typedef struct rp_idem_hit {
    bool found;       /* a live key with this hash */
    int64_t expires;  /* unix seconds (found only) */
    rp_str result;    /* the first result's bytes: a slice of the map, valid
                         until txn ends or makes its next update */
} rp_idem_hit;

/* Look key up in txn (read or write) as of now (unix seconds). A key whose
 * expiry is <= now is absent. Returns RP_OK with out->found set when a live
 * key has the same hash (out->result: the first result), RP_OK with
 * out->found false when there is none, RP_CONFLICT when a live key has
 * another hash (another method or other params: eb says so),
 * RP_INTERNAL (a corrupt entry) or a mapped LMDB error. */
rp_err rp_store_idem_get(rp_store *s, MDB_txn *txn, rp_str key, const uint8_t hash[RP_IDEM_HASH],
                         int64_t now, rp_idem_hit *out, rp_errbuf *eb);

/* Record key -> (now + idempotency_ttl, hash, result[0..n)) in the write
 * transaction txn, after pruning expired keys and evicting for room (see
 * the top of this file). An entry already under key (an expired one) is
 * replaced. The caller checked the key with rp_store_idem_get in the same
 * transaction and key is valid (asserted). Returns RP_OK, RP_STORE_FULL
 * (map full: the writer grows it and runs the write again) or another
 * mapped LMDB error; on error the caller fails its write, so nothing of it
 * stays. */
rp_err rp_store_idem_put(rp_store *s, MDB_txn *txn, rp_str key, const uint8_t hash[RP_IDEM_HASH],
                         int64_t now, const void *result, size_t n, rp_errbuf *eb);

/* How many keys the table holds (live or not yet pruned). O(1). */
rp_err rp_store_idem_count(rp_store *s, MDB_txn *txn, uint64_t *out, rp_errbuf *eb);

#endif
