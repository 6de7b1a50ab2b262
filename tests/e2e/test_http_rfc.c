/* test_http_rfc.c — end-to-end: the HTTP face as RFC 9110 and browsers
 * expect it, against a real rapportd, with real curl where a real client
 * matters.
 *
 *   - libevent's own replies (413 body too large, 501 unknown method, 400
 *     malformed request line) come as our JSON error with X-Request-Id and
 *     a correct Content-Length; the 413 says how to split an import;
 *   - a Content-Length far over the limit with a one-byte body is 413 at
 *     once (not after slow_timeout_ms);
 *   - OPTIONS and CORS (cors_origins): preflight 204 with the
 *     Access-Control-Allow-* headers for allowed origins only, Allow-Origin
 *     and Vary: Origin on normal replies, no credentials for *;
 *   - HEAD as GET without the body; ETag "v<version>" on a customer GET,
 *     If-None-Match -> 304, If-Match with the ETag, a stale one 412; the
 *     cache-buster ?_= ignored.
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
#include <strings.h>

#include "e2e/harness.h"
#include "e2e/serve.h"
#include "e2e/http.h"

/* Run a shell command, return its stdout (malloc'd, NUL-terminated). */
static char *run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *run(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    assert_true(vasprintf(&cmd, fmt, ap) > 0);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) out = realloc(out, cap *= 2), assert_non_null(out);
    }
    out[len] = '\0';
    pclose(f);
    free(cmd);
    return out;
}

static void has(const char *hay, const char *needle) {
    if (strstr(hay, needle) == NULL) fail_msg("expected\n  %s\nin\n  %s", needle, hay);
}

static void lacks(const char *hay, const char *needle) {
    if (strstr(hay, needle) != NULL) fail_msg("did not expect\n  %s\nin\n  %s", needle, hay);
}

