/* config.c — YAML configuration (see config.h).
 *
 * The schema below is the single declaration of every option; keywatch.yaml documents
 * them.  libcyaml does the typing and reports a backtrace with line numbers, which on_log
 * turns into "FILE:LINE:COL: field.path: problem".  Checks libcyaml cannot express
 * (ranges, names) run after loading and locate their field's line with a second, cheap
 * libyaml pass (locate_line) — only on the error path.
 */
#include "config.h"
#include "cron.h"
#include "err.h"
#include "timeutil.h"
#include "yamlfile.h"

#include <cyaml/cyaml.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schema ------------------------------------------------------------------------ */

static const cyaml_schema_value_t string_ptr = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

#define STR_FIELD(key, type, member)                                                     \
  CYAML_FIELD_STRING_PTR(key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, type, member, 0,  \
                         CYAML_UNLIMITED)
#define STRLIST_FIELD(key, type, member)                                                 \
  CYAML_FIELD_SEQUENCE(key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, type, member,       \
                       &string_ptr, 0, CYAML_UNLIMITED)

static const cyaml_schema_field_t identity_fields[] = {
    STRLIST_FIELD("headers", struct kw_identity_cfg, headers),
    STRLIST_FIELD("auth_schemes", struct kw_identity_cfg, auth_schemes),
    STRLIST_FIELD("query_params", struct kw_identity_cfg, query_params),
    STRLIST_FIELD("redact_params", struct kw_identity_cfg, redact_params),
    CYAML_FIELD_UINT("prefix_length", CYAML_FLAG_OPTIONAL, struct kw_identity_cfg,
                     prefix_length),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t json_header_fields[] = {
    STR_FIELD("header", struct kw_json_header_cfg, header),
    STR_FIELD("path", struct kw_json_header_cfg, path),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t json_header_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_json_header_cfg, json_header_fields),
};

static const cyaml_schema_field_t json_fields[] = {
    STR_FIELD("preset", struct kw_json_cfg, preset),
    STR_FIELD("time", struct kw_json_cfg, time),
    STR_FIELD("addr", struct kw_json_cfg, addr),
    STR_FIELD("method", struct kw_json_cfg, method),
    STR_FIELD("uri", struct kw_json_cfg, uri),
    STR_FIELD("path", struct kw_json_cfg, path),
    STR_FIELD("query", struct kw_json_cfg, query),
    STR_FIELD("proto", struct kw_json_cfg, proto),
    STR_FIELD("host", struct kw_json_cfg, host),
    STR_FIELD("user_agent", struct kw_json_cfg, user_agent),
    STR_FIELD("referer", struct kw_json_cfg, referer),
    STR_FIELD("status", struct kw_json_cfg, status),
    STR_FIELD("req_bytes", struct kw_json_cfg, req_bytes),
    STR_FIELD("resp_bytes", struct kw_json_cfg, resp_bytes),
    STR_FIELD("latency", struct kw_json_cfg, latency),
    STR_FIELD("key", struct kw_json_cfg, key),
    STR_FIELD("key_id", struct kw_json_cfg, key_id),
    STR_FIELD("headers", struct kw_json_cfg, headers),
    CYAML_FIELD_SEQUENCE("header_fields", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_json_cfg, header_fields, &json_header_entry, 0,
                         CYAML_UNLIMITED),
    STR_FIELD("time_format", struct kw_json_cfg, time_format),
    STR_FIELD("latency_unit", struct kw_json_cfg, latency_unit),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t ingest_fields[] = {
    STR_FIELD("format", struct kw_ingest_cfg, format),
    STR_FIELD("log_format", struct kw_ingest_cfg, log_format),
    STR_FIELD("escape", struct kw_ingest_cfg, escape),
    CYAML_FIELD_MAPPING_PTR("json", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            struct kw_ingest_cfg, json, json_fields),
    CYAML_FIELD_UINT("batch_rows", CYAML_FLAG_OPTIONAL, struct kw_ingest_cfg, batch_rows),
    CYAML_FIELD_UINT("max_errors_shown", CYAML_FLAG_OPTIONAL, struct kw_ingest_cfg,
                     max_errors_shown),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t key_name_fields[] = {
    STR_FIELD("fingerprint", struct kw_key_name_cfg, fingerprint),
    STR_FIELD("prefix", struct kw_key_name_cfg, prefix),
    STR_FIELD("name", struct kw_key_name_cfg, name),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t key_name_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_key_name_cfg, key_name_fields),
};

static const cyaml_schema_field_t source_fields[] = {
    STR_FIELD("name", struct kw_source_cfg, name),
    STR_FIELD("type", struct kw_source_cfg, type),
    STR_FIELD("path", struct kw_source_cfg, path),
    STR_FIELD("listen", struct kw_source_cfg, listen),
    STR_FIELD("format", struct kw_source_cfg, format),
    STR_FIELD("log_format", struct kw_source_cfg, log_format),
    STR_FIELD("escape", struct kw_source_cfg, escape),
    STR_FIELD("start_at", struct kw_source_cfg, start_at),
    STR_FIELD("interface", struct kw_source_cfg, interface),
    STR_FIELD("bpf", struct kw_source_cfg, bpf),
    CYAML_FIELD_UINT("snaplen", CYAML_FLAG_OPTIONAL, struct kw_source_cfg, snaplen),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t source_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_source_cfg, source_fields),
};

