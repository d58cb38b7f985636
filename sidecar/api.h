/* api.h — the HTTP API (docs/api.md), the dashboard's static files and /metrics, as
 * routes for the HTTP server (httpd.h).
 *
 * Reads run on the thread pool, each on a read-only connection from a small pool (so the
 * dashboard never waits for, or slows, the loop's ingestion); writes (ack, resolve,
 * revoke) run on the loop with the writer connection: the daemon's (joining its next
 * group commit, which on_write asks for) or, in `keywatch serve`, one of the API's own
 * that commits at once.  Tokens are kept as SHA-256 digests and compared in constant
 * time; a token's name is what alerts record as who acknowledged them.
 * Thread: the loop's (the read handlers' work: pool threads, one connection each).
 */
#ifndef KW_API_H
#define KW_API_H

#include "config.h"
#include "httpd.h"
#include "log.h"
#include "store.h"

#include <stddef.h>

struct kw_api;

struct kw_api_opts {
  const char *db_path;
  const struct kw_config *cfg;  /* tokens are read at init; not kept */
  struct kw_store *writer;      /* NULL: the API opens its own and commits each write */
  const struct kw_log *log;
  void (*on_write)(void *arg);  /* with a borrowed writer: a write joined its batch */
  void *arg;
};

/* Returns 0 and a new API, or KW_ECONFIG / KW_ESTORE with err set. */
int kw_api_create(const struct kw_api_opts *o, struct kw_api **out, char *err, size_t errlen);

/* The routes to give the server (valid for the API's life), and its CSP. */
const struct kw_http_route *kw_api_routes(struct kw_api *a, size_t *n);
const char *kw_api_csp(void);

/* After the server is closed (no request in flight).  NULL is a no-op. */
void kw_api_destroy(struct kw_api *a);

#endif
