/* test_revocations.c — the responder's tables in the store (sidecar/store_revoke.c,
 * sidecar/revocations.h), through the public API only.
 *
 * Each test works on a database in a fresh mkdtemp directory; keys exist because calls
 * with them were added and committed (kw_store_add_call), automatic decisions come from
 * kw_store_alert() with action "revoke" exactly as the analyzer makes them, manual ones
 * from kw_store_revocation_add().  Rows are copied out of the callbacks (their strings
 * live only during the callback) and compared field by field; what must be durable is
 * read back over a second SQLite connection.  What is asserted:
 *  - add: unknown fingerprint → KW_ENOTFOUND and nothing written; every field of a row;
 *  - list filters (state, "open", key prefix either way round, fingerprint hex, id,
 *    limit, due_us by next_try, oldest_first by event time) and their order;
 *  - update changes only the given fields; an unknown id is KW_ENOTFOUND;
 *  - the call audit round trip; the safeguard counts (revocations_since: origin rule,
 *    let through, not dry run, event_ts >= since; revocation_last: dry runs and manual
 *    count); revoked_keys (done/gone only, each key once);
 *  - the inventory: linking by fingerprint, by prefix only when unambiguous and the item
 *    has no fingerprint, naming only unnamed keys, sweep per store, un-gone when re-seen;
 *  - kw_revocation_json: strict JSON that round-trips hostile strings;
 *  - the schema 4 → 5 migration: old decisions become expired revocations.
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
#include <sqlite3.h>
#include <stdbool.h>

#include "sidecar/alerts.h"
#include "sidecar/call.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"
#include "sidecar/revocations.h"
#include "sidecar/store.h"
#include "sidecar/timeutil.h"

#include "kwtest_files.h"
#include "kwtest_store.h"

#define T0 1795324326000000LL /* 2026-11-22T05:12:06Z */
#define SEC 1000000LL
#define MAX_ROWS 32

static char g_dir[64], g_db[128];

static int setup(void **state) {
  (void)state;
  return store_temp_dir(g_dir, sizeof(g_dir), g_db, sizeof(g_db), "kwrevoc");
}

static int teardown(void **state) {
  (void)state;
  return temp_dir_remove(g_dir);
}

/* ---- store helpers --------------------------------------------------------------------- */

/* The key whose fingerprint is byte b repeated exists from ts on (see add_key()). */
static void add_key_b(struct kw_store *st, int b, const char *prefix, int64_t ts) {
  uint8_t fp[KW_FP_LEN];
  fp_fill(fp, b);
  add_key(st, fp, prefix, ts, "GET", 200);
}

/* ---- copying revocations out of the callbacks ------------------------------------------ */

struct rev {
  int64_t id, alert_id, key_id;
  char *prefix, *name, *rule, *origin, *decided_by, *store, *reason, *state, *store_ref,
      *result;
  bool has_fp, dry_run;
  uint8_t fp[KW_FP_LEN];
  int severity;
  int64_t decided, event, attempts, next_try, give_up, updated;
};

struct revs {
  struct rev v[MAX_ROWS];
  size_t n;
};

static int on_rev(const struct kw_revocation *r, void *ctx) {
  struct revs *rs = ctx;
  struct rev *o;
  assert_true(rs->n < MAX_ROWS);
  o = &rs->v[rs->n++];
  memset(o, 0, sizeof(*o));
  o->id = r->id;
  o->alert_id = r->alert_id;
  o->key_id = r->key_id;
  o->prefix = dup_or_null(r->prefix);
  o->name = dup_or_null(r->name);
  o->rule = dup_or_null(r->rule);
  o->origin = dup_or_null(r->origin);
  o->decided_by = dup_or_null(r->decided_by);
  o->store = dup_or_null(r->store);
  o->reason = dup_or_null(r->reason);
  o->state = dup_or_null(r->state);
  o->store_ref = dup_or_null(r->store_ref);
  o->result = dup_or_null(r->result);
  o->has_fp = r->fp != NULL;
  if (r->fp)
    memcpy(o->fp, r->fp, KW_FP_LEN);
  o->dry_run = r->dry_run;
  o->severity = r->severity;
  o->decided = r->decided_us;
  o->event = r->event_us;
  o->attempts = r->attempts;
  o->next_try = r->next_try_us;
  o->give_up = r->give_up_us;
  o->updated = r->updated_us;
  return 0;
}

static void revs_free(struct revs *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    struct rev *o = &rs->v[i];
    free(o->prefix);
    free(o->name);
    free(o->rule);
    free(o->origin);
    free(o->decided_by);
    free(o->store);
    free(o->reason);
    free(o->state);
    free(o->store_ref);
    free(o->result);
  }
  rs->n = 0;
}

static void list(struct kw_store *st, const struct kw_revocations_query *q, struct revs *rs) {
  revs_free(rs);
  assert_int_equal(kw_store_revocations(st, q, on_rev, rs), 0);
}

/* The one revocation id (copied into *out; free with revs_free). */
static void get(struct kw_store *st, int64_t id, struct revs *rs) {
  struct kw_revocations_query q = {.id = id};
  list(st, &q, rs);
  assert_int_equal(rs->n, 1);
}

/* Asserts the ids listed, in order (terminated by 0). */
static void expect_ids(struct kw_store *st, const struct kw_revocations_query *q, ...) {
  struct revs rs = {0};
  va_list ap;
  size_t i = 0;
  int64_t want;
  list(st, q, &rs);
  va_start(ap, q);
  while ((want = va_arg(ap, int64_t)) != 0) {
    if (i >= rs.n)
      fail_msg("row %zu: wanted id %lld, only %zu rows", i, (long long)want, rs.n);
    if (rs.v[i].id != want)
      fail_msg("row %zu: id %lld, wanted %lld", i, (long long)rs.v[i].id, (long long)want);
    i++;
  }
  va_end(ap);
  if (i != rs.n)
    fail_msg("%zu rows, wanted %zu", rs.n, i);
  revs_free(&rs);
}

#define IDS(...) __VA_ARGS__, (int64_t)0
#define NONE (int64_t)0

