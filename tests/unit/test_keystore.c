/* test_keystore.c — the key-store adapters (analyzer/keystore*.c), through their ops tables.
 *
 * Parts:
 *  - opening stores: a credential file readable by others, a missing variable, an unknown
 *    argv placeholder — each error names its responder.stores.N field, never the secret;
 *  - metabase, seatable and kong against tests/tools/keystore_emu.py (the products' admin
 *    APIs, status codes and body quirks included) started as a subprocess per test on
 *    127.0.0.1; what the store did is read back from the emulator's /_emu/state, and its
 *    business API confirms a revoked key is refused;
 *  - command against a small shell script the test writes: argv expansion without a shell,
 *    exit codes, a timeout that kills what the program started, a missing binary, close()
 *    while a program runs.
 *
 * Every string an adapter hands out (call summaries and details, results, inventory items)
 * is logged; each test registers the secrets it used (admin credentials, raw keys, keys a
 * store generated) and the per-test teardown fails when any logged string contains one.
 *
 * Loop tests run the loop in bounded steps (run_until: a 10 ms tick keeps uv_run moving,
 * WAIT_MS caps it), count callbacks, and end with uv_loop_close() == 0.  Every subprocess
 * is stopped (SIGTERM, then SIGKILL) by the test or, if an assertion jumped out, by the
 * teardown.
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

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "analyzer/httpc.h"
#include "analyzer/keystore.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"

#include "kwtest_files.h"
#include "kwtest_loop.h"

#define WAIT_MS 10000
#define MAX_STORES 8
#define MAX_CALLS 8

static const char FP_SECRET[] = "test-keystore-fingerprint-secret-0123456789abcdef";

static char g_dir[64];
static struct peers g_peers;
static json_t *g_log;     /* every string an adapter handed out (this test) */
static json_t *g_secrets; /* every secret this test used */

/* ---- peers ---------------------------------------------------------------------------- */

static void path_in(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", g_dir, name);
}

/* Starts keystore_emu.py for product on state (written to the temp dir, mode 0600) and
 * returns its port once it listens (bounded wait). */
static int emu_start(const char *product, json_t *state, pid_t *pid_out) {
  char state_path[160], port_file[160];
  int port = 0;

  path_in(state_path, sizeof(state_path), product);
  strncat(state_path, ".state", sizeof(state_path) - strlen(state_path) - 1);
  path_in(port_file, sizeof(port_file), product);
  strncat(port_file, ".port", sizeof(port_file) - strlen(port_file) - 1);
  assert_int_equal(json_dump_file(state, state_path, JSON_COMPACT), 0);
  assert_int_equal(chmod(state_path, 0600), 0);
  *pid_out = peer_start(&g_peers, "keystore_emu.py", port_file, &port, "--product", product,
                        "--state", state_path, "--port", "0", "--port-file", port_file, NULL);
  return port;
}

/* ---- secrets and the log ---------------------------------------------------------------- */

static void secret_add(const char *s) {
  json_array_append_new(g_secrets, json_string(s));
}

static void log_str(const char *s) {
  if (s != NULL)
    json_array_append_new(g_log, json_string(s));
}

/* 0 when no logged string holds a secret. */
static int check_log(void) {
  size_t i, j;
  json_t *s, *l;
  int bad = 0;
  json_array_foreach(g_secrets, i, s) {
    json_array_foreach(g_log, j, l) {
      if (strstr(json_string_value(l), json_string_value(s)) != NULL) {
        fprintf(stderr, "LEAK: a secret appears in \"%s\"\n", json_string_value(l));
        bad = 1;
      }
    }
  }
  return bad;
}

/* ---- fixture ---------------------------------------------------------------------------- */

struct fix {
  uv_loop_t loop;
  struct kw_httpc *http;
  struct kw_fingerprint *fpr;
  struct kw_keystore_env env;
  struct kw_config *cfg;
  struct kw_keystore ks[MAX_STORES];
  unsigned nks;
  pid_t emu;
  int port;
};

static void fix_init(struct fix *f) {
  memset(f, 0, sizeof(*f));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(kw_httpc_init(&f->loop, &f->http), 0);
  assert_int_equal(kw_fingerprint_create_from(FP_SECRET, strlen(FP_SECRET), &f->fpr), 0);
  f->env = (struct kw_keystore_env){.loop = &f->loop, .http = f->http, .fpr = f->fpr,
                                    .prefix_length = 7};
}

/* Loads yaml (written to the temp dir) into f->cfg. */
static void fix_load(struct fix *f, const char *yaml) {
  char path[160];
  path_in(path, sizeof(path), "keywatch.yaml");
  f->cfg = config_load_text(path, yaml);
}

/* Loads yaml and opens every store it declares. */
static void fix_config(struct fix *f, const char *yaml) {
  char err[512];
  fix_load(f, yaml);
  assert_true(f->cfg->responder.stores_count <= MAX_STORES);
  for (unsigned i = 0; i < f->cfg->responder.stores_count; i++) {
    if (kw_keystore_open(&f->env, f->cfg, i, &f->ks[i], err, sizeof(err)) != 0)
      fail_msg("kw_keystore_open(%u): %s", i, err);
    f->nks = i + 1;
  }
}

static struct kw_keystore *store(struct fix *f, const char *name) {
  for (unsigned i = 0; i < f->nks; i++)
    if (strcmp(f->ks[i].cfg->name, name) == 0)
      return &f->ks[i];
  fail_msg("no store %s", name);
  return NULL;
}

/* Closes the HTTP client, then every store (as the responder does), and the loop. */
static void fix_finish(struct fix *f) {
  int closed = 0;
  kw_httpc_close(f->http, on_closed, &closed);
  assert_true(run_until(&f->loop, &closed, 1, WAIT_MS));
  for (unsigned i = 0; i < f->nks; i++) {
    closed = 0;
    f->ks[i].ops->close(f->ks[i].ctx, on_closed, &closed);
    assert_true(run_until(&f->loop, &closed, 1, WAIT_MS));
    assert_int_equal(closed, 1);
  }
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  kw_config_destroy(f->cfg);
  kw_fingerprint_destroy(f->fpr);
  if (f->emu > 0)
    peer_stop(&g_peers, f->emu);
}

