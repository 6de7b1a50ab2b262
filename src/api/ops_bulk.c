/* ops_bulk.c — import (a batch of records as one write) and export (a page
 * of customers with their events, issues and aliases).
 *
 * import {records: [{type, ...}], strict?} is ONE request to the writer, so
 * the batch commits once. Each record runs in its own nested transaction
 * (a child of the request's): in the default, non-strict mode a record that
 * fails is rolled back alone, counted as skipped and reported with its
 * index, and the others commit. In strict mode every record is decoded on
 * the caller's thread first (a bad one is refused before the writer sees
 * anything), and a record the store refuses fails the whole request, so
 * nothing commits. Failures of the store itself (map full, out of memory,
 * corruption) always fail the request: the writer grows the map and runs it
 * again, and a record must never be "skipped" because the disk was full.
 * Customers keep the version and updated_at they carry (a restore), so that
 * export -> import -> export gives the same bytes. An alias record
 * ({type: alias, id, customer_id}: a merged-away id) is written by
 * rp_store_wput_alias; its customer must already be there (NOT_FOUND "alias
 * target 'X' does not exist (import the customer first)"), which export's
 * order guarantees.
 *
 * Events are idempotent (rp_store_wappend_event): an event whose event_id
 * the customer has, or one without an event_id whose exact bytes are at
 * the (ts, seq) it carries, stores nothing; it counts as imported (it is
 * in the store, as asked) and also in `duplicates`. An exported event
 * carries its seq and is stored at that (ts, seq) when the key is free, so
 * re-importing an export changes nothing and importing it into an empty
 * store gives the same keys.
 *
 * export {after?, limit?} walks customers in id order from `after` and
 * emits, per customer, the customer record, its events oldest to newest
 * (each with its `seq`, so the (ts, seq) that identifies it goes along),
 * its issues and its aliases (in id order) — the NDJSON line objects with
 * their "type". A customer's aliases always follow it on the same page, so
 * a streamed import meets the survivor first. A page stops at
 * `limit` customers or when it passes a byte budget (a quarter of
 * max_output_bytes), whichever comes first, but always holds at least one
 * customer; `next` is the id to pass as `after` for the next page.
 *
 * Limits: a customer's events are all read into one array for the page
 * (bounded by retention_max_events). Import reports at most
 * RP_IMPORT_ERRORS_MAX errors in detail; the rest are only counted.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "api/ops.h"
#include "model/codec.h"
#include "model/ident.h"

#define RP_IMPORT_ERRORS_MAX 1000
#define EXPORT_DEFAULT 100
#define EXPORT_MAX 1000
#define EXPORT_HISTORY_PAGE 256

/* --- import ------------------------------------------------------------------------------ */

typedef enum { REC_CUSTOMER, REC_EVENT, REC_ISSUE, REC_ALIAS } rec_type;

typedef struct import_err {
    uint32_t index;
    rp_err code;
    char msg[RP_ERRMSG_MAX];
} import_err;

/* The import request: the common write header, the batch, its outcome and
 * the scratch records each record is decoded into. */
typedef struct rp_api_wimport {
    RP_API_WRITE_FIELDS
    const msgpack_object *records; /* the array, inside the request's copy */
    bool strict;
    uint32_t imported, skipped;
    uint32_t duplicates;           /* of imported: events already stored, nothing written */
    import_err *errs;              /* the first RP_IMPORT_ERRORS_MAX failures (owned) */
    uint32_t nerrs;
    rp_customer c;                 /* scratch: the record being decoded */
    rp_event e;
    rp_issue is;
    rp_str alias_id, alias_to;     /* an alias record: id, customer_id */
} rp_api_wimport;

/* The type of record o, or an error sentence. */
static rp_err record_type(const msgpack_object *o, rec_type *t, rp_errbuf *eb) {
    if (o->type != MSGPACK_OBJECT_MAP) return rp_errf(eb, RP_BAD_REQUEST, "a record must be a map");
    rp_str ts;
    rp_err rc = rp_mp_str(o, "type", &ts, eb);
    if (rc == RP_NOT_FOUND)
        return rp_errf(eb, RP_BAD_REQUEST, "missing field 'type' (customer, event, issue or alias)");
    if (rc != RP_OK) return rc;
    if (rp_str_eqc(ts, "customer")) *t = REC_CUSTOMER;
    else if (rp_str_eqc(ts, "event")) *t = REC_EVENT;
    else if (rp_str_eqc(ts, "issue")) *t = REC_ISSUE;
    else if (rp_str_eqc(ts, "alias")) *t = REC_ALIAS;
    else return rp_errf(eb, RP_BAD_REQUEST, "field 'type' must be customer, event, issue or alias");
    return RP_OK;
}

