/* dict.c — see dict.h.
 *
 * Invariants: nslots is a power of two and count <= nslots / 2 (so probes stay short and
 * an empty slot always exists); a slot with len == UINT32_MAX is empty; keys live in one
 * arena that only grows until kw_dict_clear(), and that exists once any entry does.
 */
#include "dict.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define EMPTY UINT32_MAX

struct slot {
  uint64_t hash;
  size_t off;   /* key offset in the arena */
  uint32_t len; /* EMPTY when unused */
  int64_t val;
};

struct kw_dict {
  struct slot *slots;
  size_t nslots, count, max;
  char *arena;
  size_t arena_len, arena_cap;
};

static int alloc_slots(struct kw_dict *d, size_t n) {
  struct slot *s = malloc(n * sizeof(*s));
  if (s == NULL)
    return KW_ENOMEM;
  for (size_t i = 0; i < n; i++)
    s[i].len = EMPTY;
  free(d->slots);
  d->slots = s;
  d->nslots = n;
  return 0;
}

int kw_dict_create(size_t max, struct kw_dict **out) {
  struct kw_dict *d = calloc(1, sizeof(*d));

  *out = NULL;
  if (d == NULL)
    return KW_ENOMEM;
  d->max = max ? max : 1;
  if (alloc_slots(d, 64) != 0) {
    free(d);
    return KW_ENOMEM;
  }
  *out = d;
  return 0;
}

void kw_dict_destroy(struct kw_dict *d) {
  if (d == NULL)
    return;
  free(d->slots);
  free(d->arena);
  free(d);
}

static struct slot *find(const struct kw_dict *d, const void *key, size_t n, uint64_t h) {
  size_t mask = d->nslots - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    struct slot *s = &d->slots[i];
    if (s->len == EMPTY)
      return s;
    if (s->hash == h && s->len == n && memcmp(d->arena + s->off, key, n) == 0)
      return s;
  }
}

int kw_dict_get(const struct kw_dict *d, const void *key, size_t n, int64_t *val) {
  struct slot *s = find(d, key, n, XXH3_64bits(key, n));
  if (s->len == EMPTY)
    return 0;
  *val = s->val;
  return 1;
}

static int grow(struct kw_dict *d) {
  struct slot *old = d->slots;
  size_t oldn = d->nslots;

  d->slots = NULL;
  if (alloc_slots(d, oldn * 2) != 0) {
    d->slots = old;
    return KW_ENOMEM;
  }
  for (size_t i = 0; i < oldn; i++) {
    if (old[i].len != EMPTY) {
      size_t mask = d->nslots - 1, j = old[i].hash & mask;
      while (d->slots[j].len != EMPTY)
        j = (j + 1) & mask;
      d->slots[j] = old[i];
    }
  }
  free(old);
  return 0;
}

int kw_dict_put(struct kw_dict *d, const void *key, size_t n, int64_t val) {
  uint64_t h = XXH3_64bits(key, n);
  struct slot *s = find(d, key, n, h);

  if (s->len != EMPTY) {
    s->val = val;
    return 0;
  }
  if (d->count >= d->max || n >= EMPTY)
    return KW_ETOOLONG;
  if (d->arena == NULL || d->arena_len + n > d->arena_cap) { /* even for an empty key */
    size_t cap = d->arena_cap ? d->arena_cap : 4096;
    while (cap < d->arena_len + n)
      cap *= 2;
    char *a = realloc(d->arena, cap);
    if (a == NULL)
      return KW_ENOMEM;
    d->arena = a;
    d->arena_cap = cap;
  }
  if ((d->count + 1) * 2 > d->nslots) {
    if (grow(d) != 0)
      return KW_ENOMEM;
    s = find(d, key, n, h);
  }
  memcpy(d->arena + d->arena_len, key, n);
  *s = (struct slot){.hash = h, .off = d->arena_len, .len = (uint32_t)n, .val = val};
  d->arena_len += n;
  d->count++;
  return 0;
}

void kw_dict_clear(struct kw_dict *d) {
  for (size_t i = 0; i < d->nslots; i++)
    d->slots[i].len = EMPTY;
  d->count = 0;
  d->arena_len = 0;
}

size_t kw_dict_count(const struct kw_dict *d) { return d->count; }

size_t kw_dict_bytes(const struct kw_dict *d) {
  return d->nslots * sizeof(struct slot) + d->arena_cap;
}
