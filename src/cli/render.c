/* render.c — the CLI's readable output: the context card, tables, key: value.
 *
 * Every function reads a result exactly as the api returned it (a msgpack
 * object with the contract field names) and prints it for a person:
 *
 *   - the context card: a header line (name, preferred name, tier,
 *     language, id), then what an agent needs first — LIKELY REASONS (score,
 *     topic, issue, evidence) and CUES — then WHO, RECENT EVENTS (age,
 *     channel, kind, topic, outcome, summary), OPEN ISSUES and ATTRIBUTES;
 *   - tables (history, issues, lookup candidates): columns padded to the
 *     widest cell, the last column cut to the terminal's width on a TTY;
 *   - anything else: aligned "key: value" lines, nested maps indented.
 *
 * Colors (ANSI SGR) are written only when cli->color is set (stdout is a
 * terminal and NO_COLOR is unset), so pipes and files get plain text.
 * Widths count UTF-8 code points, which is right for the Latin, Greek and
 * Cyrillic text of the data model and only approximate for wide (CJK)
 * characters. Missing or mistyped fields print as empty, never crash: the
 * renderer trusts nothing about the result's shape.
 */
#include "cli/render.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context/card.h"
#include "model/codec.h"
#include "net/json.h"

#define SGR_RESET "\033[0m"
#define SGR_BOLD "\033[1m"
#define SGR_DIM "\033[2m"
#define SGR_RED "\033[31m"
#define SGR_GREEN "\033[32m"
#define SGR_YELLOW "\033[33m"
#define SGR_CYAN "\033[36m"
#define SGR_BOLD_CYAN "\033[1;36m"

/* The longest cell kept (a summary is at most 1 KiB; evidence 320 bytes). */
#define CELL_MAX 1100

/* --- small helpers --------------------------------------------------------------- */

/* sgr when colors are on, else "". */
static const char *col(const rp_cli *cli, const char *sgr) { return cli->color ? sgr : ""; }
static const char *rst(const rp_cli *cli) { return cli->color ? SGR_RESET : ""; }

