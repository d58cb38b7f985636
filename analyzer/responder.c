/* responder.c — safeguards, the durable revocation queue, key-store calls (responder.h).
 *
 * State: the queue is the revocations table; in memory there are only the slots of the
 * attempts in flight (at most MAX_INFLIGHT, one per revocation) and `unsynced`, which is
 * set while rows this responder judged are not yet committed by the owner.
 *
 *   tick (timer, or the owner's commit) ──► judge decided rows (writes join the batch)
 *        └─ nothing unsynced ──► send due queued rows not in flight
 *   attempt done ──► done/gone (on_revoked) · retry (backoff) · failed (+ critical alert)
 *
 *   open ──close──► closing: timers stopped, HTTP client closed (attempts in flight end
 *        with "canceled": their rows stay queued) ──► adapters closed ──► timers closed
 *        ──► cb
 *
 * Thread: the loop's.
 */
#include "responder.h"

#include "httpc.h"
#include "keystore.h"
#include "rules.h"

#include "../sidecar/alerts.h"
#include "../sidecar/err.h"
#include "../sidecar/revocations.h"
#include "../sidecar/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFLIGHT 16
#define TICK_MS 250
#define JUDGE_BATCH 100
#define ALERT_COOLDOWN_US (3600LL * 1000000)

struct slot {
  struct kw_responder *r;
  bool used;
  int64_t id, attempts, give_up_us;
  unsigned store;
  uint8_t fp[KW_FP_LEN];
  char prefix[64];
};

struct kw_responder {
  uv_loop_t *loop;
  struct kw_responder_opts o;
  struct kw_httpc *http;
  struct kw_keystore_env env;
  struct kw_keystore *stores;
  size_t nstores, opened;
  struct kw_keysel *protect;
  size_t nprotect;
  uv_timer_t timer, inv_timer;
  struct slot slots[MAX_INFLIGHT];
  bool unsynced, closing, in_tick;
  struct kw_responder_stats stats;
  /* inventory sync */
  int64_t inv_started_us;
  size_t inv_pending;
  /* close */
  int handles;
  void (*close_cb)(void *arg);
  void *close_arg;
};

/* ---- judging (shared with shadow) --------------------------------------------------- */

struct judge {
  const struct kw_config *cfg;
  struct kw_store *st;
  const struct kw_keysel *protect;
  size_t nprotect;
  struct kw_keystore *stores; /* NULL in shadow: no own-key check */
  size_t nstores;
};

static int store_for(const struct kw_config *cfg, const char *prefix, const char *preset) {
  const struct kw_responder_cfg *rc = &cfg->responder;
  for (unsigned i = 0; i < rc->stores_count; i++) {
    const struct kw_keystore_cfg *k = &rc->stores[i];
    if (preset != NULL) {
      if (strcmp(k->name, preset) == 0)
        return (int)i;
      continue;
    }
    if (k->prefixes_count == 0)
      return (int)i;
    for (unsigned p = 0; p < k->prefixes_count; p++)
      if (prefix && strncmp(prefix, k->prefixes[p], strlen(k->prefixes[p])) == 0)
        return (int)i;
  }
  return -1;
}

static const char *sev(int s) {
  const char *n = kw_severity_name(s);
  return n ? n : "?";
}

/* The verdict for v at now: "queued", "suppressed" or "dry_run"; *store gets the store's
 * index (or -1), why one line for the audit. */
