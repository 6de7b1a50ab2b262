/* json.h — JSON <-> MessagePack at the HTTP edge.
 *
 * Inside rapport everything is MessagePack; JSON exists only at the HTTP
 * face and in NDJSON import/export. This module converts both ways.
 *
 * JSON -> MessagePack parses with jansson (a well-kept parser, never a
 * hand-written one) and walks the tree iteratively, enforcing the same
 * limits rp_mpcheck enforces, so whatever it produces passes rp_mpcheck
 * with the same limits (it runs rp_mpcheck on its output to make sure).
 *
 * MessagePack -> JSON is a direct streaming writer over a msgpack_object
 * (no json_t tree: the HTTP face converts every context card), into an
 * rp_buf. Its output rules, which are the JSON contract of the HTTP face:
 *   - map keys in msgpack order (so field order is stable);
 *   - integers exactly, the full int64 and uint64 ranges;
 *   - floats as the shortest "%.{15,16,17}g" text (float32: 6..9 digits)
 *     that reads back to the same value, with ".0" added when that text
 *     looks like an integer (so 1.0 stays a float); NaN and infinities as
 *     null (JSON has no such numbers);
 *   - strings escaped: \" \\ \n \t \r \b \f, other bytes below 0x20 as
 *     \u00XX, and U+2028 / U+2029 as \u2028 / \u2029 (they end a line in
 *     JavaScript); any other UTF-8 passes through. Bytes that are not
 *     valid UTF-8 (only possible in an object that skipped rp_mpcheck)
 *     become U+FFFD, so the output is always valid UTF-8;
 *   - bin as a string of lowercase hex (rapport never sends bin);
 *   - map keys that are not strings: integers, floats, booleans and nil are
 *     written as the string of their JSON text ("1", "true", "null"), bin as
 *     its hex; an array or map as a key is refused (RP_BAD_REQUEST);
 *   - ext values are refused (RP_BAD_REQUEST): they have no JSON form;
 *   - compact by default ({"a":1,"b":[1,2]}); RP_JSON_PRETTY indents by two
 *     spaces with "key": value, for people (the CLI).
 * JSON -> MessagePack -> JSON therefore reproduces compact, canonical input
 * byte for byte.
 */
#ifndef RP_JSON_H
#define RP_JSON_H

#include <stddef.h>

#include <msgpack.h>

#include "core/error.h"
#include "net/buf.h"
#include "model/mpcheck.h"

/* Flags of rp_msgpack_to_json. */
#define RP_JSON_PRETTY 0x1u /* newlines and two-space indentation */

/* The deepest msgpack_object rp_msgpack_to_json writes. Its explicit stack
 * holds 64 levels inline and moves to the heap (16 bytes a level) beyond.
 * Objects from rp_mpcheck_unpack are at most 32 deep. */
#define RP_JSON_DEPTH_MAX 1024

/* Parse JSON text and append its MessagePack form to out.
 *   text, len: the JSON text (not NUL-terminated; len bytes). Any JSON value
 *          is accepted at the top (the caller checks it got the object it
 *          wanted). Duplicate object keys and NUL characters in strings
 *          (\u0000) are refused.
 *   lim:   len and the MessagePack produced must each be <= lim->max_bytes;
 *          strings and keys <= max_string bytes, arrays and objects <=
 *          max_container items, nesting <= max_depth (as in mpcheck.h: a
 *          top-level array or object is depth 1), and the decoded form
 *          within max_zone when set.
 *   out:   an initialized sbuffer; the MessagePack is appended. On error out
 *          is left as it was.
 * Mapping: integers -> the smallest msgpack int form; reals -> float64;
 * true/false/null; strings -> str (jansson guarantees UTF-8); arrays ->
 * arrays; objects -> maps with str keys, in document order.
 * Returns RP_OK; RP_BAD_REQUEST for text that is not JSON, or numbers
 * outside int64 or double (eb gives jansson's message with line, column and
 * byte position); RP_TOO_LARGE when a limit is passed (jansson's own depth
 * limit of 2048 included); RP_UNAVAILABLE when out of memory.
 * O(n) time; jansson builds the whole tree first, so memory is O(len). */
rp_err rp_json_to_msgpack(const char *text, size_t len, const rp_mpcheck_limits *lim,
                          msgpack_sbuffer *out, rp_errbuf *eb);

/* Write o as JSON text, appended to out (rules above).
 *   o:     the object; its str/bin pointers must be valid.
 *   flags: 0 or RP_JSON_PRETTY.
 *   out:   an initialized rp_buf; its max bounds the output. On error out is
 *          rolled back to its length at the call and its sticky error cleared.
 *          No trailing newline is written.
 * Returns RP_OK; RP_TOO_LARGE when out's max would be passed, or o nests
 * deeper than RP_JSON_DEPTH_MAX; RP_BAD_REQUEST for an ext value or a
 * container used as a map key; RP_UNAVAILABLE when out of memory; out's
 * sticky error when it already had one (out is then untouched).
 * O(size of o + output). */
rp_err rp_msgpack_to_json(const msgpack_object *o, unsigned flags, rp_buf *out, rp_errbuf *eb);

/* Validate the first MessagePack object at buf (rp_mpcheck_unpack with
 * lim), then write it as JSON to out like rp_msgpack_to_json.
 *   obj_len: receives the object's length in bytes on RP_OK; may be NULL.
 * Returns the errors of rp_msgpack_to_json, or those of the validation as
 * rp_mpcheck_err maps them (a truncated object is RP_BAD_REQUEST). */
rp_err rp_msgpack_bytes_to_json(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                                unsigned flags, rp_buf *out, size_t *obj_len, rp_errbuf *eb);

#endif
