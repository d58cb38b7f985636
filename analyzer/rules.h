/* rules.h — rule packs: YAML (libcyaml) → validated, compiled rules for the engine.
 *
 * A pack is a YAML mapping:
 *
 *   rules:                      # the rules, evaluated for every call in order
 *     - id: rate-spike          # unique in the loaded packs
 *       type: rate_spike        # see enum kw_rule_type
 *       severity: high          # info, low, medium, high, critical
 *       action: alert           # alert, or revoke (recorded as a decision for now)
 *       cooldown: 1h            # firings for one key within this update one alert
 *       keys: [mb_AbCd]         # selectors: display-prefix start, "fp:HEX32", "name:N"
 *       exclude_keys: [...]
 *       exclude: {addresses: [CIDR...], user_agents: [PREFIX...], endpoints: [PATTERN...]}
 *       ...type parameters (window, factor, floor, threshold, learn, …)
 *   scopes:                     # for scope_violation: named sets of endpoint patterns
 *     - {name: read, endpoints: ["GET /api/(**)", "HEAD /api/(**)"]}   (without the
 *       parentheses, which only keep this comment a comment)
 *   grants:                     # which keys hold which scopes
 *     - {keys: [mb_AbCd], scopes: [read]}
 *     - {groups: [Analysts], scopes: [read]}        # the key's group at its key store
 *     - {permissions: [rw], scopes: [read, write]}  # the key's permission there
 *     - {groups: [Administrators], scopes: ["*"]}   # "*": every scope of the packs
 *   canaries: [mb_Canary1]      # honeytoken keys: any use is a critical alert
 *   revoked: [mb_Old]           # keys known to be revoked (revoked_key_use)
 *
 * Endpoint patterns are "METHOD /path" matched against endpoint templates: METHOD may be
 * "*", a path segment "*" matches one segment, a trailing segment "**" any rest.
 * Durations: "30s", "10m", "24h", "7d". Sizes: "500MB", "2GiB", or bytes.
 * A grant applies to a key that any of its keys, groups or permissions selects (it needs
 * at least one of them); group and permission names are compared exactly, as the key
 * store spells them (Metabase "Administrators", SeaTable "r"/"rw").  Scope names are
 * unique across the loaded packs; the scopes that grants and rules name must exist in some
 * loaded pack, in any order; "*" is expanded at load to every scope (at most
 * KW_RULES_MAX_SCOPES in all).
 * Errors name FILE:LINE and the field ("rules.3.window").  Packs "builtin:NAME" are the
 * files of rules/ embedded at build time (builtin:default is loaded when the config
 * names none; builtin:metabase-scopes, builtin:seatable-scopes and builtin:rest-scopes
 * are scope catalogues: scopes and grants only, no rules).
 * Thread: a kw_ruleset is read-only after loading.
 */
#ifndef KW_RULES_H
#define KW_RULES_H

#include "../sidecar/call.h"
#include "../sidecar/timeutil.h" /* kw_duration_parse */

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kw_rule_type {
  KW_RULE_RATE_SPIKE,
  KW_RULE_NEW_SOURCE,
  KW_RULE_IP_FANOUT,
  KW_RULE_AUTH_FAILURES,
  KW_RULE_SCOPE_VIOLATION,
  KW_RULE_NEW_ENDPOINT,
  KW_RULE_ENUMERATION,
  KW_RULE_VOLUME,
  KW_RULE_OFF_HOURS,
  KW_RULE_REVOKED_KEY_USE,
  KW_RULE_MATCH,
  KW_RULE_CANARY,
  KW_RULE_TYPES
};

enum kw_rule_action { KW_ACTION_ALERT, KW_ACTION_REVOKE };

/* A method + path pattern over endpoint templates. */
struct kw_pattern {
  char *method; /* "*" or "GET" */
  char *path;   /* e.g. "/api/card/" + "*", "/api/" + "**" */
};

struct kw_cidr {
  uint8_t family; /* 4 or 6 */
  uint8_t a[16];
  unsigned bits;
};

enum kw_match_field { KW_F_METHOD, KW_F_PATH, KW_F_ENDPOINT, KW_F_STATUS, KW_F_USER_AGENT,
                      KW_F_ADDRESS, KW_F_HOST };
enum kw_match_op { KW_OP_EQUALS, KW_OP_PREFIX, KW_OP_CONTAINS, KW_OP_REGEX, KW_OP_CIDR };

struct kw_cond {
  enum kw_match_field field;
  enum kw_match_op op;
  char *value;
  regex_t re;        /* KW_OP_REGEX */
  struct kw_cidr cidr; /* KW_OP_CIDR */
};

/* A key selector: display-prefix start, fingerprint or configured name. */
struct kw_keysel {
  enum { KW_SEL_PREFIX, KW_SEL_FP, KW_SEL_NAME } kind;
  char *value;
  uint8_t fp[KW_FP_LEN];
};

