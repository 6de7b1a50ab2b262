/* http.c — the HTTP/JSON face: evhttp on one worker loop (see http.h).
 *
 * A request goes: route (method + path) -> operation of the api table and a
 * params map built from the path segments, the query string and the JSON
 * body (JSON -> MessagePack through net/json.h, then the whole params map
 * validated and unpacked by rp_mpcheck_unpack) -> rp_api_call -> the result
 * back to JSON. The routes are the table in http_route.c (documented in
 * proto/METHODS.md).
 *
 * Replies. A read replies inside rp_api_call, on this loop's thread, and the
 * response is sent at once. A write replies on the writer thread after its
 * commit: the reply is copied into the request's heap record (http_call)
 * and posted back to this loop (rp_loop_post), which sends it. The reply
 * callback tells the two apart by thread identity: only the loop thread
 * ever calls rp_api_call here.
 *
 * Connection lifetime. evhttp owns requests and connections. A request that
 * waits for the writer (or streams an export) is recorded on its
 * connection (http_conn, found through a small pointer-keyed hash table),
 * and the connection's close callback marks it dead. libevent 2.1 calls
 * that callback before it frees anything, with the request either still
 * attached (it will be freed right after: we drop our pointer) or detached
 * because the peer went away while we held it (then it is ours to free).
 * Either way nothing is sent to, or freed through, a dead request.
 *
 * Counting and deadlines (the shared lifecycle, net/conn.h: admission,
 * time-outs, calls in flight and their post-back). Every connection gets
 * its record when it is
 * accepted (evhttp_set_bevcb: we create its bufferevent and keep a
 * reference to it), so open connections are counted into rp_net_stats and
 * capped by max_connections (shared with the RPC face) from the first byte,
 * not from the first complete request. A connection over the cap answers
 * its first request 503 and closes, or is shut down after a second. Each
 * connection must deliver a complete request within slow_timeout_ms of its
 * accept or its previous request (libevent's own timeout restarts on every
 * byte, so on its own it lets a slowloris drip forever); a connection that
 * waits on a write or streams an export is exempt while it waits. A sweeper
 * timer (every slow_timeout_ms / 4, at most 250 ms) enforces the deadlines
 * by shutting the socket down, and drops the records of connections evhttp
 * has freed without telling us (those that never completed a request: the
 * others are dropped in evhttp's close callback): O(connections) per sweep. Reading is also capped at 2 x 16 KiB of unparsed input (a read
 * watermark), so a client that pipelines without reading cannot make the
 * server buffer its requests.
 *
 * Limits: headers 16 KiB, body max_request_bytes (libevent answers 413
 * itself before we see the request, as soon as the Content-Length says so;
 * its HTML error pages are rewritten into our JSON on the way out, and the
 * connection lingers after them: http_errpage.c, linger_start), every read
 * or write stall slow_timeout_ms (so an idle keep-alive connection also
 * closes after slow_timeout_ms: HTTP clients reconnect transparently; the
 * long idle_timeout_ms is the RPC face's), replies max_output_bytes of
 * JSON. An export streams page by page (each page a bounded export call),
 * asking for the next page only once the previous one has been written to
 * the socket, so a slow reader holds at most one page in memory
 * (http_export.c).
 *
 * Order of refusals for every request: over the connection cap (503), a
 * malformed URI (400), an unknown route (404) or method (405), a missing
 * token (401) — before anything reads or converts the body — then bad
 * params or body (400, 413...). The routes are one table (http_route.c).
 */
#include "core/alloc.h"
#include "net/http_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "model/codec.h"
#include "model/ident.h"
#include "net/buf.h"
#include "net/json.h"
#include "net/ndlines.h"
#include "model/mpcheck.h"

/* --- the connection table ----------------------------------------------------- */

/* Slot of bev in the table (a 64-bit mix of the pointer). */
static size_t conn_hash(const rp_http *h, const struct bufferevent *bev) {
    uint64_t x = (uint64_t)(uintptr_t)bev;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (h->conns_cap - 1);
}

