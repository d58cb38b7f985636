/* review_report.c — a least-privilege review (review.h) written as a terminal table,
 * Markdown, CSV, JSON or one self-contained HTML page.
 *
 * Every string of a row (key name, store, group, permission, endpoint templates, finding
 * texts, the recommendation) may come from traffic or from a key store, so no string
 * reaches the output except through the escaper of its format:
 *
 *   table  kw_term_str        controls and invalid bytes as visible \xHH, cut to width
 *   md     md_text            \ | ` * _ [ ] ~ escaped, < > & as entities, line breaks <br>
 *   csv    csv_cell           RFC 4180 quoting, a leading = + - @ TAB CR gets a '
 *   json   kw_json_str        strict JSON
 *   html   html_text          & < > " ' = ` as entities (safe in text and quoted attributes)
 *
 * md, csv and html replace bytes that are not UTF-8 with U+FFFD (their readers want UTF-8);
 * md and html also show other control characters (TAB: a space) and the bidi overrides
 * (U+202A-E, U+2066-9) as visible \xHH / \uHHHH: a key name can neither hide nor reorder
 * its neighbours.
 * The HTML page has no script, no external asset and a CSP meta tag that forbids both.
 *
 * Writing goes straight to the caller's FILE; lists that form one CSV cell are joined in
 * a memory stream first (the formula check needs the cell's first character).
 * Thread: any (no state besides the arguments).
 */
#include "review_report.h"

#include "../sidecar/alerts.h" /* kw_severity_name */
#include "../sidecar/escape.h"
#include "../sidecar/fingerprint.h"
#include "../sidecar/timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kw_report_format_parse(const char *s) {
  static const char *const names[] = {"table", "md", "csv", "json", "html"};
  for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(s, names[i]) == 0)
      return (int)i;
  return -1;
}

/* ---- shared helpers ------------------------------------------------------------------ */

#define TBUF 32 /* a time buffer (kw_time_format needs 25) */

/* "2026-11-22 05:12" (UTC, minutes), or dflt when us is 0. */
static const char *short_time(int64_t us, char *buf, const char *dflt) {
  if (us == 0)
    return dflt;
  kw_time_format(us, buf, TBUF);
  buf[10] = ' ';
  buf[16] = '\0';
  return buf;
}

/* "2026-11-22" (UTC). */
static const char *day(int64_t us, char *buf) {
  kw_time_format(us, buf, TBUF);
  buf[10] = '\0';
  return buf;
}

static const char *sev_name(int sev) {
  const char *s = kw_severity_name(sev);
  return s ? s : "info";
}

static int max_severity(const struct kw_review_row *row) {
  int sev = -1;
  for (size_t i = 0; i < row->nfindings; i++)
    if (row->findings[i].severity > sev)
      sev = row->findings[i].severity;
  return sev;
}

static size_t plen(const char p[KW_PREFIX_MAX + 1]) { return strnlen(p, KW_PREFIX_MAX + 1); }

static const char *plural(size_t n) { return n == 1 ? "" : "s"; }

/* ---- escapers for Markdown, HTML and CSV ---------------------------------------------- */

enum esc { ESC_MD, ESC_HTML, ESC_CSV };

/* Whether the 3-byte sequence at s is a bidi embedding/override/isolate control. */
static bool is_bidi(const unsigned char *s) {
  return s[0] == 0xe2 && ((s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) ||
                          (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9));
}

/* One ASCII character c (next: the byte after it, or -1) in format e. */
static void put_ascii(FILE *f, unsigned char c, int next, enum esc e) {
  if (e == ESC_CSV) {
    if (c == '"')
      putc('"', f);
    putc(c, f);
    return;
  }
  if (c == '\r' && next == '\n') /* CRLF is one line break */
    return;
  if (c == '\n' || c == '\r') {
    fputs(e == ESC_MD ? "<br>" : "\\x0A", f);
    return;
  }
  if (c < 0x20 || c == 0x7f) {
    if (c == '\t')
      putc(' ', f);
    else
      fprintf(f, "\\x%02X", c);
    return;
  }
  if (e == ESC_MD) {
    switch (c) {
    case '<': fputs("&lt;", f); return;
    case '>': fputs("&gt;", f); return;
    case '&': fputs("&amp;", f); return;
    case '\\': case '|': case '`': case '*': case '_': case '[': case ']': case '~':
      putc('\\', f);
      break;
    default: break;
    }
    putc(c, f);
    return;
  }
  switch (c) {
  case '<': fputs("&lt;", f); break;
  case '>': fputs("&gt;", f); break;
  case '&': fputs("&amp;", f); break;
  case '"': fputs("&quot;", f); break;
  case '\'': fputs("&#39;", f); break;
  case '=': fputs("&#61;", f); break;
  case '`': fputs("&#96;", f); break;
  default: putc(c, f);
  }
}

