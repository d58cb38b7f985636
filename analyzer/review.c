/* review.c — the least-privilege review (review.h).
 *
 * Scopes are bits (scope i of the ruleset = bit i).  What scopes cover an endpoint
 * template is computed once per distinct "METHOD template" and cached: 10,000 keys share
 * a few hundred templates, so matching patterns is not per key.
 *
 * Per key:  granted = ∪ scopes of the grants that apply (by key, group or permission)
 *           used    = granted scopes covering an endpoint it called in the period
 *           outside = calls to endpoints no granted scope covers
 * The recommendation covers the endpoints the key called with the fewest scopes: first
 * among the grants a key store can give (a group, a permission — what an admin can
 * actually change), else as a set of scopes chosen greedily (most uncovered calls first).
 */
#include "review.h"

#include "../sidecar/dict.h"
#include "../sidecar/err.h"
#include "../sidecar/timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCOPES 64
#define DAY_US (86400LL * 1000000)

struct kw_review {
  const struct kw_ruleset *rs;
  struct kw_review_opts o;
  size_t nscopes;            /* min(rs->nscopes, 64) */
  uint64_t all;              /* every scope */
  struct kw_dict *cover;     /* "METHOD template" → scopes covering it */
  struct kw_review_row *rows;
  size_t n, cap;
};

static const char *const finding_names[KW_FIND_COUNT] = {
    [KW_FIND_UNUSED] = "unused",
    [KW_FIND_DORMANT_WOKE] = "dormant_woke",
    [KW_FIND_OVER_PRIVILEGED] = "over_privileged",
    [KW_FIND_OUTSIDE_GRANT] = "outside_grant",
    [KW_FIND_ROTATION_DUE] = "rotation_due",
    [KW_FIND_MANY_SOURCES] = "many_sources",
};

const char *kw_finding_name(enum kw_finding_kind k) {
  return k >= 0 && k < KW_FIND_COUNT ? finding_names[k] : "?";
}

void kw_review_opts_default(struct kw_review_opts *o, int64_t now_us) {
  memset(o, 0, sizeof(*o));
  o->until_us = now_us;
  o->since_us = now_us - 30 * DAY_US;
  o->unused_us = 30 * DAY_US;
  o->dormant_us = 30 * DAY_US;
  o->max_age_us = 365 * DAY_US;
  o->max_sources = 10;
  o->severity[KW_FIND_UNUSED] = 2;          /* medium */
  o->severity[KW_FIND_DORMANT_WOKE] = 3;    /* high */
  o->severity[KW_FIND_OVER_PRIVILEGED] = 2; /* medium */
  o->severity[KW_FIND_OUTSIDE_GRANT] = 3;   /* high */
  o->severity[KW_FIND_ROTATION_DUE] = 1;    /* low */
  o->severity[KW_FIND_MANY_SOURCES] = 2;    /* medium */
}

int kw_review_create(const struct kw_ruleset *rs, const struct kw_review_opts *o,
                     struct kw_review **out) {
  struct kw_review *r = calloc(1, sizeof(*r));
  *out = NULL;
  if (r == NULL)
    return KW_ENOMEM;
  r->rs = rs;
  r->o = *o;
  r->nscopes = rs->nscopes < MAX_SCOPES ? rs->nscopes : MAX_SCOPES;
  r->all = r->nscopes == 64 ? ~0ull : (1ull << r->nscopes) - 1;
  if (kw_dict_create(1u << 20, &r->cover) != 0) {
    free(r);
    return KW_ENOMEM;
  }
  *out = r;
  return rs->nscopes > MAX_SCOPES ? KW_ETOOLONG : 0;
}

static void free_strv(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void free_row(struct kw_review_row *w) {
  free(w->prefix), free(w->name), free(w->store), free(w->store_ref), free(w->group);
  free(w->permission), free(w->outside_example), free(w->recommendation), free(w->why);
  free_strv(w->granted, w->ngranted);
  free_strv(w->unused, w->nunused);
  free(w->used);
  free(w->findings);
}

void kw_review_destroy(struct kw_review *r) {
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n; i++)
    free_row(&r->rows[i]);
  free(r->rows);
  kw_dict_destroy(r->cover);
  free(r);
}

