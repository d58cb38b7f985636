/* httpd.c — see httpd.h.
 *
 * One struct kw_httpd (the listener, a list of connections, stats) and per connection one
 * struct conn: a TCP handle, one timer, an http_parser, a fixed input buffer, and the
 * request being parsed or answered (struct req, whose first member is the public
 * struct kw_http_request handed to handlers).
 *
 *            accept (timer: header_ms for the first byte)
 *              │
 *              ▼         message complete (parser paused)
 *   ┌──────► READING ─────────────────────────────────► DISPATCHED (not reading, no timer;
 *   │          │  timer: idle_ms before a request's         │        the handler owns rq)
 *   │          │  first byte, then header_ms from it,       │ kw_httpd_respond()
 *   │          │  header_ms again from the headers' end     ▼
 *   │          ├── bound exceeded / parse error / 408 ──► WRITING (timer: idle_ms)
 *   │          │                                            │
 *   │          └── EOF, read error, idle or first-byte      │ written
 *   │              timeout ──► CLOSED                       │
 *   └────────────── keep-alive: parse what is buffered ◄────┤
 *                                                           │ close_after
 *                             LINGER: shutdown(write side), ◄┘
 *                             read and discard ≤ LINGER_MS ──► CLOSED
 *
 * Invariants:
 *  - reading is on only in READING and LINGER; the parser runs only in READING, so one
 *    request at a time is in a handler, and pipelined bytes wait in c->in;
 *  - c->rq != NULL in READING ⇔ a request has begun (its first byte was parsed);
 *    in DISPATCHED c->rq is the handler's request; elsewhere NULL;
 *  - a DISPATCHED conn is never closed: the handler's kw_httpd_respond() (which it must
 *    call) moves it on, so a request never outlives its conn and respond always finds it;
 *    a conn found broken meanwhile is marked dead and closed by respond;
 *  - request-line+header bytes fed to the parser ≤ HEAD_MAX + 1 (feeds are cut to fit), so
 *    req->head (URL and header names/values, NUL-separated, never moved) cannot overflow;
 *  - a conn is on h->conns from accept to the close callback of its last handle; h is
 *    freed, and the close callback run, once closing, the listener closed and no conns.
 * Ownership: h owns the conns; a conn owns its req until dispatch, the handler borrows it
 * until respond, which frees it.  A response is one malloc'd buffer freed by on_write.
 * Thread: the loop's; offloaded work reads a req on a pool thread while the loop leaves
 * that req alone (its conn is DISPATCHED).
 */
#include "httpd.h"
#include "err.h"

#include <assert.h>
#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (16 * 1024)    /* request line + headers */
#define MAX_HEADERS 64
#define BODY_MAX (64 * 1024)
#define MAX_CONNS 256
#define IN_SIZE (16 * 1024)     /* per connection read buffer */
#define LINGER_MS 2000          /* draining the client before a close */
#define HEADER_MS_DEFAULT 10000
#define IDLE_MS_DEFAULT 30000
#define HEAD_BUF (HEAD_MAX + 2 * MAX_HEADERS + 8) /* stored head bytes + their NULs */
#define NO_VALUE UINT32_MAX
#define DEFAULT_CSP "default-src 'none'; frame-ancestors 'none'"

enum cstate { C_READING, C_DISPATCHED, C_WRITING, C_LINGER, C_CLOSED };
enum field { F_NONE, F_URL, F_NAME, F_VALUE };

struct req {
  struct kw_http_request pub; /* first: handlers get &pub */
  struct conn *c;
  uv_work_t work;
  void (*work_fn)(struct kw_http_request *rq, void *arg);
  void (*done_fn)(struct kw_http_request *rq, void *arg);
  void *work_arg;
  bool keep_alive, upgrade, http10, has_url;
  uint8_t cur; /* enum field being appended to head */
  uint32_t url;
  unsigned nh;
  struct {
    uint32_t name, value; /* offsets in head */
  } h[MAX_HEADERS];
  char *body;
  size_t body_cap;
  size_t head_len;
  char remote[INET6_ADDRSTRLEN];
  char head[HEAD_BUF];
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shut;
  uv_write_t cont_wr; /* "100 Continue" */
  struct kw_httpd *h;
  struct conn *prev, *next;
  http_parser p;
  struct req *rq;
  enum cstate state;
  int err_status;  /* status a parser callback chose when failing (413, 431, 400) */
  int nclosed;     /* handles closed, of 2 */
  bool head_done;  /* the current request's headers are complete */
  bool close_after, dead, reading, cont_busy;
  size_t head_bytes; /* bytes fed while the headers were incomplete */
  size_t in_off, in_len;
  char remote[INET6_ADDRSTRLEN];
  char in[IN_SIZE];
};