static const char *judge(const struct judge *j, const struct kw_revocation *v, int64_t now,
                         bool dry, int *store, char *why, size_t len) {
  const struct kw_responder_cfg *rc = &j->cfg->responder;
  bool manual = v->origin && strcmp(v->origin, "manual") == 0;
  int64_t last = 0, n = 0;

  *store = -1;
  if (v->fp == NULL) {
    snprintf(why, len, "no key: the rule fired for a client address, not a key");
    return "suppressed";
  }
  for (size_t i = 0; j->stores && i < j->nstores; i++) {
    if (j->stores[i].ops->owns_key(j->stores[i].ctx, v->fp, v->prefix)) {
      snprintf(why, len, "keywatch's own admin key at store %s: never revoked",
               j->stores[i].cfg->name);
      return "suppressed";
    }
  }
  if (!manual) {
    for (size_t i = 0; i < j->nprotect; i++) {
      if (kw_keysel_match(&j->protect[i], 1, v->fp, v->prefix, v->name)) {
        snprintf(why, len, "protected (responder.protect.%zu: %s)", i, j->protect[i].value);
        return "suppressed";
      }
    }
    if (v->severity < rc->min_sev) {
      snprintf(why, len, "severity %s is below responder.min_severity (%s)", sev(v->severity),
               rc->min_severity);
      return "suppressed";
    }
    if (now - v->event_us > rc->max_age_us) {
      snprintf(why, len, "stale: the call was %llds before the decision was judged "
                         "(responder.max_age %s)",
               (long long)((now - v->event_us) / 1000000), rc->max_age);
      return "suppressed";
    }
  }
  if ((*store = store_for(j->cfg, v->prefix, v->store)) < 0) {
    if (v->store)
      snprintf(why, len, "no key store named '%s' is configured", v->store);
    else
      snprintf(why, len, "no configured key store handles keys like %s (responder.stores)",
               v->prefix ? v->prefix : "?");
    return "suppressed";
  }
  if (!manual) {
    if (kw_store_revocation_last(j->st, v->key_id, &last) != 0)
      last = 0;
    if (last > 0 && v->event_us - last < rc->key_cooldown_us) {
      snprintf(why, len, "cooldown: this key was already acted on %llds before "
                         "(responder.key_cooldown %s)",
               (long long)((v->event_us - last) / 1000000), rc->key_cooldown);
      return "suppressed";
    }
  }
  if (dry || v->dry_run) {
    snprintf(why, len, "dry run: would revoke at %s", rc->stores[*store].name);
    return "dry_run";
  }
  if (!manual) {
    if (kw_store_revocations_since(j->st, v->event_us - 3600LL * 1000000, &n) == 0 &&
        n >= (int64_t)rc->max_per_hour) {
      snprintf(why, len, "budget exhausted: %lld automatic revocations in the last hour "
                         "(responder.max_per_hour %u)",
               (long long)n, rc->max_per_hour);
      return "suppressed";
    }
    if (kw_store_revocations_since(j->st, v->event_us - 86400LL * 1000000, &n) == 0 &&
        n >= (int64_t)rc->max_per_day) {
      snprintf(why, len, "budget exhausted: %lld automatic revocations in the last day "
                         "(responder.max_per_day %u)",
               (long long)n, rc->max_per_day);
      return "suppressed";
    }
  }
  snprintf(why, len, "queued at %s", rc->stores[*store].name);
  return "queued";
}

static int parse_protect(const struct kw_config *cfg, struct kw_keysel **out, size_t *n,
                         char *err, size_t errlen) {
  const struct kw_responder_cfg *rc = &cfg->responder;
  *n = 0;
  if ((*out = calloc(rc->protect_count ? rc->protect_count : 1, sizeof(**out))) == NULL) {
    snprintf(err, errlen, "responder.protect: out of memory");
    return KW_ENOMEM;
  }
  for (unsigned i = 0; i < rc->protect_count; i++) {
    char field[64];
    int e = kw_keysel_parse(rc->protect[i], &(*out)[i]);
    if (e == KW_ENOMEM) {
      snprintf(err, errlen, "responder.protect: out of memory");
      return e;
    }
    if (e != 0) {
      snprintf(field, sizeof(field), "responder.protect.%u", i);
      return kw_config_error(cfg, field, err, errlen,
                             "'%s' is not a key selector (display prefix, fp:HEX32, name:NAME)",
                             rc->protect[i]);
    }
    (*n)++;
  }
  return 0;
}

static void free_protect(struct kw_keysel *k, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(k[i].value);
  free(k);
}

int kw_responder_check(const struct kw_config *cfg, char *err, size_t errlen) {
  struct kw_keysel *k = NULL;
  size_t n = 0;
  int r = parse_protect(cfg, &k, &n, err, errlen);
  free_protect(k, n);
  return r;
}

/* ---- alerts of the responder itself ------------------------------------------------- */

