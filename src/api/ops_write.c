/* ops_write.c — the single-record writes: customer.put, customer.patch,
 * customer.forget, customer.merge, event.append, issue.put; and the
 * asynchronous write request they (and import) share. Each op is a request
 * struct (RP_API_WRITE_FIELDS first, then its own fields), a decode, apply
 * and result function, and one static rp_api_wdesc that names them with the
 * op's allowed keys; its rp_op_* handler only runs the descriptor.
 *
 * A write takes three steps on two threads:
 *
 *   1. caller's thread (rp_api_write_run, the one skeleton): the op's
 *      request is allocated and the params are deep-copied into one heap
 *      block (the caller's buffer is gone once rp_api_call returns), the
 *      idempotency key is taken out and the request hashed (ops_idem.c),
 *      the keys are checked against the op's descriptor, and the params are
 *      decoded and validated from
 *      the copy by the op's decode() — a bad request replies at once and
 *      never reaches the writer — and the request is submitted;
 *   2. writer thread, inside the batch's transaction: apply() makes the
 *      change with the rp_store_w* functions. It may run more than once (the
 *      writer retries a batch after growing the map), so it only sets fields
 *      of its own request;
 *   3. writer thread, after the commit: done() packs the result, replies,
 *      and frees the request. A full queue replies UNAVAILABLE at step 1.
 *      With an idempotency key, step 2 checks the key first and packs the
 *      result inside the transaction, to record it with the key; step 3
 *      then sends those bytes (or the first request's, on a repeat).
 *
 * The deep copy is one malloc: a first pass sizes the containers and the
 * string bytes, a second copies them (containers first, aligned, then the
 * bytes). Its cost is linear in the params and recursion follows their
 * nesting, which the network layer bounds (rp_mpcheck max_depth).
 */
#include <assert.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "api/cursor.h"
#include "api/ops.h"
#include "model/codec.h"

/* --- deep copy of a msgpack_object ------------------------------------------------ */

typedef struct clone_size {
    size_t nodes; /* bytes of arrays and maps */
    size_t bytes; /* bytes of str, bin and ext payloads */
    bool overflow;
} clone_size;

/* acc += n, noting an overflow instead of wrapping. */
static void size_add(size_t *acc, size_t n, bool *overflow) {
    if (n > SIZE_MAX / 2 - *acc) *overflow = true;
    else *acc += n;
}

/* First pass: how much memory the copy of o needs. */
static void clone_measure(const msgpack_object *o, clone_size *sz) {
    switch (o->type) {
    case MSGPACK_OBJECT_STR: size_add(&sz->bytes, o->via.str.size, &sz->overflow); break;
    case MSGPACK_OBJECT_BIN: size_add(&sz->bytes, o->via.bin.size, &sz->overflow); break;
    case MSGPACK_OBJECT_EXT: size_add(&sz->bytes, o->via.ext.size, &sz->overflow); break;
    case MSGPACK_OBJECT_ARRAY:
        size_add(&sz->nodes, (size_t)o->via.array.size * sizeof(msgpack_object), &sz->overflow);
        for (uint32_t i = 0; i < o->via.array.size; i++) clone_measure(&o->via.array.ptr[i], sz);
        break;
    case MSGPACK_OBJECT_MAP:
        size_add(&sz->nodes, (size_t)o->via.map.size * sizeof(msgpack_object_kv), &sz->overflow);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            clone_measure(&o->via.map.ptr[i].key, sz);
            clone_measure(&o->via.map.ptr[i].val, sz);
        }
        break;
    default: break;
    }
}

typedef struct clone_cur {
    char *nodes; /* next free container slot */
    char *bytes; /* next free payload byte */
} clone_cur;

/* Copy n payload bytes into the block; returns where they went. */
static const char *clone_bytes(clone_cur *cur, const char *p, size_t n) {
    char *dst = cur->bytes;
    if (n) memcpy(dst, p, n);
    cur->bytes += n;
    return dst;
}

