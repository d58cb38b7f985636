/* store_int.h — what store.c shares with store_query.c, inside sidecar/ only. */
#ifndef KW_STORE_INT_H
#define KW_STORE_INT_H

#include <sqlite3.h>

struct kw_store;

/* The connection of st, for the query side. */
sqlite3 *kw__store_db(struct kw_store *st);

#endif
