/* jsonl.c — JSON-lines access logs through a field mapping (see jsonl.h).
 *
 * create() compiles each mapped path once: the path strings are copied into one owned
 * buffer in which '.' and '|' become NULs, and each field keeps up to KW_JSONL_MAX_ALTS
 * alternatives of up to KW_JSONL_MAX_COMPONENTS components (key, or key-or-index when
 * the component is all digits).  parse() lets jansson build the tree (it validates
 * UTF-8, bounds nesting at JSON_PARSER_MAX_DEPTH and rejects integer overflow), walks
 * the compiled paths, and converts values.
 *
 * Memory per parser, all owned by struct kw_jsonl:
 *   strings  the mapping's strings, compiled; fixed after create()
 *   root     the tree of the last line; decref'd at the next parse() and at destroy()
 *   scratch  2 × KW_JSONL_MAX_LINE + slack bytes, reset at each parse(): lower-cased
 *            header names and a URI composed from path + query.  Every byte written
 *            there comes from a distinct string of the line (at most the line's length)
 *            plus a URI (at most the line's length again), so it cannot run out; the
 *            bound is still checked.
 * Invariant: every kw_str placed in a kw_rec points into root's strings, scratch, or
 * strings, so it lives until the next parse()/destroy().
 *
 * Numbers are read exactly: JSON integers as int64, decimal strings digit by digit, and
 * only JSON reals go through double.  They become a fixed-point {whole, nanos} ≥ 0 before
 * unit conversion, so epoch nanoseconds as integers keep their precision.
 *
 * Error reasons never quote the line (a key may sit next to the error); they name the
 * field or the byte offset.
 * Thread: one parser, one thread; the static tables are const.
 */
#include "jsonl.h"

#include "../sidecar/err.h"
#include "../sidecar/escape.h"
#include "../sidecar/timeutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH_CAP (2 * KW_JSONL_MAX_LINE + 1024)

/* ---- compiled paths -------------------------------------------------------------- */

struct comp {
  const char *key;  /* NUL-terminated, inside kw_jsonl.strings or a caller's buffer */
  size_t index;     /* valid when is_index */
  bool is_index;    /* all digits: also an array index */
};

struct fpath {
  unsigned nalt; /* 0: unmapped */
  unsigned ncomp[KW_JSONL_MAX_ALTS];
  struct comp c[KW_JSONL_MAX_ALTS][KW_JSONL_MAX_COMPONENTS];
};

struct extra {
  struct fpath path;
  const char *name; /* normalised header name, inside strings */
  size_t nlen;
};

struct kw_jsonl {
  struct fpath f[KW_JF_COUNT];
  struct extra extra[KW_JSONL_MAX_EXTRA_HDRS];
  size_t nextra;
  const char *prefix; /* NULL: none */
  size_t prefix_len;
  enum kw_jsonl_time tfmt;
  enum kw_jsonl_unit lunit;
  char *strings;
  json_t *root;
  char *scratch;
  size_t scratch_used;
  char *mended; /* a line with invalid UTF-8 replaced; 3 × KW_JSONL_MAX_LINE, lazily */
};

static const char *const field_names[KW_JF_COUNT] = {
  [KW_JF_TIME] = "time",
  [KW_JF_ADDR] = "addr",
  [KW_JF_METHOD] = "method",
  [KW_JF_URI] = "uri",
  [KW_JF_PATH] = "path",
  [KW_JF_QUERY] = "query",
  [KW_JF_PROTO] = "proto",
  [KW_JF_HOST] = "host",
  [KW_JF_USER_AGENT] = "user_agent",
  [KW_JF_REFERER] = "referer",
  [KW_JF_STATUS] = "status",
  [KW_JF_REQ_BYTES] = "req_bytes",
  [KW_JF_RESP_BYTES] = "resp_bytes",
  [KW_JF_LATENCY] = "latency",
  [KW_JF_KEY] = "key",
  [KW_JF_KEY_ID] = "key_id",
  [KW_JF_HEADERS] = "headers",
};

const char *kw_jsonl_field_name(enum kw_jsonl_field f) {
  if ((unsigned)f >= KW_JF_COUNT)
    return NULL;
  return field_names[f];
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
                                                      const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return KW_EPARSE;
}

/* Compiles src into *fp, copying it to dst (at least strlen(src) + 1 bytes).  Returns
 * NULL or a static reason. */
static const char *compile_path(const char *src, char *dst, struct fpath *fp) {
  size_t n = strlen(src);
  unsigned alt = 0, comp = 0;
  char *start = dst;

  memset(fp, 0, sizeof(*fp));
  if (n == 0)
    return "empty path";
  if (n > KW_JSONL_MAX_PATH)
    return "path too long";
  memcpy(dst, src, n + 1);
  for (size_t i = 0; i <= n; i++) {
    char c = dst[i];
    if (c != '.' && c != '|' && c != '\0')
      continue;
    char *key = start;
    size_t klen = (size_t)(dst + i - start);
    if (klen == 0)
      return "empty component";
    if (comp == KW_JSONL_MAX_COMPONENTS)
      return "too many components";
    dst[i] = '\0';
    struct comp *cp = &fp->c[alt][comp++];
    cp->key = key;
    cp->is_index = klen <= 9;
    cp->index = 0;
    for (size_t k = 0; k < klen && cp->is_index; k++) {
      if (key[k] < '0' || key[k] > '9')
        cp->is_index = false;
      else
        cp->index = cp->index * 10 + (size_t)(key[k] - '0');
    }
    start = dst + i + 1;
    if (c != '.') { /* end of an alternative */
      fp->ncomp[alt++] = comp;
      comp = 0;
      if (c == '|' && alt == KW_JSONL_MAX_ALTS)
        return "too many alternatives";
    }
  }
  fp->nalt = alt;
  return NULL;
}

