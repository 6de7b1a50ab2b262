/* http_card.c — GET /card: the agent's screen-pop page, rendered here.
 *
 * The page is the context card (proto/CARD.md) as HTML, rendered on the
 * server from the very result context.get returns: the page calls that
 * operation through rp_api_call (its role check, metrics and audit line
 * are context.get's), then walks the msgpack result. Every string from
 * the store is HTML-escaped. The page has no script; its one stylesheet,
 * /card/card.css, is embedded at build time (cmake/card.cmake) from
 * src/net/card_assets/card.css. Headers: a strict Content-Security-Policy
 * (nothing but our own stylesheet; frame-ancestors from the setting
 * frame_ancestors, plus X-Frame-Options: SAMEORIGIN when that is 'self'),
 * Cache-Control: no-store (personal data), Referrer-Policy: no-referrer.
 *
 * Auth: a bearer token (agent or admin, as context.get), or a signed link
 * from card.link (?exp=&sig=, api/cardlink.h): valid until exp, as an
 * agent. A candidate's link on a shared line carries its own signature
 * (same expiry) when the page was opened by a signed link.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api/cardlink.h"
#include "net/http_int.h"

extern const unsigned char rp_card_css[];
extern const size_t rp_card_css_len;

/* --- msgpack helpers ------------------------------------------------------------ */

static const msgpack_object *mget(const msgpack_object *m, const char *key) {
    if (m == NULL || m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl && memcmp(k->via.str.ptr, key, kl) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static bool mstr(const msgpack_object *m, const char *key, const char **p, size_t *n) {
    const msgpack_object *v = mget(m, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0) return false;
    *p = v->via.str.ptr;
    *n = v->via.str.size;
    return true;
}

static bool mint(const msgpack_object *m, const char *key, int64_t *out) {
    const msgpack_object *v = mget(m, key);
    if (v == NULL) return false;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) *out = (int64_t)v->via.u64;
    else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) *out = v->via.i64;
    else return false;
    return true;
}

static bool mtrue(const msgpack_object *m, const char *key) {
    const msgpack_object *v = mget(m, key);
    return v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

static const msgpack_object *marr(const msgpack_object *m, const char *key) {
    const msgpack_object *v = mget(m, key);
    return v && v->type == MSGPACK_OBJECT_ARRAY ? v : NULL;
}

/* --- HTML ----------------------------------------------------------------------- */

static void esc(struct evbuffer *b, const char *s, size_t n) {
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *r;
        switch (s[i]) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: continue;
        }
        evbuffer_add(b, s + from, i - from);
        evbuffer_add(b, r, strlen(r));
        from = i + 1;
    }
    evbuffer_add(b, s + from, n - from);
}

static void escs(struct evbuffer *b, const char *s) { esc(b, s, strlen(s)); }

/* A string field, escaped; dflt when absent. */
static void field(struct evbuffer *b, const msgpack_object *m, const char *key, const char *dflt) {
    const char *p;
    size_t n;
    if (mstr(m, key, &p, &n)) esc(b, p, n);
    else escs(b, dflt);
}

static void when(struct evbuffer *b, int64_t ts) {
    time_t t = (time_t)ts;
    struct tm tm;
    char d[40], iso[40];
    if (gmtime_r(&t, &tm) == NULL) return;
    strftime(d, sizeof d, "%a %d %b %Y %H:%M UTC", &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    evbuffer_add_printf(b, "<time datetime=\"%s\">%s</time>", iso, d);
}

/* Percent-encode s for a query value. */
static void urlenc(struct evbuffer *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~')
            evbuffer_add(b, s + i, 1);
        else evbuffer_add_printf(b, "%%%02X", c);
    }
}

static const char *cue_label(const char *code, size_t n) {
    static const char *const map[][2] = {
        {"accessibility", "Accessibility"}, {"language", "Language"},
        {"broken_promise", "Broken promise"}, {"repeat_contact", "Repeat contact"},
        {"negative_sentiment", "Mood"}, {"long_tenure", "Tenure"}, {"vip", "VIP"},
        {"first_contact", "First contact"}, {"do_not_call", "Do not call"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i][0]) == n && memcmp(map[i][0], code, n) == 0) return map[i][1];
    return NULL;
}

