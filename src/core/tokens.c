/* tokens.c — refcounted immutable token tables behind a swap (see tokens.h). */
#include "core/tokens.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/siphash.h"

typedef struct tok_entry {
    rp_role role;
    uint64_t hash;
    size_t len;
    char secret[sizeof(((rp_token *)0)->secret)];
} tok_entry;

typedef struct tok_table {
    atomic_uint refs;
    uint64_t gen;
    uint32_t n;
    tok_entry e[RP_MAX_TOKENS];
} tok_table;

struct rp_tokens_box {
    pthread_mutex_t mu;
    tok_table *cur;     /* under mu */
    atomic_uint_fast64_t gen;
    uint8_t key[RP_SIPHASH_KEY]; /* per process: hashes are never comparable elsewhere */
};

static uint64_t tok_hash(const rp_tokens_box *b, const char *s, size_t n) {
    uint8_t out[RP_SIPHASH_OUT];
    rp_siphash128(s, n, b->key, out);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

static tok_table *tok_table_new(const rp_tokens_box *b, const rp_config *cfg, uint64_t gen) {
    tok_table *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    atomic_init(&t->refs, 1);
    t->gen = gen;
    for (uint32_t i = 0; i < cfg->ntokens && i < RP_MAX_TOKENS; i++) {
        tok_entry *e = &t->e[t->n++];
        e->role = cfg->tokens[i].role;
        e->len = strnlen(cfg->tokens[i].secret, sizeof e->secret - 1);
        memcpy(e->secret, cfg->tokens[i].secret, e->len);
        e->hash = tok_hash(b, e->secret, e->len);
    }
    return t;
}

static void tok_table_release(tok_table *t) {
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1) {
        memset(t->e, 0, sizeof t->e); /* secrets do not linger in freed memory */
        free(t);
    }
}

/* Take a reference to the current table. */
static tok_table *tok_acquire(rp_tokens_box *b) {
    pthread_mutex_lock(&b->mu);
    tok_table *t = b->cur;
    atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&b->mu);
    return t;
}

/* A per-process key; not secret-critical (hashes never leave the process),
 * only unpredictable enough that crafted tokens cannot collide on purpose. */
static void tok_key(uint8_t key[RP_SIPHASH_KEY]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid() << 40;
    uint64_t c = (uint64_t)(uintptr_t)key ^ (uint64_t)clock();
    FILE *f = fopen("/dev/urandom", "rb");
    if (f != NULL) {
        if (fread(key, 1, RP_SIPHASH_KEY, f) == RP_SIPHASH_KEY) {
            fclose(f);
            return;
        }
        fclose(f);
    }
    memcpy(key, &a, 8);
    memcpy(key + 8, &c, 8);
}

rp_err rp_tokens_box_new(const rp_config *cfg, rp_tokens_box **out, rp_errbuf *eb) {
    rp_tokens_box *b = calloc(1, sizeof *b);
    if (b == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory for the token table");
    tok_key(b->key);
    b->cur = tok_table_new(b, cfg, 1);
    if (b->cur == NULL || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->cur);
        free(b);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory for the token table");
    }
    atomic_init(&b->gen, 1);
    *out = b;
    return RP_OK;
}

void rp_tokens_box_free(rp_tokens_box *b) {
    if (b == NULL) return;
    tok_table_release(b->cur);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

rp_err rp_tokens_swap(rp_tokens_box *b, const rp_config *cfg, rp_errbuf *eb) {
    pthread_mutex_lock(&b->mu);
    tok_table *old = b->cur;
    tok_table *t = tok_table_new(b, cfg, old->gen + 1);
    if (t == NULL) {
        pthread_mutex_unlock(&b->mu);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory for the token table");
    }
    b->cur = t;
    atomic_store(&b->gen, t->gen);
    pthread_mutex_unlock(&b->mu);
    tok_table_release(old); /* freed here, or by its last reader */
    return RP_OK;
}

bool rp_tokens_enabled(rp_tokens_box *b) {
    tok_table *t = tok_acquire(b);
    bool on = t->n > 0;
    tok_table_release(t);
    return on;
}

/* Constant-time per entry: the whole secret is compared whatever matches. */
static rp_role tok_find(const tok_table *t, const char *s, size_t len) {
    rp_role found = RP_ROLE_NONE;
    for (uint32_t i = 0; i < t->n; i++) {
        const tok_entry *e = &t->e[i];
        unsigned char diff = (unsigned char)(e->len != len);
        for (size_t j = 0; j < e->len; j++) diff |= (unsigned char)(e->secret[j] ^ (j < len ? s[j] : 0));
        if (diff == 0) found = e->role;
    }
    return found;
}

rp_role rp_tokens_auth_role(rp_tokens_box *b, const char *secret, size_t len, rp_tokens_auth *a) {
    tok_table *t = tok_acquire(b);
    rp_role role = t->n == 0 ? RP_ROLE_ADMIN : secret ? tok_find(t, secret, len) : RP_ROLE_NONE;
    if (a != NULL) {
        a->gen = t->gen;
        a->has_token = secret != NULL;
        a->hash = secret ? tok_hash(b, secret, len) : 0;
        a->role = role;
    }
    tok_table_release(t);
    return role;
}

rp_role rp_tokens_recheck(rp_tokens_box *b, rp_tokens_auth *a) {
    if (a->gen != 0 && a->gen == atomic_load(&b->gen)) return a->role;
    tok_table *t = tok_acquire(b);
    rp_role role = RP_ROLE_NONE;
    if (t->n == 0) role = RP_ROLE_ADMIN;
    else if (a->has_token)
        for (uint32_t i = 0; i < t->n; i++)
            if (t->e[i].hash == a->hash) role = t->e[i].role;
    a->gen = t->gen;
    a->role = role;
    tok_table_release(t);
    return role;
}

uint64_t rp_tokens_generation(rp_tokens_box *b) { return atomic_load(&b->gen); }
