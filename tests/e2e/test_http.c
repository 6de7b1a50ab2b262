/* test_http.c — end-to-end: the HTTP/JSON face of a real rapportd.
 *
 * Each test starts its own server (tests/e2e/harness.h) and talks to its
 * HTTP port with a minimal raw-socket HTTP/1.1 client written here (one
 * request per connection with "Connection: close", or several on a
 * keep-alive connection; chunked replies are decoded). Covered: every
 * route, status codes, X-Request-Id echo and generation, bearer tokens
 * (401 with WWW-Authenticate, 403 by role), oversized bodies (413), bad
 * JSON (400), NDJSON import with line numbers, streamed export and its
 * round trip into a second server, /metrics and /healthz, and clients that
 * vanish while their write is in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/serve.h"

#define TOK_ROUTE "route-token-0123456789"
#define TOK_AGENT "agent-token-0123456789"
#define TOK_INGEST "ingest-token-0123456789"
#define TOK_ADMIN "admin-token-0123456789"

/* --- a tiny HTTP/1.1 client ------------------------------------------------------- */

typedef struct resp {
    int status;
    char head[16384]; /* status line and headers */
    char *body;       /* NUL-terminated, de-chunked */
    size_t blen;
} resp;

static int http_connect(const rp_h *h) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Send one request on fd. headers: extra lines, each ending in \r\n. */
static bool send_req(int fd, const char *method, const char *path, const char *headers,
                     const char *body, size_t blen, bool keepalive) {
    char head[4096];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n%s\r\n", method,
                     path, keepalive ? "" : "Connection: close\r\n", blen, headers ? headers : "");
    return send_all(fd, head, (size_t)n) && (blen == 0 || send_all(fd, body, blen));
}

typedef struct rbuf {
    int fd;
    char *p;
    size_t len, cap, off;
} rbuf;

/* Make at least n unread bytes available; false at EOF first. */
static bool rb_need(rbuf *b, size_t n) {
    while (b->len - b->off < n) {
        if (b->len + 65536 > b->cap) {
            b->cap = (b->len + 65536) * 2;
            b->p = realloc(b->p, b->cap);
        }
        ssize_t r = recv(b->fd, b->p + b->len, b->cap - b->len, 0);
        if (r <= 0) return false;
        b->len += (size_t)r;
    }
    return true;
}

/* Read one line ending in \r\n (returned without it, NUL-terminated in place
 * of the \r). NULL at EOF. */
static char *rb_line(rbuf *b) {
    for (;;) {
        char *s = b->p ? memmem(b->p + b->off, b->len - b->off, "\r\n", 2) : NULL;
        if (s) {
            char *line = b->p + b->off;
            *s = '\0';
            b->off = (size_t)(s - b->p) + 2;
            return line;
        }
        if (!rb_need(b, b->len - b->off + 1)) return NULL;
    }
}

static const char *find_header(const resp *r, const char *name) {
    static char val[1024];
    const char *p = r->head;
    size_t nl = strlen(name);
    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ') p++;
            size_t n = strcspn(p, "\r\n");
            if (n >= sizeof val) n = sizeof val - 1;
            memcpy(val, p, n);
            val[n] = '\0';
            return val;
        }
    }
    return NULL;
}

