/* merge.c — folding one customer into another, and forgetting one.
 *
 * Both are whole-customer rewrites that touch every named database, and
 * both run inside one write transaction (the caller's rp_write_fn), so a
 * failure half-way leaves nothing behind: the writer rolls the nested
 * transaction back.
 *
 * merge(from, into): every decision that can fail for a reason other than
 * LMDB or corrupt data (ids, identity and list limits, the stored-record
 * validator, event counts) is taken before the first write (merge_plan), so
 * RP_TOO_LARGE and RP_CONFLICT never depend on the rollback. Merge moves
 * only events, issues and aliases itself; the survivor's record is written
 * by the one customer write (store_write.c rp_si_customer_write), which
 * validates, versions, reindexes (from's identities now name `into`) and
 * puts it. Events are re-keyed under
 * `into` one by one, keeping their (ts, seq) unless `into` already has that
 * key, in which case they get the next free seq at that ts — except an
 * event whose event_id `into` already has: that is the same source event
 * stored under both duplicates, so from's copy is dropped (into's stays)
 * and counted; issues keep
 * their issue_id, and when both customers have the same issue_id the one
 * updated later wins (into's on a tie). Aliases that pointed at `from` are
 * re-pointed at `into`, so chains stay one hop long.
 *
 * put_alias(alias, survivor): the alias a merge leaves, written on its own
 * (import restores exported aliases). The survivor is resolved first, so
 * the alias names the canonical customer and chains stay one hop; an id
 * that is a live customer never becomes an alias; an existing alias may
 * only be written again unchanged (idempotent, nothing written).
 *
 * forget(id): deletes the profile, its index entries, its events, issues
 * and event_id entries (range deletes over "id\0"), its event count, its
 * card digest, and
 * every alias that points at it together with the alias_rev entries — found through alias_rev, so
 * no scan of `aliases` is needed.
 *
 * Cost: O((identities + events + issues + aliases) log N) for both.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/codec.h"
#include "model/ident.h"
#include "store/keys.h"
#include "store/store.h"
#include "store/store_int.h"

/* Append x to list[*n] unless present; false when the list is full. */
static bool add_unique(rp_str *list, uint32_t *n, uint32_t cap, rp_str x) {
    for (uint32_t i = 0; i < *n; i++)
        if (rp_str_eq(list[i], x)) return true;
    if (*n >= cap) return false;
    list[(*n)++] = x;
    return true;
}

/* Fold profile f into m (a copy of into): empty scalars filled, lists
 * united, prefs added where m lacks the key, earliest customer_since.
 * Returns RP_OK or RP_TOO_LARGE naming the list that would overflow. */
static rp_err merge_profile(rp_customer *m, const rp_customer *f, rp_errbuf *eb) {
    rp_str *ms[] = {&m->name, &m->preferred_name, &m->language, &m->timezone, &m->tier};
    const rp_str fs[] = {f->name, f->preferred_name, f->language, f->timezone, f->tier};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]->n == 0) *ms[i] = fs[i];
    if (f->customer_since != 0 && (m->customer_since == 0 || f->customer_since < m->customer_since))
        m->customer_since = f->customer_since;
    const struct {
        rp_str *dst;
        uint32_t *n;
        uint32_t cap;
        const rp_str *src;
        uint32_t sn;
        const char *what;
    } lists[] = {
        {m->flags, &m->nflags, RP_MAX_FLAGS, f->flags, f->nflags, "flags"},
        {m->notes, &m->nnotes, RP_MAX_NOTES, f->notes, f->nnotes, "rapport_notes"},
        {m->phones, &m->nphones, RP_MAX_PHONES, f->phones, f->nphones, "phones"},
        {m->emails, &m->nemails, RP_MAX_EMAILS, f->emails, f->nemails, "emails"},
        {m->accounts, &m->naccounts, RP_MAX_ACCOUNTS, f->accounts, f->naccounts, "accounts"},
    };
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
        for (uint32_t i = 0; i < lists[l].sn; i++)
            if (!add_unique(lists[l].dst, lists[l].n, lists[l].cap, lists[l].src[i]))
                return rp_errf(eb, RP_TOO_LARGE, "merged customer would have more than %" PRIu32 " %s",
                               lists[l].cap, lists[l].what);
    for (uint32_t i = 0; i < f->nprefs; i++) {
        bool have = false;
        for (uint32_t j = 0; j < m->nprefs && !have; j++) have = rp_str_eq(m->prefs[j].key, f->prefs[i].key);
        if (have) continue;
        if (m->nprefs >= RP_MAX_PREFS)
            return rp_errf(eb, RP_TOO_LARGE, "merged customer would have more than %d preferences",
                           RP_MAX_PREFS);
        m->prefs[m->nprefs++] = f->prefs[i];
    }
    return RP_OK;
}