/* Second pass: copy src into dst, taking memory from cur. */
static void clone_copy(const msgpack_object *src, msgpack_object *dst, clone_cur *cur) {
    *dst = *src;
    switch (src->type) {
    case MSGPACK_OBJECT_STR:
        dst->via.str.ptr = clone_bytes(cur, src->via.str.ptr, src->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        dst->via.bin.ptr = clone_bytes(cur, src->via.bin.ptr, src->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        dst->via.ext.ptr = clone_bytes(cur, src->via.ext.ptr, src->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY: {
        msgpack_object *a = (msgpack_object *)(void *)cur->nodes;
        cur->nodes += (size_t)src->via.array.size * sizeof *a;
        dst->via.array.ptr = src->via.array.size ? a : NULL;
        for (uint32_t i = 0; i < src->via.array.size; i++)
            clone_copy(&src->via.array.ptr[i], &a[i], cur);
        break;
    }
    case MSGPACK_OBJECT_MAP: {
        msgpack_object_kv *kv = (msgpack_object_kv *)(void *)cur->nodes;
        cur->nodes += (size_t)src->via.map.size * sizeof *kv;
        dst->via.map.ptr = src->via.map.size ? kv : NULL;
        for (uint32_t i = 0; i < src->via.map.size; i++) {
            clone_copy(&src->via.map.ptr[i].key, &kv[i].key, cur);
            clone_copy(&src->via.map.ptr[i].val, &kv[i].val, cur);
        }
        break;
    }
    default: break;
    }
}

/* Copy o into one malloc'd block (*block, freed with free()). Returns false
 * when out of memory. */
static bool clone_object(const msgpack_object *o, msgpack_object *out, void **block) {
    clone_size sz = {0, 0, false};
    clone_measure(o, &sz);
    if (sz.overflow) return false;
    /* containers hold pointers and 64-bit values: keep them first, aligned */
    static_assert(sizeof(msgpack_object) % alignof(msgpack_object) == 0, "object alignment");
    static_assert(sizeof(msgpack_object_kv) % alignof(msgpack_object) == 0, "kv alignment");
    char *p = rp_malloc(sz.nodes + sz.bytes + 1);
    if (p == NULL) return false;
    clone_cur cur = {p, p + sz.nodes};
    clone_copy(o, out, &cur);
    assert(cur.nodes == p + sz.nodes && cur.bytes == p + sz.nodes + sz.bytes);
    *block = p;
    return true;
}

/* --- the write request ---------------------------------------------------------------- */

/* The writer's entry point: the op's apply(), behind its idempotency key
 * when one was given (ops_idem.c). */
static rp_err write_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    rp_api_write *w = arg;
    if (w->idem.n) return rp_api_idem_apply(w, txn, eb);
    return w->desc->apply(w, txn, eb);
}

/* Free a write request that is not (or no longer) the writer's: the op's
 * cleanup, the params copy, the request. NULL is ignored. */
static void write_free(rp_api_write *w) {
    if (w == NULL) return;
    if (w->desc->cleanup) w->desc->cleanup(w);
    msgpack_sbuffer_destroy(&w->idem.reply);
    free(w->block);
    free(w);
}

/* After the commit (or the failure), on the writer thread: reply and free.
 * The canonical id apply() kept is noted for the audit line, which
 * rp_api_ok writes for the ops the table audits (customer.forget) — after
 * the commit, never for a write that failed (nor for a replayed one: it
 * changed nothing). A write with an idempotency key replies with the bytes
 * its transaction recorded (or replayed). */
static void write_done(void *arg, rp_err rc, const rp_errbuf *eb) {
    rp_api_write *w = arg;
    if (rc == RP_OK && w->idem.n) {
        if (w->canon_n) rp_api_audit_id(&w->rq, (rp_str){w->canon, w->canon_n});
        rp_api_ok(&w->rq, &w->idem.reply);
    } else if (rc == RP_OK) {
        if (w->canon_n) rp_api_audit_id(&w->rq, (rp_str){w->canon, w->canon_n});
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        w->desc->result(w, &pk);
        rp_api_ok(&w->rq, &sb);
        msgpack_sbuffer_destroy(&sb);
    } else {
        rp_api_fail_rc(&w->rq, rc, eb);
    }
    write_free(w);
}

/* Allocate the request of op d for rq (d->size bytes, zeroed, then the
 * arena when d->arena) with a private deep copy of params (w->params).
 * Returns NULL when out of memory (nothing to free). */
static rp_api_write *write_new(const rp_api_req *rq, const msgpack_object *params,
                               const rp_api_wdesc *d) {
    assert(d->size >= sizeof(rp_api_write));
    rp_api_write *w = rp_calloc(1, d->size + (d->arena ? RP_API_ARENA : 0));
    if (w == NULL) return NULL;
    if (!clone_object(params, &w->params, &w->block)) {
        free(w);
        return NULL;
    }
    w->rq = *rq;
    w->desc = d;
    if (d->arena) w->arena = (rp_arena){(char *)w + d->size, RP_API_ARENA, 0};
    w->wr.fn = write_fn;
    w->wr.done = write_done;
    w->wr.arg = w;
    return w;
}

/* Submit w to the writer; on success the reply comes from the writer thread
 * and w is freed there. On a full queue replies UNAVAILABLE and frees w. */
static void write_submit(rp_api_write *w) {
    assert(w->desc->apply != NULL && w->desc->result != NULL);
    if (rp_store_submit(rp_api_store(w->rq.api), &w->wr) != RP_OK) {
        rp_api_fail(&w->rq, RP_UNAVAILABLE, "the write queue is full or the server is stopping; retry");
        write_free(w);
    }
    /* on success w belongs to the writer until write_done frees it */
}

/* Reply to rq with a validation error, prefixed with field `what` when set. */
static void write_reject(const rp_api_req *rq, rp_err rc, const char *what, const rp_errbuf *eb) {
    char msg[RP_ERRMSG_MAX + 32]; /* room for the prefix; a long sentence is cut */
    const char *text = eb->msg[0] ? eb->msg : rp_err_text(rc);
    int n = snprintf(msg, sizeof msg, "%s%s%s", what ? what : "", what ? ": " : "", text);
    if (n < 0) msg[0] = '\0';
    rp_api_fail(rq, rc, msg);
}

/* --- cluster mode: the write goes through the log ---------------------------------- */

/* The request of waiter wt. */
static rp_api_write *write_of_wait(rp_cluster_wait *wt) {
    return (rp_api_write *)(void *)((char *)wt - offsetof(rp_api_write, cw));
}

/* A duplicate entry (the same idempotency key and request, within the
 * stream's duplicates window): the first request's entry is applied here;
 * answer what it recorded under the key. */
static void write_answer_duplicate(rp_api_write *w) {
    rp_errbuf eb = {0};
    rp_store *s = rp_api_store(w->rq.api);
    MDB_txn *txn = NULL;
    rp_idem_hit hit = {0};
    rp_err rc;
    if (w->idem.n == 0) {
        rc = rp_errf(&eb, RP_UNAVAILABLE, "the write's entry was a duplicate; retry");
        goto fail;
    }
    if ((rc = rp_store_rbegin(s, &txn, &eb)) != RP_OK) goto fail;
    rc = rp_store_idem_get(s, txn, (rp_str){w->idem.key, w->idem.n}, w->idem.hash, w->rq.now, &hit, &eb);
    if (rc == RP_OK && !hit.found)
        rc = rp_errf(&eb, RP_UNAVAILABLE, "the first request with this idempotency key failed; retry");
    if (rc != RP_OK) goto fail;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, hit.result.p, hit.result.n);
    rp_store_rend(s, txn);
    rp_api_ok(&w->rq, &sb);
    msgpack_sbuffer_destroy(&sb);
    return;
fail:
    if (txn) rp_store_rend(s, txn);
    rp_api_fail_rc(&w->rq, rc, &eb);
}

/* The entry of w was applied here (or could not be published): reply with
 * the apply's result, and free w. On the apply thread or a publisher. */
static void write_cluster_done(rp_cluster_wait *wt, const rp_cluster_result *res, bool duplicate) {
    rp_api_write *w = write_of_wait(wt);
    if (duplicate) {
        write_answer_duplicate(w);
    } else if (res->rc == RP_OK) {
        if (res->canon_n) rp_api_audit_id(&w->rq, (rp_str){res->canon, res->canon_n});
        rp_api_ok(&w->rq, &res->reply);
    } else {
        rp_api_fail_rc(&w->rq, res->rc, &res->eb);
    }
    write_free(w);
}

/* Publish w (validated) as a log entry of its original params (the
 * idempotency key included: every node checks and records it at apply).
 * Nats-Msg-Id: "idem.<key>.<hash>" with a key (a retry within the
 * duplicates window is one entry), else a fresh unique id. */
static void write_publish(rp_api_write *w, rp_cluster *cl, const msgpack_object *params) {
    rp_errbuf eb = {0};
    char msgid[8 + RP_IDEM_KEY_MAX + 2 * RP_IDEM_HASH + 2];
    const char *id = NULL;
    if (w->idem.n) {
        int n = snprintf(msgid, sizeof msgid, "idem.%.*s.", (int)w->idem.n, w->idem.key);
        for (size_t i = 0; i < RP_IDEM_HASH && n > 0 && (size_t)n + 3 <= sizeof msgid; i++)
            n += snprintf(msgid + n, sizeof msgid - (size_t)n, "%02x", w->idem.hash[i]);
        id = msgid;
    }
    w->cw.done = write_cluster_done;
    rp_err rc = rp_cluster_publish(cl, &w->cw, w->rq.op->name, w->rq.now, params, id, &eb);
    if (rc != RP_OK) {
        rp_api_fail_rc(&w->rq, rc, &eb);
        write_free(w);
    }
    /* on success w belongs to the cluster until write_cluster_done frees it */
}

void rp_api_write_run(rp_api_req *rq, const msgpack_object *params, const rp_api_wdesc *d) {
    rp_errbuf eb = {0};
    const char *what = NULL;
    rp_api_write *w = NULL;
    rp_err rc;
    if ((w = write_new(rq, params, d)) == NULL) {
        rc = rp_errf(&eb, RP_UNAVAILABLE, "out of memory; retry");
        goto fail;
    }
    /* the key first: every op takes it, and it is not the op's to decode */
    if ((rc = rp_api_idem_prepare(w, &eb)) != RP_OK) goto fail;
    if ((rc = rp_api_check_keys(&w->params, d->keys, &eb)) != RP_OK) goto fail;
    if ((rc = d->decode(w, &what, &eb)) != RP_OK) goto fail;
    rp_cluster *cl = rp_api_cluster(rq->api);
    if (cl != NULL) write_publish(w, cl, params); /* bad input never reaches the log */
    else write_submit(w);
    return;
fail:
    write_reject(rq, rc, what, &eb);
    write_free(w);
}

void rp_api_write_set_canon_hdr(rp_api_write *w, rp_str id) {
    size_t n = id.n < sizeof w->canon ? id.n : sizeof w->canon;
    memcpy(w->canon, id.p, n);
    w->canon_n = n;
}

/* The canonical id kept by apply(). */
static rp_str write_canon(const rp_api_write *w) { return (rp_str){w->canon, w->canon_n}; }


/* The map parameter `key` of the copied params, or NULL (error in eb). */
static msgpack_object *param_map(rp_api_write *w, const char *key, rp_errbuf *eb) {
    msgpack_object *v = (msgpack_object *)rp_mp_get(&w->params, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
        rp_errf(eb, RP_BAD_REQUEST, "missing parameter '%s'", key);
        return NULL;
    }
    if (v->type != MSGPACK_OBJECT_MAP) {
        rp_errf(eb, RP_BAD_REQUEST, "parameter '%s' must be a map", key);
        return NULL;
    }
    return v;
}

/* Optional expect_version of w's params into opts, and the time of the
 * call (opts->now). */
static rp_err param_expect(rp_api_write *w, rp_put_opts *opts, rp_errbuf *eb) {
    int64_t v = 0;
    bool present;
    opts->now = w->rq.now;
    rp_err rc = rp_api_param_int(&w->params, "expect_version", 0, INT64_MAX, &v, &present, eb);
    if (rc != RP_OK) return rc;
    opts->has_expect = present;
    opts->expect_version = (uint64_t)v;
    return RP_OK;
}

/* Pack the result {id: canonical id, version} of a customer write. */
static void pack_id_version(msgpack_packer *pk, const rp_api_write *w, uint64_t version) {
    msgpack_pack_map(pk, 2);
    rp_api_kv_str(pk, "id", write_canon(w));
    rp_api_kv_uint(pk, "version", version);
}

/* --- customer.put ----------------------------------------------------------------------- */

typedef struct rp_api_wput {
    RP_API_WRITE_FIELDS
    rp_str id;              /* the id of the request */
    rp_customer c;          /* the profile (slices into block / arena) */
    rp_put_opts opts;
    msgpack_object_kv *kv;  /* the customer map with "id" added, or NULL (owned) */
    uint64_t version;       /* outcome */
} rp_api_wput;

/* Give the customer map the id of the request when it has none (a new kv
 * array with one more entry; the old one stays inside the block). */
static rp_err customer_with_id(rp_api_wput *w, msgpack_object *cust, rp_errbuf *eb) {
    const msgpack_object *cid = rp_mp_get(cust, "id");
    if (cid != NULL) {
        if (cid->type == MSGPACK_OBJECT_STR &&
            !rp_str_eq((rp_str){cid->via.str.ptr, cid->via.str.size}, w->id))
            return rp_errf(eb, RP_BAD_REQUEST, "customer.id does not match the id of the request");
        return RP_OK; /* other types are refused by the decoder */
    }
    uint32_t n = cust->via.map.size;
    msgpack_object_kv *kv = rp_malloc(((size_t)n + 1) * sizeof *kv);
    if (kv == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    if (n) memcpy(kv, cust->via.map.ptr, (size_t)n * sizeof *kv);
    kv[n].key.type = MSGPACK_OBJECT_STR;
    kv[n].key.via.str.ptr = "id";
    kv[n].key.via.str.size = 2;
    kv[n].val.type = MSGPACK_OBJECT_STR;
    kv[n].val.via.str.ptr = w->id.p;
    kv[n].val.via.str.size = (uint32_t)w->id.n;
    cust->via.map.ptr = kv;
    cust->via.map.size = n + 1;
    w->kv = kv;
    return RP_OK;
}

/* Caller's thread: {id, customer, expect_version?}; customer.id must equal
 * id when given. */
static rp_err decode_customer_put(rp_api_write *hw, const char **what, rp_errbuf *eb) {
    rp_api_wput *w = RP_API_WOP(rp_api_wput, hw);
    rp_err rc;
    msgpack_object *cust;
    if ((rc = rp_api_param_id(&w->params, "id", &w->id, eb)) != RP_OK ||
        (rc = param_expect(hw, &w->opts, eb)) != RP_OK)
        return rc;
    if ((cust = param_map(hw, "customer", eb)) == NULL) return RP_BAD_REQUEST;
    if ((rc = customer_with_id(w, cust, eb)) != RP_OK) return rc;
    const char *country = rp_api_config(w->rq.api)->default_country;
    *what = "customer";
    return rp_customer_decode(cust, RP_DEC_WIRE, country, &w->arena, &w->c, eb);
}

/* Writer thread: store the whole profile. */
static rp_err apply_customer_put(rp_api_write *hw, MDB_txn *txn, rp_errbuf *eb) {
    rp_api_wput *w = RP_API_WOP(rp_api_wput, hw);
    rp_store_id canon;
    rp_err rc = rp_store_wput_customer(rp_api_store(w->rq.api), txn, &w->c, &w->opts,
                                       &w->version, &canon, eb);
    if (rc != RP_OK) return rc;
    rp_api_write_set_canon(w, rp_store_id_str(&canon));
    return RP_OK;
}

/* Result {id, version}. */
static void result_customer_put(rp_api_write *hw, msgpack_packer *pk) {
    pack_id_version(pk, hw, RP_API_WOP(rp_api_wput, hw)->version);
}

/* Free the customer map customer_with_id made. */
static void cleanup_customer_put(rp_api_write *hw) { free(RP_API_WOP(rp_api_wput, hw)->kv); }

static const rp_api_wdesc wdesc_customer_put = {
    .keys = (const char *const[]){"id", "customer", "expect_version", NULL},
    .size = sizeof(rp_api_wput),
    .arena = true,
    .decode = decode_customer_put,
    .apply = apply_customer_put,
    .result = result_customer_put,
    .cleanup = cleanup_customer_put,
};

/* customer.put {id, customer, expect_version?} -> {id, version}. Creates or
 * replaces the whole profile. */
void rp_op_customer_put(rp_api_req *rq, const msgpack_object *params) {
    rp_api_write_run(rq, params, &wdesc_customer_put);
}

/* --- customer.patch ----------------------------------------------------------------------- */

typedef struct rp_api_wpatch {
    RP_API_WRITE_FIELDS
    rp_str id;
    const msgpack_object *patch; /* the merge patch, inside block */
    rp_customer c;               /* the patch applied to an empty profile (its check) */
    rp_put_opts opts;
    uint64_t version;            /* outcome */
} rp_api_wpatch;

/* Caller's thread: {id, patch, expect_version?}. The patch is a merge patch
 * (RFC 7396 semantics, codec.h); it is checked here against an empty profile
 * so that a bad field is refused before the writer. */
static rp_err decode_customer_patch(rp_api_write *hw, const char **what, rp_errbuf *eb) {
    rp_api_wpatch *w = RP_API_WOP(rp_api_wpatch, hw);
    rp_err rc;
    if ((rc = rp_api_param_id(&w->params, "id", &w->id, eb)) != RP_OK ||
        (rc = param_expect(hw, &w->opts, eb)) != RP_OK)
        return rc;
    if ((w->patch = param_map(hw, "patch", eb)) == NULL) return RP_BAD_REQUEST;
    const char *country = rp_api_config(w->rq.api)->default_country;
    memset(&w->c, 0, sizeof w->c);
    *what = "patch";
    return rp_customer_patch(&w->c, w->patch, country, &w->arena, eb);
}

/* Writer thread: merge-patch the stored profile. */
static rp_err apply_customer_patch(rp_api_write *hw, MDB_txn *txn, rp_errbuf *eb) {
    rp_api_wpatch *w = RP_API_WOP(rp_api_wpatch, hw);
    rp_store_id canon;
    rp_err rc = rp_store_wpatch_customer(rp_api_store(w->rq.api), txn, w->id, w->patch, &w->opts,
                                         &w->version, &canon, eb);
    if (rc != RP_OK) return rc;
    rp_api_write_set_canon(w, rp_store_id_str(&canon));
    return RP_OK;
}

/* Result {id, version}. */
static void result_customer_patch(rp_api_write *hw, msgpack_packer *pk) {
    pack_id_version(pk, hw, RP_API_WOP(rp_api_wpatch, hw)->version);
}

static const rp_api_wdesc wdesc_customer_patch = {
    .keys = (const char *const[]){"id", "patch", "expect_version", NULL},
    .size = sizeof(rp_api_wpatch),
    .arena = true,
    .decode = decode_customer_patch,
    .apply = apply_customer_patch,
    .result = result_customer_patch,
};

/* customer.patch {id, patch, expect_version?} -> {id, version}. */
void rp_op_customer_patch(rp_api_req *rq, const msgpack_object *params) {
    rp_api_write_run(rq, params, &wdesc_customer_patch);
}

/* --- customer.forget ------------------------------------------------------------------------ */

typedef struct rp_api_wforget {
    RP_API_WRITE_FIELDS
    rp_str id;
} rp_api_wforget;

/* Caller's thread: {id}. */
static rp_err decode_customer_forget(rp_api_write *hw, const char **what, rp_errbuf *eb) {
    (void)what;
    rp_api_wforget *w = RP_API_WOP(rp_api_wforget, hw);
    return rp_api_param_id(&w->params, "id", &w->id, eb);
}

/* Writer thread: erase the customer, keeping the canonical id erased (an
 * alias names its survivor) for the audit line. */
static rp_err apply_customer_forget(rp_api_write *hw, MDB_txn *txn, rp_errbuf *eb) {
    rp_api_wforget *w = RP_API_WOP(rp_api_wforget, hw);
    rp_store_id canon;
    rp_err rc = rp_store_wforget(rp_api_store(w->rq.api), txn, w->id, &canon, eb);
    if (rc != RP_OK) return rc;
    rp_api_write_set_canon(w, rp_store_id_str(&canon));
    return RP_OK;
}

/* Result {id, forgotten: true}. */
static void result_forget(rp_api_write *hw, msgpack_packer *pk) {
    rp_api_wforget *w = RP_API_WOP(rp_api_wforget, hw);
    msgpack_pack_map(pk, 2);
    rp_api_kv_str(pk, "id", w->id);
    rp_api_kv_bool(pk, "forgotten", true);
}

static const rp_api_wdesc wdesc_customer_forget = {
    .keys = (const char *const[]){"id", NULL},
    .size = sizeof(rp_api_wforget),
    .decode = decode_customer_forget,
    .apply = apply_customer_forget,
    .result = result_forget,
};

/* customer.forget {id} -> {id, forgotten: true}: erase every trace.
 * Audited: names the id erased, after the commit. */
void rp_op_customer_forget(rp_api_req *rq, const msgpack_object *params) {
    rp_api_write_run(rq, params, &wdesc_customer_forget);
}

/* --- customer.merge ------------------------------------------------------------------------ */

typedef struct rp_api_wmerge {
    RP_API_WRITE_FIELDS
    rp_str id;        /* `from`: the customer folded away */
    rp_str other;     /* `into`: the survivor */
    uint64_t version; /* outcome */
    uint32_t dropped; /* outcome: from's events whose event_id into had */
} rp_api_wmerge;

/* Caller's thread: {from, into}. */
static rp_err decode_customer_merge(rp_api_write *hw, const char **what, rp_errbuf *eb) {
    (void)what;
    rp_api_wmerge *w = RP_API_WOP(rp_api_wmerge, hw);
    rp_err rc;
    if ((rc = rp_api_param_id(&w->params, "from", &w->id, eb)) != RP_OK) return rc;
    return rp_api_param_id(&w->params, "into", &w->other, eb);
}

/* Writer thread: fold `from` (w->id) into `into` (w->other). */
static rp_err apply_customer_merge(rp_api_write *hw, MDB_txn *txn, rp_errbuf *eb) {
    rp_api_wmerge *w = RP_API_WOP(rp_api_wmerge, hw);
    rp_store_id canon;
    rp_err rc = rp_store_wmerge(rp_api_store(w->rq.api), txn, w->id, w->other, w->rq.now,
                                &w->version, &w->dropped, &canon, eb);
    if (rc != RP_OK) return rc;
    rp_api_write_set_canon(w, rp_store_id_str(&canon));
    return RP_OK;
}

/* Result {id (the survivor), version, duplicate_events}. */
static void result_customer_merge(rp_api_write *hw, msgpack_packer *pk) {
    rp_api_wmerge *w = RP_API_WOP(rp_api_wmerge, hw);
    msgpack_pack_map(pk, 3);
    rp_api_kv_str(pk, "id", write_canon(hw));
    rp_api_kv_uint(pk, "version", w->version);
    rp_api_kv_uint(pk, "duplicate_events", w->dropped);
}

static const rp_api_wdesc wdesc_customer_merge = {
    .keys = (const char *const[]){"from", "into", NULL},
    .size = sizeof(rp_api_wmerge),
    .decode = decode_customer_merge,
    .apply = apply_customer_merge,
    .result = result_customer_merge,
};

/* customer.merge {from, into} -> {id (the survivor), version, duplicate_events}. */
void rp_op_customer_merge(rp_api_req *rq, const msgpack_object *params) {
    rp_api_write_run(rq, params, &wdesc_customer_merge);
}

/* --- event.append -------------------------------------------------------------------------- */

typedef struct rp_api_wappend {
    RP_API_WRITE_FIELDS
    rp_event e;    /* slices into block */
    rp_cursor at;  /* outcome: where it was stored */
    bool dup;      /* outcome: its event_id was already stored; nothing written */
} rp_api_wappend;

/* Caller's thread: {event}. */
static rp_err decode_event_append(rp_api_write *hw, const char **what, rp_errbuf *eb) {
    rp_api_wappend *w = RP_API_WOP(rp_api_wappend, hw);
    msgpack_object *ev;
    if ((ev = param_map(hw, "event", eb)) == NULL) return RP_BAD_REQUEST;
    *what = "event";
    rp_err rc = rp_event_decode(ev, RP_DEC_WIRE, &w->e, eb);
    if (rc == RP_OK && w->e.has_seq) /* the store numbers appended events; import restores them */
        return rp_errf(eb, RP_BAD_REQUEST, "field 'seq' is set by the store (only import takes it)");
    return rc;
}

/* Writer thread: append the event. */
static rp_err apply_event_append(rp_api_write *hw, MDB_txn *txn, rp_errbuf *eb) {
    rp_api_wappend *w = RP_API_WOP(rp_api_wappend, hw);
    rp_store_id canon;
    rp_err rc = rp_store_wappend_event(rp_api_store(w->rq.api), txn, &w->e, w->rq.now, &w->at,
                                       &w->dup, &canon, eb);
    if (rc != RP_OK) return rc;
    rp_api_write_set_canon(w, rp_store_id_str(&canon));
    return RP_OK;
}

/* Result {customer_id, ts, seq, cursor, duplicate}: the stored event's
 * place, the earlier one's when duplicate. */
static void result_event(rp_api_write *hw, msgpack_packer *pk) {
    rp_api_wappend *w = RP_API_WOP(rp_api_wappend, hw);
    char cur[32];
    rp_cursor_format(&w->at, cur);
    msgpack_pack_map(pk, 5);
    rp_api_kv_str(pk, "customer_id", write_canon(hw));
    rp_api_kv_int(pk, "ts", w->at.ts);
    rp_api_kv_uint(pk, "seq", w->at.seq);
    rp_api_kv_str(pk, "cursor", rp_str_c(cur));
    rp_api_kv_bool(pk, "duplicate", w->dup);
}

static const rp_api_wdesc wdesc_event_append = {
    .keys = (const char *const[]){"event", NULL},
    .size = sizeof(rp_api_wappend),
    .decode = decode_event_append,
    .apply = apply_event_append,
    .result = result_event,
};

/* event.append {event} -> {customer_id, ts, seq, cursor, duplicate}. */
void rp_op_event_append(rp_api_req *rq, const msgpack_object *params) {
    rp_api_write_run(rq, params, &wdesc_event_append);
}

/* --- issue.put ------------------------------------------------------------------------------ */

typedef struct rp_api_wissue {
    RP_API_WRITE_FIELDS
    rp_issue is; /* slices into block */
} rp_api_wissue;

/* Caller's thread: {issue}. */
static rp_err decode_issue_put(rp_api_write *hw, const char **what, rp_errbuf *eb) {
    rp_api_wissue *w = RP_API_WOP(rp_api_wissue, hw);
    msgpack_object *is;
    if ((is = param_map(hw, "issue", eb)) == NULL) return RP_BAD_REQUEST;
    *what = "issue";
    return rp_issue_decode_as(is, RP_DEC_WIRE, rp_api_config(hw->rq.api)->issue_numbers, &w->is, eb);
}

/* Writer thread: create or replace the issue. */
static rp_err apply_issue_put(rp_api_write *hw, MDB_txn *txn, rp_errbuf *eb) {
    rp_api_wissue *w = RP_API_WOP(rp_api_wissue, hw);
    rp_store_id canon;
    rp_err rc = rp_store_wput_issue(rp_api_store(w->rq.api), txn, &w->is, w->rq.now, &canon, eb);
    if (rc != RP_OK) return rc;
    rp_api_write_set_canon(w, rp_store_id_str(&canon));
    return RP_OK;
}

/* Result {customer_id, issue_id}. */
static void result_issue(rp_api_write *hw, msgpack_packer *pk) {
    rp_api_wissue *w = RP_API_WOP(rp_api_wissue, hw);
    msgpack_pack_map(pk, 2);
    rp_api_kv_str(pk, "customer_id", write_canon(hw));
    rp_api_kv_str(pk, "issue_id", w->is.issue_id);
}

static const rp_api_wdesc wdesc_issue_put = {
    .keys = (const char *const[]){"issue", NULL},
    .size = sizeof(rp_api_wissue),
    .decode = decode_issue_put,
    .apply = apply_issue_put,
    .result = result_issue,
};

/* issue.put {issue} -> {customer_id, issue_id}: create or replace. */
void rp_op_issue_put(rp_api_req *rq, const msgpack_object *params) {
    rp_api_write_run(rq, params, &wdesc_issue_put);
}

/* --- cluster mode: applying a log entry -------------------------------------------- */

/* The write ops a log entry may name. */
static const struct {
    const char *name;
    const rp_api_wdesc *desc;
} entry_ops[] = {
    {"customer.put", &wdesc_customer_put},
    {"customer.patch", &wdesc_customer_patch},
    {"customer.forget", &wdesc_customer_forget},
    {"customer.merge", &wdesc_customer_merge},
    {"event.append", &wdesc_event_append},
    {"issue.put", &wdesc_issue_put},
    {"import", &rp_api_wdesc_import},
};

/* Is rc a failure of this node (retry the batch) rather than the request's
 * own outcome? */
static bool node_failure(rp_err rc) {
    return rc == RP_STORE_FULL || rc == RP_UNAVAILABLE || rc == RP_INTERNAL;
}

rp_err rp_api_apply_entry(void *ctx, MDB_txn *txn, rp_str op, int64_t now, const msgpack_object *params,
                          rp_cluster_result *res, rp_errbuf *eb) {
    rp_api *api = ctx;
    const rp_api_wdesc *d = NULL;
    for (size_t i = 0; i < sizeof entry_ops / sizeof entry_ops[0]; i++)
        if (rp_str_eq(op, rp_str_c(entry_ops[i].name))) d = entry_ops[i].desc;
    const rp_api_op *row = rp_api_find(op.p, op.n);
    if (d == NULL || row == NULL) {
        res->rc = rp_errf(&res->eb, RP_BAD_REQUEST, "log entry of an unknown write '%.*s'", (int)op.n, op.p);
        return RP_OK;
    }
    rp_api_req rq = {.api = api, .op = row, .role = RP_ROLE_ADMIN, .now = now};
    rp_api_write *w = write_new(&rq, params, d);
    if (w == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory applying a log entry");
    const char *what = NULL;
    rp_errbuf web = {0};
    rp_err rc;
    if ((rc = rp_api_idem_prepare(w, &web)) != RP_OK || (rc = rp_api_check_keys(&w->params, d->keys, &web)) != RP_OK ||
        (rc = d->decode(w, &what, &web)) != RP_OK) {
        if (rc == RP_UNAVAILABLE) goto node_fail; /* out of memory: not the request's fault */
        /* refused on the node that published it too, unless the settings
         * differ (default_country, issue_numbers): the same on every node */
        char msg[RP_ERRMSG_MAX + 32];
        snprintf(msg, sizeof msg, "%s%s%s", what ? what : "", what ? ": " : "",
                 web.msg[0] ? web.msg : rp_err_text(rc));
        res->rc = rp_errf(&res->eb, rc, "%s", msg);
        write_free(w);
        return RP_OK;
    }
    rc = write_fn(txn, w, &web);
    if (node_failure(rc)) goto node_fail;
    if (rc != RP_OK) {
        res->rc = rc;
        res->eb = web;
        write_free(w);
        return RP_OK;
    }
    if (w->idem.n) {
        msgpack_sbuffer_write(&res->reply, w->idem.reply.data, w->idem.reply.size);
    } else {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &res->reply, msgpack_sbuffer_write);
        d->result(w, &pk);
    }
    memcpy(res->canon, w->canon, w->canon_n);
    res->canon_n = w->canon_n;
    res->rc = RP_OK;
    write_free(w);
    return RP_OK;
node_fail:
    *eb = web;
    eb->code = rc;
    write_free(w);
    return rc;
}
