/* test_rpc.c — end-to-end: the real rapportd over real loopback sockets.
 *
 * Each test starts its own server (tests/e2e/harness.h) with the settings
 * it needs, talks to it with the client library (net/client.h) or with raw
 * sockets for bytes no client would send, and stops it with SIGTERM,
 * checking the exit status. Params are written as JSON and converted with
 * net/json.h, so each request reads like the protocol documentation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "e2e/calls.h"
#include "net/client.h"
#include "net/json.h"

/* --- helpers ------------------------------------------------------------------- */

static int64_t mp_int(const msgpack_object *o) {
    assert_non_null(o);
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (int64_t)o->via.u64;
    assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return o->via.i64;
}

static uint32_t mp_len(const msgpack_object *o) {
    assert_non_null(o);
    if (o->type == MSGPACK_OBJECT_ARRAY) return o->via.array.size;
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    return o->via.map.size;
}

/* Start a server or fail the test. */
static void start(rp_h *h, const char *extra) {
    int rc = rp_h_start(h, extra);
    assert_int_equal(rc, 0);
}

/* Stop with SIGTERM and require exit status 0; then clean up. */
static void stop_clean(rp_h *h) {
    int st = rp_h_stop(h);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
    rp_h_cleanup(h);
}

static rp_client *connect_ok(const rp_h *h) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    return c;
}

/* --- raw-socket helpers ----------------------------------------------------------- */

/* Send everything (ignoring a peer that stops reading early). */
static void raw_send(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        b += w;
        n -= (size_t)w;
    }
}

/* Read one reply frame from a raw socket: [1, msgid, err, result].
 * Bytes after the frame are kept for the next call on the same fd.
 * Returns 0 and fills msgid/code, or -1 at EOF/error before a frame. */
static int raw_reply(int fd, uint32_t *msgid, rp_err *code) {
    static char buf[1 << 16];
    static size_t n = 0;
    static int last_fd = -1;
    if (fd != last_fd) n = 0;
    last_fd = fd;
    rp_mpcheck_limits lim = rp_client_default_limits();
    for (;;) {
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        msgpack_object o;
        size_t len = 0;
        rp_mpcheck_result r = rp_mpcheck_unpack(buf, n, &lim, &z, &o, &len, NULL, 0);
        if (r == RP_MPC_OK) {
            int ok = o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 4 ? 0 : -1;
            if (ok == 0) {
                *msgid = (uint32_t)o.via.array.ptr[1].via.u64;
                const msgpack_object *e = &o.via.array.ptr[2];
                *code = RP_OK;
                const msgpack_object *cs = mp_get(e, "code");
                if (cs) *code = rp_err_parse(cs->via.str.ptr, cs->via.str.size);
                if (e->type != MSGPACK_OBJECT_NIL) assert_non_null(mp_get(e, "message"));
            }
            msgpack_zone_destroy(&z);
            memmove(buf, buf + len, n - len);
            n -= len;
            return ok;
        }
        msgpack_zone_destroy(&z);
        if (r != RP_MPC_INCOMPLETE || n == sizeof buf) return -1;
        ssize_t got = recv(fd, buf + n, sizeof buf - n, 0);
        if (got <= 0) return -1;
        n += (size_t)got;
    }
}

/* Is the peer's side closed (EOF or reset) within the socket's time-out? */
static bool raw_closed(int fd) {
    char b[4096];
    for (;;) {
        ssize_t got = recv(fd, b, sizeof b, 0);
        if (got == 0) return true;
        if (got < 0) return errno == ECONNRESET || errno == EPIPE;
    }
}

/* The witness: a second client on the same server must keep working. */
static void witness_ping(rp_client *w) {
    msgpack_object res = ok_call(w, "ping", NULL);
    assert_true(mp_is_true(mp_get(&res, "pong")));
}

/* --- tests ------------------------------------------------------------------------- */

/* Every method once with success and once with a typical error; also the
 * accepted params forms, notifications and unknown methods. Runs with the
 * default HTTP face on, so the whole server as shipped is exercised. */
