/* json.c — JSON <-> MessagePack at the HTTP edge (rules in json.h).
 *
 * Both directions walk their tree with an explicit stack, like mpcheck.c,
 * so neither a deep JSON document nor a deep msgpack_object recurses on the
 * C stack. JSON -> MessagePack packs through a size-checking write callback
 * so the output stops growing the moment it passes max_bytes. MessagePack ->
 * JSON writes into an rp_buf, whose sticky error lets the writer emit small
 * pieces without checking each one.
 */
#include "net/json.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ===================== JSON -> MessagePack ===================== */

/* Where packed bytes go: the caller's sbuffer, at most max bytes past start. */
typedef struct jm_sink {
    msgpack_sbuffer *sb;
    size_t start;
    size_t max;
    bool too_large;
} jm_sink;

/* msgpack_packer's write callback: refuse bytes past the limit. */
static int jm_write(void *data, const char *buf, size_t len) {
    jm_sink *s = data;
    size_t used = s->sb->size - s->start;
    if (used > s->max || len > s->max - used) {
        s->too_large = true;
        return -1;
    }
    return msgpack_sbuffer_write(s->sb, buf, len);
}

/* One open container: an object (iter = its next member, NULL when done)
 * or an array (i = its next index). */
typedef struct jm_frame {
    json_t *c;
    void *iter;
    size_t i;
} jm_frame;

/* Frames held inside the walk itself; deeper limits get a heap stack. */
#define JM_INLINE 64

typedef struct jm_walk {
    msgpack_packer pk;
    jm_sink sink;
    const rp_mpcheck_limits *lim;
    uint32_t maxd;
    uint32_t d;
    rp_errbuf *eb;
    jm_frame *st; /* maxd frames: `inl` or malloc'd */
    jm_frame inl[JM_INLINE];
} jm_walk;

/* A packer call failed: the sink says whether it was the limit or memory. */
static rp_err jm_packfail(jm_walk *w) {
    if (w->sink.too_large)
        return rp_errf(w->eb, RP_TOO_LARGE,
                       "the request is larger than %zu bytes once converted to MessagePack",
                       w->sink.max);
    return rp_errf(w->eb, RP_UNAVAILABLE, "out of memory converting JSON to MessagePack");
}

/* Check a string's size and pack it. */
static rp_err jm_str(jm_walk *w, const char *s, size_t n, const char *what) {
    if (n > w->lim->max_string)
        return rp_errf(w->eb, RP_TOO_LARGE, "a JSON %s is %zu bytes; the limit is %u", what, n,
                       w->lim->max_string);
    return msgpack_pack_str_with_body(&w->pk, s, n) == 0 ? RP_OK : jm_packfail(w);
}

/* Pack one value; a non-empty array or object is opened (pushed) for the
 * main loop to fill. O(1) except for strings (O(length)). */
static rp_err jm_value(jm_walk *w, json_t *v) {
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY: {
        bool obj = json_is_object(v);
        size_t n = obj ? json_object_size(v) : json_array_size(v);
        if (w->d >= w->maxd)
            return rp_errf(w->eb, RP_TOO_LARGE, "the JSON nests deeper than %u levels", w->maxd);
        if (n > w->lim->max_container)
            return rp_errf(w->eb, RP_TOO_LARGE, "a JSON %s has %zu %s; the limit is %u",
                           obj ? "object" : "array", n, obj ? "members" : "elements",
                           w->lim->max_container);
        rc = obj ? msgpack_pack_map(&w->pk, n) : msgpack_pack_array(&w->pk, n);
        if (rc == 0 && n > 0)
            w->st[w->d++] = (jm_frame){v, obj ? json_object_iter(v) : NULL, 0};
        break;
    }
    case JSON_STRING:
        return jm_str(w, json_string_value(v), json_string_length(v), "string");
    case JSON_INTEGER: rc = msgpack_pack_int64(&w->pk, (int64_t)json_integer_value(v)); break;
    case JSON_REAL: rc = msgpack_pack_double(&w->pk, json_real_value(v)); break;
    case JSON_TRUE: rc = msgpack_pack_true(&w->pk); break;
    case JSON_FALSE: rc = msgpack_pack_false(&w->pk); break;
    case JSON_NULL: rc = msgpack_pack_nil(&w->pk); break;
    }
    return rc == 0 ? RP_OK : jm_packfail(w);
}

