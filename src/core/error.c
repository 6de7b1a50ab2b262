/* error.c — the string table for rp_err and the LMDB/errno mappings. */
#include "core/error.h"

#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *code;
    const char *text;
} rp_err_table[RP_ERR__COUNT] = {
    [RP_OK] = {"OK", "ok"},
    [RP_NOT_FOUND] = {"NOT_FOUND", "not found"},
    [RP_BAD_REQUEST] = {"BAD_REQUEST", "bad request"},
    [RP_UNAUTHORIZED] = {"UNAUTHORIZED", "a valid token is required"},
    [RP_FORBIDDEN] = {"FORBIDDEN", "this token's role may not do that"},
    [RP_CONFLICT] = {"CONFLICT", "version conflict"},
    [RP_TOO_LARGE] = {"TOO_LARGE", "too large"},
    [RP_STORE_FULL] = {"STORE_FULL", "the store reached its maximum size"},
    [RP_UNAVAILABLE] = {"UNAVAILABLE", "temporarily unavailable, retry"},
    [RP_INTERNAL] = {"INTERNAL", "internal error"},
};

const char *rp_err_code(rp_err e) {
    if ((unsigned)e >= RP_ERR__COUNT) return "INTERNAL";
    return rp_err_table[e].code;
}

const char *rp_err_text(rp_err e) {
    if ((unsigned)e >= RP_ERR__COUNT) return "internal error";
    return rp_err_table[e].text;
}

rp_err rp_err_parse(const char *code, size_t len) {
    for (int i = 0; i < RP_ERR__COUNT; i++) {
        const char *c = rp_err_table[i].code;
        if (strlen(c) == len && memcmp(c, code, len) == 0) return (rp_err)i;
    }
    return RP_INTERNAL;
}

rp_err rp_errf(rp_errbuf *eb, rp_err code, const char *fmt, ...) {
    if (eb == NULL) return code;
    eb->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
    va_end(ap);
    return code;
}

const char *rp_errbuf_msg(const rp_errbuf *eb) {
    if (eb == NULL || eb->msg[0] == '\0') return rp_err_text(eb ? eb->code : RP_INTERNAL);
    return eb->msg;
}

rp_err rp_err_from_mdb(int rc) {
    switch (rc) {
    case MDB_SUCCESS: return RP_OK;
    case MDB_NOTFOUND: return RP_NOT_FOUND;
    case MDB_KEYEXIST: return RP_CONFLICT;
    case MDB_MAP_FULL: return RP_STORE_FULL;
    case MDB_DBS_FULL:
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
    case MDB_MAP_RESIZED:
    case MDB_BAD_RSLOT: return RP_UNAVAILABLE;
    case MDB_BAD_VALSIZE: return RP_TOO_LARGE;
    default:
        if (rc > 0) return rp_err_from_errno(rc); /* LMDB passes errno through */
        return RP_INTERNAL; /* MDB_CORRUPTED, MDB_PANIC, MDB_VERSION_MISMATCH, ... */
    }
}

rp_err rp_err_from_errno(int e) {
    switch (e) {
    case 0: return RP_OK;
    case ENOENT: return RP_NOT_FOUND;
    case EINVAL: return RP_BAD_REQUEST;
    case EACCES:
    case EPERM: return RP_FORBIDDEN;
    case ENOSPC:
    case EDQUOT: return RP_STORE_FULL;
    case ENOMEM:
    case EAGAIN:
    case EMFILE:
    case ENFILE:
    case EBUSY: return RP_UNAVAILABLE;
    case E2BIG:
    case EFBIG:
    case EMSGSIZE: return RP_TOO_LARGE;
    default: return RP_INTERNAL;
    }
}
