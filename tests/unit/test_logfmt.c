/* test_logfmt.c — nginx log_format compiler and line parser (collector/logfmt.c).
 *
 * Every line is copied into a heap buffer of exactly its length (no NUL after it), so
 * AddressSanitizer catches any read past len.  Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/logfmt.h"
#include "sidecar/err.h"

#define T_2026_11_22_051206 1795324326LL /* 2026-11-22T05:12:06Z */

static char *g_line;   /* the line of the last parse, exactly its length */
static size_t g_len;
static char g_err[256];

static int teardown(void **state) {
  (void)state;
  free(g_line);
  g_line = NULL;
  return 0;
}

static struct kw_logfmt *compile_ok(const char *fmt, enum kw_logfmt_escape esc) {
  struct kw_logfmt *lf = NULL;
  char err[256];
  int rc = kw_logfmt_compile(fmt, esc, &lf, err, sizeof(err));
  if (rc != 0)
    fail_msg("compile failed (%d): %s\nformat: %s", rc, err, fmt);
  assert_non_null(lf);
  return lf;
}

/* Parses n bytes of s (copied to an exact-size buffer that lives until the next call). */
static int parse_n(struct kw_logfmt *lf, const char *s, size_t n, struct kw_rec *rec) {
  free(g_line);
  g_line = malloc(n > 0 ? n : 1);
  assert_non_null(g_line);
  memcpy(g_line, s, n);
  g_len = n;
  g_err[0] = '\0';
  return kw_logfmt_parse(lf, g_line, n, rec, g_err, sizeof(g_err));
}

static int parse(struct kw_logfmt *lf, const char *s, struct kw_rec *rec) {
  return parse_n(lf, s, strlen(s), rec);
}

static void parse_ok(struct kw_logfmt *lf, const char *s, struct kw_rec *rec) {
  int rc = parse(lf, s, rec);
  if (rc != 0)
    fail_msg("parse failed (%d): %s\nline: %s", rc, g_err, s);
}

#define assert_kw(s, expect) assert_kw_at((s), (expect), __FILE__, __LINE__)

static void assert_kw_at(struct kw_str s, const char *expect, const char *file, int line) {
  if (expect == NULL) {
    if (s.p != NULL || s.n != 0)
      fail_msg("%s:%d: expected absent, got '%.*s'", file, line, (int)s.n,
               s.p != NULL ? s.p : "");
    return;
  }
  if (s.p == NULL || s.n != strlen(expect) || memcmp(s.p, expect, s.n) != 0)
    fail_msg("%s:%d: expected '%s', got '%.*s' (%zu bytes)", file, line, expect, (int)s.n,
             s.p != NULL ? s.p : "(null)", s.n);
}

static int in_line(struct kw_str s) {
  return s.p != NULL && (uintptr_t)s.p >= (uintptr_t)g_line &&
         (uintptr_t)s.p + s.n <= (uintptr_t)g_line + g_len;
}

static struct kw_str hdr(const struct kw_rec *rec, const char *name) {
  for (size_t i = 0; i < rec->nhdrs; i++)
    if (rec->hdrs[i].name.n == strlen(name) &&
        memcmp(rec->hdrs[i].name.p, name, rec->hdrs[i].name.n) == 0)
      return rec->hdrs[i].value;
  return KW_STR_NULL;
}

static void assert_contains(const char *hay, const char *needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("'%s' does not contain '%s'", hay, needle);
}

static const char KEYED_LINE[] =
    "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET /api/card/12?api_key=abc HTTP/1.1\" "
    "200 5123 \"-\" \"python-requests/2.31.0\" \"mb_AbCdEfGhIjKlMnOpQrStUvWxYz012345\" 0.018";

/* ---------------------------------------------------------------- built-ins */

static void test_builtin_names(void **state) {
  (void)state;
  assert_string_equal(kw_logfmt_builtin("combined"),
                      "$remote_addr - $remote_user [$time_local] \"$request\" $status "
                      "$body_bytes_sent \"$http_referer\" \"$http_user_agent\"");
  assert_string_equal(kw_logfmt_builtin("keyed"),
                      "$remote_addr - $remote_user [$time_local] \"$request\" $status "
                      "$body_bytes_sent \"$http_referer\" \"$http_user_agent\" "
                      "\"$http_x_api_key\" $request_time");
  assert_null(kw_logfmt_builtin("main"));
  assert_null(kw_logfmt_builtin(""));
  assert_null(kw_logfmt_builtin(NULL));
}

