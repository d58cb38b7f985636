/* metrics.c — the store as Prometheus metrics (see metrics.h).
 *
 * One pass per scrape, inside one read transaction: the sources (with their status row,
 * gap count and calls by status class) are loaded into a small array first, because each
 * metric family must be written as one block and several families are per source; every
 * other family streams straight from its query.  Label text is escaped once per source.
 * Statements are prepared per scrape, like the rest of the read side (store_query.c):
 * a scrape runs every few seconds at most, and the SQL text is fixed, values bound.
 *
 * Cost: every query reads a table that grows with sources, keys, alerts, revocations or
 * outbox rows — none reads the calls.  Thread: the thread that owns the store.
 */
#include "metrics.h"
#include "alerts.h"
#include "err.h"
#include "escape.h"
#include "store.h"
#include "store_int.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef KW_VERSION
#define KW_VERSION "unknown"
#endif

/* Labels of kw_store_status_class()'s classes. */
static const char *const class_label[KW_STATUS_CLASSES] = {
    "none", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
};

/* The states of a revocation (revocations.h), each written even when none is in it. */
static const char *const revocation_states[] = {
    "decided", "queued", "done", "gone", "failed", "suppressed", "dry_run", "expired",
};
#define NSTATES (sizeof(revocation_states) / sizeof(revocation_states[0]))

struct src {
  int64_t id;
  char *label;            /* the escaped name, ready to go between quotes */
  int64_t lines, malformed, gaps;
  bool has_status;        /* the daemon has run it: backlog and drops are known */
  int64_t backlog, drops;
  int64_t lag_us[2];      /* p50, p99; -1 unknown */
  int64_t classes[KW_STATUS_CLASSES];
};

struct out {
  FILE *f;
  sqlite3 *db;
  struct src *v;          /* ordered by id */
  size_t n;
  int err;                /* first error; once set, nothing more is queried */
};

/* ---- text format ----------------------------------------------------------------- */

/* Escapes s (n bytes) as a label value into a new string: \ " and newline as \\ \" \n,
 * invalid UTF-8 and NUL as U+FFFD.  NULL when out of memory. */
