/* api.c — the HTTP API, the dashboard and /metrics (api.h, docs/api.md).
 *
 * A read request is parsed and authorised on the loop, then its query runs on a pool
 * thread (struct job) that writes the JSON answer into a memory stream; the loop sends
 * it.  Read-only connections are pooled (one per concurrently running job at most).
 * Writes are short and run on the loop with the writer.
 */
#include "api.h"

#include "alerts.h"
#include "dict.h"
#include "err.h"
#include "escape.h"
#include "fingerprint.h"
#include "keyview.h"
#include "metrics.h"
#include "revocations.h"
#include "secret.h"
#include "timeutil.h"
#include "ui.h"
#include "usage.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#define POOL_MAX 8
#define PAGE_DEFAULT 50
#define PAGE_MAX 500

enum role { ROLE_NONE = 0, ROLE_VIEWER = 1, ROLE_RESPONDER = 2 };

struct token {
  char name[64];
  enum role role;
  unsigned char digest[32];
};

struct kw_api {
  char db_path[PATH_MAX];
  struct kw_store *writer;
  bool own_writer;
  const struct kw_log *log;
  void (*on_write)(void *arg);
  void *arg;
  struct token *tokens;
  size_t ntokens;
  pthread_mutex_t mu; /* the pool of read-only connections */
  pthread_mutex_t rmu; /* the latest review, parsed once (key pages read it) */
  int64_t review_id;
  json_t *review;
  struct kw_dict *review_ix; /* fingerprint hex → index in review.keys */
  struct kw_store *pool[POOL_MAX];
  size_t npool;
  struct kw_http_route routes[16];
  struct guarded {           /* what each route calls once the Host is allowed */
    struct kw_api *a;
    kw_http_handler fn;
  } guarded[16];
  size_t nroutes;
  char **hosts;              /* http.allowed_hosts (copied: a reload frees the config) */
  size_t nhosts;
};

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self';"
                          " img-src 'self' data:; connect-src 'self'; base-uri 'none';"
                          " form-action 'none'; frame-ancestors 'none'";

const char *kw_api_csp(void) { return CSP; }

/* ---- answers ------------------------------------------------------------------------- */

static void respond_json(struct kw_http_request *rq, int status, const char *json) {
  kw_httpd_respond(rq, status, "application/json", json, strlen(json), NULL);
}

static void respond_error(struct kw_http_request *rq, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void respond_error(struct kw_http_request *rq, int status, const char *fmt, ...) {
  char msg[400], *body = NULL;
  size_t len = 0;
  va_list ap;
  FILE *f = open_memstream(&body, &len);
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (f == NULL) {
    kw_httpd_respond(rq, 500, "application/json", "{\"error\": \"out of memory\"}", 26, NULL);
    return;
  }
  fputs("{\"error\": ", f);
  kw_json_cstr(f, msg);
  fputs("}\n", f);
  fclose(f);
  kw_httpd_respond(rq, status, "application/json", body, len,
                   status == 401 ? "WWW-Authenticate: Bearer realm=\"keywatch\"\r\n" : NULL);
  free(body);
}

/* ---- authentication ------------------------------------------------------------------ */

static void digest(const char *s, size_t n, unsigned char out[32]) {
  unsigned len = 0;
  EVP_Digest(s, n, out, &len, EVP_sha256(), NULL);
}

/* The token of rq (by constant-time digest comparison), or NULL. */
static const struct token *token_of(const struct kw_api *a, struct kw_http_request *rq) {
  const char *h = kw_http_header(rq, "authorization");
  unsigned char d[32];
  const struct token *found = NULL;
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
    return NULL;
  h += 7;
  while (*h == ' ')
    h++;
  digest(h, strlen(h), d);
  for (size_t i = 0; i < a->ntokens; i++)
    if (CRYPTO_memcmp(d, a->tokens[i].digest, sizeof(d)) == 0)
      found = &a->tokens[i];
  OPENSSL_cleanse(d, sizeof(d));
  return found;
}

/* Authorises rq for need; answers it (401/403) and returns NULL when it may not.  The
 * returned name is who (for a POST).  Without tokens configured, GETs are open and
 * POSTs refused. */
static const char *authorise(struct kw_api *a, struct kw_http_request *rq, enum role need) {
  const struct token *t;
  if (a->ntokens == 0) {
    if (need == ROLE_VIEWER)
      return "anonymous";
    respond_error(rq, 403, "no API tokens are configured (http.tokens): the API is read-only");
    return NULL;
  }
  if ((t = token_of(a, rq)) == NULL) {
    respond_error(rq, 401, "a valid API token is needed: Authorization: Bearer TOKEN");
    return NULL;
  }
  if (t->role < need) {
    respond_error(rq, 403, "token '%s' is a viewer token: this needs the responder role",
                  t->name);
    return NULL;
  }
  return t->name;
}

/* DNS rebinding: a page that makes its own name resolve to this address would be "same
 * origin" with the API.  Browsers always send the name they resolved as Host, so only
 * an IP literal, localhost or a name of http.allowed_hosts is served (any port).  A
 * request without Host (HTTP/1.0, no browser) is served. */
static bool host_allowed(const struct kw_api *a, const char *host) {
  char name[256];
  const char *end;
  unsigned char ip[16];
  size_t n;

  if (host == NULL)
    return true;
  if (host[0] == '[') { /* [v6]:port */
    if ((end = strchr(host, ']')) == NULL || (n = (size_t)(end - host - 1)) >= sizeof(name))
      return false;
    memcpy(name, host + 1, n);
    name[n] = '\0';
    return inet_pton(AF_INET6, name, ip) == 1 && (end[1] == '\0' || end[1] == ':');
  }
  end = strchr(host, ':');
  n = end ? (size_t)(end - host) : strlen(host);
  if (n == 0 || n >= sizeof(name))
    return false;
  memcpy(name, host, n);
  name[n] = '\0';
  if (inet_pton(AF_INET, name, ip) == 1 || strcasecmp(name, "localhost") == 0)
    return true;
  for (size_t i = 0; i < a->nhosts; i++)
    if (strcasecmp(name, a->hosts[i]) == 0)
      return true;
  return false;
}

static void h_guarded(struct kw_http_request *rq, void *arg) {
  const struct guarded *g = arg;
  const char *host = kw_http_header(rq, "host");
  if (!host_allowed(g->a, host)) {
    respond_error(rq, 403,
                  "Host '%.100s' is not served: use the address, localhost, or add the name "
                  "to http.allowed_hosts",
                  host);
    return;
  }
  g->fn(rq, g->a);
}

/* CSRF: a state change must be JSON, and a browser's Origin must be our own. */
static bool same_origin_json(struct kw_http_request *rq) {
  const char *ct = kw_http_header(rq, "content-type"), *origin = kw_http_header(rq, "origin");
  const char *host = kw_http_header(rq, "host");
  char want[300];
  if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
    respond_error(rq, 403, "a state change needs Content-Type: application/json");
    return false;
  }
  if (origin != NULL) {
    snprintf(want, sizeof(want), "http://%s", host ? host : "");
    if (host == NULL || strcmp(origin, want) != 0) {
      respond_error(rq, 403, "cross-origin request refused (Origin %.100s)", origin);
      return false;
    }
  }
  return true;
}

