/* log.h — the daemon's own structured log: one logfmt line per event on a stream.
 *
 *   2026-11-22T05:12:06.123Z level=info event=rotated source=nginx path="/var/log/a.log"
 *
 * Values are quoted when they hold spaces, quotes or '=', with control bytes escaped, so
 * a hostile file name cannot forge a log line.  Never pass a secret as a value.
 * Thread: one kw_log per thread (no locking).
 */
#ifndef KW_LOG_H
#define KW_LOG_H

#include <stdio.h>

enum kw_log_level { KW_LOG_DEBUG, KW_LOG_INFO, KW_LOG_WARN, KW_LOG_ERROR };

struct kw_log {
  FILE *f;
  enum kw_log_level min;
};

/* Writes event with key/value string pairs, terminated by a NULL key:
 *   kw_log(lg, KW_LOG_INFO, "rotated", "source", name, "path", path, NULL);
 * A NULL value prints as "-". */
void kw_log(const struct kw_log *lg, enum kw_log_level level, const char *event, ...)
    __attribute__((sentinel));

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int kw_log_level_parse(const char *s);

#endif