/* Display width of UTF-8 text: code points (continuation bytes not counted). */
static size_t text_width(const char *s) {
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* Print s wrapped at spaces into lines of at most `room` columns, each
 * continuation line indented by `indent` spaces (room <= 0: no limit, one
 * line). A word longer than room is cut at a code point boundary. The
 * caller prints the final newline. */
static void put_wrapped(FILE *f, const char *s, int room, int indent) {
    if (room < 10) room = 10; /* a terminal narrower than that is unusable anyway */
    if (text_width(s) <= (size_t)room) {
        fputs(s, f);
        return;
    }
    bool first = true;
    while (*s) {
        if (!first) fprintf(f, "\n%*s", indent, "");
        first = false;
        while (*s == ' ') s++;
        /* the longest prefix of at most room code points, ending at a space */
        const char *p = s, *brk = NULL;
        size_t w = 0;
        while (*p && w < (size_t)room) {
            if (*p == ' ') brk = p;
            p++;
            while (((unsigned char)*p & 0xC0) == 0x80) p++;
            w++;
        }
        if (*p == '\0' || *p == ' ') brk = p; /* the rest fits, or a word ends exactly here */
        if (brk == NULL || brk == s) brk = p;  /* one long word: cut it */
        fwrite(s, 1, (size_t)(brk - s), f);
        s = brk;
    }
}

/* The text of a scalar (str, int, float, bool; nil and containers: "").
 * Control characters of a string are shown as '?', so a record cannot move
 * the terminal's cursor or change its colors. */
static const char *scalar(const msgpack_object *o, char *buf, size_t cap) {
    buf[0] = '\0';
    if (o == NULL) return buf;
    switch (o->type) {
    case MSGPACK_OBJECT_STR: {
        size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)o->via.str.ptr[i];
            buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
        buf[n] = '\0';
        break;
    }
    case MSGPACK_OBJECT_POSITIVE_INTEGER: snprintf(buf, cap, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: snprintf(buf, cap, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: snprintf(buf, cap, "%g", o->via.f64); break;
    case MSGPACK_OBJECT_BOOLEAN: snprintf(buf, cap, "%s", o->via.boolean ? "true" : "false"); break;
    default: break;
    }
    return buf;
}

/* A field's text ("" when absent). */
static const char *field(const msgpack_object *m, const char *key, char *buf, size_t cap) {
    return scalar(rp_mp_get(m, key), buf, cap);
}

/* A field as an integer; def when absent or not an integer. */
static int64_t field_int(const msgpack_object *m, const char *key, int64_t def) {
    const msgpack_object *v = rp_mp_get(m, key);
    if (v == NULL) return def;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
        return (int64_t)v->via.u64;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return v->via.i64;
    return def;
}

static bool field_true(const msgpack_object *m, const char *key) {
    const msgpack_object *v = rp_mp_get(m, key);
    return v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

/* A field as an array (NULL when absent or not an array). */
static const msgpack_object *field_array(const msgpack_object *m, const char *key) {
    const msgpack_object *v = rp_mp_get(m, key);
    return (v && v->type == MSGPACK_OBJECT_ARRAY) ? v : NULL;
}

/* "2026-11-23 05:40" (UTC) for unix seconds. */
static void date_time(int64_t ts, char *buf, size_t cap) {
    time_t t = (time_t)ts;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) snprintf(buf, cap, "%" PRId64, ts);
    else strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
}

static void date_only(int64_t ts, char *buf, size_t cap) {
    time_t t = (time_t)ts;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) snprintf(buf, cap, "%" PRId64, ts);
    else strftime(buf, cap, "%Y-%m-%d", &tm);
}

/* Join an array of scalars with ", " (cut to cap). */
static const char *join(const msgpack_object *a, char *buf, size_t cap) {
    buf[0] = '\0';
    if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY) return buf;
    size_t used = 0;
    char item[CELL_MAX];
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "",
                         scalar(&a->via.array.ptr[i], item, sizeof item));
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
    return buf;
}

/* Join a map of scalars as "k=v, k=v". */
static const char *join_map(const msgpack_object *m, char *buf, size_t cap) {
    buf[0] = '\0';
    if (m == NULL || m->type != MSGPACK_OBJECT_MAP) return buf;
    size_t used = 0;
    char k[256], v[CELL_MAX];
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s=%s", i ? ", " : "",
                         scalar(&m->via.map.ptr[i].key, k, sizeof k),
                         scalar(&m->via.map.ptr[i].val, v, sizeof v));
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
    return buf;
}

static void section(const rp_cli *cli, const char *title) {
    fprintf(cli->out, "\n%s%s%s\n", col(cli, SGR_BOLD_CYAN), title, rst(cli));
}

static void none_line(const rp_cli *cli) {
    fprintf(cli->out, "  %s(none)%s\n", col(cli, SGR_DIM), rst(cli));
}

/* --- tables ---------------------------------------------------------------------- */

#define TBL_COLS 10

typedef struct tbl_cell {
    char *text;        /* malloc'd */
    const char *color; /* SGR or NULL */
} tbl_cell;

typedef struct tbl {
    int ncols;
    size_t nrows, cap;
    tbl_cell *cells;   /* nrows * ncols */
    bool oom;          /* an allocation failed: rows were dropped */
} tbl;

static void tbl_init(tbl *t, int ncols) {
    assert(ncols > 0 && ncols <= TBL_COLS);
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
}

/* Start a new row; false when out of memory (the row is dropped). */
static bool tbl_row(tbl *t) {
    if (t->nrows == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        if (nc > SIZE_MAX / ((size_t)t->ncols * sizeof(tbl_cell))) {
            t->oom = true;
            return false;
        }
        tbl_cell *c = realloc(t->cells, nc * (size_t)t->ncols * sizeof *c);
        if (c == NULL) {
            t->oom = true;
            return false;
        }
        t->cells = c;
        t->cap = nc;
    }
    memset(&t->cells[t->nrows * (size_t)t->ncols], 0, (size_t)t->ncols * sizeof(tbl_cell));
    t->nrows++;
    return true;
}

