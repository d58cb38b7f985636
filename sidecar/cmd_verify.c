/* cmd_verify.c — `keywatch verify`: prove the audit trail was not changed afterwards;
 * `keywatch prune`: retention that moves the hash chain's anchor instead of breaking it. */
#include "cli.h"
#include "err.h"
#include "fingerprint.h"
#include "timeutil.h"

#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>

#define PRUNE_CHUNK 50000 /* calls removed per transaction */


static void help(void) {
  printf("usage: keywatch verify [--json] [--db PATH]\n"
         "\n"
         "Recomputes the hash chain over every committed batch of calls (SHA-256 of the\n"
         "previous link and the calls' values) and names the first batch that was changed,\n"
         "deleted, reordered or had calls inserted. Reads the database only.\n"
         "\n"
         "When `keywatch prune` (retention) removed older batches, the chain starts from\n"
         "its anchor: the hash of the last batch removed, which every prune logs. The\n"
         "head (the hash of the newest batch) is printed so that it can be kept elsewhere:\n"
         "whoever can rewrite the database can rewrite the chain, but not a head kept\n"
         "off the host.\n"
         "\n"
         "  --json   {\"intact\", \"batches\", \"calls\", \"uncovered\", \"bad_batch\",\n"
         "            \"bad_calls\": [first, last], \"committed\", \"reason\", \"head\",\n"
         "            \"anchor\": {\"batch\", \"pruned_calls\", \"moved\"} or null}\n"
         "exit status: 0 intact; 1 tampered or unreadable; 2 usage error.\n");
}

int kw_cmd_verify(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS, {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
  struct kw_store *st;
  struct kw_verify v;
  char t[40], hex[65], n[32];
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
    printf(", \"reason\": %s%s%s, \"head\": ", v.reason ? "\"" : "",
           v.reason ? v.reason : "null", v.reason ? "\"" : "");
    if (v.bad_batch == 0 && v.has_head)
      printf("\"%s\"", kw_hex(v.head, sizeof(v.head), hex));
    else
      printf("null");
    if (v.anchor_batch > 0)
      printf(", \"anchor\": {\"batch\": %lld, \"pruned_calls\": %lld, \"moved\": \"%s\"}}\n",
             (long long)v.anchor_batch, (long long)v.pruned_calls,
             kw_time_format(v.anchor_moved_us, t, sizeof(t)));
    else
      printf(", \"anchor\": null}\n");
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
    if (v.anchor_batch > 0)
      printf("anchor: batch %lld (%s older calls pruned; last prune %s)\n",
             (long long)v.anchor_batch, kw_cli_num(v.pruned_calls, n, sizeof(n)),
             kw_time_format(v.anchor_moved_us, t, sizeof(t)));
    if (v.has_head)
      printf("head: %s\n", kw_hex(v.head, sizeof(v.head), hex));
  }
  kw_store_close(st);
  return v.bad_batch ? KW_EXIT_FAIL : KW_EXIT_OK;
}

static void prune_help(void) {
  printf("usage: keywatch prune [--older-than AGE] [--dry-run] [--json] [--db PATH]\n"
         "\n"
         "Retention: removes stored calls older than AGE (by their own time) without\n"
         "breaking the hash chain. Whole committed batches go, oldest first, each\n"
         "recomputed and found intact before it is removed (a batch that fails stops the\n"
         "prune: the evidence stays); the newest batch always stays, as the chain's head.\n"
         "The chain's anchor moves to the last batch removed,\n"
         "so `keywatch verify` still proves the rest. Per-key totals, the rollups that\n"
         "reviews and the dashboard read, and alerts are kept; alerts lose their\n"
         "references to removed calls. Runs in transactions of whole batches of about\n"
         "50,000 calls (one batch of `ingest` can be bigger: batch_rows), so a\n"
         "running `keywatch run` keeps writing between them.\n"
         "\n"
         "  --older-than AGE  90d, 12h ... (default: the config's retention.calls)\n"
         "  --dry-run         say what would be removed; change nothing\n"
         "  --json            {\"batches\", \"calls\", \"anchor_batch\", \"dry_run\",\n"
         "                     \"stopped_at\": batch or null, \"reason\"}\n"
         "exit status: 0 done; 1 a batch failed its check (tampering) or database error;\n"
         "2 usage error.\n");
}

