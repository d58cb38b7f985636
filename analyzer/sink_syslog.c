/* sink_syslog.c — the "syslog" sink: RFC 5424 messages over UDP or TCP.
 *
 *   <PRI>1 TIMESTAMP HOSTNAME keywatch PID ALERT - {"id": 7, "rule": …}
 *
 * PRI = facility local0 (16) × 8 + severity.  local0 rather than auth/authpriv: keywatch's
 * alerts are an application's findings, not the host's own authentication events, and
 * local0 lets rsyslog/syslog-ng route them (`local0.* @@siem:6514`) without mixing them
 * into the system's auth log.  Severity from the alert's:
 *   info → 6 informational, low → 5 notice, medium → 4 warning, high → 3 error,
 *   critical → 2 critical   (0 emergency and 1 alert are left to the system itself).
 * TIMESTAMP is the time of sending, RFC 3339 UTC with milliseconds; HOSTNAME is
 * gethostname() with anything outside printable US-ASCII replaced by '-'; MSGID "ALERT";
 * no structured data.  MSG is the alert JSON without a BOM (RFC 5424's MSG-ANY: receivers
 * that see a BOM often print it); it is one line (kw_sink_send flattens it).
 *
 * UDP: one datagram per alert, sent from an unconnected socket; "delivered" means the
 * kernel took it — UDP says nothing more (use TCP when loss matters).  An alert longer
 * than MAX_UDP bytes is refused with KW_ETOOLONG rather than cut (a cut JSON is useless).
 * TCP: octet-counted framing (RFC 6587 §3.4.1: "LEN SP MSG"), one connection kept open
 * and re-established by the next send after any error.  Its states:
 *
 *   none ──send──► connecting ──ok──► up ──EOF / error / timeout──► (closing) none
 *                      └──error / timeout──► (closing) none
 *
 * Messages queued while connecting are written once it is up, or failed with the reason
 * when it is not; the outbox retries.  A write counts as delivered when the kernel took
 * it: a receiver that dies right after can lose what was in flight (RFC 6587 has no
 * acknowledgement); reading the socket notices its EOF promptly so the next alert goes
 * out on a new connection.  A message not written within timeout_ms fails the connection.
 *
 * The address is resolved once, at create (getaddrinfo blocks there, before the loop
 * runs); a changed DNS record needs a restart.
 * Thread: the loop's.
 */
#include "sink.h"

#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/timeutil.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FACILITY_LOCAL0 16
#define MAX_UDP 65000  /* payload bytes a datagram may carry (IPv4 allows 65507) */
#define MAX_QUEUE 4096 /* messages outstanding; send() says -EAGAIN beyond */

static const int sev_map[] = {6, 5, 4, 3, 2}; /* enum kw_severity → RFC 5424 severity */

struct conn;

struct msg {
  struct msg *next, *prev;
  struct syslog_sink *s;
  struct conn *conn; /* the connection it was written to; NULL until written */
  char *buf;
  size_t len;
  uint64_t deadline; /* loop time, ms */
  union {
    uv_write_t w;
    uv_udp_send_t u;
  } req;
  kw_sink_done_cb cb;
  void *arg;
};

struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  struct syslog_sink *s;
  bool up;
  char reason[160]; /* why it was given up (for the writes it cancels) */
  char hole[256];   /* receivers do not talk; whatever they send is read and dropped */
};

struct syslog_sink {
  uv_loop_t *loop;
  bool udp;
  struct sockaddr_storage addr;
  char hostname[256];
  long pid;
  uint64_t timeout_ms;
  uv_udp_t udp_h;
  uv_timer_t timer; /* deadline of the oldest message on the live connection */
  struct conn *conn; /* TCP: the live connection, or NULL */
  struct msg *head, *tail;
  size_t nmsgs;
  unsigned refs; /* handles whose close callback has not run yet */
  bool closing;
  kw_sink_close_cb close_cb;
  void *close_arg;
};

/* ---- messages ------------------------------------------------------------------------- */

