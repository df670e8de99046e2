/* rf_u64map: an open-addressing hash map from non-zero 64-bit keys to 64-bit
 * values, for the storage modules' id -> state tables (series buffers on the
 * worker, "series already in this segment" on the I/O thread, per-series
 * state in a query).
 *
 * Contract
 *   - Key 0 is reserved as the empty marker; series ids are never 0
 *     (core/event/event.h), which is why this map needs no tombstones for them.
 *   - Keys are already well mixed (XXH3), so the slot is the key's low bits
 *     after one multiply (cheap, and safe for callers passing small ints).
 *   - Lookups never allocate; rf_u64map_put allocates only when the load
 *     passes 1/2 (capacity doubles). Not thread-safe: one owner thread.
 *   - Removal (rf_u64map_remove) shifts later entries back into the hole
 *     (linear probing, no tombstones), so lookups still end at an empty slot.
 */
#ifndef RF_STORAGE_U64MAP_H
#define RF_STORAGE_U64MAP_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Key and value side by side: a lookup touches one cache line. */
typedef struct rf_u64map_entry {
    uint64_t key;
    uint64_t val;
} rf_u64map_entry;

typedef struct rf_u64map {
    rf_u64map_entry *e;
    uint32_t mask; /* capacity - 1; capacity is a power of two */
    uint32_t count;
} rf_u64map;

static inline uint32_t rf_u64map_slot(const rf_u64map *m, uint64_t key)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
}

static inline int rf_u64map_init(rf_u64map *m, uint32_t cap_hint)
{
    uint32_t cap = 16;
    while (cap < cap_hint * 2u && cap < (1u << 30))
        cap <<= 1;
    m->e = calloc(cap, sizeof(*m->e));
    m->mask = cap - 1;
    m->count = 0;
    return m->e ? 0 : -ENOMEM;
}

static inline void rf_u64map_free(rf_u64map *m)
{
    free(m->e);
    m->e = NULL;
    m->count = 0;
}

/* Empties the map, keeping its capacity. */
static inline void rf_u64map_clear(rf_u64map *m)
{
    for (uint32_t i = 0; i <= m->mask; i++)
        m->e[i].key = 0;
    m->count = 0;
}

static inline bool rf_u64map_get(const rf_u64map *m, uint64_t key, uint64_t *val)
{
    for (uint32_t i = rf_u64map_slot(m, key);; i = (i + 1) & m->mask) {
        if (m->e[i].key == key) {
            *val = m->e[i].val;
            return true;
        }
        if (m->e[i].key == 0)
            return false;
    }
}

static inline int rf_u64map_grow(rf_u64map *m)
{
    rf_u64map n;
    if (rf_u64map_init(&n, m->mask + 1) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (!m->e[i].key)
            continue;
        uint32_t j = rf_u64map_slot(&n, m->e[i].key);
        while (n.e[j].key)
            j = (j + 1) & n.mask;
        n.e[j] = m->e[i];
        n.count++;
    }
    rf_u64map_free(m);
    *m = n;
    return 0;
}

/* Inserts or replaces. Returns 0, -EINVAL for key 0, -ENOMEM. */
static inline int rf_u64map_put(rf_u64map *m, uint64_t key, uint64_t val)
{
    if (key == 0)
        return -EINVAL;
    if ((m->count + 1) * 2u > m->mask + 1 && rf_u64map_grow(m) < 0)
        return -ENOMEM;
    uint32_t i = rf_u64map_slot(m, key);
    while (m->e[i].key && m->e[i].key != key)
        i = (i + 1) & m->mask;
    if (!m->e[i].key)
        m->count++;
    m->e[i].key = key;
    m->e[i].val = val;
    return 0;
}

/* Removes key if present. Returns whether it was there. */
static inline bool rf_u64map_remove(rf_u64map *m, uint64_t key)
{
    uint32_t i = rf_u64map_slot(m, key);
    while (m->e[i].key != key) {
        if (m->e[i].key == 0)
            return false;
        i = (i + 1) & m->mask;
    }
    for (uint32_t j = i;;) {
        j = (j + 1) & m->mask;
        if (m->e[j].key == 0)
            break;
        uint32_t home = rf_u64map_slot(m, m->e[j].key);
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
            continue;
        m->e[i] = m->e[j];
        i = j;
    }
    m->e[i].key = 0;
    m->count--;
    return true;
}

#endif
