/* test_mpcheck.c — the bounded MessagePack validator: every format byte,
 * length lies, nesting bombs, truncation, pipelining, UTF-8, key types,
 * zone accounting, and agreement with msgpack-c on random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "model/mpcheck.h"

/* The server defaults (config.c). */
static const rp_mpcheck_limits LIM = {4194304, 16, 10000, 65536, 0, false};

/* Build a minimal complete object whose first byte is b, into out.
 * Returns its length; *ok says whether rapport accepts that format. */
static size_t sample(unsigned b, unsigned char *out, int *ok) {
    size_t n = 0;
    *ok = 1;
    out[n++] = (unsigned char)b;
    if (b <= 0x7f || b >= 0xe0) return n;                       /* fixints */
    if (b <= 0x8f) {                                             /* fixmap */
        for (unsigned i = 0; i < (b & 0x0f); i++) {
            out[n++] = 0xa1; out[n++] = (unsigned char)('a' + i); out[n++] = 0xc0;
        }
        return n;
    }
    if (b <= 0x9f) {                                             /* fixarray */
        for (unsigned i = 0; i < (b & 0x0f); i++) out[n++] = 0xc0;
        return n;
    }
    if (b <= 0xbf) {                                             /* fixstr */
        for (unsigned i = 0; i < (b & 0x1f); i++) out[n++] = 'x';
        return n;
    }
    static const unsigned char three[] = {'a', 'b', 'c'};
    switch (b) {
    case 0xc0: case 0xc2: case 0xc3: return n;
    case 0xc1: *ok = 0; return n;
    case 0xc4: case 0xd9: out[n++] = 3; memcpy(out + n, three, 3); return n + 3;
    case 0xc5: case 0xda: out[n++] = 0; out[n++] = 3; memcpy(out + n, three, 3); return n + 3;
    case 0xc6: case 0xdb:
        out[n++] = 0; out[n++] = 0; out[n++] = 0; out[n++] = 3;
        memcpy(out + n, three, 3);
        return n + 3;
    case 0xc7: out[n++] = 1; out[n++] = 5; out[n++] = 'x'; *ok = 0; return n;
    case 0xc8: out[n++] = 0; out[n++] = 1; out[n++] = 5; out[n++] = 'x'; *ok = 0; return n;
    case 0xc9:
        out[n++] = 0; out[n++] = 0; out[n++] = 0; out[n++] = 1; out[n++] = 5; out[n++] = 'x';
        *ok = 0;
        return n;
    case 0xca: memcpy(out + n, "\x3f\x80\x00\x00", 4); return n + 4;        /* 1.0f */
    case 0xcb: memcpy(out + n, "\x3f\xf0\0\0\0\0\0\0", 8); return n + 8;    /* 1.0 */
    case 0xcc: case 0xd0: out[n++] = 0x7f; return n;
    case 0xcd: case 0xd1: out[n++] = 1; out[n++] = 2; return n;
    case 0xce: case 0xd2: memcpy(out + n, "\1\2\3\4", 4); return n + 4;
    case 0xcf: case 0xd3: memcpy(out + n, "\1\2\3\4\5\6\7\10", 8); return n + 8;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
        size_t data = (size_t)1 << (b - 0xd4);
        out[n++] = 5;
        memset(out + n, 'x', data);
        *ok = 0;
        return n + data;
    }
    case 0xdc: out[n++] = 0; out[n++] = 2; out[n++] = 0xc0; out[n++] = 0xc3; return n;
    case 0xdd:
        out[n++] = 0; out[n++] = 0; out[n++] = 0; out[n++] = 2; out[n++] = 0xc0; out[n++] = 0xc2;
        return n;
    case 0xde: out[n++] = 0; out[n++] = 1; out[n++] = 0xa1; out[n++] = 'k'; out[n++] = 7; return n;
    case 0xdf:
        out[n++] = 0; out[n++] = 0; out[n++] = 0; out[n++] = 1; out[n++] = 0xa1; out[n++] = 'k';
        out[n++] = 7;
        return n;
    }
    fail_msg("no sample for 0x%02x", b);
    return 0;
}

/* msgpack-c's own answer about the first object in p[0..n): its length
 * on success, 0 when it fails or wants more. */
