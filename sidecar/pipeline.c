/* pipeline.c — see pipeline.h.
 *
 * Per line: one parse, at most one HMAC, one template, one store insert; no allocation in
 * steady state.  Source counters (lines, malformed, bytes) are accumulated here per
 * source and handed to the store just before each commit, so they land in the same
 * transaction as the calls they count.
 */
#include "pipeline.h"
#include "revocations.h"
#include "../analyzer/endpoint.h"
#include "../collector/keyid.h"
#include "alerts.h"
#include "dict.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_SEEN_MAX 10000000 /* distinct keys counted per run before counting stops */

struct kw_pipeline {
  const struct kw_config *cfg;
  struct kw_store *st;
  struct kw_keyid *kid;
  struct kw_dict *seen; /* fingerprints met by this run, for the summary */
  struct kw_pipeline_stats stats;
  uint32_t cur_source; /* source whose counters are pending */
  int64_t cur_lines, cur_malformed, cur_bytes;
  bool manual_commit;
  struct kw_ruleset *rules;
  struct kw_engine *engine;
  int err; /* a store error met inside a firing callback */
  char endpoint[KW_ENDPOINT_MAX + 1];
};

int kw_pipeline_create(const struct kw_config *cfg, struct kw_store *st,
                       const struct kw_fingerprint *fp, struct kw_pipeline **out) {
  struct kw_pipeline *p = calloc(1, sizeof(*p));
  int r;

  *out = NULL;
  if (p == NULL)
    return KW_ENOMEM;
  p->cfg = cfg;
  p->st = st;
  if ((r = kw_keyid_create(&cfg->identity, fp, &p->kid)) != 0 ||
      (r = kw_dict_create(KEYS_SEEN_MAX, &p->seen)) != 0) {
    kw_pipeline_destroy(p);
    return r;
  }
  *out = p;
  return 0;
}

/* Hands the pending source counters to the store's open batch. */
static int flush_counts(struct kw_pipeline *p) {
  int r = 0;
  if (p->cur_lines || p->cur_malformed || p->cur_bytes)
    r = kw_store_add_lines(p->st, p->cur_source, p->cur_lines, p->cur_malformed,
                           p->cur_bytes);
  p->cur_lines = p->cur_malformed = p->cur_bytes = 0;
  return r;
}

int kw_pipeline_commit(struct kw_pipeline *p) {
  int r = flush_counts(p);
  int c = kw_store_commit(p->st);
  return r ? r : c;
}

static int on_baseline(const void *blob, size_t len, void *ctx) {
  kw_engine_import(ctx, blob, len); /* another rule set's or a damaged blob is skipped */
  return 0;
}

static void on_revoked(const uint8_t *fp, void *ctx) {
  kw_engine_mark_revoked(ctx, fp); /* out of memory: that key goes unwatched */
}

static void on_key_attrs(const uint8_t *fp, const char *group, const char *permission,
                         void *ctx) {
  kw_engine_set_key_attrs(ctx, fp, group, permission); /* failing: only its group's or
                                                          permission's grants are lost */
}

int kw_pipeline_enable_rules(struct kw_pipeline *p, char *err, size_t errlen) {
  int r;
  if ((r = kw_ruleset_load(p->cfg->rules, p->cfg->rules_count, &p->rules, err, errlen)) != 0)
    return r;
  if ((r = kw_engine_create(p->rules, p->cfg, &p->engine)) != 0) {
    snprintf(err, errlen, "rules: %s", kw_strerror(r));
    return r;
  }
  if ((r = kw_store_baselines(p->st, on_baseline, p->engine)) != 0) {
    snprintf(err, errlen, "cannot read baselines: %s", kw_store_errmsg(p->st));
    return r;
  }
  /* Keys the responder revoked: revoked_key_use watches them. */
  if ((r = kw_store_revoked_keys(p->st, on_revoked, p->engine)) != 0) {
    snprintf(err, errlen, "cannot read revocations: %s", kw_store_errmsg(p->st));
    return r;
  }
  /* Key stores' groups and permissions: grants by groups/permissions apply to them. */
  if ((r = kw_store_key_attrs(p->st, on_key_attrs, p->engine)) != 0) {
    snprintf(err, errlen, "cannot read the key inventory: %s", kw_store_errmsg(p->st));
    return r;
  }
  return 0;
}

struct kw_engine *kw_pipeline_engine(struct kw_pipeline *p) { return p->engine; }

struct save {
  struct kw_store *st;
  int r;
};

static void on_export(const uint8_t *fp, const void *blob, size_t len, void *ctx) {
  struct save *s = ctx;
  if (s->r == 0)
    s->r = kw_store_baseline_save(s->st, fp, blob, len);
}

