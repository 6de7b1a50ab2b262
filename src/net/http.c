/* http.c — the HTTP/JSON face: evhttp on one worker loop (see http.h).
 *
 * A request goes: route (method + path) -> operation of the api table and a
 * params map built from the path segments, the query string and the JSON
 * body (JSON -> MessagePack through net/json.h, then the whole params map
 * validated and unpacked by rp_mpcheck_unpack) -> rp_api_call -> the result
 * back to JSON. The routes are the table in proto/METHODS.md.
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
 * Counting and deadlines. Every connection gets its record when it is
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
 * itself, with its own HTML body, before we see the request), every read
 * or write stall slow_timeout_ms (so an idle keep-alive connection also
 * closes after slow_timeout_ms: HTTP clients reconnect transparently; the
 * long idle_timeout_ms is the RPC face's), replies max_output_bytes of
 * JSON. An export streams page by page (each page a bounded export call),
 * asking for the next page only once the previous one has been written to
 * the socket, so a slow reader holds at most one page in memory.
 *
 * Query values are percent-decoded with '+' kept as a plus sign, not a
 * space: phone numbers and e-mail addresses contain '+' and clients rarely
 * encode it. Encode a space as %20.
 */
#include "core/alloc.h"
#include "net/http.h"

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

#define HTTP_MAX_HEADERS 16384
#define HTTP_REQID_MAX 64
#define HTTP_MAX_QUERY 16     /* query parameters per request */
#define HTTP_MAX_SEGMENTS 8   /* path segments per request */
#define EXPORT_PAGE_DEFAULT 100

/* --- types -------------------------------------------------------------------- */

typedef struct http_conn http_conn;
typedef struct http_call http_call;

typedef enum { KIND_PLAIN, KIND_IMPORT, KIND_EXPORT } reply_kind;

/* One request handed to the api. Reads use one on the stack; writes and
 * exports (whose reply may come later) use a heap one. */
struct http_call {
    rp_loop_item item;       /* for the post back from the writer thread */
    rp_http *h;
    struct evhttp_request *req; /* NULL once the connection is gone */
    http_conn *conn;
    pthread_t thread;        /* the loop's thread */
    reply_kind kind;
    bool heap;
    bool replied;            /* the reply came during rp_api_call */
    bool pending;            /* on h's pending list */
    bool await_writer;       /* the writer thread will post the reply */
    atomic_bool posted;      /* ... and has posted it */
    rp_role role;
    char reqid[HTTP_REQID_MAX + 1];
    /* the reply, copied on the writer thread */
    rp_err rc;
    char *msg;
    char *data;
    size_t len;
    /* export streaming */
    bool started;
    int64_t page;
    char after[RP_ID_MAX + 1];
    http_call *prev, *next;
};

struct http_conn {
    struct bufferevent *bev;         /* the key; we hold one reference */
    struct evhttp_connection *evcon; /* set at its first request; NULL once closed */
    rp_http *h;
    http_call *call;     /* the request this connection waits on */
    int64_t deadline_ms; /* monotonic: the next request must be complete by then */
    bool over;           /* accepted beyond max_connections */
    bool shut;           /* shut down by the sweeper */
};

struct rp_http {
    rp_loop *loop;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    rp_api *api;
    const rp_config *cfg;
    rp_net_stats *stats;
    rp_mpcheck_limits body_lim;   /* a JSON body */
    rp_mpcheck_limits params_lim; /* the params map around it */
    atomic_uint in_flight;
    http_call *pending;
    http_conn **conns;            /* open addressing, linear probing, keyed by bev */
    size_t conns_cap, conns_n;
    struct event *sweeper;        /* deadlines and closed-connection records */
    uint32_t reqid_base;
    uint64_t reqid_seq;
};

/* Monotonic milliseconds. */
static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
static void pending_add(rp_http *h, http_call *c) {
    assert(!c->pending && c->heap);
    c->pending = true;
    c->prev = NULL;
    c->next = h->pending;
    if (h->pending) h->pending->prev = c;
    h->pending = c;
    if (c->conn) c->conn->call = c;
    atomic_fetch_add(&h->in_flight, 1);
}

