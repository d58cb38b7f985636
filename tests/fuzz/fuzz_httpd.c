/* fuzz_httpd.c — libFuzzer harness for the HTTP server (sidecar/httpd.c): each input is
 * what a client sends on one connection to a kw_httpd on 127.0.0.1.
 *
 * Input: "<c><bytes…>".  c picks how the bytes are written: 1 + c % 3 chunks, cut at
 * fractions of the length taken from c's other bits, each written (TCP_NODELAY) and read
 * by the server before the next, so parsing sees requests cut at arbitrary points.
 * Then the client shuts down its write side and reads until the server closes (EOF), or
 * at most RUN_MS.  c == 0xFF instead holds the connection open (no shutdown) against a
 * second server whose timeouts are QUICK_MS, so that the 408 and idle paths run without
 * costing the 200 ms of the main server's timeouts.
 *
 * The servers (created once, in LLVMFuzzerInitialize, on a private loop; the main one
 * with 200 ms header and idle timeouts) have routes for each way a handler answers:
 *   GET  /index.html  answers at once;
 *   GET  /api/        answers at once from kw_http_query() ("a", "b" in a 4-byte buffer,
 *                     "status", "ct" and "h" — raw extra header lines — chosen by the
 *                     client) and kw_http_header() (Host, User-Agent; X-Echo is sent back
 *                     as an extra header): bad statuses, content types and headers must
 *                     turn into a 500, never reach the wire;
 *   POST /api/        echoes the body's length (and checks it against Content-Length);
 *   *    /work/       offloads to the thread pool (which reads headers, query and body)
 *                     and answers in done — twice offloaded for "?again";
 *   GET  /later       answers on a later loop iteration (a 0 ms timer).
 * Every handler checks what httpd.h promises about a request: a method, a decoded path
 * starting with '/' without control bytes or ".." segments, a query, the remote address,
 * a body that is NULL exactly when empty, NUL-terminated and at most 64 KiB.
 *
 * Asserted on what the client reads (abort() on violation):
 *  - it is a sequence of whole responses, each "HTTP/1.1 " + a 3-digit status (100..599)
 *    + ' ', with "\r\n"-terminated header lines, each one the server sends (at most once)
 *    or one a handler passed in extra_headers that does not frame the message (a CR or LF
 *    smuggled into a value shows up as a foreign line, a framing header as a repeated or
 *    foreign one), and a body of Content-Length bytes — none at all when it answers a
 *    HEAD request, refusals included (response k answers the k-th request http_parser
 *    finds in the input);
 *  - every final response carries Content-Security-Policy (the configured one),
 *    Content-Length (except 204/304) and Date; interim ones are exactly
 *    "HTTP/1.1 100 Continue\r\n\r\n";
 *  - no more final responses than complete requests (http_parser run over the same bytes),
 *    plus at most one refusal (400/408/413/431/503), which must then come last and carry
 *    "Connection: close"; a response with "Connection: close" is the last one;
 *  - the server's counters agree with the wire: requests routed + refusals counted ==
 *    final responses read;
 *  - connections do not pile up on the server (kw_httpd_stats().open, after waiting up to
 *    GONE_MS for this one to go).
 * These strict checks are skipped when the connection was reset or RUN_MS passed (then
 * the stream may be cut); each response read whole is still checked.
 *
 * Build: cmake -S . -B build-fuzz -DKW_FUZZ=ON -DCMAKE_C_COMPILER=clang && \
 *        cmake --build build-fuzz --target fuzz_httpd   (links kwcli for httpd.c;
 *        KW_FUZZ_ONLY=httpd scripts/fuzz.sh 60 builds and runs it alone)
 * Run:   mkdir -p /tmp/httpd_corpus && build-fuzz/fuzz_httpd \
 *          -dict=tests/fuzz/fuzz_httpd.dict /tmp/httpd_corpus tests/fuzz/corpus/fuzz_httpd
 * FUZZ_HTTPD_SHOW=1 in the environment prints what the server answered to each input.
 * Thread: libFuzzer's, which also runs the server's loop; offloaded work on libuv's pool.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <uv.h>

#include "sidecar/httpd.h"

#define CSP "default-src 'none'; img-src 'self'; frame-ancestors 'none'"
#define TIMEOUT_MS 200  /* header_timeout_ms and idle_timeout_ms */
#define QUICK_MS 5      /* the same, of the server for inputs that hold the connection */
#define RUN_MS 300      /* one input, from connect to the server's close */
#define GONE_MS 50      /* the server forgetting the connection after that */
#define ACCEPT_MS 2000  /* the server accepting: longer means it stopped */
#define BODY_MAX (64 * 1024)
#define HEAD_MAX (16 * 1024) /* httpd.h's bounds */

