/* The processing chain of one shard, and the `pipeline:` configuration it is
 * built from.
 *
 * Per batch of events a worker owns:
 *
 *   SERIES_DEF -> series table (cardinality limit) -> every stage's define
 *   data       -> aggregation  -> (aggregates)  -+
 *              -> correlation  -> (correlated)  -+-> routing -> critical sinks: written and
 *              -> alert rules  -> (alerts)      -+             flushed at once (fast path)
 *              -> routing ---------------------------------> standard sinks: through a
 *                                                             batcher per sink (size, interval)
 *                                                          -> store sinks: storage shard
 *
 * The critical path is measured per event when it is handed to a critical
 * sink: now - recv_time_ns, in a histogram per worker
 * (ringflow_critical_path_seconds{worker="N"}).
 *
 * Series defined by a stage (aggregate series) belong to the shard that made
 * them, and are defined in its series table and stored there: for an
 * ungrouped rule the owner of the input series; for a group-by rule the
 * owner of the group, rf_event_owner(group id) where the group id is the
 * hash of the group's canonical text without the ":fn" suffix (the workers
 * send it their partial windows, stages/aggregate/README.md). Their own ids
 * (with the suffix) may hash elsewhere; a query reads every shard.
 *
 * Series lifecycle (issue 24): a series with no event for
 * pipeline.series_idle_ttl (pipeline time: the monotonic clock, or the event
 * clock of a replay) is retired by its shard. The tick advances a bounded
 * sweep of the series table (RF_PIPELINE_EXPIRE_BUDGET slots a tick, never a
 * whole pass); for each idle series, before its slot is freed: its open
 * aggregation windows close and are emitted (group windows go to their owner
 * as partials, stages/aggregate/README.md), its correlation bindings and its
 * alert bindings are dropped (a per-series absence has fired by then: its
 * `absent` must be shorter than the TTL, the configuration says so), its
 * store buffer is cut into a block and freed. Its points stay in the
 * segments. The slot goes back to the table; each stage resets its per-slot
 * state then, so the next series in that slot starts clean. The ingest side
 * forgets its announcements every half TTL (rf_parse_config.forget_ns), so
 * a series that comes back is announced again and defined as new.
 *
 * Everything here runs on the owning worker's thread, except
 * rf_pipeline_settings_* (control thread) and the *_stats readers.
 */
#ifndef RF_STAGES_PIPELINE_H
#define RF_STAGES_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"
#include "core/event/event.h"
#include "stages/aggregate/aggregate.h"
#include "stages/alert/alert.h"
#include "stages/batch/batch.h"
#include "stages/correlate/correlate.h"
#include "stages/route/route.h"
#include "stages/series/series_table.h"
#include "stages/sink/sink.h"
#include "stages/statsd/statsd_flush.h"

typedef struct rf_store_shard rf_store_shard;

/* Series table slots the expiry sweep visits per step (a step every 100 ms). */
#define RF_PIPELINE_EXPIRE_BUDGET 4096u

/* Per-measurement overrides of max_series_per_measurement, at most. */
#define RF_PIPELINE_MAX_CARDINALITY_OVERRIDES 1024

/* pipeline.series_idle_ttl: the default (1 h). */
#define RF_PIPELINE_DEFAULT_SERIES_IDLE_TTL_NS (3600LL * 1000000000LL)

/* pipeline.max_series: the most `auto` gives (per shard). */
#define RF_PIPELINE_DEFAULT_MAX_SERIES (1u << 20)

typedef struct rf_pipeline_settings {
    uint32_t max_series; /* per shard: the cardinality limit */
    /* max_series: auto (the default): rf_settings_load lowers max_series
     * from RF_PIPELINE_DEFAULT_MAX_SERIES until the worst case fits
     * engine.memory_limit (daemon/memory_budget.h). */
    bool max_series_auto;
    /* Per shard too: max_series_per_measurement (0 = none) and the
     * cardinality_overrides; limits.overrides points to `overrides` (owned,
     * shared by copies of these settings, freed by release). */
    rf_series_limits limits;
    rf_series_limit_override *overrides;
    /* series_idle_ttl: a series without an event for this long is retired
     * (0 = never). Not changed by a reload. */
    int64_t series_idle_ttl_ns;
    rf_batcher_config batch; /* for every standard sink */
    rf_sink_configs sinks;
    rf_router_config_parsed routes;
    rf_alerts_config_parsed alerts;
    rf_correlator_config_parsed correlation;
    rf_agg_config aggregation;
    rf_statsd_config statsd; /* pipeline.statsd: StatsD flush intervals */
} rf_pipeline_settings;