static void test_every_method(void **state) {
    rp_h *h = *state;
    start(h, "");
    rp_client *c = connect_ok(h);
    char js[1024];
    long long now = (long long)time(NULL);

    msgpack_object r = ok_call(c, "ping", NULL);
    assert_true(mp_is_true(mp_get(&r, "pong")));
    err_call(c, "ping", "{\"x\":1}", RP_BAD_REQUEST);

    rp_role role = RP_ROLE_NONE;
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(c, "whatever-without-tokens", &role, &eb), RP_OK);
    assert_int_equal(role, RP_ROLE_ADMIN); /* no tokens: loopback admin */
    err_call(c, "auth", "{}", RP_BAD_REQUEST);

    r = ok_call(c, "customer.put",
                "{\"id\":\"c1\",\"customer\":{\"name\":\"Ada Lovelace\",\"language\":\"es\",\"tier\":\"gold\","
                "\"phones\":[\"+1 (415) 555-1212\"],\"emails\":[\"Ada@Example.com\"],\"accounts\":[\"ACC-1\"]}}");
    assert_true(mp_is_str(mp_get(&r, "id"), "c1"));
    assert_int_equal(mp_int(mp_get(&r, "version")), 1);
    err_call(c, "customer.put", "{\"id\":\"c1\"}", RP_BAD_REQUEST);

    r = ok_call(c, "customer.get", "{\"id\":\"c1\"}");
    assert_true(mp_is_str(mp_get(&r, "name"), "Ada Lovelace"));
    assert_true(mp_is_str(mp_get(&r, "phones")->via.array.ptr, "+14155551212"));
    err_call(c, "customer.get", "{\"id\":\"nobody\"}", RP_NOT_FOUND);

    r = ok_call(c, "customer.patch", "{\"id\":\"c1\",\"patch\":{\"preferred_name\":\"Ada\"},\"expect_version\":1}");
    assert_int_equal(mp_int(mp_get(&r, "version")), 2);
    err_call(c, "customer.patch", "{\"id\":\"c1\",\"patch\":{\"name\":\"X\"},\"expect_version\":1}", RP_CONFLICT);

    snprintf(js, sizeof js,
             "{\"event\":{\"customer_id\":\"c1\",\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\","
             "\"topic\":\"billing\",\"summary\":\"asked about a double charge\",\"outcome\":\"unresolved\","
             "\"sentiment\":-0.6,\"agent\":\"a7\"}}",
             now - 3600);
    r = ok_call(c, "event.append", js);
    assert_true(mp_is_str(mp_get(&r, "customer_id"), "c1"));
    assert_int_equal(mp_int(mp_get(&r, "ts")), now - 3600);
    snprintf(js, sizeof js,
             "{\"event\":{\"customer_id\":\"ghost\",\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\"}}", now);
    err_call(c, "event.append", js, RP_NOT_FOUND);

    r = ok_call(c, "issue.put",
                "{\"issue\":{\"customer_id\":\"c1\",\"issue_id\":\"i1\",\"topic\":\"delivery\",\"status\":\"open\","
                "\"summary\":\"parcel late\"}}");
    assert_true(mp_is_str(mp_get(&r, "issue_id"), "i1"));
    err_call(c, "issue.put", "{\"issue\":{\"customer_id\":\"c1\",\"issue_id\":\"i2\",\"status\":\"lost\"}}",
             RP_BAD_REQUEST);

    r = ok_call(c, "issue.list", "{\"id\":\"c1\"}");
    assert_int_equal(mp_len(mp_get(&r, "issues")), 1);
    err_call(c, "issue.list", "{\"id\":\"nobody\"}", RP_NOT_FOUND);

    r = ok_call(c, "history.list", "{\"id\":\"c1\",\"limit\":10}");
    assert_int_equal(mp_len(mp_get(&r, "events")), 1);
    err_call(c, "history.list", "{\"id\":\"c1\",\"before\":\"not-a-cursor\"}", RP_BAD_REQUEST);

    r = ok_call(c, "lookup", "{\"phone\":\"415.555.1212\"}");
    assert_true(mp_is_true(mp_get(&r, "found")));
    assert_true(mp_is_str(mp_get(mp_get(&r, "candidates")->via.array.ptr, "customer_id"), "c1"));
    r = ok_call(c, "lookup", "{\"email\":\"nobody@example.com\"}");
    assert_false(mp_is_true(mp_get(&r, "found")));
    err_call(c, "lookup", "{}", RP_BAD_REQUEST);

    r = ok_call(c, "stats", NULL);
    assert_true(mp_int(mp_get(&r, "customers")) >= 1);
    err_call(c, "stats", "{\"verbose\":true}", RP_BAD_REQUEST);

    r = ok_call(c, "context.get", "{\"phone\":\"(415) 555-1212\"}");
    assert_true(mp_is_true(mp_get(&r, "found")));
    assert_non_null(mp_get(&r, "likely_reasons"));
    r = ok_call(c, "context.get", "{\"phone\":\"+442079460958\"}");
    assert_false(mp_is_true(mp_get(&r, "found"))); /* unknown caller: an answer */
    err_call(c, "context.get", "{\"id\":\"nobody\"}", RP_NOT_FOUND);

    r = ok_call(c, "route.get", "{\"phone\":\"+14155551212\"}");
    assert_true(mp_is_true(mp_get(&r, "found")));
    assert_true(mp_is_str(mp_get(&r, "customer_id"), "c1"));
    err_call(c, "route.get", "{}", RP_BAD_REQUEST);

    snprintf(js, sizeof js,
             "{\"records\":[{\"type\":\"customer\",\"id\":\"c2\",\"name\":\"Bob\",\"emails\":[\"bob@example.com\"]},"
             "{\"type\":\"event\",\"customer_id\":\"c2\",\"ts\":%lld,\"channel\":\"chat\",\"kind\":\"contact\"}]}",
             now - 60);
    r = ok_call(c, "import", js);
    assert_int_equal(mp_int(mp_get(&r, "imported")), 2);
    err_call(c, "import", "{\"records\":7}", RP_BAD_REQUEST);

    r = ok_call(c, "export", "{\"limit\":10}");
    assert_true(mp_len(mp_get(&r, "records")) >= 4); /* 2 customers, 2 events, 1 issue */
    err_call(c, "export", "{\"limit\":0}", RP_BAD_REQUEST);

    r = ok_call(c, "customer.merge", "{\"from\":\"c2\",\"into\":\"c1\"}");
    assert_true(mp_is_str(mp_get(&r, "id"), "c1"));
    r = ok_call(c, "customer.get", "{\"id\":\"c2\"}"); /* the alias answers */
    assert_true(mp_is_str(mp_get(&r, "id"), "c1"));
    err_call(c, "customer.merge", "{\"from\":\"c1\",\"into\":\"c1\"}", RP_CONFLICT);

    r = ok_call(c, "customer.forget", "{\"id\":\"c1\"}");
    assert_true(mp_is_true(mp_get(&r, "forgotten")));
    err_call(c, "customer.get", "{\"id\":\"c1\"}", RP_NOT_FOUND);
    err_call(c, "customer.forget", "{\"id\":\"c1\"}", RP_NOT_FOUND);

    err_call(c, "no.such.method", NULL, RP_BAD_REQUEST);
    rp_client_close(c);
    stop_clean(h);
}

