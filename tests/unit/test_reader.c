/* test_reader.c — the chunked line reader (collector/reader.c).
 *
 * Files are written into a fresh mkdtemp directory; pipes stand in for stdin (a forked
 * child writes large inputs in small pieces, so reads come back short).  Thread: main
 * only (plus the forked writer process).
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
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "collector/reader.h"
#include "sidecar/err.h"

#include "kwtest_files.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state) {
  (void)state;
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwreader") != 0)
    return -1;
  snprintf(g_path, sizeof(g_path), "%s/access.log", g_dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return temp_dir_remove(g_dir);
}

static void write_file(const char *data, size_t n) {
  FILE *f = fopen(g_path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static struct kw_reader *open_file(void) {
  struct kw_reader *r = NULL;
  char err[256] = "";
  int rc = kw_reader_open(g_path, &r, err, sizeof(err));
  if (rc != 0)
    fail_msg("open: %d %s", rc, err);
  assert_non_null(r);
  return r;
}

static void expect_line(struct kw_reader *r, const char *want, size_t wantlen,
                        uint64_t lineno) {
  const char *line = NULL;
  size_t len = 12345;
  int rc = kw_reader_next(r, &line, &len);
  if (rc != 1)
    fail_msg("line %llu: rc %d", (unsigned long long)lineno, rc);
  if (len != wantlen || memcmp(line, want, len) != 0)
    fail_msg("line %llu: got %zu bytes '%.*s', want '%.*s'", (unsigned long long)lineno,
             len, (int)(len < 80 ? len : 80), line, (int)(wantlen < 80 ? wantlen : 80),
             want);
  assert_int_equal(kw_reader_lineno(r), lineno);
}

#define EXPECT(r, s, no) expect_line(r, s, sizeof(s) - 1, no)

static void expect_eof(struct kw_reader *r) {
  const char *line;
  size_t len;
  assert_int_equal(kw_reader_next(r, &line, &len), 0);
  assert_int_equal(kw_reader_next(r, &line, &len), 0); /* and stays there */
}

static void test_lines(void **state) {
  static const char data[] = "one\ntwo\r\n\nfour\r\n\r\nsix";
  struct kw_reader *r;
  (void)state;

  write_file(data, sizeof(data) - 1);
  r = open_file();
  assert_int_equal(kw_reader_size(r), sizeof(data) - 1);
  assert_string_equal(kw_reader_name(r), g_path);
  EXPECT(r, "one", 1);
  assert_int_equal(kw_reader_offset(r), 4);
  EXPECT(r, "two", 2); /* CR dropped */
  assert_int_equal(kw_reader_offset(r), 9);
  EXPECT(r, "", 3);
  EXPECT(r, "four", 4);
  EXPECT(r, "", 5);
  EXPECT(r, "six", 6); /* last line without newline */
  assert_int_equal(kw_reader_offset(r), sizeof(data) - 1);
  expect_eof(r);
  assert_int_equal(kw_reader_lineno(r), 6);
  kw_reader_close(r);
}

static void test_trailing_newline_and_cr(void **state) {
  struct kw_reader *r;
  (void)state;

  write_file("a\nb\n", 4);
  r = open_file();
  EXPECT(r, "a", 1);
  EXPECT(r, "b", 2);
  expect_eof(r); /* no empty third line */
  kw_reader_close(r);

  write_file("a\r", 2); /* a lone CR at the end of the last line is dropped too */
  r = open_file();
  EXPECT(r, "a", 1);
  expect_eof(r);
  kw_reader_close(r);

  write_file("a\rb\n", 4); /* a CR inside a line is kept */
  r = open_file();
  EXPECT(r, "a\rb", 1);
  kw_reader_close(r);

  write_file("", 0);
  r = open_file();
  assert_int_equal(kw_reader_size(r), 0);
  expect_eof(r);
  assert_int_equal(kw_reader_lineno(r), 0);
  kw_reader_close(r);
}

static void test_nul_bytes(void **state) {
  static const char data[] = "a\0b\nc\0\0\n\0";
  struct kw_reader *r;
  (void)state;

  write_file(data, sizeof(data) - 1);
  r = open_file();
  expect_line(r, "a\0b", 3, 1);
  expect_line(r, "c\0\0", 3, 2);
  expect_line(r, "\0", 1, 3);
  expect_eof(r);
  kw_reader_close(r);
}

/* A 70000-byte line is reported once as KW_ETOOLONG with its line number; the next line
 * is read normally. */
