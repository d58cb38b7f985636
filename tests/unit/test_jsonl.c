/* test_jsonl.c — JSON-lines parser: presets against their fixtures, the mapping syntax,
 * value conversions, malformed input, string lifetimes, preset guessing.
 *
 * Fixtures are read from $KW_FIXTURES/jsonl (ctest sets it), else tests/fixtures/jsonl
 * relative to the working directory.  Single-threaded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/jsonl.h"
#include "sidecar/err.h"

#define MBKEY "mb_3q2+7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM/I="
#define KONGKEY "Zx8Kq2LmN4pR7sT1vW3yB5dF6gH9jJ0k"
#define T_20251103_091502 1762161302LL /* 2025-11-03T09:15:02Z, from Python's datetime */
#define T_1700000000 1700000000LL      /* 2023-11-14T22:13:20Z */

/* ---- helpers ------------------------------------------------------------------------- */

static void check_str(struct kw_str s, const char *want, const char *expr, int line) {
  if (want == NULL) {
    if (s.p != NULL) {
      print_error("line %d: %s = '%.*s', want absent\n", line, expr, (int)s.n, s.p);
      fail();
    }
    return;
  }
  if (s.p == NULL || s.n != strlen(want) || memcmp(s.p, want, s.n) != 0) {
    print_error("line %d: %s = '%.*s', want '%s'\n", line, expr, s.p ? (int)s.n : 6,
                s.p ? s.p : "<null>", want);
    fail();
  }
}
#define ASSERT_STR(s, want) check_str((s), (want), #s, __LINE__)

static const struct kw_hdr *find_hdr(const struct kw_rec *rec, const char *name) {
  for (size_t i = 0; i < rec->nhdrs; i++)
    if (rec->hdrs[i].name.n == strlen(name) &&
        memcmp(rec->hdrs[i].name.p, name, rec->hdrs[i].name.n) == 0)
      return &rec->hdrs[i];
  return NULL;
}

static void check_hdr(const struct kw_rec *rec, const char *name, const char *want, int line) {
  const struct kw_hdr *h = find_hdr(rec, name);
  if (want == NULL) {
    if (h != NULL) {
      print_error("line %d: header %s present, want absent\n", line, name);
      fail();
    }
    return;
  }
  if (h == NULL) {
    print_error("line %d: header %s absent, want '%s'\n", line, name, want);
    fail();
  }
  check_str(h->value, want, name, line);
}
#define ASSERT_HDR(rec, name, want) check_hdr((rec), (name), (want), __LINE__)

struct lines {
  char *buf;
  char *line[16];
  size_t len[16];
  size_t n;
};

static void load_fixture(const char *file, struct lines *l) {
  const char *dir = getenv("KW_FIXTURES");
  char path[512];
  FILE *f;
  long size;

  snprintf(path, sizeof(path), "%s/jsonl/%s", dir ? dir : "tests/fixtures", file);
  f = fopen(path, "rb");
  if (f == NULL) {
    print_error("cannot open fixture %s (set KW_FIXTURES)\n", path);
    fail();
  }
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  size = ftell(f);
  assert_true(size > 0);
  rewind(f);
  l->buf = malloc((size_t)size + 1);
  assert_non_null(l->buf);
  assert_int_equal(fread(l->buf, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  l->buf[size] = '\0';
  l->n = 0;
  for (char *p = l->buf; *p != '\0' && l->n < 16;) {
    char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    l->line[l->n] = p;
    l->len[l->n++] = n;
    p += n + (nl != NULL);
  }
}

static struct kw_jsonl *make_preset(const char *name) {
  struct kw_jsonl_mapping m;
  struct kw_jsonl *j = NULL;
  char err[256];

  assert_int_equal(kw_jsonl_preset(name, &m), 0);
  assert_int_equal(kw_jsonl_create(&m, &j, err, sizeof(err)), 0);
  assert_non_null(j);
  return j;
}

static void parse_ok(struct kw_jsonl *j, const char *line, size_t len, struct kw_rec *rec) {
  char err[256] = "";
  int rc = kw_jsonl_parse(j, line, len, rec, err, sizeof(err));
  if (rc != 0) {
    print_error("parse failed (%d): %s\n  line: %.*s\n", rc, err, (int)len, line);
    fail();
  }
}

static void parse_str_ok(struct kw_jsonl *j, const char *line, struct kw_rec *rec) {
  parse_ok(j, line, strlen(line), rec);
}

/* Parses and expects KW_EPARSE with a reason containing want (if not NULL). */
static void parse_bad(struct kw_jsonl *j, const char *line, size_t len, const char *want) {
  struct kw_rec rec;
  char err[256] = "";
  int rc = kw_jsonl_parse(j, line, len, &rec, err, sizeof(err));
  if (rc != KW_EPARSE) {
    print_error("want KW_EPARSE, got %d for: %.*s\n", rc, (int)(len > 200 ? 200 : len), line);
    fail();
  }
  assert_true(err[0] != '\0');
  if (want != NULL && strstr(err, want) == NULL) {
    print_error("reason '%s' lacks '%s'\n", err, want);
    fail();
  }
}
#define PARSE_BAD(j, s, want) parse_bad((j), (s), strlen(s), (want))
#define PARSE_STR_OK_UA(j, s, ua)                                                         \
  do {                                                                                    \
    parse_str_ok((j), (s), &rec);                                                          \
    assert_int_equal(rec.user_agent.n, strlen(ua));                                        \
    assert_memory_equal(rec.user_agent.p, (ua), strlen(ua));                               \
  } while (0)

/* A parser from a custom mapping; fails the test if create() refuses it. */
static struct kw_jsonl *make_custom(const struct kw_jsonl_mapping *m) {
  struct kw_jsonl *j = NULL;
  char err[256] = "";
  int rc = kw_jsonl_create(m, &j, err, sizeof(err));
  if (rc != 0) {
    print_error("create failed: %s\n", err);
    fail();
  }
  return j;
}

/* ---- presets against fixtures ------------------------------------------------------ */

static void test_preset_nginx(void **state) {
  struct kw_jsonl *j = make_preset("nginx-json");
  struct lines l;
  struct kw_rec rec;
  (void)state;

  load_fixture("nginx-json.jsonl", &l);
  assert_int_equal(l.n, 4);

  parse_ok(j, l.line[0], l.len[0], &rec); /* gen_access_log.py keyed_json, with a key */
  assert_int_equal(rec.ts_us, T_20251103_091502 * 1000000);
  ASSERT_STR(rec.addr, "100.64.10.17");
  ASSERT_STR(rec.method, "POST");
  ASSERT_STR(rec.uri, "/api/card/1234/query");
  ASSERT_STR(rec.proto, NULL);
  ASSERT_STR(rec.host, NULL);
  ASSERT_STR(rec.user_agent, "python-requests/2.31.0");
  ASSERT_STR(rec.key, NULL);
  assert_int_equal(rec.status, 202);
  assert_int_equal(rec.resp_bytes, 11873);
  assert_int_equal(rec.req_bytes, -1);
  assert_int_equal(rec.latency_us, 452000);
  assert_int_equal(rec.nhdrs, 1);
  ASSERT_HDR(&rec, "x-api-key", MBKEY);

  parse_ok(j, l.line[1], l.len[1], &rec); /* unkeyed: "" is no header */
  assert_int_equal(rec.ts_us, (T_20251103_091502 + 1) * 1000000);
  ASSERT_STR(rec.addr, "10.0.0.2");
  ASSERT_STR(rec.uri, "/api/health");
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.latency_us, 1000);
  assert_int_equal(rec.nhdrs, 0);

  parse_ok(j, l.line[2], l.len[2], &rec); /* quoted numbers, time_local, variants */
  assert_int_equal(rec.ts_us, (T_20251103_091502 + 2) * 1000000); /* 10:15:04 +0100 */
  ASSERT_STR(rec.addr, "2001:db8::7");
  ASSERT_STR(rec.method, "GET");
  ASSERT_STR(rec.uri, "/api/search?q=revenue&models=card");
  ASSERT_STR(rec.proto, "HTTP/2.0");
  ASSERT_STR(rec.host, "metabase.example.com");
  ASSERT_STR(rec.referer, NULL);
  assert_int_equal(rec.status, 401);
  assert_int_equal(rec.resp_bytes, 15);
  assert_int_equal(rec.req_bytes, 412);
  assert_int_equal(rec.latency_us, 4000);
  ASSERT_HDR(&rec, "authorization", "Bearer mb_notarealkey");
  ASSERT_HDR(&rec, "x-api-key", NULL);

  parse_ok(j, l.line[3], l.len[3], &rec); /* escaped quotes and UTF-8 in the user agent */
  ASSERT_STR(rec.user_agent, "ReportBot/1.2 (+\"internal reporting\") \xc3\x9c" "berwachung");
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.resp_bytes, 25010);
  assert_int_equal(rec.latency_us, 61000);

  free(l.buf);
  kw_jsonl_destroy(j);
}

