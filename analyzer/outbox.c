/* outbox.c — the outbox driver (see outbox.h for the rules it keeps).
 *
 * One pass (on the timer, or kicked):
 *   1. read up to scan_limit due rows (copied out: the store is not written while its
 *      SELECT steps);
 *   2. for each row not in flight, whose sink exists, is not paused and has room:
 *      load the alert (kw_store_alerts with .id), render its JSON (open_memstream +
 *      kw_alert_json), kw_sink_send() it into a free slot;
 *   3. commit the marks made on the way (unknown sink, below min_severity, vanished),
 *      unless the owner commits.
 * A completion (on_sent) frees its slot, marks the row and, when the pass left work for
 * lack of room, kicks the next pass.
 *
 * Per-sink state:
 *   start ──► probing (1 at a time) ──success──► healthy (sink_inflight at a time)
 *                 ▲    └──failure──► paused until now + backoff(failures)   │
 *                 └──────── pause over ─────────┘ ◄──────── failure ────────┘
 * A sink starts probing: one that is down at start costs one attempt, not a wave.
 *
 * Invariants: a row id is in at most one used slot; inflight == used slots == Σ per-sink
 * inflight; every slot handed to kw_sink_send() is called back exactly once (sink
 * contract), and close waits for all of them before freeing.
 *
 * Times: next_try and pauses are wall-clock µs (the store's clock, kw_time_now()); timers
 * are loop time.
 * Thread: the loop's.
 */
#include "outbox.h"

#include "analyzer/sink.h"
#include "sidecar/alerts.h"
#include "sidecar/err.h"
#include "sidecar/log.h"
#include "sidecar/store.h"
#include "sidecar/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000LL

struct slot {
  struct kw_outbox *ob;
  int64_t row_id;
  int64_t alert_id;
  int64_t attempts; /* before this one */
  size_t sink;
  bool used;
};

struct sink_state {
  bool proven;          /* has acknowledged a delivery since start */
  unsigned failures;    /* consecutive */
  int64_t paused_until; /* wall µs; 0: not paused */
  unsigned inflight;
};

struct due {
  int64_t id, alert_id, attempts;
  char sink[64];
  bool sink_ok; /* the name fitted in sink[] */
};

struct kw_outbox {
  uv_loop_t *loop;
  struct kw_outbox_opts o;
  uv_timer_t timer, drain_timer;
  struct slot *slots;
  unsigned inflight;
  struct sink_state *ss;
  size_t nsinks;
  struct due *due;
  size_t ndue;
  uint64_t rng;
  struct kw_outbox_stats st;
  bool more;       /* the last pass left rows for lack of room */
  bool draining;
  int64_t drain_deadline;
  kw_outbox_drain_cb drain_cb;
  void *drain_arg;
  bool closing;
  unsigned refs;   /* timer handles not yet closed */
  kw_outbox_close_cb close_cb;
  void *close_arg;
};

/* ---- helpers -------------------------------------------------------------------------- */

uint64_t kw_outbox_backoff_ms(unsigned base_ms, unsigned cap_ms, unsigned jitter_pct,
                              int64_t n, uint64_t rnd) {
  uint64_t d = base_ms;
  for (int64_t i = 1; i < n && d < cap_ms; i++)
    d *= 2;
  if (d > cap_ms)
    d = cap_ms;
  if (jitter_pct > 100)
    jitter_pct = 100;
  return d - d * jitter_pct / 100 * (rnd % 1001) / 1000;
}

static uint64_t next_rand(struct kw_outbox *ob) {
  /* xorshift64*: enough to spread retries of many keywatch instances apart */
  ob->rng ^= ob->rng >> 12;
  ob->rng ^= ob->rng << 25;
  ob->rng ^= ob->rng >> 27;
  return ob->rng * 0x2545F4914F6CDD1DULL;
}

