/* test_review_report.c — the review as table, Markdown, CSV, JSON and HTML
 * (analyzer/review_report.c), each checked by a real reader of its format.
 *
 * The review is built through the real API: a pack with scopes and grants written to a
 * mkdtemp directory, kw_ruleset_load(), kw_review_create() and kw_review_add() with keys
 * whose name, store, group, permission and endpoint templates are hostile (markup, an
 * inline handler, quotes and commas, pipes, line breaks, spreadsheet formulas, an ANSI
 * escape, bytes that are not UTF-8).  Each format is written to a file and read back:
 *   json   jansson, strictly; every field equals the row it came from (bytes that are not
 *          UTF-8 read back as U+FFFD), the hostile strings come back identical
 *   csv    Python's csv module (a subprocess); rows, columns, cells, and no cell a
 *          spreadsheet would evaluate
 *   md     every table line has as many unescaped pipes as its header and ends in one;
 *          no raw markup
 *   table  no ESC byte, one line per key, columns aligned
 *   html   no raw markup or handler, no external URL; then headless Chromium
 *          (tests/browser/check_html.js): nothing runs, nothing loads, no console error,
 *          and the hostile name is on the page as text.  Missing Chromium or the npm
 *          packages fail the test: scripts/install-deps.sh installs them.
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

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyzer/review.h"
#include "analyzer/review_report.h"
#include "analyzer/rules.h"
#include "sidecar/alerts.h"
#include "sidecar/escape.h"
#include "sidecar/fingerprint.h"
#include "sidecar/timeutil.h"

#include "kwtest_files.h"

extern char **environ;

#define DAY_US (86400LL * 1000000)
#define NCOLS 16

/* The hostile strings. */
#define H_SCRIPT "<script>alert(1)</script>"
#define H_IMG "<img src=x onerror=alert(1)>"
#define H_QUOTED "\"quoted\", commas"
#define H_PIPE "a|pipe"
#define H_FORMULA "=cmd|' /C calc'!A0"
#define H_ANSI "\x1b[31mred\x1b[0m alert"
#define H_BADUTF8 "bad \xff\xfe utf8 \xc3"
#define H_NEWLINE "multi\nline \"quoted\", commas"
#define H_BACKSLASH "back\\|slash"
#define H_BIDI "admin\xe2\x80\xae" "exe.txt"

static const char pack[] =
    "scopes:\n"
    "  - {name: \"=read|<b>\\\"r\\\", x\", endpoints: [\"GET /api/card/*\"]}\n"
    "  - {name: card_write, endpoints: [\"PUT /api/card/*\", \"POST /api/card\"]}\n"
    "  - {name: admin, endpoints: [\"* /api/admin/**\"]}\n"
    "grants:\n"
    "  - {keys: [mb_Script, mb_Ansi, mb_Plain], scopes: [\"=read|<b>\\\"r\\\", x\", card_write]}\n"
    "  - {keys: [mb_Formula], scopes: [\"*\"]}\n";

struct fixture {
  char dir[64];
  struct kw_ruleset *rs;
  struct kw_review *r;
  int64_t now;
  struct kw_review_diff diff;
  char new_keys[2][KW_PREFIX_MAX + 1];
  struct kw_review_change new_findings[2], resolved[1];
};

static struct fixture g;

