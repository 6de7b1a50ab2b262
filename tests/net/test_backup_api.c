/* test_backup_api.c — the api's `backup` operation: one at a time.
 *
 * A first backup is held inside its thread (the test takes the store's map
 * lock for writing, so the copy's rp_store_rbegin waits); a second call
 * meanwhile answers UNAVAILABLE at once, on the caller's thread; once the
 * lock is released the first one replies from its own thread with dir,
 * path, bytes and duration_ms, and a third one may run. Roles: only admin.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "model/codec.h"
#include "store/store.h"
#include "store/store_int.h"

typedef struct reply {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool inline_call;
    pthread_t caller;
    rp_err rc;
    char msg[RP_ERRMSG_MAX];
    char path[512];
} reply;

static void on_reply(void *arg, rp_err rc, const char *msg, const char *result, size_t len) {
    reply *r = arg;
    pthread_mutex_lock(&r->mu);
    r->rc = rc;
    r->inline_call = pthread_equal(pthread_self(), r->caller);
    if (msg) snprintf(r->msg, sizeof r->msg, "%s", msg);
    if (rc == RP_OK) {
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        msgpack_object o;
        assert_int_equal(msgpack_unpack(result, len, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *p = rp_mp_get(&o, "path");
        assert_non_null(p);
        snprintf(r->path, sizeof r->path, "%.*s", (int)p->via.str.size, p->via.str.ptr);
        assert_non_null(rp_mp_get(&o, "bytes"));
        assert_non_null(rp_mp_get(&o, "duration_ms"));
        msgpack_zone_destroy(&z);
    }
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void call(rp_api *api, rp_role role, const char *dir, reply *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->caller = pthread_self();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    rp_mp_pack_cstr(&pk, "dir");
    rp_mp_pack_cstr(&pk, dir);
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    msgpack_object o;
    assert_int_equal(msgpack_unpack(sb.data, sb.size, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
    rp_api_call(api, rp_api_find("backup", 6), role, "t", &o, on_reply, r);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

static void wait_reply(reply *r) {
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

/* A store in a fresh directory root (a "/tmp/rp_bkapi_XXXXXX" buffer,
 * filled in) with an api over it; audit lines go to /dev/null. */
static void open_api(char root[64], rp_store **s, rp_api **api) {
    assert_non_null(mkdtemp(root));
    rp_config cfg;
    rp_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", root);
    cfg.map_initial = 1u << 20;
    cfg.map_max = 64u << 20;
    snprintf(cfg.audit_log, sizeof cfg.audit_log, "/dev/null");
    rp_errbuf eb = {0};
    assert_int_equal(rp_store_open(&cfg, s, &eb), RP_OK);
    assert_int_equal(rp_api_create(*s, api, &eb), RP_OK);
}

static void test_one_at_a_time(void **state) {
    (void)state;
    char root[64] = "/tmp/rp_bkapi_XXXXXX";
    rp_store *s;
    rp_api *api;
    open_api(root, &s, &api);
    char d1[128], d2[128], d3[128];
    snprintf(d1, sizeof d1, "%s/b1", root);
    snprintf(d2, sizeof d2, "%s/b2", root);
    snprintf(d3, sizeof d3, "%s/b3", root);

    reply r1, r2, r3;
    call(api, RP_ROLE_AGENT, d1, &r1); /* not admin: refused inline */
    assert_true(r1.done && r1.inline_call);
    assert_int_equal(r1.rc, RP_FORBIDDEN);
    call(api, RP_ROLE_INGEST, d1, &r1);
    assert_int_equal(r1.rc, RP_FORBIDDEN);

    pthread_rwlock_wrlock(&s->map_lock); /* hold the first copy in rbegin */
    call(api, RP_ROLE_ADMIN, d1, &r1);
    call(api, RP_ROLE_ADMIN, d2, &r2);
    assert_true(r2.done && r2.inline_call);
    assert_int_equal(r2.rc, RP_UNAVAILABLE);
    assert_non_null(strstr(r2.msg, "already running"));
    usleep(20000);
    assert_false(r1.done); /* still waiting for the lock */
    pthread_rwlock_unlock(&s->map_lock);
    wait_reply(&r1);
    if (r1.rc != RP_OK) fprintf(stderr, "backup: %s\n", r1.msg);
    assert_int_equal(r1.rc, RP_OK);
    assert_false(r1.inline_call); /* from the backup's own thread */
    char want[160];
    snprintf(want, sizeof want, "%s/data.mdb", d1);
    assert_string_equal(r1.path, want);
    assert_int_equal(access(d2, F_OK), -1);

    call(api, RP_ROLE_ADMIN, d3, &r3); /* the flag was cleared: runs */
    wait_reply(&r3);
    assert_int_equal(r3.rc, RP_OK);

    rp_api_destroy(api);
    rp_store_close(s);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Shutdown while a backup copies: rp_api_destroy waits for the backup
 * thread, which replies first; only then may the api and the store go. */
typedef struct destroyer {
    rp_api *api;
    const reply *r;
    bool replied_before_return; /* r->done when rp_api_destroy returned */
} destroyer;

static void *destroy_main(void *arg) {
    destroyer *d = arg;
    rp_api_destroy(d->api);
    pthread_mutex_lock((pthread_mutex_t *)&d->r->mu);
    d->replied_before_return = d->r->done;
    pthread_mutex_unlock((pthread_mutex_t *)&d->r->mu);
    return NULL;
}

static void test_destroy_waits_for_backup(void **state) {
    (void)state;
    char root[64] = "/tmp/rp_bkapi_XXXXXX";
    rp_store *s;
    rp_api *api;
    open_api(root, &s, &api);
    char d1[128];
    snprintf(d1, sizeof d1, "%s/b1", root);
    reply r1;
    pthread_rwlock_wrlock(&s->map_lock); /* hold the copy in rbegin */
    call(api, RP_ROLE_ADMIN, d1, &r1);
    assert_false(r1.done);
    destroyer d = {.api = api, .r = &r1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, destroy_main, &d), 0);
    pthread_rwlock_unlock(&s->map_lock);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(d.replied_before_return);
    assert_int_equal(r1.rc, RP_OK);
    char want[160];
    snprintf(want, sizeof want, "%s/data.mdb", d1);
    assert_int_equal(access(want, F_OK), 0);
    rp_store_close(s);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_one_at_a_time),
                                       cmocka_unit_test(test_destroy_waits_for_backup)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
