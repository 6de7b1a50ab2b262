/* ops_admin.c — admin operations: backup and backtest, both "admin jobs".
 *
 * backup {dir} copies the live store into dir (store/backup.h: an absolute
 * path that does not exist yet or an empty directory; written as
 * data.mdb.partial, fsynced, renamed to data.mdb). Admin role only (the op
 * table says so).
 *
 * Threading. A backup reads the whole store and writes a copy: seconds per
 * GiB. It must not run on the worker thread that received it, whose event
 * loop serves many other connections, so the handler only checks the
 * params and starts a dedicated, detached thread for the copy; that thread
 * replies, exactly like the writer thread replies to writes (the table row
 * is marked `write` for that reason: the HTTP face then keeps the call on
 * the heap and the reply is posted back to the connection's loop).
 *
 * One backup at a time, per process: a second call while one runs answers
 * UNAVAILABLE "a backup is already running" at once. The flag is cleared
 * before the reply is sent, so a client may start the next backup as soon
 * as it has the answer.
 *
 * Shutdown: rapportd waits for requests in flight (a running backup is one)
 * for up to 60 s, then rp_api_destroy waits (rp_api_admin_wait) for a
 * backup thread still running, however long the copy takes, before the api
 * and the store are freed: a backup is finished, never cut off (a process
 * killed meanwhile leaves only data.mdb.partial, which never looks valid).
 *
 * Result map: dir, path (dir/data.mdb), bytes, duration_ms.
 *
 * backtest {since, until, sample, seed, threads} runs the context engine's
 * backtest (context/backtest.h) over the served store and answers the
 * report map that `rapport backtest --json` prints. Like a backup it reads
 * the whole store, so it runs the same way: a dedicated thread that
 * replies, one backtest at a time (UNAVAILABLE "a backtest is already
 * running" otherwise; a backup and a backtest may run side by side), and
 * rp_api_destroy waits for it. Admin only; the reply shows aggregates
 * only, but every contact was read, so each run writes one audit line
 * ("customer=- customers=N aggregate=true").
 *
 * Both jobs share admin_job_start / admin_job_done and the wait
 * (rp_api_admin_wait).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/ops.h"
#include "context/backtest.h"
#include "model/codec.h"
#include "store/backup.h"

/* The heap request a backup thread owns. */
typedef struct admin_backup {
    rp_api_req rq;          /* reply context (values only) */
    char dir[RP_PATH_MAX];  /* NUL-terminated copy of params.dir */
} admin_backup;

static atomic_bool admin_backup_running = false;

/* Admin jobs (backup, backtest) not finished yet (their reply may still be
 * on its way): rp_api_destroy waits for them (rp_api_admin_wait), so that a
 * job running at shutdown finishes (and replies) before the api and the
 * store it reads are freed. */
static pthread_mutex_t admin_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t admin_cv = PTHREAD_COND_INITIALIZER;
static unsigned admin_threads;

static void admin_threads_add(int d) {
    pthread_mutex_lock(&admin_mu);
    admin_threads = (unsigned)((int)admin_threads + d);
    if (admin_threads == 0) pthread_cond_broadcast(&admin_cv);
    pthread_mutex_unlock(&admin_mu);
}

void rp_api_admin_wait(void) {
    pthread_mutex_lock(&admin_mu);
    while (admin_threads > 0) pthread_cond_wait(&admin_cv, &admin_mu);
    pthread_mutex_unlock(&admin_mu);
}

/* Start fn(arg) on a dedicated, detached thread counted by
 * rp_api_admin_wait; fn must call admin_job_done() last, after its reply.
 * Returns 0 or the pthread error (then nothing runs and nothing is
 * counted). */
static int admin_job_start(void *(*fn)(void *), void *arg) {
    pthread_attr_t attr;
    pthread_t tid;
    admin_threads_add(1);
    int e = pthread_attr_init(&attr);
    if (e == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        e = pthread_create(&tid, &attr, fn, arg);
        pthread_attr_destroy(&attr);
    }
    if (e != 0) admin_threads_add(-1);
    return e;
}

