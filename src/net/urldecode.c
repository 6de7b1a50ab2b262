/* urldecode.c — percent-decoding of paths and query strings (urldecode.h). */
#include "net/urldecode.h"

#include <stdlib.h>

#include "core/alloc.h"

/* Value of hex digit c, or -1. */
static int url_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

rp_err rp_url_decode(const char *s, size_t n, int flags, const char *what, char **out,
                     size_t *outlen, rp_errbuf *eb) {
    *out = NULL;
    char *d = rp_malloc(n + 1);
    if (d == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding %s", what);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+' && (flags & RP_URL_FORM) && !(i == 0 && (flags & RP_URL_LEAD_PLUS))) {
            d[len++] = ' ';
            continue;
        }
        if (c == '\0') { /* a raw NUL: the value would be cut short as a C string */
            free(d);
            return rp_errf(eb, RP_BAD_REQUEST, "%s: a NUL byte is not allowed", what);
        }
        if (c != '%') {
            d[len++] = c;
            continue;
        }
        int hi = i + 1 < n ? url_hex(s[i + 1]) : -1;
        int lo = i + 2 < n ? url_hex(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            /* the escape as sent, client bytes made printable ('?'): the
             * sentence goes back inside a JSON error body */
            char shown[4];
            size_t k = 0;
            for (; k < 3 && i + k < n; k++) {
                unsigned char b = (unsigned char)s[i + k];
                shown[k] = b >= 0x20 && b < 0x7F ? (char)b : '?';
            }
            shown[k] = '\0';
            free(d);
            return rp_errf(eb, RP_BAD_REQUEST,
                           "%s: bad percent-escape '%s' ('%%' must be followed by two hex "
                           "digits; write a literal '%%' as %%25)", what, shown);
        }
        if (hi == 0 && lo == 0) {
            free(d);
            return rp_errf(eb, RP_BAD_REQUEST, "%s: %%00 (a NUL byte) is not allowed", what);
        }
        d[len++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[len] = '\0';
    *out = d;
    if (outlen) *outlen = len;
    return RP_OK;
}
