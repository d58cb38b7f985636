/* test_rules.c — rule packs: loading, validation errors, and the matching helpers
 * (analyzer/rules.c).
 *
 * Packs are written by the test into a fresh mkdtemp directory.  Every validation error
 * must read "FILE:LINE: FIELD: message" (or FILE:LINE:COL for libcyaml's own) with the
 * exact line of the offending field, so a user can fix the pack without guessing.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "analyzer/rules.h"
#include "sidecar/alerts.h"
#include "sidecar/call.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"

#include "kwtest_files.h"

static char g_dir[64];
static char g_path[128];
static char g_path2[128];
static char g_err[1024];

static int setup(void **state) {
  (void)state;
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwrules") != 0)
    return -1;
  snprintf(g_path, sizeof(g_path), "%s/pack.yaml", g_dir);
  snprintf(g_path2, sizeof(g_path2), "%s/second.yaml", g_dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return temp_dir_remove(g_dir);
}

static struct kw_ruleset *load_ok(const char *text) {
  return ruleset_load_text(g_path, text);
}

static void load_fails(const char *text, unsigned line, const char *field, const char *also1,
                       const char *also2) {
  struct kw_ruleset *rs = (struct kw_ruleset *)1;
  char *packs[] = {g_path};
  int rc;
  write_text(g_path, text);
  g_err[0] = '\0';
  rc = kw_ruleset_load(packs, 1, &rs, g_err, sizeof(g_err));
  if (rc == 0)
    kw_ruleset_destroy(rs); /* before failing: only the library's leaks are reported */
  if (rc != KW_ECONFIG)
    fail_msg("expected KW_ECONFIG, got %d (error '%s')", rc, g_err);
  assert_null(rs);
  assert_err_at(g_err, g_path, line, field, also1, also2);
}

static const struct kw_rule *rule_by_id(const struct kw_ruleset *rs, const char *id) {
  for (size_t i = 0; i < rs->n; i++)
    if (strcmp(rs->rules[i].id, id) == 0)
      return &rs->rules[i];
  fail_msg("no rule '%s'", id);
  return NULL;
}

static struct kw_addr addr(const char *s) {
  struct kw_addr a;
  if (kw_addr_parse(s, strlen(s), &a) != 0)
    fail_msg("test address '%s' does not parse", s);
  return a;
}

/* ---- loading ------------------------------------------------------------------------ */

static const char FULL_PACK[] =
    "rules:\n"                                                   /* 1 */
    "  - id: spike\n"                                            /* 2 */
    "    type: rate_spike\n"                                     /* 3 */
    "    severity: high\n"                                       /* 4 */
    "    window: 10m\n"                                          /* 5 */
    "    learn: 2h\n"                                            /* 6 */
    "    factor: 4.5\n"                                          /* 7 */
    "    floor: 20\n"                                            /* 8 */
    "    cooldown: 30m\n"                                        /* 9 */
    "    keys: [mb_AbCd, \"fp:00112233445566778899aabbccddeeff\", \"name:cron\"]\n"
    "    exclude_keys: [mb_Batch]\n"                             /* 11 */
    "    exclude:\n"                                             /* 12 */
    "      addresses: [10.0.0.0/8, \"2001:db8::/32\", 192.0.2.7]\n"
    "      user_agents: [kube-probe/]\n"                         /* 14 */
    "      endpoints: [\"GET /api/health\", \"* /api/session/**\"]\n"
    "  - id: net\n"                                              /* 16 */
    "    type: new_source\n"                                     /* 17 */
    "    prefix4: 16\n"                                          /* 18 */
    "    prefix6: 48\n"                                          /* 19 */
    "    min_history: 50\n"                                      /* 20 */
    "  - id: allowed-nets\n"                                     /* 21 */
    "    type: new_source\n"                                     /* 22 */
    "    cidrs: [203.0.113.0/24, \"2001:db8:1::/48\"]\n"         /* 23 */
    "  - id: fanout\n"                                           /* 24 */
    "    type: ip_fanout\n"                                      /* 25 */
    "    window: 1h\n"                                           /* 26 */
    "    max_addresses: 12\n"                                    /* 27 */
    "  - id: auth\n"                                             /* 28 */
    "    type: auth_failures\n"                                  /* 29 */
    "    window: 30s\n"                                          /* 30 */
    "    threshold: 7\n"                                         /* 31 */
    "    by: address\n"                                          /* 32 */
    "    statuses: [401, 403, 407]\n"                            /* 33 */
    "  - id: scope\n"                                            /* 34 */
    "    type: scope_violation\n"                                /* 35 */
    "    scopes: [read]\n"                                       /* 36 */
    "  - id: new-ep\n"                                           /* 37 */
    "    type: new_endpoint\n"                                   /* 38 */
    "    per: set\n"                                             /* 39 */
    "    endpoints: [\"* /api/user\", \"* /api/user/**\"]\n"     /* 40 */
    "  - id: enum\n"                                             /* 41 */
    "    type: enumeration\n"                                    /* 42 */
    "    distinct_ids: 300\n"                                    /* 43 */
    "  - id: vol\n"                                              /* 44 */
    "    type: volume\n"                                         /* 45 */
    "    bytes: 2GiB\n"                                          /* 46 */
    "  - id: nights\n"                                           /* 47 */
    "    type: off_hours\n"                                      /* 48 */
    "    hours: \"09:00-17:30\"\n"                               /* 49 */
    "    days: mon-fri\n"                                        /* 50 */
    "    timezone: \"+02:00\"\n"                                 /* 51 */
    "  - id: learned-nights\n"                                   /* 52 */
    "    type: off_hours\n"                                      /* 53 */
    "    hours: learned\n"                                       /* 54 */
    "  - id: revoked\n"                                          /* 55 */
    "    type: revoked_key_use\n"                                /* 56 */
    "    action: revoke\n"                                       /* 57 */
    "  - id: sqlmap\n"                                           /* 58 */
    "    type: match\n"                                          /* 59 */
    "    severity: low\n"                                        /* 60 */
    "    conditions:\n"                                          /* 61 */
    "      - {field: user_agent, op: regex, value: \"sqlmap|nikto\"}\n"
    "      - {field: path, op: prefix, value: /api/}\n"          /* 63 */
    "      - {field: status, op: equals, value: \"500\"}\n"      /* 64 */
    "      - {field: address, op: cidr, value: 198.51.100.0/24}\n"
    "      - {field: method, op: equals, value: POST}\n"         /* 66 */
    "  - id: canary\n"                                           /* 67 */
    "    type: canary\n"                                         /* 68 */
    "    severity: low\n"                                        /* 69 */
    "scopes:\n"                                                  /* 70 */
    "  - {name: read, endpoints: [\"GET /api/**\", \"HEAD /api/**\"]}\n"
    "  - {name: admin, endpoints: [\"* /api/user/**\"]}\n"       /* 72 */
    "grants:\n"                                                  /* 73 */
    "  - {keys: [mb_Read], scopes: [read]}\n"                    /* 74 */
    "  - {keys: [mb_Admin, \"name:ops\"], scopes: [read, admin]}\n"
    "canaries: [mb_Canary1]\n"                                   /* 76 */
    "revoked: [mb_Old, \"fp:ffeeddccbbaa99887766554433221100\"]\n";

