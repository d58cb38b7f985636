/* test_httpflow.c — HTTP/1.x transactions from streams (collector/httpflow.c).
 *
 * The HTTP layer is driven through its kw_tcpreasm_ops directly, as the reassembler would:
 * on_open with a flow's endpoints, then in-order bytes, gaps and FINs per direction.
 * Records are deep-copied in the callback (their strings live only that long).
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

#include "collector/httpflow.h"
#include "sidecar/err.h"

#define MAXR 64

struct crec { /* a copied record */
  int64_t ts, latency, req_bytes, resp_bytes;
  int status;
  size_t wire;
  char addr[64], method[16], uri[4096], proto[16], host[128], ua[128];
  size_t nh;
  char hname[KW_REC_MAX_HDRS][64], hval[KW_REC_MAX_HDRS][4096];
};

static struct crec R[MAXR];
static int NR;

static void copy(char *dst, size_t cap, struct kw_str s) {
  if (s.p == NULL) {
    snprintf(dst, cap, "(null)");
    return;
  }
  assert_true(s.n < cap);
  memcpy(dst, s.p, s.n);
  dst[s.n] = '\0';
}

static void on_rec(const struct kw_rec *rec, size_t wire, void *ctx) {
  struct crec *c;
  (void)ctx;
  assert_true(NR < MAXR);
  c = &R[NR++];
  memset(c, 0, sizeof(*c));
  c->ts = rec->ts_us;
  c->latency = rec->latency_us;
  c->req_bytes = rec->req_bytes;
  c->resp_bytes = rec->resp_bytes;
  c->status = rec->status;
  c->wire = wire;
  copy(c->addr, sizeof(c->addr), rec->addr);
  copy(c->method, sizeof(c->method), rec->method);
  copy(c->uri, sizeof(c->uri), rec->uri);
  copy(c->proto, sizeof(c->proto), rec->proto);
  copy(c->host, sizeof(c->host), rec->host);
  copy(c->ua, sizeof(c->ua), rec->user_agent);
  c->nh = rec->nhdrs;
  for (size_t i = 0; i < rec->nhdrs; i++) {
    copy(c->hname[i], sizeof(c->hname[i]), rec->hdrs[i].name);
    copy(c->hval[i], sizeof(c->hval[i]), rec->hdrs[i].value);
  }
}

static const char *hdr(const struct crec *c, const char *name) {
  for (size_t i = 0; i < c->nh; i++)
    if (strcmp(c->hname[i], name) == 0)
      return c->hval[i];
  return NULL;
}

/* ------------------------------------------------------------------ harness */

struct h {
  struct kw_httpflow *hf;
  void *user;
  int64_t now;
  bool ignored, closed;
};

static struct h H;

static void make(const struct kw_httpflow_opts *o) {
  memset(&H, 0, sizeof(H));
  NR = 0;
  assert_int_equal(kw_httpflow_create(o, on_rec, NULL, &H.hf), 0);
  H.now = 1700000000000000LL;
}

static void open_flow(bool syn_seen, uint16_t port0, uint16_t port1) {
  struct kw_tcpflow_info info;
  memset(&info, 0, sizeof(info));
  info.ep[0].family = info.ep[1].family = 4;
  info.ep[0].addr[0] = 10, info.ep[0].addr[3] = 1;
  info.ep[1].addr[0] = 10, info.ep[1].addr[3] = 2;
  info.ep[0].port = port0;
  info.ep[1].port = port1;
  info.syn_seen = syn_seen;
  info.start_us = H.now;
  H.ignored = kw_httpflow_ops.on_open(H.hf, &info, &H.user) == KW_TCPREASM_IGNORE;
  H.closed = false;
}

/* Delivers n bytes of s on dir, from an exact-size heap copy, `step` bytes per call
 * (0: all at once). */
static void data_n(int dir, const char *s, size_t n, size_t step, int64_t dt) {
  H.now += dt;
  if (step == 0)
    step = n;
  for (size_t off = 0; off < n && !H.ignored; off += step) {
    size_t k = n - off < step ? n - off : step;
    char *p = malloc(k);
    assert_non_null(p);
    memcpy(p, s + off, k);
    if (kw_httpflow_ops.on_data(H.hf, H.user, dir, (const uint8_t *)p, k, H.now) ==
        KW_TCPREASM_IGNORE)
      H.ignored = true;
    free(p);
  }
}

static void data(int dir, const char *s) { data_n(dir, s, strlen(s), 0, 1000); }

