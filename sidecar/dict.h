/* dict.h — a bounded map from byte strings to 64-bit values.
 *
 * The store uses one per dictionary table (endpoints, clients, user agents, hosts, keys)
 * to turn values into row ids without a query per call.  Open addressing with linear
 * probing, keys copied into an arena owned by the map, XXH3 hashes.  The map never grows
 * past `max` entries: kw_dict_put() reports KW_ETOOLONG and the owner clears it (a cache
 * miss costs one SQL lookup, so forgetting is always safe).
 * Thread: one owner thread.
 */
#ifndef KW_DICT_H
#define KW_DICT_H

#include <stddef.h>
#include <stdint.h>

struct kw_dict;

/* Returns a new map (free with kw_dict_destroy()) holding at most max entries. */
int kw_dict_create(size_t max, struct kw_dict **out);
void kw_dict_destroy(struct kw_dict *d);

/* Looks key up; returns 1 and sets *val when present, 0 otherwise. Borrows key. */
int kw_dict_get(const struct kw_dict *d, const void *key, size_t n, int64_t *val);

/* Inserts or replaces; copies key.  Returns 0, KW_ENOMEM, or KW_ETOOLONG when full. */
int kw_dict_put(struct kw_dict *d, const void *key, size_t n, int64_t val);

/* Forgets every entry, keeping the allocation. */
void kw_dict_clear(struct kw_dict *d);

size_t kw_dict_count(const struct kw_dict *d);

/* Bytes held (slots and key arena), for memory reports. */
size_t kw_dict_bytes(const struct kw_dict *d);

#endif
