/* ops_read.c — the read operations: ping, customer.get, issue.list,
 * history.list, lookup, stats, context.get and route.get.
 *
 * Each runs on the caller's thread in one LMDB read transaction (MVCC: it
 * never waits for the writer), packs its result before the transaction ends
 * — every record slice points into LMDB's map — and replies before
 * returning. Result maps use the contract field names of DESIGN.md.
 *
 * The context card needs tens of KiB of working memory; each thread keeps
 * one rp_context_scratch in thread-specific data (freed when the thread
 * exits), so the screen-pop path allocates nothing but its reply buffer.
 *
 * Limits: history pages are at most 200 events (the rp_event array lives on
 * the stack, ~26 KiB); issue lists are read whole up to RP_API_ISSUES_MAX.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "api/cursor.h"
#include "api/ops.h"
#include "context/context.h"
#include "model/codec.h"

#define HISTORY_DEFAULT 20
#define HISTORY_MAX 200

/* --- small packing helpers --------------------------------------------------- */

void rp_api_kv_str(msgpack_packer *pk, const char *key, rp_str v) {
    rp_mp_pack_cstr(pk, key);
    rp_mp_pack_str(pk, v);
}

void rp_api_kv_int(msgpack_packer *pk, const char *key, int64_t v) {
    rp_mp_pack_cstr(pk, key);
    msgpack_pack_int64(pk, v);
}

void rp_api_kv_uint(msgpack_packer *pk, const char *key, uint64_t v) {
    rp_mp_pack_cstr(pk, key);
    msgpack_pack_uint64(pk, v);
}

void rp_api_kv_bool(msgpack_packer *pk, const char *key, bool v) {
    rp_mp_pack_cstr(pk, key);
    if (v) msgpack_pack_true(pk);
    else msgpack_pack_false(pk);
}

/* Read a map header at enc: its entry count and header length. */
static bool map_header(const unsigned char *p, size_t len, uint32_t *count, size_t *hlen) {
    if (len >= 1 && (p[0] & 0xf0) == 0x80) {
        *count = p[0] & 0x0f;
        *hlen = 1;
        return true;
    }
    if (len >= 3 && p[0] == 0xde) {
        *count = (uint32_t)p[1] << 8 | p[2];
        *hlen = 3;
        return true;
    }
    if (len >= 5 && p[0] == 0xdf) {
        *count = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        *hlen = 5;
        return true;
    }
    return false;
}

bool rp_api_pack_typed(msgpack_packer *pk, const char *type, const char *enc, size_t len) {
    uint32_t count;
    size_t hlen;
    if (!map_header((const unsigned char *)enc, len, &count, &hlen) || count == UINT32_MAX)
        return false;
    msgpack_pack_map(pk, (size_t)count + 1);
    rp_mp_pack_cstr(pk, "type");
    rp_mp_pack_cstr(pk, type);
    /* the entries follow the header unchanged */
    pk->callback(pk->data, enc + hlen, len - hlen);
    return true;
}

/* Start a result: an sbuffer and a packer writing into it. */
#define RESULT_BEGIN(sb, pk)                                                                   \
    msgpack_sbuffer sb;                                                                         \
    msgpack_sbuffer_init(&sb);                                                                  \
    msgpack_packer pk;                                                                          \
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write)

/* --- ping ---------------------------------------------------------------------- */

