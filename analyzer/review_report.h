/* review_report.h — a review (review.h) as a report: terminal table, Markdown, CSV, JSON,
 * or one self-contained HTML page.
 *
 * Every string in a review may come from traffic or from a key store (key names, groups,
 * endpoint templates): each format escapes it for where it stands —
 *   table     control characters and ANSI escapes neutralised (kw_term_str), cut to width
 *   md        pipes, backslashes, backticks, <, >, & and line breaks escaped in cells
 *   csv       RFC 4180 quoting; a cell starting with = + - @ (or TAB/CR) is prefixed with
 *             ' so a spreadsheet never evaluates it
 *   json      strict JSON (kw_json_str)
 *   html      HTML-escaped text only, no external assets, an inline stylesheet, no script,
 *             and a Content-Security-Policy meta tag (default-src 'none'; style-src
 *             'unsafe-inline') so nothing in it can run or load
 *
 * JSON document (`keywatch review --format json`):
 *   {"generated": T, "since": T, "until": T, "previous": T|null,
 *    "summary": {"keys": N, "findings": {"unused": N, …}},
 *    "changes": {"new_keys": [prefix…], "new_findings": [{key_prefix, finding}…],
 *                "resolved": [{key_prefix, finding}…], "still_open": N} | null,
 *    "keys": [{"key_prefix", "fingerprint", "name", "store", "store_id", "group",
 *              "permission", "created", "first_seen", "last_seen", "calls", "clients",
 *              "grant_known", "granted": [...], "used": [{"scope", "calls", "last_use"}],
 *              "unused": [...], "outside_grant": {"calls", "succeeded", "example"},
 *              "findings": [{"finding", "severity", "text"}],
 *              "recommendation", "why"}]}
 * CSV: one row per key: key_prefix, fingerprint, name, store, group, permission, created,
 * last_seen, calls, granted, used, unused, outside_calls, outside_succeeded, findings,
 * recommendation (lists joined with "; ").
 * Thread: any.
 */
#ifndef KW_REVIEW_REPORT_H
#define KW_REVIEW_REPORT_H

#include "review.h"

#include <stdio.h>

/* What changed since the previous stored review (NULL when there is none). */
struct kw_review_change {
  char key_prefix[KW_PREFIX_MAX + 1];
  enum kw_finding_kind kind;
};

struct kw_review_diff {
  int64_t previous_us;               /* when the previous review was made */
  char (*new_keys)[KW_PREFIX_MAX + 1]; /* keys not in the previous review */
  size_t nnew_keys;
  struct kw_review_change *new_findings, *resolved;
  size_t nnew, nresolved;
  size_t still_open;
};

enum kw_report_format {
  KW_REPORT_TABLE, KW_REPORT_MD, KW_REPORT_CSV, KW_REPORT_JSON, KW_REPORT_HTML
};

/* Parses "table", "md", "csv", "json", "html"; -1 when unknown. */
int kw_report_format_parse(const char *s);

/* Writes the report.  generated_us: when the review was made; diff may be NULL.
 * Returns 0, or -errno when writing failed (ferror). */
int kw_review_write(FILE *f, enum kw_report_format fmt, const struct kw_review *r,
                    const struct kw_review_diff *diff, int64_t generated_us);

#endif
