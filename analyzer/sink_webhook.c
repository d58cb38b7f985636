/* sink_webhook.c — the "webhook" sink: each alert is one JSON POST (kw_httpc on the loop).
 *
 * The HTTP work — curl's multi interface on the loop, the policy (http/https only, no
 * redirects, timeouts, "Expect:", the User-Agent), error texts without the URL's path or
 * query, cancellation at close — is httpc.c's.  This file keeps the sink's own concerns:
 * the URL checked at create, header values read from the environment at create, the HMAC
 * signature, what counts as delivered, and its secrets.
 *
 * Request: POST url, Content-Type: application/json, the configured headers, and, with
 * hmac_secret_env, X-Keywatch-Signature: sha256=<hex HMAC-SHA256(secret, body)>.
 * Success is a 2xx answer.  A 3xx is a failure ("HTTP 302 (redirects are not followed)"),
 * so a hostile or misconfigured receiver cannot bounce the alert and its headers
 * elsewhere.  The answer's body is not needed: at most ANSWER_MAX bytes are kept, and an
 * answer whose body is longer still counts by its status code.
 *
 * Secrets (header values, the HMAC key) live in this sink only, are wiped before their
 * memory is freed, and never reach a reason string or a log line.  The URL may hold a
 * token in its path (Slack-style webhooks): reasons never print it (httpc scrubs the path
 * and query from curl's error text).
 *
 * States of the sink:
 *   open ──close──► closing: kw_httpc_close() ──► each transfer in flight called back
 *        (KW_ECANCELED, "sink closed") ──httpc's close cb──► free, close cb
 *
 * Thread: the loop's.
 */
#include "sink.h"

#include "httpc.h"
#include "sidecar/config.h"
#include "sidecar/err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SIG_HEADER "X-Keywatch-Signature"
#define ANSWER_MAX (64u * 1024) /* answer bytes httpc keeps (and we ignore) */

struct webhook {
  struct kw_httpc *http;
  char *url;
  char **headers; /* Content-Type and the configured "Name: value" lines; wiped */
  size_t nheaders;
  unsigned char *secret;
  size_t secret_len;
  long timeout_ms;
  bool closing;
  kw_sink_close_cb close_cb;
  void *close_arg;
};

/* One send() in flight: what to call back. */
struct delivery {
  kw_sink_done_cb cb;
  void *arg;
};

/* ---- secrets and lifecycle ------------------------------------------------------------ */

static void free_webhook(struct webhook *w) {
  if (w == NULL)
    return;
  for (size_t i = 0; i < w->nheaders; i++) {
    OPENSSL_cleanse(w->headers[i], strlen(w->headers[i]));
    free(w->headers[i]);
  }
  free(w->headers);
  if (w->secret) {
    OPENSSL_cleanse(w->secret, w->secret_len);
    free(w->secret);
  }
  free(w->url);
  free(w);
}

static void on_http_closed(void *arg) {
  struct webhook *w = arg;
  kw_sink_close_cb cb = w->close_cb;
  void *cb_arg = w->close_arg;
  free_webhook(w);
  if (cb)
    cb(cb_arg);
}

static void webhook_close(void *ctx, kw_sink_close_cb cb, void *arg) {
  struct webhook *w = ctx;
  w->closing = true;
  w->close_cb = cb;
  w->close_arg = arg;
  kw_httpc_close(w->http, on_http_closed, w); /* transfers in flight: KW_ECANCELED first */
}

/* ---- create --------------------------------------------------------------------------- */

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

/* Appends a copy of line to w->headers.  Returns 0 or KW_ENOMEM. */
static int add_header(struct webhook *w, const char *line) {
  char **nh = realloc(w->headers, (w->nheaders + 1) * sizeof(*nh));
  if (nh == NULL)
    return KW_ENOMEM;
  w->headers = nh;
  if ((nh[w->nheaders] = strdup(line)) == NULL)
    return KW_ENOMEM;
  w->nheaders++;
  return 0;
}

