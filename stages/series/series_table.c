/* Series table: open-addressing index over dense slots. See series_table.h. */
#include "stages/series/series_table.h"

#include "core/mem/bound.h"
#include "core/mem/mem.h"
#include "core/stats/stats.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
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
    uint32_t cap; /* spans reserved at first: a reused slot keeps them */
} slot_tags;

/* A measurement's accounting. hash and name are written once, before the
 * entry is published (meas_n, release); the counters and the limit by the
 * worker only (relaxed load + store), read anywhere with relaxed loads. */
typedef struct meas_entry {
    uint64_t hash;
    _Atomic uint64_t active;
    _Atomic uint64_t expired;
    _Atomic uint64_t refused_shard, refused_meas;
    _Atomic uint64_t dropped;
    _Atomic uint32_t limit;
    uint32_t pad;
    char name[RF_SERIES_MEAS_NAME];
} meas_entry;

/* Index of "(other measurements)": beyond the dense entries. */
#define MEAS_OTHER RF_SERIES_MEAS_MAX
#define MEAS_BUCKETS (2u * RF_SERIES_MEAS_MAX)
/* Refused-id memory: a series id probes a window of this many buckets. */
#define REFUSED_WINDOW 8u

typedef struct refused_bucket {
    uint64_t id; /* 0 = empty */
    uint32_t meas;
    uint32_t pad;
} refused_bucket;

struct rf_series_table {
    uint32_t max_series;
    /* Slots 0..count-1 have been used; live of them hold a series now, the
     * others are on the free stack (worker writes; relaxed loads elsewhere). */
    _Atomic uint32_t count;
    _Atomic uint32_t live;
    uint32_t *free_slots; /* stack of retired slots, reused first */
    uint32_t n_free;
    int64_t *seen; /* per slot: the clock of its last event (expiry) */
    int64_t now;   /* rf_series_table_set_now */
    uint32_t sweep_cursor;
    uint64_t mask;
    bucket *index;
    rf_series_key **keys;
    slot_tags *tags;
    rf_series_tag *pool;
    uint32_t pool_len, pool_cap;
    uint32_t pool_lost; /* spans of reused slots that outgrew them (compaction frees them) */
    /* Single writer (the worker): relaxed stores, relaxed loads anywhere. */
    _Atomic uint64_t defined, duplicates, rejected_shard, rejected_meas, refused_again,
        refused_forgotten, dropped_unattributed, expired;
    /* Per-measurement limits (worker only; see rf_series_table_set_limits). */
    const rf_series_limits *limits;
    /* Measurements: dense entries, published by meas_n (release store by the
     * worker, acquire load by readers); the index (entry + 1, 0 = empty) is
     * the worker's alone. */
    meas_entry *meas;
    uint32_t *meas_index;
    _Atomic uint32_t meas_n;
    meas_entry other;
    refused_bucket *refused;
};

static uint64_t ctr(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static uint32_t count_of(const rf_series_table *t)
{
    return atomic_load_explicit(&t->count, memory_order_relaxed);
}

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
    t->free_slots = malloc((size_t)max_series * sizeof(*t->free_slots));
    t->seen = calloc(max_series, sizeof(*t->seen));
    t->pool_cap = max_series * RF_SERIES_TAGS_PREALLOC;
    if (t->pool_cap < 16)
        t->pool_cap = 16;
    t->pool = malloc((size_t)t->pool_cap * sizeof(*t->pool));
    t->meas = rf_mem_huge_zalloc(RF_SERIES_MEAS_MAX * sizeof(meas_entry));
    t->meas_index = calloc(MEAS_BUCKETS, sizeof(*t->meas_index));
    t->refused = rf_mem_huge_zalloc(RF_SERIES_REFUSED_SLOTS * sizeof(refused_bucket));
    if (!t->index || !t->keys || !t->tags || !t->pool || !t->meas || !t->meas_index ||
        !t->refused || !t->free_slots || !t->seen) {
        rf_series_table_free(t);
        return NULL;
    }
    snprintf(t->other.name, sizeof(t->other.name), "(other measurements)");
    return t;
}

/* Mirrors rf_series_table_new and rf_series_table_define's pool growth: the
 * struct, the index, the key and tag arrays, the last-seen times and the
 * free stack (series lifecycle), the tag-span pool at its largest (at most
 * max_tags spans a series plus the measurement's and the field's, doubling:
 * the new capacity and the old copy during realloc; compacted rather than
 * grown past that under churn), the measurement entries and their index,
 * the refused-id memory. */
