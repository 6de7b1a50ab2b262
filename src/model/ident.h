/* ident.h — validation and normalization of identifiers and text.
 *
 * Phone numbers (phone.c): any common carrier or CRM format to E.164.
 * Emails: trimmed and lower-cased; a syntax check, not a deliverability one.
 * Ids (customer, issue, account): 1..64 bytes of printable ASCII, no space.
 * Text fields: valid UTF-8 with no control characters but tab.
 * All functions are pure and allocation-free; outputs go to caller buffers.
 */
#ifndef RP_IDENT_H
#define RP_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "model/record.h"

/* Normalize a phone number to E.164 ("+" then 8..15 digits).
 *   in, n: the number as received, any of: "+1 (415) 555-1212",
 *          "415.555.1212", "0044 20 7946 0958", "011 44 20 7946 0958",
 *          "+44 (0)20 7946 0958", "tel:+14155551212", "1-415-555-1212".
 *   default_country: ISO 3166-1 alpha-2 ("US", "GB") used when the number
 *          has no country code; its international and trunk prefixes apply.
 *   out:   receives the NUL-terminated E.164 string (RP_PHONE_MAX + 1 bytes).
 *   outlen: receives strlen(out); may be NULL.
 * Returns RP_OK, or RP_BAD_REQUEST with a sentence in eb when the input is
 * not a phone number (letters, too few/many digits, unknown country code,
 * unknown default country). Never guesses. O(n). */
rp_err rp_phone_normalize(const char *in, size_t n, const char *default_country,
                          char out[RP_PHONE_MAX + 1], size_t *outlen, rp_errbuf *eb);

/* The calling code of an ISO country ("US" -> "1"), or NULL when unknown. */
const char *rp_phone_country_code(const char *iso2);

/* Normalize an email: trim ASCII spaces, lower-case, check local@domain
 * shape (one '@', non-empty parts, a dot in the domain, no spaces or
 * control characters, total <= RP_EMAIL_MAX).
 *   out: receives the NUL-terminated result (RP_EMAIL_MAX + 1 bytes).
 * Returns RP_OK or RP_BAD_REQUEST. */
rp_err rp_email_normalize(const char *in, size_t n, char out[RP_EMAIL_MAX + 1], size_t *outlen,
                          rp_errbuf *eb);

/* Check an id: 1..RP_ID_MAX bytes, each 0x21..0x7E.
 *   what: the field name for the error sentence ("id", "issue_id").
 * Returns RP_OK or RP_BAD_REQUEST. */
rp_err rp_id_check(rp_str id, const char *what, rp_errbuf *eb);

/* Check text: valid UTF-8 (no overlongs, no surrogates), no control
 * characters except tab, at most max bytes.
 * Returns RP_OK, RP_TOO_LARGE or RP_BAD_REQUEST. */
rp_err rp_text_check(rp_str s, size_t max, const char *what, rp_errbuf *eb);

/* true when p[0..n) is valid UTF-8. */
bool rp_utf8_valid(const char *p, size_t n);

#endif
