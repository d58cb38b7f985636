/* httpc.c — kw_httpc: libcurl's multi interface driven by a libuv loop (see httpc.h).
 *
 * The glue is the one curl's docs/examples/multi-uv.c shows: curl says which sockets to
 * watch (CURLMOPT_SOCKETFUNCTION → one uv_poll per socket, a struct sock assigned to the
 * socket with curl_multi_assign) and when to wake it (CURLMOPT_TIMERFUNCTION → the one
 * uv_timer); readiness and timeouts go back through curl_multi_socket_action(), and
 * finished transfers are read with curl_multi_info_read() (check_multi_info).  DNS runs in
 * curl's own resolver (threaded or c-ares, as libcurl was built), never on the loop.
 *
 * Ownership: the client owns its multi handle, the timer, one struct sock per watched
 * socket and one struct req per transfer.  A req owns copies of everything the caller
 * passed (URL, header list, body) and the answer collected so far; the URL pieces, the
 * headers, the body and the answer are wiped before they are freed (any may hold a token).
 * curl keeps its own copies of the URL and of the request it sent; those it frees
 * unwiped — beyond our reach.
 *
 * Every request gets: "Expect:" (no 100-continue round trip), User-Agent keywatch/VERSION,
 * no redirects, http/https only, the total timeout as the connect timeout too, and — when
 * it has a body and the caller gave no Content-Type — "Content-Type:" (no header), so that
 * curl does not label the body application/x-www-form-urlencoded behind the caller's back.
 * POST, PUT and PATCH without a body send an empty one (Content-Length: 0).  Header lines
 * must be "Name: value" with a token name and no CR/LF; Content-Length and
 * Transfer-Encoding are refused (the framing follows body_len, nothing else).
 *
 * The answer's body is kept up to max_body bytes (a longer Content-Length fails before
 * the body is read, a longer body as soon as it grows past); the transfer then fails with
 * KW_ETOOLONG.  resp->code is filled whenever an answer's status line arrived, so with
 * KW_ETOOLONG too (the webhook sink relies on it: a 2xx with a huge body still counts).
 * Error texts are curl's errbuf (else curl_easy_strerror()) with the URL's path, query,
 * fragment and password, where 4 bytes or longer, replaced by "…" (curl 7.88 never puts
 * them there; this guards against a curl that would).
 *
 * Re-entrancy: the callbacks of finished transfers run from check_multi_info(), inside
 * socket_action() (depth > 0), where they may start requests or close the client.  A
 * close there only marks the client closing; the teardown runs once curl has returned
 * (depth back to 0).  Callbacks of removed transfers (KW_ECANCELED) run from the close
 * callback of the last uv handle, never from kw_httpc_close() itself; the client is freed
 * right after them, then the close cb runs.
 *
 *   open ──close──► closing ──depth 0: teardown──► torn (reqs → canceled, multi cleaned
 *   up, polls and timer closing) ──last handle closed──► canceled cbs, free, close cb
 *
 * Thread: the loop's.
 */
#include "httpc.h"

#include "sidecar/err.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REQS 256                 /* transfers in flight; -EAGAIN beyond */
#define DEFAULT_TIMEOUT_MS 5000L
#define DEFAULT_MAX_BODY (1u << 20)  /* 1 MiB */

struct req {
  struct req *next, *prev;
  struct kw_httpc *c;
  CURL *easy;
  char *url;
  char *secret_parts[4]; /* path, query, fragment, password: scrubbed from error text */
  char *body;            /* NULL: no body */
  size_t body_len;
  struct curl_slist *hdrs;
  char *ans;             /* the answer's body, NUL-terminated; NULL while empty */
  size_t ans_len, ans_cap, max_body;
  bool too_long, nomem;
  uint64_t t0;           /* uv_hrtime() at kw_httpc_request() */
  char errbuf[CURL_ERROR_SIZE];
  kw_http_cb cb;
  void *arg;
};

