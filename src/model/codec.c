/* codec.c — customers, events and issues to and from MessagePack.
 *
 * Design. A record is a msgpack map keyed by the contract field names
 * (../shared/DESIGN.md "Field names"; proto/RECORDS.md has the tables).
 * Each record type has a table of its field names in wire order; the
 * encoder writes the fields in that order (so bytes are deterministic and
 * the golden vectors in proto/vectors/ stay stable) and the decoder walks
 * the map once, looks each key up in the table (a linear scan over at most
 * 15 short names) and hands the value to that field's parser.
 *
 * One set of field parsers serves both decode modes; a small context (dec)
 * carries the mode:
 *   - RP_DEC_WIRE: untrusted. Unknown keys are BAD_REQUEST (except "type",
 *     which NDJSON lines carry), duplicate keys are BAD_REQUEST, every
 *     string is validated (ident.c), phones and emails are normalized into
 *     the caller's arena, identities are de-duplicated.
 *   - RP_DEC_STORED: our own bytes, read on every context card, so only what
 *     keeps later code safe is checked: types, counts and byte lengths
 *     (other modules size buffers by the RP_*_MAX limits). UTF-8 and
 *     normalization are not re-checked. Unknown keys are skipped; any
 *     problem is RP_INTERNAL "corrupt stored record: ...".
 * Every msgpack_object is type-checked before its union is read, so a
 * decoder never crashes on any object msgpack-c can produce.
 *
 * rp_customer_patch reuses the customer parsers on a copy of the record and
 * commits the copy only when the whole patch is valid.
 *
 * Error sentences never echo raw client bytes: values are shown through
 * printable(), which keeps printable ASCII and masks the rest, because the
 * sentence goes back to clients inside JSON.
 */
#include "model/codec.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/ident.h"

/* ---- decoding context and error helpers ---------------------------------- */

typedef struct dec {
    rp_dec_mode mode;
    const char *country; /* default country for phones (WIRE) */
    rp_arena *arena;     /* normalized phones and emails go here (WIRE) */
    rp_errbuf *eb;
    const char *what;    /* "customer", "event", "issue", "patch": for sentences */
    rp_issue_numbers numbers; /* how a bare issue severity/status number reads (WIRE) */
} dec;

/* Record an error. In STORED mode every code becomes RP_INTERNAL and the
 * sentence says the stored record is corrupt. Returns the code recorded. */
static rp_err dec_fail(const dec *d, rp_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rp_err dec_fail(const dec *d, rp_err code, const char *fmt, ...) {
    char msg[RP_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (d->mode == RP_DEC_STORED)
        return rp_errf(d->eb, RP_INTERNAL, "corrupt stored record: %s: %s", d->what, msg);
    return rp_errf(d->eb, code, "%s", msg);
}

/* Room for printable(): 40 shown bytes, "...", NUL. */
#define SHOW_MAX 48

/* A client value made safe for an error sentence: printable ASCII is kept,
 * any other byte becomes '?', and more than 40 bytes end in "...". Returns
 * buf. */
static const char *printable(const char *p, size_t n, char buf[SHOW_MAX]) {
    size_t k = n > 40 ? 40 : n;
    for (size_t i = 0; i < k; i++) {
        unsigned char b = (unsigned char)p[i];
        buf[i] = (b >= 0x20 && b < 0x7F) ? (char)b : '?';
    }
    if (k < n) memcpy(buf + k, "...", 3), k += 3;
    buf[k] = '\0';
    return buf;
}

const char *rp_mp_type_name(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_EXT: return "an extension";
    }
    return "an unknown type";
}

/* "field 'x' must be <expected> (got <type>)". */
static rp_err type_fail(const dec *d, const char *field, const char *expected,
                        const msgpack_object *v) {
    return dec_fail(d, RP_BAD_REQUEST, "field '%s' must be %s (got %s)", field, expected,
                    rp_mp_type_name(v));
}

static rp_str obj_str(const msgpack_object *v) {
    assert(v->type == MSGPACK_OBJECT_STR);
    return (rp_str){v->via.str.ptr, v->via.str.size};
}

/* ---- scalar field parsers -------------------------------------------------
 * Each takes the value of one map entry. nil always means "absent": the
 * parser stores the field's empty value and succeeds. */

/* A free-text field of at most max bytes (names, tokens, summaries). */
static rp_err get_text(const dec *d, const msgpack_object *v, const char *field, size_t max,
                       rp_str *out) {
    if (v->type == MSGPACK_OBJECT_NIL) {
        *out = (rp_str){NULL, 0};
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_STR) return type_fail(d, field, "a string", v);
    rp_str s = obj_str(v);
    if (d->mode == RP_DEC_WIRE) {
        rp_err rc = rp_text_check(s, max, field, d->eb);
        if (rc != RP_OK) return rc;
    } else if (s.n > max) {
        return dec_fail(d, RP_TOO_LARGE, "field '%s' is %zu bytes; the limit is %zu", field, s.n,
                        max);
    }
    *out = s;
    return RP_OK;
}

/* An id (customer_id, issue_id): when given as a string it must pass
 * rp_id_check, so "" is refused rather than taken as absent. */
static rp_err get_id(const dec *d, const msgpack_object *v, const char *field, rp_str *out) {
    if (v->type == MSGPACK_OBJECT_NIL) {
        *out = (rp_str){NULL, 0};
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_STR) return type_fail(d, field, "a string", v);
    rp_str s = obj_str(v);
    if (d->mode == RP_DEC_WIRE) {
        rp_err rc = rp_id_check(s, field, d->eb);
        if (rc != RP_OK) return rc;
    } else if (s.n == 0 || s.n > RP_ID_MAX) {
        return dec_fail(d, RP_BAD_REQUEST, "field '%s' is %zu bytes", field, s.n);
    }
    *out = s;
    return RP_OK;
}

/* true when s has the shape of a BCP 47 tag: subtags of 1..8 ASCII letters
 * or digits joined by '-', the first all letters, 2..35 bytes in all. Not a
 * registry check: "xx-Zzzz" passes. */
static bool lang_shape_ok(rp_str s) {
    if (s.n < RP_LANG_MIN || s.n > RP_LANG_MAX) return false;
    size_t run = 0, subtag = 0;
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        bool letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        bool digit = ch >= '0' && ch <= '9';
        if (ch == '-') {
            if (run == 0) return false;
            run = 0, subtag++;
            continue;
        }
        if (!letter && !(digit && subtag > 0)) return false;
        if (++run > 8) return false;
    }
    return run > 0;
}

/* The language field: a BCP 47-shaped tag ("en", "es-MX", "zh-Hant-TW"). */
static rp_err get_lang(const dec *d, const msgpack_object *v, rp_str *out) {
    if (v->type == MSGPACK_OBJECT_NIL) {
        *out = (rp_str){NULL, 0};
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_STR) return type_fail(d, "language", "a string", v);
    rp_str s = obj_str(v);
    if (d->mode == RP_DEC_WIRE && s.n > 0 && !lang_shape_ok(s)) {
        char show[SHOW_MAX];
        return dec_fail(d, RP_BAD_REQUEST,
                        "field 'language' must be a BCP 47 language tag like 'en' or 'es-MX' "
                        "(got '%s')",
                        printable(s.p, s.n, show));
    }
    if (s.n > RP_LANG_MAX) return dec_fail(d, RP_BAD_REQUEST, "field 'language' is too long");
    *out = s;
    return RP_OK;
}

