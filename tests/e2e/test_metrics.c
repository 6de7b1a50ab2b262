/* test_metrics.c — end-to-end: GET /metrics of a real rapportd after traffic.
 *
 *   - test_promtool_sync / test_promtool_async: RPC and HTTP traffic,
 *     refusals included (401, 403, 413 on both faces), then GET /metrics is
 *     piped into `promtool check metrics` (tools/setup installs Debian's
 *     prometheus package for it); any output (an error or a lint warning)
 *     or a non-zero exit fails the test;
 *   - the same tests assert that the metrics added for the "run it like a
 *     service" issue are there with sane values: the refusal counters went
 *     up by the refusals made, the writer's commit histogram (sync) and
 *     flush histogram (async) counted something, rapport_build_info is 1,
 *     process_open_fds > 0, process_start_time_seconds <= now, ...;
 *   - bench/compare reads rapport_request_duration_seconds_bucket{method,le}:
 *     its name and labels are checked too.
 *
 * Every metric is listed in proto/METRICS.md.
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

#include "e2e/calls.h"
#include "e2e/harness.h"
#include "e2e/http.h"
#include "e2e/run.h"

#define TOK_AGENT "agent-token-0123456789"
#define TOK_INGEST "ingest-token-0123456789"
#define TOK_ADMIN "admin-token-0123456789"
#define H_AGENT "Authorization: Bearer " TOK_AGENT "\r\n"
#define H_INGEST "Authorization: Bearer " TOK_INGEST "\r\n"
#define H_ADMIN "Authorization: Bearer " TOK_ADMIN "\r\n"

/* The value of the sample whose name and labels are exactly series (e.g.
 * "process_open_fds" or "x_total{face=\"rpc\",code=\"401\"}"); fails the
 * test when it is missing. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    fail_msg("no sample %s in /metrics", series);
    return 0;
}

/* GET /metrics (admin token): its body, malloc'd. */
static char *get_metrics(const rp_h *h) {
    rp_http_resp r = rp_http(h, "GET", "/metrics", H_ADMIN, NULL);
    assert_int_equal(r.status, 200);
    char *body = strdup(r.body);
    assert_non_null(body);
    free(r.text);
    return body;
}

/* Pipe text into `promtool check metrics`: no output and exit status 0. */
static void promtool_check(const rp_h *h, const char *text) {
    int st = 0;
    char *which = rp_sh(&st, "command -v promtool");
    free(which);
    if (st != 0) fail_msg("promtool is not installed (tools/setup installs the prometheus package)");
    char path[400];
    snprintf(path, sizeof path, "%s/metrics.txt", h->dir);
    rp_write_file(path, text);
    char *out = rp_sh(&st, "promtool check metrics < '%s' 2>&1", path);
    if (st != 0 || out[0] != '\0') {
        fprintf(stderr, "%s", text);
        fail_msg("promtool check metrics: exit %d: %s", st, out);
    }
    free(out);
}

/* The refusal counter of face and code. */
static double refused(const char *text, const char *face, const char *code) {
    char series[128];
    snprintf(series, sizeof series, "rapport_requests_refused_total{face=\"%s\",code=\"%s\"}", face, code);
    return sample(text, series);
}

/* A raw RPC frame announcing a 1 MiB bin params (over max_request_bytes):
 * the face answers TOO_LARGE and closes. Waits for the close. */
static void rpc_too_large(const rp_h *h) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const unsigned char frame[] = {0x94, 0x00, 0x07, 0xa4, 'p', 'i', 'n', 'g',
                                          0x91, 0xc6, 0x00, 0x10, 0x00, 0x00};
    assert_int_equal(send(fd, frame, sizeof frame, MSG_NOSIGNAL), (ssize_t)sizeof frame);
    char buf[512];
    while (recv(fd, buf, sizeof buf, 0) > 0) {
    }
    close(fd);
}

/* An HTTP request announcing a body far over max_request_bytes: the server
 * answers 413 (JSON) from the headers alone. Returns the status. */
static int http_too_large(const rp_h *h) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const char req[] = "POST /v1/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " TOK_INGEST
                              "\r\nContent-Length: 999999999\r\n\r\n{";
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    char buf[2048], sink[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    shutdown(fd, SHUT_WR); /* the server drains until we close */
    while (recv(fd, sink, sizeof sink, 0) > 0) {
    }
    close(fd);
    int status = 0;
    if (n > 0) {
        buf[n] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) status = 0;
    }
    return status;
}

/* Traffic on both faces, with refusals. Returns the number of acknowledged
 * writes. */
