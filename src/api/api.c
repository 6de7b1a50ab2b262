/* api.c — the table of operations, dispatch, roles, audit and metrics.
 *
 * Both network faces turn a request into (operation, params map, role) and
 * call rp_api_call(). This file owns what is common to every operation:
 *
 *   - the table: name, roles allowed, read or write, and the handler (a
 *     parallel array, since rp_api_op is public and carries no handler);
 *   - the role check (FORBIDDEN before any parsing), and params normalization
 *     (absent or nil params are the empty map; anything else must be a map);
 *   - counting: every reply goes through rp_api_ok / rp_api_fail, which
 *     count the call by (operation, code) and put its latency, measured from
 *     the call to the reply (for writes: including the group commit), into a
 *     fixed-bucket histogram. Counters are relaxed atomics: replies come from
 *     every worker thread and from the writer thread;
 *   - the audit log: the table says which operations are audited, and
 *     rp_api_ok writes their line, naming the customers the handler noted
 *     (one write(2) per line, O_APPEND, so lines from several threads never
 *     interleave);
 *   - the parameter helpers every handler validates with.
 *
 * Limits: lookup by name is a linear scan of 19 entries (cheaper than
 * hashing at this size). The histogram has fixed buckets chosen for a
 * sub-millisecond service; slower calls land in the last buckets.
 */
#include "api/api.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/ops.h"
#include "model/codec.h"
#include "model/ident.h"

/* --- the table -------------------------------------------------------------- */

#define ROLES_ROUTE (RP_ROLEBIT(RP_ROLE_ROUTE) | RP_ROLES_READ)

enum {
    OP_PING, OP_CONTEXT_GET, OP_ROUTE_GET, OP_CUSTOMER_GET, OP_CUSTOMER_PUT, OP_CUSTOMER_PATCH,
    OP_CUSTOMER_FORGET, OP_CUSTOMER_MERGE, OP_EVENT_APPEND, OP_ISSUE_PUT, OP_ISSUE_LIST,
    OP_HISTORY_LIST, OP_LOOKUP, OP_IMPORT, OP_EXPORT, OP_STATS, OP_BACKUP, OP_CARD_LINK, OP_BACKTEST, OP__COUNT
};

/* audit: the reply shows personal data (or confirms its erasure), so it
 * writes an audit line naming whom (rp_api_ok; the handler names the ids
 * with rp_api_audit_id / rp_api_audit_page). Writes that only return ids
 * and versions, route.get, ping and stats are not audited. */
static const rp_api_op api_table[OP__COUNT] = {
    [OP_PING] = {"ping", RP_ROLES_ALL, false, OP_PING, .audit = false},
    [OP_CONTEXT_GET] = {"context.get", RP_ROLES_READ, false, OP_CONTEXT_GET, .audit = true},
    [OP_ROUTE_GET] = {"route.get", ROLES_ROUTE, false, OP_ROUTE_GET, .audit = false},
    [OP_CUSTOMER_GET] = {"customer.get", RP_ROLES_READ, false, OP_CUSTOMER_GET, .audit = true},
    [OP_CUSTOMER_PUT] = {"customer.put", RP_ROLES_WRITE, true, OP_CUSTOMER_PUT, .audit = false},
    [OP_CUSTOMER_PATCH] = {"customer.patch", RP_ROLES_WRITE, true, OP_CUSTOMER_PATCH, .audit = false},
    [OP_CUSTOMER_FORGET] = {"customer.forget", RP_ROLES_ADMIN, true, OP_CUSTOMER_FORGET, .audit = true},
    [OP_CUSTOMER_MERGE] = {"customer.merge", RP_ROLES_WRITE, true, OP_CUSTOMER_MERGE, .audit = false},
    [OP_EVENT_APPEND] = {"event.append", RP_ROLES_WRITE, true, OP_EVENT_APPEND, .audit = false},
    [OP_ISSUE_PUT] = {"issue.put", RP_ROLES_WRITE, true, OP_ISSUE_PUT, .audit = false},
    [OP_ISSUE_LIST] = {"issue.list", RP_ROLES_READ, false, OP_ISSUE_LIST, .audit = true},
    [OP_HISTORY_LIST] = {"history.list", RP_ROLES_READ, false, OP_HISTORY_LIST, .audit = true},
    [OP_LOOKUP] = {"lookup", RP_ROLES_READ, false, OP_LOOKUP, .audit = true},
    [OP_IMPORT] = {"import", RP_ROLES_WRITE, true, OP_IMPORT, .audit = false},
    [OP_EXPORT] = {"export", RP_ROLES_ADMIN, false, OP_EXPORT, .audit = true},
    [OP_STATS] = {"stats", RP_ROLES_READ, false, OP_STATS, .audit = false},
    [OP_BACKUP] = {"backup", RP_ROLES_ADMIN, true, OP_BACKUP, .audit = false}, /* write: replies from its own thread (ops_admin.c) */
    [OP_CARD_LINK] = {"card.link", RP_ROLES_WRITE, false, OP_CARD_LINK, .audit = false}, /* mints a page link: shows no data */
    /* backtest reads every customer's contacts but shows only aggregates:
     * admin only, one audit line per run (customer=- customers=N). write:
     * replies from its own thread (ops_admin.c), like backup. */
    [OP_BACKTEST] = {"backtest", RP_ROLES_ADMIN, true, OP_BACKTEST, .audit = true},
};

