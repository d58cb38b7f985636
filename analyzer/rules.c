/* rules.c — loading, validating and compiling rule packs (see rules.h).
 *
 * Two stages: libcyaml loads a pack into `raw_*` structs (typing, unknown keys, lines);
 * compile() turns each into a kw_rule, filling defaults per type and checking what
 * libcyaml cannot (durations, patterns, CIDRs, regexes, names), with FILE:LINE: FIELD
 * errors.  Scope names are unique across packs; the scopes that grants and rules name are
 * checked once every pack is loaded (a grant may name a later pack's scope), then "*" in
 * grants is expanded.  Everything a kw_ruleset holds is owned by it.
 */
#include "rules.h"
#include "../sidecar/alerts.h"
#include "../sidecar/err.h"
#include "../sidecar/fingerprint.h"
#include "../sidecar/yamlfile.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- raw schema ------------------------------------------------------------------- */

struct raw_exclude {
  char **addresses;
  unsigned addresses_count;
  char **user_agents;
  unsigned user_agents_count;
  char **endpoints;
  unsigned endpoints_count;
};

struct raw_cond {
  char *field, *op, *value;
};

struct raw_rule {
  char *id, *type, *severity, *action, *description, *cooldown, *window, *learn, *by, *per;
  char *hours, *days, *timezone, *bytes;
  float factor;
  unsigned floor, threshold, max_addresses, distinct_ids, min_history, prefix4, prefix6;
  char **keys;
  unsigned keys_count;
  char **exclude_keys;
  unsigned exclude_keys_count;
  struct raw_exclude *exclude;
  struct raw_cond *conditions;
  unsigned conditions_count;
  char **endpoints;
  unsigned endpoints_count;
  char **cidrs;
  unsigned cidrs_count;
  char **scopes;
  unsigned scopes_count;
  int *statuses;
  unsigned statuses_count;
};

struct raw_scope {
  char *name;
  char **endpoints;
  unsigned endpoints_count;
};

struct raw_grant {
  char **keys;
  unsigned keys_count;
  char **groups;
  unsigned groups_count;
  char **permissions;
  unsigned permissions_count;
  char **scopes;
  unsigned scopes_count;
};

struct raw_pack {
  struct raw_rule *rules;
  unsigned rules_count;
  struct raw_scope *scopes;
  unsigned scopes_count;
  struct raw_grant *grants;
  unsigned grants_count;
  char **canaries;
  unsigned canaries_count;
  char **revoked;
  unsigned revoked_count;
};

static const cyaml_schema_value_t str_ptr = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};
static const cyaml_schema_value_t int_entry = {CYAML_VALUE_INT(CYAML_FLAG_DEFAULT, int)};

#define STR(key, type, m)                                                                  \
  CYAML_FIELD_STRING_PTR(key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, type, m, 0,         \
                         CYAML_UNLIMITED)
#define STRS(key, type, m)                                                                 \
  CYAML_FIELD_SEQUENCE(key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, type, m, &str_ptr, 0, \
                       CYAML_UNLIMITED)
#define UINT(key, type, m) CYAML_FIELD_UINT(key, CYAML_FLAG_OPTIONAL, type, m)

static const cyaml_schema_field_t exclude_fields[] = {
    STRS("addresses", struct raw_exclude, addresses),
    STRS("user_agents", struct raw_exclude, user_agents),
    STRS("endpoints", struct raw_exclude, endpoints),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t cond_fields[] = {
    STR("field", struct raw_cond, field),
    STR("op", struct raw_cond, op),
    STR("value", struct raw_cond, value),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t cond_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_cond, cond_fields),
};

static const cyaml_schema_field_t rule_fields[] = {
    STR("id", struct raw_rule, id),
    STR("type", struct raw_rule, type),
    STR("severity", struct raw_rule, severity),
    STR("action", struct raw_rule, action),
    STR("description", struct raw_rule, description),
    STR("cooldown", struct raw_rule, cooldown),
    STR("window", struct raw_rule, window),
    STR("learn", struct raw_rule, learn),
    STR("by", struct raw_rule, by),
    STR("per", struct raw_rule, per),
    STR("hours", struct raw_rule, hours),
    STR("days", struct raw_rule, days),
    STR("timezone", struct raw_rule, timezone),
    STR("bytes", struct raw_rule, bytes),
    CYAML_FIELD_FLOAT("factor", CYAML_FLAG_OPTIONAL, struct raw_rule, factor),
    UINT("floor", struct raw_rule, floor),
    UINT("threshold", struct raw_rule, threshold),
    UINT("max_addresses", struct raw_rule, max_addresses),
    UINT("distinct_ids", struct raw_rule, distinct_ids),
    UINT("min_history", struct raw_rule, min_history),
    UINT("prefix4", struct raw_rule, prefix4),
    UINT("prefix6", struct raw_rule, prefix6),
    STRS("keys", struct raw_rule, keys),
    STRS("exclude_keys", struct raw_rule, exclude_keys),
    CYAML_FIELD_MAPPING_PTR("exclude", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            struct raw_rule, exclude, exclude_fields),
    CYAML_FIELD_SEQUENCE("conditions", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct raw_rule, conditions, &cond_entry, 0, CYAML_UNLIMITED),
    STRS("endpoints", struct raw_rule, endpoints),
    STRS("cidrs", struct raw_rule, cidrs),
    STRS("scopes", struct raw_rule, scopes),
    CYAML_FIELD_SEQUENCE("statuses", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct raw_rule, statuses, &int_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t rule_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_rule, rule_fields),
};

static const cyaml_schema_field_t scope_fields[] = {
    STR("name", struct raw_scope, name),
    STRS("endpoints", struct raw_scope, endpoints),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t scope_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_scope, scope_fields),
};

