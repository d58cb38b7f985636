/* sink.c — the sink registry, instances, the configured set, and shared helpers.
 *
 * The registry is one const array of the implementations' ops tables.  An instance holds
 * a *copy* of its table in which the optional slots are filled with defaults (this is the
 * "registration"): nothing else ever tests for a NULL slot.
 *
 * kw_sink_send() is the one gate every document passes: it checks the instance is open,
 * flattens the document to one line (kw_sink_flatten) and hands it to the plugin, which
 * copies it; the flattened buffer is freed again here.
 *
 * A set closes its sinks together and frees itself when the last close callback ran:
 *
 *   open ──close_all──► closing (pending = n) ──each sink's cb: pending-- ──► 0: free, cb
 *
 * Thread: the loop's.
 */
#include "sink.h"

#include "sidecar/alerts.h"
#include "sidecar/config.h"
#include "sidecar/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The implementations (each file exports only its table). */
extern const struct kw_sink_ops kw__sink_stdout_ops, kw__sink_file_ops,
    kw__sink_webhook_ops, kw__sink_syslog_ops;

static const struct kw_sink_ops *const registry[] = {
    &kw__sink_stdout_ops,
    &kw__sink_file_ops,
    &kw__sink_webhook_ops,
    &kw__sink_syslog_ops,
};

static int default_reopen(void *ctx) {
  (void)ctx;
  return 0;
}

int kw_sink_ops_get(const char *type, struct kw_sink_ops *out) {
  for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
    if (type != NULL && strcmp(registry[i]->type, type) == 0) {
      *out = *registry[i];
      if (out->reopen == NULL)
        out->reopen = default_reopen;
      return 0;
    }
  }
  return KW_ENOTFOUND;
}

/* ---- one sink ------------------------------------------------------------------------ */

int kw_sink_open(uv_loop_t *loop, const struct kw_sink_cfg *cfg, struct kw_sink **out,
                 char *err, size_t errlen) {
  struct kw_sink *s = NULL;
  int r;

  *out = NULL;
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    r = KW_ENOMEM;
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  if (kw_sink_ops_get(cfg->type, &s->ops) != 0) {
    r = KW_EINVAL;
    snprintf(err, errlen, "type: unknown sink type '%s' (stdout, file, webhook, syslog)",
             cfg->type ? cfg->type : "");
    goto out;
  }
  s->min_severity = cfg->min_severity ? kw_severity_parse(cfg->min_severity) : KW_SEV_INFO;
  if (s->min_severity < 0) {
    r = KW_EINVAL;
    snprintf(err, errlen, "min_severity: '%s' is not a severity", cfg->min_severity);
    goto out;
  }
  if (snprintf(s->name, sizeof(s->name), "%s", cfg->name ? cfg->name : cfg->type) >=
      (int)sizeof(s->name)) {
    r = KW_EINVAL;
    snprintf(err, errlen, "name: longer than %zu characters", sizeof(s->name) - 1);
    goto out;
  }
  if ((r = s->ops.create(loop, cfg, &s->ctx, err, errlen)) != 0)
    goto out;
  *out = s;
  s = NULL;
out:
  free(s);
  return r;
}

int kw_sink_send(struct kw_sink *s, const char *json, size_t len, int severity,
                 kw_sink_done_cb cb, void *arg) {
  char *line;
  size_t n;
  int r;

  if (s->closing)
    return KW_ECANCELED;
  if ((line = kw_sink_flatten(json, len, &n)) == NULL)
    return KW_ENOMEM;
  r = s->ops.send(s->ctx, line, n, severity, cb, arg);
  free(line);
  return r;
}

bool kw_sink_wants(const struct kw_sink *s, int severity) {
  return severity >= s->min_severity;
}

int kw_sink_reopen(struct kw_sink *s) {
  return s->closing ? KW_ECANCELED : s->ops.reopen(s->ctx);
}

static void on_sink_closed(void *arg) {
  struct kw_sink *s = arg;
  kw_sink_close_cb cb = s->close_cb;
  void *cb_arg = s->close_arg;
  free(s);
  if (cb)
    cb(cb_arg);
}

void kw_sink_close(struct kw_sink *s, kw_sink_close_cb cb, void *arg) {
  if (s == NULL || s->closing)
    return;
  s->closing = true;
  s->close_cb = cb;
  s->close_arg = arg;
  s->ops.close(s->ctx, on_sink_closed, s);
}

/* ---- the set ------------------------------------------------------------------------- */

struct kw_sinks {
  struct kw_sink **v;
  size_t n;
  uv_timer_t hold; /* closed along with the sinks, so cb is never called synchronously */
  size_t pending;  /* closes not yet called back */
  kw_sink_close_cb cb;
  void *arg;
};

/* Splits "FIELD: message" when FIELD looks like a relative field path. */
static const char *split_field(const char *msg, char *field, size_t flen) {
  const char *colon = strstr(msg, ": ");
  size_t i;
  if (colon == NULL || (size_t)(colon - msg) >= flen || colon == msg)
    return NULL;
  for (i = 0; msg + i < colon; i++)
    if (!(islower((unsigned char)msg[i]) || isdigit((unsigned char)msg[i]) || msg[i] == '_' ||
          msg[i] == '.'))
      return NULL;
  memcpy(field, msg, i);
  field[i] = '\0';
  return colon + 2;
}

static void on_set_member_closed(void *arg) {
  struct kw_sinks *set = arg;
  if (--set->pending > 0)
    return;
  kw_sink_close_cb cb = set->cb;
  void *cb_arg = set->arg;
  free(set->v);
  free(set);
  if (cb)
    cb(cb_arg);
}

