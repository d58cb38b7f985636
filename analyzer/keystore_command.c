/* keystore_command.c — the "command" key store: runs a configured program per attempt.
 *
 * cfg->argv is an argv array (argv[0] an absolute path, checked at load) whose arguments
 * may hold placeholders, substituted literally inside each argument — there is no shell,
 * so nothing in a value is ever interpreted:
 *
 *   ${key_prefix}       the key's display prefix ("" when unknown)
 *   ${key_fingerprint}  its fingerprint, 32 hex characters
 *   ${key_id}           the key's id at the store from an earlier attempt, or ""
 *   ${rule}             the rule that decided it, or "manual"
 *   ${revocation_id}    the revocation's id
 *   ${action}           "revoke"
 *
 Any other ${name} is refused at create(); a "${" not followed by name and "}" is
 * literal text.  The program runs with stdin, stdout and stderr
 * on /dev/null, in a session of its own (so a timeout kills what it started too), with
 * keywatch's environment minus KEYWATCH_SECRET and every variable a secret of the
 * configuration is read from (another store's credential, an API token, a webhook's
 * header: kw_keystore_cfg.secret_envs).  One run:
 *
 *   spawn ──exit 0──► DONE     ──exit in gone_exit──► GONE     ──other exit/signal──► RETRY
 *     │     └─timeout (cfg->timeout): SIGKILL to its process group ──exit──► RETRY
 *     └─spawn fails ──► RETRY (with the error)
 *   close(): running programs get SIGKILL; their attempts end FAIL "canceled"
 *
 * Each run is reported to on_call as "exec <basename of argv[0]> (N args)": arguments may
 * be sensitive and never reach the audit.  on_call and done run from the close callback of
 * the run's last libuv handle, so never from inside revoke().
 *
 * Ownership: the adapter owns its runs (a list); a run owns its uv_process_t and
 * uv_timer_t and is freed when both are closed.  close() frees the adapter once the last
 * run's handles are closed.
 * Thread: the loop's.
 */
#include "keystore_int.h"

#include "../sidecar/err.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARG_MAX_LEN 65536

struct cmd_run;

struct cmd {
  const struct kw_keystore_env *env;
  const struct kw_keystore_cfg *cfg;
  const char *name;        /* basename of argv[0] */
  struct cmd_run *runs;    /* running (or closing) programs */
  bool closing;
  void (*close_cb)(void *arg);
  void *close_arg;
};

struct cmd_run {
  struct cmd_run *next, *prev;
  struct cmd *c;
  uv_process_t proc;
  uv_timer_t timer;
  int open;                /* handles not yet closed */
  bool exited, timed_out, canceled;
  int spawn_err;           /* uv error of uv_spawn, 0 when it ran */
  int64_t exit_status;
  int term_signal;
  uint64_t t0;             /* uv_hrtime() at spawn */
  int64_t duration_us;
  char ref[256];           /* target->store_ref, passed back */
  kw_keystore_call_cb on_call;
  kw_keystore_done_cb done;
  void *arg;
};

/* ---- placeholders --------------------------------------------------------------------- */

static const char *const placeholders[] = {"key_prefix", "key_fingerprint", "key_id", "rule",
                                           "revocation_id", "action", NULL};

/* The index of the placeholder "${name}" that s starts with, or -1; *n its length. */
static int placeholder_at(const char *s, size_t *n) {
  for (int i = 0; placeholders[i]; i++) {
    size_t l = strlen(placeholders[i]);
    if (strncmp(s, "${", 2) == 0 && strncmp(s + 2, placeholders[i], l) == 0 && s[2 + l] == '}') {
      *n = l + 3;
      return i;
    }
  }
  return -1;
}