static void test_preset_caddy(void **state) {
  struct kw_jsonl *j = make_preset("caddy");
  struct lines l;
  struct kw_rec rec;
  (void)state;

  load_fixture("caddy.jsonl", &l);
  assert_int_equal(l.n, 3);

  parse_ok(j, l.line[0], l.len[0], &rec);
  assert_int_equal(rec.ts_us, T_20251103_091502 * 1000000 + 524102);
  ASSERT_STR(rec.addr, "203.0.113.7"); /* client_ip wins over remote_ip */
  ASSERT_STR(rec.method, "GET");
  ASSERT_STR(rec.uri, "/api/card/17?format=json");
  ASSERT_STR(rec.proto, "HTTP/2.0");
  ASSERT_STR(rec.host, "api.example.com");
  ASSERT_STR(rec.user_agent, "curl/8.5.0");
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.req_bytes, 0);
  assert_int_equal(rec.resp_bytes, 6512);
  assert_int_equal(rec.latency_us, 930); /* 0.000929675 s */
  ASSERT_HDR(&rec, "x-api-key", MBKEY);
  ASSERT_HDR(&rec, "user-agent", "curl/8.5.0");
  ASSERT_HDR(&rec, "authorization", NULL); /* "REDACTED" */
  ASSERT_HDR(&rec, "accept", NULL);        /* noise */
  assert_int_equal(rec.nhdrs, 2);

  parse_ok(j, l.line[1], l.len[1], &rec);
  ASSERT_STR(rec.addr, "198.51.100.4");
  ASSERT_STR(rec.method, "POST");
  ASSERT_STR(rec.referer, "https://metabase.example.com/question/5");
  assert_int_equal(rec.status, 401);
  assert_int_equal(rec.req_bytes, 311);
  assert_int_equal(rec.latency_us, 4200);
  ASSERT_HDR(&rec, "x-api-key", NULL);
  ASSERT_HDR(&rec, "content-type", NULL);

  parse_ok(j, l.line[2], l.len[2], &rec); /* older Caddy: no client_ip; two key values */
  ASSERT_STR(rec.addr, "192.0.2.44");
  assert_int_equal(rec.ts_us, (T_20251103_091502 + 2) * 1000000 + 250000);
  ASSERT_HDR(&rec, "x-api-key", "mb_second");
  assert_int_equal(rec.latency_us, 18500);

  free(l.buf);
  kw_jsonl_destroy(j);
}

static void test_preset_traefik(void **state) {
  struct kw_jsonl *j = make_preset("traefik");
  struct lines l;
  struct kw_rec rec;
  (void)state;

  load_fixture("traefik.jsonl", &l);
  assert_int_equal(l.n, 2);

  parse_ok(j, l.line[0], l.len[0], &rec);
  assert_int_equal(rec.ts_us, T_20251103_091502 * 1000000 + 123456);
  ASSERT_STR(rec.addr, "203.0.113.9");
  ASSERT_STR(rec.method, "GET");
  ASSERT_STR(rec.uri, "/api/user/current");
  ASSERT_STR(rec.proto, "HTTP/1.1");
  ASSERT_STR(rec.host, "api.example.com");
  ASSERT_STR(rec.user_agent, "python-httpx/0.27.0");
  ASSERT_STR(rec.referer, NULL);
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.req_bytes, 0);
  assert_int_equal(rec.resp_bytes, 1532);
  assert_int_equal(rec.latency_us, 18253); /* 18253041 ns */
  ASSERT_HDR(&rec, "x-api-key", MBKEY);
  ASSERT_HDR(&rec, "user-agent", "python-httpx/0.27.0");
  assert_int_equal(rec.nhdrs, 2);

  parse_ok(j, l.line[1], l.len[1], &rec);
  assert_int_equal(rec.ts_us, (T_20251103_091502 + 1) * 1000000 + 500000);
  ASSERT_STR(rec.method, "PUT");
  ASSERT_STR(rec.uri, "/api/permissions/graph?force=true");
  ASSERT_STR(rec.proto, "HTTP/2.0");
  ASSERT_STR(rec.referer, "https://metabase.example.com/admin");
  assert_int_equal(rec.status, 403);
  assert_int_equal(rec.req_bytes, 97);
  assert_int_equal(rec.latency_us, 2100);
  ASSERT_HDR(&rec, "authorization", NULL); /* "REDACTED" */
  ASSERT_HDR(&rec, "referer", "https://metabase.example.com/admin");

  free(l.buf);
  kw_jsonl_destroy(j);
}

