/* timeutil.c — see timeutil.h.  Civil-date arithmetic follows Howard Hinnant's
 * days_from_civil algorithm (public domain description), so no timegm()/TZ is needed on
 * the hot path. */
#include "timeutil.h"
#include "err.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t kw_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Reads exactly k digits at s[*i]. */
static bool digits(const char *s, size_t n, size_t *i, unsigned k, unsigned *out) {
  unsigned v = 0;
  if (*i + k > n)
    return false;
  for (unsigned j = 0; j < k; j++) {
    unsigned c = (unsigned char)s[*i + j] - '0';
    if (c > 9)
      return false;
    v = v * 10 + c;
  }
  *i += k;
  *out = v;
  return true;
}

static bool expect(const char *s, size_t n, size_t *i, char c) {
  if (*i >= n || s[*i] != c)
    return false;
  (*i)++;
  return true;
}

/* A date that does not exist (Feb 30, Apr 31) is rejected, not carried into the next
 * month.  sec 60 is a leap second (RFC 3339); it counts into the next minute. */
static bool valid_civil(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi,
                        unsigned sec) {
  static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
    return false;
  return h <= 23 && mi <= 59 && sec <= 60;
}

static int64_t compose(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi,
                       unsigned sec) {
  int64_t days = kw_days_from_civil(y, mo, d);
  return ((days * 24 + h) * 60 + mi) * 60 + sec;
}

/* "+hh:mm", "+hhmm", "Z" → offset in seconds east of UTC. */
static bool parse_offset(const char *s, size_t n, size_t *i, bool colon_ok, int *off) {
  unsigned hh, mm;
  int sign;
  if (*i < n && (s[*i] == 'Z' || s[*i] == 'z')) {
    (*i)++;
    *off = 0;
    return true;
  }
  if (*i >= n || (s[*i] != '+' && s[*i] != '-'))
    return false;
  sign = s[*i] == '-' ? -1 : 1;
  (*i)++;
  if (!digits(s, n, i, 2, &hh))
    return false;
  if (colon_ok && *i < n && s[*i] == ':')
    (*i)++;
  if (!digits(s, n, i, 2, &mm) || hh > 23 || mm > 59)
    return false;
  *off = sign * (int)(hh * 3600 + mm * 60);
  return true;
}

int kw_time_parse_clf(const char *s, size_t n, int64_t *us) {
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  unsigned d, y, h, mi, sec, mo = 0;
  size_t i = 0;
  int off;

  if (!digits(s, n, &i, 2, &d) || !expect(s, n, &i, '/') || i + 3 > n)
    return KW_EPARSE;
  for (unsigned k = 0; k < 12; k++) {
    if (memcmp(s + i, months + 3 * k, 3) == 0) {
      mo = k + 1;
      break;
    }
  }
  i += 3;
  if (mo == 0 || !expect(s, n, &i, '/') || !digits(s, n, &i, 4, &y) ||
      !expect(s, n, &i, ':') || !digits(s, n, &i, 2, &h) || !expect(s, n, &i, ':') ||
      !digits(s, n, &i, 2, &mi) || !expect(s, n, &i, ':') || !digits(s, n, &i, 2, &sec) ||
      !expect(s, n, &i, ' ') || !parse_offset(s, n, &i, false, &off) || i != n ||
      !valid_civil(y, mo, d, h, mi, sec))
    return KW_EPARSE;
  *us = (compose(y, mo, d, h, mi, sec) - off) * 1000000;
  return 0;
}

