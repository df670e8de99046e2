/* The engine's start and stop (daemon/engine.h): worker placement on CPUs
 * and NUMA nodes (numa/numa.h), each worker's memory on its node, the rings
 * between workers, the threads, and the two-phase stop. Control thread. */
#include "daemon/engine_pvt.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "core/log/log.h"
#include "core/mem/bound.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "numa/numa.h"

static size_t staging_bytes(const rf_engine *e)
{
    return (size_t)e->n_workers * sizeof(rf_staging);
}

/* Mirrors worker_alloc's two mappings: the struct, and the staging toward
 * every worker. */
uint64_t rf_engine_worker_memory_bound(uint32_t workers)
{
    return rf_mem_huge_bound(sizeof(rf_engine_worker)) +
           rf_mem_huge_bound((uint64_t)workers * sizeof(rf_staging)) +
           rf_engine_sync_memory_bound(workers);
}

/* A ring whose consumer is worker `consumer`: made in that worker's memory
 * scope, so its slots are on the consumer's node (the producer writes them
 * first, the consumer reads them at every turn). */
static rf_ring *ring_for_consumer(rf_engine *e, uint32_t consumer, uint32_t capacity)
{
    rf_mem_scope_enter(&e->memory[consumer]);
    rf_ring *r = rf_ring_create(capacity, sizeof(rf_event));
    int saved = errno;
    rf_mem_scope_leave(&e->memory[consumer]);
    errno = saved;
    return r;
}

static void engine_free(rf_engine *e)
{
    if (e->store) {
        rf_err err;
        rf_err_clear(&err);
        if (rf_store_close(e->store, &err) < 0)
            rf_log_error("engine", "closing the store: %s", err.msg);
        e->store = NULL;
    }
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        if (!w)
            continue;
        for (uint32_t j = 0; j < e->n_workers; j++) {
            rf_ring_destroy(w->inbound[j]);
            rf_ring_destroy(atomic_load_explicit(&w->crit_inbound[j], memory_order_relaxed));
            rf_peer_backlog *b = &w->peer_backlog[j];
            if (b->n > b->head) {
                rf_log_warn("engine", "worker-%u: %u peer messages to worker-%u not sent at stop",
                            i, b->n - b->head, j);
                rf_engine_peer_free_owned(b->ev + b->head, b->n - b->head);
            }
            free(b->ev);
            if (w->peer_inbound[j]) {
                rf_event ev[64];
                uint32_t got, lost = 0;
                while (
                    (got = rf_ring_dequeue_burst(w->peer_inbound[j], ev, sizeof(rf_event), 64))) {
                    rf_engine_peer_free_owned(ev, got);
                    lost += got;
                }
                if (lost)
                    rf_log_warn("engine",
                                "worker-%u: %u peer messages from worker-%u not "
                                "taken at stop",
                                i, lost, j);
                rf_ring_destroy(w->peer_inbound[j]);
            }
        }
        rf_engine_sync_free(w);
        rf_shard_free(w->shard);
        rf_mem_huge_free(w->staging, staging_bytes(e));
        rf_mem_huge_free(w, sizeof(*w));
    }
    /* After the shards: their handlers were registered on the queues. */
    rf_dpdk_close(e->dpdk);
    /* The workers have stopped: nobody can capture into these any more. */
    for (uint32_t i = 0; i < e->n_abandoned_taps; i++)
        rf_tap_free_abandoned(e->abandoned_taps[i]);
    /* After the shards: a stage, taken or still queued, may use either. */
    if (e->live_pipeline) {
        rf_pipeline_settings_release(e->live_pipeline);
        free(e->live_pipeline);
    }
    if (e->queued_pipeline) {
        rf_pipeline_settings_release(e->queued_pipeline);
        free(e->queued_pipeline);
    }
    rf_spread_free(e->spread);               /* after the shards: they held it */
    rf_field_types_free(e->field_types);     /* after the shards: their parse contexts use it */
    rf_collectd_auth_free(e->collectd_auth); /* likewise */
    free(e);
}

/* The NIC whose node the workers should be on (numa/numa.h, "NIC node"):
 * DPDK port 0, else the first listener bound to an address whose interface
 * has a node. *what says which, for the placement report. */
