/* kw_metrics_dump.c — test tool: writes the /metrics document of a database to stdout.
 *
 * usage: kw_metrics_dump DB
 * Opens DB read-only and calls kw_metrics_write(), exactly what GET /metrics answers
 * (tests/integration/test_grafana.sh and test_prometheus.sh use it until the HTTP server
 * serves the route).  Exit: 0 written; 1 the store failed; 2 usage or open error.
 * Thread: main only.
 */
#include "sidecar/err.h"
#include "sidecar/metrics.h"
#include "sidecar/store.h"

#include <stdio.h>

int main(int argc, char **argv) {
  struct kw_store *st = NULL;
  char err[512];
  int r;

  if (argc != 2 || argv[1][0] == '-') {
    fputs("usage: kw_metrics_dump DB\n", stderr);
    return 2;
  }
  if ((r = kw_store_open(argv[1], KW_STORE_RDONLY, &st, err, sizeof(err))) != 0) {
    fprintf(stderr, "kw_metrics_dump: %s\n", err);
    return 2;
  }
  r = kw_metrics_write(st, argv[1], stdout);
  if (r != 0)
    fprintf(stderr, "kw_metrics_dump: %s: %s\n", kw_strerror(r), kw_store_errmsg(st));
  kw_store_close(st);
  return r == 0 ? 0 : 1;
}
