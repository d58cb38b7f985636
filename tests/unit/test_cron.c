/* test_cron.c — five-field cron schedules (sidecar/cron.c): parse errors and next runs.
 *
 * Expected instants are computed by the test itself, never by the code under test: fixed
 * dates through timegm(), and for whole sequences an oracle that walks minute by minute
 * through gmtime_r() and asks a hand-written predicate for the schedule.  Every next run
 * is strictly after the given instant, also when that instant is itself a match.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sidecar/cron.h"
#include "sidecar/err.h"

#define MIN_US (60LL * 1000000)
#define DAY_US (1440 * MIN_US)

/* µs since the epoch of y-mo-d h:mi UTC, via the C library. */
static int64_t at(int y, int mo, int d, int h, int mi) {
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (int64_t)timegm(&tm) * 1000000;
}

static struct tm utc(int64_t us) {
  struct tm tm;
  time_t t = (time_t)(us / 1000000);
  assert_non_null(gmtime_r(&t, &tm));
  return tm;
}

static struct kw_cron parse_ok(const char *s) {
  struct kw_cron c;
  char err[256] = "";
  int rc = kw_cron_parse(s, &c, err, sizeof(err));
  if (rc != 0)
    fail_msg("'%s' did not parse (%d): %s", s, rc, err);
  return c;
}

static int64_t next(const char *s, int64_t after) {
  struct kw_cron c = parse_ok(s);
  return kw_cron_next(&c, after);
}

/* The expected instant, with both printed when they differ. */
static void assert_at(int64_t got, int64_t want) {
  if (got != want) {
    struct tm g = utc(got < 0 ? 0 : got), w = utc(want);
    char gb[32], wb[32];
    strftime(gb, sizeof(gb), "%Y-%m-%d %H:%M %a", &g);
    strftime(wb, sizeof(wb), "%Y-%m-%d %H:%M %a", &w);
    fail_msg("got %lld (%s), want %lld (%s)", (long long)got, got < 0 ? "-1" : gb,
             (long long)want, wb);
  }
}

/* s fails to parse, and the message holds each of the NULL-ended parts. */
static void parse_bad(const char *s, ...) {
  struct kw_cron c;
  char err[256] = "";
  va_list ap;
  if (kw_cron_parse(s, &c, err, sizeof(err)) != KW_EPARSE)
    fail_msg("'%s' parsed", s);
  va_start(ap, s);
  for (const char *p = va_arg(ap, const char *); p != NULL; p = va_arg(ap, const char *))
    if (strstr(err, p) == NULL)
      fail_msg("'%s': error '%s' lacks '%s'", s, err, p);
  va_end(ap);
}

/* The first n runs of s after `from` equal what the oracle finds walking minute by minute
 * (each within `horizon` minutes of the previous one). */
static void assert_runs(const char *s, bool (*match)(const struct tm *), int64_t from, int n,
                        int horizon) {
  struct kw_cron c = parse_ok(s);
  int64_t after = from;
  for (int i = 0; i < n; i++) {
    int64_t want = -1, t = (after / MIN_US + 1) * MIN_US;
    for (int m = 0; m < horizon; m++, t += MIN_US) {
      struct tm tm = utc(t);
      if (match(&tm)) {
        want = t;
        break;
      }
    }
    if (want < 0)
      fail_msg("%s: the oracle found nothing within %d minutes", s, horizon);
    assert_at(kw_cron_next(&c, after), want);
    after = want; /* the next one is strictly after this one */
  }
}

/* ---- parse errors ---------------------------------------------------------------------- */

static void test_parse_field_count(void **state) {
  (void)state;
  parse_bad("* * * *", "4 fields", "five", NULL);
  parse_bad("", "0 fields", NULL);
  parse_bad("   ", "0 fields", NULL);
  parse_bad("@daily", "1 field;", NULL);
  parse_bad("* * * * * *", "more than five fields", NULL);
  parse_bad("0 6 * * 1 /usr/bin/true", "more than five fields", NULL);
}

