/* rpc.c — MessagePack-RPC connections on one worker loop (see rpc.h).
 *
 * A connection (rpc_conn) is a bufferevent on the worker's base. Its read
 * callback walks the input buffer: every complete frame is validated by
 * rp_mpcheck_unpack (nothing reaches msgpack-c unchecked), unpacked into the
 * worker's zone (cleared after each request: requests are handled one at a
 * time on this thread, so one zone per worker is enough), dispatched, and
 * drained. Replies go into the bufferevent's output buffer, which libevent
 * writes once the callback returns: a pipelined burst costs one read and
 * one write system call, not one each per request.
 *
 * Ordering. Every request that will be answered gets a slot (rpc_call) at
 * the tail of the connection's FIFO. A read replies while rp_api_call is
 * still running (reads are synchronous): if its slot is at the head, the
 * reply goes straight to the output buffer and the slot is recycled. A
 * write replies later on the writer thread: the reply frame is encoded
 * there (into one malloc'd block) and the slot is posted back to this loop
 * (rp_loop_post); when the head of the FIFO is complete, it and every
 * completed slot behind it are written, in order.
 *
 * Lifetime. A connection holds one reference while it is open and one per
 * api call not yet answered. Closing frees the bufferevent (and the socket)
 * at once; the rpc_conn itself lives on until the last reply came back, so
 * a reply never lands in freed memory.
 *
 * Limits and time-outs (values from the config, see proto/PROTOCOL.md):
 *   - input: the bufferevent stops reading at max_request_bytes of
 *     unprocessed input; rp_mpcheck rejects a frame as soon as its announced
 *     size passes max_request_bytes (a length lie costs 5 bytes, not 4 GB);
 *   - backpressure: with RP_RPC_MAX_PENDING replies queued or more than half
 *     of max_output_bytes unwritten, the connection stops reading until it
 *     is back under RP_RPC_RESUME_PENDING and a quarter of the output cap;
 *     output past max_output_bytes (one batch of huge replies) closes it;
 *   - a started request must be complete within slow_timeout_ms (slowloris);
 *   - a connection with nothing to read or write for idle_timeout_ms closes
 *     (not while it waits for its own replies).
 *
 * Cost: a frame is walked once by the validator and once by msgpack-c. A
 * large frame arriving in many reads is re-walked only when at least the
 * validator's lower bound of its length has arrived, and past 64 KiB only
 * once its buffered part doubled or the socket has gone quiet, so a 4 MiB
 * import costs O(size), not O(size^2 / read size).
 */
#include "core/alloc.h"
#include "net/rpc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "model/ident.h"
#include "net/conn.h"
#include "net/log.h"
#include "model/mpcheck.h"

/* A partial frame larger than this is re-walked geometrically (see top). */
#define RPC_BIG_PARTIAL 65536
/* Recycled call slots kept per worker. */
#define RPC_FREELIST_MAX 1024
/* Longest method name accepted (the table's are short). */
#define RPC_METHOD_MAX 64
/* Longest error sentence sent (bytes, cut on a UTF-8 boundary). */
#define RPC_MSG_MAX 400

typedef struct rpc_conn rpc_conn;

/* One request in flight, or one reply waiting for its turn. */
typedef struct rpc_call {
    rp_conn_call cc;        /* in flight, and the post back from the writer */
    rpc_conn *conn;
    struct rpc_call *next;  /* FIFO order; also the freelist link */
    uint32_t msgid;
    bool reply;             /* false: a notification, nobody is told */
    bool done;              /* the reply is in frame (or oom) */
    bool oom;               /* the reply could not be encoded */
    bool write;             /* a write: an inline 503 reply is a refusal (the queue) */
    char *frame;            /* the encoded response, malloc'd */
    size_t frame_len;
} rpc_call;

struct rpc_conn {
    rp_rpc *rpc;
    struct bufferevent *bev; /* NULL once closed */
    struct event *slow;      /* slow-request timer */
    rpc_conn *prev, *next;   /* the worker's open connections */
    uint64_t id;
    rp_tokens_auth auth; /* the connection's role, rechecked after a token reload */
    rpc_call *head, *tail;   /* replies owed, in request order */
    unsigned nqueued;
    unsigned refs;           /* 1 while open + api calls not yet answered */
    size_t need;             /* do not walk before the input has this many bytes */
    size_t walked;           /* input length at the last walk of a big partial frame */
    bool read_paused;        /* backpressure: reading disabled by us */
    bool slow_armed;
    bool failing;            /* a bad frame: close once the error is written */
    bool lingering;          /* failing, error written, FIN sent: waiting for the peer's */
    bool eof;                /* the peer finished sending */
    bool doomed;             /* close at the end of this callback */
    bool in_process;
    char peer[64];
};

struct rp_rpc {
    rp_loop *loop;
    struct event_base *base;
    evutil_socket_t lfd;
    struct event *accept_ev;
    struct event *accept_retry;
    rp_api *api;
    const rp_config *cfg;
    rp_net_stats *stats;
    rp_rpc_group *group;     /* may be NULL */
    bool member;             /* counted in group->members */
    const rp_api_op *op_ping;
    rp_mpcheck_limits lim;
    msgpack_zone zone;       /* the request being handled */
    rp_conn_deadlines dl;    /* idle, slow-request and linger time-outs */
    rpc_conn *conns;         /* open connections */
    unsigned nconns;
    rp_conn_flight flight;   /* api calls not yet answered (all connections) */
    rpc_call *freelist;
    unsigned nfree;
    bool draining;
    time_t last_reject_log;
};

