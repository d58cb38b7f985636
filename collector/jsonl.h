/* jsonl.h — JSON-lines access logs: one JSON object per line, read through a field mapping.
 *
 * A mapping names, for each kw_rec field, a dotted path into the line's object
 * ("request.headers.host"; an all-digit component indexes an array: "tries.0.ip").
 * A path may list alternatives separated by '|' ("msec|time_iso8601|time_local"): the
 * first one that holds a value wins.  null, "" and "-" count as no value, everywhere.
 * Presets cover the JSON access logs of nginx (escape=json), Caddy, Traefik, Envoy/Istio
 * and Kong (file-log/http-log); a configuration may start from a preset and change paths.
 *
 * Values: text fields take a string (or the first string of an array, as Caddy logs
 * headers); numbers may be JSON numbers or quoted decimal strings ("200", "0.012").
 * Anything else is a parse error naming the field ("status: expected a number").
 * Request headers come from three places, in this order (the first ones win the
 * KW_REC_MAX_HDRS slots): extra_hdrs (one path per header, e.g. nginx's
 * "http_x_api_key"), top-level members whose names start with hdr_prefix (Traefik's
 * "request_X-Api-Key"), and the object at path[KW_JF_HEADERS] (Caddy, Kong).  Header
 * names are lower-cased with '_' turned into '-'; values "REDACTED" (what Caddy, Kong and
 * Traefik write in place of a credential) are dropped, and so are headers that never
 * carry a credential (Accept*, Sec-*, Connection, …) so that the slots go to those that may.
 *
 * Ownership: a parser owns a deep copy of its mapping, the last parsed JSON tree and a
 * scratch buffer; the strings it puts in a kw_rec stay valid until the next
 * kw_jsonl_parse() or kw_jsonl_destroy() on the same parser.
 * Thread: a parser is used by one thread at a time; the preset functions and
 * kw_jsonl_guess_preset() may be called from any thread.
 */
#ifndef KW_JSONL_H
#define KW_JSONL_H

#include "record.h"

#include <stddef.h>

#define KW_JSONL_MAX_LINE 65536     /* longer lines are rejected with KW_EPARSE */
#define KW_JSONL_MAX_EXTRA_HDRS 8   /* extra_hdrs entries in a mapping */
#define KW_JSONL_MAX_PATH 256       /* bytes in one path string, alternatives included */
#define KW_JSONL_MAX_ALTS 4         /* '|' alternatives in one path */
#define KW_JSONL_MAX_COMPONENTS 8   /* '.' components in one alternative */

enum kw_jsonl_field {
  KW_JF_TIME,       /* time: see enum kw_jsonl_time */
  KW_JF_ADDR,       /* client address text */
  KW_JF_METHOD,
  KW_JF_URI,        /* path with query; preferred over PATH + QUERY when present */
  KW_JF_PATH,       /* path without query; composed with QUERY when URI has no value */
  KW_JF_QUERY,      /* query with or without a leading '?' */
  KW_JF_PROTO,
  KW_JF_HOST,
  KW_JF_USER_AGENT,
  KW_JF_REFERER,
  KW_JF_STATUS,     /* integer 0-999 */
  KW_JF_REQ_BYTES,  /* integer >= 0 */
  KW_JF_RESP_BYTES, /* integer >= 0 */
  KW_JF_LATENCY,    /* number >= 0 in latency_unit */
  KW_JF_KEY,        /* a field that is the raw key itself */
  KW_JF_KEY_ID,     /* a key-store id of the credential (Kong's authenticated_entity.id) */
  KW_JF_HEADERS,    /* an object of request headers: name → string or array of strings */
  KW_JF_COUNT
};

