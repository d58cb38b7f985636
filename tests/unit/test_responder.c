/* test_responder.c — the responder's safeguards and its queue (analyzer/responder.c), and
 * the validation of the responder section of the configuration (sidecar/config.c).
 *
 * Parts:
 *  - the safeguards, through kw_responder_shadow() (it judges every decided revocation at
 *    its own event time and opens no adapter, so no network): one test per safeguard,
 *    each with a near miss that must go the other way — no key, protect (display prefix,
 *    fp:HEX, name:NAME), min_severity, no store for the prefix, key_cooldown, max_per_hour,
 *    max_per_day (each window probed 1 µs either side of its edge), manual decisions
 *    bypassing everything but "no store", and judging oldest first by event time;
 *  - the live responder (kw_responder_init on a private loop, owner_commits false) against
 *    a metabase store whose url is a closed port on 127.0.0.1: dry runs (per decision and
 *    global) send nothing, a queued revocation is retried with backoff and every call is
 *    audited, give_up_after ends it "failed" with a critical alert, and keywatch's own
 *    admin key (by fingerprint) is never revoked, not even manually;
 *  - config errors of the responder section: each names FILE:LINE and the field path,
 *    and a corrected variant of each loads.
 * Automatic decisions come from kw_store_alert() with action "revoke" (as the analyzer
 * makes them), manual ones from kw_store_revocation_add().  Loop tests run the loop in
 * bounded steps (a 10 ms tick, WAIT_MS at most), close the responder, run the loop until
 * it is closed and end with uv_loop_close() == 0.
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "analyzer/responder.h"
#include "sidecar/alerts.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"
#include "sidecar/revocations.h"
#include "sidecar/store.h"
#include "sidecar/timeutil.h"

#include "kwtest_files.h"
#include "kwtest_loop.h"
#include "kwtest_store.h"

#define T0 1795324326000000LL /* 2026-11-22T05:12:06Z */
#define SEC 1000000LL
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)
#define WAIT_MS 10000
#define MAX_ROWS 32

static const char FP_SECRET[] = "test-responder-fingerprint-secret-0123456789abcdef";
static const char ADMIN_ENV[] = "KW_TEST_RESPONDER_MB_ADMIN";
static const char ADMIN_KEY[] = "mb_AdminKeyOfKeywatchItself0123456789abcdefghij=";

static char g_dir[64], g_db[128];

