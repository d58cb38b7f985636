/* test_httpd.c — the HTTP server on the loop (sidecar/httpd.c), against real clients.
 *
 * The loop runs on the main thread; the client is a peer thread doing blocking socket I/O
 * on 127.0.0.1 (a struct peer: a script function, its inputs, and what it saw: responses,
 * whether the server then closed, timings).  The peer never asserts: the main thread runs
 * the loop until the peer is done (bounded), joins it, then asserts on what it recorded.
 *
 * Asserted: listen address forms, port 0 and "cannot listen on ADDR: reason" errors;
 * routing (exact and prefix, "*", HEAD via GET, 405 with Allow, 404); path and query
 * decoding, and the paths refused with 400 (".." segments, %00, control bytes, bad
 * escapes, targets not starting with '/'); bodies (Content-Length, chunked, 100-continue,
 * a response pointing into its request); keep-alive, Connection: close, HTTP/1.0;
 * pipelined requests answered in order even when the first is slow; offloaded work runs
 * off the loop thread; the security headers on every response, errors included; the
 * bounds (431 at 16 KiB of head and at 65 headers, 413 at 64 KiB of body, also declared,
 * without sending it) each at the boundary and closing the connection; 400 for garbage,
 * an HTTP/2 preface and HTTP/2.0; 408 for a slowloris that keeps sending (the deadline
 * runs from the first byte) and for a stalled body; idle and silent connections closed;
 * a client leaving while its request is offloaded; the connection limit; closing with a
 * request in flight (the close callback waits for its answer); malformed handler headers
 * answered 500.
 *
 * Loop tests run the loop in bounded steps (run_until: a 10 ms tick keeps uv_run moving,
 * a deadline caps it) and end with uv_loop_close() == 0.  SIGPIPE is ignored, as keywatch
 * must (libuv writes with write(2)).
 * Thread: main, and one peer thread at a time; offloaded work on libuv's pool.
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
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "sidecar/err.h"
#include "sidecar/httpd.h"

#define WAIT_MS 8000
#define IO_MS 5000    /* a peer's wait for bytes */
#define MAX_RESP 8
#define CL_BUF (256 * 1024)
#define CSP "default-src 'self'"

/* ---- time, loop ----------------------------------------------------------------------- */

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void on_tick(uv_timer_t *t) {
  (void)t;
}

/* Runs the loop until pred(arg) or ms pass; returns pred(arg). */
static bool run_until(uv_loop_t *loop, bool (*pred)(void *arg), void *arg, long ms) {
  uv_timer_t tick;
  long end = now_ms() + ms;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  while (!pred(arg) && now_ms() < end)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return pred(arg);
}

static bool is_set(void *arg) {
  return atomic_load((atomic_int *)arg) != 0;
}

static bool never(void *arg) {
  (void)arg;
  return false;
}

/* ---- handlers --------------------------------------------------------------------------- */

static pthread_t g_main_thread, g_work_thread, g_done_thread;
static atomic_int g_gate_entered, g_gate_open, g_gate_done;

static void h_text(struct kw_http_request *rq, int status, const char *s) {
  kw_httpd_respond(rq, status, "text/plain", s, strlen(s), NULL);
}

static void h_hello(struct kw_http_request *rq, void *arg) {
  (void)arg;
  h_text(rq, 200, "hello\n");
}

static void h_any(struct kw_http_request *rq, void *arg) {
  (void)arg;
  h_text(rq, 200, rq->method);
}

/* The path, query parameters, a header, the method and the remote address. */
static void h_echo(struct kw_http_request *rq, void *arg) {
  char q[64], e[8], f[8], bad[8], none[8], small[4], out[512];
  const char *x = kw_http_header(rq, "x-test");
  (void)arg;
  snprintf(out, sizeof(out), "path=%s|q=%s|empty=%s|flag=%s|bad=%s|none=%s|small=%s|x=%s|"
                             "method=%s|remote=%s",
           rq->path, kw_http_query(rq, "q", q, sizeof(q)) ? q : "(null)",
           kw_http_query(rq, "empty", e, sizeof(e)) ? e : "(null)",
           kw_http_query(rq, "flag", f, sizeof(f)) ? f : "(null)",
           kw_http_query(rq, "bad", bad, sizeof(bad)) ? bad : "(null)",
           kw_http_query(rq, "none", none, sizeof(none)) ? none : "(null)",
           kw_http_query(rq, "small", small, sizeof(small)) ? small : "(null)",
           x ? x : "(null)", rq->method, rq->remote);
  h_text(rq, 200, out);
}

/* Answers with the request's own body (the response points into the request). */
static void h_post(struct kw_http_request *rq, void *arg) {
  char extra[64];
  (void)arg;
  snprintf(extra, sizeof(extra), "X-Len: %zu\r\nX-Null: %s\r\n", rq->body_len,
           rq->body == NULL ? "yes" : "no");
  kw_httpd_respond(rq, 200, "application/octet-stream", rq->body, rq->body_len, extra);
}

static void w_slow(struct kw_http_request *rq, void *arg) {
  (void)rq;
  (void)arg;
  g_work_thread = pthread_self();
  sleep_ms(100);
}

static void d_slow(struct kw_http_request *rq, void *arg) {
  (void)arg;
  g_done_thread = pthread_self();
  h_text(rq, 200, "slow");
}

static void h_slow(struct kw_http_request *rq, void *arg) {
  if (kw_httpd_offload(rq, w_slow, d_slow, arg) != 0)
    h_text(rq, 500, "offload failed");
}

static void w_gate(struct kw_http_request *rq, void *arg) {
  (void)rq;
  (void)arg;
  atomic_store(&g_gate_entered, 1);
  for (int i = 0; i < 5000 && !atomic_load(&g_gate_open); i++)
    sleep_ms(2);
}

static void d_gate(struct kw_http_request *rq, void *arg) {
  (void)arg;
  h_text(rq, 200, "gate");
  atomic_fetch_add(&g_gate_done, 1);
}