static void test_preset_envoy(void **state) {
  struct kw_jsonl *j = make_preset("envoy");
  struct lines l;
  struct kw_rec rec;
  (void)state;

  load_fixture("envoy.jsonl", &l);
  assert_int_equal(l.n, 3);

  parse_ok(j, l.line[0], l.len[0], &rec); /* Istio JSON encoding, typed numbers */
  assert_int_equal(rec.ts_us, T_20251103_091502 * 1000000 + 310000);
  ASSERT_STR(rec.addr, "198.51.100.23:40522");
  ASSERT_STR(rec.method, "POST");
  ASSERT_STR(rec.uri, "/api/dataset");
  ASSERT_STR(rec.proto, "HTTP/1.1");
  ASSERT_STR(rec.host, "metabase.internal");
  ASSERT_STR(rec.user_agent, "Go-http-client/1.1");
  assert_int_equal(rec.status, 202);
  assert_int_equal(rec.req_bytes, 154);
  assert_int_equal(rec.resp_bytes, 14890);
  assert_int_equal(rec.latency_us, 612000);
  ASSERT_HDR(&rec, "x-api-key", MBKEY);

  parse_ok(j, l.line[1], l.len[1], &rec); /* text encoding: strings, "-" = unset */
  assert_int_equal(rec.status, 404);
  assert_int_equal(rec.req_bytes, 0);
  assert_int_equal(rec.resp_bytes, 10);
  assert_int_equal(rec.latency_us, 3000);
  ASSERT_STR(rec.user_agent, NULL);
  ASSERT_STR(rec.addr, "10.1.7.7:33412");
  ASSERT_STR(rec.proto, "HTTP/2");
  assert_int_equal(rec.nhdrs, 0);

  parse_ok(j, l.line[2], l.len[2], &rec); /* Envoy Gateway's key names */
  ASSERT_STR(rec.uri, "/api/collection/root/items");
  ASSERT_STR(rec.host, "api.example.com");
  ASSERT_STR(rec.user_agent, "okhttp/4.12.0");
  ASSERT_STR(rec.addr, "192.0.2.50:60000");
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.latency_us, 31000);

  free(l.buf);
  kw_jsonl_destroy(j);
}

static void test_preset_kong(void **state) {
  struct kw_jsonl *j = make_preset("kong");
  struct lines l;
  struct kw_rec rec;
  (void)state;

  load_fixture("kong.jsonl", &l);
  assert_int_equal(l.n, 2);

  parse_ok(j, l.line[0], l.len[0], &rec);
  assert_int_equal(rec.ts_us, 1762161302310LL * 1000);
  ASSERT_STR(rec.addr, "198.51.100.77");
  ASSERT_STR(rec.method, "GET");
  ASSERT_STR(rec.uri, "/api/card/42?ignore_cache=true");
  ASSERT_STR(rec.host, "api.example.com:8000");
  ASSERT_STR(rec.user_agent, "okhttp/4.12.0");
  ASSERT_STR(rec.proto, NULL);
  ASSERT_STR(rec.key_id, "4d2a8b16-9f37-4c4f-9d8e-3e9a1a6f1c20");
  ASSERT_STR(rec.key, NULL);
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.req_bytes, 203);
  assert_int_equal(rec.resp_bytes, 6842);
  assert_int_equal(rec.latency_us, 39000);
  ASSERT_HDR(&rec, "apikey", KONGKEY); /* in clear: keyid must fingerprint it */
  ASSERT_HDR(&rec, "host", "api.example.com:8000");
  ASSERT_HDR(&rec, "x-forwarded-for", "198.51.100.77");
  ASSERT_HDR(&rec, "accept", NULL);
  assert_int_equal(rec.nhdrs, 4);

  parse_ok(j, l.line[1], l.len[1], &rec); /* 401, no credential */
  ASSERT_STR(rec.key_id, NULL);
  ASSERT_STR(rec.method, "POST");
  ASSERT_STR(rec.referer, "https://metabase.example.com/admin/people");
  assert_int_equal(rec.status, 401);
  assert_int_equal(rec.latency_us, 2500); /* 2.5 ms */
  ASSERT_HDR(&rec, "authorization", NULL);
  ASSERT_HDR(&rec, "apikey", NULL);

  free(l.buf);
  kw_jsonl_destroy(j);
}

/* ---- mapping syntax ---------------------------------------------------------------- */

static void test_dotted_paths_and_index(void **state) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  (void)state;

  m.path[KW_JF_METHOD] = "req.m";
  m.path[KW_JF_URI] = "a.1.b";
  m.path[KW_JF_HOST] = "deep.x.y.z";
  m.path[KW_JF_ADDR] = "tries.0.ip|client";
  j = make_custom(&m);

  parse_str_ok(j, "{\"req\":{\"m\":\"GET\"},\"a\":[{\"b\":\"/no\"},{\"b\":\"/yes\"}],"
                  "\"deep\":{\"x\":{\"y\":{\"z\":\"h.example\"}}},\"tries\":[{\"ip\":\"10.0.0.1\"}]}",
               &rec);
  ASSERT_STR(rec.method, "GET");
  ASSERT_STR(rec.uri, "/yes");
  ASSERT_STR(rec.host, "h.example");
  ASSERT_STR(rec.addr, "10.0.0.1");

  /* an all-digit component on an object is a key; an index past the end is no value;
   * an empty array falls through to the next alternative */
  parse_str_ok(j, "{\"a\":{\"1\":{\"b\":\"/key\"}},\"tries\":[],\"client\":\"10.0.0.2\"}", &rec);
  ASSERT_STR(rec.uri, "/key");
  ASSERT_STR(rec.addr, "10.0.0.2");
  ASSERT_STR(rec.method, NULL);
  parse_str_ok(j, "{\"a\":[{\"b\":\"/only\"}],\"deep\":\"flat\"}", &rec);
  ASSERT_STR(rec.uri, NULL);
  ASSERT_STR(rec.host, NULL);
  kw_jsonl_destroy(j);
}

static void test_alternatives_skip_empty(void **state) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  (void)state;

  m.path[KW_JF_URI] = "u";
  m.path[KW_JF_ADDR] = "xff|peer|other";
  j = make_custom(&m);
  parse_str_ok(j, "{\"u\":\"/\",\"xff\":\"-\",\"peer\":\"\",\"other\":\"192.0.2.1\"}", &rec);
  ASSERT_STR(rec.addr, "192.0.2.1");
  parse_str_ok(j, "{\"u\":\"/\",\"xff\":null,\"peer\":\"192.0.2.2\"}", &rec);
  ASSERT_STR(rec.addr, "192.0.2.2");
  parse_str_ok(j, "{\"u\":\"/\",\"xff\":\"192.0.2.3\",\"peer\":\"192.0.2.2\"}", &rec);
  ASSERT_STR(rec.addr, "192.0.2.3");
  parse_str_ok(j, "{\"u\":\"/\"}", &rec);
  ASSERT_STR(rec.addr, NULL);
  kw_jsonl_destroy(j);
}

