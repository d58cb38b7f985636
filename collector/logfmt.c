/* logfmt.c — nginx log_format compiler and access-log line parser (see logfmt.h).
 *
 *   compile:  user text ──extract()──► the concatenated format nginx would see, plus a
 *             map from each of its bytes back to the user's column
 *             ──compile_ops()──► lead literal + ops[]: {variable, literal that follows}
 *
 *   parse:    match the lead literal, then for each op find where its value ends:
 *               END_SEARCH  first position >= start+skip where the whole literal matches
 *                           and its first byte is not backslash-escaped (escape=default
 *                           and json never write a raw '"' or '\' inside a value)
 *               END_SUFFIX  last op followed by a literal: the literal ends the line
 *               END_LINE    last op with nothing after it: the value runs to end of line
 *             then map the value onto the kw_rec.
 *
 * Invariants:
 *   - every op but the last has lit_len > 0 (compile rejects adjacent variables, except
 *     $uri$is_args$args, which becomes one op);
 *   - parse reads only line[0..len), never needs a NUL and allocates only when a value
 *     carries a backslash escape or $uri and $args must be joined.  The scratch buffer is
 *     then reserved once for the whole line (2*len+16 bytes: every decoded value is no
 *     longer than its raw bytes, fields are disjoint, and one joined URI is at most len+1),
 *     so pointers handed out earlier in the same line stay valid;
 *   - several variables may fill one kw_rec field; the lowest rank wins whatever their
 *     order in the line ($request_uri < $request < $uri$is_args$args < $uri + $args).
 *
 * Thread: any; one kw_logfmt per thread (parse writes the scratch buffer).
 * Ownership: a kw_logfmt owns fmt, ops, names and scratch; records borrow (logfmt.h).
 */
#include "logfmt.h"

#include "../sidecar/err.h"
#include "../sidecar/timeutil.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FORMAT (64 * 1024) /* longest format text accepted (offsets are uint32_t) */
#define NOT_FOUND SIZE_MAX

enum var {
  V_SKIP,       /* known or unknown variable keywatch does not use */
  V_IS_ARGS,    /* $is_args: skipped, or fused into $uri$is_args$args */
  V_ADDR,       /* $remote_addr, $realip_remote_addr */
  V_TS_CLF,     /* $time_local */
  V_TS_ISO,     /* $time_iso8601 */
  V_TS_EPOCH,   /* $msec */
  V_REQUEST,    /* $request: "METHOD URI PROTO" */
  V_METHOD,     /* $request_method */
  V_REQUEST_URI, /* $request_uri */
  V_URI,        /* $uri, $document_uri: joined with $args at the end */
  V_ARGS,       /* $args, $query_string */
  V_URI_ARGS,   /* fused $uri$is_args$args */
  V_PROTO,      /* $server_protocol */
  V_STATUS,     /* $status */
  V_RESP_BYTES, /* $body_bytes_sent, $bytes_sent */
  V_REQ_BYTES,  /* $request_length */
  V_LAT_SECS,   /* $request_time */
  V_LAT_LIST,   /* $upstream_response_time: "0.012, 0.034 : -" */
  V_HOST,       /* $host, $http_host, $server_name */
  V_UA,         /* $http_user_agent */
  V_REFERER,    /* $http_referer */
  V_HDR,        /* other $http_<name> and $arg_<name> */
};

/* kw_rec fields that more than one variable can fill. */
enum slot { S_TS, S_ADDR, S_METHOD, S_URI, S_PROTO, S_HOST, S_RESP, S_LAT, S_COUNT };

enum end_mode { END_SEARCH, END_SUFFIX, END_LINE };

struct op {
  uint8_t var;       /* enum var */
  uint8_t rank;      /* among variables filling one slot, the lowest rank wins */
  uint8_t end;       /* enum end_mode */
  uint8_t skip;      /* the value is at least this long: search the literal after it */
  uint32_t lit_off;  /* literal that follows the value, in lf->fmt */
  uint32_t lit_len;
  uint32_t name_off; /* variable name in lf->fmt, for messages */
  uint32_t name_len;
  struct kw_str hdr; /* V_HDR: header name, points into lf->names */
};

struct kw_logfmt {
  enum kw_logfmt_escape esc;
  char *fmt;          /* the concatenated format, not NUL-terminated */
  size_t fmtlen;
  size_t lead_len;    /* literal before the first variable: fmt[0..lead_len) */
  struct op *ops;
  size_t nops;
  char *names;        /* header names ("x-api-key", "arg:api_key") */
  char *scratch;      /* decoded values and joined URIs of the current line */
  size_t scratch_cap;
};

/* ---------------------------------------------------------------- helpers */

static inline bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline char lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static inline bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_';
}

static inline int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static inline bool absent(const char *p, size_t n) {
  return n == 0 || (n == 1 && p[0] == '-');
}

/* Renders at most 24 bytes of p for a message: printable ASCII as is, the rest \xHH. */
static const char *show(char *buf, size_t size, const char *p, size_t n) {
  size_t o = 0, i;
  for (i = 0; i < n && i < 24 && o + 5 < size; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      buf[o++] = (char)c;
    } else {
      int w = snprintf(buf + o, size - o, "\\x%02X", c);
      if (w < 0 || (size_t)w >= size - o)
        break;
      o += (size_t)w;
    }
  }
  if (i < n && o + 4 < size) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
  return buf;
}

