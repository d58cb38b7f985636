/* reviewsched.h — scheduled permission reviews in `keywatch run`.
 *
 * At each time of review.schedule (cron, UTC) a review runs on the loop's thread pool with
 * its own database connection (the loop keeps ingesting): it is stored (so the next one
 * can show changes), its reports are written to review.output_dir in review.formats as
 * review-YYYY-MM-DDTHHMM.{html,md,csv,json} (mode 0640), and back on the loop each finding
 * becomes an alert (rule "review.<finding>", type review, the finding's severity) queued for
 * the sinks.  A finding still open at the next review updates the same alert (its cooldown
 * is the review period) instead of opening another.
 *
 *   idle ──timer──► running (work on the pool) ──after work──► alerts, next timer ──► idle
 *   close: timer stopped; a running review finishes first (its results are dropped), then
 *          the close callback runs.
 *
 * Thread: the loop's; the review itself on a pool thread with its own connection.
 */
#ifndef KW_REVIEWSCHED_H
#define KW_REVIEWSCHED_H

#include "config.h"
#include "log.h"
#include "store.h"

#include <stdint.h>
#include <uv.h>

struct kw_review_sched;

struct kw_review_sched_opts {
  const char *db_path;
  const struct kw_config *cfg; /* copied: what the review needs is kept by the scheduler */
  struct kw_store *store;      /* the loop's writer, for the alerts */
  const struct kw_log *log;
  void (*on_alerts)(void *arg); /* alerts were added to the open batch */
  void *arg;
};

struct kw_review_sched_stats {
  uint64_t runs, failures;
  int64_t next_us, last_us; /* 0: none */
};

/* Starts the schedule (cfg->review.schedule must be set).  Returns 0 or KW_ENOMEM /
 * KW_ECONFIG (err set). */
int kw_review_sched_init(uv_loop_t *loop, const struct kw_review_sched_opts *o,
                         struct kw_review_sched **out, char *err, size_t errlen);

void kw_review_sched_stats(const struct kw_review_sched *s, struct kw_review_sched_stats *out);

/* Runs a review now (as if the schedule fired), unless one is running. */
void kw_review_sched_now(struct kw_review_sched *s);

/* cb(arg) once closed (after a running review has finished).  NULL: cb at once. */
void kw_review_sched_close(struct kw_review_sched *s, void (*cb)(void *arg), void *arg);

#endif
