/* mpcheck.c — the bounded MessagePack validator (design in mpcheck.h).
 *
 * One loop, one element per turn. A turn takes the next element from the
 * innermost open container (or the top-level object), reads its type byte,
 * and either consumes it whole (a scalar, a str, a bin, an empty container)
 * or opens a container by pushing a frame holding how many elements it still
 * owes (pairs count twice: key, value). After a consumed element, finished
 * frames are popped; the walk ends when the stack is empty.
 *
 * `need` is the number of elements announced by open containers and not yet
 * started. Since each needs at least one byte, off + need is a lower bound
 * of the object's length; every check compares the end of what the current
 * element needs, plus `need`, against max_bytes. That invariant
 * (off + need <= max_bytes) also keeps all the size arithmetic below
 * max_bytes, so no sum can overflow.
 */
#include "model/mpcheck.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "model/ident.h"

/* One open container: elements still owed, and whether it is a map (then
 * an even `left` means a key comes next). */
typedef struct mpc_frame {
    uint64_t left;
    uint32_t map;
} mpc_frame;

/* The state of one walk. */
typedef struct mpc_walk {
    const unsigned char *p;
    size_t len;       /* bytes available */
    size_t max;       /* lim->max_bytes */
    const rp_mpcheck_limits *lim;
    uint32_t maxd;    /* lim->max_depth, clamped to RP_MPCHECK_DEPTH_CAP */
    uint32_t d;       /* open containers (frames in st) */
    uint32_t deepest; /* the most containers ever open at once */
    size_t off;       /* the next byte to read */
    size_t need;      /* elements announced and not yet started */
    size_t zone;      /* zone bytes msgpack_unpack would request so far */
    size_t lower;     /* INCOMPLETE: lower bound of the object's length */
    char *why;
    size_t whylen;
    mpc_frame *st;    /* RP_MPCHECK_DEPTH_CAP frames, on the caller's stack */
} mpc_walk;

/* Write a sentence into why (when the caller gave room) and return r. */
static rp_mpcheck_result mpc_say(char *why, size_t whylen, rp_mpcheck_result r, const char *fmt,
                                 va_list ap) {
    if (why != NULL && whylen > 0) vsnprintf(why, whylen, fmt, ap);
    return r;
}

