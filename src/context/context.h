/* context.h — the context card and route answer, read from the store.
 *
 * The glue between the store and the pure engine (card.h): one read
 * transaction looks the key up, reads the customer, their history up to
 * `at` and their issues, builds the card and packs it — before the
 * transaction ends, because every slice of the card points into LMDB's map.
 *
 * Outcomes of a lookup (proto/CARD.md):
 *   no customer for a phone/email/account  found:false card with the
 *                                          first_contact cue (an answer);
 *   no customer for an id                  RP_NOT_FOUND (an error);
 *   several customers (a household line)   ambiguous:true with candidates,
 *                                          and no likely reasons;
 *   one customer                           the full card.
 *
 * Where the events come from: a customer's digest (store/digest.h) when it
 * covers the request — `at` at or after its newest event, and all the
 * events the card would read — so a card reads the profile, the digest in
 * place, the issues and only the few full events it shows (recent events,
 * each reason's evidence); otherwise (an earlier `at`, no digest yet, a
 * corrupt digest) the history, which stays the reference. Both give the
 * same bytes (tests/cli/test_digest_diff.c). A route request computes only
 * what the route answer reads (RP_CARD_MODE_ROUTE).
 *
 * Memory: a card needs a few tens of KiB of working space (the history,
 * the issues, the card itself), too much for a small thread stack and too
 * often needed to malloc per request in the hot path. Callers that serve
 * many requests keep one rp_context_scratch per thread and pass it in;
 * others pass NULL and one is allocated and freed inside the call.
 */
#ifndef RP_CONTEXT_H
#define RP_CONTEXT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "context/card.h"
#include "core/error.h"
#include "model/record.h"
#include "store/store.h"

/* Issues read per customer (and per candidate). Customers have 0..5; a
 * customer with more has the first RP_CONTEXT_MAX_ISSUES in issue_id order
 * considered, and any open issue beyond them is not seen. */
#define RP_CONTEXT_MAX_ISSUES 256

/* What the key of a request is. */
typedef enum rp_context_key {
    RP_CTX_KEY_PHONE = 0, /* any common phone format; normalized by the store */
    RP_CTX_KEY_EMAIL,
    RP_CTX_KEY_ACCOUNT,   /* an external account id */
    RP_CTX_KEY_ID,        /* a customer id (aliases of merged ids resolve) */
    RP_CTX_KEY__COUNT
} rp_context_key;

/* "phone", "email", "account", "id" <-> the enum (the request parameter
 * names). parse returns false for any other word. */
const char *rp_context_key_name(rp_context_key k);
bool rp_context_key_parse(rp_str name, rp_context_key *out);

/* Per-thread working memory for card/route requests. Not thread-safe: one
 * call at a time per scratch. */
typedef struct rp_context_scratch rp_context_scratch;

/* Allocate a scratch. *out is owned by the caller (rp_context_scratch_free).
 * Returns RP_OK or RP_UNAVAILABLE (out of memory). */
rp_err rp_context_scratch_new(rp_context_scratch **out, rp_errbuf *eb);

/* Free a scratch; NULL is ok. */
void rp_context_scratch_free(rp_context_scratch *sc);

/* Build every card and route answer made with sc from the history (the
 * reference computation: a full card, the route derived from it), never
 * from the digest. For the differential test and for diagnosis. */
void rp_context_scratch_set_reference(rp_context_scratch *sc, bool on);

/* Whether the last request made with sc was answered from the digest. */
bool rp_context_scratch_used_digest(const rp_context_scratch *sc);

/* Who a card showed, for the audit log: the one customer, or every
 * candidate of an ambiguous key; n == 0 for an unknown key. The ids are
 * copies (the card's own slices die with its read transaction). */
typedef struct rp_context_shown {
    uint32_t n;
    char ids[RP_CARD_MAX_CANDIDATES][RP_ID_MAX + 1];
} rp_context_shown;

/* Pack the context card for a key as of `at` (one MessagePack map, shape
 * in proto/CARD.md).
 *   s:       an open store (its config gives weights and limits).
 *   kind:    what key is.
 *   key:     the phone/email/account/id as received (normalized here).
 *   at:      unix seconds, 0 <= at < INT64_MAX: the moment the card
 *            describes; the caller passes the current time when the
 *            request gave none.
 *   scratch: working memory, or NULL to allocate one for this call.
 *   pk:      receives exactly one map on RP_OK, nothing otherwise.
 *   shown:   when not NULL, receives who the card showed (on RP_OK).
 * Returns RP_OK (also for unknown and ambiguous phones/emails/accounts),
 * RP_BAD_REQUEST (bad kind, empty key, a key that cannot be normalized, at
 * out of range), RP_NOT_FOUND (kind id and no such customer),
 * RP_UNAVAILABLE (out of memory, reader table full), RP_INTERNAL (corrupt
 * store). */
rp_err rp_context_card(rp_store *s, rp_context_key kind, rp_str key, int64_t at,
                       rp_context_scratch *scratch, msgpack_packer *pk, rp_context_shown *shown,
                       rp_errbuf *eb);

/* Pack the IVR route answer (found, ambiguous, customer_id, language, tier,
 * priority, intent, issue_id, last_agent) for a key as of `at`. Parameters
 * as rp_context_card. An IVR must always get an answer, so for a phone key
 * an empty or unparsable number ("anonymous", "restricted") is an unknown
 * caller (found:false with defaults), not RP_BAD_REQUEST. Returns as
 * rp_context_card otherwise. */
rp_err rp_context_route(rp_store *s, rp_context_key kind, rp_str key, int64_t at,
                        rp_context_scratch *scratch, msgpack_packer *pk, rp_errbuf *eb);

#endif
