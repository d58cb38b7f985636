/* alerts.h — alerts as the store keeps them, and their one JSON form.
 *
 * An alert groups the firings of one rule for one key: a firing within the rule's
 * cooldown of the alert's last_seen updates it (count, last_seen, summary, details);
 * a later one opens a new alert.  New alerts are queued in the outbox — in the same
 * transaction — for every configured sink, so delivery survives sink outages and
 * restarts.  States: open → acknowledged → resolved (each change records who and when).
 *
 * The JSON document written by kw_alert_json() is what `keywatch alerts --json` prints
 * and what every sink sends: {"id", "rule", "type", "severity", "state", "key_prefix",
 * "fingerprint", "name", "first_seen", "last_seen", "count", "summary", "details"}.
 * Thread: a kw_store's thread.
 */
#ifndef KW_ALERTS_H
#define KW_ALERTS_H

#include "call.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum kw_severity { KW_SEV_INFO, KW_SEV_LOW, KW_SEV_MEDIUM, KW_SEV_HIGH, KW_SEV_CRITICAL };

/* "info" … "critical"; NULL for an out-of-range value. */
const char *kw_severity_name(int sev);
/* Returns the severity named s, or -1. */
int kw_severity_parse(const char *s);

/* One firing of a rule, as the analyzer reports it. */
struct kw_firing {
  const char *rule;     /* rule id */
  const char *type;     /* rule type */
  int severity;
  const char *action;   /* "alert", "revoke" */
  bool has_key;
  uint8_t fp[KW_FP_LEN];
  char prefix[KW_PREFIX_MAX + 1];
  int64_t ts_us;        /* event time of the call that fired it */
  int64_t cooldown_us;  /* grouping window */
  const char *summary;  /* one line: observed vs expected */
  const char *details;  /* a JSON object */
};

/* Records a firing (see above) and links the call just stored (sample) to the alert,
 * keeping at most 20 samples per alert.  Queues new alerts for each of sinks[0..nsinks);
 * a new alert whose action is "revoke" also records a decision (table decisions) for
 * the responder.
 * *id receives the alert id, *created whether it is new. Joins the open batch. */
int kw_store_alert(struct kw_store *st, const struct kw_firing *f, int64_t sample_call,
                   const char *const *sinks, size_t nsinks, int64_t *id, bool *created);

/* Id of the call most recently inserted by this store (the call being analysed). */
int64_t kw_store_last_call(struct kw_store *st);

/* Moves alert id to state ("acknowledged", "resolved", "open"), recording by and note.
 * Returns 0, KW_ENOTFOUND, or KW_ESTORE.  Joins the open batch: commit with
 * kw_store_commit(). */
int kw_store_alert_set_state(struct kw_store *st, int64_t id, const char *state,
                             const char *by, const char *note);

struct kw_alert_row {
  int64_t id;
  const char *rule, *type, *action, *state;
  int severity;
  const char *prefix, *name; /* NULL: anonymous / unnamed */
  const uint8_t *fp;         /* NULL: anonymous */
  int64_t first_us, last_us, count;
  const char *summary, *details;
  const char *state_by, *note;
  int64_t state_at_us;
};

struct kw_alerts_query {
  const char *state;   /* NULL: any */
  int min_severity;    /* -1: any */
  const char *key;     /* prefix start or fingerprint; NULL: any */
  const char *rule;    /* NULL: any */
  int64_t since_us;    /* last_seen >= since; 0: any */
  int64_t id;          /* one alert; 0: any */
  int64_t limit;       /* 0: no limit */
  int64_t before_us, before_id; /* paging: only alerts after (last_seen, id) in the order
                                 * (newest first); before_id 0: from the start */
};

/* Newest first. Strings valid during cb only. */
int kw_store_alerts(struct kw_store *st, const struct kw_alerts_query *q,
                    int (*cb)(const struct kw_alert_row *a, void *ctx), void *ctx);

/* Sample calls of an alert, oldest first (at most limit). */
int kw_store_alert_calls(struct kw_store *st, int64_t alert_id, int64_t limit,
                         int (*cb)(const struct kw_call_row *row, void *ctx), void *ctx);

/* Writes the alert's JSON document (see above) to f. */
void kw_alert_json(FILE *f, const struct kw_alert_row *a);

/* ---- baselines (the analyzer's per-key state, opaque here) ---------------------------- */

/* Saves the blob of the key with fingerprint fp (a stored key); joins the open batch. */
int kw_store_baseline_save(struct kw_store *st, const uint8_t *fp, const void *blob,
                           size_t len);

/* Calls cb with every saved blob. */
int kw_store_baselines(struct kw_store *st,
                       int (*cb)(const void *blob, size_t len, void *ctx), void *ctx);

/* ---- outbox ------------------------------------------------------------------------- */

struct kw_outbox_row {
  int64_t id, alert_id;
  const char *sink, *event;
  int64_t attempts;
};

/* Pending deliveries due at now (next_try <= now), oldest first, at most limit. */
int kw_store_outbox_due(struct kw_store *st, int64_t now_us, int64_t limit,
                        int (*cb)(const struct kw_outbox_row *row, void *ctx), void *ctx);

/* Marks a delivery done, or schedules a retry (attempts + 1) at next_try_us with error
 * (borrowed).  Each joins the open batch: a delivery counts as acknowledged once that
 * batch is committed (a crash before it means one more delivery, never none). */
int kw_store_outbox_done(struct kw_store *st, int64_t id);
int kw_store_outbox_retry(struct kw_store *st, int64_t id, int64_t next_try_us,
                          const char *error);

/* Pending deliveries (all sinks). */
int64_t kw_store_outbox_backlog(struct kw_store *st);

/* Bounds the outbox: when more than max_pending deliveries are pending, the oldest of
 * them are given up (state 'overflow', with the reason; the alerts themselves stay) and
 * counted as hits of the bound "outbox_pending".  Joins the open batch.  Returns how many
 * were given up, or KW_ESTORE. */
int64_t kw_store_outbox_trim(struct kw_store *st, int64_t max_pending);

#endif