/* An unsigned integer of at most max. nil -> 0. Negative values and floats
 * are refused. (msgpack-c marks every non-negative integer POSITIVE, but a
 * hand-built object may carry a non-negative i64 as NEGATIVE: accept it.) */
static rp_err get_uint(const dec *d, const msgpack_object *v, const char *field, uint64_t max,
                       uint64_t *out) {
    uint64_t u;
    if (v->type == MSGPACK_OBJECT_NIL) {
        u = 0;
    } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        u = v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (v->via.i64 < 0)
            return dec_fail(d, RP_BAD_REQUEST, "field '%s' must not be negative", field);
        u = (uint64_t)v->via.i64;
    } else {
        return type_fail(d, field, "an integer", v);
    }
    if (u > max)
        return dec_fail(d, RP_BAD_REQUEST, "field '%s' is out of range (at most %llu)", field,
                        (unsigned long long)max);
    *out = u;
    return RP_OK;
}

/* A time: unix seconds, an integer >= 0. nil -> 0. */
static rp_err get_time(const dec *d, const msgpack_object *v, const char *field, int64_t *out) {
    uint64_t u = 0;
    rp_err rc = get_uint(d, v, field, (uint64_t)INT64_MAX, &u);
    if (rc != RP_OK) return rc;
    *out = (int64_t)u;
    return RP_OK;
}

/* Sentiment: any msgpack number in -1.0..1.0. nil -> absent. */
static rp_err get_sentiment(const dec *d, const msgpack_object *v, rp_event *e) {
    double x;
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        e->has_sentiment = false, e->sentiment = 0;
        return RP_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: x = v->via.u64 > 1 ? 2.0 : (double)v->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: x = v->via.i64 < -1 ? -2.0 : (double)v->via.i64; break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: x = v->via.f64; break;
    default: return type_fail(d, "sentiment", "a number", v);
    }
    if (!(x >= -1.0 && x <= 1.0)) /* also refuses NaN */
        return dec_fail(d, RP_BAD_REQUEST, "field 'sentiment' must be between -1.0 and 1.0");
    e->has_sentiment = true, e->sentiment = x;
    return RP_OK;
}

/* ---- vocabularies ----------------------------------------------------------
 * A vocabulary is record.c's parse function and name table for one enum;
 * the wrappers erase the enum type so that one parser serves all four. */

typedef struct vocab {
    bool (*parse)(rp_str s, int *out);
    const char *(*name)(int v);
    int first, count; /* valid words: name(first..count-1) */
} vocab;

static bool ch_parse(rp_str s, int *o) { rp_channel v; return rp_channel_parse(s, &v) ? (*o = (int)v, true) : false; }
static bool out_parse(rp_str s, int *o) { rp_outcome v; return rp_outcome_parse(s, &v) ? (*o = (int)v, true) : false; }
static bool st_parse(rp_str s, int *o) { rp_status v; return rp_status_parse(s, &v) ? (*o = (int)v, true) : false; }
static bool sev_parse(rp_str s, int *o) { rp_severity v; return rp_severity_parse(s, &v) ? (*o = (int)v, true) : false; }
static const char *ch_name(int v) { return rp_channel_name((rp_channel)v); }
static const char *out_name(int v) { return rp_outcome_name((rp_outcome)v); }
static const char *st_name(int v) { return rp_status_name((rp_status)v); }
static const char *sev_name(int v) { return rp_severity_name((rp_severity)v); }

static const vocab V_CHANNEL = {ch_parse, ch_name, RP_CH_PHONE, RP_CH__COUNT};
static const vocab V_OUTCOME = {out_parse, out_name, RP_OUT_NONE, RP_OUT__COUNT};
static const vocab V_STATUS = {st_parse, st_name, RP_ST_OPEN, RP_ST__COUNT};
static const vocab V_SEVERITY = {sev_parse, sev_name, RP_SEV_LOW, RP_SEV__COUNT};

/* Append word to buf[0..used) without its NUL, as far as it fits while
 * leaving room for one; returns the new length (< cap). The vocabularies
 * are short, so nothing is cut in practice, but a cut is a shorter
 * sentence, never an overflow. */
static size_t words_add(char *buf, size_t cap, size_t used, const char *word) {
    assert(used < cap);
    size_t n = strlen(word);
    if (n > cap - 1 - used) n = cap - 1 - used;
    memcpy(buf + used, word, n);
    return used + n;
}

/* One word of vocabulary vb. nil -> dflt. An unknown word is BAD_REQUEST
 * with a sentence listing the allowed words. */
static rp_err get_enum(const dec *d, const msgpack_object *v, const char *field, const vocab *vb,
                       int dflt, int *out) {
    if (v->type == MSGPACK_OBJECT_NIL) {
        *out = dflt;
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_STR) return type_fail(d, field, "a string", v);
    rp_str s = obj_str(v);
    if (vb->parse(s, out)) return RP_OK;
    char words[160], show[SHOW_MAX];
    size_t used = 0;
    for (int i = vb->first; i < vb->count; i++) {
        if (i > vb->first) used = words_add(words, sizeof words, used, ", ");
        used = words_add(words, sizeof words, used, vb->name(i));
    }
    words[used] = '\0';
    return dec_fail(d, RP_BAD_REQUEST, "field '%s' must be one of %s (got '%s')", field, words,
                    printable(s.p, s.n, show));
}

/* ---- string lists ------------------------------------------------------- */

typedef enum elem { EL_FLAG, EL_NOTE, EL_PHONE, EL_EMAIL, EL_ACCOUNT } elem;

/* Byte limit of one element of a list of kind k (STORED checks). */
static size_t elem_max(elem k) {
    switch (k) {
    case EL_FLAG: return RP_TOKEN_MAX;
    case EL_NOTE: return RP_NOTE_MAX;
    case EL_PHONE: return RP_PHONE_MAX;
    case EL_EMAIL: return RP_EMAIL_MAX;
    case EL_ACCOUNT: return RP_ID_MAX;
    }
    return 0;
}

/* Copy a normalized string into the arena; RP_TOO_LARGE when it is full. */
static rp_err arena_str(const dec *d, const char *field, const char *p, size_t n, rp_str *out) {
    char *q = rp_arena_put(d->arena, p, n);
    if (q == NULL)
        return dec_fail(d, RP_TOO_LARGE,
                        "field '%s': the request has more identities than this server "
                        "decodes at once",
                        field);
    *out = (rp_str){q, n};
    return RP_OK;
}

/* Validate (WIRE: and normalize) one list element s, named name
 * ("phones[2]"), into *out. Phone and email sentences from ident.c are
 * prefixed with the element's name. */