/* arg with its placeholders replaced by values[i] (a new buffer), or NULL. */
static char *expand(const char *arg, const char *const values[]) {
  size_t cap = strlen(arg) + 1, o = 0;
  char *out = NULL;

  for (const char *p = arg; *p;) {
    size_t n;
    int i = placeholder_at(p, &n);
    if (i >= 0) {
      cap += strlen(values[i]);
      p += n;
    } else {
      p++;
    }
  }
  if (cap > ARG_MAX_LEN || (out = malloc(cap)) == NULL)
    return NULL;
  for (const char *p = arg; *p;) {
    size_t n;
    int i = placeholder_at(p, &n);
    if (i >= 0) {
      size_t l = strlen(values[i]);
      memcpy(out + o, values[i], l);
      o += l;
      p += n;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
  return out;
}

static void free_args(char **args) {
  if (args == NULL)
    return;
  for (char **a = args; *a; a++)
    kw__ks_secret_free(*a);
  free(args);
}

/* Whether "NAME=value" is the variable name. */
static bool is_var(const char *entry, const char *name) {
  size_t n = strlen(name);
  return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* keywatch's environment without KEYWATCH_SECRET and without every variable another
 * secret of the configuration is read from (the array only: strings borrowed). */
static char **child_env(const struct kw_keystore_cfg *cfg) {
  size_t n = 0, o = 0;
  char **env;
  while (environ[n])
    n++;
  if ((env = calloc(n + 1, sizeof(*env))) == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    bool secret = is_var(environ[i], KW_SECRET_ENV);
    for (size_t k = 0; cfg->secret_envs != NULL && cfg->secret_envs[k] != NULL && !secret; k++)
      secret = is_var(environ[i], cfg->secret_envs[k]);
    if (!secret)
      env[o++] = environ[i];
  }
  return env;
}

/* ---- life ------------------------------------------------------------------------------ */

static int cmd_create(const struct kw_keystore_env *env, const struct kw_keystore_cfg *cfg,
                      void **ctx, char *err, size_t errlen) {
  struct cmd *c;
  const char *slash;

  if (cfg->argv_count == 0 || cfg->argv[0][0] != '/') {
    snprintf(err, errlen, "argv: needs an argv list whose first entry is an absolute path");
    return KW_ECONFIG;
  }
  for (unsigned i = 0; i < cfg->argv_count; i++) {
    for (const char *p = strstr(cfg->argv[i], "${"); p != NULL; p = strstr(p + 1, "${")) {
      size_t n = strspn(p + 2, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
      size_t len;
      /* "${name}" is a placeholder and must be known; anything else is literal text. */
      if (p[2 + n] == '}' && placeholder_at(p, &len) < 0) {
        snprintf(err, errlen,
                 "argv.%u: unknown placeholder %.*s (known: ${key_prefix}, ${key_fingerprint},"
                 " ${key_id}, ${rule}, ${revocation_id}, ${action})",
                 i, n + 3 > 40 ? 40 : (int)n + 3, p);
        return KW_ECONFIG;
      }
    }
  }
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return KW_ENOMEM;
  c->env = env;
  c->cfg = cfg;
  slash = strrchr(cfg->argv[0], '/');
  c->name = slash[1] ? slash + 1 : cfg->argv[0];
  *ctx = c;
  return 0;
}

static void cmd_free(struct cmd *c) {
  void (*cb)(void *) = c->close_cb;
  void *arg = c->close_arg;
  free(c);
  cb(arg);
}

/* Kills a run's program and whatever it started (its process group). */
static void kill_run(struct cmd_run *run) {
  if (run->spawn_err != 0 || run->exited)
    return;
  if (uv_kill(-run->proc.pid, SIGKILL) != 0)
    uv_process_kill(&run->proc, SIGKILL);
}

static void cmd_close(void *ctx, void (*cb)(void *arg), void *arg) {
  struct cmd *c = ctx;
  c->closing = true;
  c->close_cb = cb;
  c->close_arg = arg;
  if (c->runs == NULL) {
    cmd_free(c);
    return;
  }
  for (struct cmd_run *r = c->runs; r != NULL; r = r->next) {
    r->canceled = true;
    kill_run(r);
  }
}

/* ---- one run ---------------------------------------------------------------------------- */

/* Reports the run, unlinks and frees it; frees the adapter when it was the last run of a
 * closing adapter. */
static void run_end(struct cmd_run *run) {
  struct cmd *c = run->c;
  char request[160], detail[160];
  const char *result;
  enum kw_revoke_outcome oc;
  int status;
  bool canceled = run->canceled;

  if (run->spawn_err != 0) {
    oc = KW_REVOKE_RETRY;
    result = "error";
    status = run->spawn_err;
    snprintf(detail, sizeof(detail), "cannot run %s: %s", c->name, uv_strerror(run->spawn_err));
  } else if (run->timed_out) {
    oc = KW_REVOKE_RETRY;
    result = "timeout";
    status = run->term_signal ? -run->term_signal : (int)run->exit_status;
    snprintf(detail, sizeof(detail), "timed out after %lld ms (killed)",
             (long long)(c->cfg->timeout_us / 1000));
  } else if (run->term_signal != 0) {
    oc = KW_REVOKE_RETRY;
    result = "error";
    status = -run->term_signal;
    snprintf(detail, sizeof(detail), "killed by signal %d", run->term_signal);
  } else {
    bool is_gone = false;
    status = (int)run->exit_status;
    for (unsigned i = 0; i < c->cfg->gone_exit_count; i++)
      if ((int64_t)c->cfg->gone_exit[i] == run->exit_status)
        is_gone = true;
    if (run->exit_status == 0) {
      oc = KW_REVOKE_DONE;
      result = "ok";
      snprintf(detail, sizeof(detail), "exit 0");
    } else if (is_gone) {
      oc = KW_REVOKE_GONE;
      result = "gone";
      snprintf(detail, sizeof(detail), "exit %d: already gone", status);
    } else {
      oc = KW_REVOKE_RETRY;
      result = "error";
      snprintf(detail, sizeof(detail), "exit %d", status);
    }
  }
  snprintf(request, sizeof(request), "exec %s (%u arg%s)", c->name, c->cfg->argv_count - 1,
           c->cfg->argv_count == 2 ? "" : "s");
  struct kw_revocation_call call = {
      .store = c->cfg->name,
      .request = request,
      .status = status,
      .duration_us = run->duration_us,
      .result = result,
      .detail = detail,
  };
  struct kw_revoke_result res = {
      .outcome = canceled ? KW_REVOKE_FAIL : oc,
      .store_ref = run->ref[0] ? run->ref : NULL,
      .detail = canceled ? "canceled" : detail,
  };
  if (!canceled)
    run->on_call(&call, run->arg);
  run->done(&res, run->arg);

  if (run->prev != NULL)
    run->prev->next = run->next;
  else
    c->runs = run->next;
  if (run->next != NULL)
    run->next->prev = run->prev;
  free(run);
  if (c->closing && c->runs == NULL)
    cmd_free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  struct cmd_run *run = h->data;
  if (--run->open == 0)
    run_end(run);
}

static void close_handles(struct cmd_run *run) {
  uv_close((uv_handle_t *)&run->timer, on_handle_closed);
  uv_close((uv_handle_t *)&run->proc, on_handle_closed);
}

static void on_exited(uv_process_t *p, int64_t exit_status, int term_signal) {
  struct cmd_run *run = p->data;
  run->exited = true;
  run->exit_status = exit_status;
  run->term_signal = term_signal;
  run->duration_us = (int64_t)((uv_hrtime() - run->t0) / 1000);
  uv_timer_stop(&run->timer);
  close_handles(run);
}

static void on_timeout(uv_timer_t *t) {
  struct cmd_run *run = t->data;
  run->timed_out = true;
  kill_run(run); /* on_exited follows */
}

static int cmd_revoke(void *ctx, const struct kw_revoke_target *t,
                      kw_keystore_call_cb on_call, kw_keystore_done_cb done, void *arg) {
  struct cmd *c = ctx;
  const struct kw_keystore_cfg *cfg = c->cfg;
  struct cmd_run *run = NULL;
  char **args = NULL, **env = NULL, fphex[2 * KW_FP_LEN + 1], rid[24];
  int r;

  if (c->closing)
    return KW_ECANCELED;
  if (t->fp == NULL)
    return KW_EINVAL;
  kw_fingerprint_hex(t->fp, fphex);
  snprintf(rid, sizeof(rid), "%lld", (long long)t->id);
  const char *values[] = {
      t->prefix ? t->prefix : "", fphex, t->store_ref ? t->store_ref : "",
      t->rule ? t->rule : "manual", rid, t->action ? t->action : "revoke",
  };
  if ((run = calloc(1, sizeof(*run))) == NULL ||
      (args = calloc(cfg->argv_count + 1, sizeof(*args))) == NULL ||
      (env = child_env(c->cfg)) == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  for (unsigned i = 0; i < cfg->argv_count; i++)
    if ((args[i] = expand(cfg->argv[i], values)) == NULL) {
      r = KW_ENOMEM; /* or longer than ARG_MAX_LEN */
      goto fail;
    }
  run->c = c;
  run->on_call = on_call;
  run->done = done;
  run->arg = arg;
  snprintf(run->ref, sizeof(run->ref), "%s", t->store_ref ? t->store_ref : "");

  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_IGNORE}};
  uv_process_options_t opts = {
      .exit_cb = on_exited,
      .file = args[0],
      .args = args,
      .env = env,
      .flags = UV_PROCESS_DETACHED, /* setsid(): its own process group, killed as one */
      .stdio_count = 3,
      .stdio = stdio,
  };
  uv_timer_init(c->env->loop, &run->timer);
  run->timer.data = run;
  run->proc.data = run;
  run->open = 2;
  run->t0 = uv_hrtime();
  r = uv_spawn(c->env->loop, &run->proc, &opts);
  free_args(args);
  free(env);
  run->next = c->runs;
  if (c->runs != NULL)
    c->runs->prev = run;
  c->runs = run;
  if (r != 0) {
    /* Reported from the handles' close callbacks, never from here. */
    run->spawn_err = r;
    run->duration_us = (int64_t)((uv_hrtime() - run->t0) / 1000);
    close_handles(run);
    return 0;
  }
  uint64_t ms = (uint64_t)(cfg->timeout_us / 1000);
  uv_timer_start(&run->timer, on_timeout, ms ? ms : 1, 0);
  return 0;
fail:
  free_args(args);
  free(env);
  free(run);
  return r;
}

const struct kw_keystore_ops kw__keystore_command_ops = {
    .type = "command",
    .create = cmd_create,
    .revoke = cmd_revoke,
    .close = cmd_close,
};