/* Writes s[0..n) escaped for e; NULL writes nothing. */
static void put_escaped(FILE *f, const char *str, size_t n, enum esc e) {
  const unsigned char *s = (const unsigned char *)str;
  for (size_t i = 0; str != NULL && i < n;) {
    size_t len = kw_utf8_len(s + i, n - i);
    if (len == 0) {
      fputs("\xef\xbf\xbd", f); /* U+FFFD */
      i++;
    } else if (len == 1) {
      put_ascii(f, s[i], i + 1 < n ? s[i + 1] : -1, e);
      i++;
    } else {
      if (len == 3 && e != ESC_CSV && is_bidi(s + i))
        fprintf(f, "\\u%04X", 0x2000u | (s[i + 1] & 0x3fu) << 6 | (s[i + 2] & 0x3fu));
      else
        fwrite(s + i, 1, len, f);
      i += len;
    }
  }
}

static void md_text(FILE *f, const char *s) { put_escaped(f, s, s ? strlen(s) : 0, ESC_MD); }

static void html_text(FILE *f, const char *s) {
  put_escaped(f, s, s ? strlen(s) : 0, ESC_HTML);
}

/* One CSV cell: quoted when it holds , " CR or LF; a first character a spreadsheet would
 * read as a formula (= + - @, or TAB/CR before one) is preceded by '. */
static void csv_cell_n(FILE *f, const char *s, size_t n) {
  bool quote = false, formula = false;
  if (n > 0)
    formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
              s[0] == '\r';
  for (size_t i = 0; i < n && !quote; i++)
    quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
  if (quote)
    putc('"', f);
  if (formula)
    putc('\'', f);
  put_escaped(f, s, n, ESC_CSV);
  if (quote)
    putc('"', f);
}

static void csv_cell(FILE *f, const char *s) { csv_cell_n(f, s, s ? strlen(s) : 0); }

/* ---- terminal table ------------------------------------------------------------------- */

/* Column caps for strings of unbounded length (the rest is cut with "…"). */
enum { W_KEY = KW_PREFIX_MAX, W_NAME = 28, W_GROUP = 24, W_REC = 60 };

/* Renders s for a terminal into buf (at most width columns); returns the columns. */
static size_t term_render(const char *s, size_t width, char *buf, size_t len) {
  FILE *m = fmemopen(buf, len, "w");
  size_t cols = 0;
  buf[0] = '\0';
  if (m == NULL)
    return 0;
  kw_term_str(m, s, s ? strlen(s) : 1, width);
  fclose(m);
  buf[len - 1] = '\0';
  for (const unsigned char *p = (const unsigned char *)buf; *p; p++)
    cols += (*p & 0xc0) != 0x80;
  return cols;
}

/* Writes s padded to cols columns (cut at width) and a two-space gutter. */
static void term_cell(FILE *f, const char *s, size_t width, size_t cols) {
  char buf[4 * 64 + 8];
  size_t shown = term_render(s, width, buf, sizeof(buf));
  fputs(buf, f);
  fprintf(f, "%*s", (int)(cols - shown + 2), "");
}

/* "group/permission", "group", "/permission" or NULL. */
static void group_perm(const struct kw_review_row *row, char *buf, size_t len) {
  if (row->group == NULL && row->permission == NULL)
    snprintf(buf, len, "-");
  else
    snprintf(buf, len, "%s%s%s", row->group ? row->group : "", row->permission ? "/" : "",
             row->permission ? row->permission : "");
}

/* Finding names, comma-separated ("-" for none). */
static void finding_list(const struct kw_review_row *row, char *buf, size_t len) {
  size_t used = 0;
  snprintf(buf, len, "-");
  for (size_t i = 0; i < row->nfindings && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "",
                             kw_finding_name(row->findings[i].kind));
}

static void term_prefixes(FILE *f, const char (*p)[KW_PREFIX_MAX + 1], size_t n) {
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ", " : "", f);
    kw_term_str(f, p[i], plen(p[i]), W_KEY);
  }
}

static void term_changes(FILE *f, const char *label, const struct kw_review_change *c,
                         size_t n) {
  if (n == 0)
    return;
  fprintf(f, "  %-13s ", label);
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ", " : "", f);
    kw_term_str(f, c[i].key_prefix, plen(c[i].key_prefix), W_KEY);
    fprintf(f, " %s", kw_finding_name(c[i].kind));
  }
  putc('\n', f);
}

