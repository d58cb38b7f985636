/* responder.h — carries out revocations: safeguards, a durable queue, key-store adapters.
 *
 * Decisions reach the store as revocations in state `decided` (a rule with action
 * revoke, or `keywatch revoke`); see sidecar/revocations.h for the states.  Once the
 * batch holding a decision is committed, the responder judges it, in this order:
 *
 *   no key (the rule fired for an address)             → suppressed
 *   keywatch's own admin key at a configured store     → suppressed (also when manual)
 *   automatic only: listed in responder.protect        → suppressed
 *                   severity below min_severity        → suppressed
 *                   the call is older than max_age     → suppressed (a replayed log)
 *   no configured store handles the key's prefix       → suppressed
 *   automatic only: revoked within key_cooldown        → suppressed
 *   dry_run (global, or `keywatch revoke --dry-run`)   → dry_run (nothing is sent)
 *   automatic only: max_per_hour / max_per_day reached → suppressed, and a critical
 *                   alert "revocation budget exhausted" (one per hour)
 *   otherwise                                          → queued at that store
 *
 * Time windows (cooldown, budget, age) are counted on the decisions' event time, so
 * `keywatch shadow` over an old log judges as live operation would have.
 *
 * A queued revocation is committed before its first call, then sent through its store's
 * adapter; errors, timeouts and 5xx are retried with exponential backoff (retry_initial
 * doubling up to retry_max) until give_up_after, then it fails with a critical alert.
 * Every call is stored (revocation_calls).  Rows survive restarts: the queue is the
 * table.  A key revoked (done or gone) is reported to on_revoked, so revoked_key_use can
 * watch it.  The key stores' inventories are synced every inventory_interval.
 *
 * Commits: with owner_commits the owner (the daemon) commits its batches and calls
 * kw_responder_committed() after each; otherwise the responder commits its own writes.
 * Nothing is sent for a row whose queued state is not yet committed.
 *
 * Thread: the loop's.  The responder borrows the store, config, fingerprint and log.
 */
#ifndef KW_RESPONDER_H
#define KW_RESPONDER_H

#include "../sidecar/config.h"
#include "../sidecar/fingerprint.h"
#include "../sidecar/log.h"
#include "../sidecar/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct kw_responder;

struct kw_responder_opts {
  struct kw_store *store;
  const struct kw_config *cfg;
  const struct kw_fingerprint *fpr;
  const struct kw_log *log;           /* NULL: silent */
  bool owner_commits;
  /* With owner_commits: asks the owner to commit soon (not from inside this call), so a
   * judged revocation is sent without waiting for the next regular commit. */
  void (*request_commit)(void *arg);
  const char *const *sinks;           /* sinks the responder's own alerts are queued for */
  size_t nsinks;
  bool sync_inventory;                /* list the stores' keys every inventory_interval */
  void (*on_revoked)(const uint8_t *fp, void *arg);
  void (*on_inventory)(void *arg); /* a store's listing was written (groups may change) */
  void *arg;
};

struct kw_responder_stats {
  uint64_t judged, queued, suppressed, dry_run;
  uint64_t done, gone, retried, failed;
  uint64_t calls;                     /* key-store calls made */
  uint64_t inflight;
  /* inventory: store listings that finished, failed, or cannot be made (http, command) */
  uint64_t listed, list_failed, list_unsupported;
};

/* Opens every configured store (credentials are read now) and starts the timer.
 * Returns 0, or KW_ECONFIG with "FILE:LINE: responder.…: problem" in err. */
int kw_responder_init(uv_loop_t *loop, const struct kw_responder_opts *o,
                      struct kw_responder **out, char *err, size_t errlen);

/* What can be checked without reading credentials or calling a store: the protect
 * selectors.  Returns 0 or KW_ECONFIG with "FILE:LINE: responder.…" in err. */
int kw_responder_check(const struct kw_config *cfg, char *err, size_t errlen);

/* The owner committed a batch: judge new decisions, send what is due. */
void kw_responder_committed(struct kw_responder *r);

/* Nothing queued, judged-but-unsent or in flight (for one-shot use by `keywatch revoke`). */
bool kw_responder_idle(struct kw_responder *r);

void kw_responder_stats(const struct kw_responder *r, struct kw_responder_stats *out);

/* Cancels calls in flight (their revocations stay queued and are retried after a restart),
 * closes the stores; cb(arg) once everything is closed.  NULL: cb runs at once. */
void kw_responder_close(struct kw_responder *r, void (*cb)(void *arg), void *arg);

/* ---- shadow ---------------------------------------------------------------------------- */

/* One judgement of `keywatch shadow`. */
struct kw_shadow_row {
  const struct kw_revocation *rev; /* the decision (rev->event_us: when) */
  const char *verdict;             /* "revoke", "suppressed" */
  const char *store;               /* the store it would go to, or NULL */
  const char *why;
};

/* Judges every decided revocation in st in event-time order as the live responder would
 * have (dry_run taken as off, each judgement at its own event time, judgements recorded
 * in st so later ones see the budget used), calling cb for each.  Adapters are not opened
 * (no credential needed): the own-admin-key check is not made.  Returns 0 or an error
 * with err set. */
int kw_responder_shadow(struct kw_store *st, const struct kw_config *cfg,
                        void (*cb)(const struct kw_shadow_row *row, void *ctx), void *ctx,
                        char *err, size_t errlen);

#endif
