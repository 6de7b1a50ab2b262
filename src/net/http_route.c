/* http_route.c — the HTTP face's routes: one table, URL parsing, params.
 *
 * A request is routed from ONE static table (http_routes below): each row
 * is a method, a path pattern ("/v1/customers/{id}/events": a literal
 * segment must be equal, a {name} matches any one segment and names the
 * params key its value goes to), the api operation (by name, resolved
 * once at start-up with strlen: an unknown name fails rp_http_create, it
 * never turns into a silent 405), and how the params are built:
 *
 *   - path values: as top-level string params, or — for a record body —
 *     as fields of that record (refused when the body gives another value);
 *   - If-Match / If-None-Match as expect_version (precondition rows);
 *   - Idempotency-Key as idempotency_key, on every row of a write op (the
 *     api table's `write`), last;
 *   - the query: none allowed, any (names in ints[] must be integers), or
 *     the serving code's own (import: strict; export: limit, after);
 *   - the body: none, a JSON object under body_key, a record (object with
 *     path ids), or NDJSON lines (net/ndlines.h) as `records`.
 *
 * A path that matches no row is 404; a path that matches rows but none
 * with the method is 405 with Allow listing the matching rows' methods in
 * table order. The params map is built in one order for every row — path
 * values, precondition, query, body — then validated and unpacked as a
 * whole by rp_mpcheck_unpack. Building reads the body, so the request
 * callback calls it only after the 401 check (http.c).
 *
 * Decoding (net/urldecode.h): path segments as RFC 3986 ('+' is a plus);
 * query names and values as application/x-www-form-urlencoded, the way
 * browsers, curl --data-urlencode and HTTP libraries write them ('+' is a
 * space, %2B a plus) — except that a raw '+' opening the value of `phone`
 * stays a plus (IVRs build "?phone=" + "+4420..." by concatenation). A
 * malformed escape or %00 is 400 naming the parameter.
 */
#include "core/alloc.h"
#include "net/http_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "model/codec.h"
#include "model/record.h"
#include "net/json.h"
#include "net/ndlines.h"
#include "net/urldecode.h"

/* --- request parsing ------------------------------------------------------------ */

/* Free the decoded path segments and query parameters. */
void rp_http_in_free(http_in *in) {
    for (size_t i = 0; i < in->nseg; i++) free(in->seg[i]);
    for (size_t i = 0; i < in->nq; i++) {
        free(in->q[i].key);
        free(in->q[i].val);
    }
}

/* Split the path into decoded segments. Returns RP_OK, RP_NOT_FOUND (too
 * many segments: no route has them), RP_BAD_REQUEST. */
static rp_err parse_path(http_in *in, const char *path, rp_errbuf *eb) {
    if (path == NULL || path[0] != '/') return rp_errf(eb, RP_BAD_REQUEST, "bad request path");
    const char *p = path + 1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (in->nseg == HTTP_MAX_SEGMENTS) return rp_errf(eb, RP_NOT_FOUND, "no such route");
        char *d;
        rp_err rc = rp_url_decode(p, n, RP_URL_PATH, "path", &d, NULL, eb);
        if (rc != RP_OK) return rc;
        if (!rp_utf8_valid(d, strlen(d))) {
            free(d);
            return rp_errf(eb, RP_BAD_REQUEST, "path segment %zu is not valid UTF-8", (size_t)in->nseg + 1);
        }
        in->seg[in->nseg++] = d;
        if (!e) break;
        p = e + 1;
        if (*p == '\0') break; /* a trailing slash is the same route */
    }
    return RP_OK;
}

/* Decode one "name=value" (or "name") of the query into q. RP_OK or
 * RP_BAD_REQUEST (bad escape, %00, empty name), RP_UNAVAILABLE. */