static void write_table(FILE *f, const struct kw_review *r, const struct kw_review_diff *d) {
  const struct kw_review_opts *o = kw_review_options(r);
  size_t n, counts[KW_FIND_COUNT], total = 0;
  const struct kw_review_row *rows = kw_review_rows(r, &n);
  size_t w_key = 3, w_name = 4, w_group = 10, w_calls = 5, w_last = 8, w_find = 8;
  char buf[4 * 64 + 8], gp[512], fl[256], t1[TBUF], t2[TBUF];

  for (size_t i = 0; i < n; i++) {
    const struct kw_review_row *row = &rows[i];
    size_t w;
    group_perm(row, gp, sizeof(gp));
    finding_list(row, fl, sizeof(fl));
    if ((w = term_render(row->prefix, W_KEY, buf, sizeof(buf))) > w_key)
      w_key = w;
    if ((w = term_render(row->name, W_NAME, buf, sizeof(buf))) > w_name)
      w_name = w;
    if ((w = term_render(gp, W_GROUP, buf, sizeof(buf))) > w_group)
      w_group = w;
    if ((w = (size_t)snprintf(buf, sizeof(buf), "%lld", (long long)row->calls)) > w_calls)
      w_calls = w;
    if ((w = strlen(short_time(row->last_us, t1, "never"))) > w_last)
      w_last = w;
    if ((w = strlen(fl)) > w_find)
      w_find = w;
  }

  fprintf(f, "%-*s  %-*s  %-*s  %*s  %-*s  %-*s  %s\n", (int)w_key, "KEY", (int)w_name,
          "NAME", (int)w_group, "GROUP/PERM", (int)w_calls, "CALLS", (int)w_last, "LAST USE",
          (int)w_find, "FINDINGS", "RECOMMENDATION");
  for (size_t i = 0; i < n; i++) {
    const struct kw_review_row *row = &rows[i];
    group_perm(row, gp, sizeof(gp));
    finding_list(row, fl, sizeof(fl));
    term_cell(f, row->prefix, W_KEY, w_key);
    term_cell(f, row->name, W_NAME, w_name);
    term_cell(f, gp, W_GROUP, w_group);
    fprintf(f, "%*lld  %-*s  %-*s  ", (int)w_calls, (long long)row->calls, (int)w_last,
            short_time(row->last_us, t1, "never"), (int)w_find, fl);
    kw_term_str(f, row->recommendation, row->recommendation ? strlen(row->recommendation) : 1,
                W_REC);
    putc('\n', f);
  }

  kw_review_counts(r, counts);
  for (int k = 0; k < KW_FIND_COUNT; k++)
    total += counts[k];
  fprintf(f, "\n%zu key%s reviewed, %s .. %s UTC: %zu finding%s", n, plural(n),
          short_time(o->since_us, t1, "-"), short_time(o->until_us, t2, "-"), total,
          plural(total));
  for (int k = 0, first = 1; k < KW_FIND_COUNT; k++)
    if (counts[k] > 0) {
      fprintf(f, "%s%zu %s", first ? " (" : ", ", counts[k], kw_finding_name(k));
      first = 0;
    }
  fputs(total ? ")\n" : "\n", f);

  if (d == NULL)
    return;
  fprintf(f, "\nSince the previous review (%s UTC):", short_time(d->previous_us, t1, "-"));
  if (d->nnew_keys + d->nnew + d->nresolved == 0) {
    fprintf(f, " no change, %zu finding%s still open\n", d->still_open, plural(d->still_open));
    return;
  }
  putc('\n', f);
  if (d->nnew_keys > 0) {
    fprintf(f, "  %-13s ", "new keys");
    term_prefixes(f, d->new_keys, d->nnew_keys);
    putc('\n', f);
  }
  term_changes(f, "new findings", d->new_findings, d->nnew);
  term_changes(f, "resolved", d->resolved, d->nresolved);
  fprintf(f, "  %-13s %zu\n", "still open", d->still_open);
}

/* ---- Markdown ------------------------------------------------------------------------- */

static void md_changes(FILE *f, const char *label, const struct kw_review_change *c,
                       size_t n) {
  fprintf(f, "- %s (%zu)%s", label, n, n ? ":" : "");
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ", " : " ", f);
    put_escaped(f, c[i].key_prefix, plen(c[i].key_prefix), ESC_MD);
    fprintf(f, " %s", kw_finding_name(c[i].kind));
  }
  putc('\n', f);
}

