/* test_engine_state.c — what the engine keeps (analyzer/engine.c): baselines exported and
 * imported across a restart, explain rows (how close each key came to each rule) and the
 * memory per tracked key.
 *
 * Each test writes a small rule pack (short windows and learning periods) into the temp
 * directory, drives the engine with synthetic kw_call records (endpoint templates from
 * kw_endpoint_template(), as the pipeline does) and counts the firings its callback
 * receives; the fixture is kwtest_engine.h.  Every event time is AT(us), T0 + us, T0 being
 * Monday 2025-11-03 00:00:00 UTC.
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

#include "analyzer/engine.h"
#include "analyzer/rules.h"
#include "sidecar/err.h"

#include "kwtest_engine.h"

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
      cmocka_unit_test_teardown(test_baselines_restart, env_teardown),
      cmocka_unit_test_teardown(test_baselines_pack_moved, env_teardown),
      cmocka_unit_test_teardown(test_explain_rows, env_teardown),
      cmocka_unit_test_teardown(test_memory_per_key, env_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
