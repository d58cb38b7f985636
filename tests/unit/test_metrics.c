/* test_metrics.c — the /metrics document (sidecar/metrics.c) and the status-class rollup
 * it reads (table source_classes, sidecar/store.c).
 *
 * Each test works on a database in a fresh mkdtemp directory, writes the document with
 * kw_metrics_write() on a read-only connection into a memory stream, and parses it with
 * the strict parser below, which fails the test unless:
 *  - every line is "# HELP name text", "# TYPE name counter|gauge" or a sample
 *    `name{label="value",...} value` (no blank lines, no other comments, no timestamps);
 *  - each family has HELP then TYPE (the very next line) before its samples, is declared
 *    once, and its samples follow it contiguously under its exact name;
 *  - label names are valid, label values use only the escapes \\ \" \n, the document is
 *    valid UTF-8, and no series appears twice.
 * Values are then looked up by name and (unescaped) labels and compared with what was
 * stored, including a source whose name holds a quote, a backslash, a newline and a byte
 * that is not UTF-8.  The migration 6 → 7 test rebuilds a version-6 database (calls but no
 * source_classes) and checks the backfill.
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

#include <math.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "sidecar/alerts.h"
#include "sidecar/call.h"
#include "sidecar/err.h"
#include "sidecar/escape.h"
#include "sidecar/metrics.h"
#include "sidecar/revocations.h"
#include "sidecar/store.h"
#include "sidecar/timeutil.h"

#include "kwtest_files.h"
#include "kwtest_store.h"

#define T0 1795324326000000LL /* 2026-11-22T05:12:06Z */
#define SEC 1000000LL

/* A source name as hostile as a path can be: quote, backslash, newline, a non-UTF-8 byte. */
static const char EVIL[] = "/logs/ev\"il\\dir\nname\xff.log";
/* What it must read as once unescaped: the invalid byte replaced by U+FFFD. */
static const char EVIL_READ[] = "/logs/ev\"il\\dir\nname\xef\xbf\xbd.log";
/* And its escaped form as the document must carry it. */
static const char EVIL_TEXT[] = "source=\"/logs/ev\\\"il\\\\dir\\nname\xef\xbf\xbd.log\"";

static char g_dir[64], g_db[128], g_err[1024];

static int setup(void **state) {
  (void)state;
  return store_temp_dir(g_dir, sizeof(g_dir), g_db, sizeof(g_db), "kwmetrics");
}

static int teardown(void **state) {
  (void)state;
  return temp_dir_remove(g_dir);
}

/* Stores one call of source src with status (key byte 0: anonymous). */
static void add_call(struct kw_store *st, uint32_t src, int key, int64_t ts, int status) {
  uint8_t fp[KW_FP_LEN];
  char prefix[16];
  fp_fill(fp, key);
  snprintf(prefix, sizeof(prefix), "mb_key%d", key);
  store_add_call(st, src, key ? fp : NULL, prefix, ts, "GET", status);
}

/* ---- the strict parser --------------------------------------------------------------- */

#define MAXL 4

struct sample {
  char name[96];
  int nl;
  char key[MAXL][32];
  char *val[MAXL]; /* unescaped */
  double v;
};

struct family {
  char name[96], type[16];
  int samples;
};

struct doc {
  char *text;
  struct sample s[512];
  size_t n;
  struct family f[64];
  size_t nf;
};

static int valid_name(const char *p, size_t n, int colon) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok)
      return 0;
  }
  return 1;
}

static size_t name_len(const char *p) {
  size_t n = 0;
  while (p[n] != '\0' && p[n] != ' ' && p[n] != '{')
    n++;
  return n;
}

