/* client.c — blocking MessagePack-RPC client (see client.h).
 *
 * The socket is non-blocking and every wait is a poll(2) with the client's
 * time-out, so one setting bounds connect, write and read alike. Two
 * buffers: `out` holds requests not yet written, `in` holds bytes received
 * and not yet consumed. A reply is consumed lazily: its bytes stay in `in`
 * (the result's strings point there) until the next receive, which then
 * drops them and compacts the buffer.
 *
 * Cost: each reply is walked by the validator once it is complete (and,
 * for a reply spread over many reads, again only after at least the
 * validator's lower bound of its length has arrived), then unpacked into
 * a zone that is cleared per reply.
 */
#include "net/client.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_READ_CHUNK 65536

struct rp_client {
    int fd;
    int timeout_ms;          /* -1: forever */
    bool broken;
    uint32_t next_msgid;
    unsigned pending;
    rp_mpcheck_limits lim;
    msgpack_zone zone;
    char *in;                /* received bytes: [in_pos, in_len) unconsumed */
    size_t in_pos, in_len, in_cap;
    size_t last_len;         /* bytes of the reply handed out last time */
    size_t need;             /* do not validate before in_len - in_pos reaches it */
    char *out;               /* queued requests: [out_pos, out_len) unwritten */
    size_t out_pos, out_len, out_cap;
};

rp_mpcheck_limits rp_client_default_limits(void) {
    rp_mpcheck_limits lim = {.max_bytes = 64u << 20, .max_depth = 32, .max_container = 1000000,
                             .max_string = 16u << 20, .max_zone = 0};
    return lim;
}

/* Mark the client broken and return the error (printf-style sentence). */
__attribute__((format(printf, 4, 5))) static rp_err client_fail(rp_client *c, rp_errbuf *eb, rp_err code,
                                                                const char *fmt, ...) {
    c->broken = true;
    char msg[RP_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rp_errf(eb, code, "%s", msg);
}

/* --- buffers ------------------------------------------------------------------ */

/* Make room for n more bytes at the end of a buffer (doubling). */
static int buf_reserve(char **p, size_t *cap, size_t len, size_t n) {
    if (n > SIZE_MAX - len) return -1;
    if (len + n <= *cap) return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < len + n) {
        if (nc > SIZE_MAX / 2) return -1;
        nc *= 2;
    }
    char *q = realloc(*p, nc);
    if (q == NULL) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* msgpack write callback: append to the out buffer. */
static int out_write(void *data, const char *buf, size_t len) {
    rp_client *c = data;
    if (buf_reserve(&c->out, &c->out_cap, c->out_len, len) != 0) return -1;
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return 0;
}

/* --- connecting ---------------------------------------------------------------- */

static rp_err split_hostport(const char *hp, char *host, size_t hn, char *port, size_t pn, rp_errbuf *eb) {
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || colon == hp || colon[1] == '\0')
        return rp_errf(eb, RP_BAD_REQUEST, "'%s' is not HOST:PORT", hp);
    const char *h = hp;
    size_t hl = (size_t)(colon - hp);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    size_t pl = strlen(colon + 1);
    if (hl >= hn || pl >= pn) return rp_errf(eb, RP_BAD_REQUEST, "'%s' is not HOST:PORT", hp);
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return RP_OK;
}

/* Non-blocking connect to one address, waiting at most timeout_ms.
 * Returns the socket or -1 with errno set. */
static int connect_one(const struct addrinfo *ai, int timeout_ms) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) goto fail;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n;
        do n = poll(&pfd, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n == 0) errno = ETIMEDOUT;
        if (n <= 0) goto fail;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) goto fail;
        if (err != 0) {
            errno = err;
            goto fail;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
fail: {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}
}

rp_err rp_client_connect(const char *hostport, uint32_t timeout_ms, rp_client **out, rp_errbuf *eb) {
    assert(hostport && out);
    char host[256], port[16];
    rp_err rc = split_hostport(hostport, host, sizeof host, port, sizeof port, eb);
    if (rc != RP_OK) return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) return rp_errf(eb, RP_BAD_REQUEST, "cannot resolve '%s': %s", hostport, gai_strerror(g));
    int tmo = timeout_ms == 0 ? -1 : timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms;
    int fd = -1, e = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai, tmo);
        if (fd < 0) e = errno;
    }
    freeaddrinfo(res);
    if (fd < 0) return rp_errf(eb, RP_UNAVAILABLE, "cannot connect to %s: %s", hostport, strerror(e));
    rp_client *c = calloc(1, sizeof *c);
    if (c == NULL || !msgpack_zone_init(&c->zone, 8192)) {
        free(c);
        close(fd);
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory creating a client");
    }
    c->fd = fd;
    c->timeout_ms = tmo;
    c->next_msgid = 1;
    c->lim = rp_client_default_limits();
    *out = c;
    return RP_OK;
}

void rp_client_close(rp_client *c) {
    if (c == NULL) return;
    close(c->fd);
    msgpack_zone_destroy(&c->zone);
    free(c->in);
    free(c->out);
    free(c);
}

