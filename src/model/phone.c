/* phone.c — phone numbers in any carrier or CRM format, to E.164.
 *
 * Design. Normalization is two passes over at most 64 bytes.
 *
 *   lex:     one left-to-right pass turns the text into a run of digits
 *            plus two facts: whether a '+' came before the first digit, and
 *            where a "(0)" group stood. Every other byte is a separator to
 *            skip (space, tab, '.', '-', '/', parentheses, no-break and thin
 *            spaces, Unicode dashes) or a reason to reject: letters (vanity
 *            numbers), extension text ("x123", "ext. 5"), '*', '#', and
 *            anything else. An RFC 3966 "tel:" scheme is dropped and its
 *            ";parameters" (ext=, phone-context=...) are ignored.
 *   resolve: where does the country calling code start?
 *            '+'                      the digits begin with it;
 *            an international prefix  of the default country ("011" or "00"
 *                                     from North America, "0011" from
 *                                     Australia, "010" from Japan, "810"
 *                                     from Russia...): after it;
 *            otherwise                the number is national: the default
 *                                     country's code, with its trunk prefix
 *                                     ("0", "1" or "8") removed.
 *            The code is matched against the ITU table of assigned country
 *            calling codes. That table is prefix-free (no code is the start
 *            of another), so at most one of the first 1, 2 or 3 digits
 *            matches and the split is never a guess.
 *
 * Then checks: E.164's 8..15 digits; for the countries of the default-country
 * table only, rules that are certain (a national significant number never
 * begins with 0 except in Italy and the few countries of zero_nsn_ccs; North
 * America's NXX-NXX-XXXX; fixed lengths for +1, +7, +33, +34 and the 7..10
 * digits of +44). A "(0)" after a country code is the trunk prefix written for
 * national callers and is dropped, except where 0 belongs to the number (+39).
 * A 0 trunk prefix written after a known country code ("+44 020 ...") is
 * dropped too, as libphonenumber does: the number cannot begin with 0, so it
 * has one reading only.
 *
 * Limits, admitted: no per-country number-plan validation beyond the above
 * (that is libphonenumber's job, megabytes of metadata); E.164 numbers shorter
 * than 8 digits (a few Pacific islands) are rejected by design; countries that
 * dial out through a carrier code (Brazil's 00+NN) accept only '+' for
 * international numbers; fullwidth digits are not accepted.
 *
 * Cost: O(n) for n <= 64 input bytes, no allocation, never reads in[n].
 */
#include "model/ident.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Inputs longer than this are not phone numbers (the longest legitimate
 * spelling, "tel:+..." with separators, is well under it). */
#define PHONE_INPUT_MAX 64
/* E.164: at least 8 digits by this product's rule, at most 15 by ITU's. */
#define E164_MIN_DIGITS 8
#define E164_MAX_DIGITS 15

/* --- the ITU table of assigned country calling codes --------------------- */

/* Every assigned code as a number; its length follows from its value since no
 * code begins with 0 (1 and 7 are 1-digit, 20..98 2-digit, 211..998 3-digit).
 * Sorted, for bsearch. Spare and withdrawn codes (210, 259, 28x, 388, 671, 684,
 * 878, 991, 999, ...) are absent; 997 (Kazakhstan) and 379 (Vatican) are
 * assigned even if barely used. Prefix-freeness is checked by the tests. */
static const uint16_t cc_table[] = {
    1,   7,   20,  27,  30,  31,  32,  33,  34,  36,  39,  40,  41,  43,  44,  45,  46,
    47,  48,  49,  51,  52,  53,  54,  55,  56,  57,  58,  60,  61,  62,  63,  64,  65,
    66,  81,  82,  84,  86,  90,  91,  92,  93,  94,  95,  98,
    211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229,
    230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244,
    245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 258, 260,
    261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298, 299,
    350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374,
    375, 376, 377, 378, 379, 380, 381, 382, 383, 385, 386, 387, 389,
    420, 421, 423,
    500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 590, 591, 592, 593, 594,
    595, 596, 597, 598, 599,
    670, 672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 685, 686,
    687, 688, 689, 690, 691, 692,
    800, 808, 850, 852, 853, 855, 856, 870, 880, 881, 882, 883, 886, 888,
    960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972, 973, 974, 975,
    976, 977, 979, 992, 993, 994, 995, 996, 997, 998,
};

