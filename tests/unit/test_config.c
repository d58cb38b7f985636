/* test_config.c — YAML configuration, defaults and error locations (sidecar/config.c).
 *
 * Every file is written by the test into a fresh mkdtemp directory; error messages are
 * checked for "FILE:LINE: FIELD: …" with the exact line of the offending field.
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

#include "sidecar/config.h"
#include "sidecar/err.h"

#include "kwtest_files.h"

static char g_dir[64];
static char g_path[128];
static char g_err[1024];

static int setup(void **state) {
  (void)state;
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwconfig") != 0)
    return -1;
  snprintf(g_path, sizeof(g_path), "%s/keywatch.yaml", g_dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return temp_dir_remove(g_dir);
}

static struct kw_config *load_ok(const char *text) {
  return config_load_text(g_path, text);
}

/* Loads text, expects KW_ECONFIG and an error that starts "FILE:LINE: FIELD: " and holds
 * every string of `also`. */
static void load_fails(const char *text, unsigned line, const char *field, const char *also1,
                       const char *also2) {
  struct kw_config *c = (struct kw_config *)1;
  int rc;

  write_text(g_path, text);
  g_err[0] = '\0';
  rc = kw_config_load(g_path, &c, g_err, sizeof(g_err));
  assert_int_equal(rc, KW_ECONFIG);
  assert_null(c);
  assert_err_at(g_err, g_path, line, field, also1, also2);
}

static void assert_list(char **list, unsigned n, const char *const *want) {
  unsigned k = 0;
  while (want[k] != NULL)
    k++;
  assert_int_equal(n, k);
  for (unsigned i = 0; i < n; i++)
    assert_string_equal(list[i], want[i]);
}

static void check_defaults(const struct kw_config *c) {
  static const char *const headers[] = {"x-api-key", "apikey", "api-key", "x-api-token", NULL};
  static const char *const schemes[] = {"bearer", "token", "apikey", "basic", NULL};
  static const char *const query[] = {"api_key", "apikey", "api-key", "access_token", NULL};
  const struct kw_identity_cfg *id = &c->identity;

  assert_string_equal(c->db, "keywatch.db");
  assert_null(c->secret_file);
  assert_list(id->headers, id->headers_count, headers);
  assert_list(id->auth_schemes, id->auth_schemes_count, schemes);
  assert_list(id->query_params, id->query_params_count, query);
  assert_int_equal(id->redact_params_count, 18);
  assert_string_equal(id->redact_params[0], "api_key");
  assert_string_equal(id->redact_params[17], "code");
  assert_int_equal(id->prefix_length, 7);
  assert_string_equal(c->ingest.format, "auto");
  assert_null(c->ingest.log_format);
  assert_string_equal(c->ingest.escape, "default");
  assert_null(c->ingest.json);
  assert_int_equal(c->ingest.batch_rows, 200000);
  assert_int_equal(c->ingest.max_errors_shown, 5);
  assert_null(c->keys);
  assert_int_equal(c->keys_count, 0);
}

static void test_defaults(void **state) {
  struct kw_config *c = NULL;
  (void)state;
  assert_int_equal(kw_config_default(&c), 0);
  assert_non_null(c);
  assert_null(c->file);
  check_defaults(c);
  /* every default the query-parameter carriers use is also redacted */
  for (unsigned q = 0; q < c->identity.query_params_count; q++) {
    int found = 0;
    for (unsigned r = 0; r < c->identity.redact_params_count; r++)
      found |= strcmp(c->identity.query_params[q], c->identity.redact_params[r]) == 0;
    assert_true(found);
  }
  kw_config_destroy(c);
  kw_config_destroy(NULL);
}

static void test_empty_file(void **state) {
  struct kw_config *c;
  (void)state;
  c = load_ok("");
  check_defaults(c);
  assert_string_equal(c->file, g_path);
  kw_config_destroy(c);
  c = load_ok("# nothing but comments\n\n   \n# db: other.db\n");
  check_defaults(c);
  kw_config_destroy(c);
  c = load_ok("---\n");
  check_defaults(c);
  kw_config_destroy(c);
  c = load_ok("{}\n");
  check_defaults(c);
  kw_config_destroy(c);
}