static int setup(void **state) {
  (void)state;
  if (store_temp_dir(g_dir, sizeof(g_dir), g_db, sizeof(g_db), "kwrsp") != 0)
    return -1;
  unset_proxy_env();
  setenv(ADMIN_ENV, ADMIN_KEY, 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unsetenv(ADMIN_ENV);
  return temp_dir_remove(g_dir);
}

/* ---- config ------------------------------------------------------------------------------ */

/* Loads the yaml fmt makes (written to DIR/keywatch.yaml); fails the test on an error. */
static struct kw_config *load(const char *fmt, ...) {
  char yaml[4096], path[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(yaml, sizeof(yaml), fmt, ap);
  va_end(ap);
  snprintf(path, sizeof(path), "%s/keywatch.yaml", g_dir);
  return config_load_text(path, yaml);
}

/* The safeguards' configuration for shadow tests: a metabase store for mb_ keys, the
 * defaults otherwise (min_severity high, key_cooldown 24h, 3 an hour, 10 a day). */
#define SHADOW_YAML(extra)                                                                 \
  "responder:\n"                                                                           \
  "  stores:\n"                                                                            \
  "    - {name: mb, type: metabase, url: 'http://127.0.0.1:9', prefixes: [mb_]}\n"        \
  extra

/* ---- store -------------------------------------------------------------------------------- */

/* sql_int() of the statement fmt makes. */
static int64_t sql_intf(const char *fmt, ...) {
  char sql[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof(sql), fmt, ap);
  va_end(ap);
  return sql_int(g_db, sql);
}

/* The key whose fingerprint is byte b repeated exists (a DELETE an hour before T0). */
static void add_key_b(struct kw_store *st, int b, const char *prefix) {
  uint8_t fp[KW_FP_LEN];
  fp_fill(fp, b);
  add_key(st, fp, prefix, T0 - HOUR, "DELETE", 204);
}

static int64_t newest_id(struct kw_store *st);

/* An automatic decision: a new alert of rule (one rule per decision, so none is grouped
 * into an earlier alert) with action revoke, for fp (NULL: the rule fired for an
 * address), at ev.  Returns the revocation's id. */
static int64_t fire_fp(struct kw_store *st, const char *rule, const uint8_t *fp, int sev,
                       int64_t ev) {
  struct kw_firing f = {.rule = rule, .type = "match", .severity = sev, .action = "revoke",
                        .has_key = fp != NULL, .ts_us = ev, .summary = "deleted a card",
                        .details = "{}"};
  int64_t alert;
  bool created;
  if (fp)
    memcpy(f.fp, fp, KW_FP_LEN);
  assert_int_equal(kw_store_alert(st, &f, 0, NULL, 0, &alert, &created), 0);
  assert_true(created);
  return newest_id(st);
}

static int64_t fire(struct kw_store *st, const char *rule, int b, int sev, int64_t ev) {
  uint8_t fp[KW_FP_LEN];
  fp_fill(fp, b);
  return fire_fp(st, rule, b ? fp : NULL, sev, ev);
}

/* A manual decision (`keywatch revoke`) for fp at ev (0: now). */
static int64_t manual_fp(struct kw_store *st, const uint8_t *fp, int sev, int64_t ev,
                         const char *store, bool dry_run) {
  int64_t id = 0;
  struct kw_revocation_new n = {.fp = fp, .origin = "manual", .decided_by = "cli:alice",
                                .reason = "leaked", .store = store, .severity = sev,
                                .dry_run = dry_run, .event_us = ev};
  assert_int_equal(kw_store_revocation_add(st, &n, &id), 0);
  return id;
}

static int64_t manual(struct kw_store *st, int b, int sev, int64_t ev, const char *store) {
  uint8_t fp[KW_FP_LEN];
  fp_fill(fp, b);
  return manual_fp(st, fp, sev, ev, store, false);
}

/* One revocation, copied out of the callback. */
struct rev {
  int64_t id, event, attempts, next_try, give_up, updated, decided;
  bool found, dry_run;
  char state[32], store[32], result[512], prefix[32];
};

static int on_rev(const struct kw_revocation *r, void *ctx) {
  struct rev *o = ctx;
  o->found = true;
  o->id = r->id;
  o->event = r->event_us;
  o->attempts = r->attempts;
  o->next_try = r->next_try_us;
  o->give_up = r->give_up_us;
  o->updated = r->updated_us;
  o->decided = r->decided_us;
  o->dry_run = r->dry_run;
  snprintf(o->state, sizeof(o->state), "%s", r->state ? r->state : "");
  snprintf(o->store, sizeof(o->store), "%s", r->store ? r->store : "");
  snprintf(o->result, sizeof(o->result), "%s", r->result ? r->result : "");
  snprintf(o->prefix, sizeof(o->prefix), "%s", r->prefix ? r->prefix : "");
  return 0;
}

static struct rev row(struct kw_store *st, int64_t id) {
  struct rev r = {0};
  struct kw_revocations_query q = {.id = id};
  assert_int_equal(kw_store_revocations(st, &q, on_rev, &r), 0);
  assert_true(r.found);
  return r;
}

static int64_t newest_id(struct kw_store *st) {
  struct rev r = {0};
  struct kw_revocations_query q = {.limit = 1};
  assert_int_equal(kw_store_revocations(st, &q, on_rev, &r), 0);
  assert_true(r.found);
  return r.id;
}

/* ---- shadow ------------------------------------------------------------------------------ */

struct srow {
  int64_t id, event;
  char verdict[16], store[32], why[400], prefix[32];
};

struct shadow {
  struct srow v[MAX_ROWS];
  size_t n;
};

static void on_shadow(const struct kw_shadow_row *r, void *ctx) {
  struct shadow *sh = ctx;
  assert_true(sh->n < MAX_ROWS);
  struct srow *o = &sh->v[sh->n++];
  o->id = r->rev->id;
  o->event = r->rev->event_us;
  snprintf(o->verdict, sizeof(o->verdict), "%s", r->verdict);
  snprintf(o->store, sizeof(o->store), "%s", r->store ? r->store : "");
  snprintf(o->why, sizeof(o->why), "%s", r->why ? r->why : "");
  snprintf(o->prefix, sizeof(o->prefix), "%s", r->rev->prefix ? r->rev->prefix : "");
}

static void shadow(struct kw_store *st, const struct kw_config *cfg, struct shadow *sh) {
  char err[512] = "";
  memset(sh, 0, sizeof(*sh));
  if (kw_responder_shadow(st, cfg, on_shadow, sh, err, sizeof(err)) != 0)
    fail_msg("shadow: %s", err);
}

static const struct srow *verdict_of(const struct shadow *sh, int64_t id) {
  for (size_t i = 0; i < sh->n; i++)
    if (sh->v[i].id == id)
      return &sh->v[i];
  fail_msg("revocation %lld was not judged", (long long)id);
  return NULL;
}

/* Asserts the verdict of id, and that why contains want (NULL: any). */
static void expect(const struct shadow *sh, int64_t id, const char *verdict, const char *want) {
  const struct srow *r = verdict_of(sh, id);
  if (r == NULL) /* (fail_msg() does not return; GCC -O3 does not know that) */
    return;
  if (strcmp(r->verdict, verdict) != 0 || (want && strstr(r->why, want) == NULL))
    fail_msg("revocation %lld (%s at +%llds): %s \"%s\", wanted %s \"%s\"", (long long)id,
             r->prefix, (long long)((r->event - T0) / SEC), r->verdict, r->why, verdict,
             want ? want : "*");
}

static void test_shadow_no_key(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML(""));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  add_key_b(st, 0x01, "mb_Keyd");
  int64_t anon = fire(st, "by-address", 0, KW_SEV_CRITICAL, T0);
  int64_t keyed = fire(st, "by-key", 0x01, KW_SEV_CRITICAL, T0 + 1);
  shadow(st, cfg, &sh);
  assert_int_equal(sh.n, 2);
  expect(&sh, anon, "suppressed", "no key");
  assert_string_equal(verdict_of(&sh, anon)->store, "");
  expect(&sh, keyed, "revoke", "queued at mb");
  assert_string_equal(verdict_of(&sh, keyed)->store, "mb");
  /* the judgements are recorded: nothing is left decided, a second shadow judges none */
  assert_string_equal(row(st, anon).state, "suppressed");
  assert_non_null(strstr(row(st, anon).result, "no key"));
  assert_string_equal(row(st, keyed).state, "queued");
  assert_string_equal(row(st, keyed).store, "mb");
  shadow(st, cfg, &sh);
  assert_int_equal(sh.n, 0);
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_protect(void **state) {
  uint8_t fp_prot[KW_FP_LEN], fp_near[KW_FP_LEN];
  char hex[2 * KW_FP_LEN + 1];
  struct shadow sh;
  (void)state;

  fp_fill(fp_prot, 0x22);
  fp_fill(fp_near, 0x22);
  fp_near[KW_FP_LEN - 1] = 0x23; /* one byte off */
  struct kw_config *cfg =
      load(SHADOW_YAML("  protect: [mb_Prot, 'fp:%s', 'name:vip']\n"),
           kw_fingerprint_hex(fp_prot, hex));
  struct kw_store *st = store_open(g_db, 0);
  add_key_b(st, 0x21, "mb_Prot");
  add_key_b(st, 0x24, "mb_Prou"); /* the prefix selector's near miss */
  add_key(st, fp_prot, "mb_Fing", T0 - HOUR, "DELETE", 204);
  add_key(st, fp_near, "mb_Fin2", T0 - HOUR, "DELETE", 204);
  add_key_b(st, 0x25, "mb_Name");
  add_key_b(st, 0x26, "mb_Nam2");
  assert_int_equal(kw_store_name_key(st, NULL, "mb_Name", "vip"), 1);
  assert_int_equal(kw_store_name_key(st, NULL, "mb_Nam2", "vip2"), 1);
  assert_int_equal(kw_store_commit(st), 0);

  int64_t by_prefix = fire(st, "r1", 0x21, KW_SEV_CRITICAL, T0);
  int64_t prefix_near = fire(st, "r2", 0x24, KW_SEV_CRITICAL, T0 + 1);
  int64_t by_fp = fire_fp(st, "r3", fp_prot, KW_SEV_CRITICAL, T0 + 2);
  int64_t fp_near_id = fire_fp(st, "r4", fp_near, KW_SEV_CRITICAL, T0 + 3);
  int64_t by_name = fire(st, "r5", 0x25, KW_SEV_CRITICAL, T0 + 4);
  int64_t name_near = fire(st, "r6", 0x26, KW_SEV_CRITICAL, T0 + 5);
  shadow(st, cfg, &sh);
  assert_int_equal(sh.n, 6);
  expect(&sh, by_prefix, "suppressed", "protected (responder.protect.0: mb_Prot)");
  expect(&sh, prefix_near, "revoke", NULL);
  expect(&sh, by_fp, "suppressed", "responder.protect.1");
  expect(&sh, fp_near_id, "revoke", NULL);
  expect(&sh, by_name, "suppressed", "protected (responder.protect.2: vip)");
  expect(&sh, name_near, "revoke", NULL);
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_min_severity(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML("  min_severity: high\n"));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  assert_int_equal(cfg->responder.min_sev, KW_SEV_HIGH);
  add_key_b(st, 0x01, "mb_Aaaa");
  add_key_b(st, 0x02, "mb_Bbbb");
  add_key_b(st, 0x03, "mb_Cccc");
  int64_t high = fire(st, "r1", 0x01, KW_SEV_HIGH, T0);
  int64_t medium = fire(st, "r2", 0x02, KW_SEV_MEDIUM, T0 + 1);
  int64_t critical = fire(st, "r3", 0x03, KW_SEV_CRITICAL, T0 + 2);
  shadow(st, cfg, &sh);
  expect(&sh, high, "revoke", "queued at mb");
  expect(&sh, medium, "suppressed",
         "severity medium is below responder.min_severity (high)");
  expect(&sh, critical, "revoke", NULL);
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_no_store(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML(""));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  add_key_b(st, 0x01, "sk_live");
  add_key_b(st, 0x02, "mb_Live");
  add_key_b(st, 0x03, "m_bLive"); /* near miss the other way: not mb_ */
  int64_t other = fire(st, "r1", 0x01, KW_SEV_CRITICAL, T0);
  int64_t mb = fire(st, "r2", 0x02, KW_SEV_CRITICAL, T0 + 1);
  int64_t almost = fire(st, "r3", 0x03, KW_SEV_CRITICAL, T0 + 2);
  shadow(st, cfg, &sh);
  expect(&sh, other, "suppressed",
         "no configured key store handles keys like sk_live (responder.stores)");
  assert_string_equal(verdict_of(&sh, other)->store, "");
  expect(&sh, mb, "revoke", "queued at mb");
  assert_string_equal(verdict_of(&sh, mb)->store, "mb");
  expect(&sh, almost, "suppressed", "no configured key store");
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_cooldown(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML("  key_cooldown: 1h\n"));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  add_key_b(st, 0x01, "mb_Aaaa");
  add_key_b(st, 0x02, "mb_Bbbb");
  int64_t first = fire(st, "r1", 0x01, KW_SEV_CRITICAL, T0);
  int64_t within = fire(st, "r2", 0x01, KW_SEV_CRITICAL, T0 + HOUR - 1);
  int64_t other_key = fire(st, "r3", 0x02, KW_SEV_CRITICAL, T0 + 1);
  int64_t after = fire(st, "r4", 0x01, KW_SEV_CRITICAL, T0 + HOUR);
  int64_t again = fire(st, "r5", 0x01, KW_SEV_CRITICAL, T0 + 2 * HOUR - 1);
  shadow(st, cfg, &sh);
  assert_int_equal(sh.n, 5);
  expect(&sh, first, "revoke", NULL);
  expect(&sh, within, "suppressed", "cooldown: this key was already acted on 3599s before "
                                    "(responder.key_cooldown 1h)");
  expect(&sh, other_key, "revoke", NULL); /* the cooldown is per key */
  expect(&sh, after, "revoke", NULL);     /* 1 µs later: the cooldown is over */
  expect(&sh, again, "suppressed", "cooldown"); /* counted from the latest let through */
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_budget_hour(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML("  max_per_hour: 2\n  max_per_day: 100\n"));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  for (int b = 1; b <= 5; b++) {
    char p[16];
    snprintf(p, sizeof(p), "mb_Key%d", b);
    add_key_b(st, b, p);
  }
  int64_t a = fire(st, "r1", 1, KW_SEV_CRITICAL, T0);
  int64_t b = fire(st, "r2", 2, KW_SEV_CRITICAL, T0 + SEC);
  int64_t c = fire(st, "r3", 3, KW_SEV_CRITICAL, T0 + 2 * SEC);
  int64_t d = fire(st, "r4", 4, KW_SEV_CRITICAL, T0 + HOUR);
  int64_t e = fire(st, "r5", 5, KW_SEV_CRITICAL, T0 + HOUR + 1);
  shadow(st, cfg, &sh);
  expect(&sh, a, "revoke", NULL);
  expect(&sh, b, "revoke", NULL);
  expect(&sh, c, "suppressed", "budget exhausted: 2 automatic revocations in the last hour "
                               "(responder.max_per_hour 2)");
  expect(&sh, d, "suppressed", "in the last hour"); /* exactly 1 h after the first */
  expect(&sh, e, "revoke", NULL);                   /* 1 h + 1 µs: the first has left */
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_budget_day(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML("  max_per_hour: 2\n  max_per_day: 3\n"));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  for (int b = 1; b <= 6; b++) {
    char p[16];
    snprintf(p, sizeof(p), "mb_Key%d", b);
    add_key_b(st, b, p);
  }
  int64_t a = fire(st, "r1", 1, KW_SEV_CRITICAL, T0);
  int64_t b = fire(st, "r2", 2, KW_SEV_CRITICAL, T0 + 2 * HOUR);
  int64_t c = fire(st, "r3", 3, KW_SEV_CRITICAL, T0 + 4 * HOUR);
  int64_t d = fire(st, "r4", 4, KW_SEV_CRITICAL, T0 + 6 * HOUR);
  int64_t e = fire(st, "r5", 5, KW_SEV_CRITICAL, T0 + DAY);
  int64_t f = fire(st, "r6", 6, KW_SEV_CRITICAL, T0 + DAY + 1);
  shadow(st, cfg, &sh);
  expect(&sh, a, "revoke", NULL);
  expect(&sh, b, "revoke", NULL);
  expect(&sh, c, "revoke", NULL);
  expect(&sh, d, "suppressed", "budget exhausted: 3 automatic revocations in the last day "
                               "(responder.max_per_day 3)");
  expect(&sh, e, "suppressed", "in the last day");
  expect(&sh, f, "revoke", NULL);
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_manual(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML("  min_severity: critical\n"
                                           "  key_cooldown: 24h\n"
                                           "  max_per_hour: 1\n"
                                           "  max_per_day: 1\n"
                                           "  protect: [mb_Prot]\n"));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  add_key_b(st, 0x01, "mb_Auto");
  add_key_b(st, 0x02, "mb_Budg");
  add_key_b(st, 0x03, "mb_Prot");
  add_key_b(st, 0x04, "sk_Nost");
  add_key_b(st, 0x05, "mb_Low5");
  int64_t auto1 = fire(st, "r1", 0x01, KW_SEV_CRITICAL, T0); /* spends the budget */
  int64_t auto_budget = fire(st, "r2", 0x02, KW_SEV_CRITICAL, T0 + 1 * SEC);
  int64_t man_budget = manual(st, 0x02, KW_SEV_CRITICAL, T0 + 2 * SEC, NULL);
  int64_t auto_prot = fire(st, "r3", 0x03, KW_SEV_CRITICAL, T0 + 3 * SEC);
  int64_t man_prot = manual(st, 0x03, KW_SEV_LOW, T0 + 4 * SEC, NULL);
  int64_t auto_low = fire(st, "r4", 0x05, KW_SEV_HIGH, T0 + 5 * SEC);
  int64_t man_low = manual(st, 0x05, KW_SEV_INFO, T0 + 6 * SEC, NULL);
  int64_t auto_cool = fire(st, "r5", 0x01, KW_SEV_CRITICAL, T0 + 7 * SEC);
  int64_t man_cool = manual(st, 0x01, KW_SEV_CRITICAL, T0 + 8 * SEC, NULL);
  int64_t man_nostore = manual(st, 0x04, KW_SEV_CRITICAL, T0 + 9 * SEC, NULL);
  int64_t man_named = manual(st, 0x05, KW_SEV_CRITICAL, T0 + 10 * SEC, "mb");
  int64_t man_unknown = manual(st, 0x05, KW_SEV_CRITICAL, T0 + 11 * SEC, "vault");
  shadow(st, cfg, &sh);
  assert_int_equal(sh.n, 12);
  expect(&sh, auto1, "revoke", NULL);
  expect(&sh, auto_budget, "suppressed", "budget exhausted");
  expect(&sh, man_budget, "revoke", NULL);
  expect(&sh, auto_prot, "suppressed", "protected");
  expect(&sh, man_prot, "revoke", NULL);
  expect(&sh, auto_low, "suppressed", "below responder.min_severity");
  expect(&sh, man_low, "revoke", NULL);
  expect(&sh, auto_cool, "suppressed", "cooldown");
  expect(&sh, man_cool, "revoke", NULL);
  expect(&sh, man_nostore, "suppressed", "no configured key store handles keys like sk_Nost");
  expect(&sh, man_named, "revoke", "queued at mb");
  expect(&sh, man_unknown, "suppressed", "no key store named 'vault' is configured");
  /* manual revocations do not spend the automatic budget */
  int64_t n = -1;
  assert_int_equal(kw_store_revocations_since(st, 0, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

static void test_shadow_oldest_first(void **state) {
  struct kw_config *cfg = load(SHADOW_YAML("  max_per_hour: 1\n"));
  struct kw_store *st = store_open(g_db, 0);
  struct shadow sh;
  (void)state;

  add_key_b(st, 0x01, "mb_Late");
  add_key_b(st, 0x02, "mb_Earl");
  add_key_b(st, 0x03, "mb_Midd");
  /* inserted latest first */
  int64_t late = fire(st, "r1", 0x01, KW_SEV_CRITICAL, T0 + 10 * SEC);
  int64_t early = fire(st, "r2", 0x02, KW_SEV_CRITICAL, T0);
  int64_t mid = fire(st, "r3", 0x03, KW_SEV_CRITICAL, T0 + 5 * SEC);
  int64_t tie = manual(st, 0x03, KW_SEV_CRITICAL, T0 + 5 * SEC, NULL); /* same time: by id */
  assert_true(late < early && early < mid && mid < tie);
  shadow(st, cfg, &sh);
  assert_int_equal(sh.n, 4);
  assert_int_equal(sh.v[0].id, early);
  assert_int_equal(sh.v[1].id, mid);
  assert_int_equal(sh.v[2].id, tie);
  assert_int_equal(sh.v[3].id, late);
  /* so the budget went to the earliest, not to the first inserted */
  expect(&sh, early, "revoke", NULL);
  expect(&sh, mid, "suppressed", "budget exhausted");
  expect(&sh, late, "suppressed", "budget exhausted");
  expect(&sh, tie, "revoke", NULL);
  assert_int_equal(kw_store_close(st), 0);
  kw_config_destroy(cfg);
}

/* ---- the live responder -------------------------------------------------------------- */

struct live {
  uv_loop_t loop;
  struct kw_store *st;
  struct kw_config *cfg;
  struct kw_fingerprint *fpr;
  struct kw_responder *r;
  int closed;
};

/* A live responder over a store with a metabase store on a closed port. */
static void live_open(struct live *l, bool dry_run, const char *give_up,
                      const char *retry_initial, const char *retry_max) {
  memset(l, 0, sizeof(*l));
  l->cfg = load("responder:\n"
                "  dry_run: %s\n"
                "  give_up_after: %s\n"
                "  retry_initial: %s\n"
                "  retry_max: %s\n"
                "  stores:\n"
                "    - name: mb\n"
                "      type: metabase\n"
                "      url: http://127.0.0.1:%d\n"
                "      credential: {env: %s}\n"
                "      timeout: 2s\n",
                dry_run ? "true" : "false", give_up, retry_initial, retry_max,
                free_port(SOCK_STREAM), ADMIN_ENV);
  assert_int_equal(kw_fingerprint_create_from(FP_SECRET, strlen(FP_SECRET), &l->fpr), 0);
  assert_int_equal(uv_loop_init(&l->loop), 0);
  l->st = store_open(g_db, 0);
}

static void live_start(struct live *l) {
  char err[512] = "";
  struct kw_responder_opts o = {.store = l->st, .cfg = l->cfg, .fpr = l->fpr,
                                .owner_commits = false};
  if (kw_responder_init(&l->loop, &o, &l->r, err, sizeof(err)) != 0)
    fail_msg("kw_responder_init: %s", err);
}

typedef bool (*live_pred)(struct live *l, int64_t id, int64_t arg);

/* Runs the loop until pred holds (true) or ms pass (false). */
static bool live_within(struct live *l, uint64_t ms, live_pred pred, int64_t id, int64_t arg) {
  uv_timer_t tick;
  bool ok;
  uv_timer_init(&l->loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  uv_update_time(&l->loop);
  uint64_t end = uv_now(&l->loop) + ms;
  while (!(ok = pred(l, id, arg)) && uv_now(&l->loop) < end)
    uv_run(&l->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&l->loop, UV_RUN_NOWAIT);
  return ok;
}

static bool live_until(struct live *l, live_pred pred, int64_t id, int64_t arg) {
  return live_within(l, WAIT_MS, pred, id, arg);
}

static bool never(struct live *l, int64_t id, int64_t arg) {
  (void)l;
  (void)id;
  (void)arg;
  return false;
}

/* Runs the loop for ms (several responder ticks). */
static void live_for(struct live *l, uint64_t ms) {
  live_within(l, ms, never, 0, 0);
}

static bool judged(struct live *l, int64_t id, int64_t arg) {
  (void)arg;
  return strcmp(row(l->st, id).state, "decided") != 0;
}

static bool attempted(struct live *l, int64_t id, int64_t n) {
  return row(l->st, id).attempts >= n;
}

static bool failed(struct live *l, int64_t id, int64_t arg) {
  (void)arg;
  return strcmp(row(l->st, id).state, "failed") == 0;
}

static void live_close(struct live *l) {
  kw_responder_close(l->r, on_closed, &l->closed);
  uv_run(&l->loop, UV_RUN_DEFAULT);
  assert_int_equal(l->closed, 1);
  assert_int_equal(uv_loop_close(&l->loop), 0);
  assert_int_equal(kw_store_close(l->st), 0);
  kw_config_destroy(l->cfg);
  kw_fingerprint_destroy(l->fpr);
}

struct calls {
  int n, errors;
  char request[64], store[32];
  int status;
};

static int on_call(int64_t ts, const struct kw_revocation_call *c, void *ctx) {
  struct calls *cs = ctx;
  (void)ts;
  cs->n++;
  cs->errors += strcmp(c->result, "error") == 0;
  snprintf(cs->request, sizeof(cs->request), "%s", c->request);
  snprintf(cs->store, sizeof(cs->store), "%s", c->store);
  cs->status = c->status;
  return 0;
}

static struct calls calls_of(struct kw_store *st, int64_t id) {
  struct calls cs = {0};
  assert_int_equal(kw_store_revocation_calls(st, id, on_call, &cs), 0);
  return cs;
}

static void test_live_dry_run_decision(void **state) {
  struct live l;
  struct kw_responder_stats s;
  (void)state;

  live_open(&l, false, "1h", "500ms", "1s");
  add_key_b(l.st, 0x01, "mb_Dryr");
  add_key_b(l.st, 0x02, "mb_Real");
  uint8_t fp1[KW_FP_LEN];
  fp_fill(fp1, 0x01);
  int64_t dry = manual_fp(l.st, fp1, KW_SEV_CRITICAL, 0, NULL, true);
  int64_t real = manual(l.st, 0x02, KW_SEV_CRITICAL, 0, NULL); /* the near miss */
  assert_int_equal(kw_store_commit(l.st), 0);
  live_start(&l);
  assert_true(live_until(&l, judged, dry, 0));
  assert_true(live_until(&l, attempted, real, 1));

  struct rev r = row(l.st, dry);
  assert_string_equal(r.state, "dry_run");
  assert_true(r.dry_run);
  assert_string_equal(r.store, "mb");
  assert_string_equal(r.result, "dry run: would revoke at mb");
  assert_int_equal(r.attempts, 0);
  assert_int_equal(calls_of(l.st, dry).n, 0);
  r = row(l.st, real);
  assert_string_equal(r.state, "queued");
  assert_false(r.dry_run);
  assert_true(calls_of(l.st, real).n >= 1);
  kw_responder_stats(l.r, &s);
  assert_int_equal(s.judged, 2);
  assert_int_equal(s.dry_run, 1);
  assert_int_equal(s.queued, 1);
  live_close(&l);
  /* committed by the responder itself */
  assert_int_equal(sql_intf("SELECT count(*) FROM revocations WHERE id = %lld AND"
                            " state = 'dry_run' AND dry_run = 1",
                            (long long)dry),
                   1);
  assert_int_equal(sql_intf("SELECT count(*) FROM revocation_calls WHERE revocation_id = %lld",
                            (long long)dry),
                   0);
}

static void test_live_dry_run_global(void **state) {
  struct live l;
  struct kw_responder_stats s;
  (void)state;

  live_open(&l, true, "1h", "500ms", "1s");
  add_key_b(l.st, 0x01, "mb_Auto");
  add_key_b(l.st, 0x02, "mb_Manu");
  int64_t autom = fire(l.st, "card-delete", 0x01, KW_SEV_CRITICAL, kw_time_now());
  int64_t man = manual(l.st, 0x02, KW_SEV_CRITICAL, 0, NULL);
  assert_int_equal(kw_store_commit(l.st), 0);
  live_start(&l);
  assert_true(live_until(&l, judged, autom, 0));
  assert_true(live_until(&l, judged, man, 0));
  live_for(&l, 600); /* a few more ticks: still nothing is sent */
  struct rev r = row(l.st, autom);
  assert_string_equal(r.state, "dry_run");
  assert_true(r.dry_run);
  assert_string_equal(r.result, "dry run: would revoke at mb");
  assert_string_equal(row(l.st, man).state, "dry_run");
  kw_responder_stats(l.r, &s);
  assert_int_equal(s.dry_run, 2);
  assert_int_equal(s.calls, 0);
  assert_true(kw_responder_idle(l.r));
  live_close(&l);
  assert_int_equal(sql_intf("SELECT count(*) FROM revocation_calls"), 0);
  /* a dry run spends no budget */
  assert_int_equal(sql_intf("SELECT count(*) FROM revocations WHERE state = 'dry_run'"), 2);
}

/* next_try - updated of a row just retried: the backoff it was given (updated is written a
 * moment after next_try is computed). */
static void expect_backoff(const struct rev *r, int64_t ms) {
  int64_t d = r->next_try - r->updated;
  if (d > ms * 1000 || d < (ms - 50) * 1000)
    fail_msg("attempt %lld: next try %lld µs after the update, wanted %lld ms",
             (long long)r->attempts, (long long)d, (long long)ms);
}

static void test_live_retry(void **state) {
  struct live l;
  struct kw_responder_stats s;
  (void)state;

  live_open(&l, false, "1h", "200ms", "500ms");
  add_key_b(l.st, 0x01, "mb_Retr");
  int64_t id = manual(l.st, 0x01, KW_SEV_CRITICAL, 0, NULL);
  assert_int_equal(kw_store_commit(l.st), 0);
  live_start(&l);

  /* first attempt: refused, queued again with next_try = now + retry_initial */
  assert_true(live_until(&l, attempted, id, 1));
  int64_t now = kw_time_now();
  struct rev r = row(l.st, id);
  assert_string_equal(r.state, "queued");
  assert_string_equal(r.store, "mb");
  assert_int_equal(r.attempts, 1);
  assert_true(r.next_try > now);
  expect_backoff(&r, 200);
  assert_true(r.give_up >= r.decided + HOUR && r.give_up < r.decided + HOUR + 5 * SEC);
  struct calls cs = calls_of(l.st, id);
  assert_int_equal(cs.n, 1);
  assert_int_equal(cs.errors, 1);
  assert_string_equal(cs.request, "GET /api/api-key");
  assert_string_equal(cs.store, "mb");
  assert_true(cs.status < 0);
  /* durable: another connection sees the attempt */
  assert_int_equal(sql_intf("SELECT attempts FROM revocations WHERE id = %lld", (long long)id),
                   1);

  /* later attempts, none before its next_try; the backoff doubles up to retry_max */
  for (int64_t n = 2; n <= 3; n++) {
    int64_t due = r.next_try;
    assert_true(live_until(&l, attempted, id, n));
    assert_true(kw_time_now() >= due);
    r = row(l.st, id);
    assert_string_equal(r.state, "queued");
    assert_int_equal(r.attempts, n);
    expect_backoff(&r, n == 2 ? 400 : 500);
  }
  cs = calls_of(l.st, id);
  assert_int_equal(cs.n, 3);
  assert_int_equal(cs.errors, 3);
  kw_responder_stats(l.r, &s);
  assert_int_equal(s.retried, 3);
  assert_int_equal(s.calls, 3);
  assert_int_equal(s.failed, 0);
  assert_false(kw_responder_idle(l.r));
  live_close(&l);
  /* closed with the revocation still queued: it is retried after a restart */
  assert_int_equal(sql_intf("SELECT count(*) FROM revocations WHERE id = %lld AND"
                            " state = 'queued' AND attempts = 3",
                            (long long)id),
                   1);
}

struct alerts_seen {
  int n, severity;
  char prefix[32], summary[600];
};

static int on_alert(const struct kw_alert_row *a, void *ctx) {
  struct alerts_seen *as = ctx;
  as->n++;
  as->severity = a->severity;
  snprintf(as->prefix, sizeof(as->prefix), "%s", a->prefix ? a->prefix : "");
  snprintf(as->summary, sizeof(as->summary), "%s", a->summary ? a->summary : "");
  return 0;
}

static void test_live_give_up(void **state) {
  struct live l;
  struct kw_responder_stats s;
  struct alerts_seen as = {0};
  struct kw_alerts_query q = {.rule = "responder.revocation-failed", .min_severity = -1};
  (void)state;

  live_open(&l, false, "300ms", "100ms", "100ms");
  add_key_b(l.st, 0x01, "mb_Fail");
  int64_t id = manual(l.st, 0x01, KW_SEV_CRITICAL, 0, NULL);
  assert_int_equal(kw_store_commit(l.st), 0);
  live_start(&l);
  assert_true(live_until(&l, attempted, id, 1));
  /* not failed at the first error: retried until give_up_after */
  assert_string_equal(row(l.st, id).state, "queued");
  assert_int_equal(kw_store_alerts(l.st, &q, on_alert, &as), 0);
  assert_int_equal(as.n, 0);

  assert_true(live_until(&l, failed, id, 0));
  struct rev r = row(l.st, id);
  assert_true(r.attempts >= 2);
  assert_non_null(strstr(r.result, "gave up after"));
  assert_non_null(strstr(r.result, "(responder.give_up_after 300ms)"));
  assert_true(kw_time_now() >= r.give_up);
  struct calls cs = calls_of(l.st, id);
  assert_int_equal(cs.n, r.attempts);
  assert_int_equal(cs.errors, r.attempts);
  assert_int_equal(kw_store_alerts(l.st, &q, on_alert, &as), 0);
  assert_int_equal(as.n, 1);
  assert_int_equal(as.severity, KW_SEV_CRITICAL);
  assert_string_equal(as.prefix, "mb_Fail");
  assert_non_null(strstr(as.summary, "revocation of mb_Fail at mb failed"));
  kw_responder_stats(l.r, &s);
  assert_int_equal(s.failed, 1);
  /* failed is final: no further attempt */
  int64_t attempts = r.attempts;
  live_for(&l, 600);
  assert_int_equal(row(l.st, id).attempts, attempts);
  assert_true(kw_responder_idle(l.r));
  live_close(&l);
  assert_int_equal(sql_intf("SELECT attempts FROM revocations WHERE id = %lld", (long long)id),
                   attempts);
  assert_int_equal(sql_intf("SELECT count(*) FROM alerts WHERE rule ="
                            " 'responder.revocation-failed' AND severity = 4"),
                   1);
}

static void test_live_own_key(void **state) {
  struct live l;
  uint8_t own[KW_FP_LEN], near[KW_FP_LEN];
  (void)state;

  live_open(&l, false, "1h", "1s", "1s");
  kw_fingerprint_key(l.fpr, ADMIN_KEY, strlen(ADMIN_KEY), own);
  /* a display prefix unlike the credential's: only the fingerprint can tell */
  add_key(l.st, own, "mb_Othr", T0, "DELETE", 204);
  memcpy(near, own, KW_FP_LEN);
  near[0] ^= 0x01;
  add_key(l.st, near, "mb_Near", T0, "DELETE", 204);
  int64_t man = manual_fp(l.st, own, KW_SEV_CRITICAL, 0, NULL, false);
  int64_t autom = fire_fp(l.st, "card-delete", own, KW_SEV_CRITICAL, kw_time_now());
  int64_t other = manual_fp(l.st, near, KW_SEV_CRITICAL, 0, NULL, false);
  assert_int_equal(kw_store_commit(l.st), 0);
  live_start(&l);
  assert_true(live_until(&l, judged, man, 0));
  assert_true(live_until(&l, judged, autom, 0));
  assert_true(live_until(&l, attempted, other, 1));

  struct rev r = row(l.st, man);
  assert_string_equal(r.state, "suppressed");
  assert_non_null(strstr(r.result, "keywatch's own admin key at store mb"));
  assert_int_equal(calls_of(l.st, man).n, 0);
  r = row(l.st, autom);
  assert_string_equal(r.state, "suppressed");
  assert_non_null(strstr(r.result, "own admin key"));
  assert_int_equal(calls_of(l.st, autom).n, 0);
  assert_string_equal(row(l.st, other).state, "queued");
  assert_int_equal(calls_of(l.st, other).n, 1);
  live_close(&l);
}

/* ---- config validation ------------------------------------------------------------------ */

struct bad_case {
  const char *yaml;
  const char *field;
  unsigned line;
  const char *msg;  /* part of the message */
  const char *good; /* the near miss: a corrected variant that loads */
};

static const struct bad_case bad_cases[] = {
    {"responder:\n"
     "  stores:\n"
     "    - {name: mb, type: metabase, url: 'http://127.0.0.1:3000'}\n"
     "    - name: vault\n"
     "      type: hashivault\n"
     "      url: http://127.0.0.1:8200\n",
     "responder.stores.1.type", 5, "'hashivault' is not one of: metabase, seatable, kong, http,",
     "responder:\n"
     "  stores:\n"
     "    - {name: mb, type: metabase, url: 'http://127.0.0.1:3000'}\n"
     "    - name: vault\n"
     "      type: kong\n"
     "      url: http://127.0.0.1:8200\n"},
    {"responder:\n"
     "  stores:\n"
     "    - type: kong\n"
     "      url: http://127.0.0.1:8001\n"
     "      action: regenerate\n",
     "responder.stores.0.action", 5, "only a metabase store can regenerate",
     "responder:\n"
     "  stores:\n"
     "    - type: metabase\n"
     "      url: http://127.0.0.1:8001\n"
     "      action: regenerate\n"},
    {"responder:\n"
     "  stores:\n"
     "    - type: command\n"
     "      argv: [bin/revoke, '${key_prefix}']\n",
     "responder.stores.0.argv", 4, "first entry is an absolute path",
     "responder:\n"
     "  stores:\n"
     "    - type: command\n"
     "      argv: [/usr/local/bin/revoke, '${key_prefix}']\n"},
    {"responder:\n"
     "  stores:\n"
     "    - type: http\n"
     "      url: http://127.0.0.1:9/keys/${key_id}\n"
     "      method: DELETE\n"
     "      lookup:\n"
     "        url: http://127.0.0.1:9/keys\n"
     "        match_field: prefix\n"
     "        match: prefix\n",
     "responder.stores.0.lookup", 6, "needs 'url', 'match_field' and 'id_field'",
     "responder:\n"
     "  stores:\n"
     "    - type: http\n"
     "      url: http://127.0.0.1:9/keys/${key_id}\n"
     "      method: DELETE\n"
     "      lookup:\n"
     "        url: http://127.0.0.1:9/keys\n"
     "        match_field: prefix\n"
     "        match: prefix\n"
     "        id_field: id\n"},
    {"responder:\n"
     "  dry_run: false\n"
     "  key_cooldown: 5 parsecs\n",
     "responder.key_cooldown", 3, "'5 parsecs' is not a duration",
     "responder:\n"
     "  dry_run: false\n"
     "  key_cooldown: 5m\n"},
    {"responder:\n"
     "  max_per_hour: 5\n"
     "  max_per_day: 4\n",
     "responder.max_per_day", 3, "4 is less than max_per_hour (5)",
     "responder:\n"
     "  max_per_hour: 5\n"
     "  max_per_day: 5\n"},
    {"responder:\n"
     "  stores:\n"
     "    - type: http\n"
     "      url: http://127.0.0.1:9/revoke\n"
     "      headers:\n"
     "        - name: Authorization\n"
     "          value: Bearer abc\n"
     "          secret: {env: KW_TEST_TOKEN}\n",
     "responder.stores.0.headers.0", 6, "one of 'value' or 'secret'",
     "responder:\n"
     "  stores:\n"
     "    - type: http\n"
     "      url: http://127.0.0.1:9/revoke\n"
     "      headers:\n"
     "        - name: Authorization\n"
     "          prefix: 'Bearer '\n"
     "          secret: {env: KW_TEST_TOKEN}\n"},
};

static void test_config_errors(void **state) {
  char path[160], want[256], err[1024];
  (void)state;
  snprintf(path, sizeof(path), "%s/bad.yaml", g_dir);
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    const struct bad_case *b = &bad_cases[i];
    struct kw_config *c = (struct kw_config *)1;
    write_text(path, b->yaml);
    err[0] = '\0';
    int rc = kw_config_load(path, &c, err, sizeof(err));
    if (rc != KW_ECONFIG)
      fail_msg("case %zu: %d, wanted KW_ECONFIG (%s)", i, rc, err);
    assert_null(c);
    snprintf(want, sizeof(want), "%s:%u: %s: ", path, b->line, b->field);
    if (strncmp(err, want, strlen(want)) != 0 || strstr(err, b->msg) == NULL)
      fail_msg("case %zu: \"%s\", wanted \"%s…%s…\"", i, err, want, b->msg);
    /* the near miss loads */
    write_text(path, b->good);
    if (kw_config_load(path, &c, err, sizeof(err)) != 0)
      fail_msg("case %zu, corrected: %s", i, err);
    kw_config_destroy(c);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_shadow_no_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_protect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_min_severity, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_no_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_cooldown, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_budget_hour, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_budget_day, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_manual, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shadow_oldest_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_dry_run_decision, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_dry_run_global, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_give_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_own_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