static rp_err query_decode_one(qparam *q, const char *p, size_t n, rp_errbuf *eb) {
    const char *eq = memchr(p, '=', n);
    size_t kn = eq ? (size_t)(eq - p) : n;
    q->key = q->val = NULL;
    rp_err rc = rp_url_decode(p, kn, RP_URL_FORM, "a query parameter name", &q->key, NULL, eb);
    if (rc != RP_OK) return rc;
    if (q->key[0] == '\0') rc = rp_errf(eb, RP_BAD_REQUEST, "bad query string: a parameter has no name");
    char what[64], shown[41]; /* the name made printable ('?'): it goes into error sentences */
    size_t sk = 0;
    for (; sk < 40 && q->key[sk]; sk++) {
        unsigned char b = (unsigned char)q->key[sk];
        shown[sk] = b >= 0x20 && b < 0x7F ? (char)b : '?';
    }
    shown[sk] = '\0';
    snprintf(what, sizeof what, "query parameter '%s'", shown);
    int flags = RP_URL_FORM | (strcmp(q->key, "phone") == 0 ? RP_URL_LEAD_PLUS : 0);
    if (rc == RP_OK) {
        rc = eq ? rp_url_decode(eq + 1, n - kn - 1, flags, what, &q->val, &q->vlen, eb)
                : RP_OK;
        if (rc == RP_OK && !eq) {
            q->val = rp_strdup("");
            q->vlen = 0;
            if (q->val == NULL) rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
        }
    }
    if (rc != RP_OK) {
        free(q->key);
        free(q->val);
    }
    return rc;
}

/* Split and decode the query string ("a=1&b=2", form-urlencoded: see the
 * top of this file); a name given twice, an empty name, a malformed escape
 * or %00 is RP_BAD_REQUEST. */
static rp_err parse_query(http_in *in, const char *query, rp_errbuf *eb) {
    if (query == NULL) return RP_OK;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 0) {
            if (in->nq == HTTP_MAX_QUERY)
                return rp_errf(eb, RP_BAD_REQUEST, "more than %d query parameters", HTTP_MAX_QUERY);
            qparam *q = &in->q[in->nq];
            rp_err rc = query_decode_one(q, p, n, eb);
            if (rc != RP_OK) return rc;
            if (strcmp(q->key, "_") == 0) { /* jQuery's and widgets' cache-buster: ignored */
                free(q->key);
                free(q->val);
                goto next;
            }
            in->nq++;
            if (!rp_utf8_valid(q->key, strlen(q->key)))
                return rp_errf(eb, RP_BAD_REQUEST, "a query parameter name is not valid UTF-8");
            if (!rp_utf8_valid(q->val, q->vlen))
                return rp_errf(eb, RP_BAD_REQUEST, "query parameter '%.40s' is not valid UTF-8", q->key);
            for (size_t i = 0; i + 1 < in->nq; i++)
                if (strcmp(in->q[i].key, q->key) == 0)
                    return rp_errf(eb, RP_BAD_REQUEST, "query parameter '%.40s' is given twice", q->key);
        }
    next:
        if (!amp) break;
        p = amp + 1;
    }
    return RP_OK;
}

/* The query parameter named key, or NULL. */
const qparam *rp_http_query_get(const http_in *in, const char *key) {
    for (size_t i = 0; i < in->nq; i++)
        if (strcmp(in->q[i].key, key) == 0) return &in->q[i];
    return NULL;
}
/* Params under construction: a packer, and the entry count to announce. */
typedef struct pbuild {
    msgpack_sbuffer sb;    /* entries, without the map header */
    msgpack_packer pk;
    uint32_t n;
} pbuild;

/* Start an empty params map. */
static void pb_init(pbuild *b) {
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    b->n = 0;
}

/* Add key: string. */
static void pb_str(pbuild *b, const char *key, const char *val, size_t vlen) {
    rp_mp_pack_cstr(&b->pk, key);
    rp_mp_pack_str(&b->pk, (rp_str){val, vlen});
    b->n++;
}

