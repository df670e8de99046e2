/* The engine as the ops sockets see it: `show info`, `show workers`,
 * `show rings`, `show dpdk`, the engine's Prometheus metrics (DPDK port
 * statistics included), per-second rates and the
 * reader-side baselines of `clear counters`. Control thread only: workers
 * are read through their single-writer counters (relaxed loads inside the
 * engine's *_read functions), never stopped or written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "daemon/engine.h"
#include "daemon/memory_budget.h"
#include "daemon/ops/ops_pvt.h"
#include "ingest/dpdk/dpdk.h"
#include "rf_build_config.h"

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

typedef struct metric_ctx {
    uint16_t a, b; /* worker, or ring from/to */
    uint16_t field;
} metric_ctx;

typedef struct worker_sample {
    uint64_t events_in, busy_ns;
    double events_per_s, busy_pct; /* over the last sampling interval */
} worker_sample;

/* All of it belongs to the control thread. */
static struct {
    bool attached;
    rf_engine *engine;
    uint32_t workers;
    char source[RF_DAEMON_PATH_MAX];
    int64_t start_mono_ns, start_wall_ns, last_sample_ns;
    worker_sample *samples;              /* [workers] */
    rf_engine_worker_stats *base_w;      /* [workers], clear baselines */
    uint64_t *base_busy_ns, *base_polls; /* [workers] */
    rf_ring_stats *base_r;               /* [workers * workers] */
    metric_ctx *ctxs;
    size_t n_ctxs, cap_ctxs;
    bool dpdk_shown;                                 /* `show dpdk` registered */
    rf_dpdk_port_stats base_port[RF_DPDK_MAX_PORTS]; /* clear baselines */
    int *ids;
    size_t n_ids, cap_ids;
} g_view;

/* engine.memory_limit at run time: the limit, the configuration's worst
 * case (daemon/memory_budget.h), and resident memory sampled once a second
 * (rf_ops_engine_sample). While resident memory is above the limit the
 * component "engine memory" is failed, so /health answers 503 naming it;
 * it is running again once resident memory is back under. Kept apart from
 * g_view (cleared on detach): a component cannot be unregistered. */