static const rp_api_handler api_handlers[OP__COUNT] = {
    [OP_PING] = rp_op_ping,
    [OP_CONTEXT_GET] = rp_op_context_get,
    [OP_ROUTE_GET] = rp_op_route_get,
    [OP_CUSTOMER_GET] = rp_op_customer_get,
    [OP_CUSTOMER_PUT] = rp_op_customer_put,
    [OP_CUSTOMER_PATCH] = rp_op_customer_patch,
    [OP_CUSTOMER_FORGET] = rp_op_customer_forget,
    [OP_CUSTOMER_MERGE] = rp_op_customer_merge,
    [OP_EVENT_APPEND] = rp_op_event_append,
    [OP_ISSUE_PUT] = rp_op_issue_put,
    [OP_ISSUE_LIST] = rp_op_issue_list,
    [OP_HISTORY_LIST] = rp_op_history_list,
    [OP_LOOKUP] = rp_op_lookup,
    [OP_IMPORT] = rp_op_import,
    [OP_EXPORT] = rp_op_export,
    [OP_STATS] = rp_op_stats,
    [OP_BACKUP] = rp_op_backup,
    [OP_CARD_LINK] = rp_op_card_link,
    [OP_BACKTEST] = rp_op_backtest,
};

/* --- metrics ------------------------------------------------------------------ */

/* Upper bounds of the latency buckets, nanoseconds (Prometheus `le`). */
/* Bucket bounds, ns. 200 us and 1 ms are the design's route.get and
 * context.get p99 budgets, so both targets read straight off /metrics. */
static const uint64_t api_bucket_ns[] = {
    25000, 50000, 100000, 200000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000,
    100000000, 1000000000,
};
#define API_NBUCKETS (sizeof api_bucket_ns / sizeof api_bucket_ns[0])

typedef struct api_opstat {
    atomic_uint_fast64_t codes[RP_ERR__COUNT]; /* calls by reply code */
    atomic_uint_fast64_t buckets[API_NBUCKETS + 1]; /* non-cumulative; last is +Inf */
    atomic_uint_fast64_t sum_ns;
} api_opstat;

struct rp_api {
    rp_store *store;
    const rp_config *cfg;
    atomic_int audit_fd; /* -1: stderr; replaced in place by dup2 on reopen */
    rp_tokens_box *tokens; /* the live bearer tokens (swapped by a reload) */
    api_opstat stats[OP__COUNT];
    rp_cluster *cluster; /* cluster mode (NULL: single node) */
};

/* --- lifetime ------------------------------------------------------------------ */

