/* cmd_run.c — `keywatch run`: the daemon's main: argv, config, loop, signals.
 *
 * Everything else is in daemon.c.  Signals: SIGTERM and SIGINT stop cleanly (a final
 * commit, then exit 0); SIGHUP reloads the configuration file; SIGUSR1 runs a permission
 * review now (when review.schedule is set).  The daemon's own events
 * go to stderr as logfmt lines.
 */
#include "../collector/format.h"
#include "../collector/reader.h"
#include "cli.h"
#include "daemon.h"
#include "err.h"
#include "log.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
  printf("usage: keywatch run [--config FILE] [--db PATH] [--format NAME | --log-format STR]\n"
         "                    [--syslog ADDR] [--log-level LEVEL] [FILE...]\n"
         "\n"
         "Runs the sidecar: follows access logs as they are written (through rotation,\n"
         "copytruncate, deletion and re-creation) and/or receives them as syslog, and\n"
         "records every call exactly once, committing each file's read position with the\n"
         "calls read up to it. Sources come from the config's `sources:` and from FILEs\n"
         "(a path or a quoted glob such as '/var/log/nginx/*.access.log').\n"
         "\n"
         "options:\n"
         "  --format NAME       format of the FILEs (default: the config's ingest.format;\n"
         "                      'auto' detects it from a FILE's existing lines)\n"
         "  --log-format STR    an nginx log_format for the FILEs (implies --format nginx)\n"
         "  --syslog ADDR       also receive syslog on ADDR: udp://HOST:PORT or\n"
         "                      tcp://HOST:PORT (nginx: access_log syslog:server=...)\n"
         "  --interface IFACE   also capture HTTP/1.x API traffic on a network interface\n"
         "                      (libpcap; needs CAP_NET_RAW)\n"
         "  --bpf FILTER        capture filter for --interface (e.g. 'tcp port 8080')\n"
         "  --from-end          FILEs without a saved position start at their end\n"
         "  --log-level LEVEL   debug, info (default), warn, error\n"
         "  --db PATH           database (default ./keywatch.db)\n"
         "  --config FILE       configuration (see keywatch.yaml: sources, run)\n"
         "\n"
         "signals: TERM/INT commit and exit; HUP reloads the config (sources added or\n"
         "removed keep their positions).\n"
         "exit status: 0 after a clean stop; 1 on a failure (e.g. the database cannot be\n"
         "written: nothing uncommitted is acknowledged); 2 usage or configuration error.\n");
}

struct run {
  struct kw_cli *cli;
  uv_loop_t *loop;
  struct kw_daemon *d;
  uv_signal_t sig[4];
  int nsig;
  struct kw_log log;
};

static void on_sig_closed(uv_handle_t *h) { (void)h; }

static void on_stopped(struct kw_daemon *d, void *arg) {
  struct run *r = arg;
  (void)d;
  for (int i = 0; i < r->nsig; i++)
    uv_close((uv_handle_t *)&r->sig[i], on_sig_closed);
  r->nsig = 0;
}

static void on_signal(uv_signal_t *h, int signum) {
  struct run *r = h->data;
  if (signum == SIGHUP) {
    kw_log(&r->log, KW_LOG_INFO, "signal", "signal", "HUP", "action", "reload", NULL);
    kw_daemon_reload(r->d);
    return;
  }
  if (signum == SIGUSR1) {
    kw_log(&r->log, KW_LOG_INFO, "signal", "signal", "USR1", "action", "review", NULL);
    kw_daemon_review_now(r->d);
    return;
  }
  kw_log(&r->log, KW_LOG_INFO, "signal", "signal", signum == SIGTERM ? "TERM" : "INT",
         "action", "stop", NULL);
  kw_daemon_stop(r->d, on_stopped, r);
}

/* Appends a source from the command line to the configuration. */
static int add_source(struct kw_config *cfg, const char *type, const char *where,
                      const char *format, const char *log_format, bool from_end) {
  struct kw_source_cfg *v = realloc(cfg->sources, (cfg->sources_count + 1) * sizeof(*v));
  struct kw_source_cfg *s;
  if (v == NULL)
    return KW_ENOMEM;
  cfg->sources = v;
  s = &v[cfg->sources_count];
  memset(s, 0, sizeof(*s));
  cfg->sources_count++;
  if (kw_config_set(&s->type, type) || kw_config_set(&s->name, where) ||
      kw_config_set(strcmp(type, "file") == 0     ? &s->path
                    : strcmp(type, "syslog") == 0 ? &s->listen
                                                  : &s->interface,
                    where) ||
      (format && kw_config_set(&s->format, format)) ||
      (log_format && kw_config_set(&s->log_format, log_format)) ||
      kw_config_set(&s->start_at, from_end ? "end" : "beginning"))
    return KW_ENOMEM;
  return 0;
}