static void gap(int dir, uint64_t n) {
  H.now += 1000;
  if (!H.ignored &&
      kw_httpflow_ops.on_gap(H.hf, H.user, dir, n, H.now) == KW_TCPREASM_IGNORE)
    H.ignored = true;
}

static void fin(int dir) {
  H.now += 1000;
  if (!H.ignored && kw_httpflow_ops.on_fin(H.hf, H.user, dir, H.now) == KW_TCPREASM_IGNORE)
    H.ignored = true;
}

static void close_flow(enum kw_tcpreasm_close why) {
  H.now += 1000;
  kw_httpflow_ops.on_close(H.hf, H.user, why, H.now);
  H.closed = true;
}

static int teardown(void **state) {
  (void)state;
  if (!H.closed && H.hf != NULL)
    close_flow(KW_TCPREASM_CLOSE_DESTROY);
  kw_httpflow_destroy(H.hf);
  H.hf = NULL;
  return 0;
}

static const struct kw_httpflow_stats *st(void) { return kw_httpflow_stats(H.hf); }

#define KEY "mb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define GET(uri) "GET " uri " HTTP/1.1\r\nHost: api.example\r\nX-API-Key: " KEY "\r\n\r\n"
#define OK(body) "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n" body

static char *fmt_ok(const char *body) {
  static char b[4096];
  snprintf(b, sizeof(b), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body),
           body);
  return b;
}

/* -------------------------------------------------------------------- tests */

static void test_simple_fields(void **state) {
  const char *rq = "GET /api/card/1?x=1 HTTP/1.1\r\n"
                   "Host: api.example\r\n"
                   "User-Agent: curl/8.5.0\r\n"
                   "X-API-KEY: " KEY "\r\n"      /* any case: kept lower-cased */
                   "Authorization: Bearer tok\r\n"
                   "Cookie: session=secret\r\n"  /* not kept */
                   "Accept: */*\r\n"
                   "X-Custom-Key: custom\r\n"    /* kept: configured */
                   "\r\n";
  const char *custom[] = {"X-Custom-Key"};
  struct kw_httpflow_opts o = {.headers = custom, .nheaders = 1};
  (void)state;
  make(&o);
  open_flow(true, 40000, 80);
  data(0, rq);
  int64_t t_req = H.now;
  data(1, fmt_ok("{\"ok\":true}"));
  int64_t t_resp = H.now;
  assert_int_equal(NR, 1);
  struct crec *c = &R[0];
  assert_string_equal(c->method, "GET");
  assert_string_equal(c->uri, "/api/card/1?x=1");
  assert_string_equal(c->proto, "HTTP/1.1");
  assert_string_equal(c->host, "api.example");
  assert_string_equal(c->ua, "curl/8.5.0");
  assert_string_equal(c->addr, "10.0.0.1");
  assert_int_equal(c->status, 200);
  assert_int_equal(c->ts, t_req);
  assert_int_equal(c->latency, t_resp - t_req);
  assert_int_equal(c->req_bytes, strlen(rq));
  assert_int_equal(c->resp_bytes, 11);
  assert_int_equal(c->wire, strlen(rq) + strlen(fmt_ok("{\"ok\":true}")));
  assert_string_equal(hdr(c, "x-api-key"), KEY);
  assert_string_equal(hdr(c, "authorization"), "Bearer tok");
  assert_string_equal(hdr(c, "x-custom-key"), "custom");
  assert_string_equal(hdr(c, "host"), "api.example");
  assert_null(hdr(c, "cookie"));
  assert_null(hdr(c, "accept"));
  assert_int_equal(c->nh, 5);
  assert_int_equal(st()->flows_http, 1);
  assert_int_equal(st()->records, 1);
}