static struct {
    rf_component *component;
    bool attached;
    uint64_t limit, worst;
    rf_memory_budget budget;
    uint64_t rss, rss_peak;
    uint64_t over_s;  /* samples (about seconds) with resident memory above the limit */
} g_mem;

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t wfield_raw(uint32_t i, unsigned field)
{
    if (field == WF_POLLS || field == WF_BUSY_NS) {
        rf_worker_stats rs;
        rf_engine_worker_runtime_read(g_view.engine, i, &rs, NULL);
        return field == WF_POLLS ? rs.polls : rs.busy_ns;
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

static uint64_t read_uptime(void *ctx)
{
    (void)ctx;
    return (uint64_t)((rf_clock_mono_ns() - g_view.start_mono_ns) / RF_NS_PER_S);
}

static uint64_t read_rss(void *ctx)
{
    (void)ctx;
    return rss_bytes();
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

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a >= b ? a - b : 0;
}

/* Events a worker took in, from its listeners and from its peers. */
static uint64_t events_in(const rf_engine_worker_stats *s)
{
    return s->events_parsed + s->events_from_peers;
}

/* ---- memory --------------------------------------------------------------- */

static int keep_id(int id);

static uint64_t read_mem(void *ctx)
{
    switch ((int)(intptr_t)ctx) {
    case 0: return g_mem.limit;
    case 1: return g_mem.worst;
    case 2: return g_mem.rss_peak;
    default: return g_mem.over_s;
    }
}

/* `show memory`: the limit, resident memory and the worst case part by part,
 * largest first, with the keys that size each part. */
static int show_memory(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show memory' takes no arguments (besides json)");
    rf_ops_obj_begin(w, "memory");
    rf_ops_kv_u64(w, "limit_bytes", g_mem.limit);
    rf_ops_kv_u64(w, "worst_case_bytes", g_mem.worst);
    rf_ops_kv_u64(w, "rss_bytes", rss_bytes());
    rf_ops_kv_u64(w, "rss_peak_bytes", g_mem.rss_peak);
    rf_ops_kv_u64(w, "over_limit_s", g_mem.over_s);
    rf_ops_obj_end(w);
    static const char *const cols[] = {"part", "worst_case_bytes", "sized_by"};
    RF_OPS_TABLE_BEGIN(w, "memory_parts", cols);
    for (uint32_t i = 0; i < g_mem.budget.n; i++) {
        rf_ops_cell_str(w, g_mem.budget.parts[i].name);
        rf_ops_cell_u64(w, g_mem.budget.parts[i].bytes);
        rf_ops_cell_str(w, g_mem.budget.parts[i].lower);
    }
    rf_ops_table_end(w);
    return 0;
}

/* Once a second (and at attach): resident memory against the limit, and
 * the worst case again (a reload may have changed the pipeline; the limit
 * is the one the daemon started with: engine.* takes a restart). */
static void memory_sample(void)
{
    if (g_mem.attached && g_view.engine) {
        rf_memory_budget_compute(rf_engine_settings(g_view.engine), &g_mem.budget);
        g_mem.worst = g_mem.budget.total;
    }
    g_mem.rss = rss_bytes();
    if (g_mem.rss > g_mem.rss_peak)
        g_mem.rss_peak = g_mem.rss;
    rf_component *c = g_mem.component;
    if (!c)
        return;
    const bool over = g_mem.limit && g_mem.rss > g_mem.limit;
    const enum rf_lifecycle_state st = rf_component_state(c);
    if (over) {
        g_mem.over_s++;
        if (st == RF_STATE_RUNNING) {
            char a[32], b[32], x[32], reason[RF_COMPONENT_REASON_MAX];
            snprintf(reason, sizeof(reason),
                     "resident memory %s is above engine.memory_limit %s (worst case computed: %s)",
                     rf_memory_format(g_mem.rss, a, sizeof(a)),
                     rf_memory_format(g_mem.limit, b, sizeof(b)),
                     rf_memory_format(g_mem.worst, x, sizeof(x)));
            rf_component_transition(c, RF_STATE_FAILED, reason);
            rf_log_error("engine", "%s", reason);
        }
    } else if (st == RF_STATE_FAILED) {
        rf_component_transition(c, RF_STATE_CONFIGURING, "resident memory back under the limit");
        rf_component_transition(c, RF_STATE_RUNNING, NULL);
        rf_log_info("engine", "resident memory back under engine.memory_limit");
    }
}

static int memory_attach(rf_engine *engine)
{
    const rf_settings *s = rf_engine_settings(engine);
    rf_memory_budget_compute(s, &g_mem.budget);
    g_mem.limit = s->daemon.engine.memory_limit;
    g_mem.worst = g_mem.budget.total;
    g_mem.attached = true;
    if (!g_mem.component)
        g_mem.component = rf_component_register("engine", "memory");
    rf_component *c = g_mem.component;
    if (c) {
        enum rf_lifecycle_state st = rf_component_state(c);
        if (st == RF_STATE_REGISTERED || st == RF_STATE_STOPPED || st == RF_STATE_FAILED)
            rf_component_transition(c, RF_STATE_CONFIGURING, NULL);
        if (rf_component_state(c) == RF_STATE_CONFIGURING)
            rf_component_transition(c, RF_STATE_RUNNING, NULL);
    }
    char a[32], b[32], l[32]; /* one buffer per figure: they are all in one call */
    rf_log_info("engine", "memory: worst case of this configuration %s (largest part: %s %s), "
                "engine.memory_limit %s",
                rf_memory_format(g_mem.worst, a, sizeof(a)),
                g_mem.budget.n ? g_mem.budget.parts[0].name : "-",
                g_mem.budget.n ? rf_memory_format(g_mem.budget.parts[0].bytes, b, sizeof(b)) : "",
                g_mem.limit ? rf_memory_format(g_mem.limit, l, sizeof(l)) : "none (0)");
    memory_sample();
    int rc;
    if ((rc = rf_ops_register_show("memory", "the memory limit, resident memory and the worst "
                                   "case part by part", show_memory, NULL)) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_memory_limit_bytes",
                                           "engine.memory_limit (0: none).", NULL, read_mem,
                                           (void *)(intptr_t)0))) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_memory_worst_case_bytes",
                                           "The most memory this configuration can need, "
                                           "computed part by part.", NULL, read_mem,
                                           (void *)(intptr_t)1))) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_memory_rss_peak_bytes",
                                           "Largest resident memory sampled (once a second).",
                                           NULL, read_mem, (void *)(intptr_t)2))) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_COUNTER,
                                           "ringflow_memory_over_limit_seconds",
                                           "Seconds resident memory was sampled above "
                                           "engine.memory_limit.",
                                           NULL, read_mem, (void *)(intptr_t)3))) < 0)
        return rc;
    return 0;
}

