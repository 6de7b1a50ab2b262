/* store.h — the customer store: LMDB environment, records, indexes.
 *
 * One LMDB environment holds named databases (layout in proto/STORAGE.md):
 * customers, events, issues, phones, emails, accounts, aliases, alias_rev,
 * evcount, meta, idem, idem_exp (idempotency keys: store/idem.h), evids
 * (event_id index), digests (card digests: store/digest.h). Every operation is one transaction: reads run in their own
 * read transaction (MVCC, never waiting for writes); writes run through the
 * group-committing writer (writer.h), so a write returns only after its
 * commit.
 *
 * Read API: open a read transaction with rp_store_rbegin, call any number of
 * rp_store_* readers on it, close it with rp_store_rend. Every slice a reader
 * returns points into LMDB's map: valid until rp_store_rend.
 *
 * Write API: the rp_store_w* functions run inside a write transaction and
 * must be called from a rp_write_fn (writer.h). rp_store_write() runs one
 * write fn synchronously; rp_store_submit() enqueues one asynchronously
 * (the server's path). The convenience wrappers rp_store_put_customer()...
 * (store_sync.c) wrap the common single operations for the CLI and tests.
 *
 * Customer ids are resolved through aliases everywhere: after a merge the old
 * id answers as the survivor.
 */
#ifndef RP_STORE_H
#define RP_STORE_H

#include <lmdb.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "model/record.h"
#include "store/writer.h"

typedef struct rp_store rp_store;

/* Which identity index a lookup uses. */
typedef enum rp_ident_kind { RP_IDENT_PHONE = 0, RP_IDENT_EMAIL, RP_IDENT_ACCOUNT } rp_ident_kind;

/* A position in a customer's history: events strictly older than (ts, seq).
 * Its text form "TS.SEQ" is the wire layer's (api/cursor.h). */
typedef struct rp_cursor {
    int64_t ts;
    uint32_t seq;
} rp_cursor;

/* A canonical customer id copied out of a write. Writers resolve aliases
 * and report which record holds the data now, so callers never resolve a
 * second time; the id is copied because LMDB's slices do not outlive the
 * transaction's next update. */
typedef struct rp_store_id {
    char p[RP_ID_MAX];
    size_t n;
} rp_store_id;

/* The id held by id as a slice (valid while *id is). */
static inline rp_str rp_store_id_str(const rp_store_id *id) { return (rp_str){id->p, id->n}; }

/* Reader flags. */
#define RP_STORE_CANONICAL 0x1u /* id is canonical (from rp_store_get_customer,
                                   rp_store_lookup or a resolve in the same
                                   transaction): skip alias resolution */

#define RP_LOOKUP_MAX 16 /* candidates returned for one key (household lines) */

typedef struct rp_lookup {
    rp_str ids[RP_LOOKUP_MAX]; /* canonical customer ids (aliases resolved) */
    uint32_t n;                /* how many in ids */
    bool truncated;            /* more than RP_LOOKUP_MAX candidates exist */
    char key[RP_EMAIL_MAX + 1];/* the normalized key that was looked up */
} rp_lookup;

/* The digest backfill of a store opened for writing (rp_store_open). */
typedef enum rp_fill_state {
    RP_FILL_IDLE = 0, /* none needed: the digests were ready at open (or read-only) */
    RP_FILL_RUNNING,  /* walking the customers */
    RP_FILL_DONE,     /* finished: every customer was given a current digest */
    RP_FILL_FAILED,   /* stopped by an error (the next writable open resumes it) */
    RP_FILL_STOPPED,  /* stopped by rp_store_close */
} rp_fill_state;

/* "idle", "running", "done", "failed", "stopped"; "?" out of range. */
const char *rp_store_fill_state_name(rp_fill_state s);

typedef struct rp_store_stats {
    uint64_t customers, events, issues, aliases;
    uint64_t phones, emails, accounts;
    uint64_t digests;             /* entries of the digests table */
    bool digests_ready;           /* meta says every customer has a current digest */
    rp_fill_state digest_fill;    /* the backfill of this open */
    uint64_t digest_fill_visited; /* customers it looked at so far */
    uint64_t digest_fill_built;   /* digests it (re)built so far */
    uint64_t map_size, map_used, map_max; /* bytes */
    rp_writer_stats writer;
} rp_store_stats;

