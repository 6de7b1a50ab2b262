/* http_errpage.c — libevent's own replies, in our JSON error format.
 *
 * evhttp answers some requests itself, before our request callback sees
 * them: 400 for a malformed request line, header or chunk, 413 for a head
 * over 16 KiB or a body over max_request_bytes, 501 for a method it does
 * not know, 417 for an Expect other than 100-continue. libevent 2.1.12 has
 * no hook for these (no newreqcb or errorcb): evhttp_send_error writes its
 * HTML page (text/html, no X-Request-Id) straight into the connection's
 * output buffer. We create every connection's bufferevent ourselves
 * (http.c, on_new_bev), so we watch that output buffer with an evbuffer
 * callback — the bufferevent itself stays a plain socket one, so evhttp's
 * time-outs, watermarks, setfd/getfd and our sweeper are untouched.
 *
 * The page has one exact shape (libevent's http.c, evhttp_send_error and
 * evhttp_make_header): one add for the status line "HTTP/1.x NNN Reason",
 * one per header line, "\r\n", then one add of the body
 * "<HTML><HEAD>\n<TITLE>NNN Reason</TITLE>\n</HEAD><BODY>\n<H1>Reason</H1>\n
 * </BODY></HTML>\n". We remember where each status line starts; when an add
 * is such a body (a raw newline inside it: JSON, NDJSON and the metrics text
 * we send never have "<HTML><HEAD>\n"), everything from that status line on
 * is replaced by our reply: the same status, Content-Type application/json,
 * the {"error":{...}} body with its Content-Length, a fresh X-Request-Id,
 * Date, and Connection: close (evhttp closes after every such page). The
 * socket is written in a later loop turn, so nothing of the page has left.
 *
 * A 413 is either a head over 16 KiB or a body over max_request_bytes. An
 * input callback tells them apart: it counts the request heads received
 * (a blank line ends a head), and http.c counts the requests that reached
 * on_request; a 413 with more heads than requests served (and no head over
 * the limit) is a body's.
 *
 * After such a page the connection lingers (http.c): the client may still
 * be sending the body we refused, and closing a socket with unread input
 * resets it, which can destroy the reply before the client reads it.
 */
#include "core/alloc.h"
#include "net/http_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "net/buf.h"

static const char page_open[] = "<HTML><HEAD>\n<TITLE>";
static const char page_close[] = "</BODY></HTML>\n";
#define HEAD_MAX 1024 /* libevent's head of an error page is ~150 bytes */

/* Does buf hold lit at pos? */
static bool has_at(struct evbuffer *buf, size_t pos, const char *lit, size_t n) {
    char tmp[32];
    if (n > sizeof tmp || pos + n > evbuffer_get_length(buf)) return false;
    struct evbuffer_ptr p;
    if (evbuffer_ptr_set(buf, &p, pos, EVBUFFER_PTR_SET) != 0) return false;
    if (evbuffer_copyout_from(buf, &p, tmp, n) != (ev_ssize_t)n) return false;
    return memcmp(tmp, lit, n) == 0;
}

/* The code and message of libevent's page of status st. */
static rp_err page_error(const rp_http *h, const http_conn *c, int st, char *msg, size_t n) {
    switch (st) {
    case 413:
        if (c->heads > c->served && !c->big_head) {
            snprintf(msg, n,
                     "request body over max_request_bytes (%" PRIu32 " bytes); for POST /v1/import "
                     "split the NDJSON at line ends into bodies of at most %" PRIu32
                     " bytes (rapport import does this)",
                     h->cfg->max_request_bytes, h->cfg->max_request_bytes);
        } else {
            snprintf(msg, n, "request line and headers over %d bytes", HTTP_MAX_HEADERS);
        }
        return RP_TOO_LARGE;
    case 501:
        snprintf(msg, n, "method not supported (GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS)");
        return RP_BAD_REQUEST;
    case 417: snprintf(msg, n, "only Expect: 100-continue is supported"); return RP_BAD_REQUEST;
    case 400:
        snprintf(msg, n, "malformed HTTP request (request line, header, Content-Length or chunk)");
        return RP_BAD_REQUEST;
    default: snprintf(msg, n, "HTTP error %d", st); return st >= 500 ? RP_INTERNAL : RP_BAD_REQUEST;
    }
}