static void test_missing_file(void **state) {
  struct kw_config *c = (struct kw_config *)1;
  char path[160];
  (void)state;
  snprintf(path, sizeof(path), "%s/none.yaml", g_dir);
  assert_int_equal(kw_config_load(path, &c, g_err, sizeof(g_err)), -ENOENT);
  assert_null(c);
  assert_non_null(strstr(g_err, "cannot open config file"));
  assert_non_null(strstr(g_err, path));
  assert_non_null(strstr(g_err, "No such file"));
}

static void test_full_file(void **state) {
  static const char text[] =
      "# keywatch configuration\n"
      "db: /var/lib/keywatch/kw.db\n"
      "secret_file: /etc/keywatch/secret\n"
      "identity:\n"
      "  headers: [X-Api-Key, X-Metabase-Apikey]\n"
      "  auth_schemes: [Bearer, basic]\n"
      "  query_params: [api_key]\n"
      "  redact_params:\n"
      "    - api_key\n"
      "    - Token\n"
      "  prefix_length: 9\n"
      "ingest:\n"
      "  format: nginx\n"
      "  log_format: '$remote_addr [$time_local] \"$request\" $status'\n"
      "  escape: json\n"
      "  batch_rows: 1000\n"
      "  max_errors_shown: 20\n"
      "  json:\n"
      "    preset: caddy\n"
      "    time: ts\n"
      "    uri: request.uri\n"
      "    key_id: consumer.id\n"
      "    time_format: epoch_s\n"
      "    latency_unit: ms\n"
      "    header_fields:\n"
      "      - header: X-Api-Key\n"
      "        path: http_x_api_key\n"
      "keys:\n"
      "  - name: reporting\n"
      "    prefix: mb_3q2+7\n"
      "  - name: ci\n"
      "    fingerprint: 0123456789abcdef0123456789abcdef\n";
  struct kw_config *c;
  (void)state;

  c = load_ok(text);
  assert_string_equal(c->file, g_path);
  assert_string_equal(c->db, "/var/lib/keywatch/kw.db");
  assert_string_equal(c->secret_file, "/etc/keywatch/secret");
  /* names are lower-cased at load */
  assert_list(c->identity.headers, c->identity.headers_count,
              (const char *const[]){"x-api-key", "x-metabase-apikey", NULL});
  assert_list(c->identity.auth_schemes, c->identity.auth_schemes_count,
              (const char *const[]){"bearer", "basic", NULL});
  assert_list(c->identity.query_params, c->identity.query_params_count,
              (const char *const[]){"api_key", NULL});
  assert_list(c->identity.redact_params, c->identity.redact_params_count,
              (const char *const[]){"api_key", "token", NULL});
  assert_int_equal(c->identity.prefix_length, 9);
  assert_string_equal(c->ingest.format, "nginx");
  assert_string_equal(c->ingest.log_format, "$remote_addr [$time_local] \"$request\" $status");
  assert_string_equal(c->ingest.escape, "json");
  assert_int_equal(c->ingest.batch_rows, 1000);
  assert_int_equal(c->ingest.max_errors_shown, 20);
  assert_non_null(c->ingest.json);
  assert_string_equal(c->ingest.json->preset, "caddy");
  assert_string_equal(c->ingest.json->time, "ts");
  assert_string_equal(c->ingest.json->uri, "request.uri");
  assert_string_equal(c->ingest.json->key_id, "consumer.id");
  assert_null(c->ingest.json->method);
  assert_string_equal(c->ingest.json->time_format, "epoch_s");
  assert_string_equal(c->ingest.json->latency_unit, "ms");
  assert_int_equal(c->ingest.json->header_fields_count, 1);
  assert_string_equal(c->ingest.json->header_fields[0].header, "x-api-key");
  assert_string_equal(c->ingest.json->header_fields[0].path, "http_x_api_key");
  assert_int_equal(c->keys_count, 2);
  assert_string_equal(c->keys[0].name, "reporting");
  assert_string_equal(c->keys[0].prefix, "mb_3q2+7");
  assert_null(c->keys[0].fingerprint);
  assert_string_equal(c->keys[1].name, "ci");
  assert_string_equal(c->keys[1].fingerprint, "0123456789abcdef0123456789abcdef");
  kw_config_destroy(c);

  /* a log_format alone makes the format "nginx" */
  c = load_ok("ingest:\n  log_format: '$remote_addr $status'\n");
  assert_string_equal(c->ingest.format, "nginx");
  kw_config_destroy(c);
}

