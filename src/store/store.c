/* store.c — the LMDB customer store: environment, records, indexes, reads.
 *
 * Design. One LMDB environment in cfg->data_dir holds the named databases of
 * proto/STORAGE.md. Records are MessagePack values written by the codecs of
 * model/codec.h; composite keys are laid out by keys.c. Every operation is
 * one transaction: readers run in a read transaction opened by
 * rp_store_rbegin (MVCC: they never wait for the writer), writers run as
 * rp_write_fn's on the group-committing writer thread (writer.c), which
 * wraps each in a nested transaction of its batch. Merge and forget live in
 * merge.c; helpers both files need are declared in store_int.h.
 *
 * Map lock. The writer grows the map with mdb_env_set_mapsize, which LMDB
 * allows only while no transaction of this process is open. Read
 * transactions therefore hold map_lock for reading from rbegin to rend, and
 * the writer takes it for writing to resize. The lock prefers writers, so a
 * resize is not starved by a steady stream of readers; the price is that a
 * thread must not open a second read transaction while it holds one, and
 * must never wait for a write (rp_store_write) while it holds one.
 *
 * Aliases. A merged-away id is a key of `aliases` pointing at its survivor;
 * every entry point resolves ids through it (at most 8 hops, so a corrupt
 * loop is an error rather than a hang). A customer id is never also an
 * alias: put on an alias id is a conflict.
 *
 * Retention decision (documented in proto/STORAGE.md): the count rule keeps
 * the newest retention_max_events events by (ts, seq), strictly; the age
 * rule deletes events older than now - retention_max_age_days, oldest
 * first, but never the event the same append just wrote — an append is
 * always stored, even when its ts is already past the age limit; the next
 * append or merge of that customer trims it.
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

#include "model/codec.h"
#include "model/ident.h"
#include "store/keys.h"
#include "store/store_int.h"
#include "model/mpcheck.h"

#define RP_STORE_SCHEMA 1u        /* meta "schema": the key layout version */
#define RP_STORE_ALIAS_HOPS 8     /* alias chains longer than this are corrupt */
#define RP_STORE_PATCH_ARENA (16 * 1024) /* normalized phones/emails of a patch */
#define RP_STORE_MAXDBS 16

static const struct {
    const char *name;
    unsigned flags;
} rp_db_table[RP_DB__COUNT] = {
    [RP_DB_CUSTOMERS] = {"customers", 0},
    [RP_DB_EVENTS] = {"events", 0},
    [RP_DB_ISSUES] = {"issues", 0},
    [RP_DB_PHONES] = {"phones", MDB_DUPSORT},
    [RP_DB_EMAILS] = {"emails", MDB_DUPSORT},
    [RP_DB_ACCOUNTS] = {"accounts", MDB_DUPSORT},
    [RP_DB_ALIASES] = {"aliases", 0},
    [RP_DB_ALIAS_REV] = {"alias_rev", MDB_DUPSORT},
    [RP_DB_EVCOUNT] = {"evcount", 0},
    [RP_DB_META] = {"meta", 0},
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* An MDB_val over a const buffer (LMDB's API is not const-correct). */
static MDB_val mval(const void *p, size_t n) {
    MDB_val v = {n, (void *)p};
    return v;
}

static rp_str vstr(const MDB_val *v) { return (rp_str){(const char *)v->mv_data, v->mv_size}; }

void rp_si_blob_free(rp_si_blob *b) {
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

rp_err rp_si_mdb(rp_errbuf *eb, int rc, const char *what) {
    rp_err e = rp_err_from_mdb(rc);
    if (e == RP_OK) e = RP_INTERNAL; /* a caller bug: rc was not an error */
    return rp_errf(eb, e, "%s: %s", what, mdb_strerror(rc));
}

int64_t rp_si_now(int64_t now) { return now > 0 ? now : (int64_t)time(NULL); }

rp_err rp_si_unpack(const MDB_val *v, msgpack_zone *z, msgpack_object *o, const char *what,
                    rp_errbuf *eb) {
    /* A stored value is our own bytes, but a corrupted one must not reach
     * msgpack-c unchecked: it sizes allocations from container headers (a
     * 5-byte value can ask for 128 GiB) and reports nesting beyond its
     * 32-level stack as out-of-memory. Walk it first, bounded by its own
     * length and by what a record can hold; it must be exactly one value.
     * UTF-8 was checked when the record was written. */
    static const rp_mpcheck_limits lim_base = {
        .max_depth = RP_MPCHECK_UNPACK_DEPTH_MAX,
        .max_container = 1024, /* a record's largest array/map: 64 preferences */
        .max_string = 65536,   /* its largest string: a 1 KiB summary */
        .skip_utf8 = true,
    };
    rp_mpcheck_limits lim = lim_base;
    lim.max_bytes = v->mv_size ? v->mv_size : 1;
    char why[128];
    size_t len = 0;
    rp_mpcheck_result r = rp_mpcheck_unpack(v->mv_data, v->mv_size, &lim, z, o, &len, why, sizeof why);
    if (r == RP_MPC_NOMEM) return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding a %s", what);
    if (r != RP_MPC_OK) return rp_errf(eb, RP_INTERNAL, "corrupt %s: %s", what, why);
    if (len != v->mv_size)
        return rp_errf(eb, RP_INTERNAL, "corrupt %s: %zu bytes after the value", what, v->mv_size - len);
    return RP_OK;
}

/* Encoding into a growable buffer that remembers an allocation failure
 * (the codec's encoders return void, so the write callback must). */
typedef struct enc_buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bool oom;
} enc_buf;

static int enc_write(void *data, const char *buf, size_t len) {
    enc_buf *e = data;
    if (e->oom) return -1;
    if (msgpack_sbuffer_write(&e->sb, buf, len) != 0) {
        e->oom = true;
        return -1;
    }
    return 0;
}

static void enc_init(enc_buf *e) {
    msgpack_sbuffer_init(&e->sb);
    e->oom = false;
    msgpack_packer_init(&e->pk, e, enc_write);
}

/* Put the encoded value under key and release the buffer. */
static rp_err enc_put(MDB_txn *txn, MDB_dbi dbi, const char *key, size_t kn, enc_buf *e,
                      unsigned flags, const char *what, rp_errbuf *eb) {
    rp_err rc = RP_OK;
    if (e->oom) {
        rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory encoding a %s", what);
    } else {
        MDB_val k = mval(key, kn), v = mval(e->sb.data, e->sb.size);
        int mrc = mdb_put(txn, dbi, &k, &v, flags);
        if (mrc) rc = rp_si_mdb(eb, mrc, what);
    }
    msgpack_sbuffer_destroy(&e->sb);
    return rc;
}

/* Decode a stored customer value. Slices point into v's memory. */
static rp_err decode_customer(const MDB_val *v, rp_customer *out, rp_errbuf *eb) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding a customer");
    msgpack_object o;
    rp_arena none = {NULL, 0, 0};
    rp_err rc = rp_si_unpack(v, &z, &o, "customer record", eb);
    if (rc == RP_OK) rc = rp_customer_decode(&o, RP_DEC_STORED, NULL, &none, out, eb);
    msgpack_zone_destroy(&z);
    return rc;
}

/* Decode a stored event value with a caller-provided zone (cleared first,
 * so one zone serves a whole history page). */
static rp_err decode_event(const MDB_val *v, msgpack_zone *z, rp_event *out, rp_errbuf *eb) {
    msgpack_zone_clear(z);
    msgpack_object o;
    rp_err rc = rp_si_unpack(v, z, &o, "event record", eb);
    if (rc == RP_OK) rc = rp_event_decode(&o, RP_DEC_STORED, out, eb);
    return rc;
}

static rp_err decode_issue(const MDB_val *v, msgpack_zone *z, rp_issue *out, rp_errbuf *eb) {
    msgpack_zone_clear(z);
    msgpack_object o;
    rp_err rc = rp_si_unpack(v, z, &o, "issue record", eb);
    if (rc == RP_OK) rc = rp_issue_decode(&o, RP_DEC_STORED, out, eb);
    return rc;
}

rp_err rp_si_decode_issue(const MDB_val *v, rp_issue *out, rp_errbuf *eb) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024))
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory decoding an issue");
    rp_err rc = decode_issue(v, &z, out, eb);
    msgpack_zone_destroy(&z);
    return rc;
}

