/* digest.c — the per-customer card digest (digest.h, proto/STORAGE.md
 * "digests"): its binary format, the validating parser, the readers, and
 * the maintenance the store's writers call in their own transaction.
 *
 * Format (little-endian, fixed layout, read in place with memcpy-style
 * byte loads: LMDB values are only 2-byte aligned):
 *
 *   header, 16 bytes: u8 version, u8 flags (bit0 complete), u16 nstr,
 *                     u32 n, u32 cap, u32 reserved (0)
 *   n entries, 32 bytes each, newest first (ts desc, then seq desc):
 *                     i64 ts, u32 seq, u8 channel, u8 outcome,
 *                     u8 flags (bit0 has_sentiment), u8 reserved (0),
 *                     f64 sentiment (0 when absent),
 *                     u16 kind, u16 topic, u16 issue_id, u16 agent
 *                     (string indexes; 0xFFFF = empty)
 *   string table:     nstr x u32 offsets into the blob that follows, then
 *                     the blob: nstr items of (u16 len, len bytes)
 *
 * Encoding is deterministic: strings are numbered in order of first use
 * (entries newest first; kind, topic, issue_id, agent), each distinct byte
 * string once, and laid out in that order, so the same events always give
 * the same bytes and the parser can demand that layout exactly.
 *
 * Maintenance (store_int.h "digest.c"): an append inserts its event into
 * the stored digest (rp_si_digest_append) — one mdb_get, one copy, one
 * mdb_put with MDB_RESERVE; anything unusual (no digest yet, another cap,
 * a corrupt value, a retention trim that did not simply drop the oldest
 * entries) rebuilds it from the history (rp_si_digest_rebuild), which is
 * also what merge does for its survivor. Forget and merge delete the
 * digest of the id that loses its events (rp_si_digest_del). The backfill
 * of stores written before digests runs batches of rp_si_digest_fill on
 * the writer (the thread is store.c's).
 *
 * Uses store_codec.c and store_index.c only (store_int.h's layering).
 */
#include "store/digest.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store/keys.h"
#include "store/store_int.h"

#define D_HDR 16u
#define D_ENT 32u
#define D_NOSTR 0xFFFFu
#define D_STR_MAX 64u /* the longest string a digest holds: max(RP_TOKEN_MAX, RP_ID_MAX) */
#define D_FLAG_COMPLETE 0x01u
#define D_FLAG_SENTIMENT 0x01u
/* A digest's strings per entry: kind, topic, issue_id, agent. */
#define D_NFIELDS 4
/* Entries a head holds before it is folded into the body (rp_si_digest_append):
 * 16 entries and their strings are well under 1 KB, inside an LMDB leaf page;
 * the body is rewritten once per 16 appends in time order. */
#define D_HEAD_MAX 16u

/* A head is stored in the evcount table under its customer's id followed
 * by 0x01: right after the customer's event count, which every append
 * rewrites, so on the same (already written) leaf page — a head in a table
 * of its own cost every append one more page to write and sync. No id
 * has a byte below 0x21, so no other key falls between the two. */
#define D_HEAD_KEY_MAX (RP_ID_MAX + 1)
static size_t head_key(char out[D_HEAD_KEY_MAX], rp_str cid) {
    assert(cid.n > 0 && cid.n <= RP_ID_MAX);
    memcpy(out, cid.p, cid.n);
    out[cid.n] = '\x01';
    return cid.n + 1;
}

/* Byte-wise little-endian loads and stores (no alignment assumed). */
static inline uint16_t ld16(const unsigned char *p) { return (uint16_t)(p[0] | (unsigned)p[1] << 8); }
static inline uint32_t ld32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ld64(const unsigned char *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }
static void st16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void st32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void st64(unsigned char *p, uint64_t v) {
    st32(p, (uint32_t)v);
    st32(p + 4, (uint32_t)(v >> 32));
}

/* (a.ts, a.seq) newer than (ts, seq)? */
static bool newer(int64_t ats, uint32_t aseq, int64_t ts, uint32_t seq) {
    return ats > ts || (ats == ts && aseq > seq);
}