static void test_header_objects_and_arrays(void **state) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  (void)state;

  m.path[KW_JF_URI] = "u";
  m.path[KW_JF_HEADERS] = "h";
  j = make_custom(&m);
  parse_str_ok(j,
               "{\"u\":\"/\",\"h\":{\"X-Api-Key\":[\"k1\",\"k2\"],\"X_Custom_Token\":\"t\","
               "\"authorization\":\"Bearer abc\",\"Empty\":[],\"Dash\":\"-\",\"Num\":5,"
               "\"Obj\":{\"a\":1},\"NullFirst\":[null,\"x\"],\"Proxy-Authorization\":\"REDACTED\","
               "\"Sec-Fetch-Mode\":\"cors\",\"Accept-Language\":\"en\"}}",
               &rec);
  ASSERT_HDR(&rec, "x-api-key", "k1");
  ASSERT_HDR(&rec, "x-custom-token", "t");
  ASSERT_HDR(&rec, "authorization", "Bearer abc");
  ASSERT_HDR(&rec, "empty", NULL);
  ASSERT_HDR(&rec, "dash", NULL);
  ASSERT_HDR(&rec, "num", NULL);
  ASSERT_HDR(&rec, "obj", NULL);
  ASSERT_HDR(&rec, "nullfirst", NULL);
  ASSERT_HDR(&rec, "proxy-authorization", NULL);
  ASSERT_HDR(&rec, "sec-fetch-mode", NULL);
  ASSERT_HDR(&rec, "accept-language", NULL);
  assert_int_equal(rec.nhdrs, 3);

  PARSE_BAD(j, "{\"u\":\"/\",\"h\":\"x-api-key: k\"}", "headers: expected an object");
  PARSE_BAD(j, "{\"u\":\"/\",\"h\":[\"x\"]}", "headers: expected an object");
  kw_jsonl_destroy(j);
}

/* A browser's many headers must not push the key out of the KW_REC_MAX_HDRS slots. */
static void test_header_slots(void **state) {
  struct kw_jsonl_mapping m;
  struct kw_jsonl *j;
  struct kw_rec rec;
  char line[4096];
  int n;
  (void)state;

  assert_int_equal(kw_jsonl_preset("kong", &m), 0);
  j = make_custom(&m);
  n = snprintf(line, sizeof(line),
               "{\"request\":{\"method\":\"GET\",\"uri\":\"/\",\"headers\":{"
               "\"host\":\"h\",\"connection\":\"keep-alive\",\"sec-ch-ua\":\"x\","
               "\"sec-ch-ua-mobile\":\"?0\",\"sec-ch-ua-platform\":\"Linux\","
               "\"upgrade-insecure-requests\":\"1\",\"user-agent\":\"Mozilla/5.0\","
               "\"accept\":\"text/html\",\"sec-fetch-site\":\"none\",\"sec-fetch-mode\":\"navigate\","
               "\"sec-fetch-user\":\"?1\",\"sec-fetch-dest\":\"document\","
               "\"accept-encoding\":\"gzip\",\"accept-language\":\"en\",\"cookie\":\"c=1\","
               "\"referer\":\"r\",\"cache-control\":\"no-cache\",\"pragma\":\"no-cache\","
               "\"priority\":\"u=0, i\",\"dnt\":\"1\",\"apikey\":\"%s\"}},"
               "\"response\":{\"status\":200},\"started_at\":1700000000000}",
               KONGKEY);
  assert_true(n > 0 && (size_t)n < sizeof(line));
  parse_str_ok(j, line, &rec);
  ASSERT_HDR(&rec, "apikey", KONGKEY);
  assert_int_equal(rec.nhdrs, 5); /* host, user-agent, cookie, referer, apikey */

  /* with 20 distinct useful headers, the record stops at KW_REC_MAX_HDRS */
  n = snprintf(line, sizeof(line), "{\"request\":{\"method\":\"GET\",\"uri\":\"/\",\"headers\":{");
  for (int i = 0; i < 20; i++)
    n += snprintf(line + n, sizeof(line) - (size_t)n, "%s\"x-h%d\":\"v\"", i ? "," : "", i);
  n += snprintf(line + n, sizeof(line) - (size_t)n, "}},\"response\":{\"status\":200}}");
  parse_ok(j, line, (size_t)n, &rec);
  assert_int_equal(rec.nhdrs, KW_REC_MAX_HDRS);
  kw_jsonl_destroy(j);
}

static void test_extra_headers_and_prefix(void **state) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  (void)state;

  m.path[KW_JF_URI] = "u";
  m.extra_hdrs[0] = (struct kw_jsonl_extra_hdr){"http_authorization", "Authorization"};
  m.extra_hdrs[1] = (struct kw_jsonl_extra_hdr){"meta.key|alt_key", "X_Api_Key"};
  m.n_extra_hdrs = 2;
  m.hdr_prefix = "req_";
  j = make_custom(&m);

  parse_str_ok(j,
               "{\"u\":\"/\",\"http_authorization\":\"Token abc\",\"meta\":{\"key\":[\"k\"]},"
               "\"req_X-Trace\":\"t1\",\"req_Accept\":\"*/*\",\"req_\":\"ignored\",\"Req_X\":\"no\"}",
               &rec);
  ASSERT_HDR(&rec, "authorization", "Token abc");
  ASSERT_HDR(&rec, "x-api-key", "k");
  ASSERT_HDR(&rec, "x-trace", "t1");
  ASSERT_HDR(&rec, "accept", NULL);
  assert_int_equal(rec.nhdrs, 3);
  /* extra headers come first */
  ASSERT_STR(rec.hdrs[0].name, "authorization");
  ASSERT_STR(rec.hdrs[1].name, "x-api-key");

  parse_str_ok(j, "{\"u\":\"/\",\"alt_key\":\"k2\",\"http_authorization\":\"\"}", &rec);
  ASSERT_HDR(&rec, "x-api-key", "k2");
  ASSERT_HDR(&rec, "authorization", NULL);
  assert_int_equal(rec.nhdrs, 1);

  PARSE_BAD(j, "{\"u\":\"/\",\"http_authorization\":42}", "authorization: expected a string");
  kw_jsonl_destroy(j);
}

static void test_key_fields(void **state) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  (void)state;

  m.path[KW_JF_URI] = "u";
  m.path[KW_JF_KEY] = "api_key";
  m.path[KW_JF_KEY_ID] = "cred.id";
  j = make_custom(&m);
  parse_str_ok(j, "{\"u\":\"/\",\"api_key\":\"sk_live_1\",\"cred\":{\"id\":\"c-9\"}}", &rec);
  ASSERT_STR(rec.key, "sk_live_1");
  ASSERT_STR(rec.key_id, "c-9");
  PARSE_BAD(j, "{\"u\":\"/\",\"cred\":{\"id\":17}}", "key_id: expected a string");
  kw_jsonl_destroy(j);
}

/* ---- values ---------------------------------------------------------------------------- */

