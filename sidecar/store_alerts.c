/* store_alerts.c — alerts, their sample calls and the outbox in the store (alerts.h).
 *
 * Firings are rare next to calls (the analyzer groups them in memory by cooldown first),
 * so statements here are prepared per use; every value is bound.
 */
#include "alerts.h"
#include "err.h"
#include "escape.h"
#include "fingerprint.h"
#include "store_int.h"
#include "timeutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMPLES 20

#define run1 kw__store_run1

static const char *const severities[] = {"info", "low", "medium", "high", "critical"};

const char *kw_severity_name(int sev) {
  return sev >= 0 && sev <= KW_SEV_CRITICAL ? severities[sev] : NULL;
}

int kw_severity_parse(const char *s) {
  for (int i = 0; i <= KW_SEV_CRITICAL; i++)
    if (s != NULL && strcmp(s, severities[i]) == 0)
      return i;
  return -1;
}

int kw__store_run1(sqlite3 *db, const char *sql, const char *fmt, int64_t *out, ...) {
  sqlite3_stmt *s;
  va_list ap;
  int rc;

  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  va_start(ap, out);
  for (int i = 0; fmt[i]; i++) {
    switch (fmt[i]) {
    case 'i': sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t)); break;
    case 'n': {
      int64_t v = va_arg(ap, int64_t);
      if (v >= 0)
        sqlite3_bind_int64(s, i + 1, v);
      else
        sqlite3_bind_null(s, i + 1);
      break;
    }
    case 't': {
      const char *t = va_arg(ap, const char *);
      if (t)
        sqlite3_bind_text(s, i + 1, t, -1, SQLITE_TRANSIENT);
      else
        sqlite3_bind_null(s, i + 1);
      break;
    }
    case 'b': {
      const uint8_t *b = va_arg(ap, const uint8_t *);
      if (b)
        sqlite3_bind_blob(s, i + 1, b, KW_FP_LEN, SQLITE_TRANSIENT);
      else
        sqlite3_bind_null(s, i + 1);
      break;
    }
    }
  }
  va_end(ap);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW && out != NULL)
    *out = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : KW_ESTORE;
}

int64_t kw_store_last_call(struct kw_store *st) {
  return sqlite3_last_insert_rowid(kw__store_db(st));
}

int kw_store_alert(struct kw_store *st, const struct kw_firing *f, int64_t sample_call,
                   const char *const *sinks, size_t nsinks, int64_t *id, bool *created) {
  sqlite3 *db = kw__store_db(st);
  int64_t key = f->has_key ? kw__store_key_id(st, f->fp) : -1, now = kw_time_now(), n = 0;
  int r;

  *created = false;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  /* The open alert of this rule and key, if it was seen within the cooldown. */
  r = run1(db,
           "SELECT id FROM alerts WHERE rule = ?1 AND key_id IS ?2 AND state != 'resolved'"
           " AND last_seen >= ?3 ORDER BY last_seen DESC LIMIT 1",
           "tni", id, f->rule, key, f->ts_us - f->cooldown_us);
  if (r < 0)
    return r;
  if (r == 0) {
    r = run1(db,
             "UPDATE alerts SET count = count + 1, last_seen = max(last_seen, ?2),"
             " first_seen = min(first_seen, ?2), summary = ?3, details = ?4, updated = ?5"
             " WHERE id = ?1",
             "iitti", NULL, *id, f->ts_us, f->summary, f->details, now);
  } else {
    r = run1(db,
             "INSERT INTO alerts(rule, type, severity, action, key_id, first_seen, last_seen,"
             " summary, details, created, updated) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8,"
             " ?9, ?9) RETURNING id",
             "ttitnitti", id, f->rule, f->type, (int64_t)f->severity, f->action, key, f->ts_us,
             f->summary, f->details, now);
    *created = true;
    /* action: revoke is recorded as a decision for the responder, which applies its
     * safeguards once this batch is committed (revocations.h). */
    if (r >= 0 && strcmp(f->action, "revoke") == 0) {
      char by[160];
      snprintf(by, sizeof(by), "rule:%s", f->rule);
      r = run1(db,
               "INSERT INTO revocations(alert_id, key_id, rule, severity, origin, decided_by,"
               " reason, decided, event_ts, updated)"
               " VALUES(?1, ?2, ?3, ?4, 'rule', ?5, ?6, ?7, ?8, ?7)",
               "intittii", NULL, *id, key, f->rule, (int64_t)f->severity, by, f->summary, now,
               f->ts_us);
    }
    for (size_t i = 0; i < nsinks && r >= 0; i++)
      r = run1(db,
               "INSERT INTO outbox(alert_id, sink, event, next_try) VALUES(?1, ?2, 'new', ?3)",
               "iti", NULL, *id, sinks[i], now);
  }
  if (r < 0)
    return r;
  if (sample_call > 0) {
    r = run1(db, "SELECT count(*) FROM alert_calls WHERE alert_id = ?1", "i", &n, *id);
    if (r == 0 && n < MAX_SAMPLES)
      r = run1(db, "INSERT OR IGNORE INTO alert_calls(alert_id, call_id) VALUES(?1, ?2)", "ii",
               NULL, *id, sample_call);
  }
  return r < 0 ? r : 0;
}