/* Options for customer writes. */
typedef struct rp_put_opts {
    bool has_expect;          /* check the stored version first */
    uint64_t expect_version;  /* 0 = "must not exist yet" */
    bool restore;             /* import: keep c->version/updated_at as given */
    int64_t now;              /* unix seconds: updated_at, retention clock */
} rp_put_opts;

/* --- lifetime ------------------------------------------------------------ */

/* Open (creating if needed) the store in cfg->data_dir with cfg's map,
 * durability and writer settings, clear stale reader slots, and start the
 * writer; when meta says the card digests are not ready for this version
 * and card_max_events, also start their backfill thread (digest.h; stats
 * report it; rp_store_close stops it). cfg is copied. Returns RP_OK, RP_BAD_REQUEST (bad settings),
 * RP_FORBIDDEN (permissions), RP_INTERNAL (corrupt/incompatible store), or
 * an errno-mapped code. *out is set only on success. */
rp_err rp_store_open(const rp_config *cfg, rp_store **out, rp_errbuf *eb);

/* Open read-only (MDB_RDONLY env, no writer): for `rapport --data` readers,
 * safe while rapportd has the same directory open. Writes return
 * RP_FORBIDDEN. Returns like rp_store_open; RP_NOT_FOUND if no store. */
rp_err rp_store_open_readonly(const rp_config *cfg, rp_store **out, rp_errbuf *eb);

/* Stop the digest backfill (after its current batch), stop the writer
 * (finishing queued writes), flush and close. NULL is ok. */
void rp_store_close(rp_store *s);

const rp_config *rp_store_config(const rp_store *s);
MDB_env *rp_store_env(rp_store *s);

/* --- read transactions ---------------------------------------------------- */

/* Begin a read transaction. Returns RP_OK, RP_UNAVAILABLE (reader table
 * full) or RP_INTERNAL. Holds the map lock for reading until rp_store_rend. */
rp_err rp_store_rbegin(rp_store *s, MDB_txn **txn, rp_errbuf *eb);
void rp_store_rend(rp_store *s, MDB_txn *txn);

/* --- readers (any transaction, read or write) ------------------------------ */

/* Resolve id through aliases to the canonical id (slice valid until txn
 * ends, or id itself). Returns RP_OK, or RP_NOT_FOUND when neither a
 * customer nor an alias has that id. */
rp_err rp_store_resolve(rp_store *s, MDB_txn *txn, rp_str id, rp_str *canonical, rp_errbuf *eb);

/* Get a customer (alias-resolved): out->id is the canonical id (a slice of
 * the map: pass it to the other readers with RP_STORE_CANONICAL). Returns
 * RP_OK, RP_NOT_FOUND, RP_BAD_REQUEST (bad id), RP_INTERNAL (corrupt
 * record). */
rp_err rp_store_get_customer(rp_store *s, MDB_txn *txn, rp_str id, rp_customer *out, rp_errbuf *eb);

/* Look up customers by phone / email / account id. raw is normalized first
 * (phones with the configured default country). No candidates is RP_OK
 * with n == 0. Returns RP_BAD_REQUEST when raw cannot be normalized. */
rp_err rp_store_lookup(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str raw, rp_lookup *out,
                       rp_errbuf *eb);

/* History, newest first: events of customer id older than *before (NULL:
 * from the newest), at most max into out[]. *n gets the count; when more
 * exist, *more is true and *next is the cursor for the next page. flags:
 * 0 (id may be an alias: resolved) or RP_STORE_CANONICAL (not resolved; a
 * canonical id without a customer has no events). Every event's
 * customer_id is the canonical id. Returns RP_OK, RP_NOT_FOUND (no such
 * customer; without RP_STORE_CANONICAL only), RP_INTERNAL. */
rp_err rp_store_history(rp_store *s, MDB_txn *txn, rp_str id, unsigned flags, const rp_cursor *before,
                        uint32_t max,
                        rp_event *out, uint32_t *n, bool *more, rp_cursor *next, rp_errbuf *eb);

/* Issues of a customer, in issue_id order, at most max into out[].
 * *more is set when there are more. flags as rp_store_history. Returns
 * RP_OK, RP_NOT_FOUND (without RP_STORE_CANONICAL only). */
rp_err rp_store_issues(rp_store *s, MDB_txn *txn, rp_str id, unsigned flags, uint32_t max, rp_issue *out,
                       uint32_t *n, bool *more, rp_errbuf *eb);

/* One issue. Returns RP_OK, RP_NOT_FOUND. */
rp_err rp_store_get_issue(rp_store *s, MDB_txn *txn, rp_str id, rp_str issue_id, rp_issue *out,
                          rp_errbuf *eb);

