/* http_int.h — what the files of the HTTP face share (not a public API).
 *
 * The face is split by concern, one subsystem per file:
 *   http.c        lifecycle and dispatch: connections (through net/conn.h),
 *                 the request callback, calls into the api and their replies
 *   http_route.c  the route table, URL parsing and params building
 *   http_export.c GET /v1/export, streamed page by page
 *   http_reply.c  status mapping and every response body we send
 *   http_errpage.c libevent's own error pages (400, 413, 501...) rewritten
 *                 into our JSON error format, on the way out
 * Everything here runs on the worker loop's thread, except where a comment
 * says otherwise.
 */
#ifndef RP_HTTP_INT_H
#define RP_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <msgpack.h>

#include "api/api.h"
#include "core/config.h"
#include "model/ident.h"
#include "model/mpcheck.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/loop.h"

#define HTTP_MAX_HEADERS 16384
#define HTTP_REQID_MAX 64
#define HTTP_MAX_QUERY 16   /* query parameters per request */
#define HTTP_MAX_SEGMENTS 8 /* path segments per request */
#define HTTP_ALLOW_MAX 64   /* "GET, PUT, PATCH, DELETE, HEAD, OPTIONS": 39 */

typedef struct http_conn http_conn;
typedef struct http_call http_call;

/* How an api reply is turned into a response. */
typedef enum { KIND_PLAIN, KIND_IMPORT, KIND_EXPORT } reply_kind;

/* One request handed to the api. Reads use one on the stack; writes and
 * exports (whose reply may come later) use a heap one. */
struct http_call {
    rp_conn_call cc;            /* in flight, and the post back from the writer */
    rp_http *h;
    struct evhttp_request *req; /* NULL once the connection is gone */
    http_conn *conn;
    reply_kind kind;
    bool heap;
    bool replied;               /* the reply came during rp_api_call */
    bool pending;               /* on h's pending list */
    bool await_writer;          /* the writer thread will post the reply */
    bool precondition;          /* If-Match / If-None-Match given: CONFLICT is 412 */
    bool etag;                  /* a customer GET: ETag "v<version>", If-None-Match 304 */
    atomic_bool posted;         /* ... and has posted it */
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
    /* libevent's own error pages (http_errpage.c) and the close after them */
    struct evbuffer_cb_entry *out_cb, *in_cb;
    size_t head_at;      /* output offset of the last status line added (SIZE_MAX: none) */
    uint32_t heads;      /* request heads received (blank lines ending a head) */
    uint32_t served;     /* requests that reached on_request */
    uint32_t head_bytes; /* bytes since the last head ended */
    bool big_head;       /* a head over HTTP_MAX_HEADERS was received */
    bool at_line_start;  /* the input scanner is at the start of a line */
    bool rewriting;      /* our output callback is editing the buffer */
    bool linger;         /* an error page went out: drain the input before closing */
    bool lingering;      /* evhttp freed it; we read and discard until EOF or deadline */
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
    rp_conn_flight flight;        /* api calls in flight (net/conn.h) */
    rp_conn_deadlines dl;         /* slow_timeout_ms and the cap's grace */
    http_call *pending;
    http_conn **conns;            /* open addressing, linear probing, keyed by bev */
    size_t conns_cap, conns_n;
    struct event *sweeper;        /* deadlines and closed-connection records */
    uint32_t reqid_base;
    uint64_t reqid_seq;
    const rp_api_op **route_ops;  /* the api op of each route-table row (NULL: none) */
    const rp_api_op *op_export;   /* the export row's, for each page */
};

/* --- http_route.c: requests and the route table ------------------------------- */

/* The methods the face serves (evhttp refuses the others with 405 itself). */
typedef enum http_method {
    HTTP_M_GET,
    HTTP_M_PUT,
    HTTP_M_PATCH,
    HTTP_M_POST,
    HTTP_M_DELETE,
    HTTP_M_HEAD,    /* routed as GET, answered without the body */
    HTTP_M_OPTIONS, /* answered before routing: Allow, CORS preflight */
    HTTP_M_OTHER,
} http_method;

