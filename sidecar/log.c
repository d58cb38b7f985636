/* log.c — logfmt lines for the daemon's events (see log.h). */
#include "log.h"
#include "timeutil.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

static void value(FILE *f, const char *v) {
  bool quote = v[0] == '\0' || strpbrk(v, " \"=\\") != NULL;
  for (const unsigned char *p = (const unsigned char *)v; *p && !quote; p++)
    quote = *p < 0x20 || *p == 0x7f;
  if (!quote) {
    fputs(v, f);
    return;
  }
  putc('"', f);
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\x%02x", *p);
    else
      putc(*p, f);
  }
  putc('"', f);
}

void kw_log(const struct kw_log *lg, enum kw_log_level level, const char *event, ...) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  char ts[40];
  va_list ap;

  if (lg == NULL || lg->f == NULL || level < lg->min)
    return;
  fprintf(lg->f, "%s level=%s event=", kw_time_format(kw_time_now(), ts, sizeof(ts)),
          names[level]);
  value(lg->f, event);
  va_start(ap, event);
  for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
    const char *v = va_arg(ap, const char *);
    fprintf(lg->f, " %s=", k);
    value(lg->f, v ? v : "-");
  }
  va_end(ap);
  putc('\n', lg->f);
  fflush(lg->f);
}

int kw_log_level_parse(const char *s) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}
