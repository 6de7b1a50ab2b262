/* test_crm_words.c — end-to-end: help-desk words for issue status and severity
 * through a real rapportd (tests/e2e/harness.h) and the real `rapport` CLI.
 *
 * A Zendesk-style issue ("severity":"normal","status":"new", a callback
 * promised an hour ago) is PUT over HTTP, read back with the words as sent
 * beside the levels, and makes the card carry the broken_promise cue; an
 * NDJSON file of Zendesk, Salesforce and Freshdesk values (numbers as
 * integers and strings, read per `issue_numbers = freshdesk`, which this
 * server is started with so that the setting is seen to reach both the
 * HTTP and the import decoders) is imported with `rapport import`
 * (non-strict) with no line refused; an unknown word is a 400 naming the
 * field and the value.
 *
 * The HTTP client is the smallest that serves: one request per
 * connection, "Connection: close", the whole reply read to EOF (the routes
 * used here answer with Content-Length).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"

typedef struct resp {
    int status;
    char *text; /* the whole reply, NUL-terminated (malloc'd) */
    const char *body;
} resp;

/* One HTTP request on its own connection; the reply read to EOF. */
static resp http(const rp_h *h, const char *method, const char *path, const char *body) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t blen = body ? strlen(body) : 0;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, blen);
    assert_int_equal(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
    if (blen) assert_int_equal(send(fd, body, blen, MSG_NOSIGNAL), (ssize_t)blen);
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
    resp r = {0, p, ""};
    assert_int_equal(sscanf(p, "HTTP/1.%*d %d", &r.status), 1);
    const char *b = strstr(p, "\r\n\r\n");
    r.body = b ? b + 4 : "";
    return r;
}

static void expect_has(const char *hay, const char *needle) {
    if (strstr(hay, needle) == NULL) fail_msg("expected\n  %s\nin\n  %s", needle, hay);
}

/* Request, check the status and (if given) a piece of the body. */
static void expect(const rp_h *h, const char *method, const char *path, const char *body,
                   int status, const char *want) {
    resp r = http(h, method, path, body);
    if (r.status != status)
        fail_msg("%s %s: status %d, expected %d: %s", method, path, r.status, status, r.body);
    if (want) expect_has(r.body, want);
    free(r.text);
}

/* Run `rapport args...`; stdout and stderr go to files in dir, read back
 * into *out / *err (malloc'd). Returns the exit status. */
static int rapport(const rp_h *h, const char *const *args, char **out, char **err) {
    char outp[400], errp[400];
    snprintf(outp, sizeof outp, "%s/cli.out", h->dir);
    snprintf(errp, sizeof errp, "%s/cli.err", h->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *o = freopen(outp, "w", stdout), *e = freopen(errp, "w", stderr);
        if (o == NULL || e == NULL) _exit(126);
        char bin[512];
        snprintf(bin, sizeof bin, "%s/rapport", RP_BINARY_DIR);
        const char *argv[16] = {bin};
        int n = 1;
        for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
        argv[n] = NULL;
        unsetenv("RAPPORT_TOKEN");
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    const char *paths[2] = {outp, errp};
    char **dst[2] = {out, err};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(paths[k], "rb");
        assert_non_null(f);
        char *buf = calloc(1, 1 << 16);
        assert_non_null(buf);
        size_t got = fread(buf, 1, (1 << 16) - 1, f);
        buf[got] = '\0';
        fclose(f);
        *dst[k] = buf;
    }
    return rp_h_status(st);
}