static rp_db index_db(rp_ident_kind kind) {
    switch (kind) {
    case RP_IDENT_EMAIL: return RP_DB_EMAILS;
    case RP_IDENT_ACCOUNT: return RP_DB_ACCOUNTS;
    case RP_IDENT_PHONE: break;
    }
    return RP_DB_PHONES;
}

void rp_si_idents(const rp_customer *c, rp_ident_kind kind, const rp_str **list, uint32_t *n) {
    switch (kind) {
    case RP_IDENT_EMAIL:
        *list = c->emails;
        *n = c->nemails;
        return;
    case RP_IDENT_ACCOUNT:
        *list = c->accounts;
        *n = c->naccounts;
        return;
    case RP_IDENT_PHONE: break;
    }
    *list = c->phones;
    *n = c->nphones;
}

/* ------------------------------------------------------------------------ */
/* shared write helpers (store_int.h)                                        */
/* ------------------------------------------------------------------------ */

rp_err rp_si_resolve_copy(rp_store *s, MDB_txn *txn, rp_str id, char buf[RP_ID_MAX], rp_str *out,
                          rp_errbuf *eb) {
    rp_str c;
    rp_err rc = rp_store_resolve(s, txn, id, &c, eb);
    if (rc != RP_OK) return rc;
    assert(c.n > 0 && c.n <= RP_ID_MAX);
    memcpy(buf, c.p, c.n);
    *out = (rp_str){buf, c.n};
    return RP_OK;
}