/* ---- show info / workers / rings ------------------------------------------ */

static int show_info(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show info' takes no arguments (besides json)");
    char started[40];
    rf_clock_format_rfc3339(g_view.start_wall_ns, started, sizeof(started));
    rf_ops_obj_begin(w, "info");
    rf_ops_kv_str(w, "version", RF_VERSION);
    rf_ops_kv_i64(w, "pid", (int64_t)getpid());
    rf_ops_kv_str(w, "started", started);
    rf_ops_kv_u64(w, "uptime_s", read_uptime(NULL));
    rf_ops_kv_str(w, "config", g_view.source);
    rf_ops_kv_u64(w, "workers", g_view.workers);
    rf_ops_kv_u64(w, "rss_bytes", rss_bytes());
    rf_ops_kv_u64(w, "rss_peak_bytes", g_mem.rss_peak);
    rf_ops_kv_u64(w, "memory_limit_bytes", g_mem.limit);
    rf_ops_kv_u64(w, "memory_worst_case_bytes", g_mem.worst);
    rf_ops_kv_u64(w, "memory_over_limit_s", g_mem.over_s);
    rf_ops_kv_str(w, "log_level", rf_log_level_name(rf_log_get_level()));
    rf_ops_kv_u64(w, "components", rf_component_count());
    if (g_view.engine)
        rf_ops_kv_str(w, "placement", rf_engine_placement(g_view.engine));
    const rf_ops_server *srv = rf_ops_server_current();
    if (srv) {
        rf_ops_server_stats st;
        rf_ops_server_stats_read(srv, &st);
        rf_ops_kv_u64(w, "ops_clients", st.clients);
        rf_ops_kv_u64(w, "ops_clients_dropped_slow", st.dropped_slow);
        rf_ops_kv_u64(w, "prometheus_port", rf_ops_server_prometheus_port(srv));
    }
    rf_ops_obj_end(w);
    return 0;
}

