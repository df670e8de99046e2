/* `show workers`: per worker, its state, CPU, rates and counters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/ops/views/views_pvt.h"

int rf_views_show_workers(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
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
                                       "spins_cut",
                                       "peer_sent",
                                       "peer_received",
                                       "peer_dropped_backlog",
                                       "peer_backlog",
                                       "spread_handed",
                                       "spread_handed_bytes",
                                       "spread_local",
                                       "spread_local_bytes",
                                       "spread_taken",
                                       "spread_taken_bytes",
                                       "spread_no_buffer",
                                       "spread_orphaned",
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
        RF_OPS_CELLS_U64(w, rf_views_sub0(s.events_parsed, b->events_parsed),
                         rf_views_sub0(s.events_from_peers, b->events_from_peers),
                         rf_views_sub0(s.events_processed, b->events_processed),
                         rf_views_sub0(s.sent_to_peers, b->sent_to_peers),
                         rf_views_sub0(s.dropped_ring_full, b->dropped_ring_full),
                         rf_views_sub0(s.dropped_unknown_series, b->dropped_unknown_series),
                         rf_views_sub0(s.block_waits, b->block_waits),
                         rf_views_sub0(s.critical_events, b->critical_events),
                         rf_views_sub0(s.critical_from_peers, b->critical_from_peers),
                         rf_views_sub0(rs.polls, g_view.base_polls[i]),
                         rf_views_sub0(rs.spins_cut, g_view.base_spins_cut[i]),
                         rf_views_sub0(s.peer_sent, b->peer_sent),
                         rf_views_sub0(s.peer_received, b->peer_received),
                         rf_views_sub0(s.peer_dropped_backlog, b->peer_dropped_backlog),
                         s.peer_backlog); /* a level now: no baseline */
        RF_OPS_CELLS_U64(w, rf_views_sub0(s.spread_handed_chunks, b->spread_handed_chunks),
                         rf_views_sub0(s.spread_handed_bytes, b->spread_handed_bytes),
                         rf_views_sub0(s.spread_local_chunks, b->spread_local_chunks),
                         rf_views_sub0(s.spread_local_bytes, b->spread_local_bytes),
                         rf_views_sub0(s.spread_taken_chunks, b->spread_taken_chunks),
                         rf_views_sub0(s.spread_taken_bytes, b->spread_taken_bytes),
                         rf_views_sub0(s.spread_no_buffer, b->spread_no_buffer),
                         rf_views_sub0(s.spread_orphaned, b->spread_orphaned));
        /* The reason is only meaningful once the component stopped or failed. */
        char reason[RF_COMPONENT_REASON_MAX] = "";
        if (c && (st == RF_STATE_FAILED || st == RF_STATE_STOPPED))
            rf_component_reason(c, reason, sizeof(reason));
        rf_ops_cell_str(w, reason);
    }
    rf_ops_table_end(w);
    return 0;
}
