/* sink.h — where alerts go: stdout, a file, a webhook, syslog.
 *
 * A sink delivers one document — the alert JSON of kw_alert_json() — somewhere.  Each kind
 * is a plugin: a const struct kw_sink_ops with designated initialisers in its own file
 * (sink_file.c, sink_webhook.c, sink_syslog.c) that exports nothing else; sink.c holds the
 * registry array and copies an ops table into every instance with default functions for
 * the optional slots, so callers never test `if (ops->x)`.
 *
 * Sinks know nothing of the store: durability (retries, backoff, restart) is the outbox's
 * job (outbox.h).  A sink reports, per document, delivered or not and why; "delivered"
 * means:  stdout — written to fd 1;  file — written and fsync()ed;  webhook — a 2xx answer;
 * syslog — UDP: handed to the kernel, TCP: written to the connection (see sink_syslog.c for
 * what that does not promise).
 *
 * Every document a sink receives through kw_sink_send() is one line: raw CR, LF and TAB
 * (only possible as JSON whitespace) become spaces and other control bytes become \u00XX,
 * so a hostile user agent can never split a JSON line or a syslog message.
 *
 * Async contract (libuv's): if send() returns an error, its callback is never called;
 * otherwise it is called exactly once, never from within send() itself, with 0, a
 * negative KW_E* / -errno and a reason, or KW_ECANCELED when the sink was closed first.
 *
 * Thread: the loop's thread, for every function here.
 * Lifecycle: kw_sink_open_all() → kw_sink_send()… → kw_sink_close_all(cb) → freed after
 * cb.  A single sink: kw_sink_open() → … → kw_sink_close(cb).
 */
#ifndef KW_SINK_H
#define KW_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct kw_config;
struct kw_sink_cfg;

/* Outcome of one delivery.  status: 0 delivered, KW_ECANCELED when the sink was closed
 * first, another negative code on failure.  reason: NULL on success, else a short text
 * ("HTTP 503", "connect: connection refused") that never holds a secret; borrowed for the
 * duration of the call. */
typedef void (*kw_sink_done_cb)(int status, const char *reason, void *arg);
typedef void (*kw_sink_close_cb)(void *arg);

/* A sink kind.  Required: type, create, send, close.  Optional (defaults given at
 * registration): reopen (no-op returning 0). */
struct kw_sink_ops {
  const char *type; /* "stdout", "file", "webhook", "syslog" */
  /* Validates cfg and builds an instance in *ctx.  On failure returns non-zero and writes
   * "FIELD: message" (FIELD relative to the sink: "url", "headers.1.env") or a plain
   * message into err.  Borrows cfg during the call only. */
  int (*create)(uv_loop_t *loop, const struct kw_sink_cfg *cfg, void **ctx, char *err,
                size_t errlen);
  /* Starts delivering json[0..len) (one line, no terminating newline); copies it.
   * severity: enum kw_severity. Async contract above. */
  int (*send)(void *ctx, const char *json, size_t len, int severity, kw_sink_done_cb cb,
              void *arg);
  /* Reopens what the sink writes to (after logrotate), at the next safe point. */
  int (*reopen)(void *ctx);
  /* Cancels what is queued (callbacks get KW_ECANCELED), lets what the kernel or a thread
   * already holds finish, frees ctx, then calls cb (never from within close itself). */
  void (*close)(void *ctx, kw_sink_close_cb cb, void *arg);
};

/* One configured sink.  ops is a copy of the registered table with defaults filled in. */
struct kw_sink {
  struct kw_sink_ops ops;
  void *ctx;
  char name[64];
  int min_severity; /* enum kw_severity */
  bool closing;
  kw_sink_close_cb close_cb; /* private: kw_sink_close()'s */
  void *close_arg;
};

/* The ops of a registered kind with defaults filled in, copied to *out.
 * Returns 0 or KW_ENOTFOUND. */
int kw_sink_ops_get(const char *type, struct kw_sink_ops *out);

/* Builds one sink from cfg.  Returns 0 and a new sink (close with kw_sink_close()), or an
 * error with "FIELD: message" in err (FIELD relative to the sink). */
int kw_sink_open(uv_loop_t *loop, const struct kw_sink_cfg *cfg, struct kw_sink **out,
                 char *err, size_t errlen);

/* Sends json (any length; flattened to one line and copied).  Async contract above.
 * Returns KW_ECANCELED once the sink is closing, KW_ENOMEM, or the sink's own error. */
int kw_sink_send(struct kw_sink *s, const char *json, size_t len, int severity,
                 kw_sink_done_cb cb, void *arg);

/* Whether s takes alerts of this severity (min_severity). */
bool kw_sink_wants(const struct kw_sink *s, int severity);

/* Asks s to reopen its file (SIGHUP after logrotate).  Returns 0 or the sink's error. */
int kw_sink_reopen(struct kw_sink *s);

/* Closes s (see ops.close); s is freed before cb runs.  NULL: cb is not called. */
void kw_sink_close(struct kw_sink *s, kw_sink_close_cb cb, void *arg);

/* ---- the configured set ------------------------------------------------------------- */

struct kw_sinks;

/* Builds every sink of cfg->sinks.  Returns 0 and a new set (close with
 * kw_sink_close_all()), or an error with "FILE:LINE: sinks.N.FIELD: message" in err (the
 * sinks built so far are closed and freed again before it returns — their close
 * callbacks run on the loop later, so run the loop before uv_loop_close()).
 * Borrows cfg during the call only.  Thread: the loop's. */
int kw_sink_open_all(uv_loop_t *loop, const struct kw_config *cfg, struct kw_sinks **out,
                     char *err, size_t errlen);

size_t kw_sink_count(const struct kw_sinks *set);
/* The i-th sink (configuration order), or NULL. */
struct kw_sink *kw_sink_at(struct kw_sinks *set, size_t i);
/* The sink named name, or NULL.  *index (when not NULL) gets its position. */
struct kw_sink *kw_sink_find(struct kw_sinks *set, const char *name, size_t *index);

/* Reopens every sink; returns the first error. */
int kw_sink_reopen_all(struct kw_sinks *set);

/* Closes every sink and frees set after the last one is closed; then calls cb.
 * NULL set: cb is not called. */
void kw_sink_close_all(struct kw_sinks *set, kw_sink_close_cb cb, void *arg);

/* ---- helpers shared by the implementations (sink.c) ---------------------------------- */

/* Copies json[0..len) into a new NUL-terminated one-line buffer (see above); *outlen gets
 * its length.  Returns NULL when out of memory. */
char *kw_sink_flatten(const char *json, size_t len, size_t *outlen);

/* Parses "udp://HOST:PORT", "tcp://HOST:PORT" or "[v6]:PORT" / "HOST:PORT" (UDP).
 * host gets the host without brackets.  Returns 0 or KW_EINVAL. */
int kw_sink_parse_address(const char *spec, bool *udp, char *host, size_t hostlen,
                          int *port);

#endif