/* mpc_say into the walk's why. */
static rp_mpcheck_result mpc_fail(mpc_walk *w, rp_mpcheck_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rp_mpcheck_result mpc_fail(mpc_walk *w, rp_mpcheck_result r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mpc_say(w->why, w->whylen, r, fmt, ap);
    va_end(ap);
    return r;
}

/* mpc_say for callers without a walk. */
static rp_mpcheck_result mpc_why(char *why, size_t whylen, rp_mpcheck_result r, const char *fmt,
                                 ...) __attribute__((format(printf, 4, 5)));
static rp_mpcheck_result mpc_why(char *why, size_t whylen, rp_mpcheck_result r, const char *fmt,
                                 ...) {
    va_list ap;
    va_start(ap, fmt);
    mpc_say(why, whylen, r, fmt, ap);
    va_end(ap);
    return r;
}

/* The current element needs bytes [0, end) of the object: TOO_LARGE when
 * end plus one byte per pending element passes max_bytes, INCOMPLETE when
 * they have not arrived yet, else OK. O(1). */
static rp_mpcheck_result mpc_want(mpc_walk *w, size_t end) {
    if (end > w->max || w->need > w->max - end)
        return mpc_fail(w, RP_MPC_TOO_LARGE,
                        "the object needs more than %zu bytes, the size limit", w->max);
    if (end > w->len) {
        w->lower = end + w->need;
        return mpc_fail(w, RP_MPC_INCOMPLETE,
                        "the object needs at least %zu bytes; %zu have arrived", w->lower,
                        w->len);
    }
    return RP_MPC_OK;
}

/* Read an n-byte (1, 2, 4) big-endian unsigned length or count. */
static uint32_t mpc_be(const unsigned char *p, unsigned n) {
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* What a type byte announces. */
typedef enum mpc_kind { K_FIXED, K_STR, K_BIN, K_ARRAY, K_MAP, K_EXT, K_NEVER } mpc_kind;

typedef struct mpc_head {
    mpc_kind kind;
    unsigned size;    /* K_FIXED: total bytes; others: bytes of the length field */
    uint32_t inl;     /* the length or count held in the type byte itself */
} mpc_head;

/* Classify a type byte (the MessagePack spec's format table). O(1). */
static mpc_head mpc_classify(unsigned char b) {
    if (b <= 0x7f || b >= 0xe0) return (mpc_head){K_FIXED, 1, 0};  /* fixints */
    if (b <= 0x8f) return (mpc_head){K_MAP, 0, b & 0x0fu};
    if (b <= 0x9f) return (mpc_head){K_ARRAY, 0, b & 0x0fu};
    if (b <= 0xbf) return (mpc_head){K_STR, 0, b & 0x1fu};
    switch (b) {
    case 0xc0: case 0xc2: case 0xc3: return (mpc_head){K_FIXED, 1, 0};
    case 0xc4: return (mpc_head){K_BIN, 1, 0};
    case 0xc5: return (mpc_head){K_BIN, 2, 0};
    case 0xc6: return (mpc_head){K_BIN, 4, 0};
    case 0xca: return (mpc_head){K_FIXED, 5, 0};
    case 0xcb: return (mpc_head){K_FIXED, 9, 0};
    case 0xcc: case 0xd0: return (mpc_head){K_FIXED, 2, 0};
    case 0xcd: case 0xd1: return (mpc_head){K_FIXED, 3, 0};
    case 0xce: case 0xd2: return (mpc_head){K_FIXED, 5, 0};
    case 0xcf: case 0xd3: return (mpc_head){K_FIXED, 9, 0};
    case 0xd9: return (mpc_head){K_STR, 1, 0};
    case 0xda: return (mpc_head){K_STR, 2, 0};
    case 0xdb: return (mpc_head){K_STR, 4, 0};
    case 0xdc: return (mpc_head){K_ARRAY, 2, 0};
    case 0xdd: return (mpc_head){K_ARRAY, 4, 0};
    case 0xde: return (mpc_head){K_MAP, 2, 0};
    case 0xdf: return (mpc_head){K_MAP, 4, 0};
    case 0xc7: case 0xc8: case 0xc9:
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return (mpc_head){K_EXT, 0, 0};
    default: return (mpc_head){K_NEVER, 0, 0}; /* 0xc1 */
    }
}

rp_mpcheck_limits rp_mpcheck_limits_from_config(const rp_config *cfg) {
    rp_mpcheck_limits lim = {
        .max_bytes = cfg->max_request_bytes,
        .max_depth = cfg->max_depth,
        .max_container = cfg->max_container,
        .max_string = cfg->max_string,
        .max_zone = 0,
    };
    return lim;
}

/* Is p[0..n) valid UTF-8? ASCII runs are skipped eight bytes at a time;
 * rp_utf8_valid takes over at the first byte >= 0x80 (what precedes it is
 * whole ASCII characters, so starting there is exact). O(n). */
static bool mpc_utf8(const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, sizeof x);
        if (x & 0x8080808080808080ull) break;
    }
    while (i < n && p[i] < 0x80) i++;
    return i == n || rp_utf8_valid((const char *)p + i, n - i);
}

/* A str or bin whose type byte is at w->off: check its length against the
 * limits before its bytes are needed, then UTF-8 for a str. O(length). */
static rp_mpcheck_result mpc_bytes(mpc_walk *w, mpc_head h) {
    size_t off = w->off, hdr = 1 + h.size;
    rp_mpcheck_result r;
    if ((r = mpc_want(w, off + hdr)) != RP_MPC_OK) return r;
    uint32_t n = h.size ? mpc_be(w->p + off + 1, h.size) : h.inl;
    const char *what = h.kind == K_STR ? "string" : "bin";
    if (n > w->lim->max_string)
        return mpc_fail(w, RP_MPC_TOO_LARGE, "%s at byte %zu is %u bytes; the limit is %u", what,
                        off, n, w->lim->max_string);
    /* mpc_want(off + hdr) held, so this subtraction cannot wrap */
    if (n > w->max - (off + hdr) - w->need)
        return mpc_fail(w, RP_MPC_TOO_LARGE,
                        "%s at byte %zu is %u bytes, more than the %zu-byte size limit "
                        "leaves room for", what, off, n, w->max);
    if ((r = mpc_want(w, off + hdr + n)) != RP_MPC_OK) return r;
    if (h.kind == K_STR && !w->lim->skip_utf8 && !mpc_utf8(w->p + off + hdr, n))
        return mpc_fail(w, RP_MPC_INVALID, "string at byte %zu is not valid UTF-8", off);
    w->off = off + hdr + n;
    return RP_MPC_OK;
}