/* Set a cell of the last row (text copied). */
static void tbl_set(tbl *t, int c, const char *text, const char *color) {
    if (t->nrows == 0) return;
    tbl_cell *cell = &t->cells[(t->nrows - 1) * (size_t)t->ncols + (size_t)c];
    free(cell->text);
    cell->text = strdup(text ? text : "");
    if (cell->text == NULL) t->oom = true;
    cell->color = color;
}

/* Print the table indented by two spaces: columns padded to their widest
 * cell, empty columns left out, the last column wrapped at the terminal
 * width (continuation lines start under it). */
/* Print the last cell of a row, starting at column `used`: as is when it
 * fits (or off a terminal), wrapped under itself when its column is wide
 * enough, else on the following lines, indented. */
static void tbl_last_cell(const rp_cli *cli, const char *s, int used) {
    int room = cli->width - used;
    if (cli->width <= 0 || (room > 0 && text_width(s) <= (size_t)room)) {
        fputs(s, cli->out);
    } else if (room >= 24) {
        put_wrapped(cli->out, s, room, used);
    } else {
        fprintf(cli->out, "\n%*s", 6, "");
        put_wrapped(cli->out, s, cli->width - 6, 6);
    }
}

static void tbl_print(const rp_cli *cli, const tbl *t) {
    size_t w[TBL_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c].text;
            size_t n = s ? text_width(s) : 0;
            if (n > w[c]) w[c] = n;
        }
    int last = t->ncols - 1;
    while (last > 0 && w[last] == 0) last--;
    for (size_t r = 0; r < t->nrows; r++) {
        const tbl_cell *row = &t->cells[r * (size_t)t->ncols];
        int end = last; /* no padding after the row's last non-empty cell */
        while (end > 0 && (row[end].text == NULL || row[end].text[0] == '\0')) end--;
        fputs("  ", cli->out);
        int used = 2;
        for (int c = 0; c <= end; c++) {
            if (w[c] == 0) continue;
            const char *s = row[c].text ? row[c].text : "";
            bool colored = row[c].color && cli->color && s[0];
            if (colored) fputs(row[c].color, cli->out);
            if (c == last) tbl_last_cell(cli, s, used);
            else fputs(s, cli->out);
            if (colored) fputs(SGR_RESET, cli->out);
            if (c < end) fprintf(cli->out, "%*s", (int)(w[c] - text_width(s) + 2), "");
            used += (int)w[c] + 2;
        }
        fputc('\n', cli->out);
    }
    if (t->oom) fprintf(cli->out, "  (out of memory: some rows are not shown)\n");
}

static void tbl_free(tbl *t) {
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++) free(t->cells[i].text);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* --- key: value -------------------------------------------------------------------- */

/* Print "  key   value" with keys padded to kw; value wrapped at the width. */
static void kv_line(const rp_cli *cli, int indent, int kw, const char *key, const char *value,
                    const char *color) {
    fprintf(cli->out, "%*s%s%-*s%s  ", indent, "", col(cli, SGR_DIM), kw, key, rst(cli));
    if (color && cli->color) fputs(color, cli->out);
    if (cli->width > 0) put_wrapped(cli->out, value, cli->width - indent - kw - 2, indent + kw + 2);
    else fputs(value, cli->out);
    if (color && cli->color) fputs(SGR_RESET, cli->out);
    fputc('\n', cli->out);
}

/* The generic form: keys aligned, nested maps indented, arrays of scalars
 * joined, arrays of maps one nested block each. */