/* A manual decision for key byte b at event time ev; returns its id. */
static int64_t manual(struct kw_store *st, int b, int64_t ev) {
  uint8_t fp[KW_FP_LEN];
  int64_t id = 0;
  fp_fill(fp, b);
  struct kw_revocation_new n = {.fp = fp, .origin = "manual", .decided_by = "cli:alice",
                                .reason = "test", .severity = KW_SEV_HIGH, .event_us = ev};
  assert_int_equal(kw_store_revocation_add(st, &n, &id), 0);
  assert_true(id > 0);
  return id;
}

/* An automatic decision: a new alert of rule for key byte b (0: no key) with action
 * revoke, at ev; returns the revocation's id. */
static int64_t automatic(struct kw_store *st, const char *rule, int b, int sev, int64_t ev) {
  struct kw_firing f = {.rule = rule, .type = "match", .severity = sev, .action = "revoke",
                        .has_key = b != 0, .ts_us = ev, .cooldown_us = 0,
                        .summary = "fired", .details = "{}"};
  struct kw_revocations_query q = {.limit = 1};
  struct revs rs = {0};
  int64_t alert, id;
  bool created;
  if (b)
    fp_fill(f.fp, b);
  assert_int_equal(kw_store_alert(st, &f, 0, NULL, 0, &alert, &created), 0);
  assert_true(created);
  list(st, &q, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.v[0].alert_id, alert);
  id = rs.v[0].id;
  revs_free(&rs);
  return id;
}

static void set_state(struct kw_store *st, int64_t id, const char *state, int dry_run,
                      int64_t next_try) {
  struct kw_revocation_update u = {.state = state, .dry_run = dry_run, .attempts = -1,
                                   .next_try_us = next_try, .give_up_us = -1};
  assert_int_equal(kw_store_revocation_update(st, id, &u), 0);
}

/* ---- add ----------------------------------------------------------------------------- */

