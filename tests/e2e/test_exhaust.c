/* test_exhaust.c — end-to-end: a full store, on the real rapportd.
 *
 * The promise (DESIGN.md "Storage and durability"): the map grows as needed
 * up to map_max; past that writes get STORE_FULL and reads go on; an
 * operator raises map_max and restarts, and nothing written before is lost.
 *
 * test_store_full: a server with map_initial 1 MiB and map_max 4 MiB (the
 * smallest the settings allow: src/core/config.c) gets a few customers
 * with phones, events and an issue, then two client threads pipeline
 * ~2 KB customers and events into it until every write answers STORE_FULL
 * (the code, and a message naming map_max). Meanwhile and afterwards every
 * read works: customer.get, context.get by phone, route.get, lookup,
 * history.list, issue.list, stats, and the HTTP face (GET 200, PUT 507).
 * A full store survives a kill -9 (it reopens, reads work, writes are still
 * STORE_FULL), then the operator raises map_max to 16 MiB and restarts:
 * writes are accepted again and every write acknowledged before is there.
 *
 * test_write_queue_full: the other bounded write resource, the writer's
 * queue (writer_queue_max): a burst past it is refused with UNAVAILABLE at
 * once, not queued without bound, and nothing refused is stored.
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

#define MAP_SMALL 4194304
#define MAP_LARGE 16777216
#define NFILLERS 2
#define FILL_MAX 20000 /* writes per filler before giving up on "full" */
#define NEARLY 8       /* customers written before the fill */

/* --- helpers ---------------------------------------------------------------------- */

static uint64_t mp_uint(const msgpack_object *o) {
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

static uint32_t mp_len(const msgpack_object *o) {
    assert_non_null(o);
    if (o->type == MSGPACK_OBJECT_ARRAY) return o->via.array.size;
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    return o->via.map.size;
}

static void expect_has(const char *hay, const char *needle) {
    if (strstr(hay, needle) == NULL) fail_msg("expected '%s' in '%s'", needle, hay);
}

/* One HTTP/1.1 request with Connection: close; returns the status (0: no
 * answer) and the whole response in out. */
static int http(const rp_h *h, const char *method, const char *path, const char *body, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[1024];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
                     method, path, bl);
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    if (bl) assert_int_equal(send(fd, body, bl, MSG_NOSIGNAL), (ssize_t)bl);
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    out[got] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1) status = 0;
    return status;
}

/* --- the fillers -------------------------------------------------------------------- */

typedef struct filler {
    const rp_h *h;
    int index;
    atomic_bool *go;
    int acked_puts;     /* customers f<index>-<k> for k < acked_puts... */
    char *put_ok;       /* [FILL_MAX]: write k was a put and was acknowledged */
    int acked_events;   /* events on customer f<index>-0, summaries e<k> */
    char *event_ok;     /* [FILL_MAX]: write k was an event and was acknowledged */
    int full_replies;
    int other_errors;
    char full_msg[RP_ERRMSG_MAX];
    char other_msg[RP_ERRMSG_MAX + 64];
} filler;

/* Write k of filler f: even k a ~2 KB customer, odd k an event on the
 * filler's first customer (created by write 0). */
static void filler_pack(const filler *f, int k, msgpack_sbuffer *sb, const char **method) {
    char js[4096];
    if (k % 2 == 0) {
        char note[241];
        memset(note, 'a' + (char)(k % 26), 240);
        note[240] = '\0';
        snprintf(js, sizeof js,
                 "{\"id\":\"f%d-%d\",\"customer\":{\"name\":\"Filler %d %d\",\"tier\":\"standard\",\"rapport_notes\":"
                 "[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"]}}",
                 f->index, k, f->index, k, note, note, note, note, note, note, note, note);
        *method = "customer.put";
    } else {
        snprintf(js, sizeof js,
                 "{\"event\":{\"customer_id\":\"f%d-0\",\"ts\":%lld,\"channel\":\"web\",\"kind\":\"page_view\","
                 "\"summary\":\"e%d %0200d\"}}",
                 f->index, (long long)time(NULL), k, k);
        *method = "event.append";
    }
    json_params(js, sb);
}

