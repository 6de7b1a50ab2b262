/* test_backup_live.c — end-to-end: `backup` against a real rapportd, then a
 * second real rapportd on the copy.
 *
 *   - test_backup_live: demo data imported with the real `rapport` binary, a
 *     duplicate merged into its survivor, then a backup over MessagePack-RPC
 *     while another thread appends events on its own connection. A second
 *     rapportd started on the copy answers context.get (fixed `at`),
 *     customer.get, history.list and lookup byte for byte as the original
 *     for a set of customers, the merged-away id included; the concurrent
 *     writer's events on the copy are exactly its first k appends.
 *   - test_backup_roles: agent and ingest tokens get FORBIDDEN over RPC and
 *     403 over HTTP; admin over HTTP (POST /v1/admin/backup?dir=) gets 200;
 *     a relative dir is 400, a non-empty one 409.
 *   - test_backup_cli_local: `rapport --data D backup DIR` beside the
 *     running server (read-only open), then `rapport --data DIR export`
 *     equals the server's export; `rapport --server A backup` with an admin
 *     token works and refuses a relative DIR with exit 2.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e/calls.h"
#include "e2e/harness.h"
#include "e2e/http.h"
#include "e2e/run.h"

#define TOK_AGENT "agent-secret-0123456789"
#define TOK_INGEST "ingest-secret-0123456789"
#define TOK_ADMIN "admin-secret-0123456789"
#define TOKENS                                                                                     \
    "token = agent:" TOK_AGENT "\n"                                                                \
    "token = ingest:" TOK_INGEST "\n"                                                              \
    "token = admin:" TOK_ADMIN "\n"

static int64_t g_now; /* the demo's now, and the `at` of every compared read */

typedef struct pair {
    rp_h a; /* the live server */
    rp_h b; /* the server on the copy */
} pair;

static int pair_setup(void **state) {
    pair *p = calloc(1, sizeof *p);
    *state = p;
    return p ? 0 : -1;
}

static int pair_teardown(void **state) {
    pair *p = *state;
    if (p) {
        rp_h_cleanup(&p->b);
        rp_h_cleanup(&p->a);
    }
    free(p);
    return 0;
}

/* --- the rapport binary ------------------------------------------------------- */

/* Run rapport args... with stdout to out_path (NULL: /dev/null), stderr to
 * err_path; returns the exit status. */
static int run_rapport(const char *out_path, const char *err_path, const char *const *args) {
    return rp_run_files(NULL, out_path, err_path, NULL, args);
}

#define RAPPORT(h, ...)                                                                            \
    rapport_ok((h), (const char *const[]){__VA_ARGS__, NULL})

/* Run rapport and require exit 0 (stderr shown otherwise). */
static void rapport_ok(const rp_h *h, const char *const *args) {
    char errp[320];
    snprintf(errp, sizeof errp, "%s/rapport.err", h->dir);
    int code = run_rapport(NULL, errp, args);
    if (code != 0) {
        char *e = rp_slurp(errp, NULL);
        fprintf(stderr, "rapport %s %s: exit %d\n%s\n", args[0], args[1] ? args[1] : "", code, e);
        free(e);
    }
    assert_int_equal(code, 0);
}

/* Demo data (n customers) imported into h's server as admin. */
static void load_demo(const rp_h *h, const char *n) {
    char demo[320], errp[320], now[32];
    snprintf(demo, sizeof demo, "%s/demo.ndjson", h->dir);
    snprintf(errp, sizeof errp, "%s/demo.err", h->dir);
    snprintf(now, sizeof now, "%lld", (long long)g_now);
    assert_int_equal(run_rapport(demo, errp,
                                 (const char *const[]){"demo", "--customers", n, "--seed", "11", "--now",
                                                       now, "--events", "3-40", NULL}),
                     0);
    RAPPORT(h, "--server", h->addr, "--token", TOK_ADMIN, "import", demo);
}

/* --- clients -------------------------------------------------------------------------- */

static rp_client *as_role(const rp_h *h, const char *tok) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    rp_errbuf eb = {0};
    assert_int_equal(rp_client_auth(c, tok, NULL, &eb), RP_OK);
    return c;
}

/* The result of method(json) on c, packed into sb (the caller destroys it);
 * an error is packed as its code. */