rp_err rp_si_load_customer(rp_store *s, MDB_txn *txn, rp_str id, rp_si_blob *blob,
                           rp_customer *out, rp_errbuf *eb) {
    blob->p = NULL;
    blob->n = 0;
    MDB_val k = mval(id.p, id.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_CUSTOMERS], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rp_errf(eb, RP_NOT_FOUND, "no customer with id '%.*s'", (int)id.n, id.p);
    if (mrc) return rp_si_mdb(eb, mrc, "reading a customer");
    char *p = malloc(v.mv_size ? v.mv_size : 1);
    if (p == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory copying a customer");
    memcpy(p, v.mv_data, v.mv_size);
    MDB_val copy = mval(p, v.mv_size);
    rp_err rc = decode_customer(&copy, out, eb);
    if (rc != RP_OK) {
        free(p);
        return rc;
    }
    out->id = id; /* the key is authoritative */
    blob->p = p;
    blob->n = v.mv_size;
    return RP_OK;
}

rp_err rp_si_store_customer(rp_store *s, MDB_txn *txn, const rp_customer *c, rp_errbuf *eb) {
    enc_buf e;
    enc_init(&e);
    rp_customer_encode(&e.pk, c, RP_ENC_STORED);
    return enc_put(txn, s->dbi[RP_DB_CUSTOMERS], c->id.p, c->id.n, &e, 0, "storing a customer", eb);
}

rp_err rp_si_index_add(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str key, rp_str id,
                       rp_errbuf *eb) {
    MDB_val k = mval(key.p, key.n), v = mval(id.p, id.n);
    int mrc = mdb_put(txn, s->dbi[index_db(kind)], &k, &v, MDB_NODUPDATA);
    if (mrc == 0 || mrc == MDB_KEYEXIST) return RP_OK;
    return rp_si_mdb(eb, mrc, "adding an identity index entry");
}

rp_err rp_si_index_del(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str key, rp_str id,
                       rp_errbuf *eb) {
    MDB_val k = mval(key.p, key.n), v = mval(id.p, id.n);
    int mrc = mdb_del(txn, s->dbi[index_db(kind)], &k, &v);
    if (mrc == 0 || mrc == MDB_NOTFOUND) return RP_OK;
    return rp_si_mdb(eb, mrc, "removing an identity index entry");
}

rp_err rp_si_evcount_get(rp_store *s, MDB_txn *txn, rp_str id, uint32_t *out, rp_errbuf *eb) {
    MDB_val k = mval(id.p, id.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_EVCOUNT], &k, &v);
    if (mrc == MDB_NOTFOUND) {
        *out = 0;
        return RP_OK;
    }
    if (mrc) return rp_si_mdb(eb, mrc, "reading an event count");
    if (v.mv_size != 4)
        return rp_errf(eb, RP_INTERNAL, "corrupt event count of '%.*s'", (int)id.n, id.p);
    *out = rp_keys_get_le32(v.mv_data);
    return RP_OK;
}

rp_err rp_si_evcount_set(rp_store *s, MDB_txn *txn, rp_str id, uint32_t n, rp_errbuf *eb) {
    MDB_val k = mval(id.p, id.n);
    int mrc;
    if (n == 0) {
        mrc = mdb_del(txn, s->dbi[RP_DB_EVCOUNT], &k, NULL);
        if (mrc == MDB_NOTFOUND) mrc = 0;
    } else {
        unsigned char b[4];
        rp_keys_put_le32(b, n);
        MDB_val v = mval(b, 4);
        mrc = mdb_put(txn, s->dbi[RP_DB_EVCOUNT], &k, &v, 0);
    }
    return mrc ? rp_si_mdb(eb, mrc, "writing an event count") : RP_OK;
}

/* Seek the largest key below (id, ts, UINT32_MAX) and read its seq when it
 * is at the same (id, ts). O(log N). */
rp_err rp_si_event_next_seq(rp_store *s, MDB_txn *txn, rp_str id, int64_t ts, uint32_t *seq,
                            rp_errbuf *eb) {
    char key[RP_KEYS_EVENT_MAX];
    size_t kn = rp_keys_event(key, id, ts, UINT32_MAX);
    size_t tsn = kn - 4; /* "id\0" + ts */
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an events cursor");
    rp_err rc = RP_OK;
    MDB_val k = mval(key, kn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0 && k.mv_size == kn && memcmp(k.mv_data, key, kn) == 0) {
        rc = rp_errf(eb, RP_TOO_LARGE, "too many events of '%.*s' at ts %" PRId64, (int)id.n, id.p, ts);
        goto out;
    }
    if (mrc == 0) mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == 0 && k.mv_size == kn && memcmp(k.mv_data, key, tsn) == 0) {
        *seq = rp_keys_get_be32((const unsigned char *)k.mv_data + tsn) + 1;
    } else if (mrc == 0 || mrc == MDB_NOTFOUND) {
        *seq = 0;
    } else {
        rc = rp_si_mdb(eb, mrc, "reading events");
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

/* Count rule: delete the first event of the prefix while over the limit.
 * Age rule: walk from the oldest, deleting until the first new-enough
 * event, stepping over `keep`. Each deletion re-seeks (O(log N)), which is
 * simpler to get right than relying on cursor positions after a delete. */
rp_err rp_si_trim(rp_store *s, MDB_txn *txn, rp_str id, int64_t now, const char *keep, size_t keep_n,
                  rp_errbuf *eb) {
    uint32_t count;
    rp_err rc = rp_si_evcount_get(s, txn, id, &count, eb);
    if (rc != RP_OK) return rc;
    char pfx[RP_KEYS_PREFIX_MAX];
    size_t pn = rp_keys_prefix(pfx, id);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an events cursor");
    uint32_t max = s->cfg.retention_max_events;
    while (max > 0 && count > max) {
        MDB_val k = mval(pfx, pn), v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == MDB_NOTFOUND || (mrc == 0 && !rp_keys_has_prefix(&k, pfx, pn))) {
            count = 0; /* the count ran ahead of the data: repair it */
            break;
        }
        if (mrc == 0) mrc = mdb_cursor_del(cur, 0);
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "trimming events by count");
            goto out;
        }
        count--;
    }
    if (s->cfg.retention_max_age_days > 0) {
        int64_t cutoff = rp_si_now(now) - (int64_t)s->cfg.retention_max_age_days * 86400;
        char from[RP_KEYS_EVENT_MAX];
        size_t fn = pn;
        bool past_from = false; /* from is the kept key: start after it */
        memcpy(from, pfx, pn);
        for (;;) {
            MDB_val k = mval(from, fn), v;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (mrc == 0 && past_from && k.mv_size == fn && memcmp(k.mv_data, from, fn) == 0)
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            if (mrc == MDB_NOTFOUND) break;
            if (mrc) {
                rc = rp_si_mdb(eb, mrc, "reading events");
                goto out;
            }
            int64_t ts;
            uint32_t seq;
            if (!rp_keys_has_prefix(&k, pfx, pn)) break;
            if (!rp_keys_event_parse(&k, pn, &ts, &seq)) {
                rc = rp_errf(eb, RP_INTERNAL, "corrupt event key of '%.*s'", (int)id.n, id.p);
                goto out;
            }
            if (ts >= cutoff) break;
            if (keep_n > 0 && k.mv_size == keep_n && memcmp(k.mv_data, keep, keep_n) == 0) {
                memcpy(from, keep, keep_n);
                fn = keep_n;
                past_from = true;
                continue;
            }
            mrc = mdb_cursor_del(cur, 0);
            if (mrc) {
                rc = rp_si_mdb(eb, mrc, "trimming events by age");
                goto out;
            }
            if (count > 0) count--;
        }
    }
    rc = rp_si_evcount_set(s, txn, id, count, eb);
