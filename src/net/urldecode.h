/* urldecode.h — percent-decoding of URL paths and query strings.
 *
 * Two flavours, as clients actually encode them:
 *
 *   - RP_URL_PATH (RFC 3986): "%XX" is the byte 0xXX, every other byte is
 *     itself; '+' is a literal plus. Used for path segments.
 *   - RP_URL_FORM (application/x-www-form-urlencoded, as browsers'
 *     URLSearchParams, Python's urllib.parse.urlencode, curl
 *     --data-urlencode and HTML forms write query strings): as PATH, but a
 *     raw '+' is a space; a plus sign arrives as "%2B".
 *
 * RP_URL_LEAD_PLUS (with RP_URL_FORM) keeps a raw '+' that is the FIRST
 * byte of the input as a plus sign: IVRs build "?phone=" + "+4420..." by
 * concatenation, and a phone value never starts with a space. Only the
 * first byte is affected.
 *
 * Refused (RP_BAD_REQUEST, with a sentence naming `what`): a '%' not
 * followed by two hex digits ("%zz", "%4", a trailing "%"), "%00" and a
 * raw NUL byte (our strings are C strings). The sentence shows a bad
 * escape with bytes other than printable ASCII as '?' (it goes back to
 * clients); `what` is the caller's and must be printable too. UTF-8
 * validity is the caller's check (the bytes may be any).
 */
#ifndef RP_URLDECODE_H
#define RP_URLDECODE_H

#include <stddef.h>

#include "core/error.h"

enum {
    RP_URL_PATH = 0,      /* RFC 3986: '+' is a plus */
    RP_URL_FORM = 1,      /* form-urlencoded: '+' is a space */
    RP_URL_LEAD_PLUS = 2, /* with FORM: a '+' as the first byte is a plus */
};

/* Decode s[0..n) (need not be NUL-terminated) per flags.
 *   out:    on RP_OK a new NUL-terminated string (caller frees); else NULL
 *   outlen: may be NULL; on RP_OK the decoded length (no NUL inside)
 *   what:   names the value in error messages, e.g. "query parameter 'phone'"
 * Errors: RP_BAD_REQUEST (malformed escape, %00), RP_UNAVAILABLE (no memory).
 * O(n); allocates n + 1 bytes. Thread-safe. */
rp_err rp_url_decode(const char *s, size_t n, int flags, const char *what, char **out,
                     size_t *outlen, rp_errbuf *eb);

#endif