static void kv_map(const rp_cli *cli, const msgpack_object *m, int indent) {
    if (m == NULL || m->type != MSGPACK_OBJECT_MAP) {
        char buf[CELL_MAX];
        fprintf(cli->out, "%*s%s\n", indent, "", scalar(m, buf, sizeof buf));
        return;
    }
    int kw = 0;
    char key[256];
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        int n = (int)text_width(scalar(&m->via.map.ptr[i].key, key, sizeof key)) + 1;
        if (n > kw) kw = n;
    }
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *v = &m->via.map.ptr[i].val;
        char k[260], buf[CELL_MAX * 2];
        snprintf(k, sizeof k, "%s:", scalar(&m->via.map.ptr[i].key, key, sizeof key));
        if (v->type == MSGPACK_OBJECT_MAP) {
            fprintf(cli->out, "%*s%s%s%s\n", indent, "", col(cli, SGR_DIM), k, rst(cli));
            kv_map(cli, v, indent + 2);
        } else if (v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size > 0 &&
                   v->via.array.ptr[0].type == MSGPACK_OBJECT_MAP) {
            fprintf(cli->out, "%*s%s%s%s\n", indent, "", col(cli, SGR_DIM), k, rst(cli));
            for (uint32_t j = 0; j < v->via.array.size; j++) {
                fprintf(cli->out, "%*s-\n", indent + 2, "");
                kv_map(cli, &v->via.array.ptr[j], indent + 4);
            }
        } else if (v->type == MSGPACK_OBJECT_ARRAY) {
            kv_line(cli, indent, kw, k, join(v, buf, sizeof buf), NULL);
        } else {
            kv_line(cli, indent, kw, k, scalar(v, buf, sizeof buf), NULL);
        }
    }
}

void rp_cli_render_kv(const rp_cli *cli, const msgpack_object *map) { kv_map(cli, map, 0); }

rp_err rp_cli_print_json(FILE *f, const msgpack_object *o, rp_errbuf *eb) {
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_err rc = rp_msgpack_to_json(o, 0, &b, eb);
    if (rc == RP_OK) {
        if (b.len) fwrite(b.p, 1, b.len, f);
        fputc('\n', f);
        if (ferror(f)) rc = rp_errf(eb, RP_INTERNAL, "cannot write the output");
    }
    rp_buf_free(&b);
    return rc;
}

/* --- the customer (WHO) ------------------------------------------------------------ */

/* The header line: name ("preferred") - tier - Language (tag) - id. */
static void customer_header(const rp_cli *cli, const msgpack_object *c) {
    char name[CELL_MAX], pref[CELL_MAX], tier[CELL_MAX], lang[64], id[128];
    field(c, "name", name, sizeof name);
    field(c, "preferred_name", pref, sizeof pref);
    field(c, "tier", tier, sizeof tier);
    field(c, "language", lang, sizeof lang);
    field(c, "id", id, sizeof id);
    fprintf(cli->out, "%s%s%s", col(cli, SGR_BOLD), name[0] ? name : "(no name)", rst(cli));
    if (pref[0] && strcmp(pref, name) != 0) fprintf(cli->out, " (\"%s\")", pref);
    if (tier[0]) {
        bool high = strcmp(tier, "gold") == 0 || strcmp(tier, "platinum") == 0;
        fprintf(cli->out, "  -  %s%s%s", col(cli, high ? SGR_YELLOW : ""), tier,
                high ? rst(cli) : "");
    }
    if (lang[0]) {
        const char *ln = rp_card_language_name((rp_str){lang, strlen(lang)});
        if (ln) fprintf(cli->out, "  -  %s (%s)", ln, lang);
        else fprintf(cli->out, "  -  %s", lang);
    }
    fprintf(cli->out, "  -  %s%s%s\n", col(cli, SGR_DIM), id, rst(cli));
}

