/* ops_admin.c — admin operations: backup.
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
 * for up to 60 s, then rp_api_destroy waits (rp_api_backup_wait) for a
 * backup thread still running, however long the copy takes, before the api
 * and the store are freed: a backup is finished, never cut off (a process
 * killed meanwhile leaves only data.mdb.partial, which never looks valid).
 *
 * Result map: dir, path (dir/data.mdb), bytes, duration_ms.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/ops.h"
#include "model/codec.h"
#include "store/backup.h"

/* The heap request a backup thread owns. */
typedef struct admin_backup {
    rp_api_req rq;          /* reply context (values only) */
    char dir[RP_PATH_MAX];  /* NUL-terminated copy of params.dir */
} admin_backup;

static atomic_bool admin_backup_running = false;

/* Backup threads not finished yet (their reply may still be on its way):
 * rp_api_destroy waits for them, so that a backup running at shutdown
 * finishes (and replies) before the api and the store it reads are freed. */
static pthread_mutex_t admin_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t admin_cv = PTHREAD_COND_INITIALIZER;
static unsigned admin_threads;

static void admin_threads_add(int d) {
    pthread_mutex_lock(&admin_mu);
    admin_threads = (unsigned)((int)admin_threads + d);
    if (admin_threads == 0) pthread_cond_broadcast(&admin_cv);
    pthread_mutex_unlock(&admin_mu);
}

void rp_api_backup_wait(void) {
    pthread_mutex_lock(&admin_mu);
    while (admin_threads > 0) pthread_cond_wait(&admin_cv, &admin_mu);
    pthread_mutex_unlock(&admin_mu);
}

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
        admin_threads_add(-1);
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
    admin_threads_add(-1);
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
    pthread_attr_t attr;
    pthread_t tid;
    admin_threads_add(1);
    int e = pthread_attr_init(&attr);
    if (e == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        e = pthread_create(&tid, &attr, admin_backup_main, b);
        pthread_attr_destroy(&attr);
    }
    if (e != 0) {
        admin_threads_add(-1);
        atomic_store(&admin_backup_running, false);
        free(b);
        rp_errf(&eb, RP_UNAVAILABLE, "cannot start the backup thread: %s", strerror(e));
        rp_api_fail_rc(rq, RP_UNAVAILABLE, &eb);
        return;
    }
    /* the reply comes from admin_backup_main */
}