/* Byte-by-byte delivery gives exactly what one-shot delivery gives. */
static void test_split_everywhere(void **state) {
  static const char rq[] = GET("/a") "POST /b HTTP/1.1\r\nX-Api-Key: k2\r\nTransfer-Encoding: "
                                     "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" GET("/c");
  static const char rs[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                           "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "4\r\nabcd\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
                           "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  struct crec one[3];
  (void)state;
  for (int pass = 0; pass < 2; pass++) {
    make(NULL);
    open_flow(true, 40000, 80);
    data_n(0, rq, sizeof(rq) - 1, pass ? 1 : 0, 1000);
    data_n(1, rs, sizeof(rs) - 1, pass ? 1 : 0, 1000);
    assert_int_equal(NR, 3);
    assert_string_equal(R[0].uri, "/a");
    assert_string_equal(R[1].method, "POST");
    assert_string_equal(hdr(&R[1], "x-api-key"), "k2");
    assert_int_equal(R[1].status, 201);
    assert_int_equal(R[1].resp_bytes, 20);
    assert_int_equal(R[2].status, 404);
    assert_int_equal(R[2].resp_bytes, 0);
    if (pass == 0) {
      memcpy(one, R, sizeof(one));
    } else {
      for (int i = 0; i < 3; i++) {
        assert_string_equal(one[i].uri, R[i].uri);
        assert_int_equal(one[i].req_bytes, R[i].req_bytes);
        assert_int_equal(one[i].resp_bytes, R[i].resp_bytes);
        assert_int_equal(one[i].nh, R[i].nh);
        assert_int_equal(one[i].wire, R[i].wire);
      }
    }
    teardown(state);
  }
}

static void test_pipelining(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, GET("/1") GET("/2") GET("/3"));
  data(1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
  assert_int_equal(NR, 1);
  data(1, "HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nbbHTTP/1.1 302 Found\r\n"
          "Content-Length: 0\r\n\r\n");
  assert_int_equal(NR, 3);
  assert_string_equal(R[0].uri, "/1");
  assert_int_equal(R[0].status, 200);
  assert_string_equal(R[1].uri, "/2");
  assert_int_equal(R[1].status, 500);
  assert_string_equal(R[2].uri, "/3");
  assert_int_equal(R[2].status, 302);
  assert_true(R[0].latency < R[1].latency); /* all sent at once, answered later */
}

static void test_continue_and_nobody(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, "PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  int64_t t_req = H.now;
  data(1, "HTTP/1.1 100 Continue\r\n\r\n");
  assert_int_equal(NR, 0);
  data(0, "body");
  data_n(1, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 45, 0, 50000);
  assert_int_equal(NR, 1);
  assert_int_equal(R[0].status, 201);
  assert_int_equal(R[0].latency, H.now - t_req);
  assert_int_equal(st()->interim, 1);
  /* no bodies, whatever Content-Length says: HEAD, 204, 304; then a normal response */
  data(0, "HEAD /h HTTP/1.1\r\n\r\n" "DELETE /d HTTP/1.1\r\n\r\n" GET("/n") GET("/after"));
  data(1, "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"
          "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"
          "HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n"
          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes");
  assert_int_equal(NR, 5);
  assert_int_equal(R[1].status, 200);
  assert_int_equal(R[1].resp_bytes, 0);
  assert_int_equal(R[2].status, 204);
  assert_int_equal(R[3].status, 304);
  assert_int_equal(R[4].status, 200);
  assert_int_equal(R[4].resp_bytes, 3);
  assert_int_equal(st()->parse_errors, 0);
}

static void test_upgrade(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  data(1, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "\r\n\x81\x02hi");
  assert_true(H.ignored);
  assert_int_equal(NR, 1);
  assert_int_equal(R[0].status, 101);
  assert_int_equal(st()->flows_upgraded, 1);
  close_flow(KW_TCPREASM_CLOSE_FIN);
  assert_int_equal(NR, 1);
  assert_int_equal(st()->parse_errors, 0);
  /* refused: HTTP goes on */
  open_flow(true, 40001, 80);
  data(0, "GET /h2 HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n");
  data(1, fmt_ok("no"));
  data(0, GET("/next"));
  data(1, fmt_ok("yes"));
  assert_int_equal(NR, 3);
  assert_string_equal(R[2].uri, "/next");
  close_flow(KW_TCPREASM_CLOSE_FIN);
  /* CONNECT 200: a tunnel */
  open_flow(true, 40002, 80);
  data(0, "CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n");
  data(1, "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01");
  assert_true(H.ignored);
  assert_int_equal(NR, 4);
  assert_string_equal(R[3].method, "CONNECT");
  assert_string_equal(R[3].uri, "db.internal:5432");
}

static void test_unanswered(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, GET("/1") GET("/2"));
  data(1, fmt_ok("x"));
  assert_int_equal(NR, 1);
  data(0, "GET /cut HTTP/1.1\r\nHost: a"); /* head never completes */
  close_flow(KW_TCPREASM_CLOSE_TIMEOUT);
  assert_int_equal(NR, 2);
  assert_string_equal(R[1].uri, "/2");
  assert_int_equal(R[1].status, 0);
  assert_int_equal(R[1].resp_bytes, -1);
  assert_int_equal(R[1].latency, -1);
  assert_int_equal(st()->unanswered, 1);
  assert_int_equal(st()->incomplete, 1);
  /* a response whose body is cut by the end still tells its status */
  open_flow(true, 40001, 80);
  data(0, GET("/partial"));
  data(1, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly");
  close_flow(KW_TCPREASM_CLOSE_RST);
  assert_int_equal(NR, 3);
  assert_int_equal(R[2].status, 200);
  assert_int_equal(R[2].resp_bytes, 4);
}

static void test_early_response_and_orphan(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, "POST /upload HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234");
  data(1, "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n");
  assert_int_equal(NR, 0); /* waits for its request to end */
  data(0, "56789");
  assert_int_equal(NR, 1);
  assert_int_equal(R[0].status, 413);
  assert_int_equal(R[0].req_bytes, 55);
  data(1, fmt_ok("nobody asked"));
  assert_int_equal(st()->orphan_responses, 1);
  data(0, GET("/then"));
  data(1, fmt_ok("fine"));
  assert_int_equal(NR, 2);
  assert_int_equal(R[1].status, 200);
}

static void test_close_delimited(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, "GET /old HTTP/1.0\r\n\r\n");
  data(1, "HTTP/1.0 200 OK\r\n\r\nall of this until the end");
  assert_int_equal(NR, 0);
  fin(1);
  assert_int_equal(NR, 1);
  assert_string_equal(R[0].proto, "HTTP/1.0");
  assert_int_equal(R[0].resp_bytes, 25);
}