/* ---------------------------------------------------------------- compile */

struct cctx {
  const char *src; /* the user's text */
  size_t srclen;
  char *err;
  size_t errlen;
};

/* Writes "column C: ..." (or "line L, column C: ..." for multi-line text) for the byte at
 * offset off of the user's text. */
__attribute__((format(printf, 3, 4)))
static void cerr(const struct cctx *cc, size_t off, const char *fmt, ...) {
  size_t line = 1, lstart = 0;
  va_list ap;
  int w;

  if (cc->err == NULL || cc->errlen == 0)
    return;
  for (size_t k = 0; k < off && k < cc->srclen; k++) {
    if (cc->src[k] == '\n') {
      line++;
      lstart = k + 1;
    }
  }
  if (line > 1)
    w = snprintf(cc->err, cc->errlen, "line %zu, column %zu: ", line, off - lstart + 1);
  else
    w = snprintf(cc->err, cc->errlen, "column %zu: ", off + 1);
  if (w < 0 || (size_t)w >= cc->errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(cc->err + w, cc->errlen - (size_t)w, fmt, ap);
  va_end(ap);
}

static size_t skip_blank(const char *s, size_t n, size_t i) {
  for (;;) {
    while (i < n && is_ws(s[i]))
      i++;
    if (i < n && s[i] == '#') { /* nginx comment, to end of line */
      while (i < n && s[i] != '\n')
        i++;
      continue;
    }
    return i;
  }
}

static bool word_at(const char *s, size_t n, size_t i, const char *w) {
  size_t k = strlen(w);
  return n - i >= k && memcmp(s + i, w, k) == 0 && (i + k == n || is_ws(s[i + k]));
}

/* Turns the user's text into the format nginx would compile: buf[0..*outlen), with
 * cols[j] = offset in the user's text of buf[j] and starts[j] = 1 where a new quoted
 * piece begins (a variable name never spans two pieces). */
static int extract(const struct cctx *cc, enum kw_logfmt_escape *esc, char *buf,
                   size_t *cols, uint8_t *starts, size_t *outlen) {
  const char *s = cc->src;
  size_t n = cc->srclen, i, o = 0, pieces = 0;
  bool directive = false;

  i = skip_blank(s, n, 0);
  if (word_at(s, n, i, "log_format")) {
    size_t name;
    directive = true;
    i = skip_blank(s, n, i + 10);
    name = i;
    while (i < n && !is_ws(s[i]) && s[i] != ';' && s[i] != '\'' && s[i] != '"')
      i++;
    if (i == name) {
      cerr(cc, i, "log_format needs a name before the format");
      return KW_EINVAL;
    }
    i = skip_blank(s, n, i);
  }
  if (n - i >= 7 && memcmp(s + i, "escape=", 7) == 0) {
    size_t v = i + 7, e = v;
    directive = true;
    while (e < n && !is_ws(s[e]) && s[e] != ';' && s[e] != '\'' && s[e] != '"')
      e++;
    if (e - v == 7 && memcmp(s + v, "default", 7) == 0) {
      *esc = KW_LOGFMT_ESC_DEFAULT;
    } else if (e - v == 4 && memcmp(s + v, "json", 4) == 0) {
      *esc = KW_LOGFMT_ESC_JSON;
    } else if (e - v == 4 && memcmp(s + v, "none", 4) == 0) {
      *esc = KW_LOGFMT_ESC_NONE;
    } else {
      char tmp[64];
      cerr(cc, v, "unknown escape '%s' (expected default, json or none)",
           show(tmp, sizeof(tmp), s + v, e - v));
      return KW_EINVAL;
    }
    i = skip_blank(s, n, e);
  }
  if (!directive && i < n) {
    size_t end = n;
    while (end > i && is_ws(s[end - 1]))
      end--;
    directive = s[i] == '\'' || (s[i] == '"' && s[end - 1] == ';');
  }

  if (!directive) { /* a bare format string, taken literally */
    size_t end = n;
    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'))
      end--;
    for (size_t k = 0; k < end; k++) {
      buf[o] = s[k];
      cols[o++] = k;
    }
    *outlen = o;
    return 0;
  }

  for (;;) { /* nginx arguments: quoted pieces or words, concatenated */
    size_t open;
    char q = 0;

    i = skip_blank(s, n, i);
    if (i >= n)
      break;
    if (s[i] == ';') {
      size_t j = skip_blank(s, n, i + 1);
      if (j < n) {
        cerr(cc, j, "unexpected text after ';'");
        return KW_EINVAL;
      }
      break;
    }
    open = i;
    if (s[i] == '\'' || s[i] == '"')
      q = s[i++];
    starts[o] = pieces > 0;
    for (;;) {
      char c;
      if (i >= n) {
        if (q != 0) {
          cerr(cc, open, "unterminated %s quote", q == '\'' ? "single" : "double");
          return KW_EINVAL;
        }
        break;
      }
      c = s[i];
      if (q != 0 ? c == q : (is_ws(c) || c == ';'))
        break;
      if (c == '\\' && i + 1 < n) { /* nginx's escapes inside configuration tokens */
        char d = s[i + 1], r = 0;
        if (d == '"' || d == '\'' || d == '\\')
          r = d;
        else if (d == 't')
          r = '\t';
        else if (d == 'r')
          r = '\r';
        else if (d == 'n')
          r = '\n';
        if (r != 0) {
          buf[o] = r;
          cols[o++] = i;
          i += 2;
          continue;
        }
      }
      buf[o] = c;
      cols[o++] = i++;
    }
    if (q != 0) {
      i++; /* the closing quote */
      if (i < n && !is_ws(s[i]) && s[i] != ';') {
        cerr(cc, i, "expected a space or ';' after the closing quote");
        return KW_EINVAL;
      }
    }
    pieces++;
  }
  if (pieces == 0) {
    cerr(cc, i, "no format string");
    return KW_EINVAL;
  }
  *outlen = o;
  return 0;
}

static bool name_is(const char *p, size_t n, const char *lit) {
  size_t k = strlen(lit);
  if (k != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (lower(p[i]) != lit[i])
      return false;
  return true;
}

static bool name_has_prefix(const char *p, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  if (n < k)
    return false;
  for (size_t i = 0; i < k; i++)
    if (lower(p[i]) != prefix[i])
      return false;
  return true;
}

struct vardef {
  const char *name;
  uint8_t var, rank, skip;
};

/* Variables keywatch reads; every other one is skipped.  Ranks per kw_rec field:
 * method: $request_method 0, $request 1; uri: $request_uri 0, $request 1, fused 2;
 * proto: $request 1, $server_protocol 2; ts: $msec 0 (ms precision), iso 1, local 2. */
static const struct vardef vardefs[] = {
    {"remote_addr", V_ADDR, 0, 0},
    {"realip_remote_addr", V_ADDR, 1, 0},
    {"msec", V_TS_EPOCH, 0, 0},
    {"time_iso8601", V_TS_ISO, 1, 25}, /* "2026-11-22T05:12:06+00:00" */
    {"time_local", V_TS_CLF, 2, 26},   /* "22/Nov/2026:05:12:06 +0000" has a space */
    {"request", V_REQUEST, 1, 0},
    {"request_method", V_METHOD, 0, 0},
    {"request_uri", V_REQUEST_URI, 0, 0},
    {"uri", V_URI, 3, 0},
    {"document_uri", V_URI, 3, 0},
    {"args", V_ARGS, 3, 0},
    {"query_string", V_ARGS, 3, 0},
    {"is_args", V_IS_ARGS, 0, 0},
    {"server_protocol", V_PROTO, 2, 0},
    {"status", V_STATUS, 0, 0},
    {"body_bytes_sent", V_RESP_BYTES, 0, 0},
    {"bytes_sent", V_RESP_BYTES, 1, 0},
    {"request_length", V_REQ_BYTES, 0, 0},
    {"request_time", V_LAT_SECS, 0, 0},
    {"upstream_response_time", V_LAT_LIST, 1, 0},
    {"host", V_HOST, 0, 0},
    {"http_host", V_HOST, 1, 0},
    {"server_name", V_HOST, 2, 0},
    {"http_user_agent", V_UA, 0, 0},
    {"http_referer", V_REFERER, 0, 0},
};

/* Fills op->var/rank/skip/hdr for the variable name p[0..n); header names are written to
 * names + *no. */
static void classify(struct op *op, const char *p, size_t n, char *names, size_t *no) {
  op->var = V_SKIP;
  for (size_t k = 0; k < sizeof(vardefs) / sizeof(vardefs[0]); k++) {
    if (name_is(p, n, vardefs[k].name)) {
      op->var = vardefs[k].var;
      op->rank = vardefs[k].rank;
      op->skip = vardefs[k].skip;
      return;
    }
  }
  if (name_has_prefix(p, n, "http_") && n > 5) { /* $http_x_api_key -> "x-api-key" */
    char *d = names + *no;
    for (size_t i = 5; i < n; i++)
      d[i - 5] = p[i] == '_' ? '-' : lower(p[i]);
    op->var = V_HDR;
    op->hdr = kw_str_make(d, n - 5);
    *no += n - 5;
  } else if (name_has_prefix(p, n, "arg_") && n > 4) { /* $arg_api_key -> "arg:api_key" */
    char *d = names + *no;
    memcpy(d, "arg:", 4);
    for (size_t i = 4; i < n; i++)
      d[i] = lower(p[i]);
    op->var = V_HDR;
    op->hdr = kw_str_make(d, n);
    *no += n;
  }
  /* $cookie_*, $remote_user, $connection, $pipe, $gzip_ratio, ...: skipped */
}

/* Compiles lf->fmt[0..fmtlen) into lf->ops.  cols/starts come from extract(). */
static int compile_ops(struct kw_logfmt *lf, const struct cctx *cc, const size_t *cols,
                       const uint8_t *starts) {
  const char *f = lf->fmt;
  size_t len = lf->fmtlen, i = 0, no = 0;
  struct op *prev = NULL;
  bool prev_isargs = false; /* prev is "$uri$is_args" waiting for "$args" */

  while (i < len && f[i] != '$')
    i++;
  lf->lead_len = i;
  while (i < len) {
    struct op cur = {0};
    size_t dollar = i, name, nlen, lit;
    bool brace = false;

    i++;
    if (i < len && !starts[i] && f[i] == '{') {
      brace = true;
      i++;
    }
    name = i;
    while (i < len && !starts[i] && is_name_char(f[i]))
      i++;
    nlen = i - name;
    if (brace) {
      if (i >= len || starts[i] || f[i] != '}') {
        char tmp[64];
        cerr(cc, cols[dollar], "missing '}' after '${%s'", show(tmp, sizeof(tmp), f + name, nlen));
        return KW_EINVAL;
      }
      i++;
    }
    if (nlen == 0) {
      cerr(cc, cols[dollar], "'$' without a variable name");
      return KW_EINVAL;
    }
    classify(&cur, f + name, nlen, lf->names, &no);
    cur.name_off = (uint32_t)name;
    cur.name_len = (uint32_t)nlen;
    lit = i;
    while (i < len && f[i] != '$')
      i++;
    cur.lit_off = (uint32_t)lit;
    cur.lit_len = (uint32_t)(i - lit);

    if (prev != NULL && prev->lit_len == 0) {
      if (cur.var == V_IS_ARGS && prev->var == V_URI) { /* $uri$is_args... */
        prev->var = V_URI_ARGS;
        prev->rank = 2;
        prev->lit_off = cur.lit_off;
        prev->lit_len = cur.lit_len;
        prev_isargs = true;
        continue;
      }
      if (cur.var == V_ARGS && prev_isargs) { /* ...$args */
        prev->lit_off = cur.lit_off;
        prev->lit_len = cur.lit_len;
        prev_isargs = false;
        continue;
      }
      cerr(cc, cols[dollar],
           "$%.*s follows $%.*s with no text between them, so the line cannot be split",
           (int)nlen, f + name, (int)prev->name_len, f + prev->name_off);
      return KW_EINVAL;
    }
    prev_isargs = false;
    lf->ops[lf->nops] = cur;
    prev = &lf->ops[lf->nops++];
  }
  for (size_t k = 0; k < lf->nops; k++) {
    struct op *op = &lf->ops[k];
    if (k + 1 < lf->nops)
      op->end = END_SEARCH;
    else
      op->end = op->lit_len > 0 ? END_SUFFIX : END_LINE;
    assert(op->end != END_SEARCH || op->lit_len > 0);
  }
  return 0;
}

int kw_logfmt_compile(const char *fmt, enum kw_logfmt_escape esc, struct kw_logfmt **out,
                      char *err, size_t errlen) {
  struct cctx cc = {fmt, 0, err, errlen};
  struct kw_logfmt *lf = NULL;
  size_t *cols = NULL, ndollar = 0;
  uint8_t *starts = NULL;
  int rc;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (out != NULL)
    *out = NULL;
  if (out == NULL || fmt == NULL || (unsigned)esc > KW_LOGFMT_ESC_NONE) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "invalid arguments");
    return KW_EINVAL;
  }
  cc.srclen = strlen(fmt);
  if (cc.srclen > MAX_FORMAT) {
    cerr(&cc, MAX_FORMAT, "format longer than %d bytes", MAX_FORMAT);
    return KW_EINVAL;
  }

  rc = KW_ENOMEM;
  lf = calloc(1, sizeof(*lf));
  if (lf == NULL)
    goto out;
  lf->fmt = malloc(cc.srclen + 1);
  cols = malloc((cc.srclen + 1) * sizeof(*cols));
  starts = calloc(cc.srclen + 1, 1);
  if (lf->fmt == NULL || cols == NULL || starts == NULL)
    goto out;

  lf->esc = esc;
  rc = extract(&cc, &lf->esc, lf->fmt, cols, starts, &lf->fmtlen);
  if (rc != 0)
    goto out;
  if (lf->fmtlen == 0) {
    cerr(&cc, 0, "empty format");
    rc = KW_EINVAL;
    goto out;
  }
  cols[lf->fmtlen] = cc.srclen;

  for (size_t k = 0; k < lf->fmtlen; k++)
    ndollar += lf->fmt[k] == '$';
  rc = KW_ENOMEM;
  lf->ops = calloc(ndollar > 0 ? ndollar : 1, sizeof(*lf->ops));
  lf->names = malloc(lf->fmtlen + 1); /* each header name is no longer than its variable */
  if (lf->ops == NULL || lf->names == NULL)
    goto out;
  rc = compile_ops(lf, &cc, cols, starts);
  if (rc != 0)
    goto out;

  *out = lf;
  lf = NULL;
  rc = 0;
out:
  if (rc == KW_ENOMEM && err != NULL && errlen > 0)
    snprintf(err, errlen, "out of memory");
  free(cols);
  free(starts);
  kw_logfmt_destroy(lf);
  return rc;
}

