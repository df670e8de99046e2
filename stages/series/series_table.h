/* The per-shard series table: every series a worker owns, by id, with its
 * canonical key text, and a dense slot index that every stage uses to keep its
 * per-series state in flat arrays (no per-stage hash lookups on the hot path).
 *
 * Contract
 *   - Owned and used by exactly one worker thread; no locking.
 *   - A series is known once its RF_KIND_SERIES_DEF event has been applied with
 *     rf_series_table_define(); the table takes ownership of the key.
 *   - Slots are dense, 0..count-1, and stable while the series exists.
 *   - Lifecycle (issue 24): every slot remembers the table clock
 *     (rf_series_table_set_now, the pipeline's time) of its series' last
 *     event, stamped by rf_series_table_find_touch and at definition.
 *     rf_series_table_expire visits a bounded number of slots per call (a
 *     cursor that wraps) and retires those idle for at least the given time:
 *     the callback runs first, while the slot still has its key, so the
 *     stages emit and reset what they hold of it; then its index entry is
 *     removed (backward shift: no tombstones, lookups stay one probe run),
 *     its key freed, its slot pushed on a free stack that the next
 *     definition pops before it takes a new slot, keeping the slot's tag
 *     spans for it when they fit. A retired series is unknown from then on:
 *     the ingest side announces it again (as a new series) on its next
 *     event. max_series bounds the series held at once, not the series ever
 *     seen; count (the slots used, the bound to iterate to) never shrinks,
 *     retired slots read as undefined (rf_series_table_key returns NULL).
 *   - Cardinality limits, both per shard: at most max_series series in the
 *     table, and at most a per-measurement limit of series of one measurement
 *     (rf_series_table_set_limits: a default and overrides by measurement; 0
 *     = no limit; none until set). A new series beyond either is refused and
 *     counted by reason: -EDQUOT when its measurement is at its own limit
 *     (checked first: that measurement caused it), else -ENOSPC when the
 *     table is full. The events of a refused series are unknown to this shard
 *     and the caller drops them as "unknown_series" (rf_series_table_find
 *     returns -1) and hands each to rf_series_table_count_dropped, which
 *     charges it to the refused series' measurement.
 *   - Measurements: each distinct measurement (the canonical measurement
 *     text, hashed once per definition) gets an entry the first time one of
 *     its series is defined or refused, up to RF_SERIES_MEAS_MAX per shard.
 *     Series of measurements beyond that are counted together under
 *     "(other measurements)", limited by max_series only. An entry holds
 *     active series, series refused by reason, events dropped because their
 *     series was refused, and the limit in force.
 *   - Refused series: their ids are remembered (RF_SERIES_REFUSED_SLOTS, a
 *     window of 8 buckets per id; when a window is full one id is forgotten
 *     and counted) so that their events are charged to their measurement and
 *     a re-announcement of a refused series (the ingest side announces a
 *     series again after forgetting it, and every ingest worker announces on
 *     its own) is not a second refused series: it is checked against the
 *     limits again (accepted if they now allow it) or returns -EALREADY and
 *     counts as refused_again. Events of a series that is neither known nor
 *     remembered count as dropped_unattributed.
 *   - A duplicate definition (the ingest side may re-announce a series) frees
 *     the new key and returns the existing slot.
 *   - Counters and the measurement entries are written by the worker with
 *     relaxed stores (single writer) and read by any thread with relaxed
 *     loads (rf_series_table_stats_read, rf_series_table_measurements); an
 *     entry's name and hash are written before the entry count that makes it
 *     visible (release; readers acquire).
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
 *     Expiry adds 12 bytes a slot (last-seen time, free stack). A reused
 *     slot keeps its spans; a series with more tags than its slot's
 *     previous one takes new spans, and when the pool is full the spans so
 *     given up are packed away (one pass over the slots) before it doubles:
 *     the pool stays within max_series x the most tags a series has.
 *     The measurement entries (RF_SERIES_MEAS_MAX x 112 bytes) and the
 *     refused-id memory (RF_SERIES_REFUSED_SLOTS x 16 bytes) are reserved at
 *     creation too, zeroed and paged in lazily (about 1.5 MiB of address
 *     space per shard, resident only as far as used).
 *   - Hot path: a known series' events cost one index probe, as before; only
 *     an unknown series' events pay the refused-id probe (at most 8 buckets,
 *     no allocation, no string work). Measurement work (hash, entry lookup,
 *     override match) happens once per definition.
 */
