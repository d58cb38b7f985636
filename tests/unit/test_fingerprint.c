/* test_fingerprint.c — HMAC-SHA256 key fingerprints and the secret they use
 * (sidecar/fingerprint.c).
 *
 * Known answers were computed independently at authoring time with
 *   echo -n KEY | openssl dgst -sha256 -hmac SECRET     and Python's hmac module,
 * and every fingerprint is also checked in-test against OpenSSL's one-shot HMAC().
 * Secret files live in a fresh mkdtemp directory; $KEYWATCH_SECRET is unset around each
 * test that reads a file.  Thread: main only.
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
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sidecar/err.h"
#include "sidecar/fingerprint.h"

#include "kwtest_files.h"

#define SECRET "keywatch-test-secret-0123456789abcdef" /* 37 bytes */
#define KEY "mb_3q2+7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM/I=" /* 47 bytes */
/* HMAC-SHA256(SECRET, KEY)[0:16] */
#define KEY_FP_HEX "55bef19d2185c8111b2ee9b19484b01e"
/* HMAC-SHA256(SECRET, "")[0:16] */
#define EMPTY_FP_HEX "87faa9a77ebc45a5500eeb3c83be7c49"
/* HMAC-SHA256("x" * 100, KEY)[0:16]: a secret longer than a block is hashed first */
#define LONG_FP_HEX "2760d7f05759d48476d6b40496e5859b"
/* HMAC-SHA256("A" * 64, KEY)[0:16]: exactly one block */
#define BLOCK_FP_HEX "304a8598636781564de1d49a6186581c"
/* HMAC-SHA256(bytes.fromhex(SECRET_HEX), KEY)[0:16] */
#define SECRET_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX_FP_HEX "f981dbb6895c1943cd7538906ed5e502"

static char g_dir[64];
static char g_path[128];

static int setup(void **state) {
  (void)state;
  unsetenv(KW_SECRET_ENV);
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwfp") != 0)
    return -1;
  snprintf(g_path, sizeof(g_path), "%s/secret", g_dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unsetenv(KW_SECRET_ENV);
  return temp_dir_remove(g_dir);
}

static void fp_hex(const struct kw_fingerprint *fp, const char *key, size_t n, char *hex) {
  uint8_t out[KW_FP_LEN];
  kw_fingerprint_key(fp, key, n, out);
  kw_fingerprint_hex(out, hex);
}

/* Checks fp(key) against OpenSSL's one-shot HMAC under secret. */
static void assert_matches_openssl(const struct kw_fingerprint *fp, const void *secret,
                                   size_t slen, const void *key, size_t n) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  uint8_t out[KW_FP_LEN];

  assert_non_null(HMAC(EVP_sha256(), secret, (int)slen, key, n, mac, &maclen));
  assert_int_equal(maclen, 32);
  kw_fingerprint_key(fp, key, n, out);
  assert_memory_equal(out, mac, KW_FP_LEN);
}

static void write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static void test_known_answer(void **state) {
  struct kw_fingerprint *fp = NULL;
  char hex[2 * KW_FP_LEN + 1];
  (void)state;

  assert_int_equal(kw_fingerprint_create_from(SECRET, strlen(SECRET), &fp), 0);
  assert_non_null(fp);
  fp_hex(fp, KEY, strlen(KEY), hex);
  assert_string_equal(hex, KEY_FP_HEX);
  fp_hex(fp, "", 0, hex);
  assert_string_equal(hex, EMPTY_FP_HEX);
  assert_matches_openssl(fp, SECRET, strlen(SECRET), KEY, strlen(KEY));
  kw_fingerprint_destroy(fp);
}

static void test_secret_lengths(void **state) {
  struct kw_fingerprint *fp = NULL;
  char secret[100], hex[2 * KW_FP_LEN + 1];
  (void)state;

  memset(secret, 'x', sizeof(secret));
  assert_int_equal(kw_fingerprint_create_from(secret, 100, &fp), 0);
  fp_hex(fp, KEY, strlen(KEY), hex);
  assert_string_equal(hex, LONG_FP_HEX);
  kw_fingerprint_destroy(fp);

  memset(secret, 'A', 64);
  assert_int_equal(kw_fingerprint_create_from(secret, 64, &fp), 0);
  fp_hex(fp, KEY, strlen(KEY), hex);
  assert_string_equal(hex, BLOCK_FP_HEX);
  kw_fingerprint_destroy(fp);

  /* 31 bytes are too few; exactly KW_SECRET_MIN is enough */
  fp = (struct kw_fingerprint *)1;
  assert_int_equal(kw_fingerprint_create_from(secret, KW_SECRET_MIN - 1, &fp), KW_ESECRET);
  assert_null(fp);
  assert_int_equal(kw_fingerprint_create_from(secret, 0, &fp), KW_ESECRET);
  assert_int_equal(kw_fingerprint_create_from(secret, KW_SECRET_MIN, &fp), 0);
  assert_matches_openssl(fp, secret, KW_SECRET_MIN, KEY, strlen(KEY));
  kw_fingerprint_destroy(fp);
}

