/* fuzz_keyid.c — libFuzzer harness for key extraction and redaction (collector/keyid.c).
 *
 * Input: "<flags><uri>\n<user agent>\n<host>\n<addr>\n<method>\n<name>:<value>\n…" — every
 * line after the fifth is a request header (name lower-cased, as parsers deliver it); the
 * names "@key" and "@id" fill rec->key and rec->key_id instead.  Each string is copied
 * into a buffer of exactly its length (ASan sees any overread).
 * flags bit 0: identity of kw_config_default() (0) or a custom one with every scheme (1);
 *       bit 1: every 0x01 byte of the uri and user agent becomes the credential of the first
 *              header (its value after the last space), so "the key elsewhere in the path"
 *              is reached without the fuzzer having to repeat 8+ bytes;
 *       bit 2: the uri's path (before '?') is repeated past the 8192-byte cut.
 *
 * The invariant (keyid.h, keywatch.yaml "The key found in a call is also removed from
 * anywhere else in its path"): the harness lists every string the record could yield as a
 * key (raw and trimmed header values, Authorization credentials, percent-decoded query and
 * $arg_ values, rec->key, "id:"+rec->key_id), finds the one whose fingerprint the call
 * carries (none matching aborts: a key from nowhere), and aborts if those bytes occur in
 * the stored path (also once percent-decoded: a client may escape the key in a path
 * segment), the stored user agent or the display prefix.  Exempt: keys under 8
 * bytes (keyid.c redacts only keys of 8+ bytes: a 1-byte "key" would erase paths) and the
 * key "REDACTED", which its own placeholder spells.
 * Also asserted: the path stays under its cap, untouched fields pass through, has_query.
 *
 * Build: cmake -S . -B build-fuzz -DKW_FUZZ=ON -DCMAKE_C_COMPILER=clang && \
 *        cmake --build build-fuzz --target fuzz_keyid   (links kwcollector, kwanalyzer and
 *        kwcore; scripts/fuzz.sh does this for every harness)
 * Run:   mkdir -p /tmp/keyid_corpus && build-fuzz/fuzz_keyid \
 *          -dict=tests/fuzz/fuzz_keyid.dict /tmp/keyid_corpus tests/fuzz/corpus/fuzz_keyid
 *        (new units go to the first directory, the seeds stay as they are)
 * Thread: libFuzzer's, single.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/keyid.h"
#include "sidecar/config.h"
#include "sidecar/fingerprint.h"

#define PATH_CAP (8192 + 3) /* keyid.c: PATH_MAX_STORED and "…" */
#define MAX_CANDS 1024
#define SECRET "keywatch-fuzz-secret-0123456789abcdef"

static struct kw_config *cfg;
static struct kw_identity_cfg custom;
static struct kw_fingerprint *fp;
static struct kw_keyid *kids[2];

static char *custom_headers[] = {"x-api-key", "apikey", "x-token"};
static char *custom_schemes[] = {"bearer", "token", "apikey", "basic"};
static char *custom_query[] = {"api_key", "key", "access_token"};
static char *custom_redact[] = {"password", "sig", "key"};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  custom = (struct kw_identity_cfg){
      .headers = custom_headers, .headers_count = 3,
      .auth_schemes = custom_schemes, .auth_schemes_count = 4,
      .query_params = custom_query, .query_params_count = 3,
      .redact_params = custom_redact, .redact_params_count = 3,
      .prefix_length = 16,
  };
  if (kw_config_default(&cfg) != 0 ||
      kw_fingerprint_create_from(SECRET, strlen(SECRET), &fp) != 0 ||
      kw_keyid_create(&cfg->identity, fp, &kids[0]) != 0 ||
      kw_keyid_create(&custom, fp, &kids[1]) != 0)
    abort();
  return 0;
}

/* ---- a record from the input ----------------------------------------------------------- */

struct bufs {
  void *p[8 + 2 * KW_REC_MAX_HDRS + 4];
  size_t n;
};