static void raise_alert(struct kw_responder *r, const char *rule, const uint8_t *fp,
                        const char *prefix, const char *summary, int64_t rev_id,
                        const char *store) {
  char details[512];
  int64_t id;
  bool created;
  snprintf(details, sizeof(details), "{\"revocation_id\": %lld, \"store\": \"%s\"}",
           (long long)rev_id, store ? store : "");
  struct kw_firing f = {
      .rule = rule,
      .type = "responder",
      .severity = KW_SEV_CRITICAL,
      .action = "alert",
      .has_key = fp != NULL,
      .ts_us = kw_time_now(),
      .cooldown_us = ALERT_COOLDOWN_US,
      .summary = summary,
      .details = details,
  };
  if (fp)
    memcpy(f.fp, fp, KW_FP_LEN);
  snprintf(f.prefix, sizeof(f.prefix), "%s", prefix ? prefix : "");
  if (kw_store_alert(r->o.store, &f, 0, r->o.sinks, r->o.nsinks, &id, &created) != 0)
    kw_log(r->o.log, KW_LOG_ERROR, "responder_alert_failed", "rule", rule, NULL);
}

/* ---- the queue ------------------------------------------------------------------------ */

static void persist(struct kw_responder *r) {
  if (r->o.owner_commits) {
    r->unsynced = true;
    if (r->o.request_commit)
      r->o.request_commit(r->o.arg);
    return;
  }
  if (kw_store_commit(r->o.store) != 0)
    kw_log(r->o.log, KW_LOG_ERROR, "responder_commit_failed", "error",
           kw_store_errmsg(r->o.store), NULL);
}

static int on_decided(const struct kw_revocation *v, void *ctx) {
  struct kw_responder *r = ctx;
  const struct kw_responder_cfg *rc = &r->o.cfg->responder;
  struct judge j = {r->o.cfg, r->o.store, r->protect, r->nprotect, r->stores, r->nstores};
  char why[400];
  int store;
  int64_t now = kw_time_now();
  const char *verdict = judge(&j, v, now, *rc->dry_run, &store, why, sizeof(why));
  struct kw_revocation_update u = {
      .state = verdict,
      .result = why,
      .store = store >= 0 ? rc->stores[store].name : NULL,
      .dry_run = strcmp(verdict, "dry_run") == 0 ? 1 : -1,
      .attempts = -1,
      .next_try_us = strcmp(verdict, "queued") == 0 ? now : -1,
      .give_up_us = strcmp(verdict, "queued") == 0 ? now + rc->give_up_us : -1,
  };
  r->stats.judged++;
  if (kw_store_revocation_update(r->o.store, v->id, &u) != 0)
    return KW_ESTORE;
  if (strcmp(verdict, "queued") == 0)
    r->stats.queued++;
  else if (strcmp(verdict, "dry_run") == 0)
    r->stats.dry_run++;
  else
    r->stats.suppressed++;
  char id[24];
  snprintf(id, sizeof(id), "%lld", (long long)v->id);
  kw_log(r->o.log, strcmp(verdict, "suppressed") == 0 ? KW_LOG_WARN : KW_LOG_INFO,
         "revocation_judged", "id", id, "key", v->prefix ? v->prefix : "-", "verdict",
         verdict, "why", why, NULL);
  if (strncmp(why, "budget exhausted", 16) == 0) {
    char summary[480];
    snprintf(summary, sizeof(summary),
             "revocation budget exhausted: %s was not revoked automatically (%s)",
             v->prefix ? v->prefix : "a key", why);
    raise_alert(r, "responder.budget-exhausted", NULL, NULL, summary, v->id, NULL);
  }
  return 0;
}

static void judge_decided(struct kw_responder *r) {
  struct kw_revocations_query q = {.state = "decided", .oldest_first = true,
                                   .limit = JUDGE_BATCH};
  uint64_t before = r->stats.judged;
  /* Oldest first: the budget goes to the earliest decisions.  At most JUDGE_BATCH per
   * tick; the rest waits for the next one. */
  if (kw_store_revocations(r->o.store, &q, on_decided, r) != 0)
    kw_log(r->o.log, KW_LOG_ERROR, "responder_store_failed", "error",
           kw_store_errmsg(r->o.store), NULL);
  if (r->stats.judged != before)
    persist(r);
}

static struct slot *slot_of(struct kw_responder *r, int64_t id) {
  for (size_t i = 0; i < MAX_INFLIGHT; i++)
    if (r->slots[i].used && r->slots[i].id == id)
      return &r->slots[i];
  return NULL;
}