void rp_client_set_limits(rp_client *c, const rp_mpcheck_limits *lim) { c->lim = *lim; }
int rp_client_fd(const rp_client *c) { return c->fd; }
bool rp_client_broken(const rp_client *c) { return c->broken; }
unsigned rp_client_pending(const rp_client *c) { return c->pending; }

/* --- sending -------------------------------------------------------------------- */

rp_err rp_client_send(rp_client *c, const char *method, const char *params, size_t params_len,
                      uint32_t *msgid, rp_errbuf *eb) {
    if (c->broken) return rp_errf(eb, RP_UNAVAILABLE, "the connection is broken");
    uint32_t id = c->next_msgid++;
    if (c->next_msgid == 0) c->next_msgid = 1; /* 0 is the server's "no request" id */
    size_t before = c->out_len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, c, out_write);
    size_t ml = strlen(method);
    int bad = msgpack_pack_array(&pk, 4) || msgpack_pack_uint8(&pk, 0) || msgpack_pack_uint32(&pk, id) ||
              msgpack_pack_str_with_body(&pk, method, ml);
    if (!bad) {
        if (params != NULL && params_len > 0)
            bad = msgpack_pack_array(&pk, 1) || out_write(c, params, params_len);
        else
            bad = msgpack_pack_array(&pk, 0);
    }
    if (bad) {
        c->out_len = before;
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory queueing a request");
    }
    c->pending++;
    if (msgid) *msgid = id;
    return RP_OK;
}

/* Read what the socket has (at most one chunk) into `in`. Returns RP_OK,
 * or a transport error (EOF included). */
static rp_err client_read(rp_client *c, rp_errbuf *eb) {
    if (buf_reserve(&c->in, &c->in_cap, c->in_len, CLIENT_READ_CHUNK) != 0)
        return client_fail(c, eb, RP_UNAVAILABLE, "out of memory reading a reply");
    ssize_t n;
    do n = read(c->fd, c->in + c->in_len, CLIENT_READ_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n == 0) return client_fail(c, eb, RP_UNAVAILABLE, "the server closed the connection");
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return RP_OK;
        return client_fail(c, eb, RP_UNAVAILABLE, "read: %s", strerror(errno));
    }
    c->in_len += (size_t)n;
    return RP_OK;
}

/* Wait for the socket (events), honouring the time-out. */
static rp_err client_wait(rp_client *c, short events, short *revents, rp_errbuf *eb) {
    struct pollfd pfd = {.fd = c->fd, .events = events};
    int n;
    do n = poll(&pfd, 1, c->timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0) return client_fail(c, eb, RP_UNAVAILABLE, "timed out waiting for the server");
    if (n < 0) return client_fail(c, eb, RP_UNAVAILABLE, "poll: %s", strerror(errno));
    *revents = pfd.revents;
    return RP_OK;
}

rp_err rp_client_flush(rp_client *c, rp_errbuf *eb) {
    if (c->broken) return rp_errf(eb, RP_UNAVAILABLE, "the connection is broken");
    while (c->out_pos < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return client_fail(c, eb, RP_UNAVAILABLE, "write: %s", strerror(errno));
        /* Full: read replies meanwhile, so the server never blocks on us. */
        short re = 0;
        rp_err rc = client_wait(c, POLLOUT | POLLIN, &re, eb);
        if (rc != RP_OK) return rc;
        if (re & (POLLIN | POLLHUP | POLLERR)) {
            rc = client_read(c, eb);
            if (rc != RP_OK) return rc;
        }
    }
    c->out_pos = c->out_len = 0;
    return RP_OK;
}

/* --- receiving ------------------------------------------------------------------- */

/* Copy the error map {code, message} of a reply into r. */
static void reply_error(const msgpack_object *e, rp_client_reply *r) {
    r->rc = RP_INTERNAL;
    snprintf(r->message, sizeof r->message, "the server sent an error without a code");
    if (e->type == MSGPACK_OBJECT_STR) {
        snprintf(r->message, sizeof r->message, "%.*s", (int)e->via.str.size, e->via.str.ptr);
        return;
    }
    if (e->type != MSGPACK_OBJECT_MAP) return;
    for (uint32_t i = 0; i < e->via.map.size; i++) {
        const msgpack_object *k = &e->via.map.ptr[i].key, *v = &e->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR) continue;
        if (k->via.str.size == 4 && memcmp(k->via.str.ptr, "code", 4) == 0) {
            r->rc = rp_err_parse(v->via.str.ptr, v->via.str.size);
            if (r->rc == RP_OK) r->rc = RP_INTERNAL; /* "OK" is not an error code */
        } else if (k->via.str.size == 7 && memcmp(k->via.str.ptr, "message", 7) == 0) {
            int n = v->via.str.size > INT32_MAX ? INT32_MAX : (int)v->via.str.size;
            snprintf(r->message, sizeof r->message, "%.*s", n, v->via.str.ptr);
        }
    }
}