/* Undo pending_add (no-op for a call that is not pending). */
static void pending_remove(rp_http *h, http_call *c) {
    if (!c->pending) return;
    if (c->prev) c->prev->next = c->next;
    else h->pending = c->next;
    if (c->next) c->next->prev = c->prev;
    c->pending = false;
    if (c->conn && c->conn->call == c) c->conn->call = NULL;
    atomic_fetch_sub(&h->in_flight, 1);
}

/* Free a heap call and its copied reply (no-op for one on the stack). */
static void call_free(http_call *c) {
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
    http_call *c = conn->call;
    if (c != NULL) {
        /* detached by libevent (peer gone while we held it): ours to free */
        if (c->req && evhttp_request_get_connection(c->req) == NULL) evhttp_request_free(c->req);
        c->req = NULL;
        c->conn = NULL;
        conn->call = NULL;
        if (!c->await_writer) { /* an export stream: nobody else refers to it */
            pending_remove(h, c);
            call_free(c);
        }
    }
    conn_drop(h, conn); /* evhttp still holds its own reference to the bev */
}

/* --- responses ------------------------------------------------------------------ */

/* The HTTP status of an api code. */
static int http_status(rp_err rc) {
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
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Internal Server Error";
    }
}

/* Send status with body (n bytes) and the common headers. */
static void send_body(struct evhttp_request *req, const char *reqid, int status, const char *ctype,
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
    if (n) evbuffer_add(b, body, n);
    evhttp_send_reply(req, status, http_reason(status), b);
    evbuffer_free(b);
}

/* {"error":{"code":...,"message":...}} through the JSON writer (escaping). */
static void send_error_status(struct evhttp_request *req, const char *reqid, int status, rp_err rc,
                              const char *msg) {
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
    rp_buf b;
    rp_buf_init(&b, 0);
    if (rp_msgpack_bytes_to_json(sb.data, sb.size, &lim, 0, &b, NULL, NULL) == RP_OK)
        send_body(req, reqid, status, "application/json", b.p, b.len);
    else
    {
        static const char fallback[] = "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"internal error\"}}";
        send_body(req, reqid, 500, "application/json", fallback, sizeof fallback - 1);
    }
    rp_buf_free(&b);
    msgpack_sbuffer_destroy(&sb);
}

/* An error reply with the status of its code. */
static void send_error(struct evhttp_request *req, const char *reqid, rp_err rc, const char *msg) {
    send_error_status(req, reqid, http_status(rc), rc, msg);
}

/* Send a msgpack result as JSON (200). The bytes are the api's own output
 * (not client input), so they are unpacked without the validator's walk. */