static atomic_uint_fast64_t rpc_next_conn_id = 1;

static void conn_process(rpc_conn *c);
static void conn_after(rpc_conn *c);

/* --- reply encoding ---------------------------------------------------------- */

/* A fixed-size msgpack output for reply headers (no allocation). */
typedef struct rpc_small {
    char b[RPC_MSG_MAX + 128];
    size_t n;
} rpc_small;

static int small_write(void *data, const char *buf, size_t len) {
    rpc_small *s = data;
    if (len > sizeof s->b - s->n) return -1;
    memcpy(s->b + s->n, buf, len);
    s->n += len;
    return 0;
}

/* Length of msg cut to at most max bytes without splitting a UTF-8
 * sequence, so the error string stays valid msgpack str for strict clients.
 * Bytes that are not valid UTF-8 at all shorten it to the valid prefix. */
static size_t msg_len(const char *msg, size_t max) {
    size_t n = strlen(msg);
    if (n > max) n = max;
    while (n > 0 && !rp_utf8_valid(msg, n)) n--;
    return n;
}

/* Pack `[1, msgid, error, ` — a response up to its result — into h. */
static int reply_head(rpc_small *h, uint32_t msgid, rp_err rc, const char *msg) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, h, small_write);
    h->n = 0;
    if (msgpack_pack_array(&pk, 4) || msgpack_pack_uint8(&pk, 1) || msgpack_pack_uint32(&pk, msgid))
        return -1;
    if (rc == RP_OK) return msgpack_pack_nil(&pk);
    const char *code = rp_err_code(rc);
    if (msg == NULL || msg[0] == '\0') msg = rp_err_text(rc);
    size_t cl = strlen(code), ml = msg_len(msg, RPC_MSG_MAX);
    if (msgpack_pack_map(&pk, 2) || msgpack_pack_str_with_body(&pk, "code", 4) ||
        msgpack_pack_str_with_body(&pk, code, cl) || msgpack_pack_str_with_body(&pk, "message", 7) ||
        msgpack_pack_str_with_body(&pk, msg, ml))
        return -1;
    return 0;
}

/* The result part of a response: the api's object, or nil. */
static void reply_tail(rp_err rc, const char *result, size_t len, const char **p, size_t *n) {
    if (rc == RP_OK && result != NULL && len > 0) {
        *p = result;
        *n = len;
    } else {
        *p = "\xc0";
        *n = 1;
    }
}

/* Encode a whole response into one malloc'd block (any thread).
 * Returns NULL when out of memory. */
static char *reply_encode(uint32_t msgid, rp_err rc, const char *msg, const char *result, size_t len,
                          size_t *out_len) {
    rpc_small h;
    if (reply_head(&h, msgid, rc, msg) != 0) return NULL;
    const char *tp;
    size_t tn;
    reply_tail(rc, result, len, &tp, &tn);
    if (tn > SIZE_MAX - h.n) return NULL;
    char *f = rp_malloc(h.n + tn);
    if (f == NULL) return NULL;
    memcpy(f, h.b, h.n);
    memcpy(f + h.n, tp, tn);
    *out_len = h.n + tn;
    return f;
}

/* --- call slots ---------------------------------------------------------------- */

static rpc_call *call_new(rp_rpc *r, rpc_conn *c) {
    rpc_call *k = r->freelist;
    if (k != NULL) {
        r->freelist = k->next;
        r->nfree--;
        memset(k, 0, sizeof *k);
    } else {
        k = rp_calloc(1, sizeof *k);
        if (k == NULL) return NULL;
    }
    k->conn = c;
    return k;
}

static void call_free(rp_rpc *r, rpc_call *k) {
    free(k->frame);
    k->frame = NULL;
    if (r->nfree < RPC_FREELIST_MAX) {
        k->next = r->freelist;
        r->freelist = k;
        r->nfree++;
    } else {
        free(k);
    }
}

/* --- writing -------------------------------------------------------------------- */

static struct evbuffer *conn_out(rpc_conn *c) { return bufferevent_get_output(c->bev); }

/* Mark c for closing when its output passed the hard cap. */
static void conn_check_output(rpc_conn *c) {
    if (c->bev && evbuffer_get_length(conn_out(c)) > c->rpc->cfg->max_output_bytes) {
        if (!c->doomed)
            rp_log(RP_LOG_WARN, "rpc_output_cap", "conn=%" PRIu64 " peer=%s max_output_bytes=%u",
                   c->id, c->peer, c->rpc->cfg->max_output_bytes);
        c->doomed = true;
    }
}

/* Write a response straight to the output: everything owed before it must
 * already be written. A failure to buffer dooms the connection. */
static void conn_emit(rpc_conn *c, uint32_t msgid, rp_err rc, const char *msg, const char *result,
                      size_t len) {
    if (c->bev == NULL) return;
    rpc_small h;
    const char *tp;
    size_t tn;
    reply_tail(rc, result, len, &tp, &tn);
    struct evbuffer *out = conn_out(c);
    if (reply_head(&h, msgid, rc, msg) != 0 || evbuffer_add(out, h.b, h.n) != 0 ||
        evbuffer_add(out, tp, tn) != 0) {
        rp_log(RP_LOG_ERROR, "rpc_oom", "conn=%" PRIu64 " what=reply", c->id);
        c->doomed = true;
        return;
    }
    conn_check_output(c);
}

