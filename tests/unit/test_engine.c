/* test_engine.c — the rules engine (analyzer/engine.c), driven call by call.
 *
 * Each test writes a small rule pack (short windows and learning periods) into a fresh
 * temp directory, builds synthetic kw_call records (endpoint templates from
 * kw_endpoint_template(), as the pipeline does) and counts the firings its callback
 * receives.  For every rule type there is a case that must fire and a near miss that must
 * not; then throttling, event time (replays are identical), baselines across a restart,
 * explain rows, and memory per tracked key.
 *
 * Time: T0 is Monday 2025-11-03 00:00:00 UTC; every call carries its own event time.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>

#include "analyzer/endpoint.h"
#include "analyzer/engine.h"
#include "analyzer/rules.h"
#include "sidecar/alerts.h"
#include "sidecar/call.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"

#include "kwtest_files.h"

#define T0 1762128000LL /* Monday 2025-11-03 00:00:00 UTC, in seconds */
#define SEC 1000000LL
#define MIN (60 * SEC)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)
#define AT(us) (T0 * SEC + (us)) /* event time T0 + us */

/* ---- firings ------------------------------------------------------------------------ */

#define MAXF 4096

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

static struct fired *g_f;
static size_t g_nf, g_lost;

static void on_fire(const struct kw_firing *f, const struct kw_rule *rule, void *ctx) {
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

static void reset(void) {
  g_nf = 0;
  g_lost = 0;
}

/* Firings of rule (NULL: any) for key prefix (NULL: any) since the last reset(). */
static size_t fired(const char *rule, const char *prefix) {
  size_t n = 0;
  for (size_t i = 0; i < g_nf; i++)
    if ((rule == NULL || strcmp(g_f[i].rule, rule) == 0) &&
        (prefix == NULL || strcmp(g_f[i].prefix, prefix) == 0))
      n++;
  return n;
}

static const struct fired *first(const char *rule) {
  for (size_t i = 0; i < g_nf; i++)
    if (strcmp(g_f[i].rule, rule) == 0)
      return &g_f[i];
  fail_msg("rule '%s' did not fire", rule);
  return NULL;
}

#define EXPECT_FIRED(rule, prefix, n)                                                       \
  do {                                                                                     \
    size_t got_ = fired(rule, prefix);                                                     \
    if (got_ != (size_t)(n))                                                               \
      fail_msg("%s for %s: %zu firings, expected %d%s%s", rule ? rule : "any rule",        \
               prefix ? prefix : "any key", got_, (int)(n), g_nf ? "; last: " : "",       \
               g_nf ? g_f[g_nf - 1].summary : "");                                         \
  } while (0)

/* ---- packs and engines -------------------------------------------------------------- */

static char g_dir[64];
static int g_packno;

static int group_setup(void **state) {
  (void)state;
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwengine") != 0)
    return -1;
  g_f = calloc(MAXF, sizeof(*g_f));
  return g_f ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  free(g_f);
  return temp_dir_remove(g_dir);
}

struct env {
  char path[128];
  struct kw_ruleset *rs;
  struct kw_engine *e;
};

static void load_pack_at(const char *path, struct kw_ruleset **rs) {
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

static void blobs_free(struct blobs *b) {
  for (size_t i = 0; i < b->n; i++)
    free(b->data[i]);
  b->n = 0;
}

static void track(struct kw_ruleset *rs, struct kw_engine *e) {
  for (size_t i = 0; i < 8; i++) {
    if (g_open[i].rs == NULL && g_open[i].e == NULL) {
      g_open[i].rs = rs;
      g_open[i].e = e;
      return;
    }
  }
  fail_msg("more than 8 engines open");
}

static void untrack_destroy(struct kw_ruleset *rs, struct kw_engine *e) {
  for (size_t i = 0; i < 8; i++)
    if (g_open[i].rs == rs && g_open[i].e == e)
      g_open[i].rs = NULL, g_open[i].e = NULL;
  kw_engine_destroy(e);
  kw_ruleset_destroy(rs);
}

static int teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < 8; i++)
    if (g_open[i].rs != NULL || g_open[i].e != NULL)
      untrack_destroy(g_open[i].rs, g_open[i].e);
  free(g_aux);
  g_aux = NULL;
  blobs_free(&g_blobs);
  return 0;
}

static void env_load(struct env *v, const struct kw_config *cfg) {
  load_pack_at(v->path, &v->rs);
  if (kw_engine_create(v->rs, cfg, &v->e) != 0) {
    kw_ruleset_destroy(v->rs);
    fail_msg("kw_engine_create failed");
  }
  track(v->rs, v->e);
  reset();
}