/* The params forms the server accepts, and a notification (no reply). */
static void test_params_forms_and_notifications(void **state) {
    rp_h *h = *state;
    start(h, "http =\n");
    int fd = rp_h_raw_connect(h);
    assert_true(fd >= 0);
    /* [0,1,"ping",{}]  [0,2,"ping",[{}]]  [0,3,"ping",[]]  [0,4,"ping",nil] */
    static const unsigned char forms[] = {
        0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0x80,
        0x94, 0x00, 0x02, 0xa4, 'p', 'i', 'n', 'g', 0x91, 0x80,
        0x94, 0x00, 0x03, 0xa4, 'p', 'i', 'n', 'g', 0x90,
        0x94, 0x00, 0x04, 0xa4, 'p', 'i', 'n', 'g', 0xc0,
        /* a notification: [2,"customer.put",{"id":"n1","customer":{"name":"N"}}] -- no reply */
        0x93, 0x02, 0xac, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r', '.', 'p', 'u', 't',
        0x82, 0xa2, 'i', 'd', 0xa2, 'n', '1', 0xa8, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r',
        0x81, 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'N',
        /* params of a wrong type: BAD_REQUEST for msgid 5, connection stays */
        0x94, 0x00, 0x05, 0xa4, 'p', 'i', 'n', 'g', 0x2a,
        /* msgid 6 with a non-string method */
        0x94, 0x00, 0x06, 0x07, 0x80,
        0x94, 0x00, 0x07, 0xa4, 'p', 'i', 'n', 'g', 0x80,
    };
    raw_send(fd, forms, sizeof forms);
    uint32_t id;
    rp_err code;
    for (uint32_t want = 1; want <= 7; want++) {
        assert_int_equal(raw_reply(fd, &id, &code), 0);
        assert_int_equal(id, want);
        assert_int_equal(code, want == 5 || want == 6 ? RP_BAD_REQUEST : RP_OK);
    }
    close(fd);
    /* The notification's write happened (poll briefly: it is asynchronous). */
    rp_client *c = connect_ok(h);
    rp_err rc = RP_NOT_FOUND;
    for (int i = 0; i < 200 && rc == RP_NOT_FOUND; i++) {
        msgpack_object r;
        rp_errbuf eb = {0};
        rc = jcall(c, "customer.get", "{\"id\":\"n1\"}", &r, &eb);
        if (rc == RP_NOT_FOUND) rp_h_sleep_ms(10);
    }
    assert_int_equal(rc, RP_OK);
    rp_client_close(c);
    stop_clean(h);
}

/* 1,000 pipelined requests on one connection, writes and reads mixed:
 * every reply comes back, in request order, with the right content. */