/* Remove the index entries of f's identities that name fid (the survivor's
 * entries are added by the customer write's reindex). */
static rp_err unindex(rp_store *s, MDB_txn *txn, const rp_customer *f, rp_str fid, rp_errbuf *eb) {
    for (int kind = RP_IDENT_PHONE; kind <= RP_IDENT_ACCOUNT; kind++) {
        const rp_str *list;
        uint32_t n;
        rp_si_idents(f, (rp_ident_kind)kind, &list, &n);
        for (uint32_t i = 0; i < n; i++) {
            rp_err rc = rp_si_index_del(s, txn, (rp_ident_kind)kind, list[i], fid, eb);
            if (rc != RP_OK) return rc;
        }
    }
    return RP_OK;
}

/* Move one event of fid, value val[0..vn), to iid at (ts, seq) or, when
 * iid has that key, the next free seq at ts; index its event_id (evid,
 * en > 0) under iid. Then delete the old key ok. */
static rp_err move_event(rp_store *s, MDB_txn *txn, rp_str iid, int64_t ts, uint32_t seq,
                         const char *val, size_t vn, rp_str evid, const char *ok, size_t okn,
                         rp_errbuf *eb) {
    MDB_dbi dbi = s->dbi[RP_DB_EVENTS];
    char nk[RP_KEYS_EVENT_MAX];
    size_t nkn = rp_keys_event(nk, iid, ts, seq);
    MDB_val nkv = rp_si_mval(nk, nkn), nv = rp_si_mval(val, vn);
    int mrc = mdb_put(txn, dbi, &nkv, &nv, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST) {
        rp_err rc = rp_si_event_next_seq(s, txn, iid, ts, &seq, eb);
        if (rc != RP_OK) return rc;
        nkn = rp_keys_event(nk, iid, ts, seq);
        nkv = rp_si_mval(nk, nkn);
        nv = rp_si_mval(val, vn);
        mrc = mdb_put(txn, dbi, &nkv, &nv, MDB_NOOVERWRITE);
    }
    if (mrc == 0) {
        MDB_val okv = rp_si_mval(ok, okn);
        mrc = mdb_del(txn, dbi, &okv, NULL);
    }
    if (mrc) return rp_si_mdb(eb, mrc, "moving an event");
    return evid.n > 0 ? rp_si_evid_put(s, txn, iid, evid, ts, seq, eb) : RP_OK;
}

/* Re-key fid's events under iid, oldest first. The value is copied before
 * the put (the put may invalidate it). An event whose event_id iid already
 * has is dropped (iid's copy stays). *moved gets the number moved,
 * *dropped the number dropped. fid's evids entries are left for the caller
 * to delete. */
static rp_err move_events(rp_store *s, MDB_txn *txn, rp_str fid, rp_str iid, uint32_t *moved,
                          uint32_t *dropped, rp_errbuf *eb) {
    char fp[RP_KEYS_PREFIX_MAX];
    size_t fpn = rp_keys_prefix(fp, fid);
    MDB_dbi dbi = s->dbi[RP_DB_EVENTS];
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an events cursor");
    rp_err rc = RP_OK;
    char *val = NULL;
    size_t cap = 0;
    *moved = *dropped = 0;
    for (;;) {
        MDB_val k = rp_si_mval(fp, fpn), v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == MDB_NOTFOUND || (mrc == 0 && !rp_keys_has_prefix(&k, fp, fpn))) break;
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "reading events");
            goto out;
        }
        int64_t ts;
        uint32_t seq;
        if (!rp_keys_event_parse(&k, fpn, &ts, &seq)) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt event key of '%.*s'", (int)fid.n, fid.p);
            goto out;
        }
        if (v.mv_size > cap) {
            char *nv = realloc(val, v.mv_size);
            if (nv == NULL) {
                rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory moving events");
                goto out;
            }
            val = nv;
            cap = v.mv_size;
        }
        size_t vn = v.mv_size;
        if (vn) memcpy(val, v.mv_data, vn);
        char ebuf[RP_ID_MAX], ok[RP_KEYS_EVENT_MAX];
        size_t en, okn = rp_keys_event(ok, fid, ts, seq);
        rc = rp_si_event_value_evid(&v, ebuf, &en, eb);
        if (rc != RP_OK) goto out;
        rp_str evid = {ebuf, en};
        rp_cursor there;
        rc = en > 0 ? rp_si_evid_get(s, txn, iid, evid, &there, eb) : RP_NOT_FOUND;
        if (rc == RP_OK) { /* into has it already: drop from's copy */
            MDB_val okv = rp_si_mval(ok, okn);
            mrc = mdb_del(txn, dbi, &okv, NULL);
            if (mrc) {
                rc = rp_si_mdb(eb, mrc, "dropping a duplicate event");
                goto out;
            }
            (*dropped)++;
            continue;
        }
        if (rc != RP_NOT_FOUND) goto out;
        rc = move_event(s, txn, iid, ts, seq, val, vn, evid, ok, okn, eb);
        if (rc != RP_OK) goto out;
        (*moved)++;
    }