static void head(struct evbuffer *b, const char *title) {
    evbuffer_add_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                           "<title>");
    escs(b, title);
    evbuffer_add_printf(b, "</title><link rel=\"stylesheet\" href=\"/card/card.css\"></head>\n"
                           "<body><main class=\"card\">\n");
}

static void cues(struct evbuffer *b, const msgpack_object *card) {
    const msgpack_object *a = marr(card, "cues");
    if (a == NULL || a->via.array.size == 0) return;
    evbuffer_add_printf(b, "<section class=\"cues\" aria-labelledby=\"h-cues\"><h2 id=\"h-cues\">Cues</h2><ul>\n");
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *c = &a->via.array.ptr[i];
        const char *code = "", *label;
        size_t cn = 0;
        mstr(c, "code", &code, &cn);
        label = cue_label(code, cn);
        evbuffer_add_printf(b, "<li class=\"cue\" data-code=\"");
        esc(b, code, cn);
        evbuffer_add_printf(b, "\"><span class=\"chip\">");
        if (label) escs(b, label);
        else esc(b, code, cn);
        evbuffer_add_printf(b, "</span> <span class=\"cue-text\">");
        field(b, c, "text", "");
        evbuffer_add_printf(b, "</span></li>\n");
    }
    evbuffer_add_printf(b, "</ul></section>\n");
}

static void reason(struct evbuffer *b, const msgpack_object *r, bool top) {
    const msgpack_object *sc = mget(r, "score");
    double score = sc && (sc->type == MSGPACK_OBJECT_FLOAT64 || sc->type == MSGPACK_OBJECT_FLOAT32) ? sc->via.f64 : 0;
    evbuffer_add_printf(b, top ? "<div class=\"top-reason\"><p class=\"topic\">" : "<li><span class=\"topic\">");
    field(b, r, "topic", "unknown");
    evbuffer_add_printf(b, top ? "</p><p class=\"evidence\">" : "</span> <span class=\"evidence\">");
    field(b, r, "evidence", "");
    evbuffer_add_printf(b, top ? "</p><p class=\"meta\">" : "</span> <span class=\"meta\">");
    evbuffer_add_printf(b, "score %.2f", score);
    const char *p;
    size_t n;
    if (mstr(r, "issue_id", &p, &n)) {
        evbuffer_add_printf(b, " · issue ");
        esc(b, p, n);
    }
    evbuffer_add_printf(b, top ? "</p></div>\n" : "</span></li>\n");
}

static void reasons(struct evbuffer *b, const msgpack_object *card) {
    const msgpack_object *a = marr(card, "likely_reasons");
    evbuffer_add_printf(b, "<section class=\"reasons\" aria-labelledby=\"h-reasons\"><h2 id=\"h-reasons\">Likely reason for this contact</h2>\n");
    if (a == NULL || a->via.array.size == 0) {
        evbuffer_add_printf(b, "<p class=\"none\">No likely reason on record: ask how you can help.</p></section>\n");
        return;
    }
    reason(b, &a->via.array.ptr[0], true);
    if (a->via.array.size > 1) {
        evbuffer_add_printf(b, "<h3>Other possible reasons</h3><ol class=\"more\">\n");
        for (uint32_t i = 1; i < a->via.array.size; i++) reason(b, &a->via.array.ptr[i], false);
        evbuffer_add_printf(b, "</ol>\n");
    }
    evbuffer_add_printf(b, "</section>\n");
}

static void who(struct evbuffer *b, const msgpack_object *cust, int64_t at) {
    const char *p;
    size_t n;
    evbuffer_add_printf(b, "<header class=\"who\"><p class=\"say\">Say</p><h1 id=\"name\">");
    if (mstr(cust, "preferred_name", &p, &n) || mstr(cust, "name", &p, &n)) esc(b, p, n);
    else field(b, cust, "id", "Customer");
    evbuffer_add_printf(b, "</h1><p class=\"fullname\">");
    field(b, cust, "name", "");
    evbuffer_add_printf(b, " <span class=\"id\">(");
    field(b, cust, "id", "");
    evbuffer_add_printf(b, ")</span></p>\n<dl class=\"facts\"><div><dt>Language</dt><dd>");
    field(b, cust, "language", "not set");
    evbuffer_add_printf(b, "</dd></div><div><dt>Tier</dt><dd>");
    field(b, cust, "tier", "standard");
    evbuffer_add_printf(b, "</dd></div><div><dt>Tenure</dt><dd>");
    int64_t since;
    if (mint(cust, "customer_since", &since) && since <= at) {
        int64_t years = (at - since) / (365 * 86400 + 86400 / 4);
        int64_t months = (at - since) / (30 * 86400);
        if (years >= 1) evbuffer_add_printf(b, "%" PRId64 " year%s", years, years == 1 ? "" : "s");
        else evbuffer_add_printf(b, "%" PRId64 " month%s", months, months == 1 ? "" : "s");
    } else {
        evbuffer_add_printf(b, "unknown");
    }
    evbuffer_add_printf(b, "</dd></div></dl></header>\n");
}

