/* store_int.h — the one internal header of the store. Not public API.
 *
 * The store is layered; each file uses only the ones above it in this list
 * and nothing calls back up (so there is no cycle between store files):
 *
 *   store_codec.c  codec glue: unpack/decode stored values, LMDB errors
 *   store_index.c  identity index entries and the reindex diff, event
 *                  counts, event seqs, the event_id index (evids),
 *                  retention trim, range deletes
 *   digest.c       the card digest (digest.h): format, parser, readers,
 *                  its maintenance by the writers (build, rebuild, append,
 *                  delete) and the backfill's batches
 *   store.c        lifecycle: open/close, config, read transactions, stats,
 *                  running writes (rp_store_write, rp_store_submit), the
 *                  digest backfill thread
 *   store_read.c   readers; alias resolution; loading a record to change it
 *   store_write.c  the one customer write (rp_si_customer_write) and the
 *                  put/patch/event/issue writers
 *   merge.c        merge and forget (built on the above)
 *   store_sync.c   the synchronous convenience wrappers (on top of all)
 *   idem.c         idempotency keys (their own two databases; uses only
 *                  store_codec.c)
 *
 * Lifetime rule for write functions: LMDB invalidates every pointer it
 * returned once the transaction makes another update (a dirty page may be
 * spilled or moved). So a record a write function reads and then keeps
 * using across updates is first copied to the heap (rp_si_blob) and decoded
 * from the copy; ids that come out of the map are copied into stack buffers.
 */
#ifndef RP_STORE_INT_H
#define RP_STORE_INT_H

#include <lmdb.h>
#include <msgpack.h>
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "model/record.h"
#include "store/store.h"
#include "store/writer.h"

/* The named databases, in the order they are opened. */
typedef enum rp_db {
    RP_DB_CUSTOMERS = 0,
    RP_DB_EVENTS,
    RP_DB_ISSUES,
    RP_DB_PHONES,
    RP_DB_EMAILS,
    RP_DB_ACCOUNTS,
    RP_DB_ALIASES,
    RP_DB_ALIAS_REV,
    RP_DB_EVCOUNT,
    RP_DB_META,
    RP_DB_IDEM,      /* idempotency keys (idem.c) */
    RP_DB_IDEM_EXP,  /* ... by expiry */
    RP_DB_EVIDS,     /* added after schema 1: created at a writable open */
    RP_DB_DIGESTS,   /* card digests (digest.c): likewise */
    RP_DB__COUNT
} rp_db;

struct rp_store {
    rp_config cfg;
    MDB_env *env;
    bool readonly;
    rp_writer *writer;          /* NULL when read-only */
    pthread_rwlock_t map_lock;  /* read: open read txns; write: map resize */
    MDB_dbi dbi[RP_DB__COUNT];
    int lock_fd;                /* the data directory's writer lock (lock.h); -1 read-only */
    bool absent[RP_DB__COUNT];  /* a late database a read-only open did not find */
    /* The digest backfill (store.c): its thread runs while fill_running. */
    pthread_t fill_thread;
    bool fill_started;          /* fill_thread was created (join it at close) */
    pthread_mutex_t fill_mu;    /* guards the fields below */
    bool fill_stop;             /* close asks the thread to stop */
    rp_fill_state fill_state;
    uint64_t fill_visited, fill_built;
    char fill_after[RP_ID_MAX]; /* where the next batch starts (exclusive) */
    size_t fill_after_n;
    /* Deferred digest upkeep of a bulk write (rp_store_wdigest_defer):
     * writer thread only. */
    bool digest_defer;
    rp_store_id *deferred;      /* customers whose digest waits for the flush */
    uint32_t ndeferred, deferred_cap;
};

/* An MDB_val over a const buffer (LMDB's API is not const-correct). */
static inline MDB_val rp_si_mval(const void *p, size_t n) {
    MDB_val v = {n, (void *)p};
    return v;
}

/* The bytes of an MDB_val as a slice (valid while the value is). */
static inline rp_str rp_si_vstr(const MDB_val *v) {
    return (rp_str){(const char *)v->mv_data, v->mv_size};
}

/* --- store_codec.c --------------------------------------------------------- */

/* A heap copy of an LMDB value (see the lifetime rule above). */
typedef struct rp_si_blob {
    char *p;
    size_t n;
} rp_si_blob;

/* Free b->p (NULL is fine) and clear b. */
void rp_si_blob_free(rp_si_blob *b);