/* Parses one sample line (NUL-terminated, no newline) into *s. */
static void parse_sample(const char *line, struct sample *s, int lineno) {
  const char *p = line;
  size_t n = name_len(p);
  char *end;

  memset(s, 0, sizeof(*s));
  if (!valid_name(p, n, 1) || n >= sizeof(s->name))
    fail_msg("line %d: bad metric name: %s", lineno, line);
  memcpy(s->name, p, n);
  p += n;
  if (*p == '{') {
    p++;
    while (*p != '}') {
      size_t k = 0;
      char *v;
      size_t vn = 0;
      if (s->nl == MAXL)
        fail_msg("line %d: too many labels", lineno);
      while (p[k] != '=' && p[k] != '\0')
        k++;
      if (p[k] != '=' || !valid_name(p, k, 0) || k >= sizeof(s->key[0]))
        fail_msg("line %d: bad label name: %s", lineno, line);
      memcpy(s->key[s->nl], p, k);
      for (int j = 0; j < s->nl; j++)
        if (strcmp(s->key[j], s->key[s->nl]) == 0)
          fail_msg("line %d: label %s twice", lineno, s->key[j]);
      p += k + 1;
      if (*p++ != '"')
        fail_msg("line %d: label value not quoted: %s", lineno, line);
      v = s->val[s->nl] = calloc(1, strlen(p) + 1);
      assert_non_null(v);
      while (*p != '"') {
        if (*p == '\0')
          fail_msg("line %d: unterminated label value", lineno);
        if (*p == '\\') {
          p++;
          if (*p == '\\' || *p == '"')
            v[vn++] = *p;
          else if (*p == 'n')
            v[vn++] = '\n';
          else
            fail_msg("line %d: escape \\%c is not in the format", lineno, *p);
          p++;
        } else {
          v[vn++] = *p++;
        }
      }
      p++;
      s->nl++;
      if (*p == ',')
        p++;
      else if (*p != '}')
        fail_msg("line %d: expected , or } after a label: %s", lineno, line);
    }
    p++;
  }
  if (*p++ != ' ')
    fail_msg("line %d: no single space before the value: %s", lineno, line);
  s->v = strtod(p, &end);
  if (end == p || *end != '\0')
    fail_msg("line %d: value is not a number alone (no timestamp expected): %s", lineno,
             line);
}

static int same_series(const struct sample *a, const struct sample *b) {
  if (strcmp(a->name, b->name) != 0 || a->nl != b->nl)
    return 0;
  for (int i = 0; i < a->nl; i++) {
    int found = 0;
    for (int j = 0; j < b->nl; j++)
      if (strcmp(a->key[i], b->key[j]) == 0 && strcmp(a->val[i], b->val[j]) == 0)
        found = 1;
    if (!found)
      return 0;
  }
  return 1;
}

static void parse(struct doc *d) {
  char *text = strdup(d->text), *line = text, *nl;
  struct family *cur = NULL;
  int lineno = 0, expect_type = 0;
  const unsigned char *u = (const unsigned char *)d->text;
  size_t len = strlen(d->text);

  for (size_t i = 0; i < len;) { /* valid UTF-8 throughout */
    size_t k = kw_utf8_len(u + i, len - i);
    if (k == 0)
      fail_msg("byte %zu is not valid UTF-8", i);
    i += k;
  }
  assert_true(len > 0 && d->text[len - 1] == '\n'); /* the last line is complete */
  for (; *line != '\0'; line = nl + 1) {
    nl = strchr(line, '\n');
    *nl = '\0';
    lineno++;
    if (*line == '\0')
      fail_msg("line %d: blank line", lineno);
    if (strncmp(line, "# HELP ", 7) == 0) {
      const char *name = line + 7;
      size_t n = name_len(name);
      if (expect_type)
        fail_msg("line %d: HELP where a TYPE was expected", lineno);
      if (!valid_name(name, n, 1) || name[n] != ' ' || name[n + 1] == '\0')
        fail_msg("line %d: bad HELP: %s", lineno, line);
      for (size_t i = 0; i < d->nf; i++)
        if (strlen(d->f[i].name) == n && memcmp(d->f[i].name, name, n) == 0)
          fail_msg("line %d: family declared twice: %s", lineno, line);
      assert_true(d->nf < 64);
      cur = &d->f[d->nf++];
      memset(cur, 0, sizeof(*cur));
      memcpy(cur->name, name, n);
      expect_type = 1;
    } else if (strncmp(line, "# TYPE ", 7) == 0) {
      const char *name = line + 7;
      size_t n = name_len(name);
      if (!expect_type || cur == NULL || strlen(cur->name) != n ||
          memcmp(cur->name, name, n) != 0)
        fail_msg("line %d: TYPE not right after its HELP: %s", lineno, line);
      if (strcmp(name + n, " counter") != 0 && strcmp(name + n, " gauge") != 0)
        fail_msg("line %d: unexpected type: %s", lineno, line);
      snprintf(cur->type, sizeof(cur->type), "%s", name + n + 1);
      expect_type = 0;
    } else if (line[0] == '#') {
      fail_msg("line %d: unexpected comment: %s", lineno, line);
    } else {
      struct sample *s;
      if (expect_type || cur == NULL)
        fail_msg("line %d: sample before its family's HELP and TYPE: %s", lineno, line);
      assert_true(d->n < 512);
      s = &d->s[d->n];
      parse_sample(line, s, lineno);
      if (strcmp(s->name, cur->name) != 0)
        fail_msg("line %d: sample %s under family %s", lineno, s->name, cur->name);
      if (strcmp(cur->type, "counter") == 0 &&
          (strlen(s->name) < 6 || strcmp(s->name + strlen(s->name) - 6, "_total") != 0))
        fail_msg("line %d: counter %s does not end in _total", lineno, s->name);
      for (size_t i = 0; i < d->n; i++)
        if (same_series(&d->s[i], s))
          fail_msg("line %d: series twice: %s", lineno, line);
      cur->samples++;
      d->n++;
    }
  }
  assert_false(expect_type);
  free(text);
}