/* The WHO block: every profile field that is set, as key: value. */
static void customer_who(const rp_cli *cli, const msgpack_object *c, int64_t at) {
    static const struct {
        const char *key, *label;
    } rows[] = {
        {"name", "name"}, {"preferred_name", "preferred name"}, {"language", "language"},
        {"timezone", "timezone"}, {"tier", "tier"}, {"customer_since", "customer since"},
        {"flags", "flags"}, {"preferences", "preferences"}, {"rapport_notes", "rapport notes"},
        {"phones", "phones"}, {"emails", "emails"}, {"accounts", "accounts"},
        {"version", "version"}, {"updated_at", "updated"},
    };
    const int kw = 15;
    char buf[CELL_MAX * 4];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const msgpack_object *v = rp_mp_get(c, rows[i].key);
        if (v == NULL || v->type == MSGPACK_OBJECT_NIL) continue;
        const char *color = NULL;
        if (strcmp(rows[i].key, "customer_since") == 0 || strcmp(rows[i].key, "updated_at") == 0) {
            int64_t ts = field_int(c, rows[i].key, 0);
            if (ts <= 0) continue;
            char d[32];
            if (rows[i].key[0] == 'c') {
                date_only(ts, d, sizeof d);
                int64_t years = at > ts ? (at - ts) / (365 * 86400 + 21600) : 0;
                snprintf(buf, sizeof buf, "%s (%" PRId64 " year%s)", d, years, years == 1 ? "" : "s");
            } else {
                date_time(ts, d, sizeof d);
                snprintf(buf, sizeof buf, "%s UTC", d);
            }
        } else if (v->type == MSGPACK_OBJECT_MAP) {
            if (v->via.map.size == 0) continue;
            join_map(v, buf, sizeof buf);
        } else if (v->type == MSGPACK_OBJECT_ARRAY) {
            if (v->via.array.size == 0) continue;
            join(v, buf, sizeof buf);
            if (strcmp(rows[i].key, "flags") == 0) color = SGR_YELLOW;
        } else {
            scalar(v, buf, sizeof buf);
            if (buf[0] == '\0') continue;
        }
        kv_line(cli, 2, kw, rows[i].label, buf, color);
    }
}

void rp_cli_render_customer(const rp_cli *cli, const msgpack_object *c) {
    customer_header(cli, c);
    section(cli, "WHO");
    customer_who(cli, c, (int64_t)time(NULL));
}

/* --- events and issues ------------------------------------------------------------- */

/* The color of an outcome: unresolved kinds stand out. */
static const char *outcome_color(const char *o) {
    if (strcmp(o, "unresolved") == 0 || strcmp(o, "abandoned") == 0) return SGR_RED;
    if (strcmp(o, "transferred") == 0) return SGR_YELLOW;
    if (strcmp(o, "resolved") == 0) return SGR_GREEN;
    return NULL;
}

/* One event row: [when,] age, channel, kind, topic, outcome, summary. */
static void event_row(tbl *t, const msgpack_object *e, int64_t at, bool with_date) {
    char buf[CELL_MAX];
    if (!tbl_row(t)) return;
    int c = 0;
    int64_t ts = field_int(e, "ts", 0);
    if (with_date) {
        date_time(ts, buf, sizeof buf);
        tbl_set(t, c++, buf, NULL);
    }
    rp_card_age_phrase(ts, at, buf, sizeof buf);
    tbl_set(t, c++, buf, SGR_DIM);
    tbl_set(t, c++, field(e, "channel", buf, sizeof buf), NULL);
    tbl_set(t, c++, field(e, "kind", buf, sizeof buf), NULL);
    tbl_set(t, c++, field(e, "topic", buf, sizeof buf), NULL);
    field(e, "outcome", buf, sizeof buf);
    if (strcmp(buf, "none") == 0) buf[0] = '\0';
    tbl_set(t, c++, buf, outcome_color(buf));
    if (with_date) tbl_set(t, c++, field(e, "agent", buf, sizeof buf), SGR_DIM);
    tbl_set(t, c, field(e, "summary", buf, sizeof buf), NULL);
}