static bool has_value(const json_t *v) {
  if (v == NULL || json_is_null(v))
    return false;
  if (json_is_string(v)) {
    size_t n = json_string_length(v);
    return n > 1 || (n == 1 && json_string_value(v)[0] != '-');
  }
  return true;
}

/* The value of the first alternative of fp that has one, or NULL. */
static json_t *lookup(json_t *root, const struct fpath *fp) {
  for (unsigned a = 0; a < fp->nalt; a++) {
    json_t *node = root;
    for (unsigned i = 0; i < fp->ncomp[a] && node != NULL; i++) {
      const struct comp *cp = &fp->c[a][i];
      if (json_is_object(node))
        node = json_object_get(node, cp->key);
      else if (json_is_array(node) && cp->is_index)
        node = json_array_get(node, cp->index);
      else
        node = NULL;
    }
    if (has_value(node))
      return node;
  }
  return NULL;
}

/* ---- create / destroy ------------------------------------------------------------ */

/* A header name as the mapping gives it: printable, no spaces or separators. */
static bool valid_header_name(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c <= ' ' || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
      return false;
  }
  return true;
}

static size_t normalise_name(char *dst, const char *src, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = src[i];
    dst[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c == '_' ? '-' : c;
  }
  return n;
}

int kw_jsonl_create(const struct kw_jsonl_mapping *m, struct kw_jsonl **out, char *err,
                    size_t errlen) {
  struct kw_jsonl *j = NULL;
  size_t total = 0;
  char *p;
  const char *why;
  int rc = KW_EINVAL;

  *out = NULL;
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (m->path[KW_JF_URI] == NULL && m->path[KW_JF_PATH] == NULL) {
    fail(err, errlen, "json mapping: neither 'uri' nor 'path' is mapped");
    goto out;
  }
  if ((unsigned)m->time_format > KW_JT_CLF) {
    fail(err, errlen, "json mapping: field 'time': unknown time format %d",
         (int)m->time_format);
    goto out;
  }
  if ((unsigned)m->latency_unit > KW_JU_NS) {
    fail(err, errlen, "json mapping: field 'latency': unknown unit %d", (int)m->latency_unit);
    goto out;
  }
  if (m->n_extra_hdrs > KW_JSONL_MAX_EXTRA_HDRS) {
    fail(err, errlen, "json mapping: more than %d extra headers", KW_JSONL_MAX_EXTRA_HDRS);
    goto out;
  }
  for (size_t i = 0; i < KW_JF_COUNT; i++)
    if (m->path[i] != NULL)
      total += strnlen(m->path[i], KW_JSONL_MAX_PATH + 1) + 1;
  for (size_t i = 0; i < m->n_extra_hdrs; i++) {
    const struct kw_jsonl_extra_hdr *e = &m->extra_hdrs[i];
    if (e->path == NULL || e->header == NULL || !valid_header_name(e->header)) {
      fail(err, errlen, "json mapping: extra header %zu: needs a path and a header name", i);
      goto out;
    }
    total += strnlen(e->path, KW_JSONL_MAX_PATH + 1) + 1;
    total += strnlen(e->header, KW_JSONL_MAX_PATH + 1) + 1;
  }
  if (m->hdr_prefix != NULL)
    total += strnlen(m->hdr_prefix, KW_JSONL_MAX_PATH + 1) + 1;

  rc = KW_ENOMEM;
  j = calloc(1, sizeof(*j));
  if (j == NULL)
    goto out;
  j->strings = malloc(total + 1);
  j->scratch = malloc(SCRATCH_CAP);
  if (j->strings == NULL || j->scratch == NULL)
    goto out;

  rc = KW_EINVAL;
  p = j->strings;
  for (size_t i = 0; i < KW_JF_COUNT; i++) {
    if (m->path[i] == NULL)
      continue;
    why = compile_path(m->path[i], p, &j->f[i]);
    if (why != NULL) {
      fail(err, errlen, "json mapping: field '%s': %s in \"%.*s\"", field_names[i], why,
           KW_JSONL_MAX_PATH, m->path[i]);
      goto out;
    }
    p += strlen(m->path[i]) + 1; /* compile_path NUL-split the copy: skip by source size */
  }
  for (size_t i = 0; i < m->n_extra_hdrs; i++) {
    const struct kw_jsonl_extra_hdr *e = &m->extra_hdrs[i];
    struct extra *x = &j->extra[j->nextra++];
    size_t plen = strlen(e->path), hlen;
    why = compile_path(e->path, p, &x->path);
    if (why != NULL) {
      fail(err, errlen, "json mapping: header '%.64s': %s in \"%.*s\"", e->header, why,
           KW_JSONL_MAX_PATH, e->path);
      goto out;
    }
    p += plen + 1;
    hlen = strlen(e->header);
    if (hlen > KW_JSONL_MAX_PATH) {
      fail(err, errlen, "json mapping: header name too long");
      goto out;
    }
    x->name = p;
    x->nlen = normalise_name(p, e->header, hlen);
    p[hlen] = '\0';
    p += hlen + 1;
  }
  if (m->hdr_prefix != NULL && m->hdr_prefix[0] != '\0') {
    size_t n = strlen(m->hdr_prefix);
    if (n > KW_JSONL_MAX_PATH) {
      fail(err, errlen, "json mapping: header prefix too long");
      goto out;
    }
    memcpy(p, m->hdr_prefix, n + 1);
    j->prefix = p;
    j->prefix_len = n;
  }
  j->tfmt = m->time_format;
  j->lunit = m->latency_unit;
  *out = j;
  j = NULL;
  rc = 0;
out:
  kw_jsonl_destroy(j);
  return rc;
}

