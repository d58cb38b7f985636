/* test_endpoint.c — path → endpoint template (analyzer/endpoint.c).
 *
 * Paths are copied into heap buffers of exactly their length (no NUL), so AddressSanitizer
 * catches reads past n; the output buffer is exactly KW_ENDPOINT_MAX + 1 bytes on the heap.
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

#include "analyzer/endpoint.h"

static char *tmpl_n(const char *path, size_t n) {
  char *in = malloc(n ? n : 1), *out = malloc(KW_ENDPOINT_MAX + 1);
  size_t len;
  assert_non_null(in);
  assert_non_null(out);
  memcpy(in, path, n);
  memset(out, 'Z', KW_ENDPOINT_MAX + 1);
  len = kw_endpoint_template(in, n, out);
  free(in);
  assert_int_equal(len, strlen(out));
  assert_true(len <= KW_ENDPOINT_MAX);
  return out;
}

static void assert_tmpl(const char *path, const char *want) {
  char *got = tmpl_n(path, strlen(path));
  if (strcmp(got, want) != 0) {
    char msg[1024];
    snprintf(msg, sizeof(msg), "'%s' → '%s', want '%s'", path, got, want);
    free(got);
    fail_msg("%s", msg);
  }
  free(got);
}

static void test_names_kept(void **state) {
  (void)state;
  assert_tmpl("/api/user/current", "/api/user/current");
  assert_tmpl("/api/collection/root/items", "/api/collection/root/items");
  assert_tmpl("/api/session/properties", "/api/session/properties");
  assert_tmpl("/v1/metrics", "/v1/metrics");
  assert_tmpl("/api/dataset", "/api/dataset");
  assert_tmpl("/health", "/health");
  assert_tmpl("/api/deadbeefdeadbeef", "/api/deadbeefdeadbeef"); /* hex without digits */
  assert_tmpl("/api/user-profile-settings", "/api/user-profile-settings"); /* no digits */
  assert_tmpl("/api/-5", "/api/-5");
  assert_tmpl("/api/v2", "/api/v2");
  assert_tmpl("/api/abc123", "/api/abc123"); /* short mixed segment */
}

static void test_numbers(void **state) {
  (void)state;
  assert_tmpl("/api/card/123", "/api/card/{id}");
  assert_tmpl("/api/card/123/query", "/api/card/{id}/query");
  assert_tmpl("/api/card/123/query/csv", "/api/card/{id}/query/csv");
  assert_tmpl("/api/card/1234/query", "/api/card/{id}/query");
  assert_tmpl("/api/dashboard/7/dashcard/0/card/99", "/api/dashboard/{id}/dashcard/{id}/card/{id}");
  assert_tmpl("/0", "/{id}");
  assert_tmpl("/20240115", "/{id}"); /* all digits wins over other readings */
  assert_tmpl("/12345678901234567890123456789012345678901234567890", "/{id}");
}

static void test_uuid(void **state) {
  (void)state;
  assert_tmpl("/api/table/cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2/fks",
              "/api/table/{uuid}/fks");
  assert_tmpl("/api/x/CC21D9B0-CF5C-432B-8C7E-98AEB7988CD2", "/api/x/{uuid}");
  /* a dash out of place is not a UUID (still hex-ish but has dashes: kept or a token) */
  assert_tmpl("/x/cc21d9b0c-f5c-432b-8c7e-98aeb7988cd2", "/x/{token}");
  assert_tmpl("/x/gc21d9b0-cf5c-432b-8c7e-98aeb7988cd2", "/x/{token}");
}

static void test_hex(void **state) {
  (void)state;
  assert_tmpl("/api/object/2f6946328ffc4946b8c9120704a4a155", "/api/object/{hex}");
  assert_tmpl("/commit/0123456789abcdef", "/commit/{hex}");        /* 16 */
  assert_tmpl("/commit/0123456789ABCDEF0", "/commit/{hex}");
  assert_tmpl("/commit/0123456789abcde", "/commit/0123456789abcde"); /* 15: a name */
}

static void test_dates(void **state) {
  (void)state;
  assert_tmpl("/api/report/2026-11-22", "/api/report/{date}");
  assert_tmpl("/api/report/2026-11-22/rows", "/api/report/{date}/rows");
  assert_tmpl("/api/report/2026-1-22", "/api/report/2026-1-22");
  assert_tmpl("/api/report/2026/11/22", "/api/report/{id}/{id}/{id}");
}

