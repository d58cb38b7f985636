/* test_keyid.c — key identity and redaction (collector/keyid.c).
 *
 * Records are built from heap copies of exactly each string's length (no NUL after it), so
 * AddressSanitizer catches reads past a field.  Expected fingerprints are computed with
 * kw_fingerprint_key() over the raw key the carrier should yield (test_fingerprint.c checks
 * that function against OpenSSL).  Every test that finds a key scans the kw_call's strings
 * for it.  An alarm turns a hang into a failure.  Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "collector/keyid.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"

#define SECRET "keywatch-test-secret-0123456789abcdef"
#define KEY "mb_3q2+7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM/I=" /* 47 bytes */
#define KEY2 "sk_live_abcdefgh12345678"
#define KONG_ID "2f6946328ffc4946b8c9120704a4a155"

static struct kw_config *g_cfg;
static struct kw_fingerprint *g_fp;
static struct kw_keyid *g_kid;

/* Heap copies handed out by S(); freed after each test. */
static void *g_allocs[256];
static size_t g_nallocs;

static struct kw_str S(const char *s) {
  size_t n = strlen(s);
  char *p = malloc(n ? n : 1);
  assert_non_null(p);
  memcpy(p, s, n);
  assert_true(g_nallocs < sizeof(g_allocs) / sizeof(g_allocs[0]));
  g_allocs[g_nallocs++] = p;
  return kw_str_make(p, n);
}

static struct kw_str SN(const char *s, size_t n) {
  char *p = malloc(n ? n : 1);
  assert_non_null(p);
  memcpy(p, s, n);
  assert_true(g_nallocs < sizeof(g_allocs) / sizeof(g_allocs[0]));
  g_allocs[g_nallocs++] = p;
  return kw_str_make(p, n);
}

static int setup(void **state) {
  (void)state;
  if (kw_config_default(&g_cfg) != 0 ||
      kw_fingerprint_create_from(SECRET, strlen(SECRET), &g_fp) != 0 ||
      kw_keyid_create(&g_cfg->identity, g_fp, &g_kid) != 0)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  kw_keyid_destroy(g_kid);
  kw_fingerprint_destroy(g_fp);
  kw_config_destroy(g_cfg);
  g_kid = NULL;
  g_fp = NULL;
  g_cfg = NULL;
  for (size_t i = 0; i < g_nallocs; i++)
    free(g_allocs[i]);
  g_nallocs = 0;
  return 0;
}

static void rec_init(struct kw_rec *rec, const char *uri) {
  kw_rec_clear(rec);
  rec->method = S("GET");
  if (uri != NULL)
    rec->uri = S(uri);
}

static void hdr(struct kw_rec *rec, const char *name, const char *value) {
  kw_rec_add_hdr(rec, S(name), S(value));
}

static void fp_of(const char *key, size_t n, uint8_t out[KW_FP_LEN]) {
  kw_fingerprint_key(g_fp, key, n, out);
}

static int contains(struct kw_str s, const char *needle, size_t n) {
  return s.p != NULL && n > 0 && memmem(s.p, s.n, needle, n) != NULL;
}

/* The raw key must not be anywhere in what the call carries. */
static void assert_key_absent(const struct kw_call *c, const char *key, size_t n) {
  assert_false(contains(c->path, key, n));
  assert_false(contains(c->method, key, n));
  assert_false(contains(c->host, key, n));
  assert_false(contains(c->user_agent, key, n));
  assert_false(contains(c->endpoint, key, n));
  assert_false(contains(kw_str_make(c->prefix, strlen(c->prefix)), key, n));
}

static void assert_path(const struct kw_call *c, const char *want) {
  if (c->path.n != strlen(want) || memcmp(c->path.p, want, c->path.n) != 0)
    fail_msg("path '%.*s', want '%s'", (int)c->path.n, c->path.p ? c->path.p : "",
             want);
}

