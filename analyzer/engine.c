/* engine.c — incremental rule evaluation (see engine.h).
 *
 * Layout of one subject's state (a key, or a client address):
 *
 *   struct subj | slot of rule 0 | slot of rule 1 | …        (fixed size per engine)
 *
 * Each slot starts with a struct rhead (throttling, explain figures) followed by the
 * type's own state.  Slots are sized once at creation (slot_size()); subjects live in one
 * growing array, found through a kw_dict (fingerprint or address bytes → index).
 *
 * Windows are rings of NB buckets of window/NB each, advanced by event time; a call older
 * than the ring is not counted (logs are nearly ordered).  Sets (networks, endpoints,
 * addresses) are small fixed arrays of 32-bit hashes; a set that fills up stops firing
 * for that key ("saturated", shown by explain) rather than growing without bound.
 *
 * scope_violation: a key's slot holds the bit set of the scopes its grants give it (one
 * bit per scope of the rule set, e->words 64-bit words), computed when the key is first
 * seen, when a baseline is imported, and again when kw_engine_set_key_attrs() tells its
 * key-store group or permission.  Those attributes live in a bounded map (fingerprint →
 * index into e->attr), so they also apply to keys seen later.
 */
#include "engine.h"
#include "../sidecar/dict.h"
#include "../sidecar/err.h"
#include "../sidecar/escape.h"
#include "../sidecar/fingerprint.h"
#include "../sidecar/timeutil.h"

#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NB 30              /* buckets per window */
#define NETS 16            /* new_source: networks learned per key */
#define EPS 32             /* new_endpoint: endpoints learned per key */
#define FANOUT_MAX 32      /* ip_fanout: addresses tracked per key */
#define ENUM_BITS 512      /* enumeration: linear-counting bitmap */
#define MAX_RULES 64
#define MAX_SUBJECTS 2000000
#define REFIRE_US 60000000 /* a matching rule fires at most once a minute per subject */
#define BLOB_MAGIC 0x6b77626c31ULL /* "kwbl1" */

struct rhead {
  int64_t last_fire, first_fire, best_us;
  float best_ratio, best_obs, best_thr;
  uint32_t fires, evals;
  uint8_t saturated, pad[3];
};

struct win {
  int64_t head; /* index of the newest bucket; 0 = unused */
  uint64_t sum;
  uint32_t b[NB];
};

struct s_rate { /* rate_spike, volume */
  struct rhead h;
  struct win w;
  float peak;      /* the baseline: the highest window sum while learning, then as below */
  float day_peak;  /* highest sum today that stayed under the threshold */
  float prev_peak; /* yesterday's day_peak: applied at the next day change */
  int64_t day;     /* event day of day_peak */
};

struct s_count { /* auth_failures */
  struct rhead h;
  struct win w;
};

struct s_set { /* new_source, new_endpoint */
  struct rhead h;
  uint32_t n;
  uint32_t v[EPS];
};

struct s_fanout {
  struct rhead h;
  uint32_t hash[FANOUT_MAX];
  uint32_t minute[FANOUT_MAX];
};

#define ENUM_TEMPLATES 4 /* templates tracked at once per key */

struct s_enum {
  struct rhead h;
  int64_t window;
  uint32_t tmpl[ENUM_TEMPLATES]; /* 0: free */
  uint64_t bits[ENUM_TEMPLATES][ENUM_BITS / 64];
};

struct s_hours {
  struct rhead h;
  uint32_t hours[24];
  uint32_t total;
  int64_t hour;         /* current hour index (event time) */
  uint32_t in_hour;     /* anomalous calls in it */
};

struct s_flags { /* revoked_key_use, canary, match */
  struct rhead h;
  uint8_t flagged;
};

struct s_scope { /* scope_violation */
  struct rhead h;
  uint8_t has_grant, pad[7];
  uint64_t granted[]; /* bit k: scope k of the rule set (e->words words) */
};

struct key_attrs { /* what the key's store says of it (kw_engine_set_key_attrs) */
  char *group, *permission; /* NULL: unknown */
};

struct subj {
  uint64_t magic, signature;
  uint8_t fp[KW_FP_LEN];
  char prefix[KW_PREFIX_MAX + 1];
  char subject[48]; /* address text for address subjects */
  uint8_t is_addr, named;
  char name[64];
  int64_t first_seen, last_seen;
  uint64_t calls;
  uint64_t applies; /* bit i: rule i selects this subject */
};

struct kw_engine {
  const struct kw_ruleset *rs;
  bool addr_rules_keyed, addr_rules_anon; /* address subjects needed for keyed/anonymous calls */
  struct kw_dict *selected; /* (rule, method + template) → endpoint pattern verdict */
  const struct kw_config *cfg;
  size_t slot_off[MAX_RULES];
  size_t state_size;
  struct kw_dict *keys, *addrs;
  struct kw_dict *revoked; /* fingerprints the responder revoked (revoked_key_use) */
  uint64_t untracked;      /* calls not evaluated for a key or address: no state for it */
  size_t words;            /* 64-bit words of a scope bit set */
  uint64_t *grant_masks;   /* per grant: the scopes it gives (ngrants × words) */
  uint64_t *want_masks;    /* per rule: the scopes it judges (n × words) */
  bool scope_rules;        /* some rule is a scope_violation */
  struct kw_dict *attrs;   /* fingerprint → index into attr */
  struct key_attrs *attr;
  size_t nattr, attr_cap;
  char *states; /* nsubj × state_size */
  size_t nsubj, cap;
  char summary[512];
  char *details;
  size_t details_len;
  FILE *dj; /* open_memstream on details */
};

/* ---- helpers ----------------------------------------------------------------------- */

static size_t slot_size(enum kw_rule_type t, size_t words) {
  switch (t) {
  case KW_RULE_RATE_SPIKE:
  case KW_RULE_VOLUME: return sizeof(struct s_rate);
  case KW_RULE_AUTH_FAILURES: return sizeof(struct s_count);
  case KW_RULE_NEW_SOURCE:
  case KW_RULE_NEW_ENDPOINT: return sizeof(struct s_set);
  case KW_RULE_IP_FANOUT: return sizeof(struct s_fanout);
  case KW_RULE_ENUMERATION: return sizeof(struct s_enum);
  case KW_RULE_OFF_HOURS: return sizeof(struct s_hours);
  case KW_RULE_SCOPE_VIOLATION: return sizeof(struct s_scope) + words * sizeof(uint64_t);
  default: return sizeof(struct s_flags);
  }
}