struct wbuf {
  uv_write_t wr;
  struct conn *c;
  char data[];
};

struct kw_httpd {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  struct kw_http_route *routes;
  size_t nroutes;
  char *csp;
  unsigned header_ms, idle_ms;
  int port;
  struct conn *conns;
  size_t nconns;
  bool closing, listener_closed;
  void (*close_cb)(void *arg);
  void *close_arg;
  struct kw_httpd_stats st;
};

static void parse(struct conn *c);
static void conn_close(struct conn *c);

/* ------------------------------------------------------------------ small helpers */

static void arm(struct conn *c, unsigned ms);

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes src[0..n) into dst (cap bytes, NUL-terminated); plus: '+' is a space.
 * Returns the decoded length, or -1 on a bad escape, %00, or when it does not fit. */
static long pct_decode(const char *src, size_t n, char *dst, size_t cap, bool plus) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = src[i];
    if (ch == '%') {
      int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
      int lo = hi >= 0 ? hexval(src[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return -1;
      ch = (char)(hi * 16 + lo);
      i += 2;
    } else if (plus && ch == '+') {
      ch = ' ';
    }
    if (o + 1 >= cap)
      return -1;
    dst[o++] = ch;
  }
  if (cap == 0)
    return -1;
  dst[o] = '\0';
  return (long)o;
}

static const char *reason(int status) {
  const char *s = http_status_str((enum http_status)status);
  return s[0] == '<' ? "Status" : s;
}

/* RFC 9110 IMF-fixdate, independent of the locale. */
static void http_date(char *buf, size_t len) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
           mons[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool has_crlf(const char *s) {
  return strpbrk(s, "\r\n") != NULL;
}

static bool tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* "Name: value\r\n" lines with token names, no control bytes but tab in values, and none
 * of the headers that frame the message. */
static bool extra_ok(const char *s) {
  static const char *const framing[] = {"content-length", "transfer-encoding", "connection"};
  while (*s != '\0') {
    const char *eol = strstr(s, "\r\n"), *colon;
    if (eol == NULL || eol == s)
      return false;
    colon = memchr(s, ':', (size_t)(eol - s));
    if (colon == NULL || colon == s)
      return false;
    for (const char *p = s; p < colon; p++)
      if (!tchar(*p))
        return false;
    for (const char *p = colon + 1; p < eol; p++)
      if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
        return false;
    for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++)
      if ((size_t)(colon - s) == strlen(framing[i]) &&
          strncasecmp(s, framing[i], strlen(framing[i])) == 0)
        return false;
    s = eol + 2;
  }
  return true;
}

/* ------------------------------------------------------------------ requests */

static struct req *req_new(struct conn *c) {
  struct req *r = malloc(sizeof(*r));
  if (r == NULL)
    return NULL;
  memset(r, 0, offsetof(struct req, head));
  r->c = c;
  memcpy(r->remote, c->remote, sizeof(r->remote));
  r->pub.remote = r->remote;
  r->pub.query = "";
  r->pub.method = "";
  r->pub.path = "";
  return r;
}

static void req_free(struct req *r) {
  if (r == NULL)
    return;
  free(r->body);
  free(r);
}

const char *kw_http_header(const struct kw_http_request *rq, const char *name) {
  const struct req *r = (const struct req *)rq;
  for (unsigned i = 0; i < r->nh; i++)
    if (strcasecmp(r->head + r->h[i].name, name) == 0)
      return r->h[i].value == NO_VALUE ? "" : r->head + r->h[i].value;
  return NULL;
}