/* Map an LMDB return code to rp_err with the sentence "<what>: <lmdb text>".
 * Returns the mapped code (never RP_OK for rc != 0). */
rp_err rp_si_mdb(rp_errbuf *eb, int rc, const char *what);

/* now, or the wall clock when now <= 0. */
int64_t rp_si_now(int64_t now);

/* Unpack one whole msgpack value v into o, allocating containers in z.
 * Strings in o point into v. Returns RP_OK or RP_INTERNAL "corrupt <what>". */
rp_err rp_si_unpack(const MDB_val *v, msgpack_zone *z, msgpack_object *o, const char *what,
                    rp_errbuf *eb);

/* Decode a stored customer value into out; slices point into v's memory
 * (out->id is left for the caller to set from the key). Returns RP_OK,
 * RP_INTERNAL (corrupt), RP_UNAVAILABLE (out of memory). */
rp_err rp_si_decode_customer(const MDB_val *v, rp_customer *out, rp_errbuf *eb);

/* Decode a stored event value using zone z (cleared first, so one zone
 * serves a whole history page); the caller sets customer_id, ts and seq
 * from the key. Returns as rp_si_decode_customer. */
rp_err rp_si_decode_event(const MDB_val *v, msgpack_zone *z, rp_event *out, rp_errbuf *eb);

/* The event_id of stored event value v, copied into buf (so it outlives
 * the next update); *n gets its length, 0 when the event has none.
 * Returns RP_OK, RP_INTERNAL (corrupt value), RP_UNAVAILABLE. */
rp_err rp_si_event_value_evid(const MDB_val *v, char buf[RP_ID_MAX], size_t *n, rp_errbuf *eb);

/* Decode a stored issue value (customer_id and issue_id are left for the
 * caller to set from the key), with zone z (cleared first) or, in
 * rp_si_decode_issue, a zone of its own. Returns as rp_si_decode_customer. */
rp_err rp_si_decode_issue_in(const MDB_val *v, msgpack_zone *z, rp_issue *out, rp_errbuf *eb);
rp_err rp_si_decode_issue(const MDB_val *v, rp_issue *out, rp_errbuf *eb);

/* --- store_read.c ------------------------------------------------------------ */

/* Resolve id through aliases: *canonical gets the canonical id (a slice of
 * the map, or id itself) and *record (may be NULL) the canonical customer's
 * stored value found on the way. Returns RP_OK, RP_BAD_REQUEST (bad id),
 * RP_NOT_FOUND, RP_INTERNAL (corrupt alias chain). O(hops) mdb_gets. */
rp_err rp_si_resolve_record(rp_store *s, MDB_txn *txn, rp_str id, rp_str *canonical, MDB_val *record,
                            rp_errbuf *eb);

/* Resolve id through aliases and copy the canonical id into buf.
 * Returns as rp_store_resolve. */
rp_err rp_si_resolve_copy(rp_store *s, MDB_txn *txn, rp_str id, char buf[RP_ID_MAX], rp_str *out,
                          rp_errbuf *eb);

/* Load customer `id` (canonical, no alias resolution) into a heap copy and
 * decode it from there. On RP_OK the caller frees blob; on error blob is
 * empty. Returns RP_OK, RP_NOT_FOUND, RP_INTERNAL (corrupt), RP_UNAVAILABLE. */
rp_err rp_si_load_customer(rp_store *s, MDB_txn *txn, rp_str id, rp_si_blob *blob,
                           rp_customer *out, rp_errbuf *eb);

/* Resolve id through aliases (the canonical id copied into idbuf, *cid
 * pointing there) and load that customer as rp_si_load_customer does.
 * Returns RP_OK, RP_NOT_FOUND, RP_INTERNAL, RP_UNAVAILABLE; on error blob
 * is empty. */
rp_err rp_si_load_resolved(rp_store *s, MDB_txn *txn, rp_str id, char idbuf[RP_ID_MAX], rp_str *cid,
                           rp_si_blob *blob, rp_customer *out, rp_errbuf *eb);

/* --- store_index.c ---------------------------------------------------------- */

/* The named database of the identity index of kind. */
rp_db rp_si_index_db(rp_ident_kind kind);

/* Make the index entries of nc->id match nc's identities: drop those old
 * (NULL: a new record) has and nc lacks, add nc's (existing pairs are
 * fine). O(identities^2) compares, at most 16 per kind. Returns RP_OK or a
 * mapped LMDB error. */