/* The record of bev, or NULL. O(1) expected (load <= 1/2). */
static http_conn *conn_find(rp_http *h, const struct bufferevent *bev) {
    if (h->conns_cap == 0) return NULL;
    for (size_t i = conn_hash(h, bev);; i = (i + 1) & (h->conns_cap - 1)) {
        if (h->conns[i] == NULL) return NULL;
        if (h->conns[i]->bev == bev) return h->conns[i];
    }
}

/* Insert (the key is not present). Grows at half load. Returns false when
 * out of memory. */
static bool conn_insert(rp_http *h, http_conn *c) {
    if ((h->conns_n + 1) * 2 > h->conns_cap) {
        size_t cap = h->conns_cap ? h->conns_cap * 2 : 64;
        http_conn **old = h->conns;
        size_t oldcap = h->conns_cap;
        h->conns = rp_calloc(cap, sizeof *h->conns);
        if (h->conns == NULL) {
            h->conns = old;
            return false;
        }
        h->conns_cap = cap;
        for (size_t i = 0; i < oldcap; i++) {
            if (old[i] == NULL) continue;
            size_t j = conn_hash(h, old[i]->bev);
            while (h->conns[j]) j = (j + 1) & (cap - 1);
            h->conns[j] = old[i];
        }
        free(old);
    }
    size_t j = conn_hash(h, c->bev);
    while (h->conns[j]) j = (j + 1) & (h->conns_cap - 1);
    h->conns[j] = c;
    h->conns_n++;
    return true;
}

/* Remove c, shifting back the entries of its probe run. */
static void conn_remove(rp_http *h, http_conn *c) {
    size_t mask = h->conns_cap - 1, i = conn_hash(h, c->bev);
    while (h->conns[i] != c) {
        assert(h->conns[i] != NULL);
        i = (i + 1) & mask;
    }
    h->conns[i] = NULL;
    h->conns_n--;
    for (size_t j = (i + 1) & mask; h->conns[j]; j = (j + 1) & mask) {
        size_t home = conn_hash(h, h->conns[j]->bev);
        /* move j back to i when i lies cyclically in [home, j) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            h->conns[i] = h->conns[j];
            h->conns[j] = NULL;
            i = j;
        }
    }
}

/* --- pending calls ----------------------------------------------------------- */

/* Record a heap call whose reply is still to come (a write in the writer's
 * queue, or an export stream), on h's list and on its connection. */
void rp_http_pending_add(rp_http *h, http_call *c) {
    assert(!c->pending && c->heap);
    c->pending = true;
    c->prev = NULL;
    c->next = h->pending;
    if (h->pending) h->pending->prev = c;
    h->pending = c;
    if (c->conn) c->conn->call = c;
    rp_conn_call_begin(&h->flight, &c->cc); /* no-op when dispatch counted it */
}

/* Undo rp_http_pending_add (no-op for a call that is not pending). */
void rp_http_pending_remove(rp_http *h, http_call *c) {
    if (!c->pending) return;
    if (c->prev) c->prev->next = c->next;
    else h->pending = c->next;
    if (c->next) c->next->prev = c->prev;
    c->pending = false;
    if (c->conn && c->conn->call == c) c->conn->call = NULL;
    rp_conn_call_end(&h->flight, &c->cc);
}

void rp_http_call_free(http_call *c) {
    if (!c->heap) return;
    free(c->msg);
    free(c->data);
    free(c);
}

static void conn_drop(rp_http *h, http_conn *c);

/* The connection is going away (peer closed, timed out, or the server is
 * freeing it). libevent calls this before freeing the connection or its
 * requests. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg) {
    http_conn *conn = arg;
    rp_http *h = conn->h;
    (void)evcon;
    /* Replies still unsent when evhttp closes: it gave up on a client that
     * did not read them for slow_timeout_ms (its write time-out; a client
     * that reset with replies unread lands here too). Counted as timed out,
     * like the connections the sweeper shuts down. */
    if (!conn->shut && evbuffer_get_length(bufferevent_get_output(conn->bev)) > 0)
        rp_conn_count_timeout(h->stats);
    http_call *c = conn->call;
    if (c != NULL) {
        /* detached by libevent (peer gone while we held it): ours to free */
        if (c->req && evhttp_request_get_connection(c->req) == NULL) evhttp_request_free(c->req);
        c->req = NULL;
        c->conn = NULL;
        conn->call = NULL;
        if (!c->await_writer) { /* an export stream: nobody else refers to it */
            rp_http_pending_remove(h, c);
            rp_http_call_free(c);
        }
    }
    if (conn->linger) { /* an error page went out: the sweeper drains, then drops */
        conn->evcon = NULL;
        return;
    }
    conn_drop(h, conn); /* evhttp still holds its own reference to the bev */
}

/* A customer GET's reply: ETag "v<version>" on it, and true when the
 * request's If-None-Match names that tag (or *): then 304 is sent. */
static bool etag_reply(http_call *c, struct evhttp_request *req, const char *data, size_t len) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    char tag[32] = "";
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *v = rp_mp_get(&u.data, "version");
        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            snprintf(tag, sizeof tag, "\"v%" PRIu64 "\"", v->via.u64);
    }
    msgpack_unpacked_destroy(&u);
    if (!tag[0]) return false;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "ETag", tag);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (inm == NULL || (strcmp(inm, "*") != 0 && strstr(inm, tag) == NULL)) return false;
    evhttp_add_header(out, "X-Request-Id", c->reqid);
    evhttp_send_reply(req, 304, "Not Modified", NULL);
    return true;
}

