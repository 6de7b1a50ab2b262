/* cardlink.h — the signed, short-lived links of the agent's page (GET /card).
 *
 * card.link (an admin or ingest caller: the CRM's back end) mints
 *   /card?<kind>=<value>&exp=<unix seconds>&sig=<32 hex>
 * and GET /card honours it without a bearer token, as an agent, until exp.
 * sig is the SipHash-2-4-128 tag of "rapport-card-v1\0<kind>\0<value>\0<exp>"
 * under a 16-byte key: the first 16 bytes of SipHash-128 of the setting
 * card_link_secret (under a zero key) when it is set, else a random key
 * drawn once per process (getrandom) — then links die when the server
 * restarts and each server of a pool honours only its own. The link never
 * carries a long-lived secret; its lifetime is at most RP_CARDLINK_TTL_MAX.
 */
#ifndef RP_API_CARDLINK_H
#define RP_API_CARDLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define RP_CARDLINK_TTL_DEFAULT 300 /* 5 minutes: a screen-pop opens it at once */
#define RP_CARDLINK_TTL_MAX 3600
#define RP_CARDLINK_SIG_HEX 32

/* The tag of (kind, value, exp) as 32 lower-case hex digits and a NUL. */
void rp_cardlink_sign(const rp_config *cfg, const char *kind, const char *val, size_t vlen,
                      int64_t exp, char out[RP_CARDLINK_SIG_HEX + 1]);

/* Is sig the tag of (kind, value, exp), and now <= exp? Constant-time compare. */
bool rp_cardlink_valid(const rp_config *cfg, const char *kind, const char *val, size_t vlen,
                       int64_t exp, const char *sig, int64_t now);

#endif