static int show_workers(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show workers' takes no arguments (besides json)");
    if (!g_view.engine) {
        rf_ops_no_data(w, "workers", "engine not running");
        return 0;
    }
    static const char *const cols[] = {"worker",
                                       "name",
                                       "state",
                                       "cpu",
                                       "events_per_s",
                                       "busy_pct",
                                       "parsed",
                                       "from_peers",
                                       "processed",
                                       "sent_to_peers",
                                       "dropped_ring_full",
                                       "dropped_unknown_series",
                                       "block_waits",
                                       "critical",
                                       "critical_from_peers",
                                       "polls",
                                       "reason"};
    RF_OPS_TABLE_BEGIN(w, "workers", cols);
    for (uint32_t i = 0; i < g_view.workers; i++) {
        rf_engine_worker_stats s;
        rf_worker_stats rs;
        const rf_component *c = NULL;
        rf_engine_worker_stats_read(g_view.engine, i, &s);
        rf_engine_worker_runtime_read(g_view.engine, i, &rs, &c);
        const rf_engine_worker_stats *b = &g_view.base_w[i];
        enum rf_lifecycle_state st = c ? rf_component_state(c) : RF_STATE_REGISTERED;
        rf_ops_cell_u64(w, i);
        rf_ops_cell_str(w, c ? c->name : "");
        rf_ops_cell_str(w, rf_lifecycle_state_name(st));
        rf_ops_cell_i64(w, rs.cpu);
        rf_ops_cell_f64(w, g_view.samples[i].events_per_s, 1);
        rf_ops_cell_f64(w, g_view.samples[i].busy_pct, 1);
        rf_ops_cell_u64(w, sub0(s.events_parsed, b->events_parsed));
        rf_ops_cell_u64(w, sub0(s.events_from_peers, b->events_from_peers));
        rf_ops_cell_u64(w, sub0(s.events_processed, b->events_processed));
        rf_ops_cell_u64(w, sub0(s.sent_to_peers, b->sent_to_peers));
        rf_ops_cell_u64(w, sub0(s.dropped_ring_full, b->dropped_ring_full));
        rf_ops_cell_u64(w, sub0(s.dropped_unknown_series, b->dropped_unknown_series));
        rf_ops_cell_u64(w, sub0(s.block_waits, b->block_waits));
        rf_ops_cell_u64(w, sub0(s.critical_events, b->critical_events));
        rf_ops_cell_u64(w, sub0(s.critical_from_peers, b->critical_from_peers));
        rf_ops_cell_u64(w, sub0(rs.polls, g_view.base_polls[i]));
        /* The reason is only meaningful once the component stopped or failed. */
        char reason[RF_COMPONENT_REASON_MAX] = "";
        if (c && (st == RF_STATE_FAILED || st == RF_STATE_STOPPED))
            rf_component_reason(c, reason, sizeof(reason));
        rf_ops_cell_str(w, reason);
    }
    rf_ops_table_end(w);
    return 0;
}

static int show_rings(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show rings' takes no arguments (besides json)");
    if (!g_view.engine) {
        rf_ops_no_data(w, "rings", "engine not running");
        return 0;
    }
    if (g_view.workers < 2) {
        rf_ops_no_data(w, "rings", "one worker: no rings between workers");
        return 0;
    }
    const char *policy =
        rf_engine_settings(g_view.engine)->daemon.engine.ring.full_policy == RF_RING_BLOCK
            ? "block"
            : "drop_newest";
    static const char *const cols[] = {"from",
                                       "to",
                                       "policy",
                                       "capacity",
                                       "fill",
                                       "fill_pct",
                                       "high_water",
                                       "enqueued",
                                       "full_events",
                                       "dropped_newest",
                                       "dropped_stopped",
                                       "block_waits"};
    RF_OPS_TABLE_BEGIN(w, "rings", cols);
    for (uint32_t f = 0; f < g_view.workers; f++) {
        for (uint32_t t = 0; t < g_view.workers; t++) {
            rf_ring_stats s;
            if (!rf_engine_ring_stats_read(g_view.engine, f, t, &s))
                continue;
            const rf_ring_stats *b = &g_view.base_r[f * g_view.workers + t];
            rf_ops_cell_u64(w, f);
            rf_ops_cell_u64(w, t);
            rf_ops_cell_str(w, policy);
            rf_ops_cell_u64(w, s.capacity);
            rf_ops_cell_u64(w, s.fill);
            rf_ops_cell_f64(w, s.capacity ? 100.0 * s.fill / s.capacity : 0, 1);
            rf_ops_cell_u64(w, s.high_water);
            rf_ops_cell_u64(w, sub0(s.enqueued, b->enqueued));
            rf_ops_cell_u64(w, sub0(s.full_events, b->full_events));
            rf_ops_cell_u64(w, sub0(s.dropped_newest, b->dropped_newest));
            rf_ops_cell_u64(w, sub0(s.dropped_stopped, b->dropped_stopped));
            rf_ops_cell_u64(w, sub0(s.block_waits, b->block_waits));
        }
    }
    rf_ops_table_end(w);
    return 0;
}

