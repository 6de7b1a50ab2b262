/* ndlines.h — the one NDJSON line splitter (HTTP import and the CLI).
 *
 * Both readers of NDJSON (POST /v1/import in net/http_route.c and
 * `rapport import` in cli/ndjson.c) cut their input into lines here, so
 * they agree on what a line is (proto/RECORDS.md, "NDJSON lines"):
 *
 *   - a line ends at '\n' (or at the end of the input, for a last line
 *     without one); the '\n' is not part of it;
 *   - CRLF: one '\r' just before the '\n' (or at the end of the input) is
 *     dropped too, so CRLF files read as LF files;
 *   - a blank line — empty, or made only of spaces, tabs and '\r' — is
 *     skipped, but still counted, so line numbers in error messages are
 *     those an editor shows;
 *   - a UTF-8 byte order mark (EF BB BF) opening the input — the first
 *     bytes of line 1, i.e. when rp_ndlines_init gets first_no 0 — is
 *     dropped (Notepad, PowerShell and Excel's "CSV UTF-8" write one). A
 *     BOM anywhere else is part of its line (and not JSON);
 *   - line length: the splitter itself has no bound and allocates nothing;
 *     a line is a view into the caller's bytes, at most as long as they are.
 *     The callers bound their input: an HTTP body is at most
 *     max_request_bytes, and every line's JSON is held to the same
 *     max_bytes by rp_json_to_msgpack / the CLI's parser.
 *
 * Not NUL-terminated: use p and len. Thread-safe (no state but the
 * caller's cursor).
 */
#ifndef RP_NDLINES_H
#define RP_NDLINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One line of input: a view into the caller's buffer. */
typedef struct rp_ndline {
    const char *p; /* first byte of the line */
    size_t len;    /* bytes, without the '\n' and the '\r' before it */
    uint64_t no;   /* 1-based line number (blank lines counted) */
} rp_ndline;

/* A cursor over buf[0..len): start it with rp_ndlines_init. */
typedef struct rp_ndlines {
    const char *buf;
    size_t len;
    size_t pos;  /* next byte to read */
    uint64_t no; /* lines read so far, blank ones included */
} rp_ndlines;

/* Start reading buf[0..len) (buf may be NULL when len is 0; not copied,
 * must outlive the cursor). first_no: the number of the line before the
 * first one (0 for a whole input; the CLI, which feeds one line at a
 * time, passes the count so far). With first_no 0 a leading UTF-8 BOM is
 * skipped. */
void rp_ndlines_init(rp_ndlines *r, const char *buf, size_t len, uint64_t first_no);

/* The next non-blank line into *out. Returns false at the end of the input
 * (*out untouched). O(length of the lines passed over). */
bool rp_ndlines_next(rp_ndlines *r, rp_ndline *out);

/* Is p[0..n) blank (only ' ', '\t' and '\r', or empty)? */
bool rp_ndlines_blank(const char *p, size_t n);

#endif