static void h_gate(struct kw_http_request *rq, void *arg) {
  if (kw_httpd_offload(rq, w_gate, d_gate, arg) != 0)
    h_text(rq, 500, "offload failed");
}

/* A header value with a CRLF in it: must not reach the wire. */
static void h_badhdr(struct kw_http_request *rq, void *arg) {
  (void)arg;
  kw_httpd_respond(rq, 200, "text/plain", "x", 1, "X-A: b\r\nX-Injected: 1\r\n\r\nsmuggled");
}

static void h_framing(struct kw_http_request *rq, void *arg) {
  (void)arg;
  kw_httpd_respond(rq, 200, "text/plain", "x", 1, "Content-Length: 0\r\n");
}

static const struct kw_http_route g_routes[] = {
    {"GET", "/hello", h_hello, NULL},     {"DELETE", "/hello", h_hello, NULL},
    {"GET", "/echo/", h_echo, NULL},      {"POST", "/post", h_post, NULL},
    {"*", "/any", h_any, NULL},           {"GET", "/slow", h_slow, NULL},
    {"GET", "/gate", h_gate, NULL},       {"GET", "/badhdr", h_badhdr, NULL},
    {"GET", "/framing", h_framing, NULL},
};

/* ---- the server under test -------------------------------------------------------------- */

struct srv {
  uv_loop_t loop;
  struct kw_httpd *h;
  atomic_int closed;
  int port;
};

static void srv_start_at(struct srv *s, const char *listen, unsigned header_ms,
                         unsigned idle_ms) {
  struct kw_httpd_opts o = {.listen = listen,
                            .routes = g_routes,
                            .nroutes = sizeof(g_routes) / sizeof(g_routes[0]),
                            .csp = CSP,
                            .header_timeout_ms = header_ms,
                            .idle_timeout_ms = idle_ms};
  char err[256];
  int r;

  memset(s, 0, sizeof(*s));
  atomic_store(&g_gate_entered, 0);
  atomic_store(&g_gate_open, 0);
  atomic_store(&g_gate_done, 0);
  assert_int_equal(uv_loop_init(&s->loop), 0);
  r = kw_httpd_start(&s->loop, &o, &s->h, err, sizeof(err));
  if (r != 0)
    fail_msg("kw_httpd_start: %s", err);
  s->port = kw_httpd_port(s->h);
  assert_true(s->port > 0);
}

static void srv_start(struct srv *s, unsigned header_ms, unsigned idle_ms) {
  srv_start_at(s, "127.0.0.1:0", header_ms, idle_ms);
}

static void on_closed(void *arg) {
  atomic_fetch_add((atomic_int *)arg, 1);
}

static void srv_finish(struct srv *s) {
  kw_httpd_close(s->h, on_closed, &s->closed);
  assert_int_equal(atomic_load(&s->closed), 0); /* never from within close */
  assert_true(run_until(&s->loop, is_set, &s->closed, WAIT_MS));
  uv_run(&s->loop, UV_RUN_DEFAULT);
  assert_int_equal(atomic_load(&s->closed), 1);
  assert_int_equal(uv_loop_close(&s->loop), 0);
}

static struct kw_httpd_stats stats(struct srv *s) {
  struct kw_httpd_stats st;
  kw_httpd_stats(s->h, &st);
  return st;
}

struct open_arg {
  struct srv *s;
  uint64_t want;
};

static bool open_is(void *arg) {
  struct open_arg *a = arg;
  return stats(a->s).open == a->want;
}

/* ---- the client (peer thread) ----------------------------------------------------------- */

struct resp {
  int status;
  char head[4096];   /* status line and headers */
  char body[2048];   /* the first bytes of the body, NUL-terminated */
  size_t body_len;   /* the whole body's */
};

struct cl {
  int fd;
  size_t len;
  char buf[CL_BUF];
};

struct peer {
  pthread_t th;
  void (*fn)(struct peer *p);
  atomic_int done;
  int port;
  const char *host;
  /* the exchange: one send, want responses, then (want_eof) the server's close */
  const char *req;
  size_t req_len;
  int want;
  bool head;       /* the first response answers a HEAD */
  bool want_eof;
  const char *steps[MAX_RESP]; /* sequence(): one request, its response, the next */
  /* what the peer saw */
  struct resp r[MAX_RESP];
  int nresp;
  bool eof, sent_ok;
  long ms;     /* exchange: from the send to the last response; or script-specific */
  long eof_ms; /* from the last response (or the send) to the server's close */
  int n;   /* script-specific count */
  struct cl cl;
};

static int cl_connect(const char *host, int port) {
  struct sockaddr_storage ss;
  socklen_t sl;
  struct timeval tv = {IO_MS / 1000, 0};
  int fd;

  memset(&ss, 0, sizeof(ss));
  if (strchr(host, ':') != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
    sl = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &a->sin_addr);
    sl = sizeof(*a);
  }
  fd = socket(ss.ss_family, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool cl_send(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    if (k <= 0)
      return false;
    s += k;
    n -= (size_t)k;
  }
  return true;
}

/* Reads more into c->buf: >0 bytes, 0 EOF (or reset), -1 nothing within ms. */
static int cl_fill(struct cl *c, long ms) {
  struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
  ssize_t k;
  if (c->len == CL_BUF || poll(&pfd, 1, (int)ms) <= 0)
    return -1;
  k = recv(c->fd, c->buf + c->len, CL_BUF - c->len, 0);
  if (k < 0)
    return errno == ECONNRESET ? 0 : -1;
  c->len += (size_t)k;
  return (int)k;
}

static const char *find_header(const char *head, const char *name, char *val, size_t len) {
  size_t n = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
      const char *v = p + 3 + n, *e;
      while (*v == ' ')
        v++;
      e = strstr(v, "\r\n");
      snprintf(val, len, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
      return val;
    }
  }
  return NULL;
}

