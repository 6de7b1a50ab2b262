/* digest.h — the per-customer card digest (proto/STORAGE.md "digests").
 *
 * A card reads a customer's profile, open issues and up to card_max_events
 * of history. Decoding that history (msgpack, validation, the map walk) is
 * most of a card's cost, and it is redone on every read although history
 * changes far less often than it is read. The digest is a cache of exactly
 * what the card engine (context/card.c) reads from events, kept in its own
 * table (digests: key = canonical customer id) and rewritten in the same
 * write transaction as every write that changes a customer's events:
 * event append (any timestamp order, with the retention trim it causes),
 * merge (the survivor's is rebuilt, the merged-away one's deleted), forget
 * (deleted) and import (which appends). Profile and issue writes do not
 * touch it: the card reads those records themselves.
 *
 * What it holds: the card-relevant fields of the customer's newest
 * min(events, cap) events in history order (newest first: ts descending,
 * then seq descending), cap = card_max_events when it was written (at most
 * RP_DIGEST_MAX_EVENTS). Per event: ts, seq, channel, outcome, sentiment,
 * and kind, topic, issue_id and agent as indexes into a deduplicated string
 * table. Summaries, event_ids and everything else stay in the events table:
 * the card fetches the few full events it shows (recent events, evidence)
 * by (ts, seq). A fixed little-endian binary layout, read in place from the
 * map; a version byte first. Because the digest holds the same inputs the
 * full computation reads, in the same order, a card built from it is the
 * same card byte for byte (the differential test holds it to that).
 *
 * When a digest answers: for `at` at or after its newest event's ts (so no
 * event is hidden by `at`), when it covers the events the card would read
 * (all of them, or at least card_max_events of them) — rp_digest_covers.
 * Otherwise, or when a customer has no digest yet (a store written before
 * digests existed: see rp_store_open's backfill), the card is computed from
 * the history as before; that computation stays the reference.
 */
#ifndef RP_DIGEST_H
#define RP_DIGEST_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/record.h"

typedef struct rp_store rp_store;

#define RP_DIGEST_VERSION 1
/* Entries kept at most, whatever card_max_events says: 1,000 entries are
 * 32 KB, rewritten by every append; a larger card_max_events (allowed up to
 * 100,000 for backtests) reads its cards from the history instead. */
#define RP_DIGEST_MAX_EVENTS 1000

/* A validated digest, read in place: every pointer points into the stored
 * value (valid until the transaction ends or makes another update). */
typedef struct rp_digest {
    const unsigned char *entries; /* n fixed-size entries, newest first */
    uint32_t n;                   /* entries */
    uint32_t cap;                 /* the cap it was written with */
    bool complete;                /* the entries are all of the customer's events */
    const unsigned char *strtab;  /* the string table (internal layout) */
    size_t strtab_len;
    uint32_t nstr;
    /* A customer's newest entries are kept apart, in a small head value
     * (same format, kept beside the event count), so that an append in time order
     * rewrites only the head, not the whole digest (digest.c). From
     * rp_store_digest, n counts the head's entries too (entry i < head_n is
     * head entry i, the others follow) and may exceed cap by up to a head;
     * from rp_digest_parse (one value) head_n is 0. */
    const unsigned char *head_entries, *head_strtab;
    uint32_t head_n, head_nstr;
} rp_digest;

/* Validate the bytes p[0..len) (any alignment; p may be NULL when len is
 * 0) as a digest and fill *out, whose pointers point into p. Never reads
 * outside p[0..len) and checks everything the readers below rely on
 * (version, sizes, order of entries, string indexes and lengths, enum
 * ranges, sentiment range), so a corrupt or foreign value is an error,
 * never a crash. Returns RP_OK or RP_INTERNAL ("corrupt digest: <why>"). */
rp_err rp_digest_parse(const void *p, size_t len, rp_digest *out, rp_errbuf *eb);

/* Does d answer a card as of `at` for a card reading card_max_events
 * events? True when d's entries are all the events the full computation
 * would read: d->complete or d->n >= card_max_events (and d->cap allows it),
 * and at >= the newest entry's ts. */
bool rp_digest_covers(const rp_digest *d, uint32_t card_max_events, int64_t at);

/* Entry i (< d->n) as a light event: customer_id = cid, ts, seq, channel,
 * kind, topic, issue_id, agent, outcome, has_sentiment/sentiment set
 * (slices into the digest); summary and event_id empty, has_seq false.
 * O(1). d must come from rp_digest_parse. */
void rp_digest_event(const rp_digest *d, uint32_t i, rp_str cid, rp_event *out);

/* Read the digest of canonical customer cid (not alias-resolved) in any
 * transaction; *out points into the map (valid while txn is, and in a
 * write transaction until its next update). Returns RP_OK, RP_NOT_FOUND
 * (none: a customer never appended to, a store not yet backfilled, or one
 * opened read-only before a writable open created the table — the caller
 * computes from the history), RP_INTERNAL (corrupt value: likewise), or a
 * mapped LMDB error. Nothing is allocated. */
rp_err rp_store_digest(rp_store *s, MDB_txn *txn, rp_str cid, rp_digest *out, rp_errbuf *eb);

/* Read and decode one event of canonical customer cid by its key (ts, seq)
 * into *out (customer_id = cid, ts and seq set from the key); slices point
 * into the map (valid while txn is). Returns RP_OK, RP_NOT_FOUND (no such
 * key; also for an invalid cid or ts < 0), RP_INTERNAL (corrupt value),
 * RP_UNAVAILABLE (out of memory for the decoder's zone). */
rp_err rp_store_event_at(rp_store *s, MDB_txn *txn, rp_str cid, int64_t ts, uint32_t seq,
                         rp_event *out, rp_errbuf *eb);

#endif
