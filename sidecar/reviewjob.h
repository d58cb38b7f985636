/* reviewjob.h — one permission review from the store: usage → review → changes since the
 * previous review → its JSON document, stored.  Used by `keywatch review` and by the
 * daemon's scheduled reviews (on a worker thread, with a connection of its own).
 *
 * Changes are found by comparing with the latest review stored before this one: keys
 * (by fingerprint, else display prefix) not in it, findings (key × kind) not in it, and
 * findings of it that are gone.  A review restricted to some keys (key != NULL) is
 * neither compared nor stored.
 * Thread: the caller's; the store must belong to it.
 */
#ifndef KW_REVIEWJOB_H
#define KW_REVIEWJOB_H

#include "../analyzer/review.h"
#include "../analyzer/review_report.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct kw_review_job {
  struct kw_review *review;
  struct kw_review_diff diff;
  bool has_diff;
  int64_t generated_us;
  int64_t id;         /* stored review id (0: not stored) */
};

/* Runs a review of the keys (a display-prefix start, or NULL for all) over rs's scopes and
 * grants with options o; compares with the previous stored review and, with save,
 * stores this one (st must then be writable).  Returns 0 and a new job (free with
 * kw_review_job_free()), or an error with err set. */
int kw_review_job_run(struct kw_store *st, const struct kw_ruleset *rs,
                      const struct kw_review_opts *o, const char *key, bool save,
                      struct kw_review_job **out, char *err, size_t errlen);

void kw_review_job_free(struct kw_review_job *j);

#endif
