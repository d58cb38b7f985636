/* fuzz_capture.c — libFuzzer harness for the packet collector (collector/capture.c and
 * the decoder, reassembler and HTTP layer behind it).
 *
 * Input without the marker: a whole pcap/pcapng file, read from memory (fmemopen +
 * kw_capture_open_stream) exactly as `keywatch ingest` reads a file.
 * Input starting with MARKER: "<MARKER><link type index><frames…>", each frame a 2-byte
 * little-endian length then that many bytes (cut at the end of the input), fed with
 * kw_capture_feed() 1 ms apart — this reaches TCP and HTTP states without the fuzzer
 * having to learn pcap framing.  Every frame is copied into a buffer of exactly its size.
 * Every record is checked for sane values, and its strings are touched end to end (ASan).
 * Seeds: the files tests/fixtures/pcap/gen_pcaps.py writes.
 * Build: clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *        tests/fuzz/fuzz_capture.c collector/packet.c collector/tcpreasm.c \
 *        collector/httpflow.c collector/capture.c sidecar/call.c sidecar/err.c \
 *        -lpcap -lhttp_parser -lxxhash -o /tmp/fuzz_capture
 * Run:   python3 tests/fixtures/pcap/gen_pcaps.py /tmp/seeds && /tmp/fuzz_capture /tmp/seeds
 * Thread: libFuzzer's, single.
 */
#include <pcap/dlt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/capture.h"
#include "sidecar/err.h"

#define MARKER 0xFF

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

static void on_rec(const struct kw_rec *rec, size_t wire, void *ctx) {
  (void)ctx;
  (void)wire;
  check_str(rec->addr);
  check_str(rec->method);
  check_str(rec->uri);
  check_str(rec->proto);
  check_str(rec->host);
  check_str(rec->user_agent);
  if (rec->nhdrs > KW_REC_MAX_HDRS)
    abort();
  for (size_t i = 0; i < rec->nhdrs; i++) {
    check_str(rec->hdrs[i].name);
    check_str(rec->hdrs[i].value);
    for (size_t k = 0; k < rec->hdrs[i].name.n; k++) /* names are lower-case */
      if (rec->hdrs[i].name.p[k] >= 'A' && rec->hdrs[i].name.p[k] <= 'Z')
        abort();
  }
  if (rec->status < 0 || rec->status > 999)
    abort();
  if (rec->resp_bytes < -1 || rec->req_bytes < -1 || rec->latency_us < -1)
    abort();
  if (rec->method.p == NULL && rec->status == 0)
    abort(); /* a record is a request, or at least a response */
}

static void check_stats(struct kw_capture *cap) {
  const struct kw_capture_stats *s = kw_capture_stats(cap);
  if (s->tcp.bytes_held != 0 || s->tcp.flows_active != 0)
    abort(); /* after a flush, nothing is held */
}

static int feed_frames(const uint8_t *data, size_t size) {
  static const int lts[] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NULL,
                            DLT_LOOP,   DLT_RAW,       DLT_IPV4,       DLT_IPV6, DLT_C_HDLC};
  struct kw_capture_opts o = {.max_flows = 64, .max_flow_bytes = 8192,
                              .max_total_bytes = 65536, .max_pending = 64};
  struct kw_capture *cap = NULL;
  char err[256];
  int64_t ts = 1700000000000000LL;
  size_t off = 2;

  if (size < 2)
    return 0;
  if (kw_capture_create(&o, lts[data[1] % 9], on_rec, NULL, &cap, err, sizeof(err)) != 0)
    abort();
  while (off + 2 <= size) {
    size_t n = (size_t)data[off] | (size_t)data[off + 1] << 8;
    uint8_t *frame;
    off += 2;
    if (n > size - off)
      n = size - off;
    frame = malloc(n ? n : 1);
    if (frame == NULL)
      break;
    memcpy(frame, data + off, n);
    kw_capture_feed(cap, frame, n, n + (n & 3), ts);
    free(frame);
    off += n;
    ts += 1000 + (int64_t)(n & 0xff) * 1000000; /* now and then past a timeout */
  }
  kw_capture_flush(cap);
  check_stats(cap);
  kw_capture_destroy(cap);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct kw_capture *cap = NULL;
  char err[512];
  uint8_t *copy;
  FILE *fp;
  int rc;

  if (size > 0 && data[0] == MARKER)
    return feed_frames(data, size);
  if (size == 0)
    return 0;
  copy = malloc(size);
  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  fp = fmemopen(copy, size, "rb");
  if (fp == NULL) {
    free(copy);
    return 0;
  }
  rc = kw_capture_open_stream(fp, "fuzz.pcap", NULL, &cap, err, sizeof(err));
  if (rc == 0) {
    rc = kw_capture_run(cap, on_rec, NULL, err, sizeof(err));
    if (rc != 0 && rc != KW_EPARSE)
      abort();
    if (rc != 0 && memchr(err, '\0', sizeof(err)) == NULL)
      abort();
    check_stats(cap);
    kw_capture_destroy(cap);
  } else if (cap != NULL || (rc != KW_EFORMAT && rc != KW_ENOMEM) || err[0] == '\0') {
    abort(); /* open errors carry a message and leave no object */
  }
  free(copy);
  return 0;
}