/* ---- metrics registration ------------------------------------------------------ */

static metric_ctx *new_ctx(uint32_t a, uint32_t b, unsigned field)
{
    if (g_view.n_ctxs == g_view.cap_ctxs)
        return NULL; /* sized up front in attach: never grows (pointers stay valid) */
    metric_ctx *m = &g_view.ctxs[g_view.n_ctxs++];
    m->a = (uint16_t)a;
    m->b = (uint16_t)b;
    m->field = (uint16_t)field;
    return m;
}

static int keep_id(int id)
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

typedef struct metric_def {
    enum rf_metric_type type;
    const char *name, *help, *extra_labels;
    unsigned field;
} metric_def;

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

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int register_engine_metrics(void)
{
    char labels[RF_STATS_LABELS_MAX];
    int rc = 0;
    for (uint32_t i = 0; i < g_view.workers && rc >= 0; i++) {
        for (size_t k = 0; k < N_OF(worker_metrics) && rc >= 0; k++) {
            const metric_def *d = &worker_metrics[k];
            snprintf(labels, sizeof(labels), "worker=\"%u\"%s%s", i, d->extra_labels ? "," : "",
                     d->extra_labels ? d->extra_labels : "");
            metric_ctx *m = new_ctx(i, 0, d->field);
            /* Busy time is kept in ns; Prometheus wants seconds. */
            rf_stats_read_fn fn = read_worker_metric;
            rc = !m ? -ENOSPC
                 : d->field == WF_BUSY_NS
                     ? keep_id(rf_stats_register_fn_ns(d->type, d->name, d->help, labels, fn, m))
                     : keep_id(rf_stats_register_fn(d->type, d->name, d->help, labels, fn, m));
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
                metric_ctx *m = new_ctx(f, t, d->field);
                rc = m ? keep_id(rf_stats_register_fn(d->type, d->name, d->help, labels,
                                                      read_ring_metric, m))
                       : -ENOSPC;
            }
        }
    }
    return rc;
}

/* ---- show dpdk: ports (device statistics) and queues ------------------------------ */

enum pfield { PF_IPACKETS, PF_IBYTES, PF_IMISSED, PF_IERRORS, PF_RX_NOMBUF };

static uint64_t port_field(const rf_dpdk_port_stats *st, unsigned field)
{
    switch (field) {
    case PF_IPACKETS: return st->ipackets;
    case PF_IBYTES: return st->ibytes;
    case PF_IMISSED: return st->imissed;
    case PF_IERRORS: return st->ierrors;
    default: return st->rx_nombuf;
    }
}

/* A device read (rte_eth_stats_get) per metric: five per port and scrape,
 * on the control thread; cheap next to the scrape itself. A port whose
 * statistics cannot be read shows 0. */
static uint64_t read_port_metric(void *ctx)
{
    const metric_ctx *m = ctx;
    rf_dpdk_port_stats st;
    rf_err err;
    rf_err_clear(&err);
    if (rf_dpdk_port_stats_get(rf_engine_dpdk(g_view.engine), m->a, &st, &err) < 0)
        return 0;
    return port_field(&st, m->field);
}

static const metric_def port_metrics[] = {
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_ipackets",
     "Packets a DPDK port received (the device's count).", NULL, PF_IPACKETS},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_ibytes", "Bytes a DPDK port received.", NULL,
     PF_IBYTES},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_imissed",
     "Packets a DPDK port dropped because its RX queues were full (workers too slow).", NULL,
     PF_IMISSED},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_ierrors", "Erroneous packets a DPDK port received.",
     NULL, PF_IERRORS},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_rx_nombuf",
     "Receive failures of a DPDK port for want of an mbuf (pool too small).", NULL,
     PF_RX_NOMBUF},
};

