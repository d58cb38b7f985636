/* chain.h — the audit trail's hash chain: what makes `keywatch verify` possible.
 *
 * Every committed batch of calls is a link: hash = SHA-256(previous link's hash ||
 * canonical encoding of each call of the batch, in id order).  The encoding holds what
 * the audit trail shows — time, key fingerprint, client, method, endpoint, path, status,
 * sizes, latency, user agent, host, source — as values, not dictionary ids, so editing a
 * dictionary row (a user agent's text) breaks the chain as surely as editing a call.
 * A call changed, deleted, inserted or two calls reordered after the fact change the
 * batch's hash; a batch deleted or reordered breaks the links after it.
 * Thread: a hasher belongs to one thread.
 */
#ifndef KW_CHAIN_H
#define KW_CHAIN_H

#include "call.h"

#include <stddef.h>
#include <stdint.h>

#define KW_CHAIN_HASH 32

/* One call as the chain encodes it (fp NULL: anonymous; absent sizes are -1). */
struct kw_chain_row {
  int64_t id, ts_us;
  const uint8_t *fp;
  struct kw_addr client;
  struct kw_str method, endpoint, path, user_agent, host;
  int status;
  int64_t req_bytes, resp_bytes, latency_us;
  uint32_t source_id;
  int flags;
};

struct kw_chain;

/* Returns 0 and a new hasher (free with kw_chain_destroy()) or KW_ENOMEM. */
int kw_chain_create(struct kw_chain **out);
void kw_chain_destroy(struct kw_chain *c);

/* Starts a link after prev (KW_CHAIN_HASH bytes). */
int kw_chain_begin(struct kw_chain *c, const uint8_t *prev);

/* Adds one call to the link being built. */
int kw_chain_add(struct kw_chain *c, const struct kw_chain_row *row);

/* Ends the link: its hash into out (KW_CHAIN_HASH bytes). */
int kw_chain_end(struct kw_chain *c, uint8_t *out);

#endif