void kw_jsonl_destroy(struct kw_jsonl *j) {
  if (j == NULL)
    return;
  json_decref(j->root);
  free(j->strings);
  free(j->scratch);
  free(j->mended);
  free(j);
}

/* ---- values ---------------------------------------------------------------------- */

/* A non-negative number as whole units and nanounits (0 ≤ nanos < 1e9). */
struct num {
  int64_t whole;
  int64_t nanos;
};

enum { NUM_OK, NUM_TYPE, NUM_RANGE, NUM_SYNTAX };

static const char *num_reason(int rc) {
  switch (rc) {
  case NUM_TYPE: return "expected a number";
  case NUM_RANGE: return "out of range";
  default: return "not a decimal number";
  }
}

/* "123", "0.012", "-1" (NUM_RANGE: nothing here may be negative).  No exponent, no
 * spaces: that is all nginx, Envoy and Kong write in a quoted number. */
static int parse_decimal(const char *s, size_t n, struct num *out) {
  size_t i = 0;
  int64_t w = 0, f = 0, scale = 100000000;

  if (n > 0 && s[0] == '-')
    return n > 1 && s[1] >= '0' && s[1] <= '9' ? NUM_RANGE : NUM_SYNTAX;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
    if (w > (INT64_MAX - 9) / 10)
      return NUM_RANGE;
    w = w * 10 + (s[i] - '0');
  }
  if (i == 0)
    return NUM_SYNTAX;
  if (i < n && s[i] == '.') {
    size_t start = ++i;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
      f += (s[i] - '0') * scale;
      scale /= 10;
    }
    if (i == start)
      return NUM_SYNTAX;
  }
  if (i != n)
    return NUM_SYNTAX;
  out->whole = w;
  out->nanos = f;
  return NUM_OK;
}

static int get_num(const json_t *v, struct num *out) {
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    if (i < 0)
      return NUM_RANGE;
    out->whole = (int64_t)i;
    out->nanos = 0;
    return NUM_OK;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!(d >= 0.0) || d >= 9.2e18) /* also rejects NaN */
      return NUM_RANGE;
    out->whole = (int64_t)d;
    out->nanos = (int64_t)((d - (double)out->whole) * 1e9 + 0.5);
    if (out->nanos >= 1000000000) {
      out->whole++;
      out->nanos -= 1000000000;
    }
    return NUM_OK;
  }
  if (json_is_string(v))
    return parse_decimal(json_string_value(v), json_string_length(v), out);
  return NUM_TYPE;
}

/* n in the given unit → µs, rounded to nearest. */
static int num_to_us(const struct num *n, enum kw_jsonl_unit unit, int64_t *us) {
  static const int64_t mul[] = {[KW_JU_S] = 1000000, [KW_JU_MS] = 1000, [KW_JU_US] = 1};

  if (unit == KW_JU_NS) {
    *us = n->whole / 1000 + (n->whole % 1000 >= 500);
    return NUM_OK;
  }
  if (n->whole > (INT64_MAX - 1000000) / mul[unit])
    return NUM_RANGE;
  *us = n->whole * mul[unit] + (n->nanos * mul[unit] + 500000000) / 1000000000;
  return NUM_OK;
}

/* Epoch of unknown unit: judged by magnitude (seconds until the year 5138). */
static enum kw_jsonl_unit epoch_unit(const struct num *n) {
  if (n->whole < 100000000000LL)
    return KW_JU_S;
  if (n->whole < 100000000000000LL)
    return KW_JU_MS;
  if (n->whole < 100000000000000000LL)
    return KW_JU_US;
  return KW_JU_NS;
}

/* A text value: a string, or the first element of an array of strings.  Returns 0 with
 * *out set, 1 when there is no value, -1 for a wrong type. */