/* Reads one response; head: it answers a HEAD (no body whatever the length says). */
static bool cl_response(struct cl *c, struct resp *r, bool head) {
  char *end, cl[32];
  size_t hlen, need = 0;

  memset(r, 0, sizeof(*r));
  while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
    if (cl_fill(c, IO_MS) <= 0)
      return false;
  hlen = (size_t)(end - c->buf) + 4;
  snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, c->buf);
  if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
    return false;
  if (!head && r->status >= 200 && r->status != 204 && r->status != 304 &&
      find_header(r->head, "Content-Length", cl, sizeof(cl)) != NULL)
    need = strtoul(cl, NULL, 10);
  while (c->len < hlen + need)
    if (cl_fill(c, IO_MS) <= 0)
      return false;
  r->body_len = need;
  memcpy(r->body, c->buf + hlen, need < sizeof(r->body) ? need : sizeof(r->body) - 1);
  memmove(c->buf, c->buf + hlen + need, c->len - hlen - need);
  c->len -= hlen + need;
  return true;
}

/* Whether the server closes within ms without sending anything more. */
static bool cl_eof(struct cl *c, long ms) {
  long end = now_ms() + ms;
  while (now_ms() < end) {
    size_t before = c->len;
    int k = cl_fill(c, end - now_ms());
    if (k == 0)
      return c->len == 0;
    if (k < 0 && c->len == before)
      return false;
  }
  return false;
}

static void *peer_main(void *arg) {
  struct peer *p = arg;
  p->fn(p);
  if (p->cl.fd >= 0)
    close(p->cl.fd);
  atomic_store(&p->done, 1);
  return NULL;
}

/* The common script: connect, send req, read `want` responses, maybe wait for the close. */
static void exchange(struct peer *p) {
  long t0;
  p->cl.fd = cl_connect(p->host, p->port);
  if (p->cl.fd < 0)
    return;
  t0 = now_ms();
  p->sent_ok = cl_send(p->cl.fd, p->req, p->req_len);
  while (p->nresp < p->want &&
         cl_response(&p->cl, &p->r[p->nresp], p->head && p->nresp == 0))
    p->nresp++;
  p->ms = now_ms() - t0;
  t0 = now_ms();
  if (p->want_eof)
    p->eof = cl_eof(&p->cl, 4000);
  p->eof_ms = now_ms() - t0;
}

/* Sends steps[i] and reads its response, one after the other, on one connection. */
static void sequence(struct peer *p) {
  long t0;
  p->cl.fd = cl_connect(p->host, p->port);
  if (p->cl.fd < 0)
    return;
  for (int i = 0; i < MAX_RESP && p->steps[i] != NULL; i++) {
    if (!cl_send(p->cl.fd, p->steps[i], strlen(p->steps[i])) ||
        !cl_response(&p->cl, &p->r[p->nresp], false))
      break;
    p->nresp++;
  }
  t0 = now_ms();
  if (p->want_eof)
    p->eof = cl_eof(&p->cl, 4000);
  p->eof_ms = now_ms() - t0;
}

static struct peer *peer_new(struct srv *s) {
  struct peer *p = calloc(1, sizeof(*p));
  assert_non_null(p);
  p->port = s->port;
  p->host = "127.0.0.1";
  p->cl.fd = -1;
  return p;
}

/* Runs the peer's script against s's loop, bounded; the peer is done when it returns. */
static void peer_run(struct srv *s, struct peer *p, void (*fn)(struct peer *p)) {
  p->fn = fn;
  assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
  bool ok = run_until(&s->loop, is_set, &p->done, 3 * WAIT_MS);
  if (!ok)
    fail_msg("peer did not finish");
  pthread_join(p->th, NULL);
}

/* One exchange on a new connection. */
static struct peer *ask(struct srv *s, const char *req, int want, bool want_eof) {
  struct peer *p = peer_new(s);
  p->req = req;
  p->req_len = strlen(req);
  p->want = want;
  p->want_eof = want_eof;
  peer_run(s, p, exchange);
  return p;
}

/* ---- assertions ----------------------------------------------------------------------- */

static void assert_header(const struct resp *r, const char *name, const char *want) {
  char v[512];
  if (find_header(r->head, name, v, sizeof(v)) == NULL)
    fail_msg("no %s in\n%s", name, r->head);
  if (want != NULL && strcmp(v, want) != 0)
    fail_msg("%s: '%s', want '%s'", name, v, want);
}

static void assert_no_header(const struct resp *r, const char *name) {
  char v[512];
  if (find_header(r->head, name, v, sizeof(v)) != NULL)
    fail_msg("unexpected %s: %s", name, v);
}

static void assert_secure(const struct resp *r) {
  assert_header(r, "Cache-Control", "no-store");
  assert_header(r, "X-Content-Type-Options", "nosniff");
  assert_header(r, "Referrer-Policy", "no-referrer");
  assert_header(r, "X-Frame-Options", "DENY");
  assert_header(r, "Content-Security-Policy", CSP);
  assert_header(r, "Date", NULL);
  if (r->status != 204 && r->status != 304)
    assert_header(r, "Content-Length", NULL);
}

/* The peer got exactly one response with status, secure headers, and then the close. */
static void assert_refused(const struct peer *p, int status) {
  if (p->nresp != 1)
    fail_msg("want one %d response, got %d", status, p->nresp);
  assert_int_equal(p->r[0].status, status);
  assert_secure(&p->r[0]);
  assert_header(&p->r[0], "Connection", "close");
  assert_true(p->eof);
}

static void assert_resp(const struct resp *r, int status, const char *body) {
  if (r->status != status)
    fail_msg("status %d, want %d\n%s", r->status, status, r->head);
  assert_secure(r);
  if (body != NULL)
    assert_string_equal(r->body, body);
}

/* ---- tests: listening ----------------------------------------------------------------- */