/* Replace the page at [c->head_at, end) of out with our JSON reply. */
static void rewrite_page(http_conn *c, struct evbuffer *out) {
    size_t len = evbuffer_get_length(out), at = c->head_at;
    char line[HEAD_MAX];
    size_t ln = len - at < sizeof line - 1 ? len - at : sizeof line - 1;
    struct evbuffer_ptr p;
    if (evbuffer_ptr_set(out, &p, at, EVBUFFER_PTR_SET) != 0) return;
    if (evbuffer_copyout_from(out, &p, line, ln) < 0) return;
    line[ln] = '\0';
    int st = 0, minor = 1;
    char reason[64] = "";
    if (sscanf(line, "HTTP/1.%d %3d %63[^\r\n]", &minor, &st, reason) < 2 || st < 100 || st > 599) return;
    char msg[RP_ERRMSG_MAX];
    rp_err rc = page_error(c->h, c, st, msg, sizeof msg);
    if (st == 413) rp_conn_count_refused(c->h->stats, RP_FACE_HTTP, rc); /* refused before any operation */
    rp_buf body;
    rp_buf_init(&body, 0);
    if (!rp_http_error_json(rc, msg, &body)) {
        rp_buf_free(&body);
        return; /* out of memory: libevent's page goes out as it is */
    }
    char reqid[HTTP_REQID_MAX + 1], date[64] = "";
    rp_http_new_reqid(c->h, reqid);
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    struct evbuffer *keep = evbuffer_new();
    if (keep == NULL) {
        rp_buf_free(&body);
        return;
    }
    c->rewriting = true;
    /* out = what came before the page + our reply */
    evbuffer_remove_buffer(out, keep, at);
    evbuffer_drain(out, evbuffer_get_length(out));
    evbuffer_add_buffer(out, keep);
    evbuffer_add_printf(out,
                        "HTTP/1.%d %d %s\r\nContent-Type: application/json\r\nX-Request-Id: %s\r\n"
                        "Date: %s\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
                        minor, st, reason, reqid, date, body.len);
    evbuffer_add(out, body.p, body.len);
    c->rewriting = false;
    c->head_at = SIZE_MAX;
    c->linger = true; /* evhttp closes after this reply: drain the input first (http.c) */
    evbuffer_free(keep);
    rp_buf_free(&body);
}

/* The output buffer changed: note status lines, rewrite error pages. */
static void on_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg) {
    http_conn *c = arg;
    if (c->rewriting) return;
    size_t len = evbuffer_get_length(out);
    if (info->n_deleted) {
        /* written to the socket (from the front) */
        if (c->head_at != SIZE_MAX)
            c->head_at = c->head_at >= info->n_deleted ? c->head_at - info->n_deleted : SIZE_MAX;
    }
    if (info->n_added == 0 || info->n_added > len) return;
    size_t start = len - info->n_added;
    if (has_at(out, start, "HTTP/1.", 7)) {
        c->head_at = start;
        return;
    }
    if (c->head_at == SIZE_MAX || start - c->head_at > HEAD_MAX) return;
    if (has_at(out, start, page_open, sizeof page_open - 1) &&
        has_at(out, len - (sizeof page_close - 1), page_close, sizeof page_close - 1))
        rewrite_page(c, out);
}

/* Count the request heads that the n bytes of in from p end (a line
 * that is empty but for an optional CR), and note a head over the limit. */
static void scan_heads(http_conn *c, struct evbuffer *in, struct evbuffer_ptr *p, size_t n) {
    struct evbuffer_iovec v[16];
    int nv = evbuffer_peek(in, (ev_ssize_t)n, p, v, 16);
    for (int i = 0; i < nv && i < 16 && n; i++) {
        const unsigned char *s = v[i].iov_base;
        size_t m = v[i].iov_len < n ? v[i].iov_len : n;
        n -= m;
        for (size_t k = 0; k < m; k++) {
            if (c->head_bytes < UINT32_MAX) c->head_bytes++;
            if (s[k] == '\n') {
                if (c->at_line_start) {
                    if (c->head_bytes > HTTP_MAX_HEADERS) c->big_head = true;
                    c->heads++;
                    c->head_bytes = 0;
                }
                c->at_line_start = true;
            } else if (s[k] != '\r') {
                c->at_line_start = false;
            }
        }
    }
}

/* Bytes arrived from the socket. */
static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg) {
    http_conn *c = arg;
    size_t len = evbuffer_get_length(in);
    if (info->n_added == 0 || info->n_added > len) return;
    struct evbuffer_ptr p;
    if (evbuffer_ptr_set(in, &p, len - info->n_added, EVBUFFER_PTR_SET) == 0)
        scan_heads(c, in, &p, info->n_added);
}

void rp_http_errpage_request(http_conn *c) {
    /* evhttp has consumed this request; what is left in the input is the
     * start of the next ones: count afresh from there */
    c->served++;
    c->heads = c->served;
    c->head_bytes = 0;
    c->big_head = false;
    c->at_line_start = false;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_ptr p;
    size_t len = evbuffer_get_length(in);
    if (len && evbuffer_ptr_set(in, &p, 0, EVBUFFER_PTR_SET) == 0) scan_heads(c, in, &p, len);
}

bool rp_http_errpage_attach(rp_http *h, http_conn *c) {
    (void)h;
    c->head_at = SIZE_MAX;
    c->at_line_start = false;
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), on_output, c);
    c->in_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c);
    return c->out_cb != NULL && c->in_cb != NULL;
}

void rp_http_errpage_detach(http_conn *c) {
    if (c->out_cb) evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    if (c->in_cb) evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    c->out_cb = c->in_cb = NULL;
}
