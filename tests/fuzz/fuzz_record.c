/* fuzz_record.c — stored records read back from a corrupted disk.
 *
 * The store trusts the values it wrote, but a value read back may be
 * corrupted (a bad disk, a bad copy, a bug in an older version): the
 * decoders in RP_DEC_STORED mode must then answer RP_INTERNAL, never crash
 * and never hand later code a record that breaks its limits (counts past
 * the fixed arrays, slices longer than RP_*_MAX).
 *
 * Input: the bytes of one stored value. Three passes:
 *   1. rp_mpcheck_unpack (bounded by the input's own length) and each of
 *      rp_customer_decode / rp_event_decode / rp_issue_decode in STORED
 *      mode, with fuzz.h's round trip (decode, encode stored, decode again,
 *      same bytes);
 *   2. the same object with every bin turned into a str: the validator
 *      refuses str that is not UTF-8, but a corrupted disk does not, and
 *      STORED mode does not re-check UTF-8 (codec.c), so the decoders must
 *      take any bytes in a string; and its JSON (rp_msgpack_to_json, as
 *      `rapport --json` would print it) must still be valid UTF-8;
 *   3. through a real store: once per process an LMDB store is opened in a
 *      temporary directory (its files unlinked at once, LMDB keeps them
 *      open) with one valid customer "ok"; each input is written raw, with
 *      LMDB's own API, as the value of customer "fz", of an event of "ok"
 *      and of issue "ok"/"i1", then read back with rp_store_get_customer,
 *      rp_store_history and rp_store_get_issue, which must answer RP_OK or
 *      RP_INTERNAL.
 *
 * Pass 3 writes every input, unchecked, straight into LMDB: the store must
 * validate a stored value before msgpack-c sees it (a corrupted container
 * header would make msgpack-c allocate from it, up to 128 GiB, and nesting
 * past its 32-level stack reads as out of memory). The crashers that showed
 * it are kept as tests/fuzz/record/regress-store-*.
 */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "net/buf.h"
#include "net/json.h"
#include "store/keys.h"
#include "store/store.h"

/* Limits for a stored value of n bytes: only its own length bounds it. */
static rp_mpcheck_limits fz_stored_limits(size_t n) {
    rp_mpcheck_limits lim = {
        .max_bytes = n ? n : 1,
        .max_depth = RP_MPCHECK_UNPACK_DEPTH_MAX,
        .max_container = UINT32_MAX,
        .max_string = UINT32_MAX,
        .max_zone = 0,
    };
    return lim;
}

/* Turn every bin in o into a str over the same bytes. Returns how many it
 * turned. Depth is bounded by msgpack-c's unpacker (32 levels). */
static unsigned fz_bin_to_str(msgpack_object *o) {
    unsigned n = 0;
    switch (o->type) {
    case MSGPACK_OBJECT_BIN: {
        uint32_t size = o->via.bin.size;
        const char *ptr = o->via.bin.ptr;
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.size = size;
        o->via.str.ptr = ptr;
        return 1;
    }
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++) n += fz_bin_to_str(&o->via.array.ptr[i]);
        return n;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            n += fz_bin_to_str(&o->via.map.ptr[i].key);
            n += fz_bin_to_str(&o->via.map.ptr[i].val);
        }
        return n;
    default: return 0;
    }
}

/* json.h: strings that are not UTF-8 (only in an object that skipped the
 * validator, like this one) are written with U+FFFD, so the JSON of a
 * corrupted stored record (what `rapport --json` prints) is still UTF-8. */
static void fz_json_any_bytes(const msgpack_object *o) {
    rp_buf b;
    rp_buf_init(&b, 0);
    rp_errbuf eb = {0};
    rp_err rc = rp_msgpack_to_json(o, 0, &b, &eb);
    FZ_CHECK(rc == RP_OK, "an object with any bytes in its strings has no JSON form");
    FZ_CHECK(b.len > 0 && rp_utf8_valid(b.p, b.len) && strlen(b.p) == b.len,
             "JSON of strings that are not UTF-8 is not UTF-8");
    rp_buf_free(&b);
}

/* --- the store of pass 3 ---------------------------------------------------------- */

typedef struct fz_store {
    rp_store *s;
    char dir[64];
    MDB_dbi customers, events, issues;
    bool failed;  /* setup failed: pass 3 is skipped (said once) */
} fz_store;

static fz_store fzs;

/* Remove the store's files and directory. LMDB keeps its descriptors, so
 * this is done right after the open: a run that crashes (which is what a
 * fuzzer is for) leaves nothing behind in /tmp. */
static void fz_store_unlink(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/data.mdb", fzs.dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", fzs.dir);
    unlink(p);
    rmdir(fzs.dir);
}

/* Close the store (atexit). */
static void fz_store_cleanup(void) {
    if (fzs.s == NULL) return;
    rp_store_close(fzs.s);
    fzs.s = NULL;
}

/* Open the store with one valid customer "ok". Returns false (after
 * printing why) when it cannot. */