rp_err rp_api_create(rp_store *store, rp_api **out, rp_errbuf *eb) {
    assert(store != NULL && out != NULL);
    rp_api *api = calloc(1, sizeof *api);
    if (api == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory creating the api");
    api->store = store;
    api->cfg = rp_store_config(store);
    atomic_init(&api->audit_fd, -1);
    rp_err trc = rp_tokens_box_new(api->cfg, &api->tokens, eb);
    if (trc != RP_OK) {
        free(api);
        return trc;
    }
    for (int i = 0; i < OP__COUNT; i++) {
        for (int c = 0; c < RP_ERR__COUNT; c++) atomic_init(&api->stats[i].codes[c], 0);
        for (size_t b = 0; b <= API_NBUCKETS; b++) atomic_init(&api->stats[i].buckets[b], 0);
        atomic_init(&api->stats[i].sum_ns, 0);
    }
    if (api->cfg->audit_log[0] != '\0') {
        rp_err rc = rp_api_reopen_audit(api, api->cfg->audit_log, eb);
        if (rc != RP_OK) {
            rp_tokens_box_free(api->tokens);
            free(api);
            return rc;
        }
    }
    *out = api;
    return RP_OK;
}

void rp_api_destroy(rp_api *api) {
    if (api == NULL) return;
    rp_api_admin_wait(); /* a backup still copying uses api and its store */
    int fd = atomic_load(&api->audit_fd);
    if (fd >= 0) close(fd);
    rp_tokens_box_free(api->tokens);
    free(api);
}

rp_tokens_box *rp_api_tokens(rp_api *api) { return api->tokens; }

rp_err rp_api_cluster_start(rp_api *api, rp_cluster *cl, rp_errbuf *eb) {
    assert(api->cluster == NULL && cl != NULL);
    api->cluster = cl;
    return rp_cluster_start(cl, rp_api_apply_entry, api, eb);
}

rp_cluster *rp_api_cluster(const rp_api *api) { return api->cluster; }

rp_err rp_api_reopen_audit(rp_api *api, const char *path, rp_errbuf *eb) {
    int nfd = path[0] ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)
                      : fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
    if (nfd < 0) {
        int e = errno;
        return rp_errf(eb, rp_err_from_errno(e), "audit_log %s: %s", path[0] ? path : "stderr", strerror(e));
    }
    int cur = atomic_load(&api->audit_fd);
    if (cur < 0) {
        atomic_store(&api->audit_fd, nfd); /* first open: nobody wrote to an fd yet */
        return RP_OK;
    }
    /* dup3 swaps what the fd number refers to in one step: a write in
     * flight finishes on the old file, the next one goes to the new; the
     * number is never closed, so it can never be reused for a socket. */
    if (dup3(nfd, cur, O_CLOEXEC) < 0) {
        int e = errno;
        close(nfd);
        return rp_errf(eb, rp_err_from_errno(e), "audit_log %s: %s", path, strerror(e));
    }
    close(nfd);
    return RP_OK;
}

rp_store *rp_api_store(const rp_api *api) { return api->store; }
const rp_config *rp_api_config(const rp_api *api) { return api->cfg; }

/* --- the table's accessors ----------------------------------------------------- */

const rp_api_op *rp_api_find(const char *name, size_t len) {
    if (name == NULL) return NULL;
    for (int i = 0; i < OP__COUNT; i++) {
        const char *n = api_table[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) return &api_table[i];
    }
    return NULL;
}

const rp_api_op *rp_api_ops(size_t *count) {
    if (count) *count = OP__COUNT;
    return api_table;
}

bool rp_api_allowed(const rp_api_op *op, rp_role role) {
    if (op == NULL || (unsigned)role > RP_ROLE_ADMIN || role == RP_ROLE_NONE) return false;
    return (op->roles & RP_ROLEBIT(role)) != 0;
}

/* --- calls ------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds (latencies). */
static uint64_t api_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Count one finished call: its code and its latency bucket. */
static void api_count(const rp_api_req *rq, rp_err code) {
    api_opstat *st = &rq->api->stats[rq->op->index];
    if ((unsigned)code >= RP_ERR__COUNT) code = RP_INTERNAL;
    uint64_t dt = api_now_ns() - rq->t0_ns;
    size_t b = 0;
    while (b < API_NBUCKETS && dt > api_bucket_ns[b]) b++;
    atomic_fetch_add_explicit(&st->codes[code], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->sum_ns, dt, memory_order_relaxed);
}

static void api_audit(const rp_api_req *rq);

void rp_api_ok(const rp_api_req *rq, const msgpack_sbuffer *sb) {
    api_count(rq, RP_OK);
    if (rq->op->audit && rq->shown.n > 0) api_audit(rq); /* before the reply: it is on record */
    rq->reply(rq->arg, RP_OK, NULL, sb->data, sb->size);
}

void rp_api_fail(const rp_api_req *rq, rp_err code, const char *msg) {
    if (code == RP_OK) code = RP_INTERNAL; /* a failure must carry a failure code */
    api_count(rq, code);
    rq->reply(rq->arg, code, (msg && *msg) ? msg : rp_err_text(code), NULL, 0);
}