static int64_t backoff_us(struct kw_outbox *ob, int64_t n) {
  return (int64_t)kw_outbox_backoff_ms(ob->o.backoff_ms, ob->o.backoff_max_ms,
                                       ob->o.no_jitter ? 0 : ob->o.jitter_pct, n,
                                       next_rand(ob)) *
         MS;
}

static void commit(struct kw_outbox *ob) {
  int r;
  if (ob->o.owner_commits)
    return;
  if ((r = kw_store_commit(ob->o.store)) != 0)
    kw_log(ob->o.log, KW_LOG_ERROR, "outbox_commit_failed", "error", kw_strerror(r), "detail",
           kw_store_errmsg(ob->o.store), NULL);
}

static void fmt_i64(char *buf, size_t len, int64_t v) {
  snprintf(buf, len, "%lld", (long long)v);
}

/* Schedules row's retry after its attempts+1-th failure, and logs it. */
static void mark_retry(struct kw_outbox *ob, int64_t row_id, int64_t alert_id,
                       int64_t attempts, const char *sink, const char *reason) {
  int64_t delay = backoff_us(ob, attempts + 1);
  char id[24], att[24], in[32];
  int r = kw_store_outbox_retry(ob->o.store, row_id, kw_time_now() + delay, reason);
  ob->st.failed++;
  fmt_i64(id, sizeof(id), alert_id);
  fmt_i64(att, sizeof(att), attempts + 1);
  snprintf(in, sizeof(in), "%.1fs", (double)delay / 1e6);
  kw_log(ob->o.log, KW_LOG_WARN, "alert_delivery_failed", "sink", sink, "alert", id, "attempt",
         att, "retry_in", in, "reason", reason, NULL);
  if (r != 0)
    kw_log(ob->o.log, KW_LOG_ERROR, "outbox_mark_failed", "error", kw_strerror(r), NULL);
}

static void mark_done(struct kw_outbox *ob, int64_t row_id) {
  int r = kw_store_outbox_done(ob->o.store, row_id);
  if (r != 0)
    kw_log(ob->o.log, KW_LOG_ERROR, "outbox_mark_failed", "error", kw_strerror(r), NULL);
}

/* A failure pauses the sink.  Failures of deliveries that were in flight together count
 * once: the first pauses, the others find it paused already (else 8 concurrent refusals
 * would jump the pause straight to 2^8 steps). */
static void sink_failed(struct kw_outbox *ob, size_t i) {
  struct sink_state *s = &ob->ss[i];
  int64_t now = kw_time_now();
  if (s->paused_until > now)
    return;
  s->failures++;
  s->paused_until = now + backoff_us(ob, s->failures);
}

static void sink_ok(struct kw_outbox *ob, size_t i) {
  ob->ss[i].proven = true;
  ob->ss[i].failures = 0;
  ob->ss[i].paused_until = 0;
}

/* ---- drain ---------------------------------------------------------------------------- */

static void end_drain(struct kw_outbox *ob, int status) {
  kw_outbox_drain_cb cb = ob->drain_cb;
  void *arg = ob->drain_arg;
  if (!ob->draining)
    return;
  ob->draining = false;
  if (!ob->closing)
    uv_timer_stop(&ob->drain_timer);
  cb(status, kw_store_outbox_backlog(ob->o.store), arg);
}

struct drain_scan {
  struct kw_outbox *ob;
  bool any;
};

static int on_drain_row(const struct kw_outbox_row *row, void *arg) {
  struct drain_scan *d = arg;
  size_t i;
  if (kw_sink_find(d->ob->o.sinks, row->sink, &i) == NULL)
    return 0; /* never deliverable as configured */
  if (d->ob->ss[i].paused_until > d->ob->drain_deadline)
    return 0;
  d->any = true;
  return 1;
}

/* Ends the drain when nothing is in flight and no row could be sent before the deadline. */
static void check_drain(struct kw_outbox *ob) {
  struct drain_scan d = {ob, false};
  if (!ob->draining || ob->inflight > 0)
    return;
  if (kw_store_outbox_due(ob->o.store, ob->drain_deadline, ob->o.scan_limit, on_drain_row,
                          &d) != 0)
    d.any = false; /* a store that cannot answer will not deliver either */
  if (!d.any)
    end_drain(ob, 0);
}