static void test_quoted_numbers(void **state) {
  struct kw_jsonl *j = make_preset("nginx-json");
  struct kw_rec rec;
  (void)state;

  parse_str_ok(j, "{\"request_uri\":\"/\",\"status\":\"200\",\"body_bytes_sent\":\"0\","
                  "\"request_length\":\"9007199254740993\",\"request_time\":\"0.012\"}",
               &rec);
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.resp_bytes, 0);
  assert_int_equal(rec.req_bytes, 9007199254740993LL); /* 2^53 + 1: read exactly */
  assert_int_equal(rec.latency_us, 12000);

  parse_str_ok(j, "{\"request_uri\":\"/\",\"status\":\"-\",\"body_bytes_sent\":\"\"}", &rec);
  assert_int_equal(rec.status, 0);
  assert_int_equal(rec.resp_bytes, -1);
  parse_str_ok(j, "{\"request_uri\":\"/\",\"status\":200.0,\"request_time\":1}", &rec);
  assert_int_equal(rec.status, 200);
  assert_int_equal(rec.latency_us, 1000000);

  PARSE_BAD(j, "{\"request_uri\":\"/\",\"status\":\"2x0\"}", "status: not a decimal number");
  PARSE_BAD(j, "{\"request_uri\":\"/\",\"status\":\" 200\"}", "status");
  PARSE_BAD(j, "{\"request_uri\":\"/\",\"status\":\"1e3\"}", "status");
  PARSE_BAD(j, "{\"request_uri\":\"/\",\"status\":\"200.5\"}", "status: expected an integer");
  PARSE_BAD(j, "{\"request_uri\":\"/\",\"request_time\":\".5\"}", "latency");
  PARSE_BAD(j, "{\"request_uri\":\"/\",\"request_time\":\"5.\"}", "latency");
  kw_jsonl_destroy(j);
}

/* Parses {"u":"/","t":<tval>} with the given time format; returns ts_us, or fails. */
static int64_t time_of(enum kw_jsonl_time fmt, const char *tval) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  char line[256];
  int64_t ts;

  m.path[KW_JF_URI] = "u";
  m.path[KW_JF_TIME] = "t";
  m.time_format = fmt;
  j = make_custom(&m);
  snprintf(line, sizeof(line), "{\"u\":\"/\",\"t\":%s}", tval);
  parse_str_ok(j, line, &rec);
  ts = rec.ts_us;
  kw_jsonl_destroy(j);
  return ts;
}

static void time_bad(enum kw_jsonl_time fmt, const char *tval, const char *want) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  char line[256];

  m.path[KW_JF_URI] = "u";
  m.path[KW_JF_TIME] = "t";
  m.time_format = fmt;
  j = make_custom(&m);
  snprintf(line, sizeof(line), "{\"u\":\"/\",\"t\":%s}", tval);
  PARSE_BAD(j, line, want);
  kw_jsonl_destroy(j);
}

static void test_time_formats(void **state) {
  const int64_t s = T_1700000000 * 1000000;
  (void)state;

  /* AUTO: numbers by magnitude, strings ISO / CLF / decimal */
  assert_int_equal(time_of(KW_JT_AUTO, "1700000000"), s);
  assert_int_equal(time_of(KW_JT_AUTO, "1700000000.25"), s + 250000);
  assert_int_equal(time_of(KW_JT_AUTO, "1700000000123"), s + 123000);
  assert_int_equal(time_of(KW_JT_AUTO, "1700000000123456"), s + 123456);
  assert_int_equal(time_of(KW_JT_AUTO, "1700000000123456789"), s + 123457);
  assert_int_equal(time_of(KW_JT_AUTO, "\"2023-11-14T22:13:20.5Z\""), s + 500000);
  assert_int_equal(time_of(KW_JT_AUTO, "\"2023-11-15T00:13:20+02:00\""), s);
  assert_int_equal(time_of(KW_JT_AUTO, "\"14/Nov/2023:23:13:20 +0100\""), s);
  assert_int_equal(time_of(KW_JT_AUTO, "\"[14/Nov/2023:22:13:20 +0000]\""), s);
  assert_int_equal(time_of(KW_JT_AUTO, "\"1700000000.5\""), s + 500000);
  assert_int_equal(time_of(KW_JT_AUTO, "\"1700000000000\""), s);
  time_bad(KW_JT_AUTO, "\"yesterday\"", "time: unrecognised format");
  time_bad(KW_JT_AUTO, "-5", "time: out of range");
  time_bad(KW_JT_AUTO, "true", "time: expected a number");
  time_bad(KW_JT_AUTO, "\"1012-11-03T09:15:02.310Z\"", "time: before 1970");
  time_bad(KW_JT_ISO8601, "\"1969-12-31T23:59:59.999999Z\"", "time: before 1970");
  assert_int_equal(time_of(KW_JT_ISO8601, "\"1970-01-01T00:00:00Z\""), 0);

  /* explicit formats */
  assert_int_equal(time_of(KW_JT_ISO8601, "\"2023-11-14T22:13:20Z\""), s);
  time_bad(KW_JT_ISO8601, "1700000000", "time: expected a string");
  time_bad(KW_JT_ISO8601, "\"14/Nov/2023:22:13:20 +0000\"", "ISO 8601");
  assert_int_equal(time_of(KW_JT_CLF, "\"14/Nov/2023:22:13:20 +0000\""), s);
  assert_int_equal(time_of(KW_JT_CLF, "\"[14/Nov/2023:22:13:20 +0000]\""), s);
  time_bad(KW_JT_CLF, "\"2023-11-14T22:13:20Z\"", "CLF");
  assert_int_equal(time_of(KW_JT_EPOCH_S, "1700000000"), s);
  assert_int_equal(time_of(KW_JT_EPOCH_S, "\"1700000000.000001\""), s + 1);
  assert_int_equal(time_of(KW_JT_EPOCH_S, "1700000000123"), 1700000000123LL * 1000000);
  assert_int_equal(time_of(KW_JT_EPOCH_MS, "1700000000123"), s + 123000);
  assert_int_equal(time_of(KW_JT_EPOCH_MS, "\"1700000000123.5\""), s + 123500);
  assert_int_equal(time_of(KW_JT_EPOCH_MS, "1700000000"), 1700000000000LL);
  assert_int_equal(time_of(KW_JT_EPOCH_US, "1700000000123456"), s + 123456);
  assert_int_equal(time_of(KW_JT_EPOCH_NS, "1700000000123456789"), s + 123457);
  assert_int_equal(time_of(KW_JT_EPOCH_NS, "\"1700000000123456489\""), s + 123456);
  time_bad(KW_JT_EPOCH_S, "\"2023-11-14T22:13:20Z\"", "time: not a decimal number");
  time_bad(KW_JT_EPOCH_S, "9000000000000000", "time: out of range");
  time_bad(KW_JT_EPOCH_MS, "{}", "time: expected a number");
}

static int64_t latency_of(enum kw_jsonl_unit unit, const char *val) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  char line[256];
  int64_t us;

  m.path[KW_JF_URI] = "u";
  m.path[KW_JF_LATENCY] = "d";
  m.latency_unit = unit;
  j = make_custom(&m);
  snprintf(line, sizeof(line), "{\"u\":\"/\",\"d\":%s}", val);
  parse_str_ok(j, line, &rec);
  us = rec.latency_us;
  kw_jsonl_destroy(j);
  return us;
}

