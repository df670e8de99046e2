/* What the control thread reads of the running engine (daemon/engine.h):
 * counters per worker and per ring, its parts (settings, shards, store,
 * DPDK, memory scopes, placement), and the hooks tests use. */
#include "daemon/engine_pvt.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

uint32_t rf_engine_workers(const rf_engine *e)
{
    return e->n_workers;
}

void rf_engine_worker_stats_read(const rf_engine *e, uint32_t i, rf_engine_worker_stats *out)
{
    const rf_engine_worker *w = e->workers[i];
    memset(out, 0, sizeof(*out));
    out->events_parsed = atomic_load_explicit(&w->events_parsed, memory_order_relaxed);
    out->events_from_peers = atomic_load_explicit(&w->events_from_peers, memory_order_relaxed);
    out->events_processed = atomic_load_explicit(&w->events_processed, memory_order_relaxed);
    out->sent_to_peers = atomic_load_explicit(&w->sent_to_peers, memory_order_relaxed);
    out->dropped_ring_full = atomic_load_explicit(&w->dropped_ring_full, memory_order_relaxed);
    out->block_waits = atomic_load_explicit(&w->block_waits, memory_order_relaxed);
    out->critical_events = atomic_load_explicit(&w->critical_events, memory_order_relaxed);
    out->critical_from_peers = atomic_load_explicit(&w->critical_from_peers, memory_order_relaxed);
    out->dropped_unknown_series = rf_shard_unknown_series_drops(w->shard);
    out->peer_sent = atomic_load_explicit(&w->peer_enqueued, memory_order_relaxed);
    out->peer_received = atomic_load_explicit(&w->peer_dequeued, memory_order_relaxed);
    out->peer_dropped_backlog =
        atomic_load_explicit(&w->peer_dropped_backlog, memory_order_relaxed);
    out->peer_backlog = atomic_load_explicit(&w->peer_backlog_now, memory_order_relaxed);
    rf_spread_stats sp;
    rf_spread_stats_read(e->spread, i, &sp);
    out->spread_handed_chunks = sp.handed_chunks;
    out->spread_handed_bytes = sp.handed_bytes;
    out->spread_local_chunks = sp.local_chunks;
    out->spread_local_bytes = sp.local_bytes;
    out->spread_taken_chunks = sp.taken_chunks;
    out->spread_taken_bytes = sp.taken_bytes;
    out->spread_no_buffer = sp.no_buffer;
    out->spread_orphaned = rf_shard_spread_orphaned(w->shard);
    out->sync_rounds = rf_stats_load(&w->sync_rounds);
    out->sync_answered = rf_stats_load(&w->sync_answered);
    out->sync_timeouts = rf_stats_load(&w->sync_timeouts);
    out->sync_failed = rf_stats_load(&w->sync_failed);
    out->busy_ring_drops = rf_stats_load(&w->busy_ring_drops);
    out->busy_series_limit = rf_stats_load(&w->busy_series_limit);
    out->busy_memory = rf_stats_load(&w->busy_memory);
}

void rf_engine_set_memory_over(rf_engine *e, bool over)
{
    /* Pairs with the relaxed load in worker_busy: a flag, nothing else is
     * published with it. */
    atomic_store_explicit(&e->memory_over, over, memory_order_relaxed);
}

void rf_engine_worker_runtime_read(const rf_engine *e, uint32_t i, rf_worker_stats *out,
                                   const rf_component **component)
{
    rf_worker_stats_read(e->workers[i]->thread, out);
    if (component)
        *component = rf_worker_component(e->workers[i]->thread);
}

bool rf_engine_ring_stats_read(const rf_engine *e, uint32_t from, uint32_t to, rf_ring_stats *out)
{
    if (from >= e->n_workers || to >= e->n_workers || from == to)
        return false;
    rf_ring_stats_read(e->workers[to]->inbound[from], out);
    return true;
}

const rf_settings *rf_engine_settings(const rf_engine *e)
{
    return &e->settings;
}

const struct rf_shard *rf_engine_shard(const rf_engine *e, uint32_t i)
{
    return i < e->n_workers ? e->workers[i]->shard : NULL;
}

struct rf_store *rf_engine_store(const rf_engine *e)
{
    return e->store;
}

const char *rf_engine_placement(const rf_engine *e)
{
    return e->placement;
}

int rf_engine_worker_cpu(const rf_engine *e, uint32_t worker)
{
    return worker < e->n_workers ? e->cpus[worker] : -1;
}

const rf_mem_scope *rf_engine_worker_memory(const rf_engine *e, uint32_t worker)
{
    return worker < e->n_workers ? &e->memory[worker] : NULL;
}

struct rf_dpdk *rf_engine_dpdk(const rf_engine *e)
{
    return e->dpdk;
}

void rf_engine_set_input_gone(rf_engine *e, rf_shard_input_gone_fn fn, void *ctx)
{
    e->input_gone = fn;
    e->input_gone_ctx = ctx;
}

uint32_t rf_engine_reap_inputs(rf_engine *e)
{
    uint32_t freed = 0;
    for (uint32_t i = 0; i < e->n_workers; i++)
        freed += rf_shard_inputs_reap(e->workers[i]->shard, e->input_gone, e->input_gone_ctx);
    return freed;
}

void rf_engine_test_hold(rf_engine *e, uint32_t worker, int64_t ns)
{
    if (worker >= e->n_workers || ns <= 0)
        return;
    rf_engine_worker *w = e->workers[worker];
    atomic_store_explicit(&w->test_hold_ns, ns, memory_order_relaxed);
    /* Until test_hold has exchanged it: the worker is then stopped. */
    while (atomic_load_explicit(&w->test_hold_ns, memory_order_relaxed) == ns) {
        rf_worker_wake(w->thread);
        usleep(200);
    }
}

void rf_engine_test_reload_wait(rf_engine *e, int64_t ns)
{
    e->reload_wait_ns = ns;
    e->tap_wait_ns = ns;
}
