/* A shard: everything one worker owns and runs. Its ingest side (the
 * listener set and parse contexts this worker reads) and its processing side
 * (the series table, stages and storage shard of the series it owns).
 *
 * Contract
 *   - Created by the control thread (rf_shard_new) before the worker starts;
 *     every other function runs on the owning worker's thread only, except
 *     rf_shard_wake (any thread) and the *_drops readers (control thread).
 *   - rf_shard_poll_ingest receives and parses a batch and hands the events to
 *     the dispatch function (the engine routes them to their owners, which may
 *     be this same shard via rf_shard_process).
 *   - rf_shard_process takes events this shard owns, in order.
 */
#ifndef RF_DAEMON_WORKER_SHARD_H
#define RF_DAEMON_WORKER_SHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error/error.h"
#include "core/event/event.h"
#include "daemon/settings.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"

typedef struct rf_shard rf_shard;
typedef struct rf_listener_config rf_listener_config;
typedef void (*rf_shard_dispatch_fn)(void *ctx, const rf_event *events, uint32_t n);
typedef void (*rf_shard_critical_fn)(void *ctx);

/* Control thread, once before any shard: fails when another process holds
 * a listener's port (our own sockets use SO_REUSEPORT and would share it).
 * rf_shard_probe_listener: the same for one listener (a reload's new one). */
int rf_shard_probe_listeners(const rf_settings *settings, rf_err *err);
int rf_shard_probe_listener(const rf_listener_config *lc, rf_err *err);

typedef struct rf_store_shard rf_store_shard;
typedef struct rf_pipeline rf_pipeline;
typedef struct rf_dpdk rf_dpdk;

/* settings must outlive the shard (the engine's copy). store and dpdk may be
 * NULL; with dpdk, the shard polls RX queue `index` of every port. */
int rf_shard_new(const rf_settings *settings, uint32_t index, uint32_t workers,
                 rf_store_shard *store, rf_dpdk *dpdk, rf_shard **out, rf_err *err);
void rf_shard_free(rf_shard *s);
/* The most memory a shard holds for one listener lc besides the listener
 * itself (core/mem/bound.h): its input (parse batch) and parse context. */
uint64_t rf_shard_input_memory_bound(const rf_settings *settings, const rf_listener_config *lc);
void rf_shard_set_dispatch(rf_shard *s, rf_shard_dispatch_fn fn, void *ctx);
/* Asked (on the worker thread) before an HTTP write is taken: true when the
 * engine is shedding load, so the client gets 503 + Retry-After and retries
 * instead of a 204 for points that would be dropped. Optional. */
typedef bool (*rf_shard_busy_fn)(void *ctx);
void rf_shard_set_busy(rf_shard *s, rf_shard_busy_fn fn, void *ctx);
/* HTTP writes with sync=true (ingest/http/http.h, "Sync writes"), offered on
 * http listeners of class standard when the shard has a store: sync is
 * rf_http_ingest.sync with the engine's context; cancel(ctx, done_ctx)
 * forgets every wait whose done_ctx is a front being retired (its done is
 * then never called). Worker thread; set before start. */
typedef int (*rf_shard_sync_fn)(void *ctx, rf_http_sync_done_fn done, void *done_ctx,
                                uint64_t cookie);
typedef void (*rf_shard_sync_cancel_fn)(void *ctx, void *done_ctx);
void rf_shard_set_sync(rf_shard *s, rf_shard_sync_fn fn, rf_shard_sync_cancel_fn cancel, void *ctx);

/* On the worker thread, before the first poll (opens sockets, allocates). */
int rf_shard_start(rf_shard *s, rf_err *err);
/* Polls the critical listeners (unless a critical hook is set: its owner
 * polls them), then the standard ones. */
uint32_t rf_shard_poll_ingest(rf_shard *s);