static bool fz_store_setup(void) {
    rp_config cfg;
    rp_errbuf eb = {0};
    rp_config_defaults(&cfg);
    snprintf(fzs.dir, sizeof fzs.dir, "%s", "/tmp/rapport-fuzz-record-XXXXXX");
    if (mkdtemp(fzs.dir) == NULL) {
        perror("fuzz_record: mkdtemp");
        return false;
    }
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", fzs.dir);
    if (rp_config_set(&cfg, "durability", "async", &eb) != RP_OK ||
        rp_config_set(&cfg, "map_initial", "8388608", &eb) != RP_OK ||
        rp_store_open(&cfg, &fzs.s, &eb) != RP_OK) {
        fprintf(stderr, "fuzz_record: cannot open a store in %s: %s\n", fzs.dir, eb.msg);
        fz_store_unlink();
        return false;
    }
    fz_store_unlink();
    atexit(fz_store_cleanup);
    rp_customer c;
    memset(&c, 0, sizeof c);
    c.id = RP_STR_LIT("ok");
    rp_put_opts opts = {0};
    if (rp_store_put_customer(fzs.s, &c, &opts, NULL, &eb) != RP_OK) {
        fprintf(stderr, "fuzz_record: cannot put customer ok: %s\n", eb.msg);
        return false;
    }
    MDB_txn *txn;
    if (mdb_txn_begin(rp_store_env(fzs.s), NULL, 0, &txn) != 0) return false;
    int rc = mdb_dbi_open(txn, "customers", 0, &fzs.customers);
    if (rc == 0) rc = mdb_dbi_open(txn, "events", 0, &fzs.events);
    if (rc == 0) rc = mdb_dbi_open(txn, "issues", 0, &fzs.issues);
    if (rc == 0) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc != 0) {
        fprintf(stderr, "fuzz_record: cannot open the databases: %s\n", mdb_strerror(rc));
        return false;
    }
    return true;
}

/* Write value as customer "fz", event ("ok", 1000, 0) and issue ("ok",
 * "i1"), with LMDB directly (the writer would encode a record itself).
 * The writer thread is idle: the only writes are these. */
static bool fz_store_put(const uint8_t *data, size_t size) {
    char ek[RP_KEYS_EVENT_MAX], ik[RP_KEYS_ISSUE_MAX];
    size_t ekn = rp_keys_event(ek, RP_STR_LIT("ok"), 1000, 0);
    size_t ikn = rp_keys_issue(ik, RP_STR_LIT("ok"), RP_STR_LIT("i1"));
    MDB_val kc = {2, (void *)"fz"}, ke = {ekn, ek}, ki = {ikn, ik};
    MDB_val v = {size, (void *)data};
    MDB_txn *txn;
    int rc = mdb_txn_begin(rp_store_env(fzs.s), NULL, 0, &txn);
    if (rc != 0) return false;
    if ((rc = mdb_put(txn, fzs.customers, &kc, &v, 0)) != 0 ||
        (rc = mdb_put(txn, fzs.events, &ke, &v, 0)) != 0 ||
        (rc = mdb_put(txn, fzs.issues, &ki, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        return false;
    }
    return mdb_txn_commit(txn) == 0;
}

/* A store reader's code: OK, or INTERNAL for a corrupt record. NOT_FOUND
 * is fine too when LMDB refused to keep an empty value. */
static void fz_store_code(rp_err rc, const rp_errbuf *eb, const char *what) {
    if (rc != RP_OK && rc != RP_INTERNAL) fprintf(stderr, "%s: %s: %s\n", what, rp_err_code(rc), eb->msg);
    FZ_CHECK(rc == RP_OK || rc == RP_INTERNAL, "a store reader answered neither OK nor INTERNAL");
}

/* Pass 3: write the value and read it back through the store. */
static void fz_store_pass(const uint8_t *data, size_t size) {
    if (fzs.failed) return;
    if (fzs.s == NULL && !fz_store_setup()) {
        fzs.failed = true;
        fprintf(stderr, "fuzz_record: the store pass is skipped\n");
        return;
    }
    if (size == 0 || !fz_store_put(data, size)) return;
    MDB_txn *txn;
    rp_errbuf eb = {0};
    FZ_CHECK(rp_store_rbegin(fzs.s, &txn, &eb) == RP_OK, "cannot begin a read transaction");
    static rp_customer c;
    static rp_event ev[4];
    rp_issue is;
    fz_store_code(rp_store_get_customer(fzs.s, txn, RP_STR_LIT("fz"), &c, &eb), &eb, "get_customer");
    uint32_t n = 0;
    bool more = false;
    rp_cursor next;
    rp_err rc = rp_store_history(fzs.s, txn, RP_STR_LIT("ok"), 0, NULL, 4, ev, &n, &more, &next, &eb);
    fz_store_code(rc, &eb, "history");
    if (rc == RP_OK) FZ_CHECK(n == 1 && ev[0].ts == 1000 && ev[0].seq == 0, "history returns the event");
    fz_store_code(rp_store_get_issue(fzs.s, txn, RP_STR_LIT("ok"), RP_STR_LIT("i1"), &is, &eb), &eb,
                  "get_issue");
    rp_store_rend(fzs.s, txn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    rp_mpcheck_limits lim = fz_stored_limits(size);
    msgpack_zone z;
    FZ_CHECK(msgpack_zone_init(&z, 2048), "out of memory");
    msgpack_object o;
    size_t len = 0;
    rp_mpcheck_result r = rp_mpcheck_unpack(buf, size, &lim, &z, &o, &len, NULL, 0);
    if (r == RP_MPC_OK) {
        FZ_CHECK(len > 0 && len <= size, "object length");
        fz_roundtrip_all(&o, RP_DEC_STORED);
        if (fz_bin_to_str(&o) > 0) {
            fz_roundtrip_all(&o, RP_DEC_STORED);
            fz_json_any_bytes(&o);
        }
    }
    msgpack_zone_destroy(&z);
    fz_store_pass(data, size); /* every input, unchecked (see the top) */
    return 0;
}
