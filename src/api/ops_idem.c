/* ops_idem.c — idempotency keys on writes (proto/METHODS.md "Idempotency").
 *
 * Every write op takes `idempotency_key` (HTTP: the Idempotency-Key header,
 * mapped by the route table). The skeleton (ops_write.c) calls
 * rp_api_idem_prepare on the caller's thread, before the op decodes its
 * params (a decoder may rewrite them: customer.put adds the path id), and
 * rp_api_idem_apply on the writer thread instead of the op's apply when a
 * key was given. The store keeps the keys (store/idem.h); the check and
 * the record are in the write's own nested transaction, so two requests
 * with one key are ordered by the writer: the second sees the first's
 * entry (same batch or a later one) and never applies too.
 *
 * The request hash. What "the same request" means is decided here: the
 * method name and the params without the key, packed canonically — map
 * entries sorted by key bytes at every level (a client that serializes its
 * JSON object in another order on the retry is the same request), every
 * value re-packed by msgpack-c, so integers take their shortest encoding
 * (1 from JSON and a uint8 1 from msgpack are equal). The bytes are hashed
 * with SipHash-2-4 to 128 bits (core/siphash.h) under a fixed, public
 * key: fixed because stored hashes must compare after a restart. 128 bits
 * make an accidental collision (another request answered with this one's
 * result) a 2^-64 event even over 2^32 keys; a deliberate one gains
 * nothing, since the only reply it could fetch is that of a request sent
 * under a key the attacker had to know beforehand — with it, he could
 * send any request himself.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/siphash.h"
#include "api/ops.h"
#include "model/codec.h"

#define IDEM_PARAM "idempotency_key"

/* "rapport idem v1" and a NUL: changing it changes every stored hash. */
static const uint8_t idem_sipkey[RP_SIPHASH_KEY] = "rapport idem v1";

/* Map entries by key: strings by bytes (a shorter prefix first), other
 * key types after them by type, ties kept in the given order (the
 * entries are one array, so their addresses are that order). */
static int kv_order(const void *a, const void *b) {
    const msgpack_object_kv *x = *(const msgpack_object_kv *const *)a;
    const msgpack_object_kv *y = *(const msgpack_object_kv *const *)b;
    bool xs = x->key.type == MSGPACK_OBJECT_STR, ys = y->key.type == MSGPACK_OBJECT_STR;
    if (xs && ys) {
        uint32_t xn = x->key.via.str.size, yn = y->key.via.str.size;
        int c = memcmp(x->key.via.str.ptr, y->key.via.str.ptr, xn < yn ? xn : yn);
        if (c != 0) return c;
        if (xn != yn) return xn < yn ? -1 : 1;
    } else if (xs != ys) {
        return xs ? -1 : 1;
    } else if (x->key.type != y->key.type) {
        return x->key.type < y->key.type ? -1 : 1;
    }
    return x < y ? -1 : (x > y);
}

/* Pack o canonically (the top of this file). Recursion follows the
 * params' nesting, bounded by max_depth. Returns false when out of
 * memory. */
static bool pack_canon(msgpack_packer *pk, const msgpack_object *o) {
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        msgpack_pack_array(pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!pack_canon(pk, &o->via.array.ptr[i])) return false;
        return true;
    }
    if (o->type != MSGPACK_OBJECT_MAP) {
        msgpack_pack_object(pk, *o);
        return true;
    }
    uint32_t n = o->via.map.size;
    msgpack_pack_map(pk, n);
    if (n == 0) return true;
    const msgpack_object_kv **sorted = rp_malloc((size_t)n * sizeof *sorted);
    if (sorted == NULL) return false;
    for (uint32_t i = 0; i < n; i++) sorted[i] = &o->via.map.ptr[i];
    qsort(sorted, n, sizeof *sorted, kv_order);
    bool ok = true;
    for (uint32_t i = 0; i < n && ok; i++)
        ok = pack_canon(pk, &sorted[i]->key) && pack_canon(pk, &sorted[i]->val);
    free(sorted);
    return ok;
}

/* Remove entry i of map m (the array lives in the request's own copy). */
static void map_remove(msgpack_object *m, uint32_t i) {
    assert(i < m->via.map.size);
    msgpack_object_kv *kv = m->via.map.ptr;
    memmove(&kv[i], &kv[i + 1], (size_t)(m->via.map.size - i - 1) * sizeof *kv);
    m->via.map.size--;
}

/* Take the key out of w->params into w->idem (n stays 0 when absent). */
static rp_err take_key(rp_api_write *w, rp_errbuf *eb) {
    msgpack_object *p = &w->params;
    assert(p->type == MSGPACK_OBJECT_MAP);
    bool seen = false;
    for (uint32_t i = 0; i < p->via.map.size;) {
        const msgpack_object_kv *kv = &p->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR ||
            !rp_str_eqc((rp_str){kv->key.via.str.ptr, kv->key.via.str.size}, IDEM_PARAM)) {
            i++;
            continue;
        }
        if (seen) return rp_errf(eb, RP_BAD_REQUEST, "parameter '" IDEM_PARAM "' is given twice");
        seen = true;
        if (kv->val.type != MSGPACK_OBJECT_NIL) {
            rp_str k = {kv->val.via.str.ptr, kv->val.via.str.size};
            if (kv->val.type != MSGPACK_OBJECT_STR || !rp_idem_key_valid(k))
                return rp_errf(eb, RP_BAD_REQUEST,
                               "parameter '" IDEM_PARAM "' (HTTP: Idempotency-Key) must be 1..%d "
                               "printable ASCII bytes without spaces",
                               RP_IDEM_KEY_MAX);
            memcpy(w->idem.key, k.p, k.n);
            w->idem.n = k.n;
        }
        map_remove(p, i);
    }
    return RP_OK;
}

rp_err rp_api_idem_prepare(rp_api_write *w, rp_errbuf *eb) {
    rp_err rc = take_key(w, eb);
    if (rc != RP_OK || w->idem.n == 0) return rc;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rp_mp_pack_cstr(&pk, w->rq.op->name);
    if (!pack_canon(&pk, &w->params)) rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory; retry");
    else rp_siphash128(sb.data, sb.size, idem_sipkey, w->idem.hash);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

rp_err rp_api_idem_apply(rp_api_write *w, MDB_txn *txn, rp_errbuf *eb) {
    assert(w->idem.n > 0);
    rp_store *s = rp_api_store(w->rq.api);
    rp_str key = {w->idem.key, w->idem.n};
    w->idem.reply.size = 0; /* the writer may run us again */
    w->idem.replayed = false;
    w->canon_n = 0;
    rp_idem_hit hit;
    rp_err rc = rp_store_idem_get(s, txn, key, w->idem.hash, w->rq.now, &hit, eb);
    if (rc != RP_OK) return rc;
    if (hit.found) { /* the first result, changing nothing (and auditing no one) */
        if (msgpack_sbuffer_write(&w->idem.reply, hit.result.p, hit.result.n) != 0)
            return rp_errf(eb, RP_UNAVAILABLE, "out of memory; retry");
        w->idem.replayed = true;
        return RP_OK;
    }
    if ((rc = w->desc->apply(w, txn, eb)) != RP_OK) return rc; /* no key stored */
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->idem.reply, msgpack_sbuffer_write);
    w->desc->result(w, &pk);
    if (w->idem.reply.data == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory; retry");
    return rp_store_idem_put(s, txn, key, w->idem.hash, w->rq.now, w->idem.reply.data,
                             w->idem.reply.size, eb);
}