static void env_open(struct env *v, const char *pack, const struct kw_config *cfg) {
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
static void env_reopen(struct env *v, const struct env *from) {
  char path[sizeof(v->path)];
  snprintf(path, sizeof(path), "%s", from->path);
  memset(v, 0, sizeof(*v));
  snprintf(v->path, sizeof(v->path), "%s", path);
  env_load(v, NULL);
}

static void env_close(struct env *v) {
  untrack_destroy(v->rs, v->e);
  v->e = NULL;
  v->rs = NULL;
}

/* ---- calls -------------------------------------------------------------------------- */

/* A key's fingerprint in these tests: its name's bytes (keys are at most 15 characters). */
static void key_fp(const char *key, uint8_t fp[KW_FP_LEN]) {
  memset(fp, 0, KW_FP_LEN);
  memcpy(fp, key, strlen(key) < KW_FP_LEN - 1 ? strlen(key) : KW_FP_LEN - 1);
  fp[KW_FP_LEN - 1] = 0x77;
}

static int hit(struct kw_engine *e, int64_t ts, const char *key, const char *ip,
               const char *method, const char *path, int status, int64_t resp_bytes,
               const char *ua) {
  static char ep[KW_ENDPOINT_MAX + 1];
  struct kw_call c;
  size_t n;

  memset(&c, 0, sizeof(c));
  c.ts_us = ts;
  if (key != NULL) {
    c.has_key = true;
    key_fp(key, c.fp);
    snprintf(c.prefix, sizeof(c.prefix), "%.7s", key);
  }
  if (ip != NULL && kw_addr_parse(ip, strlen(ip), &c.client) != 0)
    fail_msg("test address '%s' does not parse", ip);
  c.method = kw_str_make(method, strlen(method));
  c.path = kw_str_make(path, strlen(path));
  n = kw_endpoint_template(path, strlen(path), ep);
  c.endpoint = kw_str_make(ep, n);
  c.has_query = strchr(path, '?') != NULL;
  c.status = status;
  c.req_bytes = -1;
  c.resp_bytes = resp_bytes;
  c.latency_us = -1;
  c.user_agent = kw_str_make(ua, strlen(ua));
  c.host = kw_str_make("api.example.com", 15);
  return kw_engine_call(e, &c, on_fire, NULL);
}

/* The common call: GET, 200, 1 KB, from ip. */
static int get(struct kw_engine *e, int64_t ts, const char *key, const char *ip,
               const char *path) {
  return hit(e, ts, key, ip, "GET", path, 200, 1000, "client/1.0");
}

/* n GETs of key at ts, ts + step, … */
static void burst(struct kw_engine *e, int64_t ts, int64_t step, int n, const char *key,
                  const char *path) {
  for (int i = 0; i < n; i++)
    get(e, ts + i * step, key, "10.1.2.3", path);
}

/* ---- rate_spike --------------------------------------------------------------------- */

static const char RATE_PACK[] =
    "rules:\n"
    "  - {id: spike, type: rate_spike, window: 10m, learn: 1h, factor: 4, floor: 10}\n";

/* Learning (first hour): one burst of 10 calls in 10 s, then one call: learned peak 10. */
static void rate_learn(struct kw_engine *e, const char *key) {
  burst(e, AT(0), SEC, 10, key, "/api/card/1");
  get(e, AT(50 * MIN), key, "10.1.2.3", "/api/card/1");
}

static void test_rate_spike_fires_at_factor(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  EXPECT_FIRED("spike", NULL, 0);
  /* 4 x the learned peak (40 calls in 40 s) fires, once, at the 40th call */
  burst(v.e, AT(2 * HOUR), SEC, 40, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", "mb_Rate", 1);
  assert_true(first("spike")->ts == AT(2 * HOUR + 39 * SEC));
  assert_string_equal(first("spike")->type, "rate_spike");
  assert_int_equal(first("spike")->severity, KW_SEV_MEDIUM);
  assert_non_null(strstr(first("spike")->summary, "40 calls"));
  assert_non_null(strstr(first("spike")->summary, "peak 10"));
  env_close(&v);
}

static void test_rate_spike_near_miss(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  /* 3 x the peak, then 39 calls (just under 4 x): silent */
  burst(v.e, AT(2 * HOUR), SEC, 30, "mb_Rate", "/api/card/1");
  burst(v.e, AT(3 * HOUR), SEC, 39, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  /* later the same day, the 4 x spike still fires: near misses did not raise the baseline */
  burst(v.e, AT(4 * HOUR), SEC, 40, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", "mb_Rate", 1);
  env_close(&v);
}

static void test_rate_spike_learning_silent(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  burst(v.e, AT(0), SEC, 10, "mb_Rate", "/api/card/1");
  /* 200 calls in the learning hour: not judged, they become the baseline */
  burst(v.e, AT(30 * MIN), SEC, 200, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  /* so 100 calls later are ordinary for this key (4 x 200 = 800) */
  burst(v.e, AT(2 * HOUR), SEC, 100, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  /* and a second key, in its own learning hour, is silent whatever it does */
  burst(v.e, AT(2 * HOUR), 100000, 500, "mb_Newk", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  env_close(&v);
}

/* Regression: a spike that builds up over the window must not raise its own threshold. */
static void test_rate_spike_ramp(void **state) {
  struct env v;
  int n = 0;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  /* minute m of 10 has m + 1 calls: 1, 2, 3 … 55 calls over 10 minutes */
  for (int m = 0; m < 10; m++)
    for (int k = 0; k <= m; k++, n++)
      get(v.e, AT(2 * HOUR + m * MIN + k * (MIN / (m + 1))), "mb_Rate", "10.1.2.3",
          "/api/card/1");
  assert_int_equal(n, 55);
  /* fires when the window reaches 40 (and again a minute later: still above) */
  assert_true(fired("spike", "mb_Rate") >= 1);
  assert_non_null(strstr(first("spike")->summary, "40 calls"));
  env_close(&v);
}

/* The same ramp across midnight UTC: the day's highest sum below the threshold becomes
 * the baseline at the day change, which must not be the first half of the spike. */
static void test_rate_spike_ramp_midnight(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  /* 39 calls from 23:52 to 23:59:48 (just under the threshold), 40 more by 00:02 */
  burst(v.e, AT(DAY - 8 * MIN), 12 * SEC, 39, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  burst(v.e, AT(DAY), 3 * SEC, 40, "mb_Rate", "/api/card/1");
  /* 79 calls within 10 minutes, about 8 x the learned peak of 10 */
  if (fired("spike", "mb_Rate") == 0)
    fail_msg("79 calls in 10 minutes (learned peak 10, threshold 40) did not fire when the "
             "spike straddled midnight UTC: the 39 calls before 00:00 became the baseline");
  env_close(&v);
}

static void test_rate_spike_floor(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  /* a light key: one call while learning, peak 1, 4 x 1 = 4 < floor 10 */
  get(v.e, AT(0), "mb_Lite", "10.1.2.3", "/api/card/1");
  burst(v.e, AT(2 * HOUR), SEC, 9, "mb_Lite", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  burst(v.e, AT(3 * HOUR), SEC, 10, "mb_Lite", "/api/card/1");
  EXPECT_FIRED("spike", "mb_Lite", 1);
  assert_non_null(strstr(first("spike")->summary, "10 calls"));
  env_close(&v);
}

/* ---- volume ------------------------------------------------------------------------- */

static void test_volume_absolute(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: vol, type: volume, window: 10m, bytes: 10MiB}\n",
           NULL);
  /* 9 MiB in 9 s, and 10 MiB spread over 20 minutes: under 10 MiB per 10 minutes */
  for (int i = 0; i < 9; i++)
    hit(v.e, AT(i * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  for (int i = 0; i < 10; i++)
    hit(v.e, AT(i * 2 * MIN), "mb_Vol2", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  EXPECT_FIRED("vol", NULL, 0);
  /* the 10th MiB within the window fires: no learning needed for an absolute threshold */
  hit(v.e, AT(9 * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  EXPECT_FIRED("vol", "mb_Vol1", 1);
  assert_string_equal(first("vol")->type, "volume");
  assert_non_null(strstr(first("vol")->summary, "MB"));
  /* unknown sizes (-1) count as nothing */
  for (int i = 0; i < 50; i++)
    hit(v.e, AT(HOUR + i * SEC), "mb_Vol3", "10.1.2.3", "GET", "/api/export", 200, -1, "c/1");
  EXPECT_FIRED("vol", "mb_Vol3", 0);
  env_close(&v);
}

/* Many small answers add up: an export of 2,000 rows of 1,000 bytes is 2 MB. */
static void test_volume_small_responses(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: vol, type: volume, window: 10m, bytes: 1MB}\n",
           NULL);
  for (int i = 0; i < 2000; i++)
    hit(v.e, AT(i * 200000), "mb_Sml1", "10.1.2.3", "GET", "/api/row/1", 200, 1000, "c/1");
  if (fired("vol", "mb_Sml1") == 0)
    fail_msg("2,000 answers of 1,000 bytes (2 MB) in 400 s did not reach a 1 MB volume "
             "threshold: answers under 1 KiB count as 0");
  env_close(&v);
}

static void test_volume_baseline(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: volx, type: volume, window: 10m, learn: 1h, factor: 10}\n",
           NULL);
  /* learns 1 MiB per 10 minutes */
  hit(v.e, AT(0), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  /* 9 MiB later: under 10 x */
  for (int i = 0; i < 9; i++)
    hit(v.e, AT(2 * HOUR + i * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200,
        1 << 20, "c/1");
  EXPECT_FIRED("volx", NULL, 0);
  /* 10 MiB: fires */
  hit(v.e, AT(2 * HOUR + 9 * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20,
      "c/1");
  EXPECT_FIRED("volx", "mb_Vol1", 1);
  env_close(&v);
}

/* ---- new_source --------------------------------------------------------------------- */

static const char NET_PACK[] = "rules:\n"
                               "  - id: net\n"
                               "    type: new_source\n"
                               "    prefix4: 16\n"
                               "    prefix6: 48\n"
                               "    learn: 1h\n"
                               "    min_history: 5\n";

static void test_new_source_learned(void **state) {
  struct env v;
  (void)state;
  env_open(&v, NET_PACK, NULL);
  for (int i = 0; i < 10; i++)
    get(v.e, AT(i * 5 * MIN), "mb_Net1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(20 * MIN), "mb_Net1", "172.16.5.5", "/api/card/1");       /* learned */
  get(v.e, AT(25 * MIN), "mb_Net1", "2001:db8:1:2::5", "/api/card/1"); /* learned */
  EXPECT_FIRED("net", NULL, 0);
  /* after learning: other hosts of known /16 and /48 networks are fine */
  get(v.e, AT(2 * HOUR), "mb_Net1", "10.1.77.8", "/api/card/1");
  get(v.e, AT(2 * HOUR + MIN), "mb_Net1", "172.16.200.1", "/api/card/1");
  get(v.e, AT(2 * HOUR + 2 * MIN), "mb_Net1", "2001:db8:1:ffff::1", "/api/card/1");
  EXPECT_FIRED("net", NULL, 0);
  /* a new /16 fires */
  get(v.e, AT(3 * HOUR), "mb_Net1", "10.2.0.1", "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 1);
  assert_non_null(strstr(first("net")->summary, "10.2.0.1"));
  /* then it is known: another host of it does not fire again */
  get(v.e, AT(4 * HOUR), "mb_Net1", "10.2.9.9", "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 1);
  /* a new /48 fires */
  get(v.e, AT(5 * HOUR), "mb_Net1", "2001:db8:2::1", "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 2);
  /* calls without an address are not judged */
  get(v.e, AT(6 * HOUR), "mb_Net1", NULL, "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 2);
  env_close(&v);
}

/* A key with less than min_history calls is still learning after the learning period. */
static void test_new_source_min_history(void **state) {
  struct env v;
  (void)state;
  env_open(&v, NET_PACK, NULL);
  get(v.e, AT(0), "mb_Few1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(MIN), "mb_Few1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(2 * MIN), "mb_Few1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(2 * HOUR), "mb_Few1", "192.0.2.1", "/api/card/1"); /* 4th call: learns */
  EXPECT_FIRED("net", NULL, 0);
  get(v.e, AT(3 * HOUR), "mb_Few1", "10.1.2.3", "/api/card/1"); /* 5th */
  get(v.e, AT(4 * HOUR), "mb_Few1", "198.51.100.1", "/api/card/1");
  EXPECT_FIRED("net", "mb_Few1", 1);
  env_close(&v);
}

static void test_new_source_cidrs(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: allow\n"
               "    type: new_source\n"
               "    cidrs: [10.0.0.0/8, \"2001:db8::/32\"]\n",
           NULL);
  /* allowlist mode: judged from the first call, no learning */
  get(v.e, AT(0), "mb_Cid1", "10.200.1.1", "/api/card/1");
  get(v.e, AT(MIN), "mb_Cid1", "2001:db8:ffff::1", "/api/card/1");
  get(v.e, AT(2 * MIN), "mb_Cid1", "11.0.0.1", "/api/card/1");
  EXPECT_FIRED("allow", "mb_Cid1", 1);
  assert_non_null(strstr(first("allow")->summary, "11.0.0.1"));
  get(v.e, AT(4 * MIN), "mb_Cid1", "2001:db9::1", "/api/card/1");
  EXPECT_FIRED("allow", "mb_Cid1", 2);
  get(v.e, AT(6 * MIN), "mb_Cid2", "9.255.255.255", "/api/card/1");
  EXPECT_FIRED("allow", "mb_Cid2", 1);
  env_close(&v);
}

/* ---- ip_fanout ---------------------------------------------------------------------- */

static const char FAN_PACK[] =
    "rules:\n"
    "  - {id: fan, type: ip_fanout, window: 1h, max_addresses: 10}\n";

static void fan_call(struct kw_engine *e, int64_t ts, const char *key, int host) {
  char ip[32];
  snprintf(ip, sizeof(ip), "198.51.100.%d", host);
  get(e, ts, key, ip, "/api/card/1");
}

static void test_ip_fanout(void **state) {
  struct env v;
  (void)state;
  env_open(&v, FAN_PACK, NULL);
  /* 10 addresses, each used 5 times over 50 minutes: at the limit, silent */
  for (int round = 0; round < 5; round++)
    for (int h = 1; h <= 10; h++)
      fan_call(v.e, AT(round * 10 * MIN + h * MIN / 2), "mb_Fan1", h);
  EXPECT_FIRED("fan", NULL, 0);
  /* an 11th within the hour fires */
  fan_call(v.e, AT(55 * MIN), "mb_Fan1", 11);
  EXPECT_FIRED("fan", "mb_Fan1", 1);
  assert_non_null(strstr(first("fan")->summary, "11 distinct addresses"));

  /* one address per minute: fires at the 11th */
  reset();
  for (int h = 1; h <= 11; h++)
    fan_call(v.e, AT(DAY + h * MIN), "mb_Fan2", h);
  EXPECT_FIRED("fan", "mb_Fan2", 1);
  assert_true(first("fan")->ts == AT(DAY + 11 * MIN));
  env_close(&v);
}

static void test_ip_fanout_ages_out(void **state) {
  struct env v;
  (void)state;
  env_open(&v, FAN_PACK, NULL);
  /* 10 addresses now, 10 others 61 minutes later: never more than 10 within an hour */
  for (int h = 1; h <= 10; h++)
    fan_call(v.e, AT(h * SEC), "mb_Fan1", h);
  for (int h = 11; h <= 20; h++)
    fan_call(v.e, AT(61 * MIN + h * SEC), "mb_Fan1", h);
  EXPECT_FIRED("fan", NULL, 0);
  /* and 25 addresses spread over 5 hours (5 an hour) never fire */
  for (int h = 21; h <= 45; h++)
    fan_call(v.e, AT(3 * HOUR + (h - 21) * 12 * MIN), "mb_Fan1", h);
  EXPECT_FIRED("fan", NULL, 0);
  env_close(&v);
}

/* max_addresses above what the engine tracks per key (32) must not fire early: a pack
 * that allows 40 addresses gets no alert at 35 (or is refused when loaded). */
static void test_ip_fanout_large_max(void **state) {
  struct kw_ruleset *rs = NULL;
  struct kw_engine *e = NULL;
  char path[160], err[512];
  char *packs[] = {path};
  FILE *f;
  (void)state;
  snprintf(path, sizeof(path), "%s/fan40.yaml", g_dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("rules:\n  - {id: fan, type: ip_fanout, window: 1h, max_addresses: 40}\n", f);
  assert_int_equal(fclose(f), 0);
  if (kw_ruleset_load(packs, 1, &rs, err, sizeof(err)) != 0)
    return; /* refused: fine, the user is told */
  assert_int_equal(kw_engine_create(rs, NULL, &e), 0);
  track(rs, e);
  reset();
  for (int h = 1; h <= 35; h++)
    fan_call(e, AT(h * MIN), "mb_Fan4", h);
  if (fired("fan", NULL) != 0)
    fail_msg("max_addresses: 40 fired at 35 addresses: %s", g_f[0].summary);
  untrack_destroy(rs, e);
}

/* ---- auth_failures ------------------------------------------------------------------ */

static void test_auth_failures_key(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: auth, type: auth_failures, window: 5m, threshold: 5}\n",
           NULL);
  /* successes and other errors do not count */
  for (int i = 0; i < 10; i++) {
    hit(v.e, AT(i * SEC), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 200, 10, "c/1");
    hit(v.e, AT(i * SEC), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 404, 10, "c/1");
  }
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(MIN + i * SEC), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  EXPECT_FIRED("auth", NULL, 0);
  /* the 5th within 5 minutes fires (a 403 counts too) */
  hit(v.e, AT(2 * MIN), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 403, 10, "c/1");
  EXPECT_FIRED("auth", "mb_Aut1", 1);
  assert_non_null(strstr(first("auth")->summary, "5 failed calls"));

  /* 5 failures 2 minutes apart: at most 3 in any 5 minutes */
  reset();
  for (int i = 0; i < 5; i++)
    hit(v.e, AT(HOUR + i * 2 * MIN), "mb_Aut2", "10.1.2.3", "GET", "/", 401, 10, "c/1");
  EXPECT_FIRED("auth", NULL, 0);
  /* failures of other keys do not add up for a key */
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(2 * HOUR + i * SEC), "mb_Aut3", "10.1.2.3", "GET", "/", 401, 10, "c/1");
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(2 * HOUR + i * SEC), "mb_Aut4", "10.1.2.3", "GET", "/", 401, 10, "c/1");
  EXPECT_FIRED("auth", NULL, 0);
  env_close(&v);
}

static void test_auth_failures_by_address(void **state) {
  struct env v;
  char key[16];
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: auth-ip, type: auth_failures, window: 5m, threshold: 5, by: address}\n",
           NULL);
  /* 5 keys, one failure each, from one address: an address probing keys */
  for (int i = 0; i < 4; i++) {
    snprintf(key, sizeof(key), "mb_Prb%d", i);
    hit(v.e, AT(i * SEC), key, "198.51.100.7", "GET", "/api/user", 401, 10, "c/1");
  }
  /* 4 from another address do not add up */
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(i * SEC), NULL, "198.51.100.8", "GET", "/api/user", 401, 10, "c/1");
  EXPECT_FIRED("auth-ip", NULL, 0);
  hit(v.e, AT(10 * SEC), "mb_Prb9", "198.51.100.7", "GET", "/api/user", 401, 10, "c/1");
  EXPECT_FIRED("auth-ip", NULL, 1);
  assert_non_null(strstr(g_f[0].details, "\"by\": \"address\""));
  /* anonymous calls count per address too */
  reset();
  for (int i = 0; i < 5; i++)
    hit(v.e, AT(HOUR + i * SEC), NULL, "203.0.113.50", "POST", "/api/session", 403, 10, "c/1");
  EXPECT_FIRED("auth-ip", NULL, 1);
  assert_false(g_f[0].has_key);
  env_close(&v);
}

/* ---- scope_violation ---------------------------------------------------------------- */

static void test_scope_violation(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: scope, type: scope_violation, severity: high}\n"
               "scopes:\n"
               "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
               "  - {name: cards, endpoints: [\"POST /api/card\", \"PUT /api/card/*\"]}\n"
               "grants:\n"
               "  - {keys: [mb_Read], scopes: [read]}\n"
               "  - {keys: [mb_Writ], scopes: [read, cards]}\n",
           NULL);
  /* within the grant */
  get(v.e, AT(0), "mb_Read", "10.1.2.3", "/api/card/1");
  get(v.e, AT(0), "mb_Read", "10.1.2.3", "/api/dashboard/7/cards");
  hit(v.e, AT(0), "mb_Writ", "10.1.2.3", "POST", "/api/card", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Writ", "10.1.2.3", "PUT", "/api/card/12", 200, 10, "c/1");
  /* a key without any grant is not judged */
  hit(v.e, AT(0), "mb_Nogr", "10.1.2.3", "DELETE", "/api/card/12", 200, 10, "c/1");
  EXPECT_FIRED("scope", NULL, 0);
  /* outside: a read key writing, a card writer deleting */
  hit(v.e, AT(MIN), "mb_Read", "10.1.2.3", "POST", "/api/card", 200, 10, "c/1");
  EXPECT_FIRED("scope", "mb_Read", 1);
  assert_non_null(strstr(first("scope")->summary, "POST /api/card"));
  assert_non_null(strstr(first("scope")->summary, "succeeded"));
  assert_int_equal(first("scope")->severity, KW_SEV_HIGH);
  hit(v.e, AT(MIN), "mb_Writ", "10.1.2.3", "DELETE", "/api/card/12", 403, 10, "c/1");
  EXPECT_FIRED("scope", "mb_Writ", 1);
  assert_non_null(strstr(g_f[1].summary, "refused"));
  /* outside of /api/ entirely */
  get(v.e, AT(3 * MIN), "mb_Read", "10.1.2.3", "/internal/metrics");
  EXPECT_FIRED("scope", "mb_Read", 2);
  env_close(&v);
}

/* ---- new_endpoint ------------------------------------------------------------------- */

static void test_new_endpoint_per_endpoint(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: newep, type: new_endpoint, learn: 1h, min_history: 5}\n",
           NULL);
  for (int i = 0; i < 10; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", 100 + i);
    get(v.e, AT(i * MIN), "mb_Ep01", "10.1.2.3", path);
    snprintf(path, sizeof(path), "/api/dashboard/%d", 100 + i);
    get(v.e, AT(i * MIN), "mb_Ep01", "10.1.2.3", path);
  }
  EXPECT_FIRED("newep", NULL, 0);
  /* the same templates with other ids: known */
  get(v.e, AT(2 * HOUR), "mb_Ep01", "10.1.2.3", "/api/card/999999");
  get(v.e, AT(2 * HOUR), "mb_Ep01", "10.1.2.3", "/api/dashboard/1?x=1");
  EXPECT_FIRED("newep", NULL, 0);
  /* a new template fires, once */
  get(v.e, AT(3 * HOUR), "mb_Ep01", "10.1.2.3", "/api/user");
  EXPECT_FIRED("newep", "mb_Ep01", 1);
  assert_non_null(strstr(first("newep")->summary, "GET /api/user"));
  get(v.e, AT(4 * HOUR), "mb_Ep01", "10.1.2.3", "/api/user");
  EXPECT_FIRED("newep", "mb_Ep01", 1);
  /* a known template with a new method is a new endpoint */
  hit(v.e, AT(5 * HOUR), "mb_Ep01", "10.1.2.3", "DELETE", "/api/card/5", 204, 0, "c/1");
  EXPECT_FIRED("newep", "mb_Ep01", 2);
  env_close(&v);
}

static void test_new_endpoint_per_set(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: admin\n"
               "    type: new_endpoint\n"
               "    learn: 1h\n"
               "    min_history: 5\n"
               "    per: set\n"
               "    endpoints: [\"* /api/user\", \"* /api/user/**\"]\n",
           NULL);
  /* mb_Adm1 called one admin endpoint while learning; mb_Usr1 none */
  for (int i = 0; i < 10; i++) {
    get(v.e, AT(i * MIN), "mb_Adm1", "10.1.2.3", i == 3 ? "/api/user" : "/api/card/1");
    get(v.e, AT(i * MIN), "mb_Usr1", "10.1.2.3", "/api/card/1");
  }
  /* mb_Few1: only 3 calls by the end of learning */
  for (int i = 0; i < 3; i++)
    get(v.e, AT(i * MIN), "mb_Few1", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("admin", NULL, 0);
  /* any endpoint of the set is known to mb_Adm1 */
  get(v.e, AT(2 * HOUR), "mb_Adm1", "10.1.2.3", "/api/user/5");
  hit(v.e, AT(2 * HOUR), "mb_Adm1", "10.1.2.3", "POST", "/api/user", 200, 10, "c/1");
  /* endpoints outside the set never fire */
  get(v.e, AT(2 * HOUR), "mb_Usr1", "10.1.2.3", "/api/setting");
  /* too little history to judge */
  get(v.e, AT(2 * HOUR), "mb_Few1", "10.1.2.3", "/api/user/5");
  EXPECT_FIRED("admin", NULL, 0);
  /* mb_Usr1's first admin call fires, once for the set */
  get(v.e, AT(3 * HOUR), "mb_Usr1", "10.1.2.3", "/api/user/5");
  EXPECT_FIRED("admin", "mb_Usr1", 1);
  hit(v.e, AT(4 * HOUR), "mb_Usr1", "10.1.2.3", "POST", "/api/user", 200, 10, "c/1");
  EXPECT_FIRED("admin", "mb_Usr1", 1);
  env_close(&v);
}

/* ---- enumeration -------------------------------------------------------------------- */

static const char ENUM_PACK[] =
    "rules:\n"
    "  - {id: enum, type: enumeration, window: 10m, distinct_ids: 200}\n";

static void test_enumeration(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, ENUM_PACK, NULL);
  /* 300 distinct ids in 5 minutes */
  for (int i = 1; i <= 300; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", i);
    get(v.e, AT(i * SEC), "mb_Enu1", "10.1.2.3", path);
  }
  assert_true(fired("enum", "mb_Enu1") >= 1);
  assert_non_null(strstr(first("enum")->summary, "distinct objects"));
  /* first when about 200 were requested (linear counting: a few percent off) */
  print_message("enumeration: first firing at the %lld-th distinct id\n",
                (long long)((first("enum")->ts - AT(0)) / SEC));
  assert_true(first("enum")->ts >= AT(180 * SEC) && first("enum")->ts <= AT(220 * SEC));
  env_close(&v);
}

static void test_enumeration_near_miss(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, ENUM_PACK, NULL);
  /* the same 20 ids, 50 times each */
  for (int i = 0; i < 1000; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", 1 + i % 20);
    get(v.e, AT(i * 200000), "mb_Enu1", "10.1.2.3", path);
  }
  /* 150 distinct ids: under 200 */
  for (int i = 1; i <= 150; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", 1000 + i);
    get(v.e, AT(HOUR + i * SEC), "mb_Enu2", "10.1.2.3", path);
  }
  /* 300 query strings on one object are one object */
  for (int i = 1; i <= 300; i++) {
    snprintf(path, sizeof(path), "/api/card/7?page=%d", i);
    get(v.e, AT(2 * HOUR + i * SEC), "mb_Enu3", "10.1.2.3", path);
  }
  /* paths without an id placeholder are not objects */
  for (int i = 1; i <= 300; i++) {
    snprintf(path, sizeof(path), "/api/search/q%c%c", 'a' + i % 26, 'a' + i / 26);
    get(v.e, AT(3 * HOUR + i * SEC), "mb_Enu4", "10.1.2.3", path);
  }
  EXPECT_FIRED("enum", NULL, 0);
  env_close(&v);
}

/* "many distinct object ids of one endpoint template": ids of different templates do
 * not add up (a dashboard opening 150 cards and 150 of its queries is no walk). */
static void test_enumeration_per_template(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, ENUM_PACK, NULL);
  for (int i = 1; i <= 150; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", i);
    get(v.e, AT(i * SEC), "mb_Enu5", "10.1.2.3", path);
    snprintf(path, sizeof(path), "/api/dashboard/%d", i);
    get(v.e, AT(i * SEC), "mb_Enu5", "10.1.2.3", path);
  }
  EXPECT_FIRED("enum", NULL, 0);
  env_close(&v);
}

/* ---- off_hours ---------------------------------------------------------------------- */

/* Business hours while learning: days 0-2, 09:00-16:59, 5 calls an hour (120 calls). */
static void office_key(struct kw_engine *e, const char *key) {
  for (int d = 0; d < 3; d++)
    for (int h = 9; h < 17; h++)
      for (int k = 0; k < 5; k++)
        get(e, AT(d * DAY + h * HOUR + (5 + 10 * k) * MIN), key, "10.1.2.3", "/api/card/1");
}

static const char HOURS_LEARNED_PACK[] = "rules:\n"
                                         "  - id: night\n"
                                         "    type: off_hours\n"
                                         "    hours: learned\n"
                                         "    learn: 3d\n"
                                         "    min_history: 100\n"
                                         "    factor: 10\n"
                                         "    threshold: 10\n";

static void test_off_hours_learned(void **state) {
  struct env v;
  (void)state;
  env_open(&v, HOURS_LEARNED_PACK, NULL);
  office_key(v.e, "mb_Off1");
  office_key(v.e, "mb_Off2");
  /* a light key: 30 calls while learning, too little history to know its hours */
  for (int k = 0; k < 30; k++)
    get(v.e, AT(10 * HOUR + k * MIN), "mb_Lit1", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("night", NULL, 0);
  /* day 4 (learning over): its usual hours are fine */
  burst(v.e, AT(4 * DAY + 10 * HOUR), MIN, 20, "mb_Off1", "/api/card/1");
  EXPECT_FIRED("night", NULL, 0);
  /* 3 stray calls at 03:00 do not fire */
  burst(v.e, AT(4 * DAY + 3 * HOUR + 5 * MIN), MIN, 3, "mb_Off2", "/api/card/1");
  /* nor 40 calls of the light key */
  burst(v.e, AT(4 * DAY + 3 * HOUR), MIN / 2, 40, "mb_Lit1", "/api/card/1");
  EXPECT_FIRED("night", NULL, 0);
  /* 40 calls at 03:00-03:39 fire, first at the 10th */
  burst(v.e, AT(4 * DAY + 3 * HOUR), MIN, 40, "mb_Off1", "/api/card/1");
  assert_true(fired("night", "mb_Off1") >= 1);
  assert_true(first("night")->ts == AT(4 * DAY + 3 * HOUR + 9 * MIN));
  assert_non_null(strstr(first("night")->summary, "03:00-03:59"));
  assert_int_equal(fired("night", NULL), fired("night", "mb_Off1"));
  env_close(&v);
}

static void test_off_hours_configured(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: hours\n"
               "    type: off_hours\n"
               "    hours: \"09:00-17:00\"\n"
               "    days: mon-fri\n"
               "    timezone: \"+02:00\"\n"
               "    threshold: 3\n",
           NULL);
  /* Monday 07:30 UTC = 09:30 local: allowed, although before 09:00 UTC */
  burst(v.e, AT(7 * HOUR + 30 * MIN), MIN, 5, "mb_Hr01", "/api/card/1");
  /* Monday 14:30 UTC = 16:30 local: allowed */
  burst(v.e, AT(14 * HOUR + 30 * MIN), MIN, 5, "mb_Hr01", "/api/card/1");
  /* Monday 16:00 UTC = 18:00 local: 2 calls, under the threshold of 3 */
  burst(v.e, AT(16 * HOUR), MIN, 2, "mb_Hr01", "/api/card/1");
  /* 2 calls at 18:50 and 2 at 19:05 local: counted per hour */
  burst(v.e, AT(16 * HOUR + 50 * MIN), MIN, 2, "mb_Hr02", "/api/card/1");
  burst(v.e, AT(17 * HOUR + 5 * MIN), MIN, 2, "mb_Hr02", "/api/card/1");
  EXPECT_FIRED("hours", NULL, 0);
  /* Monday 15:10 UTC = 17:10 local: outside, the 3rd call fires */
  burst(v.e, AT(15 * HOUR + 10 * MIN), MIN, 3, "mb_Hr03", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr03", 1);
  assert_non_null(strstr(first("hours")->summary, "Monday"));
  /* Saturday 10:00 UTC = 12:00 local: outside the days */
  burst(v.e, AT(5 * DAY + 10 * HOUR), MIN, 3, "mb_Hr04", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr04", 1);
  /* Friday 22:30 UTC = Saturday 00:30 local */
  burst(v.e, AT(4 * DAY + 22 * HOUR + 30 * MIN), MIN, 3, "mb_Hr05", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr05", 1);
  assert_non_null(strstr(g_f[g_nf - 1].summary, "Saturday"));
  /* Sunday 23:10 UTC = Monday 01:10 local: a weekday, but at night */
  burst(v.e, AT(6 * DAY + 23 * HOUR + 10 * MIN), MIN, 3, "mb_Hr06", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr06", 1);
  assert_non_null(strstr(g_f[g_nf - 1].summary, "01:00-01:59 on a Monday"));
  env_close(&v);
}

/* ---- revoked_key_use, canary -------------------------------------------------------- */

static void test_revoked_key_use(void **state) {
  struct env v;
  char pack[512], hex[2 * KW_FP_LEN + 1];
  uint8_t fp[KW_FP_LEN];
  (void)state;
  key_fp("mb_Old2", fp);
  snprintf(pack, sizeof(pack),
           "rules:\n"
           "  - {id: rev, type: revoked_key_use, action: revoke}\n"
           "revoked: [mb_Old1, \"fp:%s\"]\n",
           kw_fingerprint_hex(fp, hex));
  env_open(&v, pack, NULL);
  /* refused: the revocation works */
  hit(v.e, AT(0), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  hit(v.e, AT(0), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 403, 10, "c/1");
  hit(v.e, AT(0), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 0, -1, "c/1"); /* no answer */
  /* live keys */
  get(v.e, AT(0), "mb_Live", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("rev", NULL, 0);
  /* accepted: fires, by prefix and by fingerprint */
  hit(v.e, AT(MIN), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 200, 10, "c/1");
  EXPECT_FIRED("rev", "mb_Old1", 1);
  assert_string_equal(first("rev")->action, "revoke");
  hit(v.e, AT(MIN), "mb_Old2", "10.1.2.3", "GET", "/api/card/1", 204, 10, "c/1");
  EXPECT_FIRED("rev", "mb_Old2", 1);
  env_close(&v);
}

static void test_canary(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: can, type: canary, severity: low}\n"
               "canaries: [mb_Cana]\n",
           NULL);
  get(v.e, AT(0), "mb_Norm", "10.1.2.3", "/api/card/1");
  hit(v.e, AT(0), NULL, "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  EXPECT_FIRED("can", NULL, 0);
  /* any use, even refused, on the first call, and critical whatever the pack says */
  hit(v.e, AT(MIN), "mb_CanaryXYZ", "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  EXPECT_FIRED("can", "mb_Cana", 1);
  assert_int_equal(first("can")->severity, KW_SEV_CRITICAL);
  env_close(&v);
}

/* ---- match -------------------------------------------------------------------------- */

static const char MATCH_PACK[] =
    "rules:\n"
    "  - id: ua\n"
    "    type: match\n"
    "    conditions: [{field: user_agent, op: regex, value: \"^(sqlmap|nikto)/\"}]\n"
    "  - id: admin-path\n"
    "    type: match\n"
    "    conditions: [{field: path, op: prefix, value: /admin/}]\n"
    "  - id: delete-ok\n"
    "    type: match\n"
    "    conditions:\n"
    "      - {field: method, op: equals, value: DELETE}\n"
    "      - {field: status, op: prefix, value: \"2\"}\n"
    "  - id: bad-net\n"
    "    type: match\n"
    "    conditions: [{field: address, op: cidr, value: 203.0.113.0/24}]\n"
    "  - id: err500\n"
    "    type: match\n"
    "    conditions: [{field: status, op: equals, value: \"500\"}]\n"
    "  - id: dots\n"
    "    type: match\n"
    "    conditions: [{field: path, op: contains, value: \"/../\"}]\n";

static void test_match_conditions(void **state) {
  struct env v;
  int64_t t = AT(0);
  (void)state;
  env_open(&v, MATCH_PACK, NULL);
  /* near misses, one per rule */
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/card/1", 200, 10, "Mozilla sqlmap/1.7");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/administrator", 200, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "DELETE", "/api/card/1", 403, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/card/1", 204, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "203.0.114.1", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/card/1", 502, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/..%2f/card", 200, 10, "c/1");
  EXPECT_FIRED(NULL, NULL, 0);
  /* hits, one key each (throttling is per rule and subject) */
  hit(v.e, t, "mb_Ua01", "10.1.2.3", "GET", "/api/card/1", 200, 10, "sqlmap/1.7#stable");
  EXPECT_FIRED("ua", "mb_Ua01", 1);
  hit(v.e, t, "mb_Adm1", "10.1.2.3", "GET", "/admin/users", 200, 10, "c/1");
  EXPECT_FIRED("admin-path", "mb_Adm1", 1);
  hit(v.e, t, "mb_Del1", "10.1.2.3", "DELETE", "/api/card/1", 204, 10, "c/1");
  EXPECT_FIRED("delete-ok", "mb_Del1", 1);
  hit(v.e, t, "mb_Net1", "203.0.113.77", "GET", "/api/card/1", 200, 10, "c/1");
  EXPECT_FIRED("bad-net", "mb_Net1", 1);
  hit(v.e, t, "mb_500a", "10.1.2.3", "GET", "/api/card/1", 500, 10, "c/1");
  EXPECT_FIRED("err500", "mb_500a", 1);
  hit(v.e, t, "mb_Dot1", "10.1.2.3", "GET", "/api/../etc/passwd", 200, 10, "c/1");
  EXPECT_FIRED("dots", "mb_Dot1", 1);
  EXPECT_FIRED(NULL, NULL, 6);
  env_close(&v);
}

/* Anonymous calls are judged per client address; keyed ones per key, not twice. */
static void test_match_anonymous(void **state) {
  struct env v;
  (void)state;
  env_open(&v, MATCH_PACK, NULL);
  hit(v.e, AT(0), NULL, "192.0.2.1", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  hit(v.e, AT(0), NULL, "192.0.2.2", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  hit(v.e, AT(10 * SEC), NULL, "192.0.2.1", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  EXPECT_FIRED("ua", NULL, 2);
  assert_false(g_f[0].has_key);
  assert_non_null(strstr(g_f[0].details, "192.0.2.1"));
  assert_non_null(strstr(g_f[1].details, "192.0.2.2"));
  /* a keyed call fires once, for the key */
  reset();
  hit(v.e, AT(HOUR), "mb_Key1", "192.0.2.3", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  EXPECT_FIRED("ua", NULL, 1);
  EXPECT_FIRED("ua", "mb_Key1", 1);
  /* an anonymous call without an address cannot be judged per address */
  reset();
  hit(v.e, AT(2 * HOUR), NULL, NULL, "GET", "/api/card/1", 200, 10, "nikto/2.5");
  EXPECT_FIRED("ua", NULL, 0);
  env_close(&v);
}

/* Attacker-controlled strings in a firing's details are valid JSON and come back intact. */
static void test_match_hostile_details(void **state) {
  static const char UA[] = "sqlmap/1 \"q\" \\ <script>alert(1)</script>\n\x1b[31mred\x1b[0m";
  struct env v;
  json_t *j;
  json_error_t je;
  (void)state;
  env_open(&v, MATCH_PACK, NULL);
  hit(v.e, AT(0), "mb_Hos1", "10.1.2.3", "GET", "/api/card/1?q=\"<x>\"", 200, 10, UA);
  EXPECT_FIRED("ua", "mb_Hos1", 1);
  assert_null(strchr(g_f[0].details, '\x1b'));
  assert_null(strchr(g_f[0].details, '\n'));
  j = json_loads(g_f[0].details, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    fail_msg("details are not JSON (%s): %s", je.text, g_f[0].details);
  assert_string_equal(json_string_value(json_object_get(j, "user_agent")), UA);
  assert_string_equal(json_string_value(json_object_get(j, "path")), "/api/card/1?q=\"<x>\"");
  assert_string_equal(json_string_value(json_object_get(j, "client")), "10.1.2.3");
  assert_non_null(json_object_get(j, "rule_source"));
  json_decref(j);
  env_close(&v);
}

/* ---- selectors and exclusions ------------------------------------------------------- */

static void test_key_selectors(void **state) {
  struct env v;
  struct kw_config cfg;
  struct kw_key_name_cfg names[1] = {{.prefix = "mb_Nam1", .name = "billing"}};
  char pack[1024], hex[2 * KW_FP_LEN + 1];
  uint8_t fp[KW_FP_LEN];
  const char *keys[] = {"mb_Sel1", "mb_Nam1", "mb_Oth1", "mb_Exc1", "mb_Exc2"};
  (void)state;
  memset(&cfg, 0, sizeof(cfg));
  cfg.keys = names;
  cfg.keys_count = 1;
  key_fp("mb_Exc2", fp);
  snprintf(pack, sizeof(pack),
           "rules:\n"
           "  - id: only\n"
           "    type: match\n"
           "    keys: [mb_Sel, \"name:billing\"]\n"
           "    conditions: [{field: method, op: equals, value: GET}]\n"
           "  - id: except\n"
           "    type: match\n"
           "    exclude_keys: [mb_Exc1, \"fp:%s\"]\n"
           "    conditions: [{field: method, op: equals, value: GET}]\n",
           kw_fingerprint_hex(fp, hex));
  env_open(&v, pack, &cfg);
  for (size_t i = 0; i < 5; i++)
    get(v.e, AT(0), keys[i], "10.1.2.3", "/api/card/1");
  /* keys: a display-prefix start and a configured name */
  EXPECT_FIRED("only", NULL, 2);
  EXPECT_FIRED("only", "mb_Sel1", 1);
  EXPECT_FIRED("only", "mb_Nam1", 1);
  /* exclude_keys: a prefix and a fingerprint */
  EXPECT_FIRED("except", NULL, 3);
  EXPECT_FIRED("except", "mb_Exc1", 0);
  EXPECT_FIRED("except", "mb_Exc2", 0);
  /* a rule limited to keys never judges anonymous calls */
  reset();
  get(v.e, AT(HOUR), NULL, "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("only", NULL, 0);
  env_close(&v);
}

static void test_exclude(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: ex\n"
               "    type: match\n"
               "    conditions: [{field: method, op: equals, value: GET}]\n"
               "    exclude:\n"
               "      addresses: [10.0.0.0/8, \"2001:db8::/32\"]\n"
               "      user_agents: [kube-probe/]\n"
               "      endpoints: [\"GET /api/health\", \"* /api/session/**\"]\n",
           NULL);
  hit(v.e, AT(0), "mb_Ex01", "10.99.1.1", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Ex01", "2001:db8::5", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Ex01", "192.0.2.1", "GET", "/api/card/1", 200, 10, "kube-probe/1.29");
  hit(v.e, AT(0), "mb_Ex01", "192.0.2.1", "GET", "/api/health", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Ex01", "192.0.2.1", "GET", "/api/session/abc/refresh", 200, 10, "c/1");
  EXPECT_FIRED("ex", NULL, 0);
  /* near each allowlist entry, but outside it */
  hit(v.e, AT(MIN), "mb_Ex02", "11.0.0.1", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, AT(MIN), "mb_Ex03", "192.0.2.1", "GET", "/api/card/1", 200, 10, "my kube-probe/1");
  hit(v.e, AT(MIN), "mb_Ex04", "192.0.2.1", "GET", "/api/healthz", 200, 10, "c/1");
  hit(v.e, AT(MIN), "mb_Ex05", "192.0.2.1", "GET", "/api/sessions", 200, 10, "c/1");
  EXPECT_FIRED("ex", NULL, 4);
  env_close(&v);
}

/* ---- throttling --------------------------------------------------------------------- */

static void test_throttle_once_a_minute(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: all, type: match, conditions: [{field: method, op: equals, value: GET}]}\n",
           NULL);
  /* 100 matching calls 6 s apart over 10 minutes, two keys interleaved */
  for (int i = 0; i < 100; i++) {
    get(v.e, AT(i * 6 * SEC), "mb_Thr1", "10.1.2.3", "/api/card/1");
    get(v.e, AT(i * 6 * SEC + SEC), "mb_Thr2", "10.1.2.3", "/api/card/1");
  }
  EXPECT_FIRED("all", "mb_Thr1", 10);
  EXPECT_FIRED("all", "mb_Thr2", 10);
  for (size_t i = 0, k = 0; i < g_nf; i++) {
    if (strcmp(g_f[i].prefix, "mb_Thr1") != 0)
      continue;
    if (g_f[i].ts != AT((int64_t)k * MIN))
      fail_msg("firing %zu at +%lld s, expected +%zu min", k,
               (long long)((g_f[i].ts - AT(0)) / SEC), k);
    k++;
  }
  /* a burst within one second fires once */
  reset();
  for (int i = 0; i < 1000; i++)
    get(v.e, AT(HOUR) + i, "mb_Thr1", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("all", NULL, 1);
  env_close(&v);
}

/* ---- event time --------------------------------------------------------------------- */

static const char MIXED_PACK[] =
    "rules:\n"
    "  - {id: spike, type: rate_spike, window: 10m, learn: 1h, factor: 4, floor: 10}\n"
    "  - {id: net, type: new_source, prefix4: 16, learn: 1h, min_history: 5}\n"
    "  - {id: fan, type: ip_fanout, window: 1h, max_addresses: 5}\n"
    "  - {id: auth, type: auth_failures, window: 5m, threshold: 4}\n"
    "  - {id: enum, type: enumeration, window: 10m, distinct_ids: 50}\n"
    "  - {id: hours, type: off_hours, hours: \"08:00-18:00\", threshold: 2, keys: [mb_Mx00]}\n"
    "  - {id: newep, type: new_endpoint, learn: 1h, min_history: 5}\n";

/* Incidents injected into the background: a spike, a fan-out, failures, an id walk. */
static void episode(struct kw_engine *e, int which, int64_t *t) {
  char ip[32], path[64];
  for (int i = 0; i < 80; i++) {
    *t += SEC;
    switch (which) {
    case 0: get(e, *t, "mb_Mx01", "10.0.1.1", "/api/card/1"); break;
    case 1:
      snprintf(ip, sizeof(ip), "192.0.2.%d", 1 + i % 12);
      get(e, *t, "mb_Mx02", ip, "/api/card/1");
      break;
    case 2:
      if (i < 6)
        hit(e, *t, "mb_Mx03", "10.0.3.1", "GET", "/api/card/1", 401, 10, "client/1.0");
      break;
    default:
      snprintf(path, sizeof(path), "/api/card/%d", 1000 + i);
      get(e, *t, "mb_Mx04", "10.0.4.1", path);
      break;
    }
  }
}

/* A deterministic two-day mix of traffic (LCG) with four incidents. */
static void mixed_traffic(struct kw_engine *e) {
  static const char *const eps[] = {"/api/card/%u", "/api/dashboard/%u", "/api/user",
                                    "/api/dataset"};
  uint32_t x = 12345, k;
  char key[16], ip[32], path[64];
  int64_t t = AT(0);
  int ep = 0;

  for (int i = 0; i < 20000; i++) {
    x = x * 1103515245u + 12345u;
    t += (x >> 16) % 20 * SEC;
    if (ep < 4 && t > AT((6 + 8 * (int64_t)ep) * HOUR))
      episode(e, ep++, &t);
    k = (x >> 8) % 12;
    snprintf(key, sizeof(key), "mb_Mx%02u", k);
    if ((x >> 9) % 50 == 0)
      snprintf(ip, sizeof(ip), "10.%u.%u.%u", (x >> 4) % 3, (x >> 12) % 4, (x >> 20) % 250 + 1);
    else
      snprintf(ip, sizeof(ip), "10.0.%u.1", k);
    snprintf(path, sizeof(path), eps[(x >> 24) % 4], (x >> 10) % 400);
    hit(e, t, key, ip, (x >> 3) % 17 == 0 ? "POST" : "GET", path,
        (x >> 5) % 40 == 0 ? 401 : 200, (x >> 7) % 100000, "client/1.0");
  }
}

static void test_event_time_replay(void **state) {
  struct env a, b;
  struct fired *first_run;
  size_t n;
  (void)state;
  env_open(&a, MIXED_PACK, NULL);
  mixed_traffic(a.e);
  n = g_nf;
  assert_int_equal(g_lost, 0);
  first_run = g_aux = malloc((n ? n : 1) * sizeof(*first_run));
  assert_non_null(first_run);
  memcpy(first_run, g_f, n * sizeof(*first_run));
  {
    /* several rule types take part */
    size_t types = 0;
    const char *ids[] = {"spike", "net", "fan", "auth", "enum", "hours", "newep"};
    for (size_t i = 0; i < 7; i++) {
      types += fired(ids[i], NULL) > 0;
      print_message("replay: %-6s %zu firings\n", ids[i], fired(ids[i], NULL));
    }
    assert_int_equal(types, 7);
  }
  env_reopen(&b, &a);
  env_close(&a);
  mixed_traffic(b.e);
  assert_int_equal(g_nf, n);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(first_run[i].rule, g_f[i].rule) != 0 || first_run[i].ts != g_f[i].ts ||
        strcmp(first_run[i].prefix, g_f[i].prefix) != 0 ||
        strcmp(first_run[i].summary, g_f[i].summary) != 0 ||
        strcmp(first_run[i].details, g_f[i].details) != 0)
      fail_msg("firing %zu differs: %s %s %lld '%s' %s vs %s %s %lld '%s' %s", i,
               first_run[i].rule, first_run[i].prefix, (long long)first_run[i].ts,
               first_run[i].summary, first_run[i].details, g_f[i].rule, g_f[i].prefix,
               (long long)g_f[i].ts, g_f[i].summary, g_f[i].details);
  }
  env_close(&b);
}

/* ---- baselines ---------------------------------------------------------------------- */


static void on_export(const uint8_t *fp, const void *blob, size_t len, void *ctx) {
  struct blobs *b = ctx;
  assert_non_null(fp);
  assert_true(b->n < 64);
  b->data[b->n] = malloc(len);
  assert_non_null(b->data[b->n]);
  memcpy(b->data[b->n], blob, len);
  b->len[b->n++] = len;
}

static const char BASE_PACK[] =
    "rules:\n"
    "  - {id: spike, type: rate_spike, window: 10m, learn: 1h, factor: 4, floor: 10}\n"
    "  - {id: net, type: new_source, prefix4: 16, learn: 1h, min_history: 5}\n";

static void base_learn(struct kw_engine *e) {
  rate_learn(e, "mb_Bas1");
  rate_learn(e, "mb_Bas2");
}

static void base_after(struct kw_engine *e) {
  burst(e, AT(2 * HOUR), SEC, 40, "mb_Bas1", "/api/card/1");
  get(e, AT(3 * HOUR), "mb_Bas2", "172.20.0.1", "/api/card/1");
}

static void test_baselines_restart(void **state) {
  struct env ref, a, c;
  struct blobs *b = &g_blobs;
  struct fired want[8];
  size_t nwant;
  (void)state;

  /* what an engine that never stopped says */
  env_open(&ref, BASE_PACK, NULL);
  base_learn(ref.e);
  base_after(ref.e);
  EXPECT_FIRED("spike", "mb_Bas1", 1);
  EXPECT_FIRED("net", "mb_Bas2", 1);
  nwant = g_nf;
  assert_true(nwant <= 8);
  memcpy(want, g_f, nwant * sizeof(want[0]));

  /* learn, export, "restart": engine and rule set gone, loaded again from the file */
  env_open(&a, BASE_PACK, NULL);
  base_learn(a.e);
  kw_engine_export(a.e, on_export, b);
  assert_int_equal(b->n, 2);
  assert_int_equal(b->len[0], kw_engine_state_size(a.e));
  env_close(&a);
  env_reopen(&a, &a);
  for (size_t i = 0; i < b->n; i++)
    assert_int_equal(kw_engine_import(a.e, b->data[i], b->len[i]), 0);
  assert_int_equal(kw_engine_tracked(a.e), 2);
  reset();
  base_after(a.e);
  /* past learning, it fires exactly as the engine that never stopped */
  assert_int_equal(g_nf, nwant);
  for (size_t i = 0; i < nwant; i++) {
    assert_string_equal(g_f[i].rule, want[i].rule);
    assert_string_equal(g_f[i].prefix, want[i].prefix);
    assert_true(g_f[i].ts == want[i].ts);
    assert_string_equal(g_f[i].summary, want[i].summary);
  }

  /* without the baselines, the same calls are a first sight: learning, silent */
  env_open(&c, BASE_PACK, NULL);
  base_after(c.e);
  EXPECT_FIRED(NULL, NULL, 0);

  /* a blob of another rule set, or of another size, is refused */
  {
    struct env other;
    env_open(&other, "rules:\n"
                     "  - {id: spike2, type: rate_spike}\n"
                     "  - {id: net, type: new_source}\n",
             NULL);
    assert_int_equal(kw_engine_state_size(other.e), b->len[0]);
    assert_int_equal(kw_engine_import(other.e, b->data[0], b->len[0]), KW_EINVAL);
    assert_int_equal(kw_engine_tracked(other.e), 0);
    env_close(&other);
  }
  assert_int_equal(kw_engine_import(c.e, b->data[0], b->len[0] - 8), KW_EINVAL);
  {
    unsigned char *junk = g_aux = calloc(1, b->len[0]);
    assert_non_null(junk);
    assert_int_equal(kw_engine_import(c.e, junk, b->len[0]), KW_EINVAL);
  }
  env_close(&c);
  env_close(&ref);
  env_close(&a);
  blobs_free(b);
}

/* Baselines belong to the rules, not to where their file stands: the same pack under
 * another path (moved, or named relative to another directory) keeps them. */
static void test_baselines_pack_moved(void **state) {
  struct env a, b;
  (void)state;
  env_open(&a, BASE_PACK, NULL);
  base_learn(a.e);
  kw_engine_export(a.e, on_export, &g_blobs);
  assert_int_equal(g_blobs.n, 2);
  env_open(&b, BASE_PACK, NULL); /* same text, another file */
  assert_string_not_equal(a.path, b.path);
  assert_int_equal(kw_engine_import(b.e, g_blobs.data[0], g_blobs.len[0]), 0);
  assert_int_equal(kw_engine_tracked(b.e), 1);
  env_close(&a);
  env_close(&b);
}

/* ---- explain ------------------------------------------------------------------------ */

#define MAXROWS 32
struct rows {
  size_t n;
  struct {
    char rule[48], subject[48], prefix[24];
    unsigned fires;
    int64_t first_fire;
    double ratio, observed, threshold;
    bool note;
    char notetext[128];
  } r[MAXROWS];
};

static void on_row(const struct kw_explain_row *x, void *ctx) {
  struct rows *rs = ctx;
  assert_true(rs->n < MAXROWS);
  snprintf(rs->r[rs->n].rule, sizeof(rs->r[0].rule), "%s", x->rule->id);
  snprintf(rs->r[rs->n].subject, sizeof(rs->r[0].subject), "%s", x->subject);
  snprintf(rs->r[rs->n].prefix, sizeof(rs->r[0].prefix), "%s", x->prefix);
  rs->r[rs->n].fires = x->fires;
  rs->r[rs->n].first_fire = x->first_fire_us;
  rs->r[rs->n].ratio = x->best_ratio;
  rs->r[rs->n].observed = x->best_observed;
  rs->r[rs->n].threshold = x->best_threshold;
  rs->r[rs->n].note = x->note != NULL;
  snprintf(rs->r[rs->n].notetext, sizeof(rs->r[0].notetext), "%s", x->note ? x->note : "");
  rs->n++;
}

static int row_of(const struct rows *rs, const char *rule, const char *subject) {
  for (size_t i = 0; i < rs->n; i++)
    if (strcmp(rs->r[i].rule, rule) == 0 && strcmp(rs->r[i].subject, subject) == 0)
      return (int)i;
  return -1;
}

static void test_explain_rows(void **state) {
  struct env v;
  struct rows rs = {0};
  char ip[32];
  int i;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: spike, type: rate_spike, window: 10m, learn: 1h, factor: 4, floor: 10}\n"
               "  - {id: net, type: new_source, prefix4: 16, learn: 1h, min_history: 5}\n",
           NULL);
  rate_learn(v.e, "mb_Clos");
  rate_learn(v.e, "mb_Fire");
  burst(v.e, AT(2 * HOUR), SEC, 30, "mb_Clos", "/api/card/1");  /* 30 / 40 */
  burst(v.e, AT(2 * HOUR), SEC, 50, "mb_Fire", "/api/card/1");  /* fires at 40 */
  /* a key that used 20 networks while learning: its set is full */
  for (i = 0; i < 20; i++) {
    snprintf(ip, sizeof(ip), "10.%d.0.1", i);
    get(v.e, AT(i * MIN), "mb_Satu", ip, "/api/card/1");
  }
  get(v.e, AT(2 * HOUR), "mb_Satu", "192.0.2.1", "/api/card/1");

  kw_engine_explain(v.e, NULL, NULL, on_row, &rs);
  i = row_of(&rs, "spike", "mb_Clos");
  assert_true(i >= 0);
  assert_int_equal(rs.r[i].fires, 0);
  assert_true(rs.r[i].observed == 30 && rs.r[i].threshold == 40);
  assert_true(rs.r[i].ratio > 0.74 && rs.r[i].ratio < 0.76);
  assert_string_equal(rs.r[i].prefix, "mb_Clos");
  i = row_of(&rs, "spike", "mb_Fire");
  assert_true(i >= 0);
  assert_int_equal(rs.r[i].fires, 1);
  assert_true(rs.r[i].first_fire == AT(2 * HOUR + 39 * SEC));
  assert_true(rs.r[i].ratio >= 1.0);
  i = row_of(&rs, "net", "mb_Satu");
  assert_true(i >= 0);
  assert_int_equal(rs.r[i].fires, 0);
  assert_true(rs.r[i].note);
  assert_non_null(strstr(rs.r[i].notetext, "saturated"));

  /* filters: one rule, keys starting with a prefix */
  memset(&rs, 0, sizeof(rs));
  kw_engine_explain(v.e, "spike", "mb_F", on_row, &rs);
  assert_int_equal(rs.n, 1);
  assert_string_equal(rs.r[0].subject, "mb_Fire");
  memset(&rs, 0, sizeof(rs));
  kw_engine_explain(v.e, "no-such-rule", NULL, on_row, &rs);
  assert_int_equal(rs.n, 0);
  env_close(&v);
}

/* ---- memory ------------------------------------------------------------------------- */

/* 100,000 keys under the default pack.  Bound: one fixed record per key (engine.h) —
 * for the default pack about 1.6 KiB (nine rule slots: windows of 30 buckets, 32-entry
 * sets, a 512-bit enumeration bitmap); the record array grows by doubling (at most 2 x
 * the records in use) and the fingerprint → index dict adds well under 256 bytes a key.
 * So bytes/key < 2 x record + 256, and in any case < 4 KiB (100,000 keys in < 400 MiB).
 * More means per-key allocations crept in, or the dict is sized for its maximum. */
static void test_memory_per_key(void **state) {
  struct kw_ruleset *rs = NULL;
  struct kw_engine *e = NULL;
  char *packs[] = {"builtin:default"};
  char err[512], key[16];
  size_t bytes;
  (void)state;
  if (kw_ruleset_load(packs, 1, &rs, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  assert_int_equal(kw_engine_create(rs, NULL, &e), 0);
  track(rs, e);
  reset();
  for (int i = 0; i < 100000; i++) {
    snprintf(key, sizeof(key), "k%06d", i);
    get(e, AT((int64_t)i * 10000), key, "10.1.2.3", "/api/card/1");
  }
  assert_int_equal(kw_engine_tracked(e), 100000);
  EXPECT_FIRED(NULL, NULL, 0);
  bytes = kw_engine_bytes(e);
  print_message("engine: 100000 keys, %zu bytes, %zu bytes/key (state record %zu bytes)\n",
                bytes, bytes / 100000, kw_engine_state_size(e));
  assert_true(bytes / 100000 >= kw_engine_state_size(e));
  assert_true(bytes / 100000 < 2 * kw_engine_state_size(e) + 256);
  assert_true(bytes / 100000 < 4096);
  untrack_destroy(rs, e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_rate_spike_fires_at_factor, teardown),
      cmocka_unit_test_teardown(test_rate_spike_near_miss, teardown),
      cmocka_unit_test_teardown(test_rate_spike_learning_silent, teardown),
      cmocka_unit_test_teardown(test_rate_spike_ramp, teardown),
      cmocka_unit_test_teardown(test_rate_spike_ramp_midnight, teardown),
      cmocka_unit_test_teardown(test_rate_spike_floor, teardown),
      cmocka_unit_test_teardown(test_volume_absolute, teardown),
      cmocka_unit_test_teardown(test_volume_small_responses, teardown),
      cmocka_unit_test_teardown(test_volume_baseline, teardown),
      cmocka_unit_test_teardown(test_new_source_learned, teardown),
      cmocka_unit_test_teardown(test_new_source_min_history, teardown),
      cmocka_unit_test_teardown(test_new_source_cidrs, teardown),
      cmocka_unit_test_teardown(test_ip_fanout, teardown),
      cmocka_unit_test_teardown(test_ip_fanout_ages_out, teardown),
      cmocka_unit_test_teardown(test_ip_fanout_large_max, teardown),
      cmocka_unit_test_teardown(test_auth_failures_key, teardown),
      cmocka_unit_test_teardown(test_auth_failures_by_address, teardown),
      cmocka_unit_test_teardown(test_scope_violation, teardown),
      cmocka_unit_test_teardown(test_new_endpoint_per_endpoint, teardown),
      cmocka_unit_test_teardown(test_new_endpoint_per_set, teardown),
      cmocka_unit_test_teardown(test_enumeration, teardown),
      cmocka_unit_test_teardown(test_enumeration_near_miss, teardown),
      cmocka_unit_test_teardown(test_enumeration_per_template, teardown),
      cmocka_unit_test_teardown(test_off_hours_learned, teardown),
      cmocka_unit_test_teardown(test_off_hours_configured, teardown),
      cmocka_unit_test_teardown(test_revoked_key_use, teardown),
      cmocka_unit_test_teardown(test_canary, teardown),
      cmocka_unit_test_teardown(test_match_conditions, teardown),
      cmocka_unit_test_teardown(test_match_anonymous, teardown),
      cmocka_unit_test_teardown(test_match_hostile_details, teardown),
      cmocka_unit_test_teardown(test_key_selectors, teardown),
      cmocka_unit_test_teardown(test_exclude, teardown),
      cmocka_unit_test_teardown(test_throttle_once_a_minute, teardown),
      cmocka_unit_test_teardown(test_event_time_replay, teardown),
      cmocka_unit_test_teardown(test_baselines_restart, teardown),
      cmocka_unit_test_teardown(test_baselines_pack_moved, teardown),
      cmocka_unit_test_teardown(test_explain_rows, teardown),
      cmocka_unit_test_teardown(test_memory_per_key, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
