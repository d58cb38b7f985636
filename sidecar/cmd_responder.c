/* cmd_responder.c — `keywatch revoke`, `keywatch revocations`, `keywatch inventory`.
 *
 *   keywatch revoke KEY [--store NAME] [--dry-run] [--reason TEXT] [--by NAME]
 *                       [--no-wait] [--timeout DUR] [--json]
 *   keywatch revocations [--state S] [--key K] [--limit N] [--json]
 *   keywatch revocations show ID [--json]
 *   keywatch inventory [--sync] [--unused] [--json]
 *
 * A manual revocation goes through the responder's queue like an automatic one: it is
 * recorded (state decided) and committed first, then judged and sent.  When a daemon is
 * running (fresh heartbeat) it does the sending and this command only watches the row;
 * otherwise the command runs a responder on its own loop until the row is settled or the
 * timeout passes (the row then stays queued for the next responder).
 */
#include "../analyzer/responder.h"
#include "alerts.h"
#include "cli.h"
#include "err.h"
#include "escape.h"
#include "fingerprint.h"
#include "log.h"
#include "revocations.h"
#include "timeutil.h"

#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define DAEMON_FRESH_US (5LL * 1000000)

static void revoke_help(void) {
  printf("usage: keywatch revoke KEY [--store NAME] [--dry-run] [--reason TEXT] [--by NAME]\n"
         "                       [--no-wait] [--timeout DUR] [--json]\n"
         "\n"
         "Revokes a key at its key store now, through the responder's queue and audit\n"
         "(see `keywatch revocations`).  KEY is a display prefix that names exactly one\n"
         "stored key, or a 32-hex fingerprint (see `keywatch keys`) — never the key itself.\n"
         "The protect list, severity, cooldown and budget safeguards do not apply to manual\n"
         "revocations; keywatch's own admin key is never revoked.\n"
         "\n"
         "  --store NAME   the key store (default: the first of responder.stores whose\n"
         "                 prefixes match the key)\n"
         "  --dry-run      record what would be done; send nothing\n"
         "  --reason TEXT  why (kept in the audit)\n"
         "  --by NAME      who decided (default: the user running the command)\n"
         "  --no-wait      record the decision and return; the daemon carries it out\n"
         "  --timeout DUR  how long to wait for the store's answer (default 30s); the\n"
         "                 revocation stays queued after that\n"
         "  --json         print the revocation as JSON (see `keywatch revocations --json`)\n"
         "\n"
         "exit status: 0 revoked (or already gone, or recorded with --dry-run/--no-wait),\n"
         "1 suppressed, failed or still pending, 2 usage or configuration error.\n");
}

static void list_help(void) {
  printf("usage: keywatch revocations [--state S] [--key K] [--limit N] [--json]\n"
         "       keywatch revocations show ID [--json]\n"
         "\n"
         "Every revocation decided (by a rule with action: revoke, or `keywatch revoke`),\n"
         "newest first: who decided, the safeguards' verdict, the store's answers.\n"
         "\n"
         "  --state S   decided, queued, done, gone, failed, suppressed, dry_run, expired,\n"
         "              or open (decided or queued)\n"
         "  --key K     keys whose display prefix starts with K, or fingerprint K\n"
         "  --limit N   at most N (default 100; 0 = all)\n"
         "  --json      an array of {id, alert_id, key_prefix, fingerprint, name, rule,\n"
         "              severity, origin, decided_by, store, reason, decided, event_time,\n"
         "              state, dry_run, attempts, next_try, give_up_at, store_ref, result,\n"
         "              updated}; show adds \"calls\": [{time, store, request, status,\n"
         "              duration_ms, result, detail}]\n"
         "  show ID     one revocation with every call made to its key store\n");
}

/* ---- printing ------------------------------------------------------------------------ */

struct out {
  size_t n;
  bool json;
  int64_t found_id;
  char state[16];
};

