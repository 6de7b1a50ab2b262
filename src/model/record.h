/* record.h — the record types of rapport: customer, event, issue.
 *
 * Records are plain structs of slices (rp_str): a decoded record points into
 * the buffer it was decoded from (an LMDB value, valid until its transaction
 * ends; or a request's msgpack buffer) or into an rp_arena for strings the
 * decoder had to make (normalized phones, lower-cased emails). Nothing here
 * allocates; counts are capped by the RP_MAX_* limits below so a record has
 * a fixed, small size and untrusted input cannot make it grow.
 *
 * Field names are the contract with integrators (../shared/DESIGN.md, "Field
 * names"); the codecs in codec.h map them to and from MessagePack.
 */
#ifndef RP_RECORD_H
#define RP_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h" /* rp_issue_numbers */

/* A byte slice. Not NUL-terminated. n == 0 means absent/empty. */
typedef struct rp_str {
    const char *p;
    size_t n;
} rp_str;

#define RP_STR_LIT(s) ((rp_str){(s), sizeof(s) - 1})
static inline rp_str rp_str_c(const char *s);
static inline bool rp_str_eq(rp_str a, rp_str b);
static inline bool rp_str_eqc(rp_str a, const char *c);

/* --- limits (each: why) ------------------------------------------------ */
#define RP_ID_MAX 64          /* design: ids are 1..64 bytes */
#define RP_PHONE_MAX 16       /* '+' and at most 15 digits (E.164) */
#define RP_EMAIL_MAX 254      /* RFC 5321 path limit */
#define RP_NAME_MAX 256       /* a name, a tier, a timezone... */
#define RP_LANG_MIN 2         /* BCP 47: a 2..3-letter primary subtag at least */
#define RP_LANG_MAX 35        /* BCP 47 tags the codec accepts (RFC 5646 4.4.1) */
#define RP_TOKEN_MAX 64       /* kind, topic, channel, agent, flag */
#define RP_SUMMARY_MAX 1024   /* "short": a sentence or two, not a transcript */
#define RP_NOTE_MAX 256       /* a rapport note is one line */
#define RP_PREF_KEY_MAX 64
#define RP_PREF_VAL_MAX 256
#define RP_MAX_FLAGS 32       /* flags are a handful in practice */
#define RP_MAX_PREFS 64
#define RP_MAX_NOTES 16
#define RP_MAX_PHONES 16      /* home, mobile, work, old numbers... */
#define RP_MAX_EMAILS 16
#define RP_MAX_ACCOUNTS 16
#define RP_VOCAB_WORD_MAX 32  /* a help-desk word ("5 - Planning", "In Progress"), spaces trimmed */

/* --- enums with fixed vocabularies ------------------------------------ */
typedef enum rp_channel {
    RP_CH_NONE = 0, RP_CH_PHONE, RP_CH_CHAT, RP_CH_EMAIL, RP_CH_WEB, RP_CH_STORE, RP_CH_SYSTEM,
    RP_CH__COUNT
} rp_channel;

typedef enum rp_outcome {
    RP_OUT_NONE = 0, RP_OUT_RESOLVED, RP_OUT_UNRESOLVED, RP_OUT_TRANSFERRED, RP_OUT_ABANDONED,
    RP_OUT__COUNT
} rp_outcome;

typedef enum rp_status {
    RP_ST_OPEN = 0, RP_ST_PENDING, RP_ST_RESOLVED, RP_ST__COUNT
} rp_status;

typedef enum rp_severity {
    RP_SEV_NONE = 0, RP_SEV_LOW, RP_SEV_MEDIUM, RP_SEV_HIGH, RP_SEV_CRITICAL, RP_SEV__COUNT
} rp_severity;

/* Names of the enum values as they appear on the wire ("phone", "resolved", ...). */
const char *rp_channel_name(rp_channel c);
const char *rp_outcome_name(rp_outcome o);
const char *rp_status_name(rp_status s);
const char *rp_severity_name(rp_severity s);
/* Parse; return false when the word is not in the vocabulary. */
bool rp_channel_parse(rp_str s, rp_channel *out);
bool rp_outcome_parse(rp_str s, rp_outcome *out);
bool rp_status_parse(rp_str s, rp_status *out);
bool rp_severity_parse(rp_str s, rp_severity *out);

