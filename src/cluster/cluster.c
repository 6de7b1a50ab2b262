/* cluster.c — the replicated log (cluster.h; proto/CLUSTER.md).
 *
 * Pitfalls of libnats 3.4 this file avoids (found by trying):
 *   - Duplicates and MaxAge of jsStreamConfig are int64 nanoseconds;
 *   - a publish without jsPubOptions.MaxWait can wait forever when the
 *     server it went to dies: every publish sets it;
 *   - the flusher adds ~1 ms a publish unless SendAsap is set;
 *   - reconnect gives up after 60 tries by default: unlimited here;
 *   - during an election a publish fails at once with "no responders":
 *     publishers back off instead of spinning;
 *   - an ordered consumer does not notice holes in the stream: every stream
 *     sequence is checked against the last applied + 1, and a hole halts;
 *   - natsMsg_GetMetaData results are freed (jsMsgMetaData_Destroy);
 *   - a message published while the connection is down sits in the
 *     reconnect buffer and goes out on reconnect, after its writer may have
 *     been told UNAVAILABLE: publishers only publish while connected.
 */
#include "cluster/cluster.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "store/applied.h"

#define CL_PUBLISHERS 32          /* publisher threads (each one synchronous publish at a time) */
#define CL_WAIT_BUCKETS 1024     /* waiter hash buckets (by ticket) */
#define CL_BATCH_MAX 1024        /* entries per apply batch at most */
#define CL_BATCH_BYTES (16u << 20) /* ... and this many bytes of entries */
#define CL_OPEN_TIMEOUT_MS 30000 /* connect + stream check at start-up */
#define CL_BACKOFF_MIN_MS 20
#define CL_BACKOFF_MAX_MS 1000
#define CL_MSGID_MAX 200
#define CL_ENTRY_VERSION 1

/* One queued publish. */
typedef struct pub_item {
    natsMsg *msg;
    uint64_t ticket;
    int64_t t0_ns;     /* CLOCK_MONOTONIC when queued */
    int64_t deadline_ns;
    char msgid[CL_MSGID_MAX + 1];
    struct pub_item *next;
} pub_item;

struct rp_cluster {
    rp_config cfg;
    rp_store *store;
    char node[64];
    char subject[80];
    uint64_t boot; /* random per process: tickets are unique with it */

    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;

    rp_cluster_apply_fn apply;
    void *ctx;
    pthread_t apply_th;
    bool apply_started;
    pthread_t pub_th[CL_PUBLISHERS];
    int npub;

    pthread_mutex_t mu;        /* everything below that is not atomic */
    pthread_cond_t pub_cv;     /* queue not empty, or stopping */
    pthread_cond_t applied_cv; /* applied_seq moved, or stopping */
    pub_item *q_head, *q_tail;
    uint32_t q_len;
    bool stopping;
    rp_cluster_wait *waiters[CL_WAIT_BUCKETS];
    uint64_t next_ticket;
    rp_writer_hist h_publish, h_apply;

    atomic_bool connected, halted;
    atomic_uint_fast64_t applied_seq, stream_seq;
    atomic_uint_fast64_t n_published, n_retries, n_failed, n_applied, n_reconnects;
};

/* --- small helpers ---------------------------------------------------------------- */

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void hist_add(rp_writer_hist *h, uint64_t ns) {
    size_t i = 0;
    while (i < RP_WRITER_NBUCKETS && ns > rp_writer_bucket_ns[i]) i++;
    h->buckets[i]++;
    h->count++;
    h->sum_ns += ns;
}

static void atomic_max(atomic_uint_fast64_t *a, uint64_t v) {
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* Wait on cv until stopping or ms passed (the backoff between retries:
 * stop interrupts it). Called with mu held. */
static void backoff_wait(rp_cluster *cl, pthread_cond_t *cv, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += ms / 1000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    if (!cl->stopping) pthread_cond_timedwait(cv, &cl->mu, &ts);
}

/* The libnats error of status s as a sentence into eb with code rc. */
static rp_err nats_fail(rp_errbuf *eb, rp_err rc, const char *what, natsStatus s, jsErrCode jerr) {
    const char *last = nats_GetLastError(NULL);
    if (jerr)
        return rp_errf(eb, rc, "%s: %s (JetStream error %d)", what, last ? last : natsStatus_GetText(s),
                       (int)jerr);
    return rp_errf(eb, rc, "%s: %s", what, last ? last : natsStatus_GetText(s));
}

/* One log line on stderr in rapportd's form (net/log.h is a layer above):
 * "ts=<RFC 3339 UTC, ms> level=<level> event=<event> <fmt...>", one write(2). */
static void cl_log(const char *level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cl_log(const char *level, const char *event, const char *fmt, ...) {
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level, event);
    if (n < 0 || (size_t)n >= sizeof line) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* --- waiters ------------------------------------------------------------------------ */

/* Remove and return the waiter of ticket, or NULL. Called with mu held. */
static rp_cluster_wait *waiter_take(rp_cluster *cl, uint64_t ticket) {
    rp_cluster_wait **pp = &cl->waiters[ticket % CL_WAIT_BUCKETS];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->ticket == ticket) {
            rp_cluster_wait *w = *pp;
            *pp = w->next;
            w->next = NULL;
            return w;
        }
    }
    return NULL;
}

