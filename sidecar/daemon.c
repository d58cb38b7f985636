/* daemon.c — the sidecar loop (see daemon.h).
 *
 * Sources are plugins: struct src_ops (file, syslog) with designated initialisers; a
 * configured source becomes one `struct src`, except a glob, which becomes a `struct
 * group` that adds one file src per matching file as files appear.
 *
 * Commit protocol (exactly once): a file source's on_line feeds the pipeline and marks the
 * source dirty; commit() writes, inside the open transaction, the positions of every
 * dirty source (kw_tail_positions() = end of the last line fed), any gaps, counters and
 * status, then commits.  Positions and the calls they cover land atomically.
 *
 * Invariants:
 *  - d->err != 0 ⇒ the daemon is stopping and nothing more is fed to the pipeline;
 *  - a src is in d->srcs from creation until its close callback;
 *  - gaps are queued on the src (copied) and written at the next commit.
 */
#include "daemon.h"
#include "../analyzer/outbox.h"
#include "../analyzer/responder.h"
#include "../analyzer/sink.h"
#include "../collector/capture.h"
#include "../collector/format.h"
#include "../collector/syslog.h"
#include "../collector/tail.h"
#include "err.h"
#include "fingerprint.h"
#include "pipeline.h"
#include "revocations.h"
#include "reviewsched.h"
#include "api.h"
#include "httpd.h"
#include "store.h"
#include "timeutil.h"

#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GAPS 16       /* queued per source between commits */
#define LAG_SAMPLES 4096  /* per source per commit */
#define LAG_WINDOW 65536  /* per source per status interval */
#define GLOB_SCAN_MS 1000 /* how often globs look for new files */
#define BASELINE_MS 60000 /* how often the rules' per-key baselines are saved */
#define CHECKPOINT_MS 1000 /* WAL checkpoints, on a worker thread */
#define RETENTION_FIRST_MS 1000 /* the first prune, soon after start */
#define PRUNE_CHUNK 50000  /* calls removed per commit; the next chunk follows at once */

struct src;

struct src_ops {
  const char *type;
  int (*start)(struct src *s, char *err, size_t errlen);
  /* Writes the source's positions into the open batch (files only). */
  int (*save)(struct src *s);
  void (*status)(struct src *s, struct kw_source_status *st);
  void (*close)(struct src *s);
};

struct gap {
  int64_t bytes;
  char detail[320];
};

struct src {
  struct kw_daemon *d;
  const struct src_ops *ops;
  struct group *group;       /* the glob it belongs to, or NULL */
  char cfg_name[256];        /* the configured source it came from */
  char name[PATH_MAX + 32];  /* store name: path, or "syslog udp://…" */
  char sig[1024];            /* configuration signature, to see changes on reload */
  char start_at_end;
  uint32_t id;
  struct kw_format fmt;
  struct kw_tail *tail;
  struct kw_syslog *sl;
  struct kw_capture *cap; /* pcap: live capture, its poll handle and tick timer */
  uv_poll_t cap_poll;
  uv_timer_t cap_tick;
  int cap_handles;
  bool dirty, closing, started;
  uint64_t lines, lines_at_status;
  int64_t status_at;
  double rate;
  struct gap gaps[MAX_GAPS];
  size_t ngaps, gaps_dropped;
  uint64_t overlong;         /* lines over the reader's bound, skipped */
  struct {                   /* bound counters already recorded (limit_hits) */
    uint64_t line, gaps, flows, reasm, pending, fields, headers, conns;
  } seen;
  int64_t *ts;               /* event times of calls since the last commit */
  size_t nts;
  int64_t *lag;              /* lags measured in the current status window */
  size_t nlag;
  int64_t lag_p50, lag_p99;
  struct src *next;
};

/* A glob: file sources are added for new matches. */
struct group {
  struct kw_daemon *d;
  char cfg_name[256];
  char pattern[PATH_MAX];
  char sig[1024];
  struct kw_source_cfg cfg; /* borrowed strings from d->cfg; refreshed on reload */
  bool closing;
  struct group *next;
};

struct kw_daemon {
  uv_loop_t *loop;
  struct kw_config *cfg;
  char *config_path;
  char db_path[PATH_MAX];
  const struct kw_log *log;
  struct kw_store *st;
  struct kw_fingerprint *fp;
  struct kw_pipeline *pipe;
  struct kw_sinks *sinks;   /* where alerts go (NULL: none configured) */
  struct kw_outbox *outbox; /* delivers them, marks joining our group commits */
  uint64_t alerts_seen;     /* pipeline alert count at the last kick */
  uint64_t revocations_seen; /* pipeline revocation decisions at the last commit */
  struct kw_responder *responder; /* carries out revocations (borrows cfg) */
  const char **sink_names;  /* of cfg->sinks, for the responder's own alerts */
  struct kw_review_sched *reviews; /* scheduled permission reviews (NULL: none) */
  struct kw_api *api;       /* the dashboard/API with http.listen (NULL: none) */
  struct kw_httpd *httpd;
  bool other_alerts;        /* alerts not from the pipeline await the next commit */
  struct src *srcs;
  struct group *groups;
  uv_timer_t commit_timer, status_timer, glob_timer, baseline_timer, checkpoint_timer,
      retention_timer;
  struct {                  /* bound counters already recorded (limit_hits) */
    uint64_t subjects, http_conns, http_size;
  } seen;
  int64_t tampered_batch;   /* a prune stopped here (alerted once) */
  bool http_restart;        /* start the server again once the old one has closed */
  uv_work_t checkpoint;
  bool checkpointing; /* a checkpoint is running on the thread pool */
  int checkpoint_err;
  int timers;       /* initialised timers (closed on stop) */
  int open_handles;
  bool stopping;
  int err;
  int64_t started_us;
  void (*stop_cb)(struct kw_daemon *d, void *arg);
  void *stop_arg;
};

static const struct src_ops file_ops, syslog_ops, pcap_ops;

/* ---- commit ------------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void fail(struct kw_daemon *d, int err, const char *what);
static void maybe_stopped(struct kw_daemon *d);
static void on_commit_timer(uv_timer_t *h);

/* Writes everything a source has to say into the open batch. */
static int save_src(struct src *s, int64_t now) {
  int r = 0;
  if (s->dirty && s->ops->save != NULL && (r = s->ops->save(s)) != 0)
    return r;
  s->dirty = false;
  for (size_t i = 0; i < s->ngaps && r == 0; i++)
    r = kw_store_add_gap(s->d->st, s->id, s->gaps[i].bytes, s->gaps[i].detail);
  s->ngaps = 0;
  /* Lag: from each call's own timestamp to the moment it is committed. */
  for (size_t i = 0; i < s->nts; i++) {
    if (s->nlag < LAG_WINDOW)
      s->lag[s->nlag++] = now - s->ts[i];
  }
  s->nts = 0;
  return r;
}