static void add_keys(void) {
  int64_t now = g.now;
  static const struct kw_review_endpoint ep_script[] = {
      {"GET", "/api/card/{id}", 120, 118, 0, 0},
      {"DELETE", "/api/card/" H_SCRIPT, 3, 1, 2, 0},
  };
  static const struct kw_review_endpoint ep_ansi[] = {
      {"GET", "/api/card/{id}", 7, 7, 0, 0},
      {"GET", "/api/x|y\n" H_IMG, 2, 0, 2, 0},
  };
  static const struct kw_review_endpoint ep_plain[] = {
      {"GET", "/api/card/{id}", 40, 40, 0, 0},
  };
  static const struct kw_review_endpoint ep_multi[] = {
      {"POST", "/api/admin/" H_PIPE, 5, 5, 0, 0},
  };
  struct kw_review_endpoint e1[2], e2[2], e3[1], e4[1];
  struct kw_review_key k[6];

  memcpy(e1, ep_script, sizeof(e1));
  memcpy(e2, ep_ansi, sizeof(e2));
  memcpy(e3, ep_plain, sizeof(e3));
  memcpy(e4, ep_multi, sizeof(e4));
  e1[0].last_us = now - DAY_US, e1[1].last_us = now - 2 * DAY_US;
  e2[0].last_us = now - 3 * DAY_US, e2[1].last_us = now - 3 * DAY_US;
  e3[0].last_us = now - DAY_US / 2;
  e4[0].last_us = now - 5 * DAY_US;
  memset(k, 0, sizeof(k));

  k[0] = (struct kw_review_key){.has_fp = true, .prefix = "mb_Script", .name = H_SCRIPT,
                                .store = H_PIPE, .store_ref = H_QUOTED, .group = H_IMG,
                                .permission = H_PIPE, .created_us = now - 400 * DAY_US,
                                .first_us = now - 400 * DAY_US, .last_us = now - DAY_US,
                                .last_before_us = now - 31 * DAY_US, .clients = 2,
                                .endpoints = e1, .nendpoints = 2};
  k[1] = (struct kw_review_key){.prefix = "mb_Formula", .name = H_FORMULA, .store = "@SUM(1)",
                                .store_ref = "+1", .group = "-2", .permission = "=1+1",
                                .created_us = now - 100 * DAY_US,
                                .first_us = now - 100 * DAY_US, .last_us = now - 60 * DAY_US,
                                .last_before_us = now - 60 * DAY_US};
  k[2] = (struct kw_review_key){.has_fp = true, .prefix = "mb_Ansi", .name = H_ANSI,
                                .store = H_BACKSLASH, .store_ref = "`tick`", .group = H_BADUTF8,
                                .permission = "line\nbreak", .first_us = now - 200 * DAY_US,
                                .last_us = now - 3 * DAY_US,
                                .last_before_us = now - 120 * DAY_US, .clients = 1,
                                .endpoints = e2, .nendpoints = 2};
  k[3] = (struct kw_review_key){.has_fp = true, .prefix = "mb_Plain", .name = "Analytics export",
                                .store = "metabase, prod", .store_ref = "17", .group = "Analysts",
                                .permission = "r", .created_us = now - 20 * DAY_US,
                                .first_us = now - 20 * DAY_US, .last_us = now - DAY_US / 2,
                                .last_before_us = now - 31 * DAY_US, .clients = 1,
                                .endpoints = e3, .nendpoints = 1};
  k[4] = (struct kw_review_key){.prefix = "mb_Multi", .name = H_NEWLINE, .store = NULL,
                                .group = "+1", .permission = "@SUM(1)",
                                .first_us = now - 10 * DAY_US, .last_us = now - 5 * DAY_US,
                                .clients = 50, .endpoints = e4, .nendpoints = 1};
  k[5] = (struct kw_review_key){.prefix = "mb_Bidi", .name = H_BIDI, .group = "\t=tab",
                                .permission = H_BACKSLASH};
  for (int i = 0; i < 6; i++) {
    for (int j = 0; j < KW_FP_LEN; j++)
      k[i].fp[j] = (uint8_t)(i * 16 + j);
    assert_int_equal(kw_review_add(g.r, &k[i]), 0);
  }
}

static int setup(void **state) {
  char path[128], err[512];
  char *packs[1] = {path};
  struct kw_review_opts o;
  (void)state;

  memset(&g, 0, sizeof(g));
  if (temp_dir_make(g.dir, sizeof(g.dir), "kwreport") != 0)
    return -1;
  snprintf(path, sizeof(path), "%s/pack.yaml", g.dir);
  write_text(path, pack);
  if (kw_ruleset_load(packs, 1, &g.rs, err, sizeof(err)) != 0) {
    fprintf(stderr, "pack: %s\n", err);
    return -1;
  }
  g.now = kw_days_from_civil(2026, 11, 22) * DAY_US + 9 * 3600LL * 1000000;
  kw_review_opts_default(&o, g.now);
  if (kw_review_create(g.rs, &o, &g.r) != 0)
    return -1;
  add_keys();

  snprintf(g.new_keys[0], sizeof(g.new_keys[0]), "mb_Multi");
  snprintf(g.new_keys[1], sizeof(g.new_keys[1]), "<i>|=x\x1b\n\xff");
  g.new_findings[0] = (struct kw_review_change){"mb_Script", KW_FIND_OUTSIDE_GRANT};
  g.new_findings[1] = (struct kw_review_change){"a|b<b>", KW_FIND_UNUSED};
  g.resolved[0] = (struct kw_review_change){"mb_Gone", KW_FIND_ROTATION_DUE};
  g.diff = (struct kw_review_diff){.previous_us = g.now - 7 * DAY_US,
                                   .new_keys = g.new_keys, .nnew_keys = 2,
                                   .new_findings = g.new_findings, .nnew = 2,
                                   .resolved = g.resolved, .nresolved = 1, .still_open = 4};
  return 0;
}