static void issues(struct evbuffer *b, const msgpack_object *card, int64_t at) {
    const msgpack_object *a = marr(card, "open_issues");
    evbuffer_add_printf(b, "<section class=\"issues\" aria-labelledby=\"h-issues\"><h2 id=\"h-issues\">Open issues</h2>\n");
    if (a == NULL || a->via.array.size == 0) {
        evbuffer_add_printf(b, "<p class=\"none\">None.</p></section>\n");
        return;
    }
    evbuffer_add_printf(b, "<ul>\n");
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *is = &a->via.array.ptr[i];
        int64_t due;
        bool has_due = mint(is, "follow_up_due", &due);
        bool overdue = has_due && due < at;
        evbuffer_add_printf(b, "<li class=\"issue%s\">", overdue ? " overdue" : "");
        if (overdue) evbuffer_add_printf(b, "<strong class=\"flag\">Overdue promise</strong> ");
        evbuffer_add_printf(b, "<span class=\"topic\">");
        field(b, is, "topic", "issue");
        evbuffer_add_printf(b, "</span> ");
        field(b, is, "summary", "");
        evbuffer_add_printf(b, " <span class=\"meta\">");
        field(b, is, "issue_id", "");
        evbuffer_add_printf(b, " · ");
        field(b, is, "status", "open");
        if (has_due) {
            evbuffer_add_printf(b, " · follow-up due ");
            when(b, due);
        }
        evbuffer_add_printf(b, "</span></li>\n");
    }
    evbuffer_add_printf(b, "</ul></section>\n");
}

static void history(struct evbuffer *b, const msgpack_object *card) {
    const msgpack_object *a = marr(card, "recent_events");
    evbuffer_add_printf(b, "<section class=\"history\" aria-labelledby=\"h-history\"><h2 id=\"h-history\">Recent history</h2>\n");
    if (a == NULL || a->via.array.size == 0) {
        evbuffer_add_printf(b, "<p class=\"none\">Nothing on record.</p></section>\n");
        return;
    }
    evbuffer_add_printf(b, "<ol>\n");
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *e = &a->via.array.ptr[i];
        int64_t ts;
        evbuffer_add_printf(b, "<li>");
        if (mint(e, "ts", &ts)) when(b, ts);
        evbuffer_add_printf(b, " <span class=\"meta\">");
        field(b, e, "channel", "");
        evbuffer_add_printf(b, " · ");
        field(b, e, "kind", "");
        evbuffer_add_printf(b, " · ");
        field(b, e, "topic", "");
        evbuffer_add_printf(b, "</span> ");
        field(b, e, "summary", "");
        const char *p;
        size_t n;
        if (mstr(e, "outcome", &p, &n)) {
            evbuffer_add_printf(b, " <span class=\"outcome\">(");
            esc(b, p, n);
            evbuffer_add_printf(b, ")</span>");
        }
        evbuffer_add_printf(b, "</li>\n");
    }
    evbuffer_add_printf(b, "</ol></section>\n");
}

/* A candidate's link: /card?id=… (signed with exp when the page was). */
static void cand_link(struct evbuffer *b, const rp_config *cfg, const char *id, size_t n,
                      int64_t exp, bool signed_link) {
    evbuffer_add_printf(b, "/card?id=");
    urlenc(b, id, n);
    if (signed_link) {
        char sig[RP_CARDLINK_SIG_HEX + 1];
        rp_cardlink_sign(cfg, "id", id, n, exp, sig);
        evbuffer_add_printf(b, "&amp;exp=%" PRId64 "&amp;sig=%s", exp, sig);
    }
}

