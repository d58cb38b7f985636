/* config.h — keywatch's configuration: YAML (libcyaml) with built-in defaults.
 *
 * Every option is declared once, as data, in config.c's schema; `keywatch.yaml` at the
 * top of the tree documents each one.  Loading validates everything (unknown keys,
 * types, ranges, format names, time units), so nothing is checked again on the hot path.
 * Errors name the file, line and field.  With no file, kw_config_default() gives a
 * configuration that works on a plain nginx/Apache log.
 * Thread: read-only after load; shared freely.
 */
#ifndef KW_CONFIG_H
#define KW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where keys are looked for, and what is redacted (see collector/keyid.h). */
struct kw_identity_cfg {
  char **headers;        /* lower-case header names carrying a raw key */
  unsigned headers_count;
  char **auth_schemes;   /* "bearer", "token", "apikey", "basic" */
  unsigned auth_schemes_count;
  char **query_params;   /* query parameters carrying a raw key */
  unsigned query_params_count;
  char **redact_params;  /* query parameters whose values are never stored */
  unsigned redact_params_count;
  unsigned prefix_length; /* display prefix characters (Metabase shows 7) */
};

/* One extra JSON field that carries a request header. */
struct kw_json_header_cfg {
  char *header; /* "x-api-key" */
  char *path;   /* "http_x_api_key" */
};

/* JSON-lines mapping: a preset, overridden field by field. */
struct kw_json_cfg {
  char *preset;
  char *time, *addr, *method, *uri, *path, *query, *proto, *host, *user_agent, *referer,
      *status, *req_bytes, *resp_bytes, *latency, *key, *key_id, *headers;
  struct kw_json_header_cfg *header_fields;
  unsigned header_fields_count;
  char *time_format;  /* auto, iso8601, epoch_s, epoch_ms, epoch_us, epoch_ns, clf */
  char *latency_unit; /* s, ms, us, ns */
};

struct kw_ingest_cfg {
  char *format;       /* "auto", a built-in nginx name, "nginx", or a JSON preset */
  char *log_format;   /* an nginx log_format, as pasted from nginx.conf */
  char *escape;       /* default, json, none (for log_format) */
  struct kw_json_cfg *json;
  unsigned batch_rows; /* rows per committed transaction */
  unsigned max_errors_shown; /* malformed lines reported with file:line */
};

/* A name for a key, matched by fingerprint (hex) or display prefix. */
struct kw_key_name_cfg {
  char *fingerprint;
  char *prefix;
  char *name;
};

/* A source for `keywatch run`. */
struct kw_source_cfg {
  char *name;       /* default: the path or listen address */
  char *type;       /* file, syslog, pcap */
  char *path;       /* file: a path or a glob (a "*" in the last component) */
  char *listen;     /* syslog: udp://HOST:PORT or tcp://HOST:PORT */
  char *format;     /* overrides ingest.format for this source */
  char *log_format; /* overrides ingest.log_format */
  char *escape;     /* overrides ingest.escape */
  char *start_at;   /* file with no saved position: beginning (default) or end */
  char *interface;  /* pcap: the network interface to capture on ("lo", "eth0") */
  char *bpf;        /* pcap: BPF filter ("tcp port 8080") */
  unsigned snaplen; /* pcap: bytes captured per packet (0: 262144) */
};

/* The daemon's loop settings. */
struct kw_run_cfg {
  unsigned commit_ms;      /* group commit interval (default 50) */
  unsigned poll_ms;        /* file stat polling interval (default 250) */
  unsigned rotate_wait_ms; /* keep reading a rotated file this long after it is quiet */
  unsigned status_ms;      /* source status written every … (default 1000) */
  unsigned udp_rcvbuf;     /* syslog UDP receive buffer bytes (0: system default) */
  char *log_level;         /* debug, info, warn, error */
};

/* A header a webhook sends, its value read from the environment (never from YAML). */
struct kw_sink_header_cfg {
  char *name;
  char *env;
};