int kw_cmd_prune(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {KW_CLI_COMMON_OPTS,
                                       {"older-than", required_argument, NULL, 'o'},
                                       {"dry-run", no_argument, NULL, 'n'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
  const char *older = NULL;
  struct kw_prune p, total = {0};
  bool dry = false, progress = isatty(STDERR_FILENO);
  struct kw_store *st;
  int64_t age, cutoff;
  char n1[32], n2[32], t[40];
  int c, r;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': prune_help(); return KW_EXIT_OK;
    case 'o': older = optarg; continue;
    case 'n': dry = true; continue;
    case 'j': cli->json = true; continue;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (optind < argc)
    return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if (older != NULL) {
    if (kw_duration_parse(older, &age) != 0 || age <= 0)
      return kw_cli_usage_error(cli, "--older-than: '%s' is not an age (90d, 12h, 30m)",
                                older);
  } else if ((age = cli->cfg->retention.calls_us) == 0) {
    return kw_cli_usage_error(cli, "give --older-than AGE, or set retention.calls in the "
                                   "configuration");
  }
  cutoff = kw_time_now() - age;
  if ((r = kw_cli_open_store(cli, 0, &st)) != 0)
    return r;
  do {
    /* A dry run looks at everything in one transaction and rolls it back. */
    r = kw_store_prune(st, cutoff, dry ? 0 : PRUNE_CHUNK, &p);
    if (r == 0 && !dry)
      r = kw_store_commit(st);
    if (r != 0)
      break;
    total.batches += p.batches;
    total.calls += p.calls;
    total.anchor_batch = p.anchor_batch;
    total.bad_batch = p.bad_batch;
    total.reason = p.reason;
    if (progress && p.more)
      fprintf(stderr, "\rkeywatch prune: %s calls in %s batches removed...",
              kw_cli_num(total.calls, n1, sizeof(n1)), kw_cli_num(total.batches, n2, sizeof(n2)));
  } while (p.more && p.bad_batch == 0);
  if (progress && total.calls > 0)
    fputc('\n', stderr);
  if (r != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    kw_store_close(st); /* an uncommitted chunk is rolled back */
    return KW_EXIT_FAIL;
  }
  kw_store_close(st); /* a dry run's transaction is rolled back here */
  if (cli->json) {
    printf("{\"batches\": %lld, \"calls\": %lld, \"anchor_batch\": %lld, \"dry_run\": %s, "
           "\"stopped_at\": ",
           (long long)total.batches, (long long)total.calls, (long long)total.anchor_batch,
           dry ? "true" : "false");
    if (total.bad_batch > 0)
      printf("%lld, \"reason\": \"%s\"}\n", (long long)total.bad_batch, total.reason);
    else
      printf("null, \"reason\": null}\n");
  } else {
    printf("%s %s calls in %s batches older than %s%s\n", dry ? "would remove" : "removed",
           kw_cli_num(total.calls, n1, sizeof(n1)), kw_cli_num(total.batches, n2, sizeof(n2)),
           kw_time_format(cutoff, t, sizeof(t)),
           dry ? " (dry run: nothing changed)" : "");
    if (total.anchor_batch > 0 && !dry)
      printf("anchor: batch %lld\n", (long long)total.anchor_batch);
    if (total.bad_batch > 0)
      printf("STOPPED at batch %lld: %s. Run `keywatch verify`.\n",
             (long long)total.bad_batch, total.reason);
  }
  return total.bad_batch > 0 ? KW_EXIT_FAIL : KW_EXIT_OK;
}
