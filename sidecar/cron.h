/* cron.h — five-field cron schedules ("minute hour day-of-month month day-of-week"), UTC.
 *
 * Each field: "*", a number, a range "a-b", a step "*" "/" "n" or "a-b/n", or a comma list
 * of those.  Day of week 0-7 (0 and 7 are Sunday).  As in cron, when both day fields are
 * restricted a day matches if either does.  Named months/days and macros (@daily) are
 * not supported.
 * Thread: any (no state beyond the struct).
 */
#ifndef KW_CRON_H
#define KW_CRON_H

#include <stddef.h>
#include <stdint.h>

struct kw_cron {
  uint64_t minutes;   /* bit m */
  uint32_t hours;     /* bit h */
  uint32_t mdays;     /* bit d (1-31) */
  uint16_t months;    /* bit m (1-12) */
  uint8_t wdays;      /* bit d (0-6, Sunday 0) */
  uint8_t mday_star, wday_star;
};

/* Parses s.  Returns 0, or KW_EPARSE with the problem ("field 2 (hour): 24 is out of
 * range 0-23") in err. */
int kw_cron_parse(const char *s, struct kw_cron *c, char *err, size_t errlen);

/* The first minute strictly after after_us (µs since the epoch, UTC) that matches;
 * -1 when none within 5 years (e.g. "0 0 31 2 *"). */
int64_t kw_cron_next(const struct kw_cron *c, int64_t after_us);

#endif
