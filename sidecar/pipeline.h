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

#include "../collector/format.h"
#include "config.h"
#include "fingerprint.h"
#include "store.h"

#include <stdint.h>

struct kw_pipeline_stats {
  uint64_t lines;     /* lines fed, including malformed and overlong ones */
  uint64_t calls;     /* calls stored */
  uint64_t keyed;     /* calls that carried a key */
  uint64_t malformed; /* lines that did not parse (overlong ones included) */
  uint64_t bytes;     /* input bytes fed */
  uint64_t keys;      /* distinct keys seen by this pipeline */
};

struct kw_pipeline;

/* Returns a new pipeline (free with kw_pipeline_destroy()).  Borrows cfg, st and fp. */
int kw_pipeline_create(const struct kw_config *cfg, struct kw_store *st,
                       const struct kw_fingerprint *fp, struct kw_pipeline **out);

/* Commits what is pending, then frees; NULL is a no-op. Returns the commit's result. */
int kw_pipeline_destroy(struct kw_pipeline *p);

/* Feeds one line of source_id, parsed with fmt.  Returns 0 when stored; KW_EPARSE when
 * malformed (counted; the reason, which never quotes the line, goes to why); a negative
 * store error otherwise, which the caller must treat as fatal for the batch. */
int kw_pipeline_line(struct kw_pipeline *p, struct kw_format *fmt, uint32_t source_id,
                     const char *line, size_t len, char *why, size_t whylen);

/* Counts a line that never reached the parser (overlong), as malformed. */
void kw_pipeline_skip(struct kw_pipeline *p, uint32_t source_id, size_t len);

/* Commits the batch (calls, key totals, source counters). */
int kw_pipeline_commit(struct kw_pipeline *p);

const struct kw_pipeline_stats *kw_pipeline_stats(const struct kw_pipeline *p);

#endif
