/* test_outbox.c — the outbox driver (analyzer/outbox.c) over a real store and real sinks.
 *
 * Alerts are created in a temp store with kw_store_alert() + kw_store_commit(), exactly as
 * the analyzer does, which queues one outbox row per sink.  Deliveries go to a file sink
 * and to tests/tools/http_receiver.py on 127.0.0.1 (a subprocess that records each request
 * before answering, so what it acknowledged is in its log).  What is asserted:
 *  - the backoff schedule (pure): 1 s, 2 s, 4 s … capped, jitter only ever shortens;
 *  - every alert reaches every sink once, as valid JSON carrying the hostile strings;
 *  - a receiver that is down and then up: every alert delivered exactly once after it
 *    comes back, and a paused sink costs a few attempts, not one per alert;
 *  - retry timing against a receiver that answers 500 (request times in its log);
 *  - restart: close everything, reopen the store, run again — nothing lost, and a third
 *    run sends nothing again (no duplicate once acknowledged);
 *  - owner_commits: marks wait in the open batch; a crash before the commit (close
 *    without commit) sends again rather than losing;
 *  - unknown sink names are retried with a reason, alerts below min_severity are skipped;
 *  - bounded concurrency, and one delivery per row at a time, with slow answers;
 *  - close with deliveries in flight: the drain gets KW_ECANCELED, rows stay pending;
 *  - closing everything from inside the drain callback (as `keywatch ingest` will).
 * Every loop test ends with uv_loop_close() == 0; every subprocess is stopped.
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
#include <errno.h>
#include <jansson.h>

#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "analyzer/outbox.h"
#include "analyzer/sink.h"
#include "sidecar/alerts.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/store.h"

#include "kwtest_files.h"
#include "kwtest_loop.h"
#include "kwtest_store.h"

#define T0 1795324326000000LL
#define SEC 1000000LL

static const char HOSTILE[] = "ua \"q\" \\ \n<script>alert(1)</script>\r\n\x1b[2J\x1b]0;pwn\x07"
                              " end";

static char g_dir[64], g_db[128];
static struct peers g_peers;

/* ---- the receiver --------------------------------------------------------------------- */

struct http_peer {
  pid_t pid;
  int port;
  char out[160], port_file[160];
};

/* Starts http_receiver.py logging to DIR/TAG.log with extra args; waits for its port
 * unless it starts "--down" (then port must be set and is used as is). */
static void http_start(struct http_peer *p, const char *tag, ...) {
  char portstr[16];
  const char *argv[24];
  int n = 0;
  bool down = false;
  va_list ap;
  snprintf(p->out, sizeof(p->out), "%s/%s.log", g_dir, tag);
  snprintf(p->port_file, sizeof(p->port_file), "%s/%s.port", g_dir, tag);
  unlink(p->port_file);
  argv[n++] = "--out";
  argv[n++] = p->out;
  argv[n++] = "--port-file";
  argv[n++] = p->port_file;
  va_start(ap, tag);
  for (const char *a; n < 20 && (a = va_arg(ap, const char *)) != NULL;) {
    argv[n++] = a;
    down |= strcmp(a, "--down") == 0;
  }
  va_end(ap);
  if (p->port > 0) {
    snprintf(portstr, sizeof(portstr), "%d", p->port);
    argv[n++] = "--port";
    argv[n++] = portstr;
  }
  argv[n] = NULL;
  p->pid =
      peer_startv(&g_peers, "http_receiver.py", down ? NULL : p->port_file, &p->port, argv);
}

/* Acknowledged (2xx) alert ids a receiver logged, in order: ids[], count in *n;
 * fails on a duplicate unless allow_dup. */
static void acked_ids(const char *log, int64_t *ids, size_t max, size_t *n, bool allow_dup) {
  json_t *recs = read_json_lines(log);
  *n = 0;
  for (size_t i = 0; i < json_array_size(recs); i++) {
    json_t *r = json_array_get(recs, i);
    if (json_integer_value(json_object_get(r, "status")) / 100 != 2)
      continue;
    json_error_t e;
    json_t *doc = json_loads(json_string_value(json_object_get(r, "body")), 0, &e);
    if (doc == NULL)
      fail_msg("body is not JSON: %s", e.text);
    assert_string_equal(json_string_value(json_object_get(doc, "summary")), HOSTILE);
    int64_t id = json_integer_value(json_object_get(doc, "id"));
    json_decref(doc);
    for (size_t k = 0; k < *n && !allow_dup; k++)
      if (ids[k] == id)
        fail_msg("alert %lld delivered twice", (long long)id);
    assert_true(*n < max);
    ids[(*n)++] = id;
  }
  json_decref(recs);
}

