/* call.c — helpers for the kw_call record's address type. Thread: any. */
#include "call.h"
#include "err.h"

#include <arpa/inet.h>
#include <string.h>

int kw_addr_parse(const char *s, size_t n, struct kw_addr *out) {
  char buf[64];

  memset(out, 0, sizeof(*out));
  if (n == 0 || n >= sizeof(buf))
    return KW_EPARSE;
  if (s[0] == '[') { /* [v6]:port */
    const char *end = memchr(s, ']', n);
    if (end == NULL)
      return KW_EPARSE;
    s++;
    n = (size_t)(end - s);
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (memchr(buf, ':', n) == NULL || strchr(buf, '.') != NULL) {
    char *colon = strchr(buf, ':'); /* a.b.c.d:port */
    if (colon != NULL && strchr(colon + 1, ':') == NULL)
      *colon = '\0';
    if (inet_pton(AF_INET, buf, out->a) == 1) {
      out->family = 4;
      return 0;
    }
  }
  if (inet_pton(AF_INET6, buf, out->a) == 1) {
    out->family = 6;
    return 0;
  }
  memset(out, 0, sizeof(*out));
  return KW_EPARSE;
}

const char *kw_addr_format(const struct kw_addr *addr, char *buf, size_t len) {
  if (len == 0)
    return buf;
  buf[0] = '\0';
  if (addr->family == 4)
    inet_ntop(AF_INET, addr->a, buf, (socklen_t)len);
  else if (addr->family == 6)
    inet_ntop(AF_INET6, addr->a, buf, (socklen_t)len);
  return buf;
}