static void test_pipeline_1000(void **state) {
    rp_h *h = *state;
    start(h, "http =\nretention_max_events = 100000\n");
    rp_client *c = connect_ok(h);
    ok_call(c, "customer.put", "{\"id\":\"p1\",\"customer\":{\"name\":\"Pipe\"}}");
    long long now = (long long)time(NULL);
    enum { N = 1000 };
    static uint32_t ids[N];
    static char kind[N];
    msgpack_sbuffer get, ping;
    json_params("{\"id\":\"p1\"}", &get);
    json_params(NULL, &ping);
    for (int i = 0; i < N; i++) {
        rp_errbuf eb = {0};
        rp_err rc;
        if (i % 3 == 0) {
            char js[256];
            snprintf(js, sizeof js,
                     "{\"event\":{\"customer_id\":\"p1\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"page\","
                     "\"summary\":\"n%d\"}}",
                     now, i);
            msgpack_sbuffer ev;
            json_params(js, &ev);
            rc = rp_client_send(c, "event.append", ev.data, ev.size, &ids[i], &eb);
            msgpack_sbuffer_destroy(&ev);
            kind[i] = 'w';
        } else if (i % 3 == 1) {
            rc = rp_client_send(c, "customer.get", get.data, get.size, &ids[i], &eb);
            kind[i] = 'g';
        } else {
            rc = rp_client_send(c, "ping", NULL, 0, &ids[i], &eb);
            kind[i] = 'p';
        }
        assert_int_equal(rc, RP_OK);
    }
    assert_int_equal(rp_client_pending(c), N);
    assert_int_equal(rp_client_flush(c, NULL), RP_OK);
    for (int i = 0; i < N; i++) {
        rp_client_reply rep;
        rp_errbuf eb = {0};
        assert_int_equal(rp_client_recv(c, &rep, &eb), RP_OK);
        assert_int_equal(rep.msgid, ids[i]);
        assert_int_equal(rep.rc, RP_OK);
        if (kind[i] == 'w') assert_true(mp_is_str(mp_get(&rep.result, "customer_id"), "p1"));
        if (kind[i] == 'g') assert_true(mp_is_str(mp_get(&rep.result, "name"), "Pipe"));
        if (kind[i] == 'p') assert_true(mp_is_true(mp_get(&rep.result, "pong")));
    }
    assert_int_equal(rp_client_pending(c), 0);
    msgpack_sbuffer_destroy(&get);
    msgpack_sbuffer_destroy(&ping);
    /* Every acknowledged write is there (334 appends). */
    msgpack_object r = ok_call(c, "stats", NULL);
    assert_int_equal(mp_int(mp_get(&r, "events")), (N + 2) / 3);
    rp_client_close(c);
    stop_clean(h);
}

/* Backpressure: 20,000 pipelined reads on one connection whose replies
 * (~3 MB) far exceed max_output_bytes (64 KiB here), so the server must
 * stop reading and resume, more than once. Every reply arrives, in order. */
static void test_backpressure(void **state) {
    rp_h *h = *state;
    start(h, "http =\nmax_output_bytes = 65536\n");
    rp_client *c = connect_ok(h);
    ok_call(c, "customer.put",
            "{\"id\":\"b1\",\"customer\":{\"name\":\"Back Pressure\",\"tier\":\"gold\","
            "\"rapport_notes\":[\"a note long enough to make every reply about two hundred bytes long\"]}}");
    enum { N = 20000 };
    msgpack_sbuffer get;
    json_params("{\"id\":\"b1\"}", &get);
    uint32_t first = 0, id = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(rp_client_send(c, "customer.get", get.data, get.size, &id, NULL), RP_OK);
        if (i == 0) first = id;
    }
    msgpack_sbuffer_destroy(&get);
    assert_int_equal(rp_client_flush(c, NULL), RP_OK);
    for (int i = 0; i < N; i++) {
        rp_client_reply r;
        assert_int_equal(rp_client_recv(c, &r, NULL), RP_OK);
        assert_int_equal(r.msgid, first + (uint32_t)i);
        assert_int_equal(r.rc, RP_OK);
        assert_true(mp_is_str(mp_get(&r.result, "name"), "Back Pressure"));
    }
    witness_ping(c);
    rp_client_close(c);
    stop_clean(h);
}

/* A 3 MB import (5,000 customers) that arrives in 64 KiB pieces a few
 * milliseconds apart: the frame spans many reads and many buffer chunks,
 * and must be accepted whole (not mistaken for too large or too slow). */
static void test_large_request_in_pieces(void **state) {
    rp_h *h = *state;
    start(h, "http =\n");
    enum { N = 5000 };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 77);
    msgpack_pack_str_with_body(&pk, "import", 6);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "records", 7);
    msgpack_pack_array(&pk, N);
    char note[600];
    memset(note, 'n', sizeof note);
    for (int i = 0; i < N; i++) {
        char id[32];
        int il = snprintf(id, sizeof id, "big-%d", i);
        msgpack_pack_map(&pk, 4);
        msgpack_pack_str_with_body(&pk, "type", 4);
        msgpack_pack_str_with_body(&pk, "customer", 8);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_str_with_body(&pk, id, (size_t)il);
        msgpack_pack_str_with_body(&pk, "name", 4);
        msgpack_pack_str_with_body(&pk, note, 250);
        msgpack_pack_str_with_body(&pk, "timezone", 8);
        msgpack_pack_str_with_body(&pk, note, 250);
    }
    assert_true(sb.size > 2500000 && sb.size < 4194304); /* many reads, under the cap */
    int fd = rp_h_raw_connect(h);
    assert_true(fd >= 0);
    for (size_t off = 0; off < sb.size; off += 65536) {
        size_t n = sb.size - off < 65536 ? sb.size - off : 65536;
        raw_send(fd, sb.data + off, n);
        rp_h_sleep_ms(3);
    }
    msgpack_sbuffer_destroy(&sb);
    uint32_t id;
    rp_err code;
    assert_int_equal(raw_reply(fd, &id, &code), 0);
    assert_int_equal(id, 77);
    assert_int_equal(code, RP_OK);
    close(fd);
    rp_client *c = connect_ok(h);
    msgpack_object r = ok_call(c, "stats", NULL);
    assert_int_equal(mp_int(mp_get(&r, "customers")), N);
    rp_client_close(c);
    stop_clean(h);
}

