/* fuzz_endpoint.c — libFuzzer harness for endpoint templating (analyzer/endpoint.c).
 *
 * Input: a request path (with or without query and fragment), copied into a buffer of
 * exactly its length; the template goes into a heap buffer of exactly KW_ENDPOINT_MAX + 1
 * bytes, the size endpoint.h asks for, so ASan sees any write past it.
 * Asserted (endpoint.h): the length returned is 1..KW_ENDPOINT_MAX and NUL follows it; the
 * template starts with '/'; it holds no '?' or '#' (query and fragment are dropped); no
 * segment is longer than KW_ENDPOINT_SEG_MAX; a path that is not absolute yields "/"; and
 * a template is its own template (the store and rule patterns compare templates, so
 * templating twice must not move an endpoint).
 *
 * Build: clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *        tests/fuzz/fuzz_endpoint.c analyzer/endpoint.c -o /tmp/fuzz_endpoint
 *   (or scripts/fuzz.sh, which builds every harness through CMake with -DKW_FUZZ=ON)
 * Run:   mkdir -p /tmp/endpoint_corpus && /tmp/fuzz_endpoint \
 *          -dict=tests/fuzz/fuzz_endpoint.dict /tmp/endpoint_corpus \
 *          tests/fuzz/corpus/fuzz_endpoint
 *        (new units go to the first directory, the seeds stay as they are)
 * Thread: libFuzzer's, single.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/endpoint.h"

static void check(const char *path, size_t n, const char *out, size_t len) {
  size_t plen = 0;

  while (plen < n && path[plen] != '?' && path[plen] != '#')
    plen++;
  if (len < 1 || len > KW_ENDPOINT_MAX || out[len] != '\0' || out[0] != '/')
    abort();
  if (memchr(out, '?', len) != NULL || memchr(out, '#', len) != NULL)
    abort();
  if ((plen == 0 || path[0] != '/') && (len != 1 || out[0] != '/'))
    abort(); /* empty or relative: "/" */
  for (size_t i = 0; i < len;) { /* segments: "/" then at most SEG_MAX bytes */
    size_t j = i + 1;
    if (out[i] != '/')
      abort();
    while (j < len && out[j] != '/')
      j++;
    if (j - i - 1 > KW_ENDPOINT_SEG_MAX)
      abort();
    i = j;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *path = malloc(size ? size : 1);
  char *out = malloc(KW_ENDPOINT_MAX + 1);
  char *again = malloc(KW_ENDPOINT_MAX + 1);
  size_t len, len2;

  if (path == NULL || out == NULL || again == NULL)
    abort();
  memcpy(path, data, size);
  len = kw_endpoint_template(path, size, out);
  check(path, size, out, len);
  /* Copy to exactly len bytes: the second pass must not read the NUL. */
  char *tmpl = malloc(len);
  if (tmpl == NULL)
    abort();
  memcpy(tmpl, out, len);
  len2 = kw_endpoint_template(tmpl, len, again);
  check(tmpl, len, again, len2);
  if (len2 != len || memcmp(out, again, len) != 0) {
    fprintf(stderr, "fuzz_endpoint: not a fixed point: \"%s\" -> \"%s\"\n", out, again);
    abort();
  }
  free(tmpl);
  free(again);
  free(out);
  free(path);
  return 0;
}