/* Write every completed reply at the head of the FIFO, in order. On a
 * closed connection the replies are dropped. */
static void conn_flush(rpc_conn *c) {
    rp_rpc *r = c->rpc;
    while (c->head != NULL && c->head->done) {
        rpc_call *k = c->head;
        c->head = k->next;
        if (c->head == NULL) c->tail = NULL;
        c->nqueued--;
        if (c->bev != NULL) {
            if (k->oom) {
                conn_emit(c, k->msgid, RP_INTERNAL, "out of memory encoding the reply", NULL, 0);
            } else if (evbuffer_add(conn_out(c), k->frame, k->frame_len) != 0) {
                c->doomed = true;
            }
        }
        call_free(r, k);
    }
    if (c->bev) conn_check_output(c);
}

/* Append k (not yet answered) to the FIFO. */
static void conn_enqueue(rpc_conn *c, rpc_call *k) {
    k->next = NULL;
    if (c->tail) c->tail->next = k;
    else c->head = k;
    c->tail = k;
    c->nqueued++;
}

/* Answer msgid now: straight out when nothing is owed before it, else as a
 * completed slot behind the others. */
static void conn_reply_now(rpc_conn *c, uint32_t msgid, rp_err rc, const char *msg,
                           const char *result, size_t len) {
    if (c->bev == NULL) return;
    if (c->head == NULL) {
        conn_emit(c, msgid, rc, msg, result, len);
        return;
    }
    rpc_call *k = call_new(c->rpc, c);
    if (k == NULL) {
        c->doomed = true;
        return;
    }
    k->msgid = msgid;
    k->reply = true;
    k->done = true;
    k->frame = reply_encode(msgid, rc, msg, result, len, &k->frame_len);
    k->oom = k->frame == NULL;
    conn_enqueue(c, k);
}

/* --- lifetime --------------------------------------------------------------------- */

/* Drop one reference; free c when it was the last. Returns true if freed. */
static bool conn_unref(rpc_conn *c) {
    assert(c->refs > 0);
    if (--c->refs > 0) return false;
    assert(c->bev == NULL);
    while (c->head) { /* all done: nothing is in flight any more */
        rpc_call *k = c->head;
        c->head = k->next;
        call_free(c->rpc, k);
    }
    free(c);
    return true;
}

/* Close the socket now; c stays allocated while replies are in flight. */
static void conn_close(rpc_conn *c, const char *why) {
    if (c->bev == NULL) return;
    rp_rpc *r = c->rpc;
    rp_log(RP_LOG_DEBUG, "rpc_close", "conn=%" PRIu64 " peer=%s why=%s", c->id, c->peer, why);
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->slow) event_free(c->slow);
    c->slow = NULL;
    if (c->prev) c->prev->next = c->next;
    else r->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    r->nconns--;
    rp_conn_release(r->stats);
    if (r->group) atomic_fetch_sub(&r->group->conns, 1);
    /* Replies already complete will never be written: drop them now. */
    conn_flush(c);
    conn_unref(c);
}

/* Best-effort msgid of a broken frame that starts like a request
 * ([0, msgid, ...] as fixarray 4, positive fixint 0, then a uint). */
static uint32_t recover_msgid(const unsigned char *p, size_t n) {
    if (n < 3 || p[0] != 0x94 || p[1] != 0x00) return 0;
    if (p[2] <= 0x7f) return p[2];
    if (p[2] == 0xcc && n >= 4) return p[3];
    if (p[2] == 0xcd && n >= 5) return (uint32_t)p[3] << 8 | p[4];
    if (p[2] == 0xce && n >= 7)
        return (uint32_t)p[3] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
    return 0;
}

/* A frame we cannot continue after: answer with one error, discard the
 * input (and whatever else arrives), and close once the error is written.
 * The close lingers (see conn_after) so that the error is not lost to a
 * reset: closing a socket with unread input makes the kernel send RST,
 * and a peer's kernel may then drop the error before its reader saw it. */
static void conn_fail(rpc_conn *c, uint32_t msgid, rp_err rc, const char *why) {
    rp_rpc *r = c->rpc;
    char q[RPC_MSG_MAX + 8];
    rp_conn_count_bad_frame(r->stats);
    rp_conn_count_refused(r->stats, RP_FACE_RPC, rc); /* 413, 503 (memory); 400 is not counted */
    rp_log(RP_LOG_INFO, "rpc_bad_frame", "conn=%" PRIu64 " peer=%s code=%s why=%s", c->id, c->peer,
           rp_err_code(rc), rp_log_quote(q, sizeof q, why));
    conn_reply_now(c, msgid, rc, why, NULL, 0);
    c->failing = true;
    if (c->bev) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
    }
    if (c->slow_armed) {
        event_del(c->slow);
        c->slow_armed = false;
    }
}

/* --- replies from the api ------------------------------------------------------------- */