struct sock {
  struct kw_httpc *c;
  uv_poll_t poll;
  curl_socket_t fd;
  struct sock *next, *prev;
};

struct kw_httpc {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct req *reqs;     /* in flight, newest first */
  struct req *canceled; /* removed at teardown, called back once every handle is closed */
  size_t nreqs;
  struct sock *socks;   /* open poll contexts */
  size_t handles;       /* uv handles not yet closed (timer + polls) */
  int depth;            /* > 0 while inside socket_action() */
  bool closing, torn;
  void (*close_cb)(void *arg);
  void *close_arg;
};

/* ---- wiping --------------------------------------------------------------------------- */

static void free_wiped(void *p, size_t n) {
  if (p != NULL) {
    OPENSSL_cleanse(p, n);
    free(p);
  }
}

static void free_str_wiped(char *s) {
  if (s != NULL)
    free_wiped(s, strlen(s));
}

static void free_slist_wiped(struct curl_slist *l) {
  for (struct curl_slist *p = l; p != NULL; p = p->next)
    OPENSSL_cleanse(p->data, strlen(p->data));
  curl_slist_free_all(l);
}

static void free_req(struct req *r) {
  if (r->easy)
    curl_easy_cleanup(r->easy);
  free_str_wiped(r->url);
  for (size_t i = 0; i < sizeof(r->secret_parts) / sizeof(r->secret_parts[0]); i++)
    free_str_wiped(r->secret_parts[i]);
  free_slist_wiped(r->hdrs);
  free_wiped(r->body, r->body_len + 1);
  free_wiped(r->ans, r->ans_cap);
  free(r);
}

/* ---- requests ------------------------------------------------------------------------- */

static void unlink_req(struct kw_httpc *c, struct req *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    c->reqs = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->next = r->prev = NULL;
  c->nreqs--;
}

/* Replaces every occurrence of s in buf (a NUL-terminated string) with "…". */
static void scrub(char *buf, const char *s) {
  size_t n = s ? strlen(s) : 0;
  char *p;
  if (n < 4) /* "/", "/a": nothing worth hiding, and the loop below must shorten buf */
    return;
  while ((p = strstr(buf, s)) != NULL) {
    memcpy(p, "\xe2\x80\xa6", 3); /* … */
    memmove(p + 3, p + n, strlen(p + n) + 1);
  }
}

static int curl_status(CURLcode c) {
  switch (c) {
  case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
  case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
  case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
  case CURLE_OUT_OF_MEMORY: return KW_ENOMEM;
  default: return KW_EIO;
  }
}

/* The answer's bytes, kept up to max_body.  Grown by copy (not realloc) so that no
 * unwiped copy of the answer is left behind. */
static size_t on_data(char *p, size_t size, size_t n, void *arg) {
  struct req *r = arg;
  size_t len = size * n;
  if (len == 0)
    return 0;
  if (len > r->max_body - r->ans_len) {
    r->too_long = true;
    return 0; /* != len: the transfer fails with CURLE_WRITE_ERROR */
  }
  if (r->ans_len + len + 1 > r->ans_cap) {
    size_t cap = r->ans_cap ? r->ans_cap : 1024;
    char *nb;
    while (cap < r->ans_len + len + 1)
      cap = cap > r->max_body / 2 ? r->max_body + 1 : cap * 2;
    if ((nb = malloc(cap)) == NULL) {
      r->nomem = true;
      return 0;
    }
    if (r->ans != NULL)
      memcpy(nb, r->ans, r->ans_len);
    free_wiped(r->ans, r->ans_cap);
    r->ans = nb;
    r->ans_cap = cap;
  }
  memcpy(r->ans + r->ans_len, p, len);
  r->ans_len += len;
  r->ans[r->ans_len] = '\0';
  return len;
}

