/* fuzz_phone.c — phone number (and email) normalization on arbitrary text.
 *
 * Input: the first byte picks the default country (every row of phone.c's
 * country table, plus a few codes it does not know, so the "unknown
 * default country" path is fuzzed too); the rest is the number as a client
 * would send it. libFuzzer hands over a block of exactly `size` bytes, so
 * a read of in[n] is caught by ASan.
 *
 * Checked on success (ident.h's contract):
 *   - the output is '+' then 8..15 ASCII digits, NUL-terminated, and
 *     *outlen is its length;
 *   - it is a fixed point: normalizing the output again, with the same
 *     default country, gives the same output; so does normalizing it with
 *     another known default country ('+' makes the country irrelevant);
 *   - an error is RP_BAD_REQUEST with a printable sentence.
 * The same bytes also go through rp_email_normalize, whose output must be
 * a fixed point too (lower-case, trimmed, one '@').
 */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

/* Default countries, indexed by the first input byte (modulo). The first
 * rows are phone.c's table; the last are not countries it knows. */
static const char *const fz_countries[] = {
    "US", "CA", "GB", "IE", "DE", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "SE",
    "NO", "DK", "FI", "PL", "PT", "AU", "NZ", "JP", "KR", "CN", "IN", "BR", "MX",
    "AR", "ZA", "RU", "SG", "HK", "AE", "IL", "us", "ZZ", "U",  "",
};
#define FZ_NCOUNTRIES (sizeof fz_countries / sizeof fz_countries[0])

/* Check that out (length n) has the E.164 shape. */
static void fz_check_e164(const char *out, size_t n) {
    FZ_CHECK(n == strlen(out), "outlen differs from strlen(out)");
    FZ_CHECK(n >= 9 && n <= 16 && n <= RP_PHONE_MAX, "E.164 length: '+' then 8..15 digits");
    FZ_CHECK(out[0] == '+', "E.164 starts with '+'");
    for (size_t i = 1; i < n; i++) FZ_CHECK(out[i] >= '0' && out[i] <= '9', "E.164 digits only");
    FZ_CHECK(out[1] != '0', "a country calling code never starts with 0");
}

/* Normalize out again with country and require the same output. */
static void fz_check_fixed_point(const char *out, size_t n, const char *country) {
    char again[RP_PHONE_MAX + 1];
    size_t n2 = 0;
    rp_errbuf eb = {0};
    rp_err rc = rp_phone_normalize(out, n, country, again, &n2, &eb);
    if (rc != RP_OK) fprintf(stderr, "renormalizing %s with %s: %s\n", out, country, eb.msg);
    FZ_CHECK(rc == RP_OK, "a normalized phone does not normalize again");
    FZ_CHECK(n2 == n && memcmp(again, out, n + 1) == 0, "phone normalization is not idempotent");
}

static void fz_phone(const char *in, size_t n, const char *country) {
    char out[RP_PHONE_MAX + 2];
    memset(out, 0x55, sizeof out); /* a canary past the documented size */
    size_t outlen = 12345;
    rp_errbuf eb = {0};
    rp_err rc = rp_phone_normalize(in, n, country, out, &outlen, &eb);
    FZ_CHECK((unsigned char)out[RP_PHONE_MAX + 1] == 0x55, "wrote past RP_PHONE_MAX + 1 bytes");
    if (rc != RP_OK) {
        FZ_CHECK(rc == RP_BAD_REQUEST, "phone errors are BAD_REQUEST");
        fz_check_msg(&eb);
        return;
    }
    fz_check_e164(out, outlen);
    fz_check_fixed_point(out, outlen, country);
    fz_check_fixed_point(out, outlen, "GB");
    /* outlen may be NULL. */
    char out2[RP_PHONE_MAX + 1];
    FZ_CHECK(rp_phone_normalize(in, n, country, out2, NULL, NULL) == RP_OK &&
                 strcmp(out, out2) == 0,
             "the same input normalizes differently");
}

static void fz_email(const char *in, size_t n) {
    char out[RP_EMAIL_MAX + 1], again[RP_EMAIL_MAX + 1];
    size_t outlen = 0, n2 = 0;
    rp_errbuf eb = {0};
    rp_err rc = rp_email_normalize(in, n, out, &outlen, &eb);
    if (rc != RP_OK) {
        FZ_CHECK(rc == RP_BAD_REQUEST, "email errors are BAD_REQUEST");
        fz_check_msg(&eb);
        return;
    }
    FZ_CHECK(outlen == strlen(out) && outlen <= RP_EMAIL_MAX, "email length");
    FZ_CHECK(memchr(out, '@', outlen) != NULL, "an email has an '@'");
    rc = rp_email_normalize(out, outlen, again, &n2, &eb);
    FZ_CHECK(rc == RP_OK && n2 == outlen && memcmp(out, again, outlen) == 0,
             "email normalization is not idempotent");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *country = fz_countries[data[0] % FZ_NCOUNTRIES];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    fz_phone(in, n, country);
    fz_email(in, n);
    return 0;
}