#ifndef RF_STAGES_SERIES_TABLE_H
#define RF_STAGES_SERIES_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event/event.h"

/* Tag spans reserved per series at creation (average tags per series). */
#define RF_SERIES_TAGS_PREALLOC 4u
/* Measurements with an entry of their own, per shard. */
#define RF_SERIES_MEAS_MAX 4096u
/* Bytes of a measurement's name kept for display, with the NUL (longer names
 * are cut; entries are told apart by the hash of the whole name). */
#define RF_SERIES_MEAS_NAME 64u
/* Refused series ids remembered per shard (power of two). */
#define RF_SERIES_REFUSED_SLOTS 65536u

typedef struct rf_series_table rf_series_table;

typedef struct rf_series_table_stats {
    uint32_t count; /* series held now (live) */
    uint32_t max_series;
    uint64_t expired; /* series retired for idleness (rf_series_table_expire) */
    uint64_t defined;
    uint64_t duplicates;
    uint64_t rejected_cardinality;       /* refused series, both reasons */
    uint64_t rejected_shard_limit;       /* ... because the table was full (max_series) */
    uint64_t rejected_measurement_limit; /* ... because their measurement was at its limit */
    uint64_t refused_again;              /* re-announcements of a remembered refused series */
    uint64_t refused_forgotten;          /* refused ids dropped from a full memory window */
    uint64_t dropped_events;             /* events charged to a refused series' measurement */
    uint64_t dropped_unattributed;       /* unknown events whose series is not remembered */
    uint32_t measurements;               /* entries in use (without "other") */
    uint64_t bytes;                      /* memory held by the table itself, keys excluded */
} rf_series_table_stats;

/* A per-measurement limit for one measurement (an override of the default). */
typedef struct rf_series_limit_override {
    uint64_t hash;       /* rf_series_measurement_hash of the canonical name */
    uint32_t max_series; /* 0 = no limit for this measurement */
} rf_series_limit_override;

typedef struct rf_series_limits {
    uint32_t max_per_measurement; /* default for every measurement; 0 = no limit */
    uint32_t n_overrides;
    const rf_series_limit_override *overrides;
} rf_series_limits;

/* One measurement's accounting (a relaxed, recent read). */
typedef struct rf_series_meas_stats {
    const char *name; /* canonical text, cut to RF_SERIES_MEAS_NAME - 1 bytes */
    uint64_t hash;    /* of the whole name; 0 for "(other measurements)" */
    uint64_t active;  /* series held now (accepted, not yet expired) */
    uint64_t expired; /* series retired for idleness */
    uint64_t refused_shard_limit;
    uint64_t refused_measurement_limit;
    uint64_t dropped_events; /* events dropped because their series was refused */
    uint32_t limit;          /* per-measurement limit in force, 0 = none */
    uint32_t index;          /* the entry's index (stable), for rf_series_table_measurement */
    bool other;              /* the "(other measurements)" entry */
} rf_series_meas_stats;
typedef void (*rf_series_meas_fn)(void *ctx, const rf_series_meas_stats *m);

/* One tag of a canonical key, as offsets into rf_series_key.text. */
typedef struct rf_series_tag {
    uint16_t key_off, key_len;
    uint16_t val_off, val_len; /* val_off 0: a bare tag without '=' */
} rf_series_tag;

/* max_series from 1 to 2^30. Returns NULL on allocation failure or bad size. */
rf_series_table *rf_series_table_new(uint32_t max_series);
/* The most memory a table made by rf_series_table_new(max_series) holds,
 * all of it touched, when its series have at most max_tags tags each: the
 * index, arrays, tag-span pool, measurement entries and refused-id memory,
 * with the allocator's rounding (core/mem/bound.h). The keys are the
 * caller's (one rf_series_key per series). */