uint64_t rf_series_table_memory_bound(uint32_t max_series, uint32_t max_tags)
{
    _Static_assert(sizeof(rf_series_table) <= 512, "the struct's share of the bound");
    uint64_t nb = 16;
    while (nb < 2ull * max_series)
        nb <<= 1;
    uint64_t b = rf_mem_alloc_bound(512) + rf_mem_huge_bound(nb * sizeof(bucket));
    b += rf_mem_alloc_bound((uint64_t)max_series * sizeof(rf_series_key *)) +
         rf_mem_alloc_bound((uint64_t)max_series * sizeof(slot_tags)) +
         rf_mem_alloc_bound((uint64_t)max_series * sizeof(int64_t)) + /* seen */
         rf_mem_alloc_bound((uint64_t)max_series * sizeof(uint32_t)); /* free_slots */
    uint64_t spans = (uint64_t)max_series * (max_tags + 2);
    uint64_t cap = (uint64_t)max_series * RF_SERIES_TAGS_PREALLOC;
    if (cap < 16)
        cap = 16;
    while (cap < spans)
        cap *= 2;
    b += rf_mem_alloc_bound(cap * sizeof(rf_series_tag)) +
         rf_mem_alloc_bound(cap / 2 * sizeof(rf_series_tag));
    b += rf_mem_huge_bound((uint64_t)RF_SERIES_MEAS_MAX * sizeof(meas_entry)) +
         rf_mem_alloc_bound((uint64_t)MEAS_BUCKETS * sizeof(uint32_t));
    b += rf_mem_huge_bound((uint64_t)RF_SERIES_REFUSED_SLOTS * sizeof(refused_bucket));
    return b;
}

void rf_series_table_free(rf_series_table *t)
{
    if (!t)
        return;
    if (t->keys)
        for (uint32_t i = 0; i < count_of(t); i++)
            rf_series_key_free(t->keys[i]);
    if (t->index)
        rf_mem_huge_free(t->index, (t->mask + 1) * sizeof(bucket));
    rf_mem_huge_free(t->meas, RF_SERIES_MEAS_MAX * sizeof(meas_entry));
    rf_mem_huge_free(t->refused, RF_SERIES_REFUSED_SLOTS * sizeof(refused_bucket));
    free(t->meas_index);
    free(t->keys);
    free(t->tags);
    free(t->free_slots);
    free(t->seen);
    free(t->pool);
    free(t);
}

void rf_series_table_prefetch(const rf_series_table *t, uint64_t series_id)
{
    __builtin_prefetch(&t->index[series_id & t->mask]);
}