struct server {
  struct kw_httpd *h;
  struct sockaddr_in addr;
};

struct state {
  uv_loop_t loop;
  struct server main, quick; /* TIMEOUT_MS, QUICK_MS */
  struct {
    char *p;
    size_t n, cap;
  } extras; /* every extra_headers a handler passed for the current input */
};

static struct state g; /* one loop and its servers for the whole run */

static void note_extras(const char *x) {
  size_t n = strlen(x);
  if (n == 0)
    return;
  if (g.extras.n + n > g.extras.cap) {
    size_t cap = (g.extras.n + n) * 2;
    char *p = realloc(g.extras.p, cap);
    if (p == NULL)
      abort();
    g.extras.p = p;
    g.extras.cap = cap;
  }
  memcpy(g.extras.p + g.extras.n, x, n);
  g.extras.n += n;
}

/* ------------------------------------------------------------------ the handlers */

static void check_request(const struct kw_http_request *rq) {
  const char *p = rq->path;

  if (rq->method == NULL || rq->method[0] == '\0' || p == NULL || p[0] != '/' ||
      rq->query == NULL || rq->remote == NULL || strcmp(rq->remote, "127.0.0.1") != 0) {
    fprintf(stderr, "fuzz_httpd: a handler got a request without method, path or query\n");
    abort();
  }
  for (const char *s = p; *s != '\0'; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) {
      fprintf(stderr, "fuzz_httpd: a control byte in the decoded path\n");
      abort();
    }
  for (const char *seg = p; seg != NULL; seg = strchr(seg + 1, '/'))
    if (seg[1] == '.' && seg[2] == '.' && (seg[3] == '/' || seg[3] == '\0')) {
      fprintf(stderr, "fuzz_httpd: a \"..\" segment in the decoded path %s\n", p);
      abort();
    }
  if ((rq->body == NULL) != (rq->body_len == 0) || rq->body_len > BODY_MAX ||
      (rq->body != NULL && rq->body[rq->body_len] != '\0')) {
    fprintf(stderr, "fuzz_httpd: body %p of %zu bytes\n", (const void *)rq->body, rq->body_len);
    abort();
  }
}

/* kw_http_query()'s result is NULL or buf, NUL-terminated within it. */
static const char *query(const struct kw_http_request *rq, const char *name, char *buf,
                         size_t len) {
  const char *v = kw_http_query(rq, name, buf, len);
  if (v != NULL && (v != buf || memchr(buf, '\0', len) == NULL))
    abort();
  return v;
}

static void on_root(struct kw_http_request *rq, void *arg) {
  (void)arg;
  check_request(rq);
  kw_httpd_respond(rq, 200, "text/html; charset=utf-8", "<p>keywatch</p>\n", 16, NULL);
}