static double bits_f64(uint64_t b) {
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}
static uint64_t f64_bits(double x) {
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

/* The limit of string field k (kind, topic, issue_id, agent). */
_Static_assert(RP_ID_MAX == D_STR_MAX && RP_TOKEN_MAX == D_STR_MAX,
               "one string limit serves every field: the parser checks it once per string");

/* --- parsing --------------------------------------------------------------- */

#define CORRUPT(...) rp_errf(eb, RP_INTERNAL, "corrupt digest: " __VA_ARGS__)

rp_err rp_digest_parse(const void *pv, size_t len, rp_digest *out, rp_errbuf *eb) {
    const unsigned char *p = pv;
    if (p == NULL || len < D_HDR) return CORRUPT("%zu bytes, shorter than its header", len);
    if (p[0] != RP_DIGEST_VERSION) return CORRUPT("version %u, this build reads %d", p[0], RP_DIGEST_VERSION);
    if (p[1] & ~D_FLAG_COMPLETE) return CORRUPT("unknown header flags 0x%02x", p[1]);
    uint32_t nstr = ld16(p + 2), n = ld32(p + 4), cap = ld32(p + 8);
    if (ld32(p + 12) != 0) return CORRUPT("reserved header bytes are not 0");
    if (cap == 0 || cap > RP_DIGEST_MAX_EVENTS) return CORRUPT("cap %" PRIu32 " out of range", cap);
    if (n > cap) return CORRUPT("%" PRIu32 " entries, more than its cap %" PRIu32, n, cap);
    /* n <= 1000 and nstr <= 65535: no overflow in these sizes. */
    size_t ents_end = D_HDR + (size_t)n * D_ENT;
    size_t tab_end = ents_end + (size_t)nstr * 4;
    if (len < tab_end) return CORRUPT("%zu bytes, too short for %" PRIu32 " entries and %" PRIu32
                                      " strings", len, n, nstr);
    const unsigned char *offs = p + ents_end, *blob = p + tab_end;
    size_t blen = len - tab_end, at = 0;
    for (uint32_t i = 0; i < nstr; i++) {
        if (ld32(offs + 4 * (size_t)i) != at) return CORRUPT("string %" PRIu32 " is out of place", i);
        if (blen - at < 2) return CORRUPT("string %" PRIu32 " runs past the end", i);
        size_t sl = ld16(blob + at);
        if (sl == 0 || sl > D_STR_MAX) return CORRUPT("string %" PRIu32 " has length %zu", i, sl);
        if (blen - at - 2 < sl) return CORRUPT("string %" PRIu32 " runs past the end", i);
        at += 2 + sl;
    }
    if (at != blen) return CORRUPT("%zu bytes after the string table", blen - at);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = p + D_HDR + (size_t)i * D_ENT;
        uint64_t ts = ld64(e);
        uint32_t seq = ld32(e + 8);
        if (ts > (uint64_t)INT64_MAX) return CORRUPT("entry %" PRIu32 " has a negative ts", i);
        if (i > 0) {
            const unsigned char *q = e - D_ENT;
            uint64_t pts = ld64(q);
            uint32_t pseq = ld32(q + 8);
            if (!(pts > ts || (pts == ts && pseq > seq)))
                return CORRUPT("entry %" PRIu32 " is not older than the one before it", i);
        }
        if (e[12] >= RP_CH__COUNT) return CORRUPT("entry %" PRIu32 " has channel %u", i, e[12]);
        if (e[13] >= RP_OUT__COUNT) return CORRUPT("entry %" PRIu32 " has outcome %u", i, e[13]);
        if (e[14] & ~D_FLAG_SENTIMENT) return CORRUPT("entry %" PRIu32 " has unknown flags", i);
        if (e[15] != 0) return CORRUPT("entry %" PRIu32 " has a reserved byte set", i);
        uint64_t sb = ld64(e + 16);
        if (e[14] & D_FLAG_SENTIMENT) {
            double x = bits_f64(sb);
            if (!(x >= -1.0 && x <= 1.0)) /* also refuses NaN and infinities */
                return CORRUPT("entry %" PRIu32 " has sentiment out of range", i);
        } else if (sb != 0) {
            return CORRUPT("entry %" PRIu32 " has a sentiment without its flag", i);
        }
        for (int k = 0; k < D_NFIELDS; k++) {
            uint32_t x = ld16(e + 24 + 2 * k);
            if (x == D_NOSTR) continue;
            if (x >= nstr) return CORRUPT("entry %" PRIu32 " names string %" PRIu32 " of %" PRIu32, i, x, nstr);
            /* Every field's limit is D_STR_MAX, checked once per string
             * above (the static assert keeps it so). */
        }
    }
    out->entries = p + D_HDR;
    out->n = n;
    out->cap = cap;
    out->complete = (p[1] & D_FLAG_COMPLETE) != 0;
    out->strtab = offs;
    out->strtab_len = len - ents_end;
    out->nstr = nstr;
    out->head_entries = out->head_strtab = NULL;
    out->head_n = out->head_nstr = 0;
    return RP_OK;
}

bool rp_digest_covers(const rp_digest *d, uint32_t card_max_events, int64_t at) {
    if (!d->complete && !(d->n >= card_max_events && d->cap >= card_max_events)) return false;
    if (d->n == 0) return true;
    return at >= (int64_t)ld64(d->head_n ? d->head_entries : d->entries);
}

/* String x of a string table (x < nstr, or D_NOSTR: empty). */
static inline rp_str tstr(const unsigned char *strtab, uint32_t nstr, uint32_t x) {
    if (x == D_NOSTR) return (rp_str){NULL, 0};
    assert(x < nstr);
    const unsigned char *blob = strtab + 4 * (size_t)nstr;
    const unsigned char *s = blob + ld32(strtab + 4 * (size_t)x);
    return (rp_str){(const char *)s + 2, ld16(s)};
}

/* String x of d's own value (not its head's). */
static inline rp_str dstr(const rp_digest *d, uint32_t x) { return tstr(d->strtab, d->nstr, x); }

void rp_digest_event(const rp_digest *d, uint32_t i, rp_str cid, rp_event *out) {
    assert(i < d->n);
    const unsigned char *e, *tab;
    uint32_t nstr;
    if (i < d->head_n) {
        e = d->head_entries + (size_t)i * D_ENT;
        tab = d->head_strtab;
        nstr = d->head_nstr;
    } else {
        e = d->entries + (size_t)(i - d->head_n) * D_ENT;
        tab = d->strtab;
        nstr = d->nstr;
    }
    /* Every field set, none by memset: this runs for up to 200 entries
     * per card. */
    out->customer_id = cid;
    out->has_seq = false;
    out->summary = (rp_str){NULL, 0};
    out->event_id = (rp_str){NULL, 0};
    out->ts = (int64_t)ld64(e);
    out->seq = ld32(e + 8);
    out->channel = (rp_channel)e[12];
    out->outcome = (rp_outcome)e[13];
    out->has_sentiment = (e[14] & D_FLAG_SENTIMENT) != 0;
    out->sentiment = bits_f64(ld64(e + 16));
    out->kind = tstr(tab, nstr, ld16(e + 24));
    out->topic = tstr(tab, nstr, ld16(e + 26));
    out->issue_id = tstr(tab, nstr, ld16(e + 28));
    out->agent = tstr(tab, nstr, ld16(e + 30));
}

/* --- readers ---------------------------------------------------------------- */

rp_err rp_store_digest(rp_store *s, MDB_txn *txn, rp_str cid, rp_digest *out, rp_errbuf *eb) {
    if (cid.n == 0 || cid.n > RP_ID_MAX)
        return rp_errf(eb, RP_NOT_FOUND, "no digest for an id of %zu bytes", cid.n);
    if (s->absent[RP_DB_DIGESTS])
        return rp_errf(eb, RP_NOT_FOUND, "this store has no digests (opened read-only before an upgrade)");
    MDB_val k = rp_si_mval(cid.p, cid.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_DIGESTS], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rp_errf(eb, RP_NOT_FOUND, "customer '%.*s' has no digest", (int)cid.n, cid.p);
    if (mrc) return rp_si_mdb(eb, mrc, "reading a digest");
    rp_err rc = rp_digest_parse(v.mv_data, v.mv_size, out, eb);
    if (rc != RP_OK) return rc;
    char hk[D_HEAD_KEY_MAX];
    k = rp_si_mval(hk, head_key(hk, cid));
    mrc = mdb_get(txn, s->dbi[RP_DB_EVCOUNT], &k, &v);
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading a digest head");
    rp_digest h;
    if ((rc = rp_digest_parse(v.mv_data, v.mv_size, &h, eb)) != RP_OK) return rc;
    if (h.n == 0 || (out->n > 0 && !newer((int64_t)ld64(h.entries + (size_t)(h.n - 1) * D_ENT),
                                          ld32(h.entries + (size_t)(h.n - 1) * D_ENT + 8),
                                          (int64_t)ld64(out->entries), ld32(out->entries + 8))))
        return rp_errf(eb, RP_INTERNAL, "corrupt digest: the head of '%.*s' is empty or not newer than its body",
                       (int)cid.n, cid.p);
    out->head_entries = h.entries;
    out->head_strtab = h.strtab;
    out->head_n = h.n;
    out->head_nstr = h.nstr;
    out->n += h.n;
    return RP_OK;
}

