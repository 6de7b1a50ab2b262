/* cursor.h — the text form of a history cursor, "TS.SEQ".
 *
 * A cursor (rp_cursor, store/store.h) is a position in a customer's
 * history: events strictly older than (ts, seq). Clients see it as text —
 * the `next` of history.get, the `cursor` of event.append, the `before` they
 * send back — so the text form belongs to the wire layer, not to storage.
 * Example: "1732350000.0".
 */
#ifndef RP_API_CURSOR_H
#define RP_API_CURSOR_H

#include "core/error.h"
#include "model/record.h"
#include "store/store.h"

#define RP_CURSOR_TEXT_MAX 32 /* "TS.SEQ" of the largest values, with its NUL */

/* Write c as "TS.SEQ" into out, NUL-terminated. c: the cursor (ts may be any
 * int64_t); out: the caller's buffer of RP_CURSOR_TEXT_MAX bytes, which
 * always holds the result (20 + 1 + 10 digits and the NUL). */
void rp_cursor_format(const rp_cursor *c, char out[RP_CURSOR_TEXT_MAX]);

/* Parse "TS.SEQ": ASCII digits, one '.', digits; no sign, no spaces; TS at
 * most INT64_MAX, SEQ at most UINT32_MAX. s: the text (need not be
 * NUL-terminated); out: set only on success; eb: the sentence on error.
 * Returns RP_OK or RP_BAD_REQUEST. */
rp_err rp_cursor_parse(rp_str s, rp_cursor *out, rp_errbuf *eb);

#endif