static struct slot *free_slot(struct kw_responder *r) {
  for (size_t i = 0; i < MAX_INFLIGHT; i++)
    if (!r->slots[i].used)
      return &r->slots[i];
  return NULL;
}

static int64_t backoff(const struct kw_responder_cfg *rc, int64_t attempts) {
  int64_t d = rc->retry_initial_us;
  for (int64_t i = 1; i < attempts && d < rc->retry_max_us; i++)
    d *= 2;
  return d < rc->retry_max_us ? d : rc->retry_max_us;
}

static void finish_attempt(struct slot *s, enum kw_revoke_outcome oc, const char *ref,
                           const char *detail) {
  struct kw_responder *r = s->r;
  const struct kw_responder_cfg *rc = &r->o.cfg->responder;
  const char *store = rc->stores[s->store].name;
  int64_t now = kw_time_now();
  char id[24], result[480];
  struct kw_revocation_update u = {.dry_run = -1, .attempts = s->attempts, .next_try_us = -1,
                                   .give_up_us = -1, .store_ref = ref, .result = result};

  snprintf(id, sizeof(id), "%lld", (long long)s->id);
  snprintf(result, sizeof(result), "%s", detail ? detail : kw_revoke_outcome_name(oc));
  if (oc == KW_REVOKE_RETRY && now >= s->give_up_us) {
    snprintf(result, sizeof(result), "gave up after %lld attempts (responder.give_up_after "
                                     "%s); last: %s",
             (long long)s->attempts, rc->give_up_after, detail ? detail : "?");
    oc = KW_REVOKE_FAIL;
  }
  switch (oc) {
  case KW_REVOKE_DONE:
  case KW_REVOKE_GONE:
    u.state = oc == KW_REVOKE_DONE ? "done" : "gone";
    oc == KW_REVOKE_DONE ? r->stats.done++ : r->stats.gone++;
    kw_log(r->o.log, KW_LOG_WARN, "key_revoked", "id", id, "key", s->prefix, "store", store,
           "result", result, NULL);
    break;
  case KW_REVOKE_RETRY:
    u.state = "queued";
    u.next_try_us = now + backoff(rc, s->attempts);
    r->stats.retried++;
    kw_log(r->o.log, KW_LOG_WARN, "revocation_retry", "id", id, "key", s->prefix, "store",
           store, "error", result, NULL);
    break;
  case KW_REVOKE_FAIL:
    u.state = "failed";
    r->stats.failed++;
    kw_log(r->o.log, KW_LOG_ERROR, "revocation_failed", "id", id, "key", s->prefix, "store",
           store, "error", result, NULL);
    break;
  }
  if (kw_store_revocation_update(r->o.store, s->id, &u) != 0)
    kw_log(r->o.log, KW_LOG_ERROR, "responder_store_failed", "error",
           kw_store_errmsg(r->o.store), NULL);
  if (oc == KW_REVOKE_FAIL) {
    char summary[600];
    snprintf(summary, sizeof(summary), "revocation of %s at %s failed: %s", s->prefix, store,
             result);
    raise_alert(r, "responder.revocation-failed", s->fp, s->prefix, summary, s->id, store);
  }
  if ((oc == KW_REVOKE_DONE || oc == KW_REVOKE_GONE) && r->o.on_revoked)
    r->o.on_revoked(s->fp, r->o.arg);
  persist(r);
}

static void on_attempt_call(const struct kw_revocation_call *c, void *arg) {
  struct slot *s = arg;
  s->r->stats.calls++;
  if (kw_store_revocation_call(s->r->o.store, s->id, c) != 0)
    kw_log(s->r->o.log, KW_LOG_ERROR, "responder_store_failed", "error",
           kw_store_errmsg(s->r->o.store), NULL);
}

static void on_attempt_done(const struct kw_revoke_result *res, void *arg) {
  struct slot *s = arg;
  struct kw_responder *r = s->r;
  if (!r->closing)
    finish_attempt(s, res->outcome, res->store_ref, res->detail);
  s->used = false; /* when closing, the row stays queued: retried after a restart */
  r->stats.inflight--;
}

