/* store.c — the store's lifecycle: opening the LMDB environment (and its
 * named databases, the schema stamp, the writer), closing it, its config,
 * read transactions, statistics, and running writes on the writer.
 *
 * Design. One LMDB environment in cfg->data_dir holds the named databases of
 * proto/STORAGE.md. Every operation is one transaction: readers
 * (store_read.c) run in a read transaction opened by rp_store_rbegin (MVCC:
 * they never wait for the writer); writers (store_write.c, merge.c) run as
 * rp_write_fn's on the group-committing writer thread (writer.c), which
 * wraps each in a nested transaction of its batch. The files and the one
 * direction of their dependencies are listed in store_int.h.
 *
 * Map lock. The writer grows the map with mdb_env_set_mapsize, which LMDB
 * allows only while no transaction of this process is open. Read
 * transactions therefore hold map_lock for reading from rbegin to rend, and
 * the writer takes it for writing to resize. The lock prefers writers, so a
 * resize is not starved by a steady stream of readers; the price is that a
 * thread must not open a second read transaction while it holds one, and
 * must never wait for a write (rp_store_write) while it holds one.
 */
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/keys.h"
#include "store/lock.h"
#include "store/store_int.h"

#define RP_STORE_SCHEMA 1u        /* meta "schema": the key layout version */
#define RP_STORE_MAXDBS 16

/* late: added after schema 1 without a schema bump. A writable open
 * creates it (a store written before it holds no event_id and no
 * idempotency key, so the empty table is exact; its digests are built by
 * the backfill below, and until then a customer without one has its card
 * computed from the history); a read-only open of such a store goes on
 * without it (s->absent): writers use the others, and rp_store_digest
 * answers NOT_FOUND. */
static const struct {
    const char *name;
    unsigned flags;
    bool late;
} rp_db_table[RP_DB__COUNT] = {
    [RP_DB_CUSTOMERS] = {"customers", 0, false},
    [RP_DB_EVENTS] = {"events", 0, false},
    [RP_DB_ISSUES] = {"issues", 0, false},
    [RP_DB_PHONES] = {"phones", MDB_DUPSORT, false},
    [RP_DB_EMAILS] = {"emails", MDB_DUPSORT, false},
    [RP_DB_ACCOUNTS] = {"accounts", MDB_DUPSORT, false},
    [RP_DB_ALIASES] = {"aliases", 0, false},
    [RP_DB_ALIAS_REV] = {"alias_rev", MDB_DUPSORT, false},
    [RP_DB_EVCOUNT] = {"evcount", 0, false},
    [RP_DB_META] = {"meta", 0, false},
    [RP_DB_IDEM] = {"idem", 0, true},
    [RP_DB_IDEM_EXP] = {"idem_exp", 0, true},
    [RP_DB_EVIDS] = {"evids", 0, true},
    [RP_DB_DIGESTS] = {"digests", 0, true},
};

/* The digest backfill's batches: customers per write and events rebuilt
 * per write at most, so that one batch is a short transaction that group-
 * commits with live traffic. */
#define RP_FILL_CUSTOMERS 256
#define RP_FILL_EVENTS 16384


/* ------------------------------------------------------------------------ */
/* lifetime                                                                  */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* digest backfill                                                           */
/* ------------------------------------------------------------------------ */

/* Stores written before digests (or with another card_max_events) get
 * their digests from a background thread started by the writable open:
 * it walks the customers in id order, RP_FILL_CUSTOMERS per write through
 * the writer (so its batches group-commit with live traffic and none is a
 * long transaction), rebuilds each missing or stale digest, records its
 * progress in meta "digest_fill" in the same write (a restart resumes
 * there) and at the end marks meta "digest_ready". Why a thread at open:
 * a restart is never delayed by it (DESIGN.md: ready to serve in under a
 * second), and no read path ever writes — a reader that finds no digest
 * computes the card from the history, which is always right, so the
 * backfill changes only how fast cards are, never what they say. Appends
 * meanwhile keep (or create) the digests of the customers they touch.
 * rp_store_close stops the thread between batches and joins it before it
 * stops the writer. */

