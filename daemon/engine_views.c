/* The engine's `show` providers for the stats socket: listeners, errors,
 * stages, storage and series; and the listeners' parser counters on
 * /metrics. Each reads counters that one worker (or the store's I/O thread)
 * writes, with relaxed loads, on the control thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/stats/stats.h"
#include "daemon/engine.h"
#include "daemon/ops/ops.h"
#include "daemon/pipeline.h"
#include "daemon/shard.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"
#include "storage/store/store.h"

static int no_args(const char *name, const char *args, rf_err *err)
{
    if (args && *args)
        return rf_err_set(err, EINVAL, "'show %s' takes no arguments", name);
    return 0;
}

/* ---- listeners ---------------------------------------------------------- */

static int show_listeners(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("listeners", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {
        "worker",     "listener",   "protocol",      "transport",     "datagrams",
        "reads",      "bytes",      "lines_ok",      "events",        "series_defs",
        "rejected",   "timestamps_clamped", "kernel_drops", "connections", "conn_refused",
        "lines_too_long", "enobufs", "rejects_by_reason"};
    rf_ops_table_begin(w, "listeners", cols, 18);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            const rf_parse_ctx *pc = rf_shard_input_parser(s, i);
            const rf_listener *l = rf_shard_input_listener(s, i);
            char reasons[512] = "";
            size_t len = 0;
            for (int r = 0; r < RF_REJ__COUNT && len < sizeof(reasons); r++) {
                uint64_t n = rf_parse_reject_count(pc, (enum rf_reject_reason)r);
                if (n)
                    len += (size_t)snprintf(reasons + len, sizeof(reasons) - len, "%s%s=%lu",
                                            len ? "," : "", rf_reject_reason_name(r),
                                            (unsigned long)n);
            }
            uint64_t kdrops = 0;
            const char *proto = "-", *transport = "dpdk", *name = "dpdk";
            if (l) {
                const rf_listener_config *lc = rf_listener_config_of(l);
                name = rf_listener_name(l);
                proto = rf_listen_protocol_name(lc->protocol);
                transport = rf_listen_transport_name(lc->transport);
                kdrops = rf_listener_counter(l, RF_LC_KERNEL_DROPS);
                uint64_t proc_drops;
                if (lc->transport == RF_LISTEN_UDP && rf_listener_proc_drops(l, &proc_drops) == 0 &&
                    proc_drops > kdrops)
                    kdrops = proc_drops;
            }
            rf_ops_cell_u64(w, wi);
            rf_ops_cell_str(w, name);
            rf_ops_cell_str(w, proto);
            rf_ops_cell_str(w, transport);
            rf_ops_cell_u64(w, l ? rf_listener_counter(l, RF_LC_DATAGRAMS) : 0);
            rf_ops_cell_u64(w, l ? rf_listener_counter(l, RF_LC_READS) : 0);
            rf_ops_cell_u64(w, l ? rf_listener_counter(l, RF_LC_BYTES) : 0);
            rf_ops_cell_u64(w, rf_parse_counter(pc, RF_PC_LINES_OK));
            rf_ops_cell_u64(w, rf_parse_counter(pc, RF_PC_EVENTS));
            rf_ops_cell_u64(w, rf_parse_counter(pc, RF_PC_SERIES_DEFS));
            rf_ops_cell_u64(w, rf_parse_counter(pc, RF_PC_LINES_REJECTED));
            rf_ops_cell_u64(w, rf_parse_counter(pc, RF_PC_TIMESTAMPS_CLAMPED));
            rf_ops_cell_u64(w, kdrops);
            rf_ops_cell_u64(w, l ? rf_listener_connections(l) : 0);
            rf_ops_cell_u64(w, l ? rf_listener_counter(l, RF_LC_CONN_REFUSED) : 0);
            rf_ops_cell_u64(w, l ? rf_listener_counter(l, RF_LC_LINES_TOO_LONG) : 0);
            rf_ops_cell_u64(w, l ? rf_listener_counter(l, RF_LC_ENOBUFS) : 0);
            rf_ops_cell_str(w, reasons);
        }
    }
    rf_ops_table_end(w);

    /* DPDK queues, when any: packets and drops by reason. */
    uint32_t queues = 0;
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++)
        queues += rf_shard_dpdk_queue_count(rf_engine_shard(e, wi));
    if (queues) {
        static const char *const qcols[] = {"worker", "queue", "packets", "datagrams", "bytes",
                                            "dropped", "drops_by_reason"};
        rf_ops_table_begin(w, "dpdk_queues", qcols, 7);
        for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
            const rf_shard *s = rf_engine_shard(e, wi);
            for (uint32_t q = 0; q < rf_shard_dpdk_queue_count(s); q++) {
                const rf_dpdk_queue *dq = rf_shard_dpdk_queue(s, q);
                char reasons[512] = "";
                size_t len = 0;
                uint64_t dropped = 0;
                for (int c = RF_DC_DROP_FIRST; c < RF_DC__COUNT && len < sizeof(reasons); c++) {
                    uint64_t n = rf_dpdk_queue_counter(dq, (enum rf_dpdk_counter_id)c);
                    dropped += n;
                    if (n)
                        len += (size_t)snprintf(reasons + len, sizeof(reasons) - len, "%s%s=%lu",
                                                len ? "," : "",
                                                rf_dpdk_counter_name((enum rf_dpdk_counter_id)c),
                                                (unsigned long)n);
                }
                rf_ops_cell_u64(w, wi);
                rf_ops_cell_u64(w, q);
                rf_ops_cell_u64(w, rf_dpdk_queue_counter(dq, RF_DC_PACKETS));
                rf_ops_cell_u64(w, rf_dpdk_queue_counter(dq, RF_DC_DATAGRAMS));
                rf_ops_cell_u64(w, rf_dpdk_queue_counter(dq, RF_DC_BYTES));
                rf_ops_cell_u64(w, dropped);
                rf_ops_cell_str(w, reasons);
            }
        }
        rf_ops_table_end(w);
    }
    return 0;
}

