/* cmd_query.c — the read-only commands over the store: `keys`, `calls`, `stats`.
 *
 * Each opens its own read-only connection.  Output is a terminal table by default (every
 * traffic-derived string through kw_term_str, so no escape sequence from a user agent
 * reaches the terminal) or one JSON document with --json (stable field names, documented
 * in the README; times RFC 3339 UTC; strings through kw_json_str).
 */
#include "cli.h"
#include "err.h"
#include "escape.h"
#include "fingerprint.h"
#include "timeutil.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* Parses the options every query command takes; returns -1 to go on, else an exit code. */
static int parse_common(struct kw_cli *cli, int argc, char **argv, const struct option *opts,
                        void (*help)(void), int (*own)(int c, const char *arg, void *ctx),
                        void *ctx) {
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
    if (own == NULL || (r = own(c, optarg, ctx)) < 0)
      return kw_cli_bad_option(cli, argv);
    if (r > 0)
      return r;
  }
  if (optind < argc)
    return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  return kw_cli_load_config(cli) ? KW_EXIT_USAGE : -1;
}

static void json_time(int64_t us) {
  char buf[40];
  if (us == 0) {
    fputs("null", stdout);
    return;
  }
  printf("\"%s\"", kw_time_format(us, buf, sizeof(buf)));
}

/* "2026-11-22T05:12:06Z" for tables (no milliseconds). */
static const char *table_time(int64_t us, char *buf, size_t len) {
  if (us == 0)
    return "-";
  kw_time_format(us, buf, len);
  if (strlen(buf) == 24) {
    buf[19] = 'Z';
    buf[20] = '\0';
  }
  return buf;
}

/* ---- keys -------------------------------------------------------------------------- */

static void keys_help(void) {
  printf("usage: keywatch keys [--json] [--db PATH]\n"
         "\n"
         "Per key: display prefix, fingerprint, name, calls, share of errors (4xx/5xx),\n"
         "distinct endpoints and client addresses, first and last call; most active first.\n"
         "Calls without a key appear as one row with prefix null / '(anonymous)'.\n"
         "\n"
         "  --json     an array of {prefix, fingerprint, name, calls, first_seen,\n"
         "             last_seen, endpoints, clients, errors, bytes}\n");
}

struct keys_out {
  size_t n;
};

static int on_key_json(const struct kw_key_row *k, void *ctx) {
  struct keys_out *o = ctx;
  char hex[2 * KW_FP_LEN + 1];
  printf("%s\n  {\"prefix\": ", o->n++ ? "," : "");
  kw_json_cstr(stdout, k->prefix);
  printf(", \"fingerprint\": ");
  if (k->prefix != NULL)
    printf("\"%s\"", kw_fingerprint_hex(k->fp, hex));
  else
    fputs("null", stdout);
  printf(", \"name\": ");
  kw_json_cstr(stdout, k->name);
  printf(", \"calls\": %lld, \"first_seen\": ", (long long)k->calls);
  json_time(k->first_us);
  printf(", \"last_seen\": ");
  json_time(k->last_us);
  printf(", \"endpoints\": %lld, \"clients\": %lld, \"errors\": %lld, \"bytes\": %lld}",
         (long long)k->endpoints, (long long)k->clients, (long long)k->errors,
         (long long)k->bytes);
  return 0;
}

static int on_key_table(const struct kw_key_row *k, void *ctx) {
  struct keys_out *o = ctx;
  char hex[2 * KW_FP_LEN + 1], calls[32], t1[40], t2[40];
  if (o->n++ == 0)
    printf("%-16s %-12s %-20s %12s %6s %9s %7s  %-20s  %-20s\n", "PREFIX", "FINGERPRINT",
           "NAME", "CALLS", "ERR%", "ENDPOINTS", "CLIENTS", "FIRST SEEN", "LAST SEEN");
  if (k->prefix != NULL) {
    fputs(" ", stdout);
    kw_term_str(stdout, k->prefix, strlen(k->prefix), 15);
    printf("%*s", (int)(15 - (strlen(k->prefix) < 15 ? strlen(k->prefix) : 15)), "");
    kw_fingerprint_hex(k->fp, hex);
    printf(" %.12s ", hex);
  } else {
    printf("%-16s %-12s ", "(anonymous)", "-");
  }
  if (k->name != NULL) {
    size_t n = strlen(k->name);
    kw_term_str(stdout, k->name, n, 20);
    printf("%*s", (int)(n < 20 ? 20 - n : 0), "");
  } else {
    printf("%-20s", "-");
  }
  printf(" %12s %5.1f%% %9lld %7lld  %-20s  %-20s\n", kw_cli_num(k->calls, calls, sizeof(calls)),
         k->calls ? 100.0 * (double)k->errors / (double)k->calls : 0.0, (long long)k->endpoints,
         (long long)k->clients, table_time(k->first_us, t1, sizeof(t1)),
         table_time(k->last_us, t2, sizeof(t2)));
  return 0;
}