const struct kw_review_row *kw_review_rows(const struct kw_review *r, size_t *n) {
  *n = r->n;
  return r->rows;
}

const struct kw_review_opts *kw_review_options(const struct kw_review *r) { return &r->o; }

void kw_review_counts(const struct kw_review *r, size_t counts[KW_FIND_COUNT]) {
  memset(counts, 0, sizeof(size_t) * KW_FIND_COUNT);
  for (size_t i = 0; i < r->n; i++)
    for (size_t j = 0; j < r->rows[i].nfindings; j++)
      counts[r->rows[i].findings[j].kind]++;
}

/* ---- scopes ------------------------------------------------------------------------- */

static uint64_t covering(struct kw_review *r, const char *method, const char *tmpl) {
  char key[1024];
  int64_t v;
  uint64_t m = 0;
  int n = snprintf(key, sizeof(key), "%s %s", method, tmpl);
  bool cacheable = n > 0 && (size_t)n < sizeof(key);
  if (cacheable && kw_dict_get(r->cover, key, (size_t)n, &v))
    return (uint64_t)v;
  for (size_t s = 0; s < r->nscopes; s++) {
    const struct kw_scope *sc = &r->rs->scopes[s];
    for (size_t p = 0; p < sc->n; p++) {
      if (kw_pattern_match(&sc->patterns[p], method, strlen(method), tmpl, strlen(tmpl))) {
        m |= 1ull << s;
        break;
      }
    }
  }
  if (cacheable && kw_dict_put(r->cover, key, (size_t)n, (int64_t)m) == KW_ETOOLONG)
    kw_dict_clear(r->cover); /* a cache: start over rather than fail */
  return m;
}

/* The scopes a grant gives (its names resolved; "*" = all). */
static uint64_t grant_mask(const struct kw_review *r, const struct kw_grant *g) {
  uint64_t m = 0;
  for (size_t i = 0; i < g->nscopes; i++) {
    if (strcmp(g->scopes[i], "*") == 0)
      return r->all;
    for (size_t s = 0; s < r->nscopes; s++)
      if (strcmp(g->scopes[i], r->rs->scopes[s].name) == 0)
        m |= 1ull << s;
  }
  return m;
}

static int popcount(uint64_t m) { return __builtin_popcountll(m); }

/* Names of the scopes in m, ", "-joined, into buf. */
static void mask_names(const struct kw_review *r, uint64_t m, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t s = 0; s < r->nscopes && o < len; s++)
    if (m & (1ull << s))
      o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", r->rs->scopes[s].name);
}

static int mask_strv(const struct kw_review *r, uint64_t m, char ***out, size_t *n) {
  *n = 0;
  if ((*out = calloc((size_t)popcount(m) + 1, sizeof(char *))) == NULL)
    return KW_ENOMEM;
  for (size_t s = 0; s < r->nscopes; s++)
    if ((m & (1ull << s)) && ((*out)[(*n)++] = strdup(r->rs->scopes[s].name)) == NULL)
      return KW_ENOMEM;
  return 0;
}

/* Whether every endpoint of the period (its covering set in cov[i]) has a scope in m;
 * endpoints no scope covers are left out (nothing can grant them). */
static bool covers(uint64_t m, const uint64_t *cov, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (cov[i] != 0 && (cov[i] & m) == 0)
      return false;
  return true;
}

/* Greedy set cover: the scope covering the most still-uncovered calls, until all are. */
static uint64_t greedy(const struct kw_review *r, const uint64_t *cov, const int64_t *calls,
                       size_t n) {
  uint64_t chosen = 0;
  for (;;) {
    int64_t best_calls = 0;
    size_t best = 0;
    for (size_t s = 0; s < r->nscopes; s++) {
      int64_t c = 0;
      if (chosen & (1ull << s))
        continue;
      for (size_t i = 0; i < n; i++)
        if ((cov[i] & chosen) == 0 && (cov[i] & (1ull << s)))
          c += calls[i];
      if (c > best_calls)
        best_calls = c, best = s;
    }
    if (best_calls == 0)
      return chosen;
    chosen |= 1ull << best;
  }
}

/* ---- one key -------------------------------------------------------------------------- */