/* One issue row: id, status, severity, topic, contacts, due, [opened,] summary. */
static void issue_row(tbl *t, const msgpack_object *is, int64_t at, bool with_dates) {
    char buf[CELL_MAX];
    if (!tbl_row(t)) return;
    int c = 0;
    tbl_set(t, c++, field(is, "issue_id", buf, sizeof buf), SGR_BOLD);
    field(is, "status", buf, sizeof buf);
    tbl_set(t, c++, buf, strcmp(buf, "resolved") == 0 ? SGR_GREEN : SGR_YELLOW);
    field(is, "severity", buf, sizeof buf);
    bool sev = strcmp(buf, "high") == 0 || strcmp(buf, "critical") == 0;
    tbl_set(t, c++, buf, sev ? SGR_RED : NULL);
    tbl_set(t, c++, field(is, "topic", buf, sizeof buf), NULL);
    int64_t n = field_int(is, "contacts", 0);
    snprintf(buf, sizeof buf, "%" PRId64 " contact%s", n, n == 1 ? "" : "s");
    tbl_set(t, c++, buf, NULL);
    int64_t due = field_int(is, "follow_up_due", 0);
    char st[32];
    field(is, "status", st, sizeof st);
    bool overdue = due > 0 && due < at && strcmp(st, "resolved") != 0;
    buf[0] = '\0';
    if (due > 0) {
        char w[64];
        rp_card_when_phrase(due, at, w, sizeof w);
        snprintf(buf, sizeof buf, "due %s%s", w, overdue ? " (OVERDUE)" : "");
    }
    tbl_set(t, c++, buf, overdue ? SGR_RED : NULL);
    if (with_dates) {
        char d[32];
        date_time(field_int(is, "opened_at", 0), d, sizeof d);
        snprintf(buf, sizeof buf, "opened %s", d);
        tbl_set(t, c++, buf, SGR_DIM);
    }
    tbl_set(t, c, field(is, "summary", buf, sizeof buf), NULL);
}

/* --- the card ----------------------------------------------------------------------- */

static void card_reasons(const rp_cli *cli, const msgpack_object *card) {
    section(cli, "LIKELY REASONS");
    const msgpack_object *a = field_array(card, "likely_reasons");
    if (a == NULL || a->via.array.size == 0) {
        none_line(cli);
        return;
    }
    tbl t;
    tbl_init(&t, 4);
    char buf[CELL_MAX];
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *r = &a->via.array.ptr[i];
        const msgpack_object *sc = rp_mp_get(r, "score");
        double s = (sc && (sc->type == MSGPACK_OBJECT_FLOAT64 || sc->type == MSGPACK_OBJECT_FLOAT32))
                       ? sc->via.f64 : 0.0;
        if (!tbl_row(&t)) break;
        snprintf(buf, sizeof buf, "%.2f", s);
        tbl_set(&t, 0, buf, s >= 0.6 ? SGR_RED : s >= 0.3 ? SGR_YELLOW : SGR_DIM);
        tbl_set(&t, 1, field(r, "topic", buf, sizeof buf), SGR_BOLD);
        tbl_set(&t, 2, field(r, "issue_id", buf, sizeof buf), SGR_DIM);
        tbl_set(&t, 3, field(r, "evidence", buf, sizeof buf), NULL);
    }
    tbl_print(cli, &t);
    tbl_free(&t);
}

static void card_cues(const rp_cli *cli, const msgpack_object *card) {
    section(cli, "CUES");
    const msgpack_object *a = field_array(card, "cues");
    if (a == NULL || a->via.array.size == 0) {
        none_line(cli);
        return;
    }
    tbl t;
    tbl_init(&t, 2);
    char buf[CELL_MAX];
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *q = &a->via.array.ptr[i];
        if (!tbl_row(&t)) break;
        field(q, "code", buf, sizeof buf);
        bool hard = strcmp(buf, RP_CUE_BROKEN_PROMISE) == 0 ||
                    strcmp(buf, RP_CUE_NEGATIVE_SENTIMENT) == 0 ||
                    strcmp(buf, RP_CUE_DO_NOT_CALL) == 0;
        tbl_set(&t, 0, buf, hard ? SGR_RED : SGR_YELLOW);
        tbl_set(&t, 1, field(q, "text", buf, sizeof buf), NULL);
    }
    tbl_print(cli, &t);
    tbl_free(&t);
}

