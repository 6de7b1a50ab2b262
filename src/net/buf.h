/* buf.h — a growable byte buffer with a size limit and a sticky error.
 *
 * rp_buf collects output whose size is not known in advance (JSON text for
 * the HTTP face, NDJSON export lines). It grows by doubling, with every
 * size computation overflow-checked, and never past its `max`: the first
 * append that would pass it fails with RP_TOO_LARGE. Failures are sticky
 * (the SQLite StrAccum pattern): once an append fails, later appends do
 * nothing and return the same code, so a writer that emits many small
 * pieces checks once at the end — rp_buf_error() turns the code into a
 * sentence.
 *
 * The bytes are always NUL-terminated (p[len] == '\0' once anything was
 * appended), so text can be handed to printf-style consumers; the NUL is
 * not counted in len or against max. Not thread-safe; one owner at a time.
 */
#ifndef RP_BUF_H
#define RP_BUF_H

#include <stddef.h>
#include <string.h>

#include "core/error.h"

typedef struct rp_buf {
    char *p;    /* the bytes (malloc'd), or NULL before the first append */
    size_t len; /* bytes used, <= max */
    size_t cap; /* bytes allocated, including room for the NUL */
    size_t max; /* the most bytes len may reach */
    rp_err err; /* RP_OK, or the first failure (RP_TOO_LARGE, RP_UNAVAILABLE) */
} rp_buf;

/* Start an empty buffer that may hold up to max bytes (0 = no limit but
 * memory). Allocates nothing. */
void rp_buf_init(rp_buf *b, size_t max);

/* Make room for n more bytes without changing len.
 * Returns RP_OK, RP_TOO_LARGE (len + n > max; nothing changes but the
 * sticky error), RP_UNAVAILABLE (out of memory), or the sticky error.
 * Amortized O(1) per byte: capacity doubles. */
rp_err rp_buf_reserve(rp_buf *b, size_t n);

/* rp_buf_append when the bytes may not fit: grows, or fails. */
rp_err rp_buf_append_slow(rp_buf *b, const void *p, size_t n);

/* Append n bytes from p (p may be NULL when n is 0). Errors as for
 * rp_buf_reserve; on error nothing is appended. Inline when the bytes fit
 * the capacity already (the JSON writer appends many short pieces). */
static inline rp_err rp_buf_append(rp_buf *b, const void *p, size_t n) {
    if (b->err == RP_OK && b->cap > 0 && n < b->cap - b->len && n <= b->max - b->len) {
        if (n > 0) memcpy(b->p + b->len, p, n);
        b->len += n;
        b->p[b->len] = '\0';
        return RP_OK;
    }
    return rp_buf_append_slow(b, p, n);
}

/* Append one byte. Errors as for rp_buf_reserve. Inline: the JSON writer
 * calls it for every bracket and comma. */
static inline rp_err rp_buf_putc(rp_buf *b, char c) {
    if (b->err == RP_OK && b->len + 2 <= b->cap && b->len < b->max) {
        b->p[b->len++] = c;
        b->p[b->len] = '\0';
        return RP_OK;
    }
    return rp_buf_append(b, &c, 1);
}

/* Append a NUL-terminated string (without its NUL). */
rp_err rp_buf_puts(rp_buf *b, const char *s);

/* Append printf-style text. Errors as for rp_buf_reserve, or RP_INTERNAL
 * when the format itself fails (vsnprintf < 0). */
rp_err rp_buf_printf(rp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drop bytes after the first len (len <= b->len) and clear the sticky error:
 * the way to roll back a partly written value. Keeps the memory. */
void rp_buf_truncate(rp_buf *b, size_t len);

/* rp_buf_truncate(b, 0). */
void rp_buf_reset(rp_buf *b);

/* Put a sentence for b->err into eb ("the output would pass its limit of N
 * bytes", "out of memory ...") and return b->err (RP_OK leaves eb alone). */
rp_err rp_buf_error(const rp_buf *b, rp_errbuf *eb);

/* Hand the bytes to the caller, who frees them with free(); *len (may be
 * NULL) receives their length. Returns NULL when nothing was ever appended.
 * b is left empty (as after rp_buf_init with the same max). */
char *rp_buf_detach(rp_buf *b, size_t *len);

/* Free the memory; b is left empty and may be reused. */
void rp_buf_free(rp_buf *b);

#endif