const char *kw_http_query(const struct kw_http_request *rq, const char *name, char *buf,
                          size_t len) {
  const char *s = rq->query;
  size_t nlen = strlen(name);

  if (buf == NULL || len == 0)
    return NULL;
  while (*s != '\0') {
    const char *end = strchr(s, '&'), *eq;
    long n;
    if (end == NULL)
      end = s + strlen(s);
    eq = memchr(s, '=', (size_t)(end - s));
    n = pct_decode(s, (size_t)((eq ? eq : end) - s), buf, len, true);
    if (n >= 0 && (size_t)n == nlen && memcmp(buf, name, nlen) == 0) {
      if (eq == NULL) {
        buf[0] = '\0';
        return buf;
      }
      return pct_decode(eq + 1, (size_t)(end - eq - 1), buf, len, true) < 0 ? NULL : buf;
    }
    s = *end != '\0' ? end + 1 : end;
  }
  return NULL;
}

/* Splits the URL (in place) into path and query, decodes the path and checks it. */
static int split_url(struct req *r) {
  char *u = r->head + r->url, *q;
  long n;

  if (!r->has_url || u[0] != '/')
    return -1;
  q = strpbrk(u, "?#");
  if (q != NULL && *q == '?') {
    char *frag = strchr(q + 1, '#');
    if (frag != NULL)
      *frag = '\0';
    r->pub.query = q + 1;
  }
  n = pct_decode(u, q != NULL ? (size_t)(q - u) : strlen(u), u, SIZE_MAX, false);
  if (n < 0)
    return -1;
  for (long i = 0; i < n; i++)
    if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
      return -1;
  for (const char *seg = u; seg != NULL; seg = strchr(seg + 1, '/'))
    if (seg[1] == '.' && seg[2] == '.' && (seg[3] == '/' || seg[3] == '\0'))
      return -1;
  r->pub.path = u;
  return 0;
}

/* ------------------------------------------------------------------ parser callbacks */

static int put(struct conn *c, const char *at, size_t n) {
  struct req *r = c->rq;
  if (r->head_len + n + 1 > sizeof(r->head)) {
    c->err_status = 431;
    return -1;
  }
  memcpy(r->head + r->head_len, at, n);
  r->head_len += n;
  return 0;
}

/* Ends the field being appended (NUL) and starts f. */
static int enter(struct conn *c, enum field f) {
  struct req *r = c->rq;
  uint32_t at;

  if (r->cur == f)
    return 0;
  if (r->cur != F_NONE && put(c, "", 1) != 0)
    return -1;
  r->cur = (uint8_t)f;
  at = (uint32_t)r->head_len;
  switch (f) {
  case F_URL:
    r->url = at;
    r->has_url = true;
    break;
  case F_NAME:
    if (r->nh == MAX_HEADERS) {
      c->err_status = 431;
      return -1;
    }
    r->h[r->nh].name = at;
    r->h[r->nh].value = NO_VALUE;
    r->nh++;
    break;
  case F_VALUE:
    if (r->nh == 0)
      return -1;
    r->h[r->nh - 1].value = at;
    break;
  case F_NONE:
    break;
  }
  return 0;
}

static int on_begin(http_parser *p) {
  struct conn *c = p->data;
  c->rq = req_new(c);
  if (c->rq == NULL) {
    c->err_status = 503;
    return -1;
  }
  arm(c, c->h->header_ms); /* the slowloris deadline: from the first byte */
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  return enter(c, F_URL) != 0 ? -1 : put(c, at, n);
}

/* Header fields; a chunked body's trailer fields (after head_done) are dropped. */
static int on_field(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (c->head_done)
    return 0;
  return enter(c, F_NAME) != 0 ? -1 : put(c, at, n);
}

static int on_value(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (c->head_done)
    return 0;
  return enter(c, F_VALUE) != 0 ? -1 : put(c, at, n);
}

static void on_cont_write(uv_write_t *wr, int status) {
  struct conn *c = wr->data;
  c->cont_busy = false;
  if (status < 0 && c->state == C_DISPATCHED)
    c->dead = true; /* respond closes it */
  else if (status < 0)
    conn_close(c);
}