static char *escape_label(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  char *out = malloc(3 * n + 1), *o = out; /* U+FFFD: 3 bytes for 1 */
  size_t i = 0, k;

  if (out == NULL)
    return NULL;
  while (i < n) {
    if (s[i] == '\\' || s[i] == '"') {
      *o++ = '\\';
      *o++ = (char)s[i++];
    } else if (s[i] == '\n') {
      *o++ = '\\';
      *o++ = 'n';
      i++;
    } else if (s[i] == 0 || (k = kw_utf8_len(s + i, n - i)) == 0) {
      memcpy(o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    } else {
      memcpy(o, s + i, k);
      o += k;
      i += k;
    }
  }
  *o = '\0';
  return out;
}

static void family(struct out *o, const char *name, const char *type, const char *help) {
  fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* µs (>= 0) as seconds, exactly (no rounding through a double). */
static void put_seconds(FILE *f, int64_t us) {
  fprintf(f, "%" PRId64 ".%06" PRId64, us / 1000000, us % 1000000);
}

/* ---- queries --------------------------------------------------------------------- */

static sqlite3_stmt *prep(struct out *o, const char *sql) {
  sqlite3_stmt *s = NULL;
  if (o->err == 0 && sqlite3_prepare_v2(o->db, sql, -1, &s, NULL) != SQLITE_OK) {
    o->err = KW_ESTORE;
    s = NULL;
  }
  return s;
}

/* Ends a statement's loop: rc is the last sqlite3_step() result. */
static void done(struct out *o, sqlite3_stmt *s, int rc) {
  if (rc != SQLITE_DONE && o->err == 0)
    o->err = KW_ESTORE;
  sqlite3_finalize(s);
}

/* Column 0 of the one row of sql (0 when none); -1 on error. */
static int64_t scalar(struct out *o, const char *sql) {
  sqlite3_stmt *s = prep(o, sql);
  int64_t v = 0;
  int rc;
  if (s == NULL)
    return -1;
  if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    v = sqlite3_column_int64(s, 0);
    rc = sqlite3_step(s);
  }
  done(o, s, rc);
  return o->err ? -1 : v;
}

static int cmp_src(const void *a, const void *b) {
  int64_t x = ((const struct src *)a)->id, y = ((const struct src *)b)->id;
  return (x > y) - (x < y);
}

static int load_sources(struct out *o) {
  sqlite3_stmt *s = prep(o,
      "SELECT s.id, s.name, s.lines, s.malformed, t.source_id IS NOT NULL,"
      " coalesce(t.backlog, 0), coalesce(t.drops, 0), coalesce(t.lag_p50_us, -1),"
      " coalesce(t.lag_p99_us, -1), coalesce(g.n, 0)"
      " FROM sources s LEFT JOIN source_status t ON t.source_id = s.id"
      " LEFT JOIN (SELECT source_id, count(*) AS n FROM gaps GROUP BY source_id) g"
      " ON g.source_id = s.id ORDER BY s.id");
  size_t cap = 0;
  int rc;

  if (s == NULL)
    return o->err;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct src *x;
    if (o->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      struct src *nv = realloc(o->v, ncap * sizeof(*nv));
      if (nv == NULL) {
        o->err = KW_ENOMEM;
        break;
      }
      o->v = nv;
      cap = ncap;
    }
    x = &o->v[o->n];
    *x = (struct src){
        .id = sqlite3_column_int64(s, 0),
        .lines = sqlite3_column_int64(s, 2),
        .malformed = sqlite3_column_int64(s, 3),
        .has_status = sqlite3_column_int(s, 4) != 0,
        .backlog = sqlite3_column_int64(s, 5),
        .drops = sqlite3_column_int64(s, 6),
        .lag_us = {sqlite3_column_int64(s, 7), sqlite3_column_int64(s, 8)},
        .gaps = sqlite3_column_int64(s, 9),
    };
    const char *name = (const char *)sqlite3_column_text(s, 1);
    x->label = escape_label(name ? name : "", (size_t)sqlite3_column_bytes(s, 1));
    if (x->label == NULL) {
      o->err = KW_ENOMEM;
      break;
    }
    o->n++;
  }
  done(o, s, o->err ? SQLITE_DONE : rc);
  if (o->err)
    return o->err;

  s = prep(o, "SELECT source_id, class, calls FROM source_classes");
  if (s == NULL)
    return o->err;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct src key = {.id = sqlite3_column_int64(s, 0)};
    struct src *x = bsearch(&key, o->v, o->n, sizeof(*o->v), cmp_src);
    int k = sqlite3_column_int(s, 1);
    if (x != NULL && k >= 0 && k < KW_STATUS_CLASSES)
      x->classes[k] += sqlite3_column_int64(s, 2);
  }
  done(o, s, rc);
  return o->err;
}

/* ---- families -------------------------------------------------------------------- */

static void per_source(struct out *o) {
  FILE *f = o->f;

  family(o, "keywatch_calls_total", "counter",
         "API calls stored, by source and HTTP status class (none: no answer seen; other:"
         " a status outside 100-599).");
  for (size_t i = 0; i < o->n; i++)
    for (int k = 0; k < KW_STATUS_CLASSES; k++)
      if (k != 6 || o->v[i].classes[k] > 0) /* "other" only when there is any */
        fprintf(f, "keywatch_calls_total{source=\"%s\",status_class=\"%s\"} %" PRId64 "\n",
                o->v[i].label, class_label[k], o->v[i].classes[k]);

  family(o, "keywatch_lines_total", "counter", "Lines read from the source.");
  for (size_t i = 0; i < o->n; i++)
    fprintf(f, "keywatch_lines_total{source=\"%s\"} %" PRId64 "\n", o->v[i].label,
            o->v[i].lines);

  family(o, "keywatch_malformed_lines_total", "counter",
         "Lines of the source that could not be read as a call.");
  for (size_t i = 0; i < o->n; i++)
    fprintf(f, "keywatch_malformed_lines_total{source=\"%s\"} %" PRId64 "\n", o->v[i].label,
            o->v[i].malformed);

  family(o, "keywatch_source_lag_seconds", "gauge",
         "Delay from a call's time to its storage, median and 99th percentile, as keywatch"
         " run last measured it.");
  for (size_t i = 0; i < o->n; i++) {
    static const char *const q[2] = {"0.5", "0.99"};
    for (int k = 0; k < 2; k++) {
      if (o->v[i].lag_us[k] < 0)
        continue;
      fprintf(f, "keywatch_source_lag_seconds{source=\"%s\",quantile=\"%s\"} ", o->v[i].label,
              q[k]);
      put_seconds(f, o->v[i].lag_us[k]);
      fputc('\n', f);
    }
  }

  family(o, "keywatch_source_backlog_bytes", "gauge",
         "Bytes of the source not yet read (sources run by keywatch run).");
  for (size_t i = 0; i < o->n; i++)
    if (o->v[i].has_status)
      fprintf(f, "keywatch_source_backlog_bytes{source=\"%s\"} %" PRId64 "\n", o->v[i].label,
              o->v[i].backlog);

  family(o, "keywatch_source_drops_total", "counter",
         "Messages lost before keywatch could read them: UDP receive-buffer drops (syslog),"
         " packets the capture dropped (pcap); since keywatch run started.");
  for (size_t i = 0; i < o->n; i++)
    if (o->v[i].has_status)
      fprintf(f, "keywatch_source_drops_total{source=\"%s\"} %" PRId64 "\n", o->v[i].label,
              o->v[i].drops);

  family(o, "keywatch_source_gaps_total", "counter",
         "Gaps recorded: data of the source lost before it could be read.");
  for (size_t i = 0; i < o->n; i++)
    fprintf(f, "keywatch_source_gaps_total{source=\"%s\"} %" PRId64 "\n", o->v[i].label,
            o->v[i].gaps);
}