static rp_err elem_value(const dec *d, elem k, const char *name, rp_str s, rp_str *out) {
    if (s.n == 0) return dec_fail(d, RP_BAD_REQUEST, "%s is empty", name);
    if (d->mode == RP_DEC_STORED) {
        if (s.n > elem_max(k)) return dec_fail(d, RP_TOO_LARGE, "%s is %zu bytes", name, s.n);
        *out = s;
        return RP_OK;
    }
    rp_err rc;
    rp_errbuf sub = {0};
    size_t len = 0;
    switch (k) {
    case EL_FLAG:
    case EL_NOTE:
        rc = rp_text_check(s, elem_max(k), name, d->eb);
        if (rc == RP_OK) *out = s;
        return rc;
    case EL_ACCOUNT:
        rc = rp_id_check(s, name, d->eb);
        if (rc == RP_OK) *out = s;
        return rc;
    case EL_PHONE: {
        char buf[RP_PHONE_MAX + 1];
        rc = rp_phone_normalize(s.p, s.n, d->country ? d->country : "", buf, &len, &sub);
        if (rc != RP_OK) return rp_errf(d->eb, rc, "%s: %s", name, rp_errbuf_msg(&sub));
        return arena_str(d, name, buf, len, out);
    }
    case EL_EMAIL: {
        char buf[RP_EMAIL_MAX + 1];
        rc = rp_email_normalize(s.p, s.n, buf, &len, &sub);
        if (rc != RP_OK) return rp_errf(d->eb, rc, "%s: %s", name, rp_errbuf_msg(&sub));
        return arena_str(d, name, buf, len, out);
    }
    }
    return dec_fail(d, RP_INTERNAL, "%s: unknown list kind", name);
}

/* A list of strings into out[0..max), count in *count. nil -> empty. More
 * than max entries is RP_TOO_LARGE (counted before de-duplication, so the
 * work per list is bounded by max). Flags, phones, emails and accounts are
 * sets: a repeat (after normalization) is dropped. O(max^2) compares, max
 * <= 32. */
static rp_err get_list(const dec *d, const msgpack_object *v, const char *field, elem k,
                       uint32_t max, rp_str *out, uint32_t *count) {
    if (v->type == MSGPACK_OBJECT_NIL) {
        *count = 0;
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_ARRAY) return type_fail(d, field, "an array of strings", v);
    uint32_t size = v->via.array.size;
    if (size > max)
        return dec_fail(d, RP_TOO_LARGE, "field '%s' has %u entries; the limit is %u", field,
                        (unsigned)size, (unsigned)max);
    bool set = (k != EL_NOTE) && d->mode == RP_DEC_WIRE;
    uint32_t n = 0;
    for (uint32_t i = 0; i < size; i++) {
        const msgpack_object *e = &v->via.array.ptr[i];
        char name[48];
        snprintf(name, sizeof name, "%s[%u]", field, (unsigned)i);
        if (e->type != MSGPACK_OBJECT_STR) return type_fail(d, name, "a string", e);
        rp_str s;
        rp_err rc = elem_value(d, k, name, obj_str(e), &s);
        if (rc != RP_OK) return rc;
        bool dup = false;
        for (uint32_t j = 0; set && j < n && !dup; j++) dup = rp_str_eq(out[j], s);
        if (!dup) out[n++] = s;
    }
    *count = n;
    return RP_OK;
}

/* ---- preferences ---------------------------------------------------------- */

/* Index of key in c's preferences, or -1. O(nprefs). */
static int pref_find(const rp_customer *c, rp_str key) {
    for (uint32_t i = 0; i < c->nprefs; i++)
        if (rp_str_eq(c->prefs[i].key, key)) return (int)i;
    return -1;
}

/* The preferences map. merge == false (decode): the map replaces c's
 * preferences. merge == true (patch, RFC 7396): each key is set, and a nil
 * or "" value deletes it; nil for the whole map clears it. A key repeated
 * in one map is BAD_REQUEST. O(n^2), n <= RP_MAX_PREFS. */
static rp_err get_prefs(const dec *d, const msgpack_object *v, rp_customer *c, bool merge) {
    if (v->type == MSGPACK_OBJECT_NIL) {
        c->nprefs = 0;
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_MAP) return type_fail(d, "preferences", "a map of strings", v);
    uint32_t size = v->via.map.size;
    if (size > RP_MAX_PREFS)
        return dec_fail(d, RP_TOO_LARGE, "field 'preferences' has %u entries; the limit is %d",
                        (unsigned)size, RP_MAX_PREFS);
    if (!merge) c->nprefs = 0;
    char show[SHOW_MAX];
    for (uint32_t i = 0; i < size; i++) {
        const msgpack_object_kv *kv = &v->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return type_fail(d, "preferences key", "a string", &kv->key);
        rp_str key = obj_str(&kv->key), val = {NULL, 0};
        if (key.n == 0) return dec_fail(d, RP_BAD_REQUEST, "a preference key is empty");
        rp_err rc = get_text(d, &kv->key, "preference key", RP_PREF_KEY_MAX, &key);
        if (rc == RP_OK) rc = get_text(d, &kv->val, "preference value", RP_PREF_VAL_MAX, &val);
        if (rc != RP_OK) return rc;
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *pk = &v->via.map.ptr[j].key;
            if (rp_str_eq(obj_str(pk), key))
                return dec_fail(d, RP_BAD_REQUEST, "preference '%s' is given twice",
                                printable(key.p, key.n, show));
        }
        int at = pref_find(c, key);
        if (val.n == 0) { /* delete, keeping the order of the rest */
            if (at >= 0) {
                memmove(&c->prefs[at], &c->prefs[at + 1],
                        (c->nprefs - (uint32_t)at - 1) * sizeof c->prefs[0]);
                c->nprefs--;
            }
        } else if (at >= 0) {
            c->prefs[at].value = val;
        } else {
            if (c->nprefs >= RP_MAX_PREFS)
                return dec_fail(d, RP_TOO_LARGE, "preferences would have more than %d entries",
                                RP_MAX_PREFS);
            c->prefs[c->nprefs++] = (rp_pref){key, val};
        }
    }
    return RP_OK;
}

/* ---- stored-record validators (codec.h) ----------------------------------
 * They use the limits the decoder uses (record.h and elem_max), so a record
 * that passes reads back with RP_DEC_STORED. */

/* A byte length within [min, max]: over is RP_TOO_LARGE, under (empty) is
 * RP_BAD_REQUEST. */
static rp_err check_len(rp_str s, size_t min, size_t max, const char *what, rp_errbuf *eb) {
    if (s.n > max) return rp_errf(eb, RP_TOO_LARGE, "%s is %zu bytes; the limit is %zu", what, s.n, max);
    if (s.n < min) return rp_errf(eb, RP_BAD_REQUEST, "%s is empty", what);
    return RP_OK;
}

/* Every element of a list of kind k: non-empty, within elem_max(k). */
static rp_err check_list(const rp_str *list, uint32_t n, elem k, const char *what, rp_errbuf *eb) {
    for (uint32_t i = 0; i < n; i++) {
        rp_err rc = check_len(list[i], 1, elem_max(k), what, eb);
        if (rc != RP_OK) return rc;
    }
    return RP_OK;
}

