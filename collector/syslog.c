/* syslog.c — syslog receiver over UDP and TCP (see syslog.h).
 *
 * UDP uses a plain non-blocking socket watched with uv_poll rather than uv_udp: recvmsg()
 * is needed to read the SO_RXQ_OVFL control message, the kernel's count of datagrams it
 * dropped for this socket.  TCP uses uv_tcp with one framer per connection.
 *
 *   TCP connection: open ──(frames)──► open ──(EOF / error / close)──► closed (freed)
 *
 * Invariants: every accepted connection is in s->conns until its close callback; the
 * listener and the UDP poll handle are closed before the close callback of s runs.
 */
#include "syslog.h"
#include "../sidecar/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sock_diag.h>

#define UDP_BATCH 256 /* datagrams read per wake-up before yielding to the loop */

struct conn {
  uv_tcp_t tcp;
  struct kw_syslog *s;
  struct kw_syslog_framer fr;
  struct conn *next;
};

struct kw_syslog {
  uv_loop_t *loop;
  bool udp;
  struct sockaddr_storage addr;
  char listen[128];
  size_t max_msg;
  unsigned max_conns, nconns;
  int rcvbuf;
  kw_syslog_msg_cb cb;
  void *ctx;
  int fd;              /* UDP socket */
  uv_poll_t poll;      /* UDP */
  uv_tcp_t server;     /* TCP */
  bool has_handle, closing;
  struct conn *conns;
  int pending_closes;
  kw_syslog_close_cb close_cb;
  struct kw_syslog_stats stats;
  char *dgram;         /* UDP receive buffer, max_msg + 1 */
};

/* ---- message header -------------------------------------------------------------- */

/* Skips one space-terminated token at *i; returns false if none. */
static bool skip_token(const char *m, size_t n, size_t *i) {
  size_t start = *i;
  while (*i < n && m[*i] != ' ')
    (*i)++;
  if (*i == start || *i >= n)
    return false;
  (*i)++; /* the space */
  return true;
}

int kw_syslog_body(const char *m, size_t n, const char **body, size_t *blen) {
  size_t i = 1;
  unsigned pri = 0;

  *body = m;
  *blen = n;
  if (n == 0 || m[0] != '<')
    return 0;
  while (i < n && i <= 4 && m[i] >= '0' && m[i] <= '9')
    pri = pri * 10 + (unsigned)(m[i++] - '0');
  if (i == 1 || i >= n || m[i] != '>' || pri > 191)
    return KW_EPARSE;
  i++;
  *body = m + i;
  *blen = n - i;
  if (i + 1 < n && m[i] >= '1' && m[i] <= '9' && m[i + 1] == ' ') {
    /* RFC 5424: VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG] */
    for (int t = 0; t < 6; t++)
      if (!skip_token(m, n, &i))
        return KW_EPARSE;
    if (i < n && m[i] == '-') {
      i++;
    } else {
      while (i < n && m[i] == '[') {
        while (i < n && m[i] != ']')
          i += m[i] == '\\' ? 2 : 1;
        if (i >= n)
          return KW_EPARSE;
        i++;
      }
    }
    if (i < n && m[i] == ' ')
      i++;
    if (n - i >= 3 && memcmp(m + i, "\xef\xbb\xbf", 3) == 0)
      i += 3;
  } else {
    /* RFC 3164: "Mmm dd hh:mm:ss HOSTNAME TAG: MSG" (HOSTNAME may be missing). */
    if (n - i < 16 || m[i + 3] != ' ' || m[i + 6] != ' ' || m[i + 9] != ':' ||
        m[i + 12] != ':' || m[i + 15] != ' ')
      return KW_EPARSE;
    i += 16;
    size_t tok = i;
    if (!skip_token(m, n, &i))
      return KW_EPARSE;
    if (m[i - 2] != ':') { /* that was the hostname; the tag follows */
      tok = i;
      if (!skip_token(m, n, &i))
        return KW_EPARSE;
    }
    /* The tag ends in ':' ("nginx:", "nginx[12]:"). */
    if (m[i - 2] != ':' || i - tok > 64)
      return KW_EPARSE;
  }
  *body = m + i;
  *blen = n - i;
  return 0;
}

/* ---- TCP framing ------------------------------------------------------------------- */