static void test_overlong_line(void **state) {
  const size_t big = 70000;
  char *data = malloc(2 * big + 100);
  struct kw_reader *r;
  const char *line;
  size_t len, o = 0;
  (void)state;

  assert_non_null(data);
  o += (size_t)snprintf(data + o, 100, "first\n");
  memset(data + o, 'x', big);
  o += big;
  o += (size_t)snprintf(data + o, 100, "\nafter\nlast");
  write_file(data, o);
  r = open_file();
  EXPECT(r, "first", 1);
  assert_int_equal(kw_reader_next(r, &line, &len), KW_ETOOLONG);
  assert_int_equal(kw_reader_lineno(r), 2);
  EXPECT(r, "after", 3);
  assert_int_equal(kw_reader_offset(r), 6 + big + 1 + 6);
  EXPECT(r, "last", 4);
  expect_eof(r);
  assert_int_equal(kw_reader_offset(r), o);
  kw_reader_close(r);

  /* overlong as the last line, without a newline: once, then EOF */
  o = (size_t)snprintf(data, 100, "a\n");
  memset(data + o, 'y', big);
  o += big;
  write_file(data, o);
  r = open_file();
  EXPECT(r, "a", 1);
  assert_int_equal(kw_reader_next(r, &line, &len), KW_ETOOLONG);
  assert_int_equal(kw_reader_lineno(r), 2);
  expect_eof(r);
  kw_reader_close(r);

  /* two overlong lines in a row are two errors, each with its own number */
  o = 0;
  for (int k = 0; k < 2; k++) {
    memset(data + o, 'z', big);
    o += big;
    data[o++] = '\n';
  }
  memcpy(data + o, "ok\n", 3);
  o += 3;
  write_file(data, o);
  r = open_file();
  assert_int_equal(kw_reader_next(r, &line, &len), KW_ETOOLONG);
  assert_int_equal(kw_reader_lineno(r), 1);
  assert_int_equal(kw_reader_next(r, &line, &len), KW_ETOOLONG);
  assert_int_equal(kw_reader_lineno(r), 2);
  EXPECT(r, "ok", 3);
  expect_eof(r);
  kw_reader_close(r);
  free(data);
}

static void test_line_max_boundary(void **state) {
  char *data = malloc(2 * KW_LINE_MAX + 10);
  struct kw_reader *r;
  const char *line;
  size_t len, o = 0;
  (void)state;

  assert_non_null(data);
  memset(data, 'm', KW_LINE_MAX); /* exactly KW_LINE_MAX: a line */
  o = KW_LINE_MAX;
  data[o++] = '\n';
  memset(data + o, 'n', KW_LINE_MAX + 1); /* one more: too long */
  o += KW_LINE_MAX + 1;
  data[o++] = '\n';
  data[o++] = 'e';
  write_file(data, o);
  r = open_file();
  assert_int_equal(kw_reader_next(r, &line, &len), 1);
  assert_int_equal(len, KW_LINE_MAX);
  assert_int_equal(line[0], 'm');
  assert_int_equal(line[KW_LINE_MAX - 1], 'm');
  assert_int_equal(kw_reader_next(r, &line, &len), KW_ETOOLONG);
  assert_int_equal(kw_reader_lineno(r), 2);
  EXPECT(r, "e", 3);
  expect_eof(r);
  kw_reader_close(r);
  free(data);
}

/* Builds line i of a generated log: lengths vary from 0 to ~3000 bytes, so lines fall
 * across every chunk boundary. */
static size_t gen_line(unsigned i, char *out) {
  size_t n = (size_t)((i * 7919u) % 3001u);
  for (size_t k = 0; k < n; k++)
    out[k] = (char)('!' + (i + k) % 90);
  if (n > 12)
    snprintf(out, 12, "%010u", i); /* the line's number at its start */
  return n;
}

static char *gen_log(unsigned nlines, size_t *size, int crlf) {
  char *data = malloc((size_t)nlines * 3003 + 1), line[3100];
  size_t o = 0;
  assert_non_null(data);
  for (unsigned i = 0; i < nlines; i++) {
    size_t n = gen_line(i, line);
    memcpy(data + o, line, n);
    o += n;
    if (crlf && i % 3 == 0)
      data[o++] = '\r';
    data[o++] = '\n';
  }
  *size = o;
  return data;
}

static void check_gen(struct kw_reader *r, unsigned nlines, size_t size) {
  char want[3100];
  for (unsigned i = 0; i < nlines; i++) {
    size_t n = gen_line(i, want);
    expect_line(r, want, n, i + 1);
  }
  expect_eof(r);
  assert_int_equal(kw_reader_offset(r), size);
}

