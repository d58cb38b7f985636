/* httpflow.c — see httpflow.h.
 *
 * Per flow (struct hflow), per TCP direction (struct hdir), one http_parser:
 *
 *   handshake seen: SYNC          no SYN seen: SCAN
 *
 *   SCAN --(a line that starts a message: "GET ", "POST ", ..., "HTTP/1.")--> SYNC
 *   SYNC --(loss not inside a body of known length, or a parse error)------> SCAN
 *   SYNC --(loss inside a Content-Length / until-close body: zeros fed)----> SYNC
 *   SYNC --(a request asked for Upgrade, or CONNECT)-----------------------> WAIT
 *   WAIT --(101, or 2xx to CONNECT)--> flow done (IGNORE: the rest is another protocol)
 *   WAIT --(any other final response)--> SYNC, or SCAN if bytes came meanwhile
 *   SYNC --(FIN: a body delimited by the close completes)------------------> OFF
 *   a flow whose first message fails to parse (handshake seen), or SCAN past
 *   max_sync_scan bytes with nothing found: not HTTP --> counted once, IGNORE
 *
 * Transactions: q[] is a ring of the flow's requests in arrival order.  A request is
 * pushed when its first byte is parsed; a response pairs with q[head + nresp] (the oldest
 * request without a final response) when its first byte is parsed; q[head] is emitted as
 * soon as both its request and its final response are complete.  So records leave in
 * request order, and an early response (413 during an upload) waits for its request.
 * The parser is paused at every message end, so that bytes per message are exact and
 * records are emitted outside libhttp-parser's callbacks.
 *
 * Invariants: nresp <= count <= max_pipeline; cur_req, when set, is the newest entry of q;
 * cur_resp, when set, is q[head + nresp]; hf->pending == entries in all queues.
 * Ownership: the kw_httpflow owns every hflow (the reassembler holds it as the flow's
 * `user` and hands it back in on_close, where it is freed) and every txn.
 * Memory: struct txn holds the URI and kept headers (inline buffer, grown up to
 * max_request_bytes, all grown buffers together up to GROWN_MAX; past that, fields are
 * truncated and counted); freed txns and flows are cached (up to CACHE_MAX) for reuse, so
 * the steady state allocates nothing.
 * Thread: the reassembler's.
 */
#include "httpflow.h"
#include "../sidecar/err.h"

#include <arpa/inet.h>
#include <assert.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 64  /* longest header name that can be wanted */
#define MAX_WANT 32      /* header names kept */
#define TXN_INLINE 1024  /* URI + headers bytes before the buffer grows */
#define PIPE_MAX 256     /* hard cap on max_pipeline */
#define CACHE_MAX 1024   /* free txns / flows kept for reuse */
#define GROWN_MAX (32u << 20) /* bytes of request buffers grown past TXN_INLINE, all txns */

enum { R_UNKNOWN, R_REQ, R_RESP };            /* role of a direction */
enum { D_SYNC, D_SCAN, D_WAIT, D_OFF };       /* state of a direction */
enum { K_OTHER, K_HOST, K_UA, K_XFF };        /* what a kept header is to the record */

struct want {
  char name[NAME_MAX_LEN];
  uint8_t len, kind;
};

struct txn {
  struct txn *next_free;
  int64_t req_ts, resp_ts;
  uint64_t req_wire, resp_wire, resp_body;
  uint32_t uri_off, uri_len;
  uint16_t status;
  uint8_t method, major, minor;
  bool have_method, head_done, req_done, resp_head, resp_done;
  uint8_t nh;
  struct {
    uint8_t want;
    uint32_t off, len;
  } h[KW_REC_MAX_HDRS];
  char *buf;
  uint32_t used, cap;
  char inl[TXN_INLINE];
};

struct hflow;

struct hdir {
  http_parser p;
  struct hflow *fl;
  uint8_t role, state;
  bool strict;      /* this parser started at the flow's first byte: failure = not HTTP */
  bool in_msg, in_body;
  bool line_start;  /* SCAN: the next byte starts a line */
  bool desynced;    /* SCAN entered after a loss or an error */
  bool in_value, name_over, trunc;
  int cur_hdr;      /* index in cur_req->h of the value being read, or -1 */
  uint8_t name_len;
  char name[NAME_MAX_LEN];
  uint64_t msg_bytes;
  uint64_t wait_dropped;
};

