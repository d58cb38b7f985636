/* reviewjob.c — one permission review from the store (reviewjob.h). */
#include "reviewjob.h"

#include "dict.h"
#include "err.h"
#include "fingerprint.h"
#include "timeutil.h"
#include "usage.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int on_usage(const struct kw_key_usage *u, void *ctx) {
  struct kw_review *rv = ctx;
  /* The same shape, field by field: the store knows nothing of the analyzer's types. */
  struct kw_review_endpoint eps_small[16], *eps = eps_small;
  int r;
  if (u->nendpoints > 16 && (eps = calloc(u->nendpoints, sizeof(*eps))) == NULL)
    return KW_ENOMEM;
  for (size_t i = 0; i < u->nendpoints; i++)
    eps[i] = (struct kw_review_endpoint){
        .method = u->endpoints[i].method,
        .template = u->endpoints[i].template,
        .calls = u->endpoints[i].calls,
        .ok = u->endpoints[i].ok,
        .denied = u->endpoints[i].denied,
        .last_us = u->endpoints[i].last_us,
    };
  struct kw_review_key k = {
      .has_fp = u->has_fp,
      .prefix = u->prefix,
      .name = u->name,
      .store = u->store,
      .store_ref = u->store_ref,
      .group = u->group,
      .permission = u->permission,
      .created_us = u->created_us,
      .own = u->own,
      .first_us = u->first_us,
      .last_us = u->last_us,
      .last_before_us = u->last_before_us,
      .first_in_us = u->first_in_us,
      .clients = u->clients,
      .endpoints = eps,
      .nendpoints = u->nendpoints,
  };
  memcpy(k.fp, u->fp, KW_FP_LEN);
  r = kw_review_add(rv, &k);
  if (eps != eps_small)
    free(eps);
  return r;
}

/* ---- changes since the previous review ----------------------------------------------- */