static void test_latency_units(void **state) {
  (void)state;
  assert_int_equal(latency_of(KW_JU_S, "0.25"), 250000);
  assert_int_equal(latency_of(KW_JU_S, "\"0.000\""), 0);
  assert_int_equal(latency_of(KW_JU_S, "2"), 2000000);
  assert_int_equal(latency_of(KW_JU_S, "0.0000004"), 0);
  assert_int_equal(latency_of(KW_JU_S, "0.0000006"), 1);
  assert_int_equal(latency_of(KW_JU_MS, "12.5"), 12500);
  assert_int_equal(latency_of(KW_JU_MS, "\"612\""), 612000);
  assert_int_equal(latency_of(KW_JU_US, "700"), 700);
  assert_int_equal(latency_of(KW_JU_US, "700.6"), 701);
  assert_int_equal(latency_of(KW_JU_NS, "1500"), 2);
  assert_int_equal(latency_of(KW_JU_NS, "1499"), 1);
  assert_int_equal(latency_of(KW_JU_NS, "18253041"), 18253);
  assert_int_equal(latency_of(KW_JU_S, "\"-\""), -1);
  assert_int_equal(latency_of(KW_JU_S, "null"), -1);
}

static void test_uri_composition(void **state) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  (void)state;

  m.path[KW_JF_PATH] = "p";
  m.path[KW_JF_QUERY] = "q";
  j = make_custom(&m);
  parse_str_ok(j, "{\"p\":\"/api/card/1\",\"q\":\"a=1&b=2\"}", &rec); /* Traefik-like */
  ASSERT_STR(rec.uri, "/api/card/1?a=1&b=2");
  parse_str_ok(j, "{\"p\":\"/api/card/1\",\"q\":\"?a=1\"}", &rec); /* nginx $is_args$args */
  ASSERT_STR(rec.uri, "/api/card/1?a=1");
  parse_str_ok(j, "{\"p\":\"/api/card/1\",\"q\":\"\"}", &rec);
  ASSERT_STR(rec.uri, "/api/card/1");
  parse_str_ok(j, "{\"p\":\"/api/card/1\",\"q\":\"?\"}", &rec);
  ASSERT_STR(rec.uri, "/api/card/1");
  parse_str_ok(j, "{\"q\":\"a=1\"}", &rec);
  ASSERT_STR(rec.uri, NULL);
  PARSE_BAD(j, "{\"p\":\"/x\",\"q\":{\"a\":\"1\"}}", "query: expected a string");
  kw_jsonl_destroy(j);

  m.path[KW_JF_URI] = "uri";
  j = make_custom(&m);
  parse_str_ok(j, "{\"uri\":\"/full?x=1\",\"p\":\"/p\",\"q\":\"y=2\"}", &rec);
  ASSERT_STR(rec.uri, "/full?x=1");
  parse_str_ok(j, "{\"uri\":\"-\",\"p\":\"/p\",\"q\":\"y=2\"}", &rec);
  ASSERT_STR(rec.uri, "/p?y=2");
  kw_jsonl_destroy(j);
}

/* ---- malformed input ----------------------------------------------------------------- */

static void test_malformed_lines(void **state) {
  struct kw_jsonl *j = make_preset("nginx-json");
  char *big;
  size_t n;
  (void)state;

  PARSE_BAD(j, "not json", "invalid JSON");
  PARSE_BAD(j, "[1,2,3]", "not a JSON object");
  PARSE_BAD(j, "42", NULL);
  PARSE_BAD(j, "\"str\"", NULL);
  PARSE_BAD(j, "null", NULL);
  PARSE_BAD(j, "{\"status\":200", "truncated");
  PARSE_BAD(j, "{\"status\":200,\"request_uri\":\"/a", "truncated");
  PARSE_BAD(j, "{\"status\":200} trailing", "data after");
  PARSE_BAD(j, "{\"status\":200}{\"status\":200}", "data after");
  parse_bad(j, "", 0, "empty");
  parse_bad(j, NULL, 0, "empty");
  PARSE_BAD(j, "{\"status\":99999999999999999999999}", "number out of range");
  PARSE_BAD(j, "{\"status\":1e400}", "number out of range");
  PARSE_BAD(j, "{\"status\":1000}", "status: out of range");
  PARSE_BAD(j, "{\"status\":-1}", "status: out of range");
  PARSE_BAD(j, "{\"status\":\"-200\"}", "status: out of range");
  PARSE_BAD(j, "{\"body_bytes_sent\":1e300}", "resp_bytes: out of range");
  PARSE_BAD(j, "{\"request_length\":\"99999999999999999999\"}", "req_bytes: out of range");
  PARSE_BAD(j, "{\"request_time\":1e300}", "latency: out of range");
  PARSE_BAD(j, "{\"request_time\":9223372036854775807}", "latency: out of range");
  PARSE_BAD(j, "{\"status\":{\"code\":200}}", "status: expected a number");
  PARSE_BAD(j, "{\"status\":[200]}", "status: expected a number");
  PARSE_BAD(j, "{\"status\":true}", "status: expected a number");
  PARSE_BAD(j, "{\"request_method\":5}", "method: expected a string");
  PARSE_BAD(j, "{\"request_uri\":{\"p\":\"/\"}}", "uri: expected a string");
  PARSE_BAD(j, "{\"http_user_agent\":[1]}", "user_agent: expected a string");
  PARSE_BAD(j, "{\"remote_addr\":false}", "addr: expected a string");

  /* nesting bomb: deeper than jansson's JSON_PARSER_MAX_DEPTH */
  n = 100000;
  big = malloc(n + 16);
  assert_non_null(big);
  memcpy(big, "{\"a\":", 5);
  memset(big + 5, '[', 60000);
  parse_bad(j, big, 5 + 60000, "nested too deep");
  memset(big + 5, '[', 5000); /* balanced, still too deep */
  memset(big + 5005, ']', 5000);
  big[10005] = '}';
  parse_bad(j, big, 10006, "nested too deep");
  memset(big + 5, '{', 70000); /* longer than the bound: refused before parsing */
  parse_bad(j, big, 70005, "longer than");

  /* 70000-byte line that is otherwise valid JSON */
  memcpy(big, "{\"request_uri\":\"/", 17);
  memset(big + 17, 'a', 70000 - 19);
  memcpy(big + 70000 - 2, "\"}", 2);
  parse_bad(j, big, 70000, "longer than 65536 bytes");
  /* and the same shape under the bound is fine */
  memcpy(big + 60000 - 2, "\"}", 2);
  {
    struct kw_rec rec;
    parse_ok(j, big, 60000, &rec);
    assert_int_equal(rec.uri.n, 60000 - 17 - 2 + 1);
  }
  free(big);

  /* the parser survives all of that */
  {
    struct kw_rec rec;
    parse_str_ok(j, "{\"request_uri\":\"/ok\",\"status\":204}", &rec);
    assert_int_equal(rec.status, 204);
    ASSERT_STR(rec.uri, "/ok");
  }
  kw_jsonl_destroy(j);
}

/* Invalid UTF-8 (which nginx's escape=json passes through from a client) must not make a
 * line unreadable, or an attacker could hide calls: bad bytes become U+FFFD. */