/* Loop side of a reply that came from another thread. */
static void call_complete(void *arg) {
    rpc_call *k = arg;
    rpc_conn *c = k->conn;
    rp_rpc *r = c->rpc;
    rp_conn_call_end(&r->flight, &k->cc);
    if (!k->reply) {
        call_free(r, k);
        conn_unref(c);
        return;
    }
    k->done = true;
    conn_flush(c);
    if (conn_unref(c)) return;
    conn_after(c);
}

/* rp_api_reply_fn: inline on the loop thread (reads, early errors) or on
 * the writer thread (writes, after their commit). */
static void rpc_on_reply(void *arg, rp_err rc, const char *msg, const char *result, size_t len) {
    rpc_call *k = arg;
    rpc_conn *c = k->conn;
    if (rp_conn_call_inline(&k->cc)) { /* on the loop thread, inside rp_api_call */
        rp_rpc *r = c->rpc;
        rp_conn_call_end(&r->flight, &k->cc);
        if (k->write && rc == RP_UNAVAILABLE) /* refused before the writer ran it */
            rp_conn_count_refused(r->stats, RP_FACE_RPC, rc);
        c->refs--; /* the open reference remains: c is being processed */
        assert(c->refs > 0);
        if (!k->reply) {
            call_free(r, k);
            return;
        }
        if (c->head == k) { /* nothing owed before it: straight out */
            c->head = c->tail = NULL;
            c->nqueued--;
            conn_emit(c, k->msgid, rc, msg, result, len);
            call_free(r, k);
            return;
        }
        k->frame = reply_encode(k->msgid, rc, msg, result, len, &k->frame_len);
        k->oom = k->frame == NULL;
        k->done = true;
        return;
    }
    /* Another thread: encode here (result is only valid now), post back. */
    if (k->reply) {
        k->frame = reply_encode(k->msgid, rc, msg, result, len, &k->frame_len);
        k->oom = k->frame == NULL;
    }
    rp_conn_call_post(&c->rpc->flight, &k->cc, call_complete, k);
}

/* --- requests ------------------------------------------------------------------------- */

typedef struct rpc_req {
    bool notify;
    bool has_msgid;
    uint32_t msgid;
    const char *method;
    size_t mlen;
    msgpack_object params; /* NIL when empty */
} rpc_req;

/* Read params: a map, [map], [] / [nil] / nil (empty). */
static rp_err parse_params(const msgpack_object *p, msgpack_object *out, rp_errbuf *eb) {
    out->type = MSGPACK_OBJECT_NIL;
    if (p->type == MSGPACK_OBJECT_NIL) return RP_OK;
    if (p->type == MSGPACK_OBJECT_MAP) {
        *out = *p;
        return RP_OK;
    }
    if (p->type == MSGPACK_OBJECT_ARRAY) {
        if (p->via.array.size == 0) return RP_OK;
        const msgpack_object *e = &p->via.array.ptr[0];
        if (p->via.array.size == 1 && (e->type == MSGPACK_OBJECT_MAP || e->type == MSGPACK_OBJECT_NIL)) {
            *out = *e;
            return RP_OK;
        }
    }
    return rp_errf(eb, RP_BAD_REQUEST, "params must be a map, or an array holding one map");
}

/* Check the envelope: [0, msgid, method, params] or [2, method, params].
 * q->has_msgid tells whether an error can be answered to the request. */
static rp_err parse_envelope(const msgpack_object *o, rpc_req *q, rp_errbuf *eb) {
    memset(q, 0, sizeof *q);
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3 || o->via.array.size > 4)
        return rp_errf(eb, RP_BAD_REQUEST,
                       "a frame must be [0, msgid, method, params] or [2, method, params]");
    const msgpack_object *a = o->via.array.ptr;
    uint32_t n = o->via.array.size;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || (a[0].via.u64 != 0 && a[0].via.u64 != 2))
        return rp_errf(eb, RP_BAD_REQUEST, "the first element must be 0 (request) or 2 (notification)");
    const msgpack_object *m, *p;
    if (a[0].via.u64 == 0) {
        if (n != 4) return rp_errf(eb, RP_BAD_REQUEST, "a request is [0, msgid, method, params]");
        if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX)
            return rp_errf(eb, RP_BAD_REQUEST, "msgid must be an unsigned 32-bit integer");
        q->has_msgid = true;
        q->msgid = (uint32_t)a[1].via.u64;
        m = &a[2];
        p = &a[3];
    } else {
        if (n != 3) return rp_errf(eb, RP_BAD_REQUEST, "a notification is [2, method, params]");
        q->notify = true;
        m = &a[1];
        p = &a[2];
    }
    if (m->type != MSGPACK_OBJECT_STR || m->via.str.size == 0)
        return rp_errf(eb, RP_BAD_REQUEST, "the method must be a non-empty string");
    if (m->via.str.size > RPC_METHOD_MAX)
        return rp_errf(eb, RP_BAD_REQUEST, "the method name is longer than %d bytes", RPC_METHOD_MAX);
    q->method = m->via.str.ptr;
    q->mlen = m->via.str.size;
    return parse_params(p, &q->params, eb);
}