static int nic_node_of(const rf_engine *e, char *what, size_t size)
{
    what[0] = '\0';
    if (e->dpdk && rf_dpdk_port_count(e->dpdk)) {
        int node = rf_dpdk_port_numa_node(e->dpdk, 0);
        if (node >= 0) {
            snprintf(what, size, "dpdk port %s", rf_dpdk_port_name(e->dpdk, 0));
            return node;
        }
    }
    const rf_ingest_settings *in = &e->settings.ingest;
    for (size_t i = 0; i < in->n_listeners; i++) {
        char ifname[64];
        int node = -1;
        rf_err ierr;
        rf_err_clear(&ierr);
        if (rf_numa_addr_node(NULL, in->listeners[i].address, &node, ifname, sizeof(ifname),
                              &ierr) == 0 &&
            node >= 0) {
            snprintf(what, size, "%s of listener %s", ifname, in->listeners[i].name);
            return node;
        }
    }
    return -1;
}

/* Worker CPUs: engine.cpus when given, else numa/'s rule (the NIC's node
 * first, CPU 0 last within its node). Fills e->cpus, e->nodes and
 * e->placement. Runs before anything of a worker is allocated: its memory
 * goes on the node chosen here. */
static int place_workers(rf_engine *e, const rf_daemon_config *cfg, rf_err *err)
{
    for (uint32_t i = 0; i < e->n_workers; i++) {
        e->cpus[i] = -1;
        e->nodes[i] = -1;
    }
    if (!cfg->engine.pin_workers) {
        snprintf(e->placement, sizeof(e->placement),
                 "workers not pinned (engine.pin_workers: false)");
        return 0;
    }
    rf_numa_topology topo;
    int rc = rf_numa_topology_load(NULL, &topo, err);
    if (rc < 0)
        return rf_err_wrap(err, "placement: ");
    char nic[128];
    const rf_numa_request req = {
        .workers = e->n_workers,
        .nic_node = nic_node_of(e, nic, sizeof(nic)),
        .cpus = cfg->engine.n_cpus ? cfg->engine.cpus : NULL,
        .n_cpus = cfg->engine.n_cpus,
    };
    rf_numa_placement pl;
    if ((rc = rf_numa_place(&topo, &req, &pl, err)) < 0)
        return rf_err_wrap(err, "placement: ");
    for (uint32_t i = 0; i < e->n_workers; i++) {
        e->cpus[i] = pl.cpu[i];
        e->nodes[i] = pl.node[i];
    }
    int len = rf_numa_placement_report(&topo, &pl, e->placement, sizeof(e->placement));
    if (nic[0] && len > 0 && (size_t)len < sizeof(e->placement))
        snprintf(e->placement + len, sizeof(e->placement) - (size_t)len, "; nic: %s", nic);
    return 0;
}

/* After worker i's structures were made in e->memory[i]: a line for the
 * placement report, and a warning when binding was refused (the memory is
 * then where first touch puts it; the start goes on). */
static void report_memory(rf_engine *e)
{
    size_t off = strlen(e->placement);
    bool any = false;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        const rf_mem_scope *m = &e->memory[i];
        if (m->refused)
            rf_log_warn("engine",
                        "worker %u: %u of its allocations could not be bound to node %d (%s); "
                        "they are where first touch puts them",
                        i, m->refused, m->node, strerror(m->refused_errno));
        if (m->kept_policy && i == 0)
            rf_log_info("engine", "the process's own memory policy (numactl?) is kept: worker "
                                  "memory is not bound to the workers' nodes");
        if (m->node < 0 || off >= sizeof(e->placement))
            continue;
        off += (size_t)snprintf(e->placement + off, sizeof(e->placement) - off, "%s w%u=%u/%lluMiB",
                                any ? "" : "; memory on its node (regions/reserved):", i,
                                m->regions, (unsigned long long)(m->bytes >> 20));
        any = true;
    }
}

/* Worker i's own memory, in its scope (rf_engine_start): its struct and
 * staging on its node whatever their size, its inbound rings, its shard. */
