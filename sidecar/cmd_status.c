/* cmd_status.c — `keywatch status`: the daemon and its sources, from the store.
 *
 * Reads a read-only connection: the daemon's heartbeat row, each source's counters,
 * committed positions, gaps and the status the daemon writes every run.status_ms.
 */
#include "cli.h"
#include "err.h"
#include "escape.h"
#include "timeutil.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>

static void help(void) {
  printf("usage: keywatch status [--json] [--db PATH]\n"
         "\n"
         "The daemon (pid, running or not, last heartbeat) and, per source: state, lines,\n"
         "calls, malformed lines, read offset, backlog (bytes not yet read), lines/s, lag\n"
         "(p50/p99 from a line's own timestamp to its commit), gaps (data lost before it\n"
         "could be read) and drops (UDP datagrams the kernel dropped). Then every resource\n"
         "bound that was hit (README \"Limits\"): how often, and when last.\n"
         "\n"
         "  --json   {\"daemon\": {pid, running, started, heartbeat, config},\n"
         "            \"sources\": [{name, kind, format, state, lines, calls, malformed,\n"
         "            bytes, offset, files, backlog, rate, lag_p50_ms, lag_p99_ms, gaps,\n"
         "            gap_bytes, drops, detail, updated}],\n"
         "            \"limits\": [{limit, hits, last_hit}]}\n"
         "exit status: 0; 1 when the database cannot be read.\n");
}

struct out {
  size_t n;
};

static void jtime(int64_t us) {
  char b[40];
  if (us == 0)
    fputs("null", stdout);
  else
    printf("\"%s\"", kw_time_format(us, b, sizeof(b)));
}

static void jms(int64_t us) {
  if (us < 0)
    fputs("null", stdout);
  else
    printf("%.1f", (double)us / 1000.0);
}

static int on_json(const struct kw_status_row *s, void *ctx) {
  struct out *o = ctx;
  printf("%s\n    {\"name\": ", o->n++ ? "," : "");
  kw_json_cstr(stdout, s->name);
  printf(", \"kind\": ");
  kw_json_cstr(stdout, s->kind);
  printf(", \"format\": ");
  kw_json_cstr(stdout, s->format);
  printf(", \"state\": ");
  kw_json_cstr(stdout, s->state);
  printf(", \"lines\": %lld, \"calls\": %lld, \"malformed\": %lld, \"bytes\": %lld, "
         "\"offset\": ",
         (long long)s->lines, (long long)s->calls, (long long)s->malformed,
         (long long)s->bytes);
  if (s->offset >= 0)
    printf("%lld", (long long)s->offset);
  else
    fputs("null", stdout);
  printf(", \"files\": %lld, \"backlog\": %lld, \"rate\": %.1f, \"lag_p50_ms\": ",
         (long long)s->files, (long long)s->backlog, s->rate);
  jms(s->lag_p50_us);
  printf(", \"lag_p99_ms\": ");
  jms(s->lag_p99_us);
  printf(", \"gaps\": %lld, \"gap_bytes\": %lld, \"drops\": %lld, \"detail\": ",
         (long long)s->gaps, (long long)s->gap_bytes, (long long)s->drops);
  kw_json_cstr(stdout, s->detail);
  printf(", \"updated\": ");
  jtime(s->updated_us);
  putchar('}');
  return 0;
}