static void term(const char *s, size_t width) {
  kw_term_str(stdout, s ? s : "-", s ? strlen(s) : 1, width);
}

static int on_row(const struct kw_revocation *v, void *ctx) {
  struct out *o = ctx;
  char t[40];
  if (o->json) {
    fputs(o->n++ ? ",\n  " : "\n  ", stdout);
    kw_revocation_json(stdout, v);
    return 0;
  }
  if (o->n++ == 0)
    printf("%-5s %-20s %-10s %-18s %-10s %-10s %3s  %s\n", "ID", "DECIDED", "KEY", "BY",
           "STORE", "STATE", "TRY", "RESULT");
  kw_time_format(v->decided_us, t, sizeof(t));
  t[19] = 'Z', t[20] = '\0';
  printf("%-5lld %-20s ", (long long)v->id, t);
  term(v->prefix, 10);
  printf("%*s ", (int)(10 - (v->prefix ? (strlen(v->prefix) < 10 ? strlen(v->prefix) : 10) : 1)),
         "");
  term(v->decided_by, 18);
  printf("%*s ", (int)(18 - (strlen(v->decided_by) < 18 ? strlen(v->decided_by) : 18)), "");
  term(v->store, 10);
  printf("%*s %-10s %3lld  ",
         (int)(10 - (v->store ? (strlen(v->store) < 10 ? strlen(v->store) : 10) : 1)), "",
         v->state, (long long)v->attempts);
  term(v->result, 90);
  putchar('\n');
  return 0;
}

static int on_call_row(int64_t ts, const struct kw_revocation_call *c, void *ctx) {
  struct out *o = ctx;
  char t[40];
  kw_time_format(ts, t, sizeof(t));
  if (o->json) {
    printf("%s{\"time\": \"%s\", \"store\": ", o->n++ ? ", " : "", t);
    kw_json_cstr(stdout, c->store);
    fputs(", \"request\": ", stdout);
    kw_json_cstr(stdout, c->request);
    printf(", \"status\": %d, \"duration_ms\": %.1f, \"result\": ", c->status,
           (double)c->duration_us / 1000.0);
    kw_json_cstr(stdout, c->result);
    fputs(", \"detail\": ", stdout);
    if (c->detail)
      kw_json_cstr(stdout, c->detail);
    else
      fputs("null", stdout);
    putchar('}');
    return 0;
  }
  printf("  %s  ", t);
  term(c->store, 12);
  putchar(' ');
  term(c->request, 60);
  printf("  %d  %.1f ms  %s", c->status, (double)c->duration_us / 1000.0, c->result);
  if (c->detail) {
    fputs("  ", stdout);
    term(c->detail, 120);
  }
  putchar('\n');
  return 0;
}

static int on_show(const struct kw_revocation *v, void *ctx) {
  struct out *o = ctx;
  char t1[40], t2[40];
  o->found_id = v->id;
  snprintf(o->state, sizeof(o->state), "%s", v->state);
  if (o->json) {
    char *doc = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&doc, &len);
    if (m == NULL)
      return 1;
    kw_revocation_json(m, v);
    fclose(m);
    if (len > 0)
      doc[len - 1] = '\0';
    printf("%s, \"calls\": [", doc);
    free(doc);
    return 0;
  }
  printf("revocation %lld: %s%s\n  key       ", (long long)v->id, v->state,
         v->dry_run ? " (dry run)" : "");
  term(v->prefix, 40);
  if (v->name) {
    fputs(" (", stdout);
    term(v->name, 60);
    putchar(')');
  }
  fputs("\n  decided   by ", stdout);
  term(v->decided_by, 60);
  printf(" at %s (event time %s)", kw_time_format(v->decided_us, t1, sizeof(t1)),
         kw_time_format(v->event_us, t2, sizeof(t2)));
  if (v->alert_id > 0)
    printf(", alert %lld", (long long)v->alert_id);
  fputs("\n  reason    ", stdout);
  term(v->reason, 0);
  fputs("\n  store     ", stdout);
  term(v->store, 40);
  if (v->store_ref) {
    fputs(" id ", stdout);
    term(v->store_ref, 40);
  }
  printf("\n  attempts  %lld", (long long)v->attempts);
  if (strcmp(v->state, "queued") == 0 && v->next_try_us > 0)
    printf(", next %s, gives up %s", kw_time_format(v->next_try_us, t1, sizeof(t1)),
           kw_time_format(v->give_up_us, t2, sizeof(t2)));
  fputs("\n  result    ", stdout);
  term(v->result, 0);
  fputs("\n  calls\n", stdout);
  return 0;
}

