/* seedgen.c — write the binary seed corpora of the fuzz targets.
 *
 * Usage: fuzz_seedgen SOURCE_DIR OUT_DIR   (OUT_DIR is usually
 * SOURCE_DIR/tests/fuzz). Writes, overwriting files of the same name:
 *   OUT_DIR/rpc/seed-*     MessagePack-RPC frames: the examples of
 *                          proto/METHODS.md, written as JSON below and
 *                          converted with rp_json_to_msgpack, one request
 *                          per file, plus a pipelined burst;
 *   OUT_DIR/record/seed-*  stored records: the golden vectors of
 *                          the .hex files of proto/vectors (stored forms) and records
 *                          encoded here with the codec's RP_ENC_STORED;
 *   OUT_DIR/phone/seed-*   a country byte (index into fuzz_phone.c's table)
 *                          and a number in one of the formats ident.h lists.
 * The JSON and NDJSON seeds are plain text files kept in the tree.
 *
 * Not part of the build (EXCLUDE_FROM_ALL): run it when the protocol's
 * examples change. Exits 0, or 1 after printing what failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/codec.h"
#include "net/json.h"
#include "model/mpcheck.h"

static const char *out_dir;

/* Write n bytes to OUT_DIR/sub/name. Returns 0 or -1 (printed). */
static int seed_write(const char *sub, const char *name, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "seedgen: mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "seedgen: cannot write %s\n", path);
        if (f) fclose(f);
        return -1;
    }
    return 0;
}

/* JSON text -> msgpack appended to sb. Returns 0 or -1 (printed). */
static int seed_json(const char *json, msgpack_sbuffer *sb) {
    rp_config cfg;
    rp_config_defaults(&cfg);
    rp_mpcheck_limits lim = rp_mpcheck_limits_from_config(&cfg);
    rp_errbuf eb = {0};
    if (rp_json_to_msgpack(json, strlen(json), &lim, sb, &eb) != RP_OK) {
        fprintf(stderr, "seedgen: bad JSON seed (%s): %s\n", eb.msg, json);
        return -1;
    }
    return 0;
}

/* --- rpc ----------------------------------------------------------------------- */

