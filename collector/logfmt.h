/* logfmt.h — nginx `log_format` compiler and access-log line parser.
 *
 * A format is compiled once into a list of (variable, literal that follows) steps; each
 * line is then split with memchr on the literals and the variables are mapped onto a
 * kw_rec (see record.h).  This is the ingest hot path: parsing allocates nothing in steady
 * state and text fields point into the caller's line unless they carry an escape.
 *
 * Thread: any, but one struct kw_logfmt per thread at a time (kw_logfmt_parse mutates its
 * scratch buffer).  Compilation and the built-in table have no shared state.
 * Ownership: the kw_logfmt owns its compiled format and scratch buffer; records filled by
 * kw_logfmt_parse borrow from the line and from that scratch buffer until the next parse
 * with the same kw_logfmt or its destruction.
 */
#ifndef KW_LOGFMT_H
#define KW_LOGFMT_H

#include <stddef.h>

#include "record.h"

/* How nginx escaped variable values in the log (log_format's escape= parameter). */
enum kw_logfmt_escape {
  KW_LOGFMT_ESC_DEFAULT, /* '"', '\', bytes < 0x20 and >= 0x7f written as \xHH; "-" if unset */
  KW_LOGFMT_ESC_JSON,    /* \" \\ \n \r \t \b \f, \u00XX for other controls; "" if unset */
  KW_LOGFMT_ESC_NONE,    /* raw bytes; "" if unset */
};

struct kw_logfmt; /* opaque */

/* Compiles a format.  `fmt` is NUL-terminated and is either
 *   - the nginx directive text a user pastes: optional `log_format NAME`, optional
 *     `escape=default|json|none` (overrides `esc`), then one or more '...' / "..." pieces
 *     (or unquoted words) that nginx concatenates, optional ';' and '#' comments; nginx's
 *     quoting rules apply (\" \' \\ \t \r \n inside a piece).  Text is read this way when
 *     it starts with `log_format` or `escape=`, with a single quote, or with a double quote
 *     and ends with ';';
 *   - otherwise the bare format string, taken literally (a trailing CR/LF is dropped).
 * Any variable is accepted: ones keywatch does not use are skipped.  Two variables with no
 * literal between them are rejected (the split would be ambiguous), except nginx's
 * `$uri$is_args$args` idiom, which is read as one URI.
 * Returns 0 and a new object in *out (free with kw_logfmt_destroy), KW_EINVAL with a
 * message naming the column (or line and column) in err, or KW_ENOMEM.
 * Ownership: borrows fmt for the call; *out is owned by the caller.  err may be NULL.
 * Thread: any. */
int kw_logfmt_compile(const char *fmt, enum kw_logfmt_escape esc, struct kw_logfmt **out,
                      char *err, size_t errlen);

/* Parses one line (without its trailing newline; one trailing CR is ignored) into rec,
 * which is cleared first.  The line need not be NUL-terminated; nothing past len is read.
 * Returns 0; KW_EPARSE with a short reason naming the column in err when the line does not
 * match the format or a value is malformed (rec is then partially filled and must be
 * ignored); KW_ENOMEM if the scratch buffer could not grow; KW_EINVAL for NULL arguments.
 * Ownership: borrows line; rec's strings point into line or into lf's scratch buffer and
 * are valid until the next call with lf, kw_logfmt_destroy(lf), or until line is freed.
 * Thread: the thread that currently uses lf; not reentrant for one lf. */
int kw_logfmt_parse(struct kw_logfmt *lf, const char *line, size_t len, struct kw_rec *rec,
                    char *err, size_t errlen);

/* Frees lf and everything it owns.  NULL is a no-op.  Thread: the thread using lf. */
void kw_logfmt_destroy(struct kw_logfmt *lf);

/* Returns the built-in format string for "combined" (nginx's default) or "keyed"
 * (combined + ` "$http_x_api_key" $request_time`), or NULL for an unknown name.
 * Ownership: static storage.  Thread: any. */
const char *kw_logfmt_builtin(const char *name);

/* Format ops for the registry: kind "nginx", ctx = struct kw_logfmt * (destroy frees it).
 * Thread: as kw_logfmt_parse. */
extern const struct kw_format_ops kw_logfmt_ops;

#endif
