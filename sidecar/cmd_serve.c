/* cmd_serve.c — `keywatch serve`: the dashboard, JSON API and /metrics over an existing
 * database, without ingesting (`keywatch run` serves the same when http.listen is set).
 *
 * One loop: the HTTP server; reads on the thread pool with read-only connections, writes
 * (ack, resolve, revoke) with a connection of its own, committed at once.  SIGTERM/SIGINT
 * stop it after the requests in flight are answered.
 */
#include "api.h"
#include "cli.h"
#include "err.h"
#include "httpd.h"
#include "log.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(void) {
  printf("usage: keywatch serve [--listen ADDR] [--log-level L]\n"
         "\n"
         "Serves the dashboard (/), the JSON API (/api/v1/…, docs/api.md) and Prometheus\n"
         "metrics (/metrics) over the database, on ADDR (default http.listen, else\n"
         "127.0.0.1:8080).  API tokens come from http.tokens (viewer, responder); with\n"
         "none configured, reads are open and changes refused.  Stop with Ctrl-C/SIGTERM.\n"
         "\n"
         "  --listen ADDR   127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080 (think twice)\n"
         "  --log-level L   debug, info (default), warn, error\n");
}

struct serve {
  uv_loop_t *loop;
  struct kw_httpd *httpd;
  uv_signal_t sig[2];
  struct kw_log log;
};

static void on_closed(void *arg) {
  struct serve *s = arg;
  for (int i = 0; i < 2; i++)
    uv_close((uv_handle_t *)&s->sig[i], NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct serve *s = h->data;
  kw_log(&s->log, KW_LOG_INFO, "signal", "signal", signum == SIGTERM ? "TERM" : "INT",
         "action", "stop", NULL);
  for (int i = 0; i < 2; i++)
    uv_signal_stop(&s->sig[i]);
  kw_httpd_close(s->httpd, on_closed, s);
  s->httpd = NULL;
}

int kw_cmd_serve(struct kw_cli *cli, int argc, char **argv) {
  static const struct option opts[] = {
      KW_CLI_COMMON_OPTS,
      {"listen", required_argument, NULL, 'l'},
      {"log-level", required_argument, NULL, 'L'},
      {NULL, 0, NULL, 0},
  };
  struct serve s = {.loop = uv_default_loop(), .log = {.f = stderr, .min = KW_LOG_INFO}};
  struct kw_api *api = NULL;
  const char *listen = NULL, *level = NULL;
  struct kw_store *probe = NULL;
  char err[1024], port[16];
  int c, r, rc = KW_EXIT_FAIL;

  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (kw_cli_common_opt(cli, c, optarg))
      continue;
    switch (c) {
    case 'h': help(); return KW_EXIT_OK;
    case 'l': listen = optarg; break;
    case 'L': level = optarg; break;
    default: return kw_cli_bad_option(cli, argv);
    }
  }
  if (optind < argc)
    return kw_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
  if (level && (r = kw_log_level_parse(level)) < 0)
    return kw_cli_usage_error(cli, "--log-level: '%s' is not debug, info, warn or error", level);
  if (level)
    s.log.min = (enum kw_log_level)kw_log_level_parse(level);
  if ((r = kw_cli_load_config(cli)) != 0)
    return r;
  if (listen == NULL)
    listen = cli->cfg->http.listen ? cli->cfg->http.listen : "127.0.0.1:8080";
  /* The database must exist (serving an empty new file helps nobody); opening it for
   * writing once migrates an older schema. */
  if (access(cli->db_path, F_OK) != 0) {
    kw_cli_error(cli, "no database at %s: `keywatch ingest` or `keywatch run` makes one",
                 cli->db_path);
    return KW_EXIT_FAIL;
  }
  if ((rc = kw_cli_open_store(cli, 0, &probe)) != 0)
    return rc;
  kw_store_close(probe);
  rc = KW_EXIT_FAIL;
  struct kw_api_opts ao = {.db_path = cli->db_path, .cfg = cli->cfg, .log = &s.log};
  if ((r = kw_api_create(&ao, &api, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    return r == KW_ECONFIG ? KW_EXIT_USAGE : KW_EXIT_FAIL;
  }
  size_t nroutes;
  const struct kw_http_route *routes = kw_api_routes(api, &nroutes);
  struct kw_httpd_opts ho = {.listen = listen, .routes = routes, .nroutes = nroutes,
                             .csp = kw_api_csp()};
  if ((r = kw_httpd_start(s.loop, &ho, &s.httpd, err, sizeof(err))) != 0) {
    kw_cli_error(cli, "%s", err);
    kw_api_destroy(api);
    return KW_EXIT_FAIL;
  }
  static const int signums[] = {SIGTERM, SIGINT};
  for (int i = 0; i < 2; i++) {
    uv_signal_init(s.loop, &s.sig[i]);
    s.sig[i].data = &s;
    uv_signal_start(&s.sig[i], on_signal, signums[i]);
  }
  snprintf(port, sizeof(port), "%d", kw_httpd_port(s.httpd));
  kw_log(&s.log, KW_LOG_INFO, "listening", "address", listen, "port", port, "db", cli->db_path,
         "tokens", cli->cfg->http.tokens_count ? "configured" : "none (read-only)", NULL);
  uv_run(s.loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(s.loop) == 0 ? KW_EXIT_OK : KW_EXIT_FAIL;
  kw_api_destroy(api);
  kw_log(&s.log, KW_LOG_INFO, "stopped", "status", rc == 0 ? "ok" : "failed", NULL);
  return rc;
}
