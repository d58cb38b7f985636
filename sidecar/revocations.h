/* revocations.h — the responder's durable queue, its audit trail, and the key stores'
 * inventory, in the store.
 *
 * A revocation is one decision to revoke one key.  It is written before anything is sent
 * to a key store (by the rule that fired, in the batch of the call that made it fire, or
 * by `keywatch revoke`), and every state change and every call to a key store is stored,
 * so `keywatch revocations` tells who decided what, when, and what the store answered.
 *
 *   decided ──safeguards──► queued ──store says revoked──► done
 *      │                      │ │  └─store says not there──► gone (counts as done)
 *      │                      │ └─error/timeout/5xx──► queued (attempts+1, next_try later)
 *      │                      └─past give_up_at, or a permanent error──► failed
 *      ├──► suppressed (result says why: protected, cooldown, budget, severity, stale, …)
 *      └──► dry_run (would have been revoked; dry-run mode)
 *   expired: recorded before the responder existed (schema 4), never carried out.
 *
 * Times are µs since the epoch.  `decided` is the wall clock when the row was written,
 * `event_ts` the event time of the call that made the rule fire (manual: = decided).
 * Thread: a kw_store's thread.  Writes join the open batch (kw_store_commit()).
 */
#ifndef KW_REVOCATIONS_H
#define KW_REVOCATIONS_H

#include "call.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct kw_revocation {
  int64_t id, alert_id;  /* alert_id 0: manual */
  int64_t key_id;        /* 0: no stored key (an anonymous firing) */
  const char *prefix, *name; /* of the key; NULL when unknown */
  const uint8_t *fp;     /* NULL when no key */
  const char *rule;      /* NULL: manual */
  int severity;
  const char *origin;    /* "rule", "manual" */
  const char *decided_by;
  const char *store;     /* key store name; NULL until chosen */
  const char *reason;
  int64_t decided_us, event_us;
  const char *state;
  bool dry_run;
  int64_t attempts, next_try_us, give_up_us; /* 0: none */
  const char *store_ref; /* the key's id at the store, once found */
  const char *result;    /* last outcome or why it was suppressed */
  int64_t updated_us;
};

struct kw_revocation_new {
  const uint8_t *fp;     /* the key (must be stored: seen in traffic) */
  const char *origin, *decided_by, *reason, *rule, *store;
  int severity;
  bool dry_run;          /* judged as a dry run whatever the configuration says */
  int64_t event_us;      /* 0: now */
};

/* Records a manual decision (state decided).  *id receives its id.  Returns 0,
 * KW_ENOTFOUND (no stored key with that fingerprint) or KW_ESTORE. */
int kw_store_revocation_add(struct kw_store *st, const struct kw_revocation_new *n,
                            int64_t *id);

struct kw_revocations_query {
  const char *state;     /* NULL: any; "open" = decided or queued */
  const char *key;       /* display-prefix start or 32-hex fingerprint; NULL: any */
  int64_t id;            /* 0: any */
  int64_t due_us;        /* > 0: queued rows with next_try <= due_us, oldest first */
  bool oldest_first;     /* by event time, then id */
  int64_t limit;         /* 0: no limit */
};

/* Newest first (due queries: by next_try; oldest_first: by event time).  Strings valid during cb only; cb returns
 * nonzero to stop. */
int kw_store_revocations(struct kw_store *st, const struct kw_revocations_query *q,
                         int (*cb)(const struct kw_revocation *r, void *ctx), void *ctx);

/* A state change: state, result (borrowed) and the fields that are >= 0 / not NULL. */
struct kw_revocation_update {
  const char *state;
  const char *result;
  const char *store;     /* NULL: unchanged */
  const char *store_ref; /* NULL: unchanged */
  int dry_run;           /* -1: unchanged */
  int64_t attempts, next_try_us, give_up_us; /* -1: unchanged */
};
int kw_store_revocation_update(struct kw_store *st, int64_t id,
                               const struct kw_revocation_update *u);

/* One call to a key store, for the audit (strings borrowed; request holds no secret). */
struct kw_revocation_call {
  const char *store, *request; /* "DELETE /api/api-key/12" */
  int status;                  /* HTTP status, exit code, or a negative error */
  int64_t duration_us;
  const char *result;          /* "ok", "gone", "error", "timeout", … */
  const char *detail;
};
int kw_store_revocation_call(struct kw_store *st, int64_t revocation_id,
                             const struct kw_revocation_call *c);

/* Calls of one revocation, oldest first. ts in *ts_us. */
int kw_store_revocation_calls(struct kw_store *st, int64_t revocation_id,
                              int (*cb)(int64_t ts_us, const struct kw_revocation_call *c,
                                        void *ctx),
                              void *ctx);

/* Safeguard counts (on event time, so a replay counts as live operation would have).
 * Automatic revocations (origin rule, not dry-run) let through — queued, done, gone or
 * failed — whose event_ts is at or after since_us. */
int kw_store_revocations_since(struct kw_store *st, int64_t since_us, int64_t *n);

/* The latest event_ts at which key key_id was let through (queued/done/gone/failed) or
 * a dry run recorded; 0 when never.  Manual ones count too. */
int kw_store_revocation_last(struct kw_store *st, int64_t key_id, int64_t *when_us);

/* Calls cb with the fingerprint of every key whose revocation is done or gone. */
int kw_store_revoked_keys(struct kw_store *st, void (*cb)(const uint8_t *fp, void *ctx),
                          void *ctx);

/* ---- inventory: what the key stores list --------------------------------------------- */

struct kw_inventory_item {
  const char *store, *ref;   /* the store's name and the key's id there */
  const char *name, *group, *created, *permission; /* NULL when the store has none */
  const char *prefix;        /* display prefix of the key, when the store shows it */
  const uint8_t *fp;         /* the key's fingerprint, when the store shows the key */
  bool own;                  /* the credential keywatch itself uses at that store */
};

/* Upserts an item seen in a sync at synced_us; links it to a stored key by fingerprint
 * or, when only a prefix is known, to the one stored key with that display prefix; names
 * that key when it has no name.  Joins the open batch. */
int kw_store_inventory_put(struct kw_store *st, const struct kw_inventory_item *it,
                           int64_t synced_us);

/* Marks the items of store not seen since synced_us as gone. */
int kw_store_inventory_sweep(struct kw_store *st, const char *store, int64_t synced_us);

struct kw_inventory_row {
  const char *store, *ref, *name, *group, *created, *permission, *prefix;
  int64_t key_id;      /* 0: never seen in traffic */
  int64_t synced_us, gone_us;
  int64_t calls, last_us; /* of the linked key */
};
int kw_store_inventory(struct kw_store *st,
                       int (*cb)(const struct kw_inventory_row *r, void *ctx), void *ctx);

/* Calls cb with the fingerprint, group and permission (NULL when the store has none) of
 * every stored key that an inventory item not gone is linked to and that has a group or
 * a permission, oldest sync first (a key listed twice: the latest sync comes last).
 * Strings valid during cb only.  Returns 0 or KW_ESTORE. */
int kw_store_key_attrs(struct kw_store *st,
                       void (*cb)(const uint8_t *fp, const char *group, const char *permission,
                                  void *ctx),
                       void *ctx);

/* Writes the revocation's JSON form (`keywatch revocations --json`) to f. */
void kw_revocation_json(FILE *f, const struct kw_revocation *r);

#endif
