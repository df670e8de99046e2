/* Series table: open-addressing index over dense slots. See series_table.h. */
#include "stages/series/series_table.h"

#include "core/mem/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One index bucket: the id is kept beside the slot so a probe touches one
 * cache line and never the key text. id 0 marks an empty bucket (ids are never
 * 0, see rf_series_id_of_key). */
typedef struct bucket {
    uint64_t id;
    int32_t slot;
    uint32_t pad;
} bucket;

typedef struct slot_tags {
    uint32_t first; /* index into tag pool */
    uint32_t n;
} slot_tags;

struct rf_series_table {
    uint32_t max_series;
    uint32_t count;
    uint64_t mask;
    bucket *index;
    rf_series_key **keys;
    slot_tags *tags;
    rf_series_tag *pool;
    uint32_t pool_len, pool_cap;
    uint64_t defined, duplicates, rejected_cardinality;
};

/* The index is probed once per event at random: core/mem backs it with huge
 * pages, zeroed and paged in lazily. */
rf_series_table *rf_series_table_new(uint32_t max_series)
{
    if (max_series == 0 || max_series > (1u << 30))
        return NULL;
    rf_series_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    uint64_t nb = 16;
    while (nb < 2ull * max_series)
        nb <<= 1;
    t->max_series = max_series;
    t->mask = nb - 1;
    t->index = rf_mem_huge_zalloc(nb * sizeof(bucket));
    t->keys = calloc(max_series, sizeof(*t->keys));
    t->tags = calloc(max_series, sizeof(*t->tags));
    t->pool_cap = max_series * RF_SERIES_TAGS_PREALLOC;
    if (t->pool_cap < 16)
        t->pool_cap = 16;
    t->pool = malloc((size_t)t->pool_cap * sizeof(*t->pool));
    if (!t->index || !t->keys || !t->tags || !t->pool) {
        rf_series_table_free(t);
        return NULL;
    }
    return t;
}

void rf_series_table_free(rf_series_table *t)
{
    if (!t)
        return;
    if (t->keys)
        for (uint32_t i = 0; i < t->count; i++)
            rf_series_key_free(t->keys[i]);
    if (t->index)
        rf_mem_huge_free(t->index, (t->mask + 1) * sizeof(bucket));
    free(t->keys);
    free(t->tags);
    free(t->pool);
    free(t);
}

void rf_series_table_prefetch(const rf_series_table *t, uint64_t series_id)
{
    __builtin_prefetch(&t->index[series_id & t->mask]);
}

void rf_series_table_prefetch_key(const rf_series_table *t, int32_t slot, int level)
{
    if (slot < 0 || (uint32_t)slot >= t->count)
        return;
    if (level == 0) {
        __builtin_prefetch(&t->keys[slot]);
        __builtin_prefetch(&t->tags[slot]);
    } else {
        __builtin_prefetch(t->keys[slot]);
    }
}

int32_t rf_series_table_find(const rf_series_table *t, uint64_t series_id)
{
    for (uint64_t i = series_id & t->mask;; i = (i + 1) & t->mask) {
        const bucket *b = &t->index[i];
        if (b->id == series_id)
            return b->slot;
        if (b->id == 0)
            return -1;
    }
}

/* Scans one component up to an unescaped stop byte; returns its end. */
static uint32_t scan_until(const char *s, uint32_t i, uint32_t end, char stop1, char stop2)
{
    while (i < end) {
        if (s[i] == '\\' && i + 1 < end) {
            i += 2;
            continue;
        }
        if (s[i] == stop1 || s[i] == stop2)
            break;
        i++;
    }
    return i;
}

uint32_t rf_series_key_parse_tags(const rf_series_key *key, rf_series_tag *out, uint32_t cap)
{
    const char *s = key->text;
    uint32_t i = key->measurement_len;
    /* Tags end at the space before the field. */
    uint32_t end = key->field_offset ? (uint32_t)key->field_offset - 1 : key->len;
    uint32_t n = 0;
    if (end > key->len)
        end = key->len;
    while (i < end && s[i] == ',') {
        uint32_t k = i + 1;
        uint32_t ke = scan_until(s, k, end, '=', ',');
        rf_series_tag tag = {(uint16_t)k, (uint16_t)(ke - k), 0, 0};
        i = ke;
        if (i < end && s[i] == '=') {
            uint32_t v = i + 1;
            i = scan_until(s, v, end, ',', ',');
            tag.val_off = (uint16_t)v;
            tag.val_len = (uint16_t)(i - v);
        }
        if (n < cap)
            out[n] = tag;
        n++;
    }
    return n;
}

int32_t rf_series_table_define(rf_series_table *t, rf_series_key *key)
{
    if (!key)
        return -EINVAL;
    if (key->measurement_len > key->len || key->field_offset > key->len) {
        rf_series_key_free(key);
        return -EINVAL;
    }
    uint64_t i = key->series_id & t->mask;
    for (;; i = (i + 1) & t->mask) {
        if (t->index[i].id == key->series_id) {
            t->duplicates++;
            rf_series_key_free(key);
            return t->index[i].slot;
        }
        if (t->index[i].id == 0)
            break;
    }
    if (t->count >= t->max_series) {
        t->rejected_cardinality++;
        rf_series_key_free(key);
        return -ENOSPC;
    }
    uint32_t ntags = rf_series_key_parse_tags(key, NULL, 0);
    if (t->pool_len + ntags > t->pool_cap) {
        uint32_t cap = t->pool_cap;
        while (t->pool_len + ntags > cap)
            cap *= 2;
        rf_series_tag *p = realloc(t->pool, (size_t)cap * sizeof(*p));
        if (!p) {
            rf_series_key_free(key);
            return -ENOMEM;
        }
        t->pool = p;
        t->pool_cap = cap;
    }
    rf_series_key_parse_tags(key, t->pool + t->pool_len, ntags);
    int32_t slot = (int32_t)t->count++;
    t->tags[slot] = (slot_tags){t->pool_len, ntags};
    t->pool_len += ntags;
    t->keys[slot] = key;
    t->index[i] = (bucket){key->series_id, slot, 0};
    t->defined++;
    return slot;
}

const rf_series_key *rf_series_table_key(const rf_series_table *t, int32_t slot)
{
    if (slot < 0 || (uint32_t)slot >= t->count)
        return NULL;
    return t->keys[slot];
}

uint32_t rf_series_table_tags(const rf_series_table *t, int32_t slot, const rf_series_tag **out)
{
    if (slot < 0 || (uint32_t)slot >= t->count) {
        *out = NULL;
        return 0;
    }
    *out = t->pool + t->tags[slot].first;
    return t->tags[slot].n;
}

uint32_t rf_series_table_count(const rf_series_table *t)
{
    return t->count;
}

void rf_series_table_stats_read(const rf_series_table *t, rf_series_table_stats *out)
{
    out->count = t->count;
    out->max_series = t->max_series;
    out->defined = t->defined;
    out->duplicates = t->duplicates;
    out->rejected_cardinality = t->rejected_cardinality;
    out->bytes = (t->mask + 1) * sizeof(bucket) +
                 (uint64_t)t->max_series * (sizeof(rf_series_key *) + sizeof(slot_tags)) +
                 (uint64_t)t->pool_cap * sizeof(rf_series_tag);
}