/* ---- listeners on /metrics: rejects by reason, clamped timestamps -------- */

/* One registered series: a parser and which of its counters. */
typedef struct listener_metric {
    const rf_parse_ctx *pc;
    int reason; /* enum rf_reject_reason, or -1: timestamps clamped */
} listener_metric;

static struct {
    listener_metric *m;
    size_t n, cap;
    int *ids;
} g_lm;

static uint64_t read_listener_metric(void *ctx)
{
    const listener_metric *m = ctx;
    return m->reason < 0 ? rf_parse_counter(m->pc, RF_PC_TIMESTAMPS_CLAMPED)
                         : rf_parse_reject_count(m->pc, (enum rf_reject_reason)m->reason);
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label_escape(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n') {
            out[o++] = '\\';
            out[o++] = *in == '\n' ? 'n' : *in;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static int register_listener_metrics(rf_engine *e)
{
    size_t inputs = 0;
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++)
        inputs += rf_shard_input_count(rf_engine_shard(e, wi));
    g_lm.cap = inputs * (RF_REJ__COUNT + 1);
    g_lm.m = calloc(g_lm.cap ? g_lm.cap : 1, sizeof(*g_lm.m));
    g_lm.ids = calloc(g_lm.cap ? g_lm.cap : 1, sizeof(int));
    if (!g_lm.m || !g_lm.ids)
        return -ENOMEM;
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            const rf_listener *l = rf_shard_input_listener(s, i);
            char name[64]; /* escaped and cut so the labels fit RF_STATS_LABELS_MAX */
            label_escape(name, sizeof(name), l ? rf_listener_name(l) : "dpdk");
            const char *proto = l ? rf_listen_protocol_name(rf_listener_config_of(l)->protocol) : "-";
            for (int r = -1; r < RF_REJ__COUNT; r++) {
                char labels[RF_STATS_LABELS_MAX];
                if (r < 0)
                    snprintf(labels, sizeof(labels), "worker=\"%u\",listener=\"%s\",protocol=\"%s\"",
                             wi, name, proto);
                else
                    snprintf(labels, sizeof(labels),
                             "worker=\"%u\",listener=\"%s\",protocol=\"%s\",reason=\"%s\"", wi,
                             name, proto, rf_reject_reason_name((enum rf_reject_reason)r));
                listener_metric *m = &g_lm.m[g_lm.n];
                m->pc = rf_shard_input_parser(s, i);
                m->reason = r;
                int id = r < 0 ? rf_stats_register_fn(RF_METRIC_COUNTER,
                                                      "ringflow_listener_timestamps_clamped",
                                                      "Accepted lines whose out-of-window timestamp "
                                                      "was replaced by the receive time.",
                                                      labels, read_listener_metric, m)
                               : rf_stats_register_fn(RF_METRIC_COUNTER,
                                                      "ringflow_listener_lines_rejected",
                                                      "Lines a listener's parser rejected, by reason.",
                                                      labels, read_listener_metric, m);
                if (id < 0)
                    return id;
                g_lm.ids[g_lm.n++] = id;
            }
        }
    }
    return 0;
}