static size_t msgpack_len(const unsigned char *p, size_t n) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)p, n, &off);
    msgpack_unpacked_destroy(&u);
    return r == MSGPACK_UNPACK_SUCCESS ? off : 0;
}

static void test_every_format_byte(void **state) {
    (void)state;
    unsigned accepted = 0;
    for (unsigned b = 0; b < 256; b++) {
        unsigned char buf[128];
        int ok;
        size_t n = sample(b, buf, &ok);
        size_t got = 12345;
        char why[128];
        rp_mpcheck_result r = rp_mpcheck((const char *)buf, n, &LIM, &got, why, sizeof why);
        if (ok) {
            if (r != RP_MPC_OK) fail_msg("0x%02x: %s (%s)", b, rp_mpcheck_result_name(r), why);
            assert_int_equal(got, n);
            assert_int_equal(msgpack_len(buf, n), n); /* msgpack-c agrees on the length */
            accepted++;
            /* every proper prefix is INCOMPLETE, with a sane lower bound */
            for (size_t k = 0; k < n; k++) {
                r = rp_mpcheck((const char *)buf, k, &LIM, &got, NULL, 0);
                if (r != RP_MPC_INCOMPLETE) fail_msg("0x%02x prefix %zu: %s", b, k,
                                                     rp_mpcheck_result_name(r));
                assert_true(got > k && got <= n);
            }
        } else {
            if (r != RP_MPC_INVALID) fail_msg("0x%02x: %s, want INVALID", b,
                                              rp_mpcheck_result_name(r));
            assert_true(strlen(why) > 0);
        }
    }
    assert_int_equal(accepted, 256 - 9); /* 0xc1, three ext, five fixext */
}

static void test_rejected_bytes_say_why(void **state) {
    (void)state;
    char why[160];
    assert_int_equal(rp_mpcheck("\xc1", 1, &LIM, NULL, why, sizeof why), RP_MPC_INVALID);
    assert_non_null(strstr(why, "0xc1"));
    /* inside an array, after a valid element */
    assert_int_equal(rp_mpcheck("\x92\x01\xc1", 3, &LIM, NULL, why, sizeof why), RP_MPC_INVALID);
    assert_non_null(strstr(why, "byte 2"));
    /* the timestamp ext (-1) is refused like any ext */
    assert_int_equal(rp_mpcheck("\xd6\xff\0\0\0\1", 6, &LIM, NULL, why, sizeof why),
                     RP_MPC_INVALID);
    assert_non_null(strstr(why, "ext"));
    /* an ext header is refused even before its data arrives */
    assert_int_equal(rp_mpcheck("\xc9", 1, &LIM, NULL, NULL, 0), RP_MPC_INVALID);
    /* tiny why buffers are truncated, never overrun */
    char w2[4] = "zzz";
    assert_int_equal(rp_mpcheck("\xc1", 1, &LIM, NULL, w2, sizeof w2), RP_MPC_INVALID);
    assert_int_equal(strlen(w2), 3);
}

