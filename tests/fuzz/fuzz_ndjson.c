/* fuzz_ndjson.c — `rapport import` lines: NDJSON -> msgpack -> typed records.
 *
 * Input: an NDJSON file. The target reads it as rp_cli_import does
 * (src/cli/ndjson.c): split at '\n', drop the newline, skip blank lines
 * (spaces, tabs, '\r'), and hand each line with its number to the CLI's own
 * line parser (rp_ndparse, src/cli/ndparse.c: rp_json_to_msgpack per line on
 * a worker thread, "not a JSON object" refused). One parser with one thread
 * serves the whole process. What comes back is then checked and taken the
 * rest of the way an import takes it on the server:
 *   - every non-blank line comes back exactly once, as a record or as an
 *     error, in line order; an error is BAD_REQUEST or TOO_LARGE with a
 *     sentence;
 *   - a record is one msgpack map that passes rp_mpcheck_unpack with the
 *     same limits, filling exactly its slice of the chunk's output;
 *   - its "type" picks the decoder (the import operation's dispatch,
 *     api/ops_bulk.c) and the record is decoded in WIRE mode, with fuzz.h's
 *     round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ndjson.h"
#include "cli/ndparse.h"
#include "fuzz.h"

static rp_ndparse *fz_np;

static void fz_np_stop(void) {
    rp_ndparse_stop(fz_np);
    fz_np = NULL;
}

/* ndjson.c: is the line only blanks? */
static bool fz_blank(const char *line, size_t len) {
    for (size_t k = 0; k < len; k++)
        if (line[k] != ' ' && line[k] != '\t' && line[k] != '\r') return false;
    return true;
}

/* Check one parsed chunk and decode its records; *next is the index of the
 * next expected line in lines[] (the non-blank line numbers, in order). */
static void fz_chunk(const rp_ndparse_chunk *c, const rp_mpcheck_limits *lim, const uint64_t *lines,
                     size_t nlines, size_t *next) {
    uint32_t r = 0, e = 0;
    msgpack_zone z;
    FZ_CHECK(msgpack_zone_init(&z, 4096), "out of memory");
    while (r < c->nrec || e < c->nerr) {
        FZ_CHECK(*next < nlines, "more results than lines");
        uint64_t want = lines[(*next)++];
        if (e < c->nerr && c->errs[e].line == want) {
            const rp_ndparse_err *x = &c->errs[e++];
            FZ_CHECK(x->rc == RP_BAD_REQUEST || x->rc == RP_TOO_LARGE, "a line error is BAD_REQUEST or TOO_LARGE");
            FZ_CHECK(strnlen(x->msg, sizeof x->msg) < sizeof x->msg && x->msg[0] != '\0',
                     "a line error without a sentence");
            continue;
        }
        FZ_CHECK(r < c->nrec && c->lines[r] == want, "a line came back out of order, or not at all");
        size_t start = c->offs[r], end = r + 1 < c->nrec ? c->offs[r + 1] : c->out.size;
        FZ_CHECK(start < end && end <= c->out.size, "record slice");
        r++;
        msgpack_object o;
        size_t len = 0;
        msgpack_zone_clear(&z);
        rp_mpcheck_result res = rp_mpcheck_unpack(c->out.data + start, end - start, lim, &z, &o, &len, NULL, 0);
        FZ_CHECK(res == RP_MPC_OK && len == end - start, "a parsed line is not one valid msgpack object");
        FZ_CHECK(o.type == MSGPACK_OBJECT_MAP, "a parsed line is not a map");
        fz_kind k;
        if (fz_typed_kind(&o, &k)) fz_roundtrip(k, &o, RP_DEC_WIRE);
    }
    msgpack_zone_destroy(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rp_mpcheck_limits lim;
    if (fz_np == NULL) {
        lim = fz_json_limits();
        rp_errbuf eb = {0};
        FZ_CHECK(rp_ndparse_start(1, &lim, &fz_np, &eb) == RP_OK, "cannot start the line parser");
        atexit(fz_np_stop);
    }
    const char *text = (const char *)data;
    /* The line numbers handed to the parser, in order (at most one a byte). */
    uint64_t *lines = malloc((size + 1) * sizeof *lines);
    FZ_CHECK(lines != NULL, "out of memory");
    size_t nlines = 0;
    uint64_t lineno = 0;
    for (size_t pos = 0; pos < size;) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : size - pos;
        lineno++;
        if (!fz_blank(text + pos, len)) {
            rp_errbuf eb = {0};
            FZ_CHECK(rp_ndparse_put(fz_np, text + pos, len, lineno, &eb) == RP_OK, "rp_ndparse_put failed");
            lines[nlines++] = lineno;
        }
        pos += len + (nl != NULL);
    }
    rp_ndparse_flush(fz_np);
    size_t next = 0;
    const rp_ndparse_chunk *c;
    while ((c = rp_ndparse_take(fz_np, true)) != NULL) {
        fz_chunk(c, &lim, lines, nlines, &next);
        rp_ndparse_release(fz_np, c);
    }
    FZ_CHECK(next == nlines, "a line never came back");
    FZ_CHECK(rp_ndparse_pending(fz_np) == 0, "chunks still pending");
    free(lines);
    return 0;
}