/* Answer the waiter of ticket (if still waiting) with RP_UNAVAILABLE. */
static void waiter_fail(rp_cluster *cl, uint64_t ticket, const char *why) {
    pthread_mutex_lock(&cl->mu);
    rp_cluster_wait *w = waiter_take(cl, ticket);
    pthread_mutex_unlock(&cl->mu);
    if (w == NULL) return; /* applied meanwhile: answered by the apply */
    rp_cluster_result res = {.rc = RP_UNAVAILABLE};
    msgpack_sbuffer_init(&res.reply);
    rp_errf(&res.eb, RP_UNAVAILABLE, "%s", why);
    w->done(w, &res, false);
}

/* Answer UNAVAILABLE every acknowledged write whose apply here is overdue
 * (apply thread, now and then). */
static void waiters_expire(rp_cluster *cl) {
    int64_t now = mono_ns();
    for (size_t b = 0; b < CL_WAIT_BUCKETS; b++) {
        for (;;) {
            rp_cluster_wait *w = NULL;
            pthread_mutex_lock(&cl->mu);
            for (rp_cluster_wait **pp = &cl->waiters[b]; *pp; pp = &(*pp)->next)
                if ((*pp)->apply_deadline_ns != 0 && (*pp)->apply_deadline_ns < now) {
                    w = *pp;
                    *pp = w->next;
                    w->next = NULL;
                    break;
                }
            pthread_mutex_unlock(&cl->mu);
            if (w == NULL) break;
            rp_cluster_result res = {.rc = RP_UNAVAILABLE};
            msgpack_sbuffer_init(&res.reply);
            rp_errf(&res.eb, RP_UNAVAILABLE,
                    "the write is in the log (sequence %" PRIu64 ") but was not applied on this node within "
                    "%u ms; it will be: read it later, or retry with the same idempotency key",
                    w->seq, cl->cfg.cluster_write_timeout_ms);
            w->done(w, &res, false);
        }
    }
}

/* --- connection ------------------------------------------------------------------- */

static void on_disconnected(natsConnection *nc, void *arg) {
    (void)nc;
    rp_cluster *cl = arg;
    atomic_store(&cl->connected, false);
    cl_log("warn", "cluster_disconnected", "node=%s", cl->node);
}

static void on_reconnected(natsConnection *nc, void *arg) {
    (void)nc;
    rp_cluster *cl = arg;
    atomic_store(&cl->connected, true);
    atomic_fetch_add(&cl->n_reconnects, 1);
    cl_log("info", "cluster_reconnected", "node=%s", cl->node);
}

static void on_closed(natsConnection *nc, void *arg) {
    (void)nc;
    rp_cluster *cl = arg;
    atomic_store(&cl->connected, false);
}

/* Options: the URLs of cfg, SendAsap, unlimited reconnects, callbacks. */
static rp_err make_options(rp_cluster *cl, rp_errbuf *eb) {
    char urls[sizeof cl->cfg.cluster_urls];
    const char *list[64];
    int n = 0;
    memcpy(urls, cl->cfg.cluster_urls, sizeof urls);
    for (char *save = NULL, *u = strtok_r(urls, ", ", &save); u && n < 64; u = strtok_r(NULL, ", ", &save))
        list[n++] = u;
    if (n == 0) return rp_errf(eb, RP_BAD_REQUEST, "cluster_urls: no URL");
    natsStatus s = natsOptions_Create(&cl->opts);
    if (s == NATS_OK) s = natsOptions_SetServers(cl->opts, list, n);
    if (s == NATS_OK) s = natsOptions_SetSendAsap(cl->opts, true);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(cl->opts, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(cl->opts, 250);
    if (s == NATS_OK) s = natsOptions_SetTimeout(cl->opts, 2000);
    if (s == NATS_OK) s = natsOptions_SetPingInterval(cl->opts, 2000);
    if (s == NATS_OK) s = natsOptions_SetName(cl->opts, cl->node);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(cl->opts, on_disconnected, cl);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(cl->opts, on_reconnected, cl);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(cl->opts, on_closed, cl);
    if (s != NATS_OK) return nats_fail(eb, RP_BAD_REQUEST, "cluster_urls", s, 0);
    return RP_OK;
}

/* Create the stream when missing; read its first and last sequence. Never
 * deletes or re-creates. */
static rp_err ensure_stream(rp_cluster *cl, uint64_t *first, uint64_t *last, rp_errbuf *eb) {
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, cl->js, cl->cfg.cluster_stream, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNotFoundErr) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        const char *subjects[1] = {cl->subject};
        sc.Name = cl->cfg.cluster_stream;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Retention = js_LimitsPolicy;
        sc.Discard = js_DiscardOld;
        sc.Replicas = cl->cfg.cluster_replicas;
        sc.Duplicates = (int64_t)cl->cfg.cluster_dedup_s * 1000000000LL;        /* ns */
        sc.MaxAge = (int64_t)cl->cfg.cluster_max_age_h * 3600LL * 1000000000LL; /* ns */
        sc.MaxBytes = (int64_t)cl->cfg.cluster_max_bytes;
        sc.DenyDelete = true;
        sc.DenyPurge = true;
        jerr = 0;
        s = js_AddStream(&si, cl->js, &sc, NULL, &jerr);
        if (s == NATS_OK)
            cl_log("info", "cluster_stream_created", "stream=%s replicas=%u",
                    cl->cfg.cluster_stream, cl->cfg.cluster_replicas);
        else if (jerr == JSStreamNameExistErr) /* another node made it first */
            s = js_GetStreamInfo(&si, cl->js, cl->cfg.cluster_stream, NULL, &jerr);
    }
    if (s != NATS_OK) return nats_fail(eb, RP_UNAVAILABLE, "reading the cluster stream", s, jerr);
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return RP_OK;
}

