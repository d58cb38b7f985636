/* cmd_review.c — `keywatch review`: the least-privilege review, on demand.
 *
 *   keywatch review [--since T] [--until T] [--key PREFIX] [--format F] [--output FILE]
 *                   [--unused-after DUR] [--dormant-after DUR] [--max-age DUR]
 *                   [--max-sources N] [--no-save]
 *
 * Reads the daily rollups (not the raw calls) and the key stores' inventory; compares with
 * the previous stored review; stores this one (unless --key or --no-save), so the next
 * review can say what changed.
 */
#include "../analyzer/review.h"
#include "../analyzer/review_report.h"
#include "../analyzer/rules.h"
#include "cli.h"
#include "err.h"
#include "reviewjob.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void help(void) {
  printf(
      "usage: keywatch review [--since T] [--until T] [--key PREFIX] [--format F]\n"
      "                       [--output FILE] [--unused-after DUR] [--dormant-after DUR]\n"
      "                       [--max-age DUR] [--max-sources N] [--no-save]\n"
      "\n"
      "Per key: the scopes its grants give (rule packs' grants, by key, by the key store's\n"
      "group or permission), the scopes it exercised (calls, last use), the unused ones,\n"
      "calls outside the grant; findings (unused, dormant_woke, over_privileged,\n"
      "outside_grant, rotation_due, many_sources) and a recommendation (delete, a smaller\n"
      "group/permission, a smaller set of scopes, or keep).  Keys a key store lists that\n"
      "were never seen in traffic are included.  The review is stored: the next one shows\n"
      "what changed (new keys, new findings, resolved findings).\n"
      "\n"
      "  --since T           start of the period (default: review.period before --until,\n"
      "                      30d); T is RFC 3339, a date, epoch seconds, or -30d\n"
      "  --until T           end of the period (default: now)\n"
      "  --key PREFIX        only keys whose display prefix starts so (not stored)\n"
      "  --format F          table (default), md, csv, json, html\n"
      "  --output FILE       write the report there (mode 0640) instead of stdout\n"
      "  --unused-after DUR  unused: no call for this long (default review.unused_after, 30d)\n"
      "  --dormant-after DUR dormant_woke: silence before a call in the period (30d)\n"
      "  --max-age DUR       rotation_due: older than this (default 365d; 0 off)\n"
      "  --max-sources N     many_sources: more client addresses than N (default 10)\n"
      "  --no-save           do not store this review\n"
      "\n"
      "Periods are counted in whole UTC days (the rollups are daily).\n");
}

static int parse_dur(struct kw_cli *cli, const char *opt, const char *v, int64_t *us) {
  if (kw_duration_parse(v, us) != 0)
    return kw_cli_usage_error(cli, "%s: '%s' is not a duration (30d, 12h)", opt, v);
  return 0;
}

