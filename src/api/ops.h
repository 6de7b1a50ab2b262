/* ops.h — internals shared by the api table (api.c) and its handlers.
 *
 * Not a public header: only the files of src/api include it. It holds the request
 * context every handler gets (rp_api_req), the two ways a handler answers
 * (rp_api_ok / rp_api_fail, which also count metrics), the parameter helpers
 * every handler validates with, and the asynchronous write request the write
 * handlers share (ops_write.c): a common header, one descriptor per write op
 * and one skeleton that runs them.
 *
 * Handlers are split by kind:
 *   ops_read.c   ping, customer.get, issue.list, history.list, lookup, stats,
 *                context.get, route.get — one read transaction, reply at once;
 *   ops_write.c  customer.put|patch|forget|merge, event.append, issue.put —
 *                validate here, apply on the writer thread, reply after commit;
 *   ops_bulk.c   import (one write for the whole batch) and export (a page
 *                of customers with their events and issues).
 */
#ifndef RP_API_OPS_H
#define RP_API_OPS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "model/record.h"
#include "store/idem.h"
#include "store/store.h"
#include "cluster/cluster.h"

/* The longest request id kept for logs and audit lines. */
#define RP_API_REQID_MAX 64

/* Room for the ids one audit line names: every candidate of a household
 * line (lookup and context.get show at most RP_LOOKUP_MAX). */
#define RP_API_AUDIT_IDS (RP_LOOKUP_MAX * (RP_ID_MAX + 1))

/* Whom a reply shows, noted by the handler for the audit line that
 * rp_api_ok writes when the op's table row has `audit`. n == 0: the reply
 * shows no one and writes no line. */
typedef struct rp_api_shown {
    uint32_t n;                      /* customers shown (ids noted, or a page's count) */
    uint32_t cut;                    /* ids noted that did not fit in ids */
    size_t used;                     /* bytes of ids */
    char ids[RP_API_AUDIT_IDS + 1];  /* comma-joined, NUL-terminated */
    char page[2 * RP_ID_MAX + 48];   /* export: " customers=N first=A last=B", else "" */
} rp_api_shown;

/* One call in flight: everything needed to reply and to count it. A read
 * handler gets it on the caller's stack; a write copies it into its heap
 * request, so every field is a value (reqid is copied, not pointed to). */
typedef struct rp_api_req {
    rp_api *api;
    const rp_api_op *op;
    rp_role role;
    char reqid[RP_API_REQID_MAX + 1]; /* printable, no spaces (sanitized) */
    uint64_t t0_ns;                   /* CLOCK_MONOTONIC at the call */
    int64_t now;                      /* time(NULL) at the call */
    rp_api_reply_fn reply;
    void *arg;
    rp_api_shown shown;               /* for the audit line (rp_api_audit_id) */
} rp_api_req;

/* A handler: validate params (always a map), run, reply exactly once. */
typedef void (*rp_api_handler)(rp_api_req *rq, const msgpack_object *params);

/* --- replying (api.c) ------------------------------------------------------ */

/* Reply with the msgpack object in sb (one complete object), count the call
 * as OK and time it. When the op's table row has `audit` and the handler
 * noted whom the reply shows (rq->shown.n > 0), first write the audit line
 * (one write(2), O_APPEND, to the audit log opened at create time, or
 * stderr):
 *   "ts=<RFC 3339 UTC> event=audit op=<op> role=<role> customer=<ids>[ customers=N
 *    first=A last=B][ more=K] reqid=<reqid>\n"
 * ids is the noted ids joined by commas ("-" for an export page); more=K
 * counts ids that did not fit. Failures (rp_api_fail) are never audited. */
void rp_api_ok(const rp_api_req *rq, const msgpack_sbuffer *sb);

/* Reply with an error: code != RP_OK and a sentence (NULL: the code's
 * default text). Counts and times the call. */
void rp_api_fail(const rp_api_req *rq, rp_err code, const char *msg);

/* Reply with error rc and the sentence in eb (the code's default text when
 * eb holds none). */
void rp_api_fail_rc(const rp_api_req *rq, rp_err rc, const rp_errbuf *eb);

/* The store and settings the api serves. */
rp_store *rp_api_store(const rp_api *api);
const rp_config *rp_api_config(const rp_api *api);

