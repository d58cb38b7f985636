/* fuzz_logfmt.c — libFuzzer harness for collector/logfmt.c.
 *
 * Input without the marker: parsed as one line by the built-in "keyed" format under each
 * escape mode (compiled once, reused, as the collector does).
 * Input starting with MARKER: "<MARKER><format>\n<line>" — the format (any bytes up to the
 * first '\n'; NUL ends it early, as for a C string) is compiled and, when it compiles, the
 * rest is parsed with it.
 * Every line is handed over in a buffer of exactly its length, so ASan sees any overread.
 * Build: clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *        tests/fuzz/fuzz_logfmt.c collector/logfmt.c sidecar/timeutil.c sidecar/err.c \
 *        sidecar/call.c -o /tmp/fuzz_logfmt
 * Thread: libFuzzer's, single.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/logfmt.h"
#include "sidecar/err.h"

#define MARKER 0xFF

static struct kw_logfmt *keyed[3]; /* one per enum kw_logfmt_escape */

static void check_str(struct kw_str s) {
  volatile char sink = 0;
  if (s.p == NULL) {
    if (s.n != 0)
      abort();
    return;
  }
  if (s.n > 0) /* touch both ends: ASan reports a dangling or short value */
    sink ^= s.p[0] ^ s.p[s.n - 1];
  (void)sink;
}

static void check_rec(const struct kw_rec *rec) {
  check_str(rec->addr);
  check_str(rec->method);
  check_str(rec->uri);
  check_str(rec->proto);
  check_str(rec->host);
  check_str(rec->user_agent);
  check_str(rec->referer);
  if (rec->nhdrs > KW_REC_MAX_HDRS)
    abort();
  for (size_t i = 0; i < rec->nhdrs; i++) {
    check_str(rec->hdrs[i].name);
    check_str(rec->hdrs[i].value);
    if (rec->hdrs[i].value.p == NULL)
      abort(); /* absent headers are not added */
  }
  if (rec->status < 0 || rec->status > 999)
    abort();
  if (rec->resp_bytes < -1 || rec->req_bytes < -1 || rec->latency_us < -1)
    abort();
}

static void parse_one(struct kw_logfmt *lf, const uint8_t *data, size_t size) {
  char err[128];
  struct kw_rec rec;
  char *line = malloc(size > 0 ? size : 1);
  int rc;

  if (line == NULL)
    return;
  memcpy(line, data, size);
  rc = kw_logfmt_parse(lf, line, size, &rec, err, sizeof(err));
  if (rc == 0)
    check_rec(&rec);
  else if (rc != KW_EPARSE && rc != KW_ENOMEM)
    abort();
  else if (rc == KW_EPARSE && (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL))
    abort(); /* a parse error always says why, NUL-terminated */
  free(line);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  for (int e = 0; e < 3; e++)
    if (kw_logfmt_compile(kw_logfmt_builtin("keyed"), (enum kw_logfmt_escape)e, &keyed[e],
                          NULL, 0) != 0)
      abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 0 && data[0] == MARKER) {
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    size_t flen = nl != NULL ? (size_t)(nl - (data + 1)) : size - 1;
    char *fmt = malloc(flen + 1);
    char err[128];
    struct kw_logfmt *lf = NULL;
    int rc;

    if (fmt == NULL)
      return 0;
    memcpy(fmt, data + 1, flen);
    fmt[flen] = '\0';
    for (int e = 0; e < 3; e++) {
      rc = kw_logfmt_compile(fmt, (enum kw_logfmt_escape)e, &lf, err, sizeof(err));
      if (rc == 0) {
        if (nl != NULL)
          parse_one(lf, nl + 1, size - (size_t)(nl + 1 - data));
        kw_logfmt_destroy(lf);
      } else if (rc != KW_EINVAL || lf != NULL || err[0] == '\0') {
        abort(); /* errors always carry a message and leave no object */
      }
    }
    free(fmt);
    return 0;
  }
  for (int e = 0; e < 3; e++)
    parse_one(keyed[e], data, size);
  return 0;
}
