/* codec.h — records to and from MessagePack (wire params and stored values).
 *
 * One codec serves both the wire and the disk: a record is a msgpack map
 * keyed by the contract field names (proto/RECORDS.md has the tables and
 * golden vectors; the LMDB key layout is in proto/STORAGE.md). Stored events and issues leave out the fields their LMDB
 * key already holds (customer_id, ts, seq / customer_id, issue_id).
 *
 * Decoding (rp_*_decode) takes a msgpack_object that the caller has already
 * bounded (the network layer walks untrusted bytes before msgpack-c sees
 * them; stored values were written by us but may be corrupted, so every type
 * and length is still checked and a mismatch is RP_INTERNAL "corrupt record").
 *
 *   mode RP_DEC_WIRE:   untrusted input. Unknown fields are BAD_REQUEST (a
 *                       typo must not be dropped silently); every value is
 *                       validated; phones/emails are normalized into arena.
 *                       Errors: RP_BAD_REQUEST, RP_TOO_LARGE.
 *   mode RP_DEC_STORED: our own bytes. Unknown fields are skipped (forward
 *                       compatibility); errors are RP_INTERNAL.
 *
 * Decoded slices point into the msgpack_object's memory (and arena): valid
 * while those live. Nothing is allocated.
 */
#ifndef RP_CODEC_H
#define RP_CODEC_H

#include <msgpack.h>

#include "core/error.h"
#include "model/record.h"

typedef enum rp_dec_mode { RP_DEC_WIRE = 0, RP_DEC_STORED = 1 } rp_dec_mode;

/* Encoding variants. */
#define RP_ENC_WIRE 0u   /* every field, for clients */
#define RP_ENC_STORED 1u /* without the fields held by the record's key */
#define RP_ENC_SEQ 2u    /* events, with RP_ENC_WIRE: also `seq` (export: what
                            identifies an event without an event_id) */

/* Customer. On RP_DEC_WIRE, `id` is required; version/updated_at are
 * accepted (an export round-trips) and the store decides what to keep.
 * default_country: for phone normalization (may be NULL in STORED mode). */
rp_err rp_customer_decode(const msgpack_object *o, rp_dec_mode mode, const char *default_country,
                          rp_arena *arena, rp_customer *out, rp_errbuf *eb);
void rp_customer_encode(msgpack_packer *pk, const rp_customer *c, unsigned enc);

/* Apply a JSON-merge-patch-style map to c (RFC 7396 semantics): a field
 * present replaces; nil clears it; `preferences` merges key by key (nil
 * deletes a key); arrays replace whole. `id`, `version`, `updated_at` in the
 * patch are BAD_REQUEST ("cannot patch id"). Phones/emails normalized into
 * arena. Errors: RP_BAD_REQUEST, RP_TOO_LARGE. */
rp_err rp_customer_patch(rp_customer *c, const msgpack_object *patch, const char *default_country,
                         rp_arena *arena, rp_errbuf *eb);

/* Event. RP_DEC_WIRE requires customer_id, ts, channel, kind; topic,
 * summary, outcome (default none), sentiment, agent, issue_id, event_id
 * (an id) optional; `seq` (0..2^32-1) sets seq and has_seq — only import
 * takes it (an exported event), and event.append refuses it.
 * RP_DEC_STORED fills the fields in the value only (a `seq` there is
 * ignored); the caller sets customer_id, ts and seq from the key.
 * rp_event_encode writes event_id last and only when set, so events
 * without one keep their bytes; `seq` only with RP_ENC_SEQ. */
rp_err rp_event_decode(const msgpack_object *o, rp_dec_mode mode, rp_event *out, rp_errbuf *eb);
void rp_event_encode(msgpack_packer *pk, const rp_event *e, unsigned enc);