static void card_events(const rp_cli *cli, const msgpack_object *card, int64_t at) {
    section(cli, "RECENT EVENTS");
    const msgpack_object *a = field_array(card, "recent_events");
    if (a == NULL || a->via.array.size == 0) {
        none_line(cli);
        return;
    }
    tbl t;
    tbl_init(&t, 6);
    for (uint32_t i = 0; i < a->via.array.size; i++) event_row(&t, &a->via.array.ptr[i], at, false);
    tbl_print(cli, &t);
    tbl_free(&t);
}

static void card_issues(const rp_cli *cli, const msgpack_object *card, int64_t at) {
    section(cli, "OPEN ISSUES");
    const msgpack_object *a = field_array(card, "open_issues");
    if (a == NULL || a->via.array.size == 0) {
        none_line(cli);
        return;
    }
    tbl t;
    tbl_init(&t, 7);
    for (uint32_t i = 0; i < a->via.array.size; i++) issue_row(&t, &a->via.array.ptr[i], at, false);
    tbl_print(cli, &t);
    tbl_free(&t);
}

static void card_attributes(const rp_cli *cli, const msgpack_object *card) {
    section(cli, "ATTRIBUTES");
    const msgpack_object *m = rp_mp_get(card, "attributes");
    if (m == NULL || m->type != MSGPACK_OBJECT_MAP || m->via.map.size == 0) {
        none_line(cli);
        return;
    }
    int kw = 0;
    char key[128], buf[CELL_MAX];
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        int n = (int)text_width(scalar(&m->via.map.ptr[i].key, key, sizeof key));
        if (n > kw) kw = n;
    }
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *v = &m->via.map.ptr[i].val;
        scalar(&m->via.map.ptr[i].key, key, sizeof key);
        if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)
            snprintf(buf, sizeof buf, "%.2f", v->via.f64);
        else if (v->type == MSGPACK_OBJECT_NIL)
            snprintf(buf, sizeof buf, "-");
        else
            scalar(v, buf, sizeof buf);
        kv_line(cli, 2, kw, key, buf, NULL);
    }
}

static void card_candidates(const rp_cli *cli, const msgpack_object *card) {
    section(cli, "CANDIDATES");
    const msgpack_object *a = field_array(card, "candidates");
    if (a == NULL || a->via.array.size == 0) {
        none_line(cli);
        return;
    }
    tbl t;
    tbl_init(&t, 3);
    char buf[CELL_MAX];
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *c = &a->via.array.ptr[i];
        if (!tbl_row(&t)) break;
        tbl_set(&t, 0, field(c, "customer_id", buf, sizeof buf), SGR_BOLD);
        tbl_set(&t, 1, field(c, "name", buf, sizeof buf), NULL);
        tbl_set(&t, 2, field(c, "summary", buf, sizeof buf), SGR_DIM);
    }
    tbl_print(cli, &t);
    tbl_free(&t);
}

void rp_cli_render_card(const rp_cli *cli, const msgpack_object *card) {
    int64_t at = field_int(card, "at", (int64_t)time(NULL));
    char when[32];
    date_time(at, when, sizeof when);
    if (!field_true(card, "found")) {
        fprintf(cli->out, "%sUnknown caller%s - no customer has this key  %s(as of %s UTC)%s\n",
                col(cli, SGR_BOLD), rst(cli), col(cli, SGR_DIM), when, rst(cli));
        card_cues(cli, card);
        return;
    }
    if (field_true(card, "ambiguous")) {
        const msgpack_object *a = field_array(card, "candidates");
        fprintf(cli->out, "%sAmbiguous caller%s - %u customers share this key  %s(as of %s UTC)%s\n",
                col(cli, SGR_BOLD), rst(cli), a ? a->via.array.size : 0, col(cli, SGR_DIM), when,
                rst(cli));
        card_candidates(cli, card);
        card_cues(cli, card);
        return;
    }
    const msgpack_object *who = rp_mp_get(card, "customer");
    customer_header(cli, who);
    fprintf(cli->out, "%scard as of %s UTC%s\n", col(cli, SGR_DIM), when, rst(cli));
    card_reasons(cli, card);
    card_cues(cli, card);
    section(cli, "WHO");
    customer_who(cli, who, at);
    card_events(cli, card, at);
    card_issues(cli, card, at);
    card_attributes(cli, card);
}