/* Applies rec with kid and checks that exactly `key` was found (NULL: anonymous). */
static void apply_expect(struct kw_keyid *kid, const struct kw_rec *rec, const char *key,
                         size_t keylen, struct kw_call *call) {
  uint8_t want[KW_FP_LEN];
  int found;

  memset(call, 0xa5, sizeof(*call));
  call->endpoint = KW_STR_NULL;
  found = kw_keyid_apply(kid, rec, call);
  if (key == NULL) {
    static const uint8_t zero[KW_FP_LEN];
    assert_int_equal(found, 0);
    assert_false(call->has_key);
    assert_memory_equal(call->fp, zero, KW_FP_LEN);
    assert_string_equal(call->prefix, "");
    return;
  }
  assert_int_equal(found, 1);
  assert_true(call->has_key);
  fp_of(key, keylen, want);
  assert_memory_equal(call->fp, want, KW_FP_LEN);
  assert_key_absent(call, key, keylen);
}

static void expect_key(const struct kw_rec *rec, const char *key, struct kw_call *call) {
  apply_expect(g_kid, rec, key, key ? strlen(key) : 0, call);
}

static void test_rec_key(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/api/card/1");
  rec.key = S(KEY);
  expect_key(&rec, KEY, &call);
  assert_string_equal(call.prefix, "mb_3q2+");
  assert_path(&call, "/api/card/1");
}

static void test_rec_key_id(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/api/card/42?ignore_cache=true");
  rec.key_id = S(KONG_ID);
  expect_key(&rec, "id:" KONG_ID, &call);
  /* ids are not secret: the prefix is taken from the id, without "id:" */
  assert_int_equal(strncmp(call.prefix, KONG_ID, strlen(call.prefix)), 0);
  assert_true(strlen(call.prefix) >= 7);
  assert_path(&call, "/api/card/42?ignore_cache=true");

  /* a key id and the same text as a raw key are different identities */
  uint8_t raw[KW_FP_LEN];
  fp_of(KONG_ID, strlen(KONG_ID), raw);
  assert_memory_not_equal(call.fp, raw, KW_FP_LEN);
}

static void test_headers(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/api/user/current");
  hdr(&rec, "user-agent", "curl/8.5.0");
  hdr(&rec, "x-api-key", "  " KEY "\t");
  expect_key(&rec, KEY, &call); /* trimmed */
  assert_string_equal(call.prefix, "mb_3q2+");

  /* names compare case-insensitively */
  rec_init(&rec, "/api/user/current");
  hdr(&rec, "X-Api-Key", KEY);
  expect_key(&rec, KEY, &call);
  rec_init(&rec, "/");
  hdr(&rec, "APIKEY", KEY2);
  expect_key(&rec, KEY2, &call);
  rec_init(&rec, "/");
  hdr(&rec, "x-api-token", KEY2);
  expect_key(&rec, KEY2, &call);

  /* the configured order decides, not the order in the line: x-api-key before apikey */
  rec_init(&rec, "/");
  hdr(&rec, "apikey", KEY2);
  hdr(&rec, "x-api-key", KEY);
  expect_key(&rec, KEY, &call);

  /* a header that is not configured carries nothing; an empty one is skipped */
  rec_init(&rec, "/");
  hdr(&rec, "x-secret-key", KEY);
  hdr(&rec, "x-api-key", "   ");
  expect_key(&rec, NULL, &call);
}

static void test_header_too_long(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  char *big = malloc(KW_KEY_MAX + 2);
  (void)state;

  assert_non_null(big);
  memset(big, 'k', KW_KEY_MAX + 1);
  big[KW_KEY_MAX + 1] = '\0';
  rec_init(&rec, "/");
  hdr(&rec, "x-api-key", big);
  expect_key(&rec, NULL, &call); /* not a key: anonymous */
  hdr(&rec, "apikey", KEY2);
  expect_key(&rec, KEY2, &call); /* the next carrier is used */
  big[KW_KEY_MAX] = '\0';        /* exactly KW_KEY_MAX is a key */
  rec_init(&rec, "/");
  hdr(&rec, "x-api-key", big);
  expect_key(&rec, big, &call);
  free(big);
}

