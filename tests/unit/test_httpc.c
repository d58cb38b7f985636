/* test_httpc.c — the HTTP client on the loop (analyzer/httpc.c), against a real peer.
 *
 * The peer is tests/tools/http_echo.py, a Python stdlib HTTP server on 127.0.0.1 started
 * once (lazily) as a subprocess: it echoes requests as JSON, answers any status code,
 * redirects, sends bodies of a given size (with a Content-Length or chunked) and holds
 * requests; it logs every request it received to a JSON-lines file before answering.
 *
 * Asserted: each method, with and without a body, reaches the peer with that method, the
 * headers given, ours ("Expect:" suppressed, the User-Agent, no invented Content-Type)
 * and the body byte for byte; any status code is an answer (status 0 + code); the body
 * comes back NUL-terminated; max_body is enforced at the boundary either way; 3xx is not
 * followed; timeouts and refused connections give -ETIMEDOUT / -ECONNREFUSED, and error
 * texts never hold the URL's path or query; invalid requests are refused synchronously
 * and never called back; closing cancels what is in flight (cb once with KW_ECANCELED,
 * never from within close, also when closed from inside a callback); the in-flight cap;
 * 50 concurrent requests all complete.
 *
 * Loop tests run the loop in bounded steps (run_until: a 10 ms tick keeps uv_run moving,
 * WAIT_MS caps it), count callbacks, and end with uv_loop_close() == 0.  The peer is
 * stopped (SIGTERM, then SIGKILL) by the group teardown.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "analyzer/httpc.h"
#include "sidecar/err.h"

#include "kwtest_files.h"
#include "kwtest_loop.h"

#define WAIT_MS 8000

static char g_dir[64];
static char g_log[128];
static struct peers g_peers;
static pid_t g_peer; /* the echo peer, once started */
static int g_port;

/* ---- the peer ------------------------------------------------------------------------- */

/* The peer's port; starts it on first use and waits (bounded) until it listens. */
static int peer_port(void) {
  char port_file[128];
  if (g_peer > 0)
    return g_port;
  snprintf(port_file, sizeof(port_file), "%s/echo.port", g_dir);
  snprintf(g_log, sizeof(g_log), "%s/echo.log", g_dir);
  g_peer = peer_start(&g_peers, "http_echo.py", port_file, &g_port, "--port-file", port_file,
                      "--out", g_log, NULL);
  return g_port;
}

/* The records the peer logged whose path is path. */
static size_t logged(const char *path) {
  json_t *recs = read_json_lines(g_log);
  size_t n = 0;
  for (size_t i = 0; i < json_array_size(recs); i++) {
    const char *p = json_string_value(json_object_get(json_array_get(recs, i), "path"));
    n += p != NULL && strcmp(p, path) == 0;
  }
  json_decref(recs);
  return n;
}

static void url_for(char *buf, size_t len, const char *path) {
  snprintf(buf, len, "http://127.0.0.1:%d%s", peer_port(), path);
}

/* ---- the loop ------------------------------------------------------------------------- */

/* What one callback saw (copied: resp is valid during the call only). */
struct result {
  int calls;
  int status;
  long code;
  char *body; /* resp->body with its NUL: len + 1 bytes */
  size_t len;
  bool nul;   /* body[len] was '\0' */
  int64_t duration_us;
  char error[512];
  int *counter; /* bumped too, when set */
};

static void on_resp(const struct kw_http_resp *resp, void *arg) {
  struct result *r = arg;
  r->calls++;
  r->status = resp->status;
  r->code = resp->code;
  r->duration_us = resp->duration_us;
  free(r->body);
  r->body = NULL;
  r->len = resp->len;
  r->nul = false;
  if (resp->body != NULL) {
    r->nul = resp->body[resp->len] == '\0';
    r->body = malloc(resp->len + 1);
    memcpy(r->body, resp->body, resp->len + 1);
  }
  snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
  if (r->counter)
    (*r->counter)++;
}

static void result_free(struct result *r) {
  free(r->body);
  r->body = NULL;
}