static int on_headers(http_parser *p) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  struct conn *c = p->data;
  struct req *r = c->rq;
  bool has_body = (p->flags & F_CHUNKED) || (p->content_length > 0 &&
                                             p->content_length != ULLONG_MAX);
  const char *expect;

  if (enter(c, F_NONE) != 0)
    return -1;
  if (p->http_major != 1 || split_url(r) != 0) {
    c->err_status = 400;
    return -1;
  }
  if (p->content_length != ULLONG_MAX && p->content_length > BODY_MAX) {
    c->err_status = 413;
    return -1;
  }
  r->pub.method = http_method_str((enum http_method)p->method);
  r->keep_alive = http_should_keep_alive(p) != 0;
  r->upgrade = p->upgrade != 0;
  r->http10 = p->http_minor == 0;
  expect = kw_http_header(&r->pub, "expect");
  if (has_body && !r->http10 && expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
      !c->cont_busy) {
    uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
    c->cont_wr.data = c;
    if (uv_write(&c->cont_wr, (uv_stream_t *)&c->tcp, &b, 1, on_cont_write) == 0)
      c->cont_busy = true;
  }
  c->head_done = true;
  arm(c, c->h->header_ms); /* the body's deadline */
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  struct req *r = c->rq;

  if (r->pub.body_len + n > BODY_MAX) {
    c->err_status = 413;
    return -1;
  }
  if (r->pub.body_len + n + 1 > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap * 2 : 1024;
    char *b;
    while (cap < r->pub.body_len + n + 1)
      cap *= 2;
    if (cap > BODY_MAX + 1)
      cap = BODY_MAX + 1;
    b = realloc(r->body, cap);
    if (b == NULL) {
      c->err_status = 503;
      return -1;
    }
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->pub.body_len, at, n);
  r->pub.body_len += n;
  r->body[r->pub.body_len] = '\0';
  return 0;
}

static int on_complete(http_parser *p) {
  http_parser_pause(p, 1); /* dispatched in parse(), outside the parser */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* ------------------------------------------------------------------ connections */

static void maybe_finish(struct kw_httpd *h) {
  void (*cb)(void *arg);
  void *arg;

  if (!h->closing || !h->listener_closed || h->nconns > 0)
    return;
  cb = h->close_cb;
  arg = h->close_arg;
  free(h->routes);
  free(h->csp);
  free(h);
  if (cb != NULL)
    cb(arg);
}

static void on_conn_closed(uv_handle_t *hd) {
  struct conn *c = hd->data;
  struct kw_httpd *h = c->h;

  if (++c->nclosed < 2)
    return;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    h->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  h->nconns--;
  free(c);
  maybe_finish(h);
}

/* Closes c now.  Never for a DISPATCHED conn: its request belongs to a handler. */
static void conn_close(struct conn *c) {
  if (c->state == C_CLOSED)
    return;
  assert(c->state != C_DISPATCHED);
  c->state = C_CLOSED;
  req_free(c->rq);
  c->rq = NULL;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timer(uv_timer_t *t);

static void arm(struct conn *c, unsigned ms) {
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
  struct conn *c = hd->data;
  (void)suggested;
  if (c->in_off == c->in_len)
    c->in_off = c->in_len = 0;
  buf->base = c->in + c->in_len;
  buf->len = IN_SIZE - c->in_len; /* 0 (never while reading) would end in UV_ENOBUFS */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct conn *c = s->data;
  (void)buf;
  if (n == 0)
    return;
  if (n < 0) { /* EOF or an error: a request begun is dropped */
    conn_close(c);
    return;
  }
  if (c->state == C_LINGER) {
    c->in_off = c->in_len = 0;
    return;
  }
  c->in_len += (size_t)n;
  parse(c);
}

static void read_on(struct conn *c) {
  if (c->reading)
    return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  c->reading = true;
}

static void read_off(struct conn *c) {
  if (c->reading)
    uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
}

static void on_shutdown(uv_shutdown_t *s, int status) {
  (void)s;
  (void)status; /* the linger timer or the client's EOF closes */
}

/* After a response that ends the connection: FIN, then drain what the client still sends
 * for a while, so that closing with unread bytes does not reset the connection before the
 * client has read the response. */
static void linger(struct conn *c) {
  if (c->h->closing || c->dead) {
    conn_close(c);
    return;
  }
  c->state = C_LINGER;
  c->shut.data = c;
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    conn_close(c);
    return;
  }
  arm(c, LINGER_MS);
  c->in_off = c->in_len = 0;
  read_on(c);
}

static void on_write(uv_write_t *wr, int status) {
  struct wbuf *w = (struct wbuf *)wr;
  struct conn *c = w->c;

  free(w);
  if (c->state != C_WRITING) /* closed meanwhile: canceled */
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->close_after) {
    linger(c);
    return;
  }
  c->state = C_READING; /* keep-alive: the next request, maybe already buffered */
  c->head_done = false;
  c->head_bytes = 0;
  c->err_status = 0;
  http_parser_pause(&c->p, 0);
  arm(c, c->h->idle_ms);
  parse(c);
  if (c->state == C_READING)
    read_on(c);
}