/* ---- store ---------------------------------------------------------------------------- */

/* n new alerts (rules PREFIX-1 … PREFIX-n) queued for sinks; committed. */
static void make_alerts(struct kw_store *st, const char *prefix, int n, int sev,
                        const char *const *sinks, size_t nsinks) {
  for (int i = 0; i < n; i++) {
    char rule[64];
    int64_t id;
    bool created;
    snprintf(rule, sizeof(rule), "%s-%d", prefix, i + 1);
    struct kw_firing f = {.rule = rule, .type = "match", .severity = sev, .action = "alert",
                          .ts_us = T0 + i * SEC, .summary = HOSTILE,
                          .details = "{\"n\": 1}"};
    assert_int_equal(kw_store_alert(st, &f, 0, sinks, nsinks, &id, &created), 0);
    assert_true(created);
  }
  assert_int_equal(kw_store_commit(st), 0);
}

/* ---- one run: loop + store + sinks + outbox -------------------------------------------- */

struct run {
  uv_loop_t loop;
  struct kw_store *st;
  struct kw_sinks *sinks;
  struct kw_outbox *ob;
  int drained, drain_status;
  int64_t left;
  int closed;
  unsigned max_inflight_seen;
};

static void on_drained(int status, int64_t left, void *arg) {
  struct run *r = arg;
  r->drained++;
  r->drain_status = status;
  r->left = left;
}

static void run_open(struct run *r, struct kw_sink_cfg *sinks, unsigned nsinks,
                     struct kw_outbox_opts *o) {
  struct kw_config cfg = {.sinks = sinks, .sinks_count = nsinks};
  char err[512];
  memset(r, 0, sizeof(*r));
  assert_int_equal(uv_loop_init(&r->loop), 0);
  r->st = store_open(g_db, 0);
  if (kw_sink_open_all(&r->loop, &cfg, &r->sinks, err, sizeof(err)) != 0)
    fail_msg("sinks: %s", err);
  o->store = r->st;
  o->sinks = r->sinks;
  assert_int_equal(kw_outbox_init(&r->loop, o, &r->ob), 0);
}

/* Drains with timeout_ms; runs the loop (bounded: timeout + 5 s) until the drain ends. */
static void run_drain(struct run *r, uint64_t timeout_ms) {
  uv_timer_t tick;
  struct kw_outbox_stats s;
  assert_int_equal(kw_outbox_drain(r->ob, timeout_ms, on_drained, r), 0);
  assert_int_equal(kw_outbox_drain(r->ob, timeout_ms, on_drained, r), KW_EINVAL);
  assert_int_equal(r->drained, 0);
  uv_timer_init(&r->loop, &tick);
  uv_timer_start(&tick, on_tick, 5, 5);
  uv_update_time(&r->loop);
  uint64_t end = uv_now(&r->loop) + timeout_ms + 5000;
  while (r->drained == 0 && uv_now(&r->loop) < end) {
    uv_run(&r->loop, UV_RUN_ONCE);
    kw_outbox_stats(r->ob, &s);
    if (s.inflight > r->max_inflight_seen)
      r->max_inflight_seen = s.inflight;
  }
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&r->loop, UV_RUN_NOWAIT);
  assert_int_equal(r->drained, 1);
}

/* Closes outbox, then sinks, then the store; the loop must close cleanly. */
static void run_close(struct run *r, bool commit) {
  kw_outbox_close(r->ob, on_closed, &r->closed);
  kw_sink_close_all(r->sinks, on_closed, &r->closed);
  assert_int_equal(r->closed, 0);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_int_equal(r->closed, 2);
  assert_int_equal(uv_loop_close(&r->loop), 0);
  if (commit)
    assert_int_equal(kw_store_commit(r->st), 0);
  assert_int_equal(kw_store_close(r->st), 0);
}

/* ---- setup ---------------------------------------------------------------------------- */

