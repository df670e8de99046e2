/* `show storage`: segments, bytes, per-shard writes and drops. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "storage/promapi/promapi.h"
#include "storage/store/store.h"

#include "daemon/ops/views/views_pvt.h"

int rf_views_show_storage(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = rf_views_no_args("storage", args, err);
    if (rc)
        return rc;
    rf_store *store = rf_engine_store(e);
    if (!store) {
        rf_ops_no_data(w, "storage", "storage is disabled (storage.enabled: false)");
        return 0;
    }
    rf_store_stats st;
    rf_store_stats_read(store, &st);
    rf_ops_obj_begin(w, "storage");
    rf_ops_kv_str(w, "dir", rf_engine_settings(e)->storage.dir);
    rf_ops_kv_u64(w, "segments", st.segments);
    rf_ops_kv_u64(w, "bytes", st.bytes);
    rf_ops_kv_u64(w, "segments_removed_by_retention", st.segments_removed);
    rf_ops_kv_u64(w, "bytes_removed_by_retention", st.bytes_removed);
    rf_ops_kv_u64(w, "recovery_segments_scanned", st.recovery.segments_open);
    rf_ops_kv_u64(w, "recovery_tail_bytes_cut", st.recovery.tail_bytes_cut);
    rf_ops_kv_u64(w, "recovery_corrupt_regions", st.recovery.corrupt_regions);
    rf_ops_kv_u64(w, "recovery_segments_quarantined", st.recovery.segments_quarantined);
    rf_ops_obj_end(w);

    /* The Prometheus query API: its limits (storage.query) and refusals. */
    const rf_query_settings *qs = &rf_engine_settings(e)->storage.query;
    rf_promapi_counters qc;
    rf_promapi_counters_read(&qc);
    rf_ops_obj_begin(w, "query");
    rf_ops_kv_u64(w, "timeout_ms", (uint64_t)(qs->timeout_ns / 1000000));
    rf_ops_kv_u64(w, "max_samples", qs->max_samples);
    rf_ops_kv_u64(w, "max_series", qs->max_series);
    rf_ops_kv_u64(w, "index_memory_limit", qs->index_memory);
    rf_ops_kv_u64(w, "index_bytes", qc.index_bytes);
    rf_ops_kv_u64(w, "requests", qc.requests);
    rf_ops_kv_u64(w, "queries", qc.queries);
    rf_ops_kv_u64(w, "errors", qc.errors);
    rf_ops_kv_u64(w, "refused_timeout", qc.timeouts);
    rf_ops_kv_u64(w, "refused_max_samples", qc.too_many_samples);
    rf_ops_kv_u64(w, "refused_max_series", qc.too_many_series);
    rf_ops_kv_u64(w, "refused_queue_full", qc.queue_full);
    rf_ops_kv_u64(w, "samples", qc.samples);
    rf_ops_kv_u64(w, "head_reads", qc.head_reads);
    rf_ops_kv_u64(w, "head_series", qc.head_series);
    rf_ops_kv_u64(w, "head_incomplete", qc.head_incomplete);
    rf_ops_obj_end(w);

    static const char *const cols[] = {"shard",
                                       "series",
                                       "points_appended",
                                       "points_buffered",
                                       "blocks_written",
                                       "bytes_written",
                                       "fsyncs",
                                       "dropped_backpressure",
                                       "dropped_io_error",
                                       "write_errors",
                                       "dropped_io_error_points",
                                       "write_errors_by_errno",
                                       "state",
                                       "degraded_since",
                                       "recoveries",
                                       "last_error",
                                       "blocks_cut_by_memory",
                                       "buffer_bytes"};
    RF_OPS_TABLE_BEGIN(w, "storage_shards", cols);
    for (uint32_t i = 0; i < rf_store_shards(store); i++) {
        rf_store_shard_stats ss;
        rf_store_shard_io_status io;
        rf_store_shard_stats_read(rf_store_shard_get(store, i), &ss);
        rf_store_shard_io_status_read(rf_store_shard_get(store, i), &io);
        char by_errno[128] = "", since[40] = "";
        const struct {
            const char *name;
            uint64_t n;
        } errs[] = {{"ENOSPC", io.write_errors_enospc},
                    {"EDQUOT", io.write_errors_edquot},
                    {"EROFS", io.write_errors_erofs},
                    {"EIO", io.write_errors_eio},
                    {"other", io.write_errors_other}};
        size_t len = 0;
        for (size_t k = 0; k < sizeof(errs) / sizeof(errs[0]) && len < sizeof(by_errno); k++)
            if (errs[k].n)
                len += (size_t)snprintf(by_errno + len, sizeof(by_errno) - len, "%s%s=%lu",
                                        len ? "," : "", errs[k].name, (unsigned long)errs[k].n);
        if (io.state == RF_STORE_IO_DEGRADED && io.degraded_since_ns)
            rf_clock_format_rfc3339(io.degraded_since_ns, since, sizeof(since));
        RF_OPS_CELLS_U64(w, i, ss.series, ss.points_appended, ss.points_buffered, ss.blocks_written,
                         ss.bytes_written, ss.fsyncs, ss.dropped_backpressure, ss.dropped_io_error,
                         ss.write_errors, io.dropped_io_error_points);
        rf_ops_cell_str(w, by_errno);
        rf_ops_cell_str(w, rf_store_io_health_name(io.state));
        rf_ops_cell_str(w, since);
        rf_ops_cell_u64(w, io.recoveries);
        rf_ops_cell_str(w, io.last_error);
        rf_ops_cell_u64(w, ss.blocks_cut_by_memory);
        rf_ops_cell_u64(w, ss.buffer_bytes);
    }
    rf_ops_table_end(w);
    return 0;
}
