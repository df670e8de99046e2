/* The worst-case memory of a configuration, part by part. See memory_budget.h. */
#include "daemon/memory_budget.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/event/event.h"
#include "core/mem/bound.h"
#include "core/ring/ring.h"
#include "daemon/engine.h"
#include "daemon/settings.h"
#include "daemon/worker_shard.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"
#include "stages/series/series_table.h"
#include "storage/store/store.h"

/* The process before any configured part: code, libraries, the control
 * thread, each thread's stack as far as it is used, the allocator's own
 * metadata, logging, the stats registry and `show` rendering. Measured by
 * hand: 11 MiB resident (7 MiB anonymous) for a daemon with one worker, one
 * UDP listener, no storage and 1,000 series, configured parts included;
 * counted with room to spare. Not checked by a test. */
#define PROCESS_BASE (24ull << 20)
#define PROCESS_PER_THREAD (1ull << 20) /* a worker's or the I/O thread's stack and arena */

/* A canonical key as the parsers (and the aggregator, for its series) make
 * it: at most max_key bytes, an aggregate's ":p99.9" suffix beyond that. */
static uint64_t key_bound(uint32_t max_key)
{
    return rf_series_key_memory_bound((size_t)max_key + 16);
}

/* ---- the sum ---------------------------------------------------------------- */

static void add(rf_memory_budget *b, const char *name, const char *lower, uint64_t bytes)
{
    if (!bytes)
        return;
    for (uint32_t i = 0; i < b->n; i++)
        if (strcmp(b->parts[i].name, name) == 0) {
            b->parts[i].bytes += bytes;
            b->total += bytes;
            return;
        }
    if (b->n == RF_MEM_PARTS_MAX)
        return;
    b->parts[b->n++] = (rf_mem_part){name, lower, bytes};
    b->total += bytes;
}