static int show_dpdk(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show dpdk' takes no arguments (besides json)");
    rf_dpdk *d = g_view.engine ? rf_engine_dpdk(g_view.engine) : NULL;
    if (!d) {
        rf_ops_no_data(w, "dpdk_ports", "DPDK is not enabled, or did not start (see the log)");
        return 0;
    }
    static const char *const pcols[] = {"port", "name", "node", "pool_nodes", "queues",
                                        "ipackets", "ibytes", "imissed", "ierrors", "rx_nombuf",
                                        "error"};
    RF_OPS_TABLE_BEGIN(w, "dpdk_ports", pcols);
    for (unsigned p = 0; p < rf_dpdk_port_count(d); p++) {
        rf_dpdk_port_stats st;
        rf_err serr;
        rf_err_clear(&serr);
        bool ok = rf_dpdk_port_stats_get(d, p, &st, &serr) == 0;
        char nodes[128] = "";
        size_t off = 0;
        for (unsigned i = 0; i < rf_dpdk_port_pool_count(d, p) && off < sizeof(nodes); i++)
            off += (size_t)snprintf(nodes + off, sizeof(nodes) - off, "%s%d", i ? "," : "",
                                    rf_dpdk_port_pool_node(d, p, i));
        const rf_dpdk_port_stats *b = p < RF_DPDK_MAX_PORTS ? &g_view.base_port[p] : NULL;
        rf_ops_cell_u64(w, p);
        rf_ops_cell_str(w, rf_dpdk_port_name(d, p));
        rf_ops_cell_i64(w, rf_dpdk_port_numa_node(d, p));
        rf_ops_cell_str(w, nodes);
        rf_ops_cell_u64(w, rf_dpdk_queue_count(d, p));
        for (unsigned f = PF_IPACKETS; f <= PF_RX_NOMBUF; f++)
            rf_ops_cell_u64(w, ok ? sub0(port_field(&st, f), b ? port_field(b, f) : 0) : 0);
        rf_ops_cell_str(w, ok ? "" : serr.msg);
    }
    rf_ops_table_end(w);

    rf_ops_dpdk_queues_table(w, d);
    return 0;
}

void rf_ops_dpdk_queues_table(rf_ops_writer *w, rf_dpdk *d)
{
    unsigned queues = 0;
    for (unsigned p = 0; d && p < rf_dpdk_port_count(d); p++)
        queues += rf_dpdk_queue_count(d, p);
    if (!queues)
        return;
    static const char *const qcols[] = {"port", "queue", "worker", "node", "packets",
                                        "datagrams", "bytes", "dropped", "drops_by_reason"};
    RF_OPS_TABLE_BEGIN(w, "dpdk_queues", qcols);
    for (unsigned p = 0; p < rf_dpdk_port_count(d); p++) {
        for (unsigned q = 0; q < rf_dpdk_queue_count(d, p); q++) {
            const rf_dpdk_queue *dq = rf_dpdk_queue_at(d, p, q);
            char reasons[512];
            uint64_t dropped = rf_dpdk_queue_drops(dq, reasons, sizeof(reasons));
            rf_ops_cell_u64(w, p);
            rf_ops_cell_u64(w, q);
            rf_ops_cell_u64(w, q); /* queue q is polled by worker q (dpdk.h) */
            rf_ops_cell_i64(w, rf_dpdk_queue_numa_node(dq));
            rf_ops_cell_u64(w, rf_dpdk_queue_counter(dq, RF_DC_PACKETS));
            rf_ops_cell_u64(w, rf_dpdk_queue_counter(dq, RF_DC_DATAGRAMS));
            rf_ops_cell_u64(w, rf_dpdk_queue_counter(dq, RF_DC_BYTES));
            rf_ops_cell_u64(w, dropped);
            rf_ops_cell_str(w, reasons);
        }
    }
    rf_ops_table_end(w);
}