static int commit(struct kw_daemon *d) {
  int64_t now = kw_time_now();
  int r = 0;

  if (d->err != 0)
    return d->err;
  for (struct src *s = d->srcs; s != NULL && r == 0; s = s->next)
    r = save_src(s, now);
  if (r == 0)
    r = kw_pipeline_commit(d->pipe);
  if (r != 0)
    fail(d, r, "commit");
  /* New alerts are committed with their outbox rows: deliver them now. */
  if (r == 0 && d->outbox != NULL &&
      (kw_pipeline_stats(d->pipe)->alerts != d->alerts_seen || d->other_alerts)) {
    d->alerts_seen = kw_pipeline_stats(d->pipe)->alerts;
    d->other_alerts = false;
    kw_outbox_kick(d->outbox);
  }
  /* Decisions in this batch are durable now: the responder may judge and send. */
  if (r == 0) {
    d->revocations_seen = kw_pipeline_stats(d->pipe)->revocations;
    kw_responder_committed(d->responder);
  }
  return r;
}

/* ---- the responder ------------------------------------------------------------------ */

/* The responder judged a decision: commit on the next turn of the loop (restarting the
 * commit timer at 0), so the revocation is sent without waiting out commit_ms. */
static void commit_soon(void *arg) {
  struct kw_daemon *d = arg;
  if (!d->stopping)
    uv_timer_start(&d->commit_timer, on_commit_timer, 0, d->cfg->run.commit_ms);
}

/* A key the responder just revoked (keys revoked before are loaded by the pipeline). */
static void mark_one(const uint8_t *fp, void *arg) {
  struct kw_daemon *d = arg;
  struct kw_engine *e = kw_pipeline_engine(d->pipe);
  if (e != NULL && kw_engine_mark_revoked(e, fp) != 0)
    kw_log(d->log, KW_LOG_WARN, "revoked_key_not_watched", NULL);
}

/* A key store's listing was written: scope_violation sees the keys' groups and
 * permissions as the store now says. */
static void on_attr(const uint8_t *fp, const char *group, const char *permission, void *arg) {
  struct kw_engine *e = arg;
  kw_engine_set_key_attrs(e, fp, group, permission);
}

static void on_inventory(void *arg) {
  struct kw_daemon *d = arg;
  struct kw_engine *e = kw_pipeline_engine(d->pipe);
  if (e != NULL && kw_store_key_attrs(d->st, on_attr, e) != 0)
    kw_log(d->log, KW_LOG_WARN, "key_attrs_unreadable", NULL);
}

static int start_responder(struct kw_daemon *d, char *err, size_t errlen) {
  const char **names = calloc(d->cfg->sinks_count + 1, sizeof(char *));
  int r;
  if (names == NULL)
    return KW_ENOMEM;
  for (unsigned i = 0; i < d->cfg->sinks_count; i++)
    names[i] = d->cfg->sinks[i].name;
  free(d->sink_names);
  d->sink_names = names;
  struct kw_responder_opts o = {
      .store = d->st,
      .cfg = d->cfg,
      .fpr = d->fp,
      .log = d->log,
      .owner_commits = true,
      .request_commit = commit_soon,
      .sinks = names,
      .nsinks = d->cfg->sinks_count,
      .sync_inventory = true,
      .on_revoked = mark_one,
      .on_inventory = on_inventory,
      .arg = d,
  };
  if ((r = kw_responder_init(d->loop, &o, &d->responder, err, errlen)) != 0)
    return r;
  d->open_handles++; /* held until the responder is closed */
  return 0;
}

/* ---- scheduled reviews ------------------------------------------------------------- */

static void on_review_alerts(void *arg) {
  struct kw_daemon *d = arg;
  d->other_alerts = true;
  commit_soon(d);
}

static int start_reviews(struct kw_daemon *d, char *err, size_t errlen) {
  struct kw_review_sched_opts o = {.db_path = d->db_path, .cfg = d->cfg, .store = d->st,
                                   .log = d->log, .on_alerts = on_review_alerts, .arg = d};
  int r;
  if (d->cfg->review.schedule == NULL)
    return 0;
  if ((r = kw_review_sched_init(d->loop, &o, &d->reviews, err, errlen)) != 0)
    return r;
  d->open_handles++; /* held until the scheduler is closed */
  return 0;
}

static void on_reviews_closed(void *arg) {
  struct kw_daemon *d = arg;
  d->open_handles--;
  maybe_stopped(d);
}

static void stop_reviews(struct kw_daemon *d) {
  struct kw_review_sched *s = d->reviews;
  d->reviews = NULL;
  if (s != NULL)
    kw_review_sched_close(s, on_reviews_closed, d);
}

void kw_daemon_review_now(struct kw_daemon *d) {
  if (d->reviews == NULL) {
    kw_log(d->log, KW_LOG_WARN, "review_skipped", "why", "no review.schedule configured", NULL);
    return;
  }
  kw_review_sched_now(d->reviews);
}

/* ---- the dashboard and API (http.listen) -------------------------------------------- */

static void on_api_write(void *arg) { commit_soon(arg); }

static int start_http(struct kw_daemon *d, char *err, size_t errlen) {
  struct kw_api_opts ao = {.db_path = d->db_path, .cfg = d->cfg, .writer = d->st,
                           .log = d->log, .on_write = on_api_write, .arg = d};
  size_t n;
  int r;
  if (d->cfg->http.listen == NULL)
    return 0;
  if ((r = kw_api_create(&ao, &d->api, err, errlen)) != 0)
    return r;
  const struct kw_http_route *routes = kw_api_routes(d->api, &n);
  struct kw_httpd_opts ho = {.listen = d->cfg->http.listen, .routes = routes, .nroutes = n,
                             .csp = kw_api_csp()};
  if ((r = kw_httpd_start(d->loop, &ho, &d->httpd, err, errlen)) != 0) {
    kw_api_destroy(d->api);
    d->api = NULL;
    return r;
  }
  d->open_handles++; /* held until the server is closed */
  kw_log(d->log, KW_LOG_INFO, "http_listening", "address", d->cfg->http.listen, NULL);
  return 0;
}

static void start_http_logged(struct kw_daemon *d) {
  char err[512];
  if (start_http(d, err, sizeof(err)) != 0)
    kw_log(d->log, KW_LOG_ERROR, "http_failed", "error", err, NULL);
}

static void on_http_closed(void *arg) {
  struct kw_daemon *d = arg;
  kw_api_destroy(d->api);
  d->api = NULL;
  d->open_handles--;
  if (d->http_restart && !d->stopping) {
    d->http_restart = false;
    start_http_logged(d);
  }
  maybe_stopped(d);
}

static void record_limits(struct kw_daemon *d);

/* A reload: the server closes (its bounds' hits recorded first) and starts again from the
 * new configuration once its socket is closed — a new address, new tokens (re-read, so a
 * rotated token file takes effect), new allowed hosts. */
static void restart_http(struct kw_daemon *d) {
  struct kw_httpd *h = d->httpd;
  if (h == NULL) {
    if (!d->http_restart) /* (a restart already waits for the old server to close) */
      start_http_logged(d);
    return;
  }
  record_limits(d);
  d->seen.http_conns = d->seen.http_size = 0; /* the new server counts from 0 */
  d->httpd = NULL;
  d->http_restart = true;
  kw_httpd_close(h, on_http_closed, d);
}

