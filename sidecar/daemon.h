/* daemon.h — `keywatch run`: the sidecar's one libuv loop.
 *
 * The daemon owns the store's writer connection, one ingest pipeline and the sources
 * declared in the configuration (files, globs of files, syslog listeners).  Every line a
 * source delivers goes through the pipeline into the open batch; the batch is committed
 * every run.commit_ms (or sooner when ingest.batch_rows calls are pending) together with
 * each file's read position, gaps found, source counters and status — so after a crash or
 * kill -9 the daemon resumes exactly where the last commit left off: no call is lost, none
 * is stored twice.  A failed commit stops the daemon (nothing is acknowledged that was
 * not stored); a restart re-reads from the committed positions.
 *
 *   created ──start──► running ──reload (SIGHUP)──► running
 *                         │
 *                         └──stop──► stopping ──(all sources closed, final commit)──► stopped
 *
 * Thread: the loop's thread.  kw_daemon_stop()'s callback runs once every handle the
 * daemon opened is closed; then kw_daemon_destroy() frees it.
 */
#ifndef KW_DAEMON_H
#define KW_DAEMON_H

#include "config.h"
#include "log.h"

#include <uv.h>

struct kw_daemon;

/* Builds a daemon over cfg (takes ownership: freed by kw_daemon_destroy() or replaced on
 * reload).  config_path may be NULL (then reload re-applies cfg only).  Opens the store
 * and the fingerprint secret; errors go to err. */
int kw_daemon_create(uv_loop_t *loop, struct kw_config *cfg, const char *config_path,
                     const char *db_path, const struct kw_log *log, struct kw_daemon **out,
                     char *err, size_t errlen);

/* Starts every source.  A source that cannot start is an error (with its name in err). */
int kw_daemon_start(struct kw_daemon *d, char *err, size_t errlen);

/* Re-reads the configuration file: sources added, removed or changed are started or
 * stopped; positions are kept.  On a bad file, logs the error and keeps running as is.
 * Returns 0 or the load error. */
int kw_daemon_reload(struct kw_daemon *d);

/* Runs a scheduled-style permission review now (logs why not when no review.schedule
 * is configured). */
void kw_daemon_review_now(struct kw_daemon *d);

/* Who to tell once the daemon has stopped — by kw_daemon_stop() or by itself after a
 * failure (then the owner's handles, e.g. signal watchers, must close too). */
void kw_daemon_on_stop(struct kw_daemon *d, void (*cb)(struct kw_daemon *d, void *arg),
                       void *arg);

/* Commits, closes every source; cb runs when all is closed (exactly once). */
void kw_daemon_stop(struct kw_daemon *d, void (*cb)(struct kw_daemon *d, void *arg),
                    void *arg);

/* 0 while healthy; the error that stopped the daemon otherwise (a failed commit). */
int kw_daemon_error(const struct kw_daemon *d);

/* Final commit and free; NULL is a no-op. Returns 0 or the commit's error. */
int kw_daemon_destroy(struct kw_daemon *d);

#endif
