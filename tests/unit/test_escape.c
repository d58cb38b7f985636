/* test_escape.c — JSON and terminal escaping of attacker-controlled text (sidecar/escape.c).
 *
 * Output goes to an open_memstream; inputs are copied into heap buffers of exactly their
 * length, so AddressSanitizer catches reads past n.  Expected outputs are exact strings.
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

#include "sidecar/escape.h"

enum mode { JSON, TERM };

/* Escapes s[0..n) (NULL stays NULL) and returns the output; free it. */
static char *escape(enum mode m, const char *s, size_t n, size_t width) {
  char *out = NULL, *in = NULL;
  size_t outlen = 0;
  FILE *f = open_memstream(&out, &outlen);

  assert_non_null(f);
  if (s != NULL) {
    in = malloc(n ? n : 1);
    assert_non_null(in);
    memcpy(in, s, n);
  }
  if (m == JSON)
    kw_json_str(f, in, n);
  else
    kw_term_str(f, in, n, width);
  assert_int_equal(fclose(f), 0);
  free(in);
  assert_int_equal(strlen(out), outlen); /* no NUL ever written */
  return out;
}

#define assert_json_n(s, n, want) check(JSON, s, n, 0, want, __LINE__)
#define assert_json(s, want) check(JSON, s, sizeof(s) - 1, 0, want, __LINE__)
#define assert_term_w(s, w, want) check(TERM, s, sizeof(s) - 1, w, want, __LINE__)
#define assert_term(s, want) assert_term_w(s, 0, want)

static void check(enum mode m, const char *s, size_t n, size_t width, const char *want,
                  int line) {
  char *got = escape(m, s, n, width);
  if (strcmp(got, want) != 0) {
    char msg[1024];
    snprintf(msg, sizeof(msg), "line %d: got '%s', want '%s'", line, got, want);
    free(got);
    fail_msg("%s", msg);
  }
  free(got);
}

static void test_json_plain(void **state) {
  (void)state;
  assert_json("", "\"\"");
  assert_json("GET /api/card/1?x=y", "\"GET /api/card/1?x=y\"");
  assert_json("~\x7f", "\"~\x7f\""); /* DEL is valid in JSON */
  assert_json_n(NULL, 0, "null");
  assert_json_n(NULL, 5, "null");
}

static void test_json_quotes_backslash(void **state) {
  (void)state;
  assert_json("a\"b\\c", "\"a\\\"b\\\\c\"");
  assert_json("\"", "\"\\\"\"");
  assert_json("\\\\", "\"\\\\\\\\\"");
  assert_json("</script>", "\"</script>\"");
}