/* Record the answer to write k. */
static void filler_note(filler *f, int k, const rp_client_reply *r) {
    if (r->rc == RP_OK) {
        if (k % 2 == 0) {
            f->put_ok[k] = 1;
            f->acked_puts++;
        } else {
            f->event_ok[k] = 1;
            f->acked_events++;
        }
    } else if (r->rc == RP_STORE_FULL) {
        if (f->full_replies++ == 0) snprintf(f->full_msg, sizeof f->full_msg, "%s", r->message);
    } else if (f->other_errors++ == 0) {
        snprintf(f->other_msg, sizeof f->other_msg, "write %d: %s: %s", k, rp_err_code(r->rc), r->message);
    }
}

/* Write 0 (the customer the events go to) alone, then pipeline writes with
 * 16 in flight until 64 answers in a row are STORE_FULL. */
static void *filler_main(void *p) {
    filler *f = p;
    rp_client *c = rp_h_connect(f->h);
    if (c == NULL) return NULL;
    while (!atomic_load(f->go)) rp_h_sleep_ms(1);
    int sent = 0, answered = 0, full_run = 0;
    while (answered < FILL_MAX && full_run < 64) {
        unsigned window = sent == 0 || answered == 0 ? 1u : 16u;
        while (sent < FILL_MAX && rp_client_pending(c) < window) {
            msgpack_sbuffer sb;
            const char *method;
            filler_pack(f, sent, &sb, &method);
            rp_err rc = rp_client_send(c, method, sb.data, sb.size, NULL, NULL);
            msgpack_sbuffer_destroy(&sb);
            if (rc != RP_OK) goto out;
            sent++;
        }
        if (rp_client_pending(c) == 0) break;
        rp_client_reply r;
        if (rp_client_recv(c, &r, NULL) != RP_OK) break;
        filler_note(f, answered, &r);
        full_run = r.rc == RP_STORE_FULL ? full_run + 1 : 0;
        answered++;
    }
out:
    /* collect what is still owed */
    while (rp_client_pending(c) > 0) {
        rp_client_reply r;
        if (rp_client_recv(c, &r, NULL) != RP_OK) break;
        filler_note(f, answered++, &r);
    }
    rp_client_close(c);
    return NULL;
}

/* --- checks -------------------------------------------------------------------------- */

/* The customers written before the fill, with what reads need. */
static void write_early(rp_client *c) {
    long long now = (long long)time(NULL);
    char js[1024];
    for (int i = 0; i < NEARLY; i++) {
        snprintf(js, sizeof js,
                 "{\"id\":\"early-%d\",\"customer\":{\"name\":\"Early Bird %d\",\"language\":\"es\",\"tier\":\"gold\","
                 "\"phones\":[\"+1 415 555 %04d\"],\"emails\":[\"early%d@example.com\"]}}",
                 i, i, 1000 + i, i);
        ok_call(c, "customer.put", js);
        snprintf(js, sizeof js,
                 "{\"event\":{\"customer_id\":\"early-%d\",\"ts\":%lld,\"channel\":\"phone\",\"kind\":\"contact\","
                 "\"topic\":\"billing\",\"summary\":\"called about a double charge\",\"outcome\":\"unresolved\"}}",
                 i, now - 3600);
        ok_call(c, "event.append", js);
        snprintf(js, sizeof js,
                 "{\"issue\":{\"customer_id\":\"early-%d\",\"issue_id\":\"INC-%d\",\"topic\":\"billing\","
                 "\"status\":\"open\",\"summary\":\"double charge\",\"follow_up_due\":%lld}}",
                 i, i, now - 60);
        ok_call(c, "issue.put", js);
    }
}