static void test_authorization(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  static const struct {
    const char *value, *key;
  } cases[] = {
      {"Bearer " KEY, KEY},
      {"bearer " KEY, KEY},
      {"BEARER   " KEY "  ", KEY},
      {"Token " KEY2, KEY2},
      {"Token token=\"" KEY2 "\", realm=\"api\"", KEY2},
      {"Token token=" KEY2 ", realm=api", KEY2},
      {"Token token=" KEY2, KEY2},
      {"apiKey " KEY2, KEY2},
      {"ApiKey " KEY2, KEY2},
      {"Basic dXNlcjEyMzQ1NjpwYXNz", "user123456"},   /* user123456:pass */
      {"Basic b25seXVzZXIxMjM0NQ==", "onlyuser12345"}, /* no colon: all of it */
      {"Digest username=\"x\"", NULL},
      {"Bearer", NULL},
      {"Bearer    ", NULL},
      {KEY, NULL},
      {"Token token=\"" KEY2, NULL},             /* unterminated quote */
      {"Token token=\"\"", NULL},
      {"Basic OnNlY3JldHBhc3M=", NULL},           /* ":secretpass": no user */
      {"Basic dXNlcgB4Onk=", NULL},               /* NUL in the user */
      {"Basic !!!!", NULL},                       /* not base64 */
      {"Basic YWJj=", NULL},                      /* length not a multiple of 4 */
  };
  (void)state;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    rec_init(&rec, "/api/card/1");
    hdr(&rec, "authorization", cases[i].value);
    print_message("Authorization: %s\n", cases[i].value);
    expect_key(&rec, cases[i].key, &call);
  }
}

static void test_from_authorization_direct(void **state) {
  char out[64], *v;
  size_t n;
  (void)state;

  n = strlen("Bearer " KEY);
  v = malloc(n);
  assert_non_null(v);
  memcpy(v, "Bearer " KEY, n);
  assert_int_equal(kw_keyid_from_authorization(g_kid, v, n, out, sizeof(out)), strlen(KEY));
  assert_memory_equal(out, KEY, strlen(KEY));
  /* an output buffer too small gives nothing rather than a cut key */
  assert_int_equal(kw_keyid_from_authorization(g_kid, v, n, out, strlen(KEY)), 0);
  assert_int_equal(kw_keyid_from_authorization(g_kid, v, n, out, strlen(KEY) + 1),
                   strlen(KEY));
  /* only the first n bytes count */
  assert_int_equal(kw_keyid_from_authorization(g_kid, v, 10, out, sizeof(out)), 3);
  assert_memory_equal(out, "mb_", 3);
  assert_int_equal(kw_keyid_from_authorization(g_kid, v, 0, out, sizeof(out)), 0);
  free(v);
  assert_int_equal(kw_keyid_from_authorization(g_kid, "Basic dXNlcjEyMzQ1NjpwYXNz", 26,
                                               out, 6),
                   0); /* "user123456" needs 11 bytes */
}