/* An alias record {type, id, customer_id}: both ids required and valid, no
 * other field, none twice (the codec's rules for records). The slices
 * point into o. */
static rp_err alias_decode(const msgpack_object *o, rp_str *id, rp_str *to, rp_errbuf *eb) {
    static const char *const names[] = {"id", "customer_id"};
    rp_str *outs[] = {id, to};
    bool seen[2] = {false, false};
    assert(o->type == MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return rp_errf(eb, RP_BAD_REQUEST, "field names must be strings (got %s)",
                           rp_mp_type_name(&kv->key));
        rp_str key = {kv->key.via.str.ptr, kv->key.via.str.size};
        if (rp_str_eqc(key, "type")) continue;
        int f = rp_str_eqc(key, names[0]) ? 0 : rp_str_eqc(key, names[1]) ? 1 : -1;
        if (f < 0) {
            char shown[40];
            size_t n = key.n < sizeof shown - 1 ? key.n : sizeof shown - 1;
            for (size_t j = 0; j < n; j++)
                shown[j] = (key.p[j] >= 0x20 && key.p[j] < 0x7f) ? key.p[j] : '?';
            shown[n] = '\0';
            return rp_errf(eb, RP_BAD_REQUEST, "unknown field '%s'", shown);
        }
        if (seen[f]) return rp_errf(eb, RP_BAD_REQUEST, "field '%s' is given twice", names[f]);
        seen[f] = true;
        if (kv->val.type != MSGPACK_OBJECT_STR)
            return rp_errf(eb, RP_BAD_REQUEST, "field '%s' must be a string (got %s)", names[f],
                           rp_mp_type_name(&kv->val));
        *outs[f] = (rp_str){kv->val.via.str.ptr, kv->val.via.str.size};
        rp_err rc = rp_id_check(*outs[f], names[f], eb);
        if (rc != RP_OK) return rc;
    }
    for (int f = 0; f < 2; f++)
        if (!seen[f]) return rp_errf(eb, RP_BAD_REQUEST, "missing field '%s'", names[f]);
    return RP_OK;
}

/* Decode record o into w's scratch records (w->c / w->e / w->is, strings
 * derived into w->arena, which is reset per record). */
static rp_err record_decode(rp_api_wimport *w, const msgpack_object *o, rec_type *t, rp_errbuf *eb) {
    rp_err rc = record_type(o, t, eb);
    if (rc != RP_OK) return rc;
    w->arena.used = 0;
    const char *country = rp_api_config(w->rq.api)->default_country;
    switch (*t) {
    case REC_CUSTOMER: return rp_customer_decode(o, RP_DEC_WIRE, country, &w->arena, &w->c, eb);
    case REC_EVENT: return rp_event_decode(o, RP_DEC_WIRE, &w->e, eb);
    case REC_ISSUE: return rp_issue_decode_as(o, RP_DEC_WIRE, rp_api_config(w->rq.api)->issue_numbers, &w->is, eb);
    case REC_ALIAS: return alias_decode(o, &w->alias_id, &w->alias_to, eb);
    }
    return rp_errf(eb, RP_INTERNAL, "unknown record type");
}

/* Apply one decoded record inside txn. *dup: an event that was already
 * stored (same event_id, or the same event at the (ts, seq) it carries). */
static rp_err record_apply(rp_api_wimport *w, MDB_txn *txn, rec_type t, bool *dup, rp_errbuf *eb) {
    *dup = false;
    rp_store *s = rp_api_store(w->rq.api);
    switch (t) {
    case REC_CUSTOMER: {
        rp_put_opts o = {.restore = w->c.version != 0, .now = w->rq.now};
        uint64_t v;
        return rp_store_wput_customer(s, txn, &w->c, &o, &v, NULL, eb);
    }
    case REC_EVENT: {
        rp_cursor at;
        return rp_store_wappend_event(s, txn, &w->e, w->rq.now, &at, dup, NULL, eb);
    }
    case REC_ISSUE: return rp_store_wput_issue(s, txn, &w->is, w->rq.now, NULL, eb);
    case REC_ALIAS: return rp_store_wput_alias(s, txn, w->alias_id, w->alias_to, eb);
    }
    return rp_errf(eb, RP_INTERNAL, "unknown record type");
}

