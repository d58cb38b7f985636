/* test_timeutil.c — time parsing and formatting (sidecar/timeutil.c).
 *
 * Every parsed string is copied into a heap buffer of exactly its length (no NUL after
 * it), so AddressSanitizer catches any read past n.  Expected values were computed with
 * Python's calendar.timegm().  Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sidecar/err.h"
#include "sidecar/timeutil.h"

#define US 1000000LL
#define T_2000_10_10_205536 971211336LL /* 2000-10-10T20:55:36Z */
#define T_2026_11_22_051206 1795324326LL
#define T_2026_11_22 1795305600LL
#define T_2024_02_29 1709164800LL

typedef int (*parse_fn)(const char *s, size_t n, int64_t *us);

/* Parses the first n bytes of s from an exact-size heap copy. */
static int parse_n(parse_fn fn, const char *s, size_t n, int64_t *us) {
  char *copy = malloc(n > 0 ? n : 1);
  int rc;
  assert_non_null(copy);
  memcpy(copy, s, n);
  rc = fn(copy, n, us);
  free(copy);
  return rc;
}

static int parse(parse_fn fn, const char *s, int64_t *us) {
  return parse_n(fn, s, strlen(s), us);
}

static void assert_parses(parse_fn fn, const char *s, int64_t want) {
  int64_t got = -42;
  int rc = parse(fn, s, &got);
  if (rc != 0)
    fail_msg("'%s' rejected (%d)", s, rc);
  if (got != want)
    fail_msg("'%s' gave %lld, want %lld", s, (long long)got, (long long)want);
}

static void assert_rejects(parse_fn fn, const char *s) {
  int64_t got = -42;
  int rc = parse(fn, s, &got);
  if (rc != KW_EPARSE)
    fail_msg("'%s' gave rc %d (value %lld), want KW_EPARSE", s, rc, (long long)got);
  assert_int_equal(got, -42); /* output untouched on error */
}

static void test_days_from_civil(void **state) {
  (void)state;
  assert_int_equal(kw_days_from_civil(1970, 1, 1), 0);
  assert_int_equal(kw_days_from_civil(1969, 12, 31), -1);
  assert_int_equal(kw_days_from_civil(2000, 3, 1), 11017);
  assert_int_equal(kw_days_from_civil(1600, 1, 1), -135140);
  assert_int_equal(kw_days_from_civil(2400, 12, 31), 157419);
}

static void test_clf(void **state) {
  (void)state;
  assert_parses(kw_time_parse_clf, "10/Oct/2000:13:55:36 -0700", T_2000_10_10_205536 * US);
  assert_parses(kw_time_parse_clf, "10/Oct/2000:20:55:36 +0000", T_2000_10_10_205536 * US);
  assert_parses(kw_time_parse_clf, "10/Oct/2000:22:25:36 +0130", T_2000_10_10_205536 * US);
  assert_parses(kw_time_parse_clf, "22/Nov/2026:05:12:06 Z", T_2026_11_22_051206 * US);
  assert_parses(kw_time_parse_clf, "29/Feb/2024:00:00:00 +0000", T_2024_02_29 * US);
  assert_parses(kw_time_parse_clf, "01/Jan/1970:00:00:00 +0000", 0);
  assert_parses(kw_time_parse_clf, "31/Dec/1969:23:59:59 +0000", -1 * US);
}

static void test_clf_rejects(void **state) {
  (void)state;
  assert_rejects(kw_time_parse_clf, "");
  assert_rejects(kw_time_parse_clf, "10/oct/2000:13:55:36 -0700");  /* month case */
  assert_rejects(kw_time_parse_clf, "10/Foo/2000:13:55:36 -0700");
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:13:55:36");        /* no zone */
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:13:55:36 -07:00"); /* ISO offset */
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:13:55:36 -0700]"); /* trailing */
  assert_rejects(kw_time_parse_clf, "[10/Oct/2000:13:55:36 -0700]");
  assert_rejects(kw_time_parse_clf, "1/Oct/2000:13:55:36 -0700");
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:24:00:00 +0000");
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:13:60:00 +0000");
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:13:55:61 +0000");
  assert_rejects(kw_time_parse_clf, "00/Oct/2000:13:55:36 +0000");
  assert_rejects(kw_time_parse_clf, "32/Oct/2000:13:55:36 +0000");
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:13:55:36 +2400"); /* offset range */
  assert_rejects(kw_time_parse_clf, "10/Oct/2000:13:55:36 +0060");
  assert_rejects(kw_time_parse_clf, "10/O");
  assert_rejects(kw_time_parse_clf, "10/");
}

