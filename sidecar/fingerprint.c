/* fingerprint.c — HMAC-SHA256 key fingerprints (see fingerprint.h).
 *
 * The hot path computes one HMAC per keyed line.  HMAC's two key-dependent blocks (the
 * inner and outer pads) are hashed once at creation; each fingerprint then costs two
 * short SHA-256 finishes on copies of those states, with no allocation.  OpenSSL 3
 * deprecates the low-level SHA256_* calls in favour of EVP, whose context copy allocates;
 * the low-level calls are kept deliberately for that reason (they still use SHA-NI).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "fingerprint.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct kw_fingerprint {
  SHA256_CTX inner; /* state after hashing key ^ ipad */
  SHA256_CTX outer; /* state after hashing key ^ opad */
};

int kw_fingerprint_create_from(const void *secret, size_t len, struct kw_fingerprint **out) {
  unsigned char block[SHA256_CBLOCK], pad[SHA256_CBLOCK];
  struct kw_fingerprint *fp;

  *out = NULL;
  if (len < KW_SECRET_MIN)
    return KW_ESECRET;
  fp = calloc(1, sizeof(*fp));
  if (fp == NULL)
    return KW_ENOMEM;
  memset(block, 0, sizeof(block));
  if (len > sizeof(block))
    SHA256(secret, len, block);
  else
    memcpy(block, secret, len);
  for (size_t i = 0; i < sizeof(block); i++)
    pad[i] = block[i] ^ 0x36;
  SHA256_Init(&fp->inner);
  SHA256_Update(&fp->inner, pad, sizeof(pad));
  for (size_t i = 0; i < sizeof(block); i++)
    pad[i] = block[i] ^ 0x5c;
  SHA256_Init(&fp->outer);
  SHA256_Update(&fp->outer, pad, sizeof(pad));
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(pad, sizeof(pad));
  *out = fp;
  return 0;
}

void kw_fingerprint_destroy(struct kw_fingerprint *fp) {
  if (fp == NULL)
    return;
  OPENSSL_cleanse(fp, sizeof(*fp));
  free(fp);
}

void kw_fingerprint_key(const struct kw_fingerprint *fp, const char *key, size_t n,
                        uint8_t out[KW_FP_LEN]) {
  unsigned char ih[SHA256_DIGEST_LENGTH], oh[SHA256_DIGEST_LENGTH];
  SHA256_CTX c = fp->inner;

  SHA256_Update(&c, key, n);
  SHA256_Final(ih, &c);
  c = fp->outer;
  SHA256_Update(&c, ih, sizeof(ih));
  SHA256_Final(oh, &c);
  memcpy(out, oh, KW_FP_LEN);
  OPENSSL_cleanse(&c, sizeof(c));
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Creates path with 32 fresh random bytes as hex, mode 0600, refusing to follow or
 * replace anything that is already there. */
static int create_secret(const char *path, char *err, size_t errlen) {
  unsigned char raw[32];
  char hex[2 * sizeof(raw) + 2];
  int fd, r = 0;

  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    snprintf(err, errlen, "cannot get random bytes for a new secret");
    return KW_ESECRET;
  }
  for (size_t i = 0; i < sizeof(raw); i++)
    snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  hex[2 * sizeof(raw)] = '\n';
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    r = -errno;
    snprintf(err, errlen, "cannot create secret file %s: %s", path, strerror(errno));
    goto out;
  }
  if (write(fd, hex, sizeof(hex) - 1) != (ssize_t)(sizeof(hex) - 1) || fsync(fd) != 0) {
    r = -errno;
    snprintf(err, errlen, "cannot write secret file %s: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    goto out;
  }
  close(fd);
out:
  OPENSSL_cleanse(raw, sizeof(raw));
  OPENSSL_cleanse(hex, sizeof(hex));
  return r;
}

static int load_secret_file(const char *path, struct kw_fingerprint **out, char *err,
                            size_t errlen) {
  char buf[4096];
  unsigned char bytes[sizeof(buf) / 2];
  size_t n = 0, nb = 0;
  struct stat st;
  ssize_t got;
  int fd, r;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    r = create_secret(path, err, errlen);
    if (r != 0)
      return r;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  }
  if (fd < 0) {
    snprintf(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
    return -errno;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "secret file %s is not a regular file", path);
    close(fd);
    return KW_ESECRET;
  }
  if (st.st_mode & 077) {
    snprintf(err, errlen,
             "secret file %s is accessible by other users (mode %04o); run: chmod 600 %s",
             path, (unsigned)(st.st_mode & 07777), path);
    close(fd);
    return KW_ESECRET;
  }
  while (n < sizeof(buf) && (got = read(fd, buf + n, sizeof(buf) - n)) > 0)
    n += (size_t)got;
  close(fd);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
    n--;
  /* Hex is decoded so that a file holding 64 hex digits carries 32 bytes of entropy; any
   * other content is used as bytes. */
  for (nb = 0; 2 * nb + 1 < n; nb++) {
    int hi = hexval(buf[2 * nb]), lo = hexval(buf[2 * nb + 1]);
    if (hi < 0 || lo < 0)
      break;
    bytes[nb] = (unsigned char)(hi << 4 | lo);
  }
  if (2 * nb == n)
    r = kw_fingerprint_create_from(bytes, nb, out);
  else
    r = kw_fingerprint_create_from(buf, n, out);
  if (r == KW_ESECRET)
    snprintf(err, errlen, "secret file %s holds too little secret (need %d bytes)", path,
             KW_SECRET_MIN);
  OPENSSL_cleanse(buf, sizeof(buf));
  OPENSSL_cleanse(bytes, sizeof(bytes));
  return r;
}

int kw_fingerprint_create(const char *path, struct kw_fingerprint **out, char *err,
                          size_t errlen) {
  const char *env = getenv(KW_SECRET_ENV);

  *out = NULL;
  if (env != NULL && env[0] != '\0') {
    int r = kw_fingerprint_create_from(env, strlen(env), out);
    if (r == KW_ESECRET)
      snprintf(err, errlen, "%s must hold at least %d characters", KW_SECRET_ENV,
               KW_SECRET_MIN);
    return r;
  }
  return load_secret_file(path, out, err, errlen);
}

void kw_fingerprint_prefix(const char *key, size_t n, unsigned want,
                           char out[KW_PREFIX_MAX + 1]) {
  size_t k = n / 4;

  if (want > KW_PREFIX_MAX)
    want = KW_PREFIX_MAX;
  if (k > want)
    k = want;
  for (size_t i = 0; i < k; i++) {
    unsigned char c = (unsigned char)key[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '+' || c == '/' || c == '=' || c == '.' || c == '-';
    out[i] = ok ? (char)c : '?';
  }
  out[k] = '\0';
}

char *kw_hex(const uint8_t *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
  return out;
}

char *kw_fingerprint_hex(const uint8_t fp[KW_FP_LEN], char out[2 * KW_FP_LEN + 1]) {
  return kw_hex(fp, KW_FP_LEN, out);
}

int kw_fingerprint_from_hex(const char *hex, uint8_t fp[KW_FP_LEN]) {
  for (size_t i = 0; i < KW_FP_LEN; i++) {
    int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return KW_EPARSE;
    fp[i] = (uint8_t)(hi << 4 | lo);
  }
  return hex[2 * KW_FP_LEN] == '\0' ? 0 : KW_EPARSE;
}