static void doc_free(struct doc *d) {
  for (size_t i = 0; i < d->n; i++)
    for (int j = 0; j < d->s[i].nl; j++)
      free(d->s[i].val[j]);
  free(d->text);
  free(d);
}

/* Writes and parses the document of g_db. */
static struct doc *scrape(void) {
  struct kw_store *st = NULL;
  struct doc *d = calloc(1, sizeof(*d));
  size_t len = 0;
  FILE *f;

  assert_non_null(d);
  st = store_open(g_db, KW_STORE_RDONLY);
  f = open_memstream(&d->text, &len);
  assert_non_null(f);
  assert_int_equal(kw_metrics_write(st, g_db, f), 0);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(kw_store_close(st), 0);
  parse(d);
  return d;
}

/* The value of the series name{k1=v1,k2=v2} (k NULL: fewer labels); NAN when absent. */
static double val(const struct doc *d, const char *name, const char *k1, const char *v1,
                  const char *k2, const char *v2) {
  struct sample want = {.nl = 0};
  char *vals[2] = {(char *)v1, (char *)v2};
  snprintf(want.name, sizeof(want.name), "%s", name);
  if (k1) {
    snprintf(want.key[want.nl], sizeof(want.key[0]), "%s", k1);
    want.val[want.nl++] = vals[0];
  }
  if (k2) {
    snprintf(want.key[want.nl], sizeof(want.key[0]), "%s", k2);
    want.val[want.nl++] = vals[1];
  }
  for (size_t i = 0; i < d->n; i++)
    if (same_series(&d->s[i], &want))
      return d->s[i].v;
  return NAN;
}

static const struct family *fam(const struct doc *d, const char *name) {
  for (size_t i = 0; i < d->nf; i++)
    if (strcmp(d->f[i].name, name) == 0)
      return &d->f[i];
  fail_msg("no family %s", name);
  return NULL;
}

#define assert_val(d, want, ...) assert_true(val(d, __VA_ARGS__) == (double)(want))

/* ---- tests ------------------------------------------------------------------------- */

