/* test_sink.c — the alert sinks (analyzer/sink*.c), through their ops tables.
 *
 * Parts:
 *  - pure helpers: kw_sink_flatten(), kw_sink_parse_address(), the registry's defaults;
 *  - configuration errors of kw_sink_open_all(): each names sinks.N.FIELD, and a header's
 *    secret value never appears in an error;
 *  - every sink against a real peer on 127.0.0.1: the file itself; a Python stdlib HTTP
 *    receiver (tests/tools/http_receiver.py) and syslog receiver (syslog_receiver.py)
 *    started as subprocesses, which record what they received byte for byte.  Documents
 *    carry attacker-controlled strings (quotes, CR/LF, <script>, ANSI ESC sequences,
 *    invalid UTF-8) rendered by kw_alert_json(); what arrives must parse as JSON (jansson,
 *    strict) and give the original strings back, with no raw newline or ESC byte.
 *
 * Loop tests run the loop in bounded steps (run_until: a 10 ms tick keeps uv_run moving,
 * WAIT_MS caps it), count callbacks, and end with uv_loop_close() == 0.  Every subprocess
 * is stopped (SIGTERM, then SIGKILL) by the test or, if an assertion jumped out, by the
 * group teardown.
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
#include <fcntl.h>
#include <jansson.h>

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "analyzer/sink.h"
#include "sidecar/alerts.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/escape.h"

#include "kwtest_files.h"
#include "kwtest_loop.h"

#define WAIT_MS 8000

/* The hostile strings every sink must carry intact. */
static const char HOSTILE[] = "curl/8 \"quoted\" \\ back\nnew line\r\n<script>alert(1)</script>"
                              " \x1b[31mred\x1b[0m \x07"
                              "bell \ttab \xc3\xa9t\xc3\xa9";
static const char HOSTILE_BAD_UTF8[] = "bad \xff\xfe utf8";

static char g_dir[64];
static struct peers g_peers;

/* ---- what the peers received ---------------------------------------------------------- */

static json_t *wait_records(const char *path, size_t want, long ms) {
  json_t *r = read_json_lines(path);
  for (long waited = 0; json_array_size(r) < want && waited < ms; waited += 20) {
    json_decref(r);
    sleep_ms(20);
    r = read_json_lines(path);
  }
  return r;
}

/* Bytes of a hex string (a new buffer, NUL-terminated). */
static char *unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex) / 2;
  char *b = malloc(n + 1);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    b[i] = (char)v;
  }
  b[n] = '\0';
  *len = n;
  return b;
}

/* ---- the loop ------------------------------------------------------------------------- */

struct result {
  int calls;
  int status;
  char reason[256];
};

static void on_done(int status, const char *reason, void *arg) {
  struct result *r = arg;
  r->calls++;
  r->status = status;
  snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
}

/* Closes s, runs the loop out, checks the loop closes. */
static void close_and_finish(uv_loop_t *loop, struct kw_sink *s) {
  int closed = 0;
  kw_sink_close(s, on_closed, &closed);
  close_wait_finish(loop, &closed, WAIT_MS);
}

/* Sends doc and waits for its callback. */
static void send_wait(uv_loop_t *loop, struct kw_sink *s, const char *doc, int sev,
                      struct result *res) {
  memset(res, 0, sizeof(*res));
  int r = kw_sink_send(s, doc, strlen(doc), sev, on_done, res);
  if (r != 0)
    fail_msg("kw_sink_send: %s", kw_strerror(r));
  assert_int_equal(res->calls, 0); /* never from within send */
  if (!run_until(loop, &res->calls, 1, WAIT_MS))
    fail_msg("no callback within %d ms", WAIT_MS);
  assert_int_equal(res->calls, 1);
}

/* ---- documents ------------------------------------------------------------------------ */

/* An alert JSON as the outbox renders it, carrying summary and a user agent in details. */
static char *alert_doc(int64_t id, int sev, const char *summary, const char *ua) {
  char *details = NULL, *doc = NULL;
  size_t dl = 0, n = 0;
  FILE *f = open_memstream(&details, &dl);
  static const uint8_t fp[KW_FP_LEN] = {0xde, 0xad, 0xbe, 0xef};
  fputs("{\n  \"user_agent\": ", f); /* pretty-printed: raw newlines as JSON whitespace */
  kw_json_cstr(f, ua);
  fputs(",\n  \"bad\": ", f);
  kw_json_cstr(f, HOSTILE_BAD_UTF8);
  fputs("\n}", f);
  fclose(f);
  struct kw_alert_row a = {
      .id = id, .rule = "rate-spike", .type = "rate_spike", .action = "alert",
      .state = "open", .severity = sev, .prefix = "mb_AbCd", .name = "billing <b>",
      .fp = fp, .first_us = 1795324326000000LL, .last_us = 1795324386000000LL,
      .count = 3, .summary = summary, .details = details,
  };
  f = open_memstream(&doc, &n);
  kw_alert_json(f, &a);
  fclose(f);
  free(details);
  return doc;
}