/* A client that sends a write and a read, then closes its sending side,
 * still gets both replies (the write's after its commit), then EOF. */
static void test_half_close_gets_replies(void **state) {
    rp_h *h = *state;
    start(h, "http =\n");
    int fd = rp_h_raw_connect(h);
    assert_true(fd >= 0);
    /* [0,1,"customer.put",{"id":"h1","customer":{"name":"H"}}] [0,2,"ping",[]] */
    static const unsigned char req[] = {
        0x94, 0x00, 0x01, 0xac, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r', '.', 'p', 'u', 't',
        0x82, 0xa2, 'i', 'd', 0xa2, 'h', '1', 0xa8, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r',
        0x81, 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'H',
        0x94, 0x00, 0x02, 0xa4, 'p', 'i', 'n', 'g', 0x90,
    };
    raw_send(fd, req, sizeof req);
    shutdown(fd, SHUT_WR);
    uint32_t id;
    rp_err code;
    assert_int_equal(raw_reply(fd, &id, &code), 0);
    assert_int_equal(id, 1);
    assert_int_equal(code, RP_OK);
    assert_int_equal(raw_reply(fd, &id, &code), 0);
    assert_int_equal(id, 2);
    assert_int_equal(code, RP_OK);
    assert_true(raw_closed(fd));
    close(fd);
    rp_client *c = connect_ok(h);
    ok_call(c, "customer.get", "{\"id\":\"h1\"}");
    rp_client_close(c);
    stop_clean(h);
}

#define TOK_ROUTE "route-secret-0123456789"
#define TOK_AGENT "agent-secret-0123456789"
#define TOK_INGEST "ingest-secret-0123456789"
#define TOK_ADMIN "admin-secret-0123456789"

/* Connect and authenticate as tok (NULL: stay anonymous). */
static rp_client *as_role(const rp_h *h, const char *tok, rp_role want) {
    rp_client *c = connect_ok(h);
    if (tok) {
        rp_role got = RP_ROLE_NONE;
        rp_errbuf eb = {0};
        assert_int_equal(rp_client_auth(c, tok, &got, &eb), RP_OK);
        assert_int_equal(got, want);
    }
    return c;
}

/* Roles: what each token may and may not do; no auth is UNAUTHORIZED. */
static void test_roles(void **state) {
    rp_h *h = *state;
    start(h, "http =\n"
              "token = route:" TOK_ROUTE "\n"
              "token = agent:" TOK_AGENT "\n"
              "token = ingest:" TOK_INGEST "\n"
              "token = admin:" TOK_ADMIN "\n");
    const char *put = "{\"id\":\"r1\",\"customer\":{\"name\":\"Rita\",\"phones\":[\"+14155550000\"]}}";
    const char *get = "{\"id\":\"r1\"}";
    const char *route = "{\"phone\":\"+14155550000\"}";

    /* anonymous: ping only */
    rp_client *c = as_role(h, NULL, RP_ROLE_NONE);
    witness_ping(c);
    err_call(c, "customer.get", get, RP_UNAUTHORIZED);
    err_call(c, "route.get", route, RP_UNAUTHORIZED);
    err_call(c, "stats", NULL, RP_UNAUTHORIZED);
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(c, "wrong-token-wrong-token", NULL, &eb), RP_UNAUTHORIZED);
    witness_ping(c); /* still open */
    err_call(c, "customer.get", get, RP_UNAUTHORIZED);
    rp_client_close(c);

    /* ingest: writes, no reads, no forget/export */
    c = as_role(h, TOK_INGEST, RP_ROLE_INGEST);
    ok_call(c, "customer.put", put);
    ok_call(c, "customer.put", "{\"id\":\"r2\",\"customer\":{\"name\":\"Rolf\"}}");
    err_call(c, "customer.get", get, RP_FORBIDDEN);
    err_call(c, "route.get", route, RP_FORBIDDEN);
    err_call(c, "customer.forget", get, RP_FORBIDDEN);
    err_call(c, "export", NULL, RP_FORBIDDEN);
    witness_ping(c);
    /* a failed auth drops the role */
    assert_int_equal(rp_client_auth(c, "wrong-token-wrong-token", NULL, &eb), RP_UNAUTHORIZED);
    err_call(c, "customer.put", put, RP_UNAUTHORIZED);
    rp_client_close(c);

    /* route: route.get and ping only */
    c = as_role(h, TOK_ROUTE, RP_ROLE_ROUTE);
    msgpack_object r = ok_call(c, "route.get", route);
    assert_true(mp_is_str(mp_get(&r, "customer_id"), "r1"));
    witness_ping(c);
    err_call(c, "customer.get", get, RP_FORBIDDEN);
    err_call(c, "context.get", get, RP_FORBIDDEN);
    err_call(c, "lookup", route, RP_FORBIDDEN);
    err_call(c, "customer.put", put, RP_FORBIDDEN);
    rp_client_close(c);

    /* agent: reads, no writes, no forget/export */
    c = as_role(h, TOK_AGENT, RP_ROLE_AGENT);
    r = ok_call(c, "customer.get", get);
    assert_true(mp_is_str(mp_get(&r, "name"), "Rita"));
    ok_call(c, "context.get", get);
    ok_call(c, "route.get", route);
    ok_call(c, "lookup", route);
    ok_call(c, "stats", NULL);
    err_call(c, "customer.put", put, RP_FORBIDDEN);
    err_call(c, "customer.forget", get, RP_FORBIDDEN);
    err_call(c, "export", NULL, RP_FORBIDDEN);
    rp_client_close(c);

    /* admin: everything, including export and forget */
    c = as_role(h, TOK_ADMIN, RP_ROLE_ADMIN);
    ok_call(c, "customer.get", get);
    ok_call(c, "customer.put", put);
    r = ok_call(c, "export", NULL);
    assert_true(mp_len(mp_get(&r, "records")) >= 2);
    ok_call(c, "customer.forget", "{\"id\":\"r2\"}");
    err_call(c, "customer.get", "{\"id\":\"r2\"}", RP_NOT_FOUND);
    rp_client_close(c);
    stop_clean(h);
}

