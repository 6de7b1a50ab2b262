/* rapport-bench.c — the load generator for rapportd's MessagePack-RPC face.
 *
 *   rapport-bench [--addr HOST:PORT] [--token T] [--conns N] [--threads T]
 *                 [--pipeline D] [--seconds S [--warmup W] | --requests N]
 *                 [--rate R] [--op ping|context|route|get|append|mix]
 *                 [--customers N] [--seed S] [--zipf THETA] [--unknown PCT]
 *                 [--wait S] [--json]
 *
 * Design. A few threads (--threads, default 1: on a 2-core machine the
 * server needs the other core) each drive a share of the connections with
 * one epoll loop. Each connection keeps up to --pipeline requests in
 * flight: whenever replies arrive the connection is topped up again and
 * everything queued is written with one send(2). Connections are set up
 * with the project's client library (net/client.h: connect, TCP_NODELAY,
 * `auth` when --token is given) and then taken over as raw non-blocking
 * sockets, because that library's receive blocks on one connection, which
 * one thread serving fifty connections cannot afford.
 *
 * Replies are not unpacked: a small iterative walker (mp_skip) finds where
 * each MessagePack object ends, then the reply's shape is checked
 * ([1, msgid, error, result], msgid the one expected: replies come back in
 * request order on a connection), an error's code and message are kept
 * for the report, and for context.get / route.get the result's `found`
 * flag is read so a key space that does not match the data (wrong --seed,
 * wrong --customers) shows up as "not found" instead of as fast answers.
 * The walker allocates nothing and needs no stack: it counts the objects
 * still owed, so a reply's cost is one pass over its bytes.
 *
 * Latency is measured per request, from the moment it was queued (just
 * before the send that carries it) to the moment its reply was parsed, and
 * recorded in full in a log-linear histogram (hist.h), one per operation
 * and thread, merged at the end. With --pipeline D > 1 a latency includes
 * the wait behind the earlier requests of the same connection, like any
 * pipelined client sees it. With --rate R the threads send on a schedule
 * (R requests per second in all) instead of as fast as replies come back.
 * Latency still counts from the actual send; how late each send was
 * against its schedule is recorded apart (the "schedule lag"): a server
 * that falls behind keeps every connection busy, so requests wait in the
 * client and the lag grows, and a client starved of CPU shows there too,
 * instead of either being hidden (coordinated omission) or being charged
 * to the server's latency.
 *
 * Keys: customers c0000001 .. cN of `rapport demo --customers N --seed S`;
 * context.get and route.get ask by the customer's phone exactly as the
 * demo wrote it (mixed formats: the server normalizes), customer.get by
 * id, event.append writes a short resolved contact for the customer.
 * --zipf THETA skews the choice (rank k has weight 1/k^THETA, sampled by
 * rejection-inversion in O(1) without a table; ranks are scattered over the
 * ids by a fixed stride so that the hot customers are not neighbours);
 * --unknown PCT makes that share of context/route lookups use numbers the
 * demo never assigns (area code 907), the IVR's unknown callers.
 *
 * Output: per operation the requests answered, errors, not-found answers,
 * throughput, p50 / p90 / p99 / p99.9 / max latency and the mean reply
 * size (the card size for context.get), as an aligned table or, with
 * --json, one JSON object. Exit status: 0 when every request was
 * answered without error, 1 otherwise (errors, lost connections), 2 for a
 * usage error. --wait S keeps retrying the first connection for S seconds
 * (a server that is starting); the time of the first reply is reported
 * (first_reply_unix_ns) so a script can time a restart.
 *
 * Limits: Linux only (epoll, epoll_pwait2 for --rate); with --rate the
 * schedule is kept per thread (even spacing, not Poisson arrivals), and
 * requests that find every connection of their thread busy wait for one
 * (that wait is schedule lag, not latency).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "cli/demo.h"
#include "hist.h"
#include "net/client.h"

#define RB_MAX_PIPELINE 1024
#define RB_MAX_CONNS 100000
#define RB_MAX_THREADS 256
#define RB_READ_CHUNK 65536
#define RB_MAX_REPLY (64u << 20) /* a reply larger than this breaks the connection */
#define RB_CONNECT_TIMEOUT_MS 10000

/* --- options ---------------------------------------------------------------------- */

typedef enum rb_op { OP_PING = 0, OP_CONTEXT, OP_ROUTE, OP_GET, OP_APPEND, OP__COUNT, OP_MIX } rb_op;

static const char *const rb_op_method[OP__COUNT] = {"ping", "context.get", "route.get", "customer.get",
                                                     "event.append"};
static const char *const rb_op_flag[OP__COUNT] = {"ping", "context", "route", "get", "append"};

typedef struct rb_opts {
    const char *addr, *token;
    int conns, threads, pipeline;
    double seconds, warmup, rate, wait;
    uint64_t requests; /* 0: run for --seconds */
    rb_op op;
    uint64_t customers, seed;
    double zipf, unknown_pct;
    bool json;
} rb_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: rapport-bench [options]\n"
            "\n"
            "  --addr HOST:PORT   rapportd's MessagePack-RPC address (default 127.0.0.1:7070)\n"
            "  --token T          authenticate every connection with this bearer token\n"
            "  --conns N          connections (default 50)\n"
            "  --threads T        client threads sharing the connections (default 1)\n"
            "  --pipeline D       requests in flight per connection (default 1)\n"
            "  --seconds S        measure for S seconds (default 5)\n"
            "  --warmup W         run W seconds before measuring (default 0; --seconds only)\n"
            "  --requests N       instead of --seconds: send exactly N requests in all\n"
            "  --rate R           send R requests/s in all, on a schedule (default: as fast as\n"
            "                     replies come back); latency counts from the scheduled time\n"
            "  --op OP            ping | context | route | get | append | mix (default ping);\n"
            "                     mix = 70%% context.get by phone, 20%% route.get, 10%% event.append\n"
            "  --customers N      key space: demo customers c0000001..cN (default 100000)\n"
            "  --seed S           the --seed the demo data was made with (default 1)\n"
            "  --zipf THETA       skew the key choice (Zipf, rank k ~ 1/k^THETA); 0 = uniform\n"
            "  --unknown PCT      percent of context/route lookups for unassigned numbers (default 0)\n"
            "  --wait S           retry connecting for up to S seconds (a server starting)\n"
            "  --json             print one JSON object instead of the table\n"
            "  --help             this text\n"
            "\n"
            "Exit status: 0 all requests answered without error, 1 errors, 2 usage.\n");
}