static int on_due(const struct kw_revocation *v, void *ctx) {
  struct kw_responder *r = ctx;
  struct slot *s;
  int store, rc;

  if (slot_of(r, v->id) != NULL)
    return 0;
  if ((s = free_slot(r)) == NULL)
    return 1; /* all busy: the rest waits for the next tick */
  if (v->fp == NULL || (store = store_for(r->o.cfg, v->prefix, v->store)) < 0) {
    struct kw_revocation_update u = {.state = "failed", .dry_run = -1, .attempts = -1,
                                     .next_try_us = -1, .give_up_us = -1,
                                     .result = "its key store is no longer configured"};
    kw_store_revocation_update(r->o.store, v->id, &u);
    persist(r);
    return 0;
  }
  memset(s, 0, sizeof(*s));
  s->r = r;
  s->used = true;
  s->id = v->id;
  s->attempts = v->attempts + 1;
  s->give_up_us = v->give_up_us;
  s->store = (unsigned)store;
  memcpy(s->fp, v->fp, KW_FP_LEN);
  snprintf(s->prefix, sizeof(s->prefix), "%s", v->prefix ? v->prefix : "");
  struct kw_revoke_target t = {
      .id = v->id,
      .action = r->o.cfg->responder.stores[store].action,
      .prefix = s->prefix,
      .fp = s->fp,
      .store_ref = v->store_ref,
      .rule = v->rule,
  };
  struct kw_keystore *ks = &r->stores[store];
  r->stats.inflight++;
  if ((rc = ks->ops->revoke(ks->ctx, &t, on_attempt_call, on_attempt_done, s)) != 0) {
    char why[160];
    snprintf(why, sizeof(why), "cannot start the call: %s", kw_strerror(rc));
    r->stats.inflight--;
    finish_attempt(s, rc == -EAGAIN || rc == KW_ENOMEM ? KW_REVOKE_RETRY : KW_REVOKE_FAIL,
                   NULL, why);
    s->used = false;
  }
  return 0;
}

static void dispatch(struct kw_responder *r) {
  struct kw_revocations_query q = {.due_us = kw_time_now(), .limit = MAX_INFLIGHT * 2};
  if (kw_store_revocations(r->o.store, &q, on_due, r) != 0)
    kw_log(r->o.log, KW_LOG_ERROR, "responder_store_failed", "error",
           kw_store_errmsg(r->o.store), NULL);
}

static void tick(struct kw_responder *r) {
  if (r->closing || r->in_tick)
    return;
  r->in_tick = true;
  judge_decided(r);
  if (!r->unsynced)
    dispatch(r);
  r->in_tick = false;
}

static void on_timer(uv_timer_t *t) { tick(t->data); }

void kw_responder_committed(struct kw_responder *r) {
  if (r == NULL)
    return;
  r->unsynced = false;
  tick(r);
}

static int count_row(const struct kw_revocation *v, void *ctx) {
  (void)v;
  ++*(int64_t *)ctx;
  return 0;
}

bool kw_responder_idle(struct kw_responder *r) {
  int64_t n = 0;
  struct kw_revocations_query q = {.state = "open", .limit = 1};
  if (r->stats.inflight > 0 || r->unsynced)
    return false;
  if (kw_store_revocations(r->o.store, &q, count_row, &n) != 0)
    return true; /* cannot tell: the caller's own timeout decides */
  return n == 0;
}

void kw_responder_stats(const struct kw_responder *r, struct kw_responder_stats *out) {
  *out = r->stats;
}

/* ---- inventory ------------------------------------------------------------------------- */

struct inv {
  struct kw_responder *r;
  unsigned store;
};

static void on_inv_item(const struct kw_inventory_item *it, void *arg) {
  struct inv *iv = arg;
  if (!iv->r->closing && kw_store_inventory_put(iv->r->o.store, it, iv->r->inv_started_us) != 0)
    kw_log(iv->r->o.log, KW_LOG_ERROR, "responder_store_failed", "error",
           kw_store_errmsg(iv->r->o.store), NULL);
}

static void on_inv_call(const struct kw_revocation_call *c, void *arg) {
  struct inv *iv = arg;
  if (c->result && strcmp(c->result, "ok") != 0)
    kw_log(iv->r->o.log, KW_LOG_WARN, "inventory_call_failed", "store", c->store, "request",
           c->request, "result", c->result, NULL);
}