/* Every kind of read answers, with the early data. */
static void check_reads(const rp_h *h) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    char js[256];
    for (int i = 0; i < NEARLY; i++) {
        char name[64], id[32];
        snprintf(id, sizeof id, "early-%d", i);
        snprintf(name, sizeof name, "Early Bird %d", i);
        snprintf(js, sizeof js, "{\"id\":\"%s\"}", id);
        msgpack_object r = ok_call(c, "customer.get", js);
        assert_true(mp_is_str(mp_get(&r, "name"), name));
        snprintf(js, sizeof js, "{\"phone\":\"(415) 555-%04d\"}", 1000 + i);
        r = ok_call(c, "context.get", js);
        assert_true(mp_is_true(mp_get(&r, "found")));
        assert_true(mp_is_str(mp_get(mp_get(&r, "customer"), "id"), id));
        assert_true(mp_len(mp_get(&r, "likely_reasons")) >= 1);
        r = ok_call(c, "route.get", js);
        assert_true(mp_is_str(mp_get(&r, "customer_id"), id));
        snprintf(js, sizeof js, "{\"email\":\"EARLY%d@example.com\"}", i);
        r = ok_call(c, "lookup", js);
        assert_true(mp_is_true(mp_get(&r, "found")));
        snprintf(js, sizeof js, "{\"id\":\"%s\"}", id);
        r = ok_call(c, "history.list", js);
        assert_true(mp_len(mp_get(&r, "events")) >= 1);
        r = ok_call(c, "issue.list", js);
        assert_int_equal(mp_len(mp_get(&r, "issues")), 1);
    }
    ok_call(c, "stats", NULL);
    rp_client_close(c);
    char out[65536];
    assert_int_equal(http(h, "GET", "/v1/customers/early-0", NULL, out, sizeof out), 200);
    expect_has(out, "\"name\":\"Early Bird 0\"");
    assert_int_equal(http(h, "GET", "/v1/context?phone=%2B14155551001", NULL, out, sizeof out), 200);
    expect_has(out, "\"found\":true");
}

/* Tiny customers s0..s<squeezed_n - 1> written after the fillers, some of
 * them acknowledged (a failed one in between is not; see the test). */
static int squeezed_n;
static char squeezed_ok[5000];

/* The members of a customer that cannot fit in pages a full store has left
 * over by chance: 64 preferences of 250 bytes (some 17 KB: a run of
 * contiguous overflow pages, where the tiny writes that failed before it
 * needed two or three single pages). Without braces, into out. */
static void big_profile(char *out, size_t cap, const char *name) {
    int n = snprintf(out, cap, "\"name\":\"%s\",\"preferences\":{", name);
    for (int i = 0; i < 64 && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%s\"k%02d\":\"%0250d\"", i ? "," : "", i, i);
    assert_true(n > 0 && (size_t)n + 2 < cap);
    snprintf(out + n, cap - (size_t)n, "}");
}

/* Squeeze tiny customers s<k> into the store until 16 in a row are refused
 * with STORE_FULL: "full" as a client sees it. Pages freed by earlier
 * commits become reusable once no reader holds their snapshot, so a store
 * that was full can take a small write again later; a check that needs a
 * full store calls this first. Continues the numbering of earlier calls;
 * returns how many were acknowledged in this call. */
static int squeeze_next;
static int squeeze_until_full(rp_client *c) {
    char js[128];
    int acked = 0, full_run = 0;
    while (squeeze_next < (int)sizeof squeezed_ok && full_run < 16) {
        int k = squeeze_next++;
        snprintf(js, sizeof js, "{\"id\":\"s%d\",\"customer\":{\"name\":\"S%d\"}}", k, k);
        rp_errbuf eb = {0};
        rp_err rc = jcall(c, "customer.put", js, NULL, &eb);
        if (rc == RP_OK) {
            squeezed_ok[k] = 1;
            squeezed_n = k + 1;
            acked++;
            full_run = 0;
        } else {
            if (rc != RP_STORE_FULL) fail_msg("squeeze write %d: %s: %s", k, rp_err_code(rc), eb.msg);
            full_run++;
        }
    }
    assert_int_equal(full_run, 16);
    return acked;
}