/* Walk the tree under root, packing as it goes. O(nodes + string bytes). */
static rp_err jm_walk_tree(jm_walk *w, json_t *root) {
    rp_err e = jm_value(w, root);
    while (e == RP_OK && w->d > 0) {
        jm_frame *f = &w->st[w->d - 1];
        if (json_is_object(f->c)) {
            if (f->iter == NULL) {
                w->d--;
                continue;
            }
            void *it = f->iter;
            f->iter = json_object_iter_next(f->c, it);
            e = jm_str(w, json_object_iter_key(it), json_object_iter_key_len(it), "key");
            if (e == RP_OK) e = jm_value(w, json_object_iter_value(it));
        } else {
            if (f->i == json_array_size(f->c)) {
                w->d--;
                continue;
            }
            e = jm_value(w, json_array_get(f->c, f->i++));
        }
    }
    return e;
}

/* A jansson failure as an rp_err with its position. */
static rp_err jm_parse_error(const json_error_t *je, rp_errbuf *eb) {
    rp_err code;
    switch (json_error_code(je)) {
    case json_error_stack_overflow: code = RP_TOO_LARGE; break;
    case json_error_out_of_memory: code = RP_UNAVAILABLE; break;
    default: code = RP_BAD_REQUEST; break;
    }
    return rp_errf(eb, code, "invalid JSON at line %d, column %d (byte %d): %s", je->line,
                   je->column, je->position, je->text);
}