out:
    mdb_cursor_close(cur);
    free(val);
    return rc;
}

/* Move fid's issues under iid; on a shared issue_id the later updated_at
 * wins (into's on a tie). */
static rp_err move_issues(rp_store *s, MDB_txn *txn, rp_str fid, rp_str iid, rp_errbuf *eb) {
    char fp[RP_KEYS_PREFIX_MAX];
    size_t fpn = rp_keys_prefix(fp, fid);
    MDB_dbi dbi = s->dbi[RP_DB_ISSUES];
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an issues cursor");
    rp_err rc = RP_OK;
    rp_si_blob fv = {0};
    for (;;) {
        MDB_val k = rp_si_mval(fp, fpn), v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == MDB_NOTFOUND || (mrc == 0 && !rp_keys_has_prefix(&k, fp, fpn))) break;
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "reading issues");
            goto out;
        }
        if (k.mv_size == fpn || k.mv_size - fpn > RP_ID_MAX) {
            rc = rp_errf(eb, RP_INTERNAL, "corrupt issue key of '%.*s'", (int)fid.n, fid.p);
            goto out;
        }
        char ibuf[RP_ID_MAX];
        rp_str issue_id = {ibuf, k.mv_size - fpn};
        memcpy(ibuf, (const char *)k.mv_data + fpn, issue_id.n);
        rp_si_blob_free(&fv);
        fv.p = malloc(v.mv_size ? v.mv_size : 1);
        if (fv.p == NULL) {
            rc = rp_errf(eb, RP_UNAVAILABLE, "out of memory moving issues");
            goto out;
        }
        fv.n = v.mv_size;
        memcpy(fv.p, v.mv_data, fv.n);
        char nk[RP_KEYS_ISSUE_MAX], ok[RP_KEYS_ISSUE_MAX];
        size_t nkn = rp_keys_issue(nk, iid, issue_id), okn = rp_keys_issue(ok, fid, issue_id);
        MDB_val nkv = rp_si_mval(nk, nkn), existing, fval = rp_si_mval(fv.p, fv.n);
        bool keep_from = true;
        mrc = mdb_get(txn, dbi, &nkv, &existing);
        if (mrc == 0) {
            rp_issue a, b;
            rc = rp_si_decode_issue(&existing, &a, eb);
            if (rc == RP_OK) rc = rp_si_decode_issue(&fval, &b, eb);
            if (rc != RP_OK) goto out;
            keep_from = b.updated_at > a.updated_at;
        } else if (mrc != MDB_NOTFOUND) {
            rc = rp_si_mdb(eb, mrc, "reading an issue");
            goto out;
        }
        mrc = keep_from ? mdb_put(txn, dbi, &nkv, &fval, 0) : 0;
        if (mrc == 0) {
            MDB_val okv = rp_si_mval(ok, okn);
            mrc = mdb_del(txn, dbi, &okv, NULL);
        }
        if (mrc) {
            rc = rp_si_mdb(eb, mrc, "moving an issue");
            goto out;
        }
    }
out:
    mdb_cursor_close(cur);
    rp_si_blob_free(&fv);
    return rc;
}

/* Take the aliases that point at `target` out of alias_rev one by one
 * (MDB_SET_KEY gives the first remaining dup each time; the copy is made
 * before any write). With new_target: re-point them there; without: delete
 * the aliases themselves. */
