/* Storage on /metrics: writes, write errors, losses, degraded state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store/store.h"

#include "daemon/ops/views/views_pvt.h"

enum storage_field {
    SF_POINTS_APPENDED,
    SF_BLOCKS_WRITTEN,
    SF_BYTES_WRITTEN,
    SF_DROPPED_BACKPRESSURE,
    SF_DROPPED_IO_BLOCKS,
    SF_DROPPED_IO_POINTS,
    SF_WERR_ENOSPC,
    SF_WERR_EDQUOT,
    SF_WERR_EROFS,
    SF_WERR_EIO,
    SF_WERR_OTHER,
    SF_RECOVERIES,
    SF_DEGRADED,
    SF_CUT_BY_MEMORY,
    SF_BUFFER_BYTES,
    SF__COUNT
};

static const struct {
    enum rf_metric_type type;
    const char *name, *help, *extra_labels;
} storage_metric_defs[SF__COUNT] = {
    [SF_POINTS_APPENDED] = {RF_METRIC_COUNTER, "ringflow_storage_points_appended",
                            "Points a storage shard took into its buffers.", NULL},
    [SF_BLOCKS_WRITTEN] = {RF_METRIC_COUNTER, "ringflow_storage_blocks_written",
                           "Blocks a storage shard's writes completed for.", NULL},
    [SF_BYTES_WRITTEN] = {RF_METRIC_COUNTER, "ringflow_storage_bytes_written",
                          "Bytes a storage shard wrote to its segments.", NULL},
    [SF_DROPPED_BACKPRESSURE] = {RF_METRIC_COUNTER, "ringflow_storage_dropped_backpressure_points",
                                 "Points dropped because their series' buffer was full.", NULL},
    [SF_DROPPED_IO_BLOCKS] = {RF_METRIC_COUNTER, "ringflow_storage_dropped_io_error_blocks",
                              "Blocks lost to write errors.", NULL},
    [SF_DROPPED_IO_POINTS] = {RF_METRIC_COUNTER, "ringflow_storage_dropped_io_error_points",
                              "Points in the blocks lost to write errors.", NULL},
    [SF_WERR_ENOSPC] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                        "Failed writes, fdatasyncs, creates and footers, by errno.",
                        "errno=\"ENOSPC\""},
    [SF_WERR_EDQUOT] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                        "Failed writes, fdatasyncs, creates and footers, by errno.",
                        "errno=\"EDQUOT\""},
    [SF_WERR_EROFS] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                       "Failed writes, fdatasyncs, creates and footers, by errno.",
                       "errno=\"EROFS\""},
    [SF_WERR_EIO] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                     "Failed writes, fdatasyncs, creates and footers, by errno.", "errno=\"EIO\""},
    [SF_WERR_OTHER] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                       "Failed writes, fdatasyncs, creates and footers, by errno.",
                       "errno=\"other\""},
    [SF_RECOVERIES] = {RF_METRIC_COUNTER, "ringflow_storage_recoveries",
                       "Times a degraded storage shard wrote again.", NULL},
    [SF_DEGRADED] = {RF_METRIC_GAUGE, "ringflow_storage_degraded",
                     "1 while a storage shard drops blocks after a write error and retries.", NULL},
    [SF_CUT_BY_MEMORY] = {RF_METRIC_COUNTER, "ringflow_storage_blocks_cut_by_memory",
                          "Blocks cut early: growing their buffer would have passed "
                          "storage.buffer_memory.",
                          NULL},
    [SF_BUFFER_BYTES] = {RF_METRIC_GAUGE, "ringflow_storage_buffer_bytes",
                         "Bytes of series point buffers a storage shard holds.", NULL},
};

typedef struct storage_metric {
    const rf_store_shard *shard;
    enum storage_field field;
} storage_metric;

static struct {
    storage_metric *m;
    int *ids;
    size_t n;
} g_storage_m;

static uint64_t read_storage_metric(void *ctx)
{
    const storage_metric *m = ctx;
    rf_store_shard_stats ss;
    rf_store_shard_io_status io;
    rf_store_shard_stats_read(m->shard, &ss);
    rf_store_shard_io_status_read(m->shard, &io);
    switch (m->field) {
    case SF_POINTS_APPENDED: return ss.points_appended;
    case SF_BLOCKS_WRITTEN: return ss.blocks_written;
    case SF_BYTES_WRITTEN: return ss.bytes_written;
    case SF_DROPPED_BACKPRESSURE: return ss.dropped_backpressure;
    case SF_DROPPED_IO_BLOCKS: return ss.dropped_io_error;
    case SF_DROPPED_IO_POINTS: return io.dropped_io_error_points;
    case SF_WERR_ENOSPC: return io.write_errors_enospc;
    case SF_WERR_EDQUOT: return io.write_errors_edquot;
    case SF_WERR_EROFS: return io.write_errors_erofs;
    case SF_WERR_EIO: return io.write_errors_eio;
    case SF_WERR_OTHER: return io.write_errors_other;
    case SF_RECOVERIES: return io.recoveries;
    case SF_CUT_BY_MEMORY: return ss.blocks_cut_by_memory;
    case SF_BUFFER_BYTES: return ss.buffer_bytes;
    default: return io.state == RF_STORE_IO_DEGRADED;
    }
}

int rf_views_storage_metrics_register(rf_engine *e)
{
    rf_store *store = rf_engine_store(e);
    if (!store)
        return 0;
    size_t cap = (size_t)rf_store_shards(store) * SF__COUNT;
    g_storage_m.m = calloc(cap, sizeof(*g_storage_m.m));
    g_storage_m.ids = calloc(cap, sizeof(int));
    if (!g_storage_m.m || !g_storage_m.ids)
        return -ENOMEM;
    for (uint32_t i = 0; i < rf_store_shards(store); i++) {
        for (int f = 0; f < SF__COUNT; f++) {
            char labels[RF_STATS_LABELS_MAX];
            const char *x = storage_metric_defs[f].extra_labels;
            snprintf(labels, sizeof(labels), "shard=\"%u\"%s%s", i, x ? "," : "", x ? x : "");
            storage_metric *m = &g_storage_m.m[g_storage_m.n];
            m->shard = rf_store_shard_get(store, i);
            m->field = (enum storage_field)f;
            int id =
                rf_stats_register_fn(storage_metric_defs[f].type, storage_metric_defs[f].name,
                                     storage_metric_defs[f].help, labels, read_storage_metric, m);
            if (id < 0)
                return id;
            g_storage_m.ids[g_storage_m.n++] = id;
        }
    }
    return 0;
}

void rf_views_storage_metrics_unregister(void)
{
    for (size_t i = 0; i < g_storage_m.n; i++)
        rf_stats_unregister(g_storage_m.ids[i]);
    free(g_storage_m.m);
    free(g_storage_m.ids);
    memset(&g_storage_m, 0, sizeof(g_storage_m));
}