/* Answer call c with the api's reply (on the loop thread). */
static void respond(http_call *c, rp_err rc, const char *msg, const char *data, size_t len) {
    if (c->req == NULL) return; /* the client is gone */
    if (c->kind == KIND_EXPORT) {
        rp_http_export_respond(c, rc, msg, data, len);
        return;
    }
    struct evhttp_request *req = c->req;
    c->req = NULL; /* sent: evhttp owns it again */
    if (rc != RP_OK) {
        char text[RP_ERRMSG_MAX + 32];
        if (c->kind == KIND_IMPORT) rp_http_import_error_text(msg, text, sizeof text);
        else snprintf(text, sizeof text, "%s", msg ? msg : "");
        /* a stale If-Match / If-None-Match: RFC 9110 says 412 */
        int st = rc == RP_CONFLICT && c->precondition ? 412 : rp_http_status(rc);
        rp_http_send_error_status(req, c->reqid, st, rc, text);
    } else if (c->etag && etag_reply(c, req, data, len)) {
        /* 304 sent */
    } else if (c->kind == KIND_IMPORT) {
        rp_http_send_import_result(c->h, req, c->reqid, data, len);
    } else {
        rp_http_send_result(c->h, req, c->reqid, data, len);
    }
}

/* --- the reply callback and the post back from the writer ------------------------ */

/* On the loop: a write's reply came back from the writer thread. */
static void on_posted(void *arg) {
    http_call *c = arg;
    rp_http *h = c->h;
    rp_http_pending_remove(h, c);
    respond(c, c->rc, c->msg, c->data, c->len);
    rp_http_call_free(c);
}

/* The api's reply callback. On the loop's own thread (a read, or a write
 * refused before the writer) it answers at once; on the writer thread it
 * copies the reply into the heap call and posts it to the loop. */
void rp_http_on_api_reply(void *arg, rp_err rc, const char *msg, const char *result, size_t len) {
    http_call *c = arg;
    if (rp_conn_call_inline(&c->cc)) {
        c->replied = true;
        if (c->await_writer && rc == RP_UNAVAILABLE) /* a write refused before the writer */
            rp_conn_count_refused(c->h->stats, RP_FACE_HTTP, rc);
        respond(c, rc, msg, result, len);
        return;
    }
    /* the writer thread: copy, and hand back to the loop */
    assert(c->heap);
    c->rc = rc;
    if (msg) c->msg = rp_strdup(msg);
    if (rc == RP_OK && len > 0) {
        c->data = rp_malloc(len);
        if (c->data == NULL) {
            c->rc = RP_UNAVAILABLE;
            free(c->msg);
            c->msg = rp_strdup("out of memory copying the reply");
        } else {
            memcpy(c->data, result, len);
            c->len = len;
        }
    }
    if (c->rc != RP_OK && c->msg == NULL) c->rc = RP_UNAVAILABLE;
    atomic_store(&c->posted, true);
    rp_conn_call_post(&c->h->flight, &c->cc, on_posted, c);
}

