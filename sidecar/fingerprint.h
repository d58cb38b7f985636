/* fingerprint.h — turning a raw API key into an identity that is safe to keep.
 *
 * A raw key is fingerprinted at once with HMAC-SHA256 under a per-installation secret and
 * truncated to 128 bits (KW_FP_LEN).  Only the fingerprint and a short display prefix are
 * ever stored, printed or sent.  The secret comes from $KEYWATCH_SECRET or from a file that
 * is created on first use with mode 0600 (32 random bytes, hex), and is refused when other
 * users may read it.
 *
 * Thread: a kw_fingerprint is read-only after creation and may be shared by threads.
 */
#ifndef KW_FINGERPRINT_H
#define KW_FINGERPRINT_H

#include "call.h"

#include <stddef.h>
#include <stdint.h>

#define KW_SECRET_ENV "KEYWATCH_SECRET"
#define KW_SECRET_MIN 32 /* bytes of secret material required */

struct kw_fingerprint;

/* Loads the secret from $KEYWATCH_SECRET if set, else from path (created when missing).
 * Returns 0 and a new object (free with kw_fingerprint_destroy()), or KW_ESECRET/-errno
 * with a message in err naming the file and what to do. The secret bytes read are wiped. */
int kw_fingerprint_create(const char *path, struct kw_fingerprint **out, char *err,
                          size_t errlen);

/* Same, from secret bytes the caller holds (tests, embedding). Borrows secret. */
int kw_fingerprint_create_from(const void *secret, size_t len, struct kw_fingerprint **out);

/* Wipes and frees; NULL is a no-op. */
void kw_fingerprint_destroy(struct kw_fingerprint *fp);

/* fp(out) = HMAC-SHA256(secret, key)[0:16].  Borrows key. Hot path: no allocation. */
void kw_fingerprint_key(const struct kw_fingerprint *fp, const char *key, size_t n,
                        uint8_t out[KW_FP_LEN]);

/* Display prefix of a key: its first min(want, n / 4) characters, with anything outside
 * [A-Za-z0-9_+/=.-] replaced by '?', NUL-terminated in out (KW_PREFIX_MAX + 1 bytes).
 * Short keys thus show little of themselves. */
void kw_fingerprint_prefix(const char *key, size_t n, unsigned want,
                           char out[KW_PREFIX_MAX + 1]);

/* Hex of a fingerprint: 32 characters + NUL. */
char *kw_fingerprint_hex(const uint8_t fp[KW_FP_LEN], char out[2 * KW_FP_LEN + 1]);

/* n bytes of b as 2n lowercase hex digits and a NUL into out; returns out. */
char *kw_hex(const uint8_t *b, size_t n, char *out);

/* Parses 32 hex characters; returns 0 or KW_EPARSE. */
int kw_fingerprint_from_hex(const char *hex, uint8_t fp[KW_FP_LEN]);

#endif
