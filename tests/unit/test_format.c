/* test_format.c — the log format registry and detection (collector/format.c).
 *
 * JSON presets are detected from the sample logs in $KW_FIXTURES/jsonl/<preset>.jsonl.
 * Samples are copied into heap buffers of exactly their length (no NUL after them), so
 * AddressSanitizer catches reads past n.  Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/format.h"
#include "sidecar/config.h"
#include "sidecar/err.h"

#define KEY "mb_3q2+7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM/I="
#define COMBINED_LINE                                                                     \
  "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET /api/card/1 HTTP/1.1\" 200 512 "    \
  "\"-\" \"curl/8.5.0\""
#define KEYED_LINE COMBINED_LINE " \"" KEY "\" 0.012"

static char g_name[64], g_err[1024];

static int detect_n(const char *sample, size_t n) {
  char *copy = malloc(n ? n : 1);
  int rc;
  assert_non_null(copy);
  memcpy(copy, sample, n);
  g_name[0] = '\0';
  g_err[0] = '\0';
  rc = kw_format_detect(copy, n, g_name, sizeof(g_name), g_err, sizeof(g_err));
  free(copy);
  return rc;
}

static int detect(const char *sample) { return detect_n(sample, strlen(sample)); }

static char *read_fixture(const char *rel, size_t *n) {
  const char *dir = getenv("KW_FIXTURES");
  char path[1024];
  FILE *f;
  char *buf;
  long len;

  if (dir == NULL)
    dir = "tests/fixtures";
  snprintf(path, sizeof(path), "%s/%s", dir, rel);
  f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open fixture %s (set KW_FIXTURES)", path);
  fseek(f, 0, SEEK_END);
  len = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)len + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return buf;
}

static void test_detect_nginx(void **state) {
  (void)state;
  assert_int_equal(detect(KEYED_LINE "\n" KEYED_LINE "\n"), 0);
  assert_string_equal(g_name, "keyed");
  assert_int_equal(detect(COMBINED_LINE "\n" COMBINED_LINE "\n" COMBINED_LINE "\n"), 0);
  assert_string_equal(g_name, "combined");
  /* CRLF line ends, blank lines, a single line without a newline */
  assert_int_equal(detect(COMBINED_LINE "\r\n\r\n" COMBINED_LINE "\r\n"), 0);
  assert_string_equal(g_name, "combined");
  assert_int_equal(detect(KEYED_LINE), 0);
  assert_string_equal(g_name, "keyed");
  /* a partial last line (the sample cut in the middle) is ignored */
  assert_int_equal(detect(KEYED_LINE "\n" KEYED_LINE "\n203.0.113.7 - - [22/No"), 0);
  assert_string_equal(g_name, "keyed");
  /* half the lines are enough, a few malformed ones do not matter */
  assert_int_equal(detect(COMBINED_LINE "\ngarbage\n" COMBINED_LINE "\nmore garbage\n"), 0);
  assert_string_equal(g_name, "combined");
}

static void test_detect_json_presets(void **state) {
  (void)state;
  for (const char *const *p = (const char *const[]){"nginx-json", "caddy", "traefik",
                                                   "envoy", "kong", NULL};
       *p; p++) {
    char rel[128];
    size_t n;
    snprintf(rel, sizeof(rel), "jsonl/%s.jsonl", *p);
    char *sample = read_fixture(rel, &n);
    int rc = detect_n(sample, n);
    free(sample);
    if (rc != 0 || strcmp(g_name, *p) != 0)
      fail_msg("%s: detected '%s' (rc %d: %s)", rel, g_name, rc, g_err);
  }
}

