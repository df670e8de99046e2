/* Wiring the views to a running engine: which `show` commands and /metrics
 * series each entry point registers (rf_ops_engine_attach, daemon/ops/ops.h;
 * rf_engine_views_register, daemon/engine.h), the per-second rates and the
 * reader-side baselines of `clear counters`. Control thread only: workers
 * are read through their single-writer counters (relaxed loads inside the
 * engine's *_read functions), never stopped or written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "rf_build_config.h"

#include "daemon/ops/views/views_pvt.h"
#include "core/mem/mem.h"

/* All of it belongs to the control thread. */
struct rf_views_engine g_view;

int rf_views_no_args(const char *name, const char *args, rf_err *err)
{
    if (args && *args)
        return rf_err_set(err, EINVAL, "'show %s' takes no arguments", name);
    return 0;
}

uint64_t rf_views_read_uptime(void *ctx)
{
    (void)ctx;
    return (uint64_t)((rf_clock_mono_ns() - g_view.start_mono_ns) / RF_NS_PER_S);
}

static uint64_t read_rss(void *ctx)
{
    (void)ctx;
    return rf_mem_rss_bytes();
}

static uint64_t read_one(void *ctx)
{
    (void)ctx;
    return 1;
}

static uint64_t read_workers(void *ctx)
{
    (void)ctx;
    return g_view.workers;
}

uint64_t rf_views_sub0(uint64_t a, uint64_t b)
{
    return a >= b ? a - b : 0;
}

/* Events a worker took in, from its listeners and from its peers. */
static uint64_t events_in(const rf_engine_worker_stats *s)
{
    return s->events_parsed + s->events_from_peers;
}

metric_ctx *rf_views_new_ctx(uint32_t a, uint32_t b, unsigned field)
{
    if (g_view.n_ctxs == g_view.cap_ctxs)
        return NULL; /* sized up front in attach: never grows (pointers stay valid) */
    metric_ctx *m = &g_view.ctxs[g_view.n_ctxs++];
    m->a = (uint16_t)a;
    m->b = (uint16_t)b;
    m->field = (uint16_t)field;
    return m;
}

int rf_views_keep_id(int id)
{
    if (id < 0)
        return id;
    if (g_view.n_ids == g_view.cap_ids) {
        size_t cap = g_view.cap_ids ? g_view.cap_ids * 2 : 64;
        int *ids = realloc(g_view.ids, cap * sizeof(int));
        if (!ids) {
            rf_stats_unregister(id);
            return -ENOMEM;
        }
        g_view.ids = ids;
        g_view.cap_ids = cap;
    }
    g_view.ids[g_view.n_ids++] = id;
    return id;
}

