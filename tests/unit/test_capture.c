/* test_capture.c — files and frames to records, end to end (collector/capture.c).
 *
 * The edge-case captures are written at test time by tests/fixtures/pcap/gen_pcaps.py
 * ($KW_FIXTURES/pcap/gen_pcaps.py, into a temp dir); the docstring of each case there says
 * what the file must give, and each test here asserts it.  A live capture on "lo" is tried
 * too, and skipped when the process may not capture.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collector/capture.h"
#include "sidecar/err.h"

#define KEY_A "mb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define KEY_B "mb_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="
#define T0_US 1700000000000000LL
#define MAXR 32

static char g_dir[PATH_MAX];

struct crec {
  int64_t ts, latency, req_bytes, resp_bytes;
  int status;
  uint64_t at_packet;
  char addr[64], method[16], uri[256], key[128];
};

struct run {
  struct kw_capture *cap;
  struct crec r[MAXR];
  int n;
  int rc;
  char err[1024];
  struct kw_capture_stats st;
  int stop_after; /* kw_capture_stop() after this many records (0: never) */
};

static void copy(char *dst, size_t cap, struct kw_str s) {
  size_t n = s.p == NULL ? 0 : (s.n < cap - 1 ? s.n : cap - 1);
  if (n > 0)
    memcpy(dst, s.p, n);
  dst[n] = '\0';
}

static void on_rec(const struct kw_rec *rec, size_t wire, void *ctx) {
  struct run *run = ctx;
  struct crec *c;
  (void)wire;
  assert_true(run->n < MAXR);
  c = &run->r[run->n++];
  memset(c, 0, sizeof(*c));
  c->ts = rec->ts_us;
  c->latency = rec->latency_us;
  c->req_bytes = rec->req_bytes;
  c->resp_bytes = rec->resp_bytes;
  c->status = rec->status;
  if (run->cap != NULL)
    c->at_packet = kw_capture_stats(run->cap)->packets;
  copy(c->addr, sizeof(c->addr), rec->addr);
  copy(c->method, sizeof(c->method), rec->method);
  copy(c->uri, sizeof(c->uri), rec->uri);
  for (size_t i = 0; i < rec->nhdrs; i++)
    if (rec->hdrs[i].name.n == 9 && memcmp(rec->hdrs[i].name.p, "x-api-key", 9) == 0)
      copy(c->key, sizeof(c->key), rec->hdrs[i].value);
  if (run->stop_after > 0 && run->n == run->stop_after)
    kw_capture_stop(run->cap);
}

static const char *path_of(const char *name) {
  static char p[PATH_MAX + 64];
  snprintf(p, sizeof(p), "%s/%s", g_dir, name);
  return p;
}

/* Opens and runs one generated file; open errors land in run->rc too. */
static void run_file(const char *name, const struct kw_capture_opts *o, struct run *run) {
  int stop = run->stop_after;
  memset(run, 0, sizeof(*run));
  run->stop_after = stop;
  run->rc = kw_capture_open_file(path_of(name), o, &run->cap, run->err, sizeof(run->err));
  if (run->rc != 0) {
    assert_null(run->cap);
    assert_true(run->err[0] != '\0');
    return;
  }
  run->rc = kw_capture_run(run->cap, on_rec, run, run->err, sizeof(run->err));
  run->st = *kw_capture_stats(run->cap);
  kw_capture_destroy(run->cap);
  run->cap = NULL;
}

static struct run *ok_file(const char *name, const struct kw_capture_opts *o) {
  static struct run run;
  run.stop_after = 0;
  run_file(name, o, &run);
  if (run.rc != 0)
    fail_msg("%s: %d %s", name, run.rc, run.err);
  return &run;
}

static void assert_rec(const struct crec *c, const char *method, const char *uri, int status) {
  assert_string_equal(c->method, method);
  assert_string_equal(c->uri, uri);
  assert_int_equal(c->status, status);
}

/* ------------------------------------------------------------ fixture files */

static int rm_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[PATH_MAX + 300];
  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  return rmdir(dir);
}