out:
    mdb_cursor_close(cur);
    return rc;
}

rp_err rp_si_delete_prefix(rp_store *s, MDB_txn *txn, rp_db db, const char *prefix, size_t n,
                           uint64_t *deleted, rp_errbuf *eb) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening a cursor");
    uint64_t count = 0;
    for (;;) {
        MDB_val k = mval(prefix, n), v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == MDB_NOTFOUND || (mrc == 0 && !rp_keys_has_prefix(&k, prefix, n))) {
            mrc = 0;
            break;
        }
        if (mrc == 0) mrc = mdb_cursor_del(cur, 0);
        if (mrc) break;
        count++;
    }
    mdb_cursor_close(cur);
    if (deleted) *deleted = count;
    return mrc ? rp_si_mdb(eb, mrc, "deleting a key range") : RP_OK;
}

/* ------------------------------------------------------------------------ */
/* lifetime                                                                  */
/* ------------------------------------------------------------------------ */

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
    if (s->writer) rp_writer_stop(s->writer);
    if (s->env) {
        if (!s->readonly && s->writer) mdb_env_sync(s->env, 1);
        mdb_env_close(s->env);
    }
    pthread_rwlock_destroy(&s->map_lock);
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
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int e = pthread_rwlock_init(&s->map_lock, &a);
    pthread_rwlockattr_destroy(&a);
    if (e != 0) {
        free(s);
        return rp_errf(eb, RP_UNAVAILABLE, "cannot create the map lock: %s", strerror(e));
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
    MDB_val k = mval("schema", 6), v;
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
    if (missing) {
        unsigned char b[4];
        rp_keys_put_le32(b, RP_STORE_SCHEMA);
        MDB_val k = mval("schema", 6), v = mval(b, 4);
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

/* ------------------------------------------------------------------------ */
/* readers                                                                   */
/* ------------------------------------------------------------------------ */

/* Customers first (the common case costs one lookup), then aliases. */
/* Resolve id through aliases; *record (may be NULL) receives the canonical
 * customer's stored value, found on the way, so a caller that wants the
 * record does not look it up again. O(hops) mdb_gets. */
static rp_err resolve_record(rp_store *s, MDB_txn *txn, rp_str id, rp_str *canonical, MDB_val *record,
                             rp_errbuf *eb) {
    rp_err rc = rp_id_check(id, "id", eb);
    if (rc != RP_OK) return rc;
    rp_str cur = id;
    for (int hops = 0;; hops++) {
        MDB_val k = mval(cur.p, cur.n), v;
        int mrc = mdb_get(txn, s->dbi[RP_DB_CUSTOMERS], &k, &v);
        if (mrc == 0) {
            *canonical = cur;
            if (record) *record = v;
            return RP_OK;
        }
        if (mrc != MDB_NOTFOUND) return rp_si_mdb(eb, mrc, "reading a customer");
        mrc = mdb_get(txn, s->dbi[RP_DB_ALIASES], &k, &v);
        if (mrc == MDB_NOTFOUND) {
            if (hops == 0)
                return rp_errf(eb, RP_NOT_FOUND, "no customer with id '%.*s'", (int)id.n, id.p);
            return rp_errf(eb, RP_INTERNAL, "alias '%.*s' leads to missing customer '%.*s'",
                           (int)id.n, id.p, (int)cur.n, cur.p);
        }
        if (mrc) return rp_si_mdb(eb, mrc, "reading an alias");
        if (v.mv_size == 0 || v.mv_size > RP_ID_MAX)
            return rp_errf(eb, RP_INTERNAL, "corrupt alias '%.*s'", (int)cur.n, cur.p);
        if (hops == RP_STORE_ALIAS_HOPS)
            return rp_errf(eb, RP_INTERNAL, "alias chain of '%.*s' is longer than %d hops",
                           (int)id.n, id.p, RP_STORE_ALIAS_HOPS);
        cur = vstr(&v);
    }
}

rp_err rp_store_resolve(rp_store *s, MDB_txn *txn, rp_str id, rp_str *canonical, rp_errbuf *eb) {
    return resolve_record(s, txn, id, canonical, NULL, eb);
}

rp_err rp_store_get_customer(rp_store *s, MDB_txn *txn, rp_str id, rp_customer *out, rp_errbuf *eb) {
    rp_str cid;
    MDB_val v;
    rp_err rc = resolve_record(s, txn, id, &cid, &v, eb);
    if (rc != RP_OK) return rc;
    rc = decode_customer(&v, out, eb);
    if (rc != RP_OK) return rc;
    out->id = cid;
    return RP_OK;
}

/* Normalize raw into out->key for the index of kind. */
static rp_err lookup_key(rp_store *s, rp_ident_kind kind, rp_str raw, rp_lookup *out, size_t *kn,
                         rp_errbuf *eb) {
    switch (kind) {
    case RP_IDENT_PHONE: {
        char ph[RP_PHONE_MAX + 1];
        rp_err rc = rp_phone_normalize(raw.p ? raw.p : "", raw.n, s->cfg.default_country, ph, kn, eb);
        if (rc != RP_OK) return rc;
        assert(*kn <= RP_PHONE_MAX);
        memcpy(out->key, ph, *kn + 1);
        return RP_OK;
    }
    case RP_IDENT_EMAIL:
        return rp_email_normalize(raw.p ? raw.p : "", raw.n, out->key, kn, eb);
    case RP_IDENT_ACCOUNT: {
        rp_err rc = rp_id_check(raw, "account", eb);
        if (rc != RP_OK) return rc;
        memcpy(out->key, raw.p, raw.n);
        out->key[raw.n] = '\0';
        *kn = raw.n;
        return RP_OK;
    }
    }
    return rp_errf(eb, RP_BAD_REQUEST, "unknown identity kind %d", (int)kind);
}

/* MDB_SET on the key, then MDB_NEXT_DUP over its customer ids, resolving
 * each (defensively: merge re-points entries, so they are canonical) and
 * keeping the first RP_LOOKUP_MAX distinct ones. O(candidates log N). */
rp_err rp_store_lookup(rp_store *s, MDB_txn *txn, rp_ident_kind kind, rp_str raw, rp_lookup *out,
                       rp_errbuf *eb) {
    out->n = 0;
    out->truncated = false;
    out->key[0] = '\0';
    size_t kn = 0;
    rp_err rc = lookup_key(s, kind, raw, out, &kn, eb);
    if (rc != RP_OK) return rc;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[index_db(kind)], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an index cursor");
    MDB_val k = mval(out->key, kn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
    while (mrc == 0) {
        rp_str canon;
        rp_errbuf reb = {0};
        rc = rp_store_resolve(s, txn, vstr(&v), &canon, &reb);
        if (rc == RP_BAD_REQUEST) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt index entry under '%s'", out->key);
            goto out;
        }
        if (rc != RP_OK && rc != RP_NOT_FOUND) {
            rp_errf(eb, rc, "%s", reb.msg);
            goto out;
        }
        bool dup = (rc == RP_NOT_FOUND); /* a dangling entry is skipped */
        for (uint32_t i = 0; i < out->n && !dup; i++) dup = rp_str_eq(out->ids[i], canon);
        if (!dup) {
            if (out->n == RP_LOOKUP_MAX) {
                out->truncated = true;
                break;
            }
            out->ids[out->n++] = canon;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    rc = RP_OK;
    if (mrc != 0 && mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading an identity index");
out:
    mdb_cursor_close(cur);
    return rc;
}

/* Seek to the first key at or after (id, before) — or after all of id's
 * events — and step back: MDB_PREV walks newest first. O(log N + max). */
rp_err rp_store_history(rp_store *s, MDB_txn *txn, rp_str id, const rp_cursor *before, uint32_t max,
                        rp_event *out, uint32_t *n, bool *more, rp_cursor *next, rp_errbuf *eb) {
    *n = 0;
    *more = false;
    rp_str cid;
    rp_err rc = rp_store_resolve(s, txn, id, &cid, eb);
    if (rc != RP_OK) return rc;
    if (before != NULL && before->ts < 0) return RP_OK; /* nothing is older */
    char pfx[RP_KEYS_PREFIX_MAX], seek[RP_KEYS_EVENT_MAX];
    size_t pn = rp_keys_prefix(pfx, cid), sn;
    if (before != NULL) {
        sn = rp_keys_event(seek, cid, before->ts, before->seq);
    } else {
        memcpy(seek, pfx, pn);
        seek[pn - 1] = '\x01'; /* just after every "id\0..." key */
        sn = pn;
    }
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024)) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading history");
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_EVENTS], &cur);
    if (mrc) {
        msgpack_zone_destroy(&z);
        return rp_si_mdb(eb, mrc, "opening an events cursor");
    }
    MDB_val k = mval(seek, sn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0) mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    while (mrc == 0 && rp_keys_has_prefix(&k, pfx, pn)) {
        if (*n == max) {
            *more = true;
            break;
        }
        rp_event *e = &out[*n];
        if (!rp_keys_event_parse(&k, pn, &e->ts, &e->seq)) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt event key of '%.*s'", (int)cid.n, cid.p);
            goto out;
        }
        int64_t ts = e->ts;
        uint32_t seq = e->seq;
        rc = decode_event(&v, &z, e, eb);
        if (rc != RP_OK) goto out;
        e->customer_id = cid;
        e->ts = ts;
        e->seq = seq;
        (*n)++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = rp_si_mdb(eb, mrc, "reading events");
        goto out;
    }
    if (*more && next != NULL) {
        if (*n > 0) *next = (rp_cursor){out[*n - 1].ts, out[*n - 1].seq};
        else *next = before ? *before : (rp_cursor){INT64_MAX, UINT32_MAX};
    }
    rc = RP_OK;
out:
    mdb_cursor_close(cur);
    msgpack_zone_destroy(&z);
    return rc;
}

