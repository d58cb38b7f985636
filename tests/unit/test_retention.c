/* test_retention.c — kw_store_prune(): retention that moves the hash chain's anchor.
 *
 * Each test builds links of known calls (one committed batch per link, call times one
 * hour apart per link), prunes with a cutoff between two links, and checks what went,
 * what stayed, and that kw_store_verify() still proves the rest — or, after edits made
 * around the store with sqlite3, that it names what was done.  Also the outbox bound
 * (kw_store_outbox_trim()) and the limit_hits counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kwtest_store.h"
#include "sidecar/alerts.h"
#include "sidecar/err.h"

#define HOUR (3600LL * 1000000)
#define T0 (1700000000LL * 1000000)

static char g_dir[128], g_db[160];

static int setup(void **state) {
  (void)state;
  return store_temp_dir(g_dir, sizeof(g_dir), g_db, sizeof(g_db), "kw-retention");
}

static int teardown(void **state) {
  (void)state;
  return temp_dir_remove(g_dir);
}

/* Commits nlinks links of per calls each; link i (from 0) holds calls at T0 + i hours
 * (+ 1 µs each).  Keys alternate between two fingerprints. */
static void fill(struct kw_store *st, int nlinks, int per) {
  uint8_t a[KW_FP_LEN], b[KW_FP_LEN];
  uint32_t src;
  fp_fill(a, 0xa1);
  fp_fill(b, 0xb2);
  assert_int_equal(kw_store_source(st, "test", "file", "keyed", &src), 0);
  for (int i = 0; i < nlinks; i++) {
    for (int k = 0; k < per; k++)
      store_add_call(st, src, k % 2 ? b : a, k % 2 ? "mb_bbbb" : "mb_aaaa",
                     T0 + i * HOUR + k, "GET", 200);
    assert_int_equal(kw_store_commit(st), 0);
  }
}

static void verify_intact(struct kw_verify *v) {
  struct kw_store *ro = store_open(g_db, KW_STORE_RDONLY);
  assert_int_equal(kw_store_verify(ro, v), 0);
  if (v->bad_batch != 0)
    fail_msg("verify: batch %lld: %s", (long long)v->bad_batch, v->reason);
  assert_int_equal(kw_store_close(ro), 0);
}

