/* record.c — vocabularies of the record enums, the help-desk words for
 * issue status and severity, and the string arena. */
#include "model/record.h"

#include <string.h>

static const char *const rp_channel_names[RP_CH__COUNT] = {"", "phone", "chat", "email", "web", "store", "system"};
static const char *const rp_outcome_names[RP_OUT__COUNT] = {"none", "resolved", "unresolved", "transferred", "abandoned"};
static const char *const rp_status_names[RP_ST__COUNT] = {"open", "pending", "resolved"};
static const char *const rp_severity_names[RP_SEV__COUNT] = {"", "low", "medium", "high", "critical"};

/* Linear search over a handful of words; the vocabularies are tiny. */
static bool rec_parse(rp_str s, const char *const *names, int count, int first, int *out) {
    for (int i = first; i < count; i++) {
        if (rp_str_eqc(s, names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

const char *rp_channel_name(rp_channel c) { return (unsigned)c < RP_CH__COUNT ? rp_channel_names[c] : ""; }
const char *rp_outcome_name(rp_outcome o) { return (unsigned)o < RP_OUT__COUNT ? rp_outcome_names[o] : "none"; }
const char *rp_status_name(rp_status s) { return (unsigned)s < RP_ST__COUNT ? rp_status_names[s] : "open"; }
const char *rp_severity_name(rp_severity s) { return (unsigned)s < RP_SEV__COUNT ? rp_severity_names[s] : ""; }

bool rp_channel_parse(rp_str s, rp_channel *out) {
    int v;
    if (!rec_parse(s, rp_channel_names, RP_CH__COUNT, 1, &v)) return false;
    *out = (rp_channel)v;
    return true;
}
bool rp_outcome_parse(rp_str s, rp_outcome *out) {
    int v;
    if (!rec_parse(s, rp_outcome_names, RP_OUT__COUNT, 0, &v)) return false;
    *out = (rp_outcome)v;
    return true;
}
bool rp_status_parse(rp_str s, rp_status *out) {
    int v;
    if (!rec_parse(s, rp_status_names, RP_ST__COUNT, 0, &v)) return false;
    *out = (rp_status)v;
    return true;
}
bool rp_severity_parse(rp_str s, rp_severity *out) {
    int v;
    if (!rec_parse(s, rp_severity_names, RP_SEV__COUNT, 1, &v)) return false;
    *out = (rp_severity)v;
    return true;
}

/* ---- help-desk vocabularies ------------------------------------------------
 * One row per word a real system sends, in its folded form (lower case, one
 * space between words, no spaces around '-'; see fold()). Sources are the
 * vendors' API documentation as summarized in shared/CRM-VOCABULARIES.md;
 * proto/RECORDS.md has the same table for integrators. Linear search: about
 * 30 rows, searched once per issue written. */

typedef struct vocab_word {
    const char *word; /* folded */
    int level;        /* rp_severity or rp_status */
} vocab_word;

static const vocab_word severity_words[] = {
    /* rapport's own levels */
    {"low", RP_SEV_LOW}, {"medium", RP_SEV_MEDIUM}, {"high", RP_SEV_HIGH},
    {"critical", RP_SEV_CRITICAL},
    /* Zendesk priority (low, normal, high, urgent); Freshdesk's labels too */
    {"normal", RP_SEV_MEDIUM}, {"urgent", RP_SEV_CRITICAL},
    /* ServiceNow priority labels, with and without their number */
    {"moderate", RP_SEV_MEDIUM}, {"planning", RP_SEV_LOW},
    {"1-critical", RP_SEV_CRITICAL}, {"2-high", RP_SEV_HIGH}, {"3-moderate", RP_SEV_MEDIUM},
    {"4-low", RP_SEV_LOW}, {"5-planning", RP_SEV_LOW},
    /* Jira priority names (Highest .. Lowest) */
    {"highest", RP_SEV_CRITICAL}, {"lowest", RP_SEV_LOW},
    /* the common shorthand; P5 is "planning" where it exists */
    {"p1", RP_SEV_CRITICAL}, {"p2", RP_SEV_HIGH}, {"p3", RP_SEV_MEDIUM}, {"p4", RP_SEV_LOW},
    {"p5", RP_SEV_LOW},
};

/* Not resolved unless the source says the work is over. "hold"/"on hold"
 * wait on someone else, like "pending"; new, working, escalated, in
 * progress and to do are being worked on or about to be: open. */
static const vocab_word status_words[] = {
    /* rapport's own levels */
    {"open", RP_ST_OPEN}, {"pending", RP_ST_PENDING}, {"resolved", RP_ST_RESOLVED},
    /* Zendesk (new, open, pending, hold, solved, closed) */
    {"new", RP_ST_OPEN}, {"hold", RP_ST_PENDING}, {"solved", RP_ST_RESOLVED},
    {"closed", RP_ST_RESOLVED},
    /* Salesforce Case defaults (New, Working, Escalated, Closed) */
    {"working", RP_ST_OPEN}, {"escalated", RP_ST_OPEN},
    /* ServiceNow incident state (New, In Progress, On Hold, Resolved, Closed, Canceled) */
    {"in progress", RP_ST_OPEN}, {"on hold", RP_ST_PENDING}, {"canceled", RP_ST_RESOLVED},
    {"cancelled", RP_ST_RESOLVED},
    /* Jira status categories: names (To Do, In Progress, Done) and keys */
    {"to do", RP_ST_OPEN}, {"done", RP_ST_RESOLVED}, {"indeterminate", RP_ST_OPEN},
};

/* Bare numbers, indexed by the number, per reading; 0 = not a level. */
static const int severity_numbers[2][6] = {
    /* ServiceNow priority: 1 Critical, 2 High, 3 Moderate, 4 Low, 5 Planning */
    [RP_ISSUE_NUMBERS_SERVICENOW] = {0, RP_SEV_CRITICAL, RP_SEV_HIGH, RP_SEV_MEDIUM, RP_SEV_LOW,
                                     RP_SEV_LOW},
    /* Freshdesk priority: 1 Low, 2 Medium, 3 High, 4 Urgent */
    [RP_ISSUE_NUMBERS_FRESHDESK] = {0, RP_SEV_LOW, RP_SEV_MEDIUM, RP_SEV_HIGH, RP_SEV_CRITICAL, 0},
};
/* -1 = not a status in that reading (RP_ST_OPEN is 0). */
static const int status_numbers[2][9] = {
    /* ServiceNow incident state: 1 New, 2 In Progress, 3 On Hold, 6 Resolved,
     * 7 Closed, 8 Canceled */
    [RP_ISSUE_NUMBERS_SERVICENOW] = {-1, RP_ST_OPEN, RP_ST_OPEN, RP_ST_PENDING, -1, -1,
                                     RP_ST_RESOLVED, RP_ST_RESOLVED, RP_ST_RESOLVED},
    /* Freshdesk status: 2 Open, 3 Pending, 4 Resolved, 5 Closed */
    [RP_ISSUE_NUMBERS_FRESHDESK] = {-1, -1, RP_ST_OPEN, RP_ST_PENDING, RP_ST_RESOLVED,
                                    RP_ST_RESOLVED, -1, -1, -1},
};

/* The decimal text of a small number, for raw words of integers. */
static const char digits[] = "0123456789";

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* word without surrounding spaces and tabs. */
static rp_str trim(rp_str w) {
    while (w.n > 0 && is_blank(w.p[0])) w.p++, w.n--;
    while (w.n > 0 && is_blank(w.p[w.n - 1])) w.n--;
    return w;
}

/* Fold a trimmed word into buf (RP_VOCAB_WORD_MAX + 1 bytes): ASCII lower
 * case, a run of spaces, tabs or '_' as one space, none around '-'. Returns
 * false when the word is empty or longer than RP_VOCAB_WORD_MAX. */
static bool fold(rp_str w, char *buf) {
    if (w.n == 0 || w.n > RP_VOCAB_WORD_MAX) return false;
    size_t n = 0;
    bool gap = false;
    for (size_t i = 0; i < w.n; i++) {
        char c = w.p[i];
        if (is_blank(c) || c == '_') {
            gap = true;
            continue;
        }
        if (gap && c != '-' && n > 0 && buf[n - 1] != '-') buf[n++] = ' ';
        gap = false;
        if (c == '-' && n > 0 && buf[n - 1] == ' ') n--;
        buf[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    buf[n] = '\0';
    return true;
}

/* A bare decimal number of at most 2 digits ("4", "08"): its value, or -1. */
static int small_number(rp_str w) {
    if (w.n == 0 || w.n > 2) return -1;
    int v = 0;
    for (size_t i = 0; i < w.n; i++) {
        if (w.p[i] < '0' || w.p[i] > '9') return -1;
        v = v * 10 + (w.p[i] - '0');
    }
    return v;
}

/* Level of a number in a reading's table, or -1. */
static int number_level(uint64_t n, rp_issue_numbers numbers, const int *table, size_t len,
                        int none) {
    if (numbers != RP_ISSUE_NUMBERS_SERVICENOW && numbers != RP_ISSUE_NUMBERS_FRESHDESK) return -1;
    if (n >= len || table[n] == none) return -1;
    return table[n];
}

/* The raw word to keep: w trimmed, or nothing when it is the level's name. */
static rp_str raw_of(rp_str trimmed, const char *level_name) {
    return rp_str_eqc(trimmed, level_name) ? (rp_str){NULL, 0} : trimmed;
}

/* Look a word up: a bare number through the reading's table, anything else
 * in the word table. Returns the level or -1. */
static int word_level(rp_str t, rp_issue_numbers numbers, const vocab_word *words, size_t nwords,
                      const int *ntable, size_t nlen, int none) {
    int num = small_number(t);
    if (num >= 0) return number_level((uint64_t)num, numbers, ntable, nlen, none);
    char buf[RP_VOCAB_WORD_MAX + 1];
    if (!fold(t, buf)) return -1;
    for (size_t i = 0; i < nwords; i++)
        if (strcmp(buf, words[i].word) == 0) return words[i].level;
    return -1;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

bool rp_severity_from_word(rp_str word, rp_issue_numbers numbers, rp_severity *out, rp_str *raw) {
    rp_str t = trim(word);
    int lv = word_level(t, numbers, severity_words, COUNT(severity_words),
                        severity_numbers[numbers == RP_ISSUE_NUMBERS_FRESHDESK], 6, 0);
    if (lv < 0) return false;
    *out = (rp_severity)lv;
    if (raw) *raw = raw_of(t, rp_severity_name(*out));
    return true;
}

bool rp_status_from_word(rp_str word, rp_issue_numbers numbers, rp_status *out, rp_str *raw) {
    rp_str t = trim(word);
    int lv = word_level(t, numbers, status_words, COUNT(status_words),
                        status_numbers[numbers == RP_ISSUE_NUMBERS_FRESHDESK], 9, -1);
    if (lv < 0) return false;
    *out = (rp_status)lv;
    if (raw) *raw = raw_of(t, rp_status_name(*out));
    return true;
}

bool rp_severity_from_number(uint64_t n, rp_issue_numbers numbers, rp_severity *out, rp_str *raw) {
    int lv = number_level(n, numbers, severity_numbers[numbers == RP_ISSUE_NUMBERS_FRESHDESK], 6, 0);
    if (lv < 0) return false;
    *out = (rp_severity)lv;
    if (raw) *raw = (rp_str){&digits[n], 1};
    return true;
}

bool rp_status_from_number(uint64_t n, rp_issue_numbers numbers, rp_status *out, rp_str *raw) {
    int lv = number_level(n, numbers, status_numbers[numbers == RP_ISSUE_NUMBERS_FRESHDESK], 9, -1);
    if (lv < 0) return false;
    *out = (rp_status)lv;
    if (raw) *raw = (rp_str){&digits[n], 1};
    return true;
}

char *rp_arena_put(rp_arena *a, const void *p, size_t n) {
    if (a == NULL || a->base == NULL || n > a->cap - a->used) return NULL;
    char *dst = a->base + a->used;
    if (n) memcpy(dst, p, n);
    a->used += n;
    return dst;
}