static void test_load_full_pack(void **state) {
  struct kw_ruleset *rs;
  const struct kw_rule *r;
  char src[200];
  (void)state;

  rs = load_ok(FULL_PACK);
  assert_int_equal(rs->n, 14);

  r = rule_by_id(rs, "spike");
  assert_int_equal(r->type, KW_RULE_RATE_SPIKE);
  assert_int_equal(r->severity, KW_SEV_HIGH);
  assert_int_equal(r->action, KW_ACTION_ALERT);
  assert_true(r->window_us == 600000000LL);
  assert_true(r->learn_us == 7200000000LL);
  assert_true(r->cooldown_us == 1800000000LL);
  assert_true(fabs(r->factor - 4.5) < 1e-6);
  assert_int_equal(r->floor, 20);
  assert_int_equal(r->nkeys, 3);
  assert_int_equal(r->keys[0].kind, KW_SEL_PREFIX);
  assert_string_equal(r->keys[0].value, "mb_AbCd");
  assert_int_equal(r->keys[1].kind, KW_SEL_FP);
  assert_int_equal(r->keys[1].fp[0], 0x00);
  assert_int_equal(r->keys[1].fp[15], 0xff);
  assert_int_equal(r->keys[2].kind, KW_SEL_NAME);
  assert_string_equal(r->keys[2].value, "cron");
  assert_int_equal(r->nexclude_keys, 1);
  assert_int_equal(r->nex_addrs, 3);
  assert_int_equal(r->ex_addrs[0].family, 4);
  assert_int_equal(r->ex_addrs[0].bits, 8);
  assert_int_equal(r->ex_addrs[1].family, 6);
  assert_int_equal(r->ex_addrs[1].bits, 32);
  assert_int_equal(r->ex_addrs[2].bits, 32); /* a lone address is a /32 */
  assert_int_equal(r->nex_agents, 1);
  assert_string_equal(r->ex_agents[0], "kube-probe/");
  assert_int_equal(r->nex_endpoints, 2);
  assert_string_equal(r->ex_endpoints[1].method, "*");
  assert_string_equal(r->ex_endpoints[1].path, "/api/session/**");
  /* source names the rule's own line, for explain */
  snprintf(src, sizeof(src), "%s:2", g_path);
  assert_string_equal(r->source, src);

  r = rule_by_id(rs, "net");
  assert_int_equal(r->type, KW_RULE_NEW_SOURCE);
  assert_int_equal(r->prefix4, 16);
  assert_int_equal(r->prefix6, 48);
  assert_int_equal(r->min_history, 50);
  assert_int_equal(r->severity, KW_SEV_MEDIUM); /* default */
  assert_true(r->learn_us > 0);                 /* a default learning period */
  snprintf(src, sizeof(src), "%s:16", g_path);
  assert_string_equal(r->source, src);

  r = rule_by_id(rs, "allowed-nets");
  assert_int_equal(r->ncidrs, 2);
  assert_int_equal(r->cidrs[0].bits, 24);
  assert_int_equal(r->cidrs[1].family, 6);

  r = rule_by_id(rs, "fanout");
  assert_int_equal(r->type, KW_RULE_IP_FANOUT);
  assert_int_equal(r->max_addresses, 12);
  assert_true(r->window_us == 3600000000LL);

  r = rule_by_id(rs, "auth");
  assert_true(r->by_address);
  assert_int_equal(r->threshold, 7);
  assert_true(r->window_us == 30000000LL); /* auth_failures may count under a minute */
  assert_int_equal(r->nstatuses, 3);
  assert_int_equal(r->statuses[2], 407);

  r = rule_by_id(rs, "scope");
  assert_int_equal(r->nscopes, 1);
  assert_string_equal(r->scopes[0], "read");

  r = rule_by_id(rs, "new-ep");
  assert_true(r->per_set);
  assert_int_equal(r->nendpoints, 2);

  r = rule_by_id(rs, "enum");
  assert_int_equal(r->distinct_ids, 300);

  r = rule_by_id(rs, "vol");
  assert_true(r->bytes == 2147483648LL);

  r = rule_by_id(rs, "nights");
  assert_false(r->learned_hours);
  /* 09:00-17:30 covers the whole hours it touches: 9..17 */
  assert_int_equal(r->hours_mask, 0x3fe00u);
  assert_int_equal(r->days_mask, 0x1f);
  assert_int_equal(r->tz_offset_s, 7200);
  assert_true(rule_by_id(rs, "learned-nights")->learned_hours);

  r = rule_by_id(rs, "revoked");
  assert_int_equal(r->action, KW_ACTION_REVOKE);

  r = rule_by_id(rs, "sqlmap");
  assert_int_equal(r->nconds, 5);
  assert_int_equal(r->conds[0].field, KW_F_USER_AGENT);
  assert_int_equal(r->conds[0].op, KW_OP_REGEX);
  assert_int_equal(r->conds[1].op, KW_OP_PREFIX);
  assert_int_equal(r->conds[2].field, KW_F_STATUS);
  assert_string_equal(r->conds[2].value, "500");
  assert_int_equal(r->conds[3].op, KW_OP_CIDR);
  assert_int_equal(r->conds[3].cidr.bits, 24);
  assert_int_equal(r->severity, KW_SEV_LOW);

  /* a canary is critical, whatever the pack says */
  assert_int_equal(rule_by_id(rs, "canary")->severity, KW_SEV_CRITICAL);

  assert_int_equal(rs->nscopes, 2);
  assert_string_equal(rs->scopes[0].name, "read");
  assert_int_equal(rs->scopes[0].n, 2);
  assert_int_equal(rs->ngrants, 2);
  assert_int_equal(rs->grants[1].nkeys, 2);
  assert_int_equal(rs->grants[1].nscopes, 2);
  assert_int_equal(rs->ncanaries, 1);
  assert_string_equal(rs->canaries[0].value, "mb_Canary1");
  assert_int_equal(rs->nrevoked, 2);
  assert_int_equal(rs->revoked[1].kind, KW_SEL_FP);
  kw_ruleset_destroy(rs);
}

static void test_defaults_per_type(void **state) {
  struct kw_ruleset *rs;
  (void)state;
  rs = load_ok("rules:\n"
               "  - {id: a, type: rate_spike}\n"
               "  - {id: b, type: auth_failures}\n"
               "  - {id: c, type: ip_fanout}\n"
               "  - {id: d, type: enumeration}\n");
  /* every rule works without parameters: sane defaults, never 0 */
  for (size_t i = 0; i < rs->n; i++) {
    assert_true(rs->rules[i].cooldown_us > 0);
    assert_int_equal(rs->rules[i].severity, KW_SEV_MEDIUM);
    assert_int_equal(rs->rules[i].action, KW_ACTION_ALERT);
  }
  assert_true(rs->rules[0].window_us > 0 && rs->rules[0].learn_us > 0);
  assert_true(rs->rules[0].factor > 1 && rs->rules[0].floor > 0);
  assert_true(rs->rules[1].threshold > 0);
  assert_int_equal(rs->rules[1].nstatuses, 2); /* 401, 403 */
  assert_int_equal(rs->rules[1].statuses[0], 401);
  assert_int_equal(rs->rules[1].statuses[1], 403);
  assert_int_equal(rs->rules[2].max_addresses, 10);
  assert_int_equal(rs->rules[3].distinct_ids, 200);
  kw_ruleset_destroy(rs);
}

