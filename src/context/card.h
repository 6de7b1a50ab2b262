/* card.h — the context-card and IVR-route engine: who is calling, and why.
 *
 * This is the pure half of the context layer. It takes one customer, their
 * events (newest first), their issues and a moment `at`, and computes:
 *
 *   - likely reasons for the contact, ranked, each resting on a signal an
 *     agent can check (an overdue promise, an unresolved contact, a changed
 *     issue, a call-driving event, an open issue, a habit);
 *   - empathy cues (stable codes with one human sentence each);
 *   - recent events, open issues and computed attributes;
 *   - the tiny IVR route answer derived from all that.
 *
 * Nothing here does I/O, reads a clock, or allocates: every output is a
 * caller-provided struct with fixed capacities, and the same inputs always
 * give the same outputs (byte for byte once encoded). Slices in the outputs
 * point into the inputs (the customer, events, issues, config), so the
 * inputs must outlive the card — in the server, the card is encoded before
 * the read transaction ends. The rules, weights and formulas are written
 * down in proto/CARD.md; card.c's header comment is the short version.
 *
 * Thread safety: every function is reentrant (gmtime_r only, no locale or
 * TZ state). Cost: O(events × distinct topics) per card, about 10 µs for
 * the default 200 events; rp_card_build uses about 16 KiB of stack for its
 * per-topic accumulators (the card itself is the caller's, ~27 KiB).
 */
#ifndef RP_CARD_H
#define RP_CARD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "model/record.h"

/* --- capacities (each: why) -------------------------------------------- */
#define RP_CARD_MAX_REASONS 50    /* the config allows card_max_reasons up to 50 */
#define RP_CARD_MAX_RECENT 100    /* the config allows card_recent_events up to 100 */
#define RP_CARD_MAX_OPEN 64       /* open issues shown; customers have 0..5 */
#define RP_CARD_MAX_CUES 12       /* one per cue code at most (9 codes) */
#define RP_CARD_MAX_CANDIDATES 16 /* = RP_LOOKUP_MAX: one household line */
#define RP_CARD_MAX_TOPICS 128    /* distinct topics scored per card (see card.c) */
#define RP_CARD_EVIDENCE_MAX 320  /* one or two sentences, with a summary excerpt */
#define RP_CARD_CUE_MAX 256       /* one sentence */
#define RP_CARD_SUMMARY_MAX 160   /* a candidate's one-line summary */

/* Reasons whose score is below this are left out: a signal decayed to
 * nothing is noise on an agent's screen (a fixed rule, not a setting). */
#define RP_CARD_MIN_SCORE 0.001

/* The priority of a caller we know nothing special about (1..5, 5 = most
 * urgent); see rp_card_priority. */
#define RP_PRIORITY_DEFAULT 3

/* The kind of a reason's strongest signal (proto/CARD.md "Scoring"). */
typedef enum rp_signal {
    RP_SIG_BROKEN_PROMISE = 0,
    RP_SIG_ISSUE_CHANGED,
    RP_SIG_OPEN_ISSUE,
    RP_SIG_UNRESOLVED_CONTACT,
    RP_SIG_CALL_DRIVER,
    RP_SIG_HABIT,
    RP_SIG__COUNT
} rp_signal;

/* "broken_promise", "issue_changed", "open_issue", "unresolved_contact",
 * "call_driver", "habit"; "?" out of range. */
const char *rp_card_signal_name(rp_signal s);

/* One ranked reason. topic/issue_id point into the inputs (or a static
 * "general"); evidence is the card's own NUL-terminated UTF-8 text. */
typedef struct rp_reason {
    rp_str topic;
    rp_str issue_id;  /* n == 0: the reason rests on no issue */
    int64_t event_ts; /* 0: the reason rests on no event */
    double score;     /* 0..1, rounded to 4 decimals */
    double sum;       /* the raw summed contribution the score comes from */
    rp_signal signal; /* the kind of its strongest signal (not encoded: for backtests) */
    char evidence[RP_CARD_EVIDENCE_MAX];
} rp_reason;

/* One empathy cue: code is a static string (see the RP_CUE_* names). */
typedef struct rp_cue {
    const char *code;
    char text[RP_CARD_CUE_MAX];
} rp_cue;

