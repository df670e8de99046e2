/* The per-shard series table: every series a worker owns, by id, with its
 * canonical key text, and a dense slot index that every stage uses to keep its
 * per-series state in flat arrays (no per-stage hash lookups on the hot path).
 *
 * Contract
 *   - Owned and used by exactly one worker thread; no locking.
 *   - A series is known once its RF_KIND_SERIES_DEF event has been applied with
 *     rf_series_table_define(); the table takes ownership of the key.
 *   - Slots are dense, 0..count-1, and stable while the series exists (series
 *     are never removed: a shard's cardinality only grows until restart).
 *   - Cardinality limit: at most max_series series (per shard). A definition
 *     beyond it is refused with -ENOSPC and counted (rejected_cardinality); the
 *     events of that series are then unknown to this shard and the caller counts
 *     them as dropped for reason "unknown_series" (see rf_series_table_find).
 *   - A duplicate definition (the ingest side may re-announce a series) frees
 *     the new key and returns the existing slot.
 *   - Tags: at definition the key text is split once into tag spans (offsets
 *     into the text), so group-by never re-parses text. The canonical form is
 *     `measurement[,k[=v]]... field` (ingest/protocol/protocol.h) with escapes
 *     kept: a backslash protects the next byte, so `\,` and `\=` are data.
 *     A bare tag `k` (no '=') has val_off 0.
 *   - Memory: the table allocates at creation for max_series entries: a dense
 *     key array, an open-addressing index of 2^k >= 2*max_series buckets
 *     (load <= 0.5, on transparent huge pages where the kernel allows; linear
 *     probing keyed by the low bits of the id: the id is
 *     already an XXH3 hash, and the high bits are the ones rf_event_owner used
 *     to pick this shard, so they are nearly constant here), and a tag-span
 *     pool of RF_SERIES_TAGS_PREALLOC spans per series. A definition allocates
 *     nothing unless its tags overflow that pool, which then doubles (amortised,
 *     per new series only; -ENOMEM if that fails). Lookups never allocate.
 */
#ifndef RF_STAGES_SERIES_TABLE_H
#define RF_STAGES_SERIES_TABLE_H

#include <stdint.h>

#include "core/event/event.h"

/* Tag spans reserved per series at creation (average tags per series). */
#define RF_SERIES_TAGS_PREALLOC 4u

typedef struct rf_series_table rf_series_table;

typedef struct rf_series_table_stats {
    uint32_t count;
    uint32_t max_series;
    uint64_t defined;
    uint64_t duplicates;
    uint64_t rejected_cardinality;
    uint64_t bytes;             /* memory held by the table itself, keys excluded */
} rf_series_table_stats;

/* One tag of a canonical key, as offsets into rf_series_key.text. */
typedef struct rf_series_tag {
    uint16_t key_off, key_len;
    uint16_t val_off, val_len;  /* val_off 0: a bare tag without '=' */
} rf_series_tag;

/* max_series from 1 to 2^30. Returns NULL on allocation failure or bad size. */
rf_series_table *rf_series_table_new(uint32_t max_series);
void rf_series_table_free(rf_series_table *t);

/* Slot of a known series, or -1 when the series is not defined here. */
int32_t rf_series_table_find(const rf_series_table *t, uint64_t series_id);

/* Starts loading the index bucket of series_id into the cache: stages that
 * look up a burst of events call it for the whole burst first, so the misses
 * overlap instead of queueing. */
void rf_series_table_prefetch(const rf_series_table *t, uint64_t series_id);

/* Prefetch for a sweep over many slots (e.g. aggregation closing windows):
 * level 0 starts loading the slot's key pointer, level 1 (issued a few slots
 * later, once the pointer is cached) starts loading the key text. */
void rf_series_table_prefetch_key(const rf_series_table *t, int32_t slot, int level);

/* Applies a definition; takes ownership of key in every case. Returns the slot,
 * -ENOSPC at the cardinality limit, -EINVAL for a NULL key or a key whose
 * offsets do not fit its text, -ENOMEM when the tag pool cannot grow. */
int32_t rf_series_table_define(rf_series_table *t, rf_series_key *key);

const rf_series_key *rf_series_table_key(const rf_series_table *t, int32_t slot);
/* The tags of a slot in key order; *out points into the table (valid until the
 * next definition). Returns the tag count. */
uint32_t rf_series_table_tags(const rf_series_table *t, int32_t slot, const rf_series_tag **out);
uint32_t rf_series_table_count(const rf_series_table *t);
void rf_series_table_stats_read(const rf_series_table *t, rf_series_table_stats *out);

/* Splits the tag section of a canonical key into spans. Writes at most `cap`
 * spans and returns how many tags there are (which may exceed cap). Exposed
 * for tests and for stages that hold keys outside a table. */
uint32_t rf_series_key_parse_tags(const rf_series_key *key, rf_series_tag *out, uint32_t cap);

#endif
