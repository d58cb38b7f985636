/* fuzz_syslog.c — libFuzzer harness for syslog header parsing and TCP framing
 * (collector/syslog.c: kw_syslog_body, kw_syslog_framer_*).
 *
 * Input: "<m><s1><s2><stream…>".  m picks the framer's max_msg (1..1021 in steps of 4, or
 * KW_SYSLOG_MAX_MSG for 0xFF); s1 s2 a split point in the stream.  The stream is fed to
 * three framers: whole, in two pieces cut at the split point, and one byte at a time.
 * Every call gets a buffer of exactly the piece's length (ASan sees overreads).
 * Asserted (syslog.h): no frame is longer than max; the return is never negative (no
 * allocation failed); the three framers deliver the same frames — TCP hands over a
 * stream in arbitrary pieces, so framing must not depend on where reads end — and drop
 * as many, give or take one: an oversized frame still incomplete when the stream ends
 * may be counted by a framer that saw more of it at once and not yet by another.
 * Every frame, and the stream itself, goes through kw_syslog_body, whose body must
 * be a suffix of the frame (rc 0 or KW_EPARSE only).
 *
 * Build: clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *        tests/fuzz/fuzz_syslog.c collector/syslog.c sidecar/err.c -luv -o /tmp/fuzz_syslog
 *   (or scripts/fuzz.sh, which builds every harness through CMake with -DKW_FUZZ=ON)
 * Run:   mkdir -p /tmp/syslog_corpus && /tmp/fuzz_syslog \
 *          -dict=tests/fuzz/fuzz_syslog.dict /tmp/syslog_corpus tests/fuzz/corpus/fuzz_syslog
 *        (new units go to the first directory, the seeds stay as they are)
 * Thread: libFuzzer's, single.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/syslog.h"
#include "sidecar/err.h"

/* What one framer delivered: "<len as 8 bytes><bytes>" per frame. */
struct log {
  char *p;
  size_t n, cap;
  size_t max;
  long dropped;
};

static void check_body(const char *frame, size_t len) {
  char *copy = malloc(len ? len : 1);
  const char *body;
  size_t blen;
  int rc;

  if (copy == NULL)
    abort();
  if (len)
    memcpy(copy, frame, len);
  rc = kw_syslog_body(copy, len, &body, &blen);
  if (rc != 0 && rc != KW_EPARSE)
    abort();
  if (body < copy || blen > len || body + blen != copy + len)
    abort(); /* the body is what follows the header: a suffix */
  free(copy);
}

static void on_frame(const char *frame, size_t len, void *ctx) {
  struct log *l = ctx;
  if (len > l->max) {
    fprintf(stderr, "fuzz_syslog: a frame of %zu bytes, max %zu\n", len, l->max);
    abort();
  }
  if (l->n + len + 8 > l->cap) {
    size_t cap = (l->n + len + 8) * 2;
    char *p = realloc(l->p, cap);
    if (p == NULL)
      abort();
    l->p = p;
    l->cap = cap;
  }
  uint64_t n64 = len;
  memcpy(l->p + l->n, &n64, 8);
  if (len)
    memcpy(l->p + l->n + 8, frame, len);
  l->n += len + 8;
  check_body(frame, len);
}

static void feed(struct kw_syslog_framer *fr, const uint8_t *d, size_t n, struct log *l) {
  char *piece = malloc(n ? n : 1);
  int r;

  if (piece == NULL)
    abort();
  if (n)
    memcpy(piece, d, n);
  r = kw_syslog_framer_feed(fr, piece, n, on_frame, l);
  if (r < 0)
    abort();
  l->dropped += r;
  free(piece);
}

static void run(const uint8_t *d, size_t n, size_t max, size_t split, int mode, struct log *l) {
  struct kw_syslog_framer fr;

  if (kw_syslog_framer_init(&fr, max) != 0)
    abort();
  l->max = max;
  if (mode == 0) {
    feed(&fr, d, n, l);
  } else if (mode == 1) {
    feed(&fr, d, split, l);
    feed(&fr, d + split, n - split, l);
  } else {
    for (size_t i = 0; i < n; i++)
      feed(&fr, d + i, 1, l);
  }
  kw_syslog_framer_free(&fr);
}

static void dump(const char *what, const struct log *l) {
  fprintf(stderr, "  %s: %zu bytes of frames, %ld dropped\n", what, l->n, l->dropped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct log whole = {0}, two = {0}, bytes = {0};
  size_t max, split;

  if (size < 3)
    return 0;
  max = data[0] == 0xFF ? KW_SYSLOG_MAX_MSG : 1 + (size_t)data[0] * 4;
  split = ((size_t)data[1] << 8 | data[2]) % (size - 3 + 1);
  data += 3;
  size -= 3;
  check_body((const char *)data, size);
  run(data, size, max, split, 0, &whole);
  run(data, size, max, split, 1, &two);
  run(data, size, max, split, 2, &bytes);
  if (whole.n != two.n || (whole.n && memcmp(whole.p, two.p, whole.n) != 0) ||
      whole.n != bytes.n || (whole.n && memcmp(whole.p, bytes.p, whole.n) != 0) ||
      labs(whole.dropped - two.dropped) > 1 || labs(whole.dropped - bytes.dropped) > 1) {
    fprintf(stderr, "fuzz_syslog: framing depends on how the stream is cut (max %zu, "
                    "split at %zu of %zu)\n", max, split, size);
    dump("whole", &whole);
    dump("split", &two);
    dump("bytes", &bytes);
    abort();
  }
  free(whole.p);
  free(two.p);
  free(bytes.p);
  return 0;
}