void rf_memory_budget_compute(const rf_settings *s, rf_memory_budget *out)
{
    memset(out, 0, sizeof(*out));
    const uint32_t W = s->daemon.engine.workers ? s->daemon.engine.workers : 1;
    const uint32_t peers = W - 1;
    const uint32_t cap = s->daemon.engine.ring.capacity;
    const uint32_t max_series = s->pipeline.max_series ? s->pipeline.max_series : (1u << 20);
    const uint32_t max_key = s->ingest.parse.max_key_len ? s->ingest.parse.max_key_len : 1024;
    const uint32_t max_tags = s->ingest.parse.max_tags ? s->ingest.parse.max_tags : 64;
    bool critical = false;
    for (size_t i = 0; i < s->ingest.n_listeners; i++)
        critical |= s->ingest.listeners[i].critical;

    /* Rings: each worker's inbound ring from every peer (and the critical
     * lane's beside it), and the series keys that can travel in them: a
     * ring full of series definitions holds a key per slot. */
    add(out, "rings between workers", "engine.ring.capacity",
        (uint64_t)W * peers * rf_ring_memory_bound(cap, sizeof(rf_event)));
    if (critical)
        add(out, "critical rings", "fixed: RF_CRIT_RING_SLOTS per pair of workers",
            (uint64_t)W * peers * rf_ring_memory_bound(RF_CRIT_RING_SLOTS, sizeof(rf_event)));
    add(out, "series keys in flight", "engine.ring.capacity, ingest.max_key",
        (uint64_t)W * peers * ((uint64_t)cap + (critical ? RF_CRIT_RING_SLOTS : 0)) *
            key_bound(max_key));
    add(out, "engine staging", "engine.workers", (uint64_t)W * rf_engine_worker_memory_bound(W));
    add(out, "chunk hand-off buffers", "ingest.spread.buffers",
        rf_spread_memory_bound(W, &s->ingest.spread));

    /* Series: the table and the key of every series it holds. */
    add(out, "series tables", "pipeline.max_series, ingest.max_tags",
        (uint64_t)W * rf_series_table_memory_bound(max_series, max_tags));
    add(out, "series keys", "pipeline.max_series, ingest.max_key",
        (uint64_t)W * max_series * key_bound(max_key));
    add(out, "string texts in flight", "fixed: RF_EVENT_TEXT_BUDGET (core/event/event.h)",
        RF_EVENT_TEXT_BUDGET);
    add(out, "field types", "pipeline.max_series x engine.workers",
        rf_mem_alloc_bound(rf_field_types_memory_bound(2ull * W * max_series)));

    /* Stages, per worker; the pipeline's own buffers. */
    const rf_pipeline_settings *ps = &s->pipeline;
    rf_router_config rc = ps->routes.cfg;
    rc.n_sink_names = ps->sinks.n;
    add(out, "routing caches", "pipeline.max_series, pipeline.routes",
        (uint64_t)W * rf_router_memory_bound(&rc, max_series));
    add(out, "alert state", "pipeline.max_series, pipeline.alerts (max_bindings)",
        (uint64_t)W * rf_alerts_memory_bound(&ps->alerts.cfg, max_series));
    add(out, "correlation tables", "pipeline.max_series, pipeline.correlation",
        (uint64_t)W * rf_correlator_memory_bound(&ps->correlation.cfg, max_series));
    add(out, "aggregation state and sketch pools",
        "pipeline.aggregation (max_states, max_pending, max_sketches, max_sets), "
        "pipeline.max_series",
        (uint64_t)W * rf_aggregator_memory_bound(&ps->aggregation, max_series));
    uint64_t sinks = 0, batchers = 0;
    for (uint32_t j = 0; j < ps->sinks.n; j++) {
        const rf_sink_config *sc = &ps->sinks.sinks[j];
        if (sc->type == RF_SINK_STORE)
            continue;
        sinks += rf_sink_memory_bound(sc);
        batchers += rf_batcher_memory_bound(&ps->batch);
    }
    add(out, "sink queues", "pipeline.sinks[].buffer", (uint64_t)W * sinks);
    add(out, "batchers", "pipeline.batch.max_events", (uint64_t)W * batchers);
    add(out, "pipeline buffers", "pipeline.sinks", (uint64_t)W * rf_pipeline_memory_bound(ps));

    /* Storage, one shard per worker. */
    if (s->storage.enabled) {
        rf_store_memory m;
        rf_store_memory_bound(&s->storage.store, max_series, max_key + 16, &m);
        add(out, "storage slots, staging and codec",
            "storage.queue_blocks, storage.block_points, storage.zstd_level",
            (uint64_t)W * m.fixed);
        add(out, "storage series and segment index",
            "pipeline.max_series, storage.segment_max_bytes", (uint64_t)W * m.series);
        add(out, "storage point buffers", "storage.buffer_memory (per worker)",
            (uint64_t)W * m.buffers);
    }

    /* Ingest: per worker, a parse context per listener it has and its
     * listener sets (routine, critical) with their provided buffers. */
    uint64_t parse = 0, sets = 0, tcp_lines = 0, http = 0;
    for (uint32_t w = 0; w < W; w++) {
        bool udp[2] = {false, false}, tcp[2] = {false, false};
        bool any[2] = {false, false};
        for (size_t i = 0; i < s->ingest.n_listeners; i++) {
            const rf_listener_config *lc = &s->ingest.listeners[i];
            if (lc->worker_mask && !((lc->worker_mask >> w) & 1u))
                continue;
            const int k = lc->critical ? 1 : 0;
            any[k] = true;
            udp[k] |= lc->transport == RF_LISTEN_UDP;
            tcp[k] |= lc->transport == RF_LISTEN_TCP;
            parse += rf_shard_input_memory_bound(s, lc);
            if (lc->protocol == RF_LISTEN_PROTO_HTTP)
                http += rf_http_front_memory_bound(NULL, lc->max_connections) +
                        (lc->tls.enabled ? rf_http_front_tls_memory_bound(NULL, lc->max_connections)
                                         : 0);
            const uint64_t l = rf_listener_memory_bound(lc);
            const uint64_t bare =
                rf_listener_memory_bound(&(rf_listener_config){.transport = RF_LISTEN_UDP});
            sets += bare;
            tcp_lines += l - bare;
        }
        for (int k = 0; k < 2; k++)
            if (any[k])
                sets += rf_listener_set_memory_bound(NULL, udp[k], tcp[k]);
    }
    add(out, "parse contexts", "listeners, ingest.max_key, listeners[].max_line", parse);
    add(out, "listener buffer rings", "listeners (one set per worker and class)", sets);
    add(out, "TCP line buffers", "listeners[].max_connections x listeners[].max_line", tcp_lines);
    if (http)
        add(out, "HTTP connections and bodies", "http listeners' max_connections, body budget",
            http);

    /* A reload builds the new stages while the old ones still run. */
    add(out, "reload (new stages beside the old)", "the pipeline's stages, as above",
        (uint64_t)W * rf_pipeline_stages_memory_bound(&s->pipeline, max_series));

    add(out, "ops sockets", "stats.client_buffer", rf_ops_server_memory_bound(&s->stats));
    if (s->storage.enabled)
        add(out, "query API series index", "storage.query.index_memory",
            s->storage.query.index_memory);
    if (s->dpdk.enabled)
        add(out, "DPDK memory", "dpdk.memory",
            s->dpdk.memory_bytes ? s->dpdk.memory_bytes : (64ull << 20));
    add(out, "process (code, libraries, thread stacks, allocator)", "engine.workers",
        PROCESS_BASE + (W + 1) * PROCESS_PER_THREAD);

    /* Largest first. */
    for (uint32_t i = 1; i < out->n; i++)
        for (uint32_t j = i; j > 0 && out->parts[j].bytes > out->parts[j - 1].bytes; j--) {
            rf_mem_part t = out->parts[j];
            out->parts[j] = out->parts[j - 1];
            out->parts[j - 1] = t;
        }
}

