/* fuzz_vocab.c — the help-desk vocabularies of issue severity and status
 * (model/record.h: rp_*_from_word, rp_*_from_number, rp_*_parse) on
 * arbitrary words.
 *
 * Input: the whole input is the word as a client sends it (any bytes; a
 * JSON string or msgpack str of an issue's severity/status). It is read
 * for both fields and with every issue_numbers setting (servicenow,
 * freshdesk, none) plus one value outside the enum.
 *
 * Checked, per field and reading, when the word is accepted:
 *   - the level is in range (< RP_SEV__COUNT, and not RP_SEV_NONE;
 *     < RP_ST__COUNT);
 *   - raw is {NULL, 0} or the word with surrounding spaces and tabs
 *     trimmed (a slice of the input), and {NULL, 0} exactly when that is
 *     the level's own name;
 *   - the word is accepted again, at the same level, with every ASCII
 *     letter's case flipped, all upper, all lower, and with spaces and
 *     tabs around it;
 *   - a bare number ("4", "08") gives what rp_*_from_number gives;
 *   - with the reading "none" (and one outside the enum) no bare number is
 *     accepted; a non-number word's level does not depend on the reading.
 * And: a word rp_*_parse accepts (the levels' own names, exact) is
 * accepted by rp_*_from_word at the same level. The number readings are
 * also driven directly with the first 8 input bytes as an integer and
 * small numbers, checking the level range and raw's digit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define FZ_READINGS 4
static const rp_issue_numbers fz_readings[FZ_READINGS] = {
    RP_ISSUE_NUMBERS_SERVICENOW, RP_ISSUE_NUMBERS_FRESHDESK, RP_ISSUE_NUMBERS_NONE,
    (rp_issue_numbers)7,
};

/* One field's functions, so both are driven by the same code. */
typedef struct fz_field {
    const char *name;
    int count;   /* levels */
    int lowest;  /* lowest level a word may give */
    bool (*from_word)(rp_str, rp_issue_numbers, int *, rp_str *);
    bool (*from_number)(uint64_t, rp_issue_numbers, int *, rp_str *);
    bool (*parse)(rp_str, int *);
    const char *(*level_name)(int);
} fz_field;

static bool sev_word(rp_str w, rp_issue_numbers r, int *lv, rp_str *raw) {
    rp_severity s;
    if (!rp_severity_from_word(w, r, &s, raw)) return false;
    *lv = (int)s;
    return true;
}
static bool sev_number(uint64_t n, rp_issue_numbers r, int *lv, rp_str *raw) {
    rp_severity s;
    if (!rp_severity_from_number(n, r, &s, raw)) return false;
    *lv = (int)s;
    return true;
}
static bool sev_parse(rp_str w, int *lv) {
    rp_severity s;
    if (!rp_severity_parse(w, &s)) return false;
    *lv = (int)s;
    return true;
}
static const char *sev_name(int lv) { return rp_severity_name((rp_severity)lv); }
static bool st_word(rp_str w, rp_issue_numbers r, int *lv, rp_str *raw) {
    rp_status s;
    if (!rp_status_from_word(w, r, &s, raw)) return false;
    *lv = (int)s;
    return true;
}
static bool st_number(uint64_t n, rp_issue_numbers r, int *lv, rp_str *raw) {
    rp_status s;
    if (!rp_status_from_number(n, r, &s, raw)) return false;
    *lv = (int)s;
    return true;
}
static bool st_parse(rp_str w, int *lv) {
    rp_status s;
    if (!rp_status_parse(w, &s)) return false;
    *lv = (int)s;
    return true;
}
static const char *st_name(int lv) { return rp_status_name((rp_status)lv); }

static const fz_field fz_fields[2] = {
    {"severity", RP_SEV__COUNT, RP_SEV_LOW, sev_word, sev_number, sev_parse, sev_name},
    {"status", RP_ST__COUNT, RP_ST_OPEN, st_word, st_number, st_parse, st_name},
};

static bool fz_blank(char c) { return c == ' ' || c == '\t'; }

/* w with surrounding spaces and tabs trimmed (the header's rule). */
static rp_str fz_trim(rp_str w) {
    while (w.n > 0 && fz_blank(w.p[0])) w.p++, w.n--;
    while (w.n > 0 && fz_blank(w.p[w.n - 1])) w.n--;
    return w;
}

/* A bare decimal number of 1 or 2 digits, or -1. */
static int fz_small_number(rp_str w) {
    if (w.n == 0 || w.n > 2) return -1;
    int v = 0;
    for (size_t i = 0; i < w.n; i++) {
        if (w.p[i] < '0' || w.p[i] > '9') return -1;
        v = v * 10 + (w.p[i] - '0');
    }
    return v;
}

/* The same word in another ASCII case (mode 0: flipped, 1: upper, 2: lower)
 * into buf (w.n bytes). */
static rp_str fz_recase(rp_str w, int mode, char *buf) {
    for (size_t i = 0; i < w.n; i++) {
        char c = w.p[i];
        bool up = c >= 'A' && c <= 'Z', lo = c >= 'a' && c <= 'z';
        if (lo && mode != 2) c = (char)(c - 'a' + 'A');
        else if (up && mode != 1) c = (char)(c - 'A' + 'a');
        buf[i] = c;
    }
    return (rp_str){w.n ? buf : w.p, w.n};
}