void rf_series_table_prefetch_key(const rf_series_table *t, int32_t slot, int level)
{
    if (slot < 0 || (uint32_t)slot >= count_of(t))
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
    /* 0 is "no series" (a rule-wide alert's before it had a series of its
     * own): it would match the first empty bucket, whose slot field is 0. */
    if (__builtin_expect(series_id == 0, 0))
        return -1;
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

/* ---- measurements and refused series ----------------------------------- */

uint64_t rf_series_measurement_hash(const char *canonical, size_t len)
{
    return rf_series_id_of_key(canonical, len);
}

int rf_series_measurement_canon(const char *name, char *out, size_t out_size)
{
    size_t o = 0;
    for (; *name; name++) {
        bool esc = *name == ',' || *name == ' ' || *name == '\\';
        if (o + (esc ? 2 : 1) >= out_size)
            return -ENAMETOOLONG;
        if (esc)
            out[o++] = '\\';
        out[o++] = *name;
    }
    if (o >= out_size)
        return -ENAMETOOLONG;
    out[o] = '\0';
    return (int)o;
}

static meas_entry *meas_at(rf_series_table *t, uint32_t mi)
{
    return mi == MEAS_OTHER ? &t->other : &t->meas[mi];
}

/* The limit in force for a measurement (override first, then the default). */
static uint32_t limit_for(const rf_series_table *t, uint64_t hash)
{
    const rf_series_limits *l = t->limits;
    if (!l)
        return 0;
    for (uint32_t i = 0; i < l->n_overrides; i++)
        if (l->overrides[i].hash == hash)
            return l->overrides[i].max_series;
    return l->max_per_measurement;
}

/* The entry of a key's measurement, created on first sight; MEAS_OTHER when
 * the entries are all taken. Once per definition: one hash of the
 * measurement text and a probe of a small index (load <= 0.5). */
static uint32_t meas_of(rf_series_table *t, const rf_series_key *key)
{
    uint64_t h = rf_series_measurement_hash(key->text, key->measurement_len);
    uint32_t i = (uint32_t)h & (MEAS_BUCKETS - 1);
    for (;; i = (i + 1) & (MEAS_BUCKETS - 1)) {
        uint32_t e = t->meas_index[i];
        if (e == 0)
            break;
        if (t->meas[e - 1].hash == h)
            return e - 1;
    }
    uint32_t n = atomic_load_explicit(&t->meas_n, memory_order_relaxed);
    if (n >= RF_SERIES_MEAS_MAX)
        return MEAS_OTHER;
    meas_entry *m = &t->meas[n];
    m->hash = h;
    size_t len = key->measurement_len < RF_SERIES_MEAS_NAME - 1 ? key->measurement_len
                                                                : RF_SERIES_MEAS_NAME - 1;
    memcpy(m->name, key->text, len);
    m->name[len] = '\0';
    atomic_store_explicit(&m->limit, limit_for(t, h), memory_order_relaxed);
    t->meas_index[i] = n + 1;
    /* Pairs with the acquire in rf_series_table_measurements: the entry's
     * hash and name are visible before it is counted. */
    atomic_store_explicit(&t->meas_n, n + 1, memory_order_release);
    return n;
}

void rf_series_table_set_limits(rf_series_table *t, const rf_series_limits *limits)
{
    t->limits = limits;
    uint32_t n = atomic_load_explicit(&t->meas_n, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++)
        atomic_store_explicit(&t->meas[i].limit, limit_for(t, t->meas[i].hash),
                              memory_order_relaxed);
}

/* A definition the limits refuse: remembered (so that its events are charged
 * to its measurement and a re-announcement is not a second refused series)
 * and counted by reason. Takes the key. */
static int32_t refuse(rf_series_table *t, rf_series_key *key, uint32_t mi, int32_t reason)
{
    const uint64_t id = key->series_id;
    rf_series_key_free(key);
    const uint32_t mask = RF_SERIES_REFUSED_SLOTS - 1, home = (uint32_t)id & mask;
    refused_bucket *slot = NULL;
    for (uint32_t k = 0; k < REFUSED_WINDOW; k++) {
        refused_bucket *b = &t->refused[(home + k) & mask];
        if (b->id == id) {
            rf_stats_add(&t->refused_again, 1);
            return -EALREADY;
        }
        if (b->id == 0) {
            slot = b;
            break;
        }
    }
    if (!slot) {
        /* Window full: forget one of its ids (chosen by the new id's high
         * bits); its later events count as unattributed. */
        slot = &t->refused[(home + (uint32_t)(id >> 61)) & mask];
        rf_stats_add(&t->refused_forgotten, 1);
    }
    *slot = (refused_bucket){id, mi, 0};
    meas_entry *m = meas_at(t, mi);
    if (reason == -EDQUOT) {
        rf_stats_add(&t->rejected_meas, 1);
        rf_stats_add(&m->refused_meas, 1);
    } else {
        rf_stats_add(&t->rejected_shard, 1);
        rf_stats_add(&m->refused_shard, 1);
    }
    return reason;
}

void rf_series_table_count_dropped(rf_series_table *t, uint64_t series_id)
{
    const uint32_t mask = RF_SERIES_REFUSED_SLOTS - 1, home = (uint32_t)series_id & mask;
    for (uint32_t k = 0; k < REFUSED_WINDOW; k++) {
        const refused_bucket *b = &t->refused[(home + k) & mask];
        if (b->id == series_id) {
            rf_stats_add(&meas_at(t, b->meas)->dropped, 1);
            return;
        }
        if (b->id == 0)
            break; /* ids are never removed, only replaced: no gaps */
    }
    rf_stats_add(&t->dropped_unattributed, 1);
}

static void meas_read(const meas_entry *m, uint32_t index, rf_series_meas_stats *out)
{
    out->index = index;
    out->name = m->name;
    out->hash = m->hash;
    out->active = ctr(&m->active);
    out->expired = ctr(&m->expired);
    out->refused_shard_limit = ctr(&m->refused_shard);
    out->refused_measurement_limit = ctr(&m->refused_meas);
    out->dropped_events = ctr(&m->dropped);
    out->limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
    out->other = false;
}

void rf_series_table_measurements(const rf_series_table *t, rf_series_meas_fn fn, void *ctx)
{
    /* Pairs with the release in meas_of. */
    uint32_t n = atomic_load_explicit(&t->meas_n, memory_order_acquire);
    rf_series_meas_stats m;
    for (uint32_t i = 0; i <= n; i++) {
        if (!rf_series_table_measurement(t, i < n ? i : MEAS_OTHER, &m))
            continue;
        if (m.active || m.expired || m.refused_shard_limit || m.refused_measurement_limit ||
            m.dropped_events)
            fn(ctx, &m);
    }
}

bool rf_series_table_measurement(const rf_series_table *t, uint32_t index,
                                 rf_series_meas_stats *out)
{
    if (index == MEAS_OTHER) {
        meas_read(&t->other, index, out);
        out->hash = 0;
        out->other = true;
        return true;
    }
    /* Pairs with the release in meas_of. */
    if (index >= atomic_load_explicit(&t->meas_n, memory_order_acquire))
        return false;
    meas_read(&t->meas[index], index, out);
    return true;
}


/* ---- expiry ---------------------------------------------------------------- */

void rf_series_table_set_now(rf_series_table *t, int64_t now)
{
    t->now = now;
}

int32_t rf_series_table_find_touch(rf_series_table *t, uint64_t series_id)
{
    int32_t slot = rf_series_table_find(t, series_id);
    if (slot >= 0)
        t->seen[slot] = t->now;
    return slot;
}

/* Linear probing without tombstones: the entries after the removed one that
 * would no longer be reachable from their home bucket move back into the
 * hole, so lookups still stop at the first empty bucket. */
static void index_remove(rf_series_table *t, uint64_t series_id)
{
    uint64_t i = series_id & t->mask;
    while (t->index[i].id != series_id) {
        if (t->index[i].id == 0)
            return;
        i = (i + 1) & t->mask;
    }
    for (uint64_t j = i;;) {
        j = (j + 1) & t->mask;
        if (t->index[j].id == 0)
            break;
        uint64_t home = t->index[j].id & t->mask;
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        t->index[i] = t->index[j];
        i = j;
    }
    t->index[i] = (bucket){0, 0, 0};
}

static void retire(rf_series_table *t, int32_t slot)
{
    rf_series_key *key = t->keys[slot];
    meas_entry *m = meas_at(t, meas_of(t, key));
    index_remove(t, key->series_id);
    rf_series_key_free(key);
    t->keys[slot] = NULL;
    t->tags[slot].n = 0; /* first and cap stay: the spans go with the slot */
    t->free_slots[t->n_free++] = (uint32_t)slot;
    atomic_store_explicit(&t->live, atomic_load_explicit(&t->live, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    atomic_store_explicit(&m->active, ctr(&m->active) - 1, memory_order_relaxed);
    rf_stats_add(&m->expired, 1);
    rf_stats_add(&t->expired, 1);
}

uint32_t rf_series_table_expire(rf_series_table *t, int64_t idle_ns, uint32_t budget,
                                rf_series_expire_fn fn, void *ctx)
{
    const uint32_t n = count_of(t);
    if (n == 0 || idle_ns <= 0)
        return 0;
    uint32_t expired = 0, c = t->sweep_cursor;
    if (budget > n)
        budget = n;
    for (uint32_t k = 0; k < budget; k++, c++) {
        if (c >= n)
            c = 0;
        if (!t->keys[c] || t->now - t->seen[c] < idle_ns)
            continue;
        if (fn)
            fn(ctx, (int32_t)c, t->keys[c]);
        retire(t, (int32_t)c);
        expired++;
    }
    t->sweep_cursor = c;
    return expired;
}

/* The spans every slot reserves, packed again without those that reused
 * slots outgrew: the pool stays within max_series x the largest tag count,
 * whatever the churn. Rare (only when the pool is full and holds lost
 * spans); one pass over the slots. */
static int pool_compact(rf_series_table *t)
{
    rf_series_tag *p = malloc((size_t)t->pool_cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    uint32_t len = 0;
    for (uint32_t i = 0; i < count_of(t); i++) {
        slot_tags *st = &t->tags[i];
        memcpy(p + len, t->pool + st->first, (size_t)st->n * sizeof(*p));
        st->first = len;
        len += st->cap;
    }
    free(t->pool);
    t->pool = p;
    t->pool_len = len;
    t->pool_lost = 0;
    return 0;
}

/* ---- definitions ---------------------------------------------------------- */

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
            rf_stats_add(&t->duplicates, 1);
            rf_series_key_free(key);
            return t->index[i].slot;
        }
        if (t->index[i].id == 0)
            break;
    }
    const uint32_t mi = meas_of(t, key);
    meas_entry *m = meas_at(t, mi);
    const uint32_t limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
    if (limit && ctr(&m->active) >= limit)
        return refuse(t, key, mi, -EDQUOT);
    if (count_of(t) >= t->max_series && t->n_free == 0)
        return refuse(t, key, mi, -ENOSPC);
    uint32_t ntags = rf_series_key_parse_tags(key, NULL, 0);
    /* A retired slot comes back first, with its tag spans when they fit. */
    const bool reuse = t->n_free > 0;
    const int32_t slot = reuse ? (int32_t)t->free_slots[t->n_free - 1] : (int32_t)count_of(t);
    slot_tags *st = &t->tags[slot];
    if (!reuse || ntags > st->cap) {
        if (reuse) {
            t->pool_lost += st->cap; /* its spans are too few: given up */
            st->cap = st->n = 0;
        }
        if (t->pool_len + ntags > t->pool_cap && t->pool_lost && pool_compact(t) < 0) {
            rf_series_key_free(key);
            return -ENOMEM;
        }
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
        *st = (slot_tags){t->pool_len, 0, ntags};
        t->pool_len += ntags;
    }
    rf_series_key_parse_tags(key, t->pool + st->first, ntags);
    st->n = ntags;
    /* Every stage resets its state of a slot when the slot is retired
     * (rf_series_table_expire's callback): a reused slot starts empty. */
    assert(t->keys[slot] == NULL);
    t->keys[slot] = key;
    t->seen[slot] = t->now;
    t->index[i] = (bucket){key->series_id, slot, 0};
    if (reuse)
        t->n_free--;
    else
        atomic_store_explicit(&t->count, (uint32_t)slot + 1, memory_order_relaxed);
    atomic_store_explicit(&t->live, atomic_load_explicit(&t->live, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    rf_stats_add(&t->defined, 1);
    rf_stats_add(&m->active, 1);
    return slot;
}

const rf_series_key *rf_series_table_key(const rf_series_table *t, int32_t slot)
{
    if (slot < 0 || (uint32_t)slot >= count_of(t))
        return NULL;
    return t->keys[slot];
}

uint32_t rf_series_table_tags(const rf_series_table *t, int32_t slot, const rf_series_tag **out)
{
    if (slot < 0 || (uint32_t)slot >= count_of(t)) {
        *out = NULL;
        return 0;
    }
    *out = t->pool + t->tags[slot].first;
    return t->tags[slot].n;
}

uint32_t rf_series_table_count(const rf_series_table *t)
{
    return count_of(t);
}

void rf_series_table_stats_read(const rf_series_table *t, rf_series_table_stats *out)
{
    out->count = atomic_load_explicit(&t->live, memory_order_relaxed);
    out->expired = ctr(&t->expired);
    out->max_series = t->max_series;
    out->defined = ctr(&t->defined);
    out->duplicates = ctr(&t->duplicates);
    out->rejected_shard_limit = ctr(&t->rejected_shard);
    out->rejected_measurement_limit = ctr(&t->rejected_meas);
    out->rejected_cardinality = out->rejected_shard_limit + out->rejected_measurement_limit;
    out->refused_again = ctr(&t->refused_again);
    out->refused_forgotten = ctr(&t->refused_forgotten);
    out->dropped_unattributed = ctr(&t->dropped_unattributed);
    out->measurements = atomic_load_explicit(&t->meas_n, memory_order_relaxed);
    uint64_t dropped = ctr(&t->other.dropped);
    for (uint32_t i = 0; i < out->measurements; i++)
        dropped += ctr(&t->meas[i].dropped);
    out->dropped_events = dropped;
    /* pool_cap is the worker's: read racily, it only sizes the report. */
    out->bytes =
        (t->mask + 1) * sizeof(bucket) +
        (uint64_t)t->max_series *
            (sizeof(rf_series_key *) + sizeof(slot_tags) + sizeof(uint32_t) + sizeof(int64_t)) +
        (uint64_t)t->pool_cap * sizeof(rf_series_tag) + RF_SERIES_MEAS_MAX * sizeof(meas_entry) +
        MEAS_BUCKETS * sizeof(uint32_t) + RF_SERIES_REFUSED_SLOTS * sizeof(refused_bucket);
}