static void test_combined_line(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("combined"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  parse_ok(lf,
           "203.0.113.7 - alice [22/Nov/2026:05:12:06 +0000] \"GET /api/card/12?api_key=abc "
           "HTTP/1.1\" 200 5123 \"https://bi.example.com/q/1\" \"python-requests/2.31.0\"",
           &rec);
  assert_kw(rec.addr, "203.0.113.7");
  assert_int_equal(rec.ts_us, T_2026_11_22_051206 * 1000000);
  assert_kw(rec.method, "GET");
  assert_kw(rec.uri, "/api/card/12?api_key=abc");
  assert_kw(rec.proto, "HTTP/1.1");
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.resp_bytes, 5123);
  assert_int_equal(rec.req_bytes, -1);
  assert_int_equal(rec.latency_us, -1);
  assert_kw(rec.referer, "https://bi.example.com/q/1");
  assert_kw(rec.user_agent, "python-requests/2.31.0");
  assert_kw(rec.host, NULL);
  assert_kw(rec.key, NULL);
  assert_kw(rec.key_id, NULL);
  assert_int_equal(rec.nhdrs, 0); /* $remote_user is skipped */
  /* common case is zero-copy */
  assert_true(in_line(rec.addr) && in_line(rec.uri) && in_line(rec.user_agent));
  kw_logfmt_destroy(lf);
}

static void test_keyed_line(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("keyed"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  parse_ok(lf, KEYED_LINE, &rec);
  assert_kw(rec.addr, "203.0.113.7");
  assert_int_equal(rec.ts_us, T_2026_11_22_051206 * 1000000);
  assert_kw(rec.method, "GET");
  assert_kw(rec.uri, "/api/card/12?api_key=abc");
  assert_kw(rec.proto, "HTTP/1.1");
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.resp_bytes, 5123);
  assert_kw(rec.referer, NULL); /* "-" */
  assert_kw(rec.user_agent, "python-requests/2.31.0");
  assert_int_equal(rec.latency_us, 18000);
  assert_int_equal(rec.nhdrs, 1);
  assert_kw(rec.hdrs[0].name, "x-api-key");
  assert_kw(rec.hdrs[0].value, "mb_AbCdEfGhIjKlMnOpQrStUvWxYz012345");
  assert_true(in_line(rec.hdrs[0].value));

  /* the same parser, a second line: absent key, no body, time zone offset */
  parse_ok(lf,
           "198.51.100.2 - - [22/Nov/2026:05:12:06 -0700] \"POST /api/dataset HTTP/2.0\" "
           "401 - \"-\" \"-\" \"-\" 1.5",
           &rec);
  assert_kw(rec.addr, "198.51.100.2");
  assert_int_equal(rec.ts_us, (T_2026_11_22_051206 + 7 * 3600) * 1000000);
  assert_kw(rec.method, "POST");
  assert_kw(rec.proto, "HTTP/2.0");
  assert_int_equal(rec.status, 401);
  assert_int_equal(rec.resp_bytes, -1);
  assert_kw(rec.user_agent, NULL);
  assert_int_equal(rec.nhdrs, 0); /* "-" key: absent */
  assert_int_equal(rec.latency_us, 1500000);
  kw_logfmt_destroy(lf);
}