static int teardown(void **state) {
  (void)state;
  kw_review_destroy(g.r);
  kw_ruleset_destroy(g.rs);
  if (getenv("KW_KEEP") != NULL) { /* to look at the reports */
    fprintf(stderr, "reports kept in %s\n", g.dir);
    return 0;
  }
  return temp_dir_remove(g.dir);
}

/* ---- helpers ------------------------------------------------------------------------- */

/* Writes the report in fmt to DIR/name and returns its path (static buffer). */
static const char *write_report(enum kw_report_format fmt, const char *name,
                                const struct kw_review_diff *d) {
  static char path[128];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", g.dir, name);
  f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(kw_review_write(f, fmt, g.r, d, g.now), 0);
  assert_int_equal(fclose(f), 0);
  return path;
}

static char *report_text(enum kw_report_format fmt, const char *name,
                         const struct kw_review_diff *d, size_t *len) {
  char *text = read_file(write_report(fmt, name, d), len);
  assert_int_equal(strlen(text), *len); /* no NUL */
  return text;
}

static void assert_utf8(const char *s, size_t n, const char *what) {
  for (size_t i = 0; i < n;) {
    size_t l = kw_utf8_len((const unsigned char *)s + i, n - i);
    if (l == 0)
      fail_msg("%s: byte %zu (0x%02x) is not UTF-8", what, i, (unsigned char)s[i]);
    i += l;
  }
}

/* s with every byte that starts no valid UTF-8 sequence replaced by U+FFFD, as
 * kw_json_str and the md/csv/html escapers do (free it); NULL stays NULL. */
static char *utf8_fixed(const char *s) {
  size_t n, o = 0;
  char *out;
  if (s == NULL)
    return NULL;
  n = strlen(s);
  out = malloc(3 * n + 1);
  assert_non_null(out);
  for (size_t i = 0; i < n;) {
    size_t l = kw_utf8_len((const unsigned char *)s + i, n - i);
    if (l == 0) {
      memcpy(out + o, "\xef\xbf\xbd", 3), o += 3, i++;
    } else {
      memcpy(out + o, s + i, l), o += l, i += l;
    }
  }
  out[o] = '\0';
  return out;
}