static void test_array32_length_lie(void **state) {
    (void)state;
    const char *hdr = "\xdd\xff\xff\xff\xff";
    char why[160];
    /* the count passes max_container */
    assert_int_equal(rp_mpcheck(hdr, 5, &LIM, NULL, why, sizeof why), RP_MPC_TOO_LARGE);
    assert_non_null(strstr(why, "4294967295"));
    /* no container limit: the count still cannot fit max_bytes */
    rp_mpcheck_limits l = LIM;
    l.max_container = UINT32_MAX;
    assert_int_equal(rp_mpcheck(hdr, 5, &l, NULL, why, sizeof why), RP_MPC_TOO_LARGE);
    assert_non_null(strstr(why, "size limit"));
    /* unbounded bytes, but a zone limit: the 64 GB zone request is refused */
    l.max_bytes = SIZE_MAX;
    l.max_zone = (size_t)1 << 20;
    assert_int_equal(rp_mpcheck(hdr, 5, &l, NULL, why, sizeof why), RP_MPC_TOO_LARGE);
    assert_non_null(strstr(why, "memory"));
    /* with nothing to stop it, it is merely incomplete, and says how much it needs */
    l.max_zone = 0;
    size_t need = 0;
    assert_int_equal(rp_mpcheck(hdr, 5, &l, &need, NULL, 0), RP_MPC_INCOMPLETE);
    assert_int_equal(need, 5 + (size_t)UINT32_MAX);
    /* map32 counts pairs: 2 bytes each at least */
    l = LIM;
    l.max_container = UINT32_MAX;
    l.max_bytes = 1000;
    char m[5] = {(char)0xdf, 0, 0, 0x01, (char)0xf4}; /* 500 pairs: 5 + 1000 > 1000 */
    assert_int_equal(rp_mpcheck(m, 5, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    m[4] = (char)0xf0; /* 496 pairs: 5 + 992 fits */
    assert_int_equal(rp_mpcheck(m, 5, &l, &need, NULL, 0), RP_MPC_INCOMPLETE);
    assert_int_equal(need, 5 + 992);
}

static void test_str32_length_lie(void **state) {
    (void)state;
    const char *hdr = "\xdb\xff\xff\xff\xff";
    char why[160];
    assert_int_equal(rp_mpcheck(hdr, 5, &LIM, NULL, why, sizeof why), RP_MPC_TOO_LARGE);
    assert_non_null(strstr(why, "65536"));
    rp_mpcheck_limits l = LIM;
    l.max_string = UINT32_MAX;
    assert_int_equal(rp_mpcheck(hdr, 5, &l, NULL, why, sizeof why), RP_MPC_TOO_LARGE);
    /* bin32 likewise */
    assert_int_equal(rp_mpcheck("\xc6\xff\xff\xff\xff", 5, &LIM, NULL, NULL, 0),
                     RP_MPC_TOO_LARGE);
    /* a string that fits max_string but not what the pending elements leave */
    l = LIM;
    l.max_bytes = 100;
    /* [str(95), nil, nil]: 1 + 2 + 95 + 2 = 100 fits; [str(96), nil, nil] does not */
    unsigned char b[3] = {0x93, 0xd9, 95};
    assert_int_equal(rp_mpcheck((const char *)b, 3, &l, NULL, NULL, 0), RP_MPC_INCOMPLETE);
    b[2] = 96;
    assert_int_equal(rp_mpcheck((const char *)b, 3, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
}

static unsigned char *bomb(size_t n) {
    unsigned char *p = malloc(n);
    assert_non_null(p);
    memset(p, 0x91, n);
    return p;
}

struct bomb_job {
    const rp_mpcheck_limits *lim;
    rp_mpcheck_result r;
};

static void *bomb_thread(void *arg) {
    struct bomb_job *j = arg;
    unsigned char *p = bomb(100000);
    j->r = rp_mpcheck((const char *)p, 100000, j->lim, NULL, NULL, 0);
    free(p);
    return NULL;
}

static void test_nesting_bomb(void **state) {
    (void)state;
    unsigned char *p = bomb(100000);
    char why[160];
    assert_int_equal(rp_mpcheck((const char *)p, 100000, &LIM, NULL, why, sizeof why),
                     RP_MPC_TOO_LARGE);
    assert_non_null(strstr(why, "deeper"));
    assert_non_null(strstr(why, "byte 16")); /* the 17th level */
    free(p);
    /* at the cap, in a thread with a small stack: a recursive walk would
     * need far more than 64 KB for 100,000 levels; the explicit stack is
     * 16 KB whatever the input. */
    rp_mpcheck_limits l = LIM;
    l.max_depth = UINT32_MAX; /* clamped to RP_MPCHECK_DEPTH_CAP */
    struct bomb_job j = {&l, RP_MPC_OK};
    pthread_attr_t a;
    pthread_attr_init(&a);
    assert_int_equal(pthread_attr_setstacksize(&a, 64 * 1024), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, &a, bomb_thread, &j), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);
    assert_int_equal(j.r, RP_MPC_TOO_LARGE);
}

static void test_depth_boundary(void **state) {
    (void)state;
    unsigned char p[40];
    rp_mpcheck_info info;
    for (uint32_t depth = 0; depth <= 20; depth++) {
        memset(p, 0x91, depth);
        p[depth] = 0xc0;
        rp_mpcheck_result r = rp_mpcheck_ex((const char *)p, depth + 1, &LIM, &info, NULL, 0);
        assert_int_equal(r, depth <= 16 ? RP_MPC_OK : RP_MPC_TOO_LARGE);
        if (r == RP_MPC_OK) assert_int_equal(info.depth, depth);
    }
    /* an empty container is a level too */
    memset(p, 0x91, 16);
    p[16] = 0x90;
    assert_int_equal(rp_mpcheck((const char *)p, 17, &LIM, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    rp_mpcheck_limits l = LIM;
    l.max_depth = 0;
    assert_int_equal(rp_mpcheck("\x05", 1, &l, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck("\x90", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
}

/* A realistic request: [0, 7, "context.get", {"phone": "+14155551212", "at": 1700000000}] */
static size_t request(msgpack_sbuffer *sb) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_str_with_body(&pk, "context.get", 11);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "phone", 5);
    msgpack_pack_str_with_body(&pk, "+14155551212", 12);
    msgpack_pack_str_with_body(&pk, "at", 2);
    msgpack_pack_int64(&pk, 1700000000);
    return sb->size;
}

static void test_truncated_frames(void **state) {
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t n = request(&sb);
    size_t got;
    for (size_t k = 0; k < n; k++) {
        char why[160];
        assert_int_equal(rp_mpcheck(sb.data, k, &LIM, &got, why, sizeof why), RP_MPC_INCOMPLETE);
        assert_true(got > k && got <= n);
        assert_non_null(strstr(why, "have arrived"));
    }
    assert_int_equal(rp_mpcheck(sb.data, n, &LIM, &got, NULL, 0), RP_MPC_OK);
    assert_int_equal(got, n);
    /* a NULL buffer of length 0 is simply incomplete */
    assert_int_equal(rp_mpcheck(NULL, 0, &LIM, &got, NULL, 0), RP_MPC_INCOMPLETE);
    assert_int_equal(got, 1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_pipelined(void **state) {
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t n1 = request(&sb);
    size_t n2 = request(&sb) - n1;
    msgpack_sbuffer_write(&sb, "\xc1", 1); /* garbage after: not our business yet */
    size_t got = 0;
    assert_int_equal(rp_mpcheck(sb.data, sb.size, &LIM, &got, NULL, 0), RP_MPC_OK);
    assert_int_equal(got, n1);
    assert_int_equal(rp_mpcheck(sb.data + n1, sb.size - n1, &LIM, &got, NULL, 0), RP_MPC_OK);
    assert_int_equal(got, n2);
    assert_int_equal(rp_mpcheck(sb.data + n1 + n2, 1, &LIM, &got, NULL, 0), RP_MPC_INVALID);
    /* a buffer longer than max_bytes is fine when its first object fits */
    rp_mpcheck_limits l = LIM;
    l.max_bytes = n1;
    assert_int_equal(rp_mpcheck(sb.data, sb.size, &l, &got, NULL, 0), RP_MPC_OK);
    l.max_bytes = n1 - 1;
    assert_int_equal(rp_mpcheck(sb.data, sb.size, &l, &got, NULL, 0), RP_MPC_TOO_LARGE);
    msgpack_sbuffer_destroy(&sb);
}

static void test_utf8(void **state) {
    (void)state;
    static const struct { const char *s; size_t n; rp_mpcheck_result want; } cases[] = {
        {"\xa2h\xc3\xa9", 4, RP_MPC_INVALID},           /* length 2 cuts "hé" inside é */
        {"\xa6h\xc3\xa9llo", 7, RP_MPC_OK},             /* "héllo" */
        {"\xa4\xf0\x9f\x98\x80", 5, RP_MPC_OK},         /* U+1F600 */
        {"\xa2\xc0\x80", 3, RP_MPC_INVALID},            /* overlong NUL */
        {"\xa3\xed\xa0\x80", 4, RP_MPC_INVALID},        /* surrogate U+D800 */
        {"\xa1\x80", 2, RP_MPC_INVALID},                /* lone continuation */
        {"\xa2" "a\xc3", 3, RP_MPC_INVALID},            /* sequence cut by the length */
        {"\xa4\xf4\x90\x80\x80", 5, RP_MPC_INVALID},    /* past U+10FFFF */
        {"\xa1\xff", 2, RP_MPC_INVALID},
        {"\xa1\0", 2, RP_MPC_OK},                       /* NUL is valid UTF-8 */
        {"\xc4\x02\xff\xfe", 4, RP_MPC_OK},             /* bin is not UTF-8 checked */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[160] = "";
        rp_mpcheck_result r = rp_mpcheck(cases[i].s, cases[i].n, &LIM, NULL, why, sizeof why);
        if (r != cases[i].want) fail_msg("case %zu: %s (%s)", i, rp_mpcheck_result_name(r), why);
        if (r == RP_MPC_INVALID) assert_non_null(strstr(why, "UTF-8"));
    }
}

static void test_map_keys(void **state) {
    (void)state;
    char why[160];
    assert_int_equal(rp_mpcheck("\x81\x01\x02", 3, &LIM, NULL, why, sizeof why), RP_MPC_INVALID);
    assert_non_null(strstr(why, "not a string"));
    assert_int_equal(rp_mpcheck("\x81\xc0\x02", 3, &LIM, NULL, NULL, 0), RP_MPC_INVALID);
    assert_int_equal(rp_mpcheck("\x81\x90\x02", 3, &LIM, NULL, NULL, 0), RP_MPC_INVALID);
    assert_int_equal(rp_mpcheck("\x81\xc4\x01k\x02", 5, &LIM, NULL, NULL, 0), RP_MPC_INVALID);
    /* second pair's key; values may be anything, including maps */
    assert_int_equal(rp_mpcheck("\x82\xa1k\x81\xa1j\x90\x05\x06", 9, &LIM, NULL, why, sizeof why),
                     RP_MPC_INVALID);
    assert_non_null(strstr(why, "byte 7"));
    assert_int_equal(rp_mpcheck("\x82\xa1k\x81\xa1j\x90\xa0\x06", 9, &LIM, NULL, NULL, 0),
                     RP_MPC_OK);
    /* str8/16/32 keys are strings too */
    assert_int_equal(rp_mpcheck("\x81\xd9\x01k\x01", 5, &LIM, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck("\x81\xda\x00\x01k\x01", 6, &LIM, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck("\x81\xdb\0\0\0\x01k\x01", 8, &LIM, NULL, NULL, 0), RP_MPC_OK);
}

static void test_limits_boundaries(void **state) {
    (void)state;
    rp_mpcheck_limits l = LIM;
    l.max_string = 3;
    assert_int_equal(rp_mpcheck("\xa3" "abc", 4, &l, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck("\xa4" "abcd", 5, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    assert_int_equal(rp_mpcheck("\xa4", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE); /* early */
    assert_int_equal(rp_mpcheck("\xc4\x04", 2, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    /* map keys count against max_string as well */
    assert_int_equal(rp_mpcheck("\x81\xa4" "abcd\x01", 7, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    l = LIM;
    l.max_container = 2;
    assert_int_equal(rp_mpcheck("\x92\x01\x02", 3, &l, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck("\x93", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    assert_int_equal(rp_mpcheck("\x82\xa1" "a\x01\xa1" "b\x02", 7, &l, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck("\x83", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    assert_int_equal(rp_mpcheck("\xdc\x00\x03", 3, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    /* max_bytes: exactly at the limit, one over (caught before the data) */
    l = LIM;
    l.max_bytes = 4;
    assert_int_equal(rp_mpcheck("\xa3" "abc", 4, &l, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck("\xa4", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    assert_int_equal(rp_mpcheck("\xcb", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    assert_int_equal(rp_mpcheck("\x94", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    assert_int_equal(rp_mpcheck("\x93", 1, &l, NULL, NULL, 0), RP_MPC_INCOMPLETE);
    l.max_bytes = 0;
    assert_int_equal(rp_mpcheck("\xc0", 1, &l, NULL, NULL, 0), RP_MPC_TOO_LARGE);
    /* an earlier INVALID wins over a later size problem */
    l = LIM;
    l.max_bytes = 3;
    assert_int_equal(rp_mpcheck("\x92\xc1", 2, &l, NULL, NULL, 0), RP_MPC_INVALID);
}

static void test_zone_accounting(void **state) {
    (void)state;
    /* [[nil, nil], {"a": 1}, "long string"] */
    const char *m = "\x93\x92\xc0\xc0\x81\xa1" "a\x01\xab" "long string";
    size_t n = 8 + 12;
    rp_mpcheck_info info;
    assert_int_equal(rp_mpcheck_ex(m, n, &LIM, &info, NULL, 0), RP_MPC_OK);
    assert_int_equal(info.obj_len, n);
    assert_int_equal(info.depth, 2);
    size_t pad = RP_MPCHECK_ZONE_PAD;
    size_t want = 3 * sizeof(msgpack_object) + pad + 2 * sizeof(msgpack_object) + pad +
                  sizeof(msgpack_object_kv) + pad; /* strings are referenced, not copied */
    assert_int_equal(info.zone_bytes, want);
    rp_mpcheck_limits l = LIM;
    l.max_zone = want;
    assert_int_equal(rp_mpcheck(m, n, &l, NULL, NULL, 0), RP_MPC_OK);
    l.max_zone = want - 1;
    char why[160];
    assert_int_equal(rp_mpcheck(m, n, &l, NULL, why, sizeof why), RP_MPC_TOO_LARGE);
    assert_non_null(strstr(why, "memory"));
    /* the bound holds for what msgpack-c really takes: unpack into a zone
     * with one chunk of exactly that size plus alignment slack. */
    msgpack_zone z;
    assert_true(msgpack_zone_init(&z, want + 16));
    size_t free0 = z.chunk_list.free;
    char *ptr0 = z.chunk_list.ptr;
    msgpack_object o;
    assert_int_equal(rp_mpcheck_unpack(m, n, &LIM, &z, &o, NULL, NULL, 0), RP_MPC_OK);
    /* still in the first chunk, and it took no more than the bound */
    assert_true(z.chunk_list.ptr >= ptr0 && z.chunk_list.ptr <= ptr0 + free0);
    assert_int_equal((size_t)(z.chunk_list.ptr - ptr0), free0 - z.chunk_list.free);
    assert_true(free0 - z.chunk_list.free <= want);
    assert_true(free0 - z.chunk_list.free >= want - 3 * pad);
    msgpack_zone_destroy(&z);
}

static void test_unpack(void **state) {
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t n = request(&sb);
    msgpack_sbuffer_write(&sb, "\x01", 1); /* a pipelined next message */
    msgpack_zone z;
    assert_true(msgpack_zone_init(&z, 1024));
    msgpack_object o;
    size_t used = 0;
    assert_int_equal(rp_mpcheck_unpack(sb.data, sb.size, &LIM, &z, &o, &used, NULL, 0), RP_MPC_OK);
    assert_int_equal(used, n);
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o.via.array.size, 4);
    assert_int_equal(o.via.array.ptr[1].via.u64, 7);
    assert_memory_equal(o.via.array.ptr[2].via.str.ptr, "context.get", 11);
    /* str values point into the caller's buffer */
    assert_true(o.via.array.ptr[2].via.str.ptr > sb.data &&
                o.via.array.ptr[2].via.str.ptr < sb.data + n);
    const msgpack_object *p = &o.via.array.ptr[3];
    assert_int_equal(p->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(p->via.map.ptr[1].val.via.u64, 1700000000);

    /* failures come back without touching msgpack-c */
    char why[160];
    assert_int_equal(rp_mpcheck_unpack("\xdd\xff\xff\xff\xff", 5, &LIM, &z, &o, NULL, why,
                                       sizeof why), RP_MPC_TOO_LARGE);
    assert_int_equal(rp_mpcheck_unpack(sb.data, n - 1, &LIM, &z, &o, &used, NULL, 0),
                     RP_MPC_INCOMPLETE);
    assert_int_equal(rp_mpcheck_unpack("\x81\x01\x01", 3, &LIM, &z, &o, NULL, NULL, 0),
                     RP_MPC_INVALID);

    /* msgpack-c's stack holds 32 levels: the unpack clamps to that */
    rp_mpcheck_limits l = LIM;
    l.max_depth = 100;
    unsigned char deep[40];
    memset(deep, 0x91, 32);
    deep[32] = 0x2a;
    assert_int_equal(rp_mpcheck_unpack((const char *)deep, 33, &l, &z, &o, NULL, NULL, 0),
                     RP_MPC_OK);
    const msgpack_object *q = &o;
    for (int i = 0; i < 32; i++) q = &q->via.array.ptr[0];
    assert_int_equal(q->via.u64, 42);
    memset(deep, 0x91, 33);
    deep[33] = 0x2a;
    assert_int_equal(rp_mpcheck((const char *)deep, 34, &l, NULL, NULL, 0), RP_MPC_OK);
    assert_int_equal(rp_mpcheck_unpack((const char *)deep, 34, &l, &z, &o, NULL, why, sizeof why),
                     RP_MPC_TOO_LARGE);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

static void test_err_mapping(void **state) {
    (void)state;
    assert_int_equal(rp_mpcheck_err(RP_MPC_OK), RP_OK);
    assert_int_equal(rp_mpcheck_err(RP_MPC_INCOMPLETE), RP_BAD_REQUEST);
    assert_int_equal(rp_mpcheck_err(RP_MPC_INVALID), RP_BAD_REQUEST);
    assert_int_equal(rp_mpcheck_err(RP_MPC_TOO_LARGE), RP_TOO_LARGE);
    assert_int_equal(rp_mpcheck_err(RP_MPC_NOMEM), RP_UNAVAILABLE);
    assert_string_equal(rp_mpcheck_result_name(RP_MPC_TOO_LARGE), "TOO_LARGE");
    assert_string_equal(rp_mpcheck_result_name((rp_mpcheck_result)99), "UNKNOWN");
    rp_config c;
    rp_config_defaults(&c);
    rp_mpcheck_limits l = rp_mpcheck_limits_from_config(&c);
    assert_int_equal(l.max_bytes, c.max_request_bytes);
    assert_int_equal(l.max_depth, c.max_depth);
    assert_int_equal(l.max_container, c.max_container);
    assert_int_equal(l.max_string, c.max_string);
}

/* xorshift64*: a fixed-seed generator so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Random and mutated input: whenever rp_mpcheck says OK, msgpack-c parses
 * the same number of bytes; whenever msgpack-c fails outright, rp_mpcheck
 * does not say OK; INCOMPLETE never claims fewer bytes than it was given. */
static void test_random_agreement(void **state) {
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t n = request(&sb);
    rp_mpcheck_limits l = LIM;
    l.max_bytes = 4096;
    l.max_container = 64;
    unsigned oks = 0;
    for (int iter = 0; iter < 200000; iter++) {
        unsigned char buf[64];
        size_t len;
        if (iter % 2 == 0) { /* mutate a valid request */
            len = n;
            memcpy(buf, sb.data, n);
            int flips = 1 + (int)(rng() % 3);
            for (int f = 0; f < flips; f++) buf[rng() % n] = (unsigned char)rng();
            if (rng() % 4 == 0) len = rng() % (n + 1);
        } else { /* random short bytes, biased to containers and small strings */
            len = rng() % 24;
            for (size_t i = 0; i < len; i++) {
                uint64_t x = rng();
                buf[i] = (x & 3) == 0 ? (unsigned char)(0x80 + (x >> 8) % 0x40) : (unsigned char)(x >> 16);
            }
        }
        size_t got = 0;
        rp_mpcheck_result r = rp_mpcheck((const char *)buf, len, &l, &got, NULL, 0);
        if (r == RP_MPC_OK) {
            oks++;
            assert_true(got >= 1 && got <= len);
            assert_int_equal(msgpack_len(buf, len), got);
        } else if (r == RP_MPC_INCOMPLETE) {
            assert_true(got > len);
        }
    }
    assert_true(oks > 1000); /* the generator does reach valid objects */
    msgpack_sbuffer_destroy(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format_byte),
        cmocka_unit_test(test_rejected_bytes_say_why),
        cmocka_unit_test(test_array32_length_lie),
        cmocka_unit_test(test_str32_length_lie),
        cmocka_unit_test(test_nesting_bomb),
        cmocka_unit_test(test_depth_boundary),
        cmocka_unit_test(test_truncated_frames),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_map_keys),
        cmocka_unit_test(test_limits_boundaries),
        cmocka_unit_test(test_zone_accounting),
        cmocka_unit_test(test_unpack),
        cmocka_unit_test(test_err_mapping),
        cmocka_unit_test(test_random_agreement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
