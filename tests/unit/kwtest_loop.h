/* kwtest_loop.h — running a libuv loop in bounded steps, and the loopback peers the loop
 * tests talk to (tests only).
 *
 * The loop: run_until() runs uv_run(UV_RUN_ONCE) until *counter reaches want, and
 * run_until_pred() until pred(arg) holds, each for ms at the most (a 10 ms tick keeps
 * uv_run moving); both return whether the goal was reached, so a hang is a failed
 * assertion, not a stuck CI job.  on_closed() is the close callback that bumps the int it
 * is given; close_wait_finish() follows a close(…, on_closed, &closed): the callback must
 * not have run from within close, must run once, and the loop must then close cleanly.
 *
 * Peers: the Python tools of tests/tools (tools_dir(), from $KW_FIXTURES) run as
 * subprocesses.  peer_start() / peer_startv() fork `python3 TOOL ARGS…`, record the pid in
 * a struct peers (so a teardown can stop what an assertion jumped past, peers_stop_all())
 * and, given a port file, wait (bounded) until the peer has written its port there;
 * peer_stop() sends SIGTERM, then SIGKILL after 3 s, and reaps.  free_port() is a loopback
 * port that was free a moment ago (bound, never listened: connecting is refused).
 * unset_proxy_env() keeps libcurl from sending loopback requests to a proxy.
 *
 * A test with peers: peer_env_setup() makes its temp directory (temp_dir_make()) and unsets
 * the proxy variables; peer_env_teardown() stops the peers an assertion left running and
 * removes the directory.
 *
 * Everything is static inline: a test uses what it needs, the rest costs nothing.
 * Include after cmocka.h (and the headers it needs: setjmp.h, stdarg.h, stddef.h).
 * Thread: main only.
 */
#ifndef KWTEST_LOOP_H
#define KWTEST_LOOP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "kwtest_files.h"

#define PEERS_MAX 8      /* peers one test runs at a time */
#define PEER_MAX_ARGS 24 /* arguments after the script */

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* ---- the loop --------------------------------------------------------------------------- */

static inline void on_tick(uv_timer_t *t) {
  (void)t;
}

static inline void on_closed(void *arg) {
  (*(int *)arg)++;
}

/* Runs loop until pred(arg) holds or ms pass; returns pred(arg). */
static inline bool run_until_pred(uv_loop_t *loop, bool (*pred)(void *arg), void *arg,
                                  uint64_t ms) {
  uv_timer_t tick;
  uint64_t end;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  uv_update_time(loop);
  end = uv_now(loop) + ms;
  while (!pred(arg) && uv_now(loop) < end)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return pred(arg);
}

struct count_goal {
  const int *counter;
  int want;
};

static inline bool count_reached(void *arg) {
  const struct count_goal *g = arg;
  return *g->counter >= g->want;
}

/* Runs loop until *counter >= want or ms pass; returns *counter >= want. */
static inline bool run_until(uv_loop_t *loop, const int *counter, int want, uint64_t ms) {
  struct count_goal g = {counter, want};
  return run_until_pred(loop, count_reached, &g, ms);
}

/* After x_close(…, on_closed, closed): checks the callback did not run from within close,
 * runs the loop until it did (ms at most), runs the loop out and checks it closes. */
static inline void close_wait_finish(uv_loop_t *loop, const int *closed, uint64_t ms) {
  assert_int_equal(*closed, 0); /* never from within close */
  assert_true(run_until(loop, closed, 1, ms));
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(*closed, 1);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- peers ------------------------------------------------------------------------------ */

/* The subprocesses a test has running (0: a free slot). */
struct peers {
  pid_t pid[PEERS_MAX];
};

static inline const char *tools_dir(void) {
  static char buf[512];
  const char *fx = getenv("KW_FIXTURES");
  if (fx == NULL)
    fail_msg("KW_FIXTURES is not set (run through ctest)");
  snprintf(buf, sizeof(buf), "%s/../tools", fx);
  return buf;
}

static inline void peers_forget(struct peers *ps, pid_t pid) {
  for (int i = 0; i < PEERS_MAX; i++)
    if (ps->pid[i] == pid)
      ps->pid[i] = 0;
}

/* Stops pid (SIGTERM, SIGKILL after 3 s), reaps it and forgets it.  pid <= 0: nothing. */
static inline void peer_stop(struct peers *ps, pid_t pid) {
  int st;
  if (pid <= 0)
    return;
  peers_forget(ps, pid);
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return;
    sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
}

static inline void peers_stop_all(struct peers *ps) {
  for (int i = 0; i < PEERS_MAX; i++)
    if (ps->pid[i] > 0)
      peer_stop(ps, ps->pid[i]);
}

/* Starts `python3 TOOLS/script args…` (args NULL-terminated, may be NULL) and records it
 * in ps.  With a port_file (removed first), waits up to 10 s until the peer has written
 * its port there (into *port); the test fails if it exits or does not write it. */
static inline pid_t peer_startv(struct peers *ps, const char *script, const char *port_file,
                                int *port, const char *const *args) {
  char path[600];
  const char *argv[PEER_MAX_ARGS + 3];
  int n = 0;
  pid_t pid;

  snprintf(path, sizeof(path), "%s/%s", tools_dir(), script);
  argv[n++] = "python3";
  argv[n++] = path;
  for (; args != NULL && *args != NULL; args++) {
    assert_true(n < PEER_MAX_ARGS + 2);
    argv[n++] = *args;
  }
  argv[n] = NULL;
  if (port_file != NULL)
    unlink(port_file);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execvp("python3", (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < PEERS_MAX; i++)
    if (ps->pid[i] == 0) {
      ps->pid[i] = pid;
      break;
    }
  if (port_file == NULL)
    return pid;
  for (int i = 0; i < 1000; i++) {
    FILE *f = fopen(port_file, "r");
    if (f != NULL) {
      int ok = fscanf(f, "%d", port) == 1;
      fclose(f);
      if (ok)
        return pid;
    }
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      peers_forget(ps, pid);
      fail_msg("%s exited before listening", script);
    }
    sleep_ms(10);
  }
  fail_msg("%s did not write %s", script, port_file);
  return -1;
}

/* peer_startv() with the arguments listed, up to a NULL. */
static inline pid_t peer_start(struct peers *ps, const char *script, const char *port_file,
                               int *port, ...) {
  const char *args[PEER_MAX_ARGS + 2];
  int n = 0;
  va_list ap;
  va_start(ap, port);
  for (const char *a; n <= PEER_MAX_ARGS && (a = va_arg(ap, const char *)) != NULL;)
    args[n++] = a;
  va_end(ap);
  assert_true(n <= PEER_MAX_ARGS);
  args[n] = NULL;
  return peer_startv(ps, script, port_file, port, args);
}

/* A loopback port of type (SOCK_STREAM, SOCK_DGRAM) that was free: bound, then closed. */
static inline int free_port(int type) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, type, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static inline void unset_proxy_env(void) {
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("all_proxy");
  unsetenv("ALL_PROXY");
}

/* ---- a test with peers ------------------------------------------------------------------ */

/* Makes /tmp/TAG.XXXXXX (into dir) and unsets the proxy variables.  Returns 0 or -1. */
static inline int peer_env_setup(char *dir, size_t len, const char *tag) {
  if (temp_dir_make(dir, len, tag) != 0)
    return -1;
  unset_proxy_env();
  return 0;
}

/* Stops every peer in ps and removes dir.  Returns 0 or -1. */
static inline int peer_env_teardown(struct peers *ps, const char *dir) {
  peers_stop_all(ps);
  return temp_dir_remove(dir);
}

#endif