struct kw_rule {
  char *id;
  enum kw_rule_type type;
  int severity;
  enum kw_rule_action action;
  int64_t cooldown_us;
  /* parameters (each type uses some; defaults filled at load) */
  int64_t window_us, learn_us;
  double factor;
  unsigned floor, threshold, max_addresses, distinct_ids, min_history;
  unsigned prefix4, prefix6;     /* new_source: network granularity */
  int64_t bytes;                 /* volume: absolute threshold */
  bool by_address;               /* auth_failures: count per client address */
  bool per_set;                  /* new_endpoint: the endpoints list counts as one */
  bool learned_hours;            /* off_hours: hours learned per key */
  uint32_t hours_mask;           /* off_hours: allowed hours (bit h = hh:00-hh:59) */
  uint8_t days_mask;             /* off_hours: allowed days (bit 0 = Monday) */
  int tz_offset_s;               /* off_hours: fixed offset east of UTC */
  int *statuses;                 /* auth_failures */
  size_t nstatuses;
  struct kw_pattern *endpoints;  /* the endpoints the rule looks at (empty: all) */
  size_t nendpoints;
  struct kw_cidr *cidrs;         /* new_source: allowed networks */
  size_t ncidrs;
  struct kw_cond *conds;         /* match: all must hold */
  size_t nconds;
  char **scopes;                 /* scope_violation: limit to these scopes (empty: all) */
  size_t nscopes;
  /* selectors and allowlists */
  struct kw_keysel *keys, *exclude_keys;
  size_t nkeys, nexclude_keys;
  struct kw_cidr *ex_addrs;
  size_t nex_addrs;
  char **ex_agents;
  size_t nex_agents;
  struct kw_pattern *ex_endpoints;
  size_t nex_endpoints;
  char *source; /* "FILE:LINE" of the rule, for explain */
};

#define KW_RULES_MAX_SCOPES 1024 /* scopes in all loaded packs (a load error beyond) */

struct kw_scope {
  char *name;
  struct kw_pattern *patterns;
  size_t n;
  char *source; /* "FILE:LINE" of the scope */
};

/* Keys selected by keys, groups or permissions hold scopes. */
struct kw_grant {
  struct kw_keysel *keys;
  size_t nkeys;
  char **groups;      /* key-store group names (Metabase) */
  size_t ngroups;
  char **permissions; /* key-store permissions (SeaTable "r", "rw") */
  size_t npermissions;
  char **scopes;      /* names of existing scopes; "*" is already expanded */
  size_t nscopes;
  bool all_scopes;    /* the pack said "*" */
  char *source;       /* "FILE:LINE" of the grant */
};

struct kw_ruleset {
  struct kw_rule *rules;
  size_t n;
  struct kw_scope *scopes;
  size_t nscopes;
  struct kw_grant *grants;
  size_t ngrants;
  struct kw_keysel *canaries, *revoked;
  size_t ncanaries, nrevoked;
  uint64_t signature; /* hash of what the packs say: baselines of another set are dropped */
};

/* Loads the packs (file paths or "builtin:NAME") into a new ruleset (free with
 * kw_ruleset_destroy()).  Returns 0, KW_ECONFIG with "FILE:LINE: FIELD: problem" in err,
 * KW_ENOMEM (also said in err), or -errno when a pack file cannot be read. */
int kw_ruleset_load(char *const *packs, size_t n, struct kw_ruleset **out, char *err,
                    size_t errlen);

void kw_ruleset_destroy(struct kw_ruleset *rs);

const char *kw_rule_type_name(enum kw_rule_type t);

/* Whether pattern p matches endpoint template `tmpl` called with `method`. */
bool kw_pattern_match(const struct kw_pattern *p, const char *method, size_t mlen,
                      const char *tmpl, size_t tlen);

bool kw_cidr_contains(const struct kw_cidr *c, const struct kw_addr *a);

/* Whether key (fp, prefix, name) is selected by sel[0..n). */
bool kw_keysel_match(const struct kw_keysel *sel, size_t n, const uint8_t *fp,
                     const char *prefix, const char *name);

/* Whether grant g applies to the key (fp, prefix, name) whose key store puts it in group
 * and gives it permission: one of g's key selectors matches it, or its group is one of
 * g->groups, or its permission one of g->permissions (exact comparison).  Any argument
 * but g may be NULL (unknown: never matches).  Thread: any. */
bool kw_grant_applies(const struct kw_grant *g, const uint8_t *fp, const char *prefix,
                      const char *name, const char *group, const char *permission);

/* Parses a key selector: a display-prefix start, fp:HEX32 or name:NAME (value copied).
 * Returns 0, KW_EPARSE, or KW_ENOMEM; free sel->value. */
int kw_keysel_parse(const char *s, struct kw_keysel *sel);

/* The embedded pack called name ("default"), or NULL. */
const char *kw_rules_builtin(const char *name);

#endif