static void unregister_listener_metrics(void)
{
    for (size_t i = 0; i < g_lm.n; i++)
        rf_stats_unregister(g_lm.ids[i]);
    free(g_lm.m);
    free(g_lm.ids);
    memset(&g_lm, 0, sizeof(g_lm));
}

/* ---- errors: the most recent rejected lines, newest first --------------- */

#define VIEW_ERRORS_MAX 64

static int show_errors(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("errors", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {"time", "worker", "source_id", "reason", "source",
                                       "excerpt"};
    rf_ops_table_begin(w, "errors", cols, 6);
    rf_reject_entry *entries = calloc(VIEW_ERRORS_MAX, sizeof(*entries));
    if (!entries) {
        rf_ops_table_end(w);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            size_t n = rf_parse_reject_log_read(rf_shard_input_parser(s, i), entries,
                                                VIEW_ERRORS_MAX);
            for (size_t k = 0; k < n; k++) {
                char ts[40], excerpt[RF_REJECT_EXCERPT_MAX + 1];
                rf_clock_format_rfc3339(entries[k].wall_ns, ts, sizeof(ts));
                memcpy(excerpt, entries[k].excerpt, entries[k].excerpt_len);
                excerpt[entries[k].excerpt_len] = '\0';
                rf_ops_cell_str(w, ts);
                rf_ops_cell_u64(w, wi);
                rf_ops_cell_u64(w, i);
                rf_ops_cell_str(w, rf_reject_reason_name(entries[k].reason));
                rf_ops_cell_str(w, entries[k].source);
                rf_ops_cell_str(w, excerpt);
            }
        }
    }
    free(entries);
    rf_ops_table_end(w);
    return 0;
}

/* ---- stages --------------------------------------------------------------- */

static int show_stages(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("stages", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {
        "worker",          "series",          "series_rejected", "processed",
        "unknown_series",  "unrouted",        "to_critical",     "to_standard",
        "to_store",        "store_rejected",  "routed",          "agg_applied",
        "agg_late_dropped", "agg_windows",    "alerts_fired",    "alerts_resolved",
        "corr_open"};
    rf_ops_table_begin(w, "stages", cols, 17);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        rf_pipeline_stats ps;
        rf_pipeline_stage_stats st;
        rf_pipeline_stats_read(p, &ps);
        rf_pipeline_stages_read(p, &st);
        rf_ops_cell_u64(w, wi);
        rf_ops_cell_u64(w, st.series.count);
        rf_ops_cell_u64(w, ps.series_rejected);
        rf_ops_cell_u64(w, ps.processed);
        rf_ops_cell_u64(w, ps.unknown_series);
        rf_ops_cell_u64(w, ps.unrouted);
        rf_ops_cell_u64(w, ps.to_critical_sinks);
        rf_ops_cell_u64(w, ps.to_standard_sinks);
        rf_ops_cell_u64(w, ps.to_store);
        rf_ops_cell_u64(w, ps.store_rejected);
        rf_ops_cell_u64(w, st.router.routed);
        rf_ops_cell_u64(w, st.aggregation.applied);
        rf_ops_cell_u64(w, st.aggregation.late_dropped);
        rf_ops_cell_u64(w, st.aggregation.windows_emitted);
        rf_ops_cell_u64(w, st.alerts.fired);
        rf_ops_cell_u64(w, st.alerts.resolved);
        rf_ops_cell_u64(w, st.correlation.id_open);
    }
    rf_ops_table_end(w);

    static const char *const scols[] = {"worker", "sink", "accepted", "lines_out", "bytes_out",
                                        "dropped_queue_full", "dropped_disconnected",
                                        "dropped_other", "state"};
    static const char *const states[] = {"disconnected", "connecting", "connected",
                                         "breaker_open"};
    rf_ops_table_begin(w, "sinks", scols, 9);
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
            rf_ops_cell_u64(w, ss.accepted);
            rf_ops_cell_u64(w, ss.lines_out);
            rf_ops_cell_u64(w, ss.bytes_out);
            rf_ops_cell_u64(w, ss.drop_queue_full);
            rf_ops_cell_u64(w, ss.drop_disconnected);
            rf_ops_cell_u64(w, ss.drop_unsupported + ss.drop_oversize + ss.drop_io_error);
            rf_ops_cell_str(w, ss.state < 4 ? states[ss.state] : "-");
        }
    }
    rf_ops_table_end(w);
    return 0;
}

/* ---- storage -------------------------------------------------------------- */