static void answer(rp_client *c, const char *method, const char *json, msgpack_sbuffer *sb) {
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_object res;
    rp_errbuf eb = {0};
    rp_err rc = jcall(c, method, json, &res, &eb);
    msgpack_pack_int(&pk, (int)rc);
    if (rc == RP_OK) msgpack_pack_object(&pk, res);
}

static void expect_same(rp_client *a, rp_client *b, const char *method, const char *json) {
    msgpack_sbuffer x, y;
    answer(a, method, json, &x);
    answer(b, method, json, &y);
    if (x.size != y.size || memcmp(x.data, y.data, x.size) != 0)
        fprintf(stderr, "%s %s answers differently on the copy (%zu vs %zu bytes)\n", method, json,
                x.size, y.size);
    assert_int_equal(x.size, y.size);
    assert_memory_equal(x.data, y.data, x.size);
    assert_true(x.size > 1);
    msgpack_sbuffer_destroy(&x);
    msgpack_sbuffer_destroy(&y);
}

/* --- the concurrent writer ----------------------------------------------------------- */

typedef struct writer {
    const rp_h *h;
    atomic_bool stop;
    atomic_int acked;
} writer;

#define W_TS0 ((long long)g_now - 200000) /* recent: inside the age retention */

static void *writer_main(void *arg) {
    writer *w = arg;
    rp_client *c = NULL;
    rp_errbuf eb = {0};
    if (rp_client_connect(w->h->addr, 10000, &c, &eb) != RP_OK) return NULL;
    if (rp_client_auth(c, TOK_INGEST, NULL, &eb) != RP_OK) goto done;
    for (int i = 0; !atomic_load(&w->stop) && i < 100000; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"event\":{\"customer_id\":\"w-1\",\"ts\":%lld,\"channel\":\"web\","
                 "\"kind\":\"page_view\",\"summary\":\"view %d\"}}",
                 W_TS0 + i, i);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        rp_mpcheck_limits lim = rp_client_default_limits();
        if (rp_json_to_msgpack(json, strlen(json), &lim, &sb, &eb) != RP_OK) break;
        msgpack_object res;
        rp_err rc = rp_client_call(c, "event.append", sb.data, sb.size, &res, &eb);
        msgpack_sbuffer_destroy(&sb);
        if (rc != RP_OK) break;
        atomic_store(&w->acked, i + 1);
    }
done:
    rp_client_close(c);
    return NULL;
}

/* --- tests ---------------------------------------------------------------------------- */