void rp_api_fail_rc(const rp_api_req *rq, rp_err rc, const rp_errbuf *eb) {
    rp_api_fail(rq, rc, (eb && eb->msg[0]) ? eb->msg : NULL);
}

/* Copy reqid into out, keeping it printable and space-free so that an audit
 * or log line stays one line with one value per key. */
static void api_copy_reqid(char out[RP_API_REQID_MAX + 1], const char *reqid) {
    size_t n = 0;
    if (reqid)
        for (; reqid[n] && n < RP_API_REQID_MAX; n++)
            out[n] = (reqid[n] > 0x20 && reqid[n] < 0x7f) ? reqid[n] : '_';
    out[n] = '\0';
}

void rp_api_call(rp_api *api, const rp_api_op *op, rp_role role, const char *reqid,
                 const msgpack_object *params, rp_api_reply_fn reply, void *arg) {
    assert(api != NULL && reply != NULL);
    if (op == NULL || op < api_table || op >= api_table + OP__COUNT) {
        reply(arg, RP_BAD_REQUEST, "unknown method", NULL, 0);
        return;
    }
    rp_api_req rq = {.api = api, .op = op, .role = role, .t0_ns = api_now_ns(),
                     .now = (int64_t)time(NULL), .reply = reply, .arg = arg};
    api_copy_reqid(rq.reqid, reqid);
    if (!rp_api_allowed(op, role)) {
        char msg[RP_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "role '%s' may not call %s", rp_role_name(role), op->name);
        rp_api_fail(&rq, RP_FORBIDDEN, msg);
        return;
    }
    msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
    empty.via.map.size = 0;
    empty.via.map.ptr = NULL;
    if (params == NULL || params->type == MSGPACK_OBJECT_NIL) params = &empty;
    if (params->type != MSGPACK_OBJECT_MAP) {
        rp_api_fail(&rq, RP_BAD_REQUEST, "params must be a map");
        return;
    }
    api_handlers[op->index](&rq, params);
}

/* --- audit -------------------------------------------------------------------- */

void rp_api_audit_id(rp_api_req *rq, rp_str id) {
    rp_api_shown *sh = &rq->shown;
    sh->n++;
    if (sh->used + (sh->used ? 1 : 0) + id.n > RP_API_AUDIT_IDS) {
        sh->cut++;
        return;
    }
    if (sh->used) sh->ids[sh->used++] = ',';
    memcpy(sh->ids + sh->used, id.p, id.n);
    sh->used += id.n;
    sh->ids[sh->used] = '\0';
}

void rp_api_audit_page(rp_api_req *rq, uint32_t n, rp_str first, rp_str last) {
    if (n == 0) return;
    rp_api_shown *sh = &rq->shown;
    sh->n += n;
    snprintf(sh->page, sizeof sh->page, " customers=%" PRIu32 " first=%.*s last=%.*s", n,
             (int)(first.n < RP_ID_MAX ? first.n : RP_ID_MAX), first.p,
             (int)(last.n < RP_ID_MAX ? last.n : RP_ID_MAX), last.p);
}

/* Write the audit line of rq (format: ops.h, rp_api_ok). */
static void api_audit(const rp_api_req *rq) {
    const rp_api_shown *sh = &rq->shown;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    time_t secs = ts.tv_sec;
    gmtime_r(&secs, &tm);
    char more[24] = "";
    if (sh->cut) snprintf(more, sizeof more, " more=%" PRIu32, sh->cut);
    char line[RP_API_AUDIT_IDS + 512];
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ event=audit op=%s role=%s "
                     "customer=%s%s%s reqid=%s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, rq->op->name, rp_role_name(rq->role),
                     sh->used ? sh->ids : "-", sh->page, more, rq->reqid[0] ? rq->reqid : "-");
    if (n <= 0) return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (line[len - 1] != '\n') line[len - 1] = '\n'; /* a cut line still ends */
    int afd = atomic_load(&rq->api->audit_fd);
    int fd = afd >= 0 ? afd : STDERR_FILENO;
    ssize_t w;
    do {
        w = write(fd, line, len); /* one write: O_APPEND keeps lines whole */
    } while (w < 0 && errno == EINTR);
}