static void write_md(FILE *f, const struct kw_review *r, const struct kw_review_diff *d,
                     int64_t generated_us) {
  const struct kw_review_opts *o = kw_review_options(r);
  size_t n, counts[KW_FIND_COUNT], total = 0, flagged = 0;
  const struct kw_review_row *rows = kw_review_rows(r, &n);
  char t1[TBUF], t2[TBUF];

  kw_review_counts(r, counts);
  for (int k = 0; k < KW_FIND_COUNT; k++)
    total += counts[k];
  for (size_t i = 0; i < n; i++)
    flagged += rows[i].nfindings > 0;

  fprintf(f, "# Key review %s – %s\n\n", day(o->since_us, t1), day(o->until_us, t2));
  fprintf(f, "Period %s – %s UTC, generated %s.  \n", short_time(o->since_us, t1, "-"),
          short_time(o->until_us, t2, "-"), kw_time_format(generated_us, (char[TBUF]){0}, TBUF));
  fprintf(f, "%zu key%s reviewed, %zu with findings, %zu finding%s in all.\n\n", n, plural(n),
          flagged, total, plural(total));

  fputs("## Summary\n\n| Finding | Severity | Keys |\n| --- | --- | ---: |\n", f);
  for (int k = 0; k < KW_FIND_COUNT; k++)
    fprintf(f, "| %s | %s | %zu |\n", kw_finding_name(k), sev_name(o->severity[k]), counts[k]);

  fputs("\n## Keys with findings\n\n", f);
  if (flagged == 0) {
    fputs("No findings.\n", f);
  } else {
    fputs("| Key | Name | Group / permission | Calls | Last use | Findings | Recommendation |\n"
          "| --- | --- | --- | ---: | --- | --- | --- |\n",
          f);
    for (size_t i = 0; i < n; i++) {
      const struct kw_review_row *row = &rows[i];
      if (row->nfindings == 0)
        continue;
      fputs("| ", f);
      md_text(f, row->prefix);
      fputs(" | ", f);
      md_text(f, row->name ? row->name : "-");
      fputs(" | ", f);
      md_text(f, row->group ? row->group : "-");
      fputs(" / ", f);
      md_text(f, row->permission ? row->permission : "-");
      fprintf(f, " | %lld | %s | ", (long long)row->calls, short_time(row->last_us, t1, "never"));
      for (size_t j = 0; j < row->nfindings; j++) {
        const struct kw_finding *fd = &row->findings[j];
        fprintf(f, "%s**%s** (%s): ", j ? "<br>" : "", kw_finding_name(fd->kind),
                sev_name(fd->severity));
        put_escaped(f, fd->text, strnlen(fd->text, sizeof(fd->text)), ESC_MD);
      }
      fputs(" | **", f);
      md_text(f, row->recommendation ? row->recommendation : "-");
      fputs("**", f);
      if (row->why != NULL) {
        fputs(": ", f);
        md_text(f, row->why);
      }
      fputs(" |\n", f);
    }
  }

  if (d == NULL)
    return;
  fprintf(f, "\n## Changes since the review of %s UTC\n\n", short_time(d->previous_us, t1, "-"));
  fprintf(f, "- New keys (%zu)%s", d->nnew_keys, d->nnew_keys ? ":" : "");
  for (size_t i = 0; i < d->nnew_keys; i++) {
    fputs(i ? ", " : " ", f);
    put_escaped(f, d->new_keys[i], plen(d->new_keys[i]), ESC_MD);
  }
  putc('\n', f);
  md_changes(f, "New findings", d->new_findings, d->nnew);
  md_changes(f, "Resolved", d->resolved, d->nresolved);
  fprintf(f, "- Still open: %zu\n", d->still_open);
}

/* ---- CSV ------------------------------------------------------------------------------ */

/* Joins list[0..n) with "; " into one cell. */
static int csv_list(FILE *f, char *const *list, const struct kw_scope_use *uses, size_t n) {
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (m == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    fputs(i ? "; " : "", m);
    fputs(list ? list[i] : uses[i].scope, m);
  }
  if (fclose(m) != 0) {
    free(buf);
    return -ENOMEM;
  }
  csv_cell_n(f, buf, len);
  free(buf);
  return 0;
}

static void csv_time(FILE *f, int64_t us) {
  char t[TBUF];
  if (us != 0)
    fputs(kw_time_format(us, t, sizeof(t)), f);
}

static int write_csv(FILE *f, const struct kw_review *r) {
  size_t n;
  const struct kw_review_row *rows = kw_review_rows(r, &n);
  char hex[2 * KW_FP_LEN + 1], fl[256];
  int rc = 0;

  fputs("key_prefix,fingerprint,name,store,group,permission,created,last_seen,calls,"
        "granted,used,unused,outside_calls,outside_succeeded,findings,recommendation\r\n",
        f);
  for (size_t i = 0; i < n && rc == 0; i++) {
    const struct kw_review_row *row = &rows[i];
    csv_cell(f, row->prefix);
    fprintf(f, ",%s,", row->has_fp ? kw_fingerprint_hex(row->fp, hex) : "");
    csv_cell(f, row->name);
    putc(',', f);
    csv_cell(f, row->store);
    putc(',', f);
    csv_cell(f, row->group);
    putc(',', f);
    csv_cell(f, row->permission);
    putc(',', f);
    csv_time(f, row->created_us);
    putc(',', f);
    csv_time(f, row->last_us);
    fprintf(f, ",%lld,", (long long)row->calls);
    if ((rc = csv_list(f, row->granted, NULL, row->ngranted)) != 0)
      break;
    putc(',', f);
    if ((rc = csv_list(f, NULL, row->used, row->nused)) != 0)
      break;
    putc(',', f);
    if ((rc = csv_list(f, row->unused, NULL, row->nunused)) != 0)
      break;
    fprintf(f, ",%lld,%lld,", (long long)row->outside_calls, (long long)row->outside_ok);
    fl[0] = '\0';
    for (size_t j = 0, used = 0; j < row->nfindings && used < sizeof(fl); j++)
      used += (size_t)snprintf(fl + used, sizeof(fl) - used, "%s%s", j ? "; " : "",
                               kw_finding_name(row->findings[j].kind));
    csv_cell(f, fl);
    putc(',', f);
    csv_cell(f, row->recommendation);
    fputs("\r\n", f);
  }
  return rc;
}

