/* tail.h — following one log file as it is written, across rotation and truncation.
 *
 * A kw_tail watches one path.  It delivers every complete line once, in file order, and
 * tells its owner where it stands (kw_tail_positions()), so the owner can commit those
 * positions in the same transaction as the calls the lines became: after a crash the
 * tail is restarted from the committed positions and nothing is lost or read twice.
 *
 * Files a tail may hold open at once:
 *   current    the file now at `path`;
 *   rotated    files that were at `path` and were renamed away (logrotate `create`) or
 *              unlinked: still read, because the proxy keeps writing into them until it
 *              reopens its log, and closed after `rotate_wait_ms` without growth.
 * A position is (device, inode, offset, hash of the up to 4 KiB before offset); at start,
 * each saved position is found again by inode — at `path` or among its siblings, where
 * rotation may have moved it — and checked by the hash, so a reused inode is not mistaken
 * for the old file.  Truncation (logrotate `copytruncate`) is detected by size; the
 * unread tail of the old content is then recovered from the copy when a sibling holds
 * the same bytes at the same offset.  Data that cannot be recovered (a rotated file
 * deleted before it was read, content replaced while keywatch was down) is reported as
 * a KW_TAIL_GAP event, never silently skipped.
 *
 *   missing ──(path appears)──► reading ◄──(more data)──┐
 *      ▲                          │ │                    │
 *      └──(path gone)─────────────┘ └──(EOF: wait for inotify/poll)
 *   rotated: reading ──(quiet for rotate_wait_ms)──► closed
 *
 * Events come from inotify on the parent directory (uv_fs_event) for low latency, and a
 * poll timer (poll_ms) that also covers file systems without inotify.  Each wake-up reads
 * at most max_read bytes per file, then yields to the loop (uv_idle) if more is waiting,
 * so one busy file cannot starve the other handles; the file itself is the buffer.
 *
 * Thread: the loop's thread.  Lifecycle: kw_tail_init() → kw_tail_start() → … →
 * kw_tail_close(cb); memory is freed by the owner in or after cb.
 */
#ifndef KW_TAIL_H
#define KW_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define KW_TAIL_MAX_FILES 4 /* current + rotated files held open at once */
#define KW_TAIL_HASH_WINDOW 4096

struct kw_tail_pos {
  uint64_t dev, ino;
  int64_t offset;     /* bytes of complete lines delivered */
  uint64_t hash;      /* XXH3 of the hash_len bytes before offset */
  uint32_t hash_len;
};

enum kw_tail_event {
  KW_TAIL_OPENED,    /* a file is being read (info: path, offset) */
  KW_TAIL_ROTATED,   /* the file at path was renamed or unlinked; still draining it */
  KW_TAIL_CLOSED,    /* a rotated file was drained and closed */
  KW_TAIL_TRUNCATED, /* the file shrank (copytruncate); reading from 0 */
  KW_TAIL_RECOVERED, /* unread bytes of a truncated/rotated file found in a sibling */
  KW_TAIL_GAP,       /* data that can no longer be read: bytes (or -1: unknown) */
  KW_TAIL_ERROR,     /* an I/O error (info: detail) */
};

struct kw_tail_info {
  enum kw_tail_event event;
  const char *path;   /* the file concerned (may be a rotated sibling) */
  int64_t offset;
  int64_t bytes;      /* GAP: bytes lost, -1 when unknown */
  const char *detail; /* human-readable cause */
};

struct kw_tail;

/* A complete line (without '\n'); valid during the call only. */
typedef void (*kw_tail_line_cb)(struct kw_tail *t, const char *line, size_t len, void *ctx);
/* A line longer than the reader's bound was skipped. */
typedef void (*kw_tail_skip_cb)(struct kw_tail *t, void *ctx);
typedef void (*kw_tail_event_cb)(struct kw_tail *t, const struct kw_tail_info *info,
                                 void *ctx);
/* Called after each wake-up that delivered lines (a good moment to commit). */
typedef void (*kw_tail_idle_cb)(struct kw_tail *t, void *ctx);
typedef void (*kw_tail_close_cb)(struct kw_tail *t, void *ctx);

struct kw_tail_opts {
  unsigned poll_ms;        /* stat polling interval (default 250) */
  unsigned rotate_wait_ms; /* keep reading a rotated file this long after it went quiet
                              (default 5000) */
  size_t max_read;         /* bytes per file per wake-up (default 8 MiB) */
  bool start_at_end;       /* with no saved position, start at the end (default: 0) */
};

struct kw_tail_cbs {
  kw_tail_line_cb on_line;
  kw_tail_skip_cb on_skip;
  kw_tail_event_cb on_event;
  kw_tail_idle_cb on_idle; /* may be NULL */
  void *ctx;
};

/* Allocates a tail for path (copied). Returns 0 or KW_ENOMEM/KW_EINVAL.  Thread: loop. */
int kw_tail_create(uv_loop_t *loop, const char *path, const struct kw_tail_opts *opts,
                   const struct kw_tail_cbs *cbs, struct kw_tail **out);

/* Resumes from saved positions (may be n == 0) and starts watching.  Lines already
 * waiting in the file are delivered from the loop, not from this call.  Returns 0 or a
 * negative error (then nothing was started; close it). */
int kw_tail_start(struct kw_tail *t, const struct kw_tail_pos *saved, size_t n);

/* Positions of every file held open, for committing; returns how many (<= max). Reads up
 * to KW_TAIL_HASH_WINDOW bytes per file for the hash (cached while offsets don't move). */
size_t kw_tail_positions(struct kw_tail *t, struct kw_tail_pos *out, size_t max);

/* Input bytes taken by the line being delivered (during on_line/on_skip): the line, its
 * end, and the rest of a skipped overlong line before it. */
size_t kw_tail_consumed(const struct kw_tail *t);

/* Bytes in the files not yet delivered (size - offset, summed): the lag in bytes. */
int64_t kw_tail_backlog(struct kw_tail *t);

const char *kw_tail_path(const struct kw_tail *t);

/* Stops watching, closes files and handles; cb runs once all handles are closed, after
 * which the owner may free the tail with kw_tail_destroy().  No line is delivered after
 * this call. */
void kw_tail_close(struct kw_tail *t, kw_tail_close_cb cb);

/* Frees a tail that was never started or whose close callback has run. */
void kw_tail_destroy(struct kw_tail *t);

#endif