static void on_inv_done(const struct kw_revoke_result *res, void *arg) {
  struct inv *iv = arg;
  struct kw_responder *r = iv->r;
  const char *name = r->o.cfg->responder.stores[iv->store].name;
  if (!r->closing) {
    if (res->outcome == KW_REVOKE_DONE) {
      r->stats.listed++;
      kw_store_inventory_sweep(r->o.store, name, r->inv_started_us);
      if (r->o.on_inventory)
        r->o.on_inventory(r->o.arg);
      kw_log(r->o.log, KW_LOG_DEBUG, "inventory_synced", "store", name, NULL);
    } else {
      r->stats.list_failed++;
      kw_log(r->o.log, KW_LOG_WARN, "inventory_failed", "store", name, "error", res->detail,
             NULL);
    }
    persist(r);
  }
  r->inv_pending--;
  free(iv);
}

static void on_inv_timer(uv_timer_t *t) {
  struct kw_responder *r = t->data;
  if (r->closing || r->inv_pending > 0)
    return;
  r->inv_started_us = kw_time_now();
  for (size_t i = 0; i < r->nstores; i++) {
    struct inv *iv = calloc(1, sizeof(*iv));
    if (iv == NULL)
      return;
    iv->r = r;
    iv->store = (unsigned)i;
    r->inv_pending++;
    if (r->stores[i].ops->list(r->stores[i].ctx, on_inv_item, on_inv_call, on_inv_done, iv) !=
        0) { /* this store cannot list (http, command) */
      r->inv_pending--;
      r->stats.list_unsupported++;
      free(iv);
    }
  }
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static void noop(void *arg) { (void)arg; }

static void free_responder(struct kw_responder *r) {
  free_protect(r->protect, r->nprotect);
  free(r->stores);
  free(r);
}

static void on_handle_closed(uv_handle_t *h) {
  struct kw_responder *r = h->data;
  if (--r->handles > 0)
    return;
  void (*cb)(void *) = r->close_cb;
  void *arg = r->close_arg;
  free_responder(r);
  if (cb)
    cb(arg);
}

static void on_store_closed(void *arg) {
  struct kw_responder *r = arg;
  if (--r->opened > 0)
    return;
  uv_close((uv_handle_t *)&r->timer, on_handle_closed);
  uv_close((uv_handle_t *)&r->inv_timer, on_handle_closed);
}

static void close_stores(struct kw_responder *r) {
  size_t n = r->opened;
  if (n == 0) {
    r->opened = 1;
    on_store_closed(r);
    return;
  }
  for (size_t i = 0; i < n; i++)
    r->stores[i].ops->close(r->stores[i].ctx, on_store_closed, r);
}

static void on_http_closed(void *arg) {
  struct kw_responder *r = arg;
  r->http = NULL;
  close_stores(r);
}

int kw_responder_init(uv_loop_t *loop, const struct kw_responder_opts *o,
                      struct kw_responder **out, char *err, size_t errlen) {
  const struct kw_responder_cfg *rc = &o->cfg->responder;
  struct kw_responder *r = calloc(1, sizeof(*r));
  int e;

  *out = NULL;
  if (r == NULL)
    return KW_ENOMEM;
  r->loop = loop;
  r->o = *o;
  if ((e = parse_protect(o->cfg, &r->protect, &r->nprotect, err, errlen)) != 0)
    goto fail;
  /* Adapters keep &r->env and read env.http per call: the client is made last, after
   * the last thing that can fail, so a failure here leaves no handle to close. */
  r->env = (struct kw_keystore_env){.loop = loop, .fpr = o->fpr,
                                    .prefix_length = o->cfg->identity.prefix_length};
  if ((r->stores = calloc(rc->stores_count ? rc->stores_count : 1, sizeof(*r->stores))) ==
      NULL) {
    e = KW_ENOMEM;
    goto fail;
  }
  r->nstores = rc->stores_count;
  for (unsigned i = 0; i < rc->stores_count; i++) {
    if ((e = kw_keystore_open(&r->env, o->cfg, i, &r->stores[i], err, errlen)) != 0)
      goto fail;
    r->opened++;
  }
  if ((e = kw_httpc_init(loop, &r->http)) != 0)
    goto fail;
  r->env.http = r->http;
  uv_timer_init(loop, &r->timer);
  uv_timer_init(loop, &r->inv_timer);
  r->timer.data = r->inv_timer.data = r;
  r->handles = 2;
  uv_timer_start(&r->timer, on_timer, 0, TICK_MS);
  if (o->sync_inventory && rc->inventory_us > 0 && r->nstores > 0)
    uv_timer_start(&r->inv_timer, on_inv_timer, 100, (uint64_t)(rc->inventory_us / 1000));
  *out = r;
  return 0;
fail:
  /* Nothing was started, so adapters hold no call or process: they close at once. */
  for (size_t i = 0; i < r->opened; i++)
    r->stores[i].ops->close(r->stores[i].ctx, noop, NULL);
  free_responder(r);
  return e;
}

void kw_responder_close(struct kw_responder *r, void (*cb)(void *arg), void *arg) {
  if (r == NULL) {
    if (cb)
      cb(arg);
    return;
  }
  r->closing = true;
  r->close_cb = cb;
  r->close_arg = arg;
  uv_timer_stop(&r->timer);
  uv_timer_stop(&r->inv_timer);
  kw_httpc_close(r->http, on_http_closed, r);
}

/* ---- shadow ---------------------------------------------------------------------------- */

struct ids {
  int64_t *v;
  size_t n, cap;
};

static int collect_id(const struct kw_revocation *v, void *ctx) {
  struct ids *ids = ctx;
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? ids->cap * 2 : 64;
    int64_t *nv = realloc(ids->v, cap * sizeof(*nv));
    if (nv == NULL)
      return KW_ENOMEM;
    ids->v = nv;
    ids->cap = cap;
  }
  ids->v[ids->n++] = v->id;
  return 0;
}