static int group_setup(void **state) {
  const char *fx = getenv("KW_FIXTURES");
  char gen[PATH_MAX];
  pid_t pid;
  int status;
  (void)state;

  if (fx == NULL) {
    fprintf(stderr, "KW_FIXTURES is not set (ctest sets it to tests/fixtures)\n");
    return -1;
  }
  snprintf(gen, sizeof(gen), "%s/pcap/gen_pcaps.py", fx);
  snprintf(g_dir, sizeof(g_dir), "%s/kw-pcaps.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(g_dir) == NULL)
    return -1;
  pid = fork();
  if (pid == 0) {
    execlp("python3", "python3", gen, g_dir, (char *)NULL);
    _exit(127);
  }
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    fprintf(stderr, "%s failed\n", gen);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  rm_dir(g_dir);
  return 0;
}

/* -------------------------------------------------------------------- tests */

static void test_basic(void **state) {
  struct run *r = ok_file("basic.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/api/card/1", 200);
  assert_string_equal(r->r[0].key, KEY_A);
  assert_string_equal(r->r[0].addr, "10.0.0.1");
  assert_int_equal(r->r[0].ts, T0_US + 4000);        /* the request's packet */
  assert_int_equal(r->r[0].latency, 2000);           /* its response, 2 ms later */
  assert_int_equal(r->r[0].resp_bytes, 11);
  assert_int_equal(r->r[0].at_packet, 6);            /* emitted at the response packet */
  assert_int_equal(r->st.packets, 10);
  assert_int_equal(r->st.records, 1);
  assert_int_equal(r->st.decode_errors + r->st.truncated + r->st.gaps + r->st.anomalies, 0);
  assert_int_equal(r->st.tcp.flows, 1);
}

static void test_pipelined(void **state) {
  static const char *uris[] = {"/a", "/b", "/c", "/d", "/e"};
  static const int status[] = {200, 200, 200, 404, 201};
  static const int64_t bytes[] = {11, 12, 0, 3, 0};
  struct run *r = ok_file("pipelined.pcap", NULL), again;
  (void)state;
  assert_int_equal(r->n, 5);
  for (int i = 0; i < 5; i++) {
    assert_string_equal(r->r[i].uri, uris[i]);
    assert_int_equal(r->r[i].status, status[i]);
    assert_int_equal(r->r[i].resp_bytes, bytes[i]);
  }
  assert_string_equal(r->r[2].method, "HEAD");
  assert_string_equal(r->r[1].key, KEY_B);
  assert_string_equal(r->r[4].method, "POST");
  assert_int_equal(r->st.http.parse_errors, 0);
  /* the same file gives the same records, in the same order, every time */
  again.stop_after = 0;
  run_file("pipelined.pcap", NULL, &again);
  assert_int_equal(again.n, r->n);
  for (int i = 0; i < r->n; i++) {
    assert_memory_equal(&again.r[i], &r->r[i], sizeof(r->r[i]));
  }
}

static void test_continue(void **state) {
  struct run *r = ok_file("continue.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "PUT", "/upload", 201);
  assert_int_equal(r->st.http.interim, 1);
  assert_in_range(r->r[0].latency, 56000, 58000); /* to the 201, not to the 100 */
  assert_true(r->r[0].req_bytes > 3000);
}

static void test_nobody(void **state) {
  struct run *r = ok_file("nobody.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 4);
  assert_rec(&r->r[0], "DELETE", "/x/1", 204);
  assert_rec(&r->r[1], "GET", "/x/2", 304);
  assert_rec(&r->r[2], "HEAD", "/x/3", 200);
  assert_rec(&r->r[3], "GET", "/after", 200);
  assert_int_equal(r->r[3].resp_bytes, 4);
  assert_int_equal(r->st.http.parse_errors, 0);
}

static void test_upgrade(void **state) {
  struct run *r = ok_file("upgrade.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 3);
  assert_rec(&r->r[0], "GET", "/ws", 101);
  assert_rec(&r->r[1], "GET", "/h2c", 200);
  assert_rec(&r->r[2], "GET", "/next", 200);
  assert_int_equal(r->st.http.flows_upgraded, 1);
  assert_int_equal(r->st.http.parse_errors, 0);
  assert_int_equal(r->st.http.orphan_responses, 0);
}

static void test_reordering(void **state) {
  struct run *r = ok_file("ooo.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/api/out-of-order/123", 200);
  assert_string_equal(r->r[0].key, KEY_A);
  assert_int_equal(r->r[0].resp_bytes, 64);
  assert_true(r->st.tcp.ooo_segments >= 2);
  assert_int_equal(r->st.gaps, 0);

  r = ok_file("retrans.pcap", NULL);
  assert_int_equal(r->n, 2);
  assert_rec(&r->r[0], "GET", "/r1", 200);
  assert_rec(&r->r[1], "GET", "/r2", 200);
  assert_int_equal(r->r[0].resp_bytes, 100);
  assert_true(r->st.tcp.retrans_segments >= 4);
  assert_int_equal(r->st.anomalies, 0);
  assert_int_equal(r->st.gaps, 0);

  r = ok_file("overlap_same.pcap", NULL);
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/api/ov/XXXXXXXX", 200);
  assert_int_equal(r->st.anomalies, 0);
  assert_true(r->st.tcp.overlap_bytes > 0);

  r = ok_file("overlap_diff.pcap", NULL);
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/api/ov/XXXXXXXX", 200); /* the first copy wins */
  assert_int_equal(r->st.anomalies, 1);
}

static void test_gaps(void **state) {
  struct run *r = ok_file("gap.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 2);
  assert_rec(&r->r[0], "GET", "/g1", 200);
  assert_int_equal(r->r[0].resp_bytes, 2000); /* bridged inside the body */
  assert_rec(&r->r[1], "GET", "/g3", 200);
  assert_int_equal(r->st.gaps, 2);
  assert_int_equal(r->st.gap_bytes, 500 + 120);
  assert_int_equal(r->st.http.gaps_bridged, 1);
  assert_int_equal(r->st.http.orphan_responses, 1);

  r = ok_file("snaplen.pcap", NULL);
  assert_int_equal(r->n, 2);
  assert_rec(&r->r[0], "GET", "/s1", 200);
  assert_rec(&r->r[1], "GET", "/s2", 200);
  assert_int_equal(r->r[0].resp_bytes, 1000);
  assert_int_equal(r->r[1].resp_bytes, 1000);
  assert_true(r->st.gap_bytes > 0);
  assert_int_equal(r->st.decode_errors + r->st.truncated, 0);
}

static void test_synless_and_unanswered(void **state) {
  struct run *r = ok_file("synless.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/seen", 200);
  assert_string_equal(r->r[0].addr, "10.0.0.1");
  assert_int_equal(r->st.http.orphan_responses, 1);

  r = ok_file("noresp.pcap", NULL);
  assert_int_equal(r->n, 3);
  assert_rec(&r->r[0], "GET", "/lost1", 0);
  assert_rec(&r->r[1], "GET", "/lost2", 0);
  assert_rec(&r->r[2], "GET", "/late", 200);
  assert_int_equal(r->r[1].resp_bytes, -1);
  assert_int_equal(r->r[1].latency, -1);
  assert_int_equal(r->st.tcp.flows_timed_out, 1);
  assert_int_equal(r->st.http.unanswered, 2);

  r = ok_file("close_delimited.pcap", NULL);
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/old", 200);
  assert_int_equal(r->r[0].resp_bytes, 26);
  assert_string_equal(r->r[0].key, KEY_B);
}

static void test_not_http(void **state) {
  struct run *r = ok_file("nonhttp.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/real", 200);
  assert_int_equal(r->st.non_http_flows, 2);
  assert_int_equal(r->st.http.flows_http, 1);
}

static void test_xff(void **state) {
  struct kw_capture_opts o = {.use_xff = true};
  struct run *r = ok_file("xff.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 2);
  assert_string_equal(r->r[0].addr, "10.0.0.1");
  r = ok_file("xff.pcap", &o);
  assert_int_equal(r->n, 2);
  assert_string_equal(r->r[0].addr, "203.0.113.9");
  assert_string_equal(r->r[1].addr, "10.0.0.1"); /* "unknown" is no address */
}

static void test_header_bound(void **state) {
  struct run *r = ok_file("many_keys.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/many", 200);
  assert_int_equal(r->st.http.dropped_headers, 6); /* 22 wanted headers, 16 slots */
}

static void test_link_types(void **state) {
  static const struct {
    const char *file, *addr, *uri;
  } cases[] = {
      {"eth.pcap", "10.0.0.1", "/api/link"},      {"eth6.pcap", "2001:db8::1", "/api/link"},
      {"eth.pcapng", "10.0.0.1", "/api/link"},    {"sll.pcap", "10.0.0.1", "/api/link"},
      {"sll2.pcap", "2001:db8::1", "/api/link"},  {"null_le.pcap", "10.0.0.1", "/api/link"},
      {"null_be6.pcap", "2001:db8::1", "/api/link"}, {"loop.pcap", "2001:db8::1", "/api/link"},
      {"raw.pcap", "10.0.0.1", "/api/link"},      {"raw6.pcap", "2001:db8::1", "/api/link"},
      {"ipv4.pcap", "10.0.0.1", "/api/link"},     {"ipv6.pcap", "2001:db8::1", "/api/link"},
      {"hdlc.pcap", "10.0.0.1", "/api/link"},     {"vlan.pcap", "10.0.0.1", "/api/vlan"},
      {"qinq.pcap", "2001:db8::1", "/api/qinq"},  {"eth_ipv6_ext.pcap", "2001:db8::1", "/api/ext"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    struct run *r = ok_file(cases[i].file, NULL);
    if (r->n != 1)
      fail_msg("%s: %d records", cases[i].file, r->n);
    assert_rec(&r->r[0], "GET", cases[i].uri, 200);
    assert_string_equal(r->r[0].addr, cases[i].addr);
    assert_string_equal(r->r[0].key, KEY_A);
    assert_int_equal(r->st.decode_errors + r->st.not_tcp + r->st.truncated, 0);
  }
}

static void test_fragments(void **state) {
  struct run *r;
  (void)state;
  r = ok_file("frag.pcap", NULL);
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/api/fragmented/request/with/a/long/path", 200);
  assert_true(r->st.ip.frag_reassembled >= 2); /* request and response */
  assert_int_equal(r->st.anomalies, 0);
  r = ok_file("frag6.pcap", NULL);
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/api/fragmented/request/with/a/long/path", 200);
  assert_string_equal(r->r[0].addr, "2001:db8::1");
  r = ok_file("frag_overlap.pcap", NULL);
  assert_int_equal(r->n, 1);
  assert_rec(&r->r[0], "GET", "/api/fragmented/request/with/a/long/path", 200);
  assert_true(r->st.ip.frag_overlap_diff >= 1);
  assert_true(r->st.anomalies >= 1);
}

static void test_damaged_files(void **state) {
  struct run r = {0};
  (void)state;
  run_file("truncated.pcap", NULL, &r);
  assert_int_equal(r.rc, KW_EPARSE);
  assert_non_null(strstr(r.err, "truncated.pcap"));
  assert_non_null(strstr(r.err, "truncated dump file"));
  assert_int_equal(r.n, 3); /* the two complete, then the pending one flushed */
  assert_rec(&r.r[0], "GET", "/t1", 200);
  assert_rec(&r.r[1], "GET", "/t2", 200);
  assert_rec(&r.r[2], "GET", "/t3", 0);

  run_file("absurd_caplen.pcap", NULL, &r);
  assert_int_equal(r.rc, KW_EPARSE);
  assert_non_null(strstr(r.err, "absurd_caplen.pcap"));
  assert_int_equal(r.n, 1);
  assert_rec(&r.r[0], "GET", "/before", 200);

  run_file("bad_magic.pcap", NULL, &r);
  assert_int_equal(r.rc, KW_EFORMAT);
  assert_non_null(strstr(r.err, "bad_magic.pcap"));
  run_file("short.pcap", NULL, &r);
  assert_int_equal(r.rc, KW_EFORMAT);
  assert_non_null(strstr(r.err, "short.pcap"));
  run_file("no-such-file.pcap", NULL, &r);
  assert_int_equal(r.rc, -ENOENT);
  assert_non_null(strstr(r.err, "no-such-file.pcap"));
}

static void test_garbage_frames(void **state) {
  struct run *r = ok_file("garbage_frames.pcap", NULL);
  bool survivor = false;
  (void)state;
  for (int i = 0; i < r->n; i++)
    if (strcmp(r->r[i].uri, "/survivor") == 0 && r->r[i].status == 200)
      survivor = true;
  assert_true(survivor);
  assert_true(r->st.decode_errors >= 6);
  assert_true(r->st.not_tcp >= 3);
  assert_true(r->st.truncated >= 1);
  assert_true(r->st.ip.frag_dropped >= 1);
}

static void test_ports_and_filters(void **state) {
  uint16_t p80[] = {80}, both[] = {80, 8080};
  struct kw_capture_opts o = {.ports = p80, .nports = 1};
  struct run *r;
  struct run bad = {0};
  (void)state;
  r = ok_file("ports.pcap", &o);
  assert_int_equal(r->n, 1);
  assert_string_equal(r->r[0].uri, "/p80");
  assert_true(r->st.other_ports > 0);
  assert_int_equal(r->st.tcp.flows, 1);
  o.ports = both;
  o.nports = 2;
  r = ok_file("ports.pcap", &o);
  assert_int_equal(r->n, 2);
  r = ok_file("ports.pcap", NULL);
  assert_int_equal(r->n, 3);
  o = (struct kw_capture_opts){.bpf = "tcp port 8080"};
  r = ok_file("ports.pcap", &o);
  assert_int_equal(r->n, 1);
  assert_string_equal(r->r[0].uri, "/p8080");
  o.bpf = "tcp port banana";
  run_file("ports.pcap", &o, &bad);
  assert_int_equal(bad.rc, KW_EINVAL);
  assert_non_null(strstr(bad.err, "banana"));
  const char *hdr[] = {"a-header-name-that-is-far-too-long-to-be-kept-by-the-http-layer-at-all"};
  o = (struct kw_capture_opts){.headers = hdr, .nheaders = 1};
  run_file("ports.pcap", &o, &bad);
  assert_int_equal(bad.rc, KW_EINVAL);
}

static void test_reuse(void **state) {
  struct run *r = ok_file("reuse.pcap", NULL);
  (void)state;
  assert_int_equal(r->n, 2);
  assert_string_equal(r->r[0].uri, "/first");
  assert_string_equal(r->r[1].uri, "/second");
  assert_int_equal(r->st.tcp.flows, 2);
}

static void test_stop(void **state) {
  struct run r = {.stop_after = 2};
  (void)state;
  run_file("pipelined.pcap", NULL, &r);
  assert_int_equal(r.rc, KW_ECANCELED);
  assert_int_equal(r.n, 2);
}

/* Frames read here with libpcap and fed one by one give what kw_capture_run gives. */
static void test_feed(void **state) {
  char perr[PCAP_ERRBUF_SIZE], err[512];
  struct pcap_pkthdr *h;
  const u_char *d;
  struct kw_capture *cap = NULL;
  static struct run r;
  pcap_t *p;
  (void)state;

  for (int filtered = 0; filtered < 2; filtered++) {
    struct kw_capture_opts o = {.bpf = filtered ? "port 9999" : NULL};
    memset(&r, 0, sizeof(r));
    p = pcap_open_offline(path_of("pipelined.pcap"), perr);
    assert_non_null(p);
    assert_int_equal(kw_capture_create(&o, pcap_datalink(p), on_rec, &r, &cap, err, sizeof(err)), 0);
    r.cap = cap;
    while (pcap_next_ex(p, &h, &d) == 1)
      kw_capture_feed(cap, d, h->caplen, h->len,
                      (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec);
    kw_capture_flush(cap);
    assert_int_equal(kw_capture_run(cap, on_rec, &r, err, sizeof(err)), KW_EINVAL);
    assert_int_equal(kw_capture_offset(cap), -1);
    assert_int_equal(kw_capture_fd(cap), -1);
    if (filtered) {
      assert_int_equal(r.n, 0);
      assert_int_equal(kw_capture_stats(cap)->filtered, kw_capture_stats(cap)->packets);
    } else {
      assert_int_equal(r.n, 5);
      assert_string_equal(r.r[4].uri, "/e");
    }
    kw_capture_destroy(cap);
    pcap_close(p);
  }
  /* a link type the decoder does not know */
  assert_int_equal(kw_capture_create(NULL, 147, on_rec, &r, &cap, err, sizeof(err)),
                   KW_EFORMAT);
  assert_null(cap);
  assert_non_null(strstr(err, "not supported"));
  kw_capture_destroy(NULL);
}

static void test_unsupported_file(void **state) {
  char path[PATH_MAX + 64], err[512];
  struct kw_capture *cap = NULL;
  FILE *f;
  uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 147};
  (void)state;
  snprintf(path, sizeof(path), "%s/user0.pcap", g_dir);
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(hdr, 1, sizeof(hdr), f), sizeof(hdr));
  fclose(f);
  assert_int_equal(kw_capture_open_file(path, NULL, &cap, err, sizeof(err)), KW_EFORMAT);
  assert_null(cap);
  assert_non_null(strstr(err, "user0.pcap"));
  assert_non_null(strstr(err, "not supported"));
}

/* A live capture on the loopback interface: needs CAP_NET_RAW, skipped without it. */
static void test_live_loopback(void **state) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t sl = sizeof(sa);
  char bpf[64], err[512], buf[512];
  uint16_t port;
  int ls, cs, as;
  struct kw_capture *cap = NULL;
  static struct run r;
  (void)state;

  memset(&r, 0, sizeof(r));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ls = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(ls >= 0);
  assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(ls, 1), 0);
  assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
  port = ntohs(sa.sin_port);
  snprintf(bpf, sizeof(bpf), "tcp port %u", port);
  struct kw_capture_opts o = {.bpf = bpf, .ports = &port, .nports = 1};
  if (kw_capture_open_live("lo", &o, on_rec, &r, &cap, err, sizeof(err)) != 0) {
    close(ls);
    fprintf(stderr, "live capture not possible here (%s): skipped\n", err);
    skip();
  }
  r.cap = cap;
  assert_true(kw_capture_fd(cap) >= 0);
  cs = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(cs, (struct sockaddr *)&sa, sizeof(sa)), 0);
  as = accept(ls, NULL, NULL);
  assert_true(as >= 0);
  static const char rq[] = "GET /live HTTP/1.1\r\nHost: x\r\nX-API-Key: " KEY_A "\r\n\r\n";
  static const char rs[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlive";
  assert_int_equal(write(cs, rq, sizeof(rq) - 1), (ssize_t)(sizeof(rq) - 1));
  assert_true(read(as, buf, sizeof(buf)) > 0);
  assert_int_equal(write(as, rs, sizeof(rs) - 1), (ssize_t)(sizeof(rs) - 1));
  assert_true(read(cs, buf, sizeof(buf)) > 0);
  for (int i = 0; i < 50 && r.n == 0; i++) {
    struct pollfd pfd = {.fd = kw_capture_fd(cap), .events = POLLIN};
    poll(&pfd, 1, 100);
    assert_true(kw_capture_dispatch(cap, 0, err, sizeof(err)) >= 0);
  }
  close(cs);
  close(as);
  close(ls);
  assert_int_equal(r.n, 1);
  assert_rec(&r.r[0], "GET", "/live", 200);
  assert_string_equal(r.r[0].key, KEY_A);
  assert_string_equal(r.r[0].addr, "127.0.0.1");
  assert_true(kw_capture_stats(cap)->pcap_received >= 4);
  kw_capture_tick(cap, (int64_t)time(NULL) * 1000000 + 3600LL * 1000000);
  kw_capture_destroy(cap);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_continue),
      cmocka_unit_test(test_nobody),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_reordering),
      cmocka_unit_test(test_gaps),
      cmocka_unit_test(test_synless_and_unanswered),
      cmocka_unit_test(test_not_http),
      cmocka_unit_test(test_xff),
      cmocka_unit_test(test_header_bound),
      cmocka_unit_test(test_link_types),
      cmocka_unit_test(test_fragments),
      cmocka_unit_test(test_damaged_files),
      cmocka_unit_test(test_garbage_frames),
      cmocka_unit_test(test_ports_and_filters),
      cmocka_unit_test(test_reuse),
      cmocka_unit_test(test_stop),
      cmocka_unit_test(test_feed),
      cmocka_unit_test(test_unsupported_file),
      cmocka_unit_test(test_live_loopback),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