int kw_pipeline_save_baselines(struct kw_pipeline *p) {
  struct save s = {p->st, 0};
  if (p->engine != NULL)
    kw_engine_export(p->engine, on_export, &s);
  return s.r;
}

/* A rule fired for the call just stored: record it as an alert. */
static void on_fire(const struct kw_firing *f, const struct kw_rule *rule, void *ctx) {
  struct kw_pipeline *p = ctx;
  const char *sinks[16];
  size_t n = 0;
  int64_t id;
  bool created;
  int r;

  (void)rule;
  for (unsigned i = 0; i < p->cfg->sinks_count && n < 16; i++)
    if (f->severity >= kw_severity_parse(p->cfg->sinks[i].min_severity))
      sinks[n++] = p->cfg->sinks[i].name;
  p->stats.firings++;
  r = kw_store_alert(p->st, f, kw_store_last_call(p->st), sinks, n, &id, &created);
  if (r != 0 && p->err == 0)
    p->err = r;
  p->stats.alerts += created;
  p->stats.revocations += created && strcmp(f->action, "revoke") == 0;
}

void kw_pipeline_set_autocommit(struct kw_pipeline *p, bool on) { p->manual_commit = !on; }


void kw_pipeline_destroy(struct kw_pipeline *p) {
  if (p == NULL)
    return;
  kw_keyid_destroy(p->kid);
  kw_dict_destroy(p->seen);
  kw_engine_destroy(p->engine);
  kw_ruleset_destroy(p->rules);
  free(p);
}

/* Counts lines (0 or 1) and bytes of source_id into the pending counters. */
static int count(struct kw_pipeline *p, uint32_t source_id, int lines, size_t bytes, int bad) {
  int r = 0;
  if (source_id != p->cur_source) {
    r = flush_counts(p);
    p->cur_source = source_id;
  }
  p->cur_lines += lines;
  p->cur_bytes += (int64_t)bytes;
  p->cur_malformed += bad;
  p->stats.lines += (uint64_t)lines;
  p->stats.bytes += bytes;
  p->stats.malformed += (uint64_t)bad;
  return r;
}

void kw_pipeline_skip(struct kw_pipeline *p, uint32_t source_id, size_t consumed) {
  count(p, source_id, 1, consumed, 1);
}

void kw_pipeline_bytes(struct kw_pipeline *p, uint32_t source_id, size_t n) {
  count(p, source_id, 0, n, 0);
}

/* Identity, template, store: everything after parsing. */
static int store_rec(struct kw_pipeline *p, const struct kw_rec *rec, uint32_t source_id) {
  struct kw_call call;
  int64_t one;
  size_t n;
  int r;

  kw_keyid_apply(p->kid, rec, &call);
  n = kw_endpoint_template(call.path.p ? call.path.p : "", call.path.n, p->endpoint);
  call.endpoint = kw_str_make(p->endpoint, n);
  call.source_id = source_id;
  if ((r = kw_store_add_call(p->st, &call)) != 0)
    return r;
  p->stats.calls++;
  if (call.has_key) {
    p->stats.keyed++;
    if (!kw_dict_get(p->seen, call.fp, KW_FP_LEN, &one) &&
        kw_dict_put(p->seen, call.fp, KW_FP_LEN, 1) == 0)
      p->stats.keys++;
  }
  p->stats.last_ts_us = call.ts_us;
  if (p->engine != NULL) {
    kw_engine_call(p->engine, &call, on_fire, p);
    if (p->err != 0) {
      r = p->err;
      p->err = 0;
      return r;
    }
  }
  if (!p->manual_commit && kw_store_pending(p->st) >= p->cfg->ingest.batch_rows)
    return kw_pipeline_commit(p);
  return 0;
}

int kw_pipeline_line(struct kw_pipeline *p, struct kw_format *fmt, uint32_t source_id,
                     const char *line, size_t len, size_t consumed, char *why,
                     size_t whylen) {
  struct kw_rec rec;
  int r;

  r = fmt->ops->parse(fmt->ctx, line, len, &rec, why, whylen);
  if (r == KW_EPARSE) {
    int c = count(p, source_id, 1, consumed, 1);
    return c ? c : KW_EPARSE;
  }
  if (r != 0)
    return r;
  if ((r = count(p, source_id, 1, consumed, 0)) != 0)
    return r;
  return store_rec(p, &rec, source_id);
}

int kw_pipeline_rec(struct kw_pipeline *p, const struct kw_rec *rec, uint32_t source_id,
                    size_t bytes) {
  int r = count(p, source_id, 1, bytes, 0);
  return r ? r : store_rec(p, rec, source_id);
}

const struct kw_pipeline_stats *kw_pipeline_stats(const struct kw_pipeline *p) {
  return &p->stats;
}