static int setup(void **state) {
  (void)state;
  if (store_temp_dir(g_dir, sizeof(g_dir), g_db, sizeof(g_db), "kwoutbox") != 0)
    return -1;
  unset_proxy_env();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return peer_env_teardown(&g_peers, g_dir);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_backoff_schedule(void **state) {
  static const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000,
                                  256000, 300000, 300000};
  (void)state;
  for (int n = 1; n <= 11; n++)
    assert_int_equal(kw_outbox_backoff_ms(1000, 300000, 0, n, 12345), want[n - 1]);
  assert_int_equal(kw_outbox_backoff_ms(1000, 300000, 0, 1000000, 0), 300000);
  assert_int_equal(kw_outbox_backoff_ms(1000, 300000, 0, 0, 0), 1000);
  /* jitter shortens by at most jitter_pct, never lengthens */
  for (uint64_t rnd = 0; rnd < 5000; rnd += 7) {
    uint64_t d = kw_outbox_backoff_ms(1000, 300000, 20, 3, rnd * 2654435761u);
    assert_true(d >= 3200 && d <= 4000);
  }
  assert_int_equal(kw_outbox_backoff_ms(1000, 300000, 20, 3, 1000), 3200);
  assert_int_equal(kw_outbox_backoff_ms(1000, 300000, 20, 3, 0), 4000);
}

