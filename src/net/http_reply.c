/* http_reply.c — the HTTP face's responses: status mapping, JSON error
 * bodies, api results as JSON, import results, GET /metrics and
 * GET /openapi.yaml.
 *
 * Every function sends exactly one response on req and leaves req to
 * evhttp afterwards. Bodies are JSON written by net/json.c from msgpack
 * (escaping is the JSON writer's), bounded by max_output_bytes.
 */
#include "core/alloc.h"
#include "net/http_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "model/codec.h"
#include "net/buf.h"
#include "net/json.h"
#include "net/metrics.h"
#include "net/openapi.h"

/* The HTTP status of an api code. */
int rp_http_status(rp_err rc) {
    switch (rc) {
    case RP_OK: return 200;
    case RP_NOT_FOUND: return 404;
    case RP_BAD_REQUEST: return 400;
    case RP_UNAUTHORIZED: return 401;
    case RP_FORBIDDEN: return 403;
    case RP_CONFLICT: return 409;
    case RP_TOO_LARGE: return 413;
    case RP_STORE_FULL: return 507;
    case RP_UNAVAILABLE: return 503;
    default: return 500;
    }
}

/* The reason phrase of the statuses we send. */
static const char *http_reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Internal Server Error";
    }
}

/* Send status with body (n bytes) and the common headers. */
void rp_http_send_body(struct evhttp_request *req, const char *reqid, int status, const char *ctype,
                      const char *body, size_t n) {
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", ctype);
    evhttp_add_header(out, "X-Request-Id", reqid);
    if (status == 401) evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"rapport\"");
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_reply(req, 500, "Internal Server Error", NULL);
        return;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* HEAD: GET's headers, no body (evhttp would send one) */
        char len[24];
        snprintf(len, sizeof len, "%zu", n);
        evhttp_add_header(out, "Content-Length", len);
    } else if (n) {
        evbuffer_add(b, body, n);
    }
    evhttp_send_reply(req, status, http_reason(status), b);
    evbuffer_free(b);
}

/* {"error":{"code":...,"message":...}} into out, through the JSON writer
 * (escaping). False when it could not be written. */
bool rp_http_error_json(rp_err rc, const char *msg, rp_buf *out) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    rp_mp_pack_cstr(&pk, "error");
    msgpack_pack_map(&pk, 2);
    rp_mp_pack_cstr(&pk, "code");
    rp_mp_pack_cstr(&pk, rp_err_code(rc));
    rp_mp_pack_cstr(&pk, "message");
    rp_mp_pack_cstr(&pk, msg && *msg ? msg : rp_err_text(rc));
    rp_mpcheck_limits lim = {sb.size + 1, 4, 16, 1u << 16, 0, false};
    bool ok = rp_msgpack_bytes_to_json(sb.data, sb.size, &lim, 0, out, NULL, NULL) == RP_OK;
    msgpack_sbuffer_destroy(&sb);
    return ok;
}

void rp_http_send_error_status(struct evhttp_request *req, const char *reqid, int status, rp_err rc,
                              const char *msg) {
    rp_buf b;
    rp_buf_init(&b, 0);
    if (rp_http_error_json(rc, msg, &b))
        rp_http_send_body(req, reqid, status, "application/json", b.p, b.len);
    else
    {
        static const char fallback[] = "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"internal error\"}}";
        rp_http_send_body(req, reqid, 500, "application/json", fallback, sizeof fallback - 1);
    }
    rp_buf_free(&b);
}

/* An error reply with the status of its code. */
void rp_http_send_error(struct evhttp_request *req, const char *reqid, rp_err rc, const char *msg) {
    rp_http_send_error_status(req, reqid, rp_http_status(rc), rc, msg);
}

void rp_http_send_not_allowed(struct evhttp_request *req, const char *reqid, const char *allow) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    rp_http_send_error_status(req, reqid, 405, RP_BAD_REQUEST, "method not allowed on this route");
}

/* Unpack a reply's msgpack bytes into *o on the zone *z: 1 when unpacked,
 * 0 when they are not MessagePack (z live in both cases: the caller destroys
 * it), -1 when there was no memory for the zone (503 sent). */
static int unpack_reply(struct evhttp_request *req, const char *reqid, const char *data, size_t len,
                        msgpack_zone *z, msgpack_object *o) {
    if (!msgpack_zone_init(z, 4096)) {
        rp_http_send_error(req, reqid, RP_UNAVAILABLE, "out of memory");
        return -1;
    }
    size_t off = 0;
    return msgpack_unpack(data, len, &off, z, o) == MSGPACK_UNPACK_SUCCESS ? 1 : 0;
}