/* Answer a request that did not reach the api (notifications get nothing). */
static void conn_answer(rpc_conn *c, const rpc_req *q, rp_err rc, const char *msg, const char *result,
                        size_t len) {
    if (q->notify) {
        if (rc != RP_OK)
            rp_log(RP_LOG_DEBUG, "rpc_notify_error", "conn=%" PRIu64 " code=%s", c->id, rp_err_code(rc));
        return;
    }
    conn_reply_now(c, q->msgid, rc, msg, result, len);
}

/* The `auth` method: {token} sets the connection's role. A wrong token
 * leaves the connection unauthenticated (it stays open). */
static void conn_auth(rpc_conn *c, const rpc_req *q) {
    rp_rpc *r = c->rpc;
    const msgpack_object *tok = NULL;
    if (q->params.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < q->params.via.map.size; i++) {
            const msgpack_object_kv *kv = &q->params.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 5 &&
                memcmp(kv->key.via.str.ptr, "token", 5) == 0)
                tok = &kv->val;
        }
    }
    if (tok == NULL || tok->type != MSGPACK_OBJECT_STR) {
        conn_answer(c, q, RP_BAD_REQUEST, "auth takes {token: \"...\"}", NULL, 0);
        return;
    }
    /* No tokens: loopback only, everyone is admin. */
    rp_tokens_box *tb = rp_api_tokens(r->api);
    rp_role role = rp_tokens_auth_role(tb, tok->via.str.ptr, tok->via.str.size, &c->auth);
    if (role == RP_ROLE_NONE) {
        rp_tokens_auth_role(tb, NULL, 0, &c->auth); /* back to unauthenticated */
        rp_log(RP_LOG_WARN, "auth_failed", "conn=%" PRIu64 " peer=%s", c->id, c->peer);
        rp_conn_count_refused(r->stats, RP_FACE_RPC, RP_UNAUTHORIZED);
        conn_answer(c, q, RP_UNAUTHORIZED, "unknown token", NULL, 0);
        return;
    }
    rp_log(RP_LOG_DEBUG, "auth", "conn=%" PRIu64 " peer=%s role=%s", c->id, c->peer, rp_role_name(role));
    rpc_small res;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &res, small_write);
    res.n = 0;
    const char *rn = rp_role_name(role);
    if (msgpack_pack_map(&pk, 1) || msgpack_pack_str_with_body(&pk, "role", 4) ||
        msgpack_pack_str_with_body(&pk, rn, strlen(rn))) {
        conn_answer(c, q, RP_INTERNAL, "cannot encode the auth result", NULL, 0);
        return;
    }
    conn_answer(c, q, RP_OK, NULL, res.b, res.n);
}

/* Hand one request to the api. Before `auth` (when tokens exist) only ping
 * is allowed; it runs with the least privileged role, which ping allows. */
static void conn_call(rpc_conn *c, const rpc_req *q, const rp_api_op *op) {
    rp_rpc *r = c->rpc;
    rp_role role = rp_tokens_recheck(rp_api_tokens(r->api), &c->auth); /* a reload may revoke */
    if (role == RP_ROLE_NONE) {
        if (op != r->op_ping) {
            rp_conn_count_refused(r->stats, RP_FACE_RPC, RP_UNAUTHORIZED);
            conn_answer(c, q, RP_UNAUTHORIZED, "authenticate first: call auth with {token}", NULL, 0);
            return;
        }
        role = RP_ROLE_ROUTE;
    }
    rpc_call *k = call_new(r, c);
    if (k == NULL) {
        rp_conn_count_refused(r->stats, RP_FACE_RPC, RP_UNAVAILABLE);
        conn_answer(c, q, RP_UNAVAILABLE, "out of memory", NULL, 0);
        return;
    }
    k->msgid = q->msgid;
    k->reply = !q->notify;
    k->write = op->write;
    if (!rp_api_allowed(op, role)) /* rp_api_call answers it FORBIDDEN */
        rp_conn_count_refused(r->stats, RP_FACE_RPC, RP_FORBIDDEN);
    if (k->reply) conn_enqueue(c, k);
    c->refs++;
    char reqid[48];
    if (q->notify) snprintf(reqid, sizeof reqid, "%" PRIu64 "-n", c->id);
    else snprintf(reqid, sizeof reqid, "%" PRIu64 "-%" PRIu32, c->id, q->msgid);
    rp_conn_call_begin(&r->flight, &k->cc);
    rp_api_call(r->api, op, role, reqid, &q->params, rpc_on_reply, k);
}

/* Dispatch one validated frame. */
static void conn_request(rpc_conn *c, const msgpack_object *o) {
    rp_rpc *r = c->rpc;
    rpc_req q;
    rp_errbuf eb = {0};
    rp_err rc = parse_envelope(o, &q, &eb);
    if (rc != RP_OK) {
        if (!q.has_msgid) {
            conn_fail(c, 0, rc, rp_errbuf_msg(&eb));
            return;
        }
        rp_conn_count_bad_frame(r->stats);
        conn_reply_now(c, q.msgid, rc, rp_errbuf_msg(&eb), NULL, 0);
        return;
    }
    if (r->draining) {
        rp_conn_count_refused(r->stats, RP_FACE_RPC, RP_UNAVAILABLE);
        conn_answer(c, &q, RP_UNAVAILABLE, "the server is shutting down; retry", NULL, 0);
        return;
    }
    if (q.mlen == 4 && memcmp(q.method, "auth", 4) == 0) {
        conn_auth(c, &q);
        return;
    }
    const rp_api_op *op = rp_api_find(q.method, q.mlen);
    if (op == NULL) {
        /* Echo the name printable only (proto/RECORDS.md: no raw bytes). */
        char name[RPC_METHOD_MAX + 1], msg[RPC_METHOD_MAX + 32];
        for (size_t i = 0; i < q.mlen; i++)
            name[i] = (q.method[i] >= 0x20 && q.method[i] < 0x7f) ? q.method[i] : '?';
        name[q.mlen] = '\0';
        snprintf(msg, sizeof msg, "unknown method '%s'", name);
        conn_answer(c, &q, RP_BAD_REQUEST, msg, NULL, 0);
        return;
    }
    conn_call(c, &q, op);
}

