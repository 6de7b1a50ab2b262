/* mpcheck.h — a bounded validator for untrusted MessagePack.
 *
 * msgpack-c's C unpacker trusts its input: it allocates count *
 * sizeof(msgpack_object) from its zone as soon as it reads an array or map
 * header, so five bytes (0xdd ff ff ff ff) ask for ~64 GB before a single
 * element has arrived. Every byte that comes off a socket therefore passes
 * through rp_mpcheck() first, and only an object it calls RP_MPC_OK is
 * handed to msgpack_unpack (rp_mpcheck_unpack does both).
 *
 * rp_mpcheck walks exactly one top-level object, iteratively: an explicit
 * stack of at most max_depth entries replaces recursion, so a nesting bomb
 * costs a bounded amount of C stack. The walk is O(n) in the bytes it looks
 * at and allocates nothing. It enforces, in the order it meets them:
 *
 *   - every type byte is a real format (0xc1 is never used: INVALID);
 *   - ext and fixext are INVALID (rapport never uses them; this includes the
 *     msgpack timestamp ext — times are integer unix seconds);
 *   - map keys are str (INVALID otherwise): the protocol only uses string
 *     keys, and the JSON face could not represent any other;
 *   - str is valid UTF-8 (INVALID otherwise; rp_utf8_valid from
 *     model/ident.h, so no overlongs, surrogates or code points past
 *     U+10FFFF); bin is opaque bytes;
 *   - str and bin lengths <= max_string, array and map counts (pairs for a
 *     map) <= max_container, nesting <= max_depth (each TOO_LARGE);
 *   - the object fits max_bytes. Each announced element costs at least one
 *     byte, so the walk keeps a running lower bound of the object's length
 *     (bytes seen + every length announced + one byte per element not yet
 *     started). As soon as that bound passes max_bytes the answer is
 *     TOO_LARGE, even though the bytes have not arrived: a streaming reader
 *     rejects a length lie after its header, without buffering gigabytes.
 *   - the zone memory msgpack_unpack would take (see RP_MPCHECK_ZONE_*)
 *     stays <= max_zone when max_zone is set (TOO_LARGE).
 *
 * Depth: a scalar at the top has depth 0, a top-level array or map depth 1,
 * an array inside it depth 2, and so on; an empty container counts as a
 * level like any other.
 *
 * Dependency: rp_utf8_valid (src/model/ident.c, library rp_model).
 */
#ifndef RP_MPCHECK_H
#define RP_MPCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "core/config.h"
#include "core/error.h"

/* The largest max_depth rp_mpcheck honours; larger values are clamped to it.
 * It bounds the explicit stack (16 bytes an entry, on the C stack) and
 * matches the largest max_depth the config accepts. */
#define RP_MPCHECK_DEPTH_CAP 1024

/* The deepest object msgpack-c's unpacker can build: its parse stack is a
 * fixed array of MSGPACK_EMBED_STACK_SIZE (32) containers, and deeper input
 * fails inside msgpack_unpack. rp_mpcheck_unpack clamps max_depth to this. */
#define RP_MPCHECK_UNPACK_DEPTH_MAX 32

/* Zone cost model of msgpack_unpack (msgpack-c 4.x, src/unpack.c): an array
 * of n takes n * sizeof(msgpack_object) from the zone, a map of n pairs
 * n * sizeof(msgpack_object_kv), each request padded up to
 * MSGPACK_ZONE_ALIGN (at most ALIGN-1 bytes). str and bin objects point into
 * the input buffer and take nothing. The zone carves these requests out of
 * chunks that grow by doubling, so the heap it actually holds is at most
 * about twice the requested bytes plus one chunk (MSGPACK_ZONE_CHUNK_SIZE). */
#define RP_MPCHECK_ZONE_PAD (sizeof(void *) - 1)

typedef struct rp_mpcheck_limits {
    size_t max_bytes;       /* the whole object, bytes; must be > 0 */
    uint32_t max_depth;     /* nesting of arrays and maps (see above); 0 = scalars only */
    uint32_t max_container; /* elements of an array, pairs of a map */
    uint32_t max_string;    /* bytes of one str or bin */
    size_t max_zone;        /* zone bytes msgpack_unpack may request; 0 = no
                             * limit beyond what max_bytes implies (on LP64,
                             * sizeof(msgpack_object) is 24: at most 31 zone
                             * bytes per input byte, padding included) */
    bool skip_utf8;         /* true: do not check that str values are UTF-8
                             * (values rapport wrote itself and validated
                             * then; bad text there is no memory hazard) */
} rp_mpcheck_limits;