rp_err rp_json_to_msgpack(const char *text, size_t len, const rp_mpcheck_limits *lim,
                          msgpack_sbuffer *out, rp_errbuf *eb) {
    assert(lim != NULL && out != NULL);
    assert(text != NULL || len == 0);
    if (len > lim->max_bytes)
        return rp_errf(eb, RP_TOO_LARGE, "the JSON text is %zu bytes; the limit is %zu", len,
                       lim->max_bytes);
    json_error_t je;
    json_t *root = json_loadb(text == NULL ? "" : text, len,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (root == NULL) return jm_parse_error(&je, eb);

    size_t start = out->size;
    rp_err e = RP_OK;
    jm_walk walk, *w = &walk;
    w->sink = (jm_sink){out, start, lim->max_bytes, false};
    msgpack_packer_init(&w->pk, &w->sink, jm_write);
    w->lim = lim;
    w->maxd = lim->max_depth < RP_MPCHECK_DEPTH_CAP ? lim->max_depth : RP_MPCHECK_DEPTH_CAP;
    w->d = 0;
    w->eb = eb;
    w->st = w->inl;
    if (w->maxd > JM_INLINE && (w->st = malloc(w->maxd * sizeof *w->st)) == NULL) {
        e = rp_errf(eb, RP_UNAVAILABLE, "out of memory converting JSON to MessagePack");
        goto fail;
    }
    if ((e = jm_walk_tree(w, root)) != RP_OK) goto fail;

    /* The promise of json.h: the output passes rp_mpcheck with the same
     * limits. Only max_zone is not checked above; anything else is a bug. */
    char why[160];
    rp_mpcheck_result r = rp_mpcheck(out->data + start, out->size - start, lim, NULL, why,
                                     sizeof why);
    if (r != RP_MPC_OK)
        e = rp_errf(eb, r == RP_MPC_TOO_LARGE ? RP_TOO_LARGE : RP_INTERNAL,
                    "the converted request was refused: %s", why);
fail: /* success falls through with e == RP_OK */
    if (w->st != NULL && w->st != w->inl) free(w->st);
    json_decref(root);
    if (e != RP_OK) out->size = start;
    return e;
}

/* ===================== MessagePack -> JSON ===================== */

/* One open container and the index of its next element. */
typedef struct mj_frame {
    const msgpack_object *o;
    uint32_t i;
} mj_frame;

/* Frames held inside the writer; deeper objects grow a heap stack. */
#define MJ_INLINE 64

typedef struct mj_writer {
    rp_buf *b;
    bool pretty;
    uint32_t d;
    uint32_t cap;  /* frames in st */
    rp_errbuf *eb;
    mj_frame *st;  /* `inl`, or a malloc'd stack once deeper than MJ_INLINE */
    mj_frame inl[MJ_INLINE];
} mj_writer;

/* Decode one UTF-8 sequence at s (n > 0 bytes available): its length, or 0
 * when it is not valid (bad lead, bad continuation, truncated, overlong,
 * surrogate, past U+10FFFF). O(1). */
static size_t mj_utf8(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) { len = 2; v = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; v = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* Bytes a JSON string cannot carry as they are: controls, '"', '\\', and
 * every byte >= 0x80 (a UTF-8 sequence to check). 1 = look closer. */
static const unsigned char mj_special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,  /* 0x50 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x70 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x80 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x90 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0xa0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0xb0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0xc0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0xd0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0xe0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0xf0 */
};

/* Write p[0..n) as a JSON string with the escapes of json.h. Runs of bytes
 * that need no escape are copied in one append. O(n). */
static void mj_string(rp_buf *b, const char *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)p;
    size_t run = 0, i = 0;
    if (n == 0) { /* p may be NULL then: no arithmetic on it */
        rp_buf_append(b, "\"\"", 2);
        return;
    }
    rp_buf_putc(b, '"');
    while (i < n) {
        unsigned c = s[i];
        if (!mj_special[c]) {
            i++;
            continue;
        }
        char esc[8];
        size_t elen = 0, skip = 1;
        if (c < 0x80) {
            esc[0] = '\\';
            elen = 2;
            switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\t': esc[1] = 't'; break;
            case '\r': esc[1] = 'r'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
            }
        } else {
            uint32_t cp;
            size_t len = mj_utf8(s + i, n - i, &cp);
            if (len > 0 && cp != 0x2028 && cp != 0x2029) {
                i += len; /* valid UTF-8 passes through within the run */
                continue;
            }
            if (len == 0) {
                memcpy(esc, "\xef\xbf\xbd", 3); /* U+FFFD for one bad byte */
                elen = 3;
            } else {
                memcpy(esc, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
                elen = 6;
                skip = len;
            }
        }
        rp_buf_append(b, s + run, i - run);
        rp_buf_append(b, esc, elen);
        i += skip;
        run = i;
    }
    rp_buf_append(b, s + run, i - run);
    rp_buf_putc(b, '"');
}

/* Digits of v into out (>= 20 bytes); returns their count. */
static size_t mj_u64(uint64_t v, char *out) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t k = 0; k < n; k++) out[k] = tmp[n - 1 - k];
    return n;
}

/* Text of v into out (>= 21 bytes), INT64_MIN included. */
static size_t mj_i64(int64_t v, char *out) {
    if (v >= 0) return mj_u64((uint64_t)v, out);
    out[0] = '-';
    return 1 + mj_u64((uint64_t)(-(v + 1)) + 1, out + 1);
}

/* The fast path of mj_double for the numbers rapport mostly sends (scores,
 * sentiments: few decimals, moderate size): when 1e-4 <= |v| < 1e9 and v is
 * the double nearest to some r / 10^6 with r an integer, write that decimal
 * with its trailing zeros dropped. IEEE division rounds correctly, so
 * r / 1e6 == v means the text reads back to v; it has at most 15
 * significant digits, so it is exactly what %.15g prints (in this range %g
 * uses no exponent). Returns 0 when it does not apply. O(1). */
static size_t mj_decimal(double v, char *out) {
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e9)) return 0;
    double scaled = a * 1e6;
    uint64_t r = (uint64_t)(scaled + 0.5);
    if ((double)r / 1e6 != a) return 0;
    size_t n = 0;
    if (v < 0) out[n++] = '-';
    n += mj_u64(r / 1000000, out + n);
    uint32_t frac = (uint32_t)(r % 1000000);
    out[n++] = '.';
    if (frac == 0) {
        out[n++] = '0';
        return n;
    }
    for (uint32_t div = 100000; frac > 0; div /= 10) {
        out[n++] = (char)('0' + frac / div);
        frac %= div;
    }
    return n;
}