/* ---- plain HTTP to the emulator (control API, business API) ----------------------------- */

struct plain {
  int done;
  int status;
  long code;
  char *body;
};

static void on_plain(const struct kw_http_resp *resp, void *arg) {
  struct plain *p = arg;
  p->done++;
  p->status = resp->status;
  p->code = resp->code;
  p->body = resp->body ? strdup(resp->body) : NULL;
}

/* method path [body] [header line] → code; the body parsed as JSON into *out (may be NULL). */
static long emu_http(struct fix *f, const char *method, const char *path, const char *body,
                     const char *header, json_t **out) {
  char url[1024];
  const char *hdrs[] = {header, NULL};
  struct plain p = {0};
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->port, path);
  struct kw_http_req req = {.method = method, .url = url, .headers = hdrs, .body = body,
                            .body_len = body ? strlen(body) : 0, .max_body = 16u << 20};
  assert_int_equal(kw_httpc_request(f->http, &req, on_plain, &p), 0);
  assert_true(run_until(&f->loop, &p.done, 1, WAIT_MS));
  assert_int_equal(p.status, 0);
  if (out != NULL)
    *out = p.body ? json_loads(p.body, 0, NULL) : NULL;
  free(p.body);
  return p.code;
}

static json_t *emu_state(struct fix *f) {
  json_t *st = NULL;
  assert_int_equal(emu_http(f, "GET", "/_emu/state", NULL, NULL, &st), 200);
  assert_non_null(st);
  return st;
}

static void emu_fail(struct fix *f, const char *mode, int count, const char *path_prefix) {
  char body[256];
  snprintf(body, sizeof(body), "{\"mode\": \"%s\", \"count\": %d, \"path_prefix\": \"%s\"}", mode,
           count, path_prefix);
  assert_int_equal(emu_http(f, "POST", "/_emu/fail", body, "Content-Type: application/json",
                            NULL),
                   200);
}

/* ---- attempts ----------------------------------------------------------------------------- */

struct call_rec {
  char request[256], result[32], detail[512];
  int status;
};

struct rec {
  int done, ncalls, calls_after_done;
  struct call_rec calls[MAX_CALLS];
  enum kw_revoke_outcome outcome;
  char ref[256], detail[512];
  bool has_ref;
  json_t *items;
  const char *store;
};

static void on_call(const struct kw_revocation_call *c, void *arg) {
  struct rec *r = arg;
  log_str(c->request);
  log_str(c->detail);
  if (r->done)
    r->calls_after_done++;
  assert_non_null(c->store);
  assert_string_equal(c->store, r->store);
  if (r->ncalls < MAX_CALLS) {
    struct call_rec *cr = &r->calls[r->ncalls];
    snprintf(cr->request, sizeof(cr->request), "%s", c->request);
    snprintf(cr->result, sizeof(cr->result), "%s", c->result);
    snprintf(cr->detail, sizeof(cr->detail), "%s", c->detail ? c->detail : "");
    cr->status = c->status;
  }
  r->ncalls++;
}

static void on_done(const struct kw_revoke_result *res, void *arg) {
  struct rec *r = arg;
  log_str(res->detail);
  log_str(res->store_ref);
  r->done++;
  r->outcome = res->outcome;
  r->has_ref = res->store_ref != NULL;
  snprintf(r->ref, sizeof(r->ref), "%s", res->store_ref ? res->store_ref : "");
  snprintf(r->detail, sizeof(r->detail), "%s", res->detail ? res->detail : "");
}

static void on_item(const struct kw_inventory_item *it, void *arg) {
  struct rec *r = arg;
  char hex[2 * KW_FP_LEN + 1] = "";
  const char *fields[] = {it->ref, it->name, it->group, it->created, it->permission, it->prefix};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
    log_str(fields[i]);
  if (it->fp != NULL)
    kw_fingerprint_hex(it->fp, hex);
  assert_string_equal(it->store, r->store);
  json_t *o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "ref", it->ref, "name",
                        it->name, "group", it->group, "created", it->created, "permission",
                        it->permission, "prefix", it->prefix, "fp", hex[0] ? hex : NULL);
  assert_non_null(o);
  json_array_append_new(r->items, o);
}

/* A target for the raw key (fingerprint and display prefix computed as keywatch does). */
struct tgt {
  uint8_t fp[KW_FP_LEN];
  char prefix[KW_PREFIX_MAX + 1];
  struct kw_revoke_target t;
};

static void target_for(struct fix *f, struct tgt *g, const char *key, const char *store_ref) {
  memset(g, 0, sizeof(*g));
  kw_fingerprint_key(f->fpr, key, strlen(key), g->fp);
  kw_fingerprint_prefix(key, strlen(key), 7, g->prefix);
  g->t = (struct kw_revoke_target){.id = 42, .action = "revoke", .prefix = g->prefix,
                                   .fp = g->fp, .store_ref = store_ref, .rule = "leaked-key"};
}

/* One attempt, waited for: done exactly once, never from inside revoke(). */
static void revoke_wait(struct fix *f, struct kw_keystore *ks, const struct kw_revoke_target *t,
                        struct rec *r) {
  int rc;
  memset(r, 0, sizeof(*r));
  r->store = ks->cfg->name;
  rc = ks->ops->revoke(ks->ctx, t, on_call, on_done, r);
  if (rc != 0)
    fail_msg("revoke: %s", kw_strerror(rc));
  assert_int_equal(r->done, 0);
  assert_int_equal(r->ncalls, 0);
  if (!run_until(&f->loop, &r->done, 1, WAIT_MS))
    fail_msg("no result within %d ms", WAIT_MS);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(r->done, 1);
  assert_int_equal(r->calls_after_done, 0);
}