/* Where alerts are delivered (see analyzer/sink.h). */
struct kw_sink_cfg {
  char *name;          /* default: the type */
  char *type;          /* stdout, file, webhook, syslog */
  char *path;          /* file: JSON lines appended here */
  char *url;           /* webhook: POST target */
  struct kw_sink_header_cfg *headers;
  unsigned headers_count;
  char *hmac_secret_env; /* webhook: HMAC-SHA256 signature key, from this variable */
  char *address;       /* syslog: udp://HOST:PORT or tcp://HOST:PORT */
  char *min_severity;  /* info (default), low, medium, high, critical */
  unsigned timeout_ms; /* webhook/syslog per delivery (default 5000) */
};

/* A secret the responder sends to a key store: from an environment variable or a file
 * (which must not be readable by group or others); never from the YAML itself. */
struct kw_secret_cfg {
  char *env;
  char *file;
};

/* A header of a key-store request; the value is `prefix` + the secret, or `value` when
 * it is no secret. */
struct kw_store_header_cfg {
  char *name;
  char *value;                 /* plain value (may hold ${...} placeholders) */
  char *prefix;                /* put before the secret ("Bearer ") */
  struct kw_secret_cfg *secret;
};

/* The http adapter's lookup call: how a key maps to the store's id. */
struct kw_lookup_cfg {
  char *method;      /* GET (default) */
  char *url;         /* may hold placeholders */
  char *items;       /* dotted path to the array of keys in the answer ("" = the answer) */
  char *match_field; /* field of an item compared with the key */
  char *match;       /* prefix (field starts with / is the display prefix), fingerprint
                      * (field is the raw key: fingerprinted), fingerprint_hex */
  char *id_field;    /* field of the matching item that is ${key_id} */
};

struct kw_seatable_base_cfg {
  unsigned workspace_id;
  char *base_name;
  char *dtable_uuid;   /* needed with system_admin */
};

/* A key store the responder can revoke keys at (see analyzer/keystore.h). */
struct kw_keystore_cfg {
  char *name;          /* default: the type */
  char *type;          /* metabase, seatable, kong, http, command */
  char *url;           /* base URL (metabase, seatable, kong); revoke URL (http) */
  char **prefixes;     /* display prefixes this store owns ("mb_"); default per type */
  unsigned prefixes_count;
  char *action;        /* revoke (default) or regenerate (metabase) */
  char *auth;          /* metabase: api_key (X-API-Key, default) or session */
  struct kw_secret_cfg *credential;
  /* seatable: the bases whose tokens are watched */
  struct kw_seatable_base_cfg *bases;
  unsigned bases_count;
  bool system_admin;   /* seatable: revoke through /api/v2.1/admin/… */
  /* http */
  char *method;
  struct kw_store_header_cfg *headers;
  unsigned headers_count;
  char *body;
  unsigned *success;   /* status codes meaning revoked (default 200, 204) */
  unsigned success_count;
  unsigned *gone;      /* status codes meaning "not there any more" (default 404, 410) */
  unsigned gone_count;
  struct kw_lookup_cfg *lookup;
  /* command */
  char **argv;
  unsigned argv_count;
  unsigned *gone_exit; /* exit codes meaning "not there any more" */
  unsigned gone_exit_count;
  char *timeout;       /* per call (default 5s) */
  int64_t timeout_us;  /* parsed at load */
  /* set at load: every environment variable a secret of the whole configuration is read
   * from (NULL-terminated; the strings are the config's) — a command never inherits them */
  const char *const *secret_envs;
};

/* Automatic revocation and its safeguards (analyzer/responder.h). */
struct kw_responder_cfg {
  bool *dry_run;         /* default true: decisions are recorded, nothing is revoked */
  char *min_severity;    /* default high */
  unsigned max_per_hour; /* default 3 */
  unsigned max_per_day;  /* default 10 */
  char *key_cooldown;    /* default 24h */
  char *max_age;         /* default 1h: older decisions (a replayed log) are not carried out */
  char *give_up_after;   /* default 24h */
  char *retry_initial;   /* default 1s */
  char *retry_max;       /* default 5m */
  char *inventory_interval; /* default 10m; 0 disables */
  char **protect;        /* key selectors never revoked automatically */
  unsigned protect_count;
  struct kw_keystore_cfg *stores;
  unsigned stores_count;
  /* parsed at load from the strings above */
  int min_sev;
  int64_t key_cooldown_us, max_age_us, give_up_us, retry_initial_us, retry_max_us,
      inventory_us;
};

