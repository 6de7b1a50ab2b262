/* demo.h — a realistic, deterministic synthetic data set, as NDJSON.
 *
 * `rapport demo` writes customers with profiles, mixed-format phones, several
 * languages and tiers, 20..200 events each (contacts, orders, deliveries,
 * payments, outages, routine web events) and 0..5 issues, each customer
 * carrying one "reason to call now" (a delayed delivery, a failed payment, a
 * missed callback, an outage, ...). Some customers share a household phone,
 * some are duplicates of their neighbour (same email, other id).
 *
 * Determinism: customer i is generated from (seed, i) alone, and every time
 * is relative to `now`, so the same (seed, now, i) always gives the same
 * lines, whatever the total count. Output is one JSON object per line in the
 * import format of proto/RECORDS.md.
 */
#ifndef RP_DEMO_H
#define RP_DEMO_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

typedef struct rp_demo_opts {
    uint64_t customers;  /* how many customers (ids c0000001...) */
    uint64_t seed;       /* any value; same seed -> same data */
    int64_t now;         /* unix seconds that "recent" is relative to */
    uint32_t events_min; /* per customer, default 20 */
    uint32_t events_max; /* per customer, default 200 */
} rp_demo_opts;

/* Fill the defaults: 1,000 customers, seed 1, now = time(NULL), 20..200. */
void rp_demo_defaults(rp_demo_opts *o);

/* Write the data set to out. Returns RP_OK, RP_BAD_REQUEST (events_min >
 * events_max, customers 0 or > 100,000,000), or RP_INTERNAL on a write error.
 * Complexity O(customers * events). */
rp_err rp_demo_write(FILE *out, const rp_demo_opts *o, rp_errbuf *eb);

/* The customer id and the phone number (as written, in its demo format) of
 * customer number i (1-based): for picking a sample caller. A duplicate
 * profile (every 40th) has the phone of the customer before it, so that
 * number answers ambiguously with both profiles. */
void rp_demo_customer_id(uint64_t i, char out[16]);
void rp_demo_phone(const rp_demo_opts *o, uint64_t i, char out[40]);

#endif