void kw_logfmt_destroy(struct kw_logfmt *lf) {
  if (lf == NULL)
    return;
  free(lf->fmt);
  free(lf->ops);
  free(lf->names);
  free(lf->scratch);
  free(lf);
}

/* ---------------------------------------------------------------- parse */

struct pstate {
  struct kw_logfmt *lf;
  const char *line;
  size_t len;
  size_t used;          /* scratch bytes handed out for this line */
  bool reserved;        /* scratch is reserved for this line */
  uint8_t best[S_COUNT]; /* rank of the variable that filled each slot; 0xff: none */
  struct kw_str path;   /* $uri */
  struct kw_str args;   /* $args */
  char *err;
  size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int perr(struct pstate *ps, const char *fmt, ...) {
  va_list ap;
  if (ps->err != NULL && ps->errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(ps->err, ps->errlen, fmt, ap);
    va_end(ap);
  }
  return KW_EPARSE;
}

/* Hands out n bytes of scratch space valid until the next parse; NULL on ENOMEM. */
static char *scratch(struct pstate *ps, size_t n) {
  struct kw_logfmt *lf = ps->lf;
  char *p;

  if (!ps->reserved) {
    size_t need = 2 * ps->len + 16;
    if (lf->scratch_cap < need) {
      size_t cap = lf->scratch_cap > 0 ? lf->scratch_cap : 4096;
      while (cap < need)
        cap *= 2;
      p = malloc(cap); /* old contents are dead: no realloc copy */
      if (p == NULL)
        return NULL;
      free(lf->scratch);
      lf->scratch = p;
      lf->scratch_cap = cap;
    }
    ps->reserved = true;
    ps->used = 0;
  }
  assert(n <= lf->scratch_cap - ps->used);
  p = lf->scratch + ps->used;
  ps->used += n;
  return p;
}

/* escape=default: \xHH -> byte; anything else (including a short \x) is kept. */
static size_t unescape_default(char *d, const char *s, size_t n) {
  size_t i = 0, o = 0;
  while (i < n) {
    const char *bs = memchr(s + i, '\\', n - i);
    size_t run = bs != NULL ? (size_t)(bs - (s + i)) : n - i;
    int h, l;
    memcpy(d + o, s + i, run);
    o += run;
    i += run;
    if (i >= n)
      break;
    if (n - i >= 4 && s[i + 1] == 'x' && (h = hexval(s[i + 2])) >= 0 &&
        (l = hexval(s[i + 3])) >= 0) {
      d[o++] = (char)(h << 4 | l);
      i += 4;
    } else {
      d[o++] = s[i++];
    }
  }
  return o;
}

static bool hex4(const char *s, unsigned *v) {
  unsigned r = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(s[k]);
    if (h < 0)
      return false;
    r = r << 4 | (unsigned)h;
  }
  *v = r;
  return true;
}