static struct subj *subj_at(struct kw_engine *e, size_t i) {
  return (struct subj *)(e->states + i * e->state_size);
}

static void *slot(struct kw_engine *e, struct subj *s, size_t rule) {
  (void)e;
  return (char *)s + e->slot_off[rule];
}

static uint32_t h32(const void *p, size_t n) { return (uint32_t)XXH3_64bits(p, n) | 1u; }

/* Adds v at event time ts to a window of bucket width bw; returns the window's sum. */
static uint64_t win_add(struct win *w, int64_t bw, int64_t ts, uint32_t v) {
  int64_t idx = ts / bw + 1; /* +1: 0 means unused */
  if (w->head == 0)
    w->head = idx;
  if (idx > w->head) {
    if (idx - w->head >= NB) {
      memset(w->b, 0, sizeof(w->b));
      w->sum = 0;
    } else {
      for (int64_t k = w->head + 1; k <= idx; k++) {
        w->sum -= w->b[k % NB];
        w->b[k % NB] = 0;
      }
    }
    w->head = idx;
  }
  if (idx > w->head - NB) {
    w->b[idx % NB] += v;
    w->sum += v;
  }
  return w->sum;
}

static const char *name_of(const struct kw_config *cfg, const uint8_t *fp, const char *prefix) {
  char hex[2 * KW_FP_LEN + 1];
  if (cfg == NULL)
    return NULL;
  kw_fingerprint_hex(fp, hex);
  for (unsigned i = 0; i < cfg->keys_count; i++) {
    const struct kw_key_name_cfg *k = &cfg->keys[i];
    if ((k->fingerprint && strcmp(k->fingerprint, hex) == 0) ||
        (k->prefix && prefix && strcmp(k->prefix, prefix) == 0))
      return k->name;
  }
  return NULL;
}

/* The scopes key subject s holds through the grants (its selectors, its key-store group
 * and permission), written into each scope_violation slot. */
static void grant_scopes(struct kw_engine *e, struct subj *s) {
  const struct kw_ruleset *rs = e->rs;
  const char *name = s->named ? s->name : NULL, *group = NULL, *perm = NULL;
  struct s_scope *first = NULL;
  int64_t ai;

  if (!e->scope_rules || s->is_addr)
    return;
  if (kw_dict_get(e->attrs, s->fp, KW_FP_LEN, &ai)) {
    group = e->attr[ai].group;
    perm = e->attr[ai].permission;
  }
  for (size_t i = 0; i < rs->n; i++) {
    if (rs->rules[i].type != KW_RULE_SCOPE_VIOLATION)
      continue;
    struct s_scope *f = slot(e, s, i);
    if (first != NULL) { /* the grants are the same for every scope_violation rule */
      f->has_grant = first->has_grant;
      memcpy(f->granted, first->granted, e->words * sizeof(uint64_t));
      continue;
    }
    first = f;
    f->has_grant = 0;
    memset(f->granted, 0, e->words * sizeof(uint64_t));
    for (size_t g = 0; g < rs->ngrants; g++) {
      if (!kw_grant_applies(&rs->grants[g], s->fp, s->prefix, name, group, perm))
        continue;
      f->has_grant = 1;
      for (size_t w = 0; w < e->words; w++)
        f->granted[w] |= e->grant_masks[g * e->words + w];
    }
  }
}

/* Which rules apply to a new subject, and per-subject flags (grants, canaries). */
static void subj_init(struct kw_engine *e, struct subj *s) {
  const struct kw_ruleset *rs = e->rs;
  const char *name = s->is_addr ? NULL : (s->named ? s->name : NULL);
  const uint8_t *fp = s->is_addr ? NULL : s->fp;

  for (size_t i = 0; i < rs->n; i++) {
    const struct kw_rule *r = &rs->rules[i];
    bool sel = s->is_addr ? (r->type == KW_RULE_AUTH_FAILURES && r->by_address) ||
                                r->type == KW_RULE_MATCH
                          : !(r->type == KW_RULE_AUTH_FAILURES && r->by_address);
    if (sel && r->nkeys > 0)
      sel = !s->is_addr && kw_keysel_match(r->keys, r->nkeys, fp, s->prefix, name);
    if (sel && r->nexclude_keys > 0 && !s->is_addr)
      sel = !kw_keysel_match(r->exclude_keys, r->nexclude_keys, fp, s->prefix, name);
    if (sel)
      s->applies |= 1ull << i;
    if (s->is_addr)
      continue;
    struct s_flags *f = slot(e, s, i);
    switch (r->type) {
    case KW_RULE_REVOKED_KEY_USE: {
      int64_t v;
      f->flagged = kw_keysel_match(rs->revoked, rs->nrevoked, fp, s->prefix, name) ||
                   kw_dict_get(e->revoked, fp, KW_FP_LEN, &v);
      break;
    }
    case KW_RULE_CANARY:
      f->flagged = kw_keysel_match(rs->canaries, rs->ncanaries, fp, s->prefix, name);
      break;
    default:
      break;
    }
  }
  grant_scopes(e, s);
}

