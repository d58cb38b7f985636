/* metrics.h — the store as Prometheus metrics (the body of GET /metrics).
 *
 * Everything comes from the database, read on a read-only connection: the metrics are
 * what is stored, so any process that can read the database serves the same numbers, and
 * a restart loses none.  No query scans the calls table: calls come from the per-source
 * rollup by status class (source_classes, kept at each commit), the rest from small tables
 * and indexes.
 *
 * Families (text exposition format 0.0.4; each with # HELP and # TYPE, samples grouped):
 *   keywatch_up                                 gauge    always 1
 *   keywatch_build_info{version}                gauge    always 1
 *   keywatch_calls_total{source,status_class}   counter  status_class "1xx".."5xx",
 *                                                        "none" (no answer seen) for every
 *                                                        source, "other" (non-HTTP status)
 *                                                        only when there are such calls
 *   keywatch_lines_total{source}                counter  lines read
 *   keywatch_malformed_lines_total{source}      counter  lines that were not a call
 *   keywatch_source_lag_seconds{source,quantile}  gauge  quantile "0.5", "0.99"; only
 *                                                        when the daemon measured it
 *   keywatch_source_backlog_bytes{source}       gauge    only sources run by the daemon
 *   keywatch_source_drops_total{source}         counter  UDP receive-buffer drops (syslog)
 *                                                        or pcap drops (capture), as the
 *                                                        daemon stored them; only sources
 *                                                        run by the daemon; starts again
 *                                                        from 0 when the daemon restarts
 *                                                        (a counter reset to Prometheus)
 *   keywatch_source_gaps_total{source}          counter  data lost before it was read
 *   keywatch_keys                               gauge    keys seen in traffic
 *   keywatch_alerts_total{rule,severity}        counter  alerts opened (rows of alerts)
 *   keywatch_alerts_open{severity}              gauge    alerts in state open; every
 *                                                        severity, 0 included
 *   keywatch_revocations{state}                 gauge    revocations by their current
 *                                                        state: rows move between states,
 *                                                        so a count per state goes down as
 *                                                        well as up — a gauge, hence no
 *                                                        _total; every state of
 *                                                        revocations.h, 0 included
 *   keywatch_outbox_backlog                     gauge    sink deliveries pending
 *   keywatch_store_bytes                        gauge    database file + WAL file
 *   keywatch_daemon_heartbeat_timestamp_seconds gauge    last heartbeat of `keywatch run`;
 *                                                        no sample when none ever ran
 * A family without samples still has its # HELP and # TYPE lines.
 *
 * Label values are escaped as the format says (\\ \" \n); bytes that are not valid UTF-8
 * (and NUL) become U+FFFD, since Prometheus rejects a whole scrape for one invalid label.
 * Source names are paths and rule ids come from configuration: both are escaped.
 * Thread: the thread that owns st.
 */
#ifndef KW_METRICS_H
#define KW_METRICS_H

#include <stdio.h>

struct kw_store;

/* The Content-Type of what kw_metrics_write() writes. */
#define KW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Writes the metrics of the store st (a read-only connection to db_path; db_path names
 * the files measured by keywatch_store_bytes — NULL: the connection's own file) to f,
 * read in one transaction (one consistent snapshot).  Borrows st and f.
 * Returns 0, KW_ESTORE, KW_ENOMEM, or KW_EIO when writing to f failed; on an error f holds
 * a partial document, which the caller discards (answer 500). */
int kw_metrics_write(struct kw_store *st, const char *db_path, FILE *f);

#endif
