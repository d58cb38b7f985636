/* outbox.h — delivering alerts from the store's durable outbox to the sinks.
 *
 * kw_store_alert() queues one outbox row per (new alert, sink) in the same transaction as
 * the alert.  A kw_outbox, bound to the loop, reads the rows that are due, renders each
 * alert with kw_alert_json(), hands it to the sink the row names and records the outcome:
 * kw_store_outbox_done() on success, kw_store_outbox_retry() with exponential backoff on
 * failure.  Delivery is at least once: a crash between a sink's acknowledgement and the
 * commit of its mark sends that alert once more, never zero times; once the mark is
 * committed the row is never sent again.
 *
 * Rules it keeps:
 *  - at most one delivery in flight per row, at most max_inflight in all, at most
 *    sink_inflight per healthy sink;
 *  - a row's retries wait backoff_ms × 2^(attempts−1), capped at backoff_max_ms, minus
 *    up to jitter_pct % (1 s, 2 s, 4 s … 5 min);
 *  - a sink that fails is paused for the same schedule (by its consecutive failures) and
 *    then probed with one delivery at a time, so a dead webhook costs one attempt per
 *    backoff step, not one per queued alert; the first success resumes full speed.
 *    A sink also starts out probing, until it has acknowledged one delivery;
 *  - a row for a sink that is not configured (renamed, removed) is retried with backoff
 *    and logged; a row whose alert is below the sink's min_severity is marked done
 *    unsent (counted as skipped); a row whose alert no longer exists is marked done and
 *    logged (counted as dropped).
 *
 * Commits: by default the outbox commits its marks itself (kw_store_commit()), which is
 * right only when nobody else batches writes on the same store connection — a commit
 * ends *every* open batch.  The daemon sets owner_commits and folds the marks into its
 * group commit.
 *
 * Thread: the loop's (it shares the loop thread's kw_store).
 * Lifecycle: kw_outbox_init() → [kw_outbox_kick() / kw_outbox_drain()] →
 * kw_outbox_close(cb) → freed before cb runs.  The store and sinks are borrowed: keep them
 * open until the close callback has run.
 */
#ifndef KW_OUTBOX_H
#define KW_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct kw_log;
struct kw_sinks;
struct kw_store;

struct kw_outbox_opts {
  struct kw_store *store; /* borrowed */
  struct kw_sinks *sinks; /* borrowed */
  const struct kw_log *log; /* borrowed; NULL: silent */
  unsigned interval_ms;    /* due rows are looked for every … (default 200) */
  unsigned max_inflight;   /* deliveries in flight in all (default 32) */
  unsigned sink_inflight;  /* … per healthy sink (default 8) */
  unsigned scan_limit;     /* due rows read per pass (default 1000) */
  unsigned backoff_ms;     /* first retry delay (default 1000) */
  unsigned backoff_max_ms; /* cap (default 300000) */
  unsigned jitter_pct;     /* delays shortened by up to this % (default 20) */
  bool no_jitter;          /* exact delays (tests) */
  bool owner_commits;      /* leave the marks in the open batch for the owner's commit */
  unsigned max_pending;    /* pending deliveries kept; the oldest beyond are given up
                              (state 'overflow', counted); 0: no bound */
};

struct kw_outbox_stats {
  uint64_t delivered; /* rows marked done after a sink acknowledged them */
  uint64_t failed;    /* failed attempts (each scheduled a retry) */
  uint64_t skipped;   /* rows done unsent: alert below the sink's min_severity */
  uint64_t dropped;   /* rows done unsent: their alert is gone */
  uint64_t overflowed; /* rows given up unsent: more than max_pending were pending */
  int64_t backlog;    /* pending rows in the store, all sinks (-1: store error) */
  unsigned inflight;
};

struct kw_outbox;

/* drain: status 0, or KW_ECANCELED when the outbox was closed first; left = pending rows
 * (all sinks) when it ended. */
typedef void (*kw_outbox_drain_cb)(int status, int64_t left, void *arg);
typedef void (*kw_outbox_close_cb)(void *arg);

/* Starts the timer (first pass at once).  Copies opts.  Returns 0 and a new outbox, or
 * KW_EINVAL / KW_ENOMEM. */
int kw_outbox_init(uv_loop_t *loop, const struct kw_outbox_opts *opts, struct kw_outbox **out);

/* Runs a pass at the next loop iteration (after alerts were committed). */
void kw_outbox_kick(struct kw_outbox *ob);

/* One-shot mode (`keywatch ingest`): keeps delivering until nothing is left that could
 * be sent before timeout_ms from now — no row pending, or every pending row waits on a
 * backoff or a paused sink past the deadline, or names an unknown sink — or the timeout
 * passes; then calls cb once with the rows left.  Deliveries still in flight at the
 * deadline count as left and keep running (close the outbox, then the sinks).  The outbox
 * carries on as usual afterwards.  Returns 0, or KW_EINVAL when a drain already runs or
 * the outbox is closing (cb then is never called).  Async contract as everywhere. */
int kw_outbox_drain(struct kw_outbox *ob, uint64_t timeout_ms, kw_outbox_drain_cb cb,
                    void *arg);

void kw_outbox_stats(struct kw_outbox *ob, struct kw_outbox_stats *out);

/* Stops looking for rows, waits for the deliveries in flight (their outcomes are still
 * recorded; close the sinks too to cut them short — cancelled ones stay pending), ends a
 * running drain (KW_ECANCELED), frees ob, then calls cb (never from within close). */
void kw_outbox_close(struct kw_outbox *ob, kw_outbox_close_cb cb, void *arg);

/* The retry delay after the n-th consecutive failure (n >= 1), in ms: base × 2^(n−1),
 * capped at cap, then shortened by (rnd mod 1001)/1000 × jitter_pct %.  Pure. */
uint64_t kw_outbox_backoff_ms(unsigned base_ms, unsigned cap_ms, unsigned jitter_pct,
                              int64_t n, uint64_t rnd);

#endif
