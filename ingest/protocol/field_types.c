/* The type of every field, fixed at its first write (protocol.h, "Field
 * types"): one table shared by every parse context of a process.
 *
 * A slot is one 64-bit word, (series id with its low 3 bits cleared) | (type
 * + 1), so that a claim is a single compare-and-swap and a reader never sees
 * an id without its type. 0 is an empty slot (type + 1 is never 0). Two
 * series whose ids differ only in the low 3 bits share a word: with 10^7
 * series that happens with probability about 10^-5, and then the second
 * one's type is checked against the first's.
 *
 * Slots are only ever filled, never cleared or changed, so a relaxed load is
 * enough: a word is self-contained, and nothing else is published with it. */
#include <errno.h>
#include <stdlib.h>

#include "ingest/protocol/protocol_pvt.h"

#define FT_PROBE 64u

struct rf_field_types {
    _Atomic uint64_t *slots;
    uint64_t mask;
    _Atomic uint64_t untracked; /* claims that found no room (any thread: RMW) */
};

static uint64_t ft_capacity(uint64_t capacity)
{
    uint64_t n = 64;
    while (n < capacity && n < (1ull << 34))
        n <<= 1;
    return n;
}

rf_field_types *rf_field_types_new(uint64_t capacity, rf_err *err)
{
    rf_field_types *t = calloc(1, sizeof(*t));
    uint64_t n = ft_capacity(capacity);
    if (t)
        t->slots = calloc(n, sizeof(*t->slots));
    if (!t || !t->slots) {
        free(t);
        rf_err_set(err, ENOMEM, "field types: out of memory for %lu slots", (unsigned long)n);
        return NULL;
    }
    t->mask = n - 1;
    return t;
}

void rf_field_types_free(rf_field_types *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

uint64_t rf_field_types_memory_bound(uint64_t capacity)
{
    return ft_capacity(capacity) * sizeof(uint64_t) + sizeof(rf_field_types);
}

int rf_field_types_claim(rf_field_types *t, uint64_t series_id, uint8_t value_type)
{
    uint64_t key = series_id & ~7ull;
    key += (key == 0) << 3;
    const uint64_t want = key | (uint64_t)(value_type + 1u);
    uint64_t i = (series_id >> 3) & t->mask;
    for (unsigned probe = 0; probe < FT_PROBE; probe++, i = (i + 1) & t->mask) {
        uint64_t w = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        /* Relaxed CAS: the word carries all it means (see the file comment). */
        if (w == 0 && atomic_compare_exchange_strong_explicit(
                          &t->slots[i], &w, want, memory_order_relaxed, memory_order_relaxed))
            return value_type;
        if ((w & ~7ull) == key)
            return (int)(w & 7u) - 1;
    }
    atomic_fetch_add_explicit(&t->untracked, 1, memory_order_relaxed);
    return -ENOSPC;
}

int rf_field_types_get(const rf_field_types *t, uint64_t series_id)
{
    uint64_t key = series_id & ~7ull;
    key += (key == 0) << 3;
    uint64_t i = (series_id >> 3) & t->mask;
    for (unsigned probe = 0; probe < FT_PROBE; probe++, i = (i + 1) & t->mask) {
        uint64_t w = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (w == 0)
            return -ENOENT;
        if ((w & ~7ull) == key)
            return (int)(w & 7u) - 1;
    }
    return -ENOENT;
}

uint64_t rf_field_types_untracked(const rf_field_types *t)
{
    return atomic_load_explicit(&t->untracked, memory_order_relaxed);
}