/* Parse a number within [lo, hi] from all of s. */
static bool parse_num(const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

static bool parse_op(const char *s, rb_op *op) {
    if (strcmp(s, "mix") == 0) {
        *op = OP_MIX;
        return true;
    }
    for (int i = 0; i < OP__COUNT; i++)
        if (strcmp(s, rb_op_flag[i]) == 0 || strcmp(s, rb_op_method[i]) == 0) {
            *op = (rb_op)i;
            return true;
        }
    return false;
}

/* Parse argv into o. Returns -1 to run, else the exit status. */
static int parse_args(int argc, char **argv, rb_opts *o) {
    *o = (rb_opts){.addr = "127.0.0.1:7070", .conns = 50, .threads = 1, .pipeline = 1, .seconds = 5,
                   .op = OP_PING, .customers = 100000, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "rapport-bench: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        double d = 0;
        bool ok = true;
        if (strcmp(a, "--addr") == 0) o->addr = v;
        else if (strcmp(a, "--token") == 0) o->token = v;
        else if (strcmp(a, "--op") == 0) ok = parse_op(v, &o->op);
        else if (strcmp(a, "--conns") == 0) ok = parse_num(v, 1, RB_MAX_CONNS, &d), o->conns = (int)d;
        else if (strcmp(a, "--threads") == 0) ok = parse_num(v, 1, RB_MAX_THREADS, &d), o->threads = (int)d;
        else if (strcmp(a, "--pipeline") == 0) ok = parse_num(v, 1, RB_MAX_PIPELINE, &d), o->pipeline = (int)d;
        else if (strcmp(a, "--seconds") == 0) ok = parse_num(v, 0.01, 86400, &o->seconds);
        else if (strcmp(a, "--warmup") == 0) ok = parse_num(v, 0, 3600, &o->warmup);
        else if (strcmp(a, "--requests") == 0) ok = parse_num(v, 1, 1e12, &d), o->requests = (uint64_t)d;
        else if (strcmp(a, "--rate") == 0) ok = parse_num(v, 1, 1e8, &o->rate);
        else if (strcmp(a, "--customers") == 0) ok = parse_num(v, 1, 100000000, &d), o->customers = (uint64_t)d;
        else if (strcmp(a, "--seed") == 0) ok = parse_num(v, 0, 9007199254740992.0, &d), o->seed = (uint64_t)d;
        else if (strcmp(a, "--zipf") == 0) ok = parse_num(v, 0, 10, &o->zipf);
        else if (strcmp(a, "--unknown") == 0) ok = parse_num(v, 0, 100, &o->unknown_pct);
        else if (strcmp(a, "--wait") == 0) ok = parse_num(v, 0, 3600, &o->wait);
        else {
            fprintf(stderr, "rapport-bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "rapport-bench: bad value '%s' for %s (see --help)\n", v, a);
            return 2;
        }
    }
    if (o->threads > o->conns) o->threads = o->conns;
    return -1;
}

/* --- clocks and random numbers ------------------------------------------------------ */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: one 64-bit state per thread. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 bits. */
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* Uniform in [0, n), n > 0 (the modulo bias is below 2^-40 for n < 2^24). */
static uint64_t rng_below(uint64_t *s, uint64_t n) { return rng_next(s) % n; }

/* --- Zipf key choice (rejection-inversion, Hörmann & Derflinger 1996) ------------- */

/* The sampler of ranks 1..n with weight 1/k^s; s > 0. Constant memory,
 * a few transcendental calls per draw, rejection rate well under 10 %. */
typedef struct rb_zipf {
    uint64_t n;
    double s, h_x1, h_n, sval;
} rb_zipf;

/* log1p(x)/x and expm1(x)/x, with their Taylor series near 0. */
static double zipf_helper1(double x) {
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}
static double zipf_helper2(double x) {
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x / 3 * (1 + 0.25 * x));
}
static double zipf_h(const rb_zipf *z, double x) { return exp(-z->s * log(x)); }
/* The integral of h, and its inverse. */
static double zipf_hint(const rb_zipf *z, double x) {
    double lx = log(x);
    return zipf_helper2((1 - z->s) * lx) * lx;
}
static double zipf_hinv(const rb_zipf *z, double x) {
    double t = x * (1 - z->s);
    if (t < -1) t = -1;
    return exp(zipf_helper1(t) * x);
}

static void zipf_init(rb_zipf *z, uint64_t n, double s) {
    z->n = n;
    z->s = s;
    z->h_x1 = zipf_hint(z, 1.5) - 1;
    z->h_n = zipf_hint(z, (double)n + 0.5);
    z->sval = 2 - zipf_hinv(z, zipf_hint(z, 2.5) - zipf_h(z, 2));
}

/* One rank in 1..n. */
static uint64_t zipf_draw(const rb_zipf *z, uint64_t *rng) {
    for (;;) {
        double u = z->h_n + rng_unit(rng) * (z->h_x1 - z->h_n);
        double x = zipf_hinv(z, u);
        double k = floor(x + 0.5);
        if (k < 1) k = 1;
        else if (k > (double)z->n) k = (double)z->n;
        if (k - x <= z->sval || u >= zipf_hint(z, k + 0.5) - zipf_h(z, k)) return (uint64_t)k;
    }
}

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* --- shared state ---------------------------------------------------------------------- */

typedef struct rb_shared {
    const rb_opts *o;
    rp_demo_opts demo;    /* seed, for rp_demo_phone */
    rb_zipf zipf;         /* used when o->zipf > 0 */
    uint64_t stride;      /* rank -> customer scatter, coprime with customers */
    uint64_t t_begin;     /* monotonic ns: sending starts */
    uint64_t t_measure;   /* recording starts (after the warm-up) */
    uint64_t t_end;       /* --seconds: sending stops */
    atomic_bool abort;    /* a thread failed to set up */
} rb_shared;

/* Per operation, per thread: what the replies said. */
typedef struct rb_opstat {
    rp_hist hist;                 /* latencies, ns (errors included) */
    uint64_t errors, not_found;
    uint64_t reply_bytes;
    char first_error[RP_ERRMSG_MAX + 32];
} rb_opstat;

/* One request in flight. */
typedef struct rb_req {
    uint64_t t0;     /* monotonic ns it counts from */
    uint32_t msgid;
    uint8_t op;
} rb_req;

typedef struct rb_conn {
    int fd;
    bool dead, want_out;
    uint32_t next_msgid;
    rb_req ring[RB_MAX_PIPELINE];
    unsigned head, inflight;
    char *out;
    size_t out_pos, out_len, out_cap;
    char *in;
    size_t in_pos, in_len, in_cap;
} rb_conn;

typedef struct rb_thread {
    rb_shared *sh;
    int index;
    pthread_t tid;
    int ep;
    rb_conn *conns;
    int nconns;
    uint64_t rng;
    uint64_t quota, sent, done;   /* --requests: this thread's share */
    uint64_t next_at, interval;   /* --rate: schedule, ns */
    int rr;                       /* --rate: where the search for a free connection starts */
    uint64_t warm_done;           /* replies before t_measure (not recorded) */
    uint64_t lost;                /* requests whose connection broke */
    uint64_t first_reply_wall;    /* CLOCK_REALTIME ns of the first reply; 0 none */
    bool failed;
    bool no_pwait2;               /* the kernel lacks epoll_pwait2 */
    char why[RP_ERRMSG_MAX + 64];
    rb_opstat st[OP__COUNT];
    rp_hist lag;                  /* --rate: send time - scheduled time, ns */
} rb_thread;

/* --- building requests ---------------------------------------------------------------- */

/* msgpack write callback: append to the connection's out buffer. */
static int out_write(void *data, const char *buf, size_t len) {
    rb_conn *c = data;
    if (len > SIZE_MAX - c->out_len) return -1;
    if (c->out_len + len > c->out_cap) {
        size_t nc = c->out_cap ? c->out_cap : 4096;
        while (nc < c->out_len + len) nc *= 2;
        char *p = realloc(c->out, nc);
        if (p == NULL) return -1;
        c->out = p;
        c->out_cap = nc;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return 0;
}

static int pack_str(msgpack_packer *pk, const char *s) { return msgpack_pack_str_with_body(pk, s, strlen(s)); }

/* The customer number of the next request: uniform or Zipf. */
static uint64_t pick_customer(rb_thread *t) {
    const rb_shared *sh = t->sh;
    uint64_t n = sh->o->customers;
    if (sh->o->zipf <= 0) return 1 + rng_below(&t->rng, n);
    uint64_t rank = zipf_draw(&sh->zipf, &t->rng);
    return 1 + (uint64_t)(((unsigned __int128)(rank - 1) * sh->stride) % n);
}

/* A phone to look up: a demo customer's, as the demo wrote it, or (with
 * --unknown) a valid number in an area code the demo never uses. */
static void pick_phone(rb_thread *t, char out[40]) {
    if (t->sh->o->unknown_pct > 0 && rng_unit(&t->rng) * 100 < t->sh->o->unknown_pct) {
        snprintf(out, 40, "+1907%03u%04u", 200 + (unsigned)rng_below(&t->rng, 800),
                 (unsigned)rng_below(&t->rng, 10000));
        return;
    }
    uint64_t i = pick_customer(t);
    /* The demo makes every 40th customer a duplicate profile of the one
     * before it, carrying that one's phone: rp_demo_phone(i) is then a
     * number nobody has, so ask for the number the profile really holds. */
    if (i > 1 && i % 40 == 0) i--;
    rp_demo_phone(&t->sh->demo, i, out);
}

/* Pack the params map of one request of op. Returns 0 or -1 (no memory). */
static int pack_params(rb_thread *t, msgpack_packer *pk, rb_op op) {
    char key[40];
    static const char *const topics[] = {"billing", "delivery", "technical", "account", "orders"};
    switch (op) {
    case OP_PING: return msgpack_pack_array(pk, 0);
    case OP_CONTEXT:
    case OP_ROUTE:
        pick_phone(t, key);
        return msgpack_pack_map(pk, 1) || pack_str(pk, "phone") || pack_str(pk, key);
    case OP_GET:
        rp_demo_customer_id(pick_customer(t), key);
        return msgpack_pack_map(pk, 1) || pack_str(pk, "id") || pack_str(pk, key);
    case OP_APPEND:
        rp_demo_customer_id(pick_customer(t), key);
        return msgpack_pack_map(pk, 1) || pack_str(pk, "event") || msgpack_pack_map(pk, 8) ||
               pack_str(pk, "customer_id") || pack_str(pk, key) || pack_str(pk, "ts") ||
               msgpack_pack_int64(pk, (int64_t)(wall_ns() / 1000000000u)) || pack_str(pk, "channel") ||
               pack_str(pk, "phone") || pack_str(pk, "kind") || pack_str(pk, "contact") ||
               pack_str(pk, "topic") || pack_str(pk, topics[rng_below(&t->rng, 5)]) ||
               pack_str(pk, "summary") || pack_str(pk, "Asked about the last order (bench)") ||
               pack_str(pk, "outcome") || pack_str(pk, "resolved") || pack_str(pk, "agent") ||
               pack_str(pk, "agent-bench");
    default: return -1;
    }
}

/* The operation of the next request (--op mix: 70 / 20 / 10). */
static rb_op pick_op(rb_thread *t) {
    rb_op op = t->sh->o->op;
    if (op != OP_MIX) return op;
    uint64_t r = rng_below(&t->rng, 100);
    return r < 70 ? OP_CONTEXT : r < 90 ? OP_ROUTE : OP_APPEND;
}

/* Queue one request on c, counting from t0. Returns 0, or -1 when out of
 * memory (the connection is then unusable). */
static int queue_request(rb_thread *t, rb_conn *c, uint64_t t0) {
    rb_op op = pick_op(t);
    uint32_t id = c->next_msgid++;
    if (c->next_msgid == 0) c->next_msgid = 1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, c, out_write);
    if (msgpack_pack_array(&pk, 4) || msgpack_pack_uint8(&pk, 0) || msgpack_pack_uint32(&pk, id) ||
        pack_str(&pk, rb_op_method[op]) || pack_params(t, &pk, op))
        return -1;
    rb_req *r = &c->ring[(c->head + c->inflight) % RB_MAX_PIPELINE];
    r->t0 = t0;
    r->msgid = id;
    r->op = (uint8_t)op;
    c->inflight++;
    t->sent++;
    return 0;
}

/* --- reading replies ----------------------------------------------------------------- */

static uint32_t be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walk one MessagePack object at p (n bytes available). Returns 1 with
 * *len its length, 0 when more bytes are needed, -1 for a byte that is
 * not MessagePack. Iterative: `owed` counts the objects still to walk
 * (containers add their elements), so depth costs nothing. O(bytes). */
static int mp_skip(const unsigned char *p, size_t n, size_t *len) {
    uint64_t owed = 1;
    size_t i = 0;
    while (owed > 0) {
        if (i >= n) return 0;
        unsigned b = p[i];
        size_t hdr = 1;
        uint64_t body = 0, add = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) hdr = 1;
        else if (b <= 0x8f) add = 2u * (b & 0x0f);
        else if (b <= 0x9f) add = b & 0x0f;
        else if (b <= 0xbf) body = b & 0x1f;
        else {
            /* header length of the 0xc4..0xdf formats, and whether the
             * bytes after the type give a length (lb), elements (el) or
             * pairs (pr); fixed-size scalars have neither */
            static const unsigned char hl[28] = {2, 3, 5, 3, 4, 6, 5, 9, 2, 3, 5, 9, 2, 3,
                                                 5, 9, 3, 4, 6, 10, 18, 2, 3, 5, 3, 5, 3, 5};
            if (b == 0xc1) return -1;
            hdr = hl[b - 0xc4];
            if (i + hdr > n) return 0;
            const unsigned char *q = p + i + 1;
            switch (b) {
            case 0xc4: case 0xd9: body = q[0]; break;
            case 0xc5: case 0xda: body = be16(q); break;
            case 0xc6: case 0xdb: body = be32(q); break;
            case 0xc7: body = q[0]; break;          /* ext: +type byte counted in hdr */
            case 0xc8: body = be16(q); break;
            case 0xc9: body = be32(q); break;
            case 0xdc: add = be16(q); break;
            case 0xdd: add = be32(q); break;
            case 0xde: add = 2u * be16(q); break;
            case 0xdf: add = 2u * (uint64_t)be32(q); break;
            default: break;                          /* numbers, fixext: fixed size */
            }
        }
        if (body > n || i + hdr + body > n) return 0;
        i += hdr + (size_t)body;
        owed = owed - 1 + add;
    }
    *len = i;
    return 1;
}