/* Run op for request c with params. c is on the stack (reads) or the heap
 * (writes, exports); a heap call still waiting afterwards becomes pending. */
static void dispatch(http_call *c, const rp_api_op *op, const msgpack_object *params) {
    c->replied = false;
    c->await_writer = op->write;
    rp_conn_call_begin(&c->h->flight, &c->cc);
    if (!rp_api_allowed(op, c->role)) /* rp_api_call answers it 403 */
        rp_conn_count_refused(c->h->stats, RP_FACE_HTTP, RP_FORBIDDEN);
    rp_api_call(c->h->api, op, c->role, c->reqid, params, rp_http_on_api_reply, c);
    if (c->replied) {
        rp_conn_call_end(&c->h->flight, &c->cc);
        rp_http_call_free(c); /* answered already (no-op for a call on the stack) */
        return;
    }
    assert(c->heap && op->write);
    if (!c->pending) rp_http_pending_add(c->h, c);
}

/* The X-Request-Id to use: the client's when it is 1..64 printable bytes
 * without spaces, else a new one. */
static void request_id(rp_http *h, struct evhttp_request *req, char out[HTTP_REQID_MAX + 1]) {
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-Id");
    if (v) {
        size_t n = strlen(v);
        bool ok = n > 0 && n <= HTTP_REQID_MAX;
        for (size_t i = 0; ok && i < n; i++) ok = v[i] > 0x20 && v[i] < 0x7f;
        if (ok) {
            memcpy(out, v, n + 1);
            return;
        }
    }
    rp_http_new_reqid(h, out);
}

void rp_http_new_reqid(rp_http *h, char out[HTTP_REQID_MAX + 1]) {
    snprintf(out, HTTP_REQID_MAX + 1, "%08" PRIx32 "%012" PRIx64, h->reqid_base, ++h->reqid_seq);
}

/* The role of the request's bearer token (admin when no tokens are
 * configured: the server is then loopback-only). RP_ROLE_NONE: refuse. */
static rp_role request_role(rp_http *h, struct evhttp_request *req) {
    rp_tokens_box *tb = rp_api_tokens(h->api);
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0) return rp_tokens_auth_role(tb, NULL, 0, NULL);
    a += 7;
    while (*a == ' ') a++;
    size_t n = strlen(a);
    while (n && a[n - 1] == ' ') n--;
    if (n == 0) return rp_tokens_auth_role(tb, NULL, 0, NULL);
    return rp_tokens_auth_role(tb, a, n, NULL); /* the table of the last reload */
}

/* --- the request callback ------------------------------------------------------ */

/* The record of req's connection (made when it was accepted). Arms the
 * deadline of its next request, and refuses the request (503, closed) when
 * the connection was accepted over max_connections. NULL: replied. */
static http_conn *track_conn(rp_http *h, struct evhttp_request *req, const char *reqid) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon == NULL) return NULL;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    http_conn *c = conn_find(h, bev);
    if (c == NULL || c->over) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        rp_conn_count_refused(h->stats, RP_FACE_HTTP, RP_UNAVAILABLE);
        rp_http_send_error(req, reqid, RP_UNAVAILABLE, "too many connections; retry later");
        return NULL;
    }
    if (c->evcon == NULL) {
        c->evcon = evcon;
        evhttp_connection_set_closecb(evcon, on_conn_close, c);
    }
    /* evhttp sets no read watermark: without one it keeps buffering
     * whatever a pipelining client sends while a reply is written */
    bufferevent_setwatermark(bev, EV_READ, 0, 2 * HTTP_MAX_HEADERS);
    rp_http_errpage_request(c);
    c->deadline_ms = rp_conn_now_ms() + h->dl.slow_ms;
    return c;
}

/* A call record for request `in` (heap when its reply may come later). */
http_call *rp_http_call_new(rp_http *h, const http_in *in, http_conn *conn, rp_role role,
                           reply_kind kind, bool heap, http_call *local) {
    http_call *c = heap ? rp_calloc(1, sizeof *c) : local;
    if (c == NULL) return NULL;
    if (!heap) memset(c, 0, sizeof *c);
    c->heap = heap;
    c->h = h;
    c->req = in->req;
    c->conn = conn;
    c->kind = kind;
    c->role = role;
    atomic_init(&c->posted, false);
    memcpy(c->reqid, in->reqid, sizeof c->reqid);
    return c;
}