static void test_not_http(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 443);
  data(0, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
  assert_true(H.ignored);
  close_flow(KW_TCPREASM_CLOSE_FIN);
  open_flow(true, 40001, 80); /* the server speaks first */
  data(1, "SSH-2.0-OpenSSH_9.2\r\n");
  assert_true(H.ignored);
  close_flow(KW_TCPREASM_CLOSE_FIN);
  assert_int_equal(st()->flows_non_http, 2);
  assert_int_equal(st()->flows_http, 0);
  /* without a SYN, searching stops after max_sync_scan bytes */
  teardown(state);
  struct kw_httpflow_opts o = {.max_sync_scan = 2000};
  make(&o);
  open_flow(false, 40002, 80);
  char junk[1000];
  memset(junk, 'j', sizeof(junk));
  for (int i = 0; i < 3 && !H.ignored; i++)
    data_n(0, junk, sizeof(junk), 0, 1000);
  assert_true(H.ignored);
  assert_int_equal(st()->flows_non_http, 1);
  assert_int_equal(NR, 0);
}

static void test_synless_resync(void **state) {
  (void)state;
  make(NULL);
  /* the capture starts in the middle: direction 0 is the server (port 80) */
  open_flow(false, 80, 40000);
  data(0, "ody of an earlier response\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  data(1, "tail of a body\r\n" GET("/found"));
  data(0, fmt_ok("found"));
  assert_int_equal(NR, 1);
  assert_string_equal(R[0].uri, "/found");
  assert_string_equal(R[0].addr, "10.0.0.2"); /* the client is ep[1] */
  assert_int_equal(st()->orphan_responses, 1);
  assert_true(st()->resync_bytes > 0);
  close_flow(KW_TCPREASM_CLOSE_FIN);
  /* any port: the content decides which side is the client */
  teardown(state);
  make(NULL);
  open_flow(false, 5555, 6666);
  data(1, "HTTP/1.1 204 No Content\r\n\r\n");
  data(0, GET("/by-content"));
  data(1, "HTTP/1.1 204 No Content\r\n\r\n");
  assert_int_equal(NR, 1);
  assert_string_equal(R[0].addr, "10.0.0.1");
  assert_int_equal(R[0].status, 204);
}

static void test_gaps(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  /* a loss inside a Content-Length body: bridged */
  data(0, GET("/g1"));
  data(1, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
  gap(1, 900);
  char rest[90];
  memset(rest, 'x', sizeof(rest));
  data_n(1, rest, sizeof(rest), 0, 1000);
  assert_int_equal(NR, 1);
  assert_int_equal(R[0].resp_bytes, 1000);
  assert_int_equal(st()->gaps_bridged, 1);
  /* a loss that takes a whole response: the waiting request is answered by nobody */
  data(0, GET("/g2"));
  gap(1, 300);
  assert_int_equal(NR, 2);
  assert_string_equal(R[1].uri, "/g2");
  assert_int_equal(R[1].status, 0);
  data(0, GET("/g3"));
  data(1, fmt_ok("three"));
  assert_int_equal(NR, 3);
  assert_string_equal(R[2].uri, "/g3");
  assert_int_equal(R[2].status, 200);
  /* a loss in a request head: the request is kept (as far as it got), the stream resyncs
   * at the next segment that starts a request */
  data(0, "GET /g4 HTTP/1.1\r\nHost: a");
  gap(0, 50);
  data(0, GET("/g5"));
  data(1, fmt_ok("4") );
  data(1, fmt_ok("5"));
  assert_int_equal(NR, 5);
  assert_string_equal(R[3].uri, "/g4");
  assert_int_equal(R[3].status, 200);
  assert_string_equal(R[4].uri, "/g5");
  assert_int_equal(st()->gaps_desync, 2);
  assert_int_equal(st()->resyncs, 2);
  /* a loss in a chunked body cannot be bridged */
  data(0, GET("/g6"));
  data(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
  gap(1, 10);
  assert_int_equal(NR, 6);
  assert_int_equal(R[5].status, 200);
  assert_int_equal(st()->parse_errors, 0);
}

static void test_parse_error_resync(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, GET("/ok"));
  data(1, fmt_ok("1"));
  data(0, "GET /bad HTTP/1.1\r\nContent-Length: 12x\r\n\r\n" GET("/good"));
  data(1, fmt_ok("2"));
  data(1, fmt_ok("3"));
  assert_int_equal(st()->parse_errors, 1);
  assert_int_equal(NR, 3);
  assert_string_equal(R[1].uri, "/bad"); /* kept as far as it parsed */
  assert_string_equal(R[2].uri, "/good");
  assert_int_equal(R[2].status, 200);
}

/* Requests a strict parser would reject are still calls: they are recorded with the
 * server's answer. */
static void test_lenient(void **state) {
  (void)state;
  make(NULL);
  open_flow(true, 40000, 80);
  data(0, "POST /smuggle HTTP/1.1\r\nX-API-Key: k\r\nContent-Length: 3\r\n"
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  data(1, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  data(0, "GET /odd HTTP/1.1\r\nX-API-Key: k2\r\nX-Odd: a\x01b\r\n\r\n");
  data(1, fmt_ok("odd"));
  assert_int_equal(NR, 2);
  assert_string_equal(R[0].uri, "/smuggle");
  assert_int_equal(R[0].status, 400);
  assert_string_equal(hdr(&R[0], "x-api-key"), "k");
  assert_string_equal(R[1].uri, "/odd");
  assert_string_equal(hdr(&R[1], "x-api-key"), "k2");
  assert_int_equal(st()->parse_errors, 0);
}

static void test_xff(void **state) {
  struct kw_httpflow_opts o = {.use_xff = true};
  (void)state;
  for (int pass = 0; pass < 2; pass++) {
    make(pass ? &o : NULL);
    open_flow(true, 40000, 80);
    data(0, "GET /x HTTP/1.1\r\nX-Forwarded-For:  203.0.113.9 , 10.1.1.1\r\n\r\n"
            "GET /y HTTP/1.1\r\nX-Forwarded-For: not-an-address\r\n\r\n"
            "GET /z HTTP/1.1\r\nX-Forwarded-For: 2001:db8::7\r\n\r\n");
    data(1, fmt_ok("a"));
    data(1, fmt_ok("b"));
    data(1, fmt_ok("c"));
    assert_int_equal(NR, 3);
    assert_string_equal(R[0].addr, pass ? "203.0.113.9" : "10.0.0.1");
    assert_string_equal(R[1].addr, "10.0.0.1");
    assert_string_equal(R[2].addr, pass ? "2001:db8::7" : "10.0.0.1");
    assert_string_equal(hdr(&R[0], "x-forwarded-for"), "203.0.113.9 , 10.1.1.1");
    teardown(state);
  }
}

static void test_bounds(void **state) {
  struct kw_httpflow_opts o = {.max_pipeline = 2, .max_request_bytes = 1024};
  char longuri[3000], rq[3200];
  (void)state;
  make(&o);
  open_flow(true, 40000, 80);
  data(0, GET("/1") GET("/2") GET("/3") GET("/4"));
  /* no room for 4 unanswered requests: the oldest are emitted unanswered */
  assert_int_equal(st()->pending_drops, 2);
  assert_int_equal(NR, 2);
  assert_string_equal(R[0].uri, "/1");
  assert_int_equal(R[0].status, 0);
  data(1, fmt_ok("3"));
  assert_int_equal(NR, 3);
  assert_string_equal(R[2].uri, "/3");
  data(1, fmt_ok("4"));
  memset(longuri, 'u', sizeof(longuri) - 1);
  longuri[0] = '/';
  longuri[sizeof(longuri) - 1] = '\0';
  snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nX-API-Key: lost-in-the-cut\r\n\r\n", longuri);
  data(0, rq);
  data(1, fmt_ok("5"));
  assert_int_equal(NR, 5);
  assert_int_equal(strlen(R[4].uri), 1024);
  assert_int_equal(st()->truncated_fields, 2); /* the URI, then the key: no room left */
  assert_int_equal(R[4].req_bytes, strlen(rq));
  teardown(state);
  /* all flows together: max_pending */
  struct kw_httpflow_opts p = {.max_pending = 1};
  make(&p);
  open_flow(true, 40000, 80);
  void *first = H.user;
  data(0, GET("/kept"));
  open_flow(true, 40001, 80);
  data(0, GET("/refused"));
  data(1, fmt_ok("r"));
  assert_int_equal(st()->pending_drops, 1);
  assert_int_equal(st()->orphan_responses, 1);
  close_flow(KW_TCPREASM_CLOSE_FIN);
  H.user = first;
  data(1, fmt_ok("k"));
  assert_int_equal(NR, 1);
  assert_string_equal(R[0].uri, "/kept");
  close_flow(KW_TCPREASM_CLOSE_FIN);
}

/* A request larger than the inline buffer: the buffer grows, nothing is cut. */
static void test_long_request(void **state) {
  static char uri[3001], tok[2001], rq[5300];
  (void)state;
  memset(uri, 'u', sizeof(uri) - 1);
  uri[0] = '/';
  memset(tok, 't', sizeof(tok) - 1);
  snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", uri, tok);
  make(NULL);
  open_flow(true, 40000, 80);
  data_n(0, rq, strlen(rq), 700, 1000); /* in pieces, so values arrive in several calls */
  data(1, fmt_ok("long"));
  assert_int_equal(NR, 1);
  assert_string_equal(R[0].uri, uri);
  assert_int_equal(strlen(hdr(&R[0], "authorization")), 7 + 2000);
  assert_int_equal(st()->truncated_fields, 0);
}

static void test_options(void **state) {
  struct kw_httpflow *hf = NULL;
  const char *bad[] = {""};
  const char *toolong[] = {"x-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  uint16_t ports[] = {80, 8080};
  struct kw_httpflow_opts o = {.headers = bad, .nheaders = 1};
  (void)state;
  assert_int_equal(kw_httpflow_create(&o, on_rec, NULL, &hf), KW_EINVAL);
  assert_null(hf);
  o.headers = toolong;
  assert_int_equal(kw_httpflow_create(&o, on_rec, NULL, &hf), KW_EINVAL);
  o = (struct kw_httpflow_opts){.ports = ports, .nports = 2};
  assert_int_equal(kw_httpflow_create(&o, on_rec, NULL, &hf), 0);
  assert_true(kw_httpflow_port(hf, 40000, 8080));
  assert_true(kw_httpflow_port(hf, 80, 40000));
  assert_false(kw_httpflow_port(hf, 40000, 443));
  kw_httpflow_destroy(hf);
  kw_httpflow_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_simple_fields, teardown),
      cmocka_unit_test_teardown(test_split_everywhere, teardown),
      cmocka_unit_test_teardown(test_pipelining, teardown),
      cmocka_unit_test_teardown(test_continue_and_nobody, teardown),
      cmocka_unit_test_teardown(test_upgrade, teardown),
      cmocka_unit_test_teardown(test_unanswered, teardown),
      cmocka_unit_test_teardown(test_early_response_and_orphan, teardown),
      cmocka_unit_test_teardown(test_close_delimited, teardown),
      cmocka_unit_test_teardown(test_not_http, teardown),
      cmocka_unit_test_teardown(test_synless_resync, teardown),
      cmocka_unit_test_teardown(test_gaps, teardown),
      cmocka_unit_test_teardown(test_parse_error_resync, teardown),
      cmocka_unit_test_teardown(test_lenient, teardown),
      cmocka_unit_test_teardown(test_xff, teardown),
      cmocka_unit_test_teardown(test_bounds, teardown),
      cmocka_unit_test_teardown(test_long_request, teardown),
      cmocka_unit_test(test_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