/* Errors that are the store's, not the record's: they fail the request. */
static bool systemic(rp_err rc) {
    return rc == RP_STORE_FULL || rc == RP_UNAVAILABLE || rc == RP_INTERNAL;
}

/* Count a skipped record and keep its error (the first ones only). */
static void import_note(rp_api_wimport *w, uint32_t index, rp_err code, const rp_errbuf *eb) {
    w->skipped++;
    if (w->nerrs >= RP_IMPORT_ERRORS_MAX || w->errs == NULL) return;
    import_err *e = &w->errs[w->nerrs++];
    e->index = index;
    e->code = code;
    snprintf(e->msg, sizeof e->msg, "%s", eb->msg[0] ? eb->msg : rp_err_text(code));
}

/* Run one record in a child transaction of txn; *dup as record_apply. */
static rp_err import_one(rp_api_wimport *w, MDB_txn *txn, const msgpack_object *o, bool *dup,
                         rp_errbuf *eb) {
    rec_type t;
    rp_err rc = record_decode(w, o, &t, eb);
    if (rc != RP_OK) return rc;
    MDB_txn *child;
    int mrc = mdb_txn_begin(rp_store_env(rp_api_store(w->rq.api)), txn, 0, &child);
    if (mrc != 0)
        return rp_errf(eb, rp_err_from_mdb(mrc) == RP_OK ? RP_INTERNAL : rp_err_from_mdb(mrc),
                       "import: cannot begin a nested transaction: %s", mdb_strerror(mrc));
    rc = record_apply(w, child, t, dup, eb);
    if (rc != RP_OK) {
        mdb_txn_abort(child);
        return rc;
    }
    mrc = mdb_txn_commit(child);
    if (mrc != 0) {
        rp_err code = rp_err_from_mdb(mrc);
        return rp_errf(eb, code == RP_OK ? RP_INTERNAL : code, "import: %s", mdb_strerror(mrc));
    }
    return RP_OK;
}

/* The fast path: every record applied in ONE child transaction of txn.
 * LMDB merges a child's dirty pages into its parent on commit, so a child
 * per record costs O(dirty pages) each, quadratic over a big batch; valid
 * batches (the common case) pay that once. Returns RP_OK when every record
 * went in (committed into txn), or the first record's failure, in which
 * case nothing of the batch is left in txn. */
static rp_err import_fast(rp_api_wimport *w, MDB_txn *txn) {
    const msgpack_object *recs = w->records;
    MDB_txn *child;
    if (mdb_txn_begin(rp_store_env(rp_api_store(w->rq.api)), txn, 0, &child) != 0) return RP_UNAVAILABLE;
    uint32_t dups = 0;
    for (uint32_t i = 0; i < recs->via.array.size; i++) {
        rp_errbuf reb = {0};
        rec_type t;
        bool dup = false;
        rp_err rc = record_decode(w, &recs->via.array.ptr[i], &t, &reb);
        if (rc == RP_OK) rc = record_apply(w, child, t, &dup, &reb);
        if (rc != RP_OK) {
            mdb_txn_abort(child);
            return rc;
        }
        dups += dup;
    }
    if (mdb_txn_commit(child) != 0) return RP_UNAVAILABLE;
    w->imported = recs->via.array.size;
    w->duplicates = dups;
    return RP_OK;
}

/* The fast path first; when a record fails, every record again in order,
 * each in its own child transaction, so that a bad record is skipped (or,
 * strict, refuses the batch) without losing the others. */