/* Forward over "id\0": issues come out in issue_id byte order. */
rp_err rp_store_issues(rp_store *s, MDB_txn *txn, rp_str id, uint32_t max, rp_issue *out,
                       uint32_t *n, bool *more, rp_errbuf *eb) {
    *n = 0;
    *more = false;
    rp_str cid;
    rp_err rc = rp_store_resolve(s, txn, id, &cid, eb);
    if (rc != RP_OK) return rc;
    char pfx[RP_KEYS_PREFIX_MAX];
    size_t pn = rp_keys_prefix(pfx, cid);
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024)) return rp_errf(eb, RP_UNAVAILABLE, "out of memory reading issues");
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_ISSUES], &cur);
    if (mrc) {
        msgpack_zone_destroy(&z);
        return rp_si_mdb(eb, mrc, "opening an issues cursor");
    }
    MDB_val k = mval(pfx, pn), v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && rp_keys_has_prefix(&k, pfx, pn)) {
        if (*n == max) {
            *more = true;
            break;
        }
        if (k.mv_size == pn || k.mv_size - pn > RP_ID_MAX) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt issue key of '%.*s'", (int)cid.n, cid.p);
            goto out;
        }
        rc = decode_issue(&v, &z, &out[*n], eb);
        if (rc != RP_OK) goto out;
        out[*n].customer_id = cid;
        out[*n].issue_id = (rp_str){(const char *)k.mv_data + pn, k.mv_size - pn};
        (*n)++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    rc = RP_OK;
    if (mrc != 0 && mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading issues");
out:
    mdb_cursor_close(cur);
    msgpack_zone_destroy(&z);
    return rc;
}