/* Read a str object at p (within n bytes): *s, *sl. Returns its total
 * length, or 0 when p is not a complete str. */
static size_t mp_str(const unsigned char *p, size_t n, const char **s, size_t *sl) {
    if (n < 1) return 0;
    size_t h = 0, l = 0;
    if (p[0] >= 0xa0 && p[0] <= 0xbf) h = 1, l = p[0] & 0x1f;
    else if (p[0] == 0xd9 && n >= 2) h = 2, l = p[1];
    else if (p[0] == 0xda && n >= 3) h = 3, l = be16(p + 1);
    else if (p[0] == 0xdb && n >= 5) h = 5, l = be32(p + 1);
    else return 0;
    if (l > n - h) return 0;
    *s = (const char *)p + h;
    *sl = l;
    return h + l;
}

/* Find key in the map at p (n bytes, a complete object): the value's
 * offset from p, or 0 when absent / not a map. */
static size_t mp_find(const unsigned char *p, size_t n, const char *key) {
    uint32_t pairs;
    size_t i;
    if (n >= 1 && p[0] >= 0x80 && p[0] <= 0x8f) pairs = p[0] & 0x0f, i = 1;
    else if (n >= 3 && p[0] == 0xde) pairs = be16(p + 1), i = 3;
    else if (n >= 5 && p[0] == 0xdf) pairs = be32(p + 1), i = 5;
    else return 0;
    size_t kl = strlen(key);
    for (uint32_t k = 0; k < pairs; k++) {
        const char *s;
        size_t sl, used = mp_str(p + i, n - i, &s, &sl), vl;
        if (used == 0) return 0;
        i += used;
        if (sl == kl && memcmp(s, key, kl) == 0) return i;
        if (mp_skip(p + i, n - i, &vl) != 1) return 0;
        i += vl;
    }
    return 0;
}