/* ---- the read-only pool -------------------------------------------------------------- */

static struct kw_store *pool_get(struct kw_api *a, char *err, size_t errlen) {
  struct kw_store *st = NULL;
  pthread_mutex_lock(&a->mu);
  if (a->npool > 0)
    st = a->pool[--a->npool];
  pthread_mutex_unlock(&a->mu);
  if (st == NULL && kw_store_open(a->db_path, KW_STORE_RDONLY, &st, err, errlen) != 0)
    return NULL;
  return st;
}

static void pool_put(struct kw_api *a, struct kw_store *st) {
  pthread_mutex_lock(&a->mu);
  if (a->npool < POOL_MAX) {
    a->pool[a->npool++] = st;
    st = NULL;
  }
  pthread_mutex_unlock(&a->mu);
  kw_store_close(st);
}

/* ---- offloaded reads ------------------------------------------------------------------ */

struct job;
typedef int (*job_fn)(struct job *j, struct kw_store *st, FILE *f);

struct job {
  struct kw_api *api;
  job_fn fn;
  int status;
  char *body;
  size_t len;
  const char *ctype;
  char err[300];
  /* parameters, parsed on the loop */
  char key[80], state[32], rule[128], since[64], until[64];
  int severity;
  int64_t id, limit, cur_a, cur_b, hours;
};

static void job_work(struct kw_http_request *rq, void *arg) {
  struct job *j = arg;
  char err[512];
  struct kw_store *st = pool_get(j->api, err, sizeof(err));
  FILE *f;
  (void)rq;
  if (st == NULL) {
    j->status = 503;
    snprintf(j->err, sizeof(j->err), "database unavailable: %s", err);
    return;
  }
  if ((f = open_memstream(&j->body, &j->len)) == NULL) {
    j->status = 500;
    snprintf(j->err, sizeof(j->err), "out of memory");
  } else {
    j->status = j->fn(j, st, f);
    if (fclose(f) != 0 && j->status < 400) {
      j->status = 500;
      snprintf(j->err, sizeof(j->err), "out of memory");
    }
    if (j->status >= 400 && j->err[0] == '\0')
      snprintf(j->err, sizeof(j->err), "database error: %s", kw_store_errmsg(st));
  }
  pool_put(j->api, st);
}

static void job_done(struct kw_http_request *rq, void *arg) {
  struct job *j = arg;
  if (j->status >= 400)
    respond_error(rq, j->status, "%s", j->err);
  else
    kw_httpd_respond(rq, j->status, j->ctype ? j->ctype : "application/json", j->body,
                     j->len, NULL);
  free(j->body);
  free(j);
}

static void run_job(struct kw_http_request *rq, struct job *j) {
  if (kw_httpd_offload(rq, job_work, job_done, j) != 0) {
    free(j);
    respond_error(rq, 503, "busy: try again");
  }
}

static struct job *new_job(struct kw_api *a, struct kw_http_request *rq, job_fn fn) {
  struct job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    respond_error(rq, 500, "out of memory");
    return NULL;
  }
  j->api = a;
  j->fn = fn;
  j->limit = PAGE_DEFAULT;
  j->severity = -1;
  return j;
}

/* limit and cursor ("A:B" or "A") parameters; answers 400 and returns false when bad. */
static bool paging(struct kw_http_request *rq, struct job *j) {
  char buf[64], *end;
  const char *v;
  if ((v = kw_http_query(rq, "limit", buf, sizeof(buf))) != NULL) {
    long long n = strtoll(v, &end, 10);
    if (*end || n < 1 || n > PAGE_MAX) {
      respond_error(rq, 400, "limit: '%.20s' is not a count from 1 to %d", v, PAGE_MAX);
      return false;
    }
    j->limit = n;
  }
  if ((v = kw_http_query(rq, "cursor", buf, sizeof(buf))) != NULL && v[0]) {
    long long x = strtoll(v, &end, 10), y = 0;
    if (*end == ':')
      y = strtoll(end + 1, &end, 10);
    if (*end || x < 0 || y < 0) {
      respond_error(rq, 400, "cursor: '%.30s' is not one this API gave", v);
      return false;
    }
    j->cur_a = x, j->cur_b = y;
  }
  return true;
}

static bool copy_param(struct kw_http_request *rq, const char *name, char *dst, size_t len) {
  char buf[256];
  const char *v = kw_http_query(rq, name, buf, sizeof(buf));
  if (v == NULL)
    return true;
  if (strlen(v) >= len) {
    respond_error(rq, 400, "%s: too long", name);
    return false;
  }
  snprintf(dst, len, "%s", v);
  return true;
}

static void json_time(FILE *f, int64_t us) {
  char t[40];
  if (us <= 0)
    fputs("null", f);
  else
    fprintf(f, "\"%s\"", kw_time_format(us, t, sizeof(t)));
}

static void json_opt(FILE *f, const char *s) {
  if (s)
    kw_json_cstr(f, s);
  else
    fputs("null", f);
}

/* ---- alerts ------------------------------------------------------------------------- */

struct list {
  FILE *f;
  int64_t n, limit;
  int64_t last_a, last_b;
};

static int on_alert(const struct kw_alert_row *r, void *ctx) {
  struct list *l = ctx;
  if (l->n == l->limit) { /* one more than the page: there is a next one */
    l->n++;
    return 1;
  }
  fputs(l->n++ ? ",\n" : "\n", l->f);
  kw_alert_json(l->f, r);
  l->last_a = r->last_us, l->last_b = r->id;
  return 0;
}

static void end_page(struct list *l) {
  fputs("],\n\"next_cursor\": ", l->f);
  if (l->n > l->limit)
    fprintf(l->f, "\"%lld:%lld\"}\n", (long long)l->last_a, (long long)l->last_b);
  else
    fputs("null}\n", l->f);
}

