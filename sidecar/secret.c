/* secret.c — reading and wiping secrets (secret.h). */
#include "secret.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MAX 4096

void kw_secret_free(char *s) {
  if (s == NULL)
    return;
  OPENSSL_cleanse(s, strlen(s));
  free(s);
}

static int read_secret_file(const char *path, const char *field, char **out, char *err,
                            size_t errlen) {
  struct stat sb;
  char *buf = NULL;
  size_t n = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;

  if (fd < 0) {
    r = -errno;
    snprintf(err, errlen, "%s.file: cannot open %s: %s", field, path, strerror(errno));
    return r;
  }
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    snprintf(err, errlen, "%s.file: %s is not a regular file", field, path);
    r = KW_ECONFIG;
    goto out;
  }
  if (sb.st_mode & 077) {
    snprintf(err, errlen,
             "%s.file: %s is accessible to group or others (mode %03o); chmod 600 it",
             field, path, (unsigned)(sb.st_mode & 0777));
    r = KW_ECONFIG;
    goto out;
  }
  if ((buf = calloc(1, SECRET_MAX + 1)) == NULL) {
    r = KW_ENOMEM;
    goto out;
  }
  for (;;) {
    ssize_t got = read(fd, buf + n, SECRET_MAX + 1 - n);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      r = -errno;
      snprintf(err, errlen, "%s.file: cannot read %s: %s", field, path, strerror(errno));
      goto out;
    }
    if (got == 0)
      break;
    n += (size_t)got;
    if (n > SECRET_MAX) {
      snprintf(err, errlen, "%s.file: %s is larger than %d bytes", field, path, SECRET_MAX);
      r = KW_ECONFIG;
      goto out;
    }
  }
  buf[n] = '\0';
  if (n > 0 && buf[n - 1] == '\n')
    buf[--n] = '\0';
  if (n > 0 && buf[n - 1] == '\r')
    buf[--n] = '\0';
  *out = buf;
  buf = NULL;
out:
  if (buf != NULL) {
    OPENSSL_cleanse(buf, SECRET_MAX + 1);
    free(buf);
  }
  close(fd);
  return r;
}

int kw_secret_read(const struct kw_secret_cfg *s, const char *field, char **out,
                       char *err, size_t errlen) {
  char *v = NULL;
  int r;

  *out = NULL;
  if (s->file != NULL) {
    if ((r = read_secret_file(s->file, field, &v, err, errlen)) != 0)
      return r;
  } else {
    const char *e = getenv(s->env);
    if (e == NULL) {
      snprintf(err, errlen, "%s.env: environment variable %.64s is not set", field, s->env);
      return KW_ECONFIG;
    }
    if ((v = strdup(e)) == NULL)
      return KW_ENOMEM;
  }
  if (v[0] == '\0' || strpbrk(v, "\r\n") != NULL) {
    snprintf(err, errlen, "%s: the secret is %s", field,
             v[0] == '\0' ? "empty" : "more than one line");
    kw_secret_free(v);
    return KW_ECONFIG;
  }
  *out = v;
  return 0;
}