static void list_remove(struct syslog_sink *s, struct msg *m) {
  if (m->prev)
    m->prev->next = m->next;
  else
    s->head = m->next;
  if (m->next)
    m->next->prev = m->prev;
  else
    s->tail = m->prev;
  m->next = m->prev = NULL;
  s->nmsgs--;
}

static void list_append(struct syslog_sink *s, struct msg *m) {
  m->prev = s->tail;
  m->next = NULL;
  if (s->tail)
    s->tail->next = m;
  else
    s->head = m;
  s->tail = m;
  s->nmsgs++;
}

static void free_msg(struct msg *m) {
  free(m->buf);
  free(m);
}

static void arm_timer(struct syslog_sink *s);

static void finish(struct msg *m, int status, const char *reason) {
  struct syslog_sink *s = m->s;
  list_remove(s, m);
  m->cb(status, status ? reason : NULL, m->arg);
  free_msg(m);
  if (!s->closing)
    arm_timer(s);
}

/* Builds "<PRI>1 TS HOST keywatch PID ALERT - MSG", framed "LEN SP …" for TCP. */
static char *format_msg(const struct syslog_sink *s, const char *json, size_t len,
                        int severity, size_t *outlen) {
  char head[512], ts[40], *buf;
  int pri = FACILITY_LOCAL0 * 8 +
            (severity >= 0 && severity <= 4 ? sev_map[severity] : sev_map[0]);
  int hl = snprintf(head, sizeof(head), "<%d>1 %s %s keywatch %ld ALERT - ", pri,
                    kw_time_format(kw_time_now(), ts, sizeof(ts)), s->hostname, s->pid);
  size_t body = (size_t)hl + len, o = 0;

  if (hl < 0 || (size_t)hl >= sizeof(head) || (buf = malloc(body + 32)) == NULL)
    return NULL;
  if (!s->udp)
    o = (size_t)snprintf(buf, 32, "%zu ", body);
  memcpy(buf + o, head, (size_t)hl);
  memcpy(buf + o + (size_t)hl, json, len);
  *outlen = o + body;
  return buf;
}

/* ---- TCP connection ------------------------------------------------------------------- */

static void maybe_finalize(struct syslog_sink *s);

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct syslog_sink *s = c->s;
  free(c);
  s->refs--;
  maybe_finalize(s);
}

/* Gives the live connection up: its written messages fail through their write
 * callbacks (cancelled by uv_close), the ones waiting for it fail here. */
static void fail_conn(struct syslog_sink *s, const char *reason, int status) {
  struct conn *c = s->conn;
  struct msg *waiting = NULL, **link = &waiting;

  if (c == NULL)
    return;
  s->conn = NULL;
  snprintf(c->reason, sizeof(c->reason), "%s", reason);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  for (struct msg *m = s->head, *next; m != NULL; m = next) {
    next = m->next;
    if (m->conn == NULL) {
      list_remove(s, m);
      *link = m;
      link = &m->next;
    }
  }
  while (waiting != NULL) {
    struct msg *m = waiting;
    waiting = m->next;
    m->cb(status, reason, m->arg);
    free_msg(m);
  }
  if (!s->closing)
    arm_timer(s);
}

static void on_write(uv_write_t *req, int status) {
  struct msg *m = req->data;
  struct syslog_sink *s = m->s;
  char reason[200];

  if (status == 0) {
    finish(m, 0, NULL);
  } else if (s->closing) {
    finish(m, KW_ECANCELED, "sink closed");
  } else {
    snprintf(reason, sizeof(reason), "%s",
             m->conn && m->conn->reason[0] ? m->conn->reason : uv_strerror(status));
    finish(m, status, reason);
    if (s->conn == m->conn) {
      snprintf(reason, sizeof(reason), "write: %s", uv_strerror(status));
      fail_conn(s, reason, status);
    }
  }
}

