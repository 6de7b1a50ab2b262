/* context.c — read one customer's context in one read transaction.
 *
 * Both requests run the same gather step: validate, open a read
 * transaction, resolve the key to zero, one or several customers, read what
 * the engine needs, and build an rp_card in the scratch. The card request
 * packs the card; the route request packs the route answer derived from it.
 * Packing happens before rp_store_rend because the card's slices point into
 * LMDB's map; nothing is packed unless the whole gather succeeded.
 *
 * Cost per request: one lookup, one customer read, one issue scan of at
 * most RP_CONTEXT_MAX_ISSUES, the digest read in place and the few full
 * events the card shows (or, without a covering digest, one history read
 * of at most card_max_events events), plus the engine (card.h). An
 * ambiguous key reads each candidate's profile and issues (at most
 * RP_CARD_MAX_CANDIDATES).
 */
#include "core/alloc.h"
#include "context/context.h"

#include <stdlib.h>
#include <string.h>

#include "store/digest.h"

_Static_assert(RP_CARD_MAX_CANDIDATES >= RP_LOOKUP_MAX, "every lookup candidate fits on a card");

/* Full events a card built from the digest reads: its recent events and
 * one per reason's evidence, at most. */
#define CTX_MAX_FULL (RP_CARD_MAX_RECENT + RP_CARD_MAX_REASONS)

struct rp_context_scratch {
    rp_customer who;      /* the customer, or the candidate being summarized */
    rp_event *events;     /* the history (or the digest's light events), newest first */
    uint32_t events_cap;
    rp_issue issues[RP_CONTEXT_MAX_ISSUES];
    rp_card card;
    bool reference;       /* never use the digest */
    bool used_digest;     /* the last request did */
    /* the fetch of full events behind light ones (card.h rp_card_fetch) */
    rp_store *fs;
    MDB_txn *ftxn;
    rp_event full[CTX_MAX_FULL];
    uint32_t nfull;
};

static const char *const key_names[RP_CTX_KEY__COUNT] = {"phone", "email", "account", "id"};

const char *rp_context_key_name(rp_context_key k) {
    return (unsigned)k < RP_CTX_KEY__COUNT ? key_names[k] : "";
}

bool rp_context_key_parse(rp_str name, rp_context_key *out) {
    for (int i = 0; i < RP_CTX_KEY__COUNT; i++) {
        if (rp_str_eqc(name, key_names[i])) {
            *out = (rp_context_key)i;
            return true;
        }
    }
    return false;
}