struct retired {
  struct kw_daemon *d;
  struct kw_config *cfg; /* the configuration the closed responder borrowed */
};

static void on_responder_closed(void *arg) {
  struct retired *rt = arg;
  struct kw_daemon *d = rt->d;
  kw_config_destroy(rt->cfg);
  free(rt);
  d->open_handles--;
  maybe_stopped(d);
}

/* Closes the responder; cfg (NULL: none) is freed once it is closed. */
static void retire_responder(struct kw_daemon *d, struct kw_config *cfg) {
  struct retired *rt = calloc(1, sizeof(*rt));
  struct kw_responder *r = d->responder;
  d->responder = NULL;
  if (rt == NULL) { /* out of memory: keep the config alive (a leak beats a crash) */
    kw_responder_close(r, NULL, NULL);
    d->open_handles--;
    return;
  }
  rt->d = d;
  rt->cfg = cfg;
  kw_responder_close(r, on_responder_closed, rt);
}

static void write_status(struct kw_daemon *d) {
  int64_t now = kw_time_now();
  for (struct src *s = d->srcs; s != NULL; s = s->next) {
    struct kw_source_status st = {.state = "reading", .lag_p50_us = -1, .lag_p99_us = -1};
    double secs = (double)(now - s->status_at) / 1e6;
    if (secs > 0)
      s->rate = (double)(s->lines - s->lines_at_status) / secs;
    s->lines_at_status = s->lines;
    s->status_at = now;
    if (s->nlag > 0) {
      qsort(s->lag, s->nlag, sizeof(int64_t), cmp_i64);
      s->lag_p50 = s->lag[s->nlag / 2];
      s->lag_p99 = s->lag[(s->nlag * 99) / 100];
      s->nlag = 0;
    }
    st.rate = s->rate;
    st.lag_p50_us = s->lag_p50 > 0 ? s->lag_p50 : (s->lag_p50 == 0 ? 0 : -1);
    st.lag_p99_us = s->lag_p99 > 0 ? s->lag_p99 : (s->lag_p99 == 0 ? 0 : -1);
    s->ops->status(s, &st);
    if (kw_store_set_status(d->st, s->id, &st) != 0) {
      fail(d, KW_ESTORE, "status");
      return;
    }
  }
  if (kw_store_heartbeat(d->st, (int64_t)getpid(), d->started_us, d->config_path) != 0)
    fail(d, KW_ESTORE, "heartbeat");
}

static void on_commit_timer(uv_timer_t *h) {
  struct kw_daemon *d = h->data;
  bool due = kw_store_in_batch(d->st); /* calls, outbox marks, anything written */
  for (struct src *s = d->srcs; s != NULL && !due; s = s->next)
    due = s->dirty || s->ngaps > 0;
  if (due)
    commit(d);
}

/* The WAL is copied into the database by a worker thread with its own connection
 * (PASSIVE: it never waits for, or blocks, the loop's commits). */
static void do_checkpoint(uv_work_t *w) {
  struct kw_daemon *d = w->data;
  d->checkpoint_err = kw_store_checkpoint(d->db_path);
}


static void after_checkpoint(uv_work_t *w, int status) {
  struct kw_daemon *d = w->data;
  d->checkpointing = false;
  if (status == 0 && d->checkpoint_err != 0)
    kw_log(d->log, KW_LOG_WARN, "checkpoint_failed", "db", d->db_path, NULL);
  maybe_stopped(d);
}

static void on_checkpoint_timer(uv_timer_t *h) {
  struct kw_daemon *d = h->data;
  if (d->checkpointing || d->stopping)
    return;
  d->checkpoint.data = d;
  if (uv_queue_work(d->loop, &d->checkpoint, do_checkpoint, after_checkpoint) == 0)
    d->checkpointing = true;
}

static void on_baseline_timer(uv_timer_t *h) {
  struct kw_daemon *d = h->data;
  if (d->err == 0 && kw_pipeline_save_baselines(d->pipe) != 0)
    fail(d, KW_ESTORE, "baselines");
}

/* A bound's counter grew from *seen to total: the hits are stored (limit_hits, shown by
 * `keywatch status` and /metrics) and logged. */
static void limit_hits(struct kw_daemon *d, const char *name, uint64_t total, uint64_t *seen) {
  char n[24];
  if (total <= *seen) {
    *seen = total; /* a counter that restarted (a new capture) */
    return;
  }
  snprintf(n, sizeof(n), "%llu", (unsigned long long)(total - *seen));
  if (kw_store_add_limit_hits(d->st, name, (int64_t)(total - *seen)) != 0) {
    fail(d, KW_ESTORE, "limits");
    return;
  }
  *seen = total;
  kw_log(d->log, KW_LOG_WARN, "limit_hit", "limit", name, "hits", n, NULL);
}

static void record_limits(struct kw_daemon *d) {
  struct kw_engine *e = kw_pipeline_engine(d->pipe);
  for (struct src *s = d->srcs; s != NULL && d->err == 0; s = s->next) {
    limit_hits(d, "gaps_queued", s->gaps_dropped, &s->seen.gaps);
    if (s->tail != NULL)
      limit_hits(d, "line_bytes", s->overlong, &s->seen.line);
    if (s->sl != NULL) {
      const struct kw_syslog_stats *ss = kw_syslog_stats(s->sl);
      limit_hits(d, "line_bytes", ss->oversized, &s->seen.line);
      limit_hits(d, "syslog_connections", ss->refused, &s->seen.conns);
    }
    if (s->cap != NULL) {
      const struct kw_capture_stats *cs = kw_capture_stats(s->cap);
      limit_hits(d, "capture_flows", cs->tcp.flows_evicted, &s->seen.flows);
      limit_hits(d, "capture_reassembly_bytes", cs->tcp.drop_segments, &s->seen.reasm);
      limit_hits(d, "capture_pending_requests", cs->http.pending_drops, &s->seen.pending);
      limit_hits(d, "capture_request_bytes", cs->http.truncated_fields, &s->seen.fields);
      limit_hits(d, "capture_headers", cs->http.dropped_headers, &s->seen.headers);
    }
  }
  if (e != NULL && d->err == 0)
    limit_hits(d, "rules_subjects", kw_engine_untracked(e), &d->seen.subjects);
  if (d->httpd != NULL && d->err == 0) {
    struct kw_httpd_stats hs;
    kw_httpd_stats(d->httpd, &hs);
    limit_hits(d, "http_connections", hs.refused, &d->seen.http_conns);
    limit_hits(d, "http_request_size", hs.too_large, &d->seen.http_size);
  }
}

/* Status, and the bounds hit since the last tick (among them the calls the rules could
 * not evaluate: rules_subjects), committed with the open batch. */
static void on_status_timer(uv_timer_t *h) {
  struct kw_daemon *d = h->data;
  write_status(d);
  record_limits(d);
  commit(d);
}