bool rp_http_parse_int(const char *s, int64_t *out) {
    if (*s == '\0') return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))) return false;
    *out = v;
    return true;
}

/* Every query parameter into b: keys in ints[] must be integers (400
 * otherwise), the rest are strings; the api refuses unknown names. */
static rp_err pb_query(pbuild *b, const http_in *in, const char *const *ints, rp_errbuf *eb) {
    for (size_t i = 0; i < in->nq; i++) {
        bool is_int = false;
        for (const char *const *k = ints; k && *k; k++) is_int |= strcmp(*k, in->q[i].key) == 0;
        if (!is_int) {
            pb_str(b, in->q[i].key, in->q[i].val, in->q[i].vlen);
            continue;
        }
        int64_t v;
        if (!rp_http_parse_int(in->q[i].val, &v))
            return rp_errf(eb, RP_BAD_REQUEST, "query parameter '%s' must be an integer", in->q[i].key);
        rp_mp_pack_cstr(&b->pk, in->q[i].key);
        msgpack_pack_int64(&b->pk, v);
        b->n++;
    }
    return RP_OK;
}

/* The JSON body as msgpack (one object) appended under key. Requires a
 * JSON object. */
static rp_err pb_body(rp_http *h, pbuild *b, const char *key, struct evhttp_request *req,
                      rp_errbuf *eb) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n == 0) return rp_errf(eb, RP_BAD_REQUEST, "a JSON object body is required");
    const char *text = (const char *)evbuffer_pullup(in, -1);
    if (text == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading the body");
    size_t start = b->sb.size;
    rp_mp_pack_cstr(&b->pk, key);
    size_t at = b->sb.size;
    rp_errbuf jeb = {0};
    rp_err rc = rp_json_to_msgpack(text, n, &h->body_lim, &b->sb, &jeb);
    if (rc != RP_OK) {
        b->sb.size = start;
        return rp_errf(eb, rc, "invalid JSON body: %s", jeb.msg);
    }
    unsigned char t = (unsigned char)b->sb.data[at];
    if (!((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf)) {
        b->sb.size = start;
        return rp_errf(eb, RP_BAD_REQUEST, "the body must be a JSON object");
    }
    b->n++;
    return RP_OK;
}

/* The params limits of an NDJSON import: those of every request, but the
 * records array may hold as many records as the body can (a record line
 * is at least "{}\n"), so an import is bounded by max_request_bytes only. */
static rp_mpcheck_limits import_limits(const rp_http *h) {
    rp_mpcheck_limits lim = h->params_lim;
    uint32_t by_bytes = h->cfg->max_request_bytes / 3 + 1;
    if (by_bytes > lim.max_container) lim.max_container = by_bytes;
    return lim;
}

/* Finish: map header + entries, validated (lim) and unpacked into z. */
static rp_err pb_finish(const rp_mpcheck_limits *lim, pbuild *b, msgpack_sbuffer *whole,
                        msgpack_zone *z, msgpack_object *o, rp_errbuf *eb) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, whole, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, b->n);
    if (b->sb.size) msgpack_sbuffer_write(whole, b->sb.data, b->sb.size);
    char why[160] = "";
    rp_mpcheck_result r = rp_mpcheck_unpack(whole->data, whole->size, lim, z, o, NULL,
                                            why, sizeof why);
    if (r != RP_MPC_OK) return rp_errf(eb, rp_mpcheck_err(r), "request too complex: %s", why);
    return RP_OK;
}

/* Rewrite map `o` (already unpacked) with the path's values for keys[]:
 * refused when the body gives a different value, added when it gives none. */