/* Visit every customer in id order (export). fn returns false to stop.
 * after: resume after this id (NULL/empty = from the start). */
rp_err rp_store_scan_customers(rp_store *s, MDB_txn *txn, rp_str after,
                               bool (*fn)(const rp_customer *c, void *arg), void *arg,
                               rp_errbuf *eb);

/* Visit the aliases of canonical customer id (the merged-away ids that
 * answer as it: alias_rev[id]) in id byte order; fn gets each alias id (a
 * slice of the map, valid while txn is) and returns false to stop. id is
 * not resolved: an alias or unknown id has none. Returns RP_OK,
 * RP_INTERNAL (corrupt alias_rev entry) or a mapped LMDB error. */
rp_err rp_store_aliases_of(rp_store *s, MDB_txn *txn, rp_str id,
                           bool (*fn)(rp_str alias, void *arg), void *arg, rp_errbuf *eb);

/* Counts and sizes. Opens its own read transaction. */
rp_err rp_store_stats_get(rp_store *s, rp_store_stats *out, rp_errbuf *eb);

/* --- writers (inside a write transaction: call from a rp_write_fn) -------- */

/* Every writer of a customer's data takes canon_out (may be NULL): on RP_OK
 * it gets the canonical id the data was written under (the survivor for an
 * alias), so the caller need not resolve again. */

/* Create or replace a customer (all fields as given; identities reindexed).
 * c is validated with the model's stored-record validator
 * (rp_customer_check). Version becomes stored+1 (1 when new) unless
 * opts->restore. opts may be NULL (no expectation, now = the clock).
 * *version_out (may be NULL) gets the new version; *canon_out c->id (a put
 * on an alias is a conflict). Returns RP_OK, RP_CONFLICT (expect_version
 * differs, or c->id is an alias), RP_BAD_REQUEST, RP_TOO_LARGE,
 * RP_STORE_FULL, RP_UNAVAILABLE, RP_INTERNAL. */
rp_err rp_store_wput_customer(rp_store *s, MDB_txn *txn, const rp_customer *c,
                              const rp_put_opts *opts, uint64_t *version_out, rp_store_id *canon_out,
                              rp_errbuf *eb);

/* Merge-patch a stored customer (codec.h rp_customer_patch semantics); id
 * may be an alias. Returns as wput, plus RP_NOT_FOUND. */
rp_err rp_store_wpatch_customer(rp_store *s, MDB_txn *txn, rp_str id, const msgpack_object *patch,
                                const rp_put_opts *opts, uint64_t *version_out,
                                rp_store_id *canon_out, rp_errbuf *eb);

/* Remove the customer and every trace: profile, events, issues, identity
 * index entries, event_id entries, event count, and aliases pointing to it. id may be an
 * alias (the survivor is forgotten). canon_out (may be NULL) gets the id
 * that was erased. Returns RP_OK, RP_NOT_FOUND. */
rp_err rp_store_wforget(rp_store *s, MDB_txn *txn, rp_str id, rp_store_id *canon_out, rp_errbuf *eb);

/* Fold customer `from` into `into`: identities, events and issues move,
 * empty profile fields of `into` are filled from `from`, flags/notes/prefs
 * are united (into wins), `from` becomes an alias of `into`. Every failing
 * decision comes before the first write. *version_out (may be NULL) gets
 * the survivor's new version, *canon_out its canonical id. Returns RP_OK,
 * RP_NOT_FOUND, RP_CONFLICT (same customer), RP_TOO_LARGE (identities,
 * lists or events would exceed the limits), RP_BAD_REQUEST (the merged
 * record fails the validator), RP_STORE_FULL, RP_INTERNAL.
 * An event of `from` whose event_id `into` already has is a duplicate of
 * `into`'s: it is dropped (into's is kept) and counted in *dropped_out
 * (may be NULL). */
rp_err rp_store_wmerge(rp_store *s, MDB_txn *txn, rp_str from, rp_str into, int64_t now,
                       uint64_t *version_out, uint32_t *dropped_out, rp_store_id *canon_out,
                       rp_errbuf *eb);

