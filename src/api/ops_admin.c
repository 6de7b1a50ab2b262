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
 * Both jobs run through one job runner (admin_job_launch, admin_job_main)
 * and the one wait (rp_api_admin_wait).
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

/* An admin job: the heap request its thread owns. Each kind's struct starts
 * with it and adds its own fields (the write requests' pattern, ops.h). */
typedef struct admin_job admin_job;
struct admin_job {
    rp_api_req rq;         /* reply context (values only) */
    atomic_bool *running;  /* the kind's one-at-a-time flag */
    const char *what;      /* "backup", "backtest": for the messages */
    /* The work, on the job's thread: RP_OK with the result map packed into
     * sb, or the error in eb. */
    rp_err (*run)(admin_job *j, msgpack_sbuffer *sb, rp_errbuf *eb);
};

/* Admin jobs not finished yet (their reply may still be on its way):
 * rp_api_destroy waits for them (rp_api_admin_wait), so that a job running
 * at shutdown finishes (and replies) before the api and the store it reads
 * are freed. */
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

/* The job's thread: run, clear the flag, reply, free, and only then stop
 * being counted. */
static void *admin_job_main(void *arg) {
    admin_job *j = arg;
    rp_errbuf eb = {0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rp_err rc = j->run(j, &sb, &eb);
    atomic_store(j->running, false);
    if (rc != RP_OK) rp_api_fail_rc(&j->rq, rc, &eb);
    else if (sb.data == NULL) rp_api_fail(&j->rq, RP_UNAVAILABLE, "out of memory packing the reply");
    else rp_api_ok(&j->rq, &sb);
    msgpack_sbuffer_destroy(&sb);
    free(j);
    admin_threads_add(-1);
    return NULL;
}

/* Start job j (heap, rq/running/what/run set; owned from here on) on a
 * dedicated, detached thread, one of its kind at a time. The reply comes
 * from that thread; when one of its kind is running, or no thread can be
 * started, replies UNAVAILABLE here and frees j. */
static void admin_job_launch(admin_job *j) {
    bool idle = false;
    char msg[RP_ERRMSG_MAX];
    if (!atomic_compare_exchange_strong(j->running, &idle, true)) {
        snprintf(msg, sizeof msg, "a %s is already running; retry when it has finished", j->what);
        rp_api_fail(&j->rq, RP_UNAVAILABLE, msg);
        free(j);
        return;
    }
    pthread_attr_t attr;
    pthread_t tid;
    admin_threads_add(1);
    int e = pthread_attr_init(&attr);
    if (e == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        e = pthread_create(&tid, &attr, admin_job_main, j);
        pthread_attr_destroy(&attr);
    }
    if (e != 0) {
        admin_threads_add(-1);
        atomic_store(j->running, false);
        snprintf(msg, sizeof msg, "cannot start the %s thread: %s", j->what, strerror(e));
        rp_api_fail(&j->rq, RP_UNAVAILABLE, msg);
        free(j);
    }
}

/* --- backup ------------------------------------------------------------------ */

typedef struct admin_backup {
    admin_job job;
    char dir[RP_PATH_MAX];  /* NUL-terminated copy of params.dir */
} admin_backup;

static atomic_bool admin_backup_running = false;

/* The copy, and its result {dir, path, bytes, duration_ms}. */
static rp_err admin_backup_run(admin_job *j, msgpack_sbuffer *sb, rp_errbuf *eb) {
    admin_backup *b = (admin_backup *)j;
    rp_backup_info info;
    rp_err rc = rp_store_backup(rp_api_store(j->rq.api), b->dir, &info, eb);
    if (rc != RP_OK) return rc;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    rp_api_kv_str(&pk, "dir", rp_str_c(info.dir));
    rp_api_kv_str(&pk, "path", rp_str_c(info.path));
    rp_api_kv_uint(&pk, "bytes", info.bytes);
    rp_api_kv_uint(&pk, "duration_ms", info.duration_ms);
    return RP_OK;
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
    admin_backup *b = calloc(1, sizeof *b);
    if (b == NULL) {
        rp_api_fail(rq, RP_UNAVAILABLE, "out of memory starting the backup");
        return;
    }
    b->job = (admin_job){
        .rq = *rq, .running = &admin_backup_running, .what = "backup", .run = admin_backup_run};
    memcpy(b->dir, v->via.str.ptr, n);
    b->dir[n] = '\0';
    admin_job_launch(&b->job); /* the reply comes from the job's thread */
}

/* --- backtest ---------------------------------------------------------------- */

typedef struct admin_backtest {
    admin_job job;
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

/* The engine over the served store, and its report map. */
static rp_err admin_backtest_run(admin_job *j, msgpack_sbuffer *sb, rp_errbuf *eb) {
    admin_backtest *b = (admin_backtest *)j;
    rp_bt_result r;
    rp_store *s = rp_api_store(j->rq.api);
    rp_err rc = rp_backtest(s, rp_store_config(s), &b->o, &r, eb);
    if (rc != RP_OK) return rc;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    bt_pack(&pk, &b->o, &r);
    /* One audit line: personal data read in aggregate, nobody shown. */
    j->rq.shown.n = r.customers > UINT32_MAX ? UINT32_MAX : (uint32_t)r.customers;
    snprintf(j->rq.shown.page, sizeof j->rq.shown.page, " customers=%" PRIu64 " aggregate=true",
             r.customers);
    rp_bt_result_free(&r);
    return RP_OK;
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
    admin_backtest *b = calloc(1, sizeof *b);
    if (b == NULL) {
        rp_api_fail(rq, RP_UNAVAILABLE, "out of memory starting the backtest");
        return;
    }
    b->job = (admin_job){
        .rq = *rq, .running = &admin_backtest_running, .what = "backtest", .run = admin_backtest_run};
    b->o = o;
    admin_job_launch(&b->job); /* the reply comes from the job's thread */
}