struct hflow {
  struct kw_httpflow *hf;
  struct hflow *next_free;
  struct kw_tcp_endpoint ep[2];
  int client_dir; /* TCP direction of the client, -1 while unknown */
  uint8_t caddr_len;
  char caddr[INET6_ADDRSTRLEN]; /* the client's address as text, once client_dir is known */
  bool confirmed, done, counted;
  uint64_t scanned, bytes;
  int64_t now;
  struct hdir d[2]; /* by TCP direction */
  struct txn *cur_req, *cur_resp;
  uint16_t head, count, nresp;
  struct txn *q[]; /* max_pipeline entries */
};

struct kw_httpflow {
  struct kw_httpflow_opts o;
  kw_httpflow_rec_cb cb;
  void *ctx;
  bool any_port;
  uint64_t ports[65536 / 64];
  struct want want[MAX_WANT];
  size_t nwant;
  size_t pending;
  size_t grown; /* bytes of grown txn buffers, <= GROWN_MAX */
  struct txn *free_txns;
  struct hflow *free_flows;
  size_t nfree_txns, nfree_flows;
  struct kw_rec rec;
  char proto[16];
  struct kw_httpflow_stats st;
};

static const char *const default_headers[] = {
    "x-api-key", "apikey", "api-key", "x-api-token", "authorization",
    "host",      "user-agent", "x-forwarded-for"};

static const uint8_t zeros[65536];

/* ------------------------------------------------------------------------ setup */

