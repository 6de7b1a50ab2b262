/* keys.h — the byte layout of the store's LMDB keys (proto/STORAGE.md).
 *
 * Customer ids are 1..64 bytes of 0x21..0x7E, so a 0x00 byte after the id
 * can never be part of an id: "id\0..." keys of one customer are contiguous
 * in LMDB's memcmp order and sort before any longer id that starts with the
 * same bytes. Integers in keys are big-endian so that memcmp order is
 * numeric order; timestamps are >= 0 so an unsigned encoding is exact.
 *
 *   events: id 0x00 ts(8 bytes BE) seq(4 bytes BE)
 *   issues: id 0x00 issue_id
 *   evids:  id 0x00 event_id          value: ts(8 bytes BE) seq(4 bytes BE)
 *   evcount values and the meta schema value: u32 little-endian
 *
 * Functions here only lay out bytes: they never touch LMDB and never fail;
 * callers validate ids first (the asserts state that contract).
 */
#ifndef RP_KEYS_H
#define RP_KEYS_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/record.h"

#define RP_KEYS_PREFIX_MAX (RP_ID_MAX + 1)
#define RP_KEYS_EVENT_MAX (RP_ID_MAX + 1 + 8 + 4)
#define RP_KEYS_ISSUE_MAX (RP_ID_MAX + 1 + RP_ID_MAX)
#define RP_KEYS_EVID_MAX (RP_ID_MAX + 1 + RP_ID_MAX)

/* Write "id\0" into out. Returns its length (id.n + 1). */
size_t rp_keys_prefix(char out[RP_KEYS_PREFIX_MAX], rp_str id);

/* Write the events key of (id, ts, seq) into out; ts must be >= 0.
 * Returns its length (id.n + 13). */
size_t rp_keys_event(char out[RP_KEYS_EVENT_MAX], rp_str id, int64_t ts, uint32_t seq);

/* Write the issues key of (id, issue_id) into out. Returns its length. */
size_t rp_keys_issue(char out[RP_KEYS_ISSUE_MAX], rp_str id, rp_str issue_id);

/* Write the evids key of (id, event_id) into out. Returns its length. */
size_t rp_keys_evid(char out[RP_KEYS_EVID_MAX], rp_str id, rp_str event_id);

/* Does key k start with the n bytes of prefix? */
bool rp_keys_has_prefix(const MDB_val *k, const char *prefix, size_t n);

/* Split an events key whose first plen bytes are "id\0" into (ts, seq).
 * Returns false when k does not have that prefix or the right length
 * (a foreign or corrupt key). */
bool rp_keys_event_parse(const MDB_val *k, size_t plen, int64_t *ts, uint32_t *seq);

/* Big-endian / little-endian integer codecs for keys and small values. */
void rp_keys_put_be64(unsigned char *p, uint64_t v);
void rp_keys_put_be32(unsigned char *p, uint32_t v);
uint64_t rp_keys_get_be64(const unsigned char *p);
uint32_t rp_keys_get_be32(const unsigned char *p);
void rp_keys_put_le32(unsigned char *p, uint32_t v);
uint32_t rp_keys_get_le32(const unsigned char *p);

#endif