static int alerts_list(struct job *j, struct kw_store *st, FILE *f) {
  struct kw_alerts_query q = {.state = j->state[0] ? j->state : NULL,
                              .min_severity = j->severity,
                              .key = j->key[0] ? j->key : NULL,
                              .rule = j->rule[0] ? j->rule : NULL,
                              .limit = j->limit + 1,
                              .before_us = j->cur_a,
                              .before_id = j->cur_b};
  struct list l = {.f = f, .limit = j->limit};
  fputs("{\"items\": [", f);
  if (kw_store_alerts(st, &q, on_alert, &l) != 0)
    return 500;
  end_page(&l);
  return 200;
}

static void json_call(FILE *f, const struct kw_call_row *c) {
  char addr[64], hex[2 * KW_FP_LEN + 1];
  fputs("{\"time\": ", f);
  json_time(f, c->ts_us);
  fputs(", \"key_prefix\": ", f);
  json_opt(f, c->prefix);
  fputs(", \"fingerprint\": ", f);
  if (c->fp) {
    kw_fingerprint_hex(c->fp, hex);
    fprintf(f, "\"%s\"", hex);
  } else {
    fputs("null", f);
  }
  fputs(", \"client\": ", f);
  json_opt(f, c->client.family ? kw_addr_format(&c->client, addr, sizeof(addr)) : NULL);
  fputs(", \"method\": ", f);
  json_opt(f, c->method);
  fputs(", \"path\": ", f);
  json_opt(f, c->path);
  fputs(", \"endpoint\": ", f);
  json_opt(f, c->endpoint);
  fprintf(f, ", \"status\": %d, \"user_agent\": ", c->status);
  json_opt(f, c->user_agent);
  fputs(", \"host\": ", f);
  json_opt(f, c->host);
  fputs(", \"source\": ", f);
  json_opt(f, c->source);
  fputs(", \"resp_bytes\": ", f);
  if (c->resp_bytes >= 0)
    fprintf(f, "%lld", (long long)c->resp_bytes);
  else
    fputs("null", f);
  fputs(", \"req_bytes\": ", f);
  if (c->req_bytes >= 0)
    fprintf(f, "%lld", (long long)c->req_bytes);
  else
    fputs("null", f);
  fputs(", \"latency_ms\": ", f);
  if (c->latency_us >= 0)
    fprintf(f, "%.3f}", (double)c->latency_us / 1000.0);
  else
    fputs("null}", f);
}

static int on_sample(const struct kw_call_row *c, void *ctx) {
  struct list *l = ctx;
  fputs(l->n++ ? ",\n" : "\n", l->f);
  json_call(l->f, c);
  return 0;
}

static int on_one_alert(const struct kw_alert_row *r, void *ctx) {
  struct list *l = ctx;
  l->n++;
  fputs("{\"alert\": ", l->f);
  kw_alert_json(l->f, r);
  return 0;
}

static int alert_one(struct job *j, struct kw_store *st, FILE *f) {
  struct kw_alerts_query q = {.min_severity = -1, .id = j->id, .limit = 1};
  struct list l = {.f = f};
  if (kw_store_alerts(st, &q, on_one_alert, &l) != 0)
    return 500;
  if (l.n == 0) {
    snprintf(j->err, sizeof(j->err), "no alert %lld", (long long)j->id);
    return 404;
  }
  fputs(",\n\"samples\": [", f);
  l.n = 0;
  if (kw_store_alert_calls(st, j->id, 20, on_sample, &l) != 0)
    return 500;
  fputs("]}\n", f);
  return 200;
}

/* ---- keys ---------------------------------------------------------------------------- */

static void json_key(FILE *f, const struct kw_key_info *k) {
  char hex[2 * KW_FP_LEN + 1];
  kw_fingerprint_hex(k->fp, hex);
  fputs("{\"key_prefix\": ", f);
  json_opt(f, k->prefix);
  fprintf(f, ", \"fingerprint\": \"%s\", \"name\": ", hex);
  json_opt(f, k->name);
  fprintf(f, ", \"calls\": %lld, \"errors\": %lld, \"first_seen\": ", (long long)k->calls,
          (long long)k->errors);
  json_time(f, k->first_us);
  fputs(", \"last_seen\": ", f);
  json_time(f, k->last_us);
  fprintf(f, ", \"endpoints\": %lld, \"clients\": %lld, \"store\": ", (long long)k->endpoints,
          (long long)k->clients);
  json_opt(f, k->store);
  fputs(", \"group\": ", f);
  json_opt(f, k->group);
  fputs(", \"permission\": ", f);
  json_opt(f, k->permission);
  fputc('}', f);
}

static int on_key_item(const struct kw_key_info *k, void *ctx) {
  struct list *l = ctx;
  if (l->n == l->limit) {
    l->n++;
    return 1;
  }
  fputs(l->n++ ? ",\n" : "\n", l->f);
  json_key(l->f, k);
  return 0;
}

static int keys_list(struct job *j, struct kw_store *st, FILE *f) {
  struct list l = {.f = f, .limit = j->limit};
  fputs("{\"items\": [", f);
  if (kw_store_key_page(st, j->cur_a, j->limit + 1, on_key_item, &l) != 0)
    return 500;
  fputs("],\n\"next_cursor\": ", f);
  if (l.n > l.limit)
    fprintf(f, "\"%lld\"}\n", (long long)(j->cur_a + j->limit));
  else
    fputs("null}\n", f);
  return 200;
}

struct keypage {
  FILE *f;
  struct kw_key_info key;
  char prefix[64], name[256], store[128], group[256], perm[32], hex[2 * KW_FP_LEN + 1];
  bool found;
  int64_t n, next_hour, end_hour;
};

static void on_found(const struct kw_key_info *k, void *ctx) {
  struct keypage *p = ctx;
  p->found = true;
  p->key = *k;
  snprintf(p->prefix, sizeof(p->prefix), "%s", k->prefix ? k->prefix : "");
  snprintf(p->name, sizeof(p->name), "%s", k->name ? k->name : "");
  snprintf(p->store, sizeof(p->store), "%s", k->store ? k->store : "");
  snprintf(p->group, sizeof(p->group), "%s", k->group ? k->group : "");
  snprintf(p->perm, sizeof(p->perm), "%s", k->permission ? k->permission : "");
  p->key.prefix = p->prefix;
  p->key.name = k->name ? p->name : NULL;
  p->key.store = k->store ? p->store : NULL;
  p->key.group = k->group ? p->group : NULL;
  p->key.permission = k->permission ? p->perm : NULL;
  kw_fingerprint_hex(k->fp, p->hex);
}

