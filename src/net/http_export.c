/* http_export.c — GET /v1/export: the whole store as NDJSON, streamed.
 *
 * The export streams page by page, each page one bounded `export` call
 * (limit, after), asking for the next page only once the previous one has
 * been written to the socket, so a slow reader holds at most one page in
 * memory. A failure before the first page is an ordinary error reply;
 * after it, a last line {"error":{...}} ends the stream. The call stays
 * pending (rp_http_pending_add) for the whole stream: the connection is
 * exempt from the slow-request deadline while it streams.
 */
#include "core/alloc.h"
#include "net/http_int.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "model/codec.h"
#include "net/buf.h"
#include "net/json.h"

#define EXPORT_PAGE_DEFAULT 100

static void export_next(http_call *c);

/* The previous page has been written to the socket: fetch the next. */
static void on_export_drained(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    export_next(arg);
}

/* Finish the stream (or the request) and free the call. */
static void export_finish(http_call *c) {
    struct evhttp_request *req = c->req;
    c->req = NULL;
    if (req) evhttp_send_reply_end(req);
    rp_http_pending_remove(c->h, c);
    rp_http_call_free(c);
}

/* A page's records as NDJSON lines into out; *after gets `next` (empty at
 * the end). Returns false when the page is not the expected map. */
static bool export_page_lines(const char *data, size_t len, rp_buf *out, char after[RP_ID_MAX + 1]) {
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    after[0] = '\0';
    if (!msgpack_zone_init(&z, 8192)) return false;
    bool ok = msgpack_unpack(data, len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS;
    const msgpack_object *recs = ok ? rp_mp_get(&o, "records") : NULL;
    const msgpack_object *next = ok ? rp_mp_get(&o, "next") : NULL;
    ok = recs && recs->type == MSGPACK_OBJECT_ARRAY && next &&
         (next->type == MSGPACK_OBJECT_NIL ||
          (next->type == MSGPACK_OBJECT_STR && next->via.str.size <= RP_ID_MAX));
    for (uint32_t i = 0; ok && i < recs->via.array.size; i++)
        ok = rp_msgpack_to_json(&recs->via.array.ptr[i], 0, out, NULL) == RP_OK &&
             rp_buf_putc(out, '\n') == RP_OK;
    if (ok && next->type == MSGPACK_OBJECT_STR) {
        memcpy(after, next->via.str.ptr, next->via.str.size);
        after[next->via.str.size] = '\0';
    }
    msgpack_zone_destroy(&z);
    return ok;
}

/* A page failed: before the headers, an ordinary error reply; after them,
 * a last NDJSON line saying so, and the end of the stream. */
static void export_fail(http_call *c, rp_err rc, const char *msg) {
    if (!c->started) {
        struct evhttp_request *req = c->req;
        c->req = NULL;
        rp_http_send_error(req, c->reqid, rc, msg);
        rp_http_pending_remove(c->h, c);
        rp_http_call_free(c);
        return;
    }
    char line[128];
    int n = snprintf(line, sizeof line, "{\"error\":{\"code\":\"%s\",\"message\":\"export stopped\"}}\n",
                     rp_err_code(rc));
    struct evbuffer *b = evbuffer_new();
    if (b && n > 0) {
        evbuffer_add(b, line, (size_t)n);
        evhttp_send_reply_chunk(c->req, b);
    }
    if (b) evbuffer_free(b);
    export_finish(c);
}

/* One page came back: send its records as NDJSON lines, and ask for the
 * next page once they are written (one page in memory at a time). */
void rp_http_export_respond(http_call *c, rp_err rc, const char *msg, const char *data, size_t len) {
    if (rc != RP_OK) {
        export_fail(c, rc, msg);
        return;
    }
    rp_buf out;
    rp_buf_init(&out, 0);
    struct evbuffer *b = NULL;
    if (!export_page_lines(data, len, &out, c->after) || (b = evbuffer_new()) == NULL) {
        rp_buf_free(&out);
        export_fail(c, RP_INTERNAL, "an export page could not be converted");
        return;
    }
    if (!c->started) {
        struct evkeyvalq *hd = evhttp_request_get_output_headers(c->req);
        evhttp_add_header(hd, "Content-Type", "application/x-ndjson");
        evhttp_add_header(hd, "X-Request-Id", c->reqid);
        evhttp_send_reply_start(c->req, 200, "OK");
        c->started = true;
    }
    if (out.len) evbuffer_add(b, out.p, out.len);
    rp_buf_free(&out);
    bool more = c->after[0] != '\0';
    if (more && evbuffer_get_length(b) > 0) {
        evhttp_send_reply_chunk_with_cb(c->req, b, on_export_drained, c);
        evbuffer_free(b);
        return;
    }
    if (evbuffer_get_length(b) > 0) evhttp_send_reply_chunk(c->req, b);
    evbuffer_free(b);
    export_finish(c);
}

/* Ask the api for the next page of c's export. */
static void export_next(http_call *c) {
    if (c->req == NULL) return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, c->after[0] ? 2 : 1);
    rp_mp_pack_cstr(&pk, "limit");
    msgpack_pack_int64(&pk, c->page);
    if (c->after[0]) {
        rp_mp_pack_cstr(&pk, "after");
        rp_mp_pack_cstr(&pk, c->after);
    }
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    if (!msgpack_zone_init(&z, 256) ||
        msgpack_unpack(sb.data, sb.size, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_sbuffer_destroy(&sb);
        rp_http_export_respond(c, RP_UNAVAILABLE, "out of memory", NULL, 0);
        return;
    }
    rp_conn_call_begin(&c->h->flight, &c->cc); /* counted since export_start; sets the thread */
    if (!rp_api_allowed(c->h->op_export, c->role)) /* the first page is answered 403 */
        rp_conn_count_refused(c->h->stats, RP_FACE_HTTP, RP_FORBIDDEN);
    rp_api_call(c->h->api, c->h->op_export, c->role, c->reqid, &o, rp_http_on_api_reply, c);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

/* GET /v1/export: check the query, then stream page after page (HEAD: the
 * same checks, then the stream's headers without exporting). */
void rp_http_export_start(rp_http *h, const http_in *in, http_conn *conn, rp_role role) {
    rp_errbuf eb = {0};
    rp_err rc = RP_OK;
    int64_t page = EXPORT_PAGE_DEFAULT;
    const qparam *after = NULL;
    for (size_t i = 0; i < in->nq && rc == RP_OK; i++) {
        const qparam *q = &in->q[i];
        if (strcmp(q->key, "limit") == 0) {
            if (!rp_http_parse_int(q->val, &page) || page < 1 || page > 1000)
                rc = rp_errf(&eb, RP_BAD_REQUEST, "query parameter 'limit' must be 1..1000");
        } else if (strcmp(q->key, "after") == 0) {
            if (q->vlen == 0 || q->vlen > RP_ID_MAX)
                rc = rp_errf(&eb, RP_BAD_REQUEST, "query parameter 'after' must be an id");
            after = q;
        } else {
            rc = rp_errf(&eb, RP_BAD_REQUEST, "unknown query parameter '%.40s' (expected: limit, after)",
                         q->key);
        }
    }
    if (rc != RP_OK) {
        rp_http_send_error(in->req, in->reqid, rc, eb.msg);
        return;
    }
    if (in->method == HTTP_M_HEAD) { /* as GET (same checks, same order): the stream's headers, no export */
        if (!rp_api_allowed(h->op_export, role)) { /* the api's refusal, word for word */
            rp_errf(&eb, RP_FORBIDDEN, "role '%s' may not call %s", rp_role_name(role), h->op_export->name);
            rp_http_send_error(in->req, in->reqid, RP_FORBIDDEN, eb.msg);
        } else
            rp_http_send_body(in->req, in->reqid, 200, "application/x-ndjson", NULL, 0);
        return;
    }
    http_call *c = rp_http_call_new(h, in, conn, role, KIND_EXPORT, true, NULL);
    if (c == NULL) {
        rp_http_send_error(in->req, in->reqid, RP_UNAVAILABLE, "out of memory");
        return;
    }
    c->page = page;
    if (after) memcpy(c->after, after->val, after->vlen + 1);
    rp_http_pending_add(h, c); /* streamed: lives until the last page is written */
    export_next(c);
}