static pthread_once_t nats_once = PTHREAD_ONCE_INIT;
static natsStatus nats_open_status;
static void nats_open_once(void) { nats_open_status = nats_Open(-1); }

/* Free cl and end libnats (the threads that may still call back into cl). */
static void cluster_free(rp_cluster *cl) {
    if (cl->nc) {
        natsConnection_Close(cl->nc);
        natsConnection_Destroy(cl->nc);
    }
    if (cl->js) jsCtx_Destroy(cl->js);
    if (cl->opts) natsOptions_Destroy(cl->opts);
    /* The connection's callbacks (closure: cl) run on the library's own
     * thread, after Close returned: wait for its threads to end before cl
     * goes. This ends the library for the process (one cluster a process). */
    nats_CloseAndWait(2000);
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->pub_cv);
    pthread_cond_destroy(&cl->applied_cv);
    free(cl);
}

rp_err rp_cluster_open(const rp_config *cfg, rp_store *store, rp_cluster **out, rp_errbuf *eb) {
    rp_err rc;
    *out = NULL;
    pthread_once(&nats_once, nats_open_once);
    if (nats_open_status != NATS_OK)
        return rp_errf(eb, RP_INTERNAL, "libnats: %s", natsStatus_GetText(nats_open_status));
    rp_cluster *cl = calloc(1, sizeof *cl);
    if (cl == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    cl->cfg = *cfg;
    cl->store = store;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->pub_cv, NULL);
    pthread_cond_init(&cl->applied_cv, NULL);
    if (cfg->node_id[0]) snprintf(cl->node, sizeof cl->node, "%s", cfg->node_id);
    else if (gethostname(cl->node, sizeof cl->node - 1) != 0 || cl->node[0] == '\0')
        snprintf(cl->node, sizeof cl->node, "node");
    size_t sl = strlen(cfg->cluster_stream);
    if (sl == 0 || sl > 32) {
        rc = rp_errf(eb, RP_BAD_REQUEST, "cluster_stream: 1..32 characters");
        goto fail;
    }
    for (size_t i = 0; i < sl; i++) {
        unsigned char c = (unsigned char)cfg->cluster_stream[i];
        if (!isalnum(c) && c != '_' && c != '-') {
            rc = rp_errf(eb, RP_BAD_REQUEST, "cluster_stream: letters, digits, '_' and '-' only");
            goto fail;
        }
        cl->subject[i] = (char)tolower(c);
    }
    memcpy(cl->subject + sl, ".log", 5);
    if (getrandom(&cl->boot, sizeof cl->boot, 0) != (ssize_t)sizeof cl->boot)
        cl->boot = (uint64_t)real_ns() ^ ((uint64_t)getpid() << 32);
    cl->next_ticket = 1;

    uint64_t applied;
    if ((rc = rp_store_applied_read(store, &applied, eb)) != RP_OK) goto fail;
    atomic_store(&cl->applied_seq, applied);
    if ((rc = make_options(cl, eb)) != RP_OK) goto fail;

    /* Connect and read (or create) the stream, retrying until the deadline:
     * a NATS cluster that just started elects its JetStream leader first. */
    int64_t deadline = mono_ns() + (int64_t)CL_OPEN_TIMEOUT_MS * 1000000;
    uint64_t first = 0, last = 0;
    int64_t wait_ms = CL_BACKOFF_MIN_MS;
    for (;;) {
        natsStatus s = NATS_OK;
        if (cl->nc == NULL) {
            s = natsConnection_Connect(&cl->nc, cl->opts);
            if (s == NATS_OK) s = natsConnection_JetStream(&cl->js, cl->nc, NULL);
            if (s != NATS_OK) {
                if (cl->nc) natsConnection_Destroy(cl->nc);
                cl->nc = NULL;
                rc = nats_fail(eb, RP_UNAVAILABLE, "connecting to NATS", s, 0);
            }
        }
        if (cl->nc != NULL && (rc = ensure_stream(cl, &first, &last, eb)) == RP_OK) break;
        if (mono_ns() > deadline) goto fail;
        struct timespec ts = {0, wait_ms * 1000000};
        nanosleep(&ts, NULL); /* backoff before the next try */
        wait_ms = wait_ms * 2 > CL_BACKOFF_MAX_MS ? CL_BACKOFF_MAX_MS : wait_ms * 2;
    }
    atomic_store(&cl->connected, true);
    atomic_store(&cl->stream_seq, last);

    /* Seeding: the stream must still hold applied + 1 (or end at applied). */
    bool empty = last < first || first == 0;
    if (applied > last) {
        rc = rp_errf(eb, RP_CONFLICT,
                     "this store applied log sequence %" PRIu64 " but stream %s ends at %" PRIu64
                     ": it belongs to another stream (or the stream was re-created); re-seed it from a "
                     "`rapport backup` of a node of this stream, or start with an empty data directory",
                     applied, cfg->cluster_stream, last);
        goto fail;
    }
    /* A store with data that never applied this stream (a single node's
     * store) would replay the stream over its own data and diverge from
     * the other nodes; it may only start an empty stream (and the others
     * are then seeded from its backup). */
    rp_store_stats st;
    if (applied == 0 && last > 0 && rp_store_stats_get(store, &st, eb) == RP_OK &&
        st.customers + st.events + st.issues + st.aliases > 0) {
        rc = rp_errf(eb, RP_CONFLICT,
                     "this store holds data but never applied stream %s (which has %" PRIu64 " entries): "
                     "re-seed it from a `rapport backup` of a node of this stream, or start with an empty "
                     "data directory",
                     cfg->cluster_stream, last);
        goto fail;
    }
    if (!empty && applied + 1 < first) {
        rc = rp_errf(eb, RP_CONFLICT,
                     "this store applied log sequence %" PRIu64 " but stream %s now starts at %" PRIu64
                     " (entries %" PRIu64 "..%" PRIu64 " are gone, retention): re-seed this node from a "
                     "`rapport backup` of a current node (its sequence must be >= %" PRIu64 ")",
                     applied, cfg->cluster_stream, first, applied + 1, first - 1, first - 1);
        goto fail;
    }
    if (empty && applied + 1 < first && applied != last) {
        rc = rp_errf(eb, RP_CONFLICT,
                     "this store applied log sequence %" PRIu64 " but stream %s holds nothing before "
                     "%" PRIu64 ": re-seed this node from a `rapport backup` of a current node",
                     applied, cfg->cluster_stream, first);
        goto fail;
    }
    cl_log("info", "cluster_open",
            "node=%s stream=%s applied=%" PRIu64 " first=%" PRIu64
            " last=%" PRIu64 "",
            cl->node, cfg->cluster_stream, applied, first, last);
    *out = cl;
    return RP_OK;
fail:
    cluster_free(cl);
    return rc;
}