/* --- reading -------------------------------------------------------------------------- */

/* Too much owed to this client: stop reading its requests for now. */
static bool conn_must_pause(rpc_conn *c) {
    return c->nqueued >= RP_RPC_MAX_PENDING ||
           evbuffer_get_length(conn_out(c)) > c->rpc->cfg->max_output_bytes / 2;
}

/* Enough of it was written: read again (hysteresis against flapping). */
static bool conn_may_resume(rpc_conn *c) {
    return c->nqueued < RP_RPC_RESUME_PENDING &&
           evbuffer_get_length(conn_out(c)) <= c->rpc->cfg->max_output_bytes / 4;
}

/* Bytes waiting in the socket (0 when unknown). */
static size_t sock_pending(rpc_conn *c) {
    int n = 0;
    if (ioctl(bufferevent_getfd(c->bev), FIONREAD, &n) != 0 || n < 0) return 0;
    return (size_t)n;
}

/* (Re)start or stop the slow-request timer after a pass over the input. */
static void conn_slow_timer(rpc_conn *c, bool finished_one) {
    size_t left = evbuffer_get_length(bufferevent_get_input(c->bev));
    if (left == 0 || c->read_paused || c->failing) {
        if (c->slow_armed) event_del(c->slow);
        c->slow_armed = false;
    } else if (finished_one || !c->slow_armed) {
        evtimer_add(c->slow, &c->rpc->dl.slow);
        c->slow_armed = true;
    }
}

/* Validate (and unpack) the frame at the front of in. Makes the bytes
 * contiguous only as far as needed: first the first chunk, then up to
 * max_request_bytes when the frame continues past it. */
static rp_mpcheck_result conn_next_frame(rpc_conn *c, struct evbuffer *in, size_t len,
                                         const char **buf, size_t *objlen, msgpack_object *obj,
                                         char *why, size_t whylen) {
    rp_rpc *r = c->rpc;
    size_t want = len < r->lim.max_bytes ? len : r->lim.max_bytes;
    size_t look = evbuffer_get_contiguous_space(in);
    if (look > want) look = want;
    *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    rp_mpcheck_result res = rp_mpcheck_unpack(*buf, look, &r->lim, &r->zone, obj, objlen, why, whylen);
    if (res == RP_MPC_INCOMPLETE && look < want && *objlen <= want) {
        *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
        if (*buf == NULL) return RP_MPC_NOMEM;
        res = rp_mpcheck_unpack(*buf, want, &r->lim, &r->zone, obj, objlen, why, whylen);
    }
    return res;
}

/* Handle every complete frame in the input buffer, in order. Stops at an
 * incomplete frame, at backpressure, or at a bad frame. Never closes the
 * connection itself (callers run conn_after). */
static void conn_process(rpc_conn *c) {
    if (c->bev == NULL || c->in_process) return;
    rp_rpc *r = c->rpc;
    c->in_process = true;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    bool finished_one = false;
    while (c->bev && !c->failing && !c->doomed) {
        size_t len = evbuffer_get_length(in);
        if (len == 0) break;
        if (conn_must_pause(c)) {
            if (!c->read_paused) {
                bufferevent_disable(c->bev, EV_READ);
                rp_log(RP_LOG_DEBUG, "rpc_pause", "conn=%" PRIu64 " queued=%u output=%zu", c->id,
                       c->nqueued, evbuffer_get_length(conn_out(c)));
            }
            c->read_paused = true;
            break;
        }
        if (len < c->need) break;
        if (c->walked > RPC_BIG_PARTIAL && len < 2 * c->walked && len < r->lim.max_bytes && !c->eof &&
            sock_pending(c) > 0)
            break;
        const char *buf = NULL;
        size_t objlen = 0;
        msgpack_object obj;
        char why[200] = "";
        rp_mpcheck_result res = conn_next_frame(c, in, len, &buf, &objlen, &obj, why, sizeof why);
        if (res == RP_MPC_INCOMPLETE) {
            c->need = objlen > len ? objlen : len + 1;
            if (len > RPC_BIG_PARTIAL) c->walked = len;
            break;
        }
        c->need = 0;
        c->walked = 0;
        if (res != RP_MPC_OK) {
            size_t bl = len < 16 ? len : 16;
            uint32_t msgid = buf ? recover_msgid((const unsigned char *)buf, bl) : 0;
            if (res == RP_MPC_NOMEM) snprintf(why, sizeof why, "out of memory reading the request");
            conn_fail(c, msgid, rp_mpcheck_err(res), why);
            break;
        }
        conn_request(c, &obj);
        msgpack_zone_clear(&r->zone);
        if (c->failing) break;
        evbuffer_drain(in, objlen);
        finished_one = true;
    }
    if (c->bev) {
        conn_slow_timer(c, finished_one);
        size_t left = evbuffer_get_length(in);
        if (c->eof && left > 0 && !c->failing && !c->doomed && !c->read_paused) {
            char why[128];
            snprintf(why, sizeof why, "the connection closed in the middle of a request (%zu bytes)", left);
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)(left < 16 ? left : 16));
            conn_fail(c, p ? recover_msgid((const unsigned char *)p, left < 16 ? left : 16) : 0,
                      RP_BAD_REQUEST, why);
        }
    }
    c->in_process = false;
}