static void send_result(rp_http *h, struct evhttp_request *req, const char *reqid, const char *data,
                        size_t len) {
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    if (!msgpack_zone_init(&z, 4096)) {
        send_error(req, reqid, RP_UNAVAILABLE, "out of memory");
        return;
    }
    rp_buf b;
    rp_buf_init(&b, h->cfg->max_output_bytes);
    rp_errbuf eb = {0};
    rp_err rc = msgpack_unpack(data, len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS
                    ? rp_msgpack_to_json(&o, 0, &b, &eb)
                    : rp_errf(&eb, RP_INTERNAL, "the reply is not MessagePack");
    if (rc == RP_OK) send_body(req, reqid, 200, "application/json", b.p, b.len);
    else send_error(req, reqid, rc == RP_TOO_LARGE || rc == RP_BAD_REQUEST ? RP_INTERNAL : rc, eb.msg);
    rp_buf_free(&b);
    msgpack_zone_destroy(&z);
}

/* Import results carry, beside each error's index, its NDJSON line
 * (index + 1): repack the result map with "line" added to each error. */
static void send_import_result(rp_http *h, struct evhttp_request *req, const char *reqid,
                               const char *data, size_t len) {
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    if (!msgpack_zone_init(&z, 4096)) {
        send_error(req, reqid, RP_UNAVAILABLE, "out of memory");
        return;
    }
    if (msgpack_unpack(data, len, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS ||
        o.type != MSGPACK_OBJECT_MAP) {
        msgpack_zone_destroy(&z);
        send_result(h, req, reqid, data, len);
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
    send_result(h, req, reqid, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&z);
}

/* A strict import names its bad record "records[N]: ..."; over HTTP the
 * record is line N+1 of the body. */
static void import_error_text(const char *msg, char *out, size_t n) {
    unsigned long idx;
    int used = 0;
    if (msg && sscanf(msg, "records[%lu]: %n", &idx, &used) == 1 && used > 0)
        snprintf(out, n, "line %lu: %s", idx + 1, msg + used);
    else
        snprintf(out, n, "%s", msg ? msg : "");
}

static void export_respond(http_call *c, rp_err rc, const char *msg, const char *data, size_t len);

/* Answer call c with the api's reply (on the loop thread). */
static void respond(http_call *c, rp_err rc, const char *msg, const char *data, size_t len) {
    if (c->req == NULL) return; /* the client is gone */
    if (c->kind == KIND_EXPORT) {
        export_respond(c, rc, msg, data, len);
        return;
    }
    struct evhttp_request *req = c->req;
    c->req = NULL; /* sent: evhttp owns it again */
    if (rc != RP_OK) {
        char text[RP_ERRMSG_MAX + 32];
        if (c->kind == KIND_IMPORT) import_error_text(msg, text, sizeof text);
        else snprintf(text, sizeof text, "%s", msg ? msg : "");
        send_error(req, c->reqid, rc, text);
    } else if (c->kind == KIND_IMPORT) {
        send_import_result(c->h, req, c->reqid, data, len);
    } else {
        send_result(c->h, req, c->reqid, data, len);
    }
}

/* --- the reply callback and the post back from the writer ------------------------ */

/* On the loop: a write's reply came back from the writer thread. */
static void on_posted(void *arg) {
    http_call *c = arg;
    rp_http *h = c->h;
    pending_remove(h, c);
    respond(c, c->rc, c->msg, c->data, c->len);
    call_free(c);
}

/* The api's reply callback. On the loop's own thread (a read, or a write
 * refused before the writer) it answers at once; on the writer thread it
 * copies the reply into the heap call and posts it to the loop. */
static void on_api_reply(void *arg, rp_err rc, const char *msg, const char *result, size_t len) {
    http_call *c = arg;
    if (pthread_equal(pthread_self(), c->thread)) {
        c->replied = true;
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
    rp_loop_post(c->h->loop, &c->item, on_posted, c);
}

/* Run op for request c with params. c is on the stack (reads) or the heap
 * (writes, exports); a heap call still waiting afterwards becomes pending. */
static void dispatch(http_call *c, const rp_api_op *op, const msgpack_object *params) {
    c->thread = pthread_self();
    c->replied = false;
    c->await_writer = op->write;
    rp_api_call(c->h->api, op, c->role, c->reqid, params, on_api_reply, c);
    if (c->replied) {
        call_free(c); /* answered already (no-op for a call on the stack) */
        return;
    }
    assert(c->heap && op->write);
    if (!c->pending) pending_add(c->h, c);
}

/* --- export streaming ----------------------------------------------------------- */

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
    pending_remove(c->h, c);
    call_free(c);
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
        send_error(req, c->reqid, rc, msg);
        pending_remove(c->h, c);
        call_free(c);
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
static void export_respond(http_call *c, rp_err rc, const char *msg, const char *data, size_t len) {
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
        export_respond(c, RP_UNAVAILABLE, "out of memory", NULL, 0);
        return;
    }
    c->thread = pthread_self();
    rp_api_call(c->h->api, rp_api_find("export", 6), c->role, c->reqid, &o, on_api_reply, c);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

/* --- request parsing ------------------------------------------------------------ */

typedef struct qparam {
    char *key, *val;
    size_t vlen;
} qparam;

typedef struct http_in {
    struct evhttp_request *req;
    enum evhttp_cmd_type method;
    char *seg[HTTP_MAX_SEGMENTS]; /* decoded path segments */
    size_t nseg;
    qparam q[HTTP_MAX_QUERY];
    size_t nq;
    char reqid[HTTP_REQID_MAX + 1];
} http_in;

/* Free the decoded path segments and query parameters. */
static void in_free(http_in *in) {
    for (size_t i = 0; i < in->nseg; i++) free(in->seg[i]);
    for (size_t i = 0; i < in->nq; i++) {
        free(in->q[i].key);
        free(in->q[i].val);
    }
}

/* Percent-decode s[0..n) ('+' stays '+'). NULL on a NUL byte or no memory. */
static char *pct_decode(const char *s, size_t n, size_t *outlen) {
    char *tmp = strndup(s, n);
    if (tmp == NULL) return NULL;
    size_t len = 0;
    char *d = evhttp_uridecode(tmp, 0, &len);
    free(tmp);
    if (d && strlen(d) != len) { /* %00 inside */
        free(d);
        return NULL;
    }
    if (outlen) *outlen = len;
    return d;
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
        char *d = pct_decode(p, n, NULL);
        if (d == NULL) return rp_errf(eb, RP_BAD_REQUEST, "bad percent-encoding in the path");
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

/* Split and decode the query string ("a=1&b=2"); a name given twice, an
 * empty name or a NUL byte is RP_BAD_REQUEST. */
static rp_err parse_query(http_in *in, const char *query, rp_errbuf *eb) {
    if (query == NULL) return RP_OK;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 0) {
            const char *eq = memchr(p, '=', n);
            size_t kn = eq ? (size_t)(eq - p) : n;
            if (in->nq == HTTP_MAX_QUERY)
                return rp_errf(eb, RP_BAD_REQUEST, "more than %d query parameters", HTTP_MAX_QUERY);
            qparam *q = &in->q[in->nq];
            q->key = pct_decode(p, kn, NULL);
            q->val = eq ? pct_decode(eq + 1, n - kn - 1, &q->vlen) : rp_strdup("");
            if (!eq) q->vlen = 0;
            if (q->key == NULL || q->val == NULL || q->key[0] == '\0') {
                free(q->key);
                free(q->val);
                return rp_errf(eb, RP_BAD_REQUEST, "bad query string");
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
        if (!amp) break;
        p = amp + 1;
    }
    return RP_OK;
}

/* The query parameter named key, or NULL. */
static const qparam *query_get(const http_in *in, const char *key) {
    for (size_t i = 0; i < in->nq; i++)
        if (strcmp(in->q[i].key, key) == 0) return &in->q[i];
    return NULL;
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
    snprintf(out, HTTP_REQID_MAX + 1, "%08" PRIx32 "%012" PRIx64, h->reqid_base, ++h->reqid_seq);
}

/* The role of the request's bearer token (admin when no tokens are
 * configured: the server is then loopback-only). RP_ROLE_NONE: refuse. */
static rp_role request_role(rp_http *h, struct evhttp_request *req) {
    if (h->cfg->ntokens == 0) return RP_ROLE_ADMIN;
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0) return RP_ROLE_NONE;
    a += 7;
    while (*a == ' ') a++;
    size_t n = strlen(a);
    while (n && a[n - 1] == ' ') n--;
    if (n == 0) return RP_ROLE_NONE;
    return rp_config_token_role(h->cfg, a, n);
}

/* --- params building ------------------------------------------------------------ */

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

/* Integer query value: digits only (an optional '-'), within int64. */
static bool parse_int(const char *s, int64_t *out) {
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
        if (!parse_int(in->q[i].val, &v))
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

/* Finish: map header + entries, validated and unpacked into z. */
static rp_err pb_finish(rp_http *h, pbuild *b, msgpack_sbuffer *whole, msgpack_zone *z,
                        msgpack_object *o, rp_errbuf *eb) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, whole, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, b->n);
    if (b->sb.size) msgpack_sbuffer_write(whole, b->sb.data, b->sb.size);
    char why[160] = "";
    rp_mpcheck_result r = rp_mpcheck_unpack(whole->data, whole->size, &h->params_lim, z, o, NULL,
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

/* If-Match: "N" (or N) -> expect_version N; If-None-Match: * -> 0 (create
 * only). */
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
        if (n == 0 || n >= sizeof tmp)
            return rp_errf(eb, RP_BAD_REQUEST, "If-Match must be a version, e.g. \"3\"");
        memcpy(tmp, im, n);
        tmp[n] = '\0';
        if (!parse_int(tmp, &v) || v < 0)
            return rp_errf(eb, RP_BAD_REQUEST, "If-Match must be a version, e.g. \"3\"");
    } else {
        return RP_OK;
    }
    rp_mp_pack_cstr(&b->pk, "expect_version");
    msgpack_pack_int64(&b->pk, v);
    b->n++;
    return RP_OK;
}

/* --- routes --------------------------------------------------------------------- */

/* A route answer: the operation, how its reply is formatted, and its params. */
typedef struct route_out {
    const rp_api_op *op;
    reply_kind kind;
} route_out;

/* Is path segment i exactly s? */
static bool seg_is(const http_in *in, size_t i, const char *s) {
    return in->nseg > i && strcmp(in->seg[i], s) == 0;
}

/* Body of a POST/PUT record (event or issue) with ids from the path. */
static rp_err pb_record_body(rp_http *h, pbuild *b, const char *key, http_in *in,
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
    if (rc == RP_OK) rc = pb_finish(h, &tmp, &whole, &z, &o, eb);
    if (rc == RP_OK) rc = pb_record(b, key, &o.via.map.ptr[0].val, keys, vals, eb);
    if (zok) msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&whole);
    msgpack_sbuffer_destroy(&tmp.sb);
    return rc;
}

/* NDJSON body -> records array (and strict from the query). */
static rp_err pb_ndjson(rp_http *h, pbuild *b, http_in *in, rp_errbuf *eb) {
    for (size_t i = 0; i < in->nq; i++)
        if (strcmp(in->q[i].key, "strict") != 0)
            return rp_errf(eb, RP_BAD_REQUEST, "unknown query parameter '%.40s' (expected: strict)",
                           in->q[i].key);
    const qparam *sq = query_get(in, "strict");
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
        if (count >= h->cfg->max_container) {
            rc = rp_errf(eb, RP_TOO_LARGE, "more than %u records in one import (max_container)",
                         h->cfg->max_container);
            break;
        }
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

/* Map method + path to an operation and build its params into b.
 * Returns RP_OK, RP_NOT_FOUND (no such route: 404), RP_BAD_REQUEST, or
 * *not_allowed set (the path exists, the method does not: 405). */
static rp_err route(rp_http *h, http_in *in, pbuild *b, route_out *out, const char **allow,
                    rp_errbuf *eb) {
    static const char *const at_ints[] = {"at", NULL};
    static const char *const limit_ints[] = {"limit", NULL};
    enum evhttp_cmd_type m = in->method;
    out->kind = KIND_PLAIN;
    *allow = NULL;
    if (!seg_is(in, 0, "v1")) return rp_errf(eb, RP_NOT_FOUND, "no such route");
    if (in->nseg == 2 && (seg_is(in, 1, "context") || seg_is(in, 1, "route") ||
                          seg_is(in, 1, "lookup"))) {
        *allow = "GET";
        if (m != EVHTTP_REQ_GET) return RP_OK;
        const char *name = seg_is(in, 1, "context") ? "context.get"
                           : seg_is(in, 1, "route")   ? "route.get"
                                                      : "lookup";
        out->op = rp_api_find(name, strlen(name));
        return pb_query(b, in, at_ints, eb);
    }
    if (in->nseg == 2 && seg_is(in, 1, "import")) {
        *allow = "POST";
        if (m != EVHTTP_REQ_POST) return RP_OK;
        out->op = rp_api_find("import", 6);
        out->kind = KIND_IMPORT;
        return pb_ndjson(h, b, in, eb);
    }
    if (in->nseg == 2 && seg_is(in, 1, "export")) {
        *allow = "GET";
        if (m != EVHTTP_REQ_GET) return RP_OK;
        out->op = rp_api_find("export", 6);
        out->kind = KIND_EXPORT;
        return RP_OK; /* params are built per page */
    }
    if (in->nseg < 3 || !seg_is(in, 1, "customers")) return rp_errf(eb, RP_NOT_FOUND, "no such route");
    const char *id = in->seg[2];
    if (in->nseg == 3) {
        *allow = "GET, PUT, PATCH, DELETE";
        if (in->nq && m != EVHTTP_REQ_GET)
            return rp_errf(eb, RP_BAD_REQUEST, "this route takes no query parameters");
        pb_str(b, "id", id, strlen(id));
        rp_err rc = RP_OK;
        switch (m) {
        case EVHTTP_REQ_GET:
            out->op = rp_api_find("customer.get", 12);
            return pb_query(b, in, NULL, eb);
        case EVHTTP_REQ_PUT:
            out->op = rp_api_find("customer.put", 12);
            if ((rc = pb_precondition(b, in->req, eb)) != RP_OK) return rc;
            return pb_body(h, b, "customer", in->req, eb);
        case EVHTTP_REQ_PATCH:
            out->op = rp_api_find("customer.patch", 14);
            if ((rc = pb_precondition(b, in->req, eb)) != RP_OK) return rc;
            return pb_body(h, b, "patch", in->req, eb);
        case EVHTTP_REQ_DELETE: out->op = rp_api_find("customer.forget", 15); return RP_OK;
        default: return RP_OK;
        }
    }
    if (in->nseg == 4 && seg_is(in, 3, "merge")) {
        *allow = "POST";
        if (m != EVHTTP_REQ_POST) return RP_OK;
        out->op = rp_api_find("customer.merge", 14);
        pb_str(b, "from", id, strlen(id));
        return pb_query(b, in, NULL, eb);
    }
    if (in->nseg == 4 && seg_is(in, 3, "events")) {
        *allow = "GET, POST";
        if (m == EVHTTP_REQ_GET) {
            out->op = rp_api_find("history.list", 12);
            pb_str(b, "id", id, strlen(id));
            return pb_query(b, in, limit_ints, eb);
        }
        if (m != EVHTTP_REQ_POST) return RP_OK;
        out->op = rp_api_find("event.append", 12);
        if (in->nq) return rp_errf(eb, RP_BAD_REQUEST, "this route takes no query parameters");
        static const char *const keys[] = {"customer_id", NULL};
        const char *vals[] = {id, NULL};
        return pb_record_body(h, b, "event", in, keys, vals, eb);
    }
    if (in->nseg == 4 && seg_is(in, 3, "issues")) {
        *allow = "GET";
        if (m != EVHTTP_REQ_GET) return RP_OK;
        out->op = rp_api_find("issue.list", 10);
        pb_str(b, "id", id, strlen(id));
        return pb_query(b, in, NULL, eb);
    }
    if (in->nseg == 5 && seg_is(in, 3, "issues")) {
        *allow = "PUT";
        if (m != EVHTTP_REQ_PUT) return RP_OK;
        out->op = rp_api_find("issue.put", 9);
        if (in->nq) return rp_errf(eb, RP_BAD_REQUEST, "this route takes no query parameters");
        static const char *const keys[] = {"customer_id", "issue_id", NULL};
        const char *vals[] = {id, in->seg[4], NULL};
        return pb_record_body(h, b, "issue", in, keys, vals, eb);
    }
    return rp_errf(eb, RP_NOT_FOUND, "no such route");
}

/* --- the non-api routes --------------------------------------------------------- */

/* GET /metrics: the api's metrics and the connection counters. */
static void serve_metrics(rp_http *h, struct evhttp_request *req, const char *reqid) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_api_metrics(h->api, &sb);
    char line[1024];
    int n = snprintf(line, sizeof line,
                     "# HELP rapport_connections_open Client connections open (both faces).\n"
                     "# TYPE rapport_connections_open gauge\nrapport_connections_open %" PRIuFAST64 "\n"
                     "# HELP rapport_connections_total Client connections accepted.\n"
                     "# TYPE rapport_connections_total counter\nrapport_connections_total %" PRIuFAST64 "\n"
                     "# HELP rapport_connections_rejected_total Connections refused over max_connections.\n"
                     "# TYPE rapport_connections_rejected_total counter\n"
                     "rapport_connections_rejected_total %" PRIuFAST64 "\n"
                     "# HELP rapport_connections_timed_out_total Connections closed as idle or slow.\n"
                     "# TYPE rapport_connections_timed_out_total counter\n"
                     "rapport_connections_timed_out_total %" PRIuFAST64 "\n"
                     "# HELP rapport_bad_frames_total Protocol violations.\n"
                     "# TYPE rapport_bad_frames_total counter\nrapport_bad_frames_total %" PRIuFAST64 "\n",
                     atomic_load(&h->stats->conns_open), atomic_load(&h->stats->conns_total),
                     atomic_load(&h->stats->conns_rejected), atomic_load(&h->stats->conns_timed_out),
                     atomic_load(&h->stats->bad_frames));
    if (n > 0) msgpack_sbuffer_write(&sb, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    send_body(req, reqid, 200, "text/plain; version=0.0.4; charset=utf-8", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
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
        send_error(req, reqid, RP_UNAVAILABLE, "too many connections; retry later");
        return NULL;
    }
    if (c->evcon == NULL) {
        c->evcon = evcon;
        evhttp_connection_set_closecb(evcon, on_conn_close, c);
    }
    /* evhttp sets no read watermark: without one it keeps buffering
     * whatever a pipelining client sends while a reply is written */
    bufferevent_setwatermark(bev, EV_READ, 0, 2 * HTTP_MAX_HEADERS);
    c->deadline_ms = mono_ms() + h->cfg->slow_timeout_ms;
    return c;
}

/* A call record for request `in` (heap when its reply may come later). */
static http_call *call_new(rp_http *h, const http_in *in, http_conn *conn, rp_role role,
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

/* GET /v1/export: check the query, then stream page after page. */
static void start_export(rp_http *h, const http_in *in, http_conn *conn, rp_role role) {
    rp_errbuf eb = {0};
    rp_err rc = RP_OK;
    int64_t page = EXPORT_PAGE_DEFAULT;
    const qparam *after = NULL;
    for (size_t i = 0; i < in->nq && rc == RP_OK; i++) {
        const qparam *q = &in->q[i];
        if (strcmp(q->key, "limit") == 0) {
            if (!parse_int(q->val, &page) || page < 1 || page > 1000)
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
        send_error(in->req, in->reqid, rc, eb.msg);
        return;
    }
    http_call *c = call_new(h, in, conn, role, KIND_EXPORT, true, NULL);
    if (c == NULL) {
        send_error(in->req, in->reqid, RP_UNAVAILABLE, "out of memory");
        return;
    }
    c->page = page;
    if (after) memcpy(c->after, after->val, after->vlen + 1);
    pending_add(h, c); /* streamed: lives until the last page is written */
    export_next(c);
}

/* Finish the params built for an api route and run the operation. */
static void run_api(rp_http *h, const http_in *in, http_conn *conn, rp_role role,
                    const route_out *ro, pbuild *b) {
    rp_errbuf eb = {0};
    msgpack_sbuffer whole;
    msgpack_sbuffer_init(&whole);
    msgpack_zone z;
    msgpack_object params;
    if (!msgpack_zone_init(&z, 2048)) {
        send_error(in->req, in->reqid, RP_UNAVAILABLE, "out of memory");
        msgpack_sbuffer_destroy(&whole);
        return;
    }
    rp_err rc = pb_finish(h, b, &whole, &z, &params, &eb);
    http_call local;
    http_call *c = rc == RP_OK ? call_new(h, in, conn, role, ro->kind, ro->op->write, &local) : NULL;
    if (rc != RP_OK) send_error(in->req, in->reqid, rc, eb.msg);
    else if (c == NULL) send_error(in->req, in->reqid, RP_UNAVAILABLE, "out of memory");
    else dispatch(c, ro->op, &params);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&whole);
}

/* /healthz and /metrics. Returns false when the path is neither. */
static bool serve_outside_api(rp_http *h, const http_in *in, rp_role role) {
    bool health = in->nseg == 1 && seg_is(in, 0, "healthz");
    bool metrics = in->nseg == 1 && seg_is(in, 0, "metrics");
    if (!health && !metrics) return false;
    if (in->method != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(in->req), "Allow", "GET");
        send_error_status(in->req, in->reqid, 405, RP_BAD_REQUEST, "method not allowed on this route");
    } else if (health) {
        send_body(in->req, in->reqid, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (role == RP_ROLE_NONE) {
        send_error(in->req, in->reqid, RP_UNAUTHORIZED, "a valid bearer token is required");
    } else {
        serve_metrics(h, in->req, in->reqid);
    }
    return true;
}

/* evhttp's callback for every request: parse, authenticate, route, run.
 * Order of refusals: a malformed URI (400), an unknown route (404) or
 * method (405), a missing token (401), then bad params (400...). */
static void on_request(struct evhttp_request *req, void *arg) {
    rp_http *h = arg;
    http_in in;
    memset(&in, 0, sizeof in);
    in.req = req;
    in.method = evhttp_request_get_command(req);
    request_id(h, req, in.reqid);
    http_conn *conn = track_conn(h, req, in.reqid);
    if (conn == NULL) return;
    rp_errbuf eb = {0};
    pbuild b;
    pb_init(&b);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    rp_err rc = uri ? parse_path(&in, evhttp_uri_get_path(uri), &eb)
                    : rp_errf(&eb, RP_BAD_REQUEST, "bad request URI");
    if (rc == RP_OK) rc = parse_query(&in, evhttp_uri_get_query(uri), &eb);
    rp_role role = request_role(h, req);
    route_out ro = {NULL, KIND_PLAIN};
    const char *allow = NULL;
    if (rc != RP_OK) {
        send_error(req, in.reqid, rc, eb.msg);
    } else if (serve_outside_api(h, &in, role)) {
        /* answered */
    } else if ((rc = route(h, &in, &b, &ro, &allow, &eb)) == RP_OK && ro.op == NULL) {
        if (allow) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
            send_error_status(req, in.reqid, 405, RP_BAD_REQUEST, "method not allowed on this route");
        } else {
            send_error(req, in.reqid, RP_NOT_FOUND, "no such route");
        }
    } else if (role == RP_ROLE_NONE) {
        send_error(req, in.reqid, RP_UNAUTHORIZED, "a valid bearer token is required");
    } else if (rc != RP_OK) {
        send_error(req, in.reqid, rc, eb.msg[0] ? eb.msg : NULL);
    } else if (ro.kind == KIND_EXPORT) {
        start_export(h, &in, conn, role);
    } else {
        run_api(h, &in, conn, role, &ro, &b);
    }
    msgpack_sbuffer_destroy(&b.sb);
    in_free(&in);
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
    if (c->bev == NULL || !conn_insert(h, c)) {
        if (c->bev) bufferevent_free(c->bev);
        free(c);
        return NULL;
    }
    bufferevent_incref(c->bev);
    c->h = h;
    atomic_fetch_add(&h->stats->conns_total, 1);
    if (atomic_fetch_add(&h->stats->conns_open, 1) >= h->cfg->max_connections) {
        atomic_fetch_add(&h->stats->conns_rejected, 1);
        c->over = true;
        c->deadline_ms = mono_ms() + (h->cfg->slow_timeout_ms < 1000 ? h->cfg->slow_timeout_ms : 1000);
    } else {
        c->deadline_ms = mono_ms() + h->cfg->slow_timeout_ms;
    }
    return c->bev;
}

/* Drop the record of a connection evhttp has freed (or will never use). */
static void conn_drop(rp_http *h, http_conn *c) {
    assert(c->call == NULL);
    conn_remove(h, c);
    bufferevent_decref(c->bev); /* the last reference: closes the socket */
    atomic_fetch_sub(&h->stats->conns_open, 1);
    free(c);
}

/* The sweeper: drop the records of freed connections; shut down those past
 * their deadline that are not waiting on us. O(table size). */
static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rp_http *h = arg;
    int64_t now = mono_ms();
    for (size_t i = 0; i < h->conns_cap;) {
        http_conn *c = h->conns[i];
        if (c == NULL) {
            i++;
            continue;
        }
        bufferevent_event_cb ecb = NULL;
        bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
        if (ecb == NULL && c->call == NULL) { /* freed by evhttp */
            conn_drop(h, c);
            continue; /* the removal may have moved another entry into slot i */
        }
        if (!c->shut && c->call == NULL && now >= c->deadline_ms) {
            evutil_socket_t s = bufferevent_getfd(c->bev);
            if (s >= 0) shutdown(s, SHUT_RDWR); /* evhttp sees EOF and frees it */
            c->shut = true;
            atomic_fetch_add(&h->stats->conns_timed_out, 1);
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
    atomic_init(&h->in_flight, 0);
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
    h->http = evhttp_new(rp_loop_base(loop));
    if (h->http == NULL) goto fail;
    evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->http, (ev_ssize_t)cfg->max_request_bytes);
    struct timeval tv = {cfg->slow_timeout_ms / 1000, (cfg->slow_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(h->http, &tv);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_flags(h->http, EVHTTP_SERVER_LINGERING_CLOSE);
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
    return h ? atomic_load(&((rp_http *)h)->in_flight) : 0;
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
            pending_remove(h, c);
            call_free(c);
        }
    }
    if (h->sweeper) event_free(h->sweeper);
    evhttp_free(h->http); /* frees its connections (on_conn_close runs for each) */
    for (size_t i = 0; i < h->conns_cap; i++) {
        http_conn *c = h->conns[i];
        if (c == NULL) continue;
        if (c->call) c->call->conn = NULL; /* a call left for the writer */
        bufferevent_decref(c->bev);
        atomic_fetch_sub(&h->stats->conns_open, 1);
        free(c);
    }
    free(h->conns);
    free(h);
}