/* `show dpdk` and the ports' metrics (label port="<name>"). The show is
 * registered even without DPDK, so that it says why there is nothing. */
static int dpdk_attach(rf_engine *engine)
{
    int rc = rf_ops_register_show("dpdk",
                                  "DPDK ports (ipackets, imissed, ierrors, rx_nombuf) and queues",
                                  show_dpdk, NULL);
    if (rc < 0)
        return rc;
    g_view.dpdk_shown = true;
    rf_dpdk *d = rf_engine_dpdk(engine);
    for (unsigned p = 0; d && p < rf_dpdk_port_count(d) && rc >= 0; p++) {
        /* The port's name as a label value: backslash, quote, newline escaped. */
        char name[2 * RF_LISTENER_NAME_MAX], labels[RF_STATS_LABELS_MAX];
        size_t o = 0;
        for (const char *c = rf_dpdk_port_name(d, p); *c && o + 3 < sizeof(name); c++) {
            if (*c == '\\' || *c == '"' || *c == '\n')
                name[o++] = '\\';
            name[o++] = *c == '\n' ? 'n' : *c;
        }
        name[o] = '\0';
        snprintf(labels, sizeof(labels), "port=\"%s\"", name);
        for (size_t k = 0; k < N_OF(port_metrics) && rc >= 0; k++) {
            const metric_def *md = &port_metrics[k];
            metric_ctx *m = new_ctx(p, 0, md->field);
            rc = m ? keep_id(rf_stats_register_fn(md->type, md->name, md->help, labels,
                                                  read_port_metric, m))
                   : -ENOSPC;
        }
    }
    return rc < 0 ? rc : 0;
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
    g_view.base_r = calloc((size_t)n * n, sizeof(*g_view.base_r));
    g_view.cap_ctxs = (size_t)n * N_OF(worker_metrics) + (size_t)n * n * N_OF(ring_metrics) +
                      (size_t)RF_DPDK_MAX_PORTS * N_OF(port_metrics);
    g_view.ctxs = calloc(g_view.cap_ctxs, sizeof(*g_view.ctxs));
    g_view.attached = true;
    if (!g_view.samples || !g_view.base_w || !g_view.base_busy_ns || !g_view.base_polls ||
        !g_view.base_r || !g_view.ctxs) {
        rf_ops_engine_detach();
        return rf_err_set(err, ENOMEM, "ops: out of memory for the engine view");
    }
    int rc = 0;
    if ((rc = rf_ops_register_show("info", NULL, show_info, NULL)) < 0 ||
        (rc = rf_ops_register_show("workers", NULL, show_workers, NULL)) < 0 ||
        (rc = rf_ops_register_show("rings", NULL, show_rings, NULL)) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_uptime_seconds",
                                           "Seconds since ringflowd started.", NULL, read_uptime,
                                           NULL))) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "process_resident_memory_bytes",
                                           "Resident memory size in bytes.", NULL, read_rss,
                                           NULL))) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_build_info",
                                           "Always 1; the labels name the build.",
                                           "version=\"" RF_VERSION "\"", read_one, NULL))) < 0 ||
        (rc = keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_workers",
                                           "Worker threads running.", NULL, read_workers, NULL))) <
            0 ||
        (engine && (rc = register_engine_metrics()) < 0) ||
        (engine && (rc = memory_attach(engine)) < 0) ||
        (engine && (rc = dpdk_attach(engine)) < 0)) {
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
            ws->events_per_s = (double)sub0(events_in(&s), ws->events_in) / dt;
            double busy = (double)sub0(rs.busy_ns, ws->busy_ns) / (dt * 1e9) * 100.0;
            ws->busy_pct = busy > 100.0 ? 100.0 : busy;
        }
        ws->events_in = events_in(&s);
        ws->busy_ns = rs.busy_ns;
    }
    g_view.last_sample_ns = now;
    memory_sample();
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