static const cyaml_schema_field_t grant_fields[] = {
    STRS("keys", struct raw_grant, keys),
    STRS("groups", struct raw_grant, groups),
    STRS("permissions", struct raw_grant, permissions),
    STRS("scopes", struct raw_grant, scopes),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t grant_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_grant, grant_fields),
};

static const cyaml_schema_field_t pack_fields[] = {
    CYAML_FIELD_SEQUENCE("rules", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw_pack,
                         rules, &rule_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("scopes", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw_pack,
                         scopes, &scope_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("grants", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw_pack,
                         grants, &grant_entry, 0, CYAML_UNLIMITED),
    STRS("canaries", struct raw_pack, canaries),
    STRS("revoked", struct raw_pack, revoked),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t pack_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw_pack, pack_fields),
};

/* ---- names ------------------------------------------------------------------------- */

static const char *const type_names[KW_RULE_TYPES] = {
    [KW_RULE_RATE_SPIKE] = "rate_spike",         [KW_RULE_NEW_SOURCE] = "new_source",
    [KW_RULE_IP_FANOUT] = "ip_fanout",           [KW_RULE_AUTH_FAILURES] = "auth_failures",
    [KW_RULE_SCOPE_VIOLATION] = "scope_violation", [KW_RULE_NEW_ENDPOINT] = "new_endpoint",
    [KW_RULE_ENUMERATION] = "enumeration",       [KW_RULE_VOLUME] = "volume",
    [KW_RULE_OFF_HOURS] = "off_hours",           [KW_RULE_REVOKED_KEY_USE] = "revoked_key_use",
    [KW_RULE_MATCH] = "match",                   [KW_RULE_CANARY] = "canary",
};

const char *kw_rule_type_name(enum kw_rule_type t) {
  return t < KW_RULE_TYPES ? type_names[t] : "?";
}

/* ---- parsing helpers --------------------------------------------------------------- */

static int size_parse(const char *s, int64_t *out) {
  static const struct {
    const char *u;
    double m;
  } units[] = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
               {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
  char *end;
  double v = strtod(s, &end);
  if (end == s || !(v >= 0)) /* also refuses NaN */
    return KW_EPARSE;
  while (*end == ' ')
    end++;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcmp(end, units[i].u) == 0) {
      if (v * units[i].m > 1e18) /* an exabyte: nothing a window can hold */
        return KW_EPARSE;
      *out = (int64_t)(v * units[i].m);
      return 0;
    }
  }
  return KW_EPARSE;
}

static int cidr_parse(const char *s, struct kw_cidr *c) {
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  struct kw_addr a;
  char *end;

  if (n >= sizeof(buf) || kw_addr_parse(s, n, &a) != 0)
    return KW_EPARSE;
  memcpy(buf, s, n);
  buf[n] = '\0';
  c->family = a.family;
  memcpy(c->a, a.a, 16);
  c->bits = a.family == 4 ? 32 : 128;
  if (slash != NULL) {
    long b = strtol(slash + 1, &end, 10);
    if (*end != '\0' || slash[1] == '\0' || b < 0 || b > (long)c->bits)
      return KW_EPARSE;
    c->bits = (unsigned)b;
  }
  return 0;
}

bool kw_cidr_contains(const struct kw_cidr *c, const struct kw_addr *a) {
  unsigned full, rest;
  if (a->family != c->family)
    return false;
  full = c->bits / 8;
  rest = c->bits % 8;
  if (memcmp(a->a, c->a, full) != 0)
    return false;
  return rest == 0 || ((a->a[full] ^ c->a[full]) & (0xff << (8 - rest))) == 0;
}

static int pattern_parse(const char *s, struct kw_pattern *p) {
  const char *sp = strchr(s, ' ');
  if (sp == NULL || sp == s || sp[1] != '/')
    return KW_EPARSE;
  p->method = strndup(s, (size_t)(sp - s));
  p->path = strdup(sp + 1);
  if (p->method == NULL || p->path == NULL) { /* the caller does not count this entry */
    free(p->method);
    free(p->path);
    p->method = p->path = NULL;
    return KW_ENOMEM;
  }
  return 0;
}

bool kw_pattern_match(const struct kw_pattern *p, const char *method, size_t mlen,
                      const char *t, size_t tlen) {
  const char *pp = p->path;
  size_t i = 0;

  if (!(p->method[0] == '*' && p->method[1] == '\0') &&
      (strlen(p->method) != mlen || strncasecmp(p->method, method, mlen) != 0))
    return false;
  /* Segment by segment: "*" one segment, trailing "**" the rest (also nothing). */
  while (*pp) {
    if (pp[0] == '/' && pp[1] == '*' && pp[2] == '*' && pp[3] == '\0')
      return true;
    if (i >= tlen || t[i] != '/' || *pp != '/')
      return false;
    pp++;
    i++;
    size_t pl = strcspn(pp, "/"), tl = 0;
    while (i + tl < tlen && t[i + tl] != '/')
      tl++;
    if (!(pl == 1 && pp[0] == '*') && (pl != tl || memcmp(pp, t + i, pl) != 0))
      return false;
    pp += pl;
    i += tl;
  }
  return i == tlen;
}

int kw_keysel_parse(const char *s, struct kw_keysel *k) {
  memset(k, 0, sizeof(*k));
  if (strncmp(s, "fp:", 3) == 0) {
    k->kind = KW_SEL_FP;
    if (kw_fingerprint_from_hex(s + 3, k->fp) != 0)
      return KW_EPARSE; /* nothing allocated yet */
    k->value = strdup(s + 3);
  } else if (strncmp(s, "name:", 5) == 0) {
    k->kind = KW_SEL_NAME;
    k->value = strdup(s + 5);
  } else {
    k->kind = KW_SEL_PREFIX;
    k->value = strdup(s);
  }
  if (k->value == NULL)
    return KW_ENOMEM;
  if (k->value[0] == '\0') {
    free(k->value);
    k->value = NULL;
    return KW_EPARSE;
  }
  return 0;
}