/* Many secret and key lengths, including keys of several SHA-256 blocks and binary keys. */
static void test_cross_check_openssl(void **state) {
  unsigned char secret[200], key[300];
  (void)state;

  for (size_t i = 0; i < sizeof(secret); i++)
    secret[i] = (unsigned char)(i * 37 + 11);
  for (size_t i = 0; i < sizeof(key); i++)
    key[i] = (unsigned char)(i * 101 + 3);
  for (size_t slen = KW_SECRET_MIN; slen <= sizeof(secret); slen += 21) {
    struct kw_fingerprint *fp = NULL;
    assert_int_equal(kw_fingerprint_create_from(secret, slen, &fp), 0);
    for (size_t n = 0; n <= sizeof(key); n += 17)
      assert_matches_openssl(fp, secret, slen, key, n);
    kw_fingerprint_destroy(fp);
  }
}

static void test_stable_and_secret_dependent(void **state) {
  struct kw_fingerprint *a = NULL, *b = NULL, *c = NULL;
  uint8_t fa[KW_FP_LEN], fa2[KW_FP_LEN], fb[KW_FP_LEN], fc[KW_FP_LEN], fk[KW_FP_LEN];
  char other[] = SECRET;
  (void)state;

  assert_int_equal(kw_fingerprint_create_from(SECRET, strlen(SECRET), &a), 0);
  kw_fingerprint_key(a, KEY, strlen(KEY), fa);
  kw_fingerprint_key(a, KEY, strlen(KEY), fa2); /* the object is not consumed by use */
  assert_memory_equal(fa, fa2, KW_FP_LEN);
  kw_fingerprint_destroy(a);

  assert_int_equal(kw_fingerprint_create_from(SECRET, strlen(SECRET), &b), 0);
  kw_fingerprint_key(b, KEY, strlen(KEY), fb);
  assert_memory_equal(fa, fb, KW_FP_LEN); /* same secret, new object: same fingerprint */
  kw_fingerprint_key(b, KEY, strlen(KEY) - 1, fk);
  assert_memory_not_equal(fa, fk, KW_FP_LEN); /* one byte less of key */
  kw_fingerprint_destroy(b);

  other[0] ^= 1; /* one bit of secret */
  assert_int_equal(kw_fingerprint_create_from(other, strlen(other), &c), 0);
  kw_fingerprint_key(c, KEY, strlen(KEY), fc);
  assert_memory_not_equal(fa, fc, KW_FP_LEN);
  kw_fingerprint_destroy(c);
  kw_fingerprint_destroy(NULL);
}

static void test_secret_file_created(void **state) {
  struct kw_fingerprint *fp = NULL, *again = NULL, *manual = NULL;
  char err[512] = "", buf[200], hex1[33], hex2[33], hex3[33];
  unsigned char raw[32];
  struct stat st;
  ssize_t n;
  int fd;
  (void)state;

  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), 0);
  assert_non_null(fp);
  assert_int_equal(stat(g_path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  fd = open(g_path, O_RDONLY);
  assert_true(fd >= 0);
  n = read(fd, buf, sizeof(buf));
  close(fd);
  assert_int_equal(n, 65); /* 64 hex digits and a newline */
  assert_int_equal(buf[64], '\n');
  for (int i = 0; i < 64; i++) {
    if (!((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f')))
      fail_msg("byte %d of the secret file is '%c'", i, buf[i]);
    unsigned hi = (unsigned)(buf[i] <= '9' ? buf[i] - '0' : buf[i] - 'a' + 10);
    if (i % 2 == 0)
      raw[i / 2] = (unsigned char)(hi << 4);
    else
      raw[i / 2] |= (unsigned char)hi;
  }
  /* The second run reads the same secret: same fingerprints; and the file's hex is used
   * as 32 decoded bytes, not as 64 characters. */
  assert_int_equal(kw_fingerprint_create(g_path, &again, err, sizeof(err)), 0);
  assert_int_equal(kw_fingerprint_create_from(raw, sizeof(raw), &manual), 0);
  fp_hex(fp, KEY, strlen(KEY), hex1);
  fp_hex(again, KEY, strlen(KEY), hex2);
  fp_hex(manual, KEY, strlen(KEY), hex3);
  assert_string_equal(hex1, hex2);
  assert_string_equal(hex1, hex3);
  assert_matches_openssl(again, raw, sizeof(raw), KEY, strlen(KEY));
  kw_fingerprint_destroy(fp);
  kw_fingerprint_destroy(again);
  kw_fingerprint_destroy(manual);

  /* Two installations get different secrets. */
  char other[160];
  snprintf(other, sizeof(other), "%s/secret2", g_dir);
  assert_int_equal(kw_fingerprint_create(other, &fp, err, sizeof(err)), 0);
  fp_hex(fp, KEY, strlen(KEY), hex2);
  assert_string_not_equal(hex1, hex2);
  kw_fingerprint_destroy(fp);
}

static void test_secret_file_known(void **state) {
  struct kw_fingerprint *fp = NULL;
  char err[512] = "", hex[33];
  (void)state;

  write_file(g_path, SECRET_HEX "\n", 0600);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), 0);
  fp_hex(fp, KEY, strlen(KEY), hex);
  assert_string_equal(hex, HEX_FP_HEX);
  kw_fingerprint_destroy(fp);

  /* Not hex: the bytes themselves (trailing newline and spaces trimmed). */
  write_file(g_path, SECRET " \r\n", 0400);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), 0);
  fp_hex(fp, KEY, strlen(KEY), hex);
  assert_string_equal(hex, KEY_FP_HEX);
  kw_fingerprint_destroy(fp);
}

