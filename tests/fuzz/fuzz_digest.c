/* fuzz_digest.c — the card digest's parser (store/digest.h:
 * rp_digest_parse) on arbitrary bytes, as a corrupt or foreign stored
 * value would present them.
 *
 * Input: the whole input is the stored value.
 *
 * Checked: a refusal is RP_INTERNAL with a printable sentence that starts
 * "corrupt digest"; an accepted value
 *   - has n <= cap <= RP_DIGEST_MAX_EVENTS and its pointers inside the input;
 *   - decodes (rp_digest_event) every entry with strings inside the input,
 *     within their field limits, enums in range, sentiment in -1..1 when
 *     present (0 when absent), entries strictly newest first;
 *   - is refused when one byte shorter or longer (the size is exact);
 *   - answers rp_digest_covers without crashing, and never covers a card
 *     as of a time before its newest entry.
 * Seeds: tests/fuzz/digest/seed-valid-* (tests/fuzz/digestgen.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "store/digest.h"

static void in_input(rp_str s, const uint8_t *data, size_t size, const char *what) {
    if (s.n == 0) return;
    FZ_CHECK(s.p != NULL && (const uint8_t *)s.p >= data && (const uint8_t *)s.p + s.n <= data + size, what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rp_digest d;
    rp_errbuf eb = {0};
    rp_err rc = rp_digest_parse(data, size, &d, &eb);
    if (rc != RP_OK) {
        FZ_CHECK(rc == RP_INTERNAL, "a refusal is RP_INTERNAL");
        fz_check_msg(&eb);
        FZ_CHECK(strncmp(eb.msg, "corrupt digest", 14) == 0, "the sentence names the digest");
        return 0;
    }
    FZ_CHECK(d.n <= d.cap && d.cap <= RP_DIGEST_MAX_EVENTS, "n and cap in range");
    FZ_CHECK(d.entries >= data && d.entries + (size_t)d.n * 32 <= data + size, "entries inside");
    FZ_CHECK(d.strtab >= data && d.strtab + d.strtab_len == data + size, "string table inside");
    int64_t pts = 0;
    uint32_t pseq = 0;
    for (uint32_t i = 0; i < d.n; i++) {
        rp_event e;
        rp_digest_event(&d, i, RP_STR_LIT("C1"), &e);
        in_input(e.kind, data, size, "kind inside");
        in_input(e.topic, data, size, "topic inside");
        in_input(e.issue_id, data, size, "issue_id inside");
        in_input(e.agent, data, size, "agent inside");
        FZ_CHECK(e.kind.n <= RP_TOKEN_MAX && e.topic.n <= RP_TOKEN_MAX && e.agent.n <= RP_TOKEN_MAX &&
                     e.issue_id.n <= RP_ID_MAX,
                 "string lengths");
        FZ_CHECK(e.channel < RP_CH__COUNT && e.outcome < RP_OUT__COUNT, "enums");
        FZ_CHECK(e.has_sentiment ? (e.sentiment >= -1.0 && e.sentiment <= 1.0) : e.sentiment == 0.0,
                 "sentiment");
        FZ_CHECK(e.ts >= 0, "ts");
        FZ_CHECK(i == 0 || pts > e.ts || (pts == e.ts && pseq > e.seq), "newest first");
        FZ_CHECK(e.summary.n == 0 && e.event_id.n == 0 && !e.has_seq, "light event");
        pts = e.ts;
        pseq = e.seq;
    }
    if (d.n > 0) {
        rp_event e0;
        rp_digest_event(&d, 0, RP_STR_LIT("C1"), &e0);
        FZ_CHECK(e0.ts == 0 || !rp_digest_covers(&d, 1, e0.ts - 1), "covers hides no event");
    }
    (void)rp_digest_covers(&d, 200, INT64_MAX);
    /* Exact size: one byte less or more is refused (copies, so ASan sees reads). */
    uint8_t *c = malloc(size + 1);
    FZ_CHECK(c != NULL, "malloc");
    memcpy(c, data, size);
    c[size] = 0;
    rp_digest d2;
    FZ_CHECK(rp_digest_parse(c, size + 1, &d2, &eb) == RP_INTERNAL, "a longer value is refused");
    if (size > 0) FZ_CHECK(rp_digest_parse(c, size - 1, &d2, &eb) == RP_INTERNAL, "a shorter value is refused");
    free(c);
    return 0;
}