static const struct {
    const char *name, *json;
} rpc_seeds[] = {
    {"ping", "[0, 1, \"ping\", {}]"},
    {"auth", "[0, 2, \"auth\", {\"token\": \"s3cret-agent\"}]"},
    {"context-get", "[0, 3, \"context.get\", {\"phone\": \"+1 (415) 555-1212\"}]"},
    {"route-get", "[0, 4, \"route.get\", [{\"email\": \"Ada@Example.com\", \"at\": 1732350000}]]"},
    {"customer-put",
     "[0, 5, \"customer.put\", {\"id\": \"c-1001\", \"customer\": {\"name\": \"Ada Lovelace\", "
     "\"phones\": [\"+1 (415) 555-1212\"], \"emails\": [\"Ada@Example.com\"]}}]"},
    {"customer-put-full",
     "[0, 11, \"customer.put\", {\"id\": \"cust-0001\", \"expect_version\": 0, \"customer\": "
     "{\"id\": \"cust-0001\", \"name\": \"Mar\\u00eda Jos\\u00e9 N\\u00fa\\u00f1ez\", "
     "\"preferred_name\": \"Majo\", \"language\": \"es-MX\", \"timezone\": "
     "\"America/Mexico_City\", \"tier\": \"gold\", \"customer_since\": 1262304000, \"flags\": "
     "[\"vip\", \"hearing_impaired\"], \"preferences\": {\"channel\": \"phone\", "
     "\"contact_window\": \"09:00-12:00\"}, \"rapport_notes\": [\"follows the local football "
     "club\"], \"phones\": [\"+44 (0)20 7946 0958\", \"415.555.1212\"], \"emails\": "
     "[\"majo@example.com\"], \"accounts\": [\"ACME-778812\"]}}]"},
    {"customer-patch",
     "[0, 6, \"customer.patch\", {\"id\": \"c-1001\", \"expect_version\": 1, \"patch\": "
     "{\"tier\": \"platinum\", \"preferences\": {\"tone\": \"warm\", \"channel\": null}, "
     "\"phones\": [\"0044 20 7946 0958\"]}}]"},
    {"customer-forget", "[0, 7, \"customer.forget\", {\"id\": \"c-1001\"}]"},
    {"customer-merge", "[0, 8, \"customer.merge\", {\"from\": \"c-2002\", \"into\": \"c-1001\"}]"},
    {"event-append",
     "[0, 9, \"event.append\", {\"event\": {\"customer_id\": \"c-1001\", \"ts\": 1732342800, "
     "\"channel\": \"phone\", \"kind\": \"contact\", \"topic\": \"delivery\", \"outcome\": "
     "\"unresolved\", \"summary\": \"Parcel late, promised a callback\", \"sentiment\": -0.6, "
     "\"agent\": \"a-17\", \"issue_id\": \"INC-9\"}}]"},
    {"issue-put",
     "[0, 10, \"issue.put\", {\"issue\": {\"customer_id\": \"c-1001\", \"issue_id\": \"INC-9\", "
     "\"topic\": \"delivery\", \"status\": \"open\", \"severity\": \"high\", \"summary\": "
     "\"Parcel 4411 late\", \"follow_up_due\": 1732349400, \"contacts\": 2}}]"},
    {"issue-list", "[0, 12, \"issue.list\", {\"id\": \"c-1001\"}]"},
    {"history-list", "[0, 13, \"history.list\", {\"id\": \"c-1001\", \"limit\": 20, \"before\": \"1732350000.0\"}]"},
    {"lookup", "[0, 14, \"lookup\", {\"account\": \"ACME-778812\"}]"},
    {"import",
     "[0, 15, \"import\", {\"strict\": true, \"records\": [{\"type\": \"customer\", \"id\": "
     "\"c0000001\", \"name\": \"Grace Martinez\", \"phones\": [\"415.200.0001\"], \"emails\": "
     "[\"Grace.Martinez1@example.com\"], \"accounts\": [\"ACC-00000001\"]}, {\"type\": "
     "\"event\", \"customer_id\": \"c0000001\", \"ts\": 1734935145, \"channel\": \"phone\", "
     "\"kind\": \"contact\", \"topic\": \"orders\", \"summary\": \"Question answered\", "
     "\"outcome\": \"resolved\", \"sentiment\": 0.4, \"agent\": \"agent-eli\"}, {\"type\": "
     "\"issue\", \"customer_id\": \"c0000001\", \"issue_id\": \"I-0000001-2\", \"topic\": "
     "\"technical\", \"status\": \"resolved\", \"severity\": \"low\", \"opened_at\": "
     "1706745600, \"updated_at\": 1706749200, \"contacts\": 1}]}]"},
    {"export", "[0, 16, \"export\", {\"after\": \"c-1000\", \"limit\": 100}]"},
    {"stats", "[0, 17, \"stats\", null]"},
    {"notify-ping", "[2, \"ping\", []]"},
};

static int gen_rpc(void) {
    msgpack_sbuffer burst;
    msgpack_sbuffer_init(&burst);
    int rc = 0;
    for (size_t i = 0; i < sizeof rpc_seeds / sizeof rpc_seeds[0] && rc == 0; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        char name[64];
        snprintf(name, sizeof name, "seed-%s", rpc_seeds[i].name);
        rc = seed_json(rpc_seeds[i].json, &sb);
        if (rc == 0) rc = seed_write("rpc", name, sb.data, sb.size);
        if (rc == 0 && i < 6) rc = msgpack_sbuffer_write(&burst, sb.data, sb.size) ? -1 : 0;
        msgpack_sbuffer_destroy(&sb);
    }
    if (rc == 0) rc = seed_write("rpc", "seed-pipelined", burst.data, burst.size);
    msgpack_sbuffer_destroy(&burst);
    return rc;
}

/* --- record --------------------------------------------------------------------- */

/* Hex file -> bytes -> OUT_DIR/record/name. */
static int gen_vector(const char *src, const char *file, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/proto/vectors/%s", src, file);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "seedgen: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    unsigned char buf[8192];
    size_t n = 0;
    unsigned v;
    while (n < sizeof buf && fscanf(f, "%2x", &v) == 1) buf[n++] = (unsigned char)v;
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "seedgen: no hex in %s\n", path);
        return -1;
    }
    return seed_write("record", name, buf, n);
}

/* Encode rec (kind 0 customer, 1 event, 2 issue) in stored form into
 * OUT_DIR/record/name. */