static rp_err drain_aliases(rp_store *s, MDB_txn *txn, rp_str target, const rp_str *new_target,
                            rp_errbuf *eb) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[RP_DB_ALIAS_REV], &cur);
    if (mrc) return rp_si_mdb(eb, mrc, "opening an alias cursor");
    for (;;) {
        MDB_val k = rp_si_mval(target.p, target.n), v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
        if (mrc == MDB_NOTFOUND) {
            mrc = 0;
            break;
        }
        if (mrc) break;
        if (v.mv_size == 0 || v.mv_size > RP_ID_MAX) {
            mdb_cursor_close(cur);
            return rp_errf(eb, RP_INTERNAL, "corrupt alias_rev entry of '%.*s'", (int)target.n, target.p);
        }
        char obuf[RP_ID_MAX];
        size_t on = v.mv_size;
        memcpy(obuf, v.mv_data, on);
        MDB_val ok = rp_si_mval(obuf, on);
        if (new_target != NULL) {
            MDB_val nv = rp_si_mval(new_target->p, new_target->n);
            MDB_val nk = rp_si_mval(new_target->p, new_target->n), ov = rp_si_mval(obuf, on);
            mrc = mdb_put(txn, s->dbi[RP_DB_ALIASES], &ok, &nv, 0);
            if (mrc == 0) mrc = mdb_put(txn, s->dbi[RP_DB_ALIAS_REV], &nk, &ov, MDB_NODUPDATA);
            if (mrc == MDB_KEYEXIST) mrc = 0;
        } else {
            mrc = mdb_del(txn, s->dbi[RP_DB_ALIASES], &ok, NULL);
            if (mrc == MDB_NOTFOUND) mrc = 0;
        }
        if (mrc) break;
        MDB_val tk = rp_si_mval(target.p, target.n), ov = rp_si_mval(obuf, on);
        mrc = mdb_del(txn, s->dbi[RP_DB_ALIAS_REV], &tk, &ov);
        if (mrc) break;
    }
    mdb_cursor_close(cur);
    return mrc ? rp_si_mdb(eb, mrc, "updating aliases") : RP_OK;
}

/* Every decision that can fail without LMDB or corrupt data failing:
 * both ids resolve and differ, both records load, the merged profile fits
 * the limits (merge_profile) and passes the stored-record validator, and
 * the event counts add up. Nothing is written. fcount and icount get the
 * event counts. */
static rp_err merge_plan(rp_store *s, MDB_txn *txn, rp_str fid, rp_str iid, rp_si_blob *fb,
                         rp_customer *f, rp_si_blob *ib, rp_customer *m, uint32_t *fcount,
                         uint32_t *icount, rp_errbuf *eb) {
    rp_err rc = rp_si_load_customer(s, txn, fid, fb, f, eb);
    if (rc == RP_OK) rc = rp_si_load_customer(s, txn, iid, ib, m, eb);
    if (rc == RP_OK) rc = merge_profile(m, f, eb);
    if (rc == RP_OK) rc = rp_customer_check(m, eb);
    if (rc == RP_OK) rc = rp_si_evcount_get(s, txn, fid, fcount, eb);
    if (rc == RP_OK) rc = rp_si_evcount_get(s, txn, iid, icount, eb);
    if (rc == RP_OK && *fcount > UINT32_MAX - *icount)
        rc = rp_errf(eb, RP_TOO_LARGE, "merged customer would have too many events");
    return rc;
}

/* Move fid's events and issues under iid, drop fid's evids entries, set
 * both event counts, trim, rebuild iid's card digest from its new history
 * and delete fid's. *dropped gets the duplicate events dropped. */
static rp_err merge_history(rp_store *s, MDB_txn *txn, rp_str fid, rp_str iid, uint32_t icount,
                            int64_t now, uint32_t *dropped, rp_errbuf *eb) {
    uint32_t moved = 0;
    rp_err rc = move_events(s, txn, fid, iid, &moved, dropped, eb);
    if (rc != RP_OK) return rc;
    char fp[RP_KEYS_PREFIX_MAX];
    size_t fpn = rp_keys_prefix(fp, fid);
    rc = rp_si_delete_prefix(s, txn, RP_DB_EVIDS, fp, fpn, NULL, eb);
    if (rc != RP_OK) return rc;
    if (moved > UINT32_MAX - icount) /* evcount disagreed with the events */
        return rp_errf(eb, RP_INTERNAL, "event count of '%.*s' is corrupt", (int)fid.n, fid.p);
    rc = rp_si_evcount_set(s, txn, iid, icount + moved, eb);
    if (rc == RP_OK) rc = rp_si_evcount_set(s, txn, fid, 0, eb);
    if (rc == RP_OK) rc = rp_si_trim(s, txn, iid, now, NULL, 0, eb);
    if (rc == RP_OK) rc = rp_si_digest_rebuild(s, txn, iid, eb);
    if (rc == RP_OK) rc = rp_si_digest_del(s, txn, fid, eb);
    if (rc == RP_OK) rc = move_issues(s, txn, fid, iid, eb);
    return rc;
}