/* Codes whose national significant numbers may begin with 0, so that a 0
 * after the code is a digit of the number, never a trunk prefix: Italy,
 * San Marino, and the West/Central African plans that made 0 their leading
 * digit (Cote d'Ivoire, Benin, Gabon, Congo). */
static const uint16_t zero_nsn_ccs[] = {39, 225, 229, 241, 242, 378};

/* bsearch comparator over uint16_t. */
static int cmp_u16(const void *a, const void *b) {
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

/* Whether v is an assigned calling code. O(log 230). */
static bool cc_assigned(uint16_t v) {
    return bsearch(&v, cc_table, sizeof cc_table / sizeof cc_table[0], sizeof cc_table[0],
                   cmp_u16) != NULL;
}

/* The number value of the n (<= 3) digits at d. */
static uint16_t digits_value(const char *d, size_t n) {
    uint16_t v = 0;
    assert(n <= 3);
    for (size_t i = 0; i < n; i++) v = (uint16_t)(v * 10 + (d[i] - '0'));
    return v;
}

/* The length (1..3) of the calling code that begins d[0..nd), or 0 when no
 * assigned code does. Unique because the table is prefix-free. */
static size_t cc_match(const char *d, size_t nd) {
    if (nd == 0 || d[0] == '0') return 0;
    for (size_t len = 1; len <= 3 && len <= nd; len++) {
        if (cc_assigned(digits_value(d, len))) return len;
    }
    return 0;
}

/* Whether a number under the calling code cc[0..n) may begin with 0. */
static bool cc_zero_nsn(const char *cc, size_t n) {
    uint16_t v = digits_value(cc, n);
    for (size_t i = 0; i < sizeof zero_nsn_ccs / sizeof zero_nsn_ccs[0]; i++)
        if (zero_nsn_ccs[i] == v) return true;
    return false;
}

/* --- the default-country table ------------------------------------------- */

typedef struct {
    char iso[3];     /* ISO 3166-1 alpha-2 */
    char cc[4];      /* calling code, digits */
    char trunk;      /* trunk (national) prefix digit; '\0' when none */
    uint8_t nsn_min; /* digits after the code: checked only when nsn_max > 0 */
    uint8_t nsn_max;
    const char *idd; /* international prefixes, space-separated; "" = none */
} country;

/* Rows: the countries rapport is deployed in or most often called from.
 * Lengths only where they hold for every number of the plan. The first row of
 * a calling code gives that code's rules (US for +1). North American numbers
 * never begin with 0, so "00" is unambiguous there and accepted beside "011";
 * elsewhere only the prefixes really dialled are listed, because "00" also
 * begins carrier codes (Japan's 0033 010 ..., Brazil's 00 + carrier). */
static const country countries[] = {
    {"US", "1", '1', 10, 10, "011 00"},
    {"CA", "1", '1', 10, 10, "011 00"},
    {"GB", "44", '0', 7, 10, "00"},
    {"IE", "353", '0', 0, 0, "00"},
    {"DE", "49", '0', 0, 0, "00"},
    {"FR", "33", '0', 9, 9, "00"},
    {"ES", "34", '\0', 9, 9, "00"},
    {"IT", "39", '\0', 0, 0, "00"},
    {"NL", "31", '0', 0, 0, "00"},
    {"BE", "32", '0', 0, 0, "00"},
    {"CH", "41", '0', 0, 0, "00"},
    {"AT", "43", '0', 0, 0, "00"},
    {"SE", "46", '0', 0, 0, "00"},
    {"NO", "47", '\0', 0, 0, "00"},
    {"DK", "45", '\0', 0, 0, "00"},
    {"FI", "358", '0', 0, 0, "00"},
    {"PL", "48", '\0', 0, 0, "00"},
    {"PT", "351", '\0', 0, 0, "00"},
    {"AU", "61", '0', 0, 0, "0011"},
    {"NZ", "64", '0', 0, 0, "00"},
    {"JP", "81", '0', 0, 0, "010"},
    {"KR", "82", '0', 0, 0, "001 002 005 006 008 00700"},
    {"CN", "86", '0', 0, 0, "00"},
    {"IN", "91", '0', 0, 0, "00"},
    {"BR", "55", '0', 0, 0, ""},
    {"MX", "52", '\0', 0, 0, "00"},
    {"AR", "54", '0', 0, 0, "00"},
    {"ZA", "27", '0', 0, 0, "00"},
    {"RU", "7", '8', 10, 10, "810"},
    {"SG", "65", '\0', 0, 0, "001 002 008"},
    {"HK", "852", '\0', 0, 0, "001"},
    {"AE", "971", '0', 0, 0, "00"},
    {"IL", "972", '0', 0, 0, "00 012 013 014 018 019"},
};

#define NCOUNTRIES (sizeof countries / sizeof countries[0])

/* ASCII upper-case, locale-free. */
static char up(char c) {
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* The row of an ISO code (any case), or NULL. Linear over ~33 rows. */
static const country *country_by_iso(const char *iso2) {
    if (iso2 == NULL || iso2[0] == '\0' || iso2[1] == '\0' || iso2[2] != '\0') return NULL;
    for (size_t i = 0; i < NCOUNTRIES; i++)
        if (countries[i].iso[0] == up(iso2[0]) && countries[i].iso[1] == up(iso2[1]))
            return &countries[i];
    return NULL;
}

/* The first row with calling code cc[0..n), or NULL. */
static const country *country_by_cc(const char *cc, size_t n) {
    for (size_t i = 0; i < NCOUNTRIES; i++)
        if (strlen(countries[i].cc) == n && memcmp(countries[i].cc, cc, n) == 0)
            return &countries[i];
    return NULL;
}

/* The length of the longest international prefix of c that begins d[0..nd),
 * or 0. Walks c->idd once: O(len(idd)). */
static size_t idd_match(const country *c, const char *d, size_t nd) {
    size_t best = 0;
    const char *s = c->idd;
    while (*s != '\0') {
        size_t len = strcspn(s, " ");
        if (len <= nd && len > best && memcmp(s, d, len) == 0) best = len;
        s += len;
        while (*s == ' ') s++;
    }
    return best;
}

const char *rp_phone_country_code(const char *iso2) {
    const country *c = country_by_iso(iso2);
    return c ? c->cc : NULL;
}

/* --- lex: bytes to digits -------------------------------------------------- */

typedef struct {
    char d[PHONE_INPUT_MAX]; /* the digits, in order */
    size_t nd;
    bool plus;  /* a '+' came before the first digit */
    int paren0; /* index in d of the 0 of a "(0)" group; -1 when none */
} lexed;

/* Byte length of a separator at p (p < e), or 0. ASCII ' ', '\t', '.', '-',
 * '/'; UTF-8 U+00A0 no-break space, U+2009 thin space, U+202F narrow
 * no-break space, U+2010..U+2015 hyphens and dashes. Reads no byte at e. */
static size_t sep_len(const char *p, const char *e) {
    unsigned char c = (unsigned char)p[0];
    if (c == ' ' || c == '\t' || c == '.' || c == '-' || c == '/') return 1;
    if (c == 0xC2 && e - p >= 2 && (unsigned char)p[1] == 0xA0) return 2;
    if (c == 0xE2 && e - p >= 3 && (unsigned char)p[1] == 0x80) {
        unsigned char c2 = (unsigned char)p[2];
        if (c2 == 0x89 || c2 == 0xAF || (c2 >= 0x90 && c2 <= 0x95)) return 3;
    }
    return 0;
}

static bool is_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Reject a run of letters starting at p, telling extension text ("x",
 * "ext", "extn", "extension") from a vanity number or other words. */
static rp_err reject_letters(const char *p, const char *e, rp_errbuf *eb) {
    size_t len = 0;
    while (p + len < e && is_alpha((unsigned char)p[len])) len++;
    static const char *const ext_words[] = {"X", "EXT", "EXTN", "EXTENSION"};
    for (size_t w = 0; w < sizeof ext_words / sizeof ext_words[0]; w++) {
        size_t wl = strlen(ext_words[w]);
        if (wl != len) continue;
        size_t i = 0;
        while (i < len && up(p[i]) == ext_words[w][i]) i++;
        if (i == len)
            return rp_errf(eb, RP_BAD_REQUEST,
                           "phone number has extension text ('%.*s'); give the number "
                           "without its extension",
                           (int)len, p);
    }
    return rp_errf(eb, RP_BAD_REQUEST,
                   "phone number contains letters ('%.*s'); vanity numbers and words "
                   "are not accepted, give the digits",
                   (int)(len > 16 ? 16 : len), p);
}

/* Reject a byte that is neither digit, separator, sign nor letter. */
static rp_err reject_byte(unsigned char c, rp_errbuf *eb) {
    if (c > 0x20 && c < 0x7F)
        return rp_errf(eb, RP_BAD_REQUEST, "phone number contains an unexpected character '%c'",
                       (char)c);
    return rp_errf(eb, RP_BAD_REQUEST, "phone number contains an unexpected byte 0x%02X", c);
}

/* One pass over [p, e): digits into lx, separators skipped, everything else
 * rejected with a sentence. Parentheses must balance and not nest; '+' may
 * appear once, before every digit. O(e - p). */
static rp_err lex(const char *p, const char *e, lexed *lx, rp_errbuf *eb) {
    bool open = false;
    lx->nd = 0;
    lx->plus = false;
    lx->paren0 = -1;
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        size_t k;
        if (c >= '0' && c <= '9') {
            assert(lx->nd < sizeof lx->d);
            lx->d[lx->nd++] = (char)c;
            p++;
            continue;
        }
        if ((k = sep_len(p, e)) > 0) {
            p += k;
            continue;
        }
        switch (c) {
        case '+':
            if (lx->plus) return rp_errf(eb, RP_BAD_REQUEST, "phone number has more than one '+'");
            if (lx->nd > 0)
                return rp_errf(eb, RP_BAD_REQUEST,
                               "phone number has a '+' after its first digit; '+' may only "
                               "begin the number");
            lx->plus = true;
            p++;
            continue;
        case '(':
            if (e - p >= 3 && p[1] == '0' && p[2] == ')') {
                if (lx->paren0 >= 0)
                    return rp_errf(eb, RP_BAD_REQUEST, "phone number has more than one '(0)'");
                assert(lx->nd < sizeof lx->d);
                lx->paren0 = (int)lx->nd;
                lx->d[lx->nd++] = '0';
                p += 3;
                continue;
            }
            if (open) return rp_errf(eb, RP_BAD_REQUEST, "phone number has nested parentheses");
            open = true;
            p++;
            continue;
        case ')':
            if (!open)
                return rp_errf(eb, RP_BAD_REQUEST, "phone number has unbalanced parentheses");
            open = false;
            p++;
            continue;
        case '*':
        case '#':
            return rp_errf(eb, RP_BAD_REQUEST,
                           "phone number contains '%c', a service code or extension "
                           "marker, not part of a phone number",
                           (char)c);
        default:
            break;
        }
        if (is_alpha(c)) return reject_letters(p, e, eb);
        return reject_byte(c, eb);
    }
    if (open) return rp_errf(eb, RP_BAD_REQUEST, "phone number has unbalanced parentheses");
    if (lx->nd == 0) return rp_errf(eb, RP_BAD_REQUEST, "phone number has no digits");
    return RP_OK;
}

/* --- resolve: digits to E.164 ------------------------------------------------ */

/* Check the national significant number nsn[0..nn) under calling code
 * cc[0..ccn) and write "+<cc><nsn>" to out. A 0 trunk prefix left after a
 * code of the default-country table is dropped (its numbers never begin with
 * 0); the remaining checks are listed in the header comment. */
static rp_err emit(const char *cc, size_t ccn, const char *nsn, size_t nn, char *out,
                   size_t *outlen, rp_errbuf *eb) {
    const country *c = country_by_cc(cc, ccn);
    if (c != NULL && !cc_zero_nsn(cc, ccn)) {
        if (nn > 0 && nsn[0] == '0' && c->trunk == '0') {
            nsn++;
            nn--;
        }
        if (nn > 0 && nsn[0] == '0')
            return rp_errf(eb, RP_BAD_REQUEST,
                           "phone number cannot begin with 0 after the country code +%.*s",
                           (int)ccn, cc);
    }
    if (nn == 0)
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number has no digits after the country code +%.*s", (int)ccn, cc);
    size_t total = ccn + nn;
    if (total < E164_MIN_DIGITS)
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number too short: %zu digits with the country code, at least %d "
                       "needed",
                       total, E164_MIN_DIGITS);
    if (total > E164_MAX_DIGITS)
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number too long: %zu digits with the country code, at most %d "
                       "allowed",
                       total, E164_MAX_DIGITS);
    if (c != NULL && c->nsn_max > 0 && (nn < c->nsn_min || nn > c->nsn_max)) {
        if (c->nsn_min == c->nsn_max)
            return rp_errf(eb, RP_BAD_REQUEST,
                           "a +%s phone number has %d digits after the country code, not %zu",
                           c->cc, c->nsn_max, nn);
        return rp_errf(eb, RP_BAD_REQUEST,
                       "a +%s phone number has %d to %d digits after the country code, not %zu",
                       c->cc, c->nsn_min, c->nsn_max, nn);
    }
    assert(!(ccn == 1 && cc[0] == '1') || nn == 10);
    if (ccn == 1 && cc[0] == '1' && (nsn[0] < '2' || nsn[3] < '2'))
        return rp_errf(eb, RP_BAD_REQUEST,
                       "a North American (+1) phone number's area code and exchange cannot "
                       "begin with 0 or 1");
    assert(total <= RP_PHONE_MAX - 1);
    out[0] = '+';
    memcpy(out + 1, cc, ccn);
    memcpy(out + 1 + ccn, nsn, nn);
    out[1 + total] = '\0';
    if (outlen) *outlen = 1 + total;
    return RP_OK;
}

