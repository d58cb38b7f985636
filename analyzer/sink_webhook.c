/* sink_webhook.c — the "webhook" sink: each alert is one JSON POST (libcurl multi on the
 * loop).
 *
 * libcurl's multi interface is driven by the loop the way curl's docs/examples/multi-uv.c
 * shows: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION → one uv_poll per
 * socket) and when to wake it (CURLMOPT_TIMERFUNCTION → one uv_timer); readiness and
 * timeouts go back through curl_multi_socket_action(), and finished transfers are read
 * with curl_multi_info_read().  Nothing here blocks the loop; DNS runs in curl's own
 * resolver (threaded or c-ares, as libcurl was built).
 *
 * Request: POST url, Content-Type: application/json, "Expect:" (no 100-continue wait),
 * the configured headers whose values were read from the environment at create, and,
 * with hmac_secret_env, X-Keywatch-Signature: sha256=<hex HMAC-SHA256(secret, body)>.
 * Success is a 2xx answer.  Redirects are never followed (a 3xx is a failure, so a
 * hostile or misconfigured receiver cannot bounce the alert and its headers elsewhere);
 * only http and https are allowed, for the request and for any redirect.
 *
 * Secrets (header values, the HMAC key) live in this sink only, are wiped before their
 * memory is freed, and never reach a reason string or a log line.  The URL may hold a
 * token in its path (Slack-style webhooks): reasons never print it, and the path and
 * query are scrubbed from curl's error text for good measure.
 *
 * States of the sink:
 *   open ──close──► closing: transfers removed, curl_multi_cleanup, polls and timer closed
 *        (deferred while inside a curl callback)  ──last handle closed──► callbacks of the
 *        removed transfers (KW_ECANCELED), free, close cb
 *
 * Thread: the loop's.  curl_global_init() is called per sink (it is reference-counted).
 */
#include "sink.h"

#include "sidecar/config.h"
#include "sidecar/err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REQS 256 /* transfers in flight; send() says -EAGAIN beyond */
#define SIG_HEADER "X-Keywatch-Signature"

struct req {
  struct req *next, *prev;
  struct webhook *w;
  CURL *easy;
  char *body;
  struct curl_slist *hdrs;
  char errbuf[CURL_ERROR_SIZE];
  kw_sink_done_cb cb;
  void *arg;
};

struct sock {
  struct webhook *w;
  uv_poll_t poll;
  curl_socket_t fd;
  struct sock *next, *prev;
};

struct webhook {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  char *url;
  char *path, *query;         /* scrubbed from error text */
  struct curl_slist *headers; /* shared part of every request's headers */
  unsigned char *secret;
  size_t secret_len;
  long timeout_ms;
  struct req *reqs;      /* in flight */
  struct req *canceled;  /* removed at close, called back once everything is closed */
  size_t nreqs;
  struct sock *socks;    /* open poll contexts */
  size_t handles;        /* uv handles not yet closed (timer + polls) */
  int depth;             /* > 0 while inside curl_multi_socket_action */
  bool closing, torn, global;
  kw_sink_close_cb close_cb;
  void *close_arg;
};

/* ---- secrets -------------------------------------------------------------------------- */

static void free_slist_wiped(struct curl_slist *l) {
  for (struct curl_slist *p = l; p != NULL; p = p->next)
    OPENSSL_cleanse(p->data, strlen(p->data));
  curl_slist_free_all(l);
}

/* ---- curl ↔ loop glue (multi-uv) ------------------------------------------------------ */

static void teardown(struct webhook *w);

static void on_handle_closed(uv_handle_t *h);

static void unlink_req(struct webhook *w, struct req *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    w->reqs = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->next = r->prev = NULL;
  w->nreqs--;
}