/* ---- JSON ----------------------------------------------------------------------------- */

static void json_time(FILE *f, int64_t us) {
  char t[TBUF];
  if (us == 0)
    fputs("null", f);
  else
    fprintf(f, "\"%s\"", kw_time_format(us, t, sizeof(t)));
}

static void json_strings(FILE *f, char *const *list, size_t n) {
  putc('[', f);
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ", " : "", f);
    kw_json_cstr(f, list[i]);
  }
  putc(']', f);
}

static void json_changes(FILE *f, const struct kw_review_change *c, size_t n) {
  putc('[', f);
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ", " : "", f);
    fputs("{\"key_prefix\": ", f);
    kw_json_str(f, c[i].key_prefix, plen(c[i].key_prefix));
    fprintf(f, ", \"finding\": \"%s\"}", kw_finding_name(c[i].kind));
  }
  putc(']', f);
}

static void json_row(FILE *f, const struct kw_review_row *row) {
  char hex[2 * KW_FP_LEN + 1];

  fputs("{\"key_prefix\": ", f);
  kw_json_cstr(f, row->prefix);
  fputs(", \"fingerprint\": ", f);
  kw_json_cstr(f, row->has_fp ? kw_fingerprint_hex(row->fp, hex) : NULL);
  fputs(", \"name\": ", f);
  kw_json_cstr(f, row->name);
  fputs(", \"store\": ", f);
  kw_json_cstr(f, row->store);
  fputs(", \"store_id\": ", f);
  kw_json_cstr(f, row->store_ref);
  fputs(",\n     \"group\": ", f);
  kw_json_cstr(f, row->group);
  fputs(", \"permission\": ", f);
  kw_json_cstr(f, row->permission);
  fputs(", \"created\": ", f);
  json_time(f, row->created_us);
  fputs(", \"first_seen\": ", f);
  json_time(f, row->first_us);
  fputs(", \"last_seen\": ", f);
  json_time(f, row->last_us);
  fprintf(f, ",\n     \"calls\": %lld, \"clients\": %lld, \"grant_known\": %s, \"granted\": ",
          (long long)row->calls, (long long)row->clients, row->grant_known ? "true" : "false");
  json_strings(f, row->granted, row->ngranted);
  fputs(",\n     \"used\": [", f);
  for (size_t i = 0; i < row->nused; i++) {
    fputs(i ? ", " : "", f);
    fputs("{\"scope\": ", f);
    kw_json_cstr(f, row->used[i].scope);
    fprintf(f, ", \"calls\": %lld, \"last_use\": ", (long long)row->used[i].calls);
    json_time(f, row->used[i].last_us);
    putc('}', f);
  }
  fputs("], \"unused\": ", f);
  json_strings(f, row->unused, row->nunused);
  fprintf(f, ",\n     \"outside_grant\": {\"calls\": %lld, \"succeeded\": %lld, \"example\": ",
          (long long)row->outside_calls, (long long)row->outside_ok);
  kw_json_cstr(f, row->outside_example);
  fputs("},\n     \"findings\": [", f);
  for (size_t i = 0; i < row->nfindings; i++) {
    const struct kw_finding *fd = &row->findings[i];
    fprintf(f, "%s{\"finding\": \"%s\", \"severity\": \"%s\", \"text\": ", i ? ", " : "",
            kw_finding_name(fd->kind), sev_name(fd->severity));
    kw_json_str(f, fd->text, strnlen(fd->text, sizeof(fd->text)));
    putc('}', f);
  }
  fputs("],\n     \"recommendation\": ", f);
  kw_json_cstr(f, row->recommendation);
  fputs(", \"why\": ", f);
  kw_json_cstr(f, row->why);
  putc('}', f);
}