int kw_cmd_review(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"since", required_argument, NULL, 's'},
      {"until", required_argument, NULL, 'u'},
      {"key", required_argument, NULL, 'k'},
      {"format", required_argument, NULL, 'f'},
      {"output", required_argument, NULL, 'o'},
      {"unused-after", required_argument, NULL, 'U'},
      {"dormant-after", required_argument, NULL, 'D'},
      {"max-age", required_argument, NULL, 'A'},
      {"max-sources", required_argument, NULL, 'S'},
      {"no-save", no_argument, NULL, 'n'},
      {"json", no_argument, NULL, 'j'},
      {NULL, 0, NULL, 0},
  };
  const char *since = NULL, *until = NULL, *key = NULL, *output = NULL, *fmt_name = "table";
  const char *unused = NULL, *dormant = NULL, *max_age = NULL, *max_sources = NULL;
  struct kw_ruleset *rs = NULL;
  struct kw_store *st = NULL;
  struct kw_review_job *job = NULL;
  struct kw_review_opts ro;
  bool save = true;
  FILE *out = stdout;
  char err[1024];
  int c, r, rc = KW_EXIT_FAIL, fmt;
  int64_t now = kw_time_now();

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': help(); return KW_EXIT_OK;
    case 's': since = optarg; break;
    case 'u': until = optarg; break;
    case 'k': key = optarg; break;
    case 'f': fmt_name = optarg; break;
    case 'j': fmt_name = "json"; break;
    case 'o': output = optarg; break;
    case 'U': unused = optarg; break;
    case 'D': dormant = optarg; break;
    case 'A': max_age = optarg; break;
    case 'S': max_sources = optarg; break;
    case 'n': save = false; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (optind < argc)
    return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  if ((fmt = kw_report_format_parse(fmt_name)) < 0)
    return kw_cli_usage_error(cli, "--format: '%s' is not one of table, md, csv, json, html",
                              fmt_name);
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  const struct kw_review_cfg *rc_cfg = &cli->cfg->review;
  kw_review_opts_default(&ro, now);
  ro.unused_us = rc_cfg->unused_us;
  ro.dormant_us = rc_cfg->dormant_us;
  ro.max_age_us = rc_cfg->max_age_us;
  ro.max_sources = rc_cfg->max_sources;
  if (until && kw_time_parse_user(until, now, &ro.until_us) != 0)
    return kw_cli_usage_error(cli, "--until: '%s' is not a time (RFC 3339, date, epoch, -2h)",
                              until);
  ro.since_us = ro.until_us - rc_cfg->period_us;
  if (since && kw_time_parse_user(since, now, &ro.since_us) != 0)
    return kw_cli_usage_error(cli, "--since: '%s' is not a time (RFC 3339, date, epoch, -30d)",
                              since);
  if (ro.since_us >= ro.until_us)
    return kw_cli_usage_error(cli, "--since must be before --until");
  if ((unused && (r = parse_dur(cli, "--unused-after", unused, &ro.unused_us)) != 0) ||
      (dormant && (r = parse_dur(cli, "--dormant-after", dormant, &ro.dormant_us)) != 0) ||
      (max_age && (r = parse_dur(cli, "--max-age", max_age, &ro.max_age_us)) != 0))
    return r;
  if (max_sources) {
    char *end;
    long v = strtol(max_sources, &end, 10);
    if (*end || v < 0 || v > 1000000)
      return kw_cli_usage_error(cli, "--max-sources: '%s' is not a count", max_sources);
    ro.max_sources = (unsigned)v;
  }
  if (kw_ruleset_load(cli->cfg->rules, cli->cfg->rules_count, &rs, err, sizeof(err)) != 0) {
    kw_cli_error(cli, "%s", err);
    return KW_EXIT_USAGE;
  }
  save = save && key == NULL;
  if ((rc = kw_cli_open_store(cli, save ? 0 : KW_STORE_RDONLY, &st)) != 0)
    goto out;
  rc = KW_EXIT_FAIL;
  if ((r = kw_review_job_run(st, rs, &ro, key, save, &job, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    goto out;
  }
  if (output != NULL) {
    int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || (out = fdopen(fd, "w")) == NULL) {
      kw_cli_error(cli, "cannot write %s: %s", output, strerror(errno));
      if (fd >= 0)
        close(fd);
      out = stdout;
      goto out;
    }
  }
  if (kw_review_write(out, (enum kw_report_format)fmt, job->review,
                      job->has_diff ? &job->diff : NULL, job->generated_us) != 0 ||
      fflush(out) != 0) {
    kw_cli_error(cli, "cannot write the report%s%s: %s", output ? " to " : "",
                 output ? output : "", strerror(errno));
    goto out;
  }
  if (output != NULL && fmt != KW_REPORT_TABLE) {
    size_t n;
    kw_review_rows(job->review, &n);
    fprintf(stderr, "keywatch review: %zu keys reviewed, report written to %s%s\n", n, output,
            job->id ? " (stored)" : "");
  }
  rc = KW_EXIT_OK;
out:
  if (out != stdout && fclose(out) != 0 && rc == KW_EXIT_OK) {
    kw_cli_error(cli, "cannot write %s: %s", output, strerror(errno));
    rc = KW_EXIT_FAIL;
  }
  kw_review_job_free(job);
  if (kw_store_close(st) != 0 && rc == KW_EXIT_OK)
    rc = KW_EXIT_FAIL;
  kw_ruleset_destroy(rs);
  return rc;
}