/* Send a msgpack result as JSON (200). The bytes are the api's own output
 * (not client input), so they are unpacked without the validator's walk. */
void rp_http_send_result(rp_http *h, struct evhttp_request *req, const char *reqid, const char *data,
                        size_t len) {
    msgpack_zone z;
    msgpack_object o;
    int got = unpack_reply(req, reqid, data, len, &z, &o);
    if (got < 0) return;
    rp_buf b;
    rp_buf_init(&b, h->cfg->max_output_bytes);
    rp_errbuf eb = {0};
    rp_err rc = got > 0
                    ? rp_msgpack_to_json(&o, 0, &b, &eb)
                    : rp_errf(&eb, RP_INTERNAL, "the reply is not MessagePack");
    if (rc == RP_OK) rp_http_send_body(req, reqid, 200, "application/json", b.p, b.len);
    else rp_http_send_error(req, reqid, rc == RP_TOO_LARGE || rc == RP_BAD_REQUEST ? RP_INTERNAL : rc, eb.msg);
    rp_buf_free(&b);
    msgpack_zone_destroy(&z);
}

/* Import results carry, beside each error's index, its NDJSON line
 * (index + 1): repack the result map with "line" added to each error. */
void rp_http_send_import_result(rp_http *h, struct evhttp_request *req, const char *reqid,
                               const char *data, size_t len) {
    msgpack_zone z;
    msgpack_object o;
    int got = unpack_reply(req, reqid, data, len, &z, &o);
    if (got < 0) return;
    if (got == 0 || o.type != MSGPACK_OBJECT_MAP) {
        msgpack_zone_destroy(&z);
        rp_http_send_result(h, req, reqid, data, len);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, o.via.map.size);
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object_kv *kv = &o.via.map.ptr[i];
        msgpack_pack_object(&pk, kv->key);
        bool errs = kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 6 &&
                    memcmp(kv->key.via.str.ptr, "errors", 6) == 0 &&
                    kv->val.type == MSGPACK_OBJECT_ARRAY;
        if (!errs) {
            msgpack_pack_object(&pk, kv->val);
            continue;
        }
        msgpack_pack_array(&pk, kv->val.via.array.size);
        for (uint32_t j = 0; j < kv->val.via.array.size; j++) {
            const msgpack_object *e = &kv->val.via.array.ptr[j];
            const msgpack_object *idx = rp_mp_get(e, "index");
            if (e->type != MSGPACK_OBJECT_MAP || idx == NULL ||
                idx->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                msgpack_pack_object(&pk, *e);
                continue;
            }
            msgpack_pack_map(&pk, e->via.map.size + 1);
            for (uint32_t k = 0; k < e->via.map.size; k++) {
                msgpack_pack_object(&pk, e->via.map.ptr[k].key);
                msgpack_pack_object(&pk, e->via.map.ptr[k].val);
                if (&e->via.map.ptr[k].val == idx) {
                    rp_mp_pack_cstr(&pk, "line");
                    msgpack_pack_uint64(&pk, idx->via.u64 + 1);
                }
            }
        }
    }
    rp_http_send_result(h, req, reqid, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&z);
}

/* A strict import names its bad record "records[N]: ..."; over HTTP the
 * record is line N+1 of the body. */
void rp_http_import_error_text(const char *msg, char *out, size_t n) {
    unsigned long idx;
    int used = 0;
    if (msg && sscanf(msg, "records[%lu]: %n", &idx, &used) == 1 && used > 0)
        snprintf(out, n, "line %lu: %s", idx + 1, msg + used);
    else
        snprintf(out, n, "%s", msg ? msg : "");
}

/* GET /metrics: the api's metrics, then the server's (net/metrics.h). */
void rp_http_serve_metrics(rp_http *h, struct evhttp_request *req, const char *reqid) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_api_metrics(h->api, &sb);
    rp_metrics_net(h->stats, &sb);
    rp_http_send_body(req, reqid, 200, "text/plain; version=0.0.4; charset=utf-8", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* GET /openapi.yaml: the contract, as embedded at build time. */
void rp_http_serve_openapi(struct evhttp_request *req, const char *reqid) {
    rp_http_send_body(req, reqid, 200, "application/yaml", (const char *)rp_openapi_yaml,
                      rp_openapi_yaml_len);
}