static int get_text(const json_t *v, struct kw_str *out) {
  if (json_is_array(v)) {
    if (json_array_size(v) == 0)
      return 1;
    v = json_array_get(v, 0);
  }
  if (json_is_string(v)) {
    if (!has_value(v))
      return 1;
    *out = kw_str_make(json_string_value(v), json_string_length(v));
    return 0;
  }
  return json_is_null(v) ? 1 : -1;
}

static char *scratch_take(struct kw_jsonl *j, size_t n) {
  char *p;
  if (n > SCRATCH_CAP - j->scratch_used)
    return NULL;
  p = j->scratch + j->scratch_used;
  j->scratch_used += n;
  return p;
}

/* ---- parse ----------------------------------------------------------------------- */

static int parse_time_raw(const struct kw_jsonl *j, const json_t *v, int64_t *us, char *err,
                          size_t errlen) {
  struct num n;
  int rc;

  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    enum kw_jsonl_unit unit;

    switch (j->tfmt) {
    case KW_JT_ISO8601:
      if (kw_time_parse_iso8601(s, len, us) == 0)
        return 0;
      return fail(err, errlen, "time: expected an ISO 8601 time");
    case KW_JT_CLF:
      if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
      }
      if (kw_time_parse_clf(s, len, us) == 0)
        return 0;
      return fail(err, errlen, "time: expected a CLF time");
    case KW_JT_AUTO:
      if (kw_time_parse_iso8601(s, len, us) == 0)
        return 0;
      if (len >= 2 && s[0] == '[' && s[len - 1] == ']' &&
          kw_time_parse_clf(s + 1, len - 2, us) == 0)
        return 0;
      if (kw_time_parse_clf(s, len, us) == 0)
        return 0;
      if (parse_decimal(s, len, &n) != NUM_OK)
        return fail(err, errlen, "time: unrecognised format");
      unit = epoch_unit(&n);
      break;
    default: /* epochs */
      rc = parse_decimal(s, len, &n);
      if (rc != NUM_OK)
        return fail(err, errlen, "time: %s", num_reason(rc));
      unit = (enum kw_jsonl_unit)(j->tfmt - KW_JT_EPOCH_S);
      break;
    }
    rc = num_to_us(&n, unit, us);
    return rc == NUM_OK ? 0 : fail(err, errlen, "time: %s", num_reason(rc));
  }
  if (j->tfmt == KW_JT_ISO8601 || j->tfmt == KW_JT_CLF)
    return fail(err, errlen, "time: expected a string");
  rc = get_num(v, &n);
  if (rc == NUM_OK)
    rc = num_to_us(&n, j->tfmt == KW_JT_AUTO ? epoch_unit(&n)
                                              : (enum kw_jsonl_unit)(j->tfmt - KW_JT_EPOCH_S),
                   us);
  return rc == NUM_OK ? 0 : fail(err, errlen, "time: %s", num_reason(rc));
}

/* A time before 1970 is no log timestamp, and -1 means "absent" in a kw_rec. */
static int parse_time(const struct kw_jsonl *j, const json_t *v, int64_t *us, char *err,
                      size_t errlen) {
  int64_t t;
  int rc = parse_time_raw(j, v, &t, err, errlen);
  if (rc != 0)
    return rc;
  if (t < 0)
    return fail(err, errlen, "time: before 1970");
  *us = t;
  return 0;
}

/* An integer field; *out is left alone when the line has no value. */
static int parse_int(struct kw_jsonl *j, enum kw_jsonl_field f, int64_t max, int64_t *out,
                     char *err, size_t errlen) {
  const json_t *v = lookup(j->root, &j->f[f]);
  struct num n;
  int rc;

  if (v == NULL)
    return 0;
  rc = get_num(v, &n);
  if (rc != NUM_OK)
    return fail(err, errlen, "%s: %s", field_names[f], num_reason(rc));
  if (n.nanos != 0)
    return fail(err, errlen, "%s: expected an integer", field_names[f]);
  if (n.whole > max)
    return fail(err, errlen, "%s: out of range", field_names[f]);
  *out = n.whole;
  return 0;
}

static int parse_text(struct kw_jsonl *j, enum kw_jsonl_field f, struct kw_str *out,
                      char *err, size_t errlen) {
  const json_t *v = lookup(j->root, &j->f[f]);
  if (v != NULL && get_text(v, out) < 0)
    return fail(err, errlen, "%s: expected a string", field_names[f]);
  return 0;
}

/* Headers that never carry a credential; skipped from header objects so that a browser's
 * twenty headers do not push an API key out of the KW_REC_MAX_HDRS slots. */
static bool noise_header(const char *name, size_t n) {
  static const char *const noise[] = {
    "accept", "accept-charset", "accept-encoding", "accept-language", "cache-control",
    "connection", "content-length", "content-type", "dnt", "if-modified-since",
    "if-none-match", "keep-alive", "pragma", "priority", "te", "upgrade-insecure-requests",
  };
  if (n > 4 && memcmp(name, "sec-", 4) == 0)
    return true;
  for (size_t i = 0; i < sizeof(noise) / sizeof(noise[0]); i++)
    if (strlen(noise[i]) == n && memcmp(noise[i], name, n) == 0)
      return true;
  return false;
}