static struct kw_httpc *client(uv_loop_t *loop) {
  struct kw_httpc *c = NULL;
  assert_int_equal(uv_loop_init(loop), 0);
  assert_int_equal(kw_httpc_init(loop, &c), 0);
  assert_non_null(c);
  return c;
}

/* Closes c, runs the loop out, checks the loop closes. */
static void close_and_finish(uv_loop_t *loop, struct kw_httpc *c) {
  int closed = 0;
  kw_httpc_close(c, on_closed, &closed);
  close_wait_finish(loop, &closed, WAIT_MS);
}

/* Starts req and waits for its callback. */
static void request_wait(uv_loop_t *loop, struct kw_httpc *c, const struct kw_http_req *req,
                         struct result *res) {
  result_free(res);
  memset(res, 0, sizeof(*res));
  int r = kw_httpc_request(c, req, on_resp, res);
  if (r != 0)
    fail_msg("kw_httpc_request %s %s: %s", req->method, req->url, kw_strerror(r));
  assert_int_equal(res->calls, 0); /* never from within request */
  if (!run_until(loop, &res->calls, 1, WAIT_MS))
    fail_msg("no callback within %d ms", WAIT_MS);
  assert_int_equal(res->calls, 1);
  assert_non_null(res->body);
  assert_true(res->nul);
  assert_true(res->duration_us >= 0);
}

/* The echo of a 200 /echo answer, parsed. */
static json_t *echo_of(const struct result *res) {
  json_error_t e;
  json_t *j;
  if (res->status != 0)
    fail_msg("request failed: %s (%s)", kw_strerror(res->status), res->error);
  assert_int_equal(res->code, 200);
  j = json_loadb(res->body, res->len, 0, &e);
  if (j == NULL)
    fail_msg("echo is not JSON (%s): %s", e.text, res->body);
  return j;
}

static const char *hdr(json_t *echo, const char *name) {
  return json_string_value(json_object_get(json_object_get(echo, "headers"), name));
}

/* ---- setup ---------------------------------------------------------------------------- */

static int setup(void **state) {
  (void)state;
  return peer_env_setup(g_dir, sizeof(g_dir), "kwhttpc");
}

static int teardown(void **state) {
  (void)state;
  g_peer = 0;
  return peer_env_teardown(&g_peers, g_dir);
}

/* ---- requests ------------------------------------------------------------------------- */

static void test_methods_and_bodies(void **state) {
  static const char *const methods[] = {"GET", "DELETE", "PUT", "PATCH", "POST"};
  static const char body[] = "{\"k\": \"v\"}\n\0bin\xff\x01";
  const char *const headers[] = {"Authorization: Bearer tok-123", "X-Empty-Ok:x",
                                 "X-Tchars!#$%&'*+-.^_`|~: y", NULL};
  const char *const typed[] = {"content-type: application/json", NULL};
  char url[128], want_hex[2 * sizeof(body) + 1], body_len[16];
  struct result res = {0};
  uv_loop_t loop;
  (void)state;

  snprintf(body_len, sizeof(body_len), "%zu", sizeof(body) - 1);
  for (size_t i = 0; i < sizeof(body) - 1; i++)
    snprintf(want_hex + 2 * i, 3, "%02x", (unsigned char)body[i]);
  url_for(url, sizeof(url), "/echo/a?b=c");
  struct kw_httpc *c = client(&loop);
  for (int m = 0; m < 5; m++) {
    for (int with = 0; with < 2; with++) {
      struct kw_http_req req = {.method = methods[m], .url = url, .headers = headers,
                                .body = with ? body : NULL,
                                .body_len = with ? sizeof(body) - 1 : 0};
      request_wait(&loop, c, &req, &res);
      json_t *j = echo_of(&res);
      bool sends_body = with || m >= 2; /* PUT, PATCH, POST send an empty body at least */
      assert_string_equal(json_string_value(json_object_get(j, "method")), methods[m]);
      assert_string_equal(json_string_value(json_object_get(j, "path")), "/echo/a?b=c");
      assert_string_equal(json_string_value(json_object_get(j, "body_hex")),
                          with ? want_hex : "");
      assert_string_equal(hdr(j, "authorization"), "Bearer tok-123");
      assert_string_equal(hdr(j, "x-empty-ok"), "x");
      assert_string_equal(hdr(j, "x-tchars!#$%&'*+-.^_`|~"), "y");
      assert_string_equal(hdr(j, "user-agent"), "keywatch/" KW_VERSION);
      assert_null(hdr(j, "expect"));
      assert_null(hdr(j, "content-type")); /* curl's form type is not invented */
      if (sends_body)
        assert_string_equal(hdr(j, "content-length"), with ? body_len : "0");
      else
        assert_null(hdr(j, "content-length"));
      json_decref(j);
    }
  }
  /* a caller's Content-Type is sent as given */
  struct kw_http_req req = {.method = "PUT", .url = url, .headers = typed, .body = "{}",
                            .body_len = 2};
  request_wait(&loop, c, &req, &res);
  json_t *j = echo_of(&res);
  assert_string_equal(hdr(j, "content-type"), "application/json");
  assert_string_equal(json_string_value(json_object_get(j, "body_hex")), "7b7d");
  json_decref(j);
  result_free(&res);
  close_and_finish(&loop, c);
}

