/* bench_append.c — the store's event append in-process: the cost of
 * rp_store_wappend_event inside a write transaction (which includes the
 * card digest's maintenance, store/digest.h), and one append per write.
 *
 *   bench_append DIR     (DIR: an empty directory; it is left behind)
 *
 * 100 customers, events with random timestamps over 30 days (so most
 * arrive out of order), card_max_events at its default (200), async
 * durability. Prints microseconds per event for 20,000 appends in writes
 * of 1,000, three times as the histories grow by 200 events each, then
 * 20,000 appends of one per write. Measured before/after digests on one
 * machine; the figures are in the commit that added digests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/config.h"
#include "store/store.h"

#define NCUST 100
static rp_store *S;
static uint64_t rng = 1;
static uint32_t rnd(uint32_t n) { rng = rng * 6364136223846793005ull + 1442695040888963407ull; return (uint32_t)(rng >> 33) % n; }
static char ids[NCUST][16];
static int per_write;
static rp_err fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    (void)arg;
    for (int i = 0; i < per_write; i++) {
        rp_event e; memset(&e, 0, sizeof e);
        e.customer_id = rp_str_c(ids[rnd(NCUST)]);
        e.ts = 1732350000 - (int64_t)rnd(86400 * 30);
        e.channel = RP_CH_PHONE; e.kind = rp_str_c(rnd(2) ? "contact" : "order");
        e.topic = rp_str_c(rnd(2) ? "billing" : "delivery"); e.agent = rp_str_c("ana");
        e.summary = rp_str_c("called about the bill, resolved on first contact");
        e.outcome = RP_OUT_RESOLVED; e.has_sentiment = true; e.sentiment = 0.25;
        rp_err rc = rp_store_wappend_event(S, txn, &e, 1732350000, NULL, NULL, NULL, eb);
        if (rc) return rc;
    }
    return RP_OK;
}
static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bench_append DIR\n");
        return 2;
    }
    rp_config cfg; rp_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", argv[1]);
    cfg.durability = RP_DURABLE_ASYNC; cfg.map_initial = 1ull << 30; cfg.map_max = 4ull << 30;
    cfg.retention_max_events = 1000000;
    rp_errbuf eb = {0};
    if (rp_store_open(&cfg, &S, &eb)) { fprintf(stderr, "%s\n", eb.msg); return 1; }
    for (int i = 0; i < NCUST; i++) {
        snprintf(ids[i], 16, "cust-%04d", i);
        rp_customer c; memset(&c, 0, sizeof c); c.id = rp_str_c(ids[i]);
        if (rp_store_put_customer(S, &c, NULL, NULL, &eb)) { fprintf(stderr, "%s\n", eb.msg); return 1; }
    }
    per_write = 1000;
    for (int w = 0; w < 20; w++) rp_store_write(S, fn, NULL, &eb); /* warm: 200 events each */
    for (int round = 0; round < 3; round++) {
        double t0 = now_s();
        for (int w = 0; w < 20; w++) if (rp_store_write(S, fn, NULL, &eb)) { fprintf(stderr, "%s\n", eb.msg); return 1; }
        double dt = now_s() - t0;
        printf("in-txn append: %.2f us/event (20000 events, %d customers, ~%d..%d events each)\n", dt / 20000 * 1e6, NCUST, 200 + round * 200, 400 + round * 200);
    }
    per_write = 1;
    double t0 = now_s();
    for (int w = 0; w < 20000; w++) rp_store_write(S, fn, NULL, &eb);
    printf("one append per write (async durability): %.2f us/append\n", (now_s() - t0) / 20000 * 1e6);
    rp_store_close(S);
    return 0;
}