/* --- the entry ---------------------------------------------------------------------- */

static void pack_kstr(msgpack_packer *pk, const char *k, const char *v, size_t n) {
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, v, n);
}

static void pack_kint(msgpack_packer *pk, const char *k, int64_t v) {
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_int64(pk, v);
}

static void pack_kuint(msgpack_packer *pk, const char *k, uint64_t v) {
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

/* A decoded entry (slices into the message's data). */
typedef struct entry {
    uint64_t seq;
    int64_t store_ns; /* JetStream's timestamp */
    natsMsg *msg;
    msgpack_unpacked up;
    bool ok;          /* well-formed */
    rp_str op, node;
    int64_t t;
    uint64_t boot, ticket;
    const msgpack_object *params;
    rp_cluster_result res;
} entry;

static bool key_is(const msgpack_object *k, const char *s) {
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) &&
           memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

/* Decode e->msg's data into e's fields; e->ok tells whether it is an entry. */
static void entry_decode(entry *e) {
    const char *d = natsMsg_GetData(e->msg);
    int n = natsMsg_GetDataLength(e->msg);
    msgpack_unpacked_init(&e->up);
    e->ok = false;
    size_t off = 0;
    if (d == NULL || n <= 0 ||
        msgpack_unpack_next(&e->up, d, (size_t)n, &off) != MSGPACK_UNPACK_SUCCESS || off != (size_t)n)
        return;
    const msgpack_object *o = &e->up.data;
    if (o->type != MSGPACK_OBJECT_MAP) return;
    int64_t v = 0;
    bool has_t = false;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *val = &o->via.map.ptr[i].val;
        if (key_is(k, "v") && val->type == MSGPACK_OBJECT_POSITIVE_INTEGER) v = (int64_t)val->via.u64;
        else if (key_is(k, "op") && val->type == MSGPACK_OBJECT_STR)
            e->op = (rp_str){val->via.str.ptr, val->via.str.size};
        else if (key_is(k, "t") && val->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            e->t = (int64_t)val->via.u64;
            has_t = true;
        } else if (key_is(k, "node") && val->type == MSGPACK_OBJECT_STR)
            e->node = (rp_str){val->via.str.ptr, val->via.str.size};
        else if (key_is(k, "boot") && val->type == MSGPACK_OBJECT_POSITIVE_INTEGER) e->boot = val->via.u64;
        else if (key_is(k, "ticket") && val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            e->ticket = val->via.u64;
        else if (key_is(k, "params") && val->type == MSGPACK_OBJECT_MAP) e->params = val;
    }
    e->ok = v == CL_ENTRY_VERSION && e->op.n > 0 && has_t && e->t > 0 && e->params != NULL;
}

/* --- publishing --------------------------------------------------------------------- */

static bool msgid_valid(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > CL_MSGID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7E) return false;
    return true;
}