static void test_ipv6_client(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("keyed"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  parse_ok(lf,
           "2001:db8::a:1 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" 204 0 \"-\" "
           "\"curl/8.5.0\" \"-\" 0.000",
           &rec);
  assert_kw(rec.addr, "2001:db8::a:1");
  assert_int_equal(rec.status, 204);
  assert_int_equal(rec.resp_bytes, 0);
  assert_int_equal(rec.latency_us, 0);
  assert_kw(rec.uri, "/");
  kw_logfmt_destroy(lf);
}

/* ---------------------------------------------------------------- directive text */

static void test_directive_paste_json(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  /* escape=json in the text overrides the argument */
  lf = compile_ok("log_format keyed escape=json\n"
                  "    '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
                  "    '$status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" '\n"
                  "    '\"$http_x_api_key\" $request_time';\n",
                  KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf,
           "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET /x HTTP/1.1\" 200 12 \"\" "
           "\"Mozilla/5.0 \\\"quoted\\\" \\u0001 end\" \"mb_key\\\\1\" 0.250",
           &rec);
  assert_kw(rec.user_agent, "Mozilla/5.0 \"quoted\" \x01 end");
  assert_false(in_line(rec.user_agent)); /* decoded into scratch */
  assert_kw(rec.referer, NULL);          /* json: unset is "" */
  assert_kw(hdr(&rec, "x-api-key"), "mb_key\\1");
  assert_int_equal(rec.latency_us, 250000);
  assert_int_equal(rec.status, 200);
  kw_logfmt_destroy(lf);
}

static void test_directive_double_quoted_and_comments(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  lf = compile_ok("log_format main   # the usual\n"
                  "  \"$remote_addr [$time_local] \\\"$request\\\" \"\n"
                  "  $status;  # trailing comment\n",
                  KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "10.0.0.1 [22/Nov/2026:05:12:06 +0000] \"DELETE /api/api-key/7 HTTP/1.1\" 204",
           &rec);
  assert_kw(rec.addr, "10.0.0.1");
  assert_kw(rec.method, "DELETE");
  assert_kw(rec.uri, "/api/api-key/7");
  assert_int_equal(rec.status, 204);
  kw_logfmt_destroy(lf);

  /* a bare single-quoted piece, as copied from the middle of a config */
  lf = compile_ok("'$remote_addr $status'", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "10.0.0.2 503", &rec);
  assert_kw(rec.addr, "10.0.0.2");
  assert_int_equal(rec.status, 503);
  kw_logfmt_destroy(lf);

  /* escape=none without log_format */
  lf = compile_ok("escape=none '\"$http_user_agent\" $status'", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "\"a \\x22 b\" 200", &rec);
  assert_kw(rec.user_agent, "a \\x22 b"); /* none: no decoding */
  kw_logfmt_destroy(lf);
}

static void test_bare_format_is_literal(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  /* starts with '"' but is not a directive: the quotes are part of the line */
  lf = compile_ok("\"$request\" $status \"$http_user_agent\"\n", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "\"GET /a HTTP/1.1\" 200 \"ua\"", &rec);
  assert_kw(rec.method, "GET");
  assert_kw(rec.uri, "/a");
  assert_int_equal(rec.status, 200);
  assert_kw(rec.user_agent, "ua");
  kw_logfmt_destroy(lf);
}

/* ---------------------------------------------------------------- escapes */

static void test_default_escapes(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("keyed"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  /* nginx writes '"' as \x22, '\' as \x5C, UTF-8 bytes as \xHH each */
  parse_ok(lf,
           "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET /caf\\xC3\\xA9 HTTP/1.1\" 200 1 "
           "\"-\" \"Evil \\x22agent\\x22 \\x5C \\xE2\\x80\\x94 \\xZZ \\x4\" \"k\\x5Cey\\x\" 0.1",
           &rec);
  assert_kw(rec.user_agent, "Evil \"agent\" \\ \xE2\x80\x94 \\xZZ \\x4");
  assert_kw(rec.uri, "/caf\xC3\xA9");
  assert_kw(hdr(&rec, "x-api-key"), "k\\ey\\x"); /* short \x kept literally */
  assert_int_equal(rec.latency_us, 100000);
  kw_logfmt_destroy(lf);
}

static void test_default_quote_in_user_agent(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("combined"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  /* a UA of `x" "y` (trying to forge a field) as nginx logs it */
  parse_ok(lf,
           "203.0.113.9 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" 200 3 \"-\" "
           "\"x\\x22 \\x22y\"",
           &rec);
  assert_kw(rec.user_agent, "x\" \"y");
  assert_int_equal(rec.resp_bytes, 3);
  kw_logfmt_destroy(lf);
}

static void test_json_escapes(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  lf = compile_ok("{\"ua\":\"$http_user_agent\",\"ref\":\"$http_referer\",\"st\":$status}",
                  KW_LOGFMT_ESC_JSON);
  parse_ok(lf,
           "{\"ua\":\"a\\\"b\\\\c\\/d\\n\\r\\t\\b\\f\\u0001\\u00e9\\ud83d\\ude00 \xC3\xA9\","
           "\"ref\":\"\\ud83d \\q \\u12\",\"st\":200}",
           &rec);
  assert_kw(rec.user_agent, "a\"b\\c/d\n\r\t\b\f\x01\xC3\xA9\xF0\x9F\x98\x80 \xC3\xA9");
  assert_kw(rec.referer, "\\ud83d \\q \\u12"); /* lone surrogate, bad escapes: kept */
  assert_int_equal(rec.status, 200);
  kw_logfmt_destroy(lf);
}

static void test_json_injection_is_not_a_field(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  lf = compile_ok("{\"ua\":\"$http_user_agent\",\"key\":\"$http_x_api_key\"}",
                  KW_LOGFMT_ESC_JSON);
  /* the UA tries to end itself and plant a key; json escaping makes its quotes \" */
  parse_ok(lf,
           "{\"ua\":\"x\\\",\\\"key\\\":\\\"stolen\",\"key\":\"real\"}", &rec);
  assert_kw(rec.user_agent, "x\",\"key\":\"stolen");
  assert_kw(hdr(&rec, "x-api-key"), "real");

  /* a value ending in a backslash is written \\ before the closing quote */
  parse_ok(lf, "{\"ua\":\"C:\\\\\",\"key\":\"k\"}", &rec);
  assert_kw(rec.user_agent, "C:\\");
  assert_kw(hdr(&rec, "x-api-key"), "k");

  /* truncated inside an escaped quote at the very end */
  assert_int_equal(parse(lf, "{\"ua\":\"x\",\"key\":\"k\\\"}", &rec), KW_EPARSE);
  kw_logfmt_destroy(lf);
}

static void test_escape_none_raw_quote(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("combined"), KW_LOGFMT_ESC_NONE);
  struct kw_rec rec;
  (void)state;

  parse_ok(lf,
           "203.0.113.9 - - [22/Nov/2026:05:12:06 +0000] \"GET /a\\b HTTP/1.1\" 200 3 "
           "\"-\" \"Mozilla \"quoted\" x\"",
           &rec);
  assert_kw(rec.uri, "/a\\b");
  assert_kw(rec.user_agent, "Mozilla \"quoted\" x");
  assert_true(in_line(rec.user_agent));
  kw_logfmt_destroy(lf);
}

/* ---------------------------------------------------------------- variables */

static void test_every_variable_class(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  lf = compile_ok("$bytes_sent|$body_bytes_sent|$realip_remote_addr|$remote_addr|"
                  "$http_x_forwarded_for|$request_method|$request_uri|$server_protocol|"
                  "$status|$request_length|$upstream_response_time|$request_time|"
                  "$server_name|$http_host|$host|$http_user_agent|$http_referer|"
                  "$http_Authorization|$http_x_api_key|$arg_api_key|$cookie_session|"
                  "$remote_user|$connection|$pipe|$gzip_ratio|$foo_bar|${binary_remote_addr}|"
                  "${sent_http_x_api_key}|$time_local",
                  KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf,
           "9000|8000|10.1.1.1|198.51.100.7|198.51.100.7, 10.0.0.1|PUT|/api/card/9?api_key=q|"
           "HTTP/1.1|201|512|0.500|0.750|"
           "srv.internal|api.example.com:8443|api.example.com|ua/1|https://r/|"
           "Bearer mb_tok|mb_hdrkey|mb_argkey|sess=SECRET|"
           "bob|42|p|1.5|whatever|\\x01\\x02|resp-key|22/Nov/2026:05:12:06 +0000",
           &rec);
  assert_int_equal(rec.resp_bytes, 8000);      /* body_bytes_sent over bytes_sent */
  assert_kw(rec.addr, "198.51.100.7");         /* remote_addr over realip_remote_addr */
  assert_kw(rec.method, "PUT");
  assert_kw(rec.uri, "/api/card/9?api_key=q");
  assert_kw(rec.proto, "HTTP/1.1");
  assert_int_equal(rec.status, 201);
  assert_int_equal(rec.req_bytes, 512);
  assert_int_equal(rec.latency_us, 750000);    /* request_time over upstream time */
  assert_kw(rec.host, "api.example.com");      /* $host over $http_host, $server_name */
  assert_kw(rec.user_agent, "ua/1");
  assert_kw(rec.referer, "https://r/");
  assert_int_equal(rec.ts_us, T_2026_11_22_051206 * 1000000);
  assert_int_equal(rec.nhdrs, 4);
  assert_kw(hdr(&rec, "x-forwarded-for"), "198.51.100.7, 10.0.0.1");
  assert_kw(hdr(&rec, "authorization"), "Bearer mb_tok");
  assert_kw(hdr(&rec, "x-api-key"), "mb_hdrkey"); /* not $sent_http_x_api_key */
  assert_kw(hdr(&rec, "arg:api_key"), "mb_argkey");
  assert_kw(hdr(&rec, "cookie"), NULL);
  kw_logfmt_destroy(lf);
}

static void test_fallbacks_when_preferred_is_dash(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  lf = compile_ok("$host|$server_name|$remote_addr|$realip_remote_addr|$body_bytes_sent|"
                  "$bytes_sent|$request|$request_method $request_uri $server_protocol",
                  KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "-|api.example.com|-|192.0.2.1|-|77|-|GET /p?a=1 HTTP/1.0", &rec);
  assert_kw(rec.host, "api.example.com");
  assert_kw(rec.addr, "192.0.2.1");
  assert_int_equal(rec.resp_bytes, 77);
  assert_kw(rec.method, "GET");
  assert_kw(rec.uri, "/p?a=1");
  assert_kw(rec.proto, "HTTP/1.0");
  kw_logfmt_destroy(lf);
}

static void test_timestamps(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  lf = compile_ok("$time_local $time_iso8601 $msec $status", KW_LOGFMT_ESC_DEFAULT);
  /* $msec wins (ms precision), even though $time_local comes first */
  parse_ok(lf, "22/Nov/2026:05:12:06 +0000 2026-11-22T05:12:06+00:00 1795324326.123 200",
           &rec);
  assert_int_equal(rec.ts_us, T_2026_11_22_051206 * 1000000 + 123000);
  assert_int_equal(rec.status, 200);
  kw_logfmt_destroy(lf);

  lf = compile_ok("$time_iso8601 $status", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "2026-11-22T05:12:06+01:00 200", &rec);
  assert_int_equal(rec.ts_us, (T_2026_11_22_051206 - 3600) * 1000000);
  assert_int_equal(parse(lf, "2026-11-22 garbage 200", &rec), KW_EPARSE);
  assert_contains(g_err, "column 1");
  assert_contains(g_err, "$time_iso8601");
  kw_logfmt_destroy(lf);

  lf = compile_ok("[$msec] $status", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "[1795324326.004] 200", &rec);
  assert_int_equal(rec.ts_us, T_2026_11_22_051206 * 1000000 + 4000);
  assert_int_equal(parse(lf, "[17953x4326.004] 200", &rec), KW_EPARSE);
  assert_contains(g_err, "column 2");
  kw_logfmt_destroy(lf);
}

static void test_upstream_response_time_list(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  lf = compile_ok("$status $upstream_response_time \"$http_user_agent\"", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "502 0.012, 0.034 : 0.100 \"ua\"", &rec);
  assert_int_equal(rec.latency_us, 146000); /* sum of tries and redirects */
  assert_kw(rec.user_agent, "ua");
  parse_ok(lf, "200 -, 0.034 \"ua\"", &rec);
  assert_int_equal(rec.latency_us, 34000);
  parse_ok(lf, "200 - \"ua\"", &rec);
  assert_int_equal(rec.latency_us, -1);
  assert_int_equal(parse(lf, "200 0.0x1 \"ua\"", &rec), KW_EPARSE);
  assert_contains(g_err, "$upstream_response_time");
  assert_int_equal(parse(lf, "200 0.1,, 0.2 \"ua\"", &rec), KW_EPARSE);
  kw_logfmt_destroy(lf);

  /* $request_time wins over the upstream list even when it comes later */
  lf = compile_ok("$upstream_response_time $request_time", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "0.012, 0.034 0.050", &rec);
  assert_int_equal(rec.latency_us, 50000);
  kw_logfmt_destroy(lf);
}

static void test_uri_and_args(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  /* separate fields: joined in scratch */
  lf = compile_ok("\"$uri\" \"$args\" $status", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "\"/api/card/1\" \"x=1&api_key=k\" 200", &rec);
  assert_kw(rec.uri, "/api/card/1?x=1&api_key=k");
  assert_false(in_line(rec.uri));
  parse_ok(lf, "\"/api/card/1\" \"-\" 200", &rec);
  assert_kw(rec.uri, "/api/card/1");
  assert_true(in_line(rec.uri));
  kw_logfmt_destroy(lf);

  /* $uri?$args: already contiguous in the line */
  lf = compile_ok("$uri?$query_string $status", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "/p?a=1 200", &rec);
  assert_kw(rec.uri, "/p?a=1");
  assert_true(in_line(rec.uri));
  kw_logfmt_destroy(lf);

  /* nginx's $uri$is_args$args idiom */
  lf = compile_ok("$uri$is_args$args $status", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "/p?a=1&b=2 200", &rec);
  assert_kw(rec.uri, "/p?a=1&b=2");
  parse_ok(lf, "/p- 200", &rec); /* no query: "" + "-" for the unset $args */
  assert_kw(rec.uri, "/p");
  kw_logfmt_destroy(lf);

  /* $request_uri is preferred over $uri + $args */
  lf = compile_ok("$uri $args $request_uri", KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, "/normalised a=1 /raw//path?a=1", &rec);
  assert_kw(rec.uri, "/raw//path?a=1");
  kw_logfmt_destroy(lf);
}

static void test_request_line_forms(void **state) {
  struct kw_logfmt *lf = compile_ok("\"$request\" $status", KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  parse_ok(lf, "\"GET /old\" 200", &rec); /* HTTP/0.9 */
  assert_kw(rec.method, "GET");
  assert_kw(rec.uri, "/old");
  assert_kw(rec.proto, NULL);

  parse_ok(lf, "\"CONNECT db.example.com:443 HTTP/1.1\" 200", &rec);
  assert_kw(rec.method, "CONNECT");
  assert_kw(rec.uri, "db.example.com:443");

  parse_ok(lf, "\"-\" 408", &rec); /* no request at all */
  assert_kw(rec.method, NULL);
  assert_kw(rec.uri, NULL);
  assert_int_equal(rec.status, 408);

  /* a TLS ClientHello sent to a plain-text port */
  assert_int_equal(parse(lf, "\"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03\" 400",
                         &rec),
                   KW_EPARSE);
  assert_contains(g_err, "column 2");
  assert_contains(g_err, "$request");
  assert_int_equal(parse(lf, "\"get / HTTP/1.1\" 400", &rec), KW_EPARSE);
  assert_int_equal(parse(lf, "\"GET\" 400", &rec), KW_EPARSE);
  assert_int_equal(parse(lf, "\"GET  \" 400", &rec), KW_EPARSE);
  kw_logfmt_destroy(lf);
}

static void test_unknown_variables_are_skipped(void **state) {
  struct kw_logfmt *lf;
  struct kw_rec rec;
  char err[128];
  (void)state;

  assert_int_equal(kw_logfmt_compile("$foo_bar $status ${ssl_cipher}:$remote_addr",
                                     KW_LOGFMT_ESC_DEFAULT, &lf, err, sizeof(err)),
                   0);
  parse_ok(lf, "anything 200 ECDHE-RSA:10.9.8.7", &rec);
  assert_int_equal(rec.status, 200);
  assert_kw(rec.addr, "10.9.8.7");
  assert_int_equal(rec.nhdrs, 0);
  kw_logfmt_destroy(lf);
}

static void test_header_limit(void **state) {
  char fmt[1024];
  char line[1024];
  size_t fo = 0, lo = 0;
  struct kw_logfmt *lf;
  struct kw_rec rec;
  (void)state;

  for (int i = 0; i < 20; i++) {
    fo += (size_t)snprintf(fmt + fo, sizeof(fmt) - fo, "%s$http_x_h%d", i ? " " : "", i);
    lo += (size_t)snprintf(line + lo, sizeof(line) - lo, "%sv%d", i ? " " : "", i);
  }
  lf = compile_ok(fmt, KW_LOGFMT_ESC_DEFAULT);
  parse_ok(lf, line, &rec);
  assert_int_equal(rec.nhdrs, KW_REC_MAX_HDRS);
  assert_kw(rec.hdrs[0].name, "x-h0");
  assert_kw(rec.hdrs[15].name, "x-h15");
  assert_kw(rec.hdrs[15].value, "v15");
  kw_logfmt_destroy(lf);
}

/* ---------------------------------------------------------------- malformed lines */

static void test_malformed_lines(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("keyed"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  static const char garbage[] = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\"\0\"\xff [";
  (void)state;

  /* truncated in the user agent */
  assert_int_equal(parse_n(lf, KEYED_LINE, 120, &rec), KW_EPARSE);
  assert_contains(g_err, "expected '\" \"'");
  assert_contains(g_err, "column");

  /* wrong literal: '(' instead of '[' */
  assert_int_equal(parse(lf, "203.0.113.7 - - (22/Nov/2026:05:12:06 +0000) \"GET / HTTP/1.1\" "
                             "200 1 \"-\" \"ua\" \"-\" 0.1",
                         &rec),
                   KW_EPARSE);
  assert_string_equal(g_err, "expected ' [' at column 16");

  /* non-numeric status */
  assert_int_equal(parse(lf, "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" "
                             "2x0 1 \"-\" \"ua\" \"-\" 0.1",
                         &rec),
                   KW_EPARSE);
  assert_string_equal(g_err, "column 63: $status is not a number up to 999");
  assert_int_equal(parse(lf, "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" "
                             "1000 1 \"-\" \"ua\" \"-\" 0.1",
                         &rec),
                   KW_EPARSE);
  assert_int_equal(parse(lf, "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" "
                             "200 12k \"-\" \"ua\" \"-\" 0.1",
                         &rec),
                   KW_EPARSE);
  assert_contains(g_err, "$body_bytes_sent");
  assert_int_equal(parse(lf, "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" "
                             "200 1 \"-\" \"ua\" \"-\" 0.1s",
                         &rec),
                   KW_EPARSE);
  assert_contains(g_err, "$request_time");

  /* invalid time */
  assert_int_equal(parse(lf, "203.0.113.7 - - [22/Foo/2026:05:12:06 +0000] \"GET / HTTP/1.1\" "
                             "200 1 \"-\" \"ua\" \"-\" 0.1",
                         &rec),
                   KW_EPARSE);
  assert_contains(g_err, "$time_local");

  /* empty, whitespace, a combined line given to keyed, binary garbage */
  assert_int_equal(parse(lf, "", &rec), KW_EPARSE);
  assert_string_equal(g_err, "empty line");
  assert_int_equal(parse(lf, "\r", &rec), KW_EPARSE);
  assert_int_equal(parse(lf, "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" "
                             "200 1 \"-\" \"ua\"",
                         &rec),
                   KW_EPARSE);
  assert_int_equal(parse_n(lf, garbage, sizeof(garbage) - 1, &rec), KW_EPARSE);

  /* a keyed line given to combined: the line must end with the closing quote */
  {
    struct kw_logfmt *comb = compile_ok(kw_logfmt_builtin("combined"), KW_LOGFMT_ESC_DEFAULT);
    assert_int_equal(parse(comb, KEYED_LINE, &rec), KW_EPARSE);
    assert_contains(g_err, "end of the line");
    kw_logfmt_destroy(comb);
  }

  /* NULL arguments */
  assert_int_equal(kw_logfmt_parse(NULL, "x", 1, &rec, NULL, 0), KW_EINVAL);
  assert_int_equal(kw_logfmt_parse(lf, NULL, 1, &rec, NULL, 0), KW_EINVAL);
  assert_int_equal(kw_logfmt_parse(lf, NULL, 0, &rec, NULL, 0), KW_EPARSE);
  kw_logfmt_destroy(lf);
}

static void test_long_lines(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("keyed"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  size_t n = 70000;
  char *big = malloc(n + 256);
  size_t o;
  (void)state;

  assert_non_null(big);
  /* 70000 bytes of one letter: no literal anywhere */
  memset(big, 'A', n);
  assert_int_equal(parse_n(lf, big, n, &rec), KW_EPARSE);
  /* 70000 bytes of quotes, backslashes and spaces */
  for (size_t i = 0; i < n; i++)
    big[i] = "\" \\["[i % 4];
  assert_int_equal(parse_n(lf, big, n, &rec), KW_EPARSE);

  /* a valid line with a 65 KiB user agent full of escapes */
  o = (size_t)snprintf(big, n, "%s",
                       "203.0.113.7 - - [22/Nov/2026:05:12:06 +0000] \"GET / HTTP/1.1\" 200 1 "
                       "\"-\" \"");
  for (size_t i = 0; i < 16384; i++) {
    memcpy(big + o, "\\x22", 4);
    o += 4;
  }
  o += (size_t)snprintf(big + o, n + 256 - o, "\" \"k\\x5C\" 0.001");
  parse_ok(lf, big, &rec);
  assert_int_equal(rec.user_agent.n, 16384);
  assert_int_equal(rec.user_agent.p[0], '"');
  assert_int_equal(rec.user_agent.p[16383], '"');
  assert_kw(hdr(&rec, "x-api-key"), "k\\");
  assert_int_equal(rec.latency_us, 1000);
  (void)o;
  free(big);
  kw_logfmt_destroy(lf);
}

static void test_scratch_reuse_across_lines(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("keyed"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  char line[8192], ua[4096], expect[2048];
  (void)state;

  /* growing then shrinking lines; two decoded fields per line must both stay intact */
  for (int round = 0; round < 2; round++) {
    for (size_t k = 1; k < 1000; k = k * 3 + 1) {
      size_t kk = round == 0 ? k : 1000 - k, uo = 0;
      for (size_t i = 0; i < kk; i++) {
        memcpy(ua + uo, "\\x41", 4);
        uo += 4;
        expect[i] = 'A';
      }
      ua[uo] = '\0';
      expect[kk] = '\0';
      snprintf(line, sizeof(line),
               "10.0.0.1 - - [22/Nov/2026:05:12:06 +0000] \"GET /%zu HTTP/1.1\" 200 1 \"-\" "
               "\"%s\" \"key\\x22%zu\" 0.001",
               kk, ua, kk);
      parse_ok(lf, line, &rec);
      assert_kw(rec.user_agent, expect);
      snprintf(ua, sizeof(ua), "key\"%zu", kk);
      assert_kw(hdr(&rec, "x-api-key"), ua);
    }
  }
  kw_logfmt_destroy(lf);
}

static void test_crlf_and_ops_table(void **state) {
  struct kw_logfmt *lf = compile_ok(kw_logfmt_builtin("keyed"), KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  char line[sizeof(KEYED_LINE) + 1];
  char err[64];
  (void)state;

  memcpy(line, KEYED_LINE, sizeof(KEYED_LINE) - 1);
  line[sizeof(KEYED_LINE) - 1] = '\r';
  assert_string_equal(kw_logfmt_ops.kind, "nginx");
  assert_int_equal(kw_logfmt_ops.parse(lf, line, sizeof(KEYED_LINE), &rec, err, sizeof(err)),
                   0);
  assert_int_equal(rec.latency_us, 18000); /* not "0.018\r" */
  assert_int_equal(kw_logfmt_ops.parse(lf, "x", 1, &rec, err, sizeof(err)), KW_EPARSE);
  assert_string_equal(err, "expected ' - ' at column 2 (end of line)");
  kw_logfmt_ops.destroy(lf);
  kw_logfmt_destroy(NULL);
}

/* ---------------------------------------------------------------- compile errors */

static void expect_compile_error(const char *fmt, const char *msg) {
  struct kw_logfmt *lf = (struct kw_logfmt *)&lf; /* must be reset to NULL */
  char err[256];
  int rc = kw_logfmt_compile(fmt, KW_LOGFMT_ESC_DEFAULT, &lf, err, sizeof(err));
  if (rc != KW_EINVAL)
    fail_msg("expected KW_EINVAL for <%s>, got %d", fmt, rc);
  assert_null(lf);
  if (strcmp(err, msg) != 0)
    fail_msg("for <%s>\n  expected: %s\n  got:      %s", fmt, msg, err);
}

static void test_compile_errors(void **state) {
  (void)state;
  expect_compile_error("log_format x '$remote_addr - $status",
                       "column 14: unterminated single quote");
  expect_compile_error("$remote_addr $ x", "column 14: '$' without a variable name");
  expect_compile_error("$remote_addr $", "column 14: '$' without a variable name");
  expect_compile_error("$status$body_bytes_sent",
                       "column 8: $body_bytes_sent follows $status with no text between "
                       "them, so the line cannot be split");
  expect_compile_error("log_format x '$status' '$body_bytes_sent';",
                       "column 25: $body_bytes_sent follows $status with no text between "
                       "them, so the line cannot be split");
  expect_compile_error("[${time_local] $status", "column 2: missing '}' after '${time_local'");
  expect_compile_error("log_format x escape=xml '$status';",
                       "column 21: unknown escape 'xml' (expected default, json or none)");
  expect_compile_error("log_format '$status';",
                       "column 12: log_format needs a name before the format");
  expect_compile_error("log_format x;", "column 13: no format string");
  expect_compile_error("log_format x '$status'; '$host'", "column 25: unexpected text after ';'");
  expect_compile_error("log_format x '$status''$host';",
                       "column 23: expected a space or ';' after the closing quote");
  expect_compile_error("log_format x\n  '$remote_addr'\n  '$ x';",
                       "line 3, column 4: '$' without a variable name");
  expect_compile_error("", "column 1: empty format");
  expect_compile_error("\n", "column 1: empty format");
  {
    struct kw_logfmt *lf = NULL;
    assert_int_equal(kw_logfmt_compile(NULL, KW_LOGFMT_ESC_DEFAULT, &lf, NULL, 0), KW_EINVAL);
    assert_int_equal(kw_logfmt_compile("$status", KW_LOGFMT_ESC_DEFAULT, NULL, NULL, 0),
                     KW_EINVAL);
    assert_int_equal(kw_logfmt_compile("$status", (enum kw_logfmt_escape)7, &lf, NULL, 0),
                     KW_EINVAL);
  }
}

static void test_variable_names_end_at_piece_boundary(void **state) {
  struct kw_logfmt *lf = compile_ok("'$status' '_x'", KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  /* nginx compiles each piece on its own: $status then the text "_x", not $status_x */
  parse_ok(lf, "200_x", &rec);
  assert_int_equal(rec.status, 200);
  kw_logfmt_destroy(lf);
}

static void test_format_without_variables(void **state) {
  struct kw_logfmt *lf = compile_ok("static text", KW_LOGFMT_ESC_DEFAULT);
  struct kw_rec rec;
  (void)state;

  parse_ok(lf, "static text", &rec);
  assert_int_equal(rec.status, 0);
  assert_int_equal(parse(lf, "static text!", &rec), KW_EPARSE);
  assert_int_equal(parse(lf, "static", &rec), KW_EPARSE);
  kw_logfmt_destroy(lf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_builtin_names, teardown),
      cmocka_unit_test_teardown(test_combined_line, teardown),
      cmocka_unit_test_teardown(test_keyed_line, teardown),
      cmocka_unit_test_teardown(test_ipv6_client, teardown),
      cmocka_unit_test_teardown(test_directive_paste_json, teardown),
      cmocka_unit_test_teardown(test_directive_double_quoted_and_comments, teardown),
      cmocka_unit_test_teardown(test_bare_format_is_literal, teardown),
      cmocka_unit_test_teardown(test_default_escapes, teardown),
      cmocka_unit_test_teardown(test_default_quote_in_user_agent, teardown),
      cmocka_unit_test_teardown(test_json_escapes, teardown),
      cmocka_unit_test_teardown(test_json_injection_is_not_a_field, teardown),
      cmocka_unit_test_teardown(test_escape_none_raw_quote, teardown),
      cmocka_unit_test_teardown(test_every_variable_class, teardown),
      cmocka_unit_test_teardown(test_fallbacks_when_preferred_is_dash, teardown),
      cmocka_unit_test_teardown(test_timestamps, teardown),
      cmocka_unit_test_teardown(test_upstream_response_time_list, teardown),
      cmocka_unit_test_teardown(test_uri_and_args, teardown),
      cmocka_unit_test_teardown(test_request_line_forms, teardown),
      cmocka_unit_test_teardown(test_unknown_variables_are_skipped, teardown),
      cmocka_unit_test_teardown(test_header_limit, teardown),
      cmocka_unit_test_teardown(test_malformed_lines, teardown),
      cmocka_unit_test_teardown(test_long_lines, teardown),
      cmocka_unit_test_teardown(test_scratch_reuse_across_lines, teardown),
      cmocka_unit_test_teardown(test_crlf_and_ops_table, teardown),
      cmocka_unit_test_teardown(test_compile_errors, teardown),
      cmocka_unit_test_teardown(test_variable_names_end_at_piece_boundary, teardown),
      cmocka_unit_test_teardown(test_format_without_variables, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
