/* sink_file.c — the "stdout" and "file" sinks: one JSON document per line.
 *
 * Documents are queued and written in batches by libuv's thread pool (uv_fs_write, then
 * uv_fs_fsync for a file), so neither a slow disk nor fsync ever stalls the loop.  One
 * batch is in flight at a time, which keeps lines in send order and makes every write
 * one writev of whole lines:
 *
 *   IDLE ──send (batch starts on the next loop iteration)──► WRITING ──all bytes──► SYNCING (file) ──► callbacks ──► IDLE / next batch
 *                     │ short write: write the rest            │
 *                     └─ error ──────────────► callbacks(error) ┘
 *
 * Decisions:
 *  - The file is opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC with mode 0640 (before umask):
 *    alerts name keys by prefix and fingerprint — not secrets, but not for every local
 *    user; the group bit lets a log shipper's group read it.  O_APPEND keeps lines whole
 *    next to other appenders and after logrotate's copytruncate.
 *  - fsync after every batch: a delivery the outbox marks "done" must survive a power
 *    cut, or the alert would be lost from the file while the store says it was delivered.
 *    Alerts are rare and a batch carries every line queued meanwhile, so the cost is one
 *    fsync per burst, paid on a pool thread.  stdout is not synced (a pipe or terminal
 *    cannot be; its reader owns durability); fsync's EINVAL (a FIFO or /dev/null given as
 *    path) counts as success for the same reason.
 *  - A batch that fails part-way is reported failed as a whole (the outbox sends it
 *    again); if it stopped mid-line, the next batch starts with "\n" so the fragment stays
 *    on its own (invalid) line and every later line is whole.
 *  - kw_sink_reopen (after logrotate's rename): the new file is opened at the next idle
 *    point; if that fails the old descriptor is kept and the error returned.
 *
 * Thread: the loop's; buffers in flight are only touched by the pool thread until the
 * request's callback runs.
 */
#include "sink.h"

#include "sidecar/config.h"
#include "sidecar/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_MODE 0640
#define MAX_QUEUE 4096 /* documents waiting; send() says -EAGAIN beyond */
#define MAX_BATCH 64   /* documents per writev */

struct item {
  struct item *next;
  char *buf; /* document + '\n' */
  size_t len;
  kw_sink_done_cb cb;
  void *arg;
};

enum state { IDLE, WRITING, SYNCING };

struct file_sink {
  uv_loop_t *loop;
  bool is_stdout;
  char *path;
  int fd;
  enum state state;
  struct item *head, **tail; /* queue */
  size_t queued;
  struct item *batch; /* in flight */
  uv_buf_t iov[MAX_BATCH + 1];
  unsigned niov, iov_at; /* iov[iov_at..niov) still to write */
  size_t total, written;
  bool cut;          /* the write stopped inside iov[iov_at] (mid-line) */
  bool need_newline; /* the last batch left a partial line in the file */
  bool reopen_pending, closing;
  uv_fs_t req;
  uv_timer_t handle; /* starts batches (0 ms); closed last: its close callback frees */
  kw_sink_close_cb close_cb;
  void *close_arg;
};

static void start_batch(struct file_sink *f);

static int open_path(const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, FILE_MODE);
  return fd < 0 ? -errno : fd;
}

static int create_common(uv_loop_t *loop, const struct kw_sink_cfg *cfg, bool is_stdout,
                         void **ctx, char *err, size_t errlen) {
  struct file_sink *f = calloc(1, sizeof(*f));
  int r = 0;

  if (f == NULL)
    return KW_ENOMEM;
  f->loop = loop;
  f->is_stdout = is_stdout;
  f->tail = &f->head;
  f->fd = STDOUT_FILENO;
  if (!is_stdout) {
    if (cfg->path == NULL || cfg->path[0] == '\0') {
      snprintf(err, errlen, "path: a file sink needs a path");
      r = KW_EINVAL;
      goto out;
    }
    if ((f->path = strdup(cfg->path)) == NULL) {
      r = KW_ENOMEM;
      goto out;
    }
    if ((f->fd = open_path(f->path)) < 0) {
      r = f->fd;
      snprintf(err, errlen, "path: cannot open '%s': %s", f->path, strerror(-r));
      goto out;
    }
  }
  uv_timer_init(loop, &f->handle);
  f->handle.data = f;
  *ctx = f;
  f = NULL;
out:
  if (f != NULL) {
    free(f->path);
    free(f);
  }
  return r;
}

