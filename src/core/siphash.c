/* siphash.c — SipHash-2-4, 128-bit output (see siphash.h).
 *
 * Written from the paper's description: four 64-bit lanes, two rounds per
 * 8-byte message word, four finalization rounds per output word; the
 * 128-bit variant xors 0xee into v1 at the start and into v2 before the
 * first finalization, and 0xdd into v1 before the second.
 */
#include "core/siphash.h"

#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct sip {
    uint64_t v0, v1, v2, v3;
} sip;

static void sip_round(sip *s) {
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

/* Absorb one message word: c = 2 rounds. */
static void sip_word(sip *s, uint64_t m) {
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

/* d = 4 finalization rounds, then the lanes folded into one word. */
static uint64_t sip_final(sip *s) {
    for (int i = 0; i < 4; i++) sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

void rp_siphash128(const void *in, size_t n, const uint8_t key[RP_SIPHASH_KEY],
                   uint8_t out[RP_SIPHASH_OUT]) {
    const uint8_t *p = in;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    sip s = {0x736f6d6570736575ULL ^ k0, 0x646f72616e646f6dULL ^ k1, 0x6c7967656e657261ULL ^ k0,
             0x7465646279746573ULL ^ k1};
    s.v1 ^= 0xee;
    size_t whole = n - n % 8;
    for (size_t i = 0; i < whole; i += 8) sip_word(&s, le64(p + i));
    uint8_t tail[8] = {0};
    if (n - whole) memcpy(tail, p + whole, n - whole);
    uint64_t last = le64(tail) | ((uint64_t)n << 56);
    sip_word(&s, last);
    s.v2 ^= 0xee;
    put_le64(out, sip_final(&s));
    s.v1 ^= 0xdd;
    put_le64(out + 8, sip_final(&s));
}