/* Read one response from b (chunked or Content-Length or to EOF). */
static bool read_resp(rbuf *b, resp *r) {
    memset(r, 0, sizeof *r);
    char *line = rb_line(b);
    if (line == NULL || sscanf(line, "HTTP/1.%*d %d", &r->status) != 1) return false;
    size_t hl = (size_t)snprintf(r->head, sizeof r->head, "%s\n", line);
    while ((line = rb_line(b)) != NULL && *line) {
        if (hl < sizeof r->head) hl += (size_t)snprintf(r->head + hl, sizeof r->head - hl, "%s\n", line);
    }
    if (line == NULL) return false;
    const char *te = find_header(r, "Transfer-Encoding");
    const char *cl = find_header(r, "Content-Length");
    size_t cap = 1024, len = 0;
    char *body = malloc(cap);
    if (te && strcasecmp(te, "chunked") == 0) {
        for (;;) {
            char *sz = rb_line(b);
            if (sz == NULL) return false;
            size_t n = strtoul(sz, NULL, 16);
            if (n == 0) {
                rb_line(b);
                break;
            }
            if (!rb_need(b, n + 2)) return false;
            if (len + n + 1 > cap) body = realloc(body, cap = (len + n + 1) * 2);
            memcpy(body + len, b->p + b->off, n);
            len += n;
            b->off += n + 2;
        }
    } else if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        if (!rb_need(b, n)) return false;
        if (n + 1 > cap) body = realloc(body, cap = n + 1);
        memcpy(body, b->p + b->off, n);
        len = n;
        b->off += n;
    } else {
        while (rb_need(b, b->len - b->off + 1)) {
        }
        size_t n = b->len - b->off;
        if (n + 1 > cap) body = realloc(body, cap = n + 1);
        memcpy(body, b->p + b->off, n);
        len = n;
        b->off += n;
    }
    body[len] = '\0';
    r->body = body;
    r->blen = len;
    return true;
}

/* One request on its own connection. */
static resp req_h(const rp_h *h, const char *method, const char *path, const char *headers,
                  const char *body) {
    int fd = http_connect(h);
    assert_true(fd >= 0);
    resp r;
    assert_true(send_req(fd, method, path, headers, body, body ? strlen(body) : 0, false));
    rbuf b = {fd, NULL, 0, 0, 0};
    if (!read_resp(&b, &r)) fail_msg("%s %s: no valid response", method, path);
    free(b.p);
    close(fd);
    return r;
}

static resp req(const rp_h *h, const char *method, const char *path, const char *body) {
    return req_h(h, method, path, NULL, body);
}

static void resp_free(resp *r) { free(r->body); }

static void expect_has(const char *hay, const char *needle) {
    if (strstr(hay, needle) == NULL) fail_msg("expected\n  %s\nin\n  %s", needle, hay);
}

/* Request and check the status; the body must contain want (if given). */
static void expect(const rp_h *h, const char *method, const char *path, const char *headers,
                   const char *body, int status, const char *want) {
    resp r = req_h(h, method, path, headers, body);
    if (r.status != status) fail_msg("%s %s: status %d, expected %d: %s", method, path, r.status, status, r.body);
    if (want) expect_has(r.body, want);
    resp_free(&r);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    assert_non_null(s);
    return s;
}

/* --- tests ---------------------------------------------------------------------- */