static void test_builtin_default(void **state) {
  struct kw_ruleset *rs = NULL;
  char *packs[] = {"builtin:default"};
  bool types[KW_RULE_TYPES] = {0};
  (void)state;

  assert_non_null(kw_rules_builtin("default"));
  assert_null(kw_rules_builtin("no-such-pack"));
  if (kw_ruleset_load(packs, 1, &rs, g_err, sizeof(g_err)) != 0)
    fail_msg("builtin:default does not load: %s", g_err);
  assert_true(rs->n >= 9);
  for (size_t i = 0; i < rs->n; i++) {
    types[rs->rules[i].type] = true;
    assert_non_null(strstr(rs->rules[i].source, "builtin:default:"));
  }
  /* the default pack covers the incidents the issue lists */
  assert_true(types[KW_RULE_RATE_SPIKE]);
  assert_true(types[KW_RULE_NEW_SOURCE]);
  assert_true(types[KW_RULE_IP_FANOUT]);
  assert_true(types[KW_RULE_AUTH_FAILURES]);
  assert_true(types[KW_RULE_ENUMERATION]);
  assert_true(types[KW_RULE_NEW_ENDPOINT]);
  assert_true(types[KW_RULE_OFF_HOURS]);
  assert_true(types[KW_RULE_CANARY]);
  kw_ruleset_destroy(rs);

  /* an unknown builtin is a configuration error naming it */
  char *bad[] = {"builtin:nope"};
  rs = (struct kw_ruleset *)1;
  assert_int_equal(kw_ruleset_load(bad, 1, &rs, g_err, sizeof(g_err)), KW_ECONFIG);
  assert_null(rs);
  assert_non_null(strstr(g_err, "builtin:nope"));
}

static void test_signature(void **state) {
  struct kw_ruleset *a, *b, *c;
  (void)state;
  a = load_ok("rules:\n  - {id: a, type: rate_spike}\n  - {id: b, type: volume}\n");
  b = load_ok("rules:\n  - {id: a, type: rate_spike, factor: 9}\n  - {id: b, type: volume}\n");
  c = load_ok("rules:\n  - {id: a, type: rate_spike}\n  - {id: b2, type: volume}\n");
  /* parameters do not change the state's shape: baselines survive a tuning */
  assert_true(a->signature == b->signature);
  /* another rule set does */
  assert_true(a->signature != c->signature);
  kw_ruleset_destroy(a);
  kw_ruleset_destroy(b);
  kw_ruleset_destroy(c);
}

static void test_missing_file(void **state) {
  struct kw_ruleset *rs = (struct kw_ruleset *)1;
  char path[200];
  char *packs[] = {path};
  (void)state;
  snprintf(path, sizeof(path), "%s/nope.yaml", g_dir);
  assert_int_not_equal(kw_ruleset_load(packs, 1, &rs, g_err, sizeof(g_err)), 0);
  assert_null(rs);
  assert_non_null(strstr(g_err, path));
}

/* ---- errors ------------------------------------------------------------------------- */

static void test_err_unknown_type(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: ok\n"
             "    type: canary\n"
             "  - id: x\n"
             "    type: rate_spik\n",
             5, "rules.1.type", "'rate_spik' is not a rule type", "rate_spike");
}

/* "file:line and field in every error": a field that is missing has no line of its own;
 * the error then points at the entry that lacks it. */
static void test_err_missing_type_line(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: ok\n"
             "    type: canary\n"
             "  - id: x\n"
             "    severity: high\n",
             4, "rules.1.type", "is not a rule type", NULL);
}

static void test_err_missing_value_line(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: match\n"
             "    conditions:\n"
             "      - {field: path, op: equals}\n",
             5, "rules.0.conditions.0.value", "missing", NULL);
}

static void test_err_missing_id(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - type: canary\n",
             2, "rules.0", "needs an 'id'", NULL);
}

static void test_err_severity_action(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: canary\n"
             "    severity: severe\n",
             4, "rules.0.severity", "'severe'", "info, low, medium, high or critical");
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: canary\n"
             "    action: block\n",
             4, "rules.0.action", "'block' is not alert or revoke", NULL);
}

static void test_err_durations(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: rate_spike\n"
             "    window: 10x\n",
             4, "rules.0.window", "'10x'", "duration");
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: rate_spike\n"
             "    window: 30s\n",
             4, "rules.0.window", "'30s'", "at least 1m");
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: rate_spike\n"
             "    learn: soon\n",
             4, "rules.0.learn", "'soon'", "duration");
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: rate_spike\n"
             "\n"
             "    cooldown: 1 hour\n",
             5, "rules.0.cooldown", "'1 hour'", "duration");
}

static void test_err_size(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: volume\n"
             "    bytes: 5 bananas\n",
             4, "rules.0.bytes", "'5 bananas' is not a size", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: volume\n"
             "    bytes: 5ZB\n",
             4, "rules.0.bytes", "'5ZB'", NULL);
}

static void test_err_cidr(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: new_source\n"
             "    cidrs:\n"
             "      - 10.0.0.0/8\n"
             "      - 10.0.0.0/33\n",
             6, "rules.0.cidrs.1", "'10.0.0.0/33' is not an address or CIDR", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: canary\n"
             "    exclude:\n"
             "      addresses: [not-an-ip]\n",
             5, "rules.0.exclude.addresses.0", "'not-an-ip'", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: new_source\n"
             "    cidrs: [\"2001:db8::/129\"]\n",
             4, "rules.0.cidrs.0", "not an address or CIDR", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: new_source\n"
             "    cidrs: [10.0.0.0/]\n",
             4, "rules.0.cidrs.0", "not an address or CIDR", NULL);
}

static void test_err_pattern(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: new_endpoint\n"
             "    endpoints:\n"
             "      - /api/user\n",
             5, "rules.0.endpoints.0", "'/api/user' is not an endpoint pattern",
             "METHOD /path");
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: canary\n"
             "    exclude:\n"
             "      endpoints: [\"GET api/health\"]\n",
             5, "rules.0.exclude.endpoints.0", "not an endpoint pattern", NULL);
  load_fails("scopes:\n"
             "  - name: read\n"
             "    endpoints: [\"GET /api/**\", \"GET\"]\n",
             3, "scopes.0.endpoints.1", "not an endpoint pattern", NULL);
}

static void test_err_regex(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: match\n"
             "    conditions:\n"
             "      - field: user_agent\n"
             "        op: regex\n"
             "        value: \"(unclosed\"\n",
             7, "rules.0.conditions.0.value", "bad regex", NULL);
}

static void test_err_conditions(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: match\n"
             "    severity: high\n",
             2, "rules.0", "a match rule needs 'conditions'", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: match\n"
             "    conditions:\n"
             "      - {field: agent, op: equals, value: x}\n",
             5, "rules.0.conditions.0.field", "'agent'", "user_agent");
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: match\n"
             "    conditions:\n"
             "      - {field: path, op: glob, value: x}\n",
             5, "rules.0.conditions.0.op", "'glob'", "regex");
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: match\n"
             "    conditions:\n"
             "      - {field: path, op: cidr, value: 10.0.0.0/8}\n",
             5, "rules.0.conditions.0.value", "cidr needs field address", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: match\n"
             "    conditions:\n"
             "      - {field: status, op: equals, value: OK}\n",
             5, "rules.0.conditions.0.value", "status values are numbers", NULL);
}