static int worker_alloc(rf_engine *e, uint32_t i, rf_err *err)
{
    const rf_daemon_config *cfg = &e->settings.daemon;
    const int node = rf_mem_scope_node(); /* -1 when the scope binds nothing */
    rf_engine_worker *w = rf_mem_map_onnode_at(sizeof(*w), node, "engine worker");
    if (!w)
        return rf_err_set(err, ENOMEM, "engine: out of memory for worker %u", i);
    e->workers[i] = w; /* zeroed: a fresh mapping */
    w->engine = e;
    w->index = i;
    w->staging = rf_mem_map_onnode_at(staging_bytes(e), node, "engine staging");
    if (!w->staging)
        return rf_err_set(err, ENOMEM, "engine: out of memory for worker %u staging", i);
    for (uint32_t j = 0; j < e->n_workers; j++) {
        if (j == i)
            continue;
        w->inbound[j] = rf_ring_create(cfg->engine.ring.capacity, sizeof(rf_event));
        if (!w->inbound[j])
            return rf_err_set(err, errno, "engine: ring %u->%u of %u slots: %s", j, i,
                              cfg->engine.ring.capacity, strerror(errno));
        w->peer_inbound[j] = rf_ring_create(RF_PEER_RING_SLOTS, sizeof(rf_event));
        if (!w->peer_inbound[j])
            return rf_err_set(err, errno, "engine: peer ring %u->%u: %s", j, i, strerror(errno));
    }
    int src = rf_engine_sync_rings_create(w, e->n_workers, err);
    if (src < 0)
        return src;
    return rf_shard_new(&e->settings, i, e->n_workers,
                        e->store ? rf_store_shard_get(e->store, i) : NULL, e->dpdk, &w->shard, err);
}

/* One line per listener once every worker has opened its socket (each
 * worker opens its own on the port): which workers took it, and the receive
 * buffer as configured, with what the kernel gave when that differs (it
 * reports twice the usable size: the other half is its bookkeeping). */
static void log_listeners(const rf_engine *e, const rf_settings *settings)
{
    for (size_t i = 0; i < settings->ingest.n_listeners; i++) {
        const rf_listener_config *lc = &settings->ingest.listeners[i];
        char workers[256] = "";
        size_t wl = 0;
        const rf_listener *first = NULL;
        for (uint32_t w = 0; w < e->n_workers; w++) {
            const rf_shard *sh = e->workers[w]->shard;
            for (uint32_t k = 0; k < rf_shard_input_count(sh); k++) {
                const rf_listener *l = rf_shard_input_listener(sh, k);
                if (!l || strcmp(rf_listener_name(l), lc->name) != 0)
                    continue;
                if (!first)
                    first = l;
                if (wl < sizeof(workers))
                    wl += (size_t)snprintf(workers + wl, sizeof(workers) - wl, "%s%u",
                                           wl ? "," : "", w);
                break;
            }
        }
        if (!first)
            continue;
        char want[32], got[32], rcvbuf[96];
        const uint64_t usable = (uint64_t)rf_listener_rcvbuf_granted(first) / 2;
        rf_cfg_format_size(usable, got, sizeof(got));
        if (!lc->rcvbuf_bytes)
            snprintf(rcvbuf, sizeof(rcvbuf), "kernel default (%s)", got);
        else if (usable == lc->rcvbuf_bytes)
            snprintf(rcvbuf, sizeof(rcvbuf), "%s",
                     rf_cfg_format_size(lc->rcvbuf_bytes, want, sizeof(want)));
        else
            snprintf(rcvbuf, sizeof(rcvbuf), "%s (granted %s)",
                     rf_cfg_format_size(lc->rcvbuf_bytes, want, sizeof(want)), got);
        rf_log_info("engine", "listener %s: %s %s port %u protocol %s%s rcvbuf %s workers %s",
                    lc->name, rf_listen_transport_name(lc->transport), lc->address,
                    rf_listener_port(first), rf_listen_protocol_name(lc->protocol),
                    lc->critical ? " class critical" : "", rcvbuf, workers);
    }
}

static void wake_worker_of_shard(void *ctx, uint32_t shard_index)
{
    rf_engine *e = ctx;
    /* Store shard i is worker i's (engine_start: rf_store_shard_get(store, i)). */
    if (shard_index < e->n_workers && e->workers[shard_index] && e->workers[shard_index]->thread)
        rf_worker_wake(e->workers[shard_index]->thread);
}

