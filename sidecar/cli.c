/* cli.c — command dispatch and what the commands share (see cli.h). */
#include "cli.h"
#include "err.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct command {
  const char *name;
  int (*fn)(struct kw_cli *cli, int argc, char **argv);
  const char *summary;
} commands[] = {
    {"run", kw_cmd_run, "the sidecar: follow logs / receive syslog, record every call"},
    {"serve", kw_cmd_serve, "the dashboard, JSON API and /metrics over the database"},
    {"status", kw_cmd_status, "the daemon's sources: positions, backlog, lag, gaps, drops"},
    {"ingest", kw_cmd_ingest, "read access logs into the database"},
    {"keys", kw_cmd_keys, "per-key activity: calls, first/last seen, endpoints, clients"},
    {"calls", kw_cmd_calls, "the audit trail of calls, by key and time"},
    {"stats", kw_cmd_stats, "totals by status, method and endpoint"},
    {"alerts", kw_cmd_alerts, "alerts: list, show, acknowledge, resolve"},
    {"explain", kw_cmd_explain, "replay logs against the rules: why each fired or not"},
    {"revoke", kw_cmd_revoke, "revoke a key at its key store now (queued and audited)"},
    {"revocations", kw_cmd_revocations, "revocations: decided, suppressed, done, failed"},
    {"shadow", kw_cmd_shadow, "replay logs: which keys would have been revoked, when"},
    {"review", kw_cmd_review, "least privilege: rights granted vs used, per key"},
    {"inventory", kw_cmd_inventory, "the keys the key stores list, next to their traffic"},
    {"verify", kw_cmd_verify, "prove the audit trail was not changed (hash chain)"},
    {"prune", kw_cmd_prune, "retention: remove old calls, keeping the hash chain whole"},
    {"check", kw_cmd_check, "validate a configuration file"},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: keywatch [--db PATH] [--config FILE] COMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "keywatch records every API call per key from proxy access logs, and shows\n"
          "which keys are used how, from where, with which rights.\n"
          "\n"
          "commands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\n"
          "options for every command:\n"
          "  --db PATH        database file (default: the config's db, else ./keywatch.db)\n"
          "  --config FILE    configuration file (default: $KEYWATCH_CONFIG, else built-in\n"
          "                   defaults; see keywatch.yaml)\n"
          "  -h, --help       help for keywatch or for a command\n"
          "  --version        print the version\n"
          "\n"
          "environment:\n"
          "  KEYWATCH_SECRET  fingerprint secret (>= 32 characters) instead of the secret\n"
          "                   file created next to the database\n"
          "  KEYWATCH_CONFIG  configuration file when --config is not given\n"
          "\n"
          "exit status: 0 success, 1 failure, 2 usage or configuration error.\n"
          "Run 'keywatch COMMAND --help' for a command's options.\n");
}