/* Hours without calls are written too, so the chart's x axis is regular. */
static void hour_gap(struct keypage *p, int64_t until) {
  for (; p->next_hour < until; p->next_hour += 3600000000LL) {
    fputs(p->n++ ? ",\n" : "\n", p->f);
    fputs("{\"t\": ", p->f);
    json_time(p->f, p->next_hour);
    fputs(", \"calls\": 0, \"errors\": 0}", p->f);
  }
}

static int on_hour(int64_t hour, int64_t calls, int64_t errors, void *ctx) {
  struct keypage *p = ctx;
  hour_gap(p, hour);
  fputs(p->n++ ? ",\n" : "\n", p->f);
  fputs("{\"t\": ", p->f);
  json_time(p->f, hour);
  fprintf(p->f, ", \"calls\": %lld, \"errors\": %lld}", (long long)calls, (long long)errors);
  p->next_hour = hour + 3600000000LL;
  return 0;
}

static int on_endpoint(const char *m, const char *t, int64_t calls, int64_t errors,
                       int64_t last, void *ctx) {
  struct keypage *p = ctx;
  fputs(p->n++ ? ",\n" : "\n", p->f);
  fputs("{\"method\": ", p->f);
  json_opt(p->f, m);
  fputs(", \"template\": ", p->f);
  json_opt(p->f, t);
  fprintf(p->f, ", \"calls\": %lld, \"errors\": %lld, \"last_seen\": ", (long long)calls,
          (long long)errors);
  json_time(p->f, last);
  fputc('}', p->f);
  return 0;
}

static int on_client(const struct kw_addr *a, int64_t calls, int64_t last, void *ctx) {
  struct keypage *p = ctx;
  char addr[64];
  fputs(p->n++ ? ",\n" : "\n", p->f);
  fputs("{\"address\": ", p->f);
  json_opt(p->f, a->family ? kw_addr_format(a, addr, sizeof(addr)) : NULL);
  fprintf(p->f, ", \"calls\": %lld, \"last_seen\": ", (long long)calls);
  json_time(p->f, last);
  fputc('}', p->f);
  return 0;
}

static int on_key_alert(const struct kw_alert_row *r, void *ctx) {
  struct keypage *p = ctx;
  fputs(p->n++ ? ",\n" : "\n", p->f);
  kw_alert_json(p->f, r);
  return 0;
}

static int on_key_rev(const struct kw_revocation *r, void *ctx) {
  struct keypage *p = ctx;
  fputs(p->n++ ? ",\n" : "\n", p->f);
  kw_revocation_json(p->f, r);
  return 0;
}

static int first_review(int64_t id, int64_t created, int64_t since, int64_t until,
                        int64_t keys, int64_t findings, void *ctx) {
  (void)created, (void)since, (void)until, (void)keys, (void)findings;
  *(int64_t *)ctx = id;
  return 1;
}

/* The key's row of the latest stored review, or null.  The review (megabytes for
 * thousands of keys) is parsed once per review id and kept, indexed by fingerprint, so a
 * key page costs a lookup, not a parse. */
static void review_row(struct kw_api *a, struct kw_store *st, const struct keypage *p,
                       FILE *f) {
  int64_t id = 0, at;
  char *doc = NULL, *row = NULL;
  if (kw_store_reviews(st, first_review, &id) != 0 || id == 0) {
    fputs("null", f);
    return;
  }
  pthread_mutex_lock(&a->rmu);
  if (id != a->review_id) {
    json_t *root = NULL, *k;
    size_t i;
    kw_dict_destroy(a->review_ix);
    json_decref(a->review);
    a->review_ix = NULL, a->review = NULL, a->review_id = 0;
    if (kw_store_review_load(st, id, 0, &doc, &at) == 0 &&
        (root = json_loads(doc, 0, NULL)) != NULL &&
        kw_dict_create(json_array_size(json_object_get(root, "keys")) + 16, &a->review_ix) == 0) {
      json_array_foreach(json_object_get(root, "keys"), i, k) {
        const char *fp = json_string_value(json_object_get(k, "fingerprint"));
        if (fp && kw_dict_put(a->review_ix, fp, strlen(fp), (int64_t)i) != 0)
          break;
      }
      a->review = root, a->review_id = id;
      root = NULL;
    }
    json_decref(root);
    free(doc);
  }
  int64_t at_ix;
  if (a->review && kw_dict_get(a->review_ix, p->hex, strlen(p->hex), &at_ix))
    row = json_dumps(json_array_get(json_object_get(a->review, "keys"), (size_t)at_ix),
                     JSON_COMPACT | JSON_ENSURE_ASCII);
  pthread_mutex_unlock(&a->rmu);
  fputs(row ? row : "null", f);
  free(row);
}

static int key_page(struct job *j, struct kw_store *st, FILE *f) {
  struct keypage p = {.f = f};
  int r = kw_store_key_find(st, j->key, on_found, &p);
  int64_t now = kw_time_now();
  if (r == KW_ENOTFOUND) {
    snprintf(j->err, sizeof(j->err), "no key %s was seen", j->key);
    return 404;
  }
  if (r == KW_EINVAL) {
    snprintf(j->err, sizeof(j->err), "'%s' names several keys: give more of the prefix", j->key);
    return 400;
  }
  if (r != 0)
    return 500;
  fputs("{\"key\": ", f);
  json_key(f, &p.key);
  fputs(",\n\"hours\": [", f);
  p.end_hour = (now / 3600000000LL + 1) * 3600000000LL;
  p.next_hour = p.end_hour - j->hours * 3600000000LL;
  if (kw_store_key_hours(st, p.key.id, p.next_hour, on_hour, &p) != 0)
    return 500;
  hour_gap(&p, p.end_hour);
  fputs("],\n\"endpoints\": [", f);
  p.n = 0;
  if (kw_store_key_endpoints(st, p.key.id, 50, on_endpoint, &p) != 0)
    return 500;
  fputs("],\n\"clients\": [", f);
  p.n = 0;
  if (kw_store_key_clients(st, p.key.id, 50, on_client, &p) != 0)
    return 500;
  fputs("],\n\"alerts\": [", f);
  p.n = 0;
  struct kw_alerts_query aq = {.min_severity = -1, .key = p.hex, .limit = 50};
  if (kw_store_alerts(st, &aq, on_key_alert, &p) != 0)
    return 500;
  fputs("],\n\"revocations\": [", f);
  p.n = 0;
  struct kw_revocations_query rq = {.key = p.hex, .limit = 50};
  if (kw_store_revocations(st, &rq, on_key_rev, &p) != 0)
    return 500;
  fputs("],\n\"review\": ", f);
  review_row(j->api, st, &p, f);
  fputs("}\n", f);
  return 200;
}

/* ---- calls, revocations, reviews, status, metrics --------------------------------------- */

