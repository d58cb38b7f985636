/* kwtest_files.h — helpers the loop tests of sinks and the outbox share (tests only).
 *
 * read_file(): a whole file as a NUL-terminated buffer (an empty one when it does not
 * exist).  read_json_lines(): the complete lines of a file written by a receiver or a
 * sink, each parsed as strict JSON (a half-written last line is not a record yet).
 * Include after cmocka.h and jansson.h.
 */
#ifndef KWTEST_FILES_H
#define KWTEST_FILES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *len) {
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

static json_t *read_json_lines(const char *path) {
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