static void test_schemes_disabled(void **state) {
  struct kw_identity_cfg id = g_cfg->identity;
  char *only_bearer[] = {"bearer"};
  struct kw_keyid *kid = NULL;
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  id.auth_schemes = only_bearer;
  id.auth_schemes_count = 1;
  assert_int_equal(kw_keyid_create(&id, g_fp, &kid), 0);
  rec_init(&rec, "/");
  hdr(&rec, "authorization", "Bearer " KEY);
  apply_expect(kid, &rec, KEY, strlen(KEY), &call);
  static const char *const off[] = {"Token " KEY2, "apiKey " KEY2,
                                    "Basic dXNlcjEyMzQ1NjpwYXNz"};
  for (size_t i = 0; i < 3; i++) {
    rec_init(&rec, "/");
    hdr(&rec, "authorization", off[i]);
    apply_expect(kid, &rec, NULL, 0, &call);
  }
  kw_keyid_destroy(kid);

  id.auth_schemes = NULL;
  id.auth_schemes_count = 0;
  assert_int_equal(kw_keyid_create(&id, g_fp, &kid), 0);
  rec_init(&rec, "/");
  hdr(&rec, "authorization", "Bearer " KEY);
  apply_expect(kid, &rec, NULL, 0, &call);
  kw_keyid_destroy(kid);

  /* no key headers configured: x-api-key is just a header */
  id = g_cfg->identity;
  id.headers = NULL;
  id.headers_count = 0;
  assert_int_equal(kw_keyid_create(&id, g_fp, &kid), 0);
  rec_init(&rec, "/");
  hdr(&rec, "x-api-key", KEY);
  apply_expect(kid, &rec, NULL, 0, &call);
  kw_keyid_destroy(kid);
}

static void test_arg_fields(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  /* nginx $arg_api_key: the raw (percent-encoded) value of the parameter */
  rec_init(&rec, "/api/card/1?api_key=mb_3q2%2B7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM%2FI%3D");
  hdr(&rec, "arg:api_key", "mb_3q2%2B7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM%2fI%3D");
  expect_key(&rec, KEY, &call);
  assert_string_equal(call.prefix, "mb_3q2+");
  assert_path(&call, "/api/card/1?api_key=REDACTED");
  assert_key_absent(&call, "mb_3q2%2B7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM", 46);

  /* '+' is a space; a broken escape stays as it is */
  rec_init(&rec, "/");
  hdr(&rec, "arg:access_token", "abc+def%zz%4");
  expect_key(&rec, "abc def%zz%4", &call);

  /* an arg field for a parameter that is not a key carrier is ignored */
  rec_init(&rec, "/");
  hdr(&rec, "arg:page", "12345678901234567890");
  expect_key(&rec, NULL, &call);
}

static void test_query_param(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/api/card/1?foo=1&api_key=mb_3q2%2B7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM"
                 "%2FI%3D&x=2");
  expect_key(&rec, KEY, &call);
  assert_path(&call, "/api/card/1?foo=1&api_key=REDACTED&x=2");
  assert_true(call.has_query);

  rec_init(&rec, "/q?APIKEY=" KEY2); /* names are case-insensitive */
  expect_key(&rec, KEY2, &call);
  assert_path(&call, "/q?APIKEY=REDACTED");

  /* empty values and a name that merely contains a carrier's name are no key */
  rec_init(&rec, "/q?api_key=&my_api_key=" KEY2 "&api_keys=" KEY2);
  expect_key(&rec, NULL, &call);
  assert_path(&call, "/q?api_key=REDACTED&my_api_key=" KEY2 "&api_keys=" KEY2);
}

/* A parameter configured as a key carrier is redacted even when redact_params omits it,
 * and even when the key is percent-encoded there (so a plain search cannot find it). */
static void test_query_carrier_always_redacted(void **state) {
  struct kw_identity_cfg id = g_cfg->identity;
  char *carrier[] = {"k"};
  char *redact[] = {"password"};
  struct kw_keyid *kid = NULL;
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  id.query_params = carrier;
  id.query_params_count = 1;
  id.redact_params = redact;
  id.redact_params_count = 1;
  assert_int_equal(kw_keyid_create(&id, g_fp, &kid), 0);
  rec_init(&rec, "/x?k=mb_3q2%2B7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM%2FI%3D&password=pw");
  apply_expect(kid, &rec, KEY, strlen(KEY), &call);
  assert_path(&call, "/x?k=REDACTED&password=REDACTED");
  kw_keyid_destroy(kid);
}