/* End of every top-level callback: close when due, resume when the
 * backpressure is gone (which may process buffered requests). */
static void conn_after(rpc_conn *c) {
    while (c->bev != NULL) {
        if (c->doomed) {
            conn_close(c, "output");
            return;
        }
        size_t out = evbuffer_get_length(conn_out(c));
        if (c->read_paused && !c->failing && conn_may_resume(c)) {
            rp_log(RP_LOG_DEBUG, "rpc_resume", "conn=%" PRIu64, c->id);
            c->read_paused = false;
            if (!c->eof) bufferevent_enable(c->bev, EV_READ);
            conn_process(c);
            continue;
        }
        bool ending = c->failing || c->eof || c->rpc->draining;
        if (ending && c->head == NULL && out == 0 && (c->failing || !c->read_paused)) {
            if (c->failing && !c->eof) {
                /* Lingering close: our FIN first, then wait (bounded) for
                 * the peer's, discarding what it still sends. */
                if (!c->lingering) {
                    c->lingering = true;
                    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
                    evtimer_add(c->slow, &c->rpc->dl.linger);
                    c->slow_armed = true;
                }
                return;
            }
            conn_close(c, c->failing ? "bad_frame" : c->eof ? "eof" : "shutdown");
            return;
        }
        return;
    }
}

/* --- bufferevent callbacks ------------------------------------------------------------ */

static void on_read(struct bufferevent *bev, void *arg) {
    rpc_conn *c = arg;
    if (c->failing) { /* nothing more is read as requests */
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    conn_process(c);
    conn_after(c);
}

static void on_write(struct bufferevent *bev, void *arg) {
    (void)bev;
    conn_after(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
    rpc_conn *c = arg;
    rp_rpc *r = c->rpc;
    if (what & BEV_EVENT_TIMEOUT) {
        /* Waiting for its own replies is not idleness. */
        if ((what & BEV_EVENT_READING) && (c->head != NULL || c->refs > 1)) {
            bufferevent_enable(bev, EV_READ);
            return;
        }
        rp_conn_count_timeout(r->stats);
        conn_close(c, (what & BEV_EVENT_READING) ? "idle" : "write_timeout");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->eof = true;
        if (!c->read_paused) conn_process(c);
        conn_after(c);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        conn_close(c, "socket_error");
        return;
    }
}

static void on_slow(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rpc_conn *c = arg;
    c->slow_armed = false;
    if (c->lingering) {
        conn_close(c, "bad_frame");
        return;
    }
    rp_conn_count_timeout(c->rpc->stats);
    rp_log(RP_LOG_INFO, "rpc_slow_request", "conn=%" PRIu64 " peer=%s slow_timeout_ms=%u", c->id,
           c->peer, c->rpc->cfg->slow_timeout_ms);
    conn_close(c, "slow_request");
}

/* --- accepting -------------------------------------------------------------------------- */

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t n) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%u", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%u", host, port);
    } else {
        snprintf(out, n, "unknown");
    }
}

/* Over max_connections: tell the client in one frame, close. */
static void rpc_reject(rp_rpc *r, int fd) {
    char msg[96];
    rp_conn_count_refused(r->stats, RP_FACE_RPC, RP_UNAVAILABLE); /* its one frame answers 503 */
    snprintf(msg, sizeof msg, "too many connections (max_connections = %u)", r->cfg->max_connections);
    rpc_small h;
    if (reply_head(&h, 0, RP_UNAVAILABLE, msg) == 0 && h.n < sizeof h.b) {
        h.b[h.n++] = (char)0xc0;
        ssize_t w = send(fd, h.b, h.n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    close(fd);
    time_t now = time(NULL);
    if (now != r->last_reject_log) { /* at most one line a second per worker */
        r->last_reject_log = now;
        rp_log(RP_LOG_WARN, "rpc_rejected", "reason=max_connections max_connections=%u",
               r->cfg->max_connections);
    }
}

static void rpc_accept_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rp_rpc *r = arg;
    if (r->accept_ev) event_add(r->accept_ev, NULL);
}

/* Set up a connection on an accepted socket. Closes fd on failure. */
static void rpc_adopt(rp_rpc *r, int fd, const struct sockaddr_storage *ss) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rpc_conn *c = rp_calloc(1, sizeof *c);
    struct bufferevent *bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
    struct event *slow = evtimer_new(r->base, on_slow, c);
    if (c == NULL || bev == NULL || slow == NULL) {
        rp_log(RP_LOG_ERROR, "rpc_oom", "what=connection");
        if (bev) bufferevent_free(bev);
        else close(fd);
        if (slow) event_free(slow);
        free(c);
        rp_conn_release(r->stats);
        return;
    }
    c->rpc = r;
    c->bev = bev;
    c->slow = slow;
    c->id = atomic_fetch_add(&rpc_next_conn_id, 1);
    rp_tokens_auth_role(rp_api_tokens(r->api), NULL, 0, &c->auth); /* admin when no tokens */
    c->refs = 1;
    peer_name(ss, c->peer, sizeof c->peer);
    c->next = r->conns;
    if (r->conns) r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    if (r->group) atomic_fetch_add(&r->group->conns, 1);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(bev, EV_READ, 0, r->lim.max_bytes);
    bufferevent_set_timeouts(bev, &r->dl.idle, &r->dl.idle);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    rp_log(RP_LOG_DEBUG, "rpc_open", "conn=%" PRIu64 " peer=%s", c->id, c->peer);
}