const char *rf_memory_format(uint64_t bytes, char *buf, unsigned long size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%lu B", (unsigned long)bytes);
    else
        snprintf(buf, size, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

int rf_memory_budget_check(const rf_settings *s, const rf_cfg_node *engine, rf_err *err)
{
    const uint64_t limit = s->daemon.engine.memory_limit;
    if (!limit)
        return 0;
    rf_memory_budget b;
    rf_memory_budget_compute(s, &b);
    if (b.total <= limit)
        return 0;
    char msg[900], t[32], l[32], x[32];
    size_t len = (size_t)snprintf(
        msg, sizeof(msg),
        "this configuration can need up to %s (worst case), more than "
        "the limit of %s%s; the largest parts:",
        rf_memory_format(b.total, t, sizeof(t)), rf_memory_format(limit, l, sizeof(l)),
        s->daemon.engine.memory_limit_auto ? " (auto: half of this host's memory)" : "");
    for (uint32_t i = 0; i < b.n && i < 4 && len < sizeof(msg); i++)
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s %s %s (lower %s)", i ? ";" : "",
                                b.parts[i].name, rf_memory_format(b.parts[i].bytes, x, sizeof(x)),
                                b.parts[i].lower);
    if (len < sizeof(msg))
        snprintf(msg + len, sizeof(msg) - len,
                 "; or raise memory_limit (`show memory` on the "
                 "stats socket lists every part)");
    return rf_cfg_fail_key(engine, "memory_limit", err, "%s", msg);
}

/* ---- auto ---------------------------------------------------------------- */

/* memory.max of the cgroup (v2) this process is in; UINT64_MAX for "max",
 * none or unreadable. */
static uint64_t cgroup_limit(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return UINT64_MAX;
    char line[4096], path[4200];
    path[0] = '\0';
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", line + 3);
            break;
        }
    fclose(f);
    if (!path[0] || !(f = fopen(path, "r")))
        return UINT64_MAX;
    unsigned long long v;
    uint64_t limit = fscanf(f, "%llu", &v) == 1 ? (uint64_t)v : UINT64_MAX;
    fclose(f);
    return limit;
}

uint64_t rf_memory_host_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t cg = cgroup_limit();
    return cg < phys ? cg : phys;
}

int rf_memory_budget_resolve(rf_settings *s, const rf_cfg_node *root, rf_err *err)
{
    const uint64_t half = rf_memory_host_bytes() / 2;
    if (s->daemon.engine.memory_limit_auto)
        s->daemon.engine.memory_limit = half;
    if (!s->pipeline.max_series_auto)
        return 0;
    const uint64_t target = s->daemon.engine.memory_limit ? s->daemon.engine.memory_limit : half;
    /* The worst case grows with max_series: the largest multiple of 1024
     * that fits, by bisection between 1024 and the default. */
    uint32_t lo = 1, hi = RF_PIPELINE_DEFAULT_MAX_SERIES / 1024;
    rf_memory_budget b;
    s->pipeline.max_series = hi * 1024;
    rf_memory_budget_compute(s, &b);
    if (b.total > target) {
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            s->pipeline.max_series = mid * 1024;
            rf_memory_budget_compute(s, &b);
            if (b.total <= target)
                lo = mid;
            else
                hi = mid - 1;
        }
        s->pipeline.max_series = lo * 1024;
    }
    if (s->pipeline.limits.max_per_measurement > s->pipeline.max_series) {
        /* Only set in a pipeline section, so there is one to point at. */
        const rf_cfg_node *pipeline = rf_cfg_get(root, "pipeline");
        char t[32];
        return rf_cfg_fail_key(pipeline, "max_series", err,
                               "auto gives %u series per worker within engine.memory_limit %s on "
                               "this host, fewer than max_series_per_measurement (%u): set both",
                               s->pipeline.max_series, rf_memory_format(target, t, sizeof(t)),
                               s->pipeline.limits.max_per_measurement);
    }
    return 0;
}

bool rf_memory_budget_keep_max_series(rf_settings *next, uint32_t running)
{
    if (!next->pipeline.max_series_auto || next->pipeline.max_series == running)
        return next->pipeline.max_series == running;
    const uint32_t own = next->pipeline.max_series;
    next->pipeline.max_series = running;
    rf_memory_budget b;
    rf_memory_budget_compute(next, &b);
    const uint64_t limit = next->daemon.engine.memory_limit;
    if (limit && b.total > limit) {
        next->pipeline.max_series = own;
        return false;
    }
    return true;
}