static void list_wait(struct fix *f, struct kw_keystore *ks, struct rec *r) {
  int rc;
  memset(r, 0, sizeof(*r));
  r->store = ks->cfg->name;
  r->items = json_array();
  rc = ks->ops->list(ks->ctx, on_item, on_call, on_done, r);
  if (rc != 0)
    fail_msg("list: %s", kw_strerror(rc));
  assert_int_equal(r->done, 0);
  assert_true(run_until(&f->loop, &r->done, 1, WAIT_MS));
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(r->done, 1);
  assert_int_equal(r->calls_after_done, 0);
}

static void expect_call(const struct rec *r, int i, const char *request, const char *result,
                        int status) {
  assert_true(i < r->ncalls);
  if (strcmp(r->calls[i].request, request) != 0 || strcmp(r->calls[i].result, result) != 0 ||
      r->calls[i].status != status)
    fail_msg("call %d: got \"%s\" %s %d (%s), want \"%s\" %s %d", i, r->calls[i].request,
             r->calls[i].result, r->calls[i].status, r->calls[i].detail, request, result,
             status);
}

static void expect_outcome(const struct rec *r, enum kw_revoke_outcome o) {
  if (r->outcome != o)
    fail_msg("outcome %s (%s), want %s", kw_revoke_outcome_name(r->outcome), r->detail,
             kw_revoke_outcome_name(o));
}

static json_t *item_by_ref(json_t *items, const char *ref) {
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it) {
    if (strcmp(json_string_value(json_object_get(it, "ref")), ref) == 0)
      return it;
  }
  fail_msg("no inventory item %s", ref);
  return NULL;
}

static const char *fp_hex(struct fix *f, const char *key, char out[2 * KW_FP_LEN + 1]) {
  uint8_t fp[KW_FP_LEN];
  kw_fingerprint_key(f->fpr, key, strlen(key), fp);
  return kw_fingerprint_hex(fp, out);
}

/* ---- opening stores ----------------------------------------------------------------------- */

static void expect_open_error(struct fix *f, const char *yaml, const char *want1,
                              const char *want2, const char *never) {
  char err[512] = "";
  struct kw_keystore ks;
  fix_load(f, yaml);
  assert_int_not_equal(kw_keystore_open(&f->env, f->cfg, 0, &ks, err, sizeof(err)), 0);
  if (strstr(err, want1) == NULL || (want2 && strstr(err, want2) == NULL))
    fail_msg("error \"%s\" does not name %s / %s", err, want1, want2 ? want2 : "-");
  if (never != NULL && strstr(err, never) != NULL)
    fail_msg("error \"%s\" holds the secret", err);
  kw_config_destroy(f->cfg);
  f->cfg = NULL;
}

static void test_open_errors(void **state) {
  struct fix f;
  char path[160], yaml[1024], err[512];
  const char *key = "mb_FileKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  FILE *fh;
  (void)state;
  fix_init(&f);
  secret_add(key);

  /* a credential file that group or others may read */
  path_in(path, sizeof(path), "admin.key");
  fh = fopen(path, "w");
  assert_non_null(fh);
  fprintf(fh, "%s\n", key);
  fclose(fh);
  assert_int_equal(chmod(path, 0644), 0);
  snprintf(yaml, sizeof(yaml),
           "responder:\n"
           "  stores:\n"
           "    - type: metabase\n"
           "      url: http://127.0.0.1:9\n"
           "      credential: {file: %s}\n",
           path);
  expect_open_error(&f, yaml, "responder.stores.0.credential.file", "chmod 600", key);
  /* 0600: opens, and the same store closes */
  assert_int_equal(chmod(path, 0600), 0);
  fix_load(&f, yaml);
  if (kw_keystore_open(&f.env, f.cfg, 0, &f.ks[0], err, sizeof(err)) != 0)
    fail_msg("%s", err);
  f.nks = 1;
  assert_true(f.ks[0].ops->owns_key(f.ks[0].ctx, NULL, "mb_FileKeyA"));

  /* a missing variable is named */
  unsetenv("KW_TEST_NO_SUCH_VAR");
  struct fix g;
  fix_init(&g);
  expect_open_error(&g,
                    "responder:\n"
                    "  stores:\n"
                    "    - type: seatable\n"
                    "      url: http://127.0.0.1:9\n"
                    "      credential: {env: KW_TEST_NO_SUCH_VAR}\n"
                    "      bases: [{workspace_id: 1, base_name: CRM}]\n",
                    "responder.stores.0.credential.env", "KW_TEST_NO_SUCH_VAR", NULL);
  /* seatable needs a credential; kong does not */
  expect_open_error(&g,
                    "responder:\n"
                    "  stores:\n"
                    "    - type: seatable\n"
                    "      url: http://127.0.0.1:9\n"
                    "      bases: [{workspace_id: 1, base_name: CRM}]\n",
                    "responder.stores.0.credential", "account token", NULL);
  /* an unknown placeholder in a command's argv */
  expect_open_error(&g,
                    "responder:\n"
                    "  stores:\n"
                    "    - type: command\n"
                    "      argv: [/bin/true, '--key=${key_fingerprint}', '${key_secret}']\n",
                    "responder.stores.0.argv.2", "${key_secret}", NULL);
  fix_config(&g, "responder:\n"
                 "  stores:\n"
                 "    - type: kong\n"
                 "      url: http://127.0.0.1:9/\n");
  assert_false(g.ks[0].ops->owns_key(g.ks[0].ctx, (const uint8_t *)"0123456789abcdef", ""));
  fix_finish(&g);
  fix_finish(&f);
}

/* ---- metabase ------------------------------------------------------------------------------ */

/* "mb_" + tag (4 chars) + 39 filler + "=": the generated key shape. */
static void mb_key(char out[48], const char *tag, char fill) {
  snprintf(out, 48, "mb_%.4s", tag);
  for (int i = 7; i < 46; i++)
    out[i] = (char)(fill + (i % 7));
  out[46] = '=';
  out[47] = '\0';
}