static int stdout_create(uv_loop_t *loop, const struct kw_sink_cfg *cfg, void **ctx,
                         char *err, size_t errlen) {
  return create_common(loop, cfg, true, ctx, err, errlen);
}

static int file_create(uv_loop_t *loop, const struct kw_sink_cfg *cfg, void **ctx, char *err,
                       size_t errlen) {
  return create_common(loop, cfg, false, ctx, err, errlen);
}

static void on_kick(uv_timer_t *t) {
  struct file_sink *f = t->data;
  if (f->state == IDLE && f->head != NULL && !f->closing)
    start_batch(f);
}

static int file_send(void *ctx, const char *json, size_t len, int severity, kw_sink_done_cb cb,
                     void *arg) {
  struct file_sink *f = ctx;
  struct item *it;
  (void)severity;

  if (f->closing)
    return KW_ECANCELED;
  if (f->queued >= MAX_QUEUE)
    return -EAGAIN;
  if ((it = calloc(1, sizeof(*it))) == NULL || (it->buf = malloc(len + 1)) == NULL) {
    free(it);
    return KW_ENOMEM;
  }
  memcpy(it->buf, json, len);
  it->buf[len] = '\n';
  it->len = len + 1;
  it->cb = cb;
  it->arg = arg;
  *f->tail = it;
  f->tail = &it->next;
  f->queued++;
  /* The batch starts from the loop, never from here: whatever else is sent in this
   * iteration joins it, and no callback can run inside send(). */
  if (f->state == IDLE)
    uv_timer_start(&f->handle, on_kick, 0, 0);
  return 0;
}

static int do_reopen(struct file_sink *f) {
  int fd;
  f->reopen_pending = false;
  if (f->is_stdout)
    return 0;
  if ((fd = open_path(f->path)) < 0)
    return fd;
  close(f->fd);
  f->fd = fd;
  f->need_newline = false;
  return 0;
}

static int file_reopen(void *ctx) {
  struct file_sink *f = ctx;
  if (f->state != IDLE) {
    f->reopen_pending = true;
    return 0;
  }
  return do_reopen(f);
}

static void on_closed(uv_handle_t *h) {
  struct file_sink *f = h->data;
  kw_sink_close_cb cb = f->close_cb;
  void *arg = f->close_arg;
  struct item *it = f->head;

  while (it != NULL) {
    struct item *next = it->next;
    it->cb(KW_ECANCELED, "sink closed", it->arg);
    free(it->buf);
    free(it);
    it = next;
  }
  if (!f->is_stdout && f->fd >= 0)
    close(f->fd);
  free(f->path);
  free(f);
  cb(arg);
}

/* Runs the callbacks of the batch just finished, then moves on.  The state stays busy
 * during the callbacks, so a send(), reopen() or close() made from one only queues or
 * flags; they are acted on below. */
static void finish_batch(struct file_sink *f, int status, const char *reason) {
  struct item *it = f->batch;
  f->batch = NULL;
  while (it != NULL) {
    struct item *next = it->next;
    it->cb(status, reason, it->arg);
    free(it->buf);
    free(it);
    it = next;
  }
  f->state = IDLE;
  if (f->reopen_pending)
    do_reopen(f); /* an error keeps the old descriptor; kw_sink_reopen reported nothing */
  if (f->closing)
    uv_close((uv_handle_t *)&f->handle, on_closed);
  else if (f->head != NULL)
    start_batch(f);
}

static void on_fsync(uv_fs_t *req) {
  struct file_sink *f = req->data;
  ssize_t res = req->result;
  char reason[128];
  uv_fs_req_cleanup(req);
  if (res < 0 && res != UV_EINVAL) {
    snprintf(reason, sizeof(reason), "fsync: %s", uv_strerror((int)res));
    finish_batch(f, (int)res, reason);
  } else {
    finish_batch(f, 0, NULL);
  }
}

