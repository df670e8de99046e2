/* The engine: workers, the mesh of rings between them, and what each worker
 * does per poll (receive, parse, dispatch by owner, process what it owns).
 *
 * Contract
 *   - rf_engine_start creates every ring and worker and returns once each
 *     worker is running (or fails as a whole, with err naming the part).
 *   - rf_engine_stop shuts down in two phases so nothing is lost: first every
 *     worker stops receiving and flushes what it staged for others; then each
 *     worker drains its inbound rings, flushes its stages and storage, and
 *     exits. Events accepted before rf_engine_stop are processed.
 *   - rf_engine_reload applies a validated configuration: the pipeline
 *     (sinks, routes, rules, correlation, aggregations, batching) is rebuilt
 *     and swapped on each worker without stopping it (what the old stages
 *     held is flushed first), listeners are added and removed, log level
 *     and idle policy change; what cannot change live (workers, rings,
 *     storage, ...) is reported in err and left as it is (return value 1).
 *     A worker that has not taken its new pipeline or listener change within
 *     10 s keeps it queued and takes it at its next loop; that too returns 1
 *     with err saying so. Until every worker has taken it, another reload is
 *     refused with -EBUSY and changes nothing (a queued change is never
 *     overwritten). It takes the new pipeline's settings from *next (zeroed
 *     there); the engine keeps them while any worker's stages use them.
 *   - The control thread calls every function here; workers never do.
 */
#ifndef RF_DAEMON_ENGINE_H
#define RF_DAEMON_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/ring/ring.h"
#include "core/worker/worker.h"

#include "core/error/error.h"
#include "daemon/settings.h"
#include "daemon/worker_shard.h"

typedef struct rf_engine rf_engine;

/* Slots of each critical ring (one per ordered pair of workers, beside the
 * standard one): critical traffic is small, and a critical event must never
 * be dropped for want of room, so the producer waits when one is full. */
#define RF_CRIT_RING_SLOTS 4096

typedef struct rf_engine_worker_stats {
    uint64_t events_parsed;          /* events this worker's listeners produced */
    uint64_t events_from_peers;      /* events taken from its inbound rings */
    uint64_t events_processed;       /* events of its own series run through the stages */
    uint64_t sent_to_peers;          /* events handed to other workers' rings */
    uint64_t dropped_ring_full;      /* drop_newest drops when sending to peers */
    uint64_t dropped_unknown_series; /* events whose series definition never arrived */
    uint64_t block_waits;            /* times a full peer ring made this worker wait */
    uint64_t critical_events;        /* data events its critical listeners produced */
    uint64_t critical_from_peers;    /* events taken from its critical inbound rings */
    uint64_t peer_sent;     /* peer messages (pipeline.h "Between shards") put on its rings */
    uint64_t peer_received; /* peer messages taken from its inbound peer rings */
    uint64_t peer_dropped_backlog; /* dropped: a peer's backlog was at its bound */
    uint64_t peer_backlog;         /* waiting for room in a peer ring now */
    /* One client over every core (ingest/spread): TCP runs this worker
     * received and handed to a peer, received and parsed itself, and took
     * from peers; offers refused for want of a free buffer; runs handed
     * here for a listener a reload had removed (dropped). */
    uint64_t spread_handed_chunks, spread_handed_bytes, spread_local_chunks, spread_local_bytes,
        spread_taken_chunks, spread_taken_bytes, spread_no_buffer, spread_orphaned;
    /* Sync writes (HTTP `sync=true`, daemon/engine_sync.c): barrier rounds
     * this worker started, and their parked answers by outcome. */
    uint64_t sync_rounds, sync_answered, sync_timeouts, sync_failed;
    /* HTTP writes this worker answered 503 (worker_busy), by why: its rings
     * dropped points, a shard refused a series at max_series, resident
     * memory above engine.memory_limit. */
    uint64_t busy_ring_drops, busy_series_limit, busy_memory;
} rf_engine_worker_stats;

int rf_engine_start(const rf_settings *settings, rf_engine **out, rf_err *err);
int rf_engine_reload(rf_engine *e, rf_settings *next, rf_err *err);
void rf_engine_stop(rf_engine *e);

/* Recording what the listeners receive (daemon/tap.h), control thread.
 * start: -EBUSY when one runs; stop: -ENOENT when none does. While one
 * runs, rf_engine_record_stats fills *out and the path and returns true. */
typedef struct rf_tap_options rf_tap_options;
typedef struct rf_tap_stats rf_tap_stats;
int rf_engine_record_start(rf_engine *e, const rf_tap_options *opt, rf_err *err);
int rf_engine_record_stop(rf_engine *e, rf_tap_stats *final, rf_err *err);
bool rf_engine_record_stats(const rf_engine *e, rf_tap_stats *out, char *path, size_t path_size);