static rp_err import_records(rp_api_wimport *w, MDB_txn *txn, rp_errbuf *eb) {
    if (import_fast(w, txn) == RP_OK) return RP_OK;
    const msgpack_object *recs = w->records;
    for (uint32_t i = 0; i < recs->via.array.size; i++) {
        rp_errbuf reb = {0};
        bool dup = false;
        rp_err rc = import_one(w, txn, &recs->via.array.ptr[i], &dup, &reb);
        if (rc == RP_OK) {
            w->imported++;
            w->duplicates += dup;
            continue;
        }
        if (systemic(rc))
            return rp_errf(eb, rc, "records[%u]: %s", i, reb.msg[0] ? reb.msg : rp_err_text(rc));
        if (w->strict) /* the batch is a bad request; the record's own code is kept in words */
            return rp_errf(eb, RP_BAD_REQUEST, "records[%u]: %s: %s", i, rp_err_code(rc),
                           reb.msg[0] ? reb.msg : rp_err_text(rc));
        import_note(w, i, rc, &reb);
    }
    return RP_OK;
}

/* Writer thread: the records, with the digests of the customers whose
 * events they add rebuilt once at the end (rp_store_wdigest_defer) rather
 * than rewritten by every event. */
static rp_err apply_import(rp_api_write *hw, MDB_txn *txn, rp_errbuf *eb) {
    rp_api_wimport *w = RP_API_WOP(rp_api_wimport, hw);
    rp_store *s = rp_api_store(w->rq.api);
    w->imported = w->skipped = w->nerrs = w->duplicates = 0; /* the writer may run us again */
    rp_store_wdigest_defer(s);
    rp_err rc = import_records(w, txn, eb);
    if (rc != RP_OK) {
        rp_store_wdigest_drop(s);
        return rc;
    }
    return rp_store_wdigest_flush(s, txn, eb);
}

/* {imported, skipped, errors, duplicates[, errors_truncated]}. */
static void pack_import_result(msgpack_packer *pk, const rp_api_wimport *st) {
    bool truncated = st->nerrs < st->skipped;
    msgpack_pack_map(pk, 4 + (truncated ? 1 : 0));
    rp_api_kv_uint(pk, "imported", st->imported);
    rp_api_kv_uint(pk, "skipped", st->skipped);
    rp_mp_pack_cstr(pk, "errors");
    msgpack_pack_array(pk, st->nerrs);
    for (uint32_t i = 0; i < st->nerrs; i++) {
        msgpack_pack_map(pk, 3);
        rp_api_kv_uint(pk, "index", st->errs[i].index);
        rp_api_kv_str(pk, "code", rp_str_c(rp_err_code(st->errs[i].code)));
        rp_api_kv_str(pk, "message", rp_str_c(st->errs[i].msg));
    }
    rp_api_kv_uint(pk, "duplicates", st->duplicates);
    if (truncated) rp_api_kv_bool(pk, "errors_truncated", true);
}

/* Result of an import request. */
static void result_import(rp_api_write *hw, msgpack_packer *pk) {
    pack_import_result(pk, RP_API_WOP(rp_api_wimport, hw));
}

/* Free the error list. */
static void cleanup_import(rp_api_write *hw) { free(RP_API_WOP(rp_api_wimport, hw)->errs); }

/* Strict mode: decode every record now, refusing the batch at the first bad
 * one with its index. */
static rp_err import_prevalidate(rp_api_wimport *w, const msgpack_object *recs, rp_errbuf *eb) {
    for (uint32_t i = 0; i < recs->via.array.size; i++) {
        rp_errbuf reb = {0};
        rec_type t;
        rp_err rc = record_decode(w, &recs->via.array.ptr[i], &t, &reb);
        if (rc != RP_OK)
            return rp_errf(eb, rc, "records[%u]: %s", i, reb.msg[0] ? reb.msg : rp_err_text(rc));
    }
    return RP_OK;
}

/* Caller's thread: {records, strict?}. Room for the error list (non-strict),
 * or every record decoded now (strict). */
