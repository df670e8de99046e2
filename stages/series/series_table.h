/* The per-shard series table: every series a worker owns, by id, with its
 * canonical key text, and a dense slot index that every stage uses to keep its
 * per-series state in flat arrays (no per-stage hash lookups on the hot path).
 *
 * Contract
 *   - Owned and used by exactly one worker thread; no locking.
 *   - A series is known once its RF_KIND_SERIES_DEF event has been applied with
 *     rf_series_table_define(); the table takes ownership of the key.
 *   - Slots are dense, 0..count-1, and stable while the series exists.
 *   - Cardinality limit: at most max_series series (per shard). A definition
 *     beyond it is refused with -ENOSPC and counted (rejected_cardinality); the
 *     events of that series are then unknown to this shard and the caller counts
 *     them as dropped for reason "unknown_series" (see rf_series_table_find).
 *   - A duplicate definition (the ingest side may re-announce a series) frees
 *     the new key and returns the existing slot.
 *   - Memory: the table allocates at creation for max_series entries; nothing
 *     is allocated on lookups or definitions besides what the key already is.
 */
#ifndef RF_STAGES_SERIES_TABLE_H
#define RF_STAGES_SERIES_TABLE_H

#include <stdint.h>

#include "core/event/event.h"

typedef struct rf_series_table rf_series_table;

typedef struct rf_series_table_stats {
    uint32_t count;
    uint32_t max_series;
    uint64_t defined;
    uint64_t duplicates;
    uint64_t rejected_cardinality;
} rf_series_table_stats;

rf_series_table *rf_series_table_new(uint32_t max_series);
void rf_series_table_free(rf_series_table *t);

/* Slot of a known series, or -1 when the series is not defined here. */
int32_t rf_series_table_find(const rf_series_table *t, uint64_t series_id);

/* Applies a definition; takes ownership of key in every case. Returns the slot,
 * or -ENOSPC at the cardinality limit. */
int32_t rf_series_table_define(rf_series_table *t, rf_series_key *key);

const rf_series_key *rf_series_table_key(const rf_series_table *t, int32_t slot);
void rf_series_table_stats_read(const rf_series_table *t, rf_series_table_stats *out);

#endif
