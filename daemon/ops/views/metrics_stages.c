/* The stages' own counters on /metrics: the StatsD flusher's intervals and
 * what it could not apply, and the alert stage's rule-wide reports. Read
 * through the pipeline at each scrape (rf_pipeline_statsd_read,
 * rf_pipeline_alerts_read: not the whole rf_pipeline_stages_read), since a
 * reload replaces the alert stage; the pipeline's peer-message counters are
 * registered by the pipeline itself (stages/pipeline/pipeline.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/worker_shard.h"
#include "stages/pipeline/pipeline.h"

#include "daemon/ops/views/views_pvt.h"

enum stage_field {
    SF_STATSD_SAMPLES,
    SF_STATSD_RAW_REMOVED,
    SF_STATSD_INVALID,
    SF_STATSD_NO_MEMORY,
    SF_STATSD_FLUSHES,
    SF_STATSD_VALUES,
    SF_STATSD_SERIES_DEFS,
    SF_STATSD_SKETCHED,
    SF_STATSD_HLL,
    SF_STATSD_STATES,
    SF_STATSD_MEMORY_CAPPED,
    SF_STATSD_HELD_BYTES,
    SF_ALERT_REPORTS_SENT,
    SF_ALERT_REPORTS_RECEIVED,
    SF_ALERT_REPORTS_LATE,
    SF_ALERT_REPORTS_UNKNOWN,
    SF_STAGE__COUNT
};

static const metric_def stage_metric_defs[SF_STAGE__COUNT] = {
    {RF_METRIC_COUNTER, "ringflow_statsd_samples", "StatsD samples the flusher took.", NULL,
     SF_STATSD_SAMPLES},
    {RF_METRIC_COUNTER, "ringflow_statsd_raw_samples_removed",
     "StatsD samples taken out of the batch after their state was updated (keep_raw off).", NULL,
     SF_STATSD_RAW_REMOVED},
    {RF_METRIC_COUNTER, "ringflow_statsd_samples_dropped", "StatsD samples not applied, by reason.",
     "reason=\"invalid_value\"", SF_STATSD_INVALID},
    {RF_METRIC_COUNTER, "ringflow_statsd_samples_dropped", "StatsD samples not applied, by reason.",
     "reason=\"no_memory\"", SF_STATSD_NO_MEMORY},
    {RF_METRIC_COUNTER, "ringflow_statsd_flushes", "StatsD intervals flushed.", NULL,
     SF_STATSD_FLUSHES},
    {RF_METRIC_COUNTER, "ringflow_statsd_values_flushed", "Values the StatsD flushes emitted.",
     NULL, SF_STATSD_VALUES},
    {RF_METRIC_COUNTER, "ringflow_statsd_series_announced",
     "Output series the StatsD flusher announced.", NULL, SF_STATSD_SERIES_DEFS},
    {RF_METRIC_COUNTER, "ringflow_statsd_timer_intervals_sketched",
     "Timer intervals past timer_max_values: percentiles from a DDSketch.", NULL,
     SF_STATSD_SKETCHED},
    {RF_METRIC_COUNTER, "ringflow_statsd_set_intervals_estimated",
     "Set intervals past set_max_exact: distinct count from HyperLogLog.", NULL, SF_STATSD_HLL},
    {RF_METRIC_GAUGE, "ringflow_statsd_series", "StatsD series with a state.", NULL,
     SF_STATSD_STATES},
    {RF_METRIC_COUNTER, "ringflow_statsd_memory_capped",
     "StatsD flusher allocations refused by pipeline.statsd.max_memory.", NULL,
     SF_STATSD_MEMORY_CAPPED},
    {RF_METRIC_GAUGE, "ringflow_statsd_held_bytes",
     "Bytes the StatsD flusher holds, against pipeline.statsd.max_memory.", NULL,
     SF_STATSD_HELD_BYTES},
    {RF_METRIC_COUNTER, "ringflow_alert_reports_sent",
     "Rule-wide alert reports sent to their owner (own worker included).", NULL,
     SF_ALERT_REPORTS_SENT},
    {RF_METRIC_COUNTER, "ringflow_alert_reports_received",
     "Rule-wide alert reports applied here as the owner.", NULL, SF_ALERT_REPORTS_RECEIVED},
    {RF_METRIC_COUNTER, "ringflow_alert_reports_late",
     "Rule-wide alert reports applied later than the allowance.", NULL, SF_ALERT_REPORTS_LATE},
    {RF_METRIC_COUNTER, "ringflow_alert_reports_dropped",
     "Rule-wide alert reports dropped, by reason.", "reason=\"unknown_rule\"",
     SF_ALERT_REPORTS_UNKNOWN},
};

typedef struct stage_metric {
    const rf_pipeline *p;
    unsigned field;
} stage_metric;

static struct {
    stage_metric *m;
    int *ids;
    size_t n;
} g_stage_m;

static uint64_t read_stage_metric(void *ctx)
{
    const stage_metric *m = ctx;
    rf_statsd_stats sd_st;
    rf_alerts_stats al_st;
    const rf_statsd_stats *sd = &sd_st;
    const rf_alerts_stats *al = &al_st;
    if (m->field < SF_ALERT_REPORTS_SENT)
        rf_pipeline_statsd_read(m->p, &sd_st);
    else
        rf_pipeline_alerts_read(m->p, &al_st);
    switch (m->field) {
    case SF_STATSD_SAMPLES: return sd->samples;
    case SF_STATSD_RAW_REMOVED: return sd->raw_dropped;
    case SF_STATSD_INVALID: return sd->invalid;
    case SF_STATSD_NO_MEMORY: return sd->no_memory;
    case SF_STATSD_FLUSHES: return sd->flushes;
    case SF_STATSD_VALUES: return sd->values;
    case SF_STATSD_SERIES_DEFS: return sd->series_defs;
    case SF_STATSD_SKETCHED: return sd->sketched;
    case SF_STATSD_HLL: return sd->hll_sets;
    case SF_STATSD_STATES: return sd->states;
    case SF_STATSD_MEMORY_CAPPED: return sd->memory_capped;
    case SF_STATSD_HELD_BYTES: return sd->held_bytes;
    case SF_ALERT_REPORTS_SENT: return al->reports_sent;
    case SF_ALERT_REPORTS_RECEIVED: return al->reports_received;
    case SF_ALERT_REPORTS_LATE: return al->reports_late;
    default: return al->reports_unknown;
    }
}

int rf_views_stage_metrics_register(rf_engine *e)
{
    size_t cap = (size_t)rf_engine_workers(e) * SF_STAGE__COUNT;
    g_stage_m.m = calloc(cap ? cap : 1, sizeof(*g_stage_m.m));
    g_stage_m.ids = calloc(cap ? cap : 1, sizeof(int));
    if (!g_stage_m.m || !g_stage_m.ids)
        return -ENOMEM;
    char labels[RF_STATS_LABELS_MAX];
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        for (size_t k = 0; k < N_OF(stage_metric_defs); k++) {
            const metric_def *d = &stage_metric_defs[k];
            snprintf(labels, sizeof(labels), "worker=\"%u\"%s%s", wi, d->extra_labels ? "," : "",
                     d->extra_labels ? d->extra_labels : "");
            stage_metric *m = &g_stage_m.m[g_stage_m.n];
            *m = (stage_metric){.p = p, .field = d->field};
            int id = rf_stats_register_fn(d->type, d->name, d->help, labels, read_stage_metric, m);
            if (id < 0)
                return id;
            g_stage_m.ids[g_stage_m.n++] = id;
        }
    }
    return 0;
}

void rf_views_stage_metrics_unregister(void)
{
    for (size_t i = 0; i < g_stage_m.n; i++)
        rf_stats_unregister(g_stage_m.ids[i]);
    free(g_stage_m.m);
    free(g_stage_m.ids);
    memset(&g_stage_m, 0, sizeof(g_stage_m));
}