static void test_customer_routes(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "durability = async\n");
    expect(&h, "GET", "/healthz", NULL, NULL, 200, "{\"status\":\"ok\"}");
    expect(&h, "PUT", "/v1/customers/c1", NULL,
           "{\"name\":\"Ada\",\"language\":\"es\",\"phones\":[\"+1 (415) 555-1212\"],"
           "\"emails\":[\"ada@example.com\"],\"accounts\":[\"ACC-1\"]}",
           200, "{\"id\":\"c1\",\"version\":1}");
    resp r = req(&h, "GET", "/v1/customers/c1", NULL);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "{\"id\":\"c1\",\"name\":\"Ada\",\"language\":\"es\"");
    expect_has(r.body, "\"phones\":[\"+14155551212\"]");
    expect_has(find_header(&r, "Content-Type"), "application/json");
    resp_free(&r);
    /* versions: If-Match and If-None-Match */
    expect(&h, "PATCH", "/v1/customers/c1", "If-Match: \"1\"\r\n", "{\"tier\":\"gold\"}", 200,
           "{\"id\":\"c1\",\"version\":2}");
    expect(&h, "PATCH", "/v1/customers/c1", "If-Match: \"1\"\r\n", "{\"tier\":\"x\"}", 412,
           "\"code\":\"CONFLICT\"");
    expect(&h, "PUT", "/v1/customers/c1", "If-None-Match: *\r\n", "{}", 412, NULL);
    expect(&h, "PUT", "/v1/customers/c9", "If-None-Match: *\r\n", "{\"name\":\"Nine\"}", 200,
           "\"version\":1");
    expect(&h, "PATCH", "/v1/customers/c1", "If-Match: soon\r\n", "{}", 400, "If-Match");
    expect(&h, "PUT", "/v1/customers/c2", NULL, "{\"id\":\"c3\"}", 400, "does not match");
    /* an id with a space, percent-encoded in the path */
    expect(&h, "PUT", "/v1/customers/a%20b", NULL, "{}", 400, "\"code\":\"BAD_REQUEST\"");
    expect(&h, "GET", "/v1/customers/nobody", NULL, NULL, 404, "\"code\":\"NOT_FOUND\"");
    expect(&h, "GET", "/v1/customers/c1?x=1", NULL, NULL, 400, "unknown parameter 'x'");
    /* events: customer_id comes from the path */
    long long now = (long long)time(NULL);
    for (int i = 0; i < 3; i++) {
        char *b = fmt("{\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\",\"topic\":\"billing\","
                      "\"outcome\":\"unresolved\",\"summary\":\"call %d\"}", now - 3600 * (3 - i), i);
        char *want = fmt("{\"customer_id\":\"c1\",\"ts\":%lld,\"seq\":0,", now - 3600 * (3 - i));
        expect(&h, "POST", "/v1/customers/c1/events", NULL, b, 200, want);
        free(want);
        free(b);
    }
    expect(&h, "POST", "/v1/customers/c1/events", NULL,
           "{\"customer_id\":\"c2\",\"ts\":1,\"channel\":\"web\",\"kind\":\"x\"}", 400, "does not match the path");
    expect(&h, "POST", "/v1/customers/c1/events", NULL, "[1]", 400, "JSON object");
    r = req(&h, "GET", "/v1/customers/c1/events?limit=2", NULL);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "\"summary\":\"call 2\"");
    expect_has(r.body, "\"summary\":\"call 1\"");
    char *next = strstr(r.body, "\"next\":\"");
    assert_non_null(next);
    char cursor[64];
    sscanf(next + 8, "%63[^\"]", cursor);
    resp_free(&r);
    char *path = fmt("/v1/customers/c1/events?limit=2&before=%s", cursor);
    expect(&h, "GET", path, NULL, NULL, 200, "\"summary\":\"call 0\"");
    free(path);
    expect(&h, "GET", "/v1/customers/c1/events?limit=two", NULL, NULL, 400, "must be an integer");
    /* issues */
    char *ib = fmt("{\"topic\":\"billing\",\"summary\":\"double charge\",\"follow_up_due\":%lld}", now - 60);
    expect(&h, "PUT", "/v1/customers/c1/issues/INC-7", NULL, ib, 200,
           "{\"customer_id\":\"c1\",\"issue_id\":\"INC-7\"}");
    free(ib);
    expect(&h, "PUT", "/v1/customers/c1/issues/INC-8", NULL, "{\"issue_id\":\"INC-9\"}", 400, "issue_id");
    expect(&h, "GET", "/v1/customers/c1/issues", NULL, NULL, 200, "\"issue_id\":\"INC-7\",\"topic\":\"billing\"");
    /* lookups: '+' in a query value is a plus sign */
    expect(&h, "GET", "/v1/lookup?phone=+14155551212", NULL, NULL, 200,
           "\"candidates\":[{\"customer_id\":\"c1\",\"name\":\"Ada\"}]");
    expect(&h, "GET", "/v1/lookup?phone=%2B1%20(415)%20555-1212", NULL, NULL, 200, "\"found\":true");
    expect(&h, "GET", "/v1/lookup?email=nobody%40example.com", NULL, NULL, 200, "\"found\":false");
    expect(&h, "GET", "/v1/lookup", NULL, NULL, 400, "give one of");
    /* the context card and the route answer */
    r = req(&h, "GET", "/v1/context?phone=415-555-1212", NULL);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "\"found\":true");
    expect_has(r.body, "\"likely_reasons\":[{\"topic\":\"billing\"");
    resp_free(&r);
    expect(&h, "GET", "/v1/context?account=ACC-1&at=1000", NULL, NULL, 200, "\"recent_events\":[]");
    expect(&h, "GET", "/v1/context?id=nobody", NULL, NULL, 404, "NOT_FOUND");
    expect(&h, "GET", "/v1/context?phone=+16505550000", NULL, NULL, 200, "first_contact");
    expect(&h, "GET", "/v1/context?id=c1&at=yesterday", NULL, NULL, 400, "'at' must be an integer");
    expect(&h, "GET", "/v1/context?id=c1&at=1.5", NULL, NULL, 400, "integer");
    expect(&h, "GET", "/v1/context?id=c1&id=c2", NULL, NULL, 400, "given twice");
    expect(&h, "GET", "/v1/route?phone=anonymous", NULL, NULL, 200, "\"found\":false");
    expect(&h, "GET", "/v1/route?phone=%2B14155551212", NULL, NULL, 200, "\"customer_id\":\"c1\"");
    /* merge, then forget */
    expect(&h, "POST", "/v1/customers/c9/merge?into=c1", NULL, NULL, 200, "{\"id\":\"c1\",\"version\":");
    expect(&h, "GET", "/v1/customers/c9", NULL, NULL, 200, "\"id\":\"c1\"");
    expect(&h, "POST", "/v1/customers/c1/merge", NULL, NULL, 400, "missing parameter 'into'");
    expect(&h, "DELETE", "/v1/customers/c1", NULL, NULL, 200, "{\"id\":\"c1\",\"forgotten\":true}");
    expect(&h, "GET", "/v1/customers/c1", NULL, NULL, 404, NULL);
    expect(&h, "DELETE", "/v1/customers/c1", NULL, NULL, 404, NULL);
    /* routes and methods */
    expect(&h, "GET", "/v2/anything", NULL, NULL, 404, "no such route");
    expect(&h, "GET", "/v1/customers", NULL, NULL, 404, NULL);
    r = req(&h, "DELETE", "/v1/context?id=x", NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(find_header(&r, "Allow"), "GET, HEAD, OPTIONS"); /* RFC 9110: every method the path supports */
    resp_free(&r);
    r = req(&h, "POST", "/v1/customers/c1", "{}");
    assert_int_equal(r.status, 405);
    assert_string_equal(find_header(&r, "Allow"), "GET, PUT, PATCH, DELETE, HEAD, OPTIONS");
    resp_free(&r);
    expect(&h, "POST", "/healthz", NULL, NULL, 405, NULL);
    rp_h_stop_ok(&h);
}