/* A number written with '+' or an international prefix: d[0..nd) begins with
 * the calling code; a "(0)" (index paren0, or -1) may only follow it. */
static rp_err resolve_international(char *d, size_t nd, int paren0, char *out, size_t *outlen,
                                    rp_errbuf *eb) {
    if (paren0 == 0)
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number has '(0)' before the country code; '(0)' may only "
                       "follow it");
    size_t ccn = cc_match(d, nd);
    if (ccn == 0) {
        if (nd < 3) return rp_errf(eb, RP_BAD_REQUEST, "phone number too short: no country code");
        return rp_errf(eb, RP_BAD_REQUEST, "phone number has an unknown country calling code +%.3s",
                       d);
    }
    if (paren0 >= 0) {
        if ((size_t)paren0 != ccn)
            return rp_errf(eb, RP_BAD_REQUEST,
                           "phone number has '(0)' away from the country code; '(0)' may only "
                           "follow it");
        if (!cc_zero_nsn(d, ccn)) {
            memmove(d + ccn, d + ccn + 1, nd - ccn - 1);
            nd--;
        }
    }
    return emit(d, ccn, d + ccn, nd - ccn, out, outlen, eb);
}

/* A number written without '+': an international prefix of home, or a
 * national number of home (trunk prefix removed). */