rp_err rp_store_get_issue(rp_store *s, MDB_txn *txn, rp_str id, rp_str issue_id, rp_issue *out,
                          rp_errbuf *eb) {
    rp_err rc = rp_id_check(issue_id, "issue_id", eb);
    if (rc != RP_OK) return rc;
    rp_str cid;
    rc = rp_store_resolve(s, txn, id, &cid, eb);
    if (rc != RP_OK) return rc;
    char key[RP_KEYS_ISSUE_MAX];
    size_t kn = rp_keys_issue(key, cid, issue_id);
    MDB_val k = mval(key, kn), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_ISSUES], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rp_errf(eb, RP_NOT_FOUND, "customer '%.*s' has no issue '%.*s'", (int)cid.n, cid.p,
                       (int)issue_id.n, issue_id.p);
    if (mrc) return rp_si_mdb(eb, mrc, "reading an issue");
    rc = rp_si_decode_issue(&v, out, eb);
    if (rc != RP_OK) return rc;
    out->customer_id = cid;
    out->issue_id = issue_id;
    return RP_OK;
}

/* Walk `customers` in key order from after `after`. O(N) for a full export,
 * one decode per record. */
rp_err rp_store_scan_customers(rp_store *s, MDB_txn *txn, rp_str after,
                               bool (*fn)(const rp_customer *c, void *arg), void *arg,
                               rp_errbuf *eb) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_CUSTOMERS], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening a customers cursor");
    rp_err rc = RP_OK;
    MDB_val k, v;
    if (after.n == 0) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        k = mval(after.p, after.n);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == 0 && k.mv_size == after.n && memcmp(k.mv_data, after.p, after.n) == 0)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    while (mrc == 0) {
        rp_customer c;
        rc = decode_customer(&v, &c, eb);
        if (rc != RP_OK) goto out;
        c.id = vstr(&k);
        if (!fn(&c, arg)) goto out;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc != MDB_NOTFOUND) rc = rp_si_mdb(eb, mrc, "reading customers");
out:
    mdb_cursor_close(cur);
    return rc;
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
    if (s->writer) rp_writer_get_stats(s->writer, &out->writer);
out:
    rp_store_rend(s, txn);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* writers                                                                   */
/* ------------------------------------------------------------------------ */

static bool str_in(rp_str x, const rp_str *list, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (rp_str_eq(x, list[i])) return true;
    return false;
}

/* A put on a merged-away id would resurrect it beside its alias. */
static rp_err check_not_alias(rp_store *s, MDB_txn *txn, rp_str id, rp_errbuf *eb) {
    MDB_val k = mval(id.p, id.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_ALIASES], &k, &v);
    if (mrc == MDB_NOTFOUND) return RP_OK;
    if (mrc) return rp_si_mdb(eb, mrc, "reading an alias");
    return rp_errf(eb, RP_CONFLICT, "id '%.*s' was merged into '%.*s'", (int)id.n, id.p,
                   (int)v.mv_size, (const char *)v.mv_data);
}

