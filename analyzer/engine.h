/* engine.h — the rules engine: per-key state in memory, evaluated call by call.
 *
 * Every rule is evaluated incrementally on *event time* (the call's own timestamp), so
 * replaying an old log gives the alerts live operation would have given.  State lives in
 * one fixed-size record per key (and per client address, for rules counted by address):
 * a header plus one slot per rule, sized by the rule's type.  Baselines are learned per
 * key during the rule's `learn` period counted from the key's first call; until then
 * the learning rules stay silent (a key with too little history is not judged).
 *
 * A rule that keeps matching fires at most once per minute of event time per key; the
 * store groups firings within the rule's cooldown into one alert.
 *
 * Thread: one engine per thread; no I/O.
 */
#ifndef KW_ENGINE_H
#define KW_ENGINE_H

#include "../sidecar/alerts.h"
#include "../sidecar/call.h"
#include "../sidecar/config.h"
#include "rules.h"

#include <stddef.h>
#include <stdint.h>

struct kw_engine;

/* Called for each firing; f and its strings are valid during the call only. */
typedef void (*kw_fire_cb)(const struct kw_firing *f, const struct kw_rule *rule, void *ctx);

/* Borrows rs and cfg (key names) for the engine's life. */
int kw_engine_create(const struct kw_ruleset *rs, const struct kw_config *cfg,
                     struct kw_engine **out);
void kw_engine_destroy(struct kw_engine *e);

/* Marks the key with fingerprint fp as revoked at its key store (by the responder):
 * revoked_key_use rules fire when it still gets successful answers.  Returns 0 or
 * KW_ENOMEM. */
int kw_engine_mark_revoked(struct kw_engine *e, const uint8_t *fp);

/* Tells the engine what the key store says of the key with fingerprint fp: its group
 * (Metabase) and permission (SeaTable "r"/"rw"), either NULL when unknown.  Grants by
 * groups/permissions (rules.h) then apply to it for scope_violation: at once if the key
 * was seen already, else from its first call.  A second call replaces both values.
 * Copies group and permission.  Returns 0, KW_ENOMEM, or KW_ETOOLONG when attributes of
 * more keys than the engine tracks were given. */
int kw_engine_set_key_attrs(struct kw_engine *e, const uint8_t *fp, const char *group,
                            const char *permission);

/* Evaluates one call; cb runs for every rule that fires. Returns the number of firings. */
int kw_engine_call(struct kw_engine *e, const struct kw_call *c, kw_fire_cb cb, void *ctx);

/* Per rule and key, what explain shows: fired (how often, first time) or the closest the
 * key came to the threshold.  Strings valid during the call. */
struct kw_explain_row {
  const struct kw_rule *rule;
  const char *prefix;   /* "" for address-keyed state (address in `subject`) */
  const char *subject;  /* key prefix or client address */
  uint32_t fires;
  int64_t first_fire_us;
  double best_ratio;    /* observed / threshold at the closest approach (fired: >= 1) */
  double best_observed, best_threshold;
  int64_t best_us;
  const char *note;     /* why it could not fire, when it never was eligible */
};

/* Calls cb for each (rule, subject) the engine holds state for and that saw any
 * evaluation; rule_filter / key_filter (prefix start) restrict it (NULL: all). */
void kw_engine_explain(struct kw_engine *e, const char *rule_filter, const char *key_filter,
                       void (*cb)(const struct kw_explain_row *row, void *ctx), void *ctx);

/* Evaluations skipped because a key or address could not get state (more than 2M
 * subjects, or out of memory): each is one call a rule did not see for that subject. */
uint64_t kw_engine_untracked(const struct kw_engine *e);

/* Keys (and addresses) tracked, and the bytes their state takes. */
size_t kw_engine_tracked(const struct kw_engine *e);
size_t kw_engine_bytes(const struct kw_engine *e);
size_t kw_engine_state_size(const struct kw_engine *e);

/* Baselines: every key's state as opaque blobs (cb(fp, blob, len, ctx)), and back. A
 * blob from another rule set (signature) or size is ignored. */
void kw_engine_export(struct kw_engine *e,
                      void (*cb)(const uint8_t *fp, const void *blob, size_t len, void *ctx),
                      void *ctx);
int kw_engine_import(struct kw_engine *e, const void *blob, size_t len);

#endif