int kw_syslog_framer_init(struct kw_syslog_framer *fr, size_t max) {
  memset(fr, 0, sizeof(*fr));
  fr->max = max;
  fr->cap = 4096;
  fr->buf = malloc(fr->cap);
  return fr->buf ? 0 : KW_ENOMEM;
}

void kw_syslog_framer_free(struct kw_syslog_framer *fr) {
  free(fr->buf);
  fr->buf = NULL;
}

static int append(struct kw_syslog_framer *fr, const char *d, size_t n) {
  if (fr->len + n > fr->cap) {
    size_t cap = fr->cap;
    while (cap < fr->len + n)
      cap *= 2;
    char *b = realloc(fr->buf, cap);
    if (b == NULL)
      return KW_ENOMEM;
    fr->buf = b;
    fr->cap = cap;
  }
  memcpy(fr->buf + fr->len, d, n);
  fr->len += n;
  return 0;
}

int kw_syslog_framer_feed(struct kw_syslog_framer *fr, const char *d, size_t n,
                          void (*cb)(const char *frame, size_t len, void *ctx), void *ctx) {
  int dropped = 0;

  while (n > 0) {
    if (fr->skipping > 0) { /* rest of an oversized octet-counted frame */
      size_t k = n < fr->skipping ? n : fr->skipping;
      fr->skipping -= k;
      d += k;
      n -= k;
      continue;
    }
    if (fr->skip_to_lf) {
      const char *lf = memchr(d, '\n', n);
      if (lf == NULL)
        return dropped;
      fr->skip_to_lf = 0;
      n -= (size_t)(lf + 1 - d);
      d = lf + 1;
      continue;
    }
    if (fr->want > 0) { /* body of an octet-counted frame */
      size_t k = n < fr->want - fr->len ? n : fr->want - fr->len;
      if (append(fr, d, k) != 0)
        return KW_ENOMEM;
      d += k;
      n -= k;
      if (fr->len == fr->want) {
        cb(fr->buf, fr->len, ctx);
        fr->len = 0;
        fr->want = 0;
      }
      continue;
    }
    if (fr->len == 0 && (*d == '\n' || *d == '\r' || *d == '\0')) { /* stray separators */
      d++;
      n--;
      continue;
    }
    /* Frame start: octet counting if it opens with digits and a space. */
    /* An octet count starts with 1-9, also when its first digits came in an earlier
     * read (a frame that began with '0' is a newline frame, however it is cut). */
    bool head = fr->len == 0 ? (*d >= '1' && *d <= '9')
                             : fr->len <= 10 && fr->buf[0] >= '1' && fr->buf[0] <= '9';
    for (size_t j = 0; head && j < fr->len; j++)
      head = fr->buf[j] >= '0' && fr->buf[j] <= '9';
    if (head) {
      size_t k = 0;
      while (k < n && fr->len + k < 10 && d[k] >= '0' && d[k] <= '9')
        k++;
      if (k == n)
        return append(fr, d, k) != 0 ? KW_ENOMEM : dropped;
      if (d[k] != ' ')
        goto lf_frame;
      if (append(fr, d, k) != 0)
        return KW_ENOMEM;
      size_t len = 0;
      for (size_t j = 0; j < fr->len; j++)
        len = len * 10 + (size_t)(fr->buf[j] - '0');
      d += k + 1;
      n -= k + 1;
      fr->len = 0;
      if (len > fr->max) {
        fr->skipping = len;
        dropped++;
        continue;
      }
      fr->want = len;
      continue;
    }
  lf_frame: {
    const char *lf = memchr(d, '\n', n);
    size_t k = lf ? (size_t)(lf - d) : n;
    if (fr->len + k > fr->max) {
      fr->len = 0;
      if (lf == NULL)
        fr->skip_to_lf = 1;
      else {
        d = lf + 1;
        n -= k + 1;
      }
      dropped++;
      continue;
    }
    if (append(fr, d, k) != 0)
      return KW_ENOMEM;
    d += k;
    n -= k;
    if (lf != NULL) {
      size_t len = fr->len;
      if (len > 0 && fr->buf[len - 1] == '\r')
        len--;
      cb(fr->buf, len, ctx);
      fr->len = 0;
      d++;
      n--;
    }
  }
  }
  return dropped;
}

/* ---- delivery ---------------------------------------------------------------------- */

