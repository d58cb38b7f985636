/* kw_pcapdump.c — test tool: prints what the packet collector extracts from a capture.
 *
 * usage: kw_pcapdump [-c] [-s] [-x] [-k HEADER] [-p PORT]... [-H HEADER]... [-f BPF] FILE
 *   one line per record, tab-separated:
 *     ts_us client method uri status KEY req_bytes resp_bytes latency_us
 *   where KEY is the value of the X-API-Key header (or of the -k header)
 *   (absent values print as "-"; control characters in fields are printed as '?')
 *   -c        print only the record count (benchmarks: no formatting cost)
 *   -s        print the capture counters to stderr at the end, as key=value lines
 *   -x        client address from X-Forwarded-For
 *   -k NAME   print this request header (lower-case) instead of x-api-key
 *   -p PORT   an HTTP server port (repeatable; none: any port)
 *   -H NAME   one more request header to keep (repeatable)
 *   -f BPF    a capture filter
 * Exit: 0 read to the end; 1 the file is damaged (records before the damage are printed,
 * the reason on stderr); 2 usage or open error.
 *
 * This is a test tool: it prints the raw X-API-Key so that the integration test can
 * compare it with nginx's own log.  keywatch itself never prints a raw key.
 * Thread: main only.
 */
#include "collector/capture.h"
#include "sidecar/err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64
#define USAGE                                                                              \
  "usage: kw_pcapdump [-c] [-s] [-x] [-k HEADER] [-p PORT]... [-H HEADER]... [-f BPF] FILE\n"

struct dump {
  const char *key_header;
  size_t key_len;
  unsigned long long n;
  bool count_only;
};

static void put(FILE *o, struct kw_str s) {
  if (s.p == NULL) {
    fputc('-', o);
    return;
  }
  if (s.n == 0) {
    fputs("\"\"", o);
    return;
  }
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    fputc(c < 0x20 || c == 0x7f ? '?' : c, o);
  }
}

static void on_rec(const struct kw_rec *rec, size_t wire, void *ctx) {
  struct dump *d = ctx;
  FILE *o = stdout;
  struct kw_str key = KW_STR_NULL;
  (void)wire;

  d->n++;
  if (d->count_only)
    return;
  for (size_t i = 0; i < rec->nhdrs; i++)
    if (rec->hdrs[i].name.n == d->key_len &&
        memcmp(rec->hdrs[i].name.p, d->key_header, d->key_len) == 0) {
      key = rec->hdrs[i].value;
      break;
    }
  fprintf(o, "%lld\t", (long long)rec->ts_us);
  put(o, rec->addr);
  fputc('\t', o);
  put(o, rec->method);
  fputc('\t', o);
  put(o, rec->uri);
  fprintf(o, "\t%d\t", rec->status);
  put(o, key);
  fprintf(o, "\t%lld\t%lld\t%lld\n", (long long)rec->req_bytes, (long long)rec->resp_bytes,
          (long long)rec->latency_us);
}

static void print_stats(const struct kw_capture_stats *s) {
#define P(name, v) fprintf(stderr, "%s=%llu\n", name, (unsigned long long)(v))
  P("packets", s->packets);
  P("bytes", s->bytes);
  P("wire_bytes", s->wire_bytes);
  P("records", s->records);
  P("decode_errors", s->decode_errors);
  P("truncated", s->truncated);
  P("not_tcp", s->not_tcp);
  P("other_ports", s->other_ports);
  P("non_http_flows", s->non_http_flows);
  P("gaps", s->gaps);
  P("gap_bytes", s->gap_bytes);
  P("anomalies", s->anomalies);
  P("bound_drops", s->bound_drops);
  P("ip.fragments", s->ip.fragments);
  P("ip.frag_reassembled", s->ip.frag_reassembled);
  P("ip.frag_dropped", s->ip.frag_dropped);
  P("tcp.flows", s->tcp.flows);
  P("tcp.ooo_segments", s->tcp.ooo_segments);
  P("tcp.retrans_segments", s->tcp.retrans_segments);
  P("tcp.retrans_bytes", s->tcp.retrans_bytes);
  P("tcp.overlap_bytes", s->tcp.overlap_bytes);
  P("tcp.bytes_held_peak", s->tcp.bytes_held_peak);
  P("http.flows_http", s->http.flows_http);
  P("http.flows_upgraded", s->http.flows_upgraded);
  P("http.requests", s->http.requests);
  P("http.responses", s->http.responses);
  P("http.interim", s->http.interim);
  P("http.unanswered", s->http.unanswered);
  P("http.orphan_responses", s->http.orphan_responses);
  P("http.parse_errors", s->http.parse_errors);
  P("http.resyncs", s->http.resyncs);
  P("http.gaps_bridged", s->http.gaps_bridged);
  P("http.gaps_desync", s->http.gaps_desync);
  P("http.incomplete", s->http.incomplete);
#undef P
}

int main(int argc, char **argv) {
  struct kw_capture_opts o = {0};
  uint16_t ports[MAX_LIST];
  const char *hdrs[MAX_LIST + 1];
  struct dump d = {.key_header = "x-api-key"};
  bool stats = false;
  struct kw_capture *cap = NULL;
  char err[1024];
  int c, rc;

  while ((c = getopt(argc, argv, "csxk:p:H:f:")) != -1) {
    switch (c) {
    case 'c':
      d.count_only = true;
      break;
    case 'k':
      d.key_header = optarg;
      break;
    case 's':
      stats = true;
      break;
    case 'x':
      o.use_xff = true;
      break;
    case 'p': {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (*end != '\0' || v == 0 || v > 65535 || o.nports == MAX_LIST) {
        fprintf(stderr, "kw_pcapdump: bad port '%s'\n", optarg);
        return 2;
      }
      ports[o.nports++] = (uint16_t)v;
      break;
    }
    case 'H':
      if (o.nheaders == MAX_LIST)
        return 2;
      hdrs[o.nheaders++] = optarg;
      break;
    case 'f':
      o.bpf = optarg;
      break;
    default:
      fputs(USAGE, stderr);
      return 2;
    }
  }
  if (optind + 1 != argc) {
    fputs(USAGE, stderr);
    return 2;
  }
  d.key_len = strlen(d.key_header);
  hdrs[o.nheaders++] = d.key_header; /* kept, if it is not one of the built-in ones */
  o.ports = ports;
  o.headers = hdrs;
  if ((rc = kw_capture_open_file(argv[optind], &o, &cap, err, sizeof(err))) != 0) {
    fprintf(stderr, "kw_pcapdump: %s\n", err);
    return 2;
  }
  rc = kw_capture_run(cap, on_rec, &d, err, sizeof(err));
  if (d.count_only)
    printf("%llu\n", d.n);
  fflush(stdout);
  if (stats)
    print_stats(kw_capture_stats(cap));
  if (rc != 0)
    fprintf(stderr, "kw_pcapdump: %s\n", err);
  kw_capture_destroy(cap);
  return rc == 0 ? 0 : 1;
}