static void test_metabase(void **state) {
  struct fix f;
  struct rec r;
  struct tgt t;
  char k_etl[48], k_bi[48], k_spare[48], k_admin[48], k_bad[48], yaml[2048], hdr[128];
  json_t *st;
  (void)state;

  mb_key(k_etl, "Etl1", 'a');
  mb_key(k_bi, "BiBi", 'b');
  mb_key(k_spare, "Spar", 'c');
  mb_key(k_admin, "Admi", 'd');
  mb_key(k_bad, "Nope", 'e');
  secret_add(k_etl);
  secret_add(k_bi);
  secret_add(k_spare);
  secret_add(k_admin);
  secret_add(k_bad);
  fix_init(&f);
  st = json_pack("{s:s, s:[{s:i, s:s, s:i, s:s}, {s:i, s:s, s:i, s:s}, {s:i, s:s, s:i, s:s},"
                 " {s:i, s:s, s:i, s:s}], s:i}",
                 "session", "session-token-0123456789", "keys", "id", 1, "name", "etl",
                 "group_id", 3, "key", k_etl, "id", 2, "name", "bi", "group_id", 3, "key", k_bi,
                 "id", 3, "name", "keywatch", "group_id", 2, "key", k_admin, "id", 4, "name",
                 "spare", "group_id", 3, "key", k_spare, "next_id", 5);
  f.port = emu_start("metabase", st, &f.emu);
  json_decref(st);
  setenv("KW_TEST_MB_ADMIN", k_admin, 1);
  setenv("KW_TEST_MB_BAD", k_bad, 1);
  snprintf(yaml, sizeof(yaml),
           "responder:\n"
           "  stores:\n"
           "    - name: mb\n"
           "      type: metabase\n"
           "      url: http://127.0.0.1:%d/\n"
           "      credential: {env: KW_TEST_MB_ADMIN}\n"
           "    - name: mb-regen\n"
           "      type: metabase\n"
           "      action: regenerate\n"
           "      url: http://127.0.0.1:%d\n"
           "      credential: {env: KW_TEST_MB_ADMIN}\n"
           "    - name: mb-bad\n"
           "      type: metabase\n"
           "      url: http://127.0.0.1:%d\n"
           "      credential: {env: KW_TEST_MB_BAD}\n",
           f.port, f.port, f.port);
  fix_config(&f, yaml);
  struct kw_keystore *mb = store(&f, "mb"), *regen = store(&f, "mb-regen");

  /* found by its 7-character prefix, deleted */
  target_for(&f, &t, k_etl, NULL);
  revoke_wait(&f, mb, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, "1");
  assert_int_equal(r.ncalls, 2);
  expect_call(&r, 0, "GET /api/api-key", "ok", 200);
  expect_call(&r, 1, "DELETE /api/api-key/1", "ok", 204);
  st = emu_state(&f);
  assert_int_equal(json_array_size(json_object_get(st, "keys")), 3);
  assert_int_equal(json_integer_value(json_object_get(
                       json_array_get(json_object_get(st, "deleted"), 0), "id")),
                   1);
  json_decref(st);
  /* the deleted key is refused by the business API; a live one is not */
  snprintf(hdr, sizeof(hdr), "X-API-Key: %s", k_etl);
  assert_int_equal(emu_http(&f, "GET", "/api/user/current", NULL, hdr, NULL), 401);
  snprintf(hdr, sizeof(hdr), "X-API-Key: %s", k_spare);
  assert_int_equal(emu_http(&f, "GET", "/api/user/current", NULL, hdr, NULL), 200);

  /* a second attempt: not there any more */
  revoke_wait(&f, mb, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  assert_int_equal(r.ncalls, 1);
  target_for(&f, &t, k_etl, "1");
  revoke_wait(&f, mb, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  expect_call(&r, 0, "DELETE /api/api-key/1", "gone", 404);

  /* regenerate: done, and the new key is nowhere in what the adapter handed out */
  target_for(&f, &t, k_bi, NULL);
  t.t.action = "regenerate"; /* the responder passes the store's action */
  revoke_wait(&f, regen, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_int_equal(r.ncalls, 2);
  expect_call(&r, 1, "PUT /api/api-key/2/regenerate", "ok", 200);
  st = emu_state(&f);
  json_t *rot = json_array_get(json_object_get(st, "rotated"), 0);
  assert_int_equal(json_integer_value(json_object_get(rot, "id")), 2);
  size_t i;
  json_t *k;
  json_array_foreach(json_object_get(st, "keys"), i, k) {
    if (json_integer_value(json_object_get(k, "id")) == 2) {
      const char *nk = json_string_value(json_object_get(k, "key"));
      assert_string_not_equal(nk, k_bi);
      secret_add(nk); /* checked against every logged string at teardown */
      assert_null(strstr(r.detail, nk));
    }
  }
  json_decref(st);
  snprintf(hdr, sizeof(hdr), "X-API-Key: %s", k_bi);
  assert_int_equal(emu_http(&f, "GET", "/api/user/current", NULL, hdr, NULL), 401);

  /* the store answers 503 once: retry, and the retry succeeds */
  emu_fail(&f, "503", 1, "/api/api-key");
  target_for(&f, &t, k_spare, NULL);
  revoke_wait(&f, mb, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_RETRY);
  assert_int_equal(r.ncalls, 1);
  expect_call(&r, 0, "GET /api/api-key", "error", 503);
  assert_non_null(strstr(r.detail, "503"));
  revoke_wait(&f, mb, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, "4");

  /* a refused admin credential: retry, the call says "refused" */
  target_for(&f, &t, k_bi, NULL);
  revoke_wait(&f, store(&f, "mb-bad"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_RETRY);
  expect_call(&r, 0, "GET /api/api-key", "refused", 401);
  assert_non_null(strstr(r.detail, "refused"));

  /* keywatch's own admin key: owned, and never revoked */
  target_for(&f, &t, k_admin, NULL);
  assert_true(mb->ops->owns_key(mb->ctx, t.fp, t.prefix));
  assert_true(mb->ops->owns_key(mb->ctx, NULL, "mb_Admi"));
  target_for(&f, &t, k_bi, NULL);
  assert_false(mb->ops->owns_key(mb->ctx, t.fp, t.prefix));
  assert_false(store(&f, "mb-bad")->ops->owns_key(store(&f, "mb-bad")->ctx, NULL, "mb_Admi"));
  target_for(&f, &t, k_admin, NULL);
  memset(&r, 0, sizeof(r));
  r.store = "mb";
  assert_int_equal(mb->ops->revoke(mb->ctx, &t.t, on_call, on_done, &r), KW_EINVAL);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  assert_int_equal(r.done, 0);

  fix_finish(&f);
}

/* ---- seatable ------------------------------------------------------------------------------ */

static void hex40(char out[41], unsigned seed) {
  static const char hx[] = "0123456789abcdef";
  for (int i = 0; i < 40; i++)
    out[i] = hx[(seed * 7 + (unsigned)i * 13 + (unsigned)(i * i)) % 16];
  out[40] = '\0';
}

static void test_seatable(void **state) {
  struct fix f;
  struct rec r;
  struct tgt t;
  char acc[41], adm[41], ta[41], tb[41], tc[41], td[41], te[41], yaml[3072], hex[33];
  json_t *st;
  (void)state;

  hex40(acc, 1);
  hex40(adm, 2);
  hex40(ta, 3);
  hex40(tb, 4);
  hex40(tc, 5);
  hex40(td, 6);
  hex40(te, 9);
  const char *all[] = {acc, adm, ta, tb, tc, td, te};
  for (size_t i = 0; i < 7; i++)
    secret_add(all[i]);
  fix_init(&f);
  st = json_pack("{s:s, s:s, s:["
                 "{s:i, s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}]},"
                 "{s:i, s:s, s:s, s:[{s:s, s:s, s:s}]}]}",
                 "account_token", acc, "admin_token", adm, "bases",
                 "workspace_id", 1, "base_name", "CRM", "dtable_uuid",
                 "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "tokens",
                 "app_name", "etl", "api_token", ta, "permission", "rw",
                 "app_name", "bi", "api_token", tb, "permission", "r",
                 "app_name", "reports", "api_token", td, "permission", "rw",
                 "workspace_id", 2, "base_name", "Ops Base", "dtable_uuid",
                 "ffeeddccbbaa99887766554433221100", "tokens",
                 "app_name", "ops/nightly", "api_token", tc, "permission", "rw");
  assert_non_null(st);
  f.port = emu_start("seatable", st, &f.emu);
  json_decref(st);
  setenv("KW_TEST_ST_ACC", acc, 1);
  setenv("KW_TEST_ST_ADM", adm, 1);
  snprintf(yaml, sizeof(yaml),
           "responder:\n"
           "  stores:\n"
           "    - name: st\n"
           "      type: seatable\n"
           "      url: http://127.0.0.1:%d\n"
           "      credential: {env: KW_TEST_ST_ACC}\n"
           "      bases:\n"
           "        - {workspace_id: 1, base_name: CRM}\n"
           "        - {workspace_id: 2, base_name: Ops Base}\n"
           "    - name: st-missing\n"
           "      type: seatable\n"
           "      url: http://127.0.0.1:%d\n"
           "      credential: {env: KW_TEST_ST_ACC}\n"
           "      bases:\n"
           "        - {workspace_id: 9, base_name: Nope}\n"
           "        - {workspace_id: 1, base_name: CRM}\n"
           "    - name: st-none\n"
           "      type: seatable\n"
           "      url: http://127.0.0.1:%d\n"
           "      credential: {env: KW_TEST_ST_ACC}\n"
           "      bases: [{workspace_id: 1, base_name: Gone}]\n"
           "    - name: st-admin\n"
           "      type: seatable\n"
           "      url: http://127.0.0.1:%d\n"
           "      system_admin: true\n"
           "      credential: {env: KW_TEST_ST_ADM}\n"
           "      bases:\n"
           "        - {workspace_id: 2, base_name: Ops Base,"
           " dtable_uuid: ffeeddccbbaa99887766554433221100}\n"
           "        - {workspace_id: 1, base_name: CRM,"
           " dtable_uuid: 0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}\n",
           f.port, f.port, f.port, f.port);
  fix_config(&f, yaml);
  struct kw_keystore *s = store(&f, "st");

  /* the inventory: every token of every base, fingerprinted, never in clear */
  list_wait(&f, s, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_int_equal(json_array_size(r.items), 4);
  assert_int_equal(r.ncalls, 2);
  expect_call(&r, 0, "GET /api/v2.1/workspace/1/dtable/CRM/api-tokens/", "ok", 200);
  expect_call(&r, 1, "GET /api/v2.1/workspace/2/dtable/Ops%20Base/api-tokens/", "ok", 200);
  json_t *it = item_by_ref(r.items, "1/CRM/bi");
  assert_string_equal(json_string_value(json_object_get(it, "name")), "bi");
  assert_string_equal(json_string_value(json_object_get(it, "group")), "CRM");
  assert_string_equal(json_string_value(json_object_get(it, "permission")), "r");
  assert_non_null(json_string_value(json_object_get(it, "created")));
  assert_string_equal(json_string_value(json_object_get(it, "fp")), fp_hex(&f, tb, hex));
  char pfx[8];
  snprintf(pfx, sizeof(pfx), "%.7s", tb);
  assert_string_equal(json_string_value(json_object_get(it, "prefix")), pfx);
  it = item_by_ref(r.items, "2/Ops%20Base/ops%2Fnightly");
  assert_string_equal(json_string_value(json_object_get(it, "name")), "ops/nightly");
  assert_string_equal(json_string_value(json_object_get(it, "fp")), fp_hex(&f, tc, hex));
  json_decref(r.items);

  /* found by fingerprint in the second base, deleted by its app_name */
  target_for(&f, &t, tc, NULL);
  revoke_wait(&f, s, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, "2/Ops%20Base/ops%2Fnightly");
  assert_int_equal(r.ncalls, 3);
  expect_call(&r, 2, "DELETE /api/v2.1/workspace/2/dtable/Ops%20Base/api-tokens/ops%2Fnightly/",
              "ok", 200);
  st = emu_state(&f);
  json_t *del = json_array_get(json_object_get(st, "deleted"), 0);
  assert_string_equal(json_string_value(json_object_get(del, "app_name")), "ops/nightly");
  assert_string_equal(json_string_value(json_object_get(del, "by")), "owner");
  json_decref(st);
  /* again: already deleted */
  revoke_wait(&f, s, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  assert_int_equal(r.ncalls, 2);

  /* by the store_ref of an earlier attempt: one call */
  target_for(&f, &t, ta, "1/CRM/etl");
  revoke_wait(&f, s, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_int_equal(r.ncalls, 1);
  expect_call(&r, 0, "DELETE /api/v2.1/workspace/1/dtable/CRM/api-tokens/etl/", "ok", 200);
  revoke_wait(&f, s, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  expect_call(&r, 0, "DELETE /api/v2.1/workspace/1/dtable/CRM/api-tokens/etl/", "gone", 404);
  /* a store_ref that is not ours is refused */
  target_for(&f, &t, ta, "1/../etl?x");
  memset(&r, 0, sizeof(r));
  assert_int_equal(s->ops->revoke(s->ctx, &t.t, on_call, on_done, &r), KW_EINVAL);

  /* a configured base that does not exist is skipped; the key is found in the next */
  target_for(&f, &t, tb, NULL);
  revoke_wait(&f, store(&f, "st-missing"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, "1/CRM/bi");
  assert_int_equal(r.ncalls, 3);
  expect_call(&r, 0, "GET /api/v2.1/workspace/9/dtable/Nope/api-tokens/", "error", 404);
  /* a key in no base: gone, though one base is missing */
  target_for(&f, &t, te, NULL);
  revoke_wait(&f, store(&f, "st-missing"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  assert_non_null(strstr(r.detail, "do not exist"));
  /* no configured base exists: a configuration mistake, not a deletion */
  revoke_wait(&f, store(&f, "st-none"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_FAIL);
  /* a base that cannot be listed (503): retry, even though the key was not seen */
  emu_fail(&f, "503", 1, "/api/v2.1/workspace/2/");
  revoke_wait(&f, s, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_RETRY);
  expect_call(&r, 1, "GET /api/v2.1/workspace/2/dtable/Ops%20Base/api-tokens/", "error", 503);

  /* system admin: the token is in the DELETE's URL, never in its summary */
  target_for(&f, &t, td, "1/CRM/reports"); /* a store_ref cannot name the token: looked up */
  revoke_wait(&f, store(&f, "st-admin"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, "1/CRM/reports");
  assert_int_equal(r.ncalls, 3);
  expect_call(&r, 0, "GET /api/v2.1/admin/dtables/ffeeddccbbaa99887766554433221100/api-tokens/",
              "ok", 200);
  expect_call(&r, 2,
              "DELETE /api/v2.1/admin/dtables/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
              "/api-tokens/<token>/",
              "ok", 200);
  st = emu_state(&f);
  size_t i;
  json_t *d;
  bool seen = false;
  json_array_foreach(json_object_get(st, "deleted"), i, d) {
    if (strcmp(json_string_value(json_object_get(d, "app_name")), "reports") == 0) {
      assert_string_equal(json_string_value(json_object_get(d, "by")), "admin");
      seen = true;
    }
  }
  assert_true(seen);
  assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(st, "bases"), 0),
                                                   "tokens")),
                   0);
  json_decref(st);
  revoke_wait(&f, store(&f, "st-admin"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);

  /* the account token protects itself */
  target_for(&f, &t, acc, NULL);
  assert_true(s->ops->owns_key(s->ctx, t.fp, t.prefix));
  target_for(&f, &t, tb, NULL);
  assert_false(s->ops->owns_key(s->ctx, t.fp, t.prefix));
  fix_finish(&f);
}

/* ---- kong ------------------------------------------------------------------------------------ */

#define KONG_CREDS 1001 /* one more than a page */

static void kong_id(char out[37], int i) {
  snprintf(out, 37, "00000000-0000-4000-8000-%012d", i);
}

static void kong_key(char out[33], int i) {
  snprintf(out, 33, "Kk%030d", i * 7919 + 17);
}

static void test_kong(void **state) {
  struct fix f;
  struct rec r;
  struct tgt t;
  char yaml[1024], id[37], key[33], hex[33], adm[] = "kong-admin-token-5f1e2d3c4b5a6978";
  const char *consumer = "c0000000-0000-4000-8000-000000000001";
  json_t *st, *creds = json_array();
  (void)state;

  fix_init(&f);
  for (int i = 0; i < KONG_CREDS; i++) {
    kong_id(id, i);
    kong_key(key, i);
    json_array_append_new(creds, json_pack("{s:s, s:s, s:s, s:i}", "id", id, "key", key,
                                           "consumer_id", consumer, "created_at",
                                           1767225600 + i));
  }
  kong_key(key, KONG_CREDS - 1);
  secret_add(key);
  kong_key(key, 5);
  secret_add(key);
  kong_key(key, 7);
  secret_add(key);
  secret_add(adm);
  st = json_pack("{s:s, s:[{s:s, s:s}], s:o}", "admin_token", adm, "consumers", "id", consumer,
                 "username", "alice", "key_auths", creds);
  assert_non_null(st);
  f.port = emu_start("kong", st, &f.emu);
  json_decref(st);
  setenv("KW_TEST_KONG_ADMIN", adm, 1);
  snprintf(yaml, sizeof(yaml),
           "responder:\n"
           "  stores:\n"
           "    - name: kong\n"
           "      type: kong\n"
           "      url: http://127.0.0.1:%d\n"
           "      credential: {env: KW_TEST_KONG_ADMIN}\n"
           "    - name: kong-anon\n"
           "      type: kong\n"
           "      url: http://127.0.0.1:%d\n",
           f.port, f.port);
  fix_config(&f, yaml);
  struct kw_keystore *k = store(&f, "kong");

  /* the inventory spans two pages */
  list_wait(&f, k, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_int_equal(json_array_size(r.items), KONG_CREDS);
  assert_int_equal(r.ncalls, 2);
  expect_call(&r, 0, "GET /key-auths?size=1000", "ok", 200);
  expect_call(&r, 1, "GET /key-auths?size=1000 (page 2)", "ok", 200);
  kong_id(id, 7);
  kong_key(key, 7);
  json_t *it = item_by_ref(r.items, id);
  assert_string_equal(json_string_value(json_object_get(it, "group")), consumer);
  assert_string_equal(json_string_value(json_object_get(it, "created")), "2026-01-01T00:00:07Z");
  assert_string_equal(json_string_value(json_object_get(it, "fp")), fp_hex(&f, key, hex));
  char pfx[8];
  snprintf(pfx, sizeof(pfx), "%.7s", key);
  assert_string_equal(json_string_value(json_object_get(it, "prefix")), pfx);
  json_decref(r.items);

  /* the target is on the last page */
  kong_id(id, KONG_CREDS - 1);
  kong_key(key, KONG_CREDS - 1);
  target_for(&f, &t, key, NULL);
  revoke_wait(&f, k, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, id);
  assert_int_equal(r.ncalls, 3);
  char want[96];
  snprintf(want, sizeof(want), "DELETE /key-auths/%s", id);
  expect_call(&r, 2, want, "ok", 204);
  st = emu_state(&f);
  assert_int_equal(json_array_size(json_object_get(st, "key_auths")), KONG_CREDS - 1);
  assert_string_equal(json_string_value(json_object_get(
                          json_array_get(json_object_get(st, "deleted"), 0), "id")),
                      id);
  json_decref(st);
  /* the revoked key is refused by the proxy; another is not */
  char hdr[64];
  snprintf(hdr, sizeof(hdr), "apikey: %s", key);
  assert_int_equal(emu_http(&f, "GET", "/anything", NULL, hdr, NULL), 401);
  kong_key(key, 3);
  snprintf(hdr, sizeof(hdr), "apikey: %s", key);
  assert_int_equal(emu_http(&f, "GET", "/anything", NULL, hdr, NULL), 200);

  /* with the store_ref of the deleted credential: 404 → gone */
  target_for(&f, &t, "unused", id);
  revoke_wait(&f, k, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  expect_call(&r, 0, want, "gone", 404);
  /* looked up again: on no page any more */
  kong_key(key, KONG_CREDS - 1);
  target_for(&f, &t, key, NULL);
  revoke_wait(&f, k, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  assert_int_equal(r.ncalls, 1); /* 1000 left: one page */

  /* keywatch fingerprinted the credential id from Kong's logs */
  kong_id(id, 5);
  target_for(&f, &t, id, NULL);
  revoke_wait(&f, k, &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, id);
  assert_int_equal(r.ncalls, 2);

  /* without the admin token: refused, retry */
  kong_key(key, 7);
  target_for(&f, &t, key, NULL);
  revoke_wait(&f, store(&f, "kong-anon"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_RETRY);
  expect_call(&r, 0, "GET /key-auths?size=1000", "refused", 401);

  /* a key never went into a URL: the emulator's request log */
  json_t *log = NULL, *e;
  size_t i;
  assert_int_equal(emu_http(&f, "GET", "/_emu/requests", NULL, NULL, &log), 200);
  assert_true(json_array_size(log) >= 8);
  json_array_foreach(log, i, e) {
    const char *p = json_string_value(json_object_get(e, "path"));
    const char *q = json_string_value(json_object_get(e, "query"));
    if (strncmp(p, "/anything", 9) == 0)
      continue;
    for (int j = 0; j < KONG_CREDS; j++) {
      kong_key(key, j);
      assert_null(strstr(p, key));
      assert_null(q ? strstr(q, key) : NULL);
    }
  }
  json_decref(log);
  fix_finish(&f);
}

/* ---- command --------------------------------------------------------------------------------- */

static void write_script(const char *path) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  /* $1: what to do; the other arguments are written one per line to $0.out; the
   * environment's KEYWATCH_SECRET (which must not reach it) on the last line. */
  fputs("#!/bin/sh\n"
        "mode=$1\n"
        "shift\n"
        "{ for a in \"$@\"; do printf '%s\\n' \"$a\"; done\n"
        "  printf 'secret=%s\\n' \"${KEYWATCH_SECRET:-unset}\"; } > \"$0.out.tmp\"\n"
        "mv \"$0.out.tmp\" \"$0.out\"\n"
        "case $mode in\n"
        "  ok) exit 0 ;;\n"
        "  gone) exit 3 ;;\n"
        "  fail) exit 1 ;;\n"
        "  sleep) sleep 30 & echo $! > \"$0.child\"; wait ;;\n"
        "esac\n"
        "exit 9\n",
        f);
  fclose(f);
  assert_int_equal(chmod(path, 0700), 0);
}

static bool pid_alive(pid_t pid) {
  char path[64], buf[256] = "";
  FILE *f;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  if ((f = fopen(path, "r")) == NULL)
    return false;
  if (fgets(buf, sizeof(buf), f) == NULL)
    buf[0] = '\0';
  fclose(f);
  const char *p = strrchr(buf, ')');
  return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X'; /* a zombie is dead */
}

static void test_command(void **state) {
  struct fix f;
  struct rec r;
  struct tgt t;
  char script[160], out[160], child[160], yaml[2048], hex[33];
  (void)state;

  path_in(script, sizeof(script), "revoke.sh");
  snprintf(out, sizeof(out), "%s.out", script);
  snprintf(child, sizeof(child), "%s.child", script);
  write_script(script);
  setenv(KW_SECRET_ENV, "the-fingerprint-secret-must-not-reach-commands", 1);
  secret_add("the-fingerprint-secret-must-not-reach-commands");
  fix_init(&f);
  snprintf(yaml, sizeof(yaml),
           "responder:\n"
           "  stores:\n"
           "    - name: cmd-ok\n"
           "      type: command\n"
           "      argv: [%s, ok, '${action}', 'fp=${key_fingerprint}', '${key_prefix}',"
           " 'id=${key_id}', '${rule}', 'rev-${revocation_id}', '$(touch pwned) ${x'"
           "]\n"
           "    - name: cmd-gone\n"
           "      type: command\n"
           "      argv: [%s, gone]\n"
           "      gone_exit: [3, 4]\n"
           "    - name: cmd-fail\n"
           "      type: command\n"
           "      argv: [%s, fail]\n"
           "      gone_exit: [3]\n"
           "    - name: cmd-slow\n"
           "      type: command\n"
           "      argv: [%s, sleep]\n"
           "      timeout: 300ms\n"
           "    - name: cmd-missing\n"
           "      type: command\n"
           "      argv: [%s/no-such-program, x]\n",
           script, script, script, script, g_dir);
  fix_config(&f, yaml);

  /* exit 0: done; the placeholders expanded literally, one argument each, no shell */
  const char *raw = "sk_live_\"quoted\" $(rm -rf /) ;|&";
  secret_add(raw);
  target_for(&f, &t, raw, NULL);
  t.t.prefix = "sk 'li\"ve";
  revoke_wait(&f, store(&f, "cmd-ok"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_int_equal(r.ncalls, 1);
  expect_call(&r, 0, "exec revoke.sh (8 args)", "ok", 0);
  assert_false(r.has_ref);
  size_t len;
  char *got = read_file(out, &len), want[1024];
  snprintf(want, sizeof(want),
           "revoke\nfp=%s\nsk 'li\"ve\nid=\nleaked-key\nrev-42\n$(touch pwned) ${x\n"
           "secret=unset\n",
           kw_fingerprint_hex(t.fp, hex));
  assert_string_equal(got, want);
  free(got);
  char pwned[160];
  path_in(pwned, sizeof(pwned), "pwned");
  assert_int_not_equal(access(pwned, F_OK), 0);
  /* ${key_id} and ${rule} from the target: store_ref passed back */
  t.t.store_ref = "cred-7";
  t.t.rule = NULL;
  revoke_wait(&f, store(&f, "cmd-ok"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_DONE);
  assert_string_equal(r.ref, "cred-7");
  got = read_file(out, &len);
  assert_non_null(strstr(got, "\nid=cred-7\nmanual\n"));
  free(got);

  /* an exit code listed in gone_exit: gone */
  revoke_wait(&f, store(&f, "cmd-gone"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_GONE);
  expect_call(&r, 0, "exec revoke.sh (1 arg)", "gone", 3);
  /* any other: retry */
  revoke_wait(&f, store(&f, "cmd-fail"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_RETRY);
  expect_call(&r, 0, "exec revoke.sh (1 arg)", "error", 1);
  assert_string_equal(r.detail, "exit 1");

  /* beyond the timeout: killed with what it started, retry */
  unlink(child);
  revoke_wait(&f, store(&f, "cmd-slow"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_RETRY);
  expect_call(&r, 0, "exec revoke.sh (1 arg)", "timeout", -SIGKILL);
  assert_non_null(strstr(r.detail, "timed out after 300 ms"));
  got = read_file(child, &len);
  pid_t sleeper = (pid_t)strtol(got, NULL, 10);
  free(got);
  assert_true(sleeper > 0);
  for (int i = 0; i < 200 && pid_alive(sleeper); i++)
    sleep_ms(10);
  assert_false(pid_alive(sleeper));

  /* a program that does not exist: retry, with the error */
  revoke_wait(&f, store(&f, "cmd-missing"), &t.t, &r);
  expect_outcome(&r, KW_REVOKE_RETRY);
  expect_call(&r, 0, "exec no-such-program (1 arg)", "error", UV_ENOENT);
  assert_non_null(strstr(r.detail, "no such file"));

  /* close() while a program runs: it is killed, the attempt ends "canceled", then cb */
  struct kw_keystore *slow = store(&f, "cmd-slow");
  memset(&r, 0, sizeof(r));
  r.store = "cmd-slow";
  unlink(child);
  assert_int_equal(slow->ops->revoke(slow->ctx, &t.t, on_call, on_done, &r), 0);
  for (int i = 0; i < 300 && access(child, F_OK) != 0; i++) {
    uv_run(&f.loop, UV_RUN_NOWAIT);
    sleep_ms(5);
  }
  got = read_file(child, &len);
  sleeper = (pid_t)strtol(got, NULL, 10);
  free(got);
  assert_true(sleeper > 0);
  int closed = 0;
  kw_httpc_close(f.http, on_closed, &closed);
  assert_true(run_until(&f.loop, &closed, 1, WAIT_MS));
  closed = 0;
  slow->ops->close(slow->ctx, on_closed, &closed);
  assert_int_equal(r.done, 0);
  assert_true(run_until(&f.loop, &closed, 1, WAIT_MS));
  assert_int_equal(r.done, 1);
  assert_int_equal(r.ncalls, 0);
  expect_outcome(&r, KW_REVOKE_FAIL);
  assert_string_equal(r.detail, "canceled");
  for (int i = 0; i < 200 && pid_alive(sleeper); i++)
    sleep_ms(10);
  assert_false(pid_alive(sleeper));
  /* the others close at once */
  for (unsigned i = 0; i < f.nks; i++) {
    if (&f.ks[i] == slow)
      continue;
    closed = 0;
    f.ks[i].ops->close(f.ks[i].ctx, on_closed, &closed);
    assert_true(run_until(&f.loop, &closed, 1, WAIT_MS));
  }
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f.loop), 0);
  kw_config_destroy(f.cfg);
  kw_fingerprint_destroy(f.fpr);
  unsetenv(KW_SECRET_ENV);
}

/* ---- harness ------------------------------------------------------------------------------------ */

static int test_setup(void **state) {
  (void)state;
  g_log = json_array();
  g_secrets = json_array();
  return 0;
}

static int test_teardown(void **state) {
  int bad;
  (void)state;
  peers_stop_all(&g_peers);
  bad = check_log();
  json_decref(g_log);
  json_decref(g_secrets);
  g_log = g_secrets = NULL;
  return bad ? -1 : 0;
}

static int setup(void **state) {
  (void)state;
  return peer_env_setup(g_dir, sizeof(g_dir), "kwks");
}

static int teardown(void **state) {
  (void)state;
  return peer_env_teardown(&g_peers, g_dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_errors, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_metabase, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_seatable, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_kong, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_command, test_setup, test_teardown),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