static void free_req(struct req *r) {
  if (r->easy)
    curl_easy_cleanup(r->easy);
  free_slist_wiped(r->hdrs);
  free(r->body);
  free(r);
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

static void finish_req(struct webhook *w, struct req *r, CURLcode c) {
  char reason[CURL_ERROR_SIZE + 64];
  long code = 0;
  int status = 0;

  if (c == CURLE_OK) {
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) {
      status = KW_EIO;
      snprintf(reason, sizeof(reason), "HTTP %ld%s", code,
               code >= 300 && code <= 399 ? " (redirects are not followed)" : "");
    }
  } else {
    status = curl_status(c);
    snprintf(reason, sizeof(reason), "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(c));
    scrub(reason, w->path);
    scrub(reason, w->query);
  }
  curl_multi_remove_handle(w->multi, r->easy);
  unlink_req(w, r);
  r->cb(status, status ? reason : NULL, r->arg);
  free_req(r);
}

static void check_multi_info(struct webhook *w) {
  CURLMsg *m;
  int left;
  while (!w->closing && (m = curl_multi_info_read(w->multi, &left)) != NULL) {
    if (m->msg == CURLMSG_DONE) {
      struct req *r = NULL;
      CURLcode c = m->data.result;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
      finish_req(w, r, c);
    }
  }
}

static void socket_action(struct webhook *w, curl_socket_t fd, int flags) {
  int running;
  w->depth++;
  curl_multi_socket_action(w->multi, fd, flags, &running);
  check_multi_info(w);
  w->depth--;
  if (w->closing && !w->torn && w->depth == 0)
    teardown(w);
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
  if (!s->w->torn)
    socket_action(s->w, s->fd, flags);
}

static void on_timeout(uv_timer_t *t) {
  struct webhook *w = t->data;
  if (!w->torn)
    socket_action(w, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long ms, void *userp) {
  struct webhook *w = userp;
  (void)multi;
  if (w->torn)
    return 0;
  if (ms < 0)
    uv_timer_stop(&w->timer);
  else
    uv_timer_start(&w->timer, on_timeout, (uint64_t)ms, 0); /* 0: next loop iteration */
  return 0;
}

static void close_sock(struct webhook *w, struct sock *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    w->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct webhook *w = userp;
  struct sock *s = socketp;
  int events = 0;
  (void)easy;

  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      curl_multi_assign(w->multi, fd, NULL);
      close_sock(w, s);
    }
    return 0;
  }
  if (s == NULL) {
    if ((s = calloc(1, sizeof(*s))) == NULL)
      return -1;
    if (uv_poll_init_socket(w->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->w = w;
    s->fd = fd;
    s->poll.data = s;
    s->next = w->socks;
    if (w->socks)
      w->socks->prev = s;
    w->socks = s;
    w->handles++;
    curl_multi_assign(w->multi, fd, s);
  }
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h) {
  struct webhook *w;
  if (h->type == UV_POLL) {
    struct sock *s = h->data;
    w = s->w;
    free(s);
  } else {
    w = h->data;
  }
  if (--w->handles > 0 || !w->torn)
    return;
  while (w->canceled != NULL) {
    struct req *r = w->canceled;
    w->canceled = r->next;
    r->cb(KW_ECANCELED, "sink closed", r->arg);
    free_req(r);
  }
  kw_sink_close_cb cb = w->close_cb;
  void *arg = w->close_arg;
  free_slist_wiped(w->headers);
  if (w->secret) {
    OPENSSL_cleanse(w->secret, w->secret_len);
    free(w->secret);
  }
  free(w->url);
  free(w->path);
  free(w->query);
  if (w->global)
    curl_global_cleanup();
  free(w);
  if (cb)
    cb(arg);
}

static void teardown(struct webhook *w) {
  w->torn = true;
  /* Removed transfers are called back once every handle is closed (never from here). */
  while (w->reqs != NULL) {
    struct req *r = w->reqs;
    curl_multi_remove_handle(w->multi, r->easy);
    unlink_req(w, r);
    r->next = w->canceled;
    w->canceled = r;
  }
  if (w->multi) {
    curl_multi_cleanup(w->multi); /* may report CURL_POLL_REMOVE for cached connections */
    w->multi = NULL;
  }
  while (w->socks != NULL)
    close_sock(w, w->socks);
  uv_close((uv_handle_t *)&w->timer, on_handle_closed);
}

static void webhook_close(void *ctx, kw_sink_close_cb cb, void *arg) {
  struct webhook *w = ctx;
  w->closing = true;
  w->close_cb = cb;
  w->close_arg = arg;
  if (w->depth == 0)
    teardown(w);
}

static bool header_name_ok(const char *n) {
  static const char *const reserved[] = {"content-type", "content-length", "host",
                                         "transfer-encoding", "expect", SIG_HEADER, NULL};
  if (n == NULL || n[0] == '\0' || strlen(n) > 128)
    return false;
  for (const char *p = n; *p; p++)
    if (!(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
      return false;
  for (size_t i = 0; reserved[i]; i++)
    if (strcasecmp(n, reserved[i]) == 0)
      return false;
  return true;
}

static int webhook_create(uv_loop_t *loop, const struct kw_sink_cfg *cfg, void **ctx,
                          char *err, size_t errlen) {
  struct webhook *w = calloc(1, sizeof(*w));
  CURLU *u = NULL;
  char *scheme = NULL, *host = NULL;
  struct curl_slist *nl;
  int r = KW_EINVAL;

  if (w == NULL)
    return KW_ENOMEM;
  w->loop = loop;
  w->timeout_ms = cfg->timeout_ms ? (long)cfg->timeout_ms : 5000;
  /* The URL: http or https with a host.  Never echoed (its path may be a token). */
  if ((u = curl_url()) == NULL) {
    r = KW_ENOMEM;
    goto out;
  }
  if (cfg->url == NULL || curl_url_set(u, CURLUPART_URL, cfg->url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
    snprintf(err, errlen, "url: not an http:// or https:// URL with a host");
    goto out;
  }
  {
    char *p = NULL, *q = NULL;
    curl_url_get(u, CURLUPART_PATH, &p, 0);
    curl_url_get(u, CURLUPART_QUERY, &q, 0);
    w->path = p ? strdup(p) : NULL;
    w->query = q ? strdup(q) : NULL;
    curl_free(p);
    curl_free(q);
  }
  if ((w->url = strdup(cfg->url)) == NULL) {
    r = KW_ENOMEM;
    goto out;
  }
  /* Shared headers; values from the environment. */
  if ((w->headers = curl_slist_append(NULL, "Content-Type: application/json")) == NULL ||
      (nl = curl_slist_append(w->headers, "Expect:")) == NULL) {
    r = KW_ENOMEM;
    goto out;
  }
  w->headers = nl;
  for (unsigned i = 0; i < cfg->headers_count; i++) {
    const struct kw_sink_header_cfg *h = &cfg->headers[i];
    const char *v = h->env ? getenv(h->env) : NULL;
    char *line;
    size_t n;
    if (!header_name_ok(h->name)) {
      snprintf(err, errlen,
               "headers.%u.name: '%.64s' is not a header name keywatch lets you set", i,
               h->name ? h->name : "");
      goto out;
    }
    if (v == NULL) {
      snprintf(err, errlen, "headers.%u.env: environment variable %.64s is not set", i,
               h->env ? h->env : "(none)");
      goto out;
    }
    if (strpbrk(v, "\r\n") != NULL) {
      snprintf(err, errlen, "headers.%u.env: the value of %.64s holds a line break", i,
               h->env);
      goto out;
    }
    n = strlen(h->name) + 2 + strlen(v) + 1;
    if ((line = malloc(n)) == NULL) {
      r = KW_ENOMEM;
      goto out;
    }
    snprintf(line, n, "%s: %s", h->name, v);
    nl = curl_slist_append(w->headers, line);
    OPENSSL_cleanse(line, n);
    free(line);
    if (nl == NULL) {
      r = KW_ENOMEM;
      goto out;
    }
    w->headers = nl;
  }
  if (cfg->hmac_secret_env != NULL) {
    const char *v = getenv(cfg->hmac_secret_env);
    if (v == NULL || v[0] == '\0') {
      snprintf(err, errlen, "hmac_secret_env: environment variable %.64s is %s",
               cfg->hmac_secret_env, v ? "empty" : "not set");
      goto out;
    }
    w->secret_len = strlen(v);
    if ((w->secret = malloc(w->secret_len)) == NULL) {
      r = KW_ENOMEM;
      goto out;
    }
    memcpy(w->secret, v, w->secret_len);
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(err, errlen, "cannot initialise libcurl");
    r = KW_EIO;
    goto out;
  }
  w->global = true;
  if ((w->multi = curl_multi_init()) == NULL) {
    r = KW_ENOMEM;
    goto out;
  }
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  w->handles = 1;
  *ctx = w;
  w = NULL;
  r = 0;
out:
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  if (w != NULL) {
    if (w->multi)
      curl_multi_cleanup(w->multi);
    if (w->global)
      curl_global_cleanup();
    free_slist_wiped(w->headers);
    if (w->secret) {
      OPENSSL_cleanse(w->secret, w->secret_len);
      free(w->secret);
    }
    free(w->url);
    free(w->path);
    free(w->query);
    free(w);
  }
  return r;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  (void)p;
  (void)arg;
  return size * n; /* the answer's body is not needed: the status says it all */
}

/* Copies the shared headers into a list of the request's own and adds the signature. */
static int request_headers(struct webhook *w, const char *body, size_t len,
                           struct curl_slist **out) {
  struct curl_slist *l = NULL, *nl;
  *out = NULL;
  for (struct curl_slist *p = w->headers; p != NULL; p = p->next) {
    if ((nl = curl_slist_append(l, p->data)) == NULL)
      goto fail;
    l = nl;
  }
  if (w->secret != NULL) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char line[sizeof(SIG_HEADER) + 16 + 2 * EVP_MAX_MD_SIZE];
    int o;
    if (HMAC(EVP_sha256(), w->secret, (int)w->secret_len, (const unsigned char *)body, len,
             md, &mdlen) == NULL)
      goto fail;
    o = snprintf(line, sizeof(line), SIG_HEADER ": sha256=");
    for (unsigned i = 0; i < mdlen; i++)
      o += snprintf(line + o, sizeof(line) - (size_t)o, "%02x", md[i]);
    if ((nl = curl_slist_append(l, line)) == NULL)
      goto fail;
    l = nl;
  }
  *out = l;
  return 0;
fail:
  free_slist_wiped(l);
  return KW_ENOMEM;
}

static int webhook_send(void *ctx, const char *json, size_t len, int severity,
                        kw_sink_done_cb cb, void *arg) {
  struct webhook *w = ctx;
  struct req *r;
  CURL *e;
  (void)severity;

  if (w->closing)
    return KW_ECANCELED;
  if (w->nreqs >= MAX_REQS)
    return -EAGAIN;
  if ((r = calloc(1, sizeof(*r))) == NULL)
    return KW_ENOMEM;
  r->w = w;
  r->cb = cb;
  r->arg = arg;
  if ((r->body = malloc(len ? len : 1)) == NULL || request_headers(w, json, len, &r->hdrs) ||
      (r->easy = curl_easy_init()) == NULL) {
    free_req(r);
    return KW_ENOMEM;
  }
  memcpy(r->body, json, len);
  e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, w->url);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "keywatch/" KW_VERSION);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, w->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
    free_req(r);
    return KW_EIO;
  }
  /* Linked only now: the transfer starts from the timer curl just armed, never from here. */
  r->next = w->reqs;
  if (w->reqs)
    w->reqs->prev = r;
  w->reqs = r;
  w->nreqs++;
  return 0;
}

const struct kw_sink_ops kw__sink_webhook_ops = {
    .type = "webhook",
    .create = webhook_create,
    .send = webhook_send,
    .close = webhook_close,
};