static void test_parse_out_of_range(void **state) {
  (void)state;
  parse_bad("0 24 * * *", "field 2 (hour): 24 is out of range 0-23", NULL);
  parse_bad("60 * * * *", "field 1 (minute): 60 is out of range 0-59", NULL);
  parse_bad("0 0 0 * *", "field 3 (day of month): 0 is out of range 1-31", NULL);
  parse_bad("0 0 32 * *", "field 3 (day of month)", "32", "1-31", NULL);
  parse_bad("0 0 * 0 *", "field 4 (month): 0 is out of range 1-12", NULL);
  parse_bad("0 0 * 13 *", "field 4 (month): 13 is out of range 1-12", NULL);
  parse_bad("0 0 * * 8", "field 5 (day of week): 8 is out of range 0-7", NULL);
  parse_bad("0 20-24 * * *", "field 2 (hour)", "20-24", "0-23", NULL);
  parse_bad("0 0 * * 5-1", "field 5 (day of week)", "5-1", NULL);
  parse_bad("0,15,60 * * * *", "field 1 (minute)", "60", NULL);
  parse_bad("0 25/2 * * *", "field 2 (hour)", "25", NULL);
}

static void test_parse_bad_step_and_junk(void **state) {
  (void)state;
  parse_bad("*/0 * * * *", "field 1 (minute)", "'*/0'", NULL);
  parse_bad("0 */0 * * *", "field 2 (hour)", "'*/0'", NULL);
  parse_bad("0 0 1-10/0 * *", "field 3 (day of month)", "1-10/0", NULL);
  parse_bad("*/ * * * *", "field 1 (minute)", NULL);
  parse_bad("*/x * * * *", "field 1 (minute)", NULL);
  parse_bad("x * * * *", "field 1 (minute)", "'x'", "not a number, range, step or list", NULL);
  parse_bad("0 6 * * mon", "field 5 (day of week)", "'mon'", NULL);
  parse_bad("0 6 * jan *", "field 4 (month)", "'jan'", NULL);
  parse_bad("5x * * * *", "field 1 (minute)", NULL);
  parse_bad("1,,2 * * * *", "field 1 (minute)", NULL);
  parse_bad("1, * * * *", "field 1 (minute)", NULL);
  parse_bad("0 1-2-3 * * *", "field 2 (hour)", NULL);
  parse_bad("0 - * * *", "field 2 (hour)", NULL);
  parse_bad("0 0 -1 * *", "field 3 (day of month)", NULL);
  parse_bad("0 0 ** * *", "field 3 (day of month)", NULL);
  parse_bad("0 0 * * 99999999999999999999", "field 5 (day of week)", NULL);
}

static void test_parse_ok(void **state) {
  struct kw_cron c;
  (void)state;
  c = parse_ok("* * * * *");
  assert_true(c.minutes == (1ull << 60) - 1);
  assert_int_equal(c.hours, (1u << 24) - 1);
  assert_int_equal(c.mdays, 0xfffffffeu); /* 1-31 */
  assert_int_equal(c.months, 0x1ffe);      /* 1-12 */
  assert_int_equal(c.wdays, 0x7f);
  assert_true(c.mday_star && c.wday_star);
  c = parse_ok("  0\t6 * *   1  "); /* any blanks around and between */
  assert_true(c.minutes == 1);
  assert_int_equal(c.hours, 1u << 6);
  assert_int_equal(c.wdays, 1u << 1);
  assert_true(c.mday_star && !c.wday_star);
  c = parse_ok("0 9-17/2 * * 1-5");
  assert_int_equal(c.hours, (1u << 9) | (1u << 11) | (1u << 13) | (1u << 15) | (1u << 17));
  assert_int_equal(c.wdays, 0x3e);
  c = parse_ok("5,20-22,50/5 * * * *");
  assert_true(c.minutes == ((1ull << 5) | (7ull << 20) | (1ull << 50) | (1ull << 55)));
  c = parse_ok("5-5/15 * * * *"); /* a range of one: just 5 */
  assert_true(c.minutes == 1ull << 5);
  c = parse_ok("0 0 * * 7");
  assert_int_equal(c.wdays, 1);
  c = parse_ok("0 0 * * 5-7");
  assert_int_equal(c.wdays, (1u << 5) | (1u << 6) | 1u);
  c = parse_ok("0 0 13 * 5");
  assert_false(c.mday_star || c.wday_star);
}

/* ---- next runs ------------------------------------------------------------------------- */

static void test_every_minute(void **state) {
  int64_t t = at(2026, 3, 1, 10, 30);
  (void)state;
  assert_at(next("* * * * *", t + 17 * 1000000 + 5), at(2026, 3, 1, 10, 31));
  assert_at(next("* * * * *", t), at(2026, 3, 1, 10, 31)); /* on a minute: strictly after */
  assert_at(next("* * * * *", t - 1), t);
  assert_at(next("* * * * *", at(2026, 12, 31, 23, 59)), at(2027, 1, 1, 0, 0));
  assert_at(next("* * * * *", 0), MIN_US);
}