static void test_iso8601(void **state) {
  const int64_t t = T_2000_10_10_205536 * US;
  (void)state;
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36Z", t);
  assert_parses(kw_time_parse_iso8601, "2000-10-10t20:55:36z", t);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36+00:00", t);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T13:55:36-07:00", t);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T13:55:36-0700", t);
  assert_parses(kw_time_parse_iso8601, "2000-10-11T02:25:36+05:30", t);
  assert_parses(kw_time_parse_iso8601, "2000-10-10 20:55:36Z", t);
  assert_parses(kw_time_parse_iso8601, "2000-10-10 20:55:36+00:00", t);
  /* fractions of any precision; beyond µs is truncated, ',' as in ISO 8601 */
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36.5Z", t + 500000);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36.123Z", t + 123000);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36.123456Z", t + 123456);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36.123456789Z", t + 123456);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36.999999999999999999999Z",
                t + 999999);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:36,25+00:00", t + 250000);
  assert_parses(kw_time_parse_iso8601, "2000-10-10T13:55:36.000001-07:00", t + 1);
  /* offsets carry the date across midnight and year ends */
  assert_parses(kw_time_parse_iso8601, "2026-11-22T05:12:06Z", T_2026_11_22_051206 * US);
  assert_parses(kw_time_parse_iso8601, "2026-11-21T23:12:06-06:00",
                T_2026_11_22_051206 * US);
  assert_parses(kw_time_parse_iso8601, "2024-02-29T00:00:00Z", T_2024_02_29 * US);
  assert_parses(kw_time_parse_iso8601, "1970-01-01T00:00:00Z", 0);
  assert_parses(kw_time_parse_iso8601, "1970-01-01T00:59:59+01:00", -1 * US);
  /* leap second (RFC 3339 allows :60): counted into the next minute */
  assert_parses(kw_time_parse_iso8601, "2000-10-10T20:55:60Z",
                (T_2000_10_10_205536 + 24) * US);
}

static void test_iso8601_rejects(void **state) {
  (void)state;
  assert_rejects(kw_time_parse_iso8601, "");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:36"); /* no zone: ambiguous */
  assert_rejects(kw_time_parse_iso8601, "2000-10-10X20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:36.Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:36ZZ");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:36+00");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:36+0:00");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:36 +00:00");
  assert_rejects(kw_time_parse_iso8601, "2000-13-10T20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "2000-00-10T20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-00T20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-32T20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T24:00:00Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:60:00Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:61Z");
  assert_rejects(kw_time_parse_iso8601, "20000-10-10T20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "2000-1a-10T20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "+2000-10-10T20:55:36Z");
  assert_rejects(kw_time_parse_iso8601, "2000-10-10T20:55:36Z\n");
}

/* Days that do not exist in their month must not silently become another date. */
static void test_iso8601_impossible_dates(void **state) {
  (void)state;
  assert_rejects(kw_time_parse_iso8601, "2026-02-30T00:00:00Z");
  assert_rejects(kw_time_parse_iso8601, "2026-02-29T00:00:00Z"); /* not a leap year */
  assert_rejects(kw_time_parse_iso8601, "1900-02-29T00:00:00Z"); /* century rule */
  assert_rejects(kw_time_parse_iso8601, "2026-04-31T00:00:00Z");
  assert_rejects(kw_time_parse_iso8601, "2026-06-31T00:00:00Z");
  assert_rejects(kw_time_parse_iso8601, "2026-09-31T00:00:00Z");
  assert_rejects(kw_time_parse_iso8601, "2026-11-31T00:00:00Z");
  assert_rejects(kw_time_parse_clf, "30/Feb/2026:00:00:00 +0000");
  assert_rejects(kw_time_parse_clf, "31/Apr/2026:00:00:00 +0000");
  assert_parses(kw_time_parse_iso8601, "2000-02-29T00:00:00Z", 951782400LL * US);
  assert_parses(kw_time_parse_iso8601, "2026-01-31T00:00:00Z", 1769817600LL * US);
  assert_parses(kw_time_parse_iso8601, "2026-12-31T00:00:00Z", 1798675200LL * US);
}

static void test_epoch(void **state) {
  (void)state;
  assert_parses(kw_time_parse_epoch, "1700000000", 1700000000LL * US);
  assert_parses(kw_time_parse_epoch, "0", 0);
  assert_parses(kw_time_parse_epoch, "1700000000.123", 1700000000LL * US + 123000);
  assert_parses(kw_time_parse_epoch, "1700000000.000001", 1700000000LL * US + 1);
  assert_parses(kw_time_parse_epoch, "1700000000.1234567891234", 1700000000LL * US + 123456);
  assert_parses(kw_time_parse_epoch, "1762161302.5241024", 1762161302LL * US + 524102);
}