/* libcyaml's own validation (unknown keys, wrong types) also names file, line, field. */
static void test_err_unknown_key(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: rate_spike\n"
             "    windw: 10m\n",
             4, "rules.0.windw", "unknown key", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: rate_spike\n"
             "    floor: many\n",
             4, "rules.0.floor", NULL, NULL);
  load_fails("rule:\n"
             "  - id: x\n",
             1, "rule", "unknown key", NULL);
}

static void test_err_duplicate_id(void **state) {
  char expect[200];
  (void)state;
  snprintf(expect, sizeof(expect), "(%s:2)", g_path);
  load_fails("rules:\n"
             "  - id: same\n"
             "    type: canary\n"
             "  - id: other\n"
             "    type: canary\n"
             "  - id: same\n"
             "    type: rate_spike\n",
             6, "rules.2.id", "'same' is already the id of another rule", expect);
}

/* Across packs: the second pack's duplicate is reported in the second pack. */
static void test_err_duplicate_id_across_packs(void **state) {
  struct kw_ruleset *rs = (struct kw_ruleset *)1;
  char *packs[] = {g_path, g_path2};
  (void)state;
  write_text(g_path, "rules:\n  - {id: a, type: canary}\n");
  write_text(g_path2, "rules:\n  - {id: b, type: canary}\n  - {id: a, type: canary}\n");
  assert_int_equal(kw_ruleset_load(packs, 2, &rs, g_err, sizeof(g_err)), KW_ECONFIG);
  assert_null(rs);
  assert_err_at(g_err, g_path2, 3, "rules.1.id", "already the id", g_path);
}

static void test_err_grant_unknown_scope(void **state) {
  (void)state;
  load_fails("scopes:\n"
             "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
             "grants:\n"
             "  - keys: [mb_AbCd]\n"
             "    scopes:\n"
             "      - read\n"
             "      - write\n",
             7, "grants.0.scopes.1", "no scope is named 'write'", NULL);
  load_fails("grants:\n"
             "  - keys: [\"fp:xyz\"]\n"
             "    scopes: []\n",
             2, "grants.0.keys.0", "not a key selector", NULL);
}

/* A scope_violation rule limited to a scope that no pack defines would never judge
 * anything: rules.h's loader promises "scopes named by grants and rules must exist". */
static void test_err_rule_unknown_scope(void **state) {
  (void)state;
  load_fails("scopes:\n"
             "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
             "rules:\n"
             "  - id: x\n"
             "    type: scope_violation\n"
             "    scopes: [raed]\n",
             6, "rules.0.scopes.0", "raed", NULL);
}

/* With several packs, a grant error names the entry in the pack where it stands. */
static void test_err_grant_second_pack(void **state) {
  struct kw_ruleset *rs = (struct kw_ruleset *)1;
  char *packs[] = {g_path, g_path2};
  (void)state;
  write_text(g_path, "scopes:\n"
                     "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
                     "grants:\n"
                     "  - {keys: [mb_A], scopes: [read]}\n"
                     "  - {keys: [mb_B], scopes: [read]}\n");
  write_text(g_path2, "grants:\n"
                      "  - keys: [mb_C]\n"
                      "    scopes: [wirte]\n");
  assert_int_equal(kw_ruleset_load(packs, 2, &rs, g_err, sizeof(g_err)), KW_ECONFIG);
  assert_null(rs);
  assert_err_at(g_err, g_path2, 3, "grants.0.scopes.0", "no scope is named 'wirte'", NULL);
}

static void test_err_by_per(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: auth_failures\n"
             "    by: ip\n",
             4, "rules.0.by", "'ip' is not key or address", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: new_endpoint\n"
             "    per: key\n",
             4, "rules.0.per", "'key' is not endpoint or set", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: new_source\n"
             "    prefix4: 33\n",
             4, "rules.0.prefix4", "out of range", NULL);
}

static void test_err_hours_days_tz(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: off_hours\n"
             "    hours: 9-17\n",
             4, "rules.0.hours", "'9-17' is not HH:MM-HH:MM or learned", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: off_hours\n"
             "    hours: \"09:00-25:00\"\n",
             4, "rules.0.hours", "HH:MM-HH:MM", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: off_hours\n"
             "    hours: \"09:00-17:00\"\n"
             "    days: weekdays\n",
             5, "rules.0.days", "'weekdays' is not a day or range", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: off_hours\n"
             "    hours: \"09:00-17:00\"\n"
             "    days: mon-xyz\n",
             5, "rules.0.days", "mon-fri", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: off_hours\n"
             "    hours: \"09:00-17:00\"\n"
             "    timezone: Mars/Olympus\n",
             5, "rules.0.timezone", "'Mars/Olympus' is not UTC or an offset", NULL);
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: off_hours\n"
             "    hours: \"09:00-17:00\"\n"
             "    timezone: \"+15:00\"\n",
             5, "rules.0.timezone", "offset", NULL);
}

static void test_err_key_selector(void **state) {
  (void)state;
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: canary\n"
             "    keys: [\"fp:0011\"]\n",
             4, "rules.0.keys.0", "'fp:0011' is not a key selector", NULL);
  /* empty selectors would select nothing (or everything): refused */
  load_fails("rules:\n"
             "  - id: x\n"
             "    type: canary\n"
             "    exclude_keys: [\"name:\"]\n",
             4, "rules.0.exclude_keys.0", "not a key selector", NULL);
  load_fails("canaries: [\"\"]\n", 1, "canaries.0", "not a key selector", NULL);
}

/* ---- helpers ------------------------------------------------------------------------ */

static bool pm(const char *pattern, const char *method, const char *tmpl) {
  struct kw_pattern p;
  const char *sp = strchr(pattern, ' ');
  char m[16];
  assert_non_null(sp);
  snprintf(m, sizeof(m), "%.*s", (int)(sp - pattern), pattern);
  p.method = m;
  p.path = (char *)(sp + 1);
  return kw_pattern_match(&p, method, strlen(method), tmpl, strlen(tmpl));
}

