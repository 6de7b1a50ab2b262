/* bench_card.c — what building a context card costs next to a plain
 * customer.get, in-process, on the same data.
 *
 * Loads the demo data set (src/cli/demo.c) into a fresh store through the
 * api's import operation, then calls rp_api_call for customer.get {id} and
 * for context.get {phone} / {id} on random customers, single-threaded, and
 * prints mean and percentiles per operation. No network: this isolates the
 * card's own cost (read events and issues, score, encode) from framing.
 *
 * Usage: bench_card [--customers N] [--calls N] [--dir DIR] [--seed S]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/demo.h"
#include "demo_load.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef enum { Q_GET, Q_CARD_PHONE, Q_CARD_ID, Q_ROUTE } query;

/* Time `calls` calls of one query on random customers; print a row. */
static void run(rp_api *api, const rp_demo_opts *d, query q, uint64_t calls, uint64_t *lat) {
    static const char *const names[] = {"customer.get {id}", "context.get {phone}", "context.get {id}",
                                        "route.get {phone}"};
    static const char *const ops[] = {"customer.get", "context.get", "context.get", "route.get"};
    uint64_t rng = 88172645463325252ull, bytes = 0;
    for (uint64_t i = 0; i < calls; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint64_t c = 1 + rng % d->customers;
        char key[48];
        if (q == Q_GET || q == Q_CARD_ID) rp_demo_customer_id(c, key);
        else rp_demo_phone(d, c, key);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        const char *k = (q == Q_GET || q == Q_CARD_ID) ? "id" : "phone";
        msgpack_pack_str_with_body(&pk, k, strlen(k));
        msgpack_pack_str_with_body(&pk, key, strlen(key));
        size_t len = 0;
        uint64_t t0 = now_ns();
        rp_err rc = rp_dl_call(api, ops[q], sb.data, sb.size, &len);
        lat[i] = now_ns() - t0;
        bytes += len;
        msgpack_sbuffer_destroy(&sb);
        if (rc != RP_OK) exit(3);
    }
    qsort(lat, calls, sizeof *lat, cmp_u64);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < calls; i++) sum += lat[i];
    printf("%-22s %9" PRIu64 " %9.1f %9.1f %9.1f %9.1f %9" PRIu64 "\n", names[q], calls,
           (double)sum / (double)calls / 1000.0, (double)lat[calls / 2] / 1000.0,
           (double)lat[calls * 99 / 100] / 1000.0, (double)lat[calls - 1] / 1000.0, bytes / calls);
}

int main(int argc, char **argv) {
    rp_demo_opts d;
    rp_demo_defaults(&d);
    d.customers = 10000;
    d.now = 1790000000;
    uint64_t calls = 20000;
    char dir[256] = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--customers") == 0) d.customers = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--calls") == 0) calls = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0) d.seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--dir") == 0) snprintf(dir, sizeof dir, "%s", argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_card [--customers N] [--calls N] [--dir DIR] [--seed S]\n");
            return 2;
        }
    }
    if (d.customers == 0 || calls == 0) {
        fprintf(stderr, "bench_card: --customers and --calls must be > 0\n");
        return 2;
    }
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/rp-bench-card-XXXXXX");
        if (!mkdtemp(dir)) return 3;
    }
    rp_config cfg;
    rp_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    snprintf(cfg.audit_log, sizeof cfg.audit_log, "/dev/null");
    cfg.durability = RP_DURABLE_ASYNC;
    rp_errbuf eb = {0};
    rp_store *s;
    rp_api *api;
    if (rp_store_open(&cfg, &s, &eb) != RP_OK || rp_api_create(s, &api, &eb) != RP_OK) {
        fprintf(stderr, "bench_card: %s\n", eb.msg);
        return 3;
    }
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    if (f == NULL || rp_demo_write(f, &d, &eb) != RP_OK) return 3;
    fclose(f);
    uint64_t t0 = now_ns();
    if (rp_dl_load(api, &cfg, text) != RP_OK) return 3;
    free(text);
    printf("loaded %" PRIu64 " demo customers (20..200 events each) in %.1f s into %s\n", d.customers,
           (double)(now_ns() - t0) / 1e9, dir);
    printf("%-22s %9s %9s %9s %9s %9s %9s\n", "operation (in-process)", "calls", "mean_us", "p50_us",
           "p99_us", "max_us", "bytes");
    uint64_t *lat = malloc(calls * sizeof *lat);
    if (lat == NULL) return 3;
    run(api, &d, Q_GET, calls, lat);
    run(api, &d, Q_CARD_ID, calls, lat);
    run(api, &d, Q_CARD_PHONE, calls, lat);
    run(api, &d, Q_ROUTE, calls, lat);
    free(lat);
    rp_api_destroy(api);
    rp_store_close(s);
    return 0;
}