static rp_err resolve_national(const country *home, char *d, size_t nd, int paren0, char *out,
                               size_t *outlen, rp_errbuf *eb) {
    size_t idd = idd_match(home, d, nd);
    if (idd > 0) {
        if (paren0 >= 0 && (size_t)paren0 < idd)
            return rp_errf(eb, RP_BAD_REQUEST,
                           "phone number has '(0)' inside its international prefix");
        if (idd == nd)
            return rp_errf(eb, RP_BAD_REQUEST,
                           "phone number has nothing after the international prefix %.*s",
                           (int)idd, d);
        return resolve_international(d + idd, nd - idd, paren0 >= 0 ? paren0 - (int)idd : -1, out,
                                     outlen, eb);
    }
    if (nd >= 2 && d[0] == '0' && d[1] == '0')
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number begins with 00, which is not an international prefix in "
                       "%s; write it with '+' and the country code",
                       home->iso);
    if (paren0 > 0)
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number has '(0)' that does not begin the national number");
    /* Trunk prefixes other than 0 are also leading digits of some numbers
     * (Russia's 8 00 toll-free), so they are removed by length only. */
    if (home->trunk != '\0' && home->trunk != '0' && home->nsn_max > 0 &&
        nd == (size_t)home->nsn_max + 1 && d[0] == home->trunk) {
        d++;
        nd--;
    }
    return emit(home->cc, strlen(home->cc), d, nd, out, outlen, eb);
}

