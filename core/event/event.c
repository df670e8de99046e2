/* Series identity: hashing canonical keys and owning their text. */
#include "core/event/event.h"
#include "core/mem/bound.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t rf_series_id_of_key(const char *key, size_t len)
{
    uint64_t h = XXH3_64bits(key, len);
    return h ? h : 1;
}

rf_series_key *rf_series_key_new(const char *text, size_t len, size_t measurement_len,
                                 size_t field_offset)
{
    if (len > UINT32_MAX || measurement_len > UINT16_MAX || field_offset > UINT16_MAX)
        return NULL;
    rf_series_key *k = malloc(sizeof(*k) + len + 1);
    if (!k)
        return NULL;
    k->series_id = rf_series_id_of_key(text, len);
    k->len = (uint32_t)len;
    k->measurement_len = (uint16_t)measurement_len;
    k->field_offset = (uint16_t)field_offset;
    memcpy(k->text, text, len);
    k->text[len] = '\0';
    return k;
}

unsigned long long rf_series_key_memory_bound(size_t len)
{
    return rf_mem_alloc_bound(sizeof(rf_series_key) + (unsigned long long)len + 1);
}

void rf_series_key_free(rf_series_key *key)
{
    free(key);
}

/* Texts in flight, every thread's: an RMW per text (strings pay it, numbers
 * never come here). Relaxed: a budget, not a synchronising edge; the block
 * itself travels by the rings' edges. */
static _Atomic uint64_t text_bytes;

rf_event_text *rf_event_text_new(size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    uint64_t cost = sizeof(rf_event_text) + len + 1;
    if (atomic_fetch_add_explicit(&text_bytes, cost, memory_order_relaxed) + cost >
        RF_EVENT_TEXT_BUDGET) {
        atomic_fetch_sub_explicit(&text_bytes, cost, memory_order_relaxed);
        return NULL;
    }
    rf_event_text *t = malloc(cost);
    if (!t) {
        atomic_fetch_sub_explicit(&text_bytes, cost, memory_order_relaxed);
        return NULL;
    }
    t->len = (uint32_t)len;
    t->text[len] = '\0';
    return t;
}

void rf_event_text_free(rf_event_text *t)
{
    if (!t)
        return;
    atomic_fetch_sub_explicit(&text_bytes, sizeof(rf_event_text) + t->len + 1,
                              memory_order_relaxed);
    free(t);
}

uint64_t rf_event_text_bytes(void)
{
    return atomic_load_explicit(&text_bytes, memory_order_relaxed);
}

void rf_event_free_texts(const rf_event *ev, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if ((ev[i].flags & RF_EVF_OWNS_AUX) && ev[i].kind != RF_KIND_PEER)
            rf_event_text_free((rf_event_text *)(uintptr_t)ev[i].aux);
}
