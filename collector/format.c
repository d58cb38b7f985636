/* format.c — format registry and detection (see format.h). */
#include "format.h"
#include "../sidecar/err.h"
#include "jsonl.h"
#include "logfmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define DETECT_LINES 20

static const char *const names[] = {"auto",  "combined", "keyed",   "nginx", "json",
                                     "nginx-json", "caddy", "traefik", "envoy", "kong",
                                     NULL};

const char *const *kw_format_names(void) { return names; }

static void names_list(char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (const char *const *n = names; *n && o < len; n++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", *n);
}

static enum kw_logfmt_escape escape_of(const char *s) {
  if (s != NULL && strcmp(s, "json") == 0)
    return KW_LOGFMT_ESC_JSON;
  if (s != NULL && strcmp(s, "none") == 0)
    return KW_LOGFMT_ESC_NONE;
  return KW_LOGFMT_ESC_DEFAULT;
}

static int make_nginx(const char *fmt, enum kw_logfmt_escape esc, struct kw_format *out,
                      char *err, size_t errlen) {
  struct kw_logfmt *lf;
  char why[512] = "";
  int r = kw_logfmt_compile(fmt, esc, &lf, why, sizeof(why));
  if (r != 0) {
    snprintf(err, errlen, "log_format: %s", why);
    return r;
  }
  out->ops = &kw_logfmt_ops;
  out->ctx = lf;
  return 0;
}

/* Applies the configured JSON mapping over m (a preset or all-zero). */
static int apply_json_cfg(const struct kw_json_cfg *j, struct kw_jsonl_mapping *m,
                          char *err, size_t errlen) {
  static const char *const times[] = {"auto", "iso8601", "epoch_s", "epoch_ms",
                                      "epoch_us", "epoch_ns", "clf"};
  static const char *const units[] = {"s", "ms", "us", "ns"};
  const char *fields[KW_JF_COUNT] = {
      [KW_JF_TIME] = j->time,           [KW_JF_ADDR] = j->addr,
      [KW_JF_METHOD] = j->method,       [KW_JF_URI] = j->uri,
      [KW_JF_PATH] = j->path,           [KW_JF_QUERY] = j->query,
      [KW_JF_PROTO] = j->proto,         [KW_JF_HOST] = j->host,
      [KW_JF_USER_AGENT] = j->user_agent, [KW_JF_REFERER] = j->referer,
      [KW_JF_STATUS] = j->status,       [KW_JF_REQ_BYTES] = j->req_bytes,
      [KW_JF_RESP_BYTES] = j->resp_bytes, [KW_JF_LATENCY] = j->latency,
      [KW_JF_KEY] = j->key,             [KW_JF_KEY_ID] = j->key_id,
      [KW_JF_HEADERS] = j->headers,
  };
  for (int f = 0; f < KW_JF_COUNT; f++)
    if (fields[f] != NULL)
      m->path[f] = fields[f];
  for (size_t i = 0; j->time_format && i < sizeof(times) / sizeof(times[0]); i++)
    if (strcmp(j->time_format, times[i]) == 0)
      m->time_format = (enum kw_jsonl_time)i;
  for (size_t i = 0; j->latency_unit && i < sizeof(units) / sizeof(units[0]); i++)
    if (strcmp(j->latency_unit, units[i]) == 0)
      m->latency_unit = (enum kw_jsonl_unit)i;
  for (unsigned i = 0; i < j->header_fields_count; i++) {
    if (m->n_extra_hdrs >= KW_JSONL_MAX_EXTRA_HDRS) {
      snprintf(err, errlen, "ingest.json.header_fields: at most %d entries (with the preset's)",
               KW_JSONL_MAX_EXTRA_HDRS);
      return KW_EINVAL;
    }
    m->extra_hdrs[m->n_extra_hdrs].path = j->header_fields[i].path;
    m->extra_hdrs[m->n_extra_hdrs].header = j->header_fields[i].header;
    m->n_extra_hdrs++;
  }
  return 0;
}

static int make_json(const struct kw_ingest_cfg *cfg, const char *preset,
                     struct kw_format *out, char *err, size_t errlen) {
  struct kw_jsonl_mapping m;
  struct kw_jsonl *j;
  char why[512] = "";
  int r;

  memset(&m, 0, sizeof(m));
  if (preset == NULL && cfg->json != NULL && cfg->json->preset != NULL)
    preset = cfg->json->preset;
  if (preset != NULL && kw_jsonl_preset(preset, &m) != 0) {
    snprintf(err, errlen, "unknown JSON preset '%s'", preset);
    return KW_EFORMAT;
  }
  if (cfg->json != NULL && (r = apply_json_cfg(cfg->json, &m, err, errlen)) != 0)
    return r;
  if ((r = kw_jsonl_create(&m, &j, why, sizeof(why))) != 0) {
    snprintf(err, errlen, "ingest.json: %s", why);
    return r;
  }
  out->ops = &kw_jsonl_ops;
  out->ctx = j;
  return 0;
}

int kw_format_create(const struct kw_ingest_cfg *cfg, const char *name, struct kw_format *out,
                     char *err, size_t errlen) {
  const char *builtin;
  char list[256];
  int r;

  memset(out, 0, sizeof(*out));
  snprintf(out->name, sizeof(out->name), "%s", name);
  if (strcmp(name, "auto") == 0) {
    snprintf(err, errlen, "format 'auto' is decided per input (kw_format_detect), not built");
    return KW_EFORMAT;
  }
  if ((builtin = kw_logfmt_builtin(name)) != NULL)
    return make_nginx(builtin, KW_LOGFMT_ESC_DEFAULT, out, err, errlen);
  if (strcmp(name, "nginx") == 0) {
    if (cfg->log_format == NULL) {
      snprintf(err, errlen, "format 'nginx' needs a log_format (--log-format or "
                            "ingest.log_format)");
      return KW_EFORMAT;
    }
    return make_nginx(cfg->log_format, escape_of(cfg->escape), out, err, errlen);
  }
  if (strcmp(name, "json") == 0)
    return make_json(cfg, NULL, out, err, errlen);
  for (const char *const *p = kw_jsonl_preset_names(); *p; p++)
    if (strcmp(name, *p) == 0)
      return make_json(cfg, name, out, err, errlen);
  names_list(list, sizeof(list));
  snprintf(err, errlen, "unknown format '%s' (known: %s)", name, list);
  r = KW_EFORMAT;
  return r;
}

void kw_format_destroy(struct kw_format *f) {
  if (f->ops != NULL && f->ctx != NULL)
    f->ops->destroy(f->ctx);
  f->ops = NULL;
  f->ctx = NULL;
}

/* Describes the start of a line for an error message without quoting anything that could
 * be a secret: control bytes are escaped and every run of 12 or more non-space bytes (a
 * key, a token) is cut to its first 4 characters and "…". */
static void show(const char *s, size_t n, char *out, size_t outlen) {
  size_t o = 0, run = 0;
  for (size_t i = 0; i < n && i < 80 && o + 8 < outlen; i++) {
    unsigned char c = (unsigned char)s[i];
    bool space = c == ' ' || c == '"' || c == ',' || c == ':' || c == '[' || c == ']';
    run = space ? 0 : run + 1;
    if (run > 4) {
      size_t end = i;
      while (end < n && s[end] != ' ' && s[end] != '"' && s[end] != ',')
        end++;
      if (end - i + 4 >= 12) {
        o += (size_t)snprintf(out + o, outlen - o, "\xe2\x80\xa6");
        i = end - 1;
        run = 0;
        continue;
      }
    }
    if (c >= 0x20 && c < 0x7f && c != '\\')
      out[o++] = (char)c;
    else
      o += (size_t)snprintf(out + o, outlen - o, "\\x%02X", c);
  }
  out[o] = '\0';
  if (n > 80 && o + 4 < outlen)
    snprintf(out + o, outlen - o, "...");
}

int kw_format_detect(const char *sample, size_t n, char *out, size_t outlen, char *err,
                     size_t errlen) {
  static const char *const candidates[] = {"keyed", "combined"};
  const char *lines[DETECT_LINES];
  size_t lens[DETECT_LINES], nl = 0;
  int best = -1, best_ok = 0;
  char seen[300];

  for (const char *p = sample, *end = sample + n; p < end && nl < DETECT_LINES;) {
    const char *e = memchr(p, '\n', (size_t)(end - p));
    const char *next = e ? e + 1 : end;
    size_t len = e ? (size_t)(e - p) : (size_t)(end - p);
    if (e == NULL && nl > 0)
      break; /* a partial last line of the sample says nothing */
    if (len > 0 && p[len - 1] == '\r')
      len--;
    if (len > 0) {
      lines[nl] = p;
      lens[nl++] = len;
    }
    p = next;
  }
  if (nl == 0) {
    snprintf(err, errlen, "no lines to detect the format from (empty input)");
    return KW_EFORMAT;
  }
  if (lines[0][0] == '{') {
    const char *preset = kw_jsonl_guess_preset(lines[0], lens[0]);
    if (preset != NULL) {
      snprintf(out, outlen, "%s", preset);
      return 0;
    }
    show(lines[0], lens[0], seen, sizeof(seen));
    snprintf(err, errlen,
             "the log looks like JSON lines but fits none of the presets (first line: %s); "
             "give --format json with an ingest.json field mapping in the config",
             seen);
    return KW_EFORMAT;
  }
  for (size_t c = 0; c < sizeof(candidates) / sizeof(candidates[0]); c++) {
    struct kw_logfmt *lf;
    struct kw_rec rec;
    int ok = 0, r;
    if ((r = kw_logfmt_compile(kw_logfmt_builtin(candidates[c]), KW_LOGFMT_ESC_DEFAULT, &lf,
                               NULL, 0)) != 0) {
      if (r == KW_ENOMEM) { /* skipping the candidate could pick the wrong format */
        snprintf(err, errlen, "out of memory");
        return r;
      }
      continue;
    }
    for (size_t i = 0; i < nl; i++)
      ok += kw_logfmt_parse(lf, lines[i], lens[i], &rec, NULL, 0) == 0;
    kw_logfmt_destroy(lf);
    if (ok > best_ok) {
      best_ok = ok;
      best = (int)c;
    }
  }
  if (best >= 0 && (size_t)best_ok * 2 >= nl) {
    snprintf(out, outlen, "%s", candidates[best]);
    return 0;
  }
  show(lines[0], lens[0], seen, sizeof(seen));
  snprintf(err, errlen,
           "cannot tell the log format from the first %zu lines (first line: %s); give "
           "--format NAME or --log-format 'nginx log_format'",
           nl, seen);
  return KW_EFORMAT;
}