static struct kw_str dup_str(struct bufs *b, const char *s, size_t n) {
  char *p = malloc(n ? n : 1);
  if (p == NULL || b->n == sizeof(b->p) / sizeof(b->p[0]))
    abort();
  if (n > 0)
    memcpy(p, s, n);
  b->p[b->n++] = p;
  return kw_str_make(p, n);
}

/* s with every 0x01 replaced by sub (when subst), its part before '?' repeated `times`
 * times. */
static struct kw_str expand(struct bufs *b, struct kw_str s, bool subst, struct kw_str sub,
                            size_t times) {
  const char *q = s.n ? memchr(s.p, '?', s.n) : NULL;
  size_t plen = q ? (size_t)(q - s.p) : s.n, n = 0;
  char *out;

  for (size_t i = 0; i < s.n; i++)
    n += subst && s.p[i] == 1 ? sub.n : 1;
  n += (times - 1) * plen * (sub.n > 0 ? sub.n : 1); /* generous */
  out = malloc(n ? n : 1);
  if (out == NULL)
    abort();
  size_t o = 0;
  for (size_t t = 0; t < times; t++)
    for (size_t i = 0; i < (t + 1 < times ? plen : s.n); i++) {
      if (subst && s.p[i] == 1) {
        if (sub.n > 0)
          memcpy(out + o, sub.p, sub.n);
        o += sub.n;
      } else {
        out[o++] = s.p[i];
      }
    }
  struct kw_str r = dup_str(b, out, o); /* exactly o bytes, for ASan */
  free(out);
  return r;
}

/* ---- candidates: every string the record could yield as its key ------------------------- */

struct cands {
  char *s[MAX_CANDS];
  size_t n[MAX_CANDS];
  size_t count;
  bool full; /* some were left out: "from nowhere" cannot be told */
};

static void add(struct cands *c, const char *s, size_t n) {
  if (n == 0)
    return;
  for (size_t i = 0; i < c->count; i++)
    if (c->n[i] == n && memcmp(c->s[i], s, n) == 0)
      return;
  if (c->count == MAX_CANDS) {
    c->full = true;
    return;
  }
  c->s[c->count] = malloc(n);
  if (c->s[c->count] == NULL)
    abort();
  memcpy(c->s[c->count], s, n);
  c->n[c->count++] = n;
}