static const cyaml_schema_field_t run_fields[] = {
    CYAML_FIELD_UINT("commit_ms", CYAML_FLAG_OPTIONAL, struct kw_run_cfg, commit_ms),
    CYAML_FIELD_UINT("poll_ms", CYAML_FLAG_OPTIONAL, struct kw_run_cfg, poll_ms),
    CYAML_FIELD_UINT("rotate_wait_ms", CYAML_FLAG_OPTIONAL, struct kw_run_cfg,
                     rotate_wait_ms),
    CYAML_FIELD_UINT("status_ms", CYAML_FLAG_OPTIONAL, struct kw_run_cfg, status_ms),
    CYAML_FIELD_UINT("udp_rcvbuf", CYAML_FLAG_OPTIONAL, struct kw_run_cfg, udp_rcvbuf),
    STR_FIELD("log_level", struct kw_run_cfg, log_level),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t sink_header_fields[] = {
    STR_FIELD("name", struct kw_sink_header_cfg, name),
    STR_FIELD("env", struct kw_sink_header_cfg, env),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t sink_header_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_sink_header_cfg, sink_header_fields),
};

static const cyaml_schema_field_t sink_fields[] = {
    STR_FIELD("name", struct kw_sink_cfg, name),
    STR_FIELD("type", struct kw_sink_cfg, type),
    STR_FIELD("path", struct kw_sink_cfg, path),
    STR_FIELD("url", struct kw_sink_cfg, url),
    CYAML_FIELD_SEQUENCE("headers", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_sink_cfg, headers, &sink_header_entry, 0, CYAML_UNLIMITED),
    STR_FIELD("hmac_secret_env", struct kw_sink_cfg, hmac_secret_env),
    STR_FIELD("address", struct kw_sink_cfg, address),
    STR_FIELD("min_severity", struct kw_sink_cfg, min_severity),
    CYAML_FIELD_UINT("timeout_ms", CYAML_FLAG_OPTIONAL, struct kw_sink_cfg, timeout_ms),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t sink_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_sink_cfg, sink_fields),
};

/* ---- responder (key stores and safeguards) ---- */

static const cyaml_schema_value_t uint_entry = {
    CYAML_VALUE_UINT(CYAML_FLAG_DEFAULT, unsigned),
};

#define UINTLIST_FIELD(key, type, member)                                                \
  CYAML_FIELD_SEQUENCE(key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, type, member,       \
                       &uint_entry, 0, CYAML_UNLIMITED)

