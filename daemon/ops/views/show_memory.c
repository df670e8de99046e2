/* `show memory` and the memory metrics: engine.memory_limit against resident
 * memory, sampled once a second, and the configuration's worst case part by
 * part (daemon/memory_budget.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log/log.h"

#include "daemon/ops/views/views_pvt.h"
#include "core/mem/mem.h"

struct rf_views_memory g_mem;

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
int rf_views_show_memory(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show memory' takes no arguments (besides json)");
    rf_ops_obj_begin(w, "memory");
    rf_ops_kv_u64(w, "limit_bytes", g_mem.limit);
    rf_ops_kv_u64(w, "worst_case_bytes", g_mem.worst);
    rf_ops_kv_u64(w, "rss_bytes", rf_mem_rss_bytes());
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
void rf_views_memory_sample(void)
{
    if (g_mem.attached && g_view.engine) {
        rf_memory_budget_compute(rf_engine_settings(g_view.engine), &g_mem.budget);
        g_mem.worst = g_mem.budget.total;
    }
    g_mem.rss = rf_mem_rss_bytes();
    if (g_mem.rss > g_mem.rss_peak)
        g_mem.rss_peak = g_mem.rss;
    rf_component *c = g_mem.component;
    if (!c)
        return;
    const bool over = g_mem.limit && g_mem.rss > g_mem.limit;
    if (g_view.engine)
        rf_engine_set_memory_over(g_view.engine, over);
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

int rf_views_memory_attach(rf_engine *engine)
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
    rf_log_info("engine",
                "memory: worst case of this configuration %s (largest part: %s %s), "
                "engine.memory_limit %s",
                rf_memory_format(g_mem.worst, a, sizeof(a)),
                g_mem.budget.n ? g_mem.budget.parts[0].name : "-",
                g_mem.budget.n ? rf_memory_format(g_mem.budget.parts[0].bytes, b, sizeof(b)) : "",
                g_mem.limit ? rf_memory_format(g_mem.limit, l, sizeof(l)) : "none (0)");
    rf_views_memory_sample();
    int rc;
    if ((rc = rf_ops_register_show("memory",
                                   "the memory limit, resident memory and the worst "
                                   "case part by part",
                                   rf_views_show_memory, NULL)) < 0 ||
        (rc = rf_views_keep_id(rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_memory_limit_bytes",
                                                    "engine.memory_limit (0: none).", NULL,
                                                    read_mem, (void *)(intptr_t)0))) < 0 ||
        (rc = rf_views_keep_id(rf_stats_register_fn(RF_METRIC_GAUGE,
                                                    "ringflow_memory_worst_case_bytes",
                                                    "The most memory this configuration can need, "
                                                    "computed part by part.",
                                                    NULL, read_mem, (void *)(intptr_t)1))) < 0 ||
        (rc = rf_views_keep_id(
             rf_stats_register_fn(RF_METRIC_GAUGE, "ringflow_memory_rss_peak_bytes",
                                  "Largest resident memory sampled (once a second).", NULL,
                                  read_mem, (void *)(intptr_t)2))) < 0 ||
        (rc = rf_views_keep_id(rf_stats_register_fn(RF_METRIC_COUNTER,
                                                    "ringflow_memory_over_limit_seconds",
                                                    "Seconds resident memory was sampled above "
                                                    "engine.memory_limit.",
                                                    NULL, read_mem, (void *)(intptr_t)3))) < 0)
        return rc;
    return 0;
}
