/* buf.c — growable byte buffer with a limit and a sticky error (see buf.h).
 *
 * Capacity starts at 256 bytes and doubles; a request bigger than double
 * the current capacity gets exactly what it asks for. The capacity never
 * passes max + 1 (the NUL), so a buffer limited to 1 MB holds at most
 * 1 MB + 1 of heap however it grew.
 */
#include "net/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RP_BUF_FIRST 256

void rp_buf_init(rp_buf *b, size_t max) {
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max == 0 ? SIZE_MAX - 1 : max; /* SIZE_MAX - 1 leaves room for the NUL */
    b->err = RP_OK;
}

rp_err rp_buf_reserve(rp_buf *b, size_t n) {
    if (b->err != RP_OK) return b->err;
    if (n > b->max - b->len) return b->err = RP_TOO_LARGE;
    size_t want = b->len + n + 1; /* cannot wrap: len + n <= max <= SIZE_MAX - 1 */
    if (want <= b->cap) return RP_OK;
    size_t cap = b->cap < RP_BUF_FIRST ? RP_BUF_FIRST : b->cap;
    while (cap < want) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->p, cap);
    if (p == NULL) return b->err = RP_UNAVAILABLE;
    b->p = p;
    b->cap = cap;
    return RP_OK;
}

rp_err rp_buf_append_slow(rp_buf *b, const void *p, size_t n) {
    rp_err e = rp_buf_reserve(b, n);
    if (e != RP_OK) return e;
    if (n > 0) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return RP_OK;
}

rp_err rp_buf_puts(rp_buf *b, const char *s) { return rp_buf_append(b, s, strlen(s)); }

rp_err rp_buf_printf(rp_buf *b, const char *fmt, ...) {
    if (b->err != RP_OK) return b->err;
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return b->err = RP_INTERNAL;
    if ((size_t)n < sizeof small) return rp_buf_append(b, small, (size_t)n);
    rp_err e = rp_buf_reserve(b, (size_t)n);
    if (e != RP_OK) return e;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return RP_OK;
}

void rp_buf_truncate(rp_buf *b, size_t len) {
    if (len < b->len) b->len = len;
    if (b->p != NULL) b->p[b->len] = '\0';
    b->err = RP_OK;
}

void rp_buf_reset(rp_buf *b) { rp_buf_truncate(b, 0); }

rp_err rp_buf_error(const rp_buf *b, rp_errbuf *eb) {
    switch (b->err) {
    case RP_OK: return RP_OK;
    case RP_TOO_LARGE:
        return rp_errf(eb, RP_TOO_LARGE, "the output would pass its limit of %zu bytes", b->max);
    case RP_UNAVAILABLE:
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory growing an output buffer of %zu bytes",
                       b->len);
    default: return rp_errf(eb, b->err, "formatting output failed");
    }
}

char *rp_buf_detach(rp_buf *b, size_t *len) {
    char *p = b->p;
    if (len != NULL) *len = b->len;
    rp_buf_init(b, b->max);
    return p;
}

void rp_buf_free(rp_buf *b) {
    free(b->p);
    rp_buf_init(b, b->max);
}