static struct kw_str trim(struct kw_str s) {
  while (s.n > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
    s.p++;
    s.n--;
  }
  while (s.n > 0 && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
    s.n--;
  return s;
}

static int hexv(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void add_decoded(struct cands *c, const char *s, size_t n) {
  char *out = malloc(n ? n : 1);
  size_t o = 0;
  if (out == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexv((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexv((unsigned char)s[i + 2])) >= 0) {
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      out[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  add(c, out, o);
  add(c, s, n);
  free(out);
}

static void collect(const struct kw_keyid *kid, const struct kw_rec *rec, struct cands *c) {
  static char auth[KW_KEY_MAX + 8];
  char id[KW_KEY_MAX + 8];

  add(c, rec->key.p, rec->key.n);
  if (rec->key_id.n + 3 <= sizeof(id)) {
    memcpy(id, "id:", 3);
    if (rec->key_id.n)
      memcpy(id + 3, rec->key_id.p, rec->key_id.n);
    add(c, id, rec->key_id.n + 3);
  }
  for (size_t i = 0; i < rec->nhdrs; i++) {
    struct kw_str v = rec->hdrs[i].value, t = trim(v), nm = rec->hdrs[i].name;
    size_t n;
    add(c, v.p, v.n);
    add(c, t.p, t.n);
    if ((n = kw_keyid_from_authorization(kid, v.p, v.n, auth, KW_KEY_MAX + 1)) > 0)
      add(c, auth, n);
    if (nm.n > 4 && memcmp(nm.p, "arg:", 4) == 0)
      add_decoded(c, v.p, v.n);
  }
  const char *q = rec->uri.n ? memchr(rec->uri.p, '?', rec->uri.n) : NULL;
  const char *end = q ? rec->uri.p + rec->uri.n : NULL; /* uri.p may be NULL */
  for (const char *p = q ? q + 1 : end; q != NULL && p < end;) {
    const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    if (eq != NULL)
      add_decoded(c, eq + 1, (size_t)(stop - eq - 1));
    p = stop + 1;
  }
}

static void free_cands(struct cands *c) {
  for (size_t i = 0; i < c->count; i++)
    free(c->s[i]);
}

/* ---- checks ------------------------------------------------------------------------------ */

static volatile unsigned char sink;

static void touch(struct kw_str s) {
  if (s.p == NULL && s.n != 0)
    abort();
  for (size_t i = 0; i < s.n; i++)
    sink ^= (unsigned char)s.p[i];
}

static bool same(struct kw_str a, struct kw_str b) {
  return a.p == b.p && a.n == b.n;
}

static void leaked(const char *where, const char *key, size_t n) {
  fprintf(stderr, "fuzz_keyid: the raw key (%zu bytes) is in the call's %s; key hex: ", n,
          where);
  for (size_t i = 0; i < n && i < 256; i++)
    fprintf(stderr, "%02x", (unsigned char)key[i]);
  fprintf(stderr, "\n");
  abort();
}

static int hexdigit(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* s with each %XX decoded once (as a client's escaping would be undone) into out. */
static size_t pct_decoded(struct kw_str s, char *out) {
  size_t n = 0;
  for (size_t i = 0; i < s.n; n++) {
    int h, l;
    if (s.p[i] == '%' && i + 2 < s.n && (h = hexdigit((unsigned char)s.p[i + 1])) >= 0 &&
        (l = hexdigit((unsigned char)s.p[i + 2])) >= 0) {
      out[n] = (char)(h << 4 | l);
      i += 3;
    } else {
      out[n] = s.p[i++];
    }
  }
  return n;
}

static void check(const struct kw_keyid *kid, const struct kw_rec *rec,
                  const struct kw_call *call, int found) {
  static struct cands c;
  static char dec[PATH_CAP];
  uint8_t f[KW_FP_LEN];
  const char *key = NULL;
  size_t keylen = 0, n;

  touch(call->path);
  touch(call->user_agent);
  if (call->path.n > PATH_CAP || (found != 0 && found != 1) || call->has_key != (found == 1))
    abort();
  if (!same(call->method, rec->method) || !same(call->host, rec->host) ||
      call->status != rec->status || call->req_bytes != rec->req_bytes ||
      call->resp_bytes != rec->resp_bytes || call->latency_us != rec->latency_us)
    abort(); /* fields keyid.c does not own pass through as they are */
  if (call->has_query != (rec->uri.n > 0 && memchr(rec->uri.p, '?', rec->uri.n) != NULL))
    abort();
  if (memchr(call->prefix, '\0', sizeof(call->prefix)) == NULL)
    abort();
  if (!call->has_key) {
    if (call->prefix[0] != '\0')
      abort();
    return;
  }
  c.count = 0;
  c.full = false;
  collect(kid, rec, &c);
  for (size_t i = 0; i < c.count && key == NULL; i++) {
    kw_fingerprint_key(fp, c.s[i], c.n[i], f);
    if (memcmp(f, call->fp, KW_FP_LEN) == 0) {
      key = c.s[i];
      keylen = c.n[i];
    }
  }
  if (key == NULL && c.full) {
    free_cands(&c);
    return;
  }
  if (key == NULL) {
    fprintf(stderr, "fuzz_keyid: the call's fingerprint is of no string in the record\n");
    abort();
  }
  if (strlen(call->prefix) >= keylen && keylen > 0)
    abort(); /* a prefix shows at most a quarter of the key */
  if (keylen >= 8 && !(keylen == 8 && memcmp(key, "REDACTED", 8) == 0)) {
    if (call->path.n >= keylen && memmem(call->path.p, call->path.n, key, keylen) != NULL)
      leaked("path", key, keylen);
    if (call->path.n >= keylen && (n = pct_decoded(call->path, dec)) >= keylen &&
        memmem(dec, n, key, keylen) != NULL)
      leaked("path, percent-decoded", key, keylen);
    if (call->user_agent.n >= keylen &&
        memmem(call->user_agent.p, call->user_agent.n, key, keylen) != NULL)
      leaked("user agent", key, keylen);
  }
  free_cands(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct bufs b = {.n = 0};
  struct kw_str line[5] = {KW_STR_NULL, KW_STR_NULL, KW_STR_NULL, KW_STR_NULL, KW_STR_NULL};
  struct kw_str cred = KW_STR_NULL;
  struct kw_rec rec;
  struct kw_call call;
  const char *in = (const char *)data, *end = in + size;
  size_t nline = 0;
  unsigned flags;

  if (size == 0)
    return 0;
  flags = data[0];
  kw_rec_clear(&rec);
  rec.status = (int)(flags >> 3) * 31;
  for (const char *p = in + 1; p <= end && nline < 5 + KW_REC_MAX_HDRS + 2;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (nline < 5) {
      line[nline] = kw_str_make(p, n);
    } else {
      /* "arg:NAME:value" is an nginx $arg_NAME field (keyid.c's "arg:" headers) */
      size_t skip = n > 4 && memcmp(p, "arg:", 4) == 0 ? 4 : 0;
      const char *colon = memchr(p + skip, ':', n - skip);
      size_t nn = colon ? (size_t)(colon - p) : n;
      struct kw_str v = colon ? kw_str_make(colon + 1, n - nn - 1) : KW_STR_NULL;
      if (nn == 4 && memcmp(p, "@key", 4) == 0) {
        rec.key = dup_str(&b, v.p, v.n);
      } else if (nn == 3 && memcmp(p, "@id", 3) == 0) {
        rec.key_id = dup_str(&b, v.p, v.n);
      } else if (nn > 0 && rec.nhdrs < KW_REC_MAX_HDRS) {
        struct kw_str name = dup_str(&b, p, nn);
        for (size_t k = 0; k < nn; k++)
          if (name.p[k] >= 'A' && name.p[k] <= 'Z')
            ((char *)name.p)[k] = (char)(name.p[k] | 0x20);
        kw_rec_add_hdr(&rec, name, dup_str(&b, v.p ? v.p : "", v.n));
        if (rec.nhdrs == 1) {
          struct kw_str t = trim(v);
          const char *sp = t.n ? memrchr(t.p, ' ', t.n) : NULL;
          cred = sp ? kw_str_make(sp + 1, t.n - (size_t)(sp + 1 - t.p)) : t;
        }
      }
    }
    nline++;
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  size_t times = 1;
  if ((flags & 4) && line[0].n > 0) {
    const char *q = memchr(line[0].p, '?', line[0].n);
    size_t plen = q ? (size_t)(q - line[0].p) : line[0].n;
    times = plen > 0 ? 8192 / plen + 1 + (flags >> 4) : 1;
  }
  if (flags & 2) {
    rec.uri = line[0].n ? expand(&b, line[0], true, cred, times) : KW_STR_NULL;
    rec.user_agent = line[1].n ? expand(&b, line[1], true, cred, 1) : KW_STR_NULL;
  } else {
    rec.uri = line[0].n ? expand(&b, line[0], false, cred, times) : KW_STR_NULL;
    rec.user_agent = line[1].n ? dup_str(&b, line[1].p, line[1].n) : KW_STR_NULL;
  }
  rec.host = line[2].n ? dup_str(&b, line[2].p, line[2].n) : KW_STR_NULL;
  rec.addr = line[3].n ? dup_str(&b, line[3].p, line[3].n) : KW_STR_NULL;
  rec.method = line[4].n ? dup_str(&b, line[4].p, line[4].n) : KW_STR_NULL;

  struct kw_keyid *kid = kids[flags & 1];
  int found = kw_keyid_apply(kid, &rec, &call);
  check(kid, &rec, &call, found);
  for (size_t i = 0; i < b.n; i++)
    free(b.p[i]);
  return 0;
}