static void on_drain_deadline(uv_timer_t *t) {
  end_drain(t->data, 0);
}

/* ---- delivery ------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t);

void kw_outbox_kick(struct kw_outbox *ob) {
  if (!ob->closing)
    uv_timer_start(&ob->timer, on_tick, 0, ob->o.interval_ms);
}

static void on_timers_closed(uv_handle_t *h) {
  struct kw_outbox *ob = h->data;
  if (--ob->refs > 0)
    return;
  end_drain(ob, KW_ECANCELED); /* a drain still running learns it here, not in close() */
  kw_outbox_close_cb cb = ob->close_cb;
  void *arg = ob->close_arg;
  free(ob->slots);
  free(ob->ss);
  free(ob->due);
  free(ob);
  cb(arg);
}

static void finish_close(struct kw_outbox *ob) {
  ob->refs = 2;
  uv_close((uv_handle_t *)&ob->timer, on_timers_closed);
  uv_close((uv_handle_t *)&ob->drain_timer, on_timers_closed);
}

static void on_sent(int status, const char *reason, void *arg) {
  struct slot *sl = arg;
  struct kw_outbox *ob = sl->ob;
  struct kw_sink *sink = kw_sink_at(ob->o.sinks, sl->sink);
  const char *name = sink ? sink->name : "?";

  sl->used = false;
  ob->inflight--;
  ob->ss[sl->sink].inflight--;
  if (status == KW_ECANCELED) {
    /* the sink was closed: the row stays pending for the next run */
  } else if (status == 0) {
    mark_done(ob, sl->row_id);
    ob->st.delivered++;
    sink_ok(ob, sl->sink);
    commit(ob);
  } else {
    mark_retry(ob, sl->row_id, sl->alert_id, sl->attempts, name,
               reason ? reason : kw_strerror(status));
    sink_failed(ob, sl->sink);
    commit(ob);
  }
  if (ob->closing) {
    if (ob->inflight == 0)
      finish_close(ob);
    return;
  }
  if (ob->more)
    kw_outbox_kick(ob);
  check_drain(ob);
}

static int on_due_row(const struct kw_outbox_row *row, void *arg) {
  struct kw_outbox *ob = arg;
  struct due *d = &ob->due[ob->ndue++];
  d->id = row->id;
  d->alert_id = row->alert_id;
  d->attempts = row->attempts;
  d->sink_ok = snprintf(d->sink, sizeof(d->sink), "%s", row->sink ? row->sink : "") <
               (int)sizeof(d->sink);
  return ob->ndue >= ob->o.scan_limit;
}

struct render {
  char *buf;
  size_t len;
  int severity;
  bool found, failed;
};

static int on_alert(const struct kw_alert_row *a, void *arg) {
  struct render *rd = arg;
  FILE *f = open_memstream(&rd->buf, &rd->len);
  rd->found = true;
  rd->severity = a->severity;
  if (f == NULL) {
    rd->failed = true;
    return 1;
  }
  kw_alert_json(f, a);
  if (fclose(f) != 0)
    rd->failed = true;
  return 1;
}

static bool row_in_flight(const struct kw_outbox *ob, int64_t id) {
  for (unsigned i = 0; i < ob->o.max_inflight; i++)
    if (ob->slots[i].used && ob->slots[i].row_id == id)
      return true;
  return false;
}

static struct slot *free_slot(struct kw_outbox *ob) {
  for (unsigned i = 0; i < ob->o.max_inflight; i++)
    if (!ob->slots[i].used)
      return &ob->slots[i];
  return NULL;
}

/* Sends one due row, or marks it.  Returns 1 when a mark was made, 0 when not, -1 when
 * the store failed (the pass stops). */