/* The critical lane (listeners with `class: critical`; their events carry
 * RF_PRIO_CRITICAL). rf_shard_poll_critical polls only those listeners;
 * rf_shard_critical_pending says, with a few loads, whether it would find
 * anything. The hook runs after each datagram (or TCP read) of a standard
 * listener, so the owner can serve critical work between them; it is not
 * re-entered, and runs only when critical listeners exist somewhere in the
 * engine (the engine sets it). */
uint32_t rf_shard_poll_critical(rf_shard *s);
bool rf_shard_critical_pending(const rf_shard *s);
bool rf_shard_has_critical(const rf_shard *s);
void rf_shard_set_critical_hook(rf_shard *s, rf_shard_critical_fn fn, void *ctx);

/* One client over every core (ingest/spread): before start, the engine's
 * hand-off and how to wake the worker that took a chunk. A TCP run of a
 * routine line listener (influx_line, graphite, statsd) is offered before
 * it is parsed; a taken run is parsed by the peer (rf_shard_parse_handed).
 * Without it (one worker, or `ingest.spread.enabled: false`) every run is
 * parsed where it landed. */
typedef struct rf_spread rf_spread;
typedef struct rf_spread_chunk rf_spread_chunk;
typedef void (*rf_shard_wake_peer_fn)(void *ctx, uint32_t worker);
void rf_shard_set_spread(rf_shard *s, rf_spread *sp, rf_shard_wake_peer_fn wake, void *ctx);
/* On the worker: parses a run another worker received, with this shard's
 * parse context of the same listener, naming the client in rejects; a run
 * whose listener this shard no longer reads (a reload removed it meanwhile)
 * is dropped and counted (rf_shard_spread_orphaned). */
void rf_shard_parse_handed(rf_shard *s, const rf_spread_chunk *c);
uint64_t rf_shard_spread_orphaned(const rf_shard *s);

/* Before start: where the worker looks for a recording tap (daemon/tap.h);
 * every listener chunk is offered to the tap published there. */
typedef struct rf_tap rf_tap;
void rf_shard_set_tap(rf_shard *s, _Atomic(rf_tap *) *slot);
void rf_shard_stop_ingest(rf_shard *s);
void rf_shard_process(rf_shard *s, const rf_event *events, uint32_t n);
/* The critical edge: rf_pipeline_edge_process on this shard's pipeline
 * (critical events of series other shards own; flags what it took). */
void rf_shard_edge_process(rf_shard *s, rf_event *events, uint32_t n);
/* Time-driven work (batch intervals, window closes, storage timers); cheap
 * when nothing is due. Returns work done. */
uint32_t rf_shard_tick(rf_shard *s);
/* CLOCK_MONOTONIC ns at which rf_shard_tick next has work to look at
 * (a sleeping worker wakes then). */
int64_t rf_shard_next_tick_ns(const rf_shard *s);
/* Flushes everything held (shutdown). */
void rf_shard_drain(rf_shard *s);
/* Peer messages between shards' stages (stages/pipeline/pipeline.h "Between
 * shards"): the transport (before start) and the stop's first step. */
void rf_shard_set_peer_send(rf_shard *s, rf_peer_send_fn fn, void *ctx);
void rf_shard_close_stages(rf_shard *s);

/* Sleeping inside the listener set's io_uring when the shard has listeners. */
bool rf_shard_has_wait(const rf_shard *s);
void rf_shard_wait(rf_shard *s, int64_t timeout_ns);
void rf_shard_wake(rf_shard *s);

uint64_t rf_shard_unknown_series_drops(const rf_shard *s);
const rf_pipeline *rf_shard_pipeline(const rf_shard *s);