/* Every family of metrics.h, with its type. */
static void test_families(void **state) {
  static const char *const want[][2] = {
      {"keywatch_up", "gauge"},
      {"keywatch_build_info", "gauge"},
      {"keywatch_calls_total", "counter"},
      {"keywatch_lines_total", "counter"},
      {"keywatch_malformed_lines_total", "counter"},
      {"keywatch_source_lag_seconds", "gauge"},
      {"keywatch_source_backlog_bytes", "gauge"},
      {"keywatch_source_drops_total", "counter"},
      {"keywatch_source_gaps_total", "counter"},
      {"keywatch_keys", "gauge"},
      {"keywatch_alerts_total", "counter"},
      {"keywatch_alerts_open", "gauge"},
      {"keywatch_revocations", "gauge"},
      {"keywatch_outbox_backlog", "gauge"},
      {"keywatch_limit_hits_total", "counter"},
      {"keywatch_store_bytes", "gauge"},
      {"keywatch_daemon_heartbeat_timestamp_seconds", "gauge"},
  };
  struct kw_store *st;
  struct doc *d;
  (void)state;

  /* an empty store: every family is declared, the per-source ones without samples */
  st = store_open(g_db, 0);
  assert_int_equal(kw_store_close(st), 0);
  d = scrape();
  assert_int_equal(d->nf, sizeof(want) / sizeof(want[0]));
  for (size_t i = 0; i < d->nf; i++) {
    assert_string_equal(d->f[i].name, want[i][0]);
    assert_string_equal(d->f[i].type, want[i][1]);
  }
  assert_val(d, 1, "keywatch_up", NULL, NULL, NULL, NULL);
  assert_val(d, 1, "keywatch_build_info", "version", KW_VERSION, NULL, NULL);
  assert_int_equal(fam(d, "keywatch_calls_total")->samples, 0);
  assert_int_equal(fam(d, "keywatch_daemon_heartbeat_timestamp_seconds")->samples, 0);
  assert_val(d, 0, "keywatch_keys", NULL, NULL, NULL, NULL);
  assert_val(d, 0, "keywatch_outbox_backlog", NULL, NULL, NULL, NULL);
  assert_val(d, 0, "keywatch_alerts_open", "severity", "critical", NULL, NULL);
  assert_val(d, 0, "keywatch_revocations", "state", "queued", NULL, NULL);
  doc_free(d);
}