static void deliver(const char *frame, size_t len, void *ctx) {
  struct kw_syslog *s = ctx;
  const char *body;
  size_t blen;

  if (s->closing)
    return;
  if (kw_syslog_body(frame, len, &body, &blen) != 0)
    s->stats.malformed++;
  while (blen > 0 && (body[blen - 1] == '\n' || body[blen - 1] == '\r' || body[blen - 1] == '\0'))
    blen--;
  s->stats.messages++;
  s->cb(s, body, blen, s->ctx);
}

/* ---- UDP --------------------------------------------------------------------------- */

static void on_udp(uv_poll_t *h, int status, int events) {
  struct kw_syslog *s = h->data;
  (void)events;
  if (status < 0)
    return;
  for (int k = 0; k < UDP_BATCH && !s->closing; k++) {
    char cbuf[CMSG_SPACE(sizeof(uint32_t))];
    struct iovec iov = {s->dgram, s->max_msg + 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(s->fd, &mh, MSG_DONTWAIT);
    if (n < 0)
      break; /* EAGAIN: drained */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
        uint32_t drops;
        memcpy(&drops, CMSG_DATA(c), sizeof(drops));
        s->stats.drops = drops; /* cumulative for the socket */
      }
    }
    if ((size_t)n > s->max_msg || (mh.msg_flags & MSG_TRUNC)) {
      s->stats.oversized++;
      continue;
    }
    deliver(s->dgram, (size_t)n, s);
  }
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t ml = sizeof(mem);
  if (getsockopt(s->fd, SOL_SOCKET, SO_MEMINFO, mem, &ml) == 0 &&
      ml > SK_MEMINFO_DROPS * sizeof(uint32_t))
    s->stats.drops = mem[SK_MEMINFO_DROPS];
}