/* Keep the error of a reply as "CODE: message" (the first per operation). */
static void note_error(rb_opstat *st, const unsigned char *e, size_t n) {
    if (st->errors++ > 0) return;
    const char *code = "?", *msg = "";
    size_t cl = 1, ml = 0, off;
    if ((off = mp_find(e, n, "code")) != 0) mp_str(e + off, n - off, &code, &cl);
    if ((off = mp_find(e, n, "message")) != 0) mp_str(e + off, n - off, &msg, &ml);
    snprintf(st->first_error, sizeof st->first_error, "%.*s: %.*s", (int)(cl > 64 ? 64 : cl), code,
             (int)(ml > RP_ERRMSG_MAX ? RP_ERRMSG_MAX : ml), msg);
}

/* Check one complete reply [1, msgid, error, result] against the request
 * it answers and record it. Returns 0, or -1 when the reply is malformed
 * or out of order (the connection is then dropped). */
static int handle_reply(rb_thread *t, rb_conn *c, const unsigned char *p, size_t n, uint64_t now) {
    if (c->inflight == 0 || n < 4 || p[0] != 0x94 || p[1] != 0x01) return -1;
    size_t i = 2;
    uint64_t id;
    if (p[i] <= 0x7f) id = p[i], i += 1;
    else if (p[i] == 0xcc) id = p[i + 1], i += 2;
    else if (p[i] == 0xcd && n >= i + 3) id = be16(p + i + 1), i += 3;
    else if (p[i] == 0xce && n >= i + 5) id = be32(p + i + 1), i += 5;
    else return -1;
    rb_req *r = &c->ring[c->head];
    if (id != r->msgid || i >= n) return -1;
    c->head = (c->head + 1) % RB_MAX_PIPELINE;
    c->inflight--;
    t->done++;
    if (t->first_reply_wall == 0) t->first_reply_wall = wall_ns();
    if (now < t->sh->t_measure || now < r->t0) {
        t->warm_done++;
        return 0;
    }
    rb_opstat *st = &t->st[r->op];
    rp_hist_add(&st->hist, now - r->t0);
    st->reply_bytes += n;
    size_t el;
    if (mp_skip(p + i, n - i, &el) != 1) return -1;
    if (p[i] != 0xc0) { /* an error map */
        note_error(st, p + i, el);
        return 0;
    }
    if (r->op == OP_CONTEXT || r->op == OP_ROUTE) {
        size_t res = i + el, off = mp_find(p + res, n - res, "found");
        if (off != 0 && p[res + off] == 0xc2) st->not_found++;
    }
    return 0;
}