enum kw_jsonl_time {
  KW_JT_AUTO,     /* number: epoch s if < 1e11, ms if < 1e14, µs if < 1e17, else ns;
                     string: ISO 8601, else CLF, else a decimal epoch as for numbers */
  KW_JT_ISO8601,  /* string "2025-11-03T10:00:00+01:00", any fraction precision */
  KW_JT_EPOCH_S,  /* number or decimal string, fractions allowed */
  KW_JT_EPOCH_MS,
  KW_JT_EPOCH_US,
  KW_JT_EPOCH_NS,
  KW_JT_CLF       /* string "03/Nov/2025:10:00:00 +0100", brackets optional */
};

enum kw_jsonl_unit { KW_JU_S, KW_JU_MS, KW_JU_US, KW_JU_NS };

/* A header that a log writes as a field of its own: the value at path becomes request
 * header `header` ("http_authorization" → "authorization"). */
struct kw_jsonl_extra_hdr {
  const char *path;
  const char *header;
};

/* All-zero is a valid start: nothing mapped, time KW_JT_AUTO, latency in seconds. */
struct kw_jsonl_mapping {
  const char *path[KW_JF_COUNT]; /* NULL = unmapped; see the syntax above */
  enum kw_jsonl_time time_format;
  enum kw_jsonl_unit latency_unit;
  struct kw_jsonl_extra_hdr extra_hdrs[KW_JSONL_MAX_EXTRA_HDRS];
  size_t n_extra_hdrs;
  const char *hdr_prefix; /* NULL or "": none; "request_" for Traefik */
};

struct kw_jsonl;

/* Fills *m with the preset called name (see kw_jsonl_preset_names()).  The strings in *m
 * are static.  Returns 0, or KW_ENOTFOUND for an unknown name (then *m is untouched).
 * Thread: any. */
int kw_jsonl_preset(const char *name, struct kw_jsonl_mapping *m);

/* The preset names, NULL-terminated; static.  Thread: any. */
const char *const *kw_jsonl_preset_names(void);

/* Creates a parser from a mapping.  Copies everything m points to (m may be freed after
 * the call).  Returns 0 and *out, which the caller frees with kw_jsonl_destroy(); or
 * KW_EINVAL with a message naming the field in err (if err is not NULL) when the mapping
 * is unusable (neither uri nor path mapped, malformed path, bad enum value, …); or
 * KW_ENOMEM.  Thread: any. */
int kw_jsonl_create(const struct kw_jsonl_mapping *m, struct kw_jsonl **out, char *err,
                    size_t errlen);

/* Parses one line (a trailing '\r' or '\n' is allowed) into *rec, which it clears first.
 * Returns 0, or KW_EPARSE with a short reason in err (if not NULL) that names a field or
 * a byte position but never quotes the input (which may hold a key); on error *rec is
 * unspecified.  Borrows line during the call only; the strings placed in *rec belong
 * to j and stay valid until the next kw_jsonl_parse() or kw_jsonl_destroy() on j.
 * Thread: the one thread using j. */
int kw_jsonl_parse(struct kw_jsonl *j, const char *line, size_t len, struct kw_rec *rec,
                   char *err, size_t errlen);

/* Frees j and everything it owns; strings it handed out become invalid.  NULL is a
 * no-op.  Thread: the one thread using j. */
void kw_jsonl_destroy(struct kw_jsonl *j);

/* Returns the name of the preset that fits the sample line best: among the presets whose
 * essential fields (time, method, uri or path, status) all have a value in the line and
 * that parse it without error, the one with the most mapped fields present.  NULL when
 * none fits or the line is not a JSON object.  The result is static.  Thread: any. */
const char *kw_jsonl_guess_preset(const char *line, size_t len);

/* Ops table for the format registry; ctx is a struct kw_jsonl * (destroy frees it). */
extern const struct kw_format_ops kw_jsonl_ops;

/* Returns the configuration name of a field ("time", "addr", "user_agent", …), or NULL
 * for a value outside the enum.  Static.  Thread: any. */
const char *kw_jsonl_field_name(enum kw_jsonl_field f);

#endif