static void test_add(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct revs rs = {0};
  uint8_t fp[KW_FP_LEN], other[KW_FP_LEN];
  int64_t id = -7, before, after;
  (void)state;

  add_key_b(st, 0x01, "mb_AbCd", T0);
  assert_int_equal(kw_store_name_key(st, NULL, "mb_AbCd", "analyst"), 1);
  assert_int_equal(kw_store_commit(st), 0);

  /* a fingerprint never seen in traffic: refused, nothing written */
  fp_fill(other, 0x01);
  other[KW_FP_LEN - 1] = 0x02;
  struct kw_revocation_new bad = {.fp = other, .origin = "manual", .decided_by = "cli:bob",
                                  .reason = "r"};
  assert_int_equal(kw_store_revocation_add(st, &bad, &id), KW_ENOTFOUND);
  assert_int_equal(id, -7);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM revocations"), 0);

  /* event time 0: now */
  fp_fill(fp, 0x01);
  struct kw_revocation_new n = {.fp = fp, .origin = "manual", .decided_by = "cli:alice",
                                .reason = "leaked in a ticket", .store = "mb",
                                .severity = KW_SEV_MEDIUM, .dry_run = true};
  before = kw_time_now();
  assert_int_equal(kw_store_revocation_add(st, &n, &id), 0);
  after = kw_time_now();
  assert_true(id > 0);
  get(st, id, &rs);
  struct rev *r = &rs.v[0];
  assert_int_equal(r->alert_id, 0);
  assert_true(r->key_id > 0);
  assert_string_equal(r->prefix, "mb_AbCd");
  assert_string_equal(r->name, "analyst");
  assert_true(r->has_fp);
  assert_memory_equal(r->fp, fp, KW_FP_LEN);
  assert_null(r->rule);
  assert_int_equal(r->severity, KW_SEV_MEDIUM);
  assert_string_equal(r->origin, "manual");
  assert_string_equal(r->decided_by, "cli:alice");
  assert_string_equal(r->store, "mb");
  assert_string_equal(r->reason, "leaked in a ticket");
  assert_string_equal(r->state, "decided");
  assert_true(r->dry_run);
  assert_true(r->decided >= before && r->decided <= after);
  assert_int_equal(r->event, r->decided); /* manual, no event time: = decided */
  assert_int_equal(r->updated, r->decided);
  assert_int_equal(r->attempts, 0);
  assert_int_equal(r->next_try, 0);
  assert_int_equal(r->give_up, 0);
  assert_null(r->store_ref);
  assert_null(r->result);

  /* an explicit event time is kept; no store: NULL until chosen */
  struct kw_revocation_new n2 = {.fp = fp, .origin = "manual", .decided_by = "cli:alice",
                                 .reason = "again", .event_us = T0 + 5 * SEC};
  int64_t id2;
  assert_int_equal(kw_store_revocation_add(st, &n2, &id2), 0);
  assert_true(id2 > id);
  get(st, id2, &rs);
  assert_int_equal(rs.v[0].event, T0 + 5 * SEC);
  assert_null(rs.v[0].store);
  assert_false(rs.v[0].dry_run);
  assert_true(rs.v[0].decided >= before);

  /* an automatic decision: linked to its alert, origin rule, decided_by rule:ID */
  int64_t id3 = automatic(st, "card-delete", 0x01, KW_SEV_CRITICAL, T0 + 9 * SEC);
  get(st, id3, &rs);
  assert_true(rs.v[0].alert_id > 0);
  assert_string_equal(rs.v[0].origin, "rule");
  assert_string_equal(rs.v[0].rule, "card-delete");
  assert_string_equal(rs.v[0].decided_by, "rule:card-delete");
  assert_string_equal(rs.v[0].reason, "fired");
  assert_int_equal(rs.v[0].severity, KW_SEV_CRITICAL);
  assert_int_equal(rs.v[0].event, T0 + 9 * SEC);
  assert_string_equal(rs.v[0].state, "decided");
  /* an alert without action revoke decides nothing; one without a key: no fp */
  int64_t aid;
  bool created;
  struct kw_firing alert_only = {.rule = "just-alert", .type = "match", .severity = 4,
                                 .action = "alert", .has_key = true, .ts_us = T0,
                                 .summary = "s", .details = "{}"};
  fp_fill(alert_only.fp, 0x01);
  assert_int_equal(kw_store_alert(st, &alert_only, 0, NULL, 0, &aid, &created), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM revocations"), 3);
  int64_t id4 = automatic(st, "by-address", 0, KW_SEV_HIGH, T0);
  get(st, id4, &rs);
  assert_false(rs.v[0].has_fp);
  assert_int_equal(rs.v[0].key_id, 0);
  assert_null(rs.v[0].prefix);

  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM revocations"), 4);
  revs_free(&rs);
  assert_int_equal(kw_store_close(st), 0);
}

/* ---- list ------------------------------------------------------------------------------ */

static int stop_first(const struct kw_revocation *r, void *ctx) {
  (void)r;
  ++*(int *)ctx;
  return 1;
}

static void test_list_filters(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  char hex[2 * KW_FP_LEN + 1];
  uint8_t fp3[KW_FP_LEN];
  int n = 0;
  (void)state;

  add_key_b(st, 0x01, "mb_AbCd", T0);
  add_key_b(st, 0x02, "mb_XyZw", T0);
  add_key_b(st, 0x03, "sk_live", T0);
  int64_t r1 = manual(st, 0x01, T0 + 3 * SEC);                       /* decided */
  int64_t r2 = automatic(st, "a", 0x02, KW_SEV_HIGH, T0 + 1 * SEC);  /* queued, +50 */
  int64_t r3 = automatic(st, "b", 0x03, KW_SEV_HIGH, T0 + 2 * SEC);  /* queued, +10 */
  int64_t r4 = manual(st, 0x01, T0);                                 /* suppressed */
  int64_t r5 = automatic(st, "c", 0x02, KW_SEV_HIGH, T0 + 1 * SEC);  /* queued, +10 */
  int64_t r6 = manual(st, 0x03, T0 + 4 * SEC);                       /* done */
  set_state(st, r2, "queued", -1, T0 + 50);
  set_state(st, r3, "queued", -1, T0 + 10);
  set_state(st, r4, "suppressed", -1, -1);
  set_state(st, r5, "queued", -1, T0 + 10);
  set_state(st, r6, "done", -1, T0 + 1); /* done: never due, whatever next_try says */
  assert_int_equal(kw_store_commit(st), 0);

  /* no filter: newest first */
  struct kw_revocations_query all = {0};
  expect_ids(st, &all, IDS(r6, r5, r4, r3, r2, r1));
  struct kw_revocations_query q = {.state = "queued"};
  expect_ids(st, &q, IDS(r5, r3, r2));
  q = (struct kw_revocations_query){.state = "open"};
  expect_ids(st, &q, IDS(r5, r3, r2, r1));
  q = (struct kw_revocations_query){.state = "decided"};
  expect_ids(st, &q, IDS(r1));
  q = (struct kw_revocations_query){.state = "failed"};
  expect_ids(st, &q, NONE);
  /* a key: the start of the display prefix, or longer than it (a full key id) */
  q = (struct kw_revocations_query){.key = "mb_A"};
  expect_ids(st, &q, IDS(r4, r1));
  q = (struct kw_revocations_query){.key = "mb_AbCdEfGhIj"};
  expect_ids(st, &q, IDS(r4, r1));
  q = (struct kw_revocations_query){.key = "mb_"};
  expect_ids(st, &q, IDS(r5, r4, r2, r1));
  q = (struct kw_revocations_query){.key = "mb_Ab_d"}; /* near miss */
  expect_ids(st, &q, NONE);
  fp_fill(fp3, 0x03);
  q = (struct kw_revocations_query){.key = kw_fingerprint_hex(fp3, hex)};
  expect_ids(st, &q, IDS(r6, r3));
  hex[31] = hex[31] == '3' ? '4' : '3'; /* one digit off: no key */
  expect_ids(st, &q, NONE);
  q = (struct kw_revocations_query){.key = "mb_", .state = "queued"};
  expect_ids(st, &q, IDS(r5, r2));
  q = (struct kw_revocations_query){.id = r3};
  expect_ids(st, &q, IDS(r3));
  q = (struct kw_revocations_query){.id = r6 + 100};
  expect_ids(st, &q, NONE);
  q = (struct kw_revocations_query){.limit = 2};
  expect_ids(st, &q, IDS(r6, r5));
  /* due: queued rows with next_try <= due, by next_try then id (not newest first) */
  q = (struct kw_revocations_query){.due_us = T0 + 9};
  expect_ids(st, &q, NONE);
  q = (struct kw_revocations_query){.due_us = T0 + 10};
  expect_ids(st, &q, IDS(r3, r5));
  q = (struct kw_revocations_query){.due_us = T0 + 50};
  expect_ids(st, &q, IDS(r3, r5, r2));
  q = (struct kw_revocations_query){.due_us = T0 + 50, .limit = 1};
  expect_ids(st, &q, IDS(r3));
  /* oldest first: event time, then id */
  q = (struct kw_revocations_query){.oldest_first = true};
  expect_ids(st, &q, IDS(r4, r2, r5, r3, r1, r6));
  q = (struct kw_revocations_query){.oldest_first = true, .state = "open", .limit = 3};
  expect_ids(st, &q, IDS(r2, r5, r3));
  /* the callback stops the walk */
  assert_int_equal(kw_store_revocations(st, &all, stop_first, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(kw_store_close(st), 0);
}

/* ---- update --------------------------------------------------------------------------- */

static void test_update(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct revs rs = {0};
  int64_t before;
  (void)state;

  add_key_b(st, 0x01, "mb_AbCd", T0);
  int64_t id = manual(st, 0x01, T0);
  get(st, id, &rs);
  int64_t decided = rs.v[0].decided;

  /* everything set */
  struct kw_revocation_update all = {.state = "queued", .result = "queued at mb",
                                     .store = "mb", .store_ref = "12", .dry_run = 1,
                                     .attempts = 2, .next_try_us = T0 + 7,
                                     .give_up_us = T0 + 9};
  before = kw_time_now();
  assert_int_equal(kw_store_revocation_update(st, id, &all), 0);
  get(st, id, &rs);
  struct rev *r = &rs.v[0];
  assert_string_equal(r->state, "queued");
  assert_string_equal(r->result, "queued at mb");
  assert_string_equal(r->store, "mb");
  assert_string_equal(r->store_ref, "12");
  assert_true(r->dry_run);
  assert_int_equal(r->attempts, 2);
  assert_int_equal(r->next_try, T0 + 7);
  assert_int_equal(r->give_up, T0 + 9);
  assert_true(r->updated >= before);
  assert_int_equal(r->decided, decided); /* never changes */
  assert_int_equal(r->event, T0);
  assert_string_equal(r->reason, "test");

  /* nothing given: only updated moves */
  struct kw_revocation_update none = {.dry_run = -1, .attempts = -1, .next_try_us = -1,
                                      .give_up_us = -1};
  assert_int_equal(kw_store_revocation_update(st, id, &none), 0);
  get(st, id, &rs);
  r = &rs.v[0];
  assert_string_equal(r->state, "queued");
  assert_string_equal(r->result, "queued at mb");
  assert_string_equal(r->store, "mb");
  assert_string_equal(r->store_ref, "12");
  assert_true(r->dry_run);
  assert_int_equal(r->attempts, 2);
  assert_int_equal(r->next_try, T0 + 7);
  assert_int_equal(r->give_up, T0 + 9);

  /* one field at a time: attempts, then dry_run back to 0, then the state */
  none.attempts = 3;
  assert_int_equal(kw_store_revocation_update(st, id, &none), 0);
  none.attempts = -1;
  none.dry_run = 0;
  assert_int_equal(kw_store_revocation_update(st, id, &none), 0);
  none.dry_run = -1;
  none.state = "done";
  none.result = "deleted key 12";
  assert_int_equal(kw_store_revocation_update(st, id, &none), 0);
  get(st, id, &rs);
  r = &rs.v[0];
  assert_int_equal(r->attempts, 3);
  assert_false(r->dry_run);
  assert_string_equal(r->state, "done");
  assert_string_equal(r->result, "deleted key 12");
  assert_string_equal(r->store_ref, "12");
  assert_int_equal(r->next_try, T0 + 7);

  /* zero is a value, not "unchanged" */
  none = (struct kw_revocation_update){.dry_run = -1, .attempts = 0, .next_try_us = 0,
                                       .give_up_us = 0};
  assert_int_equal(kw_store_revocation_update(st, id, &none), 0);
  get(st, id, &rs);
  assert_int_equal(rs.v[0].attempts, 0);
  assert_int_equal(rs.v[0].next_try, 0);
  assert_int_equal(rs.v[0].give_up, 0);

  /* an unknown id */
  assert_int_equal(kw_store_revocation_update(st, id + 1000, &all), KW_ENOTFOUND);
  /* writes join the batch: durable at commit */
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM revocations WHERE state = 'done'"), 1);
  revs_free(&rs);
  assert_int_equal(kw_store_close(st), 0);
}

/* ---- call audit -------------------------------------------------------------------------- */

struct callrow {
  int64_t ts;
  char *store, *request, *result, *detail;
  int status;
  int64_t duration;
};

struct callrows {
  struct callrow v[8];
  size_t n;
};

static int on_callrow(int64_t ts, const struct kw_revocation_call *c, void *ctx) {
  struct callrows *cs = ctx;
  assert_true(cs->n < 8);
  struct callrow *o = &cs->v[cs->n++];
  o->ts = ts;
  o->store = dup_or_null(c->store);
  o->request = dup_or_null(c->request);
  o->result = dup_or_null(c->result);
  o->detail = dup_or_null(c->detail);
  o->status = c->status;
  o->duration = c->duration_us;
  return 0;
}

static void callrows_free(struct callrows *cs) {
  for (size_t i = 0; i < cs->n; i++) {
    free(cs->v[i].store);
    free(cs->v[i].request);
    free(cs->v[i].result);
    free(cs->v[i].detail);
  }
  cs->n = 0;
}

static int stop_call(int64_t ts, const struct kw_revocation_call *c, void *ctx) {
  (void)ts;
  (void)c;
  ++*(int *)ctx;
  return 1;
}

static void test_calls(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct callrows cs = {0};
  int64_t before, after;
  int n = 0;
  (void)state;

  add_key_b(st, 0x01, "mb_AbCd", T0);
  int64_t a = manual(st, 0x01, T0), b = manual(st, 0x01, T0);
  struct kw_revocation_call c1 = {.store = "mb", .request = "GET /api/api-key", .status = -111,
                                  .duration_us = 1500, .result = "error",
                                  .detail = "Connection refused"};
  struct kw_revocation_call c2 = {.store = "mb", .request = "DELETE /api/api-key/12",
                                  .status = 204, .duration_us = 42000, .result = "ok"};
  struct kw_revocation_call c3 = {.store = "kong", .request = "DELETE /consumers/x/key-auth/y",
                                  .status = 404, .duration_us = 7, .result = "gone",
                                  .detail = "{\"message\": \"Not found\"}"};
  before = kw_time_now();
  assert_int_equal(kw_store_revocation_call(st, a, &c1), 0);
  assert_int_equal(kw_store_revocation_call(st, b, &c3), 0);
  assert_int_equal(kw_store_revocation_call(st, a, &c2), 0);
  after = kw_time_now();
  assert_int_equal(kw_store_commit(st), 0);

  assert_int_equal(kw_store_revocation_calls(st, a, on_callrow, &cs), 0);
  assert_int_equal(cs.n, 2); /* only a's, oldest first */
  assert_true(cs.v[0].ts >= before && cs.v[0].ts <= cs.v[1].ts && cs.v[1].ts <= after);
  assert_string_equal(cs.v[0].store, "mb");
  assert_string_equal(cs.v[0].request, "GET /api/api-key");
  assert_int_equal(cs.v[0].status, -111);
  assert_int_equal(cs.v[0].duration, 1500);
  assert_string_equal(cs.v[0].result, "error");
  assert_string_equal(cs.v[0].detail, "Connection refused");
  assert_string_equal(cs.v[1].request, "DELETE /api/api-key/12");
  assert_int_equal(cs.v[1].status, 204);
  assert_int_equal(cs.v[1].duration, 42000);
  assert_string_equal(cs.v[1].result, "ok");
  assert_null(cs.v[1].detail);
  callrows_free(&cs);

  assert_int_equal(kw_store_revocation_calls(st, b, on_callrow, &cs), 0);
  assert_int_equal(cs.n, 1);
  assert_string_equal(cs.v[0].store, "kong");
  assert_string_equal(cs.v[0].detail, "{\"message\": \"Not found\"}");
  callrows_free(&cs);
  assert_int_equal(kw_store_revocation_calls(st, b + 100, on_callrow, &cs), 0);
  assert_int_equal(cs.n, 0);
  assert_int_equal(kw_store_revocation_calls(st, a, stop_call, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM revocation_calls"), 3);
  assert_int_equal(kw_store_close(st), 0);
}

/* ---- safeguard counts ----------------------------------------------------------------- */

static int64_t since(struct kw_store *st, int64_t t) {
  int64_t n = -1;
  assert_int_equal(kw_store_revocations_since(st, t, &n), 0);
  return n;
}

static int64_t last(struct kw_store *st, int64_t key_id) {
  int64_t w = -1;
  assert_int_equal(kw_store_revocation_last(st, key_id, &w), 0);
  return w;
}

static int64_t key_of(struct kw_store *st, int64_t rev) {
  struct revs rs = {0};
  get(st, rev, &rs);
  int64_t k = rs.v[0].key_id;
  revs_free(&rs);
  return k;
}

static void test_counts(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  (void)state;

  add_key_b(st, 0x0a, "mb_Aaaa", T0);
  add_key_b(st, 0x0b, "mb_Bbbb", T0);
  add_key_b(st, 0x0c, "mb_Cccc", T0);
  add_key_b(st, 0x0d, "mb_Dddd", T0);
  /* automatic rows let through: they count */
  int64_t a = automatic(st, "r1", 0x0a, 4, T0);
  int64_t b = automatic(st, "r2", 0x0b, 4, T0 + 1 * SEC);
  int64_t c = automatic(st, "r3", 0x0c, 4, T0 + 2 * SEC);
  int64_t d = automatic(st, "r4", 0x0c, 4, T0 + 3 * SEC);
  set_state(st, a, "queued", -1, -1);
  set_state(st, b, "done", -1, -1);
  set_state(st, c, "gone", -1, -1);
  set_state(st, d, "failed", -1, -1);
  /* rows that do not count towards the budget */
  int64_t e = automatic(st, "r5", 0x0a, 4, T0 + 4 * SEC);
  set_state(st, e, "suppressed", -1, -1);
  automatic(st, "r6", 0x0a, 4, T0 + 5 * SEC); /* still decided */
  int64_t g = automatic(st, "r7", 0x0b, 4, T0 + 6 * SEC);
  set_state(st, g, "dry_run", 1, -1);
  int64_t h = automatic(st, "r8", 0x0d, 4, T0 + 7 * SEC);
  set_state(st, h, "queued", 1, -1); /* let through as a dry run: not counted */
  int64_t i = manual(st, 0x0c, T0 + 8 * SEC);
  set_state(st, i, "done", -1, -1); /* manual: never spends the budget */
  int64_t j = automatic(st, "r9", 0x0d, 4, T0 + 9 * SEC);
  set_state(st, j, "expired", -1, -1);
  assert_int_equal(kw_store_commit(st), 0);

  assert_int_equal(since(st, 0), 4);
  assert_int_equal(since(st, T0), 4);
  assert_int_equal(since(st, T0 + 1), 3); /* event_ts >= since: T0 is out by 1 µs */
  assert_int_equal(since(st, T0 + 1 * SEC), 3);
  assert_int_equal(since(st, T0 + 3 * SEC), 1);
  assert_int_equal(since(st, T0 + 3 * SEC + 1), 0);

  /* last: let-through rows and dry runs, manual ones too; never suppressed/decided */
  assert_int_equal(last(st, key_of(st, a)), T0);           /* e, r6 do not count */
  assert_int_equal(last(st, key_of(st, b)), T0 + 6 * SEC); /* the dry run counts */
  assert_int_equal(last(st, key_of(st, c)), T0 + 8 * SEC); /* manual counts */
  assert_int_equal(last(st, key_of(st, h)), T0 + 7 * SEC); /* queued dry run; not expired */
  assert_int_equal(last(st, 9999), 0);

  /* a key whose only rows are suppressed or expired: never acted on */
  set_state(st, h, "suppressed", 0, -1);
  assert_int_equal(last(st, key_of(st, h)), 0);
  assert_int_equal(since(st, 0), 4);
  assert_int_equal(kw_store_close(st), 0);
}

struct fps {
  uint8_t v[8][KW_FP_LEN];
  size_t n;
};

static void on_fp(const uint8_t *fp, void *ctx) {
  struct fps *f = ctx;
  assert_true(f->n < 8);
  memcpy(f->v[f->n++], fp, KW_FP_LEN);
}

static bool has_fp(const struct fps *f, int b) {
  uint8_t fp[KW_FP_LEN];
  fp_fill(fp, b);
  for (size_t i = 0; i < f->n; i++)
    if (memcmp(f->v[i], fp, KW_FP_LEN) == 0)
      return true;
  return false;
}

static void test_revoked_keys(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct fps f = {0};
  (void)state;

  for (int b = 1; b <= 5; b++) {
    char p[16];
    snprintf(p, sizeof(p), "mb_Key%d", b);
    add_key_b(st, b, p, T0);
  }
  assert_int_equal(kw_store_revoked_keys(st, on_fp, &f), 0);
  assert_int_equal(f.n, 0);
  set_state(st, manual(st, 1, T0), "done", -1, -1);
  set_state(st, manual(st, 2, T0), "gone", -1, -1);
  set_state(st, manual(st, 2, T0 + 1), "done", -1, -1); /* twice: listed once */
  set_state(st, manual(st, 3, T0), "failed", -1, -1);
  set_state(st, manual(st, 4, T0), "queued", -1, -1);
  set_state(st, manual(st, 5, T0), "dry_run", 1, -1);
  assert_int_equal(kw_store_revoked_keys(st, on_fp, &f), 0);
  assert_int_equal(f.n, 2);
  assert_true(has_fp(&f, 1));
  assert_true(has_fp(&f, 2));
  assert_int_equal(kw_store_close(st), 0);
}

/* ---- inventory ------------------------------------------------------------------------- */

struct invrow {
  char *store, *ref, *name, *group, *created, *permission, *prefix;
  int64_t key_id, synced, gone, calls, last;
};

struct invrows {
  struct invrow v[16];
  size_t n;
};

static int on_inv(const struct kw_inventory_row *r, void *ctx) {
  struct invrows *is = ctx;
  assert_true(is->n < 16);
  struct invrow *o = &is->v[is->n++];
  o->store = dup_or_null(r->store);
  o->ref = dup_or_null(r->ref);
  o->name = dup_or_null(r->name);
  o->group = dup_or_null(r->group);
  o->created = dup_or_null(r->created);
  o->permission = dup_or_null(r->permission);
  o->prefix = dup_or_null(r->prefix);
  o->key_id = r->key_id;
  o->synced = r->synced_us;
  o->gone = r->gone_us;
  o->calls = r->calls;
  o->last = r->last_us;
  return 0;
}

static void inv_free(struct invrows *is) {
  for (size_t i = 0; i < is->n; i++) {
    struct invrow *o = &is->v[i];
    free(o->store);
    free(o->ref);
    free(o->name);
    free(o->group);
    free(o->created);
    free(o->permission);
    free(o->prefix);
  }
  is->n = 0;
}

static void inv_load(struct kw_store *st, struct invrows *is) {
  inv_free(is);
  assert_int_equal(kw_store_inventory(st, on_inv, is), 0);
}

static const struct invrow *inv_find(const struct invrows *is, const char *store,
                                     const char *ref) {
  for (size_t i = 0; i < is->n; i++)
    if (strcmp(is->v[i].store, store) == 0 && strcmp(is->v[i].ref, ref) == 0)
      return &is->v[i];
  fail_msg("no inventory item %s/%s", store, ref);
  return NULL;
}

/* The id of the key with fingerprint fp_fill(b), read over a second connection. */
static int64_t key_id_of(int b) {
  uint8_t fp[KW_FP_LEN];
  char hex[2 * KW_FP_LEN + 1], sql[160];
  fp_fill(fp, b);
  snprintf(sql, sizeof(sql), "SELECT id FROM keys WHERE lower(hex(fingerprint)) = '%s'",
           kw_fingerprint_hex(fp, hex));
  return sql_int(g_db, sql);
}

/* The committed name of the key with display prefix prefix (NULL: unnamed). */
static char *key_name(const char *prefix) {
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  char *name = NULL;
  assert_int_equal(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM keys WHERE prefix = ?", -1, &s,
                                      NULL), SQLITE_OK);
  sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_ROW)
    name = dup_or_null((const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(db);
  return name;
}

static void test_inventory(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct invrows is = {0};
  uint8_t fp_unknown[KW_FP_LEN], fp4[KW_FP_LEN];
  char *name;
  (void)state;

  add_key_b(st, 0x11, "mb_One1", T0);
  add_key_b(st, 0x11, "mb_One1", T0 + 5 * SEC); /* two calls */
  add_key_b(st, 0x12, "mb_Two2", T0);
  assert_int_equal(kw_store_name_key(st, NULL, "mb_Two2", "already"), 1);
  add_key_b(st, 0x13, "mb_Dup3", T0); /* two keys share a display prefix */
  add_key_b(st, 0x14, "mb_Dup3", T0);
  add_key_b(st, 0x15, "sk_Fpp4", T0);
  assert_int_equal(kw_store_commit(st), 0);
  fp_fill(fp_unknown, 0x99);
  fp_fill(fp4, 0x15);

  const int64_t S1 = T0 + 100 * SEC, S2 = S1 + 600 * SEC, S3 = S2 + 600 * SEC;
  struct kw_inventory_item items[] = {
      /* by prefix, one stored key has it: linked, and names the unnamed key */
      {.store = "mb", .ref = "1", .name = "analyst-one", .group = "Analysts",
       .created = "2026-01-02T03:04:05Z", .prefix = "mb_One1"},
      /* by prefix, the key already has a name: linked, name kept */
      {.store = "mb", .ref = "2", .name = "other", .prefix = "mb_Two2"},
      /* by prefix, two stored keys: not guessed */
      {.store = "mb", .ref = "3", .name = "dup", .prefix = "mb_Dup3"},
      /* a fingerprint keywatch never saw: not linked by its (matching) prefix either */
      {.store = "mb", .ref = "4", .name = "fresh", .prefix = "mb_One1", .fp = fp_unknown},
      /* by fingerprint, whatever the prefix says */
      {.store = "kong", .ref = "c1/k1", .name = "svc", .permission = "admin",
       .prefix = "zz_Nope", .fp = fp4},
      /* nothing stored */
      {.store = "mb", .ref = "6", .prefix = "mb_None"},
  };
  for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
    assert_int_equal(kw_store_inventory_put(st, &items[i], S1), 0);
  assert_int_equal(kw_store_commit(st), 0);

  inv_load(st, &is);
  assert_int_equal(is.n, 6);
  const struct invrow *r = inv_find(&is, "mb", "1");
  assert_int_equal(r->key_id, key_id_of(0x11));
  assert_string_equal(r->name, "analyst-one");
  assert_string_equal(r->group, "Analysts");
  assert_string_equal(r->created, "2026-01-02T03:04:05Z");
  assert_null(r->permission);
  assert_string_equal(r->prefix, "mb_One1");
  assert_int_equal(r->synced, S1);
  assert_int_equal(r->gone, 0);
  assert_int_equal(r->calls, 2);
  assert_int_equal(r->last, T0 + 5 * SEC);
  assert_int_equal(inv_find(&is, "mb", "2")->key_id, key_id_of(0x12));
  assert_int_equal(inv_find(&is, "mb", "3")->key_id, 0);
  assert_int_equal(inv_find(&is, "mb", "4")->key_id, 0);
  r = inv_find(&is, "kong", "c1/k1");
  assert_int_equal(r->key_id, key_id_of(0x15));
  assert_string_equal(r->permission, "admin");
  assert_int_equal(r->calls, 1);
  r = inv_find(&is, "mb", "6");
  assert_int_equal(r->key_id, 0);
  assert_null(r->name);
  assert_int_equal(r->calls, 0);
  assert_int_equal(r->last, 0);
  /* naming: only a key without a name */
  assert_non_null(name = key_name("mb_One1"));
  assert_string_equal(name, "analyst-one");
  free(name);
  assert_non_null(name = key_name("mb_Two2"));
  assert_string_equal(name, "already");
  free(name);
  assert_non_null(name = key_name("sk_Fpp4"));
  assert_string_equal(name, "svc");
  free(name);

  /* the next sync of mb sees all but 4; renamed 1 keeps the key's first name */
  items[0].name = "renamed";
  for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
    if (i != 3 && strcmp(items[i].store, "mb") == 0)
      assert_int_equal(kw_store_inventory_put(st, &items[i], S2), 0);
  assert_int_equal(kw_store_inventory_sweep(st, "mb", S2), 0);
  assert_int_equal(kw_store_commit(st), 0);
  inv_load(st, &is);
  assert_int_equal(is.n, 6);
  assert_true(inv_find(&is, "mb", "4")->gone > 0);
  assert_int_equal(inv_find(&is, "mb", "4")->synced, S1);
  assert_int_equal(inv_find(&is, "mb", "1")->gone, 0);
  assert_int_equal(inv_find(&is, "mb", "1")->synced, S2);
  assert_string_equal(inv_find(&is, "mb", "1")->name, "renamed");
  assert_int_equal(inv_find(&is, "mb", "1")->key_id, key_id_of(0x11));
  assert_int_equal(inv_find(&is, "kong", "c1/k1")->gone, 0); /* other store: untouched */
  assert_non_null(name = key_name("mb_One1"));
  assert_string_equal(name, "analyst-one");
  free(name);
  int64_t gone_at = inv_find(&is, "mb", "4")->gone;

  /* a second sweep does not move the time it went */
  assert_int_equal(kw_store_inventory_sweep(st, "mb", S2 + 1), 0);
  inv_load(st, &is);
  assert_int_equal(inv_find(&is, "mb", "4")->gone, gone_at);
  assert_true(inv_find(&is, "mb", "1")->gone > 0); /* not seen since S2 + 1 */

  /* seen again: back (gone cleared) */
  assert_int_equal(kw_store_inventory_put(st, &items[3], S3), 0);
  assert_int_equal(kw_store_inventory_put(st, &items[0], S3), 0);
  assert_int_equal(kw_store_commit(st), 0);
  inv_load(st, &is);
  assert_int_equal(inv_find(&is, "mb", "4")->gone, 0);
  assert_int_equal(inv_find(&is, "mb", "4")->synced, S3);
  assert_int_equal(inv_find(&is, "mb", "1")->gone, 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM key_inventory"), 6);
  inv_free(&is);
  assert_int_equal(kw_store_close(st), 0);
}

/* ---- JSON ------------------------------------------------------------------------------ */

static const char HOSTILE[] = "say \"hi\" \\ now\nline2\r\t</script><script>alert(1)</script>"
                              "\x1b[2J \xe2\x80\xa8 end";

static int on_json(const struct kw_revocation *r, void *ctx) {
  kw_revocation_json(ctx, r);
  return 0;
}

/* Revocation id as kw_revocation_json() writes it, parsed strictly; *raw gets the text. */
static json_t *json_of(struct kw_store *st, int64_t id, char **raw) {
  struct kw_revocations_query q = {.id = id};
  char *buf = NULL;
  size_t len = 0;
  json_error_t e;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(kw_store_revocations(st, &q, on_json, f), 0);
  fclose(f);
  assert_true(len > 0);
  /* strict: one document, no duplicate keys, nothing after it */
  json_t *j = json_loads(buf, JSON_REJECT_DUPLICATES, &e);
  if (j == NULL)
    fail_msg("not JSON (%s at %d): %s", e.text, e.position, buf);
  assert_true(json_is_object(j));
  *raw = buf;
  return j;
}

static const char *jstr(json_t *j, const char *k) {
  json_t *v = json_object_get(j, k);
  if (v == NULL)
    fail_msg("no field %s", k);
  return json_is_null(v) ? NULL : json_string_value(v);
}

static void test_json(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  uint8_t fp[KW_FP_LEN];
  char hex[2 * KW_FP_LEN + 1], when[40], *raw;
  int64_t id;
  (void)state;

  add_key_b(st, 0x01, "mb_AbCd", T0);
  fp_fill(fp, 0x01);
  struct kw_revocation_new n = {.fp = fp, .origin = "manual", .decided_by = HOSTILE,
                                .reason = HOSTILE, .severity = KW_SEV_HIGH,
                                .event_us = T0};
  assert_int_equal(kw_store_revocation_add(st, &n, &id), 0);
  struct kw_revocation_update u = {.state = "suppressed", .result = HOSTILE, .dry_run = -1,
                                   .attempts = -1, .next_try_us = T0 + 5 * SEC,
                                   .give_up_us = -1};
  assert_int_equal(kw_store_revocation_update(st, id, &u), 0);

  json_t *j = json_of(st, id, &raw);
  /* no raw control byte, no raw U+2028: a line-oriented or JavaScript reader is safe */
  for (const unsigned char *p = (const unsigned char *)raw; *p; p++)
    assert_true(*p >= 0x20);
  assert_null(strstr(raw, "\xe2\x80\xa8"));
  assert_int_equal(json_object_size(j), 21);
  assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
  assert_true(json_is_null(json_object_get(j, "alert_id")));
  assert_string_equal(jstr(j, "key_prefix"), "mb_AbCd");
  assert_string_equal(jstr(j, "fingerprint"), kw_fingerprint_hex(fp, hex));
  assert_null(jstr(j, "name"));
  assert_null(jstr(j, "rule"));
  assert_string_equal(jstr(j, "severity"), "high");
  assert_string_equal(jstr(j, "origin"), "manual");
  assert_string_equal(jstr(j, "decided_by"), HOSTILE);
  assert_null(jstr(j, "store"));
  assert_string_equal(jstr(j, "reason"), HOSTILE);
  assert_string_equal(jstr(j, "result"), HOSTILE);
  assert_string_equal(jstr(j, "state"), "suppressed");
  assert_string_equal(jstr(j, "event_time"), kw_time_format(T0, when, sizeof(when)));
  assert_non_null(jstr(j, "decided"));
  assert_non_null(jstr(j, "updated"));
  assert_true(json_is_false(json_object_get(j, "dry_run")));
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 0);
  assert_null(jstr(j, "next_try")); /* only a queued row has one */
  assert_null(jstr(j, "give_up_at"));
  assert_null(jstr(j, "store_ref"));
  json_decref(j);
  free(raw);

  /* queued: next_try and give_up_at are times; dry_run true; an alert id */
  int64_t aid;
  bool created;
  struct kw_firing f = {.rule = "r\"1", .type = "match", .severity = KW_SEV_CRITICAL,
                        .action = "revoke", .has_key = true, .ts_us = T0, .summary = "s",
                        .details = "{}"};
  memcpy(f.fp, fp, KW_FP_LEN);
  assert_int_equal(kw_store_alert(st, &f, 0, NULL, 0, &aid, &created), 0);
  struct revs rs = {0};
  struct kw_revocations_query newest = {.limit = 1};
  list(st, &newest, &rs);
  int64_t id2 = rs.v[0].id;
  revs_free(&rs);
  u = (struct kw_revocation_update){.state = "queued", .result = "queued at mb",
                                    .store = "mb", .store_ref = "12", .dry_run = 1,
                                    .attempts = 3, .next_try_us = T0 + 5 * SEC,
                                    .give_up_us = T0 + 86400 * SEC};
  assert_int_equal(kw_store_revocation_update(st, id2, &u), 0);
  j = json_of(st, id2, &raw);
  assert_int_equal(json_integer_value(json_object_get(j, "alert_id")), aid);
  assert_string_equal(jstr(j, "rule"), "r\"1");
  assert_string_equal(jstr(j, "severity"), "critical");
  assert_string_equal(jstr(j, "origin"), "rule");
  assert_string_equal(jstr(j, "store"), "mb");
  assert_string_equal(jstr(j, "store_ref"), "12");
  assert_true(json_is_true(json_object_get(j, "dry_run")));
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 3);
  assert_string_equal(jstr(j, "next_try"), kw_time_format(T0 + 5 * SEC, when, sizeof(when)));
  assert_string_equal(jstr(j, "give_up_at"),
                      kw_time_format(T0 + 86400 * SEC, when, sizeof(when)));
  json_decref(j);
  free(raw);

  /* a severity out of range is null, not garbage */
  struct kw_revocation_new odd = {.fp = fp, .origin = "manual", .decided_by = "x",
                                  .reason = "y", .severity = 9};
  int64_t id3;
  assert_int_equal(kw_store_revocation_add(st, &odd, &id3), 0);
  j = json_of(st, id3, &raw);
  assert_null(jstr(j, "severity"));
  json_decref(j);
  free(raw);
  assert_int_equal(kw_store_close(st), 0);
}

/* ---- migration from schema 4 ----------------------------------------------------------- */

static void test_migration_from_v4(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct revs rs = {0};
  char err[512];
  (void)state;

  add_key_b(st, 0x01, "mb_AbCd", T0);
  assert_int_equal(kw_store_close(st), 0);
  /* back to schema 4: no responder tables, the old decisions table with two rows (one
   * whose alert is gone) */
  sql_exec(g_db,
           "DROP TABLE revocations; DROP TABLE revocation_calls; DROP TABLE key_inventory;"
           "CREATE TABLE decisions("
           "  id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, key_id INTEGER,"
           "  action TEXT NOT NULL, decided INTEGER NOT NULL,"
           "  state TEXT NOT NULL DEFAULT 'recorded', detail TEXT);"
           "INSERT INTO alerts(id, rule, type, severity, action, key_id, first_seen,"
           "  last_seen, summary, details, created, updated)"
           "  VALUES(7, 'card-delete', 'match', 3, 'revoke', 1, 1795324326000000,"
           "  1795324327000000, 'deleted a card', '{}', 1795324330000000, 1795324330000000);"
           "INSERT INTO decisions(alert_id, key_id, action, decided, detail)"
           "  VALUES(7, 1, 'revoke', 1795324331000000, 'deleted a card');"
           "INSERT INTO decisions(alert_id, key_id, action, decided, detail)"
           "  VALUES(99, NULL, 'revoke', 1795324332000000, NULL);"
           "PRAGMA user_version = 4;");
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), 4);

  /* a reader does not migrate */
  assert_int_equal(kw_store_open(g_db, KW_STORE_RDONLY, &st, err, sizeof(err)), KW_ESCHEMA);
  assert_null(st);
  assert_non_null(strstr(err, "schema version 4"));

  st = store_open(g_db, 0);
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), KW_STORE_SCHEMA);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM sqlite_master WHERE name = 'decisions'"),
                   0);
  assert_int_equal(sql_int(g_db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name"
                           " IN ('revocations', 'revocation_calls', 'key_inventory')"),
                   3);
  struct kw_revocations_query q = {.oldest_first = true};
  list(st, &q, &rs);
  assert_int_equal(rs.n, 2);
  struct rev *r = &rs.v[0];
  assert_int_equal(r->alert_id, 7);
  assert_string_equal(r->prefix, "mb_AbCd");
  assert_string_equal(r->rule, "card-delete");
  assert_int_equal(r->severity, KW_SEV_HIGH);
  assert_string_equal(r->origin, "rule");
  assert_string_equal(r->decided_by, "rule:card-delete");
  assert_string_equal(r->reason, "deleted a card");
  assert_int_equal(r->decided, 1795324331000000LL);
  assert_int_equal(r->event, T0); /* the alert's first_seen */
  assert_string_equal(r->state, "expired");
  assert_non_null(strstr(r->result, "never carried out"));
  assert_false(r->dry_run);
  assert_int_equal(r->attempts, 0);
  r = &rs.v[1]; /* its alert is gone: defaults */
  assert_int_equal(r->alert_id, 99);
  assert_false(r->has_fp);
  assert_null(r->rule);
  assert_int_equal(r->severity, KW_SEV_CRITICAL);
  assert_string_equal(r->decided_by, "rule:?");
  assert_int_equal(r->event, 1795324332000000LL);
  assert_string_equal(r->state, "expired");
  /* expired rows are history: not open, not counted, not revoked keys */
  struct kw_revocations_query open = {.state = "open"};
  list(st, &open, &rs);
  assert_int_equal(rs.n, 0);
  assert_int_equal(since(st, 0), 0);
  assert_int_equal(last(st, 1), 0);
  assert_int_equal(kw_store_close(st), 0);

  /* opening again migrates nothing twice */
  st = store_open(g_db, 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM revocations"), 2);
  revs_free(&rs);
  assert_int_equal(kw_store_close(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_add, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update, setup, teardown),
      cmocka_unit_test_setup_teardown(test_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_revoked_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inventory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_from_v4, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
