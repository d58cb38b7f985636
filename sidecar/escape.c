/* escape.c — see escape.h. */
#include "escape.h"

#include <string.h>

size_t kw_utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  /* Overlong forms, surrogates and code points past U+10FFFF are invalid. */
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

void kw_json_str(FILE *f, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run = 0;

  if (str == NULL) {
    fputs("null", f);
    return;
  }
  putc('"', f);
  while (i < n) {
    unsigned char c = s[i];
    size_t len = c >= 0x20 && c < 0x80 && c != '"' && c != '\\' ? 1
                 : c >= 0x80                                  ? kw_utf8_len(s + i, n - i)
                                                              : 0;
    int sep = c == 0xe2 && len == 3 && s[i + 1] == 0x80 && (s[i + 2] & 0xfe) == 0xa8;
    if (len > 0 && !sep) {
      i += len;
      run += len;
      continue;
    }
    fwrite(s + i - run, 1, run, f);
    run = 0;
    switch (c) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    case '\b': fputs("\\b", f); break;
    case '\f': fputs("\\f", f); break;
    default:
      if (sep) { /* U+2028/2029: valid JSON, but they break JavaScript */
        fprintf(f, "\\u%04x", s[i + 2] == 0xa8 ? 0x2028 : 0x2029);
        i += 2;
      } else if (c < 0x20) {
        fprintf(f, "\\u%04x", c);
      } else {
        fputs("\\ufffd", f);
      }
    }
    i++;
  }
  fwrite(s + i - run, 1, run, f);
  putc('"', f);
}

void kw_json_cstr(FILE *f, const char *s) { kw_json_str(f, s, s ? strlen(s) : 0); }

/* Bytes of the unit at s that a terminal may show as is (1-4), or 0 when it must be
 * shown as \xHH.  C1 controls (U+0080-U+009F) act as escapes on some terminals. */
static size_t term_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len = c >= 0x20 && c < 0x7f ? 1 : c >= 0x80 ? kw_utf8_len(s, n) : 0;
  if (len == 2 && c == 0xc2 && s[1] < 0xa0)
    len = 0;
  return len;
}

void kw_term_str(FILE *f, const char *str, size_t n, size_t width) {
  const unsigned char *s = (const unsigned char *)str;
  size_t shown = 0, limit = width;

  if (str == NULL) {
    fputs("-", f);
    return;
  }
  if (width) {
    /* What does not fit is cut one column earlier, so that the "…" fits too. */
    size_t total = 0;
    for (size_t i = 0; i < n && total <= width;) {
      size_t len = term_len(s + i, n - i);
      total += len ? 1 : 4;
      i += len ? len : 1;
    }
    if (total > width)
      limit = width - 1;
  }
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    size_t len = term_len(s + i, n - i);
    if (width && shown + (len ? 1 : 4) > limit) {
      fputs("\xe2\x80\xa6", f);
      return;
    }
    if (len > 0) {
      fwrite(s + i, 1, len, f);
      shown += 1;
      i += len;
    } else {
      fprintf(f, "\\x%02X", c);
      shown += 4;
      i++;
    }
  }
}