/* ---- revocations --------------------------------------------------------------------- */

int kw_cmd_revocations(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"state", required_argument, NULL, 's'},
      {"key", required_argument, NULL, 'k'},
      {"limit", required_argument, NULL, 'n'},
      {"json", no_argument, NULL, 'j'},
      {NULL, 0, NULL, 0},
  };
  static const char *const states[] = {"decided", "queued", "done", "gone", "failed",
                                       "suppressed", "dry_run", "expired", "open", NULL};
  struct kw_revocations_query q = {.limit = 100};
  struct kw_store *st = NULL;
  struct out o = {0};
  int c, r;
  char *end;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': list_help(); return KW_EXIT_OK;
    case 's': q.state = optarg; break;
    case 'k': q.key = optarg; break;
    case 'n':
      q.limit = strtoll(optarg, &end, 10);
      if (*end || q.limit < 0)
        return kw_cli_usage_error(cli, "--limit: '%s' is not a count", optarg);
      break;
    case 'j': cli->json = o.json = true; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (q.state != NULL) {
    bool ok = false;
    for (size_t i = 0; states[i] && !ok; i++)
      ok = strcmp(states[i], q.state) == 0;
    if (!ok)
      return kw_cli_usage_error(cli, "--state: '%s' is not a revocation state", q.state);
  }
  bool show = optind < argc && strcmp(argv[optind], "show") == 0;
  if (show) {
    if (optind + 2 != argc)
      return kw_cli_usage_error(cli, "show needs one revocation ID");
    q.id = strtoll(argv[optind + 1], &end, 10);
    if (*end || q.id <= 0)
      return kw_cli_usage_error(cli, "'%s' is not a revocation ID", argv[optind + 1]);
  } else if (optind < argc) {
    return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  }
  if ((r = kw_cli_load_config(cli)) != 0 || (r = kw_cli_open_store(cli, KW_STORE_RDONLY, &st)))
    return r;
  if (show) {
    r = kw_store_revocations(st, &q, on_show, &o);
    if (r == 0 && o.found_id == 0) {
      kw_cli_error(cli, "no revocation %lld", (long long)q.id);
      kw_store_close(st);
      return KW_EXIT_FAIL;
    }
    struct out calls = {.json = o.json};
    if (r == 0)
      r = kw_store_revocation_calls(st, q.id, on_call_row, &calls);
    if (o.json)
      fputs("]}\n", stdout);
    else if (calls.n == 0)
      fputs("  (none)\n", stdout);
  } else {
    if (o.json)
      putchar('[');
    r = kw_store_revocations(st, &q, on_row, &o);
    if (o.json)
      fputs(o.n ? "\n]\n" : "]\n", stdout);
    else if (o.n == 0)
      printf("no revocations%s\n", q.state || q.key ? " match" : " yet");
  }
  if (r != 0)
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
  kw_store_close(st);
  return r != 0 ? KW_EXIT_FAIL : KW_EXIT_OK;
}

/* ---- revoke ---------------------------------------------------------------------------- */

struct pick {
  const char *want;
  uint8_t fp[KW_FP_LEN];
  bool by_fp;
  int n;
  char prefix[64];
};