/* The identities the indexes key on: E.164 phones, normalized emails, ids. */
static rp_err check_identities(const rp_customer *c, rp_errbuf *eb) {
    for (uint32_t i = 0; i < c->nphones; i++) {
        rp_str p = c->phones[i];
        bool ok = p.n >= 2 && p.n <= elem_max(EL_PHONE) && p.p[0] == '+';
        for (size_t j = 1; ok && j < p.n; j++) ok = p.p[j] >= '0' && p.p[j] <= '9';
        if (!ok) return rp_errf(eb, RP_BAD_REQUEST, "phones[%u] is not an E.164 number", (unsigned)i);
    }
    for (uint32_t i = 0; i < c->nemails; i++) {
        rp_str e = c->emails[i];
        if (e.n == 0 || e.n > elem_max(EL_EMAIL) || memchr(e.p, '@', e.n) == NULL)
            return rp_errf(eb, RP_BAD_REQUEST, "emails[%u] is not a normalized email", (unsigned)i);
    }
    for (uint32_t i = 0; i < c->naccounts; i++) {
        rp_err rc = rp_id_check(c->accounts[i], "accounts", eb);
        if (rc != RP_OK) return rc;
    }
    return RP_OK;
}

rp_err rp_customer_check(const rp_customer *c, rp_errbuf *eb) {
    rp_err rc = rp_id_check(c->id, "id", eb);
    if (rc != RP_OK) return rc;
    if (c->nphones > RP_MAX_PHONES || c->nemails > RP_MAX_EMAILS || c->naccounts > RP_MAX_ACCOUNTS ||
        c->nflags > RP_MAX_FLAGS || c->nprefs > RP_MAX_PREFS || c->nnotes > RP_MAX_NOTES)
        return rp_errf(eb, RP_TOO_LARGE, "customer '%.*s' has too many list entries", (int)c->id.n, c->id.p);
    if ((rc = check_len(c->name, 0, RP_NAME_MAX, "name", eb)) != RP_OK ||
        (rc = check_len(c->preferred_name, 0, RP_NAME_MAX, "preferred_name", eb)) != RP_OK ||
        (rc = check_len(c->language, 0, RP_LANG_MAX, "language", eb)) != RP_OK ||
        (rc = check_len(c->timezone, 0, RP_NAME_MAX, "timezone", eb)) != RP_OK ||
        (rc = check_len(c->tier, 0, RP_NAME_MAX, "tier", eb)) != RP_OK ||
        (rc = check_list(c->flags, c->nflags, EL_FLAG, "a flag", eb)) != RP_OK ||
        (rc = check_list(c->notes, c->nnotes, EL_NOTE, "a rapport note", eb)) != RP_OK)
        return rc;
    for (uint32_t i = 0; i < c->nprefs; i++)
        if ((rc = check_len(c->prefs[i].key, 1, RP_PREF_KEY_MAX, "a preference key", eb)) != RP_OK ||
            (rc = check_len(c->prefs[i].value, 0, RP_PREF_VAL_MAX, "a preference value", eb)) != RP_OK)
            return rc;
    return check_identities(c, eb);
}

rp_err rp_event_check(const rp_event *e, rp_errbuf *eb) {
    if (e->ts < 0) return rp_errf(eb, RP_BAD_REQUEST, "ts must be >= 0, got %" PRId64, e->ts);
    if (e->channel <= RP_CH_NONE || e->channel >= RP_CH__COUNT)
        return rp_errf(eb, RP_BAD_REQUEST, "event has no valid channel");
    if ((unsigned)e->outcome >= RP_OUT__COUNT)
        return rp_errf(eb, RP_BAD_REQUEST, "event has an invalid outcome");
    if (e->has_sentiment && !(e->sentiment >= -1.0 && e->sentiment <= 1.0))
        return rp_errf(eb, RP_BAD_REQUEST, "sentiment must be between -1.0 and 1.0");
    rp_err rc;
    if ((rc = check_len(e->kind, 1, RP_TOKEN_MAX, "kind", eb)) != RP_OK ||
        (rc = check_len(e->topic, 0, RP_TOKEN_MAX, "topic", eb)) != RP_OK ||
        (rc = check_len(e->agent, 0, RP_TOKEN_MAX, "agent", eb)) != RP_OK ||
        (rc = check_len(e->summary, 0, RP_SUMMARY_MAX, "summary", eb)) != RP_OK)
        return rc;
    if (e->issue_id.n > 0 && (rc = rp_id_check(e->issue_id, "issue_id", eb)) != RP_OK) return rc;
    if (e->event_id.n > 0) return rp_id_check(e->event_id, "event_id", eb);
    return RP_OK;
}

rp_err rp_issue_check(const rp_issue *i, rp_errbuf *eb) {
    rp_err rc = rp_id_check(i->issue_id, "issue_id", eb);
    if (rc != RP_OK) return rc;
    if ((unsigned)i->status >= RP_ST__COUNT || (unsigned)i->severity >= RP_SEV__COUNT)
        return rp_errf(eb, RP_BAD_REQUEST, "issue has an invalid status or severity");
    if ((rc = check_len(i->topic, 0, RP_TOKEN_MAX, "topic", eb)) != RP_OK ||
        (rc = check_len(i->summary, 0, RP_SUMMARY_MAX, "summary", eb)) != RP_OK)
        return rc;
    return RP_OK;
}

/* ---- the map walker ---------------------------------------------------- */

typedef rp_err (*field_fn)(const dec *d, int field, const msgpack_object *v, void *rec);

/* Index of key in names[0..count), or -1. A first-byte test skips most
 * names before the full compare: stored events are decoded by the hundred
 * for one context card. */
static int field_index(const char *const *names, int count, rp_str key) {
    if (key.n == 0) return -1;
    for (int i = 0; i < count; i++)
        if (names[i][0] == key.p[0] && rp_str_eqc(key, names[i])) return i;
    return -1;
}

/* Walk map o once, passing each known field to fn. Unknown keys: STORED
 * skips them, WIRE skips "type" (NDJSON) and refuses the rest. A repeated
 * key is refused. *seen receives a bit per field met (count <= 32). */
static rp_err walk_map(const dec *d, const msgpack_object *o, const char *const *names, int count,
                       field_fn fn, void *rec, uint32_t *seen) {
    assert(count <= 32);
    *seen = 0;
    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return dec_fail(d, RP_BAD_REQUEST, "%s %s must be a map (got %s)",
                        strchr("aeiou", d->what[0]) ? "an" : "a", d->what,
                        o ? rp_mp_type_name(o) : "nothing");
    char show[SHOW_MAX];
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return dec_fail(d, RP_BAD_REQUEST, "field names must be strings (got %s)",
                            rp_mp_type_name(&kv->key));
        rp_str key = obj_str(&kv->key);
        int f = field_index(names, count, key);
        if (f < 0) {
            if (d->mode == RP_DEC_STORED || rp_str_eqc(key, "type")) continue;
            return dec_fail(d, RP_BAD_REQUEST, "unknown field '%s'",
                            printable(key.p, key.n, show));
        }
        if (*seen & (1u << f))
            return dec_fail(d, RP_BAD_REQUEST, "field '%s' is given twice", names[f]);
        *seen |= 1u << f;
        rp_err rc = fn(d, f, &kv->val, rec);
        if (rc != RP_OK) return rc;
    }
    return RP_OK;
}

