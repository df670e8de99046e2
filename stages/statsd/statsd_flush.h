/* rf_statsd_flusher: StatsD's flush semantics on the worker that owns the
 * series, so that what is stored is what StatsD (Etsy's daemon) and
 * Telegraf's statsd input would have sent on.
 *
 * Contract
 *   - Owned by one worker thread (the pipeline's); no locking. A StatsD
 *     series (metric name, DogStatsD tags, type) is owned by one worker
 *     (rf_event_owner of its id), so every sample of it reaches this one
 *     flusher and its interval is complete here: nothing is merged between
 *     workers (unlike group-by aggregation, stages/aggregate/README.md).
 *   - Input: the worker's data events with their series slots. Events that
 *     carry RF_EVF_STATSD (ingest/protocol/statsd.c) are taken into their
 *     series' state for the current interval; unless keep_raw, they are then
 *     taken out of the batch (rf_statsd_flusher_process compacts it), so they
 *     are neither routed nor stored. Other events pass untouched.
 *   - Flush: every flush_interval of wall time, at multiples of it since the
 *     epoch (Telegraf's round_interval), rf_statsd_flusher_tick emits one
 *     value per output field of every series updated in the interval, with
 *     the boundary as event time, kind RF_KIND_GAUGE, value F64. Output
 *     series: measurement = the metric name, the same tags, field named as
 *     Telegraf's statsd input names it:
 *       counter (c)            value = sum of value * (1 / rate), in double,
 *                              in arrival order (StatsD's exact formula); reset;
 *       gauge (g)              value: "+N"/"-N" add to the current value (0 if
 *                              none), others set it. Kept across flushes and
 *                              emitted every flush (StatsD's default) unless
 *                              delete_gauges (Telegraf's option): then emitted
 *                              only when updated, and forgotten after;
 *       timer (ms), histogram  count (sum of 1/rate), lower, upper, mean,
 *       (h), distribution (d)  median, stddev (population), sum, and
 *                              <p>_percentile for each configured p: the value
 *                              at rank round(p/100 * n) (1-based) among the
 *                              interval's sorted values (rf_quantile_rank in
 *                              stages/sketch/sketch.h, the one definition
 *                              ringflow uses), skipped when that rank
 *                              is 0 (StatsD's upper_<p>); with one value, that
 *                              value. Computed as StatsD does: sum in sorted
 *                              order, mean = sum / n, two-pass stddev, median
 *                              the middle value or the mean of the two middle
 *                              ones. Past timer_max_values values in one
 *                              interval the series switches to a DDSketch
 *                              (stages/sketch, 1% relative error) for that
 *                              interval: median and percentiles then come from
 *                              it; count, lower, upper, sum, mean and stddev
 *                              stay exact (running, Welford);
 *       set (s)                value = the exact number of distinct members
 *                              (their 64-bit hashes) up to set_max_exact, a
 *                              HyperLogLog estimate (3.25%) past it.
 *     Counters, timers and sets are emitted only for intervals in which they
 *     received something (Telegraf's delete_counters/timings/sets defaults);
 *     StatsD's idle zeros are not stored. The same name sent as two types
 *     (foo:1|c and foo:1|g) writes one series' field `value` twice.
 *   - Client timestamps (DogStatsD |T) do not place a sample: the interval
 *     being collected takes it, as in StatsD.
 *   - Memory: per series a state of rf_statsd_state_bytes(), allocated when
 *     the series is first seen (the state table grows by doubling); a timer's
 *     values (8 B each, up to timer_max_values, grown by doubling and kept
 *     across intervals) and a set's members (up to set_max_exact) likewise.
 *     An allocation that fails drops the sample and counts it (no_memory).
 *     States are never freed (series never are either). All of it is held
 *     under max_memory: past it a timer or a set goes on in its sketch for
 *     the interval (no sample lost, counted memory_capped), and only a new
 *     series or a timer's or set's first value is dropped (no_memory).
 */
#ifndef RF_STAGES_STATSD_FLUSH_H
#define RF_STAGES_STATSD_FLUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"
#include "core/event/event.h"
#include "stages/series/series_table.h"
#include "stages/stage/stage.h"