#define RP_CUE_ACCESSIBILITY "accessibility"
#define RP_CUE_LANGUAGE "language"
#define RP_CUE_BROKEN_PROMISE "broken_promise"
#define RP_CUE_REPEAT_CONTACT "repeat_contact"
#define RP_CUE_NEGATIVE_SENTIMENT "negative_sentiment"
#define RP_CUE_VIP "vip"
#define RP_CUE_LONG_TENURE "long_tenure"
#define RP_CUE_FIRST_CONTACT "first_contact"
#define RP_CUE_DO_NOT_CALL "do_not_call"

/* Computed attributes. Every one is over contacts (events of kind
 * "contact"), the customer reaching out, not over system events. */
typedef struct rp_card_attrs {
    uint32_t contacts_7d, contacts_30d; /* in (at - N days, at] */
    rp_channel last_channel;            /* RP_CH_NONE: no contact */
    rp_channel top_channel_30d;         /* RP_CH_NONE: no contact in 30 days */
    rp_str last_agent;                  /* most recent contact naming an agent */
    bool has_avg_sentiment;
    double avg_sentiment_last5;         /* over the last 5 contacts with a sentiment */
    bool has_days_since_last_contact;
    int64_t days_since_last_contact;    /* whole days, floor */
} rp_card_attrs;

/* A candidate of an ambiguous key (a shared household line). */
typedef struct rp_card_candidate {
    rp_str customer_id, name, language, tier; /* into the candidate's record */
    char summary[RP_CARD_SUMMARY_MAX];        /* "gold customer since 2019, 2 open issues" */
} rp_card_candidate;

typedef struct rp_card {
    bool found;     /* one customer answers the key */
    bool ambiguous; /* several do: candidates is set, nothing else is */
    int64_t at;
    const rp_customer *who; /* NULL unless found && !ambiguous */
    rp_reason reasons[RP_CARD_MAX_REASONS];
    uint32_t nreasons;
    rp_cue cues[RP_CARD_MAX_CUES];
    uint32_t ncues;
    const rp_event *recent[RP_CARD_MAX_RECENT]; /* newest first */
    uint32_t nrecent;
    const rp_issue *open[RP_CARD_MAX_OPEN]; /* overdue first, then latest update */
    uint32_t nopen;
    uint32_t open_total; /* open issues before the RP_CARD_MAX_OPEN cap */
    uint32_t broken_promises; /* open issues with an overdue follow-up */
    rp_card_attrs attrs;
    rp_card_candidate candidates[RP_CARD_MAX_CANDIDATES];
    uint32_t ncandidates;
    bool fetch_failed; /* a light event's full event could not be read */
} rp_card;

/* The IVR route answer. Slices point into the card's inputs or into cfg. */
typedef struct rp_route {
    bool found, ambiguous;
    rp_str customer_id; /* n == 0 when not exactly one customer */
    rp_str language;    /* the customer's, else cfg->default_language */
    rp_str tier;
    int priority;       /* 1..5, 5 = most urgent */
    rp_str intent;      /* the top likely-reason topic; n == 0: none */
    rp_str issue_id;    /* the top reason's issue; n == 0: none */
    rp_str last_agent;
} rp_route;

/* --- building ---------------------------------------------------------- */

/* Build the card of one known customer as of `at`.
 *   cfg:     weights, half-lives and thresholds (must outlive the card).
 *   who:     the customer (must outlive the card).
 *   events:  the customer's events, newest first; nevents of them. Events
 *            with ts > at are skipped (they do not exist yet), and only the
 *            first cfg->card_max_events are read. May be NULL if nevents 0.
 *   issues:  all the customer's issues, any order; issues opened after at
 *            are skipped. May be NULL if nissues is 0.
 *   at:      unix seconds, the moment the card describes.
 *   out:     filled entirely (found = true).
 * Never fails: every capacity overflow drops the least important items and
 * is documented at the cap. Cost O(nevents × topics + nissues × open). */
void rp_card_build(const rp_config *cfg, const rp_customer *who, const rp_event *events,
                   uint32_t nevents, const rp_issue *issues, uint32_t nissues, int64_t at,
                   rp_card *out);

/* What a build computes (see rp_card_build_ex). */
typedef enum rp_card_mode {
    RP_CARD_MODE_CARD = 0, /* everything */
    RP_CARD_MODE_ROUTE     /* only what rp_route_from_card reads: reasons
                              ranked without evidence text, broken_promises,
                              attrs.last_agent; no cues, no recent events, no
                              open-issue list */
} rp_card_mode;