static void on_get(struct kw_http_request *rq, void *arg) {
  char a[64], b[4], st[8], ct[96], hd[256], extra[600], body[256];
  const char *qa, *qb, *qs, *qct, *qh, *host, *ua, *echo;
  int status = 200, n;

  (void)arg;
  check_request(rq);
  qa = query(rq, "a", a, sizeof(a));
  qb = query(rq, "b", b, sizeof(b));
  qs = query(rq, "status", st, sizeof(st));
  qct = query(rq, "ct", ct, sizeof(ct));
  qh = query(rq, "h", hd, sizeof(hd));
  host = kw_http_header(rq, "Host");
  ua = kw_http_header(rq, "user-agent");
  echo = kw_http_header(rq, "X-Echo");
  if (qs != NULL) {
    char *end;
    long v = strtol(qs, &end, 10);
    if (end != qs && *end == '\0' && v > -100000 && v < 100000)
      status = (int)v;
  }
  snprintf(extra, sizeof(extra), "%s%s%s%s", echo != NULL ? "X-Echo: " : "",
           echo != NULL ? echo : "", echo != NULL ? "\r\n" : "", qh != NULL ? qh : "");
  note_extras(extra);
  n = snprintf(body, sizeof(body), "a=%s b=%s host=%zu ua=%zu\n", qa ? qa : "-", qb ? qb : "-",
               host ? strlen(host) : 0, ua ? strlen(ua) : 0);
  kw_httpd_respond(rq, status, qct != NULL ? qct : "text/plain; charset=utf-8", body,
                   (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1,
                   echo != NULL || qh != NULL ? extra : NULL);
}

static void on_post(struct kw_http_request *rq, void *arg) {
  const char *cl = kw_http_header(rq, "content-length");
  char body[64];
  int n;

  (void)arg;
  check_request(rq);
  if (cl != NULL && kw_http_header(rq, "transfer-encoding") == NULL) {
    char *end;
    unsigned long long v = strtoull(cl, &end, 10);
    while (*end == ' ' || *end == '\t')
      end++;
    if (end != cl && cl[0] >= '0' && cl[0] <= '9' && *end == '\0' && v != rq->body_len) {
      fprintf(stderr, "fuzz_httpd: Content-Length: %s, body of %zu bytes\n", cl, rq->body_len);
      abort();
    }
  }
  n = snprintf(body, sizeof(body), "len=%zu\n", rq->body_len);
  note_extras("X-Query: post\r\n");
  kw_httpd_respond(rq, 200, "text/plain", body, (size_t)n, "X-Query: post\r\n");
}

struct work {
  unsigned passes;
  uint32_t sum;
  char n[16];
  bool again;
};

static void work_fn(struct kw_http_request *rq, void *arg) { /* on a pool thread */
  struct work *w = arg;
  const char *x = kw_http_header(rq, "x-work");
  uint32_t sum = w->sum;

  if (x != NULL)
    for (const char *s = x; *s != '\0'; s++)
      sum = sum * 31 + (unsigned char)*s;
  for (size_t i = 0; i < rq->body_len; i++)
    sum = sum * 31 + (unsigned char)rq->body[i];
  if (kw_http_query(rq, "n", w->n, sizeof(w->n)) == NULL)
    snprintf(w->n, sizeof(w->n), "-");
  w->again = kw_http_query(rq, "again", (char[2]){0}, 2) != NULL;
  w->sum = sum;
}

static void done_fn(struct kw_http_request *rq, void *arg) { /* on the loop */
  struct work *w = arg;
  char body[64];
  int n;

  check_request(rq);
  if (w->again && ++w->passes < 2 && kw_httpd_offload(rq, work_fn, done_fn, w) == 0)
    return;
  n = snprintf(body, sizeof(body), "sum=%08x n=%s\n", (unsigned)w->sum, w->n);
  free(w);
  kw_httpd_respond(rq, 200, "text/plain", body, (size_t)n, NULL);
}

static void on_offload(struct kw_http_request *rq, void *arg) {
  struct work *w = calloc(1, sizeof(*w));

  (void)arg;
  check_request(rq);
  if (w == NULL)
    abort();
  if (kw_httpd_offload(rq, work_fn, done_fn, w) != 0) {
    free(w);
    kw_httpd_respond(rq, 503, "text/plain", "busy\n", 5, NULL);
  }
}

struct later {
  uv_timer_t t;
  struct kw_http_request *rq;
};

static void on_later_closed(uv_handle_t *hd) {
  free(hd->data);
}

static void on_later_timer(uv_timer_t *t) {
  struct later *l = t->data;
  note_extras("X-Query: later\r\n");
  kw_httpd_respond(l->rq, 202, NULL, "later\n", 6, "X-Query: later\r\n");
  uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static void on_later(struct kw_http_request *rq, void *arg) {
  struct later *l = malloc(sizeof(*l));

  (void)arg;
  check_request(rq);
  if (l == NULL || uv_timer_init(&g.loop, &l->t) != 0)
    abort();
  l->rq = rq;
  l->t.data = l;
  uv_timer_start(&l->t, on_later_timer, 0, 0);
}

static const struct kw_http_route routes[] = {
    {.method = "GET", .prefix = "/index.html", .fn = on_root}, /* "/" would take every GET */
    {.method = "GET", .prefix = "/api/", .fn = on_get},
    {.method = "POST", .prefix = "/api/", .fn = on_post},
    {.method = "*", .prefix = "/work/", .fn = on_offload},
    {.method = "GET", .prefix = "/later", .fn = on_later},
};

static void server_start(struct server *s, unsigned timeout_ms) {
  struct kw_httpd_opts o = {.listen = "127.0.0.1:0",
                            .routes = routes,
                            .nroutes = sizeof(routes) / sizeof(routes[0]),
                            .csp = CSP,
                            .header_timeout_ms = timeout_ms,
                            .idle_timeout_ms = timeout_ms};
  char err[256];

  if (kw_httpd_start(&g.loop, &o, &s->h, err, sizeof(err)) != 0) {
    fprintf(stderr, "fuzz_httpd: %s\n", err);
    abort();
  }
  s->addr.sin_family = AF_INET;
  s->addr.sin_port = htons((uint16_t)kw_httpd_port(s->h));
  s->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN); /* httpd.h: the process must */
  if (uv_loop_init(&g.loop) != 0)
    abort();
  server_start(&g.main, TIMEOUT_MS);
  server_start(&g.quick, QUICK_MS);
  return 0;
}

/* ------------------------------------------------------------------ the client */

struct client {
  const struct server *srv;
  int fd;
  char *in;  /* what the server sent */
  size_t n, cap;
  bool eof, reset;
  uint64_t deadline;
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void drain(struct client *cl) {
  while (!cl->eof) {
    ssize_t r;
    if (cl->cap - cl->n < 4096) {
      char *p = realloc(cl->in, cl->cap * 2 + 4096);
      if (p == NULL)
        abort();
      cl->in = p;
      cl->cap = cl->cap * 2 + 4096;
    }
    r = recv(cl->fd, cl->in + cl->n, cl->cap - cl->n, 0);
    if (r > 0) {
      cl->n += (size_t)r;
    } else if (r == 0) {
      cl->eof = true;
    } else if (errno != EINTR) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        cl->eof = true;
        cl->reset = true;
      }
      return;
    }
  }
}

