/* cli.h — what the keywatch commands share: options common to all, config and store
 * opening with user-facing error messages, exit codes.
 *
 * Exit codes (documented in the README):
 *   0  success
 *   1  the command failed: unreadable input, database error, undetectable format, or
 *      (ingest) a file in which no line could be parsed
 *   2  usage or configuration error: bad option, invalid config file
 * Thread: main thread only.
 */
#ifndef KW_CLI_H
#define KW_CLI_H

#include "config.h"
#include "store.h"

#include <stdbool.h>
#include <stdio.h>

enum { KW_EXIT_OK = 0, KW_EXIT_FAIL = 1, KW_EXIT_USAGE = 2 };

struct kw_cli {
  const char *prog;        /* "keywatch" */
  const char *cmd;         /* "ingest" */
  const char *db_path;     /* --db, else the config's db */
  const char *config_path; /* --config or $KEYWATCH_CONFIG; NULL: built-in defaults */
  struct kw_config *cfg;
  bool json;
};

/* Long options every command takes; commands append their own. */
#define KW_CLI_COMMON_OPTS                                                               \
  {"db", required_argument, NULL, 'D'}, {"config", required_argument, NULL, 'c'},         \
      {"help", no_argument, NULL, 'h'}

/* Handles a common option (returns 1), or returns 0 when c is not one. */
int kw_cli_common_opt(struct kw_cli *cli, int c, const char *arg);

/* Loads the configuration (or the defaults); on error prints it and returns
 * KW_EXIT_USAGE. Fills cli->db_path when --db was not given. */
int kw_cli_load_config(struct kw_cli *cli);

/* Opens the store at cli->db_path; prints the error and returns KW_EXIT_FAIL on failure. */
int kw_cli_open_store(struct kw_cli *cli, int flags, struct kw_store **st);

/* Prints "keywatch CMD: message" to stderr. */
void kw_cli_error(const struct kw_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the usage error and a hint to --help; returns KW_EXIT_USAGE. */
int kw_cli_usage_error(const struct kw_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reports the option getopt_long() just rejected (unknown, or missing its value) as a
 * usage error; returns KW_EXIT_USAGE. */
int kw_cli_bad_option(const struct kw_cli *cli, char **argv);

/* The fingerprint secret's path: the config's secret_file, else keywatch.secret next to
 * the database. */
void kw_cli_secret_path(const struct kw_cli *cli, char *buf, size_t len);

/* Writes n with thousands separators ("1,234,567") into buf. */
const char *kw_cli_num(int64_t n, char *buf, size_t len);

/* Entry point of the executable. */
int kw_cli_main(int argc, char **argv);

/* Commands. */
int kw_cmd_ingest(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_keys(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_calls(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_stats(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_check(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_alerts(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_explain(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_verify(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_prune(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_run(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_status(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_revoke(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_revocations(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_shadow(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_inventory(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_review(struct kw_cli *cli, int argc, char **argv);
int kw_cmd_serve(struct kw_cli *cli, int argc, char **argv);

#endif