/* The shortest of %.15g..%.17g (float32: %.6g..%.9g) that reads back to v,
 * made to look like a real; "null" for NaN and infinities. out >= 40 bytes.
 * The C locale is assumed for strtod; a ',' decimal point is turned into '.'. */
static size_t mj_double(double v, bool single, char *out) {
    int n = 0;
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    size_t fast = single ? 0 : mj_decimal(v, out);
    if (fast > 0) return fast;
    if (single) {
        float f = (float)v;
        for (int prec = 6; prec <= 9; prec++) {
            n = snprintf(out, 40, "%.*g", prec, (double)f);
            if (strtof(out, NULL) == f) break;
        }
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(out, 40, "%.*g", prec, v);
            if (strtod(out, NULL) == v) break;
        }
    }
    assert(n > 0 && n < 36);
    bool real = false;
    for (int k = 0; k < n; k++) {
        if (out[k] == ',') out[k] = '.';
        if (out[k] == '.' || out[k] == 'e') real = true;
    }
    if (!real) {
        out[n++] = '.';
        out[n++] = '0';
    }
    return (size_t)n;
}

/* Write p[0..n) as a string of lowercase hex. O(n). */
static void mj_hex(rp_buf *b, const char *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    rp_buf_putc(b, '"');
    if (rp_buf_reserve(b, n * 2 < n ? SIZE_MAX : n * 2) == RP_OK) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            b->p[b->len++] = hex[c >> 4];
            b->p[b->len++] = hex[c & 15];
        }
        b->p[b->len] = '\0';
    }
    rp_buf_putc(b, '"');
}

/* Write a scalar (or, as a map key, the string form of one). Containers and
 * ext are refused here. */
static rp_err mj_scalar(mj_writer *w, const msgpack_object *o, bool key) {
    char tmp[48];
    size_t n;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: memcpy(tmp, "null", 4); n = 4; break;
    case MSGPACK_OBJECT_BOOLEAN:
        n = o->via.boolean ? 4 : 5;
        memcpy(tmp, o->via.boolean ? "true" : "false", n);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: n = mj_u64(o->via.u64, tmp); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: n = mj_i64(o->via.i64, tmp); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        n = mj_double(o->via.f64, o->type == MSGPACK_OBJECT_FLOAT32, tmp);
        break;
    case MSGPACK_OBJECT_STR: mj_string(w->b, o->via.str.ptr, o->via.str.size); return RP_OK;
    case MSGPACK_OBJECT_BIN: mj_hex(w->b, o->via.bin.ptr, o->via.bin.size); return RP_OK;
    case MSGPACK_OBJECT_EXT:
        return rp_errf(w->eb, RP_BAD_REQUEST, "an ext value (type %d) has no JSON form",
                       (int)o->via.ext.type);
    default:
        return rp_errf(w->eb, RP_BAD_REQUEST,
                       "a map key that is an array or map has no JSON form");
    }
    if (key) rp_buf_putc(w->b, '"');
    rp_buf_append(w->b, tmp, n);
    if (key) rp_buf_putc(w->b, '"');
    return RP_OK;
}

/* Newline and two spaces per open level (pretty mode). */
static void mj_indent(mj_writer *w, uint32_t level) {
    static const char spaces[] = "                                ";
    size_t n = (size_t)level * 2;
    rp_buf_putc(w->b, '\n');
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        rp_buf_append(w->b, spaces, k);
        n -= k;
    }
}

/* Write a value; a non-empty array or map is opened (pushed) for the main
 * loop to fill. */