/* A key's identity across reviews: its fingerprint, else its display prefix. */
static size_t ident(char *buf, size_t len, const char *fp_hex, const char *prefix) {
  int n = snprintf(buf, len, "%s", fp_hex && fp_hex[0] ? fp_hex : prefix ? prefix : "");
  return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static size_t row_ident(const struct kw_review_row *w, char *buf, size_t len) {
  char hex[2 * KW_FP_LEN + 1];
  if (w->has_fp)
    kw_fingerprint_hex(w->fp, hex);
  return ident(buf, len, w->has_fp ? hex : NULL, w->prefix);
}

static bool key_has_finding(json_t *k, const char *name) {
  size_t i;
  json_t *f;
  json_array_foreach(json_object_get(k, "findings"), i, f) {
    const char *n = json_string_value(json_object_get(f, "finding"));
    if (n && strcmp(n, name) == 0)
      return true;
  }
  return false;
}

static int push_change(struct kw_review_change **v, size_t *n, const char *prefix,
                       enum kw_finding_kind kind) {
  struct kw_review_change *nv = realloc(*v, (*n + 1) * sizeof(*nv));
  if (nv == NULL)
    return KW_ENOMEM;
  *v = nv;
  snprintf(nv[*n].key_prefix, sizeof(nv[*n].key_prefix), "%s", prefix ? prefix : "");
  nv[*n].kind = kind;
  (*n)++;
  return 0;
}

/* Both reviews' keys are indexed by identity (10,000 keys each: no pairwise search). */
static int diff(struct kw_review_job *j, const char *prev_doc, int64_t prev_us) {
  json_t *prev = json_loads(prev_doc, 0, NULL), *keys = json_object_get(prev, "keys");
  struct kw_dict *prev_ix = NULL, *cur_ix = NULL;
  const struct kw_review_row *rows;
  size_t n, i, len;
  json_t *k;
  char id[64];
  int64_t at;
  int r = KW_ENOMEM;

  if (!json_is_array(keys)) {
    json_decref(prev);
    return 0; /* unreadable: no comparison rather than a wrong one */
  }
  rows = kw_review_rows(j->review, &n);
  if (kw_dict_create(json_array_size(keys) + 16, &prev_ix) != 0 ||
      kw_dict_create(n + 16, &cur_ix) != 0)
    goto out;
  json_array_foreach(keys, i, k) {
    len = ident(id, sizeof(id), json_string_value(json_object_get(k, "fingerprint")),
                json_string_value(json_object_get(k, "key_prefix")));
    if (kw_dict_put(prev_ix, id, len, (int64_t)i) != 0)
      goto out;
  }
  for (i = 0; i < n; i++)
    if (kw_dict_put(cur_ix, id, row_ident(&rows[i], id, sizeof(id)), (int64_t)i) != 0)
      goto out;
  j->has_diff = true;
  j->diff.previous_us = prev_us;
  r = 0;
  for (i = 0; i < n && r == 0; i++) {
    const struct kw_review_row *w = &rows[i];
    json_t *pk = kw_dict_get(prev_ix, id, row_ident(w, id, sizeof(id)), &at)
                     ? json_array_get(keys, (size_t)at)
                     : NULL;
    if (pk == NULL) {
      void *nk = realloc(j->diff.new_keys, (j->diff.nnew_keys + 1) * sizeof(*j->diff.new_keys));
      if (nk == NULL) {
        r = KW_ENOMEM;
        break;
      }
      j->diff.new_keys = nk;
      snprintf(j->diff.new_keys[j->diff.nnew_keys++], KW_PREFIX_MAX + 1, "%s",
               w->prefix ? w->prefix : "");
    }
    for (size_t f = 0; f < w->nfindings && r == 0; f++) {
      if (pk != NULL && key_has_finding(pk, kw_finding_name(w->findings[f].kind)))
        j->diff.still_open++;
      else
        r = push_change(&j->diff.new_findings, &j->diff.nnew, w->prefix, w->findings[f].kind);
    }
  }
  /* Findings of the previous review no longer raised (for keys still reviewed or not). */
  json_array_foreach(keys, i, k) {
    const char *prefix = json_string_value(json_object_get(k, "key_prefix"));
    len = ident(id, sizeof(id), json_string_value(json_object_get(k, "fingerprint")), prefix);
    const struct kw_review_row *now = kw_dict_get(cur_ix, id, len, &at) ? &rows[at] : NULL;
    size_t fi;
    json_t *f;
    if (r != 0)
      break;
    json_array_foreach(json_object_get(k, "findings"), fi, f) {
      const char *name = json_string_value(json_object_get(f, "finding"));
      bool still = false;
      for (size_t y = 0; now && y < now->nfindings && !still; y++)
        still = name && strcmp(kw_finding_name(now->findings[y].kind), name) == 0;
      for (int kind = 0; !still && name && kind < KW_FIND_COUNT && r == 0; kind++)
        if (strcmp(kw_finding_name(kind), name) == 0)
          r = push_change(&j->diff.resolved, &j->diff.nresolved, prefix, kind);
    }
  }
out:
  kw_dict_destroy(prev_ix);
  kw_dict_destroy(cur_ix);
  json_decref(prev);
  return r;
}

/* ---- the job --------------------------------------------------------------------------- */

void kw_review_job_free(struct kw_review_job *j) {
  if (j == NULL)
    return;
  kw_review_destroy(j->review);
  free(j->diff.new_keys);
  free(j->diff.new_findings);
  free(j->diff.resolved);
  free(j);
}

int kw_review_job_run(struct kw_store *st, const struct kw_ruleset *rs,
                      const struct kw_review_opts *o, const char *key, bool save,
                      struct kw_review_job **out, char *err, size_t errlen) {
  struct kw_review_job *j = calloc(1, sizeof(*j));
  char *prev = NULL, *doc = NULL;
  size_t len = 0;
  int64_t prev_us = 0;
  int r;

  *out = NULL;
  if (j == NULL)
    return KW_ENOMEM;
  j->generated_us = kw_time_now();
  if ((r = kw_review_create(rs, o, &j->review)) != 0) {
    snprintf(err, errlen, r == KW_ETOOLONG ? "the rule packs define more than 64 scopes"
                                           : "out of memory");
    goto out;
  }
  if ((r = kw_store_usage(st, o->since_us, o->until_us, key, on_usage, j->review)) != 0) {
    snprintf(err, errlen, "cannot read usage: %s",
             r == KW_ENOMEM ? "out of memory" : kw_store_errmsg(st));
    goto out;
  }
  if (key == NULL) {
    r = kw_store_review_load(st, 0, j->generated_us + 1, &prev, &prev_us);
    if (r == 0 && (r = diff(j, prev, prev_us)) != 0) {
      snprintf(err, errlen, "out of memory");
      goto out;
    }
    if (r == KW_ENOTFOUND)
      r = 0;
    if (r != 0) {
      snprintf(err, errlen, "cannot read the previous review: %s", kw_store_errmsg(st));
      goto out;
    }
  }
  if (save && key == NULL) {
    size_t counts[KW_FIND_COUNT], total = 0, nrows;
    FILE *m = open_memstream(&doc, &len);
    if (m == NULL) {
      r = KW_ENOMEM;
      snprintf(err, errlen, "out of memory");
      goto out;
    }
    kw_review_write(m, KW_REPORT_JSON, j->review, j->has_diff ? &j->diff : NULL,
                    j->generated_us);
    if (fclose(m) != 0) {
      r = KW_ENOMEM;
      snprintf(err, errlen, "out of memory");
      goto out;
    }
    kw_review_counts(j->review, counts);
    for (int i = 0; i < KW_FIND_COUNT; i++)
      total += counts[i];
    kw_review_rows(j->review, &nrows);
    if ((r = kw_store_review_save(st, j->generated_us, o->since_us, o->until_us,
                                  (int64_t)nrows, (int64_t)total, doc, &j->id)) != 0) {
      snprintf(err, errlen, "cannot store the review: %s", kw_store_errmsg(st));
      goto out;
    }
  }
  *out = j;
  j = NULL;
out:
  free(prev);
  free(doc);
  kw_review_job_free(j);
  return r;
}
