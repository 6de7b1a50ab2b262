/* alloc.c — allocation wrappers and the failure hook (see alloc.h). */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t alloc_countdown; /* 0 = hook off */
static atomic_uint_fast64_t alloc_every;
static atomic_uint_fast64_t alloc_failed;

/* Decide whether this allocation fails. O(1); lock-free. */
static int alloc_should_fail(void) {
    if (atomic_load_explicit(&alloc_countdown, memory_order_relaxed) == 0) return 0;
    uint_fast64_t left = atomic_fetch_sub(&alloc_countdown, 1);
    if (left == 0) { /* raced with a turn-off: undo */
        atomic_fetch_add(&alloc_countdown, 1);
        return 0;
    }
    if (left != 1) return 0;
    uint_fast64_t every = atomic_load(&alloc_every);
    if (every) atomic_store(&alloc_countdown, every);
    atomic_fetch_add(&alloc_failed, 1);
    return 1;
}

void *rp_malloc(size_t n) { return alloc_should_fail() ? NULL : malloc(n); }

void *rp_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return alloc_should_fail() ? NULL : calloc(n, size);
}

void *rp_realloc(void *p, size_t n) { return alloc_should_fail() ? NULL : realloc(p, n); }

char *rp_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = rp_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void rp_alloc_fail_at(uint64_t nth, uint64_t every) {
    atomic_store(&alloc_every, every);
    atomic_store(&alloc_countdown, nth);
}

uint64_t rp_alloc_failures(void) { return atomic_load(&alloc_failed); }