static rp_err pb_record(pbuild *b, const char *key, const msgpack_object *o, const char *const *keys,
                        const char *const *vals, rp_errbuf *eb) {
    uint32_t extra = 0;
    for (size_t k = 0; keys[k]; k++) {
        const msgpack_object *v = rp_mp_get(o, keys[k]);
        if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
            extra++;
            continue;
        }
        if (v->type != MSGPACK_OBJECT_STR || v->via.str.size != strlen(vals[k]) ||
            memcmp(v->via.str.ptr, vals[k], v->via.str.size) != 0)
            return rp_errf(eb, RP_BAD_REQUEST, "%s in the body does not match the path", keys[k]);
    }
    rp_mp_pack_cstr(&b->pk, key);
    msgpack_pack_map(&b->pk, o->via.map.size + extra);
    for (size_t k = 0; keys[k]; k++) {
        const msgpack_object *v = rp_mp_get(o, keys[k]);
        if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
            rp_mp_pack_cstr(&b->pk, keys[k]);
            rp_mp_pack_cstr(&b->pk, vals[k]);
        }
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        bool skip = false;
        for (size_t k = 0; keys[k]; k++)
            skip |= kv->val.type == MSGPACK_OBJECT_NIL && kv->key.type == MSGPACK_OBJECT_STR &&
                    rp_str_eqc((rp_str){kv->key.via.str.ptr, kv->key.via.str.size}, keys[k]);
        if (skip) continue; /* a nil id was replaced above */
        msgpack_pack_object(&b->pk, kv->key);
        msgpack_pack_object(&b->pk, kv->val);
    }
    b->n++;
    return RP_OK;
}

/* If-Match: "vN" (the ETag of a GET), "N" or N -> expect_version N;
 * If-None-Match: * -> 0 (create only). */
static rp_err pb_precondition(pbuild *b, struct evhttp_request *req, rp_errbuf *eb) {
    struct evkeyvalq *hd = evhttp_request_get_input_headers(req);
    const char *im = evhttp_find_header(hd, "If-Match");
    const char *inm = evhttp_find_header(hd, "If-None-Match");
    if (im && inm) return rp_errf(eb, RP_BAD_REQUEST, "give If-Match or If-None-Match, not both");
    int64_t v;
    if (inm) {
        if (strcmp(inm, "*") != 0) return rp_errf(eb, RP_BAD_REQUEST, "If-None-Match must be *");
        v = 0;
    } else if (im) {
        char tmp[32];
        size_t n = strlen(im);
        if (n >= 2 && im[0] == '"' && im[n - 1] == '"') {
            im++;
            n -= 2;
        }
        if (n > 1 && im[0] == 'v') {
            im++;
            n--;
        }
        if (n == 0 || n >= sizeof tmp)
            return rp_errf(eb, RP_BAD_REQUEST, "If-Match must be a version, e.g. \"3\"");
        memcpy(tmp, im, n);
        tmp[n] = '\0';
        if (!rp_http_parse_int(tmp, &v) || v < 0)
            return rp_errf(eb, RP_BAD_REQUEST, "If-Match must be a version, e.g. \"3\"");
    } else {
        return RP_OK;
    }
    rp_mp_pack_cstr(&b->pk, "expect_version");
    msgpack_pack_int64(&b->pk, v);
    b->n++;
    return RP_OK;
}
/* Idempotency-Key -> idempotency_key, for the rows of write ops (the api
 * checks the value, as it does the RPC param). Reads ignore the header:
 * they change nothing, and some clients send it on every request. */
static void pb_idem(pbuild *b, struct evhttp_request *req, const rp_api_op *op) {
    if (op == NULL || !op->write) return;
    const char *k = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
    if (k != NULL) pb_str(b, "idempotency_key", k, strlen(k));
}