uint64_t rf_series_table_memory_bound(uint32_t max_series, uint32_t max_tags);
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
 * -EDQUOT at the measurement's limit, -ENOSPC at the table's limit (both:
 * a newly refused series), -EALREADY for a remembered refused series that
 * the limits still refuse, -EINVAL for a NULL key or a key whose offsets do
 * not fit its text, -ENOMEM when the tag pool cannot grow. */
int32_t rf_series_table_define(rf_series_table *t, rf_series_key *key);

/* Worker (or before the worker starts): the per-measurement limits. The table
 * keeps the pointer (NULL = no per-measurement limit): *limits and its
 * overrides must stay valid until the next call or rf_series_table_free.
 * Applies to every measurement at once, known ones included: a lowered limit
 * refuses new series from then on (accepted series stay), a raised one
 * accepts them again. */
void rf_series_table_set_limits(rf_series_table *t, const rf_series_limits *limits);

/* Worker: an event whose series rf_series_table_find did not know (the caller
 * drops it as unknown_series); charges it to its refused series'
 * measurement, or to dropped_unattributed. No allocation, no string work. */
void rf_series_table_count_dropped(rf_series_table *t, uint64_t series_id);

/* Any thread: every measurement entry with something counted (relaxed reads,
 * recent rather than a snapshot), then "(other measurements)" if used. */
void rf_series_table_measurements(const rf_series_table *t, rf_series_meas_fn fn, void *ctx);
/* Any thread: one entry by index (entries never move: an index seen once
 * stays that measurement's; RF_SERIES_MEAS_MAX is "other"). False when that
 * entry does not exist (yet). */
bool rf_series_table_measurement(const rf_series_table *t, uint32_t index,
                                 rf_series_meas_stats *out);

/* The hash that identifies a measurement: of its canonical text (the prefix
 * measurement_len of a key; escapes kept). */
uint64_t rf_series_measurement_hash(const char *canonical, size_t len);
/* A measurement name as written by a user (e.g. in the configuration) in its
 * canonical form: ',' ' ' and '\' escaped with a backslash, as the parsers
 * do. Returns the length, or -ENAMETOOLONG when it does not fit out_size
 * (with NUL). */
int rf_series_measurement_canon(const char *name, char *out, size_t out_size);

const rf_series_key *rf_series_table_key(const rf_series_table *t, int32_t slot);
/* The tags of a slot in key order; *out points into the table (valid until the
 * next definition). Returns the tag count. */
uint32_t rf_series_table_tags(const rf_series_table *t, int32_t slot, const rf_series_tag **out);
/* Slots used so far (held or retired): the bound to iterate slots to. */
uint32_t rf_series_table_count(const rf_series_table *t);

/* Worker: the table's clock (any monotonic clock the caller keeps; the
 * pipeline's time, an event clock in a replay): what definitions and
 * rf_series_table_find_touch stamp, and what expiry measures idleness on. */
void rf_series_table_set_now(rf_series_table *t, int64_t now);
/* rf_series_table_find, stamping the series as seen now (per data event). */
int32_t rf_series_table_find_touch(rf_series_table *t, uint64_t series_id);
/* Called for each series about to be retired, its slot and key still valid. */
typedef void (*rf_series_expire_fn)(void *ctx, int32_t slot, const rf_series_key *key);
/* Worker: visits up to `budget` slots from where the last call stopped and
 * retires the series idle for at least idle_ns (0: none), calling fn first.
 * Counted per measurement (expired) and in the stats. Returns how many were
 * retired. No allocation. */
uint32_t rf_series_table_expire(rf_series_table *t, int64_t idle_ns, uint32_t budget,
                                rf_series_expire_fn fn, void *ctx);
void rf_series_table_stats_read(const rf_series_table *t, rf_series_table_stats *out);

/* Splits the tag section of a canonical key into spans. Writes at most `cap`
 * spans and returns how many tags there are (which may exceed cap). Exposed
 * for tests and for stages that hold keys outside a table. */
uint32_t rf_series_key_parse_tags(const rf_series_key *key, rf_series_tag *out, uint32_t cap);

#endif