/* A page of calls: the store yields them oldest first; each is rendered on arrival and
 * the page written newest first. */
struct calls_page {
  char **docs;
  int64_t *ts, *id;
  size_t n, cap;
};

static int on_call_row(const struct kw_call_row *c, void *ctx) {
  struct calls_page *p = ctx;
  char *doc = NULL;
  size_t len = 0;
  FILE *m;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    char **nd = realloc(p->docs, cap * sizeof(*nd));
    int64_t *nt, *ni;
    if (nd == NULL)
      return KW_ENOMEM;
    p->docs = nd;
    if ((nt = realloc(p->ts, cap * sizeof(*nt))) == NULL)
      return KW_ENOMEM;
    p->ts = nt;
    if ((ni = realloc(p->id, cap * sizeof(*ni))) == NULL)
      return KW_ENOMEM;
    p->id = ni;
    p->cap = cap;
  }
  if ((m = open_memstream(&doc, &len)) == NULL)
    return KW_ENOMEM;
  json_call(m, c);
  fclose(m);
  p->docs[p->n] = doc;
  p->ts[p->n] = c->ts_us;
  p->id[p->n] = c->id;
  p->n++;
  return 0;
}

static void on_calls_key(const struct kw_key_info *k, void *ctx) { *(int64_t *)ctx = k->id; }

static int calls_list(struct job *j, struct kw_store *st, FILE *f) {
  struct kw_calls_query q = {.limit = j->limit + 1, .before_us = j->cur_a,
                             .before_id = j->cur_b};
  struct calls_page p = {0};
  int64_t now = kw_time_now();
  int r;
  if (j->key[0]) { /* one key: its index gives the page in order */
    r = kw_store_key_find(st, j->key, on_calls_key, &q.key_id);
    if (r == KW_ENOTFOUND || r == KW_EINVAL) {
      snprintf(j->err, sizeof(j->err), r == KW_ENOTFOUND ? "no key %s was seen"
                                                         : "'%s' names several keys",
               j->key);
      return r == KW_ENOTFOUND ? 404 : 400;
    }
    if (r != 0)
      return 500;
  }
  if (j->since[0] && kw_time_parse_user(j->since, now, &q.since_us) != 0) {
    snprintf(j->err, sizeof(j->err), "since: '%s' is not a time", j->since);
    return 400;
  }
  if (j->until[0] && kw_time_parse_user(j->until, now, &q.until_us) != 0) {
    snprintf(j->err, sizeof(j->err), "until: '%s' is not a time", j->until);
    return 400;
  }
  r = kw_store_calls(st, &q, on_call_row, &p);
  /* The store gives the newest limit+1 oldest first: the page is them, newest first. */
  size_t shown = p.n > (size_t)j->limit ? (size_t)j->limit : p.n;
  fputs("{\"items\": [", f);
  for (size_t i = 0; r == 0 && i < shown; i++) {
    fputs(i ? ",\n" : "\n", f);
    fputs(p.docs[p.n - 1 - i], f);
  }
  fputs("],\n\"next_cursor\": ", f);
  if (r == 0 && p.n > (size_t)j->limit) {
    size_t last = p.n - shown; /* index of the oldest shown */
    fprintf(f, "\"%lld:%lld\"}\n", (long long)p.ts[last], (long long)p.id[last]);
  } else {
    fputs("null}\n", f);
  }
  for (size_t i = 0; i < p.n; i++)
    free(p.docs[i]);
  free(p.docs);
  free(p.ts);
  free(p.id);
  return r == 0 ? 200 : 500;
}

static int on_rev_item(const struct kw_revocation *r, void *ctx) {
  struct list *l = ctx;
  if (l->last_b-- > 0) /* offset paging: revocations are few */
    return 0;
  if (l->n == l->limit) {
    l->n++;
    return 1;
  }
  fputs(l->n++ ? ",\n" : "\n", l->f);
  kw_revocation_json(l->f, r);
  return 0;
}

static int revocations_list(struct job *j, struct kw_store *st, FILE *f) {
  struct kw_revocations_query q = {.state = j->state[0] ? j->state : NULL,
                                   .key = j->key[0] ? j->key : NULL,
                                   .limit = j->cur_a + j->limit + 1};
  struct list l = {.f = f, .limit = j->limit, .last_b = j->cur_a};
  fputs("{\"items\": [", f);
  if (kw_store_revocations(st, &q, on_rev_item, &l) != 0)
    return 500;
  fputs("],\n\"next_cursor\": ", f);
  if (l.n > l.limit)
    fprintf(f, "\"%lld\"}\n", (long long)(j->cur_a + j->limit));
  else
    fputs("null}\n", f);
  return 200;
}

static int review_doc(struct job *j, struct kw_store *st, FILE *f) {
  char *doc = NULL;
  int64_t at;
  int r = kw_store_review_load(st, j->id, 0, &doc, &at);
  if (r == KW_ENOTFOUND) {
    if (j->id)
      snprintf(j->err, sizeof(j->err), "no review %lld", (long long)j->id);
    else
      snprintf(j->err, sizeof(j->err), "no review was made yet (keywatch review)");
    return 404;
  }
  if (r != 0)
    return 500;
  fputs(doc, f);
  free(doc);
  return 200;
}

static int on_review_item(int64_t id, int64_t created, int64_t since, int64_t until,
                          int64_t keys, int64_t findings, void *ctx) {
  struct list *l = ctx;
  fputs(l->n++ ? ",\n" : "\n", l->f);
  fprintf(l->f, "{\"id\": %lld, \"created\": ", (long long)id);
  json_time(l->f, created);
  fputs(", \"since\": ", l->f);
  json_time(l->f, since);
  fputs(", \"until\": ", l->f);
  json_time(l->f, until);
  fprintf(l->f, ", \"keys\": %lld, \"findings\": %lld}", (long long)keys, (long long)findings);
  return 0;
}

static int reviews_list(struct job *j, struct kw_store *st, FILE *f) {
  struct list l = {.f = f};
  (void)j;
  fputs("{\"items\": [", f);
  if (kw_store_reviews(st, on_review_item, &l) != 0)
    return 500;
  fputs("]}\n", f);
  return 200;
}

