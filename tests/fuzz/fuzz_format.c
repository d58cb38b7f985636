/* fuzz_format.c — libFuzzer harness for format auto-detection (collector/format.c:
 * kw_format_detect) and the parser it picks.
 *
 * Input: the first bytes of a log, as `keywatch ingest` samples them, in a buffer of
 * exactly that length (ASan sees overreads).
 * Asserted (format.h): detection returns 0 with a NUL-terminated name that
 * kw_format_names() lists and kw_format_create() builds with the default configuration —
 * every sampled line is then parsed with it, its strings read end to end — or KW_EFORMAT
 * with a message.  That message quotes the first line without anything that could be a
 * secret (format.c's show(): every run of 12+ bytes without a space, '"', ',', ':', '['
 * or ']' is cut to 4 characters and "…"): no such 12-byte run of the first line may
 * appear in the quote.
 * A 64-byte output buffer and a short (40-byte) error buffer check truncation too.
 *
 * Build: cmake -S . -B build-fuzz -DKW_FUZZ=ON -DCMAKE_C_COMPILER=clang && \
 *        cmake --build build-fuzz --target fuzz_format   (links kwcollector and kwcore;
 *        scripts/fuzz.sh does this for every harness)
 * Run:   mkdir -p /tmp/format_corpus && \
 *        build-fuzz/fuzz_format /tmp/format_corpus tests/fuzz/corpus/fuzz_format
 * Thread: libFuzzer's, single.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/format.h"
#include "sidecar/config.h"
#include "sidecar/err.h"

static struct kw_config *cfg;
static volatile unsigned char sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (kw_config_default(&cfg) != 0)
    abort();
  return 0;
}

static void touch(struct kw_str s) {
  if (s.p == NULL && s.n != 0)
    abort();
  for (size_t i = 0; i < s.n; i++)
    sink ^= (unsigned char)s.p[i];
}

static bool known(const char *name) {
  for (const char *const *n = kw_format_names(); *n != NULL; n++)
    if (strcmp(*n, name) == 0)
      return true;
  return false;
}

/* Parses every line of the sample with the detected format. */
static void parse_sample(const char *name, const char *s, size_t n) {
  struct kw_format f;
  struct kw_rec rec;
  char err[256];

  if (kw_format_create(&cfg->ingest, name, &f, err, sizeof(err)) != 0) {
    fprintf(stderr, "fuzz_format: detected '%s' but cannot build it: %s\n", name, err);
    abort();
  }
  for (size_t off = 0; off < n;) {
    const char *nl = memchr(s + off, '\n', n - off);
    size_t len = nl ? (size_t)(nl - (s + off)) : n - off;
    char *line = malloc(len ? len : 1);
    if (line == NULL)
      abort();
    memcpy(line, s + off, len);
    if (f.ops->parse(f.ctx, line, len, &rec, err, sizeof(err)) == 0) {
      touch(rec.addr);
      touch(rec.method);
      touch(rec.uri);
      touch(rec.user_agent);
      touch(rec.host);
      touch(rec.key);
      touch(rec.key_id);
      if (rec.nhdrs > KW_REC_MAX_HDRS)
        abort();
      for (size_t i = 0; i < rec.nhdrs; i++) {
        touch(rec.hdrs[i].name);
        touch(rec.hdrs[i].value);
      }
    }
    free(line);
    off += len + 1;
  }
  kw_format_destroy(&f);
}

static bool is_run_byte(unsigned char c) {
  return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ':' && c != '[' && c != ']' &&
         c != '\\';
}

/* No 12-byte run of the first line is quoted in err's "(first line: …)". */
static void check_quote(const char *s, size_t n, const char *err) {
  const char *q = strstr(err, "(first line: ");
  const char *end = q ? strstr(q, "); give") : NULL;
  size_t len = 0;

  if (q == NULL)
    return;
  q += 13;
  if (end == NULL) /* the message was cut: check what there is */
    end = q + strlen(q);
  for (;;) { /* the first line that is not empty, as kw_format_detect() takes it */
    len = 0;
    while (len < n && s[len] != '\n')
      len++;
    if (len > 0 && s[len - 1] == '\r')
      len--;
    if (len > 0 || n == 0)
      break;
    const char *nl = memchr(s, '\n', n);
    if (nl == NULL)
      return;
    n -= (size_t)(nl + 1 - s);
    s = nl + 1;
  }
  for (size_t i = 0; i + 12 <= len; i++) {
    size_t k = 0;
    while (k < 12 && is_run_byte((unsigned char)s[i + k]))
      k++;
    if (k == 12 && (size_t)(end - q) >= 12 && memmem(q, (size_t)(end - q), s + i, 12) != NULL) {
      fprintf(stderr, "fuzz_format: the error quotes 12 bytes of a run: %.12s\n", s + i);
      abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *sample = malloc(size ? size : 1);
  char out[64], err[512], small[40];
  int rc;

  if (sample == NULL)
    abort();
  memcpy(sample, data, size);
  memset(out, 0x55, sizeof(out));
  memset(err, 0, sizeof(err));
  rc = kw_format_detect(sample, size, out, sizeof(out), err, sizeof(err));
  if (rc == 0) {
    if (memchr(out, '\0', sizeof(out)) == NULL || !known(out))
      abort();
    parse_sample(out, sample, size);
  } else {
    if (rc != KW_EFORMAT || err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
      abort();
    check_quote(sample, size, err);
  }
  memset(small, 0x55, sizeof(small));
  rc = kw_format_detect(sample, size, out, sizeof(out), small, sizeof(small));
  if (rc != 0 && memchr(small, '\0', sizeof(small)) == NULL)
    abort();
  free(sample);
  return 0;
}
