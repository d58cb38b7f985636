/* fuzz_jsonl.c — libFuzzer harness for the JSON-lines parser.
 *
 * Each input goes to a parser of every preset plus one custom mapping (created once and
 * reused, so state carried between lines is exercised too), in three shapes:
 *   1. as one line, as is;
 *   2. line by line, when it holds '\n' (so a fixture file is a seed of many lines);
 *   3. framed: the bytes after the first one become the value of a field that a preset
 *      reads ({"status":<input>}), the first byte choosing the frame.  jansson is not
 *      instrumented, so without frames libFuzzer rarely finds an object that gets past
 *      json_loadb() and into the conversions.
 * Then kw_jsonl_guess_preset() sees the input.  After a successful parse every string in
 * the record is read in full (ASan catches a kw_str pointing outside live memory) and
 * the record's invariants are asserted.
 *
 * Build and run (from the repository root):
 *   clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_jsonl.c collector/jsonl.c sidecar/timeutil.c sidecar/err.c \
 *     sidecar/call.c -ljansson -o /tmp/fuzz_jsonl && /tmp/fuzz_jsonl -max_total_time=30
 * Seeding with the fixtures (new units go to the first directory, keep it out of the tree):
 *   mkdir -p /tmp/jsonl_corpus && /tmp/fuzz_jsonl /tmp/jsonl_corpus tests/fixtures/jsonl
 * Thread: libFuzzer's single thread.
 */
#include "collector/jsonl.h"
#include "sidecar/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NPARSERS 6

static struct kw_jsonl *parsers[NPARSERS];
static size_t nparsers;

static void init(void) {
  const char *const *names = kw_jsonl_preset_names();
  struct kw_jsonl_mapping m;

  for (size_t i = 0; names[i] != NULL && nparsers < NPARSERS; i++) {
    if (kw_jsonl_preset(names[i], &m) != 0 ||
        kw_jsonl_create(&m, &parsers[nparsers], NULL, 0) != 0)
      abort();
    nparsers++;
  }
  /* a custom mapping with composed URIs, indexes, a prefix and every time format path */
  memset(&m, 0, sizeof(m));
  m.path[KW_JF_PATH] = "p|a.0";
  m.path[KW_JF_QUERY] = "q";
  m.path[KW_JF_TIME] = "t|a.1";
  m.path[KW_JF_LATENCY] = "l";
  m.path[KW_JF_HEADERS] = "h";
  m.path[KW_JF_KEY] = "k.0.v";
  m.latency_unit = KW_JU_NS;
  m.hdr_prefix = "r_";
  m.extra_hdrs[0] = (struct kw_jsonl_extra_hdr){"x|y.z", "X_Key"};
  m.n_extra_hdrs = 1;
  if (nparsers < NPARSERS && kw_jsonl_create(&m, &parsers[nparsers], NULL, 0) == 0)
    nparsers++;
}

static volatile unsigned char sink;

static void touch(struct kw_str s) {
  if (s.p == NULL) {
    if (s.n != 0)
      abort();
    return;
  }
  for (size_t i = 0; i < s.n; i++)
    sink ^= (unsigned char)s.p[i];
}

static void check(const struct kw_rec *rec) {
  touch(rec->addr);
  touch(rec->method);
  touch(rec->uri);
  touch(rec->proto);
  touch(rec->host);
  touch(rec->user_agent);
  touch(rec->referer);
  touch(rec->key_id);
  touch(rec->key);
  if (rec->nhdrs > KW_REC_MAX_HDRS || rec->status < 0 || rec->status > 999 ||
      rec->req_bytes < -1 || rec->resp_bytes < -1 || rec->latency_us < -1 || rec->ts_us < -1)
    abort();
  for (size_t i = 0; i < rec->nhdrs; i++) {
    const struct kw_str *name = &rec->hdrs[i].name;
    if (name->n == 0)
      abort();
    for (size_t k = 0; k < name->n; k++)
      if ((name->p[k] >= 'A' && name->p[k] <= 'Z') || name->p[k] == '_')
        abort(); /* names are normalised */
    touch(rec->hdrs[i].value);
  }
}

static void parse_all(const char *line, size_t len) {
  struct kw_rec rec;
  char err[128];

  for (size_t i = 0; i < nparsers; i++) {
    int rc = kw_jsonl_parse(parsers[i], line, len, &rec, err, sizeof(err));
    if (rc == 0)
      check(&rec);
    else if (rc != KW_EPARSE || err[0] == '\0')
      abort();
  }
}

static const char *const frames[] = {
  "{\"status\":", "{\"request_time\":", "{\"time_iso8601\":", "{\"ts\":",
  "{\"request\":{\"method\":\"GET\",\"uri\":\"/\",\"headers\":",
  "{\"started_at\":", "{\"Duration\":1,\"RequestPath\":\"/\",\"request_X-Api-Key\":",
  "{\"p\":\"/\",\"q\":", "{\"p\":\"/\",\"h\":", "{\"a\":", "{\"t\":",
  "{\"request_uri\":\"/\",\"http_x_api_key\":", "{\"response_code\":",
  "{\"request\":",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char framed[KW_JSONL_MAX_LINE + 256];
  const char *in = (const char *)data;

  if (nparsers == 0)
    init();
  parse_all(in, size);
  if (memchr(in, '\n', size) != NULL) {
    for (size_t off = 0; off < size;) {
      const char *nl = memchr(in + off, '\n', size - off);
      size_t n = nl != NULL ? (size_t)(nl - (in + off)) : size - off;
      parse_all(in + off, n);
      off += n + 1;
    }
  }
  if (size >= 1 && size - 1 <= KW_JSONL_MAX_LINE) {
    const char *f = frames[data[0] % (sizeof(frames) / sizeof(frames[0]))];
    size_t fl = strlen(f);
    memcpy(framed, f, fl);
    memcpy(framed + fl, in + 1, size - 1);
    framed[fl + size - 1] = '}';
    parse_all(framed, fl + size);
  }
  (void)kw_jsonl_guess_preset(in, size);
  return 0;
}
