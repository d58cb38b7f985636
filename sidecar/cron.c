/* cron.c — five-field cron schedules (cron.h). */
#include "cron.h"

#include "err.h"
#include "timeutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  int lo, hi;
} fields[5] = {{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31},
               {"month", 1, 12}, {"day of week", 0, 7}};

static bool num(const char **p, int *v) {
  char *end;
  long n = strtol(*p, &end, 10);
  if (end == *p || n < 0 || n > 1000)
    return false;
  *v = (int)n;
  *p = end;
  return true;
}

/* Parses one field of n bytes into bits (bit i = value i). */
static int field(const char *s, size_t n, int f, uint64_t *bits, char *err, size_t errlen) {
  char buf[64];
  const char *p;
  int lo = fields[f].lo, hi = fields[f].hi;

  if (n == 0 || n >= sizeof(buf))
    goto bad;
  memcpy(buf, s, n);
  buf[n] = '\0';
  *bits = 0;
  for (char *item = buf, *next; item != NULL; item = next) {
    int a, b, step = 1;
    bool range = false;
    next = strchr(item, ',');
    if (next)
      *next++ = '\0';
    p = item;
    if (*p == '*') {
      a = lo, b = hi;
      p++;
    } else {
      if (!num(&p, &a))
        goto bad;
      b = a;
      if (*p == '-') {
        p++;
        range = true;
        if (!num(&p, &b))
          goto bad;
      }
    }
    if (*p == '/') {
      p++;
      if (!num(&p, &step) || step == 0)
        goto bad;
      if (item[0] != '*' && !range)
        b = hi; /* "5/15": from 5 to the end (but "5-5/15" is 5) */
    }
    if (*p != '\0')
      goto bad;
    if (a < lo || b > hi || a > b) {
      if (range) /* "5-1", "0-60" */
        snprintf(err, errlen, "field %d (%s): %d-%d is not a range within %d-%d", f + 1,
                 fields[f].name, a, b, lo, hi);
      else /* "24", "60/5" ("*" is always within) */
        snprintf(err, errlen, "field %d (%s): %d is out of range %d-%d", f + 1,
                 fields[f].name, a, lo, hi);
      return KW_EPARSE;
    }
    for (int v = a; v <= b; v += step)
      *bits |= 1ull << v;
  }
  return 0;
bad:
  snprintf(err, errlen, "field %d (%s): '%.*s' is not a number, range, step or list", f + 1,
           fields[f].name, (int)(n > 40 ? 40 : n), s);
  return KW_EPARSE;
}

int kw_cron_parse(const char *s, struct kw_cron *c, char *err, size_t errlen) {
  const char *start[5];
  size_t len[5];
  int nf = 0;
  uint64_t bits[5];

  memset(c, 0, sizeof(*c));
  if (s == NULL)
    s = "";
  for (const char *p = s; *p;) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '\0')
      break;
    if (nf == 5) {
      snprintf(err, errlen, "more than five fields (minute hour day-of-month month "
                            "day-of-week)");
      return KW_EPARSE;
    }
    start[nf] = p;
    while (*p && *p != ' ' && *p != '\t')
      p++;
    len[nf] = (size_t)(p - start[nf]);
    nf++;
  }
  if (nf != 5) {
    snprintf(err, errlen, "%d field%s; a schedule has five: minute hour day-of-month month "
                          "day-of-week (\"0 6 * * 1\": Mondays 06:00 UTC)",
             nf, nf == 1 ? "" : "s");
    return KW_EPARSE;
  }
  for (int f = 0; f < 5; f++)
    if (field(start[f], len[f], f, &bits[f], err, errlen) != 0)
      return KW_EPARSE;
  c->minutes = bits[0];
  c->hours = (uint32_t)bits[1];
  c->mdays = (uint32_t)bits[2];
  c->months = (uint16_t)bits[3];
  c->wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
  c->mday_star = start[2][0] == '*' && len[2] == 1;
  c->wday_star = start[4][0] == '*' && len[4] == 1;
  return 0;
}

static bool day_matches(const struct kw_cron *c, int mday, int wday) {
  bool md = (c->mdays >> mday) & 1, wd = (c->wdays >> wday) & 1;
  if (c->mday_star || c->wday_star)
    return md && wd;
  return md || wd;
}

int64_t kw_cron_next(const struct kw_cron *c, int64_t after_us) {
  const int64_t min_us = 60LL * 1000000, day_us = 1440 * min_us;
  int64_t t = (after_us / min_us + 1) * min_us; /* the next whole minute */
  if (after_us < 0)
    return -1;
  for (int64_t limit = t + 5 * 366 * day_us; t < limit;) {
    int64_t days = t / day_us;
    /* civil date of `days` (Howard Hinnant's algorithm, as timeutil's inverse) */
    int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int mday = (int)(doy - (153 * mp + 2) / 5 + 1), mon = (int)(mp < 10 ? mp + 3 : mp - 9);
    int wday = (int)((days + 4) % 7); /* 1970-01-01 was a Thursday */
    if (!((c->months >> mon) & 1) || !day_matches(c, mday, wday)) {
      t = (days + 1) * day_us;
      continue;
    }
    int64_t m = (t - days * day_us) / min_us;
    int hour = (int)(m / 60), minute = (int)(m % 60);
    if (!((c->hours >> hour) & 1)) {
      t = days * day_us + (int64_t)(hour + 1) * 60 * min_us;
      continue;
    }
    if ((c->minutes >> minute) & 1)
      return t;
    t += min_us;
  }
  return -1;
}
