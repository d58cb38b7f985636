/* yamlfile.c — loading YAML with libcyaml, with errors a user can act on (yamlfile.h).
 *
 * libcyaml reports a backtrace with line numbers through its log callback; on_log turns it
 * into "NAME:LINE:COL: field.path: problem".  Checks libcyaml cannot express (ranges,
 * names) run after loading; kw_yaml_locate() finds their field's line with a second,
 * cheap libyaml pass, on the error path only.
 */
#include "yamlfile.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>


struct logbuf {
  char msg[256];   /* the problem libcyaml reported */
  char field[256]; /* dotted path, outermost first */
  unsigned line, col;
};

static void on_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
  struct logbuf *lb = ctx;
  char line[512], name[200];
  unsigned l, c, idx;
  int in_field;
  char *p;

  if (level < CYAML_LOG_ERROR)
    return;
  vsnprintf(line, sizeof(line), fmt, args);
  line[strcspn(line, "\n")] = '\0';
  p = line;
  if (strncmp(p, "Load: ", 6) == 0)
    p += 6;
  while (*p == ' ')
    p++;
  if (strcmp(p, "Backtrace:") == 0)
    return;
  in_field = sscanf(p, "in mapping field '%199[^']' (line: %u, column: %u)", name, &l, &c) == 3;
  if (!in_field && sscanf(p, "in sequence entry '%u' (line: %u, column: %u)", &idx, &l, &c) == 3) {
    /* libcyaml counts entries from 1; field paths count from 0 (validate(), locate_line()) */
    snprintf(name, sizeof(name), "%u", idx > 0 ? idx - 1 : 0);
    in_field = 1;
  }
  if (in_field) {
    /* Backtrace lines come innermost first: prepend each. */
    char joined[sizeof(lb->field)];
    snprintf(joined, sizeof(joined), "%s%s%s", name, lb->field[0] ? "." : "", lb->field);
    memcpy(lb->field, joined, sizeof(joined));
    if (lb->line == 0) {
      lb->line = l;
      lb->col = c;
    }
    return;
  }
  if (sscanf(p, "in %*s (line: %u, column: %u)", &l, &c) == 2) {
    if (lb->line == 0) {
      lb->line = l;
      lb->col = c;
    }
    return;
  }
  if (lb->msg[0] == '\0')
    snprintf(lb->msg, sizeof(lb->msg), "%s", p);
}

static const cyaml_config_t *cyaml_cfg(struct logbuf *lb) {
  static cyaml_config_t base = {
      .log_fn = on_log, .mem_fn = cyaml_mem, .log_level = CYAML_LOG_ERROR,
      .flags = CYAML_CFG_NO_ALIAS,
  };
  /* The shared base is only copied; ctx differs per call. */
  static _Thread_local cyaml_config_t mine;
  mine = base;
  mine.log_ctx = lb;
  return &mine;
}

/* Consumes the rest of a node whose first event is ev.  Returns 0, or -1 on a parse error. */
static int skip_node(yaml_parser_t *p, const yaml_event_t *ev) {
  int depth;
  yaml_event_t e;

  if (ev->type != YAML_MAPPING_START_EVENT && ev->type != YAML_SEQUENCE_START_EVENT)
    return 0;
  for (depth = 1; depth > 0;) {
    if (!yaml_parser_parse(p, &e))
      return -1;
    if (e.type == YAML_MAPPING_START_EVENT || e.type == YAML_SEQUENCE_START_EVENT)
      depth++;
    else if (e.type == YAML_MAPPING_END_EVENT || e.type == YAML_SEQUENCE_END_EVENT)
      depth--;
    else if (e.type == YAML_STREAM_END_EVENT)
      depth = 0;
    yaml_event_delete(&e);
  }
  return 0;
}

/* Looks for comp[k..n) inside the node whose first event is ev; returns the 1-based line
 * of the last component's key (or sequence entry), 0 when absent.  Reads no further than
 * needed. */
static unsigned find_in_node(yaml_parser_t *p, const yaml_event_t *ev, char (*comp)[64],
                             size_t k, size_t n) {
  yaml_event_t key, val;
  unsigned line = 0;
  long want, idx = 0;

  if (ev->type == YAML_MAPPING_START_EVENT) {
    for (;;) {
      if (!yaml_parser_parse(p, &key))
        return 0;
      if (key.type == YAML_MAPPING_END_EVENT || key.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&key);
        return 0;
      }
      int hit = key.type == YAML_SCALAR_EVENT &&
                strcmp((const char *)key.data.scalar.value, comp[k]) == 0;
      unsigned key_line = (unsigned)key.start_mark.line + 1;
      int bad = skip_node(p, &key);
      yaml_event_delete(&key);
      if (bad || !yaml_parser_parse(p, &val))
        return 0;
      if (hit) {
        line = k + 1 == n ? key_line : find_in_node(p, &val, comp, k + 1, n);
        yaml_event_delete(&val);
        return line;
      }
      bad = skip_node(p, &val);
      yaml_event_delete(&val);
      if (bad)
        return 0;
    }
  }
  if (ev->type == YAML_SEQUENCE_START_EVENT) {
    char *end;
    want = strtol(comp[k], &end, 10);
    if (*end != '\0')
      return 0;
    for (;; idx++) {
      if (!yaml_parser_parse(p, &val))
        return 0;
      if (val.type == YAML_SEQUENCE_END_EVENT || val.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&val);
        return 0;
      }
      if (idx == want) {
        line = k + 1 == n ? (unsigned)val.start_mark.line + 1
                          : find_in_node(p, &val, comp, k + 1, n);
        yaml_event_delete(&val);
        return line;
      }
      int bad = skip_node(p, &val);
      yaml_event_delete(&val);
      if (bad)
        return 0;
    }
  }
  return 0;
}

