/* test_dict.c — the bounded byte-string → int64 map (sidecar/dict.c).
 *
 * Keys are passed from heap buffers of exactly their length so AddressSanitizer catches a
 * read past n.  Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sidecar/dict.h"
#include "sidecar/err.h"

static int put(struct kw_dict *d, const void *key, size_t n, int64_t v) {
  char *copy = malloc(n ? n : 1);
  int rc;
  assert_non_null(copy);
  memcpy(copy, key, n);
  rc = kw_dict_put(d, copy, n, v);
  memset(copy, 0xee, n); /* the map must have copied the key */
  free(copy);
  return rc;
}

static int get(const struct kw_dict *d, const void *key, size_t n, int64_t *v) {
  char *copy = malloc(n ? n : 1);
  int rc;
  assert_non_null(copy);
  memcpy(copy, key, n);
  rc = kw_dict_get(d, copy, n, v);
  free(copy);
  return rc;
}

static void test_put_get_replace(void **state) {
  struct kw_dict *d = NULL;
  int64_t v = 0;
  (void)state;

  assert_int_equal(kw_dict_create(100, &d), 0);
  assert_non_null(d);
  assert_int_equal(kw_dict_count(d), 0);
  assert_int_equal(get(d, "GET /api/card/{id}", 18, &v), 0);
  assert_int_equal(put(d, "GET /api/card/{id}", 18, 42), 0);
  assert_int_equal(put(d, "POST /api/card/{id}", 19, -7), 0);
  assert_int_equal(kw_dict_count(d), 2);
  v = 0;
  assert_int_equal(get(d, "GET /api/card/{id}", 18, &v), 1);
  assert_int_equal(v, 42);
  assert_int_equal(get(d, "POST /api/card/{id}", 19, &v), 1);
  assert_int_equal(v, -7);
  /* replace keeps the count */
  assert_int_equal(put(d, "GET /api/card/{id}", 18, INT64_MAX), 0);
  assert_int_equal(kw_dict_count(d), 2);
  assert_int_equal(get(d, "GET /api/card/{id}", 18, &v), 1);
  assert_int_equal(v, INT64_MAX);
  /* *val is untouched on a miss */
  v = 99;
  assert_int_equal(get(d, "GET /api/card", 13, &v), 0);
  assert_int_equal(v, 99);
  kw_dict_destroy(d);
  kw_dict_destroy(NULL);
}

static void test_binary_keys(void **state) {
  struct kw_dict *d = NULL;
  int64_t v = 0;
  const uint8_t v4[4] = {10, 0, 0, 1}, v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
  (void)state;

  assert_int_equal(kw_dict_create(100, &d), 0);
  /* keys that are prefixes of each other, embedded NULs, the empty key */
  assert_int_equal(put(d, "ab", 2, 1), 0);
  assert_int_equal(put(d, "abc", 3, 2), 0);
  assert_int_equal(put(d, "ab\0", 3, 3), 0);
  assert_int_equal(put(d, "\0\0", 2, 4), 0);
  assert_int_equal(put(d, "\0", 1, 5), 0);
  assert_int_equal(put(d, v4, sizeof(v4), 6), 0);
  assert_int_equal(put(d, v6, sizeof(v6), 7), 0);
  assert_int_equal(put(d, "", 0, 8), 0);
  assert_int_equal(kw_dict_count(d), 8);
  assert_int_equal(get(d, "ab", 2, &v), 1);
  assert_int_equal(v, 1);
  assert_int_equal(get(d, "abc", 3, &v), 1);
  assert_int_equal(v, 2);
  assert_int_equal(get(d, "ab\0", 3, &v), 1);
  assert_int_equal(v, 3);
  assert_int_equal(get(d, "\0\0", 2, &v), 1);
  assert_int_equal(v, 4);
  assert_int_equal(get(d, "\0", 1, &v), 1);
  assert_int_equal(v, 5);
  assert_int_equal(get(d, v4, sizeof(v4), &v), 1);
  assert_int_equal(v, 6);
  assert_int_equal(get(d, v6, sizeof(v6), &v), 1);
  assert_int_equal(v, 7);
  assert_int_equal(get(d, "", 0, &v), 1);
  assert_int_equal(v, 8);
  assert_int_equal(get(d, "a", 1, &v), 0);
  assert_int_equal(get(d, "\0\0\0", 3, &v), 0);
  kw_dict_destroy(d);
}

/* The empty key as the very first entry (nothing in the arena yet). */
static void test_empty_key_first(void **state) {
  struct kw_dict *d = NULL;
  int64_t v = 0;
  (void)state;

  assert_int_equal(kw_dict_create(10, &d), 0);
  assert_int_equal(get(d, "", 0, &v), 0);
  assert_int_equal(put(d, "", 0, 17), 0);
  assert_int_equal(get(d, "", 0, &v), 1);
  assert_int_equal(v, 17);
  assert_int_equal(put(d, "x", 1, 18), 0);
  assert_int_equal(get(d, "", 0, &v), 1);
  assert_int_equal(v, 17);
  kw_dict_destroy(d);
}

