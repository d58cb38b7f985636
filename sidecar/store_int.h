/* store_int.h — what store.c shares with store_query.c, inside sidecar/ only. */
#ifndef KW_STORE_INT_H
#define KW_STORE_INT_H

#include <sqlite3.h>
#include <stdint.h>

struct kw_store;

/* The connection of st, for the query side. */
sqlite3 *kw__store_db(struct kw_store *st);

/* Opens the batch transaction if none is open (writer only). */
int kw__store_begin(struct kw_store *st);

/* The row id of the key with fingerprint fp, or -1 when it is not stored. */
int64_t kw__store_key_id(struct kw_store *st, const uint8_t *fp);

/* Prepares sql, binds with fmt — 'i' (int64), 'n' (int64, NULL when negative), 't' (text,
 * NULL allowed), 'b' (a KW_FP_LEN blob, NULL allowed) — and steps once; *out (when not
 * NULL) gets column 0 of a returned row.  Returns 0, 1 (no row) or KW_ESTORE.  For rare
 * statements only (prepared per use). */
int kw__store_run1(sqlite3 *db, const char *sql, const char *fmt, int64_t *out, ...);

struct kw_call_row;

/* Reads a kw_call_row from the current row of s, whose first 14 columns are, in order:
 * ts, key prefix, fingerprint, client address, method, path, template, user agent, host,
 * source name, status, response bytes, request bytes, latency (store_query.c). */
void kw__store_call_row(sqlite3_stmt *s, struct kw_call_row *row);

#endif
