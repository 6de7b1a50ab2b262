/* http.h — one plain HTTP/1.1 request over its own socket, for the e2e
 * suites that talk to rapportd's HTTP port byte by byte.
 *
 *     rp_http_resp r = rp_http(h, "GET", "/v1/ping", NULL, NULL);
 *     ... r.status, r.text (the whole reply), r.body ...
 *     free(r.text);
 *
 * The request is "<method> <path> HTTP/1.1", Host, Connection: close, the
 * caller's extra header lines, Content-Length and the body; the reply is
 * read to EOF (20 s receive time-out). Failing to connect or to send fails
 * the test. Header-only (static inline), like
 * harness.h; include after <cmocka.h>.
 */
#ifndef RP_E2E_HTTP_H
#define RP_E2E_HTTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "e2e/harness.h"

typedef struct rp_http_resp {
    int status;       /* -1: no status line in the reply */
    char *text;       /* the whole reply, NUL-terminated (malloc'd) */
    const char *body; /* in text: after the head ("" without one) */
} rp_http_resp;

/* method path with the extra header lines headers (each ending "\r\n"; NULL:
 * none) and body (NULL: none). */
static inline rp_http_resp rp_http(const rp_h *h, const char *method, const char *path, const char *headers,
                                   const char *body) {
    rp_http_resp r = {-1, NULL, ""};
    size_t blen = body ? strlen(body) : 0;
    char *req = NULL;
    int n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", blen);
    assert_true(n > 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *parts[2] = {req, body};
    size_t lens[2] = {(size_t)n, blen};
    for (int k = 0; k < 2; k++) {
        for (size_t off = 0; off < lens[k];) {
            ssize_t w = send(fd, parts[k] + off, lens[k] - off, MSG_NOSIGNAL);
            assert_true(w > 0);
            off += (size_t)w;
        }
    }
    free(req);
    size_t cap = 8192, len = 0;
    char *p = malloc(cap);
    assert_non_null(p);
    ssize_t got;
    while ((got = recv(fd, p + len, cap - len - 1, 0)) > 0) {
        len += (size_t)got;
        if (cap - len - 1 == 0) p = realloc(p, cap *= 2), assert_non_null(p);
    }
    close(fd);
    p[len] = '\0';
    r.text = p;
    if (sscanf(p, "HTTP/1.%*d %d", &r.status) != 1) r.status = -1;
    const char *b = strstr(p, "\r\n\r\n");
    r.body = b ? b + 4 : "";
    return r;
}

#endif
