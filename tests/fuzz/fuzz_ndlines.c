/* fuzz_ndlines.c — the NDJSON line splitter (net/ndlines.h) on arbitrary
 * input.
 *
 * Input: the first byte picks first_no (0 for a whole input, the way POST
 * /v1/import reads a body, so a leading BOM is dropped; or a count so far,
 * the way the CLI feeds one line at a time, or within 2^20 of UINT64_MAX, so the
 * line numbers come near the top of the type (no input is that many lines)); the rest is the input.
 * libFuzzer hands over a block of exactly `size` bytes, so a read past it
 * is caught by ASan.
 *
 * Checked, for every line returned:
 *   - its bytes lie within the input, after the previous line's (in order,
 *     not overlapping, and after a skipped BOM);
 *   - it holds no '\n', is not blank (rp_ndlines_blank), and is followed
 *     in the input by '\n', "\r\n", '\r' at the end, or the end itself;
 *   - its number is larger than the previous one's, and at most first_no +
 *     the newlines before it + 1.
 * And overall: the lines returned are at most the newlines + 1; every
 * non-blank byte of the input (BOM aside) is in some line; once it answers
 * false it keeps answering false and leaves *out untouched; reading the
 * same input again gives the same lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/ndlines.h"

static size_t fz_count_nl(const char *p, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += p[i] == '\n';
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint64_t first_no = data[0] < 128 ? 0 : data[0] < 192 ? data[0] - 127u : UINT64_MAX - (1u << 20) - (data[0] & 63u);
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    size_t nl = fz_count_nl(buf, len);

    bool bom = first_no == 0 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0;
    size_t start = bom ? 3 : 0;

    /* which bytes some line covers, to check nothing non-blank is lost */
    unsigned char *covered = calloc(len + 1, 1);
    FZ_CHECK(covered != NULL, "out of memory");

    rp_ndlines r;
    rp_ndlines_init(&r, len ? buf : NULL, len, first_no);
    rp_ndline ln;
    size_t lines = 0, end = start; /* end: offset just past the previous line */
    uint64_t prev_no = first_no;
    while (rp_ndlines_next(&r, &ln)) {
        lines++;
        FZ_CHECK(lines <= nl + 1, "more lines than newlines + 1");
        FZ_CHECK(ln.p >= buf + end && ln.p <= buf + len, "a line starts outside the input or out of order");
        size_t off = (size_t)(ln.p - buf);
        FZ_CHECK(ln.len > 0 && ln.len <= len - off, "a line ends outside the input");
        FZ_CHECK(memchr(ln.p, '\n', ln.len) == NULL, "a line holds a newline");
        FZ_CHECK(!rp_ndlines_blank(ln.p, ln.len), "a blank line was returned");
        FZ_CHECK(off == start || buf[off - 1] == '\n', "a line does not start a line of the input");
        size_t after = off + ln.len;
        FZ_CHECK(after == len || buf[after] == '\n' ||
                     (buf[after] == '\r' && (after + 1 == len || buf[after + 1] == '\n')),
                 "a line is not followed by '\\n', \"\\r\\n\", a final '\\r' or the end");
        FZ_CHECK(ln.no > prev_no, "line numbers do not increase");
        FZ_CHECK(ln.no - first_no <= fz_count_nl(buf, off) + 1, "a line number past the newlines before it");
        memset(covered + off, 1, ln.len);
        prev_no = ln.no;
        end = after;
    }
    for (size_t i = start; i < len; i++)
        if (!covered[i]) {
            char c = buf[i];
            FZ_CHECK(c == '\n' || c == ' ' || c == '\t' || c == '\r', "a non-blank byte is in no line");
        }
    FZ_CHECK(r.no - first_no == (len > start ? fz_count_nl(buf + start, len - start) +
                                                   (buf[len - 1] != '\n') : 0),
             "the count of lines read is not the input's");
    rp_ndline keep = {(const char *)&keep, 12345, 777};
    FZ_CHECK(!rp_ndlines_next(&r, &keep) && keep.p == (const char *)&keep && keep.len == 12345 &&
                 keep.no == 777,
             "after the end: true again, or *out touched");

    /* the same input again: the same lines */
    rp_ndlines r2;
    rp_ndlines_init(&r2, len ? buf : NULL, len, first_no);
    size_t again = 0;
    while (rp_ndlines_next(&r2, &ln)) again++;
    FZ_CHECK(again == lines, "the same input splits differently");
    free(covered);
    return 0;
}