/* Calls r back with curl's result c (CURLE_OK: an answer arrived) and frees it. */
static void finish_req(struct kw_httpc *c, struct req *r, CURLcode cc) {
  char err[CURL_ERROR_SIZE + 64];
  struct kw_http_resp resp = {.body = "", .len = 0};

  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.code);
  if (cc == CURLE_OK) {
    if (r->ans != NULL) {
      resp.body = r->ans;
      resp.len = r->ans_len;
    }
  } else if (r->too_long || cc == CURLE_FILESIZE_EXCEEDED) {
    resp.status = KW_ETOOLONG;
    snprintf(err, sizeof(err), "the answer exceeds %zu bytes", r->max_body);
  } else if (r->nomem) {
    resp.status = KW_ENOMEM;
    snprintf(err, sizeof(err), "out of memory for the answer");
  } else {
    resp.status = curl_status(cc);
    snprintf(err, sizeof(err), "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
    for (size_t i = 0; i < sizeof(r->secret_parts) / sizeof(r->secret_parts[0]); i++)
      scrub(err, r->secret_parts[i]);
  }
  resp.error = resp.status ? err : NULL;
  resp.duration_us = (int64_t)((uv_hrtime() - r->t0) / 1000);
  curl_multi_remove_handle(c->multi, r->easy);
  unlink_req(c, r);
  r->cb(&resp, r->arg);
  OPENSSL_cleanse(err, sizeof(err));
  free_req(r);
}

static void cancel_req(struct req *r) {
  struct kw_http_resp resp = {
      .status = KW_ECANCELED, .body = "", .error = "the HTTP client was closed",
      .duration_us = (int64_t)((uv_hrtime() - r->t0) / 1000)};
  r->cb(&resp, r->arg);
  free_req(r);
}

/* ---- curl ↔ loop glue (multi-uv) ------------------------------------------------------ */

static void teardown(struct kw_httpc *c);
static void on_handle_closed(uv_handle_t *h);

static void check_multi_info(struct kw_httpc *c) {
  CURLMsg *m;
  int left;
  while (!c->closing && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
    if (m->msg == CURLMSG_DONE) {
      struct req *r = NULL;
      CURLcode cc = m->data.result;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
      finish_req(c, r, cc);
    }
  }
}

static void socket_action(struct kw_httpc *c, curl_socket_t fd, int flags) {
  int running;
  c->depth++;
  curl_multi_socket_action(c->multi, fd, flags, &running);
  check_multi_info(c);
  c->depth--;
  if (c->closing && !c->torn && c->depth == 0)
    teardown(c);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct sock *s = h->data;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  if (!s->c->torn)
    socket_action(s->c, s->fd, flags);
}

static void on_timeout(uv_timer_t *t) {
  struct kw_httpc *c = t->data;
  if (!c->torn)
    socket_action(c, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long ms, void *userp) {
  struct kw_httpc *c = userp;
  (void)multi;
  if (c->torn)
    return 0;
  if (ms < 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0); /* 0: next loop iteration */
  return 0;
}

static void close_sock(struct kw_httpc *c, struct sock *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    c->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct kw_httpc *c = userp;
  struct sock *s = socketp;
  int events = 0;
  (void)easy;

  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      curl_multi_assign(c->multi, fd, NULL);
      close_sock(c, s);
    }
    return 0;
  }
  if (c->torn)
    return -1;
  if (s == NULL) {
    if ((s = calloc(1, sizeof(*s))) == NULL)
      return -1;
    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->c = c;
    s->fd = fd;
    s->poll.data = s;
    s->next = c->socks;
    if (c->socks)
      c->socks->prev = s;
    c->socks = s;
    c->handles++;
    curl_multi_assign(c->multi, fd, s);
  }
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h) {
  struct kw_httpc *c;
  if (h->type == UV_POLL) {
    struct sock *s = h->data;
    c = s->c;
    free(s);
  } else {
    c = h->data;
  }
  if (--c->handles > 0 || !c->torn)
    return;
  while (c->canceled != NULL) {
    struct req *r = c->canceled;
    c->canceled = r->next;
    cancel_req(r);
  }
  void (*cb)(void *) = c->close_cb;
  void *arg = c->close_arg;
  curl_global_cleanup();
  free(c);
  if (cb)
    cb(arg);
}

