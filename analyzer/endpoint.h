/* endpoint.h — endpoint templates: the unit of least-privilege analysis.
 *
 * "/api/card/123/query" → "/api/card/{id}/query".  A path segment becomes a placeholder
 * when it looks like an object identifier rather than a name:
 *   {id}    all digits
 *   {uuid}  8-4-4-4-12 hex
 *   {hex}   16+ hex digits (hashes, object ids)
 *   {date}  YYYY-MM-DD
 *   {token} 20+ characters of a base64/base64url alphabet mixing letters and digits
 *   {seg}   anything longer than KW_ENDPOINT_SEG_MAX characters
 * The query string is dropped (its presence is a separate flag on the call); percent-
 * encoding is kept as is.  Templates are capped at KW_ENDPOINT_MAX bytes: a longer path
 * keeps its first segments and ends in "/{more}".
 * Thread: any; pure functions.
 */
#ifndef KW_ENDPOINT_H
#define KW_ENDPOINT_H

#include <stddef.h>

#define KW_ENDPOINT_MAX 256
#define KW_ENDPOINT_SEG_MAX 64

/* Writes the template of path (path[0..n), query and fragment ignored) into out, which
 * must hold KW_ENDPOINT_MAX + 1 bytes; returns its length.  An empty or relative path
 * yields "/". */
size_t kw_endpoint_template(const char *path, size_t n, char *out);

#endif