/* ---- customer ----------------------------------------------------------- */

enum {
    CF_ID, CF_NAME, CF_PREFERRED_NAME, CF_LANGUAGE, CF_TIMEZONE, CF_TIER, CF_SINCE, CF_FLAGS,
    CF_PREFS, CF_NOTES, CF_PHONES, CF_EMAILS, CF_ACCOUNTS, CF_VERSION, CF_UPDATED_AT, CF__COUNT
};
static const char *const cust_names[CF__COUNT] = {
    "id", "name", "preferred_name", "language", "timezone", "tier", "customer_since", "flags",
    "preferences", "rapport_notes", "phones", "emails", "accounts", "version", "updated_at",
};

/* Parse one customer field into rec (an rp_customer). Preferences replace. */
static rp_err cust_field(const dec *d, int f, const msgpack_object *v, void *rec) {
    rp_customer *c = rec;
    const char *nm = cust_names[f];
    switch (f) {
    case CF_ID: return get_id(d, v, nm, &c->id);
    case CF_NAME: return get_text(d, v, nm, RP_NAME_MAX, &c->name);
    case CF_PREFERRED_NAME: return get_text(d, v, nm, RP_NAME_MAX, &c->preferred_name);
    case CF_LANGUAGE: return get_lang(d, v, &c->language);
    case CF_TIMEZONE: return get_text(d, v, nm, RP_NAME_MAX, &c->timezone);
    case CF_TIER: return get_text(d, v, nm, RP_NAME_MAX, &c->tier);
    case CF_SINCE: return get_time(d, v, nm, &c->customer_since);
    case CF_FLAGS: return get_list(d, v, nm, EL_FLAG, RP_MAX_FLAGS, c->flags, &c->nflags);
    case CF_PREFS: return get_prefs(d, v, c, false);
    case CF_NOTES: return get_list(d, v, nm, EL_NOTE, RP_MAX_NOTES, c->notes, &c->nnotes);
    case CF_PHONES: return get_list(d, v, nm, EL_PHONE, RP_MAX_PHONES, c->phones, &c->nphones);
    case CF_EMAILS: return get_list(d, v, nm, EL_EMAIL, RP_MAX_EMAILS, c->emails, &c->nemails);
    case CF_ACCOUNTS:
        return get_list(d, v, nm, EL_ACCOUNT, RP_MAX_ACCOUNTS, c->accounts, &c->naccounts);
    case CF_VERSION: return get_uint(d, v, nm, UINT64_MAX, &c->version);
    case CF_UPDATED_AT: return get_time(d, v, nm, &c->updated_at);
    }
    return dec_fail(d, RP_INTERNAL, "customer field %d has no parser", f);
}

rp_err rp_customer_decode(const msgpack_object *o, rp_dec_mode mode, const char *default_country,
                          rp_arena *arena, rp_customer *out, rp_errbuf *eb) {
    dec d = {mode, default_country, arena, eb, "customer", RP_ISSUE_NUMBERS_SERVICENOW};
    memset(out, 0, sizeof *out);
    uint32_t seen;
    rp_err rc = walk_map(&d, o, cust_names, CF__COUNT, cust_field, out, &seen);
    if (rc != RP_OK) return rc;
    if (out->id.n == 0) return dec_fail(&d, RP_BAD_REQUEST, "missing required field 'id'");
    return RP_OK;
}

/* A patch field: identity and bookkeeping fields are refused, preferences
 * merge, everything else is parsed as in a put (nil clears). */
static rp_err cust_patch_field(const dec *d, int f, const msgpack_object *v, void *rec) {
    if (f == CF_ID || f == CF_VERSION || f == CF_UPDATED_AT)
        return dec_fail(d, RP_BAD_REQUEST, "cannot patch %s", cust_names[f]);
    if (f == CF_PREFS) return get_prefs(d, v, rec, true);
    return cust_field(d, f, v, rec);
}

rp_err rp_customer_patch(rp_customer *c, const msgpack_object *patch, const char *default_country,
                         rp_arena *arena, rp_errbuf *eb) {
    dec d = {RP_DEC_WIRE, default_country, arena, eb, "patch", RP_ISSUE_NUMBERS_SERVICENOW};
    size_t mark = arena ? arena->used : 0;
    rp_customer next = *c;
    uint32_t seen;
    rp_err rc = walk_map(&d, patch, cust_names, CF__COUNT, cust_patch_field, &next, &seen);
    if (rc != RP_OK) {
        if (arena) arena->used = mark; /* nothing decoded survives a failed patch */
        return rc;
    }
    *c = next;
    return RP_OK;
}

/* ---- event -------------------------------------------------------------- */

enum {
    EF_CUSTOMER_ID, EF_TS, EF_CHANNEL, EF_KIND, EF_TOPIC, EF_SUMMARY, EF_OUTCOME, EF_SENTIMENT,
    EF_AGENT, EF_ISSUE_ID, EF_EVENT_ID, EF_SEQ, EF__COUNT
};
static const char *const event_names[EF__COUNT] = {
    "customer_id", "ts", "channel", "kind", "topic", "summary", "outcome", "sentiment", "agent",
    "issue_id", "event_id", "seq",
};

/* Parse one event field into rec (an rp_event). */
static rp_err event_field(const dec *d, int f, const msgpack_object *v, void *rec) {
    rp_event *e = rec;
    const char *nm = event_names[f];
    int w = 0;
    rp_err rc;
    switch (f) {
    case EF_CUSTOMER_ID: return get_id(d, v, nm, &e->customer_id);
    case EF_TS:
        if (v->type == MSGPACK_OBJECT_NIL) return RP_OK; /* stays "missing" */
        return get_time(d, v, nm, &e->ts);
    case EF_CHANNEL:
        rc = get_enum(d, v, nm, &V_CHANNEL, RP_CH_NONE, &w);
        e->channel = (rp_channel)w;
        return rc;
    case EF_KIND: return get_text(d, v, nm, RP_TOKEN_MAX, &e->kind);
    case EF_TOPIC: return get_text(d, v, nm, RP_TOKEN_MAX, &e->topic);
    case EF_SUMMARY: return get_text(d, v, nm, RP_SUMMARY_MAX, &e->summary);
    case EF_OUTCOME:
        rc = get_enum(d, v, nm, &V_OUTCOME, RP_OUT_NONE, &w);
        e->outcome = (rp_outcome)w;
        return rc;
    case EF_SENTIMENT: return get_sentiment(d, v, e);
    case EF_AGENT: return get_text(d, v, nm, RP_TOKEN_MAX, &e->agent);
    case EF_ISSUE_ID: return get_id(d, v, nm, &e->issue_id);
    case EF_EVENT_ID: return get_id(d, v, nm, &e->event_id);
    case EF_SEQ: {
        /* The key holds a stored event's seq: a stored value never has one. */
        if (d->mode == RP_DEC_STORED || v->type == MSGPACK_OBJECT_NIL) return RP_OK;
        uint64_t u = 0;
        rc = get_uint(d, v, nm, UINT32_MAX, &u);
        e->seq = (uint32_t)u;
        e->has_seq = rc == RP_OK;
        return rc;
    }
    }
    return dec_fail(d, RP_INTERNAL, "event field %d has no parser", f);
}