uint32_t rf_engine_workers(const rf_engine *e);
/* The most memory one worker of `workers` holds beside its rings and shard
 * (core/mem/bound.h): its struct and its staging toward every peer, each a
 * mapping of its own on the worker's node (whole pages), and its sync-write
 * rings and wait state (engine_sync.c). */
uint64_t rf_engine_worker_memory_bound(uint32_t workers);
void rf_engine_worker_stats_read(const rf_engine *e, uint32_t worker, rf_engine_worker_stats *out);
/* The runtime view of worker i: lifecycle, polls, busy time, pinned cpu. */
void rf_engine_worker_runtime_read(const rf_engine *e, uint32_t worker, rf_worker_stats *out,
                                   const rf_component **component);
/* Statistics of the ring from worker `from` to worker `to` (from != to).
 * Returns false when there is no such ring. */
bool rf_engine_ring_stats_read(const rf_engine *e, uint32_t from, uint32_t to, rf_ring_stats *out);
/* Worker i's shard (control thread: read-only accessors only). */
const struct rf_shard *rf_engine_shard(const rf_engine *e, uint32_t worker);
/* The store, or NULL when storage is disabled. */
struct rf_store *rf_engine_store(const rf_engine *e);

/* Registers the `show` providers for listeners, errors, stages, storage and
 * series (daemon/ops/views/); unregister before rf_engine_stop. */
int rf_engine_views_register(rf_engine *e, rf_err *err);
void rf_engine_views_unregister(void);
/* After a reload: gives the listeners it added their /metrics series (the
 * control thread, as for register). Returns 0, or -ENOMEM/-ENOSPC with err. */
int rf_engine_views_listeners_changed(rf_engine *e, rf_err *err);

/* Every loss in the engine, totalled by where and why it happened (control
 * thread; recent values of single-writer counters). */
typedef struct rf_engine_drops {
    uint64_t kernel;         /* UDP receive queues overflowed (per listener, SO_RXQ_OVFL) */
    uint64_t rejected_lines; /* parser rejects, all reasons */
    uint64_t ring_full;      /* drop_newest drops between workers */
    uint64_t unknown_series; /* events whose series definition never arrived */
    uint64_t cardinality;    /* series refused by pipeline.max_series */
    uint64_t unrouted;       /* events no route took */
    uint64_t store;          /* points the storage shards refused (back-pressure, errors) */
    uint64_t sinks;          /* events sinks dropped (queue full, disconnected, ...) */
    uint64_t dpdk;           /* frames the DPDK queues dropped, all reasons */
} rf_engine_drops;
void rf_engine_drops_read(const rf_engine *e, rf_engine_drops *out);

/* One line: NUMA nodes, the rule used, each worker's CPU and node, and what
 * of each worker's memory was bound to its node. */
const char *rf_engine_placement(const rf_engine *e);
/* The CPU worker i is pinned to, or -1 (not pinned, or no such worker). */
int rf_engine_worker_cpu(const rf_engine *e, uint32_t worker);
/* What worker i's structures bound to its node at start (numa/numa.h,
 * "Memory"): its node, counts, refusals, and the regions (the first
 * RF_MEM_SCOPE_LOG: addresses valid while the engine runs, except regions
 * of a pipeline a reload has replaced). Read-only, for tests and checks;
 * NULL when there is no such worker. */
struct rf_mem_scope;
const struct rf_mem_scope *rf_engine_worker_memory(const rf_engine *e, uint32_t worker);
/* The DPDK ports, or NULL when DPDK is disabled or did not start. */
struct rf_dpdk *rf_engine_dpdk(const rf_engine *e);

/* The settings the engine runs with (after reloads). */
const rf_settings *rf_engine_settings(const rf_engine *e);
/* Control thread: resident memory is above (or back under)
 * engine.memory_limit. While above, HTTP writes are answered 503 with
 * Retry-After (counted busy_memory) instead of taken and dropped later. */
void rf_engine_set_memory_over(rf_engine *e, bool over);

/* Listeners a reload removed are freed once their workers have closed
 * them (daemon/worker_shard.h, rf_shard_inputs_reap): by the reload itself when
 * they close within its wait, else by the next reload or by this (the
 * daemon's control loop calls it every second). Returns how many inputs it
 * freed. set_input_gone: called for each before it is freed (the views'
 * /metrics series of that input). Control thread. */
uint32_t rf_engine_reap_inputs(rf_engine *e);
void rf_engine_set_input_gone(rf_engine *e, rf_shard_input_gone_fn fn, void *ctx);

/* Test hooks (tests/daemon/test_reload_late.c). hold: worker `worker`
 * stops at the top of its next loop for ns, as a worker stuck in a slow
 * sink would; returns once it has stopped there. reload_wait: how long
 * rf_engine_reload waits for the workers to take a change (10 s unless
 * set), and rf_engine_record_stop for its grace period (5 s). */
void rf_engine_test_hold(rf_engine *e, uint32_t worker, int64_t ns);
void rf_engine_test_reload_wait(rf_engine *e, int64_t ns);

#endif