/* Where the full events behind light events come from. A light event has
 * every field the engine scores with (ts, seq, kind, topic, channel,
 * outcome, issue_id, agent, sentiment) but no summary or event_id (the
 * digest's entries: store/digest.h). The engine reads summaries only for
 * the events it shows — recent events and each reason's evidence — and
 * asks for those through full().
 *   full: returns the full event behind light event e (the same customer,
 *         ts and seq), valid as long as the card's inputs; NULL when it
 *         cannot be read, which sets card->fetch_failed (the caller then
 *         builds from the history instead).
 *   arg:  passed to full. */
typedef struct rp_card_fetch {
    const rp_event *(*full)(void *arg, const rp_event *e);
    void *arg;
} rp_card_fetch;

/* rp_card_build with a mode and, for light events, a fetch (NULL: the
 * events are full). With the same inputs, a RP_CARD_MODE_ROUTE build gives
 * the same rp_route_from_card answer as a full one, and a build from light
 * events with a fetch gives the same card, byte for byte once encoded, as
 * one from the full events. */
void rp_card_build_ex(const rp_config *cfg, const rp_customer *who, const rp_event *events,
                      uint32_t nevents, const rp_issue *issues, uint32_t nissues, int64_t at,
                      rp_card_mode mode, const rp_card_fetch *fetch, rp_card *out);

/* The card of a key nobody answers to: found = false, one first_contact cue. */
void rp_card_unknown(int64_t at, rp_card *out);

/* Start the card of an ambiguous key (found = true, ambiguous = true, no
 * reasons: no guess is presented as fact). Add candidates with
 * rp_card_add_candidate. */
void rp_card_ambiguous(int64_t at, rp_card *out);

/* Append one candidate to an ambiguous card, with a one-line summary built
 * from its tier, tenure and open issues as of the card's `at`.
 *   c:      the candidate (must outlive the card).
 *   issues: its issues (only counted), nissues of them; may be NULL if 0.
 *   more:   true when the issue list was capped, so the count is a minimum.
 * Returns false (card unchanged) when RP_CARD_MAX_CANDIDATES are there. */
bool rp_card_add_candidate(rp_card *card, const rp_customer *c, const rp_issue *issues,
                           uint32_t nissues, bool more);

/* The route answer for a card (any of the three kinds).
 *   cfg: for the default language and VIP tiers (must outlive out). */
void rp_route_from_card(const rp_config *cfg, const rp_card *card, rp_route *out);

/* Route priority, 1..5 (5 = most urgent): 3 to start; tier rank
 * +1 for "gold", +2 for a VIP (tier in cfg->vip_tiers, "platinum" or
 * "diamond", or the "vip" flag); +1 with any broken promise; +1 for the
 * "vulnerable" flag; capped at 5. who == NULL gives RP_PRIORITY_DEFAULT. */
int rp_card_priority(const rp_config *cfg, const rp_customer *who, uint32_t broken_promises);

/* --- encoding ---------------------------------------------------------- */

/* Pack the card as one MessagePack map with the contract field names:
 * found, ambiguous, at, customer, likely_reasons, cues, recent_events,
 * open_issues, attributes, candidates (proto/CARD.md has the shape). Every
 * key is always present; absent values are nil. Cannot fail beyond the
 * packer's own write errors, which msgpack-c reports through its callback. */
void rp_card_encode(msgpack_packer *pk, const rp_card *card);

/* Pack the route answer: exactly found, ambiguous, customer_id, language,
 * tier, priority, intent, issue_id, last_agent (absent strings are nil). */
void rp_route_encode(msgpack_packer *pk, const rp_route *r);

/* --- helpers exposed for the glue and tests ----------------------------- */

/* "just now", "1 minute ago", "5 hours ago", "3 days ago" for at - ts
 * (negative ages read "just now"). Writes at most cap bytes incl. NUL. */
void rp_card_age_phrase(int64_t ts, int64_t at, char *out, size_t cap);

/* A moment as an agent reads it, in UTC: "Tue 14:00 UTC" within six days
 * before or after at, "Tue 12 Nov 14:00 UTC" within the same year,
 * "12 Nov 2023 14:00 UTC" otherwise. Writes at most cap bytes incl. NUL. */
void rp_card_when_phrase(int64_t ts, int64_t at, char *out, size_t cap);

/* The English name of a BCP 47 tag's primary language ("es-MX" ->
 * "Spanish"), or NULL when it is not in the built-in table. */
const char *rp_card_language_name(rp_str tag);

#endif