typedef struct fill_arg {
    rp_store *s;
    char after[RP_ID_MAX];
    size_t after_n;
    rp_si_fill out;
} fill_arg;

static rp_err fill_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    fill_arg *a = arg;
    return rp_si_digest_fill(a->s, txn, (rp_str){a->after, a->after_n}, RP_FILL_CUSTOMERS, RP_FILL_EVENTS,
                             &a->out, eb);
}

static void *fill_main(void *arg) {
    rp_store *s = arg;
    fill_arg a = {.s = s};
    pthread_mutex_lock(&s->fill_mu);
    memcpy(a.after, s->fill_after, s->fill_after_n);
    a.after_n = s->fill_after_n;
    pthread_mutex_unlock(&s->fill_mu);
    for (;;) {
        pthread_mutex_lock(&s->fill_mu);
        bool stop = s->fill_stop;
        if (stop) s->fill_state = RP_FILL_STOPPED;
        pthread_mutex_unlock(&s->fill_mu);
        if (stop) break;
        rp_errbuf eb = {0};
        rp_err rc = rp_store_write(s, fill_fn, &a, &eb);
        pthread_mutex_lock(&s->fill_mu);
        if (rc == RP_OK) {
            s->fill_visited += a.out.visited;
            s->fill_built += a.out.built;
            memcpy(s->fill_after, a.out.next, a.out.next_n);
            s->fill_after_n = a.out.next_n;
            if (a.out.done) s->fill_state = RP_FILL_DONE;
        } else {
            s->fill_state = RP_FILL_FAILED; /* the next writable open resumes from the last mark */
        }
        bool end = s->fill_state != RP_FILL_RUNNING;
        pthread_mutex_unlock(&s->fill_mu);
        if (end) break;
        memcpy(a.after, a.out.next, a.out.next_n);
        a.after_n = a.out.next_n;
    }
    return NULL;
}

/* At the writable open, in the start-up transaction: are the digests
 * ready? If not and there are no customers, they are (mark it); else set
 * fill_state RUNNING with the recorded progress, for fill_start. */
static rp_err fill_plan(rp_store *s, MDB_txn *txn, rp_errbuf *eb) {
    bool ready;
    rp_err rc = rp_si_digest_state(s, txn, &ready, s->fill_after, &s->fill_after_n, eb);
    if (rc != RP_OK || ready) return rc;
    MDB_stat st;
    int mrc = mdb_stat(txn, s->dbi[RP_DB_CUSTOMERS], &st);
    if (mrc) return rp_si_mdb(eb, mrc, "reading database statistics");
    if (st.ms_entries == 0) return rp_si_digest_mark_ready(s, txn, eb);
    s->fill_state = RP_FILL_RUNNING;
    return RP_OK;
}

/* Start the backfill thread when fill_plan asked for it. */
static rp_err fill_start(rp_store *s, rp_errbuf *eb) {
    if (s->fill_state != RP_FILL_RUNNING) return RP_OK;
    int e = pthread_create(&s->fill_thread, NULL, fill_main, s);
    if (e != 0) return rp_errf(eb, RP_UNAVAILABLE, "cannot start the digest backfill: %s", strerror(e));
    s->fill_started = true;
    return RP_OK;
}

/* Ask the backfill to stop after its current batch and join it. */
static void fill_stop(rp_store *s) {
    if (!s->fill_started) return;
    pthread_mutex_lock(&s->fill_mu);
    s->fill_stop = true;
    pthread_mutex_unlock(&s->fill_mu);
    pthread_join(s->fill_thread, NULL);
    s->fill_started = false;
}