/* One round: waits up to max_ms for the loop or the client socket, runs the loop once
 * without blocking, reads what the server sent. */
static void pump(struct client *cl, int max_ms) {
  struct pollfd p[2] = {{.fd = uv_backend_fd(&g.loop), .events = POLLIN},
                        {.fd = cl->fd, .events = POLLIN}};
  int t = uv_backend_timeout(&g.loop);

  if (t < 0 || t > max_ms)
    t = max_ms;
  poll(p, cl->eof ? 1 : 2, t);
  uv_run(&g.loop, UV_RUN_NOWAIT);
  drain(cl);
}

static int left_ms(const struct client *cl) {
  uint64_t now = now_ms();
  return now >= cl->deadline ? 0 : (int)(cl->deadline - now);
}

static void send_all(struct client *cl, const uint8_t *d, size_t n) {
  while (n > 0 && !cl->eof && left_ms(cl) > 0) {
    ssize_t r = send(cl->fd, d, n, MSG_NOSIGNAL);
    if (r > 0) {
      d += r;
      n -= (size_t)r;
    } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      cl->reset = errno == ECONNRESET; /* else closed: what it answered is still to come */
      return;
    } else {
      pump(cl, 1);
    }
  }
  /* the server reads the piece now: its watcher may need one round to be armed */
  pump(cl, 0);
  pump(cl, 0);
}

/* Connects the non-blocking cl->fd: loopback completes the handshake without the server
 * accepting, but libFuzzer's timer signal may interrupt it (EINTR: it goes on). */