/* ---- retention ---------------------------------------------------------------------- */

/* A prune found a link that fails its check: a critical alert, once per link. */
static void alert_tampered(struct kw_daemon *d, const struct kw_prune *p) {
  char summary[256], details[320], b[24];
  int64_t id;
  bool created;
  struct kw_firing f = {
      .rule = "audit.tampered",
      .type = "audit",
      .severity = KW_SEV_CRITICAL,
      .action = "alert",
      .ts_us = kw_time_now(),
      .cooldown_us = 86400LL * 1000000,
      .summary = summary,
      .details = details,
  };
  snprintf(b, sizeof(b), "%lld", (long long)p->bad_batch);
  kw_log(d->log, KW_LOG_ERROR, "prune_stopped", "batch", b, "why", p->reason, NULL);
  snprintf(summary, sizeof(summary),
           "audit trail: batch %lld fails its hash-chain check (%s); retention stopped "
           "before it",
           (long long)p->bad_batch, p->reason);
  snprintf(details, sizeof(details), "{\"batch\": %lld, \"reason\": \"%s\"}",
           (long long)p->bad_batch, p->reason);
  if (kw_store_alert(d->st, &f, 0, d->sink_names, d->cfg->sinks_count, &id, &created) != 0) {
    fail(d, KW_ESTORE, "alert");
    return;
  }
  d->other_alerts = true;
}

/* Retention (retention.calls): one chunk of kw_store_prune() per turn of the loop,
 * committed with the open batch, until nothing old is left. */
static void on_retention_timer(uv_timer_t *h) {
  struct kw_daemon *d = h->data;
  struct kw_prune p;
  char nb[24], nc[24], na[24];
  int r;

  if (d->cfg->retention.calls_us == 0 || d->err != 0 || d->stopping)
    return;
  if ((r = kw_store_prune(d->st, kw_time_now() - d->cfg->retention.calls_us, PRUNE_CHUNK,
                          &p)) != 0) {
    fail(d, r, "retention");
    return;
  }
  if (p.bad_batch > 0 && p.bad_batch != d->tampered_batch) {
    d->tampered_batch = p.bad_batch;
    alert_tampered(d, &p);
  }
  if (commit(d) != 0)
    return;
  if (p.batches > 0) {
    snprintf(nb, sizeof(nb), "%lld", (long long)p.batches);
    snprintf(nc, sizeof(nc), "%lld", (long long)p.calls);
    snprintf(na, sizeof(na), "%lld", (long long)p.anchor_batch);
    kw_log(d->log, KW_LOG_INFO, "pruned", "batches", nb, "calls", nc, "anchor_batch", na,
           NULL);
  }
  if (p.more && p.bad_batch == 0)
    uv_timer_start(h, on_retention_timer, 0, (uint64_t)(d->cfg->retention.interval_us / 1000));
}

/* Feeds a line from s (consumed: its input bytes); commits when the batch is full. */
static void feed(struct src *s, const char *line, size_t len, size_t consumed) {
  struct kw_daemon *d = s->d;
  char why[256];
  int r;

  if (d->err != 0 || s->closing)
    return;
  r = kw_pipeline_line(d->pipe, &s->fmt, s->id, line, len, consumed, why, sizeof(why));
  if (r == KW_EPARSE) {
    kw_log(d->log, KW_LOG_DEBUG, "malformed_line", "source", s->name, "reason", why, NULL);
  } else if (r != 0) {
    fail(d, r, "store");
    return;
  } else if (s->nts < LAG_SAMPLES && kw_pipeline_stats(d->pipe)->last_ts_us > 0) {
    s->ts[s->nts++] = kw_pipeline_stats(d->pipe)->last_ts_us;
  }
  s->lines++;
  s->dirty = true;
  if (kw_store_pending(d->st) >= d->cfg->ingest.batch_rows)
    commit(d);
  else if (kw_pipeline_stats(d->pipe)->revocations != d->revocations_seen)
    commit_soon(d); /* a revocation decided: durable at once, the responder goes next */
}

/* ---- file sources ------------------------------------------------------------------ */

static void on_tail_line(struct kw_tail *t, const char *line, size_t len, void *ctx) {
  feed(ctx, line, len, kw_tail_consumed(t));
}

static void on_tail_skip(struct kw_tail *t, void *ctx) {
  struct src *s = ctx;
  kw_pipeline_skip(s->d->pipe, s->id, kw_tail_consumed(t));
  s->lines++;
  s->overlong++;
  s->dirty = true;
}

static void queue_gap(struct src *s, int64_t bytes, const char *detail) {
  if (s->ngaps == MAX_GAPS) {
    s->gaps_dropped++;
    return;
  }
  s->gaps[s->ngaps].bytes = bytes;
  snprintf(s->gaps[s->ngaps].detail, sizeof(s->gaps[0].detail), "%s", detail);
  s->ngaps++;
}

static void on_tail_event(struct kw_tail *t, const struct kw_tail_info *info, void *ctx) {
  static const char *const names[] = {"opened", "rotated", "closed", "truncated",
                                      "recovered", "gap", "error"};
  struct src *s = ctx;
  char off[32], bytes[32], detail[300];
  (void)t;

  snprintf(off, sizeof(off), "%lld", (long long)info->offset);
  snprintf(bytes, sizeof(bytes), "%lld", (long long)info->bytes);
  kw_log(s->d->log,
         info->event == KW_TAIL_GAP || info->event == KW_TAIL_ERROR ? KW_LOG_WARN : KW_LOG_INFO,
         names[info->event], "source", s->name, "path", info->path, "offset", off,
         info->event == KW_TAIL_GAP ? "bytes" : NULL, bytes, "detail", info->detail, NULL);
  if (info->event == KW_TAIL_GAP) {
    snprintf(detail, sizeof(detail), "%s: %s (at offset %lld)", info->path, info->detail,
             (long long)info->offset);
    queue_gap(s, info->bytes, detail);
  }
  s->dirty = true; /* the set of open files changed */
}

static int file_start(struct src *s, char *err, size_t errlen) {
  struct kw_daemon *d = s->d;
  struct kw_tail_opts o = {.poll_ms = d->cfg->run.poll_ms,
                           .rotate_wait_ms = d->cfg->run.rotate_wait_ms,
                           .start_at_end = s->start_at_end};
  struct kw_tail_cbs cbs = {.on_line = on_tail_line, .on_skip = on_tail_skip,
                            .on_event = on_tail_event, .ctx = s};
  struct kw_store_pos saved[KW_TAIL_MAX_FILES];
  struct kw_tail_pos pos[KW_TAIL_MAX_FILES];
  size_t n = 0;
  int r;

  if ((r = kw_store_get_positions(d->st, s->id, saved, KW_TAIL_MAX_FILES, &n)) != 0) {
    snprintf(err, errlen, "%s: cannot read saved positions: %s", s->name,
             kw_store_errmsg(d->st));
    return r;
  }
  for (size_t i = 0; i < n; i++)
    pos[i] = (struct kw_tail_pos){saved[i].dev, saved[i].ino, saved[i].offset, saved[i].hash,
                                  saved[i].hash_len};
  if ((r = kw_tail_create(d->loop, s->name, &o, &cbs, &s->tail)) != 0 ||
      (r = kw_tail_start(s->tail, pos, n)) != 0) {
    snprintf(err, errlen, "%s: cannot follow: %s", s->name, kw_strerror(r));
    return r;
  }
  return 0;
}