static int dispatch(struct kw_outbox *ob, const struct due *d, int64_t now) {
  struct kw_alerts_query q = {.min_severity = -1, .id = d->alert_id};
  struct render rd = {0};
  struct kw_sink *sink;
  struct slot *sl;
  size_t i;
  int r;

  if (row_in_flight(ob, d->id))
    return 0;
  if (!d->sink_ok || (sink = kw_sink_find(ob->o.sinks, d->sink, &i)) == NULL) {
    char reason[128];
    snprintf(reason, sizeof(reason), "no sink named '%s' is configured", d->sink);
    mark_retry(ob, d->id, d->alert_id, d->attempts, d->sink, reason);
    return 1;
  }
  if (ob->ss[i].paused_until > now)
    return 0;
  if (ob->ss[i].inflight >=
      (ob->ss[i].failures || !ob->ss[i].proven ? 1u : ob->o.sink_inflight)) {
    ob->more = true;
    return 0;
  }
  if ((r = kw_store_alerts(ob->o.store, &q, on_alert, &rd)) != 0 || rd.failed) {
    kw_log(ob->o.log, KW_LOG_ERROR, "outbox_load_failed", "error",
           kw_strerror(r ? r : KW_ENOMEM), NULL);
    free(rd.buf);
    return -1;
  }
  if (!rd.found) {
    char id[24];
    fmt_i64(id, sizeof(id), d->alert_id);
    kw_log(ob->o.log, KW_LOG_WARN, "alert_vanished", "sink", sink->name, "alert", id, NULL);
    mark_done(ob, d->id);
    ob->st.dropped++;
    return 1;
  }
  if (!kw_sink_wants(sink, rd.severity)) {
    free(rd.buf);
    mark_done(ob, d->id);
    ob->st.skipped++;
    return 1;
  }
  sl = free_slot(ob);
  *sl = (struct slot){ob, d->id, d->alert_id, d->attempts, i, true};
  r = kw_sink_send(sink, rd.buf, rd.len, rd.severity, on_sent, sl);
  free(rd.buf);
  if (r != 0) {
    sl->used = false;
    mark_retry(ob, d->id, d->alert_id, d->attempts, sink->name, kw_strerror(r));
    sink_failed(ob, i);
    return 1;
  }
  ob->inflight++;
  ob->ss[i].inflight++;
  return 0;
}

/* Gives up the oldest deliveries beyond max_pending; true when rows were marked. */
static bool trim(struct kw_outbox *ob) {
  int64_t n = kw_store_outbox_trim(ob->o.store, ob->o.max_pending);
  char nb[24], max[24];
  if (n == 0)
    return false;
  if (n < 0) {
    kw_log(ob->o.log, KW_LOG_ERROR, "outbox_read_failed", "error", kw_strerror((int)n),
           "detail", kw_store_errmsg(ob->o.store), NULL);
    return false;
  }
  ob->st.overflowed += (uint64_t)n;
  fmt_i64(nb, sizeof(nb), n);
  fmt_i64(max, sizeof(max), ob->o.max_pending);
  kw_log(ob->o.log, KW_LOG_WARN, "outbox_overflow", "given_up", nb, "max_pending", max,
         "why", "sinks are not keeping up; the alerts stay in the database", NULL);
  return true;
}