struct shadow {
  const struct judge *j;
  void (*cb)(const struct kw_shadow_row *row, void *ctx);
  void *ctx;
  int err;
};

static int on_shadow_row(const struct kw_revocation *v, void *ctx) {
  struct shadow *sh = ctx;
  const struct kw_responder_cfg *rc = &sh->j->cfg->responder;
  char why[400];
  int store;
  /* Judged at its own event time, dry run off: what automation would have done. */
  const char *verdict = judge(sh->j, v, v->event_us, false, &store, why, sizeof(why));
  bool let = strcmp(verdict, "queued") == 0;
  struct kw_revocation_update u = {
      .state = let ? "queued" : verdict, .result = why,
      .store = store >= 0 ? rc->stores[store].name : NULL, .dry_run = -1, .attempts = -1,
      .next_try_us = -1, .give_up_us = -1};
  if (kw_store_revocation_update(sh->j->st, v->id, &u) != 0) {
    sh->err = KW_ESTORE;
    return 1;
  }
  struct kw_shadow_row row = {.rev = v, .verdict = let ? "revoke" : "suppressed",
                              .store = u.store, .why = why};
  sh->cb(&row, sh->ctx);
  return 0;
}

int kw_responder_shadow(struct kw_store *st, const struct kw_config *cfg,
                        void (*cb)(const struct kw_shadow_row *row, void *ctx), void *ctx,
                        char *err, size_t errlen) {
  struct kw_keysel *protect = NULL;
  size_t nprotect = 0;
  struct ids ids = {0};
  int r;

  if ((r = parse_protect(cfg, &protect, &nprotect, err, errlen)) != 0)
    goto out;
  struct judge j = {cfg, st, protect, nprotect, NULL, 0};
  struct shadow sh = {&j, cb, ctx, 0};
  struct kw_revocations_query all = {.state = "decided", .oldest_first = true};
  /* Ids first: each judgement writes (and the next one reads what it wrote). */
  if ((r = kw_store_revocations(st, &all, collect_id, &ids)) != 0) {
    snprintf(err, errlen, "database error: %s", kw_store_errmsg(st));
    goto out;
  }
  for (size_t i = 0; i < ids.n && sh.err == 0; i++) {
    struct kw_revocations_query one = {.id = ids.v[i]};
    if ((r = kw_store_revocations(st, &one, on_shadow_row, &sh)) != 0)
      break;
  }
  if (r == 0)
    r = sh.err;
  if (r != 0)
    snprintf(err, errlen, "database error: %s", kw_store_errmsg(st));
out:
  free(ids.v);
  free_protect(protect, nprotect);
  return r;
}