static void test_backup_live(void **state) {
    pair *p = *state;
    assert_int_equal(rp_h_start(&p->a, TOKENS "retention_max_events = 100000\n"), 0);
    load_demo(&p->a, "120");
    rp_client *adm = as_role(&p->a, TOK_ADMIN);
    /* customer 40 duplicates customer 39: fold it in before the backup */
    ok_call(adm, "customer.merge", "{\"from\":\"c0000040\",\"into\":\"c0000039\"}");
    ok_call(adm, "customer.put", "{\"id\":\"w-1\",\"customer\":{\"name\":\"Writer\"}}");

    writer w = {.h = &p->a};
    atomic_init(&w.stop, false);
    atomic_init(&w.acked, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    long long deadline = rp_h_now_ms() + 20000;
    while (atomic_load(&w.acked) < 50 && rp_h_now_ms() < deadline) rp_h_sleep_ms(2);
    int before = atomic_load(&w.acked);
    char copy[300], json[512];
    snprintf(copy, sizeof copy, "%s/copy", p->a.dir);
    snprintf(json, sizeof json, "{\"dir\":\"%s\"}", copy);
    msgpack_object r = ok_call(adm, "backup", json);
    int after = atomic_load(&w.acked);
    /* the reply: path, bytes, duration */
    char path[420];
    snprintf(path, sizeof path, "%s/data.mdb", copy);
    assert_true(mp_is_str(mp_get(&r, "path"), path));
    assert_true(mp_is_str(mp_get(&r, "dir"), copy));
    const msgpack_object *bytes = mp_get(&r, "bytes");
    assert_non_null(bytes);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(bytes->via.u64, (uint64_t)st.st_size);
    assert_non_null(mp_get(&r, "duration_ms"));
    /* the server kept serving: the writer went on during and after */
    deadline = rp_h_now_ms() + 20000;
    while (atomic_load(&w.acked) < after + 20 && rp_h_now_ms() < deadline) rp_h_sleep_ms(2);
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    assert_true(before >= 50);
    assert_true(atomic_load(&w.acked) >= after + 20);

    /* a second rapportd on the copy */
    assert_int_equal(rp_h_init(&p->b, TOKENS "retention_max_events = 100000\n"), 0);
    snprintf(p->b.data, sizeof p->b.data, "%s", copy);
    assert_int_equal(rp_h_write_config(&p->b), 0);
    if (rp_h_launch(&p->b) != 0) rp_h_dump_log(&p->b);
    assert_int_equal(p->b.pid != 0, 1);
    rp_client *cp = as_role(&p->b, TOK_ADMIN);

    for (int i = 1; i <= 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%07d", i == 60 ? 40 : i); /* 40: the merged-away id */
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"at\":%lld}", id, (long long)g_now);
        expect_same(adm, cp, "context.get", json);
        snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
        expect_same(adm, cp, "customer.get", json);
        expect_same(adm, cp, "issue.list", json);
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"limit\":200}", id);
        expect_same(adm, cp, "history.list", json);
        /* lookup by the customer's first phone, as stored */
        snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
        msgpack_object c = ok_call(adm, "customer.get", json);
        const msgpack_object *phones = mp_get(&c, "phones");
        if (phones && phones->type == MSGPACK_OBJECT_ARRAY && phones->via.array.size > 0) {
            const msgpack_object *ph = &phones->via.array.ptr[0];
            snprintf(json, sizeof json, "{\"phone\":\"%.*s\"}", (int)ph->via.str.size, ph->via.str.ptr);
            expect_same(adm, cp, "lookup", json);
            snprintf(json, sizeof json, "{\"phone\":\"%.*s\",\"at\":%lld}", (int)ph->via.str.size,
                     ph->via.str.ptr, (long long)g_now);
            expect_same(adm, cp, "context.get", json);
        }
    }
    /* the old id answers on the copy, as the survivor */
    msgpack_object m = ok_call(cp, "customer.get", "{\"id\":\"c0000040\"}");
    assert_true(mp_is_str(mp_get(&m, "id"), "c0000039"));

    /* the writer's events on the copy: exactly its first k appends */
    msgpack_object h = ok_call(cp, "history.list", "{\"id\":\"w-1\",\"limit\":200}");
    const msgpack_object *evs = mp_get(&h, "events");
    assert_non_null(evs);
    assert_int_equal(evs->type, MSGPACK_OBJECT_ARRAY);
    uint32_t k = evs->via.array.size;
    if (k < 200) { /* a full page would need paging; k >= before is checked below */
        assert_true((int)k <= after + 1);
        for (uint32_t i = 0; i < k; i++) {
            const msgpack_object *ts = mp_get(&evs->via.array.ptr[i], "ts");
            assert_non_null(ts);
            assert_int_equal(ts->via.i64, W_TS0 + (int64_t)(k - 1 - i));
        }
    }
    assert_true((int)k >= before || k == 200);
    rp_client_close(cp);
    rp_client_close(adm);
    assert_int_equal(rp_h_stop(&p->b), 0);
    assert_int_equal(rp_h_stop(&p->a), 0);
}

/* One HTTP request; returns the status code, the body in body (cap). */
static int http_post(const rp_h *h, const char *target, const char *token, char *body, size_t cap) {
    char hdr[256];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
    rp_http_resp r = rp_http(h, "POST", target, hdr, NULL);
    assert_int_not_equal(r.status, -1);
    snprintf(body, cap, "%s", r.body);
    free(r.text);
    return r.status;
}