/* Drop index entries the old record had and the new one lacks; add the new
 * ones. O(identities^2) comparisons — at most 16 per kind. */
static rp_err reindex(rp_store *s, MDB_txn *txn, const rp_customer *old, const rp_customer *nc,
                      rp_errbuf *eb) {
    for (int kind = RP_IDENT_PHONE; kind <= RP_IDENT_ACCOUNT; kind++) {
        const rp_str *nl, *ol;
        uint32_t nn, on;
        rp_si_idents(nc, (rp_ident_kind)kind, &nl, &nn);
        if (old != NULL) {
            rp_si_idents(old, (rp_ident_kind)kind, &ol, &on);
            for (uint32_t i = 0; i < on; i++) {
                if (str_in(ol[i], nl, nn)) continue;
                rp_err rc = rp_si_index_del(s, txn, (rp_ident_kind)kind, ol[i], nc->id, eb);
                if (rc != RP_OK) return rc;
            }
        }
        for (uint32_t i = 0; i < nn; i++) {
            rp_err rc = rp_si_index_add(s, txn, (rp_ident_kind)kind, nl[i], nc->id, eb);
            if (rc != RP_OK) return rc;
        }
    }
    return RP_OK;
}

/* put with opts already defaulted; shared by put and patch. */
static rp_err put_customer(rp_store *s, MDB_txn *txn, const rp_customer *c, const rp_put_opts *opts,
                           uint64_t *version_out, rp_errbuf *eb) {
    rp_err rc = rp_customer_check(c, eb);
    if (rc != RP_OK) return rc;
    rc = check_not_alias(s, txn, c->id, eb);
    if (rc != RP_OK) return rc;
    rp_si_blob blob = {0};
    rp_customer old;
    rc = rp_si_load_customer(s, txn, c->id, &blob, &old, eb);
    if (rc != RP_OK && rc != RP_NOT_FOUND) return rc;
    bool exists = (rc == RP_OK);
    uint64_t stored = exists ? old.version : 0;
    if (opts->has_expect && opts->expect_version != stored) {
        if (opts->expect_version == 0)
            rc = rp_errf(eb, RP_CONFLICT, "customer '%.*s' already exists (version %" PRIu64 ")",
                         (int)c->id.n, c->id.p, stored);
        else
            rc = rp_errf(eb, RP_CONFLICT, "expected version %" PRIu64 ", stored %" PRIu64,
                         opts->expect_version, stored);
        goto out;
    }
    rp_customer nc = *c;
    nc.version = (opts->restore && c->version != 0) ? c->version : stored + 1;
    nc.updated_at = (opts->restore && c->updated_at != 0) ? c->updated_at : rp_si_now(opts->now);
    rc = reindex(s, txn, exists ? &old : NULL, &nc, eb);
    if (rc == RP_OK) rc = rp_si_store_customer(s, txn, &nc, eb);
    if (rc == RP_OK && version_out != NULL) *version_out = nc.version;
out:
    rp_si_blob_free(&blob);
    return rc;
}

rp_err rp_store_wput_customer(rp_store *s, MDB_txn *txn, const rp_customer *c,
                              const rp_put_opts *opts, uint64_t *version_out, rp_errbuf *eb) {
    rp_put_opts none = {0};
    return put_customer(s, txn, c, opts ? opts : &none, version_out, eb);
}

/* Load the stored record, apply the patch with a stack arena for the
 * normalized strings, and put the result under the same version rules.
 * restore is ignored: a patch always makes a new version. */
rp_err rp_store_wpatch_customer(rp_store *s, MDB_txn *txn, rp_str id, const msgpack_object *patch,
                                const rp_put_opts *opts, uint64_t *version_out, rp_errbuf *eb) {
    char idbuf[RP_ID_MAX];
    rp_str cid;
    rp_err rc = rp_si_resolve_copy(s, txn, id, idbuf, &cid, eb);
    if (rc != RP_OK) return rc;
    rp_si_blob blob;
    rp_customer c;
    rc = rp_si_load_customer(s, txn, cid, &blob, &c, eb);
    if (rc != RP_OK) return rc;
    char abuf[RP_STORE_PATCH_ARENA];
    rp_arena arena = {abuf, sizeof abuf, 0};
    rc = rp_customer_patch(&c, patch, s->cfg.default_country, &arena, eb);
    if (rc == RP_OK) {
        rp_put_opts po = opts ? *opts : (rp_put_opts){0};
        po.restore = false;
        c.id = cid;
        rc = put_customer(s, txn, &c, &po, version_out, eb);
    }
    rp_si_blob_free(&blob);
    return rc;
}