/* Build the params of a matched api route (this reads the body) and run
 * its operation. */
static void run_api(rp_http *h, const http_in *in, http_conn *conn, rp_role role,
                    const http_match *m) {
    rp_errbuf eb = {0};
    msgpack_sbuffer whole;
    msgpack_sbuffer_init(&whole);
    msgpack_zone z;
    msgpack_object params;
    if (!msgpack_zone_init(&z, 2048)) {
        rp_http_send_error(in->req, in->reqid, RP_UNAVAILABLE, "out of memory");
        msgpack_sbuffer_destroy(&whole);
        return;
    }
    rp_err rc = rp_http_route_params(h, in, m, &whole, &z, &params, &eb);
    http_call local;
    http_call *c = rc == RP_OK ? rp_http_call_new(h, in, conn, role, m->kind, m->op->write, &local) : NULL;
    if (rc != RP_OK || c == NULL) /* 413, 503 counted; a 400 is not a refusal */
        rp_conn_count_refused(h->stats, RP_FACE_HTTP, rc != RP_OK ? rc : RP_UNAVAILABLE);
    if (rc != RP_OK) rp_http_send_error(in->req, in->reqid, rc, eb.msg[0] ? eb.msg : NULL);
    else if (c == NULL) rp_http_send_error(in->req, in->reqid, RP_UNAVAILABLE, "out of memory");
    else {
        struct evkeyvalq *hd = evhttp_request_get_input_headers(in->req);
        c->precondition = m->precondition && (evhttp_find_header(hd, "If-Match") ||
                                              evhttp_find_header(hd, "If-None-Match"));
        c->etag = m->etag;
        dispatch(c, m->op, &params);
    }
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&whole);
}

/* Serve a matched, authenticated route. */
static void serve(rp_http *h, const http_in *in, http_conn *conn, rp_role role, const http_match *m) {
    switch (m->serve) {
    case HTTP_SERVE_HEALTH: {
        rp_cluster *cl = rp_api_cluster(h->api);
        if (cl == NULL) {
            rp_http_send_body(in->req, in->reqid, 200, "application/json", "{\"status\":\"ok\"}", 15);
            return;
        }
        /* cluster mode: 200 only when connected, applying and within max_lag
         * (proto/CLUSTER.md), so that a balancer sends requests elsewhere */
        rp_cluster_stats cs;
        rp_cluster_get_stats(cl, &cs);
        char body[256];
        if (!cs.healthy) {
            snprintf(body, sizeof body, "cluster node %s: %s (applied %" PRIu64 ", lag %" PRIu64 ")",
                     cs.node_id, !cs.connected ? "not connected to NATS" : cs.halted ? "apply halted" : "behind",
                     cs.applied_seq, cs.lag);
            rp_http_send_error(in->req, in->reqid, RP_UNAVAILABLE, body);
            return;
        }
        int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"applied_seq\":%" PRIu64 ",\"lag\":%" PRIu64 "}",
                         cs.applied_seq, cs.lag);
        rp_http_send_body(in->req, in->reqid, 200, "application/json", body,
                          n > 0 && (size_t)n < sizeof body ? (size_t)n : 0);
        return;
    }
    case HTTP_SERVE_METRICS: rp_http_serve_metrics(h, in->req, in->reqid); return;
    case HTTP_SERVE_OPENAPI: rp_http_serve_openapi(in->req, in->reqid); return;
    case HTTP_SERVE_CARD: rp_http_serve_card(h, in, role); return;
    case HTTP_SERVE_CARD_CSS: rp_http_serve_card_css(h, in->req, in->reqid); return;
    case HTTP_SERVE_EXPORT:
        rp_http_export_start(h, in, conn, role); /* HEAD: its checks, no export */
        return;
    case HTTP_SERVE_API: run_api(h, in, conn, role, m); return;
    }
}

/* CORS (setting cors_origins): the Access-Control-Allow-Origin of req's
 * Origin, or NULL when it is not allowed (no CORS headers: the browser
 * refuses). Adds the headers every response to it carries. */