rp_err rp_store_event_at(rp_store *s, MDB_txn *txn, rp_str cid, int64_t ts, uint32_t seq,
                         rp_event *out, rp_errbuf *eb) {
    if (cid.n == 0 || cid.n > RP_ID_MAX || ts < 0)
        return rp_errf(eb, RP_NOT_FOUND, "no such event");
    char key[RP_KEYS_EVENT_MAX];
    size_t kn = rp_keys_event(key, cid, ts, seq);
    MDB_val k = rp_si_mval(key, kn), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_EVENTS], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rp_errf(eb, RP_NOT_FOUND, "customer '%.*s' has no event at %" PRId64 ".%" PRIu32,
                       (int)cid.n, cid.p, ts, seq);
    if (mrc) return rp_si_mdb(eb, mrc, "reading an event");
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 512)) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading an event");
    rp_err rc = rp_si_decode_event(&v, &z, out, eb); /* strings point into v, not z */
    msgpack_zone_destroy(&z);
    if (rc != RP_OK) return rc;
    out->customer_id = cid;
    out->ts = ts;
    out->seq = seq;
    return RP_OK;
}

/* --- encoding ----------------------------------------------------------------- */

/* One entry to encode; the strings point wherever the caller keeps them. */
typedef struct dent {
    int64_t ts;
    uint32_t seq;
    uint8_t channel, outcome;
    bool has_sentiment;
    double sentiment;
    rp_str str[D_NFIELDS]; /* kind, topic, issue_id, agent */
} dent;

static void dent_from_event(dent *d, const rp_event *e, int64_t ts, uint32_t seq) {
    d->ts = ts;
    d->seq = seq;
    d->channel = (uint8_t)e->channel;
    d->outcome = (uint8_t)e->outcome;
    d->has_sentiment = e->has_sentiment;
    d->sentiment = e->has_sentiment ? e->sentiment : 0.0;
    d->str[0] = e->kind;
    d->str[1] = e->topic;
    d->str[2] = e->issue_id;
    d->str[3] = e->agent;
}


/* The string numbering and size of one encoding. */
typedef struct dplan {
    uint16_t *idx;       /* D_NFIELDS per entry */
    const rp_str **uniq; /* the distinct strings in order of first use */
    uint32_t nstr;
    size_t size;         /* of the whole value */
    void *mem;
} dplan;

static void plan_free(dplan *pl) {
    free(pl->mem);
    pl->mem = NULL;
}

static uint32_t str_hash(rp_str s) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 16777619u;
    return h;
}

/* Check ents[0..n) (order, ranges, lengths: so that nothing the parser
 * would refuse is ever written), number their strings and size the value.
 * On RP_OK the caller frees the plan with plan_free. */