static void write_json(FILE *f, const struct kw_review *r, const struct kw_review_diff *d,
                       int64_t generated_us) {
  const struct kw_review_opts *o = kw_review_options(r);
  size_t n, counts[KW_FIND_COUNT];
  const struct kw_review_row *rows = kw_review_rows(r, &n);

  fputs("{\"generated\": ", f);
  json_time(f, generated_us);
  fputs(", \"since\": ", f);
  json_time(f, o->since_us);
  fputs(", \"until\": ", f);
  json_time(f, o->until_us);
  fputs(", \"previous\": ", f);
  if (d != NULL)
    json_time(f, d->previous_us);
  else
    fputs("null", f);
  kw_review_counts(r, counts);
  fprintf(f, ",\n \"summary\": {\"keys\": %zu, \"findings\": {", n);
  for (int k = 0; k < KW_FIND_COUNT; k++)
    fprintf(f, "%s\"%s\": %zu", k ? ", " : "", kw_finding_name(k), counts[k]);
  fputs("}},\n \"changes\": ", f);
  if (d == NULL) {
    fputs("null", f);
  } else {
    fputs("{\"new_keys\": [", f);
    for (size_t i = 0; i < d->nnew_keys; i++) {
      fputs(i ? ", " : "", f);
      kw_json_str(f, d->new_keys[i], plen(d->new_keys[i]));
    }
    fputs("], \"new_findings\": ", f);
    json_changes(f, d->new_findings, d->nnew);
    fputs(", \"resolved\": ", f);
    json_changes(f, d->resolved, d->nresolved);
    fprintf(f, ", \"still_open\": %zu}", d->still_open);
  }
  fputs(",\n \"keys\": [", f);
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ",\n    " : "\n    ", f);
    json_row(f, &rows[i]);
  }
  fputs(n ? "\n ]}\n" : "]}\n", f);
}

/* ---- HTML ----------------------------------------------------------------------------- */

/* The page's only styling; no url() anywhere, system fonts only. */
static const char html_style[] =
    ":root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--muted:#5f6b7a;"
    "--line:#e2e6eb;--info:#5f6b7a;--low:#2f6fb0;--medium:#b26a00;--high:#c4302b;"
    "--critical:#8e1b5c;--ok:#2e7d4f}\n"
    "@media (prefers-color-scheme:dark){:root{--bg:#14171c;--card:#1d2128;--fg:#e4e7ec;"
    "--muted:#9aa4b2;--line:#2f3540;--info:#9aa4b2;--low:#6ea8e6;--medium:#e0a040;"
    "--high:#f0625c;--critical:#e070b0;--ok:#5cc08a}}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}\n"
    "main{max-width:1400px;margin:0 auto;padding:24px 28px 40px}\n"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 12px}\n"
    ".meta{color:var(--muted);margin:0}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:20px}\n"
    ".card{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--line);"
    "border-radius:8px;padding:10px 16px;min-width:150px}\n"
    ".card .n{font-size:26px;font-weight:600;display:block}.card .l{color:var(--muted)}\n"
    ".card.zero{opacity:.55}\n"
    ".card.sev-info{border-left-color:var(--info)}.card.sev-low{border-left-color:var(--low)}"
    ".card.sev-medium{border-left-color:var(--medium)}.card.sev-high{border-left-color:var(--high)}"
    ".card.sev-critical{border-left-color:var(--critical)}\n"
    ".tablewrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);"
    "border-radius:8px}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;vertical-align:top;padding:9px 12px;"
    "border-bottom:1px solid var(--line)}\n"
    "th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);"
    "background:var(--card);position:sticky;top:0}\n"
    "tr:last-child td{border-bottom:0}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "tr.row td:first-child{border-left:4px solid transparent}\n"
    "tr.row.sev-info td:first-child{border-left-color:var(--info)}"
    "tr.row.sev-low td:first-child{border-left-color:var(--low)}"
    "tr.row.sev-medium td:first-child{border-left-color:var(--medium)}"
    "tr.row.sev-high td:first-child{border-left-color:var(--high)}"
    "tr.row.sev-critical td:first-child{border-left-color:var(--critical)}\n"
    ".key,.fp,.ep{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\n"
    ".key{font-weight:600;white-space:nowrap}.fp{font-size:11px;color:var(--muted);"
    "word-break:break-all}\n"
    ".sub{color:var(--muted);font-size:12px}\n"
    "td{overflow-wrap:break-word}.ep{overflow-wrap:anywhere}\n"
    "td.name,td.group{min-width:9em;max-width:22em}td.scopes{min-width:9em}"
    "td.findings{min-width:14em}td.recommend{min-width:10em}\n"
    ".scope{display:inline-block;border:1px solid var(--line);border-radius:10px;"
    "padding:0 7px;margin:1px 2px 1px 0;font-size:12px;white-space:nowrap}\n"
    ".scope.unused{color:var(--muted);text-decoration:line-through}\n"
    ".outside{color:var(--high);font-size:12px;margin-top:4px}\n"
    "ul.findings{list-style:none;margin:0;padding:0}ul.findings li{margin:0 0 6px}\n"
    ".sev{display:inline-block;font-size:11px;font-weight:600;text-transform:uppercase;"
    "border-radius:4px;padding:1px 6px;margin-right:6px;color:#fff;background:var(--info)}\n"
    ".sev.sev-low{background:var(--low)}.sev.sev-medium{background:var(--medium)}"
    ".sev.sev-high{background:var(--high)}.sev.sev-critical{background:var(--critical)}\n"
    ".kind{font-weight:600}.none{color:var(--ok)}\n"
    ".rec{font-weight:600}.rec.delete{color:var(--high)}.rec.keep{color:var(--ok)}\n"
    ".changes{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:12px 20px}.changes dt{font-weight:600;margin-top:6px}.changes dd{margin:2px 0 0}\n"
    "footer{color:var(--muted);font-size:12px;margin-top:32px}\n"
    "@media print{body{background:#fff}th{position:static}.tablewrap{overflow:visible}}\n";