int rf_engine_start(const rf_settings *settings, rf_engine **out, rf_err *err)
{
    const rf_daemon_config *cfg = &settings->daemon;
    rf_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return rf_err_set(err, ENOMEM, "engine: out of memory");
    e->settings = *settings;
    e->n_workers = cfg->engine.workers;
    e->policy = cfg->engine.ring.full_policy;
    e->reload_wait_ns = 10 * RF_NS_PER_S;
    e->tap_wait_ns = 5 * RF_NS_PER_S;
    atomic_init(&e->stop_ingest, false);
    atomic_init(&e->threads_ready, false);
    bool critical = false;
    for (size_t i = 0; i < settings->ingest.n_listeners; i++)
        critical |= settings->ingest.listeners[i].critical;
    atomic_init(&e->critical_lane, false);

    int rc = rf_shard_probe_listeners(settings, err);
    if (rc < 0)
        goto fail;
    /* http listeners' certificates and credential files, before any front
     * is built on them. */
    if ((rc = rf_http_security_apply(settings->ingest.listeners, settings->ingest.n_listeners,
                                     err)) < 0)
        goto fail;
    if (settings->dpdk.enabled) {
        /* Graceful degradation: DPDK failing to start is logged with what to
         * check, and the io_uring listeners still run. */
        rf_err derr;
        rf_err_clear(&derr);
        if (rf_dpdk_open_ports(&settings->dpdk, e->n_workers, &e->dpdk, &derr) < 0) {
            rf_log_error("engine", "%s; continuing without DPDK (io_uring listeners only)",
                         derr.msg);
            e->dpdk = NULL;
        }
    }
    /* Placement before any allocation of a worker's: everything below is
     * made for the node of the worker it belongs to. */
    if ((rc = place_workers(e, cfg, err)) < 0)
        goto fail;
    if (e->dpdk) {
        /* Each worker's queue draws from a pool on the worker's node. */
        rf_err derr;
        rf_err_clear(&derr);
        if (rf_dpdk_start(e->dpdk, e->nodes, &derr) < 0) {
            rf_log_error("engine", "%s; continuing without DPDK (io_uring listeners only)",
                         derr.msg);
            rf_dpdk_close(e->dpdk);
            e->dpdk = NULL;
            /* The DPDK port's node no longer matters: place again. */
            if ((rc = place_workers(e, cfg, err)) < 0)
                goto fail;
        }
    }
    /* One allocation scope per worker for its node: its store shard, struct,
     * rings and shard are made in it, and it says what was bound. */
    for (uint32_t i = 0; i < e->n_workers; i++)
        rf_mem_scope_init(&e->memory[i], e->nodes[i]);
    if (settings->storage.enabled) {
        /* Each shard's buffers and slots on its worker's node. */
        rf_store_config sc = settings->storage.store;
        sc.shard_scope = e->memory;
        /* Opening runs recovery: what it found is logged. */
        rc = rf_store_open(settings->storage.dir, &sc, e->n_workers, &e->store, err);
        if (rc < 0) {
            rf_err_wrap(err, "storage: ");
            goto fail;
        }
        rf_store_stats st;
        rf_store_stats_read(e->store, &st);
        rf_log_info(
            "engine",
            "store %s: %lu segments, %lu bytes; recovery: %lu open segments scanned, "
            "%lu blocks kept, %lu tail bytes cut, %lu corrupt regions skipped, %lu "
            "segments quarantined",
            settings->storage.dir, (unsigned long)st.segments, (unsigned long)st.bytes,
            (unsigned long)st.recovery.segments_open, (unsigned long)st.recovery.blocks_kept,
            (unsigned long)st.recovery.tail_bytes_cut, (unsigned long)st.recovery.corrupt_regions,
            (unsigned long)st.recovery.segments_quarantined);
    }
    /* Field types before any parse context, from what the store holds. */
    rc = rf_field_types_open(e->store ? settings->storage.dir : NULL,
                             (uint64_t)settings->pipeline.max_series * e->n_workers,
                             &e->field_types, err);
    if (rc < 0)
        goto fail;
    e->settings.ingest.parse.field_types = e->field_types;
    /* Without an auth file, none: signed and encrypted datagrams are then
     * refused as such (signed_packet, encrypted_packet). */
    if (settings->ingest.collectd_auth_file[0] &&
        (!(e->collectd_auth = rf_collectd_auth_new(err)) ||
         rf_collectd_auth_load(e->collectd_auth, settings->ingest.collectd_security,
                               settings->ingest.collectd_auth_file, err) < 0)) {
        rc = rf_err_wrap(err, "ingest.collectd.auth_file: ");
        goto fail;
    }
    e->settings.ingest.parse.collectd_auth = e->collectd_auth;
    /* ingest/spread: before the workers, which are handed it at attach. */
    if ((rc = rf_spread_new(&e->spread, e->n_workers, &settings->ingest.spread, err)) < 0)
        goto fail;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        /* Worker i's struct, staging, inbound rings (it consumes them) and
         * shard (series table, stages), all in its node's scope. */
        rf_mem_scope_enter(&e->memory[i]);
        rc = worker_alloc(e, i, err);
        rf_mem_scope_leave(&e->memory[i]);
        if (rc < 0)
            goto fail;
        rf_engine_worker_attach(e->workers[i]);
    }
    for (uint32_t i = 0; i < e->n_workers; i++)
        for (uint32_t j = 0; j < e->n_workers; j++)
            if (i != j) {
                e->workers[i]->outbound[j] = e->workers[j]->inbound[i];
                e->workers[i]->peer_outbound[j] = e->workers[j]->peer_inbound[i];
                e->workers[i]->sync_outbound[j] = e->workers[j]->sync_inbound[i];
            }
    if (critical) {
        if ((rc = rf_engine_create_critical_rings(e, err)) < 0)
            goto fail;
        atomic_store_explicit(&e->critical_lane, true,
                              memory_order_relaxed); /* before the threads */
    }

    report_memory(e);
    rf_log_info("engine", "%s", e->placement);
    const rf_idle_policy idle = {
        .spin = cfg->engine.idle.spin,
        .yield = cfg->engine.idle.yield,
        .sleep_max_ns = (int64_t)cfg->engine.idle.sleep_max_ns,
        .adaptive = cfg->engine.idle.adaptive,
    };
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        const rf_worker_ops ops = rf_engine_worker_ops(w);
        char name[32];
        snprintf(name, sizeof(name), "worker-%u", i);
        rc = rf_worker_start(&w->thread, name, e->cpus[i], &idle, &ops, err);
        if (rc < 0) {
            rf_err_wrap(err, "engine: ");
            goto fail_started;
        }
    }
    /* Pairs with the acquire in worker_poll. */
    atomic_store_explicit(&e->threads_ready, true, memory_order_release);
    /* Wait until each worker is running or has failed. */
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_component *c = rf_worker_component(e->workers[i]->thread);
        int64_t deadline = rf_clock_mono_ns() + 10 * RF_NS_PER_S;
        enum rf_lifecycle_state s;
        while ((s = rf_component_state(c)) == RF_STATE_CONFIGURING && rf_clock_mono_ns() < deadline)
            usleep(1000);
        if (s != RF_STATE_RUNNING) {
            char reason[RF_COMPONENT_REASON_MAX];
            rf_component_reason(c, reason, sizeof(reason));
            rc = rf_err_set(err, EIO, "engine: %s did not start: %s", c->name,
                            reason[0] ? reason : rf_lifecycle_state_name(s));
            goto fail_started;
        }
    }
    /* Head reads (storage/store/store.h) wake the shard's worker, which an
     * idle engine lets sleep up to idle.sleep. Before the query API is given
     * the store (daemon/ringflowd.c), so no reader sees it unset. */
    if (e->store)
        rf_store_set_head_wake(e->store, wake_worker_of_shard, e);
    log_listeners(e, settings);
    *out = e;
    return 0;