/* ---- TCP --------------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct kw_syslog *s = c->s;
  for (struct conn **p = &s->conns; *p; p = &(*p)->next) {
    if (*p == c) {
      *p = c->next;
      break;
    }
  }
  s->nconns--;
  kw_syslog_framer_free(&c->fr);
  free(c);
  if (s->closing && --s->pending_closes == 0 && s->close_cb)
    s->close_cb(s, s->ctx);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static _Thread_local char slab[64 * 1024];
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct conn *c = st->data;
  if (n > 0) {
    int r = kw_syslog_framer_feed(&c->fr, buf->base, (size_t)n, deliver, c->s);
    if (r > 0)
      c->s->stats.oversized += (uint64_t)r;
    if (r < 0 && !uv_is_closing((uv_handle_t *)st))
      uv_close((uv_handle_t *)st, on_conn_closed);
  } else if (n < 0 && !uv_is_closing((uv_handle_t *)st)) {
    uv_close((uv_handle_t *)st, on_conn_closed);
  }
}

static void on_refused_closed(uv_handle_t *h) { free(h); }

static void on_connection(uv_stream_t *server, int status) {
  struct kw_syslog *s = server->data;
  struct conn *c;

  if (status < 0 || s->closing)
    return;
  if (s->nconns >= s->max_conns) {
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t != NULL && uv_tcp_init(s->loop, t) == 0) {
      uv_accept(server, (uv_stream_t *)t);
      uv_close((uv_handle_t *)t, on_refused_closed);
    } else {
      free(t);
    }
    s->stats.refused++;
    return;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  c->s = s;
  if (kw_syslog_framer_init(&c->fr, s->max_msg) != 0 || uv_tcp_init(s->loop, &c->tcp) != 0) {
    kw_syslog_framer_free(&c->fr);
    free(c);
    return;
  }
  c->tcp.data = c;
  c->next = s->conns;
  s->conns = c;
  s->nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  s->stats.connections++;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static int parse_listen(const char *spec, bool *udp, struct sockaddr_storage *ss) {
  char host[96];
  const char *p = spec, *colon;
  long port;
  char *end;

  *udp = true;
  if (strncmp(p, "udp://", 6) == 0)
    p += 6;
  else if (strncmp(p, "tcp://", 6) == 0) {
    p += 6;
    *udp = false;
  }
  if (*p == '[') {
    const char *rb = strchr(p, ']');
    if (rb == NULL || rb[1] != ':' || (size_t)(rb - p - 1) >= sizeof(host))
      return KW_EINVAL;
    snprintf(host, sizeof(host), "%.*s", (int)(rb - p - 1), p + 1);
    colon = rb + 1;
  } else {
    colon = strrchr(p, ':');
    if (colon == NULL || (size_t)(colon - p) >= sizeof(host))
      return KW_EINVAL;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - p), p);
  }
  port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535 || colon[1] == '\0')
    return KW_EINVAL;
  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return KW_EINVAL;
}

int kw_syslog_create(uv_loop_t *loop, const struct kw_syslog_opts *opts, kw_syslog_msg_cb cb,
                     void *ctx, struct kw_syslog **out, char *err, size_t errlen) {
  struct kw_syslog *s;

  *out = NULL;
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return KW_ENOMEM;
  if (opts->listen == NULL || parse_listen(opts->listen, &s->udp, &s->addr) != 0) {
    snprintf(err, errlen,
             "listen: '%s' is not an address (udp://HOST:PORT, tcp://HOST:PORT, [v6]:PORT)",
             opts->listen ? opts->listen : "");
    free(s);
    return KW_EINVAL;
  }
  s->loop = loop;
  s->cb = cb;
  s->ctx = ctx;
  s->fd = -1;
  s->max_msg = opts->max_msg ? opts->max_msg : KW_SYSLOG_MAX_MSG;
  s->max_conns = opts->max_conns ? opts->max_conns : 64;
  s->rcvbuf = opts->rcvbuf;
  snprintf(s->listen, sizeof(s->listen), "%s", opts->listen);
  *out = s;
  return 0;
}

int kw_syslog_start(struct kw_syslog *s, char *err, size_t errlen) {
  int r, one = 1;
  socklen_t alen = s->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);
  if (!s->udp) {
    if ((r = uv_tcp_init(s->loop, &s->server)) != 0)
      goto fail;
    s->server.data = s;
    s->has_handle = true;
    if ((r = uv_tcp_bind(&s->server, (const struct sockaddr *)&s->addr, 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&s->server, 128, on_connection)) != 0)
      goto fail;
    return 0;
  }
  s->dgram = malloc(s->max_msg + 1);
  if (s->dgram == NULL)
    return KW_ENOMEM;
  s->fd = socket(s->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) {
    r = -errno;
    goto fail;
  }
  setsockopt(s->fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
  if (s->rcvbuf > 0)
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &s->rcvbuf, sizeof(s->rcvbuf));
  if (bind(s->fd, (const struct sockaddr *)&s->addr, alen) != 0) {
    r = -errno;
    goto fail;
  }
  if ((r = uv_poll_init_socket(s->loop, &s->poll, s->fd)) != 0)
    goto fail;
  s->poll.data = s;
  s->has_handle = true;
  if ((r = uv_poll_start(&s->poll, UV_READABLE, on_udp)) != 0)
    goto fail;
  return 0;
fail:
  snprintf(err, errlen, "cannot listen on %s: %s", s->listen, uv_strerror(r));
  return r;
}

int kw_syslog_port(const struct kw_syslog *s) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  socklen_t slen = sizeof(ss);
  if (s->udp ? getsockname(s->fd, (struct sockaddr *)&ss, &slen) != 0
             : uv_tcp_getsockname(&s->server, (struct sockaddr *)&ss, &len) != 0)
    return -1;
  return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
}

const struct kw_syslog_stats *kw_syslog_stats(const struct kw_syslog *s) { return &s->stats; }

static void on_main_closed(uv_handle_t *h) {
  struct kw_syslog *s = h->data;
  if (--s->pending_closes == 0 && s->close_cb)
    s->close_cb(s, s->ctx);
}

void kw_syslog_close(struct kw_syslog *s, kw_syslog_close_cb cb) {
  s->closing = true;
  s->close_cb = cb;
  s->pending_closes = 1; /* held until every handle has been asked to close */
  /* Connections already closing are counted too: their callbacks are still to come. */
  for (struct conn *c = s->conns; c != NULL; c = c->next) {
    s->pending_closes++;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
      uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  }
  if (s->has_handle) {
    s->pending_closes++;
    uv_close(s->udp ? (uv_handle_t *)&s->poll : (uv_handle_t *)&s->server, on_main_closed);
  }
  if (--s->pending_closes == 0 && cb)
    cb(s, s->ctx);
}

void kw_syslog_destroy(struct kw_syslog *s) {
  if (s == NULL)
    return;
  if (s->fd >= 0)
    close(s->fd);
  free(s->dgram);
  free(s);
}