/* --- parameters ------------------------------------------------------------------ */

rp_err rp_api_check_keys(const msgpack_object *params, const char *const *allowed, rp_errbuf *eb) {
    assert(params->type == MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < params->via.map.size; i++) {
        const msgpack_object *k = &params->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return rp_errf(eb, RP_BAD_REQUEST, "parameter names must be strings");
        rp_str key = {k->via.str.ptr, k->via.str.size};
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = rp_str_eqc(key, *a);
        if (!ok) {
            char shown[40];
            size_t n = key.n < sizeof shown - 1 ? key.n : sizeof shown - 1;
            for (size_t j = 0; j < n; j++)
                shown[j] = (key.p[j] >= 0x20 && key.p[j] < 0x7f) ? key.p[j] : '?';
            shown[n] = '\0';
            char list[160] = "";
            size_t used = 0;
            for (const char *const *a = allowed; *a; a++) {
                int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *a);
                if (w < 0 || (size_t)w >= sizeof list - used) break;
                used += (size_t)w;
            }
            return rp_errf(eb, RP_BAD_REQUEST, "unknown parameter '%s' (expected: %s)", shown,
                           used ? list : "none");
        }
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *p = &params->via.map.ptr[j].key;
            if (p->via.str.size == key.n && memcmp(p->via.str.ptr, key.p, key.n) == 0)
                return rp_errf(eb, RP_BAD_REQUEST, "parameter '%.*s' is given twice",
                               (int)(key.n < 40 ? key.n : 40), key.p);
        }
    }
    return RP_OK;
}

rp_err rp_api_param_id(const msgpack_object *params, const char *key, rp_str *out, rp_errbuf *eb) {
    const msgpack_object *v = rp_mp_get(params, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
        return rp_errf(eb, RP_BAD_REQUEST, "missing parameter '%s'", key);
    if (v->type != MSGPACK_OBJECT_STR)
        return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' must be a string (got %s)", key,
                       rp_mp_type_name(v));
    rp_str s = {v->via.str.ptr, v->via.str.size};
    rp_err rc = rp_id_check(s, key, eb);
    if (rc != RP_OK) return rc;
    *out = s;
    return RP_OK;
}

rp_err rp_api_param_int(const msgpack_object *params, const char *key, int64_t min, int64_t max,
                        int64_t *out, bool *present, rp_errbuf *eb) {
    *present = false;
    const msgpack_object *v = rp_mp_get(params, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) return RP_OK;
    int64_t x;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) x = v->via.i64;
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
        x = (int64_t)v->via.u64;
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' is out of range", key);
    else
        return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' must be an integer (got %s)", key,
                       rp_mp_type_name(v));
    if (x < min || x > max)
        return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' must be %" PRId64 "..%" PRId64
                       " (got %" PRId64 ")", key, min, max, x);
    *out = x;
    *present = true;
    return RP_OK;
}

rp_err rp_api_param_bool(const msgpack_object *params, const char *key, bool def, bool *out,
                         rp_errbuf *eb) {
    const msgpack_object *v = rp_mp_get(params, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
        *out = def;
        return RP_OK;
    }
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
        return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' must be a boolean (got %s)", key,
                       rp_mp_type_name(v));
    *out = v->via.boolean;
    return RP_OK;
}

rp_err rp_api_param_key(const msgpack_object *params, bool allow_id, rp_ident_kind *kind,
                        bool *is_id, rp_str *value, rp_errbuf *eb) {
    static const char *const names[] = {"phone", "email", "account", "id"};
    static const rp_ident_kind kinds[] = {RP_IDENT_PHONE, RP_IDENT_EMAIL, RP_IDENT_ACCOUNT,
                                          RP_IDENT_ACCOUNT};
    int nk = allow_id ? 4 : 3, found = -1;
    for (int i = 0; i < nk; i++) {
        const msgpack_object *v = rp_mp_get(params, names[i]);
        if (v == NULL || v->type == MSGPACK_OBJECT_NIL) continue;
        if (found >= 0)
            return rp_errf(eb, RP_BAD_REQUEST, "give exactly one of %s (got %s and %s)",
                           allow_id ? "phone, email, account, id" : "phone, email, account",
                           names[found], names[i]);
        if (v->type != MSGPACK_OBJECT_STR)
            return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' must be a string (got %s)",
                           names[i], rp_mp_type_name(v));
        if (v->via.str.size == 0)
            return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' is empty", names[i]);
        if (v->via.str.size > RP_EMAIL_MAX)
            return rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' is longer than %d bytes",
                           names[i], RP_EMAIL_MAX);
        found = i;
        *value = (rp_str){v->via.str.ptr, v->via.str.size};
    }
    if (found < 0)
        return rp_errf(eb, RP_BAD_REQUEST, "give one of %s",
                       allow_id ? "phone, email, account, id" : "phone, email, account");
    *kind = kinds[found];
    *is_id = found == 3;
    if (*is_id) return rp_id_check(*value, "id", eb);
    return RP_OK;
}