static int gen_encoded(const char *name, int kind, const void *rec) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (kind == 0) rp_customer_encode(&pk, rec, RP_ENC_STORED);
    else if (kind == 1) rp_event_encode(&pk, rec, RP_ENC_STORED);
    else rp_issue_encode(&pk, rec, RP_ENC_STORED);
    int rc = seed_write("record", name, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int gen_record(const char *src) {
    if (gen_vector(src, "customer.hex", "seed-golden-customer") ||
        gen_vector(src, "event.stored.hex", "seed-golden-event") ||
        gen_vector(src, "issue.stored.hex", "seed-golden-issue"))
        return -1;
    static rp_customer c;
    memset(&c, 0, sizeof c);
    c.id = RP_STR_LIT("c0000002");
    c.version = 1;
    c.updated_at = 1732350000;
    if (gen_encoded("seed-customer-minimal", 0, &c)) return -1;
    c.name = RP_STR_LIT("Grace Martinez");
    c.tier = RP_STR_LIT("platinum");
    c.customer_since = 1606024972;
    c.phones[c.nphones++] = RP_STR_LIT("+14152000001");
    c.phones[c.nphones++] = RP_STR_LIT("+442079460958");
    c.emails[c.nemails++] = RP_STR_LIT("grace.martinez1@example.com");
    c.accounts[c.naccounts++] = RP_STR_LIT("ACC-00000001");
    c.flags[c.nflags++] = RP_STR_LIT("vip");
    c.prefs[c.nprefs++] = (rp_pref){RP_STR_LIT("tone"), RP_STR_LIT("friendly")};
    c.notes[c.nnotes++] = RP_STR_LIT("training for a marathon");
    c.version = 7;
    if (gen_encoded("seed-customer-identities", 0, &c)) return -1;
    rp_event e;
    memset(&e, 0, sizeof e);
    e.channel = RP_CH_SYSTEM;
    e.kind = RP_STR_LIT("payment");
    e.outcome = RP_OUT_RESOLVED;
    if (gen_encoded("seed-event-minimal", 1, &e)) return -1;
    rp_issue is;
    memset(&is, 0, sizeof is);
    is.status = RP_ST_PENDING;
    is.opened_at = 1706745600;
    is.updated_at = 1706749200;
    return gen_encoded("seed-issue-minimal", 2, &is);
}

/* --- phone ---------------------------------------------------------------------- */

/* Country indexes of fuzz_phone.c's table. */
enum { US = 0, GB = 2, DE = 4, FR = 5, IT = 7, AU = 18, JP = 20, BR = 24, RU = 28, ZZ = 34 };

static const struct {
    unsigned char country;
    const char *name, *text;
} phone_seeds[] = {
    {US, "us-parens", "+1 (415) 555-1212"},
    {US, "us-dots", "415.555.1212"},
    {US, "us-trunk", "1-415-555-1212"},
    {US, "us-idd", "011 44 20 7946 0958"},
    {US, "tel-uri", "tel:+14155551212;ext=55"},
    {GB, "gb-zero-group", "+44 (0)20 7946 0958"},
    {GB, "gb-idd", "0044 20 7946 0958"},
    {GB, "gb-national", "020 7946 0958"},
    {DE, "de-national", "030 901820"},
    {FR, "fr-national", "01 23 45 67 89"},
    {IT, "it-zero", "+39 06 6982 0000"},
    {AU, "au-idd", "0011 1 415 555 1212"},
    {JP, "jp-idd", "010-81-3-1234-5678"},
    {BR, "br-national", "(11) 91234-5678"},
    {RU, "ru-trunk", "8 (495) 123-45-67"},
    {ZZ, "unknown-country", "+1 415 555 1212"},
    {US, "email", "  Ada.Lovelace@Example.COM "},
    {US, "unicode-dash", "+1 415\xe2\x80\x93" "555\xe2\x80\x93" "1212"},
};

static int gen_phone(void) {
    for (size_t i = 0; i < sizeof phone_seeds / sizeof phone_seeds[0]; i++) {
        char buf[128], name[64];
        size_t n = strlen(phone_seeds[i].text);
        buf[0] = (char)phone_seeds[i].country;
        memcpy(buf + 1, phone_seeds[i].text, n);
        snprintf(name, sizeof name, "seed-%s", phone_seeds[i].name);
        if (seed_write("phone", name, buf, n + 1)) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOURCE_DIR OUT_DIR\n", argv[0]);
        return 1;
    }
    out_dir = argv[2];
    if (gen_rpc() || gen_record(argv[1]) || gen_phone()) return 1;
    printf("seedgen: seeds written under %s\n", out_dir);
    return 0;
}