static void test_delivers_to_every_sink(void **state) {
  struct http_peer p = {0};
  char url[128], path[128];
  struct run r;
  struct kw_outbox_stats s;
  (void)state;
  http_start(&p, "every", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", p.port);
  snprintf(path, sizeof(path), "%s/every.jsonl", g_dir);
  struct kw_sink_cfg sinks[2] = {{.name = "file", .type = "file", .path = path},
                                 {.name = "hook", .type = "webhook", .url = url,
                                  .timeout_ms = 3000}};
  static const char *const names[] = {"file", "hook"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "every", 5, KW_SEV_HIGH, names, 2);
  assert_int_equal(kw_store_close(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'pending'"), 10);

  struct kw_outbox_opts o = {.interval_ms = 50};
  run_open(&r, sinks, 2, &o);
  run_drain(&r, 10000);
  assert_int_equal(r.drain_status, 0);
  assert_int_equal(r.left, 0);
  kw_outbox_stats(r.ob, &s);
  assert_int_equal(s.delivered, 10);
  assert_int_equal(s.failed, 0);
  assert_int_equal(s.backlog, 0);
  run_close(&r, false);

  /* committed by the outbox itself: a separate connection sees it */
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"
                                 " AND attempts = 1 AND delivered IS NOT NULL"),
                   10);
  /* the file: 5 lines, each alert once */
  json_t *lines = read_json_lines(path);
  assert_int_equal(json_array_size(lines), 5);
  int seen = 0;
  for (size_t i = 0; i < 5; i++) {
    json_t *j = json_array_get(lines, i);
    assert_string_equal(json_string_value(json_object_get(j, "summary")), HOSTILE);
    seen |= 1 << json_integer_value(json_object_get(j, "id"));
  }
  assert_int_equal(seen, 0x3e); /* ids 1..5 */
  json_decref(lines);
  size_t n;
  char *raw = read_file(path, &n);
  assert_null(memchr(raw, 0x1b, n));
  free(raw);
  /* the receiver: 5 acknowledged, distinct */
  int64_t ids[16];
  acked_ids(p.out, ids, 16, &n, false);
  assert_int_equal(n, 5);
  peer_stop(&g_peers, p.pid);
}

static void test_receiver_down_then_up(void **state) {
  struct http_peer p = {.port = free_port(SOCK_STREAM)};
  char url[128];
  struct run r;
  struct kw_outbox_stats s;
  (void)state;
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", p.port);
  struct kw_sink_cfg sink = {.name = "hook", .type = "webhook", .url = url, .timeout_ms = 2000};
  static const char *const names[] = {"hook"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "down", 20, KW_SEV_MEDIUM, names, 1);
  assert_int_equal(kw_store_close(st), 0);

  http_start(&p, "down", "--down", "1.5", NULL); /* refuses connections for 1.5 s */
  struct kw_outbox_opts o = {.interval_ms = 20, .backoff_ms = 200, .no_jitter = true};
  run_open(&r, &sink, 1, &o);
  uint64_t t0 = uv_hrtime();
  run_drain(&r, 20000);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  assert_int_equal(r.left, 0);
  kw_outbox_stats(r.ob, &s);
  assert_int_equal(s.delivered, 20);
  /* probes at ~0, 0.2, 0.6, 1.4, 3.0 s: a handful of failures, not 20 per round */
  assert_true(s.failed >= 2 && s.failed <= 8);
  assert_true(ms >= 1400 && ms < 8000);
  run_close(&r, false);

  int64_t ids[64];
  size_t n;
  acked_ids(p.out, ids, 64, &n, false); /* fails on a duplicate */
  assert_int_equal(n, 20);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"), 20);
  /* the row that probed carries its attempts; the others went once */
  assert_int_equal(sql_int(g_db, "SELECT sum(attempts) FROM outbox"), 20 + (int64_t)s.failed);
  peer_stop(&g_peers, p.pid);
}

static void test_retry_timing(void **state) {
  struct http_peer p = {0};
  char url[128];
  struct run r;
  (void)state;
  http_start(&p, "e500", "--status", "500", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", p.port);
  struct kw_sink_cfg sink = {.name = "hook", .type = "webhook", .url = url, .timeout_ms = 2000};
  static const char *const names[] = {"hook"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "timing", 1, KW_SEV_MEDIUM, names, 1);
  assert_int_equal(kw_store_close(st), 0);

  struct kw_outbox_opts o = {.interval_ms = 20, .backoff_ms = 300, .backoff_max_ms = 1000,
                             .no_jitter = true};
  run_open(&r, &sink, 1, &o);
  run_drain(&r, 2800); /* attempts at 0, 0.3, 0.9, 1.9 (capped: +1.0), 2.9 is past */
  assert_int_equal(r.left, 1);
  run_close(&r, false);

  json_t *recs = read_json_lines(p.out);
  assert_int_equal(json_array_size(recs), 4);
  static const double want[] = {0.3, 0.6, 1.0};
  for (size_t i = 1; i < 4; i++) {
    double dt = json_real_value(json_object_get(json_array_get(recs, i), "t")) -
                json_real_value(json_object_get(json_array_get(recs, i - 1), "t"));
    if (dt < want[i - 1] - 0.02 || dt > want[i - 1] + 0.2)
      fail_msg("retry %zu came after %.3f s, want %.1f s", i, dt, want[i - 1]);
  }
  /* the row's own schedule: next try one capped step (1.0 s) after the last attempt */
  double last = json_real_value(json_object_get(json_array_get(recs, 3), "t"));
  double next = (double)sql_int(g_db, "SELECT next_try FROM outbox") / 1e6;
  if (next - last < 0.9 || next - last > 1.25)
    fail_msg("next try %.3f s after the last attempt, want 1.0 s", next - last);
  json_decref(recs);
  assert_int_equal(sql_int(g_db, "SELECT attempts FROM outbox"), 4);
  assert_int_equal(sql_int(g_db, "SELECT last_error = 'HTTP 500' FROM outbox"), 1);
  assert_int_equal(sql_int(g_db, "SELECT state = 'pending' FROM outbox"), 1);
  peer_stop(&g_peers, p.pid);
}

static void test_restart_loses_nothing(void **state) {
  struct http_peer bad = {0}, good = {0};
  char url[128];
  struct run r;
  struct kw_outbox_stats s;
  struct kw_sink_cfg sink = {.name = "hook", .type = "webhook", .url = url, .timeout_ms = 2000};
  static const char *const names[] = {"hook"};
  int64_t ids[64];
  size_t n;
  (void)state;

  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "restart", 10, KW_SEV_CRITICAL, names, 1);
  assert_int_equal(kw_store_close(st), 0);

  /* run 1: the receiver fails everything */
  http_start(&bad, "restart-bad", "--status", "503", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", bad.port);
  struct kw_outbox_opts o = {.interval_ms = 20, .backoff_ms = 200, .no_jitter = true};
  run_open(&r, &sink, 1, &o);
  run_drain(&r, 700);
  assert_int_equal(r.left, 10);
  run_close(&r, false);
  peer_stop(&g_peers, bad.pid);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'pending'"), 10);
  assert_true(sql_int(g_db, "SELECT sum(attempts) FROM outbox") >= 1);

  /* run 2 (a restart: new loop, store reopened), the receiver is fine now */
  http_start(&good, "restart-good", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", good.port);
  o = (struct kw_outbox_opts){.interval_ms = 20, .backoff_ms = 200, .no_jitter = true};
  run_open(&r, &sink, 1, &o);
  run_drain(&r, 10000);
  assert_int_equal(r.left, 0);
  run_close(&r, false);
  acked_ids(good.out, ids, 64, &n, false);
  assert_int_equal(n, 10);

  /* run 3: nothing is sent again */
  run_open(&r, &sink, 1, &o);
  run_drain(&r, 2000);
  assert_int_equal(r.left, 0);
  kw_outbox_stats(r.ob, &s);
  assert_int_equal(s.delivered, 0);
  run_close(&r, false);
  acked_ids(good.out, ids, 64, &n, false);
  assert_int_equal(n, 10);
  peer_stop(&g_peers, good.pid);
}

static void test_owner_commits(void **state) {
  char path[128];
  struct run r;
  (void)state;
  snprintf(path, sizeof(path), "%s/owner.jsonl", g_dir);
  struct kw_sink_cfg sink = {.name = "file", .type = "file", .path = path};
  static const char *const names[] = {"file"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "owner", 3, KW_SEV_LOW, names, 1);
  assert_int_equal(kw_store_close(st), 0);

  /* the marks stay in the owner's batch: another connection still sees them pending */
  struct kw_outbox_opts o = {.interval_ms = 20, .owner_commits = true};
  run_open(&r, &sink, 1, &o);
  run_drain(&r, 5000);
  assert_int_equal(r.left, 0); /* this connection sees its own marks */
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'pending'"), 3);
  /* a crash before the owner's commit: close without committing (rolled back) */
  run_close(&r, false);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'pending'"), 3);

  /* the next run sends them again — at least once, never lost — and commits */
  run_open(&r, &sink, 1, &o);
  run_drain(&r, 5000);
  assert_int_equal(r.left, 0);
  run_close(&r, true);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"), 3);
  json_t *lines = read_json_lines(path);
  assert_int_equal(json_array_size(lines), 6); /* 3 + the same 3 again */
  json_decref(lines);
}

static void test_unknown_sink_and_severity(void **state) {
  char path[128];
  struct run r;
  struct kw_outbox_stats s;
  (void)state;
  snprintf(path, sizeof(path), "%s/sev.jsonl", g_dir);
  struct kw_sink_cfg sink = {.name = "file", .type = "file", .path = path,
                             .min_severity = "high"};
  static const char *const file[] = {"file"}, *const gone[] = {"gone"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "medium", 1, KW_SEV_MEDIUM, file, 1);
  make_alerts(st, "high", 1, KW_SEV_HIGH, file, 1);
  make_alerts(st, "gone", 1, KW_SEV_CRITICAL, gone, 1);
  assert_int_equal(kw_store_close(st), 0);

  struct kw_outbox_opts o = {.interval_ms = 20, .backoff_ms = 5000};
  run_open(&r, &sink, 1, &o);
  uint64_t t0 = uv_hrtime();
  run_drain(&r, 3000);
  /* the unknown sink's row can never be sent: the drain ends without waiting it out */
  assert_true((uv_hrtime() - t0) / 1000000 < 2000);
  assert_int_equal(r.left, 1);
  kw_outbox_stats(r.ob, &s);
  assert_int_equal(s.delivered, 1);
  assert_int_equal(s.skipped, 1);
  assert_int_equal(s.failed, 1);
  run_close(&r, false);

  json_t *lines = read_json_lines(path);
  assert_int_equal(json_array_size(lines), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 0), "severity")),
                      "high");
  json_decref(lines);
  assert_int_equal(sql_int(g_db, "SELECT attempts FROM outbox WHERE sink = 'gone'"), 1);
  assert_int_equal(sql_int(g_db, "SELECT last_error LIKE '%no sink named ''gone''%' FROM outbox"
                                 " WHERE sink = 'gone'"),
                   1);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE sink = 'file'"
                                 " AND state = 'delivered'"),
                   2);
}

