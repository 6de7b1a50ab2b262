/* bench_rpc.c — MessagePack-RPC throughput and latency of a running rapportd.
 *
 * Opens --conns connections (one thread each), keeps --depth requests in
 * flight on each (depth 1 = call and wait, like a CRM pool; more =
 * pipelining), runs for --seconds, and prints throughput and latency
 * percentiles per operation. Latency is measured per request, from the
 * moment it was queued to the moment its reply was read, so with depth > 1
 * it includes the time spent behind the earlier requests of the pipeline.
 *
 *   rapportd --data /tmp/bench-data --http "" --durability async &
 *   bench_rpc --addr 127.0.0.1:7070 --conns 50 --seconds 5 --op ping
 *   bench_rpc --addr 127.0.0.1:7070 --conns 50 --seconds 5 --op customer.get --customers 10000
 *
 * customer.get first loads --customers small profiles (ids bench-0...,
 * pipelined puts on one connection; skipped with --no-load) and then reads
 * random ones. Latency buckets: 1 µs up to 10 ms, 100 µs up to 1 s.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "net/client.h"

#define NB_FINE 10000                 /* 1 µs buckets below 10 ms */
#define NB_COARSE 9900                /* 100 µs buckets from 10 ms to 1 s */
#define NB (NB_FINE + NB_COARSE + 1)  /* + overflow */
#define MAX_DEPTH 256

typedef struct opts {
    const char *addr, *op, *token;
    int conns, depth, seconds, customers;
    bool load;
} opts;

typedef struct worker {
    const opts *o;
    unsigned seed;
    atomic_bool *stop;
    uint64_t done, errors;
    uint64_t *hist; /* NB buckets */
    bool failed;
    char why[RP_ERRMSG_MAX];
} worker;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hist_add(uint64_t *h, uint64_t ns) {
    uint64_t us = ns / 1000;
    size_t b = us < NB_FINE ? us : NB_FINE + (us - NB_FINE) / 100;
    if (b >= NB) b = NB - 1;
    h[b]++;
}

/* Lower edge of bucket b, in µs. */
static double hist_edge(size_t b) { return b < NB_FINE ? (double)b : NB_FINE + (double)(b - NB_FINE) * 100; }

static double hist_pct(const uint64_t *h, uint64_t total, double p) {
    uint64_t want = (uint64_t)(p * (double)total), seen = 0;
    for (size_t b = 0; b < NB; b++) {
        seen += h[b];
        if (seen > want) return hist_edge(b);
    }
    return hist_edge(NB - 1);
}

/* Pack {id: "bench-<n>"} into sb. */
static void pack_id(msgpack_sbuffer *sb, unsigned n) {
    char id[32];
    int l = snprintf(id, sizeof id, "bench-%u", n);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_str_with_body(&pk, id, (size_t)l);
}

/* Queue the next request of this worker's operation. */
static rp_err send_one(worker *w, rp_client *c, rp_errbuf *eb) {
    if (strcmp(w->o->op, "ping") == 0) return rp_client_send(c, "ping", NULL, 0, NULL, eb);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_id(&sb, (unsigned)rand_r(&w->seed) % (unsigned)w->o->customers);
    rp_err rc = rp_client_send(c, w->o->op, sb.data, sb.size, NULL, eb);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    rp_errbuf eb = {0};
    rp_client *c = NULL;
    uint64_t sent_at[MAX_DEPTH];
    unsigned head = 0, tail = 0; /* ring of send times, in request order */
    if (rp_client_connect(w->o->addr, 10000, &c, &eb) != RP_OK ||
        (w->o->token && rp_client_auth(c, w->o->token, NULL, &eb) != RP_OK))
        goto fail;
    while (!atomic_load(w->stop)) {
        while (rp_client_pending(c) < (unsigned)w->o->depth) {
            if (send_one(w, c, &eb) != RP_OK) goto fail;
            sent_at[tail++ % MAX_DEPTH] = now_ns();
        }
        rp_client_reply r;
        if (rp_client_recv(c, &r, &eb) != RP_OK) goto fail;
        hist_add(w->hist, now_ns() - sent_at[head++ % MAX_DEPTH]);
        if (r.rc != RP_OK) w->errors++;
        w->done++;
    }
    rp_client_close(c);
    return NULL;
fail:
    w->failed = true;
    snprintf(w->why, sizeof w->why, "%s", eb.msg);
    rp_client_close(c);
    return NULL;
}