/* Every write the fillers saw acknowledged is there. Returns the count. */
static size_t check_acked(const rp_h *h, filler *fs) {
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    size_t checked = 0;
    for (int t = 0; t < NFILLERS; t++) {
        filler *f = &fs[t];
        /* customers: pipelined gets, in windows */
        int k = 0;
        while (k < FILL_MAX) {
            int ks[128], n = 0;
            for (; k < FILL_MAX && n < 128; k++) {
                if (!f->put_ok[k]) continue;
                char js[64];
                snprintf(js, sizeof js, "{\"id\":\"f%d-%d\"}", t, k);
                msgpack_sbuffer sb;
                json_params(js, &sb);
                assert_int_equal(rp_client_send(c, "customer.get", sb.data, sb.size, NULL, NULL), RP_OK);
                msgpack_sbuffer_destroy(&sb);
                ks[n++] = k;
            }
            for (int j = 0; j < n; j++) {
                rp_client_reply r;
                assert_int_equal(rp_client_recv(c, &r, NULL), RP_OK);
                char name[64];
                snprintf(name, sizeof name, "Filler %d %d", t, ks[j]);
                if (r.rc != RP_OK || !mp_is_str(mp_get(&r.result, "name"), name))
                    fail_msg("acknowledged customer f%d-%d is missing (%s)", t, ks[j], rp_err_code(r.rc));
                checked++;
            }
        }
        /* events: page through the history of f<t>-0 */
        char *seen = calloc(FILL_MAX, 1);
        assert_non_null(seen);
        char cursor[96] = "";
        for (;;) {
            char js[192];
            if (cursor[0]) snprintf(js, sizeof js, "{\"id\":\"f%d-0\",\"limit\":200,\"before\":\"%s\"}", t, cursor);
            else snprintf(js, sizeof js, "{\"id\":\"f%d-0\",\"limit\":200}", t);
            msgpack_object r = ok_call(c, "history.list", js);
            const msgpack_object *evs = mp_get(&r, "events");
            for (uint32_t e = 0; e < mp_len(evs); e++) {
                const msgpack_object *s = mp_get(&evs->via.array.ptr[e], "summary");
                assert_non_null(s);
                int n = -1;
                char tmp[48];
                snprintf(tmp, sizeof tmp, "%.*s", (int)(s->via.str.size < 40 ? s->via.str.size : 40), s->via.str.ptr);
                assert_int_equal(sscanf(tmp, "e%d", &n), 1);
                if (n >= 0 && n < FILL_MAX) seen[n] = 1;
            }
            const msgpack_object *next = mp_get(&r, "next");
            if (next == NULL || next->type != MSGPACK_OBJECT_STR) break;
            snprintf(cursor, sizeof cursor, "%.*s", (int)next->via.str.size, next->via.str.ptr);
        }
        for (int e = 0; e < FILL_MAX; e++) {
            if (!f->event_ok[e]) continue;
            if (!seen[e]) fail_msg("acknowledged event e%d of f%d-0 is missing", e, t);
            checked++;
        }
        free(seen);
    }
    for (int k = 0; k < squeezed_n; k++) {
        if (!squeezed_ok[k]) continue;
        char js[64], name[16];
        snprintf(js, sizeof js, "{\"id\":\"s%d\"}", k);
        snprintf(name, sizeof name, "S%d", k);
        msgpack_object r = ok_call(c, "customer.get", js);
        assert_true(mp_is_str(mp_get(&r, "name"), name));
        checked++;
    }
    rp_client_close(c);
    return checked;
}

static void set_map_max(rp_h *h, uint64_t map_max) {
    snprintf(h->extra, sizeof h->extra,
             "durability = sync\nmap_initial = 1048576\nmap_max = %llu\nretention_max_events = 1000000\n",
             (unsigned long long)map_max);
    assert_int_equal(rp_h_write_config(h), 0);
}

/* --- the test ------------------------------------------------------------------------ */