static void render(struct evbuffer *b, const rp_config *cfg, const msgpack_object *card, int64_t exp,
                   bool signed_link) {
    int64_t at = (int64_t)time(NULL);
    mint(card, "at", &at);
    if (mtrue(card, "ambiguous")) {
        const msgpack_object *a = marr(card, "candidates");
        uint32_t nc = a ? a->via.array.size : 0;
        head(b, "Shared line: who is calling?");
        evbuffer_add_printf(b, "<header class=\"who\"><h1>Shared line</h1><p>%u customers use this contact. "
                               "Ask who is calling, then open their card:</p></header>\n"
                               "<section aria-label=\"Candidates\"><ul class=\"candidates\">\n", nc);
        for (uint32_t i = 0; i < nc; i++) {
            const msgpack_object *c = &a->via.array.ptr[i];
            const char *id;
            size_t n;
            if (!mstr(c, "customer_id", &id, &n)) continue;
            evbuffer_add_printf(b, "<li><a href=\"");
            cand_link(b, cfg, id, n, exp, signed_link);
            evbuffer_add_printf(b, "\">");
            field(b, c, "name", "(no name)");
            evbuffer_add_printf(b, "</a> <span class=\"meta\">");
            field(b, c, "summary", "");
            evbuffer_add_printf(b, "</span></li>\n");
        }
        evbuffer_add_printf(b, "</ul></section>\n");
    } else if (!mtrue(card, "found")) {
        head(b, "First contact");
        evbuffer_add_printf(b, "<header class=\"who first\"><h1>First contact</h1>"
                               "<p>This caller is not in our records. Welcome them, and take their name and "
                               "reason for calling.</p></header>\n");
        cues(b, card);
    } else {
        const msgpack_object *cust = mget(card, "customer");
        const char *p;
        size_t n;
        char title[160] = "Customer";
        if (mstr(cust, "preferred_name", &p, &n) || mstr(cust, "name", &p, &n))
            snprintf(title, sizeof title, "%.*s", (int)(n < 120 ? n : 120), p);
        head(b, title);
        who(b, cust, at);
        cues(b, card);
        reasons(b, card);
        issues(b, card, at);
        history(b, card);
    }
    evbuffer_add_printf(b, "<footer><p>Card as of ");
    when(b, at);
    evbuffer_add_printf(b, "</p></footer>\n</main></body></html>\n");
}

/* --- serving ---------------------------------------------------------------------- */

/* frame_ancestors, checked for a header: printable, no ';' ',' (else 'none'). */
static const char *ancestors(const rp_config *cfg) {
    const char *fa = cfg->frame_ancestors;
    if (fa[0] == '\0') return "'none'";
    for (const char *p = fa; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == ';' || *p == ',') return "'none'";
    return fa;
}

static void page_headers(rp_http *h, struct evhttp_request *req, bool html) {
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char csp[700];
    snprintf(csp, sizeof csp,
             "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
             "base-uri 'none'; form-action 'self'; frame-ancestors %s",
             ancestors(h->cfg));
    evhttp_add_header(out, "Content-Security-Policy", csp);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    if (html) {
        evhttp_add_header(out, "Cache-Control", "no-store");
        if (strcmp(ancestors(h->cfg), "'self'") == 0) evhttp_add_header(out, "X-Frame-Options", "SAMEORIGIN");
    } else {
        evhttp_add_header(out, "Cache-Control", "public, max-age=300");
    }
}

void rp_http_serve_card_css(rp_http *h, struct evhttp_request *req, const char *reqid) {
    page_headers(h, req, false);
    rp_http_send_body(req, reqid, 200, "text/css; charset=utf-8", (const char *)rp_card_css, rp_card_css_len);
}

typedef struct card_reply {
    rp_err rc;
    char msg[256];
    msgpack_sbuffer sb;
    bool got;
} card_reply;

static void on_card(void *arg, rp_err rc, const char *msg, const char *result, size_t len) {
    card_reply *r = arg;
    r->got = true;
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    if (rc == RP_OK) msgpack_sbuffer_write(&r->sb, result, len);
}

bool rp_http_card_signed(const http_in *in) { return rp_http_query_get(in, "sig") != NULL; }