static int file_save(struct src *s) {
  struct kw_tail_pos pos[KW_TAIL_MAX_FILES];
  struct kw_store_pos sp[KW_TAIL_MAX_FILES];
  size_t n = kw_tail_positions(s->tail, pos, KW_TAIL_MAX_FILES);
  for (size_t i = 0; i < n; i++)
    sp[i] = (struct kw_store_pos){pos[i].dev, pos[i].ino, pos[i].offset, pos[i].hash,
                                  pos[i].hash_len};
  return kw_store_set_positions(s->d->st, s->id, sp, n);
}

static void file_status(struct src *s, struct kw_source_status *st) {
  st->backlog = kw_tail_backlog(s->tail);
  st->state = st->backlog > 0 ? "reading" : "following";
}

static void src_closed(struct src *s);

static void on_tail_closed(struct kw_tail *t, void *ctx) {
  (void)t;
  src_closed(ctx);
}

static void file_close(struct src *s) { kw_tail_close(s->tail, on_tail_closed); }

static const struct src_ops file_ops = {
    .type = "file",
    .start = file_start,
    .save = file_save,
    .status = file_status,
    .close = file_close,
};

/* ---- syslog sources ---------------------------------------------------------------- */

static void on_syslog_msg(struct kw_syslog *sl, const char *msg, size_t len, void *ctx) {
  (void)sl;
  feed(ctx, msg, len, len + 1);
}

static int syslog_start(struct src *s, char *err, size_t errlen) {
  struct kw_daemon *d = s->d;
  const struct kw_source_cfg *c = NULL;
  struct kw_syslog_opts o = {.rcvbuf = (int)d->cfg->run.udp_rcvbuf};
  int r;

  for (unsigned i = 0; i < d->cfg->sources_count; i++)
    if (strcmp(d->cfg->sources[i].name, s->cfg_name) == 0)
      c = &d->cfg->sources[i];
  o.listen = c ? c->listen : NULL;
  if ((r = kw_syslog_create(d->loop, &o, on_syslog_msg, s, &s->sl, err, errlen)) != 0)
    return r;
  return kw_syslog_start(s->sl, err, errlen);
}

static void syslog_status(struct src *s, struct kw_source_status *st) {
  const struct kw_syslog_stats *ss = kw_syslog_stats(s->sl);
  static _Thread_local char detail[160];
  st->state = "listening";
  st->drops = (int64_t)ss->drops;
  snprintf(detail, sizeof(detail),
           "messages=%llu malformed_headers=%llu oversized=%llu connections=%llu refused=%llu",
           (unsigned long long)ss->messages, (unsigned long long)ss->malformed,
           (unsigned long long)ss->oversized, (unsigned long long)ss->connections,
           (unsigned long long)ss->refused);
  st->detail = detail;
}

static void on_syslog_closed(struct kw_syslog *sl, void *ctx) {
  (void)sl;
  src_closed(ctx);
}

static void syslog_close(struct src *s) { kw_syslog_close(s->sl, on_syslog_closed); }

static const struct src_ops syslog_ops = {
    .type = "syslog",
    .start = syslog_start,
    .save = NULL,
    .status = syslog_status,
    .close = syslog_close,
};

/* ---- pcap sources (live capture) ---------------------------------------------------- */

static void on_capture_rec(const struct kw_rec *rec, size_t wire_bytes, void *ctx) {
  struct src *s = ctx;
  struct kw_daemon *d = s->d;
  int r;

  if (d->err != 0 || s->closing)
    return;
  if ((r = kw_pipeline_rec(d->pipe, rec, s->id, wire_bytes + 1)) != 0) {
    fail(d, r, "store");
    return;
  }
  if (s->nts < LAG_SAMPLES && kw_pipeline_stats(d->pipe)->last_ts_us > 0)
    s->ts[s->nts++] = kw_pipeline_stats(d->pipe)->last_ts_us;
  s->lines++;
  if (kw_store_pending(d->st) >= d->cfg->ingest.batch_rows)
    commit(d);
  else if (kw_pipeline_stats(d->pipe)->revocations != d->revocations_seen)
    commit_soon(d);
}

static void on_capture_readable(uv_poll_t *h, int status, int events) {
  struct src *s = h->data;
  char err[256];
  (void)events;
  if (status < 0 || s->closing)
    return;
  if (kw_capture_dispatch(s->cap, 10000, err, sizeof(err)) < 0)
    kw_log(s->d->log, KW_LOG_WARN, "capture_error", "source", s->name, "error", err, NULL);
}

static void on_capture_tick(uv_timer_t *h) {
  struct src *s = h->data;
  if (!s->closing)
    kw_capture_tick(s->cap, kw_time_now());
}

static int pcap_start(struct src *s, char *err, size_t errlen) {
  struct kw_daemon *d = s->d;
  const struct kw_source_cfg *c = NULL;
  struct kw_capture_opts o = {.headers = (const char *const *)d->cfg->identity.headers,
                              .nheaders = d->cfg->identity.headers_count};
  int r;

  for (unsigned i = 0; i < d->cfg->sources_count; i++)
    if (strcmp(d->cfg->sources[i].name, s->cfg_name) == 0)
      c = &d->cfg->sources[i];
  if (c == NULL || c->interface == NULL) {
    snprintf(err, errlen, "source '%s': no interface", s->cfg_name);
    return KW_EINVAL;
  }
  o.bpf = c->bpf;
  o.snaplen = (int)c->snaplen;
  if ((r = kw_capture_open_live(c->interface, &o, on_capture_rec, s, &s->cap, err, errlen)))
    return r;
  if ((r = uv_poll_init(d->loop, &s->cap_poll, kw_capture_fd(s->cap))) != 0)
    goto fail;
  s->cap_poll.data = s;
  s->cap_handles++;
  if ((r = uv_timer_init(d->loop, &s->cap_tick)) != 0)
    goto fail;
  s->cap_tick.data = s;
  s->cap_handles++;
  if ((r = uv_poll_start(&s->cap_poll, UV_READABLE, on_capture_readable)) != 0 ||
      (r = uv_timer_start(&s->cap_tick, on_capture_tick, 1000, 1000)) != 0)
    goto fail;
  return 0;
fail:
  snprintf(err, errlen, "source '%s': cannot watch the capture: %s", s->cfg_name,
           uv_strerror(r));
  return r;
}