/* Issue. RP_DEC_WIRE requires customer_id, issue_id; status defaults to
 * open, contacts to 0, times to 0 (the store fills opened_at/updated_at).
 * RP_DEC_STORED: the caller sets customer_id and issue_id from the key.
 *
 * `status` and `severity` take the help-desk words of record.h
 * (rp_*_from_word: "hold", "urgent", "P1", "1 - Critical", any case) or a
 * bare number (string or integer) read per `numbers` (the server passes its
 * issue_numbers setting). The level goes to status/severity, the word as
 * sent to status_raw/severity_raw when it is not the level's own name. A
 * client may also send `status_raw`/`severity_raw` (an export carries
 * them): beside a level it is the display word and must be a help-desk
 * word in some reading; alone it is read as if sent in the level field.
 * Errors: RP_BAD_REQUEST naming the field and the value (unknown word,
 * number outside the reading, wrong type), RP_TOO_LARGE; STORED:
 * RP_INTERNAL. Raw words point into o's memory (or a static table for
 * integers); nothing is allocated. */
rp_err rp_issue_decode_as(const msgpack_object *o, rp_dec_mode mode, rp_issue_numbers numbers,
                          rp_issue *out, rp_errbuf *eb);
/* rp_issue_decode_as with RP_ISSUE_NUMBERS_SERVICENOW, the default of the
 * issue_numbers setting (the store's reads use it: stored records hold
 * levels, never bare numbers, so the reading does not matter there). */
rp_err rp_issue_decode(const msgpack_object *o, rp_dec_mode mode, rp_issue *out, rp_errbuf *eb);
void rp_issue_encode(msgpack_packer *pk, const rp_issue *i, unsigned enc);

/* The stored-record validators: whether a record built in memory (by a
 * wire decode, a patch, a merge or a C caller) may be written, i.e. whether
 * rp_*_decode(RP_DEC_STORED) will read back what rp_*_encode(RP_ENC_STORED)
 * makes of it, and whether the store's key layout can hold its ids and
 * identities. They check the limits of record.h — the same ones the
 * decoders use, so there is one place per limit — plus the shapes the
 * identity indexes rest on: ids (rp_id_check), phones ("+" and digits,
 * E.164 length), emails (an '@', normalized length), accounts (ids).
 * Text syntax (UTF-8, normalization) is the wire decoder's job and is not
 * re-checked. c/e/i: the record (not modified); eb: the sentence on error.
 * Return RP_OK, RP_TOO_LARGE (a count or a length over its limit) or
 * RP_BAD_REQUEST (a missing or malformed field). O(fields). */
rp_err rp_customer_check(const rp_customer *c, rp_errbuf *eb);
/* Event: ts >= 0, a channel, a kind, a valid outcome and sentiment, ids
 * (issue_id, event_id) when set; the
 * customer_id and seq are not checked (the store sets them). */
rp_err rp_event_check(const rp_event *e, rp_errbuf *eb);
/* Issue: issue_id, status, severity and lengths; customer_id is not
 * checked (the store resolves it). */
rp_err rp_issue_check(const rp_issue *i, rp_errbuf *eb);

/* Helpers for handlers decoding request params (maps with string keys). */
/* Find key in map o; NULL when o is not a map or the key is absent. O(n). */
const msgpack_object *rp_mp_get(const msgpack_object *o, const char *key);
/* Read a string field. Returns RP_OK, RP_NOT_FOUND when absent (out
 * untouched), RP_BAD_REQUEST when not a string. */
rp_err rp_mp_str(const msgpack_object *o, const char *key, rp_str *out, rp_errbuf *eb);
/* Read an integer field (positive or negative fixint/int). Same returns. */
rp_err rp_mp_int(const msgpack_object *o, const char *key, int64_t *out, rp_errbuf *eb);
/* The msgpack type of o in words ("a string", "an integer", "nil"...), for
 * "must be X (got Y)" sentences. Never NULL. */
const char *rp_mp_type_name(const msgpack_object *o);
/* Pack a slice as a msgpack str. */
void rp_mp_pack_str(msgpack_packer *pk, rp_str s);
void rp_mp_pack_cstr(msgpack_packer *pk, const char *s);

/* Append printf-style text to sb (a text buffer here, e.g. the Prometheus
 * text of /metrics); one call's output is cut at 511 bytes. */
void rp_sbuf_printf(msgpack_sbuffer *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