rp_err rp_cluster_publish(rp_cluster *cl, rp_cluster_wait *wt, const char *op, int64_t now,
                          const msgpack_object *params, const char *msgid, rp_errbuf *eb) {
    rp_err rc = RP_OK;
    pub_item *it = NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msgid != NULL && !msgid_valid(msgid)) {
        rc = rp_errf(eb, RP_BAD_REQUEST, "bad message id");
        goto fail;
    }
    if ((it = calloc(1, sizeof *it)) == NULL) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory; retry");
        goto fail;
    }
    pthread_mutex_lock(&cl->mu);
    bool full = cl->stopping || cl->q_len >= cl->cfg.writer_queue_max;
    uint64_t ticket = cl->next_ticket++;
    pthread_mutex_unlock(&cl->mu);
    if (full) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "the write queue is full or the server is stopping; retry");
        goto fail;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    pack_kuint(&pk, "v", CL_ENTRY_VERSION);
    pack_kstr(&pk, "op", op, strlen(op));
    pack_kint(&pk, "t", now);
    pack_kstr(&pk, "node", cl->node, strlen(cl->node));
    pack_kuint(&pk, "boot", cl->boot);
    pack_kuint(&pk, "ticket", ticket);
    msgpack_pack_str(&pk, 6);
    msgpack_pack_str_body(&pk, "params", 6);
    msgpack_pack_object(&pk, *params);
    int64_t max_payload = natsConnection_GetMaxPayload(cl->nc);
    if (max_payload > 0 && (int64_t)sb.size + 512 > max_payload) {
        rc = rp_errf(eb, RP_TOO_LARGE,
                     "the write's log entry (%zu bytes) exceeds the NATS servers' max_payload (%lld bytes): "
                     "send it in smaller parts (an import in several batches) or raise max_payload",
                     sb.size, (long long)max_payload);
        goto fail;
    }
    if (sb.data == NULL || natsMsg_Create(&it->msg, cl->subject, NULL, sb.data, (int)sb.size) != NATS_OK) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory; retry");
        goto fail;
    }
    msgpack_sbuffer_destroy(&sb);
    if (msgid) snprintf(it->msgid, sizeof it->msgid, "%s", msgid);
    else snprintf(it->msgid, sizeof it->msgid, "%s.%016" PRIx64 ".%" PRIu64, cl->node, cl->boot, ticket);
    it->ticket = ticket;
    it->t0_ns = mono_ns();
    it->deadline_ns = it->t0_ns + (int64_t)cl->cfg.cluster_write_timeout_ms * 1000000;
    wt->ticket = ticket;
    pthread_mutex_lock(&cl->mu);
    if (cl->stopping) {
        pthread_mutex_unlock(&cl->mu);
        natsMsg_Destroy(it->msg);
        free(it);
        return rp_errf(eb, RP_UNAVAILABLE, "the server is stopping; retry");
    }
    rp_cluster_wait **b = &cl->waiters[ticket % CL_WAIT_BUCKETS];
    wt->next = *b;
    *b = wt;
    if (cl->q_tail) cl->q_tail->next = it;
    else cl->q_head = it;
    cl->q_tail = it;
    cl->q_len++;
    pthread_cond_signal(&cl->pub_cv);
    pthread_mutex_unlock(&cl->mu);
    return RP_OK;
fail:
    msgpack_sbuffer_destroy(&sb);
    free(it);
    return rc;
}

/* A duplicate ack for sequence seq: the entry is (or will be) applied; wait
 * for that here (bounded), then hand the waiter back as a duplicate unless
 * our own entry answered it (our retry of a publish whose ack was lost). */
static void publish_duplicate(rp_cluster *cl, pub_item *it, uint64_t seq) {
    pthread_mutex_lock(&cl->mu);
    while (!cl->stopping && atomic_load(&cl->applied_seq) < seq && mono_ns() < it->deadline_ns)
        backoff_wait(cl, &cl->applied_cv, 50);
    bool applied = atomic_load(&cl->applied_seq) >= seq;
    rp_cluster_wait *w = waiter_take(cl, it->ticket);
    pthread_mutex_unlock(&cl->mu);
    if (w == NULL) return;
    rp_cluster_result res = {.rc = applied ? RP_OK : RP_UNAVAILABLE};
    msgpack_sbuffer_init(&res.reply);
    if (!applied) rp_errf(&res.eb, RP_UNAVAILABLE, "the write is in the log but not applied here yet; retry");
    w->done(w, &res, applied);
}

/* Publish it until acknowledged or its deadline. */
static void publish_one(rp_cluster *cl, pub_item *it) {
    int64_t wait_ms = CL_BACKOFF_MIN_MS;
    char why[128] = "NATS is unreachable or the stream has no leader";
    for (;;) {
        int64_t now = mono_ns();
        if (now >= it->deadline_ns) break;
        int64_t left_ms = (it->deadline_ns - now) / 1000000 + 1;
        if (natsConnection_Status(cl->nc) == NATS_CONN_STATUS_CONNECTED) {
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MsgId = it->msgid;
            po.MaxWait = left_ms < 5000 ? left_ms : 5000;
            jsPubAck *pa = NULL;
            jsErrCode jerr = 0;
            natsStatus s = js_PublishMsg(&pa, cl->js, it->msg, &po, &jerr);
            if (s == NATS_OK) {
                uint64_t seq = pa->Sequence;
                bool dup = pa->Duplicate;
                jsPubAck_Destroy(pa);
                atomic_max(&cl->stream_seq, seq);
                atomic_fetch_add(&cl->n_published, 1);
                pthread_mutex_lock(&cl->mu);
                hist_add(&cl->h_publish, (uint64_t)(mono_ns() - it->t0_ns));
                pthread_mutex_unlock(&cl->mu);
                if (dup) {
                    publish_duplicate(cl, it, seq);
                    return;
                }
                /* the apply answers the waiter; bound that wait */
                pthread_mutex_lock(&cl->mu);
                for (rp_cluster_wait *w = cl->waiters[it->ticket % CL_WAIT_BUCKETS]; w; w = w->next)
                    if (w->ticket == it->ticket) {
                        w->seq = seq;
                        w->apply_deadline_ns = mono_ns() + (int64_t)cl->cfg.cluster_write_timeout_ms * 1000000;
                    }
                pthread_mutex_unlock(&cl->mu);
                return;
            }
            const char *last = nats_GetLastError(NULL);
            snprintf(why, sizeof why, "publishing to the log: %s", last ? last : natsStatus_GetText(s));
        } else {
            snprintf(why, sizeof why, "not connected to NATS");
        }
        atomic_fetch_add(&cl->n_retries, 1);
        pthread_mutex_lock(&cl->mu);
        int64_t w = wait_ms < left_ms ? wait_ms : left_ms;
        backoff_wait(cl, &cl->pub_cv, w);
        bool stop = cl->stopping;
        pthread_mutex_unlock(&cl->mu);
        if (stop) {
            snprintf(why, sizeof why, "the server is stopping");
            break;
        }
        wait_ms = wait_ms * 2 > CL_BACKOFF_MAX_MS ? CL_BACKOFF_MAX_MS : wait_ms * 2;
    }
    atomic_fetch_add(&cl->n_failed, 1);
    char msg[sizeof why + 128];
    snprintf(msg, sizeof msg, "the write did not reach the log within %u ms (%s); retry, with an idempotency key",
             cl->cfg.cluster_write_timeout_ms, why);
    waiter_fail(cl, it->ticket, msg);
}