/* Runs argv without a shell, its stdout into out_path; returns its exit status. */
static int run(char *const argv[], const char *out_path) {
  posix_spawn_file_actions_t fa;
  pid_t pid;
  int status, rc;
  assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
  assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                                    O_WRONLY | O_CREAT | O_TRUNC, 0600),
                   0);
  rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    fail_msg("cannot run %s: %s", argv[0], strerror(rc));
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const struct kw_review_row *rows(size_t *n) {
  const struct kw_review_row *r = kw_review_rows(g.r, n);
  assert_int_equal(*n, 6);
  return r;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_format_parse(void **state) {
  (void)state;
  assert_int_equal(kw_report_format_parse("table"), KW_REPORT_TABLE);
  assert_int_equal(kw_report_format_parse("md"), KW_REPORT_MD);
  assert_int_equal(kw_report_format_parse("csv"), KW_REPORT_CSV);
  assert_int_equal(kw_report_format_parse("json"), KW_REPORT_JSON);
  assert_int_equal(kw_report_format_parse("html"), KW_REPORT_HTML);
  assert_int_equal(kw_report_format_parse("HTML"), -1);
  assert_int_equal(kw_report_format_parse("markdown"), -1);
  assert_int_equal(kw_report_format_parse(""), -1);
  assert_int_equal(kw_report_format_parse(NULL), -1);
}

/* A failed write is reported, not swallowed. */
static void test_write_error(void **state) {
  FILE *f = fopen("/dev/full", "w");
  (void)state;
  assert_non_null(f);
  for (int fmt = KW_REPORT_TABLE; fmt <= KW_REPORT_HTML; fmt++) {
    clearerr(f);
    assert_int_equal(kw_review_write(f, (enum kw_report_format)fmt, g.r, &g.diff, g.now),
                     -ENOSPC);
  }
  fclose(f);
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void expect_str(json_t *obj, const char *field, const char *want, size_t row) {
  json_t *v = json_object_get(obj, field);
  char *fixed;
  if (v == NULL)
    fail_msg("keys[%zu]: no field %s", row, field);
  if (want == NULL) {
    if (!json_is_null(v))
      fail_msg("keys[%zu].%s: want null", row, field);
    return;
  }
  if (!json_is_string(v))
    fail_msg("keys[%zu].%s: not a string", row, field);
  fixed = utf8_fixed(want);
  if (json_string_length(v) != strlen(fixed) || strcmp(json_string_value(v), fixed) != 0) {
    char msg[512];
    snprintf(msg, sizeof(msg), "keys[%zu].%s: got '%s', want '%s'", row, field,
             json_string_value(v), fixed);
    free(fixed);
    fail_msg("%s", msg);
  }
  free(fixed);
}

static void expect_time(json_t *obj, const char *field, int64_t us) {
  json_t *v = json_object_get(obj, field);
  char t[32];
  assert_non_null(v);
  if (us == 0) {
    assert_true(json_is_null(v));
    return;
  }
  assert_true(json_is_string(v));
  assert_string_equal(json_string_value(v), kw_time_format(us, t, sizeof(t)));
}

static void expect_int(json_t *obj, const char *field, int64_t want) {
  json_t *v = json_object_get(obj, field);
  if (!json_is_integer(v))
    fail_msg("%s: not an integer", field);
  assert_int_equal(json_integer_value(v), want);
}

static void expect_list(json_t *arr, char *const *want, size_t n) {
  assert_true(json_is_array(arr));
  assert_int_equal(json_array_size(arr), n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(json_string_value(json_array_get(arr, i)), want[i]);
}

static void expect_changes(json_t *arr, const struct kw_review_change *c, size_t n) {
  assert_true(json_is_array(arr));
  assert_int_equal(json_array_size(arr), n);
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(arr, i);
    expect_str(o, "key_prefix", c[i].key_prefix, i);
    assert_string_equal(json_string_value(json_object_get(o, "finding")),
                        kw_finding_name(c[i].kind));
  }
}

static json_t *load_json(const char *path) {
  json_error_t e;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
  if (doc == NULL)
    fail_msg("%s: not strict JSON: %s at line %d column %d", path, e.text, e.line, e.column);
  return doc;
}

static void test_json(void **state) {
  size_t n, counts[KW_FIND_COUNT];
  const struct kw_review_row *rw = rows(&n);
  const struct kw_review_opts *o = kw_review_options(g.r);
  json_t *doc = load_json(write_report(KW_REPORT_JSON, "review.json", &g.diff));
  json_t *keys, *summary, *changes;
  char hex[2 * KW_FP_LEN + 1];
  (void)state;

  expect_time(doc, "generated", g.now);
  expect_time(doc, "since", o->since_us);
  expect_time(doc, "until", o->until_us);
  expect_time(doc, "previous", g.diff.previous_us);

  summary = json_object_get(doc, "summary");
  expect_int(summary, "keys", 6);
  kw_review_counts(g.r, counts);
  assert_int_equal(json_object_size(json_object_get(summary, "findings")), KW_FIND_COUNT);
  for (int k = 0; k < KW_FIND_COUNT; k++)
    expect_int(json_object_get(summary, "findings"), kw_finding_name(k), (int64_t)counts[k]);

  changes = json_object_get(doc, "changes");
  assert_true(json_is_object(changes));
  assert_int_equal(json_array_size(json_object_get(changes, "new_keys")), 2);
  assert_string_equal(json_string_value(json_array_get(json_object_get(changes, "new_keys"), 0)),
                      "mb_Multi");
  assert_string_equal(json_string_value(json_array_get(json_object_get(changes, "new_keys"), 1)),
                      "<i>|=x\x1b\n\xef\xbf\xbd");
  expect_changes(json_object_get(changes, "new_findings"), g.new_findings, 2);
  expect_changes(json_object_get(changes, "resolved"), g.resolved, 1);
  expect_int(changes, "still_open", 4);

  keys = json_object_get(doc, "keys");
  assert_int_equal(json_array_size(keys), n);
  for (size_t i = 0; i < n; i++) {
    const struct kw_review_row *r = &rw[i];
    json_t *k = json_array_get(keys, i), *used, *out, *fds;
    expect_str(k, "key_prefix", r->prefix, i);
    expect_str(k, "fingerprint", r->has_fp ? kw_fingerprint_hex(r->fp, hex) : NULL, i);
    expect_str(k, "name", r->name, i);
    expect_str(k, "store", r->store, i);
    expect_str(k, "store_id", r->store_ref, i);
    expect_str(k, "group", r->group, i);
    expect_str(k, "permission", r->permission, i);
    expect_time(k, "created", r->created_us);
    expect_time(k, "first_seen", r->first_us);
    expect_time(k, "last_seen", r->last_us);
    expect_int(k, "calls", r->calls);
    expect_int(k, "clients", r->clients);
    assert_true(json_is_boolean(json_object_get(k, "grant_known")));
    assert_int_equal(json_is_true(json_object_get(k, "grant_known")), r->grant_known);
    expect_list(json_object_get(k, "granted"), r->granted, r->ngranted);
    expect_list(json_object_get(k, "unused"), r->unused, r->nunused);
    used = json_object_get(k, "used");
    assert_int_equal(json_array_size(used), r->nused);
    for (size_t j = 0; j < r->nused; j++) {
      json_t *u = json_array_get(used, j);
      expect_str(u, "scope", r->used[j].scope, i);
      expect_int(u, "calls", r->used[j].calls);
      expect_time(u, "last_use", r->used[j].last_us);
    }
    out = json_object_get(k, "outside_grant");
    expect_int(out, "calls", r->outside_calls);
    expect_int(out, "succeeded", r->outside_ok);
    expect_str(out, "example", r->outside_example, i);
    fds = json_object_get(k, "findings");
    assert_int_equal(json_array_size(fds), r->nfindings);
    for (size_t j = 0; j < r->nfindings; j++) {
      json_t *fd = json_array_get(fds, j);
      expect_str(fd, "finding", kw_finding_name(r->findings[j].kind), i);
      expect_str(fd, "severity", kw_severity_name(r->findings[j].severity), i);
      expect_str(fd, "text", r->findings[j].text, i);
    }
    expect_str(k, "recommendation", r->recommendation, i);
    expect_str(k, "why", r->why, i);
    assert_int_equal(json_object_size(k), 20); /* nothing more than the documented fields */
  }

  /* The hostile strings come back as they went in. */
  expect_str(json_array_get(keys, 0), "name", H_SCRIPT, 0);
  expect_str(json_array_get(keys, 0), "group", H_IMG, 0);
  expect_str(json_array_get(keys, 0), "store_id", H_QUOTED, 0);
  expect_str(json_array_get(keys, 0), "permission", H_PIPE, 0);
  expect_str(json_array_get(keys, 1), "name", H_FORMULA, 1);
  expect_str(json_array_get(keys, 2), "name", H_ANSI, 2);
  expect_str(json_array_get(keys, 2), "permission", "line\nbreak", 2);
  expect_str(json_array_get(keys, 4), "name", H_NEWLINE, 4);
  expect_str(json_array_get(keys, 5), "name", H_BIDI, 5);
  assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 2), "group")),
                      "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd");
  json_decref(doc);
}