static void test_json_controls(void **state) {
  (void)state;
  assert_json("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
  assert_json("\x01\x1f\x1b[31m", "\"\\u0001\\u001f\\u001b[31m\"");
  assert_json_n("a\0b", 3, "\"a\\u0000b\"");
  assert_json("\x0b", "\"\\u000b\"");
}

static void test_json_line_separators(void **state) {
  (void)state;
  assert_json("a\xe2\x80\xa8" "b", "\"a\\u2028b\"");
  assert_json("\xe2\x80\xa9", "\"\\u2029\"");
  assert_json("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\""); /* neighbours */
}

static void test_json_utf8(void **state) {
  (void)state;
  assert_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
              "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"");
  assert_json("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf",
              "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\""); /* range edges */
}

static void test_json_invalid_utf8(void **state) {
  (void)state;
  assert_json("\xff", "\"\\ufffd\"");
  assert_json("a\x80z", "\"a\\ufffdz\"");             /* lone continuation */
  assert_json("\xc3(", "\"\\ufffd(\"");               /* missing continuation */
  assert_json("\xc0\xaf", "\"\\ufffd\\ufffd\"");      /* overlong '/' */
  assert_json("\xc1\xbf", "\"\\ufffd\\ufffd\"");
  assert_json("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");   /* overlong, 3 bytes */
  assert_json("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");   /* surrogate U+D800 */
  assert_json("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong */
  assert_json("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
  assert_json("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
  /* a sequence cut by n is invalid; nothing after n is read */
  assert_json_n("\xc3\xa9", 1, "\"\\ufffd\"");
  assert_json_n("\xe2\x82\xac", 2, "\"\\ufffd\\ufffd\"");
  assert_json_n("\xe2\x80\xa8", 2, "\"\\ufffd\\ufffd\"");
  assert_json_n("ab\"", 2, "\"ab\"");
}

static void test_json_cstr(void **state) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  (void)state;
  assert_non_null(f);
  kw_json_cstr(f, "x\"y");
  fputc(' ', f);
  kw_json_cstr(f, NULL);
  fclose(f);
  assert_string_equal(out, "\"x\\\"y\" null");
  free(out);
}

static void test_utf8_len(void **state) {
  (void)state;
  assert_int_equal(kw_utf8_len((const unsigned char *)"a", 1), 1);
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 3), 0);
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xc3\xa9", 1), 0);
  assert_int_equal(kw_utf8_len((const unsigned char *)"\x80", 1), 0);
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xed\x9f\xbf", 3), 3); /* U+D7FF */
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xee\x80\x80", 3), 3); /* U+E000 */
  assert_int_equal(kw_utf8_len((const unsigned char *)"\xed\xbf\xbf", 3), 0); /* U+DFFF */
}

static void test_term_plain(void **state) {
  (void)state;
  assert_term("", "");
  assert_term("python-requests/2.31.0", "python-requests/2.31.0");
  assert_term("a\"b\\c", "a\"b\\c"); /* printable: as is */
  assert_term("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0",
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0");
  char *got = escape(TERM, NULL, 0, 0);
  assert_string_equal(got, "-");
  free(got);
}

static void test_term_controls(void **state) {
  (void)state;
  assert_term("\x1b[2J\x1b]0;pwned\x07", "\\x1B[2J\\x1B]0;pwned\\x07");
  assert_term("a\rb\nc\td", "a\\x0Db\\x0Ac\\x09d");
  assert_term("\x7f", "\\x7F");
  assert_term("\x08\x00", "\\x08\\x00");
  /* C1 controls, UTF-8 encoded (CSI U+009B, NEL U+0085) and raw */
  assert_term("\xc2\x9b" "31m", "\\xC2\\x9B31m");
  assert_term("\xc2\x85", "\\xC2\\x85");
  assert_term("\xc2\x80\xc2\x9f", "\\xC2\\x80\\xC2\\x9F");
  assert_term("\x9b" "31m", "\\x9B31m");
  /* invalid UTF-8 byte by byte */
  assert_term("\xff\xc3(", "\\xFF\\xC3(");
  assert_term("\xed\xa0\x80", "\\xED\\xA0\\x80");
}

static void test_term_width(void **state) {
  (void)state;
  assert_term_w("abcdef", 0, "abcdef");
  assert_term_w("abc", 3, "abc");      /* fits: no mark */
  assert_term_w("abcd", 3, "ab\xe2\x80\xa6"); /* cut: the mark fits in width */
  assert_term_w("abcdef", 4, "abc\xe2\x80\xa6");
  assert_term_w("ab", 1, "\xe2\x80\xa6");
  assert_term_w("a", 1, "a");
  /* a character counts once, however many bytes it has */
  assert_term_w("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 3,
                "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  assert_term_w("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x", 3, "\xc3\xa9\xe2\x82\xac\xe2\x80\xa6");
  /* an escape counts four and is never split */
  assert_term_w("\x1b", 4, "\\x1B");
  assert_term_w("a\x1b", 5, "a\\x1B");
  assert_term_w("a\x1b", 4, "a\xe2\x80\xa6");
  assert_term_w("ab\x1b" "c", 6, "ab\xe2\x80\xa6");
  assert_term_w("\x1b\x1b", 7, "\\x1B\xe2\x80\xa6");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_plain),
      cmocka_unit_test(test_json_quotes_backslash),
      cmocka_unit_test(test_json_controls),
      cmocka_unit_test(test_json_line_separators),
      cmocka_unit_test(test_json_utf8),
      cmocka_unit_test(test_json_invalid_utf8),
      cmocka_unit_test(test_json_cstr),
      cmocka_unit_test(test_utf8_len),
      cmocka_unit_test(test_term_plain),
      cmocka_unit_test(test_term_controls),
      cmocka_unit_test(test_term_width),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
