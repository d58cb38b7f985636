/* timeutil.h — time parsing and formatting without the C library's locale and TZ state.
 *
 * All times are int64 microseconds since the Unix epoch, UTC.  Parsers accept exactly the
 * shapes proxies write and reject anything else with KW_EPARSE; they never read past n.
 * Thread: any (no static state).
 */
#ifndef KW_TIMEUTIL_H
#define KW_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Days since 1970-01-01 for a proleptic Gregorian date (month 1-12). */
int64_t kw_days_from_civil(int64_t y, unsigned m, unsigned d);

/* "10/Oct/2000:13:55:36 -0700" (nginx $time_local, Apache %t without brackets). */
int kw_time_parse_clf(const char *s, size_t n, int64_t *us);

/* RFC 3339 / ISO 8601: "2000-10-10T13:55:36+00:00", "...Z", fractional seconds of any
 * precision, offsets "+hh:mm", "+hhmm" or "Z"; a space instead of 'T' is accepted. */
int kw_time_parse_iso8601(const char *s, size_t n, int64_t *us);

/* Epoch seconds with optional fraction: "1700000000", "1700000000.123" ($msec, Caddy ts). */
int kw_time_parse_epoch(const char *s, size_t n, int64_t *us);

/* Parses a user-given time for --since/--until: RFC 3339, a date "2026-11-22" (UTC
 * midnight), epoch seconds, or a relative "-15m", "-2h", "-7d" from now_us. */
int kw_time_parse_user(const char *s, int64_t now_us, int64_t *us);

/* Formats us as RFC 3339 UTC with millisecond precision: "2026-11-22T05:12:06.123Z".
 * buf needs 25 bytes.  Returns buf. */
char *kw_time_format(int64_t us, char *buf, size_t len);

/* Current wall-clock time in µs. */
int64_t kw_time_now(void);

/* Parses a duration: "30s", "250ms", "10m", "24h", "7d" (or plain seconds), at most
 * ~3 years.  Returns 0 or KW_EPARSE. */
int kw_duration_parse(const char *s, int64_t *us);

#endif