static void *publisher_main(void *arg) {
    rp_cluster *cl = arg;
    for (;;) {
        pthread_mutex_lock(&cl->mu);
        while (!cl->stopping && cl->q_head == NULL) pthread_cond_wait(&cl->pub_cv, &cl->mu);
        pub_item *it = cl->q_head;
        if (it) {
            cl->q_head = it->next;
            if (cl->q_head == NULL) cl->q_tail = NULL;
            cl->q_len--;
        }
        bool stop = cl->stopping;
        pthread_mutex_unlock(&cl->mu);
        if (it == NULL) break;
        if (stop) waiter_fail(cl, it->ticket, "the server is stopping; retry");
        else publish_one(cl, it);
        natsMsg_Destroy(it->msg);
        free(it);
    }
    return NULL;
}

/* --- applying ------------------------------------------------------------------------ */

typedef struct batch {
    rp_cluster *cl;
    entry *e;
    size_t n;
} batch;

static void result_reset(rp_cluster_result *r) {
    r->rc = RP_OK;
    memset(&r->eb, 0, sizeof r->eb);
    msgpack_sbuffer_clear(&r->reply);
    r->canon_n = 0;
}

/* The writer's function for one batch: each entry in a nested transaction,
 * then the last sequence. The stored sequence must be the one before the
 * batch (nothing skipped, nothing twice). */
static rp_err batch_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    batch *b = arg;
    rp_cluster *cl = b->cl;
    uint64_t stored;
    rp_err rc = rp_store_applied_get(cl->store, txn, &stored, eb);
    if (rc != RP_OK) return rc;
    if (stored + 1 != b->e[0].seq)
        return rp_errf(eb, RP_INTERNAL, "log hole: the store applied %" PRIu64 ", the next entry is %" PRIu64,
                       stored, b->e[0].seq);
    for (size_t i = 0; i < b->n; i++) {
        entry *e = &b->e[i];
        result_reset(&e->res);
        if (!e->ok) {
            rp_errf(&e->res.eb, RP_BAD_REQUEST, "malformed log entry %" PRIu64, e->seq);
            e->res.rc = RP_BAD_REQUEST;
            continue;
        }
        MDB_txn *child;
        int mrc = mdb_txn_begin(mdb_txn_env(txn), txn, 0, &child);
        if (mrc == MDB_MAP_FULL) return rp_errf(eb, RP_STORE_FULL, "map full");
        if (mrc) return rp_errf(eb, RP_INTERNAL, "nested transaction: %s", mdb_strerror(mrc));
        rc = cl->apply(cl->ctx, child, e->op, e->t, e->params, &e->res, eb);
        if (rc != RP_OK) {
            mdb_txn_abort(child);
            return rc;
        }
        if (e->res.rc != RP_OK) {
            mdb_txn_abort(child);
            continue;
        }
        mrc = mdb_txn_commit(child);
        if (mrc == MDB_MAP_FULL) return rp_errf(eb, RP_STORE_FULL, "map full");
        if (mrc) return rp_errf(eb, RP_INTERNAL, "nested commit: %s", mdb_strerror(mrc));
    }
    return rp_store_applied_put(cl->store, txn, b->e[b->n - 1].seq, eb);
}

/* After the commit: answer this process's waiters. They are taken out of
 * the table before applied_seq moves, so that a publisher waiting on a
 * duplicate acknowledgement (publish_duplicate) never takes the waiter of
 * an entry this batch answers. */
static void batch_deliver(rp_cluster *cl, batch *b) {
    rp_cluster_wait *ws[CL_BATCH_MAX];
    entry *we[CL_BATCH_MAX];
    size_t nw = 0, nl = strlen(cl->node);
    int64_t now = real_ns();
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < b->n; i++) {
        entry *e = &b->e[i];
        if (e->store_ns > 0 && now > e->store_ns) hist_add(&cl->h_apply, (uint64_t)(now - e->store_ns));
        if (!e->ok || e->boot != cl->boot || e->node.n != nl || memcmp(e->node.p, cl->node, nl) != 0)
            continue;
        rp_cluster_wait *w = waiter_take(cl, e->ticket);
        if (w) {
            ws[nw] = w;
            we[nw++] = e;
        }
    }
    atomic_store(&cl->applied_seq, b->e[b->n - 1].seq);
    pthread_cond_broadcast(&cl->applied_cv);
    pthread_mutex_unlock(&cl->mu);
    atomic_fetch_add(&cl->n_applied, b->n);
    for (size_t i = 0; i < nw; i++) ws[i]->done(ws[i], &we[i]->res, false);
}

/* Apply b, retrying a failure of this node with backoff until it succeeds
 * or the cluster stops. Returns false when apply must halt (a hole). */