static void test_pattern_match(void **state) {
  (void)state;
  /* METHOD: exact (case-insensitive) or "*" */
  assert_true(pm("GET /api/card", "GET", "/api/card"));
  assert_true(pm("get /api/card", "GET", "/api/card"));
  assert_false(pm("GET /api/card", "POST", "/api/card"));
  assert_false(pm("GET /api/card", "GETX", "/api/card"));
  assert_false(pm("GETX /api/card", "GET", "/api/card"));
  assert_true(pm("* /api/card", "DELETE", "/api/card"));
  /* one-segment "*" */
  assert_true(pm("GET /api/card/*", "GET", "/api/card/{id}"));
  assert_true(pm("GET /api/*/query", "GET", "/api/card/query"));
  assert_false(pm("GET /api/card/*", "GET", "/api/card"));
  assert_false(pm("GET /api/card/*", "GET", "/api/card/{id}/query"));
  assert_false(pm("GET /api/*/query", "GET", "/api/card/{id}/query"));
  /* trailing "**": any rest, also nothing */
  assert_true(pm("GET /api/**", "GET", "/api/card/{id}/query"));
  assert_true(pm("GET /api/**", "GET", "/api/card"));
  assert_true(pm("GET /api/**", "GET", "/api"));
  assert_false(pm("GET /api/**", "GET", "/apix/card"));
  assert_false(pm("GET /api/**", "GET", "/"));
  assert_true(pm("* /**", "GET", "/anything/at/all"));
  /* literal placeholder segments */
  assert_true(pm("GET /api/card/{id}", "GET", "/api/card/{id}"));
  assert_false(pm("GET /api/card/{id}", "GET", "/api/card/{uuid}"));
  assert_false(pm("GET /api/card/{id}", "GET", "/api/card/123"));
  /* no partial match of a segment or the path */
  assert_false(pm("GET /api/card", "GET", "/api/cards"));
  assert_false(pm("GET /api/cards", "GET", "/api/card"));
  assert_false(pm("GET /api/car", "GET", "/api/card"));
  assert_false(pm("GET /api/card", "GET", "/api/card/{id}"));
  assert_false(pm("GET /api/card/{id}", "GET", "/api/card"));
  assert_true(pm("GET /", "GET", "/"));
  assert_false(pm("GET /", "GET", "/api"));
  /* a template is matched as given, never as a prefix of a longer buffer */
  {
    struct kw_pattern p = {.method = "GET", .path = "/api/card"};
    assert_true(kw_pattern_match(&p, "GETX", 3, "/api/card/{id}", 9));
    assert_false(kw_pattern_match(&p, "GET", 3, "/api/card/{id}", 14));
  }
}

static struct kw_cidr cidr(const char *net, unsigned bits) {
  struct kw_cidr c = {0};
  struct kw_addr a = addr(net);
  c.family = a.family;
  memcpy(c.a, a.a, 16);
  c.bits = bits;
  return c;
}

static bool in(const struct kw_cidr *c, const char *a) {
  struct kw_addr x = addr(a);
  return kw_cidr_contains(c, &x);
}

static void test_cidr_contains(void **state) {
  struct kw_cidr c;
  (void)state;
  c = cidr("10.1.0.0", 16);
  assert_true(in(&c, "10.1.0.0"));
  assert_true(in(&c, "10.1.255.255"));
  assert_false(in(&c, "10.2.0.0"));
  assert_false(in(&c, "10.0.255.255"));
  /* /17 edge: the top bit of the third byte */
  c = cidr("10.1.128.0", 17);
  assert_true(in(&c, "10.1.128.0"));
  assert_true(in(&c, "10.1.255.255"));
  assert_false(in(&c, "10.1.127.255"));
  assert_false(in(&c, "10.1.0.1"));
  c = cidr("10.1.0.0", 17);
  assert_true(in(&c, "10.1.127.255"));
  assert_false(in(&c, "10.1.128.0"));
  /* /32: one address */
  c = cidr("192.0.2.7", 32);
  assert_true(in(&c, "192.0.2.7"));
  assert_false(in(&c, "192.0.2.6"));
  assert_false(in(&c, "192.0.2.8"));
  /* /0: every address of its family, none of the other */
  c = cidr("0.0.0.0", 0);
  assert_true(in(&c, "1.2.3.4"));
  assert_true(in(&c, "255.255.255.255"));
  assert_false(in(&c, "2001:db8::1"));
  c = cidr("::", 0);
  assert_true(in(&c, "2001:db8::1"));
  assert_false(in(&c, "1.2.3.4"));
  /* IPv6 */
  c = cidr("2001:db8::", 32);
  assert_true(in(&c, "2001:db8::1"));
  assert_true(in(&c, "2001:db8:ffff:ffff::1"));
  assert_false(in(&c, "2001:db9::1"));
  assert_false(in(&c, "10.0.0.1"));
  c = cidr("2001:db8:0:8000::", 49);
  assert_true(in(&c, "2001:db8:0:8000::1"));
  assert_false(in(&c, "2001:db8:0:7fff::1"));
  c = cidr("2001:db8::1", 128);
  assert_true(in(&c, "2001:db8::1"));
  assert_false(in(&c, "2001:db8::2"));
  /* unknown family (no address in the log) is in no network */
  {
    struct kw_addr none = {0};
    c = cidr("0.0.0.0", 0);
    assert_false(kw_cidr_contains(&c, &none));
  }
}

static void test_keysel_match(void **state) {
  struct kw_keysel sel[3];
  uint8_t fp[KW_FP_LEN], other[KW_FP_LEN];
  (void)state;
  memset(fp, 0x5a, sizeof(fp));
  memset(other, 0x11, sizeof(other));
  memset(sel, 0, sizeof(sel));

  /* display-prefix start, both ways */
  sel[0].kind = KW_SEL_PREFIX;
  sel[0].value = "mb_AbCd";
  assert_true(kw_keysel_match(sel, 1, fp, "mb_AbCd", NULL));
  assert_true(kw_keysel_match(sel, 1, fp, "mb_Ab", NULL));   /* shorter stored prefix */
  sel[0].value = "mb_AbCdEfGhIjKlMnOp";                       /* a full key id */
  assert_true(kw_keysel_match(sel, 1, fp, "mb_AbCd", NULL));
  sel[0].value = "mb_A";
  assert_true(kw_keysel_match(sel, 1, fp, "mb_AbCd", NULL)); /* a short selector */
  sel[0].value = "mb_AbCd";
  assert_false(kw_keysel_match(sel, 1, fp, "mb_AbCe", NULL));
  assert_false(kw_keysel_match(sel, 1, fp, "xx_AbCd", NULL));
  assert_false(kw_keysel_match(sel, 1, fp, "", NULL));        /* no prefix: no match */
  assert_false(kw_keysel_match(sel, 1, fp, NULL, NULL));
  /* fingerprint */
  sel[1].kind = KW_SEL_FP;
  sel[1].value = "5a5a";
  memcpy(sel[1].fp, fp, KW_FP_LEN);
  assert_true(kw_keysel_match(&sel[1], 1, fp, "zz", NULL));
  assert_false(kw_keysel_match(&sel[1], 1, other, "zz", NULL));
  assert_false(kw_keysel_match(&sel[1], 1, NULL, "zz", NULL));
  /* configured name */
  sel[2].kind = KW_SEL_NAME;
  sel[2].value = "reporting-cron";
  assert_true(kw_keysel_match(&sel[2], 1, other, "zz", "reporting-cron"));
  assert_false(kw_keysel_match(&sel[2], 1, other, "zz", "reporting"));
  assert_false(kw_keysel_match(&sel[2], 1, other, "reporting-cron", NULL));
  /* any of several */
  assert_true(kw_keysel_match(sel, 3, other, "zz", "reporting-cron"));
  assert_true(kw_keysel_match(sel, 3, fp, "zz", NULL));
  assert_true(kw_keysel_match(sel, 3, other, "mb_AbCd", NULL));
  assert_false(kw_keysel_match(sel, 3, other, "zz", "x"));
  assert_false(kw_keysel_match(sel, 0, fp, "mb_AbCd", "reporting-cron"));
}