/* Prunes the links entirely older than the cutoff: a prefix, with the anchor moved. */
static void test_prune_prefix(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_prune p;
  struct kw_verify v;
  (void)state;

  fill(st, 6, 10);
  verify_intact(&v);
  uint8_t head[32];
  memcpy(head, v.head, 32);
  /* links 0-2 end before T0 + 3h; link 3's calls start exactly at the cutoff: it stays */
  assert_int_equal(kw_store_prune(st, T0 + 3 * HOUR, 0, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(p.batches, 3);
  assert_int_equal(p.calls, 30);
  assert_int_equal(p.anchor_batch, 3);
  assert_false(p.more);
  assert_int_equal(p.bad_batch, 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls"), 30);
  assert_int_equal(sql_int(g_db, "SELECT min(ts) FROM calls"), T0 + 3 * HOUR);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM chain"), 3);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM prunes"), 1);
  /* aggregates are kept: the keys still count every call */
  assert_int_equal(sql_int(g_db, "SELECT sum(calls) FROM keys"), 60);
  assert_int_equal(sql_int(g_db, "SELECT sum(calls) FROM key_hours"), 60);

  verify_intact(&v);
  assert_int_equal(v.batches, 3);
  assert_int_equal(v.calls, 30);
  assert_int_equal(v.anchor_batch, 3);
  assert_int_equal(v.pruned_calls, 30);
  assert_true(v.has_head);
  assert_memory_equal(v.head, head, 32); /* the newest link did not change */

  /* nothing older is left: a second prune removes nothing and logs nothing */
  assert_int_equal(kw_store_prune(st, T0 + 3 * HOUR, 0, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(p.batches, 0);
  assert_int_equal(p.anchor_batch, 3);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM prunes"), 1);
  assert_int_equal(kw_store_close(st), 0);
}

/* max_calls: chunks of whole links, `more` until done; each chunk moves the anchor. */
static void test_prune_chunks(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_prune p;
  struct kw_verify v;
  int chunks = 0;
  (void)state;

  fill(st, 10, 7);
  do {
    assert_int_equal(kw_store_prune(st, T0 + 9 * HOUR, 15, &p), 0);
    assert_int_equal(kw_store_commit(st), 0);
    assert_true(p.calls <= 15);
    chunks++;
    verify_intact(&v); /* intact after every chunk */
  } while (p.more);
  assert_int_equal(chunks, 5); /* 9 links of 7 calls, two per chunk: 2+2+2+2+1 */
  assert_int_equal(v.anchor_batch, 9);
  assert_int_equal(v.pruned_calls, 63);
  assert_int_equal(v.batches, 1);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM prunes"), 5);
  /* the newest link always stays */
  assert_int_equal(kw_store_prune(st, T0 + 99 * HOUR, 0, &p), 0);
  assert_int_equal(p.batches, 0);
  /* once it is not the newest, a link bigger than max_calls still goes, alone */
  fill(st, 1, 7);
  assert_int_equal(kw_store_prune(st, T0 + 99 * HOUR, 3, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(p.batches, 1);
  assert_int_equal(p.calls, 7);
  assert_int_equal(kw_store_close(st), 0);
}

/* A changed call stops the prune at its link: the evidence is not erased. */
static void test_prune_stops_at_tampering(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_prune p;
  struct kw_verify v;
  (void)state;

  fill(st, 4, 5);
  assert_int_equal(kw_store_close(st), 0);
  sql_exec(g_db, "UPDATE calls SET status = 500 WHERE id = 8"); /* link 2 (calls 6-10) */
  st = store_open(g_db, 0);
  assert_int_equal(kw_store_prune(st, T0 + 4 * HOUR, 0, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(p.batches, 1); /* link 1 only */
  assert_int_equal(p.bad_batch, 2);
  assert_non_null(p.reason);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls WHERE id = 8"), 1);
  struct kw_store *ro = store_open(g_db, KW_STORE_RDONLY);
  assert_int_equal(kw_store_verify(ro, &v), 0);
  assert_int_equal(v.bad_batch, 2); /* still named */
  assert_int_equal(kw_store_close(ro), 0);
  assert_int_equal(kw_store_close(st), 0);
}

/* A link whose calls were all deleted stops the prune too (and is named). */
static void test_prune_stops_at_deleted_link(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_prune p;
  (void)state;

  fill(st, 4, 5);
  assert_int_equal(kw_store_close(st), 0);
  sql_exec(g_db, "DELETE FROM calls WHERE id BETWEEN 6 AND 10"); /* all of link 2 */
  st = store_open(g_db, 0);
  assert_int_equal(kw_store_prune(st, T0 + 4 * HOUR, 0, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(p.batches, 1);
  assert_int_equal(p.bad_batch, 2);
  assert_non_null(strstr(p.reason, "missing"));
  assert_int_equal(kw_store_close(st), 0);
}

/* Edits after a prune: the first link no longer follows the anchor, or the anchor was
 * moved by hand. */
static void test_verify_after_prune(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_store *ro;
  struct kw_prune p;
  struct kw_verify v;
  (void)state;

  fill(st, 5, 4);
  assert_int_equal(kw_store_prune(st, T0 + 2 * HOUR, 0, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_close(st), 0);

  /* the oldest remaining link deleted with its calls, the anchor left alone */
  sql_exec(g_db, "BEGIN; DELETE FROM calls WHERE id BETWEEN 9 AND 12;"
                 "DELETE FROM chain WHERE batch = 3; COMMIT;");
  ro = store_open(g_db, KW_STORE_RDONLY);
  assert_int_equal(kw_store_verify(ro, &v), 0);
  assert_int_equal(v.bad_batch, 4);
  assert_non_null(strstr(v.reason, "anchor"));
  assert_int_equal(kw_store_close(ro), 0);

  /* ... and the anchor moved over it by hand: the prune log disagrees */
  sql_exec(g_db, "UPDATE chain_anchor SET batch = 3, hash = randomblob(32)");
  ro = store_open(g_db, KW_STORE_RDONLY);
  assert_int_equal(kw_store_verify(ro, &v), 0);
  assert_int_equal(v.bad_batch, -1);
  assert_non_null(strstr(v.reason, "anchor"));
  assert_int_equal(kw_store_close(ro), 0);
}

/* Everything old pruned but the newest link (the head), then new calls: the chain goes
 * on, batch numbers and call ids keep counting, across a reopen. */
static void test_prune_all_then_more(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_prune p;
  struct kw_verify v;
  (void)state;

  fill(st, 3, 4);
  assert_int_equal(kw_store_prune(st, T0 + 100 * HOUR, 0, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(p.batches, 2);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls"), 4);
  verify_intact(&v);
  assert_int_equal(v.batches, 1);
  assert_true(v.has_head);
  assert_int_equal(kw_store_close(st), 0);

  st = store_open(g_db, 0);
  fill(st, 2, 4);
  assert_int_equal(kw_store_close(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT min(batch) FROM chain"), 3);
  assert_int_equal(sql_int(g_db, "SELECT max(batch) FROM chain"), 5);
  assert_int_equal(sql_int(g_db, "SELECT min(id) FROM calls"), 9);
  assert_int_equal(sql_int(g_db, "SELECT max(id) FROM calls"), 20);
  verify_intact(&v);
  assert_int_equal(v.batches, 3);
  assert_int_equal(v.calls, 12);
  assert_int_equal(v.pruned_calls, 8);
}

/* Alerts keep their rows but lose their references to removed calls. */
static void test_prune_alert_samples(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_firing f = {.rule = "r", .type = "rate_spike", .severity = KW_SEV_HIGH,
                        .action = "alert", .ts_us = T0, .cooldown_us = HOUR,
                        .summary = "s", .details = "{}"};
  struct kw_prune p;
  int64_t id;
  bool created;
  (void)state;

  fill(st, 1, 3); /* calls 1-3 */
  assert_int_equal(kw_store_alert(st, &f, 2, NULL, 0, &id, &created), 0);
  assert_int_equal(kw_store_commit(st), 0);
  fill(st, 1, 3); /* calls 4-6, at T0 too: link 2 holds calls at T0 + 0..2 µs */
  assert_int_equal(kw_store_alert(st, &f, 5, NULL, 0, &id, &created), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM alert_calls"), 2);
  fill(st, 1, 1); /* the newest link, which stays */
  assert_int_equal(kw_store_prune(st, T0 + 1, 0, &p), 0); /* neither link is all older */
  assert_int_equal(p.batches, 0);
  assert_int_equal(kw_store_prune(st, T0 + 3, 0, &p), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(p.batches, 2);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM alert_calls"), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM alerts"), 1);
  assert_int_equal(kw_store_close(st), 0);
}

/* The outbox bound gives up the oldest pending deliveries, and only pending ones. */
static void test_outbox_trim(void **state) {
  static const char *const sinks[] = {"a", "b"};
  struct kw_store *st = store_open(g_db, 0);
  struct kw_firing f = {.type = "rate_spike", .severity = KW_SEV_HIGH, .action = "alert",
                        .ts_us = T0, .cooldown_us = HOUR, .summary = "s", .details = "{}"};
  char rule[16];
  int64_t id;
  bool created;
  (void)state;

  fill(st, 1, 1);
  for (int i = 0; i < 5; i++) { /* 5 alerts × 2 sinks = 10 deliveries */
    snprintf(rule, sizeof(rule), "r%d", i);
    f.rule = rule;
    assert_int_equal(kw_store_alert(st, &f, 1, sinks, 2, &id, &created), 0);
  }
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_outbox_done(st, 1), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_outbox_trim(st, 20), 0); /* under the bound: nothing */
  assert_int_equal(kw_store_outbox_trim(st, 4), 5);  /* 9 pending → 4 */
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_outbox_backlog(st), 4);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'overflow'"), 5);
  assert_int_equal(sql_int(g_db, "SELECT min(id) FROM outbox WHERE state = 'pending'"), 7);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM alerts"), 5); /* alerts stay */
  assert_int_equal(sql_int(g_db, "SELECT hits FROM limit_hits WHERE name = 'outbox_pending'"),
                   5);
  assert_int_equal(kw_store_close(st), 0);
}

static int count_limit(const char *name, int64_t hits, int64_t last, void *ctx) {
  int64_t *n = ctx;
  assert_true(last > 0);
  if (strcmp(name, "line_bytes") == 0)
    n[0] = hits;
  else
    n[1]++;
  return 0;
}

/* Limit hits add up per bound, committed with the batch; a rollback keeps none. */
static void test_limit_hits(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  int64_t n[2] = {0, 0};
  (void)state;

  assert_int_equal(kw_store_add_limit_hits(st, "line_bytes", 2), 0);
  assert_int_equal(kw_store_add_limit_hits(st, "line_bytes", 5), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_add_limit_hits(st, "line_bytes", 100), 0);
  assert_int_equal(kw_store_close(st), 0); /* not committed: rolled back */
  st = store_open(g_db, KW_STORE_RDONLY);
  assert_int_equal(kw_store_limit_hits(st, count_limit, n), 0);
  assert_int_equal(n[0], 7);
  assert_int_equal(n[1], 0);
  assert_int_equal(kw_store_close(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_prune_prefix, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_stops_at_tampering, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_stops_at_deleted_link, setup, teardown),
      cmocka_unit_test_setup_teardown(test_verify_after_prune, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_all_then_more, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_alert_samples, setup, teardown),
      cmocka_unit_test_setup_teardown(test_outbox_trim, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limit_hits, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
