/* syslog.h — receiving a proxy's access log as syslog (RFC 3164 and RFC 5424).
 *
 * nginx can send each access-log line as a syslog message
 * (`access_log syslog:server=127.0.0.1:5514,tag=nginx keyed;`).  A kw_syslog listens on
 * UDP (one message per datagram) or TCP (octet-counted "LEN SP MSG" or LF-terminated
 * frames, RFC 6587, detected per frame), strips the syslog header and hands the message
 * body — the log line — to its owner.
 *
 * Bounds: messages longer than max_msg are dropped and counted; TCP connections beyond
 * max_conns are refused and counted.  UDP has no flow control: when the socket's receive
 * buffer overflows the kernel drops datagrams, which are counted through SO_RXQ_OVFL
 * (the file is the buffer for tailing; for UDP syslog, drops are the honest answer).
 *
 * Thread: the loop's thread.  Lifecycle: kw_syslog_create() → kw_syslog_start() → … →
 * kw_syslog_close(cb) → kw_syslog_destroy() in or after cb.
 */
#ifndef KW_SYSLOG_H
#define KW_SYSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define KW_SYSLOG_MAX_MSG (64 * 1024)

struct kw_syslog;

struct kw_syslog_stats {
  uint64_t messages;  /* bodies delivered */
  uint64_t malformed; /* frames whose header could not be read (delivered as is) */
  uint64_t oversized; /* frames over max_msg, dropped */
  uint64_t drops;     /* datagrams the kernel dropped (UDP receive buffer full) */
  uint64_t refused;   /* TCP connections over max_conns */
  uint64_t connections; /* TCP connections accepted */
};

typedef void (*kw_syslog_msg_cb)(struct kw_syslog *s, const char *msg, size_t len,
                                 void *ctx);
typedef void (*kw_syslog_close_cb)(struct kw_syslog *s, void *ctx);

struct kw_syslog_opts {
  const char *listen; /* "udp://127.0.0.1:5514", "tcp://[::1]:5514", "127.0.0.1:5514" (UDP) */
  size_t max_msg;     /* default KW_SYSLOG_MAX_MSG */
  unsigned max_conns; /* default 64 */
  int rcvbuf;         /* SO_RCVBUF for UDP; 0 = system default */
};

/* Parses opts->listen (copied). Returns 0 or KW_EINVAL with the reason in err. */
int kw_syslog_create(uv_loop_t *loop, const struct kw_syslog_opts *opts, kw_syslog_msg_cb cb,
                     void *ctx, struct kw_syslog **out, char *err, size_t errlen);

/* Binds and listens. Returns 0 or -errno with "cannot bind udp://…: reason" in err. */
int kw_syslog_start(struct kw_syslog *s, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int kw_syslog_port(const struct kw_syslog *s);

const struct kw_syslog_stats *kw_syslog_stats(const struct kw_syslog *s);

void kw_syslog_close(struct kw_syslog *s, kw_syslog_close_cb cb);
void kw_syslog_destroy(struct kw_syslog *s);

/* Finds the body of one syslog message (RFC 5424 or 3164; without a "<PRI>" the whole
 * frame is the body).  Returns 0, or KW_EPARSE when a header is present but malformed
 * (*body then is the text after "<PRI>").  Pure; exposed for tests and fuzzing. */
int kw_syslog_body(const char *msg, size_t n, const char **body, size_t *blen);

/* TCP framing (RFC 6587), exposed for tests and fuzzing: a framer is fed stream bytes
 * and calls cb once per complete frame.  Returns bytes of oversized frames skipped. */
struct kw_syslog_framer {
  char *buf;
  size_t len, cap, max;
  size_t want;     /* octet counting: body bytes still expected; 0 otherwise */
  size_t skipping; /* bytes of an oversized frame still to discard */
  int skip_to_lf;  /* discarding an oversized LF-terminated frame */
};

int kw_syslog_framer_init(struct kw_syslog_framer *fr, size_t max);
void kw_syslog_framer_free(struct kw_syslog_framer *fr);
/* Returns the number of oversized frames dropped during this call, or KW_ENOMEM. */
int kw_syslog_framer_feed(struct kw_syslog_framer *fr, const char *data, size_t n,
                          void (*cb)(const char *frame, size_t len, void *ctx), void *ctx);

#endif
