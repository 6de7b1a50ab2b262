/* siphash.h — SipHash-2-4 with a 128-bit tag (Aumasson and Bernstein).
 *
 * A keyed hash with a well-studied design: the reference implementation's
 * test vectors (github.com/veorq/SipHash, vectors.h `vectors_sip128`) are
 * checked by tests/core/test_siphash.c. rapport uses it where a 64-bit
 * hash would be too short to trust (idempotency keys remember a hash of
 * the request, store/idem.h).
 */
#ifndef RP_SIPHASH_H
#define RP_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define RP_SIPHASH_KEY 16
#define RP_SIPHASH_OUT 16

/* The 128-bit SipHash-2-4 tag of in[0..n) under key, into out (the byte
 * order of the reference implementation: two little-endian 64-bit words).
 * in may be NULL when n is 0. Never fails; O(n). */
void rp_siphash128(const void *in, size_t n, const uint8_t key[RP_SIPHASH_KEY],
                   uint8_t out[RP_SIPHASH_OUT]);

#endif
