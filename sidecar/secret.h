/* secret.h — secrets keywatch sends (key-store admin credentials, API tokens): read from
 * an environment variable or a file that group and others cannot access, never from the
 * YAML itself; held in buffers wiped before they are freed; never logged.
 * Thread: any.
 */
#ifndef KW_SECRET_H
#define KW_SECRET_H

#include "config.h"

#include <stddef.h>

/* Reads the secret s names: the variable's value, or the file's content (a regular file,
 * not readable or writable by group or others, at most 4 KiB, one trailing newline
 * dropped).  Returns 0 and a new NUL-terminated buffer (free with kw_secret_free()), or
 * KW_ECONFIG / -errno with "FIELD…: problem" in err — never the value. */
int kw_secret_read(const struct kw_secret_cfg *s, const char *field, char **out, char *err,
                   size_t errlen);

/* Wipes and frees a secret (NULL is a no-op). */
void kw_secret_free(char *s);

#endif