static int on_status_row(const struct kw_status_row *s, void *ctx) {
  struct list *l = ctx;
  fputs(l->n++ ? ",\n" : "\n", l->f);
  fputs("{\"name\": ", l->f);
  json_opt(l->f, s->name);
  fputs(", \"kind\": ", l->f);
  json_opt(l->f, s->kind);
  fputs(", \"state\": ", l->f);
  json_opt(l->f, s->state);
  fprintf(l->f, ", \"lines\": %lld, \"calls\": %lld, \"malformed\": %lld, \"backlog\": %lld,"
                " \"rate\": %.1f, \"lag_p50_ms\": ",
          (long long)s->lines, (long long)s->calls, (long long)s->malformed,
          (long long)s->backlog, s->rate);
  if (s->lag_p50_us >= 0)
    fprintf(l->f, "%.1f", (double)s->lag_p50_us / 1000.0);
  else
    fputs("null", l->f);
  fputs(", \"lag_p99_ms\": ", l->f);
  if (s->lag_p99_us >= 0)
    fprintf(l->f, "%.1f", (double)s->lag_p99_us / 1000.0);
  else
    fputs("null", l->f);
  fprintf(l->f, ", \"drops\": %lld, \"gaps\": %lld, \"updated\": ", (long long)s->drops,
          (long long)s->gaps);
  json_time(l->f, s->updated_us);
  fputs(", \"detail\": ", l->f);
  json_opt(l->f, s->detail);
  fputc('}', l->f);
  return 0;
}

static int on_limit_row(const char *name, int64_t hits, int64_t last_us, void *ctx) {
  struct list *l = ctx;
  fputs(l->n++ ? ", {\"limit\": " : "{\"limit\": ", l->f);
  json_opt(l->f, name);
  fprintf(l->f, ", \"hits\": %lld, \"last_hit\": ", (long long)hits);
  json_time(l->f, last_us);
  fputc('}', l->f);
  return 0;
}

static int status_doc(struct job *j, struct kw_store *st, FILE *f) {
  struct kw_daemon_row d;
  struct list l = {.f = f};
  (void)j;
  if (kw_store_daemon(st, &d) != 0)
    return 500;
  int64_t now = kw_time_now();
  fprintf(f, "{\"version\": \"%s\", \"daemon\": {\"pid\": %lld, \"running\": %s, \"started\": ",
          KW_VERSION, (long long)d.pid,
          d.pid > 0 && now - d.heartbeat_us < 10LL * 1000000 ? "true" : "false");
  json_time(f, d.started_us);
  fputs(", \"heartbeat\": ", f);
  json_time(f, d.heartbeat_us);
  fputs("},\n\"sources\": [", f);
  if (kw_store_status(st, on_status_row, &l) != 0)
    return 500;
  fprintf(f, "],\n\"outbox_backlog\": %lld,\n\"limits\": [",
          (long long)kw_store_outbox_backlog(st));
  l.n = 0;
  if (kw_store_limit_hits(st, on_limit_row, &l) != 0)
    return 500;
  fputs("]}\n", f);
  return 200;
}

static int metrics_doc(struct job *j, struct kw_store *st, FILE *f) {
  j->ctype = "text/plain; version=0.0.4; charset=utf-8";
  return kw_metrics_write(st, j->api->db_path, f) == 0 ? 200 : 500;
}

/* ---- routes ----------------------------------------------------------------------------- */

/* GET, or HEAD (the server drops the body). */
static bool is_get(const struct kw_http_request *rq) {
  return strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0;
}

static bool parse_id(const char *s, int64_t *id) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (end == s || v <= 0)
    return false;
  *id = v;
  return *end == '\0' || *end == '/';
}

static void get_alerts(struct kw_api *a, struct kw_http_request *rq, const char *rest) {
  struct job *j;
  char sev[16] = "";
  if (authorise(a, rq, ROLE_VIEWER) == NULL)
    return;
  if (rest[0] != '\0') {
    if ((j = new_job(a, rq, alert_one)) == NULL)
      return;
    if (!parse_id(rest, &j->id) || strchr(rest, '/')) {
      free(j);
      respond_error(rq, 404, "no such alert");
      return;
    }
    run_job(rq, j);
    return;
  }
  if ((j = new_job(a, rq, alerts_list)) == NULL)
    return;
  if (!paging(rq, j) || !copy_param(rq, "state", j->state, sizeof(j->state)) ||
      !copy_param(rq, "rule", j->rule, sizeof(j->rule)) ||
      !copy_param(rq, "key", j->key, sizeof(j->key)) ||
      !copy_param(rq, "severity", sev, sizeof(sev))) {
    free(j);
    return;
  }
  if (sev[0] && (j->severity = kw_severity_parse(sev)) < 0) {
    free(j);
    respond_error(rq, 400, "severity: '%s' is not info, low, medium, high or critical", sev);
    return;
  }
  if (j->state[0] && strcmp(j->state, "open") && strcmp(j->state, "acknowledged") &&
      strcmp(j->state, "resolved")) {
    respond_error(rq, 400, "state: '%s' is not open, acknowledged or resolved", j->state);
    free(j);
    return;
  }
  run_job(rq, j);
}

/* Commits a write: at once with our own writer, else by the daemon (asked to). */
static int commit_write(struct kw_api *a) {
  if (a->own_writer)
    return kw_store_commit(a->writer);
  if (a->on_write)
    a->on_write(a->arg);
  return 0;
}

static void answer_alert(struct kw_api *a, struct kw_http_request *rq, int64_t id) {
  struct kw_alerts_query q = {.min_severity = -1, .id = id, .limit = 1};
  char *body = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&body, &len);
  struct list l = {.f = f};
  if (f == NULL) {
    respond_error(rq, 500, "out of memory");
    return;
  }
  kw_store_alerts(a->writer, &q, on_one_alert, &l);
  fputs(l.n ? "}\n" : "null\n", f);
  fclose(f);
  kw_httpd_respond(rq, 200, "application/json", body, len, NULL);
  free(body);
}

