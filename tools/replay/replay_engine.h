/* An in-process engine for replaying recordings deterministically: what
 * `ringflow replay FILE --into DIR` runs (tools/replay/replay.c).
 *
 * It is the daemon's pipeline, not a copy of it: the configuration is loaded
 * with rf_settings_load (the same file ringflowd takes, validated the same
 * way), each shard is an rf_pipeline (series table, aggregation, correlation,
 * alert rules, routing, batching, sinks) over a shard of an rf_store, and
 * payloads go through the same parsers (ingest/protocol). What differs is
 * who drives it: one thread, and the recording's clocks.
 *
 * Event time (the determinism contract)
 *   - Per record, in file order: its payload is parsed with the protocol it
 *     was received with, its recorded receive times (wall_ns: the default
 *     event time and the timestamp window's base; mono_ns: recv_time_ns of
 *     the events) and the parse configuration of the listener it was
 *     recorded on (matched by name: source id, max_line, class critical).
 *     The parser's batch is flushed after every record.
 *   - The events of a flush go to the shard that owns them
 *     (rf_event_owner(series_id, workers)), order kept per shard, and the
 *     shards process them in index order (rf_pipeline_process_at at the
 *     record's monotonic time): no rings, no threads, no races.
 *   - Ticks (rf_pipeline_tick: batch intervals, window idle closes, TTLs,
 *     for-durations, absence rules, block age cuts) run at every multiple of
 *     tick_ns of recorded monotonic time, before the first record after it,
 *     every shard in index order; the wall time given is the latest record's
 *     wall time plus the monotonic time since it. The first record gets a
 *     tick at its own time first.
 *   - The store runs with rf_store_config.event_clock (storage/store/store.h,
 *     "Event clock"): no tick budget, cuts wait for a free slot, segments
 *     are named, dated and rolled by the recording's time, no periodic
 *     retention. The pipelines run with rf_pipeline_set_event_clock.
 *   - A recorded monotonic time that goes backwards (the next recording of
 *     several, or a damaged one) does not turn the clock back: the engine's
 *     clock continues from where it was (counted in clock_steps_back).
 *   So the same records into a fresh directory give the same segment files
 *   (names and bytes) and the same sink files, line for line. With another
 *   number of workers the stored points are the same, the files are not
 *   (other shards, other blocks).
 *
 * Where it writes (all under dir, which must not exist or be empty)
 *   dir/store          the store (storage.dir of the configuration is not
 *                      used: a replay never writes into a live store)
 *   dir/NAME.jsonl     every json sink NAME (its configured path, "-"
 *                      included, is not used)
 *   lp_udp / lp_tcp sinks do not forward: they become count_only sinks
 *   (their events are counted in the summary as not forwarded).
 *
 * Contract
 *   - Single-threaded object; the store's I/O thread is its only helper.
 *   - Functions return 0 or a negative errno with err filled.
 */
#ifndef RF_TOOLS_REPLAY_REPLAY_ENGINE_H
#define RF_TOOLS_REPLAY_REPLAY_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error/error.h"
#include "ingest/protocol/protocol.h"
#include "storage/recfile/recfile.h"

/* Ticks every 10 ms of recorded time, as a daemon's worker does
 * (daemon/worker_shard.c). */
#define RF_REPLAY_TICK_NS (10 * 1000 * 1000)

typedef struct rf_replay_engine rf_replay_engine;

typedef struct rf_replay_engine_options {
    const char *config; /* ringflowd configuration file; NULL: the embedded default */
    const char *dir;    /* where everything is written (see above) */
    uint32_t workers;   /* shards; 0: engine.workers of the configuration */
    int64_t tick_ns;    /* 0: RF_REPLAY_TICK_NS */
} rf_replay_engine_options;

typedef struct rf_replay_summary {
    uint32_t workers;
    uint64_t records, payload_bytes;
    uint64_t ticks;                      /* tick points (each ticks every shard) */
    int64_t first_wall_ns, last_wall_ns; /* recorded receive times of the first and last record */
    int64_t span_ns;           /* engine monotonic time from the first record to the last */
    uint64_t clock_steps_back; /* records whose monotonic time went backwards */
    uint64_t peer_dropped;     /* peer messages lost: no memory to queue them */
    uint64_t unknown_listener; /* records of a listener the configuration does not have
                                     * (parsed with their protocol and default limits) */
    uint64_t skipped_records;  /* ... past the 64th such name: not parsed */
    uint64_t truncated;        /* records of datagrams cut by the capture: rejected whole
                                     * (line_too_long), as the daemon rejects what it cut */
    uint64_t bad_protocol;     /* records with an unknown protocol number: skipped */
    uint64_t http_records;     /* records of raw HTTP requests: skipped (an HTTP stream is
                                * requests, not lines; `ringflow replay --target` sends
                                * them to an http listener) */
    /* Parsers (all inputs). */
    uint64_t lines_ok, lines_rejected, events, series_defs;
    uint64_t rejected_by_reason[RF_REJ__COUNT];
    /* Pipelines (all shards; rf_pipeline_stats). */
    uint64_t processed, unknown_series, series_rejected, to_store, store_rejected, unrouted;
    uint64_t series_expired; /* retired after pipeline.series_idle_ttl (slots reused) */
    uint64_t aggregates, alerts_fired, alerts_resolved, correlated;
    /* Sinks (all shards). */
    uint64_t sink_lines, sink_dropped, not_forwarded;
    /* Store (all shards). */
    uint64_t points_appended, blocks_cut, store_dropped;
    uint64_t segments, segment_bytes; /* files under dir/store after the close */
} rf_replay_summary;

/* Loads the configuration, prepares dir, opens the store and builds every
 * shard's pipeline. */
int rf_replay_engine_open(const rf_replay_engine_options *opt, rf_replay_engine **out, rf_err *err);

/* Runs one recorded record through the engine (ticks first when its time has
 * passed a tick point). Records of an open without payload only move the
 * clock. Never fails: bad input is counted (summary). */
void rf_replay_engine_feed(rf_replay_engine *e, const rf_rec *r);

/* Ends the replay: drains every shard at the last recorded time (open
 * windows, correlation groups and batches leave through the sinks, every
 * buffer is cut), closes the store and fills *out. Returns 0, or the store's
 * close error (-EIO: blocks lost to write errors). Then free. */
int rf_replay_engine_finish(rf_replay_engine *e, rf_replay_summary *out, rf_err *err);

/* Safe on NULL. Without finish the stages are not drained (what they hold
 * is lost); the store is still closed (what it buffered is written). */
void rf_replay_engine_free(rf_replay_engine *e);

#endif