static bool batch_apply(rp_cluster *cl, batch *b) {
    int64_t wait_ms = CL_BACKOFF_MIN_MS;
    for (;;) {
        rp_errbuf eb = {0};
        rp_err rc = rp_store_write(cl->store, batch_fn, b, &eb);
        if (rc == RP_OK) {
            atomic_store(&cl->halted, false);
            batch_deliver(cl, b);
            return true;
        }
        if (rc == RP_INTERNAL && strncmp(eb.msg, "log hole", 8) == 0) {
            cl_log("error", "cluster_apply_halted", "node=%s reason=\"%s\"", cl->node,
                    eb.msg);
            return false;
        }
        atomic_store(&cl->halted, true);
        cl_log("error", "cluster_apply_failed",
                "node=%s seq=%" PRIu64 " code=%s error=\"%s\" "
                "action=retry",
                cl->node, b->e[0].seq, rp_err_code(rc), rp_errbuf_msg(&eb));
        pthread_mutex_lock(&cl->mu);
        backoff_wait(cl, &cl->applied_cv, wait_ms);
        bool stop = cl->stopping;
        pthread_mutex_unlock(&cl->mu);
        if (stop) return false;
        wait_ms = wait_ms * 2 > CL_BACKOFF_MAX_MS ? CL_BACKOFF_MAX_MS : wait_ms * 2;
    }
}

static bool stopping(rp_cluster *cl) {
    pthread_mutex_lock(&cl->mu);
    bool s = cl->stopping;
    pthread_mutex_unlock(&cl->mu);
    return s;
}

/* The ordered consumer from applied + 1. */
static natsStatus subscribe(rp_cluster *cl, natsSubscription **sub) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cl->cfg.cluster_stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = atomic_load(&cl->applied_seq) + 1;
    jsErrCode jerr = 0;
    return js_SubscribeSync(sub, cl->js, cl->subject, NULL, &so, &jerr);
}

/* Refresh stream_seq from the stream's info (when idle). */
static void refresh_stream(rp_cluster *cl) {
    if (natsConnection_Status(cl->nc) != NATS_CONN_STATUS_CONNECTED) return;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    if (js_GetStreamInfo(&si, cl->js, cl->cfg.cluster_stream, &jo, &jerr) == NATS_OK) {
        atomic_max(&cl->stream_seq, si->State.LastSeq);
        jsStreamInfo_Destroy(si);
    }
}

static void *apply_main(void *arg) {
    rp_cluster *cl = arg;
    natsSubscription *sub = NULL;
    entry *es = calloc(CL_BATCH_MAX, sizeof *es);
    int64_t last_info = 0, last_progress = mono_ns(), last_expire = 0, wait_ms = CL_BACKOFF_MIN_MS;
    uint64_t sub_reconnects = 0;
    bool halted = false;
    if (es == NULL) {
        cl_log("error", "cluster_apply_halted", "node=%s reason=out_of_memory", cl->node);
        atomic_store(&cl->halted, true);
        return NULL;
    }
    while (!stopping(cl)) {
        if (halted) { /* a hole: stay halted (loudly) until stopped */
            pthread_mutex_lock(&cl->mu);
            backoff_wait(cl, &cl->applied_cv, 1000);
            pthread_mutex_unlock(&cl->mu);
            continue;
        }
        if (sub == NULL) {
            natsStatus s = subscribe(cl, &sub);
            if (s != NATS_OK) {
                sub = NULL;
                pthread_mutex_lock(&cl->mu);
                backoff_wait(cl, &cl->applied_cv, wait_ms);
                pthread_mutex_unlock(&cl->mu);
                wait_ms = wait_ms * 2 > CL_BACKOFF_MAX_MS ? CL_BACKOFF_MAX_MS : wait_ms * 2;
                continue;
            }
            wait_ms = CL_BACKOFF_MIN_MS;
            sub_reconnects = atomic_load(&cl->n_reconnects);
            last_progress = mono_ns();
        }
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, 200);
        int64_t now = mono_ns();
        if (now - last_expire > 100000000LL) {
            waiters_expire(cl);
            last_expire = now;
        }
        if (s == NATS_TIMEOUT) {
            if (now - last_info > 1000000000LL) {
                refresh_stream(cl);
                last_info = now;
            }
            /* The ordered consumer lives on the NATS servers (memory, one
             * replica): after they all restarted, or a reconnect, it may be
             * gone without libnats noticing. Behind the stream with nothing
             * arriving for 2 s, or reconnected since it was made: make it
             * again from applied + 1. */
            bool behind = atomic_load(&cl->stream_seq) > atomic_load(&cl->applied_seq);
            if ((behind && now - last_progress > 2000000000LL) ||
                atomic_load(&cl->n_reconnects) != sub_reconnects) {
                if (atomic_load(&cl->connected)) {
                    cl_log("info", "cluster_resubscribe", "node=%s from=%" PRIu64 "", cl->node,
                            atomic_load(&cl->applied_seq) + 1);
                    natsSubscription_Unsubscribe(sub); /* an ephemeral consumer: gone with it */
                    natsSubscription_Destroy(sub);
                    sub = NULL;
                }
            }
            continue;
        }
        last_progress = now;
        if (s != NATS_OK) {
            cl_log("warn", "cluster_consumer_lost", "node=%s error=\"%s\" action=resubscribe",
                    cl->node, natsStatus_GetText(s));
            natsSubscription_Destroy(sub);
            sub = NULL;
            continue;
        }
        /* m and whatever else is pending, up to a batch */
        size_t n = 0, bytes = 0;
        uint64_t expect = atomic_load(&cl->applied_seq) + 1;
        do {
            jsMsgMetaData *meta = NULL;
            if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
                natsMsg_Destroy(m); /* not a stream message: nothing to apply */
                continue;
            }
            uint64_t seq = meta->Sequence.Stream;
            int64_t ts = meta->Timestamp;
            atomic_max(&cl->stream_seq, seq + meta->NumPending);
            jsMsgMetaData_Destroy(meta);
            if (seq < expect) { /* delivered again (consumer reset): already applied */
                natsMsg_Destroy(m);
                continue;
            }
            if (seq > expect) {
                cl_log("error", "cluster_apply_halted",
                        "node=%s reason=hole expected=%" PRIu64
                        " got=%" PRIu64 " action=\"re-seed this node from a backup of a current node\"",
                        cl->node, expect, seq);
                natsMsg_Destroy(m);
                halted = true;
                atomic_store(&cl->halted, true);
                break;
            }
            entry *e = &es[n++];
            memset(e, 0, sizeof *e);
            e->seq = seq;
            e->store_ns = ts;
            e->msg = m;
            msgpack_sbuffer_init(&e->res.reply);
            entry_decode(e);
            expect++;
            bytes += (size_t)natsMsg_GetDataLength(m);
        } while (n < CL_BATCH_MAX && bytes < CL_BATCH_BYTES && natsSubscription_NextMsg(&m, sub, 0) == NATS_OK);
        if (n > 0) {
            batch b = {cl, es, n};
            if (!batch_apply(cl, &b) && !stopping(cl)) {
                halted = true;
                atomic_store(&cl->halted, true);
            }
        }
        for (size_t i = 0; i < n; i++) {
            msgpack_unpacked_destroy(&es[i].up);
            msgpack_sbuffer_destroy(&es[i].res.reply);
            natsMsg_Destroy(es[i].msg);
        }
    }
    if (sub) natsSubscription_Destroy(sub);
    free(es);
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------------------ */