static bool p_monday6(const struct tm *t) {
  return t->tm_wday == 1 && t->tm_hour == 6 && t->tm_min == 0;
}

static void test_mondays(void **state) {
  (void)state;
  /* 2026-03-30 is a Monday: from its 06:00 the next is a week later, in April */
  assert_at(next("0 6 * * 1", at(2026, 3, 30, 6, 0)), at(2026, 4, 6, 6, 0));
  assert_at(next("0 6 * * 1", at(2026, 3, 30, 5, 59)), at(2026, 3, 30, 6, 0));
  assert_at(next("0 6 * * 1", at(2026, 3, 28, 12, 0)), at(2026, 3, 30, 6, 0));
  /* over the year boundary: Monday 2026-12-28, then Monday 2027-01-04 */
  assert_at(next("0 6 * * 1", at(2026, 12, 28, 7, 0)), at(2027, 1, 4, 6, 0));
  {
    struct tm tm = utc(at(2027, 1, 4, 6, 0));
    assert_int_equal(tm.tm_wday, 1);
  }
  /* a year of Mondays, each exactly a week after the last */
  assert_runs("0 6 * * 1", p_monday6, at(2026, 3, 1, 0, 0), 60, 8 * 1440);
  {
    struct kw_cron c = parse_ok("0 6 * * 1");
    int64_t a = kw_cron_next(&c, at(2026, 11, 1, 0, 0)), b;
    for (int i = 0; i < 20; i++, a = b) {
      b = kw_cron_next(&c, a);
      assert_true(b - a == 7 * DAY_US);
    }
  }
}

static bool p_quarter(const struct tm *t) { return t->tm_min % 15 == 0; }

static void test_every_15_minutes(void **state) {
  (void)state;
  assert_at(next("*/15 * * * *", at(2026, 3, 1, 10, 7)), at(2026, 3, 1, 10, 15));
  assert_at(next("*/15 * * * *", at(2026, 3, 1, 10, 45)), at(2026, 3, 1, 11, 0));
  assert_at(next("*/15 * * * *", at(2026, 3, 1, 23, 50)), at(2026, 3, 2, 0, 0));
  assert_runs("*/15 * * * *", p_quarter, at(2026, 2, 28, 22, 3) + 7, 300, 16);
}

static bool p_first(const struct tm *t) {
  return t->tm_mday == 1 && t->tm_hour == 0 && t->tm_min == 0;
}

static void test_first_of_month(void **state) {
  (void)state;
  assert_at(next("0 0 1 * *", at(2026, 1, 31, 12, 0)), at(2026, 2, 1, 0, 0));
  assert_at(next("0 0 1 * *", at(2026, 2, 1, 0, 0)), at(2026, 3, 1, 0, 0));
  assert_at(next("0 0 1 * *", at(2026, 12, 15, 0, 0)), at(2027, 1, 1, 0, 0));
  assert_runs("0 0 1 * *", p_first, at(2026, 1, 1, 0, 0), 30, 32 * 1440);
}

static void test_leap_day(void **state) {
  (void)state;
  assert_at(next("30 2 29 2 *", at(2026, 3, 1, 0, 0)), at(2028, 2, 29, 2, 30));
  assert_at(next("30 2 29 2 *", at(2026, 1, 1, 0, 0)), at(2028, 2, 29, 2, 30));
  assert_at(next("30 2 29 2 *", at(2028, 2, 29, 2, 29)), at(2028, 2, 29, 2, 30));
  assert_at(next("30 2 29 2 *", at(2028, 2, 29, 2, 30)), at(2032, 2, 29, 2, 30));
}

static void test_never(void **state) {
  (void)state;
  assert_int_equal(next("0 0 31 2 *", at(2026, 3, 1, 0, 0)), -1);
  assert_int_equal(next("0 0 30 2 *", at(2026, 3, 1, 0, 0)), -1);
  assert_int_equal(next("0 0 31 4,6,9,11 *", at(2026, 3, 1, 0, 0)), -1);
  /* near miss: the 31st of a month that has one */
  assert_at(next("0 0 31 4,6,9,11,12 *", at(2026, 3, 1, 0, 0)), at(2026, 12, 31, 0, 0));
}

/* Both day fields restricted: a day matches if either does. */
static bool p_13_or_friday(const struct tm *t) {
  return (t->tm_mday == 13 || t->tm_wday == 5) && t->tm_hour == 0 && t->tm_min == 0;
}

/* One restricted: only that one counts ("*" in the other is not "any day or ..."). */
static bool p_13_only(const struct tm *t) {
  return t->tm_mday == 13 && t->tm_hour == 0 && t->tm_min == 0;
}

