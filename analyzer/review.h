/* review.h — the least-privilege review: per key, rights granted vs rights used.
 *
 * Input, per key: what the store knows of its traffic over the review period (calls per
 * endpoint template, from the daily rollups — never the raw calls), its traffic before
 * the period (last call), the client addresses it used, and what its key store says of
 * it (group, permission, creation time).  The rule packs give the scopes (named sets of
 * endpoint patterns) and the grants (keys, key-store groups or key-store permissions →
 * scopes; "*" = every scope).
 *
 * Output, per key: granted scopes, exercised scopes (calls, last use), unused scopes,
 * calls outside the grant (and how many succeeded), findings, and one recommendation:
 *
 *   finding         when                                                   severity
 *   unused          no call in the last unused_after (or never)            medium
 *   dormant_woke    calls in the period after a silence of dormant_after   high
 *   over_privileged granted scopes it never exercised (incl. an admin      medium
 *                   group or an rw token used only for reads)
 *   outside_grant   calls to catalogued endpoints no granted scope covers   high
 *                   (an endpoint no scope covers at all is not judged; the
 *                   recommendation's why counts them)
 *   rotation_due    older than max_age (store's creation time, else first  low
 *                   call)
 *   many_sources    more distinct client addresses than max_sources        medium
 *
 *   recommendation: "delete" (unused), else the smallest grant that covers what the key
 *   did — a key-store group or permission whose grant covers it with fewest scopes, else
 *   the smallest set of scopes (greedy cover) — or "keep" when the grant is already that.
 *
 * Scopes are handled as bit sets: at most 64 scopes take part in a review (further ones
 * are ignored, and kw_review_create() says so with KW_ETOOLONG).
 * Thread: pure computation; any thread.  A kw_review owns what it computed.
 */
#ifndef KW_REVIEW_H
#define KW_REVIEW_H

#include "../sidecar/call.h"
#include "rules.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum kw_finding_kind {
  KW_FIND_UNUSED,
  KW_FIND_DORMANT_WOKE,
  KW_FIND_OVER_PRIVILEGED,
  KW_FIND_OUTSIDE_GRANT,
  KW_FIND_ROTATION_DUE,
  KW_FIND_MANY_SOURCES,
  KW_FIND_COUNT
};

/* "unused", "dormant_woke", … */
const char *kw_finding_name(enum kw_finding_kind k);

struct kw_review_opts {
  int64_t since_us, until_us;  /* the period (default: the last 30 days) */
  int64_t unused_us;           /* unused: no call for this long (default 30d) */
  int64_t dormant_us;          /* dormant_woke: silence before the period's first call
                                * (default 30d) */
  int64_t max_age_us;          /* rotation_due (default 365d; 0: off) */
  unsigned max_sources;        /* many_sources (default 10; 0: off) */
  int severity[KW_FIND_COUNT]; /* per finding kind (defaults in the table above) */
};

/* Fills the defaults for a review ending at now. */
void kw_review_opts_default(struct kw_review_opts *o, int64_t now_us);

/* One endpoint template a key called in the period. */
struct kw_review_endpoint {
  const char *method, *template;
  int64_t calls, ok, denied; /* ok: 2xx/3xx; denied: 401/403 */
  int64_t last_us;
};

/* One key, as the store knows it.  Strings are copied by kw_review_add(). */
struct kw_review_key {
  bool has_fp;
  uint8_t fp[KW_FP_LEN];
  const char *prefix, *name;
  const char *store, *store_ref;    /* the key store listing it (NULL: none) */
  const char *group, *permission;   /* as the store says (NULL: unknown) */
  int64_t created_us;               /* at the store (0: unknown) */
  bool own;                         /* keywatch's own admin credential: reviewed for age
                                     * only, always kept */
  int64_t first_us, last_us;        /* all-time traffic (0: never seen) */
  int64_t last_before_us;           /* last call before the period (0: none) */
  int64_t first_in_us;              /* first call in the period (0: none) */
  int64_t clients;                  /* distinct client addresses in the period */
  const struct kw_review_endpoint *endpoints;
  size_t nendpoints;
};

struct kw_scope_use {
  const char *scope;
  int64_t calls, last_us;
};

struct kw_finding {
  enum kw_finding_kind kind;
  int severity;
  char text[200];
};

struct kw_review_row {
  /* the key */
  bool has_fp;
  uint8_t fp[KW_FP_LEN];
  char *prefix, *name, *store, *store_ref, *group, *permission;
  int64_t created_us, first_us, last_us, calls, clients;
  /* rights */
  bool grant_known;            /* some grant applies to it */
  char **granted;              /* scope names ("*" expanded) */
  size_t ngranted;
  struct kw_scope_use *used;   /* granted scopes exercised, most calls first */
  size_t nused;
  char **unused;               /* granted, not exercised */
  size_t nunused;
  int64_t outside_calls, outside_ok; /* calls no granted scope covers; of them succeeded */
  char *outside_example;       /* "DELETE /api/card/{id}" (the most called) or NULL */
  struct kw_finding *findings;
  size_t nfindings;
  char *recommendation;        /* "delete", "keep", "group Analysts", "permission r",
                                * "scopes metabase.read, …" */
  char *why;                   /* one line explaining the recommendation */
};

struct kw_review;

/* A review over rs's scopes and grants (borrowed for the review's life).  Returns 0,
 * KW_ENOMEM, or KW_ETOOLONG when the packs define more than 64 scopes. */
int kw_review_create(const struct kw_ruleset *rs, const struct kw_review_opts *o,
                     struct kw_review **out);
void kw_review_destroy(struct kw_review *r);

/* Reviews one key (copies what it needs).  Returns 0 or KW_ENOMEM (the review is then
 * unchanged). */
int kw_review_add(struct kw_review *r, const struct kw_review_key *k);

/* The rows, in the order added; valid until destroy. */
const struct kw_review_row *kw_review_rows(const struct kw_review *r, size_t *n);
const struct kw_review_opts *kw_review_options(const struct kw_review *r);

/* Findings per kind, over all rows. */
void kw_review_counts(const struct kw_review *r, size_t counts[KW_FIND_COUNT]);

#endif