static void admin_job_done(void) { admin_threads_add(-1); }

/* The dedicated thread: copy, clear the flag, reply, free. */
static void *admin_backup_main(void *arg) {
    admin_backup *b = arg;
    rp_backup_info info;
    rp_errbuf eb = {0};
    rp_err rc = rp_store_backup(rp_api_store(b->rq.api), b->dir, &info, &eb);
    atomic_store(&admin_backup_running, false);
    if (rc != RP_OK) {
        rp_api_fail_rc(&b->rq, rc, &eb);
        free(b);
        admin_job_done();
        return NULL;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    rp_api_kv_str(&pk, "dir", rp_str_c(info.dir));
    rp_api_kv_str(&pk, "path", rp_str_c(info.path));
    rp_api_kv_uint(&pk, "bytes", info.bytes);
    rp_api_kv_uint(&pk, "duration_ms", info.duration_ms);
    if (sb.data == NULL) rp_api_fail(&b->rq, RP_UNAVAILABLE, "out of memory packing the reply");
    else rp_api_ok(&b->rq, &sb);
    msgpack_sbuffer_destroy(&sb);
    free(b);
    admin_job_done();
    return NULL;
}

void rp_op_backup(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"dir", NULL};
    rp_errbuf eb = {0};
    rp_err rc = rp_api_check_keys(params, keys, &eb);
    if (rc != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    const msgpack_object *v = rp_mp_get(params, "dir");
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
        rp_api_fail(rq, RP_BAD_REQUEST, "missing parameter 'dir' (an absolute path on the server)");
        return;
    }
    if (v->type != MSGPACK_OBJECT_STR) {
        rp_errf(&eb, RP_BAD_REQUEST, "parameter 'dir' must be a string (got %s)", rp_mp_type_name(v));
        rp_api_fail_rc(rq, RP_BAD_REQUEST, &eb);
        return;
    }
    size_t n = v->via.str.size;
    if (n == 0 || n >= RP_PATH_MAX || memchr(v->via.str.ptr, '\0', n) != NULL) {
        rp_errf(&eb, RP_BAD_REQUEST, "parameter 'dir' must be a path of 1..%d bytes without NUL",
                RP_PATH_MAX - 1);
        rp_api_fail_rc(rq, RP_BAD_REQUEST, &eb);
        return;
    }
    if (v->via.str.ptr[0] != '/') {
        rp_errf(&eb, RP_BAD_REQUEST, "backup directory must be an absolute path (got '%.*s')",
                (int)(n < 200 ? n : 200), v->via.str.ptr);
        rp_api_fail_rc(rq, RP_BAD_REQUEST, &eb);
        return;
    }
    bool idle = false;
    if (!atomic_compare_exchange_strong(&admin_backup_running, &idle, true)) {
        rp_api_fail(rq, RP_UNAVAILABLE, "a backup is already running; retry when it has finished");
        return;
    }
    admin_backup *b = calloc(1, sizeof *b);
    if (b == NULL) {
        atomic_store(&admin_backup_running, false);
        rp_api_fail(rq, RP_UNAVAILABLE, "out of memory starting the backup");
        return;
    }
    b->rq = *rq;
    memcpy(b->dir, v->via.str.ptr, n);
    b->dir[n] = '\0';
    int e = admin_job_start(admin_backup_main, b);
    if (e != 0) {
        atomic_store(&admin_backup_running, false);
        free(b);
        rp_errf(&eb, RP_UNAVAILABLE, "cannot start the backup thread: %s", strerror(e));
        rp_api_fail_rc(rq, RP_UNAVAILABLE, &eb);
        return;
    }
    /* the reply comes from admin_backup_main */
}

/* --- backtest ---------------------------------------------------------------- */

/* The heap request a backtest thread owns. */
typedef struct admin_backtest {
    rp_api_req rq;
    rp_bt_opts o;
} admin_backtest;