/* Note that the reply of rq shows (or, for customer.forget, erased)
 * customer id; id is copied, so it may point into a read transaction that
 * ends before the reply. Call once per customer, before rp_api_ok. Only
 * ops audited by the table get a line; for the others the note is unused. */
void rp_api_audit_id(rp_api_req *rq, rp_str id);

/* Note that the reply of rq is a page of n customers, first..last in id
 * order (export). n == 0 notes nothing (an empty page shows no one). */
void rp_api_audit_page(rp_api_req *rq, uint32_t n, rp_str first, rp_str last);

/* --- parameters (api.c) ---------------------------------------------------- */

/* Refuse keys of params not in allowed (NULL-terminated): a typo must not be
 * silently ignored. Returns RP_OK or RP_BAD_REQUEST naming the key. */
rp_err rp_api_check_keys(const msgpack_object *params, const char *const *allowed, rp_errbuf *eb);

/* A required id parameter (string, 1..64 printable bytes). Returns RP_OK or
 * RP_BAD_REQUEST ("missing parameter 'id'", ...). */
rp_err rp_api_param_id(const msgpack_object *params, const char *key, rp_str *out, rp_errbuf *eb);

/* An optional integer parameter within [min, max]; *present tells whether it
 * was given (nil counts as absent). Returns RP_OK or RP_BAD_REQUEST. */
rp_err rp_api_param_int(const msgpack_object *params, const char *key, int64_t min, int64_t max,
                        int64_t *out, bool *present, rp_errbuf *eb);

/* An optional boolean parameter (absent/nil -> def). RP_OK or RP_BAD_REQUEST. */
rp_err rp_api_param_bool(const msgpack_object *params, const char *key, bool def, bool *out,
                         rp_errbuf *eb);

/* The one identity key of a lookup-style request: exactly one of phone,
 * email, account (and id when allow_id). *is_id is set when the key is id.
 * Returns RP_OK or RP_BAD_REQUEST. */
rp_err rp_api_param_key(const msgpack_object *params, bool allow_id, rp_ident_kind *kind,
                        bool *is_id, rp_str *value, rp_errbuf *eb);

/* The `at` of a read: the parameter when given (>= 0), else rq->now. */
rp_err rp_api_param_at(const rp_api_req *rq, const msgpack_object *params, int64_t *at,
                       rp_errbuf *eb);

/* --- reading helpers (ops_read.c) ------------------------------------------ */

/* All issues of customer id, in issue_id order, into a heap array (*out,
 * freed by the caller with free(); NULL when *n is 0). At most
 * RP_API_ISSUES_MAX are read; *truncated tells when more exist.
 * Returns RP_OK, RP_NOT_FOUND, RP_UNAVAILABLE (out of memory), RP_INTERNAL. */
#define RP_API_ISSUES_MAX 65536u
rp_err rp_api_all_issues(rp_store *s, MDB_txn *txn, rp_str id, rp_issue **out, uint32_t *n,
                         bool *truncated, rp_errbuf *eb);

/* Pack "key": value helpers for result maps. */
void rp_api_kv_str(msgpack_packer *pk, const char *key, rp_str v);
void rp_api_kv_int(msgpack_packer *pk, const char *key, int64_t v);
void rp_api_kv_uint(msgpack_packer *pk, const char *key, uint64_t v);
void rp_api_kv_bool(msgpack_packer *pk, const char *key, bool v);

/* Pack a record (already encoded as one msgpack map in enc) with an extra
 * first entry "type": type — the NDJSON line form. Returns false when enc
 * does not start with a map header (a bug in the encoder). */
bool rp_api_pack_typed(msgpack_packer *pk, const char *type, const char *enc, size_t len);

/* --- handlers ------------------------------------------------------------- */
void rp_op_ping(rp_api_req *rq, const msgpack_object *params);
void rp_op_customer_get(rp_api_req *rq, const msgpack_object *params);
void rp_op_issue_list(rp_api_req *rq, const msgpack_object *params);
void rp_op_history_list(rp_api_req *rq, const msgpack_object *params);
void rp_op_lookup(rp_api_req *rq, const msgpack_object *params);
void rp_op_stats(rp_api_req *rq, const msgpack_object *params);
void rp_op_card_link(rp_api_req *rq, const msgpack_object *params); /* ops_card.c */
void rp_op_context_get(rp_api_req *rq, const msgpack_object *params);
void rp_op_route_get(rp_api_req *rq, const msgpack_object *params);

