/* cmd_alerts.c — `keywatch alerts`: list, show, acknowledge and resolve alerts.
 *
 *   keywatch alerts [--state S] [--severity S] [--key K] [--rule ID] [--since T] [--json]
 *   keywatch alerts show ID [--json]
 *   keywatch alerts ack|resolve|reopen ID [--note TEXT] [--by NAME]
 *
 * Listing reads a read-only connection; state changes open the writer and commit at once
 * (SQLite serialises them with a running daemon through its busy timeout).
 */
#include "alerts.h"
#include "cli.h"
#include "err.h"
#include "escape.h"
#include "timeutil.h"

#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(void) {
  printf("usage: keywatch alerts [--state S] [--severity S] [--key K] [--rule ID] [--since T]\n"
         "                       [--limit N] [--json]\n"
         "       keywatch alerts show ID [--json]\n"
         "       keywatch alerts ack|resolve|reopen ID [--note TEXT] [--by NAME]\n"
         "\n"
         "Alerts group the firings of one rule for one key within the rule's cooldown.\n"
         "Newest first.\n"
         "\n"
         "  --state S      open, acknowledged or resolved\n"
         "  --severity S   at least this severity: info, low, medium, high, critical\n"
         "  --key K        keys whose display prefix starts with K, or fingerprint K\n"
         "  --rule ID      one rule\n"
         "  --since T      last seen at or after T (RFC 3339, date, epoch, -2h, -7d);\n"
         "                 times are the calls' own (event) times\n"
         "  --limit N      at most N alerts (default 100; 0 = all)\n"
         "  --json         an array of {id, rule, type, severity, action, state, key_prefix,\n"
         "                 fingerprint, name, first_seen, last_seen, count, summary, details}\n"
         "  show ID        one alert with its sample calls\n"
         "  ack ID         acknowledge (someone is on it); resolve ID: done; reopen ID\n"
         "  --note TEXT    a note recorded with the state change\n"
         "  --by NAME      who (default: the user running the command)\n");
}

struct list {
  size_t n;
  bool json;
};

static int on_alert(const struct kw_alert_row *a, void *ctx) {
  struct list *l = ctx;
  char t[40];
  if (l->json) {
    fputs(l->n++ ? ",\n  " : "\n  ", stdout);
    kw_alert_json(stdout, a);
    return 0;
  }
  if (l->n++ == 0)
    printf("%-6s %-8s %-13s %-22s %-10s %6s  %-20s %s\n", "ID", "SEVERITY", "STATE", "RULE",
           "KEY", "COUNT", "LAST SEEN", "SUMMARY");
  printf("%-6lld %-8s %-13s %-22s ", (long long)a->id, kw_severity_name(a->severity), a->state,
         a->rule);
  kw_term_str(stdout, a->prefix ? a->prefix : "-", a->prefix ? strlen(a->prefix) : 1, 10);
  printf("%*s %6lld  ", (int)(10 - (a->prefix ? strlen(a->prefix) : 1)), "", (long long)a->count);
  kw_time_format(a->last_us, t, sizeof(t));
  t[19] = 'Z';
  t[20] = '\0';
  printf("%-20s ", t);
  kw_term_str(stdout, a->summary, strlen(a->summary), 100);
  putchar('\n');
  return 0;
}

static int on_sample(const struct kw_call_row *c, void *ctx) {
  struct list *l = ctx;
  char t[40], addr[64];
  if (l->json) {
    printf("%s{\"time\": \"%s\", \"client\": ", l->n++ ? ", " : "",
           kw_time_format(c->ts_us, t, sizeof(t)));
    kw_json_cstr(stdout, c->client.family ? kw_addr_format(&c->client, addr, sizeof(addr)) : NULL);
    fputs(", \"method\": ", stdout);
    kw_json_cstr(stdout, c->method);
    fputs(", \"path\": ", stdout);
    kw_json_cstr(stdout, c->path);
    printf(", \"status\": %d, \"user_agent\": ", c->status);
    kw_json_cstr(stdout, c->user_agent);
    putchar('}');
    return 0;
  }
  printf("  %s  %-15s ", kw_time_format(c->ts_us, t, sizeof(t)),
         c->client.family ? kw_addr_format(&c->client, addr, sizeof(addr)) : "-");
  kw_term_str(stdout, c->method, strlen(c->method), 7);
  putchar(' ');
  kw_term_str(stdout, c->path, strlen(c->path), 60);
  printf(" %d ", c->status);
  kw_term_str(stdout, c->user_agent ? c->user_agent : "-", c->user_agent ? strlen(c->user_agent) : 1, 50);
  putchar('\n');
  return 0;
}

static int on_one(const struct kw_alert_row *a, void *ctx) {
  struct list *l = ctx;
  char t1[40], t2[40];
  l->n++;
  if (l->json) {
    /* The alert's document plus its samples: print the document without its last '}'. */
    char *doc = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&doc, &len);
    if (m == NULL)
      return 1;
    kw_alert_json(m, a);
    fclose(m);
    if (len > 0)
      doc[len - 1] = '\0';
    printf("%s, \"samples\": [", doc);
    free(doc);
    return 0;
  }
  printf("alert %lld: %s (%s, %s)\n  rule      %s (%s)\n  key       ", (long long)a->id,
         a->state, kw_severity_name(a->severity), a->action, a->rule, a->type);
  kw_term_str(stdout, a->prefix ? a->prefix : "(anonymous)",
              a->prefix ? strlen(a->prefix) : 11, 40);
  if (a->name) {
    fputs(" (", stdout);
    kw_term_str(stdout, a->name, strlen(a->name), 60);
    putchar(')');
  }
  printf("\n  seen      %s .. %s, %lld time%s\n  summary   ", kw_time_format(a->first_us, t1, sizeof(t1)),
         kw_time_format(a->last_us, t2, sizeof(t2)), (long long)a->count, a->count == 1 ? "" : "s");
  kw_term_str(stdout, a->summary, strlen(a->summary), 0);
  fputs("\n  details   ", stdout);
  kw_term_str(stdout, a->details, strlen(a->details), 0);
  if (a->state_by) {
    printf("\n  %-9s by ", a->state);
    kw_term_str(stdout, a->state_by, strlen(a->state_by), 60);
    printf(" at %s", kw_time_format(a->state_at_us, t1, sizeof(t1)));
    if (a->note) {
      fputs(": ", stdout);
      kw_term_str(stdout, a->note, strlen(a->note), 200);
    }
  }
  printf("\n  samples\n");
  return 0;
}