rp_err rp_cluster_start(rp_cluster *cl, rp_cluster_apply_fn apply, void *ctx, rp_errbuf *eb) {
    cl->apply = apply;
    cl->ctx = ctx;
    if (pthread_create(&cl->apply_th, NULL, apply_main, cl) != 0)
        return rp_errf(eb, RP_UNAVAILABLE, "cannot start the apply thread");
    cl->apply_started = true;
    for (int i = 0; i < CL_PUBLISHERS; i++) {
        if (pthread_create(&cl->pub_th[i], NULL, publisher_main, cl) != 0)
            return rp_errf(eb, RP_UNAVAILABLE, "cannot start a publisher thread");
        cl->npub++;
    }
    return RP_OK;
}

bool rp_cluster_wait_applied(rp_cluster *cl, uint64_t seq, uint32_t timeout_ms) {
    int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
    pthread_mutex_lock(&cl->mu);
    while (!cl->stopping && atomic_load(&cl->applied_seq) < seq && mono_ns() < deadline)
        backoff_wait(cl, &cl->applied_cv, 50);
    bool ok = atomic_load(&cl->applied_seq) >= seq;
    pthread_mutex_unlock(&cl->mu);
    return ok;
}

void rp_cluster_get_stats(rp_cluster *cl, rp_cluster_stats *out) {
    memset(out, 0, sizeof *out);
    out->connected = atomic_load(&cl->connected) &&
                     natsConnection_Status(cl->nc) == NATS_CONN_STATUS_CONNECTED;
    out->halted = atomic_load(&cl->halted);
    out->applied_seq = atomic_load(&cl->applied_seq);
    out->stream_seq = atomic_load(&cl->stream_seq);
    if (out->stream_seq < out->applied_seq) out->stream_seq = out->applied_seq;
    out->lag = out->stream_seq - out->applied_seq;
    out->healthy = out->connected && !out->halted && out->lag <= cl->cfg.max_lag;
    out->published = atomic_load(&cl->n_published);
    out->publish_retries = atomic_load(&cl->n_retries);
    out->publish_failed = atomic_load(&cl->n_failed);
    out->applied = atomic_load(&cl->n_applied);
    out->reconnects = atomic_load(&cl->n_reconnects);
    pthread_mutex_lock(&cl->mu);
    out->publish = cl->h_publish;
    out->apply = cl->h_apply;
    pthread_mutex_unlock(&cl->mu);
    snprintf(out->node_id, sizeof out->node_id, "%s", cl->node);
    snprintf(out->stream, sizeof out->stream, "%s", cl->cfg.cluster_stream);
}

void rp_cluster_stop(rp_cluster *cl) {
    if (cl == NULL) return;
    pthread_mutex_lock(&cl->mu);
    cl->stopping = true;
    pthread_cond_broadcast(&cl->pub_cv);
    pthread_cond_broadcast(&cl->applied_cv);
    pthread_mutex_unlock(&cl->mu);
    for (int i = 0; i < cl->npub; i++) pthread_join(cl->pub_th[i], NULL);
    if (cl->apply_started) pthread_join(cl->apply_th, NULL);
    /* whatever still waits for its apply: UNAVAILABLE (it may be applied at the next start) */
    for (size_t b = 0; b < CL_WAIT_BUCKETS; b++) {
        while (cl->waiters[b]) {
            rp_cluster_wait *w = cl->waiters[b];
            cl->waiters[b] = w->next;
            rp_cluster_result res = {.rc = RP_UNAVAILABLE};
            msgpack_sbuffer_init(&res.reply);
            rp_errf(&res.eb, RP_UNAVAILABLE, "the server is stopping; the write may still be applied; retry with an idempotency key");
            w->done(w, &res, false);
        }
    }
    /* queue leftovers (publishers exit only on an empty queue) */
    for (pub_item *it = cl->q_head, *nx; it; it = nx) {
        nx = it->next;
        natsMsg_Destroy(it->msg);
        free(it);
    }
    cluster_free(cl);
}
