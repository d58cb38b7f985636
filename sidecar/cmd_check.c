/* cmd_check.c — `keywatch check`: validate a configuration as `ingest` would use it. */
#include "../analyzer/rules.h"
#include "../collector/format.h"
#include "../analyzer/responder.h"
#include "cli.h"

#include <getopt.h>
#include <string.h>

static void help(void) {
  printf("usage: keywatch check [--config FILE] [FILE]\n"
         "\n"
         "Validates a configuration file (FILE, --config, or $KEYWATCH_CONFIG): YAML syntax,\n"
         "every option's type and range, the log format and JSON field mapping, and the\n"
         "rule packs it loads (rules:; builtin:default without one). Errors\n"
         "name the file, line and field. Exit status 0 when valid, 2 when not.\n");
}

int kw_cmd_check(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {KW_CLI_COMMON_OPTS, {NULL, 0, NULL, 0}};
  struct kw_format f;
  char err[1024];
  int c, r;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    if (c == 'h') {
      help();
      return KW_EXIT_OK;
    }
    return kw_cli_bad_option(cli, argv);
  }
  if (optind < argc)
    cli->config_path = argv[optind++];
  if (optind < argc)
    return kw_cli_usage_error(cli, "one configuration file at a time");
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if (strcmp(cli->cfg->ingest.format, "auto") != 0) {
    if (kw_format_create(&cli->cfg->ingest, cli->cfg->ingest.format, &f, err, sizeof(err))) {
      const char *fmt = cli->cfg->ingest.format;
      const char *field = strcmp(fmt, "nginx") == 0 ? "ingest.log_format"
                          : strcmp(fmt, "json") == 0 || strstr(err, "ingest.json")
                              ? "ingest.json"
                              : "ingest.format";
      char msg[1200];
      kw_config_error(cli->cfg, field, msg, sizeof(msg), "%s", err);
      kw_cli_error(cli, "%s", msg);
      return KW_EXIT_USAGE;
    }
    kw_format_destroy(&f);
  }
  if (kw_responder_check(cli->cfg, err, sizeof(err)) != 0) {
    kw_cli_error(cli, "%s", err);
    return KW_EXIT_USAGE;
  }
  {
    struct kw_ruleset *rs;
    if (kw_ruleset_load(cli->cfg->rules, cli->cfg->rules_count, &rs, err, sizeof(err)) != 0) {
      kw_cli_error(cli, "%s", err);
      return KW_EXIT_USAGE;
    }
    printf("%s: ok (%zu rules from %u pack%s)\n",
           cli->config_path ? cli->config_path : "built-in defaults", rs->n,
           cli->cfg->rules_count, cli->cfg->rules_count == 1 ? "" : "s");
    kw_ruleset_destroy(rs);
  }
  return KW_EXIT_OK;
}
