/* rf_batcher: collects events into batches bounded by size and by age, and
 * hands each full or overdue batch to an emitter in one call.
 *
 * Contract
 *   - Owned by one worker thread; no locking. One batcher per standard route
 *     (critical routes bypass batching altogether).
 *   - A batch is flushed when it holds max_events events (reason "size"), when
 *     its oldest event has waited interval_ns (reason "interval"), or on
 *     rf_batcher_flush (reason "shutdown"/explicit).
 *   - "A batch never waits longer than its interval": the age of a batch is
 *     measured from the monotonic time of its first push. The worker calls
 *     rf_batcher_tick(now) at least as often as it wants that promise kept to
 *     (rf_batcher_deadline says when the next flush is due); a push also checks
 *     the deadline first, so a batch that is overdue when more events arrive is
 *     flushed before they are added to a new batch.
 *   - Events are copied into a buffer allocated at creation (max_events x 64 B)
 *     and passed to the emitter from there; the emitter must copy what it keeps.
 *     Nothing is allocated or dropped after creation: a push of more events than
 *     fit flushes as many full batches as needed.
 *   - Seed defaults: 100 events, 5 s (RF_BATCH_DEFAULT_*).
 */
#ifndef RF_STAGES_BATCH_H
#define RF_STAGES_BATCH_H

#include <stdint.h>

#include "core/event/event.h"
#include "stages/stage/stage.h"

#define RF_BATCH_DEFAULT_MAX_EVENTS 100u
#define RF_BATCH_DEFAULT_INTERVAL_NS (5LL * 1000000000LL)
#define RF_BATCH_MAX_EVENTS (1u << 20)

typedef struct rf_batcher rf_batcher;

typedef struct rf_batcher_config {
    uint32_t max_events; /* 1..RF_BATCH_MAX_EVENTS; 0 = default */
    int64_t interval_ns; /* > 0; 0 = default */
} rf_batcher_config;

typedef struct rf_batcher_stats {
    uint64_t events;         /* events pushed */
    uint64_t batches;        /* batches emitted, all reasons */
    uint64_t flush_size;     /* ... because they were full */
    uint64_t flush_interval; /* ... because the oldest event waited interval_ns */
    uint64_t flush_explicit; /* ... by rf_batcher_flush (shutdown, reconfiguration) */
    int64_t max_wait_ns;     /* longest age of a batch at its flush */
} rf_batcher_stats;

/* cfg may be NULL (defaults). Returns NULL on bad config or no memory. */
rf_batcher *rf_batcher_new(const rf_batcher_config *cfg, rf_emitter out);
/* The memory such a batcher holds: max_events events and itself
 * (rf_mem_alloc_bound rounding). */
uint64_t rf_batcher_memory_bound(const rf_batcher_config *cfg);
/* Frees without flushing: call rf_batcher_flush first on shutdown. */
void rf_batcher_free(rf_batcher *b);

/* Adds n events, now_mono_ns being the caller's monotonic clock reading
 * (rf_clock_mono_ns, read once per worker loop iteration). */
void rf_batcher_push(rf_batcher *b, const rf_event *events, uint32_t n, int64_t now_mono_ns);
/* Flushes the batch if its oldest event has waited interval_ns. Returns 1 when
 * it flushed, else 0. */
int rf_batcher_tick(rf_batcher *b, int64_t now_mono_ns);
/* Flushes whatever is pending (shutdown). */
void rf_batcher_flush(rf_batcher *b, int64_t now_mono_ns);
/* Monotonic time at which the pending batch becomes due; INT64_MAX when empty. */
int64_t rf_batcher_deadline(const rf_batcher *b);
uint32_t rf_batcher_pending(const rf_batcher *b);
void rf_batcher_stats_read(const rf_batcher *b, rf_batcher_stats *out);

#endif
