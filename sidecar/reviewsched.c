/* reviewsched.c — scheduled permission reviews (reviewsched.h).
 *
 * What the worker needs is copied at init (rule pack names, review options, output
 * directory, formats), so a configuration reload never pulls anything from under a
 * running review.  The worker owns its connection and the job; the loop owns the rest.
 */
#include "reviewsched.h"

#include "../analyzer/review.h"
#include "../analyzer/review_report.h"
#include "../analyzer/rules.h"
#include "alerts.h"
#include "cron.h"
#include "err.h"
#include "reviewjob.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WAIT_MS (3600u * 1000) /* re-check the schedule at least hourly */

struct kw_review_sched {
  uv_loop_t *loop;
  struct kw_review_sched_opts o;
  struct kw_cron cron;
  char db_path[PATH_MAX];
  char dir[PATH_MAX];
  char **packs;
  size_t npacks;
  int formats[8];
  size_t nformats;
  char **sinks;
  size_t nsinks;
  bool alerts;
  int64_t period_us, unused_us, dormant_us, max_age_us;
  unsigned max_sources;
  uv_timer_t timer;
  uv_work_t work;
  bool running, closing, timer_closed;
  void (*close_cb)(void *arg);
  void *close_arg;
  struct kw_review_sched_stats stats;
  /* the run in flight (worker → loop) */
  struct kw_review_job *job;
  int err;
  char errmsg[512];
};

static void free_strv(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static char **copy_strv(char *const *v, size_t n) {
  char **c = calloc(n + 1, sizeof(char *));
  for (size_t i = 0; c && i < n; i++)
    if ((c[i] = strdup(v[i])) == NULL) {
      free_strv(c, i);
      return NULL;
    }
  return c;
}

static void schedule(struct kw_review_sched *s);

/* ---- the worker ---------------------------------------------------------------------- */

static int write_report(struct kw_review_sched *s, int fmt, const char *stamp) {
  static const char *const ext[] = {"txt", "md", "csv", "json", "html"};
  char path[PATH_MAX + 64];
  FILE *f;
  int fd, r = 0;
  snprintf(path, sizeof(path), "%s/review-%s.%s", s->dir, stamp, ext[fmt]);
  if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0 ||
      (f = fdopen(fd, "w")) == NULL) {
    r = -errno;
    if (fd >= 0)
      close(fd);
    snprintf(s->errmsg, sizeof(s->errmsg), "cannot write %s: %s", path, strerror(-r));
    return r;
  }
  r = kw_review_write(f, fmt, s->job->review, s->job->has_diff ? &s->job->diff : NULL,
                      s->job->generated_us);
  if (fclose(f) != 0 && r == 0)
    r = -errno;
  if (r != 0)
    snprintf(s->errmsg, sizeof(s->errmsg), "cannot write %s: %s", path, strerror(-r));
  return r;
}

static void do_review(uv_work_t *w) {
  struct kw_review_sched *s = w->data;
  struct kw_store *st = NULL;
  struct kw_ruleset *rs = NULL;
  struct kw_review_opts ro;
  char t[40], stamp[40];

  s->err = 0;
  s->errmsg[0] = '\0';
  kw_review_opts_default(&ro, kw_time_now());
  ro.since_us = ro.until_us - s->period_us;
  ro.unused_us = s->unused_us;
  ro.dormant_us = s->dormant_us;
  ro.max_age_us = s->max_age_us;
  ro.max_sources = s->max_sources;
  if ((s->err = kw_ruleset_load(s->packs, s->npacks, &rs, s->errmsg, sizeof(s->errmsg))) ||
      (s->err = kw_store_open(s->db_path, 0, &st, s->errmsg, sizeof(s->errmsg))) ||
      (s->err = kw_review_job_run(st, rs, &ro, NULL, true, &s->job, s->errmsg,
                                  sizeof(s->errmsg))))
    goto out;
  if (mkdir(s->dir, 0750) != 0 && errno != EEXIST) {
    s->err = -errno;
    snprintf(s->errmsg, sizeof(s->errmsg), "cannot create %s: %s", s->dir, strerror(errno));
    goto out;
  }
  kw_time_format(s->job->generated_us, t, sizeof(t)); /* 2026-11-22T06:00:00.000Z */
  snprintf(stamp, sizeof(stamp), "%.10sT%.2s%.2s", t, t + 11, t + 14);
  for (size_t i = 0; i < s->nformats && s->err == 0; i++)
    s->err = write_report(s, s->formats[i], stamp);
out:
  kw_store_close(st);
  kw_ruleset_destroy(rs);
}