rp_err rp_api_param_at(const rp_api_req *rq, const msgpack_object *params, int64_t *at,
                       rp_errbuf *eb) {
    bool present;
    rp_err rc = rp_api_param_int(params, "at", 0, INT64_MAX / 2, at, &present, eb);
    if (rc != RP_OK) return rc;
    if (!present) *at = rq->now;
    return RP_OK;
}

/* --- metrics text ------------------------------------------------------------------ */


/* Request counters and latency histograms, one series per operation (and
 * per code for the counters, only codes seen so far). */
static void api_metrics_requests(rp_api *api, msgpack_sbuffer *sb) {
    rp_sbuf_printf(sb, "# HELP rapport_requests_total Requests answered, by method and result code.\n"
                  "# TYPE rapport_requests_total counter\n");
    for (int i = 0; i < OP__COUNT; i++)
        for (int c = 0; c < RP_ERR__COUNT; c++) {
            uint64_t v = atomic_load_explicit(&api->stats[i].codes[c], memory_order_relaxed);
            if (v || c == RP_OK)
                rp_sbuf_printf(sb, "rapport_requests_total{method=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                          api_table[i].name, rp_err_code((rp_err)c), v);
        }
    rp_sbuf_printf(sb, "# HELP rapport_request_duration_seconds Time from request to reply "
                  "(writes include the commit).\n"
                  "# TYPE rapport_request_duration_seconds histogram\n");
    for (int i = 0; i < OP__COUNT; i++) {
        const api_opstat *st = &api->stats[i];
        uint64_t cum = 0;
        for (size_t b = 0; b <= API_NBUCKETS; b++) {
            cum += atomic_load_explicit(&st->buckets[b], memory_order_relaxed);
            if (b < API_NBUCKETS)
                rp_sbuf_printf(sb, "rapport_request_duration_seconds_bucket{method=\"%s\",le=\"%g\"} %"
                          PRIu64 "\n", api_table[i].name, (double)api_bucket_ns[b] / 1e9, cum);
            else
                rp_sbuf_printf(sb, "rapport_request_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %"
                          PRIu64 "\n", api_table[i].name, cum);
        }
        double sum = (double)atomic_load_explicit(&st->sum_ns, memory_order_relaxed) / 1e9;
        rp_sbuf_printf(sb, "rapport_request_duration_seconds_sum{method=\"%s\"} %.9f\n",
                  api_table[i].name, sum);
        rp_sbuf_printf(sb, "rapport_request_duration_seconds_count{method=\"%s\"} %" PRIu64 "\n",
                  api_table[i].name, cum);
    }
}

/* One metric with its HELP and TYPE lines. */
static void api_gauge(msgpack_sbuffer *sb, const char *name, const char *type, const char *help,
                      uint64_t v) {
    rp_sbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

/* A writer duration histogram (store stats) as a Prometheus histogram. */
static void api_writer_hist(msgpack_sbuffer *sb, const char *name, const char *help,
                            const rp_writer_hist *h) {
    rp_sbuf_printf(sb, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t b = 0; b < RP_WRITER_NBUCKETS; b++) {
        cum += h->buckets[b];
        rp_sbuf_printf(sb, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                  (double)rp_writer_bucket_ns[b] / 1e9, cum);
    }
    rp_sbuf_printf(sb, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    rp_sbuf_printf(sb, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name, (double)h->sum_ns / 1e9, name,
              h->count);
}

void rp_api_metrics(rp_api *api, msgpack_sbuffer *sb) {
    api_metrics_requests(api, sb);
    rp_store_stats st;
    rp_errbuf eb = {0};
    if (rp_store_stats_get(api->store, &st, &eb) != RP_OK) {
        rp_sbuf_printf(sb, "# store statistics unavailable: %s\n", rp_errbuf_msg(&eb));
        return;
    }
    api_gauge(sb, "rapport_customers", "gauge", "Customers stored.", st.customers);
    api_gauge(sb, "rapport_events", "gauge", "Events stored.", st.events);
    api_gauge(sb, "rapport_issues", "gauge", "Issues stored.", st.issues);
    api_gauge(sb, "rapport_aliases", "gauge", "Merged ids answering as aliases.", st.aliases);
    api_gauge(sb, "rapport_map_size_bytes", "gauge", "LMDB map size.", st.map_size);
    api_gauge(sb, "rapport_map_used_bytes", "gauge", "LMDB map bytes in use.", st.map_used);
    api_gauge(sb, "rapport_map_max_bytes", "gauge", "LMDB map size limit.", st.map_max);
    api_gauge(sb, "rapport_writer_commits_total", "counter", "Write transactions committed.",
              st.writer.commits);
    api_gauge(sb, "rapport_writer_writes_ok_total", "counter", "Writes acknowledged.",
              st.writer.writes_ok);
    api_gauge(sb, "rapport_writer_writes_failed_total", "counter", "Writes that failed.",
              st.writer.writes_failed);
    api_gauge(sb, "rapport_writer_map_grows_total", "counter", "Map growths.",
              st.writer.map_grows);
    api_gauge(sb, "rapport_writer_queue_depth", "gauge", "Writes waiting for the writer.",
              st.writer.queue_depth);
    api_gauge(sb, "rapport_digests", "gauge", "Customers with a card digest.", st.digests);
    api_gauge(sb, "rapport_digests_ready", "gauge",
              "1 when every customer has a current card digest (no backfill pending).",
              st.digests_ready ? 1 : 0);
    api_gauge(sb, "rapport_digest_backfill_built_total", "counter",
              "Digests the backfill of this process built.", st.digest_fill_built);
    api_writer_hist(sb, "rapport_writer_commit_duration_seconds",
                    "Time of each write transaction's commit (with its fsync in sync durability).",
                    &st.writer.commit);
    api_writer_hist(sb, "rapport_writer_flush_duration_seconds",
                    "Time of each flush to disk in async durability (mdb_env_sync).",
                    &st.writer.flush);
    if (api->cluster == NULL) return; /* cluster mode only */
    rp_cluster_stats cs;
    rp_cluster_get_stats(api->cluster, &cs);
    api_gauge(sb, "rapport_cluster_connected", "gauge", "1 when connected to a NATS server.",
              cs.connected);
    api_gauge(sb, "rapport_cluster_healthy", "gauge",
              "1 when connected, applying and within max_lag (GET /healthz is 200).", cs.healthy);
    api_gauge(sb, "rapport_cluster_halted", "gauge", "1 when apply stopped (a hole or a failing batch).",
              cs.halted);
    api_gauge(sb, "rapport_cluster_applied_seq", "gauge", "Last log sequence applied here.",
              cs.applied_seq);
    api_gauge(sb, "rapport_cluster_stream_seq", "gauge", "Last log sequence known in the stream.",
              cs.stream_seq);
    api_gauge(sb, "rapport_cluster_lag", "gauge", "Entries of the stream not applied here yet.", cs.lag);
    api_gauge(sb, "rapport_cluster_published_total", "counter",
              "Entries this node published and JetStream acknowledged.", cs.published);
    api_gauge(sb, "rapport_cluster_publish_retries_total", "counter", "Publish attempts retried.",
              cs.publish_retries);
    api_gauge(sb, "rapport_cluster_publish_failed_total", "counter",
              "Writes answered UNAVAILABLE after cluster_write_timeout_ms.", cs.publish_failed);
    api_gauge(sb, "rapport_cluster_applied_total", "counter", "Entries applied since start.", cs.applied);
    api_gauge(sb, "rapport_cluster_reconnects_total", "counter", "Reconnects to NATS.", cs.reconnects);
    api_writer_hist(sb, "rapport_cluster_publish_duration_seconds",
                    "Time from queueing an entry to JetStream's acknowledgement (retries included).",
                    &cs.publish);
    api_writer_hist(sb, "rapport_cluster_apply_lag_seconds",
                    "Time from JetStream storing an entry to its commit on this node (replication lag).",
                    &cs.apply);
}