int kw_store_alert_set_state(struct kw_store *st, int64_t id, const char *state,
                             const char *by, const char *note) {
  sqlite3 *db = kw__store_db(st);
  int r;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  r = run1(db,
           "UPDATE alerts SET state = ?2, state_by = ?3, state_at = ?4,"
           " note = coalesce(?5, note), updated = ?4 WHERE id = ?1 RETURNING id",
           "ittit", NULL, id, state, by, kw_time_now(), note);
  return r == 1 ? KW_ENOTFOUND : r;
}

int kw_store_alerts(struct kw_store *st, const struct kw_alerts_query *q,
                    int (*cb)(const struct kw_alert_row *a, void *ctx), void *ctx) {
  static const char sql[] =
      "SELECT a.id, a.rule, a.type, a.action, a.state, a.severity, k.prefix, k.name,"
      " k.fingerprint, a.first_seen, a.last_seen, a.count, a.summary, a.details, a.state_by,"
      " a.note, a.state_at FROM alerts a LEFT JOIN keys k ON k.id = a.key_id"
      " WHERE (?1 IS NULL OR a.state = ?1) AND a.severity >= ?2"
      " AND (?3 IS NULL OR substr(k.prefix, 1, length(?3)) = ?3"
      "      OR lower(hex(k.fingerprint)) = lower(?3))"
      " AND (?4 IS NULL OR a.rule = ?4) AND a.last_seen >= ?5 AND (?6 = 0 OR a.id = ?6)"
      " AND (?8 = 0 OR a.last_seen < ?9 OR (a.last_seen = ?9 AND a.id < ?8))"
      " ORDER BY a.last_seen DESC, a.id DESC LIMIT ?7";
  sqlite3_stmt *s;
  int rc, r = 0;

  if (sqlite3_prepare_v2(kw__store_db(st), sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  if (q->state)
    sqlite3_bind_text(s, 1, q->state, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, q->min_severity);
  if (q->key)
    sqlite3_bind_text(s, 3, q->key, -1, SQLITE_STATIC);
  if (q->rule)
    sqlite3_bind_text(s, 4, q->rule, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 5, q->since_us);
  sqlite3_bind_int64(s, 6, q->id);
  sqlite3_bind_int64(s, 7, q->limit > 0 ? q->limit : -1);
  sqlite3_bind_int64(s, 8, q->before_id);
  sqlite3_bind_int64(s, 9, q->before_us);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_alert_row a = {
        .id = sqlite3_column_int64(s, 0),
        .rule = (const char *)sqlite3_column_text(s, 1),
        .type = (const char *)sqlite3_column_text(s, 2),
        .action = (const char *)sqlite3_column_text(s, 3),
        .state = (const char *)sqlite3_column_text(s, 4),
        .severity = sqlite3_column_int(s, 5),
        .prefix = (const char *)sqlite3_column_text(s, 6),
        .name = (const char *)sqlite3_column_text(s, 7),
        .fp = sqlite3_column_bytes(s, 8) == KW_FP_LEN ? sqlite3_column_blob(s, 8) : NULL,
        .first_us = sqlite3_column_int64(s, 9),
        .last_us = sqlite3_column_int64(s, 10),
        .count = sqlite3_column_int64(s, 11),
        .summary = (const char *)sqlite3_column_text(s, 12),
        .details = (const char *)sqlite3_column_text(s, 13),
        .state_by = (const char *)sqlite3_column_text(s, 14),
        .note = (const char *)sqlite3_column_text(s, 15),
        .state_at_us = sqlite3_column_int64(s, 16),
    };
    if (cb(&a, ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_alert_calls(struct kw_store *st, int64_t alert_id, int64_t limit,
                         int (*cb)(const struct kw_call_row *row, void *ctx), void *ctx) {
  static const char sql[] =
      "SELECT c.ts, k.prefix, k.fingerprint, cl.addr, e.method, c.path, e.template, a.value,"
      " h.value, s.name, c.status, c.resp_bytes, c.req_bytes, c.latency_us"
      " FROM alert_calls x JOIN calls c ON c.id = x.call_id"
      " JOIN endpoints e ON e.id = c.endpoint_id LEFT JOIN keys k ON k.id = c.key_id"
      " LEFT JOIN clients cl ON cl.id = c.client_id LEFT JOIN agents a ON a.id = c.agent_id"
      " LEFT JOIN hosts h ON h.id = c.host_id LEFT JOIN sources s ON s.id = c.source_id"
      " WHERE x.alert_id = ?1 ORDER BY c.ts, c.id LIMIT ?2";
  sqlite3_stmt *s;
  int rc, r = 0;

  if (sqlite3_prepare_v2(kw__store_db(st), sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, alert_id);
  sqlite3_bind_int64(s, 2, limit > 0 ? limit : -1);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_call_row row;
    kw__store_call_row(s, &row);
    if (cb(&row, ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

void kw_alert_json(FILE *f, const struct kw_alert_row *a) {
  char t1[40], t2[40], hex[2 * KW_FP_LEN + 1];
  fprintf(f, "{\"id\": %lld, \"rule\": ", (long long)a->id);
  kw_json_cstr(f, a->rule);
  fputs(", \"type\": ", f);
  kw_json_cstr(f, a->type);
  fputs(", \"severity\": ", f);
  kw_json_cstr(f, kw_severity_name(a->severity));
  fputs(", \"action\": ", f);
  kw_json_cstr(f, a->action);
  fputs(", \"state\": ", f);
  kw_json_cstr(f, a->state);
  fputs(", \"key_prefix\": ", f);
  kw_json_cstr(f, a->prefix);
  fputs(", \"fingerprint\": ", f);
  if (a->fp)
    fprintf(f, "\"%s\"", kw_fingerprint_hex(a->fp, hex));
  else
    fputs("null", f);
  fputs(", \"name\": ", f);
  kw_json_cstr(f, a->name);
  fprintf(f, ", \"first_seen\": \"%s\", \"last_seen\": \"%s\", \"count\": %lld, \"summary\": ",
          kw_time_format(a->first_us, t1, sizeof(t1)), kw_time_format(a->last_us, t2, sizeof(t2)),
          (long long)a->count);
  kw_json_cstr(f, a->summary);
  /* details is a JSON object the analyzer wrote with kw_json_* (escaped at the source). */
  fprintf(f, ", \"details\": %s", a->details && a->details[0] == '{' ? a->details : "{}");
  if (a->state_by != NULL) {
    fputs(", \"state_by\": ", f);
    kw_json_cstr(f, a->state_by);
    fprintf(f, ", \"state_at\": \"%s\", \"note\": ", kw_time_format(a->state_at_us, t1, sizeof(t1)));
    kw_json_cstr(f, a->note);
  }
  fputc('}', f);
}

int kw_store_outbox_due(struct kw_store *st, int64_t now_us, int64_t limit,
                        int (*cb)(const struct kw_outbox_row *row, void *ctx), void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT id, alert_id, sink, event, attempts FROM outbox"
                         " WHERE state = 'pending' AND next_try <= ?1 ORDER BY id LIMIT ?2",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, now_us);
  sqlite3_bind_int64(s, 2, limit > 0 ? limit : -1);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_outbox_row row = {
        .id = sqlite3_column_int64(s, 0),
        .alert_id = sqlite3_column_int64(s, 1),
        .sink = (const char *)sqlite3_column_text(s, 2),
        .event = (const char *)sqlite3_column_text(s, 3),
        .attempts = sqlite3_column_int64(s, 4),
    };
    if (cb(&row, ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_outbox_done(struct kw_store *st, int64_t id) {
  int r = kw__store_begin(st);
  if (r == 0)
    r = run1(kw__store_db(st),
             "UPDATE outbox SET state = 'delivered', delivered = ?2, attempts = attempts + 1"
             " WHERE id = ?1",
             "ii", NULL, id, kw_time_now());
  return r < 0 ? r : 0;
}

int kw_store_outbox_retry(struct kw_store *st, int64_t id, int64_t next_try_us,
                          const char *error) {
  int r = kw__store_begin(st);
  if (r == 0)
    r = run1(kw__store_db(st),
             "UPDATE outbox SET attempts = attempts + 1, next_try = ?2, last_error = ?3"
             " WHERE id = ?1",
             "iit", NULL, id, next_try_us, error);
  return r < 0 ? r : 0;
}

int64_t kw_store_outbox_trim(struct kw_store *st, int64_t max_pending) {
  int64_t n = kw_store_outbox_backlog(st);
  char why[96];
  if (n < 0)
    return KW_ESTORE;
  if (n <= max_pending)
    return 0;
  if (kw__store_begin(st) != 0)
    return KW_ESTORE;
  snprintf(why, sizeof(why), "not delivered: more than %lld deliveries were pending",
           (long long)max_pending);
  if (run1(kw__store_db(st),
           "UPDATE outbox SET state = 'overflow', last_error = ?2 WHERE id IN"
           " (SELECT id FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?1)",
           "it", NULL, n - max_pending, why) < 0)
    return KW_ESTORE;
  n = sqlite3_changes(kw__store_db(st));
  return kw_store_add_limit_hits(st, "outbox_pending", n) == 0 ? n : KW_ESTORE;
}

int64_t kw_store_outbox_backlog(struct kw_store *st) {
  int64_t n = 0;
  if (run1(kw__store_db(st), "SELECT count(*) FROM outbox WHERE state = 'pending'", "", &n) < 0)
    return -1;
  return n;
}

int kw_store_baseline_save(struct kw_store *st, const uint8_t *fp, const void *blob,
                           size_t len) {
  int64_t key = kw__store_key_id(st, fp);
  sqlite3_stmt *s;
  int r;

  if (key < 0)
    return 0; /* a key never stored (its calls were rolled back): nothing to keep */
  if ((r = kw__store_begin(st)) != 0)
    return r;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "INSERT INTO baselines(key_id, data, updated) VALUES(?1, ?2, ?3)"
                         " ON CONFLICT(key_id) DO UPDATE SET data = ?2, updated = ?3",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, key);
  sqlite3_bind_blob(s, 2, blob, (int)len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, kw_time_now());
  r = sqlite3_step(s) == SQLITE_DONE ? 0 : KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_baselines(struct kw_store *st,
                       int (*cb)(const void *blob, size_t len, void *ctx), void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st), "SELECT data FROM baselines", -1, &s, NULL) !=
      SQLITE_OK)
    return KW_ESTORE;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (cb(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), ctx) != 0)
      break;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}