/* Writes a whole response and moves c to WRITING.  body is copied (omit: not sent, its
 * length still announced, for HEAD). */
static void send_response(struct conn *c, int status, const char *ctype, const char *body,
                          size_t len, const char *extra, bool close, bool keep_hdr,
                          bool omit) {
  struct kw_httpd *h = c->h;
  bool no_body = status == 204 || status == 304;
  size_t sent = no_body || omit ? 0 : len, cap, n, el = extra ? strlen(extra) : 0;
  struct wbuf *w;
  char date[40];
  uv_buf_t b;

  c->state = C_WRITING;
  c->close_after = close;
  read_off(c);
  cap = 512 + strlen(h->csp) + (ctype ? strlen(ctype) : 0) + el + sent;
  w = malloc(sizeof(*w) + cap);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  http_date(date, sizeof(date));
  n = (size_t)snprintf(w->data, cap, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status,
                       reason(status), date);
  if (ctype != NULL)
    n += (size_t)snprintf(w->data + n, cap - n, "Content-Type: %s\r\n", ctype);
  if (!no_body)
    n += (size_t)snprintf(w->data + n, cap - n, "Content-Length: %zu\r\n", len);
  n += (size_t)snprintf(w->data + n, cap - n,
                        "Cache-Control: no-store\r\n"
                        "X-Content-Type-Options: nosniff\r\n"
                        "Referrer-Policy: no-referrer\r\n"
                        "X-Frame-Options: DENY\r\n"
                        "Content-Security-Policy: %s\r\n%s",
                        h->csp,
                        close ? "Connection: close\r\n"
                              : keep_hdr ? "Connection: keep-alive\r\n" : "");
  assert(n + el + 2 + sent <= cap);
  memcpy(w->data + n, extra ? extra : "", el);
  n += el;
  memcpy(w->data + n, "\r\n", 2);
  n += 2;
  if (sent > 0)
    memcpy(w->data + n, body, sent);
  n += sent;
  w->c = c;
  arm(c, h->idle_ms); /* a client that does not read is dropped */
  b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->wr, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    free(w);
    conn_close(c);
  }
}

/* Answers a request the server refuses (or the lack of one) and ends the connection.
 * A response to HEAD has no body, refusals included: http_parser takes a method starting
 * with 'H' for HEAD from its first byte, and fails with HPE_INVALID_METHOD if it is not. */
static void fail(struct conn *c, int status) {
  struct kw_httpd *h = c->h;
  bool head = c->rq != NULL && c->p.method == HTTP_HEAD &&
              HTTP_PARSER_ERRNO(&c->p) != HPE_INVALID_METHOD;
  char msg[64];
  int n;

  if (status == 400)
    h->st.bad_request++;
  else if (status == 413 || status == 431)
    h->st.too_large++;
  else if (status == 408)
    h->st.timeouts++;
  req_free(c->rq);
  c->rq = NULL;
  n = snprintf(msg, sizeof(msg), "%s\n", reason(status));
  send_response(c, status, "text/plain; charset=utf-8", msg, (size_t)n, NULL, true, false,
                head);
}

static void on_timer(uv_timer_t *t) {
  struct conn *c = t->data;

  if (c->state == C_READING && c->rq != NULL)
    fail(c, 408);
  else if (c->state != C_DISPATCHED)
    conn_close(c); /* idle, no first byte, slow reader, lingered enough */
}

/* ------------------------------------------------------------------ routing */

static bool path_match(const char *prefix, const char *path) {
  size_t n = strlen(prefix);
  if (n > 0 && prefix[n - 1] == '/')
    return strncmp(path, prefix, n) == 0;
  return strcmp(path, prefix) == 0;
}

static bool method_match(const char *want, const char *m) {
  return strcmp(want, "*") == 0 || strcmp(want, m) == 0 ||
         (strcmp(want, "GET") == 0 && strcmp(m, "HEAD") == 0);
}