static void test_anonymous(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/api/health");
  hdr(&rec, "user-agent", "kube-probe/1.29");
  hdr(&rec, "authorization", "");
  hdr(&rec, "x-api-key", "");
  expect_key(&rec, NULL, &call);
  assert_path(&call, "/api/health");
  assert_false(call.has_query);

  /* a record without a URI at all */
  rec_init(&rec, NULL);
  kw_rec_add_hdr(&rec, S("authorization"), KW_STR_NULL);
  kw_rec_add_hdr(&rec, S("x-api-key"), KW_STR_NULL);
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.path.n, 0);
  assert_false(call.has_query);
}

static void test_redaction(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/p?token=abc&keep=1&Password=hunter2&sig=zz&flag&code=&x=token=y");
  expect_key(&rec, NULL, &call);
  assert_path(&call,
              "/p?token=REDACTED&keep=1&Password=REDACTED&sig=REDACTED&flag&code=REDACTED"
              "&x=token=y");
  assert_true(call.has_query);

  rec_init(&rec, "/p?");
  expect_key(&rec, NULL, &call);
  assert_path(&call, "/p?");
  assert_true(call.has_query);

  rec_init(&rec, "/p?a=1&&secret=s3cr3t&");
  expect_key(&rec, NULL, &call);
  assert_path(&call, "/p?a=1&&secret=REDACTED&");
}

static void test_key_elsewhere_in_path(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/v1/keys/" KEY2 "/usage?other=" KEY2 "&again=x" KEY2 KEY2);
  hdr(&rec, "x-api-key", KEY2);
  expect_key(&rec, KEY2, &call);
  assert_path(&call, "/v1/keys/REDACTED/usage?other=REDACTED&again=xREDACTEDREDACTED");

  /* short keys (< 8 bytes) are not searched for: they would match ordinary text */
  rec_init(&rec, "/v1/abc123/x");
  hdr(&rec, "x-api-key", "abc123");
  assert_int_equal(kw_keyid_apply(g_kid, &rec, &call), 1);
  assert_path(&call, "/v1/abc123/x");
}

/* The key percent-encoded in the path (a client that escapes it as a path segment): each
 * encoded span goes, whatever mix of raw and %XX bytes (either case) it uses. */
static void test_key_encoded_in_path(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/api/keys/mb_a%2Fb%2BcdefghXYZ%3D/usage");
  hdr(&rec, "x-api-key", "mb_a/b+cdefghXYZ=");
  expect_key(&rec, "mb_a/b+cdefghXYZ=", &call);
  assert_path(&call, "/api/keys/REDACTED/usage");

  rec_init(&rec, "/k/%73%6b%5F%6C%69%76%65_abcdefgh12345678/x/sk_live_abcdefgh12345678%");
  hdr(&rec, "x-api-key", KEY2);
  expect_key(&rec, KEY2, &call);
  assert_path(&call, "/k/REDACTED/x/REDACTED%");

  /* a broken escape is text, not the key */
  rec_init(&rec, "/k/sk_live_abcdefgh1234567%8/%zz");
  hdr(&rec, "x-api-key", KEY2);
  expect_key(&rec, KEY2, &call);
  assert_path(&call, "/k/sk_live_abcdefgh1234567%8/%zz");
}

/* A key that reads "REDACTED" must not make the replacement loop forever. */
static void test_key_equal_to_marker(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  (void)state;

  rec_init(&rec, "/x/REDACTED?token=abc");
  hdr(&rec, "x-api-key", "REDACTED");
  kw_keyid_apply(g_kid, &rec, &call);
  assert_true(call.has_key);
  assert_path(&call, "/x/REDACTED?token=REDACTED");

  rec_init(&rec, "/x/REDACTEDREDACTED");
  hdr(&rec, "x-api-key", "REDACTEDREDACTED");
  kw_keyid_apply(g_kid, &rec, &call);
  assert_path(&call, "/x/REDACTED");
}

