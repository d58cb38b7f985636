/* format.h — choosing and building the parser for a log: the format registry.
 *
 * A format name is one of:
 *   auto                      detect from the first lines (see kw_format_detect());
 *   combined, keyed           built-in nginx log_format strings;
 *   nginx                     the nginx log_format given in the configuration/CLI;
 *   json                      JSON lines with the configured field mapping;
 *   nginx-json, caddy, traefik, envoy, kong
 *                             JSON-lines presets (the configured mapping may override
 *                             single fields).
 * A kw_format is an instance {ops, ctx}: ops->parse is called once per line.
 * Thread: an instance belongs to one thread.
 */
#ifndef KW_FORMAT_H
#define KW_FORMAT_H

#include "../sidecar/config.h"
#include "record.h"

#include <stddef.h>

struct kw_format {
  const struct kw_format_ops *ops;
  void *ctx;
  char name[64]; /* what was chosen: "keyed", "caddy", "nginx" … */
};

/* Builds the parser called `name` (see above) with cfg's log_format / escape / json
 * mapping.  Returns 0, or KW_EFORMAT/KW_EINVAL with a message in err. */
int kw_format_create(const struct kw_ingest_cfg *cfg, const char *name, struct kw_format *out,
                     char *err, size_t errlen);

/* Picks a format for sample (the first bytes of a log): JSON lines are matched against
 * the presets, other text against the built-in nginx formats, the one that parses most of
 * the first lines winning.  Returns 0 with the name in out (outlen bytes), KW_EFORMAT
 * with a message in err that says what was seen and what to pass instead, or KW_ENOMEM. */
int kw_format_detect(const char *sample, size_t n, char *out, size_t outlen, char *err,
                     size_t errlen);

/* Frees the instance's parser; safe on a zeroed or destroyed instance. */
void kw_format_destroy(struct kw_format *f);

/* Names accepted by kw_format_create(), NULL-terminated, for --help and errors. */
const char *const *kw_format_names(void);

#endif