static void dispatch(struct conn *c) {
  struct kw_httpd *h = c->h;
  struct req *r = c->rq;
  char allow[192] = "";
  size_t an = 0;
  bool path_hit = false;

  c->state = C_DISPATCHED;
  read_off(c);
  uv_timer_stop(&c->timer);
  r->pub.body = r->body;
  h->st.requests++;
  for (size_t i = 0; i < h->nroutes; i++) {
    const struct kw_http_route *rt = &h->routes[i];
    const char *m = strcmp(rt->method, "GET") == 0 ? "GET, HEAD" : rt->method;
    if (!path_match(rt->prefix, r->pub.path))
      continue;
    if (method_match(rt->method, r->pub.method)) {
      rt->fn(&r->pub, rt->arg); /* may respond at once, freeing r */
      return;
    }
    path_hit = true;
    if (an + strlen(m) + 3 < sizeof(allow))
      an += (size_t)snprintf(allow + an, sizeof(allow) - an, "%s%s", an ? ", " : "", m);
  }
  if (path_hit) {
    char extra[sizeof(allow) + 16];
    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    kw_httpd_respond(&r->pub, 405, "text/plain; charset=utf-8", "Method Not Allowed\n", 19,
                     extra);
  } else {
    kw_httpd_respond(&r->pub, 404, "text/plain; charset=utf-8", "Not Found\n", 10, NULL);
  }
}

/* Feeds buffered bytes to the parser while c is READING.  Head bytes are fed at most
 * HEAD_MAX + 1 at a time, so the bound holds whatever a read brought. */
static void parse(struct conn *c) {
  while (c->state == C_READING && c->in_off < c->in_len) {
    size_t avail = c->in_len - c->in_off, n;
    enum http_errno e;

    if (!c->head_done && avail > HEAD_MAX + 1 - c->head_bytes)
      avail = HEAD_MAX + 1 - c->head_bytes;
    n = http_parser_execute(&c->p, &settings, c->in + c->in_off, avail);
    if (n > avail)
      n = avail;
    c->in_off += n;
    e = HTTP_PARSER_ERRNO(&c->p);
    if (e == HPE_PAUSED) {
      dispatch(c);
      continue;
    }
    if (e != HPE_OK) {
      fail(c, c->err_status != 0 ? c->err_status : 400);
      return;
    }
    if (!c->head_done) {
      c->head_bytes += n;
      if (c->head_bytes > HEAD_MAX) {
        fail(c, 431);
        return;
      }
    }
  }
}

/* ------------------------------------------------------------------ API */

void kw_httpd_respond(struct kw_http_request *rq, int status, const char *content_type,
                      const char *body, size_t len, const char *extra_headers) {
  struct req *r = (struct req *)rq;
  struct conn *c = r->c;
  bool close;

  assert(c != NULL && c->rq == r && c->state == C_DISPATCHED);
  c->rq = NULL;
  if (c->dead) {
    req_free(r);
    c->state = C_WRITING;
    conn_close(c);
    return;
  }
  if (status < 200 || status > 599 || (content_type != NULL && has_crlf(content_type)) ||
      (extra_headers != NULL && !extra_ok(extra_headers)) || (body == NULL && len > 0)) {
    status = 500;
    content_type = "text/plain; charset=utf-8";
    body = "Internal Server Error\n";
    len = strlen(body);
    extra_headers = NULL;
  }
  close = !r->keep_alive || r->upgrade || c->close_after || c->h->closing;
  /* body may point into r: r is freed only once it has been copied */
  send_response(c, status, content_type, body, len, extra_headers, close,
                r->http10 && !close, strcmp(r->pub.method, "HEAD") == 0);
  req_free(r);
}

static void on_work(uv_work_t *w) {
  struct req *r = w->data;
  r->work_fn(&r->pub, r->work_arg);
}

static void on_work_done(uv_work_t *w, int status) {
  struct req *r = w->data;
  (void)status; /* never canceled */
  r->done_fn(&r->pub, r->work_arg);
}