void rp_http_serve_card(rp_http *h, const http_in *in, rp_role role) {
    static const char *const keys[] = {"phone", "email", "account", "id", NULL};
    const qparam *key = NULL, *at = NULL, *exp = NULL, *sig = NULL;
    for (size_t i = 0; i < in->nq; i++) {
        const qparam *q = &in->q[i];
        bool known = false;
        for (const char *const *k = keys; *k; k++)
            if (strcmp(q->key, *k) == 0) {
                known = true;
                if (key) {
                    rp_http_send_error(in->req, in->reqid, RP_BAD_REQUEST,
                                       "give one of phone, email, account or id");
                    return;
                }
                key = q;
            }
        if (strcmp(q->key, "at") == 0) at = q, known = true;
        if (strcmp(q->key, "exp") == 0) exp = q, known = true;
        if (strcmp(q->key, "sig") == 0) sig = q, known = true;
        if (!known) {
            char m[120];
            snprintf(m, sizeof m, "unknown query parameter '%.40s'", q->key);
            rp_http_send_error(in->req, in->reqid, RP_BAD_REQUEST, m);
            return;
        }
    }
    if (key == NULL) {
        rp_http_send_error(in->req, in->reqid, RP_BAD_REQUEST, "give one of phone, email, account or id");
        return;
    }
    int64_t expv = 0, atv = 0;
    if (at && !rp_http_parse_int(at->val, &atv)) {
        rp_http_send_error(in->req, in->reqid, RP_BAD_REQUEST, "query parameter 'at' must be an integer");
        return;
    }
    if ((sig == NULL) != (exp == NULL)) {
        rp_http_send_error(in->req, in->reqid, RP_BAD_REQUEST, "a signed link has both exp and sig");
        return;
    }
    if (sig) {
        if (at || !rp_http_parse_int(exp->val, &expv) ||
            !rp_cardlink_valid(h->cfg, key->key, key->val, key->vlen, expv, sig->val, (int64_t)time(NULL))) {
            rp_conn_count_refused(h->stats, RP_FACE_HTTP, RP_FORBIDDEN);
            rp_http_send_error(in->req, in->reqid, RP_FORBIDDEN, "this card link is expired or not valid");
            return;
        }
        role = RP_ROLE_AGENT;
    }
    /* context.get {key, at?} */
    msgpack_sbuffer ps;
    msgpack_sbuffer_init(&ps);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ps, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, at ? 2 : 1);
    msgpack_pack_str(&pk, strlen(key->key));
    msgpack_pack_str_body(&pk, key->key, strlen(key->key));
    msgpack_pack_str(&pk, key->vlen);
    msgpack_pack_str_body(&pk, key->val, key->vlen);
    if (at) {
        msgpack_pack_str(&pk, 2);
        msgpack_pack_str_body(&pk, "at", 2);
        msgpack_pack_int64(&pk, atv);
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    card_reply r;
    memset(&r, 0, sizeof r);
    msgpack_sbuffer_init(&r.sb);
    if (msgpack_unpack_next(&up, ps.data, ps.size, NULL) != MSGPACK_UNPACK_SUCCESS) {
        rp_http_send_error(in->req, in->reqid, RP_INTERNAL, NULL);
        goto out;
    }
    const rp_api_op *op = rp_api_find("context.get", 11);
    if (!rp_api_allowed(op, role)) rp_conn_count_refused(h->stats, RP_FACE_HTTP, RP_FORBIDDEN);
    rp_api_call(h->api, op, role, in->reqid, &up.data, on_card, &r);
    if (!r.got || r.rc != RP_OK) { /* a read replies inside the call */
        rp_http_send_error(in->req, in->reqid, r.got ? r.rc : RP_INTERNAL, r.msg[0] ? r.msg : NULL);
        goto out;
    }
    msgpack_unpacked res;
    msgpack_unpacked_init(&res);
    if (msgpack_unpack_next(&res, r.sb.data, r.sb.size, NULL) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&res);
        rp_http_send_error(in->req, in->reqid, RP_INTERNAL, "bad card");
        goto out;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        msgpack_unpacked_destroy(&res);
        rp_http_send_error(in->req, in->reqid, RP_UNAVAILABLE, "out of memory");
        goto out;
    }
    render(b, h->cfg, &res.data, expv, sig != NULL);
    msgpack_unpacked_destroy(&res);
    page_headers(h, in->req, true);
    size_t n = evbuffer_get_length(b);
    rp_http_send_body(in->req, in->reqid, 200, "text/html; charset=utf-8",
                      (const char *)evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
out:
    msgpack_sbuffer_destroy(&r.sb);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&ps);
}
