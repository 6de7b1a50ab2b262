/* cursor.c — "TS.SEQ" text of history cursors (cursor.h). */
#include "api/cursor.h"

#include <inttypes.h>
#include <stdio.h>

void rp_cursor_format(const rp_cursor *c, char out[RP_CURSOR_TEXT_MAX]) {
    snprintf(out, RP_CURSOR_TEXT_MAX, "%" PRId64 ".%" PRIu32, c->ts, c->seq);
}

/* Strict: ASCII digits, one '.', digits; each part range-checked before it
 * can overflow. */
rp_err rp_cursor_parse(rp_str s, rp_cursor *out, rp_errbuf *eb) {
    size_t i = 0;
    uint64_t ts = 0, seq = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (ts > ((uint64_t)INT64_MAX - d) / 10)
            return rp_errf(eb, RP_BAD_REQUEST, "bad cursor: timestamp out of range");
        ts = ts * 10 + d;
        i++;
    }
    if (i == 0 || i == s.n || s.p[i] != '.')
        return rp_errf(eb, RP_BAD_REQUEST, "bad cursor: expected TS.SEQ (digits)");
    size_t start = ++i;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        seq = seq * 10 + (uint64_t)(s.p[i] - '0');
        if (seq > UINT32_MAX) return rp_errf(eb, RP_BAD_REQUEST, "bad cursor: sequence out of range");
        i++;
    }
    if (i == start || i != s.n) return rp_errf(eb, RP_BAD_REQUEST, "bad cursor: expected TS.SEQ (digits)");
    out->ts = (int64_t)ts;
    out->seq = (uint32_t)seq;
    return RP_OK;
}