rp_err rp_event_decode(const msgpack_object *o, rp_dec_mode mode, rp_event *out, rp_errbuf *eb) {
    dec d = {mode, NULL, NULL, eb, "event", RP_ISSUE_NUMBERS_SERVICENOW};
    memset(out, 0, sizeof *out);
    out->ts = mode == RP_DEC_WIRE ? -1 : 0; /* -1: not given */
    out->channel = RP_CH_NONE;
    out->outcome = RP_OUT_NONE;
    uint32_t seen;
    rp_err rc = walk_map(&d, o, event_names, EF__COUNT, event_field, out, &seen);
    if (rc != RP_OK) return rc;
    const char *missing = NULL;
    if (mode == RP_DEC_WIRE && out->customer_id.n == 0) missing = "customer_id";
    else if (mode == RP_DEC_WIRE && out->ts < 0) missing = "ts";
    else if (out->channel == RP_CH_NONE) missing = "channel";
    else if (out->kind.n == 0) missing = "kind";
    if (missing) return dec_fail(&d, RP_BAD_REQUEST, "missing required field '%s'", missing);
    return RP_OK;
}

/* ---- issue -------------------------------------------------------------- */

enum {
    IF_CUSTOMER_ID, IF_ISSUE_ID, IF_TOPIC, IF_STATUS, IF_STATUS_RAW, IF_SEVERITY, IF_SEVERITY_RAW,
    IF_SUMMARY, IF_OPENED_AT, IF_UPDATED_AT, IF_FOLLOW_UP_DUE, IF_CONTACTS, IF__COUNT
};
static const char *const issue_names[IF__COUNT] = {
    "customer_id", "issue_id", "topic", "status", "status_raw", "severity", "severity_raw",
    "summary", "opened_at", "updated_at", "follow_up_due", "contacts",
};

/* What the issue walk collects besides the record: the raw words derived
 * from `status`/`severity` and the ones given as `status_raw`/`severity_raw`
 * (an export carries both), reconciled after the walk by issue_words(). */
typedef struct issue_acc {
    rp_issue *is;
    rp_str st_word, sev_word;   /* raw of the word sent in status / severity */
    rp_str st_given, sev_given; /* status_raw / severity_raw as sent */
} issue_acc;

/* Status or severity on the wire: a help-desk word (record.h,
 * rp_*_from_word) or a bare number, as a string or an integer, read per
 * d->numbers. nil -> dflt with no raw word. An unknown word is BAD_REQUEST
 * naming the field and the value; the sentence names the levels and a few
 * help-desk words, and proto/RECORDS.md has the whole table. */
static rp_err get_issue_word(const dec *d, const msgpack_object *v, const char *field, bool sev,
                             int dflt, int *out, rp_str *raw) {
    *raw = (rp_str){NULL, 0};
    if (v->type == MSGPACK_OBJECT_NIL) {
        *out = dflt;
        return RP_OK;
    }
    bool ok;
    rp_severity sv = RP_SEV_NONE;
    rp_status st = RP_ST_OPEN;
    char show[SHOW_MAX];
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        uint64_t n = v->via.u64;
        ok = sev ? rp_severity_from_number(n, d->numbers, &sv, raw)
                 : rp_status_from_number(n, d->numbers, &st, raw);
        if (!ok) {
            snprintf(show, sizeof show, "%llu", (unsigned long long)n);
            goto bad_number;
        }
    } else if (v->type == MSGPACK_OBJECT_STR) {
        rp_str s = obj_str(v);
        ok = sev ? rp_severity_from_word(s, d->numbers, &sv, raw)
                 : rp_status_from_word(s, d->numbers, &st, raw);
        if (!ok) {
            printable(s.p, s.n, show);
            bool digits = s.n > 0;
            for (size_t i = 0; i < s.n; i++)
                digits = digits && ((s.p[i] >= '0' && s.p[i] <= '9') || s.p[i] == ' ' || s.p[i] == '\t');
            if (digits) goto bad_number;
            return dec_fail(d, RP_BAD_REQUEST,
                            sev ? "field '%s' must be low, medium, high or critical, or a help-desk "
                                  "priority such as normal, urgent, Highest, P1 or 2 - High "
                                  "(got '%s')"
                                : "field '%s' must be open, pending or resolved, or a help-desk "
                                  "status such as new, hold, solved, closed, In Progress or Done "
                                  "(got '%s')",
                            field, show);
        }
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        snprintf(show, sizeof show, "%lld", (long long)v->via.i64);
        goto bad_number;
    } else {
        return type_fail(d, field, "a string or an integer", v);
    }
    *out = sev ? (int)sv : (int)st;
    return RP_OK;
bad_number:
    if (d->numbers == RP_ISSUE_NUMBERS_NONE)
        return dec_fail(d, RP_BAD_REQUEST,
                        "field '%s' is the bare number '%s', which this server does not read "
                        "(issue_numbers = none): send a word",
                        field, show);
    return dec_fail(d, RP_BAD_REQUEST, "field '%s' is '%s', which is not a %s number when issue_numbers = %s (%s)",
                    field, show, sev ? "priority" : "status", rp_issue_numbers_name(d->numbers),
                    d->numbers == RP_ISSUE_NUMBERS_FRESHDESK
                        ? (sev ? "1..4" : "2..5")
                        : (sev ? "1..5" : "1, 2, 3, 6, 7, 8"));
}