static void test_secret_file_refused_when_readable(void **state) {
  struct kw_fingerprint *fp = (struct kw_fingerprint *)1;
  char err[512] = "";
  (void)state;

  write_file(g_path, SECRET_HEX "\n", 0644);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), KW_ESECRET);
  assert_null(fp);
  assert_non_null(strstr(err, g_path));
  assert_non_null(strstr(err, "chmod 600"));
  assert_non_null(strstr(err, "0644"));

  write_file(g_path, SECRET_HEX "\n", 0640); /* group-readable is refused too */
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), KW_ESECRET);
  assert_non_null(strstr(err, "chmod 600"));
}

static void test_secret_file_too_short(void **state) {
  struct kw_fingerprint *fp = NULL;
  char err[512] = "";
  (void)state;

  write_file(g_path, "0011223344556677\n", 0600);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), KW_ESECRET);
  assert_null(fp);
  assert_non_null(strstr(err, g_path));
  assert_non_null(strstr(err, "32"));
  /* 62 hex digits decode to 31 bytes: too few */
  write_file(g_path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddee", 0600);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), KW_ESECRET);
  write_file(g_path, "\n", 0600);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), KW_ESECRET);
}

static void test_secret_file_not_regular(void **state) {
  struct kw_fingerprint *fp = NULL;
  char err[512] = "", link[160], missing[160];
  (void)state;

  /* a directory */
  assert_int_equal(kw_fingerprint_create(g_dir, &fp, err, sizeof(err)), KW_ESECRET);
  assert_null(fp);
  assert_non_null(strstr(err, "not a regular file"));
  /* a symlink to a good file is not followed */
  write_file(g_path, SECRET_HEX "\n", 0600);
  snprintf(link, sizeof(link), "%s/link", g_dir);
  assert_int_equal(symlink(g_path, link), 0);
  assert_int_equal(kw_fingerprint_create(link, &fp, err, sizeof(err)), -ELOOP);
  assert_null(fp);
  assert_non_null(strstr(err, link));
  /* a directory that does not exist: cannot create */
  snprintf(missing, sizeof(missing), "%s/nodir/secret", g_dir);
  assert_int_equal(kw_fingerprint_create(missing, &fp, err, sizeof(err)), -ENOENT);
  assert_non_null(strstr(err, "cannot create secret file"));
  assert_non_null(strstr(err, missing));
}

static void test_env_override(void **state) {
  struct kw_fingerprint *fp = NULL;
  char err[512] = "", hex[33];
  struct stat st;
  (void)state;

  setenv(KW_SECRET_ENV, SECRET, 1);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), 0);
  fp_hex(fp, KEY, strlen(KEY), hex);
  assert_string_equal(hex, KEY_FP_HEX); /* the variable's bytes, as given */
  kw_fingerprint_destroy(fp);
  assert_int_equal(stat(g_path, &st), -1); /* no file was created */
  assert_int_equal(errno, ENOENT);

  /* the variable wins over an existing file, even an unsafe one */
  write_file(g_path, SECRET_HEX "\n", 0644);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), 0);
  fp_hex(fp, KEY, strlen(KEY), hex);
  assert_string_equal(hex, KEY_FP_HEX);
  kw_fingerprint_destroy(fp);

  /* empty: as if unset (then the 0644 file is refused) */
  setenv(KW_SECRET_ENV, "", 1);
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), KW_ESECRET);
  assert_non_null(strstr(err, "chmod 600"));
}