static void on_write(uv_fs_t *req) {
  struct file_sink *f = req->data;
  ssize_t res = req->result;
  char reason[128];
  uv_fs_req_cleanup(req);

  if (res < 0 || (res == 0 && f->written < f->total)) {
    /* A line cut short stays alone on its line: the next batch starts with "\n". */
    f->need_newline = f->cut || (f->need_newline && f->written == 0);
    snprintf(reason, sizeof(reason), "write: %s", uv_strerror(res < 0 ? (int)res : UV_EIO));
    finish_batch(f, res < 0 ? (int)res : -EIO, reason);
    return;
  }
  f->written += (size_t)res;
  /* Skip the buffers written completely, shorten the one cut. */
  for (size_t left = (size_t)res; left > 0 && f->iov_at < f->niov;) {
    uv_buf_t *b = &f->iov[f->iov_at];
    if (left >= b->len) {
      left -= b->len;
      f->iov_at++;
      f->cut = false;
    } else {
      b->base += left;
      b->len -= left;
      left = 0;
      f->cut = true;
    }
  }
  if (f->written < f->total) {
    f->req.data = f;
    int r = uv_fs_write(f->loop, &f->req, f->fd, f->iov + f->iov_at, f->niov - f->iov_at, -1,
                        on_write);
    if (r < 0) {
      f->need_newline = f->cut; /* written > 0 here: a leading "\n" is out */
      snprintf(reason, sizeof(reason), "write: %s", uv_strerror(r));
      finish_batch(f, r, reason);
    }
    return;
  }
  f->need_newline = false;
  if (f->is_stdout) {
    finish_batch(f, 0, NULL);
    return;
  }
  f->state = SYNCING;
  f->req.data = f;
  int r = uv_fs_fsync(f->loop, &f->req, f->fd, on_fsync);
  if (r < 0) {
    snprintf(reason, sizeof(reason), "fsync: %s", uv_strerror(r));
    finish_batch(f, r, reason);
  }
}

static void start_batch(struct file_sink *f) {
  static char nl[] = "\n";
  struct item **link = &f->batch;
  char reason[128];
  unsigned n = 0;
  int r;

  f->niov = f->iov_at = 0;
  f->total = f->written = 0;
  f->cut = false;
  if (f->need_newline) {
    f->iov[f->niov++] = uv_buf_init(nl, 1);
    f->total += 1;
  }
  while (f->head != NULL && n < MAX_BATCH) {
    struct item *it = f->head;
    f->head = it->next;
    f->queued--;
    it->next = NULL;
    *link = it;
    link = &it->next;
    f->iov[f->niov++] = uv_buf_init(it->buf, (unsigned)it->len);
    f->total += it->len;
    n++;
  }
  if (f->head == NULL)
    f->tail = &f->head;
  f->state = WRITING;
  f->req.data = f;
  r = uv_fs_write(f->loop, &f->req, f->fd, f->iov, f->niov, -1, on_write);
  if (r < 0) {
    snprintf(reason, sizeof(reason), "write: %s", uv_strerror(r));
    finish_batch(f, r, reason);
  }
}

static void file_close(void *ctx, kw_sink_close_cb cb, void *arg) {
  struct file_sink *f = ctx;
  f->closing = true;
  f->close_cb = cb;
  f->close_arg = arg;
  /* A batch in flight finishes (its bytes may already be on disk) and closes from
   * finish_batch(); the queue is cancelled in on_closed. */
  if (f->state == IDLE)
    uv_close((uv_handle_t *)&f->handle, on_closed);
}

const struct kw_sink_ops kw__sink_stdout_ops = {
    .type = "stdout",
    .create = stdout_create,
    .send = file_send,
    .close = file_close,
};

const struct kw_sink_ops kw__sink_file_ops = {
    .type = "file",
    .create = file_create,
    .send = file_send,
    .reopen = file_reopen,
    .close = file_close,
};
