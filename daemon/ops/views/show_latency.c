/* `show latency`: the latency histograms registered in core/stats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ops/views/views_pvt.h"

/* Histograms with the same name and labels are one metric written by several
 * cores: merged here. Values since the last `clear counters`. */
int rf_views_show_latency(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show latency' takes no arguments (besides json)");
    rf_hist_snap *acc = malloc(sizeof(*acc)), *one = malloc(sizeof(*one));
    bool *done = calloc(RF_STATS_MAX_METRICS, sizeof(bool));
    if (!acc || !one || !done) {
        free(acc);
        free(one);
        free(done);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    static const char *const cols[] = {"histogram", "labels", "count",   "p50_us",
                                       "p90_us",    "p99_us", "p999_us", "max_us"};
    bool any = false;
    rf_stats_info a, b;
    for (int cur = 0; rf_stats_next(&cur, &a);) {
        if (a.type != RF_METRIC_HISTOGRAM || done[a.id])
            continue;
        if (!any) {
            RF_OPS_TABLE_BEGIN(w, "latency", cols);
            any = true;
        }
        rf_hist_snap_reset(acc);
        for (int cur2 = a.id; rf_stats_next(&cur2, &b);) {
            if (b.type != RF_METRIC_HISTOGRAM || strcmp(a.name, b.name) ||
                strcmp(a.labels, b.labels))
                continue;
            done[b.id] = true;
            rf_stats_hist_read(b.id, true, one);
            rf_hist_snap_merge(acc, one);
        }
        rf_ops_cell_str(w, a.name);
        rf_ops_cell_str(w, a.labels);
        rf_ops_cell_u64(w, acc->count);
        static const double qs[] = {0.5, 0.9, 0.99, 0.999};
        for (unsigned q = 0; q < 4; q++)
            rf_ops_cell_f64(w, (double)rf_hist_snap_quantile(acc, qs[q]) / 1e3, 3);
        rf_ops_cell_f64(w, (double)acc->max / 1e3, 3);
    }
    if (any)
        rf_ops_table_end(w);
    else
        rf_ops_no_data(w, "latency", "no latency histogram registered yet");
    free(acc);
    free(one);
    free(done);
    return 0;
}