/* What serves a route once it is matched and authenticated. */
typedef enum http_serve {
    HTTP_SERVE_API,     /* one api call (the reply kind is the row's) */
    HTTP_SERVE_EXPORT,  /* GET /v1/export, streamed (http_export.c) */
    HTTP_SERVE_HEALTH,  /* GET /healthz: no token needed */
    HTTP_SERVE_METRICS, /* GET /metrics */
    HTTP_SERVE_OPENAPI, /* GET /openapi.yaml: no token needed */
    HTTP_SERVE_CARD,    /* GET /card: the agent's page (http_card.c) */
    HTTP_SERVE_CARD_CSS, /* GET /card/card.css: its stylesheet, no token needed */
} http_serve;

typedef struct qparam {
    char *key, *val;
    size_t vlen;
} qparam;

/* A parsed request: its decoded path segments and query parameters. */
typedef struct http_in {
    struct evhttp_request *req;
    http_method method;
    char *seg[HTTP_MAX_SEGMENTS]; /* decoded path segments (owned) */
    size_t nseg;
    qparam q[HTTP_MAX_QUERY];     /* decoded query parameters (owned) */
    size_t nq;
    char reqid[HTTP_REQID_MAX + 1];
} http_in;

/* A matched route: the table row, and its operation (NULL for the routes
 * served outside the api). */
typedef struct http_match {
    int row;               /* index in the route table */
    http_serve serve;
    reply_kind kind;
    const rp_api_op *op;
    char allow[HTTP_ALLOW_MAX]; /* methods of the path (with HEAD, OPTIONS): Allow of a 405 and of OPTIONS */
    bool precondition;          /* the row reads If-Match / If-None-Match */
    bool etag;                  /* the reply carries the record's version as ETag */
} http_match;

/* The method of req as our enum. */
http_method rp_http_method_of(struct evhttp_request *req);

/* Resolve every row's operation name in the api table into h->route_ops
 * (allocated; freed by rp_http_free). Returns RP_OK, RP_INTERNAL when a
 * row names an operation the api does not have (a start-up failure, never
 * a silent 405), RP_UNAVAILABLE when out of memory. */
rp_err rp_http_routes_resolve(rp_http *h, rp_errbuf *eb);

/* Parse in->req's URI into in (path segments, query). Returns RP_OK,
 * RP_BAD_REQUEST (malformed), RP_NOT_FOUND (too many segments). The
 * caller frees in with rp_http_in_free whatever the result. */
rp_err rp_http_parse_uri(http_in *in, rp_errbuf *eb);

/* Free the decoded segments and query parameters of in. */
void rp_http_in_free(http_in *in);

/* Find the route of in: RP_OK (*m filled), RP_NOT_FOUND (no such path:
 * 404), or RP_BAD_REQUEST with m->allow set (the path exists, the method
 * does not: 405 with Allow). Reads only the path and the method. */
rp_err rp_http_route_find(const rp_http *h, const http_in *in, http_match *m, rp_errbuf *eb);

/* Build the params of a matched HTTP_SERVE_API route — path values, query,
 * preconditions and the JSON/NDJSON body — validated and unpacked into z
 * (*params points into z and whole). Call only after authentication: this
 * is where the body is read and converted.
 *   whole, z: initialized by the caller, destroyed by the caller.
 * Returns RP_OK, RP_BAD_REQUEST, RP_TOO_LARGE or RP_UNAVAILABLE (eb says). */
rp_err rp_http_route_params(rp_http *h, const http_in *in, const http_match *m,
                            msgpack_sbuffer *whole, msgpack_zone *z, msgpack_object *params,
                            rp_errbuf *eb);

/* The query parameter named key, or NULL. */
const qparam *rp_http_query_get(const http_in *in, const char *key);

/* An integer query value: digits only (an optional '-'), within int64. */
bool rp_http_parse_int(const char *s, int64_t *out);

/* --- http_reply.c: responses ------------------------------------------------------ */

/* The HTTP status of an api code. */
int rp_http_status(rp_err rc);

/* Send status with body[0..n) (copied) and the common headers (Content-
 * Type, X-Request-Id, WWW-Authenticate on 401). req is evhttp's again. */