/* Adds a header the line carries under its own name (a member of a header object, or a
 * top-level member after hdr_prefix): normalised, credential placeholders and noise
 * dropped.  Values that are not text are skipped rather than failing the line: a header
 * object is whatever the client sent, not a schema. */
static void add_line_header(struct kw_jsonl *j, struct kw_rec *rec, const char *name,
                            size_t nlen, const json_t *v) {
  struct kw_str value;
  bool plain = true;
  char *copy = NULL;

  if (rec->nhdrs >= KW_REC_MAX_HDRS || nlen == 0 || get_text(v, &value) != 0)
    return;
  if (value.n == 8 && memcmp(value.p, "REDACTED", 8) == 0)
    return;
  for (size_t i = 0; i < nlen && plain; i++)
    plain = !(name[i] >= 'A' && name[i] <= 'Z') && name[i] != '_';
  if (!plain) {
    copy = scratch_take(j, nlen);
    if (copy == NULL)
      return;
    normalise_name(copy, name, nlen);
    name = copy;
  }
  if (noise_header(name, nlen)) {
    if (copy != NULL)
      j->scratch_used -= nlen;
    return;
  }
  kw_rec_add_hdr(rec, kw_str_make(name, nlen), value);
}

static int parse_headers(struct kw_jsonl *j, struct kw_rec *rec, char *err, size_t errlen) {
  const char *key;
  size_t klen;
  json_t *v;

  for (size_t i = 0; i < j->nextra; i++) {
    const struct extra *x = &j->extra[i];
    struct kw_str value;
    int rc;

    v = lookup(j->root, &x->path);
    if (v == NULL)
      continue;
    rc = get_text(v, &value);
    if (rc < 0)
      return fail(err, errlen, "header %s: expected a string", x->name);
    if (rc == 0 && !(value.n == 8 && memcmp(value.p, "REDACTED", 8) == 0))
      kw_rec_add_hdr(rec, kw_str_make(x->name, x->nlen), value);
  }
  if (j->prefix != NULL) {
    json_object_keylen_foreach(j->root, key, klen, v) {
      if (klen > j->prefix_len && memcmp(key, j->prefix, j->prefix_len) == 0)
        add_line_header(j, rec, key + j->prefix_len, klen - j->prefix_len, v);
    }
  }
  json_t *obj = lookup(j->root, &j->f[KW_JF_HEADERS]);
  if (obj != NULL) {
    if (!json_is_object(obj))
      return fail(err, errlen, "headers: expected an object");
    json_object_keylen_foreach(obj, key, klen, v) {
      add_line_header(j, rec, key, klen, v);
    }
  }
  return 0;
}

/* URI: the uri field when it has a value, else path + '?' + query. */
static int parse_uri(struct kw_jsonl *j, struct kw_rec *rec, char *err, size_t errlen) {
  struct kw_str path = KW_STR_NULL, query = KW_STR_NULL;
  char *buf;
  int rc;

  rc = parse_text(j, KW_JF_URI, &rec->uri, err, errlen);
  if (rc != 0 || rec->uri.p != NULL)
    return rc;
  if ((rc = parse_text(j, KW_JF_PATH, &path, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_QUERY, &query, err, errlen)) != 0)
    return rc;
  if (path.p == NULL)
    return 0;
  if (query.n > 0 && query.p[0] == '?') {
    query.p++;
    query.n--;
  }
  if (query.n == 0) {
    rec->uri = path;
    return 0;
  }
  buf = scratch_take(j, path.n + 1 + query.n);
  if (buf == NULL)
    return fail(err, errlen, "uri: too long");
  memcpy(buf, path.p, path.n);
  buf[path.n] = '?';
  memcpy(buf + path.n + 1, query.p, query.n);
  rec->uri = kw_str_make(buf, path.n + 1 + query.n);
  return 0;
}

static const char *json_reason(const json_error_t *e) {
  switch (json_error_code(e)) {
  case json_error_invalid_utf8: return "invalid UTF-8";
  case json_error_premature_end_of_input: return "truncated JSON";
  case json_error_end_of_input_expected: return "data after the JSON object";
  case json_error_stack_overflow: return "JSON nested too deep";
  case json_error_numeric_overflow: return "number out of range";
  case json_error_null_character:
  case json_error_null_byte_in_key: return "NUL character";
  case json_error_out_of_memory: return "out of memory";
  default: return "invalid JSON";
  }
}

/* nginx's escape=json passes bytes >= 0x80 through unchecked, so a client can put
 * invalid UTF-8 in its User-Agent, and jansson rejects such a line whole: the call would
 * go unrecorded, which is exactly what an attacker wants.  So invalid bytes are replaced
 * by U+FFFD in a copy before parsing.  Valid lines (nearly all) cost one scan. */