/* --- issue vocabularies of help desks and CRMs ---------------------------
 * Issue status and severity accept the words real systems send (Zendesk,
 * Freshdesk, Salesforce, ServiceNow, Jira, P1..P5; the table is in record.c
 * and proto/RECORDS.md "Issue vocabularies") and map each to one of the
 * levels above, which is what ranking and routing look at. A word is
 * matched ASCII case-insensitively, with surrounding spaces and tabs
 * trimmed, runs of inner spaces (or '_') taken as one space, and spaces
 * around '-' ignored ("1 - Critical" = "1-critical"). A bare number ("4",
 * or the integer 4 given to rp_*_number) is read per `numbers`.
 *
 *   word:    the value as sent (need not be NUL-terminated; any bytes).
 *   numbers: how a bare number reads (setting issue_numbers).
 *   out:     the level; written only on success.
 *   raw:     may be NULL; on success the word as sent with surrounding
 *            spaces trimmed (a slice of word, so it lives as long as word),
 *            or {NULL, 0} when that is exactly the level's name ("high"),
 *            so records written by clients that send the levels stay as
 *            they were.
 * Return false when the word is not in the vocabulary (then out and raw are
 * untouched). No errors otherwise; nothing is allocated. */
bool rp_severity_from_word(rp_str word, rp_issue_numbers numbers, rp_severity *out, rp_str *raw);
bool rp_status_from_word(rp_str word, rp_issue_numbers numbers, rp_status *out, rp_str *raw);
/* The same for a number given as a msgpack integer. raw (may be NULL)
 * receives the number's decimal text from a static table. */
bool rp_severity_from_number(uint64_t n, rp_issue_numbers numbers, rp_severity *out, rp_str *raw);
bool rp_status_from_number(uint64_t n, rp_issue_numbers numbers, rp_status *out, rp_str *raw);

/* --- records ------------------------------------------------------------ */
typedef struct rp_pref {
    rp_str key, value;
} rp_pref;

typedef struct rp_customer {
    rp_str id;
    rp_str name, preferred_name, language, timezone, tier;
    int64_t customer_since; /* unix seconds; 0 = unknown */
    rp_str flags[RP_MAX_FLAGS];
    uint32_t nflags;
    rp_pref prefs[RP_MAX_PREFS];
    uint32_t nprefs;
    rp_str notes[RP_MAX_NOTES]; /* rapport_notes */
    uint32_t nnotes;
    rp_str phones[RP_MAX_PHONES]; /* E.164, "+14155551212" */
    uint32_t nphones;
    rp_str emails[RP_MAX_EMAILS]; /* lower-cased */
    uint32_t nemails;
    rp_str accounts[RP_MAX_ACCOUNTS];
    uint32_t naccounts;
    uint64_t version;   /* 1 on first put, +1 per write */
    int64_t updated_at; /* unix seconds of the last write */
} rp_customer;

typedef struct rp_event {
    rp_str customer_id;
    int64_t ts; /* unix seconds, >= 0 */
    uint32_t seq; /* tie-breaker among events of one customer at one ts (store-assigned) */
    bool has_seq; /* seq was given (an exported event being imported; wire only) */
    rp_channel channel;
    rp_str kind, topic, summary, agent, issue_id;
    rp_str event_id; /* the source system's id of the event (an id); {NULL, 0}: none */
    rp_outcome outcome;
    bool has_sentiment;
    double sentiment; /* -1.0 .. 1.0 when has_sentiment */
} rp_event;

typedef struct rp_issue {
    rp_str customer_id, issue_id;
    rp_str topic, summary;
    rp_status status;
    rp_severity severity;
    /* The word the source system sent, when it is not the level's own name
     * ("hold", "urgent", "1 - Critical"); {NULL, 0} otherwise. For display
     * only: status and severity above are what everything ranks by. */
    rp_str status_raw, severity_raw;
    int64_t opened_at, updated_at;
    int64_t follow_up_due; /* 0 = no promise */
    uint32_t contacts;
} rp_issue;

/* --- an arena for strings a decoder derives ----------------------------- */
typedef struct rp_arena {
    char *base;
    size_t cap, used;
} rp_arena;

/* Copy n bytes into the arena. Returns NULL when it does not fit (the
 * arena is unchanged). */
char *rp_arena_put(rp_arena *a, const void *p, size_t n);

static inline rp_str rp_str_c(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return (rp_str){s, n};
}
static inline bool rp_str_eq(rp_str a, rp_str b) {
    if (a.n != b.n) return false;
    for (size_t i = 0; i < a.n; i++)
        if (a.p[i] != b.p[i]) return false;
    return true;
}
static inline bool rp_str_eqc(rp_str a, const char *c) { return rp_str_eq(a, rp_str_c(c)); }

#endif