/* doc (one line) must be strict JSON whose summary and details.user_agent are HOSTILE. */
static void check_doc(const char *line, size_t len, int64_t id) {
  json_error_t e;
  json_t *j;
  assert_null(memchr(line, '\n', len));
  assert_null(memchr(line, '\r', len));
  assert_null(memchr(line, 0x1b, len));
  assert_null(memchr(line, '\0', len));
  j = json_loadb(line, len, 0, &e);
  if (j == NULL)
    fail_msg("not JSON (%s): %.*s", e.text, (int)len, line);
  assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
  assert_string_equal(json_string_value(json_object_get(j, "summary")), HOSTILE);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(j, "details"), "user_agent")),
      HOSTILE);
  assert_string_equal(json_string_value(json_object_get(j, "name")), "billing <b>");
  json_decref(j);
}

/* ---- setup ---------------------------------------------------------------------------- */

static int setup(void **state) {
  (void)state;
  return peer_env_setup(g_dir, sizeof(g_dir), "kwsink");
}

static int teardown(void **state) {
  (void)state;
  return peer_env_teardown(&g_peers, g_dir);
}

static void path_in(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", g_dir, name);
}

/* ---- pure helpers --------------------------------------------------------------------- */

static void test_flatten(void **state) {
  static const char in[] = "{\n\t\"a\": \"x\x1by\",\r\n \"b\": 1\x7f}";
  size_t n;
  char *out = kw_sink_flatten(in, sizeof(in) - 1, &n);
  (void)state;
  assert_non_null(out);
  assert_string_equal(out, "{  \"a\": \"x\\u001by\",   \"b\": 1\\u007f}");
  assert_int_equal(n, strlen(out));
  free(out);
  out = kw_sink_flatten("", 0, &n);
  assert_non_null(out);
  assert_int_equal(n, 0);
  free(out);
}

static void test_parse_address(void **state) {
  char host[64];
  bool udp;
  int port;
  (void)state;
  assert_int_equal(kw_sink_parse_address("udp://127.0.0.1:514", &udp, host, sizeof(host), &port), 0);
  assert_true(udp);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 514);
  assert_int_equal(kw_sink_parse_address("tcp://[::1]:6514", &udp, host, sizeof(host), &port), 0);
  assert_false(udp);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 6514);
  assert_int_equal(kw_sink_parse_address("siem.example.org:514", &udp, host, sizeof(host), &port), 0);
  assert_true(udp);
  assert_string_equal(host, "siem.example.org");
  static const char *const bad[] = {"", "udp://", "udp://host", "udp://host:", "udp://host:0",
                                    "udp://host:65536", "udp://host:12x", "http://host:80",
                                    "tcp://[::1]", "tcp://::1:514", "tcp://a b:514",
                                    "tcp://:514", NULL};
  for (int i = 0; bad[i]; i++)
    if (kw_sink_parse_address(bad[i], &udp, host, sizeof(host), &port) != KW_EINVAL)
      fail_msg("'%s' accepted", bad[i]);
}

static void test_registry(void **state) {
  static const char *const types[] = {"stdout", "file", "webhook", "syslog"};
  struct kw_sink_ops ops;
  (void)state;
  for (int i = 0; i < 4; i++) {
    memset(&ops, 0, sizeof(ops));
    assert_int_equal(kw_sink_ops_get(types[i], &ops), 0);
    assert_string_equal(ops.type, types[i]);
    assert_non_null(ops.create);
    assert_non_null(ops.send);
    assert_non_null(ops.close);
    assert_non_null(ops.reopen); /* filled with a default where the plugin has none */
  }
  assert_int_equal(kw_sink_ops_get("pager", &ops), KW_ENOTFOUND);
  assert_int_equal(kw_sink_ops_get(NULL, &ops), KW_ENOTFOUND);
}

/* ---- configuration errors ------------------------------------------------------------- */