/* Parse every complete reply buffered on c. Returns 0 or -1 (bad reply). */
static int parse_replies(rb_thread *t, rb_conn *c) {
    uint64_t now = mono_ns();
    for (;;) {
        size_t avail = c->in_len - c->in_pos, len = 0;
        if (avail == 0) break;
        const unsigned char *p = (const unsigned char *)c->in + c->in_pos;
        int k = mp_skip(p, avail, &len);
        if (k < 0) return -1;
        if (k == 0) {
            if (avail > RB_MAX_REPLY) return -1;
            break;
        }
        if (handle_reply(t, c, p, len, now) != 0) return -1;
        c->in_pos += len;
    }
    if (c->in_pos == c->in_len) c->in_pos = c->in_len = 0;
    return 0;
}

/* Read what the socket has. Returns 1 (read something), 0 (nothing now),
 * -1 (closed or failed: *why says which). */
static int conn_read(rb_conn *c, const char **why) {
    if (c->in_pos > 0 && c->in_len + RB_READ_CHUNK > c->in_cap) {
        memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
    }
    if (c->in_len + RB_READ_CHUNK > c->in_cap) {
        size_t nc = c->in_cap ? c->in_cap * 2 : 2 * RB_READ_CHUNK;
        char *q = realloc(c->in, nc);
        if (q == NULL) {
            *why = "out of memory";
            return -1;
        }
        c->in = q;
        c->in_cap = nc;
    }
    ssize_t n;
    do n = read(c->fd, c->in + c->in_len, RB_READ_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->in_len += (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    *why = n == 0 ? "the server closed the connection" : strerror(errno);
    return -1;
}

/* Remember why the first connection of the thread failed. */
static void conn_note(rb_thread *t, const rb_conn *c, const char *why) {
    if (t->why[0] == '\0')
        snprintf(t->why, sizeof t->why, "a connection failed (%s) with %u requests in flight", why,
                 c->inflight);
}

/* Give a connection up: its requests in flight count as lost. */
static void conn_drop(rb_thread *t, rb_conn *c) {
    if (c->dead) return;
    c->dead = true;
    t->lost += c->inflight;
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
}

/* --- writing ------------------------------------------------------------------------------ */

/* Write what is queued; ask epoll for EPOLLOUT while some is left.
 * Returns 0 or -1 (the connection failed). */
static int conn_flush(rb_thread *t, rb_conn *c) {
    while (c->out_pos < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    if (c->out_pos == c->out_len) c->out_pos = c->out_len = 0;
    bool want = c->out_len > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) return -1;
        c->want_out = want;
    }
    return 0;
}

/* May this thread start another request now? (--requests quota, --seconds
 * end, --rate schedule) *sched receives the moment it was due (now
 * without --rate). */
static bool may_send(rb_thread *t, uint64_t now, uint64_t *sched) {
    if (t->sh->o->requests ? t->sent >= t->quota : now >= t->sh->t_end) return false;
    if (t->interval == 0) {
        *sched = now;
        return true;
    }
    if (now < t->next_at) return false;
    *sched = t->next_at;
    t->next_at += t->interval;
    return true;
}

/* Top c up to --pipeline requests (no --rate) and write them. */
static int conn_fill(rb_thread *t, rb_conn *c, uint64_t now) {
    uint64_t sched;
    while (c->inflight < (unsigned)t->sh->o->pipeline && t->interval == 0 && may_send(t, now, &sched))
        if (queue_request(t, c, now) != 0) return -1;
    return conn_flush(t, c);
}

/* --rate: hand every due request to a connection with room, round robin.
 * A request that finds none waits; how late each one leaves against its
 * schedule goes into the lag histogram (client stalls and a saturated
 * server both show there, not in the latency). */
static void rate_send(rb_thread *t, uint64_t now) {
    int tries = 0;
    while (tries < t->nconns) {
        rb_conn *c = &t->conns[t->rr];
        if (c->dead || c->inflight >= (unsigned)t->sh->o->pipeline) {
            t->rr = (t->rr + 1) % t->nconns;
            tries++;
            continue;
        }
        uint64_t sched;
        if (!may_send(t, now, &sched)) break;
        if (now >= t->sh->t_measure) rp_hist_add(&t->lag, now - sched);
        if (queue_request(t, c, now) != 0 || conn_flush(t, c) != 0) {
            conn_note(t, c, "cannot send");
            conn_drop(t, c);
            continue;
        }
        tries = 0;
        t->rr = (t->rr + 1) % t->nconns;
    }
}

/* --- connections ------------------------------------------------------------------------- */

/* Connect (retrying until `deadline`, monotonic ns, when it is later than
 * now), authenticate, and take the socket over from the client library.
 * Returns the non-blocking socket, or -1 with the reason in eb. */
static int open_socket(const rb_opts *o, uint64_t deadline, rp_errbuf *eb) {
    rp_client *cl = NULL;
    for (;;) {
        if (rp_client_connect(o->addr, RB_CONNECT_TIMEOUT_MS, &cl, eb) == RP_OK) break;
        if (mono_ns() >= deadline) return -1;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (o->token && rp_client_auth(cl, o->token, NULL, eb) != RP_OK) {
        rp_client_close(cl);
        return -1;
    }
    int fd = dup(rp_client_fd(cl)); /* keeps O_NONBLOCK and TCP_NODELAY */
    if (fd < 0) rp_errf(eb, RP_UNAVAILABLE, "dup: %s", strerror(errno));
    rp_client_close(cl);
    return fd;
}

/* --- the thread ------------------------------------------------------------------------------- */

/* Wait for events until `until` (monotonic ns; 0 = up to 100 ms).
 * epoll_pwait2 takes nanoseconds (what --rate needs); where it is missing
 * (Linux < 5.11, valgrind) epoll_wait rounds the wait up to a millisecond,
 * which makes a --rate schedule burstier but keeps it. */
static int wait_events(rb_thread *t, struct epoll_event *evs, int max, uint64_t until, uint64_t now) {
    uint64_t d = until > now ? until - now : 0;
    if (until == 0 || d > 100000000u) d = 100000000u;
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    int n;
    do {
        if (t->no_pwait2) n = epoll_wait(t->ep, evs, max, (int)((d + 999999u) / 1000000u));
        else n = epoll_pwait2(t->ep, evs, max, &ts, NULL);
        if (n < 0 && errno == ENOSYS && !t->no_pwait2) {
            t->no_pwait2 = true;
            errno = EINTR; /* try again the other way */
        }
    } while (n < 0 && errno == EINTR);
    return n;
}

/* One connection had events: read, parse, top up, write. */
static void on_conn_event(rb_thread *t, rb_conn *c, uint32_t events, uint64_t now) {
    const char *why = "cannot send";
    if (c->dead) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        int r = 0;
        for (int k = 0; k < 4 && (r = conn_read(c, &why)) == 1; k++) {
        }
        /* replies read before a close still count */
        if (parse_replies(t, c) != 0) {
            why = "a malformed or out-of-order reply";
            goto fail;
        }
        if (r < 0) goto fail;
    }
    if (conn_fill(t, c, now) != 0) goto fail;
    return;
fail:
    conn_note(t, c, why);
    conn_drop(t, c);
}

/* Is the run over for this thread? */
static bool finished(const rb_thread *t, uint64_t now) {
    bool live = false, busy = false;
    for (int i = 0; i < t->nconns; i++) {
        if (t->conns[i].dead) continue;
        live = true;
        if (t->conns[i].inflight) busy = true;
    }
    if (!live) return true;
    if (t->sh->o->requests) return t->sent >= t->quota && !busy;
    return now >= t->sh->t_end; /* replies still in flight then are not counted */
}

static void *thread_main(void *arg) {
    rb_thread *t = arg;
    const rb_opts *o = t->sh->o;
    struct epoll_event evs[256];
    uint64_t now = mono_ns();
    if (o->rate > 0) {
        t->interval = (uint64_t)(1e9 * o->threads / o->rate);
        if (t->interval == 0) t->interval = 1;
        t->next_at = t->sh->t_begin + t->interval * (uint64_t)t->index / (uint64_t)o->threads;
    }
    for (int i = 0; i < t->nconns; i++)
        if (conn_fill(t, &t->conns[i], now) != 0) conn_drop(t, &t->conns[i]);
    while (!finished(t, now = mono_ns())) {
        if (t->interval) rate_send(t, now);
        uint64_t until = t->interval ? t->next_at : 0;
        if (!o->requests && (until == 0 || until > t->sh->t_end)) until = t->sh->t_end;
        int n = wait_events(t, evs, (int)(sizeof evs / sizeof evs[0]), until, now);
        if (n < 0) {
            snprintf(t->why, sizeof t->why, "epoll_pwait2: %s", strerror(errno));
            t->failed = true;
            break;
        }
        now = mono_ns();
        for (int k = 0; k < n; k++) on_conn_event(t, evs[k].data.ptr, evs[k].events, now);
    }
    for (int i = 0; i < t->nconns; i++)
        if (!t->conns[i].dead && o->requests) t->lost += t->conns[i].inflight;
    return NULL;
}

/* --- results ----------------------------------------------------------------------------------- */

typedef struct rb_total {
    rb_opstat st[OP__COUNT];
    rb_opstat all;
    rp_hist lag;
    uint64_t lost, warm_done, first_reply_wall;
    double seconds;
} rb_total;

static void sum_results(rb_thread *th, int n, rb_total *tot) {
    for (int i = 0; i < OP__COUNT; i++) rp_hist_init(&tot->st[i].hist);
    rp_hist_init(&tot->all.hist);
    rp_hist_init(&tot->lag);
    for (int k = 0; k < n; k++) {
        rb_thread *t = &th[k];
        rp_hist_merge(&tot->lag, &t->lag);
        tot->lost += t->lost;
        tot->warm_done += t->warm_done;
        if (t->first_reply_wall && (tot->first_reply_wall == 0 || t->first_reply_wall < tot->first_reply_wall))
            tot->first_reply_wall = t->first_reply_wall;
        for (int i = 0; i < OP__COUNT; i++) {
            rb_opstat *d = &tot->st[i], *s = &t->st[i];
            rp_hist_merge(&d->hist, &s->hist);
            rp_hist_merge(&tot->all.hist, &s->hist);
            if (d->first_error[0] == '\0') memcpy(d->first_error, s->first_error, sizeof d->first_error);
            d->errors += s->errors;
            d->not_found += s->not_found;
            d->reply_bytes += s->reply_bytes;
            tot->all.errors += s->errors;
            tot->all.not_found += s->not_found;
            tot->all.reply_bytes += s->reply_bytes;
        }
    }
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static void print_table(const rb_opts *o, const rb_total *tot) {
    printf("rapport-bench: %s, %d conns on %d thread%s, pipeline %d, %.2f s measured", o->addr, o->conns,
           o->threads, o->threads > 1 ? "s" : "", o->pipeline, tot->seconds);
    if (o->rate > 0) printf(", rate %.0f/s", o->rate);
    printf(", %" PRIu64 " customers%s\n", o->customers, o->zipf > 0 ? " (zipf)" : "");
    printf("%-13s %10s %7s %9s %11s %9s %9s %9s %9s %10s %9s\n", "op", "requests", "errors", "not_found",
           "req/s", "p50_us", "p90_us", "p99_us", "p99.9_us", "max_us", "bytes/rep");
    int shown = 0;
    for (int i = 0; i <= OP__COUNT; i++) {
        const rb_opstat *s = i < OP__COUNT ? &tot->st[i] : &tot->all;
        if (s->hist.count == 0) continue;
        if (i == OP__COUNT && shown < 2) continue; /* "all" only for several ops */
        shown++;
        const rp_hist *h = &s->hist;
        printf("%-13s %10" PRIu64 " %7" PRIu64 " %9" PRIu64 " %11.0f %9.1f %9.1f %9.1f %9.1f %10.1f %9.0f\n",
                   i < OP__COUNT ? rb_op_method[i] : "all", h->count, s->errors, s->not_found,
                   (double)h->count / tot->seconds, us(rp_hist_percentile(h, 50)), us(rp_hist_percentile(h, 90)),
                   us(rp_hist_percentile(h, 99)), us(rp_hist_percentile(h, 99.9)), us(h->max),
                   (double)s->reply_bytes / (double)h->count);
        }
    for (int i = 0; i < OP__COUNT; i++)
        if (tot->st[i].errors) printf("first %s error: %s\n", rb_op_method[i], tot->st[i].first_error);
    if (tot->lost) printf("requests lost with their connection: %" PRIu64 "\n", tot->lost);
    if (o->rate > 0)
        printf("schedule lag (sent - due): p50 %.1f us, p99 %.1f us, max %.1f us\n",
               us(rp_hist_percentile(&tot->lag, 50)), us(rp_hist_percentile(&tot->lag, 99)), us(tot->lag.max));
    if (o->warmup > 0 && !o->requests) printf("warmup_replies %" PRIu64 "\n", tot->warm_done);
    if (o->wait > 0) printf("first_reply_unix_ns %" PRIu64 "\n", tot->first_reply_wall);
}

/* One operation's figures as a JSON object. */
static json_t *json_opstat(const rb_opstat *s, double seconds) {
    const rp_hist *h = &s->hist;
    return json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s?}", "requests",
                     (json_int_t)h->count, "errors", (json_int_t)s->errors, "not_found", (json_int_t)s->not_found,
                     "rps", (double)h->count / seconds, "mean_us", rp_hist_mean(h) / 1000.0, "p50_us",
                     us(rp_hist_percentile(h, 50)), "p90_us", us(rp_hist_percentile(h, 90)), "p99_us",
                     us(rp_hist_percentile(h, 99)), "p999_us", us(rp_hist_percentile(h, 99.9)), "max_us",
                     us(h->max), "reply_bytes_avg", h->count ? (double)s->reply_bytes / (double)h->count : 0.0,
                     "first_error", s->errors ? s->first_error : NULL);
}