static rp_err plan_make(const dent *ents, uint32_t n, dplan *pl, rp_errbuf *eb) {
    memset(pl, 0, sizeof *pl);
    if (n > RP_DIGEST_MAX_EVENTS) return rp_errf(eb, RP_INTERNAL, "digest of %" PRIu32 " entries", n);
    size_t nocc = (size_t)n * D_NFIELDS;
    size_t nslots = 16;
    while (nslots < 2 * nocc) nslots *= 2;
    /* idx: nocc u16; slots: nslots u16 (string number + 1; 0 free); uniq: nocc pointers. */
    size_t uniq_off = ((nocc + nslots) * sizeof(uint16_t) + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *);
    pl->mem = calloc(1, uniq_off + (nocc ? nocc : 1) * sizeof(const rp_str *));
    if (pl->mem == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory encoding a digest");
    pl->idx = pl->mem;
    uint16_t *slots = pl->idx + nocc;
    pl->uniq = (const rp_str **)((char *)pl->mem + uniq_off);
    size_t blob = 0;
    for (uint32_t i = 0; i < n; i++) {
        const dent *d = &ents[i];
        if (d->ts < 0 || (i > 0 && !newer(ents[i - 1].ts, ents[i - 1].seq, d->ts, d->seq)) ||
            d->channel >= RP_CH__COUNT || d->outcome >= RP_OUT__COUNT ||
            (d->has_sentiment && !(d->sentiment >= -1.0 && d->sentiment <= 1.0))) {
            plan_free(pl);
            return rp_errf(eb, RP_INTERNAL, "an event at %" PRId64 ".%" PRIu32 " cannot be put in a digest",
                           d->ts, d->seq);
        }
        for (int k = 0; k < D_NFIELDS; k++) {
            const rp_str *s = &d->str[k];
            uint16_t *out = &pl->idx[(size_t)i * D_NFIELDS + k];
            if (s->n == 0) {
                *out = D_NOSTR;
                continue;
            }
            if (s->n > D_STR_MAX) {
                plan_free(pl);
                return rp_errf(eb, RP_INTERNAL, "an event at %" PRId64 ".%" PRIu32
                               " has a string too long for a digest", d->ts, d->seq);
            }
            size_t h = str_hash(*s) & (nslots - 1);
            for (;;) {
                uint16_t x = slots[h];
                if (x == 0) {
                    pl->uniq[pl->nstr] = s;
                    slots[h] = (uint16_t)(pl->nstr + 1);
                    *out = (uint16_t)pl->nstr++;
                    blob += 2 + s->n;
                    break;
                }
                if (rp_str_eq(*pl->uniq[x - 1], *s)) {
                    *out = (uint16_t)(x - 1);
                    break;
                }
                h = (h + 1) & (nslots - 1);
            }
        }
    }
    /* n <= 1000, nstr <= 4000, blob <= 4000 * 66: far from SIZE_MAX. */
    pl->size = D_HDR + (size_t)n * D_ENT + (size_t)pl->nstr * 4 + blob;
    return RP_OK;
}

/* Write entry d with string numbers idx at o (D_ENT bytes). */
static void put_entry(unsigned char *o, const dent *d, const uint16_t idx[D_NFIELDS]) {
    st64(o, (uint64_t)d->ts);
    st32(o + 8, d->seq);
    o[12] = d->channel;
    o[13] = d->outcome;
    o[14] = d->has_sentiment ? D_FLAG_SENTIMENT : 0;
    o[15] = 0;
    st64(o + 16, d->has_sentiment ? f64_bits(d->sentiment) : 0);
    for (int k = 0; k < D_NFIELDS; k++) st16(o + 24 + 2 * k, idx[k]);
}

/* Write the value planned in pl into dst (pl->size bytes). */
static void plan_write(const dplan *pl, const dent *ents, uint32_t n, uint32_t cap, bool complete,
                       unsigned char *dst) {
    dst[0] = RP_DIGEST_VERSION;
    dst[1] = complete ? D_FLAG_COMPLETE : 0;
    st16(dst + 2, (uint16_t)pl->nstr);
    st32(dst + 4, n);
    st32(dst + 8, cap);
    st32(dst + 12, 0);
    for (uint32_t i = 0; i < n; i++)
        put_entry(dst + D_HDR + (size_t)i * D_ENT, &ents[i], &pl->idx[(size_t)i * D_NFIELDS]);
    unsigned char *offs = dst + D_HDR + (size_t)n * D_ENT;
    unsigned char *blob = offs + (size_t)pl->nstr * 4;
    size_t at = 0;
    for (uint32_t x = 0; x < pl->nstr; x++) {
        const rp_str *s = pl->uniq[x];
        st32(offs + 4 * (size_t)x, (uint32_t)at);
        st16(blob + at, (uint16_t)s->n);
        memcpy(blob + at + 2, s->p, s->n);
        at += 2 + s->n;
    }
    assert(blob + at == dst + pl->size);
}

/* Encode into a heap blob (out: freed by the caller on RP_OK). */
static rp_err encode_blob(const dent *ents, uint32_t n, uint32_t cap, bool complete, rp_si_blob *out,
                          rp_errbuf *eb) {
    dplan pl;
    rp_err rc = plan_make(ents, n, &pl, eb);
    if (rc != RP_OK) return rc;
    out->p = malloc(pl.size);
    if (out->p == NULL) {
        plan_free(&pl);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory encoding a digest");
    }
    out->n = pl.size;
    plan_write(&pl, ents, n, cap, complete, (unsigned char *)out->p);
    plan_free(&pl);
    return RP_OK;
}

/* --- maintenance --------------------------------------------------------------- */

uint32_t rp_si_digest_cap(const rp_store *s) {
    uint32_t c = s->cfg.card_max_events;
    if (c > RP_DIGEST_MAX_EVENTS) c = RP_DIGEST_MAX_EVENTS;
    return c > 0 ? c : 1;
}

/* Walk cid's newest events (newest first) into ents (at most cap), with
 * their strings pointing into the map; *complete: no older event exists;
 * *read (may be NULL) gets how many events were decoded. */
static rp_err read_newest(rp_store *s, MDB_txn *txn, rp_str cid, uint32_t cap, dent *ents, uint32_t *n,
                          bool *complete, rp_errbuf *eb) {
    *n = 0;
    *complete = true;
    char pfx[RP_KEYS_PREFIX_MAX], seek[RP_KEYS_PREFIX_MAX];
    size_t pn = rp_keys_prefix(pfx, cid);
    memcpy(seek, pfx, pn);
    seek[pn - 1] = '\x01'; /* just after every "id\0..." key */
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024)) return rp_errf(eb, RP_UNAVAILABLE, "out of memory building a digest");
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) {
        msgpack_zone_destroy(&z);
        return rp_si_mdb(eb, mrc, "opening an events cursor");
    }
    rp_err rc = RP_OK;
    MDB_val k = rp_si_mval(seek, pn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0) mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    while (mrc == 0 && rp_keys_has_prefix(&k, pfx, pn)) {
        if (*n == cap) {
            *complete = false;
            break;
        }
        int64_t ts;
        uint32_t seq;
        if (!rp_keys_event_parse(&k, pn, &ts, &seq)) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt event key of '%.*s'", (int)cid.n, cid.p);
            goto out;
        }
        rp_event e;
        rc = rp_si_decode_event(&v, &z, &e, eb); /* strings point into the map, not z */
        if (rc != RP_OK) goto out;
        dent_from_event(&ents[(*n)++], &e, ts, seq);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading events");
out:
    mdb_cursor_close(cur);
    msgpack_zone_destroy(&z);
    return rc;
}