/* No tokens and a non-loopback address: refuse to start, exit 2. */
static void test_refuse_exposed(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_init(h, "http =\n"), 0);
    char listen[64];
    snprintf(listen, sizeof listen, "0.0.0.0:%d", h->port);
    const char *args[] = {"--listen", listen, NULL};
    assert_int_equal(rp_h_spawn_args(h, args), 0);
    int st = rp_h_wait_exit(h, 10000);
    if (st != 2) rp_h_dump_log(h);
    assert_int_equal(st, 2);
    assert_true(rp_h_log_has(h, "loopback"));
    /* the same with a token starts (and stops cleanly) */
    snprintf(h->extra, sizeof h->extra, "http =\ntoken = admin:" TOK_ADMIN "\n");
    assert_int_equal(rp_h_write_config(h), 0);
    assert_int_equal(rp_h_spawn_args(h, args), 0);
    assert_int_equal(rp_h_wait_ready(h, 10000), 0);
    stop_clean(h);
}

/* Send bytes on a fresh raw connection and expect one error reply with
 * want_code (and msgid want_id), then the connection closed. */
static void hostile(const rp_h *h, const void *bytes, size_t n, bool half_close, uint32_t want_id,
                    rp_err want_code) {
    int fd = rp_h_raw_connect(h);
    assert_true(fd >= 0);
    raw_send(fd, bytes, n);
    if (half_close) shutdown(fd, SHUT_WR);
    uint32_t id = 99;
    rp_err code = RP_OK;
    assert_int_equal(raw_reply(fd, &id, &code), 0);
    assert_int_equal(id, want_id);
    assert_int_equal(code, want_code);
    assert_true(raw_closed(fd));
    close(fd);
}

/* Hostile input gets a clear error and a closed connection, while another
 * client of the same server keeps being served. */