static const char *cors_headers(rp_http *h, struct evhttp_request *req) {
    const char *list = h->cfg->cors_origins;
    if (list[0] == '\0') return NULL;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    bool any = strcmp(list, "*") == 0;
    if (!any) evhttp_add_header(out, "Vary", "Origin"); /* the answer depends on it */
    const char *o = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
    if (o == NULL || o[0] == '\0') return NULL;
    if (!any && !rp_config_list_has(list, o, strlen(o))) return NULL;
    const char *allow = any ? "*" : o;
    evhttp_add_header(out, "Access-Control-Allow-Origin", allow);
    if (!any) evhttp_add_header(out, "Access-Control-Allow-Credentials", "true"); /* never for * */
    evhttp_add_header(out, "Access-Control-Expose-Headers", "X-Request-Id, ETag");
    return allow;
}

/* OPTIONS: 204 with Allow for a known path (404 otherwise), and for a CORS
 * preflight from an allowed origin the Access-Control-Allow-* headers.
 * No token needed: browsers send preflights without credentials. */
static void serve_options(rp_http *h, http_in *in, const char *origin) {
    http_match m;
    memset(&m, 0, sizeof m);
    rp_errbuf eb = {0};
    if (rp_http_route_find(h, in, &m, &eb) == RP_NOT_FOUND) {
        rp_http_send_error(in->req, in->reqid, RP_NOT_FOUND, eb.msg);
        return;
    }
    const char *allow = m.allow; /* the rows' methods, HEAD and OPTIONS */
    struct evkeyvalq *out = evhttp_request_get_output_headers(in->req);
    evhttp_add_header(out, "Allow", allow);
    evhttp_add_header(out, "X-Request-Id", in->reqid);
    const char *acrm = evhttp_find_header(evhttp_request_get_input_headers(in->req),
                                          "Access-Control-Request-Method");
    if (origin && acrm) {
        evhttp_add_header(out, "Access-Control-Allow-Methods", allow);
        evhttp_add_header(out, "Access-Control-Allow-Headers",
                          "Authorization, Content-Type, Idempotency-Key, X-Request-Id, If-Match, If-None-Match");
        evhttp_add_header(out, "Access-Control-Max-Age", "600");
    }
    evhttp_send_reply(in->req, 204, "No Content", NULL);
}

/* evhttp's callback for every request: parse, route, authenticate, and
 * only then build params from the body and run (order at the top). */
static void on_request(struct evhttp_request *req, void *arg) {
    rp_http *h = arg;
    http_in in;
    memset(&in, 0, sizeof in);
    in.req = req;
    in.method = rp_http_method_of(req);
    request_id(h, req, in.reqid);
    http_conn *conn = track_conn(h, req, in.reqid);
    if (conn == NULL) return;
    const char *origin = cors_headers(h, req);
    rp_errbuf eb = {0};
    http_match m;
    memset(&m, 0, sizeof m);
    rp_err rc = rp_http_parse_uri(&in, &eb);
    if (rc == RP_OK && in.method == HTTP_M_OPTIONS) {
        serve_options(h, &in, origin);
        goto done;
    }
    if (rc == RP_OK) rc = rp_http_route_find(h, &in, &m, &eb);
    if (rc != RP_OK) {
        if (m.allow[0] && rc == RP_BAD_REQUEST) rp_http_send_not_allowed(req, in.reqid, m.allow);
        else rp_http_send_error(req, in.reqid, rc, eb.msg);
        goto done;
    }
    bool tokenless = m.serve == HTTP_SERVE_HEALTH || m.serve == HTTP_SERVE_OPENAPI ||
                     m.serve == HTTP_SERVE_CARD_CSS ||
                     (m.serve == HTTP_SERVE_CARD && rp_http_card_signed(&in)); /* checked there */
    rp_role role = tokenless ? RP_ROLE_ROUTE : request_role(h, req);
    if (role == RP_ROLE_NONE) {
        rp_conn_count_refused(h->stats, RP_FACE_HTTP, RP_UNAUTHORIZED);
        rp_http_send_error(req, in.reqid, RP_UNAUTHORIZED, "a valid bearer token is required");
        goto done;
    }
    serve(h, &in, conn, role, &m);
done:
    rp_http_in_free(&in);
}