static int client_connect(struct client *cl) {
  struct pollfd p = {.fd = cl->fd, .events = POLLOUT};
  socklen_t len = sizeof(int);
  int err = 0;

  if (connect(cl->fd, (const struct sockaddr *)&cl->srv->addr, sizeof(cl->srv->addr)) == 0)
    return 0;
  if (errno != EINPROGRESS && errno != EINTR)
    return -1;
  while (poll(&p, 1, left_ms(cl)) < 0)
    if (errno != EINTR)
      return -1;
  if (getsockopt(cl->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return -1;
  errno = err != 0 ? err : ETIMEDOUT;
  return err == 0 && (p.revents & POLLOUT) ? 0 : -1;
}

/* ------------------------------------------------------------------ the checks */

/* The requests in the input as http_parser sees them (the same library, so the same
 * boundaries; paused at each end, as the server does): how many are complete — the most
 * the server may answer — and whether each is a HEAD request.  Request k starts after
 * request k-1 ends, past the CR/LF bytes http_parser skips there.  "HEAD " is HEAD, a
 * first byte other than 'H' is not; anything else ("HEAX", or "HEAD " after 16 KiB of
 * CR/LF, refused before it begins) may be answered either way. */
#define MAX_MODEL 1024

enum head { HEAD_NO, HEAD_YES, HEAD_MAYBE };

struct model {
  size_t complete, nkind;
  uint8_t kind[MAX_MODEL]; /* enum head of request k */
};

static struct model model;

static int ref_complete(http_parser *p) {
  model.complete++;
  http_parser_pause(p, 1);
  return 0;
}

static enum head head_kind(const uint8_t *d, size_t n) {
  size_t i = 0;

  while (i < n && (d[i] == '\r' || d[i] == '\n'))
    i++;
  if (i == n || d[i] != 'H')
    return HEAD_NO;
  if (n - i >= 5 && memcmp(d + i, "HEAD ", 5) == 0 && i + 5 <= HEAD_MAX)
    return HEAD_YES;
  return HEAD_MAYBE;
}

static void model_requests(const uint8_t *d, size_t n) {
  static const http_parser_settings s = {.on_message_complete = ref_complete};
  http_parser p;
  size_t off = 0;

  http_parser_init(&p, HTTP_REQUEST);
  model.complete = model.nkind = 0;
  for (;;) {
    if (model.nkind < MAX_MODEL)
      model.kind[model.nkind++] = (uint8_t)head_kind(d + off, n - off);
    off += http_parser_execute(&p, &s, (const char *)d + off, n - off);
    if (HTTP_PARSER_ERRNO(&p) != HPE_PAUSED || off >= n)
      break;
    http_parser_pause(&p, 0);
  }
}

/* Response k answers request k: in order, one each, a refusal the one in progress. */
static enum head answers_head(size_t k) {
  if (k >= model.nkind)
    return model.nkind == MAX_MODEL ? HEAD_MAYBE : HEAD_NO;
  return (enum head)model.kind[k];
}

static const char *const names[] = {
    "Date", "Content-Type", "Content-Length", "Cache-Control", "X-Content-Type-Options",
    "Referrer-Policy", "X-Frame-Options", "Content-Security-Policy", "Connection", "Allow",
    "X-Echo", "X-Query",
};
enum { H_DATE, H_CTYPE, H_CLEN, H_CC, H_XCTO, H_RP, H_XFO, H_CSP, H_CONN, H_ALLOW, H_NAMES };

static void bad(const char *what, const char *resp, size_t n) {
  fprintf(stderr, "fuzz_httpd: %s in the response:\n%.*s\n", what, (int)(n < 2000 ? n : 2000),
          resp);
  abort();
}

struct seen {
  size_t final, refusals, close_at; /* close_at: 1 + index of the first "close" response */
};

/* Whether the header line [line, end) (with its CRLF) is one a handler passed, not one
 * that frames the message (httpd.h: those must not be sent). */
static bool from_extras(const char *line, const char *end) {
  static const char *const framing[] = {"content-length:", "transfer-encoding:",
                                        "connection:"};
  size_t len = (size_t)(end - line);

  for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++)
    if (len >= strlen(framing[i]) && strncasecmp(line, framing[i], strlen(framing[i])) == 0)
      return false;
  return g.extras.n >= len && memmem(g.extras.p, g.extras.n, line, len) != NULL;
}

/* Checks the stream of responses s[0..n); cut: the stream may end inside one. */
static void check_responses(const char *s, size_t n, bool cut, struct seen *sn) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  size_t off = 0;

  memset(sn, 0, sizeof(*sn));
  while (off < n) {
    const char *r = s + off, *end, *line;
    size_t rest = n - off, clen = 0;
    unsigned seen_mask = 0;
    int status;
    enum head head;
    bool close = false, next;

    if (rest < 13 || memcmp(r, "HTTP/1.1 ", 9) != 0) {
      if (cut && memcmp(r, "HTTP/1.1 ", rest < 9 ? rest : 9) == 0)
        return;
      bad("no \"HTTP/1.1 \"", r, rest);
    }
    if (r[9] < '1' || r[9] > '5' || r[10] < '0' || r[10] > '9' || r[11] < '0' ||
        r[11] > '9' || r[12] != ' ')
      bad("no 3-digit status", r, rest);
    status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
    end = memmem(r, rest, "\r\n\r\n", 4);
    if (end == NULL) {
      if (cut)
        return;
      bad("an unterminated head", r, rest);
    }
    if (status < 200) {
      if ((size_t)(end + 4 - r) != sizeof(cont) - 1 || memcmp(r, cont, sizeof(cont) - 1) != 0)
        bad("an interim response other than 100 Continue", r, rest);
      off += sizeof(cont) - 1;
      continue;
    }
    line = memmem(r, (size_t)(end + 2 - r), "\r\n", 2) + 2; /* after the status line */
    if (memchr(r, '\n', (size_t)(line - 1 - r)) != NULL ||
        memchr(r, '\r', (size_t)(line - 2 - r)) != NULL)
      bad("a CR or LF in the status line", r, rest);
    while (line < end + 2) {
      const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
      const char *colon = memchr(line, ':', (size_t)(eol - line));
      size_t nl = colon ? (size_t)(colon - line) : 0, k;

      if (memchr(line, '\n', (size_t)(eol - line)) || memchr(line, '\r', (size_t)(eol - line)))
        bad("a CR or LF inside a header line", r, rest);
      if (from_extras(line, eol + 2)) {
        line = eol + 2;
        continue;
      }
      if (colon == NULL || colon[1] != ' ')
        bad("a header line that is not \"Name: value\"", r, rest);
      for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (strlen(names[k]) == nl && strncasecmp(line, names[k], nl) == 0)
          break;
      if (k == sizeof(names) / sizeof(names[0]))
        bad("a header no one sends", r, rest);
      if (seen_mask & (1u << k))
        bad("a repeated header", r, rest);
      seen_mask |= 1u << k;
      if (k == H_CSP && ((size_t)(eol - colon - 2) != strlen(CSP) ||
                         memcmp(colon + 2, CSP, strlen(CSP)) != 0))
        bad("another Content-Security-Policy", r, rest);
      if (k == H_CONN)
        close = (size_t)(eol - colon - 2) == 5 && memcmp(colon + 2, "close", 5) == 0;
      if (k == H_CLEN) {
        clen = 0;
        for (const char *d = colon + 2; d < eol; d++) {
          if (*d < '0' || *d > '9' || clen > BODY_MAX * 2)
            bad("a bad Content-Length", r, rest);
          clen = clen * 10 + (size_t)(*d - '0');
        }
      }
      line = eol + 2;
    }
    if (!(seen_mask & (1u << H_CSP)))
      bad("no Content-Security-Policy", r, rest);
    if (!(seen_mask & (1u << H_DATE)))
      bad("no Date", r, rest);
    if ((status == 204 || status == 304) != !(seen_mask & (1u << H_CLEN)))
      bad("Content-Length missing (or sent with 204/304)", r, rest);
    off += (size_t)(end + 4 - r);
    rest = n - off;
    head = answers_head(sn->final);
    /* (no body here starts as a response does) */
    next = rest == 0 || memcmp(s + off, "HTTP/1.1 ", rest < 9 ? rest : 9) == 0;
    if (head == HEAD_YES || (head == HEAD_MAYBE && next)) {
      if (!next)
        bad("a body in the response to HEAD", r, n - (size_t)(r - s));
    } else if (rest < clen) {
      if (cut)
        return;
      bad("a body shorter than its Content-Length", r, n - (size_t)(r - s));
    } else {
      off += clen;
    }
    sn->final++;
    if (status == 400 || status == 408 || status == 413 || status == 431 || status == 503)
      sn->refusals++;
    if (close && sn->close_at == 0)
      sn->close_at = sn->final;
  }
}