static void test_backup_roles(void **state) {
    pair *p = *state;
    assert_int_equal(rp_h_start(&p->a, TOKENS), 0);
    rp_client *adm = as_role(&p->a, TOK_ADMIN);
    ok_call(adm, "customer.put", "{\"id\":\"r1\",\"customer\":{\"name\":\"Rita\"}}");
    char dir[400], json[512], target[600], body[4096];
    snprintf(dir, sizeof dir, "%s/roles", p->a.dir);
    snprintf(json, sizeof json, "{\"dir\":\"%s\"}", dir);

    rp_client *c = as_role(&p->a, TOK_AGENT);
    err_call(c, "backup", json, RP_FORBIDDEN);
    rp_client_close(c);
    c = as_role(&p->a, TOK_INGEST);
    err_call(c, "backup", json, RP_FORBIDDEN);
    rp_client_close(c);
    assert_int_equal(access(dir, F_OK), -1); /* nothing was created */

    snprintf(target, sizeof target, "/v1/admin/backup?dir=%s", dir);
    assert_int_equal(http_post(&p->a, target, TOK_AGENT, body, sizeof body), 403);
    assert_int_equal(http_post(&p->a, target, TOK_INGEST, body, sizeof body), 403);
    assert_int_equal(access(dir, F_OK), -1);
    int st = http_post(&p->a, target, TOK_ADMIN, body, sizeof body);
    if (st != 200) fprintf(stderr, "%d %s\n", st, body);
    assert_int_equal(st, 200);
    assert_non_null(strstr(body, "\"bytes\":"));
    assert_non_null(strstr(body, "\"duration_ms\":"));
    assert_non_null(strstr(body, "data.mdb"));
    /* again into the same directory: 409, the copy untouched */
    assert_int_equal(http_post(&p->a, target, TOK_ADMIN, body, sizeof body), 409);
    assert_non_null(strstr(body, "CONFLICT"));
    assert_int_equal(http_post(&p->a, "/v1/admin/backup?dir=relative", TOK_ADMIN, body, sizeof body), 400);
    assert_int_equal(http_post(&p->a, "/v1/admin/backup", TOK_ADMIN, body, sizeof body), 400);
    /* RPC: the same refusals */
    err_call(adm, "backup", json, RP_CONFLICT);
    err_call(adm, "backup", "{\"dir\":\"relative/x\"}", RP_BAD_REQUEST);
    err_call(adm, "backup", "{\"dir\":42}", RP_BAD_REQUEST);
    err_call(adm, "backup", "{\"dir\":\"/tmp/x\",\"force\":true}", RP_BAD_REQUEST);
    err_call(adm, "backup", "{\"dir\":\"/no/such/parent/dir\"}", RP_NOT_FOUND);
    ok_call(adm, "ping", NULL);
    rp_client_close(adm);
    assert_int_equal(rp_h_stop(&p->a), 0);
}

static void test_backup_cli_local(void **state) {
    pair *p = *state;
    assert_int_equal(rp_h_start(&p->a, TOKENS), 0);
    load_demo(&p->a, "40");
    char local[400], remote[400], e1[400], e2[400], e3[400], errp[400];
    snprintf(local, sizeof local, "%s/local-copy", p->a.dir);
    snprintf(remote, sizeof remote, "%s/remote-copy", p->a.dir);
    snprintf(e1, sizeof e1, "%s/e1.ndjson", p->a.dir);
    snprintf(e2, sizeof e2, "%s/e2.ndjson", p->a.dir);
    snprintf(e3, sizeof e3, "%s/e3.ndjson", p->a.dir);
    snprintf(errp, sizeof errp, "%s/cli.err", p->a.dir);
    /* local mode beside the running server: read-only open, direct copy */
    RAPPORT(&p->a, "--data", p->a.data, "backup", local);
    /* server mode, admin token */
    RAPPORT(&p->a, "--server", p->a.addr, "--token", TOK_ADMIN, "backup", remote);
    /* a relative DIR through the server: usage error, exit 2 */
    assert_int_equal(run_rapport(NULL, errp, (const char *const[]){"--server", p->a.addr, "--token",
                                                                   TOK_ADMIN, "backup", "rel", NULL}),
                     2);
    /* an agent token: FORBIDDEN, exit 3 */
    snprintf(e3, sizeof e3, "%s/third", p->a.dir);
    assert_int_equal(run_rapport(NULL, errp, (const char *const[]){"--server", p->a.addr, "--token",
                                                                   TOK_AGENT, "backup", e3, NULL}),
                     3);
    char *msg = rp_slurp(errp, NULL);
    assert_non_null(strstr(msg, "FORBIDDEN"));
    free(msg);
    /* the copies export the same bytes as the server */
    RAPPORT(&p->a, "--server", p->a.addr, "--token", TOK_ADMIN, "export", e1);
    RAPPORT(&p->a, "--data", local, "export", e2);
    size_t la, lb;
    char *x = rp_slurp(e1, &la), *y = rp_slurp(e2, &lb);
    assert_true(la > 0);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    free(y);
    RAPPORT(&p->a, "--data", remote, "export", e2);
    y = rp_slurp(e2, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    free(x);
    free(y);
    assert_int_equal(rp_h_stop(&p->a), 0);
}

int main(void) {
    g_now = (int64_t)time(NULL) - 3600;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backup_live, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_backup_roles, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_backup_cli_local, pair_setup, pair_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