static void test_detect_errors(void **state) {
  (void)state;
  assert_int_equal(detect(""), KW_EFORMAT);
  assert_non_null(strstr(g_err, "empty input"));
  assert_int_equal(detect("\n\r\n\n"), KW_EFORMAT);
  assert_non_null(strstr(g_err, "empty input"));

  assert_int_equal(detect("hello world\nthis is not an access log\n"), KW_EFORMAT);
  assert_non_null(strstr(g_err, "first line: hello world"));
  assert_non_null(strstr(g_err, "--format"));
  assert_non_null(strstr(g_err, "2 lines"));

  /* binary: shown escaped, never raw */
  assert_int_equal(detect_n("\x1b[2J\x00\x01\xff\xfe\n\x89PNG\n", 14), KW_EFORMAT);
  assert_non_null(strstr(g_err, "\\x1B[2J\\x00\\x01\\xFF\\xFE"));
  assert_null(strchr(g_err, '\x1b'));

  /* a long first line is cut in the message */
  char line[300];
  memset(line, 'q', sizeof(line) - 2);
  line[sizeof(line) - 2] = '\n';
  line[sizeof(line) - 1] = '\0';
  assert_int_equal(detect(line), KW_EFORMAT);
  assert_non_null(strstr(g_err, "..."));
  assert_null(strstr(g_err, "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"));

  /* JSON that fits no preset: says so and what to pass instead */
  assert_int_equal(detect("{\"when\":1,\"what\":\"x\"}\n"), KW_EFORMAT);
  assert_non_null(strstr(g_err, "JSON"));
  assert_non_null(strstr(g_err, "--format json"));
  assert_non_null(strstr(g_err, "ingest.json"));

  /* mostly garbage with one good line: not enough */
  assert_int_equal(detect(COMBINED_LINE "\nx\ny\nz\n"), KW_EFORMAT);
}

static void test_create_builtin(void **state) {
  struct kw_config *cfg = NULL;
  struct kw_format f;
  struct kw_rec rec;
  char err[256];
  (void)state;

  assert_int_equal(kw_config_default(&cfg), 0);
  assert_int_equal(kw_format_create(&cfg->ingest, "keyed", &f, g_err, sizeof(g_err)), 0);
  assert_non_null(f.ops);
  assert_string_equal(f.name, "keyed");
  assert_string_equal(f.ops->kind, "nginx");
  char *line = malloc(sizeof(KEYED_LINE) - 1);
  assert_non_null(line);
  memcpy(line, KEYED_LINE, sizeof(KEYED_LINE) - 1);
  assert_int_equal(f.ops->parse(f.ctx, line, sizeof(KEYED_LINE) - 1, &rec, err, sizeof(err)),
                   0);
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.resp_bytes, 512);
  assert_int_equal(rec.method.n, 3);
  assert_memory_equal(rec.uri.p, "/api/card/1", rec.uri.n);
  assert_int_equal(rec.latency_us, 12000);
  int found = 0;
  for (size_t i = 0; i < rec.nhdrs; i++)
    found |= rec.hdrs[i].value.n == strlen(KEY) &&
             memcmp(rec.hdrs[i].value.p, KEY, strlen(KEY)) == 0;
  assert_true(found);
  free(line);
  kw_format_destroy(&f);
  assert_null(f.ops);
  kw_format_destroy(&f); /* twice is safe */

  assert_int_equal(kw_format_create(&cfg->ingest, "combined", &f, g_err, sizeof(g_err)), 0);
  assert_string_equal(f.name, "combined");
  kw_format_destroy(&f);

  for (const char *const *p = (const char *const[]){"nginx-json", "caddy", "traefik",
                                                   "envoy", "kong", NULL};
       *p; p++) {
    int rc = kw_format_create(&cfg->ingest, *p, &f, g_err, sizeof(g_err));
    if (rc != 0)
      fail_msg("%s: %d %s", *p, rc, g_err);
    assert_string_equal(f.name, *p);
    assert_string_equal(f.ops->kind, "json");
    kw_format_destroy(&f);
  }
  kw_config_destroy(cfg);
}

