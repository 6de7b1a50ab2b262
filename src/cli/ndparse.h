/* cli/ndparse.h — NDJSON lines to msgpack records on worker threads, in order (ndparse.c). */
#ifndef RP_CLI_NDPARSE_H
#define RP_CLI_NDPARSE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/mpcheck.h"

typedef struct rp_ndparse rp_ndparse;

/* A line that did not become a record. */
typedef struct rp_ndparse_err {
    uint64_t line;
    rp_err rc;                /* RP_BAD_REQUEST (not JSON, not an object), RP_TOO_LARGE */
    char msg[RP_ERRMSG_MAX];
} rp_ndparse_err;

/* The result of one chunk of lines, in line order: records (msgpack maps,
 * one after another in out; record i starts at offs[i] and ends where the
 * next starts, or at out.size) and errors, each with its line number. */
typedef struct rp_ndparse_chunk {
    msgpack_sbuffer out;
    size_t *offs;
    uint64_t *lines;
    uint32_t nrec;
    rp_ndparse_err *errs;
    uint32_t nerr;
} rp_ndparse_chunk;

/* Start `threads` parsing threads (0 counts as 1) converting lines with
 * rp_json_to_msgpack under lim (copied). Returns RP_OK or RP_UNAVAILABLE. */
rp_err rp_ndparse_start(unsigned threads, const rp_mpcheck_limits *lim, rp_ndparse **out,
                        rp_errbuf *eb);

/* Stop the threads and free everything, chunks not taken included. NULL ok. */
void rp_ndparse_stop(rp_ndparse *p);

/* Add one line (without its newline; copied) with its line number. Full
 * chunks are queued for the threads. Returns RP_OK, RP_UNAVAILABLE (out of
 * memory) or RP_TOO_LARGE (a line that cannot be held). */
rp_err rp_ndparse_put(rp_ndparse *p, const char *line, size_t len, uint64_t lineno, rp_errbuf *eb);

/* Queue the partly filled chunk (at the end of the input). */
void rp_ndparse_flush(rp_ndparse *p);

/* Chunks queued and not taken back yet. */
unsigned rp_ndparse_pending(const rp_ndparse *p);

/* The oldest chunk, once parsed: with wait, block until it is; without,
 * NULL when it is not ready. NULL when nothing is pending. Hand it back
 * with rp_ndparse_release. Chunks come back in the order of their lines. */
const rp_ndparse_chunk *rp_ndparse_take(rp_ndparse *p, bool wait);
void rp_ndparse_release(rp_ndparse *p, const rp_ndparse_chunk *c);

#endif