static int mend_utf8_into(char **buf, const char **line, size_t *len) {
  const unsigned char *s = (const unsigned char *)*line;
  size_t n = *len, i = 0, o;
  char *out;

  while (i < n) {
    size_t l = s[i] < 0x80 ? 1 : kw_utf8_len(s + i, n - i);
    if (l == 0)
      break;
    i += l;
  }
  if (i == n)
    return 0;
  if (*buf == NULL && (*buf = malloc(3 * KW_JSONL_MAX_LINE)) == NULL)
    return KW_ENOMEM;
  out = *buf;
  memcpy(out, s, i);
  for (o = i; i < n;) {
    size_t l = s[i] < 0x80 ? 1 : kw_utf8_len(s + i, n - i);
    if (l == 0) {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    } else {
      memcpy(out + o, s + i, l);
      o += l;
      i += l;
    }
  }
  *line = out;
  *len = o;
  return 0;
}

static int mend_utf8(struct kw_jsonl *j, const char **line, size_t *len) {
  return mend_utf8_into(&j->mended, line, len);
}

int kw_jsonl_parse(struct kw_jsonl *j, const char *line, size_t len, struct kw_rec *rec,
                   char *err, size_t errlen) {
  json_error_t jerr;
  json_t *v;
  int64_t status = 0;
  int rc;

  json_decref(j->root);
  j->root = NULL;
  j->scratch_used = 0;
  kw_rec_clear(rec);
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (len > KW_JSONL_MAX_LINE)
    return fail(err, errlen, "line longer than %d bytes", KW_JSONL_MAX_LINE);
  if (line == NULL)
    len = 0;
  if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) { /* UTF-8 BOM, first line */
    line += 3;
    len -= 3;
  }
  if (len == 0)
    return fail(err, errlen, "empty line");
  if (mend_utf8(j, &line, &len) != 0)
    return KW_ENOMEM;
  /* JSON_ALLOW_NUL: a client-sent NUL that a logger escaped as \u0000 must not make the
   * whole line unreadable; kw_str carries lengths, so the NUL is data. */
  j->root = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
  if (j->root == NULL)
    return fail(err, errlen, "%s at byte %d", json_reason(&jerr), jerr.position);
  if (!json_is_object(j->root))
    return fail(err, errlen, "not a JSON object");

  v = lookup(j->root, &j->f[KW_JF_TIME]);
  if (v != NULL && (rc = parse_time(j, v, &rec->ts_us, err, errlen)) != 0)
    return rc;
  if ((rc = parse_text(j, KW_JF_ADDR, &rec->addr, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_METHOD, &rec->method, err, errlen)) != 0 ||
      (rc = parse_uri(j, rec, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_PROTO, &rec->proto, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_HOST, &rec->host, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_USER_AGENT, &rec->user_agent, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_REFERER, &rec->referer, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_KEY, &rec->key, err, errlen)) != 0 ||
      (rc = parse_text(j, KW_JF_KEY_ID, &rec->key_id, err, errlen)) != 0)
    return rc;
  if ((rc = parse_int(j, KW_JF_STATUS, 999, &status, err, errlen)) != 0 ||
      (rc = parse_int(j, KW_JF_REQ_BYTES, INT64_MAX, &rec->req_bytes, err, errlen)) != 0 ||
      (rc = parse_int(j, KW_JF_RESP_BYTES, INT64_MAX, &rec->resp_bytes, err, errlen)) != 0)
    return rc;
  rec->status = (int)status;
  v = lookup(j->root, &j->f[KW_JF_LATENCY]);
  if (v != NULL) {
    struct num n;
    rc = get_num(v, &n);
    if (rc == NUM_OK)
      rc = num_to_us(&n, j->lunit, &rec->latency_us);
    if (rc != NUM_OK)
      return fail(err, errlen, "latency: %s", num_reason(rc));
  }
  return parse_headers(j, rec, err, errlen);
}

static int on_parse(void *ctx, const char *line, size_t len, struct kw_rec *rec, char *err,
                    size_t errlen) {
  return kw_jsonl_parse(ctx, line, len, rec, err, errlen);
}

static void on_destroy(void *ctx) {
  kw_jsonl_destroy(ctx);
}

const struct kw_format_ops kw_jsonl_ops = {
  .kind = "json",
  .parse = on_parse,
  .destroy = on_destroy,
};

/* ---- presets ----------------------------------------------------------------------- */

struct preset {
  const char *name;
  struct kw_jsonl_mapping m;
};