/* Parse one issue field into rec (an issue_acc). */
static rp_err issue_field(const dec *d, int f, const msgpack_object *v, void *rec) {
    issue_acc *x = rec;
    rp_issue *is = x->is;
    const char *nm = issue_names[f];
    int w = 0;
    uint64_t u = 0;
    rp_err rc;
    switch (f) {
    case IF_CUSTOMER_ID: return get_id(d, v, nm, &is->customer_id);
    case IF_ISSUE_ID: return get_id(d, v, nm, &is->issue_id);
    case IF_TOPIC: return get_text(d, v, nm, RP_TOKEN_MAX, &is->topic);
    case IF_STATUS:
        /* Stored records hold the level's name; clients send any word. */
        if (d->mode == RP_DEC_STORED) rc = get_enum(d, v, nm, &V_STATUS, RP_ST_OPEN, &w);
        else rc = get_issue_word(d, v, nm, false, RP_ST_OPEN, &w, &x->st_word);
        is->status = (rp_status)w;
        return rc;
    case IF_SEVERITY:
        if (d->mode == RP_DEC_STORED) rc = get_enum(d, v, nm, &V_SEVERITY, RP_SEV_NONE, &w);
        else rc = get_issue_word(d, v, nm, true, RP_SEV_NONE, &w, &x->sev_word);
        is->severity = (rp_severity)w;
        return rc;
    case IF_STATUS_RAW: return get_text(d, v, nm, RP_VOCAB_WORD_MAX, &x->st_given);
    case IF_SEVERITY_RAW: return get_text(d, v, nm, RP_VOCAB_WORD_MAX, &x->sev_given);
    case IF_SUMMARY: return get_text(d, v, nm, RP_SUMMARY_MAX, &is->summary);
    case IF_OPENED_AT: return get_time(d, v, nm, &is->opened_at);
    case IF_UPDATED_AT: return get_time(d, v, nm, &is->updated_at);
    case IF_FOLLOW_UP_DUE: return get_time(d, v, nm, &is->follow_up_due);
    case IF_CONTACTS:
        rc = get_uint(d, v, nm, UINT32_MAX, &u);
        is->contacts = (uint32_t)u;
        return rc;
    }
    return dec_fail(d, RP_INTERNAL, "issue field %d has no parser", f);
}

/* Settle one raw word after the walk (WIRE). `given` is the *_raw field as
 * sent, `word` the raw of the level field, level_given whether the level
 * field held a value. With a level, a given raw word is the display word
 * (an export round-trips; it must be a help-desk word in some reading, so
 * that what is shown is what some source system says). Without one, the
 * raw word alone sets the level, as if it had been sent in the level
 * field. The result is left out when it is the level's own name. */
static rp_err issue_word(const dec *d, bool sev, rp_str given, rp_str word, bool level_given,
                         rp_issue *is, rp_str *raw) {
    const char *field = sev ? "severity_raw" : "status_raw";
    *raw = word;
    if (given.n == 0) return RP_OK;
    rp_severity sv;
    rp_status st;
    if (!level_given) {
        msgpack_object o = {.type = MSGPACK_OBJECT_STR};
        o.via.str.ptr = given.p;
        o.via.str.size = (uint32_t)given.n;
        int w = 0;
        rp_err rc = get_issue_word(d, &o, field, sev, 0, &w, raw);
        if (rc != RP_OK) return rc;
        if (sev) is->severity = (rp_severity)w;
        else is->status = (rp_status)w;
        return RP_OK;
    }
    bool ok = false;
    for (int k = RP_ISSUE_NUMBERS_SERVICENOW; k <= RP_ISSUE_NUMBERS_FRESHDESK && !ok; k++)
        ok = sev ? rp_severity_from_word(given, (rp_issue_numbers)k, &sv, NULL)
                 : rp_status_from_word(given, (rp_issue_numbers)k, &st, NULL);
    if (!ok) {
        char show[SHOW_MAX];
        return dec_fail(d, RP_BAD_REQUEST, "field '%s' must be a help-desk %s word (got '%s')",
                        field, sev ? "priority" : "status", printable(given.p, given.n, show));
    }
    /* Keep the trimmed word unless it is exactly the name of the level this
     * record has. */
    rp_str t = given;
    while (t.n > 0 && (t.p[0] == ' ' || t.p[0] == '\t')) t.p++, t.n--;
    while (t.n > 0 && (t.p[t.n - 1] == ' ' || t.p[t.n - 1] == '\t')) t.n--;
    const char *name = sev ? rp_severity_name(is->severity) : rp_status_name(is->status);
    *raw = rp_str_eqc(t, name) ? (rp_str){NULL, 0} : t;
    return RP_OK;
}

rp_err rp_issue_decode_as(const msgpack_object *o, rp_dec_mode mode, rp_issue_numbers numbers,
                          rp_issue *out, rp_errbuf *eb) {
    dec d = {mode, NULL, NULL, eb, "issue", numbers};
    memset(out, 0, sizeof *out);
    out->status = RP_ST_OPEN;
    out->severity = RP_SEV_NONE;
    issue_acc x = {.is = out};
    uint32_t seen;
    rp_err rc = walk_map(&d, o, issue_names, IF__COUNT, issue_field, &x, &seen);
    if (rc != RP_OK) return rc;
    if (mode == RP_DEC_STORED) {
        out->status_raw = x.st_given;
        out->severity_raw = out->severity != RP_SEV_NONE ? x.sev_given : (rp_str){NULL, 0};
        return RP_OK;
    }
    if (out->customer_id.n == 0)
        return dec_fail(&d, RP_BAD_REQUEST, "missing required field 'customer_id'");
    if (out->issue_id.n == 0)
        return dec_fail(&d, RP_BAD_REQUEST, "missing required field 'issue_id'");
    bool st_level = rp_mp_get(o, "status") && rp_mp_get(o, "status")->type != MSGPACK_OBJECT_NIL;
    bool sev_level = out->severity != RP_SEV_NONE;
    if ((rc = issue_word(&d, false, x.st_given, x.st_word, st_level, out, &out->status_raw)) != RP_OK ||
        (rc = issue_word(&d, true, x.sev_given, x.sev_word, sev_level, out, &out->severity_raw)) != RP_OK)
        return rc;
    if (out->severity == RP_SEV_NONE) out->severity_raw = (rp_str){NULL, 0};
    return RP_OK;
}

rp_err rp_issue_decode(const msgpack_object *o, rp_dec_mode mode, rp_issue *out, rp_errbuf *eb) {
    return rp_issue_decode_as(o, mode, RP_ISSUE_NUMBERS_SERVICENOW, out, eb);
}

/* ---- encoding --------------------------------------------------------------
 * Fields go out in table order. A map header needs its entry count first, so
 * each encoder counts the optional fields it will write, then writes them.
 * Packer errors (a failing write callback) are the packer's to report: the
 * encoders return void as codec.h declares. */

void rp_mp_pack_str(msgpack_packer *pk, rp_str s) {
    msgpack_pack_str(pk, s.n);
    if (s.n) msgpack_pack_str_body(pk, s.p, s.n);
}

void rp_mp_pack_cstr(msgpack_packer *pk, const char *s) { rp_mp_pack_str(pk, rp_str_c(s)); }