static void test_status_codes(void **state) {
  static const long codes[] = {200, 204, 401, 404, 500};
  char url[128], want[32];
  struct result res = {0};
  uv_loop_t loop;
  (void)state;
  struct kw_httpc *c = client(&loop);
  for (int i = 0; i < 5; i++) {
    char path[32];
    snprintf(path, sizeof(path), "/status/%ld", codes[i]);
    url_for(url, sizeof(url), path);
    struct kw_http_req req = {.method = i % 2 ? "POST" : "GET", .url = url};
    request_wait(&loop, c, &req, &res);
    assert_int_equal(res.status, 0); /* any answer is an answer */
    assert_int_equal(res.code, codes[i]);
    assert_string_equal(res.error, "");
    snprintf(want, sizeof(want), "status %ld", codes[i]);
    assert_string_equal(res.body, codes[i] == 204 ? "" : want);
    assert_int_equal(res.len, codes[i] == 204 ? 0 : strlen(want));
  }
  result_free(&res);
  close_and_finish(&loop, c);
}

static void test_max_body(void **state) {
  char url[128];
  struct result res = {0};
  uv_loop_t loop;
  (void)state;
  struct kw_httpc *c = client(&loop);
  /* both ways a body arrives: with a Content-Length, and chunked */
  static const char *const kinds[] = {"size", "chunked"};
  for (int k = 0; k < 2; k++) {
    char path[64];
    snprintf(path, sizeof(path), "/%s/5000", kinds[k]);
    url_for(url, sizeof(url), path);
    struct kw_http_req req = {.method = "GET", .url = url, .max_body = 5000};
    request_wait(&loop, c, &req, &res); /* exactly max_body: kept */
    assert_int_equal(res.status, 0);
    assert_int_equal(res.len, 5000);
    assert_int_equal(strspn(res.body, "x"), 5000);
    req.max_body = 4999; /* one byte over */
    request_wait(&loop, c, &req, &res);
    assert_int_equal(res.status, KW_ETOOLONG);
    assert_int_equal(res.code, 200); /* the answer's status line had arrived */
    assert_int_equal(res.len, 0);
    assert_non_null(strstr(res.error, "4999"));
  }
  /* the default (1 MiB) keeps a body of 600000 bytes, and the client still works */
  url_for(url, sizeof(url), "/chunked/600000");
  struct kw_http_req req = {.method = "GET", .url = url};
  request_wait(&loop, c, &req, &res);
  assert_int_equal(res.status, 0);
  assert_int_equal(res.len, 600000);
  url_for(url, sizeof(url), "/size/1048577");
  request_wait(&loop, c, &req, &res);
  assert_int_equal(res.status, KW_ETOOLONG);
  result_free(&res);
  close_and_finish(&loop, c);
}