static void test_invalid_utf8_is_mended(void **state) {
  struct kw_jsonl *j = make_preset("nginx-json");
  struct kw_rec rec;
  (void)state;

  PARSE_STR_OK_UA(j, "{\"request_uri\":\"/a\",\"status\":200,\"http_user_agent\":\"x\xff\xfey\"}",
                  "x\xef\xbf\xbd\xef\xbf\xbdy");
  PARSE_STR_OK_UA(j, "{\"request_uri\":\"/a\",\"status\":200,\"http_user_agent\":\"\xc3\"}",
                  "\xef\xbf\xbd");
  PARSE_STR_OK_UA(j, "{\"request_uri\":\"/a\",\"status\":200,\"http_user_agent\":\"\xed\xa0\x80\"}",
                  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* a surrogate is 3 bad bytes */
  PARSE_STR_OK_UA(j, "{\"request_uri\":\"/a\",\"status\":200,\"http_user_agent\":\"Z\xc3\xbcrich\"}",
                  "Z\xc3\xbcrich"); /* valid UTF-8 untouched */
  (void)rec;
  kw_jsonl_destroy(j);
}

/* The reason never quotes the line: a key may be right there. */
static void test_errors_do_not_leak_input(void **state) {
  struct kw_jsonl *j = make_preset("nginx-json");
  const char *lines[] = {
    "{\"http_x_api_key\":\"mb_SECRETSECRET\" \"status\":1}",
    "{\"http_x_api_key\":\"mb_SECRETSECRET\",\"status\":{}}",
    "{\"http_x_api_key\":mb_SECRETSECRET}",
    "{\"request_uri\":\"/?api_key=mb_SECRETSECRET\xff\"",
  };
  (void)state;

  for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
    struct kw_rec rec;
    char err[512] = "";
    assert_int_equal(kw_jsonl_parse(j, lines[i], strlen(lines[i]), &rec, err, sizeof(err)),
                     KW_EPARSE);
    assert_true(err[0] != '\0');
    assert_null(strstr(err, "SECRET"));
  }
  kw_jsonl_destroy(j);
}

static void test_nul_in_string(void **state) {
  struct kw_jsonl *j = make_preset("nginx-json");
  struct kw_rec rec;
  (void)state;

  /* line endings and a UTF-8 byte order mark (first line of a file) are tolerated */
  parse_str_ok(j, "{\"request_uri\":\"/crlf\"}\r\n", &rec);
  ASSERT_STR(rec.uri, "/crlf");
  parse_str_ok(j, "\xef\xbb\xbf{\"request_uri\":\"/bom\"}", &rec);
  ASSERT_STR(rec.uri, "/bom");
  PARSE_BAD(j, "\xef\xbb\xbf", "empty line");

  parse_str_ok(j, "{\"request_uri\":\"/\",\"http_user_agent\":\"a\\u0000b\"}", &rec);
  assert_int_equal(rec.user_agent.n, 3);
  assert_memory_equal(rec.user_agent.p, "a\0b", 3);
  kw_jsonl_destroy(j);
}

/* ---- lifetimes ------------------------------------------------------------------------- */

/* Strings in rec must not point into the caller's line: it is freed right after parse.
 * Under ASan a pointer into the line would be a use-after-free here. */
static void test_strings_outlive_the_line(void **state) {
  struct kw_jsonl_mapping m;
  struct kw_jsonl *j;
  struct kw_rec rec;
  const char *src = "{\"p\":\"/api/x\",\"q\":\"a=1\",\"m\":\"DELETE\","
                    "\"h\":{\"X-Api-Key\":[\"k-123\"],\"Host\":\"h.example\"}}";
  char *line = strdup(src);
  (void)state;

  memset(&m, 0, sizeof(m));
  m.path[KW_JF_PATH] = "p";
  m.path[KW_JF_QUERY] = "q";
  m.path[KW_JF_METHOD] = "m";
  m.path[KW_JF_HEADERS] = "h";
  j = make_custom(&m);
  assert_non_null(line);
  parse_ok(j, line, strlen(line), &rec);
  memset(line, 'Z', strlen(line));
  free(line);
  ASSERT_STR(rec.method, "DELETE");
  ASSERT_STR(rec.uri, "/api/x?a=1");        /* composed in scratch */
  ASSERT_HDR(&rec, "x-api-key", "k-123");   /* name lower-cased in scratch */
  ASSERT_HDR(&rec, "host", "h.example");

  /* a guess on another line does not disturb the parser's strings */
  {
    const char *other = "{\"request_method\":\"GET\",\"request_uri\":\"/\",\"status\":200,"
                        "\"time_iso8601\":\"2025-11-03T09:15:02+00:00\"}";
    assert_string_equal(kw_jsonl_guess_preset(other, strlen(other)), "nginx-json");
  }
  ASSERT_STR(rec.method, "DELETE");
  ASSERT_STR(rec.uri, "/api/x?a=1");

  /* the mapping the parser was made from may go away too */
  memset(&m, 0, sizeof(m));
  parse_str_ok(j, "{\"p\":\"/b\",\"m\":\"GET\"}", &rec);
  ASSERT_STR(rec.uri, "/b");
  ASSERT_STR(rec.method, "GET");
  kw_jsonl_destroy(j);
}

static void test_mapping_strings_copied(void **state) {
  struct kw_jsonl_mapping m = {0};
  struct kw_jsonl *j;
  struct kw_rec rec;
  char path[] = "req.uri|u";
  char hname[] = "X-Key";
  char hpath[] = "k";
  char prefix[] = "hdr_";
  (void)state;

  m.path[KW_JF_URI] = path;
  m.extra_hdrs[0] = (struct kw_jsonl_extra_hdr){hpath, hname};
  m.n_extra_hdrs = 1;
  m.hdr_prefix = prefix;
  j = make_custom(&m);
  memset(path, 'x', sizeof(path) - 1);
  memset(hname, 'x', sizeof(hname) - 1);
  memset(hpath, 'x', sizeof(hpath) - 1);
  memset(prefix, 'x', sizeof(prefix) - 1);
  parse_str_ok(j, "{\"u\":\"/u\",\"k\":\"v\",\"hdr_A\":\"b\"}", &rec);
  ASSERT_STR(rec.uri, "/u");
  ASSERT_HDR(&rec, "x-key", "v");
  ASSERT_HDR(&rec, "a", "b");
  kw_jsonl_destroy(j);
}

/* ---- create / presets / names / ops ------------------------------------------------- */

static void expect_einval(const struct kw_jsonl_mapping *m, const char *want) {
  struct kw_jsonl *j = (struct kw_jsonl *)&j; /* must be reset to NULL */
  char err[256] = "";
  assert_int_equal(kw_jsonl_create(m, &j, err, sizeof(err)), KW_EINVAL);
  assert_null(j);
  if (strstr(err, want) == NULL) {
    print_error("error '%s' lacks '%s'\n", err, want);
    fail();
  }
}