/* mkdir -p: create each missing component with mode 0755. */
static rp_err mkdir_p(const char *path, rp_errbuf *eb) {
    char buf[RP_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return rp_errf(eb, RP_BAD_REQUEST, "data directory path is empty or too long");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            return rp_errf(eb, rp_err_from_errno(e), "cannot create data directory '%s': %s", buf,
                           strerror(e));
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return rp_errf(eb, RP_BAD_REQUEST, "data directory '%s' is not a directory", path);
    return RP_OK;
}

/* Size of data_dir/data.mdb, 0 when absent; -1 (errno set) on other errors. */
static int64_t data_file_size(const char *dir) {
    char p[RP_PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    struct stat st;
    if (stat(p, &st) != 0) return errno == ENOENT ? 0 : -1;
    return (int64_t)st.st_size;
}

/* Free everything a (possibly half-built) store holds: the map lock and the
 * env exist from store_new on; the writer may not. */
static void store_free(rp_store *s) {
    if (s == NULL) return;
    fill_stop(s); /* before the writer: its batches are writes */
    if (s->writer) rp_writer_stop(s->writer);
    if (s->env) {
        if (!s->readonly && s->writer) mdb_env_sync(s->env, 1);
        mdb_env_close(s->env);
    }
    rp_lock_release(s->lock_fd); /* after the env is closed: the last writer is gone */
    pthread_rwlock_destroy(&s->map_lock);
    pthread_mutex_destroy(&s->fill_mu);
    free(s->deferred);
    free(s);
}

/* Allocate the struct, copy cfg, create the env and a writer-preferring
 * map lock. */
static rp_err store_new(const rp_config *cfg, bool readonly, rp_store **out, rp_errbuf *eb) {
    if (cfg->data_dir[0] == '\0') return rp_errf(eb, RP_BAD_REQUEST, "data directory is not set");
    if (cfg->map_max == 0) return rp_errf(eb, RP_BAD_REQUEST, "map_max must be positive");
    rp_store *s = calloc(1, sizeof *s);
    if (s == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory opening the store");
    s->cfg = *cfg;
    s->cfg.data_dir[sizeof s->cfg.data_dir - 1] = '\0';
    s->cfg.default_country[sizeof s->cfg.default_country - 1] = '\0';
    s->readonly = readonly;
    s->lock_fd = -1;
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int e = pthread_rwlock_init(&s->map_lock, &a);
    pthread_rwlockattr_destroy(&a);
    if (e != 0) {
        free(s);
        return rp_errf(eb, RP_UNAVAILABLE, "cannot create the map lock: %s", strerror(e));
    }
    e = pthread_mutex_init(&s->fill_mu, NULL);
    if (e != 0) {
        pthread_rwlock_destroy(&s->map_lock);
        free(s);
        return rp_errf(eb, RP_UNAVAILABLE, "cannot create the backfill lock: %s", strerror(e));
    }
    int mrc = mdb_env_create(&s->env);
    if (mrc == 0) mrc = mdb_env_set_maxdbs(s->env, RP_STORE_MAXDBS);
    if (mrc) {
        store_free(s);
        return rp_si_mdb(eb, mrc, "creating the LMDB environment");
    }
    *out = s;
    return RP_OK;
}

/* Check meta "schema": RP_OK when it is ours, *missing when absent. */
static rp_err check_schema(rp_store *s, MDB_txn *txn, bool *missing, rp_errbuf *eb) {
    MDB_val k = rp_si_mval("schema", 6), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_META], &k, &v);
    *missing = (mrc == MDB_NOTFOUND);
    if (*missing) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading the schema version");
    if (v.mv_size != 4)
        return rp_errf(eb, RP_INTERNAL, "store in '%s' has a corrupt schema version", s->cfg.data_dir);
    uint32_t ver = rp_keys_get_le32(v.mv_data);
    if (ver != RP_STORE_SCHEMA)
        return rp_errf(eb, RP_INTERNAL,
                       "store in '%s' has schema version %" PRIu32 "; this build reads version %u only",
                       s->cfg.data_dir, ver, RP_STORE_SCHEMA);
    return RP_OK;
}

/* Open (creating) every named database and stamp/check the schema, in one
 * write transaction. */
static rp_err open_dbis_rw(rp_store *s, rp_errbuf *eb) {
    MDB_txn *txn;
    int mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (mrc) return rp_si_mdb(eb, mrc, "beginning the start-up transaction");
    rp_err rc = RP_OK;
    for (int i = 0; i < RP_DB__COUNT; i++) {
        mrc = mdb_dbi_open(txn, rp_db_table[i].name, rp_db_table[i].flags | MDB_CREATE, &s->dbi[i]);
        if (mrc == MDB_INCOMPATIBLE) {
            rc = rp_errf(eb, RP_INTERNAL, "database '%s' in '%s' has other flags: not a rapport store",
                         rp_db_table[i].name, s->cfg.data_dir);
            goto fail;
        }
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "opening a named database");
            goto fail;
        }
    }
    bool missing;
    rc = check_schema(s, txn, &missing, eb);
    if (rc != RP_OK) goto fail;
    rc = fill_plan(s, txn, eb);
    if (rc != RP_OK) goto fail;
    if (missing) {
        unsigned char b[4];
        rp_keys_put_le32(b, RP_STORE_SCHEMA);
        MDB_val k = rp_si_mval("schema", 6), v = rp_si_mval(b, 4);
        mrc = mdb_put(txn, s->dbi[RP_DB_META], &k, &v, 0);
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "writing the schema version");
            goto fail;
        }
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? rp_si_mdb(eb, mrc, "committing the start-up transaction") : RP_OK;
fail:
    mdb_txn_abort(txn);
    return rc;
}