/* The value of header name in a whole reply (static buffer; NULL: none). */
static const char *header(const char *text, const char *name) {
    static char val[512];
    size_t nl = strlen(name);
    const char *end = strstr(text, "\r\n\r\n");
    for (const char *p = text; p && (!end || p < end); p = strchr(p, '\n')) {
        if (*p == '\n') p++;
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

/* The body of a whole reply matches its Content-Length. */
static void length_ok(const char *text) {
    const char *cl = header(text, "Content-Length");
    assert_non_null(cl);
    const char *b = strstr(text, "\r\n\r\n");
    assert_non_null(b);
    assert_int_equal(strtoul(cl, NULL, 10), strlen(b + 4));
}

/* A raw connection to the HTTP port. */
static int http_connect(const rp_h *h) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Send req on its own connection; the reply read to EOF (malloc'd). */
static char *raw(const rp_h *h, const char *req) {
    int fd = http_connect(h);
    struct timeval tv = {9, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t r;
    while (got < cap - 1 && (r = recv(fd, buf + got, cap - 1 - got, 0)) > 0) got += (size_t)r;
    buf[got] = '\0';
    close(fd);
    return buf;
}

/* --- 1. libevent's own replies ------------------------------------------------- */

static void test_libevent_replies_json(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "max_request_bytes = 4096\nslow_timeout_ms = 10000\n");
    /* a body over the limit, sent by curl from a file */
    char path[400];
    snprintf(path, sizeof path, "%s/big.ndjson", h.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++) fprintf(f, "{\"type\":\"customer\",\"id\":\"c%04d\"}\n", i);
    fclose(f);
    char *out = run("curl -s -i --max-time 10 -H 'Content-Type: application/x-ndjson' --data-binary @%s "
                    "http://%s/v1/import",
                    path, h.http_addr);
    has(out, "HTTP/1.1 413 ");
    has(out, "Content-Type: application/json");
    assert_non_null(header(out, "X-Request-Id"));
    assert_true(strlen(header(out, "X-Request-Id")) >= 8);
    length_ok(out);
    has(out, "{\"error\":{\"code\":\"TOO_LARGE\",\"message\":\"request body over max_request_bytes (4096 "
             "bytes); for POST /v1/import split the NDJSON at line ends into bodies of at most 4096 bytes "
             "(rapport import does this)\"}}");
    lacks(out, "<HTML>");
    free(out);
    /* 100 GB announced, one byte sent: 413 at once, not after slow_timeout_ms */
    long long t0 = rp_h_now_ms();
    char *buf = raw(&h, "PUT /v1/customers/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{");
    long long dt = rp_h_now_ms() - t0;
    fprintf(stderr, "  Content-Length 99999999999 -> 413 in %lld ms\n", dt);
    has(buf, "HTTP/1.1 413 ");
    has(buf, "max_request_bytes (4096 bytes)");
    assert_non_null(header(buf, "X-Request-Id"));
    length_ok(buf);
    assert_true(dt < 2000);
    free(buf);
    /* curl announcing a big body (Expect: 100-continue): 413 before sending it */
    t0 = rp_h_now_ms();
    out = run("head -c 3000000 /dev/zero | curl -s -i --max-time 10 -X PUT --data-binary @- "
              "http://%s/v1/customers/x", h.http_addr);
    has(out, "HTTP/1.1 413 ");
    has(out, "\"code\":\"TOO_LARGE\"");
    free(out);
    fprintf(stderr, "  curl 3 MB body -> 413 in %lld ms\n", rp_h_now_ms() - t0);
    /* an unknown method: 501 as JSON */
    out = run("curl -s -i --max-time 10 -X BREW http://%s/healthz", h.http_addr);
    has(out, "HTTP/1.1 501 ");
    has(out, "\"code\":\"BAD_REQUEST\",\"message\":\"method not supported");
    assert_non_null(header(out, "X-Request-Id"));
    length_ok(out);
    free(out);
    /* a malformed request line: 400 as JSON */
    buf = raw(&h, "GARBAGE\r\n\r\n");
    has(buf, "HTTP/1.1 400 ");
    has(buf, "Content-Type: application/json");
    has(buf, "{\"error\":{\"code\":\"BAD_REQUEST\",\"message\":\"malformed HTTP request");
    assert_non_null(header(buf, "X-Request-Id"));
    length_ok(buf);
    free(buf);
    rp_http_resp hr;
    /* and the server is fine, the limit a limit */
    hr = rp_http(&h, "PUT", "/v1/customers/ok", NULL, "{\"name\":\"Ok\"}");
    assert_int_equal(hr.status, 200);
    free(hr.text);
    rp_h_stop_ok(&h);
}

/* --- 2. OPTIONS and CORS ----------------------------------------------------------- */

static void test_cors(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "cors_origins = https://crm.example.com,https://w.example.com\n"
              "token = admin:admin-token-0123456789\n");
    const char *pre = "curl -s -i --max-time 10 -X OPTIONS -H 'Origin: %s' "
                      "-H 'Access-Control-Request-Method: PUT' "
                      "-H 'Access-Control-Request-Headers: authorization,content-type' http://%s%s";
    char *out = run(pre, "https://crm.example.com", h.http_addr, "/v1/customers/c1");
    has(out, "HTTP/1.1 204 ");
    has(out, "Access-Control-Allow-Origin: https://crm.example.com\r\n");
    has(out, "Access-Control-Allow-Methods: GET, PUT, PATCH, DELETE, HEAD, OPTIONS\r\n");
    has(out, "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key, X-Request-Id");
    has(out, "Access-Control-Max-Age: 600\r\n");
    has(out, "Access-Control-Allow-Credentials: true\r\n");
    has(out, "Vary: Origin\r\n");
    free(out);
    /* another origin: 204, but nothing that lets the browser go on */
    out = run(pre, "https://evil.example", h.http_addr, "/v1/customers/c1");
    has(out, "HTTP/1.1 204 ");
    lacks(out, "Access-Control-Allow");
    free(out);
    /* an unknown path is 404; a plain OPTIONS lists the methods */
    out = run(pre, "https://crm.example.com", h.http_addr, "/v9/nothing");
    has(out, "HTTP/1.1 404 ");
    free(out);
    out = run("curl -s -i --max-time 10 -X OPTIONS http://%s/v1/import", h.http_addr);
    has(out, "HTTP/1.1 204 ");
    has(out, "Allow: POST, OPTIONS\r\n");
    free(out);
    /* a normal request from an allowed origin, and from another */
    out = run("curl -s -i --max-time 10 -H 'Origin: https://w.example.com' http://%s/healthz", h.http_addr);
    has(out, "HTTP/1.1 200 ");
    has(out, "Access-Control-Allow-Origin: https://w.example.com\r\n");
    has(out, "Vary: Origin\r\n");
    free(out);
    out = run("curl -s -i --max-time 10 -H 'Origin: https://evil.example' http://%s/healthz", h.http_addr);
    has(out, "HTTP/1.1 200 ");
    lacks(out, "Access-Control-Allow-Origin");
    free(out);
    /* a 401 still carries it, so the page can read the error */
    out = run("curl -s -i --max-time 10 -H 'Origin: https://crm.example.com' http://%s/v1/customers/c1",
              h.http_addr);
    has(out, "HTTP/1.1 401 ");
    has(out, "Access-Control-Allow-Origin: https://crm.example.com\r\n");
    free(out);
    rp_h_stop_ok(&h);
    /* "*": any origin, never with credentials; none configured: no headers */
    rp_h_start_ok(&h, "cors_origins = *\n");
    out = run(pre, "https://any.example", h.http_addr, "/v1/customers/c1");
    has(out, "HTTP/1.1 204 ");
    has(out, "Access-Control-Allow-Origin: *\r\n");
    lacks(out, "Access-Control-Allow-Credentials");
    free(out);
    rp_h_stop_ok(&h);
    rp_h_start_ok(&h, NULL);
    out = run(pre, "https://crm.example.com", h.http_addr, "/v1/customers/c1");
    has(out, "HTTP/1.1 204 ");
    lacks(out, "Access-Control-");
    free(out);
    rp_h_stop_ok(&h);
}

/* --- 3. HEAD, ETag and preconditions, the cache-buster --------------------------- */

static void test_head_etag(void **state) {
    (void)state;
    rp_h h;
    rp_h_start_ok(&h, "durability = async\n");
    rp_http_resp r = rp_http(&h, "PUT", "/v1/customers/e1", NULL, "{\"name\":\"Eve\"}");
    assert_int_equal(r.status, 200);
    free(r.text);
    /* GET: ETag "v1"; HEAD: the same headers, no body */
    char *get = run("curl -s -i --max-time 10 http://%s/v1/customers/e1", h.http_addr);
    has(get, "HTTP/1.1 200 ");
    has(get, "ETag: \"v1\"\r\n");
    char glen[32];
    snprintf(glen, sizeof glen, "%s", header(get, "Content-Length"));
    char *head = run("curl -s -I --max-time 10 http://%s/v1/customers/e1", h.http_addr);
    has(head, "HTTP/1.1 200 ");
    has(head, "ETag: \"v1\"\r\n");
    assert_string_equal(header(head, "Content-Length"), glen);
    assert_string_equal(strstr(head, "\r\n\r\n") + 4, "");
    free(head);
    free(get);
    head = run("curl -s -I --max-time 10 http://%s/healthz", h.http_addr);
    has(head, "HTTP/1.1 200 ");
    has(head, "Content-Length: 15\r\n");
    free(head);
    /* raw HEAD on a keep-alive connection: the next reply is not garbled */
    head = raw(&h, "HEAD /v1/customers/e1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const char *second = strstr(head, "\r\n\r\n");
    assert_non_null(second);
    assert_true(strncmp(second + 4, "HTTP/1.1 200 ", 13) == 0);
    has(second, "{\"status\":\"ok\"}");
    free(head);
    head = run("curl -s -I --max-time 10 http://%s/v1/import", h.http_addr);
    has(head, "HTTP/1.1 405 ");
    free(head);
    /* If-None-Match with the tag: 304; with another: 200 */
    char *out = run("curl -s -i --max-time 10 -H 'If-None-Match: \"v1\"' http://%s/v1/customers/e1", h.http_addr);
    has(out, "HTTP/1.1 304 ");
    has(out, "ETag: \"v1\"\r\n");
    free(out);
    out = run("curl -s -i --max-time 10 -H 'If-None-Match: \"v7\"' http://%s/v1/customers/e1", h.http_addr);
    has(out, "HTTP/1.1 200 ");
    free(out);
    /* If-Match with the ETag; a stale one is 412 Precondition Failed */
    r = rp_http(&h, "PATCH", "/v1/customers/e1", "If-Match: \"v1\"\r\n", "{\"tier\":\"gold\"}");
    assert_int_equal(r.status, 200);
    has(r.body, "\"version\":2");
    free(r.text);
    r = rp_http(&h, "PATCH", "/v1/customers/e1", "If-Match: \"v1\"\r\n", "{\"tier\":\"x\"}");
    assert_int_equal(r.status, 412);
    has(r.text, "412 Precondition Failed");
    has(r.body, "\"code\":\"CONFLICT\"");
    free(r.text);
    r = rp_http(&h, "PUT", "/v1/customers/e1", "If-None-Match: *\r\n", "{}");
    assert_int_equal(r.status, 412);
    free(r.text);
    /* the cache-buster: ignored on every route */
    out = run("curl -s -i --max-time 10 'http://%s/v1/customers/e1?_=1732350000123'", h.http_addr);
    has(out, "HTTP/1.1 200 ");
    free(out);
    out = run("curl -s -i --max-time 10 'http://%s/v1/lookup?phone=4155551212&_=1'", h.http_addr);
    has(out, "HTTP/1.1 200 ");
    free(out);
    out = run("curl -s -i --max-time 10 'http://%s/v1/export?_=1'", h.http_addr);
    has(out, "HTTP/1.1 200 ");
    free(out);
    out = run("curl -s -i --max-time 10 -X PATCH -d '{}' 'http://%s/v1/customers/e1?_=1'", h.http_addr);
    has(out, "HTTP/1.1 200 ");
    free(out);
    out = run("curl -s -i --max-time 10 'http://%s/v1/customers/e1?x=1'", h.http_addr);
    has(out, "HTTP/1.1 400 ");
    free(out);
    rp_h_stop_ok(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libevent_replies_json),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_head_etag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