/* Record alias -> canon: aliases[alias] = canon, alias_rev[canon] += alias
 * (an existing pair is fine): for a merge and for an imported alias. */
static rp_err alias_record(rp_store *s, MDB_txn *txn, rp_str alias, rp_str canon, rp_errbuf *eb) {
    MDB_val ak = rp_si_mval(alias.p, alias.n), cv = rp_si_mval(canon.p, canon.n);
    int mrc = mdb_put(txn, s->dbi[RP_DB_ALIASES], &ak, &cv, 0);
    if (mrc == 0) {
        MDB_val ck = rp_si_mval(canon.p, canon.n), av = rp_si_mval(alias.p, alias.n);
        mrc = mdb_put(txn, s->dbi[RP_DB_ALIAS_REV], &ck, &av, MDB_NODUPDATA);
        if (mrc == MDB_KEYEXIST) mrc = 0;
    }
    return mrc ? rp_si_mdb(eb, mrc, "recording the alias") : RP_OK;
}

/* Delete fid's record and make it an alias of iid, re-pointing the aliases
 * that pointed at fid. */
static rp_err merge_alias(rp_store *s, MDB_txn *txn, rp_str fid, rp_str iid, rp_errbuf *eb) {
    MDB_val fk = rp_si_mval(fid.p, fid.n);
    int mrc = mdb_del(txn, s->dbi[RP_DB_CUSTOMERS], &fk, NULL);
    if (mrc) return rp_si_mdb(eb, mrc, "recording the alias");
    rp_err rc = alias_record(s, txn, fid, iid, eb);
    return rc == RP_OK ? drain_aliases(s, txn, fid, &iid, eb) : rc;
}

/* The order: every failing decision first (merge_plan, no writes); then
 * from's index entries, events, issues; the survivor's record through the
 * one customer write (which indexes from's identities under into); the
 * alias. */
rp_err rp_store_wmerge(rp_store *s, MDB_txn *txn, rp_str from, rp_str into, int64_t now,
                       uint64_t *version_out, uint32_t *dropped_out, rp_store_id *canon_out,
                       rp_errbuf *eb) {
    char fbuf[RP_ID_MAX], ibuf[RP_ID_MAX];
    rp_str fid, iid;
    rp_err rc = rp_si_resolve_copy(s, txn, from, fbuf, &fid, eb);
    if (rc == RP_OK) rc = rp_si_resolve_copy(s, txn, into, ibuf, &iid, eb);
    if (rc != RP_OK) return rc;
    if (rp_str_eq(fid, iid))
        return rp_errf(eb, RP_CONFLICT, "'%.*s' and '%.*s' are already the same customer", (int)from.n,
                       from.p, (int)into.n, into.p);
    rp_si_blob fb = {0}, ib = {0};
    rp_customer f, m;
    uint32_t fcount = 0, icount = 0, dropped = 0;
    rc = merge_plan(s, txn, fid, iid, &fb, &f, &ib, &m, &fcount, &icount, eb);
    if (rc != RP_OK) goto fail;
    rc = unindex(s, txn, &f, fid, eb);
    if (rc == RP_OK) rc = merge_history(s, txn, fid, iid, icount, now, &dropped, eb);
    if (rc != RP_OK) goto fail;
    rp_put_opts po = {.now = now};
    rc = rp_si_customer_write(s, txn, &m, &po, version_out, eb);
    if (rc == RP_OK) rc = merge_alias(s, txn, fid, iid, eb);
    if (rc == RP_OK) rp_si_id_out(canon_out, iid);
    if (rc == RP_OK && dropped_out != NULL) *dropped_out = dropped;
fail:
    rp_si_blob_free(&fb);
    rp_si_blob_free(&ib);
    return rc;
}

/* Every check comes before the first write: ids, the survivor resolved
 * (copied: the puts below may move the map's pages), alias_id not a
 * customer, an existing alias the same. Then aliases, then alias_rev. */