static int webhook_create(uv_loop_t *loop, const struct kw_sink_cfg *cfg, void **ctx,
                          char *err, size_t errlen) {
  struct webhook *w = calloc(1, sizeof(*w));
  CURLU *u = NULL;
  char *scheme = NULL, *host = NULL;
  int r = KW_EINVAL;

  if (w == NULL)
    return KW_ENOMEM;
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
  if ((w->url = strdup(cfg->url)) == NULL) {
    r = KW_ENOMEM;
    goto out;
  }
  /* Headers; values from the environment. */
  if (add_header(w, "Content-Type: application/json") != 0) {
    r = KW_ENOMEM;
    goto out;
  }
  for (unsigned i = 0; i < cfg->headers_count; i++) {
    const struct kw_sink_header_cfg *h = &cfg->headers[i];
    const char *v = h->env ? getenv(h->env) : NULL;
    char *line;
    size_t n;
    int added;
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
    added = add_header(w, line);
    OPENSSL_cleanse(line, n);
    free(line);
    if (added != 0) {
      r = KW_ENOMEM;
      goto out;
    }
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
  /* Last: nothing may fail after it (closing a client takes the loop). */
  if ((r = kw_httpc_init(loop, &w->http)) != 0) {
    snprintf(err, errlen, "cannot initialise libcurl");
    goto out;
  }
  *ctx = w;
  w = NULL;
  r = 0;
out:
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  free_webhook(w);
  return r;
}

/* ---- send ----------------------------------------------------------------------------- */

static void on_answer(const struct kw_http_resp *resp, void *arg) {
  struct delivery *d = arg;
  char reason[96];
  const char *why = NULL;
  int status = resp->status;

  /* An answer whose body exceeded ANSWER_MAX still counts by its status code. */
  if (status == 0 || (status == KW_ETOOLONG && resp->code > 0)) {
    status = 0;
    if (resp->code < 200 || resp->code > 299) {
      status = KW_EIO;
      snprintf(reason, sizeof(reason), "HTTP %ld%s", resp->code,
               resp->code >= 300 && resp->code <= 399 ? " (redirects are not followed)" : "");
      why = reason;
    }
  } else {
    why = status == KW_ECANCELED ? "sink closed" : resp->error;
  }
  d->cb(status, why, d->arg);
  free(d);
}

/* The signature header line for body into line[0..len). */
static int sign(const struct webhook *w, const char *body, size_t len, char *line,
                size_t linelen) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  int o;
  if (HMAC(EVP_sha256(), w->secret, (int)w->secret_len, (const unsigned char *)body, len, md,
           &mdlen) == NULL)
    return KW_ENOMEM;
  o = snprintf(line, linelen, SIG_HEADER ": sha256=");
  for (unsigned i = 0; i < mdlen; i++)
    o += snprintf(line + o, linelen - (size_t)o, "%02x", md[i]);
  OPENSSL_cleanse(md, sizeof(md));
  return 0;
}

static int webhook_send(void *ctx, const char *json, size_t len, int severity,
                        kw_sink_done_cb cb, void *arg) {
  struct webhook *w = ctx;
  char sig[sizeof(SIG_HEADER) + 16 + 2 * EVP_MAX_MD_SIZE];
  struct kw_http_req req = {.method = "POST", .url = w->url, .body = json, .body_len = len,
                            .timeout_ms = w->timeout_ms, .max_body = ANSWER_MAX};
  const char **hdrs = NULL;
  struct delivery *d = NULL;
  size_t n = 0;
  int r = KW_ENOMEM;
  (void)severity;

  if (w->closing)
    return KW_ECANCELED;
  if ((d = malloc(sizeof(*d))) == NULL ||
      (hdrs = calloc(w->nheaders + 2, sizeof(*hdrs))) == NULL)
    goto out;
  d->cb = cb;
  d->arg = arg;
  for (; n < w->nheaders; n++)
    hdrs[n] = w->headers[n];
  if (w->secret != NULL) {
    if (sign(w, json, len, sig, sizeof(sig)) != 0)
      goto out;
    hdrs[n++] = sig;
  }
  req.headers = hdrs;
  if ((r = kw_httpc_request(w->http, &req, on_answer, d)) == 0)
    d = NULL; /* on_answer frees it */
out:
  OPENSSL_cleanse(sig, sizeof(sig));
  free(hdrs);
  free(d);
  return r;
}

const struct kw_sink_ops kw__sink_webhook_ops = {
    .type = "webhook",
    .create = webhook_create,
    .send = webhook_send,
    .close = webhook_close,
};
