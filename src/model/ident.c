/* ident.c — validation of ids, text and UTF-8, and email normalization.
 *
 * Every function here is pure, allocation-free and linear in its input; the
 * results go to caller buffers. These checks sit at the trust boundary: the
 * codec (codec.c) calls them for every string a client sends, so they are
 * written to be cheap (one pass, no tables larger than a cache line) and to
 * never read past the length they are given (inputs are not NUL-terminated).
 *
 * Error sentences never echo raw input bytes: a rejected value may be
 * invalid UTF-8 or contain control characters, and the sentence travels to
 * clients inside JSON. Positions and byte values are reported instead.
 *
 * Phone numbers live in phone.c; this file holds the rest of ident.h.
 */
#include "model/ident.h"

#include <assert.h>
#include <stdint.h>

/* Decode one UTF-8 sequence at p[0..n) (n >= 1). Returns its length (1..4)
 * and stores the code point in *cp, or returns 0 when the bytes there are
 * not a valid, shortest-form, non-surrogate sequence of at most U+10FFFF
 * (including a sequence cut short by the end of the buffer). O(1). */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp) {
    assert(n >= 1);
    unsigned char b0 = p[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2, c = b0 & 0x1Fu, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3, c = b0 & 0x0Fu, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4, c = b0 & 0x07u, min = 0x10000;
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (p[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

bool rp_utf8_valid(const char *p, size_t n) {
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = utf8_decode(u + i, n - i, &cp);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

/* A control character: C0 (U+0000..U+001F), DEL, or C1 (U+0080..U+009F). */
static bool is_control(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

rp_err rp_text_check(rp_str s, size_t max, const char *what, rp_errbuf *eb) {
    if (s.n > max)
        return rp_errf(eb, RP_TOO_LARGE, "%s is %zu bytes; the limit is %zu", what, s.n, max);
    const unsigned char *u = (const unsigned char *)s.p;
    size_t i = 0;
    while (i < s.n) {
        uint32_t cp;
        size_t len = utf8_decode(u + i, s.n - i, &cp);
        if (len == 0)
            return rp_errf(eb, RP_BAD_REQUEST, "%s is not valid UTF-8 (at byte %zu)", what, i);
        if (cp != '\t' && is_control(cp))
            return rp_errf(eb, RP_BAD_REQUEST,
                           "%s contains a control character U+%04X at byte %zu", what,
                           (unsigned)cp, i);
        i += len;
    }
    return RP_OK;
}

rp_err rp_id_check(rp_str id, const char *what, rp_errbuf *eb) {
    if (id.n == 0 || id.n > RP_ID_MAX)
        return rp_errf(eb, RP_BAD_REQUEST, "%s must be 1 to %d bytes (got %zu)", what, RP_ID_MAX,
                       id.n);
    for (size_t i = 0; i < id.n; i++) {
        unsigned char b = (unsigned char)id.p[i];
        if (b < 0x21 || b > 0x7E)
            return rp_errf(eb, RP_BAD_REQUEST,
                           "%s must be printable ASCII without spaces (byte %zu is 0x%02X)",
                           what, i, b);
    }
    return RP_OK;
}

/* Whitespace trimmed around an email: space, tab, CR, LF, VT, FF. */
static bool is_trim_space(unsigned char b) { return b == ' ' || (b >= '\t' && b <= '\r'); }

/* Bytes that may not appear in an unquoted address: RFC 5322 "specials"
 * other than '@' and '.', which the shape check handles. Quoted local parts
 * ("john doe"@x) are not supported: no contact center stores them. */
static bool is_special(unsigned char b) {
    switch (b) {
    case '(': case ')': case '<': case '>': case '[': case ']':
    case ':': case ';': case ',': case '\\': case '"':
        return true;
    default:
        return false;
    }
}

/* Check the domain part d[0..n): non-empty labels separated by single dots,
 * at least one dot. Labels' characters were checked by the caller. */
static bool domain_shape_ok(const char *d, size_t n) {
    if (n == 0 || d[0] == '.' || d[n - 1] == '.') return false;
    bool dot = false;
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '.') continue;
        if (d[i + 1] == '.') return false; /* i + 1 < n: d[n - 1] is not '.' */
        dot = true;
    }
    return dot;
}

rp_err rp_email_normalize(const char *in, size_t n, char out[RP_EMAIL_MAX + 1], size_t *outlen,
                          rp_errbuf *eb) {
    size_t b = 0, e = n;
    while (b < e && is_trim_space((unsigned char)in[b])) b++;
    while (e > b && is_trim_space((unsigned char)in[e - 1])) e--;
    size_t len = e - b;
    if (len == 0) return rp_errf(eb, RP_BAD_REQUEST, "email is empty");
    if (len > RP_EMAIL_MAX)
        return rp_errf(eb, RP_BAD_REQUEST, "email is %zu bytes; the limit is %d", len,
                       RP_EMAIL_MAX);
    if (!rp_utf8_valid(in + b, len)) return rp_errf(eb, RP_BAD_REQUEST, "email is not valid UTF-8");
    size_t at = len; /* position of the one '@' */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[b + i];
        if (c <= 0x20 || c == 0x7F)
            return rp_errf(eb, RP_BAD_REQUEST, "email contains a space or control character");
        if (is_special(c))
            return rp_errf(eb, RP_BAD_REQUEST, "email contains '%c', which is not allowed", c);
        if (c == '@') {
            if (at != len) return rp_errf(eb, RP_BAD_REQUEST, "email has more than one '@'");
            at = i;
        }
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : (char)c;
    }
    out[len] = '\0';
    if (at == len) return rp_errf(eb, RP_BAD_REQUEST, "email has no '@'");
    if (at == 0) return rp_errf(eb, RP_BAD_REQUEST, "email has an empty local part");
    if (at > 64) return rp_errf(eb, RP_BAD_REQUEST, "email local part is longer than 64 bytes");
    if (!domain_shape_ok(out + at + 1, len - at - 1))
        return rp_errf(eb, RP_BAD_REQUEST,
                       "email domain must be dot-separated names (like example.com)");
    if (outlen) *outlen = len;
    return RP_OK;
}