static int on_key(const struct kw_key_row *k, void *ctx) {
  struct pick *p = ctx;
  if (k->prefix == NULL)
    return 0;
  bool hit = p->by_fp ? memcmp(k->fp, p->fp, KW_FP_LEN) == 0
                      : strncmp(k->prefix, p->want, strlen(p->want)) == 0;
  if (!hit)
    return 0;
  if (p->n++ == 0) {
    if (!p->by_fp)
      memcpy(p->fp, k->fp, KW_FP_LEN);
    snprintf(p->prefix, sizeof(p->prefix), "%s", k->prefix);
  }
  return 0;
}

struct wait {
  struct kw_store *st;
  struct kw_responder *resp;
  int64_t id, deadline_us;
  uv_timer_t timer;
  bool settled;
  char state[16];
};

static int on_state(const struct kw_revocation *v, void *ctx) {
  struct wait *w = ctx;
  snprintf(w->state, sizeof(w->state), "%s", v->state);
  /* Queued with attempts made and no call in flight still counts as pending. */
  w->settled = strcmp(v->state, "decided") != 0 && strcmp(v->state, "queued") != 0;
  return 0;
}

static void poll_state(struct wait *w) {
  struct kw_revocations_query q = {.id = w->id};
  kw_store_revocations(w->st, &q, on_state, w);
}

static void on_responder_closed(void *arg) { (void)arg; }

static void on_wait_tick(uv_timer_t *t) {
  struct wait *w = t->data;
  poll_state(w);
  if (w->settled || kw_time_now() >= w->deadline_us) {
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    kw_responder_close(w->resp, on_responder_closed, NULL);
    w->resp = NULL;
  }
}