static void post_alert(struct kw_api *a, struct kw_http_request *rq, const char *rest) {
  const char *who = authorise(a, rq, ROLE_RESPONDER);
  json_t *body = NULL;
  const char *note = NULL, *state = NULL;
  int64_t id = 0;
  int r;
  if (who == NULL || !same_origin_json(rq))
    return;
  if (rq->body_len > 0 && (body = json_loadb(rq->body, rq->body_len, 0, NULL)) == NULL) {
    respond_error(rq, 400, "the body is not JSON");
    return;
  }
  if (body && json_object_get(body, "note") && !json_is_string(json_object_get(body, "note"))) {
    json_decref(body);
    respond_error(rq, 400, "note: must be a string");
    return;
  }
  note = body ? json_string_value(json_object_get(body, "note")) : NULL;
  if (strcmp(rest, "ack") == 0) { /* bulk */
    json_t *ids = body ? json_object_get(body, "ids") : NULL, *v;
    size_t i, n = 0;
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 1000) {
      json_decref(body);
      respond_error(rq, 400, "ids: give an array of 1 to 1000 alert ids");
      return;
    }
    json_array_foreach(ids, i, v) {
      if (json_is_integer(v) &&
          kw_store_alert_set_state(a->writer, json_integer_value(v), "acknowledged", who,
                                   note) == 0)
        n++;
    }
    json_decref(body);
    if (commit_write(a) != 0) {
      respond_error(rq, 500, "database error: %s", kw_store_errmsg(a->writer));
      return;
    }
    char out[64];
    snprintf(out, sizeof(out), "{\"updated\": %zu}\n", n);
    respond_json(rq, 200, out);
    return;
  }
  const char *slash = strchr(rest, '/');
  if (!parse_id(rest, &id) || slash == NULL) {
    json_decref(body);
    respond_error(rq, 404, "POST /api/v1/alerts/ID/ack|resolve|reopen or /api/v1/alerts/ack");
    return;
  }
  if (strcmp(slash + 1, "ack") == 0)
    state = "acknowledged";
  else if (strcmp(slash + 1, "resolve") == 0)
    state = "resolved";
  else if (strcmp(slash + 1, "reopen") == 0)
    state = "open";
  if (state == NULL) {
    json_decref(body);
    respond_error(rq, 404, "an alert can be ack, resolve or reopen");
    return;
  }
  r = kw_store_alert_set_state(a->writer, id, state, who, note);
  json_decref(body);
  if (r == KW_ENOTFOUND) {
    respond_error(rq, 404, "no alert %lld", (long long)id);
    return;
  }
  if (r != 0 || commit_write(a) != 0) {
    respond_error(rq, 500, "database error: %s", kw_store_errmsg(a->writer));
    return;
  }
  answer_alert(a, rq, id);
}

static void h_alerts(struct kw_http_request *rq, void *arg) {
  const char *rest = rq->path + strlen("/api/v1/alerts");
  if (*rest == '/')
    rest++;
  if (!is_get(rq) && strcmp(rq->method, "POST") != 0)
    respond_error(rq, 405, "%s is not allowed here", rq->method);
  else if (strcmp(rq->method, "POST") == 0)
    post_alert(arg, rq, rest);
  else
    get_alerts(arg, rq, rest);
}

struct revoke_key {
  uint8_t fp[KW_FP_LEN];
  bool found;
};

static void on_revoke_found(const struct kw_key_info *k, void *ctx) {
  struct revoke_key *rk = ctx;
  memcpy(rk->fp, k->fp, KW_FP_LEN);
  rk->found = true;
}

static void post_revoke(struct kw_api *a, struct kw_http_request *rq, const char *key) {
  const char *who = authorise(a, rq, ROLE_RESPONDER);
  struct revoke_key rk = {0};
  json_t *body = NULL;
  char by[128], out[64];
  int64_t id;
  int r;
  if (who == NULL || !same_origin_json(rq))
    return;
  if (rq->body_len > 0 && (body = json_loadb(rq->body, rq->body_len, 0, NULL)) == NULL) {
    respond_error(rq, 400, "the body is not JSON");
    return;
  }
  r = kw_store_key_find(a->writer, key, on_revoke_found, &rk);
  if (r != 0) {
    json_decref(body);
    if (r == KW_ENOTFOUND)
      respond_error(rq, 404, "no key %s was seen", key);
    else if (r == KW_EINVAL)
      respond_error(rq, 400, "'%s' names several keys: give more of the prefix", key);
    else
      respond_error(rq, 500, "database error: %s", kw_store_errmsg(a->writer));
    return;
  }
  snprintf(by, sizeof(by), "api:%s", who);
  const char *reason = body ? json_string_value(json_object_get(body, "reason")) : NULL;
  struct kw_revocation_new n = {.fp = rk.fp, .origin = "manual", .decided_by = by,
                                .reason = reason ? reason : "revoked from the dashboard",
                                .severity = 4,
                                .dry_run = body && json_is_true(json_object_get(body, "dry_run"))};
  r = kw_store_revocation_add(a->writer, &n, &id);
  json_decref(body);
  if (r != 0 || commit_write(a) != 0) {
    respond_error(rq, 500, "database error: %s", kw_store_errmsg(a->writer));
    return;
  }
  snprintf(out, sizeof(out), "{\"revocation_id\": %lld}\n", (long long)id);
  respond_json(rq, 202, out);
}

static void h_keys(struct kw_http_request *rq, void *arg) {
  struct kw_api *a = arg;
  const char *rest = rq->path + strlen("/api/v1/keys");
  struct job *j;
  char hours[16];
  if (*rest == '/')
    rest++;
  if (!is_get(rq) && strcmp(rq->method, "POST") != 0) {
    respond_error(rq, 405, "%s is not allowed here", rq->method);
    return;
  }
  if (strcmp(rq->method, "POST") == 0) {
    const char *slash = strchr(rest, '/');
    char key[80];
    if (slash == NULL || strcmp(slash, "/revoke") != 0 || slash == rest ||
        (size_t)(slash - rest) >= sizeof(key)) {
      respond_error(rq, 404, "POST /api/v1/keys/KEY/revoke");
      return;
    }
    snprintf(key, sizeof(key), "%.*s", (int)(slash - rest), rest);
    post_revoke(a, rq, key);
    return;
  }
  if (authorise(a, rq, ROLE_VIEWER) == NULL)
    return;
  if (rest[0] == '\0') {
    if ((j = new_job(a, rq, keys_list)) == NULL)
      return;
    if (!paging(rq, j)) {
      free(j);
      return;
    }
    run_job(rq, j);
    return;
  }
  if (strchr(rest, '/') || strlen(rest) >= 80) {
    respond_error(rq, 404, "GET /api/v1/keys/PREFIX-OR-FINGERPRINT");
    return;
  }
  if ((j = new_job(a, rq, key_page)) == NULL)
    return;
  snprintf(j->key, sizeof(j->key), "%s", rest);
  j->hours = 48;
  if (kw_http_query(rq, "hours", hours, sizeof(hours)) != NULL) {
    char *end;
    long long h = strtoll(hours, &end, 10);
    if (*end || h < 1 || h > 720) {
      free(j);
      respond_error(rq, 400, "hours: a count from 1 to 720");
      return;
    }
    j->hours = h;
  }
  run_job(rq, j);
}