static int show_storage(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("storage", args, err);
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

    static const char *const cols[] = {
        "shard",           "series",       "points_appended",       "points_buffered",
        "blocks_written",  "bytes_written", "fsyncs",               "dropped_backpressure",
        "dropped_io_error", "write_errors", "dropped_io_error_points", "write_errors_by_errno",
        "state",           "degraded_since", "recoveries",          "last_error"};
    rf_ops_table_begin(w, "storage_shards", cols, 16);
    for (uint32_t i = 0; i < rf_store_shards(store); i++) {
        rf_store_shard_stats ss;
        rf_store_shard_io_status io;
        rf_store_shard_stats_read(rf_store_shard_get(store, i), &ss);
        rf_store_shard_io_status_read(rf_store_shard_get(store, i), &io);
        char by_errno[128] = "", since[40] = "";
        const struct {
            const char *name;
            uint64_t n;
        } errs[] = {{"ENOSPC", io.write_errors_enospc}, {"EDQUOT", io.write_errors_edquot},
                    {"EROFS", io.write_errors_erofs},   {"EIO", io.write_errors_eio},
                    {"other", io.write_errors_other}};
        size_t len = 0;
        for (size_t k = 0; k < sizeof(errs) / sizeof(errs[0]) && len < sizeof(by_errno); k++)
            if (errs[k].n)
                len += (size_t)snprintf(by_errno + len, sizeof(by_errno) - len, "%s%s=%lu",
                                        len ? "," : "", errs[k].name, (unsigned long)errs[k].n);
        if (io.state == RF_STORE_IO_DEGRADED && io.degraded_since_ns)
            rf_clock_format_rfc3339(io.degraded_since_ns, since, sizeof(since));
        rf_ops_cell_u64(w, i);
        rf_ops_cell_u64(w, ss.series);
        rf_ops_cell_u64(w, ss.points_appended);
        rf_ops_cell_u64(w, ss.points_buffered);
        rf_ops_cell_u64(w, ss.blocks_written);
        rf_ops_cell_u64(w, ss.bytes_written);
        rf_ops_cell_u64(w, ss.fsyncs);
        rf_ops_cell_u64(w, ss.dropped_backpressure);
        rf_ops_cell_u64(w, ss.dropped_io_error);
        rf_ops_cell_u64(w, ss.write_errors);
        rf_ops_cell_u64(w, io.dropped_io_error_points);
        rf_ops_cell_str(w, by_errno);
        rf_ops_cell_str(w, rf_store_io_health_name(io.state));
        rf_ops_cell_str(w, since);
        rf_ops_cell_u64(w, io.recoveries);
        rf_ops_cell_str(w, io.last_error);
    }
    rf_ops_table_end(w);
    return 0;
}

/* ---- storage on /metrics: writes, write errors, losses, degraded state --- */

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
    default: return io.state == RF_STORE_IO_DEGRADED;
    }
}

static int register_storage_metrics(rf_engine *e)
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
            int id = rf_stats_register_fn(storage_metric_defs[f].type, storage_metric_defs[f].name,
                                          storage_metric_defs[f].help, labels,
                                          read_storage_metric, m);
            if (id < 0)
                return id;
            g_storage_m.ids[g_storage_m.n++] = id;
        }
    }
    return 0;
}

static void unregister_storage_metrics(void)
{
    for (size_t i = 0; i < g_storage_m.n; i++)
        rf_stats_unregister(g_storage_m.ids[i]);
    free(g_storage_m.m);
    free(g_storage_m.ids);
    memset(&g_storage_m, 0, sizeof(g_storage_m));
}

/* ---- series top N: cardinality per measurement ------------------------ */

#define VIEW_MEAS_MAX 4096

typedef struct meas_acc {
    struct {
        char name[64];
        uint64_t series;
    } rows[VIEW_MEAS_MAX];
    uint32_t n;
} meas_acc;

static void meas_add(void *ctx, const char *name, uint64_t series)
{
    meas_acc *a = ctx;
    for (uint32_t i = 0; i < a->n; i++) {
        if (strcmp(a->rows[i].name, name) == 0) {
            a->rows[i].series += series;
            return;
        }
    }
    if (a->n < VIEW_MEAS_MAX) {
        snprintf(a->rows[a->n].name, sizeof(a->rows[a->n].name), "%s", name);
        a->rows[a->n].series = series;
        a->n++;
    }
}

static int meas_cmp(const void *x, const void *y)
{
    const uint64_t a = *(const uint64_t *)((const char *)x + 64);
    const uint64_t b = *(const uint64_t *)((const char *)y + 64);
    return a < b ? 1 : a > b ? -1 : 0;
}