int rf_ops_engine_attach(rf_engine *engine, const char *source, rf_err *err)
{
    if (g_view.attached)
        rf_ops_engine_detach();
    memset(&g_view, 0, sizeof(g_view));
    g_view.engine = engine;
    g_view.workers = engine ? rf_engine_workers(engine) : 0;
    snprintf(g_view.source, sizeof(g_view.source), "%s", source ? source : "");
    g_view.start_mono_ns = rf_clock_mono_ns();
    g_view.start_wall_ns = rf_clock_wall_ns();
    uint32_t n = g_view.workers ? g_view.workers : 1;
    g_view.samples = calloc(n, sizeof(*g_view.samples));
    g_view.base_w = calloc(n, sizeof(*g_view.base_w));
    g_view.base_busy_ns = calloc(n, sizeof(uint64_t));
    g_view.base_polls = calloc(n, sizeof(uint64_t));
    g_view.base_spins_cut = calloc(n, sizeof(uint64_t));
    g_view.base_r = calloc((size_t)n * n, sizeof(*g_view.base_r));
    g_view.cap_ctxs = rf_views_worker_metric_ctxs(n) + rf_views_dpdk_metric_ctxs();
    g_view.ctxs = calloc(g_view.cap_ctxs, sizeof(*g_view.ctxs));
    g_view.attached = true;
    if (!g_view.samples || !g_view.base_w || !g_view.base_busy_ns || !g_view.base_polls ||
        !g_view.base_spins_cut || !g_view.base_r || !g_view.ctxs) {
        rf_ops_engine_detach();
        return rf_err_set(err, ENOMEM, "ops: out of memory for the engine view");
    }
    int rc = 0;
    if ((rc = rf_ops_register_show("info", NULL, rf_views_show_info, NULL)) < 0 ||
        (rc = rf_ops_register_show("workers", NULL, rf_views_show_workers, NULL)) < 0 ||
        (rc = rf_ops_register_show("rings", NULL, rf_views_show_rings, NULL)) < 0 ||
        (rc = rf_views_keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_uptime_seconds",
                                                    "Seconds since ringflowd started.", NULL,
                                                    rf_views_read_uptime, NULL))) < 0 ||
        (rc = rf_views_keep_id(
             rf_stats_register_fn(RF_METRIC_GAUGE, "process_resident_memory_bytes",
                                  "Resident memory size in bytes.", NULL, read_rss, NULL))) < 0 ||
        (rc = rf_views_keep_id(rf_stats_register_fn(
             RF_METRIC_GAUGE, "ringflow_build_info", "Always 1; the labels name the build.",
             "version=\"" RF_VERSION "\"", read_one, NULL))) < 0 ||
        (rc = rf_views_keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_workers",
                                                    "Worker threads running.", NULL, read_workers,
                                                    NULL))) < 0 ||
        (engine && (rc = rf_views_worker_metrics_register()) < 0) ||
        (engine && (rc = rf_views_memory_attach(engine)) < 0) ||
        (engine && (rc = rf_views_dpdk_attach(engine)) < 0)) {
        rf_ops_engine_detach();
        return rf_err_set(err, -rc, "ops: registering the engine view: %s", strerror(-rc));
    }
    rf_ops_engine_sample(rf_clock_mono_ns());
    return 0;
}

void rf_ops_engine_detach(void)
{
    if (!g_view.attached)
        return;
    rf_ops_unregister_show("info");
    rf_ops_unregister_show("workers");
    rf_ops_unregister_show("rings");
    if (g_mem.attached)
        rf_ops_unregister_show("memory");
    if (g_view.dpdk_shown)
        rf_ops_unregister_show("dpdk");
    g_mem.attached = false;
    for (size_t i = 0; i < g_view.n_ids; i++)
        rf_stats_unregister(g_view.ids[i]);
    free(g_view.ids);
    free(g_view.samples);
    free(g_view.base_w);
    free(g_view.base_busy_ns);
    free(g_view.base_polls);
    free(g_view.base_spins_cut);
    free(g_view.base_r);
    free(g_view.ctxs);
    memset(&g_view, 0, sizeof(g_view));
}

void rf_ops_engine_sample(int64_t now)
{
    if (!g_view.attached || !g_view.engine)
        return;
    double dt = g_view.last_sample_ns ? (double)(now - g_view.last_sample_ns) / 1e9 : 0;
    for (uint32_t i = 0; i < g_view.workers; i++) {
        rf_engine_worker_stats s;
        rf_worker_stats rs;
        rf_engine_worker_stats_read(g_view.engine, i, &s);
        rf_engine_worker_runtime_read(g_view.engine, i, &rs, NULL);
        worker_sample *ws = &g_view.samples[i];
        if (dt > 0) {
            ws->events_per_s = (double)rf_views_sub0(events_in(&s), ws->events_in) / dt;
            double busy = (double)rf_views_sub0(rs.busy_ns, ws->busy_ns) / (dt * 1e9) * 100.0;
            ws->busy_pct = busy > 100.0 ? 100.0 : busy;
        }
        ws->events_in = events_in(&s);
        ws->busy_ns = rs.busy_ns;
    }
    g_view.last_sample_ns = now;
    rf_views_memory_sample();
}