/* ------------------------------------------------------------------ one input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct client cl = {.fd = -1};
  struct kw_httpd_stats before, after;
  struct seen sn;
  size_t cuts[4], nchunks, expect;
  unsigned c;
  uint64_t gone;
  int one = 1;
  bool hold;

  if (size < 1)
    return 0;
  c = data[0];
  data++;
  size--;
  nchunks = 1 + c % 3;
  cuts[0] = 0;
  cuts[1] = size * (1 + ((c >> 2) & 7)) / 9;
  cuts[2] = cuts[1] + (size - cuts[1]) * (1 + ((c >> 5) & 7)) / 9;
  if (nchunks == 1)
    cuts[1] = size;
  else if (nchunks == 2)
    cuts[2] = size;
  cuts[nchunks] = size;
  hold = c == 0xFF;
  cl.srv = hold ? &g.quick : &g.main;
  g.extras.n = 0;

  kw_httpd_stats(cl.srv->h, &before);
  cl.deadline = now_ms() + ACCEPT_MS;
  cl.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (cl.fd < 0 || setsockopt(cl.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
      client_connect(&cl) != 0) {
    perror("fuzz_httpd: connect");
    abort();
  }
  do { /* the server accepts */
    pump(&cl, 1);
    kw_httpd_stats(cl.srv->h, &after);
  } while (after.connections == before.connections && after.refused == before.refused &&
           left_ms(&cl) > 0);
  if (after.connections == before.connections) {
    fprintf(stderr, "fuzz_httpd: the server did not accept within %d ms (%llu open)\n",
            ACCEPT_MS, (unsigned long long)after.open);
    abort();
  }
  cl.deadline = now_ms() + RUN_MS;
  for (size_t i = 0; i < nchunks; i++)
    if (cuts[i + 1] > cuts[i])
      send_all(&cl, data + cuts[i], cuts[i + 1] - cuts[i]);
  if (!hold)
    shutdown(cl.fd, SHUT_WR);
  while (!cl.eof && left_ms(&cl) > 0)
    pump(&cl, left_ms(&cl));

  /* Close without TIME_WAIT (thousands of connections a second would use up the ports). */
  setsockopt(cl.fd, SOL_SOCKET, SO_LINGER, &(struct linger){.l_onoff = 1, .l_linger = 0},
             sizeof(struct linger));
  close(cl.fd);
  cl.fd = -1;
  gone = now_ms() + GONE_MS;
  for (;;) {
    struct pollfd p = {.fd = uv_backend_fd(&g.loop), .events = POLLIN};
    uint64_t now = now_ms();
    int t = uv_backend_timeout(&g.loop); /* 0 with callbacks pending: no fd says so */
    kw_httpd_stats(cl.srv->h, &after);
    if (after.open == 0 || now >= gone)
      break;
    if (t < 0 || t > (int)(gone - now))
      t = (int)(gone - now);
    poll(&p, 1, t);
    uv_run(&g.loop, UV_RUN_NOWAIT);
  }

  if (getenv("FUZZ_HTTPD_SHOW") != NULL) /* what the server answered, for replays */
    fprintf(stderr, "--- %zu bytes%s%s:\n%.*s\n---\n", cl.n, cl.eof ? "" : ", no EOF",
            cl.reset ? ", reset" : "", (int)cl.n, cl.in ? cl.in : "");
  model_requests(data, size);
  check_responses(cl.in, cl.n, !cl.eof || cl.reset, &sn);
  if (cl.eof && !cl.reset) {
    expect = model.complete;
    if (sn.final > expect + 1 || (sn.final == expect + 1 && sn.refusals == 0)) {
      fprintf(stderr, "fuzz_httpd: %zu responses to %zu complete requests\n", sn.final, expect);
      abort();
    }
    if (sn.final == expect + 1 && sn.close_at != sn.final) {
      fprintf(stderr, "fuzz_httpd: a refusal that does not close the connection\n");
      abort();
    }
    if (sn.close_at != 0 && sn.close_at != sn.final) {
      fprintf(stderr, "fuzz_httpd: response %zu of %zu says \"Connection: close\"\n",
              sn.close_at, sn.final);
      abort();
    }
    if (before.open == 0 && /* else an earlier connection may move the counters too */
        (after.requests - before.requests) + (after.bad_request - before.bad_request) +
                (after.too_large - before.too_large) + (after.timeouts - before.timeouts) !=
            sn.final) {
      fprintf(stderr, "fuzz_httpd: %zu responses read, the server counted %llu routed and "
                      "%llu refused\n", sn.final,
              (unsigned long long)(after.requests - before.requests),
              (unsigned long long)((after.bad_request - before.bad_request) +
                                   (after.too_large - before.too_large) +
                                   (after.timeouts - before.timeouts)));
      abort();
    }
  }
  if (after.open > 16) {
    fprintf(stderr, "fuzz_httpd: %llu connections still open\n",
            (unsigned long long)after.open);
    abort();
  }
  free(cl.in);
  return 0;
}