#define RF_STATSD_MAX_PERCENTILES 16u

typedef struct rf_statsd_config {
    bool enabled;              /* false: StatsD samples pass on raw, nothing is flushed */
    bool keep_raw;             /* also route the raw samples (as before flushing existed) */
    bool delete_gauges;        /* Telegraf's delete_gauges; false = StatsD's default */
    int64_t flush_interval_ns; /* 10 s */
    uint32_t n_percentiles;    /* default 2: 90, 99 */
    double percentiles[RF_STATSD_MAX_PERCENTILES]; /* in (0, 100] */
    uint32_t timer_max_values; /* exact percentiles up to this many values per interval */
    uint32_t set_max_exact;    /* exact distinct count up to this many members */
    uint64_t max_memory;       /* bytes this flusher may hold (default 64 MiB) */
} rf_statsd_config;

void rf_statsd_config_defaults(rf_statsd_config *c);
/* Reads `pipeline.statsd` (format in daemon/default_config.yaml). */
int rf_statsd_config_parse(const rf_cfg_node *pipeline, rf_statsd_config *out, rf_err *err);

typedef struct rf_statsd_flusher rf_statsd_flusher;

typedef struct rf_statsd_stats {
    uint64_t samples;       /* StatsD samples taken */
    uint64_t raw_dropped;   /* of them, taken out of the batch (keep_raw off) */
    uint64_t invalid;       /* NaN or infinite values: not applied */
    uint64_t no_memory;     /* samples not applied: a state or buffer could not grow */
    uint64_t flushes;       /* intervals flushed */
    uint64_t values;        /* values emitted */
    uint64_t series_defs;   /* output series announced */
    uint64_t sketched;      /* timer intervals that went past timer_max_values */
    uint64_t hll_sets;      /* set intervals that went past set_max_exact */
    uint64_t memory_capped; /* allocations refused by max_memory (a timer or set then goes on
                               in its sketch; a new series or a first value is dropped) */
    uint64_t held_bytes;    /* bytes held now, against max_memory */
    uint64_t states;        /* series with a state */
} rf_statsd_stats;

/* `series` stays the caller's and must outlive the flusher. NULL with err
 * filled on a bad config or no memory. */
rf_statsd_flusher *rf_statsd_flusher_new(const rf_statsd_config *cfg, const rf_series_table *series,
                                         rf_emitter out, rf_err *err);
void rf_statsd_flusher_free(rf_statsd_flusher *f);
/* A reload's settings: taken from the next sample on; the states (gauge
 * values among them) stay. A new interval applies from the next boundary. */
void rf_statsd_flusher_set_config(rf_statsd_flusher *f, const rf_statsd_config *cfg);
/* Takes the StatsD samples of ev[0..n) (slots[i] = ev[i]'s series slot).
 * Without keep_raw they are removed: ev and slots are compacted in place and
 * the new count is returned. */
uint32_t rf_statsd_flusher_process(rf_statsd_flusher *f, rf_event *ev, int32_t *slots, uint32_t n);
/* Flushes when now_wall_ns has reached the next boundary (the first call only
 * sets it). Emitted values carry recv_time_ns = now_mono_ns. */
void rf_statsd_flusher_tick(rf_statsd_flusher *f, int64_t now_mono_ns, int64_t now_wall_ns);
/* The wall time of the next flush (an interval boundary); 0 before the
 * first tick aligned it, INT64_MAX when flushing is off. */
int64_t rf_statsd_flusher_next_wall(const rf_statsd_flusher *f);
/* Flushes what the current interval holds now, stamped now_wall_ns (stop). */
void rf_statsd_flusher_flush(rf_statsd_flusher *f, int64_t now_mono_ns, int64_t now_wall_ns);
void rf_statsd_flusher_stats_read(const rf_statsd_flusher *f, rf_statsd_stats *out);
/* Bytes of one series' state (without its values or members). */
uint32_t rf_statsd_state_bytes(void);
/* The most memory a flusher built from cfg can hold: the flusher itself and
 * max_memory, allocator rounding included (for engine.memory_limit). */
uint64_t rf_statsd_flusher_memory_bound(const rf_statsd_config *cfg);

#endif