/* --- history, issues, lookup --------------------------------------------------------- */

void rp_cli_render_history(const rp_cli *cli, const msgpack_object *res, int64_t now) {
    char id[128], next[64];
    field(res, "customer_id", id, sizeof id);
    field(res, "next", next, sizeof next);
    const msgpack_object *a = field_array(res, "events");
    uint32_t n = a ? a->via.array.size : 0;
    fprintf(cli->out, "%sHistory of %s%s - %u event%s, newest first\n", col(cli, SGR_BOLD), id,
            rst(cli), n, n == 1 ? "" : "s");
    if (n == 0) {
        none_line(cli);
    } else {
        tbl t;
        tbl_init(&t, 8);
        for (uint32_t i = 0; i < n; i++) event_row(&t, &a->via.array.ptr[i], now, true);
        tbl_print(cli, &t);
        tbl_free(&t);
    }
    if (next[0]) { /* a command to paste: the same flags, the next page */
        char flags[RP_PATH_MAX * 2 + 256], qid[300];
        rp_cli_rerun_flags(cli, flags, sizeof flags);
        rp_cli_shell_word(qid, sizeof qid, id);
        fprintf(cli->out, "%smore: rapport%s history %s%s%s --before %s%s\n", col(cli, SGR_DIM), flags, qid,
                cli->hint_args ? " " : "", cli->hint_args ? cli->hint_args : "", next, rst(cli));
    }
}

void rp_cli_render_issues(const rp_cli *cli, const msgpack_object *res, int64_t now) {
    char id[128];
    field(res, "customer_id", id, sizeof id);
    const msgpack_object *a = field_array(res, "issues");
    uint32_t n = a ? a->via.array.size : 0;
    fprintf(cli->out, "%sIssues of %s%s - %u\n", col(cli, SGR_BOLD), id, rst(cli), n);
    if (n == 0) {
        none_line(cli);
        return;
    }
    tbl t;
    tbl_init(&t, 8);
    for (uint32_t i = 0; i < n; i++) issue_row(&t, &a->via.array.ptr[i], now, true);
    tbl_print(cli, &t);
    tbl_free(&t);
    if (field_true(res, "truncated")) fprintf(cli->out, "  (more issues exist)\n");
}

void rp_cli_render_lookup(const rp_cli *cli, const msgpack_object *res) {
    char key[300];
    field(res, "key", key, sizeof key);
    const msgpack_object *a = field_array(res, "candidates");
    uint32_t n = a ? a->via.array.size : 0;
    if (n == 0) {
        fprintf(cli->out, "%s: no customer\n", key);
        return;
    }
    fprintf(cli->out, "%s: %u customer%s%s\n", key, n, n == 1 ? "" : "s",
            n > 1 ? " (ambiguous)" : "");
    tbl t;
    tbl_init(&t, 2);
    char buf[CELL_MAX];
    for (uint32_t i = 0; i < n; i++) {
        if (!tbl_row(&t)) break;
        tbl_set(&t, 0, field(&a->via.array.ptr[i], "customer_id", buf, sizeof buf), SGR_BOLD);
        tbl_set(&t, 1, field(&a->via.array.ptr[i], "name", buf, sizeof buf), NULL);
    }
    tbl_print(cli, &t);
    tbl_free(&t);
    if (field_true(res, "truncated")) fprintf(cli->out, "  (more customers share this key)\n");
}