fail_started:
    rf_engine_stop(e);
    return rc;
fail:
    engine_free(e);
    return rc;
}

void rf_engine_stop(rf_engine *e)
{
    if (atomic_load_explicit(&e->tap, memory_order_relaxed)) {
        rf_err terr;
        rf_err_clear(&terr);
        if (rf_engine_record_stop(e, NULL, &terr) < 0)
            rf_log_error("engine", "stopping the recording: %s", terr.msg);
    }
    /* Phase 1: stop receiving; wait until every running worker has flushed
     * what it staged for its peers. Pairs with the acquire in worker_poll. */
    atomic_store_explicit(&e->stop_ingest, true, memory_order_release);
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        if (!w || !w->thread)
            continue;
        rf_component *c = rf_worker_component(w->thread);
        rf_worker_wake(w->thread);
        /* Pairs with the release store of ingest_quiesced in worker_poll. */
        while (!atomic_load_explicit(&w->ingest_quiesced, memory_order_acquire) &&
               rf_component_state(c) == RF_STATE_RUNNING) {
            rf_worker_wake(w->thread);
            usleep(200);
        }
    }
    /* Phase 1b (stages/pipeline/pipeline.h "Between shards", step 1): every worker
     * closes its stages once, sending peers what they must see. */
    atomic_store_explicit(&e->close_stages, true, memory_order_release);
    bool all_running = true;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        if (!w || !w->thread)
            continue;
        rf_component *c = rf_worker_component(w->thread);
        /* Pairs with the release store of stages_closed in worker_poll. */
        while (!atomic_load_explicit(&w->stages_closed, memory_order_acquire) &&
               rf_component_state(c) == RF_STATE_RUNNING) {
            rf_worker_wake(w->thread);
            usleep(200);
        }
        all_running &= rf_component_state(c) == RF_STATE_RUNNING;
    }
    /* Step 2: until every message is taken (backlogs empty, each ring's
     * dequeues caught up with its enqueues), seen twice 1 ms apart; bounded,
     * so a stuck worker cannot hold the stop. */
    const int64_t quiet_deadline = rf_clock_mono_ns() + RF_PEER_QUIET_WAIT_NS;
    for (int quiet = 0;
         all_running && e->n_workers > 1 && quiet < 2 && rf_clock_mono_ns() < quiet_deadline;) {
        uint64_t enq = 0, deq = 0, backlog = 0;
        for (uint32_t i = 0; i < e->n_workers; i++) {
            rf_engine_worker *w = e->workers[i];
            if (!w)
                continue;
            enq += atomic_load_explicit(&w->peer_enqueued, memory_order_relaxed);
            deq += atomic_load_explicit(&w->peer_dequeued, memory_order_relaxed);
            backlog += atomic_load_explicit(&w->peer_backlog_now, memory_order_relaxed);
            rf_worker_wake(w->thread);
        }
        quiet = (enq == deq && backlog == 0) ? quiet + 1 : 0;
        usleep(1000);
    }
    /* Phase 2: nobody produces for peers any more; drain, flush, exit. */
    for (uint32_t i = 0; i < e->n_workers; i++)
        if (e->workers[i] && e->workers[i]->thread)
            rf_worker_request_stop(e->workers[i]->thread);
    for (uint32_t i = 0; i < e->n_workers; i++) {
        if (e->workers[i] && e->workers[i]->thread) {
            rf_worker_join(e->workers[i]->thread);
            e->workers[i]->thread = NULL;
            rf_engine_worker_stats st;
            rf_engine_worker_stats_read(e, i, &st);
            rf_log_info(
                "engine",
                "worker-%u final: events_parsed=%lu from_peers=%lu processed=%lu sent_to_peers=%lu "
                "dropped_ring_full=%lu dropped_unknown_series=%lu block_waits=%lu "
                "critical_events=%lu critical_from_peers=%lu peer_sent=%lu "
                "peer_received=%lu peer_dropped_backlog=%lu",
                i, (unsigned long)st.events_parsed, (unsigned long)st.events_from_peers,
                (unsigned long)st.events_processed, (unsigned long)st.sent_to_peers,
                (unsigned long)st.dropped_ring_full, (unsigned long)st.dropped_unknown_series,
                (unsigned long)st.block_waits, (unsigned long)st.critical_events,
                (unsigned long)st.critical_from_peers, (unsigned long)st.peer_sent,
                (unsigned long)st.peer_received, (unsigned long)st.peer_dropped_backlog);
            rf_shard_log_summary(e->workers[i]->shard);
        }
    }
    engine_free(e);
}

int rf_engine_create_critical_rings(rf_engine *e, rf_err *err)
{
    for (uint32_t i = 0; i < e->n_workers; i++)
        for (uint32_t j = 0; j < e->n_workers; j++) {
            if (i == j ||
                atomic_load_explicit(&e->workers[i]->crit_inbound[j], memory_order_relaxed))
                continue;
            rf_ring *r = ring_for_consumer(e, i, RF_CRIT_RING_SLOTS); /* i consumes it */
            if (!r)
                return rf_err_set(err, errno, "engine: critical ring %u->%u: %s", j, i,
                                  strerror(errno));
            /* Both pointers before the lane is switched on (release there). */
            atomic_store_explicit(&e->workers[i]->crit_inbound[j], r, memory_order_relaxed);
            atomic_store_explicit(&e->workers[j]->crit_outbound[i], r, memory_order_relaxed);
        }
    return 0;
}