static rp_err decode_import(rp_api_write *hw, const char **what, rp_errbuf *eb) {
    (void)what;
    rp_api_wimport *w = RP_API_WOP(rp_api_wimport, hw);
    rp_err rc = rp_api_param_bool(&w->params, "strict", false, &w->strict, eb);
    if (rc != RP_OK) return rc;
    const msgpack_object *recs = rp_mp_get(&w->params, "records");
    if (recs == NULL || recs->type == MSGPACK_OBJECT_NIL)
        return rp_errf(eb, RP_BAD_REQUEST, "missing parameter 'records'");
    if (recs->type != MSGPACK_OBJECT_ARRAY)
        return rp_errf(eb, RP_BAD_REQUEST, "parameter 'records' must be an array");
    w->records = recs;
    if (w->strict) return import_prevalidate(w, recs, eb);
    size_t nerr = recs->via.array.size < RP_IMPORT_ERRORS_MAX ? recs->via.array.size
                                                              : RP_IMPORT_ERRORS_MAX;
    if (nerr && (w->errs = rp_calloc(nerr, sizeof *w->errs)) == NULL)
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory; retry");
    return RP_OK;
}

const rp_api_wdesc rp_api_wdesc_import = {
    .keys = (const char *const[]){"records", "strict", NULL},
    .size = sizeof(rp_api_wimport),
    .arena = true,
    .decode = decode_import,
    .apply = apply_import,
    .result = result_import,
    .cleanup = cleanup_import,
};

/* import {records, strict?} -> {imported, skipped, errors: [{index, code,
 * message}], duplicates}. */
void rp_op_import(rp_api_req *rq, const msgpack_object *params) {
    rp_api_write_run(rq, params, &rp_api_wdesc_import);
}

/* --- export -------------------------------------------------------------------------------- */

typedef struct export_page {
    rp_store *s;
    MDB_txn *txn;
    msgpack_sbuffer body;  /* the records, packed one after another */
    msgpack_packer pk;
    msgpack_sbuffer tmp;   /* one record before it gets its "type" */
    msgpack_packer tpk;
    uint32_t nrecords, customers, limit;
    size_t budget;
    bool more;
    char first[RP_ID_MAX]; /* the page's first customer (for the audit line) */
    size_t first_n;
    char last[RP_ID_MAX];
    size_t last_n;
    rp_str alias_of;       /* the customer whose aliases export_alias emits */
    rp_event *evs;         /* one customer's history, newest first */
    uint32_t evcap;
    rp_err rc;
    rp_errbuf *eb;
} export_page;

/* Pack the record just encoded into tmp with its "type", into body. */
static bool export_emit(export_page *pg, const char *type) {
    bool ok = rp_api_pack_typed(&pg->pk, type, pg->tmp.data, pg->tmp.size);
    msgpack_sbuffer_clear(&pg->tmp);
    if (!ok) {
        pg->rc = rp_errf(pg->eb, RP_INTERNAL, "export: a %s did not encode as a map", type);
        return false;
    }
    pg->nrecords++;
    return true;
}

/* Read every event of customer id (newest first) into pg->evs. */
static rp_err export_history(export_page *pg, rp_str id, uint32_t *n) {
    *n = 0;
    bool more = true;
    rp_cursor cur, *before = NULL;
    while (more) {
        if (pg->evcap - *n < EXPORT_HISTORY_PAGE) {
            if (pg->evcap > UINT32_MAX / 2 - EXPORT_HISTORY_PAGE)
                return rp_errf(pg->eb, RP_TOO_LARGE, "export: too many events for one customer");
            uint32_t cap = pg->evcap ? pg->evcap * 2 : EXPORT_HISTORY_PAGE * 4;
            rp_event *a = rp_realloc(pg->evs, (size_t)cap * sizeof *a);
            if (a == NULL) return rp_errf(pg->eb, RP_UNAVAILABLE, "out of memory exporting events");
            pg->evs = a;
            pg->evcap = cap;
        }
        uint32_t got = 0;
        rp_cursor next;
        rp_err rc = rp_store_history(pg->s, pg->txn, id, RP_STORE_CANONICAL, before, EXPORT_HISTORY_PAGE,
                                     pg->evs + *n, &got, &more, &next, pg->eb);
        if (rc != RP_OK) return rc;
        *n += got;
        cur = next;
        before = &cur;
    }
    return RP_OK;
}

/* One alias of the customer being exported: {type: alias, id, customer_id}. */
static bool export_alias(rp_str alias, void *arg) {
    export_page *pg = arg;
    msgpack_pack_map(&pg->tpk, 2);
    rp_mp_pack_cstr(&pg->tpk, "id");
    rp_mp_pack_str(&pg->tpk, alias);
    rp_mp_pack_cstr(&pg->tpk, "customer_id");
    rp_mp_pack_str(&pg->tpk, pg->alias_of);
    return export_emit(pg, "alias");
}