static void test_json_without_diff(void **state) {
  json_t *doc = load_json(write_report(KW_REPORT_JSON, "nodiff.json", NULL));
  (void)state;
  assert_true(json_is_null(json_object_get(doc, "previous")));
  assert_true(json_is_null(json_object_get(doc, "changes")));
  assert_int_equal(json_array_size(json_object_get(doc, "keys")), 6);
  json_decref(doc);
}

/* ---- CSV ----------------------------------------------------------------------------- */

static const char *const csv_header[NCOLS] = {
    "key_prefix", "fingerprint", "name", "store", "group", "permission", "created",
    "last_seen", "calls", "granted", "used", "unused", "outside_calls", "outside_succeeded",
    "findings", "recommendation"};

/* What a text cell must read as: UTF-8-fixed, a formula start behind a '. */
static void expect_cell(json_t *row, size_t col, const char *value, size_t line) {
  const char *got = json_string_value(json_array_get(row, col));
  char *fixed = utf8_fixed(value ? value : "");
  char want[512];
  snprintf(want, sizeof(want), "%s%s", strchr("=+-@\t\r", fixed[0]) && fixed[0] ? "'" : "",
           fixed);
  free(fixed);
  if (got == NULL || strcmp(got, want) != 0)
    fail_msg("csv row %zu column %s: got '%s', want '%s'", line, csv_header[col],
             got ? got : "(none)", want);
}

