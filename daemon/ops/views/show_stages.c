/* `show stages`: per worker, series and the stages' counters; per sink,
 * what it took, wrote and dropped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/pipeline/pipeline.h"
#include "daemon/worker_shard.h"

#include "daemon/ops/views/views_pvt.h"

/* Worker wi's pipeline and stage counters. */
static void read_worker(rf_engine *e, uint32_t wi, rf_pipeline_stats *ps,
                        rf_pipeline_stage_stats *st)
{
    const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
    rf_pipeline_stats_read(p, ps);
    rf_pipeline_stages_read(p, st);
}

int rf_views_show_stages(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = rf_views_no_args("stages", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {
        "worker",          "series",      "series_rejected",  "processed",     "unknown_series",
        "unrouted",        "to_critical", "to_standard",      "to_store",      "store_rejected",
        "routed",          "agg_applied", "agg_late_dropped", "agg_windows",   "alerts_fired",
        "alerts_resolved", "corr_open",   "corr_forwarded",   "corr_received", "corr_stale"};
    RF_OPS_TABLE_BEGIN(w, "stages", cols);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        rf_pipeline_stats ps;
        rf_pipeline_stage_stats st;
        read_worker(e, wi, &ps, &st);
        RF_OPS_CELLS_U64(w, wi, st.series.count, ps.series_rejected, ps.processed,
                         ps.unknown_series, ps.unrouted, ps.to_critical_sinks, ps.to_standard_sinks,
                         ps.to_store, ps.store_rejected, st.router.routed, st.aggregation.applied,
                         st.aggregation.late_dropped, st.aggregation.windows_emitted,
                         st.alerts.fired, st.alerts.resolved, st.correlation.id_open,
                         st.correlation.forwarded, st.correlation.received,
                         st.correlation.peer_stale + st.correlation.peer_malformed);
    }
    rf_ops_table_end(w);

    /* Peer messages between the workers' stages and the rule-wide alert
     * reports they carry; the StatsD flusher's intervals. */
    static const char *const pcols[] = {"worker",
                                        "peer_sent",
                                        "peer_received",
                                        "peer_unhandled",
                                        "peer_undeliverable",
                                        "alert_reports_sent",
                                        "alert_reports_received",
                                        "alert_reports_late",
                                        "alert_reports_unknown"};
    RF_OPS_TABLE_BEGIN(w, "peers", pcols);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        rf_pipeline_stats ps;
        rf_pipeline_stage_stats st;
        read_worker(e, wi, &ps, &st);
        RF_OPS_CELLS_U64(w, wi, ps.peer_sent, ps.peer_received, ps.peer_unhandled,
                         ps.peer_undeliverable, st.alerts.reports_sent, st.alerts.reports_received,
                         st.alerts.reports_late, st.alerts.reports_unknown);
    }
    rf_ops_table_end(w);
    static const char *const dcols[] = {
        "worker",    "samples",     "raw_removed", "invalid",  "no_memory",         "flushes",
        "values",    "series_defs", "sketched",    "hll_sets", "series_with_state", "memory_capped",
        "held_bytes"};
    RF_OPS_TABLE_BEGIN(w, "statsd", dcols);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        rf_pipeline_stage_stats st;
        rf_pipeline_stages_read(rf_shard_pipeline(rf_engine_shard(e, wi)), &st);
        const rf_statsd_stats *sd = &st.statsd;
        RF_OPS_CELLS_U64(w, wi, sd->samples, sd->raw_dropped, sd->invalid, sd->no_memory,
                         sd->flushes, sd->values, sd->series_defs, sd->sketched, sd->hll_sets,
                         sd->states, sd->memory_capped, sd->held_bytes);
    }
    rf_ops_table_end(w);

    static const char *const scols[] = {"worker",
                                        "sink",
                                        "accepted",
                                        "lines_out",
                                        "bytes_out",
                                        "dropped_queue_full",
                                        "dropped_disconnected",
                                        "dropped_other",
                                        "state"};
    static const char *const states[] = {"disconnected", "connecting", "connected", "breaker_open"};
    RF_OPS_TABLE_BEGIN(w, "sinks", scols);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        for (uint32_t j = 0; j < rf_pipeline_sink_count(p); j++) {
            const rf_sink *sk = rf_pipeline_sink(p, j);
            if (!sk)
                continue; /* store sinks: see `show storage` */
            rf_sink_stats ss;
            rf_sink_stats_read(sk, &ss);
            rf_ops_cell_u64(w, wi);
            rf_ops_cell_str(w, rf_sink_name(sk));
            RF_OPS_CELLS_U64(w, ss.accepted, ss.lines_out, ss.bytes_out, ss.drop_queue_full,
                             ss.drop_disconnected,
                             ss.drop_unsupported + ss.drop_oversize + ss.drop_io_error);
            /* A connection state is a forwarder's; a file or counting sink
             * has none (it read as "disconnected"). */
            const enum rf_sink_type t = rf_sink_type_of(sk);
            const bool forwarder = t == RF_SINK_LP_UDP || t == RF_SINK_LP_TCP;
            rf_ops_cell_str(w, !forwarder ? "-" : ss.state < 4 ? states[ss.state] : "?");
        }
    }
    rf_ops_table_end(w);
    return 0;
}