/* Waits for w->id to settle while a daemon does the work (polling its row). */
static void wait_daemon(struct wait *w) {
  while (kw_time_now() < w->deadline_us) {
    poll_state(w);
    if (w->settled)
      break;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/* Runs the responder started on loop until w->id settles or the deadline passes. */
static int wait_own(uv_loop_t *loop, struct wait *w) {
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  uv_timer_start(&w->timer, on_wait_tick, 50, 50);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : KW_EIO;
}

int kw_cmd_revoke(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"store", required_argument, NULL, 's'},
      {"dry-run", no_argument, NULL, 'n'},
      {"reason", required_argument, NULL, 'r'},
      {"by", required_argument, NULL, 'b'},
      {"no-wait", no_argument, NULL, 'W'},
      {"timeout", required_argument, NULL, 't'},
      {"json", no_argument, NULL, 'j'},
      {NULL, 0, NULL, 0},
  };
  const char *store = NULL, *reason = NULL, *by = NULL;
  bool dry = false, nowait = false;
  int64_t timeout_us = 30LL * 1000000, id = 0;
  struct kw_store *st = NULL;
  struct kw_fingerprint *fpr = NULL;
  struct pick p = {0};
  struct kw_daemon_row dr;
  uv_loop_t loop;
  char err[1024], spath[4200], decided_by[128];
  int c, r, rc = KW_EXIT_FAIL;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': revoke_help(); return KW_EXIT_OK;
    case 's': store = optarg; break;
    case 'n': dry = true; break;
    case 'r': reason = optarg; break;
    case 'b': by = optarg; break;
    case 'W': nowait = true; break;
    case 't':
      if (kw_duration_parse(optarg, &timeout_us) != 0 || timeout_us <= 0)
        return kw_cli_usage_error(cli, "--timeout: '%s' is not a duration (30s, 2m)", optarg);
      break;
    case 'j': cli->json = true; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (optind + 1 != argc)
    return kw_cli_usage_error(cli, "give one KEY (display prefix or fingerprint)");
  p.want = argv[optind];
  p.by_fp = strlen(p.want) == 2 * KW_FP_LEN && kw_fingerprint_from_hex(p.want, p.fp) == 0;
  if (!p.by_fp && strlen(p.want) > 16)
    return kw_cli_usage_error(cli, "KEY is a display prefix or a fingerprint, never the key "
                                   "itself (it would stay in your shell history)");
  if (p.want[0] == '\0')
    return kw_cli_usage_error(cli, "KEY is empty");
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if (store != NULL) {
    bool known = false;
    for (unsigned i = 0; i < cli->cfg->responder.stores_count && !known; i++)
      known = strcmp(cli->cfg->responder.stores[i].name, store) == 0;
    if (!known)
      return kw_cli_usage_error(cli, "--store: no key store named '%s' in responder.stores",
                                store);
  }
  if (by == NULL) {
    struct passwd *pw = getpwuid(getuid());
    by = pw ? pw->pw_name : "unknown";
  }
  snprintf(decided_by, sizeof(decided_by), "manual:%s", by);
  kw_cli_secret_path(cli, spath, sizeof(spath));
  if ((r = kw_fingerprint_create(spath, &fpr, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    return KW_EXIT_FAIL;
  }
  if ((rc = kw_cli_open_store(cli, 0, &st)) != 0)
    goto out;
  rc = KW_EXIT_FAIL;
  if (kw_store_keys(st, on_key, &p) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    goto out;
  }
  if (p.n != 1) {
    if (p.n == 0)
      kw_cli_error(cli, "no key %s '%s' was ever seen (see `keywatch keys`)",
                   p.by_fp ? "with fingerprint" : "starting with", p.want);
    else
      kw_cli_error(cli, "'%s' names %d keys: give more of the prefix, or the fingerprint", p.want,
                   p.n);
    rc = KW_EXIT_USAGE;
    goto out;
  }
  /* Without a daemon this command carries the revocation out itself: its stores are
   * opened (credentials read) before anything is recorded, so a configuration error
   * leaves no decision behind. */
  bool daemon = kw_store_daemon(st, &dr) == 0 && dr.pid > 0 && kill((pid_t)dr.pid, 0) == 0 &&
                kw_time_now() - dr.heartbeat_us < DAEMON_FRESH_US;
  bool own = !nowait && !daemon;
  struct kw_log log = {.f = stderr, .min = KW_LOG_WARN};
  struct wait w = {.st = st, .deadline_us = kw_time_now() + timeout_us};
  if (own) {
    struct kw_responder_opts ro = {.store = st, .cfg = cli->cfg, .fpr = fpr, .log = &log};
    if (uv_loop_init(&loop) != 0)
      goto out;
    if ((r = kw_responder_init(&loop, &ro, &w.resp, err, sizeof(err))) != 0) {
      kw_cli_error(cli, "%s", err);
      uv_loop_close(&loop);
      rc = r == KW_ECONFIG ? KW_EXIT_USAGE : KW_EXIT_FAIL;
      goto out;
    }
  }
  struct kw_revocation_new n = {.fp = p.fp, .origin = "manual", .decided_by = decided_by,
                                .reason = reason ? reason : "manual revocation",
                                .store = store, .severity = KW_SEV_CRITICAL, .dry_run = dry};
  if (kw_store_revocation_add(st, &n, &id) != 0 || kw_store_commit(st) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    if (own) { /* nothing ran: close the responder on its loop */
      kw_responder_close(w.resp, on_responder_closed, NULL);
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
    }
    goto out;
  }
  w.id = id;
  if (own && wait_own(&loop, &w) != 0)
    goto out;
  if (daemon && !nowait)
    wait_daemon(&w);
  struct out o = {.json = cli->json};
  struct kw_revocations_query q = {.id = id};
  if (kw_store_revocations(st, &q, on_show, &o) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
    goto out;
  }
  struct out calls = {.json = cli->json};
  kw_store_revocation_calls(st, id, on_call_row, &calls);
  if (cli->json)
    fputs("]}\n", stdout);
  else if (calls.n == 0)
    fputs("  (none)\n", stdout);
  rc = strcmp(o.state, "done") == 0 || strcmp(o.state, "gone") == 0 ||
               strcmp(o.state, "dry_run") == 0 ||
               (nowait && (strcmp(o.state, "decided") == 0 || strcmp(o.state, "queued") == 0))
           ? KW_EXIT_OK
           : KW_EXIT_FAIL;
out:
  if (kw_store_close(st) != 0 && rc == KW_EXIT_OK)
    rc = KW_EXIT_FAIL;
  kw_fingerprint_destroy(fpr);
  return rc;
}

/* ---- inventory ------------------------------------------------------------------------- */

static void inventory_help(void) {
  printf("usage: keywatch inventory [--sync] [--unused] [--json]\n"
         "\n"
         "The keys the configured key stores list (responder.stores that can list them:\n"
         "metabase, seatable, kong), as last synced — by `keywatch run` every\n"
         "responder.inventory_interval, or now with --sync — next to their traffic.\n"
         "A key a store lists that was never seen in traffic shows 0 calls.\n"
         "\n"
         "  --sync     list the stores now (reads their credentials) before printing\n"
         "  --unused   only keys never seen in traffic\n"
         "  --json     an array of {store, id, name, group, permission, created, key_prefix,\n"
         "             calls, last_seen, synced, gone}\n");
}

struct inv_out {
  bool json, unused;
  size_t n;
};

static int on_inventory(const struct kw_inventory_row *v, void *ctx) {
  struct inv_out *o = ctx;
  char t[40];
  if (o->unused && v->calls > 0)
    return 0;
  if (o->json) {
    fputs(o->n++ ? ",\n  {\"store\": " : "\n  {\"store\": ", stdout);
    kw_json_cstr(stdout, v->store);
    const char *names[] = {"id", "name", "group", "permission", "created", "key_prefix"};
    const char *vals[] = {v->ref, v->name, v->group, v->permission, v->created, v->prefix};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
      printf(", \"%s\": ", names[i]);
      if (vals[i])
        kw_json_cstr(stdout, vals[i]);
      else
        fputs("null", stdout);
    }
    printf(", \"calls\": %lld, \"last_seen\": ", (long long)v->calls);
    if (v->last_us > 0)
      printf("\"%s\"", kw_time_format(v->last_us, t, sizeof(t)));
    else
      fputs("null", stdout);
    printf(", \"synced\": \"%s\", \"gone\": ", kw_time_format(v->synced_us, t, sizeof(t)));
    if (v->gone_us > 0)
      printf("\"%s\"}", kw_time_format(v->gone_us, t, sizeof(t)));
    else
      fputs("null}", stdout);
    return 0;
  }
  if (o->n++ == 0)
    printf("%-10s %-12s %-20s %-16s %-4s %-10s %10s  %-20s %s\n", "STORE", "ID", "NAME", "GROUP",
           "PERM", "KEY", "CALLS", "LAST USE", "");
  term(v->store, 10);
  printf("%*s ", (int)(10 - (strlen(v->store) < 10 ? strlen(v->store) : 10)), "");
  term(v->ref, 12);
  printf("%*s ", (int)(12 - (strlen(v->ref) < 12 ? strlen(v->ref) : 12)), "");
  term(v->name, 20);
  printf("%*s ", (int)(20 - (v->name ? (strlen(v->name) < 20 ? strlen(v->name) : 20) : 1)), "");
  term(v->group, 16);
  printf("%*s ", (int)(16 - (v->group ? (strlen(v->group) < 16 ? strlen(v->group) : 16) : 1)),
         "");
  printf("%-4s ", v->permission ? v->permission : "-");
  term(v->prefix, 10);
  printf("%*s %10lld  ", (int)(10 - (v->prefix ? (strlen(v->prefix) < 10 ? strlen(v->prefix) : 10) : 1)),
         "", (long long)v->calls);
  if (v->last_us > 0) {
    kw_time_format(v->last_us, t, sizeof(t));
    t[19] = 'Z', t[20] = '\0';
    printf("%-20s", t);
  } else {
    printf("%-20s", "never");
  }
  printf(" %s\n", v->gone_us > 0 ? "(gone from the store)" : "");
  return 0;
}

struct sync_wait {
  struct kw_responder *resp;
  size_t stores;
  int64_t deadline_us;
  uv_timer_t timer;
  bool done;
};

static void on_sync_tick(uv_timer_t *t) {
  struct sync_wait *w = t->data;
  struct kw_responder_stats s;
  kw_responder_stats(w->resp, &s);
  w->done = s.listed + s.list_failed + s.list_unsupported >= w->stores;
  if (w->done || kw_time_now() >= w->deadline_us) {
    uv_close((uv_handle_t *)t, NULL);
    kw_responder_close(w->resp, on_responder_closed, NULL);
  }
}

int kw_cmd_inventory(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"sync", no_argument, NULL, 's'},
      {"unused", no_argument, NULL, 'u'},
      {"json", no_argument, NULL, 'j'},
      {NULL, 0, NULL, 0},
  };
  struct inv_out o = {0};
  struct kw_store *st = NULL;
  struct kw_fingerprint *fpr = NULL;
  bool sync = false;
  char err[1024], spath[4200];
  int c, r, rc = KW_EXIT_FAIL;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': inventory_help(); return KW_EXIT_OK;
    case 's': sync = true; break;
    case 'u': o.unused = true; break;
    case 'j': cli->json = o.json = true; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (optind < argc)
    return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if (sync) {
    uv_loop_t loop;
    struct kw_log log = {.f = stderr, .min = KW_LOG_WARN};
    struct sync_wait w = {.stores = cli->cfg->responder.stores_count,
                          .deadline_us = kw_time_now() + 60LL * 1000000};
    if (w.stores == 0)
      return kw_cli_usage_error(cli, "--sync: no key store is configured (responder.stores)");
    kw_cli_secret_path(cli, spath, sizeof(spath));
    if (kw_fingerprint_create(spath, &fpr, err, sizeof(err)) != 0) {
      kw_cli_error(cli, "%s", err);
      return KW_EXIT_FAIL;
    }
    if ((rc = kw_cli_open_store(cli, 0, &st)) != 0)
      goto out;
    struct kw_responder_opts ro = {.store = st, .cfg = cli->cfg, .fpr = fpr, .log = &log,
                                   .sync_inventory = true};
    if (uv_loop_init(&loop) != 0)
      goto out;
    if ((r = kw_responder_init(&loop, &ro, &w.resp, err, sizeof(err))) != 0) {
      kw_cli_error(cli, "%s", err);
      uv_loop_close(&loop);
      rc = r == KW_ECONFIG ? KW_EXIT_USAGE : KW_EXIT_FAIL;
      goto out;
    }
    uv_timer_init(&loop, &w.timer);
    w.timer.data = &w;
    uv_timer_start(&w.timer, on_sync_tick, 50, 50);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    rc = KW_EXIT_FAIL;
    if (!w.done) {
      kw_cli_error(cli, "--sync: the stores did not answer within 60 s");
      goto out;
    }
  } else if ((rc = kw_cli_open_store(cli, KW_STORE_RDONLY, &st)) != 0) {
    goto out;
  }
  if (o.json)
    putchar('[');
  r = kw_store_inventory(st, on_inventory, &o);
  if (o.json)
    fputs(o.n ? "\n]\n" : "]\n", stdout);
  else if (o.n == 0)
    printf("no keys listed by a key store%s\n", sync ? "" : " yet (try --sync)");
  rc = r == 0 ? KW_EXIT_OK : KW_EXIT_FAIL;
  if (r != 0)
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(st));
out:
  if (kw_store_close(st) != 0 && rc == KW_EXIT_OK)
    rc = KW_EXIT_FAIL;
  kw_fingerprint_destroy(fpr);
  return rc;
}