static void test_epoch_rejects(void **state) {
  (void)state;
  assert_rejects(kw_time_parse_epoch, "");
  assert_rejects(kw_time_parse_epoch, "-1");
  assert_rejects(kw_time_parse_epoch, ".5");
  assert_rejects(kw_time_parse_epoch, "17e8");
  assert_rejects(kw_time_parse_epoch, "1700000000 ");
  assert_rejects(kw_time_parse_epoch, " 1700000000");
  assert_rejects(kw_time_parse_epoch, "1700000000.12a");
  assert_rejects(kw_time_parse_epoch, "999999999999999999999");    /* far future */
  assert_rejects(kw_time_parse_epoch, "1.000000000000000000000000000000000"); /* > 32 */
}

/* Parsers stop at n: a valid prefix followed by more bytes is judged on the prefix only. */
static void test_never_reads_past_n(void **state) {
  int64_t us = 0;
  (void)state;
  assert_int_equal(parse_n(kw_time_parse_epoch, "1700000000999", 10, &us), 0);
  assert_int_equal(us, 1700000000LL * US);
  assert_int_equal(parse_n(kw_time_parse_iso8601, "2000-10-10T20:55:36Z", 19, &us),
                   KW_EPARSE);
  assert_int_equal(parse_n(kw_time_parse_iso8601, "2000-10-10T20:55:36.5Z", 20, &us),
                   KW_EPARSE);
  assert_int_equal(parse_n(kw_time_parse_iso8601, "2000-10-10T20:55:36+01:00", 23, &us),
                   KW_EPARSE);
  assert_int_equal(parse_n(kw_time_parse_iso8601, "2000-10-10T20:55:36Zjunk", 20, &us), 0);
  assert_int_equal(us, T_2000_10_10_205536 * US);
  assert_int_equal(parse_n(kw_time_parse_clf, "10/Oct/2000:13:55:36 -0700", 25, &us),
                   KW_EPARSE);
  assert_int_equal(parse_n(kw_time_parse_clf, "10/Oct/2000:13:55:36 -0700", 5, &us),
                   KW_EPARSE);
  /* every truncation of valid strings is rejected without over-reading */
  const char *valid[] = {"2000-10-10T13:55:36.123456-07:00", "10/Oct/2000:13:55:36 -0700"};
  for (size_t v = 0; v < 2; v++) {
    parse_fn fn = v == 0 ? kw_time_parse_iso8601 : kw_time_parse_clf;
    size_t len = strlen(valid[v]);
    for (size_t n = 0; n < len; n++) {
      int rc = parse_n(fn, valid[v], n, &us);
      if (rc != KW_EPARSE)
        fail_msg("'%.*s' (cut at %zu) gave %d", (int)n, valid[v], n, rc);
    }
    assert_int_equal(parse_n(fn, valid[v], len, &us), 0);
  }
}

static void test_user(void **state) {
  const int64_t now = T_2026_11_22_051206 * US + 123;
  int64_t us = 0;
  (void)state;
  assert_int_equal(kw_time_parse_user("-15m", now, &us), 0);
  assert_int_equal(us, now - 15 * 60 * US);
  assert_int_equal(kw_time_parse_user("-2h", now, &us), 0);
  assert_int_equal(us, now - 2 * 3600 * US);
  assert_int_equal(kw_time_parse_user("-7d", now, &us), 0);
  assert_int_equal(us, now - 7 * 86400 * US);
  assert_int_equal(kw_time_parse_user("-30s", now, &us), 0);
  assert_int_equal(us, now - 30 * US);
  assert_int_equal(kw_time_parse_user("-0m", now, &us), 0);
  assert_int_equal(us, now);
  assert_int_equal(kw_time_parse_user("2026-11-22", now, &us), 0);
  assert_int_equal(us, T_2026_11_22 * US);
  assert_int_equal(kw_time_parse_user("2024-02-29", now, &us), 0);
  assert_int_equal(us, T_2024_02_29 * US);
  assert_int_equal(kw_time_parse_user("2026-11-22T05:12:06Z", now, &us), 0);
  assert_int_equal(us, T_2026_11_22_051206 * US);
  assert_int_equal(kw_time_parse_user("2026-11-22 06:12:06+01:00", now, &us), 0);
  assert_int_equal(us, T_2026_11_22_051206 * US);
  assert_int_equal(kw_time_parse_user("1700000000", now, &us), 0);
  assert_int_equal(us, 1700000000LL * US);
  assert_int_equal(kw_time_parse_user("1700000000.5", now, &us), 0);
  assert_int_equal(us, 1700000000LL * US + 500000);
}