static void test_request_ids(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, NULL);
    resp r = req_h(&h, "GET", "/healthz", "X-Request-Id: my-req-123\r\n", NULL);
    assert_string_equal(find_header(&r, "X-Request-Id"), "my-req-123");
    resp_free(&r);
    r = req_h(&h, "GET", "/v1/customers/none", "X-Request-Id: err-1\r\n", NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(find_header(&r, "X-Request-Id"), "err-1");
    resp_free(&r);
    /* none, too long, or with a space: a fresh one each time */
    r = req(&h, "GET", "/healthz", NULL);
    char first[128];
    snprintf(first, sizeof first, "%s", find_header(&r, "X-Request-Id"));
    assert_true(strlen(first) >= 8);
    resp_free(&r);
    r = req(&h, "GET", "/healthz", NULL);
    assert_string_not_equal(find_header(&r, "X-Request-Id"), first);
    resp_free(&r);
    char longid[200] = "X-Request-Id: ";
    memset(longid + strlen(longid), 'a', 70);
    strcat(longid, "\r\n");
    r = req_h(&h, "GET", "/healthz", longid, NULL);
    assert_true(strlen(find_header(&r, "X-Request-Id")) <= 64);
    resp_free(&r);
    r = req_h(&h, "GET", "/healthz", "X-Request-Id: a b\r\n", NULL);
    assert_string_not_equal(find_header(&r, "X-Request-Id"), "a b");
    resp_free(&r);
    /* keep-alive: two requests on one connection */
    int fd = http_connect(&h);
    rbuf b = {fd, NULL, 0, 0, 0};
    assert_true(send_req(fd, "GET", "/healthz", "X-Request-Id: ka-1\r\n", NULL, 0, true));
    assert_true(read_resp(&b, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(find_header(&r, "X-Request-Id"), "ka-1");
    resp_free(&r);
    assert_true(send_req(fd, "PUT", "/v1/customers/k1", "X-Request-Id: ka-2\r\n", "{}", 2, true));
    assert_true(read_resp(&b, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(find_header(&r, "X-Request-Id"), "ka-2");
    resp_free(&r);
    free(b.p);
    close(fd);
    rp_h_stop_ok(&h);
}

static void test_auth(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "token = route:" TOK_ROUTE "\ntoken = agent:" TOK_AGENT "\ntoken = ingest:" TOK_INGEST
              "\ntoken = admin:" TOK_ADMIN "\n");
    const char *agent = "Authorization: Bearer " TOK_AGENT "\r\n";
    const char *ingest = "Authorization: Bearer " TOK_INGEST "\r\n";
    const char *route = "Authorization: Bearer " TOK_ROUTE "\r\n";
    const char *admin = "Authorization: Bearer " TOK_ADMIN "\r\n";
    resp r = req(&h, "GET", "/v1/context?phone=4155551212", NULL);
    assert_int_equal(r.status, 401);
    expect_has(find_header(&r, "WWW-Authenticate"), "Bearer");
    expect_has(r.body, "\"code\":\"UNAUTHORIZED\"");
    resp_free(&r);
    expect(&h, "GET", "/v1/context?phone=4155551212", "Authorization: Bearer wrong-wrong-wrong-wrong\r\n",
           NULL, 401, NULL);
    expect(&h, "GET", "/v1/context?phone=4155551212", "Authorization: Basic Zm9vOmJhcg==\r\n", NULL, 401, NULL);
    expect(&h, "GET", "/v1/context?phone=4155551212", route, NULL, 403, "\"code\":\"FORBIDDEN\"");
    expect(&h, "GET", "/v1/route?phone=4155551212", route, NULL, 200, "\"found\":false");
    expect(&h, "PUT", "/v1/customers/a1", agent, "{}", 403, NULL);
    expect(&h, "PUT", "/v1/customers/a1", ingest, "{\"phones\":[\"4155551212\"]}", 200, "\"version\":1");
    expect(&h, "GET", "/v1/context?phone=4155551212", agent, NULL, 200, "\"found\":true");
    expect(&h, "GET", "/v1/customers/a1", ingest, NULL, 403, NULL);
    expect(&h, "DELETE", "/v1/customers/a1", ingest, NULL, 403, NULL);
    expect(&h, "GET", "/v1/export", agent, NULL, 403, "FORBIDDEN");
    expect(&h, "GET", "/v1/export", admin, NULL, 200, "\"type\":\"customer\"");
    expect(&h, "GET", "/metrics", NULL, NULL, 401, NULL);
    expect(&h, "GET", "/metrics", route, NULL, 200, "rapport_requests_total");
    expect(&h, "GET", "/healthz", NULL, NULL, 200, "ok");
    expect(&h, "DELETE", "/v1/customers/a1", admin, NULL, 200, "\"forgotten\":true");
    rp_h_stop_ok(&h);
}

static void test_limits_and_errors(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "max_request_bytes = 2048\n");
    char *big = calloc(1, 4096);
    strcpy(big, "{\"name\":\"");
    memset(big + strlen(big), 'x', 3000);
    strcat(big, "\"}");
    resp r = req(&h, "PUT", "/v1/customers/big", big);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    free(big);
    expect(&h, "PUT", "/v1/customers/j1", NULL, "{\"name\": ", 400, "invalid JSON body");
    expect(&h, "PUT", "/v1/customers/j1", NULL, "{\"name\":\"a\"} trailing", 400, "\"code\":\"BAD_REQUEST\"");
    expect(&h, "PUT", "/v1/customers/j1", NULL, "\"just a string\"", 400, "JSON object");
    expect(&h, "PUT", "/v1/customers/j1", NULL, NULL, 400, "body is required");
    expect(&h, "PUT", "/v1/customers/j1", NULL, "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":"
           "{\"i\":{\"j\":{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":{\"q\":1}}}}}}}}}}}}}}}}}", 413, "TOO_LARGE");
    /* the server is still fine, and counted it all */
    expect(&h, "PUT", "/v1/customers/j1", NULL, "{\"name\":\"J\"}", 200, "\"version\":1");
    r = req(&h, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    expect_has(find_header(&r, "Content-Type"), "text/plain; version=0.0.4");
    expect_has(r.body, "rapport_requests_total{method=\"customer.put\",code=\"OK\"} 1\n");
    expect_has(r.body, "rapport_request_duration_seconds_bucket{method=\"customer.put\",le=\"+Inf\"} 1\n");
    expect_has(r.body, "rapport_customers 1\n");
    expect_has(r.body, "rapport_connections_open ");
    resp_free(&r);
    rp_h_stop_ok(&h);
}

/* Clients that send a write and vanish: each write still commits once,
 * and the server neither crashes nor leaks into later requests. */
static void test_vanishing_clients(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "durability = sync\n");
    expect(&h, "PUT", "/v1/customers/v1", NULL, "{}", 200, NULL);
    long long now = (long long)time(NULL);
    for (int i = 0; i < 40; i++) {
        int fd = http_connect(&h);
        assert_true(fd >= 0);
        char *b = fmt("{\"ts\":%lld,\"channel\":\"web\",\"kind\":\"k%d\"}", now - i, i);
        assert_true(send_req(fd, "POST", "/v1/customers/v1/events", NULL, b, strlen(b), true));
        free(b);
        if (i % 2) shutdown(fd, SHUT_RDWR);
        close(fd);
    }
    /* every event commits (the writer does not care who is listening) */
    long long deadline = rp_h_now_ms() + 10000;
    int n = 0;
    while (rp_h_now_ms() < deadline) {
        resp r = req(&h, "GET", "/v1/customers/v1/events?limit=200", NULL);
        assert_int_equal(r.status, 200);
        n = 0;
        for (char *p = r.body; (p = strstr(p, "\"kind\":\"k")) != NULL; p++) n++;
        resp_free(&r);
        if (n == 40) break;
        rp_h_sleep_ms(50);
    }
    assert_int_equal(n, 40);
    expect(&h, "GET", "/healthz", NULL, NULL, 200, NULL);
    rp_h_stop_ok(&h);
}

/* NDJSON import: line numbers in errors; strict refuses the batch. */
static void test_import(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "durability = async\n");
    long long now = (long long)time(NULL);
    char *nd = fmt("{\"type\":\"customer\",\"id\":\"n1\",\"name\":\"N\"}\n"
                   "\n"
                   "{\"type\":\"event\",\"customer_id\":\"n1\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"order\"}\r\n"
                   "{\"type\":\"event\",\"customer_id\":\"ghost\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"order\"}\n"
                   "{\"type\":\"issue\",\"customer_id\":\"n1\",\"issue_id\":\"T\"}\n",
                   now, now);
    resp r = req(&h, "POST", "/v1/import", nd);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "{\"imported\":3,\"skipped\":1,\"errors\":[{\"index\":2,\"line\":3,\"code\":\"NOT_FOUND\"");
    resp_free(&r);
    free(nd);
    /* a line that is not JSON: nothing is imported */
    expect(&h, "POST", "/v1/import", NULL, "{\"type\":\"customer\",\"id\":\"n2\"}\n{oops}\n", 400, "line 2:");
    expect(&h, "GET", "/v1/customers/n2", NULL, NULL, 404, NULL);
    expect(&h, "POST", "/v1/import", NULL, "[1,2]\n", 400, "line 1: expected a JSON object");
    /* strict: the second line fails, the first is not kept */
    expect(&h, "POST", "/v1/import?strict=true", NULL,
           "{\"type\":\"customer\",\"id\":\"n3\"}\n{\"type\":\"customer\",\"id\":\"n4\",\"x\":1}\n", 400,
           "line 2: ");
    expect(&h, "GET", "/v1/customers/n3", NULL, NULL, 404, NULL);
    expect(&h, "POST", "/v1/import?strict=maybe", NULL, "", 400, "strict must be true or false");
    expect(&h, "POST", "/v1/import?dry=1", NULL, "", 400, "unknown query parameter 'dry'");
    expect(&h, "POST", "/v1/import", NULL, "", 200, "{\"imported\":0,\"skipped\":0,\"errors\":[],\"duplicates\":0}");
    expect(&h, "GET", "/v1/import", NULL, NULL, 405, NULL);
    rp_h_stop_ok(&h);
}

/* Export streams NDJSON page by page; importing it into another server and
 * exporting again gives the same bytes. */
static void test_export_roundtrip(void **state) {
    (void)state;
    rp_h a, b;
    rp_h_start_ok(&a, "durability = async\n");
    long long now = (long long)time(NULL);
    msgpack_sbuffer nd;
    msgpack_sbuffer_init(&nd);
    for (int i = 0; i < 25; i++) {
        char *line = fmt("{\"type\":\"customer\",\"id\":\"x%03d\",\"name\":\"Name %d\",\"tier\":\"gold\","
                         "\"phones\":[\"+1415555%04d\"],\"preferences\":{\"tone\":\"warm\"}}\n", i, i, 1000 + i);
        msgpack_sbuffer_write(&nd, line, strlen(line));
        free(line);
        for (int e = 0; e < 3; e++) {
            line = fmt("{\"type\":\"event\",\"customer_id\":\"x%03d\",\"ts\":%lld,\"channel\":\"chat\","
                       "\"kind\":\"contact\",\"summary\":\"caf\\u00e9 \\\"%d\\\"\",\"sentiment\":0.25}\n",
                       i, now - 100 * e, e);
            msgpack_sbuffer_write(&nd, line, strlen(line));
            free(line);
        }
        line = fmt("{\"type\":\"issue\",\"customer_id\":\"x%03d\",\"issue_id\":\"I%d\",\"status\":\"pending\","
                   "\"opened_at\":%lld,\"updated_at\":%lld}\n", i, i, now - 500, now - 400);
        msgpack_sbuffer_write(&nd, line, strlen(line));
        free(line);
    }
    msgpack_sbuffer_write(&nd, "", 1);
    expect(&a, "POST", "/v1/import?strict=true", NULL, nd.data, 200, "{\"imported\":125,\"skipped\":0");
    msgpack_sbuffer_destroy(&nd);
    resp e1 = req(&a, "GET", "/v1/export?limit=4", NULL);
    assert_int_equal(e1.status, 200);
    expect_has(find_header(&e1, "Content-Type"), "application/x-ndjson");
    expect_has(find_header(&e1, "Transfer-Encoding"), "chunked");
    int lines = 0;
    for (char *p = e1.body; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 125);
    expect_has(e1.body, "{\"type\":\"customer\",\"id\":\"x000\",\"name\":\"Name 0\"");
    expect_has(e1.body, "\"summary\":\"café \\\"2\\\"\"");
    expect(&a, "GET", "/v1/export?limit=0", NULL, NULL, 400, "limit");
    expect(&a, "GET", "/v1/export?after=x023", NULL, NULL, 200, "\"id\":\"x024\"");
    /* into a second server, and out again */
    rp_h_start_ok(&b, "durability = async\n");
    expect(&b, "POST", "/v1/import", NULL, e1.body, 200, "{\"imported\":125,\"skipped\":0,\"errors\":[],\"duplicates\":0}");
    resp e2 = req(&b, "GET", "/v1/export", NULL);
    assert_int_equal(e2.status, 200);
    assert_int_equal(e2.blen, e1.blen);
    assert_memory_equal(e2.body, e1.body, e1.blen);
    resp_free(&e1);
    resp_free(&e2);
    rp_h_stop_ok(&b);
    rp_h_stop_ok(&a);
}

/* A client that stops reading an export and goes away mid-stream: the
 * stream is dropped, and the server goes on serving. */
static void test_export_abandoned(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "durability = async\n");
    long long now = (long long)time(NULL);
    char summary[801];
    memset(summary, 's', 800);
    summary[800] = '\0';
    for (int batch = 0; batch < 4; batch++) {
        msgpack_sbuffer nd;
        msgpack_sbuffer_init(&nd);
        for (int i = batch * 500; i < (batch + 1) * 500; i++) {
            char *line = fmt("{\"type\":\"customer\",\"id\":\"y%05d\"}\n", i);
            msgpack_sbuffer_write(&nd, line, strlen(line));
            free(line);
            for (int e = 0; e < 3; e++) {
                line = fmt("{\"type\":\"event\",\"customer_id\":\"y%05d\",\"ts\":%lld,\"channel\":\"web\","
                           "\"kind\":\"view\",\"summary\":\"%s\"}\n", i, now - e, summary);
                msgpack_sbuffer_write(&nd, line, strlen(line));
                free(line);
            }
        }
        msgpack_sbuffer_write(&nd, "", 1);
        expect(&h, "POST", "/v1/import", NULL, nd.data, 200, "\"skipped\":0");
        msgpack_sbuffer_destroy(&nd);
    }
    for (int round = 0; round < 3; round++) {
        int fd = http_connect(&h);
        assert_true(fd >= 0);
        assert_true(send_req(fd, "GET", "/v1/export?limit=5", NULL, NULL, 0, false));
        char buf[4096];
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        assert_true(got > 0);
        assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
        rp_h_sleep_ms(200); /* let the server fill the socket buffers */
        close(fd);
    }
    rp_h_sleep_ms(200);
    expect(&h, "GET", "/v1/export?after=y01998", NULL, NULL, 200, "\"id\":\"y01999\"");
    resp r = req(&h, "GET", "/metrics", NULL);
    expect_has(r.body, "rapport_customers 2000\n");
    resp_free(&r);
    rp_h_stop_ok(&h);
}