void rp_sbuf_printf(msgpack_sbuffer *sb, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    msgpack_sbuffer_write(sb, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void kv_str(msgpack_packer *pk, const char *k, rp_str v) {
    rp_mp_pack_cstr(pk, k);
    rp_mp_pack_str(pk, v);
}
static void kv_int(msgpack_packer *pk, const char *k, int64_t v) {
    rp_mp_pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}
/* An optional string: written only when non-empty. */
static void kv_opt(msgpack_packer *pk, const char *k, rp_str v) {
    if (v.n) kv_str(pk, k, v);
}

/* A list, its count clamped to max so a corrupted count cannot read past
 * the record's fixed array. */
static void kv_list(msgpack_packer *pk, const char *k, const rp_str *a, uint32_t n, uint32_t max) {
    assert(n <= max);
    if (n > max) n = max;
    rp_mp_pack_cstr(pk, k);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) rp_mp_pack_str(pk, a[i]);
}

void rp_customer_encode(msgpack_packer *pk, const rp_customer *c, unsigned enc) {
    (void)enc; /* a stored customer is the wire customer */
    size_t n = 9; /* id, flags, preferences, rapport_notes, phones, emails, accounts,
                     version, updated_at */
    n += (c->name.n > 0) + (c->preferred_name.n > 0) + (c->language.n > 0) +
         (c->timezone.n > 0) + (c->tier.n > 0) + (c->customer_since != 0);
    msgpack_pack_map(pk, n);
    kv_str(pk, "id", c->id);
    kv_opt(pk, "name", c->name);
    kv_opt(pk, "preferred_name", c->preferred_name);
    kv_opt(pk, "language", c->language);
    kv_opt(pk, "timezone", c->timezone);
    kv_opt(pk, "tier", c->tier);
    if (c->customer_since != 0) kv_int(pk, "customer_since", c->customer_since);
    kv_list(pk, "flags", c->flags, c->nflags, RP_MAX_FLAGS);
    uint32_t np = c->nprefs;
    assert(np <= RP_MAX_PREFS);
    if (np > RP_MAX_PREFS) np = RP_MAX_PREFS;
    rp_mp_pack_cstr(pk, "preferences");
    msgpack_pack_map(pk, np);
    for (uint32_t i = 0; i < np; i++) {
        rp_mp_pack_str(pk, c->prefs[i].key);
        rp_mp_pack_str(pk, c->prefs[i].value);
    }
    kv_list(pk, "rapport_notes", c->notes, c->nnotes, RP_MAX_NOTES);
    kv_list(pk, "phones", c->phones, c->nphones, RP_MAX_PHONES);
    kv_list(pk, "emails", c->emails, c->nemails, RP_MAX_EMAILS);
    kv_list(pk, "accounts", c->accounts, c->naccounts, RP_MAX_ACCOUNTS);
    rp_mp_pack_cstr(pk, "version");
    msgpack_pack_uint64(pk, c->version);
    kv_int(pk, "updated_at", c->updated_at);
}

void rp_event_encode(msgpack_packer *pk, const rp_event *e, unsigned enc) {
    bool wire = (enc & RP_ENC_STORED) == 0;
    bool seq = wire && (enc & RP_ENC_SEQ) != 0;
    size_t n = 3 + (wire ? 2 : 0); /* channel, kind, outcome [, customer_id, ts] */
    n += seq + (e->topic.n > 0) + (e->summary.n > 0) + e->has_sentiment + (e->agent.n > 0) +
         (e->issue_id.n > 0) + (e->event_id.n > 0);
    msgpack_pack_map(pk, n);
    if (wire) {
        kv_str(pk, "customer_id", e->customer_id);
        kv_int(pk, "ts", e->ts);
    }
    if (seq) {
        rp_mp_pack_cstr(pk, "seq");
        msgpack_pack_uint32(pk, e->seq);
    }
    rp_mp_pack_cstr(pk, "channel");
    rp_mp_pack_cstr(pk, rp_channel_name(e->channel));
    kv_str(pk, "kind", e->kind);
    kv_opt(pk, "topic", e->topic);
    kv_opt(pk, "summary", e->summary);
    rp_mp_pack_cstr(pk, "outcome");
    rp_mp_pack_cstr(pk, rp_outcome_name(e->outcome));
    if (e->has_sentiment) {
        rp_mp_pack_cstr(pk, "sentiment");
        msgpack_pack_double(pk, e->sentiment);
    }
    kv_opt(pk, "agent", e->agent);
    kv_opt(pk, "issue_id", e->issue_id);
    kv_opt(pk, "event_id", e->event_id);
}

void rp_issue_encode(msgpack_packer *pk, const rp_issue *is, unsigned enc) {
    bool wire = (enc & RP_ENC_STORED) == 0;
    size_t n = 4 + (wire ? 2 : 0); /* status, opened_at, updated_at, contacts [, ids] */
    /* A raw word goes out only when it is not the level's own name, so a
     * record sent with the levels has the bytes it always had. */
    bool st_raw = is->status_raw.n > 0 && !rp_str_eqc(is->status_raw, rp_status_name(is->status));
    bool sev_raw = is->severity != RP_SEV_NONE && is->severity_raw.n > 0 &&
                   !rp_str_eqc(is->severity_raw, rp_severity_name(is->severity));
    n += (is->topic.n > 0) + (is->severity != RP_SEV_NONE) + (is->summary.n > 0) +
         (is->follow_up_due != 0) + st_raw + sev_raw;
    msgpack_pack_map(pk, n);
    if (wire) {
        kv_str(pk, "customer_id", is->customer_id);
        kv_str(pk, "issue_id", is->issue_id);
    }
    kv_opt(pk, "topic", is->topic);
    rp_mp_pack_cstr(pk, "status");
    rp_mp_pack_cstr(pk, rp_status_name(is->status));
    if (st_raw) kv_str(pk, "status_raw", is->status_raw);
    if (is->severity != RP_SEV_NONE) {
        rp_mp_pack_cstr(pk, "severity");
        rp_mp_pack_cstr(pk, rp_severity_name(is->severity));
    }
    if (sev_raw) kv_str(pk, "severity_raw", is->severity_raw);
    kv_opt(pk, "summary", is->summary);
    kv_int(pk, "opened_at", is->opened_at);
    kv_int(pk, "updated_at", is->updated_at);
    if (is->follow_up_due != 0) kv_int(pk, "follow_up_due", is->follow_up_due);
    rp_mp_pack_cstr(pk, "contacts");
    msgpack_pack_uint32(pk, is->contacts);
}

/* ---- request helpers ---------------------------------------------------- */

const msgpack_object *rp_mp_get(const msgpack_object *o, const char *key) {
    assert(key != NULL);
    if (o == NULL || o->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && rp_str_eqc(obj_str(&kv->key), key))
            return &kv->val;
    }
    return NULL;
}

rp_err rp_mp_str(const msgpack_object *o, const char *key, rp_str *out, rp_errbuf *eb) {
    const msgpack_object *v = rp_mp_get(o, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) return RP_NOT_FOUND;
    if (v->type != MSGPACK_OBJECT_STR)
        return rp_errf(eb, RP_BAD_REQUEST, "field '%s' must be a string (got %s)", key,
                       rp_mp_type_name(v));
    *out = obj_str(v);
    return RP_OK;
}

rp_err rp_mp_int(const msgpack_object *o, const char *key, int64_t *out, rp_errbuf *eb) {
    const msgpack_object *v = rp_mp_get(o, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) return RP_NOT_FOUND;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return rp_errf(eb, RP_BAD_REQUEST, "field '%s' must be an integer (got %s)", key,
                       rp_mp_type_name(v));
    if (v->via.u64 > (uint64_t)INT64_MAX)
        return rp_errf(eb, RP_BAD_REQUEST, "field '%s' is out of range", key);
    *out = (int64_t)v->via.u64;
    return RP_OK;
}