int kw_cmd_keys(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS, {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
  struct keys_out o = {0};
  struct kw_store *st;
  int r;

  if ((r = parse_common(cli, argc, argv, opts, keys_help, NULL, NULL)) >= 0)
    return r;
  if ((r = kw_cli_open_store(cli, KW_STORE_RDONLY, &st)) != 0)
    return r;
  if (cli->json)
    fputs("[", stdout);
  r = kw_store_keys(st, cli->json ? on_key_json : on_key_table, &o);
  if (cli->json)
    fputs(o.n ? "\n]\n" : "]\n", stdout);
  else if (o.n == 0)
    printf("no calls stored yet in %s\n", cli->db_path);
  if (r != 0)
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
  kw_store_close(st);
  return r ? KW_EXIT_FAIL : KW_EXIT_OK;
}

/* ---- calls ------------------------------------------------------------------------- */

static void calls_help(void) {
  printf("usage: keywatch calls [--key PREFIX|FINGERPRINT | --anonymous] [--since T]\n"
         "                      [--until T] [--limit N] [--json]\n"
         "\n"
         "The audit trail: one row per call, oldest first (the newest N when limited).\n"
         "\n"
         "  --key K        calls of the keys whose display prefix starts with K, or of the\n"
         "                 key with fingerprint K (32 hex characters)\n"
         "  --anonymous    only calls that carried no key\n"
         "  --since T      from time T on; T is RFC 3339 (2026-11-22T05:00:00Z), a date\n"
         "                 (2026-11-22, UTC), epoch seconds, or relative (-15m, -2h, -7d)\n"
         "  --until T      before time T\n"
         "  --limit N      at most the newest N calls (default 1000; 0 = all)\n"
         "  --json         an array of {time, key_prefix, fingerprint, client, method, path,\n"
         "                 endpoint, status, bytes, latency_ms, user_agent, source}\n");
}

struct calls_opts {
  struct kw_calls_query q;
  const char *bad; /* the option value that did not parse */
  size_t n;
};

static int calls_opt(int c, const char *arg, void *ctx) {
  struct calls_opts *o = ctx;
  char *end;
  switch (c) {
  case 'k': o->q.key = arg; return 0;
  case 'a': o->q.anonymous_only = 1; return 0;
  case 's':
  case 'u':
    if (kw_time_parse_user(arg, kw_time_now(), c == 's' ? &o->q.since_us : &o->q.until_us)) {
      fprintf(stderr, "keywatch calls: --%s: cannot read time '%s' (use RFC 3339, a date, "
                      "epoch seconds or -15m/-2h/-7d)\n", c == 's' ? "since" : "until", arg);
      return KW_EXIT_USAGE;
    }
    return 0;
  case 'l':
    o->q.limit = strtoll(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || o->q.limit < 0) {
      fprintf(stderr, "keywatch calls: --limit: '%s' is not a count\n", arg);
      return KW_EXIT_USAGE;
    }
    return 0;
  default: return -1;
  }
}

static int on_call_json(const struct kw_call_row *c, void *ctx) {
  struct calls_opts *o = ctx;
  char buf[64], hex[2 * KW_FP_LEN + 1];
  printf("%s\n  {\"time\": ", o->n++ ? "," : "");
  json_time(c->ts_us);
  printf(", \"key_prefix\": ");
  kw_json_cstr(stdout, c->prefix);
  printf(", \"fingerprint\": ");
  if (c->fp)
    printf("\"%s\"", kw_fingerprint_hex(c->fp, hex));
  else
    fputs("null", stdout);
  printf(", \"client\": ");
  kw_json_cstr(stdout, c->client.family ? kw_addr_format(&c->client, buf, sizeof(buf)) : NULL);
  printf(", \"method\": ");
  kw_json_cstr(stdout, c->method);
  printf(", \"path\": ");
  kw_json_cstr(stdout, c->path);
  printf(", \"endpoint\": ");
  kw_json_cstr(stdout, c->endpoint);
  printf(", \"status\": %d, \"bytes\": ", c->status);
  if (c->resp_bytes >= 0)
    printf("%lld", (long long)c->resp_bytes);
  else
    fputs("null", stdout);
  printf(", \"latency_ms\": ");
  if (c->latency_us >= 0)
    printf("%.3f", (double)c->latency_us / 1000.0);
  else
    fputs("null", stdout);
  printf(", \"user_agent\": ");
  kw_json_cstr(stdout, c->user_agent);
  printf(", \"source\": ");
  kw_json_cstr(stdout, c->source);
  fputs("}", stdout);
  return 0;
}

static void cell(const char *s, size_t width) {
  size_t n = s ? strlen(s) : 1;
  kw_term_str(stdout, s, n, width);
  /* kw_term_str shows at most width characters; pad what it showed (approximately, for
   * multi-byte text). */
  printf("%*s ", (int)(n < width ? width - n : 0), "");
}

static int on_call_table(const struct kw_call_row *c, void *ctx) {
  struct calls_opts *o = ctx;
  char t[40], addr[64], lat[32], bytes[32];
  if (o->n++ == 0)
    printf("%-20s %-10s %-15s %-6s %-48s %6s %10s %9s %s\n", "TIME", "KEY", "CLIENT",
           "METHOD", "PATH", "STATUS", "BYTES", "LATENCY", "USER AGENT");
  printf("%-20s ", table_time(c->ts_us, t, sizeof(t)));
  cell(c->prefix ? c->prefix : "-", 10);
  printf("%-15s ", c->client.family ? kw_addr_format(&c->client, addr, sizeof(addr)) : "-");
  cell(c->method, 6);
  cell(c->path, 48);
  snprintf(lat, sizeof(lat), c->latency_us >= 0 ? "%.1fms" : "-",
           (double)c->latency_us / 1000.0);
  if (c->resp_bytes >= 0)
    snprintf(bytes, sizeof(bytes), "%lld", (long long)c->resp_bytes);
  else
    snprintf(bytes, sizeof(bytes), "-");
  printf("%6d %10s %9s ", c->status, bytes, lat);
  kw_term_str(stdout, c->user_agent, c->user_agent ? strlen(c->user_agent) : 0, 60);
  putchar('\n');
  return 0;
}

int kw_cmd_calls(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"json", no_argument, NULL, 'j'},
      {"key", required_argument, NULL, 'k'},
      {"anonymous", no_argument, NULL, 'a'},
      {"since", required_argument, NULL, 's'},
      {"until", required_argument, NULL, 'u'},
      {"limit", required_argument, NULL, 'l'},
      {NULL, 0, NULL, 0},
  };
  struct calls_opts o = {.q.limit = 1000};
  struct kw_store *st;
  int r;

  if ((r = parse_common(cli, argc, argv, opts, calls_help, calls_opt, &o)) >= 0)
    return r;
  if (o.q.key && o.q.anonymous_only)
    return kw_cli_usage_error(cli, "--key and --anonymous exclude each other");
  if ((r = kw_cli_open_store(cli, KW_STORE_RDONLY, &st)) != 0)
    return r;
  if (cli->json)
    fputs("[", stdout);
  r = kw_store_calls(st, &o.q, cli->json ? on_call_json : on_call_table, &o);
  if (cli->json)
    fputs(o.n ? "\n]\n" : "]\n", stdout);
  else if (o.n == 0)
    printf("no matching calls\n");
  if (r != 0)
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
  kw_store_close(st);
  return r ? KW_EXIT_FAIL : KW_EXIT_OK;
}