/* Authentication comes before any body work: an unauthenticated request
 * with a malformed, huge or too-deep JSON body (or NDJSON import) is 401,
 * never the 400 / 413 its body would earn; with a token, the same bodies
 * are refused for what they are. */
static void test_auth_before_body(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "token = admin:" TOK_ADMIN "\nmax_request_bytes = 2097152\nmax_depth = 16\n");
    const char *admin = "Authorization: Bearer " TOK_ADMIN "\r\n";
    const char *wrong = "Authorization: Bearer not-a-token-0123456789\r\n";
    /* huge (1.5 MiB) and malformed: an unterminated string */
    size_t n = 1536 * 1024;
    char *huge = malloc(n + 1);
    assert_non_null(huge);
    memcpy(huge, "{\"name\":\"", 9);
    memset(huge + 9, 'x', n - 9);
    huge[n] = '\0';
    /* nested deeper than max_depth */
    char deep[256] = "";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    struct {
        const char *method, *path, *body;
    } cases[] = {
        {"PUT", "/v1/customers/c1", "{not json"},
        {"PATCH", "/v1/customers/c1", huge},
        {"POST", "/v1/customers/c1/events", deep},
        {"PUT", "/v1/customers/c1/issues/I-1", "[1,2,3]"},
        {"POST", "/v1/import", "{\"type\":\"customer\"\nnot json at all\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp r = req(&h, cases[i].method, cases[i].path, cases[i].body);
        if (r.status != 401)
            fail_msg("%s %s without a token: %d, expected 401: %s", cases[i].method, cases[i].path,
                     r.status, r.body);
        expect_has(r.body, "\"code\":\"UNAUTHORIZED\"");
        resp_free(&r);
        expect(&h, cases[i].method, cases[i].path, wrong, cases[i].body, 401, "UNAUTHORIZED");
        r = req_h(&h, cases[i].method, cases[i].path, admin, cases[i].body);
        if (r.status != 400 && r.status != 413)
            fail_msg("%s %s with a token: %d, expected 400 or 413: %s", cases[i].method, cases[i].path,
                     r.status, r.body);
        resp_free(&r);
    }
    free(huge);
    rp_h_stop_ok(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_customer_routes),
        cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_auth_before_body),
        cmocka_unit_test(test_limits_and_errors),
        cmocka_unit_test(test_vanishing_clients),
        cmocka_unit_test(test_import),
        cmocka_unit_test(test_export_roundtrip),
        cmocka_unit_test(test_export_abandoned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