void rf_ops_engine_clear(void)
{
    if (!g_view.attached || !g_view.engine)
        return;
    for (uint32_t i = 0; i < g_view.workers; i++) {
        rf_worker_stats rs;
        rf_engine_worker_stats_read(g_view.engine, i, &g_view.base_w[i]);
        rf_engine_worker_runtime_read(g_view.engine, i, &rs, NULL);
        g_view.base_busy_ns[i] = rs.busy_ns;
        g_view.base_polls[i] = rs.polls;
        g_view.base_spins_cut[i] = rs.spins_cut;
        for (uint32_t t = 0; t < g_view.workers; t++)
            if (t != i)
                rf_engine_ring_stats_read(g_view.engine, i, t,
                                          &g_view.base_r[i * g_view.workers + t]);
    }
    rf_dpdk *d = rf_engine_dpdk(g_view.engine);
    for (unsigned p = 0; d && p < rf_dpdk_port_count(d) && p < RF_DPDK_MAX_PORTS; p++) {
        rf_err err;
        rf_err_clear(&err);
        if (rf_dpdk_port_stats_get(d, p, &g_view.base_port[p], &err) < 0)
            memset(&g_view.base_port[p], 0, sizeof(g_view.base_port[p]));
    }
}

int rf_engine_views_register(rf_engine *e, rf_err *err)
{
    rf_views_series_attach(e);
    int rc;
    if ((rc = rf_views_storage_metrics_register(e)) < 0)
        return rf_err_set(err, -rc, "registering the storage metrics: %s", strerror(-rc));
    if ((rc = rf_views_stage_metrics_register(e)) < 0)
        return rf_err_set(err, -rc, "registering the stage metrics: %s", strerror(-rc));
    if ((rc = rf_ops_register_show("listeners", "per listener: traffic, events, rejects, drops",
                                   rf_views_show_listeners, e)) < 0 ||
        (rc = rf_ops_register_show("errors", "the most recent rejected lines", rf_views_show_errors,
                                   e)) < 0 ||
        (rc = rf_ops_register_show("stages", "per worker: series, stage counters, sinks",
                                   rf_views_show_stages, e)) < 0 ||
        (rc = rf_ops_register_show("forwarders",
                                   "per HTTP forwarding sink: queued, in flight, "
                                   "acknowledged, dropped, receiver state",
                                   rf_views_show_forwarders, e)) < 0 ||
        (rc = rf_ops_register_show("storage", "segments, bytes, per-shard writes and drops",
                                   rf_views_show_storage, e)) < 0 ||
        (rc = rf_ops_register_show("series",
                                   "cardinality per measurement: active, refused, dropped "
                                   "([top N] [refused|active])",
                                   rf_views_show_series, e)) < 0 ||
        (rc = rf_ops_register_show("record",
                                   "the recording of what the listeners receive "
                                   "(record start on the admin socket)",
                                   rf_views_show_record, e)) < 0)
        return rf_err_set(err, -rc, "registering the engine's show commands: %s", strerror(-rc));
    if ((rc = rf_views_listener_metrics_attach(e)) < 0)
        return rf_err_set(err, -rc, "registering the listeners' metrics: %s", strerror(-rc));
    return 0;
}

void rf_engine_views_unregister(void)
{
    rf_views_series_detach();
    rf_views_storage_metrics_unregister();
    rf_views_stage_metrics_unregister();
    rf_ops_unregister_show("listeners");
    rf_ops_unregister_show("errors");
    rf_ops_unregister_show("stages");
    rf_ops_unregister_show("forwarders");
    rf_ops_unregister_show("storage");
    rf_ops_unregister_show("series");
    rf_ops_unregister_show("record");
    rf_views_listener_metrics_unregister();
}