int kw_httpd_offload(struct kw_http_request *rq, void (*work)(struct kw_http_request *rq,
                                                              void *arg),
                     void (*done)(struct kw_http_request *rq, void *arg), void *arg) {
  struct req *r = (struct req *)rq;

  assert(r->c != NULL && r->c->rq == r && r->c->state == C_DISPATCHED);
  r->work_fn = work;
  r->done_fn = done;
  r->work_arg = arg;
  r->work.data = r;
  return uv_queue_work(r->c->h->loop, &r->work, on_work, on_work_done);
}

static void on_refused_closed(uv_handle_t *hd) {
  free(hd);
}

static void on_connection(uv_stream_t *srv, int status) {
  struct kw_httpd *h = srv->data;
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  struct conn *c = NULL;

  if (status < 0 || h->closing)
    return;
  if (h->nconns >= MAX_CONNS || (c = calloc(1, sizeof(*c))) == NULL) {
    uv_tcp_t *t = malloc(sizeof(*t)); /* accepted only to be closed */
    h->st.refused++;
    if (t == NULL || uv_tcp_init(h->loop, t) != 0) {
      free(t);
      return;
    }
    uv_accept(srv, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_closed);
    return;
  }
  c->h = h;
  uv_tcp_init(h->loop, &c->tcp);
  uv_timer_init(h->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->next = h->conns;
  if (h->conns != NULL)
    h->conns->prev = c;
  h->conns = c;
  h->nconns++;
  h->st.connections++;
  c->state = C_READING;
  http_parser_init(&c->p, HTTP_REQUEST);
  c->p.data = c;
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
    uv_ip_name((struct sockaddr *)&ss, c->remote, sizeof(c->remote));
  uv_tcp_nodelay(&c->tcp, 1);
  arm(c, h->header_ms); /* a new connection's first byte */
  read_on(c);
}

/* A non-blocking socket bound to sa and listening, or -errno. */
static int bind_listen(const struct sockaddr *sa, socklen_t sl) {
  int one = 1, r;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

  if (fd < 0)
    return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, sa, sl) != 0 || listen(fd, SOMAXCONN) != 0) {
    r = -errno;
    close(fd);
    return r;
  }
  return fd;
}

/* "HOST:PORT" or "[IPV6]:PORT" → a listening socket on the first address it resolves to
 * that can be bound.  Returns the fd, or KW_EINVAL / -errno with why set. */
static int open_listener(uv_loop_t *loop, const char *addr, const char **why) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  const char *hs = addr, *he, *colon, *port;
  char host[256];
  uv_getaddrinfo_t req;
  size_t pl;
  int r;

  if (addr[0] == '[') {
    hs = addr + 1;
    he = strchr(hs, ']');
    if (he == NULL || he[1] != ':') {
      *why = "expected [IPV6]:PORT";
      return KW_EINVAL;
    }
    colon = he + 1;
    hints.ai_family = AF_INET6;
    hints.ai_flags |= AI_NUMERICHOST;
  } else {
    colon = he = strrchr(addr, ':');
    if (colon == NULL) {
      *why = "expected HOST:PORT";
      return KW_EINVAL;
    }
    if (memchr(addr, ':', (size_t)(colon - addr)) != NULL) {
      *why = "an IPv6 address needs brackets, as in [::1]:8080";
      return KW_EINVAL;
    }
  }
  port = colon + 1;
  pl = strlen(port);
  if (he == hs || (size_t)(he - hs) >= sizeof(host)) {
    *why = "expected HOST:PORT";
    return KW_EINVAL;
  }
  if (pl == 0 || pl > 5 || strspn(port, "0123456789") != pl || strtol(port, NULL, 10) > 65535) {
    *why = "the port must be a number from 0 to 65535";
    return KW_EINVAL;
  }
  memcpy(host, hs, (size_t)(he - hs));
  host[he - hs] = '\0';
  r = uv_getaddrinfo(loop, &req, NULL, host, port, &hints); /* synchronous */
  if (r != 0) {
    *why = uv_strerror(r);
    return KW_EINVAL;
  }
  r = KW_EINVAL;
  *why = "no address";
  for (const struct addrinfo *ai = req.addrinfo; ai != NULL; ai = ai->ai_next) {
    r = bind_listen(ai->ai_addr, ai->ai_addrlen);
    if (r >= 0)
      break;
    *why = uv_strerror(r); /* the last failure's */
  }
  uv_freeaddrinfo(req.addrinfo);
  return r;
}