static void test_path_cap(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  char *uri = malloc(20000);
  const char mark[] = "\xe2\x80\xa6"; /* "…" */
  (void)state;

  assert_non_null(uri);
  /* a long path part: cut at 8192 bytes and marked */
  uri[0] = '/';
  memset(uri + 1, 'a', 9999);
  uri[10000] = '\0';
  rec_init(&rec, uri);
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.path.n, 8192 + 3);
  assert_memory_equal(call.path.p, uri, 8192);
  assert_memory_equal(call.path.p + 8192, mark, 3);

  /* exactly 8192 bytes: kept whole, no mark */
  uri[8192] = '\0';
  rec_init(&rec, uri);
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.path.n, 8192);

  /* a long query: the listed value is never cut in half, the rest is dropped and marked */
  memset(uri, 'b', 8180);
  uri[0] = '/';
  uri[8180] = '\0';
  strcat(uri, "?token=abcdefgh&x=1");
  rec_init(&rec, uri);
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.path.n, 8180 + 3);
  assert_memory_equal(call.path.p + 8180, mark, 3);
  assert_false(contains(call.path, "abcd", 4));

  /* a key that straddles the cut leaves no part of itself behind */
  static const char key[] = "sk_live_0123456789abcdefghijklmnopqrstuvwxyz";
  memset(uri, 'c', 8170);
  uri[0] = '/';
  memcpy(uri + 8170, key, sizeof(key)); /* with its NUL */
  rec_init(&rec, uri);
  hdr(&rec, "x-api-key", key);
  expect_key(&rec, key, &call);
  assert_int_equal(call.path.n, 8170 + 3);
  assert_memory_equal(call.path.p + 8170, mark, 3);
  assert_false(contains(call.path, "sk_live_", 8));
  free(uri);
}

static void test_precedence(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  const char *uri = "/api/card/1?api_key=from_uri_0123456789";
  (void)state;

  /* key > key_id > headers > Authorization > arg: fields > URI */
  rec_init(&rec, uri);
  rec.key = S("from_key_0123456789");
  rec.key_id = S("kong-credential-id");
  hdr(&rec, "authorization", "Bearer from_bearer_0123456789");
  hdr(&rec, "arg:api_key", "from_arg_0123456789");
  hdr(&rec, "x-api-key", "from_header_0123456789");
  expect_key(&rec, "from_key_0123456789", &call);
  rec.key = KW_STR_NULL;
  expect_key(&rec, "id:kong-credential-id", &call);
  rec.key_id = KW_STR_NULL;
  expect_key(&rec, "from_header_0123456789", &call);
  rec.nhdrs = 2; /* drop x-api-key */
  expect_key(&rec, "from_bearer_0123456789", &call);
  rec.hdrs[0] = rec.hdrs[1];
  rec.nhdrs = 1; /* drop authorization */
  expect_key(&rec, "from_arg_0123456789", &call);
  rec.nhdrs = 0;
  expect_key(&rec, "from_uri_0123456789", &call);
  assert_path(&call, "/api/card/1?api_key=REDACTED");
}