static void pcap_status(struct src *s, struct kw_source_status *st) {
  const struct kw_capture_stats *cs = kw_capture_stats(s->cap);
  static _Thread_local char detail[256];
  st->state = "capturing";
  st->drops = (int64_t)(cs->pcap_dropped + cs->pcap_ifdropped);
  snprintf(detail, sizeof(detail),
           "packets=%llu requests=%llu non_http_flows=%llu gaps=%llu gap_bytes=%llu "
           "decode_errors=%llu bound_drops=%llu",
           (unsigned long long)cs->packets, (unsigned long long)cs->records,
           (unsigned long long)cs->non_http_flows, (unsigned long long)cs->gaps,
           (unsigned long long)cs->gap_bytes, (unsigned long long)cs->decode_errors,
           (unsigned long long)cs->bound_drops);
  st->detail = detail;
}

static void src_closed(struct src *s);

static void on_cap_handle_closed(uv_handle_t *h) {
  struct src *s = h->data;
  if (--s->cap_handles == 0)
    src_closed(s);
}

static void pcap_close(struct src *s) {
  if (s->cap != NULL)
    kw_capture_flush(s->cap); /* pending requests are stored (status 0 if unanswered) */
  if (s->cap_handles == 0) {
    src_closed(s);
    return;
  }
  uv_close((uv_handle_t *)&s->cap_poll, on_cap_handle_closed);
  if (s->cap_handles > 1)
    uv_close((uv_handle_t *)&s->cap_tick, on_cap_handle_closed);
}

static const struct src_ops pcap_ops = {
    .type = "pcap",
    .start = pcap_start,
    .save = NULL,
    .status = pcap_status,
    .close = pcap_close,
};

/* ---- source lifecycle -------------------------------------------------------------- */

/* What identifies a configured source: changing any of it restarts the source. */
static void signature(const struct kw_source_cfg *c, char *out, size_t len) {
  snprintf(out, len, "%s|%s|%s|%s|%s|%s|%s|%s|%s|%u", c->type, c->path ? c->path : "",
           c->listen ? c->listen : "", c->format ? c->format : "",
           c->log_format ? c->log_format : "", c->escape ? c->escape : "",
           c->start_at ? c->start_at : "", c->interface ? c->interface : "",
           c->bpf ? c->bpf : "", c->snaplen);
}

/* Whether c (NULL: removed) differs from the source whose signature is sig. */
static bool changed(const struct kw_source_cfg *c, const char *sig) {
  char now[1024];
  if (c == NULL)
    return true;
  signature(c, now, sizeof(now));
  return strcmp(now, sig) != 0;
}

static void free_src(struct src *s) {
  kw_format_destroy(&s->fmt);
  kw_tail_destroy(s->tail);
  kw_syslog_destroy(s->sl);
  kw_capture_destroy(s->cap);
  free(s->ts);
  free(s->lag);
  free(s);
}