static void test_wrong_type(void **state) {
  (void)state;
  load_fails("db: x.db\nidentity:\n  prefix_length: abc\n", 3, "identity.prefix_length",
             "abc", NULL);
  load_fails("identity:\n  prefix_length: -1\n", 2, "identity.prefix_length", "-1", NULL);
  load_fails("db: [a, b]\n", 1, "db", NULL, NULL);
  load_fails("identity: 5\n", 1, "identity", NULL, NULL);
  load_fails("keys:\n  - name: a\n    prefix: x\n  - name: [1]\n", 4, "keys.1.name", NULL,
             NULL);
  load_fails("identity:\n  headers: [x-api-key, [b]]\n", 2, "identity.headers.1", NULL,
             NULL);
}

static void test_unknown_key(void **state) {
  (void)state;
  load_fails("db: x.db\n\n\nbogus: 1\n", 4, "bogus", "unknown key", NULL);
  load_fails("identity:\n  headers: [a]\n  prefix_length: 3\n\n  hedaers: [b]\n", 5,
             "identity.hedaers", "unknown key", NULL);
  load_fails("ingest:\n  json:\n    preset: caddy\n    tme: x\n", 4, "ingest.json.tme",
             "unknown key", NULL);
  load_fails("keys:\n  - name: a\n    prefix: x\n  - nme: b\n", 4, "keys.1.nme",
             "unknown key", NULL);
}

static void test_bad_enum(void **state) {
  (void)state;
  load_fails("db: x.db\ningest:\n  escape: weird\n", 3, "ingest.escape", "'weird'",
             "default, json, none");
  load_fails("ingest:\n  json:\n    time_format: bogus\n", 3, "ingest.json.time_format",
             "'bogus'", "auto, iso8601, epoch_s, epoch_ms, epoch_us, epoch_ns, clf");
  load_fails("ingest:\n  json:\n    latency_unit: hours\n", 3, "ingest.json.latency_unit",
             "s, ms, us, ns", NULL);
  load_fails("identity:\n  auth_schemes:\n    - bearer\n    - digest\n", 4,
             "identity.auth_schemes.1", "'digest'", "bearer, token, apikey, basic");
}

static void test_out_of_range(void **state) {
  (void)state;
  load_fails("# comment\ningest:\n  batch_rows: 5000000\n", 3, "ingest.batch_rows",
             "5000000", "1 to 1000000");
  load_fails("identity:\n  prefix_length: 17\n", 2, "identity.prefix_length", "17",
             "1 to 16");
  struct kw_config *c = load_ok("ingest:\n  batch_rows: 1000000\nidentity:\n  "
                                "prefix_length: 16\n");
  assert_int_equal(c->ingest.batch_rows, 1000000);
  assert_int_equal(c->identity.prefix_length, 16);
  kw_config_destroy(c);
}