rp_err rp_si_digest_build(rp_store *s, MDB_txn *txn, rp_str cid, uint32_t cap, rp_si_blob *out,
                          rp_errbuf *eb) {
    out->p = NULL;
    out->n = 0;
    assert(cid.n > 0 && cid.n <= RP_ID_MAX);
    if (cap == 0 || cap > RP_DIGEST_MAX_EVENTS)
        return rp_errf(eb, RP_INTERNAL, "digest cap %" PRIu32 " out of range", cap);
    dent *ents = malloc((size_t)cap * sizeof *ents);
    if (ents == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory building a digest");
    uint32_t n;
    bool complete;
    rp_err rc = read_newest(s, txn, cid, cap, ents, &n, &complete, eb);
    if (rc == RP_OK) rc = encode_blob(ents, n, cap, complete, out, eb);
    free(ents);
    return rc;
}

/* Delete cid's head (none is fine). */
static rp_err head_del(rp_store *s, MDB_txn *txn, rp_str cid, rp_errbuf *eb) {
    char hk[D_HEAD_KEY_MAX];
    MDB_val k = rp_si_mval(hk, head_key(hk, cid));
    int mrc = mdb_del(txn, s->dbi[RP_DB_EVCOUNT], &k, NULL);
    if (mrc == 0 || mrc == MDB_NOTFOUND) return RP_OK;
    return rp_si_mdb(eb, mrc, "deleting a digest head");
}

rp_err rp_si_digest_del(rp_store *s, MDB_txn *txn, rp_str cid, rp_errbuf *eb) {
    MDB_val k = rp_si_mval(cid.p, cid.n);
    int mrc = mdb_del(txn, s->dbi[RP_DB_DIGESTS], &k, NULL);
    if (mrc != 0 && mrc != MDB_NOTFOUND) return rp_si_mdb(eb, mrc, "deleting a digest");
    return head_del(s, txn, cid, eb);
}

rp_err rp_si_digest_rebuild(rp_store *s, MDB_txn *txn, rp_str cid, rp_errbuf *eb) {
    rp_si_blob b;
    rp_errbuf beb = {0};
    rp_err rc = rp_si_digest_build(s, txn, cid, rp_si_digest_cap(s), &b, &beb);
    if (rc == RP_INTERNAL) /* a corrupt event: no digest, the card reads (and reports) the history */
        return rp_si_digest_del(s, txn, cid, eb);
    if (rc != RP_OK) return rp_errf(eb, rc, "%s", beb.msg);
    MDB_val k = rp_si_mval(cid.p, cid.n), v = rp_si_mval(b.p, b.n);
    int mrc = mdb_put(txn, s->dbi[RP_DB_DIGESTS], &k, &v, 0);
    rp_si_blob_free(&b);
    if (mrc) return rp_si_mdb(eb, mrc, "writing a digest");
    return head_del(s, txn, cid, eb);
}

/* The (ts, seq) of cid's oldest event; *found false when it has none. */
static rp_err oldest_event(rp_store *s, MDB_txn *txn, rp_str cid, bool *found, int64_t *ts, uint32_t *seq,
                           rp_errbuf *eb) {
    char pfx[RP_KEYS_PREFIX_MAX];
    size_t pn = rp_keys_prefix(pfx, cid);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an events cursor");
    rp_err rc = RP_OK;
    MDB_val k = rp_si_mval(pfx, pn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    *found = mrc == 0 && rp_keys_has_prefix(&k, pfx, pn);
    if (mrc != 0 && mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading events");
    else if (*found && !rp_keys_event_parse(&k, pn, ts, seq))
        rc = rp_errf(eb, RP_INTERNAL, "corrupt event key of '%.*s'", (int)cid.n, cid.p);
    mdb_cursor_close(cur);
    return rc;
}

/* The digest made of d's entries with ne inserted at pos, the first n of
 * them (ne left out when pos >= n), encoded straight into the map under
 * cid — the same bytes a rebuild (plan_make) writes, without its hashing: d's
 * strings keep their identity (their index), only ne's four are looked up
 * among them, and all are renumbered in order of first use by a table
 * indexed by old number. d must not point into the map. */
static rp_err splice_put(rp_store *s, MDB_txn *txn, rp_db db, rp_str key, const rp_digest *d,
                         const dent *ne, uint32_t pos, uint32_t n, uint32_t cap, bool complete,
                         rp_errbuf *eb) {
    if (ne->ts < 0 || ne->channel >= RP_CH__COUNT || ne->outcome >= RP_OUT__COUNT ||
        (ne->has_sentiment && !(ne->sentiment >= -1.0 && ne->sentiment <= 1.0)))
        return rp_errf(eb, RP_INTERNAL, "an event at %" PRId64 ".%" PRIu32 " cannot be put in a digest",
                       ne->ts, ne->seq);
    /* ne's strings in old numbering; a string d lacks gets d->nstr + k. */
    uint32_t nidx[D_NFIELDS];
    for (int k = 0; k < D_NFIELDS; k++) {
        rp_str x = ne->str[k];
        nidx[k] = D_NOSTR;
        if (x.n == 0) continue;
        if (x.n > D_STR_MAX)
            return rp_errf(eb, RP_INTERNAL, "an event at %" PRId64 ".%" PRIu32
                           " has a string too long for a digest", ne->ts, ne->seq);
        for (uint32_t i = 0; i < d->nstr && nidx[k] == D_NOSTR; i++)
            if (rp_str_eq(dstr(d, i), x)) nidx[k] = i;
        for (int j = 0; j < k && nidx[k] == D_NOSTR; j++)
            if (nidx[j] >= d->nstr && rp_str_eq(ne->str[j], x)) nidx[k] = nidx[j];
        if (nidx[k] == D_NOSTR) nidx[k] = d->nstr + (uint32_t)k;
    }
    /* Renumber in order of first use: map[old] = new number; order[new] = old. */
    size_t m = (size_t)d->nstr + D_NFIELDS;
    uint16_t *map = malloc(m * 2 * sizeof *map);
    if (map == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory updating a digest");
    uint16_t *order = map + m;
    for (size_t i = 0; i < m; i++) map[i] = D_NOSTR;
    uint32_t nstr = 0;
    size_t blob = 0;
    for (uint32_t j = 0; j < n; j++) {
        const unsigned char *e = j < pos ? d->entries + (size_t)j * D_ENT
                                         : j == pos ? NULL : d->entries + (size_t)(j - 1) * D_ENT;
        for (int k = 0; k < D_NFIELDS; k++) {
            uint32_t x = e ? ld16(e + 24 + 2 * k) : nidx[k];
            if (x == D_NOSTR || map[x] != D_NOSTR) continue;
            map[x] = (uint16_t)nstr;
            order[nstr++] = (uint16_t)x;
            blob += 2 + (x < d->nstr ? dstr(d, x).n : ne->str[x - d->nstr].n);
        }
    }
    size_t size = D_HDR + (size_t)n * D_ENT + (size_t)nstr * 4 + blob;
    MDB_val k = rp_si_mval(key.p, key.n), v = {size, NULL};
    int mrc = mdb_put(txn, s->dbi[db], &k, &v, MDB_RESERVE);
    if (mrc) {
        free(map);
        return rp_si_mdb(eb, mrc, "writing a digest");
    }
    unsigned char *dst = v.mv_data;
    dst[0] = RP_DIGEST_VERSION;
    dst[1] = complete ? D_FLAG_COMPLETE : 0;
    st16(dst + 2, (uint16_t)nstr);
    st32(dst + 4, n);
    st32(dst + 8, cap);
    st32(dst + 12, 0);
    for (uint32_t j = 0; j < n; j++) {
        unsigned char *o = dst + D_HDR + (size_t)j * D_ENT;
        if (j == pos) {
            uint16_t idx[D_NFIELDS];
            for (int f = 0; f < D_NFIELDS; f++) idx[f] = nidx[f] == D_NOSTR ? D_NOSTR : map[nidx[f]];
            put_entry(o, ne, idx);
            continue;
        }
        const unsigned char *e = d->entries + (size_t)(j < pos ? j : j - 1) * D_ENT;
        memcpy(o, e, D_ENT);
        for (int f = 0; f < D_NFIELDS; f++) {
            uint32_t x = ld16(e + 24 + 2 * f);
            if (x != D_NOSTR) st16(o + 24 + 2 * f, map[x]);
        }
    }
    unsigned char *offs = dst + D_HDR + (size_t)n * D_ENT, *out = offs + (size_t)nstr * 4;
    size_t at = 0;
    for (uint32_t i = 0; i < nstr; i++) {
        rp_str x = order[i] < d->nstr ? dstr(d, order[i]) : ne->str[order[i] - d->nstr];
        st32(offs + 4 * (size_t)i, (uint32_t)at);
        st16(out + at, (uint16_t)x.n);
        memcpy(out + at + 2, x.p, x.n);
        at += 2 + x.n;
    }
    assert(at == blob);
    free(map);
    return RP_OK;
}

/* What a digest value read for an update is. */
typedef enum part_state { PART_NONE = 0, PART_OK, PART_BAD } part_state;

/* A heap copy of key's value in db (the puts of an update may move the
 * map's pages), parsed into *d: *st is PART_NONE when there is none,
 * PART_BAD when it does not parse (the caller rebuilds), PART_OK. Returns
 * RP_OK, or RP_UNAVAILABLE / a mapped LMDB error (in eb). *copy is the
 * caller's to free in every case. */
static rp_err load_part(rp_store *s, MDB_txn *txn, rp_db db, rp_str key, rp_si_blob *copy, rp_digest *d,
                        part_state *st, rp_errbuf *eb) {
    copy->p = NULL;
    copy->n = 0;
    memset(d, 0, sizeof *d);
    *st = PART_NONE;
    if (s->absent[db]) return RP_OK;
    MDB_val k = rp_si_mval(key.p, key.n), v;
    int mrc = mdb_get(txn, s->dbi[db], &k, &v);
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading a digest");
    copy->p = malloc(v.mv_size ? v.mv_size : 1);
    if (copy->p == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory updating a digest");
    copy->n = v.mv_size;
    memcpy(copy->p, v.mv_data, v.mv_size);
    rp_errbuf peb = {0};
    *st = rp_digest_parse(copy->p, copy->n, d, &peb) == RP_OK ? PART_OK : PART_BAD;
    return RP_OK;
}

/* Insert the new event into body d (a parsed heap copy of the stored
 * body, of the current cap, with no head), drop what is beyond the cap,
 * then account for the trim: it removed count_stored - count events, the
 * oldest ones — unless the age rule stepped over the new event; in both
 * cases the remaining events are the newest count exactly when the oldest
 * remaining one is entry count - 1, which one seek checks. *rebuild is set
 * when the digest must be rebuilt from the history instead. */
static rp_err body_append(rp_store *s, MDB_txn *txn, rp_str cid, const rp_digest *d, const rp_event *e,
                          int64_t ts, uint32_t seq, uint32_t count_stored, uint32_t count, bool *rebuild,
                          rp_errbuf *eb) {
    uint32_t cap = rp_si_digest_cap(s);
    /* Binary search: the first entry older than (ts, seq). */
    uint32_t lo = 0, hi = d->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const unsigned char *me = d->entries + (size_t)mid * D_ENT;
        if (newer((int64_t)ld64(me), ld32(me + 8), ts, seq)) lo = mid + 1;
        else hi = mid;
    }
    uint32_t pos = lo;
    if (pos < d->n) {
        const unsigned char *pe = d->entries + (size_t)pos * D_ENT;
        if ((int64_t)ld64(pe) == ts && ld32(pe + 8) == seq) { /* already there: not this digest */
            *rebuild = true;
            return RP_OK;
        }
    }
    uint32_t trimmed = count_stored - count;
    if (pos >= cap && trimmed == 0 && d->complete == (d->n == count)) return RP_OK; /* nothing changes */
    dent ne;
    dent_from_event(&ne, e, ts, seq);
    uint32_t n = pos < cap ? d->n + 1 : d->n; /* the entries after the insert, ... */
    if (n > cap) n = cap;                     /* ... the oldest past the cap dropped */
    if (trimmed > 0 && count <= n) {
        bool found = false;
        int64_t ots = 0, lts = 0;
        uint32_t oseq = 0, lseq = 0;
        rp_err rc = oldest_event(s, txn, cid, &found, &ots, &oseq, eb);
        if (rc != RP_OK) return rc;
        if (count > 0) { /* entry count - 1 after the insert */
            uint32_t j = count - 1;
            const unsigned char *le = j < pos ? d->entries + (size_t)j * D_ENT
                                              : j == pos ? NULL : d->entries + (size_t)(j - 1) * D_ENT;
            lts = le ? (int64_t)ld64(le) : ts;
            lseq = le ? ld32(le + 8) : seq;
        }
        if (count == 0 || !found || lts != ots || lseq != oseq) {
            *rebuild = true;
            return RP_OK;
        }
        n = count;
    }
    return splice_put(s, txn, RP_DB_DIGESTS, cid, d, &ne, pos, n, cap, n == count, eb);
}

/* Entry i of one parsed value as a dent (strings point into the value). */
static void part_load(dent *out, const rp_digest *d, uint32_t i) {
    const unsigned char *e = d->entries + (size_t)i * D_ENT;
    out->ts = (int64_t)ld64(e);
    out->seq = ld32(e + 8);
    out->channel = e[12];
    out->outcome = e[13];
    out->has_sentiment = (e[14] & D_FLAG_SENTIMENT) != 0;
    out->sentiment = bits_f64(ld64(e + 16));
    for (int k = 0; k < D_NFIELDS; k++) out->str[k] = dstr(d, ld16(e + 24 + 2 * k));
}

/* Fold head h into body b: the body becomes h's entries then b's, the
 * oldest past the cap dropped, complete while nothing was dropped from a
 * complete body; the head is deleted. Both are heap copies. */
static rp_err fold(rp_store *s, MDB_txn *txn, rp_str cid, const rp_digest *h, const rp_digest *b,
                   rp_errbuf *eb) {
    uint32_t cap = rp_si_digest_cap(s), total = h->n + b->n, n = total < cap ? total : cap;
    dent *ents = malloc(((size_t)n + 1) * sizeof *ents);
    if (ents == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory folding a digest head");
    for (uint32_t i = 0; i < n; i++) part_load(&ents[i], i < h->n ? h : b, i < h->n ? i : i - h->n);
    rp_si_blob out;
    rp_err rc = encode_blob(ents, n, cap, b->complete && total <= cap, &out, eb);
    free(ents);
    if (rc != RP_OK) return rc;
    MDB_val k = rp_si_mval(cid.p, cid.n), v = rp_si_mval(out.p, out.n);
    int mrc = mdb_put(txn, s->dbi[RP_DB_DIGESTS], &k, &v, 0);
    rp_si_blob_free(&out);
    if (mrc) return rp_si_mdb(eb, mrc, "writing a digest");
    return head_del(s, txn, cid, eb);
}

/* The append's digest upkeep. The common case — an event newer than every
 * entry, no trim — goes into the head: a value of at most D_HEAD_MAX
 * entries that fits an LMDB leaf page, so the append writes that page and
 * not the body's (about 6.7 KB at 200 entries: two overflow pages). A full
 * head is folded into the body first, so the body is rewritten once per
 * D_HEAD_MAX appends in time order. Anything else (an older event, a
 * trim) folds the head and updates the body (body_append). */
rp_err rp_si_digest_append(rp_store *s, MDB_txn *txn, rp_str cid, const rp_event *e, int64_t ts,
                           uint32_t seq, uint32_t count_stored, rp_errbuf *eb) {
    uint32_t cap = rp_si_digest_cap(s), count;
    rp_err rc = rp_si_evcount_get(s, txn, cid, &count, eb);
    if (rc != RP_OK) return rc;
    /* The body is only glanced at in place here (header and newest
     * entry, before any put): the head path never copies or rewrites it. */
    MDB_val k = rp_si_mval(cid.p, cid.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_DIGESTS], &k, &v);
    if (mrc == MDB_NOTFOUND || count > count_stored) return rp_si_digest_rebuild(s, txn, cid, eb);
    if (mrc) return rp_si_mdb(eb, mrc, "reading a digest");
    const unsigned char *bv = v.mv_data;
    if (v.mv_size < D_HDR || bv[0] != RP_DIGEST_VERSION || ld32(bv + 8) != cap ||
        (ld32(bv + 4) > 0 && v.mv_size < D_HDR + D_ENT))
        return rp_si_digest_rebuild(s, txn, cid, eb); /* unreadable or another cap */
    int64_t bts = ld32(bv + 4) ? (int64_t)ld64(bv + D_HDR) : -1;
    uint32_t bseq = ld32(bv + 4) ? ld32(bv + D_HDR + 8) : 0;
    rp_si_blob hcopy, bcopy = {NULL, 0};
    rp_digest h, b;
    part_state hs, bs;
    bool rebuild = false;
    char hk[D_HEAD_KEY_MAX];
    rp_str hkey = {hk, head_key(hk, cid)};
    rc = load_part(s, txn, RP_DB_EVCOUNT, hkey, &hcopy, &h, &hs, eb);
    if (rc != RP_OK) goto done;
    if (hs == PART_BAD || (hs == PART_OK && h.n == 0)) {
        rebuild = true;
        goto done;
    }
    bool hfound = hs == PART_OK;
    bool newest = hfound ? newer(ts, seq, (int64_t)ld64(h.entries), ld32(h.entries + 8))
                         : bts < 0 || newer(ts, seq, bts, bseq);
    bool head_path = newest && count_stored == count && cap > D_HEAD_MAX;
    if (!head_path || (hfound && h.n >= D_HEAD_MAX)) { /* the body changes: read it whole */
        rc = load_part(s, txn, RP_DB_DIGESTS, cid, &bcopy, &b, &bs, eb);
        if (rc == RP_OK && (bs != PART_OK || b.cap != cap)) rebuild = true;
        if (rc != RP_OK || rebuild) goto done;
        if (hfound) {
            rc = fold(s, txn, cid, &h, &b, eb);
            memset(&h, 0, sizeof h); /* folded: a new event starts a new head */
            if (rc == RP_OK && !head_path) { /* the body the fold wrote */
                rp_si_blob_free(&bcopy);
                rc = load_part(s, txn, RP_DB_DIGESTS, cid, &bcopy, &b, &bs, eb);
                if (rc == RP_OK && bs != PART_OK) rebuild = true;
            }
            if (rc != RP_OK || rebuild) goto done;
        }
        if (!head_path) {
            rc = body_append(s, txn, cid, &b, e, ts, seq, count_stored, count, &rebuild, eb);
            goto done;
        }
    }
    dent ne;
    dent_from_event(&ne, e, ts, seq);
    rc = splice_put(s, txn, RP_DB_EVCOUNT, hkey, &h, &ne, 0, h.n + 1, D_HEAD_MAX, false, eb);
done:
    rp_si_blob_free(&bcopy);
    rp_si_blob_free(&hcopy);
    if (rc == RP_OK && rebuild) rc = rp_si_digest_rebuild(s, txn, cid, eb);
    return rc;
}

/* --- backfill ----------------------------------------------------------------- */

#define META_READY "digest_ready"
#define META_FILL "digest_fill"

/* version ‖ cap, the stamp of both meta values. */
static void stamp(const rp_store *s, unsigned char b[8]) {
    rp_keys_put_le32(b, RP_DIGEST_VERSION);
    rp_keys_put_le32(b + 4, rp_si_digest_cap(s));
}

rp_err rp_si_digest_state(rp_store *s, MDB_txn *txn, bool *ready, char after[RP_ID_MAX], size_t *after_n,
                          rp_errbuf *eb) {
    *ready = false;
    *after_n = 0;
    if (s->absent[RP_DB_DIGESTS]) return RP_OK;
    unsigned char st[8];
    stamp(s, st);
    MDB_val k = rp_si_mval(META_READY, strlen(META_READY)), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_META], &k, &v);
    if (mrc == 0) {
        *ready = v.mv_size == 8 && memcmp(v.mv_data, st, 8) == 0;
        if (*ready) return RP_OK;
    } else if (mrc != MDB_NOTFOUND) {
        return rp_si_mdb(eb, mrc, "reading the digest state");
    }
    k = rp_si_mval(META_FILL, strlen(META_FILL));
    mrc = mdb_get(txn, s->dbi[RP_DB_META], &k, &v);
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading the digest backfill state");
    /* A progress mark of another version or cap, or a corrupt one, starts over. */
    if (v.mv_size > 8 && v.mv_size <= 8 + RP_ID_MAX && memcmp(v.mv_data, st, 8) == 0) {
        *after_n = v.mv_size - 8;
        memcpy(after, (const char *)v.mv_data + 8, *after_n);
    }
    return RP_OK;
}

rp_err rp_si_digest_mark_ready(rp_store *s, MDB_txn *txn, rp_errbuf *eb) {
    unsigned char st[8];
    stamp(s, st);
    MDB_val k = rp_si_mval(META_READY, strlen(META_READY)), v = rp_si_mval(st, 8);
    int mrc = mdb_put(txn, s->dbi[RP_DB_META], &k, &v, 0);
    if (mrc == 0) {
        MDB_val fk = rp_si_mval(META_FILL, strlen(META_FILL));
        mrc = mdb_del(txn, s->dbi[RP_DB_META], &fk, NULL);
        if (mrc == MDB_NOTFOUND) mrc = 0;
    }
    return mrc ? rp_si_mdb(eb, mrc, "marking the digests ready") : RP_OK;
}

/* Does cid need a new digest: none, unreadable, or of another cap? */
static rp_err fill_needed(rp_store *s, MDB_txn *txn, rp_str cid, bool *need, rp_errbuf *eb) {
    MDB_val k = rp_si_mval(cid.p, cid.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_DIGESTS], &k, &v);
    *need = true;
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading a digest");
    rp_digest d;
    rp_errbuf peb = {0};
    *need = rp_digest_parse(v.mv_data, v.mv_size, &d, &peb) != RP_OK || d.cap != rp_si_digest_cap(s);
    return RP_OK;
}

rp_err rp_si_digest_fill(rp_store *s, MDB_txn *txn, rp_str after, uint32_t max_customers,
                         uint32_t max_events, rp_si_fill *out, rp_errbuf *eb) {
    assert(after.n <= RP_ID_MAX);
    uint64_t budget = max_events, per = rp_si_digest_cap(s);
    out->visited = out->built = 0;
    out->done = false;
    out->next_n = after.n;
    if (after.n) memcpy(out->next, after.p, after.n);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_CUSTOMERS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening a customers cursor");
    rp_err rc = RP_OK;
    while (out->visited < max_customers && (uint64_t)out->built * per < budget) {
        /* Seek again each time: the puts below may move the map's pages. */
        MDB_val k, v;
        if (out->next_n == 0) {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        } else {
            k = rp_si_mval(out->next, out->next_n);
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (mrc == 0 && k.mv_size == out->next_n && memcmp(k.mv_data, out->next, out->next_n) == 0)
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (mrc == MDB_NOTFOUND) {
            out->done = true;
            break;
        }
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "reading customers");
            goto out;
        }
        if (k.mv_size == 0 || k.mv_size > RP_ID_MAX) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt customer key of %zu bytes", k.mv_size);
            goto out;
        }
        memcpy(out->next, k.mv_data, k.mv_size);
        out->next_n = k.mv_size;
        rp_str cid = {out->next, out->next_n};
        bool need;
        rc = fill_needed(s, txn, cid, &need, eb);
        if (rc == RP_OK && need) rc = rp_si_digest_rebuild(s, txn, cid, eb);
        if (rc != RP_OK) goto out;
        out->visited++;
        if (need) out->built++;
    }
    if (out->done) {
        rc = rp_si_digest_mark_ready(s, txn, eb);
    } else if (out->next_n > 0) {
        unsigned char b[8 + RP_ID_MAX];
        stamp(s, b);
        memcpy(b + 8, out->next, out->next_n);
        MDB_val fk = rp_si_mval(META_FILL, strlen(META_FILL)), fv = rp_si_mval(b, 8 + out->next_n);
        mrc = mdb_put(txn, s->dbi[RP_DB_META], &fk, &fv, 0);
        if (mrc) rc = rp_si_mdb(eb, mrc, "recording the digest backfill");
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

/* --- deferred upkeep of bulk writes ------------------------------------------- */

void rp_store_wdigest_defer(rp_store *s) {
    s->digest_defer = true;
    s->ndeferred = 0;
}

void rp_store_wdigest_drop(rp_store *s) {
    s->digest_defer = false;
    s->ndeferred = 0;
}

rp_err rp_si_digest_note(rp_store *s, rp_str cid, rp_errbuf *eb) {
    assert(s->digest_defer && cid.n > 0 && cid.n <= RP_ID_MAX);
    if (s->ndeferred > 0) { /* a customer's records usually come together */
        const rp_store_id *last = &s->deferred[s->ndeferred - 1];
        if (last->n == cid.n && memcmp(last->p, cid.p, cid.n) == 0) return RP_OK;
    }
    if (s->ndeferred == s->deferred_cap) {
        uint32_t cap = s->deferred_cap ? s->deferred_cap * 2 : 256;
        if (cap < s->deferred_cap) return rp_errf(eb, RP_UNAVAILABLE, "too many customers in one write");
        rp_store_id *p = realloc(s->deferred, (size_t)cap * sizeof *p);
        if (p == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory noting a digest to rebuild");
        s->deferred = p;
        s->deferred_cap = cap;
    }
    rp_store_id *id = &s->deferred[s->ndeferred++];
    memcpy(id->p, cid.p, cid.n);
    id->n = cid.n;
    return RP_OK;
}

static int id_cmp(const void *a, const void *b) {
    const rp_store_id *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, m);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

rp_err rp_store_wdigest_flush(rp_store *s, MDB_txn *txn, rp_errbuf *eb) {
    s->digest_defer = false;
    if (s->ndeferred == 0) return RP_OK; /* (and s->deferred may be NULL: not for qsort) */
    qsort(s->deferred, s->ndeferred, sizeof *s->deferred, id_cmp);
    rp_err rc = RP_OK;
    for (uint32_t i = 0; i < s->ndeferred && rc == RP_OK; i++) {
        if (i > 0 && id_cmp(&s->deferred[i - 1], &s->deferred[i]) == 0) continue;
        rc = rp_si_digest_rebuild(s, txn, rp_store_id_str(&s->deferred[i]), eb);
    }
    s->ndeferred = 0;
    return rc;
}