static void src_closed(struct src *s) {
  struct kw_daemon *d = s->d;
  for (struct src **p = &d->srcs; *p; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  free_src(s);
  maybe_stopped(d);
}

/* Commits what the source fed, then closes it. */
static void close_src(struct src *s) {
  if (s->closing)
    return;
  commit(s->d);
  s->closing = true;
  if (s->started)
    s->ops->close(s);
  else
    src_closed(s);
}

static int add_src(struct kw_daemon *d, const struct kw_source_cfg *c, const char *path,
                   struct group *g, char *err, size_t errlen) {
  struct kw_ingest_cfg ic = d->cfg->ingest;
  struct src *s = calloc(1, sizeof(*s));
  const char *format;
  int r;

  if (s == NULL || (s->ts = malloc(LAG_SAMPLES * sizeof(int64_t))) == NULL ||
      (s->lag = malloc(LAG_WINDOW * sizeof(int64_t))) == NULL) {
    if (s)
      free(s->ts);
    free(s);
    return KW_ENOMEM;
  }
  s->d = d;
  s->group = g;
  s->ops = strcmp(c->type, "syslog") == 0 ? &syslog_ops
           : strcmp(c->type, "pcap") == 0   ? &pcap_ops
                                            : &file_ops;
  s->start_at_end = c->start_at && strcmp(c->start_at, "end") == 0;
  s->status_at = kw_time_now();
  s->lag_p50 = s->lag_p99 = -1;
  snprintf(s->cfg_name, sizeof(s->cfg_name), "%s", c->name);
  if (s->ops == &syslog_ops)
    snprintf(s->name, sizeof(s->name), "syslog %s", c->listen);
  else if (s->ops == &pcap_ops)
    snprintf(s->name, sizeof(s->name), "pcap %s", c->interface);
  else
    snprintf(s->name, sizeof(s->name), "%s", path);
  signature(c, s->sig, sizeof(s->sig));
  /* Per-source format settings override the ingest defaults. */
  if (c->log_format)
    ic.log_format = c->log_format;
  if (c->escape)
    ic.escape = c->escape;
  format = c->format ? c->format : (c->log_format ? "nginx" : ic.format);
  if (s->ops == &pcap_ops)
    format = "keyed"; /* unused: a capture makes records, not lines */
  if (strcmp(format, "auto") == 0) {
    /* A live source cannot wait for lines to guess: say what to configure. */
    snprintf(err, errlen,
             "source '%s': give its format (format: keyed, combined, nginx + log_format, "
             "a JSON preset…); auto-detection is for `keywatch ingest` only", c->name);
    free_src(s);
    return KW_EFORMAT;
  }
  if ((r = kw_format_create(&ic, format, &s->fmt, err, errlen)) != 0 ||
      (r = kw_store_source(d->st, s->name, s->ops->type, s->fmt.name, &s->id)) != 0) {
    if (r == KW_ESTORE)
      snprintf(err, errlen, "source '%s': %s", c->name, kw_store_errmsg(d->st));
    free_src(s);
    return r;
  }
  s->next = d->srcs;
  d->srcs = s;
  if ((r = s->ops->start(s, err, errlen)) != 0) {
    close_src(s);
    return r;
  }
  s->started = true;
  kw_log(d->log, KW_LOG_INFO, "source_started", "source", s->name, "type", s->ops->type,
         "format", s->fmt.name, NULL);
  return 0;
}

static bool is_glob(const char *p) { return strpbrk(p, "*?[") != NULL; }

/* Adds a file source for each new match of a glob. */
static void scan_group(struct group *g) {
  struct kw_daemon *d = g->d;
  glob_t gl;
  char err[512];

  if (g->closing || d->stopping || glob(g->pattern, GLOB_NOSORT, NULL, &gl) != 0)
    return;
  for (size_t i = 0; i < gl.gl_pathc; i++) {
    bool known = false;
    for (struct src *s = d->srcs; s != NULL && !known; s = s->next)
      known = s->group == g && strcmp(s->name, gl.gl_pathv[i]) == 0;
    if (!known && add_src(d, &g->cfg, gl.gl_pathv[i], g, err, sizeof(err)) != 0)
      kw_log(d->log, KW_LOG_WARN, "source_failed", "source", gl.gl_pathv[i], "error", err,
             NULL);
  }
  globfree(&gl);
}

static void on_glob_timer(uv_timer_t *h) {
  struct kw_daemon *d = h->data;
  for (struct group *g = d->groups; g != NULL; g = g->next)
    scan_group(g);
}

static int add_configured(struct kw_daemon *d, const struct kw_source_cfg *c, char *err,
                          size_t errlen) {
  struct group *g;

  if (strcmp(c->type, "file") != 0 || !is_glob(c->path))
    return add_src(d, c, c->path, NULL, err, errlen);
  g = calloc(1, sizeof(*g));
  if (g == NULL)
    return KW_ENOMEM;
  g->d = d;
  g->cfg = *c;
  snprintf(g->cfg_name, sizeof(g->cfg_name), "%s", c->name);
  snprintf(g->pattern, sizeof(g->pattern), "%s", c->path);
  signature(c, g->sig, sizeof(g->sig));
  g->next = d->groups;
  d->groups = g;
  scan_group(g);
  return 0;
}

/* ---- daemon ------------------------------------------------------------------------ */

static void fail(struct kw_daemon *d, int err, const char *what) {
  if (d->err != 0)
    return;
  d->err = err;
  kw_log(d->log, KW_LOG_ERROR, "stopping", "cause", what, "error",
         err == KW_ESTORE ? kw_store_errmsg(d->st) : kw_strerror(err), NULL);
  /* Nothing uncommitted is acknowledged: positions stay at the last commit. */
  kw_daemon_stop(d, d->stop_cb, d->stop_arg);
}

int kw_daemon_create(uv_loop_t *loop, struct kw_config *cfg, const char *config_path,
                     const char *db_path, const struct kw_log *log, struct kw_daemon **out,
                     char *err, size_t errlen) {
  struct kw_daemon *d = calloc(1, sizeof(*d));
  char secret[PATH_MAX + 32], dir[PATH_MAX];
  int r;

  *out = NULL;
  if (d == NULL)
    return KW_ENOMEM;
  d->loop = loop;
  d->log = log;
  d->started_us = kw_time_now();
  snprintf(d->db_path, sizeof(d->db_path), "%s", db_path);
  if (config_path != NULL && (d->config_path = strdup(config_path)) == NULL) {
    free(d);
    return KW_ENOMEM;
  }
  if (cfg->secret_file != NULL) {
    snprintf(secret, sizeof(secret), "%s", cfg->secret_file);
  } else {
    snprintf(dir, sizeof(dir), "%s", db_path);
    snprintf(secret, sizeof(secret), "%s/keywatch.secret", dirname(dir));
  }
  if ((r = kw_fingerprint_create(secret, &d->fp, err, errlen)) != 0 ||
      (r = kw_store_open(db_path, 0, &d->st, err, errlen)) != 0 ||
      (r = kw_pipeline_create(cfg, d->st, d->fp, &d->pipe)) != 0 ||
      (r = kw_pipeline_enable_rules(d->pipe, err, errlen)) != 0) {
    d->cfg = cfg;
    kw_daemon_destroy(d);
    return r;
  }
  d->cfg = cfg;
  kw_pipeline_set_autocommit(d->pipe, false);
  if (strcmp(db_path, ":memory:") != 0)
    kw_store_manual_checkpoints(d->st);
  *out = d;
  return 0;
}

int kw_daemon_start(struct kw_daemon *d, char *err, size_t errlen) {
  int r;
  uv_timer_t *timers[] = {&d->commit_timer,     &d->status_timer,     &d->glob_timer,
                          &d->baseline_timer,   &d->checkpoint_timer, &d->retention_timer};
  uv_timer_cb cbs[] = {on_commit_timer,     on_status_timer,     on_glob_timer,
                       on_baseline_timer,   on_checkpoint_timer, on_retention_timer};
  uint64_t retention_ms = (uint64_t)(d->cfg->retention.interval_us / 1000);
  uint64_t every[] = {d->cfg->run.commit_ms, d->cfg->run.status_ms, GLOB_SCAN_MS, BASELINE_MS,
                      CHECKPOINT_MS, retention_ms};
  uint64_t first[] = {every[0], every[1], every[2], every[3], every[4], RETENTION_FIRST_MS};

  if (d->cfg->sources_count == 0) {
    snprintf(err, errlen, "no sources: give FILEs or declare sources in the config");
    return KW_EINVAL;
  }
  for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
    if ((r = uv_timer_init(d->loop, timers[i])) != 0)
      return r;
    timers[i]->data = d;
    d->timers++;
    d->open_handles++;
    if ((r = uv_timer_start(timers[i], cbs[i], first[i], every[i])) != 0)
      return r;
  }
  if (d->cfg->sinks_count > 0) {
    struct kw_outbox_opts o = {.store = d->st,
                               .log = d->log,
                               .owner_commits = true,
                               .max_pending = d->cfg->retention.outbox_max_pending};
    if ((r = kw_sink_open_all(d->loop, d->cfg, &d->sinks, err, errlen)) != 0)
      return r;
    o.sinks = d->sinks;
    if ((r = kw_outbox_init(d->loop, &o, &d->outbox)) != 0) {
      snprintf(err, errlen, "cannot start alert delivery: %s", kw_strerror(r));
      return r;
    }
  }
  if ((r = start_responder(d, err, errlen)) != 0 || (r = start_reviews(d, err, errlen)) != 0 ||
      (r = start_http(d, err, errlen)) != 0)
    return r;
  for (unsigned i = 0; i < d->cfg->sources_count; i++)
    if ((r = add_configured(d, &d->cfg->sources[i], err, errlen)) != 0)
      return r;
  write_status(d);
  return commit(d);
}

static const struct kw_source_cfg *find_cfg(const struct kw_config *c, const char *name) {
  for (unsigned i = 0; i < c->sources_count; i++)
    if (strcmp(c->sources[i].name, name) == 0)
      return &c->sources[i];
  return NULL;
}

static void on_group_drop(struct kw_daemon *d, struct group *g) {
  g->closing = true;
  for (struct src *s = d->srcs; s != NULL;) {
    struct src *next = s->next;
    if (s->group == g)
      close_src(s);
    s = next;
  }
  for (struct group **p = &d->groups; *p; p = &(*p)->next) {
    if (*p == g) {
      *p = g->next;
      break;
    }
  }
  free(g);
}