static int start_err(uv_loop_t *loop, const char *listen, char *err, size_t len) {
  struct kw_httpd_opts o = {.listen = listen, .routes = g_routes, .nroutes = 1};
  struct kw_httpd *h = (struct kw_httpd *)1;
  int r = kw_httpd_start(loop, &o, &h, err, len);
  assert_null(h);
  return r;
}

static void test_start_errors(void **state) {
  static const char *const bad[] = {"nope", "127.0.0.1", "127.0.0.1:", ":8080",
                                    "127.0.0.1:99999", "127.0.0.1:80x", "::1:8080",
                                    "[::1]8080", "[::1", "127.0.0.1:-1"};
  struct srv s;
  char err[256], want[128];
  int r;
  (void)state;

  srv_start(&s, 0, 0);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    r = start_err(&s.loop, bad[i], err, sizeof(err));
    assert_int_equal(r, KW_EINVAL);
    snprintf(want, sizeof(want), "cannot listen on %s: ", bad[i]);
    if (strncmp(err, want, strlen(want)) != 0)
      fail_msg("'%s' gave '%s'", bad[i], err);
  }
  /* the port in use */
  snprintf(want, sizeof(want), "127.0.0.1:%d", s.port);
  r = start_err(&s.loop, want, err, sizeof(err));
  assert_int_equal(r, -EADDRINUSE);
  snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: address already in use",
           s.port);
  assert_string_equal(err, want);
  /* routes and CSP are checked */
  {
    struct kw_http_route rt = {"GET", "relative", h_hello, NULL};
    struct kw_httpd_opts o = {.listen = "127.0.0.1:0", .routes = &rt, .nroutes = 1};
    struct kw_httpd *h = NULL;
    assert_int_equal(kw_httpd_start(&s.loop, &o, &h, err, sizeof(err)), KW_EINVAL);
    assert_null(h);
    rt.prefix = "/ok";
    o.csp = "default-src 'none'\r\nX-Evil: 1";
    assert_int_equal(kw_httpd_start(&s.loop, &o, &h, err, sizeof(err)), KW_EINVAL);
    assert_null(h);
  }
  /* close(NULL) calls back at once */
  {
    atomic_int n = 0;
    kw_httpd_close(NULL, on_closed, &n);
    assert_int_equal(atomic_load(&n), 1);
  }
  srv_finish(&s);
}

static void listen_and_ask(const char *listen, const char *const hosts[], size_t nhosts) {
  struct srv s;
  struct peer *p = NULL;

  srv_start_at(&s, listen, 0, 0);
  assert_true(s.port > 0 && s.port < 65536);
  for (size_t i = 0; i < nhosts; i++) { /* localhost: whichever address it resolved to */
    p = peer_new(&s);
    p->host = hosts[i];
    p->req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    p->req_len = strlen(p->req);
    p->want = 1;
    peer_run(&s, p, exchange);
    if (p->nresp == 1)
      break;
    free(p);
    p = NULL;
  }
  assert_non_null(p);
  assert_resp(&p->r[0], 200, "hello\n");
  free(p);
  srv_finish(&s);
}

static void test_listen_forms(void **state) {
  static const char *const v4[] = {"127.0.0.1"}, *const v6[] = {"::1"},
                           *const any[] = {"127.0.0.1", "::1"};
  uv_loop_t loop;
  char err[256];
  struct kw_httpd *h = NULL;
  struct kw_httpd_opts o = {.listen = "[::1]:0", .routes = g_routes, .nroutes = 1};
  int r;
  (void)state;

  listen_and_ask("127.0.0.1:0", v4, 1);
  listen_and_ask("localhost:0", any, 2);
  assert_int_equal(uv_loop_init(&loop), 0); /* is there an IPv6 loopback here? */
  r = kw_httpd_start(&loop, &o, &h, err, sizeof(err));
  if (r == 0) {
    atomic_int n = 0;
    kw_httpd_close(h, on_closed, &n);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(n, 1);
  }
  assert_int_equal(uv_loop_close(&loop), 0);
  if (r == 0)
    listen_and_ask("[::1]:0", v6, 1);
  else
    print_message("no IPv6 loopback (%s): [::1] not tested\n", err);
}

/* ---- tests: requests ------------------------------------------------------------------ */

static void test_routing(void **state) {
  struct srv s;
  struct peer *p;
  struct kw_httpd_stats st;
  (void)state;

  srv_start(&s, 0, 0);
  p = peer_new(&s);
  p->req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"           /* exact */
           "GET /nope HTTP/1.1\r\n\r\n"                        /* 404 */
           "POST /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n" /* 405 */
           "DELETE /hello HTTP/1.1\r\n\r\n"                    /* the second route */
           "PATCH /any HTTP/1.1\r\n\r\n"                       /* "*" */
           "GET /hello/ HTTP/1.1\r\n\r\n"                      /* exact is exact */
           "GET /echo HTTP/1.1\r\n\r\n"                        /* a prefix needs its '/' */
           "GET /echo/x/y HTTP/1.1\r\n\r\n";                   /* prefix */
  p->req_len = strlen(p->req);
  p->want = 8;
  peer_run(&s, p, exchange);
  assert_int_equal(p->nresp, 8);
  assert_resp(&p->r[0], 200, "hello\n");
  assert_header(&p->r[0], "Content-Type", "text/plain");
  assert_resp(&p->r[1], 404, NULL);
  assert_resp(&p->r[2], 405, NULL);
  assert_header(&p->r[2], "Allow", "GET, HEAD, DELETE");
  assert_resp(&p->r[3], 200, "hello\n");
  assert_resp(&p->r[4], 200, "PATCH");
  assert_resp(&p->r[5], 404, NULL);
  assert_resp(&p->r[6], 404, NULL);
  assert_resp(&p->r[7], 200, NULL);
  assert_non_null(strstr(p->r[7].body, "path=/echo/x/y|"));
  for (int i = 0; i < 8; i++)
    assert_no_header(&p->r[i], "Connection"); /* all on one keep-alive connection */
  free(p);

  /* HEAD through a GET route: the length, no body */
  p = peer_new(&s);
  p->req = "HEAD /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n";
  p->req_len = strlen(p->req);
  p->want = 2;
  p->head = true;
  peer_run(&s, p, exchange);
  assert_int_equal(p->nresp, 2);
  assert_resp(&p->r[0], 200, "");
  assert_header(&p->r[0], "Content-Length", "6");
  assert_resp(&p->r[1], 200, "hello\n"); /* had HEAD sent a body, this would be off */
  free(p);

  st = stats(&s);
  assert_int_equal(st.connections, 2);
  assert_int_equal(st.requests, 10);
  assert_int_equal(st.bad_request, 0);
  srv_finish(&s);
}