/* A token of the HTTP API (docs/api.md): a name (shown as who acknowledged an alert), a
 * role, and the token itself from the environment or a 0600 file. */
struct kw_http_token_cfg {
  char *name;
  char *role;                 /* viewer, responder */
  struct kw_secret_cfg *secret;
};

/* The HTTP API, dashboard and /metrics (`keywatch serve`; `keywatch run` with listen). */
struct kw_http_cfg {
  char *listen;               /* "127.0.0.1:8080"; run: NULL = no server */
  struct kw_http_token_cfg *tokens;
  unsigned tokens_count;
  char **allowed_hosts;       /* names served in Host besides IP literals and localhost */
  unsigned allowed_hosts_count;
};

/* Permission reviews (`keywatch review`, and scheduled in `keywatch run`). */
struct kw_review_cfg {
  char *period;        /* default 30d */
  char *unused_after;  /* default 30d */
  char *dormant_after; /* default 30d */
  char *max_age;       /* default 365d; 0: no rotation finding */
  unsigned max_sources; /* default 10 */
  char *schedule;      /* cron (5 fields, UTC); NULL: no scheduled reviews */
  char *output_dir;    /* scheduled reports are written here (default: next to the db) */
  char **formats;      /* of the scheduled reports (default [html, json]) */
  unsigned formats_count;
  bool *alerts;        /* scheduled findings raised as alerts (default true) */
  /* parsed at load */
  int64_t period_us, unused_us, dormant_us, max_age_us;
};

/* Retention of the audit trail (store.h kw_store_prune()) and of the alert outbox. */
struct kw_retention_cfg {
  char *calls;     /* keep calls this long ("90d"); "0" (default): forever */
  char *interval;  /* `keywatch run` prunes this often (default 1h) */
  unsigned outbox_max_pending; /* pending alert deliveries kept (default 100000) */
  /* parsed at load */
  int64_t calls_us, interval_us;
};

struct kw_config {
  char *file; /* the file it was loaded from, NULL for defaults */
  char *db;
  char *secret_file;
  struct kw_identity_cfg identity;
  struct kw_ingest_cfg ingest;
  struct kw_key_name_cfg *keys;
  unsigned keys_count;
  struct kw_source_cfg *sources;
  unsigned sources_count;
  struct kw_run_cfg run;
  char **rules;        /* rule packs: file paths, or "builtin:NAME"; default builtin:default */
  unsigned rules_count;
  struct kw_sink_cfg *sinks;
  unsigned sinks_count;
  struct kw_responder_cfg responder;
  struct kw_review_cfg review;
  struct kw_http_cfg http;
  struct kw_retention_cfg retention;
  const char **secret_envs; /* set at load (see kw_keystore_cfg.secret_envs) */
};

/* Loads and validates path.  Returns 0 and a new config (free with kw_config_destroy()),
 * or KW_ECONFIG/-errno with "FILE:LINE: FIELD: problem" in err.  FIELD is a dotted path
 * whose sequence entries count from 0 ("keys.1" is the second entry).  KW_ENOMEM comes
 * with "FILE: out of memory". */
int kw_config_load(const char *path, struct kw_config **out, char *err, size_t errlen);

/* The built-in defaults, as if an empty file had been loaded. */
int kw_config_default(struct kw_config **out);

/* NULL is a no-op. */
void kw_config_destroy(struct kw_config *cfg);

/* Reports a problem found after loading (by a later validation) the way load does:
 * "FILE:LINE: FIELD: message" into err, where LINE is where the dotted field path
 * ("ingest.format", "keys.2.name") stands in the file; without a file, "FIELD: message".
 * Returns KW_ECONFIG. */
int kw_config_error(const struct kw_config *cfg, const char *field, char *err, size_t errlen,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The 1-based line of a dotted field path ("rules.2.window") in a YAML file; 0 when it
 * cannot be found.  For error messages only (reads the file). */
unsigned kw_config_locate(const char *file, const char *field);

/* Replaces a string option (for command-line overrides); copies value. */
int kw_config_set(char **slot, const char *value);

#endif