rp_err rp_context_scratch_new(rp_context_scratch **out, rp_errbuf *eb) {
    rp_context_scratch *sc = rp_calloc(1, sizeof *sc);
    if (sc == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory for the context scratch");
    *out = sc;
    return RP_OK;
}

void rp_context_scratch_free(rp_context_scratch *sc) {
    if (sc == NULL) return;
    free(sc->events);
    free(sc);
}

void rp_context_scratch_set_reference(rp_context_scratch *sc, bool on) { sc->reference = on; }

bool rp_context_scratch_used_digest(const rp_context_scratch *sc) { return sc->used_digest; }

/* Make room for `need` events (grows once per scratch in practice). */
static rp_err scratch_reserve(rp_context_scratch *sc, uint32_t need, rp_errbuf *eb) {
    if (sc->events_cap >= need) return RP_OK;
    /* need < 2^32 and sizeof(rp_event) is small: the product fits a 64-bit
     * size_t; the check keeps that true on a 32-bit one. */
    uint64_t bytes = (uint64_t)need * sizeof(rp_event);
    if (bytes > (uint64_t)(SIZE_MAX / 2))
        return rp_errf(eb, RP_TOO_LARGE, "card_max_events %u is too large", need);
    rp_event *ev = rp_realloc(sc->events, (size_t)bytes);
    if (ev == NULL) return rp_errf(eb, RP_UNAVAILABLE, "out of memory for %u history events", need);
    sc->events = ev;
    sc->events_cap = need;
    return RP_OK;
}

/* A reader's failure on a customer just read in the same transaction:
 * NOT_FOUND cannot happen there, so it is INTERNAL ("<who> vanished"). */
static rp_err vanished(rp_err rc, const char *who, rp_errbuf *eb) {
    return rc == RP_NOT_FOUND ? rp_errf(eb, RP_INTERNAL, "%s vanished", who) : rc;
}

/* A candidate of an ambiguous key: its profile and issue count. */
static rp_err add_candidate(rp_store *s, MDB_txn *txn, rp_str id, rp_context_scratch *sc,
                            rp_errbuf *eb) {
    rp_err rc = rp_store_get_customer(s, txn, id, &sc->who, eb);
    if (rc == RP_NOT_FOUND)
        return rp_errf(eb, RP_INTERNAL, "an identity index names customer '%.*s', which does not exist",
                       (int)(id.n > RP_ID_MAX ? RP_ID_MAX : id.n), id.p);
    if (rc != RP_OK) return rc;
    uint32_t n = 0;
    bool more = false;
    rc = rp_store_issues(s, txn, sc->who.id, RP_STORE_CANONICAL, RP_CONTEXT_MAX_ISSUES, sc->issues, &n,
                         &more, eb);
    if (rc != RP_OK) return vanished(rc, "candidate", eb);
    rp_card_add_candidate(&sc->card, &sc->who, sc->issues, n, more);
    return RP_OK;
}

/* rp_card_fetch.full for a card built from the digest: read the event at
 * e's key. An event already read is not read again (recent events are
 * often evidence too). NULL when it cannot be read. */
static const rp_event *fetch_full(void *arg, const rp_event *e) {
    rp_context_scratch *sc = arg;
    for (uint32_t i = 0; i < sc->nfull; i++)
        if (sc->full[i].ts == e->ts && sc->full[i].seq == e->seq) return &sc->full[i];
    if (sc->nfull == CTX_MAX_FULL) return NULL;
    rp_errbuf sub = {0};
    rp_event *out = &sc->full[sc->nfull];
    if (rp_store_event_at(sc->fs, sc->ftxn, e->customer_id, e->ts, e->seq, out, &sub) != RP_OK)
        return NULL;
    sc->nfull++;
    return out;
}

/* Fill sc->events with the digest's light events when d covers a card as
 * of at; returns how many, or -1 when the history must be read instead.
 * A customer without a digest (not written since digests exist and not
 * yet backfilled) or with a corrupt one is read from the history: the
 * reference computation, never a wrong card. */
static int64_t digest_events(rp_store *s, MDB_txn *txn, const rp_config *cfg, int64_t at,
                             rp_context_scratch *sc) {
    rp_digest d;
    rp_errbuf sub = {0};
    if (sc->reference || rp_store_digest(s, txn, sc->who.id, &d, &sub) != RP_OK ||
        !rp_digest_covers(&d, cfg->card_max_events, at))
        return -1;
    uint32_t n = d.n < cfg->card_max_events ? d.n : cfg->card_max_events;
    for (uint32_t i = 0; i < n; i++) rp_digest_event(&d, i, sc->who.id, &sc->events[i]);
    return n;
}

/* The card (or, in route mode, what the route answer reads) of one
 * customer already read into sc->who: from the digest when it covers the
 * request, else from the history. */
static rp_err build_one(rp_store *s, MDB_txn *txn, const rp_config *cfg, int64_t at,
                        rp_card_mode mode, rp_context_scratch *sc, rp_errbuf *eb) {
    uint32_t nev = 0, nis = 0;
    bool more = false;
    rp_err rc = rp_store_issues(s, txn, sc->who.id, RP_STORE_CANONICAL, RP_CONTEXT_MAX_ISSUES,
                                sc->issues, &nis, &more, eb);
    if (rc != RP_OK) return vanished(rc, "customer", eb);
    int64_t light = digest_events(s, txn, cfg, at, sc);
    if (light >= 0) {
        rp_card_fetch fetch = {fetch_full, sc};
        sc->fs = s;
        sc->ftxn = txn;
        sc->nfull = 0;
        /* The recent events are the newest: read them with one cursor (one
         * descent of the events tree, not one per event); evidence events
         * among them are found there too, others are read by key. */
        uint32_t want = cfg->card_recent_events < RP_CARD_MAX_RECENT ? cfg->card_recent_events
                                                                      : RP_CARD_MAX_RECENT;
        if (mode == RP_CARD_MODE_CARD && want > 0) {
            rp_cursor next;
            rc = rp_store_history(s, txn, sc->who.id, RP_STORE_CANONICAL, NULL, want, sc->full,
                                  &sc->nfull, &more, &next, eb);
            if (rc != RP_OK) return vanished(rc, "customer", eb);
        }
        rp_card_build_ex(cfg, &sc->who, sc->events, (uint32_t)light, sc->issues, nis, at, mode, &fetch,
                         &sc->card);
        sc->fs = NULL;
        sc->ftxn = NULL;
        if (!sc->card.fetch_failed) {
            sc->used_digest = true;
            return RP_OK;
        }
    }
    rp_cursor before = {at + 1, 0}; /* events with ts <= at */
    rp_cursor next;
    rc = rp_store_history(s, txn, sc->who.id, RP_STORE_CANONICAL, &before, cfg->card_max_events,
                          sc->events, &nev, &more, &next, eb);
    if (rc != RP_OK) return vanished(rc, "customer", eb);
    rp_card_build_ex(cfg, &sc->who, sc->events, nev, sc->issues, nis, at, mode, NULL, &sc->card);
    return RP_OK;
}

/* Resolve the key and build sc->card. lenient: an unusable phone is an
 * unknown caller (route), not a bad request. */
static rp_err gather(rp_store *s, MDB_txn *txn, rp_context_key kind, rp_str key, int64_t at,
                     bool lenient, rp_card_mode mode, rp_context_scratch *sc, rp_errbuf *eb) {
    const rp_config *cfg = rp_store_config(s);
    if (kind == RP_CTX_KEY_ID) {
        rp_err rc = rp_store_get_customer(s, txn, key, &sc->who, eb);
        if (rc == RP_NOT_FOUND)
            return rp_errf(eb, RP_NOT_FOUND, "no customer with id '%.*s'",
                           (int)(key.n > RP_ID_MAX ? RP_ID_MAX : key.n), key.p);
        if (rc != RP_OK) return rc;
        return build_one(s, txn, cfg, at, mode, sc, eb);
    }
    static const rp_ident_kind ident[] = {RP_IDENT_PHONE, RP_IDENT_EMAIL, RP_IDENT_ACCOUNT};
    rp_lookup lk;
    rp_errbuf sub = {0};
    rp_err rc = rp_store_lookup(s, txn, ident[kind], key, &lk, &sub);
    if (rc == RP_BAD_REQUEST && lenient && kind == RP_CTX_KEY_PHONE) {
        rp_card_unknown(at, &sc->card);
        return RP_OK;
    }
    if (rc != RP_OK) return rp_errf(eb, rc, "%s", rp_errbuf_msg(&sub));
    if (lk.n == 0) {
        rp_card_unknown(at, &sc->card);
        return RP_OK;
    }
    if (lk.n > 1) {
        rp_card_ambiguous(at, &sc->card);
        for (uint32_t i = 0; i < lk.n && i < RP_LOOKUP_MAX; i++) {
            rc = add_candidate(s, txn, lk.ids[i], sc, eb);
            if (rc != RP_OK) return rc;
        }
        return RP_OK;
    }
    rc = rp_store_get_customer(s, txn, lk.ids[0], &sc->who, eb);
    if (rc == RP_NOT_FOUND)
        return rp_errf(eb, RP_INTERNAL, "an identity index names customer '%.*s', which does not exist",
                       (int)(lk.ids[0].n > RP_ID_MAX ? RP_ID_MAX : lk.ids[0].n), lk.ids[0].p);
    if (rc != RP_OK) return rc;
    return build_one(s, txn, cfg, at, mode, sc, eb);
}

/* Shared driver of both requests: checks, scratch, transaction, gather,
 * pack (card or route), end. */
/* Copy who the card shows into *shown (ids truncated to RP_ID_MAX, which
 * stored ids never exceed). O(candidates). */
static void note_shown(const rp_card *card, rp_context_shown *shown) {
    shown->n = 0;
    if (!card->found) return;
    if (!card->ambiguous) {
        if (card->who == NULL) return;
        rp_str id = card->who->id;
        size_t n = id.n < RP_ID_MAX ? id.n : RP_ID_MAX;
        memcpy(shown->ids[0], id.p, n);
        shown->ids[0][n] = '\0';
        shown->n = 1;
        return;
    }
    for (uint32_t i = 0; i < card->ncandidates && i < RP_CARD_MAX_CANDIDATES; i++) {
        rp_str id = card->candidates[i].customer_id;
        size_t n = id.n < RP_ID_MAX ? id.n : RP_ID_MAX;
        memcpy(shown->ids[shown->n], id.p, n);
        shown->ids[shown->n][n] = '\0';
        shown->n++;
    }
}

static rp_err run(rp_store *s, rp_context_key kind, rp_str key, int64_t at, bool route,
                  rp_context_scratch *scratch, msgpack_packer *pk, rp_context_shown *shown,
                  rp_errbuf *eb) {
    if (s == NULL || pk == NULL) return rp_errf(eb, RP_INTERNAL, "context: no store or packer");
    if ((unsigned)kind >= RP_CTX_KEY__COUNT) return rp_errf(eb, RP_BAD_REQUEST, "unknown key kind");
    if (at < 0 || at == INT64_MAX) return rp_errf(eb, RP_BAD_REQUEST, "at must be unix seconds >= 0");
    bool lenient = route && kind == RP_CTX_KEY_PHONE;
    if (key.n == 0 && !lenient)
        return rp_errf(eb, RP_BAD_REQUEST, "%s is empty", rp_context_key_name(kind));

    const rp_config *cfg = rp_store_config(s);
    rp_context_scratch *sc = scratch;
    rp_err rc = RP_OK;
    MDB_txn *txn = NULL;
    if (sc == NULL && (rc = rp_context_scratch_new(&sc, eb)) != RP_OK) return rc;
    if ((rc = scratch_reserve(sc, cfg->card_max_events, eb)) != RP_OK) goto fail;
    sc->used_digest = false;

    if (key.n == 0) { /* a withheld number, on the lenient route path */
        rp_card_unknown(at, &sc->card);
    } else {
        if ((rc = rp_store_rbegin(s, &txn, eb)) != RP_OK) goto fail;
        /* The reference derives the route from a full card, as before. */
        rp_card_mode mode = route && !sc->reference ? RP_CARD_MODE_ROUTE : RP_CARD_MODE_CARD;
        if ((rc = gather(s, txn, kind, key, at, lenient, mode, sc, eb)) != RP_OK) goto fail;
    }
    if (route) {
        rp_route r;
        rp_route_from_card(cfg, &sc->card, &r);
        rp_route_encode(pk, &r);
    } else {
        rp_card_encode(pk, &sc->card);
        if (shown) note_shown(&sc->card, shown);
    }
fail:
    if (txn) rp_store_rend(s, txn);
    if (scratch == NULL) rp_context_scratch_free(sc);
    return rc;
}

rp_err rp_context_card(rp_store *s, rp_context_key kind, rp_str key, int64_t at,
                       rp_context_scratch *scratch, msgpack_packer *pk, rp_context_shown *shown,
                       rp_errbuf *eb) {
    return run(s, kind, key, at, false, scratch, pk, shown, eb);
}

rp_err rp_context_route(rp_store *s, rp_context_key kind, rp_str key, int64_t at,
                        rp_context_scratch *scratch, msgpack_packer *pk, rp_errbuf *eb) {
    return run(s, kind, key, at, true, scratch, pk, NULL, eb);
}