static void test_query_and_path(void **state) {
  static const char *const bad_paths[] = {
      "/a/../b",        "/..",        "/a/%2e%2e/b", "/a/%2E%2e",   "/a%2f..%2fb",
      "/a%00b",         "/a%0d%0aX",  "/a%zz",       "/a%2",        "/a%",
      "*",              "http://x/a", "/a%7f"};
  struct srv s;
  struct peer *p;
  char req[256];
  (void)state;

  srv_start(&s, 0, 0);
  p = ask(&s,
          "GET /echo/a%20b/%C3%A9?q=x%2By+z&empty=&flag&bad=%zz&small=toolong&q=second#frag "
          "HTTP/1.1\r\nX-Test: v a l\r\n\r\n",
          1, false);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200,
              "path=/echo/a b/\xc3\xa9|q=x+y z|empty=|flag=|bad=(null)|none=(null)|"
              "small=(null)|x=v a l|method=GET|remote=127.0.0.1");
  free(p);

  p = ask(&s, "GET /echo/a..b/.x?%71=%3d HTTP/1.1\r\n\r\n", 1, false); /* not ".." segments */
  assert_resp(&p->r[0], 200, NULL);
  assert_non_null(strstr(p->r[0].body, "path=/echo/a..b/.x|q==|"));
  free(p);

  /* a chunked body's trailer is not a header */
  p = ask(&s, "GET /echo/t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              "0\r\nX-Test: trailer\r\n\r\n", 1, false);
  assert_resp(&p->r[0], 200, NULL);
  assert_non_null(strstr(p->r[0].body, "|x=(null)|"));
  free(p);

  for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n",
             bad_paths[i]);
    p = ask(&s, req, 1, true);
    if (p->nresp != 1 || p->r[0].status != 400)
      fail_msg("%s: %d responses, status %d", bad_paths[i], p->nresp, p->r[0].status);
    assert_refused(p, 400); /* and the pipelined request is not answered */
    free(p);
  }
  assert_int_equal(stats(&s).bad_request, sizeof(bad_paths) / sizeof(bad_paths[0]));
  srv_finish(&s);
}

static void expect_continue(struct peer *p) {
  static const char head[] = "POST /post HTTP/1.1\r\nContent-Length: 5\r\n"
                             "Expect: 100-continue\r\n\r\n";
  p->cl.fd = cl_connect(p->host, p->port);
  if (p->cl.fd < 0 || !cl_send(p->cl.fd, head, strlen(head)))
    return;
  if (!cl_response(&p->cl, &p->r[p->nresp], false))
    return;
  p->nresp++;
  if (!cl_send(p->cl.fd, "hello", 5) || !cl_response(&p->cl, &p->r[p->nresp], false))
    return;
  p->nresp++;
}

static void test_post_body(void **state) {
  struct srv s;
  struct peer *p;
  (void)state;

  srv_start(&s, 0, 0);
  {
    static const char req[] = "POST /post HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello=world"
                              "POST /post HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n w\0rld\r\n0\r\n\r\n"
                              "POST /post HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    p = peer_new(&s);
    p->req = req;
    p->req_len = sizeof(req) - 1;
    p->want = 3;
    peer_run(&s, p, exchange);
  }
  assert_int_equal(p->nresp, 3);
  assert_resp(&p->r[0], 200, "hello=world");
  assert_header(&p->r[0], "X-Len", "11");
  assert_header(&p->r[0], "Content-Type", "application/octet-stream");
  assert_resp(&p->r[1], 200, NULL);
  assert_header(&p->r[1], "X-Len", "11");
  assert_int_equal(p->r[1].body_len, 11);
  assert_memory_equal(p->r[1].body, "hello w\0rld", 11); /* binary-safe */
  assert_resp(&p->r[2], 200, "");
  assert_header(&p->r[2], "X-Null", "yes");
  free(p);

  p = peer_new(&s);
  peer_run(&s, p, expect_continue);
  assert_int_equal(p->nresp, 2);
  assert_int_equal(p->r[0].status, 100);
  assert_resp(&p->r[1], 200, "hello");
  free(p);
  srv_finish(&s);
}


static void test_keepalive(void **state) {
  struct srv s;
  struct peer *p;
  struct kw_httpd_stats st;
  (void)state;

  srv_start(&s, 0, 0);
  /* three requests one after the other on one connection; the third asks to close */
  p = peer_new(&s);
  p->steps[0] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  p->steps[1] = "GET /echo/2 HTTP/1.1\r\n\r\n";
  p->steps[2] = "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n";
  p->want_eof = true;
  peer_run(&s, p, sequence);
  assert_int_equal(p->nresp, 3);
  assert_resp(&p->r[0], 200, "hello\n");
  assert_no_header(&p->r[0], "Connection");
  assert_resp(&p->r[1], 200, NULL);
  assert_resp(&p->r[2], 200, "hello\n");
  assert_header(&p->r[2], "Connection", "close");
  assert_true(p->eof);
  free(p);
  st = stats(&s);
  assert_int_equal(st.connections, 1);
  assert_int_equal(st.requests, 3);

  /* HTTP/1.0 without keep-alive: answered, then closed */
  p = ask(&s, "GET /hello HTTP/1.0\r\n\r\nGET /hello HTTP/1.0\r\n\r\n", 1, true);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200, "hello\n");
  assert_header(&p->r[0], "Connection", "close");
  assert_true(p->eof);
  free(p);

  /* HTTP/1.0 with keep-alive: kept */
  p = peer_new(&s);
  p->steps[0] = p->steps[1] = "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  peer_run(&s, p, sequence);
  assert_int_equal(p->nresp, 2);
  assert_resp(&p->r[0], 200, "hello\n");
  assert_header(&p->r[0], "Connection", "keep-alive");
  assert_resp(&p->r[1], 200, "hello\n");
  free(p);
  st = stats(&s);
  assert_int_equal(st.connections, 3);
  assert_int_equal(st.requests, 6);
  srv_finish(&s);
}