int kw_time_parse_iso8601(const char *s, size_t n, int64_t *us) {
  unsigned y, mo, d, h, mi, sec;
  int64_t frac = 0;
  size_t i = 0;
  int off = 0;

  if (!digits(s, n, &i, 4, &y) || !expect(s, n, &i, '-') || !digits(s, n, &i, 2, &mo) ||
      !expect(s, n, &i, '-') || !digits(s, n, &i, 2, &d))
    return KW_EPARSE;
  if (i >= n || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
    return KW_EPARSE;
  i++;
  if (!digits(s, n, &i, 2, &h) || !expect(s, n, &i, ':') || !digits(s, n, &i, 2, &mi) ||
      !expect(s, n, &i, ':') || !digits(s, n, &i, 2, &sec))
    return KW_EPARSE;
  if (i < n && (s[i] == '.' || s[i] == ',')) {
    int64_t scale = 100000;
    size_t start = ++i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      frac += (s[i] - '0') * scale;
      scale /= 10;
      i++;
    }
    if (i == start)
      return KW_EPARSE;
  }
  if (!parse_offset(s, n, &i, true, &off) || i != n || !valid_civil(y, mo, d, h, mi, sec))
    return KW_EPARSE;
  *us = (compose(y, mo, d, h, mi, sec) - off) * 1000000 + frac;
  return 0;
}

int kw_time_parse_epoch(const char *s, size_t n, int64_t *us) {
  int64_t secs = 0, frac = 0, scale = 100000;
  size_t i = 0;

  if (n == 0 || n > 32)
    return KW_EPARSE;
  while (i < n && s[i] >= '0' && s[i] <= '9') {
    if (secs > 100000000000LL) /* year 5138: not a log timestamp */
      return KW_EPARSE;
    secs = secs * 10 + (s[i++] - '0');
  }
  if (i == 0)
    return KW_EPARSE;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      frac += (s[i++] - '0') * scale;
      scale /= 10;
    }
  }
  if (i != n)
    return KW_EPARSE;
  *us = secs * 1000000 + frac;
  return 0;
}

int kw_time_parse_user(const char *s, int64_t now_us, int64_t *us) {
  size_t n = strlen(s);
  unsigned y, mo, d;
  size_t i = 0;

  if (n >= 2 && s[0] == '-') {
    int64_t v = 0, unit;
    for (i = 1; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
      if (v > 1000000000)
        return KW_EPARSE;
      v = v * 10 + (s[i] - '0');
    }
    if (i == 1 || i + 1 != n)
      return KW_EPARSE;
    switch (s[i]) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return KW_EPARSE;
    }
    if (v > INT64_MAX / 1000000 / unit) /* would overflow: not a useful time anyway */
      return KW_EPARSE;
    *us = now_us - v * unit * 1000000;
    return 0;
  }
  if (n == 10 && digits(s, n, &i, 4, &y) && expect(s, n, &i, '-') &&
      digits(s, n, &i, 2, &mo) && expect(s, n, &i, '-') && digits(s, n, &i, 2, &d)) {
    if (!valid_civil(y, mo, d, 0, 0, 0))
      return KW_EPARSE;
    *us = compose(y, mo, d, 0, 0, 0) * 1000000;
    return 0;
  }
  if (kw_time_parse_iso8601(s, n, us) == 0)
    return 0;
  return kw_time_parse_epoch(s, n, us);
}

char *kw_time_format(int64_t us, char *buf, size_t len) {
  int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  int64_t rem = us - secs * 1000000;
  int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  int64_t sod = secs - days * 86400;
  int64_t y;
  unsigned m, d;

  civil_from_days(days, &y, &m, &d);
  snprintf(buf, len, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d,
           (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
           (unsigned)(rem / 1000));
  return buf;
}

int64_t kw_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int kw_duration_parse(const char *s, int64_t *us) {
  char *end;
  double v;
  int64_t unit = 1000000;

  if (s == NULL || *s == '\0')
    return KW_EPARSE;
  v = strtod(s, &end);
  if (end == s || !(v >= 0 && v <= 1e9)) /* also refuses NaN */
    return KW_EPARSE;
  if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
    unit = 1000000;
  else if (strcmp(end, "ms") == 0)
    unit = 1000;
  else if (strcmp(end, "m") == 0)
    unit = 60 * 1000000LL;
  else if (strcmp(end, "h") == 0)
    unit = 3600 * 1000000LL;
  else if (strcmp(end, "d") == 0)
    unit = 86400 * 1000000LL;
  else
    return KW_EPARSE;
  if (v * (double)unit > 1e17) /* ~3 years: far past any sensible window */
    return KW_EPARSE;
  *us = (int64_t)(v * (double)unit);
  return 0;
}