static void teardown(struct kw_httpc *c) {
  c->torn = true;
  /* Removed transfers are called back once every handle is closed (never from here).
   * Pushing each onto canceled reverses the newest-first list: they run in the order
   * they were started. */
  while (c->reqs != NULL) {
    struct req *r = c->reqs;
    curl_multi_remove_handle(c->multi, r->easy);
    unlink_req(c, r);
    r->next = c->canceled;
    c->canceled = r;
  }
  curl_multi_cleanup(c->multi); /* may report CURL_POLL_REMOVE for cached connections */
  c->multi = NULL;
  while (c->socks != NULL)
    close_sock(c, c->socks);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

int kw_httpc_init(uv_loop_t *loop, struct kw_httpc **out) {
  struct kw_httpc *c = NULL;
  bool global = false;
  int r = KW_ENOMEM;

  *out = NULL;
  if ((c = calloc(1, sizeof(*c))) == NULL)
    goto out;
  c->loop = loop;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    r = KW_EIO;
    goto out;
  }
  global = true;
  if ((c->multi = curl_multi_init()) == NULL)
    goto out;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  /* Last: from here on the client can only be freed through the loop. */
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  *out = c;
  c = NULL;
  r = 0;
out:
  if (c != NULL) {
    if (c->multi)
      curl_multi_cleanup(c->multi);
    if (global)
      curl_global_cleanup();
    free(c);
  }
  return r;
}

size_t kw_httpc_pending(const struct kw_httpc *c) {
  return c ? c->nreqs : 0;
}

void kw_httpc_close(struct kw_httpc *c, void (*cb)(void *arg), void *arg) {
  if (c == NULL)
    return;
  assert(!c->closing); /* closed twice */
  c->closing = true;
  c->close_cb = cb;
  c->close_arg = arg;
  if (c->depth == 0)
    teardown(c);
}

/* ---- kw_httpc_request ----------------------------------------------------------------- */

static bool is_tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* "Name: value" (or "Name:", which tells curl to send no such header): a token, a colon,
 * no line break anywhere.  The framing headers are ours (they follow body_len): a
 * Content-Length or Transfer-Encoding that disagreed with the body would desynchronise a
 * kept-alive connection.  *namelen gets the name's length. */
static bool header_line_ok(const char *l, size_t *namelen) {
  static const char *const framing[] = {"Content-Length", "Transfer-Encoding", NULL};
  const char *p = l;
  while (is_tchar(*p))
    p++;
  if (p == l || *p != ':' || strpbrk(p, "\r\n") != NULL)
    return false;
  *namelen = (size_t)(p - l);
  for (size_t i = 0; framing[i]; i++)
    if (*namelen == strlen(framing[i]) && strncasecmp(l, framing[i], *namelen) == 0)
      return false;
  return true;
}

/* Copies the caller's header lines after our own ("Expect:" first).  Returns 0,
 * KW_EINVAL or KW_ENOMEM. */
static int build_headers(const char *const *lines, bool body, struct curl_slist **out) {
  struct curl_slist *l = NULL, *nl;
  bool content_type = false;
  size_t n;
  int r = KW_ENOMEM;

  if ((l = curl_slist_append(NULL, "Expect:")) == NULL)
    goto fail;
  for (size_t i = 0; lines != NULL && lines[i] != NULL; i++) {
    if (!header_line_ok(lines[i], &n)) {
      r = KW_EINVAL;
      goto fail;
    }
    if (n == 12 && strncasecmp(lines[i], "Content-Type", 12) == 0)
      content_type = true;
    if ((nl = curl_slist_append(l, lines[i])) == NULL)
      goto fail;
    l = nl;
  }
  if (body && !content_type) {
    if ((nl = curl_slist_append(l, "Content-Type:")) == NULL)
      goto fail;
    l = nl;
  }
  *out = l;
  return 0;
fail:
  free_slist_wiped(l);
  return r;
}