/* Live listener changes (a reload), in three steps so that nothing changes
 * unless every worker's part can be done:
 *   1. rf_shard_listeners_prepare (control thread): opens and binds this
 *      worker's new listeners (add[i]: next->ingest.listeners[i] is new)
 *      and notes which of its listeners go (by name). A bind error fails it
 *      with err; rf_shard_listeners_discard undoes a prepared change.
 *   2. rf_shard_listeners_publish (control thread): hands it to the worker,
 *      which at its next poll attaches the new listeners and starts
 *      removing the old ones (ingest/listen: queued UDP datagrams are still
 *      read; TCP connections end, partial lines counted). Returns false when
 *      this worker had nothing to change.
 *   3. rf_shard_listeners_applied (control thread) until true (the worker
 *      took it). Removed listeners are retired by the worker once closed,
 *      then freed by rf_shard_inputs_reap; their counters stay in the
 *      shard's retired totals (`show listeners`, the loss equation). */
int rf_shard_listeners_prepare(rf_shard *s, const rf_settings *next, const bool *add,
                               const char *const *remove, uint32_t n_remove, rf_err *err);
void rf_shard_listeners_discard(rf_shard *s);
bool rf_shard_listeners_publish(rf_shard *s);
bool rf_shard_listeners_applied(rf_shard *s);
/* Control thread: no published change is waiting for the worker (one it
 * took is freed here). A change is published only when this holds. */
bool rf_shard_listeners_settled(rf_shard *s);

/* Control thread: the shard's inputs (the start's listeners, DPDK queues,
 * then listeners added by reloads, removed ones until they are reaped).
 * Slots below rf_shard_input_count may be empty (a reaped input's, until a
 * later one takes it): the parser is NULL there. */
typedef struct rf_dpdk_queue rf_dpdk_queue;
uint32_t rf_shard_input_count(const rf_shard *s);
/* The input's parse context (NULL: an empty slot), and its listener (NULL
 * for DPDK inputs and empty slots). */
const rf_parse_ctx *rf_shard_input_parser(const rf_shard *s, uint32_t i);
const rf_listener *rf_shard_input_listener(const rf_shard *s, uint32_t i);
/* An http listener's front (its HTTP server's counters), else NULL. */
typedef struct rf_http_front rf_http_front;
const rf_http_front *rf_shard_input_http(const rf_shard *s, uint32_t i);


/* Reloads that remove listeners (control thread). Once the worker has
 * closed a removed listener and flushed its parser, it retires the input;
 * rf_shard_inputs_reap then calls gone(ctx, worker, slot) for it (so that
 * whatever reads its counters, /metrics, lets go), adds its counters to
 * the shard's retired totals, unregisters its component, frees it and
 * empties its slot. Returns how many it freed. retiring: some input this
 * worker was told to remove is not retired yet. */
typedef void (*rf_shard_input_gone_fn)(void *ctx, uint32_t worker, uint32_t slot);
uint32_t rf_shard_inputs_reap(rf_shard *s, rf_shard_input_gone_fn gone, void *ctx);
bool rf_shard_listeners_retiring(const rf_shard *s);
/* What the reaped inputs had counted: summed over all of them (totals, the
 * loss equation), and per listener name (the final summary and `show
 * listeners` name them; names past RF_SETTINGS_MAX_LISTENERS share one
 * record named "(removed)"). */
typedef struct rf_shard_retired {
    char name[RF_LISTENER_NAME_MAX];
    uint32_t inputs;
    uint64_t parse[RF_PC__COUNT];
    uint64_t rejects[RF_REJ__COUNT];
    uint64_t listen[RF_LC__COUNT];
} rf_shard_retired;
const rf_shard_retired *rf_shard_retired_counters(const rf_shard *s);
uint32_t rf_shard_retired_names(const rf_shard *s);
const rf_shard_retired *rf_shard_retired_named(const rf_shard *s, uint32_t i);
uint32_t rf_shard_dpdk_queue_count(const rf_shard *s);
const rf_dpdk_queue *rf_shard_dpdk_queue(const rf_shard *s, uint32_t i);
/* Logs each listener's final counters (control thread, after the worker stopped). */
void rf_shard_log_summary(const rf_shard *s);

#endif