static struct subj *get_subject(struct kw_engine *e, const void *id, size_t idlen, bool is_addr,
                                const struct kw_call *c) {
  struct kw_dict *d = is_addr ? e->addrs : e->keys;
  int64_t idx;
  struct subj *s;

  if (kw_dict_get(d, id, idlen, &idx))
    return subj_at(e, (size_t)idx);
  if (e->nsubj >= MAX_SUBJECTS)
    return NULL;
  if (e->nsubj == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 1024;
    char *ns = realloc(e->states, cap * e->state_size);
    if (ns == NULL)
      return NULL;
    e->states = ns;
    e->cap = cap;
  }
  if (kw_dict_put(d, id, idlen, (int64_t)e->nsubj) != 0)
    return NULL;
  s = subj_at(e, e->nsubj++);
  memset(s, 0, e->state_size);
  s->magic = BLOB_MAGIC;
  s->signature = e->rs->signature;
  s->is_addr = is_addr;
  s->first_seen = c->ts_us;
  if (is_addr) {
    kw_addr_format(&c->client, s->subject, sizeof(s->subject));
  } else {
    const char *n;
    memcpy(s->fp, c->fp, KW_FP_LEN);
    snprintf(s->prefix, sizeof(s->prefix), "%s", c->prefix);
    snprintf(s->subject, sizeof(s->subject), "%s", c->prefix);
    if ((n = name_of(e->cfg, c->fp, c->prefix)) != NULL) {
      s->named = 1;
      snprintf(s->name, sizeof(s->name), "%s", n);
    }
  }
  subj_init(e, s);
  return s;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void mask_set(uint64_t *m, const struct kw_ruleset *rs, const char *scope) {
  for (size_t k = 0; k < rs->nscopes; k++)
    if (strcmp(rs->scopes[k].name, scope) == 0)
      m[k / 64] |= 1ull << (k % 64);
}

/* Bit sets by scope index: what each grant gives, what each rule judges (no scopes
 * listed: all). */
static int scope_masks(struct kw_engine *e) {
  const struct kw_ruleset *rs = e->rs;
  size_t w = e->words ? e->words : 1;

  e->grant_masks = calloc((rs->ngrants ? rs->ngrants : 1) * w, sizeof(uint64_t));
  e->want_masks = calloc((rs->n ? rs->n : 1) * w, sizeof(uint64_t));
  if (e->grant_masks == NULL || e->want_masks == NULL)
    return KW_ENOMEM;
  for (size_t g = 0; g < rs->ngrants; g++)
    for (size_t j = 0; j < rs->grants[g].nscopes; j++)
      mask_set(e->grant_masks + g * e->words, rs, rs->grants[g].scopes[j]);
  for (size_t i = 0; i < rs->n; i++) {
    const struct kw_rule *r = &rs->rules[i];
    uint64_t *m = e->want_masks + i * e->words;
    if (r->type != KW_RULE_SCOPE_VIOLATION)
      continue;
    e->scope_rules = true;
    for (size_t j = 0; j < r->nscopes; j++)
      mask_set(m, rs, r->scopes[j]);
    for (size_t k = 0; r->nscopes == 0 && k < rs->nscopes; k++)
      m[k / 64] |= 1ull << (k % 64);
  }
  return 0;
}

int kw_engine_create(const struct kw_ruleset *rs, const struct kw_config *cfg,
                     struct kw_engine **out) {
  struct kw_engine *e;
  size_t off = sizeof(struct subj);

  *out = NULL;
  if (rs->n > MAX_RULES || rs->nscopes > KW_RULES_MAX_SCOPES)
    return KW_ETOOLONG;
  e = calloc(1, sizeof(*e));
  if (e == NULL)
    return KW_ENOMEM;
  e->rs = rs;
  e->cfg = cfg;
  e->words = (rs->nscopes + 63) / 64;
  for (size_t i = 0; i < rs->n; i++) {
    off = (off + 7) & ~(size_t)7;
    e->slot_off[i] = off;
    off += slot_size(rs->rules[i].type, e->words);
  }
  e->state_size = (off + 7) & ~(size_t)7;
  for (size_t i = 0; i < rs->n; i++) {
    e->addr_rules_keyed |= rs->rules[i].type == KW_RULE_AUTH_FAILURES && rs->rules[i].by_address;
    e->addr_rules_anon |= (rs->rules[i].type == KW_RULE_AUTH_FAILURES && rs->rules[i].by_address) ||
                          rs->rules[i].type == KW_RULE_MATCH;
  }
  if (kw_dict_create(MAX_SUBJECTS, &e->keys) != 0 || kw_dict_create(MAX_SUBJECTS, &e->addrs) ||
      kw_dict_create(100000, &e->selected) != 0 || kw_dict_create(MAX_SUBJECTS, &e->revoked) ||
      kw_dict_create(MAX_SUBJECTS, &e->attrs) != 0 || scope_masks(e) != 0 ||
      (e->dj = open_memstream(&e->details, &e->details_len)) == NULL) {
    kw_engine_destroy(e);
    return KW_ENOMEM;
  }
  *out = e;
  return 0;
}

int kw_engine_set_key_attrs(struct kw_engine *e, const uint8_t *fp, const char *group,
                            const char *permission) {
  char *g = group ? strdup(group) : NULL, *p = permission ? strdup(permission) : NULL;
  int64_t ai, idx;
  int r;

  if ((group && g == NULL) || (permission && p == NULL)) {
    free(g);
    free(p);
    return KW_ENOMEM;
  }
  if (kw_dict_get(e->attrs, fp, KW_FP_LEN, &ai)) {
    free(e->attr[ai].group);
    free(e->attr[ai].permission);
  } else {
    if (e->nattr == e->attr_cap) {
      size_t cap = e->attr_cap ? e->attr_cap * 2 : 64;
      struct key_attrs *na = realloc(e->attr, cap * sizeof(*na));
      if (na == NULL) {
        free(g);
        free(p);
        return KW_ENOMEM;
      }
      e->attr = na;
      e->attr_cap = cap;
    }
    if ((r = kw_dict_put(e->attrs, fp, KW_FP_LEN, (int64_t)e->nattr)) != 0) {
      free(g);
      free(p);
      return r; /* KW_ENOMEM, or KW_ETOOLONG past MAX_SUBJECTS keys */
    }
    ai = (int64_t)e->nattr++;
  }
  e->attr[ai].group = g;
  e->attr[ai].permission = p;
  if (kw_dict_get(e->keys, fp, KW_FP_LEN, &idx))
    grant_scopes(e, subj_at(e, (size_t)idx)); /* seen already: its grants change now */
  return 0;
}

int kw_engine_mark_revoked(struct kw_engine *e, const uint8_t *fp) {
  int64_t idx;
  int r;
  if ((r = kw_dict_put(e->revoked, fp, KW_FP_LEN, 1)) != 0)
    return r;
  if (!kw_dict_get(e->keys, fp, KW_FP_LEN, &idx))
    return 0; /* not seen yet: subj_init() will flag it */
  struct subj *s = subj_at(e, (size_t)idx);
  for (size_t i = 0; i < e->rs->n; i++)
    if (e->rs->rules[i].type == KW_RULE_REVOKED_KEY_USE)
      ((struct s_flags *)slot(e, s, i))->flagged = 1;
  return 0;
}

void kw_engine_destroy(struct kw_engine *e) {
  if (e == NULL)
    return;
  kw_dict_destroy(e->keys);
  kw_dict_destroy(e->addrs);
  kw_dict_destroy(e->selected);
  kw_dict_destroy(e->revoked);
  kw_dict_destroy(e->attrs);
  for (size_t i = 0; i < e->nattr; i++) {
    free(e->attr[i].group);
    free(e->attr[i].permission);
  }
  free(e->attr);
  free(e->grant_masks);
  free(e->want_masks);
  free(e->states);
  if (e->dj)
    fclose(e->dj);
  free(e->details);
  free(e);
}

uint64_t kw_engine_untracked(const struct kw_engine *e) { return e->untracked; }

size_t kw_engine_tracked(const struct kw_engine *e) { return e->nsubj; }
size_t kw_engine_state_size(const struct kw_engine *e) { return e->state_size; }
size_t kw_engine_bytes(const struct kw_engine *e) {
  return e->cap * e->state_size + kw_dict_bytes(e->keys) + kw_dict_bytes(e->addrs) +
         kw_dict_bytes(e->attrs) + e->attr_cap * sizeof(struct key_attrs);
}

/* ---- evaluation -------------------------------------------------------------------- */

struct eval {
  struct kw_engine *e;
  const struct kw_call *c;
  struct subj *s;
  const struct kw_rule *r;
  struct rhead *h;
  kw_fire_cb cb;
  void *ctx;
  int fired;
};

/* Records how close the subject came (observed vs threshold) for explain. */
static void note(struct eval *v, double obs, double thr) {
  double ratio = thr > 0 ? obs / thr : 0;
  v->h->evals++;
  if (ratio > v->h->best_ratio || v->h->best_us == 0) {
    v->h->best_ratio = (float)ratio;
    v->h->best_obs = (float)obs;
    v->h->best_thr = (float)thr;
    v->h->best_us = v->c->ts_us;
  }
}

/* A key learns for `learn` from its first call — and, for the rules that learn sets of
 * things it does, until it has made min_history calls, so that a light key's set is
 * representative before it is judged. */
static bool learning(const struct eval *v) {
  if (v->c->ts_us - v->s->first_seen < v->r->learn_us)
    return true;
  return (v->r->type == KW_RULE_NEW_SOURCE || v->r->type == KW_RULE_NEW_ENDPOINT) &&
         v->s->calls < v->r->min_history;
}

static void duration_text(int64_t us, char *buf, size_t len) {
  int64_t s = us / 1000000;
  if (s % 86400 == 0)
    snprintf(buf, len, "%lldd", (long long)(s / 86400));
  else if (s % 3600 == 0)
    snprintf(buf, len, "%lldh", (long long)(s / 3600));
  else if (s % 60 == 0)
    snprintf(buf, len, "%lldm", (long long)(s / 60));
  else
    snprintf(buf, len, "%llds", (long long)s);
}

/* Fires the rule for the call (throttled).  The rule has written e->summary and opened
 * the details object in e->dj (fail_note()); the call's own fields close it. */
static void fire(struct eval *v) {
  struct kw_engine *e = v->e;
  const struct kw_call *c = v->c;
  struct kw_firing f = {0};
  char addr[64], ts[40];

  if (v->h->last_fire != 0 && c->ts_us - v->h->last_fire < REFIRE_US)
    return;
  v->h->last_fire = c->ts_us;
  if (v->h->fires++ == 0)
    v->h->first_fire = c->ts_us;
  fprintf(e->dj, ", \"at\": \"%s\", \"client\": ", kw_time_format(c->ts_us, ts, sizeof(ts)));
  kw_json_cstr(e->dj, c->client.family ? kw_addr_format(&c->client, addr, sizeof(addr)) : NULL);
  fputs(", \"method\": ", e->dj);
  kw_json_str(e->dj, c->method.p, c->method.n);
  fputs(", \"path\": ", e->dj);
  kw_json_str(e->dj, c->path.p, c->path.n);
  fputs(", \"endpoint\": ", e->dj);
  kw_json_str(e->dj, c->endpoint.p, c->endpoint.n);
  fprintf(e->dj, ", \"status\": %d, \"user_agent\": ", c->status);
  kw_json_str(e->dj, c->user_agent.p, c->user_agent.n);
  fputs(", \"rule_source\": ", e->dj);
  kw_json_cstr(e->dj, v->r->source);
  fputs("}", e->dj);
  fputc('\0', e->dj);
  fflush(e->dj);
  f.rule = v->r->id;
  f.type = kw_rule_type_name(v->r->type);
  f.severity = v->r->severity;
  f.action = v->r->action == KW_ACTION_REVOKE ? "revoke" : "alert";
  f.has_key = c->has_key;
  if (c->has_key) {
    memcpy(f.fp, c->fp, KW_FP_LEN);
    snprintf(f.prefix, sizeof(f.prefix), "%s", c->prefix);
  }
  f.ts_us = c->ts_us;
  f.cooldown_us = v->r->cooldown_us;
  f.summary = e->summary;
  f.details = e->details;
  v->cb(&f, v->r, v->ctx);
  v->fired++;
}

static void fail_note(struct eval *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the firing's summary and opens its details object (the rule adds its fields). */
static void fail_note(struct eval *v, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->e->summary, sizeof(v->e->summary), fmt, ap);
  va_end(ap);
  rewind(v->e->dj);
  fputc('{', v->e->dj);
}

static bool is_failure(const struct kw_rule *r, int status) {
  for (size_t i = 0; i < r->nstatuses; i++)
    if (r->statuses[i] == status)
      return true;
  return false;
}

/* Whether the rule looks at the call's endpoint; verdicts are cached per rule and
 * endpoint (there are few distinct endpoints, and many calls). */
static bool endpoint_selected(struct kw_engine *e, const struct kw_rule *r,
                              const struct kw_call *c) {
  char key[KW_PREFIX_MAX + 300];
  size_t n;
  int64_t verdict = 0;

  if (r->nendpoints == 0)
    return true;
  n = (size_t)snprintf(key, sizeof(key), "%zu %.*s %.*s", (size_t)(r - e->rs->rules),
                       (int)c->method.n, c->method.p, (int)c->endpoint.n, c->endpoint.p);
  if (n < sizeof(key) && kw_dict_get(e->selected, key, n, &verdict))
    return verdict != 0;
  for (size_t i = 0; i < r->nendpoints && !verdict; i++)
    verdict = kw_pattern_match(&r->endpoints[i], c->method.p, c->method.n, c->endpoint.p,
                               c->endpoint.n);
  if (n < sizeof(key) && kw_dict_put(e->selected, key, n, verdict) == KW_ETOOLONG) {
    kw_dict_clear(e->selected);
    kw_dict_put(e->selected, key, n, verdict);
  }
  return verdict != 0;
}

static bool excluded(const struct kw_rule *r, const struct kw_call *c) {
  for (size_t i = 0; i < r->nex_addrs; i++)
    if (kw_cidr_contains(&r->ex_addrs[i], &c->client))
      return true;
  for (size_t i = 0; i < r->nex_agents; i++) {
    size_t n = strlen(r->ex_agents[i]);
    if (c->user_agent.n >= n && memcmp(c->user_agent.p, r->ex_agents[i], n) == 0)
      return true;
  }
  for (size_t i = 0; i < r->nex_endpoints; i++)
    if (kw_pattern_match(&r->ex_endpoints[i], c->method.p, c->method.n, c->endpoint.p,
                         c->endpoint.n))
      return true;
  return false;
}

static uint32_t net_hash(const struct kw_addr *a, unsigned p4, unsigned p6) {
  struct kw_cidr net = {.family = a->family, .bits = a->family == 4 ? p4 : p6};
  unsigned full = net.bits / 8, rest = net.bits % 8;
  memcpy(net.a, a->a, full);
  if (rest)
    net.a[full] = a->a[full] & (uint8_t)(0xff << (8 - rest));
  return h32(&net, sizeof(net.family) + sizeof(net.a));
}

static bool set_has(const struct s_set *s, uint32_t v) {
  for (uint32_t i = 0; i < s->n; i++)
    if (s->v[i] == v)
      return true;
  return false;
}

static void set_add(struct s_set *s, uint32_t v, unsigned cap) {
  if (set_has(s, v))
    return;
  if (s->n < cap)
    s->v[s->n++] = v;
  else
    s->h.saturated = 1;
}

/* Baseline: the highest window sum while learning; after that, once a day, the highest
 * sum that stayed below the threshold on the day before yesterday.  Updating it sooner
 * would let a spike that builds up over its window (also across midnight) raise its own
 * threshold as it goes.  Bytes count in KiB, rounded up (a 200-byte answer is 1). */
static void eval_rate(struct eval *v, bool bytes) {
  struct s_rate *st = (struct s_rate *)v->h;
  const struct kw_rule *r = v->r;
  char w[16];
  uint32_t add = bytes ? (uint32_t)((v->c->resp_bytes > 0 ? v->c->resp_bytes + 1023 : 0) / 1024)
                       : 1;
  double sum = (double)win_add(&st->w, r->window_us / NB, v->c->ts_us, add);
  int64_t day = v->c->ts_us / 86400000000LL;
  double peak, thr, floor = bytes ? (double)r->floor * 1024 : (double)r->floor;

  if (day != st->day) {
    if (st->prev_peak > st->peak)
      st->peak = st->prev_peak;
    st->prev_peak = day == st->day + 1 ? st->day_peak : 0;
    st->day_peak = 0;
    st->day = day;
  }
  if (!(bytes && r->bytes > 0) && learning(v)) {
    if (sum > st->peak)
      st->peak = (float)sum;
    return;
  }
  peak = st->peak > 1 ? st->peak : 1;
  thr = bytes && r->bytes > 0 ? (double)r->bytes / 1024.0 : r->factor * peak;
  if (!(bytes && r->bytes > 0) && thr < floor)
    thr = floor;
  note(v, sum, thr);
  if (sum < thr) {
    if (sum > st->day_peak)
      st->day_peak = (float)sum;
    return;
  }
  duration_text(r->window_us, w, sizeof(w));
  if (bytes)
    fail_note(v, "%.1f MB returned in %s vs expected at most %.1f MB (learned peak %.1f MB)",
              sum / 1024, w, thr / 1024, peak / 1024);
  else
    fail_note(v, "%.0f calls in %s vs learned peak %.0f (threshold %.0f = %.1f x peak, floor %u)",
              sum, w, peak, thr, r->factor, r->floor);
  fprintf(v->e->dj, "\"observed\": %.0f, \"expected\": %.0f, \"threshold\": %.0f, "
                    "\"window\": \"%s\", \"unit\": \"%s\"",
          sum, peak, thr, w, bytes ? "KiB" : "calls");
  fire(v);
}

static void eval_auth(struct eval *v) {
  struct s_count *st = (struct s_count *)v->h;
  const struct kw_rule *r = v->r;
  char w[16];
  bool bad = is_failure(r, v->c->status);
  double sum = (double)win_add(&st->w, r->window_us / NB, v->c->ts_us, bad ? 1 : 0);

  note(v, sum, r->threshold);
  if (!bad || sum < r->threshold)
    return;
  duration_text(r->window_us, w, sizeof(w));
  fail_note(v, "%.0f failed calls (%d…) in %s vs threshold %u", sum, v->c->status, w,
            r->threshold);
  fprintf(v->e->dj, "\"observed\": %.0f, \"threshold\": %u, \"window\": \"%s\", \"by\": \"%s\"",
          sum, r->threshold, w, r->by_address ? "address" : "key");
  fire(v);
}

static void eval_new_source(struct eval *v) {
  struct s_set *st = (struct s_set *)v->h;
  const struct kw_rule *r = v->r;
  const struct kw_addr *a = &v->c->client;
  char addr[64];

  if (a->family == 0)
    return;
  kw_addr_format(a, addr, sizeof(addr));
  if (r->ncidrs > 0) { /* an allowlist: no learning needed */
    for (size_t i = 0; i < r->ncidrs; i++)
      if (kw_cidr_contains(&r->cidrs[i], a))
        { note(v, 0, 1); return; }
    note(v, 1, 1);
    fail_note(v, "used from %s, outside its allowed networks", addr);
    fprintf(v->e->dj, "\"address\": \"%s\", \"allowed\": \"configured cidrs\"", addr);
    { fire(v); return; }
  }
  uint32_t net = net_hash(a, r->prefix4, r->prefix6);
  if (learning(v)) {
    set_add(st, net, NETS);
    return;
  }
  bool known = set_has(st, net);
  note(v, known ? 0 : 1, 1);
  if (known || st->h.saturated)
    return;
  set_add(st, net, NETS);
  fail_note(v, "used from %s, a network (/%u) not seen while learning (%u known)", addr,
            a->family == 4 ? r->prefix4 : r->prefix6, st->n - 1);
  fprintf(v->e->dj, "\"address\": \"%s\", \"known_networks\": %u, \"prefix\": %u", addr,
          st->n - 1, a->family == 4 ? r->prefix4 : r->prefix6);
  fire(v);
}

static void eval_fanout(struct eval *v) {
  struct s_fanout *st = (struct s_fanout *)v->h;
  const struct kw_rule *r = v->r;
  const struct kw_addr *a = &v->c->client;
  uint32_t minute = (uint32_t)(v->c->ts_us / 60000000), win = (uint32_t)(r->window_us / 60000000);
  uint32_t h = h32(a->a, sizeof(a->a)) ^ a->family;
  unsigned n = 0, max = r->max_addresses < FANOUT_MAX ? r->max_addresses : FANOUT_MAX - 1;
  int at = -1, victim = 0;
  char w[16];

  if (a->family == 0)
    return;
  /* The address's slot, else an empty one, else the one seen longest ago. */
  for (int i = 0; i < FANOUT_MAX; i++) {
    if (st->hash[i] == h)
      at = i;
    if (st->hash[victim] != 0 && (st->hash[i] == 0 || st->minute[i] < st->minute[victim]))
      victim = i;
  }
  if (at < 0) {
    at = victim;
    st->hash[at] = h;
  }
  st->minute[at] = minute;
  for (int i = 0; i < FANOUT_MAX; i++)
    n += st->hash[i] != 0 && minute - st->minute[i] < win;
  note(v, n, max + 1);
  if (n <= max)
    return;
  duration_text(r->window_us, w, sizeof(w));
  fail_note(v, "used from %u distinct addresses in %s vs at most %u", n, w, max);
  fprintf(v->e->dj, "\"observed\": %u, \"threshold\": %u, \"window\": \"%s\"", n, max + 1, w);
  fire(v);
}

static void eval_new_endpoint(struct eval *v) {
  struct s_set *st = (struct s_set *)v->h;
  const struct kw_call *c = v->c;
  uint32_t h;

  if (!endpoint_selected(v->e, v->r, c))
    return;
  h = v->r->per_set ? 1u /* any endpoint of the list: one value */
                    : (uint32_t)(XXH3_64bits(c->method.p, c->method.n) * 31 +
                                 XXH3_64bits(c->endpoint.p, c->endpoint.n)) | 1u;
  if (learning(v)) {
    set_add(st, h, EPS);
    return;
  }
  bool known = set_has(st, h);
  note(v, known ? 0 : 1, 1);
  if (known || st->h.saturated)
    return;
  set_add(st, h, EPS);
  fail_note(v, "first call to %.*s %.*s (%s while learning)", (int)c->method.n, c->method.p,
            (int)c->endpoint.n, c->endpoint.p,
            v->r->per_set ? "no endpoint of this rule was used" : "never used");
  fprintf(v->e->dj, "\"known_endpoints\": %u", st->n - 1);
  fire(v);
}

/* Distinct objects per endpoint template in a tumbling window: a 512-bit linear-counting
 * bitmap for each of the key's ENUM_TEMPLATES busiest templates of the window (a new
 * template takes the slot with the fewest objects). */
static void eval_enum(struct eval *v) {
  struct s_enum *st = (struct s_enum *)v->h;
  const struct kw_rule *r = v->r;
  const struct kw_call *c = v->c;
  int64_t window = c->ts_us / r->window_us;
  size_t plen = c->path.n, zeros = 0;
  uint32_t t;
  int at = -1, fewest = 0;
  size_t least = SIZE_MAX;
  char w[16];

  if (!endpoint_selected(v->e, r, c) || memmem(c->endpoint.p, c->endpoint.n, "{", 1) == NULL)
    return;
  if (window != st->window) {
    memset(st->tmpl, 0, sizeof(st->tmpl));
    memset(st->bits, 0, sizeof(st->bits));
    st->window = window;
  }
  t = (uint32_t)(XXH3_64bits(c->endpoint.p, c->endpoint.n) * 31 +
                 XXH3_64bits(c->method.p, c->method.n)) | 1u;
  for (int i = 0; i < ENUM_TEMPLATES && at < 0; i++) {
    size_t set = 0;
    if (st->tmpl[i] == t) {
      at = i;
      break;
    }
    for (size_t k = 0; k < ENUM_BITS / 64; k++)
      set += (size_t)__builtin_popcountll(st->bits[i][k]);
    if (st->tmpl[i] == 0)
      set = 0;
    if (set < least) {
      least = set;
      fewest = i;
    }
  }
  if (at < 0) {
    at = fewest;
    st->tmpl[at] = t;
    memset(st->bits[at], 0, sizeof(st->bits[at]));
  }
  const char *q = memchr(c->path.p, '?', c->path.n);
  if (q)
    plen = (size_t)(q - c->path.p);
  uint64_t h = XXH3_64bits(c->path.p, plen);
  st->bits[at][(h % ENUM_BITS) / 64] |= 1ull << (h % 64);
  for (size_t i = 0; i < ENUM_BITS / 64; i++)
    zeros += 64 - (size_t)__builtin_popcountll(st->bits[at][i]);
  /* Linear counting: n ≈ -m ln(zeros/m); a full bitmap means "many". */
  double est = zeros ? -(double)ENUM_BITS * log((double)zeros / ENUM_BITS) : 4.0 * ENUM_BITS;
  note(v, est, r->distinct_ids);
  if (est < r->distinct_ids)
    return;
  duration_text(r->window_us, w, sizeof(w));
  fail_note(v, "about %.0f distinct objects of %.*s %.*s requested in %s vs at most %u", est,
            (int)c->method.n, c->method.p, (int)c->endpoint.n, c->endpoint.p, w,
            r->distinct_ids);
  fprintf(v->e->dj, "\"observed\": %.0f, \"threshold\": %u, \"window\": \"%s\"", est,
          r->distinct_ids, w);
  fire(v);
}

/* Learned mode: an hour is "off" for a key when it made < 1 % of its learned calls in that
 * hour of the day; calls in such an hour are odd once there are more than `factor` times
 * what the key made in that hour per learned day (plus one) — a business-hours key gets
 * the odd stray call at night, not forty.  Configured mode: hours/days/timezone. */
static void eval_hours(struct eval *v) {
  struct s_hours *st = (struct s_hours *)v->h;
  const struct kw_rule *r = v->r;
  int64_t local = v->c->ts_us / 1000000 + r->tz_offset_s;
  int64_t day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
  unsigned hour = (unsigned)((local - day * 86400) / 3600);
  unsigned dow = (unsigned)((day + 3) % 7); /* 1970-01-01 was a Thursday: Monday = 0 */
  int64_t hour_idx = local / 3600;
  double expected = 0, need = r->threshold;
  bool odd;

  if (v->c->ts_us == 0)
    return;
  if (r->learned_hours) {
    if (learning(v)) {
      st->hours[hour]++;
      st->total++;
      return;
    }
    if (st->total < r->min_history)
      return; /* too little history to know its hours */
    double days = (double)r->learn_us / 86400e6;
    expected = st->hours[hour] / (days > 1 ? days : 1);
    odd = (uint64_t)st->hours[hour] * 100 < st->total;
    if (r->factor * (expected + 1) > need)
      need = r->factor * (expected + 1);
  } else {
    odd = !(r->hours_mask & (1u << hour)) || !(r->days_mask & (1u << dow));
  }
  if (hour_idx != st->hour) {
    st->hour = hour_idx;
    st->in_hour = 0;
  }
  if (!odd) {
    if (r->learned_hours) {
      st->hours[hour]++;
      st->total++;
    }
    note(v, 0, need);
    return;
  }
  st->in_hour++;
  note(v, st->in_hour, need);
  if (st->in_hour < need)
    return;
  if (r->learned_hours)
    fail_note(v, "%u calls at %02u:00-%02u:59, an hour in which it made %.1f calls a day "
                 "while learning (%.2f%% of %u)",
              st->in_hour, hour, hour, expected, 100.0 * st->hours[hour] / st->total,
              st->total);
  else
    fail_note(v, "%u calls at %02u:00-%02u:59 on a %s, outside its allowed hours",
              st->in_hour, hour, hour,
              (const char *[]){"Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                               "Saturday", "Sunday"}[dow]);
  fprintf(v->e->dj, "\"observed\": %u, \"threshold\": %.1f, \"hour\": %u, \"learned\": %s",
          st->in_hour, need, hour, r->learned_hours ? "true" : "false");
  fire(v);
}

static bool cond_holds(const struct kw_cond *k, const struct kw_call *c) {
  char buf[4096], addr[64];
  struct kw_str s = KW_STR_NULL;

  switch (k->field) {
  case KW_F_METHOD: s = c->method; break;
  case KW_F_PATH: s = c->path; break;
  case KW_F_ENDPOINT: s = c->endpoint; break;
  case KW_F_USER_AGENT: s = c->user_agent; break;
  case KW_F_HOST: s = c->host; break;
  case KW_F_ADDRESS:
    if (k->op == KW_OP_CIDR) {
      struct kw_cidr cc = k->cidr;
      return kw_cidr_contains(&cc, &c->client);
    }
    kw_addr_format(&c->client, addr, sizeof(addr));
    s = kw_str_make(addr, strlen(addr));
    break;
  case KW_F_STATUS: {
    int len = snprintf(buf, sizeof(buf), "%d", c->status);
    s = kw_str_make(buf, (size_t)len);
    break;
  }
  }
  size_t vn = strlen(k->value);
  switch (k->op) {
  case KW_OP_EQUALS: return s.n == vn && memcmp(s.p, k->value, vn) == 0;
  case KW_OP_PREFIX: return s.n >= vn && memcmp(s.p, k->value, vn) == 0;
  case KW_OP_CONTAINS: return vn == 0 || (s.n >= vn && memmem(s.p, s.n, k->value, vn) != NULL);
  case KW_OP_REGEX: {
    /* regexec needs a C string: long values are cut (documented bound). */
    size_t n = s.n < sizeof(buf) - 1 ? s.n : sizeof(buf) - 1;
    if (s.p != buf)
      memcpy(buf, s.p ? s.p : "", n);
    buf[n] = '\0';
    return regexec(&k->re, buf, 0, NULL, 0) == 0;
  }
  case KW_OP_CIDR: return false;
  }
  return false;
}

static void eval_flags(struct eval *v) {
  struct s_flags *st = (struct s_flags *)v->h;
  const struct kw_rule *r = v->r;
  const struct kw_call *c = v->c;

  switch (r->type) {
  case KW_RULE_CANARY:
    if (!st->flagged)
      return;
    note(v, 1, 1);
    fail_note(v, "canary key used (a honeytoken: nobody legitimate holds it)");
    fputs("\"canary\": true", v->e->dj);
    { fire(v); return; }
  case KW_RULE_REVOKED_KEY_USE:
    if (!st->flagged)
      return;
    note(v, c->status > 0 && c->status < 400, 1);
    if (c->status <= 0 || c->status >= 400)
      return;
    fail_note(v, "revoked key still accepted (status %d)", c->status);
    fprintf(v->e->dj, "\"revoked\": true");
    { fire(v); return; }
  case KW_RULE_MATCH:
    for (size_t i = 0; i < r->nconds; i++)
      if (!cond_holds(&r->conds[i], c))
        { note(v, 0, 1); return; }
    note(v, 1, 1);
    fail_note(v, "call matches %zu condition%s of rule %s", r->nconds, r->nconds == 1 ? "" : "s",
              r->id);
    fprintf(v->e->dj, "\"conditions\": %zu", r->nconds);
    { fire(v); return; }
  default:
    return;
  }
}

/* Fires when no scope that the key holds, and that the rule judges, covers the call. */
static void eval_scope(struct eval *v) {
  struct s_scope *st = (struct s_scope *)v->h;
  const struct kw_engine *e = v->e;
  const struct kw_ruleset *rs = e->rs;
  const struct kw_call *c = v->c;
  const uint64_t *want = e->want_masks + (size_t)(v->r - rs->rules) * e->words;

  if (!st->has_grant)
    return; /* a key no grant names is not judged */
  for (size_t w = 0; w < e->words; w++) {
    for (uint64_t m = st->granted[w] & want[w]; m != 0; m &= m - 1) {
      const struct kw_scope *sc = &rs->scopes[w * 64 + (size_t)__builtin_ctzll(m)];
      for (size_t p = 0; p < sc->n; p++)
        if (kw_pattern_match(&sc->patterns[p], c->method.p, c->method.n, c->endpoint.p,
                             c->endpoint.n))
          { note(v, 0, 1); return; }
    }
  }
  note(v, 1, 1);
  fail_note(v, "%.*s %.*s is outside the scopes granted to the key (%s)", (int)c->method.n,
            c->method.p, (int)c->endpoint.n, c->endpoint.p,
            c->status > 0 && c->status < 400 ? "and it succeeded" : "it was refused");
  fprintf(v->e->dj, "\"succeeded\": %s", c->status > 0 && c->status < 400 ? "true" : "false");
  fire(v);
}

static void eval_rule(struct eval *v) {
  switch (v->r->type) {
  case KW_RULE_RATE_SPIKE: eval_rate(v, false); break;
  case KW_RULE_VOLUME: eval_rate(v, true); break;
  case KW_RULE_AUTH_FAILURES: eval_auth(v); break;
  case KW_RULE_NEW_SOURCE: eval_new_source(v); break;
  case KW_RULE_IP_FANOUT: eval_fanout(v); break;
  case KW_RULE_NEW_ENDPOINT: eval_new_endpoint(v); break;
  case KW_RULE_ENUMERATION: eval_enum(v); break;
  case KW_RULE_OFF_HOURS: eval_hours(v); break;
  case KW_RULE_SCOPE_VIOLATION: eval_scope(v); break;
  default: eval_flags(v); break;
  }
}

static void eval_subject(struct eval *v) {
  const struct kw_ruleset *rs = v->e->rs;
  v->s->calls++;
  if (v->c->ts_us > v->s->last_seen)
    v->s->last_seen = v->c->ts_us;
  for (size_t i = 0; i < rs->n; i++) {
    if (!(v->s->applies & (1ull << i)))
      continue;
    v->r = &rs->rules[i];
    if (excluded(v->r, v->c))
      continue;
    v->h = slot(v->e, v->s, i);
    eval_rule(v);
  }
}

int kw_engine_call(struct kw_engine *e, const struct kw_call *c, kw_fire_cb cb, void *ctx) {
  struct eval v = {.e = e, .c = c, .cb = cb, .ctx = ctx};

  if (c->has_key && (v.s = get_subject(e, c->fp, KW_FP_LEN, false, c)) != NULL)
    eval_subject(&v);
  else if (c->has_key)
    e->untracked++; /* past MAX_SUBJECTS, or out of memory: counted, never silent */
  /* Address subjects: rules counted per client (and match rules for anonymous calls). */
  if (c->client.family != 0 && (c->has_key ? e->addr_rules_keyed : e->addr_rules_anon)) {
    {
      size_t n = c->client.family == 4 ? 4 : 16;
      struct subj *s = get_subject(e, c->client.a, n, true, c);
      if (s == NULL)
        e->untracked++;
      if (s != NULL) {
        uint64_t keep = s->applies;
        if (c->has_key) /* keyed calls: match rules already ran on the key */
          for (size_t i = 0; i < e->rs->n; i++)
            if (e->rs->rules[i].type == KW_RULE_MATCH)
              s->applies &= ~(1ull << i);
        v.s = s;
        eval_subject(&v);
        s->applies = keep;
      }
    }
  }
  return v.fired;
}

/* ---- explain and persistence ------------------------------------------------------- */

void kw_engine_explain(struct kw_engine *e, const char *rule_filter, const char *key_filter,
                       void (*cb)(const struct kw_explain_row *row, void *ctx), void *ctx) {
  for (size_t i = 0; i < e->rs->n; i++) {
    const struct kw_rule *r = &e->rs->rules[i];
    if (rule_filter && strcmp(rule_filter, r->id) != 0)
      continue;
    for (size_t k = 0; k < e->nsubj; k++) {
      struct subj *s = subj_at(e, k);
      struct rhead *h = slot(e, s, i);
      if (!(s->applies & (1ull << i)) || h->evals == 0)
        continue;
      if (key_filter && strncmp(s->subject, key_filter, strlen(key_filter)) != 0)
        continue;
      struct kw_explain_row row = {
          .rule = r, .prefix = s->is_addr ? "" : s->prefix, .subject = s->subject,
          .fires = h->fires, .first_fire_us = h->first_fire, .best_ratio = h->best_ratio,
          .best_observed = h->best_obs, .best_threshold = h->best_thr, .best_us = h->best_us,
          .note = h->saturated ? "its learned set is full (saturated): new values not judged"
                               : NULL,
      };
      cb(&row, ctx);
    }
  }
}

void kw_engine_export(struct kw_engine *e,
                      void (*cb)(const uint8_t *fp, const void *blob, size_t len, void *ctx),
                      void *ctx) {
  for (size_t k = 0; k < e->nsubj; k++) {
    struct subj *s = subj_at(e, k);
    if (!s->is_addr)
      cb(s->fp, s, e->state_size, ctx);
  }
}

int kw_engine_import(struct kw_engine *e, const void *blob, size_t len) {
  const struct subj *in = blob;
  struct subj *s;
  int64_t idx;

  if (len != e->state_size || in->magic != BLOB_MAGIC || in->signature != e->rs->signature ||
      in->is_addr)
    return KW_EINVAL;
  if (kw_dict_get(e->keys, in->fp, KW_FP_LEN, &idx))
    return 0; /* live state wins */
  struct kw_call c = {.ts_us = in->first_seen, .has_key = true};
  memcpy(c.fp, in->fp, KW_FP_LEN);
  snprintf(c.prefix, sizeof(c.prefix), "%s", in->prefix);
  if ((s = get_subject(e, in->fp, KW_FP_LEN, false, &c)) == NULL)
    return KW_ENOMEM;
  uint64_t applies = s->applies;
  uint8_t named = s->named;
  char name[sizeof(s->name)];
  memcpy(name, s->name, sizeof(name));
  memcpy(s, in, len);
  /* Selectors, names and grants may have changed with the configuration. */
  s->applies = applies;
  s->named = named;
  memcpy(s->name, name, sizeof(name));
  grant_scopes(e, s);
  return 0;
}