static int write_msg(struct conn *c, struct msg *m) {
  uv_buf_t b = uv_buf_init(m->buf, (unsigned)m->len);
  m->req.w.data = m;
  int r = uv_write(&m->req.w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (r == 0)
    m->conn = c;
  return r;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->hole, sizeof(c->hole));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct conn *c = st->data;
  char reason[160];
  (void)buf;
  if (n >= 0 || c->s->conn != c)
    return;
  snprintf(reason, sizeof(reason), "connection closed: %s",
           n == UV_EOF ? "by the receiver" : uv_strerror((int)n));
  fail_conn(c->s, reason, n == UV_EOF ? -ECONNRESET : (int)n);
}

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  struct syslog_sink *s = c->s;
  char reason[160];
  int r;

  if (s->conn != c) /* given up already (timeout, close) */
    return;
  if (status < 0) {
    snprintf(reason, sizeof(reason), "connect: %s", uv_strerror(status));
    fail_conn(s, reason, status);
    return;
  }
  c->up = true;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, 60);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  for (struct msg *m = s->head; m != NULL; m = m->next) {
    if (m->conn == NULL && (r = write_msg(c, m)) != 0) {
      snprintf(reason, sizeof(reason), "write: %s", uv_strerror(r));
      fail_conn(s, reason, r);
      return;
    }
  }
  arm_timer(s);
}

static int start_connect(struct syslog_sink *s) {
  struct conn *c = calloc(1, sizeof(*c));
  int r;
  if (c == NULL)
    return KW_ENOMEM;
  c->s = s;
  if ((r = uv_tcp_init(s->loop, &c->tcp)) != 0) {
    free(c);
    return r;
  }
  c->tcp.data = c;
  c->creq.data = c;
  s->refs++;
  s->conn = c;
  if ((r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&s->addr, on_connect)) != 0) {
    s->conn = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return r;
  }
  return 0;
}

/* ---- deadline ------------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t) {
  struct syslog_sink *s = t->data;
  char reason[96];
  snprintf(reason, sizeof(reason), "timeout after %llu ms", (unsigned long long)s->timeout_ms);
  fail_conn(s, reason, -ETIMEDOUT);
}

/* Arms the timer for the oldest message that still waits on the live connection. */
static void arm_timer(struct syslog_sink *s) {
  uint64_t now = uv_now(s->loop);
  for (struct msg *m = s->head; m != NULL; m = m->next) {
    if (s->conn != NULL && (m->conn == NULL || m->conn == s->conn)) {
      uv_timer_start(&s->timer, on_deadline, m->deadline > now ? m->deadline - now : 0, 0);
      return;
    }
  }
  uv_timer_stop(&s->timer);
}

/* ---- UDP ------------------------------------------------------------------------------ */

static void on_udp_sent(uv_udp_send_t *req, int status) {
  struct msg *m = req->data;
  char reason[96];
  if (status == 0) {
    finish(m, 0, NULL);
  } else if (m->s->closing) {
    finish(m, KW_ECANCELED, "sink closed");
  } else {
    snprintf(reason, sizeof(reason), "send: %s", uv_strerror(status));
    finish(m, status, reason);
  }
}

/* ---- ops ------------------------------------------------------------------------------ */

static int syslog_send(void *ctx, const char *json, size_t len, int severity,
                       kw_sink_done_cb cb, void *arg) {
  struct syslog_sink *s = ctx;
  struct msg *m;
  int r;

  if (s->closing)
    return KW_ECANCELED;
  if (s->nmsgs >= MAX_QUEUE)
    return -EAGAIN;
  if ((m = calloc(1, sizeof(*m))) == NULL)
    return KW_ENOMEM;
  if ((m->buf = format_msg(s, json, len, severity, &m->len)) == NULL) {
    free(m);
    return KW_ENOMEM;
  }
  if (s->udp && m->len > MAX_UDP) {
    free_msg(m);
    return KW_ETOOLONG;
  }
  m->s = s;
  m->cb = cb;
  m->arg = arg;
  m->deadline = uv_now(s->loop) + s->timeout_ms;
  if (s->udp) {
    uv_buf_t b = uv_buf_init(m->buf, (unsigned)m->len);
    m->req.u.data = m;
    if ((r = uv_udp_send(&m->req.u, &s->udp_h, &b, 1, (struct sockaddr *)&s->addr,
                         on_udp_sent)) != 0) {
      free_msg(m);
      return r;
    }
    list_append(s, m);
    return 0;
  }
  if (s->conn == NULL && (r = start_connect(s)) != 0) {
    free_msg(m);
    return r;
  }
  if (s->conn->up && (r = write_msg(s->conn, m)) != 0) {
    free_msg(m);
    return r;
  }
  list_append(s, m);
  arm_timer(s);
  return 0;
}