static atomic_bool admin_backtest_running = false;

static void bt_pack_tally(msgpack_packer *pk, const char *key, const rp_bt_tally *t) {
    rp_mp_pack_cstr(pk, key);
    msgpack_pack_map(pk, 7);
    rp_api_kv_uint(pk, "n", t->n);
    rp_api_kv_uint(pk, "top1", t->top1);
    rp_api_kv_uint(pk, "top3", t->top3);
    rp_api_kv_uint(pk, "covered", t->covered);
    double n = t->n ? (double)t->n : 1.0;
    rp_mp_pack_cstr(pk, "top1_rate");
    msgpack_pack_double(pk, t->n ? (double)t->top1 / n : 0.0);
    rp_mp_pack_cstr(pk, "top3_rate");
    msgpack_pack_double(pk, t->n ? (double)t->top3 / n : 0.0);
    rp_mp_pack_cstr(pk, "coverage");
    msgpack_pack_double(pk, t->n ? (double)t->covered / n : 0.0);
}

static void bt_pack_name(msgpack_packer *pk, const char *key, const char *name) {
    rp_mp_pack_cstr(pk, key);
    rp_mp_pack_cstr(pk, name);
}

/* The report map: the fields and order of `rapport backtest --json`
 * (cli/cmd_backtest.c renders this map back from the wire). */
static void bt_pack(msgpack_packer *pk, const rp_bt_opts *o, const rp_bt_result *r) {
    msgpack_pack_map(pk, 12);
    rp_api_kv_uint(pk, "customers", r->customers);
    rp_api_kv_uint(pk, "contacts", r->contacts);
    rp_api_kv_uint(pk, "sampled", r->sampled);
    rp_api_kv_uint(pk, "skipped_no_topic", r->no_topic);
    rp_api_kv_int(pk, "since", o->since);
    rp_mp_pack_cstr(pk, "until");
    if (o->until == INT64_MAX)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_int64(pk, o->until);
    bt_pack_tally(pk, "card", &r->card);
    bt_pack_tally(pk, "baseline", &r->base);
    rp_mp_pack_cstr(pk, "first_contacts");
    msgpack_pack_map(pk, 2);
    bt_pack_tally(pk, "card", &r->first_card);
    bt_pack_tally(pk, "baseline", &r->first_base);
    rp_mp_pack_cstr(pk, "by_topic");
    msgpack_pack_array(pk, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        msgpack_pack_map(pk, 3);
        bt_pack_name(pk, "topic", r->by_topic[i].name);
        bt_pack_tally(pk, "card", &r->by_topic[i].card);
        bt_pack_tally(pk, "baseline", &r->by_topic[i].base);
    }
    uint32_t nsig = 0;
    for (unsigned g = 0; g <= RP_SIG__COUNT; g++) nsig += r->by_signal[g].card.n > 0;
    rp_mp_pack_cstr(pk, "by_signal");
    msgpack_pack_array(pk, nsig);
    for (unsigned g = 0; g <= RP_SIG__COUNT; g++) {
        if (r->by_signal[g].card.n == 0) continue;
        msgpack_pack_map(pk, 2);
        bt_pack_name(pk, "signal", r->by_signal[g].name);
        bt_pack_tally(pk, "card", &r->by_signal[g].card);
    }
    uint32_t nconf = r->nconfusions < RP_BT_CONFUSIONS_MAX ? r->nconfusions : RP_BT_CONFUSIONS_MAX;
    rp_mp_pack_cstr(pk, "confusions");
    msgpack_pack_array(pk, nconf);
    for (uint32_t i = 0; i < nconf; i++) {
        msgpack_pack_map(pk, 3);
        bt_pack_name(pk, "predicted", r->confusions[i].predicted);
        bt_pack_name(pk, "actual", r->confusions[i].actual);
        rp_api_kv_uint(pk, "n", r->confusions[i].n);
    }
}

