/* kwtest_engine.h — the rules engine (analyzer/engine.c) as the engine tests drive it,
 * call by call, and the firings it reports (tests only).
 *
 * Time: every call carries its own event time.  AT(us) is T0 + us in microseconds, T0 being
 * Monday 2025-11-03 00:00:00 UTC; SEC, MIN, HOUR and DAY are durations in microseconds.
 *
 * Firings: hit() and its shorthands hand on_firing() to the engine, which copies each firing
 * into the log g_f[0 .. g_nf) (MAXF of them; past that they are counted in g_lost).  reset()
 * empties the log; fired() counts the firings of a rule for a key, first() is a rule's first
 * firing, EXPECT_FIRED() fails the test with the last summary when a count is not what it
 * should be.  Tests read g_f directly for the details.
 *
 * Packs and engines: group_setup() makes the temp directory g_dir and the log;
 * group_teardown() removes them.  env_open() writes a pack into g_dir (a new file each time)
 * and makes a struct env of its rule set and an engine over it (with an optional
 * configuration); env_reopen() loads another over the same file, as after a restart;
 * env_close() destroys one.  Every engine opened is tracked (track(), untrack_destroy()),
 * and env_teardown(), the per-test teardown, frees what a failed test left open (cmocka
 * jumps out of it half-way): the engines, the scratch allocation g_aux and the exported
 * baselines g_blobs (blobs_free()).  So LeakSanitizer only reports the library's leaks.
 *
 * Calls: key_fp() is a test key's fingerprint (its name's bytes).  call_fill() makes a
 * kw_call as the pipeline would (endpoint template from kw_endpoint_template()); hit() makes
 * one and hands it to the engine, get() is the common GET, burst() n GETs in a row.
 * rate_learn() is the learning hour of a rate_spike key that several families start from.
 *
 * The state (g_f, g_dir, the open engines, g_aux, g_blobs) is file-scope: each test
 * executable that includes this header has its own.  Everything else is static inline: a
 * test uses what it needs, the rest costs nothing.
 * Include after cmocka.h (and the headers it needs: setjmp.h, stdarg.h, stddef.h).
 * Thread: main only.
 */
#ifndef KWTEST_ENGINE_H
#define KWTEST_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/endpoint.h"
#include "analyzer/engine.h"
#include "analyzer/rules.h"
#include "sidecar/alerts.h"
#include "sidecar/call.h"
#include "sidecar/config.h"
#include "sidecar/fingerprint.h"

#include "kwtest_files.h"

#define SEC 1000000LL
#define MIN (60 * SEC)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)
#define AT(us) (1762128000LL * SEC + (us)) /* event time T0 + us (T0: 1762128000 s) */

/* ---- firings ------------------------------------------------------------------------ */

#define MAXF 4096

/* One firing as the log keeps it (copies: the engine's strings are only lent). */
struct fired {
  char rule[48], type[24];
  char prefix[KW_PREFIX_MAX + 1];
  bool has_key;
  int severity;
  int64_t ts;
  char summary[256];
  char details[1024];
  char action[8];
};

static struct fired *g_f; /* the log: MAXF entries, from group_setup() */
static size_t g_nf, g_lost;

/* The engine's firing callback: checks the rule it is given and appends to the log. */
static inline void on_firing(const struct kw_firing *f, const struct kw_rule *rule,
                             void *ctx) {
  (void)ctx;
  assert_non_null(rule);
  assert_string_equal(rule->id, f->rule);
  if (g_nf >= MAXF) {
    g_lost++;
    return;
  }
  struct fired *x = &g_f[g_nf++];
  memset(x, 0, sizeof(*x));
  snprintf(x->rule, sizeof(x->rule), "%s", f->rule);
  snprintf(x->type, sizeof(x->type), "%s", f->type);
  snprintf(x->prefix, sizeof(x->prefix), "%s", f->has_key ? f->prefix : "");
  snprintf(x->action, sizeof(x->action), "%s", f->action);
  x->has_key = f->has_key;
  x->severity = f->severity;
  x->ts = f->ts_us;
  snprintf(x->summary, sizeof(x->summary), "%s", f->summary);
  snprintf(x->details, sizeof(x->details), "%s", f->details);
}

/* Empties the log. */
static inline void reset(void) {
  g_nf = 0;
  g_lost = 0;
}

/* Firings of rule (NULL: any) for key prefix (NULL: any) since the last reset(). */
static inline size_t fired(const char *rule, const char *prefix) {
  size_t n = 0;
  for (size_t i = 0; i < g_nf; i++)
    if ((rule == NULL || strcmp(g_f[i].rule, rule) == 0) &&
        (prefix == NULL || strcmp(g_f[i].prefix, prefix) == 0))
      n++;
  return n;
}