static void test_store_full(void **state) {
    rp_h *h = *state;
    char conf[256];
    snprintf(conf, sizeof conf, "durability = sync\nmap_initial = 1048576\nmap_max = %d\nretention_max_events = 1000000\n",
             MAP_SMALL);
    assert_int_equal(rp_h_start(h, conf), 0);
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    write_early(c);

    /* fill it, from two connections at once */
    atomic_bool go = false;
    filler fs[NFILLERS];
    pthread_t th[NFILLERS];
    for (int t = 0; t < NFILLERS; t++) {
        fs[t] = (filler){.h = h, .index = t, .go = &go};
        fs[t].put_ok = calloc(FILL_MAX, 1);
        fs[t].event_ok = calloc(FILL_MAX, 1);
        assert_non_null(fs[t].put_ok);
        assert_non_null(fs[t].event_ok);
        assert_int_equal(pthread_create(&th[t], NULL, filler_main, &fs[t]), 0);
    }
    long long t0 = rp_h_now_ms();
    char js[1024];
    atomic_store(&go, true);
    /* reads go on while the writers run into the wall */
    int reads = 0;
    for (;;) {
        bool running = false;
        for (int t = 0; t < NFILLERS; t++) running |= fs[t].full_replies < 64 && fs[t].other_errors == 0;
        if (!running || rp_h_now_ms() - t0 > 60000) break;
        msgpack_object r = ok_call(c, "customer.get", "{\"id\":\"early-0\"}");
        assert_true(mp_is_str(mp_get(&r, "name"), "Early Bird 0"));
        reads++;
        rp_h_sleep_ms(5);
    }
    for (int t = 0; t < NFILLERS; t++) pthread_join(th[t], NULL);
    int puts = 0, events = 0;
    for (int t = 0; t < NFILLERS; t++) {
        fprintf(stderr, "  filler %d: %d customers and %d events acknowledged, %d STORE_FULL, %d other errors%s%s\n", t,
                fs[t].acked_puts, fs[t].acked_events, fs[t].full_replies, fs[t].other_errors,
                fs[t].other_errors ? ": " : "", fs[t].other_msg);
        assert_int_equal(fs[t].other_errors, 0);
        assert_true(fs[t].full_replies > 0);
        assert_true(fs[t].acked_puts > 10);
        puts += fs[t].acked_puts;
        events += fs[t].acked_events;
    }
    fprintf(stderr, "  store full after %lld ms: %d customers, %d events; %d reads served meanwhile\n",
            rp_h_now_ms() - t0, puts, events, reads);
    fprintf(stderr, "  STORE_FULL message: %s\n", fs[0].full_msg);
    expect_has(fs[0].full_msg, "full");
    expect_has(fs[0].full_msg, "4194304");

    /* Smaller writes may still find a page; squeeze in tiny customers until
     * those fail too (kept, and checked after the restarts). */
    int squeezed = squeeze_until_full(c);
    fprintf(stderr, "  %d tiny customers squeezed in after the fillers stopped\n", squeezed);

    /* full: each kind of write says STORE_FULL (RPC) / 507 (HTTP) ... */
    static char big[24 * 1024], req[64 * 1024];
    big_profile(big, sizeof big, "Too Late");
    snprintf(req, sizeof req, "{\"id\":\"late\",\"customer\":{%s}}", big);
    const char *msg = err_call(c, "customer.put", req, RP_STORE_FULL);
    expect_has(msg, "map_max");
    snprintf(req, sizeof req,
             "{\"records\":[{\"type\":\"customer\",\"id\":\"late-import\",%s},"
             "{\"type\":\"customer\",\"id\":\"late-import-2\",%s}]}",
             big, big);
    err_call(c, "import", req, RP_STORE_FULL);
    msgpack_object r = ok_call(c, "stats", NULL);
    fprintf(stderr, "  stats when full: map_size %llu, map_used %llu, map_max %llu\n",
            (unsigned long long)mp_uint(mp_get(&r, "map_size")), (unsigned long long)mp_uint(mp_get(&r, "map_used")),
            (unsigned long long)mp_uint(mp_get(&r, "map_max")));
    assert_int_equal(mp_uint(mp_get(&r, "map_max")), MAP_SMALL);
    assert_int_equal(mp_uint(mp_get(&r, "map_size")), MAP_SMALL);
    char out[65536];
    squeeze_until_full(c); /* the reads above may have released pages */
    snprintf(req, sizeof req, "{%s}", big);
    int st = http(h, "PUT", "/v1/customers/late-http", req, out, sizeof out);
    if (st != 507) fprintf(stderr, "PUT when full: %s\n", out);
    assert_int_equal(st, 507);
    expect_has(out, "\"code\":\"STORE_FULL\"");
    /* ... and every read goes on */
    check_reads(h);
    /* A privacy erasure on a full store: deleting needs fresh pages too
     * (copy-on-write), so it may be refused with STORE_FULL like any write;
     * it must not fail in any other way, and must leave no half-done state. */
    {
        rp_errbuf eb = {0};
        rp_err rc = jcall(c, "customer.forget", "{\"id\":\"f0-2\"}", NULL, &eb);
        fprintf(stderr, "  customer.forget on the full store: %s%s%s\n", rp_err_code(rc), rc ? ": " : "", eb.msg);
        assert_true(rc == RP_OK || rc == RP_STORE_FULL);
        rp_err get = jcall(c, "customer.get", "{\"id\":\"f0-2\"}", NULL, &eb);
        assert_int_equal(get, rc == RP_OK ? RP_NOT_FOUND : RP_OK);
        if (rc == RP_OK && fs[0].put_ok[2]) {
            fs[0].put_ok[2] = 0;
            fs[0].acked_puts--;
            puts--;
        }
    }
    rp_client_close(c);

    /* a crash while full: it reopens, reads work, writes still refused */
    rp_h_kill9(h);
    assert_int_equal(rp_h_restart(h), 0);
    check_reads(h);
    c = rp_h_connect(h);
    assert_non_null(c);
    big_profile(big, sizeof big, "Still Too Late");
    snprintf(req, sizeof req, "{\"id\":\"late\",\"customer\":{%s}}", big);
    err_call(c, "customer.put", req, RP_STORE_FULL);
    rp_client_close(c);
    size_t checked = check_acked(h, fs);
    fprintf(stderr, "  after kill -9 while full: %zu acknowledged writes all present\n", checked);

    /* the operator raises map_max and restarts */
    assert_int_equal(rp_h_stop(h), 0);
    set_map_max(h, MAP_LARGE);
    assert_int_equal(rp_h_restart(h), 0);
    c = rp_h_connect(h);
    assert_non_null(c);
    r = ok_call(c, "customer.put", "{\"id\":\"late\",\"customer\":{\"name\":\"Welcome Back\"}}");
    assert_int_equal(mp_uint(mp_get(&r, "version")), 1);
    snprintf(js, sizeof js,
             "{\"event\":{\"customer_id\":\"early-0\",\"ts\":%lld,\"channel\":\"chat\",\"kind\":\"contact\"}}",
             (long long)time(NULL));
    ok_call(c, "event.append", js);
    for (int i = 0; i < 200; i++) { /* room for real work again: ~400 KB more */
        snprintf(js, sizeof js, "{\"id\":\"after-%d\",\"customer\":{\"name\":\"%0250d\",\"tier\":\"%0250d\"}}", i, i, i);
        ok_call(c, "customer.put", js);
    }
    r = ok_call(c, "stats", NULL);
    assert_int_equal(mp_uint(mp_get(&r, "map_max")), MAP_LARGE);
    int squeezed_acked = 0;
    for (int k = 0; k < squeezed_n; k++) squeezed_acked += squeezed_ok[k];
    assert_int_equal(mp_uint(mp_get(&r, "customers")), (uint64_t)(NEARLY + puts + squeezed_acked + 1 + 200));
    rp_client_close(c);
    assert_int_equal(http(h, "PUT", "/v1/customers/late-http", "{\"name\":\"Welcome Back\"}", out, sizeof out), 200);
    check_reads(h);
    checked = check_acked(h, fs);
    fprintf(stderr, "  after raising map_max to %d: writes accepted, %zu earlier acknowledged writes present\n",
            MAP_LARGE, checked);
    for (int t = 0; t < NFILLERS; t++) {
        free(fs[t].put_ok);
        free(fs[t].event_ok);
    }
    int rc = rp_h_stop(h);
    if (rc != 0) rp_h_dump_log(h);
    assert_int_equal(rc, 0);
}

