/* tokens.h — the live table of bearer tokens, swappable while workers read it.
 *
 * The tokens of rp_config are read by every worker thread (each HTTP
 * request, each RPC `auth`). A SIGHUP replaces them: rp_tokens_swap()
 * publishes a new immutable table and the old one is freed when the last
 * reader lets go of it. Readers never see a half-written table.
 *
 * How: each table is immutable and reference-counted. The box holds the
 * current table under a mutex that is held only to take a reference (a
 * pointer copy and an atomic increment), never during a comparison; a
 * swap takes the mutex, replaces the pointer, bumps the generation and
 * drops the box's reference to the old table. Whoever drops the last
 * reference frees it. So a table is freed exactly when no thread can reach
 * it any more, with no grace periods to reason about.
 *
 * An RPC connection authenticates once and keeps its role; rp_tokens_auth
 * fills an rp_tokens_auth with the generation it was resolved under and a
 * keyed hash of the token (never the token itself). rp_tokens_recheck
 * resolves the role again when the table has changed since, so a token
 * removed by a reload stops working on connections already open.
 */
#ifndef RP_TOKENS_H
#define RP_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct rp_tokens_box rp_tokens_box;

/* What a connection remembers of its authentication. Zero-filled = never
 * authenticated (resolved on first use). */
typedef struct rp_tokens_auth {
    uint64_t gen;   /* table generation the role was resolved under (0: never) */
    uint64_t hash;  /* keyed hash of the presented token */
    bool has_token; /* a token was presented */
    rp_role role;   /* the role under table `gen` */
} rp_tokens_auth;

/* Create a box holding cfg's tokens (copied).
 * Returns RP_OK, or RP_UNAVAILABLE (out of memory) with eb set.
 * Ownership: *out is the caller's; free with rp_tokens_box_free. */
rp_err rp_tokens_box_new(const rp_config *cfg, rp_tokens_box **out, rp_errbuf *eb);

/* Free the box and its table. No reader may be using it (NULL is ok). */
void rp_tokens_box_free(rp_tokens_box *b);

/* Publish cfg's tokens (copied) as the new table. Thread-safe against any
 * number of readers. Returns RP_OK, or RP_UNAVAILABLE (out of memory; the
 * old table stays). */
rp_err rp_tokens_swap(rp_tokens_box *b, const rp_config *cfg, rp_errbuf *eb);

/* Are any tokens configured now? (none: the server is loopback-only and
 * everyone is admin). Thread-safe. */
bool rp_tokens_enabled(rp_tokens_box *b);

/* Resolve a presented token: RP_ROLE_ADMIN when no tokens are configured,
 * else the token's role or RP_ROLE_NONE. secret may be NULL (len 0: no token
 * presented). Constant-time per configured token. When a is not NULL it is
 * filled for rp_tokens_recheck. Thread-safe. */
rp_role rp_tokens_auth_role(rp_tokens_box *b, const char *secret, size_t len, rp_tokens_auth *a);

/* The role of a remembered authentication under the current table: a->role
 * when the table has not changed since (one atomic load), else resolved
 * again by the token's hash and stored in *a. Thread-safe; *a is the
 * caller's (one connection's, so used by one thread). */
rp_role rp_tokens_recheck(rp_tokens_box *b, rp_tokens_auth *a);

/* The current generation (1 at creation, +1 per swap). */
uint64_t rp_tokens_generation(rp_tokens_box *b);

#endif