/* An array or map whose type byte is at w->off: check depth, count, the
 * bytes its elements need at least, and its zone cost; then push it (when
 * not empty). O(1). */
static rp_mpcheck_result mpc_open(mpc_walk *w, mpc_head h) {
    size_t off = w->off, hdr = 1 + h.size;
    bool map = h.kind == K_MAP;
    const char *what = map ? "map" : "array", *items = map ? "pairs" : "elements";
    rp_mpcheck_result r;
    if ((r = mpc_want(w, off + hdr)) != RP_MPC_OK) return r;
    uint32_t n = h.size ? mpc_be(w->p + off + 1, h.size) : h.inl;
    if (w->d >= w->maxd)
        return mpc_fail(w, RP_MPC_TOO_LARGE, "%s at byte %zu nests deeper than the limit of %u",
                        what, off, w->maxd);
    if (n > w->lim->max_container)
        return mpc_fail(w, RP_MPC_TOO_LARGE, "%s at byte %zu has %u %s; the limit is %u", what,
                        off, n, items, w->lim->max_container);
    uint64_t elems = map ? 2 * (uint64_t)n : n;
    if (elems > w->max - (off + hdr) - w->need)
        return mpc_fail(w, RP_MPC_TOO_LARGE,
                        "%s at byte %zu announces %u %s, more than the %zu-byte size limit "
                        "leaves room for", what, off, n, items, w->max);
    size_t unit = map ? sizeof(msgpack_object_kv) : sizeof(msgpack_object);
    size_t cost = SIZE_MAX; /* stands for "does not fit in size_t" */
    if (n <= (SIZE_MAX - RP_MPCHECK_ZONE_PAD) / unit) cost = (size_t)n * unit + RP_MPCHECK_ZONE_PAD;
    size_t max_zone = w->lim->max_zone;
    if (cost > SIZE_MAX - w->zone || (max_zone > 0 && w->zone + cost > max_zone))
        return mpc_fail(w, RP_MPC_TOO_LARGE,
                        "%s at byte %zu takes the decoded object past its memory limit of %zu "
                        "bytes", what, off, max_zone);
    w->zone += cost;
    w->off = off + hdr;
    if (w->d + 1 > w->deepest) w->deepest = w->d + 1;
    if (elems > 0) {
        w->st[w->d++] = (mpc_frame){elems, map};
        w->need += (size_t)elems; /* <= max - off: checked above */
    }
    return RP_MPC_OK;
}

/* One element: the next of the innermost open container, or the top-level
 * object when none is open. Consumes it whole, or opens it. */
static rp_mpcheck_result mpc_element(mpc_walk *w) {
    bool key = false;
    rp_mpcheck_result r;
    if (w->d > 0) {
        mpc_frame *f = &w->st[w->d - 1];
        assert(f->left > 0 && w->need > 0);
        key = f->map && f->left % 2 == 0;
        f->left--;
        w->need--;
    }
    if ((r = mpc_want(w, w->off + 1)) != RP_MPC_OK) return r;
    unsigned char b = w->p[w->off];
    mpc_head h = mpc_classify(b);
    if (key && h.kind != K_STR)
        return mpc_fail(w, RP_MPC_INVALID,
                        "map key at byte %zu is not a string (type byte 0x%02x); "
                        "rapport maps have string keys", w->off, b);
    switch (h.kind) {
    case K_NEVER:
        return mpc_fail(w, RP_MPC_INVALID, "byte %zu is 0x%02x, which MessagePack never uses",
                        w->off, b);
    case K_EXT:
        return mpc_fail(w, RP_MPC_INVALID,
                        "byte %zu (0x%02x) starts an ext value; rapport accepts no ext types "
                        "(times are integer seconds)", w->off, b);
    case K_FIXED:
        if ((r = mpc_want(w, w->off + h.size)) != RP_MPC_OK) return r;
        w->off += h.size;
        return RP_MPC_OK;
    case K_STR:
    case K_BIN: return mpc_bytes(w, h);
    case K_ARRAY:
    case K_MAP: return mpc_open(w, h);
    }
    return RP_MPC_INVALID; /* not reached: every kind is handled */
}

