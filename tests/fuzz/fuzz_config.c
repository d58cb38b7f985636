/* fuzz_config.c — libFuzzer harness for the YAML configuration loader (sidecar/config.c,
 * sidecar/yamlfile.c) and what consumes a loaded configuration first.
 *
 * Input: a keywatch.yaml.  It is written to one temporary file (created at start, removed
 * at exit) and loaded with kw_config_load(), as `keywatch --config FILE` does.
 * On success, asserted (config.h): every default is filled in (db, identity lists,
 * prefix_length 1..16, ingest.format/escape, run.*, rules, names of sources and sinks);
 * then the configuration is used the way the daemon does: kw_keyid_create() + apply on a
 * record with a key in each carrier, kw_format_create() for a format other than "auto"
 * (which may fail, with a message: format names are checked by the commands, not by load),
 * and kw_config_error() for fields of the file (it walks the YAML again to find the line).
 * On failure: KW_ECONFIG or KW_ENOMEM, no object, and a message that names the file.
 * kw_yaml_locate() also walks the input in memory for a few dotted paths.
 *
 * Build: cmake -S . -B build-fuzz -DKW_FUZZ=ON -DCMAKE_C_COMPILER=clang && \
 *        cmake --build build-fuzz --target fuzz_config   (links kwcollector, kwanalyzer and
 *        kwcore; scripts/fuzz.sh does this for every harness)
 * Run:   mkdir -p /tmp/config_corpus && build-fuzz/fuzz_config \
 *          -dict=tests/fuzz/fuzz_config.dict /tmp/config_corpus tests/fuzz/corpus/fuzz_config
 *        (new units go to the first directory, the seeds stay as they are)
 * Thread: libFuzzer's, single.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/format.h"
#include "collector/keyid.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"
#include "sidecar/yamlfile.h"

#define SECRET "keywatch-fuzz-secret-0123456789abcdef"

static char path[256];
static int fd = -1;
static struct kw_fingerprint *fp;

static void cleanup(void) {
  if (fd >= 0)
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("TMPDIR");
  (void)argc;
  (void)argv;
  snprintf(path, sizeof(path), "%s/kw_fuzz_config.XXXXXX.yaml", dir && *dir ? dir : "/tmp");
  if ((fd = mkstemps(path, 5)) < 0 ||
      kw_fingerprint_create_from(SECRET, strlen(SECRET), &fp) != 0)
    abort();
  atexit(cleanup);
  return 0;
}

static void write_input(const uint8_t *data, size_t size) {
  if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
    abort();
}

static void check_msg(const char *err, size_t errlen) {
  if (memchr(err, '\0', errlen) == NULL || err[0] == '\0')
    abort();
}

static void check_defaults(const struct kw_config *c) {
  const struct kw_identity_cfg *id = &c->identity;
  if (c->file == NULL || strcmp(c->file, path) != 0 || c->db == NULL)
    abort();
  if (id->headers == NULL || id->auth_schemes == NULL || id->query_params == NULL ||
      id->redact_params == NULL || id->prefix_length < 1 || id->prefix_length > 16)
    abort();
  if (c->ingest.format == NULL || c->ingest.escape == NULL || c->ingest.batch_rows == 0 ||
      c->ingest.batch_rows > 1000000 || c->run.commit_ms == 0 || c->run.poll_ms == 0 ||
      c->run.log_level == NULL || c->rules == NULL || c->rules_count == 0)
    abort();
  for (unsigned i = 0; i < c->sources_count; i++)
    if (c->sources[i].type == NULL || c->sources[i].name == NULL ||
        c->sources[i].start_at == NULL)
      abort();
  for (unsigned i = 0; i < c->sinks_count; i++)
    if (c->sinks[i].type == NULL || c->sinks[i].name == NULL ||
        c->sinks[i].min_severity == NULL || c->sinks[i].timeout_ms == 0)
      abort();
  for (unsigned i = 0; i < c->keys_count; i++)
    if (c->keys[i].name == NULL ||
        (c->keys[i].fingerprint == NULL && c->keys[i].prefix == NULL))
      abort();
}

/* The configured identity on a record that carries a key in every place it may. */
static void use_identity(const struct kw_config *c) {
  static const char uri[] = "/api/x?api_key=k3y-in-the-query-0001&key=abc&password=pw";
  static const char ua[] = "agent k3y-in-the-header-00001";
  static const char hk[] = "x-api-key", hv[] = "k3y-in-the-header-00001";
  static const char ak[] = "authorization", av[] = "Bearer k3y-in-the-bearer-0001";
  struct kw_keyid *kid;
  struct kw_rec rec;
  struct kw_call call;

  if (kw_keyid_create(&c->identity, fp, &kid) != 0)
    abort();
  kw_rec_clear(&rec);
  rec.uri = kw_str_make(uri, sizeof(uri) - 1);
  rec.user_agent = kw_str_make(ua, sizeof(ua) - 1);
  kw_rec_add_hdr(&rec, kw_str_make(hk, sizeof(hk) - 1), kw_str_make(hv, sizeof(hv) - 1));
  kw_rec_add_hdr(&rec, kw_str_make(ak, sizeof(ak) - 1), kw_str_make(av, sizeof(av) - 1));
  (void)kw_keyid_apply(kid, &rec, &call);
  if (call.path.n > 0 && memmem(call.path.p, call.path.n, "password=pw", 11) != NULL) {
    for (unsigned i = 0; i < c->identity.redact_params_count; i++)
      if (strcmp(c->identity.redact_params[i], "password") == 0)
        abort(); /* a listed parameter kept its value */
  }
  kw_keyid_destroy(kid);
}

static void use_format(const struct kw_config *c) {
  static const char line[] =
      "10.0.0.1 - - [03/Nov/2025:00:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 15 \"-\" \"ua\"";
  struct kw_format f;
  struct kw_rec rec;
  char err[512];

  if (strcmp(c->ingest.format, "auto") == 0)
    return;
  if (kw_format_create(&c->ingest, c->ingest.format, &f, err, sizeof(err)) != 0) {
    check_msg(err, sizeof(err));
    kw_format_destroy(&f);
    return;
  }
  (void)f.ops->parse(f.ctx, line, sizeof(line) - 1, &rec, err, sizeof(err));
  kw_format_destroy(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const fields[] = {"identity.headers.0", "sources.1.path", "keys.0.name",
                                       "ingest.json.header_fields.2.path", "sinks.0"};
  struct kw_config *c = (struct kw_config *)1;
  char err[512];
  int rc;

  write_input(data, size);
  memset(err, 0, sizeof(err));
  rc = kw_config_load(path, &c, err, sizeof(err));
  if (rc == 0) {
    if (c == NULL)
      abort();
    check_defaults(c);
    use_identity(c);
    use_format(c);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
      if (kw_config_error(c, fields[i], err, sizeof(err), "fuzz %zu", i) != KW_ECONFIG)
        abort();
      if (strncmp(err, path, strlen(path)) != 0)
        abort();
    }
    kw_config_destroy(c);
  } else {
    if (c != NULL || (rc != KW_ECONFIG && rc != KW_ENOMEM))
      abort();
    check_msg(err, sizeof(err));
    if (rc == KW_ECONFIG && strncmp(err, path, strlen(path)) != 0) {
      fprintf(stderr, "fuzz_config: an error that does not name the file: %s\n", err);
      abort();
    }
  }
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
    (void)kw_yaml_locate("fuzz", (const char *)data, size, fields[i]);
  return 0;
}