static rp_err mj_value(mj_writer *w, const msgpack_object *o) {
    bool map = o->type == MSGPACK_OBJECT_MAP;
    if (!map && o->type != MSGPACK_OBJECT_ARRAY) return mj_scalar(w, o, false);
    uint32_t n = map ? o->via.map.size : o->via.array.size;
    if (n == 0) {
        rp_buf_append(w->b, map ? "{}" : "[]", 2);
        return RP_OK;
    }
    if (w->d >= RP_JSON_DEPTH_MAX)
        return rp_errf(w->eb, RP_TOO_LARGE, "the object nests deeper than %d levels",
                       RP_JSON_DEPTH_MAX);
    if (w->d == w->cap) { /* grow the stack: doubling, at most RP_JSON_DEPTH_MAX */
        uint32_t cap = w->cap * 2 > RP_JSON_DEPTH_MAX ? RP_JSON_DEPTH_MAX : w->cap * 2;
        mj_frame *st = malloc(cap * sizeof *st);
        if (st == NULL)
            return rp_errf(w->eb, RP_UNAVAILABLE, "out of memory converting MessagePack to JSON");
        memcpy(st, w->st, w->d * sizeof *st);
        if (w->st != w->inl) free(w->st);
        w->st = st;
        w->cap = cap;
    }
    rp_buf_putc(w->b, map ? '{' : '[');
    w->st[w->d++] = (mj_frame){o, 0};
    return RP_OK;
}

/* The main loop: one element of the innermost open container per turn. */
static rp_err mj_write(mj_writer *w, const msgpack_object *root) {
    rp_err e = mj_value(w, root);
    while (e == RP_OK && w->d > 0 && w->b->err == RP_OK) {
        mj_frame *f = &w->st[w->d - 1];
        const msgpack_object *c = f->o;
        bool map = c->type == MSGPACK_OBJECT_MAP;
        uint32_t n = map ? c->via.map.size : c->via.array.size;
        if (f->i == n) {
            w->d--;
            if (w->pretty) mj_indent(w, w->d);
            rp_buf_putc(w->b, map ? '}' : ']');
            continue;
        }
        if (f->i > 0) rp_buf_putc(w->b, ',');
        if (w->pretty) mj_indent(w, w->d);
        const msgpack_object *v;
        if (map) {
            if ((e = mj_scalar(w, &c->via.map.ptr[f->i].key, true)) != RP_OK) break;
            rp_buf_append(w->b, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
            v = &c->via.map.ptr[f->i].val;
        } else {
            v = &c->via.array.ptr[f->i];
        }
        f->i++;
        e = mj_value(w, v);
    }
    return e;
}

rp_err rp_msgpack_to_json(const msgpack_object *o, unsigned flags, rp_buf *out, rp_errbuf *eb) {
    assert(o != NULL && out != NULL);
    if (out->err != RP_OK) return rp_buf_error(out, eb);
    size_t start = out->len;
    mj_writer writer, *w = &writer;
    w->b = out;
    w->pretty = (flags & RP_JSON_PRETTY) != 0;
    w->d = 0;
    w->cap = MJ_INLINE;
    w->eb = eb;
    w->st = w->inl;
    rp_err e = mj_write(w, o);
    if (w->st != w->inl) free(w->st);
    if (e == RP_OK) e = rp_buf_error(out, eb);
    if (e != RP_OK) rp_buf_truncate(out, start);
    return e;
}

rp_err rp_msgpack_bytes_to_json(const char *buf, size_t len, const rp_mpcheck_limits *lim,
                                unsigned flags, rp_buf *out, size_t *obj_len, rp_errbuf *eb) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, MSGPACK_ZONE_CHUNK_SIZE))
        return rp_errf(eb, RP_UNAVAILABLE, "out of memory for a MessagePack zone");
    msgpack_object o;
    char why[160];
    rp_err e;
    rp_mpcheck_result r = rp_mpcheck_unpack(buf, len, lim, &z, &o, obj_len, why, sizeof why);
    if (r != RP_MPC_OK)
        e = rp_errf(eb, rp_mpcheck_err(r), "%s", why);
    else
        e = rp_msgpack_to_json(&o, flags, out, eb);
    msgpack_zone_destroy(&z);
    return e;
}
