/* endpoint.c — path → endpoint template (see endpoint.h for the placeholder rules).
 * One pass over the path, each segment classified by its bytes; no allocation. */
#include "endpoint.h"

#include <stdbool.h>
#include <string.h>

static bool is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static bool is_uuid(const char *s, size_t n) {
  if (n != 36)
    return false;
  for (size_t i = 0; i < n; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex((unsigned char)s[i]))
      return false;
  }
  return true;
}

static bool is_date(const char *s, size_t n) {
  if (n != 10 || s[4] != '-' || s[7] != '-')
    return false;
  for (size_t i = 0; i < n; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return false;
  return true;
}

static const char *classify(const char *s, size_t n) {
  size_t digits = 0, hex = 0, alpha = 0, b64 = 0;

  if (n > KW_ENDPOINT_SEG_MAX)
    return "{seg}";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    bool d = c >= '0' && c <= '9';
    bool a = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    digits += d;
    alpha += a;
    hex += is_hex(c);
    b64 += d || a || c == '+' || c == '/' || c == '=' || c == '-' || c == '_' || c == '%';
  }
  if (n == 0)
    return NULL;
  if (digits == n)
    return "{id}";
  if (is_uuid(s, n))
    return "{uuid}";
  if (is_date(s, n))
    return "{date}";
  if (n >= 16 && hex == n && digits > 0)
    return "{hex}";
  if (n >= 20 && b64 == n && digits > 0 && alpha > 0)
    return "{token}";
  return NULL;
}

size_t kw_endpoint_template(const char *path, size_t n, char *out) {
  size_t o = 0, i = 0;

  for (size_t k = 0; k < n; k++) {
    if (path[k] == '?' || path[k] == '#') {
      n = k;
      break;
    }
  }
  if (n == 0 || path[0] != '/') {
    out[0] = '/';
    out[1] = '\0';
    return 1;
  }
  while (i < n) {
    size_t start = ++i; /* skip '/' */
    while (i < n && path[i] != '/')
      i++;
    const char *seg = path + start;
    size_t len = i - start;
    const char *ph = classify(seg, len);
    const char *w = ph ? ph : seg;
    size_t wl = ph ? strlen(ph) : len;
    /* The last segment may use the whole cap; any other must leave room for "/{more}". */
    if (o + 1 + wl > (i < n ? KW_ENDPOINT_MAX - 7 : KW_ENDPOINT_MAX)) {
      memcpy(out + o, "/{more}", 7);
      o += 7;
      break;
    }
    out[o++] = '/';
    memcpy(out + o, w, wl);
    o += wl;
  }
  out[o] = '\0';
  return o;
}