/* Selectors parsed from a pack reach kw_keysel_match as written. */
static void test_keysel_from_pack(void **state) {
  struct kw_ruleset *rs;
  uint8_t fp[KW_FP_LEN];
  (void)state;
  rs = load_ok("rules:\n"
               "  - id: x\n"
               "    type: canary\n"
               "    keys: [mb_AbCd, \"fp:0123456789ABCDEF0123456789abcdef\", \"name:ops\"]\n");
  assert_int_equal(kw_fingerprint_from_hex("0123456789abcdef0123456789abcdef", fp), 0);
  assert_true(kw_keysel_match(rs->rules[0].keys, 3, fp, "zz", NULL));
  assert_true(kw_keysel_match(rs->rules[0].keys, 3, NULL, "mb_AbCdXYZ", NULL));
  assert_true(kw_keysel_match(rs->rules[0].keys, 3, NULL, "zz", "ops"));
  assert_false(kw_keysel_match(rs->rules[0].keys, 3, NULL, "zz", "opsx"));
  kw_ruleset_destroy(rs);
}

static void test_duration_parse(void **state) {
  int64_t us;
  (void)state;
  assert_int_equal(kw_duration_parse("30s", &us), 0);
  assert_true(us == 30000000LL);
  assert_int_equal(kw_duration_parse("10m", &us), 0);
  assert_true(us == 600000000LL);
  assert_int_equal(kw_duration_parse("24h", &us), 0);
  assert_true(us == 86400000000LL);
  assert_int_equal(kw_duration_parse("7d", &us), 0);
  assert_true(us == 7 * 86400000000LL);
  assert_int_equal(kw_duration_parse("90", &us), 0); /* plain seconds */
  assert_true(us == 90000000LL);
  assert_int_equal(kw_duration_parse("1.5h", &us), 0);
  assert_true(us == 5400000000LL);
  assert_int_equal(kw_duration_parse("250ms", &us), 0);
  assert_true(us == 250000LL);
  assert_int_equal(kw_duration_parse("0s", &us), 0);
  assert_true(us == 0);

  const char *bad[] = {"", "10x", "m", "-1m", "10 m", "10mm", "1h30m", "ten", "5M", "inf"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    us = 12345;
    if (kw_duration_parse(bad[i], &us) != KW_EPARSE)
      fail_msg("'%s' parsed as a duration (%lld us)", bad[i], (long long)us);
  }
  assert_int_equal(kw_duration_parse(NULL, &us), KW_EPARSE);
}

/* A duration is never negative: what does not fit (or is not a number) is refused. */
static void test_duration_parse_bounds(void **state) {
  const char *odd[] = {"nan", "nanm", "1000000000d", "999999999d", "200000000000ms"};
  char bad[512] = "";
  (void)state;
  for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
    int64_t us = 0;
    int rc = kw_duration_parse(odd[i], &us);
    if (rc == 0 && us < 0)
      snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " \"%s\" -> %lld;", odd[i],
               (long long)us);
  }
  if (bad[0])
    fail_msg("kw_duration_parse() accepted with a negative duration:%s", bad);
}

/* ---- grants by key-store attributes, scope catalogues -------------------------------- */

static const char GRANTS_PACK[] =
    "scopes:\n"                                                   /* 1 */
    "  - {name: read, endpoints: [\"GET /api/**\"]}\n"            /* 2 */
    "  - {name: write, endpoints: [\"POST /api/**\"]}\n"          /* 3 */
    "grants:\n"                                                   /* 4 */
    "  - {keys: [mb_AbCd], scopes: [read]}\n"                     /* 5 */
    "  - groups: [Analysts, \"Data team\"]\n"                     /* 6 */
    "    scopes: [read]\n"                                        /* 7 */
    "  - {permissions: [rw], scopes: [read, write]}\n"            /* 8 */
    "  - {groups: [Administrators], scopes: [\"*\"]}\n"           /* 9 */
    "  - {keys: [mb_Both], groups: [Ops], permissions: [r], scopes: [write]}\n";

static void test_grants_parse(void **state) {
  struct kw_ruleset *rs;
  const struct kw_grant *g;
  char src[200];
  (void)state;

  rs = load_ok(GRANTS_PACK);
  assert_int_equal(rs->ngrants, 5);
  g = &rs->grants[0];
  assert_int_equal(g->nkeys, 1);
  assert_int_equal(g->ngroups + g->npermissions, 0);
  assert_false(g->all_scopes);
  g = &rs->grants[1];
  assert_int_equal(g->nkeys, 0);
  assert_int_equal(g->ngroups, 2);
  assert_string_equal(g->groups[0], "Analysts");
  assert_string_equal(g->groups[1], "Data team");
  assert_int_equal(g->nscopes, 1);
  snprintf(src, sizeof(src), "%s:6", g_path);
  assert_string_equal(g->source, src);
  g = &rs->grants[2];
  assert_int_equal(g->npermissions, 1);
  assert_string_equal(g->permissions[0], "rw");
  assert_int_equal(g->nscopes, 2);
  /* "*": every scope of the loaded packs, each named once */
  g = &rs->grants[3];
  assert_true(g->all_scopes);
  assert_int_equal(g->nscopes, 2);
  assert_string_equal(g->scopes[0], "read");
  assert_string_equal(g->scopes[1], "write");
  g = &rs->grants[4];
  assert_int_equal(g->nkeys + g->ngroups + g->npermissions, 3);
  snprintf(src, sizeof(src), "%s:2", g_path);
  assert_string_equal(rs->scopes[0].source, src);
  kw_ruleset_destroy(rs);
}

/* "*" holds the scopes of packs loaded after the grant's too; a grant may name a scope of
 * a later pack. */
static void test_grants_star_across_packs(void **state) {
  struct kw_ruleset *rs = NULL;
  char *packs[] = {g_path, g_path2};
  (void)state;
  write_text(g_path, "scopes:\n"
                     "  - {name: a, endpoints: [\"GET /a\"]}\n"
                     "grants:\n"
                     "  - {groups: [Administrators], scopes: [\"*\", a]}\n"
                     "  - {keys: [mb_X], scopes: [b]}\n");
  write_text(g_path2, "scopes:\n"
                      "  - {name: b, endpoints: [\"GET /b\"]}\n"
                      "  - {name: c, endpoints: [\"GET /c\"]}\n");
  if (kw_ruleset_load(packs, 2, &rs, g_err, sizeof(g_err)) != 0)
    fail_msg("load failed: %s", g_err);
  assert_int_equal(rs->grants[0].nscopes, 3);
  assert_string_equal(rs->grants[0].scopes[2], "c");
  assert_int_equal(rs->grants[1].nscopes, 1);
  kw_ruleset_destroy(rs);
}

static void test_err_grants(void **state) {
  (void)state;
  /* whom the grant is for: keys, groups or permissions */
  load_fails("scopes:\n"
             "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
             "grants:\n"
             "  - {keys: [mb_A], scopes: [read]}\n"
             "  - scopes: [read]\n",
             5, "grants.1", "needs 'keys', 'groups' or 'permissions'", NULL);
  load_fails("scopes:\n"
             "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
             "grants:\n"
             "  - keys: []\n"
             "    groups: []\n"
             "    scopes: [read]\n",
             4, "grants.0", "needs 'keys', 'groups' or 'permissions'", NULL);
  /* an empty name selects nothing */
  load_fails("scopes:\n"
             "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
             "grants:\n"
             "  - groups: [Analysts]\n"
             "    permissions:\n"
             "      - r\n"
             "      - \"\"\n"
             "    scopes: [read]\n",
             7, "grants.0.permissions.1", "empty name", NULL);
  /* unknown scopes (a near miss of "*" too), unknown keys */
  load_fails("scopes:\n"
             "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
             "grants:\n"
             "  - groups: [Analysts]\n"
             "    scopes: [\"**\"]\n",
             5, "grants.0.scopes.0", "no scope is named '**'", NULL);
  load_fails("grants:\n"
             "  - {group: [Analysts], scopes: [read]}\n",
             2, NULL, "group", "unknown key");
}