/* A write queue that overflows: with writer_queue_max = 2 and 8 clients
 * pipelining 32 writes each, some writes are refused at once with
 * UNAVAILABLE ("retry") rather than queued without bound; the server stays
 * up and serves reads, every acknowledged write is stored, no refused one
 * is, and once the burst is over writes go through again. */
typedef struct burst {
    const rp_h *h;
    int index;
    atomic_bool *go;
    char state[32]; /* per write: 'a' acknowledged, 'u' UNAVAILABLE */
    int other;
    char msg[RP_ERRMSG_MAX];
} burst;

static void *burst_main(void *p) {
    burst *b = p;
    rp_client *c = rp_h_connect(b->h);
    if (c == NULL) return NULL;
    while (!atomic_load(b->go)) rp_h_sleep_ms(1);
    for (int k = 0; k < 32; k++) {
        char js[128];
        snprintf(js, sizeof js, "{\"id\":\"q%d-%d\",\"customer\":{\"name\":\"Q\"}}", b->index, k);
        msgpack_sbuffer sb;
        json_params(js, &sb);
        rp_client_send(c, "customer.put", sb.data, sb.size, NULL, NULL);
        msgpack_sbuffer_destroy(&sb);
    }
    for (int k = 0; k < 32; k++) {
        rp_client_reply r;
        if (rp_client_recv(c, &r, NULL) != RP_OK) break;
        if (r.rc == RP_OK) b->state[k] = 'a';
        else if (r.rc == RP_UNAVAILABLE) {
            b->state[k] = 'u';
            snprintf(b->msg, sizeof b->msg, "%s", r.message);
        } else b->other++;
    }
    rp_client_close(c);
    return NULL;
}