static void test_bounded_one_per_row(void **state) {
  struct http_peer p = {0};
  char url[128];
  struct run r;
  (void)state;
  /* each answer takes 0.15 s, far longer than the 10 ms pass interval */
  http_start(&p, "slow", "--delay", "0.15", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", p.port);
  struct kw_sink_cfg sink = {.name = "hook", .type = "webhook", .url = url, .timeout_ms = 3000};
  static const char *const names[] = {"hook"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "slow", 12, KW_SEV_INFO, names, 1);
  assert_int_equal(kw_store_close(st), 0);

  struct kw_outbox_opts o = {.interval_ms = 10, .max_inflight = 6, .sink_inflight = 3};
  run_open(&r, &sink, 1, &o);
  run_drain(&r, 15000);
  assert_int_equal(r.left, 0);
  assert_true(r.max_inflight_seen >= 2 && r.max_inflight_seen <= 3);
  run_close(&r, false);
  int64_t ids[32];
  size_t n;
  acked_ids(p.out, ids, 32, &n, false); /* no row sent twice while in flight */
  assert_int_equal(n, 12);
  json_t *recs = read_json_lines(p.out);
  assert_int_equal(json_array_size(recs), 12);
  json_decref(recs);
  peer_stop(&g_peers, p.pid);
}

static void test_close_with_inflight(void **state) {
  struct http_peer p = {0};
  char url[128];
  struct run r;
  uv_timer_t tick;
  (void)state;
  http_start(&p, "hang", "--delay", "5", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", p.port);
  struct kw_sink_cfg sink = {.name = "hook", .type = "webhook", .url = url,
                             .timeout_ms = 10000};
  static const char *const names[] = {"hook"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "hang", 2, KW_SEV_INFO, names, 1);
  assert_int_equal(kw_store_close(st), 0);

  struct kw_outbox_opts o = {.interval_ms = 20};
  run_open(&r, &sink, 1, &o);
  assert_int_equal(kw_outbox_drain(r.ob, 30000, on_drained, &r), 0);
  /* run until the first request waits at the receiver (a new sink is probed: one at a
   * time until it has answered once, so the second alert waits in the store) */
  uv_timer_init(&r.loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  json_t *recs = NULL;
  for (int i = 0; i < 300; i++) {
    uv_run(&r.loop, UV_RUN_ONCE);
    json_decref(recs);
    recs = read_json_lines(p.out);
    if (json_array_size(recs) == 1)
      break;
  }
  assert_int_equal(json_array_size(recs), 1);
  json_decref(recs);
  uv_close((uv_handle_t *)&tick, NULL);
  uint64_t t0 = uv_hrtime();
  run_close(&r, false); /* closing the sinks cancels what the outbox waits for */
  assert_true((uv_hrtime() - t0) / 1000000 < 2000);
  assert_int_equal(r.drained, 1);
  assert_int_equal(r.drain_status, KW_ECANCELED);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'pending'"
                                 " AND attempts = 0"),
                   2);
  peer_stop(&g_peers, p.pid);
}

/* keywatch ingest's way: everything is closed from inside the drain callback. */
static void on_drained_close_all(int status, int64_t left, void *arg) {
  struct run *r = arg;
  on_drained(status, left, arg);
  kw_outbox_close(r->ob, on_closed, &r->closed);
  kw_sink_close_all(r->sinks, on_closed, &r->closed);
}

static void test_close_from_drain_callback(void **state) {
  char path[128];
  struct run r;
  (void)state;
  snprintf(path, sizeof(path), "%s/ingest.jsonl", g_dir);
  struct kw_sink_cfg sink = {.name = "file", .type = "file", .path = path};
  static const char *const names[] = {"file"};
  struct kw_store *st = store_open(g_db, 0);
  make_alerts(st, "ingest", 4, KW_SEV_HIGH, names, 1);
  assert_int_equal(kw_store_close(st), 0);
  struct kw_outbox_opts o = {0};
  run_open(&r, &sink, 1, &o);
  assert_int_equal(kw_outbox_drain(r.ob, 5000, on_drained_close_all, &r), 0);
  uv_run(&r.loop, UV_RUN_DEFAULT); /* ends once everything is closed */
  assert_int_equal(r.drained, 1);
  assert_int_equal(r.drain_status, 0);
  assert_int_equal(r.left, 0);
  assert_int_equal(r.closed, 2);
  assert_int_equal(uv_loop_close(&r.loop), 0);
  assert_int_equal(kw_store_close(r.st), 0);
  json_t *lines = read_json_lines(path);
  assert_int_equal(json_array_size(lines), 4);
  json_decref(lines);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM outbox WHERE state = 'delivered'"), 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backoff_schedule),
      cmocka_unit_test_setup_teardown(test_delivers_to_every_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_receiver_down_then_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_timing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_loses_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_owner_commits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_sink_and_severity, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounded_one_per_row, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_with_inflight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_from_drain_callback, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