static char *dup(const char *s) { return s ? strdup(s) : NULL; }

static int add_finding(struct kw_review_row *w, const struct kw_review *r,
                       enum kw_finding_kind k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int add_finding(struct kw_review_row *w, const struct kw_review *r,
                       enum kw_finding_kind k, const char *fmt, ...) {
  struct kw_finding *nf = realloc(w->findings, (w->nfindings + 1) * sizeof(*nf));
  va_list ap;
  if (nf == NULL)
    return KW_ENOMEM;
  w->findings = nf;
  nf[w->nfindings].kind = k;
  nf[w->nfindings].severity = r->o.severity[k];
  va_start(ap, fmt);
  vsnprintf(nf[w->nfindings].text, sizeof(nf->text), fmt, ap);
  va_end(ap);
  w->nfindings++;
  return 0;
}

static int cmp_use(const void *a, const void *b) {
  const struct kw_scope_use *x = a, *y = b;
  return (x->calls < y->calls) - (x->calls > y->calls);
}

static const char *day(int64_t us, char *buf, size_t len) {
  kw_time_format(us, buf, len);
  if (strlen(buf) > 10)
    buf[10] = '\0';
  return buf;
}

/* The recommendation for a key that made calls. */
static int recommend(struct kw_review *r, struct kw_review_row *w, const struct kw_review_key *k,
                     uint64_t granted, const uint64_t *cov, const int64_t *calls, size_t n) {
  const struct kw_ruleset *rs = r->rs;
  const struct kw_grant *best = NULL;
  const char *best_name = NULL, *kind = NULL;
  uint64_t best_mask = 0;
  size_t uncatalogued = 0;
  char names[512], why[700];

  for (size_t i = 0; i < n; i++)
    uncatalogued += cov[i] == 0;
  /* What a key store can give: a group (Metabase) or a permission (SeaTable). */
  for (size_t g = 0; g < rs->ngrants; g++) {
    const struct kw_grant *gr = &rs->grants[g];
    uint64_t m = grant_mask(r, gr);
    /* A store that gives permissions (SeaTable) is changed by permission, one that
     * gives groups (Metabase) by group. */
    bool by_perm = k->permission != NULL;
    const char *const *vals = by_perm ? (const char *const *)gr->permissions
                                      : (const char *const *)gr->groups;
    size_t nv = by_perm ? gr->npermissions : gr->ngroups;
    if ((k->group == NULL && k->permission == NULL) || nv == 0 || !covers(m, cov, n))
      continue;
    if (best == NULL || popcount(m) < popcount(best_mask)) {
      best = gr, best_mask = m, best_name = vals[0];
      kind = by_perm ? "permission" : "group";
    }
  }
  if (best != NULL) {
    const char *current = k->permission ? k->permission : k->group;
    mask_names(r, best_mask, names, sizeof(names));
    if (strcmp(current, best_name) == 0 || best_mask == granted) {
      w->recommendation = strdup("keep");
      snprintf(why, sizeof(why), "its %s %s is the smallest that covers what it did (%s)", kind,
               current, names);
    } else {
      char rec[200];
      snprintf(rec, sizeof(rec), "%s %s", kind, best_name);
      w->recommendation = strdup(rec);
      /* its grant may be larger, smaller (calls outside it) or none the packs know */
      snprintf(why, sizeof(why), "%s %s (%s) covers every call it made; its %s %s %s", kind,
               best_name, names, kind, current,
               granted == 0                 ? "has no grant in the rule packs"
               : (best_mask & ~granted) != 0 ? "does not cover them all"
                                             : "grants more");
    }
  } else {
    uint64_t need = greedy(r, cov, calls, n);
    mask_names(r, need, names, sizeof(names));
    if (need == 0) {
      w->recommendation = strdup("keep");
      snprintf(why, sizeof(why), "no scope of the loaded catalogues covers its calls");
    } else if (need == granted) {
      w->recommendation = strdup("keep");
      snprintf(why, sizeof(why), "its grant (%s) is the smallest that covers what it did",
               names);
    } else {
      char rec[600];
      snprintf(rec, sizeof(rec), "scopes %s", names);
      w->recommendation = strdup(rec);
      snprintf(why, sizeof(why), "%s cover%s every call it made%s", names,
               popcount(need) == 1 ? "s" : "", w->grant_known ? "" : " (it has no grant yet)");
    }
  }
  if (uncatalogued > 0 && strlen(why) + 80 < sizeof(why))
    snprintf(why + strlen(why), sizeof(why) - strlen(why),
             "; %zu endpoint%s no scope covers", uncatalogued, uncatalogued == 1 ? "" : "s");
  w->why = strdup(why);
  return w->recommendation && w->why ? 0 : KW_ENOMEM;
}

int kw_review_add(struct kw_review *r, const struct kw_review_key *k) {
  struct kw_review_row *w;
  uint64_t granted = 0, used = 0;
  uint64_t *cov = NULL;
  int64_t *calls = NULL, top_outside = 0;
  char buf[40], names[512];
  int e = KW_ENOMEM;

  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 256;
    struct kw_review_row *nr = realloc(r->rows, cap * sizeof(*nr));
    if (nr == NULL)
      return KW_ENOMEM;
    r->rows = nr, r->cap = cap;
  }
  w = &r->rows[r->n++];
  memset(w, 0, sizeof(*w));
  w->has_fp = k->has_fp;
  memcpy(w->fp, k->fp, KW_FP_LEN);
  w->prefix = dup(k->prefix), w->name = dup(k->name), w->store = dup(k->store);
  w->store_ref = dup(k->store_ref), w->group = dup(k->group), w->permission = dup(k->permission);
  if ((k->prefix && !w->prefix) || (k->name && !w->name) || (k->store && !w->store) ||
      (k->store_ref && !w->store_ref) || (k->group && !w->group) ||
      (k->permission && !w->permission))
    goto out;
  w->created_us = k->created_us, w->first_us = k->first_us, w->last_us = k->last_us;
  w->clients = k->clients;

  /* granted */
  for (size_t g = 0; g < r->rs->ngrants; g++) {
    const struct kw_grant *gr = &r->rs->grants[g];
    if (kw_grant_applies(gr, k->has_fp ? k->fp : NULL, k->prefix, k->name, k->group,
                         k->permission)) {
      w->grant_known = true;
      granted |= grant_mask(r, gr);
    }
  }
  if (mask_strv(r, granted, &w->granted, &w->ngranted) != 0)
    goto out;

  /* used / outside */
  if ((cov = calloc(k->nendpoints + 1, sizeof(*cov))) == NULL ||
      (calls = calloc(k->nendpoints + 1, sizeof(*calls))) == NULL ||
      (w->used = calloc((size_t)r->nscopes + 1, sizeof(*w->used))) == NULL)
    goto out;
  for (size_t i = 0; i < k->nendpoints; i++) {
    const struct kw_review_endpoint *ep = &k->endpoints[i];
    uint64_t c = covering(r, ep->method, ep->template);
    uint64_t mine = w->grant_known ? c & granted : c;
    cov[i] = c;
    calls[i] = ep->calls;
    w->calls += ep->calls;
    if (ep->calls <= 0)
      continue;
    /* Outside the grant: a catalogued endpoint no granted scope covers.  One no scope
     * covers at all cannot be judged (it is named in the recommendation's why). */
    if (mine == 0 && c != 0 && w->grant_known) {
      w->outside_calls += ep->calls;
      w->outside_ok += ep->ok;
      if (ep->calls > top_outside) {
        char ex[600];
        top_outside = ep->calls;
        snprintf(ex, sizeof(ex), "%s %s", ep->method, ep->template);
        free(w->outside_example);
        if ((w->outside_example = strdup(ex)) == NULL)
          goto out;
      }
    }
    used |= mine;
    for (size_t s = 0; s < r->nscopes; s++) {
      if (!(mine & (1ull << s)))
        continue;
      size_t j = 0;
      while (j < w->nused && w->used[j].scope != r->rs->scopes[s].name)
        j++;
      if (j == w->nused) {
        w->used[j].scope = r->rs->scopes[s].name;
        w->nused++;
      }
      w->used[j].calls += ep->calls;
      if (ep->last_us > w->used[j].last_us)
        w->used[j].last_us = ep->last_us;
    }
  }
  qsort(w->used, w->nused, sizeof(*w->used), cmp_use);
  if (mask_strv(r, w->grant_known ? granted & ~used : 0, &w->unused, &w->nunused) != 0)
    goto out;

  /* findings */
  const struct kw_review_opts *o = &r->o;
  /* keywatch's own admin key: it needs its rights (and no traffic) to revoke keys; only
   * its age is judged. */
  bool own = k->own;
  bool unused = !own && (k->last_us == 0 || k->last_us < o->until_us - o->unused_us);
  if (unused) {
    if (k->last_us == 0)
      e = add_finding(w, r, KW_FIND_UNUSED, "never used in the traffic keywatch saw");
    else
      e = add_finding(w, r, KW_FIND_UNUSED, "no call since %s", day(k->last_us, buf, sizeof(buf)));
    if (e != 0)
      goto out;
  }
  if (!own && k->first_in_us > 0 && k->last_before_us > 0 &&
      k->first_in_us - k->last_before_us >= o->dormant_us) {
    char b2[40];
    if ((e = add_finding(w, r, KW_FIND_DORMANT_WOKE, "silent from %s to %s (%lld days), then used",
                         day(k->last_before_us, buf, sizeof(buf)), day(k->first_in_us, b2, sizeof(b2)),
                         (long long)((k->first_in_us - k->last_before_us) / DAY_US))) != 0)
      goto out;
  }
  if (!own && !unused && w->grant_known && w->nunused > 0) {
    mask_names(r, granted & ~used, names, sizeof(names));
    if (k->group && granted == r->all && r->nscopes > 1)
      e = add_finding(w, r, KW_FIND_OVER_PRIVILEGED,
                      "in group %s (every scope) but never used %s", k->group, names);
    else if (k->permission)
      e = add_finding(w, r, KW_FIND_OVER_PRIVILEGED, "permission %s, but never used %s",
                      k->permission, names);
    else
      e = add_finding(w, r, KW_FIND_OVER_PRIVILEGED, "granted %s it never used", names);
    if (e != 0)
      goto out;
  }
  if (!own && w->outside_calls > 0 &&
      (e = add_finding(w, r, KW_FIND_OUTSIDE_GRANT,
                       "%lld call%s outside its grant (%lld succeeded), e.g. %s",
                       (long long)w->outside_calls, w->outside_calls == 1 ? "" : "s",
                       (long long)w->outside_ok, w->outside_example)) != 0)
    goto out;
  int64_t born = k->created_us > 0 ? k->created_us : k->first_us;
  if (o->max_age_us > 0 && born > 0 && o->until_us - born > o->max_age_us &&
      (e = add_finding(w, r, KW_FIND_ROTATION_DUE, "%lld days old (%s since %s); rotate it",
                       (long long)((o->until_us - born) / DAY_US),
                       k->created_us > 0 ? "created" : "in use",
                       day(born, buf, sizeof(buf)))) != 0)
    goto out;
  if (!own && o->max_sources > 0 && k->clients > (int64_t)o->max_sources &&
      (e = add_finding(w, r, KW_FIND_MANY_SOURCES,
                       "used from %lld client addresses (more than %u)", (long long)k->clients,
                       o->max_sources)) != 0)
    goto out;

  /* recommendation */
  e = KW_ENOMEM;
  if (own) {
    char why[200];
    snprintf(why, sizeof(why), "keywatch's own admin key at %s: revoking keys needs its rights",
             k->store ? k->store : "its key store");
    w->recommendation = strdup("keep");
    w->why = strdup(why);
    if (w->recommendation == NULL || w->why == NULL)
      goto out;
    e = 0;
  } else if (unused) {
    w->recommendation = strdup("delete");
    w->why = strdup(k->last_us == 0 ? "never used" : "not used within the unused period");
    if (w->recommendation == NULL || w->why == NULL)
      goto out;
    e = 0;
  } else {
    e = recommend(r, w, k, w->grant_known ? granted : 0, cov, calls, k->nendpoints);
  }
out:
  free(cov);
  free(calls);
  if (e != 0) { /* the review stays as it was: no half-reviewed row */
    free_row(w);
    r->n--;
  }
  return e;
}