/* ping {} -> {pong: true, time}: liveness and the server's clock. */
void rp_op_ping(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    RESULT_BEGIN(sb, pk);
    msgpack_pack_map(&pk, 2);
    rp_api_kv_bool(&pk, "pong", true);
    rp_api_kv_int(&pk, "time", rq->now);
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* --- customer.get ---------------------------------------------------------------- */

/* customer.get {id} -> the customer (aliases resolve to the survivor).
 * Audited: names the customer shown. */
void rp_op_customer_get(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"id", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    rp_str id;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_id(params, "id", &id, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_store *s = rp_api_store(rq->api);
    MDB_txn *txn;
    if ((rc = rp_store_rbegin(s, &txn, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_customer c;
    rc = rp_store_get_customer(s, txn, id, &c, &eb);
    if (rc != RP_OK) {
        rp_store_rend(s, txn);
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    RESULT_BEGIN(sb, pk);
    rp_customer_encode(&pk, &c, RP_ENC_WIRE);
    rp_api_audit_id(rq, c.id);
    rp_store_rend(s, txn);
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* --- issue.list --------------------------------------------------------------------- */

rp_err rp_api_all_issues(rp_store *s, MDB_txn *txn, rp_str id, rp_issue **out, uint32_t *n,
                         bool *truncated, rp_errbuf *eb) {
    uint32_t cap = 16;
    *out = NULL;
    *n = 0;
    *truncated = false;
    for (;;) {
        rp_issue *a = rp_malloc((size_t)cap * sizeof *a);
        if (a == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading issues");
        uint32_t got = 0;
        bool more = false;
        rp_err rc = rp_store_issues(s, txn, id, RP_STORE_CANONICAL, cap, a, &got, &more, eb);
        if (rc != RP_OK) {
            free(a);
            return rc;
        }
        if (!more || cap >= RP_API_ISSUES_MAX) {
            *truncated = more;
            *n = got;
            if (got == 0) free(a);
            else *out = a;
            return RP_OK;
        }
        free(a); /* more than fit: read again with room for twice as many */
        cap *= 2;
    }
}

/* issue.list {id} -> {customer_id, issues: [...]} in issue_id order;
 * `truncated: true` is added when the customer has more than fit.
 * Audited: names customer_id. */
void rp_op_issue_list(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"id", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    rp_str id, canon;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_id(params, "id", &id, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_store *s = rp_api_store(rq->api);
    MDB_txn *txn;
    if ((rc = rp_store_rbegin(s, &txn, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_issue *is = NULL;
    uint32_t n = 0;
    bool truncated = false;
    if ((rc = rp_store_resolve(s, txn, id, &canon, &eb)) != RP_OK ||
        (rc = rp_api_all_issues(s, txn, canon, &is, &n, &truncated, &eb)) != RP_OK) {
        rp_store_rend(s, txn);
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    RESULT_BEGIN(sb, pk);
    msgpack_pack_map(&pk, 2 + (truncated ? 1 : 0));
    rp_api_kv_str(&pk, "customer_id", canon);
    rp_mp_pack_cstr(&pk, "issues");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) rp_issue_encode(&pk, &is[i], RP_ENC_WIRE);
    if (truncated) rp_api_kv_bool(&pk, "truncated", true);
    rp_api_audit_id(rq, canon);
    rp_store_rend(s, txn);
    free(is);
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* --- history.list ----------------------------------------------------------------------- */

/* history.list {id, limit?, before?} -> {customer_id, events (newest first),
 * next: "TS.SEQ" to pass as `before` for the next page, or nil}. Audited:
 * names customer_id (one line per page). */
void rp_op_history_list(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"id", "limit", "before", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    rp_str id, canon, before_s;
    int64_t limit = HISTORY_DEFAULT;
    bool has_limit;
    rp_cursor before;
    bool has_before = false;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_id(params, "id", &id, &eb)) != RP_OK ||
        (rc = rp_api_param_int(params, "limit", 1, HISTORY_MAX, &limit, &has_limit, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rc = rp_mp_str(params, "before", &before_s, &eb);
    if (rc == RP_OK) {
        if ((rc = rp_cursor_parse(before_s, &before, &eb)) != RP_OK) {
            rp_api_fail_rc(rq, rc, &eb);
            return;
        }
        has_before = true;
    } else if (rc != RP_NOT_FOUND) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_store *s = rp_api_store(rq->api);
    MDB_txn *txn;
    if ((rc = rp_store_rbegin(s, &txn, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_event ev[HISTORY_MAX];
    uint32_t n = 0;
    bool more = false;
    rp_cursor next = {0, 0};
    if ((rc = rp_store_resolve(s, txn, id, &canon, &eb)) != RP_OK ||
        (rc = rp_store_history(s, txn, canon, RP_STORE_CANONICAL, has_before ? &before : NULL, (uint32_t)limit, ev, &n,
                         &more, &next, &eb)) != RP_OK) {
        rp_store_rend(s, txn);
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    RESULT_BEGIN(sb, pk);
    msgpack_pack_map(&pk, 3);
    rp_api_kv_str(&pk, "customer_id", canon);
    rp_mp_pack_cstr(&pk, "events");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) rp_event_encode(&pk, &ev[i], RP_ENC_WIRE);
    rp_mp_pack_cstr(&pk, "next");
    if (more) {
        char cur[32];
        rp_cursor_format(&next, cur);
        rp_mp_pack_cstr(&pk, cur);
    } else {
        msgpack_pack_nil(&pk);
    }
    rp_api_audit_id(rq, canon);
    rp_store_rend(s, txn);
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* --- lookup ---------------------------------------------------------------------------------- */

/* lookup {phone|email|account} -> {found, ambiguous, key (normalized),
 * candidates: [{customer_id, name}]}; `truncated: true` is added when more
 * than RP_LOOKUP_MAX customers share the key. An unknown key is found:false,
 * not an error. Audited: names every candidate; an unknown key shows no one
 * and writes no line (as a card for an unknown caller). */
void rp_op_lookup(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"phone", "email", "account", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    rp_ident_kind kind;
    bool is_id;
    rp_str raw;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_key(params, false, &kind, &is_id, &raw, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_store *s = rp_api_store(rq->api);
    MDB_txn *txn;
    if ((rc = rp_store_rbegin(s, &txn, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_lookup lk;
    if ((rc = rp_store_lookup(s, txn, kind, raw, &lk, &eb)) != RP_OK) {
        rp_store_rend(s, txn);
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    RESULT_BEGIN(sb, pk);
    msgpack_pack_map(&pk, 4 + (lk.truncated ? 1 : 0));
    rp_api_kv_bool(&pk, "found", lk.n > 0);
    rp_api_kv_bool(&pk, "ambiguous", lk.n > 1);
    rp_api_kv_str(&pk, "key", rp_str_c(lk.key));
    rp_mp_pack_cstr(&pk, "candidates");
    msgpack_pack_array(&pk, lk.n);
    for (uint32_t i = 0; i < lk.n; i++) {
        rp_customer c;
        rp_errbuf ceb = {0};
        bool have = rp_store_get_customer(s, txn, lk.ids[i], &c, &ceb) == RP_OK;
        msgpack_pack_map(&pk, 2);
        rp_api_kv_str(&pk, "customer_id", lk.ids[i]);
        rp_api_audit_id(rq, lk.ids[i]);
        rp_mp_pack_cstr(&pk, "name");
        if (have && c.name.n) rp_mp_pack_str(&pk, c.name);
        else msgpack_pack_nil(&pk);
    }
    if (lk.truncated) rp_api_kv_bool(&pk, "truncated", true);
    rp_store_rend(s, txn);
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* --- stats ---------------------------------------------------------------------------------- */

/* stats {} -> counts, map sizes and writer counters. */
void rp_op_stats(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    rp_store_stats st;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_store_stats_get(rp_api_store(rq->api), &st, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_cluster *cl = rp_api_cluster(rq->api);
    RESULT_BEGIN(sb, pk);
    msgpack_pack_map(&pk, cl ? 13 : 12);
    rp_api_kv_uint(&pk, "customers", st.customers);
    rp_api_kv_uint(&pk, "events", st.events);
    rp_api_kv_uint(&pk, "issues", st.issues);
    rp_api_kv_uint(&pk, "aliases", st.aliases);
    rp_api_kv_uint(&pk, "phones", st.phones);
    rp_api_kv_uint(&pk, "emails", st.emails);
    rp_api_kv_uint(&pk, "accounts", st.accounts);
    rp_api_kv_uint(&pk, "map_size", st.map_size);
    rp_api_kv_uint(&pk, "map_used", st.map_used);
    rp_api_kv_uint(&pk, "map_max", st.map_max);
    rp_mp_pack_cstr(&pk, "writer");
    msgpack_pack_map(&pk, 5);
    rp_api_kv_uint(&pk, "commits", st.writer.commits);
    rp_api_kv_uint(&pk, "writes_ok", st.writer.writes_ok);
    rp_api_kv_uint(&pk, "writes_failed", st.writer.writes_failed);
    rp_api_kv_uint(&pk, "map_grows", st.writer.map_grows);
    rp_api_kv_uint(&pk, "queue_depth", st.writer.queue_depth);
    rp_mp_pack_cstr(&pk, "digests");
    msgpack_pack_map(&pk, 5);
    rp_api_kv_uint(&pk, "count", st.digests);
    rp_api_kv_bool(&pk, "ready", st.digests_ready);
    rp_api_kv_str(&pk, "backfill", rp_str_c(rp_store_fill_state_name(st.digest_fill)));
    rp_api_kv_uint(&pk, "backfill_visited", st.digest_fill_visited);
    rp_api_kv_uint(&pk, "backfill_built", st.digest_fill_built);
    if (cl) { /* cluster mode only: a single node's stats are unchanged */
        rp_cluster_stats cs;
        rp_cluster_get_stats(cl, &cs);
        rp_mp_pack_cstr(&pk, "cluster");
        msgpack_pack_map(&pk, 13);
        rp_api_kv_str(&pk, "node_id", rp_str_c(cs.node_id));
        rp_api_kv_str(&pk, "stream", rp_str_c(cs.stream));
        rp_api_kv_bool(&pk, "connected", cs.connected);
        rp_api_kv_bool(&pk, "healthy", cs.healthy);
        rp_api_kv_bool(&pk, "halted", cs.halted);
        rp_api_kv_uint(&pk, "applied_seq", cs.applied_seq);
        rp_api_kv_uint(&pk, "stream_seq", cs.stream_seq);
        rp_api_kv_uint(&pk, "lag", cs.lag);
        rp_api_kv_uint(&pk, "published", cs.published);
        rp_api_kv_uint(&pk, "publish_retries", cs.publish_retries);
        rp_api_kv_uint(&pk, "publish_failed", cs.publish_failed);
        rp_api_kv_uint(&pk, "applied", cs.applied);
        rp_api_kv_uint(&pk, "reconnects", cs.reconnects);
    }
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* --- context.get and route.get ------------------------------------------------------------ */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

/* Thread exit: free the thread's scratch. */
static void scratch_destroy(void *p) { rp_context_scratch_free(p); }

/* Once per process: the key of the per-thread scratch. */
static void scratch_key_init(void) {
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

/* This thread's context scratch, created on first use; NULL when it cannot
 * be kept (the call then allocates its own). */
static rp_context_scratch *thread_scratch(void) {
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok) return NULL;
    rp_context_scratch *sc = pthread_getspecific(scratch_key);
    if (sc != NULL) return sc;
    if (rp_context_scratch_new(&sc, NULL) != RP_OK) return NULL;
    if (pthread_setspecific(scratch_key, sc) != 0) {
        rp_context_scratch_free(sc);
        return NULL;
    }
    return sc;
}

/* The context layer's name for a request key. */
static rp_context_key ctx_kind(rp_ident_kind k, bool is_id) {
    if (is_id) return RP_CTX_KEY_ID;
    switch (k) {
    case RP_IDENT_PHONE: return RP_CTX_KEY_PHONE;
    case RP_IDENT_EMAIL: return RP_CTX_KEY_EMAIL;
    case RP_IDENT_ACCOUNT: return RP_CTX_KEY_ACCOUNT;
    }
    return RP_CTX_KEY_ACCOUNT;
}

/* Note for the audit line whom a card shows: the one customer found, or
 * the candidates of an ambiguous key. A card for an unknown key shows no
 * one and is not audited. */
static void audit_card(rp_api_req *rq, const rp_context_shown *shown) {
    for (uint32_t i = 0; i < shown->n; i++) rp_api_audit_id(rq, rp_str_c(shown->ids[i]));
}

/* context.get {phone|email|account|id, at?} -> the context card. Every card
 * that shows a customer is audited. */
void rp_op_context_get(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"phone", "email", "account", "id", "at", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    rp_ident_kind kind;
    bool is_id;
    rp_str key;
    int64_t at;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_key(params, true, &kind, &is_id, &key, &eb)) != RP_OK ||
        (rc = rp_api_param_at(rq, params, &at, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    RESULT_BEGIN(sb, pk);
    rp_context_shown shown;
    rc = rp_context_card(rp_api_store(rq->api), ctx_kind(kind, is_id), key, at,
                                thread_scratch(), &pk, &shown, &eb);
    if (rc != RP_OK) {
        msgpack_sbuffer_destroy(&sb);
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    audit_card(rq, &shown);
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* route.get {phone, at?} -> the IVR route answer. An empty or unparsable
 * number ("anonymous") is an unknown caller, not an error: an IVR always
 * needs an answer. Not audited: it shows no more than a routing decision. */
void rp_op_route_get(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"phone", "at", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    int64_t at;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_at(rq, params, &at, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    const msgpack_object *v = rp_mp_get(params, "phone");
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
        rp_api_fail(rq, RP_BAD_REQUEST, "missing parameter 'phone'");
        return;
    }
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > RP_EMAIL_MAX) {
        rc = rp_errf(&eb, RP_BAD_REQUEST, "parameter 'phone' must be a string of at most %d bytes",
                     RP_EMAIL_MAX);
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_str phone = {v->via.str.ptr, v->via.str.size};
    RESULT_BEGIN(sb, pk);
    rc = rp_context_route(rp_api_store(rq->api), RP_CTX_KEY_PHONE, phone, at,
                                 thread_scratch(), &pk, &eb);
    if (rc != RP_OK) {
        msgpack_sbuffer_destroy(&sb);
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}
