/* keystore.h — key stores the responder revokes keys at: one ops table per kind.
 *
 * An adapter turns "revoke the key with this fingerprint / display prefix" into the calls
 * its store's admin API needs (KEYSTORES.md): usually a lookup that maps the key to the
 * store's id, then the revoking call.  Adapters never see a raw API key — keywatch never
 * stores one — so a lookup matches what the store shows against what keywatch kept: the
 * 7-character prefix (Metabase), or the fingerprint of keys the store lists in clear
 * (SeaTable, Kong: listed keys are fingerprinted with keywatch's secret and compared).
 *
 * Kinds: metabase, seatable, kong, http (fully templated), command (argv, no shell).
 * Each is one file that exports only its ops table; keystore.c holds the registry, the
 * defaults for optional slots, and the helpers adapters share (keystore_int.h).
 *
 * Outcomes of one attempt:
 *   DONE   the store revoked the key (or regenerated it)
 *   GONE   the store says the key is not there (already deleted): counts as done
 *   RETRY  an error, timeout, 5xx, refused credential…: the responder tries again later
 *   FAIL   retrying cannot help (the key maps to several ids, or to keywatch's own admin
 *          key, or the store cannot hold it): the responder gives up at once
 * Every call an attempt makes is reported to on_call as it completes (for the audit), with
 * a request summary that holds no secret ("DELETE /api/api-key/12").
 *
 * Credentials come from an environment variable or a file (mode 0600 or stricter), are
 * held by the adapter only, wiped before their memory is freed, never logged, and never
 * appear in an error or a summary.
 *
 * Thread: the loop's.  Async contract: when revoke()/list() return an error, no callback
 * runs; otherwise on_call runs once per call made and done exactly once (with FAIL and
 * detail "canceled" when the store is closed first), never from inside revoke()/list().
 */
#ifndef KW_KEYSTORE_H
#define KW_KEYSTORE_H

#include "../sidecar/config.h"
#include "../sidecar/fingerprint.h"
#include "../sidecar/revocations.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct kw_httpc;

enum kw_revoke_outcome { KW_REVOKE_DONE, KW_REVOKE_GONE, KW_REVOKE_RETRY, KW_REVOKE_FAIL };

/* "done", "gone", "retry", "fail". */
const char *kw_revoke_outcome_name(enum kw_revoke_outcome o);

/* What to revoke.  Borrowed until done runs (adapters copy what they keep). */
struct kw_revoke_target {
  int64_t id;              /* the revocation's id (for ${revocation_id}) */
  const char *action;      /* "revoke" or "regenerate" */
  const char *prefix;      /* display prefix ("" when unknown) */
  const uint8_t *fp;       /* fingerprint (KW_FP_LEN bytes) */
  const char *store_ref;   /* the key's id at the store from an earlier attempt, or NULL */
  const char *rule;        /* the rule that decided it; NULL: manual */
};

struct kw_revoke_result {
  enum kw_revoke_outcome outcome;
  const char *store_ref;   /* the id found at the store, or NULL */
  const char *detail;      /* one line, no secret */
};

typedef void (*kw_keystore_call_cb)(const struct kw_revocation_call *c, void *arg);
typedef void (*kw_keystore_done_cb)(const struct kw_revoke_result *r, void *arg);
/* One key a store lists (inventory); strings valid during the call. */
typedef void (*kw_keystore_item_cb)(const struct kw_inventory_item *it, void *arg);

/* What every adapter gets from its owner (borrowed for the adapter's life). */
struct kw_keystore_env {
  uv_loop_t *loop;
  struct kw_httpc *http;
  const struct kw_fingerprint *fpr; /* keywatch's key fingerprints */
  unsigned prefix_length;           /* display prefix length (identity.prefix_length) */
};

struct kw_keystore_ops {
  const char *type;
  /* Validates cfg beyond the schema and reads the credential.  Errors name the field
   * (relative to the store: "credential.env: …"). */
  int (*create)(const struct kw_keystore_env *env, const struct kw_keystore_cfg *cfg,
                void **ctx, char *err, size_t errlen);
  /* One attempt at revoking t (see the outcomes above). */
  int (*revoke)(void *ctx, const struct kw_revoke_target *t, kw_keystore_call_cb on_call,
                kw_keystore_done_cb done, void *arg);
  /* Optional: lists the store's keys, item per key, then done (DONE or RETRY). Default:
   * KW_EINVAL (the store cannot list). */
  int (*list)(void *ctx, kw_keystore_item_cb item, kw_keystore_call_cb on_call,
              kw_keystore_done_cb done, void *arg);
  /* Optional: whether (fp, prefix) is the credential this adapter itself uses — never
   * revoked automatically.  Default: false. */
  bool (*owns_key)(void *ctx, const uint8_t *fp, const char *prefix);
  /* Frees ctx (wiping its secrets); cb(arg) once everything it started is closed.  Called
   * after the shared HTTP client is closed, so no HTTP callback is pending. */
  void (*close)(void *ctx, void (*cb)(void *arg), void *arg);
};

/* An open key store. */
struct kw_keystore {
  const struct kw_keystore_ops *ops;
  void *ctx;
  const struct kw_keystore_cfg *cfg; /* borrowed from the configuration */
};

/* The adapter for cfg->type, created.  Errors go to err as "responder.stores.N.FIELD: …"
 * located in the config file (kw_config_error). */
int kw_keystore_open(const struct kw_keystore_env *env, const struct kw_config *cfg,
                     unsigned index, struct kw_keystore *out, char *err, size_t errlen);

/* Whether the store named by cfg handles keys with this display prefix (its `prefixes`,
 * or any key when it has none). */
bool kw_keystore_handles(const struct kw_keystore *ks, const char *prefix);

#endif
