/* Private to daemon/ops/views: what the `show` and /metrics views share (the
 * engine they show, the metric registration helpers, the argument check) and
 * each view's entry points for views_attach.c, which wires them. One file per
 * view; a view's /metrics series sit beside its `show` when they share its
 * reading (show_memory.c, show_dpdk.c, show_series.c). Everything here runs
 * on the control thread (the ops server's), which alone reads and writes
 * g_view and g_mem; workers are only read through their single-writer
 * counters. Do not include from outside daemon/ops. */
#ifndef RF_DAEMON_OPS_VIEWS_PVT_H
#define RF_DAEMON_OPS_VIEWS_PVT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"
#include "core/stats/stats.h"
#include "core/worker/worker.h"
#include "daemon/engine.h"
#include "daemon/memory_budget.h"
#include "daemon/ops/ops_pvt.h"
#include "ingest/dpdk/dpdk.h"

typedef struct metric_ctx {
    uint16_t a, b; /* worker, or ring from/to */
    uint16_t field;
} metric_ctx;

typedef struct worker_sample {
    uint64_t events_in, busy_ns;
    double events_per_s, busy_pct; /* over the last sampling interval */
} worker_sample;

/* The engine the views show (views/views_attach.c). All of it belongs to the
 * control thread. */
struct rf_views_engine {
    bool attached;
    rf_engine *engine;
    uint32_t workers;
    char source[RF_DAEMON_PATH_MAX];
    int64_t start_mono_ns, start_wall_ns, last_sample_ns;
    worker_sample *samples;              /* [workers] */
    rf_engine_worker_stats *base_w;      /* [workers], clear baselines */
    uint64_t *base_busy_ns, *base_polls; /* [workers] */
    uint64_t *base_spins_cut;            /* [workers] */
    rf_ring_stats *base_r;               /* [workers * workers] */
    metric_ctx *ctxs;
    size_t n_ctxs, cap_ctxs;
    bool dpdk_shown;                                 /* `show dpdk` registered */
    rf_dpdk_port_stats base_port[RF_DPDK_MAX_PORTS]; /* clear baselines */
    int *ids;
    size_t n_ids, cap_ids;
};
extern struct rf_views_engine g_view;

/* engine.memory_limit at run time: the limit, the configuration's worst
 * case (daemon/memory_budget.h), and resident memory sampled once a second
 * (rf_ops_engine_sample). While resident memory is above the limit the
 * component "engine memory" is failed, so /health answers 503 naming it;
 * it is running again once resident memory is back under. Kept apart from
 * g_view (cleared on detach): a component cannot be unregistered. */
struct rf_views_memory {
    rf_component *component;
    bool attached;
    uint64_t limit, worst;
    rf_memory_budget budget;
    uint64_t rss, rss_peak;
    uint64_t over_s; /* samples (about seconds) with resident memory above the limit */
};
extern struct rf_views_memory g_mem; /* views/show_memory.c */

typedef struct metric_def {
    enum rf_metric_type type;
    const char *name, *help, *extra_labels;
    unsigned field;
} metric_def;

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* views_attach.c: helpers every view uses. */

/* 0, or -EINVAL with "'show NAME' takes no arguments" in err when args has any. */
int rf_views_no_args(const char *name, const char *args, rf_err *err);
/* Keeps a registered metric's id for rf_ops_engine_detach; passes errors through. */
int rf_views_keep_id(int id);
/* A metric's context from the slots sized in rf_ops_engine_attach; NULL when full. */
metric_ctx *rf_views_new_ctx(uint32_t a, uint32_t b, unsigned field);
/* a - b, or 0 when a counter went back (a baseline newer than the reading). */
uint64_t rf_views_sub0(uint64_t a, uint64_t b);
uint64_t rf_views_read_uptime(void *ctx);

/* The `show` providers (rf_ops_show_fn). */
int rf_views_show_info(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_workers(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_rings(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_memory(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_dpdk(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_listeners(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_errors(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_stages(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_forwarders(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_storage(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_series(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
int rf_views_show_record(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);
/* Built in (daemon/ops/show.c): there whenever the ops sockets are. */
int rf_views_show_latency(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);

/* Registration of each view's metrics (0 or a negative errno). */
int rf_views_worker_metrics_register(void);
size_t rf_views_worker_metric_ctxs(uint32_t workers); /* metric contexts it takes */
int rf_views_memory_attach(rf_engine *engine);
void rf_views_memory_sample(void);
int rf_views_dpdk_attach(rf_engine *engine);
size_t rf_views_dpdk_metric_ctxs(void); /* metric contexts it takes at most */
int rf_views_listener_metrics_attach(rf_engine *e);
void rf_views_listener_metrics_unregister(void);
int rf_views_storage_metrics_register(rf_engine *e);
void rf_views_storage_metrics_unregister(void);
int rf_views_stage_metrics_register(rf_engine *e);
void rf_views_stage_metrics_unregister(void);
void rf_views_series_attach(rf_engine *e);
void rf_views_series_detach(void);

#endif
