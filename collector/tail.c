/* tail.c — following a log file across rotation and truncation (see tail.h).
 *
 * Invariants:
 *  - f[i].rd != NULL ⇔ slot i holds an open file; at most one slot has !rotated (the
 *    current file, index t->cur, or t->cur == -1 when nothing is at path);
 *  - f[i].hash is the hash of the hash_len bytes before f[i].hashed_off, and hashed_off
 *    == the reader's offset after every drain (so a truncation can still be matched
 *    against a copy: the old bytes are gone from the file by then);
 *  - no callback runs after kw_tail_close().
 */
#include "tail.h"
#include "../sidecar/err.h"
#include "reader.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define COALESCE_MS 5 /* inotify events within this are one wake-up */

struct tfile {
  struct kw_reader *rd; /* NULL: slot free */
  uint64_t dev, ino;
  bool rotated;
  uint64_t quiet_since;   /* uv_now() when it last stopped growing */
  int64_t last_size;      /* size at the last wake-up */
  int64_t hashed_off;
  uint64_t hash;
  uint32_t hash_len;
  char name[PATH_MAX];    /* where it was found */
};

struct kw_tail {
  uv_loop_t *loop;
  char path[PATH_MAX], dir[PATH_MAX], base[NAME_MAX + 1];
  struct kw_tail_opts opts;
  struct kw_tail_cbs cbs;
  uv_fs_event_t watch;
  uv_timer_t poll, soon; /* soon: inotify events coalesced into one wake-up */
  uv_idle_t more;
  bool watching, started, closing;
  bool has_more, has_poll, has_watch, has_soon; /* handles initialised (to be closed) */
  int open_handles;
  kw_tail_close_cb close_cb;
  struct tfile f[KW_TAIL_MAX_FILES];
  int cur;
  size_t consumed; /* see kw_tail_consumed() */
};

static void emit(struct kw_tail *t, enum kw_tail_event ev, const char *path, int64_t off,
                 int64_t bytes, const char *detail) {
  struct kw_tail_info info = {ev, path, off, bytes, detail};
  if (!t->closing && t->cbs.on_event != NULL)
    t->cbs.on_event(t, &info, t->cbs.ctx);
}