static void test_other_fields(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  char buf[64];
  (void)state;

  rec_init(&rec, "/api/dataset");
  rec.ts_us = 1762161302524102LL;
  rec.addr = S("203.0.113.7");
  rec.method = S("POST");
  rec.status = 202;
  rec.req_bytes = 154;
  rec.resp_bytes = 14890;
  rec.latency_us = 612000;
  rec.user_agent = S("Go-http-client/1.1");
  rec.host = S("metabase.internal");
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.ts_us, 1762161302524102LL);
  assert_int_equal(call.client.family, 4);
  assert_string_equal(kw_addr_format(&call.client, buf, sizeof(buf)), "203.0.113.7");
  assert_int_equal(call.method.n, 4);
  assert_memory_equal(call.method.p, "POST", 4);
  assert_int_equal(call.status, 202);
  assert_int_equal(call.req_bytes, 154);
  assert_int_equal(call.resp_bytes, 14890);
  assert_int_equal(call.latency_us, 612000);
  assert_ptr_equal(call.user_agent.p, rec.user_agent.p);
  assert_int_equal(call.host.n, strlen("metabase.internal"));
  assert_false(call.has_query);

  rec_init(&rec, "/");
  rec.addr = S("[2001:db8::1]:443");
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.client.family, 6);
  assert_string_equal(kw_addr_format(&call.client, buf, sizeof(buf)), "2001:db8::1");
  assert_int_equal(call.ts_us, 0); /* absent (-1) becomes 0 */
  assert_int_equal(call.req_bytes, -1);
  assert_int_equal(call.resp_bytes, -1);
  assert_int_equal(call.latency_us, -1);

  rec_init(&rec, "/");
  rec.addr = S("not-an-address");
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.client.family, 0);
  rec.addr = SN("10.0.0.1", 4); /* "10.0" */
  expect_key(&rec, NULL, &call);
  assert_int_equal(call.client.family, 0);
}

/* A client that echoes its key into its User-Agent does not get it stored there; a client
 * address list (X-Forwarded-For style) yields its first address. */
static void test_agent_and_address_list(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  char buf[64], ua[256];
  (void)state;

  rec_init(&rec, "/api/card/1");
  hdr(&rec, "x-api-key", KEY);
  snprintf(ua, sizeof(ua), "bot/1.0 (key=%s; again %s)", KEY, KEY);
  rec.user_agent = S(ua);
  rec.addr = S("198.51.100.4, 10.0.0.9");
  expect_key(&rec, KEY, &call); /* asserts the key is absent from every string */
  assert_int_equal(call.user_agent.n, strlen("bot/1.0 (key=REDACTED; again REDACTED)"));
  assert_memory_equal(call.user_agent.p, "bot/1.0 (key=REDACTED; again REDACTED)",
                      call.user_agent.n);
  assert_string_equal(kw_addr_format(&call.client, buf, sizeof(buf)), "198.51.100.4");

  rec_init(&rec, "/api/card/1");
  hdr(&rec, "x-api-key", KEY);
  rec.user_agent = S("plain/1.0");
  expect_key(&rec, KEY, &call);
  assert_ptr_equal(call.user_agent.p, rec.user_agent.p); /* untouched: no copy */
}

/* A call that took its key from an id field shows the id's prefix; one that did not (the
 * id was unusable) shows the key's normal, short prefix. */
static void test_prefix_source(void **state) {
  struct kw_rec rec;
  struct kw_call call;
  char *long_id = malloc(KW_KEY_MAX + 1);
  (void)state;

  assert_non_null(long_id);
  memset(long_id, 'i', KW_KEY_MAX);
  long_id[KW_KEY_MAX] = '\0';
  rec_init(&rec, "/");
  rec.key_id = S(long_id); /* too long to be used */
  hdr(&rec, "x-api-key", KEY);
  expect_key(&rec, KEY, &call);
  assert_string_equal(call.prefix, "mb_3q2+");
  free(long_id);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_rec_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_encoded_in_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_key_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_header_too_long, setup, teardown),
      cmocka_unit_test_setup_teardown(test_authorization, setup, teardown),
      cmocka_unit_test_setup_teardown(test_from_authorization_direct, setup, teardown),
      cmocka_unit_test_setup_teardown(test_schemes_disabled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_arg_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_query_param, setup, teardown),
      cmocka_unit_test_setup_teardown(test_query_carrier_always_redacted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_anonymous, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redaction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_elsewhere_in_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_equal_to_marker, setup, teardown),
      cmocka_unit_test_setup_teardown(test_path_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prefix_source, setup, teardown),
      cmocka_unit_test_setup_teardown(test_agent_and_address_list, setup, teardown),
  };
  alarm(60); /* a hang (an endless redaction loop) fails the run instead of stalling it */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