static void alerts(struct out *o) {
  int64_t open[KW_SEV_CRITICAL + 1] = {0};
  sqlite3_stmt *s;
  int rc;

  family(o, "keywatch_alerts_total", "counter", "Alerts opened, by rule and severity.");
  if ((s = prep(o, "SELECT rule, severity, count(*) FROM alerts GROUP BY rule, severity"
                   " ORDER BY rule, severity")) == NULL)
    return;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *rule = (const char *)sqlite3_column_text(s, 0);
    char *label = escape_label(rule ? rule : "", (size_t)sqlite3_column_bytes(s, 0));
    const char *sev = kw_severity_name(sqlite3_column_int(s, 1));
    char num[24];
    if (label == NULL) {
      o->err = KW_ENOMEM;
      rc = SQLITE_DONE;
      break;
    }
    if (sev == NULL) { /* not written by keywatch: shown as stored */
      snprintf(num, sizeof(num), "%d", sqlite3_column_int(s, 1));
      sev = num;
    }
    fprintf(o->f, "keywatch_alerts_total{rule=\"%s\",severity=\"%s\"} %" PRId64 "\n", label,
            sev, (int64_t)sqlite3_column_int64(s, 2));
    free(label);
  }
  done(o, s, rc);

  family(o, "keywatch_alerts_open", "gauge", "Alerts in state open, by severity.");
  if ((s = prep(o, "SELECT severity, count(*) FROM alerts WHERE state = 'open'"
                   " GROUP BY severity")) == NULL)
    return;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    int sev = sqlite3_column_int(s, 0);
    if (sev >= 0 && sev <= KW_SEV_CRITICAL)
      open[sev] = sqlite3_column_int64(s, 1);
  }
  done(o, s, rc);
  for (int i = 0; o->err == 0 && i <= KW_SEV_CRITICAL; i++)
    fprintf(o->f, "keywatch_alerts_open{severity=\"%s\"} %" PRId64 "\n", kw_severity_name(i),
            open[i]);
}

static void revocations(struct out *o) {
  int64_t n[NSTATES] = {0};
  sqlite3_stmt *s;
  int rc;

  family(o, "keywatch_revocations", "gauge",
         "Revocations by their current state (decided, queued, done, gone, failed,"
         " suppressed, dry_run, expired).");
  if ((s = prep(o, "SELECT state, count(*) FROM revocations GROUP BY state ORDER BY state")) ==
      NULL)
    return;
  /* Pass 1 counts the known states (each written, 0 included); pass 2 writes any other. */
  for (int pass = 0; pass < 2 && o->err == 0; pass++) {
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const char *state = (const char *)sqlite3_column_text(s, 0);
      size_t i = 0;
      while (state != NULL && i < NSTATES && strcmp(state, revocation_states[i]) != 0)
        i++;
      if (pass == 0 && i < NSTATES) {
        n[i] = sqlite3_column_int64(s, 1);
      } else if (pass == 1 && i == NSTATES) {
        char *label = escape_label(state ? state : "", (size_t)sqlite3_column_bytes(s, 0));
        if (label == NULL) {
          o->err = KW_ENOMEM;
          rc = SQLITE_DONE;
          break;
        }
        fprintf(o->f, "keywatch_revocations{state=\"%s\"} %" PRId64 "\n", label,
                (int64_t)sqlite3_column_int64(s, 1));
        free(label);
      }
    }
    if (rc != SQLITE_DONE && o->err == 0)
      o->err = KW_ESTORE;
    if (pass == 0 && o->err == 0) {
      for (size_t i = 0; i < NSTATES; i++)
        fprintf(o->f, "keywatch_revocations{state=\"%s\"} %" PRId64 "\n",
                revocation_states[i], n[i]);
      sqlite3_reset(s);
    }
  }
  sqlite3_finalize(s);
}