/* Parses `pipeline:` (sinks, routes, subjects, batch, aggregation(s),
 * correlation, alerts, max_series, max_series_per_measurement,
 * cardinality_overrides) from the document root. Without sinks and
 * routes, the default routing applies (store everything; alerts to
 * <data_dir>/alerts.jsonl). All or nothing; release with
 * rf_pipeline_settings_release. */
int rf_pipeline_settings_parse(const rf_cfg_node *root, const char *data_dir,
                               rf_pipeline_settings *out, rf_err *err);
void rf_pipeline_settings_release(rf_pipeline_settings *ps);

typedef struct rf_pipeline rf_pipeline;

typedef struct rf_pipeline_stats {
    uint64_t processed;                   /* data events run through the stages */
    uint64_t unknown_series;              /* dropped: their series is not defined here (refused) */
    uint64_t series_rejected;             /* series refused by a cardinality limit (both reasons) */
    uint64_t series_rejected_shard_limit; /* ... the shard had max_series */
    uint64_t series_rejected_measurement_limit; /* ... their measurement was at its limit */
    uint64_t series_def_failed;  /* definitions that failed otherwise (bad key, no memory) */
    uint64_t series_expired;     /* series retired after series_idle_ttl without an event */
    uint64_t to_critical_sinks;  /* event deliveries on the fast path */
    uint64_t to_standard_sinks;  /* event deliveries through batching */
    uint64_t to_store;           /* events appended to the storage shard */
    uint64_t store_rejected;     /* appends the storage shard refused (counted there by reason) */
    uint64_t unrouted;           /* events no route took */
    uint64_t peer_sent;          /* peer messages this shard's stages sent (own shard included) */
    uint64_t peer_received;      /* peer messages handed to a stage here */
    uint64_t peer_unhandled;     /* dropped: no stage here takes them (e.g. gone with a reload) */
    uint64_t peer_undeliverable; /* dropped: to another shard with no transport set */
    uint64_t edge_evaluated;     /* critical events the edge took (rf_pipeline_edge_process) */
    uint64_t edge_unknown;       /* ... not taken: their series is not in the edge's table */
    uint64_t edge_refused;       /* edge definitions refused (table full, no memory) */
} rf_pipeline_stats;

/* Control thread: builds the stages and sinks of shard `index` of `shards`
 * from ps (which must outlive the pipeline). store may be NULL (no storage
 * configured: store sinks then count what they would have stored as
 * store_rejected). With shards > 1, rf_pipeline_set_peer_send must be called
 * before the first event. */
int rf_pipeline_new(const rf_pipeline_settings *ps, uint32_t index, uint32_t shards,
                    rf_store_shard *store, rf_pipeline **out, rf_err *err);
void rf_pipeline_free(rf_pipeline *p);
/* Memory bounds (core/mem/bound.h), for daemon/memory_budget.c: the
 * pipeline's own buffers (scratch batches, histograms, each sink's staging),
 * and the stages built from ps (routing, alerts, correlation, aggregation,
 * sinks and their batchers) for a series table of max_series: what a reload
 * builds beside the running ones. */
uint64_t rf_pipeline_memory_bound(const rf_pipeline_settings *ps);
uint64_t rf_pipeline_stages_memory_bound(const rf_pipeline_settings *ps, uint32_t max_series);

/* Reload (control thread): builds the replaceable stages (sinks, batchers,
 * router, rules, correlation, aggregation) from ps, which must outlive them;
 * publishes them to the worker, which swaps at its next tick; applied says
 * when the swap is done (the old stages freed). A failed prepare leaves the
 * running stages alone; discard drops a prepared set never published.
 * pipeline.max_series is the series table's size and does not change; the
 * per-measurement limits (max_series_per_measurement, cardinality_overrides)
 * do: the worker applies the new ones to every measurement at the swap. */