static int add_want(struct kw_httpflow *hf, const char *name) {
  size_t n = strlen(name);
  struct want *w;

  if (n == 0 || n >= NAME_MAX_LEN)
    return KW_EINVAL;
  for (size_t i = 0; i < hf->nwant; i++)
    if (hf->want[i].len == n && strncasecmp(hf->want[i].name, name, n) == 0)
      return 0;
  if (hf->nwant == MAX_WANT)
    return KW_EINVAL;
  w = &hf->want[hf->nwant++];
  for (size_t i = 0; i < n; i++)
    w->name[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
  w->len = (uint8_t)n;
  w->kind = strcmp(w->name, "host") == 0         ? K_HOST
            : strcmp(w->name, "user-agent") == 0 ? K_UA
            : strcmp(w->name, "x-forwarded-for") == 0 ? K_XFF
                                                   : K_OTHER;
  return 0;
}

int kw_httpflow_create(const struct kw_httpflow_opts *opts, kw_httpflow_rec_cb cb, void *ctx,
                       struct kw_httpflow **out) {
  struct kw_httpflow *hf = calloc(1, sizeof(*hf));
  int rc = KW_ENOMEM;

  *out = NULL;
  if (hf == NULL)
    goto out;
  if (opts != NULL)
    hf->o = *opts;
  hf->cb = cb;
  hf->ctx = ctx;
  if (hf->o.max_pending == 0)
    hf->o.max_pending = 16384;
  if (hf->o.max_pipeline == 0)
    hf->o.max_pipeline = 32;
  if (hf->o.max_pipeline > PIPE_MAX)
    hf->o.max_pipeline = PIPE_MAX;
  if (hf->o.max_request_bytes == 0)
    hf->o.max_request_bytes = 16384;
  if (hf->o.max_request_bytes < TXN_INLINE)
    hf->o.max_request_bytes = TXN_INLINE;
  if (hf->o.max_sync_scan == 0)
    hf->o.max_sync_scan = 256 * 1024;
  hf->any_port = hf->o.nports == 0;
  for (size_t i = 0; i < hf->o.nports; i++)
    hf->ports[hf->o.ports[i] / 64] |= 1ull << (hf->o.ports[i] % 64);
  hf->o.ports = NULL; /* copied */
  rc = KW_EINVAL;
  for (size_t i = 0; i < sizeof(default_headers) / sizeof(*default_headers); i++)
    if (add_want(hf, default_headers[i]) != 0)
      goto out;
  for (size_t i = 0; i < hf->o.nheaders; i++)
    if (hf->o.headers[i] == NULL || add_want(hf, hf->o.headers[i]) != 0)
      goto out;
  hf->o.headers = NULL; /* copied */
  *out = hf;
  hf = NULL;
  rc = 0;
out:
  kw_httpflow_destroy(hf);
  return rc;
}

void kw_httpflow_destroy(struct kw_httpflow *hf) {
  if (hf == NULL)
    return;
  while (hf->free_txns != NULL) {
    struct txn *t = hf->free_txns;
    hf->free_txns = t->next_free;
    free(t);
  }
  while (hf->free_flows != NULL) {
    struct hflow *fl = hf->free_flows;
    hf->free_flows = fl->next_free;
    free(fl);
  }
  free(hf);
}

static inline bool port_set(const struct kw_httpflow *hf, uint16_t p) {
  return hf->any_port || (hf->ports[p / 64] >> (p % 64)) & 1;
}

int kw_httpflow_port(const struct kw_httpflow *hf, uint16_t sport, uint16_t dport) {
  return port_set(hf, sport) || port_set(hf, dport);
}

const struct kw_httpflow_stats *kw_httpflow_stats(const struct kw_httpflow *hf) {
  return &hf->st;
}

/* ------------------------------------------------------------------ transactions */

static struct txn *txn_new(struct kw_httpflow *hf) {
  struct txn *t = hf->free_txns;

  if (hf->pending >= hf->o.max_pending)
    return NULL;
  if (t != NULL) {
    hf->free_txns = t->next_free;
    hf->nfree_txns--;
  } else if ((t = malloc(sizeof(*t))) == NULL) {
    return NULL;
  }
  memset(t, 0, offsetof(struct txn, inl));
  t->buf = t->inl;
  t->cap = TXN_INLINE;
  hf->pending++;
  return t;
}

static void txn_free(struct kw_httpflow *hf, struct txn *t) {
  hf->pending--;
  if (t->buf != t->inl) {
    hf->grown -= t->cap;
    free(t->buf);
  }
  if (hf->nfree_txns >= CACHE_MAX) {
    free(t);
    return;
  }
  t->next_free = hf->free_txns;
  hf->free_txns = t;
  hf->nfree_txns++;
}

/* Appends to t's buffer, growing it up to max_request_bytes; returns bytes kept. */
static size_t txn_append(struct kw_httpflow *hf, struct txn *t, const char *p, size_t n,
                         bool *trunc) {
  size_t room;

  if (t->used + n > t->cap && t->cap < hf->o.max_request_bytes) {
    size_t cap = (size_t)t->cap * 2;
    char *b;
    if (cap < t->used + n)
      cap = t->used + n;
    if (cap > hf->o.max_request_bytes)
      cap = hf->o.max_request_bytes;
    b = hf->grown + cap - (t->buf != t->inl ? t->cap : 0) <= GROWN_MAX ? malloc(cap) : NULL;
    if (b != NULL) {
      memcpy(b, t->buf, t->used);
      if (t->buf != t->inl) {
        hf->grown -= t->cap;
        free(t->buf);
      }
      hf->grown += cap;
      t->buf = b;
      t->cap = (uint32_t)cap;
    }
  }
  room = t->cap - t->used;
  if (n > room) {
    if (!*trunc)
      hf->st.truncated_fields++;
    *trunc = true;
    n = room;
  }
  memcpy(t->buf + t->used, p, n);
  t->used += (uint32_t)n;
  return n;
}

static const char *proto_str(struct kw_httpflow *hf, const struct txn *t) {
  if (t->major == 1 && t->minor == 1)
    return "HTTP/1.1";
  if (t->major == 1 && t->minor == 0)
    return "HTTP/1.0";
  snprintf(hf->proto, sizeof(hf->proto), "HTTP/%u.%u", t->major, t->minor);
  return hf->proto;
}

/* First element of an X-Forwarded-For value, if it is an address. */
static bool xff_first(struct kw_str v, struct kw_str *out) {
  const char *p = v.p, *end = v.p + v.n, *c;
  struct kw_addr a;

  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  c = memchr(p, ',', (size_t)(end - p));
  if (c != NULL)
    end = c;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  if (end == p || kw_addr_parse(p, (size_t)(end - p), &a) != 0)
    return false;
  *out = kw_str_make(p, (size_t)(end - p));
  return true;
}

static void emit(struct hflow *fl, struct txn *t) {
  struct kw_httpflow *hf = fl->hf;
  struct kw_rec *rec = &hf->rec;
  struct kw_str xff = KW_STR_NULL;
  size_t wire;

  if (!t->head_done && !t->resp_head) {
    hf->st.incomplete++;
    return;
  }
  kw_rec_clear(rec);
  rec->ts_us = t->req_ts;
  if (t->have_method)
    rec->method = kw_str_make(http_method_str(t->method), strlen(http_method_str(t->method)));
  if (t->uri_len > 0)
    rec->uri = kw_str_make(t->buf + t->uri_off, t->uri_len);
  if (t->head_done)
    rec->proto = kw_str_make(proto_str(hf, t), strlen(proto_str(hf, t)));
  for (uint8_t i = 0; i < t->nh; i++) {
    const struct want *w = &hf->want[t->h[i].want];
    struct kw_str v = kw_str_make(t->buf + t->h[i].off, t->h[i].len);
    kw_rec_add_hdr(rec, kw_str_make(w->name, w->len), v);
    if (w->kind == K_HOST && rec->host.p == NULL)
      rec->host = v;
    else if (w->kind == K_UA && rec->user_agent.p == NULL)
      rec->user_agent = v;
    else if (w->kind == K_XFF && xff.p == NULL && hf->o.use_xff)
      xff_first(v, &xff);
  }
  if (xff.p != NULL)
    rec->addr = xff;
  else if (fl->caddr_len > 0)
    rec->addr = kw_str_make(fl->caddr, fl->caddr_len);
  rec->status = t->resp_head ? t->status : 0;
  rec->req_bytes = t->head_done ? (int64_t)t->req_wire : -1;
  rec->resp_bytes = t->resp_head ? (int64_t)t->resp_body : -1;
  rec->latency_us = t->resp_head && t->resp_ts >= t->req_ts ? t->resp_ts - t->req_ts : -1;
  wire = (size_t)(t->req_wire + t->resp_wire);
  hf->st.records++;
  if (rec->status == 0)
    hf->st.unanswered++;
  hf->cb(rec, wire, hf->ctx);
}

/* Removes q[head]; emits it first if asked. */
static void pop_head(struct hflow *fl, bool emit_it) {
  struct txn *t = fl->q[fl->head];

  if (emit_it)
    emit(fl, t);
  if (fl->cur_req == t)
    fl->cur_req = NULL;
  if (fl->cur_resp == t)
    fl->cur_resp = NULL;
  fl->q[fl->head] = NULL;
  fl->head = (uint16_t)((fl->head + 1) % fl->hf->o.max_pipeline);
  fl->count--;
  if (fl->nresp > 0)
    fl->nresp--;
  txn_free(fl->hf, t);
}

static void try_emit(struct hflow *fl) {
  assert(fl->nresp <= fl->count && fl->count <= fl->hf->o.max_pipeline);
  while (fl->count > 0 && fl->q[fl->head]->req_done && fl->q[fl->head]->resp_done)
    pop_head(fl, true);
}

/* Every request still queued is emitted as it stands (end of flow). */
static void finalize_all(struct hflow *fl) {
  while (fl->count > 0)
    pop_head(fl, true);
}

/* A loss in the responses: the answers of the requests waiting for one are unknowable. */
static void responses_lost(struct hflow *fl) {
  for (uint16_t i = fl->nresp; i < fl->count; i++) {
    struct txn *t = fl->q[(fl->head + i) % fl->hf->o.max_pipeline];
    if (t == fl->cur_req)
      break; /* still being sent: its response may come after the loss */
    t->resp_done = true;
    fl->nresp++;
  }
  fl->cur_resp = NULL;
  try_emit(fl);
}

/* ------------------------------------------------------------- parser callbacks */

static int on_req_begin(http_parser *p) {
  struct hdir *d = p->data;
  struct hflow *fl = d->fl;
  struct kw_httpflow *hf = fl->hf;
  struct txn *t;

  d->in_msg = true;
  d->in_value = d->name_over = d->trunc = false;
  d->name_len = 0;
  d->cur_hdr = -1;
  if (fl->count == hf->o.max_pipeline) { /* too many unanswered: the oldest goes now */
    hf->st.pending_drops++;
    pop_head(fl, true);
  }
  t = txn_new(hf);
  fl->cur_req = t;
  if (t == NULL) {
    hf->st.pending_drops++;
    return 0;
  }
  t->req_ts = fl->now;
  fl->q[(fl->head + fl->count) % fl->hf->o.max_pipeline] = t;
  fl->count++;
  return 0;
}

static int on_req_url(http_parser *p, const char *at, size_t n) {
  struct hdir *d = p->data;
  struct txn *t = d->fl->cur_req;

  if (t == NULL)
    return 0;
  if (!t->have_method) {
    t->have_method = true;
    t->method = (uint8_t)p->method;
    t->uri_off = t->used;
  }
  t->uri_len += (uint32_t)txn_append(d->fl->hf, t, at, n, &d->trunc);
  return 0;
}

static int on_req_field(http_parser *p, const char *at, size_t n) {
  struct hdir *d = p->data;

  if (d->in_value) {
    d->in_value = false;
    d->name_len = 0;
    d->name_over = false;
  }
  for (size_t i = 0; i < n; i++) {
    char c = at[i];
    if (d->name_len == NAME_MAX_LEN) {
      d->name_over = true;
      break;
    }
    d->name[d->name_len++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
  }
  return 0;
}

static int on_req_value(http_parser *p, const char *at, size_t n) {
  struct hdir *d = p->data;
  struct hflow *fl = d->fl;
  struct kw_httpflow *hf = fl->hf;
  struct txn *t = fl->cur_req;

  if (!d->in_value) {
    d->in_value = true;
    d->cur_hdr = -1;
    d->trunc = false;
    if (t != NULL && !d->name_over) {
      for (size_t i = 0; i < hf->nwant; i++) {
        if (hf->want[i].len == d->name_len &&
            memcmp(hf->want[i].name, d->name, d->name_len) == 0) {
          if (t->nh == KW_REC_MAX_HDRS) { /* a wanted header past the bound: counted */
            hf->st.dropped_headers++;
            break;
          }
          d->cur_hdr = t->nh;
          t->h[t->nh].want = (uint8_t)i;
          t->h[t->nh].off = t->used;
          t->h[t->nh].len = 0;
          t->nh++;
          break;
        }
      }
    }
  }
  if (d->cur_hdr >= 0 && t != NULL)
    t->h[d->cur_hdr].len += (uint32_t)txn_append(hf, t, at, n, &d->trunc);
  return 0;
}

static int on_req_headers(http_parser *p) {
  struct hdir *d = p->data;
  struct hflow *fl = d->fl;
  struct txn *t = fl->cur_req;

  d->in_value = false;
  d->in_body = true;
  fl->hf->st.requests++;
  if (!fl->confirmed) {
    fl->confirmed = true;
    fl->hf->st.flows_http++;
  }
  if (t != NULL) {
    t->head_done = true;
    t->have_method = true;
    t->method = (uint8_t)p->method;
    t->major = (uint8_t)p->http_major;
    t->minor = (uint8_t)p->http_minor;
  }
  return 0;
}

static int on_msg_complete(http_parser *p) {
  struct hdir *d = p->data;
  d->in_body = false;
  http_parser_pause(p, 1); /* handled in feed(), outside the parser */
  return 0;
}

static int on_resp_begin(http_parser *p) {
  struct hdir *d = p->data;
  struct hflow *fl = d->fl;

  d->in_msg = true;
  fl->cur_resp = fl->nresp < fl->count ? fl->q[(fl->head + fl->nresp) % fl->hf->o.max_pipeline] : NULL;
  if (fl->cur_resp != NULL)
    fl->cur_resp->resp_ts = fl->now;
  return 0;
}

static int on_resp_headers(http_parser *p) {
  struct hdir *d = p->data;
  struct hflow *fl = d->fl;
  struct txn *t = fl->cur_resp;
  unsigned st = p->status_code;
  bool final = st >= 200 || st == 101;

  if (!fl->confirmed) {
    fl->confirmed = true;
    fl->hf->st.flows_http++;
  }
  if (t != NULL && final) {
    t->status = (uint16_t)st;
    t->resp_head = true;
    if (t->method == HTTP_CONNECT && st / 100 == 2)
      return 2; /* a tunnel: no body, and the rest is not HTTP */
  }
  if (st / 100 == 1 || st == 204 || st == 304 || (t != NULL && t->method == HTTP_HEAD))
    return 1; /* no body, whatever Content-Length says */
  d->in_body = true;
  return 0;
}

static int on_resp_body(http_parser *p, const char *at, size_t n) {
  struct hdir *d = p->data;
  (void)at;
  if (d->fl->cur_resp != NULL)
    d->fl->cur_resp->resp_body += n;
  return 0;
}

static const http_parser_settings req_settings = {
    .on_message_begin = on_req_begin,
    .on_url = on_req_url,
    .on_header_field = on_req_field,
    .on_header_value = on_req_value,
    .on_headers_complete = on_req_headers,
    .on_message_complete = on_msg_complete,
};

static const http_parser_settings resp_settings = {
    .on_message_begin = on_resp_begin,
    .on_headers_complete = on_resp_headers,
    .on_body = on_resp_body,
    .on_message_complete = on_msg_complete,
};

/* ------------------------------------------------------------------- directions */

static void start_parser(struct hflow *fl, int dir) {
  struct hdir *d = &fl->d[dir];

  http_parser_init(&d->p, d->role == R_REQ ? HTTP_REQUEST : HTTP_RESPONSE);
  /* Lenient where servers are: a request the parser would reject (Content-Length and
   * Transfer-Encoding together, odd bytes in a header value) is still a call someone
   * made, often one the server answers with 400; it must reach the audit trail. */
  d->p.allow_chunked_length = 1;
  d->p.lenient_http_headers = 1;
  d->p.data = d;
  d->state = D_SYNC;
  d->in_msg = d->in_body = false;
  d->msg_bytes = 0;
}

static void set_client(struct hflow *fl, int client_dir) {
  const struct kw_tcp_endpoint *ep = &fl->ep[client_dir];

  fl->client_dir = client_dir;
  fl->d[client_dir].role = R_REQ;
  fl->d[!client_dir].role = R_RESP;
  fl->caddr_len = 0;
  if (inet_ntop(ep->family == 4 ? AF_INET : AF_INET6, ep->addr, fl->caddr,
                sizeof(fl->caddr)) != NULL)
    fl->caddr_len = (uint8_t)strlen(fl->caddr);
}

/* The message being parsed in dir is cut short (loss or error): keep what it gave. */
static void cut_message(struct hflow *fl, int dir) {
  struct hdir *d = &fl->d[dir];

  if (d->role == R_REQ && d->in_msg && fl->cur_req != NULL) {
    fl->cur_req->req_wire = d->msg_bytes;
    fl->cur_req->req_done = true;
    fl->cur_req = NULL;
  } else if (d->role == R_RESP && d->in_msg && fl->cur_resp != NULL) {
    fl->cur_resp->resp_wire += d->msg_bytes;
    fl->cur_resp->resp_done = true;
    fl->cur_resp = NULL;
    fl->nresp++;
  }
  d->in_msg = d->in_body = false;
  d->msg_bytes = 0;
  try_emit(fl);
}

/* Drops dir into SCAN.  After a loss the next byte captured likely starts a segment, and
 * segments often start messages: it may be a message start; after an error it may not. */
static void desync(struct hflow *fl, int dir, bool after_gap) {
  struct hdir *d = &fl->d[dir];

  cut_message(fl, dir);
  d->state = D_SCAN;
  d->line_start = after_gap;
  d->desynced = true;
  d->strict = false;
}

/* The flow is not HTTP: drop what it queued, count it once, stop. */
static int not_http(struct hflow *fl) {
  while (fl->count > 0)
    pop_head(fl, false);
  fl->cur_req = fl->cur_resp = NULL;
  fl->done = true;
  if (!fl->counted) {
    fl->counted = true;
    fl->hf->st.flows_non_http++;
  }
  return KW_TCPREASM_IGNORE;
}

/* A message of dir ended (the parser paused). */
static int msg_done(struct hflow *fl, int dir) {
  struct kw_httpflow *hf = fl->hf;
  struct hdir *d = &fl->d[dir];
  struct txn *t;
  unsigned st;
  bool upgraded;

  d->in_msg = d->in_body = false;
  if (d->role == R_REQ) {
    t = fl->cur_req;
    if (t != NULL) {
      t->req_wire = d->msg_bytes;
      t->req_done = true;
      fl->cur_req = NULL;
    }
    d->msg_bytes = 0;
    if (d->p.upgrade) { /* Upgrade or CONNECT: wait for the verdict */
      d->state = D_WAIT;
      d->wait_dropped = 0;
    }
    try_emit(fl);
    return KW_TCPREASM_CONTINUE;
  }
  st = d->p.status_code;
  t = fl->cur_resp;
  if (t != NULL)
    t->resp_wire += d->msg_bytes;
  d->msg_bytes = 0;
  if (st / 100 == 1 && st != 101) { /* interim: the final response is still to come */
    hf->st.interim++;
    return KW_TCPREASM_CONTINUE;
  }
  hf->st.responses++;
  if (t != NULL) {
    t->resp_done = true;
    fl->nresp++;
  } else {
    hf->st.orphan_responses++;
  }
  fl->cur_resp = NULL;
  upgraded = st == 101 || d->p.upgrade ||
             (t != NULL && t->method == HTTP_CONNECT && st / 100 == 2);
  if (!upgraded && fl->client_dir >= 0) {
    struct hdir *rq = &fl->d[fl->client_dir];
    if (rq->state == D_WAIT) { /* upgrade refused: HTTP goes on */
      if (rq->wait_dropped > 0) {
        rq->state = D_SCAN;
        rq->line_start = false;
        rq->desynced = true;
      } else {
        start_parser(fl, fl->client_dir);
      }
    }
  }
  try_emit(fl);
  if (upgraded) {
    hf->st.flows_upgraded++;
    fl->done = true;
    return KW_TCPREASM_IGNORE;
  }
  return KW_TCPREASM_CONTINUE;
}

static bool is_req_start(const char *p, size_t n) {
  static const struct {
    const char *s;
    size_t n;
  } m[] = {{"GET ", 4},     {"POST ", 5},  {"PUT ", 4},     {"HEAD ", 5},    {"DELETE ", 7},
           {"PATCH ", 6},   {"OPTIONS ", 8}, {"CONNECT ", 8}, {"TRACE ", 6}};
  if (n < 4 || p[0] < 'C' || p[0] > 'T')
    return false;
  for (size_t i = 0; i < sizeof(m) / sizeof(*m); i++)
    if (n >= m[i].n && memcmp(p, m[i].s, m[i].n) == 0)
      return true;
  return false;
}

static bool is_resp_start(const char *p, size_t n) {
  return n >= 7 && memcmp(p, "HTTP/1.", 7) == 0;
}

/* Finds the first line start in p that starts a message of role (R_UNKNOWN: either).
 * Returns its offset (n if none) and the role found. */
static size_t scan(const char *p, size_t n, bool line_start, uint8_t role, uint8_t *found) {
  size_t pos = 0;
  const char *nl;

  if (!line_start) {
    nl = memchr(p, '\n', n);
    if (nl == NULL)
      return n;
    pos = (size_t)(nl - p) + 1;
  }
  while (pos < n) {
    if (role != R_RESP && is_req_start(p + pos, n - pos)) {
      *found = R_REQ;
      return pos;
    }
    if (role != R_REQ && is_resp_start(p + pos, n - pos)) {
      *found = R_RESP;
      return pos;
    }
    nl = memchr(p + pos, '\n', n - pos);
    if (nl == NULL)
      break;
    pos = (size_t)(nl - p) + 1;
  }
  return n;
}

static int feed(struct hflow *fl, int dir, const char *p, size_t n) {
  struct kw_httpflow *hf = fl->hf;
  struct hdir *d = &fl->d[dir];

  while (n > 0 && !fl->done) {
    size_t done;
    enum http_errno e;

    if (d->state == D_OFF)
      return KW_TCPREASM_CONTINUE;
    if (d->state == D_WAIT) {
      d->wait_dropped += n;
      return KW_TCPREASM_CONTINUE;
    }
    if (d->state == D_SCAN) {
      uint8_t found = R_UNKNOWN;
      size_t k = scan(p, n, d->line_start, d->role, &found);
      hf->st.resync_bytes += k;
      if (!fl->confirmed) {
        fl->scanned += k;
        if (fl->scanned > hf->o.max_sync_scan)
          return not_http(fl);
      }
      if (k == n) {
        d->line_start = p[n - 1] == '\n';
        return KW_TCPREASM_CONTINUE;
      }
      if (d->role == R_UNKNOWN)
        set_client(fl, found == R_REQ ? dir : !dir);
      if (d->desynced)
        hf->st.resyncs++;
      d->desynced = false;
      start_parser(fl, dir);
      p += k;
      n -= k;
      continue;
    }
    done = http_parser_execute(&d->p, d->role == R_REQ ? &req_settings : &resp_settings, p, n);
    if (done > n)
      done = n;
    d->msg_bytes += done;
    e = HTTP_PARSER_ERRNO(&d->p);
    if (e == HPE_PAUSED) {
      http_parser_pause(&d->p, 0);
      d->strict = false;
      p += done;
      n -= done;
      if (msg_done(fl, dir) == KW_TCPREASM_IGNORE)
        return KW_TCPREASM_IGNORE;
      continue;
    }
    if (e != HPE_OK || done == 0) {
      size_t skip = done < n ? done + 1 : n;
      if (d->strict && !fl->confirmed)
        return not_http(fl);
      if (fl->confirmed)
        hf->st.parse_errors++;
      desync(fl, dir, false);
      d->line_start = p[skip - 1] == '\n';
      p += skip;
      n -= skip;
      continue;
    }
    p += done;
    n -= done;
  }
  return fl->done ? KW_TCPREASM_IGNORE : KW_TCPREASM_CONTINUE;
}

/* End of stream in dir: a body delimited by the close completes. */
static void eof(struct hflow *fl, int dir) {
  struct hdir *d = &fl->d[dir];

  if (d->state == D_SYNC && !fl->done) {
    http_parser_execute(&d->p, d->role == R_REQ ? &req_settings : &resp_settings, NULL, 0);
    if (HTTP_PARSER_ERRNO(&d->p) == HPE_PAUSED) {
      http_parser_pause(&d->p, 0);
      msg_done(fl, dir);
    } else if (d->in_msg) {
      cut_message(fl, dir);
    }
  }
  if (d->state != D_WAIT)
    d->state = D_OFF;
}

/* ------------------------------------------------------------ reassembler glue */

static struct hflow *hflow_new(struct kw_httpflow *hf) {
  struct hflow *fl = hf->free_flows;

  if (fl != NULL) {
    hf->free_flows = fl->next_free;
    hf->nfree_flows--;
  } else if ((fl = malloc(sizeof(*fl) + hf->o.max_pipeline * sizeof(fl->q[0]))) == NULL) {
    return NULL;
  }
  memset(fl, 0, offsetof(struct hflow, q));
  fl->hf = hf;
  fl->client_dir = -1;
  return fl;
}

static void hflow_free(struct kw_httpflow *hf, struct hflow *fl) {
  while (fl->count > 0)
    pop_head(fl, false);
  if (hf->nfree_flows >= CACHE_MAX) {
    free(fl);
    return;
  }
  fl->next_free = hf->free_flows;
  hf->free_flows = fl;
  hf->nfree_flows++;
}

static int on_open(void *ctx, const struct kw_tcpflow_info *info, void **user) {
  struct kw_httpflow *hf = ctx;
  struct hflow *fl = hflow_new(hf);
  int c = -1;

  *user = fl;
  if (fl == NULL)
    return KW_TCPREASM_IGNORE;
  fl->ep[0] = info->ep[0];
  fl->ep[1] = info->ep[1];
  fl->now = info->start_us;
  if (info->syn_seen)
    c = 0;
  else if (port_set(hf, info->ep[1].port) && !port_set(hf, info->ep[0].port))
    c = 0;
  else if (port_set(hf, info->ep[0].port) && !port_set(hf, info->ep[1].port))
    c = 1;
  for (int i = 0; i < 2; i++) {
    fl->d[i].fl = fl;
    fl->d[i].role = R_UNKNOWN;
    fl->d[i].state = D_SCAN;
    fl->d[i].line_start = true;
  }
  if (c >= 0)
    set_client(fl, c);
  if (info->syn_seen) { /* both streams start at a message: parse from the first byte */
    for (int i = 0; i < 2; i++) {
      start_parser(fl, i);
      fl->d[i].strict = true;
    }
  }
  return KW_TCPREASM_CONTINUE;
}

static int on_data(void *ctx, void *user, int dir, const uint8_t *p, size_t n, int64_t ts) {
  struct hflow *fl = user;
  (void)ctx;

  if (fl->done)
    return KW_TCPREASM_IGNORE;
  fl->now = ts;
  fl->bytes += n;
  return feed(fl, dir, (const char *)p, n);
}

static int on_gap(void *ctx, void *user, int dir, uint64_t n, int64_t ts) {
  struct hflow *fl = user;
  struct kw_httpflow *hf = ctx;
  struct hdir *d = &fl->d[dir];

  if (fl->done)
    return KW_TCPREASM_IGNORE;
  fl->now = ts;
  if (d->state == D_SYNC && d->in_body && !(d->p.flags & F_CHUNKED) &&
      (d->p.content_length == UINT64_MAX || d->p.content_length >= n)) {
    hf->st.gaps_bridged++;
    while (n > 0 && d->state == D_SYNC && !fl->done) {
      size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
      if (feed(fl, dir, (const char *)zeros, k) == KW_TCPREASM_IGNORE)
        return KW_TCPREASM_IGNORE;
      n -= k;
    }
    return fl->done ? KW_TCPREASM_IGNORE : KW_TCPREASM_CONTINUE;
  }
  switch (d->state) {
  case D_SYNC:
    hf->st.gaps_desync++;
    if (d->role == R_RESP) {
      cut_message(fl, dir);
      responses_lost(fl);
    }
    desync(fl, dir, true);
    break;
  case D_SCAN:
    if (d->role == R_RESP)
      responses_lost(fl);
    d->line_start = true;
    break;
  case D_WAIT:
    d->wait_dropped += n;
    break;
  default:
    break;
  }
  return KW_TCPREASM_CONTINUE;
}

static int on_fin(void *ctx, void *user, int dir, int64_t ts) {
  struct hflow *fl = user;
  (void)ctx;

  if (fl->done)
    return KW_TCPREASM_IGNORE;
  fl->now = ts;
  eof(fl, dir);
  return fl->done ? KW_TCPREASM_IGNORE : KW_TCPREASM_CONTINUE;
}

static void on_close(void *ctx, void *user, enum kw_tcpreasm_close why, int64_t ts) {
  struct kw_httpflow *hf = ctx;
  struct hflow *fl = user;

  if (fl == NULL)
    return;
  if (why != KW_TCPREASM_CLOSE_DESTROY) {
    if (ts > fl->now)
      fl->now = ts;
    if (!fl->done) {
      eof(fl, 0);
      eof(fl, 1);
    }
    finalize_all(fl);
    if (!fl->confirmed && !fl->counted && fl->bytes > 0) {
      fl->counted = true;
      hf->st.flows_non_http++;
    }
  }
  hflow_free(hf, fl);
}

const struct kw_tcpreasm_ops kw_httpflow_ops = {
    .on_open = on_open,
    .on_data = on_data,
    .on_gap = on_gap,
    .on_fin = on_fin,
    .on_close = on_close,
};