static void test_err_scope_names(void **state) {
  struct kw_ruleset *rs = (struct kw_ruleset *)1;
  char *packs[] = {g_path, g_path2};
  char expect[200];
  (void)state;
  snprintf(expect, sizeof(expect), "(%s:2)", g_path);
  load_fails("scopes:\n"
             "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
             "  - {name: write, endpoints: [\"POST /api/**\"]}\n"
             "  - name: read\n"
             "    endpoints: [\"HEAD /api/**\"]\n",
             4, "scopes.2.name", "'read' is already the name of another scope", expect);
  load_fails("scopes:\n"
             "  - {name: \"*\", endpoints: [\"GET /api/**\"]}\n",
             2, "scopes.0.name", "'*' is not a scope name", NULL);
  load_fails("scopes:\n"
             "  - {endpoints: [\"GET /api/**\"]}\n",
             2, "scopes.0.name", "a scope needs a 'name'", NULL);
  /* across packs: reported in the later pack, naming the first */
  write_text(g_path, "scopes:\n  - {name: x, endpoints: [\"GET /x\"]}\n");
  write_text(g_path2, "scopes:\n  - {name: y, endpoints: [\"GET /y\"]}\n"
                      "  - {name: x, endpoints: [\"GET /z\"]}\n");
  assert_int_equal(kw_ruleset_load(packs, 2, &rs, g_err, sizeof(g_err)), KW_ECONFIG);
  assert_null(rs);
  assert_err_at(g_err, g_path2, 3, "scopes.1.name", "'x' is already the name", g_path);
}

/* Past KW_RULES_MAX_SCOPES scopes, a load error names the first one too many. */
static void test_err_too_many_scopes(void **state) {
  size_t cap = (KW_RULES_MAX_SCOPES + 2) * 48 + 16, o = 0;
  char *text = malloc(cap);
  (void)state;
  assert_non_null(text);
  o += (size_t)snprintf(text + o, cap - o, "scopes:\n");
  for (int i = 0; i <= KW_RULES_MAX_SCOPES; i++)
    o += (size_t)snprintf(text + o, cap - o, "  - {name: s%d, endpoints: [\"GET /s/%d\"]}\n",
                          i, i);
  load_fails(text, KW_RULES_MAX_SCOPES + 2, "scopes.1024", "more than 1024 scopes", NULL);
  free(text);
}

static void test_grant_applies(void **state) {
  struct kw_ruleset *rs;
  const struct kw_grant *byk, *byg, *byp, *both;
  uint8_t fp[KW_FP_LEN];
  (void)state;
  memset(fp, 0x42, sizeof(fp));
  rs = load_ok(GRANTS_PACK);
  byk = &rs->grants[0];
  byg = &rs->grants[1];
  byp = &rs->grants[2];
  both = &rs->grants[4];
  /* by key selector; a near miss; group or permission do not make a key grant apply */
  assert_true(kw_grant_applies(byk, fp, "mb_AbCd", NULL, NULL, NULL));
  assert_false(kw_grant_applies(byk, fp, "mb_AbCe", NULL, "Analysts", "rw"));
  /* by group, exactly as the store spells it */
  assert_true(kw_grant_applies(byg, fp, "mb_Zzzz", NULL, "Analysts", NULL));
  assert_true(kw_grant_applies(byg, NULL, NULL, NULL, "Data team", "r"));
  assert_false(kw_grant_applies(byg, fp, "mb_Zzzz", NULL, "analysts", NULL));
  assert_false(kw_grant_applies(byg, fp, "mb_Zzzz", NULL, "Analyst", NULL));
  assert_false(kw_grant_applies(byg, fp, "mb_Zzzz", "Analysts", NULL, "Analysts"));
  assert_false(kw_grant_applies(byg, fp, "mb_Zzzz", NULL, "", NULL));
  assert_false(kw_grant_applies(byg, fp, "mb_Zzzz", NULL, NULL, NULL));
  /* by permission */
  assert_true(kw_grant_applies(byp, fp, "mb_Zzzz", NULL, NULL, "rw"));
  assert_false(kw_grant_applies(byp, fp, "mb_Zzzz", NULL, NULL, "r"));
  assert_false(kw_grant_applies(byp, fp, "mb_Zzzz", NULL, "rw", NULL));
  /* any of its lists */
  assert_true(kw_grant_applies(both, fp, "mb_Both", NULL, NULL, NULL));
  assert_true(kw_grant_applies(both, fp, "mb_Zzzz", NULL, "Ops", NULL));
  assert_true(kw_grant_applies(both, fp, "mb_Zzzz", NULL, NULL, "r"));
  assert_false(kw_grant_applies(both, fp, "mb_Zzzz", NULL, "Opsx", "rw"));
  kw_ruleset_destroy(rs);
}

/* The scopes of rs covering METHOD template, ", "-joined into buf. */
static const char *covering(const struct kw_ruleset *rs, const char *method, const char *tmpl,
                            char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t k = 0; k < rs->nscopes; k++) {
    for (size_t p = 0; p < rs->scopes[k].n; p++) {
      if (kw_pattern_match(&rs->scopes[k].patterns[p], method, strlen(method), tmpl,
                           strlen(tmpl))) {
        o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", rs->scopes[k].name);
        break;
      }
    }
  }
  return buf;
}

#define COVERED(rs, method, tmpl, want)                                                     \
  do {                                                                                     \
    char b_[256];                                                                          \
    const char *got_ = covering(rs, method, tmpl, b_, sizeof(b_));                         \
    if (strcmp(got_, want) != 0)                                                           \
      fail_msg("%s %s: covered by '%s', expected '%s'", method, tmpl, got_, want);         \
  } while (0)

static const struct kw_grant *grant_for(const struct kw_ruleset *rs, const char *group,
                                        const char *perm) {
  for (size_t i = 0; i < rs->ngrants; i++)
    if (kw_grant_applies(&rs->grants[i], NULL, NULL, NULL, group, perm))
      return &rs->grants[i];
  return NULL;
}