static void html_prefixes_changes(FILE *f, const char *label,
                                  const struct kw_review_change *c, size_t n) {
  fprintf(f, "<dt>%s (%zu)</dt><dd>", label, n);
  if (n == 0)
    fputs("none", f);
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ", " : "", f);
    fputs("<span class=\"key\">", f);
    put_escaped(f, c[i].key_prefix, plen(c[i].key_prefix), ESC_HTML);
    fprintf(f, "</span> %s", kw_finding_name(c[i].kind));
  }
  fputs("</dd>\n", f);
}

static void html_row(FILE *f, const struct kw_review_row *row) {
  char hex[2 * KW_FP_LEN + 1], t[TBUF];
  int sev = max_severity(row);

  fprintf(f, "<tr class=\"row%s%s\">\n<td><span class=\"key\">", sev >= 0 ? " sev-" : "",
          sev >= 0 ? sev_name(sev) : "");
  html_text(f, row->prefix);
  fputs("</span>", f);
  if (row->has_fp)
    fprintf(f, "<div class=\"fp\">%s</div>", kw_fingerprint_hex(row->fp, hex));
  fputs("</td>\n<td class=\"name\">", f);
  html_text(f, row->name ? row->name : "-");
  if (row->store != NULL) {
    fputs("<div class=\"sub\">", f);
    html_text(f, row->store);
    if (row->store_ref != NULL) {
      fputs(" · id ", f);
      html_text(f, row->store_ref);
    }
    fputs("</div>", f);
  }
  fputs("</td>\n<td class=\"group\">", f);
  html_text(f, row->group ? row->group : "-");
  fputs("<div class=\"sub\">permission ", f);
  html_text(f, row->permission ? row->permission : "-");
  fprintf(f, "</div></td>\n<td class=\"num\">%lld<div class=\"sub\">%lld client%s</div></td>\n",
          (long long)row->calls, (long long)row->clients, row->clients == 1 ? "" : "s");
  fprintf(f, "<td class=\"num\">%s", short_time(row->last_us, t, "never"));
  if (row->created_us != 0)
    fprintf(f, "<div class=\"sub\">created %s</div>", day(row->created_us, t));
  fputs("</td>\n<td class=\"scopes\">", f);
  if (!row->grant_known)
    fputs("<span class=\"sub\">no grant applies</span>", f);
  for (size_t i = 0; i < row->nused; i++) {
    fputs("<span class=\"scope\">", f);
    html_text(f, row->used[i].scope);
    fprintf(f, " · %lld</span>", (long long)row->used[i].calls);
  }
  for (size_t i = 0; i < row->nunused; i++) {
    fputs("<span class=\"scope unused\" title=\"granted, never used\">", f);
    html_text(f, row->unused[i]);
    fputs("</span>", f);
  }
  if (row->outside_calls > 0) {
    fprintf(f, "<div class=\"outside\">%lld call%s outside the grant, %lld succeeded",
            (long long)row->outside_calls, row->outside_calls == 1 ? "" : "s",
            (long long)row->outside_ok);
    if (row->outside_example != NULL) {
      fputs(", e.g. <span class=\"ep\">", f);
      html_text(f, row->outside_example);
      fputs("</span>", f);
    }
    fputs("</div>", f);
  }
  fputs("</td>\n<td class=\"findings\">", f);
  if (row->nfindings == 0)
    fputs("<span class=\"none\">none</span>", f);
  else
    fputs("<ul class=\"findings\">", f);
  for (size_t i = 0; i < row->nfindings; i++) {
    const struct kw_finding *fd = &row->findings[i];
    fprintf(f, "<li><span class=\"sev sev-%s\">%s</span><span class=\"kind\">%s</span>"
               "<div class=\"sub\">",
            sev_name(fd->severity), sev_name(fd->severity), kw_finding_name(fd->kind));
    put_escaped(f, fd->text, strnlen(fd->text, sizeof(fd->text)), ESC_HTML);
    fputs("</div></li>", f);
  }
  if (row->nfindings > 0)
    fputs("</ul>", f);
  fputs("</td>\n<td class=\"recommend\"><span class=\"rec", f);
  if (row->recommendation != NULL && strcmp(row->recommendation, "delete") == 0)
    fputs(" delete", f);
  else if (row->recommendation != NULL && strcmp(row->recommendation, "keep") == 0)
    fputs(" keep", f);
  fputs("\">", f);
  html_text(f, row->recommendation ? row->recommendation : "-");
  fputs("</span>", f);
  if (row->why != NULL) {
    fputs("<div class=\"sub\">", f);
    html_text(f, row->why);
    fputs("</div>", f);
  }
  fputs("</td>\n</tr>\n", f);
}

