/* yamlfile.h — YAML documents loaded through libcyaml schemas, for config.c and rule packs.
 *
 * Errors come back as "NAME:LINE[:COL]: field.path: problem" so a user can fix their
 * file; libcyaml's own codes never leave yamlfile.c.
 * Thread: any (no shared mutable state).
 */
#ifndef KW_YAMLFILE_H
#define KW_YAMLFILE_H

#include <cyaml/cyaml.h>
#include <stddef.h>

/* Loads the file `name` (data NULL) or data[0..len) named `name` into *out with schema.
 * An empty document loads as "{}".  Returns 0, KW_ECONFIG, -errno or KW_ENOMEM with the
 * message in err.  Free with kw_yaml_free(). */
int kw_yaml_load(const char *name, const char *data, size_t len,
                 const cyaml_schema_value_t *schema, void **out, char *err, size_t errlen);

/* Frees what kw_yaml_load() returned; NULL is a no-op. */
void kw_yaml_free(const cyaml_schema_value_t *schema, void *data);

/* The 1-based line of a dotted field path ("rules.2.window") in the file (data NULL) or
 * in data; 0 when not found. */
unsigned kw_yaml_locate(const char *file, const char *data, size_t len, const char *field);

#endif
