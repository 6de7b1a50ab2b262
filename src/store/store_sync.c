/* store_sync.c — the synchronous convenience wrappers (store.h): one
 * rp_write_fn and one argument struct each, run by rp_store_write.
 *
 * The top of the store: it calls the writers and merge.c; nothing calls it
 * back. The fns only write into their arg, so a re-run after map growth is
 * harmless.
 */
#include "store/store.h"

typedef struct put_arg {
    rp_store *s;
    const rp_customer *c;
    const rp_put_opts *opts;
    uint64_t *version_out;
} put_arg;

static rp_err put_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    put_arg *a = arg;
    return rp_store_wput_customer(a->s, txn, a->c, a->opts, a->version_out, NULL, eb);
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
    return rp_store_wappend_event(a->s, txn, a->e, a->now, a->at_out, NULL, NULL, eb);
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
    return rp_store_wput_issue(a->s, txn, a->i, a->now, NULL, eb);
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
    return rp_store_wforget(a->s, txn, a->id, NULL, eb);
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
    return rp_store_wmerge(a->s, txn, a->from, a->into, a->now, a->version_out, NULL, NULL, eb);
}

rp_err rp_store_merge(rp_store *s, rp_str from, rp_str into, int64_t now, uint64_t *version_out,
                      rp_errbuf *eb) {
    merge_arg a = {s, from, into, now, version_out};
    return rp_store_write(s, merge_fn, &a, eb);
}


typedef struct alias_arg {
    rp_store *s;
    rp_str alias_id, survivor_id;
} alias_arg;

static rp_err alias_fn(MDB_txn *txn, void *arg, rp_errbuf *eb) {
    alias_arg *a = arg;
    return rp_store_wput_alias(a->s, txn, a->alias_id, a->survivor_id, eb);
}

rp_err rp_store_put_alias(rp_store *s, rp_str alias_id, rp_str survivor_id, rp_errbuf *eb) {
    alias_arg a = {s, alias_id, survivor_id};
    return rp_store_write(s, alias_fn, &a, eb);
}