static void write_html(FILE *f, const struct kw_review *r, const struct kw_review_diff *d,
                       int64_t generated_us) {
  const struct kw_review_opts *o = kw_review_options(r);
  size_t n, counts[KW_FIND_COUNT], flagged = 0;
  const struct kw_review_row *rows = kw_review_rows(r, &n);
  char t1[TBUF], t2[TBUF];

  kw_review_counts(r, counts);
  for (size_t i = 0; i < n; i++)
    flagged += rows[i].nfindings > 0;

  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f);
  fprintf(f, "<title>Key review %s – %s</title>\n<style>\n%s</style>\n</head>\n<body>\n<main>\n",
          day(o->since_us, t1), day(o->until_us, t2), html_style);
  fprintf(f, "<h1>Key review %s – %s</h1>\n", day(o->since_us, t1), day(o->until_us, t2));
  fprintf(f, "<p class=\"meta\">Period %s – %s UTC · generated %s</p>\n",
          short_time(o->since_us, t1, "-"), short_time(o->until_us, t2, "-"),
          kw_time_format(generated_us, (char[TBUF]){0}, TBUF));

  fputs("<section class=\"cards\" aria-label=\"Summary\">\n", f);
  fprintf(f, "<div class=\"card\"><span class=\"n\">%zu</span><span class=\"l\">key%s "
             "reviewed</span></div>\n",
          n, plural(n));
  fprintf(f, "<div class=\"card\"><span class=\"n\">%zu</span><span class=\"l\">with "
             "findings</span></div>\n",
          flagged);
  for (int k = 0; k < KW_FIND_COUNT; k++)
    fprintf(f, "<div class=\"card sev-%s%s\"><span class=\"n\">%zu</span><span class=\"l\">%s"
               " · %s</span></div>\n",
            sev_name(o->severity[k]), counts[k] ? "" : " zero", counts[k], kw_finding_name(k),
            sev_name(o->severity[k]));
  fputs("</section>\n", f);

  fprintf(f, "<h2>Keys (%zu)</h2>\n", n);
  if (n == 0) {
    fputs("<p class=\"meta\">No key was reviewed.</p>\n", f);
  } else {
    fputs("<div class=\"tablewrap\"><table>\n<thead><tr><th>Key</th><th>Name / store</th>"
          "<th>Group / permission</th><th>Calls</th><th>Last use</th><th>Scopes</th>"
          "<th>Findings</th><th>Recommendation</th></tr></thead>\n<tbody>\n",
          f);
    for (size_t i = 0; i < n; i++)
      html_row(f, &rows[i]);
    fputs("</tbody>\n</table></div>\n", f);
  }

  if (d != NULL) {
    fprintf(f, "<h2>Changes since the review of %s UTC</h2>\n<dl class=\"changes\">\n",
            short_time(d->previous_us, t1, "-"));
    fprintf(f, "<dt>New keys (%zu)</dt><dd>", d->nnew_keys);
    if (d->nnew_keys == 0)
      fputs("none", f);
    for (size_t i = 0; i < d->nnew_keys; i++) {
      fputs(i ? ", <span class=\"key\">" : "<span class=\"key\">", f);
      put_escaped(f, d->new_keys[i], plen(d->new_keys[i]), ESC_HTML);
      fputs("</span>", f);
    }
    fputs("</dd>\n", f);
    html_prefixes_changes(f, "New findings", d->new_findings, d->nnew);
    html_prefixes_changes(f, "Resolved", d->resolved, d->nresolved);
    fprintf(f, "<dt>Still open</dt><dd>%zu</dd>\n</dl>\n", d->still_open);
  }
  fputs("<footer>keywatch least-privilege review. Key names, groups and endpoints are shown "
        "as recorded; characters that could hide text appear as \\x or \\u escapes.</footer>\n"
        "</main>\n</body>\n</html>\n",
        f);
}

/* ---- entry point ---------------------------------------------------------------------- */

int kw_review_write(FILE *f, enum kw_report_format fmt, const struct kw_review *r,
                    const struct kw_review_diff *diff, int64_t generated_us) {
  int rc = 0;

  errno = 0;
  switch (fmt) {
  case KW_REPORT_TABLE: write_table(f, r, diff); break;
  case KW_REPORT_MD: write_md(f, r, diff, generated_us); break;
  case KW_REPORT_CSV: rc = write_csv(f, r); break;
  case KW_REPORT_JSON: write_json(f, r, diff, generated_us); break;
  case KW_REPORT_HTML: write_html(f, r, diff, generated_us); break;
  default: return -EINVAL;
  }
  if (rc == 0 && (fflush(f) != 0 || ferror(f)))
    rc = errno ? -errno : -EIO;
  return rc;
}