static void on_hold_closed(uv_handle_t *h) {
  on_set_member_closed(h->data);
}

void kw_sink_close_all(struct kw_sinks *set, kw_sink_close_cb cb, void *arg) {
  size_t n;
  if (set == NULL)
    return;
  set->cb = cb;
  set->arg = arg;
  n = set->n;
  set->pending = n + 1; /* + the hold timer */
  for (size_t i = 0; i < n; i++) {
    struct kw_sink *s = set->v[i];
    set->v[i] = NULL;
    kw_sink_close(s, on_set_member_closed, set);
  }
  set->n = 0;
  uv_close((uv_handle_t *)&set->hold, on_hold_closed);
}

int kw_sink_open_all(uv_loop_t *loop, const struct kw_config *cfg, struct kw_sinks **out,
                     char *err, size_t errlen) {
  struct kw_sinks *set = NULL;
  int r = 0;

  *out = NULL;
  set = calloc(1, sizeof(*set));
  if (set == NULL)
    return KW_ENOMEM;
  uv_timer_init(loop, &set->hold);
  set->hold.data = set;
  if (cfg->sinks_count > 0 && (set->v = calloc(cfg->sinks_count, sizeof(*set->v))) == NULL) {
    r = KW_ENOMEM;
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  for (unsigned i = 0; i < cfg->sinks_count; i++) {
    char msg[512], field[64], full[96];
    const char *rest;
    if ((r = kw_sink_open(loop, &cfg->sinks[i], &set->v[i], msg, sizeof(msg))) != 0) {
      if ((rest = split_field(msg, field, sizeof(field))) != NULL) {
        snprintf(full, sizeof(full), "sinks.%u.%s", i, field);
        kw_config_error(cfg, full, err, errlen, "%s", rest);
      } else {
        snprintf(full, sizeof(full), "sinks.%u", i);
        kw_config_error(cfg, full, err, errlen, "%s", msg);
      }
      if (r == KW_ECONFIG || r == KW_EINVAL)
        r = KW_ECONFIG;
      goto out;
    }
    set->n = i + 1;
  }
  *out = set;
  set = NULL;
out:
  if (set != NULL)
    kw_sink_close_all(set, NULL, NULL);
  return r;
}

size_t kw_sink_count(const struct kw_sinks *set) {
  return set ? set->n : 0;
}

struct kw_sink *kw_sink_at(struct kw_sinks *set, size_t i) {
  return set && i < set->n ? set->v[i] : NULL;
}

struct kw_sink *kw_sink_find(struct kw_sinks *set, const char *name, size_t *index) {
  for (size_t i = 0; set && name && i < set->n; i++) {
    if (strcmp(set->v[i]->name, name) == 0) {
      if (index)
        *index = i;
      return set->v[i];
    }
  }
  return NULL;
}

int kw_sink_reopen_all(struct kw_sinks *set) {
  int first = 0;
  for (size_t i = 0; set && i < set->n; i++) {
    int r = kw_sink_reopen(set->v[i]);
    if (r != 0 && first == 0)
      first = r;
  }
  return first;
}

/* ---- helpers ------------------------------------------------------------------------- */

char *kw_sink_flatten(const char *json, size_t len, size_t *outlen) {
  static const char hex[] = "0123456789abcdef";
  size_t extra = 0, o = 0;
  char *out;

  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)json[i];
    if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f)
      extra += 5; /* one byte becomes \u00XX */
  }
  if (len > SIZE_MAX - 1 - extra || (out = malloc(len + extra + 1)) == NULL)
    return NULL;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)json[i];
    if (c == '\n' || c == '\r' || c == '\t') {
      out[o++] = ' ';
    } else if (c < 0x20 || c == 0x7f) {
      memcpy(out + o, "\\u00", 4);
      out[o + 4] = hex[c >> 4];
      out[o + 5] = hex[c & 15];
      o += 6;
    } else {
      out[o++] = (char)c;
    }
  }
  out[o] = '\0';
  *outlen = o;
  return out;
}

int kw_sink_parse_address(const char *spec, bool *udp, char *host, size_t hostlen,
                          int *port) {
  const char *p = spec, *colon;
  long v;
  char *end;

  if (spec == NULL)
    return KW_EINVAL;
  *udp = true;
  if (strncmp(p, "udp://", 6) == 0) {
    p += 6;
  } else if (strncmp(p, "tcp://", 6) == 0) {
    p += 6;
    *udp = false;
  } else if (strstr(p, "://") != NULL) {
    return KW_EINVAL;
  }
  if (*p == '[') {
    const char *rb = strchr(p, ']');
    if (rb == NULL || rb[1] != ':' || rb == p + 1 || (size_t)(rb - p - 1) >= hostlen)
      return KW_EINVAL;
    snprintf(host, hostlen, "%.*s", (int)(rb - p - 1), p + 1);
    colon = rb + 1;
  } else {
    colon = strrchr(p, ':');
    if (colon == NULL || colon == p || (size_t)(colon - p) >= hostlen ||
        memchr(p, ':', (size_t)(colon - p)) != NULL)
      return KW_EINVAL;
    snprintf(host, hostlen, "%.*s", (int)(colon - p), p);
  }
  for (const char *h = host; *h; h++)
    if (!(isalnum((unsigned char)*h) || *h == '.' || *h == '-' || *h == ':' || *h == '_' ||
          *h == '%'))
      return KW_EINVAL;
  if (colon[1] < '0' || colon[1] > '9')
    return KW_EINVAL;
  v = strtol(colon + 1, &end, 10);
  if (*end != '\0' || v < 1 || v > 65535)
    return KW_EINVAL;
  *port = (int)v;
  return 0;
}