static void test_builtin_catalogues(void **state) {
  struct kw_ruleset *rs = NULL;
  char *mb[] = {"builtin:default", "builtin:metabase-scopes"};
  char *all[] = {"builtin:metabase-scopes", "builtin:seatable-scopes", "builtin:rest-scopes"};
  const struct kw_grant *g;
  (void)state;

  if (kw_ruleset_load(mb, 2, &rs, g_err, sizeof(g_err)) != 0)
    fail_msg("default + metabase-scopes do not load: %s", g_err);
  for (size_t i = 0; i < rs->n; i++) /* the catalogue adds no rule */
    assert_non_null(strstr(rs->rules[i].source, "builtin:default:"));
  assert_int_equal(rs->nscopes, 3);
  /* questions: reading, running, changing */
  COVERED(rs, "GET", "/api/card/{id}", "metabase.read");
  COVERED(rs, "GET", "/api/card", "metabase.read");
  COVERED(rs, "POST", "/api/card/{id}/query", "metabase.read");
  COVERED(rs, "POST", "/api/card/{id}/query/csv", "metabase.read");
  COVERED(rs, "POST", "/api/dataset", "metabase.read");
  COVERED(rs, "POST", "/api/dataset/native", "metabase.read");
  COVERED(rs, "POST", "/api/dashboard/{id}/dashcard/{id}/card/{id}/query", "metabase.read");
  COVERED(rs, "DELETE", "/api/card/{id}", "metabase.write");
  COVERED(rs, "PUT", "/api/card/{id}", "metabase.write");
  COVERED(rs, "POST", "/api/card", "metabase.write");
  COVERED(rs, "PUT", "/api/dashboard/{id}/cards", "metabase.write");
  COVERED(rs, "POST", "/api/action/{id}/execute", "metabase.write");
  /* collections: the permission graph is the admin's */
  COVERED(rs, "GET", "/api/collection/root/items", "metabase.read");
  COVERED(rs, "PUT", "/api/collection/{id}", "metabase.write");
  COVERED(rs, "PUT", "/api/collection/graph", "metabase.admin");
  COVERED(rs, "GET", "/api/collection/graph", "metabase.admin");
  /* people, keys, settings, connections */
  COVERED(rs, "GET", "/api/user/{id}", "metabase.admin");
  COVERED(rs, "GET", "/api/user", "metabase.admin");
  COVERED(rs, "GET", "/api/user/current", "metabase.read, metabase.admin");
  COVERED(rs, "POST", "/api/api-key", "metabase.admin");
  COVERED(rs, "PUT", "/api/api-key/{id}/regenerate", "metabase.admin");
  COVERED(rs, "GET", "/api/permissions/graph", "metabase.admin");
  COVERED(rs, "PUT", "/api/setting/site-name", "metabase.admin");
  COVERED(rs, "POST", "/api/database", "metabase.admin");
  COVERED(rs, "POST", "/api/database/{id}/sync_schema", "metabase.admin");
  COVERED(rs, "GET", "/api/database/{id}/metadata", "metabase.read");
  COVERED(rs, "GET", "/api/ee/audit-app/user/audit-info", "metabase.admin");
  /* near misses: nothing covers them */
  COVERED(rs, "PATCH", "/api/card/{id}", "");
  COVERED(rs, "GET", "/api/cardx/{id}", "");
  COVERED(rs, "DELETE", "/api/dataset", "");
  /* Administrators hold every scope; other groups nothing by default */
  g = grant_for(rs, "Administrators", NULL);
  assert_non_null(g);
  assert_true(g->all_scopes);
  assert_int_equal(g->nscopes, 3);
  assert_null(grant_for(rs, "All Users", NULL));
  assert_null(grant_for(rs, "administrators", NULL));
  kw_ruleset_destroy(rs);

  /* the three catalogues together: names do not clash, "*" spans them all */
  if (kw_ruleset_load(all, 3, &rs, g_err, sizeof(g_err)) != 0)
    fail_msg("the catalogues do not load together: %s", g_err);
  assert_int_equal(rs->n, 0); /* scopes and grants only */
  assert_int_equal(rs->nscopes, 7);
  assert_int_equal(grant_for(rs, "Administrators", NULL)->nscopes, 7);
  COVERED(rs, "GET", "/api/v2.1/dtable/app-access-token/", "seatable.read, rest.read");
  COVERED(rs, "GET", "/api/v2.1/dtable/app-access-token", "seatable.read, rest.read");
  COVERED(rs, "GET", "/api/v2.1/dtable/app-upload-link/", "seatable.write, rest.read");
  COVERED(rs, "GET", "/api-gateway/api/v2/dtables/{uuid}/rows/", "seatable.read, rest.read");
  COVERED(rs, "GET", "/api-gateway/api/v2/dtables/{uuid}/rows/{token}/",
          "seatable.read, rest.read");
  COVERED(rs, "POST", "/api-gateway/api/v2/dtables/{uuid}/sql/", "seatable.read, rest.write");
  COVERED(rs, "POST", "/api-gateway/api/v2/dtables/{uuid}/rows/", "seatable.write, rest.write");
  COVERED(rs, "PUT", "/api-gateway/api/v2/dtables/{uuid}/rows/", "seatable.write, rest.write");
  COVERED(rs, "DELETE", "/api-gateway/api/v2/dtables/{uuid}/rows/",
          "seatable.write, rest.write");
  COVERED(rs, "GET", "/dtable-server/api/v1/dtables/{uuid}/rows/", "seatable.read, rest.read");
  COVERED(rs, "POST", "/dtable-server/api/v1/dtables/{uuid}/batch-append-rows/",
          "seatable.write, rest.write");
  COVERED(rs, "PATCH", "/anything/{id}", "rest.write");
  COVERED(rs, "OPTIONS", "/", "rest.read");
  /* SeaTable permissions: r reads, rw reads and writes; nothing else */
  g = grant_for(rs, NULL, "r");
  assert_non_null(g);
  assert_int_equal(g->nscopes, 1);
  assert_string_equal(g->scopes[0], "seatable.read");
  g = grant_for(rs, NULL, "rw");
  assert_non_null(g);
  assert_int_equal(g->nscopes, 2);
  assert_string_equal(g->scopes[1], "seatable.write");
  assert_null(grant_for(rs, NULL, "w"));
  assert_null(grant_for(rs, NULL, "RW"));
  kw_ruleset_destroy(rs);

  /* a catalogue loaded twice: its scope names clash, and the error says so */
  char *twice[] = {"builtin:seatable-scopes", "builtin:seatable-scopes"};
  rs = (struct kw_ruleset *)1;
  assert_int_equal(kw_ruleset_load(twice, 2, &rs, g_err, sizeof(g_err)), KW_ECONFIG);
  assert_null(rs);
  assert_non_null(strstr(g_err, "builtin:seatable-scopes:"));
  assert_non_null(strstr(g_err, "'seatable.read' is already the name of another scope"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_load_full_pack, setup, teardown),
      cmocka_unit_test_setup_teardown(test_defaults_per_type, setup, teardown),
      cmocka_unit_test_setup_teardown(test_builtin_default, setup, teardown),
      cmocka_unit_test_setup_teardown(test_signature, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_unknown_type, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_missing_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_missing_type_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_missing_value_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_severity_action, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_durations, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_cidr, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_pattern, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_regex, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_conditions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_unknown_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_duplicate_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_duplicate_id_across_packs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_grant_unknown_scope, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_rule_unknown_scope, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_grant_second_pack, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_by_per, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_hours_days_tz, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_key_selector, setup, teardown),
      cmocka_unit_test(test_pattern_match),
      cmocka_unit_test(test_cidr_contains),
      cmocka_unit_test(test_keysel_match),
      cmocka_unit_test_setup_teardown(test_keysel_from_pack, setup, teardown),
      cmocka_unit_test(test_duration_parse),
      cmocka_unit_test(test_duration_parse_bounds),
      cmocka_unit_test_setup_teardown(test_grants_parse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_grants_star_across_packs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_grants, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_scope_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_too_many_scopes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_grant_applies, setup, teardown),
      cmocka_unit_test_setup_teardown(test_builtin_catalogues, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