void rp_op_customer_put(rp_api_req *rq, const msgpack_object *params);
void rp_op_customer_patch(rp_api_req *rq, const msgpack_object *params);
void rp_op_customer_forget(rp_api_req *rq, const msgpack_object *params);
void rp_op_customer_merge(rp_api_req *rq, const msgpack_object *params);
void rp_op_event_append(rp_api_req *rq, const msgpack_object *params);
void rp_op_issue_put(rp_api_req *rq, const msgpack_object *params);

void rp_op_import(rp_api_req *rq, const msgpack_object *params);
void rp_op_export(rp_api_req *rq, const msgpack_object *params);
void rp_op_backup(rp_api_req *rq, const msgpack_object *params); /* ops_admin.c */
/* backtest (ops_admin.c): the context engine's backtest over the served
 * store, on a dedicated thread, one at a time. Bounds of its params: */
#define RP_API_BT_SAMPLE_MAX 100000000 /* sample: 1..1e8 contacts */
#define RP_API_BT_THREADS_MAX 4        /* threads: 1..4 (default 2) */
void rp_op_backtest(rp_api_req *rq, const msgpack_object *params);
/* Wait until no admin job (backup, backtest) of this process is running
 * (called by rp_api_destroy: their replies use the api and the store). */
void rp_api_admin_wait(void);

/* --- asynchronous writes (ops_write.c) ------------------------------------- */

/* Every write op has its own request struct. It begins with the fields of
 * the shared header (RP_API_WRITE_FIELDS, libuv's UV_REQ_FIELDS pattern) and
 * adds only what that op decodes and what its apply() produces:
 *
 *     typedef struct rp_api_wappend {
 *         RP_API_WRITE_FIELDS
 *         rp_event e;    // decoded from params.event
 *         rp_cursor at;  // set by apply
 *     } rp_api_wappend;
 *
 * so a pointer to it is also an rp_api_write * (RP_API_WHDR) and the
 * skeleton (rp_api_write_run) handles every op the same way. An op is
 * described once, by an rp_api_wdesc: its allowed keys, its struct size and
 * its functions. */

typedef struct rp_api_write rp_api_write;

/* Decode and validate the copied params (w->params) into the op's fields
 * (caller's thread). Returns RP_OK, or the error with its sentence in eb;
 * *what, when set, names the field the sentence is about ("customer") and
 * prefixes the reply ("customer: ..."). Slices point into w->block or
 * w->arena. */
typedef rp_err (*rp_api_decode_fn)(rp_api_write *w, const char **what, rp_errbuf *eb);
/* Apply the write inside txn (writer thread; may run more than once, so it
 * only sets fields of w). */
typedef rp_err (*rp_api_apply_fn)(rp_api_write *w, MDB_txn *txn, rp_errbuf *eb);
/* Pack the result map after the commit (writer thread). */
typedef void (*rp_api_result_fn)(rp_api_write *w, msgpack_packer *pk);
/* Release op-specific memory (any thread; also after a failed decode, so it
 * must cope with fields left zero). May be NULL. */
typedef void (*rp_api_cleanup_fn)(rp_api_write *w);

/* Room for the strings a decoder derives (normalized phones and emails). */
#define RP_API_ARENA (RP_MAX_PHONES * (RP_PHONE_MAX + 1) + RP_MAX_EMAILS * (RP_EMAIL_MAX + 1))

/* One write op, described once (static const, next to its functions). */
typedef struct rp_api_wdesc {
    const char *const *keys;   /* the params allowed, NULL-terminated */
    size_t size;               /* sizeof the op's struct (RP_API_WRITE_FIELDS first) */
    bool arena;                /* needs RP_API_ARENA bytes for derived strings */
    rp_api_decode_fn decode;
    rp_api_apply_fn apply;
    rp_api_result_fn result;
    rp_api_cleanup_fn cleanup; /* may be NULL */
} rp_api_wdesc;

/* A write's idempotency key (proto/METHODS.md "Idempotency"): taken out
 * of the params and hashed on the caller's thread, checked and recorded in
 * the write's transaction (ops_idem.c). n == 0: no key. */
typedef struct rp_api_idem {
    char key[RP_IDEM_KEY_MAX];
    size_t n;
    uint8_t hash[RP_IDEM_HASH];  /* SipHash-2-4-128 of (method, params without the key) */
    bool replayed;               /* the reply is the first request's (set by the write) */
    msgpack_sbuffer reply;       /* the result bytes to send (owned; zeroed = empty) */
} rp_api_idem;