rp_mpcheck_result rp_mpcheck_ex(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                                rp_mpcheck_info *info, char *why, size_t whylen) {
    assert(lim != NULL);
    assert(buf != NULL || len == 0);
    mpc_frame st[RP_MPCHECK_DEPTH_CAP];
    mpc_walk w = {0};
    w.p = (const unsigned char *)buf;
    w.len = len;
    w.max = lim->max_bytes;
    w.lim = lim;
    w.maxd = lim->max_depth < RP_MPCHECK_DEPTH_CAP ? lim->max_depth : RP_MPCHECK_DEPTH_CAP;
    w.why = why;
    w.whylen = whylen;
    w.st = st;
    if (info != NULL) *info = (rp_mpcheck_info){0, 0, 0};
    if (why != NULL && whylen > 0) why[0] = '\0';

    do {
        rp_mpcheck_result r = mpc_element(&w);
        if (r != RP_MPC_OK) {
            if (info != NULL && r == RP_MPC_INCOMPLETE) info->obj_len = w.lower;
            return r;
        }
        while (w.d > 0 && w.st[w.d - 1].left == 0) w.d--; /* close finished containers */
    } while (w.d > 0);
    assert(w.need == 0);
    if (info != NULL) *info = (rp_mpcheck_info){w.off, w.zone, w.deepest};
    return RP_MPC_OK;
}

rp_mpcheck_result rp_mpcheck(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                             size_t *obj_len, char *why, size_t whylen) {
    rp_mpcheck_info info;
    rp_mpcheck_result r = rp_mpcheck_ex(buf, len, lim, &info, why, whylen);
    if (obj_len != NULL) *obj_len = info.obj_len;
    return r;
}

rp_mpcheck_result rp_mpcheck_unpack(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                                    msgpack_zone *zone, msgpack_object *obj, size_t *obj_len,
                                    char *why, size_t whylen) {
    assert(zone != NULL && obj != NULL);
    rp_mpcheck_limits l = *lim;
    if (l.max_depth > RP_MPCHECK_UNPACK_DEPTH_MAX) l.max_depth = RP_MPCHECK_UNPACK_DEPTH_MAX;
    rp_mpcheck_info info;
    rp_mpcheck_result r = rp_mpcheck_ex(buf, len, &l, &info, why, whylen);
    if (obj_len != NULL) *obj_len = info.obj_len;
    if (r != RP_MPC_OK) return r;

    size_t off = 0;
    msgpack_unpack_return u = msgpack_unpack(buf, info.obj_len, &off, zone, obj);
    if (u == MSGPACK_UNPACK_SUCCESS && off == info.obj_len) return RP_MPC_OK;
    if (u < 0) {
        /* msgpack_unpack reports every failure as PARSE_ERROR; on validated
         * input (no 0xc1, no ext, depth within its stack) the one failure
         * left is its zone failing to allocate. */
        return mpc_why(why, whylen, RP_MPC_NOMEM,
                       "msgpack-c could not allocate the object (%zu bytes of zone)",
                       info.zone_bytes);
    }
    return mpc_why(why, whylen, RP_MPC_INVALID,
                   "msgpack-c disagreed with the validator about a %zu-byte object "
                   "(result %d, %zu bytes used): a bug", info.obj_len, (int)u, off);
}

rp_err rp_mpcheck_err(rp_mpcheck_result r) {
    switch (r) {
    case RP_MPC_OK: return RP_OK;
    case RP_MPC_TOO_LARGE: return RP_TOO_LARGE;
    case RP_MPC_NOMEM: return RP_UNAVAILABLE;
    case RP_MPC_INCOMPLETE:
    case RP_MPC_INVALID: return RP_BAD_REQUEST;
    }
    return RP_INTERNAL;
}

const char *rp_mpcheck_result_name(rp_mpcheck_result r) {
    switch (r) {
    case RP_MPC_OK: return "OK";
    case RP_MPC_INCOMPLETE: return "INCOMPLETE";
    case RP_MPC_INVALID: return "INVALID";
    case RP_MPC_TOO_LARGE: return "TOO_LARGE";
    case RP_MPC_NOMEM: return "NOMEM";
    }
    return "UNKNOWN";
}
