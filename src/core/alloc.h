/* alloc.h — allocation for per-request memory, with a failure hook for tests.
 *
 * Every allocation a request makes on its way through the server (the write
 * request copy, the reply frame, the HTTP call, the card scratch) goes
 * through these wrappers, so a test can make "the Nth allocation from now"
 * fail and check that the request gets an error reply instead of a crash.
 * With the hook off (the default) they cost one relaxed atomic load on top
 * of malloc. Start-up allocations may use plain malloc.
 */
#ifndef RP_ALLOC_H
#define RP_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* As malloc/calloc/realloc/strdup; NULL when out of memory or when the
 * failure hook fires. Free with free(). calloc checks n*size overflow. */
void *rp_malloc(size_t n);
void *rp_calloc(size_t n, size_t size);
void *rp_realloc(void *p, size_t n);
char *rp_strdup(const char *s);

/* Test hook: the `nth` allocation from now fails (1 = the next one), and so
 * does every `every`-th one after it when every > 0. nth == 0 turns the hook
 * off. Thread-safe. */
void rp_alloc_fail_at(uint64_t nth, uint64_t every);

/* How many allocations the hook has failed since the process started. */
uint64_t rp_alloc_failures(void);

#endif
