/* keys.c — building and splitting the store's composite LMDB keys.
 *
 * See keys.h for the layout and proto/STORAGE.md for worked examples. All
 * functions are O(key length) and allocation-free.
 */
#include "store/keys.h"

#include <assert.h>
#include <string.h>

/* "id\0": the common prefix of a customer's events and issues keys. */
size_t rp_keys_prefix(char out[RP_KEYS_PREFIX_MAX], rp_str id) {
    assert(id.n > 0 && id.n <= RP_ID_MAX);
    memcpy(out, id.p, id.n);
    out[id.n] = '\0';
    return id.n + 1;
}

/* id 0x00 ts(BE64) seq(BE32). ts >= 0 is the caller's promise (validated
 * at the API boundary), which keeps unsigned order equal to signed order. */
size_t rp_keys_event(char out[RP_KEYS_EVENT_MAX], rp_str id, int64_t ts, uint32_t seq) {
    assert(ts >= 0);
    size_t n = rp_keys_prefix(out, id);
    rp_keys_put_be64((unsigned char *)out + n, (uint64_t)ts);
    rp_keys_put_be32((unsigned char *)out + n + 8, seq);
    return n + 12;
}

/* id 0x00 issue_id: issues of one customer sort by issue_id bytes. */
size_t rp_keys_issue(char out[RP_KEYS_ISSUE_MAX], rp_str id, rp_str issue_id) {
    assert(issue_id.n > 0 && issue_id.n <= RP_ID_MAX);
    size_t n = rp_keys_prefix(out, id);
    memcpy(out + n, issue_id.p, issue_id.n);
    return n + issue_id.n;
}

/* id 0x00 event_id: the same shape as an issues key, in its own database. */
size_t rp_keys_evid(char out[RP_KEYS_EVID_MAX], rp_str id, rp_str event_id) {
    assert(event_id.n > 0 && event_id.n <= RP_ID_MAX);
    size_t n = rp_keys_prefix(out, id);
    memcpy(out + n, event_id.p, event_id.n);
    return n + event_id.n;
}

/* memcmp of the first n bytes, after a length check. */
bool rp_keys_has_prefix(const MDB_val *k, const char *prefix, size_t n) {
    return k->mv_size >= n && memcmp(k->mv_data, prefix, n) == 0;
}

/* The inverse of rp_keys_event, given the prefix length. A ts with the top
 * bit set cannot come from rp_keys_event and marks a corrupt key. */
bool rp_keys_event_parse(const MDB_val *k, size_t plen, int64_t *ts, uint32_t *seq) {
    if (k->mv_size != plen + 12) return false;
    const unsigned char *p = (const unsigned char *)k->mv_data + plen;
    uint64_t t = rp_keys_get_be64(p);
    if (t > (uint64_t)INT64_MAX) return false;
    *ts = (int64_t)t;
    *seq = rp_keys_get_be32(p + 8);
    return true;
}

void rp_keys_put_be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

void rp_keys_put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

uint64_t rp_keys_get_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

uint32_t rp_keys_get_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void rp_keys_put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

uint32_t rp_keys_get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