static size_t put_utf8(char *d, unsigned cp) {
  if (cp < 0x80) {
    d[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    d[0] = (char)(0xC0 | cp >> 6);
    d[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    d[0] = (char)(0xE0 | cp >> 12);
    d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    d[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  d[0] = (char)(0xF0 | cp >> 18);
  d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  d[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* escape=json: \" \\ \/ \n \r \t \b \f \uXXXX (surrogate pairs joined); a malformed
 * escape is kept literally.  Output is never longer than input. */
static size_t unescape_json(char *d, const char *s, size_t n) {
  size_t i = 0, o = 0;
  while (i < n) {
    const char *bs = memchr(s + i, '\\', n - i);
    size_t run = bs != NULL ? (size_t)(bs - (s + i)) : n - i;
    unsigned cp, lo;
    char r = 0;
    memcpy(d + o, s + i, run);
    o += run;
    i += run;
    if (i >= n)
      break;
    if (i + 1 < n) {
      switch (s[i + 1]) {
      case '"': r = '"'; break;
      case '\\': r = '\\'; break;
      case '/': r = '/'; break;
      case 'n': r = '\n'; break;
      case 'r': r = '\r'; break;
      case 't': r = '\t'; break;
      case 'b': r = '\b'; break;
      case 'f': r = '\f'; break;
      case 'u':
        if (n - i < 6 || !hex4(s + i + 2, &cp))
          break;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (n - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u' && hex4(s + i + 8, &lo) &&
              lo >= 0xDC00 && lo <= 0xDFFF) {
            o += put_utf8(d + o, 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
            i += 12;
            continue;
          }
          break; /* lone high surrogate: keep literally */
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          break;
        o += put_utf8(d + o, cp);
        i += 6;
        continue;
      default: break;
      }
    }
    if (r != 0) {
      d[o++] = r;
      i += 2;
    } else {
      d[o++] = s[i++];
    }
  }
  return o;
}

/* A text value: "-" or "" is absent; escapes are decoded into scratch only when the value
 * holds a backslash.  Returns 0 or KW_ENOMEM. */
static int text(struct pstate *ps, const char *p, size_t n, struct kw_str *out) {
  enum kw_logfmt_escape esc = ps->lf->esc;
  char *d;
  size_t m;

  if (absent(p, n)) {
    *out = KW_STR_NULL;
    return 0;
  }
  if (esc == KW_LOGFMT_ESC_NONE || memchr(p, '\\', n) == NULL) {
    *out = kw_str_make(p, n);
    return 0;
  }
  d = scratch(ps, n);
  if (d == NULL)
    return KW_ENOMEM;
  m = esc == KW_LOGFMT_ESC_JSON ? unescape_json(d, p, n) : unescape_default(d, p, n);
  ps->used -= n - m;
  *out = kw_str_make(d, m);
  return 0;
}

/* Unsigned decimal, digits only, at most 18 of them (no overflow). */
static bool parse_uint(const char *p, size_t n, int64_t *out) {
  int64_t v = 0;
  if (n == 0 || n > 18)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned c = (unsigned)(unsigned char)p[i] - '0';
    if (c > 9)
      return false;
    v = v * 10 + (int64_t)c;
  }
  *out = v;
  return true;
}

/* Seconds with an optional fraction ("0.123", "12") -> µs; at most 12 integer digits. */
static bool parse_secs(const char *p, size_t n, int64_t *us) {
  int64_t secs = 0, frac = 0, scale = 100000;
  size_t i = 0;
  while (i < n && (unsigned)(unsigned char)p[i] - '0' <= 9) {
    if (i >= 12)
      return false;
    secs = secs * 10 + (p[i++] - '0');
  }
  if (i == 0)
    return false;
  if (i < n && p[i] == '.') {
    size_t fs = ++i;
    while (i < n && (unsigned)(unsigned char)p[i] - '0' <= 9) {
      frac += (p[i++] - '0') * scale;
      scale /= 10;
    }
    if (i == fs)
      return false;
  }
  if (i != n)
    return false;
  *us = secs * 1000000 + frac;
  return true;
}

/* $upstream_response_time: items joined by ", " (next server) and " : " (internal
 * redirect), each seconds or "-".  Sums the items; *any is false when all were "-". */
static bool parse_secs_list(const char *p, size_t n, int64_t *us, bool *any) {
  int64_t sum = 0;
  size_t i = 0;
  *any = false;
  for (;;) {
    size_t s = i, e;
    int64_t v;
    while (i < n && p[i] != ',' && p[i] != ':')
      i++;
    e = i;
    while (s < e && p[s] == ' ')
      s++;
    while (e > s && p[e - 1] == ' ')
      e--;
    if (e == s)
      return false;
    if (!(e - s == 1 && p[s] == '-')) {
      if (!parse_secs(p + s, e - s, &v) || sum > INT64_MAX / 2)
        return false;
      sum += v;
      *any = true;
    }
    if (i >= n)
      break;
    i++; /* the separator */
  }
  *us = sum;
  return true;
}

static inline bool take(struct pstate *ps, enum slot slot, uint8_t rank) {
  if (rank >= ps->best[slot])
    return false;
  ps->best[slot] = rank;
  return true;
}

static inline bool is_method_char(char c) {
  return (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
}

/* "GET /p?q HTTP/1.1" -> method, uri, proto; "GET /p" (HTTP/0.9) has no proto.  Anything
 * that does not start with an nginx method token and a space (a TLS hello sent to a
 * plain-text port, "\x16\x03\x01...") fails the line. */
static int split_request(struct pstate *ps, const struct op *op, struct kw_str r, size_t col,
                         struct kw_rec *rec) {
  const char *p = r.p;
  size_t n = r.n, m = 0, u, end, k;
  struct kw_str proto = KW_STR_NULL;

  while (m < n && m <= 32 && is_method_char(p[m]))
    m++;
  if (m == 0 || m > 32 || m >= n || p[m] != ' ')
    return perr(ps, "column %zu: $request is not an HTTP request line", col);
  u = m + 1;
  while (u < n && p[u] == ' ')
    u++;
  end = n;
  while (end > u && p[end - 1] == ' ')
    end--;
  k = end;
  while (k > u && p[k - 1] != ' ')
    k--;
  if (k > u && end - k >= 5 && memcmp(p + k, "HTTP/", 5) == 0) {
    proto = kw_str_make(p + k, end - k);
    end = k;
    while (end > u && p[end - 1] == ' ')
      end--;
  }
  if (end == u)
    return perr(ps, "column %zu: $request has no URI", col);
  if (take(ps, S_METHOD, op->rank))
    rec->method = kw_str_make(p, m);
  if (take(ps, S_URI, op->rank))
    rec->uri = kw_str_make(p + u, end - u);
  if (proto.p != NULL && take(ps, S_PROTO, op->rank))
    rec->proto = proto;
  return 0;
}

/* Maps one value line[col-1 ..] of length n onto rec. */
static int apply(struct pstate *ps, const struct op *op, const char *p, size_t n, size_t col,
                 struct kw_rec *rec) {
  const char *name = ps->lf->fmt + op->name_off;
  int nlen = (int)op->name_len;
  struct kw_str s;
  int64_t v;
  bool any;
  int rc;

  switch ((enum var)op->var) {
  case V_SKIP:
  case V_IS_ARGS:
    return 0;
  case V_TS_CLF:
  case V_TS_ISO:
  case V_TS_EPOCH:
    if (absent(p, n))
      return 0;
    rc = op->var == V_TS_CLF ? kw_time_parse_clf(p, n, &v)
         : op->var == V_TS_ISO ? kw_time_parse_iso8601(p, n, &v)
                               : kw_time_parse_epoch(p, n, &v);
    if (rc != 0)
      return perr(ps, "column %zu: $%.*s is not a valid time", col, nlen, name);
    if (take(ps, S_TS, op->rank))
      rec->ts_us = v;
    return 0;
  case V_STATUS:
    if (absent(p, n))
      return 0;
    if (!parse_uint(p, n, &v) || v > 999)
      return perr(ps, "column %zu: $%.*s is not a number up to 999", col, nlen, name);
    rec->status = (int)v;
    return 0;
  case V_RESP_BYTES:
  case V_REQ_BYTES:
    if (absent(p, n))
      return 0;
    if (!parse_uint(p, n, &v))
      return perr(ps, "column %zu: $%.*s is not a number", col, nlen, name);
    if (op->var == V_REQ_BYTES)
      rec->req_bytes = v;
    else if (take(ps, S_RESP, op->rank))
      rec->resp_bytes = v;
    return 0;
  case V_LAT_SECS:
    if (absent(p, n))
      return 0;
    if (!parse_secs(p, n, &v))
      return perr(ps, "column %zu: $%.*s is not a number of seconds", col, nlen, name);
    if (take(ps, S_LAT, op->rank))
      rec->latency_us = v;
    return 0;
  case V_LAT_LIST:
    if (absent(p, n))
      return 0;
    if (!parse_secs_list(p, n, &v, &any))
      return perr(ps, "column %zu: $%.*s is not a list of seconds", col, nlen, name);
    if (any && take(ps, S_LAT, op->rank))
      rec->latency_us = v;
    return 0;
  default:
    break;
  }

  /* text values */
  rc = text(ps, p, n, &s);
  if (rc != 0 || s.p == NULL)
    return rc;
  switch ((enum var)op->var) {
  case V_ADDR:
    if (take(ps, S_ADDR, op->rank))
      rec->addr = s;
    break;
  case V_REQUEST:
    return split_request(ps, op, s, col, rec);
  case V_METHOD:
    if (take(ps, S_METHOD, op->rank))
      rec->method = s;
    break;
  case V_REQUEST_URI:
    if (take(ps, S_URI, op->rank))
      rec->uri = s;
    break;
  case V_URI_ARGS:
    /* escape=default writes a missing $args as "-": "/p" + "" + "-" */
    if (ps->lf->esc == KW_LOGFMT_ESC_DEFAULT && s.n > 1 && s.p[s.n - 1] == '-' &&
        memchr(s.p, '?', s.n) == NULL)
      s.n--;
    if (take(ps, S_URI, op->rank))
      rec->uri = s;
    break;
  case V_URI:
    if (ps->path.p == NULL)
      ps->path = s;
    break;
  case V_ARGS:
    if (ps->args.p == NULL)
      ps->args = s;
    break;
  case V_PROTO:
    if (take(ps, S_PROTO, op->rank))
      rec->proto = s;
    break;
  case V_HOST:
    if (take(ps, S_HOST, op->rank))
      rec->host = s;
    break;
  case V_UA:
    if (rec->user_agent.p == NULL)
      rec->user_agent = s;
    break;
  case V_REFERER:
    if (rec->referer.p == NULL)
      rec->referer = s;
    break;
  case V_HDR:
    kw_rec_add_hdr(rec, op->hdr, s);
    break;
  default:
    break;
  }
  return 0;
}

static inline bool escaped(enum kw_logfmt_escape esc, const char *line, size_t start,
                           size_t q) {
  size_t k = q;
  if (esc == KW_LOGFMT_ESC_NONE)
    return false;
  while (k > start && line[k - 1] == '\\')
    k--;
  return ((q - k) & 1) != 0;
}

/* A space that belongs to the ", " or " : " nginx puts between upstream times. */
static inline bool in_list_sep(const char *line, size_t start, size_t q, size_t len) {
  if (line[q] != ' ')
    return false;
  if (q > start && (line[q - 1] == ',' || line[q - 1] == ':'))
    return true;
  return q + 1 < len && line[q + 1] == ':';
}

/* END_SEARCH: the first q >= start+skip where op's literal starts and is not escaped.
 * *first gets the first position holding the literal's first byte (for messages). */
static size_t find_end(const struct kw_logfmt *lf, const struct op *op, const char *line,
                       size_t start, size_t len, size_t *first) {
  const char *lit = lf->fmt + op->lit_off;
  size_t ll = op->lit_len, q = start + op->skip;

  *first = NOT_FOUND;
  if (q > len) /* shorter than a fixed-width value: let the value's own check report it */
    q = start;
  while (q < len) {
    const char *hit = memchr(line + q, (unsigned char)lit[0], len - q);
    if (hit == NULL)
      break;
    q = (size_t)(hit - line);
    if (*first == NOT_FOUND)
      *first = q;
    if (len - q >= ll && memcmp(hit + 1, lit + 1, ll - 1) == 0 &&
        !escaped(lf->esc, line, start, q) &&
        !(op->var == V_LAT_LIST && in_list_sep(line, start, q, len)))
      return q;
    q++;
  }
  return NOT_FOUND;
}

int kw_logfmt_parse(struct kw_logfmt *lf, const char *line, size_t len, struct kw_rec *rec,
                    char *err, size_t errlen) {
  struct pstate ps;
  char tmp[128];
  size_t pos;
  int rc;

  if (lf == NULL || rec == NULL || (line == NULL && len > 0))
    return KW_EINVAL;
  kw_rec_clear(rec);
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  ps.lf = lf;
  ps.err = err;
  ps.errlen = errlen;
  ps.used = 0;
  ps.reserved = false;
  ps.path = ps.args = KW_STR_NULL;
  memset(ps.best, 0xff, sizeof(ps.best));

  if (len > 0 && line[len - 1] == '\r')
    len--;
  if (len == 0)
    return perr(&ps, "empty line");
  if (len > SIZE_MAX / 4)
    return perr(&ps, "line too long");
  ps.line = line;
  ps.len = len;

  pos = lf->lead_len;
  if (len < pos || memcmp(line, lf->fmt, pos) != 0)
    return perr(&ps, "expected '%s' at column 1", show(tmp, sizeof(tmp), lf->fmt, pos));
  if (lf->nops == 0)
    return len == pos ? 0 : perr(&ps, "unexpected text at column %zu", pos + 1);

  for (size_t k = 0; k < lf->nops; k++) {
    const struct op *op = &lf->ops[k];
    const char *lit = lf->fmt + op->lit_off;
    size_t start = pos, end, first;

    switch ((enum end_mode)op->end) {
    case END_SEARCH:
      end = find_end(lf, op, line, start, len, &first);
      if (end == NOT_FOUND) {
        if (first == NOT_FOUND)
          return perr(&ps, "expected '%s' at column %zu (end of line)",
                      show(tmp, sizeof(tmp), lit, op->lit_len), len + 1);
        return perr(&ps, "expected '%s' at column %zu",
                    show(tmp, sizeof(tmp), lit, op->lit_len), first + 1);
      }
      pos = end + op->lit_len;
      break;
    case END_SUFFIX:
      if (len - start < op->lit_len)
        return perr(&ps, "expected '%s' at column %zu (end of line)",
                    show(tmp, sizeof(tmp), lit, op->lit_len), len + 1);
      end = len - op->lit_len;
      if (memcmp(line + end, lit, op->lit_len) != 0 || escaped(lf->esc, line, start, end))
        return perr(&ps, "expected '%s' at column %zu, the end of the line",
                    show(tmp, sizeof(tmp), lit, op->lit_len), end + 1);
      pos = len;
      break;
    default: /* END_LINE */
      end = len;
      pos = len;
      break;
    }
    rc = apply(&ps, op, line + start, end - start, start + 1, rec);
    if (rc != 0)
      return rc;
  }

  /* $uri [+ '?' + $args] when no better source filled the URI */
  if (ps.best[S_URI] == 0xff && ps.path.p != NULL) {
    if (ps.args.p == NULL) {
      rec->uri = ps.path;
    } else if ((uintptr_t)ps.path.p >= (uintptr_t)line &&
               (uintptr_t)ps.args.p + ps.args.n <= (uintptr_t)line + len &&
               (uintptr_t)ps.path.p + ps.path.n + 1 == (uintptr_t)ps.args.p &&
               ps.path.p[ps.path.n] == '?') {
      rec->uri = kw_str_make(ps.path.p, ps.path.n + 1 + ps.args.n); /* "$uri?$args" */
    } else {
      char *d = scratch(&ps, ps.path.n + 1 + ps.args.n);
      if (d == NULL)
        return KW_ENOMEM;
      memcpy(d, ps.path.p, ps.path.n);
      d[ps.path.n] = '?';
      memcpy(d + ps.path.n + 1, ps.args.p, ps.args.n);
      rec->uri = kw_str_make(d, ps.path.n + 1 + ps.args.n);
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- built-ins and ops */

#define COMBINED                                                                         \
  "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "     \
  "\"$http_referer\" \"$http_user_agent\""

const char *kw_logfmt_builtin(const char *name) {
  static const char combined[] = COMBINED;
  static const char keyed[] = COMBINED " \"$http_x_api_key\" $request_time";

  if (name == NULL)
    return NULL;
  if (strcmp(name, "combined") == 0)
    return combined;
  if (strcmp(name, "keyed") == 0)
    return keyed;
  return NULL;
}

static int ops_parse(void *ctx, const char *line, size_t len, struct kw_rec *rec, char *err,
                     size_t errlen) {
  return kw_logfmt_parse(ctx, line, len, rec, err, errlen);
}

static void ops_destroy(void *ctx) {
  kw_logfmt_destroy(ctx);
}

const struct kw_format_ops kw_logfmt_ops = {
    .kind = "nginx",
    .parse = ops_parse,
    .destroy = ops_destroy,
};