/* ---- stats ------------------------------------------------------------------------- */

static void stats_help(void) {
  printf("usage: keywatch stats [--top N] [--json]\n"
         "\n"
         "Totals over the whole database: calls, keys, client addresses, response bytes,\n"
         "malformed lines; calls by status and by method; the top endpoints.\n"
         "\n"
         "  --top N    endpoints to list (default 10)\n"
         "  --json     {calls, keys, clients, bytes, malformed, lines, anonymous,\n"
         "             first_seen, last_seen, by_status: {\"200\": n, ...},\n"
         "             by_method: {\"GET\": n, ...}, top_endpoints: [{endpoint, calls}]}\n");
}

static int stats_opt(int c, const char *arg, void *ctx) {
  long long *top = ctx;
  char *end;
  if (c != 't')
    return -1;
  *top = strtoll(arg, &end, 10);
  if (*arg == '\0' || *end != '\0' || *top < 0 || *top > 100000) {
    fprintf(stderr, "keywatch stats: --top: '%s' is not a count (0 to 100000)\n", arg);
    return KW_EXIT_USAGE;
  }
  return 0;
}

static void json_counts(const char *name, const struct kw_count *v, size_t n) {
  printf(", \"%s\": {", name);
  for (size_t i = 0; i < n; i++) {
    printf("%s", i ? ", " : "");
    kw_json_cstr(stdout, v[i].label);
    printf(": %lld", (long long)v[i].n);
  }
  putchar('}');
}

