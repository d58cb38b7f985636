/* cmd_verify.c — `keywatch verify`: prove the audit trail was not changed afterwards. */
#include "cli.h"
#include "err.h"
#include "timeutil.h"

#include <getopt.h>

static void help(void) {
  printf("usage: keywatch verify [--json] [--db PATH]\n"
         "\n"
         "Recomputes the hash chain over every committed batch of calls (SHA-256 of the\n"
         "previous link and the calls' values) and names the first batch that was changed,\n"
         "deleted, reordered or had calls inserted. Reads the database only.\n"
         "\n"
         "  --json   {\"intact\", \"batches\", \"calls\", \"uncovered\", \"bad_batch\",\n"
         "            \"bad_calls\": [first, last], \"committed\", \"reason\"}\n"
         "exit status: 0 intact; 1 tampered or unreadable; 2 usage error.\n");
}

int kw_cmd_verify(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS, {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
  struct kw_store *st;
  struct kw_verify v;
  char t[40];
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
  r = kw_store_verify(st, &v);
  if (r != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    kw_store_close(st);
    return KW_EXIT_FAIL;
  }
  if (cli->json) {
    printf("{\"intact\": %s, \"batches\": %lld, \"calls\": %lld, \"uncovered\": %lld, "
           "\"bad_batch\": ",
           v.bad_batch ? "false" : "true", (long long)v.batches, (long long)v.calls,
           (long long)v.uncovered);
    if (v.bad_batch > 0)
      printf("%lld, \"bad_calls\": [%lld, %lld], \"committed\": \"%s\"", (long long)v.bad_batch,
             (long long)v.bad_first, (long long)v.bad_last,
             kw_time_format(v.bad_committed_us, t, sizeof(t)));
    else
      printf("null, \"bad_calls\": null, \"committed\": null");
    printf(", \"reason\": %s%s%s}\n", v.reason ? "\"" : "", v.reason ? v.reason : "null",
           v.reason ? "\"" : "");
  } else if (v.bad_batch > 0) {
    printf("TAMPERED: batch %lld (calls %lld-%lld, committed %s): %s\n"
           "%lld batches (%lld calls) before it are intact.\n",
           (long long)v.bad_batch, (long long)v.bad_first, (long long)v.bad_last,
           kw_time_format(v.bad_committed_us, t, sizeof(t)), v.reason, (long long)v.batches,
           (long long)v.calls);
  } else if (v.bad_batch < 0) {
    printf("TAMPERED: %s (%lld batches, %lld calls intact).\n", v.reason,
           (long long)v.batches, (long long)v.calls);
  } else {
    printf("intact: %lld batches, %lld calls", (long long)v.batches, (long long)v.calls);
    if (v.uncovered > 0)
      printf(" (%lld older calls were stored before the chain existed)", (long long)v.uncovered);
    printf("\n");
  }
  kw_store_close(st);
  return v.bad_batch ? KW_EXIT_FAIL : KW_EXIT_OK;
}