/* Checks the URL (http or https, a host) and keeps copies of the parts that never go into
 * an error text.  Returns 0, KW_EINVAL or KW_ENOMEM. */
static int parse_url(struct req *r, const char *url) {
  static const CURLUPart parts[] = {CURLUPART_PATH, CURLUPART_QUERY, CURLUPART_FRAGMENT,
                                    CURLUPART_PASSWORD};
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL;
  int ret = KW_EINVAL;

  if (u == NULL)
    return KW_ENOMEM;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
    goto out;
  ret = KW_ENOMEM;
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
    char *p = NULL;
    if (curl_url_get(u, parts[i], &p, 0) == CURLUE_OK && p != NULL) {
      r->secret_parts[i] = strdup(p);
      OPENSSL_cleanse(p, strlen(p));
      curl_free(p);
      if (r->secret_parts[i] == NULL)
        goto out;
    }
  }
  if ((r->url = strdup(url)) == NULL)
    goto out;
  ret = 0;
out:
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u); /* holds the URL unwiped: curl's API has no way to wipe it */
  return ret;
}

static bool method_ok(const char *m) {
  static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
  for (size_t i = 0; m != NULL && ok[i]; i++)
    if (strcmp(m, ok[i]) == 0)
      return true;
  return false; /* HEAD included: the answer to a HEAD has no body to wait for */
}

static void set_method(CURL *e, const char *m, const char *body, size_t len) {
  if (body == NULL && strcmp(m, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (body == NULL && strcmp(m, "DELETE") == 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
  } else { /* a body (POST, PUT, PATCH: at least an empty one) */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (strcmp(m, "POST") != 0)
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
  }
}

int kw_httpc_request(struct kw_httpc *c, const struct kw_http_req *req, kw_http_cb cb,
                     void *arg) {
  struct req *r = NULL;
  bool has_body;
  CURL *e;
  int ret = KW_EINVAL;

  if (c->closing)
    return KW_ECANCELED;
  if (req == NULL || cb == NULL || !method_ok(req->method) || req->url == NULL ||
      req->timeout_ms < 0 || (req->body == NULL && req->body_len > 0))
    return KW_EINVAL;
  if ((r = calloc(1, sizeof(*r))) == NULL)
    return KW_ENOMEM;
  r->c = c;
  r->cb = cb;
  r->arg = arg;
  r->max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY;
  r->t0 = uv_hrtime();
  if (r->max_body > SIZE_MAX / 2)
    r->max_body = SIZE_MAX / 2; /* keeps max_body + 1 and the curl_off_t in range */
  has_body = req->body != NULL ||
             (strcmp(req->method, "GET") != 0 && strcmp(req->method, "DELETE") != 0);
  if ((ret = parse_url(r, req->url)) != 0 ||
      (ret = build_headers(req->headers, has_body, &r->hdrs)) != 0)
    goto out;
  ret = -EAGAIN;
  if (c->nreqs >= MAX_REQS)
    goto out;
  ret = KW_ENOMEM;
  if (has_body) {
    if ((r->body = malloc(req->body_len + 1)) == NULL)
      goto out;
    if (req->body_len > 0)
      memcpy(r->body, req->body, req->body_len);
    r->body[req->body_len] = '\0';
    r->body_len = req->body_len;
  }
  if ((r->easy = e = curl_easy_init()) == NULL)
    goto out;
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  set_method(e, req->method, r->body, r->body_len);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "keywatch/" KW_VERSION);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    ret = KW_EIO;
    goto out;
  }
  /* Linked only now: the transfer starts from the timer curl just armed, never from here,
   * so cb cannot run before this returns. */
  r->next = c->reqs;
  if (c->reqs)
    c->reqs->prev = r;
  c->reqs = r;
  c->nreqs++;
  r = NULL;
  ret = 0;
out:
  if (r != NULL)
    free_req(r);
  return ret;
}