static void test_hostile_inputs(void **state) {
    rp_h *h = *state;
    start(h, "http =\nslow_timeout_ms = 400\nidle_timeout_ms = 3000\nmax_connections = 12\n");
    rp_client *w = connect_ok(h);
    witness_ping(w);

    /* length lie: [0, 1, "ping", str32 of 4 GiB] */
    static const unsigned char lie[] = {0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0xdb, 0xff, 0xff, 0xff, 0xff};
    hostile(h, lie, sizeof lie, false, 1, RP_TOO_LARGE);
    witness_ping(w);
    /* array32 claiming 4 G elements at the top */
    static const unsigned char arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00};
    hostile(h, arr, sizeof arr, false, 0, RP_TOO_LARGE);
    witness_ping(w);
    /* nesting bomb: 100,000 nested arrays */
    size_t nb = 100000;
    unsigned char *bomb = malloc(nb);
    assert_non_null(bomb);
    memset(bomb, 0x91, nb);
    hostile(h, bomb, nb, false, 0, RP_TOO_LARGE);
    free(bomb);
    witness_ping(w);
    /* truncated frame, then the client closes its side */
    static const unsigned char trunc[] = {0x94, 0x00, 0x07, 0xa4, 'p', 'i'};
    hostile(h, trunc, sizeof trunc, true, 7, RP_BAD_REQUEST);
    witness_ping(w);
    /* garbage: 0xc1 is never used */
    static const unsigned char garbage[] = {0xc1, 0xc1, 0xc1, 0xc1};
    hostile(h, garbage, sizeof garbage, false, 0, RP_BAD_REQUEST);
    witness_ping(w);
    /* invalid UTF-8 in the method name */
    static const unsigned char badutf[] = {0x94, 0x00, 0x09, 0xa2, 0xc3, 0x28, 0x80};
    hostile(h, badutf, sizeof badutf, false, 9, RP_BAD_REQUEST);
    witness_ping(w);
    /* valid MessagePack that is not a request */
    static const unsigned char notreq[] = {0x81, 0xa1, 'a', 0x01};
    hostile(h, notreq, sizeof notreq, false, 0, RP_BAD_REQUEST);
    witness_ping(w);
    /* oversized: a 4.5 MB request (70 strings of 64,000 bytes) > max_request_bytes */
    {
        size_t ns = 70, sl = 64000;
        size_t total = 16 + ns * (sl + 3);
        unsigned char *big = malloc(total);
        assert_non_null(big);
        size_t o = 0;
        static const unsigned char head[] = {0x94, 0x00, 0x0b, 0xa4, 'p', 'i', 'n', 'g', 0x91, 0x81,
                                             0xa1, 'x', 0xdc, 0x00, (unsigned char)70};
        memcpy(big, head, sizeof head);
        o = sizeof head;
        for (size_t i = 0; i < ns; i++) {
            big[o++] = 0xda;
            big[o++] = (unsigned char)(sl >> 8);
            big[o++] = (unsigned char)(sl & 0xff);
            memset(big + o, 'a', sl);
            o += sl;
        }
        hostile(h, big, o, false, 11, RP_TOO_LARGE);
        free(big);
    }
    witness_ping(w);

    /* slowloris: a started request that never finishes is cut off */
    {
        int fd = rp_h_raw_connect(h);
        assert_true(fd >= 0);
        raw_send(fd, trunc, sizeof trunc);
        long long t0 = rp_h_now_ms();
        assert_true(raw_closed(fd));
        long long dt = rp_h_now_ms() - t0;
        assert_true(dt >= 300 && dt < 3000);
        close(fd);
    }
    witness_ping(w);
    /* idle: a connection that says nothing is closed after idle_timeout_ms */
    {
        int fd = rp_h_raw_connect(h);
        assert_true(fd >= 0);
        long long t0 = rp_h_now_ms();
        for (int i = 0; i < 4; i++) { /* keep the witness from idling meanwhile */
            rp_h_sleep_ms(500);
            witness_ping(w);
        }
        assert_true(raw_closed(fd));
        long long dt = rp_h_now_ms() - t0;
        assert_true(dt >= 2500 && dt < 8000);
        close(fd);
    }
    witness_ping(w);
    /* max_connections = 12: the witness + 11 more fit, the next is refused */
    rp_h_sleep_ms(200); /* the connections above are closed on both sides */
    {
        int fds[11];
        for (int i = 0; i < 11; i++) {
            fds[i] = rp_h_raw_connect(h);
            assert_true(fds[i] >= 0);
        }
        rp_h_sleep_ms(100); /* let the server accept them */
        int extra = rp_h_raw_connect(h);
        assert_true(extra >= 0);
        uint32_t id = 99;
        rp_err code = RP_OK;
        assert_int_equal(raw_reply(extra, &id, &code), 0);
        assert_int_equal(code, RP_UNAVAILABLE);
        assert_int_equal(id, 0);
        assert_true(raw_closed(extra));
        close(extra);
        for (int i = 0; i < 11; i++) close(fds[i]);
        rp_h_sleep_ms(100);
    }
    witness_ping(w);
    rp_client_close(w);
    stop_clean(h);
}

/* --- durability under shutdown and crash ---------------------------------------------- */

#define WR_THREADS 4
#define WR_MAX 20000

typedef struct writer_arg {
    const rp_h *h;
    int index;
    atomic_bool *go;
    int acked;               /* events acknowledged: summaries "t<index>-<k>" for k < acked */
    bool saw_unavailable;
} writer_arg;

/* Append events to customer w<index> with 8 in flight until the server
 * goes away; count the acknowledged ones (they are sent in order, and
 * acknowledged in order, so acked = the first k sent). */
static void *writer_main(void *p) {
    writer_arg *a = p;
    rp_client *c = rp_h_connect(a->h);
    if (c == NULL) return NULL;
    long long now = (long long)time(NULL);
    int sent = 0;
    while (!atomic_load(a->go)) rp_h_sleep_ms(1);
    for (;;) {
        while (rp_client_pending(c) < 8 && sent < WR_MAX) {
            char js[256];
            snprintf(js, sizeof js,
                     "{\"event\":{\"customer_id\":\"w%d\",\"ts\":%lld,\"channel\":\"system\",\"kind\":\"load\","
                     "\"summary\":\"t%d-%d\"}}",
                     a->index, now, a->index, sent);
            msgpack_sbuffer sb;
            rp_mpcheck_limits lim = rp_client_default_limits();
            msgpack_sbuffer_init(&sb);
            rp_json_to_msgpack(js, strlen(js), &lim, &sb, NULL);
            rp_err rc = rp_client_send(c, "event.append", sb.data, sb.size, NULL, NULL);
            msgpack_sbuffer_destroy(&sb);
            if (rc != RP_OK) goto out;
            sent++;
        }
        if (rp_client_pending(c) == 0) break;
        rp_client_reply r;
        if (rp_client_recv(c, &r, NULL) != RP_OK) break; /* the server went away */
        if (r.rc == RP_UNAVAILABLE) a->saw_unavailable = true;
        if (r.rc != RP_OK) break; /* refused (shutting down): nothing after counts */
        a->acked++;
    }
out:
    rp_client_close(c);
    return NULL;
}

