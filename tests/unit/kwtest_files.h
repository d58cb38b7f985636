/* kwtest_files.h — files the unit tests make, write and read back (tests only).
 *
 * The temp directory: temp_dir_make() makes a fresh /tmp/TAG.XXXXXX (mkdtemp), and
 * temp_dir_remove() removes it with everything in it (rm -rf); both return 0 or -1, for a
 * cmocka setup/teardown to return.
 *
 * Writing: write_text() writes a string to a file (the test fails if it cannot).
 * config_load_text() and ruleset_load_text() write YAML text to a file and load it as the
 * configuration or as one rule pack; the test fails (with the loader's error) when it does
 * not load.  assert_err_at() checks a config/rule error message: "FILE:LINE:" (or "FILE:"
 * for line 0), " FIELD: " and up to two more strings.
 *
 * Reading: read_file(): a whole file as a NUL-terminated buffer (an empty one when it does
 * not exist).  read_json_lines(): the complete lines of a file written by a receiver or a
 * sink, each parsed as strict JSON (a half-written last line is not a record yet).
 *
 * Everything is static inline: a test uses what it needs, the rest costs nothing.
 * Include after cmocka.h (and the headers it needs: setjmp.h, stdarg.h, stddef.h).
 * Thread: main only.
 */
#ifndef KWTEST_FILES_H
#define KWTEST_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "analyzer/rules.h"
#include "sidecar/config.h"

/* ---- the temp directory ----------------------------------------------------------------- */

/* Makes a fresh directory /tmp/TAG.XXXXXX; its name goes into dir (len bytes). */
static inline int temp_dir_make(char *dir, size_t len, const char *tag) {
  snprintf(dir, len, "/tmp/%s.XXXXXX", tag);
  return mkdtemp(dir) == NULL ? -1 : 0;
}

/* Removes dir and everything in it. */
static inline int temp_dir_remove(const char *dir) {
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- writing ---------------------------------------------------------------------------- */

static inline void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* Writes yaml to path and loads it.  Returns a new config; free with kw_config_destroy(). */
static inline struct kw_config *config_load_text(const char *path, const char *yaml) {
  struct kw_config *c = NULL;
  char err[1024] = "";
  int rc;
  write_text(path, yaml);
  rc = kw_config_load(path, &c, err, sizeof(err));
  if (rc != 0)
    fail_msg("kw_config_load failed (%d): %s\n%s", rc, err, yaml);
  assert_non_null(c);
  return c;
}

/* Writes text to path and loads it as the only rule pack.  Returns a new ruleset; free
 * with kw_ruleset_destroy(). */
static inline struct kw_ruleset *ruleset_load_text(const char *path, const char *text) {
  struct kw_ruleset *rs = NULL;
  char *packs[] = {(char *)path};
  char err[1024] = "";
  int rc;
  write_text(path, text);
  rc = kw_ruleset_load(packs, 1, &rs, err, sizeof(err));
  if (rc != 0)
    fail_msg("load failed (%d): %s", rc, err);
  assert_non_null(rs);
  return rs;
}

/* Checks a config or rule error: starts with "FILE:LINE:" ("FILE:" when line is 0; after
 * it ' ' or a column), names " FIELD: " unless field is NULL, and holds also1 and also2
 * (NULL: not checked). */
static inline void assert_err_at(const char *err, const char *file, unsigned line,
                                 const char *field, const char *also1, const char *also2) {
  char head[256];
  if (line > 0)
    snprintf(head, sizeof(head), "%s:%u:", file, line);
  else
    snprintf(head, sizeof(head), "%s:", file);
  if (strncmp(err, head, strlen(head)) != 0)
    fail_msg("error '%s' does not start with '%s'", err, head);
  if (field != NULL) {
    char f[160];
    snprintf(f, sizeof(f), " %s: ", field);
    if (strstr(err, f) == NULL)
      fail_msg("error '%s' does not name field '%s'", err, field);
  }
  if (also1 != NULL && strstr(err, also1) == NULL)
    fail_msg("error '%s' does not mention '%s'", err, also1);
  if (also2 != NULL && strstr(err, also2) == NULL)
    fail_msg("error '%s' does not mention '%s'", err, also2);
}

/* ---- reading ---------------------------------------------------------------------------- */

static inline char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0;
  if (f == NULL) {
    *len = 0;
    return calloc(1, 1);
  }
  for (;;) {
    if (n + 4097 > cap) {
      cap = (n + 4097) * 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    size_t got = fread(buf + n, 1, 4096, f);
    n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
}

static inline json_t *read_json_lines(const char *path) {
  size_t n;
  char *buf = read_file(path, &n);
  json_t *arr = json_array();
  char *save = NULL, *last_nl = strrchr(buf, '\n');
  if (last_nl != NULL)
    last_nl[1] = '\0';
  else
    buf[0] = '\0';
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (j == NULL)
      fail_msg("%s: not JSON (%s): %s", path, e.text, line);
    json_array_append_new(arr, j);
  }
  free(buf);
  return arr;
}

#endif
