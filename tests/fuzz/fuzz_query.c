/* fuzz_query.c — the HTTP path / query-string percent-decoder
 * (net/urldecode.h) on arbitrary bytes.
 *
 * Input: the first byte picks the flags the HTTP face uses (its low two
 * bits: RP_URL_PATH, RP_URL_FORM, RP_URL_FORM | RP_URL_LEAD_PLUS, and
 * RP_URL_LEAD_PLUS alone, which must read as PATH); the rest is the raw
 * path segment or query value. libFuzzer hands over a block of exactly
 * `size` bytes, so a read of s[n] is caught by ASan.
 *
 * Checked:
 *   - the result equals a reference decoder written here from the header's
 *     rules (so the '+' rules, the leading-'+' rule and the refusals of a
 *     bad escape, of %00 and of a raw NUL are all checked, not only "no
 *     crash");
 *   - on success: *out is NUL-terminated at *outlen, *outlen <= n, and the
 *     decoded bytes hold no NUL; outlen may be NULL;
 *   - on error: RP_BAD_REQUEST, out set to NULL, a printable sentence (it
 *     goes back to the client inside a JSON error body);
 *   - round trip: the decoded bytes, re-encoded with %XX for every byte,
 *     decode to the same bytes in every mode.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/urldecode.h"

static const int fz_flags[4] = {RP_URL_PATH, RP_URL_FORM, RP_URL_FORM | RP_URL_LEAD_PLUS,
                                RP_URL_LEAD_PLUS};

static int fz_hex(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The header's rules, written out again: returns the decoded length into
 * ref (n bytes of room), or -1 for an input the decoder must refuse. */
static long fz_reference(const unsigned char *s, size_t n, int flags, unsigned char *ref) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0') {
            return -1;
        } else if (s[i] == '+') {
            bool space = (flags & RP_URL_FORM) && !(i == 0 && (flags & RP_URL_LEAD_PLUS));
            ref[len++] = space ? ' ' : '+';
        } else if (s[i] != '%') {
            ref[len++] = s[i];
        } else {
            if (i + 2 >= n) return -1;
            int hi = fz_hex(s[i + 1]), lo = fz_hex(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -1;
            ref[len++] = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
    }
    return (long)len;
}

static void fz_roundtrip_bytes(const char *d, size_t dn) {
    static const char hexd[] = "0123456789ABCDEF";
    char *enc = malloc(dn * 3 + 1);
    FZ_CHECK(enc != NULL, "out of memory");
    for (size_t i = 0; i < dn; i++) {
        unsigned char b = (unsigned char)d[i];
        enc[3 * i] = '%';
        /* alternate the hex digits' case: both must decode */
        enc[3 * i + 1] = (i & 1) ? (char)(hexd[b >> 4] | 0x20) : hexd[b >> 4];
        enc[3 * i + 2] = (i & 1) ? (char)(hexd[b & 15] | 0x20) : hexd[b & 15];
    }
    for (int f = 0; f < 4; f++) {
        char *out = NULL;
        size_t on = 0;
        rp_errbuf eb = {0};
        rp_err rc = rp_url_decode(enc, dn * 3, fz_flags[f], "value", &out, &on, &eb);
        FZ_CHECK(rc == RP_OK, "a value re-encoded with %XX does not decode");
        FZ_CHECK(on == dn && memcmp(out, d, dn) == 0, "%XX of every byte does not give the bytes back");
        free(out);
    }
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int flags = fz_flags[data[0] & 3];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;

    unsigned char *ref = malloc(n + 1);
    FZ_CHECK(ref != NULL, "out of memory");
    long rn = fz_reference((const unsigned char *)s, n, flags, ref);

    char *out = (char *)1;
    size_t outlen = (size_t)-1;
    rp_errbuf eb = {0};
    rp_err rc = rp_url_decode(s, n, flags, "value", &out, &outlen, &eb);
    if (fz_verbose()) fprintf(stderr, "  decode flags %d: %s %s\n", flags, rp_err_code(rc), rc ? eb.msg : "");
    if (rc != RP_OK) {
        FZ_CHECK(rc == RP_BAD_REQUEST, "decode errors are BAD_REQUEST (no memory aside)");
        FZ_CHECK(out == NULL, "a refused decode left *out set");
        fz_check_msg(&eb);
        FZ_CHECK(rn < 0, "the decoder refused what the header's rules accept");
        free(ref);
        return 0;
    }
    FZ_CHECK(rn >= 0, "the decoder accepted what the header's rules refuse");
    FZ_CHECK(out != NULL, "RP_OK without a string");
    FZ_CHECK(outlen <= n, "decoded longer than its input");
    FZ_CHECK(out[outlen] == '\0', "decoded string not NUL-terminated at outlen");
    FZ_CHECK(memchr(out, '\0', outlen) == NULL, "a decoded value holds a NUL");
    FZ_CHECK((size_t)rn == outlen && memcmp(out, ref, outlen) == 0,
             "decoded bytes differ from the header's rules");

    char *out2 = NULL;
    FZ_CHECK(rp_url_decode(s, n, flags, "value", &out2, NULL, NULL) == RP_OK &&
                 strcmp(out, out2) == 0,
             "the same input decodes differently (outlen NULL)");
    free(out2);

    fz_roundtrip_bytes(out, outlen);
    free(out);
    free(ref);
    return 0;
}