static void test_retention(void **state) {
  struct kw_config *c;
  (void)state;
  load_fails("retention:\n  calls: 5h\n", 2, "retention.calls", "at least one day", NULL);
  load_fails("retention:\n  calls: soon\n", 2, "retention.calls", "'soon'", "duration");
  load_fails("run:\n  commit_ms: 50\nretention:\n  interval: 10s\n", 4, "retention.interval",
             "at least one minute", NULL);
  c = load_ok("retention:\n  calls: 90d\n  outbox_max_pending: 50\n");
  assert_int_equal(c->retention.calls_us, 90LL * 86400 * 1000000);
  assert_int_equal(c->retention.interval_us, 3600LL * 1000000);
  assert_int_equal(c->retention.outbox_max_pending, 50);
  kw_config_destroy(c);
  assert_int_equal(kw_config_default(&c), 0); /* keep forever, by default */
  assert_int_equal(c->retention.calls_us, 0);
  assert_int_equal(c->retention.outbox_max_pending, 100000);
  kw_config_destroy(c);
}

static void test_allowed_hosts(void **state) {
  struct kw_config *c;
  (void)state;
  load_fails("http:\n  allowed_hosts: [ok.example, \"bad host\"]\n", 2,
             "http.allowed_hosts.1", "'bad host'", "no port");
  load_fails("http:\n  allowed_hosts:\n    - kw.example:8080\n", 3, "http.allowed_hosts.0",
             "not a host name", NULL);
  c = load_ok("http:\n  allowed_hosts: [kw.example, keywatch]\n");
  assert_int_equal(c->http.allowed_hosts_count, 2);
  assert_string_equal(c->http.allowed_hosts[1], "keywatch");
  kw_config_destroy(c);
}

/* Every variable a secret comes from, for the command key store to drop. */
static void test_secret_envs(void **state) {
  struct kw_config *c;
  size_t n = 0;
  (void)state;
  c = load_ok("responder:\n  stores:\n"
              "    - {name: mb, type: metabase, url: 'http://127.0.0.1:9',"
              " credential: {env: MB_ADMIN}}\n"
              "    - {name: cmd, type: command, argv: [/bin/true]}\n"
              "sinks:\n  - {type: webhook, url: 'http://127.0.0.1:9/h',"
              " headers: [{name: Authorization, env: HOOK_TOKEN}], hmac_secret_env: HOOK_HMAC}\n"
              "http:\n  tokens: [{name: ops, role: viewer, secret: {env: API_TOKEN}}]\n");
  assert_non_null(c->responder.stores[1].secret_envs);
  assert_ptr_equal(c->responder.stores[1].secret_envs, c->responder.stores[0].secret_envs);
  while (c->secret_envs[n] != NULL)
    n++;
  assert_int_equal(n, 4);
  assert_string_equal(c->secret_envs[0], "MB_ADMIN");
  assert_string_equal(c->secret_envs[1], "API_TOKEN");
  assert_string_equal(c->secret_envs[2], "HOOK_HMAC");
  assert_string_equal(c->secret_envs[3], "HOOK_TOKEN");
  kw_config_destroy(c);
}

static void test_keys_entry(void **state) {
  (void)state;
  load_fails("keys:\n  - name: a\n    prefix: mb_x\n  - prefix: mb_y\n", 4, "keys.1",
             "needs 'name'", NULL);
  load_fails("keys:\n  - name: a\n", 2, "keys.0", "needs 'name'", NULL);
  load_fails("keys:\n  - name: a\n    prefix: p\n  - name: b\n    prefix: q\n"
             "  - name: c\n    fingerprint: abc\n",
             6, "keys.2", "32 hex", NULL);
  load_fails("identity:\n  headers:\n    - x-api-key\n    - \"\"\n", 4, "identity.headers.1",
             "empty name", NULL);
  load_fails("ingest:\n  json:\n    header_fields:\n      - header: x-api-key\n", 4,
             "ingest.json.header_fields.0", "'header' and 'path'", NULL);
}

static void test_syntax_error(void **state) {
  (void)state;
  load_fails("db: a\nidentity:\n  headers: [a, b\n", 3, NULL, NULL, NULL);
  load_fails("- a\n- b\n", 0, NULL, "MAPPING", NULL);
}