static void test_env_too_short(void **state) {
  struct kw_fingerprint *fp = (struct kw_fingerprint *)1;
  char err[512] = "";
  (void)state;

  setenv(KW_SECRET_ENV, "0123456789012345678901234567890", 1); /* 31 */
  assert_int_equal(kw_fingerprint_create(g_path, &fp, err, sizeof(err)), KW_ESECRET);
  assert_null(fp);
  assert_non_null(strstr(err, KW_SECRET_ENV));
  assert_non_null(strstr(err, "32"));
  assert_null(strstr(err, "0123456789")); /* the secret is not echoed */
}

static void assert_prefix(const char *key, unsigned want, const char *expect) {
  char out[KW_PREFIX_MAX + 1];
  size_t n = strlen(key);
  char *copy = malloc(n ? n : 1); /* exact size: ASan catches reads past n */
  assert_non_null(copy);
  memcpy(copy, key, n);
  memset(out, 'Z', sizeof(out));
  kw_fingerprint_prefix(copy, n, want, out);
  free(copy);
  assert_string_equal(out, expect);
}

static void test_prefix(void **state) {
  (void)state;
  assert_prefix(KEY, 7, "mb_3q2+");
  assert_prefix(KEY, 0, "");
  assert_prefix(KEY, 12, "mb_3q2+7vbg"); /* 47 characters: n / 4 = 11 */
  /* want is capped at KW_PREFIX_MAX */
  assert_prefix("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123", 40,
                "abcdefghijklmnop");
  assert_prefix("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 40,
                "abcdefghijklmno"); /* 62 characters: n / 4 = 15 */
  /* n / 4 cap: a short key shows at most a quarter of itself */
  assert_prefix("abcdefghijkl", 7, "abc");
  assert_prefix("abcdefghijklmnop", 7, "abcd");
  assert_prefix("abcdefghijklmnopqrstuvwxyz01", 7, "abcdefg");
  assert_prefix("abc", 7, "");
  assert_prefix("", 7, "");
  /* allowed punctuation kept, anything else becomes '?' */
  assert_prefix("a_+/=.-zAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 8, "a_+/=.-z");
  assert_prefix("a b\"c<d\x1b"
                "e\xc3\xa9:%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                14, "a?b?c?d?e????A");
  assert_prefix("\n\t\r\x7f\xff\x01"
                "AAAAAAAAAAAAAAAAAAAAAAAAAAA", 6, "??????");
}

static void test_hex_round_trip(void **state) {
  uint8_t fp[KW_FP_LEN], back[KW_FP_LEN];
  char hex[2 * KW_FP_LEN + 1];
  (void)state;

  for (int i = 0; i < KW_FP_LEN; i++)
    fp[i] = (uint8_t)(i * 17 + 0x0f);
  memset(hex, 'Z', sizeof(hex));
  assert_ptr_equal(kw_fingerprint_hex(fp, hex), hex);
  assert_string_equal(hex, "0f2031425364758697a8b9cadbecfd0e");
  assert_int_equal(kw_fingerprint_from_hex(hex, back), 0);
  assert_memory_equal(fp, back, KW_FP_LEN);
  assert_int_equal(kw_fingerprint_from_hex("0F2031425364758697A8B9CADBECFD0E", back), 0);
  assert_memory_equal(fp, back, KW_FP_LEN);
  memset(fp, 0xff, sizeof(fp));
  assert_string_equal(kw_fingerprint_hex(fp, hex), "ffffffffffffffffffffffffffffffff");

  assert_int_equal(kw_fingerprint_from_hex("", back), KW_EPARSE);
  assert_int_equal(kw_fingerprint_from_hex("0f", back), KW_EPARSE);
  assert_int_equal(kw_fingerprint_from_hex("0f2031425364758697a8b9cadbecfd0", back),
                   KW_EPARSE); /* 31 */
  assert_int_equal(kw_fingerprint_from_hex("0f2031425364758697a8b9cadbecfd0e0", back),
                   KW_EPARSE); /* 33 */
  assert_int_equal(kw_fingerprint_from_hex("0g2031425364758697a8b9cadbecfd0e", back),
                   KW_EPARSE);
  assert_int_equal(kw_fingerprint_from_hex("0f2031425364758697a8b9cadbecfd0 ", back),
                   KW_EPARSE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answer),
      cmocka_unit_test(test_secret_lengths),
      cmocka_unit_test(test_cross_check_openssl),
      cmocka_unit_test(test_stable_and_secret_dependent),
      cmocka_unit_test_setup_teardown(test_secret_file_created, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_file_known, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_file_refused_when_readable, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_secret_file_too_short, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_file_not_regular, setup, teardown),
      cmocka_unit_test_setup_teardown(test_env_override, setup, teardown),
      cmocka_unit_test_setup_teardown(test_env_too_short, setup, teardown),
      cmocka_unit_test(test_prefix),
      cmocka_unit_test(test_hex_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