static void test_pipelining(void **state) {
  struct srv s;
  struct peer *p;
  (void)state;

  srv_start(&s, 0, 0);
  /* in one write: a slow offloaded request, a fast one, a POST; answered in that order */
  p = ask(&s,
          "GET /slow HTTP/1.1\r\n\r\n"
          "GET /echo/second HTTP/1.1\r\n\r\n"
          "POST /post HTTP/1.1\r\nContent-Length: 5\r\n\r\nthird"
          "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n"
          "GET /echo/never HTTP/1.1\r\n\r\n",
          5, true);
  assert_int_equal(p->nresp, 4); /* nothing after Connection: close */
  assert_resp(&p->r[0], 200, "slow");
  assert_resp(&p->r[1], 200, NULL);
  assert_non_null(strstr(p->r[1].body, "path=/echo/second|"));
  assert_resp(&p->r[2], 200, "third");
  assert_resp(&p->r[3], 200, "hello\n");
  assert_true(p->eof);
  free(p);
  assert_int_equal(stats(&s).requests, 4);
  srv_finish(&s);
}

static void test_offload(void **state) {
  struct srv s;
  struct peer *p;
  (void)state;

  srv_start(&s, 0, 0);
  memset(&g_work_thread, 0, sizeof(g_work_thread));
  memset(&g_done_thread, 0, sizeof(g_done_thread));
  p = ask(&s, "GET /slow HTTP/1.1\r\n\r\n", 1, false);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200, "slow");
  assert_false(pthread_equal(g_work_thread, g_main_thread)); /* work: a pool thread */
  assert_false(pthread_equal(g_work_thread, p->th));
  assert_true(pthread_equal(g_done_thread, g_main_thread)); /* done: the loop's */
  free(p);
  srv_finish(&s);
}

static void test_bad_handler_headers(void **state) {
  struct srv s;
  struct peer *p;
  (void)state;

  srv_start(&s, 0, 0);
  p = ask(&s, "GET /badhdr HTTP/1.1\r\n\r\nGET /framing HTTP/1.1\r\n\r\n"
              "GET /hello HTTP/1.1\r\n\r\n", 3, false);
  assert_int_equal(p->nresp, 3);
  assert_resp(&p->r[0], 500, NULL);
  assert_no_header(&p->r[0], "X-Injected");
  assert_null(strstr(p->r[0].head, "X-A"));
  assert_resp(&p->r[1], 500, NULL);
  assert_resp(&p->r[2], 200, "hello\n"); /* the connection stays in sync */
  free(p);
  srv_finish(&s);
}

/* ---- tests: bounds ---------------------------------------------------------------------- */

/* A request whose header block has nh headers and pad bytes of one header's value. */
static char *head_of(int nh, size_t pad, size_t *len) {
  size_t cap = 64 + (size_t)nh * 32 + pad, n;
  char *b = malloc(cap);
  assert_non_null(b);
  n = (size_t)snprintf(b, cap, "GET /hello HTTP/1.1\r\n");
  for (int i = 0; i < nh; i++)
    n += (size_t)snprintf(b + n, cap - n, "X-H%d: v\r\n", i);
  if (pad > 0) {
    memcpy(b + n, "X-Pad: ", 7);
    memset(b + n + 7, 'a', pad);
    n += 7 + pad;
    memcpy(b + n, "\r\n", 2);
    n += 2;
  }
  memcpy(b + n, "\r\n", 3);
  *len = n + 2;
  return b;
}

static struct peer *ask_n(struct srv *s, const char *req, size_t len, int want, bool eof) {
  struct peer *p = peer_new(s);
  p->req = req;
  p->req_len = len;
  p->want = want;
  p->want_eof = eof;
  peer_run(s, p, exchange);
  return p;
}

static void test_431(void **state) {
  struct srv s;
  struct peer *p;
  size_t len;
  char *req;
  (void)state;

  srv_start(&s, 0, 0);
  /* 17 KiB of headers */
  req = head_of(0, 17 * 1024, &len);
  p = ask_n(&s, req, len, 1, true);
  assert_refused(p, 431);
  free(p);
  free(req);
  /* just under 16 KiB: fine */
  req = head_of(0, 16 * 1024 - 64, &len);
  assert_true(len <= 16 * 1024);
  p = ask_n(&s, req, len, 1, false);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200, "hello\n");
  free(p);
  free(req);
  /* 65 headers; 64 are fine */
  req = head_of(65, 0, &len);
  p = ask_n(&s, req, len, 1, true);
  assert_refused(p, 431);
  free(p);
  free(req);
  req = head_of(64, 0, &len);
  p = ask_n(&s, req, len, 1, false);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200, "hello\n");
  free(p);
  free(req);
  assert_int_equal(stats(&s).too_large, 2);
  srv_finish(&s);
}