static void test_redirect_not_followed(void **state) {
  char url[128];
  struct result res = {0};
  uv_loop_t loop;
  (void)state;
  struct kw_httpc *c = client(&loop);
  url_for(url, sizeof(url), "/redirect");
  size_t before = logged("/echo/followed");
  struct kw_http_req req = {.method = "POST", .url = url, .body = "x", .body_len = 1};
  request_wait(&loop, c, &req, &res);
  assert_int_equal(res.status, 0);
  assert_int_equal(res.code, 302);
  assert_string_equal(res.body, "moved");
  sleep_ms(100);
  assert_int_equal(logged("/echo/followed"), before);
  assert_int_equal(logged("/redirect"), 1);
  result_free(&res);
  close_and_finish(&loop, c);
}

/* ---- failures ------------------------------------------------------------------------- */

#define TOKEN_PATH "/hook/T0KEN-PATH-abcdef0123456789"
#define TOKEN_QUERY "access_token=QUERY-SECRET-9876"

static void assert_no_token(const struct result *res) {
  assert_true(res->error[0] != '\0');
  if (strstr(res->error, "T0KEN-PATH") != NULL || strstr(res->error, "QUERY-SECRET") != NULL)
    fail_msg("error text shows the URL: %s", res->error);
}

static void test_timeout(void **state) {
  char url[128];
  struct result res = {0};
  uv_loop_t loop;
  (void)state;
  struct kw_httpc *c = client(&loop);
  url_for(url, sizeof(url), "/hold/3000" TOKEN_PATH "?" TOKEN_QUERY);
  struct kw_http_req req = {.method = "GET", .url = url, .timeout_ms = 300};
  uint64_t t0 = uv_hrtime();
  request_wait(&loop, c, &req, &res);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  assert_int_equal(res.status, -ETIMEDOUT);
  assert_true(ms >= 250 && ms < 2000);
  assert_true(res.duration_us >= 250000 && res.duration_us < 2000000);
  assert_int_equal(res.len, 0);
  assert_no_token(&res);
  result_free(&res);
  close_and_finish(&loop, c);
}

static void test_refused(void **state) {
  char url[160];
  struct result res = {0};
  uv_loop_t loop;
  (void)state;
  struct kw_httpc *c = client(&loop);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d" TOKEN_PATH "?" TOKEN_QUERY,
           free_port(SOCK_STREAM));
  struct kw_http_req req = {.method = "POST", .url = url, .body = "{}", .body_len = 2,
                            .timeout_ms = 2000};
  request_wait(&loop, c, &req, &res);
  assert_int_equal(res.status, -ECONNREFUSED);
  assert_no_token(&res);
  /* and again: the same answer, nothing left behind */
  request_wait(&loop, c, &req, &res);
  assert_int_equal(res.status, -ECONNREFUSED);
  assert_int_equal(kw_httpc_pending(c), 0);
  /* too long: that error text does not show the URL either */
  url_for(url, sizeof(url), "/size/100" TOKEN_PATH "?" TOKEN_QUERY);
  struct kw_http_req big = {.method = "GET", .url = url, .max_body = 10};
  request_wait(&loop, c, &big, &res);
  assert_int_equal(res.status, KW_ETOOLONG);
  assert_no_token(&res);
  result_free(&res);
  close_and_finish(&loop, c);
}