static const struct preset presets[] = {
  /* nginx log_format ... escape=json.  Keys are the nginx variable names, as in the
   * keyed_json format of /work/shared/bench/gen_access_log.py (time_iso8601, remote_addr,
   * request_method, request_uri, status, body_bytes_sent, request_time, http_user_agent,
   * http_x_api_key) and the usual variants (time_local, msec, host, http_referer,
   * request_length, bytes_sent, server_protocol, http_authorization).  nginx writes ""
   * for an unset header variable; $request_time is seconds with ms resolution;
   * --json-quote-numbers style quoted numbers are read as numbers. */
  {"nginx-json",
   {.path = {[KW_JF_TIME] = "msec|time_iso8601|time_local",
             [KW_JF_ADDR] = "remote_addr",
             [KW_JF_METHOD] = "request_method",
             [KW_JF_URI] = "request_uri",
             [KW_JF_PROTO] = "server_protocol",
             [KW_JF_HOST] = "host|http_host",
             [KW_JF_USER_AGENT] = "http_user_agent",
             [KW_JF_REFERER] = "http_referer",
             [KW_JF_STATUS] = "status",
             [KW_JF_REQ_BYTES] = "request_length",
             [KW_JF_RESP_BYTES] = "body_bytes_sent|bytes_sent",
             [KW_JF_LATENCY] = "request_time"},
    .time_format = KW_JT_AUTO,
    .latency_unit = KW_JU_S,
    .extra_hdrs = {{"http_x_api_key", "x-api-key"}, {"http_authorization", "authorization"}},
    .n_extra_hdrs = 2}},
  /* Caddy 2 JSON access log (logger http.log.access, msg "handled request").  Fields from
   * caddyserver/caddy modules/caddyhttp/marshalers.go (LoggableHTTPRequest: remote_ip,
   * remote_port, client_ip, proto, method, host, uri, headers as arrays of strings with
   * Authorization etc. "REDACTED") and the log directive docs (ts: float epoch seconds
   * by default, bytes_read, duration: float seconds, size, status).  client_ip (2.7+,
   * trusted proxies applied) is preferred over remote_ip.  ts may be reconfigured
   * (time_format): AUTO reads milli/nano epochs and ISO strings too. */
  {"caddy",
   {.path = {[KW_JF_TIME] = "ts",
             [KW_JF_ADDR] = "request.client_ip|request.remote_ip",
             [KW_JF_METHOD] = "request.method",
             [KW_JF_URI] = "request.uri",
             [KW_JF_PROTO] = "request.proto",
             [KW_JF_HOST] = "request.host",
             [KW_JF_USER_AGENT] = "request.headers.User-Agent",
             [KW_JF_REFERER] = "request.headers.Referer",
             [KW_JF_STATUS] = "status",
             [KW_JF_REQ_BYTES] = "bytes_read",
             [KW_JF_RESP_BYTES] = "size",
             [KW_JF_LATENCY] = "duration",
             [KW_JF_HEADERS] = "request.headers"},
    .time_format = KW_JT_AUTO,
    .latency_unit = KW_JU_S}},
  /* Traefik access log, format json.  Keys from traefik/traefik
   * pkg/middlewares/accesslog/logdata.go; values from logger.go: StartUTC is a
   * time.Time (RFC 3339 with ns), Duration a time.Duration (integer ns), ClientHost is
   * the X-Forwarded-For header when present, RequestPath includes the query.  Request
   * headers appear only when fields.headers keeps them, as "request_<Canonical-Name>"
   * with multiple values joined by ',' (redacted ones are "REDACTED"): hdr_prefix. */
  {"traefik",
   {.path = {[KW_JF_TIME] = "StartUTC",
             [KW_JF_ADDR] = "ClientHost|ClientAddr",
             [KW_JF_METHOD] = "RequestMethod",
             [KW_JF_URI] = "RequestPath",
             [KW_JF_PROTO] = "RequestProtocol",
             [KW_JF_HOST] = "RequestHost|RequestAddr",
             [KW_JF_USER_AGENT] = "request_User-Agent",
             [KW_JF_REFERER] = "request_Referer",
             [KW_JF_STATUS] = "DownstreamStatus",
             [KW_JF_REQ_BYTES] = "RequestContentSize",
             [KW_JF_RESP_BYTES] = "DownstreamContentSize",
             [KW_JF_LATENCY] = "Duration"},
    .time_format = KW_JT_AUTO,
    .latency_unit = KW_JU_NS,
    .hdr_prefix = "request_"}},
  /* Envoy json_format access log with the keys of Istio's JSON access log (start_time,
   * method, path = %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%, protocol, response_code,
   * bytes_received, bytes_sent, duration (ms), x_forwarded_for, user_agent, authority,
   * downstream_remote_address) and, as alternatives, the keys of Envoy Gateway's default
   * JSON format (x-envoy-origin-path, user-agent, :authority, x-forwarded-for).  The
   * operators are Envoy's default format's (envoyproxy.io access_log docs).
   * START_TIME is RFC 3339 with ms; json_format writes numbers as numbers, a text format
   * shaped like JSON writes them as strings and unset values as "-"; both are read.
   * downstream_remote_address (ip:port; Envoy already applies trusted XFF hops) is
   * preferred over the raw X-Forwarded-For.  The default format logs no credential: the
   * extra headers are the keys a user adding %REQ(X-API-KEY)% or %REQ(AUTHORIZATION)%
   * would most likely choose. */
  {"envoy",
   {.path = {[KW_JF_TIME] = "start_time",
             [KW_JF_ADDR] = "downstream_remote_address|x_forwarded_for|x-forwarded-for",
             [KW_JF_METHOD] = "method",
             [KW_JF_URI] = "path|x-envoy-origin-path",
             [KW_JF_PROTO] = "protocol",
             [KW_JF_HOST] = "authority|:authority",
             [KW_JF_USER_AGENT] = "user_agent|user-agent",
             [KW_JF_STATUS] = "response_code",
             [KW_JF_REQ_BYTES] = "bytes_received",
             [KW_JF_RESP_BYTES] = "bytes_sent",
             [KW_JF_LATENCY] = "duration"},
    .time_format = KW_JT_AUTO,
    .latency_unit = KW_JU_MS,
    .extra_hdrs = {{"x_api_key|x-api-key", "x-api-key"}, {"authorization", "authorization"}},
    .n_extra_hdrs = 2}},
  /* Kong file-log / http-log / tcp-log: the table kong.log.serialize() builds
   * (Kong/kong kong/pdk/log.lua; KEYSTORES.md): request.{method, uri (with query),
   * headers (lower-case names; a repeated header is an array), size}, response.{status,
   * size}, latencies.request (ms), client_ip, started_at (epoch ms), and
   * authenticated_entity.id = the credential id.  Only authorization and
   * proxy-authorization are "REDACTED"; an apikey header stays in clear and is passed on
   * as a header for keyid to fingerprint.  Kong does not log the HTTP version. */
  {"kong",
   {.path = {[KW_JF_TIME] = "started_at",
             [KW_JF_ADDR] = "client_ip",
             [KW_JF_METHOD] = "request.method",
             [KW_JF_URI] = "request.uri",
             [KW_JF_HOST] = "request.headers.host",
             [KW_JF_USER_AGENT] = "request.headers.user-agent",
             [KW_JF_REFERER] = "request.headers.referer",
             [KW_JF_STATUS] = "response.status",
             [KW_JF_REQ_BYTES] = "request.size",
             [KW_JF_RESP_BYTES] = "response.size",
             [KW_JF_LATENCY] = "latencies.request",
             [KW_JF_KEY_ID] = "authenticated_entity.id",
             [KW_JF_HEADERS] = "request.headers"},
    .time_format = KW_JT_EPOCH_MS,
    .latency_unit = KW_JU_MS}},
};