/* Run the write load, interrupt the server with sig after ms, restart it
 * and check every acknowledged event is there. Returns the exit status. */
static int load_and_interrupt(rp_h *h, int sig, int ms) {
    rp_client *c = connect_ok(h);
    for (int i = 0; i < WR_THREADS; i++) {
        char js[128];
        snprintf(js, sizeof js, "{\"id\":\"w%d\",\"customer\":{\"name\":\"Writer %d\"}}", i, i);
        ok_call(c, "customer.put", js);
    }
    rp_client_close(c);
    atomic_bool go = false;
    pthread_t th[WR_THREADS];
    writer_arg args[WR_THREADS];
    for (int i = 0; i < WR_THREADS; i++) {
        args[i] = (writer_arg){.h = h, .index = i, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &args[i]), 0);
    }
    atomic_store(&go, true);
    rp_h_sleep_ms(ms);
    int status;
    if (sig == SIGKILL) {
        rp_h_kill9(h);
        status = 128 + SIGKILL;
    } else {
        status = rp_h_stop(h);
    }
    int total = 0;
    for (int i = 0; i < WR_THREADS; i++) {
        pthread_join(th[i], NULL);
        total += args[i].acked;
    }
    assert_true(total > 0); /* the load really ran */
    assert_int_equal(rp_h_restart(h), 0);
    c = connect_ok(h);
    for (int i = 0; i < WR_THREADS; i++) {
        /* Walk the history (newest first) and mark the summaries seen. */
        char *seen = calloc(WR_MAX, 1);
        assert_non_null(seen);
        char cursor[48] = "";
        for (;;) {
            char js[160];
            if (cursor[0]) snprintf(js, sizeof js, "{\"id\":\"w%d\",\"limit\":200,\"before\":\"%s\"}", i, cursor);
            else snprintf(js, sizeof js, "{\"id\":\"w%d\",\"limit\":200}", i);
            msgpack_object r = ok_call(c, "history.list", js);
            const msgpack_object *evs = mp_get(&r, "events");
            for (uint32_t k = 0; k < mp_len(evs); k++) {
                const msgpack_object *s = mp_get(&evs->via.array.ptr[k], "summary");
                int ti, n;
                char tmp[32];
                assert_non_null(s);
                snprintf(tmp, sizeof tmp, "%.*s", (int)s->via.str.size, s->via.str.ptr);
                assert_int_equal(sscanf(tmp, "t%d-%d", &ti, &n), 2);
                assert_int_equal(ti, i);
                assert_true(n >= 0 && n < WR_MAX);
                seen[n] = 1;
            }
            const msgpack_object *next = mp_get(&r, "next");
            if (next == NULL || next->type != MSGPACK_OBJECT_STR) break;
            snprintf(cursor, sizeof cursor, "%.*s", (int)next->via.str.size, next->via.str.ptr);
        }
        for (int k = 0; k < args[i].acked; k++) {
            if (!seen[k]) fprintf(stderr, "writer %d: acknowledged event %d is missing\n", i, k);
            assert_true(seen[k]);
        }
        free(seen);
    }
    rp_client_close(c);
    fprintf(stderr, "  %d acknowledged writes checked after %s\n", total, sig == SIGKILL ? "kill -9" : "SIGTERM");
    return status;
}

/* SIGTERM during a write load: exit status 0, and after a restart every
 * acknowledged write is present. */
static void test_sigterm_under_load(void **state) {
    rp_h *h = *state;
    start(h, "http =\ndurability = sync\nretention_max_events = 1000000\n");
    int st = load_and_interrupt(h, SIGTERM, 700);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
    assert_true(rp_h_log_has(h, "event=shutdown"));
    assert_true(rp_h_log_has(h, "event=stopped"));
    stop_clean(h);
}

/* kill -9 during a write load (durability sync): after a restart every
 * acknowledged write is present. */
static void test_kill9_under_load(void **state) {
    rp_h *h = *state;
    start(h, "http =\ndurability = sync\nretention_max_events = 1000000\n");
    load_and_interrupt(h, SIGKILL, 700);
    stop_clean(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_method, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_params_forms_and_notifications, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_1000, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_half_close_gets_replies, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_large_request_in_pieces, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_roles, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_exposed, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_inputs, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_under_load, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_under_load, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