static int parse_id(const char *s, int64_t *id) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v <= 0)
    return -1;
  *id = v;
  return 0;
}

int kw_cmd_alerts(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"json", no_argument, NULL, 'j'},
      {"state", required_argument, NULL, 's'},
      {"severity", required_argument, NULL, 'v'},
      {"key", required_argument, NULL, 'k'},
      {"rule", required_argument, NULL, 'r'},
      {"since", required_argument, NULL, 'S'},
      {"limit", required_argument, NULL, 'l'},
      {"note", required_argument, NULL, 'n'},
      {"by", required_argument, NULL, 'b'},
      {NULL, 0, NULL, 0},
  };
  struct kw_alerts_query q = {.min_severity = -1, .limit = 100};
  struct list l = {0};
  const char *note = NULL, *by = NULL, *verb = NULL;
  struct kw_store *st;
  int64_t id = 0;
  char *end;
  int c, r;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': help(); return KW_EXIT_OK;
    case 'j': cli->json = true; break;
    case 's':
      if (strcmp(optarg, "open") && strcmp(optarg, "acknowledged") && strcmp(optarg, "resolved"))
        return kw_cli_usage_error(cli, "--state: '%s' is not open, acknowledged or resolved",
                                  optarg);
      q.state = optarg;
      break;
    case 'v':
      if ((q.min_severity = kw_severity_parse(optarg)) < 0)
        return kw_cli_usage_error(cli, "--severity: '%s' is not info, low, medium, high or "
                                       "critical", optarg);
      break;
    case 'k': q.key = optarg; break;
    case 'r': q.rule = optarg; break;
    case 'S':
      if (kw_time_parse_user(optarg, kw_time_now(), &q.since_us) != 0)
        return kw_cli_usage_error(cli, "--since: cannot read time '%s'", optarg);
      break;
    case 'l':
      q.limit = strtoll(optarg, &end, 10);
      if (*optarg == '\0' || *end != '\0' || q.limit < 0)
        return kw_cli_usage_error(cli, "--limit: '%s' is not a count", optarg);
      break;
    case 'n': note = optarg; break;
    case 'b': by = optarg; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (optind < argc) {
    verb = argv[optind++];
    if (strcmp(verb, "show") && strcmp(verb, "ack") && strcmp(verb, "resolve") &&
        strcmp(verb, "reopen"))
      return kw_cli_usage_error(cli, "unknown action '%s' (show, ack, resolve, reopen)", verb);
    if (optind >= argc || parse_id(argv[optind], &id) != 0)
      return kw_cli_usage_error(cli, "%s needs an alert ID (a number, see `keywatch alerts`)",
                                verb);
    if (++optind < argc)
      return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  }
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if (verb != NULL && strcmp(verb, "show") != 0) {
    const char *state = strcmp(verb, "ack") == 0       ? "acknowledged"
                        : strcmp(verb, "resolve") == 0 ? "resolved"
                                                       : "open";
    char user[64];
    if (by == NULL) {
      struct passwd *pw = getpwuid(getuid());
      snprintf(user, sizeof(user), "%s", pw ? pw->pw_name : "unknown");
      by = user;
    }
    if ((r = kw_cli_open_store(cli, 0, &st)) != 0)
      return r;
    r = kw_store_alert_set_state(st, id, state, by, note);
    if (r == 0)
      r = kw_store_commit(st);
    if (r == KW_ENOTFOUND)
      kw_cli_error(cli, "no alert %lld", (long long)id);
    else if (r != 0)
      kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    else if (!cli->json)
      printf("alert %lld %s by %s\n", (long long)id, state, by);
    else
      printf("{\"id\": %lld, \"state\": \"%s\"}\n", (long long)id, state);
    kw_store_close(st);
    return r == 0 ? KW_EXIT_OK : KW_EXIT_FAIL;
  }
  if ((r = kw_cli_open_store(cli, KW_STORE_RDONLY, &st)) != 0)
    return r;
  l.json = cli->json;
  if (verb != NULL) { /* show */
    q = (struct kw_alerts_query){.min_severity = -1, .id = id};
    r = kw_store_alerts(st, &q, on_one, &l);
    if (r == 0 && l.n == 0) {
      kw_cli_error(cli, "no alert %lld", (long long)id);
      kw_store_close(st);
      return KW_EXIT_FAIL;
    }
    l.n = 0;
    if (r == 0)
      r = kw_store_alert_calls(st, id, 20, on_sample, &l);
    if (cli->json)
      printf("]}\n");
  } else {
    if (cli->json)
      fputs("[", stdout);
    r = kw_store_alerts(st, &q, on_alert, &l);
    if (cli->json)
      fputs(l.n ? "\n]\n" : "]\n", stdout);
    else if (l.n == 0)
      printf("no matching alerts\n");
  }
  if (r != 0)
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
  kw_store_close(st);
  return r ? KW_EXIT_FAIL : KW_EXIT_OK;
}