typedef enum rp_mpcheck_result {
    RP_MPC_OK = 0,     /* one complete, valid object within the limits */
    RP_MPC_INCOMPLETE, /* valid so far and within the limits: need more bytes */
    RP_MPC_INVALID,    /* not MessagePack, or a form rapport does not accept */
    RP_MPC_TOO_LARGE,  /* a limit is (or, with more bytes, certainly would be) exceeded */
    RP_MPC_NOMEM       /* rp_mpcheck_unpack only: the zone could not allocate */
} rp_mpcheck_result;

/* What one walk found. */
typedef struct rp_mpcheck_info {
    size_t obj_len;    /* OK: the object's length in bytes (bytes after it in the
                        * buffer are not looked at: they may be the next
                        * pipelined message). INCOMPLETE: a lower bound of the
                        * object's total length, > len — the caller need not
                        * walk again before it has that many bytes. Otherwise 0. */
    size_t zone_bytes; /* OK: the bytes msgpack_unpack will request from its
                        * zone for this object (padding included). */
    uint32_t depth;    /* OK: the deepest nesting seen (0 for a scalar). */
} rp_mpcheck_info;

/* Limits from the server settings: max_request_bytes, max_depth,
 * max_container, max_string; max_zone = 0. */
rp_mpcheck_limits rp_mpcheck_limits_from_config(const rp_config *cfg);

/* Validate one MessagePack object at buf.
 *   buf, len: the bytes received so far (buf may be NULL when len is 0).
 *   lim:      the limits (trusted; max_depth above RP_MPCHECK_DEPTH_CAP is
 *             clamped to it).
 *   info:     receives what the walk found (see rp_mpcheck_info); may be NULL.
 *   why, whylen: receives a NUL-terminated sentence saying what is wrong, or
 *             what is missing, with the byte offset (truncated to whylen);
 *             set for every result but OK. May be NULL / 0.
 * Returns RP_MPC_OK, RP_MPC_INCOMPLETE, RP_MPC_INVALID or RP_MPC_TOO_LARGE
 * (never RP_MPC_NOMEM). An earlier problem wins: bytes that are INVALID at
 * offset 3 answer INVALID even if the object would also be too large.
 * O(n) in the bytes examined (at most min(len, max_bytes)); allocates
 * nothing; uses ~16 KB of C stack at the most. */
rp_mpcheck_result rp_mpcheck_ex(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                                rp_mpcheck_info *info, char *why, size_t whylen);

/* rp_mpcheck_ex with only the object length: *obj_len receives
 * info.obj_len (on OK the object's length; on INCOMPLETE a lower bound of
 * it). obj_len may be NULL. */
rp_mpcheck_result rp_mpcheck(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                             size_t *obj_len, char *why, size_t whylen);

/* Validate, then unpack the first object at buf with msgpack_unpack.
 *   zone:    an initialized zone (msgpack_zone_init / msgpack_zone_new) the
 *            caller owns and frees; the object's arrays and maps live in it.
 *   obj:     receives the object on OK. Its str and bin values point INTO buf:
 *            keep buf alive and unchanged while obj is used.
 *   obj_len: receives the object's length on OK (lower bound on
 *            INCOMPLETE); may be NULL.
 *   lim, why, whylen: as for rp_mpcheck_ex; lim->max_depth is further
 *            clamped to RP_MPCHECK_UNPACK_DEPTH_MAX, which msgpack-c
 *            cannot exceed.
 * Returns the result of the validation, or RP_MPC_NOMEM when the zone
 * could not allocate, or RP_MPC_INVALID should msgpack-c refuse what the
 * validator accepted (a bug in one of them; why says so). msgpack-c is
 * called only on OK, so at most info.zone_bytes (<= lim->max_zone when set)
 * are requested from the zone. */
rp_mpcheck_result rp_mpcheck_unpack(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                                    msgpack_zone *zone, msgpack_object *obj, size_t *obj_len,
                                    char *why, size_t whylen);

/* The rp_err a request gets for a result: OK -> RP_OK, TOO_LARGE ->
 * RP_TOO_LARGE, NOMEM -> RP_UNAVAILABLE, INVALID and INCOMPLETE (a body that
 * ended inside an object) -> RP_BAD_REQUEST. */
rp_err rp_mpcheck_err(rp_mpcheck_result r);

/* A short name for logs and tests ("OK", "INCOMPLETE", ...). Never NULL. */
const char *rp_mpcheck_result_name(rp_mpcheck_result r);

#endif