static void test_create_rejects_bad_mappings(void **state) {
  struct kw_jsonl_mapping m = {0};
  (void)state;

  m.path[KW_JF_METHOD] = "m";
  expect_einval(&m, "neither 'uri' nor 'path'");
  m.path[KW_JF_URI] = "u";
  m.path[KW_JF_STATUS] = "a..b";
  expect_einval(&m, "field 'status': empty component");
  m.path[KW_JF_STATUS] = ".a";
  expect_einval(&m, "field 'status'");
  m.path[KW_JF_STATUS] = "a|";
  expect_einval(&m, "field 'status'");
  m.path[KW_JF_STATUS] = "";
  expect_einval(&m, "field 'status': empty path");
  m.path[KW_JF_STATUS] = "a|b|c|d|e";
  expect_einval(&m, "too many alternatives");
  m.path[KW_JF_STATUS] = "a.b.c.d.e.f.g.h.i";
  expect_einval(&m, "too many components");
  m.path[KW_JF_STATUS] = "a|b|c|d"; /* the limits themselves are fine */
  m.path[KW_JF_HOST] = "a.b.c.d.e.f.g.h";
  {
    struct kw_jsonl *j = make_custom(&m);
    kw_jsonl_destroy(j);
  }
  m.time_format = (enum kw_jsonl_time)42;
  expect_einval(&m, "field 'time'");
  m.time_format = KW_JT_AUTO;
  m.latency_unit = (enum kw_jsonl_unit)9;
  expect_einval(&m, "field 'latency'");
  m.latency_unit = KW_JU_MS;
  m.n_extra_hdrs = 1;
  m.extra_hdrs[0] = (struct kw_jsonl_extra_hdr){"x", NULL};
  expect_einval(&m, "extra header 0");
  m.extra_hdrs[0] = (struct kw_jsonl_extra_hdr){"x", "bad name"};
  expect_einval(&m, "extra header 0");
  m.extra_hdrs[0] = (struct kw_jsonl_extra_hdr){"x..y", "ok"};
  expect_einval(&m, "header 'ok'");
  m.n_extra_hdrs = KW_JSONL_MAX_EXTRA_HDRS + 1;
  expect_einval(&m, "extra headers");
}

static void test_presets_and_names(void **state) {
  const char *const *names = kw_jsonl_preset_names();
  const char *want[] = {"nginx-json", "caddy", "traefik", "envoy", "kong"};
  struct kw_jsonl_mapping m;
  size_t n = 0;
  (void)state;

  for (; names[n] != NULL; n++) {
    assert_true(n < 5);
    assert_string_equal(names[n], want[n]);
    struct kw_jsonl *j = make_preset(names[n]);
    kw_jsonl_destroy(j);
  }
  assert_int_equal(n, 5);
  memset(&m, 0x5a, sizeof(m));
  assert_int_equal(kw_jsonl_preset("apache", &m), KW_ENOTFOUND);
  assert_int_equal(((unsigned char *)&m)[0], 0x5a); /* untouched */
  assert_int_equal(kw_jsonl_preset("kong", &m), 0);
  assert_string_equal(m.path[KW_JF_KEY_ID], "authenticated_entity.id");
  assert_int_equal(m.time_format, KW_JT_EPOCH_MS);

  assert_string_equal(kw_jsonl_field_name(KW_JF_TIME), "time");
  assert_string_equal(kw_jsonl_field_name(KW_JF_USER_AGENT), "user_agent");
  assert_string_equal(kw_jsonl_field_name(KW_JF_HEADERS), "headers");
  for (int f = 0; f < KW_JF_COUNT; f++)
    assert_non_null(kw_jsonl_field_name((enum kw_jsonl_field)f));
  assert_null(kw_jsonl_field_name(KW_JF_COUNT));
  assert_null(kw_jsonl_field_name((enum kw_jsonl_field)-1));
  kw_jsonl_destroy(NULL);
}

static void test_ops_table(void **state) {
  struct kw_jsonl *j = make_preset("envoy");
  struct kw_rec rec;
  char err[128];
  const char *line = "{\"start_time\":\"2023-11-14T22:13:20.000Z\",\"method\":\"GET\","
                     "\"path\":\"/x\",\"response_code\":200}";
  (void)state;

  assert_string_equal(kw_jsonl_ops.kind, "json");
  assert_int_equal(kw_jsonl_ops.parse(j, line, strlen(line), &rec, err, sizeof(err)), 0);
  assert_int_equal(rec.ts_us, T_1700000000 * 1000000);
  assert_int_equal(kw_jsonl_ops.parse(j, "{", 1, &rec, err, sizeof(err)), KW_EPARSE);
  kw_jsonl_ops.destroy(j); /* frees: ASan/LSan would report a leak otherwise */
}

/* ---- guessing -------------------------------------------------------------------------- */

static void test_guess_fixtures(void **state) {
  const char *const *names = kw_jsonl_preset_names();
  (void)state;

  for (size_t i = 0; names[i] != NULL; i++) {
    struct lines l;
    char file[64];
    snprintf(file, sizeof(file), "%s.jsonl", names[i]);
    load_fixture(file, &l);
    for (size_t k = 0; k < l.n; k++) {
      const char *g = kw_jsonl_guess_preset(l.line[k], l.len[k]);
      if (g == NULL || strcmp(g, names[i]) != 0) {
        print_error("%s line %zu: guessed %s\n", file, k + 1, g ? g : "(none)");
        fail();
      }
    }
    free(l.buf);
  }
}

static void test_guess_garbage(void **state) {
  const char *bad[] = {
    "", "garbage", "[1,2]", "{}", "{\"a\":1}", "{\"status\":200}",
    "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 5",
    /* nginx-shaped but unparseable by it: status as an object */
    ("{\"time_iso8601\":\"2025-11-03T09:15:02+00:00\",\"request_method\":\"GET\","
     "\"request_uri\":\"/\",\"status\":{}}"),
    /* essential field missing (time) */
    ("{\"request_method\":\"GET\",\"request_uri\":\"/\",\"status\":200}"),
  };
  (void)state;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *g = kw_jsonl_guess_preset(bad[i], strlen(bad[i]));
    if (g != NULL) {
      print_error("guessed %s for: %s\n", g, bad[i]);
      fail();
    }
  }
  assert_null(kw_jsonl_guess_preset(NULL, 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_preset_nginx),
    cmocka_unit_test(test_preset_caddy),
    cmocka_unit_test(test_preset_traefik),
    cmocka_unit_test(test_preset_envoy),
    cmocka_unit_test(test_preset_kong),
    cmocka_unit_test(test_dotted_paths_and_index),
    cmocka_unit_test(test_alternatives_skip_empty),
    cmocka_unit_test(test_header_objects_and_arrays),
    cmocka_unit_test(test_header_slots),
    cmocka_unit_test(test_extra_headers_and_prefix),
    cmocka_unit_test(test_key_fields),
    cmocka_unit_test(test_quoted_numbers),
    cmocka_unit_test(test_time_formats),
    cmocka_unit_test(test_latency_units),
    cmocka_unit_test(test_uri_composition),
    cmocka_unit_test(test_malformed_lines),
    cmocka_unit_test(test_errors_do_not_leak_input),
    cmocka_unit_test(test_invalid_utf8_is_mended),
    cmocka_unit_test(test_nul_in_string),
    cmocka_unit_test(test_strings_outlive_the_line),
    cmocka_unit_test(test_mapping_strings_copied),
    cmocka_unit_test(test_create_rejects_bad_mappings),
    cmocka_unit_test(test_presets_and_names),
    cmocka_unit_test(test_ops_table),
    cmocka_unit_test(test_guess_fixtures),
    cmocka_unit_test(test_guess_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