static void test_user_rejects(void **state) {
  static const char *const bad[] = {
      "", "-", "-15", "-m", "-15x", "-15mm", "- 15m", "-1.5h", "15m", "yesterday",
      "2026-13-01", "2026-02-30", "2026-11-31", "2026-11-2", "2026/11/22", "2026-11-22T",
      /* far past: rejected, not an overflow (UBSan would abort on one) */
      "-9999999999d", "-99999999999999999999s", "-10000000000000m",
  };
  const int64_t now = T_2026_11_22_051206 * US;
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t us = -42;
    int rc = kw_time_parse_user(bad[i], now, &us);
    if (rc != KW_EPARSE)
      fail_msg("'%s' gave rc %d (%lld), want KW_EPARSE", bad[i], rc, (long long)us);
  }
}

/* The largest relative time that is accepted is still exact. */
static void test_user_large_relative(void **state) {
  const int64_t now = T_2026_11_22_051206 * US;
  int64_t us = 0;
  (void)state;
  assert_int_equal(kw_time_parse_user("-36500d", now, &us), 0);
  assert_int_equal(us, now - 36500LL * 86400 * US);
  assert_int_equal(kw_time_parse_user("-1000000000s", now, &us), 0);
  assert_int_equal(us, now - 1000000000LL * US);
}

static void assert_format(int64_t us, const char *want) {
  char buf[25];
  memset(buf, 'x', sizeof(buf));
  assert_ptr_equal(kw_time_format(us, buf, sizeof(buf)), buf);
  assert_string_equal(buf, want);
  assert_int_equal(strlen(buf), 24);
}

static void test_format(void **state) {
  (void)state;
  assert_format(0, "1970-01-01T00:00:00.000Z");
  assert_format(999, "1970-01-01T00:00:00.000Z");
  assert_format(1000, "1970-01-01T00:00:00.001Z");
  assert_format(T_2026_11_22_051206 * US + 123456, "2026-11-22T05:12:06.123Z");
  assert_format(T_2024_02_29 * US, "2024-02-29T00:00:00.000Z");
  assert_format(T_2024_02_29 * US - 1, "2024-02-28T23:59:59.999Z");
  assert_format(T_2000_10_10_205536 * US, "2000-10-10T20:55:36.000Z");
  /* before the epoch: floor division, never a negative field */
  assert_format(-1, "1969-12-31T23:59:59.999Z");
  assert_format(-1000, "1969-12-31T23:59:59.999Z");
  assert_format(-1001, "1969-12-31T23:59:59.998Z");
  assert_format(-US, "1969-12-31T23:59:59.000Z");
  assert_format(-86400 * US, "1969-12-31T00:00:00.000Z");
  assert_format(-86400 * US - 1, "1969-12-30T23:59:59.999Z");
  assert_format(-135140LL * 86400 * US, "1600-01-01T00:00:00.000Z");
}

static void test_format_truncates(void **state) {
  char small[11];
  (void)state;
  memset(small, 'x', sizeof(small));
  kw_time_format(T_2026_11_22_051206 * US, small, sizeof(small));
  assert_string_equal(small, "2026-11-22");
}

/* Formatting then parsing gives back the time at millisecond precision. */
static void test_round_trip(void **state) {
  static const int64_t times[] = {0, 1, -1, 1700000000123456LL, -123456789012345LL,
                                  T_2024_02_29 * US + 86399 * US + 999999,
                                  253402300799LL * US /* 9999-12-31T23:59:59Z */};
  (void)state;
  for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
    char buf[25];
    int64_t back = 0, t = times[i];
    int64_t ms_floor = (t >= 0 ? t / 1000 : (t - 999) / 1000) * 1000;
    kw_time_format(t, buf, sizeof(buf));
    assert_int_equal(parse(kw_time_parse_iso8601, buf, &back), 0);
    if (back != ms_floor)
      fail_msg("%lld → %s → %lld", (long long)t, buf, (long long)back);
  }
}

static void test_now(void **state) {
  int64_t a = kw_time_now(), b;
  (void)state;
  assert_true(a > 1700000000LL * US); /* after Nov 2023 */
  b = kw_time_now();
  assert_true(b >= a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_days_from_civil),
      cmocka_unit_test(test_clf),
      cmocka_unit_test(test_clf_rejects),
      cmocka_unit_test(test_iso8601),
      cmocka_unit_test(test_iso8601_rejects),
      cmocka_unit_test(test_iso8601_impossible_dates),
      cmocka_unit_test(test_epoch),
      cmocka_unit_test(test_epoch_rejects),
      cmocka_unit_test(test_never_reads_past_n),
      cmocka_unit_test(test_user),
      cmocka_unit_test(test_user_rejects),
      cmocka_unit_test(test_user_large_relative),
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_format_truncates),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_now),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