static int print_json(const rb_opts *o, const rb_total *tot) {
    static const char *const opname[] = {"ping", "context", "route", "get", "append", "?", "mix"};
    json_t *ops = json_object();
    for (int i = 0; i < OP__COUNT; i++)
        if (tot->st[i].hist.count)
            json_object_set_new(ops, rb_op_method[i], json_opstat(&tot->st[i], tot->seconds));
    json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:s, s:f, s:f, s:I, s:f, s:I, s:o, s:o, s:I, s:I, s:I}", "addr",
                             o->addr, "conns", o->conns, "threads", o->threads, "pipeline", o->pipeline, "op",
                             opname[o->op], "seconds", tot->seconds, "rate", o->rate, "customers",
                             (json_int_t)o->customers, "zipf", o->zipf, "seed", (json_int_t)o->seed, "ops", ops,
                             "total", json_opstat(&tot->all, tot->seconds), "lost", (json_int_t)tot->lost,
                             "first_reply_unix_ns", (json_int_t)tot->first_reply_wall, "warmup_replies",
                             (json_int_t)tot->warm_done);
    if (root != NULL && o->rate > 0)
        json_object_set_new(root, "schedule_lag",
                            json_pack("{s:f, s:f, s:f}", "p50_us", us(rp_hist_percentile(&tot->lag, 50)),
                                      "p99_us", us(rp_hist_percentile(&tot->lag, 99)), "max_us",
                                      us(tot->lag.max)));
    if (root == NULL) return -1;
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    printf("\n");
    json_decref(root);
    return rc;
}