/* Put --customers small profiles, 256 in flight on one connection. */
static int load_customers(const opts *o) {
    rp_errbuf eb = {0};
    rp_client *c = NULL;
    if (rp_client_connect(o->addr, 10000, &c, &eb) != RP_OK ||
        (o->token && rp_client_auth(c, o->token, NULL, &eb) != RP_OK)) {
        fprintf(stderr, "bench_rpc: %s\n", eb.msg);
        rp_client_close(c);
        return -1;
    }
    int sent = 0, got = 0, bad = 0;
    while (got < o->customers) {
        while (sent < o->customers && rp_client_pending(c) < 256) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            char id[32], phone[24];
            int il = snprintf(id, sizeof id, "bench-%d", sent);
            /* a valid NANP number: exchange 200..999, line 0000..9999 */
            int pl = snprintf(phone, sizeof phone, "+1415%03d%04d", 200 + (sent / 10000) % 800, sent % 10000);
            msgpack_pack_map(&pk, 2);
            msgpack_pack_str_with_body(&pk, "id", 2);
            msgpack_pack_str_with_body(&pk, id, (size_t)il);
            msgpack_pack_str_with_body(&pk, "customer", 8);
            msgpack_pack_map(&pk, 4);
            msgpack_pack_str_with_body(&pk, "name", 4);
            msgpack_pack_str_with_body(&pk, "Bench Customer", 14);
            msgpack_pack_str_with_body(&pk, "tier", 4);
            msgpack_pack_str_with_body(&pk, "gold", 4);
            msgpack_pack_str_with_body(&pk, "language", 8);
            msgpack_pack_str_with_body(&pk, "en-US", 5);
            msgpack_pack_str_with_body(&pk, "phones", 6);
            msgpack_pack_array(&pk, 1);
            msgpack_pack_str_with_body(&pk, phone, (size_t)pl);
            rp_err rc = rp_client_send(c, "customer.put", sb.data, sb.size, NULL, &eb);
            msgpack_sbuffer_destroy(&sb);
            if (rc != RP_OK) goto fail;
            sent++;
        }
        rp_client_reply r;
        if (rp_client_recv(c, &r, &eb) != RP_OK) goto fail;
        if (r.rc != RP_OK && bad++ == 0) fprintf(stderr, "bench_rpc: put: %s\n", r.message);
        got++;
    }
    rp_client_close(c);
    return bad ? -1 : 0;
fail:
    fprintf(stderr, "bench_rpc: load: %s\n", eb.msg);
    rp_client_close(c);
    return -1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_rpc [--addr HOST:PORT] [--conns N] [--depth N] [--seconds N]\n"
            "                 [--op ping|customer.get|context.get] [--customers N] [--no-load]\n"
            "                 [--token SECRET]\n");
}

int main(int argc, char **argv) {
    opts o = {.addr = "127.0.0.1:7070", .op = "ping", .conns = 50, .depth = 1, .seconds = 5,
              .customers = 10000, .load = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-load") == 0) { o.load = false; continue; }
        if (v == NULL) { usage(); return 2; }
        if (strcmp(a, "--addr") == 0) o.addr = v;
        else if (strcmp(a, "--op") == 0) o.op = v;
        else if (strcmp(a, "--token") == 0) o.token = v;
        else if (strcmp(a, "--conns") == 0) o.conns = atoi(v);
        else if (strcmp(a, "--depth") == 0) o.depth = atoi(v);
        else if (strcmp(a, "--seconds") == 0) o.seconds = atoi(v);
        else if (strcmp(a, "--customers") == 0) o.customers = atoi(v);
        else { usage(); return 2; }
        i++;
    }
    if (o.conns < 1 || o.conns > 4096 || o.depth < 1 || o.depth > MAX_DEPTH || o.seconds < 1 ||
        o.customers < 1) {
        usage();
        return 2;
    }
    bool reads_ids = strcmp(o.op, "ping") != 0;
    if (reads_ids && o.load && load_customers(&o) != 0) return 1;

    atomic_bool stop = false;
    worker *ws = calloc((size_t)o.conns, sizeof *ws);
    pthread_t *th = calloc((size_t)o.conns, sizeof *th);
    if (ws == NULL || th == NULL) return 1;
    for (int i = 0; i < o.conns; i++) {
        ws[i] = (worker){.o = &o, .seed = (unsigned)i * 7919u + 1, .stop = &stop};
        ws[i].hist = calloc(NB, sizeof(uint64_t));
        if (ws[i].hist == NULL || pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) return 1;
    }
    uint64_t t0 = now_ns();
    struct timespec d = {o.seconds, 0};
    nanosleep(&d, NULL);
    atomic_store(&stop, true);
    uint64_t total = 0, errors = 0;
    uint64_t *h = calloc(NB, sizeof(uint64_t));
    int failed = 0;
    for (int i = 0; i < o.conns; i++) {
        pthread_join(th[i], NULL);
        total += ws[i].done;
        errors += ws[i].errors;
        for (size_t b = 0; b < NB; b++) h[b] += ws[i].hist[b];
        if (ws[i].failed && failed++ == 0) fprintf(stderr, "bench_rpc: connection failed: %s\n", ws[i].why);
        free(ws[i].hist);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("op=%s conns=%d depth=%d seconds=%.2f requests=%llu errors=%llu failed_conns=%d "
           "throughput=%.0f/s p50=%.0fus p99=%.0fus p99.9=%.0fus\n",
           o.op, o.conns, o.depth, secs, (unsigned long long)total, (unsigned long long)errors, failed,
           (double)total / secs, hist_pct(h, total, 0.50), hist_pct(h, total, 0.99),
           hist_pct(h, total, 0.999));
    free(h);
    free(ws);
    free(th);
    return failed || errors ? 1 : 0;
}