rp_err rp_store_wappend_event(rp_store *s, MDB_txn *txn, const rp_event *e, int64_t now,
                              rp_cursor *at_out, rp_errbuf *eb) {
    rp_err rc = rp_event_check(e, eb);
    if (rc != RP_OK) return rc;
    char idbuf[RP_ID_MAX];
    rp_str cid;
    rc = rp_si_resolve_copy(s, txn, e->customer_id, idbuf, &cid, eb);
    if (rc != RP_OK) return rc;
    uint32_t seq, count;
    rc = rp_si_event_next_seq(s, txn, cid, e->ts, &seq, eb);
    if (rc != RP_OK) return rc;
    rc = rp_si_evcount_get(s, txn, cid, &count, eb);
    if (rc != RP_OK) return rc;
    if (count == UINT32_MAX)
        return rp_errf(eb, RP_TOO_LARGE, "customer '%.*s' has too many events", (int)cid.n, cid.p);
    char key[RP_KEYS_EVENT_MAX];
    size_t kn = rp_keys_event(key, cid, e->ts, seq);
    enc_buf eb_;
    enc_init(&eb_);
    rp_event_encode(&eb_.pk, e, RP_ENC_STORED);
    rc = enc_put(txn, s->dbi[RP_DB_EVENTS], key, kn, &eb_, MDB_NOOVERWRITE, "storing an event", eb);
    if (rc != RP_OK) return rc;
    rc = rp_si_evcount_set(s, txn, cid, count + 1, eb);
    if (rc != RP_OK) return rc;
    rc = rp_si_trim(s, txn, cid, now, key, kn, eb);
    if (rc != RP_OK) return rc;
    if (at_out != NULL) *at_out = (rp_cursor){e->ts, seq};
    return RP_OK;
}

rp_err rp_store_wput_issue(rp_store *s, MDB_txn *txn, const rp_issue *i, int64_t now, rp_errbuf *eb) {
    rp_err rc = rp_issue_check(i, eb);
    if (rc != RP_OK) return rc;
    char idbuf[RP_ID_MAX];
    rp_str cid;
    rc = rp_si_resolve_copy(s, txn, i->customer_id, idbuf, &cid, eb);
    if (rc != RP_OK) return rc;
    char key[RP_KEYS_ISSUE_MAX];
    size_t kn = rp_keys_issue(key, cid, i->issue_id);
    int64_t t = rp_si_now(now);
    rp_issue ni = *i;
    ni.customer_id = cid;
    if (ni.opened_at == 0) {
        MDB_val k = mval(key, kn), v;
        int mrc = mdb_get(txn, s->dbi[RP_DB_ISSUES], &k, &v);
        ni.opened_at = t;
        if (mrc == 0) {
            rp_issue old;
            rc = rp_si_decode_issue(&v, &old, eb);
            if (rc != RP_OK) return rc;
            if (old.opened_at != 0) ni.opened_at = old.opened_at;
        } else if (mrc != MDB_NOTFOUND) {
            return rp_si_mdb(eb, mrc, "reading an issue");
        }
    }
    if (ni.updated_at == 0) ni.updated_at = t;
    enc_buf e;
    enc_init(&e);
    rp_issue_encode(&e.pk, &ni, RP_ENC_STORED);
    return enc_put(txn, s->dbi[RP_DB_ISSUES], key, kn, &e, 0, "storing an issue", eb);
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

/* The convenience wrappers: one arg struct and one rp_write_fn each. The
 * fns only write into their arg, so a re-run after map growth is harmless. */
typedef struct put_arg {
    rp_store *s;
    const rp_customer *c;
    const rp_put_opts *opts;
    uint64_t *version_out;
} put_arg;

static rp_err put_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    put_arg *a = arg;
    return rp_store_wput_customer(a->s, txn, a->c, a->opts, a->version_out, eb);
}

rp_err rp_store_put_customer(rp_store *s, const rp_customer *c, const rp_put_opts *opts,
                             uint64_t *version_out, rp_errbuf *eb) {
    put_arg a = {s, c, opts, version_out};
    return rp_store_write(s, put_fn, &a, eb);
}

typedef struct append_arg {
    rp_store *s;
    const rp_event *e;
    int64_t now;
    rp_cursor *at_out;
} append_arg;

static rp_err append_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    append_arg *a = arg;
    return rp_store_wappend_event(a->s, txn, a->e, a->now, a->at_out, eb);
}

rp_err rp_store_append_event(rp_store *s, const rp_event *e, int64_t now, rp_cursor *at_out,
                             rp_errbuf *eb) {
    append_arg a = {s, e, now, at_out};
    return rp_store_write(s, append_fn, &a, eb);
}

typedef struct issue_arg {
    rp_store *s;
    const rp_issue *i;
    int64_t now;
} issue_arg;

static rp_err issue_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    issue_arg *a = arg;
    return rp_store_wput_issue(a->s, txn, a->i, a->now, eb);
}

rp_err rp_store_put_issue(rp_store *s, const rp_issue *i, int64_t now, rp_errbuf *eb) {
    issue_arg a = {s, i, now};
    return rp_store_write(s, issue_fn, &a, eb);
}

typedef struct forget_arg {
    rp_store *s;
    rp_str id;
} forget_arg;

static rp_err forget_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    forget_arg *a = arg;
    return rp_store_wforget(a->s, txn, a->id, eb);
}

rp_err rp_store_forget(rp_store *s, rp_str id, rp_errbuf *eb) {
    forget_arg a = {s, id};
    return rp_store_write(s, forget_fn, &a, eb);
}

typedef struct merge_arg {
    rp_store *s;
    rp_str from, into;
    int64_t now;
    uint64_t *version_out;
} merge_arg;

static rp_err merge_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    merge_arg *a = arg;
    return rp_store_wmerge(a->s, txn, a->from, a->into, a->now, a->version_out, eb);
}

rp_err rp_store_merge(rp_store *s, rp_str from, rp_str into, int64_t now, uint64_t *version_out,
                      rp_errbuf *eb) {
    merge_arg a = {s, from, into, now, version_out};
    return rp_store_write(s, merge_fn, &a, eb);
}