static void fz_check_level(const fz_field *f, int lv) {
    FZ_CHECK(lv >= f->lowest && lv < f->count, "level out of range");
}

static void fz_word(const fz_field *f, rp_str w, char *scratch) {
    int first = -1; /* the level of a non-number word, the same in every reading */
    rp_str t = fz_trim(w);
    int num = fz_small_number(t);
    for (int r = 0; r < FZ_READINGS; r++) {
        int lv = -1;
        rp_str raw = {"x", 1};
        bool ok = f->from_word(w, fz_readings[r], &lv, &raw);
        if (fz_verbose())
            fprintf(stderr, "  %s reading %d: %s %s\n", f->name, (int)fz_readings[r],
                    ok ? "accepted" : "refused", ok ? f->level_name(lv) : "");
        if (num >= 0) {
            /* a bare number: as the number table says */
            int nlv = -1;
            bool nok = f->from_number((uint64_t)num, fz_readings[r], &nlv, NULL);
            FZ_CHECK(ok == nok && (!ok || lv == nlv), "a bare number word differs from the number");
            if (fz_readings[r] != RP_ISSUE_NUMBERS_SERVICENOW &&
                fz_readings[r] != RP_ISSUE_NUMBERS_FRESHDESK)
                FZ_CHECK(!ok, "a bare number accepted with issue_numbers none");
        } else if (r == 0) {
            first = ok ? lv : -1;
        } else {
            FZ_CHECK((ok ? lv : -1) == first, "a word's level depends on the number reading");
        }
        if (!ok) {
            FZ_CHECK(lv == -1 && raw.p != NULL && raw.n == 1, "a refused word wrote out or raw");
            continue;
        }
        fz_check_level(f, lv);
        if (raw.p == NULL) {
            FZ_CHECK(raw.n == 0, "raw {NULL, n>0}");
            FZ_CHECK(rp_str_eqc(t, f->level_name(lv)), "raw dropped though the word is not the level's name");
        } else {
            FZ_CHECK(raw.p == t.p && raw.n == t.n, "raw is not the trimmed word");
            FZ_CHECK(!rp_str_eqc(t, f->level_name(lv)), "raw kept though the word is the level's name");
        }
        /* other ASCII case, then surrounding spaces and tabs */
        for (int m = 0; m < 3; m++) {
            rp_str c = fz_recase(w, m, scratch);
            int lv2 = -1;
            FZ_CHECK(f->from_word(c, fz_readings[r], &lv2, NULL) && lv2 == lv,
                     "an accepted word is not accepted again in another ASCII case");
        }
        char *sp = scratch + w.n;
        memcpy(sp, " \t  ", 4);
        if (w.n) memcpy(sp + 4, w.p, w.n);
        memcpy(sp + 4 + w.n, "\t ", 2);
        int lv3 = -1;
        rp_str raw3 = {NULL, 0};
        FZ_CHECK(f->from_word((rp_str){sp, w.n + 6}, fz_readings[r], &lv3, &raw3) && lv3 == lv,
                 "an accepted word is not accepted again with spaces around it");
        FZ_CHECK((raw3.p == NULL) == (raw.p == NULL) && raw3.n == raw.n &&
                     (raw.p == NULL || memcmp(raw3.p, raw.p, raw.n) == 0),
                 "spaces around a word change its raw form");
    }
    /* the levels' own names, exact: from_word agrees */
    int plv = -1;
    if (f->parse(w, &plv)) {
        fz_check_level(f, plv);
        int lv = -1;
        rp_str raw = {"x", 1};
        FZ_CHECK(f->from_word(w, RP_ISSUE_NUMBERS_NONE, &lv, &raw) && lv == plv && raw.p == NULL,
                 "a level's name is not read as that level");
    }
}

static void fz_number(const fz_field *f, uint64_t n) {
    for (int r = 0; r < FZ_READINGS; r++) {
        int lv = -1;
        rp_str raw = {NULL, 0};
        if (!f->from_number(n, fz_readings[r], &lv, &raw)) {
            FZ_CHECK(lv == -1, "a refused number wrote out");
            continue;
        }
        FZ_CHECK(fz_readings[r] == RP_ISSUE_NUMBERS_SERVICENOW ||
                     fz_readings[r] == RP_ISSUE_NUMBERS_FRESHDESK,
                 "a number accepted with issue_numbers none");
        fz_check_level(f, lv);
        FZ_CHECK(n < 10 && raw.p != NULL && raw.n == 1 && raw.p[0] == (char)('0' + n),
                 "a number's raw text is not its digit");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rp_str w = {(const char *)data, size};
    char *scratch = malloc(2 * size + 8);
    FZ_CHECK(scratch != NULL, "out of memory");
    uint64_t n = 0;
    memcpy(&n, data, size < 8 ? size : 8);
    for (int i = 0; i < 2; i++) {
        fz_word(&fz_fields[i], w, scratch);
        fz_number(&fz_fields[i], n);
        fz_number(&fz_fields[i], size ? data[0] : 0);
        fz_number(&fz_fields[i], size ? data[0] & 15 : 0);
    }
    free(scratch);
    return 0;
}