static void test_values(void **state) {
  static const char *const sinks[] = {"slack", "webhook"};
  struct kw_store *st;
  uint32_t a, b, c;
  int64_t alert_burst1, alert_burst2, alert_odd, rev_manual, rev_queued, hb0, hb1;
  bool created;
  struct doc *d;
  struct stat sb;
  int64_t bytes = 0;
  uint8_t fp2[KW_FP_LEN];
  (void)state;

  st = store_open(g_db, 0);
  assert_int_equal(kw_store_source(st, "/var/log/nginx/access.log", "file", "combined", &a), 0);
  assert_int_equal(kw_store_source(st, EVIL, "file", "combined", &b), 0);
  assert_int_equal(kw_store_source(st, "udp:127.0.0.1:5514", "syslog", "combined", &c), 0);

  /* two batches: the rollup adds up across commits */
  static const int sa[] = {200, 200, 201, 304, 404, 500, 0, 101};
  for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++)
    add_call(st, a, 1, T0 + (int64_t)i * SEC, sa[i]);
  add_call(st, b, 2, T0, 200);
  add_call(st, b, 0, T0, 403);
  assert_int_equal(kw_store_add_lines(st, a, 10, 2, 1000), 0);
  assert_int_equal(kw_store_add_lines(st, b, 2, 0, 200), 0);
  assert_int_equal(kw_store_commit(st), 0);
  add_call(st, a, 1, T0 + 10 * SEC, 200);
  add_call(st, a, 2, T0 + 11 * SEC, 0);
  add_call(st, b, 2, T0 + 12 * SEC, 999); /* not HTTP: class "other" */
  add_call(st, c, 0, T0 + 13 * SEC, 502);
  add_call(st, c, 0, T0 + 14 * SEC, 503);
  assert_int_equal(kw_store_add_lines(st, a, 2, 0, 200), 0);
  assert_int_equal(kw_store_add_lines(st, b, 1, 0, 100), 0);
  assert_int_equal(kw_store_add_lines(st, c, 2, 0, 200), 0);

  /* the syslog source as keywatch run reports it, with two gaps */
  struct kw_source_status ss = {.state = "listening", .backlog = 4096, .drops = 7,
                                .rate = 1.5, .lag_p50_us = 12000, .lag_p99_us = 1500001};
  assert_int_equal(kw_store_set_status(st, c, &ss), 0);
  assert_int_equal(kw_store_add_gap(st, c, 100, "receive buffer overflow"), 0);
  assert_int_equal(kw_store_add_gap(st, c, -1, "restart"), 0);
  /* a file source run by the daemon, no lag measured yet */
  struct kw_source_status sa_st = {.state = "reading", .backlog = 0, .drops = 0,
                                   .lag_p50_us = -1, .lag_p99_us = -1};
  assert_int_equal(kw_store_set_status(st, a, &sa_st), 0);

  /* alerts: "burst" high twice (two keys), one resolved; a revoke rule with a hostile id */
  struct kw_firing f = {.rule = "burst", .type = "rate", .severity = KW_SEV_HIGH,
                        .action = "alert", .has_key = true, .ts_us = T0,
                        .summary = "many", .details = "{}"};
  memset(f.fp, 1, KW_FP_LEN);
  assert_int_equal(kw_store_alert(st, &f, 0, sinks, 2, &alert_burst1, &created), 0);
  assert_true(created);
  memset(f.fp, 2, KW_FP_LEN);
  assert_int_equal(kw_store_alert(st, &f, 0, NULL, 0, &alert_burst2, &created), 0);
  assert_true(created);
  f.rule = "odd\"rule\\x";
  f.severity = KW_SEV_LOW;
  f.action = "revoke";
  assert_int_equal(kw_store_alert(st, &f, 0, NULL, 0, &alert_odd, &created), 0);
  assert_true(created);
  assert_int_equal(kw_store_alert_set_state(st, alert_burst1, "resolved", "test", NULL), 0);

  /* revocations: the rule's (decided), a manual one done, one queued, one odd state */
  memset(fp2, 2, KW_FP_LEN);
  struct kw_revocation_new rn = {.fp = fp2, .origin = "manual", .decided_by = "cli:test",
                                 .reason = "test", .severity = KW_SEV_HIGH};
  assert_int_equal(kw_store_revocation_add(st, &rn, &rev_manual), 0);
  struct kw_revocation_update u = {.state = "done", .dry_run = -1, .attempts = -1,
                                   .next_try_us = -1, .give_up_us = -1};
  assert_int_equal(kw_store_revocation_update(st, rev_manual, &u), 0);
  assert_int_equal(kw_store_revocation_add(st, &rn, &rev_queued), 0);
  u.state = "queued";
  assert_int_equal(kw_store_revocation_update(st, rev_queued, &u), 0);
  assert_int_equal(kw_store_revocation_add(st, &rn, &rev_queued), 0);
  u.state = "sta\nte";
  assert_int_equal(kw_store_revocation_update(st, rev_queued, &u), 0);

  assert_int_equal(kw_store_add_limit_hits(st, "line_bytes", 2), 0);
  assert_int_equal(kw_store_add_limit_hits(st, "line_bytes", 1), 0);
  assert_int_equal(kw_store_add_limit_hits(st, "outbox_pending", 5), 0);
  assert_int_equal(kw_store_add_limit_hits(st, "never", 0), 0); /* nothing: no row */

  hb0 = kw_time_now();
  assert_int_equal(kw_store_heartbeat(st, 4242, T0, "keywatch.yaml"), 0);
  hb1 = kw_time_now();
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_close(st), 0);

  /* the invariant of store.c: per source, the classes add up to its calls */
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM (SELECT source_id, sum(calls) n"
                                 " FROM source_classes GROUP BY source_id) x JOIN (SELECT"
                                 " source_id, count(*) n FROM calls GROUP BY source_id) y"
                                 " USING (source_id) WHERE x.n = y.n"),
                   3);

  d = scrape();
  /* the hostile name went out escaped, exactly */
  assert_non_null(strstr(d->text, EVIL_TEXT));

  const char *A = "/var/log/nginx/access.log", *C = "udp:127.0.0.1:5514";
  const char *cls[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  const int64_t want_a[] = {2, 1, 4, 1, 1, 1}, want_b[] = {0, 0, 1, 0, 1, 0},
                want_c[] = {0, 0, 0, 0, 0, 2};
  for (int k = 0; k < 6; k++) {
    assert_val(d, want_a[k], "keywatch_calls_total", "source", A, "status_class", cls[k]);
    assert_val(d, want_b[k], "keywatch_calls_total", "source", EVIL_READ, "status_class",
               cls[k]);
    assert_val(d, want_c[k], "keywatch_calls_total", "source", C, "status_class", cls[k]);
  }
  assert_val(d, 1, "keywatch_calls_total", "source", EVIL_READ, "status_class", "other");
  assert_true(isnan(val(d, "keywatch_calls_total", "source", A, "status_class", "other")));
  assert_int_equal(fam(d, "keywatch_calls_total")->samples, 3 * 6 + 1);

  assert_val(d, 12, "keywatch_lines_total", "source", A, NULL, NULL);
  assert_val(d, 3, "keywatch_lines_total", "source", EVIL_READ, NULL, NULL);
  assert_val(d, 2, "keywatch_malformed_lines_total", "source", A, NULL, NULL);
  assert_val(d, 0, "keywatch_malformed_lines_total", "source", C, NULL, NULL);

  /* lag only where measured, in seconds, exactly */
  assert_val(d, 0.012, "keywatch_source_lag_seconds", "source", C, "quantile", "0.5");
  assert_val(d, 1.500001, "keywatch_source_lag_seconds", "source", C, "quantile", "0.99");
  assert_non_null(strstr(d->text, "quantile=\"0.99\"} 1.500001\n"));
  assert_int_equal(fam(d, "keywatch_source_lag_seconds")->samples, 2);

  /* backlog and drops for sources the daemon ran; gaps for every source */
  assert_val(d, 4096, "keywatch_source_backlog_bytes", "source", C, NULL, NULL);
  assert_val(d, 0, "keywatch_source_backlog_bytes", "source", A, NULL, NULL);
  assert_true(isnan(val(d, "keywatch_source_backlog_bytes", "source", EVIL_READ, NULL, NULL)));
  assert_val(d, 7, "keywatch_source_drops_total", "source", C, NULL, NULL);
  assert_int_equal(fam(d, "keywatch_source_drops_total")->samples, 2);
  assert_val(d, 2, "keywatch_source_gaps_total", "source", C, NULL, NULL);
  assert_val(d, 0, "keywatch_source_gaps_total", "source", A, NULL, NULL);
  assert_val(d, 0, "keywatch_source_gaps_total", "source", EVIL_READ, NULL, NULL);

  assert_val(d, 2, "keywatch_keys", NULL, NULL, NULL, NULL);

  /* alerts opened (resolved ones count: a counter) and those open now */
  assert_val(d, 2, "keywatch_alerts_total", "rule", "burst", "severity", "high");
  assert_val(d, 1, "keywatch_alerts_total", "rule", "odd\"rule\\x", "severity", "low");
  assert_int_equal(fam(d, "keywatch_alerts_total")->samples, 2);
  assert_val(d, 1, "keywatch_alerts_open", "severity", "high", NULL, NULL);
  assert_val(d, 1, "keywatch_alerts_open", "severity", "low", NULL, NULL);
  assert_val(d, 0, "keywatch_alerts_open", "severity", "critical", NULL, NULL);
  assert_int_equal(fam(d, "keywatch_alerts_open")->samples, 5);

  /* revocations by state: every known state, plus whatever else is stored */
  assert_val(d, 1, "keywatch_revocations", "state", "decided", NULL, NULL);
  assert_val(d, 1, "keywatch_revocations", "state", "done", NULL, NULL);
  assert_val(d, 1, "keywatch_revocations", "state", "queued", NULL, NULL);
  assert_val(d, 0, "keywatch_revocations", "state", "failed", NULL, NULL);
  assert_val(d, 1, "keywatch_revocations", "state", "sta\nte", NULL, NULL);
  assert_int_equal(fam(d, "keywatch_revocations")->samples, 9);

  assert_val(d, 2, "keywatch_outbox_backlog", NULL, NULL, NULL, NULL);

  /* resource bounds hit, added up per bound */
  assert_val(d, 3, "keywatch_limit_hits_total", "limit", "line_bytes", NULL, NULL);
  assert_val(d, 5, "keywatch_limit_hits_total", "limit", "outbox_pending", NULL, NULL);
  assert_int_equal(fam(d, "keywatch_limit_hits_total")->samples, 2);

  /* the database and its WAL, as they are on disk */
  char wal[160];
  snprintf(wal, sizeof(wal), "%s-wal", g_db);
  assert_int_equal(stat(g_db, &sb), 0);
  bytes += sb.st_size;
  if (stat(wal, &sb) == 0)
    bytes += sb.st_size;
  assert_val(d, bytes, "keywatch_store_bytes", NULL, NULL, NULL, NULL);

  double hb = val(d, "keywatch_daemon_heartbeat_timestamp_seconds", NULL, NULL, NULL, NULL);
  assert_true(hb >= (double)(hb0 / SEC) && hb <= (double)(hb1 / SEC + 1));
  doc_free(d);
}