static void test_help_desk_words(void **state) {
    rp_h *h = *state;
    if (rp_h_start(h, "issue_numbers = freshdesk\n") != 0) {
        rp_h_dump_log(h);
        fail_msg("rapportd did not start");
    }
    long long now = (long long)time(NULL);
    char body[1024];

    /* A Zendesk ticket: new, normal, a callback promised an hour ago. */
    expect(h, "PUT", "/v1/customers/zd-1", "{\"name\":\"Priya Raman\",\"phones\":[\"+14155550123\"]}",
           200, NULL);
    snprintf(body, sizeof body,
             "{\"topic\":\"billing\",\"status\":\"new\",\"severity\":\"normal\","
             "\"summary\":\"Double charge\",\"opened_at\":%lld,\"follow_up_due\":%lld}",
             now - 86400, now - 3600);
    expect(h, "PUT", "/v1/customers/zd-1/issues/ZD-4411", body, 200, NULL);
    /* Salesforce words, and a Freshdesk number as JSON integer and string. */
    expect(h, "PUT", "/v1/customers/zd-1/issues/SF-9",
           "{\"topic\":\"delivery\",\"status\":\"Escalated\",\"severity\":\"High\"}", 200, NULL);
    expect(h, "PUT", "/v1/customers/zd-1/issues/FD-7",
           "{\"topic\":\"refund\",\"status\":\"3\",\"severity\":4}", 200, NULL);
    /* A client that sends the levels sees exactly what it sent before. */
    expect(h, "PUT", "/v1/customers/zd-1/issues/RP-1",
           "{\"topic\":\"technical\",\"status\":\"open\",\"severity\":\"high\"}", 200, NULL);

    /* Read back: levels for ranking, the words as sent for display. */
    resp r = http(h, "GET", "/v1/customers/zd-1/issues", NULL);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "\"issue_id\":\"ZD-4411\",\"topic\":\"billing\",\"status\":\"open\","
                       "\"status_raw\":\"new\",\"severity\":\"medium\",\"severity_raw\":\"normal\"");
    expect_has(r.body, "\"status\":\"open\",\"status_raw\":\"Escalated\",\"severity\":\"high\","
                       "\"severity_raw\":\"High\"");
    expect_has(r.body, "\"status\":\"pending\",\"status_raw\":\"3\",\"severity\":\"critical\","
                       "\"severity_raw\":\"4\"");
    expect_has(r.body, "\"issue_id\":\"RP-1\",\"topic\":\"technical\",\"status\":\"open\","
                       "\"severity\":\"high\",\"opened_at\"");
    free(r.text);

    /* The card: the missed callback on a "new" ticket is a broken promise. */
    r = http(h, "GET", "/v1/context?id=zd-1", NULL);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "\"code\":\"broken_promise\"");
    expect_has(r.body, "(issue ZD-4411 about billing)");
    expect_has(r.body, "\"severity_raw\":\"normal\"");
    free(r.text);

    /* An unknown word is a 400 naming the field and the value. */
    expect(h, "PUT", "/v1/customers/zd-1/issues/X-1", "{\"severity\":\"dire\"}", 400,
           "field 'severity' must be low, medium, high or critical");
    expect(h, "PUT", "/v1/customers/zd-1/issues/X-1", "{\"severity\":\"dire\"}", 400, "(got 'dire')");
    expect(h, "PUT", "/v1/customers/zd-1/issues/X-1", "{\"status\":1}", 400,
           "field 'status' is '1', which is not a status number when issue_numbers = freshdesk");

    /* NDJSON import, non-strict: nothing refused. */
    char path[400];
    snprintf(path, sizeof path, "%s/zendesk.ndjson", h->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"type\":\"customer\",\"id\":\"zd-2\",\"name\":\"Sam Ortiz\"}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"ZD-1\",\"topic\":\"billing\","
            "\"status\":\"solved\",\"severity\":\"normal\"}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"ZD-2\",\"topic\":\"delivery\","
            "\"status\":\"hold\",\"severity\":\"URGENT\",\"follow_up_due\":%lld}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"FD-3\",\"topic\":\"refund\","
            "\"status\":5,\"severity\":\"1\"}\n"
            "{\"type\":\"issue\",\"customer_id\":\"zd-2\",\"issue_id\":\"SN-4\",\"topic\":\"network\","
            "\"status\":\"In Progress\",\"severity\":\"1 - Critical\"}\n",
            now - 7200);
    assert_int_equal(fclose(f), 0);
    char *out = NULL, *err = NULL;
    int code = rapport(h, (const char *const[]){"--server", h->addr, "import", path, NULL}, &out, &err);
    if (code != 0) fail_msg("import exit %d: %s %s", code, out, err);
    expect_has(err, "5 records imported, 0 skipped");
    if (strstr(err, "line ")) fail_msg("import refused lines: %s", err);
    free(out), free(err);
    r = http(h, "GET", "/v1/customers/zd-2/issues", NULL);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "\"issue_id\":\"ZD-1\",\"topic\":\"billing\",\"status\":\"resolved\","
                       "\"status_raw\":\"solved\",\"severity\":\"medium\",\"severity_raw\":\"normal\"");
    expect_has(r.body, "\"status\":\"pending\",\"status_raw\":\"hold\",\"severity\":\"critical\","
                       "\"severity_raw\":\"URGENT\"");
    expect_has(r.body, "\"status\":\"resolved\",\"status_raw\":\"5\",\"severity\":\"low\","
                       "\"severity_raw\":\"1\"");
    expect_has(r.body, "\"status\":\"open\",\"status_raw\":\"In Progress\",\"severity\":\"critical\","
                       "\"severity_raw\":\"1 - Critical\"");
    free(r.text);
    r = http(h, "GET", "/v1/context?id=zd-2", NULL);
    assert_int_equal(r.status, 200);
    expect_has(r.body, "\"code\":\"broken_promise\"");
    expect_has(r.body, "(issue ZD-2 about delivery)");
    free(r.text);

    int st = rp_h_stop(h);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_desk_words, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