/* The dedicated thread: run the engine, clear the flag, reply, free. */
static void *admin_backtest_main(void *arg) {
    admin_backtest *b = arg;
    rp_errbuf eb = {0};
    rp_bt_result r;
    rp_store *s = rp_api_store(b->rq.api);
    rp_err rc = rp_backtest(s, rp_store_config(s), &b->o, &r, &eb);
    atomic_store(&admin_backtest_running, false);
    if (rc != RP_OK) {
        rp_api_fail_rc(&b->rq, rc, &eb);
        free(b);
        admin_job_done();
        return NULL;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bt_pack(&pk, &b->o, &r);
    /* One audit line: personal data read in aggregate, nobody shown. */
    b->rq.shown.n = r.customers > UINT32_MAX ? UINT32_MAX : (uint32_t)r.customers;
    snprintf(b->rq.shown.page, sizeof b->rq.shown.page, " customers=%" PRIu64 " aggregate=true",
             r.customers);
    rp_bt_result_free(&r);
    if (sb.data == NULL) rp_api_fail(&b->rq, RP_UNAVAILABLE, "out of memory packing the reply");
    else rp_api_ok(&b->rq, &sb);
    msgpack_sbuffer_destroy(&sb);
    free(b);
    admin_job_done();
    return NULL;
}

void rp_op_backtest(rp_api_req *rq, const msgpack_object *params) {
    static const char *const keys[] = {"since", "until", "sample", "seed", "threads", NULL};
    rp_errbuf eb = {0};
    rp_err rc = rp_api_check_keys(params, keys, &eb);
    rp_bt_opts o;
    rp_bt_opts_defaults(&o);
    o.seed = 1;
    int64_t v;
    bool present;
    if (rc == RP_OK) rc = rp_api_param_int(params, "since", 0, INT64_MAX - 1, &v, &present, &eb);
    if (rc == RP_OK && present) o.since = v;
    if (rc == RP_OK) rc = rp_api_param_int(params, "until", 0, INT64_MAX - 1, &v, &present, &eb);
    if (rc == RP_OK && present) o.until = v;
    if (rc == RP_OK) rc = rp_api_param_int(params, "sample", 1, RP_API_BT_SAMPLE_MAX, &v, &present, &eb);
    if (rc == RP_OK && present) o.sample = (uint64_t)v;
    if (rc == RP_OK) rc = rp_api_param_int(params, "seed", 0, INT64_MAX, &v, &present, &eb);
    if (rc == RP_OK && present) o.seed = (uint64_t)v;
    if (rc == RP_OK) rc = rp_api_param_int(params, "threads", 1, RP_API_BT_THREADS_MAX, &v, &present, &eb);
    if (rc == RP_OK && present) o.threads = (unsigned)v;
    if (rc == RP_OK && o.since > o.until)
        rc = rp_errf(&eb, RP_BAD_REQUEST, "parameter 'since' must not be after 'until'");
    if (rc != RP_OK) {
        rp_api_fail_rc(rq, rc, &eb);
        return;
    }
    bool idle = false;
    if (!atomic_compare_exchange_strong(&admin_backtest_running, &idle, true)) {
        rp_api_fail(rq, RP_UNAVAILABLE, "a backtest is already running; retry when it has finished");
        return;
    }
    admin_backtest *b = calloc(1, sizeof *b);
    if (b == NULL) {
        atomic_store(&admin_backtest_running, false);
        rp_api_fail(rq, RP_UNAVAILABLE, "out of memory starting the backtest");
        return;
    }
    b->rq = *rq;
    b->o = o;
    int e = admin_job_start(admin_backtest_main, b);
    if (e != 0) {
        atomic_store(&admin_backtest_running, false);
        free(b);
        rp_errf(&eb, RP_UNAVAILABLE, "cannot start the backtest thread: %s", strerror(e));
        rp_api_fail_rc(rq, RP_UNAVAILABLE, &eb);
        return;
    }
    /* the reply comes from admin_backtest_main */
}