int kw_daemon_reload(struct kw_daemon *d) {
  struct kw_config *nc = NULL, *old = d->cfg;
  struct kw_pipeline *np = NULL;
  char err[1024];
  int r;

  if (d->stopping || d->config_path == NULL)
    return 0;
  if ((r = kw_config_load(d->config_path, &nc, err, sizeof(err))) != 0) {
    kw_log(d->log, KW_LOG_ERROR, "reload_failed", "error", err, NULL);
    return r;
  }
  /* The new rules start from the baselines the old ones learned (same rule set). */
  if (kw_pipeline_save_baselines(d->pipe) != 0 || commit(d) != 0 ||
      (r = kw_pipeline_create(nc, d->st, d->fp, &np)) != 0 ||
      (r = kw_pipeline_enable_rules(np, err, sizeof(err))) != 0) {
    if (r != 0)
      kw_log(d->log, KW_LOG_ERROR, "reload_failed", "error", err, NULL);
    kw_pipeline_destroy(np);
    kw_config_destroy(nc);
    return r ? r : d->err;
  }
  /* Sources removed or changed stop; their positions are committed. */
  for (struct src *s = d->srcs; s != NULL;) {
    struct src *next = s->next;
    if (s->group == NULL && changed(find_cfg(nc, s->cfg_name), s->sig))
      close_src(s);
    s = next;
  }
  for (struct group *g = d->groups; g != NULL;) {
    struct group *next = g->next;
    const struct kw_source_cfg *c = find_cfg(nc, g->cfg_name);
    if (changed(c, g->sig))
      on_group_drop(d, g);
    else
      g->cfg = *c; /* the old strings go with the old config */
    g = next;
  }
  kw_pipeline_destroy(d->pipe);
  d->pipe = np;
  d->seen.subjects = 0;
  kw_pipeline_set_autocommit(d->pipe, false);
  d->revocations_seen = 0; /* the new pipeline counts from 0 */
  d->cfg = nc;
  if (d->timers > 0) /* retention: the new interval, and a prune soon */
    uv_timer_start(&d->retention_timer, on_retention_timer, RETENTION_FIRST_MS,
                   (uint64_t)(nc->retention.interval_us / 1000));
  /* Sources added or changed start, from their committed positions. */
  for (unsigned i = 0; i < nc->sources_count; i++) {
    const struct kw_source_cfg *c = &nc->sources[i];
    bool running = false;
    for (struct src *s = d->srcs; s != NULL && !running; s = s->next)
      running = !s->closing && s->group == NULL && strcmp(s->cfg_name, c->name) == 0;
    for (struct group *g = d->groups; g != NULL && !running; g = g->next)
      running = strcmp(g->cfg_name, c->name) == 0;
    if (!running && add_configured(d, c, err, sizeof(err)) != 0)
      kw_log(d->log, KW_LOG_ERROR, "source_failed", "source", c->name, "error", err, NULL);
  }
  /* The responder borrows the configuration: a new one starts on the new file, the old
   * one closes (attempts in flight stay queued and are sent again) and frees old. */
  if (d->responder != NULL) {
    retire_responder(d, old);
    old = NULL;
    if (start_responder(d, err, sizeof(err)) != 0)
      kw_log(d->log, KW_LOG_ERROR, "responder_failed", "error", err, NULL);
  }
  restart_http(d); /* the API copied what it needs (tokens, hosts): it starts from nc */
  stop_reviews(d); /* the scheduler copied what it needs: a new one takes the new file's */
  if (start_reviews(d, err, sizeof(err)) != 0)
    kw_log(d->log, KW_LOG_ERROR, "reviews_failed", "error", err, NULL);
  kw_config_destroy(old);
  if (d->sinks != NULL && kw_sink_reopen_all(d->sinks) != 0)
    kw_log(d->log, KW_LOG_WARN, "sink_reopen_failed", NULL);
  kw_log(d->log, KW_LOG_INFO, "reloaded", "config", d->config_path, NULL);
  return 0;
}

/* Closing alert delivery: the outbox first (it must not find a sink gone mid-pass), then
 * the sinks; one open_handles count is held from the start until the sinks are closed. */
static void on_sinks_closed(void *arg) {
  struct kw_daemon *d = arg;
  d->open_handles--;
  maybe_stopped(d);
}

static void close_sinks(struct kw_daemon *d) {
  struct kw_sinks *set = d->sinks;
  d->sinks = NULL;
  if (set != NULL)
    kw_sink_close_all(set, on_sinks_closed, d);
  else
    on_sinks_closed(d);
}

static void on_outbox_closed(void *arg) {
  struct kw_daemon *d = arg;
  d->outbox = NULL;
  close_sinks(d);
}

static void on_timer_closed(uv_handle_t *h) {
  struct kw_daemon *d = h->data;
  d->open_handles--;
  maybe_stopped(d);
}

static void maybe_stopped(struct kw_daemon *d) {
  if (!d->stopping || d->srcs != NULL || d->open_handles > 0 || d->checkpointing)
    return;
  if (d->stop_cb) {
    void (*cb)(struct kw_daemon *, void *) = d->stop_cb;
    d->stop_cb = NULL;
    cb(d, d->stop_arg);
  }
}

void kw_daemon_stop(struct kw_daemon *d, void (*cb)(struct kw_daemon *d, void *arg),
                    void *arg) {
  uv_timer_t *timers[] = {&d->commit_timer,   &d->status_timer,     &d->glob_timer,
                          &d->baseline_timer, &d->checkpoint_timer, &d->retention_timer};

  if (cb != NULL) {
    d->stop_cb = cb;
    d->stop_arg = arg;
  }
  if (d->stopping)
    return;
  if (d->err == 0) {
    write_status(d);
    if (kw_pipeline_save_baselines(d->pipe) != 0)
      fail(d, KW_ESTORE, "baselines");
    commit(d);
  }
  d->stopping = true;
  while (d->groups != NULL) {
    struct group *g = d->groups;
    d->groups = g->next;
    free(g);
  }
  for (struct src *s = d->srcs; s != NULL;) {
    struct src *next = s->next;
    close_src(s);
    s = next;
  }
  for (int i = 0; i < d->timers; i++)
    uv_close((uv_handle_t *)timers[i], on_timer_closed);
  d->timers = 0;
  if (d->responder != NULL)
    retire_responder(d, NULL);
  stop_reviews(d);
  if (d->httpd != NULL) {
    struct kw_httpd *h = d->httpd;
    d->httpd = NULL;
    kw_httpd_close(h, on_http_closed, d);
  }
  if (d->outbox != NULL || d->sinks != NULL) {
    d->open_handles++;
    if (d->outbox != NULL)
      kw_outbox_close(d->outbox, on_outbox_closed, d);
    else
      close_sinks(d);
  }
  maybe_stopped(d);
}

int kw_daemon_error(const struct kw_daemon *d) { return d->err; }

void kw_daemon_on_stop(struct kw_daemon *d, void (*cb)(struct kw_daemon *d, void *arg),
                       void *arg) {
  d->stop_cb = cb;
  d->stop_arg = arg;
}

int kw_daemon_destroy(struct kw_daemon *d) {
  int r = 0;
  if (d == NULL)
    return 0;
  while (d->srcs != NULL) { /* only when stop was never run */
    struct src *s = d->srcs;
    d->srcs = s->next;
    free_src(s);
  }
  if (d->err == 0 && d->pipe != NULL)
    r = commit(d);
  kw_pipeline_destroy(d->pipe); /* after a failure, the open batch is discarded */
  if (kw_store_close(d->st) != 0 && r == 0)
    r = KW_ESTORE;
  kw_fingerprint_destroy(d->fp);
  kw_config_destroy(d->cfg);
  free(d->sink_names);
  free(d->config_path);
  free(d);
  return r;
}