static void test_day_or_weekday(void **state) {
  (void)state;
  /* March 2026: Fridays 6, 13 (also the 13th), 20, 27; April: Friday 3, 10, Monday 13 */
  assert_at(next("0 0 13 * 5", at(2026, 3, 1, 0, 0)), at(2026, 3, 6, 0, 0));
  assert_at(next("0 0 13 * 5", at(2026, 3, 6, 0, 0)), at(2026, 3, 13, 0, 0));
  assert_at(next("0 0 13 * 5", at(2026, 4, 10, 0, 0)), at(2026, 4, 13, 0, 0));
  assert_at(next("0 0 13 * 5", at(2026, 4, 13, 0, 0)), at(2026, 4, 17, 0, 0));
  assert_runs("0 0 13 * 5", p_13_or_friday, at(2026, 1, 1, 0, 0), 80, 8 * 1440);
  assert_runs("0 0 13 * *", p_13_only, at(2026, 1, 1, 0, 0), 15, 32 * 1440);
  /* "0 0 * * 5": Fridays only */
  assert_at(next("0 0 * * 5", at(2026, 4, 10, 0, 0)), at(2026, 4, 17, 0, 0));
}

static bool p_sunday(const struct tm *t) {
  return t->tm_wday == 0 && t->tm_hour == 0 && t->tm_min == 0;
}

static void test_sunday_is_0_and_7(void **state) {
  struct kw_cron c0 = parse_ok("0 0 * * 0"), c7 = parse_ok("0 0 * * 7");
  (void)state;
  assert_at(kw_cron_next(&c7, at(2026, 3, 1, 0, 0)), at(2026, 3, 8, 0, 0)); /* a Sunday */
  assert_at(kw_cron_next(&c7, at(2026, 2, 28, 23, 0)), at(2026, 3, 1, 0, 0));
  for (int64_t t = at(2026, 1, 1, 0, 0); t < at(2026, 4, 1, 0, 0); t += DAY_US + 7 * MIN_US)
    assert_at(kw_cron_next(&c7, t), kw_cron_next(&c0, t));
  assert_runs("0 0 * * 7", p_sunday, at(2026, 1, 1, 0, 0), 30, 8 * 1440);
}

static bool p_office(const struct tm *t) {
  return t->tm_wday >= 1 && t->tm_wday <= 5 && t->tm_hour >= 9 && t->tm_hour <= 17 &&
         (t->tm_hour - 9) % 2 == 0 && t->tm_min == 0;
}

static void test_lists_and_ranges(void **state) {
  (void)state;
  /* Wednesday 2026-03-04 10:00 → 11:00; Friday 17:00 → Monday 09:00 */
  assert_at(next("0 9-17/2 * * 1-5", at(2026, 3, 4, 10, 0)), at(2026, 3, 4, 11, 0));
  assert_at(next("0 9-17/2 * * 1-5", at(2026, 3, 6, 17, 0)), at(2026, 3, 9, 9, 0));
  assert_at(next("0 9-17/2 * * 1-5", at(2026, 3, 6, 16, 59)), at(2026, 3, 6, 17, 0));
  assert_runs("0 9-17/2 * * 1-5", p_office, at(2026, 3, 1, 0, 0), 120, 4 * 1440);
}

static bool p_list(const struct tm *t) {
  return (t->tm_min == 5 || t->tm_min == 35) && (t->tm_hour == 0 || t->tm_hour == 12) &&
         (t->tm_mon == 0 || t->tm_mon == 6);
}

static void test_list_months(void **state) {
  (void)state;
  assert_at(next("5,35 0,12 * 1,7 *", at(2026, 3, 1, 0, 0)), at(2026, 7, 1, 0, 5));
  assert_runs("5,35 0,12 * 1,7 *", p_list, at(2026, 7, 31, 12, 0), 20, 200 * 1440);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_field_count),
      cmocka_unit_test(test_parse_out_of_range),
      cmocka_unit_test(test_parse_bad_step_and_junk),
      cmocka_unit_test(test_parse_ok),
      cmocka_unit_test(test_every_minute),
      cmocka_unit_test(test_mondays),
      cmocka_unit_test(test_every_15_minutes),
      cmocka_unit_test(test_first_of_month),
      cmocka_unit_test(test_leap_day),
      cmocka_unit_test(test_never),
      cmocka_unit_test(test_day_or_weekday),
      cmocka_unit_test(test_sunday_is_0_and_7),
      cmocka_unit_test(test_lists_and_ranges),
      cmocka_unit_test(test_list_months),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