/* ---- back on the loop ---------------------------------------------------------------- */

static void raise_findings(struct kw_review_sched *s) {
  const struct kw_review_row *rows;
  size_t n;
  rows = kw_review_rows(s->job->review, &n);
  for (size_t i = 0; i < n; i++) {
    const struct kw_review_row *w = &rows[i];
    for (size_t f = 0; f < w->nfindings; f++) {
      char rule[64], summary[400], details[256];
      int64_t id;
      bool created;
      snprintf(rule, sizeof(rule), "review.%s", kw_finding_name(w->findings[f].kind));
      snprintf(summary, sizeof(summary), "%s%s%s%s: %s (recommendation: %s)",
               w->prefix ? w->prefix : "?", w->name ? " (" : "", w->name ? w->name : "",
               w->name ? ")" : "", w->findings[f].text, w->recommendation);
      snprintf(details, sizeof(details), "{\"review_id\": %lld, \"finding\": \"%s\"}",
               (long long)s->job->id, kw_finding_name(w->findings[f].kind));
      struct kw_firing fi = {
          .rule = rule,
          .type = "review",
          .severity = w->findings[f].severity,
          .action = "alert",
          .has_key = w->has_fp,
          .ts_us = s->job->generated_us,
          .cooldown_us = s->period_us,
          .summary = summary,
          .details = details,
      };
      memcpy(fi.fp, w->fp, KW_FP_LEN);
      snprintf(fi.prefix, sizeof(fi.prefix), "%s", w->prefix ? w->prefix : "");
      if (kw_store_alert(s->o.store, &fi, 0, (const char *const *)s->sinks, s->nsinks, &id,
                         &created) != 0) {
        kw_log(s->o.log, KW_LOG_ERROR, "review_alert_failed", "rule", rule, NULL);
        return;
      }
    }
  }
  if (s->o.on_alerts)
    s->o.on_alerts(s->o.arg);
}

static void on_timer_closed(uv_handle_t *h) {
  struct kw_review_sched *s = h->data;
  s->timer_closed = true;
  if (s->running)
    return; /* after_review finishes the close */
  void (*cb)(void *) = s->close_cb;
  void *arg = s->close_arg;
  free_strv(s->packs, s->npacks);
  free_strv(s->sinks, s->nsinks);
  free(s);
  if (cb)
    cb(arg);
}

static void after_review(uv_work_t *w, int status) {
  struct kw_review_sched *s = w->data;
  char n[24];
  s->running = false;
  s->stats.last_us = kw_time_now();
  if (status == 0 && s->err == 0 && !s->closing) {
    size_t rows;
    kw_review_rows(s->job->review, &rows);
    snprintf(n, sizeof(n), "%zu", rows);
    s->stats.runs++;
    kw_log(s->o.log, KW_LOG_INFO, "review_done", "keys", n, "dir", s->dir, NULL);
    if (s->alerts)
      raise_findings(s);
  } else if (!s->closing) {
    s->stats.failures++;
    kw_log(s->o.log, KW_LOG_ERROR, "review_failed", "error",
           s->errmsg[0] ? s->errmsg : kw_strerror(s->err), NULL);
  }
  kw_review_job_free(s->job);
  s->job = NULL;
  if (s->closing) {
    if (s->timer_closed)
      on_timer_closed((uv_handle_t *)&s->timer);
    return;
  }
  schedule(s);
}