static int on_table(const struct kw_status_row *s, void *ctx) {
  struct out *o = ctx;
  char a[32], b[32], c[32], lag[48];
  if (o->n++ == 0)
    printf("\n%-44s %-9s %-10s %12s %12s %9s %12s %9s %17s %5s %6s\n", "SOURCE", "KIND",
           "STATE", "LINES", "CALLS", "MALFORMED", "BACKLOG", "LINES/S", "LAG P50/P99 ms",
           "GAPS", "DROPS");
  kw_term_str(stdout, s->name, strlen(s->name), 44);
  printf("%*s ", (int)(strlen(s->name) < 44 ? 44 - strlen(s->name) : 0), "");
  if (s->lag_p50_us >= 0)
    snprintf(lag, sizeof(lag), "%.0f/%.0f", (double)s->lag_p50_us / 1000.0,
             (double)s->lag_p99_us / 1000.0);
  else
    snprintf(lag, sizeof(lag), "-");
  printf("%-9s %-10s %12s %12s %9lld %12s %9.0f %17s %5lld %6lld\n", s->kind,
         s->state ? s->state : "-", kw_cli_num(s->lines, a, sizeof(a)),
         kw_cli_num(s->calls, b, sizeof(b)), (long long)s->malformed,
         kw_cli_num(s->backlog, c, sizeof(c)), s->rate, lag, (long long)s->gaps,
         (long long)s->drops);
  return 0;
}

/* A resource bound that was hit (README "Limits"). */
static int on_limit_json(const char *name, int64_t hits, int64_t last_us, void *ctx) {
  struct out *o = ctx;
  printf("%s{\"limit\": ", o->n++ ? ", " : "");
  kw_json_cstr(stdout, name);
  printf(", \"hits\": %lld, \"last_hit\": ", (long long)hits);
  jtime(last_us);
  putchar('}');
  return 0;
}

static int on_limit_table(const char *name, int64_t hits, int64_t last_us, void *ctx) {
  struct out *o = ctx;
  char t[40], n[32];
  if (o->n++ == 0)
    printf("\nlimits hit (input skipped, cut or refused; README \"Limits\"):\n%-26s %14s  %s\n",
           "LIMIT", "HITS", "LAST");
  printf("%-26s %14s  %s\n", name, kw_cli_num(hits, n, sizeof(n)),
         kw_time_format(last_us, t, sizeof(t)));
  return 0;
}

int kw_cmd_status(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS, {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
  struct kw_daemon_row dr;
  struct kw_store *st;
  struct out o = {0};
  bool running;
  char t1[40], t2[40];
  int c, r;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    if (c == 'h') {
      help();
      return KW_EXIT_OK;
    }
    if (c == 'j') {
      cli->json = true;
      continue;
    }
    return kw_cli_bad_option(cli, argv);
  }
  if (optind < argc)
    return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if ((r = kw_cli_open_store(cli, KW_STORE_RDONLY, &st)) != 0)
    return r;
  if (kw_store_daemon(st, &dr) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    kw_store_close(st);
    return KW_EXIT_FAIL;
  }
  running = dr.pid > 0 && (kill((pid_t)dr.pid, 0) == 0 || errno == EPERM);
  if (cli->json) {
    printf("{\"daemon\": {\"pid\": ");
    if (dr.pid > 0)
      printf("%lld", (long long)dr.pid);
    else
      fputs("null", stdout);
    printf(", \"running\": %s, \"started\": ", running ? "true" : "false");
    jtime(dr.started_us);
    printf(", \"heartbeat\": ");
    jtime(dr.heartbeat_us);
    printf(", \"config\": ");
    kw_json_cstr(stdout, dr.config[0] ? dr.config : NULL);
    printf("},\n  \"sources\": [");
  } else if (dr.pid == 0) {
    printf("daemon: never ran on %s\n", cli->db_path);
  } else {
    printf("daemon: pid %lld, %s, started %s, last heartbeat %s\n", (long long)dr.pid,
           running ? "running" : "not running", kw_time_format(dr.started_us, t1, sizeof(t1)),
           kw_time_format(dr.heartbeat_us, t2, sizeof(t2)));
  }
  r = kw_store_status(st, cli->json ? on_json : on_table, &o);
  if (cli->json)
    printf("%s],\n  \"limits\": [", o.n ? "\n  " : "");
  else if (o.n == 0)
    printf("no sources yet\n");
  o.n = 0;
  if (r == 0)
    r = kw_store_limit_hits(st, cli->json ? on_limit_json : on_limit_table, &o);
  if (cli->json)
    printf("]}\n");
  if (r != 0)
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
  kw_store_close(st);
  return r ? KW_EXIT_FAIL : KW_EXIT_OK;
}