static void test_413(void **state) {
  struct srv s;
  struct peer *p;
  size_t cap = 80 * 1024, n;
  char *req = malloc(cap);
  (void)state;

  assert_non_null(req);
  srv_start(&s, 0, 0);
  /* declared 65 KiB: refused from the headers, the body never sent */
  p = ask(&s, "POST /post HTTP/1.1\r\nContent-Length: 66560\r\n\r\n", 1, true);
  assert_refused(p, 413);
  free(p);
  /* 64 KiB exactly: fine */
  n = (size_t)snprintf(req, cap, "POST /post HTTP/1.1\r\nContent-Length: 65536\r\n\r\n");
  memset(req + n, 'b', 65536);
  p = ask_n(&s, req, n + 65536, 1, false);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200, NULL);
  assert_int_equal(p->r[0].body_len, 65536);
  free(p);
  /* chunked past 64 KiB */
  n = (size_t)snprintf(req, cap, "POST /post HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 5; i++) {
    n += (size_t)snprintf(req + n, cap - n, "3400\r\n"); /* 13 KiB chunks */
    memset(req + n, 'c', 0x3400);
    n += 0x3400;
    memcpy(req + n, "\r\n", 2);
    n += 2;
  }
  n += (size_t)snprintf(req + n, cap - n, "0\r\n\r\n");
  p = ask_n(&s, req, n, 1, true);
  assert_refused(p, 413);
  free(p);
  assert_int_equal(stats(&s).too_large, 2);
  free(req);
  srv_finish(&s);
}

static void test_400(void **state) {
  static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage";
  static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  static const char *const reqs[] = {
      "hello world\r\n\r\n",
      "GET /hello HTTP/2.0\r\n\r\n",
      "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n",
      "GET /hello HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST /post HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  struct srv s;
  struct peer *p;
  (void)state;

  srv_start(&s, 0, 0);
  p = ask_n(&s, tls, sizeof(tls) - 1, 1, true);
  assert_refused(p, 400);
  free(p);
  p = ask(&s, h2, 1, true);
  assert_refused(p, 400);
  free(p);
  for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
    p = ask(&s, reqs[i], 1, true);
    if (p->nresp != 1 || p->r[0].status != 400)
      fail_msg("request %zu: %d responses, status %d", i, p->nresp, p->r[0].status);
    assert_refused(p, 400);
    free(p);
  }
  assert_int_equal(stats(&s).bad_request, 2 + sizeof(reqs) / sizeof(reqs[0]));
  srv_finish(&s);
}

/* ---- tests: time ---------------------------------------------------------------------- */

/* Starts a request, then sends one more header byte every 200 ms until answered. */
static void slowloris(struct peer *p) {
  static const char start[] = "GET /hello HTTP/1.1\r\nX-Slow: ";
  long t0, end;
  p->cl.fd = cl_connect(p->host, p->port);
  if (p->cl.fd < 0)
    return;
  t0 = now_ms();
  end = t0 + 5000;
  if (!cl_send(p->cl.fd, start, strlen(start)))
    return;
  while (now_ms() < end) {
    struct pollfd pfd = {.fd = p->cl.fd, .events = POLLIN};
    if (poll(&pfd, 1, 200) > 0)
      break;
    if (!cl_send(p->cl.fd, "a", 1))
      break;
    p->n++;
  }
  p->ms = now_ms() - t0;
  if (cl_response(&p->cl, &p->r[0], false))
    p->nresp = 1;
  p->eof = cl_eof(&p->cl, 4000);
}

static void test_408(void **state) {
  struct srv s;
  struct peer *p;
  (void)state;

  srv_start(&s, 500, 0);
  p = peer_new(&s);
  peer_run(&s, p, slowloris);
  assert_refused(p, 408);
  if (p->ms < 400 || p->ms > 1500)
    fail_msg("408 after %ld ms, want ~500", p->ms);
  assert_true(p->n >= 2); /* it kept sending, and was cut off anyway */
  free(p);

  /* a body that stalls: 408 once header_timeout has passed since the headers */
  p = ask(&s, "POST /post HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", 1, true);
  assert_refused(p, 408);
  if (p->ms < 400 || p->ms > 1500)
    fail_msg("408 after %ld ms, want ~500", p->ms);
  free(p);
  assert_int_equal(stats(&s).timeouts, 2);
  srv_finish(&s);
}

static void test_idle(void **state) {
  struct srv s;
  struct peer *p;
  (void)state;

  srv_start(&s, 500, 300);
  /* an answered keep-alive connection is closed, silently, after idle_timeout */
  p = peer_new(&s);
  p->steps[0] = "GET /hello HTTP/1.1\r\n\r\n";
  p->steps[1] = "GET /hello HTTP/1.1\r\n\r\n";
  p->want_eof = true;
  peer_run(&s, p, sequence);
  assert_int_equal(p->nresp, 2);
  assert_resp(&p->r[1], 200, "hello\n");
  assert_true(p->eof); /* closed, no bytes */
  if (p->eof_ms < 200 || p->eof_ms > 2000)
    fail_msg("idle close after %ld ms, want ~300", p->eof_ms);
  free(p);
  /* a connection that never sends: closed after header_timeout */
  p = ask(&s, "", 0, true);
  assert_int_equal(p->nresp, 0);
  assert_true(p->eof);
  if (p->eof_ms < 400 || p->eof_ms > 2000)
    fail_msg("silent connection closed after %ld ms, want ~500", p->eof_ms);
  free(p);
  assert_int_equal(stats(&s).timeouts, 0); /* silent closes are not 408s */
  srv_finish(&s);
}

/* ---- tests: lifecycles ---------------------------------------------------------------- */