/* One customer of the scan: its record, its events oldest first, its
 * issues, its aliases. Returns false to stop (page full, or an error in
 * pg->rc). */
static bool export_customer(const rp_customer *c, void *arg) {
    export_page *pg = arg;
    if (pg->customers >= pg->limit || (pg->customers > 0 && pg->body.size >= pg->budget)) {
        pg->more = true;
        return false;
    }
    rp_customer_encode(&pg->tpk, c, RP_ENC_WIRE);
    if (!export_emit(pg, "customer")) return false;
    uint32_t n;
    if ((pg->rc = export_history(pg, c->id, &n)) != RP_OK) return false;
    for (uint32_t i = n; i-- > 0;) {
        rp_event_encode(&pg->tpk, &pg->evs[i], RP_ENC_WIRE | RP_ENC_SEQ);
        if (!export_emit(pg, "event")) return false;
    }
    rp_issue *is = NULL;
    uint32_t ni = 0;
    bool truncated;
    if ((pg->rc = rp_api_all_issues(pg->s, pg->txn, c->id, &is, &ni, &truncated, pg->eb)) != RP_OK)
        return false;
    bool ok = true;
    for (uint32_t i = 0; i < ni && ok; i++) {
        rp_issue_encode(&pg->tpk, &is[i], RP_ENC_WIRE);
        ok = export_emit(pg, "issue");
    }
    free(is);
    if (!ok) return false;
    pg->alias_of = c->id;
    rp_err arc = rp_store_aliases_of(pg->s, pg->txn, c->id, export_alias, pg, pg->eb);
    if (arc != RP_OK) pg->rc = arc;
    if (pg->rc != RP_OK) return false;
    size_t idn = c->id.n < sizeof pg->last ? c->id.n : sizeof pg->last;
    memcpy(pg->last, c->id.p, idn);
    pg->last_n = idn;
    if (pg->customers == 0) {
        memcpy(pg->first, c->id.p, idn);
        pg->first_n = idn;
    }
    pg->customers++;
    return true;
}

/* export {after?, limit?} -> {records: [...], next: id or nil}. Audited:
 * one line per page with its count and first and last ids. */
void rp_op_export(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"after", "limit", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    int64_t limit = EXPORT_DEFAULT;
    bool has_limit;
    rp_str after = {NULL, 0};
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_int(params, "limit", 1, EXPORT_MAX, &limit, &has_limit, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    if (rp_mp_get(params, "after") && rp_mp_get(params, "after")->type != MSGPACK_OBJECT_NIL &&
        (rc = rp_api_param_id(params, "after", &after, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    export_page pg = {.s = rp_api_store(rq->api), .limit = (uint32_t)limit, .eb = &eb};
    pg.budget = rp_api_config(rq->api)->max_output_bytes / 4;
    if ((rc = rp_store_rbegin(pg.s, &pg.txn, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    msgpack_sbuffer_init(&pg.body);
    msgpack_packer_init(&pg.pk, &pg.body, msgpack_sbuffer_write);
    msgpack_sbuffer_init(&pg.tmp);
    msgpack_packer_init(&pg.tpk, &pg.tmp, msgpack_sbuffer_write);
    rc = rp_store_scan_customers(pg.s, pg.txn, after, export_customer, &pg, &eb);
    rp_store_rend(pg.s, pg.txn);
    if (rc == RP_OK) rc = pg.rc;
    if (rc != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
    } else {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        rp_mp_pack_cstr(&pk, "records");
        msgpack_pack_array(&pk, pg.nrecords);
        if (pg.body.size) msgpack_sbuffer_write(&sb, pg.body.data, pg.body.size);
        rp_mp_pack_cstr(&pk, "next");
        if (pg.more) rp_mp_pack_str(&pk, (rp_str){pg.last, pg.last_n});
        else msgpack_pack_nil(&pk);
        rp_api_audit_page(rq, pg.customers, (rp_str){pg.first, pg.first_n},
                          (rp_str){pg.last, pg.last_n});
        rp_api_ok(rq, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_sbuffer_destroy(&pg.body);
    msgpack_sbuffer_destroy(&pg.tmp);
    free(pg.evs);
}