#define NPRESETS (sizeof(presets) / sizeof(presets[0]))

static const char *const preset_names[NPRESETS + 1] = {"nginx-json", "caddy", "traefik",
                                                       "envoy", "kong", NULL};

_Static_assert(NPRESETS == 5, "preset_names must list every preset");

int kw_jsonl_preset(const char *name, struct kw_jsonl_mapping *m) {
  for (size_t i = 0; i < NPRESETS; i++) {
    if (strcmp(presets[i].name, name) == 0) {
      *m = presets[i].m;
      return 0;
    }
  }
  return KW_ENOTFOUND;
}

const char *const *kw_jsonl_preset_names(void) {
  return preset_names;
}

/* ---- guessing ---------------------------------------------------------------------- */

/* Whether path (a mapping string, or NULL) has a value in root. */
static bool present(json_t *root, const char *path) {
  char buf[KW_JSONL_MAX_PATH + 1];
  struct fpath fp;

  if (path == NULL || compile_path(path, buf, &fp) != NULL)
    return false;
  return lookup(root, &fp) != NULL;
}

/* -1 when an essential field has no value, else the number of mapped fields that do. */
static int fit_score(json_t *root, const struct kw_jsonl_mapping *m) {
  const char *const *p = m->path;
  int score = 0;

  if (!present(root, p[KW_JF_TIME]) || !present(root, p[KW_JF_METHOD]) ||
      !present(root, p[KW_JF_STATUS]) ||
      !(present(root, p[KW_JF_URI]) || present(root, p[KW_JF_PATH])))
    return -1;
  for (size_t f = 0; f < KW_JF_COUNT; f++)
    score += present(root, p[f]);
  for (size_t i = 0; i < m->n_extra_hdrs; i++)
    score += present(root, m->extra_hdrs[i].path);
  return score;
}

static bool parses(const struct kw_jsonl_mapping *m, const char *line, size_t len) {
  struct kw_jsonl *j;
  struct kw_rec rec;
  bool ok;

  if (kw_jsonl_create(m, &j, NULL, 0) != 0)
    return false;
  ok = kw_jsonl_parse(j, line, len, &rec, NULL, 0) == 0;
  kw_jsonl_destroy(j);
  return ok;
}

const char *kw_jsonl_guess_preset(const char *line, size_t len) {
  int score[NPRESETS];
  const char *found = NULL;
  char *mended = NULL;
  json_t *root;

  if (line == NULL || len == 0 || len > KW_JSONL_MAX_LINE)
    return NULL;
  /* As in parse: invalid UTF-8 from a client must not hide a whole file. */
  if (mend_utf8_into(&mended, &line, &len) != 0)
    return NULL;
  root = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
  if (root == NULL || !json_is_object(root)) {
    json_decref(root);
    free(mended);
    return NULL;
  }
  for (size_t i = 0; i < NPRESETS; i++)
    score[i] = fit_score(root, &presets[i].m);
  json_decref(root);
  for (;;) { /* best score first; ties go to the earlier preset */
    size_t best = NPRESETS;
    for (size_t i = 0; i < NPRESETS; i++)
      if (score[i] >= 0 && (best == NPRESETS || score[i] > score[best]))
        best = i;
    if (best == NPRESETS)
      break;
    if (parses(&presets[best].m, line, len)) {
      found = presets[best].name;
      break;
    }
    score[best] = -1;
  }
  free(mended);
  return found;
}