void rp_http_send_body(struct evhttp_request *req, const char *reqid, int status, const char *ctype,
                       const char *body, size_t n);

/* {"error":{"code":...,"message":...}} with an explicit status (405). */
void rp_http_send_error_status(struct evhttp_request *req, const char *reqid, int status, rp_err rc,
                               const char *msg);

/* An error reply with the status of its code (msg NULL/"": the code's text). */
void rp_http_send_error(struct evhttp_request *req, const char *reqid, rp_err rc, const char *msg);

/* 405 with its Allow header. */
void rp_http_send_not_allowed(struct evhttp_request *req, const char *reqid, const char *allow);

/* {"error":{"code":...,"message":...}} into out (the one error shape). */
struct rp_buf;
bool rp_http_error_json(rp_err rc, const char *msg, struct rp_buf *out);

/* A msgpack result (the api's own bytes) as JSON, 200. */
void rp_http_send_result(rp_http *h, struct evhttp_request *req, const char *reqid, const char *data,
                         size_t len);

/* An import result, with `line` added beside each error's index. */
void rp_http_send_import_result(rp_http *h, struct evhttp_request *req, const char *reqid,
                                const char *data, size_t len);

/* A strict import's "records[N]: ..." as "line N+1: ..." into out[0..n). */
void rp_http_import_error_text(const char *msg, char *out, size_t n);

/* GET /metrics: the api's metrics and the connection counters. */
void rp_http_serve_metrics(rp_http *h, struct evhttp_request *req, const char *reqid);

/* GET /openapi.yaml: the embedded proto/openapi.yaml (net/openapi.h). */
void rp_http_serve_openapi(struct evhttp_request *req, const char *reqid);

/* --- http_card.c: the agent's page --------------------------------------------- */

/* GET /card: the context card as HTML (role: the token's; a signed link
 * is checked here and serves as an agent). Replies in every case. */
void rp_http_serve_card(rp_http *h, const http_in *in, rp_role role);

/* Does the request carry a signed link (?sig=)? Then no token is needed. */
bool rp_http_card_signed(const http_in *in);

/* GET /card/card.css: the page's embedded stylesheet. */
void rp_http_serve_card_css(rp_http *h, struct evhttp_request *req, const char *reqid);

/* --- http_export.c -------------------------------------------------------------- */

/* GET /v1/export: check the query (limit, after), then stream page after
 * page. Replies (an error, or the stream) in every case. */
void rp_http_export_start(rp_http *h, const http_in *in, http_conn *conn, rp_role role);

/* One export page (or its error) came back from the api. */
void rp_http_export_respond(http_call *c, rp_err rc, const char *msg, const char *data, size_t len);

/* --- http_errpage.c: libevent's own replies ---------------------------------------- */

/* Watch c's bufferevent: its input (to tell a header from a body 413) and
 * its output (to rewrite libevent's HTML error pages). */
bool rp_http_errpage_attach(rp_http *h, http_conn *c);

/* A request of c reached on_request (re-counts the heads still unparsed). */
void rp_http_errpage_request(http_conn *c);

/* Stop watching (before c is freed). */
void rp_http_errpage_detach(http_conn *c);

/* --- http.c: calls ----------------------------------------------------------------- */

/* A fresh X-Request-Id into out. */
void rp_http_new_reqid(rp_http *h, char out[HTTP_REQID_MAX + 1]);

/* A call record for request in (on the heap when its reply may come later,
 * else *local). NULL when out of memory. */
http_call *rp_http_call_new(rp_http *h, const http_in *in, http_conn *conn, rp_role role,
                            reply_kind kind, bool heap, http_call *local);

/* Free a heap call and its copied reply (no-op for one on the stack). */
void rp_http_call_free(http_call *c);

/* Record a heap call whose reply is still to come; undo it. */
void rp_http_pending_add(rp_http *h, http_call *c);
void rp_http_pending_remove(rp_http *h, http_call *c);

/* The api's reply callback (rp_api_reply_fn) for an http_call. */
void rp_http_on_api_reply(void *arg, rp_err rc, const char *msg, const char *result, size_t len);

#endif