/* Check a reply's shape: [1, msgid, error, result]. */
static rp_err reply_parse(rp_client *c, const msgpack_object *o, rp_client_reply *r, rp_errbuf *eb) {
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
        return client_fail(c, eb, RP_INTERNAL, "the server sent something that is not a reply");
    const msgpack_object *a = o->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1 ||
        a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX)
        return client_fail(c, eb, RP_INTERNAL, "the server sent a malformed reply");
    r->msgid = (uint32_t)a[1].via.u64;
    r->message[0] = '\0';
    r->result.type = MSGPACK_OBJECT_NIL;
    if (a[2].type == MSGPACK_OBJECT_NIL) {
        r->rc = RP_OK;
        r->result = a[3];
    } else {
        reply_error(&a[2], r);
    }
    return RP_OK;
}

rp_err rp_client_recv(rp_client *c, rp_client_reply *r, rp_errbuf *eb) {
    if (c->broken) return rp_errf(eb, RP_UNAVAILABLE, "the connection is broken");
    if (c->pending == 0) return rp_errf(eb, RP_BAD_REQUEST, "no reply is pending");
    /* Drop the previous reply; compact when the consumed part dominates. */
    c->in_pos += c->last_len;
    c->last_len = 0;
    msgpack_zone_clear(&c->zone);
    if (c->in_pos == c->in_len) {
        c->in_pos = c->in_len = 0;
    } else if (c->in_pos > c->in_cap / 2) {
        memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
    }
    rp_err rc = rp_client_flush(c, eb);
    if (rc != RP_OK) return rc;
    for (;;) {
        size_t avail = c->in_len - c->in_pos;
        if (avail > 0 && avail >= c->need) {
            msgpack_object obj;
            size_t objlen = 0;
            char why[160] = "";
            rp_mpcheck_result res = rp_mpcheck_unpack(c->in + c->in_pos, avail, &c->lim, &c->zone,
                                                      &obj, &objlen, why, sizeof why);
            if (res == RP_MPC_OK) {
                c->need = 0;
                c->last_len = objlen;
                rc = reply_parse(c, &obj, r, eb);
                if (rc != RP_OK) return rc;
                if (r->msgid != 0) c->pending--;
                else c->broken = true; /* the server closes after such an error */
                return RP_OK;
            }
            if (res != RP_MPC_INCOMPLETE)
                return client_fail(c, eb, RP_INTERNAL, "bad reply from the server: %s", why);
            c->need = objlen;
        }
        if (c->in_pos > 0) { /* keep the partial reply at the front */
            memmove(c->in, c->in + c->in_pos, avail);
            c->in_len = avail;
            c->in_pos = 0;
        }
        short re = 0;
        rc = client_wait(c, POLLIN, &re, eb);
        if (rc != RP_OK) return rc;
        rc = client_read(c, eb);
        if (rc != RP_OK) return rc;
    }
}

/* --- convenience ------------------------------------------------------------------ */

rp_err rp_client_call(rp_client *c, const char *method, const char *params, size_t params_len,
                      msgpack_object *result, rp_errbuf *eb) {
    if (c->broken) return rp_errf(eb, RP_UNAVAILABLE, "the connection is broken");
    if (c->pending != 0)
        return rp_errf(eb, RP_BAD_REQUEST, "%u replies are pending: receive them first", c->pending);
    uint32_t id = 0;
    rp_err rc = rp_client_send(c, method, params, params_len, &id, eb);
    if (rc != RP_OK) return rc;
    rp_client_reply r;
    rc = rp_client_recv(c, &r, eb);
    if (rc != RP_OK) return rc;
    if (r.msgid != id && r.msgid != 0)
        return client_fail(c, eb, RP_INTERNAL, "the server answered another request");
    if (r.rc != RP_OK) return rp_errf(eb, r.rc, "%s", r.message);
    if (result) *result = r.result;
    return RP_OK;
}

rp_err rp_client_auth(rp_client *c, const char *token, rp_role *role, rp_errbuf *eb) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t tl = strlen(token);
    rp_err rc;
    if (msgpack_pack_map(&pk, 1) || msgpack_pack_str_with_body(&pk, "token", 5) ||
        msgpack_pack_str_with_body(&pk, token, tl)) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory packing auth");
        goto done;
    }
    msgpack_object res;
    rc = rp_client_call(c, "auth", sb.data, sb.size, &res, eb);
    if (rc != RP_OK) goto done;
    if (role) {
        *role = RP_ROLE_NONE;
        if (res.type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < res.via.map.size; i++) {
                const msgpack_object_kv *kv = &res.via.map.ptr[i];
                if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 4 &&
                    memcmp(kv->key.via.str.ptr, "role", 4) == 0 && kv->val.type == MSGPACK_OBJECT_STR &&
                    kv->val.via.str.size < 16) {
                    char name[16];
                    memcpy(name, kv->val.via.str.ptr, kv->val.via.str.size);
                    name[kv->val.via.str.size] = '\0';
                    *role = rp_role_parse(name);
                }
            }
    }
done:
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