/* --- main ---------------------------------------------------------------------------------------- */

/* Open every connection and give each thread its share. Returns 0 or -1
 * after printing why. */
static int setup(rb_shared *sh, rb_thread *th) {
    const rb_opts *o = sh->o;
    rp_errbuf eb = {0};
    uint64_t deadline = mono_ns() + (uint64_t)(o->wait * 1e9);
    for (int k = 0; k < o->threads; k++) {
        rb_thread *t = &th[k];
        t->sh = sh;
        t->index = k;
        t->rng = o->seed * 0x2545F4914F6CDD1Dull + (uint64_t)k * 0x9E3779B97F4A7C15ull + 12345;
        t->nconns = o->conns / o->threads + (k < o->conns % o->threads);
        t->quota = o->requests / (uint64_t)o->threads + ((uint64_t)k < o->requests % (uint64_t)o->threads);
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        t->conns = calloc((size_t)t->nconns, sizeof *t->conns);
        if (t->ep < 0 || t->conns == NULL) {
            fprintf(stderr, "rapport-bench: out of resources for thread %d\n", k);
            return -1;
        }
        for (int i = 0; i < t->nconns; i++) t->conns[i].fd = -1;
        for (int i = 0; i < t->nconns; i++) {
            rb_conn *c = &t->conns[i];
            c->next_msgid = 1;
            c->fd = open_socket(o, k == 0 && i == 0 ? deadline : 0, &eb);
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            if (c->fd < 0 || epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
                fprintf(stderr, "rapport-bench: connection %d: %s\n", i, c->fd < 0 ? eb.msg : strerror(errno));
                return -1;
            }
        }
    }
    return 0;
}

