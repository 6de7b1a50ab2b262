/* ops_card.c — card.link: a signed, short-lived link to the agent's page.
 *
 * card.link {phone|email|account|id, ttl?} -> {url, expires}. For an admin
 * or ingest caller (the CRM's back end), which hands the URL to the agent's
 * browser: the page then needs no bearer token in the browser. ttl is
 * seconds, 1..3600 (default 300). The key is not checked against the store
 * (the page answers as context.get does); signing is in api/cardlink.h.
 */
#include <stdio.h>
#include <string.h>

#include "api/cardlink.h"
#include "api/ops.h"
#include "model/codec.h"

/* Append s[0..n) percent-encoded (RFC 3986 unreserved kept) to out. */
static size_t url_enc(char *out, size_t cap, size_t at, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n && at + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[at++] = (char)c;
        } else {
            out[at++] = '%';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        }
    }
    out[at] = '\0';
    return at;
}

void rp_op_card_link(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"phone", "email", "account", "id", "ttl", NULL};
    rp_errbuf eb = {0};
    rp_err rc;
    rp_ident_kind kind;
    bool is_id, present;
    rp_str key;
    int64_t ttl = RP_CARDLINK_TTL_DEFAULT;
    if ((rc = rp_api_check_keys(params, keys, &eb)) != RP_OK ||
        (rc = rp_api_param_key(params, true, &kind, &is_id, &key, &eb)) != RP_OK ||
        (rc = rp_api_param_int(params, "ttl", 1, RP_CARDLINK_TTL_MAX, &ttl, &present, &eb)) != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    /* the key as given (the page looks it up as context.get would) */
    const char *name = NULL;
    rp_str raw = {NULL, 0};
    for (uint32_t i = 0; i < params->via.map.size; i++) {
        const msgpack_object_kv *kv = &params->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR) continue;
        static const char *const ks[] = {"phone", "email", "account", "id"};
        for (int k = 0; k < 4; k++)
            if (kv->key.via.str.size == strlen(ks[k]) && memcmp(kv->key.via.str.ptr, ks[k], kv->key.via.str.size) == 0) {
                name = ks[k];
                raw = (rp_str){kv->val.via.str.ptr, kv->val.via.str.size};
            }
    }
    if (name == NULL || raw.n == 0 || raw.n > 256) {
        rp_api_fail(rq, RP_BAD_REQUEST, "give one of phone, email, account or id as a string");
        return;
    }
    int64_t exp = rq->now + ttl;
    char sig[RP_CARDLINK_SIG_HEX + 1];
    rp_cardlink_sign(rp_api_config(rq->api), name, raw.p, raw.n, exp, sig);
    char url[1024];
    size_t n = (size_t)snprintf(url, sizeof url, "/card?%s=", name);
    n = url_enc(url, sizeof url, n, raw.p, raw.n);
    snprintf(url + n, sizeof url - n, "&exp=%lld&sig=%s", (long long)exp, sig);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    rp_mp_pack_cstr(&pk, "url");
    rp_mp_pack_cstr(&pk, url);
    rp_mp_pack_cstr(&pk, "expires");
    msgpack_pack_int64(&pk, exp);
    rp_api_ok(rq, &sb);
    msgpack_sbuffer_destroy(&sb);
}