/* Open the existing named databases in a read transaction (read-only
 * store: nothing may be created). */
static rp_err open_dbis_ro(rp_store *s, rp_errbuf *eb) {
    MDB_txn *txn;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (mrc) return rp_si_mdb(eb, mrc, "beginning the start-up transaction");
    rp_err rc = RP_OK;
    for (int i = 0; i < RP_DB__COUNT; i++) {
        mrc = mdb_dbi_open(txn, rp_db_table[i].name, rp_db_table[i].flags, &s->dbi[i]);
        if (mrc == MDB_NOTFOUND && rp_db_table[i].late) { /* readers do without it */
            s->absent[i] = true;
            continue;
        }
        if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE) {
            rc = rp_errf(eb, RP_INTERNAL, "'%s' has no usable '%s' database: not a rapport store",
                         s->cfg.data_dir, rp_db_table[i].name);
            goto fail;
        }
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "opening a named database");
            goto fail;
        }
    }
    bool missing;
    rc = check_schema(s, txn, &missing, eb);
    if (rc == RP_OK && missing)
        rc = rp_errf(eb, RP_INTERNAL, "store in '%s' has no schema version", s->cfg.data_dir);
    if (rc != RP_OK) goto fail;
    mrc = mdb_txn_commit(txn); /* keeps the dbi handles */
    return mrc ? rp_si_mdb(eb, mrc, "committing the start-up transaction") : RP_OK;
fail:
    mdb_txn_abort(txn);
    return rc;
}

/* Map size at open: max(map_initial, current file) capped by map_max,
 * rounded down to whole OS pages (LMDB keeps at least the used size). */
static size_t initial_mapsize(const rp_config *cfg, int64_t fsize) {
    uint64_t m = cfg->map_initial;
    if (fsize > 0 && (uint64_t)fsize > m) m = (uint64_t)fsize;
    if (m > cfg->map_max) m = cfg->map_max;
    if (m > SIZE_MAX) m = SIZE_MAX;
    long pg = sysconf(_SC_PAGESIZE);
    if (pg > 0) m -= m % (uint64_t)pg;
    return (size_t)m;
}