static void teardown(rb_thread *th, int n) {
    for (int k = 0; k < n; k++) {
        for (int i = 0; th[k].conns && i < th[k].nconns; i++) {
            if (th[k].conns[i].fd >= 0) close(th[k].conns[i].fd);
            free(th[k].conns[i].in);
            free(th[k].conns[i].out);
        }
        free(th[k].conns);
        if (th[k].ep >= 0) close(th[k].ep);
    }
    free(th);
}

int main(int argc, char **argv) {
    rb_opts o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0) return code;
    signal(SIGPIPE, SIG_IGN);
    rb_shared sh = {.o = &o};
    rp_demo_defaults(&sh.demo);
    sh.demo.seed = o.seed;
    sh.demo.customers = o.customers;
    if (o.zipf > 0) zipf_init(&sh.zipf, o.customers, o.zipf);
    sh.stride = 2654435761u % o.customers;
    if (sh.stride == 0) sh.stride = 1;
    while (gcd_u64(sh.stride, o.customers) != 1) sh.stride++;
    rb_thread *th = calloc((size_t)o.threads, sizeof *th);
    if (th == NULL) return 1;
    for (int k = 0; k < o.threads; k++) th[k].ep = -1;
    if (setup(&sh, th) != 0) {
        teardown(th, o.threads);
        return 1;
    }
    sh.t_begin = mono_ns();
    sh.t_measure = o.requests ? sh.t_begin : sh.t_begin + (uint64_t)(o.warmup * 1e9);
    sh.t_end = sh.t_measure + (uint64_t)(o.seconds * 1e9);
    int started = 0;
    for (; started < o.threads; started++)
        if (pthread_create(&th[started].tid, NULL, thread_main, &th[started]) != 0) break;
    for (int k = 0; k < started; k++) pthread_join(th[k].tid, NULL);
    uint64_t t_done = mono_ns();
    rb_total tot = {0};
    sum_results(th, started, &tot);
    uint64_t span = o.requests ? t_done - sh.t_begin : sh.t_end - sh.t_measure;
    tot.seconds = (double)span / 1e9;
    bool bad = started < o.threads || tot.all.errors > 0 || tot.lost > 0;
    for (int k = 0; k < started; k++) {
        if (th[k].why[0]) fprintf(stderr, "rapport-bench: thread %d: %s\n", k, th[k].why);
        bad |= th[k].failed;
    }
    if (o.json ? print_json(&o, &tot) != 0 : (print_table(&o, &tot), false)) bad = true;
    fflush(stdout);
    teardown(th, o.threads);
    return bad ? 1 : 0;
}