/* The header every write request starts with. */
#define RP_API_WRITE_FIELDS                                                                    \
    rp_write_req wr;           /* handed to the writer */                                      \
    rp_api_req rq;             /* reply context, copied */                                     \
    const rp_api_wdesc *desc;  /* the op */                                                    \
    void *block;               /* the deep copy of the params (one malloc) */                  \
    msgpack_object params;     /* ... rooted here */                                           \
    rp_arena arena;            /* desc->arena: RP_API_ARENA bytes after the struct; else empty */ \
    char canon[RP_ID_MAX];     /* canonical id after the write (set by apply) */               \
    size_t canon_n;                                                                            \
    rp_api_idem idem;          /* the idempotency key, when given (ops_idem.c) */          \
    rp_cluster_wait cw;        /* cluster mode: waiting for the entry's apply */

struct rp_api_write {
    RP_API_WRITE_FIELDS
};

/* The header of an op's request p (any struct that starts with
 * RP_API_WRITE_FIELDS: the sizeof checks that p has them), and the op's
 * request of header w. */
#define RP_API_WHDR(p) ((void)sizeof((p)->desc), (rp_api_write *)(void *)(p))
#define RP_API_WOP(type, w) ((type *)(void *)(w))

/* Run write op d for rq: check params' keys against d->keys, allocate the
 * request (d->size, plus the arena when d->arena) with a private deep copy
 * of params, decode it (d->decode) and submit it to the writer. Any failure
 * before the submit replies at once (BAD_REQUEST and friends, or
 * UNAVAILABLE when out of memory) and frees the request. After the submit
 * the reply comes from the writer thread (or UNAVAILABLE on a full queue).
 * params is only read during the call. */
void rp_api_write_run(rp_api_req *rq, const msgpack_object *params, const rp_api_wdesc *d);

/* Import's descriptor (ops_bulk.c), for the entries of the cluster log. */
extern const rp_api_wdesc rp_api_wdesc_import;

/* Cluster mode (cluster.h rp_cluster_apply_fn, ctx: the rp_api): apply one
 * log entry — the write op named op with params, decided at time now (the
 * entry's time, never this node's clock) — in txn, exactly as
 * rp_api_write_run's steps would on a single node: idempotency key, keys,
 * decode, the op's apply(); res gets the outcome (an error of the request
 * is an outcome: res->rc) and the packed result. Returns RP_OK, or
 * RP_STORE_FULL / RP_UNAVAILABLE / RP_INTERNAL for a failure of this node
 * (the batch is retried; nothing is recorded as the entry's outcome). */
rp_err rp_api_apply_entry(void *ctx, MDB_txn *txn, rp_str op, int64_t now, const msgpack_object *params,
                          rp_cluster_result *res, rp_errbuf *eb);

/* --- idempotency keys (ops_idem.c) ---------------------------------------- */

/* Caller's thread: take `idempotency_key` out of w's copied params (so that
 * the op never sees it), check it (1..128 printable bytes, no space) and
 * hash (w->rq.op's name, the remaining params in canonical form: map
 * entries sorted by key, integers in their shortest encoding) into w->idem.
 * No key (absent or nil) leaves w->idem.n 0. Returns RP_OK,
 * RP_BAD_REQUEST (a bad key), RP_UNAVAILABLE (out of memory). */
rp_err rp_api_idem_prepare(rp_api_write *w, rp_errbuf *eb);

/* Writer thread, in the write's transaction, for a write with a key: a
 * live key with the same hash copies the first result into w->idem.reply
 * and sets replayed, changing nothing; the same key with another hash is
 * RP_CONFLICT; otherwise the op's apply() runs, its result is packed into
 * w->idem.reply and recorded under the key in the same transaction. A
 * failing apply() records nothing. May run more than once (writer.h).
 * Returns RP_OK or the failure. */
rp_err rp_api_idem_apply(rp_api_write *w, MDB_txn *txn, rp_errbuf *eb);

/* Copy a canonical id into w->canon (truncated to RP_ID_MAX: ids never
 * exceed it). w is any op's request (the macro takes its header), so an
 * apply() passes its own pointer. */
void rp_api_write_set_canon_hdr(rp_api_write *w, rp_str id);
#define rp_api_write_set_canon(w, id) rp_api_write_set_canon_hdr(RP_API_WHDR(w), (id))

#endif