static void test_tokens(void **state) {
  (void)state;
  assert_tmpl("/api/public/card/Zx8Kq2LmN4pR7sT1vW3yB5dF6gH9jJ0k",
              "/api/public/card/{token}");
  assert_tmpl("/s/mb_3q2+7vbg1Nw0Oc2Y5FxRk8tq4Zz", "/s/{token}");
  assert_tmpl("/s/abc_DEF-ghi%2F123=xyz", "/s/{token}");
  assert_tmpl("/s/abcdefghij0123456789", "/s/{token}"); /* 20 */
  assert_tmpl("/s/abcdefghij012345678", "/s/abcdefghij012345678"); /* 19 */
  assert_tmpl("/s/abcdefghijklmnopqrstuvwxyz", "/s/abcdefghijklmnopqrstuvwxyz"); /* no digit */
  assert_tmpl("/s/abcdefghij.0123456789", "/s/abcdefghij.0123456789"); /* '.' */
}

static void test_long_segments(void **state) {
  char path[200];
  (void)state;
  path[0] = '/';
  memset(path + 1, 'a', 65);
  path[66] = '\0';
  assert_tmpl(path, "/{seg}"); /* 65 > KW_ENDPOINT_SEG_MAX */
  path[65] = '\0';
  assert_tmpl(path, path); /* exactly 64: kept */
  memcpy(path, "/x/", 3);
  memset(path + 3, 'b', 100);
  memcpy(path + 103, "/y", 3);
  assert_tmpl(path, "/x/{seg}/y");
}

static void test_query_and_fragment_dropped(void **state) {
  (void)state;
  assert_tmpl("/api/card/17?format=json", "/api/card/{id}");
  assert_tmpl("/api/card/17?x=/1/2", "/api/card/{id}");
  assert_tmpl("/api/card/17#frag/9", "/api/card/{id}");
  assert_tmpl("/api/card?", "/api/card");
  assert_tmpl("/?a=1", "/");
}

static void test_relative_and_empty(void **state) {
  char *got;
  (void)state;
  assert_tmpl("", "/");
  assert_tmpl("/", "/");
  assert_tmpl("api/card/1", "/");
  assert_tmpl("*", "/");
  assert_tmpl("?a=1", "/");
  assert_tmpl("http://example.com/api/card/1", "/");
  /* empty segments and a trailing slash are kept */
  assert_tmpl("/api/", "/api/");
  assert_tmpl("//api//1", "//api//{id}");
  /* only n bytes are read */
  got = tmpl_n("/api/card/123/query", 12);
  assert_string_equal(got, "/api/card/{id}");
  free(got);
  got = tmpl_n("/api/card/123?x", 10);
  assert_string_equal(got, "/api/card/");
  free(got);
  got = tmpl_n("/api/card/123/query", 0);
  assert_string_equal(got, "/");
  free(got);
}

static void test_percent_encoding_kept(void **state) {
  (void)state;
  assert_tmpl("/api/search/caf%C3%A9", "/api/search/caf%C3%A9");
  assert_tmpl("/api/a%2Fb", "/api/a%2Fb");
}

/* Templates are capped at KW_ENDPOINT_MAX bytes; a longer one keeps its first segments
 * and ends in "/{more}"; one that fits is never cut. */
static void test_cap(void **state) {
  char path[1024], want[1024];
  size_t o = 0;
  (void)state;

  /* 16 segments of 16 bytes: exactly 256, kept whole */
  for (int i = 0; i < 16; i++)
    o += (size_t)snprintf(path + o, sizeof(path) - o, "/segm%011d", i);
  assert_int_equal(strlen(path), 256);
  assert_tmpl(path, path);

  /* 17 such segments: 15 fit with room for "/{more}" */
  snprintf(path + o, sizeof(path) - o, "/segm%011d", 16);
  memcpy(want, path, 15 * 16);
  memcpy(want + 15 * 16, "/{more}", 8);
  assert_tmpl(path, want);

  /* many segments of 11 bytes: 22 fit (242 bytes) and "/{more}" (249) */
  o = 0;
  for (int i = 0; i < 30; i++)
    o += (size_t)snprintf(path + o, sizeof(path) - o, "/abcdefghij");
  memcpy(want, path, 22 * 11);
  memcpy(want + 22 * 11, "/{more}", 8);
  assert_tmpl(path, want);

  /* placeholders count with their own length */
  o = 0;
  for (int i = 0; i < 60; i++)
    o += (size_t)snprintf(path + o, sizeof(path) - o, "/%d", 1000 + i);
  char *got = tmpl_n(path, strlen(path));
  assert_int_equal(strlen(got), 245 + 7); /* 49 × "/{id}" then "/{more}" */
  assert_string_equal(got + 245, "/{more}");
  assert_memory_equal(got, "/{id}/{id}", 10);
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_kept),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_uuid),
      cmocka_unit_test(test_hex),
      cmocka_unit_test(test_dates),
      cmocka_unit_test(test_tokens),
      cmocka_unit_test(test_long_segments),
      cmocka_unit_test(test_query_and_fragment_dropped),
      cmocka_unit_test(test_relative_and_empty),
      cmocka_unit_test(test_percent_encoding_kept),
      cmocka_unit_test(test_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