static int64_t file_size(const char *path, const char *suffix) {
  char p[4096];
  struct stat sb;
  if ((size_t)snprintf(p, sizeof(p), "%s%s", path, suffix) >= sizeof(p) || stat(p, &sb) != 0)
    return 0;
  return (int64_t)sb.st_size;
}

/* How often each resource bound was hit (README "Limits"); names are keywatch's own. */
static void limits(struct out *o) {
  sqlite3_stmt *s;
  int rc;
  family(o, "keywatch_limit_hits_total", "counter",
         "Times a resource bound was hit (input skipped, cut or refused), by bound.");
  if ((s = prep(o, "SELECT name, hits FROM limit_hits ORDER BY name")) == NULL)
    return;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    char *label = escape_label((const char *)sqlite3_column_text(s, 0),
                               (size_t)sqlite3_column_bytes(s, 0));
    if (label == NULL) {
      o->err = KW_ENOMEM;
      break;
    }
    fprintf(o->f, "keywatch_limit_hits_total{limit=\"%s\"} %" PRId64 "\n", label,
            (int64_t)sqlite3_column_int64(s, 1));
    free(label);
  }
  done(o, s, o->err ? SQLITE_DONE : rc);
}

static void store_and_daemon(struct out *o, const char *db_path) {
  int64_t v;

  family(o, "keywatch_keys", "gauge", "API keys seen in traffic.");
  if ((v = scalar(o, "SELECT count(*) FROM keys WHERE calls > 0")) >= 0)
    fprintf(o->f, "keywatch_keys %" PRId64 "\n", v);

  alerts(o);
  revocations(o);

  family(o, "keywatch_outbox_backlog", "gauge", "Alert deliveries to sinks not yet made.");
  if ((v = scalar(o, "SELECT count(*) FROM outbox WHERE state = 'pending'")) >= 0)
    fprintf(o->f, "keywatch_outbox_backlog %" PRId64 "\n", v);

  limits(o);

  family(o, "keywatch_store_bytes", "gauge", "Size of the database file and its WAL file.");
  if (db_path == NULL)
    db_path = sqlite3_db_filename(o->db, "main");
  if (db_path != NULL && db_path[0] != '\0')
    fprintf(o->f, "keywatch_store_bytes %" PRId64 "\n",
            file_size(db_path, "") + file_size(db_path, "-wal"));

  family(o, "keywatch_daemon_heartbeat_timestamp_seconds", "gauge",
         "When keywatch run last wrote its heartbeat (seconds since the epoch).");
  if ((v = scalar(o, "SELECT heartbeat FROM daemon WHERE id = 1")) > 0) {
    fputs("keywatch_daemon_heartbeat_timestamp_seconds ", o->f);
    put_seconds(o->f, v);
    fputc('\n', o->f);
  }
}

int kw_metrics_write(struct kw_store *st, const char *db_path, FILE *f) {
  struct out o = {.f = f, .db = kw__store_db(st)};
  bool own_tx = sqlite3_get_autocommit(o.db) != 0;

  /* one snapshot: a commit between two queries must not make the families disagree */
  if (own_tx && sqlite3_exec(o.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    return KW_ESTORE;
  family(&o, "keywatch_up", "gauge", "1 when keywatch answers.");
  fputs("keywatch_up 1\n", f);
  family(&o, "keywatch_build_info", "gauge", "The version of keywatch, as a label.");
  fputs("keywatch_build_info{version=\"" KW_VERSION "\"} 1\n", f);
  if (load_sources(&o) == 0)
    per_source(&o);
  if (o.err == 0)
    store_and_daemon(&o, db_path);
  if (own_tx && sqlite3_exec(o.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    sqlite3_exec(o.db, "ROLLBACK", NULL, NULL, NULL);
    if (o.err == 0)
      o.err = KW_ESTORE;
  }
  for (size_t i = 0; i < o.n; i++)
    free(o.v[i].label);
  free(o.v);
  if (o.err == 0 && (fflush(f) != 0 || ferror(f)))
    o.err = KW_EIO;
  return o.err;
}
