/* fuzz_rules.c — libFuzzer harness for the rule-pack loader (analyzer/rules.c) and the
 * matchers a loaded pack is used through.
 *
 * Input: a rule pack (YAML).  It is written to one temporary file (created at start,
 * removed at exit) and loaded with kw_ruleset_load() alone, and after builtin:default (so
 * ids, scopes and grants meet those of another pack).
 * On failure: KW_ECONFIG or KW_ENOMEM, no object, a message naming the pack.
 * On success, asserted (rules.h): every rule has an id unique in the set, a known type, a
 * severity, a "FILE:LINE" source naming its pack, positive cooldowns, windows and sizes
 * not negative, a factor that is a number >= 0 (rules.c: "must be positive"; NaN is not),
 * prefix4 <= 32, prefix6 <= 128, CIDR bits within the family, scopes a rule names exist;
 * then each compiled pattern, CIDR and key selector is run against a few calls
 * (kw_pattern_match, kw_cidr_contains, kw_keysel_match) — with ASan watching the reads.
 *
 * Build: cmake -S . -B build-fuzz -DKW_FUZZ=ON -DCMAKE_C_COMPILER=clang && \
 *        cmake --build build-fuzz --target fuzz_rules   (the loader needs kwcore: severity
 *        names live in sidecar/store_alerts.c; scripts/fuzz.sh does this for every harness)
 * Run:   mkdir -p /tmp/rules_corpus && build-fuzz/fuzz_rules \
 *          -dict=tests/fuzz/fuzz_rules.dict /tmp/rules_corpus tests/fuzz/corpus/fuzz_rules
 *        (new units go to the first directory, the seeds stay as they are)
 * Thread: libFuzzer's, single.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/rules.h"
#include "sidecar/err.h"

static char path[256];
static int fd = -1;

static void cleanup(void) {
  if (fd >= 0)
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("TMPDIR");
  (void)argc;
  (void)argv;
  snprintf(path, sizeof(path), "%s/kw_fuzz_rules.XXXXXX.yaml", dir && *dir ? dir : "/tmp");
  if ((fd = mkstemps(path, 5)) < 0)
    abort();
  atexit(cleanup);
  return 0;
}

static void write_input(const uint8_t *data, size_t size) {
  if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
    abort();
}

static void match_patterns(const struct kw_pattern *p, size_t n) {
  static const char *const tmpl[] = {"/", "/api/card/{id}", "/api/card/{id}/query", "/a//b",
                                     "/api", ""};
  static const char *const methods[] = {"GET", "post", ""};
  for (size_t i = 0; i < n; i++) {
    if (p[i].method == NULL || p[i].path == NULL || p[i].path[0] != '/')
      abort();
    for (size_t t = 0; t < sizeof(tmpl) / sizeof(tmpl[0]); t++)
      for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
        (void)kw_pattern_match(&p[i], methods[m], strlen(methods[m]), tmpl[t],
                               strlen(tmpl[t]));
  }
}

static void match_cidrs(const struct kw_cidr *c, size_t n) {
  static const char *const addrs[] = {"10.1.2.3", "2001:db8::1", "0.0.0.0", "::"};
  for (size_t i = 0; i < n; i++) {
    if (!((c[i].family == 4 && c[i].bits <= 32) || (c[i].family == 6 && c[i].bits <= 128)))
      abort();
    for (size_t a = 0; a < sizeof(addrs) / sizeof(addrs[0]); a++) {
      struct kw_addr ad;
      if (kw_addr_parse(addrs[a], strlen(addrs[a]), &ad) != 0)
        abort();
      (void)kw_cidr_contains(&c[i], &ad);
    }
  }
}

static void match_keysels(const struct kw_keysel *k, size_t n) {
  static const uint8_t fp[KW_FP_LEN] = {1, 2, 3};
  for (size_t i = 0; i < n; i++)
    if (k[i].value == NULL || k[i].value[0] == '\0')
      abort();
  (void)kw_keysel_match(k, n, fp, "mb_AbCd", "billing");
  (void)kw_keysel_match(k, n, NULL, "", NULL);
}

static void check_set(const struct kw_ruleset *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    const struct kw_rule *r = &rs->rules[i];
    if (r->id == NULL || r->id[0] == '\0' || (unsigned)r->type >= KW_RULE_TYPES ||
        r->source == NULL || strchr(r->source, ':') == NULL)
      abort();
    for (size_t j = 0; j < i; j++)
      if (strcmp(rs->rules[j].id, r->id) == 0) {
        fprintf(stderr, "fuzz_rules: id '%s' loaded twice\n", r->id);
        abort();
      }
    if (r->cooldown_us <= 0 || r->window_us < 0 || r->learn_us < 0 || r->prefix4 > 32 ||
        r->prefix6 > 128 || r->max_addresses > 31 || r->bytes < 0)
      abort();
    if (!(r->factor >= 0)) { /* rules.c: "factor: must be positive"; NaN is not */
      fprintf(stderr, "fuzz_rules: rule '%s' loaded with factor %g\n", r->id, r->factor);
      abort();
    }
    if (r->type == KW_RULE_MATCH && r->nconds == 0)
      abort();
    (void)kw_rule_type_name(r->type);
    match_patterns(r->endpoints, r->nendpoints);
    match_patterns(r->ex_endpoints, r->nex_endpoints);
    match_cidrs(r->cidrs, r->ncidrs);
    match_cidrs(r->ex_addrs, r->nex_addrs);
    match_keysels(r->keys, r->nkeys);
    match_keysels(r->exclude_keys, r->nexclude_keys);
    for (size_t c = 0; c < r->nconds; c++)
      if (r->conds[c].op == KW_OP_CIDR)
        match_cidrs(&r->conds[c].cidr, 1);
    for (size_t s = 0; s < r->nscopes; s++) {
      size_t k = 0;
      while (k < rs->nscopes && strcmp(rs->scopes[k].name, r->scopes[s]) != 0)
        k++;
      if (k == rs->nscopes)
        abort(); /* a rule names a scope no pack defines */
    }
  }
  for (size_t i = 0; i < rs->nscopes; i++)
    match_patterns(rs->scopes[i].patterns, rs->scopes[i].n);
  for (size_t i = 0; i < rs->ngrants; i++)
    match_keysels(rs->grants[i].keys, rs->grants[i].nkeys);
  match_keysels(rs->canaries, rs->ncanaries);
  match_keysels(rs->revoked, rs->nrevoked);
}

static void load(char *const *packs, size_t n) {
  struct kw_ruleset *rs = (struct kw_ruleset *)1;
  char err[512];
  int rc;

  memset(err, 0, sizeof(err));
  rc = kw_ruleset_load(packs, n, &rs, err, sizeof(err));
  if (rc == 0) {
    if (rs == NULL)
      abort();
    check_set(rs);
    kw_ruleset_destroy(rs);
    return;
  }
  if (rs != NULL || (rc != KW_ECONFIG && rc != KW_ENOMEM) || err[0] == '\0' ||
      memchr(err, '\0', sizeof(err)) == NULL)
    abort();
  if (rc == KW_ECONFIG && strncmp(err, path, strlen(path)) != 0 &&
      strncmp(err, "builtin:default", 15) != 0) {
    fprintf(stderr, "fuzz_rules: an error that names no pack: %s\n", err);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *one[] = {path};
  char *two[] = {"builtin:default", path};

  write_input(data, size);
  load(one, 1);
  load(two, 2);
  return 0;
}