rp_err rp_si_reindex(rp_store *s, MDB_txn *txn, const rp_customer *old, const rp_customer *nc,
                     rp_errbuf *eb);

/* The identity list of one kind of c. */
void rp_si_idents(const rp_customer *c, rp_ident_kind kind, const rp_str **list, uint32_t *n);

/* Add (kind, key) -> id to an identity index; an existing pair is fine.
 * Returns RP_OK or a mapped LMDB error. */
rp_err rp_si_index_add(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str key, rp_str id,
                       rp_errbuf *eb);

/* Remove the pair (kind, key) -> id; a missing pair is fine. */
rp_err rp_si_index_del(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str key, rp_str id,
                       rp_errbuf *eb);

/* Read / write a customer's event count (0 when absent; setting 0 deletes
 * the entry so that forgotten or merged customers leave nothing). */
rp_err rp_si_evcount_get(rp_store *s, MDB_txn *txn, rp_str id, uint32_t *out, rp_errbuf *eb);
rp_err rp_si_evcount_set(rp_store *s, MDB_txn *txn, rp_str id, uint32_t n, rp_errbuf *eb);

/* The seq a new event of id at ts gets: 1 + the highest seq stored at
 * (id, ts), 0 when none. RP_TOO_LARGE when 2^32 events share one second. */
rp_err rp_si_event_next_seq(rp_store *s, MDB_txn *txn, rp_str id, int64_t ts, uint32_t *seq,
                            rp_errbuf *eb);

/* The event_id index (evids: id 00 event_id -> be64(ts) be32(seq)).
 * Invariant, kept by every writer in the same transaction: an entry exists
 * exactly for each stored event of id that has that event_id, and points at
 * its key; so a customer has at most one event per event_id.
 *
 * rp_si_evid_get: *at gets the (ts, seq) of id's event with event_id.
 * Returns RP_OK, RP_NOT_FOUND, RP_INTERNAL (corrupt entry) or a mapped
 * LMDB error. rp_si_evid_put: set the entry (replacing). rp_si_evid_del:
 * remove it (a missing one is fine). event_id.n is 1..RP_ID_MAX. */
rp_err rp_si_evid_get(rp_store *s, MDB_txn *txn, rp_str id, rp_str event_id, rp_cursor *at,
                      rp_errbuf *eb);
rp_err rp_si_evid_put(rp_store *s, MDB_txn *txn, rp_str id, rp_str event_id, int64_t ts,
                      uint32_t seq, rp_errbuf *eb);
rp_err rp_si_evid_del(rp_store *s, MDB_txn *txn, rp_str id, rp_str event_id, rp_errbuf *eb);

/* Apply retention to customer id's events: delete the oldest while the count
 * exceeds retention_max_events, then those older than retention_max_age_days
 * before now, oldest first, stopping at the first one that is new enough.
 * The age rule skips the event whose key is keep (keep_n 0: none). Updates
 * evcount and drops the evids entries of the events it deletes. Returns RP_OK or a mapped LMDB error. */
rp_err rp_si_trim(rp_store *s, MDB_txn *txn, rp_str id, int64_t now, const char *keep, size_t keep_n,
                  rp_errbuf *eb);

/* Delete every key of db that starts with prefix[0..n). *deleted (may be
 * NULL) gets how many. O(k log N) for k keys. */
rp_err rp_si_delete_prefix(rp_store *s, MDB_txn *txn, rp_db db, const char *prefix, size_t n,
                           uint64_t *deleted, rp_errbuf *eb);

/* Copy a canonical id into *out (NULL: nothing). id.n <= RP_ID_MAX. */
static inline void rp_si_id_out(rp_store_id *out, rp_str id) {
    if (out == NULL) return;
    assert(id.n > 0 && id.n <= sizeof out->p);
    memcpy(out->p, id.p, id.n);
    out->n = id.n;
}

/* --- digest.c ---------------------------------------------------------------- */

/* The cap digests are written with: min(card_max_events, RP_DIGEST_MAX_EVENTS). */
uint32_t rp_si_digest_cap(const rp_store *s);

/* Build the digest of canonical customer cid from its history (its newest
 * cap events, cap 1..RP_DIGEST_MAX_EVENTS) into a heap blob *out, which
 * the caller frees (rp_si_blob_free) on RP_OK. Reads only. Returns RP_OK,
 * RP_INTERNAL (a corrupt event), RP_UNAVAILABLE (out of memory) or a
 * mapped LMDB error. */