/* Does this worker hold more than its share (+1) of the connections?
 * Then a sibling, woken by the same readiness, takes the new one. Not all
 * members can be over their share at once, so someone always accepts. */
static bool rpc_over_share(const rp_rpc *r) {
    if (r->group == NULL) return false;
    unsigned members = atomic_load(&r->group->members);
    if (members < 2) return false;
    return r->nconns > atomic_load(&r->group->conns) / members + 1;
}

/* One accept per wake-up, so that workers sharing the socket share the
 * connections. Out of descriptors: pause accepting for 100 ms rather than
 * spin on a socket that stays readable. */
static void rpc_on_accept(evutil_socket_t lfd, short what, void *arg) {
    (void)what;
    rp_rpc *r = arg;
    if (rpc_over_share(r)) return;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED) return;
        rp_log(RP_LOG_WARN, "rpc_accept_error", "errno=%d error=\"%s\"", e, strerror(e));
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            struct timeval tv = {0, 100000};
            event_del(r->accept_ev);
            evtimer_add(r->accept_retry, &tv);
        }
        return;
    }
    if (!rp_conn_admit(r->stats, r->cfg)) {
        rp_conn_release(r->stats);
        rpc_reject(r, fd);
        return;
    }
    rpc_adopt(r, fd, &ss);
}

/* --- public ------------------------------------------------------------------------------ */

rp_err rp_rpc_create(rp_loop *loop, evutil_socket_t fd, rp_api *api, const rp_config *cfg,
                     rp_net_stats *stats, rp_rpc_group *group, rp_rpc **out, rp_errbuf *eb) {
    assert(loop && api && cfg && stats && out);
    rp_rpc *r = rp_calloc(1, sizeof *r);
    if (r == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory creating the rpc face");
    r->loop = loop;
    r->base = rp_loop_base(loop);
    r->lfd = fd;
    r->api = api;
    r->cfg = cfg;
    r->stats = stats;
    r->group = group;
    r->op_ping = rp_api_find("ping", 4);
    r->lim = rp_mpcheck_limits_from_config(cfg);
    /* msgpack-c's zone may take ~23 bytes per input byte for tiny nested
     * containers; 8x the frame cap is far above real requests (~2-3x). */
    r->lim.max_zone = (size_t)cfg->max_request_bytes * 8;
    rp_conn_deadlines_init(&r->dl, cfg);
    rp_conn_flight_init(&r->flight, loop);
    if (!msgpack_zone_init(&r->zone, 8192)) {
        free(r);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory creating the rpc zone");
    }
    r->accept_ev = event_new(r->base, fd, EV_READ | EV_PERSIST, rpc_on_accept, r);
    r->accept_retry = evtimer_new(r->base, rpc_accept_retry, r);
    if (r->accept_ev == NULL || r->accept_retry == NULL || event_add(r->accept_ev, NULL) != 0)
        goto fail;
    if (group) {
        atomic_fetch_add(&group->members, 1);
        r->member = true;
    }
    *out = r;
    return RP_OK;
fail:
    rp_rpc_free(r);
    return rp_errf(eb, RP_UNAVAILABLE, "libevent: cannot watch the rpc listening socket");
}

void rp_rpc_stop_accepting(rp_rpc *r) {
    if (r->member) {
        atomic_fetch_sub(&r->group->members, 1);
        r->member = false;
    }
    if (r->accept_ev) event_free(r->accept_ev);
    if (r->accept_retry) event_free(r->accept_retry);
    r->accept_ev = NULL;
    r->accept_retry = NULL;
}

void rp_rpc_drain(rp_rpc *r) {
    r->draining = true;
    rpc_conn *next;
    for (rpc_conn *c = r->conns; c; c = next) {
        next = c->next; /* conn_after may close c */
        conn_after(c);
    }
}

unsigned rp_rpc_in_flight(const rp_rpc *r) { return rp_conn_in_flight(&r->flight); }

unsigned rp_rpc_connections(const rp_rpc *r) { return r->nconns; }

void rp_rpc_free(rp_rpc *r) {
    if (r == NULL) return;
    rp_rpc_stop_accepting(r);
    while (r->conns) conn_close(r->conns, "server_stop");
    while (r->freelist) {
        rpc_call *k = r->freelist;
        r->freelist = k->next;
        free(k);
    }
    msgpack_zone_destroy(&r->zone);
    free(r);
}