static void test_invalid_requests(void **state) {
  const char *const crlf[] = {"X-Ok: 1", "X-A: b\r\nX-Injected: 1", NULL};
  const char *const lf[] = {"X-A: b\nX-Injected: 1", NULL};
  const char *const cr[] = {"X-A: b\r", NULL};
  const char *const nocolon[] = {"X-A b", NULL};
  const char *const space[] = {"X A: b", NULL};
  const char *const lead[] = {" X-A: b", NULL};
  const char *const empty[] = {": b", NULL};
  const char *const length[] = {"content-length: 0", NULL}; /* framing is ours */
  const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
  const char *const *bad_headers[] = {crlf, lf, cr, nocolon, space, lead, empty, length,
                                      chunked};
  static const char *const bad_methods[] = {"HEAD", "get", "CONNECT", "TRACE", "", NULL};
  static const char *const bad_urls[] = {"ftp://127.0.0.1/x", "file:///etc/passwd",
                                         "127.0.0.1:80/x", "http://", "not a url", ""};
  struct result res = {0};
  uv_loop_t loop;
  (void)state;
  struct kw_httpc *c = client(&loop);
  for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
    struct kw_http_req req = {.method = "GET", .url = "http://127.0.0.1:9/",
                              .headers = bad_headers[i]};
    assert_int_equal(kw_httpc_request(c, &req, on_resp, &res), KW_EINVAL);
  }
  for (size_t i = 0; i < sizeof(bad_methods) / sizeof(bad_methods[0]); i++) {
    struct kw_http_req req = {.method = bad_methods[i], .url = "http://127.0.0.1:9/"};
    assert_int_equal(kw_httpc_request(c, &req, on_resp, &res), KW_EINVAL);
  }
  for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
    struct kw_http_req req = {.method = "GET", .url = bad_urls[i]};
    assert_int_equal(kw_httpc_request(c, &req, on_resp, &res), KW_EINVAL);
  }
  struct kw_http_req nourl = {.method = "GET"};
  assert_int_equal(kw_httpc_request(c, &nourl, on_resp, &res), KW_EINVAL);
  struct kw_http_req nobody = {.method = "POST", .url = "http://127.0.0.1:9/", .body_len = 3};
  assert_int_equal(kw_httpc_request(c, &nobody, on_resp, &res), KW_EINVAL);
  struct kw_http_req negative = {.method = "GET", .url = "http://127.0.0.1:9/",
                                 .timeout_ms = -1};
  assert_int_equal(kw_httpc_request(c, &negative, on_resp, &res), KW_EINVAL);
  assert_int_equal(kw_httpc_pending(c), 0);
  for (int i = 0; i < 5; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(res.calls, 0); /* refused requests are never called back */
  close_and_finish(&loop, c);
  assert_int_equal(res.calls, 0);
}

/* ---- closing -------------------------------------------------------------------------- */

