/* ndlines.c — the NDJSON line splitter (see ndlines.h). */
#include "net/ndlines.h"

#include <string.h>

void rp_ndlines_init(rp_ndlines *r, const char *buf, size_t len, uint64_t first_no) {
    r->buf = buf;
    r->len = buf ? len : 0;
    r->pos = 0;
    r->no = first_no;
    if (first_no == 0 && r->len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        r->pos = 3; /* a UTF-8 BOM opening the input */
}

bool rp_ndlines_blank(const char *p, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (p[k] != ' ' && p[k] != '\t' && p[k] != '\r') return false;
    return true;
}

bool rp_ndlines_next(rp_ndlines *r, rp_ndline *out) {
    while (r->pos < r->len) {
        const char *s = r->buf + r->pos;
        size_t left = r->len - r->pos;
        const char *nl = memchr(s, '\n', left);
        size_t n = nl ? (size_t)(nl - s) : left;
        r->pos += nl ? n + 1 : n;
        r->no++;
        if (rp_ndlines_blank(s, n)) continue;
        if (s[n - 1] == '\r') n--; /* CRLF; n > 0: the line is not blank */
        out->p = s;
        out->len = n;
        out->no = r->no;
        return true;
    }
    return false;
}