static void test_write_queue_full(void **state) {
    rp_h *h = *state;
    assert_int_equal(rp_h_start(h, "http =\ndurability = sync\nwriter_queue_max = 2\n"), 0);
    enum { N = 8 };
    burst bs[N];
    pthread_t th[N];
    atomic_bool go = false;
    for (int i = 0; i < N; i++) {
        bs[i] = (burst){.h = h, .index = i, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, burst_main, &bs[i]), 0);
    }
    rp_h_sleep_ms(50);
    atomic_store(&go, true);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    int acked = 0, refused = 0;
    const char *msg = "";
    for (int i = 0; i < N; i++) {
        assert_int_equal(bs[i].other, 0);
        for (int k = 0; k < 32; k++) {
            acked += bs[i].state[k] == 'a';
            refused += bs[i].state[k] == 'u';
        }
        if (bs[i].msg[0]) msg = bs[i].msg;
    }
    fprintf(stderr, "  write queue of 2, 8 x 32 pipelined writes: %d acknowledged, %d UNAVAILABLE (\"%s\")\n", acked,
            refused, msg);
    assert_int_equal(acked + refused, N * 32);
    assert_true(refused > 0);
    assert_true(acked > 0);
    expect_has(msg, "retry");
    rp_client *c = rp_h_connect(h);
    assert_non_null(c);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 32; k++) {
            char js[64];
            snprintf(js, sizeof js, "{\"id\":\"q%d-%d\"}", i, k);
            rp_errbuf eb = {0};
            rp_err rc = jcall(c, "customer.get", js, NULL, &eb);
            assert_int_equal(rc, bs[i].state[k] == 'a' ? RP_OK : RP_NOT_FOUND);
        }
    ok_call(c, "customer.put", "{\"id\":\"after\",\"customer\":{\"name\":\"Calm Again\"}}");
    msgpack_object r = ok_call(c, "stats", NULL);
    assert_int_equal(mp_uint(mp_get(&r, "customers")), (uint64_t)acked + 1);
    rp_client_close(c);
    assert_int_equal(rp_h_stop(h), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_full, rp_h_setup, rp_h_teardown),
        cmocka_unit_test_setup_teardown(test_write_queue_full, rp_h_setup, rp_h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