unsigned kw_yaml_locate(const char *file, const char *data, size_t len, const char *field) {
  char comp[16][64];
  size_t ncomp = 0;
  unsigned line = 0;
  yaml_parser_t parser;
  yaml_event_t ev;
  FILE *f;

  for (const char *s = field; *s && ncomp < 16;) {
    size_t n = strcspn(s, ".");
    snprintf(comp[ncomp++], sizeof(comp[0]), "%.*s", (int)(n < 63 ? n : 63), s);
    s += n + (s[n] == '.');
  }
  f = NULL;
  if (ncomp == 0 || (data == NULL && (f = fopen(file, "r")) == NULL))
    return 0;
  if (!yaml_parser_initialize(&parser)) {
    if (f)
      fclose(f);
    return 0;
  }
  if (f != NULL)
    yaml_parser_set_input_file(&parser, f);
  else
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  while (line == 0 && yaml_parser_parse(&parser, &ev)) {
    int stop = ev.type == YAML_STREAM_END_EVENT;
    if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
      line = find_in_node(&parser, &ev, comp, 0, ncomp);
      stop = 1; /* the first document's root is the configuration */
    }
    yaml_event_delete(&ev);
    if (stop)
      break;
  }
  yaml_parser_delete(&parser);
  if (f != NULL)
    fclose(f);
  return line;
}


/* Whether a document holds nothing but comments, blanks and "---". */
static int is_empty(const char *p, size_t n) {
  if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) { /* a UTF-8 byte order mark */
    p += 3;
    n -= 3;
  }
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '#') {
      while (i < n && p[i] != '\n')
        i++;
    } else if (!isspace((unsigned char)p[i]) && p[i] != '-') {
      return 0;
    }
  }
  return 1;
}

int kw_yaml_load(const char *name, const char *data, size_t len,
                 const cyaml_schema_value_t *schema, void **out, char *err, size_t errlen) {
  struct logbuf lb = {0};
  char *buf = NULL;
  cyaml_err_t e;

  *out = NULL;
  if (data == NULL) {
    FILE *f = fopen(name, "r");
    size_t cap = 0;
    if (f == NULL) {
      int r = -errno;
      snprintf(err, errlen, "cannot open %s: %s", name, strerror(errno));
      return r;
    }
    len = 0;
    for (;;) {
      if (len + 4096 > cap) {
        char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
        if (nb == NULL) {
          free(buf);
          fclose(f);
          snprintf(err, errlen, "%s: out of memory", name);
          return KW_ENOMEM;
        }
        buf = nb;
      }
      size_t got = fread(buf + len, 1, cap - len, f);
      len += got;
      if (got == 0)
        break;
    }
    fclose(f);
    data = buf;
  }
  /* libcyaml rejects an empty document; an empty file means "all defaults". */
  if (is_empty(data, len))
    e = cyaml_load_data((const uint8_t *)"{}", 2, cyaml_cfg(&lb), schema, (cyaml_data_t **)out,
                        NULL);
  else
    e = cyaml_load_data((const uint8_t *)data, len, cyaml_cfg(&lb), schema,
                        (cyaml_data_t **)out, NULL);
  /* A document of nothing but directives or markers loads as no data: all defaults. */
  if (e == CYAML_OK && *out == NULL)
    e = cyaml_load_data((const uint8_t *)"{}", 2, cyaml_cfg(&lb), schema,
                        (cyaml_data_t **)out, NULL);
  if (e == CYAML_ERR_OOM) {
    *out = NULL;
    snprintf(err, errlen, "%s: out of memory", name);
    free(buf);
    return KW_ENOMEM;
  }
  if (e != CYAML_OK) {
    const char *why = lb.msg[0] ? lb.msg : cyaml_strerror(e);
    unsigned line;
    *out = NULL;
    /* libcyaml places an unknown key at the value read before it: find the key itself. */
    if (strncmp(why, "Unexpected key: ", 16) == 0) {
      char field[sizeof(lb.field) + 64];
      snprintf(field, sizeof(field), "%s%s%s", lb.field, lb.field[0] ? "." : "", why + 16);
      if ((line = kw_yaml_locate(name, data, len, field)) > 0) {
        snprintf(err, errlen, "%s:%u: %s: unknown key", name, line, field);
        free(buf);
        return KW_ECONFIG;
      }
    }
    if (lb.line > 0 && lb.field[0])
      snprintf(err, errlen, "%s:%u:%u: %s: %s", name, lb.line, lb.col, lb.field, why);
    else if (lb.line > 0)
      snprintf(err, errlen, "%s:%u:%u: %s", name, lb.line, lb.col, why);
    else
      snprintf(err, errlen, "%s: %s", name, why);
    free(buf);
    return KW_ECONFIG;
  }
  free(buf);
  return 0;
}

void kw_yaml_free(const cyaml_schema_value_t *schema, void *data) {
  struct logbuf lb = {0};
  if (data != NULL)
    cyaml_free(cyaml_cfg(&lb), schema, data, 0);
}
