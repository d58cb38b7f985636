/* test_engine_keys.c — the engine's rules on particular keys and calls
 * (analyzer/engine.c): revoked_key_use and canary, match conditions (anonymous calls,
 * hostile strings in the details), key selectors (keys, exclude_keys) and exclusions.
 *
 * Each test writes a small rule pack (short windows and learning periods) into the temp
 * directory, drives the engine with synthetic kw_call records (endpoint templates from
 * kw_endpoint_template(), as the pipeline does) and counts the firings its callback
 * receives; the fixture is kwtest_engine.h.  Every event time is AT(us), T0 + us, T0 being
 * Monday 2025-11-03 00:00:00 UTC.
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

#include <jansson.h>

#include "analyzer/engine.h"
#include "analyzer/rules.h"
#include "sidecar/alerts.h"
#include "sidecar/config.h"
#include "sidecar/fingerprint.h"

#include "kwtest_engine.h"

/* ---- revoked_key_use, canary -------------------------------------------------------- */

static void test_revoked_key_use(void **state) {
  struct env v;
  char pack[512], hex[2 * KW_FP_LEN + 1];
  uint8_t fp[KW_FP_LEN];
  (void)state;
  key_fp("mb_Old2", fp);
  snprintf(pack, sizeof(pack),
           "rules:\n"
           "  - {id: rev, type: revoked_key_use, action: revoke}\n"
           "revoked: [mb_Old1, \"fp:%s\"]\n",
           kw_fingerprint_hex(fp, hex));
  env_open(&v, pack, NULL);
  /* refused: the revocation works */
  hit(v.e, AT(0), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  hit(v.e, AT(0), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 403, 10, "c/1");
  hit(v.e, AT(0), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 0, -1, "c/1"); /* no answer */
  /* live keys */
  get(v.e, AT(0), "mb_Live", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("rev", NULL, 0);
  /* accepted: fires, by prefix and by fingerprint */
  hit(v.e, AT(MIN), "mb_Old1", "10.1.2.3", "GET", "/api/card/1", 200, 10, "c/1");
  EXPECT_FIRED("rev", "mb_Old1", 1);
  assert_string_equal(first("rev")->action, "revoke");
  hit(v.e, AT(MIN), "mb_Old2", "10.1.2.3", "GET", "/api/card/1", 204, 10, "c/1");
  EXPECT_FIRED("rev", "mb_Old2", 1);
  env_close(&v);
}

static void test_canary(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: can, type: canary, severity: low}\n"
               "canaries: [mb_Cana]\n",
           NULL);
  get(v.e, AT(0), "mb_Norm", "10.1.2.3", "/api/card/1");
  hit(v.e, AT(0), NULL, "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  EXPECT_FIRED("can", NULL, 0);
  /* any use, even refused, on the first call, and critical whatever the pack says */
  hit(v.e, AT(MIN), "mb_CanaryXYZ", "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  EXPECT_FIRED("can", "mb_Cana", 1);
  assert_int_equal(first("can")->severity, KW_SEV_CRITICAL);
  env_close(&v);
}

/* ---- match -------------------------------------------------------------------------- */

static const char MATCH_PACK[] =
    "rules:\n"
    "  - id: ua\n"
    "    type: match\n"
    "    conditions: [{field: user_agent, op: regex, value: \"^(sqlmap|nikto)/\"}]\n"
    "  - id: admin-path\n"
    "    type: match\n"
    "    conditions: [{field: path, op: prefix, value: /admin/}]\n"
    "  - id: delete-ok\n"
    "    type: match\n"
    "    conditions:\n"
    "      - {field: method, op: equals, value: DELETE}\n"
    "      - {field: status, op: prefix, value: \"2\"}\n"
    "  - id: bad-net\n"
    "    type: match\n"
    "    conditions: [{field: address, op: cidr, value: 203.0.113.0/24}]\n"
    "  - id: err500\n"
    "    type: match\n"
    "    conditions: [{field: status, op: equals, value: \"500\"}]\n"
    "  - id: dots\n"
    "    type: match\n"
    "    conditions: [{field: path, op: contains, value: \"/../\"}]\n";

static void test_match_conditions(void **state) {
  struct env v;
  int64_t t = AT(0);
  (void)state;
  env_open(&v, MATCH_PACK, NULL);
  /* near misses, one per rule */
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/card/1", 200, 10, "Mozilla sqlmap/1.7");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/administrator", 200, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "DELETE", "/api/card/1", 403, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/card/1", 204, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "203.0.114.1", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/card/1", 502, 10, "c/1");
  hit(v.e, t, "mb_Mat1", "10.1.2.3", "GET", "/api/..%2f/card", 200, 10, "c/1");
  EXPECT_FIRED(NULL, NULL, 0);
  /* hits, one key each (throttling is per rule and subject) */
  hit(v.e, t, "mb_Ua01", "10.1.2.3", "GET", "/api/card/1", 200, 10, "sqlmap/1.7#stable");
  EXPECT_FIRED("ua", "mb_Ua01", 1);
  hit(v.e, t, "mb_Adm1", "10.1.2.3", "GET", "/admin/users", 200, 10, "c/1");
  EXPECT_FIRED("admin-path", "mb_Adm1", 1);
  hit(v.e, t, "mb_Del1", "10.1.2.3", "DELETE", "/api/card/1", 204, 10, "c/1");
  EXPECT_FIRED("delete-ok", "mb_Del1", 1);
  hit(v.e, t, "mb_Net1", "203.0.113.77", "GET", "/api/card/1", 200, 10, "c/1");
  EXPECT_FIRED("bad-net", "mb_Net1", 1);
  hit(v.e, t, "mb_500a", "10.1.2.3", "GET", "/api/card/1", 500, 10, "c/1");
  EXPECT_FIRED("err500", "mb_500a", 1);
  hit(v.e, t, "mb_Dot1", "10.1.2.3", "GET", "/api/../etc/passwd", 200, 10, "c/1");
  EXPECT_FIRED("dots", "mb_Dot1", 1);
  EXPECT_FIRED(NULL, NULL, 6);
  env_close(&v);
}

/* Anonymous calls are judged per client address; keyed ones per key, not twice. */
static void test_match_anonymous(void **state) {
  struct env v;
  (void)state;
  env_open(&v, MATCH_PACK, NULL);
  hit(v.e, AT(0), NULL, "192.0.2.1", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  hit(v.e, AT(0), NULL, "192.0.2.2", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  hit(v.e, AT(10 * SEC), NULL, "192.0.2.1", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  EXPECT_FIRED("ua", NULL, 2);
  assert_false(g_f[0].has_key);
  assert_non_null(strstr(g_f[0].details, "192.0.2.1"));
  assert_non_null(strstr(g_f[1].details, "192.0.2.2"));
  /* a keyed call fires once, for the key */
  reset();
  hit(v.e, AT(HOUR), "mb_Key1", "192.0.2.3", "GET", "/api/card/1", 200, 10, "nikto/2.5");
  EXPECT_FIRED("ua", NULL, 1);
  EXPECT_FIRED("ua", "mb_Key1", 1);
  /* an anonymous call without an address cannot be judged per address */
  reset();
  hit(v.e, AT(2 * HOUR), NULL, NULL, "GET", "/api/card/1", 200, 10, "nikto/2.5");
  EXPECT_FIRED("ua", NULL, 0);
  env_close(&v);
}

/* Attacker-controlled strings in a firing's details are valid JSON and come back intact. */
static void test_match_hostile_details(void **state) {
  static const char UA[] = "sqlmap/1 \"q\" \\ <script>alert(1)</script>\n\x1b[31mred\x1b[0m";
  struct env v;
  json_t *j;
  json_error_t je;
  (void)state;
  env_open(&v, MATCH_PACK, NULL);
  hit(v.e, AT(0), "mb_Hos1", "10.1.2.3", "GET", "/api/card/1?q=\"<x>\"", 200, 10, UA);
  EXPECT_FIRED("ua", "mb_Hos1", 1);
  assert_null(strchr(g_f[0].details, '\x1b'));
  assert_null(strchr(g_f[0].details, '\n'));
  j = json_loads(g_f[0].details, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    fail_msg("details are not JSON (%s): %s", je.text, g_f[0].details);
  assert_string_equal(json_string_value(json_object_get(j, "user_agent")), UA);
  assert_string_equal(json_string_value(json_object_get(j, "path")), "/api/card/1?q=\"<x>\"");
  assert_string_equal(json_string_value(json_object_get(j, "client")), "10.1.2.3");
  assert_non_null(json_object_get(j, "rule_source"));
  json_decref(j);
  env_close(&v);
}

/* ---- selectors and exclusions ------------------------------------------------------- */

static void test_key_selectors(void **state) {
  struct env v;
  struct kw_config cfg;
  struct kw_key_name_cfg names[1] = {{.prefix = "mb_Nam1", .name = "billing"}};
  char pack[1024], hex[2 * KW_FP_LEN + 1];
  uint8_t fp[KW_FP_LEN];
  const char *keys[] = {"mb_Sel1", "mb_Nam1", "mb_Oth1", "mb_Exc1", "mb_Exc2"};
  (void)state;
  memset(&cfg, 0, sizeof(cfg));
  cfg.keys = names;
  cfg.keys_count = 1;
  key_fp("mb_Exc2", fp);
  snprintf(pack, sizeof(pack),
           "rules:\n"
           "  - id: only\n"
           "    type: match\n"
           "    keys: [mb_Sel, \"name:billing\"]\n"
           "    conditions: [{field: method, op: equals, value: GET}]\n"
           "  - id: except\n"
           "    type: match\n"
           "    exclude_keys: [mb_Exc1, \"fp:%s\"]\n"
           "    conditions: [{field: method, op: equals, value: GET}]\n",
           kw_fingerprint_hex(fp, hex));
  env_open(&v, pack, &cfg);
  for (size_t i = 0; i < 5; i++)
    get(v.e, AT(0), keys[i], "10.1.2.3", "/api/card/1");
  /* keys: a display-prefix start and a configured name */
  EXPECT_FIRED("only", NULL, 2);
  EXPECT_FIRED("only", "mb_Sel1", 1);
  EXPECT_FIRED("only", "mb_Nam1", 1);
  /* exclude_keys: a prefix and a fingerprint */
  EXPECT_FIRED("except", NULL, 3);
  EXPECT_FIRED("except", "mb_Exc1", 0);
  EXPECT_FIRED("except", "mb_Exc2", 0);
  /* a rule limited to keys never judges anonymous calls */
  reset();
  get(v.e, AT(HOUR), NULL, "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("only", NULL, 0);
  env_close(&v);
}

static void test_exclude(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: ex\n"
               "    type: match\n"
               "    conditions: [{field: method, op: equals, value: GET}]\n"
               "    exclude:\n"
               "      addresses: [10.0.0.0/8, \"2001:db8::/32\"]\n"
               "      user_agents: [kube-probe/]\n"
               "      endpoints: [\"GET /api/health\", \"* /api/session/**\"]\n",
           NULL);
  hit(v.e, AT(0), "mb_Ex01", "10.99.1.1", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Ex01", "2001:db8::5", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Ex01", "192.0.2.1", "GET", "/api/card/1", 200, 10, "kube-probe/1.29");
  hit(v.e, AT(0), "mb_Ex01", "192.0.2.1", "GET", "/api/health", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Ex01", "192.0.2.1", "GET", "/api/session/abc/refresh", 200, 10, "c/1");
  EXPECT_FIRED("ex", NULL, 0);
  /* near each allowlist entry, but outside it */
  hit(v.e, AT(MIN), "mb_Ex02", "11.0.0.1", "GET", "/api/card/1", 200, 10, "c/1");
  hit(v.e, AT(MIN), "mb_Ex03", "192.0.2.1", "GET", "/api/card/1", 200, 10, "my kube-probe/1");
  hit(v.e, AT(MIN), "mb_Ex04", "192.0.2.1", "GET", "/api/healthz", 200, 10, "c/1");
  hit(v.e, AT(MIN), "mb_Ex05", "192.0.2.1", "GET", "/api/sessions", 200, 10, "c/1");
  EXPECT_FIRED("ex", NULL, 4);
  env_close(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_revoked_key_use, env_teardown),
      cmocka_unit_test_teardown(test_canary, env_teardown),
      cmocka_unit_test_teardown(test_match_conditions, env_teardown),
      cmocka_unit_test_teardown(test_match_anonymous, env_teardown),
      cmocka_unit_test_teardown(test_match_hostile_details, env_teardown),
      cmocka_unit_test_teardown(test_key_selectors, env_teardown),
      cmocka_unit_test_teardown(test_exclude, env_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
