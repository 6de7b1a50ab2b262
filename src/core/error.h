/* error.h — the one error enum of rapport, and its string table.
 *
 * Every function in rapport that can fail returns an rp_err. The codes are the
 * stable wire codes of the protocol (see proto/PROTOCOL.md): a client sees the
 * same word whatever layer failed. LMDB return codes and errno values are
 * mapped into this enum at the boundary (rp_err_from_mdb, rp_err_from_errno);
 * nothing returns a bare -1.
 *
 * A human sentence travels beside the code in an rp_errbuf, filled by
 * rp_errf(). Callers that do not care pass NULL.
 */
#ifndef RP_ERROR_H
#define RP_ERROR_H

#include <stddef.h>

typedef enum rp_err {
    RP_OK = 0,
    RP_NOT_FOUND,   /* the id / issue / record does not exist */
    RP_BAD_REQUEST, /* input failed validation */
    RP_UNAUTHORIZED,/* no valid token */
    RP_FORBIDDEN,   /* token valid, role not allowed */
    RP_CONFLICT,    /* expected version differs, or a merge cycle */
    RP_TOO_LARGE,   /* a size limit was exceeded */
    RP_STORE_FULL,  /* the LMDB map reached its configured maximum */
    RP_UNAVAILABLE, /* shutting down, or a queue is full: retry later */
    RP_INTERNAL,    /* a bug, corruption or an unexpected system error */
    RP_ERR__COUNT
} rp_err;

/* Room for one message: long enough for a field name and a quoted value. */
#define RP_ERRMSG_MAX 256

typedef struct rp_errbuf {
    rp_err code;
    char msg[RP_ERRMSG_MAX];
} rp_errbuf;

/* The stable code string ("NOT_FOUND"). Never NULL; unknown -> "INTERNAL". */
const char *rp_err_code(rp_err e);

/* A default sentence for a code ("not found"), used when no message was set. */
const char *rp_err_text(rp_err e);

/* Parse a code string back (for clients). Returns RP_INTERNAL when unknown. */
rp_err rp_err_parse(const char *code, size_t len);

/* Record code and printf-style message into eb (eb may be NULL). Returns
 * code, so that `return rp_errf(eb, RP_BAD_REQUEST, "...")` reads naturally.
 * The message is truncated to RP_ERRMSG_MAX-1 bytes. */
rp_err rp_errf(rp_errbuf *eb, rp_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The message in eb, or the default text for its code when none was set. */
const char *rp_errbuf_msg(const rp_errbuf *eb);

/* Map an LMDB return code (MDB_NOTFOUND, MDB_MAP_FULL, ...). 0 -> RP_OK. */
rp_err rp_err_from_mdb(int rc);

/* Map an errno value (ENOMEM -> RP_UNAVAILABLE, ENOSPC -> RP_STORE_FULL ...). */
rp_err rp_err_from_errno(int e);

#endif