/* Sends a gated request, waits until its work runs, and resets the connection. */
static void leave_while_offloaded(struct peer *p) {
  static const char req[] = "GET /gate HTTP/1.1\r\n\r\n";
  struct linger lg = {1, 0};
  p->cl.fd = cl_connect(p->host, p->port);
  if (p->cl.fd < 0 || !cl_send(p->cl.fd, req, strlen(req)))
    return;
  for (int i = 0; i < 2500 && !atomic_load(&g_gate_entered); i++)
    sleep_ms(2);
  p->sent_ok = atomic_load(&g_gate_entered) != 0;
  setsockopt(p->cl.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(p->cl.fd); /* RST */
  p->cl.fd = -1;
}

static void test_client_gone_while_offloaded(void **state) {
  struct srv s;
  struct peer *p;
  struct open_arg none = {&s, 0};
  (void)state;

  srv_start(&s, 0, 0);
  p = peer_new(&s);
  peer_run(&s, p, leave_while_offloaded);
  assert_true(p->sent_ok);
  free(p);
  assert_int_equal(stats(&s).open, 1); /* held for the handler */
  atomic_store(&g_gate_open, 1);
  assert_true(run_until(&s.loop, is_set, &g_gate_done, WAIT_MS)); /* responded: no crash */
  assert_true(run_until(&s.loop, open_is, &none, WAIT_MS));
  /* the server still serves */
  p = ask(&s, "GET /hello HTTP/1.1\r\n\r\n", 1, false);
  assert_resp(&p->r[0], 200, "hello\n");
  free(p);
  srv_finish(&s);
}

#define LIMIT 256

/* Opens LIMIT connections, then one more, which must be closed at once. */
static void crowd(struct peer *p) {
  static const char req[] = "GET /hello HTTP/1.1\r\n\r\n";
  int *fds = malloc(sizeof(int) * LIMIT);
  struct cl *extra = malloc(sizeof(*extra));
  int n = 0;

  if (fds == NULL || extra == NULL)
    goto out;
  for (; n < LIMIT; n++) {
    fds[n] = cl_connect(p->host, p->port);
    if (fds[n] < 0)
      goto out;
  }
  /* the last one answered: all were accepted (in order) */
  p->cl.fd = fds[LIMIT - 1];
  if (!cl_send(p->cl.fd, req, strlen(req)) || !cl_response(&p->cl, &p->r[0], false))
    goto out;
  p->nresp = 1;
  p->cl.fd = -1;
  extra->len = 0;
  extra->fd = cl_connect(p->host, p->port); /* the kernel accepts; the server closes */
  if (extra->fd >= 0) {
    cl_send(extra->fd, req, strlen(req));
    p->eof = cl_eof(extra, 3000);
    close(extra->fd);
  }
  p->n = n;
out:
  while (n-- > 0)
    close(fds[n]);
  free(fds);
  free(extra);
}

static void test_connection_limit(void **state) {
  struct srv s;
  struct peer *p;
  struct open_arg none = {&s, 0};
  (void)state;

  srv_start(&s, 0, 0);
  p = peer_new(&s);
  peer_run(&s, p, crowd);
  assert_int_equal(p->n, LIMIT);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200, "hello\n");
  assert_true(p->eof); /* the 257th: closed without an answer */
  free(p);
  assert_int_equal(stats(&s).refused, 1);
  assert_true(run_until(&s.loop, open_is, &none, WAIT_MS));
  p = ask(&s, "GET /hello HTTP/1.1\r\n\r\n", 1, false); /* room again */
  assert_resp(&p->r[0], 200, "hello\n");
  free(p);
  assert_int_equal(stats(&s).connections, LIMIT + 1);
  srv_finish(&s);
}

static void test_close_inflight(void **state) {
  struct srv s;
  struct peer *p;
  int fd;
  (void)state;

  srv_start(&s, 0, 0);
  p = peer_new(&s);
  p->req = "GET /gate HTTP/1.1\r\n\r\n";
  p->req_len = strlen(p->req);
  p->want = 1;
  p->want_eof = true;
  p->fn = exchange;
  assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
  assert_true(run_until(&s.loop, is_set, &g_gate_entered, WAIT_MS));
  kw_httpd_close(s.h, on_closed, &s.closed);
  run_until(&s.loop, never, NULL, 200);
  assert_int_equal(atomic_load(&s.closed), 0); /* waits for the answer */
  fd = cl_connect("127.0.0.1", s.port);       /* no longer listening */
  assert_true(fd < 0);
  atomic_store(&g_gate_open, 1);
  assert_true(run_until(&s.loop, is_set, &s.closed, WAIT_MS));
  assert_true(run_until(&s.loop, is_set, &p->done, WAIT_MS));
  pthread_join(p->th, NULL);
  assert_int_equal(p->nresp, 1);
  assert_resp(&p->r[0], 200, "gate");
  assert_header(&p->r[0], "Connection", "close");
  assert_true(p->eof);
  free(p);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  assert_int_equal(atomic_load(&s.closed), 1);
  assert_int_equal(uv_loop_close(&s.loop), 0);
}

/* Closing with idle and half-sent connections open: they are dropped, cb follows. */
static void half_request(struct peer *p) {
  p->n = cl_connect(p->host, p->port); /* kept open: closed by the test */
  if (p->n >= 0)
    p->sent_ok = cl_send(p->n, "GET /hel", 8);
}

static void test_close_drops_idle(void **state) {
  struct srv s;
  struct peer *p;
  struct open_arg one = {&s, 1};
  (void)state;

  srv_start(&s, 0, 0);
  p = peer_new(&s);
  peer_run(&s, p, half_request); /* the peer keeps its socket open until freed */
  assert_true(p->sent_ok);
  assert_true(run_until(&s.loop, open_is, &one, WAIT_MS));
  srv_finish(&s);
  close(p->n);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_start_errors),
      cmocka_unit_test(test_listen_forms),
      cmocka_unit_test(test_routing),
      cmocka_unit_test(test_query_and_path),
      cmocka_unit_test(test_post_body),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_pipelining),
      cmocka_unit_test(test_offload),
      cmocka_unit_test(test_bad_handler_headers),
      cmocka_unit_test(test_431),
      cmocka_unit_test(test_413),
      cmocka_unit_test(test_400),
      cmocka_unit_test(test_408),
      cmocka_unit_test(test_idle),
      cmocka_unit_test(test_client_gone_while_offloaded),
      cmocka_unit_test(test_connection_limit),
      cmocka_unit_test(test_close_inflight),
      cmocka_unit_test(test_close_drops_idle),
  };
  signal(SIGPIPE, SIG_IGN);
  g_main_thread = pthread_self();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