int rf_pipeline_prepare(rf_pipeline *p, const rf_pipeline_settings *ps, rf_err *err);
void rf_pipeline_discard_prepared(rf_pipeline *p);
void rf_pipeline_publish(rf_pipeline *p);
bool rf_pipeline_applied(const rf_pipeline *p);

/* Between shards (peer messages, core/event/event.h "Peer messages").
 *
 * State that must live on one owner whatever shard saw the data (a group-by
 * window's merged result, a correlation pattern's key, a rule-wide alert)
 * is reached through peer messages: a stage calls the send function it was
 * built with (the pipeline's rf_pipeline_peer_send) and the receiving
 * pipeline hands each RF_KIND_PEER event to the stage named by its subkind,
 * in rf_pipeline_process like any event. Messages to the pipeline's own
 * shard are queued and handed back after the current pass (process, tick or
 * drain), so one shard and N shards take the same path.
 *
 * The transport between shards is the owner's: the engine's peer rings
 * (daemon/engine.c: never blocking, a backlog per destination, overflow
 * counted), or the replay engine's in-process queues (deterministic).
 * Set it before the first event; without one, a message to another shard is
 * counted as peer_undeliverable and dropped.
 *
 * Stop (the order the engine and the replay follow):
 *   1. rf_pipeline_close_stages on every shard: whatever a stage holds that
 *      a peer must see goes out (open windows as partials, rule-wide
 *      reports);
 *   2. the transport delivers every message until all shards are quiet;
 *   3. rf_pipeline_drain on every shard: owners emit what they merged,
 *      batches and sinks are flushed. */
void rf_pipeline_set_peer_send(rf_pipeline *p, rf_peer_send_fn fn, void *ctx);
void rf_pipeline_peer_send(void *pipeline, uint32_t to, const rf_event *ev, uint32_t n);
void rf_pipeline_close_stages(rf_pipeline *p);
void rf_pipeline_close_stages_at(rf_pipeline *p, int64_t now_mono_ns);
uint32_t rf_pipeline_index(const rf_pipeline *p);
uint32_t rf_pipeline_shards(const rf_pipeline *p);

/* The critical edge (docs/ARCHITECTURE.md, "The critical lane").
 *
 * A critical event (a `class: critical` listener's) of a series another
 * shard owns need not wait for that shard's worker, which may be asleep:
 * the worker it arrived at evaluates the series' threshold rules and hands
 * it to the sinks other than the store right there, then sends it on to
 * the owner flagged RF_EVF_EDGE_DONE. The owner runs everything else on it
 * (series table, aggregation, correlation, rate and absence rules, StatsD,
 * the store) and skips what the edge did (threshold rules, the other
 * sinks), so each (rule, series) state lives in one place and each sink
 * gets the event once.
 *
 * The edge has a series table of its own (RF_PIPELINE_EDGE_SERIES series,
 * keys copied from the definitions, which go on to the owner; expired like
 * the shard's) and a router and threshold rules of its own, built with the
 * other stages (a reload rebuilds them and binds the edge's series again).
 * The engine decides which worker is a series' edge (one per series, so a
 * threshold state is never split; daemon/engine_dataplane.c) and passes it
 * the series' critical definitions and data, in order.
 *
 * rf_pipeline_edge_process: worker thread, outside any pass of this
 * pipeline; ev are definitions (applied to the edge's table; their keys
 * stay the caller's) and data; each data event taken gets RF_EVF_EDGE_DONE
 * in ev. Data of a series the edge could not define is left unflagged (its
 * owner does all, counted as edge_unknown). Does nothing on one shard. */
#define RF_PIPELINE_EDGE_SERIES 4096u
void rf_pipeline_edge_process(rf_pipeline *p, rf_event *ev, uint32_t n);

/* Worker thread. */
void rf_pipeline_process(rf_pipeline *p, const rf_event *events, uint32_t n);
/* Time-driven work; cheap when nothing is due. Returns work done. The store
 * is ticked with both clocks (rf_store_tick_wall). */
uint32_t rf_pipeline_tick(rf_pipeline *p, int64_t now_mono_ns, int64_t now_wall_ns);
/* Shutdown: closes windows, flushes batches and sinks. */
/* Between hosts: one remote partial block (stages/aggregate, "Between
 * hosts") for this shard's aggregator, which merges it (copied). Worker
 * thread. Returns 0, -EINVAL (malformed or no such rule, counted by the
 * aggregator) or -ENOENT (no aggregation here: counted peer_unhandled). */