/* The first firing of rule in the log; the test fails if there is none. */
static inline const struct fired *first(const char *rule) {
  for (size_t i = 0; i < g_nf; i++)
    if (strcmp(g_f[i].rule, rule) == 0)
      return &g_f[i];
  fail_msg("rule '%s' did not fire", rule);
  return NULL;
}

/* Fails unless rule (NULL: any) fired exactly n times for prefix (NULL: any key). */
#define EXPECT_FIRED(rule, prefix, n)                                                       \
  do {                                                                                     \
    size_t got_ = fired(rule, prefix);                                                     \
    if (got_ != (size_t)(n))                                                               \
      fail_msg("%s for %s: %zu firings, expected %d%s%s", rule ? rule : "any rule",        \
               prefix ? prefix : "any key", got_, (int)(n), g_nf ? "; last: " : "",       \
               g_nf ? g_f[g_nf - 1].summary : "");                                         \
  } while (0)

/* ---- packs and engines -------------------------------------------------------------- */

static char g_dir[64]; /* the temp directory the packs are written to */
static int g_packno;

/* Group (or per-test) setup: makes g_dir and the log.  Returns 0 or -1. */
static inline int group_setup(void **state) {
  (void)state;
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwengine") != 0)
    return -1;
  g_f = calloc(MAXF, sizeof(*g_f));
  return g_f ? 0 : -1;
}

/* Frees the log and removes g_dir with the packs in it.  Returns 0 or -1. */
static inline int group_teardown(void **state) {
  (void)state;
  free(g_f);
  return temp_dir_remove(g_dir);
}

/* A pack file, its rule set and an engine over it. */
struct env {
  char path[128];
  struct kw_ruleset *rs;
  struct kw_engine *e;
};

/* Loads the pack at path into *rs (free with kw_ruleset_destroy()); fails the test if it
 * does not load. */
static inline void load_pack_at(const char *path, struct kw_ruleset **rs) {
  char err[1024];
  char *packs[] = {(char *)path};
  if (kw_ruleset_load(packs, 1, rs, err, sizeof(err)) != 0)
    fail_msg("test pack does not load: %s", err);
}

/* What is open, so that a test that failed half-way (cmocka jumps out of it) still
 * frees everything in teardown: LeakSanitizer then only reports the library's leaks. */
static struct {
  struct kw_ruleset *rs;
  struct kw_engine *e;
} g_open[8];
static void *g_aux; /* a test's scratch allocation */
/* Exported baselines (test_baselines_*), freed by teardown too. */
struct blobs {
  size_t n;
  size_t len[64];
  void *data[64];
};
static struct blobs g_blobs;

/* Frees the blobs in b and empties it. */
static inline void blobs_free(struct blobs *b) {
  for (size_t i = 0; i < b->n; i++)
    free(b->data[i]);
  b->n = 0;
}

/* Records an open rule set and engine for env_teardown(); at most 8 at a time. */
static inline void track(struct kw_ruleset *rs, struct kw_engine *e) {
  for (size_t i = 0; i < 8; i++) {
    if (g_open[i].rs == NULL && g_open[i].e == NULL) {
      g_open[i].rs = rs;
      g_open[i].e = e;
      return;
    }
  }
  fail_msg("more than 8 engines open");
}

/* Forgets and destroys an engine and its rule set (tracked with track()). */
static inline void untrack_destroy(struct kw_ruleset *rs, struct kw_engine *e) {
  for (size_t i = 0; i < 8; i++)
    if (g_open[i].rs == rs && g_open[i].e == e)
      g_open[i].rs = NULL, g_open[i].e = NULL;
  kw_engine_destroy(e);
  kw_ruleset_destroy(rs);
}

/* Per-test teardown: destroys the engines still open, frees g_aux and g_blobs. */
static inline int env_teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < 8; i++)
    if (g_open[i].rs != NULL || g_open[i].e != NULL)
      untrack_destroy(g_open[i].rs, g_open[i].e);
  free(g_aux);
  g_aux = NULL;
  blobs_free(&g_blobs);
  return 0;
}

/* Loads v->path and makes an engine over it (cfg may be NULL), tracked; empties the log. */
static inline void env_load(struct env *v, const struct kw_config *cfg) {
  load_pack_at(v->path, &v->rs);
  if (kw_engine_create(v->rs, cfg, &v->e) != 0) {
    kw_ruleset_destroy(v->rs);
    fail_msg("kw_engine_create failed");
  }
  track(v->rs, v->e);
  reset();
}

/* Writes pack (YAML text) to a new file g_dir/packN.yaml and loads it into v with
 * env_load().  Close with env_close(). */