static void vreport(const struct kw_cli *cli, const char *fmt, va_list ap) {
  fprintf(stderr, "%s%s%s: ", cli->prog, cli->cmd ? " " : "", cli->cmd ? cli->cmd : "");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

void kw_cli_error(const struct kw_cli *cli, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(cli, fmt, ap);
  va_end(ap);
}

int kw_cli_usage_error(const struct kw_cli *cli, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(cli, fmt, ap);
  va_end(ap);
  fprintf(stderr, "Try '%s %s --help'.\n", cli->prog, cli->cmd ? cli->cmd : "");
  return KW_EXIT_USAGE;
}

int kw_cli_bad_option(const struct kw_cli *cli, char **argv) {
  const char *arg = optind > 0 ? argv[optind - 1] : "?";
  if (optopt != 0 && arg[0] == '-' && arg[1] != '-')
    return kw_cli_usage_error(cli, "unknown option or missing value: '-%c'", optopt);
  return kw_cli_usage_error(cli, "unknown option or missing value: '%s'", arg);
}

int kw_cli_common_opt(struct kw_cli *cli, int c, const char *arg) {
  switch (c) {
  case 'D': cli->db_path = arg; return 1;
  case 'c': cli->config_path = arg; return 1;
  default: return 0;
  }
}

int kw_cli_load_config(struct kw_cli *cli) {
  char err[1024];
  int r;

  if (cli->config_path == NULL)
    cli->config_path = getenv("KEYWATCH_CONFIG");
  if (cli->config_path != NULL && cli->config_path[0] != '\0')
    r = kw_config_load(cli->config_path, &cli->cfg, err, sizeof(err));
  else
    r = kw_config_default(&cli->cfg);
  if (r != 0) {
    if (r == KW_ENOMEM)
      snprintf(err, sizeof(err), "%s", kw_strerror(r));
    kw_cli_error(cli, "%s", err);
    return KW_EXIT_USAGE;
  }
  if (cli->db_path == NULL)
    cli->db_path = cli->cfg->db;
  return 0;
}

int kw_cli_open_store(struct kw_cli *cli, int flags, struct kw_store **st) {
  char err[1024];
  if (kw_store_open(cli->db_path, flags, st, err, sizeof(err)) != 0) {
    kw_cli_error(cli, "%s", err);
    return KW_EXIT_FAIL;
  }
  return 0;
}

void kw_cli_secret_path(const struct kw_cli *cli, char *buf, size_t len) {
  char dir[PATH_MAX];
  if (cli->cfg->secret_file != NULL) {
    snprintf(buf, len, "%s", cli->cfg->secret_file);
    return;
  }
  snprintf(dir, sizeof(dir), "%s", cli->db_path);
  snprintf(buf, len, "%s/keywatch.secret", dirname(dir));
}

const char *kw_cli_num(int64_t n, char *buf, size_t len) {
  char digits[32];
  int nd = snprintf(digits, sizeof(digits), "%lld", (long long)(n < 0 ? -n : n));
  size_t o = 0;
  if (n < 0 && o + 1 < len)
    buf[o++] = '-';
  for (int i = 0; i < nd && o + 2 < len; i++) {
    buf[o++] = digits[i];
    if ((nd - i - 1) % 3 == 0 && i != nd - 1)
      buf[o++] = ',';
  }
  buf[o] = '\0';
  return buf;
}

/* Options that take a value, to skip over them when looking for the command word. */
static int takes_value(const char *opt) {
  return strcmp(opt, "--db") == 0 || strcmp(opt, "--config") == 0;
}

int kw_cli_main(int argc, char **argv) {
  struct kw_cli cli = {.prog = "keywatch"};
  char **args;
  int cmd_at = -1, r;

  for (int i = 1; i < argc; i++) {
    if (argv[i][0] != '-') {
      cmd_at = i;
      break;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("keywatch %s\n", KW_VERSION);
      return KW_EXIT_OK;
    }
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return KW_EXIT_OK;
    }
    if (takes_value(argv[i]))
      i++;
    else if (strncmp(argv[i], "--db=", 5) != 0 && strncmp(argv[i], "--config=", 9) != 0) {
      fprintf(stderr, "keywatch: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return KW_EXIT_USAGE;
    }
  }
  if (cmd_at < 0) {
    usage(stderr);
    return KW_EXIT_USAGE;
  }
  for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
    if (strcmp(argv[cmd_at], commands[c].name) != 0)
      continue;
    /* argv for the command: its name, then the global options, then its own. */
    args = calloc((size_t)argc + 1, sizeof(char *));
    if (args == NULL)
      return KW_EXIT_FAIL;
    int n = 0;
    args[n++] = argv[cmd_at];
    for (int i = 1; i < cmd_at; i++)
      args[n++] = argv[i];
    for (int i = cmd_at + 1; i < argc; i++)
      args[n++] = argv[i];
    cli.cmd = commands[c].name;
    optind = 1;
    opterr = 0; /* kw_cli_bad_option() reports, naming the command */
    r = commands[c].fn(&cli, n, args);
    kw_config_destroy(cli.cfg);
    free(args);
    return r;
  }
  fprintf(stderr, "keywatch: unknown command '%s'\n", argv[cmd_at]);
  usage(stderr);
  return KW_EXIT_USAGE;
}
