/* keyid.h — key identity: kw_rec (a parsed line) → kw_call (what keywatch keeps).
 *
 * Finds the API key a call carried, in the order the configuration gives:
 *   1. a field the format declares to be the key itself (rec->key);
 *   2. a key-store credential id (rec->key_id, e.g. Kong's), fingerprinted as "id:<id>";
 *   3. request headers named in `headers` (x-api-key, apikey, …);
 *   4. the Authorization header, for the schemes in `auth_schemes`: "Bearer <k>",
 *      "Token <k>" (also token="<k>"), "apiKey <k>", "Basic base64(<k>:…)" (the user);
 *   5. query parameters named in `query_params`, from nginx $arg_<name> fields or the URI.
 * The key is fingerprinted at once; the stored path has the values of `redact_params` and
 * `query_params` replaced by "REDACTED", and any further occurrence of the key itself in
 * the path too.  Paths past 8192 bytes are cut and end in "…".
 * Thread: one kw_keyid per thread (it owns scratch space).
 */
#ifndef KW_KEYID_H
#define KW_KEYID_H

#include "../sidecar/call.h"
#include "../sidecar/config.h"
#include "../sidecar/fingerprint.h"
#include "record.h"

#define KW_KEY_MAX 4096 /* longer "keys" are not keys: the call is stored as anonymous */

struct kw_keyid;

/* Returns a new object (free with kw_keyid_destroy()); borrows cfg and fp for its life. */
int kw_keyid_create(const struct kw_identity_cfg *cfg, const struct kw_fingerprint *fp,
                    struct kw_keyid **out);
void kw_keyid_destroy(struct kw_keyid *kid);

/* Fills call from rec: identity, redacted path, client address, times and sizes.  The
 * endpoint and source_id are left for the caller.  call's strings borrow from rec and from
 * kid's scratch space until the next call.  Always succeeds (a record without a usable key
 * becomes an anonymous call); returns 1 if a key was found, 0 if not. */
int kw_keyid_apply(struct kw_keyid *kid, const struct kw_rec *rec, struct kw_call *call);

/* Exposed for tests: extracts the raw key from an Authorization header value for the
 * enabled schemes; writes into out (outlen bytes) and returns its length, or 0. */
size_t kw_keyid_from_authorization(const struct kw_keyid *kid, const char *v, size_t n,
                                   char *out, size_t outlen);

#endif