static void test_create_nginx(void **state) {
  struct kw_config *cfg = NULL;
  struct kw_format f;
  (void)state;

  assert_int_equal(kw_config_default(&cfg), 0);
  assert_int_equal(kw_format_create(&cfg->ingest, "nginx", &f, g_err, sizeof(g_err)),
                   KW_EFORMAT);
  assert_null(f.ops);
  assert_non_null(strstr(g_err, "log_format"));

  assert_int_equal(kw_config_set(&cfg->ingest.log_format,
                                 "$remote_addr [$time_local] \"$request\" $status"),
                   0);
  assert_int_equal(kw_format_create(&cfg->ingest, "nginx", &f, g_err, sizeof(g_err)), 0);
  assert_string_equal(f.ops->kind, "nginx");
  kw_format_destroy(&f);

  /* a broken log_format: the compiler's reason, prefixed */
  assert_int_equal(kw_config_set(&cfg->ingest.log_format, "$remote_addr$status"), 0);
  assert_int_not_equal(kw_format_create(&cfg->ingest, "nginx", &f, g_err, sizeof(g_err)), 0);
  assert_null(f.ops);
  assert_int_equal(strncmp(g_err, "log_format: ", 12), 0);
  kw_config_destroy(cfg);
}

static void test_create_json(void **state) {
  struct kw_config *cfg = NULL;
  struct kw_json_cfg json;
  struct kw_format f;
  (void)state;

  assert_int_equal(kw_config_default(&cfg), 0);
  /* "json" without any mapping cannot work */
  assert_int_not_equal(kw_format_create(&cfg->ingest, "json", &f, g_err, sizeof(g_err)), 0);
  assert_null(f.ops);
  assert_int_equal(strncmp(g_err, "ingest.json: ", 13), 0);

  memset(&json, 0, sizeof(json));
  cfg->ingest.json = &json;
  json.preset = "nope";
  assert_int_equal(kw_format_create(&cfg->ingest, "json", &f, g_err, sizeof(g_err)),
                   KW_EFORMAT);
  assert_non_null(strstr(g_err, "unknown JSON preset 'nope'"));

  json.preset = NULL;
  json.time = "t";
  json.uri = "u";
  json.status = "s";
  json.time_format = "epoch_s";
  assert_int_equal(kw_format_create(&cfg->ingest, "json", &f, g_err, sizeof(g_err)), 0);
  struct kw_rec rec;
  static const char l[] = "{\"t\":1700000000.5,\"u\":\"/a?b\",\"s\":404}";
  char *line = malloc(sizeof(l) - 1);
  assert_non_null(line);
  memcpy(line, l, sizeof(l) - 1);
  assert_int_equal(f.ops->parse(f.ctx, line, sizeof(l) - 1, &rec, NULL, 0), 0);
  assert_int_equal(rec.status, 404);
  assert_int_equal(rec.ts_us, 1700000000500000LL);
  free(line);
  kw_format_destroy(&f);
  cfg->ingest.json = NULL; /* borrowed from the stack */
  kw_config_destroy(cfg);
}

static void test_unknown_name(void **state) {
  struct kw_config *cfg = NULL;
  struct kw_format f;
  (void)state;

  assert_int_equal(kw_config_default(&cfg), 0);
  assert_int_equal(kw_format_create(&cfg->ingest, "apache", &f, g_err, sizeof(g_err)),
                   KW_EFORMAT);
  assert_null(f.ops);
  assert_non_null(strstr(g_err, "unknown format 'apache'"));
  for (const char *const *n = kw_format_names(); *n; n++)
    if (strcmp(*n, "auto") != 0 && strstr(g_err, *n) == NULL)
      fail_msg("'%s' not listed in: %s", *n, g_err);
  assert_non_null(strstr(g_err, "combined, keyed, nginx, json, nginx-json, caddy, traefik, "
                                "envoy, kong"));
  kw_config_destroy(cfg);
}

static void test_names(void **state) {
  const char *const *n = kw_format_names();
  size_t count = 0;
  (void)state;
  for (; n[count] != NULL; count++)
    ;
  assert_int_equal(count, 10);
  assert_string_equal(kw_format_names()[0], "auto");
  assert_string_equal(kw_format_names()[9], "kong");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_detect_nginx),
      cmocka_unit_test(test_detect_json_presets),
      cmocka_unit_test(test_detect_errors),
      cmocka_unit_test(test_create_builtin),
      cmocka_unit_test(test_create_nginx),
      cmocka_unit_test(test_create_json),
      cmocka_unit_test(test_unknown_name),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