/* evhttp asks for the bufferevent of each accepted connection: make it,
 * keep a reference, and count the connection (over the cap it is marked
 * and refused at its first request or by the sweeper). NULL makes evhttp
 * drop the connection (out of memory). */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg) {
    rp_http *h = arg;
    http_conn *c = rp_calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL || !rp_http_errpage_attach(h, c) || !conn_insert(h, c)) {
        if (c->bev) {
            rp_http_errpage_detach(c);
            bufferevent_free(c->bev);
        }
        free(c);
        return NULL;
    }
    bufferevent_incref(c->bev);
    c->h = h;
    c->over = !rp_conn_admit(h->stats, h->cfg); /* over: 503 at its first request */
    c->deadline_ms = rp_conn_now_ms() + (c->over ? h->dl.over_ms : h->dl.slow_ms);
    return c->bev;
}

/* Drop the record of a connection evhttp has freed (or will never use). */
static void conn_drop(rp_http *h, http_conn *c) {
    assert(c->call == NULL);
    rp_http_errpage_detach(c);
    conn_remove(h, c);
    bufferevent_decref(c->bev); /* the last reference: closes the socket */
    rp_conn_release(h->stats);
    free(c);
}

/* Lingering close (after one of libevent's error pages, http_errpage.c):
 * evhttp has sent the reply, shut down our write side and let go of the
 * connection, but the client may still be sending the body we refused.
 * Closing now, with its bytes unread, would reset the connection and can
 * destroy the reply before the client reads it. So we read and discard
 * until the client closes, or for slow_timeout_ms at most. */
static void on_linger_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_linger_event(struct bufferevent *bev, short what, void *arg) {
    http_conn *c = arg;
    (void)bev;
    (void)what; /* EOF, an error or the time-out: done */
    conn_drop(c->h, c);
}

static void linger_start(rp_http *h, http_conn *c, int64_t now) {
    c->lingering = true;
    c->deadline_ms = now + h->dl.slow_ms;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_setcb(c->bev, on_linger_read, NULL, on_linger_event, c);
    bufferevent_set_timeouts(c->bev, &h->dl.slow, NULL);
    bufferevent_enable(c->bev, EV_READ);
}

/* The sweeper: drop the records of freed connections; shut down those past
 * their deadline that are not waiting on us. O(table size). */
static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rp_http *h = arg;
    int64_t now = rp_conn_now_ms();
    for (size_t i = 0; i < h->conns_cap;) {
        http_conn *c = h->conns[i];
        if (c == NULL) {
            i++;
            continue;
        }
        if (c->lingering) {
            if (now >= c->deadline_ms) {
                conn_drop(h, c);
                continue;
            }
            i++;
            continue;
        }
        bufferevent_event_cb ecb = NULL;
        bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
        if (ecb == NULL && c->call == NULL) { /* freed by evhttp */
            if (c->linger) {
                linger_start(h, c, now);
                i++;
                continue;
            }
            conn_drop(h, c);
            continue; /* the removal may have moved another entry into slot i */
        }
        if (!c->shut && c->call == NULL && now >= c->deadline_ms) {
            evutil_socket_t s = bufferevent_getfd(c->bev);
            if (s >= 0) shutdown(s, SHUT_RDWR); /* evhttp sees EOF and frees it */
            c->shut = true;
            rp_conn_count_timeout(h->stats);
        }
        i++;
    }
}

/* --- lifetime ---------------------------------------------------------------------- */