bool kw_keysel_match(const struct kw_keysel *sel, size_t n, const uint8_t *fp,
                     const char *prefix, const char *name) {
  for (size_t i = 0; i < n; i++) {
    const struct kw_keysel *k = &sel[i];
    if (k->kind == KW_SEL_FP && fp != NULL && memcmp(k->fp, fp, KW_FP_LEN) == 0)
      return true;
    /* A selector may be longer than the stored display prefix (a full key id, or more
     * characters than shown): either is a start of the other. */
    if (k->kind == KW_SEL_PREFIX && prefix != NULL && prefix[0] != '\0') {
      size_t a = strlen(k->value), b = strlen(prefix);
      if (strncmp(k->value, prefix, a < b ? a : b) == 0)
        return true;
    }
    if (k->kind == KW_SEL_NAME && name != NULL && strcmp(k->value, name) == 0)
      return true;
  }
  return false;
}

static bool name_in(char *const *names, size_t n, const char *s) {
  if (s == NULL || s[0] == '\0')
    return false;
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], s) == 0)
      return true;
  return false;
}

bool kw_grant_applies(const struct kw_grant *g, const uint8_t *fp, const char *prefix,
                      const char *name, const char *group, const char *permission) {
  return kw_keysel_match(g->keys, g->nkeys, fp, prefix, name) ||
         name_in(g->groups, g->ngroups, group) ||
         name_in(g->permissions, g->npermissions, permission);
}

/* ---- compile ----------------------------------------------------------------------- */

struct ctx {
  const char *name; /* pack name (file or builtin:…) */
  const char *data; /* builtin data, NULL for files */
  size_t len;
  char *err;
  size_t errlen;
};

static int fail(struct ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, const char *field, const char *fmt, ...) {
  char msg[512], at[256];
  va_list ap;
  unsigned line = kw_yaml_locate(c->name, c->data, c->len, field);

  /* A missing field has no line of its own: point at the entry that lacks it. */
  snprintf(at, sizeof(at), "%s", field);
  for (char *dot; line == 0 && (dot = strrchr(at, '.')) != NULL;) {
    *dot = '\0';
    line = kw_yaml_locate(c->name, c->data, c->len, at);
  }
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (line > 0)
    snprintf(c->err, c->errlen, "%s:%u: %s: %s", c->name, line, field, msg);
  else
    snprintf(c->err, c->errlen, "%s: %s: %s", c->name, field, msg);
  return KW_ECONFIG;
}

static int strlist(char **in, unsigned n, char ***out, size_t *nout) {
  *out = calloc(n ? n : 1, sizeof(char *));
  if (*out == NULL)
    return KW_ENOMEM;
  for (*nout = 0; *nout < n; (*nout)++)
    if (((*out)[*nout] = strdup(in[*nout])) == NULL)
      return KW_ENOMEM;
  return 0;
}

static int keysels(struct ctx *c, const char *field, char **in, unsigned n,
                   struct kw_keysel **out, size_t *nout) {
  char f[128];
  *nout = 0; /* callers free (*out)[0..*nout) on any error, even when calloc fails */
  *out = calloc(n ? n : 1, sizeof(**out));
  if (*out == NULL)
    return KW_ENOMEM;
  for (*nout = 0; *nout < n; (*nout)++) {
    int r = kw_keysel_parse(in[*nout], &(*out)[*nout]);
    if (r == KW_ENOMEM)
      return r;
    if (r != 0) {
      snprintf(f, sizeof(f), "%s.%zu", field, *nout);
      return fail(c, f, "'%s' is not a key selector (display prefix, fp:HEX32, name:NAME)",
                  in[*nout]);
    }
  }
  return 0;
}

static int patterns(struct ctx *c, const char *field, char **in, unsigned n,
                    struct kw_pattern **out, size_t *nout) {
  char f[128];
  *out = calloc(n ? n : 1, sizeof(**out));
  if (*out == NULL)
    return KW_ENOMEM;
  for (*nout = 0; *nout < n; (*nout)++) {
    int r = pattern_parse(in[*nout], &(*out)[*nout]);
    if (r == KW_EPARSE) {
      snprintf(f, sizeof(f), "%s.%zu", field, *nout);
      return fail(c, f, "'%s' is not an endpoint pattern (\"METHOD /path\", e.g. \"GET "
                        "/api/card/*\", \"* /api/**\")", in[*nout]);
    }
    if (r != 0)
      return r;
  }
  return 0;
}

static int cidrs(struct ctx *c, const char *field, char **in, unsigned n,
                 struct kw_cidr **out, size_t *nout) {
  char f[128];
  *out = calloc(n ? n : 1, sizeof(**out));
  if (*out == NULL)
    return KW_ENOMEM;
  for (*nout = 0; *nout < n; (*nout)++) {
    if (cidr_parse(in[*nout], &(*out)[*nout]) != 0) {
      snprintf(f, sizeof(f), "%s.%zu", field, *nout);
      return fail(c, f, "'%s' is not an address or CIDR", in[*nout]);
    }
  }
  return 0;
}