static void simple_get(struct kw_http_request *rq, struct kw_api *a, job_fn fn, bool auth) {
  struct job *j;
  if (!is_get(rq)) {
    respond_error(rq, 405, "%s is not allowed here", rq->method);
    return;
  }
  if (auth && authorise(a, rq, ROLE_VIEWER) == NULL)
    return;
  if ((j = new_job(a, rq, fn)) == NULL)
    return;
  if (fn == calls_list || fn == revocations_list) {
    if (!paging(rq, j) || !copy_param(rq, "key", j->key, sizeof(j->key)) ||
        !copy_param(rq, "since", j->since, sizeof(j->since)) ||
        !copy_param(rq, "until", j->until, sizeof(j->until)) ||
        !copy_param(rq, "state", j->state, sizeof(j->state))) {
      free(j);
      return;
    }
  }
  if (fn == review_doc) {
    char id[24];
    if (kw_http_query(rq, "id", id, sizeof(id)) && !parse_id(id, &j->id)) {
      free(j);
      respond_error(rq, 400, "id: a review id");
      return;
    }
  }
  run_job(rq, j);
}

static void h_calls(struct kw_http_request *rq, void *arg) { simple_get(rq, arg, calls_list, true); }
static void h_revocations(struct kw_http_request *rq, void *arg) {
  simple_get(rq, arg, revocations_list, true);
}
static void h_review(struct kw_http_request *rq, void *arg) { simple_get(rq, arg, review_doc, true); }
static void h_reviews(struct kw_http_request *rq, void *arg) {
  simple_get(rq, arg, reviews_list, true);
}
static void h_status(struct kw_http_request *rq, void *arg) { simple_get(rq, arg, status_doc, true); }
static void h_metrics(struct kw_http_request *rq, void *arg) {
  simple_get(rq, arg, metrics_doc, false);
}

static void h_ui(struct kw_http_request *rq, void *arg) {
  const struct kw_ui_file *f;
  const char *path = rq->path;
  (void)arg;
  if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
    respond_error(rq, 405, "%s is not allowed here", rq->method);
    return;
  }
  if (strcmp(path, "/") == 0 || strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0)
    path = "/index.html";
  else if (strncmp(path, "/ui/", 4) == 0)
    path += 3;
  if ((f = kw_ui_find(path)) == NULL) {
    respond_error(rq, 404, "no such page");
    return;
  }
  kw_httpd_respond(rq, 200, f->content_type, (const char *)f->data, f->len, NULL);
}

static void h_api_other(struct kw_http_request *rq, void *arg) {
  (void)arg;
  respond_error(rq, 404, "no such API endpoint (see docs/api.md)");
}

/* ---- lifecycle -------------------------------------------------------------------------- */

int kw_api_create(const struct kw_api_opts *o, struct kw_api **out, char *err, size_t errlen) {
  struct kw_api *a = calloc(1, sizeof(*a));
  const struct kw_http_cfg *hc = &o->cfg->http;
  int r = 0;

  *out = NULL;
  if (a == NULL)
    return KW_ENOMEM;
  snprintf(a->db_path, sizeof(a->db_path), "%s", o->db_path);
  a->log = o->log;
  a->on_write = o->on_write;
  a->arg = o->arg;
  pthread_mutex_init(&a->mu, NULL);
  pthread_mutex_init(&a->rmu, NULL);
  if ((a->tokens = calloc(hc->tokens_count + 1, sizeof(*a->tokens))) == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  for (unsigned i = 0; i < hc->tokens_count; i++) {
    const struct kw_http_token_cfg *t = &hc->tokens[i];
    char field[48], *secret = NULL;
    snprintf(field, sizeof(field), "http.tokens.%u.secret", i);
    if ((r = kw_secret_read(t->secret, field, &secret, err, errlen)) != 0) {
      r = r == KW_ENOMEM ? r : KW_ECONFIG;
      goto fail;
    }
    if (strlen(secret) < 16) {
      kw_secret_free(secret);
      snprintf(err, errlen, "%s: a token needs at least 16 characters", field);
      r = KW_ECONFIG;
      goto fail;
    }
    snprintf(a->tokens[i].name, sizeof(a->tokens[i].name), "%s", t->name);
    a->tokens[i].role = strcmp(t->role, "responder") == 0 ? ROLE_RESPONDER : ROLE_VIEWER;
    digest(secret, strlen(secret), a->tokens[i].digest);
    kw_secret_free(secret);
    a->ntokens++;
  }
  if (o->writer) {
    a->writer = o->writer;
  } else {
    if ((r = kw_store_open(o->db_path, 0, &a->writer, err, errlen)) != 0)
      goto fail;
    a->own_writer = true;
  }
  static const struct {
    const char *method, *prefix;
    kw_http_handler fn;
  } table[] = {
      {"*", "/api/v1/alerts", h_alerts},        {"*", "/api/v1/alerts/", h_alerts},
      {"*", "/api/v1/keys", h_keys},            {"*", "/api/v1/keys/", h_keys},
      {"*", "/api/v1/calls", h_calls},          {"*", "/api/v1/revocations", h_revocations},
      {"*", "/api/v1/review", h_review},        {"*", "/api/v1/reviews", h_reviews},
      {"*", "/api/v1/status", h_status},        {"*", "/metrics", h_metrics},
      {"*", "/api/", h_api_other},              {"*", "/", h_ui},
  };
  if (hc->allowed_hosts_count > 0 &&
      (a->hosts = calloc(hc->allowed_hosts_count, sizeof(*a->hosts))) == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  for (; a->nhosts < hc->allowed_hosts_count; a->nhosts++) {
    if ((a->hosts[a->nhosts] = strdup(hc->allowed_hosts[a->nhosts])) == NULL) {
      r = KW_ENOMEM;
      goto fail;
    }
  }
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    a->guarded[i] = (struct guarded){.a = a, .fn = table[i].fn};
    a->routes[a->nroutes++] =
        (struct kw_http_route){.method = table[i].method, .prefix = table[i].prefix,
                               .fn = h_guarded, .arg = &a->guarded[i]};
  }
  *out = a;
  return 0;
fail:
  kw_api_destroy(a);
  return r;
}

const struct kw_http_route *kw_api_routes(struct kw_api *a, size_t *n) {
  *n = a->nroutes;
  return a->routes;
}

void kw_api_destroy(struct kw_api *a) {
  if (a == NULL)
    return;
  for (size_t i = 0; i < a->npool; i++)
    kw_store_close(a->pool[i]);
  if (a->own_writer)
    kw_store_close(a->writer);
  if (a->tokens)
    OPENSSL_cleanse(a->tokens, sizeof(*a->tokens) * (a->ntokens + 1));
  free(a->tokens);
  for (size_t i = 0; i < a->nhosts; i++)
    free(a->hosts[i]);
  free(a->hosts);
  pthread_mutex_destroy(&a->mu);
  pthread_mutex_destroy(&a->rmu);
  kw_dict_destroy(a->review_ix);
  json_decref(a->review);
  free(a);
}