rp_err rp_http_create(rp_loop *loop, evutil_socket_t fd, rp_api *api, const rp_config *cfg,
                      rp_net_stats *stats, rp_http **out, rp_errbuf *eb) {
    assert(loop && api && cfg && stats && out);
    rp_http *h = rp_calloc(1, sizeof *h);
    if (h == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory creating the HTTP face");
    h->loop = loop;
    h->api = api;
    h->cfg = cfg;
    h->stats = stats;
    rp_conn_flight_init(&h->flight, loop);
    rp_conn_deadlines_init(&h->dl, cfg);
    h->body_lim = rp_mpcheck_limits_from_config(cfg);
    h->params_lim = h->body_lim;
    h->params_lim.max_bytes = (size_t)cfg->max_request_bytes + 4096; /* path and query beside it */
    h->params_lim.max_depth = cfg->max_depth + 2;                     /* params and record maps */
    evutil_secure_rng_get_bytes(&h->reqid_base, sizeof h->reqid_base);
    /* libevent closes the listener's fd when the evhttp is freed, and the fd
     * is shared by every worker: give this worker its own descriptor */
    int myfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (myfd < 0) {
        int e = errno;
        free(h);
        return rp_errf(eb, rp_err_from_errno(e), "http: cannot duplicate the listening socket: %s",
                       strerror(e));
    }
    rp_errbuf reb = {0};
    if (rp_http_routes_resolve(h, &reb) != RP_OK) {
        rp_errf(eb, RP_INTERNAL, "%s", reb.msg);
        free(h->route_ops);
        close(myfd);
        free(h);
        return RP_INTERNAL;
    }
    h->http = evhttp_new(rp_loop_base(loop));
    if (h->http == NULL) goto fail;
    evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->http, (ev_ssize_t)cfg->max_request_bytes);
    evhttp_set_timeout_tv(h->http, &h->dl.slow);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE);
    /* no EVHTTP_SERVER_LINGERING_CLOSE: with it evhttp reads a refused
     * body to its announced end before answering 413 (a Content-Length of
     * 100 GB waits for the time-out); we answer at once and linger
     * ourselves after the reply (linger_start) */
    evhttp_set_gencb(h->http, on_request, h);
    evhttp_set_bevcb(h->http, on_new_bev, h);
    uint32_t every = cfg->slow_timeout_ms / 4 < 250 ? cfg->slow_timeout_ms / 4 : 250;
    struct timeval stv = {0, (every ? every : 1) * 1000};
    h->sweeper = event_new(rp_loop_base(loop), -1, EV_PERSIST, on_sweep, h);
    if (h->sweeper == NULL || event_add(h->sweeper, &stv) != 0) goto fail;
    h->bound = evhttp_accept_socket_with_handle(h->http, myfd);
    if (h->bound == NULL) goto fail;
    *out = h;
    return RP_OK;
fail:
    if (h->sweeper) event_free(h->sweeper);
    if (h->http) evhttp_free(h->http);
    close(myfd); /* not adopted by a listener */
    free(h->route_ops);
    free(h);
    return rp_errf(eb, RP_UNAVAILABLE, "libevent: cannot start the HTTP server");
}

/* Stop this worker's listener (the shared fd stays open: ours is a dup). */
void rp_http_stop_accepting(rp_http *h) {
    if (h == NULL || h->bound == NULL) return;
    evhttp_del_accept_socket(h->http, h->bound); /* closes this worker's duplicate only */
    h->bound = NULL;
}

unsigned rp_http_in_flight(const rp_http *h) {
    return h ? rp_conn_in_flight(&h->flight) : 0;
}

void rp_http_free(rp_http *h) {
    if (h == NULL) return;
    /* calls still waiting: a reply already posted (or none coming: an
     * export) can go; one the writer has not sent yet stays allocated, as
     * the writer will still write it (the server leaks such a worker) */
    for (http_call *c = h->pending, *next; c; c = next) {
        next = c->next;
        if (c->conn) c->conn->call = NULL;
        c->conn = NULL;
        c->req = NULL; /* evhttp_free below frees the requests */
        if (!c->await_writer || atomic_load(&c->posted)) {
            rp_http_pending_remove(h, c);
            rp_http_call_free(c);
        }
    }
    if (h->sweeper) event_free(h->sweeper);
    evhttp_free(h->http); /* frees its connections (on_conn_close runs for each) */
    for (size_t i = 0; i < h->conns_cap; i++) {
        http_conn *c = h->conns[i];
        if (c == NULL) continue;
        if (c->call) c->call->conn = NULL; /* a call left for the writer */
        rp_http_errpage_detach(c);
        bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL); /* a lingering one's */
        bufferevent_decref(c->bev);
        rp_conn_release(h->stats);
        free(c);
    }
    free(h->conns);
    free(h->route_ops);
    free(h);
}