static void run_now(struct kw_review_sched *s) {
  if (s->running || s->closing)
    return;
  s->running = true;
  s->work.data = s;
  if (uv_queue_work(s->loop, &s->work, do_review, after_review) != 0) {
    s->running = false;
    s->stats.failures++;
    schedule(s);
  }
}

static void on_timer(uv_timer_t *t) {
  struct kw_review_sched *s = t->data;
  if (kw_time_now() + 500000 >= s->stats.next_us)
    run_now(s);
  else
    schedule(s); /* woke early to re-check (MAX_WAIT_MS) */
}

static void schedule(struct kw_review_sched *s) {
  int64_t now = kw_time_now(), next = kw_cron_next(&s->cron, now);
  uint64_t wait;
  if (next < 0) {
    kw_log(s->o.log, KW_LOG_WARN, "review_never", "why", "the schedule matches no time", NULL);
    s->stats.next_us = 0;
    return;
  }
  s->stats.next_us = next;
  wait = (uint64_t)((next - now) / 1000);
  uv_timer_start(&s->timer, on_timer, wait < MAX_WAIT_MS ? wait : MAX_WAIT_MS, 0);
}

void kw_review_sched_now(struct kw_review_sched *s) { run_now(s); }

void kw_review_sched_stats(const struct kw_review_sched *s, struct kw_review_sched_stats *out) {
  *out = s->stats;
}

int kw_review_sched_init(uv_loop_t *loop, const struct kw_review_sched_opts *o,
                         struct kw_review_sched **out, char *err, size_t errlen) {
  const struct kw_config *cfg = o->cfg;
  const struct kw_review_cfg *rc = &cfg->review;
  struct kw_review_sched *s = calloc(1, sizeof(*s));
  char tmp[PATH_MAX];

  *out = NULL;
  if (s == NULL)
    return KW_ENOMEM;
  s->loop = loop;
  s->o = *o;
  s->o.cfg = NULL; /* copied below; never kept */
  if (kw_cron_parse(rc->schedule, &s->cron, err, errlen) != 0) {
    free(s);
    return KW_ECONFIG;
  }
  snprintf(s->db_path, sizeof(s->db_path), "%s", o->db_path);
  if (rc->output_dir) {
    snprintf(s->dir, sizeof(s->dir), "%s", rc->output_dir);
  } else {
    snprintf(tmp, sizeof(tmp), "%s", o->db_path);
    snprintf(s->dir, sizeof(s->dir), "%s/reviews", dirname(tmp));
  }
  for (unsigned i = 0; i < rc->formats_count && s->nformats < 8; i++)
    s->formats[s->nformats++] = kw_report_format_parse(rc->formats[i]);
  s->alerts = rc->alerts == NULL || *rc->alerts;
  s->period_us = rc->period_us, s->unused_us = rc->unused_us, s->dormant_us = rc->dormant_us;
  s->max_age_us = rc->max_age_us, s->max_sources = rc->max_sources;
  s->npacks = cfg->rules_count;
  s->nsinks = cfg->sinks_count;
  if ((s->packs = copy_strv(cfg->rules, cfg->rules_count)) == NULL ||
      (s->sinks = calloc(cfg->sinks_count + 1, sizeof(char *))) == NULL) {
    free_strv(s->packs, s->npacks);
    free(s);
    return KW_ENOMEM;
  }
  for (unsigned i = 0; i < cfg->sinks_count; i++)
    if ((s->sinks[i] = strdup(cfg->sinks[i].name)) == NULL) {
      free_strv(s->packs, s->npacks);
      free_strv(s->sinks, s->nsinks);
      free(s);
      return KW_ENOMEM;
    }
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  schedule(s);
  *out = s;
  return 0;
}

void kw_review_sched_close(struct kw_review_sched *s, void (*cb)(void *arg), void *arg) {
  if (s == NULL) {
    if (cb)
      cb(arg);
    return;
  }
  s->closing = true;
  s->close_cb = cb;
  s->close_arg = arg;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