static void on_tick(uv_timer_t *t) {
  struct kw_outbox *ob = t->data;
  int64_t now = kw_time_now();
  bool marked = false;
  int r;

  if (ob->closing)
    return;
  ob->more = false;
  if (ob->inflight >= ob->o.max_inflight) {
    ob->more = true;
    return;
  }
  if (ob->o.max_pending > 0)
    marked |= trim(ob);
  ob->ndue = 0;
  if ((r = kw_store_outbox_due(ob->o.store, now, ob->o.scan_limit, on_due_row, ob)) != 0) {
    kw_log(ob->o.log, KW_LOG_ERROR, "outbox_read_failed", "error", kw_strerror(r), "detail",
           kw_store_errmsg(ob->o.store), NULL);
    return;
  }
  if (ob->ndue >= ob->o.scan_limit)
    ob->more = true;
  for (size_t k = 0; k < ob->ndue && !ob->closing; k++) {
    if (ob->inflight >= ob->o.max_inflight) {
      ob->more = true;
      break;
    }
    if ((r = dispatch(ob, &ob->due[k], now)) < 0)
      break;
    marked |= r > 0;
  }
  if (marked)
    commit(ob);
  check_drain(ob);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

int kw_outbox_init(uv_loop_t *loop, const struct kw_outbox_opts *opts, struct kw_outbox **out) {
  struct kw_outbox *ob;
  int r = KW_ENOMEM;

  *out = NULL;
  if (opts->store == NULL || opts->sinks == NULL)
    return KW_EINVAL;
  if ((ob = calloc(1, sizeof(*ob))) == NULL)
    return KW_ENOMEM;
  ob->loop = loop;
  ob->o = *opts;
  if (ob->o.interval_ms == 0)
    ob->o.interval_ms = 200;
  if (ob->o.max_inflight == 0)
    ob->o.max_inflight = 32;
  if (ob->o.sink_inflight == 0)
    ob->o.sink_inflight = 8;
  if (ob->o.scan_limit == 0)
    ob->o.scan_limit = 1000;
  if (ob->o.backoff_ms == 0)
    ob->o.backoff_ms = 1000;
  if (ob->o.backoff_max_ms == 0)
    ob->o.backoff_max_ms = 300000;
  if (ob->o.backoff_max_ms < ob->o.backoff_ms)
    ob->o.backoff_max_ms = ob->o.backoff_ms;
  if (ob->o.jitter_pct == 0 && !ob->o.no_jitter)
    ob->o.jitter_pct = 20;
  ob->nsinks = kw_sink_count(opts->sinks);
  if ((ob->slots = calloc(ob->o.max_inflight, sizeof(*ob->slots))) == NULL ||
      (ob->ss = calloc(ob->nsinks ? ob->nsinks : 1, sizeof(*ob->ss))) == NULL ||
      (ob->due = calloc(ob->o.scan_limit, sizeof(*ob->due))) == NULL)
    goto out;
  ob->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)ob ^ 0x9E3779B97F4A7C15ULL;
  if (ob->rng == 0)
    ob->rng = 1;
  uv_timer_init(loop, &ob->timer);
  uv_timer_init(loop, &ob->drain_timer);
  ob->timer.data = ob->drain_timer.data = ob;
  uv_timer_start(&ob->timer, on_tick, 0, ob->o.interval_ms);
  *out = ob;
  ob = NULL;
  r = 0;
out:
  if (ob != NULL) {
    free(ob->slots);
    free(ob->ss);
    free(ob->due);
    free(ob);
  }
  return r;
}

int kw_outbox_drain(struct kw_outbox *ob, uint64_t timeout_ms, kw_outbox_drain_cb cb,
                    void *arg) {
  if (ob->closing || ob->draining || cb == NULL)
    return KW_EINVAL;
  ob->draining = true;
  ob->drain_cb = cb;
  ob->drain_arg = arg;
  ob->drain_deadline = kw_time_now() + (int64_t)timeout_ms * MS;
  uv_timer_start(&ob->drain_timer, on_drain_deadline, timeout_ms, 0);
  kw_outbox_kick(ob); /* the pass checks for the end: never from within this call */
  return 0;
}

void kw_outbox_stats(struct kw_outbox *ob, struct kw_outbox_stats *out) {
  *out = ob->st;
  out->backlog = kw_store_outbox_backlog(ob->o.store);
  out->inflight = ob->inflight;
}

void kw_outbox_close(struct kw_outbox *ob, kw_outbox_close_cb cb, void *arg) {
  if (ob == NULL || ob->closing)
    return;
  ob->closing = true;
  ob->close_cb = cb;
  ob->close_arg = arg;
  uv_timer_stop(&ob->timer);
  uv_timer_stop(&ob->drain_timer);
  if (ob->inflight == 0)
    finish_close(ob);
}
