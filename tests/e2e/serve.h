/* serve.h — start and stop the test's rapportd, failing the current cmocka
 * test when that goes wrong (the harness's own calls only return codes).
 *
 *     rp_h h;
 *     rp_h_start_ok(&h, "durability = async\n");
 *     ...
 *     rp_h_stop_ok(&h);   // SIGTERM must exit 0 (log dumped if not); dir removed
 *
 * Header-only; include after <cmocka.h>.
 */
#ifndef RP_E2E_SERVE_H
#define RP_E2E_SERVE_H

#include "e2e/harness.h"

/* rp_h_start, or fail the test. */
static inline void rp_h_start_ok(rp_h *h, const char *extra) {
    if (rp_h_start(h, extra) != 0) fail_msg("rapportd did not start");
}

/* Stop with SIGTERM: exit 0 is required (else the log is printed and the
 * test fails); then remove the test's directory. */
static inline void rp_h_stop_ok(rp_h *h) {
    int st = rp_h_stop(h);
    if (st != 0) rp_h_dump_log(h);
    assert_int_equal(st, 0);
    rp_h_cleanup(h);
}

#endif
