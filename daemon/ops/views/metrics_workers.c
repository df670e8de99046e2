/* The workers and the rings between them on /metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/ops/views/views_pvt.h"

enum wfield {
    WF_PARSED,
    WF_FROM_PEERS,
    WF_PROCESSED,
    WF_SENT,
    WF_DROP_RING_FULL,
    WF_DROP_UNKNOWN,
    WF_BLOCK_WAITS,
    WF_CRITICAL,
    WF_CRITICAL_FROM_PEERS,
    WF_POLLS,
    WF_BUSY_NS,
    WF_SPINS_CUT,
    WF_PEER_SENT,
    WF_PEER_RECEIVED,
    WF_PEER_DROP_BACKLOG,
    WF_PEER_BACKLOG,
    WF_SPREAD_HANDED,
    WF_SPREAD_HANDED_BYTES,
    WF_SPREAD_LOCAL,
    WF_SPREAD_LOCAL_BYTES,
    WF_SPREAD_TAKEN,
    WF_SPREAD_TAKEN_BYTES,
    WF_SPREAD_NO_BUFFER,
    WF_SPREAD_ORPHANED,
    WF_SYNC_ROUNDS,
    WF_SYNC_ANSWERED,
    WF_SYNC_TIMEOUTS,
    WF_SYNC_FAILED,
    WF_BUSY_RING_DROPS,
    WF_BUSY_SERIES_LIMIT,
    WF_BUSY_MEMORY,
};
enum rfield {
    RF_CAPACITY,
    RF_FILL,
    RF_HIGH_WATER,
    RF_ENQUEUED,
    RF_DEQUEUED,
    RF_FULL_EVENTS,
    RF_DROP_NEWEST,
    RF_DROP_STOPPED,
    RF_BLOCK_WAITS_R,
};

static uint64_t wfield_raw(uint32_t i, unsigned field)
{
    if (field == WF_POLLS || field == WF_BUSY_NS || field == WF_SPINS_CUT) {
        rf_worker_stats rs;
        rf_engine_worker_runtime_read(g_view.engine, i, &rs, NULL);
        return field == WF_POLLS ? rs.polls : field == WF_BUSY_NS ? rs.busy_ns : rs.spins_cut;
    }
    rf_engine_worker_stats s;
    rf_engine_worker_stats_read(g_view.engine, i, &s);
    switch (field) {
    case WF_PARSED: return s.events_parsed;
    case WF_FROM_PEERS: return s.events_from_peers;
    case WF_PROCESSED: return s.events_processed;
    case WF_SENT: return s.sent_to_peers;
    case WF_DROP_RING_FULL: return s.dropped_ring_full;
    case WF_DROP_UNKNOWN: return s.dropped_unknown_series;
    case WF_CRITICAL: return s.critical_events;
    case WF_CRITICAL_FROM_PEERS: return s.critical_from_peers;
    case WF_PEER_SENT: return s.peer_sent;
    case WF_PEER_RECEIVED: return s.peer_received;
    case WF_PEER_DROP_BACKLOG: return s.peer_dropped_backlog;
    case WF_PEER_BACKLOG: return s.peer_backlog;
    case WF_SPREAD_HANDED: return s.spread_handed_chunks;
    case WF_SPREAD_HANDED_BYTES: return s.spread_handed_bytes;
    case WF_SPREAD_LOCAL: return s.spread_local_chunks;
    case WF_SPREAD_LOCAL_BYTES: return s.spread_local_bytes;
    case WF_SPREAD_TAKEN: return s.spread_taken_chunks;
    case WF_SPREAD_TAKEN_BYTES: return s.spread_taken_bytes;
    case WF_SPREAD_NO_BUFFER: return s.spread_no_buffer;
    case WF_SPREAD_ORPHANED: return s.spread_orphaned;
    case WF_SYNC_ROUNDS: return s.sync_rounds;
    case WF_SYNC_ANSWERED: return s.sync_answered;
    case WF_SYNC_TIMEOUTS: return s.sync_timeouts;
    case WF_SYNC_FAILED: return s.sync_failed;
    case WF_BUSY_RING_DROPS: return s.busy_ring_drops;
    case WF_BUSY_SERIES_LIMIT: return s.busy_series_limit;
    case WF_BUSY_MEMORY: return s.busy_memory;
    default: return s.block_waits;
    }
}

static uint64_t rfield_raw(uint32_t from, uint32_t to, unsigned field)
{
    rf_ring_stats s;
    if (!rf_engine_ring_stats_read(g_view.engine, from, to, &s))
        return 0;
    switch (field) {
    case RF_CAPACITY: return s.capacity;
    case RF_FILL: return s.fill;
    case RF_HIGH_WATER: return s.high_water;
    case RF_ENQUEUED: return s.enqueued;
    case RF_DEQUEUED: return s.dequeued;
    case RF_FULL_EVENTS: return s.full_events;
    case RF_DROP_NEWEST: return s.dropped_newest;
    case RF_DROP_STOPPED: return s.dropped_stopped;
    default: return s.block_waits;
    }
}

static uint64_t read_worker_metric(void *ctx)
{
    const metric_ctx *m = ctx;
    return wfield_raw(m->a, m->field);
}

static uint64_t read_ring_metric(void *ctx)
{
    const metric_ctx *m = ctx;
    return rfield_raw(m->a, m->b, m->field);
}

static const metric_def worker_metrics[] = {
    {RF_METRIC_COUNTER, "ringflow_worker_events_parsed", "Events a worker's listeners produced.",
     NULL, WF_PARSED},
    {RF_METRIC_COUNTER, "ringflow_worker_events_from_peers",
     "Events a worker took from its inbound rings.", NULL, WF_FROM_PEERS},
    {RF_METRIC_COUNTER, "ringflow_worker_events_processed",
     "Events of a worker's own series run through its stages.", NULL, WF_PROCESSED},
    {RF_METRIC_COUNTER, "ringflow_worker_events_sent_to_peers",
     "Events handed to other workers' rings.", NULL, WF_SENT},
    {RF_METRIC_COUNTER, "ringflow_worker_dropped_events", "Events a worker dropped, by reason.",
     "reason=\"ring_full\"", WF_DROP_RING_FULL},
    {RF_METRIC_COUNTER, "ringflow_worker_dropped_events", "Events a worker dropped, by reason.",
     "reason=\"unknown_series\"", WF_DROP_UNKNOWN},
    {RF_METRIC_COUNTER, "ringflow_worker_block_waits", "Times a full peer ring made a worker wait.",
     NULL, WF_BLOCK_WAITS},
    {RF_METRIC_COUNTER, "ringflow_worker_critical_events",
     "Events a worker's critical listeners produced (the critical lane).", NULL, WF_CRITICAL},
    {RF_METRIC_COUNTER, "ringflow_worker_critical_events_from_peers",
     "Events a worker took from its critical inbound rings.", NULL, WF_CRITICAL_FROM_PEERS},
    {RF_METRIC_COUNTER, "ringflow_worker_polls", "Poll loop iterations of a worker.", NULL,
     WF_POLLS},
    {RF_METRIC_COUNTER, "ringflow_worker_busy_seconds",
     "Time a worker spent in polls that found work.", NULL, WF_BUSY_NS},
    {RF_METRIC_COUNTER, "ringflow_worker_spins_cut",
     "Idle periods whose spin the adaptive poll loop shortened.", NULL, WF_SPINS_CUT},
    {RF_METRIC_COUNTER, "ringflow_worker_peer_messages_sent",
     "Peer messages a worker put on its peer rings.", NULL, WF_PEER_SENT},
    {RF_METRIC_COUNTER, "ringflow_worker_peer_messages_received",
     "Peer messages a worker took from its inbound peer rings.", NULL, WF_PEER_RECEIVED},
    {RF_METRIC_COUNTER, "ringflow_worker_peer_messages_dropped",
     "Peer messages a worker dropped, by reason.", "reason=\"backlog_full\"", WF_PEER_DROP_BACKLOG},
    {RF_METRIC_GAUGE, "ringflow_worker_peer_backlog",
     "Peer messages waiting for room in a peer ring.", NULL, WF_PEER_BACKLOG},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_chunks",
     "TCP line runs a worker received, by who parsed them (ingest.spread).", "parser=\"peer\"",
     WF_SPREAD_HANDED},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_chunks",
     "TCP line runs a worker received, by who parsed them (ingest.spread).", "parser=\"self\"",
     WF_SPREAD_LOCAL},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_bytes",
     "Bytes of the TCP line runs a worker received, by who parsed them (ingest.spread).",
     "parser=\"peer\"", WF_SPREAD_HANDED_BYTES},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_bytes",
     "Bytes of the TCP line runs a worker received, by who parsed them (ingest.spread).",
     "parser=\"self\"", WF_SPREAD_LOCAL_BYTES},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_taken_chunks",
     "TCP line runs other workers received and this worker parsed.", NULL, WF_SPREAD_TAKEN},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_taken_bytes",
     "Bytes of the TCP line runs other workers received and this worker parsed.", NULL,
     WF_SPREAD_TAKEN_BYTES},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_no_buffer",
     "Hand-offs refused because every peer's chunk buffers were in use.", NULL,
     WF_SPREAD_NO_BUFFER},
    {RF_METRIC_COUNTER, "ringflow_worker_spread_orphaned",
     "Handed TCP runs dropped because their listener was removed meanwhile.", NULL,
     WF_SPREAD_ORPHANED},
    {RF_METRIC_COUNTER, "ringflow_worker_sync_rounds",
     "Sync barriers a worker sent through the rings for HTTP sync=true writes.", NULL,
     WF_SYNC_ROUNDS},
    {RF_METRIC_COUNTER, "ringflow_worker_sync_answers",
     "HTTP sync=true answers a worker gave, by outcome.", "outcome=\"durable\"", WF_SYNC_ANSWERED},
    {RF_METRIC_COUNTER, "ringflow_worker_sync_answers",
     "HTTP sync=true answers a worker gave, by outcome.", "outcome=\"timeout\"", WF_SYNC_TIMEOUTS},
    {RF_METRIC_COUNTER, "ringflow_worker_sync_answers",
     "HTTP sync=true answers a worker gave, by outcome.", "outcome=\"failed\"", WF_SYNC_FAILED},
    {RF_METRIC_COUNTER, "ringflow_worker_http_busy",
     "HTTP writes a worker answered 503 because the engine refused work, by reason.",
     "reason=\"ring_drops\"", WF_BUSY_RING_DROPS},
    {RF_METRIC_COUNTER, "ringflow_worker_http_busy",
     "HTTP writes a worker answered 503 because the engine refused work, by reason.",
     "reason=\"series_limit\"", WF_BUSY_SERIES_LIMIT},
    {RF_METRIC_COUNTER, "ringflow_worker_http_busy",
     "HTTP writes a worker answered 503 because the engine refused work, by reason.",
     "reason=\"memory_limit\"", WF_BUSY_MEMORY},
};

static const metric_def ring_metrics[] = {
    {RF_METRIC_GAUGE, "ringflow_ring_capacity", "Slots of a ring between two workers.", NULL,
     RF_CAPACITY},
    {RF_METRIC_GAUGE, "ringflow_ring_fill", "Events in a ring when read.", NULL, RF_FILL},
    {RF_METRIC_GAUGE, "ringflow_ring_high_water", "Largest fill of a ring observed.", NULL,
     RF_HIGH_WATER},
    {RF_METRIC_COUNTER, "ringflow_ring_enqueued_events", "Events accepted by a ring.", NULL,
     RF_ENQUEUED},
    {RF_METRIC_COUNTER, "ringflow_ring_dequeued_events", "Events taken from a ring.", NULL,
     RF_DEQUEUED},
    {RF_METRIC_COUNTER, "ringflow_ring_full_events", "Enqueue calls that found a ring full.", NULL,
     RF_FULL_EVENTS},
    {RF_METRIC_COUNTER, "ringflow_ring_dropped_events", "Events dropped at a full ring, by policy.",
     "policy=\"drop_newest\"", RF_DROP_NEWEST},
    {RF_METRIC_COUNTER, "ringflow_ring_dropped_events", "Events dropped at a full ring, by policy.",
     "policy=\"block\",reason=\"shutdown\"", RF_DROP_STOPPED},
    {RF_METRIC_COUNTER, "ringflow_ring_block_waits", "Times the block policy waited for room.",
     NULL, RF_BLOCK_WAITS_R},
};

int rf_views_worker_metrics_register(void)
{
    char labels[RF_STATS_LABELS_MAX];
    int rc = 0;
    for (uint32_t i = 0; i < g_view.workers && rc >= 0; i++) {
        for (size_t k = 0; k < N_OF(worker_metrics) && rc >= 0; k++) {
            const metric_def *d = &worker_metrics[k];
            snprintf(labels, sizeof(labels), "worker=\"%u\"%s%s", i, d->extra_labels ? "," : "",
                     d->extra_labels ? d->extra_labels : "");
            metric_ctx *m = rf_views_new_ctx(i, 0, d->field);
            /* Busy time is kept in ns; Prometheus wants seconds. */
            rf_stats_read_fn fn = read_worker_metric;
            rc = !m ? -ENOSPC
                 : d->field == WF_BUSY_NS
                     ? rf_views_keep_id(
                           rf_stats_register_fn_ns(d->type, d->name, d->help, labels, fn, m))
                     : rf_views_keep_id(
                           rf_stats_register_fn(d->type, d->name, d->help, labels, fn, m));
        }
    }
    for (uint32_t f = 0; f < g_view.workers && rc >= 0; f++) {
        for (uint32_t t = 0; t < g_view.workers && rc >= 0; t++) {
            if (f == t)
                continue;
            for (size_t k = 0; k < N_OF(ring_metrics) && rc >= 0; k++) {
                const metric_def *d = &ring_metrics[k];
                snprintf(labels, sizeof(labels), "from=\"%u\",to=\"%u\"%s%s", f, t,
                         d->extra_labels ? "," : "", d->extra_labels ? d->extra_labels : "");
                metric_ctx *m = rf_views_new_ctx(f, t, d->field);
                rc = m ? rf_views_keep_id(rf_stats_register_fn(d->type, d->name, d->help, labels,
                                                               read_ring_metric, m))
                       : -ENOSPC;
            }
        }
    }
    return rc;
}

size_t rf_views_worker_metric_ctxs(uint32_t workers)
{
    return (size_t)workers * N_OF(worker_metrics) + (size_t)workers * workers * N_OF(ring_metrics);
}