static void test_csv(void **state) {
  size_t n;
  const struct kw_review_row *rw = rows(&n);
  const char *csv = write_report(KW_REPORT_CSV, "review.csv", &g.diff);
  char csv_path[128], out_path[128], num[32], hex[2 * KW_FP_LEN + 1];
  char *argv[] = {"python3", "-c",
                  "import csv, json, sys\n"
                  "with open(sys.argv[1], newline='', encoding='utf-8', errors='strict') as f:\n"
                  "    json.dump(list(csv.reader(f, strict=True)), sys.stdout)\n",
                  csv_path, NULL};
  json_t *doc;
  json_error_t e;
  (void)state;

  snprintf(csv_path, sizeof(csv_path), "%s", csv);
  snprintf(out_path, sizeof(out_path), "%s/csv.json", g.dir);
  assert_int_equal(run(argv, out_path), 0);
  doc = json_load_file(out_path, 0, &e);
  if (doc == NULL)
    fail_msg("python output: %s", e.text);

  assert_int_equal(json_array_size(doc), n + 1);
  for (size_t c = 0; c < NCOLS; c++)
    assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 0), c)),
                        csv_header[c]);
  for (size_t i = 0; i <= n; i++) {
    json_t *row = json_array_get(doc, i);
    assert_int_equal(json_array_size(row), NCOLS);
    for (size_t c = 0; c < NCOLS; c++) {
      const char *cell = json_string_value(json_array_get(row, c));
      if (cell[0] != '\0' && strchr("=+-@\t\r", cell[0]) != NULL)
        fail_msg("csv row %zu column %s starts a formula: '%s'", i, csv_header[c], cell);
    }
  }
  for (size_t i = 0; i < n; i++) {
    const struct kw_review_row *r = &rw[i];
    json_t *row = json_array_get(doc, i + 1);
    expect_cell(row, 0, r->prefix, i + 1);
    expect_cell(row, 1, r->has_fp ? kw_fingerprint_hex(r->fp, hex) : "", i + 1);
    expect_cell(row, 2, r->name, i + 1);
    expect_cell(row, 3, r->store, i + 1);
    expect_cell(row, 4, r->group, i + 1);
    expect_cell(row, 5, r->permission, i + 1);
    snprintf(num, sizeof(num), "%lld", (long long)r->calls);
    expect_cell(row, 8, num, i + 1);
    snprintf(num, sizeof(num), "%lld", (long long)r->outside_calls);
    expect_cell(row, 12, num, i + 1);
    expect_cell(row, 15, r->recommendation, i + 1);
  }
  /* The hostile ones, spelled out. */
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 1), 2)), H_SCRIPT);
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 1), 3)), H_PIPE);
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 2), 2)),
                      "'" H_FORMULA);
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 2), 3)), "'@SUM(1)");
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 2), 4)), "'-2");
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 2), 5)), "'=1+1");
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 5), 2)), H_NEWLINE);
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 5), 4)), "'+1");
  assert_string_equal(json_string_value(json_array_get(json_array_get(doc, 6), 4)), "'\t=tab");
  json_decref(doc);
}

/* ---- Markdown ------------------------------------------------------------------------ */

/* Pipes in line[0..n) not escaped by a backslash (an odd run of them). */
static size_t unescaped_pipes(const char *line, size_t n, bool *ends_with_pipe) {
  size_t pipes = 0, backslashes = 0;
  *ends_with_pipe = false;
  for (size_t i = 0; i < n; i++) {
    if (line[i] == '|' && backslashes % 2 == 0) {
      pipes++;
      *ends_with_pipe = i == n - 1;
    }
    backslashes = line[i] == '\\' ? backslashes + 1 : 0;
  }
  return pipes;
}