static void on_failed_closed(uv_handle_t *hd) {
  struct kw_httpd *h = hd->data;
  free(h->routes);
  free(h->csp);
  free(h);
}

int kw_httpd_start(uv_loop_t *loop, const struct kw_httpd_opts *o, struct kw_httpd **out,
                   char *err, size_t errlen) {
  struct kw_httpd *h = NULL;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  const char *why = "invalid arguments";
  int fd = -1, r = KW_EINVAL;

  if (out != NULL)
    *out = NULL;
  if (loop == NULL || o == NULL || out == NULL || o->listen == NULL ||
      (o->nroutes > 0 && o->routes == NULL))
    goto out;
  for (size_t i = 0; i < o->nroutes; i++) {
    const struct kw_http_route *rt = &o->routes[i];
    if (rt->method == NULL || rt->prefix == NULL || rt->prefix[0] != '/' || rt->fn == NULL) {
      why = "a route needs a method, a path starting with '/' and a handler";
      goto out;
    }
  }
  if (o->csp != NULL && has_crlf(o->csp)) {
    why = "the Content-Security-Policy holds a line break";
    goto out;
  }
  fd = open_listener(loop, o->listen, &why);
  if (fd < 0) {
    r = fd;
    goto out;
  }
  h = calloc(1, sizeof(*h));
  if (h == NULL || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
    r = h == NULL ? KW_ENOMEM : -errno;
    why = h == NULL ? "out of memory" : uv_strerror(r);
    goto out;
  }
  h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
  h->csp = strdup(o->csp != NULL ? o->csp : DEFAULT_CSP);
  if (o->nroutes > 0)
    h->routes = malloc(o->nroutes * sizeof(*h->routes));
  if (h->csp == NULL || (o->nroutes > 0 && h->routes == NULL)) {
    r = KW_ENOMEM;
    why = "out of memory";
    goto out;
  }
  if (o->nroutes > 0)
    memcpy(h->routes, o->routes, o->nroutes * sizeof(*h->routes));
  h->nroutes = o->nroutes;
  h->loop = loop;
  h->header_ms = o->header_timeout_ms ? o->header_timeout_ms : HEADER_MS_DEFAULT;
  h->idle_ms = o->idle_timeout_ms ? o->idle_timeout_ms : IDLE_MS_DEFAULT;
  r = uv_tcp_init(loop, &h->tcp);
  if (r != 0) {
    why = uv_strerror(r);
    goto out;
  }
  h->tcp.data = h;
  r = uv_tcp_open(&h->tcp, fd);
  if (r == 0) {
    fd = -1; /* the handle's now */
    r = uv_listen((uv_stream_t *)&h->tcp, SOMAXCONN, on_connection);
  }
  if (r != 0) { /* not expected once listen(2) succeeded: the handle frees h when closed */
    why = uv_strerror(r);
    uv_close((uv_handle_t *)&h->tcp, on_failed_closed);
    h = NULL;
    goto out;
  }
  *out = h;
  h = NULL;
out:
  if (fd >= 0)
    close(fd);
  if (h != NULL) {
    free(h->routes);
    free(h->csp);
    free(h);
  }
  if (r != 0 && err != NULL && errlen > 0)
    snprintf(err, errlen, "cannot listen on %s: %s",
             o != NULL && o->listen != NULL ? o->listen : "(none)", why);
  return r;
}

int kw_httpd_port(const struct kw_httpd *h) {
  return h->port;
}

void kw_httpd_stats(const struct kw_httpd *h, struct kw_httpd_stats *out) {
  *out = h->st;
  out->open = h->nconns;
}

static void on_listener_closed(uv_handle_t *hd) {
  struct kw_httpd *h = hd->data;
  h->listener_closed = true;
  maybe_finish(h);
}

void kw_httpd_close(struct kw_httpd *h, void (*cb)(void *arg), void *arg) {
  if (h == NULL) {
    if (cb != NULL)
      cb(arg);
    return;
  }
  assert(!h->closing);
  h->closing = true;
  h->close_cb = cb;
  h->close_arg = arg;
  uv_close((uv_handle_t *)&h->tcp, on_listener_closed);
  for (struct conn *c = h->conns; c != NULL; c = c->next) {
    if (c->state == C_READING || c->state == C_LINGER)
      conn_close(c);
    else
      c->close_after = true; /* after its request is answered and written */
  }
}