static void test_growth(void **state) {
  enum { N = 100000 };
  struct kw_dict *d = NULL;
  char key[64];
  int64_t v;
  size_t bytes0;
  (void)state;

  assert_int_equal(kw_dict_create(N, &d), 0);
  bytes0 = kw_dict_bytes(d);
  for (int i = 0; i < N; i++) {
    int n = snprintf(key, sizeof(key), "Mozilla/5.0 (agent %d)", i);
    assert_int_equal(put(d, key, (size_t)n, (int64_t)i * 3), 0);
  }
  assert_int_equal(kw_dict_count(d), N);
  assert_true(kw_dict_bytes(d) > bytes0);
  for (int i = 0; i < N; i++) {
    int n = snprintf(key, sizeof(key), "Mozilla/5.0 (agent %d)", i);
    v = -1;
    if (get(d, key, (size_t)n, &v) != 1 || v != (int64_t)i * 3)
      fail_msg("key %d: got %lld", i, (long long)v);
  }
  /* keys of very different lengths, past the first arena chunk */
  char *big = malloc(10000);
  assert_non_null(big);
  memset(big, 'z', 10000);
  kw_dict_clear(d);
  for (size_t n = 1; n <= 10000; n += 999)
    assert_int_equal(put(d, big, n, (int64_t)n), 0);
  for (size_t n = 1; n <= 10000; n += 999) {
    assert_int_equal(get(d, big, n, &v), 1);
    assert_int_equal(v, (int64_t)n);
  }
  free(big);
  kw_dict_destroy(d);
}

static void test_max_bound(void **state) {
  struct kw_dict *d = NULL;
  int64_t v = 0;
  (void)state;

  assert_int_equal(kw_dict_create(3, &d), 0);
  assert_int_equal(put(d, "a", 1, 1), 0);
  assert_int_equal(put(d, "b", 1, 2), 0);
  assert_int_equal(put(d, "c", 1, 3), 0);
  assert_int_equal(put(d, "d", 1, 4), KW_ETOOLONG);
  assert_int_equal(kw_dict_count(d), 3);
  assert_int_equal(get(d, "d", 1, &v), 0);
  /* replacing an existing key is still allowed when full */
  assert_int_equal(put(d, "b", 1, 20), 0);
  assert_int_equal(get(d, "b", 1, &v), 1);
  assert_int_equal(v, 20);
  /* the owner clears and goes on */
  kw_dict_clear(d);
  assert_int_equal(put(d, "d", 1, 4), 0);
  assert_int_equal(kw_dict_count(d), 1);
  kw_dict_destroy(d);

  /* max 0 still holds one entry */
  assert_int_equal(kw_dict_create(0, &d), 0);
  assert_int_equal(put(d, "a", 1, 1), 0);
  assert_int_equal(put(d, "b", 1, 2), KW_ETOOLONG);
  kw_dict_destroy(d);
}

static void test_clear(void **state) {
  struct kw_dict *d = NULL;
  char key[32];
  int64_t v;
  size_t bytes;
  (void)state;

  assert_int_equal(kw_dict_create(1000, &d), 0);
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(key, sizeof(key), "k%d", i);
    assert_int_equal(put(d, key, (size_t)n, i), 0);
  }
  bytes = kw_dict_bytes(d);
  kw_dict_clear(d);
  assert_int_equal(kw_dict_count(d), 0);
  assert_int_equal(kw_dict_bytes(d), bytes); /* the allocation is kept */
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(key, sizeof(key), "k%d", i);
    assert_int_equal(get(d, key, (size_t)n, &v), 0);
  }
  /* refilled with other values: no stale entry or key bytes show through */
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(key, sizeof(key), "K%d", i);
    assert_int_equal(put(d, key, (size_t)n, -i), 0);
  }
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(key, sizeof(key), "K%d", i);
    assert_int_equal(get(d, key, (size_t)n, &v), 1);
    assert_int_equal(v, -i);
    n = snprintf(key, sizeof(key), "k%d", i);
    assert_int_equal(get(d, key, (size_t)n, &v), 0);
  }
  assert_int_equal(kw_dict_count(d), 1000);
  assert_int_equal(kw_dict_bytes(d), bytes);
  kw_dict_destroy(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_get_replace),
      cmocka_unit_test(test_binary_keys),
      cmocka_unit_test(test_empty_key_first),
      cmocka_unit_test(test_growth),
      cmocka_unit_test(test_max_bound),
      cmocka_unit_test(test_clear),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
