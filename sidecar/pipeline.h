/* pipeline.h — the ingest hot path: line → kw_rec → kw_call → store.
 *
 *   parse (collector format) → key identity + redaction (collector/keyid)
 *     → endpoint template (analyzer/endpoint) → batched insert (store)
 *
 * The pipeline owns no input: callers (`keywatch ingest`, later the daemon's sources)
 * feed it lines with the format and source they came from, and decide when to commit
 * beyond the automatic commit every `ingest.batch_rows` calls.
 * Thread: one pipeline per thread; it borrows the store, config and fingerprint.
 */
#ifndef KW_PIPELINE_H
#define KW_PIPELINE_H

#include "../analyzer/engine.h"
#include "../collector/format.h"
#include "config.h"
#include "fingerprint.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct kw_pipeline_stats {
  uint64_t lines;     /* lines fed, including malformed and overlong ones */
  uint64_t calls;     /* calls stored */
  uint64_t keyed;     /* calls that carried a key */
  uint64_t malformed; /* lines that did not parse (overlong ones included) */
  uint64_t bytes;     /* input bytes fed */
  uint64_t keys;      /* distinct keys seen by this pipeline */
  int64_t last_ts_us; /* event time of the last call stored (0: none had one) */
  uint64_t firings;   /* rule firings (grouped into alerts by the store) */
  uint64_t alerts;    /* alerts opened */
  uint64_t revocations; /* of them, with action revoke (a decision recorded) */
};

struct kw_pipeline;

/* Returns a new pipeline (free with kw_pipeline_destroy()).  Borrows cfg, st and fp. */
int kw_pipeline_create(const struct kw_config *cfg, struct kw_store *st,
                       const struct kw_fingerprint *fp, struct kw_pipeline **out);

/* Frees; NULL is a no-op.  Commits nothing: call kw_pipeline_commit() first to keep the
 * open batch (a caller that failed simply doesn't). */
void kw_pipeline_destroy(struct kw_pipeline *p);

/* Feeds one line of source_id, parsed with fmt; `consumed` is the input bytes it took
 * (with its line end).  Returns 0 when stored; KW_EPARSE when malformed (counted; the
 * reason, which never quotes the line, goes to why); a negative store error otherwise,
 * which the caller must treat as fatal for the batch. */
int kw_pipeline_line(struct kw_pipeline *p, struct kw_format *fmt, uint32_t source_id,
                     const char *line, size_t len, size_t consumed, char *why,
                     size_t whylen);

/* Feeds one record that a source parsed itself (a packet capture's HTTP transaction),
 * counted as one line of input of `bytes` bytes.  Returns 0 or a negative store error. */
int kw_pipeline_rec(struct kw_pipeline *p, const struct kw_rec *rec, uint32_t source_id,
                    size_t bytes);

/* Counts a line that never reached the parser (overlong), as malformed. */
void kw_pipeline_skip(struct kw_pipeline *p, uint32_t source_id, size_t consumed);

/* Counts input bytes that belong to no line (the rest of a skipped line at end of file). */
void kw_pipeline_bytes(struct kw_pipeline *p, uint32_t source_id, size_t n);

/* Loads the configured rule packs and evaluates every stored call with them from now on:
 * firings become alerts, queued for the configured sinks whose minimum severity they
 * reach.  Baselines saved in the store are restored.  Returns 0 or KW_ECONFIG/KW_ESTORE
 * with a message in err. */
int kw_pipeline_enable_rules(struct kw_pipeline *p, char *err, size_t errlen);

/* The engine (NULL when rules are off), e.g. for explain. */
struct kw_engine *kw_pipeline_engine(struct kw_pipeline *p);

/* Writes every key's baseline into the open batch (commit to keep them). */
int kw_pipeline_save_baselines(struct kw_pipeline *p);

/* Whether the pipeline commits by itself every `ingest.batch_rows` calls (default on).
 * A daemon that commits read positions with the calls turns it off and commits itself. */
void kw_pipeline_set_autocommit(struct kw_pipeline *p, bool on);

/* Commits the batch (calls, key totals, source counters). */
int kw_pipeline_commit(struct kw_pipeline *p);

const struct kw_pipeline_stats *kw_pipeline_stats(const struct kw_pipeline *p);

#endif