static int show_series(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    unsigned long top = 10;
    if (args && *args) {
        char *end;
        if (strncmp(args, "top", 3) != 0)
            return rf_err_set(err, EINVAL, "usage: show series top N");
        top = strtoul(args + 3, &end, 10);
        if (*end || top == 0)
            return rf_err_set(err, EINVAL, "usage: show series top N (N >= 1)");
    }
    meas_acc *acc = calloc(1, sizeof(*acc));
    if (!acc)
        return rf_err_set(err, ENOMEM, "out of memory");
    uint64_t total = 0, limit_rejected = 0;
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        rf_pipeline_measurements(p, meas_add, acc);
        rf_pipeline_stage_stats st;
        rf_pipeline_stages_read(p, &st);
        total += st.series.count;
        limit_rejected += st.series.rejected_cardinality;
    }
    qsort(acc->rows, acc->n, sizeof(acc->rows[0]), meas_cmp);
    rf_ops_obj_begin(w, "series");
    rf_ops_kv_u64(w, "active_series", total);
    rf_ops_kv_u64(w, "max_series_per_worker", rf_engine_settings(e)->pipeline.max_series);
    rf_ops_kv_u64(w, "rejected_by_cardinality_limit", limit_rejected);
    rf_ops_obj_end(w);
    static const char *const cols[] = {"measurement", "series"};
    rf_ops_table_begin(w, "series_by_measurement", cols, 2);
    for (uint32_t i = 0; i < acc->n && i < top; i++) {
        rf_ops_cell_str(w, acc->rows[i].name);
        rf_ops_cell_u64(w, acc->rows[i].series);
    }
    rf_ops_table_end(w);
    free(acc);
    return 0;
}

void rf_engine_drops_read(const rf_engine *e, rf_engine_drops *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        rf_engine_worker_stats ws;
        rf_engine_worker_stats_read(e, wi, &ws);
        out->ring_full += ws.dropped_ring_full;
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            out->rejected_lines += rf_parse_counter(rf_shard_input_parser(s, i), RF_PC_LINES_REJECTED);
            const rf_listener *l = rf_shard_input_listener(s, i);
            if (l)
                out->kernel += rf_listener_counter(l, RF_LC_KERNEL_DROPS);
        }
        for (uint32_t q = 0; q < rf_shard_dpdk_queue_count(s); q++)
            for (int c = RF_DC_DROP_FIRST; c < RF_DC__COUNT; c++)
                out->dpdk += rf_dpdk_queue_counter(rf_shard_dpdk_queue(s, q),
                                                   (enum rf_dpdk_counter_id)c);
        const rf_pipeline *p = rf_shard_pipeline(s);
        rf_pipeline_stats ps;
        rf_pipeline_stats_read(p, &ps);
        out->unknown_series += ps.unknown_series;
        out->cardinality += ps.series_rejected;
        out->unrouted += ps.unrouted;
        out->store += ps.store_rejected;
        for (uint32_t j = 0; j < rf_pipeline_sink_count(p); j++) {
            const rf_sink *sk = rf_pipeline_sink(p, j);
            if (!sk)
                continue;
            rf_sink_stats ss;
            rf_sink_stats_read(sk, &ss);
            out->sinks += ss.drop_queue_full + ss.drop_disconnected + ss.drop_unsupported +
                          ss.drop_oversize + ss.drop_io_error;
        }
    }
}

int rf_engine_views_register(rf_engine *e, rf_err *err)
{
    int rc;
    if ((rc = register_storage_metrics(e)) < 0)
        return rf_err_set(err, -rc, "registering the storage metrics: %s", strerror(-rc));
    if ((rc = rf_ops_register_show("listeners", "per listener: traffic, events, rejects, drops",
                                   show_listeners, e)) < 0 ||
        (rc = rf_ops_register_show("errors", "the most recent rejected lines", show_errors, e)) <
            0 ||
        (rc = rf_ops_register_show("stages", "per worker: series, stage counters, sinks",
                                   show_stages, e)) < 0 ||
        (rc = rf_ops_register_show("storage", "segments, bytes, per-shard writes and drops",
                                   show_storage, e)) < 0 ||
        (rc = rf_ops_register_show("series", "cardinality: top N measurements by series",
                                   show_series, e)) < 0)
        return rf_err_set(err, -rc, "registering the engine's show commands: %s", strerror(-rc));
    if ((rc = register_listener_metrics(e)) < 0)
        return rf_err_set(err, -rc, "registering the listeners' metrics: %s", strerror(-rc));
    return 0;
}

void rf_engine_views_unregister(void)
{
    unregister_storage_metrics();
    rf_ops_unregister_show("listeners");
    rf_ops_unregister_show("errors");
    rf_ops_unregister_show("stages");
    rf_ops_unregister_show("storage");
    rf_ops_unregister_show("series");
    unregister_listener_metrics();
}