/* Write a safe rendering of the default country for an error sentence. */
static rp_err reject_default(const char *dc, rp_errbuf *eb) {
    if (dc == NULL || dc[0] == '\0')
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number has no country code and no default country is set");
    size_t len = 0;
    bool printable = true;
    for (; len < 9 && dc[len] != '\0'; len++)
        if ((unsigned char)dc[len] <= 0x20 || (unsigned char)dc[len] >= 0x7F) printable = false;
    if (!printable || len > 8)
        return rp_errf(eb, RP_BAD_REQUEST,
                       "phone number has no country code and the default country is unknown");
    return rp_errf(eb, RP_BAD_REQUEST,
                   "phone number has no country code and uses unknown default country '%s'", dc);
}

rp_err rp_phone_normalize(const char *in, size_t n, const char *default_country,
                          char out[RP_PHONE_MAX + 1], size_t *outlen, rp_errbuf *eb) {
    assert(out != NULL);
    out[0] = '\0';
    if (outlen) *outlen = 0;
    if (in == NULL || n == 0) return rp_errf(eb, RP_BAD_REQUEST, "phone number is empty");
    if (n > PHONE_INPUT_MAX)
        return rp_errf(eb, RP_BAD_REQUEST, "phone number too long (more than %d bytes)",
                       PHONE_INPUT_MAX);
    if (memchr(in, '\0', n) != NULL)
        return rp_errf(eb, RP_BAD_REQUEST, "phone number contains a NUL byte");

    const char *p = in, *e = in + n;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    if (e - p >= 4 && up(p[0]) == 'T' && up(p[1]) == 'E' && up(p[2]) == 'L' && p[3] == ':') {
        p += 4; /* RFC 3966: the number ends where the ;parameters begin */
        const char *semi = memchr(p, ';', (size_t)(e - p));
        if (semi != NULL) e = semi;
    }

    lexed lx;
    rp_err rc = lex(p, e, &lx, eb);
    if (rc != RP_OK) return rc;
    if (lx.plus) return resolve_international(lx.d, lx.nd, lx.paren0, out, outlen, eb);
    const country *home = country_by_iso(default_country);
    if (home == NULL) return reject_default(default_country, eb);
    return resolve_national(home, lx.d, lx.nd, lx.paren0, out, outlen, eb);
}