static int hours_parse(const char *s, uint32_t *mask) {
  unsigned h1, m1, h2, m2;
  *mask = 0;
  if (sscanf(s, "%u:%u-%u:%u", &h1, &m1, &h2, &m2) != 4 || h1 > 24 || h2 > 24 || m1 > 59 ||
      m2 > 59)
    return KW_EPARSE;
  /* Whole hours: hh:mm rounds to the hours it touches. */
  h2 = m2 > 0 ? h2 + 1 : h2;
  for (unsigned h = h1; h != h2 % 24 || (h == h1 && h1 == h2 % 24 && *mask == 0);
       h = (h + 1) % 24) {
    *mask |= 1u << h;
    if (*mask == 0xffffff)
      break;
  }
  return 0;
}

static int days_parse(const char *s, uint8_t *mask) {
  static const char *const names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  int a = -1, b = -1;
  *mask = 0;
  for (int i = 0; i < 7; i++) {
    if (strncasecmp(s, names[i], 3) == 0)
      a = i;
    if (strlen(s) == 7 && s[3] == '-' && strncasecmp(s + 4, names[i], 3) == 0)
      b = i;
  }
  if (a < 0 || (strlen(s) != 3 && b < 0))
    return KW_EPARSE;
  if (b < 0)
    b = a;
  for (int d = a;; d = (d + 1) % 7) {
    *mask |= (uint8_t)(1u << d);
    if (d == b)
      break;
  }
  return 0;
}