/* Body of a POST/PUT record (event or issue) with ids from the path. */
static rp_err pb_record_body(rp_http *h, pbuild *b, const char *key, const http_in *in,
                             const char *const *keys, const char *const *vals, rp_errbuf *eb) {
    pbuild tmp;
    pb_init(&tmp);
    rp_err rc = pb_body(h, &tmp, "x", in->req, eb);
    msgpack_sbuffer whole;
    msgpack_sbuffer_init(&whole);
    msgpack_zone z;
    bool zok = msgpack_zone_init(&z, 1024);
    msgpack_object o;
    if (rc == RP_OK && !zok) rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory");
    if (rc == RP_OK) rc = pb_finish(&h->params_lim, &tmp, &whole, &z, &o, eb);
    if (rc == RP_OK) rc = pb_record(b, key, &o.via.map.ptr[0].val, keys, vals, eb);
    if (zok) msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&whole);
    msgpack_sbuffer_destroy(&tmp.sb);
    return rc;
}

/* NDJSON body -> records array (and strict from the query). The number of
 * lines is bounded by the body's bytes (max_request_bytes), not by
 * max_container: each line is held to max_container on its own, and
 * pb_finish checks the params with import_limits. */
static rp_err pb_ndjson(rp_http *h, pbuild *b, const http_in *in, rp_errbuf *eb) {
    for (size_t i = 0; i < in->nq; i++)
        if (strcmp(in->q[i].key, "strict") != 0)
            return rp_errf(eb, RP_BAD_REQUEST, "unknown query parameter '%.40s' (expected: strict)",
                           in->q[i].key);
    const qparam *sq = rp_http_query_get(in, "strict");
    if (sq) {
        bool v;
        if (strcmp(sq->val, "true") == 0 || strcmp(sq->val, "1") == 0) v = true;
        else if (strcmp(sq->val, "false") == 0 || strcmp(sq->val, "0") == 0) v = false;
        else return rp_errf(eb, RP_BAD_REQUEST, "strict must be true or false");
        rp_mp_pack_cstr(&b->pk, "strict");
        if (v) msgpack_pack_true(&b->pk);
        else msgpack_pack_false(&b->pk);
        b->n++;
    }
    struct evbuffer *ib = evhttp_request_get_input_buffer(in->req);
    size_t n = evbuffer_get_length(ib);
    const char *text = n ? (const char *)evbuffer_pullup(ib, -1) : "";
    if (text == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading the body");
    msgpack_sbuffer lines;
    msgpack_sbuffer_init(&lines);
    uint32_t count = 0;
    rp_err rc = RP_OK;
    rp_ndlines lr;
    rp_ndline ln;
    rp_ndlines_init(&lr, text, n, 0);
    while (rc == RP_OK && rp_ndlines_next(&lr, &ln)) {
        size_t at = lines.size;
        rp_errbuf jeb = {0};
        rp_err jrc = rp_json_to_msgpack(ln.p, ln.len, &h->body_lim, &lines, &jeb);
        if (jrc != RP_OK) {
            rc = rp_errf(eb, jrc, "line %" PRIu64 ": %s", ln.no, jeb.msg);
            break;
        }
        unsigned char t = (unsigned char)lines.data[at];
        if (!((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf)) {
            rc = rp_errf(eb, RP_BAD_REQUEST, "line %" PRIu64 ": expected a JSON object", ln.no);
            break;
        }
        count++;
    }
    if (rc == RP_OK) {
        rp_mp_pack_cstr(&b->pk, "records");
        msgpack_pack_array(&b->pk, count);
        if (lines.size) msgpack_sbuffer_write(&b->sb, lines.data, lines.size);
        b->n++;
    }
    msgpack_sbuffer_destroy(&lines);
    return rc;
}

/* --- the route table ----------------------------------------------------------------- */

/* Which query parameters a row takes. */
typedef enum http_query {
    HTTP_Q_NONE, /* any is 400 "this route takes no query parameters" */
    HTTP_Q_ANY,  /* each becomes a param (the api refuses unknown names) */
    HTTP_Q_OWN,  /* checked by the body builder (import) or the server (export) */
} http_query;

/* What the body carries. */
typedef enum http_body {
    HTTP_B_NONE,   /* ignored */
    HTTP_B_OBJECT, /* a JSON object, under body_key */
    HTTP_B_RECORD, /* a JSON object under body_key, with the path values as fields */
    HTTP_B_NDJSON, /* NDJSON lines as `records` (and ?strict) */
} http_body;

typedef struct http_route {
    http_method method;
    const char *pattern;  /* "/v1/customers/{id}": {name} = one segment, params key name */
    const char *op;       /* api operation name; NULL: served outside the api */
    http_serve serve;
    reply_kind kind;
    http_query query;
    const char *ints[2];  /* HTTP_Q_ANY: names that must be integers */
    http_body body;
    const char *body_key; /* HTTP_B_OBJECT / HTTP_B_RECORD */
    bool precondition;    /* If-Match / If-None-Match -> expect_version */
} http_route;

#define API HTTP_SERVE_API, KIND_PLAIN
static const http_route http_routes[] = {
    {HTTP_M_GET, "/healthz", NULL, HTTP_SERVE_HEALTH, KIND_PLAIN, HTTP_Q_OWN, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/metrics", NULL, HTTP_SERVE_METRICS, KIND_PLAIN, HTTP_Q_OWN, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/openapi.yaml", NULL, HTTP_SERVE_OPENAPI, KIND_PLAIN, HTTP_Q_OWN, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/card", NULL, HTTP_SERVE_CARD, KIND_PLAIN, HTTP_Q_OWN, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/card/card.css", NULL, HTTP_SERVE_CARD_CSS, KIND_PLAIN, HTTP_Q_OWN, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/v1/context", "context.get", API, HTTP_Q_ANY, {"at"}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/v1/route", "route.get", API, HTTP_Q_ANY, {"at"}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/v1/lookup", "lookup", API, HTTP_Q_ANY, {"at"}, HTTP_B_NONE, NULL, false},
    {HTTP_M_POST, "/v1/import", "import", HTTP_SERVE_API, KIND_IMPORT, HTTP_Q_OWN, {NULL}, HTTP_B_NDJSON, NULL, false},
    {HTTP_M_GET, "/v1/export", "export", HTTP_SERVE_EXPORT, KIND_EXPORT, HTTP_Q_OWN, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/v1/customers/{id}", "customer.get", API, HTTP_Q_ANY, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_PUT, "/v1/customers/{id}", "customer.put", API, HTTP_Q_NONE, {NULL}, HTTP_B_OBJECT, "customer", true},
    {HTTP_M_PATCH, "/v1/customers/{id}", "customer.patch", API, HTTP_Q_NONE, {NULL}, HTTP_B_OBJECT, "patch", true},
    {HTTP_M_DELETE, "/v1/customers/{id}", "customer.forget", API, HTTP_Q_NONE, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_POST, "/v1/customers/{from}/merge", "customer.merge", API, HTTP_Q_ANY, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_GET, "/v1/customers/{id}/events", "history.list", API, HTTP_Q_ANY, {"limit"}, HTTP_B_NONE, NULL, false},
    {HTTP_M_POST, "/v1/customers/{customer_id}/events", "event.append", API, HTTP_Q_NONE, {NULL}, HTTP_B_RECORD, "event", false},
    {HTTP_M_GET, "/v1/customers/{id}/issues", "issue.list", API, HTTP_Q_ANY, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_PUT, "/v1/customers/{customer_id}/issues/{issue_id}", "issue.put", API, HTTP_Q_NONE, {NULL}, HTTP_B_RECORD, "issue", false},
    {HTTP_M_POST, "/v1/admin/backup", "backup", API, HTTP_Q_ANY, {NULL}, HTTP_B_NONE, NULL, false},
    {HTTP_M_POST, "/v1/card-links", "card.link", API, HTTP_Q_ANY, {"ttl"}, HTTP_B_NONE, NULL, false},
};
#undef API
#define HTTP_NROUTES (sizeof http_routes / sizeof http_routes[0])
#define HTTP_MAX_PATH_VALUES 2 /* {…} in one pattern */

http_method rp_http_method_of(struct evhttp_request *req) {
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: return HTTP_M_GET;
    case EVHTTP_REQ_PUT: return HTTP_M_PUT;
    case EVHTTP_REQ_PATCH: return HTTP_M_PATCH;
    case EVHTTP_REQ_POST: return HTTP_M_POST;
    case EVHTTP_REQ_DELETE: return HTTP_M_DELETE;
    case EVHTTP_REQ_HEAD: return HTTP_M_HEAD;
    case EVHTTP_REQ_OPTIONS: return HTTP_M_OPTIONS;
    default: return HTTP_M_OTHER;
    }
}

/* The method's name, for Allow. */
static const char *method_name(http_method m) {
    switch (m) {
    case HTTP_M_GET: return "GET";
    case HTTP_M_PUT: return "PUT";
    case HTTP_M_PATCH: return "PATCH";
    case HTTP_M_POST: return "POST";
    case HTTP_M_DELETE: return "DELETE";
    case HTTP_M_HEAD: return "HEAD";
    case HTTP_M_OPTIONS: return "OPTIONS";
    default: return "?";
    }
}

/* The path values of a matched pattern: names (into the pattern) and values
 * (the request's decoded segments). */
typedef struct path_values {
    char names[HTTP_MAX_PATH_VALUES][32];
    const char *vals[HTTP_MAX_PATH_VALUES + 1];
    const char *keys[HTTP_MAX_PATH_VALUES + 1]; /* NULL-terminated, point into names */
    size_t n;
} path_values;

/* Does in's path match pattern? Fills pv (may be NULL) with its {…}. */
static bool route_match(const char *pattern, const http_in *in, path_values *pv) {
    const char *p = pattern + 1; /* patterns start with '/' */
    size_t i = 0, n = 0;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (i >= in->nseg) return false;
        if (p[0] == '{') {
            if (pv && n < HTTP_MAX_PATH_VALUES && len - 2 < sizeof pv->names[0]) {
                memcpy(pv->names[n], p + 1, len - 2);
                pv->names[n][len - 2] = '\0';
                pv->keys[n] = pv->names[n];
                pv->vals[n++] = in->seg[i];
            }
        } else if (strlen(in->seg[i]) != len || memcmp(in->seg[i], p, len) != 0) {
            return false;
        }
        i++;
        p += len + (e ? 1 : 0);
    }
    if (pv) {
        pv->keys[n] = pv->vals[n] = NULL;
        pv->n = n;
    }
    return i == in->nseg;
}

rp_err rp_http_routes_resolve(rp_http *h, rp_errbuf *eb) {
    h->route_ops = rp_calloc(HTTP_NROUTES, sizeof *h->route_ops);
    if (h->route_ops == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory resolving the routes");
    for (size_t i = 0; i < HTTP_NROUTES; i++) {
        const char *name = http_routes[i].op;
        if (name == NULL) continue;
        h->route_ops[i] = rp_api_find(name, strlen(name));
        if (h->route_ops[i] == NULL)
            return rp_errf(eb, RP_INTERNAL, "http route %s names no api operation '%s'",
                           http_routes[i].pattern, name);
        if (http_routes[i].serve == HTTP_SERVE_EXPORT) h->op_export = h->route_ops[i];
    }
    return RP_OK;
}

rp_err rp_http_route_find(const rp_http *h, const http_in *in, http_match *m, rp_errbuf *eb) {
    size_t alen = 0;
    m->allow[0] = '\0';
    http_method want = in->method == HTTP_M_HEAD ? HTTP_M_GET : in->method; /* HEAD is GET, bodiless */
    for (size_t i = 0; i < HTTP_NROUTES; i++) {
        const http_route *r = &http_routes[i];
        if (!route_match(r->pattern, in, NULL)) continue;
        if (r->method == want) {
            m->row = (int)i;
            m->precondition = r->precondition;
            m->etag = r->op && strcmp(r->op, "customer.get") == 0;
            m->serve = r->serve;
            m->kind = r->kind;
            m->op = h->route_ops[i];
            return RP_OK;
        }
        int w = snprintf(m->allow + alen, sizeof m->allow - alen, "%s%s", alen ? ", " : "",
                         method_name(r->method));
        if (w > 0 && (size_t)w < sizeof m->allow - alen) alen += (size_t)w;
    }
    if (alen == 0) return rp_errf(eb, RP_NOT_FOUND, "no such route");
    /* Allow names every method the path supports (RFC 9110 15.5.6): the
     * rows', HEAD wherever GET is, and OPTIONS everywhere. */
    snprintf(m->allow + alen, sizeof m->allow - alen, "%s, OPTIONS", strstr(m->allow, "GET") ? ", HEAD" : "");
    return rp_errf(eb, RP_BAD_REQUEST, "method not allowed on this route");
}

rp_err rp_http_parse_uri(http_in *in, rp_errbuf *eb) {
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(in->req);
    if (uri == NULL) return rp_errf(eb, RP_BAD_REQUEST, "bad request URI");
    rp_err rc = parse_path(in, evhttp_uri_get_path(uri), eb);
    if (rc != RP_OK) return rc;
    return parse_query(in, evhttp_uri_get_query(uri), eb);
}

/* The body of row r into b. */
static rp_err pb_body_of(rp_http *h, pbuild *b, const http_route *r, const http_in *in,
                         const path_values *pv, rp_errbuf *eb) {
    switch (r->body) {
    case HTTP_B_NONE: return RP_OK;
    case HTTP_B_OBJECT: return pb_body(h, b, r->body_key, in->req, eb);
    case HTTP_B_RECORD: return pb_record_body(h, b, r->body_key, in, pv->keys, pv->vals, eb);
    case HTTP_B_NDJSON: return pb_ndjson(h, b, in, eb);
    }
    return rp_errf(eb, RP_INTERNAL, "bad route table row");
}

/* Path values, precondition, query and body of row r into b, in that order. */
static rp_err pb_route(rp_http *h, pbuild *b, const http_route *r, const http_in *in, rp_errbuf *eb) {
    path_values pv;
    route_match(r->pattern, in, &pv);
    if (r->query == HTTP_Q_NONE && in->nq)
        return rp_errf(eb, RP_BAD_REQUEST, "this route takes no query parameters");
    if (r->body != HTTP_B_RECORD)
        for (size_t i = 0; i < pv.n; i++) pb_str(b, pv.keys[i], pv.vals[i], strlen(pv.vals[i]));
    rp_err rc = RP_OK;
    if (r->precondition && (rc = pb_precondition(b, in->req, eb)) != RP_OK) return rc;
    if (r->query == HTTP_Q_ANY && (rc = pb_query(b, in, r->ints, eb)) != RP_OK) return rc;
    return pb_body_of(h, b, r, in, &pv, eb);
}

rp_err rp_http_route_params(rp_http *h, const http_in *in, const http_match *m,
                            msgpack_sbuffer *whole, msgpack_zone *z, msgpack_object *params,
                            rp_errbuf *eb) {
    pbuild b;
    pb_init(&b);
    const http_route *r = &http_routes[m->row];
    rp_mpcheck_limits lim = r->body == HTTP_B_NDJSON ? import_limits(h) : h->params_lim;
    rp_err rc = pb_route(h, &b, r, in, eb);
    if (rc == RP_OK) pb_idem(&b, in->req, m->op);
    if (rc == RP_OK) rc = pb_finish(&lim, &b, whole, z, params, eb);
    msgpack_sbuffer_destroy(&b.sb);
    return rc;
}
