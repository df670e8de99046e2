/* `show rings`: per ring between two workers, its fill and counters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/ops/views/views_pvt.h"

int rf_views_show_rings(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
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
            RF_OPS_CELLS_U64(w, s.high_water, rf_views_sub0(s.enqueued, b->enqueued),
                             rf_views_sub0(s.full_events, b->full_events),
                             rf_views_sub0(s.dropped_newest, b->dropped_newest),
                             rf_views_sub0(s.dropped_stopped, b->dropped_stopped),
                             rf_views_sub0(s.block_waits, b->block_waits));
        }
    }
    rf_ops_table_end(w);
    return 0;
}