rp_err rp_store_wput_alias(rp_store *s, MDB_txn *txn, rp_str alias_id, rp_str survivor_id,
                           rp_errbuf *eb) {
    rp_err rc = rp_id_check(alias_id, "id", eb);
    if (rc == RP_OK) rc = rp_id_check(survivor_id, "customer_id", eb);
    if (rc != RP_OK) return rc;
    char cbuf[RP_ID_MAX];
    rp_str cid;
    rp_errbuf reb = {0};
    rc = rp_si_resolve_copy(s, txn, survivor_id, cbuf, &cid, &reb);
    if (rc == RP_NOT_FOUND)
        return rp_errf(eb, RP_NOT_FOUND, "alias target '%.*s' does not exist (import the customer first)",
                       (int)survivor_id.n, survivor_id.p);
    if (rc != RP_OK) return rp_errf(eb, rc, "%s", reb.msg);
    MDB_val ak = rp_si_mval(alias_id.p, alias_id.n), v;
    int mrc = mdb_get(txn, s->dbi[RP_DB_CUSTOMERS], &ak, &v);
    if (mrc == 0)
        return rp_errf(eb, RP_CONFLICT, "id '%.*s' is a customer; it cannot be an alias of '%.*s'",
                       (int)alias_id.n, alias_id.p, (int)cid.n, cid.p);
    if (mrc != MDB_NOTFOUND) return rp_si_mdb(eb, mrc, "reading a customer");
    mrc = mdb_get(txn, s->dbi[RP_DB_ALIASES], &ak, &v);
    if (mrc == 0) {
        if (v.mv_size == cid.n && memcmp(v.mv_data, cid.p, cid.n) == 0) return RP_OK;
        return rp_errf(eb, RP_CONFLICT, "id '%.*s' was merged into '%.*s', not '%.*s'", (int)alias_id.n,
                       alias_id.p, (int)(v.mv_size <= RP_ID_MAX ? v.mv_size : RP_ID_MAX),
                       (const char *)v.mv_data, (int)cid.n, cid.p);
    }
    if (mrc != MDB_NOTFOUND) return rp_si_mdb(eb, mrc, "reading an alias");
    assert(!rp_str_eq(alias_id, cid)); /* cid is a customer, alias_id is not */
    return alias_record(s, txn, alias_id, cid, eb);
}

rp_err rp_store_wforget(rp_store *s, MDB_txn *txn, rp_str id, rp_store_id *canon_out, rp_errbuf *eb) {
    char idbuf[RP_ID_MAX];
    rp_str cid;
    rp_si_blob blob;
    rp_customer c;
    rp_err rc = rp_si_load_resolved(s, txn, id, idbuf, &cid, &blob, &c, eb);
    if (rc != RP_OK) return rc;
    for (int kind = RP_IDENT_PHONE; kind <= RP_IDENT_ACCOUNT && rc == RP_OK; kind++) {
        const rp_str *list;
        uint32_t n;
        rp_si_idents(&c, (rp_ident_kind)kind, &list, &n);
        for (uint32_t i = 0; i < n && rc == RP_OK; i++)
            rc = rp_si_index_del(s, txn, (rp_ident_kind)kind, list[i], cid, eb);
    }
    char pfx[RP_KEYS_PREFIX_MAX];
    size_t pn = rp_keys_prefix(pfx, cid);
    if (rc == RP_OK) rc = rp_si_delete_prefix(s, txn, RP_DB_EVENTS, pfx, pn, NULL, eb);
    if (rc == RP_OK) rc = rp_si_delete_prefix(s, txn, RP_DB_ISSUES, pfx, pn, NULL, eb);
    if (rc == RP_OK) rc = rp_si_delete_prefix(s, txn, RP_DB_EVIDS, pfx, pn, NULL, eb);
    if (rc == RP_OK) rc = rp_si_evcount_set(s, txn, cid, 0, eb);
    if (rc == RP_OK) rc = rp_si_digest_del(s, txn, cid, eb);
    if (rc == RP_OK) rc = drain_aliases(s, txn, cid, NULL, eb);
    if (rc == RP_OK) {
        MDB_val k = rp_si_mval(cid.p, cid.n);
        int mrc = mdb_del(txn, s->dbi[RP_DB_CUSTOMERS], &k, NULL);
        if (mrc) rc = rp_si_mdb(eb, mrc, "deleting the customer");
    }
    if (rc == RP_OK) rp_si_id_out(canon_out, cid);
    rp_si_blob_free(&blob);
    return rc;
}