int rf_pipeline_receive_partial(rf_pipeline *p, const uint8_t *block, size_t len);
void rf_pipeline_drain(rf_pipeline *p);
/* When rf_pipeline_tick next has time-driven work, as of the last tick
 * (monotonic ns; at or before now: at once; INT64_MAX: nothing): the
 * earliest of the series expiry step, the aggregation sweep, a standard
 * sink's batch interval, a sink's downstream retry, an absence's silence,
 * a correlation group's TTL, the StatsD flush and the store's block_max_age.
 * Work done since the tick (events, peer messages) may bring it closer:
 * the caller ticks soon after any work (daemon/worker_shard.c). Worker
 * thread. */
int64_t rf_pipeline_next_due_ns(const rf_pipeline *p);
/* A reload's stages wait to be swapped in (at the next tick). Worker. */
bool rf_pipeline_swap_pending(const rf_pipeline *p);

/* Event clock (a replay, tools/replay/replay_engine.h): every time the pipeline and
 * its stages act on is given by the caller, so the same input at the same
 * given times produces the same output. rf_pipeline_process_at and
 * rf_pipeline_drain_at are rf_pipeline_process and rf_pipeline_drain at
 * monotonic time now_mono_ns instead of the clock's (batch ages, sink
 * flushes, correlation closes). After rf_pipeline_set_event_clock (before
 * the first event) aggregates are stamped with the pipeline's time instead
 * of the aggregator's clock read, and the critical path is not measured
 * (receipt times are not this process's). The store shard is configured
 * separately (rf_store_config.event_clock). */
void rf_pipeline_set_event_clock(rf_pipeline *p);
void rf_pipeline_process_at(rf_pipeline *p, const rf_event *events, uint32_t n,
                            int64_t now_mono_ns);
void rf_pipeline_drain_at(rf_pipeline *p, int64_t now_mono_ns);

/* Any thread (relaxed reads of single-writer counters). */
void rf_pipeline_stats_read(const rf_pipeline *p, rf_pipeline_stats *out);
/* Any thread: series_rejected_shard_limit alone (one relaxed load), for a
 * check made per request (the HTTP ingest's busy test). */
uint64_t rf_pipeline_series_refused_at_limit(const rf_pipeline *p);
const struct rf_hist *rf_pipeline_critical_hist(const rf_pipeline *p);
/* Cardinality per measurement of this shard: active series, series refused by
 * reason, events dropped because their series was refused, the limit in
 * force (control thread; counts are recent, not a snapshot). */
void rf_pipeline_measurements(const rf_pipeline *p, rf_series_meas_fn fn, void *ctx);

/* Every stage's counters (control thread; each stage's counters are written
 * by the worker only). */
typedef struct rf_pipeline_stage_stats {
    bool has_router, has_aggregation, has_alerts, has_correlation, has_statsd;
    rf_router_stats router;
    rf_agg_stats aggregation;
    rf_alerts_stats alerts;
    rf_correlator_stats correlation;
    rf_series_table_stats series;
    rf_statsd_stats statsd; /* the StatsD flusher (kept across reloads) */
} rf_pipeline_stage_stats;
void rf_pipeline_stages_read(const rf_pipeline *p, rf_pipeline_stage_stats *out);
/* One stage's counters, cheaper than the whole set for a /metrics scrape
 * (same threads as rf_pipeline_stages_read): false, with *out zeroed, when
 * the pipeline has no such stage. */
bool rf_pipeline_statsd_read(const rf_pipeline *p, rf_statsd_stats *out);
bool rf_pipeline_alerts_read(const rf_pipeline *p, rf_alerts_stats *out);

/* Logs the final counters of the stages and sinks (control thread, after the
 * worker stopped). */
void rf_pipeline_log_summary(const rf_pipeline *p);
/* Control thread, for `show` commands (reads stage counters, relaxed). */
uint32_t rf_pipeline_sink_count(const rf_pipeline *p);
const rf_sink *rf_pipeline_sink(const rf_pipeline *p, uint32_t i);
const rf_series_table *rf_pipeline_series(const rf_pipeline *p);

#endif
