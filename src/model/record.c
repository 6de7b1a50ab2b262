/* record.c — vocabularies of the record enums, and the string arena. */
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

char *rp_arena_put(rp_arena *a, const void *p, size_t n) {
    if (a == NULL || a->base == NULL || n > a->cap - a->used) return NULL;
    char *dst = a->base + a->used;
    if (n) memcpy(dst, p, n);
    a->used += n;
    return dst;
}