static void table_counts(const char *title, const struct kw_count *v, size_t n, int64_t total) {
  char num[32];
  printf("\n%s\n", title);
  for (size_t i = 0; i < n; i++) {
    printf("  %12s %5.1f%%  ", kw_cli_num(v[i].n, num, sizeof(num)),
           total ? 100.0 * (double)v[i].n / (double)total : 0.0);
    kw_term_str(stdout, v[i].label, strlen(v[i].label), 100);
    putchar('\n');
  }
}

int kw_cmd_stats(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"json", no_argument, NULL, 'j'},
      {"top", required_argument, NULL, 't'},
      {NULL, 0, NULL, 0},
  };
  long long top = 10;
  struct kw_store *st;
  struct kw_stats s;
  char a[32], b[32], t1[40], t2[40];
  int r;

  if ((r = parse_common(cli, argc, argv, opts, stats_help, stats_opt, &top)) >= 0)
    return r;
  if ((r = kw_cli_open_store(cli, KW_STORE_RDONLY, &st)) != 0)
    return r;
  if ((r = kw_store_stats(st, (size_t)top, &s)) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    kw_store_close(st);
    return KW_EXIT_FAIL;
  }
  if (cli->json) {
    printf("{\"calls\": %lld, \"keys\": %lld, \"clients\": %lld, \"bytes\": %lld, "
           "\"malformed\": %lld, \"lines\": %lld, \"anonymous\": %lld, \"first_seen\": ",
           (long long)s.calls, (long long)s.keys, (long long)s.clients, (long long)s.bytes,
           (long long)s.malformed, (long long)s.lines, (long long)s.anonymous);
    json_time(s.first_us);
    printf(", \"last_seen\": ");
    json_time(s.last_us);
    json_counts("by_status", s.by_status, s.n_status);
    json_counts("by_method", s.by_method, s.n_method);
    printf(", \"top_endpoints\": [");
    for (size_t i = 0; i < s.n_endpoints; i++) {
      printf("%s{\"endpoint\": ", i ? ", " : "");
      kw_json_cstr(stdout, s.top_endpoints[i].label);
      printf(", \"calls\": %lld}", (long long)s.top_endpoints[i].n);
    }
    printf("]}\n");
  } else {
    printf("calls      %14s  (%s without a key)\n", kw_cli_num(s.calls, a, sizeof(a)),
           kw_cli_num(s.anonymous, b, sizeof(b)));
    printf("keys       %14s\n", kw_cli_num(s.keys, a, sizeof(a)));
    printf("clients    %14s\n", kw_cli_num(s.clients, a, sizeof(a)));
    printf("bytes      %14s\n", kw_cli_num(s.bytes, a, sizeof(a)));
    printf("malformed  %14s  of %s lines read\n", kw_cli_num(s.malformed, a, sizeof(a)),
           kw_cli_num(s.lines, b, sizeof(b)));
    printf("period     %s .. %s\n", table_time(s.first_us, t1, sizeof(t1)),
           table_time(s.last_us, t2, sizeof(t2)));
    table_counts("by status", s.by_status, s.n_status, s.calls);
    table_counts("by method", s.by_method, s.n_method, s.calls);
    table_counts("top endpoints", s.top_endpoints, s.n_endpoints, s.calls);
  }
  kw_store_stats_free(&s);
  kw_store_close(st);
  return KW_EXIT_OK;
}