static inline void env_open(struct env *v, const char *pack, const struct kw_config *cfg) {
  FILE *f;
  memset(v, 0, sizeof(*v));
  snprintf(v->path, sizeof(v->path), "%s/pack%d.yaml", g_dir, ++g_packno);
  f = fopen(v->path, "w");
  assert_non_null(f);
  fputs(pack, f);
  assert_int_equal(fclose(f), 0);
  env_load(v, cfg);
}

/* Another engine over the pack file of `from` (loaded again, as after a restart). */
static inline void env_reopen(struct env *v, const struct env *from) {
  char path[sizeof(v->path)];
  snprintf(path, sizeof(path), "%s", from->path);
  memset(v, 0, sizeof(*v));
  snprintf(v->path, sizeof(v->path), "%s", path);
  env_load(v, NULL);
}

/* Destroys v's engine and rule set. */
static inline void env_close(struct env *v) {
  untrack_destroy(v->rs, v->e);
  v->e = NULL;
  v->rs = NULL;
}

/* ---- calls -------------------------------------------------------------------------- */

/* A key's fingerprint in these tests: its name's bytes (keys are at most 15 characters). */
static inline void key_fp(const char *key, uint8_t fp[KW_FP_LEN]) {
  memset(fp, 0, KW_FP_LEN);
  memcpy(fp, key, strlen(key) < KW_FP_LEN - 1 ? strlen(key) : KW_FP_LEN - 1);
  fp[KW_FP_LEN - 1] = 0x77;
}

/* Makes *c a call at ts of key (NULL: anonymous; display prefix: its first 7 characters)
 * from ip (NULL: no address) to host api.example.com: METHOD path (endpoint template
 * written into ep, which c borrows), answered status with resp_bytes (-1: unknown), user
 * agent ua; request size and latency unknown.  c borrows the strings it is given. */
static inline void call_fill(struct kw_call *c, char ep[KW_ENDPOINT_MAX + 1], int64_t ts,
                             const char *key, const char *ip, const char *method,
                             const char *path, int status, int64_t resp_bytes,
                             const char *ua) {
  size_t n;

  memset(c, 0, sizeof(*c));
  c->ts_us = ts;
  if (key != NULL) {
    c->has_key = true;
    key_fp(key, c->fp);
    snprintf(c->prefix, sizeof(c->prefix), "%.7s", key);
  }
  if (ip != NULL && kw_addr_parse(ip, strlen(ip), &c->client) != 0)
    fail_msg("test address '%s' does not parse", ip);
  c->method = kw_str_make(method, strlen(method));
  c->path = kw_str_make(path, strlen(path));
  n = kw_endpoint_template(path, strlen(path), ep);
  c->endpoint = kw_str_make(ep, n);
  c->has_query = strchr(path, '?') != NULL;
  c->status = status;
  c->req_bytes = -1;
  c->resp_bytes = resp_bytes;
  c->latency_us = -1;
  c->user_agent = kw_str_make(ua, strlen(ua));
  c->host = kw_str_make("api.example.com", 15);
}

/* One call (see call_fill()) handed to engine e, its firings to the log.  Returns what
 * kw_engine_call() returns: the number of firings. */
static inline int hit(struct kw_engine *e, int64_t ts, const char *key, const char *ip,
                      const char *method, const char *path, int status, int64_t resp_bytes,
                      const char *ua) {
  static char ep[KW_ENDPOINT_MAX + 1];
  struct kw_call c;

  call_fill(&c, ep, ts, key, ip, method, path, status, resp_bytes, ua);
  return kw_engine_call(e, &c, on_firing, NULL);
}

/* The common call: GET, 200, 1 KB, from ip. */
static inline int get(struct kw_engine *e, int64_t ts, const char *key, const char *ip,
                      const char *path) {
  return hit(e, ts, key, ip, "GET", path, 200, 1000, "client/1.0");
}

/* n GETs of key at ts, ts + step, … */
static inline void burst(struct kw_engine *e, int64_t ts, int64_t step, int n,
                         const char *key, const char *path) {
  for (int i = 0; i < n; i++)
    get(e, ts + i * step, key, "10.1.2.3", path);
}

/* Learning (first hour) under a rate_spike rule of window 10m, learn 1h: one burst of 10
 * calls in 10 s, then one call: learned peak 10.  The rate_spike tests, and the baseline
 * and explain tests, start from it. */
static inline void rate_learn(struct kw_engine *e, const char *key) {
  burst(e, AT(0), SEC, 10, key, "/api/card/1");
  get(e, AT(50 * MIN), key, "10.1.2.3", "/api/card/1");
}

#endif