static const cyaml_schema_field_t secret_fields[] = {
    STR_FIELD("env", struct kw_secret_cfg, env),
    STR_FIELD("file", struct kw_secret_cfg, file),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t store_header_fields[] = {
    STR_FIELD("name", struct kw_store_header_cfg, name),
    STR_FIELD("value", struct kw_store_header_cfg, value),
    STR_FIELD("prefix", struct kw_store_header_cfg, prefix),
    CYAML_FIELD_MAPPING_PTR("secret", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            struct kw_store_header_cfg, secret, secret_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t store_header_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_store_header_cfg, store_header_fields),
};

static const cyaml_schema_field_t lookup_fields[] = {
    STR_FIELD("method", struct kw_lookup_cfg, method),
    STR_FIELD("url", struct kw_lookup_cfg, url),
    STR_FIELD("items", struct kw_lookup_cfg, items),
    STR_FIELD("match_field", struct kw_lookup_cfg, match_field),
    STR_FIELD("match", struct kw_lookup_cfg, match),
    STR_FIELD("id_field", struct kw_lookup_cfg, id_field),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t seatable_base_fields[] = {
    CYAML_FIELD_UINT("workspace_id", CYAML_FLAG_DEFAULT, struct kw_seatable_base_cfg,
                     workspace_id),
    STR_FIELD("base_name", struct kw_seatable_base_cfg, base_name),
    STR_FIELD("dtable_uuid", struct kw_seatable_base_cfg, dtable_uuid),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t seatable_base_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_seatable_base_cfg, seatable_base_fields),
};

static const cyaml_schema_field_t keystore_fields[] = {
    STR_FIELD("name", struct kw_keystore_cfg, name),
    STR_FIELD("type", struct kw_keystore_cfg, type),
    STR_FIELD("url", struct kw_keystore_cfg, url),
    STRLIST_FIELD("prefixes", struct kw_keystore_cfg, prefixes),
    STR_FIELD("action", struct kw_keystore_cfg, action),
    STR_FIELD("auth", struct kw_keystore_cfg, auth),
    CYAML_FIELD_MAPPING_PTR("credential", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            struct kw_keystore_cfg, credential, secret_fields),
    CYAML_FIELD_SEQUENCE("bases", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_keystore_cfg, bases, &seatable_base_entry, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_BOOL("system_admin", CYAML_FLAG_OPTIONAL, struct kw_keystore_cfg,
                     system_admin),
    STR_FIELD("method", struct kw_keystore_cfg, method),
    CYAML_FIELD_SEQUENCE("headers", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_keystore_cfg, headers, &store_header_entry, 0,
                         CYAML_UNLIMITED),
    STR_FIELD("body", struct kw_keystore_cfg, body),
    UINTLIST_FIELD("success", struct kw_keystore_cfg, success),
    UINTLIST_FIELD("gone", struct kw_keystore_cfg, gone),
    CYAML_FIELD_MAPPING_PTR("lookup", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            struct kw_keystore_cfg, lookup, lookup_fields),
    STRLIST_FIELD("argv", struct kw_keystore_cfg, argv),
    UINTLIST_FIELD("gone_exit", struct kw_keystore_cfg, gone_exit),
    STR_FIELD("timeout", struct kw_keystore_cfg, timeout),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t keystore_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_keystore_cfg, keystore_fields),
};

static const cyaml_schema_field_t responder_fields[] = {
    CYAML_FIELD_BOOL_PTR("dry_run", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_responder_cfg, dry_run),
    STR_FIELD("min_severity", struct kw_responder_cfg, min_severity),
    CYAML_FIELD_UINT("max_per_hour", CYAML_FLAG_OPTIONAL, struct kw_responder_cfg,
                     max_per_hour),
    CYAML_FIELD_UINT("max_per_day", CYAML_FLAG_OPTIONAL, struct kw_responder_cfg,
                     max_per_day),
    STR_FIELD("key_cooldown", struct kw_responder_cfg, key_cooldown),
    STR_FIELD("max_age", struct kw_responder_cfg, max_age),
    STR_FIELD("give_up_after", struct kw_responder_cfg, give_up_after),
    STR_FIELD("retry_initial", struct kw_responder_cfg, retry_initial),
    STR_FIELD("retry_max", struct kw_responder_cfg, retry_max),
    STR_FIELD("inventory_interval", struct kw_responder_cfg, inventory_interval),
    STRLIST_FIELD("protect", struct kw_responder_cfg, protect),
    CYAML_FIELD_SEQUENCE("stores", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_responder_cfg, stores, &keystore_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t review_fields[] = {
    STR_FIELD("period", struct kw_review_cfg, period),
    STR_FIELD("unused_after", struct kw_review_cfg, unused_after),
    STR_FIELD("dormant_after", struct kw_review_cfg, dormant_after),
    STR_FIELD("max_age", struct kw_review_cfg, max_age),
    CYAML_FIELD_UINT("max_sources", CYAML_FLAG_OPTIONAL, struct kw_review_cfg, max_sources),
    STR_FIELD("schedule", struct kw_review_cfg, schedule),
    STR_FIELD("output_dir", struct kw_review_cfg, output_dir),
    STRLIST_FIELD("formats", struct kw_review_cfg, formats),
    CYAML_FIELD_BOOL_PTR("alerts", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_review_cfg, alerts),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t http_token_fields[] = {
    STR_FIELD("name", struct kw_http_token_cfg, name),
    STR_FIELD("role", struct kw_http_token_cfg, role),
    CYAML_FIELD_MAPPING_PTR("secret", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            struct kw_http_token_cfg, secret, secret_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t http_token_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct kw_http_token_cfg, http_token_fields),
};

static const cyaml_schema_field_t http_fields[] = {
    STR_FIELD("listen", struct kw_http_cfg, listen),
    CYAML_FIELD_SEQUENCE("tokens", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_http_cfg, tokens, &http_token_entry, 0, CYAML_UNLIMITED),
    STRLIST_FIELD("allowed_hosts", struct kw_http_cfg, allowed_hosts),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t retention_fields[] = {
    STR_FIELD("calls", struct kw_retention_cfg, calls),
    STR_FIELD("interval", struct kw_retention_cfg, interval),
    CYAML_FIELD_UINT("outbox_max_pending", CYAML_FLAG_OPTIONAL, struct kw_retention_cfg,
                     outbox_max_pending),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t top_fields[] = {
    STR_FIELD("db", struct kw_config, db),
    STR_FIELD("secret_file", struct kw_config, secret_file),
    CYAML_FIELD_MAPPING("identity", CYAML_FLAG_OPTIONAL, struct kw_config, identity,
                        identity_fields),
    CYAML_FIELD_MAPPING("ingest", CYAML_FLAG_OPTIONAL, struct kw_config, ingest,
                        ingest_fields),
    CYAML_FIELD_SEQUENCE("keys", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct kw_config,
                         keys, &key_name_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("sources", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         struct kw_config, sources, &source_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING("run", CYAML_FLAG_OPTIONAL, struct kw_config, run, run_fields),
    STRLIST_FIELD("rules", struct kw_config, rules),
    CYAML_FIELD_SEQUENCE("sinks", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct kw_config,
                         sinks, &sink_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING("responder", CYAML_FLAG_OPTIONAL, struct kw_config, responder,
                        responder_fields),
    CYAML_FIELD_MAPPING("review", CYAML_FLAG_OPTIONAL, struct kw_config, review,
                        review_fields),
    CYAML_FIELD_MAPPING("http", CYAML_FLAG_OPTIONAL, struct kw_config, http, http_fields),
    CYAML_FIELD_MAPPING("retention", CYAML_FLAG_OPTIONAL, struct kw_config, retention,
                        retention_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t top_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct kw_config, top_fields),
};

/* ---- defaults ---------------------------------------------------------------------- */

static const char *const default_headers[] = {"x-api-key", "apikey", "api-key",
                                              "x-api-token", NULL};
static const char *const default_schemes[] = {"bearer", "token", "apikey", "basic", NULL};
static const char *const default_query[] = {"api_key", "apikey", "api-key", "access_token",
                                            NULL};
static const char *const default_redact[] = {
    "api_key", "apikey", "api-key", "access_token", "token", "key", "password", "passwd",
    "pwd", "secret", "client_secret", "signature", "sig", "x-amz-signature", "auth",
    "session", "sessionid", "code", NULL};
static const char *const known_schemes[] = {"bearer", "token", "apikey", "basic", NULL};
static const char *const known_escapes[] = {"default", "json", "none", NULL};
static const char *const known_time_formats[] = {"auto", "iso8601", "epoch_s", "epoch_ms",
                                                 "epoch_us", "epoch_ns", "clf", NULL};
static const char *const known_units[] = {"s", "ms", "us", "ns", NULL};
static const char *const known_source_types[] = {"file", "syslog", "pcap", NULL};
static const char *const known_start_at[] = {"beginning", "end", NULL};
static const char *const known_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const known_sink_types[] = {"stdout", "file", "webhook", "syslog", NULL};
static const char *const known_severities[] = {"info", "low", "medium", "high", "critical",
                                               NULL};
static const char *const default_rules[] = {"builtin:default", NULL};

static int set_list(char ***list, unsigned *count, const char *const *vals) {
  unsigned n = 0;
  while (vals[n] != NULL)
    n++;
  *list = calloc(n ? n : 1, sizeof(char *));
  if (*list == NULL)
    return KW_ENOMEM;
  for (*count = 0; *count < n; (*count)++) {
    (*list)[*count] = strdup(vals[*count]);
    if ((*list)[*count] == NULL)
      return KW_ENOMEM;
  }
  return 0;
}

int kw_config_set(char **slot, const char *value) {
  char *copy = value ? strdup(value) : NULL;
  if (value != NULL && copy == NULL)
    return KW_ENOMEM;
  free(*slot);
  *slot = copy;
  return 0;
}

static const char *const known_store_types[] = {"metabase", "seatable", "kong", "http",
                                                "command", NULL};
static const char *const known_store_actions[] = {"revoke", "regenerate", NULL};
static const char *const known_mb_auth[] = {"api_key", "session", NULL};
static const char *const known_lookup_match[] = {"prefix", "fingerprint", "fingerprint_hex",
                                                 NULL};
static const char *const known_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static int responder_defaults(struct kw_responder_cfg *rc) {
  int r = 0;
  if (rc->dry_run == NULL) {
    if ((rc->dry_run = malloc(sizeof(*rc->dry_run))) == NULL)
      return KW_ENOMEM;
    *rc->dry_run = true; /* automation is switched on explicitly, after `keywatch shadow` */
  }
  if (rc->min_severity == NULL)
    r = r ? r : kw_config_set(&rc->min_severity, "high");
  if (rc->max_per_hour == 0)
    rc->max_per_hour = 3;
  if (rc->max_per_day == 0)
    rc->max_per_day = 10;
  if (rc->key_cooldown == NULL)
    r = r ? r : kw_config_set(&rc->key_cooldown, "24h");
  if (rc->max_age == NULL)
    r = r ? r : kw_config_set(&rc->max_age, "1h");
  if (rc->give_up_after == NULL)
    r = r ? r : kw_config_set(&rc->give_up_after, "24h");
  if (rc->retry_initial == NULL)
    r = r ? r : kw_config_set(&rc->retry_initial, "1s");
  if (rc->retry_max == NULL)
    r = r ? r : kw_config_set(&rc->retry_max, "5m");
  if (rc->inventory_interval == NULL)
    r = r ? r : kw_config_set(&rc->inventory_interval, "10m");
  for (unsigned i = 0; i < rc->stores_count && r == 0; i++) {
    struct kw_keystore_cfg *k = &rc->stores[i];
    if (k->name == NULL && k->type != NULL)
      r = kw_config_set(&k->name, k->type);
    if (r == 0 && k->action == NULL)
      r = kw_config_set(&k->action, "revoke");
    if (r == 0 && k->timeout == NULL)
      r = kw_config_set(&k->timeout, "5s");
    if (r == 0 && k->type != NULL && strcmp(k->type, "metabase") == 0 && k->auth == NULL)
      r = kw_config_set(&k->auth, "api_key");
    if (r == 0 && k->type != NULL && strcmp(k->type, "metabase") == 0 && k->prefixes == NULL) {
      static const char *const mb[] = {"mb_", NULL};
      r = set_list(&k->prefixes, &k->prefixes_count, mb);
    }
  }
  return r;
}

static const char *const known_report_formats[] = {"table", "md", "csv", "json", "html",
                                                   NULL};

static int review_defaults(struct kw_review_cfg *rv) {
  static const char *const formats[] = {"html", "json", NULL};
  int r = 0;
  if (rv->period == NULL)
    r = r ? r : kw_config_set(&rv->period, "30d");
  if (rv->unused_after == NULL)
    r = r ? r : kw_config_set(&rv->unused_after, "30d");
  if (rv->dormant_after == NULL)
    r = r ? r : kw_config_set(&rv->dormant_after, "30d");
  if (rv->max_age == NULL)
    r = r ? r : kw_config_set(&rv->max_age, "365d");
  if (rv->max_sources == 0)
    rv->max_sources = 10;
  if (rv->formats == NULL)
    r = r ? r : set_list(&rv->formats, &rv->formats_count, formats);
  if (rv->alerts == NULL) {
    if ((rv->alerts = malloc(sizeof(*rv->alerts))) == NULL)
      return KW_ENOMEM;
    *rv->alerts = true;
  }
  return r;
}

static int apply_defaults(struct kw_config *c) {
  struct kw_identity_cfg *id = &c->identity;
  int r = 0;

  if (c->db == NULL)
    r = r ? r : kw_config_set(&c->db, "keywatch.db");
  if (id->headers == NULL)
    r = r ? r : set_list(&id->headers, &id->headers_count, default_headers);
  if (id->auth_schemes == NULL)
    r = r ? r : set_list(&id->auth_schemes, &id->auth_schemes_count, default_schemes);
  if (id->query_params == NULL)
    r = r ? r : set_list(&id->query_params, &id->query_params_count, default_query);
  if (id->redact_params == NULL)
    r = r ? r : set_list(&id->redact_params, &id->redact_params_count, default_redact);
  if (id->prefix_length == 0)
    id->prefix_length = 7;
  if (c->ingest.format == NULL)
    r = r ? r : kw_config_set(&c->ingest.format, c->ingest.log_format ? "nginx" : "auto");
  if (c->ingest.escape == NULL)
    r = r ? r : kw_config_set(&c->ingest.escape, "default");
  if (c->ingest.batch_rows == 0)
    c->ingest.batch_rows = 200000;
  if (c->ingest.max_errors_shown == 0)
    c->ingest.max_errors_shown = 5;
  if (c->run.commit_ms == 0)
    c->run.commit_ms = 50;
  if (c->run.poll_ms == 0)
    c->run.poll_ms = 250;
  if (c->run.rotate_wait_ms == 0)
    c->run.rotate_wait_ms = 5000;
  if (c->run.status_ms == 0)
    c->run.status_ms = 1000;
  if (c->run.log_level == NULL)
    r = r ? r : kw_config_set(&c->run.log_level, "info");
  if (c->rules == NULL)
    r = r ? r : set_list(&c->rules, &c->rules_count, default_rules);
  for (unsigned i = 0; i < c->sinks_count; i++) {
    struct kw_sink_cfg *k = &c->sinks[i];
    if (k->name == NULL && k->type != NULL)
      r = r ? r : kw_config_set(&k->name, k->type);
    if (k->min_severity == NULL)
      r = r ? r : kw_config_set(&k->min_severity, "info");
    if (k->timeout_ms == 0)
      k->timeout_ms = 5000;
  }
  r = r ? r : responder_defaults(&c->responder);
  r = r ? r : review_defaults(&c->review);
  if (c->retention.calls == NULL)
    r = r ? r : kw_config_set(&c->retention.calls, "0");
  if (c->retention.interval == NULL)
    r = r ? r : kw_config_set(&c->retention.interval, "1h");
  if (c->retention.outbox_max_pending == 0)
    c->retention.outbox_max_pending = 100000;
  for (unsigned i = 0; i < c->sources_count; i++) {
    struct kw_source_cfg *src = &c->sources[i];
    if (src->type == NULL)
      r = r ? r : kw_config_set(&src->type, src->interface ? "pcap"
                                            : src->listen && !src->path ? "syslog" : "file");
    if (src->name == NULL && (src->path || src->listen || src->interface))
      r = r ? r : kw_config_set(&src->name, src->path ? src->path
                                            : src->listen ? src->listen : src->interface);
    if (src->start_at == NULL)
      r = r ? r : kw_config_set(&src->start_at, "beginning");
  }
  return r;
}

/* ---- error reporting (YAML loading and locating: yaml.c) -------------------------- */

int kw_config_error(const struct kw_config *cfg, const char *field, char *err, size_t errlen,
                    const char *fmt, ...) {
  char msg[512];
  va_list ap;
  unsigned line = 0;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (cfg != NULL && cfg->file != NULL) {
    line = kw_yaml_locate(cfg->file, NULL, 0, field);
    if (line > 0)
      snprintf(err, errlen, "%s:%u: %s: %s", cfg->file, line, field, msg);
    else
      snprintf(err, errlen, "%s: %s: %s", cfg->file, field, msg);
  } else {
    snprintf(err, errlen, "%s: %s", field, msg);
  }
  return KW_ECONFIG;
}

/* ---- validation -------------------------------------------------------------------- */

static int one_of(const char *v, const char *const *set) {
  for (; *set != NULL; set++)
    if (strcmp(v, *set) == 0)
      return 1;
  return 0;
}

static void join(const char *const *set, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (; *set != NULL && o < len; set++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", *set);
}

static int check_enum(const struct kw_config *c, const char *field, const char *v,
                      const char *const *set, char *err, size_t errlen) {
  char choices[256];
  if (v == NULL || one_of(v, set))
    return 0;
  join(set, choices, sizeof(choices));
  return kw_config_error(c, field, err, errlen, "'%s' is not one of: %s", v, choices);
}

static int lower_list(const struct kw_config *c, const char *name, char **list, unsigned n,
                      char *err, size_t errlen) {
  char field[64];
  for (unsigned i = 0; i < n; i++) {
    if (list[i][0] == '\0') {
      snprintf(field, sizeof(field), "identity.%s.%u", name, i);
      return kw_config_error(c, field, err, errlen, "empty name");
    }
    for (char *p = list[i]; *p; p++)
      *p = (char)tolower((unsigned char)*p);
  }
  return 0;
}

static int check_duration(const struct kw_config *c, const char *field, const char *v,
                          int64_t *us, char *err, size_t errlen) {
  if (kw_duration_parse(v, us) != 0)
    return kw_config_error(c, field, err, errlen,
                           "'%s' is not a duration (30s, 250ms, 10m, 24h, 7d)", v);
  return 0;
}

static int check_secret(const struct kw_config *c, const char *field,
                        const struct kw_secret_cfg *s, char *err, size_t errlen) {
  if (s == NULL)
    return 0;
  if ((s->env == NULL) == (s->file == NULL))
    return kw_config_error(c, field, err, errlen,
                           "needs exactly one of 'env' (a variable) or 'file' (mode 0600)");
  return 0;
}

static int validate_store(struct kw_config *c, unsigned i, char *err, size_t errlen) {
  struct kw_keystore_cfg *k = &c->responder.stores[i];
  char field[96];
  int r;

#define F(sub) (snprintf(field, sizeof(field), "responder.stores.%u%s", i, sub), field)
  if (k->type == NULL)
    return kw_config_error(c, F(".type"), err, errlen,
                           "missing (metabase, seatable, kong, http, command)");
  if ((r = check_enum(c, F(".type"), k->type, known_store_types, err, errlen)) != 0 ||
      (r = check_enum(c, F(".action"), k->action, known_store_actions, err, errlen)) != 0 ||
      (r = check_enum(c, F(".auth"), k->auth, known_mb_auth, err, errlen)) != 0 ||
      (r = check_enum(c, F(".method"), k->method, known_methods, err, errlen)) != 0 ||
      (r = check_duration(c, F(".timeout"), k->timeout, &k->timeout_us, err, errlen)) != 0 ||
      (r = check_secret(c, F(".credential"), k->credential, err, errlen)) != 0)
    return r;
  if (k->timeout_us < 1000 || k->timeout_us > 300 * 1000000LL)
    return kw_config_error(c, F(".timeout"), err, errlen, "out of range (1ms to 5m)");
  if (strcmp(k->action, "regenerate") == 0 && strcmp(k->type, "metabase") != 0)
    return kw_config_error(c, F(".action"), err, errlen,
                           "only a metabase store can regenerate; the others revoke");
  if (strcmp(k->type, "command") == 0) {
    if (k->argv_count == 0 || k->argv[0][0] != '/')
      return kw_config_error(c, F(".argv"), err, errlen,
                             "needs an argv list whose first entry is an absolute path");
  } else if (k->url == NULL) {
    return kw_config_error(c, F(""), err, errlen, "a %s store needs 'url'", k->type);
  }
  if (strcmp(k->type, "seatable") == 0) {
    if (k->bases_count == 0)
      return kw_config_error(c, F(".bases"), err, errlen,
                             "a seatable store needs its bases (workspace_id, base_name)");
    for (unsigned b = 0; b < k->bases_count; b++) {
      char sub[48];
      snprintf(sub, sizeof(sub), ".bases.%u", b);
      if (k->bases[b].base_name == NULL || (k->system_admin && !k->bases[b].dtable_uuid))
        return kw_config_error(c, F(sub), err, errlen,
                               "needs 'base_name'%s", k->system_admin ? " and 'dtable_uuid'"
                                                                      : "");
    }
  }
  if (strcmp(k->type, "http") == 0 && k->lookup != NULL) {
    struct kw_lookup_cfg *l = k->lookup;
    if (l->url == NULL || l->match_field == NULL || l->id_field == NULL)
      return kw_config_error(c, F(".lookup"), err, errlen,
                             "needs 'url', 'match_field' and 'id_field'");
    if ((r = check_enum(c, F(".lookup.match"), l->match, known_lookup_match, err, errlen)) ||
        (r = check_enum(c, F(".lookup.method"), l->method, known_methods, err, errlen)))
      return r;
  }
  for (unsigned h = 0; h < k->headers_count; h++) {
    struct kw_store_header_cfg *hd = &k->headers[h];
    char sub[48];
    snprintf(sub, sizeof(sub), ".headers.%u", h);
    if (hd->name == NULL || (hd->value == NULL) == (hd->secret == NULL))
      return kw_config_error(c, F(sub), err, errlen,
                             "needs 'name' and one of 'value' or 'secret' ({env: VAR} or "
                             "{file: PATH})");
    snprintf(sub, sizeof(sub), ".headers.%u.secret", h);
    if ((r = check_secret(c, F(sub), hd->secret, err, errlen)) != 0)
      return r;
  }
  for (unsigned j = 0; j < i; j++) {
    if (strcmp(c->responder.stores[j].name, k->name) == 0)
      return kw_config_error(c, F(".name"), err, errlen, "'%s' names stores %u and %u",
                             k->name, j, i);
  }
#undef F
  return 0;
}

static int validate_responder(struct kw_config *c, char *err, size_t errlen) {
  struct kw_responder_cfg *rc = &c->responder;
  int r;
  if ((r = check_enum(c, "responder.min_severity", rc->min_severity, known_severities, err,
                      errlen)) != 0 ||
      (r = check_duration(c, "responder.key_cooldown", rc->key_cooldown, &rc->key_cooldown_us,
                          err, errlen)) != 0 ||
      (r = check_duration(c, "responder.max_age", rc->max_age, &rc->max_age_us, err,
                          errlen)) != 0 ||
      (r = check_duration(c, "responder.give_up_after", rc->give_up_after, &rc->give_up_us,
                          err, errlen)) != 0 ||
      (r = check_duration(c, "responder.retry_initial", rc->retry_initial,
                          &rc->retry_initial_us, err, errlen)) != 0 ||
      (r = check_duration(c, "responder.retry_max", rc->retry_max, &rc->retry_max_us, err,
                          errlen)) != 0 ||
      (r = check_duration(c, "responder.inventory_interval", rc->inventory_interval,
                          &rc->inventory_us, err, errlen)) != 0)
    return r;
  for (int s = 0; known_severities[s]; s++)
    if (strcmp(known_severities[s], rc->min_severity) == 0)
      rc->min_sev = s;
  if (rc->retry_initial_us < 10000 || rc->retry_max_us < rc->retry_initial_us)
    return kw_config_error(c, "responder.retry_initial", err, errlen,
                           "must be at least 10ms and at most retry_max");
  if (rc->max_per_day < rc->max_per_hour)
    return kw_config_error(c, "responder.max_per_day", err, errlen,
                           "%u is less than max_per_hour (%u)", rc->max_per_day,
                           rc->max_per_hour);
  for (unsigned i = 0; i < rc->stores_count; i++)
    if ((r = validate_store(c, i, err, errlen)) != 0)
      return r;
  return 0;
}

static int validate_review(struct kw_config *c, char *err, size_t errlen) {
  struct kw_review_cfg *rv = &c->review;
  int r;
  if ((r = check_duration(c, "review.period", rv->period, &rv->period_us, err, errlen)) ||
      (r = check_duration(c, "review.unused_after", rv->unused_after, &rv->unused_us, err,
                          errlen)) ||
      (r = check_duration(c, "review.dormant_after", rv->dormant_after, &rv->dormant_us, err,
                          errlen)) ||
      (r = check_duration(c, "review.max_age", rv->max_age, &rv->max_age_us, err, errlen)))
    return r;
  if (rv->schedule != NULL) {
    struct kw_cron cron;
    char why[200];
    if (kw_cron_parse(rv->schedule, &cron, why, sizeof(why)) != 0)
      return kw_config_error(c, "review.schedule", err, errlen, "%s", why);
  }
  if (rv->period_us < 86400LL * 1000000)
    return kw_config_error(c, "review.period", err, errlen, "at least one day (1d)");
  for (unsigned i = 0; i < rv->formats_count; i++) {
    char field[48];
    snprintf(field, sizeof(field), "review.formats.%u", i);
    if ((r = check_enum(c, field, rv->formats[i], known_report_formats, err, errlen)) != 0)
      return r;
  }
  return 0;
}

static int validate(struct kw_config *c, char *err, size_t errlen) {
  struct kw_identity_cfg *id = &c->identity;
  int r;

  if (id->prefix_length > 16)
    return kw_config_error(c, "identity.prefix_length", err, errlen,
                           "%u is out of range (1 to 16)", id->prefix_length);
  if (c->ingest.batch_rows > 1000000)
    return kw_config_error(c, "ingest.batch_rows", err, errlen,
                           "%u is out of range (1 to 1000000)", c->ingest.batch_rows);
  if ((r = lower_list(c, "headers", id->headers, id->headers_count, err, errlen)) != 0 ||
      (r = lower_list(c, "auth_schemes", id->auth_schemes, id->auth_schemes_count, err,
                      errlen)) != 0 ||
      (r = lower_list(c, "query_params", id->query_params, id->query_params_count, err,
                      errlen)) != 0 ||
      (r = lower_list(c, "redact_params", id->redact_params, id->redact_params_count, err,
                      errlen)) != 0)
    return r;
  for (unsigned i = 0; i < id->auth_schemes_count; i++) {
    char field[64];
    snprintf(field, sizeof(field), "identity.auth_schemes.%u", i);
    if ((r = check_enum(c, field, id->auth_schemes[i], known_schemes, err, errlen)) != 0)
      return r;
  }
  if ((r = check_enum(c, "ingest.escape", c->ingest.escape, known_escapes, err, errlen)))
    return r;
  if (c->ingest.json != NULL) {
    if ((r = check_enum(c, "ingest.json.time_format", c->ingest.json->time_format,
                        known_time_formats, err, errlen)) != 0 ||
        (r = check_enum(c, "ingest.json.latency_unit", c->ingest.json->latency_unit,
                        known_units, err, errlen)) != 0)
      return r;
    for (unsigned i = 0; i < c->ingest.json->header_fields_count; i++) {
      struct kw_json_header_cfg *h = &c->ingest.json->header_fields[i];
      char field[64];
      snprintf(field, sizeof(field), "ingest.json.header_fields.%u", i);
      if (h->header == NULL || h->path == NULL)
        return kw_config_error(c, field, err, errlen, "needs both 'header' and 'path'");
      for (char *p = h->header; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    }
  }
  if ((r = check_enum(c, "run.log_level", c->run.log_level, known_log_levels, err, errlen)))
    return r;
  if (c->run.commit_ms > 60000 || c->run.poll_ms > 600000)
    return kw_config_error(c, c->run.commit_ms > 60000 ? "run.commit_ms" : "run.poll_ms", err,
                           errlen, "out of range (commit_ms <= 60000, poll_ms <= 600000)");
  for (unsigned i = 0; i < c->sources_count; i++) {
    struct kw_source_cfg *src = &c->sources[i];
    char field[64];
    snprintf(field, sizeof(field), "sources.%u.type", i);
    if ((r = check_enum(c, field, src->type, known_source_types, err, errlen)) != 0)
      return r;
    snprintf(field, sizeof(field), "sources.%u.start_at", i);
    if ((r = check_enum(c, field, src->start_at, known_start_at, err, errlen)) != 0)
      return r;
    snprintf(field, sizeof(field), "sources.%u.escape", i);
    if ((r = check_enum(c, field, src->escape, known_escapes, err, errlen)) != 0)
      return r;
    snprintf(field, sizeof(field), "sources.%u", i);
    if (strcmp(src->type, "file") == 0 && src->path == NULL)
      return kw_config_error(c, field, err, errlen, "a file source needs 'path'");
    if (strcmp(src->type, "syslog") == 0 && src->listen == NULL)
      return kw_config_error(c, field, err, errlen,
                             "a syslog source needs 'listen' (udp://HOST:PORT or tcp://…)");
    if (strcmp(src->type, "pcap") == 0 && src->interface == NULL)
      return kw_config_error(c, field, err, errlen, "a pcap source needs 'interface'");
    for (unsigned j = 0; j < i; j++) {
      if (strcmp(c->sources[j].name, src->name) == 0) {
        snprintf(field, sizeof(field), "sources.%u.name", i);
        return kw_config_error(c, field, err, errlen, "'%s' names sources %u and %u",
                               src->name, j, i);
      }
    }
  }
  for (unsigned i = 0; i < c->sinks_count; i++) {
    struct kw_sink_cfg *k = &c->sinks[i];
    char field[64];
    snprintf(field, sizeof(field), "sinks.%u.type", i);
    if (k->type == NULL)
      return kw_config_error(c, field, err, errlen, "missing (stdout, file, webhook, syslog)");
    if ((r = check_enum(c, field, k->type, known_sink_types, err, errlen)) != 0)
      return r;
    snprintf(field, sizeof(field), "sinks.%u.min_severity", i);
    if ((r = check_enum(c, field, k->min_severity, known_severities, err, errlen)) != 0)
      return r;
    snprintf(field, sizeof(field), "sinks.%u", i);
    if ((strcmp(k->type, "file") == 0 && k->path == NULL) ||
        (strcmp(k->type, "webhook") == 0 && k->url == NULL) ||
        (strcmp(k->type, "syslog") == 0 && k->address == NULL))
      return kw_config_error(c, field, err, errlen,
                             "a %s sink needs '%s'", k->type,
                             strcmp(k->type, "file") == 0      ? "path"
                             : strcmp(k->type, "webhook") == 0 ? "url"
                                                               : "address");
    for (unsigned h = 0; h < k->headers_count; h++) {
      if (k->headers[h].name == NULL || k->headers[h].env == NULL) {
        snprintf(field, sizeof(field), "sinks.%u.headers.%u", i, h);
        return kw_config_error(c, field, err, errlen,
                               "needs 'name' and 'env' (values come from the environment)");
      }
    }
    for (unsigned j = 0; j < i; j++) {
      if (strcmp(c->sinks[j].name, k->name) == 0) {
        snprintf(field, sizeof(field), "sinks.%u.name", i);
        return kw_config_error(c, field, err, errlen, "'%s' names sinks %u and %u", k->name,
                               j, i);
      }
    }
  }
  for (unsigned i = 0; i < c->keys_count; i++) {
    struct kw_key_name_cfg *k = &c->keys[i];
    char field[64];
    snprintf(field, sizeof(field), "keys.%u", i);
    if (k->name == NULL || (k->fingerprint == NULL && k->prefix == NULL))
      return kw_config_error(c, field, err, errlen,
                             "needs 'name' and one of 'fingerprint' or 'prefix'");
    if (k->fingerprint != NULL && strlen(k->fingerprint) != 32)
      return kw_config_error(c, field, err, errlen,
                             "fingerprint must be 32 hex characters (see `keywatch keys`)");
  }
  if ((r = validate_review(c, err, errlen)) != 0)
    return r;
  if ((r = check_duration(c, "retention.calls", c->retention.calls, &c->retention.calls_us,
                          err, errlen)) != 0 ||
      (r = check_duration(c, "retention.interval", c->retention.interval,
                          &c->retention.interval_us, err, errlen)) != 0)
    return r;
  if (c->retention.calls_us != 0 && c->retention.calls_us < 86400LL * 1000000)
    return kw_config_error(c, "retention.calls", err, errlen,
                           "at least one day (1d), or 0 to keep calls forever");
  if (c->retention.interval_us < 60LL * 1000000)
    return kw_config_error(c, "retention.interval", err, errlen, "at least one minute (1m)");
  for (unsigned i = 0; i < c->http.allowed_hosts_count; i++) {
    const char *h = c->http.allowed_hosts[i];
    char field[48];
    snprintf(field, sizeof(field), "http.allowed_hosts.%u", i);
    if (h[0] == '\0' || strlen(h) > 253 ||
        strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") !=
            strlen(h))
      return kw_config_error(c, field, err, errlen,
                             "'%s' is not a host name (letters, digits, '-' and '.'; no port)",
                             h);
  }
  for (unsigned i = 0; i < c->http.tokens_count; i++) {
    static const char *const roles[] = {"viewer", "responder", NULL};
    struct kw_http_token_cfg *t = &c->http.tokens[i];
    char field[48];
    snprintf(field, sizeof(field), "http.tokens.%u", i);
    if (t->name == NULL || t->role == NULL || t->secret == NULL)
      return kw_config_error(c, field, err, errlen,
                             "needs 'name', 'role' (viewer, responder) and 'secret' "
                             "({env: VAR} or {file: PATH})");
    snprintf(field, sizeof(field), "http.tokens.%u.role", i);
    if ((r = check_enum(c, field, t->role, roles, err, errlen)) != 0)
      return r;
    snprintf(field, sizeof(field), "http.tokens.%u.secret", i);
    if ((r = check_secret(c, field, t->secret, err, errlen)) != 0)
      return r;
  }
  return validate_responder(c, err, errlen);
}

/* Lists every environment variable a secret of c comes from, for the key stores that run
 * commands (which must not inherit them). */
static int collect_secret_envs(struct kw_config *c) {
  const struct kw_responder_cfg *rc = &c->responder;
  size_t n = 0, cap = 1 + 2 * c->http.tokens_count;
  const char **v;

  for (unsigned i = 0; i < rc->stores_count; i++)
    cap += 1 + rc->stores[i].headers_count;
  for (unsigned i = 0; i < c->sinks_count; i++)
    cap += 1 + c->sinks[i].headers_count;
  if ((v = calloc(cap, sizeof(*v))) == NULL)
    return KW_ENOMEM;
#define ADD(e)                                                                           \
  do {                                                                                   \
    if ((e) != NULL)                                                                     \
      v[n++] = (e);                                                                      \
  } while (0)
  for (unsigned i = 0; i < rc->stores_count; i++) {
    const struct kw_keystore_cfg *k = &rc->stores[i];
    ADD(k->credential ? k->credential->env : NULL);
    for (unsigned j = 0; j < k->headers_count; j++)
      ADD(k->headers[j].secret ? k->headers[j].secret->env : NULL);
  }
  for (unsigned i = 0; i < c->http.tokens_count; i++)
    ADD(c->http.tokens[i].secret ? c->http.tokens[i].secret->env : NULL);
  for (unsigned i = 0; i < c->sinks_count; i++) {
    ADD(c->sinks[i].hmac_secret_env);
    for (unsigned j = 0; j < c->sinks[i].headers_count; j++)
      ADD(c->sinks[i].headers[j].env);
  }
#undef ADD
  c->secret_envs = v;
  for (unsigned i = 0; i < rc->stores_count; i++)
    rc->stores[i].secret_envs = v;
  return 0;
}

/* ---- load / free ------------------------------------------------------------------- */

void kw_config_destroy(struct kw_config *cfg) {
  if (cfg == NULL)
    return;
  free(cfg->file);
  cfg->file = NULL;
  free(cfg->secret_envs);
  cfg->secret_envs = NULL;
  kw_yaml_free(&top_schema, cfg);
}

static int finish(struct kw_config *c, const char *path, struct kw_config **out, char *err,
                  size_t errlen) {
  int r;
  if (path != NULL && (c->file = strdup(path)) == NULL) {
    kw_config_destroy(c);
    return KW_ENOMEM;
  }
  if ((r = apply_defaults(c)) != 0 || (r = validate(c, err, errlen)) != 0 ||
      (r = collect_secret_envs(c)) != 0) {
    kw_config_destroy(c);
    return r;
  }
  *out = c;
  return 0;
}

int kw_config_load(const char *path, struct kw_config **out, char *err, size_t errlen) {
  struct kw_config *c = NULL;
  int r;

  *out = NULL;
  if ((r = kw_yaml_load(path, NULL, 0, &top_schema, (void **)&c, err, errlen)) != 0) {
    if (r != KW_ECONFIG && r != KW_ENOMEM) /* -errno: the file itself */
      snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(-r));
    return r;
  }
  if ((r = finish(c, path, out, err, errlen)) == KW_ENOMEM)
    snprintf(err, errlen, "%s: out of memory", path);
  return r;
}

int kw_config_default(struct kw_config **out) {
  struct kw_config *c = NULL;
  char err[256];

  *out = NULL;
  if (kw_yaml_load("defaults", "{}", 2, &top_schema, (void **)&c, err, sizeof(err)) != 0)
    return KW_ENOMEM;
  return finish(c, NULL, out, err, sizeof(err));
}

unsigned kw_config_locate(const char *file, const char *field) {
  return kw_yaml_locate(file, NULL, 0, field);
}
