/* reader.c — chunked line reader (see reader.h).
 *
 * Buffer layout:  [ consumed | unread (start .. end) | free ]
 * A line is returned in place when it is complete in the buffer; otherwise the unread
 * tail moves to the front and more is read.  Invariants: start <= end <= cap;
 * cap = KW_READ_CHUNK + KW_LINE_MAX, so a line of up to KW_LINE_MAX always fits after a
 * compaction.
 */
#include "reader.h"
#include "../sidecar/err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct kw_reader {
  int fd;
  bool eof, skipping; /* skipping: inside an overlong line, discarding to its '\n' */
  bool follow;        /* EOF is not final; partial last lines wait for their '\n' */
  char *buf;
  size_t start, end, cap;
  uint64_t lineno, offset;
  int64_t size;
  char name[4096];
};

int kw_reader_fdopen(int fd, const char *name, struct kw_reader **out) {
  struct kw_reader *r = calloc(1, sizeof(*r));
  struct stat st;

  *out = NULL;
  if (r == NULL)
    return KW_ENOMEM;
  r->cap = KW_READ_CHUNK + KW_LINE_MAX;
  r->buf = malloc(r->cap);
  if (r->buf == NULL) {
    free(r);
    return KW_ENOMEM;
  }
  r->fd = fd;
  r->size = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
  snprintf(r->name, sizeof(r->name), "%s", name);
  *out = r;
  return 0;
}

int kw_reader_open(const char *path, struct kw_reader **out, char *err, size_t errlen) {
  int fd, r;
  struct stat st;

  *out = NULL;
  if (strcmp(path, "-") == 0)
    return kw_reader_fdopen(dup(STDIN_FILENO), "stdin", out);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r = -errno;
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return r;
  }
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "cannot read %s: it is a directory", path);
    close(fd);
    return -EISDIR;
  }
  r = kw_reader_fdopen(fd, path, out);
  if (r != 0)
    close(fd);
  return r;
}

void kw_reader_close(struct kw_reader *r) {
  if (r == NULL)
    return;
  if (r->fd >= 0)
    close(r->fd);
  if (r->buf != NULL) {
    OPENSSL_cleanse(r->buf, r->cap);
    free(r->buf);
  }
  free(r);
}

/* Moves unread bytes to the front (wiping what was consumed) and reads more.
 * Returns bytes read, 0 at EOF, or -errno. */
static ssize_t fill(struct kw_reader *r) {
  size_t unread = r->end - r->start;
  ssize_t got;

  if (r->start > 0) {
    memmove(r->buf, r->buf + r->start, unread);
    OPENSSL_cleanse(r->buf + unread, r->end - unread);
    r->start = 0;
    r->end = unread;
  }
  if (r->end == r->cap)
    return KW_ETOOLONG; /* cannot happen: callers bound lines first */
  do
    got = read(r->fd, r->buf + r->end, r->cap - r->end);
  while (got < 0 && errno == EINTR);
  if (got < 0)
    return -errno;
  if (got == 0)
    r->eof = true;
  r->end += (size_t)got;
  return got;
}

int kw_reader_next(struct kw_reader *r, const char **line, size_t *len) {
  for (;;) {
    char *p = r->buf + r->start;
    size_t avail = r->end - r->start;
    char *nl = memchr(p, '\n', avail);

    if (r->skipping) {
      /* Discard through the end of an overlong line. */
      size_t drop = nl ? (size_t)(nl - p) + 1 : avail;
      r->start += drop;
      r->offset += drop;
      if (nl) {
        r->skipping = false;
        continue;
      }
      if (r->eof) {
        r->eof = !r->follow;
        return 0;
      }
    } else if (nl != NULL && (size_t)(nl - p) <= KW_LINE_MAX) {
      size_t n = (size_t)(nl - p);
      r->start += n + 1;
      r->offset += n + 1;
      r->lineno++;
      if (n > 0 && p[n - 1] == '\r')
        n--;
      *line = p;
      *len = n;
      return 1;
    } else if (nl != NULL || avail > KW_LINE_MAX) {
      r->lineno++;
      r->skipping = true;
      return KW_ETOOLONG;
    } else if (r->eof && r->follow) {
      r->eof = false; /* read again next time */
      return 0;
    } else if (r->eof) {
      if (avail == 0)
        return 0;
      /* Last line without a newline. */
      r->start += avail;
      r->offset += avail;
      r->lineno++;
      if (p[avail - 1] == '\r')
        avail--;
      *line = p;
      *len = avail;
      return 1;
    }
    ssize_t got = fill(r);
    if (got < 0)
      return (int)got;
  }
}

size_t kw_reader_peek(struct kw_reader *r, const char **buf, size_t n) {
  while (!r->eof && r->end - r->start < n && r->end < r->cap) {
    if (fill(r) < 0)
      break;
  }
  *buf = r->buf + r->start;
  return r->end - r->start < n ? r->end - r->start : n;
}

void kw_reader_follow(struct kw_reader *r) { r->follow = true; }

int kw_reader_seek(struct kw_reader *r, int64_t off) {
  if (lseek(r->fd, (off_t)off, SEEK_SET) < 0)
    return -errno;
  OPENSSL_cleanse(r->buf, r->end);
  r->start = r->end = 0;
  r->eof = r->skipping = false;
  r->offset = (uint64_t)off;
  return 0;
}

int kw_reader_fd(const struct kw_reader *r) { return r->fd; }

size_t kw_reader_buffered(const struct kw_reader *r) { return r->end - r->start; }

uint64_t kw_reader_lineno(const struct kw_reader *r) { return r->lineno; }
uint64_t kw_reader_offset(const struct kw_reader *r) { return r->offset; }
int64_t kw_reader_size(const struct kw_reader *r) { return r->size; }
const char *kw_reader_name(const struct kw_reader *r) { return r->name; }