static void test_config_error_locates(void **state) {
  static const char text[] =
      "db: x.db\n"                           /* 1 */
      "ingest:\n"                            /* 2 */
      "  format: caddy\n"                    /* 3 */
      "  json:\n"                            /* 4 */
      "    preset: caddy\n"                  /* 5 */
      "    # a comment line\n"               /* 6 */
      "    time_format: iso8601\n"           /* 7 */
      "keys:\n"                              /* 8 */
      "  - name: a\n"                        /* 9 */
      "    prefix: p\n"                      /* 10 */
      "  - {name: b, prefix: q}\n"           /* 11 */
      "  - prefix: r\n"                      /* 12 */
      "    name: c\n";                       /* 13 */
  struct kw_config *c;
  char err[512];
  (void)state;

  c = load_ok(text);
  assert_int_equal(kw_config_error(c, "ingest.json.time_format", err, sizeof(err),
                                   "'%s' does not fit preset %s", "iso8601", "caddy"),
                   KW_ECONFIG);
  char want[512];
  snprintf(want, sizeof(want),
           "%s:7: ingest.json.time_format: 'iso8601' does not fit preset caddy", g_path);
  assert_string_equal(err, want);

  kw_config_error(c, "keys.2.name", err, sizeof(err), "duplicate");
  snprintf(want, sizeof(want), "%s:13: keys.2.name: duplicate", g_path);
  assert_string_equal(err, want);
  kw_config_error(c, "keys.2", err, sizeof(err), "x");
  snprintf(want, sizeof(want), "%s:12: keys.2: x", g_path);
  assert_string_equal(err, want);
  kw_config_error(c, "keys.1.prefix", err, sizeof(err), "x"); /* flow mapping */
  snprintf(want, sizeof(want), "%s:11: keys.1.prefix: x", g_path);
  assert_string_equal(err, want);
  kw_config_error(c, "ingest.format", err, sizeof(err), "x");
  snprintf(want, sizeof(want), "%s:3: ingest.format: x", g_path);
  assert_string_equal(err, want);
  kw_config_error(c, "db", err, sizeof(err), "x");
  snprintf(want, sizeof(want), "%s:1: db: x", g_path);
  assert_string_equal(err, want);
  /* a field that is not in the file: no line */
  kw_config_error(c, "identity.headers", err, sizeof(err), "x");
  snprintf(want, sizeof(want), "%s: identity.headers: x", g_path);
  assert_string_equal(err, want);
  kw_config_error(c, "keys.7.name", err, sizeof(err), "x");
  snprintf(want, sizeof(want), "%s: keys.7.name: x", g_path);
  assert_string_equal(err, want);
  kw_config_destroy(c);

  /* defaults have no file */
  assert_int_equal(kw_config_default(&c), 0);
  kw_config_error(c, "ingest.format", err, sizeof(err), "unknown format '%s'", "x");
  assert_string_equal(err, "ingest.format: unknown format 'x'");
  kw_config_destroy(c);
  kw_config_error(NULL, "db", err, sizeof(err), "y");
  assert_string_equal(err, "db: y");
}

static void test_set(void **state) {
  struct kw_config *c = NULL;
  (void)state;
  assert_int_equal(kw_config_default(&c), 0);
  assert_int_equal(kw_config_set(&c->db, "/tmp/other.db"), 0);
  assert_string_equal(c->db, "/tmp/other.db");
  assert_int_equal(kw_config_set(&c->ingest.log_format, "$status"), 0);
  assert_string_equal(c->ingest.log_format, "$status");
  assert_int_equal(kw_config_set(&c->secret_file, NULL), 0);
  assert_null(c->secret_file);
  kw_config_destroy(c); /* frees what kw_config_set allocated */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_enum, setup, teardown),
      cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
      cmocka_unit_test_setup_teardown(test_allowed_hosts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_envs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys_entry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_error_locates, setup, teardown),
      cmocka_unit_test(test_set),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