/* Record alias_id as a merged-away id of survivor_id, as a merge leaves it
 * (import restores exported aliases with it). survivor_id is resolved
 * through aliases, so the stored alias names the canonical customer (chains
 * stay one hop). aliases[alias_id] and alias_rev[canonical] are written in
 * txn; nothing else changes (no customer's version or updated_at). An
 * existing alias to the same canonical customer is RP_OK and writes
 * nothing (idempotent). Returns RP_OK, RP_BAD_REQUEST (an invalid id),
 * RP_NOT_FOUND (survivor_id is neither a customer nor an alias: "alias
 * target 'X' does not exist (import the customer first)"), RP_CONFLICT
 * (alias_id is a live customer, or already an alias of another customer;
 * the sentence names it), RP_STORE_FULL, RP_INTERNAL. */
rp_err rp_store_wput_alias(rp_store *s, MDB_txn *txn, rp_str alias_id, rp_str survivor_id,
                           rp_errbuf *eb);

/* Append an event (customer must exist; alias resolved). Assigns seq: the
 * next free one at e->ts, or e->seq when e->has_seq (import) and that key
 * is free. Idempotent: when the customer already has an event with
 * e->event_id — or, for an event without one that carries its seq, the
 * same event bytes at (ts, seq) — nothing is written and *dup_out is true.
 * Trims the customer's oldest events beyond retention_max_events and older
 * than retention_max_age_days before `now`. *at_out (may be NULL) gets the
 * (ts, seq) of the stored event (the earlier one for a duplicate);
 * *dup_out (may be NULL) whether it was already there. Returns RP_OK,
 * RP_NOT_FOUND, RP_BAD_REQUEST (ts < 0, bad event_id), RP_TOO_LARGE,
 * RP_STORE_FULL, RP_UNAVAILABLE, RP_INTERNAL. */
rp_err rp_store_wappend_event(rp_store *s, MDB_txn *txn, const rp_event *e, int64_t now,
                              rp_cursor *at_out, bool *dup_out, rp_store_id *canon_out,
                              rp_errbuf *eb);

/* Create or replace an issue (customer must exist). opened_at defaults to
 * the stored one or now; updated_at to now when 0. Returns RP_OK,
 * RP_NOT_FOUND. */
rp_err rp_store_wput_issue(rp_store *s, MDB_txn *txn, const rp_issue *i, int64_t now,
                           rp_store_id *canon_out, rp_errbuf *eb);

/* Bulk writes (import): after rp_store_wdigest_defer, the event appends
 * of this writer thread note their customer instead of rewriting its
 * digest each time, and rp_store_wdigest_flush — in the same transaction,
 * before it commits — rebuilds each noted customer's digest once from its
 * history: one history read per customer instead of one digest rewrite
 * per event (an import of 200-event customers appends 200 times). Every
 * other writer keeps its digest upkeep. rp_store_wdigest_drop ends the
 * deferral without rebuilding, for a transaction that will abort. Writer
 * thread only; flush returns RP_OK, RP_UNAVAILABLE or a mapped LMDB
 * error, and ends the deferral either way. */
void rp_store_wdigest_defer(rp_store *s);
rp_err rp_store_wdigest_flush(rp_store *s, MDB_txn *txn, rp_errbuf *eb);
void rp_store_wdigest_drop(rp_store *s);

/* --- running writes ---------------------------------------------------------- */

/* Run fn(txn, arg, eb) as one write and wait for its commit. */
rp_err rp_store_write(rp_store *s, rp_write_fn fn, void *arg, rp_errbuf *eb);

/* Enqueue a write; req->done is called on the writer thread after commit.
 * Returns RP_OK or RP_UNAVAILABLE (queue full / closing / read-only). */
rp_err rp_store_submit(rp_store *s, rp_write_req *req);

/* Convenience: one synchronous operation each (for the CLI and tests), the
 * w* writer above run by rp_store_write; arguments and returns as there. */
rp_err rp_store_put_customer(rp_store *s, const rp_customer *c, const rp_put_opts *opts,
                             uint64_t *version_out, rp_errbuf *eb);
rp_err rp_store_append_event(rp_store *s, const rp_event *e, int64_t now, rp_cursor *at_out,
                             rp_errbuf *eb);
rp_err rp_store_put_issue(rp_store *s, const rp_issue *i, int64_t now, rp_errbuf *eb);
rp_err rp_store_forget(rp_store *s, rp_str id, rp_errbuf *eb);
rp_err rp_store_merge(rp_store *s, rp_str from, rp_str into, int64_t now, uint64_t *version_out,
                      rp_errbuf *eb);
rp_err rp_store_put_alias(rp_store *s, rp_str alias_id, rp_str survivor_id, rp_errbuf *eb);

#endif