rp_err rp_si_digest_build(rp_store *s, MDB_txn *txn, rp_str cid, uint32_t cap, rp_si_blob *out,
                          rp_errbuf *eb);

/* Build cid's digest with rp_si_digest_cap and store it. A history that
 * cannot be read (a corrupt event) leaves cid without a digest, so the
 * card reads (and reports) the history: that is RP_OK. Returns RP_OK,
 * RP_UNAVAILABLE or a mapped LMDB error. */
rp_err rp_si_digest_rebuild(rp_store *s, MDB_txn *txn, rp_str cid, rp_errbuf *eb);

/* Delete cid's digest (none is fine). */
rp_err rp_si_digest_del(rp_store *s, MDB_txn *txn, rp_str cid, rp_errbuf *eb);

/* After an append stored e at (ts, seq) under cid, raised the count to
 * count_stored and ran retention: bring cid's digest up to date (insert,
 * drop past the cap, account for the trim), or rebuild it when it is
 * missing, of another cap, corrupt, or the trim was not a plain drop of
 * the oldest events. e's strings must not point into the map. Returns as
 * rp_si_digest_rebuild. */
rp_err rp_si_digest_append(rp_store *s, MDB_txn *txn, rp_str cid, const rp_event *e, int64_t ts,
                           uint32_t seq, uint32_t count_stored, rp_errbuf *eb);

/* In a deferred bulk write (s->digest_defer): note that cid's events
 * changed, for rp_store_wdigest_flush. Returns RP_OK or RP_UNAVAILABLE
 * (out of memory). */
rp_err rp_si_digest_note(rp_store *s, rp_str cid, rp_errbuf *eb);

/* One backfill batch's outcome. */
typedef struct rp_si_fill {
    char next[RP_ID_MAX]; /* the last customer visited: the next batch starts after it */
    size_t next_n;
    uint32_t visited, built; /* customers looked at, digests (re)built */
    bool done;               /* the walk reached the end: digests marked ready */
} rp_si_fill;

/* The meta state of the digests: *ready when meta "digest_ready" holds
 * this build's version and cap; otherwise after/after_n get the recorded
 * progress of an unfinished backfill of the same version and cap (0: from
 * the start). A store without the digests table is not ready. Returns
 * RP_OK or a mapped LMDB error. */
rp_err rp_si_digest_state(rp_store *s, MDB_txn *txn, bool *ready, char after[RP_ID_MAX], size_t *after_n,
                          rp_errbuf *eb);

/* Record meta "digest_ready" (this version and cap) and drop the progress. */
rp_err rp_si_digest_mark_ready(rp_store *s, MDB_txn *txn, rp_errbuf *eb);

/* One backfill batch: visit the customers after `after` (empty: from the
 * first) in id order, at most max_customers of them, stopping early once
 * the digests rebuilt amount to max_events events (at the cap); give each
 * that has no digest, an unreadable one or one of another cap a new one.
 * Records the progress in meta "digest_fill", or, at the end of the
 * customers, marks the digests ready. Writes only into *out besides txn,
 * so it may be re-run. Returns RP_OK, RP_UNAVAILABLE, RP_INTERNAL (a
 * corrupt customer key) or a mapped LMDB error. */
rp_err rp_si_digest_fill(rp_store *s, MDB_txn *txn, rp_str after, uint32_t max_customers,
                         uint32_t max_events, rp_si_fill *out, rp_errbuf *eb);

/* --- store_write.c ------------------------------------------------------------ */

/* The one customer write: validate c with rp_customer_check (the model's
 * stored-record validator), check that c->id is not an alias, load the
 * stored record under c->id (canonical; absent is a new customer), check
 * opts->has_expect, set version (stored + 1, or c->version on restore) and
 * updated_at (opts->now, or c's on restore), reindex the identity
 * difference, encode and put. opts: required (not NULL). *version_out (may
 * be NULL) gets the new version. Every failing check comes before the
 * first write. Returns RP_OK, RP_BAD_REQUEST, RP_TOO_LARGE, RP_CONFLICT
 * (alias, expect_version), RP_STORE_FULL, RP_UNAVAILABLE, RP_INTERNAL. */
rp_err rp_si_customer_write(rp_store *s, MDB_txn *txn, const rp_customer *c, const rp_put_opts *opts,
                            uint64_t *version_out, rp_errbuf *eb);

#endif