static void expect_open_error(struct kw_sink_cfg *sinks, unsigned n, const char *field,
                              const char *needle, const char *never) {
  struct kw_config cfg = {.sinks = sinks, .sinks_count = n};
  struct kw_sinks *set = (struct kw_sinks *)1;
  char err[512] = "";
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  int r = kw_sink_open_all(&loop, &cfg, &set, err, sizeof(err));
  assert_int_not_equal(r, 0);
  assert_null(set);
  if (strncmp(err, field, strlen(field)) != 0 || strstr(err, needle) == NULL)
    fail_msg("error '%s' does not start with '%s' and say '%s'", err, field, needle);
  if (never != NULL && strstr(err, never) != NULL)
    fail_msg("error '%s' shows '%s'", err, never);
  uv_run(&loop, UV_RUN_DEFAULT); /* sinks built before the failing one close here */
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_config_errors(void **state) {
  char path[128];
  struct kw_sink_header_cfg hdr[2] = {{"X-Token", "KW_TEST_TOKEN"}, {"X-Other", "KW_TEST_UNSET_VAR"}};
  (void)state;
  setenv("KW_TEST_TOKEN", "tok-SECRET-value", 1);
  unsetenv("KW_TEST_UNSET_VAR");
  unsetenv("KW_TEST_UNSET_HMAC");
  path_in(path, sizeof(path), "ok.jsonl");

  /* a header whose variable is missing: named, secret of the other header not shown */
  struct kw_sink_cfg a[2] = {
      {.name = "f", .type = "file", .path = path},
      {.name = "hook", .type = "webhook", .url = "http://127.0.0.1:9/hook", .headers = hdr,
       .headers_count = 2},
  };
  expect_open_error(a, 2, "sinks.1.headers.1.env", "KW_TEST_UNSET_VAR", "SECRET");

  struct kw_sink_cfg b = {.type = "webhook", .url = "http://127.0.0.1:9/h",
                          .hmac_secret_env = "KW_TEST_UNSET_HMAC"};
  expect_open_error(&b, 1, "sinks.0.hmac_secret_env", "KW_TEST_UNSET_HMAC", NULL);

  struct kw_sink_cfg c = {.type = "webhook", .url = "ftp://127.0.0.1/secret-path-token"};
  expect_open_error(&c, 1, "sinks.0.url", "http", "secret-path-token");

  struct kw_sink_header_cfg inj = {"Content-Type", "KW_TEST_TOKEN"};
  struct kw_sink_cfg d = {.type = "webhook", .url = "http://127.0.0.1:9/", .headers = &inj,
                          .headers_count = 1};
  expect_open_error(&d, 1, "sinks.0.headers.0.name", "Content-Type", "SECRET");

  setenv("KW_TEST_CRLF", "a\r\nX-Injected: 1", 1);
  struct kw_sink_header_cfg crlf = {"X-Token", "KW_TEST_CRLF"};
  struct kw_sink_cfg e = {.type = "webhook", .url = "http://127.0.0.1:9/", .headers = &crlf,
                          .headers_count = 1};
  expect_open_error(&e, 1, "sinks.0.headers.0.env", "line break", "Injected");

  struct kw_sink_cfg f = {.type = "syslog", .address = "udp://127.0.0.1"};
  expect_open_error(&f, 1, "sinks.0.address", "udp://", NULL);

  struct kw_sink_cfg g = {.type = "file", .path = "/nonexistent-dir/kw/alerts.jsonl"};
  expect_open_error(&g, 1, "sinks.0.path", "cannot open", NULL);

  struct kw_sink_cfg h = {.type = "pager"};
  expect_open_error(&h, 1, "sinks.0.type", "pager", NULL);

  /* and a good set: lookup by name, order kept */
  struct kw_sink_cfg ok[2] = {{.name = "one", .type = "file", .path = path},
                              {.name = "two", .type = "stdout", .min_severity = "high"}};
  struct kw_config cfg = {.sinks = ok, .sinks_count = 2};
  struct kw_sinks *set = NULL;
  char err[256];
  size_t idx = 99;
  uv_loop_t loop;
  int closed = 0;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(kw_sink_open_all(&loop, &cfg, &set, err, sizeof(err)), 0);
  assert_int_equal(kw_sink_count(set), 2);
  assert_ptr_equal(kw_sink_find(set, "two", &idx), kw_sink_at(set, 1));
  assert_int_equal(idx, 1);
  assert_null(kw_sink_find(set, "three", NULL));
  assert_false(kw_sink_wants(kw_sink_at(set, 1), KW_SEV_MEDIUM));
  assert_true(kw_sink_wants(kw_sink_at(set, 1), KW_SEV_HIGH));
  assert_true(kw_sink_wants(kw_sink_at(set, 0), KW_SEV_INFO));
  kw_sink_close_all(set, on_closed, &closed);
  assert_int_equal(closed, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- file and stdout ------------------------------------------------------------------ */

static struct kw_sink *open_one(uv_loop_t *loop, struct kw_sink_cfg *cfg) {
  struct kw_sink *s = NULL;
  char err[512];
  int r = kw_sink_open(loop, cfg, &s, err, sizeof(err));
  if (r != 0)
    fail_msg("open %s sink: %s", cfg->type, err);
  return s;
}

static void test_file_sink(void **state) {
  char path[128], rotated[128];
  struct kw_sink_cfg cfg = {.name = "f", .type = "file"};
  struct result res[3];
  struct stat sb;
  uv_loop_t loop;
  size_t n;
  (void)state;

  path_in(path, sizeof(path), "alerts.jsonl");
  path_in(rotated, sizeof(rotated), "alerts.jsonl.1");
  cfg.path = path;
  mode_t old = umask(022);
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  umask(old);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0640);

  /* three documents sent together: one batch, in order, one line each */
  char *docs[3];
  memset(res, 0, sizeof(res));
  for (int i = 0; i < 3; i++) {
    docs[i] = alert_doc(i + 1, KW_SEV_HIGH, HOSTILE, HOSTILE);
    assert_int_equal(kw_sink_send(s, docs[i], strlen(docs[i]), KW_SEV_HIGH, on_done, &res[i]), 0);
  }
  assert_true(run_until(&loop, &res[2].calls, 1, WAIT_MS));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(res[i].calls, 1);
    assert_int_equal(res[i].status, 0);
    free(docs[i]);
  }
  char *buf = read_file(path, &n);
  int lines = 0;
  for (char *p = buf, *nl; (nl = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p = nl + 1)
    check_doc(p, (size_t)(nl - p), ++lines);
  assert_int_equal(lines, 3);
  assert_int_equal(buf[n - 1], '\n');
  free(buf);

  /* logrotate: rename, reopen, the next line goes to a new file */
  assert_int_equal(rename(path, rotated), 0);
  assert_int_equal(kw_sink_reopen(s), 0);
  char *d4 = alert_doc(4, KW_SEV_LOW, HOSTILE, HOSTILE);
  send_wait(&loop, s, d4, KW_SEV_LOW, &res[0]);
  free(d4);
  assert_int_equal(res[0].status, 0);
  buf = read_file(path, &n);
  assert_true(n > 0 && buf[n - 1] == '\n');
  check_doc(buf, n - 1, 4);
  free(buf);
  buf = read_file(rotated, &n);
  assert_int_equal(memchr(buf, '\n', n) != NULL, 1);
  assert_null(strstr(buf, "\"id\": 4,"));
  free(buf);
  close_and_finish(&loop, s);
}

static void test_file_sink_close_cancels_queue(void **state) {
  char path[128];
  struct kw_sink_cfg cfg = {.type = "file"};
  struct result res[40];
  uv_loop_t loop;
  int total = 0, ok = 0, canceled = 0, closed = 0;
  (void)state;
  path_in(path, sizeof(path), "cancel.jsonl");
  cfg.path = path;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  memset(res, 0, sizeof(res));
  /* the first 20 go to the pool as one batch, the next 20 wait behind it */
  for (int i = 0; i < 20; i++)
    assert_int_equal(kw_sink_send(s, "{\"x\": 1}", 8, 0, on_done, &res[i]), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  for (int i = 20; i < 40; i++)
    assert_int_equal(kw_sink_send(s, "{\"x\": 1}", 8, 0, on_done, &res[i]), 0);
  kw_sink_close(s, on_closed, &closed);
  assert_int_equal(kw_sink_send(s, "{}", 2, 0, on_done, &res[0]), KW_ECANCELED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  for (int i = 0; i < 40; i++) {
    total += res[i].calls;
    ok += res[i].calls && res[i].status == 0;
    canceled += res[i].calls && res[i].status == KW_ECANCELED;
  }
  assert_int_equal(total, 40); /* each exactly once */
  assert_int_equal(ok + canceled, 40);
  for (int i = 0; i < 40; i++) /* the batch in flight finishes, the queue is cancelled */
    assert_int_equal(res[i].status, i < 20 ? 0 : KW_ECANCELED);
  size_t n;
  char *buf = read_file(path, &n);
  int lines = 0;
  for (size_t i = 0; i < n; i++)
    lines += buf[i] == '\n';
  free(buf);
  assert_int_equal(lines, ok); /* what was reported written is in the file, nothing more */
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_stdout_sink(void **state) {
  char path[128];
  struct kw_sink_cfg cfg = {.type = "stdout"};
  struct result res;
  uv_loop_t loop;
  int saved, fd;
  size_t n;
  (void)state;
  path_in(path, sizeof(path), "stdout.txt");
  fflush(stdout);
  saved = dup(STDOUT_FILENO);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, STDOUT_FILENO);
  close(fd);
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  char *doc = alert_doc(9, KW_SEV_CRITICAL, HOSTILE, HOSTILE);
  send_wait(&loop, s, doc, KW_SEV_CRITICAL, &res);
  free(doc);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  assert_int_equal(res.status, 0);
  char *buf = read_file(path, &n);
  assert_true(n > 1 && buf[n - 1] == '\n');
  check_doc(buf, n - 1, 9);
  free(buf);
  close_and_finish(&loop, s);
}

/* ---- webhook -------------------------------------------------------------------------- */

struct http_peer {
  pid_t pid;
  int port;
  char out[160], port_file[160];
};

static void http_start(struct http_peer *p, const char *tag, ...) {
  const char *extra[8] = {0};
  va_list ap;
  int n = 0;
  path_in(p->out, sizeof(p->out), tag);
  strncat(p->out, ".log", sizeof(p->out) - strlen(p->out) - 1);
  path_in(p->port_file, sizeof(p->port_file), tag);
  strncat(p->port_file, ".port", sizeof(p->port_file) - strlen(p->port_file) - 1);
  va_start(ap, tag);
  for (const char *a; n < 7 && (a = va_arg(ap, const char *)) != NULL;)
    extra[n++] = a;
  va_end(ap);
  p->pid = peer_start(&g_peers, "http_receiver.py", p->port_file, &p->port, "--out", p->out,
                      "--port-file", p->port_file, extra[0], extra[1], extra[2], extra[3],
                      extra[4], extra[5], extra[6], (char *)NULL);
}

static void test_webhook_delivers_signed(void **state) {
  struct http_peer p;
  struct kw_sink_header_cfg hdr[2] = {{"Authorization", "KW_TEST_AUTH"},
                                      {"X-Team", "KW_TEST_TEAM"}};
  char url[128];
  struct result res;
  uv_loop_t loop;
  (void)state;

  setenv("KW_TEST_AUTH", "Bearer tok-SECRET-123", 1);
  setenv("KW_TEST_TEAM", "secops", 1);
  setenv("KW_TEST_HMAC", "hmac-SECRET-key", 1);
  http_start(&p, "hook", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/alerts?x=1", p.port);
  struct kw_sink_cfg cfg = {.name = "hook", .type = "webhook", .url = url, .headers = hdr,
                            .headers_count = 2, .hmac_secret_env = "KW_TEST_HMAC",
                            .timeout_ms = 3000};
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  char *doc = alert_doc(42, KW_SEV_HIGH, HOSTILE, HOSTILE);
  /* the body is what kw_sink_send makes of doc: one line */
  size_t blen;
  char *body = kw_sink_flatten(doc, strlen(doc), &blen);
  send_wait(&loop, s, doc, KW_SEV_HIGH, &res);
  free(doc);
  if (res.status != 0)
    fail_msg("webhook failed: %s", res.reason);

  json_t *recs = wait_records(p.out, 1, 2000);
  assert_int_equal(json_array_size(recs), 1);
  json_t *r = json_array_get(recs, 0), *h = json_object_get(r, "headers");
  assert_string_equal(json_string_value(json_object_get(r, "method")), "POST");
  assert_string_equal(json_string_value(json_object_get(r, "path")), "/hooks/alerts?x=1");
  assert_string_equal(json_string_value(json_object_get(h, "content-type")), "application/json");
  assert_string_equal(json_string_value(json_object_get(h, "authorization")),
                      "Bearer tok-SECRET-123");
  assert_string_equal(json_string_value(json_object_get(h, "x-team")), "secops");
  assert_non_null(strstr(json_string_value(json_object_get(h, "user-agent")), "keywatch/"));
  assert_null(json_object_get(h, "expect"));
  /* the body arrived byte for byte, and it is the alert */
  size_t got_len;
  char *got = unhex(json_string_value(json_object_get(r, "body_hex")), &got_len);
  assert_int_equal(got_len, blen);
  assert_memory_equal(got, body, blen);
  check_doc(got, got_len, 42);
  /* the signature is HMAC-SHA256(secret, body) */
  unsigned char md[32];
  unsigned mdlen = 0;
  char want[80] = "sha256=";
  HMAC(EVP_sha256(), "hmac-SECRET-key", 15, (unsigned char *)got, got_len, md, &mdlen);
  assert_int_equal(mdlen, 32);
  for (unsigned i = 0; i < 32; i++)
    snprintf(want + 7 + 2 * i, 3, "%02x", md[i]);
  assert_string_equal(json_string_value(json_object_get(h, "x-keywatch-signature")), want);
  free(got);
  free(body);
  json_decref(recs);

  /* a second alert reuses the connection (keep-alive) */
  doc = alert_doc(43, KW_SEV_LOW, HOSTILE, HOSTILE);
  send_wait(&loop, s, doc, KW_SEV_LOW, &res);
  free(doc);
  assert_int_equal(res.status, 0);
  recs = wait_records(p.out, 2, 2000);
  assert_int_equal(json_array_size(recs), 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 0), "conn")),
                   json_integer_value(json_object_get(json_array_get(recs, 1), "conn")));
  json_decref(recs);
  close_and_finish(&loop, s);
  peer_stop(&g_peers, p.pid);
}

static void test_webhook_failures(void **state) {
  struct http_peer err500, redirect, target, slow;
  struct kw_sink_header_cfg hdr = {"X-Token", "KW_TEST_AUTH"};
  char url[160], loc[160];
  struct result res;
  uv_loop_t loop;
  (void)state;
  setenv("KW_TEST_AUTH", "tok-SECRET-123", 1);
  http_start(&err500, "e500", "--status", "500", NULL);
  http_start(&target, "target", NULL);
  snprintf(loc, sizeof(loc), "http://localhost:%d/elsewhere", target.port);
  http_start(&redirect, "redir", "--status", "302", "--location", loc, NULL);
  http_start(&slow, "slow", "--delay", "3", NULL);
  assert_int_equal(uv_loop_init(&loop), 0);

  /* 500: failure, "HTTP 500" */
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/SECRETPATHTOKEN", err500.port);
  struct kw_sink_cfg cfg = {.type = "webhook", .url = url, .headers = &hdr, .headers_count = 1,
                            .timeout_ms = 2000};
  struct kw_sink *s = open_one(&loop, &cfg);
  send_wait(&loop, s, "{\"id\": 1}", 0, &res);
  assert_int_not_equal(res.status, 0);
  assert_string_equal(res.reason, "HTTP 500");
  close_and_finish(&loop, s);

  /* 302 to another host: failure, not followed */
  assert_int_equal(uv_loop_init(&loop), 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", redirect.port);
  s = open_one(&loop, &cfg);
  send_wait(&loop, s, "{\"id\": 2}", 0, &res);
  assert_int_not_equal(res.status, 0);
  assert_non_null(strstr(res.reason, "HTTP 302"));
  close_and_finish(&loop, s);
  json_t *recs = read_json_lines(target.out);
  assert_int_equal(json_array_size(recs), 0);
  json_decref(recs);

  /* nobody listening: a connection error, with neither the URL's path nor a header value */
  assert_int_equal(uv_loop_init(&loop), 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/SECRETPATHTOKEN", free_port(SOCK_STREAM));
  s = open_one(&loop, &cfg);
  send_wait(&loop, s, "{\"id\": 3}", 0, &res);
  assert_int_not_equal(res.status, 0);
  assert_true(res.reason[0] != '\0');
  assert_null(strstr(res.reason, "SECRETPATHTOKEN"));
  assert_null(strstr(res.reason, "SECRET-123"));
  close_and_finish(&loop, s);

  /* too slow: a timeout after timeout_ms, not after the peer's 3 s */
  assert_int_equal(uv_loop_init(&loop), 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", slow.port);
  cfg.timeout_ms = 300;
  s = open_one(&loop, &cfg);
  uint64_t t0 = uv_hrtime();
  send_wait(&loop, s, "{\"id\": 4}", 0, &res);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  assert_int_equal(res.status, -ETIMEDOUT);
  assert_true(ms >= 250 && ms < 2000);
  close_and_finish(&loop, s);

  peer_stop(&g_peers, err500.pid);
  peer_stop(&g_peers, redirect.pid);
  peer_stop(&g_peers, target.pid);
  peer_stop(&g_peers, slow.pid);
}

static void test_webhook_close_cancels(void **state) {
  struct http_peer slow;
  char url[128];
  struct result res[3];
  uv_loop_t loop;
  int closed = 0;
  (void)state;
  http_start(&slow, "slow2", "--delay", "5", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", slow.port);
  struct kw_sink_cfg cfg = {.type = "webhook", .url = url, .timeout_ms = 10000};
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  memset(res, 0, sizeof(res));
  for (int i = 0; i < 3; i++)
    assert_int_equal(kw_sink_send(s, "{\"id\": 5}", 9, 0, on_done, &res[i]), 0);
  /* let the requests reach the peer, then close while they wait for answers */
  json_t *recs = NULL;
  for (int i = 0; i < 200; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    json_decref(recs);
    recs = read_json_lines(slow.out);
    if (json_array_size(recs) >= 1)
      break;
    sleep_ms(10);
  }
  assert_true(json_array_size(recs) >= 1);
  json_decref(recs);
  kw_sink_close(s, on_closed, &closed);
  for (int i = 0; i < 3; i++)
    assert_int_equal(res[i].calls, 0); /* not from within close */
  uint64_t t0 = uv_hrtime();
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true((uv_hrtime() - t0) / 1000000 < 1000); /* did not wait for the answers */
  assert_int_equal(closed, 1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(res[i].calls, 1);
    assert_int_equal(res[i].status, KW_ECANCELED);
  }
  assert_int_equal(uv_loop_close(&loop), 0);
  peer_stop(&g_peers, slow.pid);
}

/* ---- syslog --------------------------------------------------------------------------- */

struct syslog_peer {
  pid_t pid;
  int port;
  char out[160], port_file[160];
};

static void syslog_start(struct syslog_peer *p, const char *proto, const char *tag, ...) {
  const char *extra[4] = {0};
  va_list ap;
  int n = 0;
  path_in(p->out, sizeof(p->out), tag);
  strncat(p->out, ".log", sizeof(p->out) - strlen(p->out) - 1);
  path_in(p->port_file, sizeof(p->port_file), tag);
  strncat(p->port_file, ".port", sizeof(p->port_file) - strlen(p->port_file) - 1);
  va_start(ap, tag);
  for (const char *a; n < 3 && (a = va_arg(ap, const char *)) != NULL;)
    extra[n++] = a;
  va_end(ap);
  p->pid = peer_start(&g_peers, "syslog_receiver.py", p->port_file, &p->port, "--proto", proto,
                      "--out", p->out, "--port-file", p->port_file, extra[0], extra[1],
                      extra[2], (char *)NULL);
}

/* Checks one RFC 5424 message: header fields, then the JSON MSG. */
static void check_syslog_msg(const char *m, size_t n, int pri, int64_t id) {
  char host[300] = "", app[64], procid[32], msgid[64], sd[8], ts[64];
  int got_pri, ver, off = 0;
  char want_pid[32];
  assert_null(memchr(m, '\n', n));
  assert_null(memchr(m, '\r', n));
  assert_null(memchr(m, 0x1b, n));
  assert_int_equal(sscanf(m, "<%d>%d %63s %299s %63s %31s %63s %7s %n", &got_pri, &ver, ts,
                          host, app, procid, msgid, sd, &off),
                   8);
  assert_int_equal(got_pri, pri);
  assert_int_equal(ver, 1);
  assert_int_equal(strlen(ts), 24); /* 2026-11-22T05:12:06.123Z */
  assert_int_equal(ts[10], 'T');
  assert_int_equal(ts[23], 'Z');
  assert_string_equal(app, "keywatch");
  snprintf(want_pid, sizeof(want_pid), "%ld", (long)getpid());
  assert_string_equal(procid, want_pid);
  assert_string_equal(msgid, "ALERT");
  assert_string_equal(sd, "-");
  assert_true(off > 0 && (size_t)off < n);
  assert_int_equal(m[off], '{'); /* no BOM, JSON right away */
  check_doc(m + off, n - (size_t)off, id);
}

static void test_syslog_udp(void **state) {
  struct syslog_peer p;
  char addr[64];
  struct result res;
  uv_loop_t loop;
  (void)state;
  syslog_start(&p, "udp", "sudp", NULL);
  snprintf(addr, sizeof(addr), "udp://127.0.0.1:%d", p.port);
  struct kw_sink_cfg cfg = {.type = "syslog", .address = addr};
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  static const int sev[] = {KW_SEV_CRITICAL, KW_SEV_INFO, KW_SEV_MEDIUM};
  static const int pri[] = {16 * 8 + 2, 16 * 8 + 6, 16 * 8 + 4};
  for (int i = 0; i < 3; i++) {
    char *doc = alert_doc(100 + i, sev[i], HOSTILE, HOSTILE);
    send_wait(&loop, s, doc, sev[i], &res);
    free(doc);
    assert_int_equal(res.status, 0);
  }
  json_t *recs = wait_records(p.out, 3, 3000);
  assert_int_equal(json_array_size(recs), 3);
  for (int i = 0; i < 3; i++) {
    size_t n;
    char *m = unhex(json_string_value(json_object_get(json_array_get(recs, i), "hex")), &n);
    check_syslog_msg(m, n, pri[i], 100 + i);
    free(m);
  }
  json_decref(recs);
  /* a document too big for one datagram is refused, not cut */
  size_t big = 70000;
  char *huge = malloc(big + 1);
  memset(huge, 'a', big);
  huge[0] = '"';
  huge[big - 1] = '"';
  huge[big] = '\0';
  assert_int_equal(kw_sink_send(s, huge, big, 0, on_done, &res), KW_ETOOLONG);
  free(huge);
  close_and_finish(&loop, s);
  peer_stop(&g_peers, p.pid);
}

static void test_syslog_tcp_reconnects(void **state) {
  struct syslog_peer p;
  char addr[64];
  struct result res;
  uv_loop_t loop;
  int delivered = 0, failures = 0;
  (void)state;
  /* the receiver hangs up after every 2 messages: the sink must notice and reconnect */
  syslog_start(&p, "tcp", "stcp", "--close-after", "2", NULL);
  snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", p.port);
  struct kw_sink_cfg cfg = {.type = "syslog", .address = addr, .timeout_ms = 2000};
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  for (int i = 0; i < 6 && failures < 20; i++) {
    char *doc = alert_doc(200 + i, KW_SEV_HIGH, HOSTILE, HOSTILE);
    send_wait(&loop, s, doc, KW_SEV_HIGH, &res);
    free(doc);
    if (res.status != 0) { /* as the outbox would: try again */
      failures++;
      i--;
      sleep_ms(20);
      continue;
    }
    delivered++;
    /* give the receiver's hang-up time to arrive, as between two alerts */
    for (int k = 0; k < 5; k++) {
      sleep_ms(10);
      uv_run(&loop, UV_RUN_NOWAIT);
    }
  }
  assert_int_equal(delivered, 6);
  json_t *recs = wait_records(p.out, 6, 3000);
  assert_true(json_array_size(recs) >= 6);
  int64_t max_conn = 0;
  for (size_t i = 0; i < json_array_size(recs); i++) {
    json_t *r = json_array_get(recs, i);
    assert_null(json_object_get(r, "framing_error"));
    size_t n;
    char *m = unhex(json_string_value(json_object_get(r, "hex")), &n);
    json_error_t e;
    const char *brace = memchr(m, '{', n);
    assert_non_null(brace);
    json_t *j = json_loadb(brace, n - (size_t)(brace - m), 0, &e);
    assert_non_null(j);
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    check_syslog_msg(m, n, 16 * 8 + 3, id);
    free(m);
    if (json_integer_value(json_object_get(r, "conn")) > max_conn)
      max_conn = json_integer_value(json_object_get(r, "conn"));
  }
  assert_true(max_conn >= 3); /* 2 per connection */
  json_decref(recs);
  close_and_finish(&loop, s);
  peer_stop(&g_peers, p.pid);
}

static void test_syslog_tcp_refused(void **state) {
  char addr[64];
  struct result res;
  uv_loop_t loop;
  (void)state;
  snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", free_port(SOCK_STREAM));
  struct kw_sink_cfg cfg = {.type = "syslog", .address = addr, .timeout_ms = 1000};
  assert_int_equal(uv_loop_init(&loop), 0);
  struct kw_sink *s = open_one(&loop, &cfg);
  send_wait(&loop, s, "{\"id\": 1}", 0, &res);
  assert_int_not_equal(res.status, 0);
  assert_non_null(strstr(res.reason, "connect"));
  /* and again: a new attempt, the same answer, no state left behind */
  send_wait(&loop, s, "{\"id\": 2}", 0, &res);
  assert_int_not_equal(res.status, 0);
  close_and_finish(&loop, s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flatten),
      cmocka_unit_test(test_parse_address),
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_file_sink),
      cmocka_unit_test(test_file_sink_close_cancels_queue),
      cmocka_unit_test(test_stdout_sink),
      cmocka_unit_test(test_webhook_delivers_signed),
      cmocka_unit_test(test_webhook_failures),
      cmocka_unit_test(test_webhook_close_cancels),
      cmocka_unit_test(test_syslog_udp),
      cmocka_unit_test(test_syslog_tcp_reconnects),
      cmocka_unit_test(test_syslog_tcp_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
