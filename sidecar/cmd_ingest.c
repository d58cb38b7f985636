/* cmd_ingest.c — `keywatch ingest`: read access-log files (or stdin) into the store.
 *
 * Per file: open, peek at the first 64 KiB (capture magic, format detection), register
 * the file as a source, then feed every line through the pipeline.  A file that cannot be
 * read is reported and skipped; the others are still ingested (exit 1 at the end).
 * Progress goes to stderr when it is a terminal; the summary to stderr, or as one JSON
 * document to stdout with --json.
 */
#include "../analyzer/outbox.h"
#include "../analyzer/sink.h"
#include "../collector/capture.h"
#include "../collector/format.h"
#include "../analyzer/engine.h"
#include "../collector/reader.h"
#include "cli.h"
#include "err.h"
#include "escape.h"
#include "fingerprint.h"
#include "pipeline.h"
#include "revocations.h"
#include "../analyzer/responder.h"
#include "timeutil.h"

#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLE_BYTES (64 * 1024)

static void help(void) {
  printf("usage: keywatch ingest [OPTIONS] FILE...\n"
         "\n"
         "Reads access logs into the database: every line becomes one call, with its key\n"
         "fingerprinted at once (raw keys are never stored). FILE '-' is standard input.\n"
         "Malformed lines are counted and skipped; the first few are reported by line.\n"
         "\n"
         "options:\n"
         "  --format NAME         log format: auto (default: detected from the first lines),\n"
         "                        combined, keyed, nginx (with --log-format), json (with the\n"
         "                        config's ingest.json mapping), nginx-json, caddy, traefik,\n"
         "                        envoy, kong\n"
         "  --log-format STRING   an nginx log_format, pasted as in nginx.conf, e.g.\n"
         "                        'log_format main escape=json '\\''$remote_addr ...'\\'';'\n"
         "  --no-rules            store calls only; do not evaluate the rules\n"
         "  --json                print the summary as JSON on stdout\n"
         "  -q, --quiet           no progress bar and no summary on stderr\n"
         "  --db PATH             database file (created if missing; default ./keywatch.db)\n"
         "  --config FILE         configuration file (see keywatch.yaml)\n"
         "  -h, --help            this help\n"
         "\n"
         "exit status: 0 all files ingested; 1 a file could not be read, its format not\n"
         "detected, or none of its lines parsed; 2 usage or configuration error.\n");
}

struct ingest {
  struct kw_cli *cli;
  struct kw_pipeline *pipe;
  struct kw_store *st;
  struct kw_format fixed; /* the one format for all files, unless auto */
  bool quiet, progress;
  int64_t total_bytes, done_bytes; /* for the progress bar; total -1 when unknown */
  int64_t started_us, last_draw_us;
  int failed;
};

static void draw_progress(struct ingest *in, bool final) {
  const struct kw_pipeline_stats *s = kw_pipeline_stats(in->pipe);
  int64_t now = kw_time_now();
  double secs = (double)(now - in->started_us) / 1e6;
  char lines[32];

  if (!in->progress || (!final && now - in->last_draw_us < 100000))
    return;
  in->last_draw_us = now;
  kw_cli_num((int64_t)s->lines, lines, sizeof(lines));
  if (in->total_bytes > 0) {
    int width = 30;
    double frac = (double)in->done_bytes / (double)in->total_bytes;
    int fill = frac >= 1 ? width : (int)(frac * width);
    fprintf(stderr, "\r[%.*s%*s] %3d%% %s lines %.0f lines/s ", fill,
            "==============================", width - fill, "", (int)(frac * 100), lines,
            secs > 0 ? (double)s->lines / secs : 0.0);
  } else {
    fprintf(stderr, "\r%s lines %.0f lines/s ", lines, secs > 0 ? (double)s->lines / secs : 0);
  }
  if (final)
    fputs("\r\033[K", stderr);
}

static bool is_capture(const unsigned char *p, size_t n) {
  static const unsigned char magics[][4] = {
      {0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0xc3, 0xd4}, {0x4d, 0x3c, 0xb2, 0xa1},
      {0xa1, 0xb2, 0x3c, 0x4d}, {0x0a, 0x0d, 0x0d, 0x0a}};
  for (size_t i = 0; n >= 4 && i < sizeof(magics) / sizeof(magics[0]); i++)
    if (memcmp(p, magics[i], 4) == 0)
      return true;
  return false;
}