static void test_chunk_boundaries(void **state) {
  const unsigned nlines = 3000; /* about 4.5 MB: several refills */
  size_t size;
  char *data = gen_log(nlines, &size, 1);
  struct kw_reader *r;
  (void)state;

  assert_true(size > 2 * KW_READ_CHUNK + KW_LINE_MAX);
  write_file(data, size);
  free(data);
  r = open_file();
  assert_int_equal(kw_reader_size(r), (int64_t)size);
  check_gen(r, nlines, size);
  kw_reader_close(r);
}

static void test_peek_then_read(void **state) {
  const unsigned nlines = 2000;
  size_t size;
  char *data = gen_log(nlines, &size, 0);
  struct kw_reader *r;
  const char *buf;
  size_t n;
  (void)state;

  write_file(data, size);
  r = open_file();
  n = kw_reader_peek(r, &buf, 4096);
  assert_int_equal(n, 4096);
  assert_memory_equal(buf, data, 4096);
  n = kw_reader_peek(r, &buf, 16); /* again: same bytes, nothing consumed */
  assert_int_equal(n, 16);
  assert_memory_equal(buf, data, 16);
  assert_int_equal(kw_reader_offset(r), 0);
  check_gen(r, nlines, size);
  kw_reader_close(r);

  /* peek more than there is */
  write_file("x\ny", 3);
  r = open_file();
  assert_int_equal(kw_reader_peek(r, &buf, 1000), 3);
  assert_memory_equal(buf, "x\ny", 3);
  EXPECT(r, "x", 1);
  assert_int_equal(kw_reader_peek(r, &buf, 1000), 1); /* what is left */
  assert_int_equal(buf[0], 'y');
  EXPECT(r, "y", 2);
  expect_eof(r);
  kw_reader_close(r);
  free(data);
}

/* A child process writes data to fd in small pieces, then exits. */
static pid_t writer(int fd, const char *data, size_t n, size_t piece) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (size_t o = 0; o < n;) {
      size_t k = n - o < piece ? n - o : piece;
      ssize_t w = write(fd, data + o, k);
      if (w <= 0)
        _exit(1);
      o += (size_t)w;
    }
    _exit(0);
  }
  close(fd);
  return pid;
}

static void test_pipe(void **state) {
  int fds[2], status;
  struct kw_reader *r = NULL;
  const char *buf;
  size_t size;
  pid_t pid;
  const unsigned nlines = 1500;
  char *data = gen_log(nlines, &size, 1);
  (void)state;

  /* small input: written and closed before reading */
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "GET /a\r\nPOST /b", 15), 15);
  close(fds[1]);
  assert_int_equal(kw_reader_fdopen(fds[0], "stdin", &r), 0);
  assert_int_equal(kw_reader_size(r), -1);
  assert_string_equal(kw_reader_name(r), "stdin");
  EXPECT(r, "GET /a", 1);
  EXPECT(r, "POST /b", 2);
  expect_eof(r);
  kw_reader_close(r); /* closes fds[0] */

  /* large input arriving in 777-byte writes: peek waits for what it asked for */
  assert_int_equal(pipe(fds), 0);
  pid = writer(fds[1], data, size, 777);
  assert_int_equal(kw_reader_fdopen(fds[0], "stdin", &r), 0);
  assert_int_equal(kw_reader_peek(r, &buf, 5000), 5000);
  assert_memory_equal(buf, data, 5000);
  check_gen(r, nlines, size);
  kw_reader_close(r);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  free(data);
}

static void test_open_errors(void **state) {
  struct kw_reader *r = (struct kw_reader *)1;
  char err[256] = "", missing[160];
  (void)state;

  assert_int_equal(kw_reader_open(g_dir, &r, err, sizeof(err)), -EISDIR);
  assert_null(r);
  assert_non_null(strstr(err, g_dir));
  assert_non_null(strstr(err, "directory"));

  snprintf(missing, sizeof(missing), "%s/nope.log", g_dir);
  err[0] = '\0';
  assert_int_equal(kw_reader_open(missing, &r, err, sizeof(err)), -ENOENT);
  assert_null(r);
  assert_non_null(strstr(err, "cannot open"));
  assert_non_null(strstr(err, missing));

  kw_reader_close(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_trailing_newline_and_cr, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nul_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_overlong_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_line_max_boundary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chunk_boundaries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peek_then_read, setup, teardown),
      cmocka_unit_test(test_pipe),
      cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