static int traffic(const rp_h *h) {
    /* RPC: ping before auth is fine; anything else is 401; a wrong token is
     * 401; the agent role may not write (403); ingest writes. */
    rp_client *c = rp_h_connect(h);
    ok_call(c, "ping", NULL);
    err_call(c, "customer.get", "{\"id\":\"c1\"}", RP_UNAUTHORIZED);
    rp_role role;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(c, "not-a-token-0123456789", &role, &eb), RP_UNAUTHORIZED);
    assert_int_equal(rp_client_auth(c, TOK_AGENT, &role, &eb), RP_OK);
    err_call(c, "customer.put", "{\"id\":\"c1\",\"customer\":{\"name\":\"A\"}}", RP_FORBIDDEN);
    assert_int_equal(rp_client_auth(c, TOK_INGEST, &role, &eb), RP_OK);
    int writes = 0;
    for (int i = 0; i < 5; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":\"c%d\",\"customer\":{\"name\":\"N%d\"}}", i, i);
        ok_call(c, "customer.put", json);
        writes++;
    }
    rp_client_close(c);
    rpc_too_large(h);

    /* HTTP: no token (401), agent writing (403), a body nested deeper than
     * max_depth (413), then good reads and writes. */
    rp_http_resp r = rp_http(h, "PUT", "/v1/customers/h1", NULL, "{\"name\":\"H\"}");
    assert_int_equal(r.status, 401);
    free(r.text);
    r = rp_http(h, "PUT", "/v1/customers/h1", H_AGENT, "{\"name\":\"H\"}");
    assert_int_equal(r.status, 403);
    free(r.text);
    char deep[128] = "{\"name\":\"H\",\"x\":";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    for (int i = 0; i < 40; i++) strcat(deep, "]");
    strcat(deep, "}");
    r = rp_http(h, "PUT", "/v1/customers/h1", H_INGEST, deep);
    assert_int_equal(r.status, 413);
    free(r.text);
    assert_int_equal(http_too_large(h), 413); /* libevent's own refusal, counted too */
    r = rp_http(h, "PUT", "/v1/customers/h1", H_INGEST, "{\"name\":\"H\"}");
    assert_int_equal(r.status, 200);
    free(r.text);
    writes++;
    r = rp_http(h, "GET", "/v1/customers/h1", H_AGENT, NULL);
    assert_int_equal(r.status, 200);
    free(r.text);
    return writes;
}

/* What both durabilities must show after traffic(). */
static void check_common(const char *m) {
    /* refusals: at least those traffic() made (none of them are retried) */
    assert_true(refused(m, "rpc", "401") >= 2);
    assert_true(refused(m, "rpc", "403") >= 1);
    assert_true(refused(m, "rpc", "413") >= 1);
    assert_true(refused(m, "http", "401") >= 1);
    assert_true(refused(m, "http", "403") >= 1);
    assert_true(refused(m, "http", "413") >= 2); /* too deep, and a body over max_request_bytes */
    assert_true(refused(m, "rpc", "503") == 0);
    assert_true(refused(m, "http", "503") == 0);
    /* the 403s are also in the api's own counters */
    assert_true(sample(m, "rapport_requests_total{method=\"customer.put\",code=\"FORBIDDEN\"}") >= 2);

    /* build and process */
    assert_non_null(strstr(m, "\nrapport_build_info{version=\""));
    assert_non_null(strstr(m, "\",commit=\""));
    const char *bi = strstr(m, "\nrapport_build_info{");
    assert_non_null(bi);
    const char *sp = strchr(bi + 1, '}');
    assert_non_null(sp);
    assert_true(strncmp(sp, "} 1\n", 4) == 0);
    double fds = sample(m, "process_open_fds"), maxfds = sample(m, "process_max_fds");
    assert_true(fds > 0);
    assert_true(maxfds >= fds);
    double start = sample(m, "process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(start <= now + 1); /* /proc's tick granularity */
    assert_true(start > now - 3600);
    assert_true(sample(m, "process_resident_memory_bytes") > 0);
    assert_true(sample(m, "process_virtual_memory_bytes") >= sample(m, "process_resident_memory_bytes"));
    assert_true(sample(m, "process_cpu_seconds_total") >= 0);

    /* bench/compare's histogram: name and labels unchanged */
    assert_true(sample(m, "rapport_request_duration_seconds_bucket{method=\"customer.put\",le=\"+Inf\"}") >= 6);
}

static const char *const config =
    "token = agent:" TOK_AGENT "\ntoken = ingest:" TOK_INGEST "\ntoken = admin:" TOK_ADMIN "\n"
    "max_request_bytes = 65536\nmax_depth = 16\n";

/* Sync durability: every commit is timed, with its fsync. */
static void test_promtool_sync(void **state) {
    rp_h *h = *state;
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%sdurability = sync\n", config);
    if (rp_h_start(h, cfg) != 0) rp_h_dump_log(h);
    int writes = traffic(h);
    char *m = get_metrics(h);
    promtool_check(h, m);
    check_common(m);
    double commits = sample(m, "rapport_writer_commit_duration_seconds_count");
    assert_true(commits > 0);
    assert_true(commits <= writes); /* group commit: never more commits than writes */
    assert_true(sample(m, "rapport_writer_commit_duration_seconds_bucket{le=\"+Inf\"}") == commits);
    assert_true(sample(m, "rapport_writer_commit_duration_seconds_sum") > 0);
    assert_true(sample(m, "rapport_writer_flush_duration_seconds_count") == 0);
    free(m);
    assert_int_equal(rp_h_stop(h), 0);
}

/* Async durability: commits are timed, and the flusher's syncs too. */
static void test_promtool_async(void **state) {
    rp_h *h = *state;
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%sdurability = async\nasync_flush_ms = 10\n", config);
    if (rp_h_start(h, cfg) != 0) rp_h_dump_log(h);
    traffic(h);
    char *m = NULL;
    for (int i = 0; i < 100; i++) { /* the flush comes within async_flush_ms */
        free(m);
        m = get_metrics(h);
        if (sample(m, "rapport_writer_flush_duration_seconds_count") > 0) break;
        rp_h_sleep_ms(20);
    }
    promtool_check(h, m);
    check_common(m);
    assert_true(sample(m, "rapport_writer_commit_duration_seconds_count") > 0);
    assert_true(sample(m, "rapport_writer_flush_duration_seconds_count") > 0);
    free(m);
    assert_int_equal(rp_h_stop(h), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_promtool_sync, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_promtool_async, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