rp_err rp_store_open(const rp_config *cfg, rp_store **out, rp_errbuf *eb) {
    rp_store *s = NULL;
    rp_err rc = mkdir_p(cfg->data_dir, eb);
    if (rc != RP_OK) return rc;
    rc = store_new(cfg, false, &s, eb);
    if (rc != RP_OK) return rc;
    rc = rp_lock_acquire(cfg->data_dir, &s->lock_fd, eb);
    if (rc != RP_OK) goto fail;
    int64_t fsize = data_file_size(cfg->data_dir);
    if (fsize < 0) {
        int e = errno;
        rc = rp_errf(eb, rp_err_from_errno(e), "cannot read '%s/data.mdb': %s", cfg->data_dir, strerror(e));
        goto fail;
    }
    int mrc = mdb_env_set_mapsize(s->env, initial_mapsize(cfg, fsize));
    if (mrc) {
        rc = rp_si_mdb(eb, mrc, "setting the map size");
        goto fail;
    }
    unsigned flags = MDB_NOTLS | (cfg->durability == RP_DURABLE_ASYNC ? MDB_NOSYNC : 0);
    mrc = mdb_env_open(s->env, cfg->data_dir, flags, 0644);
    if (mrc) {
        rc = rp_errf(eb, rp_err_from_mdb(mrc), "cannot open the store in '%s': %s", cfg->data_dir,
                     mdb_strerror(mrc));
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* stale slots of crashed processes */
    rc = open_dbis_rw(s, eb);
    if (rc != RP_OK) goto fail;
    rp_writer_opts wo = {
        .queue_max = cfg->writer_queue_max,
        .batch_max = cfg->writer_batch_max,
        .async = cfg->durability == RP_DURABLE_ASYNC,
        .flush_ms = cfg->async_flush_ms,
        .map_max = cfg->map_max,
        .map_lock = &s->map_lock,
    };
    rc = rp_writer_start(s->env, &wo, &s->writer, eb);
    if (rc != RP_OK) goto fail;
    rc = fill_start(s, eb);
    if (rc != RP_OK) goto fail;
    *out = s;
    return RP_OK;
fail:
    store_free(s);
    return rc;
}

rp_err rp_store_open_readonly(const rp_config *cfg, rp_store **out, rp_errbuf *eb) {
    rp_store *s = NULL;
    if (cfg->data_dir[0] == '\0') return rp_errf(eb, RP_BAD_REQUEST, "data directory is not set");
    char p[RP_PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/data.mdb", cfg->data_dir);
    struct stat st;
    if (stat(p, &st) != 0) {
        int e = errno;
        if (e == ENOENT) return rp_errf(eb, RP_NOT_FOUND, "no store in '%s'", cfg->data_dir);
        return rp_errf(eb, rp_err_from_errno(e), "cannot read '%s': %s", p, strerror(e));
    }
    rp_err rc = store_new(cfg, true, &s, eb);
    if (rc != RP_OK) return rc;
    /* No mapsize: LMDB uses the one recorded by the writing process. */
    int mrc = mdb_env_open(s->env, cfg->data_dir, MDB_RDONLY | MDB_NOTLS, 0644);
    if (mrc) {
        rc = rp_errf(eb, rp_err_from_mdb(mrc), "cannot open the store in '%s' read-only: %s",
                     cfg->data_dir, mdb_strerror(mrc));
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    rc = open_dbis_ro(s, eb);
    if (rc != RP_OK) goto fail;
    *out = s;
    return RP_OK;
fail:
    store_free(s);
    return rc;
}

void rp_store_close(rp_store *s) { store_free(s); }

const char *rp_store_fill_state_name(rp_fill_state st) {
    static const char *const names[] = {"idle", "running", "done", "failed", "stopped"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}

const rp_config *rp_store_config(const rp_store *s) { return &s->cfg; }

MDB_env *rp_store_env(rp_store *s) { return s->env; }

/* ------------------------------------------------------------------------ */
/* read transactions                                                         */
/* ------------------------------------------------------------------------ */

/* Another process may have grown the map (MDB_MAP_RESIZED): adopt its size
 * under the write lock and retry, a few times at most. */
rp_err rp_store_rbegin(rp_store *s, MDB_txn **txn, rp_errbuf *eb) {
    for (int attempt = 0; attempt < 4; attempt++) {
        int e = pthread_rwlock_rdlock(&s->map_lock);
        if (e != 0) return rp_errf(eb, RP_INTERNAL, "map lock: %s", strerror(e));
        int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
        if (mrc == 0) return RP_OK;
        pthread_rwlock_unlock(&s->map_lock);
        if (mrc != MDB_MAP_RESIZED) return rp_si_mdb(eb, mrc, "beginning a read transaction");
        e = pthread_rwlock_wrlock(&s->map_lock);
        if (e != 0) return rp_errf(eb, RP_INTERNAL, "map lock: %s", strerror(e));
        mrc = mdb_env_set_mapsize(s->env, 0);
        pthread_rwlock_unlock(&s->map_lock);
        if (mrc) return rp_si_mdb(eb, mrc, "adopting the grown map size");
    }
    return rp_errf(eb, RP_UNAVAILABLE, "the map keeps being resized by another process; retry");
}

void rp_store_rend(rp_store *s, MDB_txn *txn) {
    if (txn == NULL) return;
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->map_lock);
}


rp_err rp_store_stats_get(rp_store *s, rp_store_stats *out, rp_errbuf *eb) {
    memset(out, 0, sizeof *out);
    MDB_txn *txn;
    rp_err rc = rp_store_rbegin(s, &txn, eb);
    if (rc != RP_OK) return rc;
    static const struct {
        rp_db db;
        size_t off;
    } counts[] = {
        {RP_DB_CUSTOMERS, offsetof(rp_store_stats, customers)},
        {RP_DB_EVENTS, offsetof(rp_store_stats, events)},
        {RP_DB_ISSUES, offsetof(rp_store_stats, issues)},
        {RP_DB_ALIASES, offsetof(rp_store_stats, aliases)},
        {RP_DB_PHONES, offsetof(rp_store_stats, phones)},
        {RP_DB_EMAILS, offsetof(rp_store_stats, emails)},
        {RP_DB_ACCOUNTS, offsetof(rp_store_stats, accounts)},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        MDB_stat st;
        int mrc = mdb_stat(txn, s->dbi[counts[i].db], &st);
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "reading database statistics");
            goto out;
        }
        uint64_t entries = st.ms_entries;
        memcpy((char *)out + counts[i].off, &entries, sizeof entries);
    }
    MDB_envinfo info;
    MDB_stat est;
    int mrc = mdb_env_info(s->env, &info);
    if (mrc == 0) mrc = mdb_env_stat(s->env, &est);
    if (mrc) {
        rc = rp_si_mdb(eb, mrc, "reading environment statistics");
        goto out;
    }
    out->map_size = info.me_mapsize;
    out->map_used = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
    out->map_max = s->cfg.map_max;
    if (!s->absent[RP_DB_DIGESTS]) {
        MDB_stat dst;
        mrc = mdb_stat(txn, s->dbi[RP_DB_DIGESTS], &dst);
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "reading database statistics");
            goto out;
        }
        out->digests = dst.ms_entries;
        char after[RP_ID_MAX];
        size_t after_n;
        rc = rp_si_digest_state(s, txn, &out->digests_ready, after, &after_n, eb);
        if (rc != RP_OK) goto out;
    }
    pthread_mutex_lock(&s->fill_mu);
    out->digest_fill = s->fill_state;
    out->digest_fill_visited = s->fill_visited;
    out->digest_fill_built = s->fill_built;
    pthread_mutex_unlock(&s->fill_mu);
    if (s->writer) rp_writer_get_stats(s->writer, &out->writer);
out:
    rp_store_rend(s, txn);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* running writes                                                            */
/* ------------------------------------------------------------------------ */

rp_err rp_store_write(rp_store *s, rp_write_fn fn, void *arg, rp_errbuf *eb) {
    if (s->readonly || s->writer == NULL)
        return rp_errf(eb, RP_FORBIDDEN, "the store in '%s' is open read-only", s->cfg.data_dir);
    return rp_writer_exec(s->writer, fn, arg, eb);
}

rp_err rp_store_submit(rp_store *s, rp_write_req *req) {
    if (s->readonly || s->writer == NULL) return RP_UNAVAILABLE;
    return rp_writer_submit(s->writer, req);
}