static void report_malformed(struct ingest *in, const char *file, uint64_t lineno,
                             const char *why, unsigned *shown) {
  if (*shown < in->cli->cfg->ingest.max_errors_shown && !in->quiet)
    kw_cli_error(in->cli, "%s:%llu: malformed line skipped: %s", file,
                 (unsigned long long)lineno, why[0] ? why : "does not match the format");
  (*shown)++;
}

struct cap_ctx {
  struct ingest *in;
  struct kw_capture *cap;
  uint32_t src;
  int err; /* a store error: stop */
};

static void on_capture_rec(const struct kw_rec *rec, size_t wire_bytes, void *arg) {
  struct cap_ctx *c = arg;
  int r;
  if (c->err != 0)
    return;
  r = kw_pipeline_rec(c->in->pipe, rec, c->src, wire_bytes);
  if (r != 0) {
    c->err = r;
    kw_capture_stop(c->cap);
  }
  if ((kw_pipeline_stats(c->in->pipe)->lines & 0x3fff) == 0)
    draw_progress(c->in, false);
}

/* A pcap or pcapng file: every HTTP/1.x request found in its TCP streams becomes a call,
 * counted as one "line" of the source. */
static int ingest_capture(struct ingest *in, const char *path) {
  struct kw_cli *cli = in->cli;
  struct kw_capture_opts o = {.headers = (const char *const *)cli->cfg->identity.headers,
                              .nheaders = cli->cfg->identity.headers_count};
  struct cap_ctx c = {.in = in};
  char err[1024], source[PATH_MAX + 8];
  const struct kw_capture_stats *st;
  int r;

  if (strcmp(path, "-") == 0) {
    kw_cli_error(cli, "a packet capture on standard input is not supported; give its file");
    return KW_EXIT_FAIL;
  }
  if ((r = kw_capture_open_file(path, &o, &c.cap, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    return KW_EXIT_FAIL;
  }
  if (realpath(path, source) == NULL)
    snprintf(source, sizeof(source), "%s", path);
  if (kw_store_source(in->st, source, "pcap", "pcap", &c.src) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(in->st));
    kw_capture_destroy(c.cap);
    return -1;
  }
  err[0] = '\0';
  r = kw_capture_run(c.cap, on_capture_rec, &c, err, sizeof(err));
  st = kw_capture_stats(c.cap);
  in->done_bytes += kw_capture_offset(c.cap);
  if (c.err == 0 &&
      (kw_store_add_limit_hits(in->st, "capture_flows", (int64_t)st->tcp.flows_evicted) ||
       kw_store_add_limit_hits(in->st, "capture_reassembly_bytes",
                               (int64_t)st->tcp.drop_segments) ||
       kw_store_add_limit_hits(in->st, "capture_pending_requests",
                               (int64_t)st->http.pending_drops) ||
       kw_store_add_limit_hits(in->st, "capture_request_bytes",
                               (int64_t)st->http.truncated_fields) ||
       kw_store_add_limit_hits(in->st, "capture_headers", (int64_t)st->http.dropped_headers)))
    c.err = KW_ESTORE;
  if (c.err != 0) {
    kw_cli_error(cli, "database error while storing %s: %s", path, kw_store_errmsg(in->st));
    kw_capture_destroy(c.cap);
    return -1;
  }
  if (!in->quiet)
    kw_cli_error(cli,
                 "%s: %llu packets, %llu HTTP requests, %llu non-HTTP flows, %llu gaps "
                 "(%llu bytes lost), %llu decode errors",
                 path, (unsigned long long)st->packets, (unsigned long long)st->records,
                 (unsigned long long)st->non_http_flows, (unsigned long long)st->gaps,
                 (unsigned long long)st->gap_bytes, (unsigned long long)st->decode_errors);
  if (r == KW_EPARSE) /* damaged or truncated: what came before it is stored */
    kw_cli_error(cli, "%s", err);
  else if (r != 0)
    kw_cli_error(cli, "%s: %s", path, err[0] ? err : kw_strerror(r));
  /* A damaged capture keeps what came before the damage; one with nothing before it
   * failed like a log in which no line parsed. */
  bool nothing = st->packets == 0;
  kw_capture_destroy(c.cap);
  return r == 0 || (r == KW_EPARSE && !nothing) ? 0 : KW_EXIT_FAIL;
}

static int ingest_file(struct ingest *in, const char *path) {
  struct kw_cli *cli = in->cli;
  struct kw_reader *rd = NULL;
  struct kw_format autofmt = {0}, *fmt = &in->fixed;
  char err[1024], name[64], source[PATH_MAX + 8];
  const char *sample, *line;
  uint64_t lines_before = kw_pipeline_stats(in->pipe)->lines;
  uint64_t bad_before = kw_pipeline_stats(in->pipe)->malformed;
  uint64_t off_seen = 0, off_counted = 0;
  unsigned shown = 0;
  uint32_t src;
  size_t n, len;
  int r;

  if ((r = kw_reader_open(path, &rd, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    return KW_EXIT_FAIL;
  }
  n = kw_reader_peek(rd, &sample, SAMPLE_BYTES);
  if (is_capture((const unsigned char *)sample, n)) {
    kw_reader_close(rd);
    return ingest_capture(in, path);
  }
  if (n == 0) {
    if (!in->quiet)
      kw_cli_error(cli, "%s: empty, nothing to ingest", path);
    kw_reader_close(rd);
    return 0;
  }
  if (in->fixed.ops == NULL) {
    if ((r = kw_format_detect(sample, n, name, sizeof(name), err, sizeof(err))) != 0 ||
        (r = kw_format_create(&cli->cfg->ingest, name, &autofmt, err, sizeof(err))) != 0) {
      kw_cli_error(cli, "%s: %s", path, err);
      kw_reader_close(rd);
      return KW_EXIT_FAIL;
    }
    fmt = &autofmt;
  }
  if (strcmp(path, "-") == 0 || realpath(path, source) == NULL)
    snprintf(source, sizeof(source), "%s", strcmp(path, "-") == 0 ? "stdin" : path);
  if (kw_store_source(in->st, source, "file", fmt->name, &src) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(in->st));
    kw_format_destroy(&autofmt);
    kw_reader_close(rd);
    return -1;
  }
  for (;;) {
    r = kw_reader_next(rd, &line, &len);
    if (r == 0)
      break;
    /* Bytes since the last line: this line's, plus the rest of a skipped one. */
    size_t consumed = (size_t)(kw_reader_offset(rd) - off_counted);
    off_counted = kw_reader_offset(rd);
    if (r == KW_ETOOLONG) {
      kw_pipeline_skip(in->pipe, src, consumed);
      if (kw_store_add_limit_hits(in->st, "line_bytes", 1) != 0) {
        kw_cli_error(cli, "database error: %s", kw_store_errmsg(in->st));
        kw_format_destroy(&autofmt);
        kw_reader_close(rd);
        return -1;
      }
      report_malformed(in, path, kw_reader_lineno(rd), "longer than 64 KiB", &shown);
      continue;
    }
    if (r < 0) {
      kw_cli_error(cli, "cannot read %s: %s", path, kw_strerror(r));
      in->failed = 1;
      break;
    }
    err[0] = '\0';
    r = kw_pipeline_line(in->pipe, fmt, src, line, len, consumed, err, sizeof(err));
    if (r == KW_EPARSE) {
      report_malformed(in, path, kw_reader_lineno(rd), err, &shown);
    } else if (r != 0) {
      kw_cli_error(cli, "database error while storing %s: %s", path, kw_store_errmsg(in->st));
      kw_format_destroy(&autofmt);
      kw_reader_close(rd);
      return -1;
    }
    if ((kw_pipeline_stats(in->pipe)->lines & 0xffff) == 0) {
      uint64_t off = kw_reader_offset(rd);
      in->done_bytes += (int64_t)(off - off_seen);
      off_seen = off;
      draw_progress(in, false);
    }
  }
  in->done_bytes += (int64_t)(kw_reader_offset(rd) - off_seen);
  kw_pipeline_bytes(in->pipe, src, (size_t)(kw_reader_offset(rd) - off_counted));
  uint64_t lines = kw_pipeline_stats(in->pipe)->lines - lines_before;
  uint64_t bad = kw_pipeline_stats(in->pipe)->malformed - bad_before;
  if (shown > cli->cfg->ingest.max_errors_shown && !in->quiet)
    kw_cli_error(cli, "%s: %u more malformed lines not shown", path,
                 shown - cli->cfg->ingest.max_errors_shown);
  kw_format_destroy(&autofmt);
  kw_reader_close(rd);
  if (lines > 0 && bad == lines) {
    kw_cli_error(cli, "%s: none of its %llu lines matched format '%s'", path,
                 (unsigned long long)lines, fmt == &in->fixed ? in->fixed.name : name);
    return KW_EXIT_FAIL;
  }
  return 0;
}

/* ---- explain ------------------------------------------------------------------------ */

struct explain_opts {
  const char *rule, *key;
  bool all; /* also rules that never came near firing */
  size_t rows;
};

static void explain_help(void) {
  printf("usage: keywatch explain [--rule ID] [--key PREFIX] [--all] [--format NAME]\n"
         "                        [--json] FILE...\n"
         "\n"
         "Replays access logs against the configured rules without writing anything, and\n"
         "says per rule and key whether it fired and why, or how close it came: the highest\n"
         "observed value against its threshold at that moment (as fail2ban-regex does for\n"
         "its filters). Keys show as their display prefixes (a throwaway secret is used).\n"
         "\n"
         "  --rule ID      only this rule\n"
         "  --key PREFIX   only keys (or client addresses) starting with PREFIX\n"
         "  --all          also list rule/key pairs that stayed far below the threshold\n"
         "                 (by default: fired, or reached at least half of it)\n"
         "  --format, --log-format, --config, --json   as for ingest\n");
}

static void on_explain(const struct kw_explain_row *x, void *ctx) {
  struct explain_opts *o = ((void **)ctx)[0];
  bool json = *(bool *)((void **)ctx)[1];
  char t[40];

  if (!o->all && x->fires == 0 && x->best_ratio < 0.5)
    return;
  if (json) {
    printf("%s\n  {\"rule\": ", o->rows++ ? "," : "");
    kw_json_cstr(stdout, x->rule->id);
    printf(", \"type\": \"%s\", \"subject\": ", kw_rule_type_name(x->rule->type));
    kw_json_cstr(stdout, x->subject);
    printf(", \"fired\": %u, \"first_fired\": ", x->fires);
    if (x->fires)
      printf("\"%s\"", kw_time_format(x->first_fire_us, t, sizeof(t)));
    else
      fputs("null", stdout);
    printf(", \"closest\": {\"observed\": %.2f, \"threshold\": %.2f, \"ratio\": %.3f, "
           "\"at\": \"%s\"}, \"note\": ",
           x->best_observed, x->best_threshold, x->best_ratio,
           kw_time_format(x->best_us, t, sizeof(t)));
    kw_json_cstr(stdout, x->note);
    putchar('}');
    return;
  }
  if (o->rows++ == 0)
    printf("%-22s %-16s %-28s %s\n", "RULE", "KEY/ADDRESS", "RESULT", "CLOSEST (observed / threshold, at)");
  printf("%-22s ", x->rule->id);
  kw_term_str(stdout, x->subject, strlen(x->subject), 16);
  printf("%*s ", (int)(strlen(x->subject) < 16 ? 16 - strlen(x->subject) : 0), "");
  if (x->fires)
    printf("fired %-5u first %s ", x->fires, kw_time_format(x->first_fire_us, t, sizeof(t)));
  else
    printf("%-28s ", x->note ? "not judged" : "did not fire");
  printf("%.1f / %.1f (%.0f%%) at %s%s%s\n", x->best_observed, x->best_threshold,
         100.0 * x->best_ratio, kw_time_format(x->best_us, t, sizeof(t)), x->note ? ": " : "",
         x->note ? x->note : "");
}

static void explain_print(struct ingest *in, struct explain_opts *o) {
  struct kw_engine *e = kw_pipeline_engine(in->pipe);
  void *ctx[2] = {o, &in->cli->json};
  if (e == NULL)
    return;
  if (in->cli->json)
    fputs("[", stdout);
  kw_engine_explain(e, o->rule, o->key, on_explain, ctx);
  if (in->cli->json)
    fputs(o->rows ? "\n]\n" : "]\n", stdout);
  else if (o->rows == 0)
    printf("no rule fired or came within half of its threshold%s\n",
           o->all ? "" : " (--all lists every evaluation)");
  else
    printf("\n%zu keys tracked, %zu bytes of state (%zu per key)\n", kw_engine_tracked(e),
           kw_engine_bytes(e), kw_engine_state_size(e));
}

/* ---- alert delivery after a one-shot ingest ----------------------------------------- */

#define DELIVER_TIMEOUT_MS 15000

struct deliver {
  struct kw_sinks *sinks;
  struct kw_outbox *ob;
  int64_t left;
  int status;
};

static void on_sinks_closed(void *arg) { (void)arg; }

static void on_outbox_closed(void *arg) {
  struct deliver *dv = arg;
  kw_sink_close_all(dv->sinks, on_sinks_closed, dv);
}

static void on_drained(int status, int64_t left, void *arg) {
  struct deliver *dv = arg;
  dv->status = status;
  dv->left = left;
  kw_outbox_close(dv->ob, on_outbox_closed, dv);
}

/* Delivers the alerts waiting in the outbox (this run's and any earlier ones) to the
 * configured sinks, for up to DELIVER_TIMEOUT_MS; what is left stays queued for the next
 * ingest or `keywatch run`.  Returns KW_EXIT_OK or KW_EXIT_FAIL. */
static int deliver_alerts(struct ingest *in) {
  struct kw_cli *cli = in->cli;
  struct deliver dv = {.left = -1};
  struct kw_outbox_opts o = {.store = in->st,
                             .max_pending = in->cli->cfg->retention.outbox_max_pending};
  struct kw_outbox_stats os = {0};
  uv_loop_t loop;
  char err[1024];
  int r, rc = KW_EXIT_OK;

  if (cli->cfg->sinks_count == 0)
    return KW_EXIT_OK;
  if (uv_loop_init(&loop) != 0)
    return KW_EXIT_FAIL;
  if ((r = kw_sink_open_all(&loop, cli->cfg, &dv.sinks, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    rc = KW_EXIT_USAGE;
  } else {
    o.sinks = dv.sinks;
    if ((r = kw_outbox_init(&loop, &o, &dv.ob)) != 0 ||
        (r = kw_outbox_drain(dv.ob, DELIVER_TIMEOUT_MS, on_drained, &dv)) != 0) {
      kw_cli_error(cli, "cannot deliver alerts: %s", kw_strerror(r));
      if (dv.ob != NULL)
        kw_outbox_close(dv.ob, on_outbox_closed, &dv);
      else
        kw_sink_close_all(dv.sinks, on_sinks_closed, &dv);
      rc = KW_EXIT_FAIL;
    } else {
      kw_outbox_stats(dv.ob, &os);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0)
    rc = KW_EXIT_FAIL;
  if (rc == KW_EXIT_OK && dv.left > 0)
    kw_cli_error(cli, "%lld alert deliveries still pending (a sink is failing); they stay "
                      "queued for the next ingest or keywatch run",
                 (long long)dv.left);
  return rc;
}

static void name_keys(struct ingest *in) {
  const struct kw_config *cfg = in->cli->cfg;
  for (unsigned i = 0; i < cfg->keys_count; i++) {
    uint8_t fp[KW_FP_LEN];
    const struct kw_key_name_cfg *k = &cfg->keys[i];
    if (k->fingerprint != NULL && kw_fingerprint_from_hex(k->fingerprint, fp) == 0)
      kw_store_name_key(in->st, fp, NULL, k->name);
    else if (k->prefix != NULL)
      kw_store_name_key(in->st, NULL, k->prefix, k->name);
  }
}

static void summary(struct ingest *in, int nfiles) {
  const struct kw_pipeline_stats *s = kw_pipeline_stats(in->pipe);
  double secs = (double)(kw_time_now() - in->started_us) / 1e6;
  double rate = secs > 0 ? (double)s->lines / secs : 0;
  char a[32], b[32], c[32], d[32], e[32], f[32];

  if (in->cli->json) {
    printf("{\"files\": %d, \"lines\": %llu, \"calls\": %llu, \"keyed_calls\": %llu, "
           "\"malformed\": %llu, \"keys\": %llu, \"bytes\": %llu, \"seconds\": %.3f, "
           "\"lines_per_second\": %.0f, \"alerts\": %llu, \"firings\": %llu, "
           "\"untracked\": %llu, \"db\": ",
           nfiles, (unsigned long long)s->lines, (unsigned long long)s->calls,
           (unsigned long long)s->keyed, (unsigned long long)s->malformed,
           (unsigned long long)s->keys, (unsigned long long)s->bytes, secs, rate,
           (unsigned long long)s->alerts, (unsigned long long)s->firings,
           (unsigned long long)(kw_pipeline_engine(in->pipe)
                                    ? kw_engine_untracked(kw_pipeline_engine(in->pipe))
                                    : 0));
    kw_json_cstr(stdout, in->cli->db_path);
    printf("}\n");
    return;
  }
  struct kw_engine *eng = kw_pipeline_engine(in->pipe);
  if (eng != NULL && kw_engine_untracked(eng) > 0)
    fprintf(stderr,
            "warning: %llu calls were not evaluated by the rules for their key or address "
            "(more than 2,000,000 subjects, or out of memory)\n",
            (unsigned long long)kw_engine_untracked(eng));
  if (in->quiet || s->lines == 0)
    return;
  fprintf(stderr,
          "ingested %s lines from %d file%s in %.2f s (%s lines/s): %s calls, %s with a key, "
          "%s distinct keys, %s malformed, %llu alerts -> %s\n",
          kw_cli_num((int64_t)s->lines, a, sizeof(a)), nfiles, nfiles == 1 ? "" : "s", secs,
          kw_cli_num((int64_t)rate, b, sizeof(b)), kw_cli_num((int64_t)s->calls, c, sizeof(c)),
          kw_cli_num((int64_t)s->keyed, d, sizeof(d)),
          kw_cli_num((int64_t)s->keys, e, sizeof(e)),
          kw_cli_num((int64_t)s->malformed, f, sizeof(f)), (unsigned long long)s->alerts,
          in->cli->db_path);
}

/* ---- shadow ------------------------------------------------------------------------- */

static void shadow_help(void) {
  printf("usage: keywatch shadow [--format NAME] [--json] FILE...\n"
         "\n"
         "Replays access logs against the configured rules and the responder's safeguards\n"
         "without writing anything or calling any key store, and lists every revocation\n"
         "the rules decided: which key, when (the call's own time), by which rule, and\n"
         "whether automation would have revoked it (at which store) or why a safeguard\n"
         "held it back (protect list, min_severity, key_cooldown, max_per_hour/day, no\n"
         "store for the key).  Run it over past traffic before setting\n"
         "responder.dry_run: false.  Keys are fingerprinted with the real secret when it\n"
         "exists, so fp: selectors in responder.protect match.\n"
         "\n"
         "  --format NAME   the logs' format (default: the config's, else auto-detected)\n"
         "  --json          an array of {time, key_prefix, fingerprint, name, rule,\n"
         "                  severity, verdict (revoke|suppressed), store, why}\n");
}

struct shadow_out {
  bool json;
  size_t n, revoke;
};

static void on_shadow(const struct kw_shadow_row *row, void *ctx) {
  struct shadow_out *o = ctx;
  const struct kw_revocation *v = row->rev;
  char t[40], hex[2 * KW_FP_LEN + 1] = "";
  kw_time_format(v->event_us, t, sizeof(t));
  if (v->fp)
    kw_fingerprint_hex(v->fp, hex);
  o->revoke += strcmp(row->verdict, "revoke") == 0;
  if (o->json) {
    printf("%s\n  {\"time\": \"%s\", \"key_prefix\": ", o->n++ ? "," : "", t);
    kw_json_cstr(stdout, v->prefix);
    printf(", \"fingerprint\": ");
    kw_json_cstr(stdout, v->fp ? hex : NULL);
    printf(", \"name\": ");
    kw_json_cstr(stdout, v->name);
    printf(", \"rule\": ");
    kw_json_cstr(stdout, v->rule);
    printf(", \"severity\": \"%s\", \"verdict\": \"%s\", \"store\": ",
           kw_severity_name(v->severity), row->verdict);
    kw_json_cstr(stdout, row->store);
    printf(", \"why\": ");
    kw_json_cstr(stdout, row->why);
    putchar('}');
    return;
  }
  if (o->n++ == 0)
    printf("%-24s %-10s %-24s %-10s %s\n", "TIME", "KEY", "RULE", "VERDICT", "WHY");
  printf("%-24s ", t);
  kw_term_str(stdout, v->prefix ? v->prefix : "-", v->prefix ? strlen(v->prefix) : 1, 10);
  printf("%*s ", (int)(10 - (v->prefix ? (strlen(v->prefix) < 10 ? strlen(v->prefix) : 10) : 1)),
         "");
  kw_term_str(stdout, v->rule ? v->rule : "-", v->rule ? strlen(v->rule) : 1, 24);
  printf("%*s %-10s ", (int)(24 - (v->rule ? (strlen(v->rule) < 24 ? strlen(v->rule) : 24) : 1)),
         "", row->verdict);
  kw_term_str(stdout, row->why, strlen(row->why), 100);
  putchar('\n');
}

static int shadow_print(struct ingest *in) {
  struct shadow_out o = {.json = in->cli->json};
  char err[1024];
  if (o.json)
    putchar('[');
  if (kw_responder_shadow(in->st, in->cli->cfg, on_shadow, &o, err, sizeof(err)) != 0) {
    kw_cli_error(in->cli, "%s", err);
    return KW_EXIT_FAIL;
  }
  if (o.json)
    fputs(o.n ? "\n]\n" : "]\n", stdout);
  else if (o.n == 0)
    printf("no rule with action: revoke fired\n");
  else
    printf("\n%zu decision%s: %zu would have been revoked, %zu held back by safeguards%s\n",
           o.n, o.n == 1 ? "" : "s", o.revoke, o.n - o.revoke,
           *in->cli->cfg->responder.dry_run ? " (responder.dry_run is on: live operation would "
                                               "only record them)"
                                             : "");
  return KW_EXIT_OK;
}

enum mode { MODE_INGEST, MODE_EXPLAIN, MODE_SHADOW };

/* `ingest`; `explain`: the same replay into an in-memory store under a throwaway secret,
 * then the engine's account of every rule and key; `shadow`: the replay into an
 * in-memory store, then the responder's judgement of every decision. */
static int run(struct kw_cli *cli, int argc, char **argv, enum mode mode) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"format", required_argument, NULL, 'f'},
      {"log-format", required_argument, NULL, 'L'},
      {"json", no_argument, NULL, 'j'},
      {"quiet", no_argument, NULL, 'q'},
      {"no-rules", no_argument, NULL, 'R'},
      {"rule", required_argument, NULL, 'r'},
      {"key", required_argument, NULL, 'k'},
      {"all", no_argument, NULL, 'a'},
      {NULL, 0, NULL, 0},
  };
  struct ingest in = {.cli = cli};
  struct kw_fingerprint *fp = NULL;
  const char *format = NULL, *log_format = NULL;
  struct explain_opts xo = {0};
  char err[1024], spath[PATH_MAX + 32];
  int c, r, rc = KW_EXIT_OK;
  bool rules = true;

  while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    if (mode != MODE_EXPLAIN && (c == 'r' || c == 'k' || c == 'a'))
      return kw_cli_bad_option(cli, argv);
    if (mode != MODE_INGEST && (c == 'R' || c == 'q'))
      return kw_cli_bad_option(cli, argv);
    switch (c) {
    case 'h':
      mode == MODE_EXPLAIN ? explain_help() : mode == MODE_SHADOW ? shadow_help() : help();
      return KW_EXIT_OK;
    case 'r': xo.rule = optarg; break;
    case 'k': xo.key = optarg; break;
    case 'a': xo.all = true; break;
    case 'f': format = optarg; break;
    case 'L': log_format = optarg; break;
    case 'j': cli->json = true; break;
    case 'q': in.quiet = true; break;
    case 'R': rules = false; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (optind >= argc)
    return kw_cli_usage_error(cli, "no input: give one or more FILEs ('-' for stdin)");
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if ((log_format && kw_config_set(&cli->cfg->ingest.log_format, log_format) != 0) ||
      (format && kw_config_set(&cli->cfg->ingest.format, format) != 0) ||
      (log_format && !format && kw_config_set(&cli->cfg->ingest.format, "nginx") != 0))
    return KW_EXIT_FAIL;
  if (strcmp(cli->cfg->ingest.format, "auto") != 0 &&
      kw_format_create(&cli->cfg->ingest, cli->cfg->ingest.format, &in.fixed, err,
                       sizeof(err)) != 0)
    return kw_cli_usage_error(cli, "%s", err);
  kw_cli_secret_path(cli, spath, sizeof(spath));
  if (mode == MODE_SHADOW && access(spath, R_OK) == 0) {
    /* Nothing is kept, but keys get their real fingerprints (protect: fp:… matches). */
    cli->db_path = ":memory:";
    in.quiet = true;
    r = kw_fingerprint_create(spath, &fp, err, sizeof(err));
  } else if (mode != MODE_INGEST) {
    /* Nothing is kept: a throwaway secret, a database in memory. */
    unsigned char secret[32];
    cli->db_path = ":memory:";
    in.quiet = true;
    r = RAND_bytes(secret, sizeof(secret)) == 1
            ? kw_fingerprint_create_from(secret, sizeof(secret), &fp)
            : KW_ESECRET;
    OPENSSL_cleanse(secret, sizeof(secret));
    snprintf(err, sizeof(err), "cannot make a throwaway secret");
  } else {
    r = kw_fingerprint_create(spath, &fp, err, sizeof(err));
  }
  if (r != 0) {
    kw_cli_error(cli, "%s", err);
    kw_format_destroy(&in.fixed);
    return KW_EXIT_FAIL;
  }
  if ((rc = kw_cli_open_store(cli, 0, &in.st)) != 0)
    goto out;
  if ((r = kw_pipeline_create(cli->cfg, in.st, fp, &in.pipe)) != 0) {
    kw_cli_error(cli, "cannot start the ingest pipeline: %s", kw_strerror(r));
    rc = KW_EXIT_FAIL;
    goto out;
  }
  if (rules && (r = kw_pipeline_enable_rules(in.pipe, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    rc = r == KW_ECONFIG ? KW_EXIT_USAGE : KW_EXIT_FAIL;
    goto out;
  }
  in.progress = !in.quiet && isatty(STDERR_FILENO);
  in.started_us = kw_time_now();
  for (int i = optind; i < argc; i++) {
    struct stat sb;
    int64_t sz = -1;
    if (strcmp(argv[i], "-") != 0 && stat(argv[i], &sb) == 0 && S_ISREG(sb.st_mode))
      sz = (int64_t)sb.st_size;
    in.total_bytes = sz >= 0 && in.total_bytes >= 0 ? in.total_bytes + sz : -1;
  }
  for (int i = optind; i < argc; i++) {
    r = ingest_file(&in, argv[i]);
    if (r < 0) { /* the store failed: nothing further can be stored */
      rc = KW_EXIT_FAIL;
      goto out;
    }
    if (r != 0 || in.failed)
      rc = KW_EXIT_FAIL;
  }
  draw_progress(&in, true);
  if (kw_pipeline_engine(in.pipe) != NULL &&
      kw_store_add_limit_hits(in.st, "rules_subjects",
                              (int64_t)kw_engine_untracked(kw_pipeline_engine(in.pipe))) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(in.st));
    rc = KW_EXIT_FAIL;
    goto out;
  }
  if (kw_pipeline_save_baselines(in.pipe) != 0 || kw_pipeline_commit(in.pipe) != 0) {
    kw_cli_error(cli, "database error: %s", kw_store_errmsg(in.st));
    rc = KW_EXIT_FAIL;
    goto out;
  }
  name_keys(&in);
  if (mode == MODE_EXPLAIN) {
    explain_print(&in, &xo);
  } else if (mode == MODE_SHADOW) {
    if ((r = shadow_print(&in)) != KW_EXIT_OK)
      rc = r;
  } else {
    summary(&in, argc - optind);
    if (rules && (r = deliver_alerts(&in)) != KW_EXIT_OK && rc == KW_EXIT_OK)
      rc = r;
  }
out:
  kw_pipeline_destroy(in.pipe);
  if (kw_store_close(in.st) != 0 && rc == 0)
    rc = KW_EXIT_FAIL;
  kw_format_destroy(&in.fixed);
  kw_fingerprint_destroy(fp);
  return rc;
}

int kw_cmd_ingest(struct kw_cli *cli, int argc, char **argv) {
  return run(cli, argc, argv, MODE_INGEST);
}

int kw_cmd_explain(struct kw_cli *cli, int argc, char **argv) {
  return run(cli, argc, argv, MODE_EXPLAIN);
}

int kw_cmd_shadow(struct kw_cli *cli, int argc, char **argv) {
  return run(cli, argc, argv, MODE_SHADOW);
}