static void test_close_cancels(void **state) {
  char url[128];
  struct result res[3];
  struct result late = {0};
  uv_loop_t loop;
  int closed = 0;
  (void)state;
  memset(res, 0, sizeof(res));
  struct kw_httpc *c = client(&loop);
  url_for(url, sizeof(url), "/hold/5000");
  struct kw_http_req req = {.method = "POST", .url = url, .body = "{}", .body_len = 2,
                            .timeout_ms = 10000};
  size_t before = logged("/hold/5000");
  for (int i = 0; i < 3; i++)
    assert_int_equal(kw_httpc_request(c, &req, on_resp, &res[i]), 0);
  assert_int_equal(kw_httpc_pending(c), 3);
  /* let the requests reach the peer, then close while they wait for answers */
  for (int i = 0; i < 300 && logged("/hold/5000") < before + 3; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    sleep_ms(10);
  }
  assert_int_equal(logged("/hold/5000"), before + 3);
  kw_httpc_close(c, on_closed, &closed);
  for (int i = 0; i < 3; i++)
    assert_int_equal(res[i].calls, 0); /* not from within close */
  /* closing, not yet closed: new requests are refused */
  assert_int_equal(kw_httpc_request(c, &req, on_resp, &late), KW_ECANCELED);
  uint64_t t0 = uv_hrtime();
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true((uv_hrtime() - t0) / 1000000 < 1000); /* did not wait for the answers */
  assert_int_equal(closed, 1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(res[i].calls, 1);
    assert_int_equal(res[i].status, KW_ECANCELED);
    assert_true(res[i].error[0] != '\0');
    result_free(&res[i]);
  }
  assert_int_equal(late.calls, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

struct closer {
  struct kw_httpc *c;
  int calls, closed;
  int status;
};

static void on_resp_close(const struct kw_http_resp *resp, void *arg) {
  struct closer *k = arg;
  k->calls++;
  k->status = resp->status;
  kw_httpc_close(k->c, on_closed, &k->closed); /* from inside a curl-driven callback */
  assert_int_equal(k->closed, 0);
}

static void test_close_from_callback(void **state) {
  char fast[128], slow[128];
  struct result held = {0};
  struct closer k = {0};
  uv_loop_t loop;
  (void)state;
  k.c = client(&loop);
  url_for(slow, sizeof(slow), "/hold/5000");
  url_for(fast, sizeof(fast), "/status/204");
  struct kw_http_req rs = {.method = "GET", .url = slow};
  struct kw_http_req rf = {.method = "GET", .url = fast};
  assert_int_equal(kw_httpc_request(k.c, &rs, on_resp, &held), 0);
  assert_int_equal(kw_httpc_request(k.c, &rf, on_resp_close, &k), 0);
  assert_true(run_until(&loop, &k.closed, 1, WAIT_MS));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(k.calls, 1);
  assert_int_equal(k.status, 0);
  assert_int_equal(k.closed, 1);
  assert_int_equal(held.calls, 1);
  assert_int_equal(held.status, KW_ECANCELED);
  result_free(&held);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_in_flight_cap(void **state) {
  enum { CAP = 256 };
  struct result *res = calloc(CAP + 1, sizeof(*res));
  char url[64];
  uv_loop_t loop;
  int closed = 0;
  (void)state;
  assert_non_null(res);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", free_port(SOCK_STREAM));
  struct kw_httpc *c = client(&loop);
  struct kw_http_req req = {.method = "GET", .url = url};
  for (int i = 0; i < CAP; i++) /* the loop does not run: all stay in flight */
    assert_int_equal(kw_httpc_request(c, &req, on_resp, &res[i]), 0);
  assert_int_equal(kw_httpc_pending(c), CAP);
  assert_int_equal(kw_httpc_request(c, &req, on_resp, &res[CAP]), -EAGAIN);
  kw_httpc_close(c, on_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  for (int i = 0; i < CAP; i++) {
    assert_int_equal(res[i].calls, 1);
    assert_int_equal(res[i].status, KW_ECANCELED);
    result_free(&res[i]);
  }
  assert_int_equal(res[CAP].calls, 0);
  free(res);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_many_concurrent(void **state) {
  enum { N = 50 };
  struct result res[N];
  char urls[N][96];
  uv_loop_t loop;
  int done = 0;
  (void)state;
  memset(res, 0, sizeof(res));
  struct kw_httpc *c = client(&loop);
  for (int i = 0; i < N; i++) {
    char path[32];
    snprintf(path, sizeof(path), "/echo/%d", i);
    url_for(urls[i], sizeof(urls[i]), path);
    struct kw_http_req req = {.method = i % 2 ? "POST" : "GET", .url = urls[i],
                              .body = i % 2 ? path : NULL, .body_len = i % 2 ? strlen(path) : 0};
    res[i].counter = &done;
    assert_int_equal(kw_httpc_request(c, &req, on_resp, &res[i]), 0);
  }
  assert_int_equal(kw_httpc_pending(c), N);
  assert_int_equal(done, 0);
  assert_true(run_until(&loop, &done, N, WAIT_MS));
  assert_int_equal(kw_httpc_pending(c), 0);
  for (int i = 0; i < N; i++) {
    char path[32];
    assert_int_equal(res[i].calls, 1);
    json_t *j = echo_of(&res[i]);
    snprintf(path, sizeof(path), "/echo/%d", i);
    assert_string_equal(json_string_value(json_object_get(j, "path")), path);
    assert_string_equal(json_string_value(json_object_get(j, "method")), i % 2 ? "POST" : "GET");
    json_decref(j);
    result_free(&res[i]);
  }
  close_and_finish(&loop, c);
}

static void test_close_idle(void **state) {
  uv_loop_t loop;
  (void)state;
  struct kw_httpc *c = client(&loop);
  assert_int_equal(kw_httpc_pending(c), 0);
  close_and_finish(&loop, c);
  kw_httpc_close(NULL, on_closed, NULL); /* a no-op */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_close_idle),
      cmocka_unit_test(test_methods_and_bodies),
      cmocka_unit_test(test_status_codes),
      cmocka_unit_test(test_max_body),
      cmocka_unit_test(test_redirect_not_followed),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_invalid_requests),
      cmocka_unit_test(test_close_cancels),
      cmocka_unit_test(test_close_from_callback),
      cmocka_unit_test(test_in_flight_cap),
      cmocka_unit_test(test_many_concurrent),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