/* Hash of up to KW_TAIL_HASH_WINDOW bytes before off in fd; 0 bytes hash as 0. */
static int window_hash(int fd, int64_t off, uint64_t *hash, uint32_t *len) {
  char buf[KW_TAIL_HASH_WINDOW];
  int64_t start = off > KW_TAIL_HASH_WINDOW ? off - KW_TAIL_HASH_WINDOW : 0;
  size_t want = (size_t)(off - start), got = 0;

  while (got < want) {
    ssize_t n = pread(fd, buf + got, want - got, (off_t)(start + (int64_t)got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : KW_EIO; /* shorter than off: truncated */
    got += (size_t)n;
  }
  *hash = want ? XXH3_64bits(buf, want) : 0;
  *len = (uint32_t)want;
  return 0;
}

static void rehash(struct tfile *f) {
  int64_t off = (int64_t)kw_reader_offset(f->rd);
  if (off == f->hashed_off && f->hash_len > 0)
    return;
  if (window_hash(kw_reader_fd(f->rd), off, &f->hash, &f->hash_len) == 0)
    f->hashed_off = off;
}

static void close_file(struct tfile *f) {
  kw_reader_close(f->rd);
  memset(f, 0, sizeof(*f));
}

static int free_slot(struct kw_tail *t) {
  for (int i = 0; i < KW_TAIL_MAX_FILES; i++)
    if (t->f[i].rd == NULL)
      return i;
  return -1;
}

/* Opens name into a free slot at offset off. Returns the slot or a negative error. */
static int open_file(struct kw_tail *t, const char *name, int64_t off, bool rotated) {
  struct kw_reader *rd;
  struct stat st;
  int fd, slot = free_slot(t), r;

  if (slot < 0) {
    /* Too many rotations in flight: the oldest rotated file has been drained to its
     * current end on this wake-up; give it up. */
    for (int i = 0; i < KW_TAIL_MAX_FILES && slot < 0; i++) {
      if (t->f[i].rd != NULL && t->f[i].rotated) {
        emit(t, KW_TAIL_CLOSED, t->f[i].name, (int64_t)kw_reader_offset(t->f[i].rd), 0,
             "too many rotated files open at once");
        close_file(&t->f[i]);
        slot = i;
      }
    }
    if (slot < 0)
      return KW_ETOOLONG;
  }
  fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    r = fstat(fd, &st) != 0 ? -errno : KW_EINVAL;
    close(fd);
    return r;
  }
  if ((r = kw_reader_fdopen(fd, name, &rd)) != 0) {
    close(fd);
    return r;
  }
  kw_reader_follow(rd);
  if (off > 0 && (r = kw_reader_seek(rd, off)) != 0) {
    kw_reader_close(rd);
    return r;
  }
  t->f[slot] = (struct tfile){
      .rd = rd, .dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino,
      .rotated = rotated, .quiet_since = uv_now(t->loop), .last_size = st.st_size,
      .hashed_off = -1,
  };
  snprintf(t->f[slot].name, sizeof(t->f[slot].name), "%s", name);
  rehash(&t->f[slot]);
  if (!rotated)
    t->cur = slot;
  emit(t, KW_TAIL_OPENED, name, off, 0, rotated ? "rotated file" : "current file");
  return slot;
}

/* Looks among path's siblings for a regular file matching want: by inode when ino != 0,
 * else by content (size >= off and the window hash before off equal to hash).  Only
 * names that start with the log's own name are candidates (rotation keeps it: a.log.1,
 * a.log-20261122), so an unrelated file that reused a freed inode is never taken for the
 * log.  Skips files already open.  Writes the name into out; returns 1 if found. */
static int find_sibling(struct kw_tail *t, uint64_t dev, uint64_t ino, int64_t off,
                        uint64_t hash, uint32_t hash_len, char *out, size_t outlen) {
  DIR *d = opendir(t->dir);
  struct dirent *de;
  int found = 0;

  if (d == NULL)
    return 0;
  while (!found && (de = readdir(d)) != NULL) {
    char name[PATH_MAX];
    struct stat st;
    bool open_already = false;
    if (strncmp(de->d_name, t->base, strlen(t->base)) != 0)
      continue;
    snprintf(name, sizeof(name), "%s/%s", t->dir, de->d_name);
    if (stat(name, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    for (int i = 0; i < KW_TAIL_MAX_FILES; i++)
      open_already |= t->f[i].rd && t->f[i].ino == (uint64_t)st.st_ino &&
                      t->f[i].dev == (uint64_t)st.st_dev;
    if (open_already && ino == 0)
      continue;
    if (ino != 0) {
      found = (uint64_t)st.st_ino == ino && (uint64_t)st.st_dev == dev;
    } else if (st.st_size >= off && hash_len > 0) {
      int fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      uint64_t h;
      uint32_t l;
      if (fd >= 0) {
        found = window_hash(fd, off, &h, &l) == 0 && l == hash_len && h == hash;
        close(fd);
      }
    }
    if (found)
      snprintf(out, outlen, "%s", name);
  }
  closedir(d);
  return found;
}

/* Delivers up to max_read bytes of complete lines from f; returns true if more may be
 * waiting (budget exhausted). */
static bool drain(struct kw_tail *t, struct tfile *f) {
  uint64_t start = kw_reader_offset(f->rd);
  const char *line;
  size_t len;
  bool more = false;

  uint64_t counted = start;
  while (!t->closing) {
    if (kw_reader_offset(f->rd) - start >= t->opts.max_read) {
      more = true;
      break;
    }
    int r = kw_reader_next(f->rd, &line, &len);
    t->consumed = (size_t)(kw_reader_offset(f->rd) - counted);
    if (r == 1 || r == KW_ETOOLONG)
      counted = kw_reader_offset(f->rd);
    if (r == 1) {
      t->cbs.on_line(t, line, len, t->cbs.ctx);
    } else if (r == KW_ETOOLONG) {
      if (t->cbs.on_skip)
        t->cbs.on_skip(t, t->cbs.ctx);
    } else if (r == 0) {
      break;
    } else {
      emit(t, KW_TAIL_ERROR, f->name, (int64_t)kw_reader_offset(f->rd), 0, strerror(-r));
      break;
    }
  }
  if (t->closing || f->rd == NULL)
    return false;
  if (kw_reader_offset(f->rd) != start)
    f->quiet_since = uv_now(t->loop);
  rehash(f);
  return more;
}

/* The current file shrank (or its content before our offset changed): recover the unread
 * rest of the old content from a copy if one exists, then read the file from 0. */
static void on_truncated(struct kw_tail *t, struct tfile *f, const char *why) {
  int64_t off = (int64_t)kw_reader_offset(f->rd);
  int64_t unread = f->last_size - off;
  char copy[PATH_MAX];

  emit(t, KW_TAIL_TRUNCATED, f->name, off, 0, why);
  /* The copy is found by the window before the last hashed offset, but read from the
   * read position: when the file was cut between a read and its rehash (the window
   * could not be read), the hashed offset lags behind, and the lines in between were
   * delivered already. */
  if (off > 0 && find_sibling(t, 0, 0, f->hashed_off, f->hash, f->hash_len, copy,
                              sizeof(copy))) {
    if (open_file(t, copy, off, true) >= 0)
      emit(t, KW_TAIL_RECOVERED, copy, off, 0,
           "the truncated file's unread bytes are read from its copy");
  } else if (unread > 0) {
    emit(t, KW_TAIL_GAP, f->name, off, unread,
         "file truncated before its last bytes were read, and no copy of them was found");
  }
  if (kw_reader_seek(f->rd, 0) != 0)
    emit(t, KW_TAIL_ERROR, f->name, 0, 0, "cannot seek to the start after truncation");
  f->last_size = 0;
  f->hashed_off = -1;
  f->hash_len = 0;
  rehash(f);
}

/* Compares the file at path with the current file: rotation, truncation, appearance. */
static void check_path(struct kw_tail *t) {
  struct stat st;
  struct tfile *c = t->cur >= 0 ? &t->f[t->cur] : NULL;
  int exists = stat(t->path, &st) == 0 && S_ISREG(st.st_mode);

  if (c != NULL && (!exists || (uint64_t)st.st_ino != c->ino ||
                    (uint64_t)st.st_dev != c->dev)) {
    c->rotated = true;
    c->quiet_since = uv_now(t->loop);
    {
      char moved[PATH_MAX];
      if (find_sibling(t, c->dev, c->ino, 0, 0, 0, moved, sizeof(moved)))
        snprintf(c->name, sizeof(c->name), "%s", moved);
    }
    t->cur = -1;
    emit(t, KW_TAIL_ROTATED, c->name, (int64_t)kw_reader_offset(c->rd), 0,
         exists ? "renamed; a new file is at the path" : "renamed or deleted");
    c = NULL;
  }
  if (c == NULL && exists) {
    int slot = open_file(t, t->path, 0, false);
    if (slot < 0 && slot != -ENOENT)
      emit(t, KW_TAIL_ERROR, t->path, 0, 0, strerror(slot > -4096 ? -slot : EIO));
    return;
  }
  if (c == NULL)
    return;
  int64_t have = (int64_t)(kw_reader_offset(c->rd) + kw_reader_buffered(c->rd));
  if (st.st_size < have) {
    on_truncated(t, c, "file shrank");
  } else if (c->hash_len > 0) {
    uint64_t h;
    uint32_t l;
    if (window_hash(kw_reader_fd(c->rd), c->hashed_off, &h, &l) != 0 || h != c->hash)
      on_truncated(t, c, "content before the read position changed");
  }
  if (t->cur >= 0)
    t->f[t->cur].last_size = st.st_size;
}

static void on_more(uv_idle_t *h);

static void wake(struct kw_tail *t) {
  bool more = false, delivered = false;
  uint64_t now;

  if (t->closing)
    return;
  /* The path first: a truncation must be seen before the current file is read past it,
   * and a rotated file's lines (older) are read before the new file's. */
  check_path(t);
  if (t->closing)
    return;
  for (int i = 0; i < KW_TAIL_MAX_FILES && !t->closing; i++) {
    struct tfile *f = &t->f[i];
    if (f->rd == NULL || !f->rotated)
      continue;
    uint64_t before = kw_reader_offset(f->rd);
    more |= drain(t, f);
    delivered |= f->rd != NULL && kw_reader_offset(f->rd) != before;
  }
  if (t->closing)
    return;
  if (t->cur >= 0) {
    struct tfile *c = &t->f[t->cur];
    uint64_t before = kw_reader_offset(c->rd);
    more |= drain(t, c);
    if (t->closing)
      return;
    delivered |= kw_reader_offset(c->rd) != before;
  }
  now = uv_now(t->loop);
  for (int i = 0; i < KW_TAIL_MAX_FILES && !t->closing; i++) {
    struct tfile *f = &t->f[i];
    if (f->rd != NULL && f->rotated && now - f->quiet_since >= t->opts.rotate_wait_ms &&
        kw_reader_buffered(f->rd) == 0) {
      emit(t, KW_TAIL_CLOSED, f->name, (int64_t)kw_reader_offset(f->rd), 0,
           "rotated file drained");
      close_file(f);
    } else if (f->rd != NULL && f->rotated && now - f->quiet_since >= t->opts.rotate_wait_ms) {
      /* A last line without '\n' in a file nobody writes to any more. */
      emit(t, KW_TAIL_GAP, f->name, (int64_t)kw_reader_offset(f->rd),
           (int64_t)kw_reader_buffered(f->rd), "rotated file ends in an unterminated line");
      close_file(f);
    }
  }
  if (t->closing)
    return;
  if (more)
    uv_idle_start(&t->more, on_more);
  if (delivered && t->cbs.on_idle)
    t->cbs.on_idle(t, t->cbs.ctx);
}

static void on_more(uv_idle_t *h) {
  struct kw_tail *t = h->data;
  uv_idle_stop(h);
  wake(t);
}

static void on_poll(uv_timer_t *h) { wake(h->data); }

static void on_soon(uv_timer_t *h) { wake(h->data); }

/* A writer appending line by line raises an inotify event per write: reading once per
 * COALESCE_MS instead of once per event keeps the cost per line low at high rates, for a
 * few milliseconds of latency. */
static void wake_soon(struct kw_tail *t) {
  if (!uv_is_active((uv_handle_t *)&t->soon))
    uv_timer_start(&t->soon, on_soon, COALESCE_MS, 0);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  struct kw_tail *t = h->data;
  (void)events;
  if (status < 0 || filename == NULL || strcmp(filename, t->base) == 0) {
    wake_soon(t);
    return;
  }
  for (int i = 0; i < KW_TAIL_MAX_FILES; i++) {
    const char *slash = t->f[i].rd ? strrchr(t->f[i].name, '/') : NULL;
    if (slash != NULL && strcmp(slash + 1, filename) == 0) {
      wake_soon(t);
      return;
    }
  }
}

int kw_tail_create(uv_loop_t *loop, const char *path, const struct kw_tail_opts *opts,
                   const struct kw_tail_cbs *cbs, struct kw_tail **out) {
  struct kw_tail *t;
  const char *slash;

  *out = NULL;
  if (path == NULL || path[0] == '\0' || strlen(path) >= PATH_MAX || cbs->on_line == NULL)
    return KW_EINVAL;
  t = calloc(1, sizeof(*t));
  if (t == NULL)
    return KW_ENOMEM;
  t->loop = loop;
  t->cbs = *cbs;
  t->opts = opts ? *opts : (struct kw_tail_opts){0};
  if (t->opts.poll_ms == 0)
    t->opts.poll_ms = 250;
  if (t->opts.rotate_wait_ms == 0)
    t->opts.rotate_wait_ms = 5000;
  if (t->opts.max_read == 0)
    t->opts.max_read = 8u << 20;
  t->cur = -1;
  snprintf(t->path, sizeof(t->path), "%s", path);
  slash = strrchr(path, '/');
  if (slash == NULL) {
    snprintf(t->dir, sizeof(t->dir), ".");
    snprintf(t->base, sizeof(t->base), "%s", path);
  } else {
    snprintf(t->dir, sizeof(t->dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    snprintf(t->base, sizeof(t->base), "%s", slash + 1);
  }
  *out = t;
  return 0;
}

/* Reopens one saved position (see tail.h); reports a gap when it cannot. */
static void resume(struct kw_tail *t, const struct kw_tail_pos *s) {
  char name[PATH_MAX], copy[PATH_MAX];
  struct stat st;
  bool at_path = stat(t->path, &st) == 0 && (uint64_t)st.st_ino == s->ino &&
                 (uint64_t)st.st_dev == s->dev;
  int slot;

  if (at_path)
    snprintf(name, sizeof(name), "%s", t->path);
  else if (!find_sibling(t, s->dev, s->ino, 0, 0, 0, name, sizeof(name))) {
    emit(t, KW_TAIL_GAP, t->path, s->offset, -1,
         "a file being read when keywatch stopped no longer exists (rotated and removed)");
    return;
  }
  /* Same content up to the saved offset (checked before opening, so that OPENED reports
   * where reading really resumes)? */
  int fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  uint64_t h = 0;
  uint32_t l = 0;
  bool same = fd >= 0 && fstat(fd, &st) == 0 && st.st_size >= s->offset &&
              window_hash(fd, s->offset, &h, &l) == 0 && h == s->hash && l == s->hash_len;
  if (fd >= 0)
    close(fd);
  if (same) {
    if ((slot = open_file(t, name, s->offset, !at_path)) < 0)
      emit(t, KW_TAIL_ERROR, name, s->offset, 0, "cannot reopen a file to resume it");
    return;
  }
  /* Shrunk or rewritten while keywatch was down: look for the old bytes in a copy.  A
   * current file that changed is then read from its start (kw_tail_start()). */
  if (find_sibling(t, 0, 0, s->offset, s->hash, s->hash_len, copy, sizeof(copy))) {
    if (open_file(t, copy, s->offset, true) >= 0)
      emit(t, KW_TAIL_RECOVERED, copy, s->offset, 0,
           "resuming from a copy of a file truncated while keywatch was down");
  } else {
    emit(t, KW_TAIL_GAP, name, s->offset, -1,
         "file truncated or replaced while keywatch was down; its unread end is lost");
  }
}

int kw_tail_start(struct kw_tail *t, const struct kw_tail_pos *saved, size_t n) {
  int r;

  for (size_t i = 0; i < n; i++)
    resume(t, &saved[i]);
  if (t->cur < 0) {
    struct stat st;
    if (stat(t->path, &st) == 0 && S_ISREG(st.st_mode)) {
      int64_t off = n == 0 && t->opts.start_at_end ? (int64_t)st.st_size : 0;
      /* A file whose inode was resumed above is current already unless it moved. */
      r = open_file(t, t->path, off, false);
      if (r < 0 && r != -ENOENT)
        emit(t, KW_TAIL_ERROR, t->path, 0, 0, strerror(-r));
    }
  }
  if ((r = uv_idle_init(t->loop, &t->more)) != 0)
    return r;
  t->more.data = t;
  t->has_more = true;
  if ((r = uv_timer_init(t->loop, &t->poll)) != 0)
    return r;
  t->poll.data = t;
  t->has_poll = true;
  if ((r = uv_timer_init(t->loop, &t->soon)) != 0)
    return r;
  t->soon.data = t;
  t->has_soon = true;
  if ((r = uv_fs_event_init(t->loop, &t->watch)) != 0)
    return r;
  t->watch.data = t;
  t->has_watch = true;
  /* Without inotify (or with the directory missing) the poll timer alone drives us. */
  t->watching = uv_fs_event_start(&t->watch, on_fs_event, t->dir, 0) == 0;
  if ((r = uv_timer_start(&t->poll, on_poll, t->opts.poll_ms, t->opts.poll_ms)) != 0)
    return r;
  t->started = true;
  return uv_idle_start(&t->more, on_more);
}

size_t kw_tail_positions(struct kw_tail *t, struct kw_tail_pos *out, size_t max) {
  size_t n = 0;
  for (int i = 0; i < KW_TAIL_MAX_FILES && n < max; i++) {
    struct tfile *f = &t->f[i];
    if (f->rd == NULL)
      continue;
    rehash(f);
    out[n++] = (struct kw_tail_pos){
        .dev = f->dev, .ino = f->ino, .offset = (int64_t)kw_reader_offset(f->rd),
        .hash = f->hash, .hash_len = f->hash_len,
    };
  }
  return n;
}

int64_t kw_tail_backlog(struct kw_tail *t) {
  int64_t total = 0;
  for (int i = 0; i < KW_TAIL_MAX_FILES; i++) {
    struct stat st;
    if (t->f[i].rd != NULL && fstat(kw_reader_fd(t->f[i].rd), &st) == 0 &&
        st.st_size > (off_t)kw_reader_offset(t->f[i].rd))
      total += (int64_t)st.st_size - (int64_t)kw_reader_offset(t->f[i].rd);
  }
  return total;
}

const char *kw_tail_path(const struct kw_tail *t) { return t->path; }

size_t kw_tail_consumed(const struct kw_tail *t) { return t->consumed; }

static void on_handle_closed(uv_handle_t *h) {
  struct kw_tail *t = h->data;
  if (--t->open_handles == 0 && t->close_cb)
    t->close_cb(t, t->cbs.ctx);
}

void kw_tail_close(struct kw_tail *t, kw_tail_close_cb cb) {
  t->closing = true;
  t->cur = -1;
  t->close_cb = cb;
  for (int i = 0; i < KW_TAIL_MAX_FILES; i++)
    if (t->f[i].rd != NULL)
      close_file(&t->f[i]);
  t->open_handles = t->has_more + t->has_poll + t->has_watch + t->has_soon;
  if (t->open_handles == 0) {
    if (cb)
      cb(t, t->cbs.ctx);
    return;
  }
  if (t->has_more)
    uv_close((uv_handle_t *)&t->more, on_handle_closed);
  if (t->has_poll)
    uv_close((uv_handle_t *)&t->poll, on_handle_closed);
  if (t->has_watch)
    uv_close((uv_handle_t *)&t->watch, on_handle_closed);
  if (t->has_soon)
    uv_close((uv_handle_t *)&t->soon, on_handle_closed);
}

void kw_tail_destroy(struct kw_tail *t) {
  if (t == NULL)
    return;
  for (int i = 0; i < KW_TAIL_MAX_FILES; i++)
    if (t->f[i].rd != NULL)
      close_file(&t->f[i]);
  free(t);
}