static int tz_parse(const char *s, int *off) {
  int sign, hh, mm;
  if (strcmp(s, "UTC") == 0 || strcmp(s, "Z") == 0) {
    *off = 0;
    return 0;
  }
  if ((s[0] != '+' && s[0] != '-') || sscanf(s + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 14 ||
      mm > 59)
    return KW_EPARSE;
  sign = s[0] == '-' ? -1 : 1;
  *off = sign * (hh * 3600 + mm * 60);
  return 0;
}

static int cond_compile(struct ctx *c, const char *field, const struct raw_cond *rc,
                        struct kw_cond *k) {
  static const char *const fields[] = {"method", "path", "endpoint", "status", "user_agent",
                                       "address", "host"};
  static const char *const ops[] = {"equals", "prefix", "contains", "regex", "cidr"};
  char f[128];
  int fi = -1, oi = -1;

  for (int i = 0; i < 7; i++)
    if (rc->field && strcmp(rc->field, fields[i]) == 0)
      fi = i;
  for (int i = 0; i < 5; i++)
    if (rc->op && strcmp(rc->op, ops[i]) == 0)
      oi = i;
  snprintf(f, sizeof(f), "%s.field", field);
  if (fi < 0)
    return fail(c, f, "'%s' is not one of: method, path, endpoint, status, user_agent, "
                      "address, host", rc->field ? rc->field : "");
  snprintf(f, sizeof(f), "%s.op", field);
  if (oi < 0)
    return fail(c, f, "'%s' is not one of: equals, prefix, contains, regex, cidr",
                rc->op ? rc->op : "");
  snprintf(f, sizeof(f), "%s.value", field);
  if (rc->value == NULL)
    return fail(c, f, "missing");
  k->field = (enum kw_match_field)fi;
  k->op = (enum kw_match_op)oi;
  k->value = strdup(rc->value);
  if (k->value == NULL)
    return KW_ENOMEM;
  if (k->op == KW_OP_REGEX) {
    char msg[128];
    int e = regcomp(&k->re, rc->value, REG_EXTENDED | REG_NOSUB);
    if (e != 0) {
      regerror(e, &k->re, msg, sizeof(msg));
      k->op = KW_OP_EQUALS; /* nothing compiled to free */
      return fail(c, f, "bad regex: %s", msg);
    }
  } else if (k->op == KW_OP_CIDR) {
    if (k->field != KW_F_ADDRESS || cidr_parse(rc->value, &k->cidr) != 0)
      return fail(c, f, "cidr needs field address and an address or CIDR value");
  } else if (k->field == KW_F_STATUS) { /* compared as text: "401", or "4" with prefix */
    for (const char *p = rc->value; *p; p++)
      if (!isdigit((unsigned char)*p))
        return fail(c, f, "status values are numbers ('401', or '4' with prefix)");
  }
  return 0;
}

/* Per-type defaults; values of 0 in the YAML mean "default". */
static void defaults(struct kw_rule *r) {
  static const struct {
    int64_t window, learn, cooldown;
    double factor;
    unsigned floor, threshold;
  } d[KW_RULE_TYPES] = {
      [KW_RULE_RATE_SPIKE] = {600e6, 86400e6, 3600e6, 4.0, 60, 0},
      [KW_RULE_NEW_SOURCE] = {0, 86400e6, 3600e6, 0, 0, 0},
      [KW_RULE_IP_FANOUT] = {3600e6, 0, 3600e6, 0, 0, 0},
      [KW_RULE_AUTH_FAILURES] = {300e6, 0, 3600e6, 0, 0, 10},
      [KW_RULE_SCOPE_VIOLATION] = {0, 0, 3600e6, 0, 0, 0},
      [KW_RULE_NEW_ENDPOINT] = {0, 86400e6, 3600e6, 0, 0, 0},
      [KW_RULE_ENUMERATION] = {600e6, 0, 3600e6, 0, 0, 0},
      [KW_RULE_VOLUME] = {3600e6, 86400e6, 3600e6, 10.0, 0, 0},
      [KW_RULE_OFF_HOURS] = {3600e6, 3 * 86400e6, 3600e6, 10.0, 0, 3},
      [KW_RULE_REVOKED_KEY_USE] = {0, 0, 3600e6, 0, 0, 0},
      [KW_RULE_MATCH] = {0, 0, 3600e6, 0, 0, 0},
      [KW_RULE_CANARY] = {0, 0, 3600e6, 0, 0, 0},
  };
  if (r->window_us == 0)
    r->window_us = d[r->type].window;
  if (r->learn_us == 0)
    r->learn_us = d[r->type].learn;
  if (r->cooldown_us == 0)
    r->cooldown_us = d[r->type].cooldown;
  if (r->factor == 0)
    r->factor = d[r->type].factor;
  if (r->floor == 0)
    r->floor = d[r->type].floor;
  if (r->threshold == 0)
    r->threshold = d[r->type].threshold;
  if (r->max_addresses == 0)
    r->max_addresses = 10;
  if (r->distinct_ids == 0)
    r->distinct_ids = 200;
  if (r->min_history == 0)
    r->min_history = r->type == KW_RULE_OFF_HOURS ? 100 : 30;
  if (r->prefix4 == 0)
    r->prefix4 = 24;
  if (r->prefix6 == 0)
    r->prefix6 = 64;
  if (r->type == KW_RULE_CANARY)
    r->severity = KW_SEV_CRITICAL;
}

static int compile_rule(struct ctx *c, unsigned idx, const struct raw_rule *rr,
                        struct kw_rule *r) {
  char f[96], base[32];
  int sev, t = -1, e;

  snprintf(base, sizeof(base), "rules.%u", idx);
#define FIELD(name) (snprintf(f, sizeof(f), "%s.%s", base, name), f)
  if (rr->id == NULL || rr->id[0] == '\0')
    return fail(c, base, "a rule needs an 'id'");
  for (int i = 0; i < KW_RULE_TYPES; i++)
    if (rr->type && strcmp(rr->type, type_names[i]) == 0)
      t = i;
  if (t < 0)
    return fail(c, FIELD("type"),
                "'%s' is not a rule type (rate_spike, new_source, ip_fanout, auth_failures, "
                "scope_violation, new_endpoint, enumeration, volume, off_hours, "
                "revoked_key_use, match, canary)", rr->type ? rr->type : "");
  r->type = (enum kw_rule_type)t;
  sev = kw_severity_parse(rr->severity ? rr->severity : "medium");
  if (sev < 0)
    return fail(c, FIELD("severity"), "'%s' is not info, low, medium, high or critical",
                rr->severity);
  r->severity = sev;
  if (rr->action == NULL || strcmp(rr->action, "alert") == 0)
    r->action = KW_ACTION_ALERT;
  else if (strcmp(rr->action, "revoke") == 0)
    r->action = KW_ACTION_REVOKE;
  else
    return fail(c, FIELD("action"), "'%s' is not alert or revoke", rr->action);
  if ((r->id = strdup(rr->id)) == NULL)
    return KW_ENOMEM;
  if ((rr->cooldown && kw_duration_parse(rr->cooldown, &r->cooldown_us) != 0))
    return fail(c, FIELD("cooldown"), "'%s' is not a duration (30s, 10m, 24h, 7d)",
                rr->cooldown);
  if ((rr->window && kw_duration_parse(rr->window, &r->window_us) != 0) ||
      (rr->window && r->window_us < 60000000 && r->type != KW_RULE_AUTH_FAILURES))
    return fail(c, FIELD("window"), "'%s' is not a duration of at least 1m", rr->window);
  if (rr->learn && kw_duration_parse(rr->learn, &r->learn_us) != 0)
    return fail(c, FIELD("learn"), "'%s' is not a duration (30s, 10m, 24h, 7d)", rr->learn);
  if (rr->bytes && size_parse(rr->bytes, &r->bytes) != 0)
    return fail(c, FIELD("bytes"), "'%s' is not a size (500MB, 2GiB, bytes)", rr->bytes);
  if (!(rr->factor >= 0 && rr->factor <= 1e6)) /* also refuses NaN and infinities */
    return fail(c, FIELD("factor"), "must be a number from 0 to 1000000");
  r->factor = rr->factor;
  r->floor = rr->floor;
  r->threshold = rr->threshold;
  r->max_addresses = rr->max_addresses;
  r->distinct_ids = rr->distinct_ids;
  r->min_history = rr->min_history;
  r->prefix4 = rr->prefix4;
  r->prefix6 = rr->prefix6;
  if (r->prefix4 > 32 || r->prefix6 > 128)
    return fail(c, FIELD(r->prefix4 > 32 ? "prefix4" : "prefix6"), "out of range");
  if (r->max_addresses > 31)
    return fail(c, FIELD("max_addresses"), "%u is out of range (1 to 31)", r->max_addresses);
  if (rr->by != NULL && strcmp(rr->by, "key") != 0 && strcmp(rr->by, "address") != 0)
    return fail(c, FIELD("by"), "'%s' is not key or address", rr->by);
  r->by_address = rr->by != NULL && strcmp(rr->by, "address") == 0;
  if (rr->per != NULL && strcmp(rr->per, "endpoint") != 0 && strcmp(rr->per, "set") != 0)
    return fail(c, FIELD("per"), "'%s' is not endpoint or set", rr->per);
  r->per_set = rr->per != NULL && strcmp(rr->per, "set") == 0;
  r->learned_hours = rr->hours == NULL || strcmp(rr->hours, "learned") == 0;
  r->hours_mask = 0xffffff;
  r->days_mask = 0x7f;
  if (!r->learned_hours && hours_parse(rr->hours, &r->hours_mask) != 0)
    return fail(c, FIELD("hours"), "'%s' is not HH:MM-HH:MM or learned", rr->hours);
  if (rr->days && days_parse(rr->days, &r->days_mask) != 0)
    return fail(c, FIELD("days"), "'%s' is not a day or range (mon-fri)", rr->days);
  if (rr->timezone && tz_parse(rr->timezone, &r->tz_offset_s) != 0)
    return fail(c, FIELD("timezone"), "'%s' is not UTC or an offset (+01:00)", rr->timezone);
  if ((e = keysels(c, FIELD("keys"), rr->keys, rr->keys_count, &r->keys, &r->nkeys)) != 0 ||
      (e = keysels(c, FIELD("exclude_keys"), rr->exclude_keys, rr->exclude_keys_count,
                   &r->exclude_keys, &r->nexclude_keys)) != 0 ||
      (e = patterns(c, FIELD("endpoints"), rr->endpoints, rr->endpoints_count, &r->endpoints,
                    &r->nendpoints)) != 0 ||
      (e = cidrs(c, FIELD("cidrs"), rr->cidrs, rr->cidrs_count, &r->cidrs, &r->ncidrs)) != 0 ||
      (e = strlist(rr->scopes, rr->scopes_count, &r->scopes, &r->nscopes)) != 0)
    return e;
  if (rr->exclude != NULL) {
    const struct raw_exclude *x = rr->exclude;
    if ((e = cidrs(c, FIELD("exclude.addresses"), x->addresses, x->addresses_count,
                   &r->ex_addrs, &r->nex_addrs)) != 0 ||
        (e = strlist(x->user_agents, x->user_agents_count, &r->ex_agents, &r->nex_agents)) ||
        (e = patterns(c, FIELD("exclude.endpoints"), x->endpoints, x->endpoints_count,
                      &r->ex_endpoints, &r->nex_endpoints)) != 0)
      return e;
  }
  r->statuses = calloc(rr->statuses_count ? rr->statuses_count : 2, sizeof(int));
  if (r->statuses == NULL)
    return KW_ENOMEM;
  if (rr->statuses_count == 0) {
    r->statuses[0] = 401;
    r->statuses[1] = 403;
    r->nstatuses = 2;
  } else {
    memcpy(r->statuses, rr->statuses, rr->statuses_count * sizeof(int));
    r->nstatuses = rr->statuses_count;
  }
  r->conds = calloc(rr->conditions_count ? rr->conditions_count : 1, sizeof(*r->conds));
  if (r->conds == NULL)
    return KW_ENOMEM;
  for (unsigned i = 0; i < rr->conditions_count; i++) {
    char cf[96];
    snprintf(cf, sizeof(cf), "%s.conditions.%u", base, i);
    r->nconds++; /* counted first: free_rule() frees a half-compiled condition */
    if ((e = cond_compile(c, cf, &rr->conditions[i], &r->conds[i])) != 0)
      return e;
  }
  if (r->type == KW_RULE_MATCH && r->nconds == 0)
    return fail(c, base, "a match rule needs 'conditions'");
  if (r->type == KW_RULE_VOLUME && rr->bytes == NULL && rr->factor == 0)
    r->bytes = 0; /* baseline factor only (default) */
  defaults(r);
  {
    char src[512];
    unsigned line = kw_yaml_locate(c->name, c->data, c->len, base);
    snprintf(src, sizeof(src), "%s:%u", c->name, line);
    if ((r->source = strdup(src)) == NULL)
      return KW_ENOMEM;
  }
#undef FIELD
  return 0;
}

/* Sets *src to "FILE:LINE" of field. */
static int set_source(struct ctx *c, const char *field, char **src) {
  char buf[512];
  snprintf(buf, sizeof(buf), "%s:%u", c->name, kw_yaml_locate(c->name, c->data, c->len, field));
  return (*src = strdup(buf)) != NULL ? 0 : KW_ENOMEM;
}

/* Key-store names (groups, permissions): copied, none empty. */
static int names(struct ctx *c, const char *field, char **in, unsigned n, char ***out,
                 size_t *nout) {
  char f[128];
  int e = strlist(in, n, out, nout);
  for (size_t i = 0; e == 0 && i < *nout; i++) {
    if ((*out)[i][0] == '\0') {
      snprintf(f, sizeof(f), "%s.%zu", field, i);
      e = fail(c, f, "an empty name selects nothing");
    }
  }
  return e;
}

static int compile_grant(struct ctx *c, unsigned idx, const struct raw_grant *rg,
                         struct kw_grant *g) {
  char f[64], base[32];
  int e;

  snprintf(base, sizeof(base), "grants.%u", idx);
#define FIELD(name) (snprintf(f, sizeof(f), "%s.%s", base, name), f)
  if ((e = set_source(c, base, &g->source)) != 0 ||
      (e = keysels(c, FIELD("keys"), rg->keys, rg->keys_count, &g->keys, &g->nkeys)) != 0 ||
      (e = names(c, FIELD("groups"), rg->groups, rg->groups_count, &g->groups,
                 &g->ngroups)) != 0 ||
      (e = names(c, FIELD("permissions"), rg->permissions, rg->permissions_count,
                 &g->permissions, &g->npermissions)) != 0 ||
      (e = strlist(rg->scopes, rg->scopes_count, &g->scopes, &g->nscopes)) != 0)
    return e;
  if (g->nkeys + g->ngroups + g->npermissions == 0)
    return fail(c, base, "a grant needs 'keys', 'groups' or 'permissions' (whom it grants "
                         "its scopes to)");
  for (size_t j = 0; j < g->nscopes; j++)
    g->all_scopes |= strcmp(g->scopes[j], "*") == 0;
#undef FIELD
  return 0;
}

static void free_rule(struct kw_rule *r) {
  free(r->id);
  free(r->source);
  free(r->statuses);
  for (size_t i = 0; i < r->nendpoints; i++) {
    free(r->endpoints[i].method);
    free(r->endpoints[i].path);
  }
  free(r->endpoints);
  for (size_t i = 0; i < r->nex_endpoints; i++) {
    free(r->ex_endpoints[i].method);
    free(r->ex_endpoints[i].path);
  }
  free(r->ex_endpoints);
  free(r->cidrs);
  free(r->ex_addrs);
  for (size_t i = 0; i < r->nex_agents; i++)
    free(r->ex_agents[i]);
  free(r->ex_agents);
  for (size_t i = 0; i < r->nscopes; i++)
    free(r->scopes[i]);
  free(r->scopes);
  for (size_t i = 0; i < r->nkeys; i++)
    free(r->keys[i].value);
  free(r->keys);
  for (size_t i = 0; i < r->nexclude_keys; i++)
    free(r->exclude_keys[i].value);
  free(r->exclude_keys);
  for (size_t i = 0; i < r->nconds; i++) {
    if (r->conds[i].op == KW_OP_REGEX)
      regfree(&r->conds[i].re);
    free(r->conds[i].value);
  }
  free(r->conds);
}

static void free_strs(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void free_keysels(struct kw_keysel *k, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(k[i].value);
  free(k);
}

void kw_ruleset_destroy(struct kw_ruleset *rs) {
  if (rs == NULL)
    return;
  for (size_t i = 0; i < rs->n; i++)
    free_rule(&rs->rules[i]);
  free(rs->rules);
  for (size_t i = 0; i < rs->nscopes; i++) {
    free(rs->scopes[i].name);
    free(rs->scopes[i].source);
    for (size_t j = 0; j < rs->scopes[i].n; j++) {
      free(rs->scopes[i].patterns[j].method);
      free(rs->scopes[i].patterns[j].path);
    }
    free(rs->scopes[i].patterns);
  }
  free(rs->scopes);
  for (size_t i = 0; i < rs->ngrants; i++) {
    struct kw_grant *g = &rs->grants[i];
    free_keysels(g->keys, g->nkeys);
    free_strs(g->groups, g->ngroups);
    free_strs(g->permissions, g->npermissions);
    free_strs(g->scopes, g->nscopes);
    free(g->source);
  }
  free(rs->grants);
  free_keysels(rs->canaries, rs->ncanaries);
  free_keysels(rs->revoked, rs->nrevoked);
  free(rs);
}

static int grow(void **v, size_t n, size_t add, size_t size) {
  void *nv = realloc(*v, (n + add ? n + add : 1) * size);
  if (nv == NULL)
    return KW_ENOMEM;
  memset((char *)nv + n * size, 0, add * size);
  *v = nv;
  return 0;
}

static int add_pack(struct ctx *c, const struct raw_pack *p, struct kw_ruleset *rs) {
  int e;

  if ((e = grow((void **)&rs->rules, rs->n, p->rules_count, sizeof(*rs->rules))) != 0)
    return e;
  for (unsigned i = 0; i < p->rules_count; i++) {
    struct kw_rule *r = &rs->rules[rs->n];
    rs->n++; /* counted first, so a half-compiled rule is freed with the set */
    if ((e = compile_rule(c, i, &p->rules[i], r)) != 0)
      return e;
    for (size_t j = 0; j + 1 < rs->n; j++) {
      if (strcmp(rs->rules[j].id, r->id) == 0) {
        char f[64];
        snprintf(f, sizeof(f), "rules.%u.id", i);
        return fail(c, f, "'%s' is already the id of another rule (%s)", r->id,
                    rs->rules[j].source);
      }
    }
  }
  if ((e = grow((void **)&rs->scopes, rs->nscopes, p->scopes_count, sizeof(*rs->scopes))))
    return e;
  for (unsigned i = 0; i < p->scopes_count; i++) {
    const struct raw_scope *rsc = &p->scopes[i];
    struct kw_scope *s;
    char f[64];
    snprintf(f, sizeof(f), "scopes.%u", i);
    if (rs->nscopes >= KW_RULES_MAX_SCOPES)
      return fail(c, f, "more than %d scopes in the loaded packs", KW_RULES_MAX_SCOPES);
    s = &rs->scopes[rs->nscopes++];
    if ((e = set_source(c, f, &s->source)) != 0)
      return e;
    snprintf(f, sizeof(f), "scopes.%u.name", i);
    if (rsc->name == NULL || rsc->name[0] == '\0')
      return fail(c, f, "a scope needs a 'name'");
    if (strcmp(rsc->name, "*") == 0)
      return fail(c, f, "'*' is not a scope name (in grants it means every scope)");
    for (size_t j = 0; j + 1 < rs->nscopes; j++)
      if (strcmp(rs->scopes[j].name, rsc->name) == 0)
        return fail(c, f, "'%s' is already the name of another scope (%s); scope names "
                          "are unique across the loaded packs", rsc->name,
                    rs->scopes[j].source);
    if ((s->name = strdup(rsc->name)) == NULL)
      return KW_ENOMEM;
    snprintf(f, sizeof(f), "scopes.%u.endpoints", i);
    if ((e = patterns(c, f, rsc->endpoints, rsc->endpoints_count, &s->patterns, &s->n)) != 0)
      return e;
  }
  if ((e = grow((void **)&rs->grants, rs->ngrants, p->grants_count, sizeof(*rs->grants))))
    return e;
  for (unsigned i = 0; i < p->grants_count; i++)
    if ((e = compile_grant(c, i, &p->grants[i], &rs->grants[rs->ngrants++])) != 0)
      return e;
  {
    struct kw_keysel *k;
    size_t n;
    if ((e = keysels(c, "canaries", p->canaries, p->canaries_count, &k, &n)) != 0) {
      free_keysels(k, n);
      return e;
    }
    if ((e = grow((void **)&rs->canaries, rs->ncanaries, n, sizeof(*k))) != 0) {
      free_keysels(k, n);
      return e;
    }
    memcpy(rs->canaries + rs->ncanaries, k, n * sizeof(*k));
    rs->ncanaries += n;
    free(k);
    if ((e = keysels(c, "revoked", p->revoked, p->revoked_count, &k, &n)) != 0) {
      free_keysels(k, n);
      return e;
    }
    if ((e = grow((void **)&rs->revoked, rs->nrevoked, n, sizeof(*k))) != 0) {
      free_keysels(k, n);
      return e;
    }
    memcpy(rs->revoked + rs->nrevoked, k, n * sizeof(*k));
    rs->nrevoked += n;
    free(k);
  }
  return 0;
}

static bool scope_known(const struct kw_ruleset *rs, const char *name) {
  for (size_t k = 0; k < rs->nscopes; k++)
    if (strcmp(rs->scopes[k].name, name) == 0)
      return true;
  return false;
}

/* What one pack added to the set, to check it once every pack is loaded. */
struct span {
  struct ctx c;
  size_t first_grant, end_grant, first_rule, end_rule;
};

/* Scopes named by the grants and rules of one pack must exist in some loaded pack (any
 * order); errors use the pack's own entry numbers. */
static int check_scopes(struct span *sp, const struct kw_ruleset *rs) {
  struct ctx *c = &sp->c;
  size_t first_grant = sp->first_grant, first_rule = sp->first_rule;
  char f[64];
  for (size_t i = first_grant; i < sp->end_grant; i++) {
    for (size_t j = 0; j < rs->grants[i].nscopes; j++) {
      if (strcmp(rs->grants[i].scopes[j], "*") != 0 &&
          !scope_known(rs, rs->grants[i].scopes[j])) {
        snprintf(f, sizeof(f), "grants.%zu.scopes.%zu", i - first_grant, j);
        return fail(c, f, "no scope is named '%s' in the loaded packs",
                    rs->grants[i].scopes[j]);
      }
    }
  }
  for (size_t i = first_rule; i < sp->end_rule; i++) {
    for (size_t j = 0; j < rs->rules[i].nscopes; j++) {
      if (!scope_known(rs, rs->rules[i].scopes[j])) {
        snprintf(f, sizeof(f), "rules.%zu.scopes.%zu", i - first_rule, j);
        return fail(c, f, "no scope is named '%s' in the loaded packs",
                    rs->rules[i].scopes[j]);
      }
    }
  }
  return 0;
}

/* A grant of "*" holds every scope of the loaded packs, each named once. */
static int expand_all(struct kw_ruleset *rs) {
  for (size_t i = 0; i < rs->ngrants; i++) {
    struct kw_grant *g = &rs->grants[i];
    char **all;
    size_t n;
    if (!g->all_scopes)
      continue;
    all = calloc(rs->nscopes ? rs->nscopes : 1, sizeof(char *));
    if (all == NULL)
      return KW_ENOMEM;
    for (n = 0; n < rs->nscopes; n++) {
      if ((all[n] = strdup(rs->scopes[n].name)) == NULL) {
        free_strs(all, n);
        return KW_ENOMEM;
      }
    }
    free_strs(g->scopes, g->nscopes);
    g->scopes = all;
    g->nscopes = n;
  }
  return 0;
}

int kw_ruleset_load(char *const *packs, size_t n, struct kw_ruleset **out, char *err,
                    size_t errlen) {
  struct kw_ruleset *rs = calloc(1, sizeof(*rs));
  struct span *spans = calloc(n ? n : 1, sizeof(*spans));
  XXH3_state_t *h = XXH3_createState();
  size_t nspans = 0;
  int r = 0;

  *out = NULL;
  if (rs == NULL || h == NULL || spans == NULL) {
    free(rs);
    free(spans);
    XXH3_freeState(h);
    snprintf(err, errlen, "rule packs: out of memory");
    return KW_ENOMEM;
  }
  XXH3_64bits_reset(h);
  for (size_t i = 0; i < n && r == 0; i++) {
    struct raw_pack *p = NULL;
    struct ctx c = {.name = packs[i], .err = err, .errlen = errlen};
    if (strncmp(packs[i], "builtin:", 8) == 0) {
      c.data = kw_rules_builtin(packs[i] + 8);
      if (c.data == NULL) {
        snprintf(err, errlen, "%s: no such built-in rule pack", packs[i]);
        r = KW_ECONFIG;
        break;
      }
      c.len = strlen(c.data);
    }
    if ((r = kw_yaml_load(c.name, c.data, c.len, &pack_schema, (void **)&p, err, errlen)))
      break;
    struct span *sp = &spans[nspans++];
    sp->c = c;
    sp->first_grant = rs->ngrants;
    sp->first_rule = rs->n;
    r = add_pack(&c, p, rs);
    sp->end_grant = rs->ngrants;
    sp->end_rule = rs->n;
    kw_yaml_free(&pack_schema, p);
  }
  /* Names are checked once every pack is in: a grant may name a later pack's scope. */
  for (size_t i = 0; i < nspans && r == 0; i++)
    r = check_scopes(&spans[i], rs);
  if (r == 0)
    r = expand_all(rs);
  free(spans);
  /* The signature covers what shapes per-key state: rule ids, types and order. */
  for (size_t i = 0; i < rs->n && r == 0; i++) {
    XXH3_64bits_update(h, rs->rules[i].id, strlen(rs->rules[i].id) + 1);
    XXH3_64bits_update(h, &rs->rules[i].type, sizeof(rs->rules[i].type));
  }
  rs->signature = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  if (r != 0) {
    if (r == KW_ENOMEM) /* the compile steps leave err alone when out of memory */
      snprintf(err, errlen, "rule packs: out of memory");
    kw_ruleset_destroy(rs);
    return r;
  }
  *out = rs;
  return 0;
}