/* A version-6 database (calls, no source_classes) is backfilled by the migration; running
 * it again changes nothing; later commits add to the backfilled rows. */
static void test_migration_backfill(void **state) {
  struct kw_store *st;
  uint32_t a, b;
  struct doc *d;
  (void)state;

  st = store_open(g_db, 0);
  assert_int_equal(kw_store_source(st, "a.log", "file", "combined", &a), 0);
  assert_int_equal(kw_store_source(st, EVIL, "file", "combined", &b), 0);
  static const int sa[] = {200, 200, 204, 301, 401, 403, 404, 500, 0, 0, 0, 42, 700};
  for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++)
    add_call(st, a, (int)(i % 3), T0 + (int64_t)i * SEC, sa[i]);
  add_call(st, b, 1, T0, 503);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_close(st), 0);

  /* back to what schema 6 had */
  sql_exec(g_db, "DROP TABLE source_classes; PRAGMA user_version = 6;");
  assert_int_equal(
      sql_int(g_db, "SELECT count(*) FROM sqlite_master WHERE name = 'source_classes'"), 0);
  /* a version-6 database is not read as is: it must be migrated */
  st = (struct kw_store *)1;
  assert_int_equal(kw_store_open(g_db, KW_STORE_RDONLY, &st, g_err, sizeof(g_err)),
                   KW_ESCHEMA);
  st = store_open(g_db, 0);
  assert_int_equal(kw_store_close(st), 0);
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), KW_STORE_SCHEMA);
  assert_int_equal(
      sql_int(g_db, "SELECT calls FROM source_classes WHERE source_id = 1 AND class = 0"), 3);
  assert_int_equal(
      sql_int(g_db, "SELECT calls FROM source_classes WHERE source_id = 1 AND class = 2"), 3);
  assert_int_equal(
      sql_int(g_db, "SELECT calls FROM source_classes WHERE source_id = 1 AND class = 4"), 3);
  assert_int_equal(
      sql_int(g_db, "SELECT calls FROM source_classes WHERE source_id = 1 AND class = 6"),
      2); /* 42 and 700 */
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM source_classes"), 7);

  d = scrape();
  assert_val(d, 3, "keywatch_calls_total", "source", "a.log", "status_class", "none");
  assert_val(d, 0, "keywatch_calls_total", "source", "a.log", "status_class", "1xx");
  assert_val(d, 3, "keywatch_calls_total", "source", "a.log", "status_class", "2xx");
  assert_val(d, 1, "keywatch_calls_total", "source", "a.log", "status_class", "3xx");
  assert_val(d, 3, "keywatch_calls_total", "source", "a.log", "status_class", "4xx");
  assert_val(d, 1, "keywatch_calls_total", "source", "a.log", "status_class", "5xx");
  assert_val(d, 2, "keywatch_calls_total", "source", "a.log", "status_class", "other");
  assert_val(d, 1, "keywatch_calls_total", "source", EVIL_READ, "status_class", "5xx");
  doc_free(d);

  /* idempotent: the migration run again over a filled table does not count twice */
  sql_exec(g_db, "PRAGMA user_version = 6;");
  st = store_open(g_db, 0);
  add_call(st, a, 1, T0 + 100 * SEC, 200); /* and the write path adds to the backfill */
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_close(st), 0);
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), KW_STORE_SCHEMA);
  assert_int_equal(
      sql_int(g_db, "SELECT calls FROM source_classes WHERE source_id = 1 AND class = 2"), 4);
  assert_int_equal(sql_int(g_db, "SELECT sum(calls) FROM source_classes"),
                   sql_int(g_db, "SELECT count(*) FROM calls"));
}

/* A write that fails is reported, not hidden. */
static void test_write_error(void **state) {
  struct kw_store *st;
  FILE *f;
  (void)state;

  f = fopen("/dev/full", "w");
  if (f == NULL)
    skip();
  st = store_open(g_db, 0);
  assert_int_equal(kw_store_close(st), 0);
  assert_int_equal(kw_store_open(g_db, KW_STORE_RDONLY, &st, g_err, sizeof(g_err)), 0);
  assert_int_equal(kw_metrics_write(st, g_db, f), KW_EIO);
  fclose(f);
  assert_int_equal(kw_store_close(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_families, setup, teardown),
      cmocka_unit_test_setup_teardown(test_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_backfill, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