static void maybe_finalize(struct syslog_sink *s) {
  if (!s->closing || s->refs > 0)
    return;
  while (s->head != NULL) { /* waited for a connection that never came */
    struct msg *m = s->head;
    list_remove(s, m);
    m->cb(KW_ECANCELED, "sink closed", m->arg);
    free_msg(m);
  }
  kw_sink_close_cb cb = s->close_cb;
  void *arg = s->close_arg;
  free(s);
  cb(arg);
}

static void on_handle_closed(uv_handle_t *h) {
  struct syslog_sink *s = h->data;
  s->refs--;
  maybe_finalize(s);
}

static void syslog_close(void *ctx, kw_sink_close_cb cb, void *arg) {
  struct syslog_sink *s = ctx;
  s->closing = true;
  s->close_cb = cb;
  s->close_arg = arg;
  if (s->conn != NULL) {
    struct conn *c = s->conn;
    s->conn = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  }
  if (s->udp)
    uv_close((uv_handle_t *)&s->udp_h, on_handle_closed);
  uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

static int resolve(const char *host, int port, bool udp, struct sockaddr_storage *ss,
                   char *err, size_t errlen) {
  struct addrinfo hints = {0}, *res = NULL;
  char portstr[16];
  int r;

  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  snprintf(portstr, sizeof(portstr), "%d", port);
  if ((r = getaddrinfo(host, portstr, &hints, &res)) != 0 || res == NULL) {
    snprintf(err, errlen, "address: cannot resolve '%s': %s", host,
             r ? gai_strerror(r) : "no address");
    return KW_EINVAL;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen <= sizeof(*ss) ? res->ai_addrlen : sizeof(*ss));
  freeaddrinfo(res);
  return 0;
}

static int syslog_create(uv_loop_t *loop, const struct kw_sink_cfg *cfg, void **ctx, char *err,
                         size_t errlen) {
  struct syslog_sink *s = calloc(1, sizeof(*s));
  char host[256];
  int port, r;

  if (s == NULL)
    return KW_ENOMEM;
  if (kw_sink_parse_address(cfg->address, &s->udp, host, sizeof(host), &port) != 0) {
    snprintf(err, errlen, "address: '%.200s' is not udp://HOST:PORT or tcp://HOST:PORT",
             cfg->address ? cfg->address : "");
    free(s);
    return KW_EINVAL;
  }
  if ((r = resolve(host, port, s->udp, &s->addr, err, errlen)) != 0) {
    free(s);
    return r;
  }
  s->loop = loop;
  s->pid = (long)getpid();
  s->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 5000;
  if (gethostname(s->hostname, sizeof(s->hostname) - 1) != 0 || s->hostname[0] == '\0')
    snprintf(s->hostname, sizeof(s->hostname), "-");
  for (char *p = s->hostname; *p; p++)
    if (*p < 33 || *p > 126)
      *p = '-';
  if (s->udp && (r = uv_udp_init(loop, &s->udp_h)) != 0) {
    snprintf(err, errlen, "address: %s", uv_strerror(r));
    free(s);
    return r;
  }
  s->udp_h.data = s;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->refs = s->udp ? 2 : 1;
  *ctx = s;
  return 0;
}

const struct kw_sink_ops kw__sink_syslog_ops = {
    .type = "syslog",
    .create = syslog_create,
    .send = syslog_send,
    .close = syslog_close,
};