/* For `run FILE` with format auto: detect from the lines the file already has. */
static int detect_file_format(struct kw_cli *cli, const char *path, char *out, size_t outlen) {
  struct kw_reader *rd;
  const char *sample;
  char err[512];
  size_t n;
  int r;

  if (strpbrk(path, "*?[") != NULL ||
      kw_reader_open(path, &rd, err, sizeof(err)) != 0) {
    kw_cli_error(cli, "%s: give --format (the format cannot be detected from a file that is "
                      "not there yet)", path);
    return KW_EXIT_USAGE;
  }
  n = kw_reader_peek(rd, &sample, 64 * 1024);
  r = kw_format_detect(sample, n, out, outlen, err, sizeof(err));
  kw_reader_close(rd);
  if (r != 0) {
    kw_cli_error(cli, "%s: %s", path, err);
    return KW_EXIT_USAGE;
  }
  return 0;
}

int kw_cmd_run(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"format", required_argument, NULL, 'f'},
      {"log-format", required_argument, NULL, 'L'},
      {"syslog", required_argument, NULL, 's'},
      {"interface", required_argument, NULL, 'i'},
      {"bpf", required_argument, NULL, 'B'},
      {"from-end", no_argument, NULL, 'e'},
      {"log-level", required_argument, NULL, 'l'},
      {NULL, 0, NULL, 0},
  };
  static const int signums[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
  struct run run = {.cli = cli, .log = {.f = stderr, .min = KW_LOG_INFO}};
  const char *format = NULL, *log_format = NULL, *syslog_addr = NULL, *level = NULL;
  const char *iface = NULL, *bpf = NULL;
  struct kw_config *cfg;
  bool from_end = false;
  char err[1024], detected[64];
  int c, r, rc = KW_EXIT_OK;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': help(); return KW_EXIT_OK;
    case 'f': format = optarg; break;
    case 'L': log_format = optarg; break;
    case 's': syslog_addr = optarg; break;
    case 'i': iface = optarg; break;
    case 'B': bpf = optarg; break;
    case 'e': from_end = true; break;
    case 'l': level = optarg; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  cfg = cli->cfg;
  if (level == NULL)
    level = cfg->run.log_level;
  if (kw_log_level_parse(level) < 0)
    return kw_cli_usage_error(cli, "--log-level: '%s' is not debug, info, warn or error", level);
  run.log.min = (enum kw_log_level)kw_log_level_parse(level);
  if (log_format && !format)
    format = "nginx";
  if (format == NULL && strcmp(cfg->ingest.format, "auto") != 0)
    format = cfg->ingest.format;
  for (int i = optind; i < argc; i++) {
    const char *f = format;
    if (f == NULL || strcmp(f, "auto") == 0) {
      if ((r = detect_file_format(cli, argv[i], detected, sizeof(detected))) != 0)
        return r;
      f = detected;
    }
    if (add_source(cfg, "file", argv[i], f, log_format, from_end) != 0)
      return KW_EXIT_FAIL;
  }
  if (syslog_addr != NULL &&
      add_source(cfg, "syslog", syslog_addr, format, log_format, false) != 0)
    return KW_EXIT_FAIL;
  if (iface != NULL) {
    if (add_source(cfg, "pcap", iface, NULL, NULL, false) != 0 ||
        (bpf && kw_config_set(&cfg->sources[cfg->sources_count - 1].bpf, bpf) != 0))
      return KW_EXIT_FAIL;
  } else if (bpf != NULL) {
    return kw_cli_usage_error(cli, "--bpf goes with --interface");
  }
  if (cfg->sources_count == 0)
    return kw_cli_usage_error(cli, "nothing to follow: give FILEs, --syslog ADDR, --interface "
                                   "IFACE, or sources in the config");
  run.loop = uv_default_loop();
  /* The daemon owns the configuration from here on (it may replace it on reload). */
  cli->cfg = NULL;
  if ((r = kw_daemon_create(run.loop, cfg, cli->config_path, cli->db_path, &run.log, &run.d,
                            err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    return r == KW_EFORMAT || r == KW_EINVAL ? KW_EXIT_USAGE : KW_EXIT_FAIL;
  }
  kw_daemon_on_stop(run.d, on_stopped, &run); /* also when it stops itself on a failure */
  for (size_t i = 0; i < sizeof(signums) / sizeof(signums[0]); i++) {
    uv_signal_init(run.loop, &run.sig[i]);
    run.sig[i].data = &run;
    uv_signal_start(&run.sig[i], on_signal, signums[i]);
    run.nsig++;
  }
  if ((r = kw_daemon_start(run.d, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    rc = r == KW_EFORMAT || r == KW_EINVAL ? KW_EXIT_USAGE : KW_EXIT_FAIL;
    kw_daemon_stop(run.d, on_stopped, &run);
  } else {
    kw_log(&run.log, KW_LOG_INFO, "started", "db", cli->db_path, "config",
           cli->config_path, NULL);
  }
  uv_run(run.loop, UV_RUN_DEFAULT);
  if (kw_daemon_error(run.d) != 0 && rc == KW_EXIT_OK)
    rc = KW_EXIT_FAIL;
  if (kw_daemon_destroy(run.d) != 0 && rc == KW_EXIT_OK)
    rc = KW_EXIT_FAIL;
  if (uv_loop_close(run.loop) != 0 && rc == KW_EXIT_OK)
    rc = KW_EXIT_FAIL;
  kw_log(&run.log, KW_LOG_INFO, "stopped", "status", rc == 0 ? "ok" : "failed", NULL);
  return rc;
}