static void test_md(void **state) {
  size_t n, len, flagged = 0, tables = 0, body_rows[4] = {0};
  const struct kw_review_row *rw = rows(&n);
  char *md = report_text(KW_REPORT_MD, "review.md", &g.diff, &len);
  size_t header = 0, lineno = 0;
  bool in_table = false;
  (void)state;

  assert_utf8(md, len, "md");
  assert_null(strstr(md, "<script"));
  assert_null(strstr(md, "<img"));
  assert_null(strchr(md, '\x1b'));
  assert_non_null(strstr(md, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert_non_null(strstr(md, "back\\\\\\|slash"));
  assert_non_null(strstr(md, "## Changes since the review of"));
  for (size_t i = 0; i < n; i++)
    flagged += rw[i].nfindings > 0;

  for (char *line = md, *next; *line; line = next) {
    char *nl = strchr(line, '\n');
    size_t l = nl ? (size_t)(nl - line) : strlen(line);
    next = nl ? nl + 1 : line + l;
    lineno++;
    if (l > 0 && line[0] == '|') {
      bool ends;
      size_t pipes = unescaped_pipes(line, l, &ends);
      if (!ends)
        fail_msg("md line %zu: a table row that does not end in '|': %.*s", lineno, (int)l, line);
      if (!in_table) {
        in_table = true;
        header = pipes;
        assert_true(tables < 4);
        tables++;
      } else if (pipes != header) {
        fail_msg("md line %zu: %zu cells, the header has %zu: %.*s", lineno, pipes - 1,
                 header - 1, (int)l, line);
      } else {
        body_rows[tables - 1]++;
      }
    } else {
      if (in_table && l != 0)
        fail_msg("md line %zu: a table continues without a '|' (a raw line break?)", lineno);
      in_table = false;
    }
  }
  assert_int_equal(tables, 2);
  assert_int_equal(body_rows[0], 1 + KW_FIND_COUNT); /* delimiter + one line per kind */
  assert_true(flagged > 0);
  assert_int_equal(body_rows[1], 1 + flagged);
  free(md);
}

/* ---- terminal table ------------------------------------------------------------------ */

/* Byte offset of column col (counting code points) in line. */
static size_t col_offset(const char *line, size_t col) {
  size_t i = 0;
  for (size_t c = 0; line[i] && c < col; c++)
    for (i++; ((unsigned char)line[i] & 0xc0) == 0x80; i++)
      ;
  return i;
}

static void test_table(void **state) {
  size_t n, len;
  const struct kw_review_row *rw = rows(&n);
  char *t = report_text(KW_REPORT_TABLE, "review.txt", &g.diff, &len);
  char *lines[64];
  size_t nlines = 0, calls_col, last_col;
  (void)state;

  assert_utf8(t, len, "table");
  assert_null(memchr(t, '\x1b', len));
  assert_null(strchr(t, '\r'));
  assert_non_null(strstr(t, "\\x1B[31mred"));
  for (char *p = t, *nl; *p && nlines < 64; p = nl + 1) {
    nl = strchr(p, '\n');
    assert_non_null(nl);
    *nl = '\0';
    lines[nlines++] = p;
  }
  assert_true(nlines > n + 3);
  assert_memory_equal(lines[0], "KEY ", 4);
  /* One line per key, in order: a raw line break would shift them. */
  for (size_t i = 0; i < n; i++) {
    size_t pl = strlen(rw[i].prefix);
    if (strncmp(lines[i + 1], rw[i].prefix, pl) != 0 || lines[i + 1][pl] != ' ')
      fail_msg("table line %zu is not key %s: %s", i + 1, rw[i].prefix, lines[i + 1]);
  }
  /* Columns line up: CALLS right-aligned, LAST USE left-aligned under their headers. */
  calls_col = strstr(lines[0], "CALLS") - lines[0] + 5;
  last_col = strstr(lines[0], "LAST USE") - lines[0];
  for (size_t i = 0; i < n; i++) {
    const char *l = lines[i + 1];
    char num[32];
    size_t nl = (size_t)snprintf(num, sizeof(num), "%lld", (long long)rw[i].calls);
    size_t at = col_offset(l, calls_col - nl);
    if (strncmp(l + at, num, nl) != 0 || strncmp(l + col_offset(l, last_col), rw[i].last_us ?
                                                     "2026-" : "never", 5) != 0)
      fail_msg("table line %zu misaligned:\n%s\n%s", i + 1, lines[0], l);
  }
  assert_string_equal(lines[n + 1], "");
  assert_non_null(strstr(lines[n + 2], "6 keys reviewed"));
  assert_string_equal(lines[n + 3], "");
  assert_memory_equal(lines[n + 4], "Since the previous review (", 27);
  free(t);
}

/* ---- HTML ---------------------------------------------------------------------------- */

static void test_html_static(void **state) {
  size_t len;
  char *h = report_text(KW_REPORT_HTML, "review.html", &g.diff, &len);
  static const char *const banned[] = {"<script", "onerror=", "<img", "<iframe", "<link",
                                       "http:", "https:", "//", "url(", "@import",
                                       "src=", "href=", "<form", "\x1b"};
  (void)state;

  assert_utf8(h, len, "html");
  assert_memory_equal(h, "<!DOCTYPE html>\n", 16);
  for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
    if (strstr(h, banned[i]) != NULL)
      fail_msg("html holds '%s' raw: ...%.80s", banned[i], strstr(h, banned[i]));
  assert_non_null(strstr(h, "<meta charset=\"utf-8\">"));
  assert_non_null(strstr(h, "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                            "'none'; style-src 'unsafe-inline'\">"));
  assert_true(strstr(h, "Content-Security-Policy") < strstr(h, "<style>"));
  assert_non_null(strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert_non_null(strstr(h, "admin\\u202Eexe.txt")); /* the override is shown, not obeyed */
  assert_non_null(strstr(h, "class=\"sev sev-"));
  free(h);
}

/* The source tree: KW_SOURCE_DIR (ctest sets it), else from this file's path. */
static void source_dir(char *buf, size_t len) {
  const char *env = getenv("KW_SOURCE_DIR");
  const char *tail = strstr(__FILE__, "/tests/unit/");
  if (env != NULL && env[0] != '\0')
    snprintf(buf, len, "%s", env);
  else if (tail != NULL)
    snprintf(buf, len, "%.*s", (int)(tail - __FILE__), __FILE__);
  else
    fail_msg("KW_SOURCE_DIR is not set");
}

/* Runs check_html.js on path; returns its exit status, the verdict in DIR/verdict.json. */
static int check_in_chromium(const char *path, bool expect_hostile) {
  char src[512], script[600], modules[600], out[128], page[128];
  char *argv[16];
  int argc = 0, rc;

  source_dir(src, sizeof(src));
  snprintf(script, sizeof(script), "%s/tests/browser/check_html.js", src);
  snprintf(modules, sizeof(modules), "%s/tests/browser/node_modules/playwright-core", src);
  snprintf(out, sizeof(out), "%s/verdict.json", g.dir);
  snprintf(page, sizeof(page), "%s", path);
  if (access("/usr/bin/chromium", X_OK) != 0)
    fail_msg("/usr/bin/chromium is missing: run scripts/install-deps.sh (apt package chromium)");
  if (access(modules, R_OK) != 0)
    fail_msg("%s is missing: run scripts/install-deps.sh (npm ci --prefix tests/browser)",
             modules);
  argv[argc++] = "node";
  argv[argc++] = script;
  argv[argc++] = page;
  if (expect_hostile) {
    static char *const expect[] = {H_SCRIPT, H_IMG, H_QUOTED, H_FORMULA, "Analytics export"};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
      argv[argc++] = "--expect";
      argv[argc++] = expect[i];
    }
  }
  argv[argc] = NULL;
  rc = run(argv, out);
  if (rc == 2) {
    size_t n;
    char *v = read_file(out, &n);
    fail_msg("check_html.js could not run Chromium: %s", v);
  }
  return rc;
}

static void test_html_in_chromium(void **state) {
  const char *path = write_report(KW_REPORT_HTML, "browser.html", &g.diff);
  char bad[128], vpath[128];
  json_t *verdict, *loads;
  (void)state;

  if (check_in_chromium(path, true) != 0) {
    size_t n;
    char *v;
    snprintf(vpath, sizeof(vpath), "%s/verdict.json", g.dir);
    v = read_file(vpath, &n);
    fail_msg("Chromium flagged the report: %s", v);
  }
  /* The checker itself catches a page with an unescaped handler (a check that cannot
   * fail proves nothing): under the page's CSP as a violation on the console, with the
   * CSP bypassed as the alert it raises. */
  snprintf(bad, sizeof(bad), "%s/bad.html", g.dir);
  write_text(bad, "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                  "style-src 'unsafe-inline'\"></head><body>"
                  "<p>x</p><img src=x onerror=alert(1)></body></html>");
  assert_int_equal(check_in_chromium(bad, false), 1);
  snprintf(vpath, sizeof(vpath), "%s/verdict.json", g.dir);
  verdict = load_json(vpath);
  loads = json_object_get(verdict, "loads");
  assert_int_equal(json_array_size(loads), 2);
  assert_true(json_is_false(json_object_get(json_array_get(loads, 0), "bypassCSP")));
  assert_true(json_array_size(json_object_get(json_array_get(loads, 0), "console_errors")) > 0);
  assert_int_equal(json_array_size(json_object_get(json_array_get(loads, 0), "dialogs")), 0);
  assert_true(json_is_true(json_object_get(json_array_get(loads, 1), "bypassCSP")));
  assert_int_equal(json_array_size(json_object_get(json_array_get(loads, 1), "dialogs")), 1);
  json_decref(verdict);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_parse),
      cmocka_unit_test(test_write_error),
      cmocka_unit_test(test_json),
      cmocka_unit_test(test_json_without_diff),
      cmocka_unit_test(test_csv),
      cmocka_unit_test(test_md),
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_html_static),
      cmocka_unit_test(test_html_in_chromium),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
